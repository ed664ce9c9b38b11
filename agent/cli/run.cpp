// refbus-agent run: the daemon (agent/daemon.h), with its signals.
#include <csignal>
#include <iostream>
#include <memory>
#include <string>

#include "agent/cli/commands.h"
#include "agent/daemon.h"

namespace refbus::agent::cli {
namespace {

constexpr char kRunFooter[] = R"(
Signals: SIGTERM/SIGINT stop cleanly (requests still waiting are answered 503; the engine
waits up to 2 s for answers to what is in flight), then exit 0. SIGHUP reloads the directory
(it is also reloaded when its file changes).
Exit codes: 0 clean stop, 1 configuration or start-up error, 2 usage error, 3 runtime
failure.)";

volatile std::sig_atomic_t g_stop = 0;
volatile std::sig_atomic_t g_reload = 0;

void OnSignal(int) { g_stop = 1; }

void OnReload(int) { g_reload = 1; }

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: the poll wait returns at once (EINTR)
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

int RunDaemonCommand(const std::string& config_path, bool check_only) {
  auto config = agent::LoadAgentConfig(config_path);
  if (!config.ok()) {
    std::cerr << "refbus-agent run: " << config.status().message() << "\n";
    return 1;
  }
  if (check_only) {
    std::cout << "configuration " << config_path << " is valid\n";
    return 0;
  }
  struct sigaction sa {};
  sa.sa_handler = OnReload;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGHUP, &sa, nullptr);
  Status s = agent::RunDaemon(*config, {&g_stop, &g_reload});
  if (!s.ok()) {
    std::cerr << "refbus-agent run: " << s.ToString() << "\n";
    return s.message().rfind("cannot start", 0) == 0 ? 1 : 3;
  }
  return 0;
}

}  // namespace

void AddRun(CLI::App& app, Commands& c) {
  struct Args {
    std::string config;
    bool check_only = false;
  };
  auto a = std::make_shared<Args>();
  auto* run = app.add_subcommand("run", "the agency daemon: broker session, workflows, local API");
  run->add_option("-c,--config", a->config, "configuration file (TOML; agent/daemon.h)")
      ->required();
  run->add_flag("--check-config", a->check_only, "validate the configuration and exit");
  run->footer(kRunFooter);
  c.On(run, [a] {
    InstallSignalHandlers();
    return RunDaemonCommand(a->config, a->check_only);
  });
}

}  // namespace refbus::agent::cli
