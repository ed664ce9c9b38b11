// LMDB durable group commit on this machine's disk: how many fsynced commits per second,
// and so how many 1 KiB records per second, for batches of 1, 16, 64 and 256 puts per
// commit. The environment is opened through core/lmdb.h, as the broker opens its store
// (no MDB_NOSYNC, MDB_NOMETASYNC, MDB_MAPASYNC or MDB_WRITEMAP: every commit flushes the
// data pages, then the meta page), and keys are sequence numbers as in the broker's queues.
//
//   lmdb_commit_bench [--seconds S] [--dir DIR] [--mode default|writemap|pipelined]
//
// --mode writemap opens with MDB_WRITEMAP (pages written through the map, msync per
// commit); --mode pipelined with MDB_NOMETASYNC: each commit flushes its data pages only,
// and its meta page becomes durable with the next commit's flush (the broker would ack a
// commit then); its latency column is then what a commit takes, not when it is durable.
//
// Each batch size runs for S seconds (default 2). DIR (default: a new folder under $TMPDIR)
// decides which disk is measured; the broker's data directory is the one that matters.
// Prints commit latency p50/p99 next to the rates, a 4 KiB write + fdatasync probe of the
// same folder, and one machine-readable line: RESULT lmdb key=value ...
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/lmdb.h"
#include "tests/bench/bench_util.h"

using namespace refbus;  // NOLINT(google-build-using-namespace)
using SteadyClock = std::chrono::steady_clock;

namespace {

using refbus::bench::Percentile;
using refbus::bench::ProbeFsyncMs;

constexpr size_t kValueBytes = 1024;

struct BatchResult {
  size_t batch = 0;
  size_t commits = 0;
  double seconds = 0;
  std::vector<double> commit_ms;
};

}  // namespace

int main(int argc, char** argv) {
  double seconds = 2;
  std::string parent;
  std::string mode = "default";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--seconds") {
      seconds = std::stod(argv[i + 1]);
    } else if (k == "--mode") {
      mode = argv[i + 1];
    } else if (k == "--dir") {
      parent = argv[i + 1];
    } else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (parent.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    parent = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
  }
  std::string tmpl = parent + "/refbus-lmdb-bench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::fprintf(stderr, "lmdb_commit_bench: cannot make a folder in %s\n", parent.c_str());
    return 1;
  }
  const std::string dir = tmpl;
  lmdb::EnvOptions options;
  options.map_size_bytes = size_t{8} << 30;
  options.max_dbs = 4;
  if (mode == "writemap") {
    options.env_flags = MDB_WRITEMAP;
  } else if (mode == "pipelined") {
    options.env_flags = MDB_NOMETASYNC;
  } else if (mode != "default") {
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  auto env = lmdb::Env::Open(dir + "/db", options);
  if (!env.ok()) {
    std::fprintf(stderr, "lmdb_commit_bench: %s\n", env.status().ToString().c_str());
    return 1;
  }
  auto dbi = (*env)->OpenDb("queue");
  if (!dbi.ok()) {
    std::fprintf(stderr, "lmdb_commit_bench: %s\n", dbi.status().ToString().c_str());
    return 1;
  }

  Bytes value(kValueBytes);
  for (size_t i = 0; i < value.size(); ++i) value[i] = static_cast<uint8_t>(i * 131 + 7);
  double fsync_before = ProbeFsyncMs(dir);
  uint64_t seq = 0;
  std::vector<BatchResult> results;
  for (size_t batch : {size_t{1}, size_t{16}, size_t{64}, size_t{256}}) {
    BatchResult r;
    r.batch = batch;
    auto start = SteadyClock::now();
    auto until = start + std::chrono::duration<double>(seconds);
    while (SteadyClock::now() < until) {
      auto t0 = SteadyClock::now();
      auto txn = (*env)->BeginWrite();
      if (!txn.ok()) {
        std::fprintf(stderr, "lmdb_commit_bench: %s\n", txn.status().ToString().c_str());
        return 1;
      }
      for (size_t i = 0; i < batch; ++i) {
        Bytes key;
        AppendU64BigEndian(key, ++seq);
        value[0] = static_cast<uint8_t>(seq);  // no two values alike
        if (auto s = txn->Put(*dbi, key, value); !s.ok()) {
          std::fprintf(stderr, "lmdb_commit_bench: %s\n", s.ToString().c_str());
          return 1;
        }
      }
      if (auto s = txn->Commit(); !s.ok()) {
        std::fprintf(stderr, "lmdb_commit_bench: %s\n", s.ToString().c_str());
        return 1;
      }
      r.commit_ms.push_back(
          std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count());
      ++r.commits;
    }
    r.seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
    results.push_back(std::move(r));
  }
  double fsync_after = ProbeFsyncMs(dir);

  std::printf("LMDB group commit (mode %s), %zu-byte values, sequential 8-byte keys, %s\n",
              mode.c_str(), kValueBytes, dir.c_str());
  std::printf("disk: 4 KiB write + fdatasync %.3f ms before, %.3f ms after\n", fsync_before,
              fsync_after);
  std::printf("RESULT lmdb fsync_before_ms=%.3f fsync_after_ms=%.3f\n", fsync_before, fsync_after);
  for (const auto& r : results) {
    double commits = static_cast<double>(r.commits) / r.seconds;
    double records = commits * static_cast<double>(r.batch);
    double p50 = Percentile(r.commit_ms, 0.50), p99 = Percentile(r.commit_ms, 0.99);
    std::printf(
        "  %4zu puts per commit: %8.0f commits/s %9.0f records/s   commit p50 %6.3f ms "
        "p99 %6.3f ms\n",
        r.batch, commits, records, p50, p99);
    std::printf(
        "RESULT lmdb b%zu_commits_s=%.0f b%zu_records_s=%.0f b%zu_p50_ms=%.3f "
        "b%zu_p99_ms=%.3f\n",
        r.batch, commits, r.batch, records, r.batch, p50, r.batch, p99);
  }
  env->reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
