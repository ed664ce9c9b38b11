// The engine's API edge: each command's JSON body (agent/API.md) parsed into a typed
// request, and each command's result built into its JSON answer. The workflows
// (engine_*.cpp) see only the structs.
//
// Parsing checks what the body alone can show, in the order the fields are listed, and
// names the field in every error (kInvalidArgument). Checks that need the stores stay with
// the workflows, which run them in the same order as before the split: where a body error
// was reported only after a store check, the parsed request carries it (`*_error`) for the
// workflow to return at that point.
//
// Thread safety: free functions.
#ifndef REFBUS_AGENT_ENGINE_REQUESTS_H_
#define REFBUS_AGENT_ENGINE_REQUESTS_H_

#include <map>
#include <string>
#include <vector>

#include "agent/engine.h"
#include "agent/records.h"
#include "agent/records_json.h"
#include "schema/types.h"
#include "schema/workflow.h"

namespace refbus::agent {

// ---- requests ----

struct ConsentRequest {
  std::string operator_ref;
  std::string case_ref;        // empty: the local case's, or a new one
  std::string local_case;      // may be empty
  schema::ConsentGrant grant;  // every field but ids, case_ref, recorder and times
  int64_t valid_days = 30;
  int64_t retention_days = 30;
  int64_t expires_in_ms = 0;           // 0: valid_days
  int64_t retention_in_ms = 0;         // 0: retention_days
  std::string countersigner_key;       // emergency overrides only
  std::string countersigner_operator;  // emergency overrides only
  Status countersigner_error;          // a malformed countersigner field (checked only then)
};
Result<ConsentRequest> ParseConsentRequest(const Json& body);

struct ReferralRequest {
  std::string operator_ref;
  std::string grant_id;  // as given; checked against the store
  std::string to;
  schema::Purpose purpose = schema::Purpose::kUnspecified;
  std::vector<schema::CaseField> fields;
};
Result<ReferralRequest> ParseReferralRequest(const Json& body);

struct StateChangeRequest {
  std::string operator_ref;
  schema::ReferralState to = schema::ReferralState::kUnspecified;
  std::string reason;
  Bytes referral_id;
};
Result<StateChangeRequest> ParseStateChangeRequest(const std::string& referral_id,
                                                   const Json& body);

struct OpenRequest {
  std::string operator_ref;
  Bytes message_id;
};
Result<OpenRequest> ParseOpenRequest(const std::string& message_id, const Json& body);

struct HandoffRequest {
  std::string operator_ref;
  std::string grant_id;
  std::string to;
  std::string reason;
  std::string purpose;  // a purpose name, checked after the lead (empty: the grant's first)
  std::vector<schema::CaseField> fields;
};
Result<HandoffRequest> ParseHandoffRequest(const Json& body);

struct HandoffAckRequest {
  std::string operator_ref;
  Bytes handoff_id;
  bool accepted = true;
  std::string reason;
};
Result<HandoffAckRequest> ParseHandoffAckRequest(const std::string& handoff_id, const Json& body);

struct DeletionRequestRequest {
  std::string operator_ref;
  std::string grant_id;
  std::string to;
  std::vector<std::string> report_to;
  std::vector<schema::DeletionItem> items;
  bool monitor = false;
};
Result<DeletionRequestRequest> ParseDeletionRequest(const Json& body);

struct DeletionStatusRequest {
  struct Update {
    std::string item_id;
    std::string status;  // a schema::DeletionItemStatus name
    schema::DeletionItemStatus parsed = schema::DeletionItemStatus::kUnspecified;
    size_t line = 0;  // from a CSV: its line
  };
  std::string operator_ref;
  Bytes request_id;
  std::vector<Update> updates;  // those before update_error
  Status update_error;          // a malformed update (reported after the ones before it)
};
Result<DeletionStatusRequest> ParseDeletionStatusRequest(const std::string& request_id,
                                                         const Json& body);

struct RevokeRequest {
  std::string operator_ref;
  schema::RevocationReason reason = schema::RevocationReason::kUnspecified;
};
Result<RevokeRequest> ParseRevokeRequest(const Json& body);

struct CloseCaseRequest {
  std::string operator_ref;
  std::string reason;
};
Result<CloseCaseRequest> ParseCloseCaseRequest(const Json& body);

Result<std::string> ParseLocalCaseRequest(const Json& body);  // the local case number
Result<std::string> ParseOperatorOnly(const Json& body);      // {operator}

// POST /v1/linkage/{id}/send {to, grant_id?, operator} (PROTOCOL.md 13.8).
struct TallySendRequest {
  std::string operator_ref;
  std::string to;
  std::string grant_id;  // hex; empty: the case's newest grant that fits
};
Result<TallySendRequest> ParseTallySendRequest(const Json& body);

// A path's id (referral, message, handoff, request): 32 hex digits.
Result<Bytes> IdOf(const std::string& field, const std::string& hex);

// ---- answers ----

struct ConsentRecorded {
  std::string grant_id;
  std::string case_ref;
  std::string local_case;
  UnixMillis expires_at_ms = 0;
  bool emergency_override = false;
};
Json ToJson(const ConsentRecorded& r);

// GET /v1/consents: one element.
Json GrantJson(const std::string& key, const schema::ConsentGrant& g, const GrantRecord& rec);

struct Sent {            // a workflow item and the message that carried it
  std::string id_field;  // "referral_id", "handoff_id", "request_id"
  std::string id;
  std::string message_id;
  std::string case_ref;
};
Json ToJson(const Sent& s);

// GET /v1/referrals: one element (the record and its case's local number).
Json ReferralJson(const ReferralRecord& r, const std::string& local_case);

struct HandoffAcked {
  std::string handoff_id;
  std::string lead;
  std::string message_id;
};
Json ToJson(const HandoffAcked& a);

struct DeletionReported {
  std::string request_id;
  uint64_t report_seq = 0;
  schema::DeletionCounts counts;
  std::vector<std::string> sent_to;
  std::string message_id;  // the first part's; empty when nothing changed
  uint64_t changed = 0;    // items whose status changed (the delta reported)
  uint64_t parts = 0;      // messages the report took (0: nothing changed, nothing sent)
};
Json ToJson(const DeletionReported& r);
// GET /v1/deletions: one element (counts from the items when no report gave them).
Json DeletionJson(const DeletionRecord& r);

// {"grant_id"|"case_ref": id, "notified": [...]}
Json NotifiedJson(const char* id_field, const std::string& id,
                  const std::vector<std::string>& notified);

// GET /v1/cases/{case_ref}: the case with its workflow items.
Json CaseJson(const CaseRecord& c, const std::vector<ReferralRecord>& referrals,
              const std::vector<HandoffRecord>& handoffs,
              const std::vector<DeletionRecord>& deletions, const TextReader& read);

Json InboxJson(std::vector<MessageRecord> messages);

// POST /v1/messages/{id}/open: the opened message, by kind.
Json OpenedJson(const std::string& message_id, const schema::EnvelopeHeader& header,
                const schema::CaseMessage& message);

// Counts of items per status (unknown statuses, "requested" included, are not counted).
schema::DeletionCounts CountsOf(const std::map<std::string, std::string>& items);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_ENGINE_REQUESTS_H_
