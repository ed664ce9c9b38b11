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

#include <sys/stat.h>

#include <chrono>
#include <ctime>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "agent/deletion_work.h"
#include "broker/store.h"
#include "schema/codec.h"
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
                             {"busan-dsc", AgencyType::kDeletionCenter, "seoul-broker"},
                             // No agent runs for these two: the watch-list test speaks for
                             // them with its own client (RawClient).
                             {"daegu-dsc", AgencyType::kDeletionCenter, "seoul-broker"},
                             {"daegu-police", AgencyType::kPoliceUnit, "seoul-broker"}}));
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
  // Carried by hand here (send: false); the bus is WatchListTravelsOverTheBus.
  Json pub =
      dsc.Ok("POST", "/v1/deletion-watch-list/publish", {{"operator", "dsc-han"}, {"send", false}});
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
  Json pub2 =
      dsc.Ok("POST", "/v1/deletion-watch-list/publish", {{"operator", "dsc-han"}, {"send", false}});
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

// refbus-agent with args; its output (stdout and stderr) and exit code.
std::string RunDeletionCenterCli(const std::vector<std::string>& args, const std::string& log,
                                 int* rc) {
  Process p;
  std::vector<std::string> argv = {BinDir() + "/refbus-agent"};
  argv.insert(argv.end(), args.begin(), args.end());
  *rc = p.Start(argv, log) ? p.Wait(Scaled(30000)) : -1;
  return Slurp(log);
}

const char* const kSecondSha = "bb00000000000000000000000000000000000000000000000000000000000002";

