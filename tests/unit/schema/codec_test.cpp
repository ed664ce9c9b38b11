// Tests for schema/codec.h: round trips of every wire and file type, and refusal of
// malformed, truncated, oversized and random input without crashing.
//
// Tests do not include *.pb.h: hand-made protobuf bytes use the wire format directly
// (tag = field << 3 | wire type; varint 0, length-delimited 2). A scalar field appended to
// a valid encoding overrides the earlier value (last one wins), a message field appended is
// merged into the earlier one, and a repeated field appended adds an element.
#include "schema/codec.h"

#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "tests/unit/test_util.h"

namespace refbus::schema {
namespace {

using test::HasCode;
using test::HasError;
using test::HasSubstr;
using test::IsOk;
using Code = Status::Code;

constexpr UnixMillis kT = 1'780'000'000'000;  // a fixed time in 2026

// ---- Raw protobuf wire format ----

void PutVarint(Bytes& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}
void PutVarintField(Bytes& out, uint32_t field, uint64_t v) {
  PutVarint(out, uint64_t{field} << 3);
  PutVarint(out, v);
}
void PutLenField(Bytes& out, uint32_t field, ByteView v) {
  PutVarint(out, (uint64_t{field} << 3) | 2);
  PutVarint(out, v.size());
  Append(out, v);
}
Bytes Concat(ByteView a, ByteView b) {
  Bytes out(a.begin(), a.end());
  Append(out, b);
  return out;
}

// ---- Valid objects ----

Bytes Fill(size_t n, uint8_t v) { return Bytes(n, v); }

EnvelopeHeader ValidHeader() {
  EnvelopeHeader h;
  h.message_id = Fill(kMessageIdBytes, 0x11);
  h.kind = MessageKind::kReferral;
  h.sender_id = "agency-a";
  h.sender_key_id = Fill(kKeyIdBytes, 0x22);
  h.recipients = {{"agency-b", Fill(kKeyIdBytes, 0x33), Fill(kWrappedKeyBytes, 0x44)},
                  {"agency-c", Fill(kKeyIdBytes, 0x35), Fill(kWrappedKeyBytes, 0x45)}};
  h.case_ref = "CASE-2026-0001";
  h.consent_grant_id = Fill(kGrantIdBytes, 0x55);
  h.purpose = Purpose::kCounseling;
  h.categories = {DataCategory::kIdentity, DataCategory::kIncidentSummary};
  h.created_at_ms = kT;
  h.expires_at_ms = kT + kMillisPerDay;
  h.ephemeral_key = Fill(kPublicKeyBytes, 0x66);
  h.content_nonce = Fill(kNonceBytes, 0x77);
  h.key_commitment = Fill(kCommitmentBytes, 0x88);
  return h;
}

SealedEnvelope ValidEnvelope() {
  SealedEnvelope e;
  e.header = ValidHeader();
  e.header_bytes = EncodeEnvelopeHeader(e.header);
  e.ciphertext = Fill(40, 0x99);
  e.signature = Fill(kSignatureBytes, 0xaa);
  return e;
}

SignedPrekey MakeSignedPrekey(const std::string& owner, uint8_t seed) {
  SignedPrekey sp;
  sp.prekey = Prekey{owner, Fill(kPublicKeyBytes, seed), kT, kT + 30 * kMillisPerDay};
  sp.prekey_bytes = EncodePrekey(sp.prekey);
  sp.signature = Fill(kSignatureBytes, static_cast<uint8_t>(seed + 1));
  return sp;
}

Party ValidAgency(const std::string& id, uint8_t seed) {
  Party p;
  p.id = id;
  p.kind = PartyKind::kAgency;
  p.display_name = "Agency " + id;
  p.agency_type = AgencyType::kPoliceUnit;
  p.region = "seoul";
  p.home_broker = "broker-seoul";
  p.roles = {Role::kRefer, Role::kReceive, Role::kInvestigation};
  KeyRecord active;
  active.signing_key = Fill(kPublicKeyBytes, seed);
  active.transport_key = Fill(kPublicKeyBytes, static_cast<uint8_t>(seed + 1));
  active.prekeys = {MakeSignedPrekey(id, static_cast<uint8_t>(seed + 2)),
                    MakeSignedPrekey(id, static_cast<uint8_t>(seed + 3))};
  active.state = KeyState::kActive;
  active.state_since_ms = kT;
  KeyRecord retired;
  retired.signing_key = Fill(kPublicKeyBytes, static_cast<uint8_t>(seed + 4));
  retired.transport_key = Fill(kPublicKeyBytes, static_cast<uint8_t>(seed + 5));
  retired.state = KeyState::kRetired;
  retired.state_since_ms = kT - 1;
  p.keys = {active, retired};
  p.valid_from_ms = kT - 1000;
  p.valid_until_ms = 0;
  p.status = PartyStatus::kActive;
  p.status_since_ms = kT - 1000;
  return p;
}

Party ValidBroker(const std::string& id, uint8_t seed) {
  Party p;
  p.id = id;
  p.kind = PartyKind::kBroker;
  p.display_name = "Broker " + id;
  p.region = "seoul";
  p.roles = {Role::kRelay, Role::kWitness};
  KeyRecord k;
  k.signing_key = Fill(kPublicKeyBytes, seed);
  k.transport_key = Fill(kPublicKeyBytes, static_cast<uint8_t>(seed + 1));
  k.state = KeyState::kActive;
  k.state_since_ms = kT;
  p.keys = {k};
  p.status = PartyStatus::kActive;
  p.endpoint = "tcp://broker.seoul.example:7450";
  return p;
}

Party ValidAuditor(const std::string& id, uint8_t seed) {
  Party p = ValidBroker(id, seed);
  p.kind = PartyKind::kAuditor;
  p.roles = {Role::kAudit, Role::kWitness};
  p.endpoint.clear();
  return p;
}

Directory ValidDirectory() {
  Directory d;
  d.federation = "test-federation";
  d.serial = 7;
  d.issued_at_ms = kT;
  d.expires_at_ms = kT + 30 * kMillisPerDay;
  d.agencies = {ValidAgency("agency-a", 0x10), ValidAgency("agency-b", 0x20)};
  d.brokers = {ValidBroker("broker-seoul", 0x30)};
  d.auditors = {ValidAuditor("auditor-1", 0x40)};
  return d;
}

SignedDirectory ValidSignedDirectory() {
  SignedDirectory sd;
  sd.directory = ValidDirectory();
  sd.directory_bytes = EncodeDirectory(sd.directory);
  sd.authority_key_id = Fill(kKeyIdBytes, 0x50);
  sd.signature = Fill(kSignatureBytes, 0x51);
  return sd;
}

PartyRecord ValidPartyRecord() {
  PartyRecord r;
  r.party = ValidAgency("agency-a", 0x10);
  r.party.keys.resize(1);
  r.created_at_ms = kT;
  return r;
}

SignedPartyRecord ValidSignedPartyRecord() {
  SignedPartyRecord s;
  s.record = ValidPartyRecord();
  s.record_bytes = EncodePartyRecord(s.record);
  s.signature = Fill(kSignatureBytes, 0x61);
  s.previous_key_signature = Fill(kSignatureBytes, 0x62);
  return s;
}

ConsentGrant ValidGrant() {
  ConsentGrant g;
  g.grant_id = Fill(kGrantIdBytes, 0x70);
  g.case_ref = "CASE-2026-0001";
  g.recorded_by = "agency-a";
  g.basis = LegalBasis::kConsentLegalRepresentative;
  g.legal_article = "PIPA 22-2";
  g.consenters = {Consenter::kGuardian, Consenter::kLegalRepresentative};
  g.subject_assent = true;
  g.purposes = {Purpose::kCounseling, Purpose::kDeletion};
  g.categories = {DataCategory::kContact, DataCategory::kContentLocations};
  g.allowed_recipients = {"agency-b", "agency-c"};
  g.allowed_agency_types = {AgencyType::kDeletionCenter};
  g.onward_sharing = true;
  g.issued_at_ms = kT;
  g.expires_at_ms = kT + 90 * kMillisPerDay;
  g.retention_until_ms = kT + 365 * kMillisPerDay;
  g.emergency_override = true;
  g.representative_conflict = true;
  return g;
}

SignedConsentGrant ValidSignedGrant() {
  SignedConsentGrant s;
  s.grant = ValidGrant();
  s.grant_bytes = EncodeConsentGrant(s.grant);
  s.signer_key_id = Fill(kKeyIdBytes, 0x71);
  s.signature = Fill(kSignatureBytes, 0x72);
  s.countersignatures = {{"operator-7", Fill(kPublicKeyBytes, 0x73), Fill(kSignatureBytes, 0x74)}};
  return s;
}

SecretKeyFile ValidKeyFile(KeyProtection protection) {
  SecretKeyFile f;
  f.party_id = "agency-a";
  f.kind = PartyKind::kAgency;
  f.protection = protection;
  if (protection == KeyProtection::kArgon2idXChaCha20Poly1305) {
    f.kdf_salt = Fill(16, 0x81);
    f.kdf_opslimit = 2;
    f.kdf_memlimit = 64u << 20;
    f.nonce = Fill(kNonceBytes, 0x82);
    f.payload = Fill(200, 0x83);
  } else {
    f.payload = Fill(180, 0x84);
    f.checksum = Fill(32, 0x85);
  }
  return f;
}

Frame FrameOf(Frame::Type type) {
  Frame f;
  f.request_id = (uint64_t{1} << 63) + 5;
  f.type = type;
  switch (type) {
    case Frame::Type::kHello:
      f.hello = {"agency-a", 12, "refbus-agent 0.1.0"};
      break;
    case Frame::Type::kWelcome:
      f.welcome = {"broker-seoul", 13, 4u << 20};
      break;
    case Frame::Type::kSubmit:
      f.submit.envelope = EncodeEnvelope(ValidEnvelope());
      break;
    case Frame::Type::kDeliver:
      f.deliver = {EncodeEnvelope(ValidEnvelope()), 3};
      break;
    case Frame::Type::kAck:
      f.ack = {Fill(kMessageIdBytes, 0x91), true, "refbus/fed/seoul-broker\n12\nroot\n"};
      break;
    case Frame::Type::kNack:
      f.nack = {Fill(kMessageIdBytes, 0x92), NackReason::kQuotaExceeded, "mailbox full", 1500};
      break;
    case Frame::Type::kDirectoryFetch:
      f.directory_fetch.have_serial = 41;
      break;
    case Frame::Type::kDirectoryReply:
      f.directory_reply.signed_directory = EncodeSignedDirectory(ValidSignedDirectory());
      break;
    case Frame::Type::kGrantRegister:
      f.grant_register.signed_grant = Fill(90, 0x93);
      break;
    case Frame::Type::kGrantRevoke:
      f.grant_revoke.signed_revocation = Fill(91, 0x94);
      break;
    case Frame::Type::kAttest:
      f.attest.signed_purge = Fill(92, 0x95);
      break;
    case Frame::Type::kAuditCheckpoint:
      break;
    case Frame::Type::kAuditEntries:
      f.audit_entries = {17, 4096};
      break;
    case Frame::Type::kAuditProof:
      f.audit_proof = {3, 9};
      break;
    case Frame::Type::kAuditConsistency:
      f.audit_consistency = {4, 9};
      break;
    case Frame::Type::kAuditCheckpoints:
      f.audit_checkpoints = {2, 1024};
      break;
    case Frame::Type::kAuditReply:
      f.audit_reply.checkpoints = {"refbus/f/b\n9\nAAAA\n\n\u2014 refbus/f/b AAAA\n"};
      f.audit_reply.entries = {Fill(40, 0x96), Fill(41, 0x97)};
      f.audit_reply.first_index = 7;
      f.audit_reply.hashes = {Fill(32, 0x98), Fill(32, 0x99)};
      f.audit_reply.log_size = 9;
      f.audit_reply.more = true;
      break;
    case Frame::Type::kWitnessRequest:
      f.witness_request.checkpoint = "refbus/f/b\n9\nAAAA\n\n\u2014 refbus/f/b AAAA\n";
      f.witness_request.old_size = 4;
      f.witness_request.consistency_proof = {Fill(32, 0x9a), Fill(32, 0x9b)};
      break;
    case Frame::Type::kWitnessReply:
      f.witness_reply.cosignature = "\u2014 refbus/f/witness/w AAAA\n";
      f.witness_reply.detail = "cosigned";
      f.witness_reply.witness_size = 9;
      break;
    case Frame::Type::kAddCosignature:
      f.add_cosignature.checkpoint = "refbus/f/b\n9\nAAAA\n\n\u2014 refbus/f/b AAAA\n";
      break;
    case Frame::Type::kRelay:
      f.relay.envelope = Fill(300, 0x44);
      f.relay.signed_grant = Fill(90, 0x45);
      f.relay.hops = 2;
      f.relay.for_recipients = {"busan-dsc", "busan-police"};
      break;
    case Frame::Type::kPrekeyUpdate:
      f.prekey_update.signed_prekey = Fill(120, 0x46);
      break;
    case Frame::Type::kLinkageEvaluate:
      f.linkage_evaluate.blinded_element = Fill(kLinkageElementBytes, 0x47);
      break;
    case Frame::Type::kRosterUpdate:
      f.roster_update.signed_roster = Fill(300, 0x4a);
      break;
    case Frame::Type::kLinkageEvaluated:
      f.linkage_evaluated.evaluated_element = Fill(kLinkageElementBytes, 0x48);
      f.linkage_evaluated.proof = Fill(kLinkageProofBytes, 0x49);
      break;
    case Frame::Type::kLinkageTally:
      f.linkage_tally.signed_tally = Fill(400, 0x4b);
      break;
  }
  return f;
}

const std::vector<Frame::Type>& AllFrameTypes() {
  static const std::vector<Frame::Type> kTypes = {
      Frame::Type::kHello,
      Frame::Type::kWelcome,
      Frame::Type::kSubmit,
      Frame::Type::kDeliver,
      Frame::Type::kAck,
      Frame::Type::kNack,
      Frame::Type::kDirectoryFetch,
      Frame::Type::kDirectoryReply,
      Frame::Type::kGrantRegister,
      Frame::Type::kGrantRevoke,
      Frame::Type::kAttest,
      Frame::Type::kAuditCheckpoint,
      Frame::Type::kAuditEntries,
      Frame::Type::kAuditProof,
      Frame::Type::kAuditConsistency,
      Frame::Type::kAuditCheckpoints,
      Frame::Type::kAuditReply,
      Frame::Type::kWitnessRequest,
      Frame::Type::kWitnessReply,
      Frame::Type::kAddCosignature,
      Frame::Type::kRelay,
      Frame::Type::kPrekeyUpdate,
      Frame::Type::kLinkageEvaluate,
      Frame::Type::kLinkageEvaluated,
      Frame::Type::kRosterUpdate,
      Frame::Type::kLinkageTally,
  };
  return kTypes;
}

// Every decoder, as a function returning only its Status, for loops over hostile input.
struct NamedDecoder {
  std::string name;
  std::function<Status(ByteView)> decode;
};

template <typename Fn>
std::function<Status(ByteView)> StatusOnly(Fn fn) {
  return [fn](ByteView b) { return fn(b).status(); };
}

const std::vector<NamedDecoder>& AllDecoders() {
  static const std::vector<NamedDecoder> kDecoders = {
      {"frame", StatusOnly(DecodeFrame)},
      {"envelope header", StatusOnly(DecodeEnvelopeHeader)},
      {"envelope", StatusOnly(DecodeEnvelope)},
      {"prekey", StatusOnly(DecodePrekey)},
      {"signed prekey", StatusOnly(DecodeSignedPrekey)},
      {"directory", StatusOnly(DecodeDirectory)},
      {"signed directory", StatusOnly(DecodeSignedDirectory)},
      {"party record", StatusOnly(DecodePartyRecord)},
      {"signed party record", StatusOnly(DecodeSignedPartyRecord)},
      {"consent grant", StatusOnly(DecodeConsentGrant)},
      {"signed consent grant", StatusOnly(DecodeSignedConsentGrant)},
      {"secret key file", StatusOnly(DecodeSecretKeyFile)},
  };
  return kDecoders;
}

::testing::AssertionResult OkOrRefused(const Status& s) {
  if (s.ok() || s.code() == Code::kMalformed || s.code() == Code::kResourceExhausted) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "unexpected status " << s.ToString();
}

// A LinkageTally frame is a tally to record or a proof to give again: never both, never
// neither, and the sizes exact.
TEST(FrameCodecTest, LinkageTallyIsOneFormOrTheOther) {
  Frame proof;
  proof.type = Frame::Type::kLinkageTally;
  proof.linkage_tally.entry_index = 42;
  proof.linkage_tally.tally_sha256 = Fill(32, 0x07);
  auto back = DecodeFrame(EncodeFrame(proof));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->linkage_tally.entry_index, 42u);
  EXPECT_TRUE(back->linkage_tally.signed_tally.empty());
  Frame both = proof;
  both.linkage_tally.signed_tally = Fill(10, 0x01);
  EXPECT_EQ(DecodeFrame(EncodeFrame(both)).status().code(), Code::kMalformed);
  Frame neither = proof;
  neither.linkage_tally.tally_sha256.clear();
  EXPECT_EQ(DecodeFrame(EncodeFrame(neither)).status().code(), Code::kMalformed);
  Frame short_hash = proof;
  short_hash.linkage_tally.tally_sha256 = Fill(31, 0x07);
  EXPECT_EQ(DecodeFrame(EncodeFrame(short_hash)).status().code(), Code::kMalformed);
  Frame big;
  big.type = Frame::Type::kLinkageTally;
  big.linkage_tally.signed_tally = Fill(kMaxSignedTallyBytes + 1, 0x01);
  EXPECT_EQ(DecodeFrame(EncodeFrame(big)).status().code(), Code::kMalformed);
}

// =====================================================================================
// Identifiers
// =====================================================================================

TEST(IdentifierTest, PartyIds) {
  for (const std::string& ok :
       std::vector<std::string>{"abc", "a-b", "a--b", "123", "agency-a", "seoul-police-unit-7",
                                std::string(48, 'x'), "0-0"}) {
    EXPECT_TRUE(IsValidPartyId(ok)) << "'" << ok << "'";
  }
  for (const std::string& bad : std::vector<std::string>{
           "", "a", "ab", std::string(49, 'x'), "-abc", "abc-", "-", "---", "ABC", "Agency-a",
           "a_b", "a.b", "a b", "a/b", "../x", "agency\xc3\xa9"}) {
    EXPECT_FALSE(IsValidPartyId(bad)) << "'" << bad << "'";
  }
  EXPECT_FALSE(IsValidPartyId(std::string("abc\0", 4)));
  EXPECT_FALSE(IsValidPartyId(std::string("a\0c", 3)));
}

TEST(IdentifierTest, CaseRefs) {
  for (const std::string& ok :
       std::vector<std::string>{"abcdefgh", "ABCDEFGH", "CASE-2026-0001", "--------",
                                std::string(64, 'Z'), "a1B2-c3D4"}) {
    EXPECT_TRUE(IsValidCaseRef(ok)) << "'" << ok << "'";
  }
  for (const std::string& bad :
       std::vector<std::string>{"", "abcdefg", std::string(65, 'a'), "CASE_2026", "CASE 2026",
                                "CASE.2026", "CASE/2026/1", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"}) {
    EXPECT_FALSE(IsValidCaseRef(bad)) << "'" << bad << "'";
  }
  EXPECT_FALSE(IsValidCaseRef(std::string("abcdefg\0", 8)));
}

// =====================================================================================
// Round trips
// =====================================================================================

TEST(FrameCodecTest, RoundTripsEveryBodyType) {
  for (Frame::Type type : AllFrameTypes()) {
    SCOPED_TRACE(static_cast<int>(type));
    Frame in = FrameOf(type);
    Bytes bytes = EncodeFrame(in);
    auto out = DecodeFrame(bytes);
    ASSERT_TRUE(IsOk(out));
    EXPECT_EQ(out->type, type);
    EXPECT_EQ(out->version, 1u);
    EXPECT_EQ(out->request_id, in.request_id);
    EXPECT_EQ(EncodeFrame(*out), bytes);
    switch (type) {
      case Frame::Type::kHello:
        EXPECT_EQ(out->hello.party_id, "agency-a");
        EXPECT_EQ(out->hello.directory_serial, 12u);
        EXPECT_EQ(out->hello.software, "refbus-agent 0.1.0");
        break;
      case Frame::Type::kWelcome:
        EXPECT_EQ(out->welcome.broker_id, "broker-seoul");
        EXPECT_EQ(out->welcome.directory_serial, 13u);
        EXPECT_EQ(out->welcome.max_frame_bytes, 4u << 20);
        break;
      case Frame::Type::kSubmit:
        EXPECT_EQ(out->submit.envelope, in.submit.envelope);
        break;
      case Frame::Type::kDeliver:
        EXPECT_EQ(out->deliver.envelope, in.deliver.envelope);
        EXPECT_EQ(out->deliver.attempt, 3u);
        break;
      case Frame::Type::kAck:
        EXPECT_EQ(out->ack.message_id, in.ack.message_id);
        EXPECT_TRUE(out->ack.duplicate);
        EXPECT_EQ(out->ack.latest_checkpoint, in.ack.latest_checkpoint);
        break;
      case Frame::Type::kNack:
        EXPECT_EQ(out->nack.message_id, in.nack.message_id);
        EXPECT_EQ(out->nack.reason, NackReason::kQuotaExceeded);
        EXPECT_EQ(out->nack.detail, "mailbox full");
        EXPECT_EQ(out->nack.retry_after_ms, 1500u);
        break;
      case Frame::Type::kDirectoryFetch:
        EXPECT_EQ(out->directory_fetch.have_serial, 41u);
        break;
      case Frame::Type::kDirectoryReply:
        EXPECT_EQ(out->directory_reply.signed_directory, in.directory_reply.signed_directory);
        break;
      case Frame::Type::kGrantRegister:
        EXPECT_EQ(out->grant_register.signed_grant, in.grant_register.signed_grant);
        break;
      case Frame::Type::kGrantRevoke:
        EXPECT_EQ(out->grant_revoke.signed_revocation, in.grant_revoke.signed_revocation);
        break;
      case Frame::Type::kAttest:
        EXPECT_TRUE(out->attest.signed_access.empty());
        EXPECT_EQ(out->attest.signed_purge, in.attest.signed_purge);
        break;
      case Frame::Type::kAuditCheckpoint:
        break;
      case Frame::Type::kAuditEntries:
        EXPECT_EQ(out->audit_entries.from_index, 17u);
        EXPECT_EQ(out->audit_entries.max, 4096u);
        break;
      case Frame::Type::kAuditProof:
        EXPECT_EQ(out->audit_proof.index, 3u);
        EXPECT_EQ(out->audit_proof.tree_size, 9u);
        break;
      case Frame::Type::kAuditConsistency:
        EXPECT_EQ(out->audit_consistency.old_size, 4u);
        EXPECT_EQ(out->audit_consistency.new_size, 9u);
        break;
      case Frame::Type::kAuditCheckpoints:
        EXPECT_EQ(out->audit_checkpoints.from_size, 2u);
        EXPECT_EQ(out->audit_checkpoints.max, 1024u);
        break;
      case Frame::Type::kAuditReply:
        EXPECT_EQ(out->audit_reply.checkpoints, in.audit_reply.checkpoints);
        EXPECT_EQ(out->audit_reply.entries, in.audit_reply.entries);
        EXPECT_EQ(out->audit_reply.first_index, 7u);
        EXPECT_EQ(out->audit_reply.hashes, in.audit_reply.hashes);
        EXPECT_EQ(out->audit_reply.log_size, 9u);
        EXPECT_TRUE(out->audit_reply.more);
        break;
      case Frame::Type::kWitnessRequest:
        EXPECT_EQ(out->witness_request.checkpoint, in.witness_request.checkpoint);
        EXPECT_EQ(out->witness_request.old_size, 4u);
        EXPECT_EQ(out->witness_request.consistency_proof, in.witness_request.consistency_proof);
        break;
      case Frame::Type::kWitnessReply:
        EXPECT_EQ(out->witness_reply.cosignature, in.witness_reply.cosignature);
        EXPECT_EQ(out->witness_reply.refusal, WitnessRefusal::kNone);
        EXPECT_EQ(out->witness_reply.detail, "cosigned");
        EXPECT_EQ(out->witness_reply.witness_size, 9u);
        break;
      case Frame::Type::kAddCosignature:
        EXPECT_EQ(out->add_cosignature.checkpoint, in.add_cosignature.checkpoint);
        break;
      case Frame::Type::kRelay:
        EXPECT_EQ(out->relay.envelope, in.relay.envelope);
        EXPECT_EQ(out->relay.signed_grant, in.relay.signed_grant);
        EXPECT_EQ(out->relay.hops, 2u);
        EXPECT_EQ(out->relay.for_recipients, in.relay.for_recipients);
        break;
      case Frame::Type::kPrekeyUpdate:
        EXPECT_EQ(out->prekey_update.signed_prekey, in.prekey_update.signed_prekey);
        break;
      case Frame::Type::kLinkageEvaluate:
        EXPECT_EQ(out->linkage_evaluate.blinded_element, in.linkage_evaluate.blinded_element);
        break;
      case Frame::Type::kRosterUpdate:
        EXPECT_EQ(out->roster_update.signed_roster, in.roster_update.signed_roster);
        break;
      case Frame::Type::kLinkageEvaluated:
        EXPECT_EQ(out->linkage_evaluated.evaluated_element, in.linkage_evaluated.evaluated_element);
        EXPECT_EQ(out->linkage_evaluated.proof, in.linkage_evaluated.proof);
        break;
      case Frame::Type::kLinkageTally:
        EXPECT_EQ(out->linkage_tally.signed_tally, in.linkage_tally.signed_tally);
        EXPECT_TRUE(out->linkage_tally.tally_sha256.empty());
        break;
    }
  }
}

TEST(FrameCodecTest, RelayRefusesBadFields) {
  auto refused = [](const Frame& f, const std::string& field) {
    auto r = DecodeFrame(EncodeFrame(f));
    ASSERT_FALSE(r.ok()) << field;
    EXPECT_NE(r.status().message().find(field), std::string::npos) << r.status().message();
  };
  const Frame good = FrameOf(Frame::Type::kRelay);
  ASSERT_TRUE(DecodeFrame(EncodeFrame(good)).ok());
  Frame f = good;
  f.relay.envelope.clear();
  refused(f, "relay.envelope");
  f = good;
  f.relay.signed_grant = Fill(kMaxRecordBytes + 1, 1);
  refused(f, "relay.signed_grant");
  f = good;
  f.relay.hops = kMaxRelayHops + 1;
  refused(f, "relay.hops");
  f = good;
  f.relay.for_recipients.clear();
  refused(f, "relay.for_recipients");
  f = good;
  f.relay.for_recipients = {"busan-dsc", "busan-dsc"};
  refused(f, "relay.for_recipients");
  f = good;
  f.relay.for_recipients = {"Not An Id"};
  refused(f, "relay.for_recipients");
  // A revocation relay carries nothing else.
  Frame rev = FrameOf(Frame::Type::kRelay);
  rev.relay = {};
  rev.relay.signed_revocation = Fill(120, 0x46);
  auto decoded = DecodeFrame(EncodeFrame(rev));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->relay.signed_revocation, rev.relay.signed_revocation);
  EXPECT_TRUE(decoded->relay.envelope.empty());
  rev.relay.for_recipients = {"busan-dsc"};
  refused(rev, "relay.signed_revocation");
  rev.relay.for_recipients.clear();
  rev.relay.signed_revocation = Fill(kMaxRecordBytes + 1, 1);
  refused(rev, "relay.signed_revocation");
  f = good;
  f.relay.for_recipients.assign(kMaxRecipients + 1, "x");
  for (size_t i = 0; i < f.relay.for_recipients.size(); ++i) {
    f.relay.for_recipients[i] = "agency-" + std::to_string(100 + i);
  }
  refused(f, "relay.for_recipients");
  // A prekey relay carries nothing else either.
  Frame pk = FrameOf(Frame::Type::kRelay);
  pk.relay = {};
  pk.relay.signed_prekey = Fill(120, 0x47);
  auto pk_decoded = DecodeFrame(EncodeFrame(pk));
  ASSERT_TRUE(pk_decoded.ok()) << pk_decoded.status().ToString();
  EXPECT_EQ(pk_decoded->relay.signed_prekey, pk.relay.signed_prekey);
  pk.relay.signed_revocation = Fill(20, 1);
  refused(pk, "relay.signed_prekey");
  pk.relay.signed_revocation.clear();
  pk.relay.signed_prekey = Fill(kMaxSignedPrekeyBytes + 1, 1);
  refused(pk, "relay.signed_prekey");
  Frame upd = FrameOf(Frame::Type::kPrekeyUpdate);
  upd.prekey_update.signed_prekey.clear();
  refused(upd, "prekey_update.signed_prekey");
  upd.prekey_update.signed_prekey = Fill(kMaxSignedPrekeyBytes + 1, 1);
  refused(upd, "prekey_update.signed_prekey");
  // Linkage elements and proofs have exact sizes (PROTOCOL.md 13.5).
  Frame ev = FrameOf(Frame::Type::kLinkageEvaluate);
  ev.linkage_evaluate.blinded_element = Fill(kLinkageElementBytes + 1, 1);
  refused(ev, "linkage_evaluate.blinded_element");
  ev.linkage_evaluate.blinded_element.clear();
  refused(ev, "linkage_evaluate.blinded_element");
  Frame ans = FrameOf(Frame::Type::kLinkageEvaluated);
  ans.linkage_evaluated.proof.pop_back();
  refused(ans, "linkage_evaluated.proof");
  ans = FrameOf(Frame::Type::kLinkageEvaluated);
  ans.linkage_evaluated.evaluated_element = Fill(31, 1);
  refused(ans, "linkage_evaluated.evaluated_element");
}

TEST(DirectoryCodecTest, SignedPrekeyRoundTripsWithItsSignedBytes) {
  SignedPrekey sp = MakeSignedPrekey("seoul-counsel", 0x30);
  auto out = DecodeSignedPrekey(EncodeSignedPrekey(sp));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->prekey_bytes, sp.prekey_bytes);
  EXPECT_EQ(out->signature, sp.signature);
  EXPECT_EQ(out->prekey.owner_id, "seoul-counsel");
  EXPECT_EQ(out->prekey.not_after_ms, sp.prekey.not_after_ms);
  sp.signature.pop_back();
  auto bad = DecodeSignedPrekey(EncodeSignedPrekey(sp));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("signature"), std::string::npos);
}

