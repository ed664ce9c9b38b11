// refbus-agent: an agency's agent. The daemon and the command-line client of its local API.
//
//   refbus-agent run -c agent.toml   the daemon: keys, stores, the session with the home
//                                    broker, the workflows, and the local HTTP API
//                                    (agent/daemon.h, agent/API.md)
//   refbus-agent backup -c agent.toml --out DIR
//   refbus-agent restore -c agent.toml --from DIR
//                                    a hot copy of the daemon's stores with a manifest, and
//                                    its checked restore into an empty data_dir
//                                    (agent/backup.h)
//   refbus-agent operator add|list|disable|enable|role|passwd -c agent.toml
//                                    operator accounts (agent/operators.h)
//   refbus-agent consent | consents | send-referral | inbox | open | accept | decline |
//                state | referrals | handoff | ack-handoff | request-deletion |
//                deletion-status | deletions | revoke-consent | close | set-local-case |
//                case | status
//                                    commands for people, each one call to the daemon's API
//                                    (--json prints the reply as it came)
//
// Each subcommand is one function in agent/cli/ (agent/cli/commands.h lists them); this
// file builds the app from them, in the order --help lists them, and runs the one parsed.
// The send/receive load generator for tests and benchmarks is tests/tools/loadgen
// (refbus-loadgen), not part of this program.
#include <CLI/CLI.hpp>
#include <csignal>
#include <exception>
#include <iostream>
#include <string>

#include "agent/cli/commands.h"
#include "core/log.h"
#include "keys/secret.h"

namespace {

using namespace refbus;  // NOLINT(google-build-using-namespace)

// The commands for people, in the order --help lists them.
void AddApiCommands(CLI::App& app, agent::cli::Commands& c) {
  namespace cli = agent::cli;
  cli::AddConsent(app, c);
  cli::AddConsents(app, c);
  cli::AddSendReferral(app, c);
  cli::AddHandoff(app, c);
  cli::AddAckHandoff(app, c);
  cli::AddReferrals(app, c);
  cli::AddInbox(app, c);
  cli::AddDeletions(app, c);
  cli::AddOpen(app, c);
  cli::AddAccept(app, c);
  cli::AddDecline(app, c);
  cli::AddState(app, c);
  cli::AddRequestDeletion(app, c);
  cli::AddDeletionStatus(app, c);
  cli::AddRevokeConsent(app, c);
  cli::AddClose(app, c);
  cli::AddSetLocalCase(app, c);
  cli::AddCase(app, c);
  cli::AddLink(app, c);
  cli::AddStatus(app, c);
}

int Main(int argc, char** argv) {
  if (!keys::InitSodium().ok()) {
    std::cerr << "refbus-agent: libsodium failed to initialize\n";
    return 1;
  }
  CLI::App app{"refbus-agent: an agency's refbus agent (daemon, API commands)"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical, off")
      ->capture_default_str();

  agent::cli::Commands commands;
  agent::cli::AddRun(app, commands);
  agent::cli::AddBackup(app, commands);
  agent::cli::AddRestore(app, commands);
  agent::cli::AddOperator(app, commands);
  AddApiCommands(app, commands);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (Status s = InitLogging("refbus-agent", LogFormat::kText, log_level); !s.ok()) {
    std::cerr << "refbus-agent: " << s.ToString() << "\n";
    return 2;
  }
  // A closed connection to the API must be an error return, never a fatal signal.
  std::signal(SIGPIPE, SIG_IGN);
  for (const auto& [cmd, handler] : commands.handlers) {
    if (cmd->parsed()) return handler();
  }
  return agent::cli::kExitUsage;  // not reached: require_subcommand(1)
}

}  // namespace

int main(int argc, char** argv) {
  // Library code returns Status; what could still throw here (allocation, CLI11 setup) is
  // reported instead of terminating without a word.
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "refbus-agent: " << e.what() << "\n";
    return 1;
  }
}
