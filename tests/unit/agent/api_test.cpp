// The local API's HTTP layer (agent/api.h) with a fake command handler: a real server on
// 127.0.0.1 port 0, driven by httplib's client.
#include "agent/api.h"

#include <httplib.h>
#include <netinet/in.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/operators.h"
#include "core/file.h"
#include "tests/unit/test_util.h"

namespace refbus::agent {
namespace {

using ::refbus::test::HasCode;
using ::refbus::test::HasError;
using ::refbus::test::HasSubstr;
using ::refbus::test::IsOk;
using ::refbus::test::Must;
using ::refbus::test::TempDir;
using std::chrono::milliseconds;

// Records every request and answers with an echo, or with the error it was told to give.
class FakeHandler final : public CommandHandler {
 public:
  Result<Json> Handle(const ApiRequest& r) override {
    std::lock_guard lock(mu_);
    requests_.push_back(r);
    thread_ = std::this_thread::get_id();
    if (throw_next_) {
      throw_next_ = false;
      throw std::runtime_error("boom");
    }
    if (error_) return *error_;
    if (reply_) return *reply_;
    return Json{{"route", static_cast<int>(r.route)}, {"id", r.id}, {"body", r.body}};
  }

  void FailWith(Status s) {
    std::lock_guard lock(mu_);
    error_ = std::move(s);
  }
  void ReplyWith(Json j) {
    std::lock_guard lock(mu_);
    reply_ = std::move(j);
  }
  void ThrowNext() {
    std::lock_guard lock(mu_);
    throw_next_ = true;
  }
  std::vector<ApiRequest> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::thread::id thread() {
    std::lock_guard lock(mu_);
    return thread_;
  }

 private:
  std::mutex mu_;
  std::vector<ApiRequest> requests_;
  std::optional<Status> error_;
  std::optional<Json> reply_;
  bool throw_next_ = false;
  std::thread::id thread_;
};

// Captures log lines for the test's lifetime.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  // REQUIRES: no thread is logging (call after the server stopped).
  std::string text() const { return out_.str(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream out_;
};

// One raw HTTP/1.1 request to 127.0.0.1:port (headers as given, nothing added): what a
// browser page on another name, or a hostile local client, can send. Returns the status
// code of the reply and its body in *body (0 if no reply).
int RawGet(int port, const std::string& path, const std::string& headers, std::string* body) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return 0;
  }
  std::string req = "GET " + path + " HTTP/1.1\r\n" + headers + "Connection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), 0) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return 0;
  }
  std::string reply;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;)
    reply.append(buf, static_cast<size_t>(n));
  ::close(fd);
  if (reply.rfind("HTTP/1.1 ", 0) != 0 || reply.size() < 12) return 0;
  if (body != nullptr) {
    size_t at = reply.find("\r\n\r\n");
    *body = at == std::string::npos ? "" : reply.substr(at + 4);
  }
  return std::stoi(reply.substr(9, 3));
}

// A POST whose headers go first, alone: the reply is read before any body byte is sent
// (*status: its HTTP status, 0 if none came within 10 s), then up to content_length bytes
// of body are sent until the server stops taking them (*sent: how many it took).
struct ApiEarlyReply {
  int status = 0;
  size_t sent = 0;
};
ApiEarlyReply PostHeadersFirst(int port, const std::string& path, const std::string& headers,
                               size_t content_length) {
  ApiEarlyReply out;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return out;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return out;
  }
  std::string head = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                     "\r\nContent-Type: application/json\r\n" + headers;
  if (content_length > 0) head += "Content-Length: " + std::to_string(content_length) + "\r\n";
  head += "\r\n";
  if (::send(fd, head.data(), head.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(head.size())) {
    ::close(fd);
    return out;
  }
  char buf[4096];
  ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
  std::string reply = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  if (reply.rfind("HTTP/1.1 ", 0) == 0 && reply.size() >= 12) {
    out.status = std::stoi(reply.substr(9, 3));
  }
  const std::string chunk(64 * 1024, 'x');
  while (out.sent < content_length) {
    ssize_t w =
        ::send(fd, chunk.data(), std::min(chunk.size(), content_length - out.sent), MSG_NOSIGNAL);
    if (w <= 0) break;
    out.sent += static_cast<size_t>(w);
  }
  ::close(fd);
  return out;
}

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.token_file = dir_.Join("api.token");
    options_.url_file = dir_.Join("api.url");
    server_ = Must(ApiServer::Start(options_, queue_, handler_));
    token_ = std::string(AsChars(Must(ReadApiToken(options_.token_file)).view()));
    loop_ = std::thread([this] {
      while (!stop_) {
        queue_.RunPending();
        std::this_thread::sleep_for(milliseconds(1));
      }
    });
  }

  void TearDown() override { StopAll(); }

  void StopAll() {
    if (server_) server_->Stop();
    stop_ = true;
    if (loop_.joinable()) loop_.join();
  }

  std::unique_ptr<httplib::Client> Client(std::optional<std::string> token = std::nullopt) {
    auto c = std::make_unique<httplib::Client>(server_->url());
    c->set_read_timeout(10, 0);
    std::string t = token.value_or(token_);
    if (!t.empty()) c->set_bearer_token_auth(t);
    return c;
  }

  httplib::Result Send(httplib::Client& c, const std::string& method, const std::string& path,
                       const std::string& body = "{}",
                       const std::string& type = "application/json") {
    if (method == "GET") return c.Get(path);
    if (method == "PUT") return c.Put(path, body, type);
    return c.Post(path, body, type);
  }

  static Json BodyOf(const httplib::Result& r) { return Json::parse(r->body); }

  LogCapture log_;
  TempDir dir_;
  ApiOptions options_;
  CommandQueue queue_;
  FakeHandler handler_;
  std::unique_ptr<ApiServer> server_;
  std::string token_;
  std::atomic<bool> stop_{false};
  std::thread loop_;
};

// ---------------------------------------------------------------- authentication

TEST_F(ApiTest, HealthzNeedsNoToken) {
  auto r = Client("")->Get("/v1/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(BodyOf(r)["status"], "ok");
  EXPECT_TRUE(handler_.requests().empty());
}

TEST_F(ApiTest, EveryOtherRouteNeedsTheToken) {
  for (const auto& route : Routes()) {
    if (route.route == Route::kHealth || route.route == Route::kLogin) continue;
    std::string path(route.path);
    for (std::string_view param : {"{id}", "{case}"}) {
      if (auto at = path.find(param); at != std::string::npos) path.replace(at, param.size(), "x1");
    }
    for (std::optional<std::string> token :
         {std::optional<std::string>(""), std::optional<std::string>(std::string(64, 'a')),
          std::optional<std::string>(token_ + "0"), std::optional<std::string>(token_.substr(1))}) {
      auto c = Client(token);
      auto r = Send(*c, std::string(route.method), path, R"({"operator":"kim"})");
      ASSERT_TRUE(r) << route.path;
      EXPECT_EQ(r->status, 401) << route.method << " " << path;
      Json body = BodyOf(r);
      EXPECT_EQ(body["error"]["code"], "unauthenticated");
      EXPECT_TRUE(HasSubstr(body["error"]["message"].get<std::string>(), "Bearer"));
      EXPECT_EQ(r->get_header_value("WWW-Authenticate"), "Bearer");
    }
  }
  EXPECT_TRUE(handler_.requests().empty());
}

TEST_F(ApiTest, OtherSchemesAreRefused) {
  auto c = Client("");
  c->set_basic_auth("kim", token_);
  auto r = c->Get("/v1/status");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  httplib::Client raw(server_->url());
  auto r2 = raw.Get("/v1/status", {{"Authorization", token_}});  // no scheme
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->status, 401);
  auto r3 = raw.Get("/v1/status", {{"Authorization", "bearer  " + token_ + " "}});
  ASSERT_TRUE(r3);
  EXPECT_EQ(r3->status, 200) << "the scheme is case-insensitive; spaces around are fine";
}