TEST(FrameCodecTest, WitnessFramesRefuseBadFields) {
  auto refused = [](const Frame& f, const std::string& field) {
    auto r = DecodeFrame(EncodeFrame(f));
    EXPECT_FALSE(r.ok()) << field;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Status::Code::kMalformed);
      EXPECT_NE(r.status().message().find(field), std::string::npos) << r.status().ToString();
    }
  };
  Frame request = FrameOf(Frame::Type::kWitnessRequest);
  request.witness_request.checkpoint.clear();
  refused(request, "witness_request.checkpoint");
  request = FrameOf(Frame::Type::kWitnessRequest);
  request.witness_request.checkpoint.assign(kMaxAuditNoteBytes + 1, 'a');
  refused(request, "witness_request.checkpoint");
  request = FrameOf(Frame::Type::kWitnessRequest);
  request.witness_request.consistency_proof.push_back(Fill(31, 0x01));
  refused(request, "witness_request.consistency_proof");
  request = FrameOf(Frame::Type::kWitnessRequest);
  request.witness_request.consistency_proof.assign(kMaxAuditProofHashes + 1, Fill(32, 0x02));
  refused(request, "witness_request.consistency_proof");

  Frame reply = FrameOf(Frame::Type::kWitnessReply);
  reply.witness_reply.cosignature.clear();  // not refused, yet no cosignature
  refused(reply, "witness_reply.cosignature");
  reply = FrameOf(Frame::Type::kWitnessReply);
  reply.witness_reply.refusal = WitnessRefusal::kConflict;  // refused, yet a cosignature
  refused(reply, "witness_reply.cosignature");
  reply = FrameOf(Frame::Type::kWitnessReply);
  reply.witness_reply.cosignature.assign(kMaxCosignatureLineBytes + 1, 'a');
  refused(reply, "witness_reply.cosignature");
  reply = FrameOf(Frame::Type::kWitnessReply);
  reply.witness_reply.cosignature.clear();
  reply.witness_reply.refusal = static_cast<WitnessRefusal>(6);  // unknown
  refused(reply, "witness_reply.refusal");
  reply.witness_reply.refusal = WitnessRefusal::kInconsistent;
  reply.witness_reply.detail.assign(kMaxWitnessDetailBytes + 1, 'd');
  refused(reply, "witness_reply.detail");
  reply.witness_reply.detail = "inconsistent";
  auto ok = DecodeFrame(EncodeFrame(reply));
  ASSERT_TRUE(IsOk(ok));
  EXPECT_EQ(ok->witness_reply.refusal, WitnessRefusal::kInconsistent);
  EXPECT_TRUE(ok->witness_reply.cosignature.empty());

  Frame add = FrameOf(Frame::Type::kAddCosignature);
  add.add_cosignature.checkpoint.clear();
  refused(add, "add_cosignature.checkpoint");
  add.add_cosignature.checkpoint.assign(kMaxAuditNoteBytes + 1, 'a');
  refused(add, "add_cosignature.checkpoint");
}

