// Linkage tallies and the joint evidence bundle (PROTOCOL.md 13.7, issue 19 items 4 and 5):
// three centers of the linkage federation (linkage_fixture.h) enter one man's phone number
// in three spellings and are matched by the escrow; each signs a tally about the linkage id
// and records it at its broker (a LINKAGE_TALLY entry with the tally's hash); the lead
// center (Incheon) builds the bundle with the others' evidence, and `refbus-audit
// check-bundle` verifies it offline and prints the totals. A tally edited by one byte, a
// tally never logged, and a checkpoint with an edited signature are each named and fail.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "agent/linkage_client.h"
#include "core/file.h"
#include "keys/linkage_tally.h"
#include "schema/codec.h"
#include "tests/integration/linkage_fixture.h"

namespace refbus::testing {
namespace linkage_bundle_test {  // Named after the file: unity builds share one scope.

using linkage_fixture::kEscrow;

constexpr char kIncheon[] = "incheon-center";
constexpr char kSeoul[] = "seoul-center";
constexpr char kBusan[] = "busan-center";

class LinkageBundleTest : public linkage_fixture::LinkageFixture {
 protected:
  std::vector<std::string> Centers() const override { return {kIncheon, kSeoul, kBusan}; }

  // Every center enters the number; returns the linkage id once all three were told.
  std::string MatchThree() {
    const std::vector<std::pair<std::string, std::string>> spellings = {
        {kIncheon, "010-4321-8765"}, {kSeoul, "+82 10 4321 8765"}, {kBusan, "01043218765"}};
    for (const auto& [id, phone] : spellings) {
      AddPhone(id, LinkageCase(id, id + "-case"), phone);
    }
    std::string linkage;
    for (const auto& [id, phone] : spellings) {
      Json m = A(id).WaitFor(
          "/v1/linkage/matches",
          [](const Json& l) {
            return l.is_array() && l.size() == 1 && l[0].value("others", Json::array()).size() == 2;
          },
          id + "'s notice naming the two other centers", Scaled(30000));
      if (linkage.empty()) linkage = m[0].value("linkage_id", "");
      EXPECT_EQ(m[0].value("linkage_id", ""), linkage) << id;
    }
    return linkage;
  }

