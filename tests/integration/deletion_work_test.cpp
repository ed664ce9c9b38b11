// The deletion center's work queue, re-upload alerts and monitoring's end (issue 20 items
// 3-5) across a real broker and real refbus-agent daemons: a police unit and a counseling
// center ask the central deletion center, in two cases, to remove the same video (its URL
// typed two ways); the center holds one work item with both requesters, and a status set
// on it reaches both; overdue items are listed by date; a takedown notice is recorded; a
// "reappeared" report raises an alert for crisis support at the requesters; the police
// revoke their consent, which ends their monitoring (they are told why) and unlinks them at
// the center, so the next change reaches the counseling center only; the monthly
// statistics suppress small counts.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <ctime>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "tests/integration/agent_daemon.h"
#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

using schema::AgencyType;

class DeletionWorkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("refbus-deletion-work-test");
    ASSERT_TRUE(fed_.Create(root_, {"seoul-broker"},
                            {{"seoul-police-03", AgencyType::kPoliceUnit, "seoul-broker"},
                             {"seoul-counsel", AgencyType::kCounselingCenter, "seoul-broker"},
                             {"central-dsc", AgencyType::kDeletionCenter, "seoul-broker"},
                             {"busan-dsc", AgencyType::kDeletionCenter, "seoul-broker"}}));
    broker_ = std::make_unique<Broker>(fed_, "seoul-broker", root_ + "/seoul-data");
    broker_->set_policy("allow_unscoped_opaque = false");
    ASSERT_TRUE(broker_->Start());
    for (const char* id : {"seoul-police-03", "seoul-counsel", "central-dsc", "busan-dsc"}) {
      agents_[id] = std::make_unique<AgentDaemon>(fed_, id, root_, broker_->endpoint());
      if (std::string(id) == "central-dsc")
        agents_[id]->set_extra("[deletion]\noverdue_days = 7\n");
      // Every chunk of the police's first request is lost on the way (the test hook).
      if (std::string(id) == "seoul-police-03" &&
          std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) ==
              "EveryChunkLostIsSentAgainByTheRequester") {
        agents_[id]->set_extra("[deletion]\ntest_skip_chunk = 1000\nchunk_timeout_ms = 200\n");
      }
      ASSERT_TRUE(agents_[id]->Start()) << id;
    }
    for (auto& [id, a] : agents_) a->WaitForSession();
  }
  void TearDown() override {
    for (auto& [id, a] : agents_) EXPECT_EQ(a->Stop(), 0) << id << " did not stop cleanly";
    agents_.clear();
    broker_.reset();
    if (!HasFailure()) RemoveTree(root_);
  }
  AgentDaemon& A(const std::string& id) { return *agents_.at(id); }

  // A deletion consent and request; returns {grant_id, request_id}.
  std::pair<std::string, std::string> Ask(AgentDaemon& a, const Json& consent, const Json& items,
                                          bool monitor, const std::string& op,
                                          const std::string& to = "central-dsc") {
    Json g = a.Ok("POST", "/v1/consents", consent);
    Json sent = a.Ok("POST", "/v1/deletions",
                     {{"grant_id", g["grant_id"]},
                      {"to", to},
                      {"items", items},
                      {"monitor", monitor},
                      {"operator", op}});
    return {g["grant_id"], sent["request_id"]};
  }

  // The center's work item holding this content hash or this requester's item.
  static Json WorkItemWith(const Json& work, const std::string& requester,
                           const std::string& item) {
    for (const auto& p : work["platforms"]) {
      for (const auto& w : p["items"]) {
        for (const auto& l : w["links"]) {
          if (l["requester"] == requester && l["item_id"] == item) return w;
        }
      }
    }
    return Json();
  }

  std::string root_;
  Federation fed_;
  std::unique_ptr<Broker> broker_;
  std::map<std::string, std::unique_ptr<AgentDaemon>> agents_;
};

const char* const kVideoSha = "aa00000000000000000000000000000000000000000000000000000000000001";