TEST(FrameCodecTest, AuditQueriesAndRepliesRefuseBadFields) {
  auto refused = [](const Frame& f, const std::string& field) {
    auto r = DecodeFrame(EncodeFrame(f));
    EXPECT_FALSE(r.ok()) << field;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Status::Code::kMalformed);
      EXPECT_NE(r.status().message().find(field), std::string::npos) << r.status().ToString();
    }
  };
  Frame entries = FrameOf(Frame::Type::kAuditEntries);
  entries.audit_entries.max = 0;
  refused(entries, "audit_entries.max");
  entries.audit_entries.max = kMaxAuditEntriesPerReply + 1;
  refused(entries, "audit_entries.max");
  Frame proof = FrameOf(Frame::Type::kAuditProof);
  proof.audit_proof.index = proof.audit_proof.tree_size;
  refused(proof, "audit_proof.index");
  Frame consistency = FrameOf(Frame::Type::kAuditConsistency);
  consistency.audit_consistency.old_size = consistency.audit_consistency.new_size + 1;
  refused(consistency, "audit_consistency.old_size");
  Frame checkpoints = FrameOf(Frame::Type::kAuditCheckpoints);
  checkpoints.audit_checkpoints.max = kMaxAuditCheckpointsPerReply + 1;
  refused(checkpoints, "audit_checkpoints.max");

  Frame short_hash = FrameOf(Frame::Type::kAuditReply);
  short_hash.audit_reply.hashes.push_back(Fill(31, 0x9a));
  refused(short_hash, "audit_reply.hashes");
  Frame too_many_hashes = FrameOf(Frame::Type::kAuditReply);
  too_many_hashes.audit_reply.hashes.assign(kMaxAuditProofHashes + 1, Fill(32, 0x9b));
  refused(too_many_hashes, "audit_reply.hashes");
  Frame empty_entry = FrameOf(Frame::Type::kAuditReply);
  empty_entry.audit_reply.entries.push_back({});
  refused(empty_entry, "audit_reply.entries");
  Frame big_entry = FrameOf(Frame::Type::kAuditReply);
  big_entry.audit_reply.entries.push_back(Fill(kMaxRecordBytes + 1, 0x9c));
  refused(big_entry, "audit_reply.entries");
  Frame big_note = FrameOf(Frame::Type::kAuditReply);
  big_note.audit_reply.checkpoints.push_back(std::string(kMaxAuditNoteBytes + 1, 'a'));
  refused(big_note, "audit_reply.checkpoints");
  Frame too_many_entries = FrameOf(Frame::Type::kAuditReply);
  too_many_entries.audit_reply.entries.assign(kMaxAuditEntriesPerReply + 1, Fill(1, 0x9d));
  refused(too_many_entries, "audit_reply.entries");

  // An empty AuditCheckpoint body is still a body: the frame decodes as that query.
  auto empty = DecodeFrame(EncodeFrame(FrameOf(Frame::Type::kAuditCheckpoint)));
  ASSERT_TRUE(IsOk(empty));
  EXPECT_EQ(empty->type, Frame::Type::kAuditCheckpoint);
  EXPECT_TRUE(empty->IsAuditQuery());
  EXPECT_FALSE(FrameOf(Frame::Type::kAuditReply).IsAuditQuery());
  EXPECT_FALSE(FrameOf(Frame::Type::kAttest).IsAuditQuery());
}

