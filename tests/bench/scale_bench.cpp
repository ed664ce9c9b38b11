// How refbus-broker's cost grows, with a real broker process and raw CURVE DEALER clients
// (one per agency, as broker_bench's; pre-sealed 1 KiB OPAQUE envelopes, policy
// allow_unscoped_opaque, so the figures are the broker's and not the senders' sealing).
//
//   scale_bench --mode scale [--agencies 10,100,1000] [--messages N] [--window W]
//               [--broker-limits "io_threads = 1"]
//   scale_bench --mode backlog [--backlog N] [--online-messages M] [--window W]
//
// scale: one directory of max(agencies) agencies; for each count C a fresh broker, C
//   agencies connected (each says Hello and stays connected), then N envelopes, agency i
//   sending to agency i+1 (mod C), round robin over all C, with W in flight in total; every
//   recipient acks its deliveries. Reports the rate (submitted to delivered), the CPU per
//   message of the broker and of this process (the dealers' client side, which reads only
//   the dealers with something to read), the broker's CPU while the C agencies are
//   connected and idle, and its memory (/proc/PID/status): VmRSS idle with C
//   connections, VmHWM after the traffic.
// backlog: one sender and one recipient. First M envelopes with the recipient online (the
//   online rate, submit to delivery); then the recipient disconnects and N envelopes are
//   queued for it (mailbox_quota, sender_quota and map_size_mb raised to hold them) while
//   the broker's memory is sampled twice a second; then the recipient reconnects and the
//   backlog drains (rate, memory). Prints the memory at 0/25/50/75/100% of the fill, so
//   "flat" can be read off; RssAnon is the heap, RssFile mostly LMDB's map.
//
// The envelopes are sealed before the broker starts, on all cores (about 1.4 GB of memory
// for the full backlog of 1,000,000). The full backlog took 3 minutes on the busy 2-core
// VM (75 s sealing, 77 s filling, 22 s draining) and 3.1 GB of disk; --backlog 20000 takes
// seconds. Prints text and RESULT scale ... / RESULT backlog ...
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>
#include <zmq.hpp>

#include "core/zmq.h"
#include "keys/crypto.h"
#include "keys/envelope.h"
#include "keys/secret.h"
#include "schema/codec.h"
#include "tests/bench/bench_client.h"
#include "tests/bench/bench_util.h"
#include "tests/integration/harness.h"

using namespace refbus;  // NOLINT(google-build-using-namespace)
using bench::SteadyClock;
using schema::Frame;

namespace {

constexpr size_t kContentBytes = 1024;
constexpr int kIdleSeconds = 4;  // scale: the broker's idle CPU is measured over this long

// One agency's connection: a CURVE DEALER in a context shared with the others.
class Dealer {
 public:
  Dealer(zmq::context_t& ctx, const keys::Identity& me, ByteView server_key,
         const std::string& endpoint)
      : sock_(bench::ConnectDealer(ctx, me, server_key, endpoint)) {}
  void Send(const Frame& f) {
    Bytes b = schema::EncodeFrame(f);
    try {
      sock_.send(zmq::buffer(b.data(), b.size()), zmq::send_flags::dontwait);
    } catch (const zmq::error_t&) {
    }
  }
  // A frame waiting on the socket, without blocking.
  std::optional<Frame> TryRecv() {
    zmq::message_t m;
    try {
      if (!sock_.recv(m, zmq::recv_flags::dontwait)) return std::nullopt;
    } catch (const zmq::error_t&) {
      return std::nullopt;
    }
    auto f = schema::DecodeFrame(ByteView(static_cast<const uint8_t*>(m.data()), m.size()));
    if (!f.ok()) return std::nullopt;
    return std::move(*f);
  }
  void SendHello(const std::string& party) {
    Frame h;
    h.type = Frame::Type::kHello;
    h.request_id = 1;
    h.hello.party_id = party;
    Send(h);
  }
  // Acks a delivery (as a recipient that stored it).
  void AckDelivery(const Frame& d, Bytes* message_id) {
    auto e = schema::DecodeEnvelope(d.deliver.envelope);
    if (!e.ok()) return;
    Frame a;
    a.type = Frame::Type::kAck;
    a.request_id = d.request_id;
    a.ack.message_id = e->header.message_id;
    Send(a);
    if (message_id != nullptr) *message_id = std::move(e->header.message_id);
  }
  zmq::socket_t& socket() { return sock_; }

