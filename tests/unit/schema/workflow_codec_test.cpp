// Tests for the case-message half of schema/codec.h (schema/codec_workflow.cpp): round
// trips of every CaseMessage body and signed statement, refusal of hostile input with a
// kMalformed status naming the field, and the names of the workflow enumerations.
//
// Invalid objects are made by encoding a valid one with one field broken: the encoders
// pass values through unchecked, so only the decoders are under test.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "schema/codec.h"
#include "schema/workflow.h"
#include "tests/unit/test_util.h"

namespace refbus::schema {
// Named after the file, not anonymous: its helpers share names with other test files
// compiled in the same unity batch (tests/CMakeLists.txt).
namespace workflow_codec_test {

using test::HasCode;
using test::HasError;
using test::IsOk;
using Code = Status::Code;

constexpr UnixMillis kT = 1'780'000'000'000;  // a fixed time in 2026
constexpr char kCase[] = "CASE-2026-0001";

Bytes Fill(size_t n, uint8_t v) { return Bytes(n, v); }

// ---- Valid objects ----

ConsentGrant ValidGrant() {
  ConsentGrant g;
  g.grant_id = Fill(kGrantIdBytes, 0x17);
  g.case_ref = kCase;
  g.recorded_by = "wee-center-a";
  g.basis = LegalBasis::kConsentSubject;
  g.consenters = {Consenter::kSubject};
  g.purposes = {Purpose::kCounseling, Purpose::kDeletion};
  g.categories = {DataCategory::kIdentity, DataCategory::kContentLocations};
  g.allowed_recipients = {"counsel-b"};
  g.allowed_agency_types = {AgencyType::kDeletionCenter};
  g.issued_at_ms = kT;
  g.expires_at_ms = kT + 90 * kMillisPerDay;
  return g;
}

Bytes ValidSignedGrantBytes() {
  SignedConsentGrant s;
  s.grant_bytes = EncodeConsentGrant(ValidGrant());
  s.signer_key_id = Fill(kKeyIdBytes, 0x21);
  s.signature = Fill(kSignatureBytes, 0x5a);
  return EncodeSignedConsentGrant(s);
}

Referral ValidReferral() {
  Referral r;
  r.referral_id = Fill(kWorkflowIdBytes, 0x01);
  r.case_ref = kCase;
  r.referring_agency = "wee-center-a";
  r.to_agency = "counsel-b";
  r.purpose = Purpose::kCounseling;
  r.fields = {{DataCategory::kIdentity, "age", "15"},
              {DataCategory::kContact, "school", "middle school"},
              {DataCategory::kIncidentSummary, "note", ""}};
  r.signed_grant = ValidSignedGrantBytes();
  r.operator_ref = "op-17";
  r.sent_at_ms = kT;
  return r;
}

ReferralStateChange ValidStateChange() {
  ReferralStateChange c;
  c.referral_id = Fill(kWorkflowIdBytes, 0x02);
  c.case_ref = kCase;
  c.from_state = ReferralState::kRequested;
  c.to_state = ReferralState::kDeclined;
  c.reason = "no capacity this month";
  c.operator_ref = "op-18";
  c.changed_at_ms = kT + 1;
  return c;
}

Handoff ValidHandoff() {
  Handoff h;
  h.handoff_id = Fill(kWorkflowIdBytes, 0x03);
  h.case_ref = kCase;
  h.from_lead = "police-x";
  h.to_lead = "support-s";
  h.reason = "investigation closed";
  h.fields = {{DataCategory::kInvestigation, "status", "closed"}};
  h.signed_grant = ValidSignedGrantBytes();
  h.operator_ref = "op-19";
  h.sent_at_ms = kT + 2;
  return h;
}

HandoffAck ValidHandoffAck() {
  HandoffAck a;
  a.handoff_id = Fill(kWorkflowIdBytes, 0x03);
  a.case_ref = kCase;
  a.accepted = true;
  a.reason = "";
  a.operator_ref = "op-20";
  a.acked_at_ms = kT + 3;
  return a;
}

DeletionRequest ValidDeletionRequest() {
  DeletionRequest r;
  r.request_id = Fill(kWorkflowIdBytes, 0x04);
  r.case_ref = kCase;
  r.items = {{"item-1", "https://video.example/v/123", Fill(32, 0xab), "video-site-a", ""},
             {"item-2", "https://forum.example/t/9", Bytes(), "", ""}};
  r.monitor = true;
  r.report_to = {"wee-center-a", "counsel-b"};
  r.signed_grant = ValidSignedGrantBytes();
  r.operator_ref = "op-21";
  r.sent_at_ms = kT + 4;
  return r;
}

DeletionStatusReport ValidDeletionStatus() {
  DeletionStatusReport r;
  r.request_id = Fill(kWorkflowIdBytes, 0x04);
  r.case_ref = kCase;
  r.updates = {{"item-1", DeletionItemStatus::kNotified, kT + 5},
               {"item-2", DeletionItemStatus::kRemoved, kT + 6}};
  r.counts = {0, 1, 1, 0, 0};
  r.report_seq = 3;
  return r;
}

AccessRecord ValidAccessRecord() {
  AccessRecord a;
  a.message_id = Fill(kMessageIdBytes, 0x31);
  a.case_ref = kCase;
  a.agency_id = "counsel-b";
  a.operator_ref = "op-22";
  a.opened_at_ms = kT + 7;
  a.consent_grant_id = Fill(kGrantIdBytes, 0x17);
  a.kind = MessageKind::kReferral;
  a.owner_agency = "wee-center-a";
  return a;
}

ConsentRevocation ValidRevocation() {
  ConsentRevocation r;
  r.grant_id = Fill(kGrantIdBytes, 0x17);
  r.case_ref = kCase;
  r.revoked_by = "wee-center-a";
  r.reason = RevocationReason::kWithdrawnByGuardian;
  r.revoked_at_ms = kT + 8;
  return r;
}

PurgeConfirmation ValidPurge() {
  PurgeConfirmation p;
  p.grant_id = Fill(kGrantIdBytes, 0x17);
  p.case_ref = kCase;
  p.agency_id = "counsel-b";
  p.purged_at_ms = kT + 9;
  p.messages_purged = 4;
  p.purged_ids_sha256 = Fill(32, 0xcd);
  return p;
}

SignedStatement StatementOf(Bytes statement) {
  return SignedStatement{std::move(statement), Fill(kKeyIdBytes, 0x41), Fill(kSignatureBytes, 0x42),
                         std::nullopt};
}

CaseClosed ValidCaseClosed() {
  return CaseClosed{kCase, "support-s", "service completed", "op-23", kT + 10};
}

LinkageEntry ValidLinkageEntry() {
  return LinkageEntry{
      kCase,   Fill(kWorkflowIdBytes, 0x51), Fill(32, 0x52), Fill(32, 0x03), Fill(80, 0x54),
      kT + 11, ValidSignedGrantBytes(),      "op-24",        kT + 12};
}

LinkageNotice ValidLinkageNotice() {
  return LinkageNotice{kCase, Fill(16, 0x61), "phone", {{"incheon-c", kT, kT + 1, 2, 30}}, kT + 13};
}

LinkageTallyEvidence ValidLinkageTally() {
  return LinkageTallyEvidence{
      kCase, Fill(16, 0x62), R"({"agency":"seoul-c"})", ValidSignedGrantBytes(), "op-25", kT + 14};
}

const std::vector<CaseMessage::Type>& AllTypes() {
  static const std::vector<CaseMessage::Type> kTypes = {
      CaseMessage::Type::kReferral,          CaseMessage::Type::kStateChange,
      CaseMessage::Type::kHandoff,           CaseMessage::Type::kHandoffAck,
      CaseMessage::Type::kDeletionRequest,   CaseMessage::Type::kDeletionStatus,
      CaseMessage::Type::kAccessNotice,      CaseMessage::Type::kConsentRevocation,
      CaseMessage::Type::kPurgeConfirmation, CaseMessage::Type::kCaseClosed,
      CaseMessage::Type::kLinkageEntry,      CaseMessage::Type::kLinkageNotice,
      CaseMessage::Type::kDeletionWatchList, CaseMessage::Type::kLinkageTally};
  return kTypes;
}

CaseMessage MessageOf(CaseMessage::Type type) {
  CaseMessage m;
  m.type = type;
  switch (type) {
    case CaseMessage::Type::kReferral:
      m.referral = ValidReferral();
      break;
    case CaseMessage::Type::kStateChange:
      m.state_change = ValidStateChange();
      break;
    case CaseMessage::Type::kHandoff:
      m.handoff = ValidHandoff();
      break;
    case CaseMessage::Type::kHandoffAck:
      m.handoff_ack = ValidHandoffAck();
      break;
    case CaseMessage::Type::kDeletionRequest:
      m.deletion_request = ValidDeletionRequest();
      break;
    case CaseMessage::Type::kDeletionStatus:
      m.deletion_status = ValidDeletionStatus();
      break;
    case CaseMessage::Type::kAccessNotice:
      m.statement = StatementOf(EncodeAccessRecord(ValidAccessRecord()));
      break;
    case CaseMessage::Type::kConsentRevocation:
      m.statement = StatementOf(EncodeConsentRevocation(ValidRevocation()));
      break;
    case CaseMessage::Type::kPurgeConfirmation:
      m.statement = StatementOf(EncodePurgeConfirmation(ValidPurge()));
      break;
    case CaseMessage::Type::kCaseClosed:
      m.case_closed = ValidCaseClosed();
      break;
    case CaseMessage::Type::kLinkageEntry:
      m.linkage_entry = ValidLinkageEntry();
      break;
    case CaseMessage::Type::kLinkageNotice:
      m.linkage_notice = ValidLinkageNotice();
      break;
    case CaseMessage::Type::kDeletionWatchList:
      m.watch_list.file = R"({"format":1})";
      break;
    case CaseMessage::Type::kLinkageTally:
      m.linkage_tally = ValidLinkageTally();
      break;
  }
  return m;
}

CaseMessage Wrap(Referral r) {
  CaseMessage m;
  m.type = CaseMessage::Type::kReferral;
  m.referral = std::move(r);
  return m;
}
CaseMessage Wrap(ReferralStateChange c) {
  CaseMessage m;
  m.type = CaseMessage::Type::kStateChange;
  m.state_change = std::move(c);
  return m;
}
CaseMessage Wrap(Handoff h) {
  CaseMessage m;
  m.type = CaseMessage::Type::kHandoff;
  m.handoff = std::move(h);
  return m;
}
CaseMessage Wrap(HandoffAck a) {
  CaseMessage m;
  m.type = CaseMessage::Type::kHandoffAck;
  m.handoff_ack = std::move(a);
  return m;
}
CaseMessage Wrap(DeletionRequest r) {
  CaseMessage m;
  m.type = CaseMessage::Type::kDeletionRequest;
  m.deletion_request = std::move(r);
  return m;
}
CaseMessage Wrap(DeletionStatusReport r) {
  CaseMessage m;
  m.type = CaseMessage::Type::kDeletionStatus;
  m.deletion_status = std::move(r);
  return m;
}
CaseMessage Wrap(DeletionWatchList w) {
  CaseMessage m;
  m.type = CaseMessage::Type::kDeletionWatchList;
  m.watch_list = std::move(w);
  return m;
}
CaseMessage Wrap(CaseClosed c) {
  CaseMessage m;
  m.type = CaseMessage::Type::kCaseClosed;
  m.case_closed = std::move(c);
  return m;
}

// Encodes a (possibly broken) message and decodes it again.
template <typename Body>
Result<CaseMessage> RoundTrip(Body body) {
  return DecodeCaseMessage(EncodeCaseMessage(Wrap(std::move(body))));
}

::testing::AssertionResult OkOrRefused(const Status& s) {
  if (s.ok() || s.code() == Code::kMalformed || s.code() == Code::kResourceExhausted) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "unexpected status " << s.ToString();
}

// ---- Raw protobuf wire format, for padding ----

void PutVarint(Bytes& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}
size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}
// Appends an unknown length-delimited field (number 1000) so that `b` becomes exactly
// `target` bytes long. Unknown fields parse, so the result is a valid encoding.
Bytes PadTo(Bytes b, size_t target) {
  Bytes tag;
  PutVarint(tag, (uint64_t{1000} << 3) | 2);
  size_t room = target - b.size() - tag.size();
  size_t len = room - VarintSize(room);
  while (len + VarintSize(len) < room) ++len;
  if (len + VarintSize(len) != room) throw std::runtime_error("cannot pad to that size");
  Append(b, tag);
  PutVarint(b, len);
  b.resize(target, 0x61);
  return b;
}

// =====================================================================================
// Round trips
// =====================================================================================

TEST(WorkflowCodecTest, EveryCaseMessageTypeRoundTrips) {
  for (CaseMessage::Type type : AllTypes()) {
    Bytes bytes = EncodeCaseMessage(MessageOf(type));
    auto out = DecodeCaseMessage(bytes);
    ASSERT_TRUE(IsOk(out)) << static_cast<int>(type);
    EXPECT_EQ(out->type, type);
    EXPECT_EQ(out->version, 1u);
    EXPECT_EQ(EncodeCaseMessage(*out), bytes) << static_cast<int>(type);
  }
}

// Linkage bodies (PROTOCOL.md 13.6): sizes are checked before anything else reads them.
TEST(WorkflowCodecTest, LinkageEntryAndNoticeSizesAreChecked) {
  CaseMessage m = MessageOf(CaseMessage::Type::kLinkageEntry);
  m.linkage_entry.tag.pop_back();
  EXPECT_FALSE(DecodeCaseMessage(EncodeCaseMessage(m)).ok());
  m = MessageOf(CaseMessage::Type::kLinkageEntry);
  m.linkage_entry.signed_grant.clear();
  EXPECT_FALSE(DecodeCaseMessage(EncodeCaseMessage(m)).ok());
  m = MessageOf(CaseMessage::Type::kLinkageNotice);
  m.linkage_notice.others.clear();
  EXPECT_FALSE(DecodeCaseMessage(EncodeCaseMessage(m)).ok());
  m = MessageOf(CaseMessage::Type::kLinkageNotice);
  m.linkage_notice.linkage_id.push_back(0);
  EXPECT_FALSE(DecodeCaseMessage(EncodeCaseMessage(m)).ok());
}

// A tally's evidence (PROTOCOL.md 13.8): the linkage id's size, the evidence present and at
// most kMaxLinkageEvidenceBytes, the grant carried.
TEST(WorkflowCodecTest, LinkageTallySizesAreChecked) {
  CaseMessage m = MessageOf(CaseMessage::Type::kLinkageTally);
  m.linkage_tally.evidence.assign(kMaxLinkageEvidenceBytes, 'x');
  EXPECT_TRUE(DecodeCaseMessage(EncodeCaseMessage(m)).ok());
  m.linkage_tally.evidence.push_back('x');
  auto over = DecodeCaseMessage(EncodeCaseMessage(m));
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.status().message().find("evidence"), std::string::npos)
      << over.status().ToString();
  m = MessageOf(CaseMessage::Type::kLinkageTally);
  m.linkage_tally.evidence.clear();
  EXPECT_FALSE(DecodeCaseMessage(EncodeCaseMessage(m)).ok());
  m = MessageOf(CaseMessage::Type::kLinkageTally);
  m.linkage_tally.linkage_id.pop_back();
  EXPECT_FALSE(DecodeCaseMessage(EncodeCaseMessage(m)).ok());
  m = MessageOf(CaseMessage::Type::kLinkageTally);
  m.linkage_tally.signed_grant.clear();
  EXPECT_FALSE(DecodeCaseMessage(EncodeCaseMessage(m)).ok());
}