// PROTOCOL.md 10.3: the watch list travels between deletion centers over the bus, with no
// grant: full then delta; a delta without its base makes the receiver fetch the full list;
// a forged or older list is refused by the receiver; a party without the deletion role can
// neither send one nor be sent one (the broker refuses, and its audit log records it).
TEST_F(DeletionWorkTest, WatchListTravelsOverTheBus) {
  AgentDaemon& police = A("seoul-police-03");
  AgentDaemon& dsc = A("central-dsc");
  AgentDaemon& busan = A("busan-dsc");
  const Json consent = {{"basis", "police-notify-support-center"},
                        {"purposes", {"deletion"}},
                        {"categories", {"content-locations", "deletion-status"}},
                        {"recipient_types", {"deletion-center"}},
                        {"operator", "officer-park"}};
  auto ask = [&](const std::string& local, const std::string& item, const std::string& sha,
                 bool monitor, const std::string& to) {
    Json c = consent;
    c["local_case"] = local;
    Ask(police, c,
        Json::array({{{"item_id", item},
                      {"url", "https://v.example/" + item},
                      {"sha256", sha},
                      {"platform", "video-a"}}}),
        monitor, "officer-park", to);
  };
  auto work_items = [](AgentDaemon& a, int n, const std::string& what) {
    return a.WaitFor(
        "/v1/deletion-work", [n](const Json& w) { return w.value("work_items", 0) == n; }, what,
        Scaled(15000));
  };
  auto inbox_has = [](AgentDaemon& a, const std::string& what, const std::string& refused) {
    a.WaitFor(
        "/v1/inbox", [&](const Json& in) { return InboxHasWatchList(in, what, refused); },
        a.id() + ": watch list message " + what + refused, Scaled(15000));
  };
  // Full, then a delta: the other center holds version 2 and recognizes its hash.
  ask("SPD-W-1", "w1", kVideoSha, true, "central-dsc");
  work_items(dsc, 1, "the first monitored item at the center");
  Json pub1 = dsc.Ok("POST", "/v1/deletion-watch-list/publish", {{"operator", "dsc-han"}});
  EXPECT_EQ(pub1["bus"]["sent_to"], Json({"busan-dsc", "daegu-dsc"})) << pub1.dump();
  inbox_has(busan, "imported version 1 of central-dsc's list", "");
  ask("SPD-W-2", "w2", kSecondSha, true, "central-dsc");
  work_items(dsc, 2, "the second monitored item at the center");
  Json pub2 = dsc.Ok("POST", "/v1/deletion-watch-list/publish", {{"operator", "dsc-han"}});
  EXPECT_EQ(pub2["version"], 2);
  inbox_has(busan, "imported version 2 of central-dsc's list", "");
  ask("SPD-W-3", "b2", kSecondSha, false, "busan-dsc");
  Json bwork = work_items(busan, 1, "the request at the second center");
  EXPECT_EQ(WorkItemWith(bwork, "seoul-police-03", "b2")["known_from"], Json({"central-dsc"}))
      << "the hash only version 2 lists is not recognized: " << bwork.dump();

  // Version 3 is carried by hand and never reaches busan: version 4's delta has a base it
  // lacks, so it asks for the full list, and the publisher answers with it.
  dsc.Ok("POST", "/v1/deletion-watch-list/publish", {{"operator", "dsc-han"}, {"send", false}});
  dsc.Ok("POST", "/v1/deletion-watch-list/publish", {{"operator", "dsc-han"}});
  inbox_has(busan, "delta without its base: asked central-dsc for the full list", "");
  inbox_has(dsc, "answered busan-dsc with the full list, version 4", "");
  inbox_has(busan, "imported version 4 of central-dsc's list", "");

  // The center's CLI: the work queue of one platform, a takedown notice, a version
  // published for carrying by hand (--no-send --out) and imported at the other center.
  const std::vector<std::string> dsc_read = {"--url", dsc.url(), "--token-file",
                                             dsc.data_dir() + ".token"};
  std::vector<std::string> dsc_api = dsc_read;
  dsc_api.insert(dsc_api.end(), {"--operator", "dsc-han"});
  auto cli = [&](std::vector<std::string> args, const std::vector<std::string>& api,
                 const std::string& log) {
    args.insert(args.end(), api.begin(), api.end());
    int rc = 0;
    std::string out = RunDeletionCenterCli(args, root_ + "/" + log + ".log", &rc);
    EXPECT_EQ(rc, 0) << log << ": " << out;
    return out;
  };
  const std::string wid =
      WorkItemWith(dsc.Ok("GET", "/v1/deletion-work"), "seoul-police-03", "w1")["work_id"];
  std::string out = cli({"deletions", "work", "--platform", "other"}, dsc_read, "cli-work");
  EXPECT_NE(out.find(wid), std::string::npos) << out;
  out = cli({"deletions", "work", "--platform", "video-b"}, dsc_read, "cli-work-none");
  EXPECT_NE(out.find("no work items"), std::string::npos) << out;
  out = cli(
      {"deletions", "notice", wid, "--platform", "video-a", "--answer", "taken down", "--removed"},
      dsc_api, "cli-notice");
  EXPECT_NE(out.find("work item " + wid + ": 1 notice(s)"), std::string::npos) << out;
  const std::string carried = root_ + "/watch-list-5.json";
  out = cli({"deletions", "watch-list", "publish", "--no-send", "--out", carried}, dsc_api,
            "cli-publish");
  EXPECT_NE(out.find("watch list version 5"), std::string::npos) << out;
  struct stat st {};
  ASSERT_EQ(::stat(carried.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  out = cli({"deletions", "watch-list", "import", carried},
            {"--url", busan.url(), "--token-file", busan.data_dir() + ".token", "--operator",
             "busan-kim"},
            "cli-import");
  EXPECT_NE(out.find("imported version 5 of central-dsc's watch list"), std::string::npos) << out;

  // A center writing its own client: a list altered after signing, and an older list.
  const schema::Directory& dir = fed_.directory();
  const keys::Identity daegu = fed_.LoadIdentity("daegu-dsc");
  auto c = std::make_unique<RawClient>(daegu, dir.Find("seoul-broker")->ActiveKeys()->transport_key,
                                       broker_->endpoint());
  ASSERT_TRUE(c->Hello("daegu-dsc"));
  agent::WatchList list;
  list.publisher = "daegu-dsc";
  list.issued_at_ms = SystemClock::Get().NowMillis();
  list.added = {kVideoSha};
  auto send = [&](RawClient& client, const keys::Identity& from, const std::string& to,
                  const Json& file) {
    Bytes env = SealWatchListByHand(from, dir, to, file.dump());
    return client.Submit(env);
  };
  list.version = 2;
  Json forged = agent::SignWatchList(list, daegu);
  forged["list"] = forged["list"].get<std::string>() + "+" + std::string(kSecondSha) + "\n";
  auto r = send(*c, daegu, "busan-dsc", forged);
  ASSERT_TRUE(r && r->type == schema::Frame::Type::kAck) << "the broker carries a sealed list";
  inbox_has(busan, "", "signature");
  r = send(*c, daegu, "busan-dsc", agent::SignWatchList(list, daegu));
  ASSERT_TRUE(r && r->type == schema::Frame::Type::kAck);
  inbox_has(busan, "imported version 2 of daegu-dsc's list", "");
  list.version = 1;
  r = send(*c, daegu, "busan-dsc", agent::SignWatchList(list, daegu));
  ASSERT_TRUE(r && r->type == schema::Frame::Type::kAck);
  inbox_has(busan, "", "not newer");

  // Roles at the broker: a deletion center may not send one to a counseling center, and a
  // police unit may not send one at all.
  r = send(*c, daegu, "seoul-counsel", agent::SignWatchList(list, daegu));
  ASSERT_TRUE(r && r->type == schema::Frame::Type::kNack);
  EXPECT_EQ(r->nack.reason, schema::NackReason::kNotPermitted) << r->nack.detail;
  EXPECT_NE(r->nack.detail.find("recipient seoul-counsel has none"), std::string::npos)
      << r->nack.detail;
  const keys::Identity officer = fed_.LoadIdentity("daegu-police");
  RawClient p(officer, dir.Find("seoul-broker")->ActiveKeys()->transport_key, broker_->endpoint());
  ASSERT_TRUE(p.Hello("daegu-police"));
  r = send(p, officer, "busan-dsc", agent::SignWatchList(list, daegu));
  ASSERT_TRUE(r && r->type == schema::Frame::Type::kNack);
  EXPECT_EQ(r->nack.reason, schema::NackReason::kNotPermitted) << r->nack.detail;
  EXPECT_NE(r->nack.detail.find("sender daegu-police has none"), std::string::npos)
      << r->nack.detail;

  // Both refusals are in the broker's audit log.
  for (auto& [id, a] : agents_) EXPECT_EQ(a->Stop(), 0) << id;
  agents_.clear();
  ASSERT_EQ(broker_->Stop(), 0);
  broker::StoreOptions o;
  o.dir = root_ + "/seoul-data";
  o.broker_id = "seoul-broker";
  auto store = broker::Store::Open(o);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::set<std::string> refused;
  auto n = (*store)->AuditSize();
  ASSERT_TRUE(n.ok());
  for (uint64_t i = 0; i < *n; ++i) {
    auto e = schema::DecodeAuditEntry(*(*store)->AuditEntryBytes(i));
    ASSERT_TRUE(e.ok());
    if (e->event == schema::AuditEvent::kEnvelopeRejected &&
        e->kind == schema::MessageKind::kDeletionWatchList &&
        e->reason == schema::NackReason::kNotPermitted) {
      refused.insert(e->actor);
    }
  }
  EXPECT_EQ(refused, (std::set<std::string>{"daegu-dsc", "daegu-police"}));
}

}  // namespace
}  // namespace refbus::testing