TEST_F(DeletionWorkTest, OneWorkItemForTwoCasesBothToldAlertsAndRevocation) {
  AgentDaemon& police = A("seoul-police-03");
  AgentDaemon& counsel = A("seoul-counsel");
  AgentDaemon& dsc = A("central-dsc");
  auto [police_grant, police_q] = Ask(police,
                                      {{"local_case", "SPD-2026-77"},
                                       {"basis", "police-notify-support-center"},
                                       {"purposes", {"deletion"}},
                                       {"categories", {"content-locations", "deletion-status"}},
                                       {"recipient_types", {"deletion-center"}},
                                       {"operator", "officer-park"}},
                                      Json::array({{{"item_id", "p1"},
                                                    {"url", "https://Video.Example/watch?v=77"},
                                                    {"platform", "video-a"}},
                                                   {{"item_id", "p2"},
                                                    {"url", "https://files.example/p2"},
                                                    {"sha256", kVideoSha},
                                                    {"platform", "video-a"}}}),
                                      true, "officer-park");
  auto [counsel_grant, counsel_q] =
      Ask(counsel,
          {{"local_case", "CNS-2026-12"},
           {"basis", "consent-subject"},
           {"consenters", {"subject"}},
           {"purposes", {"deletion"}},
           {"categories", {"content-locations", "deletion-status"}},
           {"recipient_types", {"deletion-center"}},
           {"operator", "counselor-7"}},
          Json::array({{{"item_id", "c1"},
                        {"url", "HTTPS://video.example:443/watch?v=77"},
                        {"platform", "video-a"}},
                       {{"item_id", "c2"}, {"url", "https://other.example/x"}}}),
          false, "counselor-7");

  // One work item for the video across the two cases, with both requesters.
  Json work = dsc.WaitFor(
      "/v1/deletion-work", [](const Json& w) { return w.value("work_items", 0) == 3; },
      "three work items at the center", Scaled(15000));
  Json video = WorkItemWith(work, "seoul-police-03", "p1");
  ASSERT_FALSE(video.is_null()) << work.dump();
  EXPECT_EQ(video["requesters"], Json({"seoul-counsel", "seoul-police-03"})) << video.dump();
  EXPECT_EQ(WorkItemWith(work, "seoul-counsel", "c1")["work_id"], video["work_id"]);
  const std::string wid = video["work_id"];
  EXPECT_TRUE(video["monitored"].get<bool>());

  // Overdue: none now; by a date past overdue_days, every item not removed.
  const auto now_ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count());
  EXPECT_EQ(dsc.Ok("GET", "/v1/deletion-work/overdue")["overdue"], 0);
  Json later =
      dsc.Ok("GET", "/v1/deletion-work/overdue/" + std::to_string(now_ms + 8 * 86400000ull));
  EXPECT_EQ(later["overdue"], 3) << later.dump();

  // A takedown notice, and a status set on the work item: both requesters are told.
  Json noticed = dsc.Ok("POST", "/v1/deletion-work/" + wid + "/notice",
                        {{"platform", "video-a"},
                         {"answer", "removed within 24 h"},
                         {"removed", true},
                         {"operator", "dsc-han"}});
  EXPECT_EQ(noticed["notices"].size(), 1u);
  Json set = dsc.Ok("POST", "/v1/deletion-work/" + wid + "/status",
                    {{"status", "removed"}, {"operator", "dsc-han"}});
  EXPECT_EQ(set["told"], Json({"seoul-counsel", "seoul-police-03"})) << set.dump();
  police.WaitFor(
      "/v1/deletions/" + police_q + "/items/p1",
      [](const Json& h) { return h.value("status", "") == "removed"; },
      "the police told the video is removed", Scaled(15000));
  counsel.WaitFor(
      "/v1/deletions/" + counsel_q + "/items/c1",
      [](const Json& h) { return h.value("status", "") == "removed"; },
      "the counseling center told the video is removed", Scaled(15000));
  later = dsc.Ok("GET", "/v1/deletion-work/overdue/" + std::to_string(now_ms + 8 * 86400000ull));
  EXPECT_EQ(later["overdue"], 2) << "a removed item is not overdue: " << later.dump();

  // Reappeared: an alert for crisis support in the requester's inbox.
  dsc.Ok("POST", "/v1/deletion-work/" + wid + "/status",
         {{"status", "reappeared"}, {"operator", "dsc-han"}});
  Json inbox = police.WaitFor(
      "/v1/inbox",
      [](const Json& in) {
        for (const auto& m : in) {
          if (m.value("alert", "") == "reappeared") return true;
        }
        return false;
      },
      "a reappeared alert at the police", Scaled(15000));
  for (const auto& m : inbox) {
    if (m.value("alert", "") != "reappeared") continue;
    EXPECT_TRUE(m.value("crisis_support", false)) << m.dump();
    EXPECT_EQ(m.value("alert_items", 0), 1);
  }

  // The watch list: the monitored video's hash, signed; another center imports it, refuses
  // it again (not newer), and recognizes the hash in a request it gets later.
  AgentDaemon& busan = A("busan-dsc");
  Json pub = dsc.Ok("POST", "/v1/deletion-watch-list/publish", {{"operator", "dsc-han"}});
  EXPECT_EQ(pub["version"], 1);
  EXPECT_NE(pub["full"]["list"].get<std::string>().find(std::string("+") + kVideoSha + "\n"),
            std::string::npos)
      << pub.dump();
  EXPECT_EQ(pub["full"]["list"].get<std::string>().find("SPD-"), std::string::npos);
  Json imported = busan.Ok("POST", "/v1/deletion-watch-list/import",
                           {{"file", pub["full"]}, {"operator", "busan-kim"}});
  EXPECT_EQ(imported["hashes"], 1);
  busan.Refused("POST", "/v1/deletion-watch-list/import",
                {{"file", pub["full"]}, {"operator", "busan-kim"}}, 409, "not newer");
  Ask(police,
      {{"local_case", "SPD-2026-78"},
       {"basis", "police-notify-support-center"},
       {"purposes", {"deletion"}},
       {"categories", {"content-locations", "deletion-status"}},
       {"recipient_types", {"deletion-center"}},
       {"operator", "officer-park"}},
      Json::array(
          {{{"item_id", "b1"}, {"url", "https://mirror.example/v"}, {"sha256", kVideoSha}}}),
      false, "officer-park", "busan-dsc");
  Json bwork = busan.WaitFor(
      "/v1/deletion-work", [](const Json& w) { return w.value("work_items", 0) == 1; },
      "the request at the second center", Scaled(15000));
  EXPECT_EQ(WorkItemWith(bwork, "seoul-police-03", "b1")["known_from"], Json({"central-dsc"}))
      << bwork.dump();

  // The police revoke: their monitoring stops (they are told why), the center unlinks them,
  // and the next change reaches the counseling center only.
  police.Ok("POST", "/v1/consents/" + police_grant + "/revoke",
            {{"reason", "withdrawn-by-subject"}, {"operator", "officer-park"}});
  Json stopped = police.Ok("GET", "/v1/deletions/" + police_q);
  EXPECT_EQ(stopped.value("monitoring_stopped", ""), "consent revoked (withdrawn-by-subject)")
      << stopped.dump();
  Json pcase = police.Ok("GET", "/v1/cases/" + stopped["case_ref"].get<std::string>());
  bool told_stopped = false;
  for (const auto& e : pcase["timeline"]) {
    told_stopped |= e.value("event", "") == "deletion-monitoring-stopped";
  }
  EXPECT_TRUE(told_stopped) << pcase["timeline"].dump();
  Json unlinked = dsc.WaitFor(
      "/v1/deletion-work",
      [&](const Json& w) { return WorkItemWith(w, "seoul-police-03", "p2").is_null(); },
      "the police unlinked at the center", Scaled(15000));
  Json after = WorkItemWith(unlinked, "seoul-counsel", "c1");
  EXPECT_EQ(after["requesters"], Json({"seoul-counsel"})) << after.dump();
  EXPECT_FALSE(after["monitored"].get<bool>()) << "only the police asked for monitoring";
  EXPECT_EQ(after["watch_ended"], "consent revoked (withdrawn-by-subject)");
  Json set2 = dsc.Ok("POST", "/v1/deletion-work/" + wid + "/status",
                     {{"status", "removed"}, {"operator", "dsc-han"}});
  EXPECT_EQ(set2["told"], Json({"seoul-counsel"})) << set2.dump();
  // The revoked request's hash leaves the watch list: the next delta removes it.
  Json pub2 = dsc.Ok("POST", "/v1/deletion-watch-list/publish", {{"operator", "dsc-han"}});
  EXPECT_NE(pub2["delta"]["list"].get<std::string>().find(std::string("-") + kVideoSha),
            std::string::npos)
      << pub2.dump();
  Json imported2 = busan.Ok("POST", "/v1/deletion-watch-list/import",
                            {{"file", pub2["delta"]}, {"operator", "busan-kim"}});
  EXPECT_EQ(imported2["hashes"], 0);

  // Statistics of this month: three items of the counseling center and none of the police
  // left linked; every count is under 5, so none is shown.
  const std::time_t t = static_cast<std::time_t>(now_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char month[8];
  std::strftime(month, sizeof month, "%Y-%m", &tm);
  httplib::Client c(dsc.url());
  auto got = c.Get((std::string("/v1/deletion-stats/") + month).c_str(),
                   {{"Authorization", "Bearer " + ReadFirstLine(dsc.data_dir() + ".token")}});
  ASSERT_TRUE(got && got->status == 200) << (got ? got->body : "no reply");
  const std::string csv = got->body;
  EXPECT_EQ(csv.rfind("month,agency_type,region,outcome,count\n", 0), 0u) << csv;
  EXPECT_NE(csv.find(",counseling-center,"), std::string::npos) << csv;
  EXPECT_NE(csv.find(",<5\n"), std::string::npos) << csv;
  EXPECT_EQ(csv.find(",1\n"), std::string::npos) << csv;
  EXPECT_EQ(csv.find(",2\n"), std::string::npos) << csv;
}

// The deletion center asks again for missing chunks only once it holds one: when every
// chunk is lost, the requester notices the silence and sends the whole request again.
TEST_F(DeletionWorkTest, EveryChunkLostIsSentAgainByTheRequester) {
  AgentDaemon& police = A("seoul-police-03");
  auto [grant, qid] = Ask(police,
                          {{"local_case", "SPD-2026-79"},
                           {"basis", "police-notify-support-center"},
                           {"purposes", {"deletion"}},
                           {"categories", {"content-locations", "deletion-status"}},
                           {"recipient_types", {"deletion-center"}},
                           {"operator", "officer-park"}},
                          Json::array({{{"item_id", "x1"}, {"url", "https://lost.example/1"}}}),
                          false, "officer-park");
  Json told = police.WaitFor(
      "/v1/deletions/" + qid, [](const Json& d) { return d.value("list_complete", false); },
      "the center holding the list after the requester sent it again", Scaled(15000));
  EXPECT_GE(told.value("chunks_resent", 0), 1) << told.dump();
  Json held = A("central-dsc").Ok("GET", "/v1/deletions/" + qid);
  EXPECT_TRUE(held.value("list_complete", false)) << held.dump();
}

}  // namespace
}  // namespace refbus::testing
