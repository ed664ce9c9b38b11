// refbus-broker: a regional broker. Thin over broker/server.h.
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <string>
#include <string_view>

#include "broker/backup.h"
#include "broker/config.h"
#include "broker/metrics.h"
#include "broker/server.h"
#include "broker/status.h"
#include "core/clock.h"
#include "core/log.h"
#include "keys/secret.h"
#include "linkage/evaluator_key.h"
#include "linkage/oprf.h"

namespace {

refbus::broker::Server* g_server = nullptr;

void OnSignal(int sig) {
  if (g_server == nullptr) return;
  if (sig == SIGHUP) {
    g_server->RequestReload();
  } else {
    g_server->RequestStop();
  }
}

constexpr char kFooter[] = R"(
Signals: SIGTERM/SIGINT stop cleanly (finish the commit in progress, exit 0);
SIGHUP reloads the directory (it is also reloaded when its file changes).
Exit codes: 0 clean stop, 1 configuration or start-up error, 2 usage error, 3 runtime failure.
Backup and restore: refbus-broker backup -c FILE --out DIR | restore -c FILE --from DIR
(see refbus-broker backup --help).)";

// ---- refbus-broker backup | restore (broker/backup.h) ----------------------------------
// Commands of their own, dispatched before the daemon's command line is parsed.

constexpr char kBackupFooter[] = R"(
Run as the user the broker runs as (or root). backup works beside a running broker: the
copy is one consistent snapshot. restore needs a data_dir that is absent or empty with no
broker running on it, and checks the backup (each file's SHA-256, the broker's start-up
checks, the audit log's size and root) before anything is put in place.
Exit codes: 0 done, 1 refused (configuration, folder not empty, broker running, a check
failed; nothing was changed), 2 usage error, 3 failed (I/O error, disk full).)";

int BackupExitCode(const refbus::Status& s) {
  using Code = refbus::Status::Code;
  return s.code() == Code::kIoError || s.code() == Code::kResourceExhausted ||
                 s.code() == Code::kInternal
             ? 3
             : 1;
}

