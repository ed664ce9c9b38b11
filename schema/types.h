// Plain C++ domain types for everything refbus puts on the wire or on disk.
//
// These mirror the .proto messages in schema/proto/refbus/v1 but carry no protobuf
// types: only the codec (schema/codec*.cpp) sees generated code. Objects that are signed
// keep the exact bytes that were signed next to their decoded form (`*_bytes` members);
// those bytes are what is verified, stored and forwarded, never a re-encoding.
//
// Thread safety: plain values.
#ifndef REFBUS_SCHEMA_TYPES_H_
#define REFBUS_SCHEMA_TYPES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/clock.h"

namespace refbus::schema {

// Enumerations: values equal to the proto enum numbers.
enum class PartyKind : int {
  kUnspecified = 0,
  kAuthority = 1,
  kAgency = 2,
  kBroker = 3,
  kAuditor = 4
};
enum class AgencyType : int {
  kUnspecified = 0,
  kWeeCenter = 1,
  kPoliceUnit = 2,
  kCounselingCenter = 3,
  kDeletionCenter = 4,
  kSupportCenter = 5,
  kHotline = 6,
};
enum class Role : int {
  kUnspecified = 0,
  kRefer = 1,
  kReceive = 2,
  kDeletion = 3,
  kInvestigation = 4,
  kCaseLead = 5,
  kRelay = 6,
  kWitness = 7,
  kAudit = 8,
  kLinkageEvaluator = 9,
  kLinkageEscrow = 10,
};
enum class KeyState : int { kUnspecified = 0, kActive = 1, kRetired = 2, kRevoked = 3 };
enum class PartyStatus : int { kUnspecified = 0, kActive = 1, kRevoked = 2 };
enum class Purpose : int {
  kUnspecified = 0,
  kCounseling = 1,
  kDeletion = 2,
  kInvestigation = 3,
  kLegal = 4,
  kPsychological = 5,
  kFamily = 6,
  kEmergency = 7,
  kAcademic = 8,
  kLinkage = 9,
};
enum class DataCategory : int {
  kUnspecified = 0,
  kIdentity = 1,
  kContact = 2,
  kIncidentSummary = 3,
  kCounselingNotes = 4,
  kContentLocations = 5,
  kInvestigation = 6,
  kHealth = 7,
  kDeletionStatus = 8,
  kCaseStatus = 9,
};
enum class MessageKind : int {
  kUnspecified = 0,
  kReferral = 1,
  kReferralState = 2,
  kHandoff = 3,
  kHandoffAck = 4,
  kDeletionRequest = 5,
  kDeletionStatus = 6,
  kAccessNotice = 7,
  kConsentRevocation = 8,
  kPurgeConfirmation = 9,
  kCaseClosed = 10,
  kOpaque = 11,
  kLinkageEntry = 12,
  kLinkageNotice = 13,
  kDeletionWatchList = 14,
  kLinkageTally = 15,
};
// How many MessageKind values there are (for tables indexed by kind, such as metrics).
inline constexpr size_t kMessageKindCount = 16;
enum class LegalBasis : int {
  kUnspecified = 0,
  kConsentSubject = 1,
  kConsentLegalRepresentative = 2,
  kStatutoryProvision = 3,
  kMandatoryReport = 4,
  kPoliceNotifySupportCenter = 5,
  kDeletionSupport = 6,
  kPoliceDeletionRequest = 7,
  kInvestigationRequest = 8,
  kCourtOrder = 9,
  kEmergencyLifeSafety = 10,
};
enum class Consenter : int {
  kUnspecified = 0,
  kSubject = 1,
  kGuardian = 2,
  kLegalRepresentative = 3
};
enum class NackReason : int {
  kUnspecified = 0,
  kMalformed = 1,
  kTooLarge = 2,
  kSenderMismatch = 3,
  kUnknownRecipient = 4,
  kRevokedRecipient = 5,
  kBadSignature = 6,
  kExpired = 7,
  kQuotaExceeded = 8,
  kUnknownSenderKey = 9,
  kConsentOutOfScope = 10,
  kConsentExpired = 11,
  kConsentRevoked = 12,
  kStorageFull = 13,
  kUnsupportedVersion = 14,
  kInternal = 15,
  kNotPermitted = 16,
  kOutOfRange = 17,
  kIdReused = 18,
};
// How many NackReason values there are (for tables indexed by reason, such as metrics).
inline constexpr size_t kNackReasonCount = 19;
enum class KeyProtection : int { kUnspecified = 0, kNone = 1, kArgon2idXChaCha20Poly1305 = 2 };

// Readable names ("wee-center", "police-unit", ...) and their inverse for CLIs and tables.
std::string_view Name(PartyKind v);
std::string_view Name(AgencyType v);
std::string_view Name(Role v);
std::string_view Name(KeyState v);
std::string_view Name(PartyStatus v);
std::string_view Name(Purpose v);
std::string_view Name(DataCategory v);
std::string_view Name(MessageKind v);
std::string_view Name(LegalBasis v);
std::string_view Name(Consenter v);
std::string_view Name(NackReason v);
std::optional<PartyKind> ParsePartyKind(std::string_view s);
std::optional<AgencyType> ParseAgencyType(std::string_view s);
std::optional<Role> ParseRole(std::string_view s);

// Sizes fixed by the protocol.
inline constexpr size_t kPublicKeyBytes = 32;  // Ed25519 and X25519 public keys
inline constexpr size_t kSignatureBytes = 64;  // Ed25519
inline constexpr size_t kKeyIdBytes = 16;      // PROTOCOL.md "Key ids"
inline constexpr size_t kMessageIdBytes = 16;
inline constexpr size_t kGrantIdBytes = 16;
inline constexpr size_t kNonceBytes = 24;  // XChaCha20-Poly1305
inline constexpr size_t kCommitmentBytes = 32;
inline constexpr size_t kWrappedKeyBytes = 48;  // 32-byte key + 16-byte tag

// Size limits, checked before any parsing.
inline constexpr size_t kMaxFrameBytes = 4u << 20;     // one transport frame
inline constexpr size_t kMaxEnvelopeBytes = 4u << 20;  // one sealed envelope
inline constexpr size_t kMaxDirectoryBytes = 16u << 20;
inline constexpr size_t kMaxRecordBytes = 64u << 10;  // party record, grant, key file
inline constexpr size_t kMaxRecipients = 64;
// Audit queries (PROTOCOL.md section 11): items per AuditReply, and the bytes of entries or
// notes a broker puts in one reply (well under kMaxFrameBytes with protobuf's overhead).
inline constexpr uint32_t kMaxAuditEntriesPerReply = 4096;
inline constexpr uint32_t kMaxAuditCheckpointsPerReply = 1024;
inline constexpr size_t kMaxAuditReplyPayloadBytes = 3u << 20;
inline constexpr size_t kMaxAuditNoteBytes = 16u << 10;  // as keys::kMaxNoteBytes
inline constexpr size_t kMaxAuditProofHashes = 128;      // 2 x the deepest tree
inline constexpr size_t kAuditHashBytes = 32;            // SHA-256
// Witnessing (PROTOCOL.md section 11.3).
inline constexpr size_t kMaxCosignatureLineBytes = 1024;  // one "— name base64\n" line
inline constexpr size_t kMaxWitnessDetailBytes = 4096;

// --- Directory ------------------------------------------------------------------------

struct Prekey {
  std::string owner_id;
  Bytes public_key;  // 32
  UnixMillis not_before_ms = 0;
  UnixMillis not_after_ms = 0;
};

struct SignedPrekey {
  Bytes prekey_bytes;  // serialized Prekey as signed
  Prekey prekey;       // decoded from prekey_bytes
  Bytes signature;     // 64
};

struct KeyRecord {
  Bytes signing_key;    // Ed25519, 32
  Bytes transport_key;  // X25519 (CURVE), 32; empty for the authority
  std::vector<SignedPrekey> prekeys;
  KeyState state = KeyState::kActive;
  UnixMillis state_since_ms = 0;
  Bytes linkage_key;  // ristretto255, 32; linkage evaluators only (PROTOCOL.md 13.3)
};

struct Party {
  std::string id;
  PartyKind kind = PartyKind::kUnspecified;
  std::string display_name;
  AgencyType agency_type = AgencyType::kUnspecified;
  std::string region;
  std::string home_broker;
  std::vector<Role> roles;
  std::vector<KeyRecord> keys;  // newest first
  UnixMillis valid_from_ms = 0;
  UnixMillis valid_until_ms = 0;  // 0: until revoked
  PartyStatus status = PartyStatus::kActive;
  UnixMillis status_since_ms = 0;
  std::string endpoint;

