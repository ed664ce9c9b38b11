// refbus-broker start-up time over a large audit log: builds a broker store holding N audit
// entries through the real API (broker::Store::Commit of audit-only batches, so the Merkle
// tree and frontier are the ones the broker keeps), then times the refbus-broker process
// from exec until its endpoint file appears (it listens), beside the same broker over an
// empty store, and reads its memory once it listens.
//
//   startup_bench [--entries N] [--batch B] [--runs R] [--dir DIR] [--keep-store 1]
//
// Default N 10,000,000 in commits of B = 20,000 entries (about 25 s on the 2-core VM and
// 2.5 GB of disk, 264 bytes per entry; --dir picks the parent folder, default /tmp; the
// store is removed at the end unless --keep-store 1). Each start is followed by a clean stop
// (SIGTERM); R starts per store (default 3) report the first and the median. The store was just
// written, so its pages are likely in the page cache: the figures are warm starts. Prints text and
// RESULT startup ...
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "broker/store.h"
#include "keys/crypto.h"
#include "keys/secret.h"
#include "tests/bench/bench_util.h"
#include "tests/integration/harness.h"

using namespace refbus;  // NOLINT(google-build-using-namespace)
using bench::SteadyClock;

namespace {

double FileMiB(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<double>(st.st_blocks) * 512 / (1 << 20);
}

struct StartResult {
  double ms = -1;  // exec -> endpoint file; -1: did not start
  bench::ProcMemory mem;
  int exit_code = -1;
};

// Starts refbus-broker over data_dir, waits (up to timeout_s) for its endpoint file, reads
// its memory, stops it.
StartResult StartOnce(const testing::Federation& fed, const std::string& broker_id,
                      const std::string& data_dir, size_t map_mb, int timeout_s) {
  std::string party = fed.Dir(broker_id);
  std::string cfg = data_dir + ".toml", ep = data_dir + ".endpoint";
  ::unlink(ep.c_str());
  {
    std::ofstream out(cfg);
    out << "[broker]\nid = \"" << broker_id << "\"\nbind = \"tcp://127.0.0.1:*\"\n"
        << "data_dir = \"" << data_dir << "\"\nkey_file = \"" << party << "/identity.key\"\n"
        << "directory = \"" << party << "/directory\"\nanchor = \"" << party
        << "/authority.pub\"\ntrust_state = \"" << data_dir << ".trust-state\"\n"
        << "endpoint_file = \"" << ep << "\"\n[limits]\nmap_size_mb = " << map_mb << "\n";
  }
  StartResult r;
  testing::Process p;
  auto t = SteadyClock::now();
  if (!p.Start({testing::BinDir() + "/refbus-broker", "-c", cfg}, data_dir + ".log")) return r;
  while (bench::SecondsSince(t) < timeout_s) {
    std::ifstream in(ep);
    std::string line;
    if (in && std::getline(in, line) && !line.empty()) {
      r.ms = bench::SecondsSince(t) * 1000;
      break;
    }
    if (p.Wait(0) >= 0) break;  // it exited
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  if (r.ms >= 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    r.mem = bench::ReadProcMemory(p.pid());
  } else {
    std::ifstream log(data_dir + ".log");
    std::fprintf(stderr, "refbus-broker did not start; its log:\n%s\n",
                 std::string(std::istreambuf_iterator<char>(log), {}).c_str());
  }
  p.Signal(SIGTERM);
  r.exit_code = p.Wait(60000);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Flags flags(argc, argv);
  const size_t entries = flags.GetSize("entries", 10000000);
  const size_t batch = flags.GetSize("batch", 20000);
  const size_t runs = std::max<size_t>(1, flags.GetSize("runs", 3));
  const std::string parent = flags.GetString("dir", "/tmp");
  const bool keep = flags.GetSize("keep-store", 0) != 0;
  if (!flags.Unknown().empty() || batch == 0) {
    std::fprintf(stderr, "startup_bench: bad or unknown arguments\n");
    return 2;
  }
  if (!keys::InitSodium().ok()) return 1;
  std::string root = testing::MakeTempDir("refbus-startup-bench");
  testing::Federation fed;
  if (!fed.Create(root, {"startup-broker"},
                  {{"startup-police", schema::AgencyType::kPoliceUnit, "startup-broker"},
                   {"startup-dsc", schema::AgencyType::kDeletionCenter, "startup-broker"}})) {
    return 1;
  }
  // The big store and its broker's config, log and endpoint files, in a folder of their own.
  std::string big = parent + "/refbus-startup-bench-" + std::to_string(::getpid());
  std::string data = big + "/store";
  if (::mkdir(big.c_str(), 0700) != 0) {
    std::fprintf(stderr, "cannot make %s\n", big.c_str());
    return 1;
  }
  // ~300 bytes per entry with its tree nodes; LMDB needs room to spare.
  size_t map_mb = std::max<size_t>(4096, entries / 1024 + 2048);

  // ---- Build the store: audit-only batches, as the broker's writer commits them.
  auto t = SteadyClock::now();
  {
    broker::StoreOptions o;
    o.dir = data;
    o.broker_id = "startup-broker";
    o.map_size_bytes = map_mb << 20;
    auto store = broker::Store::Open(o);
    if (!store.ok()) {
      std::fprintf(stderr, "open: %s\n", store.status().ToString().c_str());
      return 1;
    }
    UnixMillis now = SystemClock::Get().NowMillis() - 365 * kMillisPerDay;
    Bytes id(16);
    Bytes sha = keys::RandomBytes(32);
    for (size_t done = 0; done < entries;) {
      broker::Batch b;
      b.events.reserve(batch);
      for (size_t i = 0; i < batch && done < entries; ++i, ++done) {
        schema::AuditEntry e;
        // A realistic mix: every message leaves an accepted and a delivered entry.
        e.event = done % 2 == 0 ? schema::AuditEvent::kEnvelopeAccepted
                                : schema::AuditEvent::kEnvelopeDelivered;
        e.actor = done % 2 == 0 ? "startup-police" : "startup-dsc";
        for (size_t k = 0; k < 8; ++k) id[k] = static_cast<uint8_t>((done / 2) >> (8 * k));
        e.message_id = id;
        e.recipients = {"startup-dsc"};
        sha[0] = static_cast<uint8_t>(done);
        e.envelope_sha256 = sha;
        e.case_ref = "case-00c0ffee";
        b.events.push_back(std::move(e));
      }
      auto r = (*store)->Commit(b, ++now);
      if (!r.ok()) {
        std::fprintf(stderr, "commit: %s\n", r.status().ToString().c_str());
        return 1;
      }
      if (done % 1000000 < batch) {
        std::printf("  %zu entries, %.0f s\n", done, bench::SecondsSince(t));
        std::fflush(stdout);
      }
    }
  }
  double build_s = bench::SecondsSince(t);
  double store_mib = FileMiB(data + "/data.mdb");
  std::printf(
      "store of %zu audit entries built in %.1f s (%.0f entries/s), %.0f MiB (%.0f bytes "
      "per entry)\n",
      entries, build_s, static_cast<double>(entries) / build_s, store_mib,
      store_mib * (1 << 20) / static_cast<double>(std::max<size_t>(entries, 1)));

  // ---- Start the broker over an empty store and over the big one.
  auto measure = [&](const std::string& dir, const char* what) {
    std::vector<StartResult> rs;
    for (size_t i = 0; i < runs; ++i) {
      rs.push_back(StartOnce(fed, "startup-broker", dir, map_mb, 600));
      std::printf("  %s, start %zu: %.1f ms to listen, VmRSS %.1f MiB (anon %.1f), exit %d\n", what,
                  i + 1, rs.back().ms, bench::MiB(rs.back().mem.vm_rss_kb),
                  bench::MiB(rs.back().mem.rss_anon_kb), rs.back().exit_code);
      std::fflush(stdout);
    }
    return rs;
  };
  auto empty = measure(root + "/empty-data", "empty store");
  auto full = measure(data, "big store");
  auto median = [](const std::vector<StartResult>& rs) {
    std::vector<double> v;
    for (const auto& r : rs) v.push_back(r.ms);
    return bench::Quantile(v, 0.5);
  };
  bool ok = true;
  for (const auto& r : empty) ok = ok && r.ms >= 0 && r.exit_code == 0;
  for (const auto& r : full) ok = ok && r.ms >= 0 && r.exit_code == 0;
  std::printf(
      "start-up to listening: empty store %.1f ms, %zu-entry audit log %.1f ms (first "
      "%.1f ms); broker VmRSS %.1f MiB\n",
      median(empty), entries, median(full), full[0].ms, bench::MiB(full.back().mem.vm_rss_kb));
  std::printf(
      "RESULT startup entries=%zu build_s=%.1f store_mb=%.0f empty_ms=%.1f first_ms=%.1f "
      "median_ms=%.1f rss_mb=%.1f anon_mb=%.1f empty_rss_mb=%.1f ok=%d\n",
      entries, build_s, store_mib, median(empty), full[0].ms, median(full),
      bench::MiB(full.back().mem.vm_rss_kb), bench::MiB(full.back().mem.rss_anon_kb),
      bench::MiB(empty.back().mem.vm_rss_kb), ok ? 1 : 0);
  if (!keep) testing::RemoveTree(big);
  if (ok) testing::RemoveTree(root);
  return ok ? 0 : 1;
}
