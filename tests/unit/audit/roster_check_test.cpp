// Tests for audit/roster_check.h: override countersigners read from the broker's entry
// and checked against the recording agency's signed operator roster.
#include "audit/roster_check.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include "keys/crypto.h"

namespace refbus::audit {
namespace {

Bytes Key(uint8_t b) { return Bytes(crypto_sign_PUBLICKEYBYTES, b); }
std::string Fp(uint8_t b) { return keys::Fingerprint(keys::KeyId(keys::KeyUse::kSigning, Key(b))); }

keys::OperatorRoster Roster() {
  keys::OperatorRoster r;
  r.agency = "seoul-counsel";
  r.version = 5;
  r.operators = {{"sam", "caseworker", Key(1), true},
                 {"sue", "supervisor", Key(2), true},
                 {"dave", "caseworker", Key(3), true}};
  return r;
}

QueryResult Override(const std::string& countersigners) {
  AuditRow row;
  row.entry.event = schema::AuditEvent::kConsentGranted;
  row.entry.emergency_override = true;
  row.entry.sender_id = "seoul-counsel";
  row.entry.detail =
      "basis emergency-life-safety; EMERGENCY OVERRIDE countersigned by " + countersigners;
  QueryResult q;
  q.rows.push_back(row);
  return q;
}

TEST(RosterCheckTest, ReadsCountersignersFromTheEntry) {
  auto c = CountersignersOf("x; EMERGENCY OVERRIDE countersigned by sam (requested) [key " + Fp(1) +
                            "] sue (approved) [key " + Fp(2) + ", INVALID SIGNATURE] op-7 [key " +
                            Fp(3) + "]");
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].name, "sam");
  EXPECT_EQ(c[0].part, "requested");
  EXPECT_EQ(c[0].fingerprint, Fp(1));
  EXPECT_TRUE(c[0].valid);
  EXPECT_EQ(c[1].name, "sue");
  EXPECT_FALSE(c[1].valid);
  EXPECT_EQ(c[2].name, "op-7");
  EXPECT_EQ(c[2].part, "");
  EXPECT_TRUE(CountersignersOf("basis consent-subject").empty());
}

TEST(RosterCheckTest, TwoRosteredPeopleWithASupervisorAreVouchedFor) {
  auto q = Override("sam (requested) [key " + Fp(1) + "] sue (approved) [key " + Fp(2) + "]");
  EXPECT_EQ(CheckOverridesWithRosters(q, {Roster()}), 1u);
  EXPECT_NE(q.rows[0].note.find("roster v5"), std::string::npos) << q.rows[0].note;
  EXPECT_EQ(q.rows[0].note.find("NOT SHOWN"), std::string::npos) << q.rows[0].note;
}

TEST(RosterCheckTest, WrongKeyUnknownNameNonSupervisorOrNoRosterAreFlagged) {
  auto wrong_key =
      Override("sam (requested) [key " + Fp(1) + "] sue (approved) [key " + Fp(3) + "]");
  EXPECT_EQ(CheckOverridesWithRosters(wrong_key, {Roster()}), 0u);
  EXPECT_NE(wrong_key.rows[0].note.find("KEY MISMATCH"), std::string::npos);
  auto unknown = Override("sam (requested) [key " + Fp(1) + "] eve (approved) [key " + Fp(9) + "]");
  EXPECT_EQ(CheckOverridesWithRosters(unknown, {Roster()}), 0u);
  EXPECT_NE(unknown.rows[0].note.find("NOT IN ROSTER"), std::string::npos);
  auto no_sup = Override("sam (requested) [key " + Fp(1) + "] dave (approved) [key " + Fp(3) + "]");
  EXPECT_EQ(CheckOverridesWithRosters(no_sup, {Roster()}), 0u);
  EXPECT_NE(no_sup.rows[0].note.find("TWO-PERSON RULE NOT SHOWN"), std::string::npos);
  auto key_file = Override("supervisor-2 [key " + Fp(4) + "]");
  EXPECT_EQ(CheckOverridesWithRosters(key_file, {Roster()}), 0u);
  auto none = Override("sam (requested) [key " + Fp(1) + "] sue (approved) [key " + Fp(2) + "]");
  EXPECT_EQ(CheckOverridesWithRosters(none, {}), 0u);
  EXPECT_NE(none.rows[0].note.find("NO ROSTER"), std::string::npos);
}

}  // namespace
}  // namespace refbus::audit
