// The agency agent's local HTTP/JSON API (agent/API.md), and the client the CLI uses.
//
// ApiServer serves the routes documented in agent/engine.h to the agency's own
// case-management software on this machine:
//   - it listens on a loopback address only (127.0.0.0/8); anything else is refused at
//     start as a configuration error, unless it serves TLS (ApiOptions::tls_cert and
//     tls_key, agent/api_tls.h): then HTTPS only, on any IPv4 address (a center's LAN);
//   - it also serves the browser console's static files under /console/ without the token
//     (agent/console_server.h), and every reply carries its security headers (CSP,
//     nosniff, no-referrer, no-store);
//   - operators log in (POST /v1/login {operator, password}, agent/sessions.h) and get a
//     session token, sent as a Bearer token like the API token; a request with it acts as
//     that operator (ApiRequest::operator_key), one with the API token as the service
//     account. A read-only operator may only GET (and log out). The browser console logs
//     in with "cookie": true and gets the session as an HttpOnly SameSite=Strict cookie
//     instead; a POST or PUT authenticated by that cookie must carry the session's CSRF
//     token (agent/console_session.h), or it is refused 403;
//   - every route except GET /v1/healthz and POST /v1/login requires
//     "Authorization: Bearer <token>" (checked
//     before the body is parsed; unknown paths are 404 with or without it), where
//     the token is 32 random bytes (64 hex digits) in a file only the daemon's user may
//     read (created 0600 at first start; a file readable by group or others is refused);
//     tokens are compared in constant time and never logged;
//   - bodies are JSON objects of at most ApiOptions::max_body_bytes (bulk routes: more,
//     from a caller with credentials only, checked before the body is read);
//   - it logs one line per request: method, path, HTTP status, duration; never bodies,
//     query strings or the token.
//
// Threading: httplib answers requests on its own worker threads, but the workflow engine
// is single-threaded. Each request is therefore posted to a CommandQueue and run by the
// one thread that drains it (the daemon's loop, between Engine::Poll turns); the worker
// waits for the result. A command that has not started within ApiOptions::command_timeout
// is withdrawn and answered 503 "agent busy": it never ran, so retrying is safe. A command
// that has started is always waited for.
//
// ApiServer does not know the engine: it dispatches to a CommandHandler (daemon.h has the
// one over Engine), so the HTTP layer can be tested with a fake.
//
// Thread safety: CommandQueue is thread-safe. ApiServer's methods are called from one
// thread (the daemon's); its handlers run on httplib's threads and the queue's thread.
#ifndef REFBUS_AGENT_API_H_
#define REFBUS_AGENT_API_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/listen.h"
#include "agent/sessions.h"
#include "core/mutex.h"
#include "core/status.h"
#include "keys/secret.h"

