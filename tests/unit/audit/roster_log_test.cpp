// Tests for audit/roster_log.h: the operator rosters an agency published through its broker
// (OPERATOR_ROSTER entries), and each access judged by the roster in effect at it.
#include "audit/roster_log.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <string>

#include "keys/crypto.h"
#include "schema/codec.h"
#include "tests/unit/keys/federation.h"

// Named after the file: its helpers' names are generic (unity builds).
namespace refbus::audit::roster_log_test {
namespace {

using keys::fed::kNow;

constexpr char kAgency[] = "agency-a";

// A throwaway operator key pair (the agent's are sealed, agent/operators.h).
struct Person {
  std::string name;
  Bytes public_key = Bytes(crypto_sign_PUBLICKEYBYTES);
  Bytes secret = Bytes(crypto_sign_SECRETKEYBYTES);
  explicit Person(std::string n) : name(std::move(n)) {
    crypto_sign_keypair(reinterpret_cast<unsigned char*>(public_key.data()),
                        reinterpret_cast<unsigned char*>(secret.data()));
  }
};

class RosterLogTest : public ::testing::Test {
 protected:
  // The OPERATOR_ROSTER entry at index of a roster signed by the agency (by signer).
  schema::AuditEntry RosterEntry(uint64_t index, uint64_t version,
                                 std::vector<keys::RosterOperator> ops,
                                 const std::string& signer = kAgency) {
    keys::OperatorRoster r;
    r.agency = signer;
    r.version = version;
    r.issued_at_ms = kNow;
    r.operators = std::move(ops);
    schema::AuditEntry e;
    e.index = index;
    e.event = schema::AuditEvent::kOperatorRoster;
    e.actor = kAgency;
    e.sender_id = kAgency;
    e.signed_roster = ToBytes(test::Must(keys::SignOperatorRoster(fed_.party(signer), r)));
    return e;
  }
  // The OPENED entry at index of an access by p at the agency, signed by p.
  static schema::AuditEntry Opened(uint64_t index, const Person& p) {
    schema::AccessRecord rec;
    rec.message_id = Bytes(16, 0x11);
    rec.case_ref = "case-2026-0001";
    rec.agency_id = kAgency;
    rec.operator_ref = p.name;
    rec.opened_at_ms = kNow;
    rec.owner_agency = "agency-b";
    rec.kind = schema::MessageKind::kReferral;
    schema::AuditEntry e;
    e.index = index;
    e.event = schema::AuditEvent::kEnvelopeOpened;
    e.actor = kAgency;
    e.sender_id = "agency-b";
    e.message_id = rec.message_id;
    e.case_ref = rec.case_ref;
    e.operator_ref = p.name;
    e.operator_statement = schema::EncodeAccessRecord(rec);
    e.operator_public_key = p.public_key;
    Bytes input = keys::SignatureInput(keys::OperatorLabel(keys::OperatorAction::kAccessRecord),
                                       e.operator_statement);
    e.operator_signature = Bytes(crypto_sign_BYTES);
    crypto_sign_detached(reinterpret_cast<unsigned char*>(e.operator_signature.data()), nullptr,
                         reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                         reinterpret_cast<const unsigned char*>(p.secret.data()));
    return e;
  }

  keys::fed::Federation fed_;
};

TEST_F(RosterLogTest, AKeyAddedAfterTheAccessOrDisabledBeforeItIsNotInRoster) {
  Person olga("olga"), pete("pete"), rita("rita");
  RosterHistory h;
  // 10: olga and rita. 20: olga opens. 30: pete added, rita disabled. 40, 41: pete and
  // rita open. 50: olga's account disabled (after her access).
  h.Add(RosterEntry(10, 1,
                    {{"olga", "caseworker", olga.public_key, true},
                     {"rita", "caseworker", rita.public_key, true}}),
        fed_.directory(), kNow);
  h.Add(RosterEntry(30, 2,
                    {{"olga", "caseworker", olga.public_key, true},
                     {"pete", "caseworker", pete.public_key, true},
                     {"rita", "caseworker", rita.public_key, false}}),
        fed_.directory(), kNow);
  h.Add(RosterEntry(50, 3,
                    {{"olga", "caseworker", olga.public_key, false},
                     {"pete", "caseworker", pete.public_key, true},
                     {"rita", "caseworker", rita.public_key, false}}),
        fed_.directory(), kNow);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_TRUE(h.problems().empty());

  // olga opened under roster v1 and was disabled only later: valid.
  auto olga_check = h.Check(Opened(20, olga));
  EXPECT_EQ(olga_check.verdict, keys::OperatorVerdict::kValid) << olga_check.why;
  EXPECT_NE(olga_check.why.find("roster v1"), std::string::npos) << olga_check.why;
  // pete's access at 15 (before roster v2 added him): not in the roster in effect, although
  // today's roster lists him.
  auto pete_early = h.Check(Opened(15, pete));
  EXPECT_EQ(pete_early.verdict, keys::OperatorVerdict::kNotInRoster) << pete_early.why;
  EXPECT_EQ(h.Check(Opened(40, pete)).verdict, keys::OperatorVerdict::kValid);
  // rita, disabled by roster v2 before her access at 41.
  auto rita_check = h.Check(Opened(41, rita));
  EXPECT_EQ(rita_check.verdict, keys::OperatorVerdict::kNotInRoster) << rita_check.why;
  // Before any roster: nothing to tie the key to.
  EXPECT_EQ(h.Check(Opened(5, olga)).verdict, keys::OperatorVerdict::kNoRoster);
  // The same accesses in a query: the two that fail are named.
  QueryResult q;
  for (const auto& e : {Opened(20, olga), Opened(15, pete), Opened(41, rita)}) {
    AuditRow row;
    row.entry = e;
    q.rows.push_back(row);
  }
  auto failing = CheckRowOperatorsByLog(q, h);
  ASSERT_EQ(failing.size(), 2u);
  EXPECT_EQ(failing[0]->entry.index, 15u);
  EXPECT_EQ(failing[1]->entry.index, 41u);
}

TEST_F(RosterLogTest, ARosterThatDoesNotVerifyIsLeftOutAndNamed) {
  Person olga("olga");
  RosterHistory h;
  auto forged = RosterEntry(10, 1, {{"olga", "caseworker", olga.public_key, true}});
  const std::string one = HexEncode(olga.public_key);
  std::string text(AsChars(forged.signed_roster));
  text.replace(text.find(one), one.size(), HexEncode(Bytes(32, 7)));
  forged.signed_roster = ToBytes(text);
  h.Add(forged, fed_.directory(), kNow);
  // Another agency's roster recorded as agency-a's.
  h.Add(RosterEntry(11, 2, {{"olga", "caseworker", olga.public_key, true}}, "agency-b"),
        fed_.directory(), kNow);
  EXPECT_EQ(h.size(), 0u);
  ASSERT_EQ(h.problems().size(), 2u);
  EXPECT_NE(h.problems()[0].find("entry 10"), std::string::npos) << h.problems()[0];
  EXPECT_NE(h.problems()[1].find("entry 11"), std::string::npos) << h.problems()[1];
  EXPECT_EQ(h.Check(Opened(20, olga)).verdict, keys::OperatorVerdict::kNoRoster);
}

}  // namespace
}  // namespace refbus::audit::roster_log_test