// PROTOCOL.md 9.2: an operator's signature on a case message covers the exact bytes
// before it, and is the message's last field.
TEST(WorkflowCodecTest, OperatorSignatureIsTheLastFieldAndCoversTheBytesBefore) {
  CaseMessage m = MessageOf(CaseMessage::Type::kReferral);
  const Bytes body = EncodeCaseMessageBody(m);
  m.operator_signature = OperatorSignature{"carol", Bytes(32, 7), Bytes(64, 9)};
  const Bytes all = EncodeCaseMessage(m);
  ASSERT_GT(all.size(), body.size());
  EXPECT_TRUE(std::equal(body.begin(), body.end(), all.begin())) << "the body is the prefix";
  auto out = DecodeCaseMessage(all);
  ASSERT_TRUE(IsOk(out));
  ASSERT_TRUE(out->operator_signature.has_value());
  EXPECT_EQ(out->operator_signature->operator_ref, "carol");
  EXPECT_EQ(out->operator_signed_bytes, body);
  EXPECT_EQ(EncodeCaseMessage(*out), all);
  // The signature first, then the body: it is not the last field, refused.
  Bytes moved(all.begin() + static_cast<ptrdiff_t>(body.size()), all.end());
  moved.insert(moved.end(), body.begin(), body.end());
  EXPECT_TRUE(HasError(DecodeCaseMessage(moved), Code::kMalformed, "operator_signature"));
  // A key or signature of the wrong size.
  m.operator_signature->public_key = Bytes(31, 7);
  EXPECT_TRUE(HasError(DecodeCaseMessage(EncodeCaseMessage(m)), Code::kMalformed, "public_key"));
  // Without one: nothing signed, nothing set.
  auto plain = DecodeCaseMessage(body);
  ASSERT_TRUE(IsOk(plain));
  EXPECT_FALSE(plain->operator_signature.has_value());
  EXPECT_TRUE(plain->operator_signed_bytes.empty());
}