 private:
  zmq::socket_t sock_;
};

// Seals count envelopes from sender to recipient (given by index) on every core.
std::vector<Bytes> SealMany(size_t count, const std::vector<const keys::Identity*>& senders,
                            const std::vector<keys::RecipientPrekey>& recipients,
                            const std::function<std::pair<size_t, size_t>(size_t)>& route) {
  std::vector<Bytes> out(count);
  std::atomic<bool> failed{false};
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < cores; ++t) {
    threads.emplace_back([&, t] {
      Bytes content = keys::RandomBytes(kContentBytes);
      keys::SealRequest req;
      req.kind = schema::MessageKind::kOpaque;
      req.case_ref = "bench-case-0001";
      req.lifetime_ms = kMillisPerDay;
      for (size_t i = t; i < count && !failed; i += cores) {
        auto [s, r] = route(i);
        req.recipients = {recipients[r]};
        req.now = SystemClock::Get().NowMillis();
        auto env = keys::SealEnvelope(*senders[s], req, content);
        if (!env.ok()) {
          std::fprintf(stderr, "seal: %s\n", env.status().ToString().c_str());
          failed = true;
          return;
        }
        out[i] = std::move(*env);
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failed) out.clear();
  return out;
}

// Which dealers may have frames waiting, found without visiting every dealer each round
// (with 1,000 agencies, zmq::poll over all of them cost this process more CPU per message
// than the broker spent): one epoll set over every dealer's ZMQ_FD, built once. ZMQ_FD
// only signals that a socket's state may have changed, and a send can consume the signal
// of a frame that arrived meanwhile, so a dealer is also read after each send to it, and
// every dealer after a quiet wait: a missed signal costs time, never a frame.
class DealerWatch {
 public:
  explicit DealerWatch(std::vector<std::unique_ptr<Dealer>>& dealers)
      : count_(dealers.size()), due_mark_(dealers.size(), false) {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    for (size_t i = 0; i < dealers.size() && epoll_fd_ >= 0; ++i) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = i;
      const int fd = dealers[i]->socket().get(zmq::sockopt::fd);
      if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        std::perror("scale_bench: epoll_ctl");
        std::abort();
      }
    }
    if (epoll_fd_ < 0) {
      std::perror("scale_bench: epoll_create1");
      std::abort();
    }
  }
  ~DealerWatch() { ::close(epoll_fd_); }
  DealerWatch(const DealerWatch&) = delete;
  DealerWatch& operator=(const DealerWatch&) = delete;

  // Dealer i was sent to: read it in the next round.
  void Touch(size_t i) {
    if (!due_mark_[i]) {
      due_mark_[i] = true;
      due_.push_back(i);
    }
  }
  // The dealers to read: those touched and those signalled, waiting up to timeout if
  // there are none; every dealer if the wait was quiet.
  std::vector<size_t> Next(int timeout_ms) {
    std::array<epoll_event, 256> events{};
    const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                               due_.empty() ? timeout_ms : 0);
    for (int k = 0; k < n; ++k) Touch(static_cast<size_t>(events[static_cast<size_t>(k)].data.u64));
    if (due_.empty()) {
      for (size_t i = 0; i < count_; ++i) Touch(i);
    }
    std::vector<size_t> out;
    out.swap(due_);
    for (size_t i : out) due_mark_[i] = false;
    return out;
  }

