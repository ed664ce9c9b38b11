// Metrics and health checks of refbus-broker (broker/metrics.h): the exposition text
// (names, types, escaping), the checks, the [metrics] configuration, and the listener.
#include "broker/metrics.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "broker/config.h"
#include "core/file.h"
#include "tests/unit/test_util.h"

namespace refbus::broker {
namespace {

using test::HasSubstr;
using test::IsOk;

constexpr UnixMillis kNow = 1'900'000'000'000;  // 2030-03-17

BrokerStatus FreshStatus() {
  BrokerStatus st;
  st.broker_id = "seoul-broker";
  st.time_ms = kNow - 2500;
  st.started_ms = kNow - 60'000;
  st.directory_serial = 7;
  st.directory_expires_ms = kNow + kMillisPerDay;
  st.audit_size = 42;
  st.storage_used_bytes = 10u << 20;
  st.storage_map_bytes = 100u << 20;
  st.counters = {{"accepted", 5}, {"refused", 2}, {"connections_refused", 1}};
  LinkStatus up;
  up.peer = "busan-broker";
  up.state = "up";
  up.forwarded = 9;
  up.sessions = 1;
  LinkStatus down;
  down.peer = "odd\\peer\"with\nnewline";
  down.state = "down";
  down.backlog = 3;
  down.control_backlog = 1;
  down.oldest_queued_ms = kNow - 90'500;
  down.refused = 4;
  down.sessions = 2;
  down.problem = "no answer";
  down.endpoint = "tcp://10.0.0.7:7450";
  st.links = {up, down};
  st.envelopes = {
      {"referral", "accepted", 4}, {"referral", "refused", 1}, {"opaque", "duplicate", 2}};
  st.nacks = {{"quota-exceeded", 1}, {"bad-signature", 0}};
  st.mailboxes = {{"seoul-counsel", 3, kNow - 12'250}, {"odd\\box\"id\n", 0, 0}};
  st.commit_buckets.assign(kCommitSecondsBounds.size() + 1, 0);
  st.commit_buckets[0] = 5;        // <= 0.5 ms
  st.commit_buckets[3] = 2;        // (2.5 ms, 5 ms]
  st.commit_seconds_sum = 0.0625;  // exact in binary: printed as given
  st.last_checkpoint_ms = kNow - 4000;
  st.last_checkpoint_size = 40;
  return st;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Label values from ids are escaped (backslash, quote, newline), in every family with labels.
TEST(MetricsTest, EscapesLabelValues) {
  const std::string text = FormatMetrics(FreshStatus(), kNow);
  EXPECT_TRUE(HasSubstr(text, "refbus_broker_link_up{peer=\"odd\\\\peer\\\"with\\nnewline\"} 0\n"))
      << text;
  EXPECT_TRUE(HasSubstr(text, "refbus_broker_mailbox_depth{mailbox=\"odd\\\\box\\\"id\\n\"} 0\n"))
      << text;
  EXPECT_EQ(text.find("odd\\peer\""), std::string::npos) << "unescaped label value";
  EXPECT_EQ(text.find("box\"id"), std::string::npos) << "unescaped label value";
}

// Every family: HELP, then TYPE, then its samples, together; names prefixed and in
// snake case; counters end in _total, gauges do not; each family appears once.
TEST(MetricsTest, ExpositionIsWellFormed) {
  const std::string text = FormatMetrics(FreshStatus(), kNow);
  ASSERT_FALSE(text.empty());
  ASSERT_EQ(text.back(), '\n');
  const std::regex help(R"(# HELP (refbus_broker_[a-z0-9_]+) \S.*)");
  const std::regex type(R"(# TYPE (refbus_broker_[a-z0-9_]+) (counter|gauge|histogram))");
  const std::regex sample(
      R"((refbus_broker_[a-z0-9_]+)(\{[a-z_]+="(?:[^"\\\n]|\\.)*"(,[a-z_]+="(?:[^"\\\n]|\\.)*")*\})? (-?[0-9]+(\.[0-9]+)?(e[-+][0-9]+)?))");
  std::set<std::string> seen;
  std::string family, family_type;
  bool typed = false;
  size_t samples = 0;
  for (const std::string& line : Lines(text)) {
    std::smatch m;
    if (std::regex_match(line, m, help)) {
      EXPECT_TRUE(seen.insert(m[1]).second) << "family twice: " << m[1];
      family = m[1];
      typed = false;
      continue;
    }
    if (std::regex_match(line, m, type)) {
      EXPECT_EQ(m[1], family) << "TYPE without its HELP: " << line;
      family_type = m[2];
      typed = true;
      bool total = family.size() > 6 && family.compare(family.size() - 6, 6, "_total") == 0;
      EXPECT_EQ(total, family_type == "counter") << family;
      continue;
    }
    ASSERT_TRUE(std::regex_match(line, m, sample)) << "not a sample line: " << line;
    EXPECT_TRUE(typed) << "sample before its TYPE: " << line;
    std::string name = m[1];
    if (family_type == "histogram") {
      for (const char* suffix : {"_bucket", "_count", "_sum"}) {
        if (name == family + suffix) name = family;
      }
    }
    EXPECT_EQ(name, family) << "sample outside its family: " << line;
    ++samples;
  }
  EXPECT_GT(samples, 20u);
  for (const char* name : {"refbus_broker_accepted_total",
                           "refbus_broker_refused_total",
                           "refbus_broker_connections_refused_total",
                           "refbus_broker_directory_serial",
                           "refbus_broker_directory_expiry_timestamp_seconds",
                           "refbus_broker_audit_log_entries",
                           "refbus_broker_status_age_seconds",
                           "refbus_broker_storage_used_bytes",
                           "refbus_broker_storage_map_bytes",
                           "refbus_broker_link_up",
                           "refbus_broker_link_backlog",
                           "refbus_broker_link_control_backlog",
                           "refbus_broker_link_oldest_queued_age_seconds",
                           "refbus_broker_link_forwarded_total",
                           "refbus_broker_link_refused_total",
                           "refbus_broker_link_sessions_total",
                           "refbus_broker_healthy",
                           "refbus_broker_ready",
                           "refbus_broker_envelopes_total",
                           "refbus_broker_nacks_total",
                           "refbus_broker_mailbox_depth",
                           "refbus_broker_mailbox_oldest_queued_age_seconds",
                           "refbus_broker_commit_duration_seconds",
                           "refbus_broker_last_checkpoint_age_seconds",
                           "refbus_broker_last_checkpoint_entries",
                           "refbus_broker_info",
                           "refbus_broker_start_time_seconds"}) {
    EXPECT_EQ(seen.count(name), 1u) << name << " missing from\n" << text;
  }
}

TEST(MetricsTest, ExpositionValues) {
  const std::string text = FormatMetrics(FreshStatus(), kNow);
  for (const char* part : {
           "# TYPE refbus_broker_accepted_total counter\nrefbus_broker_accepted_total 5\n",
           "refbus_broker_refused_total 2\n",
           "refbus_broker_directory_serial 7\n",
           "refbus_broker_audit_log_entries 42\n",
           "refbus_broker_status_age_seconds 2.5\n",
           "refbus_broker_storage_used_bytes 10485760\n",
           "refbus_broker_healthy 1\n",
           "refbus_broker_ready 1\n",
           "refbus_broker_info{broker=\"seoul-broker\"} 1\n",
           "refbus_broker_link_up{peer=\"busan-broker\"} 1\n",
           "refbus_broker_link_up{peer=\"odd\\\\peer\\\"with\\nnewline\"} 0\n",
           "refbus_broker_link_backlog{peer=\"odd\\\\peer\\\"with\\nnewline\"} 3\n",
           "refbus_broker_link_oldest_queued_age_seconds{peer=\"busan-broker\"} 0\n",
           "refbus_broker_link_oldest_queued_age_seconds{peer=\"odd\\\\peer\\\"with\\nnewline\"} "
           "90.5\n",
           "refbus_broker_envelopes_total{kind=\"referral\",outcome=\"accepted\"} 4\n",
           "refbus_broker_envelopes_total{kind=\"referral\",outcome=\"refused\"} 1\n",
           "refbus_broker_envelopes_total{kind=\"opaque\",outcome=\"duplicate\"} 2\n",
           "refbus_broker_nacks_total{reason=\"quota-exceeded\"} 1\n",
           "refbus_broker_nacks_total{reason=\"bad-signature\"} 0\n",
           "refbus_broker_mailbox_depth{mailbox=\"seoul-counsel\"} 3\n",
           "refbus_broker_mailbox_oldest_queued_age_seconds{mailbox=\"seoul-counsel\"} 12.25\n",
           "refbus_broker_mailboxes_truncated 0\n",
           "refbus_broker_last_checkpoint_age_seconds 4\n",
           "refbus_broker_last_checkpoint_entries 40\n",
           "# TYPE refbus_broker_commit_duration_seconds histogram\n",
           "refbus_broker_commit_duration_seconds_count 7\n",
           "refbus_broker_commit_duration_seconds_sum 0.0625\n",
           "refbus_broker_commit_duration_seconds_bucket{le=\"0.0005\"} 5\n",
           "refbus_broker_commit_duration_seconds_bucket{le=\"0.0025\"} 5\n",
           "refbus_broker_commit_duration_seconds_bucket{le=\"0.005\"} 7\n",
           "refbus_broker_commit_duration_seconds_bucket{le=\"1\"} 7\n",
           "refbus_broker_commit_duration_seconds_bucket{le=\"+Inf\"} 7\n",
           "refbus_broker_link_refused_total{peer=\"odd\\\\peer\\\"with\\nnewline\"} 4\n",
           "refbus_broker_link_sessions_total{peer=\"busan-broker\"} 1\n",
       }) {
    EXPECT_TRUE(HasSubstr(text, part)) << part << " missing from\n" << text;
  }
  // Ids and numbers only: the link's endpoint and problem text are not metrics.
  EXPECT_EQ(text.find("10.0.0.7"), std::string::npos);
  EXPECT_EQ(text.find("no answer"), std::string::npos);
}

// Before the first checkpoint and commit there is no age and no histogram (not zeros that
// would read as "just now").
TEST(MetricsTest, NoCheckpointNoAge) {
  BrokerStatus st = FreshStatus();
  st.last_checkpoint_ms = 0;
  st.last_checkpoint_size = 0;
  st.commit_buckets.clear();
  const std::string text = FormatMetrics(st, kNow);
  EXPECT_EQ(text.find("refbus_broker_last_checkpoint_"), std::string::npos) << text;
  EXPECT_EQ(text.find("refbus_broker_commit_duration_seconds"), std::string::npos) << text;
}

TEST(MetricsTest, NoLinksNoLinkFamilies) {
  BrokerStatus st = FreshStatus();
  st.links.clear();
  const std::string text = FormatMetrics(st, kNow);
  EXPECT_EQ(text.find("refbus_broker_link_"), std::string::npos) << text;
}

TEST(MetricsTest, BeforeTheFirstRefreshOnlyTheChecks) {
  BrokerStatus st;  // what Server::Snapshot returns before the loop's first refresh
  EXPECT_EQ(FormatMetrics(st, kNow),
            "# HELP refbus_broker_healthy 1 while the event loop refreshes the status (GET "
            "/healthz answers 200), else 0.\n"
            "# TYPE refbus_broker_healthy gauge\n"
            "refbus_broker_healthy 0\n"
            "# HELP refbus_broker_ready 1 when healthy with a current directory and room in the "
            "store (GET /readyz answers 200), else 0.\n"
            "# TYPE refbus_broker_ready gauge\n"
            "refbus_broker_ready 0\n");
}

TEST(MetricsTest, HealthFollowsTheStatusAge) {
  BrokerStatus st = FreshStatus();
  EXPECT_TRUE(CheckHealth(st, kNow).ok);
  EXPECT_EQ(CheckHealth(st, kNow).reason, "ok");
  st.time_ms = kNow - kHealthyStatusAgeMs;
  EXPECT_TRUE(CheckHealth(st, kNow).ok);
  st.time_ms = kNow - 6000;
  CheckResult stale = CheckHealth(st, kNow);
  EXPECT_FALSE(stale.ok);
  EXPECT_TRUE(HasSubstr(stale.reason, "6.000 s ago"));
  st.time_ms = kNow + 1000;  // the clock stepped back: not stale
  EXPECT_TRUE(CheckHealth(st, kNow).ok);
  st.time_ms = 0;
  EXPECT_TRUE(HasSubstr(CheckHealth(st, kNow).reason, "starting"));
  st = FreshStatus();
  st.running = false;
  EXPECT_TRUE(HasSubstr(CheckHealth(st, kNow).reason, "stopping"));
}

TEST(MetricsTest, Readiness) {
  BrokerStatus st = FreshStatus();
  EXPECT_TRUE(CheckReady(st, kNow).ok);

  st.time_ms = kNow - 10'000;
  EXPECT_TRUE(HasSubstr(CheckReady(st, kNow).reason, "not healthy: "));

  st = FreshStatus();
  st.directory_serial = 0;
  EXPECT_EQ(CheckReady(st, kNow).reason, "no directory loaded");

  st = FreshStatus();
  st.directory_expires_ms = kNow - 1;
  CheckResult expired = CheckReady(st, kNow);
  EXPECT_FALSE(expired.ok);
  EXPECT_TRUE(HasSubstr(expired.reason, "directory serial 7 expired at"));
  EXPECT_TRUE(HasSubstr(expired.reason, "grace period"));
  EXPECT_TRUE(HasSubstr(FormatMetrics(st, kNow), "refbus_broker_ready 0\n"));
  EXPECT_TRUE(HasSubstr(FormatMetrics(st, kNow), "refbus_broker_healthy 1\n"));

  // A store near its map's high-water mark is still ready (LMDB reuses freed pages);
  // commits that refuse as storage full make it not ready, until one goes through again.
  st = FreshStatus();
  st.storage_used_bytes = 99u << 20;
  EXPECT_TRUE(CheckReady(st, kNow).ok);
  st.storage_full_since_ms = kNow - 5000;
  CheckResult full = CheckReady(st, kNow);
  EXPECT_FALSE(full.ok);
  EXPECT_TRUE(HasSubstr(full.reason, "storage full since"));
  EXPECT_TRUE(HasSubstr(full.reason, "map_size_mb"));
  st = FreshStatus();
  st.last_commit_error = "I/O error";
  CheckResult failed = CheckReady(st, kNow);
  EXPECT_FALSE(failed.ok);
  EXPECT_TRUE(HasSubstr(failed.reason, "the last commit failed: I/O error"));
}

TEST(MetricsTest, LoopbackBindOnly) {
  auto a = ParseLoopbackBind("127.0.0.1:9470");
  ASSERT_TRUE(IsOk(a));
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9470);
  EXPECT_TRUE(IsOk(ParseLoopbackBind("127.3.2.1:0")));
  auto v6 = ParseLoopbackBind("[::1]:80");
  ASSERT_TRUE(IsOk(v6));
  EXPECT_EQ(v6->host, "::1");
  for (const char* bad : {"0.0.0.0:9470", "10.0.0.1:9470", "[::]:9470", "[2001:db8::1]:9470",
                          "localhost:9470", "127.0.0.1", "127.0.0.1:", ":9470", "127.0.0.1:70000",
                          "127.0.0.1:-1", "127.0.0.1:94x", "[::1]9470", ""}) {
    EXPECT_FALSE(ParseLoopbackBind(bad).ok()) << bad;
  }
  EXPECT_TRUE(
      HasSubstr(ParseLoopbackBind("0.0.0.0:9470").status().message(), "not a loopback address"));
}

// A minimal broker config in a temp folder, with the files LoadConfig checks for.
class MetricsConfigTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& extra) {
    for (const char* f : {"identity.key", "directory", "authority.pub"}) {
      std::ofstream(dir_.Join(f)) << "x";
    }
    std::string path = dir_.Join("broker.toml");
    std::ofstream out(path);
    out << "[broker]\nid = \"seoul-broker\"\nbind = \"tcp://127.0.0.1:*\"\ndata_dir = \"data\"\n"
           "key_file = \"identity.key\"\ndirectory = \"directory\"\n"
           "anchor = \"authority.pub\"\ntrust_state = \"trust-state\"\n"
        << extra;
    return path;
  }
  test::TempDir dir_;
};

TEST_F(MetricsConfigTest, AbsentIsOff) {
  auto c = LoadConfig(Write(""));
  ASSERT_TRUE(IsOk(c));
  EXPECT_TRUE(c->metrics_bind.empty());
}

TEST_F(MetricsConfigTest, LoopbackAccepted) {
  auto c = LoadConfig(Write("[metrics]\nbind = \"127.0.0.1:9470\"\nurl_file = \"metrics.url\"\n"));
  ASSERT_TRUE(IsOk(c));
  EXPECT_EQ(c->metrics_bind, "127.0.0.1:9470");
  EXPECT_EQ(c->metrics_url_file, dir_.Join("metrics.url"));
}

TEST_F(MetricsConfigTest, RefusedNamingTheSetting) {
  auto c = LoadConfig(Write("[metrics]\nbind = \"0.0.0.0:9470\"\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(HasSubstr(c.status().message(),
                        "setting metrics.bind is \"0.0.0.0:9470\", not a "
                        "loopback address"));
  c = LoadConfig(Write("[metrics]\nbind = 9470\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(HasSubstr(c.status().message(), "setting metrics.bind must be a string"));
  c = LoadConfig(Write("[metrics]\nurl_file = \"m.url\"\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(HasSubstr(c.status().message(), "setting metrics.bind is missing"));
  c = LoadConfig(Write("[metrics]\nbind = \"127.0.0.1:0\"\nport = 1\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(HasSubstr(c.status().message(), "setting metrics.port is not a known setting"));
}

// [limits] io_threads: a default from the cores, 1 to 16 when set, refused otherwise.
TEST_F(MetricsConfigTest, IoThreadsDefaultFromTheCoresAndRefusedOutOfRange) {
  EXPECT_EQ(DefaultIoThreads(0), 1u);
  EXPECT_EQ(DefaultIoThreads(1), 1u);
  EXPECT_EQ(DefaultIoThreads(2), 2u);
  EXPECT_EQ(DefaultIoThreads(4), 2u);
  EXPECT_EQ(DefaultIoThreads(6), 3u);
  EXPECT_EQ(DefaultIoThreads(64), 4u);
  auto c = LoadConfig(Write(""));
  ASSERT_TRUE(IsOk(c));
  EXPECT_EQ(c->io_threads, DefaultIoThreads(std::thread::hardware_concurrency()));
  c = LoadConfig(Write("[limits]\nio_threads = 4\n"));
  ASSERT_TRUE(IsOk(c));
  EXPECT_EQ(c->io_threads, 4u);
  for (const char* bad : {"0", "17", "\"two\""}) {
    c = LoadConfig(Write(std::string("[limits]\nio_threads = ") + bad + "\n"));
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_TRUE(HasSubstr(c.status().message(), "limits.io_threads")) << c.status().message();
  }
}

// The listener, over HTTP, with a status the test controls.
TEST(MetricsServerTest, ServesMetricsAndChecks) {
  test::TempDir dir;
  std::mutex mu;
  BrokerStatus st = FreshStatus();
  st.time_ms = SystemClock::Get().NowMillis();
  st.directory_expires_ms = st.time_ms + kMillisPerDay;
  auto snapshot = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return st;
  };
  const std::string url_file = dir.Join("metrics.url");
  auto server = MetricsServer::Start({"127.0.0.1:0", url_file}, snapshot);
  ASSERT_TRUE(IsOk(server));
  const std::string url = (*server)->url();
  EXPECT_TRUE(url.rfind("http://127.0.0.1:", 0) == 0) << url;
  auto written = ReadFile(url_file, 1024);
  ASSERT_TRUE(IsOk(written));
  EXPECT_EQ(AsChars(*written), url + "\n");

  httplib::Client client(url);
  client.set_read_timeout(5, 0);
  auto r = client.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_TRUE(HasSubstr(r->body, "refbus_broker_accepted_total 5\n"));
  EXPECT_TRUE(HasSubstr(r->body, "refbus_broker_healthy 1\n"));
  r = client.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ok\n");
  r = client.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ok\n");

  {
    std::lock_guard<std::mutex> lock(mu);
    st.time_ms -= 20'000;  // the loop stopped refreshing
  }
  r = client.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_TRUE(HasSubstr(r->body, "stuck"));
  r = client.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_TRUE(HasSubstr(r->body, "not healthy"));
  r = client.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(HasSubstr(r->body, "refbus_broker_healthy 0\n"));

  r = client.Get("/status.json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  r = client.Post("/metrics", "x", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_NE(r->status, 200);

  // The port is taken: a second listener on it refuses to start, naming the address.
  const std::string taken = url.substr(std::string("http://").size());
  auto second = MetricsServer::Start({taken, ""}, snapshot);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(HasSubstr(second.status().message(), "cannot listen for metrics on " + taken));

  (*server)->Stop();
  (*server)->Stop();  // idempotent
  EXPECT_FALSE(PathExists(url_file));
  EXPECT_FALSE(client.Get("/healthz"));
}

TEST(MetricsServerTest, RefusesANonLoopbackBind) {
  auto server = MetricsServer::Start({"0.0.0.0:0", ""}, [] { return BrokerStatus{}; });
  ASSERT_FALSE(server.ok());
  EXPECT_TRUE(HasSubstr(server.status().message(), "not a loopback address"));
}

}  // namespace
}  // namespace refbus::broker