TEST(WorkflowCodecTest, ReferralFieldsSurvive) {
  Referral in = ValidReferral();
  auto out = RoundTrip(in);
  ASSERT_TRUE(IsOk(out));
  const Referral& r = out->referral;
  EXPECT_EQ(r.referral_id, in.referral_id);
  EXPECT_EQ(r.case_ref, kCase);
  EXPECT_EQ(r.referring_agency, "wee-center-a");
  EXPECT_EQ(r.to_agency, "counsel-b");
  EXPECT_EQ(r.purpose, Purpose::kCounseling);
  ASSERT_EQ(r.fields.size(), 3u);
  for (size_t i = 0; i < r.fields.size(); ++i) {
    EXPECT_EQ(r.fields[i].category, in.fields[i].category);
    EXPECT_EQ(r.fields[i].name, in.fields[i].name);
    EXPECT_EQ(r.fields[i].value, in.fields[i].value);
  }
  EXPECT_EQ(r.signed_grant, in.signed_grant);
  EXPECT_EQ(r.operator_ref, "op-17");
  EXPECT_EQ(r.sent_at_ms, kT);
}

TEST(WorkflowCodecTest, StateChangeFieldsSurvive) {
  ReferralStateChange in = ValidStateChange();
  auto out = RoundTrip(in);
  ASSERT_TRUE(IsOk(out));
  const ReferralStateChange& c = out->state_change;
  EXPECT_EQ(c.referral_id, in.referral_id);
  EXPECT_EQ(c.case_ref, kCase);
  EXPECT_EQ(c.from_state, ReferralState::kRequested);
  EXPECT_EQ(c.to_state, ReferralState::kDeclined);
  EXPECT_EQ(c.reason, in.reason);
  EXPECT_EQ(c.operator_ref, "op-18");
  EXPECT_EQ(c.changed_at_ms, kT + 1);
}

TEST(WorkflowCodecTest, HandoffFieldsSurvive) {
  Handoff in = ValidHandoff();
  auto out = RoundTrip(in);
  ASSERT_TRUE(IsOk(out));
  const Handoff& h = out->handoff;
  EXPECT_EQ(h.handoff_id, in.handoff_id);
  EXPECT_EQ(h.case_ref, kCase);
  EXPECT_EQ(h.from_lead, "police-x");
  EXPECT_EQ(h.to_lead, "support-s");
  EXPECT_EQ(h.reason, in.reason);
  ASSERT_EQ(h.fields.size(), 1u);
  EXPECT_EQ(h.fields[0].category, DataCategory::kInvestigation);
  EXPECT_EQ(h.fields[0].name, "status");
  EXPECT_EQ(h.fields[0].value, "closed");
  EXPECT_EQ(h.signed_grant, in.signed_grant);
  EXPECT_EQ(h.operator_ref, "op-19");
  EXPECT_EQ(h.sent_at_ms, kT + 2);
}

TEST(WorkflowCodecTest, HandoffAckFieldsSurvive) {
  for (bool accepted : {true, false}) {
    HandoffAck in = ValidHandoffAck();
    in.accepted = accepted;
    in.reason = accepted ? "" : "no case-lead capacity";
    auto out = RoundTrip(in);
    ASSERT_TRUE(IsOk(out));
    const HandoffAck& a = out->handoff_ack;
    EXPECT_EQ(a.handoff_id, in.handoff_id);
    EXPECT_EQ(a.case_ref, kCase);
    EXPECT_EQ(a.accepted, accepted);
    EXPECT_EQ(a.reason, in.reason);
    EXPECT_EQ(a.operator_ref, "op-20");
    EXPECT_EQ(a.acked_at_ms, kT + 3);
  }
}

TEST(WorkflowCodecTest, DeletionRequestFieldsSurvive) {
  DeletionRequest in = ValidDeletionRequest();
  auto out = RoundTrip(in);
  ASSERT_TRUE(IsOk(out));
  const DeletionRequest& r = out->deletion_request;
  EXPECT_EQ(r.request_id, in.request_id);
  EXPECT_EQ(r.case_ref, kCase);
  ASSERT_EQ(r.items.size(), 2u);
  for (size_t i = 0; i < r.items.size(); ++i) {
    EXPECT_EQ(r.items[i].item_id, in.items[i].item_id);
    EXPECT_EQ(r.items[i].url, in.items[i].url);
    EXPECT_EQ(r.items[i].content_sha256, in.items[i].content_sha256);
    EXPECT_EQ(r.items[i].platform, in.items[i].platform);
  }
  EXPECT_TRUE(r.monitor);
  EXPECT_EQ(r.report_to, in.report_to);
  EXPECT_EQ(r.signed_grant, in.signed_grant);
  EXPECT_EQ(r.operator_ref, "op-21");
  EXPECT_EQ(r.sent_at_ms, kT + 4);
}

TEST(WorkflowCodecTest, DeletionStatusFieldsSurvive) {
  DeletionStatusReport in = ValidDeletionStatus();
  auto out = RoundTrip(in);
  ASSERT_TRUE(IsOk(out));
  const DeletionStatusReport& r = out->deletion_status;
  EXPECT_EQ(r.request_id, in.request_id);
  EXPECT_EQ(r.case_ref, kCase);
  ASSERT_EQ(r.updates.size(), 2u);
  for (size_t i = 0; i < r.updates.size(); ++i) {
    EXPECT_EQ(r.updates[i].item_id, in.updates[i].item_id);
    EXPECT_EQ(r.updates[i].status, in.updates[i].status);
    EXPECT_EQ(r.updates[i].at_ms, in.updates[i].at_ms);
  }
  EXPECT_EQ(r.counts, in.counts);
  EXPECT_EQ(r.report_seq, 3u);
}

TEST(WorkflowCodecTest, DeletionStatusWithoutUpdatesIsAllowed) {
  DeletionStatusReport in = ValidDeletionStatus();
  in.updates.clear();
  EXPECT_TRUE(IsOk(RoundTrip(in)));
}

TEST(WorkflowCodecTest, CaseClosedFieldsSurvive) {
  auto out = RoundTrip(ValidCaseClosed());
  ASSERT_TRUE(IsOk(out));
  const CaseClosed& c = out->case_closed;
  EXPECT_EQ(c.case_ref, kCase);
  EXPECT_EQ(c.closed_by, "support-s");
  EXPECT_EQ(c.reason, "service completed");
  EXPECT_EQ(c.operator_ref, "op-23");
  EXPECT_EQ(c.closed_at_ms, kT + 10);
}

TEST(WorkflowCodecTest, StatementBodiesKeepTheirExactBytes) {
  for (auto type : {CaseMessage::Type::kAccessNotice, CaseMessage::Type::kConsentRevocation,
                    CaseMessage::Type::kPurgeConfirmation}) {
    CaseMessage in = MessageOf(type);
    auto out = DecodeCaseMessage(EncodeCaseMessage(in));
    ASSERT_TRUE(IsOk(out));
    EXPECT_EQ(out->type, type);
    EXPECT_EQ(out->statement.statement, in.statement.statement);
    EXPECT_EQ(out->statement.signer_key_id, in.statement.signer_key_id);
    EXPECT_EQ(out->statement.signature, in.statement.signature);
  }
}

TEST(WorkflowCodecTest, SignedStatementRoundTrip) {
  SignedStatement in = StatementOf(EncodeConsentRevocation(ValidRevocation()));
  Bytes bytes = EncodeSignedStatement(in);
  auto out = DecodeSignedStatement(bytes);
  ASSERT_TRUE(IsOk(out));
  EXPECT_EQ(out->statement, in.statement);
  EXPECT_EQ(out->signer_key_id, in.signer_key_id);
  EXPECT_EQ(out->signature, in.signature);
  EXPECT_EQ(EncodeSignedStatement(*out), bytes);
}

