// Metrics and health checks of a real refbus-broker ([metrics], broker/metrics.h): /metrics,
// /healthz and /readyz over HTTP on loopback, the exposition checked by `promtool check
// metrics` (Debian package prometheus; the test fails if promtool is missing), a link to a
// peer broker that is down with a backlog, a clean SIGTERM stop, JSON logs that parse, and
// the [metrics] bind refused when it is not loopback or the port is taken.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "broker/metrics.h"
#include "schema/codec.h"
#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

using schema::Frame;

class BrokerMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("refbus-metrics-test");
    ASSERT_TRUE(
        fed_.Create(root_, {"seoul-broker", "busan-broker"},
                    {{"seoul-wee-01", schema::AgencyType::kWeeCenter, "seoul-broker"},
                     {"seoul-counsel", schema::AgencyType::kCounselingCenter, "seoul-broker"},
                     {"busan-counsel", schema::AgencyType::kCounselingCenter, "busan-broker"}}));
    broker_ = std::make_unique<Broker>(fed_, "seoul-broker", DataDir());
  }
  void TearDown() override {
    broker_.reset();
    if (!HasFailure()) RemoveTree(root_);
  }

  std::string DataDir() const { return root_ + "/seoul-data"; }
  std::string UrlFile() const { return root_ + "/metrics.url"; }
  // Busan never starts: its endpoint file never appears, so the link stays down.
  std::string Extra(const std::string& bind) const {
    return "[federation]\nlink_timeout_ms = 1000\nendpoint_files = { busan-broker = \"" + root_ +
           "/busan.endpoint\" }\n[metrics]\nbind = \"" + bind + "\"\nurl_file = \"" + UrlFile() +
           "\"\n";
  }
  UnixMillis Now() const { return SystemClock::Get().NowMillis(); }

  // The metrics URL once the broker wrote it (it starts listening after the broker binds).
  std::string WaitForUrl() {
    for (int i = 0; i < 500; ++i) {
      std::string url = Slurp(UrlFile());
      if (!url.empty() && url.back() == '\n') return url.substr(0, url.size() - 1);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "no metrics URL in " << UrlFile() << "; broker log:\n" << broker_->Log();
    return "";
  }

  // A config written like the harness's, for runs the harness does not do (other flags,
  // expected start-up failures).
  std::string WriteConfig(const std::string& name, const std::string& extra) {
    const std::string dir = fed_.Dir("seoul-broker");
    const std::string path = root_ + "/" + name + ".toml";
    std::ofstream out(path);
    out << "[broker]\nid = \"seoul-broker\"\nbind = \"tcp://127.0.0.1:*\"\n"
        << "data_dir = \"" << root_ << "/" << name << "-data\"\n"
        << "key_file = \"" << dir << "/identity.key\"\n"
        << "directory = \"" << dir << "/directory\"\n"
        << "anchor = \"" << dir << "/authority.pub\"\n"
        << "trust_state = \"" << root_ << "/" << name << ".trust-state\"\n"
        << "[policy]\nallow_unscoped_opaque = true\n"
        << extra;
    return path;
  }

  std::string root_;
  Federation fed_;
  std::unique_ptr<Broker> broker_;
};