  bool HasRole(Role r) const;
  // The ACTIVE key generation, or nullptr.
  const KeyRecord* ActiveKeys() const;
};

struct Directory {
  uint32_t format_version = 1;
  std::string federation;
  uint64_t serial = 0;
  UnixMillis issued_at_ms = 0;
  UnixMillis expires_at_ms = 0;
  std::vector<Party> agencies;
  std::vector<Party> brokers;
  std::vector<Party> auditors;

  // Any party by id, or nullptr; if an id repeats (the decoder refuses that), the first in
  // the order agencies, brokers, auditors. After BuildIndex, an id that is present is
  // found in O(log n) (the broker looks parties up for every frame and envelope); an id
  // that is absent, or a directory changed after BuildIndex, costs a scan of every party,
  // so (ids being unique) the answer never depends on whether the index is current.
  const Party* Find(std::string_view id) const;

  // Indexes the parties by id for Find. The decoder and keys::NextDirectory call it; call
  // it again after changing the lists. The index holds hashes and positions, never
  // pointers: a copied or moved Directory finds the parties in its own lists.
  void BuildIndex();
  // How many parties the index holds (0 before BuildIndex).
  size_t IndexedParties() const { return index_.size(); }

 private:
  struct IndexEntry {
    size_t id_hash = 0;
    uint32_t list = 0;  // 0 agencies, 1 brokers, 2 auditors
    uint32_t pos = 0;
  };
  const std::vector<Party>& List(uint32_t list) const;
  const Party* ScanFor(std::string_view id) const;

