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

#include "agent/case_message.h"
#include "agent/linkage_client.h"
#include "keys/consent.h"
#include "keys/secret.h"
#include "linkage/escrow.h"
#include "schema/codec.h"
#include "tests/integration/linkage_fixture.h"

namespace refbus::testing {
namespace linkage_escrow_test {  // Named after the file: unity builds share one scope.

using linkage_fixture::kEscrow;
using linkage_fixture::kEvalB;

constexpr char kSeoul[] = "seoul-center";
constexpr char kIncheon[] = "incheon-center";
// A listed center with no daemon: the tests send its envelopes by hand, as a center running
// a client of its own (or lying) would.
constexpr char kBusan[] = "busan-center";

class LinkageEscrowTest : public linkage_fixture::LinkageFixture {
 protected:
  std::vector<std::string> Centers() const override { return {kSeoul, kIncheon}; }
  std::vector<std::string> ListedOnly() const override { return {kBusan}; }
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

// The escrow's refusals of malformed entries (PROTOCOL.md 13.6), sent by a listed center
// as real envelopes under a real grant registered at the broker: a share not reduced
// modulo the group order, a tag and a share of the wrong size are refused and kept as
// refusals on the escrow's inbox record and on the case; a sealed record that does not open
// and one naming another agency cannot be told at arrival (only a match opens records):
// they are held, never believed, and never keep two honest centers from matching. What the
// escrow had accepted before (Seoul's entry) is not lost to any of them.
TEST_F(LinkageEscrowTest, MalformedEntriesAreRefusedAndLoseNothingAccepted) {
  const std::string seoul_case = LinkageCase(kSeoul, "SEOUL-2026-8");
  AddPhone(kSeoul, seoul_case, "010-2222-3333");
  WaitForEntriesHeld(1);

  // Busan evaluates the same number honestly (its quota, the real evaluators), then lies.
  const keys::Identity busan = fed_.LoadIdentity(kBusan);
  const UnixMillis now = SystemClock::Get().NowMillis();
  const schema::ConsentGrant g =
      linkage_fixture::LinkageGrantOf(kBusan, "case-b05a11e7", {kEscrow});
  auto signed_grant = keys::SignConsentGrant(busan, g);
  ASSERT_TRUE(signed_grant.ok()) << signed_grant.status().ToString();
  const Bytes grant_bytes = schema::EncodeSignedConsentGrant(*signed_grant);
  RawClient client(busan, fed_.directory().Find(kBroker)->ActiveKeys()->transport_key,
                   brokers_[kBroker]->endpoint());
  ASSERT_TRUE(client.Hello(kBusan));
  {
    schema::Frame f;
    f.type = schema::Frame::Type::kGrantRegister;
    f.request_id = 1;
    f.grant_register.signed_grant = grant_bytes;
    client.SendFrame(f);
    ASSERT_TRUE(client.Expect(schema::Frame::Type::kAck, 1, Scaled(5000)).has_value());
  }
  agent::LinkageClientOptions evaluators{{kBroker, brokers_[kBroker]->endpoint()},
                                         {kEvalB, brokers_[kEvalB]->endpoint()},
                                         Scaled(5000)};
  auto canonical = linkage::Canonicalize(linkage::IdentifierKind::kPhone, "01022223333");
  ASSERT_TRUE(canonical.ok());
  auto pseudonym = agent::RequestPseudonym(busan, fed_.directory(), evaluators, *canonical);
  ASSERT_TRUE(pseudonym.ok()) << pseudonym.status().ToString();
  auto entry_for = [&](const std::string& named_agency) {
    linkage::EscrowRecord rec{
        named_agency, g.case_ref, linkage::IdentifierKind::kPhone, now, now, 0, 0};
    auto e = linkage::MakeEscrowEntry(*pseudonym, rec, 2, now + kMillisPerDay);
    EXPECT_TRUE(e.ok());
    return e.ok() ? *e : linkage::EscrowEntry{};
  };
  int request = 1;
  auto send = [&](const linkage::EscrowEntry& e) {
    schema::CaseMessage m;
    m.type = schema::CaseMessage::Type::kLinkageEntry;
    m.linkage_entry = {g.case_ref,
                       keys::RandomBytes(schema::kWorkflowIdBytes),
                       e.tag,
                       e.y,
                       e.sealed_record,
                       e.expires_ms,
                       grant_bytes,
                       "mallory",
                       now};
    agent::SealCaseRequest req;
    req.message = m;
    req.recipients = {kEscrow};
    req.purpose = schema::Purpose::kLinkage;
    req.now = now;
    auto env = agent::SealCase(busan, fed_.directory(), {*signed_grant, false}, req);
    ASSERT_TRUE(env.ok()) << env.status().ToString();
    auto r = client.Submit(*env, Scaled(5000));
    ASSERT_TRUE(r && r->type == schema::Frame::Type::kAck)
        << "the broker refused entry " << request;
    ++request;
  };
  const linkage::EscrowEntry good = entry_for(kBusan);
  // Not below the group order (the unit test has y + L, the same scalar unreduced).
  linkage::EscrowEntry unreduced = good;
  unreduced.y.assign(32, 0xff);
  linkage::EscrowEntry short_tag = good;
  short_tag.tag.pop_back();
  linkage::EscrowEntry long_y = good;
  long_y.y.push_back(0);
  linkage::EscrowEntry unopenable = good;
  unopenable.sealed_record.back() ^= 1;
  // Sealed correctly, but naming Incheon: placed at Busan's point, off the line.
  linkage::EscrowEntry posing = entry_for(kIncheon);
  for (linkage::EscrowEntry* e : {&unreduced, &short_tag, &long_y, &unopenable, &posing}) send(*e);

  A(kEscrow).WaitFor(
      "/v1/inbox",
      [](const Json& l) {
        size_t done = 0;
        for (const auto& m : l) done += m.value("from", "") == kBusan;
        return done >= 5;
      },
      "Busan's five entries at the escrow", Scaled(20000));
  Json inbox = A(kEscrow).Ok("GET", "/v1/inbox");
  std::vector<std::string> refusals;
  size_t held = 0;
  for (const auto& m : inbox) {
    if (m.value("from", "") != kBusan) continue;
    if (m.value("status", "") == "refused") refusals.push_back(m.value("refusal", ""));
    held += m.value("status", "") == "ok";
  }
  ASSERT_EQ(refusals.size(), 3u) << inbox.dump(2);
  EXPECT_EQ(held, 2u) << inbox.dump(2);
  const std::string all = refusals[0] + "|" + refusals[1] + "|" + refusals[2];
  EXPECT_NE(all.find("not reduced modulo the group order"), std::string::npos) << all;
  EXPECT_NE(all.find("field 'tag' has 31 bytes"), std::string::npos) << all;
  EXPECT_NE(all.find("field 'y' has 33 bytes"), std::string::npos) << all;
  Json c = A(kEscrow).Ok("GET", "/v1/cases/" + g.case_ref);
  EXPECT_EQ(c.value("refusals", Json::array()).size(), 3u) << c.dump(2);

  // Incheon enters the number: Seoul's entry, accepted before all this, still matches it.
  const std::string incheon_case = LinkageCase(kIncheon, "INCHEON-2026-8");
  AddPhone(kIncheon, incheon_case, "+82 10 2222 3333");
  auto one_match = [](const Json& l) { return l.is_array() && l.size() == 1; };
  Json at_seoul = A(kSeoul).WaitFor("/v1/linkage/matches", one_match, "Seoul's notice");
  Json at_incheon = A(kIncheon).WaitFor("/v1/linkage/matches", one_match, "Incheon's notice");
  EXPECT_EQ(at_seoul[0]["linkage_id"], at_incheon[0]["linkage_id"]);
  ASSERT_EQ(at_seoul[0]["others"].size(), 1u) << at_seoul.dump(2);
  EXPECT_EQ(at_seoul[0]["others"][0]["agency"], kIncheon);
  EXPECT_EQ(at_incheon[0]["others"][0]["agency"], kSeoul);
  EXPECT_EQ(EscrowEvents(g.case_ref, "linkage-notice-sent"), 0u) << "Busan's lie is not believed";
  EXPECT_NE(A(kEscrow).Log().find("escrow match between 2 agencies (1 entries unopened)"),
            std::string::npos)
      << A(kEscrow).Log();
}

}  // namespace linkage_escrow_test
}  // namespace refbus::testing
