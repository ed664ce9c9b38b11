// Linkage tallies over the bus (PROTOCOL.md 13.8, issue 19): after a match, a linked center
// sends its tally evidence to the lead as a LINKAGE_TALLY case message under its own grant
// with purpose linkage naming the lead; the lead's bundle holds it without any evidence file
// and `refbus-audit check-bundle` verifies it. Refused: sending without such a grant, or to an
// agency the notice does not link (sender); a tally relayed by another linked agency, one
// whose evidence names the sender but whose signed tally is another's, an edited tally, and
// a tally from an agency no notice links (receiver, each recorded on the inbox record and the
// case, the tally accepted before kept); an older tally handed over after a newer one.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "agent/case_message.h"
#include "agent/linkage_client.h"
#include "keys/consent.h"
#include "keys/crypto.h"
#include "keys/linkage_tally.h"
#include "keys/tally_bundle.h"
#include "schema/codec.h"
#include "tests/integration/linkage_fixture.h"

namespace refbus::testing {
namespace linkage_tally_bus_test {  // Named after the file: unity builds share one scope.

constexpr char kIncheon[] = "incheon-center";
constexpr char kSeoul[] = "seoul-center";
constexpr char kBusan[] = "busan-center";
constexpr char kDaegu[] = "daegu-center";  // listed, run by no daemon: the test speaks for it

class LinkageTallyBusTest : public linkage_fixture::LinkageFixture {
 protected:
  std::vector<std::string> Centers() const override { return {kIncheon, kSeoul, kBusan}; }
  std::vector<std::string> ListedOnly() const override { return {kDaegu}; }

  // The named centers enter one number; returns the linkage id once each was told of all
  // the others. *cases gets each center's case.
  std::string Match(const std::vector<std::string>& centers,
                    std::map<std::string, std::string>* cases) {
    const std::vector<std::string> spellings = {"010-4321-8765", "+82 10 4321 8765", "01043218765"};
    for (size_t i = 0; i < centers.size(); ++i) {
      (*cases)[centers[i]] = LinkageCase(centers[i], centers[i] + "-case");
      AddPhone(centers[i], (*cases)[centers[i]], spellings[i]);
    }
    std::string linkage;
    for (const std::string& id : centers) {
      Json m = A(id).WaitFor(
          "/v1/linkage/matches",
          [&](const Json& l) {
            return l.is_array() && l.size() == 1 &&
                   l[0].value("others", Json::array()).size() == centers.size() - 1;
          },
          id + "'s notice", Scaled(30000));
      if (linkage.empty()) linkage = m[0].value("linkage_id", "");
      EXPECT_EQ(m[0].value("linkage_id", ""), linkage) << id;
    }
    return linkage;
  }

  // This center's tally through the API; returns its evidence text.
  std::string Tally(const std::string& id, const std::string& linkage, int victims) {
    Json t = A(id).Ok("POST", "/v1/linkage/" + linkage + "/tally",
                      {{"victims", victims},
                       {"deletion_items", 100 * victims},
                       {"from", "2024-01-15"},
                       {"to", "2026-09-01"},
                       {"operator", "officer-3"}});
    return t.value("evidence", "");
  }

  // A grant of `id`'s case with purpose linkage and the lead among its recipients.
  std::string GrantToLead(const std::string& id, const std::string& case_ref) {
    Json g = LinkageConsent(id, {kIncheon},
                            {{"case_ref", case_ref},
                             {"basis", "statutory-provision"},
                             {"legal_article", "Act on Sexual Violence Prevention art. 7-2"},
                             {"operator", "officer-7"}});
    return g.value("grant_id", "");
  }

