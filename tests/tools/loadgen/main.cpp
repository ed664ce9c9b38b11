// refbus-loadgen: the send/receive load generator of the integration tests and benchmarks
// (loadgen.h). A test tool: built with the tests or the benchmarks, never installed or
// packaged. It was refbus-agent send | receive; the flags, the summary lines on stdout and
// the exit codes are those.
//
//   refbus-loadgen send --dir PARTY --data DIR --broker-endpoint EP --to IDS --count N
//   refbus-loadgen receive --dir PARTY --data DIR --broker-endpoint EP [--expect N]
#include <CLI/CLI.hpp>
#include <csignal>
#include <exception>
#include <iostream>
#include <string>

#include "core/log.h"
#include "keys/secret.h"
#include "tests/tools/loadgen/loadgen.h"

namespace {

using namespace refbus;  // NOLINT(google-build-using-namespace)

constexpr char kFooter[] = R"(
Signals: SIGTERM/SIGINT stop cleanly (send: stop sending, wait up to 2 s for answers to what
is in flight; receive: store and acknowledge what has arrived), then exit 0. Unanswered
envelopes stay in the outbox in --data and are resubmitted by the next run.
Exit codes: 0 done (send: every envelope acknowledged or refused for good; receive: --expect
reached, or idle without --expect), 1 error or --timeout, 2 usage error.)";

CLI::App* AddSend(CLI::App& app, loadgen::CommonOptions& common, loadgen::SendOptions& so) {
  auto* send = app.add_subcommand("send", "test harness: seal N random envelopes and submit them");
  send->footer(kFooter);
  loadgen::AddCommon(send, common);
  send->add_option("--to", so.to, "recipient agency ids, comma-separated")->required();
  send->add_option("--count", so.count, "number of envelopes")->required();
  send->add_option("--size", so.size, "content bytes per envelope")
      ->capture_default_str()
      ->check(CLI::Range(size_t{0}, size_t{3} << 20));
  send->add_option("--window", so.window, "submissions in flight at most")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{100000}));
  send->add_option("--acked-log", so.acked_log, "append each acknowledged message id (hex)");
  return send;
}

CLI::App* AddReceive(CLI::App& app, loadgen::CommonOptions& common, loadgen::ReceiveOptions& ro) {
  auto* recv =
      app.add_subcommand("receive", "test harness: store deliveries and log each new message once");
  recv->footer(kFooter);
  loadgen::AddCommon(recv, common);
  recv->add_option("--expect", ro.expect, "stop once this many distinct messages are stored");
  recv->add_option("--received-log", ro.received_log, "append each new message id (hex), once");
  recv->add_option("--idle-exit", ro.idle_exit_s, "stop after this many seconds without deliveries")
      ->check(CLI::NonNegativeNumber);
  return recv;
}

int Main(int argc, char** argv) {
  if (!keys::InitSodium().ok()) {
    std::cerr << "refbus-loadgen: libsodium failed to initialize\n";
    return 1;
  }
  CLI::App app{"refbus-loadgen: the send/receive load generator of refbus's tests and benchmarks"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical, off")
      ->capture_default_str();
  loadgen::CommonOptions send_common, recv_common;
  loadgen::SendOptions so;
  loadgen::ReceiveOptions ro;
  auto* send = AddSend(app, send_common, so);
  AddReceive(app, recv_common, ro);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (Status s = InitLogging("refbus-loadgen", LogFormat::kText, log_level); !s.ok()) {
    std::cerr << "refbus-loadgen: " << s.ToString() << "\n";
    return 2;
  }
  // A broker connection closed under a write must be an error return, never a fatal signal.
  std::signal(SIGPIPE, SIG_IGN);
  loadgen::InstallSignalHandlers();
  if (send->parsed()) return loadgen::RunSend(send_common, so);
  return loadgen::RunReceive(recv_common, ro);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "refbus-loadgen: " << e.what() << "\n";
    return 1;
  }
}