TEST(FrameCodecTest, AttestMustHoldExactlyOneStatement) {
  Frame both = FrameOf(Frame::Type::kAttest);
  both.attest.signed_access = Fill(20, 0x96);
  EXPECT_FALSE(DecodeFrame(EncodeFrame(both)).ok());
  Frame none = FrameOf(Frame::Type::kAttest);
  none.attest.signed_purge.clear();
  EXPECT_FALSE(DecodeFrame(EncodeFrame(none)).ok());
}

TEST(FrameCodecTest, OptionalEmptyFields) {
  Frame nack = FrameOf(Frame::Type::kNack);
  nack.nack.message_id.clear();  // the broker could not read the id
  auto n = DecodeFrame(EncodeFrame(nack));
  ASSERT_TRUE(IsOk(n));
  EXPECT_TRUE(n->nack.message_id.empty());

  Frame reply = FrameOf(Frame::Type::kDirectoryReply);
  reply.directory_reply.signed_directory.clear();  // "your serial is current"
  auto r = DecodeFrame(EncodeFrame(reply));
  ASSERT_TRUE(IsOk(r));
  EXPECT_EQ(r->type, Frame::Type::kDirectoryReply);
  EXPECT_TRUE(r->directory_reply.signed_directory.empty());
}

TEST(FrameCodecTest, EveryNackReasonRoundTrips) {
  for (int v = 1; v <= static_cast<int>(NackReason::kIdReused); ++v) {
    Frame f = FrameOf(Frame::Type::kNack);
    f.nack.reason = static_cast<NackReason>(v);
    auto out = DecodeFrame(EncodeFrame(f));
    ASSERT_TRUE(IsOk(out)) << v;
    EXPECT_EQ(out->nack.reason, f.nack.reason);
  }
}

TEST(EnvelopeCodecTest, HeaderRoundTrip) {
  EnvelopeHeader in = ValidHeader();
  Bytes bytes = EncodeEnvelopeHeader(in);
  auto out = DecodeEnvelopeHeader(bytes);
  ASSERT_TRUE(IsOk(out));
  EXPECT_EQ(EncodeEnvelopeHeader(*out), bytes);
  EXPECT_EQ(out->message_id, in.message_id);
  EXPECT_EQ(out->kind, MessageKind::kReferral);
  EXPECT_EQ(out->sender_id, "agency-a");
  EXPECT_EQ(out->sender_key_id, in.sender_key_id);
  ASSERT_EQ(out->recipients.size(), 2u);
  EXPECT_EQ(out->recipients[1].agency_id, "agency-c");
  EXPECT_EQ(out->recipients[1].prekey_id, in.recipients[1].prekey_id);
  EXPECT_EQ(out->recipients[1].wrapped_key, in.recipients[1].wrapped_key);
  EXPECT_EQ(out->case_ref, in.case_ref);
  EXPECT_EQ(out->consent_grant_id, in.consent_grant_id);
  EXPECT_EQ(out->purpose, Purpose::kCounseling);
  EXPECT_EQ(out->categories, in.categories);
  EXPECT_EQ(out->created_at_ms, in.created_at_ms);
  EXPECT_EQ(out->expires_at_ms, in.expires_at_ms);
  EXPECT_EQ(out->ephemeral_key, in.ephemeral_key);
  EXPECT_EQ(out->content_nonce, in.content_nonce);
  EXPECT_EQ(out->key_commitment, in.key_commitment);
}

TEST(EnvelopeCodecTest, HeaderOptionalFieldsMayBeEmpty) {
  EnvelopeHeader h = ValidHeader();
  h.case_ref.clear();
  h.consent_grant_id.clear();
  h.purpose = Purpose::kUnspecified;
  h.categories.clear();
  auto out = DecodeEnvelopeHeader(EncodeEnvelopeHeader(h));
  ASSERT_TRUE(IsOk(out));
  EXPECT_TRUE(out->case_ref.empty());
  EXPECT_TRUE(out->consent_grant_id.empty());
  EXPECT_EQ(out->purpose, Purpose::kUnspecified);
}

TEST(EnvelopeCodecTest, EnvelopeRoundTripKeepsHeaderBytes) {
  SealedEnvelope in = ValidEnvelope();
  Bytes bytes = EncodeEnvelope(in);
  auto out = DecodeEnvelope(bytes);
  ASSERT_TRUE(IsOk(out));
  EXPECT_EQ(out->header_bytes, in.header_bytes);
  EXPECT_EQ(out->ciphertext, in.ciphertext);
  EXPECT_EQ(out->signature, in.signature);
  EXPECT_EQ(out->header.sender_id, "agency-a");
  EXPECT_EQ(EncodeEnvelope(*out), bytes);
}

TEST(EnvelopeCodecTest, EncodeEnvelopeDoesNotReencodeTheHeader) {
  // The header bytes are what was signed: a stale decoded header must not leak into them.
  SealedEnvelope e = ValidEnvelope();
  e.header.sender_id = "agency-z";
  auto out = DecodeEnvelope(EncodeEnvelope(e));
  ASSERT_TRUE(IsOk(out));
  EXPECT_EQ(out->header.sender_id, "agency-a");
}

TEST(EnvelopeCodecTest, SixtyFourRecipientsAreAccepted) {
  EnvelopeHeader h = ValidHeader();
  h.recipients.clear();
  for (size_t i = 0; i < kMaxRecipients; ++i) {
    h.recipients.push_back(
        {"agency-" + std::to_string(100 + i), Fill(kKeyIdBytes, 1), Fill(kWrappedKeyBytes, 2)});
  }
  auto out = DecodeEnvelopeHeader(EncodeEnvelopeHeader(h));
  ASSERT_TRUE(IsOk(out));
  EXPECT_EQ(out->recipients.size(), kMaxRecipients);
}

TEST(DirectoryCodecTest, PrekeyRoundTrip) {
  Prekey p{"agency-a", Fill(kPublicKeyBytes, 3), kT, kT + 1};
  Bytes bytes = EncodePrekey(p);
  auto out = DecodePrekey(bytes);
  ASSERT_TRUE(IsOk(out));
  EXPECT_EQ(out->owner_id, "agency-a");
  EXPECT_EQ(out->public_key, p.public_key);
  EXPECT_EQ(out->not_before_ms, kT);
  EXPECT_EQ(out->not_after_ms, kT + 1);
  EXPECT_EQ(EncodePrekey(*out), bytes);
}