// Issue 17 item 6: DNS rebinding. A page on another name that resolves to 127.0.0.1 reaches
// the port with its own Host (and Origin); a request naming another host or carrying a
// foreign Origin is refused before anything runs, even with the right token.
TEST_F(ApiTest, ForeignHostOrOriginIsRefusedEvenWithTheToken) {
  const int port = server_->port();
  const std::string p = std::to_string(port);
  const std::string auth = "Authorization: Bearer " + token_ + "\r\n";
  auto status = [&](const std::string& headers, std::string* body = nullptr) {
    return RawGet(port, "/v1/status", auth + headers, body);
  };
  EXPECT_EQ(status("Host: 127.0.0.1:" + p + "\r\n"), 200);
  EXPECT_EQ(status("Host: localhost:" + p + "\r\n"), 200);
  EXPECT_EQ(status("Host: LocalHost:" + p + "\r\n"), 200) << "host names have no case";
  EXPECT_EQ(status("Host: 127.0.0.1:" + p + "\r\nOrigin: http://127.0.0.1:" + p + "\r\n"), 200);
  EXPECT_EQ(status("Host: localhost:" + p + "\r\nOrigin: http://localhost:" + p + "\r\n"), 200);
  const size_t accepted = handler_.requests().size();
  std::string body;
  EXPECT_EQ(status("Host: rebind.attacker.example:" + p + "\r\n", &body), 421);
  Json j = Json::parse(body, nullptr, false);
  ASSERT_TRUE(j.is_object() && j.contains("error")) << body;
  EXPECT_TRUE(HasSubstr(j["error"].value("message", std::string()), "Host")) << body;
  EXPECT_EQ(status("Host: rebind.attacker.example\r\n"), 421);
  EXPECT_EQ(status("Host: 127.0.0.1\r\n"), 421) << "without the port";
  EXPECT_EQ(status("Host: 127.0.0.1:" + p + "0\r\n"), 421) << "another port";
  EXPECT_EQ(status(""), 421) << "no Host at all";
  EXPECT_EQ(
      status("Host: 127.0.0.1:" + p + "\r\nOrigin: http://rebind.attacker.example:" + p + "\r\n",
             &body),
      403);
  j = Json::parse(body, nullptr, false);
  ASSERT_TRUE(j.is_object() && j.contains("error")) << body;
  EXPECT_TRUE(HasSubstr(j["error"].value("message", std::string()), "Origin")) << body;
  EXPECT_EQ(status("Host: 127.0.0.1:" + p + "\r\nOrigin: null\r\n"), 403);
  EXPECT_EQ(status("Host: 127.0.0.1:" + p + "\r\nOrigin: https://127.0.0.1:" + p + "\r\n"), 403);
  EXPECT_EQ(RawGet(port, "/v1/healthz", "Host: rebind.attacker.example:" + p + "\r\n", nullptr),
            421);
  EXPECT_EQ(handler_.requests().size(), accepted) << "a refused request reached the handler";
  // The client the CLI uses still works.
  auto r = Client()->Get("/v1/status");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(ApiTest, LogsNeverHoldTheTokenOrBodies) {
  auto good = Client();
  ASSERT_TRUE(Send(*good, "POST", "/v1/referrals", R"({"secret_field":"victim-name-xyz"})"));
  std::string wrong = std::string(63, 'b') + "c";
  auto bad = Client(wrong);
  ASSERT_TRUE(Send(*bad, "POST", "/v1/referrals", R"({"secret_field":"victim-name-xyz"})"));
  ASSERT_TRUE(Send(*good, "POST", "/v1/referrals", "not json victim-name-xyz"));
  StopAll();
  std::string log = log_.text();
  EXPECT_TRUE(HasSubstr(log, "POST /v1/referrals -> 201"));
  EXPECT_TRUE(HasSubstr(log, "POST /v1/referrals -> 401"));
  EXPECT_TRUE(HasSubstr(log, "POST /v1/referrals -> 400"));
  EXPECT_TRUE(HasSubstr(log, "wrong bearer token"));
  EXPECT_TRUE(HasSubstr(log, " ms"));
  EXPECT_EQ(log.find(token_), std::string::npos);
  EXPECT_EQ(log.find(wrong), std::string::npos);
  EXPECT_EQ(log.find("victim-name-xyz"), std::string::npos);
  EXPECT_EQ(log.find("secret_field"), std::string::npos);
}

// ---------------------------------------------------------------- routing

TEST_F(ApiTest, EveryRouteReachesItsHandlerWithIdAndBody) {
  auto c = Client();
  int n = 0;
  for (const auto& route : Routes()) {
    if (route.route == Route::kHealth || route.route == Route::kReady ||
        route.route == Route::kLogin || route.route == Route::kLogout ||
        route.route == Route::kSession) {
      continue;  // answered by the server itself
    }
    std::string id = "id-" + std::to_string(++n);
    std::string path(route.path);
    bool has_id = false;
    for (std::string_view param : {"{id}", "{case}"}) {
      if (auto at = path.find(param); at != std::string::npos) {
        path.replace(at, param.size(), id);
        has_id = true;
      }
    }
    Json body = {{"operator", "kim"}, {"n", n}, {"fields", {{{"category", "contact"}}}}};
    auto r = Send(*c, std::string(route.method), path, body.dump());
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, route.ok_status) << route.method << " " << path;
    EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
    EXPECT_EQ(r->get_header_value("Cache-Control"), "no-store");
    Json reply = BodyOf(r);
    EXPECT_EQ(reply["route"], static_cast<int>(route.route)) << path;
    EXPECT_EQ(reply["id"], has_id ? id : "") << path;
    auto seen = handler_.requests();
    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(seen.back().route, route.route) << path;
    EXPECT_EQ(seen.back().id, has_id ? id : "") << path;
    if (route.method == "GET") {
      EXPECT_TRUE(seen.back().body.is_null()) << path;
    } else {
      // The API token is the service account: an acting request's operator says so.
      Json expected = body;
      if (RouteActs(route.route)) expected["operator"] = "service:kim";
      EXPECT_EQ(seen.back().body, expected) << path;
      EXPECT_EQ(seen.back().operator_key, nullptr) << path;
    }
  }
  EXPECT_EQ(handler_.requests().size(), Routes().size() - 5);
}

