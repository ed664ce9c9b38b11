// Plain C++ types for case messages (the plaintext inside envelopes) and the signed
// statements agencies give their broker for the audit log. They mirror
// schema/proto/refbus/v1/workflow.proto; schema/codec.h turns bytes into them.
//
// Thread safety: plain values.
#ifndef REFBUS_SCHEMA_WORKFLOW_H_
#define REFBUS_SCHEMA_WORKFLOW_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/clock.h"
#include "schema/types.h"

namespace refbus::schema {

enum class ReferralState : int {
  kUnspecified = 0,
  kRequested = 1,
  kAccepted = 2,
  kDeclined = 3,
  kInProgress = 4,
  kOnHold = 5,
  kCompleted = 6,
  kCancelled = 7,
  kWithdrawn = 8,
};
enum class DeletionItemStatus : int {
  kUnspecified = 0,
  kReceived = 1,
  kNotified = 2,
  kRemoved = 3,
  kReappeared = 4,
  kWithdrawn = 5,
};
enum class RevocationReason : int {
  kUnspecified = 0,
  kWithdrawnBySubject = 1,
  kWithdrawnByGuardian = 2,
  kWithdrawnByRepresentative = 3,
  kRecordedInError = 4,
  kBasisEnded = 5,
};

std::string_view Name(ReferralState v);
std::string_view Name(DeletionItemStatus v);
std::string_view Name(RevocationReason v);
std::optional<ReferralState> ParseReferralState(std::string_view s);
std::optional<DeletionItemStatus> ParseDeletionItemStatus(std::string_view s);
std::optional<RevocationReason> ParseRevocationReason(std::string_view s);
std::optional<Purpose> ParsePurpose(std::string_view s);
std::optional<DataCategory> ParseDataCategory(std::string_view s);
std::optional<LegalBasis> ParseLegalBasis(std::string_view s);
std::optional<Consenter> ParseConsenter(std::string_view s);

// Limits checked by the codec.
inline constexpr size_t kMaxCaseFields = 256;
inline constexpr size_t kMaxFieldNameBytes = 64;
inline constexpr size_t kMaxFieldValueBytes = 16u << 10;
inline constexpr size_t kMaxReasonBytes = 512;
inline constexpr size_t kMaxOperatorRefBytes = 64;
inline constexpr size_t kMaxDeletionItems = 10000;  // one unchunked request; one report part
// Chunked deletion requests (PROTOCOL.md 10.1): the whole request, one chunk, and the
// chunks (and parts of a status report) one request may travel in.
inline constexpr size_t kMaxDeletionRequestItems = 100000;
inline constexpr size_t kMaxDeletionChunkItems = 5000;
inline constexpr size_t kMaxDeletionChunks = 1000;
inline constexpr size_t kMaxDeletionNoteBytes = 512;
inline constexpr size_t kMaxUrlBytes = 2048;
inline constexpr size_t kMaxCaseMessageBytes = 2u << 20;
inline constexpr size_t kWorkflowIdBytes = 16;  // referral, handoff and request ids

struct CaseField {
  DataCategory category = DataCategory::kUnspecified;
  std::string name;
  std::string value;
};

struct Referral {
  Bytes referral_id;
  std::string case_ref;
  std::string referring_agency;
  std::string to_agency;
  Purpose purpose = Purpose::kUnspecified;
  std::vector<CaseField> fields;
  Bytes signed_grant;  // serialized SignedConsentGrant
  std::string operator_ref;
  UnixMillis sent_at_ms = 0;
};

struct ReferralStateChange {
  Bytes referral_id;
  std::string case_ref;
  ReferralState from_state = ReferralState::kUnspecified;
  ReferralState to_state = ReferralState::kUnspecified;
  std::string reason;
  std::string operator_ref;
  UnixMillis changed_at_ms = 0;
};

struct Handoff {
  Bytes handoff_id;
  std::string case_ref;
  std::string from_lead;
  std::string to_lead;
  std::string reason;
  std::vector<CaseField> fields;
  Bytes signed_grant;
  std::string operator_ref;
  UnixMillis sent_at_ms = 0;
};

struct HandoffAck {
  Bytes handoff_id;
  std::string case_ref;
  bool accepted = false;
  std::string reason;
  std::string operator_ref;
  UnixMillis acked_at_ms = 0;
};

struct DeletionItem {
  std::string item_id;
  std::string url;
  Bytes content_sha256;  // 32 or empty
  std::string platform;
  std::string note;  // at most kMaxDeletionNoteBytes
  bool operator==(const DeletionItem&) const = default;
};

struct DeletionManifest {
  uint32_t item_count = 0;
  Bytes items_sha256;  // 32
  uint32_t chunk_count = 0;
  std::vector<Bytes> chunk_sha256;  // chunk_count entries of 32
  bool operator==(const DeletionManifest&) const = default;
};

struct DeletionRequest {
  Bytes request_id;
  std::string case_ref;
  std::vector<DeletionItem> items;
  bool monitor = false;
  std::vector<std::string> report_to;
  Bytes signed_grant;
  std::string operator_ref;
  UnixMillis sent_at_ms = 0;
  // Set: a chunk (chunk_index) of a chunked request; items are this chunk's.
  std::optional<DeletionManifest> manifest;
  uint32_t chunk_index = 0;
};

struct DeletionItemUpdate {
  std::string item_id;
  DeletionItemStatus status = DeletionItemStatus::kUnspecified;
  UnixMillis at_ms = 0;
};

struct DeletionCounts {
  uint32_t received = 0;
  uint32_t notified = 0;
  uint32_t removed = 0;
  uint32_t reappeared = 0;
  uint32_t withdrawn = 0;
  bool operator==(const DeletionCounts&) const = default;
};

struct DeletionStatusReport {
  Bytes request_id;
  std::string case_ref;
  std::vector<DeletionItemUpdate> updates;
  DeletionCounts counts;
  uint64_t report_seq = 0;
  uint32_t part_index = 0;
  uint32_t part_count = 1;  // 0 on the wire reads as 1
  uint32_t items_held = 0;
  bool list_complete = false;
  std::vector<uint32_t> missing_chunks;
};

struct AccessRecord {
  Bytes message_id;
  std::string case_ref;
  std::string agency_id;
  std::string operator_ref;
  UnixMillis opened_at_ms = 0;
  Bytes consent_grant_id;
  MessageKind kind = MessageKind::kUnspecified;
  std::string owner_agency;
};

struct ConsentRevocation {
  Bytes grant_id;
  std::string case_ref;
  std::string revoked_by;
  RevocationReason reason = RevocationReason::kUnspecified;
  UnixMillis revoked_at_ms = 0;
};

struct PurgeConfirmation {
  Bytes grant_id;
  std::string case_ref;
  std::string agency_id;
  UnixMillis purged_at_ms = 0;
  uint32_t messages_purged = 0;
  Bytes purged_ids_sha256;  // 32
};

// A deletion center's watch list between deletion centers (PROTOCOL.md 10.3): the signed
// file (full or delta), or a request for the recipient's full list. Never case data.
inline constexpr size_t kMaxWatchListFileBytes = 1536u << 10;
// A larger file travels as parts of kWatchListPartBytes (the last one shorter), at most
// kMaxWatchListParts of them: files up to kMaxWatchListPartedBytes.
inline constexpr size_t kWatchListPartBytes = 1u << 20;
inline constexpr uint32_t kMaxWatchListParts = 64;
inline constexpr uint64_t kMaxWatchListPartedBytes = uint64_t{kMaxWatchListParts} << 20;  // 64 MiB
struct WatchListPart {
  Bytes file_sha256;  // 32: SHA-256 of the whole file text
  uint32_t index = 0;
  uint32_t count = 0;
  uint64_t total_bytes = 0;
  Bytes data;  // exactly the bytes the index and total_bytes name
};
// Exactly one of: a file, a request (request_full), a part.
struct DeletionWatchList {
  std::string file;  // the signed file's JSON text; "" in a request or a part
  bool request_full = false;
  uint64_t held_version = 0;  // in a request: the version of the recipient's list held
  std::optional<WatchListPart> part;
};
// The bytes part `index` of a file of total_bytes holds (kWatchListPartBytes each, the last
// shorter), and how many parts such a file has.
uint64_t WatchListPartSize(uint64_t total_bytes, uint32_t index);
uint32_t WatchListPartCount(uint64_t total_bytes);

struct CaseClosed {
  std::string case_ref;
  std::string closed_by;
  std::string reason;
  std::string operator_ref;
  UnixMillis closed_at_ms = 0;
};

// An agency's escrow entry about one identifier of a case (PROTOCOL.md 13.6): the
// linkage::EscrowEntry, sent to the linkage-escrow party under the case's grant with
// purpose linkage. The escrow takes the depositing agency from the verified envelope's
// sender, never from a field here.
struct LinkageEntry {
  std::string case_ref;
  Bytes link_id;        // kWorkflowIdBytes: the agency's own id for the entry
  Bytes tag;            // 32
  Bytes y;              // 32
  Bytes sealed_record;  // nonce || ciphertext
  UnixMillis expires_ms = 0;
  Bytes signed_grant;  // the grant it travels under (the escrow answers under it)
  std::string operator_ref;
  UnixMillis sent_at_ms = 0;
};

// What the escrow tells a matched agency about one other agency's entry.
struct LinkedAgency {
  std::string agency_id;
  UnixMillis first_seen_ms = 0;
  UnixMillis last_seen_ms = 0;
  uint32_t victims = 0;
  uint32_t items = 0;
};

// The escrow's notice to a matched agency, under the grant that agency's entry came with.
struct LinkageNotice {
  std::string case_ref;
  Bytes linkage_id;             // 16
  std::string identifier_kind;  // linkage::KindName
  std::vector<LinkedAgency> others;
  UnixMillis matched_at_ms = 0;
};

// One linked agency's tally evidence about a linkage id (PROTOCOL.md 13.8), to another agency
// of the match under the sender's grant with purpose linkage. `evidence` is the evidence
// object of 13.7 as JSON text, checked by the receiver (keys/tally_bundle.h); the codec
// bounds its size only.
inline constexpr size_t kMaxLinkageEvidenceBytes = 256u << 10;
struct LinkageTallyEvidence {
  std::string case_ref;  // the sender's case (of its linkage notice)
  Bytes linkage_id;      // 16
  std::string evidence;  // 1..kMaxLinkageEvidenceBytes
  Bytes signed_grant;    // the grant it travels under
  std::string operator_ref;
  UnixMillis sent_at_ms = 0;
};

// A logged-in operator's signature over a record (workflow.proto OperatorSignature;
// keys/operator_signature.h signs and checks it).
struct OperatorSignature {
  std::string operator_ref;
  Bytes public_key;  // 32
  Bytes signature;   // 64
};

// A statement signed by an agency; `statement` holds the exact signed bytes.
struct SignedStatement {
  Bytes statement;
  Bytes signer_key_id;                                  // 16
  Bytes signature;                                      // 64
  std::optional<OperatorSignature> operator_signature;  // a logged-in operator's, or none
};

struct CaseMessage {
  enum class Type {
    kReferral,
    kStateChange,
    kHandoff,
    kHandoffAck,
    kDeletionRequest,
    kDeletionStatus,
    kAccessNotice,
    kConsentRevocation,
    kPurgeConfirmation,
    kCaseClosed,
    kLinkageEntry,
    kLinkageNotice,
    kDeletionWatchList,
    kLinkageTally,
  };
  uint32_t version = 1;
  Type type = Type::kReferral;
  // Exactly the member matching `type` is meaningful.
  Referral referral;
  ReferralStateChange state_change;
  Handoff handoff;
  HandoffAck handoff_ack;
  DeletionRequest deletion_request;
  DeletionStatusReport deletion_status;
  SignedStatement statement;  // access notice, consent revocation or purge confirmation
  CaseClosed case_closed;
  LinkageEntry linkage_entry;
  LinkageNotice linkage_notice;
  DeletionWatchList watch_list;
  LinkageTallyEvidence linkage_tally;
  // A logged-in operator's signature over the message's bytes before it (workflow.proto).
  // EncodeCaseMessage appends it last; DecodeCaseMessage sets operator_signed_bytes to the
  // exact bytes it covers (keys/operator_signature.h verifies).
  std::optional<OperatorSignature> operator_signature;
  Bytes operator_signed_bytes;  // decoded messages only
};

// The envelope kind that carries each CaseMessage type.
MessageKind KindOf(CaseMessage::Type type);

}  // namespace refbus::schema

#endif  // REFBUS_SCHEMA_WORKFLOW_H_