TEST(DirectoryCodecTest, DirectoryRoundTrip) {
  Directory in = ValidDirectory();
  Bytes bytes = EncodeDirectory(in);
  auto out = DecodeDirectory(bytes);
  ASSERT_TRUE(IsOk(out));
  EXPECT_EQ(EncodeDirectory(*out), bytes);
  EXPECT_EQ(out->federation, "test-federation");
  EXPECT_EQ(out->serial, 7u);
  EXPECT_EQ(out->issued_at_ms, kT);
  ASSERT_EQ(out->agencies.size(), 2u);
  ASSERT_EQ(out->brokers.size(), 1u);
  ASSERT_EQ(out->auditors.size(), 1u);
  const Party& a = out->agencies[0];
  EXPECT_EQ(a.id, "agency-a");
  EXPECT_EQ(a.kind, PartyKind::kAgency);
  EXPECT_EQ(a.agency_type, AgencyType::kPoliceUnit);
  EXPECT_EQ(a.home_broker, "broker-seoul");
  EXPECT_EQ(a.roles, in.agencies[0].roles);
  ASSERT_EQ(a.keys.size(), 2u);
  EXPECT_EQ(a.keys[0].state, KeyState::kActive);
  EXPECT_EQ(a.keys[1].state, KeyState::kRetired);
  ASSERT_EQ(a.keys[0].prekeys.size(), 2u);
  EXPECT_EQ(a.keys[0].prekeys[1].prekey_bytes, in.agencies[0].keys[0].prekeys[1].prekey_bytes);
  EXPECT_EQ(a.keys[0].prekeys[1].prekey.public_key,
            in.agencies[0].keys[0].prekeys[1].prekey.public_key);
  EXPECT_EQ(a.keys[0].prekeys[1].signature, in.agencies[0].keys[0].prekeys[1].signature);
  EXPECT_EQ(out->brokers[0].endpoint, "tcp://broker.seoul.example:7450");
  EXPECT_EQ(out->IndexedParties(), 4u);  // the decoder indexes every directory it makes
  EXPECT_EQ(out->Find("auditor-1"), &out->auditors[0]);
  EXPECT_EQ(out->Find("agency-b"), &out->agencies[1]);
  EXPECT_EQ(out->Find("nobody"), nullptr);
}

TEST(DirectoryCodecTest, SignedDirectoryRoundTrip) {
  SignedDirectory in = ValidSignedDirectory();
  Bytes bytes = EncodeSignedDirectory(in);
  auto out = DecodeSignedDirectory(bytes);
  ASSERT_TRUE(IsOk(out));
  EXPECT_EQ(out->directory_bytes, in.directory_bytes);
  EXPECT_EQ(out->authority_key_id, in.authority_key_id);
  EXPECT_EQ(out->signature, in.signature);
  EXPECT_EQ(out->directory.serial, 7u);
  EXPECT_EQ(EncodeSignedDirectory(*out), bytes);
}

TEST(DirectoryCodecTest, PartyRecordRoundTrip) {
  PartyRecord in = ValidPartyRecord();
  Bytes bytes = EncodePartyRecord(in);
  auto out = DecodePartyRecord(bytes);
  ASSERT_TRUE(IsOk(out));
  EXPECT_EQ(out->format_version, 1u);
  EXPECT_EQ(out->party.id, "agency-a");
  EXPECT_EQ(out->created_at_ms, kT);
  EXPECT_EQ(EncodePartyRecord(*out), bytes);

  SignedPartyRecord sin = ValidSignedPartyRecord();
  Bytes sbytes = EncodeSignedPartyRecord(sin);
  auto sout = DecodeSignedPartyRecord(sbytes);
  ASSERT_TRUE(IsOk(sout));
  EXPECT_EQ(sout->record_bytes, sin.record_bytes);
  EXPECT_EQ(sout->signature, sin.signature);
  EXPECT_EQ(sout->previous_key_signature, sin.previous_key_signature);
  EXPECT_EQ(EncodeSignedPartyRecord(*sout), sbytes);

  sin.previous_key_signature.clear();  // a new party
  auto fresh = DecodeSignedPartyRecord(EncodeSignedPartyRecord(sin));
  ASSERT_TRUE(IsOk(fresh));
  EXPECT_TRUE(fresh->previous_key_signature.empty());
}

TEST(ConsentCodecTest, GrantRoundTrip) {
  ConsentGrant in = ValidGrant();
  Bytes bytes = EncodeConsentGrant(in);
  auto out = DecodeConsentGrant(bytes);
  ASSERT_TRUE(IsOk(out));
  EXPECT_EQ(EncodeConsentGrant(*out), bytes);
  EXPECT_EQ(out->grant_id, in.grant_id);
  EXPECT_EQ(out->case_ref, in.case_ref);
  EXPECT_EQ(out->recorded_by, "agency-a");
  EXPECT_EQ(out->basis, LegalBasis::kConsentLegalRepresentative);
  EXPECT_EQ(out->legal_article, "PIPA 22-2");
  EXPECT_EQ(out->consenters, in.consenters);
  EXPECT_TRUE(out->subject_assent);
  EXPECT_EQ(out->purposes, in.purposes);
  EXPECT_EQ(out->categories, in.categories);
  EXPECT_EQ(out->allowed_recipients, in.allowed_recipients);
  EXPECT_EQ(out->allowed_agency_types, in.allowed_agency_types);
  EXPECT_TRUE(out->onward_sharing);
  EXPECT_EQ(out->issued_at_ms, in.issued_at_ms);
  EXPECT_EQ(out->expires_at_ms, in.expires_at_ms);
  EXPECT_EQ(out->retention_until_ms, in.retention_until_ms);
  EXPECT_TRUE(out->emergency_override);
  EXPECT_TRUE(out->representative_conflict);
}

TEST(ConsentCodecTest, SignedGrantRoundTrip) {
  SignedConsentGrant in = ValidSignedGrant();
  Bytes bytes = EncodeSignedConsentGrant(in);
  auto out = DecodeSignedConsentGrant(bytes);
  ASSERT_TRUE(IsOk(out));
  EXPECT_EQ(out->grant_bytes, in.grant_bytes);
  EXPECT_EQ(out->signer_key_id, in.signer_key_id);
  EXPECT_EQ(out->signature, in.signature);
  ASSERT_EQ(out->countersignatures.size(), 1u);
  EXPECT_EQ(out->countersignatures[0].operator_ref, "operator-7");
  EXPECT_EQ(out->countersignatures[0].public_key, in.countersignatures[0].public_key);
  EXPECT_EQ(out->countersignatures[0].signature, in.countersignatures[0].signature);
  EXPECT_EQ(out->grant.case_ref, "CASE-2026-0001");
  EXPECT_EQ(EncodeSignedConsentGrant(*out), bytes);
}

TEST(KeyFileCodecTest, RoundTripBothProtections) {
  for (KeyProtection p : {KeyProtection::kNone, KeyProtection::kArgon2idXChaCha20Poly1305}) {
    SCOPED_TRACE(static_cast<int>(p));
    SecretKeyFile in = ValidKeyFile(p);
    Bytes bytes = EncodeSecretKeyFile(in);
    auto out = DecodeSecretKeyFile(bytes);
    ASSERT_TRUE(IsOk(out));
    EXPECT_EQ(out->format_version, 1u);
    EXPECT_EQ(out->party_id, "agency-a");
    EXPECT_EQ(out->kind, PartyKind::kAgency);
    EXPECT_EQ(out->protection, p);
    EXPECT_EQ(out->kdf_salt, in.kdf_salt);
    EXPECT_EQ(out->kdf_opslimit, in.kdf_opslimit);
    EXPECT_EQ(out->kdf_memlimit, in.kdf_memlimit);
    EXPECT_EQ(out->nonce, in.nonce);
    EXPECT_EQ(out->payload, in.payload);
    EXPECT_EQ(out->checksum, in.checksum);
    EXPECT_EQ(EncodeSecretKeyFile(*out), bytes);
    out->WipePayload();
    EXPECT_TRUE(out->payload.empty());
  }
}

// =====================================================================================
// Empty, random, truncated and oversized input
// =====================================================================================

TEST(HostileInputTest, EmptyBytesAreMalformedForEveryDecoder) {
  // Empty bytes parse as a default message; the defaults then fail validation.
  for (const auto& d : AllDecoders()) {
    EXPECT_TRUE(HasCode(d.decode(ByteView()), Code::kMalformed)) << d.name;
  }
}

TEST(HostileInputTest, RandomBytesNeverCrash) {
  std::mt19937 rng(20260522);
  std::uniform_int_distribution<int> length(0, 600);
  std::uniform_int_distribution<int> byte(0, 255);
  int ok = 0;
  for (int i = 0; i < 2000; ++i) {
    Bytes buf(static_cast<size_t>(length(rng)));
    for (auto& b : buf) b = static_cast<uint8_t>(byte(rng));
    for (const auto& d : AllDecoders()) {
      Status s = d.decode(buf);
      ASSERT_TRUE(OkOrRefused(s)) << d.name << " on random buffer " << i;
      if (s.ok()) ++ok;
    }
  }
  // Random bytes essentially never form a valid object.
  EXPECT_LT(ok, 10);
}

// Flips bytes of valid encodings: reaches deeper than random bytes. Whatever decodes
// must re-encode into something that decodes again.
TEST(HostileInputTest, MutatedValidEncodingsNeverCrash) {
  std::mt19937 rng(7);
  const Bytes frame = EncodeFrame(FrameOf(Frame::Type::kNack));
  const Bytes header = EncodeEnvelopeHeader(ValidHeader());
  const Bytes directory = EncodeDirectory(ValidDirectory());
  const Bytes grant = EncodeSignedConsentGrant(ValidSignedGrant());
  const Bytes keyfile = EncodeSecretKeyFile(ValidKeyFile(KeyProtection::kNone));
  for (int i = 0; i < 3000; ++i) {
    auto mutate = [&](const Bytes& in) {
      Bytes b = in;
      int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) {
        b[rng() % b.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
      }
      if (rng() % 8 == 0) b.resize(rng() % b.size());
      return b;
    };
    Bytes f = mutate(frame);
    auto fr = DecodeFrame(f);
    ASSERT_TRUE(OkOrRefused(fr.status()));
    if (fr.ok()) {
      EXPECT_TRUE(IsOk(DecodeFrame(EncodeFrame(*fr))));
    }
    Bytes h = mutate(header);
    auto hr = DecodeEnvelopeHeader(h);
    ASSERT_TRUE(OkOrRefused(hr.status()));
    if (hr.ok()) {
      EXPECT_TRUE(IsOk(DecodeEnvelopeHeader(EncodeEnvelopeHeader(*hr))));
    }
    Bytes d = mutate(directory);
    auto dr = DecodeDirectory(d);
    ASSERT_TRUE(OkOrRefused(dr.status()));
    if (dr.ok()) {
      EXPECT_TRUE(IsOk(DecodeDirectory(EncodeDirectory(*dr))));
    }
    ASSERT_TRUE(OkOrRefused(DecodeSignedConsentGrant(mutate(grant)).status()));
    ASSERT_TRUE(OkOrRefused(DecodeSecretKeyFile(mutate(keyfile)).status()));
  }
}

TEST(HostileInputTest, EveryPrefixOfAnEnvelopeIsRefused) {
  const Bytes full = EncodeEnvelope(ValidEnvelope());
  ASSERT_TRUE(IsOk(DecodeEnvelope(full)));
  for (size_t n = 0; n < full.size(); ++n) {
    auto r = DecodeEnvelope(ByteView(full.data(), n));
    // The signature is the last field: no strict prefix carries a whole envelope.
    EXPECT_TRUE(HasCode(r, Code::kMalformed)) << "prefix of " << n << " bytes";
  }
}

