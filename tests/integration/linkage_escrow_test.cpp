// The matching escrow on the bus (PROTOCOL.md 13.6, issue 19 items 3 and 5): real
// refbus-broker processes (the home broker and a second broker, both linkage evaluators
// with key files from `refbus-broker linkage-key`) and real refbus-agent daemons for two
// centers and the escrow (central-center, role linkage-escrow), driven through their local
// APIs. An identifier entered at two centers in different spellings gives both a linkage
// notice with one linkage id; one center's two entries, one entry alone, and an entry
// withdrawn by a revocation open nothing and send no notice.
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <string>

#include "tests/integration/linkage_fixture.h"

namespace refbus::testing {
namespace linkage_escrow_test {  // Named after the file: unity builds share one scope.

using linkage_fixture::kEscrow;

constexpr char kSeoul[] = "seoul-center";
constexpr char kIncheon[] = "incheon-center";

class LinkageEscrowTest : public linkage_fixture::LinkageFixture {
 protected:
  std::vector<std::string> Centers() const override { return {kSeoul, kIncheon}; }
};

TEST_F(LinkageEscrowTest, SamePhoneInTwoSpellingsAtTwoCentersGivesBothOneNotice) {
  const std::string seoul_case = LinkageCase(kSeoul, "SEOUL-2026-7");
  const std::string incheon_case = LinkageCase(kIncheon, "INCHEON-2026-3");
  ASSERT_FALSE(seoul_case.empty());
  Json added = AddPhone(kSeoul, seoul_case, "010-1234-5678");
  EXPECT_EQ(added.value("escrow", ""), kEscrow);
  EXPECT_EQ(added.dump().find("12345678"), std::string::npos) << "the answer names no identifier";
  // An unrelated number at Incheon: alone under its tag, it opens nothing.
  AddPhone(kIncheon, incheon_case, "010-9999-0000");
  WaitForEntriesHeld(2);
  EXPECT_EQ(EscrowEvents(incheon_case, "linkage-notice-sent"), 0u);
  // The same number as Incheon's officer types it, through the CLI.
  const auto second_entry = std::chrono::steady_clock::now();
  int rc = -1;
  std::string out = LinkCli(kIncheon,
                            {"link", "add", "--case", "INCHEON-2026-3", "--kind", "phone",
                             "--value", "+82 10 1234 5678", "--operator", "officer-2"},
                            &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("(phone) of case " + incheon_case + " sent to central-center"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("1234 5678"), std::string::npos) << out;

  auto one_match = [](const Json& l) { return l.is_array() && l.size() == 1; };
  Json at_seoul = A(kSeoul).WaitFor("/v1/linkage/matches", one_match, "Seoul's notice");
  Json at_incheon = A(kIncheon).WaitFor("/v1/linkage/matches", one_match, "Incheon's notice");
  // From the second entry's command to both notices seen (polled every 50 ms): the CLI's
  // process, two evaluations, the entry through the broker, the escrow, two notices back.
  const auto both_notices = std::chrono::steady_clock::now();
  std::cout
      << "RESULT linkage_match second_entry_to_both_notices_ms="
      << std::chrono::duration_cast<std::chrono::milliseconds>(both_notices - second_entry).count()
      << "\n";
  ASSERT_EQ(at_seoul.size(), 1u);
  ASSERT_EQ(at_incheon.size(), 1u);
  EXPECT_EQ(at_seoul[0]["linkage_id"], at_incheon[0]["linkage_id"]);
  EXPECT_EQ(at_seoul[0]["linkage_id"].get<std::string>().size(), 32u);
  EXPECT_EQ(at_seoul[0]["kind"], "phone");
  EXPECT_EQ(at_seoul[0]["case_ref"], seoul_case);
  EXPECT_EQ(at_incheon[0]["case_ref"], incheon_case);
  ASSERT_EQ(at_seoul[0]["others"].size(), 1u);
  EXPECT_EQ(at_seoul[0]["others"][0]["agency"], kIncheon);
  EXPECT_EQ(at_incheon[0]["others"][0]["agency"], kSeoul);
  EXPECT_EQ(at_seoul[0]["escrow"], kEscrow);
  // The inbox and the case timeline show it.
  Json inbox = A(kSeoul).Ok("GET", "/v1/inbox");
  const Json* notice = FindBy(inbox, "kind", "linkage-notice");
  ASSERT_NE(notice, nullptr) << inbox.dump(2);
  EXPECT_EQ((*notice)["from"], kEscrow);
  EXPECT_EQ((*notice)["status"], "ok");
  Json c = A(kSeoul).Ok("GET", "/v1/cases/" + seoul_case);
  const Json* ev = FindBy(c["timeline"], "event", "linkage-notice");
  ASSERT_NE(ev, nullptr) << c.dump(2);
  EXPECT_EQ((*ev)["linkage_id"], at_seoul[0]["linkage_id"]);
  EXPECT_EQ((*ev)["linked"], Json({kIncheon}));
  // The entries are listed without any identifier; nothing logged one.
  Json links = A(kIncheon).Ok("GET", "/v1/links");
  EXPECT_EQ(links.size(), 2u);
  out = LinkCli(kSeoul, {"link", "matches"}, &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find(at_seoul[0]["linkage_id"].get<std::string>()), std::string::npos) << out;
  EXPECT_NE(out.find(kIncheon), std::string::npos) << out;
  out = LinkCli(kIncheon, {"link", "list", "--case", "INCHEON-2026-3"}, &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("phone"), std::string::npos) << out;
  EXPECT_EQ(out.find("1234 5678"), std::string::npos) << out;
  for (const char* id : {kSeoul, kIncheon, kEscrow}) {
    const std::string log = A(id).Log();
    EXPECT_EQ(log.find("12345678"), std::string::npos) << id;
    EXPECT_EQ(log.find("99990000"), std::string::npos) << id;
  }
}

TEST_F(LinkageEscrowTest, OneCentersTwoEntriesAndAWithdrawnEntryOpenNothing) {
  const std::string first = LinkageCase(kSeoul, "SEOUL-2026-1");
  const std::string second = LinkageCase(kSeoul, "SEOUL-2026-2");
  AddPhone(kSeoul, first, "010-5555-1212");
  AddPhone(kSeoul, second, "+82 10 5555 1212");
  WaitForEntriesHeld(2);
  EXPECT_EQ(EscrowEvents(first, "linkage-notice-sent"), 0u);
  EXPECT_EQ(EscrowEvents(second, "linkage-notice-sent"), 0u);

  // Seoul's consent for the second case is revoked; then for the first: both entries are
  // withdrawn at the escrow, so Incheon's entry of the same number matches nothing.
  for (const std::string local : {"SEOUL-2026-2", "SEOUL-2026-1"}) {
    A(kSeoul).Ok("POST", "/v1/consents/" + grants_[std::string(kSeoul) + "/" + local] + "/revoke",
                 {{"reason", "withdrawn-by-subject"}, {"operator", "officer-1"}});
  }
  for (const std::string& c : {first, second}) {
    A(kEscrow).WaitFor(
        "/v1/cases/" + c,
        [](const Json& k) {
          return FindBy(k.value("timeline", Json::array()), "event", "linkage-entries-withdrawn") !=
                 nullptr;
        },
        "the escrow withdrawing the revoked grant's entry");
  }
  Json links = A(kSeoul).Ok("GET", "/v1/cases/" + first + "/links");
  ASSERT_EQ(links.size(), 1u);
  EXPECT_TRUE(links[0].value("withdrawn", false));

  const std::string incheon_case = LinkageCase(kIncheon, "INCHEON-2026-9");
  AddPhone(kIncheon, incheon_case, "01055551212");
  WaitForEntriesHeld(1, kIncheon);
  EXPECT_EQ(EscrowEvents(incheon_case, "linkage-notice-sent"), 0u);
  EXPECT_EQ(A(kIncheon).Ok("GET", "/v1/linkage/matches"), Json::array());
  EXPECT_EQ(A(kSeoul).Ok("GET", "/v1/linkage/matches"), Json::array());
}

TEST_F(LinkageEscrowTest, EntryNeedsAGrantWithPurposeLinkageAndAValidIdentifier) {
  Json other = A(kSeoul).Ok("POST", "/v1/consents",
                            {{"local_case", "SEOUL-2026-5"},
                             {"basis", "consent-subject"},
                             {"consenters", {"subject"}},
                             {"purposes", {"counseling"}},
                             {"categories", {"incident-summary"}},
                             {"recipients", {kIncheon}},
                             {"valid_days", 90},
                             {"operator", "officer-1"}});
  const std::string case_ref = other.value("case_ref", "");
  A(kSeoul).Refused("POST", "/v1/cases/" + case_ref + "/links",
                    {{"kind", "phone"}, {"value", "010-1234-5678"}, {"operator", "officer-1"}}, 409,
                    "purpose linkage");
  const std::string linked = LinkageCase(kSeoul, "SEOUL-2026-6");
  A(kSeoul).Refused("POST", "/v1/cases/" + linked + "/links",
                    {{"kind", "phone"}, {"value", "010-12"}, {"operator", "officer-1"}}, 400,
                    "phone");
  EXPECT_EQ(A(kSeoul).Ok("GET", "/v1/links"), Json::array());
}

}  // namespace linkage_escrow_test
}  // namespace refbus::testing
