// The console's browser session (issue 18 item 4): the session token as a cookie and the
// CSRF token that every state change sent with that cookie must carry in a header.
//
// A browser sends cookies by itself, to any request for this host, whichever page made it;
// a header it sends only when this origin's own script adds it. So a request authenticated
// by the cookie that changes state (POST, PUT) must also carry X-Refbus-CSRF: a token the
// login reply gave to the page (and GET /v1/session gives again), which another site's page
// cannot read. A Bearer token in Authorization (the CLI, case-management software) needs
// no CSRF token: no browser sends it by itself.
//
// The cookie is named after the API's port ("refbus_session_8443"): cookies do not tell
// ports apart, and two agents' consoles on one machine (the demo) must not overwrite each
// other's session. Its flags: HttpOnly (page script cannot read it), SameSite=Strict (not
// sent on requests that another site starts), Path=/, and Secure when TLS is configured.
// No Max-Age: it ends with the browser, and the session itself ends earlier on idle.
//
// Thread safety: free functions over values.
#ifndef REFBUS_AGENT_CONSOLE_SESSION_H_
#define REFBUS_AGENT_CONSOLE_SESSION_H_

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace refbus::agent {

inline constexpr std::string_view kCsrfHeader = "X-Refbus-CSRF";

// "refbus_session_<port>".
std::string SessionCookieName(int port);

// The Set-Cookie value that hands the session token to the browser.
std::string SessionCookie(std::string_view name, std::string_view token, bool secure);
// The Set-Cookie value that removes it (logout).
std::string ClearedSessionCookie(std::string_view name, bool secure);

// The value of cookie `name` in the request's Cookie header(s). NotFound if absent;
// InvalidArgument if the name appears more than once (a cookie planted beside ours by a
// sibling host is refused, not guessed between).
Result<std::string> FindCookie(const std::vector<std::string>& cookie_headers,
                               std::string_view name);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_CONSOLE_SESSION_H_
