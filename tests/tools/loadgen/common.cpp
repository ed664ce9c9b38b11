// refbus-loadgen: what send and receive share (common.h).
#include "tests/tools/loadgen/common.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <iostream>
#include <optional>
#include <utility>

#include "keys/ceremony.h"
#include "keys/secret.h"

namespace refbus::loadgen {

volatile std::sig_atomic_t g_stop = 0;

namespace {
void OnSignal(int) { g_stop = 1; }
}  // namespace

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: the poll wait returns at once (EINTR)
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

UnixMillis Now() { return SystemClock::Get().NowMillis(); }

std::string ErrnoText(int err) {
  char buf[256];
  return strerror_r(err, buf, sizeof(buf));  // GNU strerror_r: returns the text
}

int Fail(std::string_view command, const Status& s) {
  std::cerr << "refbus-loadgen " << command << ": " << s.ToString() << "\n";
  return 1;
}

Result<Party> LoadParty(const CommonOptions& o, UnixMillis now) {
  std::optional<keys::SecretBuffer> passphrase;
  if (!o.passphrase_file.empty()) {
    REFBUS_ASSIGN_OR_RETURN(passphrase, keys::ReadPassphraseFile(o.passphrase_file));
  }
  REFBUS_ASSIGN_OR_RETURN(keys::Identity identity,
                          keys::LoadIdentity(keys::JoinPath(o.party_dir, keys::kIdentityFile),
                                             passphrase ? &*passphrase : nullptr));
  auto verified = keys::AcceptDirectoryInFolder(o.party_dir, "", now);
  if (!verified.ok()) return verified.status().WithContext("directory in " + o.party_dir);
  if (verified->in_grace) {
    spdlog::warn(
        "the directory (serial {}) has EXPIRED and is accepted only within the grace period: "
        "ask the authority for a new one",
        verified->signed_directory.directory.serial);
  }
  return Party{std::move(identity), std::move(verified->signed_directory.directory)};
}

double Seconds(SteadyClock::time_point since) {
  return std::chrono::duration<double>(SteadyClock::now() - since).count();
}

agent::ClientOptions ClientOptionsFrom(const CommonOptions& o, size_t window) {
  agent::ClientOptions co;
  co.window = window;
  co.submit_timeout_ms = o.submit_timeout_ms;
  return co;
}

void AddCommon(CLI::App* cmd, CommonOptions& o) {
  cmd->add_option("--dir", o.party_dir, "party folder (identity.key, authority.pub, directory)")
      ->required();
  cmd->add_option("--data", o.data_dir, "agent data directory (LMDB outbox and inbox)")->required();
  cmd->add_option("--broker-endpoint", o.endpoint,
                  "home broker endpoint, e.g. tcp://127.0.0.1:7001")
      ->required();
  cmd->add_option("--passphrase-file", o.passphrase_file, "passphrase of identity.key (0600 file)");
  cmd->add_option("--timeout", o.timeout_s, "give up after this many seconds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--map-size-mb", o.map_size_mb, "largest size of the LMDB store")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--submit-timeout-ms", o.submit_timeout_ms,
                  "resend a submission not answered within this")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
}

}  // namespace refbus::loadgen