TEST(WorkflowCodecTest, AccessRecordRoundTrip) {
  AccessRecord in = ValidAccessRecord();
  Bytes bytes = EncodeAccessRecord(in);
  auto out = DecodeAccessRecord(bytes);
  ASSERT_TRUE(IsOk(out));
  EXPECT_EQ(out->message_id, in.message_id);
  EXPECT_EQ(out->case_ref, kCase);
  EXPECT_EQ(out->agency_id, "counsel-b");
  EXPECT_EQ(out->operator_ref, "op-22");
  EXPECT_EQ(out->opened_at_ms, kT + 7);
  EXPECT_EQ(out->consent_grant_id, in.consent_grant_id);
  EXPECT_EQ(out->kind, MessageKind::kReferral);
  EXPECT_EQ(out->owner_agency, "wee-center-a");
  EXPECT_EQ(EncodeAccessRecord(*out), bytes);
}

TEST(WorkflowCodecTest, AccessRecordGrantIdMayBeEmpty) {
  AccessRecord in = ValidAccessRecord();
  in.consent_grant_id.clear();
  EXPECT_TRUE(IsOk(DecodeAccessRecord(EncodeAccessRecord(in))));
}

TEST(WorkflowCodecTest, ConsentRevocationRoundTrip) {
  ConsentRevocation in = ValidRevocation();
  Bytes bytes = EncodeConsentRevocation(in);
  auto out = DecodeConsentRevocation(bytes);
  ASSERT_TRUE(IsOk(out));
  EXPECT_EQ(out->grant_id, in.grant_id);
  EXPECT_EQ(out->case_ref, kCase);
  EXPECT_EQ(out->revoked_by, "wee-center-a");
  EXPECT_EQ(out->reason, RevocationReason::kWithdrawnByGuardian);
  EXPECT_EQ(out->revoked_at_ms, kT + 8);
  EXPECT_EQ(EncodeConsentRevocation(*out), bytes);
}

TEST(WorkflowCodecTest, PurgeConfirmationRoundTrip) {
  PurgeConfirmation in = ValidPurge();
  Bytes bytes = EncodePurgeConfirmation(in);
  auto out = DecodePurgeConfirmation(bytes);
  ASSERT_TRUE(IsOk(out));
  EXPECT_EQ(out->grant_id, in.grant_id);
  EXPECT_EQ(out->case_ref, kCase);
  EXPECT_EQ(out->agency_id, "counsel-b");
  EXPECT_EQ(out->purged_at_ms, kT + 9);
  EXPECT_EQ(out->messages_purged, 4u);
  EXPECT_EQ(out->purged_ids_sha256, in.purged_ids_sha256);
  EXPECT_EQ(EncodePurgeConfirmation(*out), bytes);
}

TEST(WorkflowCodecTest, LimitsAreInclusive) {
  Referral r = ValidReferral();
  r.fields.assign(kMaxCaseFields, {DataCategory::kIdentity, std::string(kMaxFieldNameBytes, 'n'),
                                   std::string(64, 'v')});
  r.fields[0].value = std::string(kMaxFieldValueBytes, 'v');
  r.operator_ref = std::string(kMaxOperatorRefBytes, 'o');
  EXPECT_TRUE(IsOk(RoundTrip(r)));

  ReferralStateChange c = ValidStateChange();
  c.reason = std::string(kMaxReasonBytes, 'r');
  EXPECT_TRUE(IsOk(RoundTrip(c)));

  DeletionRequest d = ValidDeletionRequest();
  d.items[0].url = std::string(kMaxUrlBytes, 'u');
  d.items[0].item_id = std::string(64, 'i');
  d.items[0].platform = std::string(64, 'p');
  EXPECT_TRUE(IsOk(RoundTrip(d)));
}

TEST(WorkflowCodecTest, KindOfMapsEveryTypeToItsEnvelopeKind) {
  EXPECT_EQ(KindOf(CaseMessage::Type::kReferral), MessageKind::kReferral);
  EXPECT_EQ(KindOf(CaseMessage::Type::kStateChange), MessageKind::kReferralState);
  EXPECT_EQ(KindOf(CaseMessage::Type::kHandoff), MessageKind::kHandoff);
  EXPECT_EQ(KindOf(CaseMessage::Type::kHandoffAck), MessageKind::kHandoffAck);
  EXPECT_EQ(KindOf(CaseMessage::Type::kDeletionRequest), MessageKind::kDeletionRequest);
  EXPECT_EQ(KindOf(CaseMessage::Type::kDeletionStatus), MessageKind::kDeletionStatus);
  EXPECT_EQ(KindOf(CaseMessage::Type::kAccessNotice), MessageKind::kAccessNotice);
  EXPECT_EQ(KindOf(CaseMessage::Type::kConsentRevocation), MessageKind::kConsentRevocation);
  EXPECT_EQ(KindOf(CaseMessage::Type::kPurgeConfirmation), MessageKind::kPurgeConfirmation);
  EXPECT_EQ(KindOf(CaseMessage::Type::kCaseClosed), MessageKind::kCaseClosed);
}

// =====================================================================================
// Hostile input: one broken field at a time
// =====================================================================================

TEST(WorkflowCodecTest, RefusesWrongSizeWorkflowIds) {
  for (size_t n : {size_t{0}, size_t{15}, size_t{17}, size_t{32}}) {
    Referral r = ValidReferral();
    r.referral_id = Fill(n, 1);
    EXPECT_TRUE(HasError(RoundTrip(r), Code::kMalformed, "'referral_id'")) << n;
    ReferralStateChange c = ValidStateChange();
    c.referral_id = Fill(n, 1);
    EXPECT_TRUE(HasError(RoundTrip(c), Code::kMalformed, "'referral_id'")) << n;
    Handoff h = ValidHandoff();
    h.handoff_id = Fill(n, 1);
    EXPECT_TRUE(HasError(RoundTrip(h), Code::kMalformed, "'handoff_id'")) << n;
    HandoffAck a = ValidHandoffAck();
    a.handoff_id = Fill(n, 1);
    EXPECT_TRUE(HasError(RoundTrip(a), Code::kMalformed, "'handoff_id'")) << n;
    DeletionRequest d = ValidDeletionRequest();
    d.request_id = Fill(n, 1);
    EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'request_id'")) << n;
    DeletionStatusReport s = ValidDeletionStatus();
    s.request_id = Fill(n, 1);
    EXPECT_TRUE(HasError(RoundTrip(s), Code::kMalformed, "'request_id'")) << n;
  }
}

TEST(WorkflowCodecTest, RefusesBadCaseRefs) {
  for (const std::string& bad : std::vector<std::string>{"", "short", "CASE 2026 0001",
                                                         "CASE_2026_0001", std::string(65, 'C')}) {
    Referral r = ValidReferral();
    r.case_ref = bad;
    EXPECT_TRUE(HasError(RoundTrip(r), Code::kMalformed, "'case_ref'")) << bad;
    ReferralStateChange c = ValidStateChange();
    c.case_ref = bad;
    EXPECT_TRUE(HasError(RoundTrip(c), Code::kMalformed, "'case_ref'")) << bad;
    Handoff h = ValidHandoff();
    h.case_ref = bad;
    EXPECT_TRUE(HasError(RoundTrip(h), Code::kMalformed, "'case_ref'")) << bad;
    HandoffAck a = ValidHandoffAck();
    a.case_ref = bad;
    EXPECT_TRUE(HasError(RoundTrip(a), Code::kMalformed, "'case_ref'")) << bad;
    DeletionRequest d = ValidDeletionRequest();
    d.case_ref = bad;
    EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'case_ref'")) << bad;
    DeletionStatusReport s = ValidDeletionStatus();
    s.case_ref = bad;
    EXPECT_TRUE(HasError(RoundTrip(s), Code::kMalformed, "'case_ref'")) << bad;
    CaseClosed cc = ValidCaseClosed();
    cc.case_ref = bad;
    EXPECT_TRUE(HasError(RoundTrip(cc), Code::kMalformed, "'case_ref'")) << bad;
    AccessRecord ar = ValidAccessRecord();
    ar.case_ref = bad;
    EXPECT_TRUE(
        HasError(DecodeAccessRecord(EncodeAccessRecord(ar)), Code::kMalformed, "'case_ref'"))
        << bad;
    ConsentRevocation cr = ValidRevocation();
    cr.case_ref = bad;
    EXPECT_TRUE(HasError(DecodeConsentRevocation(EncodeConsentRevocation(cr)), Code::kMalformed,
                         "'case_ref'"))
        << bad;
    PurgeConfirmation p = ValidPurge();
    p.case_ref = bad;
    EXPECT_TRUE(HasError(DecodePurgeConfirmation(EncodePurgeConfirmation(p)), Code::kMalformed,
                         "'case_ref'"))
        << bad;
  }
}