 private:
  int epoll_fd_ = -1;
  size_t count_;
  std::vector<bool> due_mark_;
  std::vector<size_t> due_;
};

// Drives many dealers from one thread: envelope i is submitted on dealers[sender_of(i)],
// with `window` in flight over all of them; every dealer acks what is delivered to it.
struct TrafficResult {
  size_t acked = 0, refused = 0, delivered = 0;
  double seconds = 0;  // first submit to last delivery (or last answer, if later)
  bool complete = false;
};

// Reads every frame waiting on dealer d: acks deliveries, counts answers. True if any.
bool DrainDealer(Dealer& d, TrafficResult& r, size_t& inflight) {
  bool progress = false;
  while (auto f = d.TryRecv()) {
    progress = true;
    if (f->type == Frame::Type::kDeliver) {
      d.AckDelivery(*f, nullptr);
      ++r.delivered;
    } else if (f->type == Frame::Type::kAck && f->request_id >= 1000) {
      ++r.acked;
      --inflight;
    } else if (f->type == Frame::Type::kNack && f->request_id >= 1000) {
      if (r.refused++ == 0) {
        std::fprintf(stderr, "refused: %s %s\n", std::string(schema::Name(f->nack.reason)).c_str(),
                     f->nack.detail.c_str());
      }
      --inflight;
    }
  }
  return progress;
}

TrafficResult Drive(std::vector<std::unique_ptr<Dealer>>& dealers, const std::vector<Bytes>& envs,
                    const std::function<size_t(size_t)>& sender_of, size_t window,
                    size_t expect_deliveries) {
  TrafficResult r;
  DealerWatch watch(dealers);
  size_t next = 0, inflight = 0;
  auto start = SteadyClock::now();
  auto last_progress = start;
  auto last_event = start;
  while (r.acked + r.refused < envs.size() || r.delivered < expect_deliveries) {
    while (next < envs.size() && inflight < window) {
      Frame f;
      f.type = Frame::Type::kSubmit;
      f.request_id = 1000 + next;
      f.submit.envelope = envs[next];
      const size_t s = sender_of(next);
      dealers[s]->Send(f);
      watch.Touch(s);
      ++next;
      ++inflight;
    }
    bool progress = false;
    for (size_t i : watch.Next(100)) progress = DrainDealer(*dealers[i], r, inflight) || progress;
    auto now = SteadyClock::now();
    if (progress) {
      last_progress = now;
      last_event = now;
    } else if (now - last_progress > std::chrono::seconds(30)) {
      std::fprintf(stderr, "no progress for 30 s: %zu acked, %zu delivered of %zu\n", r.acked,
                   r.delivered, envs.size());
      r.seconds = std::chrono::duration<double>(last_event - start).count();
      return r;
    }
  }
  r.seconds = std::chrono::duration<double>(last_event - start).count();
  r.complete = true;
  return r;
}

bool WaitWelcomes(std::vector<std::unique_ptr<Dealer>>& dealers, int timeout_s) {
  std::vector<bool> welcomed(dealers.size(), false);
  size_t count = 0;
  std::vector<zmq::pollitem_t> items;
  for (auto& d : dealers) items.push_back({d->socket().handle(), 0, ZMQ_POLLIN, 0});
  auto start = SteadyClock::now();
  while (count < dealers.size() && bench::SecondsSince(start) < timeout_s) {
    zmq::poll(items.data(), items.size(), std::chrono::milliseconds(100));
    for (size_t i = 0; i < items.size(); ++i) {
      if (!(items[i].revents & ZMQ_POLLIN)) continue;
      while (auto f = dealers[i]->TryRecv()) {
        if (f->type == Frame::Type::kWelcome && !welcomed[i]) {
          welcomed[i] = true;
          ++count;
        }
      }
    }
  }
  return count == dealers.size();
}

double FileMiB(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<double>(st.st_blocks) * 512 / (1 << 20);
}