int RunBackupCommand(int argc, char** argv) {
  const std::string command = argv[1];
  const bool backup = command == "backup";
  CLI::App app{backup ? "refbus-broker backup: a hot copy of the broker's store, with a manifest"
                      : "refbus-broker restore: a backup checked and put into an empty data_dir"};
  app.name("refbus-broker " + command);
  app.footer(kBackupFooter);
  std::string config_path, dir, log_level = "warn";
  app.add_option("-c,--config", config_path, "Configuration file (TOML)")->required();
  if (backup) {
    app.add_option("--out", dir, "a new (or empty) folder for the backup")->required();
  } else {
    app.add_option("--from", dir, "the backup folder")->required();
  }
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  try {
    app.parse(argc - 1, argv + 1);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  const std::string who = "refbus-broker " + command + ": ";
  if (!refbus::keys::InitSodium().ok()) {
    std::cerr << who << "libsodium failed to initialize\n";
    return 1;
  }
  if (auto log = refbus::InitLogging("refbus-broker", refbus::LogFormat::kText, log_level);
      !log.ok()) {
    std::cerr << who << log.ToString() << "\n";
    return 2;
  }
  auto config = refbus::broker::LoadConfig(config_path);
  if (!config.ok()) {
    std::cerr << who << config.status().message() << "\n";
    return 1;
  }
  if (backup) {
    auto r = refbus::broker::BackupBroker(*config, dir);
    if (!r.ok()) {
      std::cerr << who << r.status().ToString() << "\n";
      return BackupExitCode(r.status());
    }
    std::cout << "backup: " << dir << "\n"
              << "broker: " << config->id << "\n";
    for (const auto& e : r->manifest.environments) {
      std::cout << "file " << e.file << ": " << e.bytes << " bytes, sha256 " << e.sha256
                << ", copied in " << e.copy_seconds << " s\n";
    }
    std::cout << "audit size: " << r->audit_size << "\n"
              << "audit root: " << (r->audit_root.empty() ? "-" : r->audit_root) << "\n"
              << "seconds: " << r->seconds << "\n"
              << "manifest sha256: " << r->manifest_sha256
              << " (keep it apart from the backup; restore prints it again)\n";
    return 0;
  }
  auto r = refbus::broker::RestoreBroker(*config, dir);
  if (!r.ok()) {
    std::cerr << who << r.status().ToString() << "\n"
              << who << "nothing was restored into " << config->data_dir << "\n";
    return BackupExitCode(r.status());
  }
  const auto& m = r->manifest;
  std::cout << "restored: " << dir << " -> " << config->data_dir << "\n"
            << "broker: " << m.id << "\n"
            << "backup taken: " << refbus::FormatUtc(m.created_ms) << " on "
            << (m.host.empty() ? "?" : m.host) << "\n";
  for (const auto& e : m.environments) {
    std::cout << "checked " << e.file << ": " << e.bytes << " bytes, SHA-256 as in the manifest\n";
  }
  std::cout << "start-up checks: passed (store format, owner, audit tree frontier)\n"
            << "audit size: " << r->audit_size << " (as in the manifest)\n"
            << "audit root: " << r->audit_root
            << (r->root_in_manifest ? " (as in the manifest)" : " (the manifest has none)") << "\n";
  if (r->checkpoint_size) {
    std::cout << "latest checkpoint: size " << *r->checkpoint_size << ", consistent with the log\n";
  } else {
    std::cout << "latest checkpoint: none stored\n";
  }
  std::cout << "queued: " << r->queued << " entries in " << r->mailboxes << " mailboxes\n";
  if (r->owner_uid >= 0) std::cout << "owner: uid " << r->owner_uid << "\n";
  std::cout << "manifest sha256: " << r->manifest_sha256 << "\n";
  return 0;
}

// ---- refbus-broker linkage-key (PROTOCOL.md 13.4) ------------------------------------
// Makes a linkage evaluator's VOPRF key file (0600) and prints its public key for the
// broker's directory listing. Here and not in refbus-keys: keys/ is below linkage/ in the
// layer order, and the evaluator is a broker.
int RunLinkageKeyCommand(int argc, char** argv) {
  CLI::App app{"refbus-broker linkage-key: a new linkage evaluator key file (VOPRF, 0600)"};
  std::string out;
  app.add_option("--out", out, "the key file to create (must not exist)")->required();
  try {
    app.parse(argc - 1, argv + 1);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!refbus::keys::InitSodium().ok()) {
    std::cerr << "refbus-broker linkage-key: libsodium failed to initialize\n";
    return 1;
  }
  std::error_code ec;
  if (std::filesystem::exists(out, ec) || ec) {
    std::cerr << "refbus-broker linkage-key: " << out
              << " exists (or cannot be checked); a new key would start a new pseudonym "
                 "epoch: remove it first if that is what you want\n";
    return 1;
  }
  auto key = refbus::linkage::oprf::ServerKey::Generate(refbus::linkage::oprf::Mode::kVoprf);
  refbus::Status s = key.ok() ? refbus::linkage::SaveEvaluatorKey(*key, out) : key.status();
  if (!s.ok()) {
    std::cerr << "refbus-broker linkage-key: " << s.ToString() << "\n";
    return 1;
  }
  const auto& pk = key->public_key();
  std::cout << "linkage key written to " << out << " (mode 0600)\n"
            << "public key (the directory's linkage_key for this broker): "
            << refbus::HexEncode(refbus::ByteView(pk.data(), pk.size())) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "linkage-key") {
    return RunLinkageKeyCommand(argc, argv);
  }
  if (argc > 1 &&
      (std::string_view(argv[1]) == "backup" || std::string_view(argv[1]) == "restore")) {
    return RunBackupCommand(argc, argv);
  }
  CLI::App app{"refbus-broker: durable, authenticated store-and-forward for one region"};
  app.footer(kFooter);
  std::string config_path, log_level = "info", log_format = "text";
  bool check_only = false;
  bool status = false;
  bool status_json = false;
  app.add_option("-c,--config", config_path, "Configuration file (TOML)")->required();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  app.add_option("--log-format", log_format, "text or json")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_flag("--check-config", check_only, "Validate the configuration and exit");
  app.add_flag("--status", status,
               "Print the running broker's status (links, backlog, counters) and exit");
  app.add_flag("--json", status_json, "With --status: print the status as JSON");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!refbus::keys::InitSodium().ok()) {
    std::cerr << "refbus-broker: libsodium failed to initialize\n";
    return 1;
  }
  auto log = refbus::InitLogging(
      "refbus-broker", log_format == "json" ? refbus::LogFormat::kJson : refbus::LogFormat::kText,
      log_level);
  if (!log.ok()) {
    std::cerr << "refbus-broker: " << log.ToString() << "\n";
    return 2;
  }
  auto config = refbus::broker::LoadConfig(config_path);
  if (!config.ok()) {
    std::cerr << "refbus-broker: " << config.status().message() << "\n";
    return 1;
  }
  if (status) {
    auto now = refbus::SystemClock::Get().NowMillis();
    auto s = refbus::broker::PrintStatusFile(config->status_file, status_json, now,
                                             /*stale_ms=*/10000, std::cout);
    if (!s.ok()) {
      std::cerr << "refbus-broker: " << s.ToString() << "\n";
      return 1;
    }
    return 0;
  }
  if (check_only) {
    std::cout << "configuration " << config_path << " is valid\n";
    return 0;
  }
  // SIGTERM, SIGINT and SIGHUP are blocked while the server starts, so every thread it
  // makes (the writer, ZeroMQ's, the metrics listener) inherits the block; then only this
  // thread takes them, by setting flags. One that came during start-up is taken then.
  sigset_t handled;
  sigemptyset(&handled);
  sigaddset(&handled, SIGTERM);
  sigaddset(&handled, SIGINT);
  sigaddset(&handled, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &handled, nullptr);
  auto server = refbus::broker::Server::Create(*config);
  if (!server.ok()) {
    std::cerr << "refbus-broker: cannot start: " << server.status().ToString() << "\n";
    return 1;
  }
  // [metrics]: answers from the status the loop refreshes; stopped before the server goes.
  std::unique_ptr<refbus::broker::MetricsServer> metrics;
  if (!config->metrics_bind.empty()) {
    refbus::broker::Server* srv = server->get();
    auto m = refbus::broker::MetricsServer::Start({config->metrics_bind, config->metrics_url_file},
                                                  [srv] { return srv->Snapshot(); });
    if (!m.ok()) {
      std::cerr << "refbus-broker: cannot start: " << m.status().ToString() << "\n";
      return 1;
    }
    metrics = std::move(*m);
  }
  g_server = server->get();
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  pthread_sigmask(SIG_UNBLOCK, &handled, nullptr);
  auto s = (*server)->Run();
  g_server = nullptr;
  if (metrics) metrics->Stop();
  if (!s.ok()) {
    std::cerr << "refbus-broker: " << s.ToString() << "\n";
    return 3;
  }
  return 0;
}