TEST(WorkflowCodecTest, RefusesBadPartyIds) {
  for (const std::string& bad : std::vector<std::string>{"", "ab", "Agency-B", "-agency", "agency-",
                                                         "agency_b", std::string(49, 'a')}) {
    Referral r = ValidReferral();
    r.referring_agency = bad;
    EXPECT_TRUE(HasError(RoundTrip(r), Code::kMalformed, "'referring_agency'")) << bad;
    r = ValidReferral();
    r.to_agency = bad;
    EXPECT_TRUE(HasError(RoundTrip(r), Code::kMalformed, "'to_agency'")) << bad;
    Handoff h = ValidHandoff();
    h.from_lead = bad;
    EXPECT_TRUE(HasError(RoundTrip(h), Code::kMalformed, "'from_lead'")) << bad;
    h = ValidHandoff();
    h.to_lead = bad;
    EXPECT_TRUE(HasError(RoundTrip(h), Code::kMalformed, "'to_lead'")) << bad;
    DeletionRequest d = ValidDeletionRequest();
    d.report_to.push_back(bad);
    EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'report_to'")) << bad;
    CaseClosed c = ValidCaseClosed();
    c.closed_by = bad;
    EXPECT_TRUE(HasError(RoundTrip(c), Code::kMalformed, "'closed_by'")) << bad;
    AccessRecord a = ValidAccessRecord();
    a.agency_id = bad;
    EXPECT_TRUE(
        HasError(DecodeAccessRecord(EncodeAccessRecord(a)), Code::kMalformed, "'agency_id'"))
        << bad;
    a = ValidAccessRecord();
    a.owner_agency = bad;
    EXPECT_TRUE(
        HasError(DecodeAccessRecord(EncodeAccessRecord(a)), Code::kMalformed, "'owner_agency'"))
        << bad;
    ConsentRevocation cr = ValidRevocation();
    cr.revoked_by = bad;
    EXPECT_TRUE(HasError(DecodeConsentRevocation(EncodeConsentRevocation(cr)), Code::kMalformed,
                         "'revoked_by'"))
        << bad;
    PurgeConfirmation p = ValidPurge();
    p.agency_id = bad;
    EXPECT_TRUE(HasError(DecodePurgeConfirmation(EncodePurgeConfirmation(p)), Code::kMalformed,
                         "'agency_id'"))
        << bad;
  }
}

TEST(WorkflowCodecTest, RefusesUnknownReferralStates) {
  for (int v : {0, 9, 99}) {
    ReferralStateChange c = ValidStateChange();
    c.from_state = static_cast<ReferralState>(v);
    EXPECT_TRUE(HasError(RoundTrip(c), Code::kMalformed, "'from_state'")) << v;
    c = ValidStateChange();
    c.to_state = static_cast<ReferralState>(v);
    EXPECT_TRUE(HasError(RoundTrip(c), Code::kMalformed, "'to_state'")) << v;
  }
  ReferralStateChange c = ValidStateChange();
  c.to_state = static_cast<ReferralState>(99);
  EXPECT_TRUE(HasError(RoundTrip(c), Code::kMalformed, "unknown value 99"));
}

TEST(WorkflowCodecTest, RefusesUnknownDeletionItemStatus) {
  for (int v : {0, 6, 99}) {
    DeletionStatusReport s = ValidDeletionStatus();
    s.updates[1].status = static_cast<DeletionItemStatus>(v);
    EXPECT_TRUE(HasError(RoundTrip(s), Code::kMalformed, "'updates.status'")) << v;
  }
}

TEST(WorkflowCodecTest, RefusesUnknownDataCategoryInAField) {
  for (int v : {0, 10, 99}) {
    Referral r = ValidReferral();
    r.fields[2].category = static_cast<DataCategory>(v);
    EXPECT_TRUE(HasError(RoundTrip(r), Code::kMalformed, "'fields.category'")) << v;
    Handoff h = ValidHandoff();
    h.fields[0].category = static_cast<DataCategory>(v);
    EXPECT_TRUE(HasError(RoundTrip(h), Code::kMalformed, "'fields.category'")) << v;
  }
}

TEST(WorkflowCodecTest, RefusesUnknownPurposeKindAndRevocationReason) {
  for (int v : {0, 10, 99}) {
    Referral r = ValidReferral();
    r.purpose = static_cast<Purpose>(v);
    EXPECT_TRUE(HasError(RoundTrip(r), Code::kMalformed, "'purpose'")) << v;
  }
  for (int v : {0, 16, 99}) {
    AccessRecord a = ValidAccessRecord();
    a.kind = static_cast<MessageKind>(v);
    EXPECT_TRUE(HasError(DecodeAccessRecord(EncodeAccessRecord(a)), Code::kMalformed, "'kind'"))
        << v;
  }
  for (int v : {0, 6, 99}) {
    ConsentRevocation c = ValidRevocation();
    c.reason = static_cast<RevocationReason>(v);
    EXPECT_TRUE(
        HasError(DecodeConsentRevocation(EncodeConsentRevocation(c)), Code::kMalformed, "'reason'"))
        << v;
  }
}

TEST(WorkflowCodecTest, RefusesEmptyOrLongOperatorRef) {
  for (std::string bad : {std::string(), std::string(kMaxOperatorRefBytes + 1, 'o')}) {
    Referral r = ValidReferral();
    r.operator_ref = bad;
    EXPECT_TRUE(HasError(RoundTrip(r), Code::kMalformed, "'operator_ref'")) << bad.size();
    ReferralStateChange c = ValidStateChange();
    c.operator_ref = bad;
    EXPECT_TRUE(HasError(RoundTrip(c), Code::kMalformed, "'operator_ref'")) << bad.size();
    Handoff h = ValidHandoff();
    h.operator_ref = bad;
    EXPECT_TRUE(HasError(RoundTrip(h), Code::kMalformed, "'operator_ref'")) << bad.size();
    HandoffAck a = ValidHandoffAck();
    a.operator_ref = bad;
    EXPECT_TRUE(HasError(RoundTrip(a), Code::kMalformed, "'operator_ref'")) << bad.size();
    DeletionRequest d = ValidDeletionRequest();
    d.operator_ref = bad;
    EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'operator_ref'")) << bad.size();
    CaseClosed cc = ValidCaseClosed();
    cc.operator_ref = bad;
    EXPECT_TRUE(HasError(RoundTrip(cc), Code::kMalformed, "'operator_ref'")) << bad.size();
    AccessRecord ar = ValidAccessRecord();
    ar.operator_ref = bad;
    EXPECT_TRUE(
        HasError(DecodeAccessRecord(EncodeAccessRecord(ar)), Code::kMalformed, "'operator_ref'"))
        << bad.size();
  }
}

TEST(WorkflowCodecTest, RefusesOverlongReason) {
  const std::string bad(kMaxReasonBytes + 1, 'r');
  ReferralStateChange c = ValidStateChange();
  c.reason = bad;
  EXPECT_TRUE(HasError(RoundTrip(c), Code::kMalformed, "'reason'"));
  EXPECT_TRUE(HasError(RoundTrip(c), Code::kMalformed, "513 bytes, over 512"));
  Handoff h = ValidHandoff();
  h.reason = bad;
  EXPECT_TRUE(HasError(RoundTrip(h), Code::kMalformed, "'reason'"));
  HandoffAck a = ValidHandoffAck();
  a.reason = bad;
  EXPECT_TRUE(HasError(RoundTrip(a), Code::kMalformed, "'reason'"));
  CaseClosed cc = ValidCaseClosed();
  cc.reason = bad;
  EXPECT_TRUE(HasError(RoundTrip(cc), Code::kMalformed, "'reason'"));
}

