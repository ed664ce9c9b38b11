// The deletion center's work queue, its watch list and its statistics (issue 20 items
// 3-5; PROTOCOL.md 10.2-10.4): the values and the pure steps; the engine's side is
// agent/engine_deletion_work.cpp.
//
// Work queue. One work item per canonical URL or content SHA-256, across requests and
// cases: every requested item is linked to the work item its URL (canonical form of
// linkage/identifier.h) or content hash names, and a status change on the work item is
// reported to every linked requester under that requester's own request and grant. The
// queue keeps no URL in the clear: a URL is known by the SHA-256 of its canonical form
// (the URLs themselves stay in the requests' chunks, sealed under each grant).
//
// Watch list. The content hashes of monitored work items, published by a deletion center
// as a signed, versioned list (full, or a delta over a version the receiver holds); no case
// reference, no requester, no URL.
//
// Statistics. Monthly counts of requested items by requesting agency type, region and
// outcome, as CSV, with counts under 5 suppressed (and a complementary cell, see
// StatsCsv).
//
// Thread safety: free functions over values.
#ifndef REFBUS_AGENT_DELETION_WORK_H_
#define REFBUS_AGENT_DELETION_WORK_H_

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/case_crypto.h"
#include "core/bytes.h"
#include "core/clock.h"
#include "core/status.h"
#include "schema/types.h"
#include "schema/workflow.h"

namespace refbus::keys {
class Identity;
}

namespace refbus::agent {

// One requester's item linked to a work item.
struct WorkLink {
  std::string request_id;  // hex
  std::string item_id;
  std::string requester;  // agency id
  std::string grant_id;   // hex
  UnixMillis linked_at_ms = 0;
  bool monitor = false;
};

// A takedown notice sent to a platform, and what came of it.
struct TakedownNotice {
  UnixMillis sent_at_ms = 0;
  std::string platform;
  // The platform's answer, free words typed by the center's operator: at rest only sealed
  // (answer_sealed), one copy under the data key of each grant linked to the work item
  // when it was recorded (agent/case_crypto.h), so a purge of every such grant shreds it.
  // `answer` is plain only in stores written before (and in the API's answers).
  std::string answer;
  bool removed = false;
  std::string operator_ref;
  UnixMillis recorded_at_ms = 0;
  std::vector<SealedText> answer_sealed;
};
// Where a notice's answer is sealed (the associated data's place).
std::string NoticeAnswerPlace(const std::string& work_id, size_t notice_index);

// kDeletionWork: one work item.
struct WorkItem {
  std::string work_id;               // hex, 16 bytes (WorkIdFor of its first key)
  std::string url_key;               // hex SHA-256 of the canonical URL; "" when none
  std::string content_sha256;        // hex; "" when none
  std::string platform;              // canonical platform name, or as given
  std::string status = "requested";  // "requested" or a schema::DeletionItemStatus name
  UnixMillis created_at_ms = 0;
  UnixMillis updated_at_ms = 0;
  std::vector<WorkLink> links;
  std::vector<TakedownNotice> notices;
  // Set when watching ended (every monitoring requester's consent revoked): the reason.
  std::string watch_ended;
  // The deletion centers whose imported watch list holds this item's content hash.
  std::vector<std::string> known_from;
  uint64_t unlinked = 0;  // links removed (consent revoked)

