// Small helpers shared by the end-to-end, scaling, backlog and start-up benchmarks:
// command-line flags, percentiles, the disk's flush latency, and a process's memory from
// /proc/PID/status.
//
// Benchmarks measure and print; nothing here asserts. Header-only, no state.
//
// Thread safety: pure functions; Flags is a value read by one thread.
#ifndef REFBUS_TESTS_BENCH_BENCH_UTIL_H_
#define REFBUS_TESTS_BENCH_BENCH_UTIL_H_

#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace refbus::bench {

using SteadyClock = std::chrono::steady_clock;

inline double SecondsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

inline int64_t SteadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch())
      .count();
}

// "--name value" pairs; Get* return the default when the flag is absent. Unknown flags
// are reported by Unknown() so a typo does not silently run the default.
class Flags {
 public:
  Flags(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string k = argv[i];
      if (k.rfind("--", 0) != 0) {
        bad_.push_back(k);
        continue;
      }
      if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
        values_[k.substr(2)] = argv[++i];
      } else {
        values_[k.substr(2)] = "1";  // a switch
      }
    }
  }
  size_t GetSize(const std::string& name, size_t def) {
    used_.push_back(name);
    auto it = values_.find(name);
    return it == values_.end() ? def : std::strtoull(it->second.c_str(), nullptr, 10);
  }
  std::string GetString(const std::string& name, std::string def) {
    used_.push_back(name);
    auto it = values_.find(name);
    return it == values_.end() ? def : it->second;
  }
  std::vector<size_t> GetList(const std::string& name, const std::string& def) {
    std::vector<size_t> out;
    std::stringstream ss(GetString(name, def));
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (!item.empty()) out.push_back(std::strtoull(item.c_str(), nullptr, 10));
    }
    return out;
  }
  // Flags given but never asked for, and stray arguments.
  std::vector<std::string> Unknown() const {
    std::vector<std::string> out = bad_;
    for (const auto& [k, v] : values_) {
      if (std::find(used_.begin(), used_.end(), k) == used_.end()) out.push_back("--" + k);
    }
    return out;
  }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> used_;
  std::vector<std::string> bad_;
};

// The p-quantile (0..1) by nearest rank; v is sorted in place. 0 if empty.
inline double Quantile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// The p-quantile (0..1) rounded down to a rank (broker_bench, lmdb_commit_bench and
// peer_bench report with it; Quantile above rounds to the nearest rank). 0 if empty.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

// The disk's flush latency in ms right now (a 4 KiB write + fdatasync, 200 times) in dir:
// it bounds every durable commit, and on the VM it varies between runs by more than 10x,
// so the benchmarks print it next to their results. -1 if dir is not writable.
inline double ProbeFsyncMs(const std::string& dir) {
  std::string path = dir + "/fsync-probe";
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  if (fd < 0) return -1;
  char block[4096];
  std::memset(block, 1, sizeof(block));
  auto start = SteadyClock::now();
  for (int i = 0; i < 200; ++i) {
    if (::pwrite(fd, block, sizeof(block), (i % 16) * 4096) < 0 || ::fdatasync(fd) != 0) break;
  }
  double ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count() / 200;
  ::close(fd);
  ::unlink(path.c_str());
  return ms;
}

// A process's memory, in KiB, from /proc/PID/status (all 0 if it cannot be read).
// vm_rss = rss_anon + rss_file + rss_shmem; LMDB's read-only map shows up in rss_file,
// the heap in rss_anon.
struct ProcMemory {
  size_t vm_rss_kb = 0;
  size_t vm_hwm_kb = 0;
  size_t rss_anon_kb = 0;
  size_t rss_file_kb = 0;
};

inline ProcMemory ReadProcMemory(pid_t pid) {
  ProcMemory m;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    auto field = [&](const char* name, size_t* out) {
      size_t n = std::char_traits<char>::length(name);
      if (line.compare(0, n, name) == 0) *out = std::strtoull(line.c_str() + n, nullptr, 10);
    };
    field("VmRSS:", &m.vm_rss_kb);
    field("VmHWM:", &m.vm_hwm_kb);
    field("RssAnon:", &m.rss_anon_kb);
    field("RssFile:", &m.rss_file_kb);
  }
  return m;
}

inline double MiB(size_t kb) { return static_cast<double>(kb) / 1024.0; }

// The CPU time (user + system) in seconds from a /proc stat file (a process's or one
// thread's); -1 if it cannot be read. Fields 14 and 15 follow the parenthesised name.
inline double StatCpuSeconds(const std::string& stat_path) {
  std::ifstream in(stat_path);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = all.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(all.substr(close + 2));
  std::string field;
  unsigned long long ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::strtoull(field.c_str(), nullptr, 10);
  }
  return static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// A process's CPU time so far (all its threads), in seconds; -1 if it cannot be read.
inline double ProcessCpuSeconds(pid_t pid) {
  return StatCpuSeconds("/proc/" + std::to_string(pid) + "/stat");
}

// The CPU time so far of each thread of a process, summed by thread name (/proc/PID/task/
// TID/comm and stat), in seconds: e.g. {"refbus-broker": 1.2, "rb-writer": 2.3,
// "ZMQbg/IO/0": 0.8}. Empty if the process is gone.
inline std::map<std::string, double> ThreadCpuSeconds(pid_t pid) {
  std::map<std::string, double> out;
  std::error_code ec;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& t : std::filesystem::directory_iterator(dir, ec)) {
    std::string name;
    std::getline(std::ifstream(t.path() / "comm"), name);
    const double sec = StatCpuSeconds(t.path() / "stat");
    if (!name.empty() && sec >= 0) out[name] += sec;
  }
  return out;
}

}  // namespace refbus::bench

#endif  // REFBUS_TESTS_BENCH_BENCH_UTIL_H_
