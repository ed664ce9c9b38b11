// Records: the case store's values as plain structs, and the one codec between each struct
// and its stored form (agent/case_store.h). The stored form is a JSON document whose keys
// and value encodings are fixed by the stores already on disk: records.cpp is the only
// place that names those keys. Fields that older writers leave out are std::optional and
// are written back only when present, so a record read and written again keeps its bytes.
//
// Ids travel as lowercase hex, times as Unix milliseconds, enums by their readable names
// (schema::Name); an unreadable record is reported as kMalformed naming the table and key.
//
// The same documents are what the local API returns for referrals, deletions, the inbox
// and cases (agent/API.md), which is why the codec is shared with engine_requests.cpp.
//
// Thread safety: plain values and free functions.
#ifndef REFBUS_AGENT_RECORDS_H_
#define REFBUS_AGENT_RECORDS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/case_crypto.h"
#include "agent/case_store.h"
#include "agent/workflow.h"
#include "core/bytes.h"
#include "core/clock.h"
#include "core/status.h"
#include "schema/workflow.h"

namespace refbus::agent {

// A free-text field at rest (a reason): sealed under the data key of the grant it was
// shared under (agent/case_crypto.h), or plain for the agent's own fixed words ("consent
// revoked"). Stored as the sealed object {at, box, grant, nonce} or as a string; the API
// shows sealed text only through the recorded read (Engine::ReadCase).
struct CaseText {
  std::string plain;
  std::optional<SealedText> sealed;
};

// kGrants: a consent grant this agency recorded or received, and what happened to it.
struct GrantRecord {
  Bytes signed_grant;  // schema::EncodeSignedConsentGrant
  std::string case_ref;
  bool recorded_here = false;
  std::optional<std::string> operator_ref;   // recorded here: who recorded it
  std::optional<std::string> received_from;  // received: the agency it came from
  bool revoked = false;
  std::optional<bool> registered;        // recorded here: the broker acknowledged its registration
  std::vector<std::string> shared_with;  // agencies that got data under it (told on revocation)
  // Set by a revocation.
  std::optional<UnixMillis> revoked_at_ms;
  std::optional<std::string> revocation_reason;  // schema::RevocationReason name
  std::optional<bool> purge_pending;             // received grants: purge not yet done
  // Set by the purge.
  std::optional<uint64_t> purged_messages;
  std::optional<UnixMillis> purged_at_ms;
};

// One move of a referral. kUnspecified `from` is the referral's creation.
struct ReferralStep {
  schema::ReferralState from = schema::ReferralState::kUnspecified;
  schema::ReferralState to = schema::ReferralState::kUnspecified;
  std::string by;                           // agency
  std::optional<std::string> operator_ref;  // absent on withdrawals by revocation
  std::optional<CaseText> reason;           // absent on creation
  UnixMillis at_ms = 0;
  // Hex: the state change that brought a move by another agency (absent in older records
  // and on this agency's own moves). A recorded read of its reason names it.
  std::optional<std::string> message_id;
};

// kReferrals: a referral this agency sent (kReferrer) or received (kReceiver).
struct ReferralRecord {
  std::string referral_id;  // hex
  std::string case_ref;
  ReferralSide side = ReferralSide::kReferrer;
  std::string peer;  // the other agency
  schema::Purpose purpose = schema::Purpose::kUnspecified;
  std::string grant_id;    // hex
  std::string message_id;  // hex: the message that carried the referral
  schema::ReferralState state = schema::ReferralState::kRequested;
  UnixMillis updated_at_ms = 0;
  std::vector<ReferralStep> history;
};

enum class HandoffSide { kFrom, kTo };  // this agency hands the lead over / takes it
enum class HandoffState { kPending, kAccepted, kRefused };

// kHandoffs: a handoff of a case's lead, sent or received.
struct HandoffRecord {
  std::string handoff_id;  // hex
  std::string case_ref;
  HandoffSide side = HandoffSide::kFrom;
  std::string peer;
  std::string grant_id;    // hex
  CaseText reason;         // the handoff's, replaced by the answer's
  std::string message_id;  // hex
  HandoffState state = HandoffState::kPending;
  // Hex: the answer whose reason replaced the handoff's, when it came from the peer.
  std::optional<std::string> answer_message_id;
};

enum class DeletionSide { kRequester, kDeletionCenter, kObserver };

// kDeletions: a deletion request this agency sent, handles, or is told about (report_to).
struct DeletionRecord {
  std::string request_id;  // hex
  std::string case_ref;
  DeletionSide side = DeletionSide::kRequester;
  std::string peer;      // requester: the deletion center; otherwise the requester / reporter
  std::string grant_id;  // hex
  std::optional<std::vector<std::string>> report_to;  // absent for observers
  std::optional<bool> monitor;                        // absent for observers
  // item id -> "requested" or a schema::DeletionItemStatus name
  std::map<std::string, std::string> items;
  uint64_t report_seq = 0;
  std::optional<schema::DeletionCounts> counts;  // from the latest status report
  // Chunked requests (PROTOCOL.md 10.1); absent for a request sent in one message.
  std::optional<schema::DeletionManifest> manifest;
  std::optional<std::vector<uint32_t>> chunks_held;  // deletion center: chunk indexes held
  // Deletion center: it holds the whole list (count and hash matched). Requester: told so.
  std::optional<bool> list_complete;
  std::optional<uint32_t> items_held;  // requester: as the center last reported
  // Deletion center: the latest chunk's arrival. Requester: when the chunks were last sent.
  std::optional<UnixMillis> last_chunk_at_ms;
  std::optional<UnixMillis> missing_asked_at_ms;  // deletion center: the last re-request
  std::optional<uint64_t> chunks_resent;          // requester: chunks sent again when asked
  // Requester (monitor set): watching ended, and why ("consent revoked (REASON)").
  std::optional<std::string> monitoring_stopped;
};

// kDeletionChunks, key DeletionChunkKey(request, index): one chunk of a chunked request, at
// the requester (to send it again when asked) and at the deletion center (to check the
// whole list's hash and export it). The items are sealed under the grant's data key, so a
// purge shreds them with the rest of the grant's data.
struct DeletionChunkRecord {
  uint32_t index = 0;
  uint32_t item_count = 0;
  std::string message_id;  // hex: the message that carried it (last sent, or received)
  CaseText items;          // sealed JSON: [[item_id, url, sha256 hex, platform, note], ...]
};
std::string DeletionChunkKey(const std::string& request_id, uint32_t index);

// One reported status of an item: by which agency, in which report, when.
struct DeletionItemStep {
  std::string status;  // a schema::DeletionItemStatus name
  std::string by;
  uint64_t report_seq = 0;
  UnixMillis at_ms = 0;        // when it took effect (the center's time)
  UnixMillis received_ms = 0;  // when this agency applied it
};
// kDeletionHistory, key "<request id>/<item id>": every reported status of one item,
// oldest first (requester and observers).
struct DeletionHistoryRecord {
  std::vector<DeletionItemStep> steps;
};

struct AccessNoticeNote {
  std::string message_id;  // hex
  std::string agency;
  std::string operator_ref;
  UnixMillis opened_at_ms = 0;
  std::string kind;  // schema::MessageKind name
  // The opener's operator signature as this agency checked it with the key it carries
  // (the opening agency's roster, which ties the key to a person, is the auditor's):
  // "verifies" or "INVALID" (kept and shown: the agency's own signature holds), "none"
  // (the service account, or an older agent), with the key's fingerprint.
  std::string operator_signature = "none";
  std::string operator_key;
};

struct PurgeConfirmationNote {
  std::string grant_id;  // hex
  std::string agency;
  uint64_t messages_purged = 0;
  UnixMillis purged_at_ms = 0;
};

// A refusal, by the broker (what, id, detail) or by this agency (message_id, from, kind).
struct RefusalNote {
  std::string by;
  std::optional<std::string> what;
  std::optional<std::string> id;
  std::optional<std::string> message_id;
  std::optional<std::string> from;
  std::optional<std::string> kind;
  std::string reason;
  std::optional<std::string> detail;
  UnixMillis at_ms = 0;
};

// An entry of a case's timeline: `event` names what happened, and the fields that event
// has are set (engine_*.cpp say which).
struct TimelineEvent {
  std::string event;
  std::optional<std::string> from;
  std::optional<std::string> to;                        // one agency ...
  std::optional<std::vector<std::string>> to_agencies;  // ... or several (same key)
  std::optional<std::string> by;
  std::optional<std::string> referral_id;
  std::optional<std::string> handoff_id;
  std::optional<std::string> request_id;
  std::optional<std::string> grant_id;
  std::optional<std::string> message_id;
  std::optional<std::string> purpose;
  std::optional<std::string> state;
  std::optional<std::string> reason;  // fixed words only (a revocation reason's name)
  std::optional<std::string> basis;
  std::optional<std::string> operator_ref;
  std::optional<uint64_t> items;
  std::optional<uint64_t> report_seq;
  std::optional<schema::DeletionCounts> counts;
  std::optional<uint64_t> messages_purged;
  std::optional<bool> emergency_override;
  std::optional<std::vector<std::string>> notified;
  // Linkage (PROTOCOL.md 13.6): the match's id, the other agencies, the identifier kind.
  std::optional<std::string> linkage_id;
  std::optional<std::vector<std::string>> linked;
  std::optional<std::string> identifier_kind;
  UnixMillis at_ms = 0;
};
inline TimelineEvent Event(std::string name) {
  TimelineEvent e;
  e.event = std::move(name);
  return e;
}

// kCases: what this agency knows of a case. A case not yet stored reads as NewCase().
struct CaseRecord {
  std::string case_ref;
  std::string local_case;
  std::string lead;  // empty: not known yet
  bool closed = false;
  std::optional<CaseText> closed_reason;
  std::optional<std::string> closed_by;          // the agency whose reason it is
  std::optional<std::string> closed_message_id;  // hex: the message that told this agency
  std::vector<std::string> grants;               // hex ids
  std::vector<AccessNoticeNote> access_notices;
  std::vector<PurgeConfirmationNote> purge_confirmations;
  std::vector<RefusalNote> refusals;
  std::vector<TimelineEvent> timeline;
};
CaseRecord NewCase(const std::string& case_ref);

// kLocal: a local case number's case.
struct LocalCaseRecord {
  std::string case_ref;
};

// kWaitingPrekey: sealed to a prekey this agency does not hold yet (its key file was
// rotated by another process, or the message came before the rotation reached this
// process); retried until it opens or its envelope expires, never refused for that.
enum class MessageStatus { kOk, kRefused, kPurged, kWaitingPrekey };

// kMessages: what the engine learnt about a delivered message.
struct MessageRecord {
  std::string message_id;  // hex
  UnixMillis received_at_ms = 0;
  bool opened = false;
  MessageStatus status = MessageStatus::kOk;
  // From the envelope's header, when it decoded.
  std::optional<std::string> from;
  std::optional<std::string> kind;  // schema::MessageKind name
  std::optional<std::string> case_ref;
  std::optional<std::string> grant_id;  // hex
  std::optional<std::string> refusal;
  std::optional<std::string> waiting_for;  // kWaitingPrekey: the prekey's fingerprint
  // The workflow item it created.
  std::optional<std::string> referral_id;
  std::optional<std::string> handoff_id;
  std::optional<std::string> request_id;
  std::optional<bool> stale;  // an older deletion report than one already applied
  // A deletion status report naming reappeared items: an alert for crisis support
  // (PROTOCOL.md 10.3): "reappeared" and how many items.
  std::optional<std::string> alert;
  std::optional<uint64_t> alert_items;
  std::optional<bool> crisis_support;
  // A deletion watch list over the bus (PROTOCOL.md 10.3): what came of it ("imported
  // version N of P", "asked P for its full list", "answered with version N").
  std::optional<std::string> watch_list;
  std::optional<std::string> opened_by;
  std::optional<UnixMillis> opened_at_ms;
  // The sending operator's signature (PROTOCOL.md 9.2), checked with the key it carries:
  // their name, "verifies" or "INVALID", and the key's fingerprint; unset when the message
  // carries none (the sender's service account, or the agency itself).
  std::optional<std::string> operator_ref;
  std::optional<std::string> operator_signature;
  std::optional<std::string> operator_key;
};

enum class OutgoingStatus { kQueued, kAcked, kRefused };

// kOutgoing: what this agency queued for the broker: a sealed envelope (kind: its
// MessageKind name) or a control frame (kind "control"). The bytes are dropped once the
// broker answered.
struct OutgoingRecord {
  uint64_t seq = 0;  // queue order
  std::string kind;
  std::string what;  // "referral", "grant-registration", ...
  std::string case_ref;
  std::optional<std::vector<std::string>> to;  // envelopes only
  OutgoingStatus status = OutgoingStatus::kQueued;
  std::optional<Bytes> envelope;
  std::optional<Bytes> frame;         // schema::EncodeFrame
  std::optional<std::string> reason;  // refused: schema::NackReason name
  std::optional<std::string> detail;
};
inline constexpr const char* kControlKind = "control";

// kMeta: a counter ("out_seq", "processed_seq").
struct SeqRecord {
  uint64_t seq = 0;
};

// Typed access to the case store. Load: nullopt if absent, kMalformed if the record does
// not decode. LoadAll: every record of the type's table, in key order.
template <typename R>
Result<std::optional<R>> Load(const CaseStore::Txn& txn, const std::string& key);
template <typename R>
Status Save(CaseStore::Txn& txn, const std::string& key, const R& record);
template <typename R>
Result<std::vector<std::pair<std::string, R>>> LoadAll(const CaseStore::Txn& txn);
// Those whose key starts with prefix, in key order.
template <typename R>
Result<std::vector<std::pair<std::string, R>>> LoadPrefix(const CaseStore::Txn& txn,
                                                          const std::string& prefix);

// The places of the sealed fields (the associated data of their sealing).
std::string HistoryReasonPlace(const std::string& referral_id, size_t step);
std::string HandoffReasonPlace(const std::string& handoff_id);
std::string ClosedReasonPlace(const std::string& case_ref);

// Names in the stored form (and the API's bodies).
std::string_view Name(ReferralSide side);
std::string_view Name(HandoffState state);
std::string_view Name(DeletionSide side);
std::string_view Name(MessageStatus status);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_RECORDS_H_