namespace refbus::agent {

using Json = nlohmann::json;

// ---- Routes ----

enum class Route {
  kRecordConsent,         // POST /v1/consents
  kConsents,              // GET  /v1/consents
  kSendReferral,          // POST /v1/referrals
  kReferrals,             // GET  /v1/referrals
  kChangeState,           // POST /v1/referrals/{id}/state
  kInbox,                 // GET  /v1/inbox
  kOpen,                  // POST /v1/messages/{id}/open
  kHandoff,               // POST /v1/handoffs
  kAckHandoff,            // POST /v1/handoffs/{id}/ack
  kRequestDeletion,       // POST /v1/deletions
  kDeletions,             // GET  /v1/deletions
  kReportDeletionStatus,  // POST /v1/deletions/{id}/status
  kRevokeConsent,         // POST /v1/consents/{id}/revoke
  kCloseCase,             // POST /v1/cases/{case}/close
  kSetLocalCase,          // PUT  /v1/cases/{case}/local
  kCase,                  // GET  /v1/cases/{case}
  kReadCase,              // POST /v1/cases/{case}/read (free text, recorded)
  kStatus,                // GET  /v1/status
  kDirectory,             // GET  /v1/directory (the agencies of the directory in use)
  kReady,                 // GET  /v1/readyz: the handler returns {"ready": bool, ...}
  kHealth,                // GET  /v1/healthz: answered by the server itself, no token
  kLogin,                 // POST /v1/login {operator, password}: answered by the server, no token
  kLogout,                // POST /v1/logout (a session token): answered by the server
  kSession,               // GET  /v1/session: who the token acts as; answered by the server
  kOverrides,             // GET  /v1/overrides: emergency overrides awaiting a supervisor
  kApproveOverride,       // POST /v1/overrides/{id}/approve (a supervisor's session)
  kExportDeletionItems,   // POST /v1/deletions/{id}/items.csv {operator}: text/csv
  kDeletionItem,          // GET  /v1/deletions/{id}/items/{item}: the item's history
  kDeletion,              // GET  /v1/deletions/{id}: one request, without its item list
  kDeletionWork,          // GET  /v1/deletion-work: the deletion center's work queue
  kDeletionWorkOverdue,   // GET  /v1/deletion-work/overdue: overdue items only
  kDeletionWorkDueBy,     // GET  /v1/deletion-work/overdue/{as_of_ms}: overdue by that time
  kDeletionWorkStatus,    // POST /v1/deletion-work/{id}/status {status, operator}
  kTakedownNotice,        // POST /v1/deletion-work/{id}/notice {platform, answer?, removed?, ...}
  kPublishWatchList,      // POST /v1/deletion-watch-list/publish {operator}
  kImportWatchList,       // POST /v1/deletion-watch-list/import {file, operator}
  kDeletionStats,         // GET  /v1/deletion-stats/{YYYY-MM} ({id}): text/csv
  kAddLink,               // POST /v1/cases/{case}/links {kind, value, operator, ...}
  kCaseLinks,             // GET  /v1/cases/{case}/links: the case's linkage entries
  kLinks,                 // GET  /v1/links: every linkage entry this agency sent
  kLinkageMatches,        // GET  /v1/linkage/matches: the linkage notices received
  kLinkageTally,          // POST /v1/linkage/{id}/tally {victims, deletion_items, from, to}
  kLinkageBundle,         // POST /v1/linkage/{id}/bundle {with: [evidence texts]}
  kLinkageSend,           // POST /v1/linkage/{id}/send {to, grant_id?, operator}
  kLinkageTallies,        // GET  /v1/linkage/{id}/tallies: the tallies held about the id
};

struct RouteInfo {
  Route route;
  std::string_view method;   // "GET", "POST", "PUT"
  std::string_view path;     // as documented: "/v1/referrals/{id}/state"
  std::string_view pattern;  // the regular expression matched against the whole path
  int ok_status;             // 200, or 201 for routes that create something
};

// Every route, in the order of the table above.
std::span<const RouteInfo> Routes();
const RouteInfo& InfoOf(Route route);

// Routes whose bodies may be up to ApiOptions::max_bulk_body_bytes (deletion requests and
// status reports of up to 100,000 items); every other route's are at most max_body_bytes.
bool RouteTakesBulk(Route route);

// Routes whose body names the operator who acts ("operator"): with a session token the
// server sets it to the logged-in operator; with the API token to "service:<given name>".
bool RouteActs(Route route);

// A request as a CommandHandler sees it: authenticated, routed, body parsed.
struct ApiRequest {
  Route route = Route::kStatus;
  std::string id;    // the {id} or {case} of the path; empty for routes without one
  std::string item;  // the {item} of /v1/deletions/{id}/items/{item}
  Json body;         // a JSON object for POST and PUT; null for GET
  // The logged-in operator (a session token), with their unsealed signing key; null for
  // the API token (the service account).
  std::shared_ptr<const OperatorKey> operator_key;
};

class CommandHandler {
 public:
  virtual ~CommandHandler() = default;
  // Runs on the thread that drains the CommandQueue, one call at a time. An error's
  // message is shown to the caller: it must not contain case content or secrets.
  virtual Result<Json> Handle(const ApiRequest& request) = 0;
};

// ---- Status codes on the wire ----

// "invalid-argument", "permission-denied", ...: the "code" of an error body.
std::string_view ApiErrorCode(Status::Code code);
// ok -> 200; invalid argument, malformed -> 400; unauthenticated -> 401; permission
// denied -> 403; not found -> 404; failed precondition, already exists, expired,
// revoked -> 409; resource exhausted, unavailable -> 503; anything else -> 500.
int HttpStatusFor(Status::Code code);
// {"error": {"code": "...", "message": "..."}}
Json ErrorBody(const Status& status);

// ---- CommandQueue ----

class CommandQueue {
 public:
  CommandQueue();  // counts as drained now: healthz is green until stall_after passes
  CommandQueue(const CommandQueue&) = delete;
  CommandQueue& operator=(const CommandQueue&) = delete;

  // Any thread but the draining one: queues fn and waits until it has run. If it has not
  // started within timeout it is withdrawn (it will never run) and the result is
  // ResourceExhausted ("agent busy"); once started it is waited for however long it takes.
  // Unavailable if the queue is closed (now or while waiting, before fn started).
  // fn must not throw; if it does, the exception is logged and swallowed.
  Status Run(std::function<void()> fn, std::chrono::milliseconds timeout) EXCLUDES(mu_);

  // The draining thread: runs the closures queued when the call began, in order, and
  // returns how many ran.
  size_t RunPending() EXCLUDES(mu_);

  // Refuses new closures and withdraws queued ones (their waiters get Unavailable).
  void Close() EXCLUDES(mu_);

  // Milliseconds (steady clock) of the last RunPending call: a liveness signal.
  int64_t last_drain_ms() const { return last_drain_ms_.load(std::memory_order_relaxed); }

 private:
  enum class TaskState { kQueued, kRunning, kDone, kWithdrawn };
  struct Task {
    std::function<void()> fn;
    TaskState state = TaskState::kQueued;  // guarded by the queue's mu_ (a nested struct
                                           // cannot name it for the analysis)
  };