TEST(HostileInputTest, EveryPrefixOfOtherEncodingsNeverCrashes) {
  const std::vector<std::pair<Bytes, std::function<Status(ByteView)>>> inputs = {
      {EncodeFrame(FrameOf(Frame::Type::kDeliver)), StatusOnly(DecodeFrame)},
      {EncodeSignedDirectory(ValidSignedDirectory()), StatusOnly(DecodeSignedDirectory)},
      {EncodeSignedPartyRecord(ValidSignedPartyRecord()), StatusOnly(DecodeSignedPartyRecord)},
      {EncodeSignedConsentGrant(ValidSignedGrant()), StatusOnly(DecodeSignedConsentGrant)},
      {EncodeSecretKeyFile(ValidKeyFile(KeyProtection::kArgon2idXChaCha20Poly1305)),
       StatusOnly(DecodeSecretKeyFile)},
  };
  for (const auto& [full, decode] : inputs) {
    ASSERT_TRUE(IsOk(decode(full)));
    for (size_t n = 0; n < full.size(); ++n) {
      ASSERT_TRUE(OkOrRefused(decode(ByteView(full.data(), n)))) << n;
    }
  }
}

TEST(HostileInputTest, OversizeFrameIsRefusedBeforeParsing) {
  // Bytes that do not parse at all: the size error comes first.
  Bytes zeros(kMaxFrameBytes + 1, 0);
  auto r = DecodeFrame(zeros);
  EXPECT_TRUE(HasError(r, Code::kResourceExhausted, std::to_string(kMaxFrameBytes)));

  // A well-formed frame that is one size too large is refused just the same, while the
  // same frame under the limit decodes.
  Frame f;
  f.type = Frame::Type::kSubmit;
  f.submit.envelope = Bytes(kMaxFrameBytes - 64, 0x5a);
  Bytes fits = EncodeFrame(f);
  ASSERT_LE(fits.size(), kMaxFrameBytes);
  EXPECT_TRUE(IsOk(DecodeFrame(fits)));
  f.submit.envelope = Bytes(kMaxFrameBytes, 0x5a);
  Bytes over = EncodeFrame(f);
  ASSERT_GT(over.size(), kMaxFrameBytes);
  EXPECT_TRUE(HasCode(DecodeFrame(over), Code::kResourceExhausted));
}

TEST(HostileInputTest, OversizeInputForOtherDecoders) {
  EXPECT_TRUE(HasCode(DecodeEnvelope(Bytes(kMaxEnvelopeBytes + 1, 0)), Code::kResourceExhausted));
  EXPECT_TRUE(
      HasCode(DecodeEnvelopeHeader(Bytes(kMaxRecordBytes + 1, 0)), Code::kResourceExhausted));
  EXPECT_TRUE(
      HasCode(DecodeSignedDirectory(Bytes(kMaxDirectoryBytes + 1, 0)), Code::kResourceExhausted));
  EXPECT_TRUE(
      HasCode(DecodeSignedPartyRecord(Bytes(kMaxRecordBytes + 1, 0)), Code::kResourceExhausted));
  EXPECT_TRUE(
      HasCode(DecodeSignedConsentGrant(Bytes(kMaxRecordBytes + 1, 0)), Code::kResourceExhausted));
  EXPECT_TRUE(
      HasCode(DecodeSecretKeyFile(Bytes(kMaxRecordBytes + 1, 0)), Code::kResourceExhausted));
  EXPECT_TRUE(HasCode(DecodePrekey(Bytes(kMaxRecordBytes + 1, 0)), Code::kResourceExhausted));
}

// =====================================================================================
// Field validation
// =====================================================================================

TEST(FrameCodecTest, RefusesBadFrames) {
  Frame v2 = FrameOf(Frame::Type::kHello);
  v2.version = 2;
  EXPECT_TRUE(HasError(DecodeFrame(EncodeFrame(v2)), Code::kMalformed, "version"));

  Bytes no_body;
  PutVarintField(no_body, 1, 1);  // version 1 and nothing else
  EXPECT_TRUE(HasError(DecodeFrame(no_body), Code::kMalformed, "body"));

  Frame hello = FrameOf(Frame::Type::kHello);
  hello.hello.party_id = "Not A Party";
  EXPECT_TRUE(HasError(DecodeFrame(EncodeFrame(hello)), Code::kMalformed, "hello.party_id"));

  Frame welcome = FrameOf(Frame::Type::kWelcome);
  welcome.welcome.broker_id = "";
  EXPECT_TRUE(HasError(DecodeFrame(EncodeFrame(welcome)), Code::kMalformed, "broker_id"));

  Frame submit = FrameOf(Frame::Type::kSubmit);
  submit.submit.envelope.clear();
  EXPECT_TRUE(HasError(DecodeFrame(EncodeFrame(submit)), Code::kMalformed, "submit.envelope"));

  Frame deliver = FrameOf(Frame::Type::kDeliver);
  deliver.deliver.envelope.clear();
  EXPECT_TRUE(HasError(DecodeFrame(EncodeFrame(deliver)), Code::kMalformed, "deliver.envelope"));

  Frame ack = FrameOf(Frame::Type::kAck);
  ack.ack.message_id = Fill(15, 1);
  EXPECT_TRUE(HasError(DecodeFrame(EncodeFrame(ack)), Code::kMalformed, "ack.message_id"));
  ack.ack.message_id.clear();
  EXPECT_TRUE(HasError(DecodeFrame(EncodeFrame(ack)), Code::kMalformed, "ack.message_id"));
  ack = FrameOf(Frame::Type::kAck);
  ack.ack.latest_checkpoint.assign(kMaxAuditNoteBytes + 1, 'x');
  EXPECT_TRUE(HasError(DecodeFrame(EncodeFrame(ack)), Code::kMalformed, "ack.latest_checkpoint"));

  Frame nack = FrameOf(Frame::Type::kNack);
  nack.nack.message_id = Fill(17, 1);
  EXPECT_TRUE(HasError(DecodeFrame(EncodeFrame(nack)), Code::kMalformed, "nack.message_id"));
  nack = FrameOf(Frame::Type::kNack);
  nack.nack.reason = NackReason::kUnspecified;
  EXPECT_TRUE(HasError(DecodeFrame(EncodeFrame(nack)), Code::kMalformed, "nack.reason"));
}

TEST(FrameCodecTest, RefusesUnknownNackReason) {
  // Frame{version: 1, nack (15): {reason (2): 99}}
  Bytes nack_body;
  PutVarintField(nack_body, 2, 99);
  Bytes frame;
  PutVarintField(frame, 1, 1);
  PutLenField(frame, 15, nack_body);
  auto r = DecodeFrame(frame);
  EXPECT_TRUE(HasError(r, Code::kMalformed, "nack.reason"));
  EXPECT_TRUE(HasSubstr(r.status().message(), "99"));
}

TEST(FrameCodecTest, ErrorsNameTheFieldNotItsContent) {
  Frame hello = FrameOf(Frame::Type::kHello);
  hello.hello.party_id = "SECRET-CONTENT-xyz";
  auto r = DecodeFrame(EncodeFrame(hello));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().find("SECRET-CONTENT"), std::string::npos)
      << r.status().ToString();
}

TEST(EnvelopeCodecTest, RefusesWrongFieldSizes) {
  struct Case {
    std::string field;
    std::function<void(EnvelopeHeader&)> mutate;
  };
  const std::vector<Case> cases = {
      {"message_id", [](EnvelopeHeader& h) { h.message_id = Fill(15, 1); }},
      {"message_id", [](EnvelopeHeader& h) { h.message_id = Fill(17, 1); }},
      {"message_id", [](EnvelopeHeader& h) { h.message_id.clear(); }},
      {"sender_key_id", [](EnvelopeHeader& h) { h.sender_key_id = Fill(17, 1); }},
      {"recipients.prekey_id", [](EnvelopeHeader& h) { h.recipients[0].prekey_id = Fill(15, 1); }},
      {"recipients.wrapped_key",
       [](EnvelopeHeader& h) { h.recipients[1].wrapped_key = Fill(47, 1); }},
      {"consent_grant_id", [](EnvelopeHeader& h) { h.consent_grant_id = Fill(15, 1); }},
      {"ephemeral_key", [](EnvelopeHeader& h) { h.ephemeral_key = Fill(31, 1); }},
      {"content_nonce", [](EnvelopeHeader& h) { h.content_nonce = Fill(12, 1); }},
      {"key_commitment", [](EnvelopeHeader& h) { h.key_commitment = Fill(33, 1); }},
  };
  for (const auto& c : cases) {
    EnvelopeHeader h = ValidHeader();
    c.mutate(h);
    EXPECT_TRUE(HasError(DecodeEnvelopeHeader(EncodeEnvelopeHeader(h)), Code::kMalformed, c.field))
        << c.field;
  }
}

TEST(EnvelopeCodecTest, RefusesBadHeaderValues) {
  struct Case {
    std::string field;
    std::function<void(EnvelopeHeader&)> mutate;
  };
  const std::vector<Case> cases = {
      {"version", [](EnvelopeHeader& h) { h.version = 2; }},
      {"kind", [](EnvelopeHeader& h) { h.kind = MessageKind::kUnspecified; }},
      {"sender_id", [](EnvelopeHeader& h) { h.sender_id = "x"; }},
      {"recipients", [](EnvelopeHeader& h) { h.recipients.clear(); }},
      {"recipients.agency_id", [](EnvelopeHeader& h) { h.recipients[0].agency_id = "-bad"; }},
      {"case_ref", [](EnvelopeHeader& h) { h.case_ref = "short"; }},
      {"case_ref", [](EnvelopeHeader& h) { h.case_ref = "Kim Min-jun 2011"; }},
      {"expires_at_ms", [](EnvelopeHeader& h) { h.expires_at_ms = h.created_at_ms; }},
      {"expires_at_ms", [](EnvelopeHeader& h) { h.expires_at_ms = h.created_at_ms - 1; }},
  };
  for (const auto& c : cases) {
    EnvelopeHeader h = ValidHeader();
    c.mutate(h);
    EXPECT_TRUE(HasError(DecodeEnvelopeHeader(EncodeEnvelopeHeader(h)), Code::kMalformed, c.field))
        << c.field;
  }
}

TEST(EnvelopeCodecTest, RefusesDuplicateRecipients) {
  EnvelopeHeader h = ValidHeader();
  h.recipients.push_back({"agency-b", Fill(kKeyIdBytes, 9), Fill(kWrappedKeyBytes, 9)});
  EXPECT_TRUE(HasError(DecodeEnvelopeHeader(EncodeEnvelopeHeader(h)), Code::kMalformed, "twice"));
}

TEST(EnvelopeCodecTest, RefusesTooManyRecipients) {
  EnvelopeHeader h = ValidHeader();
  h.recipients.clear();
  for (size_t i = 0; i <= kMaxRecipients; ++i) {
    h.recipients.push_back(
        {"agency-" + std::to_string(100 + i), Fill(kKeyIdBytes, 1), Fill(kWrappedKeyBytes, 2)});
  }
  EXPECT_TRUE(
      HasError(DecodeEnvelopeHeader(EncodeEnvelopeHeader(h)), Code::kMalformed, "recipients"));
}