TEST_F(ApiTest, CreationsAnswer201) {
  for (Route r :
       {Route::kRecordConsent, Route::kSendReferral, Route::kHandoff, Route::kRequestDeletion}) {
    EXPECT_EQ(InfoOf(r).ok_status, 201);
    EXPECT_EQ(InfoOf(r).method, "POST");
  }
  EXPECT_EQ(InfoOf(Route::kSetLocalCase).method, "PUT");
  EXPECT_EQ(InfoOf(Route::kChangeState).ok_status, 200);
}

TEST_F(ApiTest, PathIdsAreDecoded) {
  auto c = Client();
  auto r = c->Get("/v1/cases/2024%2D0012");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(handler_.requests().back().id, "2024-0012");
  EXPECT_EQ(handler_.requests().back().route, Route::kCase);
}

TEST_F(ApiTest, UnknownRouteIs404AndWrongMethod405) {
  auto c = Client();
  auto r = c->Get("/v1/nothing-here");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(BodyOf(r)["error"]["code"], "not-found");
  auto r2 = c->Put("/v1/referrals", "{}", "application/json");
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->status, 405);
  EXPECT_EQ(r2->get_header_value("Allow"), "GET, POST");
  EXPECT_EQ(BodyOf(r2)["error"]["code"], "invalid-argument");
  auto r3 = c->Get("/v1/referrals/abc/state");
  ASSERT_TRUE(r3);
  EXPECT_EQ(r3->status, 405);
  EXPECT_TRUE(handler_.requests().empty());
}

