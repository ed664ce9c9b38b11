#include "agent/api.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sodium.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <optional>
#include <regex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "agent/api_tls.h"
#include "agent/console_server.h"
#include "agent/console_session.h"
#include "core/bytes.h"
#include "core/file.h"
#include "keys/crypto.h"

namespace refbus::agent {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Deeper JSON than this is refused before it reaches a handler: no request needs it, and
// it bounds the recursion of everything that walks the document later.
constexpr int kMaxJsonDepth = 32;

int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             SteadyClock::now().time_since_epoch())
      .count();
}

// clang-format off
const std::array<RouteInfo, 45> kRoutes = {{
    {Route::kRecordConsent, "POST", "/v1/consents", "/v1/consents", 201},
    {Route::kConsents, "GET", "/v1/consents", "/v1/consents", 200},
    {Route::kSendReferral, "POST", "/v1/referrals", "/v1/referrals", 201},
    {Route::kReferrals, "GET", "/v1/referrals", "/v1/referrals", 200},
    {Route::kChangeState, "POST", "/v1/referrals/{id}/state", "/v1/referrals/([^/]{1,128})/state", 200},
    {Route::kInbox, "GET", "/v1/inbox", "/v1/inbox", 200},
    {Route::kOpen, "POST", "/v1/messages/{id}/open", "/v1/messages/([^/]{1,128})/open", 200},
    {Route::kHandoff, "POST", "/v1/handoffs", "/v1/handoffs", 201},
    {Route::kAckHandoff, "POST", "/v1/handoffs/{id}/ack", "/v1/handoffs/([^/]{1,128})/ack", 200},
    {Route::kRequestDeletion, "POST", "/v1/deletions", "/v1/deletions", 201},
    {Route::kDeletions, "GET", "/v1/deletions", "/v1/deletions", 200},
    {Route::kReportDeletionStatus, "POST", "/v1/deletions/{id}/status", "/v1/deletions/([^/]{1,128})/status", 200},
    {Route::kRevokeConsent, "POST", "/v1/consents/{id}/revoke", "/v1/consents/([^/]{1,128})/revoke", 200},
    {Route::kCloseCase, "POST", "/v1/cases/{case}/close", "/v1/cases/([^/]{1,128})/close", 200},
    {Route::kSetLocalCase, "PUT", "/v1/cases/{case}/local", "/v1/cases/([^/]{1,128})/local", 200},
    {Route::kReadCase, "POST", "/v1/cases/{case}/read", "/v1/cases/([^/]{1,128})/read", 200},
    {Route::kCase, "GET", "/v1/cases/{case}", "/v1/cases/([^/]{1,128})", 200},
    {Route::kStatus, "GET", "/v1/status", "/v1/status", 200},
    {Route::kDirectory, "GET", "/v1/directory", "/v1/directory", 200},
    {Route::kReady, "GET", "/v1/readyz", "/v1/readyz", 200},
    {Route::kHealth, "GET", "/v1/healthz", "/v1/healthz", 200},
    {Route::kLogin, "POST", "/v1/login", "/v1/login", 200},
    {Route::kLogout, "POST", "/v1/logout", "/v1/logout", 200},
    {Route::kSession, "GET", "/v1/session", "/v1/session", 200},
    {Route::kOverrides, "GET", "/v1/overrides", "/v1/overrides", 200},
    {Route::kApproveOverride, "POST", "/v1/overrides/{id}/approve", "/v1/overrides/([^/]{1,128})/approve", 200},
    {Route::kExportDeletionItems, "POST", "/v1/deletions/{id}/items.csv", "/v1/deletions/([^/]{1,128})/items\\.csv", 200},
    {Route::kDeletionItem, "GET", "/v1/deletions/{id}/items/{item}", "/v1/deletions/([^/]{1,128})/items/([^/]{1,128})", 200},
    {Route::kDeletion, "GET", "/v1/deletions/{id}", "/v1/deletions/([^/]{1,128})", 200},
    {Route::kDeletionWork, "GET", "/v1/deletion-work", "/v1/deletion-work", 200},
    {Route::kDeletionWorkOverdue, "GET", "/v1/deletion-work/overdue", "/v1/deletion-work/overdue", 200},
    {Route::kDeletionWorkDueBy, "GET", "/v1/deletion-work/overdue/{id}", "/v1/deletion-work/overdue/([^/]{1,32})", 200},
    {Route::kDeletionWorkStatus, "POST", "/v1/deletion-work/{id}/status", "/v1/deletion-work/([^/]{1,128})/status", 200},
    {Route::kTakedownNotice, "POST", "/v1/deletion-work/{id}/notice", "/v1/deletion-work/([^/]{1,128})/notice", 200},
    {Route::kPublishWatchList, "POST", "/v1/deletion-watch-list/publish", "/v1/deletion-watch-list/publish", 200},
    {Route::kImportWatchList, "POST", "/v1/deletion-watch-list/import", "/v1/deletion-watch-list/import", 200},
    {Route::kDeletionStats, "GET", "/v1/deletion-stats/{id}", "/v1/deletion-stats/([^/]{1,32})", 200},
    {Route::kAddLink, "POST", "/v1/cases/{case}/links", "/v1/cases/([^/]{1,128})/links", 201},
    {Route::kCaseLinks, "GET", "/v1/cases/{case}/links", "/v1/cases/([^/]{1,128})/links", 200},
    {Route::kLinks, "GET", "/v1/links", "/v1/links", 200},
    {Route::kLinkageMatches, "GET", "/v1/linkage/matches", "/v1/linkage/matches", 200},
    {Route::kLinkageTally, "POST", "/v1/linkage/{id}/tally", "/v1/linkage/([^/]{1,128})/tally", 201},
    {Route::kLinkageBundle, "POST", "/v1/linkage/{id}/bundle", "/v1/linkage/([^/]{1,128})/bundle", 200},
    {Route::kLinkageSend, "POST", "/v1/linkage/{id}/send", "/v1/linkage/([^/]{1,128})/send", 201},
    {Route::kLinkageTallies, "GET", "/v1/linkage/{id}/tallies", "/v1/linkage/([^/]{1,128})/tallies", 200},
}};
// clang-format on