  std::vector<IndexEntry> index_;  // sorted by id_hash, then list and pos
};

struct SignedDirectory {
  Bytes directory_bytes;  // serialized Directory as signed
  Directory directory;    // decoded from directory_bytes
  Bytes authority_key_id;
  Bytes signature;
};

struct PartyRecord {
  uint32_t format_version = 1;
  Party party;
  UnixMillis created_at_ms = 0;
};

struct SignedPartyRecord {
  Bytes record_bytes;
  PartyRecord record;
  Bytes signature;
  Bytes previous_key_signature;  // empty for a new party
};

// --- Consent --------------------------------------------------------------------------

struct Countersignature {
  std::string operator_ref;
  Bytes public_key;
  Bytes signature;
};

struct ConsentGrant {
  uint32_t format_version = 1;
  Bytes grant_id;  // 16
  std::string case_ref;
  std::string recorded_by;
  LegalBasis basis = LegalBasis::kUnspecified;
  std::string legal_article;
  std::vector<Consenter> consenters;
  bool subject_assent = false;
  std::vector<Purpose> purposes;
  std::vector<DataCategory> categories;
  std::vector<std::string> allowed_recipients;
  std::vector<AgencyType> allowed_agency_types;
  bool onward_sharing = false;
  UnixMillis issued_at_ms = 0;
  UnixMillis expires_at_ms = 0;
  UnixMillis retention_until_ms = 0;
  bool emergency_override = false;
  bool representative_conflict = false;
};

struct SignedConsentGrant {
  Bytes grant_bytes;
  ConsentGrant grant;
  Bytes signer_key_id;
  Bytes signature;
  std::vector<Countersignature> countersignatures;
};

// --- Envelope -------------------------------------------------------------------------

struct RecipientKey {
  std::string agency_id;
  Bytes prekey_id;    // 16
  Bytes wrapped_key;  // 48
};

struct EnvelopeHeader {
  uint32_t version = 1;
  Bytes message_id;  // 16
  MessageKind kind = MessageKind::kUnspecified;
  std::string sender_id;
  Bytes sender_key_id;  // 16
  std::vector<RecipientKey> recipients;
  std::string case_ref;
  Bytes consent_grant_id;
  Purpose purpose = Purpose::kUnspecified;
  std::vector<DataCategory> categories;
  UnixMillis created_at_ms = 0;
  UnixMillis expires_at_ms = 0;
  Bytes ephemeral_key;   // 32
  Bytes content_nonce;   // 24
  Bytes key_commitment;  // 32
};

struct SealedEnvelope {
  Bytes header_bytes;  // serialized EnvelopeHeader as signed
  EnvelopeHeader header;
  Bytes ciphertext;
  Bytes signature;  // 64
};

// --- Transport ------------------------------------------------------------------------

struct Hello {
  std::string party_id;
  uint64_t directory_serial = 0;
  std::string software;
};
struct Welcome {
  std::string broker_id;
  uint64_t directory_serial = 0;
  uint32_t max_frame_bytes = 0;
};
struct Submit {
  Bytes envelope;  // serialized SealedEnvelope
};
struct Deliver {
  Bytes envelope;
  uint32_t attempt = 0;
};
struct Ack {
  Bytes message_id;
  bool duplicate = false;
  std::string latest_checkpoint;  // signed note, empty or 1..kMaxAuditNoteBytes (unverified)
};
struct Nack {
  Bytes message_id;
  NackReason reason = NackReason::kUnspecified;
  std::string detail;
  uint32_t retry_after_ms = 0;
};
struct DirectoryFetch {
  uint64_t have_serial = 0;
};
struct DirectoryReply {
  Bytes signed_directory;
};
struct GrantRegister {
  Bytes signed_grant;  // serialized SignedConsentGrant
};
struct GrantRevoke {
  Bytes signed_revocation;  // serialized SignedStatement of a ConsentRevocation
};
struct Attest {
  Bytes signed_access;  // serialized SignedStatement of an AccessRecord, or empty
  Bytes signed_purge;   // serialized SignedStatement of a PurgeConfirmation, or empty
};
// Auditor queries and their reply (transport.proto).
struct AuditEntriesQuery {
  uint64_t from_index = 0;
  uint32_t max = 0;  // 1..kMaxAuditEntriesPerReply
};
struct AuditProofQuery {
  uint64_t index = 0;
  uint64_t tree_size = 0;  // > index
};
struct AuditConsistencyQuery {
  uint64_t old_size = 0;
  uint64_t new_size = 0;  // >= old_size
};
struct AuditCheckpointsQuery {
  uint64_t from_size = 0;
  uint32_t max = 0;  // 1..kMaxAuditCheckpointsPerReply
};
struct AuditReply {
  std::vector<std::string> checkpoints;  // signed notes
  std::vector<Bytes> entries;            // stored entry bytes from first_index
  uint64_t first_index = 0;
  std::vector<Bytes> hashes;  // proof hashes, kAuditHashBytes each
  uint64_t log_size = 0;
  bool more = false;
};

// Witnessing (transport.proto, PROTOCOL.md section 11.3).
enum class WitnessRefusal : int {
  kNone = 0,  // cosigned
  kConflict = 1,
  kUnknownLog = 2,
  kBadSignature = 3,
  kBadRequest = 4,
  kInconsistent = 5,
};
std::string_view Name(WitnessRefusal v);

struct WitnessRequest {
  std::string checkpoint;  // signed note, 1..kMaxAuditNoteBytes
  uint64_t old_size = 0;
  std::vector<Bytes> consistency_proof;  // kAuditHashBytes each, at most kMaxAuditProofHashes
};
struct WitnessReply {
  std::string cosignature;  // one signature line when refusal is kNone; empty otherwise
  WitnessRefusal refusal = WitnessRefusal::kNone;
  std::string detail;
  uint64_t witness_size = 0;
};
struct AddCosignature {
  std::string checkpoint;  // signed note with the witness's cosignature line
};
// Broker to broker (schema/PROTOCOL.md section 12).
inline constexpr uint32_t kMaxRelayHops = 16;  // what a frame may claim; brokers set lower
struct Relay {
  Bytes envelope;                           // 1..kMaxEnvelopeBytes
  Bytes signed_grant;                       // empty, or 1..kMaxRecordBytes
  uint32_t hops = 0;                        // at most kMaxRelayHops
  std::vector<std::string> for_recipients;  // 1..kMaxRecipients valid party ids, no repeats
  // Set instead of the envelope (the others empty): a consent revocation, 1..kMaxRecordBytes.
  Bytes signed_revocation;
  // Or instead of both: a published prekey (serialized SignedPrekey), 1..kMaxSignedPrekeyBytes.
  Bytes signed_prekey;
};
inline constexpr size_t kMaxSignedPrekeyBytes = 1024;
struct PrekeyUpdate {
  Bytes signed_prekey;  // serialized SignedPrekey, 1..kMaxSignedPrekeyBytes (unverified)
};

// Operator roster publication (PROTOCOL.md 9.3). The roster travels whole inside one audit
// entry (kMaxRecordBytes): 48 KiB hold about 280 operators.
inline constexpr size_t kMaxSignedRosterBytes = 48u << 10;
struct RosterUpdate {
  Bytes signed_roster;  // the agency's roster file, 1..kMaxSignedRosterBytes (unverified)
};

// Linkage evaluation (PROTOCOL.md 13.4): sizes are exact, checked by the codec.
inline constexpr size_t kLinkageElementBytes = 32;  // ristretto255 encoding
inline constexpr size_t kLinkageProofBytes = 64;    // c || s
struct LinkageEvaluate {
  Bytes blinded_element;  // kLinkageElementBytes (not checked to be a valid element here)
};
struct LinkageEvaluated {
  Bytes evaluated_element;  // kLinkageElementBytes
  Bytes proof;              // kLinkageProofBytes
};

// Linkage tallies (PROTOCOL.md 13.7): either signed_tally (record it), or entry_index and
// tally_sha256 (prove the agency's own earlier entry again); the codec admits only these.
inline constexpr size_t kMaxSignedTallyBytes = 4096;
struct LinkageTallyFrame {
  Bytes signed_tally;  // 0 or 1..kMaxSignedTallyBytes (unverified)
  uint64_t entry_index = 0;
  Bytes tally_sha256;  // empty with signed_tally, else 32 bytes
};

struct Frame {
  enum class Type {
    kHello,
    kWelcome,
    kSubmit,
    kDeliver,
    kAck,
    kNack,
    kDirectoryFetch,
    kDirectoryReply,
    kGrantRegister,
    kGrantRevoke,
    kAttest,
    kAuditCheckpoint,
    kAuditEntries,
    kAuditProof,
    kAuditConsistency,
    kAuditCheckpoints,
    kAuditReply,
    kWitnessRequest,
    kWitnessReply,
    kAddCosignature,
    kRelay,
    kPrekeyUpdate,
    kLinkageEvaluate,
    kLinkageEvaluated,
    kRosterUpdate,
    kLinkageTally,
  };
  // The auditor queries (kAuditCheckpoint .. kAuditCheckpoints).
  bool IsAuditQuery() const {
    return type >= Type::kAuditCheckpoint && type <= Type::kAuditCheckpoints;
  }
  uint32_t version = 1;
  uint64_t request_id = 0;
  Type type = Type::kHello;
  // Exactly the member matching `type` is meaningful.
  Hello hello;
  Welcome welcome;
  Submit submit;
  Deliver deliver;
  Ack ack;
  Nack nack;
  DirectoryFetch directory_fetch;
  DirectoryReply directory_reply;
  GrantRegister grant_register;
  GrantRevoke grant_revoke;
  Attest attest;
  AuditEntriesQuery audit_entries;
  AuditProofQuery audit_proof;
  AuditConsistencyQuery audit_consistency;
  AuditCheckpointsQuery audit_checkpoints;
  AuditReply audit_reply;
  WitnessRequest witness_request;
  WitnessReply witness_reply;
  AddCosignature add_cosignature;
  Relay relay;
  PrekeyUpdate prekey_update;
  LinkageEvaluate linkage_evaluate;
  LinkageEvaluated linkage_evaluated;
  RosterUpdate roster_update;
  LinkageTallyFrame linkage_tally;
};

// --- Audit log ------------------------------------------------------------------------

enum class AuditEvent : int {
  kUnspecified = 0,
  kEnvelopeAccepted = 1,
  kEnvelopeRejected = 2,
  kEnvelopeForwarded = 3,
  kEnvelopeDelivered = 4,
  kEnvelopeAcked = 5,
  kEnvelopeOpened = 6,
  kConsentGranted = 7,
  kConsentRevoked = 8,
  kPurgeConfirmed = 9,
  kDirectoryLoaded = 10,
  kKeyRevoked = 11,
  kAuditorQuery = 12,
  kBrokerStarted = 13,
  kEnvelopeExpired = 14,
  kWitnessRefused = 15,
  kEnvelopeRerouted = 16,
  kEnvelopeQuarantined = 17,
  kPrekeyPublished = 18,
  kLinkageEvaluation = 19,
  kOperatorRoster = 20,
  kLinkageTally = 21,
};
std::string_view Name(AuditEvent v);

struct AuditEntry {
  uint32_t version = 1;
  uint64_t index = 0;
  UnixMillis time_ms = 0;
  AuditEvent event = AuditEvent::kUnspecified;
  std::string broker_id;
  std::string actor;
  Bytes message_id;
  std::string sender_id;
  std::vector<std::string> recipients;
  std::string case_ref;
  Bytes consent_grant_id;
  MessageKind kind = MessageKind::kUnspecified;
  Purpose purpose = Purpose::kUnspecified;
  Bytes envelope_sha256;
  NackReason reason = NackReason::kUnspecified;
  uint64_t directory_serial = 0;
  std::string detail;
  uint64_t envelope_bytes = 0;
  Bytes statement_sha256;
  std::string operator_ref;
  bool emergency_override = false;
  // An aggregate of refusals (audit.proto): how many it covers (0: the entry is one refusal,
  // its own), and the times of the first and the last.
  uint64_t refusal_count = 0;
  UnixMillis first_refused_ms = 0;
  UnixMillis last_refused_ms = 0;
  // A logged-in operator's signature over operator_statement (audit.proto): all three
  // empty for the service account and for entries no operator caused.
  Bytes operator_public_key;  // 32
  Bytes operator_signature;   // 64
  Bytes operator_statement;   // the exact AccessRecord / ConsentRevocation bytes signed
  Bytes signed_roster;        // OPERATOR_ROSTER: the agency's signed roster file
  // How many refusals the entry stands for (1 for every entry but an aggregate).
  uint64_t Refusals() const { return refusal_count == 0 ? 1 : refusal_count; }
};

// --- Key files ------------------------------------------------------------------------

struct SecretKeyFile {
  uint32_t format_version = 1;
  std::string party_id;
  PartyKind kind = PartyKind::kUnspecified;
  KeyProtection protection = KeyProtection::kUnspecified;
  Bytes kdf_salt;
  uint64_t kdf_opslimit = 0;
  uint64_t kdf_memlimit = 0;
  Bytes nonce;
  // The secret bundle (plain for kNone). Callers that read it copy it into locked memory
  // and then call WipePayload(); see keys/keyfile.h.
  Bytes payload;
  Bytes checksum;

  void WipePayload();
};

}  // namespace refbus::schema

#endif  // REFBUS_SCHEMA_TYPES_H_