  // check-bundle on a copy of the bundle with `edit` applied to its JSON.
  std::string CheckEdited(const std::string& bundle, const std::string& name,
                          const std::function<void(Json&)>& edit, int* rc) {
    Json j = Json::parse(Slurp(bundle));
    edit(j);
    const std::string path = root_ + "/" + name + ".json";
    std::ofstream(path) << j.dump(2);
    return RunTool({BinDir() + "/refbus-audit", "check-bundle", path, "--dir", fed_.Dir(kAuditor)},
                   rc);
  }
};

TEST_F(LinkageBundleTest, ThreeCentersTallyAndTheLeadsBundleVerifiesAndCatchesEdits) {
  const std::string linkage = MatchThree();
  ASSERT_EQ(linkage.size(), 32u);
  // Incheon (the lead) through the CLI; Seoul through the CLI with --out for the lead; Busan
  // through the API, its evidence written by the test as Busan's officer would send it.
  int rc = -1;
  std::string out =
      LinkCli(kIncheon,
              {"link", "tally", linkage, "--victims", "2", "--deletion-items", "1283", "--from",
               "2024-03-01", "--to", "2026-10-31", "--operator", "officer-1"},
              &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("2 victims, 1283 deletion items, 2024-03-01 to 2026-10-31; recorded in " +
                     std::string(kBroker) + "'s audit log"),
            std::string::npos)
      << out;
  const std::string seoul_file = root_ + "/seoul-evidence.json";
  out =
      LinkCli(kSeoul,
              {"link", "tally", linkage, "--victims", "6", "--deletion-items", "4000", "--from",
               "2023-05-02", "--to", "2026-11-30", "--out", seoul_file, "--operator", "officer-7"},
              &rc);
  ASSERT_EQ(rc, 0) << out;
  Json busan = A(kBusan).Ok("POST", "/v1/linkage/" + linkage + "/tally",
                            {{"victims", 7},
                             {"deletion_items", 5461},
                             {"from", "2024-01-15"},
                             {"to", "2026-09-01"},
                             {"operator", "officer-3"}});
  const std::string busan_file = root_ + "/busan-evidence.json";
  std::ofstream(busan_file) << busan.value("evidence", "");
  // A tally about a linkage the center was never told of is refused.
  A(kBusan).Refused(
      "POST", "/v1/linkage/" + std::string(32, '0') + "/tally",
      {{"victims", 1}, {"from", "2024-01-01"}, {"to", "2024-01-02"}, {"operator", "officer-3"}},
      409, "no linkage notice");

  // The auditor witnesses the broker's log: the lead's fresh proof at bundle time is against
  // a checkpoint that carries the auditor's cosignature.
  out = RunTool(
      {BinDir() + "/refbus-audit", "witness", "--dir", fed_.Dir(kAuditor), "--broker", kBroker,
       "--endpoint", brokers_[kBroker]->endpoint(), "--store", root_ + "/witness-store"},
      &rc);
  ASSERT_EQ(rc, 0) << out;

  const std::string bundle = root_ + "/bundle.json";
  out = LinkCli(
      kIncheon,
      {"link", "bundle", linkage, "--out", bundle, "--with", seoul_file, "--with", busan_file},
      &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("bundle of 3 tallies about linkage " + linkage), std::string::npos) << out;

  const std::vector<std::string> check = {BinDir() + "/refbus-audit", "check-bundle", bundle,
                                          "--dir", fed_.Dir(kAuditor)};
  out = RunTool(check, &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("ok: 3 of 3 tallies about linkage " + linkage), std::string::npos) << out;
  EXPECT_NE(out.find("total:  15 victims, 10744 deletion items, 2023-05-02 to 2026-11-30"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("cosigned by " + std::string(kAuditor)), std::string::npos) << out;
  // The broker's log holds the tallies' hashes, never their counts.
  EXPECT_EQ(brokers_[kBroker]->Log().find("10744"), std::string::npos);

  auto tally_of = [](Json& j, const std::string& agency) -> Json& {
    for (Json& t : j["tallies"]) {
      if (t["agency"] == agency) return t;
    }
    throw std::runtime_error("no tally of " + agency);
  };
  // Seoul asking its broker for the proof of Incheon's entry: refused (and audited).
  Json whole = Json::parse(Slurp(bundle));
  const Json& incheon = tally_of(whole, kIncheon);
  auto stolen = agent::RecordLinkageTally(
      fed_.LoadIdentity(kSeoul), fed_.directory(),
      {kBroker, brokers_[kBroker]->endpoint(), Scaled(5000)}, incheon["tally"].get<std::string>(),
      incheon["index"].get<uint64_t>(), SystemClock::Get().NowMillis());
  EXPECT_EQ(stolen.status().code(), Status::Code::kPermissionDenied) << stolen.status().ToString();
  // Seoul handing its broker Busan's signed tally: refused, the broker takes the agency from
  // the session.
  auto forged = agent::RecordLinkageTally(fed_.LoadIdentity(kSeoul), fed_.directory(),
                                          {kBroker, brokers_[kBroker]->endpoint(), Scaled(5000)},
                                          tally_of(whole, kBusan)["tally"].get<std::string>(),
                                          std::nullopt, SystemClock::Get().NowMillis());
  EXPECT_EQ(forged.status().code(), Status::Code::kPermissionDenied) << forged.status().ToString();
  EXPECT_NE(forged.status().message().find("refused: sender-mismatch"), std::string::npos)
      << forged.status().ToString();
  // One byte of Seoul's counts.
  out = CheckEdited(
      bundle, "edited-count",
      [&](Json& j) {
        std::string t = tally_of(j, kSeoul)["tally"];
        t.replace(t.find("victims 6"), 9, "victims 9");
        tally_of(j, kSeoul)["tally"] = t;
      },
      &rc);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("FAILED tally 3 (seoul-center): its signature"), std::string::npos) << out;
  EXPECT_NE(out.find("total:  9 victims, 6744 deletion items"), std::string::npos) << out;
  // Busan signs a larger tally that its broker never logged and swaps it in.
  out = CheckEdited(
      bundle, "never-logged",
      [&](Json& j) {
        Json& t = tally_of(j, kBusan);
        const std::string signed_tally = t["tally"];
        keys::LinkageTally lt =
            *keys::ParseTallyStatement(signed_tally.substr(0, signed_tally.rfind("signature ")));
        lt.victims = 70;
        lt.nonce.clear();
        t["tally"] = *keys::SignLinkageTally(fed_.LoadIdentity(kBusan), lt);
      },
      &rc);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("FAILED tally 2 (busan-center): the log entry commits to another tally"),
            std::string::npos)
      << out;
  // A character of the checkpoint's signature under Incheon's tally.
  out = CheckEdited(
      bundle, "edited-checkpoint",
      [&](Json& j) {
        std::string note = tally_of(j, kIncheon)["checkpoint"];
        const size_t at = note.find("\n\xE2\x80\x94 ");
        const size_t c = note.find(' ', at + 5) + 20;
        note[c] = note[c] == 'A' ? 'B' : 'A';
        tally_of(j, kIncheon)["checkpoint"] = note;
      },
      &rc);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("FAILED tally 1 (incheon-center): its checkpoint does not verify"),
            std::string::npos)
      << out;
}

}  // namespace linkage_bundle_test
}  // namespace refbus::testing