TEST_F(ApiTest, ReadyzFollowsTheHandler) {
  auto c = Client();
  handler_.ReplyWith({{"ready", false}});
  auto r = c->Get("/v1/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(BodyOf(r)["ready"], false);
  EXPECT_EQ(BodyOf(r)["error"]["code"], "unavailable");
  handler_.ReplyWith({{"ready", true}});
  r = c->Get("/v1/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(BodyOf(r)["ready"], true);
  EXPECT_EQ(handler_.requests().back().route, Route::kReady);
}

// ---------------------------------------------------------------- errors

TEST_F(ApiTest, StatusCodesMapToHttp) {
  struct Case {
    Status status;
    int http;
    const char* code;
  };
  const Case cases[] = {
      {InvalidArgument("'to' is missing"), 400, "invalid-argument"},
      {Malformed("bad bytes"), 400, "malformed"},
      {Unauthenticated("bad signature"), 401, "unauthenticated"},
      {PermissionDenied("category health is outside the consent"), 403, "permission-denied"},
      {NotFound("no referral 00ff"), 404, "not-found"},
      {FailedPrecondition("declined -> completed is not allowed"), 409, "failed-precondition"},
      {AlreadyExists("grant exists"), 409, "already-exists"},
      {Expired("the grant expired"), 409, "expired"},
      {Revoked("the grant was revoked"), 409, "revoked"},
      {ResourceExhausted("quota"), 503, "resource-exhausted"},
      {Unavailable("no broker session"), 503, "unavailable"},
      {IoError("disk"), 500, "io-error"},
      {Internal("bug"), 500, "internal"},
      {Rollback("older directory"), 500, "rollback"},
  };
  auto c = Client();
  for (const auto& tc : cases) {
    handler_.FailWith(tc.status);
    auto r = c->Post("/v1/referrals/ab/state", R"({"state":"completed"})", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, tc.http) << tc.status.ToString();
    EXPECT_EQ(HttpStatusFor(tc.status.code()), tc.http);
    Json body = BodyOf(r);
    EXPECT_EQ(body["error"]["code"], tc.code);
    EXPECT_EQ(body["error"]["message"], tc.status.message());
    EXPECT_EQ(body.size(), 1u);
  }
}

TEST_F(ApiTest, HandlerExceptionIs500) {
  handler_.ThrowNext();
  auto r = Client()->Get("/v1/status");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(BodyOf(r)["error"]["code"], "internal");
  // The loop survived it.
  r = Client()->Get("/v1/status");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(ApiTest, BodiesThatAreNotJsonObjectsAre400) {
  auto c = Client();
  struct Case {
    std::string body;
    std::string type;
    std::string says;
  };
  const Case cases[] = {
      {"to=seoul-counsel&purpose=legal victim-name-xyz", "application/json", "not valid JSON"},
      {"{\"a\": 1", "application/json", "not valid JSON"},
      {"[1,2,3]", "application/json", "must be a JSON object"},
      {"\"text\"", "application/json", "must be a JSON object"},
      {"", "application/json", "empty"},
      {"{}", "text/plain", "Content-Type"},
      {"{}", "application/x-www-form-urlencoded", "application/json"},
      {std::string(40, '[') + std::string(40, ']'), "application/json", "deeper"},
  };
  for (const auto& tc : cases) {
    auto r = c->Post("/v1/referrals", tc.body, tc.type.c_str());
    ASSERT_TRUE(r) << tc.body;
    EXPECT_EQ(r->status, 400) << tc.body;
    Json body = BodyOf(r);
    EXPECT_EQ(body["error"]["code"], "invalid-argument");
    std::string message = body["error"]["message"];
    EXPECT_TRUE(HasSubstr(message, tc.says));
    EXPECT_EQ(message.find("victim-name-xyz"), std::string::npos) << "no content echoed";
  }
  // A charset parameter is fine.
  auto r = c->Post("/v1/referrals", "{}", "application/json; charset=utf-8");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(handler_.requests().size(), 1u);
}

TEST_F(ApiTest, OversizedBodyIsRefused) {
  // Refused from Content-Length, before the body is read (the reply comes first).
  const std::string auth = "Authorization: Bearer " + token_ + "\r\n";
  ApiEarlyReply r =
      PostHeadersFirst(server_->port(), "/v1/referrals", auth, options_.max_body_bytes + 10);
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(handler_.requests().empty());
  // Just under the limit is served.
  std::string fits = "{\"v\":\"" + std::string(options_.max_body_bytes - 16, 'x') + "\"}";
  auto r2 = Client()->Post("/v1/referrals", fits, "application/json");
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->status, 201);
}

// Only the two bulk deletion routes take bodies past max_body_bytes (up to
// max_bulk_body_bytes); every other route refuses them from Content-Length.
TEST_F(ApiTest, BulkLimitOnlyForDeletionRoutes) {
  std::string two_mib = "{\"v\":\"" + std::string(2 * options_.max_body_bytes, 'x') + "\"}";
  for (const char* path : {"/v1/deletions", "/v1/deletions/q1/status"}) {
    auto r = Client()->Post(path, two_mib, "application/json");
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, std::string(path) == "/v1/deletions" ? 201 : 200) << path;
  }
  const std::string auth = "Authorization: Bearer " + token_ + "\r\n";
  for (const char* path : {"/v1/referrals", "/v1/consents", "/v1/deletions/q1/items.csv"}) {
    ApiEarlyReply r = PostHeadersFirst(server_->port(), path, auth, two_mib.size());
    EXPECT_EQ(r.status, 413) << path;
  }
  std::string too_big = "{\"v\":\"" + std::string(options_.max_bulk_body_bytes, 'x') + "\"}";
  auto r = Client()->Post("/v1/deletions", too_big, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_TRUE(HasSubstr(BodyOf(r)["error"]["message"].get<std::string>(), "33554432"));
  EXPECT_EQ(handler_.requests().size(), 2u);
}

// A bulk route takes up to 32 MiB, but only from a caller with credentials: a larger body
// than the small limit without them is refused from its headers, before a byte of it is
// read (the reply comes before the body is sent, and the server stops taking it).
TEST_F(ApiTest, UnauthenticatedBulkBodiesAreRefusedBeforeTheyAreRead) {
  constexpr size_t k20MiB = size_t{20} << 20;
  for (const std::string& headers :
       {std::string(), std::string("Authorization: Bearer ") + std::string(64, 'a') + "\r\n",
        std::string("Cookie: refbus_session_1=") + std::string(64, 'a') + "\r\n"}) {
    ApiEarlyReply r = PostHeadersFirst(server_->port(), "/v1/deletions", headers, k20MiB);
    EXPECT_EQ(r.status, 401) << headers;
    EXPECT_LT(r.sent, k20MiB / 2) << "the server kept reading the body";
  }
  // A chunked body (no Content-Length) to a bulk route without credentials: the same.
  ApiEarlyReply chunked = PostHeadersFirst(server_->port(), "/v1/deletions/q1/status",
                                           "Transfer-Encoding: chunked\r\n", 0);
  EXPECT_EQ(chunked.status, 401);
  EXPECT_TRUE(handler_.requests().empty());
  // (With the token a bulk body is read: BulkLimitOnlyForDeletionRoutes.)
  // The server still serves afterwards.
  auto after = Client()->Get("/v1/status");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
}

// ---------------------------------------------------------------- start-up

TEST_F(ApiTest, WritesTheUrlFilePrivateAndRemovesItOnStop) {
  EXPECT_EQ(test::FileMode(options_.url_file), 0600);
  Bytes url = test::ReadAll(options_.url_file);
  EXPECT_EQ(std::string(AsChars(url)), server_->url() + "\n");
  EXPECT_TRUE(HasSubstr(server_->url(), "http://127.0.0.1:"));
  EXPECT_GT(server_->port(), 0);
  StopAll();
  EXPECT_FALSE(PathExists(options_.url_file));
}

TEST_F(ApiTest, TokenFileIsCreated0600AndReusedAcrossRestarts) {
  EXPECT_EQ(test::FileMode(options_.token_file), 0600);
  std::string content(AsChars(test::ReadAll(options_.token_file)));
  ASSERT_EQ(content.size(), 65u);
  EXPECT_EQ(content.back(), '\n');
  EXPECT_EQ(content.substr(0, 64), token_);
  StopAll();
  CommandQueue q2;
  auto again = Must(ApiServer::Start(options_, q2, handler_));
  EXPECT_EQ(std::string(AsChars(Must(ReadApiToken(options_.token_file)).view())), token_);
  again->Stop();
}

TEST(ApiStartTest, TokenFileIsCreated0600WhateverTheUmask) {
  TempDir dir;
  test::UmaskGuard umask(0);
  auto token = LoadOrCreateApiToken(dir.Join("t"));
  ASSERT_TRUE(IsOk(token));
  EXPECT_EQ(test::FileMode(dir.Join("t")), 0600);
  EXPECT_EQ(token->size(), 64u);
  auto other = LoadOrCreateApiToken(dir.Join("u"));
  ASSERT_TRUE(IsOk(other));
  EXPECT_NE(AsChars(token->view()), AsChars(other->view()));
}

TEST(ApiStartTest, GroupReadableTokenFileIsRefused) {
  TempDir dir;
  std::string path = dir.Join("api.token");
  std::string hex(64, 'a');
  test::WriteRaw(path, AsBytes(hex + "\n"), 0640);
  auto t = LoadOrCreateApiToken(path);
  EXPECT_TRUE(HasError(t, Status::Code::kPermissionDenied, "chmod 600 " + path));
  EXPECT_TRUE(HasError(ReadApiToken(path), Status::Code::kPermissionDenied, "0640"));
  CommandQueue q;
  FakeHandler h;
  ApiOptions o;
  o.token_file = path;
  EXPECT_TRUE(HasError(ApiServer::Start(o, q, h), Status::Code::kPermissionDenied, "chmod 600"));
  test::WriteRaw(path, AsBytes(hex + "\n"), 0604);
  EXPECT_TRUE(HasError(LoadOrCreateApiToken(path), Status::Code::kPermissionDenied, "chmod"));
  ::chmod(path.c_str(), 0600);
  EXPECT_TRUE(IsOk(LoadOrCreateApiToken(path)));
}

TEST(ApiStartTest, MalformedTokenFileIsRefused) {
  TempDir dir;
  std::string path = dir.Join("api.token");
  for (std::string content : {std::string(63, 'a'), std::string(64, 'A'), std::string(65, 'a'),
                              std::string(64, 'g'), std::string()}) {
    test::WriteRaw(path, AsBytes(content), 0600);
    EXPECT_TRUE(HasError(LoadOrCreateApiToken(path), Status::Code::kMalformed, "64 lowercase hex"))
        << content;
  }
  EXPECT_TRUE(
      HasError(ReadApiToken(dir.Join("missing")), Status::Code::kNotFound, "refbus-agent run"));
}

TEST(ApiStartTest, NonLoopbackAddressesAreRefused) {
  for (const char* listen :
       {"0.0.0.0:0", "0.0.0.0:8080", "192.168.1.10:8080", "10.0.0.1:0", "255.255.255.255:1"}) {
    EXPECT_TRUE(HasError(ParseLoopbackListen(listen), Status::Code::kInvalidArgument, "loopback"))
        << listen;
  }
  for (const char* listen : {"localhost:0", "example.org:80", "[::]:0", "::1:0"}) {
    EXPECT_TRUE(HasError(ParseLoopbackListen(listen), Status::Code::kInvalidArgument, "127.0.0.1"))
        << listen;
  }
  for (const char* listen :
       {"127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:80x", ":80"}) {
    EXPECT_TRUE(HasCode(ParseLoopbackListen(listen), Status::Code::kInvalidArgument)) << listen;
  }
  auto ok = ParseLoopbackListen("127.0.0.1:8080");
  ASSERT_TRUE(IsOk(ok));
  EXPECT_EQ(ok->host, "127.0.0.1");
  EXPECT_EQ(ok->port, 8080);
  EXPECT_TRUE(IsOk(ParseLoopbackListen("127.1.2.3:0")));

  TempDir dir;
  CommandQueue q;
  FakeHandler h;
  ApiOptions o;
  o.token_file = dir.Join("api.token");
  o.listen = "0.0.0.0:0";
  EXPECT_TRUE(HasError(ApiServer::Start(o, q, h), Status::Code::kInvalidArgument,
                       "reachable from other machines"));
  EXPECT_FALSE(PathExists(o.token_file)) << "refused before anything is written";
}

TEST(ApiStartTest, AllowedHostsAddNamesForHostAndOrigin) {
  TempDir dir;
  CommandQueue q;
  FakeHandler h;
  ApiOptions o;
  o.token_file = dir.Join("api.token");
  o.allowed_hosts = {"Console.Agency.Example", "proxy.example:8443"};
  auto server = Must(ApiServer::Start(o, q, h));
  const std::string p = std::to_string(server->port());
  // healthz needs no token: enough to see the Host and Origin checks.
  EXPECT_EQ(
      RawGet(server->port(), "/v1/healthz", "Host: console.agency.example:" + p + "\r\n", nullptr),
      200);
  EXPECT_EQ(
      RawGet(server->port(), "/v1/healthz",
             "Host: 127.0.0.1:" + p + "\r\nOrigin: http://console.agency.example:" + p + "\r\n",
             nullptr),
      200);
  EXPECT_EQ(RawGet(server->port(), "/v1/healthz", "Host: proxy.example:8443\r\n", nullptr), 200);
  EXPECT_EQ(RawGet(server->port(), "/v1/healthz", "Host: proxy.example:" + p + "\r\n", nullptr),
            421);
  EXPECT_EQ(
      RawGet(server->port(), "/v1/healthz", "Host: other.agency.example:" + p + "\r\n", nullptr),
      421);
  server->Stop();
}

TEST(ApiStartTest, APortInUseIsAClearError) {
  TempDir dir;
  CommandQueue q1, q2;
  FakeHandler h;
  ApiOptions o;
  o.token_file = dir.Join("api.token");
  auto first = Must(ApiServer::Start(o, q1, h));
  o.listen = "127.0.0.1:" + std::to_string(first->port());
  EXPECT_TRUE(HasError(ApiServer::Start(o, q2, h), Status::Code::kUnavailable, "cannot listen"));
}

// ---------------------------------------------------------------- CommandQueue

TEST(CommandQueueTest, RunsClosuresOnTheDrainingThread) {
  CommandQueue q;
  std::atomic<bool> stop{false};
  std::thread loop([&] {
    while (!stop) {
      q.RunPending();
      std::this_thread::sleep_for(milliseconds(1));
    }
  });
  std::vector<std::thread::id> ran_on(8);
  std::vector<std::thread> callers;
  for (size_t i = 0; i < ran_on.size(); ++i) {
    callers.emplace_back([&, i] {
      EXPECT_TRUE(
          IsOk(q.Run([&, i] { ran_on[i] = std::this_thread::get_id(); }, milliseconds(10000))));
    });
  }
  for (auto& t : callers) t.join();
  std::thread::id loop_id = loop.get_id();
  stop = true;
  loop.join();
  for (auto id : ran_on) EXPECT_EQ(id, loop_id);
}

TEST(CommandQueueTest, TimesOutCleanlyAndNeverRunsTheWithdrawnClosure) {
  CommandQueue q;
  bool ran = false;
  auto started = std::chrono::steady_clock::now();
  Status s = q.Run([&] { ran = true; }, milliseconds(50));
  EXPECT_TRUE(HasError(s, Status::Code::kResourceExhausted, "agent busy"));
  EXPECT_TRUE(HasSubstr(s.message(), "not run"));
  EXPECT_GE(std::chrono::steady_clock::now() - started, milliseconds(50));
  EXPECT_EQ(q.RunPending(), 0u);
  EXPECT_FALSE(ran);
  // The queue still works afterwards.
  std::thread loop([&] {
    for (int i = 0; i < 5000 && q.RunPending() == 0; ++i) {
      std::this_thread::sleep_for(milliseconds(1));
    }
  });
  EXPECT_TRUE(IsOk(q.Run([&] { ran = true; }, milliseconds(10000))));
  loop.join();
  EXPECT_TRUE(ran);
}

TEST(CommandQueueTest, AStartedClosureIsWaitedForPastTheTimeout) {
  CommandQueue q;
  std::atomic<bool> done{false};
  std::thread loop([&] {
    while (q.RunPending() == 0) std::this_thread::sleep_for(milliseconds(1));
  });
  Status s = q.Run(
      [&] {
        std::this_thread::sleep_for(milliseconds(150));
        done = true;
      },
      milliseconds(50));
  loop.join();
  EXPECT_TRUE(IsOk(s));
  EXPECT_TRUE(done);
}

TEST(CommandQueueTest, CloseWakesWaitersAndRefusesNewWork) {
  CommandQueue q;
  bool ran = false;
  std::thread closer([&] {
    std::this_thread::sleep_for(milliseconds(50));
    q.Close();
  });
  Status s = q.Run([&] { ran = true; }, milliseconds(10000));
  closer.join();
  EXPECT_TRUE(HasError(s, Status::Code::kUnavailable, "stopping"));
  EXPECT_TRUE(HasCode(q.Run([&] { ran = true; }, milliseconds(10)), Status::Code::kUnavailable));
  EXPECT_EQ(q.RunPending(), 0u);
  EXPECT_FALSE(ran);
}

TEST(CommandQueueTest, AThrowingClosureDoesNotKillTheLoop) {
  CommandQueue q;
  std::thread loop([&] {
    for (int ran = 0; ran < 2;) {
      ran += static_cast<int>(q.RunPending());
      std::this_thread::sleep_for(milliseconds(1));
    }
  });
  EXPECT_TRUE(IsOk(q.Run([] { throw std::runtime_error("x"); }, milliseconds(10000))));
  bool ran = false;
  EXPECT_TRUE(IsOk(q.Run([&] { ran = true; }, milliseconds(10000))));
  loop.join();
  EXPECT_TRUE(ran);
}

// A server whose loop is not draining: requests time out as "agent busy", the handler never
// sees them, and healthz reports the stall.
TEST(ApiBusyTest, AStuckLoopAnswers503AndHealthzSaysSo) {
  TempDir dir;
  CommandQueue q;
  FakeHandler h;
  ApiOptions o;
  o.token_file = dir.Join("api.token");
  o.command_timeout = milliseconds(100);
  o.stall_after = milliseconds(50);
  auto server = Must(ApiServer::Start(o, q, h));
  std::string token(AsChars(Must(ReadApiToken(o.token_file)).view()));
  httplib::Client c(server->url());
  c.set_bearer_token_auth(token);
  auto r = c.Post("/v1/referrals", "{}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  Json body = Json::parse(r->body);
  EXPECT_EQ(body["error"]["code"], "resource-exhausted");
  EXPECT_TRUE(HasSubstr(body["error"]["message"].get<std::string>(), "agent busy"));
  std::this_thread::sleep_for(milliseconds(60));
  auto health = c.Get("/v1/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  EXPECT_EQ(Json::parse(health->body)["status"], "stalled");
  EXPECT_EQ(q.RunPending(), 0u);
  EXPECT_TRUE(h.requests().empty());
  server->Stop();
}

// Stop answers requests that are waiting for the loop with 503 instead of hanging.
TEST(ApiBusyTest, StopReleasesWaitingRequests) {
  TempDir dir;
  CommandQueue q;
  FakeHandler h;
  ApiOptions o;
  o.token_file = dir.Join("api.token");
  auto server = Must(ApiServer::Start(o, q, h));
  std::string token(AsChars(Must(ReadApiToken(o.token_file)).view()));
  std::optional<int> status;
  std::thread caller([&] {
    httplib::Client c(server->url());
    c.set_bearer_token_auth(token);
    auto r = c.Get("/v1/status");
    if (r) status = r->status;
  });
  std::this_thread::sleep_for(milliseconds(100));
  server->Stop();
  caller.join();
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 503);
  EXPECT_TRUE(h.requests().empty());
}

// ---------------------------------------------------------------- ApiClient

TEST_F(ApiTest, ApiClientCallsAndReportsAnUnreachableDaemon) {
  ApiClient client(server_->url(), Must(keys::SecretBuffer::CopyOf(AsBytes(token_))), 10);
  Json body = {{"operator", "kim"}, {"state", "accepted"}};
  auto r = client.Call("POST", "/v1/referrals/r1/state", &body);
  ASSERT_TRUE(IsOk(r));
  EXPECT_EQ(r->http_status, 200);
  EXPECT_EQ(r->body["id"], "r1");
  Json as_service = body;
  as_service["operator"] = "service:kim";
  EXPECT_EQ(handler_.requests().back().body, as_service);
  auto put = client.Call("PUT", "/v1/cases/c1/local", &body);
  ASSERT_TRUE(IsOk(put));
  EXPECT_EQ(handler_.requests().back().route, Route::kSetLocalCase);

  ApiClient wrong(server_->url(), Must(keys::SecretBuffer::CopyOf(AsBytes(std::string(64, 'f')))),
                  10);
  auto denied = wrong.Call("GET", "/v1/status", nullptr);
  ASSERT_TRUE(IsOk(denied));
  EXPECT_EQ(denied->http_status, 401);

  std::string url = server_->url();
  StopAll();
  auto gone = client.Call("GET", "/v1/status", nullptr);
  EXPECT_TRUE(HasError(gone, Status::Code::kUnavailable, url));
}

// ---------------------------------------------------------------- operator sessions

// The server with an operator store: sessions act as the logged-in operator.
class ApiOperatorTest : public ApiTest {
 protected:
  void SetUp() override {
    options_.operators_file = dir_.Join("operators.json");
    OperatorStore store(options_.operators_file);
    Must(store.Add("alice", OperatorRole::kCaseworker, AsBytes(kAlicePw), 1));
    Must(store.Add("rita", OperatorRole::kReadOnly, AsBytes(kRitaPw), 1));
    ApiTest::SetUp();
  }
  std::string Login(const std::string& name, const std::string& pw, int* status = nullptr) {
    auto c = Client("");
    auto r = Send(*c, "POST", "/v1/login", Json{{"operator", name}, {"password", pw}}.dump());
    if (status != nullptr) *status = r ? r->status : 0;
    return r && r->status == 200 ? BodyOf(r).value("token", "") : "";
  }
  const std::string kAlicePw = "alice long password";
  const std::string kRitaPw = "rita long password";
};

TEST_F(ApiOperatorTest, SessionTokenActsAsTheOperator) {
  std::string alice = Login("alice", kAlicePw);
  ASSERT_EQ(alice.size(), 64u);
  auto c = Client(alice);
  auto r = Send(*c, "POST", "/v1/consents", R"({"basis":"consent-subject"})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 201);
  auto seen = handler_.requests();
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().body["operator"], "alice");
  ASSERT_NE(seen.back().operator_key, nullptr);
  EXPECT_EQ(seen.back().operator_key->name(), "alice");
  // Naming someone else is refused before the handler runs.
  auto other = Send(*c, "POST", "/v1/consents", R"({"operator":"bob"})");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 400);
  EXPECT_EQ(handler_.requests().size(), seen.size());
  // Read-only: GET only.
  auto ro = Client(Login("rita", kRitaPw));
  EXPECT_EQ(Send(*ro, "GET", "/v1/consents")->status, 200);
  EXPECT_EQ(Send(*ro, "POST", "/v1/consents", "{}")->status, 403);
  // Logout ends the session; the API token cannot log out.
  EXPECT_EQ(Send(*c, "POST", "/v1/logout", "{}")->status, 200);
  EXPECT_EQ(Send(*c, "GET", "/v1/session")->status, 401);
  EXPECT_EQ(Send(*Client(), "POST", "/v1/logout", "{}")->status, 400);
}

TEST_F(ApiOperatorTest, LoginAnswersAndNeverLogsThePassword) {
  int status = 0;
  EXPECT_EQ(Login("alice", "not the password", &status), "");
  EXPECT_EQ(status, 401);
  EXPECT_EQ(Login("nobody", "not the password", &status), "");
  EXPECT_EQ(status, 401);
  auto c = Client("");
  auto bad = Send(*c, "POST", "/v1/login", R"({"operator":"alice"})");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  std::string token = Login("alice", kAlicePw);
  EXPECT_FALSE(token.empty());
  StopAll();
  EXPECT_EQ(log_.text().find(kAlicePw), std::string::npos);
  EXPECT_EQ(log_.text().find(token), std::string::npos);
  EXPECT_NE(log_.text().find("wrong password for operator 'alice'"), std::string::npos);
}

// ---------------------------------------------------------------- console cookie sessions

// A console login: the session as a cookie, the CSRF token in the body.
struct CookieLogin {
  int status = 0;
  std::string set_cookie;  // the Set-Cookie header
  std::string cookie;      // "NAME=VALUE", as the browser sends it back
  Json body;
};

class ApiCookieTest : public ApiOperatorTest {
 protected:
  CookieLogin LoginForCookie(const std::string& name, const std::string& pw) {
    CookieLogin out;
    auto c = Client("");
    auto r = Send(*c, "POST", "/v1/login",
                  Json{{"operator", name}, {"password", pw}, {"cookie", true}}.dump());
    if (!r) return out;
    out.status = r->status;
    out.body = Json::parse(r->body, nullptr, false);
    out.set_cookie = r->get_header_value("Set-Cookie");
    out.cookie = out.set_cookie.substr(0, out.set_cookie.find(';'));
    return out;
  }
  // A request with the cookie (and a CSRF header if csrf is not empty), no Authorization.
  httplib::Result WithCookie(const std::string& method, const std::string& path,
                             const std::string& cookie, const std::string& csrf,
                             const std::string& body = "{}") {
    auto c = Client("");
    httplib::Headers h = {{"Cookie", "other=1; " + cookie}};
    if (!csrf.empty()) h.emplace("X-Refbus-CSRF", csrf);
    if (method == "GET") return c->Get(path, h);
    return c->Post(path, h, body, "application/json");
  }
};

TEST_F(ApiCookieTest, ConsoleLoginSetsAnHttpOnlyStrictCookieAndReturnsACsrfToken) {
  CookieLogin login = LoginForCookie("alice", kAlicePw);
  ASSERT_EQ(login.status, 200) << login.body.dump();
  const std::string name = "refbus_session_" + std::to_string(server_->port()) + "=";
  EXPECT_EQ(login.set_cookie.rfind(name, 0), 0u) << login.set_cookie;
  EXPECT_EQ(login.cookie.size(), name.size() + 64) << login.set_cookie;
  EXPECT_TRUE(HasSubstr(login.set_cookie, "; HttpOnly"));
  EXPECT_TRUE(HasSubstr(login.set_cookie, "; SameSite=Strict"));
  EXPECT_TRUE(HasSubstr(login.set_cookie, "; Path=/"));
  EXPECT_EQ(login.set_cookie.find("Secure"), std::string::npos) << "no TLS configured";
  // The page gets the CSRF token, never the session token (HttpOnly would be moot).
  EXPECT_FALSE(login.body.contains("token")) << login.body.dump();
  ASSERT_TRUE(login.body.contains("csrf_token"));
  EXPECT_EQ(login.body["csrf_token"].get<std::string>().size(), 64u);
  EXPECT_EQ(login.body["operator"], "alice");
  // GET /v1/session with the cookie gives the same token back (a reloaded page).
  auto who = WithCookie("GET", "/v1/session", login.cookie, "");
  ASSERT_TRUE(who);
  EXPECT_EQ(who->status, 200);
  EXPECT_EQ(BodyOf(who).value("csrf_token", ""), login.body["csrf_token"]);
  // A bearer login (the CLI, case software) is unchanged: the token in the body, no cookie.
  auto c = Client("");
  auto bearer =
      Send(*c, "POST", "/v1/login", Json{{"operator", "alice"}, {"password", kAlicePw}}.dump());
  ASSERT_TRUE(bearer);
  EXPECT_EQ(bearer->get_header_value("Set-Cookie"), "");
  EXPECT_EQ(BodyOf(bearer).value("token", "").size(), 64u);
}

TEST_F(ApiCookieTest, StateChangeByCookieWithoutTheCsrfTokenIsRefused403AndLogged) {
  CookieLogin login = LoginForCookie("alice", kAlicePw);
  ASSERT_EQ(login.status, 200);
  const std::string csrf = login.body.value("csrf_token", "");
  auto get = WithCookie("GET", "/v1/consents", login.cookie, "");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 200) << "a GET needs no CSRF token";
  const size_t before = handler_.requests().size();
  auto none = WithCookie("POST", "/v1/consents", login.cookie, "");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 403) << none->body;
  EXPECT_TRUE(HasSubstr(none->body, "X-Refbus-CSRF"));
  std::string wrong = csrf;
  wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
  auto bad = WithCookie("POST", "/v1/consents", login.cookie, wrong);
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 403);
  auto shorter = WithCookie("POST", "/v1/consents", login.cookie, csrf.substr(0, 10));
  ASSERT_TRUE(shorter);
  EXPECT_EQ(shorter->status, 403);
  EXPECT_EQ(handler_.requests().size(), before) << "a refused request never reaches the engine";
  // Another session's CSRF token does not fit this session.
  CookieLogin other = LoginForCookie("alice", kAlicePw);
  auto crossed = WithCookie("POST", "/v1/consents", login.cookie, other.body["csrf_token"]);
  ASSERT_TRUE(crossed);
  EXPECT_EQ(crossed->status, 403);
  auto good = WithCookie("POST", "/v1/consents", login.cookie, csrf);
  ASSERT_TRUE(good);
  EXPECT_EQ(good->status, 201) << good->body;
  EXPECT_EQ(handler_.requests().back().body["operator"], "alice");
  // A session token as a Bearer header needs no CSRF token (no browser sends it by itself).
  auto bearer = Client(Login("alice", kAlicePw));
  EXPECT_EQ(Send(*bearer, "POST", "/v1/consents", "{}")->status, 201);
  StopAll();
  EXPECT_TRUE(HasSubstr(log_.text(), "no or wrong CSRF token"));
  EXPECT_EQ(log_.text().find(csrf), std::string::npos) << "the CSRF token is not logged";
}