  Mutex mu_;
  CondVar changed_{&mu_};
  std::deque<std::shared_ptr<Task>> tasks_ GUARDED_BY(mu_);
  bool closed_ GUARDED_BY(mu_) = false;
  std::atomic<int64_t> last_drain_ms_{0};
};

// ---- Token and address ----

inline constexpr size_t kApiTokenBytes = 32;  // 64 hex digits in the file

// Reads the token file, or creates it (0600, atomically) with a fresh random token if it
// does not exist. Refuses a file readable or writable by group or others (with the chmod
// fix in the message), owned by another user, or not holding 64 hex digits. The token is
// returned as its hex text in locked memory; the caller's SecretBuffer wipes it.
Result<keys::SecretBuffer> LoadOrCreateApiToken(const std::string& path);
// The same checks, without creating: for clients.
Result<keys::SecretBuffer> ReadApiToken(const std::string& path);

// ---- ApiServer ----

struct ApiOptions {
  std::string listen = "127.0.0.1:0";
  std::string token_file;  // required
  std::string url_file;    // optional: "http://127.0.0.1:<port>\n" written here, 0600
  size_t max_body_bytes = size_t{1} << 20;
  // For RouteTakesBulk routes only: 100,000 deletion items with URLs of ~250 bytes on
  // average as JSON (or the same as CSV) fit in 32 MiB. A body over max_body_bytes (or
  // chunked) is read only for a bulk route from a caller with credentials; any other is
  // answered from its headers (401 or 413) before it is read, and the connection closes
  // (the server serves one request per connection for this reason).
  size_t max_bulk_body_bytes = size_t{32} << 20;
  std::chrono::milliseconds command_timeout{30000};
  // healthz reports 503 if the queue has not been drained for this long.
  std::chrono::milliseconds stall_after{30000};
  size_t threads = 4;
  // Host names a request may name in its Host header besides 127.0.0.1, localhost and the
  // listen address (config api.allowed_hosts; the console's configured name): "NAME" allows
  // "NAME:PORT" for the listening port, "NAME:N" allows exactly that. Compared without case.
  // A request naming any other host is refused 421 (DNS rebinding), and one carrying an
  // Origin that is not "http://" and an allowed host is refused 403; both before the token
  // is looked at.
  std::vector<std::string> allowed_hosts;
  // Operator accounts (agent/operators.h, agent/sessions.h): the store file; empty: no
  // logins, the API token only.
  std::string operators_file;
  SessionOptions sessions;
  // TLS (config [console] tls_cert and tls_key): the PEM certificate (chain) and private
  // key files. Both set: the API and the console are served over HTTPS only (on loopback
  // too), `listen` may be any IPv4 address (a center's LAN), and the session cookie carries
  // Secure. Neither set: plain HTTP on loopback only; a non-loopback listen is refused.
  // Start refuses, saying why and never quoting key bytes: only one of them set, a key file
  // that group or others may read, a file missing or not PEM, an expired certificate, or a
  // key that is not the certificate's.
  std::string tls_cert;
  std::string tls_key;
};

class ApiServer {
 public:
  // Loads or creates the token, binds, writes the URL file and starts serving on a thread
  // of its own. queue and handler must outlive the server.
  static Result<std::unique_ptr<ApiServer>> Start(const ApiOptions& options, CommandQueue& queue,
                                                  CommandHandler& handler);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Closes the queue (waiting requests are answered 503), stops accepting, waits for
  // httplib's threads, and removes the URL file. Idempotent. REQUIRES: not called from
  // the queue's draining thread while a request is running (it never is: the caller is).
  void Stop();

  int port() const;
  const std::string& url() const;  // "http://127.0.0.1:<port>" ("https://" with TLS)

  struct Impl;

 private:
  explicit ApiServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---- Client (the CLI) ----

struct ApiReply {
  int http_status = 0;
  Json body;         // the parsed JSON body (null if there was none, or for text/csv)
  std::string text;  // a text/csv body as sent (POST /v1/deletions/{id}/items.csv)
};

class ApiClient {
 public:
  // url: "http://127.0.0.1:<port>", or "https://..." with ca_cert: the agent's own
  // certificate ([console] tls_cert), which the server must present; token: the hex token
  // (copied into locked memory).
  ApiClient(std::string url, keys::SecretBuffer token, int timeout_s, std::string ca_cert = "");

  // Sends one request; body may be nullptr. Unavailable if the daemon cannot be reached
  // (connection refused, timeout), naming the URL; Malformed if the reply is not JSON.
  // An HTTP error status is a reply, not an error.
  Result<ApiReply> Call(std::string_view method, const std::string& path, const Json* body);

  const std::string& url() const { return url_; }

 private:
  std::string url_;
  keys::SecretBuffer token_;
  int timeout_s_;
  std::string ca_cert_;
};

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_API_H_
