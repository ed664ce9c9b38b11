// Metrics and health checks of a real refbus-agent daemon ([metrics], agent/metrics.h) with
// a real broker: /healthz answers 200 while the daemon runs, /readyz 503 while its broker is
// down and 200 once a session is up (and 503 again when the broker goes away), /metrics
// counts the grant registration the broker acked, and `promtool check metrics` accepts the
// text (a missing promtool fails the test).
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

using Json = nlohmann::json;

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// `promtool check metrics` on text: empty when it passes, else why not.

class AgentMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("refbus-agent-metrics-test");
    ASSERT_TRUE(
        fed_.Create(root_, {"seoul-broker"},
                    {{"seoul-wee-01", schema::AgencyType::kWeeCenter, "seoul-broker"},
                     {"seoul-counsel", schema::AgencyType::kCounselingCenter, "seoul-broker"}}));
    broker_ = std::make_unique<Broker>(fed_, "seoul-broker", root_ + "/broker-data");
  }
  void TearDown() override {
    agent_.reset();
    broker_.reset();
    if (!HasFailure()) RemoveTree(root_);
  }

  // Starts refbus-agent run for seoul-wee-01 against broker_endpoint, with [metrics].
  bool StartAgent(const std::string& broker_endpoint) {
    const std::string dir = fed_.Dir("seoul-wee-01");
    const std::string data = root_ + "/wee-agent";
    const std::string cfg = root_ + "/wee-agent.toml";
    std::ofstream out(cfg);
    out << "[agent]\nid = \"seoul-wee-01\"\ndata_dir = \"" << data << "\"\n"
        << "key_file = \"" << dir << "/identity.key\"\n"
        << "directory = \"" << dir << "/directory\"\n"
        << "anchor = \"" << dir << "/authority.pub\"\n"
        << "trust_state = \"" << data << ".trust-state\"\n"
        << "broker_endpoint = \"" << broker_endpoint << "\"\n"
        << "[api]\nlisten = \"127.0.0.1:0\"\nurl_file = \"" << ApiUrlFile() << "\"\n"
        << "token_file = \"" << root_ << "/wee.token\"\n"
        << "[metrics]\nbind = \"127.0.0.1:0\"\nurl_file = \"" << MetricsUrlFile() << "\"\n";
    out.close();
    agent_ = std::make_unique<Process>();
    if (!agent_->Start({BinDir() + "/refbus-agent", "run", "-c", cfg}, AgentLog())) return false;
    for (int i = 0; i < 1000; ++i) {
      metrics_url_ = ReadFirstLine(MetricsUrlFile());
      api_url_ = ReadFirstLine(ApiUrlFile());
      if (!metrics_url_.empty() && !api_url_.empty()) return true;
      if (agent_->Wait(10) >= 0) break;
    }
    ADD_FAILURE() << "refbus-agent run did not come up; log:\n" << Text(AgentLog());
    return false;
  }

  std::string MetricsUrlFile() const { return root_ + "/wee-metrics.url"; }
  std::string ApiUrlFile() const { return root_ + "/wee-api.url"; }
  std::string AgentLog() const { return root_ + "/wee-agent.log"; }
  static std::string Text(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  // GET path on the metrics listener: status and body (0 if no answer).
  std::pair<int, std::string> Get(const std::string& path) {
    httplib::Client c(metrics_url_);
    c.set_connection_timeout(2, 0);
    c.set_read_timeout(5, 0);
    auto r = c.Get(path.c_str());
    if (!r) return {0, ""};
    return {r->status, r->body};
  }

  // Polls until pred holds on GET path, up to timeout; returns the last answer.
  std::pair<int, std::string> WaitFor(const std::string& path,
                                      const std::function<bool(int, const std::string&)>& pred,
                                      std::chrono::seconds timeout = std::chrono::seconds(20)) {
    auto until = std::chrono::steady_clock::now() + timeout;
    std::pair<int, std::string> r;
    while (std::chrono::steady_clock::now() < until) {
      r = Get(path);
      if (pred(r.first, r.second)) return r;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return r;
  }

  std::string root_;
  Federation fed_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<Process> agent_;
  std::string metrics_url_, api_url_;
};

TEST_F(AgentMetricsTest, HealthReadinessAndMetricsFollowTheBroker) {
  // The broker's port is learnt from a first run, then the broker stops: the agent starts
  // with its broker down.
  ASSERT_TRUE(broker_->Start());
  const std::string endpoint = broker_->endpoint();
  ASSERT_EQ(broker_->Stop(), 0);
  broker_->set_bind(endpoint);
  ASSERT_TRUE(StartAgent(endpoint));
  ASSERT_TRUE(metrics_url_.rfind("http://127.0.0.1:", 0) == 0) << metrics_url_;

  auto health = WaitFor("/healthz", [](int s, const std::string&) { return s == 200; });
  ASSERT_EQ(health.first, 200) << health.second << Text(AgentLog());
  EXPECT_EQ(health.second, "ok\n");
  auto ready = Get("/readyz");
  EXPECT_EQ(ready.first, 503);
  EXPECT_NE(ready.second.find("no session with the home broker seoul-broker"), std::string::npos)
      << ready.second;
  auto down = Get("/metrics");
  ASSERT_EQ(down.first, 200);
  EXPECT_EQ(Sample(down.second, "refbus_agent_connected"), 0.0) << down.second;
  EXPECT_EQ(Sample(down.second, "refbus_agent_healthy"), 1.0) << down.second;
  EXPECT_EQ(Sample(down.second, "refbus_agent_ready"), 0.0) << down.second;
  EXPECT_EQ(PromtoolProblems(down.second, root_), "");

  // The broker comes up: a session, ready.
  ASSERT_TRUE(broker_->Start());
  ready = WaitFor("/readyz", [](int s, const std::string&) { return s == 200; });
  ASSERT_EQ(ready.first, 200) << ready.second << "\n" << Text(AgentLog());
  EXPECT_EQ(ready.second, "ok\n");

  // A grant registration goes to the broker as a control frame and is acked.
  httplib::Client api(api_url_);
  api.set_read_timeout(30, 0);
  const std::string token = ReadFirstLine(root_ + "/wee.token");
  Json consent = {{"local_case", "WEE-2026-0042"},
                  {"basis", "consent-legal-representative"},
                  {"legal_article", "PIPA 22-2"},
                  {"consenters", {"guardian"}},
                  {"subject_assent", true},
                  {"purposes", {"counseling"}},
                  {"categories", {"identity", "incident-summary"}},
                  {"recipient_types", {"counseling-center"}},
                  {"valid_days", 90},
                  {"operator", "wee-teacher-1"}};
  auto recorded = api.Post("/v1/consents", {{"Authorization", "Bearer " + token}}, consent.dump(),
                           "application/json");
  ASSERT_TRUE(recorded);
  ASSERT_EQ(recorded->status, 201) << recorded->body;
  const Json reply = Json::parse(recorded->body);
  const std::string grant = reply.value("grant_id", "");
  const std::string case_ref = reply.value("case_ref", "");
  ASSERT_FALSE(grant.empty());

  auto up = WaitFor("/metrics", [](int s, const std::string& b) {
    return s == 200 && Sample(b, "refbus_agent_acked_total").value_or(0) >= 1 &&
           Sample(b, "refbus_agent_outbox_depth") == 0.0;
  });
  const std::string body = up.second;
  EXPECT_EQ(Sample(body, "refbus_agent_connected"), 1.0) << body;
  EXPECT_EQ(Sample(body, "refbus_agent_ready"), 1.0) << body;
  EXPECT_GE(Sample(body, "refbus_agent_acked_total").value_or(0), 1.0) << body;
  EXPECT_GE(Sample(body, "refbus_agent_submitted_total").value_or(0), 1.0) << body;
  EXPECT_GE(Sample(body, "refbus_agent_sent_total").value_or(0), 1.0) << body;
  EXPECT_EQ(Sample(body, "refbus_agent_outbox_depth"), 0.0) << body;
  EXPECT_GE(Sample(body, "refbus_agent_sessions_total").value_or(0), 1.0) << body;
  EXPECT_LE(Sample(body, "refbus_agent_last_ack_age_seconds").value_or(99), 30.0) << body;
  EXPECT_EQ(Sample(body, "refbus_agent_nacks_total{reason=\"consent-out-of-scope\"}"), 0.0) << body;
  EXPECT_EQ(Sample(body, "refbus_agent_directory_serial"),
            static_cast<double>(fed_.directory().serial))
      << body;
  EXPECT_EQ(Sample(body, "refbus_agent_info{agency=\"seoul-wee-01\",broker=\"seoul-broker\"}"), 1.0)
      << body;
  // Ids, enum names and numbers only: no grant id, case reference or local case number.
  EXPECT_EQ(body.find(grant), std::string::npos);
  EXPECT_EQ(body.find(case_ref), std::string::npos);
  EXPECT_EQ(body.find("WEE-2026"), std::string::npos);
  const std::regex line_re(
      R"re(# (HELP|TYPE) refbus_agent_[a-z0-9_]+ .*|refbus_agent_[a-z0-9_]+(\{[a-z]+="[a-z0-9-]+"(,[a-z]+="[a-z0-9-]+")*\})? [0-9.e+-]+)re");
  for (const auto& line : Lines(body)) EXPECT_TRUE(std::regex_match(line, line_re)) << line;
  EXPECT_EQ(PromtoolProblems(body, root_), "");

  // The broker goes away: not ready (still healthy); back again: ready, one reconnect more.
  ASSERT_EQ(broker_->Stop(), 0);
  ready = WaitFor("/readyz", [](int s, const std::string&) { return s == 503; });
  EXPECT_EQ(ready.first, 503) << ready.second;
  EXPECT_EQ(Get("/healthz").first, 200);
  ASSERT_TRUE(broker_->Start());
  ready = WaitFor("/readyz", [](int s, const std::string&) { return s == 200; });
  EXPECT_EQ(ready.first, 200) << ready.second;
  auto again = WaitFor("/metrics", [](int, const std::string& b) {
    return Sample(b, "refbus_agent_reconnects_total").value_or(0) >= 1;
  });
  EXPECT_GE(Sample(again.second, "refbus_agent_reconnects_total").value_or(0), 1.0) << again.second;

  // SIGTERM: a clean stop, the listener closed and its URL file removed.
  agent_->Signal(SIGTERM);
  EXPECT_EQ(agent_->Wait(15000), 0) << Text(AgentLog());
  EXPECT_EQ(ReadFirstLine(MetricsUrlFile()), "");
  EXPECT_EQ(Get("/healthz").first, 0);
}

}  // namespace
}  // namespace refbus::testing