// The session cookie alone is not credentials for a large body: it takes the CSRF token too.
TEST_F(ApiCookieTest, ABulkBodyByCookieWithoutTheCsrfTokenIsRefusedBeforeItIsRead) {
  CookieLogin login = LoginForCookie("alice", kAlicePw);
  ASSERT_EQ(login.status, 200);
  // 20 MiB, like UnauthenticatedBulkBodiesAreRefusedBeforeTheyAreRead: the kernel's socket
  // buffers on loopback take up to about 4 MiB that nobody reads (tcp_wmem's maximum), so a
  // smaller body could be "sent" in full while the server is slow to close (CI, ASan).
  constexpr size_t k20MiB = size_t{20} << 20;
  ApiEarlyReply r = PostHeadersFirst(server_->port(), "/v1/deletions",
                                     "Cookie: " + login.cookie + "\r\n", k20MiB);
  EXPECT_EQ(r.status, 401);
  EXPECT_LT(r.sent, k20MiB / 2) << "the server kept reading the body";
  EXPECT_TRUE(handler_.requests().empty());
}

TEST_F(ApiCookieTest, LogoutEndsTheSessionAndClearsTheCookie) {
  CookieLogin login = LoginForCookie("alice", kAlicePw);
  ASSERT_EQ(login.status, 200);
  const std::string csrf = login.body.value("csrf_token", "");
  auto no_csrf = WithCookie("POST", "/v1/logout", login.cookie, "");
  ASSERT_TRUE(no_csrf);
  EXPECT_EQ(no_csrf->status, 403) << "another site cannot log the operator out either";
  auto out = WithCookie("POST", "/v1/logout", login.cookie, csrf);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->status, 200) << out->body;
  const std::string cleared = out->get_header_value("Set-Cookie");
  EXPECT_EQ(cleared.rfind("refbus_session_" + std::to_string(server_->port()) + "=;", 0), 0u)
      << cleared;
  EXPECT_TRUE(HasSubstr(cleared, "Max-Age=0"));
  auto after = WithCookie("GET", "/v1/session", login.cookie, "");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 401);
}