TEST(WorkflowCodecTest, RefusesBadCaseFields) {
  Referral r = ValidReferral();
  r.fields[1].name = std::string(kMaxFieldNameBytes + 1, 'n');
  EXPECT_TRUE(HasError(RoundTrip(r), Code::kMalformed, "'fields.name'"));
  r = ValidReferral();
  r.fields[1].name.clear();
  EXPECT_TRUE(HasError(RoundTrip(r), Code::kMalformed, "'fields.name'"));
  r = ValidReferral();
  r.fields[1].value = std::string(kMaxFieldValueBytes + 1, 'v');
  EXPECT_TRUE(HasError(RoundTrip(r), Code::kMalformed, "'fields.value'"));
  Handoff h = ValidHandoff();
  h.fields[0].value = std::string(kMaxFieldValueBytes + 1, 'v');
  EXPECT_TRUE(HasError(RoundTrip(h), Code::kMalformed, "'fields.value'"));
}

TEST(WorkflowCodecTest, RefusesTooManyFields) {
  Referral r = ValidReferral();
  r.fields.assign(kMaxCaseFields + 1, {DataCategory::kIdentity, "n", "v"});
  EXPECT_TRUE(HasError(RoundTrip(r), Code::kMalformed, "'fields'"));
  Handoff h = ValidHandoff();
  h.fields.assign(kMaxCaseFields + 1, {DataCategory::kIdentity, "n", "v"});
  EXPECT_TRUE(HasError(RoundTrip(h), Code::kMalformed, "'fields'"));
}

TEST(WorkflowCodecTest, RefusesBadDeletionItems) {
  DeletionRequest d = ValidDeletionRequest();
  d.items.clear();
  EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'items'"));
  d = ValidDeletionRequest();
  d.items[1].url = std::string(kMaxUrlBytes + 1, 'u');
  EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'items.url'"));
  d = ValidDeletionRequest();
  d.items[1].url.clear();
  EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'items.url'"));
  d = ValidDeletionRequest();
  d.items[0].item_id.clear();
  EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'items.item_id'"));
  d = ValidDeletionRequest();
  d.items[0].item_id = std::string(65, 'i');
  EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'items.item_id'"));
  d = ValidDeletionRequest();
  d.items[0].content_sha256 = Fill(31, 1);
  EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'items.content_sha256'"));
  d = ValidDeletionRequest();
  d.items[0].platform = std::string(65, 'p');
  EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'items.platform'"));
  d = ValidDeletionRequest();
  d.report_to.assign(kMaxRecipients + 1, "counsel-b");
  EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'report_to'"));
}

TEST(WorkflowCodecTest, RefusesBadDeletionStatus) {
  DeletionStatusReport s = ValidDeletionStatus();
  s.report_seq = 0;
  EXPECT_TRUE(HasError(RoundTrip(s), Code::kMalformed, "'report_seq'"));
  s = ValidDeletionStatus();
  s.updates[0].item_id.clear();
  EXPECT_TRUE(HasError(RoundTrip(s), Code::kMalformed, "'updates.item_id'"));
}

TEST(WorkflowCodecTest, RefusesSignedGrantsThatDoNotDecode) {
  SignedConsentGrant bad_sig;
  bad_sig.grant_bytes = EncodeConsentGrant(ValidGrant());
  bad_sig.signer_key_id = Fill(kKeyIdBytes, 0x21);
  bad_sig.signature = Fill(kSignatureBytes - 1, 0x5a);
  ConsentGrant broken_grant = ValidGrant();
  broken_grant.case_ref = "bad";
  SignedConsentGrant bad_inner = bad_sig;
  bad_inner.signature = Fill(kSignatureBytes, 0x5a);
  bad_inner.grant_bytes = EncodeConsentGrant(broken_grant);
  const std::vector<Bytes> bad = {Bytes(), ToBytes("\xff\xff\xff"),
                                  EncodeSignedConsentGrant(bad_sig),
                                  EncodeSignedConsentGrant(bad_inner)};
  for (size_t i = 0; i < bad.size(); ++i) {
    Referral r = ValidReferral();
    r.signed_grant = bad[i];
    EXPECT_TRUE(HasError(RoundTrip(r), Code::kMalformed, "'signed_grant'")) << i;
    Handoff h = ValidHandoff();
    h.signed_grant = bad[i];
    EXPECT_TRUE(HasError(RoundTrip(h), Code::kMalformed, "'signed_grant'")) << i;
    DeletionRequest d = ValidDeletionRequest();
    d.signed_grant = bad[i];
    EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'signed_grant'")) << i;
  }
}

TEST(WorkflowCodecTest, RefusesBadSignedStatements) {
  SignedStatement s = StatementOf(EncodeAccessRecord(ValidAccessRecord()));
  s.statement.clear();
  EXPECT_TRUE(
      HasError(DecodeSignedStatement(EncodeSignedStatement(s)), Code::kMalformed, "'statement'"));
  s = StatementOf(EncodeAccessRecord(ValidAccessRecord()));
  s.signer_key_id = Fill(kKeyIdBytes + 1, 1);
  EXPECT_TRUE(HasError(DecodeSignedStatement(EncodeSignedStatement(s)), Code::kMalformed,
                       "'signer_key_id'"));
  s = StatementOf(EncodeAccessRecord(ValidAccessRecord()));
  s.signature = Fill(kSignatureBytes - 1, 1);
  EXPECT_TRUE(
      HasError(DecodeSignedStatement(EncodeSignedStatement(s)), Code::kMalformed, "'signature'"));
  // The same checks apply inside a case message.
  for (auto type : {CaseMessage::Type::kAccessNotice, CaseMessage::Type::kConsentRevocation,
                    CaseMessage::Type::kPurgeConfirmation}) {
    CaseMessage m = MessageOf(type);
    m.statement.signature.clear();
    EXPECT_TRUE(HasError(DecodeCaseMessage(EncodeCaseMessage(m)), Code::kMalformed, "'signature'"))
        << static_cast<int>(type);
  }
}

TEST(WorkflowCodecTest, RefusesBadStatementFieldSizes) {
  AccessRecord a = ValidAccessRecord();
  a.message_id = Fill(kMessageIdBytes - 1, 1);
  EXPECT_TRUE(
      HasError(DecodeAccessRecord(EncodeAccessRecord(a)), Code::kMalformed, "'message_id'"));
  a = ValidAccessRecord();
  a.consent_grant_id = Fill(kGrantIdBytes + 1, 1);
  EXPECT_TRUE(
      HasError(DecodeAccessRecord(EncodeAccessRecord(a)), Code::kMalformed, "'consent_grant_id'"));
  ConsentRevocation c = ValidRevocation();
  c.grant_id.clear();
  EXPECT_TRUE(HasError(DecodeConsentRevocation(EncodeConsentRevocation(c)), Code::kMalformed,
                       "'grant_id'"));
  PurgeConfirmation p = ValidPurge();
  p.grant_id = Fill(kGrantIdBytes - 1, 1);
  EXPECT_TRUE(HasError(DecodePurgeConfirmation(EncodePurgeConfirmation(p)), Code::kMalformed,
                       "'grant_id'"));
  for (size_t n : {size_t{0}, size_t{31}, size_t{33}}) {
    p = ValidPurge();
    p.purged_ids_sha256 = Fill(n, 1);
    EXPECT_TRUE(HasError(DecodePurgeConfirmation(EncodePurgeConfirmation(p)), Code::kMalformed,
                         "'purged_ids_sha256'"))
        << n;
  }
}

TEST(WorkflowCodecTest, RefusesAMessageWithoutBody) {
  // version = 1 and nothing else.
  const Bytes only_version = {0x08, 0x01};
  EXPECT_TRUE(HasError(DecodeCaseMessage(only_version), Code::kMalformed, "'body'"));
}

TEST(WorkflowCodecTest, RefusesOtherVersions) {
  for (uint32_t v : {0u, 2u, 0xffffffffu}) {
    CaseMessage m = MessageOf(CaseMessage::Type::kCaseClosed);
    m.version = v;
    EXPECT_TRUE(HasError(DecodeCaseMessage(EncodeCaseMessage(m)), Code::kMalformed, "'version'"))
        << v;
  }
  EXPECT_TRUE(HasError(DecodeCaseMessage(ByteView()), Code::kMalformed, "'version'"));
}

TEST(WorkflowCodecTest, RefusesInvalidUtf8InAString) {
  Referral r = ValidReferral();
  r.fields[0].value = "\xc3\x28";
  EXPECT_TRUE(HasCode(RoundTrip(r), Code::kMalformed));
}

