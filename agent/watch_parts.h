// A deletion center's watch-list file too big for one message (PROTOCOL.md 10.3): the
// publisher splits the file text into parts (SplitWatchFile); the receiver stages the parts
// it gets in the case store's kWatchParts table, one file in progress per sender, and gets
// the whole text back once every part is held and the parts hash to the file's digest. The
// signature stays over the whole file: a part is worthless alone, and the caller verifies
// and imports the file put together (ImportWatchFile) exactly as a one-message file.
//
// Bounds, so a sender cannot pin storage: one file per sender (a part of another file
// replaces the unfinished one, unless that file was itself replaced before: a late part of
// an old file is refused), kMaxWatchStagedBytes staged across all senders, and a staged file
// expires kWatchStagedLifetimeMs after its first part (ExpireWatchStaged).
//
// Thread safety: none; the engine's thread, inside its case-store transaction.
#ifndef REFBUS_AGENT_WATCH_PARTS_H_
#define REFBUS_AGENT_WATCH_PARTS_H_

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/case_store.h"
#include "core/clock.h"
#include "core/status.h"
#include "schema/workflow.h"

namespace refbus::agent {

inline constexpr UnixMillis kWatchStagedLifetimeMs = 24 * kMillisPerHour;
// Parts staged across every sender together (each file is at most 64 MiB, 10.3).
inline constexpr uint64_t kMaxWatchStagedBytes = uint64_t{256} << 20;
// What one publication may queue in the publisher's case store until the broker acks it
// (every center's messages, hex-encoded: 2 x the file x the centers).
inline constexpr uint64_t kMaxWatchQueuedBytes = uint64_t{512} << 20;
// How many times a receiver asks the publisher again for a file whose parts stopped
// coming (then it waits for the next publication or the staged file's expiry).
inline constexpr uint32_t kWatchPartAsks = 3;

// The parts the file text travels as: kInvalidArgument unless it is over one message
// (schema::kMaxWatchListFileBytes) and at most schema::kMaxWatchListPartedBytes.
Result<std::vector<schema::WatchListPart>> SplitWatchFile(std::string_view text);

// What is staged of one sender's file.
struct WatchStaged {
  std::string sender;
  Bytes file_sha256;
  uint32_t count = 0;
  uint64_t total_bytes = 0;
  std::set<uint32_t> held;
  UnixMillis first_at_ms = 0;     // the file's first part
  UnixMillis progress_at_ms = 0;  // the latest new part, or the latest ask
  uint32_t asks = 0;              // asks for the file again since the latest new part
  // Hex digests of the sender's latest files replaced or finished (imported, refused or
  // expired), newest last: a late part of one is ignored. At most kWatchDigestsKept.
  std::vector<std::string> done;
  bool idle() const { return count == 0; }
};
inline constexpr size_t kWatchDigestsKept = 8;

// What staging one part came to.
struct WatchPartStaged {
  WatchStaged staged;      // after this part
  bool duplicate = false;  // the part was held already: nothing changed
  bool stale = false;      // a part of a file replaced or finished before: ignored
  bool replaced = false;   // it replaced another unfinished file of the sender
  std::string file_text;   // every part held and the digest matches: the whole file
  bool complete() const { return !file_text.empty(); }
};

// Stages one part from sender (the part checked by the codec). kInvalidArgument for a part
// that contradicts the staged file (its size), or a file whose parts put together do not hash to
// its digest (the staging is dropped); kResourceExhausted when staging it would pass
// kMaxWatchStagedBytes. A complete file's staging is dropped (the caller imports the text),
// in txn, the digest mismatch included: the caller commits, after a refusal too (the engine
// records the refusal in the same transaction).
Result<WatchPartStaged> StageWatchPart(CaseStore::Txn& txn, const std::string& sender,
                                       const schema::WatchListPart& part, UnixMillis now);

// Every sender's staged file, without the parts' bytes.
Result<std::vector<WatchStaged>> ListWatchStaged(const CaseStore::Txn& txn);
Status SaveWatchStaged(CaseStore::Txn& txn, const WatchStaged& s);
// Drops a staged file's parts; the sender's record stays, idle (count 0), with the file's
// digest among those a late part of is ignored.
Status DropWatchStaged(CaseStore::Txn& txn, WatchStaged& s);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_WATCH_PARTS_H_
