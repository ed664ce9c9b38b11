// Metrics and health checks of refbus-agent run (agent/metrics.h): every family present,
// label values escaped, the text accepted by promtool, health and readiness.
#include "agent/metrics.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "tests/unit/test_util.h"

namespace refbus::agent {
namespace {

using ::refbus::test::HasSubstr;

constexpr UnixMillis kNow = 1'900'000'000'000;

AgentStatus FreshStatus() {
  AgentStatus st;
  st.agency_id = "seoul-wee-01";
  st.time_ms = kNow - 1500;
  st.started_ms = kNow - 60'000;
  EngineSnapshot& e = st.engine;
  e.broker = "seoul-broker";
  e.session_ready = true;
  e.directory_serial = 4;
  e.directory_expires_ms = kNow + kMillisPerDay;
  e.outbox = 2;
  e.inbox = 9;
  e.inbox_unprocessed = 1;
  e.client.submitted = 7;
  e.client.sent = 8;
  e.client.resent = 1;
  e.client.acked = 5;
  e.client.refused = 1;
  e.client.nacks[static_cast<size_t>(schema::NackReason::kQuotaExceeded)] = 3;
  e.client.nacks[static_cast<size_t>(schema::NackReason::kConsentOutOfScope)] = 1;
  e.client.delivered = 9;
  e.client.connects = 3;
  e.client.sessions = 3;
  e.client.last_ack_ms = kNow - 2000;
  return st;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(AgentMetricsTest, EveryFamilyWithItsValues) {
  const std::string text = FormatAgentMetrics(FreshStatus(), kNow);
  std::set<std::string> families;
  const std::regex type(R"(# TYPE (refbus_agent_[a-z0-9_]+) (counter|gauge))");
  for (const auto& line : Lines(text)) {
    std::smatch m;
    if (std::regex_match(line, m, type)) {
      EXPECT_TRUE(families.insert(m[1]).second) << "family twice: " << m[1];
      const std::string name = m[1];
      const bool total = name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0;
      EXPECT_EQ(total, m[2] == "counter") << name;
    }
  }
  for (const char* name : {"refbus_agent_healthy",
                           "refbus_agent_ready",
                           "refbus_agent_info",
                           "refbus_agent_start_time_seconds",
                           "refbus_agent_status_age_seconds",
                           "refbus_agent_connected",
                           "refbus_agent_directory_serial",
                           "refbus_agent_directory_expiry_timestamp_seconds",
                           "refbus_agent_outbox_depth",
                           "refbus_agent_inbox_messages",
                           "refbus_agent_inbox_unprocessed",
                           "refbus_agent_last_ack_age_seconds",
                           "refbus_agent_submitted_total",
                           "refbus_agent_sent_total",
                           "refbus_agent_resent_total",
                           "refbus_agent_acked_total",
                           "refbus_agent_refused_total",
                           "refbus_agent_nacks_total",
                           "refbus_agent_received_total",
                           "refbus_agent_duplicate_deliveries_total",
                           "refbus_agent_reconnects_total",
                           "refbus_agent_sessions_total",
                           "refbus_agent_handshake_failures_total",
                           "refbus_agent_store_errors_total"}) {
    EXPECT_EQ(families.count(name), 1u) << name << " missing from\n" << text;
  }
  for (const char* part : {
           "refbus_agent_healthy 1\n",
           "refbus_agent_ready 1\n",
           "refbus_agent_connected 1\n",
           "refbus_agent_info{agency=\"seoul-wee-01\",broker=\"seoul-broker\"} 1\n",
           "refbus_agent_outbox_depth 2\n",
           "refbus_agent_inbox_messages 9\n",
           "refbus_agent_last_ack_age_seconds 2\n",
           "refbus_agent_status_age_seconds 1.5\n",
           "refbus_agent_acked_total 5\n",
           "refbus_agent_received_total 9\n",
           "refbus_agent_reconnects_total 2\n",
           "refbus_agent_nacks_total{reason=\"quota-exceeded\"} 3\n",
           "refbus_agent_nacks_total{reason=\"consent-out-of-scope\"} 1\n",
           "refbus_agent_nacks_total{reason=\"storage-full\"} 0\n",
       }) {
    EXPECT_TRUE(HasSubstr(text, part)) << part << " missing from\n" << text;
  }
}

TEST(AgentMetricsTest, LabelValuesAreEscaped) {
  AgentStatus st = FreshStatus();
  st.engine.broker = "odd\\broker\"id\n";
  const std::string text = FormatAgentMetrics(st, kNow);
  EXPECT_TRUE(HasSubstr(text, "broker=\"odd\\\\broker\\\"id\\n\"}")) << text;
}

TEST(AgentMetricsTest, BeforeTheFirstRefreshOnlyTheChecks) {
  const std::string text = FormatAgentMetrics(AgentStatus{}, kNow);
  EXPECT_TRUE(HasSubstr(text, "refbus_agent_healthy 0\n"));
  EXPECT_TRUE(HasSubstr(text, "refbus_agent_ready 0\n"));
  EXPECT_EQ(text.find("refbus_agent_connected"), std::string::npos) << text;
  EXPECT_EQ(text.find("last_ack_age"), std::string::npos) << text;
}

TEST(AgentMetricsTest, HealthAndReadiness) {
  AgentStatus st = FreshStatus();
  EXPECT_TRUE(CheckAgentHealth(st, kNow).ok);
  EXPECT_EQ(CheckAgentReady(st, kNow).reason, "ok");

  st.time_ms = kNow - kAgentHealthyStatusAgeMs - 1000;
  CheckResult stale = CheckAgentHealth(st, kNow);
  EXPECT_FALSE(stale.ok);
  EXPECT_TRUE(HasSubstr(stale.reason, "stuck"));
  EXPECT_TRUE(HasSubstr(CheckAgentReady(st, kNow).reason, "not healthy: "));
  EXPECT_TRUE(HasSubstr(FormatAgentMetrics(st, kNow), "refbus_agent_healthy 0\n"));

  st = FreshStatus();
  st.running = false;
  EXPECT_TRUE(HasSubstr(CheckAgentHealth(st, kNow).reason, "stopping"));

  st = FreshStatus();
  st.engine.session_ready = false;
  CheckResult no_session = CheckAgentReady(st, kNow);
  EXPECT_FALSE(no_session.ok);
  EXPECT_TRUE(HasSubstr(no_session.reason, "no session with the home broker seoul-broker"));
  EXPECT_TRUE(CheckAgentHealth(st, kNow).ok);  // alive, only not ready
  EXPECT_TRUE(HasSubstr(FormatAgentMetrics(st, kNow), "refbus_agent_ready 0\n"));
  EXPECT_TRUE(HasSubstr(FormatAgentMetrics(st, kNow), "refbus_agent_connected 0\n"));

  st = FreshStatus();
  st.engine.directory_expires_ms = kNow - 1;
  EXPECT_TRUE(HasSubstr(CheckAgentReady(st, kNow).reason, "directory serial 4 expired"));
  st.engine.directory_serial = 0;
  EXPECT_EQ(CheckAgentReady(st, kNow).reason, "no directory loaded");
}

// promtool (Debian package prometheus) accepts the text; a missing promtool fails.
TEST(AgentMetricsTest, PromtoolAcceptsTheExposition) {
  FILE* which = ::popen("command -v promtool", "r");
  ASSERT_NE(which, nullptr);
  char buf[512];
  const bool found = std::fgets(buf, sizeof(buf), which) != nullptr;
  ::pclose(which);
  ASSERT_TRUE(found) << "promtool is not installed: run deploy/install-deps.sh";
  test::TempDir dir;
  AgentStatus st = FreshStatus();
  st.engine.broker = "odd\\broker\"id\n";
  for (const AgentStatus& s : {st, AgentStatus{}}) {
    const std::string path = dir.Join("metrics.txt");
    std::ofstream(path) << FormatAgentMetrics(s, kNow);
    FILE* p = ::popen(("promtool check metrics < '" + path + "' 2>&1").c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    while (std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
    const int status = ::pclose(p);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0 && out.empty()) << out;
  }
}

}  // namespace
}  // namespace refbus::agent
