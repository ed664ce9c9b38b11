// Helpers shared by the Client's files (client.cpp: session, submissions, timers and
// sending; client_receive.cpp: frames from the broker, acks, nacks and deliveries).
// Internal to the agent layer.
#ifndef REFBUS_AGENT_CLIENT_INTERNAL_H_
#define REFBUS_AGENT_CLIENT_INTERNAL_H_

#include <chrono>
#include <string>

#include "core/bytes.h"
#include "core/clock.h"

namespace refbus::agent::client_internal {

using Clock = std::chrono::steady_clock;

// Pending items are keyed by their message id's bytes, as a string.
inline std::string Key(ByteView id) { return std::string(AsChars(id)); }
inline ByteView IdOf(const std::string& key) { return AsBytes(key); }
inline std::string Hex(const std::string& key) { return HexEncode(IdOf(key)); }

inline UnixMillis WallNow() { return SystemClock::Get().NowMillis(); }

inline const char* KindName(bool control) { return control ? "control frame" : "message"; }

}  // namespace refbus::agent::client_internal

#endif  // REFBUS_AGENT_CLIENT_INTERNAL_H_