// ---------------------------------------------------------------------------- scale

int RunScale(bench::Flags& flags) {
  std::vector<size_t> counts = flags.GetList("agencies", "10,100,1000");
  size_t messages = flags.GetSize("messages", 20000);
  size_t window = flags.GetSize("window", 256);
  // More [limits] lines for the broker, e.g. --broker-limits "io_threads = 1".
  std::string extra_limits = flags.GetString("broker-limits", "");
  if (!flags.Unknown().empty() || counts.empty()) {
    std::fprintf(stderr, "scale_bench: bad or unknown arguments\n");
    return 2;
  }
  size_t most = *std::max_element(counts.begin(), counts.end());
  std::string root = testing::MakeTempDir("refbus-scale-bench");
  std::vector<testing::Federation::AgencySpec> specs;
  for (size_t i = 0; i < most; ++i) {
    specs.push_back(
        {"agency-" + std::to_string(i), schema::AgencyType::kCounselingCenter, "scale-broker"});
  }
  auto t = SteadyClock::now();
  testing::Federation fed;
  if (!fed.Create(root, {"scale-broker"}, specs)) return 1;
  std::printf("directory of %zu agencies made in %.1f s\n", most, bench::SecondsSince(t));
  std::vector<keys::Identity> ids;
  std::vector<keys::RecipientPrekey> prekeys;
  UnixMillis now = SystemClock::Get().NowMillis();
  for (const auto& s : specs) {
    ids.push_back(fed.LoadIdentity(s.id));
    auto p = keys::CurrentPrekey(fed.directory(), s.id, now);
    if (!p.ok()) return 1;
    prekeys.push_back(*p);
  }
  Bytes broker_key = fed.directory().Find("scale-broker")->ActiveKeys()->transport_key;

  std::printf("%8s %10s %10s %12s %12s %12s %12s\n", "agencies", "msg/s", "delivered", "RSS start",
              "RSS idle", "RSS after", "HWM");
  std::string result =
      "RESULT scale messages=" + std::to_string(messages) + " window=" + std::to_string(window);
  int exit_code = 0;
  for (size_t n : counts) {
    std::vector<const keys::Identity*> senders;
    for (size_t i = 0; i < n; ++i) senders.push_back(&ids[i]);
    std::vector<keys::RecipientPrekey> rx(prekeys.begin(), prekeys.begin() + static_cast<long>(n));
    auto envs = SealMany(messages, senders, rx,
                         [n](size_t i) { return std::make_pair(i % n, (i + 1) % n); });
    if (envs.empty()) return 1;
    testing::Broker broker(fed, "scale-broker", root + "/data-" + std::to_string(n));
    broker.set_limits("mailbox_quota = 10000000\n" + extra_limits);
    if (!broker.Start()) return 1;
    bench::ProcMemory at_start = bench::ReadProcMemory(broker.process().pid());
    zmq::context_t ctx;
    ctx.set(zmq::ctxopt::max_sockets, static_cast<int>(n + 64));
    std::vector<std::unique_ptr<Dealer>> dealers;
    for (size_t i = 0; i < n; ++i) {
      dealers.push_back(std::make_unique<Dealer>(ctx, ids[i], broker_key, broker.endpoint()));
      dealers.back()->SendHello(specs[i].id);
    }
    t = SteadyClock::now();
    bool connected = WaitWelcomes(dealers, 120);
    double connect_s = bench::SecondsSince(t);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    bench::ProcMemory idle = bench::ReadProcMemory(broker.process().pid());
    // The broker's CPU with every agency connected and nothing sent: the cost of the
    // connections themselves (ZeroMQ's heartbeats), which does not depend on the traffic.
    const double idle_cpu0 = bench::ProcessCpuSeconds(broker.process().pid());
    std::this_thread::sleep_for(std::chrono::seconds(kIdleSeconds));
    const double idle_pct =
        (bench::ProcessCpuSeconds(broker.process().pid()) - idle_cpu0) * 100 / kIdleSeconds;
    std::printf("%8zu idle with every agency connected: broker %.1f%% of a core\n", n, idle_pct);
    TrafficResult r;
    // CPU of the broker and of this process (the dealers' client side) during the traffic.
    const double broker_cpu0 = bench::ProcessCpuSeconds(broker.process().pid());
    const double client_cpu0 = bench::ProcessCpuSeconds(getpid());
    if (connected) {
      r = Drive(
          dealers, envs, [n](size_t i) { return i % n; }, window, messages);
    } else {
      std::fprintf(stderr, "not every agency was welcomed within 120 s\n");
    }
    const double per_msg = r.delivered > 0 ? 1e6 / static_cast<double>(r.delivered) : 0;
    const double broker_us =
        (bench::ProcessCpuSeconds(broker.process().pid()) - broker_cpu0) * per_msg;
    const double client_us = (bench::ProcessCpuSeconds(getpid()) - client_cpu0) * per_msg;
    std::printf("%8zu CPU per message: broker %.0f us, client (this process) %.0f us\n", n,
                broker_us, client_us);
    bench::ProcMemory after = bench::ReadProcMemory(broker.process().pid());
    dealers.clear();
    int code = broker.Stop();
    double rate = r.seconds > 0 ? static_cast<double>(r.delivered) / r.seconds : 0;
    std::printf(
        "%8zu %10.0f %10zu %9.1f MiB %9.1f MiB %9.1f MiB %9.1f MiB  (hellos %.2f s, "
        "refused %zu, exit %d)\n",
        n, rate, r.delivered, bench::MiB(at_start.vm_rss_kb), bench::MiB(idle.vm_rss_kb),
        bench::MiB(after.vm_rss_kb), bench::MiB(after.vm_hwm_kb), connect_s, r.refused, code);
    std::fflush(stdout);
    char buf[768];
    std::snprintf(
        buf, sizeof(buf),
        " n%zu_rate=%.0f n%zu_connect_s=%.2f n%zu_rss_start_mb=%.1f n%zu_rss_idle_mb=%.1f "
        "n%zu_anon_idle_mb=%.1f n%zu_rss_after_mb=%.1f n%zu_hwm_mb=%.1f n%zu_ok=%d "
        "n%zu_broker_cpu_us=%.0f n%zu_client_cpu_us=%.0f n%zu_idle_cpu_pct=%.1f",
        n, rate, n, connect_s, n, bench::MiB(at_start.vm_rss_kb), n, bench::MiB(idle.vm_rss_kb), n,
        bench::MiB(idle.rss_anon_kb), n, bench::MiB(after.vm_rss_kb), n,
        bench::MiB(after.vm_hwm_kb), n, r.complete && r.refused == 0 && code == 0 ? 1 : 0, n,
        broker_us, n, client_us, n, idle_pct);
    result += buf;
    if (!r.complete || code != 0) exit_code = 1;
  }
  std::printf("%s\n", result.c_str());
  if (exit_code == 0) testing::RemoveTree(root);
  return exit_code;
}