  bool Monitored() const;
  // Not removed (nor withdrawn) overdue_days after it was first requested, as of `now`.
  bool Overdue(UnixMillis now, int64_t overdue_days) const;
};

nlohmann::json WorkItemToJson(const WorkItem& w);
Result<WorkItem> WorkItemFromJson(const nlohmann::json& j);

// The work queue's keys of an item: "u:" + hex SHA-256("refbus/deletion-url/v1\n" ||
// canonical URL) when it has a URL (a URL that does not canonicalize is hashed as given,
// trimmed), and "h:" + hex content SHA-256 when it has one. Never empty: every item has a
// URL (CheckDeletionItem).
std::vector<std::string> WorkKeys(const schema::DeletionItem& item);
// The work id of a work item first created under `key`.
std::string WorkIdFor(const std::string& key);
// The platform's canonical name (linkage/identifier.h), or "other" (a name not on the list
// is the requester's text and stays sealed in its chunk); "" when none was given.
std::string WorkPlatform(const std::string& raw);

// ---- statistics ----

// One counted cell: the requesting agency's type and region, the outcome (the item's
// current status), and how many items.
struct StatsCell {
  std::string agency_type;
  std::string region;
  std::string outcome;
  uint64_t count = 0;
  bool operator<(const StatsCell& o) const;
};
inline constexpr uint64_t kStatsMinCount = 5;
// "month,agency_type,region,outcome,count" rows in key order. A count under kStatsMinCount
// is written "<5". Complementary suppression: where a (agency_type, region) group has
// exactly one suppressed cell, its smallest other cell is suppressed too ("suppressed"),
// so one cell cannot be recovered from a group total known elsewhere (e.g. a requester's
// own count). No totals are written. Not protected: differences between two months'
// releases of the same month (each month is released once, after it ends).
std::string StatsCsv(const std::string& month, std::vector<StatsCell> cells);
// "YYYY-MM" -> [start, end) in Unix ms, UTC. kInvalidArgument otherwise.
Result<std::pair<UnixMillis, UnixMillis>> MonthRange(std::string_view month);

// ---- the watch list ----

inline constexpr std::string_view kWatchListLabel = "refbus/v1/deletion-watch-list";
// The center's meta record holding the full file it published last (the answer to a
// request for its full list over the bus).
inline constexpr char kWatchPublishedFileKey[] = "watch-list-published-file";
// The meta record of what this center holds of another center's list: prefix + publisher.
inline constexpr char kWatchHeldPrefix[] = "watch-list/";

// A watch list as published: full (base_version 0: `added` is the whole list) or a delta
// over base_version.
struct WatchList {
  std::string publisher;  // the deletion center's agency id
  uint64_t version = 0;   // > 0, increasing
  uint64_t base_version = 0;
  UnixMillis issued_at_ms = 0;
  std::set<std::string> added;    // hex content SHA-256
  std::set<std::string> removed;  // deltas only
};

// The exact signed text: "refbus/deletion-watch-list/v1\n", then "publisher ID\n",
// "version N\n", "base N\n", "issued_at_ms N\n", then "+HEX\n" per added and "-HEX\n" per
// removed hash, each set in ascending order.
std::string WatchListText(const WatchList& list);
Result<WatchList> ParseWatchListText(std::string_view text);

// The file: {"format": 1, "list": <text>, "signer_key_id": hex, "signature": hex}, signed
// by the publisher's directory signing key under kWatchListLabel.
nlohmann::json SignWatchList(const WatchList& list, const keys::Identity& identity);
// Verifies a file against the directory (the signer's key valid at issued_at_ms, the
// publisher an agency with the deletion role). kPermissionDenied for a bad signature.
Result<WatchList> VerifyWatchList(const nlohmann::json& file, const schema::Directory& directory,
                                  UnixMillis now);

// What a receiving center holds of one publisher's list.
struct WatchHeld {
  std::string publisher;
  uint64_t version = 0;
  std::set<std::string> hashes;
};
// Applies a verified list. kFailedPrecondition for a version not newer than the one held
// (an older or replayed list), and for a delta whose base is not the version held (the
// receiver asks for the full list).
Status ApplyWatchList(WatchHeld& held, const WatchList& list);
// A delta (newer than held) whose base is not the version held: the receiver needs the
// publisher's full list.
bool NeedsFullList(const WatchHeld& held, const WatchList& list);
nlohmann::json WatchHeldToJson(const WatchHeld& h);
Result<WatchHeld> WatchHeldFromJson(const nlohmann::json& j);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_DELETION_WORK_H_
