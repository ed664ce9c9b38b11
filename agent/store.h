// TRANSITIONAL (issue 16): the old name of agent/transport_store.h, kept only so that
// agent/agent_main.cpp (split on another branch) still builds. At merge: replace
// "agent/store.h" by "agent/transport_store.h" and agent::AgentStore by
// agent::TransportStore in agent_main.cpp (and its split files), then delete this file.
#ifndef REFBUS_AGENT_STORE_H_
#define REFBUS_AGENT_STORE_H_

#include "agent/transport_store.h"

namespace refbus::agent {
using AgentStore = TransportStore;
}  // namespace refbus::agent

#endif  // REFBUS_AGENT_STORE_H_
