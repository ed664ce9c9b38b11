// The local API's listen address: parsed from the configuration (agent/config.cpp), by the
// API server (agent/api.cpp) and by the CLI when it reads the URL file. Its own file so that
// the configuration loader needs nothing of the HTTP server (tests/fuzz/config_fuzz).
//
// Thread safety: free functions over values.
#ifndef REFBUS_AGENT_LISTEN_H_
#define REFBUS_AGENT_LISTEN_H_

#include <string>
#include <string_view>

#include "core/status.h"

namespace refbus::agent {

struct ListenAddress {
  std::string host;  // an IPv4 literal: loopback ("127.0.0.1") unless the API serves TLS
  int port = 0;      // 0: any free port
};
// "127.0.0.1:8080" or "127.0.0.1:0". Refuses every host that is not an IPv4 loopback
// literal (0.0.0.0, a LAN address, a host name), saying why.
Result<ListenAddress> ParseLoopbackListen(std::string_view listen);
// The same, but any IPv4 literal ("0.0.0.0:8443", "192.168.0.5:8443"): for an API that
// serves TLS ([console] tls_cert and tls_key), which may serve a center's LAN.
Result<ListenAddress> ParseNetworkListen(std::string_view listen);

// An entry of ApiOptions::allowed_hosts: a host name (letters, digits, '.', '-'), or one
// with ":PORT" (1-65535).
bool IsAllowedHostEntry(std::string_view entry);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_LISTEN_H_
