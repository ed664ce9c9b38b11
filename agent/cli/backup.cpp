// refbus-agent backup, restore: a hot copy of the agent's stores and its checked restore
// (agent/backup.h).
#include <iostream>
#include <memory>
#include <string>

#include "agent/backup.h"
#include "agent/cli/commands.h"
#include "agent/daemon.h"
#include "core/clock.h"

namespace refbus::agent::cli {
namespace {

constexpr char kBackupFooter[] = R"(
Run as the user the agent runs as (or root). backup works beside a running daemon: each of
the stores (cases, linkage, transport) is copied as one consistent snapshot. It holds sealed
envelopes, case records and the agency's linkage entries and notices, never key files,
operator-keys/, the API token or an escrow's entries. restore needs data_dir/transport,
data_dir/cases and data_dir/linkage absent or empty with no daemon running, and checks the
backup (each file's SHA-256, the stores' start-up checks, the inbox, outbox, links and
matches counts) before anything is put in place.
Exit codes: 0 done, 1 refused (configuration, folder not empty, daemon running, a check
failed; nothing was changed), 2 usage error, 3 failed (I/O error, disk full).)";

int BackupExitCode(const Status& s) {
  return s.code() == Status::Code::kIoError || s.code() == Status::Code::kResourceExhausted ||
                 s.code() == Status::Code::kInternal
             ? 3
             : 1;
}

int RunBackup(const std::string& config_path, const std::string& dir) {
  const std::string who = "refbus-agent backup: ";
  auto config = agent::LoadAgentConfig(config_path);
  if (!config.ok()) {
    std::cerr << who << config.status().message() << "\n";
    return 1;
  }
  auto r = agent::BackupAgent(config->data_dir, config->id, dir);
  if (!r.ok()) {
    std::cerr << who << r.status().ToString() << "\n";
    return BackupExitCode(r.status());
  }
  std::cout << "backup: " << dir << "\n"
            << "agent: " << config->id << "\n";
  for (const auto& e : r->manifest.environments) {
    std::cout << "file " << e.file << ": " << e.bytes << " bytes, sha256 " << e.sha256
              << ", copied in " << e.copy_seconds << " s\n";
  }
  std::cout << "seconds: " << r->seconds << "\n"
            << "manifest sha256: " << r->manifest_sha256
            << " (keep it apart from the backup; restore prints it again)\n";
  return 0;
}

int RunRestore(const std::string& config_path, const std::string& dir) {
  const std::string who = "refbus-agent restore: ";
  auto config = agent::LoadAgentConfig(config_path);
  if (!config.ok()) {
    std::cerr << who << config.status().message() << "\n";
    return 1;
  }
  auto r = agent::RestoreAgent(config->data_dir, config->id, dir);
  if (!r.ok()) {
    std::cerr << who << r.status().ToString() << "\n"
              << who << "nothing was restored into " << config->data_dir << "\n";
    return BackupExitCode(r.status());
  }
  const auto& m = r->manifest;
  std::cout << "restored: " << dir << " -> " << config->data_dir << "\n"
            << "agent: " << m.id << "\n"
            << "backup taken: " << FormatUtc(m.created_ms) << " on "
            << (m.host.empty() ? "?" : m.host) << "\n";
  for (const auto& e : m.environments) {
    std::cout << "checked " << e.file << ": " << e.bytes << " bytes, SHA-256 as in the manifest\n";
  }
  std::cout << "start-up checks: passed (transport and case stores open)\n"
            << "inbox: " << r->counters.inbox_messages << " (as in the manifest)\n"
            << "outbox: " << r->counters.outbox_messages
            << " (as in the manifest; resubmitted when the daemon starts)\n"
            << "cases: " << r->cases << "\n";
  if (r->linkage) {
    std::cout << "linkage: " << r->links << " entries sent, " << r->matches
              << " notices (as in the manifest; an escrow's entries are never in a backup)\n";
  }
  if (r->owner_uid >= 0) std::cout << "owner: uid " << r->owner_uid << "\n";
  std::cout << "manifest sha256: " << r->manifest_sha256 << "\n"
            << "the daemon makes a new API token at start: give it to the case-management "
               "software\n";
  return 0;
}

struct Args {
  std::string config, dir;
};

}  // namespace

void AddBackup(CLI::App& app, Commands& c) {
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "backup", "a hot copy of the agent's stores (cases, linkage, transport) with a manifest");
  cmd->add_option("-c,--config", a->config, "configuration file (TOML; agent/daemon.h)")
      ->required();
  cmd->add_option("--out", a->dir, "a new (or empty) folder for the backup")->required();
  cmd->footer(kBackupFooter);
  c.On(cmd, [a] { return RunBackup(a->config, a->dir); });
}

void AddRestore(CLI::App& app, Commands& c) {
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "restore", "put a checked backup into the agent's data_dir (transport, cases empty)");
  cmd->add_option("-c,--config", a->config, "configuration file (TOML)")->required();
  cmd->add_option("--from", a->dir, "the backup folder")->required();
  cmd->footer(kBackupFooter);
  c.On(cmd, [a] { return RunRestore(a->config, a->dir); });
}

}  // namespace refbus::agent::cli
