// The console's pages on the agent's API server (agent/api.h): the caseworkers' browser
// view, served by the daemon itself from files built into the binary (console_assets.h).
//
//   GET /            -> 303 to /console/
//   GET /console/    -> index.html (the pages are routed by the URL's hash in app.js)
//   GET /console/F   -> the embedded file F; 404 for any other name
//
// The console's own requests go to the API routes (/v1/...), same origin. Every response
// of the server, console and API alike, carries ConsoleSecurityHeaders(): a strict
// Content-Security-Policy (no inline script or style, nothing from another origin, no
// framing), nosniff, no referrer, and Cache-Control: no-store (pages show case data).
// The console routes pass the API's Host and Origin check first (DNS rebinding).
//
// Thread safety: the handlers read constant data and may run on any of httplib's threads.
#ifndef REFBUS_AGENT_CONSOLE_SERVER_H_
#define REFBUS_AGENT_CONSOLE_SERVER_H_

#include <httplib.h>

#include <functional>
#include <string_view>

#include "agent/console_assets.h"

namespace refbus::agent {

inline constexpr std::string_view kConsoleCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

// The headers every response of the API server carries (set as its default headers).
httplib::Headers ConsoleSecurityHeaders();

// The embedded file served at /console/<path>, or nullptr.
const ConsoleAsset* FindConsoleAsset(std::string_view path);

// Adds the routes above. allowed answers the request itself (and returns false) when its
// Host or Origin is not this agent's; it must outlive the server.
using RequestCheck = std::function<bool(const httplib::Request&, httplib::Response&)>;
void AddConsoleRoutes(httplib::Server& server, RequestCheck allowed);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_CONSOLE_SERVER_H_