std::string Dump(const Json& j) {
  // Replace invalid UTF-8 instead of throwing: a reply must always be written.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void Reply(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(Dump(body), "application/json");
}

void ReplyError(httplib::Response& res, const Status& s) {
  Reply(res, HttpStatusFor(s.code()), ErrorBody(s));
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The body of a POST or PUT: a JSON object. Messages name the problem, never the content.
Result<Json> ParseBody(const httplib::Request& req) {
  if (req.has_header("Content-Type")) {
    std::string type = req.get_header_value("Content-Type");
    std::string media = Lower(Trim(std::string_view(type).substr(0, type.find(';'))));
    if (media != "application/json") {
      return InvalidArgument("the request's Content-Type is '" + media.substr(0, 64) +
                             "'; the API takes application/json");
    }
  }
  if (req.body.empty()) {
    return InvalidArgument(
        "the request body is empty; send a JSON object ({} if it has no fields)");
  }
  bool too_deep = false;
  Json::parser_callback_t limit_depth = [&too_deep](int depth, Json::parse_event_t, Json&) {
    if (depth > kMaxJsonDepth) too_deep = true;
    return !too_deep;
  };
  Json body;
  try {
    body = Json::parse(req.body, limit_depth, /*allow_exceptions=*/true);
  } catch (const Json::parse_error& e) {
    // e.what() quotes the bytes last read: case content must not travel into the reply.
    return InvalidArgument("the request body is not valid JSON (error at byte " +
                           std::to_string(e.byte) + ")");
  }
  if (too_deep) {
    return InvalidArgument("the request body nests deeper than " + std::to_string(kMaxJsonDepth) +
                           " levels");
  }
  if (!body.is_object()) {
    return InvalidArgument(std::string("the request body must be a JSON object, not ") +
                           body.type_name());
  }
  return body;
}

// The start of the request being answered on this thread, for the access log line.
thread_local std::optional<SteadyClock::time_point> t_request_start;

}  // namespace

// ---------------------------------------------------------------- routes and codes

std::span<const RouteInfo> Routes() { return kRoutes; }

const RouteInfo& InfoOf(Route route) {
  for (const auto& r : kRoutes) {
    if (r.route == route) return r;
  }
  std::abort();  // every Route is in the table
}

bool RouteTakesBulk(Route route) {
  return route == Route::kRequestDeletion || route == Route::kReportDeletionStatus ||
         route == Route::kImportWatchList;
}

bool RouteActs(Route route) {
  switch (route) {
    case Route::kRecordConsent:
    case Route::kSendReferral:
    case Route::kChangeState:
    case Route::kOpen:
    case Route::kHandoff:
    case Route::kAckHandoff:
    case Route::kRequestDeletion:
    case Route::kReportDeletionStatus:
    case Route::kRevokeConsent:
    case Route::kCloseCase:
    case Route::kReadCase:
    case Route::kExportDeletionItems:
    case Route::kDeletionWorkStatus:
    case Route::kTakedownNotice:
    case Route::kPublishWatchList:
    case Route::kImportWatchList:
    case Route::kAddLink:
    case Route::kLinkageTally:
    case Route::kLinkageSend:
      return true;
    default:
      return false;
  }
}