TEST(WorkflowCodecTest, OversizeInputIsRefusedBeforeParsing) {
  const Bytes valid = EncodeCaseMessage(MessageOf(CaseMessage::Type::kReferral));
  // Exactly at the limit: a valid message padded with an unknown field still decodes.
  const Bytes at_limit = PadTo(valid, kMaxCaseMessageBytes);
  ASSERT_EQ(at_limit.size(), kMaxCaseMessageBytes);
  EXPECT_TRUE(IsOk(DecodeCaseMessage(at_limit)));
  // One byte more is refused by size alone (kResourceExhausted, as for every other
  // decoder), although the bytes would decode.
  const Bytes over = PadTo(valid, kMaxCaseMessageBytes + 1);
  EXPECT_TRUE(HasError(DecodeCaseMessage(over), Code::kResourceExhausted,
                       std::to_string(kMaxCaseMessageBytes)));
  EXPECT_TRUE(
      HasCode(DecodeCaseMessage(Bytes(kMaxCaseMessageBytes + 1, 0)), Code::kResourceExhausted));
  EXPECT_TRUE(
      HasCode(DecodeSignedStatement(Bytes(kMaxRecordBytes + 1, 0)), Code::kResourceExhausted));
  EXPECT_TRUE(HasCode(DecodeAccessRecord(Bytes(kMaxRecordBytes + 1, 0)), Code::kResourceExhausted));
  EXPECT_TRUE(
      HasCode(DecodeConsentRevocation(Bytes(kMaxRecordBytes + 1, 0)), Code::kResourceExhausted));
  EXPECT_TRUE(
      HasCode(DecodePurgeConfirmation(Bytes(kMaxRecordBytes + 1, 0)), Code::kResourceExhausted));
}

TEST(WorkflowCodecTest, ErrorsNameTheFieldNotItsContent) {
  Referral r = ValidReferral();
  r.to_agency = "SECRET-NAME";
  auto out = RoundTrip(r);
  ASSERT_TRUE(HasError(out, Code::kMalformed, "'to_agency'"));
  EXPECT_EQ(out.status().message().find("SECRET"), std::string::npos) << out.status().message();
}

// =====================================================================================
// Hostile input: truncation and noise
// =====================================================================================

struct NamedDecoder {
  const char* name;
  std::function<Status(ByteView)> decode;
};

template <typename Fn>
std::function<Status(ByteView)> StatusOnly(Fn fn) {
  return [fn](ByteView b) { return fn(b).status(); };
}

const std::vector<NamedDecoder>& WorkflowDecoders() {
  static const std::vector<NamedDecoder> kDecoders = {
      {"case message", StatusOnly(DecodeCaseMessage)},
      {"signed statement", StatusOnly(DecodeSignedStatement)},
      {"access record", StatusOnly(DecodeAccessRecord)},
      {"consent revocation", StatusOnly(DecodeConsentRevocation)},
      {"purge confirmation", StatusOnly(DecodePurgeConfirmation)},
  };
  return kDecoders;
}

TEST(WorkflowHostileInputTest, EveryPrefixOfAReferralIsHandled) {
  const Bytes full = EncodeCaseMessage(MessageOf(CaseMessage::Type::kReferral));
  ASSERT_TRUE(IsOk(DecodeCaseMessage(full)));
  for (size_t n = 0; n < full.size(); ++n) {
    auto r = DecodeCaseMessage(ByteView(full.data(), n));
    ASSERT_TRUE(OkOrRefused(r.status())) << "prefix of " << n << " bytes";
  }
}

TEST(WorkflowHostileInputTest, EveryPrefixOfEveryTypeIsHandled) {
  for (CaseMessage::Type type : AllTypes()) {
    const Bytes full = EncodeCaseMessage(MessageOf(type));
    for (size_t n = 0; n < full.size(); ++n) {
      ASSERT_TRUE(OkOrRefused(DecodeCaseMessage(ByteView(full.data(), n)).status()))
          << static_cast<int>(type) << " prefix " << n;
    }
  }
  const std::vector<std::pair<Bytes, std::function<Status(ByteView)>>> inputs = {
      {EncodeAccessRecord(ValidAccessRecord()), StatusOnly(DecodeAccessRecord)},
      {EncodeConsentRevocation(ValidRevocation()), StatusOnly(DecodeConsentRevocation)},
      {EncodePurgeConfirmation(ValidPurge()), StatusOnly(DecodePurgeConfirmation)},
      {EncodeSignedStatement(StatementOf(EncodePurgeConfirmation(ValidPurge()))),
       StatusOnly(DecodeSignedStatement)},
  };
  for (const auto& [full, decode] : inputs) {
    ASSERT_TRUE(IsOk(decode(full)));
    for (size_t n = 0; n < full.size(); ++n) {
      ASSERT_TRUE(OkOrRefused(decode(ByteView(full.data(), n)))) << n;
    }
  }
}

TEST(WorkflowHostileInputTest, RandomBytesNeverCrash) {
  std::mt19937 rng(20260601);
  std::uniform_int_distribution<int> length(0, 600);
  std::uniform_int_distribution<int> byte(0, 255);
  int ok = 0;
  for (int i = 0; i < 3000; ++i) {
    Bytes buf(static_cast<size_t>(length(rng)));
    for (auto& b : buf) b = static_cast<uint8_t>(byte(rng));
    for (const auto& d : WorkflowDecoders()) {
      Status s = d.decode(buf);
      ASSERT_TRUE(OkOrRefused(s)) << d.name << " on random buffer " << i;
      if (s.ok()) ++ok;
    }
  }
  EXPECT_LT(ok, 10);
}

// Flips bytes of valid encodings: reaches deeper than random bytes. Whatever decodes must
// re-encode into something that decodes again.
TEST(WorkflowHostileInputTest, MutatedValidMessagesNeverCrash) {
  std::mt19937 rng(11);
  std::vector<Bytes> valid;
  for (CaseMessage::Type type : AllTypes()) valid.push_back(EncodeCaseMessage(MessageOf(type)));
  for (int i = 0; i < 3000; ++i) {
    Bytes b = valid[static_cast<size_t>(i) % valid.size()];
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) b[rng() % b.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    if (rng() % 8 == 0) b.resize(rng() % b.size());
    auto r = DecodeCaseMessage(b);
    ASSERT_TRUE(OkOrRefused(r.status())) << i;
    if (r.ok()) {
      EXPECT_TRUE(IsOk(DecodeCaseMessage(EncodeCaseMessage(*r)))) << i;
    }
  }
}

// =====================================================================================
// Names of the workflow enumerations
// =====================================================================================

template <typename E>
void ExpectNamesRoundTrip(int max, std::optional<E> (*parse)(std::string_view)) {
  for (int v = 1; v <= max; ++v) {
    auto e = static_cast<E>(v);
    std::string_view name = Name(e);
    EXPECT_NE(name, "unknown") << v;
    EXPECT_NE(name, "unspecified") << v;
    auto back = parse(name);
    ASSERT_TRUE(back.has_value()) << name;
    EXPECT_EQ(*back, e) << name;
  }
  EXPECT_EQ(Name(static_cast<E>(0)), "unspecified");
  EXPECT_FALSE(parse("unspecified").has_value());
  EXPECT_FALSE(parse("").has_value());
  EXPECT_FALSE(parse("no-such-name").has_value());
  EXPECT_EQ(Name(static_cast<E>(max + 1)), "unknown");
  EXPECT_EQ(Name(static_cast<E>(99)), "unknown");
}

TEST(WorkflowNamesTest, ReferralState) {
  ExpectNamesRoundTrip<ReferralState>(static_cast<int>(ReferralState::kWithdrawn),
                                      ParseReferralState);
  EXPECT_EQ(Name(ReferralState::kInProgress), "in-progress");
  EXPECT_EQ(ParseReferralState("on-hold"), ReferralState::kOnHold);
}

TEST(WorkflowNamesTest, DeletionItemStatus) {
  ExpectNamesRoundTrip<DeletionItemStatus>(static_cast<int>(DeletionItemStatus::kWithdrawn),
                                           ParseDeletionItemStatus);
  EXPECT_EQ(Name(DeletionItemStatus::kReappeared), "reappeared");
}

TEST(WorkflowNamesTest, RevocationReason) {
  ExpectNamesRoundTrip<RevocationReason>(static_cast<int>(RevocationReason::kBasisEnded),
                                         ParseRevocationReason);
  EXPECT_EQ(Name(RevocationReason::kWithdrawnByGuardian), "withdrawn-by-guardian");
}