  // The lead's tallies about the linkage id, once `pred` holds of them.
  Json LeadTallies(const std::string& linkage, const std::function<bool(const Json&)>& pred,
                   const std::string& what) {
    return A(kIncheon).WaitFor("/v1/linkage/" + linkage + "/tallies", pred, what, Scaled(20000));
  }
};

// A party that speaks to the broker itself (no daemon): signs a grant of its own naming the
// lead, registers it, and sends LINKAGE_TALLY messages under it with whatever evidence the
// test gives.
class TallySender {
 public:
  TallySender(const Federation& fed, const std::string& id, const std::string& endpoint)
      : me_(fed.LoadIdentity(id)),
        dir_(fed.directory()),
        client_(me_, fed.directory().Find(kBroker)->ActiveKeys()->transport_key, endpoint),
        grant_(linkage_fixture::LinkageGrantOf(id, "case-" + HexEncode(keys::RandomBytes(4)),
                                               {kIncheon})),
        signed_(*keys::SignConsentGrant(me_, grant_)) {}
  const std::string& case_ref() const { return grant_.case_ref; }

  bool Register() {
    schema::Frame f;
    f.type = schema::Frame::Type::kGrantRegister;
    f.request_id = next_++;
    f.grant_register.signed_grant = schema::EncodeSignedConsentGrant(signed_);
    client_.SendFrame(f);
    return client_.Expect(schema::Frame::Type::kAck, f.request_id, Scaled(5000)).has_value();
  }

  // Sends the evidence about the linkage id to the lead; true once the broker took it.
  bool Send(const std::string& linkage_hex, const std::string& evidence) {
    schema::CaseMessage m;
    m.type = schema::CaseMessage::Type::kLinkageTally;
    m.linkage_tally = {grant_.case_ref, *HexDecode(linkage_hex),
                       evidence,        schema::EncodeSignedConsentGrant(signed_),
                       "mallory",       SystemClock::Get().NowMillis()};
    agent::SealCaseRequest req;
    req.message = m;
    req.recipients = {kIncheon};
    req.purpose = schema::Purpose::kLinkage;
    req.now = SystemClock::Get().NowMillis();
    auto env = agent::SealCase(me_, dir_, {signed_, false}, req);
    EXPECT_TRUE(env.ok()) << env.status().ToString();
    if (!env.ok()) return false;
    auto r = client_.Submit(*env, Scaled(5000));
    return r && r->type == schema::Frame::Type::kAck;
  }