std::string_view ApiErrorCode(Status::Code code) {
  // core's names (CodeName) with '-' for ' ', except two the API has always shortened.
  // Built once, so the views stay valid for the whole process.
  constexpr size_t kCodes = static_cast<size_t>(Status::Code::kInternal) + 1;
  static const std::array<std::string, kCodes> kNames = [] {
    std::array<std::string, kCodes> names;
    for (size_t i = 0; i < kCodes; ++i) {
      std::string n(CodeName(static_cast<Status::Code>(i)));
      std::replace(n.begin(), n.end(), ' ', '-');
      names[i] = std::move(n);
    }
    names[static_cast<size_t>(Status::Code::kIoError)] = "io-error";
    names[static_cast<size_t>(Status::Code::kInternal)] = "internal";
    return names;
  }();
  auto i = static_cast<size_t>(code);
  return i < kCodes ? std::string_view(kNames[i]) : std::string_view("unknown");
}

int HttpStatusFor(Status::Code code) {
  switch (code) {
    case Status::Code::kOk:
      return 200;
    case Status::Code::kInvalidArgument:
    case Status::Code::kMalformed:
      return 400;
    case Status::Code::kUnauthenticated:
      return 401;
    case Status::Code::kPermissionDenied:
      return 403;
    case Status::Code::kNotFound:
      return 404;
    // A refusal because of the state of things (an expired or revoked grant included) is
    // the caller's to resolve, not a server fault.
    case Status::Code::kFailedPrecondition:
    case Status::Code::kAlreadyExists:
    case Status::Code::kExpired:
    case Status::Code::kRevoked:
      return 409;
    case Status::Code::kResourceExhausted:
    case Status::Code::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

Json ErrorBody(const Status& status) {
  return Json{
      {"error",
       {{"code", std::string(ApiErrorCode(status.code()))}, {"message", status.message()}}}};
}

// ---------------------------------------------------------------- CommandQueue

// ---------------------------------------------------------------- ApiServer

struct ApiServer::Impl {
  Impl(const ApiOptions& o, CommandQueue& q, CommandHandler& h)
      : options(o), queue(q), handler(h) {}

  // The API token (the service account: *op stays null) or an operator's session token,
  // as a Bearer header or (no Authorization header) the console's session cookie, copied to
  // *cookie (the caller wipes it).
  bool Authenticated(const httplib::Request& req, std::string* why,
                     std::shared_ptr<const OperatorKey>* op, std::string* cookie) const {
    if (!req.has_header("Authorization")) return CookieAuthenticated(req, why, op, cookie);
    std::string value = req.get_header_value("Authorization");
    std::string_view v = Trim(value);
    constexpr std::string_view kScheme = "bearer ";
    if (v.size() < kScheme.size() || Lower(v.substr(0, kScheme.size())) != kScheme) {
      *why = "the Authorization header is not a Bearer token";
      return false;
    }
    std::string_view presented = Trim(v.substr(kScheme.size()));
    bool ok = keys::ConstantTimeEquals(AsBytes(presented), token.view());
    if (!ok && sessions) {
      *op = sessions->Find(AsBytes(presented));
      ok = *op != nullptr;
    }
    sodium_memzero(value.data(), value.size());
    if (!ok) *why = "wrong bearer token (or an expired session)";
    return ok;
  }

  bool CookieAuthenticated(const httplib::Request& req, std::string* why,
                           std::shared_ptr<const OperatorKey>* op, std::string* cookie) const {
    std::vector<std::string> headers;
    for (size_t i = 0; i < req.get_header_value_count("Cookie"); ++i) {
      headers.push_back(req.get_header_value("Cookie", i));
    }
    auto value = sessions ? FindCookie(headers, cookie_name) : NotFound("no sessions");
    for (auto& h : headers) sodium_memzero(h.data(), h.size());
    if (!value.ok()) {
      *why = value.status().code() == Status::Code::kNotFound ? "no Authorization header"
                                                              : value.status().message();
      return false;
    }
    *cookie = std::move(value).value();
    *op = sessions->Find(AsBytes(*cookie));
    if (*op == nullptr) {
      *why = "wrong session cookie (or an expired session)";
      sodium_memzero(cookie->data(), cookie->size());
      cookie->clear();
      return false;
    }
    return true;
  }

  // A state change authenticated by the cookie carries the session's CSRF token; answers
  // 403 itself (and logs) when it does not.
  bool CsrfOk(const httplib::Request& req, httplib::Response& res, const std::string& cookie,
              const OperatorKey& op) const {
    const std::string presented = req.get_header_value(std::string(kCsrfHeader));
    if (req.get_header_value_count(std::string(kCsrfHeader)) == 1 &&
        sessions->CsrfMatches(AsBytes(cookie), AsBytes(presented))) {
      return true;
    }
    spdlog::warn("api: refused {} {} by operator '{}': no or wrong CSRF token", req.method,
                 req.path.substr(0, 200), op.name());
    ReplyError(res, PermissionDenied("a change made with the console's session cookie must carry "
                                     "the session's CSRF token in the " +
                                     std::string(kCsrfHeader) +
                                     " header (log in again if the page lost it)"));
    return false;
  }

  // The Bearer token as sent (for logout), in locked memory.
  static Result<keys::SecretBuffer> BearerOf(const httplib::Request& req) {
    std::string value = req.get_header_value("Authorization");
    std::string_view v = Trim(value);
    auto out = keys::SecretBuffer::CopyOf(AsBytes(Trim(v.substr(std::min<size_t>(7, v.size())))));
    sodium_memzero(value.data(), value.size());
    return out;
  }

  // POST /v1/login {operator, password} -> {token, operator, role, idle_timeout_ms}.
  void ServeLogin(const httplib::Request& req, httplib::Response& res) {
    if (!sessions) {
      return ReplyError(res, NotFound("operator logins are not configured on this agent"));
    }
    auto body = ParseBody(req);
    if (!body.ok()) return ReplyError(res, body.status());
    const Json& b = *body;
    if (!b.contains("operator") || !b["operator"].is_string() || !b.contains("password") ||
        !b["password"].is_string()) {
      return ReplyError(res,
                        InvalidArgument(R"(login takes {"operator": NAME, "password": PASSWORD})"));
    }
    std::string password = b["password"].get<std::string>();
    auto login = sessions->Login(b["operator"].get<std::string>(), AsBytes(password));
    sodium_memzero(password.data(), password.size());
    if (!login.ok()) return ReplyError(res, login.status());
    Json out = {{"operator", login->key->name()},
                {"role", std::string(RoleName(login->key->role()))},
                {"idle_timeout_ms", sessions->options().idle_timeout.count()}};
    if (b.value("cookie", false) == true) {
      // The console: the token goes into an HttpOnly cookie, never to the page's script.
      res.set_header("Set-Cookie", SessionCookie(cookie_name, AsChars(login->token.view()),
                                                 ApiServesTls(options)));
      out["csrf_token"] = sessions->CsrfToken(login->token.view());
    } else {
      out["token"] = std::string(AsChars(login->token.view()));
    }
    Reply(res, 200, out);
  }

  // The session's own answers: logout, and who the token acts as.
  // cookie: the session token when the request came with the console's cookie, else empty.
  void ServeSession(const RouteInfo& info, const httplib::Request& req, httplib::Response& res,
                    const std::shared_ptr<const OperatorKey>& op, const std::string& cookie) {
    if (info.route == Route::kSession) {
      if (!op) return Reply(res, 200, Json{{"operator", "service"}, {"role", "service"}});
      Json out = {{"operator", op->name()},
                  {"role", std::string(RoleName(op->role()))},
                  {"public_key", HexEncode(op->public_key())}};
      // A reloaded console page gets its CSRF token again (same origin only: no CORS).
      if (!cookie.empty()) out["csrf_token"] = sessions->CsrfToken(AsBytes(cookie));
      return Reply(res, 200, out);
    }
    if (!op)
      return ReplyError(res, InvalidArgument("logout ends a session; this is the API token"));
    if (!cookie.empty()) {
      sessions->Logout(AsBytes(cookie));
      res.set_header("Set-Cookie", ClearedSessionCookie(cookie_name, ApiServesTls(options)));
    } else if (auto bearer = BearerOf(req); bearer.ok()) {
      sessions->Logout(bearer->view());
    }
    Reply(res, 200, Json{{"logged_out", op->name()}});
  }

  // The acting operator of a request that acts: the logged-in one, or "service:<name>".
  static Status SetOperator(const RouteInfo& info, Json& body,
                            const std::shared_ptr<const OperatorKey>& op) {
    if (!RouteActs(info.route) || !body.is_object()) return Status::Ok();
    if (op) {
      if (body.contains("operator") &&
          (!body["operator"].is_string() || body["operator"].get<std::string>() != op->name())) {
        return InvalidArgument("'operator' is the logged-in operator (" + op->name() +
                               "); leave it out");
      }
      body["operator"] = op->name();
    } else if (body.contains("operator") && body["operator"].is_string()) {
      body["operator"] = "service:" + body["operator"].get<std::string>();
    }
    return Status::Ok();
  }

  // DNS rebinding (a page on another name that resolves to this machine) shows in the Host
  // header, and a web page's cross-site request in Origin: both are refused before the
  // token is looked at (a token guessed or leaked must not be usable from a browser).
  bool FromAllowedHost(const httplib::Request& req, httplib::Response& res) const {
    const std::string host = Lower(Trim(req.get_header_value("Host")));
    if (req.get_header_value_count("Host") != 1 ||
        std::find(hosts.begin(), hosts.end(), host) == hosts.end()) {
      spdlog::warn("api: refused {} {}: Host '{}' is not this agent's", req.method,
                   req.path.substr(0, 200), host.substr(0, 100));
      Reply(res, 421,
            ErrorBody(PermissionDenied(
                "the request's Host header ('" + host.substr(0, 100) + "') does not name this " +
                "agent's API (" + url + "); a page on another name that resolves to this " +
                "machine may not call it (config api.allowed_hosts adds names)")));
      return false;
    }
    if (req.get_header_value_count("Origin") == 0) return true;
    const std::string origin = Lower(Trim(req.get_header_value("Origin")));
    if (req.get_header_value_count("Origin") != 1 ||
        std::find(origins.begin(), origins.end(), origin) == origins.end()) {
      spdlog::warn("api: refused {} {}: Origin '{}' is not this agent's", req.method,
                   req.path.substr(0, 200), origin.substr(0, 100));
      Reply(res, 403,
            ErrorBody(PermissionDenied("the request's Origin ('" + origin.substr(0, 100) +
                                       "') is not this agent's API (" + url +
                                       "): a web page of another site may not call it")));
      return false;
    }
    return true;
  }

  void Serve(const RouteInfo& info, const httplib::Request& req, httplib::Response& res) {
    if (!FromAllowedHost(req, res)) return;
    if (!RouteTakesBulk(info.route) && req.body.size() > options.max_body_bytes) {
      res.status = 413;
      return res.set_content(
          Dump(ErrorBody(ResourceExhausted("the request body is larger than the limit of " +
                                           std::to_string(options.max_body_bytes) + " bytes"))),
          "application/json");
    }
    if (info.route == Route::kHealth) return ServeHealth(res);
    if (info.route == Route::kLogin) return ServeLogin(req, res);
    // Checked here, after httplib has read the body (bounded by max_body_bytes), not in a
    // pre-routing handler: refusing before the body is read would close the connection
    // with unread bytes, which resets it and can lose the 401 on its way to the client.
    std::shared_ptr<const OperatorKey> op;
    std::string cookie;  // the session token when the console's cookie authenticated
    struct Wipe {
      std::string& s;
      ~Wipe() { sodium_memzero(s.data(), s.size()); }
    } wipe{cookie};
    if (std::string why; !Authenticated(req, &why, &op, &cookie)) {
      spdlog::warn("api: refused {} {}: {}", req.method, req.path.substr(0, 200), why);
      res.set_header("WWW-Authenticate", "Bearer");
      return ReplyError(res, Unauthenticated("missing or wrong bearer token: send "
                                             "\"Authorization: Bearer <token>\" with the token "
                                             "from " +
                                             options.token_file + " or from POST /v1/login"));
    }
    if (!cookie.empty() && info.method != "GET" && !CsrfOk(req, res, cookie, *op)) return;
    if (info.route == Route::kLogout || info.route == Route::kSession) {
      return ServeSession(info, req, res, op, cookie);
    }
    if (op && op->role() == OperatorRole::kReadOnly && info.method != "GET") {
      return ReplyError(res, PermissionDenied("operator " + op->name() + " is read-only"));
    }
    ApiRequest request;
    request.route = info.route;
    request.operator_key = op;
    if (req.matches.size() > 1) request.id = req.matches[1].str();
    if (req.matches.size() > 2) request.item = req.matches[2].str();
    if (info.method != "GET") {
      auto body = ParseBody(req);
      if (!body.ok()) return ReplyError(res, body.status());
      request.body = std::move(body).value();
      if (Status s = SetOperator(info, request.body, op); !s.ok()) return ReplyError(res, s);
    }
    Result<Json> result = Internal("the command did not complete; see the agent's log");
    Status queued = queue.Run(
        [&] {
          try {
            result = handler.Handle(request);
          } catch (const std::exception& e) {
            // Library exceptions (JSON type errors) name types and keys, not values.
            spdlog::error("api: {} {} failed: {}", info.method, info.path, e.what());
            result = Internal("the command failed unexpectedly; see the agent's log");
          }
        },
        options.command_timeout);
    if (!queued.ok()) return ReplyError(res, queued);
    if (!result.ok()) return ReplyError(res, result.status());
    if ((info.route == Route::kExportDeletionItems || info.route == Route::kDeletionStats) &&
        result->is_string()) {
      res.status = info.ok_status;
      res.set_content(result->get<std::string>(), "text/csv; charset=utf-8");
      return;
    }
    if (info.route == Route::kReady) {
      bool ready = result->is_object() && result->value("ready", false);
      Json body = result->is_object() ? *result : Json::object();
      body["ready"] = ready;
      if (!ready) {
        body.update(ErrorBody(Unavailable("no session with the home broker yet")));
      }
      return Reply(res, ready ? 200 : 503, body);
    }
    Reply(res, info.ok_status, *result);
  }

  // The pre-routing handler's gate on bodies. httplib 0.11.4 reads a request's body in
  // Server::routing only after calling the pre-routing handler (routing() first returns if
  // pre_routing_handler_ says Handled, then, for a request that expects content, calls
  // read_content; see cpp-httplib v0.11.4 httplib.h, Server::routing and process_request).
  // Its expect-100-continue handler would run even earlier, but only for requests sending
  // "Expect: 100-continue", which neither httplib's client nor a browser's fetch sends.
  // So here, with only the headers read: a body over max_body_bytes, or of a length not
  // known from the headers (chunked), is let through only to a bulk route from a caller
  // with credentials (the API or a session token, or the session cookie with its CSRF
  // token). Any other is answered now (401 without credentials on a bulk route, else
  // 413) and never read: keep-alive is off (Start), so the connection closes after the
  // answer. Returns true when it answered.
  bool RefusedBeforeTheBody(const httplib::Request& req, httplib::Response& res) const {
    if (req.method != "POST" && req.method != "PUT") return false;
    const bool chunked = req.has_header("Transfer-Encoding");
    uint64_t length = 0;
    if (!chunked && req.has_header("Content-Length")) {
      const std::string v = req.get_header_value("Content-Length");
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), length);
      if (ec != std::errc() || end != v.data() + v.size() ||
          req.get_header_value_count("Content-Length") != 1) {
        Reply(res, 400, ErrorBody(InvalidArgument("malformed Content-Length")));
        return true;
      }
    }
    if (!chunked && length <= options.max_body_bytes) return false;
    if (!FromAllowedHost(req, res)) return true;
    const bool bulk = IsBulkPath(req);
    if (bulk && WithBodyCredentials(req)) return false;
    spdlog::warn("api: refused {} {} before reading its body ({} bytes{})", req.method,
                 req.path.substr(0, 200), length, chunked ? ", chunked" : "");
    if (bulk) {
      res.set_header("WWW-Authenticate", "Bearer");
      Reply(res, 401,
            ErrorBody(Unauthenticated("a body of more than " +
                                      std::to_string(options.max_body_bytes) +
                                      " bytes is read only from a caller with credentials "
                                      "(a bearer token, or the session cookie and its CSRF "
                                      "token)")));
    } else {
      Reply(res, 413,
            ErrorBody(ResourceExhausted(
                "the request body is larger than the limit of " +
                std::to_string(options.max_body_bytes) + " bytes" +
                (chunked ? " or of unknown length (chunked); send a Content-Length" : ""))));
    }
    return true;
  }

  // Whether the request carries credentials that a change may be made with (a bearer
  // token; or the session cookie, its CSRF token, and an operator who may change things).
  bool WithBodyCredentials(const httplib::Request& req) const {
    std::string why, cookie;
    std::shared_ptr<const OperatorKey> op;
    bool ok = Authenticated(req, &why, &op, &cookie);
    if (ok && !cookie.empty()) {
      const std::string presented = req.get_header_value(std::string(kCsrfHeader));
      ok = req.get_header_value_count(std::string(kCsrfHeader)) == 1 &&
           sessions->CsrfMatches(AsBytes(cookie), AsBytes(presented));
    }
    if (ok && op && op->role() == OperatorRole::kReadOnly) ok = false;
    sodium_memzero(cookie.data(), cookie.size());
    return ok;
  }

  // Whether a path and method name a route that takes bulk bodies.
  bool IsBulkPath(const httplib::Request& req) const {
    for (size_t i = 0; i < kRoutes.size() && i < patterns.size(); ++i) {
      if (RouteTakesBulk(kRoutes[i].route) && kRoutes[i].method == req.method &&
          std::regex_match(req.path, patterns[i])) {
        return true;
      }
    }
    return false;
  }

  void ServeHealth(httplib::Response& res) {
    int64_t idle = SteadyNowMs() - queue.last_drain_ms();
    Json body = {{"status", "ok"}, {"loop_idle_ms", idle}};
    if (idle > options.stall_after.count()) {
      body["status"] = "stalled";
      body.update(ErrorBody(
          Unavailable("the agent's loop has not run for " + std::to_string(idle) + " ms")));
      return Reply(res, 503, body);
    }
    Reply(res, 200, body);
  }

  // Fills the body of error replies that httplib made itself (no route, too large, ...).
  httplib::Server::HandlerResponse OnError(const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    Status s;
    switch (res.status) {
      case 404: {
        std::vector<std::string> allowed;
        for (size_t i = 0; i < kRoutes.size(); ++i) {
          if (kRoutes[i].method != req.method && std::regex_match(req.path, patterns[i])) {
            allowed.emplace_back(kRoutes[i].method);
          }
        }
        std::sort(allowed.begin(), allowed.end());
        allowed.erase(std::unique(allowed.begin(), allowed.end()), allowed.end());
        if (!allowed.empty()) {
          std::string allow;
          for (const auto& m : allowed) allow += (allow.empty() ? "" : ", ") + m;
          res.status = 405;
          res.set_header("Allow", allow);
          s = InvalidArgument(req.method + " is not allowed here; use " + allow);
          break;
        }
        s = NotFound("no route " + req.method + " " + req.path.substr(0, 200) +
                     " (routes: agent/API.md)");
        break;
      }
      case 413:
        s = ResourceExhausted(
            "the request body is larger than the limit of " +
            std::to_string(IsBulkPath(req) ? options.max_bulk_body_bytes : options.max_body_bytes) +
            " bytes");
        break;
      case 414:
        s = InvalidArgument("the request URI is too long");
        break;
      case 400:
        s = InvalidArgument("malformed HTTP request");
        break;
      default:
        s = Internal("HTTP " + std::to_string(res.status));
        break;
    }
    res.set_content(Dump(ErrorBody(s)), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }

  // httplib's settings and hooks (REQUIRES: server made, before AddRoutes and the bind).
  void ConfigureServer() {
    Impl* p = this;
    httplib::Server& svr = *server;
    size_t threads = options.threads;
    svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    // httplib's default also sets SO_REUSEPORT, which would let another process of this
    // user bind the same port and take a share of the connections (and their tokens).
    svr.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    svr.set_payload_max_length(std::max(options.max_body_bytes, options.max_bulk_body_bytes));
    svr.set_read_timeout(10, 0);
    svr.set_write_timeout(10, 0);
    svr.set_keep_alive_timeout(2);
    // CSP, nosniff, no referrer and no-store on every reply, API JSON and console pages alike.
    svr.set_default_headers(ConsoleSecurityHeaders());

    // One request per connection: a request refused before its body (RefusedBeforeTheBody)
    // must close the connection, or httplib would take the unread body for the next request
    // (and read all of it looking for its first line).
    svr.set_keep_alive_max_count(1);
    svr.set_pre_routing_handler([p](const httplib::Request& req, httplib::Response& res) {
      t_request_start = SteadyClock::now();
      return p->RefusedBeforeTheBody(req, res) ? httplib::Server::HandlerResponse::Handled
                                               : httplib::Server::HandlerResponse::Unhandled;
    });
    svr.set_error_handler(httplib::Server::HandlerWithResponse(
        [p](const httplib::Request& req, httplib::Response& res) { return p->OnError(req, res); }));
    svr.set_exception_handler(
        [](const httplib::Request& req, httplib::Response& res, std::exception_ptr) {
          spdlog::error("api: {} {}: unexpected exception", req.method, req.path.substr(0, 200));
          ReplyError(res, Internal("unexpected error; see the agent's log"));
        });
    svr.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      double ms = -1;
      if (t_request_start) {
        ms = std::chrono::duration<double, std::milli>(SteadyClock::now() - *t_request_start)
                 .count();
        t_request_start.reset();
      }
      // Path only: ids are fine, query strings and bodies are not logged.
      auto level = res.status >= 500 ? spdlog::level::warn : spdlog::level::info;
      spdlog::log(level, "api: {} {} -> {} in {:.1f} ms", req.method, req.path.substr(0, 200),
                  res.status, ms);
    });
  }

  void AddRoutes() {
    for (const auto& route : kRoutes) {
      patterns.emplace_back(std::string(route.pattern));
      auto h = [this, &route](const httplib::Request& req, httplib::Response& res) {
        Serve(route, req, res);
      };
      std::string pattern(route.pattern);
      if (route.method == "GET") {
        server->Get(pattern, h);
      } else if (route.method == "POST") {
        server->Post(pattern, h);
      } else if (route.method == "PUT") {
        server->Put(pattern, h);
      }
    }
    AddConsoleRoutes(*server, [this](const httplib::Request& req, httplib::Response& res) {
      return FromAllowedHost(req, res);
    });
  }

  // Fills hosts and origins for the bound port (REQUIRES: before the server serves).
  void AllowHosts(const std::string& listen_host) {
    const std::string p = ":" + std::to_string(port);
    for (const std::string& h : {std::string("127.0.0.1"), std::string("localhost"), listen_host}) {
      hosts.push_back(h + p);
    }
    for (const auto& entry : options.allowed_hosts) {
      std::string h = Lower(entry);
      hosts.push_back(h.find(':') == std::string::npos ? h + p : h);
    }
    const char* scheme = ApiServesTls(options) ? "https://" : "http://";
    for (const auto& h : hosts) origins.push_back(scheme + h);
  }

  ApiOptions options;
  CommandQueue& queue;
  CommandHandler& handler;
  std::vector<std::string> hosts;    // the Host values accepted ("127.0.0.1:PORT", ...)
  std::vector<std::string> origins;  // the Origin values accepted ("http(s)://" + a host)
  keys::SecretBuffer token;
  std::unique_ptr<OperatorStore> operators;  // null: no logins
  std::unique_ptr<SessionTable> sessions;
  std::unique_ptr<httplib::Server> server;  // an httplib::SSLServer with TLS (api_tls.h)
  std::vector<std::regex> patterns;         // kRoutes[i].pattern, for 405 answers
  std::thread thread;
  int port = 0;
  std::string url;
  std::string cookie_name;  // SessionCookieName(port)
  bool stopped = false;
};