// ---------------------------------------------------------------------------- backlog

struct MemSample {
  double seconds;
  size_t progress;  // envelopes acked (fill) or delivered (drain) so far
  bench::ProcMemory mem;
};

// Samples a process's memory twice a second while running.
class Sampler {
 public:
  Sampler(pid_t pid, const std::atomic<size_t>* progress)
      : pid_(pid), progress_(progress), start_(SteadyClock::now()) {
    thread_ = std::thread([this] {
      while (!stop_) {
        MemSample s{bench::SecondsSince(start_), progress_->load(), bench::ReadProcMemory(pid_)};
        {
          std::lock_guard<std::mutex> l(mu_);
          samples_.push_back(s);
        }
        for (int i = 0; i < 50 && !stop_; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      }
    });
  }
  ~Sampler() { Stop(); }
  std::vector<MemSample> Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    std::lock_guard<std::mutex> l(mu_);
    return samples_;
  }

 private:
  pid_t pid_;
  const std::atomic<size_t>* progress_;
  SteadyClock::time_point start_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<MemSample> samples_;  // GUARDED_BY(mu_)
  std::thread thread_;
};

// The sample nearest to fraction f of the way (by progress).
const MemSample& At(const std::vector<MemSample>& v, size_t total, double f) {
  size_t want = static_cast<size_t>(f * static_cast<double>(total));
  size_t best = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i].progress <= want) best = i;
  }
  return v[best];
}