TEST_F(BrokerMetricsTest, MetricsHealthAndReadinessOverHttp) {
  broker_->set_extra(Extra("127.0.0.1:0"));
  ASSERT_TRUE(broker_->Start());
  const std::string url = WaitForUrl();
  ASSERT_FALSE(url.empty());
  ASSERT_TRUE(url.rfind("http://127.0.0.1:", 0) == 0) << url;
  httplib::Client http(url);
  http.set_connection_timeout(2, 0);
  http.set_read_timeout(5, 0);

  // Healthy within a second or two of the start (the loop refreshes the status every second).
  int health = 0;
  std::string health_body;
  for (int i = 0; i < 100 && health != 200; ++i) {
    if (auto r = http.Get("/healthz")) {
      health = r->status;
      health_body = r->body;
    }
    if (health != 200) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(health, 200) << health_body << "\n" << broker_->Log();
  EXPECT_EQ(health_body, "ok\n");
  auto ready = http.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200) << ready->body;
  EXPECT_EQ(ready->body, "ok\n");

  // Two envelopes for Seoul, one for Busan (queued on the link, which is down).
  const keys::Identity wee = fed_.LoadIdentity("seoul-wee-01");
  const Bytes server_key = fed_.directory().Find("seoul-broker")->ActiveKeys()->transport_key;
  RawClient client(wee, server_key, broker_->endpoint());
  ASSERT_TRUE(client.Hello("seoul-wee-01"));
  for (const char* to : {"seoul-counsel", "seoul-counsel", "busan-counsel"}) {
    auto r = client.Submit(SealTo(wee, fed_.directory(), {to}, Now()));
    ASSERT_TRUE(r.has_value());
    ASSERT_EQ(r->type, Frame::Type::kAck) << r->nack.detail;
  }

  std::string body;
  for (int i = 0; i < 100; ++i) {
    auto r = http.Get("/metrics");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    body = r->body;
    if (Sample(body, "refbus_broker_accepted_total") == 3.0 &&
        Sample(body, "refbus_broker_link_backlog{peer=\"busan-broker\"}") == 1.0) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(Sample(body, "refbus_broker_accepted_total"), 3.0) << body;
  EXPECT_EQ(Sample(body, "refbus_broker_routed_out_total"), 1.0) << body;
  EXPECT_EQ(Sample(body, "refbus_broker_refused_total"), 0.0) << body;
  EXPECT_EQ(Sample(body, "refbus_broker_connections_refused_total"), 0.0) << body;
  EXPECT_EQ(Sample(body, "refbus_broker_directory_serial"),
            static_cast<double>(fed_.directory().serial))
      << body;
  EXPECT_EQ(Sample(body, "refbus_broker_directory_expiry_timestamp_seconds"),
            static_cast<double>(fed_.directory().expires_at_ms) / 1000.0)
      << body;
  EXPECT_GE(Sample(body, "refbus_broker_audit_log_entries").value_or(0), 3.0) << body;
  EXPECT_GT(Sample(body, "refbus_broker_storage_used_bytes").value_or(0), 0.0) << body;
  EXPECT_GT(Sample(body, "refbus_broker_storage_map_bytes").value_or(0), 0.0) << body;
  EXPECT_LE(Sample(body, "refbus_broker_status_age_seconds").value_or(99), 5.0) << body;
  EXPECT_EQ(Sample(body, "refbus_broker_healthy"), 1.0) << body;
  EXPECT_EQ(Sample(body, "refbus_broker_ready"), 1.0) << body;
  EXPECT_EQ(Sample(body, "refbus_broker_info{broker=\"seoul-broker\"}"), 1.0) << body;
  EXPECT_EQ(Sample(body, "refbus_broker_link_up{peer=\"busan-broker\"}"), 0.0) << body;
  EXPECT_EQ(Sample(body, "refbus_broker_link_backlog{peer=\"busan-broker\"}"), 1.0) << body;
  EXPECT_EQ(Sample(body, "refbus_broker_link_control_backlog{peer=\"busan-broker\"}"), 0.0);
  EXPECT_TRUE(Sample(body, "refbus_broker_link_oldest_queued_age_seconds{peer=\"busan-broker\"}"))
      << body;
  EXPECT_EQ(Sample(body, "refbus_broker_link_forwarded_total{peer=\"busan-broker\"}"), 0.0);
  EXPECT_TRUE(Sample(body, "refbus_broker_link_sessions_total{peer=\"busan-broker\"}")) << body;

  // Ids and numbers only: every line is a comment or "name{id labels} number" (a per-link
  // histogram's bucket bound le comes after its peer label).
  const std::regex line_re(
      R"re(# (HELP|TYPE) refbus_broker_[a-z0-9_]+ .*|refbus_broker_[a-z0-9_]+(\{[a-z]+="([a-z0-9.-]+|\+Inf)"(,[a-z]+="([a-z0-9.-]+|\+Inf)")*\})? [0-9.e+-]+)re");
  for (const auto& line : Lines(body)) {
    EXPECT_TRUE(std::regex_match(line, line_re)) << line;
  }
  EXPECT_EQ(PromtoolProblems(body, root_), "");

  // Only the three paths, only GET.
  auto missing = http.Get("/status");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto post = http.Post("/healthz", "x", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_NE(post->status, 200);

  // SIGTERM: a prompt clean stop, the listener closed and its URL file removed.
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(broker_->Stop(), 0) << broker_->Log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(Slurp(UrlFile()), "");
  httplib::Client after(url);
  after.set_connection_timeout(1, 0);
  EXPECT_FALSE(after.Get("/healthz"));
}

// Envelopes by kind and outcome, nacks by reason, mailbox depth and age, the commit latency
// histogram and the checkpoint age, from a real broker after accepted, duplicate and refused
// submissions.
TEST_F(BrokerMetricsTest, OutcomesReasonsMailboxesCommitsAndCheckpoints) {
  broker_->set_extra(Extra("127.0.0.1:0") + "[audit]\ncheckpoint_interval_ms = 200\n");
  ASSERT_TRUE(broker_->Start());
  const std::string url = WaitForUrl();
  ASSERT_FALSE(url.empty());
  httplib::Client http(url);
  http.set_read_timeout(5, 0);

  const keys::Identity wee = fed_.LoadIdentity("seoul-wee-01");
  const keys::Identity counsel = fed_.LoadIdentity("seoul-counsel");
  const Bytes server_key = fed_.directory().Find("seoul-broker")->ActiveKeys()->transport_key;
  RawClient client(wee, server_key, broker_->endpoint());
  ASSERT_TRUE(client.Hello("seoul-wee-01"));
  const Bytes first = SealTo(wee, fed_.directory(), {"seoul-counsel"}, Now());
  for (const Bytes* env : {&first, &first}) {  // the second is a duplicate
    auto r = client.Submit(*env);
    ASSERT_TRUE(r.has_value());
    ASSERT_EQ(r->type, Frame::Type::kAck) << r->nack.detail;
  }
  auto r = client.Submit(SealTo(wee, fed_.directory(), {"seoul-counsel"}, Now()));
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->type, Frame::Type::kAck) << r->nack.detail;
  // Refused: another agency's envelope on this connection, and bytes that do not decode.
  r = client.Submit(SealTo(counsel, fed_.directory(), {"seoul-wee-01"}, Now()));
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->type, Frame::Type::kNack);
  EXPECT_EQ(r->nack.reason, schema::NackReason::kSenderMismatch);
  r = client.Submit(Bytes(40, 0x07));
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->type, Frame::Type::kNack);
  EXPECT_EQ(r->nack.reason, schema::NackReason::kMalformed);

  std::string body;
  for (int i = 0; i < 100; ++i) {
    auto m = http.Get("/metrics");
    ASSERT_TRUE(m);
    body = m->body;
    if (Sample(body, "refbus_broker_envelopes_total{kind=\"opaque\",outcome=\"accepted\"}") ==
            2.0 &&
        Sample(body, "refbus_broker_nacks_total{reason=\"malformed\"}") == 1.0 &&
        Sample(body, "refbus_broker_mailbox_depth{mailbox=\"seoul-counsel\"}") == 2.0 &&
        Sample(body, "refbus_broker_last_checkpoint_age_seconds").has_value()) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // prometheus-cpp orders labels by name: kind before outcome.
  EXPECT_EQ(Sample(body, "refbus_broker_envelopes_total{kind=\"opaque\",outcome=\"accepted\"}"),
            2.0)
      << body;
  EXPECT_EQ(Sample(body, "refbus_broker_envelopes_total{kind=\"opaque\",outcome=\"duplicate\"}"),
            1.0)
      << body;
  EXPECT_EQ(Sample(body, "refbus_broker_envelopes_total{kind=\"opaque\",outcome=\"refused\"}"), 1.0)
      << body;
  EXPECT_EQ(Sample(body, "refbus_broker_envelopes_total{kind=\"unspecified\",outcome=\"refused\"}"),
            1.0)
      << body;
  EXPECT_EQ(Sample(body, "refbus_broker_envelopes_total{kind=\"referral\",outcome=\"accepted\"}"),
            0.0)
      << body;
  EXPECT_EQ(Sample(body, "refbus_broker_nacks_total{reason=\"sender-mismatch\"}"), 1.0) << body;
  EXPECT_EQ(Sample(body, "refbus_broker_nacks_total{reason=\"malformed\"}"), 1.0) << body;
  EXPECT_EQ(Sample(body, "refbus_broker_nacks_total{reason=\"quota-exceeded\"}"), 0.0) << body;
  // Nobody reads seoul-counsel's mailbox; seoul-wee-01's is empty; busan's link mailbox is
  // not an agency mailbox.
  EXPECT_EQ(Sample(body, "refbus_broker_mailbox_depth{mailbox=\"seoul-counsel\"}"), 2.0) << body;
  EXPECT_EQ(Sample(body, "refbus_broker_mailbox_depth{mailbox=\"seoul-wee-01\"}"), 0.0) << body;
  EXPECT_FALSE(Sample(body, "refbus_broker_mailbox_depth{mailbox=\"busan-broker\"}")) << body;
  EXPECT_GE(
      Sample(body, "refbus_broker_mailbox_oldest_queued_age_seconds{mailbox=\"seoul-counsel\"}")
          .value_or(-1),
      0.0)
      << body;
  EXPECT_LT(
      Sample(body, "refbus_broker_mailbox_oldest_queued_age_seconds{mailbox=\"seoul-counsel\"}")
          .value_or(999),
      60.0)
      << body;
  EXPECT_EQ(
      Sample(body, "refbus_broker_mailbox_oldest_queued_age_seconds{mailbox=\"seoul-wee-01\"}"),
      0.0)
      << body;
  EXPECT_GT(Sample(body, "refbus_broker_commit_duration_seconds_count").value_or(0), 0.0) << body;
  EXPECT_EQ(Sample(body, "refbus_broker_commit_duration_seconds_count"),
            Sample(body, "refbus_broker_commit_duration_seconds_bucket{le=\"+Inf\"}"))
      << body;
  EXPECT_GT(Sample(body, "refbus_broker_commit_duration_seconds_sum").value_or(0), 0.0) << body;
  auto age = Sample(body, "refbus_broker_last_checkpoint_age_seconds");
  ASSERT_TRUE(age.has_value()) << body << broker_->Log();
  EXPECT_LT(*age, 30.0) << body;
  EXPECT_GE(Sample(body, "refbus_broker_last_checkpoint_entries").value_or(0), 1.0) << body;
  EXPECT_EQ(PromtoolProblems(body, root_), "");

  // The status file lists the backlog too.
  EXPECT_EQ(broker_->Stop(), 0) << broker_->Log();
  const nlohmann::json status = nlohmann::json::parse(broker_->StatusJson(), nullptr, false);
  ASSERT_TRUE(status.is_object());
  ASSERT_TRUE(status["mailboxes"].is_array());
  ASSERT_EQ(status["mailboxes"].size(), 1u) << status.dump();
  EXPECT_EQ(status["mailboxes"][0].value("mailbox", ""), "seoul-counsel");
  EXPECT_EQ(status["mailboxes"][0].value("depth", 0), 2);
  EXPECT_GT(status.value("last_checkpoint_ms", 0ULL), 0ULL);
}

