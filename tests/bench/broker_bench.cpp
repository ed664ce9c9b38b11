// Broker benchmark: pre-sealed 1 KiB envelopes through refbus-broker (CURVE, consent
// check, durable group commit with audit entries, delivery) beside a plain ZeroMQ ROUTER
// forwarder with CURVE and no storage, in the same run, with the same client code,
// message count and in-flight window.
//
//   broker_bench [--messages N] [--window W] [--rate R] [--paced-messages P]
//                [--verify-threads T] [--io-threads I] [--same-time-ids 0|1]
//
// Prints for each target: throughput (submit -> durable ack), ack latency p50/p99, and for
// a paced run at R messages/s the ack latency p50/p99; then the ratio of the rates.
// The forwarder runs in its own process (this binary with --forwarder), as the broker does.
// --window 1 is one message at a time (submit, wait for the durable ack, repeat). Besides
// the text, prints one machine-readable line for deploy/bench.sh: RESULT broker_bench ...
//
// Message ids begin with their creation time in milliseconds (keys/envelope.cpp), so a
// broker's id-keyed tables grow at their end. The envelopes are sealed before the run, with
// creation times 0.1 ms apart ending now, as a sender making 10,000 a second would make
// them. --same-time-ids 1 seals them all at one millisecond instead, so their ids follow in
// random order (the bench did that before 2026-12-08: 2.7 times the pages dirtied per
// message, issue 21); it measures what a sender that picks random ids costs.
#include <fcntl.h>
#include <sodium.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "core/file.h"
#include "core/zmq.h"
#include "keys/envelope.h"
#include "keys/keyfile.h"
#include "schema/codec.h"
#include "tests/bench/bench_client.h"
#include "tests/bench/bench_util.h"
#include "tests/integration/harness.h"

using namespace refbus;  // NOLINT(google-build-using-namespace)
using SteadyClock = std::chrono::steady_clock;
using schema::Frame;

