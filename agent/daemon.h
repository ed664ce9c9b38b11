// refbus-agent run: the agency daemon. The CommandHandler that maps the local API onto
// the workflow Engine, and the loop that drives both.
//
// Its configuration is agent/config.h.
//
// Thread safety: RunDaemon runs the loop on the calling thread and the API on threads of
// its own.
#ifndef REFBUS_AGENT_DAEMON_H_
#define REFBUS_AGENT_DAEMON_H_

#include <csignal>

#include "agent/api.h"
#include "agent/config.h"
#include "core/status.h"

namespace refbus::agent {

// Flags set by signal handlers (SIGTERM/SIGINT: stop; SIGHUP: reload the directory and
// read the key file again, for prekeys another process added).
struct DaemonSignals {
  const volatile std::sig_atomic_t* stop = nullptr;
  volatile std::sig_atomic_t* reload = nullptr;  // cleared when the reload is done
};

// Loads the identity, verifies the directory against the anchor and trust state, creates
// the Engine, serves the API and runs the loop until *signals.stop, then stops the API
// (requests still waiting are answered 503) and shuts the engine down.
// Returns ok after a clean stop; FailedPrecondition-style errors for start-up problems
// are prefixed "cannot start: ".
Status RunDaemon(const AgentConfig& config, const DaemonSignals& signals);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_DAEMON_H_