TEST(EnvelopeCodecTest, RefusesUnknownEnumValues) {
  const Bytes valid = EncodeEnvelopeHeader(ValidHeader());
  struct Case {
    uint32_t field;
    uint64_t value;
    std::string name;
  };
  const std::vector<Case> cases = {
      {3, 99, "kind"},            // MessageKind
      {3, 0, "kind"},             // UNSPECIFIED is not a kind
      {3, ~uint64_t{0}, "kind"},  // -1 as a varint
      {3, 16, "kind"},            // one past MESSAGE_KIND_LINKAGE_TALLY
      {9, 99, "purpose"},         // Purpose
      {9, ~uint64_t{0}, "purpose"},
      {10, 99, "categories"},  // an extra unpacked DataCategory element
      {10, 0, "categories"},
  };
  for (const auto& c : cases) {
    Bytes extra;
    PutVarintField(extra, c.field, c.value);
    auto r = DecodeEnvelopeHeader(Concat(valid, extra));
    EXPECT_TRUE(HasError(r, Code::kMalformed, c.name)) << c.field << "=" << c.value;
  }
  // The same trick with a known value decodes, so the refusals above are about the value.
  Bytes known;
  PutVarintField(known, 3, static_cast<uint64_t>(MessageKind::kOpaque));
  auto r = DecodeEnvelopeHeader(Concat(valid, known));
  ASSERT_TRUE(IsOk(r));
  EXPECT_EQ(r->kind, MessageKind::kOpaque);
}

TEST(EnvelopeCodecTest, RefusesBadEnvelopeFields) {
  SealedEnvelope e = ValidEnvelope();
  e.signature = Fill(63, 1);
  EXPECT_TRUE(HasError(DecodeEnvelope(EncodeEnvelope(e)), Code::kMalformed, "signature"));
  e.signature = Fill(65, 1);
  EXPECT_TRUE(HasError(DecodeEnvelope(EncodeEnvelope(e)), Code::kMalformed, "signature"));
  e = ValidEnvelope();
  e.ciphertext = Fill(15, 1);
  EXPECT_TRUE(HasError(DecodeEnvelope(EncodeEnvelope(e)), Code::kMalformed, "ciphertext"));
  e = ValidEnvelope();
  e.header_bytes = Fill(20, 0xff);
  EXPECT_TRUE(HasError(DecodeEnvelope(EncodeEnvelope(e)), Code::kMalformed, "envelope header"));
  // An empty (16-byte tag only) content is fine.
  e = ValidEnvelope();
  e.ciphertext = Fill(16, 1);
  EXPECT_TRUE(IsOk(DecodeEnvelope(EncodeEnvelope(e))));
}

TEST(DirectoryCodecTest, RefusesBadPrekeys) {
  Prekey p{"agency-a", Fill(kPublicKeyBytes, 3), kT, kT};
  EXPECT_TRUE(HasError(DecodePrekey(EncodePrekey(p)), Code::kMalformed, "not_after_ms"));
  p = {"agency-a", Fill(31, 3), kT, kT + 1};
  EXPECT_TRUE(HasError(DecodePrekey(EncodePrekey(p)), Code::kMalformed, "public_key"));
  p = {"A", Fill(kPublicKeyBytes, 3), kT, kT + 1};
  EXPECT_TRUE(HasError(DecodePrekey(EncodePrekey(p)), Code::kMalformed, "owner_id"));
}

TEST(DirectoryCodecTest, RefusesBadDirectories) {
  struct Case {
    std::string part;
    std::function<void(Directory&)> mutate;
  };
  const std::vector<Case> cases = {
      {"format_version", [](Directory& d) { d.format_version = 2; }},
      {"federation", [](Directory& d) { d.federation.clear(); }},
      {"federation", [](Directory& d) { d.federation = std::string(65, 'f'); }},
      {"expires_at_ms", [](Directory& d) { d.expires_at_ms = d.issued_at_ms; }},
      {"broker list", [](Directory& d) { d.brokers.push_back(ValidAgency("agency-x", 1)); }},
      {"agency list", [](Directory& d) { d.agencies.push_back(ValidBroker("broker-x", 1)); }},
      {"twice", [](Directory& d) { d.auditors.push_back(ValidAuditor("agency-a", 1)); }},
      {"twice", [](Directory& d) { d.agencies.push_back(ValidAgency("agency-a", 1)); }},
      {"id", [](Directory& d) { d.agencies[0].id = "Agency A"; }},
      {"kind", [](Directory& d) { d.agencies[0].kind = PartyKind::kUnspecified; }},
      {"status", [](Directory& d) { d.agencies[0].status = PartyStatus::kUnspecified; }},
      {"home_broker", [](Directory& d) { d.agencies[0].home_broker = "../etc"; }},
      {"display_name", [](Directory& d) { d.agencies[0].display_name = std::string(201, 'n'); }},
      {"region", [](Directory& d) { d.agencies[0].region = std::string(49, 'r'); }},
      {"endpoint", [](Directory& d) { d.brokers[0].endpoint = std::string(257, 'e'); }},
      {"keys", [](Directory& d) { d.agencies[0].keys.clear(); }},
      {"keys.signing_key", [](Directory& d) { d.agencies[0].keys[0].signing_key = Fill(31, 1); }},
      {"keys.transport_key",
       [](Directory& d) { d.agencies[0].keys[0].transport_key = Fill(33, 1); }},
      {"keys.state", [](Directory& d) { d.agencies[0].keys[0].state = KeyState::kUnspecified; }},
      {"keys.prekeys.signature",
       [](Directory& d) { d.agencies[0].keys[0].prekeys[0].signature = Fill(63, 1); }},
      {"keys.prekeys.owner_id",
       [](Directory& d) { d.agencies[0].keys[0].prekeys[0] = MakeSignedPrekey("agency-b", 9); }},
      {"prekey",
       [](Directory& d) { d.agencies[0].keys[0].prekeys[0].prekey_bytes = Fill(10, 0xff); }},
  };
  for (const auto& c : cases) {
    Directory d = ValidDirectory();
    c.mutate(d);
    EXPECT_TRUE(HasError(DecodeDirectory(EncodeDirectory(d)), Code::kMalformed, c.part)) << c.part;
  }
  // transport_key may be empty (the authority has none).
  Directory d = ValidDirectory();
  d.brokers[0].keys[0].transport_key.clear();
  EXPECT_TRUE(IsOk(DecodeDirectory(EncodeDirectory(d))));
}

TEST(DirectoryCodecTest, RefusesBadSignedDirectories) {
  SignedDirectory sd = ValidSignedDirectory();
  sd.signature = Fill(63, 1);
  EXPECT_TRUE(
      HasError(DecodeSignedDirectory(EncodeSignedDirectory(sd)), Code::kMalformed, "signature"));
  sd = ValidSignedDirectory();
  sd.authority_key_id = Fill(15, 1);
  EXPECT_TRUE(HasError(DecodeSignedDirectory(EncodeSignedDirectory(sd)), Code::kMalformed,
                       "authority_key_id"));
  sd = ValidSignedDirectory();
  sd.directory_bytes.clear();
  EXPECT_TRUE(HasCode(DecodeSignedDirectory(EncodeSignedDirectory(sd)), Code::kMalformed));
}

TEST(DirectoryCodecTest, RefusesBadPartyRecords) {
  PartyRecord r = ValidPartyRecord();
  r.format_version = 2;
  EXPECT_TRUE(
      HasError(DecodePartyRecord(EncodePartyRecord(r)), Code::kMalformed, "format_version"));

  Bytes no_party;
  PutVarintField(no_party, 1, 1);
  EXPECT_TRUE(HasError(DecodePartyRecord(no_party), Code::kMalformed, "party"));

  SignedPartyRecord s = ValidSignedPartyRecord();
  s.signature = Fill(63, 1);
  EXPECT_TRUE(
      HasError(DecodeSignedPartyRecord(EncodeSignedPartyRecord(s)), Code::kMalformed, "signature"));
  s = ValidSignedPartyRecord();
  s.previous_key_signature = Fill(63, 1);
  EXPECT_TRUE(HasError(DecodeSignedPartyRecord(EncodeSignedPartyRecord(s)), Code::kMalformed,
                       "previous_key_signature"));
}

TEST(DirectoryCodecTest, RefusesUnknownEnumsInsideAParty) {
  const Bytes valid = EncodePartyRecord(ValidPartyRecord());
  {
    // PartyRecord.party (2) merged with {kind (2): 99}.
    Bytes party;
    PutVarintField(party, 2, 99);
    Bytes extra;
    PutLenField(extra, 2, party);
    EXPECT_TRUE(HasError(DecodePartyRecord(Concat(valid, extra)), Code::kMalformed, "kind"));
  }
  {
    // party.agency_type (4) = 42.
    Bytes party;
    PutVarintField(party, 4, 42);
    Bytes extra;
    PutLenField(extra, 2, party);
    EXPECT_TRUE(HasError(DecodePartyRecord(Concat(valid, extra)), Code::kMalformed, "agency_type"));
  }
  {
    // party.roles (7) gets an extra element 77.
    Bytes party;
    PutVarintField(party, 7, 77);
    Bytes extra;
    PutLenField(extra, 2, party);
    EXPECT_TRUE(HasError(DecodePartyRecord(Concat(valid, extra)), Code::kMalformed, "roles"));
  }
  {
    // party.status (11) = 5.
    Bytes party;
    PutVarintField(party, 11, 5);
    Bytes extra;
    PutLenField(extra, 2, party);
    EXPECT_TRUE(HasError(DecodePartyRecord(Concat(valid, extra)), Code::kMalformed, "status"));
  }
  {
    // party.keys (8) gets an extra KeyRecord {signing_key: 32 bytes, state (4): 9}.
    Bytes key;
    PutLenField(key, 1, Fill(kPublicKeyBytes, 1));
    PutVarintField(key, 4, 9);
    Bytes party;
    PutLenField(party, 8, key);
    Bytes extra;
    PutLenField(extra, 2, party);
    EXPECT_TRUE(HasError(DecodePartyRecord(Concat(valid, extra)), Code::kMalformed, "keys.state"));
  }
}

TEST(ConsentCodecTest, RefusesBadGrants) {
  struct Case {
    std::string field;
    std::function<void(ConsentGrant&)> mutate;
  };
  const std::vector<Case> cases = {
      {"format_version", [](ConsentGrant& g) { g.format_version = 0; }},
      {"grant_id", [](ConsentGrant& g) { g.grant_id = Fill(15, 1); }},
      {"case_ref", [](ConsentGrant& g) { g.case_ref.clear(); }},
      {"case_ref", [](ConsentGrant& g) { g.case_ref = "Lee Seo-yeon"; }},
      {"recorded_by", [](ConsentGrant& g) { g.recorded_by = "AGENCY"; }},
      {"basis", [](ConsentGrant& g) { g.basis = LegalBasis::kUnspecified; }},
      {"legal_article", [](ConsentGrant& g) { g.legal_article = std::string(129, 'a'); }},
      {"legal_article", [](ConsentGrant& g) { g.legal_article = "PIPA 22\x1b[2J"; }},
      {"legal_article", [](ConsentGrant& g) { g.legal_article = "PIPA\n22"; }},
      {"allowed_recipients", [](ConsentGrant& g) { g.allowed_recipients.push_back("x"); }},
      {"expires_at_ms", [](ConsentGrant& g) { g.expires_at_ms = g.issued_at_ms; }},
      {"consenters", [](ConsentGrant& g) { g.consenters.push_back(Consenter::kUnspecified); }},
      {"purposes", [](ConsentGrant& g) { g.purposes.push_back(Purpose::kUnspecified); }},
      {"categories", [](ConsentGrant& g) { g.categories.push_back(DataCategory::kUnspecified); }},
      {"allowed_agency_types",
       [](ConsentGrant& g) { g.allowed_agency_types.push_back(AgencyType::kUnspecified); }},
  };
  for (const auto& c : cases) {
    ConsentGrant g = ValidGrant();
    c.mutate(g);
    EXPECT_TRUE(HasError(DecodeConsentGrant(EncodeConsentGrant(g)), Code::kMalformed, c.field))
        << c.field;
  }
}