// The exposition with hostile label values (escaping), checked by promtool too.
TEST_F(BrokerMetricsTest, PromtoolAcceptsEscapedLabels) {
  broker::BrokerStatus st;
  st.broker_id = "seoul-broker";
  st.time_ms = Now();
  st.started_ms = st.time_ms - 1000;
  st.directory_serial = 3;
  st.counters = {{"accepted", 1}, {"refused", 0}};
  broker::LinkStatus l;
  l.peer = "we\\ird\"peer\nid";
  l.state = "down";
  l.backlog = 2;
  l.oldest_queued_ms = st.time_ms - 5000;
  st.links = {l};
  st.mailboxes = {{"we\\ird\"box\nid", 2, st.time_ms - 3000}};
  st.envelopes = {{"referral", "accepted", 1}};
  st.nacks = {{"malformed", 1}};
  st.commit_buckets.assign(broker::kCommitSecondsBounds.size() + 1, 1);
  st.commit_seconds_sum = 1.5;
  st.last_checkpoint_ms = st.time_ms - 100;
  EXPECT_EQ(PromtoolProblems(broker::FormatMetrics(st, Now()), root_), "");
  EXPECT_EQ(PromtoolProblems(broker::FormatMetrics(broker::BrokerStatus{}, Now()), root_), "");
}