TEST_F(ApiCookieTest, AnUnknownOrDoubledCookieIsNotASession) {
  CookieLogin login = LoginForCookie("alice", kAlicePw);
  ASSERT_EQ(login.status, 200);
  const std::string name = login.cookie.substr(0, login.cookie.find('=') + 1);
  auto forged = WithCookie("GET", "/v1/session", name + std::string(64, 'a'), "");
  ASSERT_TRUE(forged);
  EXPECT_EQ(forged->status, 401);
  // Two cookies of the name (one planted by a sibling site): refused, not guessed between.
  auto doubled = WithCookie("GET", "/v1/session", login.cookie + "; " + name + "x", "");
  ASSERT_TRUE(doubled);
  EXPECT_EQ(doubled->status, 401);
}

// ---------------------------------------------------------------- TLS (issue 18 item 4)

// A throwaway self-signed certificate for 127.0.0.1 and localhost, made by the openssl CLI
// (deploy/install-deps.sh installs it): *cert and *key get the PEM files' paths (the key
// 0600). Empty paths if openssl failed (the caller's ASSERT says so).
void MakeApiTlsTestCert(const TempDir& dir, const std::string& stem, std::string* cert,
                        std::string* key) {
  const std::string c = dir.Join(stem + ".crt"), k = dir.Join(stem + ".key");
  const std::string cmd =
      "umask 077; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
      "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout '" +
      k + "' -out '" + c + "' >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0 || !PathExists(c) || !PathExists(k)) return;
  *cert = c;
  *key = k;
}