namespace {

using refbus::bench::Percentile;
using refbus::bench::ProbeFsyncMs;
using refbus::bench::ProcessCpuSeconds;

struct Options {
  size_t messages = 20000;
  size_t window = 64;
  size_t rate = 1000;
  size_t paced_messages = 5000;
  long verify_threads = -1;  // -1: the broker's default (cores - 1)
  long io_threads = -1;      // -1: the broker's default (DefaultIoThreads)
  bool same_time_ids = false;
};

// The broker's commit totals from its status file: commits, seconds in them, envelopes.
std::array<double, 3> CommitTotals(const std::string& status_json) {
  auto j = nlohmann::json::parse(status_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return {};
  double n = 0;
  for (const auto& b : j.value("commit_buckets", nlohmann::json::array())) n += b.get<double>();
  return {n, j.value("commit_seconds_sum", 0.0), j.value("commit_envelopes_sum", 0.0)};
}

// ---- The plain forwarder: CURVE ROUTER, acks every submit at once, forwards the
// envelope to the recipient's connection if it has said hello. No checks, no storage.
int RunForwarder(const std::string& key_dir, const std::string& endpoint_file) {
  if (!keys::InitSodium().ok()) return 1;
  auto id = keys::LoadIdentity(key_dir + "/identity.key", nullptr);
  if (!id.ok()) return 1;
  zmq::context_t ctx;
  auto zap = zmqx::ZapHandler::Bind(ctx);
  if (!zap.ok()) return 1;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  if (!zmqx::ConfigureCurveServer(router, id->transport_secret_key().view(), "bench").ok()) {
    return 1;
  }
  router.set(zmq::sockopt::router_mandatory, 1);
  router.set(zmq::sockopt::sndhwm, 100000);
  router.set(zmq::sockopt::rcvhwm, 100000);
  router.bind("tcp://127.0.0.1:*");
  auto ep = zmqx::LastEndpoint(router);
  if (!WriteFileAtomic(endpoint_file, AsBytes(*ep + "\n"), 0644).ok()) return 1;
  std::map<std::string, std::string> routes;  // party id -> routing id
  uint64_t delivery = 1;
  while (true) {
    zmq::pollitem_t items[] = {{router.handle(), 0, ZMQ_POLLIN, 0},
                               {(*zap)->socket().handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 2, std::chrono::milliseconds(100));
    if (items[1].revents & ZMQ_POLLIN) {
      (void)(*zap)->HandleOne([](const zmqx::ZapRequest& r) {
        zmqx::ZapDecision d;
        d.allow = true;
        d.user_id = HexEncode(r.client_key).substr(0, 16);
        return d;
      });
    }
    while (true) {
      auto parts = zmqx::RecvMultipart(router);
      if (!parts.ok() || !parts->has_value() || (*parts)->size() != 2) break;
      auto& p = **parts;
      auto f = schema::DecodeFrame(ByteView(static_cast<const uint8_t*>(p[1].data()), p[1].size()));
      if (!f.ok()) continue;
      std::string rid = p[0].to_string();
      Frame reply;
      reply.request_id = f->request_id;
      if (f->type == Frame::Type::kHello) {
        routes[f->hello.party_id] = rid;
        reply.type = Frame::Type::kWelcome;
        reply.welcome.broker_id = "forwarder";
      } else if (f->type == Frame::Type::kSubmit) {
        // Same client-visible work as the broker's ack path, minus checks and storage:
        // read the header to find the recipient and the message id.
        auto e = schema::DecodeEnvelope(f->submit.envelope);
        if (!e.ok()) continue;
        reply.type = Frame::Type::kAck;
        reply.ack.message_id = e->header.message_id;
        auto r = routes.find(e->header.recipients[0].agency_id);
        if (r != routes.end()) {
          Frame d;
          d.type = Frame::Type::kDeliver;
          d.request_id = delivery++;
          d.deliver.envelope = std::move(f->submit.envelope);
          Bytes b = schema::EncodeFrame(d);
          try {
            router.send(zmq::buffer(r->second),
                        zmq::send_flags::sndmore | zmq::send_flags::dontwait);
            router.send(zmq::buffer(b.data(), b.size()), zmq::send_flags::dontwait);
          } catch (const zmq::error_t&) {
          }
        }
      } else {
        continue;  // acks from the recipient: nothing to do
      }
      Bytes b = schema::EncodeFrame(reply);
      try {
        router.send(zmq::buffer(rid), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
        router.send(zmq::buffer(b.data(), b.size()), zmq::send_flags::dontwait);
      } catch (const zmq::error_t&) {
      }
    }
  }
}

// ---- The client: the same code for both targets.
class Client {
 public:
  Client(zmq::context_t& ctx, const keys::Identity& me, ByteView server_key,
         const std::string& endpoint)
      : sock_(bench::ConnectDealer(ctx, me, server_key, endpoint)) {}
  void Send(const Frame& f) {
    Bytes b = schema::EncodeFrame(f);
    sock_.send(zmq::buffer(b.data(), b.size()), zmq::send_flags::none);
  }
  std::optional<Frame> Recv(int timeout_ms) {
    zmq::pollitem_t items[] = {{sock_.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 1, std::chrono::milliseconds(timeout_ms));
    if (!(items[0].revents & ZMQ_POLLIN)) return std::nullopt;
    zmq::message_t m;
    if (!sock_.recv(m)) return std::nullopt;
    auto f = schema::DecodeFrame(ByteView(static_cast<const uint8_t*>(m.data()), m.size()));
    if (!f.ok()) return std::nullopt;
    return *f;
  }
  bool Hello(const std::string& party) {
    Frame h;
    h.type = Frame::Type::kHello;
    h.request_id = 1;
    h.hello.party_id = party;
    Send(h);
    for (int i = 0; i < 100; ++i) {
      auto f = Recv(100);
      if (f && f->type == Frame::Type::kWelcome) return true;
    }
    return false;
  }

 private:
  zmq::socket_t sock_;
};

struct RunResult {
  double seconds = 0;
  size_t acked = 0;
  size_t refused = 0;
  std::vector<double> latencies_ms;
};

// Sends envelopes[0..n) keeping `window` in flight; if rate > 0, paces submissions.
RunResult Drive(Client& c, const std::vector<Bytes>& envelopes, size_t n, size_t window,
                size_t rate) {
  RunResult r;
  std::vector<SteadyClock::time_point> sent(n + 2);
  size_t next = 0, inflight = 0;
  auto start = SteadyClock::now();
  while (r.acked + r.refused < n) {
    while (next < n && inflight < window) {
      if (rate > 0) {
        auto due = start + std::chrono::microseconds(static_cast<int64_t>(next * 1000000 / rate));
        if (SteadyClock::now() < due) break;
      }
      Frame f;
      f.type = Frame::Type::kSubmit;
      f.request_id = next + 2;
      f.submit.envelope = envelopes[next];
      sent[next] = SteadyClock::now();
      c.Send(f);
      ++next;
      ++inflight;
    }
    auto f = c.Recv(rate > 0 ? 1 : 1000);
    if (!f) {
      if (rate == 0 && inflight > 0) {
        std::fprintf(stderr, "timeout waiting for acks (%zu in flight)\n", inflight);
        break;
      }
      continue;
    }
    if (f->type != Frame::Type::kAck && f->type != Frame::Type::kNack) continue;
    size_t idx = f->request_id - 2;
    if (idx >= n) continue;
    --inflight;
    if (f->type == Frame::Type::kAck) {
      ++r.acked;
      r.latencies_ms.push_back(
          std::chrono::duration<double, std::milli>(SteadyClock::now() - sent[idx]).count());
    } else {
      ++r.refused;
    }
  }
  r.seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  return r;
}

// A recipient that acks every delivery, in a thread.
void Receive(zmq::context_t* ctx, const keys::Identity* me, Bytes server_key, std::string endpoint,
             std::atomic<bool>* stop, std::atomic<size_t>* count) {
  Client c(*ctx, *me, server_key, endpoint);
  if (!c.Hello(me->party_id())) return;
  while (!stop->load()) {
    auto f = c.Recv(100);
    if (!f || f->type != Frame::Type::kDeliver) continue;
    auto e = schema::DecodeEnvelope(f->deliver.envelope);
    if (!e.ok()) continue;
    Frame a;
    a.type = Frame::Type::kAck;
    a.request_id = f->request_id;
    a.ack.message_id = e->header.message_id;
    c.Send(a);
    ++*count;
  }
}

void Report(const char* name, const RunResult& r) {
  std::printf("  %-22s %8zu acked %5zu refused %8.0f msg/s   ack p50 %7.3f ms  p99 %7.3f ms\n",
              name, r.acked, r.refused, static_cast<double>(r.acked) / r.seconds,
              Percentile(r.latencies_ms, 0.50), Percentile(r.latencies_ms, 0.99));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--forwarder") return RunForwarder(argv[2], argv[3]);
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    size_t v = std::stoul(argv[i + 1]);
    if (k == "--messages")
      o.messages = v;
    else if (k == "--window")
      o.window = v;
    else if (k == "--rate")
      o.rate = v;
    else if (k == "--paced-messages")
      o.paced_messages = v;
    else if (k == "--verify-threads")
      o.verify_threads = static_cast<long>(v);
    else if (k == "--io-threads")
      o.io_threads = static_cast<long>(v);
    else if (k == "--same-time-ids")
      o.same_time_ids = v != 0;
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (!keys::InitSodium().ok()) return 1;
  std::string root = testing::MakeTempDir("refbus-bench");
  testing::Federation fed;
  if (!fed.Create(root, {"bench-broker"},
                  {{"bench-sender", schema::AgencyType::kPoliceUnit, "bench-broker"},
                   {"bench-recipient", schema::AgencyType::kDeletionCenter, "bench-broker"}})) {
    return 1;
  }
  keys::Identity sender = fed.LoadIdentity("bench-sender");
  keys::Identity recipient = fed.LoadIdentity("bench-recipient");
  Bytes broker_key = fed.directory().Find("bench-broker")->ActiveKeys()->transport_key;

  size_t total = o.messages + o.paced_messages + 100;
  std::printf("sealing %zu envelopes of 1 KiB in advance...\n", total);
  std::vector<Bytes> envelopes;
  envelopes.reserve(total);
  UnixMillis now = SystemClock::Get().NowMillis();
  for (size_t i = 0; i < total; ++i) {
    // Creation times 0.1 ms apart, the last one now (see the file comment).
    UnixMillis at = o.same_time_ids ? now : now - static_cast<UnixMillis>((total - 1 - i) / 10);
    envelopes.push_back(testing::SealTo(sender, fed.directory(), {"bench-recipient"}, at,
                                        24 * kMillisPerHour, 1024));
  }

  double fsync_before = ProbeFsyncMs(root);
  // Targets: the forwarder first, then the broker, same client code and counts.
  std::string fwd_ep_file = root + "/forwarder.endpoint";
  pid_t fwd = fork();
  if (fwd == 0) {
    execl("/proc/self/exe", argv[0], "--forwarder", fed.Dir("bench-broker").c_str(),
          fwd_ep_file.c_str(), nullptr);
    _exit(127);
  }
  std::string fwd_ep;
  for (int i = 0; i < 500 && fwd_ep.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::ifstream in(fwd_ep_file);
    std::getline(in, fwd_ep);
  }
  testing::Broker broker(fed, "bench-broker", root + "/broker-data");
  std::string limits = "mailbox_quota = 10000000\nmax_batch = 4096\ndelivery_window = 1024";
  if (o.verify_threads >= 0) limits += "\nverify_threads = " + std::to_string(o.verify_threads);
  if (o.io_threads >= 0) limits += "\nio_threads = " + std::to_string(o.io_threads);
  broker.set_limits(limits);
  if (fwd_ep.empty() || !broker.Start()) {
    std::fprintf(stderr, "cannot start the targets\n");
    kill(fwd, SIGKILL);
    return 1;
  }

  struct Target {
    const char* name;
    std::string endpoint;
    RunResult full, paced;
    double cpu_us_per_msg = -1;  // the target process's CPU time during the full-speed run
    std::map<std::string, double> thread_cpu;  // the same by thread name, seconds
    std::string commits;  // the broker's group commits during the full-speed run
  };
  std::vector<Target> targets = {{"plain CURVE forwarder", fwd_ep, {}, {}, -1, {}, {}},
                                 {"refbus-broker", broker.endpoint(), {}, {}, -1, {}, {}}};
  size_t offset = 0;
  for (auto& t : targets) {
    zmq::context_t ctx;
    std::atomic<bool> stop{false};
    std::atomic<size_t> received{0};
    std::thread rx(Receive, &ctx, &recipient, broker_key, t.endpoint, &stop, &received);
    Client c(ctx, sender, broker_key, t.endpoint);
    if (!c.Hello("bench-sender")) {
      std::fprintf(stderr, "%s: no welcome\n", t.name);
      stop = true;
      rx.join();
      continue;
    }
    std::vector<Bytes> mine(envelopes.begin(), envelopes.end());
    pid_t target_pid = &t == &targets[0] ? fwd : broker.process().pid();
    const bool is_broker = &t == &targets[1];
    // The broker writes its status each second: wait for one written after the run.
    const auto commit_totals = [&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(1100));
      return CommitTotals(broker.StatusJson());
    };
    const std::array<double, 3> commits_before =
        is_broker ? commit_totals() : std::array<double, 3>{};
    double cpu_before = ProcessCpuSeconds(target_pid);
    auto threads_before = refbus::bench::ThreadCpuSeconds(target_pid);
    t.full = Drive(c, mine, o.messages, o.window, 0);
    double cpu_after = ProcessCpuSeconds(target_pid);
    t.thread_cpu = refbus::bench::ThreadCpuSeconds(target_pid);
    for (auto& [name, sec] : t.thread_cpu) sec -= threads_before[name];
    if (is_broker) {
      const std::array<double, 3> after = commit_totals();
      const double n = after[0] - commits_before[0];
      const double secs = after[1] - commits_before[1];
      const double envs = after[2] - commits_before[2];
      char line[200];
      std::snprintf(line, sizeof(line),
                    "%.0f group commits, %.1f envelopes and %.2f ms each; the writer in a commit "
                    "%.0f%% of the run",
                    n, n > 0 ? envs / n : 0, n > 0 ? secs * 1e3 / n : 0,
                    t.full.seconds > 0 ? 100 * secs / t.full.seconds : 0);
      t.commits = line;
    }
    if (cpu_before >= 0 && cpu_after >= 0 && t.full.acked > 0) {
      t.cpu_us_per_msg = (cpu_after - cpu_before) * 1e6 / static_cast<double>(t.full.acked);
    }
    std::vector<Bytes> paced(envelopes.begin() + static_cast<long>(o.messages), envelopes.end());
    t.paced = Drive(c, paced, o.paced_messages, o.window, o.rate);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    stop = true;
    rx.join();
    (void)offset;
  }
  kill(fwd, SIGTERM);
  kill(fwd, SIGKILL);
  waitpid(fwd, nullptr, 0);
  int broker_exit = broker.Stop();

  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  std::printf("\nmachine: %u cores (%s); %zu messages of 1 KiB, window %zu; ids %s\n",
              std::thread::hardware_concurrency(), host, o.messages, o.window,
              o.same_time_ids ? "of one millisecond (random order)" : "in creation order");
  double fsync_after = ProbeFsyncMs(root);
  std::printf("disk: 4 KiB write + fdatasync %.3f ms before the run, %.3f ms after\n", fsync_before,
              fsync_after);
  std::printf("full speed (submit -> ack, %zu in flight):\n", o.window);
  for (const auto& t : targets) {
    Report(t.name, t.full);
    std::printf("  %s CPU time per message (user + system, /proc): %.1f us\n", t.name,
                t.cpu_us_per_msg);
    if (!t.commits.empty()) std::printf("    %s\n", t.commits.c_str());
    // By thread: where the time goes, and how busy each thread was over the run's wall time.
    for (const auto& [name, sec] : t.thread_cpu) {
      if (sec <= 0 || t.full.acked == 0 || t.full.seconds <= 0) continue;
      std::printf("    thread %-14s %7.1f us per message, busy %3.0f%% of the run\n", name.c_str(),
                  sec * 1e6 / static_cast<double>(t.full.acked), 100.0 * sec / t.full.seconds);
    }
  }
  std::printf("paced at %zu msg/s (%zu messages):\n", o.rate, o.paced_messages);
  for (const auto& t : targets) Report(t.name, t.paced);
  double fwd_rate = static_cast<double>(targets[0].full.acked) / targets[0].full.seconds;
  double brk_rate = static_cast<double>(targets[1].full.acked) / targets[1].full.seconds;
  std::printf(
      "ratio broker / forwarder: %.2f (goal >= 0.50); broker p99 at %zu msg/s: %.3f ms "
      "(goal < 5 ms)\n",
      brk_rate / fwd_rate, o.rate, Percentile(targets[1].paced.latencies_ms, 0.99));
  std::printf("broker exit code: %d\n", broker_exit);
  std::printf(
      "RESULT broker_bench messages=%zu window=%zu paced_rate=%zu paced_messages=%zu "
      "ids=%s fsync_before_ms=%.3f fsync_after_ms=%.3f",
      o.messages, o.window, o.rate, o.paced_messages, o.same_time_ids ? "same-time" : "time",
      fsync_before, fsync_after);
  for (const auto& [prefix, t] : {std::pair<const char*, const Target*>{"fwd", &targets[0]},
                                  std::pair<const char*, const Target*>{"brk", &targets[1]}}) {
    std::printf(
        " %s_acked=%zu %s_refused=%zu %s_rate=%.0f %s_p50_ms=%.3f %s_p99_ms=%.3f "
        "%s_paced_p50_ms=%.3f %s_paced_p99_ms=%.3f %s_cpu_us=%.1f",
        prefix, t->full.acked, prefix, t->full.refused, prefix,
        t->full.seconds > 0 ? static_cast<double>(t->full.acked) / t->full.seconds : 0, prefix,
        Percentile(t->full.latencies_ms, 0.50), prefix, Percentile(t->full.latencies_ms, 0.99),
        prefix, Percentile(t->paced.latencies_ms, 0.50), prefix,
        Percentile(t->paced.latencies_ms, 0.99), prefix, t->cpu_us_per_msg);
  }
  std::printf(" ratio=%.3f broker_exit=%d\n", brk_rate / fwd_rate, broker_exit);
  testing::RemoveTree(root);
  return 0;
}