// --log-format json: every line the broker writes parses, through a start, a listener and
// a stop.
TEST_F(BrokerMetricsTest, JsonLogLinesParse) {
  const std::string cfg = WriteConfig("json", "[metrics]\nbind = \"127.0.0.1:0\"\n");
  const std::string log = root_ + "/json.log";
  Process p;
  ASSERT_TRUE(p.Start(
      {BinDir() + "/refbus-broker", "-c", cfg, "--log-format", "json", "--log-level", "debug"},
      log));
  for (int i = 0; i < 300 && Slurp(log).find("metrics: listening") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // a status refresh or two
  p.Signal(SIGTERM);
  ASSERT_EQ(p.Wait(10000), 0) << Slurp(log);
  const std::string text = Slurp(log);
  std::vector<std::string> lines = Lines(text);
  ASSERT_GE(lines.size(), 3u) << text;
  bool listening = false;
  for (const auto& line : lines) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line;
    EXPECT_EQ(j.value("program", ""), "refbus-broker") << line;
    listening = listening || j.value("msg", "").find("metrics: listening on") == 0;
  }
  EXPECT_TRUE(listening) << text;
}

TEST_F(BrokerMetricsTest, NonLoopbackBindIsRefusedAtConfigLoad) {
  const std::string cfg = WriteConfig("open", "[metrics]\nbind = \"0.0.0.0:9470\"\n");
  const std::string log = root_ + "/open.log";
  Process p;
  ASSERT_TRUE(p.Start({BinDir() + "/refbus-broker", "-c", cfg, "--check-config"}, log));
  EXPECT_EQ(p.Wait(10000), 1);
  const std::string text = Slurp(log);
  EXPECT_NE(text.find("setting metrics.bind is \"0.0.0.0:9470\", not a loopback address"),
            std::string::npos)
      << text;
}

TEST_F(BrokerMetricsTest, TakenPortStopsTheStart) {
  int sock = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(sock, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(sock, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(sock, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string bind = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  const std::string cfg = WriteConfig("taken", "[metrics]\nbind = \"" + bind + "\"\n");
  const std::string log = root_ + "/taken.log";
  Process p;
  ASSERT_TRUE(p.Start({BinDir() + "/refbus-broker", "-c", cfg}, log));
  EXPECT_EQ(p.Wait(10000), 1);
  ::close(sock);
  const std::string text = Slurp(log);
  EXPECT_NE(text.find("cannot listen for metrics on " + bind), std::string::npos) << text;
}

}  // namespace
}  // namespace refbus::testing
