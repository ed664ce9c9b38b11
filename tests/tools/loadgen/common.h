// What refbus-loadgen's send and receive share: the options naming a party, its folder, its
// data directory and its home broker; loading the party's identity and directory; the stop
// flag the signals set; and how a failure is printed.
//
// Thread safety: the main thread only (the signal handlers only set g_stop).
#ifndef REFBUS_TESTS_TOOLS_LOADGEN_COMMON_H_
#define REFBUS_TESTS_TOOLS_LOADGEN_COMMON_H_

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <string>
#include <string_view>

#include "agent/client.h"
#include "core/clock.h"
#include "core/status.h"
#include "keys/keyfile.h"
#include "schema/types.h"

namespace refbus::loadgen {

using SteadyClock = std::chrono::steady_clock;

// Set by SIGTERM and SIGINT (InstallSignalHandlers); send and receive stop cleanly.
extern volatile std::sig_atomic_t g_stop;

// SIGTERM, SIGINT: set g_stop, without SA_RESTART (the poll wait returns at once, EINTR).
void InstallSignalHandlers();

struct CommonOptions {
  std::string party_dir;
  std::string data_dir;
  std::string endpoint;
  std::string passphrase_file;
  size_t map_size_mb = 1024;
  int timeout_s = 120;
  int submit_timeout_ms = 3000;
};

// The options send and receive both take.
void AddCommon(CLI::App* cmd, CommonOptions& o);

struct Party {
  keys::Identity identity;
  schema::Directory directory;
};

// The identity (identity.key, with --passphrase-file) and the verified directory of the
// party folder. Unlike the daemon's loading (agent/daemon.cpp), it takes the folder's own
// anchor and trust state (keys::AcceptDirectoryInFolder) and accepts an expired directory
// within its grace period with a warning.
Result<Party> LoadParty(const CommonOptions& o, UnixMillis now);

agent::ClientOptions ClientOptionsFrom(const CommonOptions& o, size_t window);

UnixMillis Now();
double Seconds(SteadyClock::time_point since);

// Prints "refbus-loadgen COMMAND: status" on stderr; returns 1.
int Fail(std::string_view command, const Status& s);

// strerror_r's text (strerror is not thread-safe; libzmq runs threads of its own).
std::string ErrnoText(int err);

}  // namespace refbus::loadgen

#endif  // REFBUS_TESTS_TOOLS_LOADGEN_COMMON_H_
