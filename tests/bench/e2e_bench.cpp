// End-to-end benchmark: referrals with 1 KiB of content from several sending agencies to
// several receiving agencies through real refbus-broker processes, on the agents' own path
// (agent::Client with its durable LMDB outbox and inbox, as refbus-agent uses it).
//
//   e2e_bench [--brokers 1|2] [--recipients 1|3] [--senders S] [--receivers R]
//             [--messages N] [--loads 10,50,90] [--paced-seconds T] [--window W]
//             [--warmup M] [--link-window W] [--stages 0|1]
//
// Each message is sealed on the fly by its sender (keys::SealEnvelope, a REFERRAL under the
// sender's consent grant, which the sender registers first, so the broker checks scope),
// signed, submitted through the sender's Client (outbox commit, then Submit), verified,
// consent-checked, durably queued and audited by the broker (with --brokers 2: the
// senders' home broker relays to the receivers' home broker over the federation link),
// delivered, stored in the receiver's inbox (group commit), acked, and opened by the
// receiver (keys::OpenEnvelope). Latency is from the moment the sender meant to seal the
// message (written into the content, steady clock of this one process) to the moment the
// receiver has opened it. Paced runs use the scheduled send time, so a sender that falls
// behind shows up in the latency (no coordinated omission); when it keeps up that is the
// moment just before sealing.
//
// Phases: a warm-up of M messages (default 200, not reported; it also brings the
// federation link up); N messages as fast as the window allows (each sender keeps up to
// 2 W submissions outstanding; the maximum rate is opened messages / time until the last
// one was opened, and its latency is mostly queueing); then for each load L% a
// paced run at L% of that rate for T seconds. Every phase reports latency p50/p99/p99.9.
// With --recipients 3 every message goes to 3 of the R receivers (rotating), each opens it;
// the rate counts messages, deliveries are 3 times that.
//
// --link-window sets both brokers' [federation] window. --stages 1 (default) samples the
// brokers' status files every 100 ms and prints, per phase, where a message waited: the
// home broker's commits (batch size, duration), its link queue (backlog, relays in
// flight, time from its commit to the relay's send, the relay's round trip through the
// next broker's commit), the next broker's commits and its recipients' mailboxes.
//
// Prints text and one line for deploy/bench.sh:
//   RESULT e2e_b<brokers>_r<recipients> key=value ...
#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/client.h"
#include "agent/transport_store.h"
#include "core/log.h"
#include "keys/consent.h"
#include "keys/crypto.h"
#include "keys/envelope.h"
#include "keys/secret.h"
#include "schema/codec.h"
#include "tests/bench/bench_util.h"
#include "tests/integration/harness.h"

using namespace refbus;  // NOLINT(google-build-using-namespace)
using bench::SteadyNanos;
using schema::Frame;