TEST(ConsentCodecTest, RefusesUnknownEnumValues) {
  const Bytes valid = EncodeConsentGrant(ValidGrant());
  const std::vector<std::pair<uint32_t, std::string>> fields = {{5, "basis"},
                                                                {7, "consenters"},
                                                                {9, "purposes"},
                                                                {10, "categories"},
                                                                {12, "allowed_agency_types"}};
  for (const auto& [field, name] : fields) {
    Bytes extra;
    PutVarintField(extra, field, 99);
    EXPECT_TRUE(HasError(DecodeConsentGrant(Concat(valid, extra)), Code::kMalformed, name));
  }
}

TEST(ConsentCodecTest, RefusesBadSignedGrants) {
  struct Case {
    std::string field;
    std::function<void(SignedConsentGrant&)> mutate;
  };
  const std::vector<Case> cases = {
      {"signer_key_id", [](SignedConsentGrant& g) { g.signer_key_id = Fill(15, 1); }},
      {"signature", [](SignedConsentGrant& g) { g.signature = Fill(63, 1); }},
      {"countersignatures.public_key",
       [](SignedConsentGrant& g) { g.countersignatures[0].public_key = Fill(31, 1); }},
      {"countersignatures.signature",
       [](SignedConsentGrant& g) { g.countersignatures[0].signature = Fill(63, 1); }},
      {"countersignatures.operator_ref",
       [](SignedConsentGrant& g) { g.countersignatures[0].operator_ref.clear(); }},
      {"countersignatures.operator_ref",
       [](SignedConsentGrant& g) { g.countersignatures[0].operator_ref = std::string(65, 'o'); }},
  };
  for (const auto& c : cases) {
    SignedConsentGrant g = ValidSignedGrant();
    c.mutate(g);
    EXPECT_TRUE(
        HasError(DecodeSignedConsentGrant(EncodeSignedConsentGrant(g)), Code::kMalformed, c.field))
        << c.field;
  }
}

TEST(KeyFileCodecTest, RefusesBadKeyFiles) {
  struct Case {
    std::string field;
    KeyProtection protection;
    std::function<void(SecretKeyFile&)> mutate;
  };
  const auto kNone = KeyProtection::kNone;
  const auto kArgon = KeyProtection::kArgon2idXChaCha20Poly1305;
  const std::vector<Case> cases = {
      {"format_version", kNone, [](SecretKeyFile& f) { f.format_version = 2; }},
      {"party_id", kNone, [](SecretKeyFile& f) { f.party_id = "x"; }},
      {"kind", kNone, [](SecretKeyFile& f) { f.kind = PartyKind::kUnspecified; }},
      {"protection", kNone, [](SecretKeyFile& f) { f.protection = KeyProtection::kUnspecified; }},
      {"checksum", kNone, [](SecretKeyFile& f) { f.checksum = Fill(31, 1); }},
      {"checksum", kNone, [](SecretKeyFile& f) { f.checksum.clear(); }},
      {"kdf_salt", kArgon, [](SecretKeyFile& f) { f.kdf_salt = Fill(15, 1); }},
      {"nonce", kArgon, [](SecretKeyFile& f) { f.nonce = Fill(23, 1); }},
  };
  for (const auto& c : cases) {
    SecretKeyFile f = ValidKeyFile(c.protection);
    c.mutate(f);
    EXPECT_TRUE(HasError(DecodeSecretKeyFile(EncodeSecretKeyFile(f)), Code::kMalformed, c.field))
        << c.field;
  }
  // Unknown protection and kind values, crafted on the wire.
  const Bytes valid = EncodeSecretKeyFile(ValidKeyFile(kNone));
  Bytes protection;
  PutVarintField(protection, 4, 7);
  EXPECT_TRUE(
      HasError(DecodeSecretKeyFile(Concat(valid, protection)), Code::kMalformed, "protection"));
  Bytes kind;
  PutVarintField(kind, 3, 99);
  EXPECT_TRUE(HasError(DecodeSecretKeyFile(Concat(valid, kind)), Code::kMalformed, "kind"));
}

// =====================================================================================
// File magic
// =====================================================================================

TEST(MagicTest, WithMagicAndStripMagicRoundTrip) {
  Bytes body = {1, 2, 3};
  Bytes file = WithMagic(kSecretKeyFileMagic, body);
  EXPECT_EQ(file.size(), kSecretKeyFileMagic.size() + 3);
  EXPECT_EQ(AsChars(file).substr(0, kSecretKeyFileMagic.size()), kSecretKeyFileMagic);
  auto out = StripMagic(kSecretKeyFileMagic, file, "refbus secret key");
  ASSERT_TRUE(IsOk(out));
  EXPECT_EQ(Bytes(out->begin(), out->end()), body);
  auto empty_body = StripMagic(kDirectoryFileMagic, WithMagic(kDirectoryFileMagic, Bytes{}), "d");
  ASSERT_TRUE(IsOk(empty_body));
  EXPECT_TRUE(empty_body->empty());
}

TEST(MagicTest, WrongRefbusFileTypeIsNamed) {
  Bytes record = WithMagic(kPartyRecordFileMagic, Bytes{1, 2, 3});
  auto r = StripMagic(kSecretKeyFileMagic, record, "refbus secret key");
  EXPECT_TRUE(HasError(r, Code::kMalformed, "not a refbus secret key file"));
  EXPECT_TRUE(HasSubstr(r.status().message(), "refbus-party-record/1"));
  EXPECT_TRUE(HasSubstr(r.status().message(), "refbus-secret-key/1"));

  Bytes directory = WithMagic(kDirectoryFileMagic, Bytes{});
  auto d = StripMagic(kConsentGrantFileMagic, directory, "refbus consent grant");
  EXPECT_TRUE(HasError(d, Code::kMalformed, "refbus-directory/1"));
}

TEST(MagicTest, NewerVersionIsNamed) {
  Bytes file = WithMagic("refbus-secret-key/2\n", Bytes{1});
  auto r = StripMagic(kSecretKeyFileMagic, file, "refbus secret key");
  EXPECT_TRUE(HasError(r, Code::kMalformed, "refbus-secret-key/2"));
}

TEST(MagicTest, ForeignFileSaysNotA) {
  for (std::string text : {"hello", "", "refbus", "-----BEGIN PRIVATE KEY-----\n",
                           "refbus-secret-key/1", "REFBUS-SECRET-KEY/1\n"}) {
    auto r = StripMagic(kSecretKeyFileMagic, AsBytes(text), "refbus secret key");
    EXPECT_TRUE(HasError(r, Code::kMalformed, "not a refbus secret key file")) << text;
  }
}

TEST(MagicTest, DoesNotEchoUnprintableOrLongFirstLines) {
  std::string control = "refbus-\x1b[31mred\n";
  auto r = StripMagic(kSecretKeyFileMagic, AsBytes(control), "refbus secret key");
  EXPECT_TRUE(HasError(r, Code::kMalformed, "does not start with"));
  EXPECT_EQ(r.status().message().find('\x1b'), std::string::npos);

  std::string long_line = "refbus-" + std::string(200, 'x') + "\n";
  auto l = StripMagic(kSecretKeyFileMagic, AsBytes(long_line), "refbus secret key");
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().message().find(std::string(60, 'x')), std::string::npos)
      << "the first line is cut at 64 characters";
}

}  // namespace
}  // namespace refbus::schema

namespace refbus::schema {
namespace {

AuditEntry RejectedEntry() {
  AuditEntry e;
  e.index = 4;
  e.time_ms = 1'800'000'000'000;
  e.event = AuditEvent::kEnvelopeRejected;
  e.broker_id = "seoul-broker";
  e.actor = "seoul-police-03";
  e.reason = NackReason::kMalformed;
  return e;
}

TEST(AuditEntryCodecTest, AnAggregateOfRefusalsRoundTrips) {
  AuditEntry e = RejectedEntry();
  e.refusal_count = 4990;
  e.first_refused_ms = 1'800'000'000'001;
  e.last_refused_ms = 1'800'000'000'900;
  auto d = DecodeAuditEntry(EncodeAuditEntry(e));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->refusal_count, 4990u);
  EXPECT_EQ(d->first_refused_ms, e.first_refused_ms);
  EXPECT_EQ(d->last_refused_ms, e.last_refused_ms);
  EXPECT_EQ(d->Refusals(), 4990u);
  // An entry written before the fields existed (or one refusal) stands for one.
  auto one = DecodeAuditEntry(EncodeAuditEntry(RejectedEntry()));
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->refusal_count, 0u);
  EXPECT_EQ(one->Refusals(), 1u);
  // Unset fields add no bytes: the leaves of entries without them are what they were.
  EXPECT_EQ(EncodeAuditEntry(*one), EncodeAuditEntry(RejectedEntry()));
}

TEST(AuditEntryCodecTest, RefusalCountOnlyOnRejectedEntriesWithTimesInOrder) {
  AuditEntry other = RejectedEntry();
  other.event = AuditEvent::kEnvelopeAccepted;
  other.refusal_count = 2;
  other.first_refused_ms = other.last_refused_ms = 5;
  AuditEntry backwards = RejectedEntry();
  backwards.refusal_count = 2;
  backwards.first_refused_ms = 9;
  backwards.last_refused_ms = 5;
  AuditEntry untimed = RejectedEntry();
  untimed.refusal_count = 2;
  for (const AuditEntry& e : {other, backwards, untimed}) {
    auto d = DecodeAuditEntry(EncodeAuditEntry(e));
    ASSERT_FALSE(d.ok());
    EXPECT_NE(d.status().message().find("refusal_count"), std::string::npos)
        << d.status().ToString();
  }
}

TEST(FrameCodecTest, PeekRequestIdReadsTheIdWithoutDecoding) {
  Frame f;
  f.type = Frame::Type::kSubmit;
  f.request_id = 1234567;
  f.submit.envelope = Bytes(3000, 0x42);
  EXPECT_EQ(PeekRequestId(EncodeFrame(f)), 1234567u);
  f.request_id = 0;
  EXPECT_EQ(PeekRequestId(EncodeFrame(f)), 0u);
  // Garbage, a truncated frame and nothing at all carry no id.
  EXPECT_EQ(PeekRequestId(Bytes{0x07, 0x01, 0x02}), 0u);
  f.request_id = 99;
  Bytes cut = EncodeFrame(f);
  ASSERT_GT(cut.size(), 10u);
  cut.erase(cut.end() - 10, cut.end());
  EXPECT_EQ(PeekRequestId(cut), 0u);
  EXPECT_EQ(PeekRequestId(Bytes{}), 0u);
}

}  // namespace
}  // namespace refbus::schema
