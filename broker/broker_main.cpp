// refbus-broker: a regional broker. Thin over broker/server.h.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "broker/config.h"
#include "broker/server.h"
#include "broker/status.h"
#include "core/clock.h"
#include "core/log.h"
#include "keys/secret.h"

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
Exit codes: 0 clean stop, 1 configuration or start-up error, 2 usage error, 3 runtime failure.)";

}  // namespace

int main(int argc, char** argv) {
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
  // Signals are blocked while the server starts, then handled by setting flags.
  auto server = refbus::broker::Server::Create(*config);
  if (!server.ok()) {
    std::cerr << "refbus-broker: cannot start: " << server.status().ToString() << "\n";
    return 1;
  }
  g_server = server->get();
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  auto s = (*server)->Run();
  g_server = nullptr;
  if (!s.ok()) {
    std::cerr << "refbus-broker: " << s.ToString() << "\n";
    return 3;
  }
  return 0;
}
