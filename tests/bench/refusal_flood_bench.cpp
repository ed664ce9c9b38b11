// The flood of issue 17 item 2: one listed agency sends random frames (200 bytes by
// default: they never decode) to its broker as fast as the socket takes them, for S seconds,
// and reads whatever Nacks come back. Measures what that costs everyone: audit entries added,
// and the growth of the broker's store (LMDB pages in use, and the data file's blocks). The
// audit size is read from the store itself after a clean stop (SIGTERM: the broker writes its
// pending aggregate entries first).
//
//   refusal_flood_bench [--seconds S] [--frame-bytes B] [--broker PATH]
//
// --broker picks the refbus-broker executable (default: the one of this build), so the same
// bench measures another build (main before the fix) without rebuilding. Prints text and
// RESULT refusal_flood ...
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "broker/store.h"
#include "keys/crypto.h"
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

// storage_used_bytes from the broker's status file (0 if unreadable).
uint64_t UsedBytes(const std::string& status_file) {
  std::ifstream in(status_file);
  auto j = nlohmann::json::parse(in, nullptr, false);
  return j.is_object() ? j.value("storage_used_bytes", uint64_t{0}) : 0;
}

uint64_t AuditSize(const std::string& data_dir, const std::string& broker_id) {
  broker::StoreOptions o;
  o.dir = data_dir;
  o.broker_id = broker_id;
  auto store = broker::Store::Open(o);
  if (!store.ok()) {
    std::fprintf(stderr, "cannot open %s: %s\n", data_dir.c_str(),
                 store.status().ToString().c_str());
    return 0;
  }
  auto n = (*store)->AuditSize();
  return n.ok() ? *n : 0;
}

std::string WriteConfig(const testing::Federation& fed, const std::string& id,
                        const std::string& data) {
  const std::string party = fed.Dir(id);
  const std::string cfg = data + ".toml";
  std::ofstream out(cfg);
  out << "[broker]\nid = \"" << id << "\"\nbind = \"tcp://127.0.0.1:*\"\n"
      << "data_dir = \"" << data << "\"\nkey_file = \"" << party << "/identity.key\"\n"
      << "directory = \"" << party << "/directory\"\nanchor = \"" << party
      << "/authority.pub\"\ntrust_state = \"" << data << ".trust-state\"\n"
      << "endpoint_file = \"" << data << ".endpoint\"\nstatus_file = \"" << data
      << ".status.json\"\n";
  return cfg;
}

// Waits for the broker's endpoint file; empty if it did not come.
std::string WaitEndpoint(const std::string& path, testing::Process& p) {
  for (int i = 0; i < 300; ++i) {
    std::ifstream in(path);
    std::string line;
    if (in && std::getline(in, line) && !line.empty()) return line;
    if (p.Wait(0) >= 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  bench::Flags flags(argc, argv);
  const size_t seconds = flags.GetSize("seconds", 10);
  const size_t frame_bytes = flags.GetSize("frame-bytes", 200);
  const std::string broker_bin = flags.GetString("broker", testing::BinDir() + "/refbus-broker");
  if (!flags.Unknown().empty() || frame_bytes == 0) {
    std::fprintf(stderr, "refusal_flood_bench: bad or unknown arguments\n");
    return 2;
  }
  if (!keys::InitSodium().ok()) return 1;
  const std::string root = testing::MakeTempDir("refbus-flood-bench");
  testing::Federation fed;
  if (!fed.Create(root, {"flood-broker"},
                  {{"flood-police", schema::AgencyType::kPoliceUnit, "flood-broker"},
                   {"flood-wee", schema::AgencyType::kWeeCenter, "flood-broker"}})) {
    return 1;
  }
  const std::string data = root + "/flood-data";
  const std::string cfg = WriteConfig(fed, "flood-broker", data);
  testing::Process broker;
  if (!broker.Start({broker_bin, "-c", cfg}, data + ".log")) return 1;
  const std::string endpoint = WaitEndpoint(data + ".endpoint", broker);
  if (endpoint.empty()) {
    std::fprintf(stderr, "%s did not start (log in %s.log)\n", broker_bin.c_str(), data.c_str());
    return 1;
  }
  const keys::Identity police = fed.LoadIdentity("flood-police");
  testing::RawClient c(police, fed.directory().Find("flood-broker")->ActiveKeys()->transport_key,
                       endpoint);
  if (!c.Hello("flood-police")) return 1;
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // a status file is written
  const uint64_t used_before = UsedBytes(data + ".status.json");
  const double file_before = FileMiB(data + "/data.mdb");

  size_t sent = 0, nacks = 0;
  const auto t = SteadyClock::now();
  while (bench::SecondsSince(t) < static_cast<double>(seconds)) {
    for (int i = 0; i < 256; ++i, ++sent) c.SendRaw(keys::RandomBytes(frame_bytes));
    while (auto r = c.Receive(0)) nacks += r->type == schema::Frame::Type::kNack ? 1 : 0;
  }
  const double flood_s = bench::SecondsSince(t);
  while (auto r = c.Receive(500)) nacks += r->type == schema::Frame::Type::kNack ? 1 : 0;
  broker.Signal(SIGTERM);
  const int exit_code = broker.Wait(120000);
  const uint64_t used_after = UsedBytes(data + ".status.json");  // written at the stop
  const double file_after = FileMiB(data + "/data.mdb");
  const uint64_t entries = AuditSize(data, "flood-broker");

  std::printf(
      "%s: %zu frames of %zu bytes in %.1f s, %zu Nacks read back\n"
      "audit log after the stop: %llu entries; LMDB pages in use %.1f -> %.1f MiB "
      "(growth %.1f MiB); data.mdb %.1f -> %.1f MiB\n",
      broker_bin.c_str(), sent, frame_bytes, flood_s, nacks,
      static_cast<unsigned long long>(entries), static_cast<double>(used_before) / (1 << 20),
      static_cast<double>(used_after) / (1 << 20),
      (static_cast<double>(used_after) - static_cast<double>(used_before)) / (1 << 20), file_before,
      file_after);
  std::printf(
      "RESULT refusal_flood seconds=%.1f frame_bytes=%zu sent=%zu nacks=%zu audit_entries=%llu "
      "used_growth_mb=%.1f file_mb_before=%.1f file_mb_after=%.1f broker_exit=%d\n",
      flood_s, frame_bytes, sent, nacks, static_cast<unsigned long long>(entries),
      (static_cast<double>(used_after) - static_cast<double>(used_before)) / (1 << 20), file_before,
      file_after, exit_code);
  testing::RemoveTree(root);
  return exit_code == 0 ? 0 : 1;
}