ApiServer::ApiServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ApiServer::~ApiServer() { Stop(); }

Result<std::unique_ptr<ApiServer>> ApiServer::Start(const ApiOptions& options, CommandQueue& queue,
                                                    CommandHandler& handler) {
  // Off loopback only with TLS: the console carries passwords and case data.
  REFBUS_ASSIGN_OR_RETURN(ListenAddress listen, ApiServesTls(options)
                                                    ? ParseNetworkListen(options.listen)
                                                    : ParseLoopbackListen(options.listen));
  if (options.token_file.empty()) return InvalidArgument("the API needs a token file");
  if (options.threads == 0) return InvalidArgument("the API needs at least one thread");
  for (const auto& h : options.allowed_hosts) {
    if (!IsAllowedHostEntry(h)) {
      return InvalidArgument("allowed host '" + h.substr(0, 100) + "' is not NAME or NAME:PORT");
    }
  }
  auto impl = std::make_unique<Impl>(options, queue, handler);
  REFBUS_ASSIGN_OR_RETURN(impl->server, MakeApiHttpServer(options));
  REFBUS_ASSIGN_OR_RETURN(impl->token, LoadOrCreateApiToken(options.token_file));
  if (!options.operators_file.empty()) {
    impl->operators = std::make_unique<OperatorStore>(options.operators_file);
    impl->sessions =
        std::make_unique<SessionTable>(*impl->operators, options.sessions, &SteadyNowMs);
  }

  Impl* p = impl.get();
  httplib::Server& svr = *impl->server;
  impl->ConfigureServer();
  impl->AddRoutes();

  errno = 0;
  if (listen.port == 0) {
    impl->port = svr.bind_to_any_port(listen.host);
  } else {
    impl->port = svr.bind_to_port(listen.host, listen.port) ? listen.port : -1;
  }
  if (impl->port <= 0) {
    int err = errno;
    return Unavailable("cannot listen on " + listen.host + ":" + std::to_string(listen.port) +
                       (err != 0 ? " (" + std::system_category().message(err) + ")" : "") +
                       "; is another agent running with this [api] listen setting? Use port 0 "
                       "for any free port");
  }
  // The URL is for clients on this machine (the CLI): loopback when bound to all addresses.
  impl->url = std::string(ApiServesTls(options) ? "https://" : "http://") +
              (listen.host == "0.0.0.0" ? "127.0.0.1" : listen.host) + ":" +
              std::to_string(impl->port);
  impl->AllowHosts(listen.host);
  impl->cookie_name = SessionCookieName(impl->port);
  impl->thread = std::thread([p] { p->server->listen_after_bind(); });
  // stop() does nothing before the accept loop runs: wait for it, so Stop always works.
  auto until = SteadyClock::now() + std::chrono::seconds(5);
  while (!svr.is_running() && SteadyClock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::unique_ptr<ApiServer> server(new ApiServer(std::move(impl)));
  if (!server->impl_->server->is_running()) {
    return Internal("the API server did not start within 5 s");
  }
  if (!options.url_file.empty()) {
    std::string line = server->impl_->url + "\n";
    if (Status s = WriteFileAtomic(options.url_file, AsBytes(line), kPrivateFileMode); !s.ok()) {
      return s.WithContext("cannot write the API URL file");
    }
  }
  spdlog::info("api: listening on {} (token in {})", server->impl_->url, options.token_file);
  return server;
}

void ApiServer::Stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  impl_->queue.Close();
  impl_->server->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  if (!impl_->options.url_file.empty()) {
    // Only our own URL: another agent may have started on this data dir since (it cannot,
    // LMDB's lock refuses it, but a stale file must not mislead the CLI either way).
    auto content = ReadFile(impl_->options.url_file, 1024);
    if (content.ok() && AsChars(*content) == impl_->url + "\n") {
      ::unlink(impl_->options.url_file.c_str());
    }
  }
  spdlog::info("api: stopped");
}

int ApiServer::port() const { return impl_->port; }
const std::string& ApiServer::url() const { return impl_->url; }

}  // namespace refbus::agent
