// Tests for keys/operator_signature.h: an operator's signature over a record, its label,
// and the auditor's verdict with the agency's rosters.
#include "keys/operator_signature.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <string>

#include "keys/crypto.h"

namespace refbus::keys {
namespace {

// A throwaway operator key pair (tests only; the agent's keys are sealed, agent/operators.h).
struct TestOperator {
  std::string name;
  Bytes public_key = Bytes(crypto_sign_PUBLICKEYBYTES);
  Bytes secret = Bytes(crypto_sign_SECRETKEYBYTES);
  explicit TestOperator(std::string n) : name(std::move(n)) {
    crypto_sign_keypair(reinterpret_cast<unsigned char*>(public_key.data()),
                        reinterpret_cast<unsigned char*>(secret.data()));
  }
  schema::OperatorSignature Sign(OperatorAction action, ByteView record) const {
    Bytes input = SignatureInput(OperatorLabel(action), record);
    Bytes sig(crypto_sign_BYTES);
    crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr,
                         reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                         reinterpret_cast<const unsigned char*>(secret.data()));
    return {name, public_key, sig};
  }
};

OperatorRoster RosterOf(const std::string& agency, uint64_t version,
                        std::vector<RosterOperator> ops) {
  OperatorRoster r;
  r.agency = agency;
  r.version = version;
  r.issued_at_ms = 1;
  r.operators = std::move(ops);
  return r;
}

Bytes RecordBytes() {
  const std::string_view text = "serialized access record";
  return Bytes(text.begin(), text.end());
}
const Bytes kRecord = RecordBytes();

TEST(OperatorSignatureTest, LabelsDifferPerRecordTypeAndFromAgencyLabels) {
  TestOperator alice("alice");
  auto sig = alice.Sign(OperatorAction::kAccessRecord, kRecord);
  EXPECT_TRUE(VerifyOperatorSignature(OperatorAction::kAccessRecord, kRecord, sig));
  EXPECT_FALSE(VerifyOperatorSignature(OperatorAction::kCaseMessage, kRecord, sig));
  EXPECT_FALSE(VerifyOperatorSignature(OperatorAction::kConsentRevocation, kRecord, sig));
  EXPECT_NE(OperatorLabel(OperatorAction::kAccessRecord), kLabelAccessRecord);
  Bytes other = kRecord;
  other.back() ^= 1;
  EXPECT_FALSE(VerifyOperatorSignature(OperatorAction::kAccessRecord, other, sig));
}

TEST(OperatorSignatureTest, VerdictsForValidServiceForgedAndUnknownOperators) {
  TestOperator alice("alice");
  TestOperator mallory("alice");  // claims to be alice with a key of her own
  TestOperator bob("bob");
  std::vector<OperatorRoster> rosters = {
      RosterOf("agency-a", 1, {{"alice", "caseworker", alice.public_key, true}}),
      RosterOf("agency-b", 1, {{"bob", "caseworker", bob.public_key, true}})};
  const auto kAccess = OperatorAction::kAccessRecord;

  auto ok = CheckOperatorSignature(kAccess, "agency-a", "alice", kRecord,
                                   alice.Sign(kAccess, kRecord), rosters);
  EXPECT_EQ(ok.verdict, OperatorVerdict::kValid) << ok.why;
  EXPECT_NE(ok.why.find("caseworker"), std::string::npos) << ok.why;

  auto service =
      CheckOperatorSignature(kAccess, "agency-a", "service:intake", kRecord, std::nullopt, rosters);
  EXPECT_EQ(service.verdict, OperatorVerdict::kServiceAccount) << service.why;
  EXPECT_FALSE(VerdictFails(service.verdict));

  auto forged = CheckOperatorSignature(kAccess, "agency-a", "alice", kRecord,
                                       mallory.Sign(kAccess, kRecord), rosters);
  EXPECT_EQ(forged.verdict, OperatorVerdict::kInvalid) << forged.why;
  EXPECT_NE(forged.why.find("KEY MISMATCH"), std::string::npos) << forged.why;
  EXPECT_TRUE(VerdictFails(forged.verdict));

  auto broken = alice.Sign(kAccess, kRecord);
  broken.signature[5] ^= 0x40;
  auto bad = CheckOperatorSignature(kAccess, "agency-a", "alice", kRecord, broken, rosters);
  EXPECT_EQ(bad.verdict, OperatorVerdict::kInvalid) << bad.why;
  EXPECT_NE(bad.why.find("does not verify"), std::string::npos) << bad.why;

  // bob is in agency-b's roster, not in agency-a's.
  auto stranger = CheckOperatorSignature(kAccess, "agency-a", "bob", kRecord,
                                         bob.Sign(kAccess, kRecord), rosters);
  EXPECT_EQ(stranger.verdict, OperatorVerdict::kNotInRoster) << stranger.why;
  EXPECT_TRUE(VerdictFails(stranger.verdict));

  auto no_roster = CheckOperatorSignature(kAccess, "agency-c", "carol", kRecord,
                                          TestOperator("carol").Sign(kAccess, kRecord), rosters);
  EXPECT_EQ(no_roster.verdict, OperatorVerdict::kNoRoster) << no_roster.why;

  // The record names one operator, the signature another.
  auto swapped = CheckOperatorSignature(kAccess, "agency-b", "alice", kRecord,
                                        bob.Sign(kAccess, kRecord), rosters);
  EXPECT_EQ(swapped.verdict, OperatorVerdict::kInvalid) << swapped.why;

  // A person's name without a signature, and a service record claiming a signature.
  EXPECT_EQ(
      CheckOperatorSignature(kAccess, "agency-a", "alice", kRecord, std::nullopt, rosters).verdict,
      OperatorVerdict::kUnsigned);
  auto svc_signed = alice.Sign(kAccess, kRecord);
  svc_signed.operator_ref = "service:alice";
  EXPECT_EQ(
      CheckOperatorSignature(kAccess, "agency-a", "service:alice", kRecord, svc_signed, rosters)
          .verdict,
      OperatorVerdict::kInvalid);
}

TEST(OperatorSignatureTest, AnOlderRosterStillNamesAKeyReplacedByAPasswordReset) {
  TestOperator old_key("alice");
  TestOperator new_key("alice");
  std::vector<OperatorRoster> rosters = {
      RosterOf("agency-a", 1, {{"alice", "caseworker", old_key.public_key, true}}),
      RosterOf("agency-a", 2, {{"alice", "caseworker", new_key.public_key, true}})};
  auto v = CheckOperatorSignature(OperatorAction::kAccessRecord, "agency-a", "alice", kRecord,
                                  old_key.Sign(OperatorAction::kAccessRecord, kRecord), rosters);
  EXPECT_EQ(v.verdict, OperatorVerdict::kValid) << v.why;
  EXPECT_NE(v.why.find("roster v1"), std::string::npos) << v.why;
}

}  // namespace
}  // namespace refbus::keys
