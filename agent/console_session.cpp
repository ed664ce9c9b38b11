#include "agent/console_session.h"

namespace refbus::agent {
namespace {

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string Flags(bool secure) {
  return std::string("; Path=/; HttpOnly; SameSite=Strict") + (secure ? "; Secure" : "");
}

}  // namespace

std::string SessionCookieName(int port) { return "refbus_session_" + std::to_string(port); }

std::string SessionCookie(std::string_view name, std::string_view token, bool secure) {
  std::string out(name);
  out += '=';
  out += token;
  out += Flags(secure);
  return out;
}

std::string ClearedSessionCookie(std::string_view name, bool secure) {
  return std::string(name) + "=; Max-Age=0" + Flags(secure);
}

Result<std::string> FindCookie(const std::vector<std::string>& cookie_headers,
                               std::string_view name) {
  std::string found;
  int count = 0;
  for (const std::string& header : cookie_headers) {
    std::string_view rest = header;
    while (!rest.empty()) {
      size_t end = rest.find(';');
      std::string_view pair = TrimSpaces(rest.substr(0, end));
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
      size_t eq = pair.find('=');
      if (eq == std::string_view::npos || TrimSpaces(pair.substr(0, eq)) != name) continue;
      found = std::string(TrimSpaces(pair.substr(eq + 1)));
      ++count;
    }
  }
  if (count == 0) return NotFound("no session cookie");
  if (count > 1) return InvalidArgument("the session cookie appears more than once");
  return found;
}

}  // namespace refbus::agent