std::string ApiTlsFileText(const std::string& path) {
  Bytes b = test::ReadAll(path);
  return std::string(AsChars(b));
}

class ApiTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeApiTlsTestCert(dir_, "console", &cert_, &key_);
    ASSERT_FALSE(cert_.empty()) << "the openssl CLI could not make a test certificate "
                                   "(deploy/install-deps.sh installs openssl)";
    options_.token_file = dir_.Join("api.token");
    options_.url_file = dir_.Join("api.url");
    options_.operators_file = dir_.Join("operators.json");
    options_.tls_cert = cert_;
    options_.tls_key = key_;
    OperatorStore store(options_.operators_file);
    Must(store.Add("alice", OperatorRole::kCaseworker, AsBytes(std::string(kTlsAlicePw)), 1));
  }

  std::unique_ptr<httplib::SSLClient> TlsClient(int port) {
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", port);
    c->set_ca_cert_path(cert_.c_str());
    c->enable_server_certificate_verification(true);
    c->set_read_timeout(10, 0);
    c->set_connection_timeout(5, 0);
    return c;
  }

  static constexpr const char* kTlsAlicePw = "alice long password";
  TempDir dir_;
  std::string cert_, key_;
  ApiOptions options_;
  CommandQueue queue_;
  FakeHandler handler_;
};