 private:
  keys::Identity me_;
  schema::Directory dir_;
  RawClient client_;
  schema::ConsentGrant grant_;
  schema::SignedConsentGrant signed_;
  uint64_t next_ = 1;
};

const Json* TallyOf(const Json& list, const std::string& agency) {
  return FindBy(list, "agency", agency);
}

TEST_F(LinkageTallyBusTest, SeoulSendsItsTallyToTheLeadAndTheLeadsBundleVerifies) {
  std::map<std::string, std::string> cases;
  const std::string linkage = Match({kIncheon, kSeoul}, &cases);
  ASSERT_EQ(linkage.size(), 32u);
  const std::string first = Tally(kSeoul, linkage, 6);
  const std::string send = "/v1/linkage/" + linkage + "/send";
  // Seoul's only grant names the escrow: no grant with purpose linkage names the lead.
  A(kSeoul).Refused("POST", send, {{"to", kIncheon}, {"operator", "officer-7"}}, 409,
                    "no consent grant recorded by this agency for the case of its notice");
  const std::string grant = GrantToLead(kSeoul, cases[kSeoul]);
  ASSERT_EQ(grant.size(), 32u);
  // Busan runs, but is not in this match.
  A(kSeoul).Refused("POST", send, {{"to", kBusan}, {"operator", "officer-7"}}, 409,
                    "do not name busan-center");
  int rc = -1;
  std::string out = LinkCli(
      kSeoul, {"link", "send-tally", linkage, "--to", kIncheon, "--operator", "officer-7"}, &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("sent to incheon-center under grant " + grant), std::string::npos) << out;
  Json held = LeadTallies(
      linkage, [](const Json& l) { return TallyOf(l, kSeoul) != nullptr; },
      "Seoul's tally at the lead");
  EXPECT_EQ((*TallyOf(held, kSeoul))["victims"], 6);
  EXPECT_EQ((*TallyOf(held, kSeoul))["source"], "bus");

  // The lead's bundle: its own tally and Seoul's, no evidence file.
  out = LinkCli(kIncheon,
                {"link", "tally", linkage, "--victims", "2", "--deletion-items", "1283", "--from",
                 "2024-03-01", "--to", "2026-10-31", "--operator", "officer-1"},
                &rc);
  ASSERT_EQ(rc, 0) << out;
  const std::string bundle = root_ + "/bundle.json";
  out = LinkCli(kIncheon, {"link", "bundle", linkage, "--out", bundle}, &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("bundle of 2 tallies about linkage " + linkage), std::string::npos) << out;
  out = RunTool({BinDir() + "/refbus-audit", "check-bundle", bundle, "--dir", fed_.Dir(kAuditor)},
                &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("ok: 2 of 2 tallies about linkage " + linkage), std::string::npos) << out;
  EXPECT_NE(out.find("total:  8 victims, 1883 deletion items"), std::string::npos) << out;

  // A newer tally replaces the first; the first, handed over as a file after it, is refused.
  Tally(kSeoul, linkage, 7);
  A(kSeoul).Ok("POST", send, {{"to", kIncheon}, {"operator", "officer-7"}});
  held = LeadTallies(
      linkage,
      [](const Json& l) { return TallyOf(l, kSeoul) && (*TallyOf(l, kSeoul))["victims"] == 7; },
      "Seoul's newer tally at the lead");
  const std::string old_file = root_ + "/seoul-first.json";
  std::ofstream(old_file) << first;
  out = LinkCli(kIncheon, {"link", "bundle", linkage, "--out", bundle, "--with", old_file}, &rc);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("a newer tally of seoul-center about linkage " + linkage + " is held"),
            std::string::npos)
      << out;
  held = A(kIncheon).Ok("GET", "/v1/linkage/" + linkage + "/tallies");
  EXPECT_EQ((*TallyOf(held, kSeoul))["victims"], 7) << held.dump(2);
}

TEST_F(LinkageTallyBusTest, RelayedForgedEditedAndUnlinkedTalliesAreRefusedAndRecorded) {
  std::map<std::string, std::string> cases;
  const std::string linkage = Match({kIncheon, kSeoul, kBusan}, &cases);
  ASSERT_EQ(linkage.size(), 32u);
  const std::string seoul = Tally(kSeoul, linkage, 6);
  const std::string busan = Tally(kBusan, linkage, 5);
  // Seoul's honest tally first: nothing refused later may lose it.
  GrantToLead(kSeoul, cases[kSeoul]);
  Json sent = A(kSeoul).Ok("POST", "/v1/linkage/" + linkage + "/send",
                           {{"to", kIncheon}, {"operator", "officer-7"}});
  LeadTallies(
      linkage, [](const Json& l) { return TallyOf(l, kSeoul) != nullptr; },
      "Seoul's tally at the lead");

  // Busan, linked on the id, speaks to the broker itself.
  TallySender b(fed_, kBusan, brokers_[kBroker]->endpoint());
  ASSERT_TRUE(b.Register());
  ASSERT_TRUE(b.Send(linkage, seoul)) << "Seoul's tally relayed by Busan";
  Json lie = Json::parse(seoul);
  lie["agency"] = kBusan;
  ASSERT_TRUE(b.Send(linkage, lie.dump())) << "Seoul's signed tally, the field saying Busan";
  Json edited = Json::parse(busan);
  std::string t = edited["tally"];
  t.replace(t.find("victims 5"), 9, "victims 9");
  edited["tally"] = t;
  ASSERT_TRUE(b.Send(linkage, edited.dump())) << "Busan's tally with one digit edited";
  // Daegu, in no match: a genuine tally about the id, signed and logged at its broker.
  keys::LinkageTally dt;
  dt.agency = kDaegu;
  dt.linkage_id = *HexDecode(linkage);
  dt.victims = 1;
  dt.from_date = "2025-01-01";
  dt.to_date = "2025-02-01";
  dt.made_at_ms = SystemClock::Get().NowMillis();
  auto signed_tally = keys::SignLinkageTally(fed_.LoadIdentity(kDaegu), dt);
  ASSERT_TRUE(signed_tally.ok()) << signed_tally.status().ToString();
  auto logged =
      agent::RecordLinkageTally(fed_.LoadIdentity(kDaegu), fed_.directory(),
                                {kBroker, brokers_[kBroker]->endpoint(), Scaled(5000)},
                                *signed_tally, std::nullopt, SystemClock::Get().NowMillis());
  ASSERT_TRUE(logged.ok()) << logged.status().ToString();
  TallySender d(fed_, kDaegu, brokers_[kBroker]->endpoint());
  ASSERT_TRUE(d.Register());
  ASSERT_TRUE(d.Send(linkage, keys::TallyEvidenceJson(*logged)));

  Json inbox = A(kIncheon).WaitFor(
      "/v1/inbox",
      [](const Json& l) {
        size_t done = 0;
        for (const auto& m : l) {
          done += m.value("kind", "") == "linkage-tally" && m.value("status", "") == "refused";
        }
        return done >= 4;
      },
      "four refused tallies at the lead", Scaled(20000));
  std::map<std::string, std::vector<std::string>> refused;
  for (const auto& m : inbox) {
    if (m.value("status", "") == "refused") {
      refused[m.value("from", "")].push_back(m.value("refusal", ""));
    }
  }
  ASSERT_EQ(refused[kBusan].size(), 3u) << inbox.dump(2);
  const std::string all = refused[kBusan][0] + "|" + refused[kBusan][1] + "|" + refused[kBusan][2];
  EXPECT_NE(
      all.find("the tally evidence is seoul-center's, but the message comes from busan-center"),
      std::string::npos)
      << all;
  EXPECT_NE(all.find("the signed tally is seoul-center's"), std::string::npos) << all;
  EXPECT_NE(all.find("the tally of busan-center: its signature"), std::string::npos) << all;
  ASSERT_EQ(refused[kDaegu].size(), 1u) << inbox.dump(2);
  EXPECT_NE(refused[kDaegu][0].find("no linkage notice of this agency links to it"),
            std::string::npos)
      << refused[kDaegu][0];
  // Recorded on the senders' cases at the lead.
  Json bc = A(kIncheon).Ok("GET", "/v1/cases/" + b.case_ref());
  EXPECT_EQ(bc.value("refusals", Json::array()).size(), 3u) << bc.dump(2);
  Json dc = A(kIncheon).Ok("GET", "/v1/cases/" + d.case_ref());
  EXPECT_EQ(dc.value("refusals", Json::array()).size(), 1u) << dc.dump(2);
  // What was accepted stays: Seoul's tally from its own message; nothing of Busan or Daegu.
  Json held = A(kIncheon).Ok("GET", "/v1/linkage/" + linkage + "/tallies");
  ASSERT_NE(TallyOf(held, kSeoul), nullptr) << held.dump(2);
  EXPECT_EQ((*TallyOf(held, kSeoul))["message_id"], sent["message_id"]) << held.dump(2);
  EXPECT_EQ((*TallyOf(held, kSeoul))["victims"], 6);
  EXPECT_EQ(TallyOf(held, kBusan), nullptr) << held.dump(2);
  EXPECT_EQ(TallyOf(held, kDaegu), nullptr) << held.dump(2);
}

}  // namespace linkage_tally_bus_test
}  // namespace refbus::testing
