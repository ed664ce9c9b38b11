#include "agent/listen.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cctype>
#include <charconv>
#include <string>
#include <system_error>

namespace refbus::agent {

namespace {

// HOST:PORT with HOST an IPv4 literal; *addr gets the address.
Result<ListenAddress> SplitListen(std::string_view listen, const std::string& quoted,
                                  in_addr* addr) {
  size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == listen.size()) {
    return InvalidArgument(quoted + " is not HOST:PORT; use \"127.0.0.1:0\" (any free port) or " +
                           "\"127.0.0.1:PORT\"");
  }
  std::string host(listen.substr(0, colon));
  std::string_view port_text = listen.substr(colon + 1);
  int port = -1;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port < 0 || port > 65535) {
    return InvalidArgument(quoted + ": the port must be a number from 0 (any free port) to 65535");
  }
  if (::inet_pton(AF_INET, host.c_str(), addr) != 1) {
    return InvalidArgument(
        quoted + ": the local API listens on an IPv4 address given as a literal, not a host " +
        "name (loopback, 127.0.0.1, unless TLS is configured); use \"127.0.0.1:" +
        std::string(port_text) + "\"");
  }
  return ListenAddress{host, port};
}

}  // namespace

Result<ListenAddress> ParseLoopbackListen(std::string_view listen) {
  const std::string quoted = "\"" + std::string(listen.substr(0, 80)) + "\"";
  in_addr addr{};
  REFBUS_ASSIGN_OR_RETURN(ListenAddress out, SplitListen(listen, quoted, &addr));
  if ((ntohl(addr.s_addr) >> 24) != 127) {
    return InvalidArgument(
        quoted + " is not a loopback address: the local API would be reachable from other " +
        "machines. It listens on 127.0.0.0/8 only; use \"127.0.0.1:" + std::to_string(out.port) +
        "\" (case-management software on other machines must not call an agency's agent " +
        "directly)");
  }
  return out;
}

Result<ListenAddress> ParseNetworkListen(std::string_view listen) {
  const std::string quoted = "\"" + std::string(listen.substr(0, 80)) + "\"";
  in_addr addr{};
  return SplitListen(listen, quoted, &addr);
}

bool IsAllowedHostEntry(std::string_view entry) {
  const size_t colon = entry.find(':');
  std::string_view name = entry.substr(0, colon);
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') return false;
  }
  if (colon == std::string_view::npos) return true;
  std::string_view port = entry.substr(colon + 1);
  int n = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
  return ec == std::errc() && end == port.data() + port.size() && n >= 1 && n <= 65535;
}

}  // namespace refbus::agent