// With a certificate and key the API and the console are HTTPS only: a client that checks
// the certificate logs in and gets a Secure cookie; plain HTTP to the port gets no answer.
TEST_F(ApiTlsTest, ServesHttpsWithASecureCookieAndRefusesPlainHttp) {
  auto server = Must(ApiServer::Start(options_, queue_, handler_));
  EXPECT_EQ(server->url(), "https://127.0.0.1:" + std::to_string(server->port()));
  EXPECT_EQ(ApiTlsFileText(options_.url_file), server->url() + "\n");
  auto c = TlsClient(server->port());
  auto login = c->Post(
      "/v1/login", Json{{"operator", "alice"}, {"password", kTlsAlicePw}, {"cookie", true}}.dump(),
      "application/json");
  ASSERT_TRUE(login) << httplib::to_string(login.error());
  EXPECT_EQ(login->status, 200) << login->body;
  const std::string set_cookie = login->get_header_value("Set-Cookie");
  EXPECT_TRUE(HasSubstr(set_cookie, "; Secure")) << set_cookie;
  EXPECT_TRUE(HasSubstr(set_cookie, "; HttpOnly")) << set_cookie;
  // The cookie works over TLS (Host 127.0.0.1:PORT is this agent's).
  httplib::Headers h = {{"Cookie", set_cookie.substr(0, set_cookie.find(';'))}};
  auto who = c->Get("/v1/session", h);
  ASSERT_TRUE(who);
  EXPECT_EQ(who->status, 200) << who->body;
  auto page = c->Get("/console/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  // Plain HTTP to the TLS port: no HTTP answer at all.
  httplib::Client plain("http://127.0.0.1:" + std::to_string(server->port()));
  plain.set_read_timeout(5, 0);
  auto r = plain.Get("/v1/healthz");
  EXPECT_FALSE(r) << "plain HTTP was answered " << (r ? r->status : 0);
  // A client that does not trust this certificate does not connect either.
  httplib::SSLClient untrusting("127.0.0.1", server->port());
  untrusting.enable_server_certificate_verification(true);
  untrusting.set_ca_cert_path(dir_.Join("no-such-ca.pem").c_str());
  EXPECT_FALSE(untrusting.Get("/v1/healthz"));
  server->Stop();
}

// The CLI's client talks HTTPS to the agent when it names the certificate to check.
TEST_F(ApiTlsTest, ApiClientChecksTheAgentsCertificate) {
  auto server = Must(ApiServer::Start(options_, queue_, handler_));
  auto token = [&] { return Must(ReadApiToken(options_.token_file)); };
  ApiClient checked(server->url(), token(), 10, cert_);
  auto ok = checked.Call("GET", "/v1/healthz", nullptr);
  ASSERT_TRUE(IsOk(ok));
  EXPECT_EQ(ok->http_status, 200);
  std::string other_cert, other_key;
  MakeApiTlsTestCert(dir_, "stranger", &other_cert, &other_key);
  ASSERT_FALSE(other_cert.empty());
  ApiClient wrong(server->url(), token(), 10, other_cert);
  EXPECT_TRUE(HasCode(wrong.Call("GET", "/v1/healthz", nullptr), Status::Code::kUnavailable));
  ApiClient unchecked(server->url(), token(), 10);
  EXPECT_TRUE(HasError(unchecked.Call("GET", "/v1/healthz", nullptr),
                       Status::Code::kInvalidArgument, "no certificate to check"));
  server->Stop();
}

// With TLS the listen address may leave loopback (a center's LAN); without it, it may not.
TEST_F(ApiTlsTest, ANetworkListenNeedsTls) {
  EXPECT_TRUE(IsOk(ParseNetworkListen("192.168.0.5:8443")));
  EXPECT_TRUE(IsOk(ParseNetworkListen("0.0.0.0:0")));
  EXPECT_TRUE(HasCode(ParseNetworkListen("console.example:8443"), Status::Code::kInvalidArgument));
  ApiOptions plain = options_;
  plain.tls_cert.clear();
  plain.tls_key.clear();
  plain.listen = "0.0.0.0:0";
  EXPECT_TRUE(HasError(ApiServer::Start(plain, queue_, handler_), Status::Code::kInvalidArgument,
                       "reachable from other machines"));
  options_.listen = "0.0.0.0:0";
  auto server = Must(ApiServer::Start(options_, queue_, handler_));
  // The URL (for the CLI on this machine) names loopback, not 0.0.0.0.
  EXPECT_EQ(server->url(), "https://127.0.0.1:" + std::to_string(server->port()));
  auto r = TlsClient(server->port())->Get("/v1/healthz");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  server->Stop();
}

// Every broken TLS setting stops the start with a message naming the file and the fix, and
// never quoting the key.
TEST_F(ApiTlsTest, BadCertificateOrKeyRefusesToStart) {
  const std::string key_text = ApiTlsFileText(key_);
  // A line of the key's base64 body: it must never appear in a message.
  const std::string key_line = key_text.substr(key_text.find('\n') + 1, 40);
  auto refused = [&](const ApiOptions& o, const std::string& why) {
    auto r = ApiServer::Start(o, queue_, handler_);
    EXPECT_FALSE(r.ok()) << why;
    if (r.ok()) return;
    EXPECT_TRUE(HasSubstr(r.status().message(), why)) << r.status().message();
    EXPECT_EQ(r.status().message().find(key_line), std::string::npos) << "key bytes in message";
  };
  ApiOptions o = options_;
  o.tls_key.clear();
  refused(o, "both");
  o = options_;
  ASSERT_EQ(::chmod(key_.c_str(), 0640), 0);
  refused(o, "chmod 600");
  ASSERT_EQ(::chmod(key_.c_str(), 0600), 0);
  o.tls_cert = dir_.Join("missing.crt");
  refused(o, "missing.crt");
  o = options_;
  o.tls_cert = key_;  // a key where the certificate should be
  refused(o, "not a PEM certificate");
  o = options_;
  o.tls_key = cert_;  // a certificate where the key should be
  refused(o, "not a PEM private key");
  std::string other_cert, other_key;
  MakeApiTlsTestCert(dir_, "other", &other_cert, &other_key);
  ASSERT_FALSE(other_key.empty());
  o = options_;
  o.tls_key = other_key;
  refused(o, "does not match the certificate");
  EXPECT_FALSE(PathExists(options_.url_file)) << "nothing served, no URL written";
}

}  // namespace
}  // namespace refbus::agent