namespace {

constexpr size_t kContentBytes = 1024;
constexpr uint32_t kMagic = 0x45324531;  // "E2E1"
constexpr size_t kMaxPhases = 16;

// What a sender writes at the start of each message's content.
struct ContentHeader {
  uint32_t magic = kMagic;
  uint32_t phase = 0;
  int64_t intended_ns = 0;  // steady clock: when the message was meant to be sealed
  uint32_t sender = 0;
  uint32_t pad = 0;
  uint64_t sequence = 0;
};
static_assert(sizeof(ContentHeader) <= kContentBytes);

struct Phase {
  std::string name;
  double rate = 0;        // messages/s offered by all senders together; 0: max
  size_t per_sender = 0;  // messages each sender sends
  int64_t start_ns = 0;   // steady clock
};

struct Sample {
  uint32_t phase;
  int64_t latency_ns;
};

// State shared between the main thread and the agents' threads. The main thread writes
// phases_[i] before publishing i through generation (release); agents read it after
// seeing the new generation (acquire).
struct Shared {
  std::array<Phase, kMaxPhases> phases;
  std::atomic<int> generation{-1};
  std::atomic<bool> quit{false};
  std::atomic<int> ready{0};   // agents that started and (senders) registered their grant
  std::atomic<int> failed{0};  // agents that could not start
  std::array<std::atomic<size_t>, kMaxPhases> acked{};
  std::array<std::atomic<size_t>, kMaxPhases> refused{};
  std::array<std::atomic<int>, kMaxPhases> senders_done{};
  std::array<std::atomic<size_t>, kMaxPhases> opened{};
  std::array<std::atomic<int64_t>, kMaxPhases> last_open_ns{};
  std::array<std::atomic<int64_t>, kMaxPhases> max_lag_ns{};
  std::atomic<size_t> open_failures{0};
  std::atomic<size_t> client_errors{0};
  std::mutex samples_mu;
  std::vector<Sample> samples;  // GUARDED_BY(samples_mu)
};

void AtomicMax(std::atomic<int64_t>& a, int64_t v) {
  int64_t cur = a.load();
  while (v > cur && !a.compare_exchange_weak(cur, v)) {
  }
}

struct AgentSetup {
  std::string id;
  std::string store_dir;
  std::string endpoint;  // home broker
  size_t window = 64;
};

// One agency's agent: its store and the Client over it.
struct Agent {
  std::unique_ptr<agent::TransportStore> store;
  std::unique_ptr<agent::Client> client;
};
// Opens the agent's store and starts its Client; false (and a message) on failure.
bool StartAgent(const AgentSetup& s, const keys::Identity& me, const schema::Directory& dir,
                Agent* out) {
  agent::StoreOptions so;
  so.map_size_bytes = size_t{4} << 30;
  auto store = agent::TransportStore::Open(s.store_dir, so);
  if (!store.ok()) {
    std::fprintf(stderr, "%s: store: %s\n", s.id.c_str(), store.status().ToString().c_str());
    return false;
  }
  out->store = std::move(*store);
  agent::ClientOptions co;
  co.window = s.window;
  out->client = std::make_unique<agent::Client>(me, dir, s.endpoint, *out->store, co);
  if (Status st = out->client->Start(); !st.ok()) {
    std::fprintf(stderr, "%s: client: %s\n", s.id.c_str(), st.ToString().c_str());
    return false;
  }
  return true;
}

schema::ConsentGrant MakeGrant(const std::string& recorder, const std::string& case_ref) {
  UnixMillis now = SystemClock::Get().NowMillis();
  schema::ConsentGrant g;
  g.grant_id = keys::RandomBytes(schema::kGrantIdBytes);
  g.case_ref = case_ref;
  g.recorded_by = recorder;
  g.basis = schema::LegalBasis::kConsentLegalRepresentative;
  g.legal_article = "PIPA 22-2";
  g.consenters = {schema::Consenter::kGuardian};
  g.subject_assent = true;
  g.purposes = {schema::Purpose::kCounseling};
  g.categories = {schema::DataCategory::kIdentity, schema::DataCategory::kContact,
                  schema::DataCategory::kIncidentSummary};
  g.allowed_agency_types = {schema::AgencyType::kCounselingCenter};
  g.issued_at_ms = now - 1000;
  g.expires_at_ms = now + kMillisPerDay;
  g.retention_until_ms = now + 30 * kMillisPerDay;
  return g;
}

struct SenderArgs {
  AgentSetup setup;
  uint32_t index = 0;
  size_t senders = 1;
  std::vector<keys::RecipientPrekey> receivers;  // all receivers' prekeys
  size_t recipients = 1;                         // per message
};

// Drives one sending agency: registers its grant, then runs each phase the main thread
// publishes.
void RunSender(Shared* sh, const keys::Identity* me, const schema::Directory* dir,
               SenderArgs args) {
  Agent a;
  if (!StartAgent(args.setup, *me, *dir, &a)) {
    ++sh->failed;
    return;
  }
  agent::Client& c = *a.client;
  std::string case_ref = "case-e2e" + std::to_string(10000000 + args.index);
  schema::ConsentGrant grant = MakeGrant(me->party_id(), case_ref);
  auto signed_grant = keys::SignConsentGrant(*me, grant);
  if (!signed_grant.ok()) {
    std::fprintf(stderr, "sign grant: %s\n", signed_grant.status().ToString().c_str());
    ++sh->failed;
    return;
  }
  Frame reg;
  reg.type = Frame::Type::kGrantRegister;
  reg.grant_register.signed_grant = schema::EncodeSignedConsentGrant(*signed_grant);
  if (Status s = c.SubmitControl(grant.grant_id, reg); !s.ok()) {
    std::fprintf(stderr, "register grant: %s\n", s.ToString().c_str());
    ++sh->failed;
    return;
  }
  bool registered = false;
  auto deadline = bench::SteadyClock::now() + std::chrono::seconds(30);
  while (!registered && bench::SteadyClock::now() < deadline && !sh->quit) {
    (void)c.Poll(50);
    for (const auto& e : c.TakeEvents()) {
      if (!e.control) continue;
      if (e.type == agent::ClientEvent::Type::kAcked) registered = true;
      if (e.type == agent::ClientEvent::Type::kRefused) {
        std::fprintf(stderr, "%s: grant refused: %s %s\n", me->party_id().c_str(),
                     std::string(schema::Name(e.reason)).c_str(), e.detail.c_str());
        deadline = bench::SteadyClock::now();
      }
    }
  }
  if (!registered) {
    std::fprintf(stderr, "%s: grant not registered\n", me->party_id().c_str());
    ++sh->failed;
    return;
  }
  ++sh->ready;

  keys::SealRequest req;
  req.kind = schema::MessageKind::kReferral;
  req.case_ref = case_ref;
  req.consent_grant_id = grant.grant_id;
  req.purpose = schema::Purpose::kCounseling;
  req.categories = {schema::DataCategory::kIdentity, schema::DataCategory::kIncidentSummary};
  req.lifetime_ms = kMillisPerDay;
  Bytes content = keys::RandomBytes(kContentBytes);
  const size_t cap = 2 * args.setup.window;  // outstanding submissions in a max-rate phase
  size_t rotation = args.index;              // which receivers the next message goes to
  uint64_t sequence = 0;
  int seen = -1;
  while (!sh->quit) {
    int gen = sh->generation.load(std::memory_order_acquire);
    if (gen == seen) {
      (void)c.Poll(5);
      (void)c.TakeEvents();  // late answers of a finished phase
      continue;
    }
    seen = gen;
    const Phase& ph = sh->phases[static_cast<size_t>(gen)];
    const auto phase = static_cast<uint32_t>(gen);
    // This sender's schedule: evenly spaced, senders interleaved.
    double interval_ns = ph.rate > 0 ? 1e9 * static_cast<double>(args.senders) / ph.rate : 0;
    double offset_ns = interval_ns * args.index / static_cast<double>(args.senders);
    size_t k = 0, answered = 0;
    std::vector<Bytes> batch;
    while (answered < ph.per_sender && !sh->quit) {
      batch.clear();
      int64_t now_ns = SteadyNanos();
      int64_t next_due = 0;
      while (k < ph.per_sender && batch.size() < 256) {
        int64_t intended = now_ns;
        if (ph.rate > 0) {
          intended =
              ph.start_ns + static_cast<int64_t>(offset_ns + static_cast<double>(k) * interval_ns);
          if (intended > now_ns) {
            next_due = intended;
            break;
          }
          AtomicMax(sh->max_lag_ns[phase], now_ns - intended);
        } else if (c.outstanding() + batch.size() >= cap) {
          break;
        }
        ContentHeader h;
        h.phase = phase;
        h.intended_ns = intended;
        h.sender = args.index;
        h.sequence = sequence++;
        std::memcpy(content.data(), &h, sizeof(h));
        req.recipients.clear();
        for (size_t r = 0; r < args.recipients; ++r) {
          req.recipients.push_back(args.receivers[(rotation + r) % args.receivers.size()]);
        }
        ++rotation;
        req.now = SystemClock::Get().NowMillis();
        auto env = keys::SealEnvelope(*me, req, content);
        if (!env.ok()) {
          std::fprintf(stderr, "seal: %s\n", env.status().ToString().c_str());
          ++sh->client_errors;
          sh->quit = true;
          break;
        }
        batch.push_back(std::move(*env));
        ++k;
        now_ns = SteadyNanos();
      }
      if (!batch.empty()) {
        auto ids = c.SubmitBatch(std::move(batch));
        if (!ids.ok()) {
          std::fprintf(stderr, "submit: %s\n", ids.status().ToString().c_str());
          ++sh->client_errors;
        }
        batch = {};
      }
      int timeout_ms = 1;
      if (ph.rate > 0) {
        // Answers are handled without waiting; then sleep until the next message is due
        // (finer than Poll's milliseconds), at most 2 ms so answers do not pile up.
        timeout_ms = 0;
      }
      if (!c.Poll(timeout_ms).ok()) ++sh->client_errors;
      for (const auto& e : c.TakeEvents()) {
        if (e.control) continue;
        if (e.type == agent::ClientEvent::Type::kAcked) {
          ++answered;
          ++sh->acked[phase];
        } else if (e.type == agent::ClientEvent::Type::kRefused) {
          ++answered;
          if (sh->refused[phase]++ == 0) {
            std::fprintf(stderr, "%s: refused: %s %s\n", me->party_id().c_str(),
                         std::string(schema::Name(e.reason)).c_str(), e.detail.c_str());
          }
        }
      }
      if (ph.rate > 0 && k < ph.per_sender && next_due > 0) {
        int64_t wait = std::min<int64_t>(next_due - SteadyNanos(), 2'000'000);
        if (wait > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
      } else if (ph.rate > 0 && k >= ph.per_sender) {
        (void)c.Poll(2);
      }
    }
    ++sh->senders_done[phase];
  }
  a.client->Close(200);
}

// Drives one receiving agency: every delivery (an event after its inbox commit) is opened
// and its latency recorded.
void RunReceiver(Shared* sh, const keys::Identity* me, const schema::Directory* dir,
                 AgentSetup setup) {
  Agent a;
  if (!StartAgent(setup, *me, *dir, &a)) {
    ++sh->failed;
    return;
  }
  ++sh->ready;
  std::vector<Sample> mine;
  while (!sh->quit) {
    if (!a.client->Poll(5).ok()) ++sh->client_errors;
    for (auto& e : a.client->TakeEvents()) {
      if (e.type != agent::ClientEvent::Type::kDelivered) continue;
      auto opened = keys::OpenEnvelope(*me, e.envelope, *dir, SystemClock::Get().NowMillis());
      int64_t now_ns = SteadyNanos();
      ContentHeader h;
      if (!opened.ok() || opened->content.size() < sizeof(h)) {
        if (sh->open_failures++ == 0) {
          std::fprintf(stderr, "%s: open: %s\n", me->party_id().c_str(),
                       opened.ok() ? "short content" : opened.status().ToString().c_str());
        }
        continue;
      }
      std::memcpy(&h, opened->content.data(), sizeof(h));
      if (h.magic != kMagic || h.phase >= kMaxPhases) {
        ++sh->open_failures;
        continue;
      }
      mine.push_back({h.phase, now_ns - h.intended_ns});
      ++sh->opened[h.phase];
      AtomicMax(sh->last_open_ns[h.phase], now_ns);
    }
    if (mine.size() >= 1024) {
      std::lock_guard<std::mutex> l(sh->samples_mu);
      sh->samples.insert(sh->samples.end(), mine.begin(), mine.end());
      mine.clear();
    }
  }
  {
    std::lock_guard<std::mutex> l(sh->samples_mu);
    sh->samples.insert(sh->samples.end(), mine.begin(), mine.end());
  }
  a.client->Close(200);
}

struct PhaseResult {
  std::string name;
  double offered = 0;  // msg/s asked for (0: max)
  size_t acked = 0, refused = 0, opened = 0;
  double seconds = 0;
  double rate = 0;  // messages acked per second of the phase (to the last open)
  double p50_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
  double max_lag_ms = 0;
  bool complete = false;
};

// Per-stage figures of one phase, from the brokers' status files (see --stages).
struct StageSampler {
  struct Totals {  // histogram sums and counts at a moment
    double commit_s = 0, commit_n = 0, env_sum = 0, env_n = 0;
    double wait_s = 0, wait_n = 0, rtt_s = 0, rtt_n = 0;
  };
  struct Gauges {
    double backlog = 0, inflight = 0, mailboxes = 0;
    double max_backlog = 0, max_inflight = 0, max_mailboxes = 0;
    size_t samples = 0;
  };
  static double Count(const nlohmann::json& buckets) {
    double n = 0;
    if (buckets.is_array()) {
      for (const auto& b : buckets) n += b.get<double>();
    }
    return n;
  }
  static Totals Read(const nlohmann::json& j) {
    Totals t;
    t.commit_s = j.value("commit_seconds_sum", 0.0);
    t.commit_n = Count(j.value("commit_buckets", nlohmann::json::array()));
    t.env_sum = j.value("commit_envelopes_sum", 0.0);
    t.env_n = Count(j.value("commit_envelope_buckets", nlohmann::json::array()));
    for (const auto& l : j.value("links", nlohmann::json::array())) {
      t.wait_s += l.value("queue_wait_seconds_sum", 0.0);
      t.wait_n += Count(l.value("queue_wait_buckets", nlohmann::json::array()));
      t.rtt_s += l.value("round_trip_seconds_sum", 0.0);
      t.rtt_n += Count(l.value("round_trip_buckets", nlohmann::json::array()));
    }
    return t;
  }
  static void Sample(const nlohmann::json& j, Gauges& g) {
    double backlog = 0, inflight = 0, mailboxes = 0;
    for (const auto& l : j.value("links", nlohmann::json::array())) {
      backlog += l.value("backlog", 0.0);
      inflight += l.value("inflight", 0.0);
    }
    for (const auto& m : j.value("mailboxes", nlohmann::json::array())) {
      mailboxes += m.value("depth", 0.0);
    }
    g.backlog += backlog;
    g.inflight += inflight;
    g.mailboxes += mailboxes;
    g.max_backlog = std::max(g.max_backlog, backlog);
    g.max_inflight = std::max(g.max_inflight, inflight);
    g.max_mailboxes = std::max(g.max_mailboxes, mailboxes);
    ++g.samples;
  }
  static nlohmann::json Parse(const std::string& text) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    return j.is_discarded() ? nlohmann::json::object() : j;
  }
  static double Mean(double s, double n) { return n > 0 ? s / n : 0; }

  // Prints one line per broker: what happened between before and after (status texts).
  static void Print(const std::string& phase, const std::vector<std::string>& ids,
                    const std::vector<std::string>& before, const std::vector<std::string>& after,
                    const std::vector<Gauges>& gauges) {
    for (size_t i = 0; i < ids.size(); ++i) {
      Totals a = Read(Parse(before[i])), b = Read(Parse(after[i]));
      const Gauges& g = gauges[i];
      const double n = g.samples > 0 ? static_cast<double>(g.samples) : 1;
      std::printf(
          "stages %-6s %s: commits %.0f, %.1f env/commit, %.2f ms/commit | link: backlog avg "
          "%.0f max %.0f, inflight avg %.0f max %.0f, commit->send %.2f ms, round trip %.2f ms "
          "(%.0f relays) | mailboxes avg %.0f max %.0f\n",
          phase.c_str(), ids[i].c_str(), b.commit_n - a.commit_n,
          Mean(b.env_sum - a.env_sum, b.env_n - a.env_n),
          1e3 * Mean(b.commit_s - a.commit_s, b.commit_n - a.commit_n), g.backlog / n,
          g.max_backlog, g.inflight / n, g.max_inflight,
          1e3 * Mean(b.wait_s - a.wait_s, b.wait_n - a.wait_n),
          1e3 * Mean(b.rtt_s - a.rtt_s, b.rtt_n - a.rtt_n), b.rtt_n - a.rtt_n, g.mailboxes / n,
          g.max_mailboxes);
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  bench::Flags flags(argc, argv);
  const size_t brokers = flags.GetSize("brokers", 1);
  const size_t recipients = flags.GetSize("recipients", 1);
  const size_t senders = flags.GetSize("senders", 4);
  const size_t receivers = flags.GetSize("receivers", 4);
  const size_t messages = flags.GetSize("messages", 20000);
  const std::vector<size_t> loads = flags.GetList("loads", "10,50,90");
  const double paced_seconds = static_cast<double>(flags.GetSize("paced-seconds", 10));
  const size_t window = flags.GetSize("window", 64);
  const size_t warmup = flags.GetSize("warmup", 200);
  const size_t link_window = flags.GetSize("link-window", 0);  // 0: the brokers' default
  const bool stages = flags.GetSize("stages", 1) != 0;
  if (!flags.Unknown().empty()) {
    std::fprintf(stderr, "e2e_bench: unknown argument %s\n", flags.Unknown()[0].c_str());
    return 2;
  }
  if ((brokers != 1 && brokers != 2) || recipients < 1 || recipients > receivers || senders < 1 ||
      loads.size() + 2 > kMaxPhases) {
    std::fprintf(stderr, "e2e_bench: bad arguments\n");
    return 2;
  }
  if (!keys::InitSodium().ok()) return 1;
  (void)InitLogging("e2e_bench", LogFormat::kText, "warn");

  std::string root = testing::MakeTempDir("refbus-e2e-bench");
  std::vector<std::string> broker_ids = {"e2e-a"};
  if (brokers == 2) broker_ids.push_back("e2e-b");
  const std::string& rx_home = broker_ids.back();
  std::vector<testing::Federation::AgencySpec> specs;
  std::vector<std::string> tx_ids, rx_ids;
  for (size_t i = 0; i < senders; ++i) {
    tx_ids.push_back("e2e-wee-" + std::to_string(i));
    specs.push_back({tx_ids.back(), schema::AgencyType::kWeeCenter, "e2e-a"});
  }
  for (size_t i = 0; i < receivers; ++i) {
    rx_ids.push_back("e2e-counsel-" + std::to_string(i));
    specs.push_back({rx_ids.back(), schema::AgencyType::kCounselingCenter, rx_home});
  }
  testing::Federation fed;
  if (!fed.Create(root, broker_ids, specs)) return 1;

  std::vector<std::unique_ptr<testing::Broker>> bks;
  for (const auto& b : broker_ids) {
    bks.push_back(std::make_unique<testing::Broker>(fed, b, root + "/" + b + "-data"));
    bks.back()->set_policy("allow_unscoped_opaque = false");
  }
  if (brokers == 2) {
    const std::string w =
        link_window > 0 ? "window = " + std::to_string(link_window) + "\n" : std::string();
    bks[0]->set_extra("[federation]\n" + w + "endpoint_files = { e2e-b = \"" +
                      bks[1]->endpoint_file() + "\" }\n");
    bks[1]->set_extra("[federation]\n" + w + "endpoint_files = { e2e-a = \"" +
                      bks[0]->endpoint_file() + "\" }\n");
  }
  for (auto& b : bks) {
    if (!b->Start()) {
      std::fprintf(stderr, "e2e_bench: a broker did not start:\n%s\n", b->Log().c_str());
      return 1;
    }
  }

  const schema::Directory& dir = fed.directory();
  UnixMillis now = SystemClock::Get().NowMillis();
  std::vector<keys::RecipientPrekey> prekeys;
  for (const auto& r : rx_ids) {
    auto p = keys::CurrentPrekey(dir, r, now);
    if (!p.ok()) {
      std::fprintf(stderr, "prekey of %s: %s\n", r.c_str(), p.status().ToString().c_str());
      return 1;
    }
    prekeys.push_back(*p);
  }
  std::vector<keys::Identity> tx_keys, rx_keys;
  for (const auto& id : tx_ids) tx_keys.push_back(fed.LoadIdentity(id));
  for (const auto& id : rx_ids) rx_keys.push_back(fed.LoadIdentity(id));

  Shared sh;
  std::vector<std::thread> threads;
  for (size_t i = 0; i < receivers; ++i) {
    AgentSetup s{rx_ids[i], root + "/agents/" + rx_ids[i], bks.back()->endpoint(), window};
    threads.emplace_back(RunReceiver, &sh, &rx_keys[i], &dir, s);
  }
  for (size_t i = 0; i < senders; ++i) {
    SenderArgs a;
    a.setup = {tx_ids[i], root + "/agents/" + tx_ids[i], bks[0]->endpoint(), window};
    a.index = static_cast<uint32_t>(i);
    a.senders = senders;
    a.receivers = prekeys;
    a.recipients = recipients;
    threads.emplace_back(RunSender, &sh, &tx_keys[i], &dir, std::move(a));
  }
  auto wait_start = bench::SteadyClock::now();
  while (sh.ready + sh.failed < static_cast<int>(senders + receivers) &&
         bench::SecondsSince(wait_start) < 60) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::vector<PhaseResult> results;
  int exit_code = 0;
  if (sh.failed > 0 || sh.ready < static_cast<int>(senders + receivers)) {
    std::fprintf(stderr, "e2e_bench: %d agents failed to start\n",
                 static_cast<int>(senders + receivers) - sh.ready.load());
    exit_code = 1;
  }

  // Runs one phase and waits until every acked message was opened by all its recipients.
  auto run_phase = [&](const std::string& name, double rate, size_t total) {
    int gen = sh.generation.load() + 1;
    auto g = static_cast<size_t>(gen);
    Phase& ph = sh.phases[g];
    ph.name = name;
    ph.rate = rate;
    ph.per_sender = std::max<size_t>(1, (total + senders - 1) / senders);
    ph.start_ns = SteadyNanos();
    sh.generation.store(gen, std::memory_order_release);
    double expect_s = rate > 0 ? static_cast<double>(ph.per_sender * senders) / rate : 0;
    auto deadline = bench::SteadyClock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>((60 + 3 * expect_s) * 1000));
    PhaseResult r;
    r.name = name;
    r.offered = rate;
    std::vector<std::string> status_before;
    std::vector<StageSampler::Gauges> gauges(bks.size());
    for (auto& b : bks) status_before.push_back(stages ? b->StatusJson() : "");
    auto next_sample = bench::SteadyClock::now();
    while (bench::SteadyClock::now() < deadline && !sh.quit) {
      bool sent = sh.senders_done[g] == static_cast<int>(senders);
      if (sent && sh.opened[g] >= sh.acked[g] * recipients) {
        r.complete = true;
        break;
      }
      if (stages && bench::SteadyClock::now() >= next_sample) {
        next_sample += std::chrono::milliseconds(100);
        for (size_t i = 0; i < bks.size(); ++i) {
          StageSampler::Sample(StageSampler::Parse(bks[i]->StatusJson()), gauges[i]);
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (stages) {
      // The brokers rewrite their status files every second.
      std::this_thread::sleep_for(std::chrono::milliseconds(1100));
      std::vector<std::string> status_after;
      for (auto& b : bks) status_after.push_back(b->StatusJson());
      StageSampler::Print(name, broker_ids, status_before, status_after, gauges);
      std::fflush(stdout);
    }
    r.acked = sh.acked[g];
    r.refused = sh.refused[g];
    r.opened = sh.opened[g];
    int64_t end = sh.last_open_ns[g] > 0 ? sh.last_open_ns[g].load() : SteadyNanos();
    r.seconds = static_cast<double>(end - ph.start_ns) / 1e9;
    r.rate = r.seconds > 0 ? static_cast<double>(r.acked) / r.seconds : 0;
    r.max_lag_ms = static_cast<double>(sh.max_lag_ns[g]) / 1e6;
    if (!r.complete) {
      std::fprintf(stderr,
                   "e2e_bench: phase %s incomplete: %zu acked, %zu refused, %zu of %zu opened\n",
                   name.c_str(), r.acked, r.refused, r.opened, r.acked * recipients);
    }
    return r;
  };

  if (exit_code == 0) {
    std::printf(
        "e2e: %zu broker(s), %zu senders -> %zu receivers, %zu recipient(s) per message, "
        "window %zu\n",
        brokers, senders, receivers, recipients, window);
    std::fflush(stdout);
    PhaseResult w = run_phase("warmup", 0, warmup);
    if (!w.complete) exit_code = 1;
  }
  double max_rate = 0;
  if (exit_code == 0) {
    results.push_back(run_phase("max", 0, messages));
    max_rate = results.back().rate;
    if (!results.back().complete) exit_code = 1;
  }
  for (size_t l : loads) {
    if (exit_code != 0 || max_rate <= 0) break;
    double rate = max_rate * static_cast<double>(l) / 100.0;
    auto total = static_cast<size_t>(std::max(50.0, rate * paced_seconds));
    results.push_back(run_phase("l" + std::to_string(l), rate, total));
    if (!results.back().complete) exit_code = 1;
  }
  std::vector<bench::ProcMemory> mem;
  for (auto& b : bks) mem.push_back(bench::ReadProcMemory(b->process().pid()));
  sh.quit = true;
  for (auto& t : threads) t.join();

  // Latencies per phase (phase indexes: 0 warm-up, then results in order).
  {
    std::lock_guard<std::mutex> l(sh.samples_mu);
    for (size_t i = 0; i < results.size(); ++i) {
      std::vector<double> ms;
      for (const auto& s : sh.samples) {
        if (s.phase == i + 1) ms.push_back(static_cast<double>(s.latency_ns) / 1e6);
      }
      results[i].p50_ms = bench::Quantile(ms, 0.50);
      results[i].p99_ms = bench::Quantile(ms, 0.99);
      results[i].p999_ms = bench::Quantile(ms, 0.999);
      results[i].max_ms = ms.empty() ? 0 : ms.back();
    }
  }
  std::vector<int> exits;
  for (auto& b : bks) exits.push_back(b->Stop());

  std::printf("%-6s %10s %10s %8s %8s %9s %9s %9s %9s %9s\n", "phase", "offered/s", "msg/s",
              "acked", "refused", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "lag ms");
  for (const auto& r : results) {
    std::printf("%-6s %10.0f %10.0f %8zu %8zu %9.2f %9.2f %9.2f %9.2f %9.2f%s\n", r.name.c_str(),
                r.offered, r.rate, r.acked, r.refused, r.p50_ms, r.p99_ms, r.p999_ms, r.max_ms,
                r.max_lag_ms, r.complete ? "" : "  INCOMPLETE");
  }
  std::printf("deliveries opened per second at max: %.0f; open failures %zu; client errors %zu\n",
              results.empty() ? 0.0 : results[0].rate * static_cast<double>(recipients),
              sh.open_failures.load(), sh.client_errors.load());
  for (size_t i = 0; i < bks.size(); ++i) {
    std::printf("broker %s: VmRSS %.1f MiB (anon %.1f), VmHWM %.1f MiB, exit code %d\n",
                broker_ids[i].c_str(), bench::MiB(mem[i].vm_rss_kb), bench::MiB(mem[i].rss_anon_kb),
                bench::MiB(mem[i].vm_hwm_kb), exits[i]);
  }

  std::printf(
      "RESULT e2e_b%zu_r%zu brokers=%zu recipients=%zu senders=%zu receivers=%zu "
      "window=%zu messages=%zu paced_seconds=%.0f",
      brokers, recipients, brokers, recipients, senders, receivers, window, messages,
      paced_seconds);
  size_t refused = 0;
  bool complete = exit_code == 0;
  for (const auto& r : results) {
    std::printf(
        " %s_offered=%.0f %s_rate=%.0f %s_p50_ms=%.3f %s_p99_ms=%.3f %s_p999_ms=%.3f "
        "%s_lag_ms=%.3f",
        r.name.c_str(), r.offered, r.name.c_str(), r.rate, r.name.c_str(), r.p50_ms, r.name.c_str(),
        r.p99_ms, r.name.c_str(), r.p999_ms, r.name.c_str(), r.max_lag_ms);
    refused += r.refused;
    complete = complete && r.complete;
  }
  int worst_exit = 0;
  for (int e : exits) worst_exit = e != 0 ? e : worst_exit;
  size_t hwm = 0;
  for (const auto& m : mem) hwm = std::max(hwm, m.vm_hwm_kb);
  std::printf(
      " deliveries_rate=%.0f refused=%zu open_failures=%zu client_errors=%zu "
      "broker_hwm_mb=%.1f broker_exit=%d ok=%d\n",
      results.empty() ? 0.0 : results[0].rate * static_cast<double>(recipients), refused,
      sh.open_failures.load(), sh.client_errors.load(), bench::MiB(hwm), worst_exit,
      complete && refused == 0 && sh.open_failures == 0 ? 1 : 0);
  if (exit_code == 0) testing::RemoveTree(root);
  return exit_code;
}
