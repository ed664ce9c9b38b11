// refbus-loadgen's two subcommands (main.cpp parses their options).
//
//   send     seals N random envelopes to agencies and submits them; appends each id the
//            broker acknowledged to --acked-log
//   receive  stores deliveries; appends each new message id, exactly once across restarts,
//            to --received-log
//
// Both survive broker restarts (they keep reconnecting until --timeout), and stop cleanly
// when g_stop is set (SIGTERM, SIGINT): what was committed stays committed, unacknowledged
// submissions stay in the outbox in --data for the next run. Their output: a summary of
// "key: value" lines on stdout; logs (ids, counts, codes; never content) on stderr. Each
// returns the process's exit code.
#ifndef REFBUS_TESTS_TOOLS_LOADGEN_LOADGEN_H_
#define REFBUS_TESTS_TOOLS_LOADGEN_LOADGEN_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "tests/tools/loadgen/common.h"

namespace refbus::loadgen {

struct SendOptions {
  std::string to;
  uint64_t count = 0;
  size_t size = 1024;
  size_t window = 64;
  std::string acked_log;
};

int RunSend(const CommonOptions& o, const SendOptions& so);

struct ReceiveOptions {
  uint64_t expect = 0;  // 0: no target
  std::string received_log;
  int idle_exit_s = 0;  // 0: never
};

int RunReceive(const CommonOptions& o, const ReceiveOptions& ro);

}  // namespace refbus::loadgen

#endif  // REFBUS_TESTS_TOOLS_LOADGEN_LOADGEN_H_