TEST(WorkflowNamesTest, Purpose) {
  ExpectNamesRoundTrip<Purpose>(static_cast<int>(Purpose::kLinkage), ParsePurpose);
  EXPECT_EQ(ParsePurpose("deletion"), Purpose::kDeletion);
}

TEST(WorkflowNamesTest, DataCategory) {
  ExpectNamesRoundTrip<DataCategory>(static_cast<int>(DataCategory::kCaseStatus),
                                     ParseDataCategory);
  EXPECT_EQ(ParseDataCategory("content-locations"), DataCategory::kContentLocations);
}

TEST(WorkflowNamesTest, LegalBasis) {
  ExpectNamesRoundTrip<LegalBasis>(static_cast<int>(LegalBasis::kEmergencyLifeSafety),
                                   ParseLegalBasis);
  EXPECT_EQ(ParseLegalBasis("court-order"), LegalBasis::kCourtOrder);
}

TEST(WorkflowNamesTest, Consenter) {
  ExpectNamesRoundTrip<Consenter>(static_cast<int>(Consenter::kLegalRepresentative),
                                  ParseConsenter);
  EXPECT_EQ(ParseConsenter("guardian"), Consenter::kGuardian);
}

// ---- chunked deletion requests (PROTOCOL.md 10.1) ----

DeletionRequest ChunkOf(uint32_t index, uint32_t chunks) {
  DeletionRequest r = ValidDeletionRequest();
  r.items[0].note = "found by the victim's friend";
  DeletionManifest m;
  m.item_count = 2 * chunks;
  m.items_sha256 = Fill(32, 0x55);
  m.chunk_count = chunks;
  m.chunk_sha256.assign(chunks, Fill(32, 0x66));
  r.manifest = m;
  r.chunk_index = index;
  return r;
}

TEST(WorkflowCodecTest, DeletionChunkManifestAndNoteSurvive) {
  DeletionRequest in = ChunkOf(2, 3);
  auto out = RoundTrip(in);
  ASSERT_TRUE(IsOk(out));
  const DeletionRequest& r = out->deletion_request;
  ASSERT_TRUE(r.manifest.has_value());
  EXPECT_EQ(*r.manifest, *in.manifest);
  EXPECT_EQ(r.chunk_index, 2u);
  EXPECT_EQ(r.items, in.items);
}

TEST(WorkflowCodecTest, RefusesDeletionChunksThatBreakTheirManifest) {
  DeletionRequest d = ChunkOf(3, 3);  // index past the count
  EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'chunk_index'"));
  d = ChunkOf(0, 3);
  d.manifest->item_count = kMaxDeletionRequestItems + 1;
  EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'manifest.item_count'"));
  d = ChunkOf(0, 3);
  d.manifest->chunk_sha256.pop_back();
  EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'manifest.chunk_sha256'"));
  d = ChunkOf(0, 3);
  d.manifest->chunk_count = static_cast<uint32_t>(kMaxDeletionChunks + 1);
  EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'manifest.chunk_count'"));
  d = ChunkOf(0, 1);  // 2 items counted, 3 in the chunk
  d.items.push_back({"item-3", "https://x.example/3", Bytes(), "", ""});
  EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'items'"));
  d = ChunkOf(0, 1);
  d.manifest->item_count = kMaxDeletionRequestItems;
  d.items.assign(kMaxDeletionChunkItems + 1, {"i", "https://x.example/", Bytes(), "", ""});
  EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'items'"));
  d = ChunkOf(0, 1);
  d.items[0].note.assign(kMaxDeletionNoteBytes + 1, 'n');
  EXPECT_TRUE(HasError(RoundTrip(d), Code::kMalformed, "'items.note'"));
}

TEST(WorkflowCodecTest, DeletionStatusPartsAndListFieldsSurvive) {
  DeletionStatusReport in = ValidDeletionStatus();
  in.part_index = 1;
  in.part_count = 4;
  in.items_held = 9000;
  in.list_complete = true;
  in.missing_chunks = {3, 7};
  auto out = RoundTrip(in);
  ASSERT_TRUE(IsOk(out));
  const DeletionStatusReport& r = out->deletion_status;
  EXPECT_EQ(r.part_index, 1u);
  EXPECT_EQ(r.part_count, 4u);
  EXPECT_EQ(r.items_held, 9000u);
  EXPECT_TRUE(r.list_complete);
  EXPECT_EQ(r.missing_chunks, (std::vector<uint32_t>{3, 7}));
  in.part_index = 4;
  EXPECT_TRUE(HasError(RoundTrip(in), Code::kMalformed, "'part_index'"));
  in.part_index = 0;
  in.missing_chunks = {static_cast<uint32_t>(kMaxDeletionChunks)};
  EXPECT_TRUE(HasError(RoundTrip(in), Code::kMalformed, "'missing_chunks'"));
}

// PROTOCOL.md 10.3: a watch-list file over one message travels as parts whose sizes all follow
// from (total_bytes, part_index); the codec refuses any part that contradicts itself, and any
// file over 64 MiB.
DeletionWatchList WatchPartOf(uint64_t total, uint32_t index) {
  DeletionWatchList w;
  w.part = WatchListPart{Fill(32, 0x5a), index, WatchListPartCount(total), total,
                         Fill(WatchListPartSize(total, index), 'x')};
  return w;
}

TEST(WorkflowCodecTest, WatchListPartsSurvive) {
  const uint64_t total = kWatchListPartBytes * 2 + 17;  // three parts, the last of 17 bytes
  EXPECT_EQ(WatchListPartCount(total), 3u);
  EXPECT_EQ(WatchListPartSize(total, 2), 17u);
  auto out = RoundTrip(WatchPartOf(total, 2));
  ASSERT_TRUE(IsOk(out));
  ASSERT_TRUE(out->watch_list.part.has_value());
  EXPECT_EQ(out->watch_list.part->index, 2u);
  EXPECT_EQ(out->watch_list.part->count, 3u);
  EXPECT_EQ(out->watch_list.part->total_bytes, total);
  EXPECT_EQ(out->watch_list.part->data, Fill(17, 'x'));
  EXPECT_TRUE(out->watch_list.file.empty());
  // The largest file: 64 parts of 1 MiB, each one message within the envelope's limit.
  auto last = RoundTrip(WatchPartOf(kMaxWatchListPartedBytes, kMaxWatchListParts - 1));
  ASSERT_TRUE(IsOk(last));
  EXPECT_EQ(last->watch_list.part->data.size(), kWatchListPartBytes);
}

TEST(WorkflowCodecTest, RefusesWatchListPartsThatContradictThemselves) {
  const uint64_t total = kWatchListPartBytes * 2 + 17;
  DeletionWatchList w = WatchPartOf(kMaxWatchListPartedBytes + 1, 0);  // over 64 MiB
  EXPECT_TRUE(HasError(RoundTrip(w), Code::kMalformed, "'total_bytes'"));
  w = WatchPartOf(kMaxWatchListFileBytes, 0);  // one message carries it: no parts
  EXPECT_TRUE(HasError(RoundTrip(w), Code::kMalformed, "'total_bytes'"));
  w = WatchPartOf(total, 0);
  w.part->count = 4;
  EXPECT_TRUE(HasError(RoundTrip(w), Code::kMalformed, "'part_count'"));
  w = WatchPartOf(total, 0);
  w.part->index = 3;
  EXPECT_TRUE(HasError(RoundTrip(w), Code::kMalformed, "'part_index'"));
  w = WatchPartOf(total, 2);
  w.part->data.push_back('y');
  EXPECT_TRUE(HasError(RoundTrip(w), Code::kMalformed, "'data'"));
  w = WatchPartOf(total, 0);
  w.part->file_sha256.pop_back();
  EXPECT_TRUE(HasError(RoundTrip(w), Code::kMalformed, "'file_sha256'"));
  w = WatchPartOf(total, 0);
  w.file = "{}";  // a part is alone in its message
  EXPECT_TRUE(HasError(RoundTrip(w), Code::kMalformed, "'part'"));
  w = WatchPartOf(total, 0);
  w.request_full = true;
  EXPECT_TRUE(HasError(RoundTrip(w), Code::kMalformed, "'part'"));
  DeletionWatchList one;
  one.file.assign(kMaxWatchListFileBytes + 1, 'x');
  EXPECT_TRUE(HasError(RoundTrip(one), Code::kMalformed, "travels as parts"));
}

}  // namespace workflow_codec_test
}  // namespace refbus::schema