int RunBacklog(bench::Flags& flags) {
  size_t backlog = flags.GetSize("backlog", 1000000);
  size_t online = flags.GetSize("online-messages", 20000);
  size_t window = flags.GetSize("window", 256);
  if (!flags.Unknown().empty() || backlog == 0) {
    std::fprintf(stderr, "scale_bench: bad or unknown arguments\n");
    return 2;
  }
  std::string root = testing::MakeTempDir("refbus-backlog-bench");
  testing::Federation fed;
  if (!fed.Create(root, {"backlog-broker"},
                  {{"backlog-sender", schema::AgencyType::kPoliceUnit, "backlog-broker"},
                   {"backlog-offline", schema::AgencyType::kDeletionCenter, "backlog-broker"}})) {
    return 1;
  }
  keys::Identity sender = fed.LoadIdentity("backlog-sender");
  keys::Identity recipient = fed.LoadIdentity("backlog-offline");
  auto prekey =
      keys::CurrentPrekey(fed.directory(), "backlog-offline", SystemClock::Get().NowMillis());
  if (!prekey.ok()) return 1;
  Bytes broker_key = fed.directory().Find("backlog-broker")->ActiveKeys()->transport_key;

  auto t = SteadyClock::now();
  std::vector<Bytes> envs = SealMany(online + backlog, {&sender}, {*prekey},
                                     [](size_t) { return std::make_pair(size_t{0}, size_t{0}); });
  if (envs.empty()) return 1;
  std::printf("sealed %zu envelopes in %.1f s\n", envs.size(), bench::SecondsSince(t));
  std::vector<Bytes> online_envs(std::make_move_iterator(envs.begin()),
                                 std::make_move_iterator(envs.begin() + static_cast<long>(online)));
  envs.erase(envs.begin(), envs.begin() + static_cast<long>(online));

  // Room for everything: ~1.4 KiB envelope, its indexes and audit entries; LMDB's pages
  // are at most half full after random inserts, so allow 8 KiB per envelope.
  size_t quota = backlog + online + 1000;
  size_t map_mb = std::max<size_t>(4096, (backlog + online) * 8 / 1024 + 1024);
  testing::Broker broker(fed, "backlog-broker", root + "/data");
  broker.set_limits("mailbox_quota = " + std::to_string(quota) + "\nsender_quota = " +
                    std::to_string(quota) + "\nmap_size_mb = " + std::to_string(map_mb));
  if (!broker.Start()) return 1;
  pid_t pid = broker.process().pid();
  bench::ProcMemory at_start = bench::ReadProcMemory(pid);

  zmq::context_t ctx;
  auto tx = std::make_unique<Dealer>(ctx, sender, broker_key, broker.endpoint());
  auto rx = std::make_unique<Dealer>(ctx, recipient, broker_key, broker.endpoint());
  tx->SendHello("backlog-sender");
  rx->SendHello("backlog-offline");
  std::vector<std::unique_ptr<Dealer>> both;
  both.push_back(std::move(tx));
  both.push_back(std::move(rx));
  if (!WaitWelcomes(both, 30)) return 1;

  // ---- Online: submit -> delivery with the recipient connected.
  TrafficResult on = Drive(
      both, online_envs, [](size_t) { return size_t{0}; }, window, online);
  double online_rate = on.seconds > 0 ? static_cast<double>(on.delivered) / on.seconds : 0;
  std::printf("online: %zu delivered in %.2f s: %.0f msg/s\n", on.delivered, on.seconds,
              online_rate);
  online_envs.clear();
  online_envs.shrink_to_fit();

  // ---- Fill: the recipient is gone.
  both.pop_back();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::atomic<size_t> progress{0};
  bench::ProcMemory before_fill = bench::ReadProcMemory(pid);
  TrafficResult fill;
  std::vector<MemSample> fill_samples;
  {
    Sampler sampler(pid, &progress);
    // Drive in slices so the sampler sees progress.
    const size_t slice = 10000;
    auto fill_start = SteadyClock::now();
    for (size_t off = 0; off < envs.size(); off += slice) {
      std::vector<Bytes> part(
          std::make_move_iterator(envs.begin() + static_cast<long>(off)),
          std::make_move_iterator(envs.begin() +
                                  static_cast<long>(std::min(off + slice, envs.size()))));
      TrafficResult r = Drive(
          both, part, [](size_t) { return size_t{0}; }, window, 0);
      fill.acked += r.acked;
      fill.refused += r.refused;
      progress = fill.acked;
      for (auto& e : part) Bytes().swap(e);
      if (!r.complete || r.refused > 0) break;
    }
    fill.seconds = bench::SecondsSince(fill_start);
    fill.complete = fill.acked == envs.size();
    fill_samples = sampler.Stop();
  }
  envs.clear();
  envs.shrink_to_fit();
  double fill_rate = fill.seconds > 0 ? static_cast<double>(fill.acked) / fill.seconds : 0;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  bench::ProcMemory after_fill = bench::ReadProcMemory(pid);
  double store_mib = FileMiB(root + "/data/data.mdb");
  std::printf(
      "fill: %zu queued for the offline agency in %.1f s: %.0f msg/s (refused %zu); "
      "store %.0f MiB\n",
      fill.acked, fill.seconds, fill_rate, fill.refused, store_mib);
  std::printf("  broker memory during the fill (MiB):   %%   VmRSS  RssAnon  RssFile\n");
  for (double f : {0.0, 0.25, 0.5, 0.75, 1.0}) {
    const MemSample& s = At(fill_samples, fill.acked, f);
    std::printf("                                      %3.0f %7.1f %8.1f %8.1f\n", f * 100,
                bench::MiB(s.mem.vm_rss_kb), bench::MiB(s.mem.rss_anon_kb),
                bench::MiB(s.mem.rss_file_kb));
  }
  size_t anon_max = 0;
  for (const auto& s : fill_samples) anon_max = std::max(anon_max, s.mem.rss_anon_kb);

  // ---- Drain: the recipient reconnects and acks everything.
  auto drx = std::make_unique<Dealer>(ctx, recipient, broker_key, broker.endpoint());
  std::atomic<size_t> drained{0};
  std::unordered_set<std::string> seen;
  seen.reserve(fill.acked);
  size_t duplicates = 0;
  std::vector<MemSample> drain_samples;
  auto drain_start = SteadyClock::now();
  auto last = drain_start;
  {
    Sampler sampler(pid, &drained);
    drx->SendHello("backlog-offline");
    zmq::pollitem_t item{drx->socket().handle(), 0, ZMQ_POLLIN, 0};
    while (seen.size() < fill.acked) {
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      bool any = false;
      while (auto f = drx->TryRecv()) {
        if (f->type != Frame::Type::kDeliver) continue;
        Bytes id;
        drx->AckDelivery(*f, &id);
        any = true;
        if (!seen.insert(std::string(id.begin(), id.end())).second) ++duplicates;
        drained = seen.size();
      }
      if (any) {
        last = SteadyClock::now();
      } else if (SteadyClock::now() - last > std::chrono::seconds(30)) {
        std::fprintf(stderr, "drain stalled at %zu of %zu\n", seen.size(), fill.acked);
        break;
      }
    }
    drain_samples = sampler.Stop();
  }
  double drain_s = std::chrono::duration<double>(last - drain_start).count();
  double drain_rate = drain_s > 0 ? static_cast<double>(seen.size()) / drain_s : 0;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  bench::ProcMemory after_drain = bench::ReadProcMemory(pid);
  size_t drain_anon_max = 0;
  for (const auto& s : drain_samples) drain_anon_max = std::max(drain_anon_max, s.mem.rss_anon_kb);
  std::printf(
      "drain: %zu delivered in %.1f s after reconnecting: %.0f msg/s, %.2f of the online "
      "rate (duplicates %zu)\n",
      seen.size(), drain_s, drain_rate, online_rate > 0 ? drain_rate / online_rate : 0, duplicates);
  std::printf(
      "broker memory (MiB): start %.1f; before fill %.1f (anon %.1f); after fill %.1f "
      "(anon %.1f, max during fill %.1f); after drain %.1f (anon %.1f, max during drain "
      "%.1f); VmHWM %.1f\n",
      bench::MiB(at_start.vm_rss_kb), bench::MiB(before_fill.vm_rss_kb),
      bench::MiB(before_fill.rss_anon_kb), bench::MiB(after_fill.vm_rss_kb),
      bench::MiB(after_fill.rss_anon_kb), bench::MiB(anon_max), bench::MiB(after_drain.vm_rss_kb),
      bench::MiB(after_drain.rss_anon_kb), bench::MiB(drain_anon_max),
      bench::MiB(after_drain.vm_hwm_kb));
  both.clear();
  drx.reset();
  int code = broker.Stop();
  bool ok =
      on.complete && fill.complete && fill.refused == 0 && seen.size() == fill.acked && code == 0;
  const MemSample& mid = At(fill_samples, fill.acked, 0.5);
  std::printf(
      "RESULT backlog messages=%zu online_rate=%.0f fill_rate=%.0f fill_s=%.1f drain_rate=%.0f "
      "drain_s=%.1f drain_ratio=%.2f store_mb=%.0f rss_before_fill_mb=%.1f rss_mid_fill_mb=%.1f "
      "rss_after_fill_mb=%.1f anon_before_fill_mb=%.1f anon_mid_fill_mb=%.1f "
      "anon_after_fill_mb=%.1f anon_max_fill_mb=%.1f anon_max_drain_mb=%.1f "
      "rss_after_drain_mb=%.1f hwm_mb=%.1f duplicates=%zu broker_exit=%d ok=%d\n",
      backlog, online_rate, fill_rate, fill.seconds, drain_rate, drain_s,
      online_rate > 0 ? drain_rate / online_rate : 0, store_mib, bench::MiB(before_fill.vm_rss_kb),
      bench::MiB(mid.mem.vm_rss_kb), bench::MiB(after_fill.vm_rss_kb),
      bench::MiB(before_fill.rss_anon_kb), bench::MiB(mid.mem.rss_anon_kb),
      bench::MiB(after_fill.rss_anon_kb), bench::MiB(anon_max), bench::MiB(drain_anon_max),
      bench::MiB(after_drain.vm_rss_kb), bench::MiB(after_drain.vm_hwm_kb), duplicates, code,
      ok ? 1 : 0);
  if (ok) testing::RemoveTree(root);
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Flags flags(argc, argv);
  std::string mode = flags.GetString("mode", "scale");
  if (!keys::InitSodium().ok()) return 1;
  if (mode == "scale") return RunScale(flags);
  if (mode == "backlog") return RunBacklog(flags);
  std::fprintf(stderr, "scale_bench: --mode scale|backlog\n");
  return 2;
}
