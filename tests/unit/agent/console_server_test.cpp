// The console on the agent's API server (agent/console_server.h): a real ApiServer on
// 127.0.0.1 port 0 with a fixed-reply handler, driven by httplib's client and raw sockets.
#include "agent/console_server.h"
#include "agent/console_session.h"

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include "agent/api.h"
#include "core/file.h"
#include "tests/unit/test_util.h"

namespace refbus::agent {
namespace {

using ::refbus::test::Must;
using ::refbus::test::TempDir;

class ListHandler final : public CommandHandler {
 public:
  Result<Json> Handle(const ApiRequest&) override { return Json::array(); }
};

// The status line and headers of one raw GET (headers as given, nothing added).
std::string RawHead(int port, const std::string& path, const std::string& headers) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (fd >= 0) ::close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.1\r\n" + headers + "Connection: close\r\n\r\n";
  std::string reply;
  if (::send(fd, req.data(), req.size(), 0) == static_cast<ssize_t>(req.size())) {
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) {
      reply.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return reply.substr(0, reply.find("\r\n\r\n"));
}

std::string AssetText(std::string_view path) {
  const ConsoleAsset* a = FindConsoleAsset(path);
  if (a == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(a->bytes.data()), a->bytes.size());
}

class ConsoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.token_file = dir_.Join("api.token");
    server_ = Must(ApiServer::Start(options_, queue_, handler_));
    token_ = std::string(AsChars(Must(ReadApiToken(options_.token_file)).view()));
    loop_ = std::thread([this] {
      while (!stop_) {
        queue_.RunPending();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  }
  void TearDown() override {
    server_->Stop();
    stop_ = true;
    loop_.join();
  }
  httplib::Client Client() {
    httplib::Client c(server_->url());
    c.set_read_timeout(10, 0);
    return c;
  }
  static void ExpectSecurityHeaders(const httplib::Result& r, const std::string& what) {
    ASSERT_TRUE(r) << what;
    EXPECT_EQ(r->get_header_value("Content-Security-Policy"), kConsoleCsp) << what;
    EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff") << what;
    EXPECT_EQ(r->get_header_value("Referrer-Policy"), "no-referrer") << what;
    EXPECT_EQ(r->get_header_value("Cache-Control"), "no-store") << what;
  }

  TempDir dir_;
  ApiOptions options_;
  CommandQueue queue_;
  ListHandler handler_;
  std::unique_ptr<ApiServer> server_;
  std::string token_;
  std::atomic<bool> stop_{false};
  std::thread loop_;
};

TEST_F(ConsoleTest, IndexIsServedWithoutATokenAndWithTheSecurityHeaders) {
  auto c = Client();
  auto r = c.Get("/console/");
  ExpectSecurityHeaders(r, "GET /console/");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(r->body.find("<html lang=\"ko\">"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("<script src=\"/console/app.js\" defer></script>"), std::string::npos);
}

TEST_F(ConsoleTest, RootRedirectsToTheConsole) {
  auto c = Client();
  auto r = c.Get("/");
  ExpectSecurityHeaders(r, "GET /");
  EXPECT_EQ(r->status, 303);
  EXPECT_EQ(r->get_header_value("Location"), "/console/");
}

TEST_F(ConsoleTest, EveryEmbeddedFileIsServedAsBuiltWithItsType) {
  std::set<std::string> paths;
  for (const ConsoleAsset& a : ConsoleAssets()) paths.emplace(a.path);
  EXPECT_EQ(paths,
            (std::set<std::string>{"index.html", "console.css", "text.js", "app.js", "forms.js",
                                   "linkage.js", "favicon.svg", "i18n/ko.json", "i18n/en.json"}));
  auto c = Client();
  for (const ConsoleAsset& a : ConsoleAssets()) {
    std::string path = "/console/" + std::string(a.path);
    auto r = c.Get(path);
    ExpectSecurityHeaders(r, path);
    EXPECT_EQ(r->status, 200) << path;
    EXPECT_EQ(r->get_header_value("Content-Type"), a.content_type) << path;
    EXPECT_EQ(r->body, AssetText(a.path)) << path;
    EXPECT_FALSE(r->body.empty()) << path;
  }
}

TEST_F(ConsoleTest, OtherNamesAre404AndNeverReachTheDisk) {
  auto c = Client();
  for (const std::string path : {"/console/nothing.js", "/console/../api.token",
                                 "/console/%2e%2e/api.token", "/console/i18n/xx.json"}) {
    auto r = c.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 404) << path;
    EXPECT_EQ(r->body.find(token_), std::string::npos) << path;
  }
}

TEST_F(ConsoleTest, ApiRepliesCarryNoStoreAndTheCspToo) {
  auto c = Client();
  auto refused = c.Get("/v1/inbox");  // no token
  ExpectSecurityHeaders(refused, "GET /v1/inbox without token");
  EXPECT_EQ(refused->status, 401);
  c.set_bearer_token_auth(token_);
  for (const char* path : {"/v1/inbox", "/v1/cases/c1", "/v1/directory", "/v1/referrals"}) {
    auto r = c.Get(path);
    ExpectSecurityHeaders(r, path);
    EXPECT_EQ(r->status, 200) << path;
  }
}

TEST_F(ConsoleTest, ForeignHostOrOriginIsRefusedForConsolePages) {
  const std::string p = std::to_string(server_->port());
  const std::string ok_host = "Host: 127.0.0.1:" + p + "\r\n";
  EXPECT_EQ(RawHead(server_->port(), "/console/", ok_host).substr(0, 12), "HTTP/1.1 200");
  EXPECT_EQ(RawHead(server_->port(), "/console/app.js", "Host: rebind.example:" + p + "\r\n")
                .substr(0, 12),
            "HTTP/1.1 421");
  EXPECT_EQ(RawHead(server_->port(), "/", "Host: rebind.example:" + p + "\r\n").substr(0, 12),
            "HTTP/1.1 421");
  EXPECT_EQ(RawHead(server_->port(), "/console/", ok_host + "Origin: http://evil.example\r\n")
                .substr(0, 12),
            "HTTP/1.1 403");
}

// The scripts never turn strings into markup or code: text other agencies wrote goes
// through textContent only (text.js).
TEST(ConsoleAssetsTest, ScriptsHaveNoMarkupOrCodeSinks) {
  for (const ConsoleAsset& a : ConsoleAssets()) {
    if (!a.path.ends_with(".js")) continue;
    std::string js = AssetText(a.path);
    for (const char* sink : {"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                             "eval(", "new Function", "setAttribute('on", "srcdoc"}) {
      EXPECT_EQ(js.find(sink), std::string::npos) << a.path << " uses " << sink;
    }
  }
  std::string html = AssetText("index.html");
  EXPECT_EQ(html.find("style="), std::string::npos) << "inline style in index.html";
  EXPECT_EQ(html.find("<style"), std::string::npos) << "inline style in index.html";
  EXPECT_EQ(std::regex_search(html, std::regex("<script>|<script(?![^>]*src=)")), false)
      << "inline script in index.html";
  EXPECT_EQ(html.find("http"), std::string::npos) << "external resource in index.html";
}

// Every catalog key app.js, forms.js and linkage.js name is in both catalogs, and the
// catalogs have the same keys.
TEST(ConsoleAssetsTest, CatalogsAreCompleteForEveryKeyTheScriptUses) {
  Json ko = Json::parse(AssetText("i18n/ko.json"));
  Json en = Json::parse(AssetText("i18n/en.json"));
  std::set<std::string> ko_keys, en_keys;
  for (const auto& [k, v] : ko.items()) ko_keys.insert(k);
  for (const auto& [k, v] : en.items()) en_keys.insert(k);
  EXPECT_EQ(ko_keys, en_keys);
  std::string js = AssetText("app.js") + AssetText("forms.js") + AssetText("linkage.js");
  std::regex key(R"(t\('([a-z][a-z_.-]*[a-z_])'\))");
  int used = 0;
  for (auto it = std::sregex_iterator(js.begin(), js.end(), key); it != std::sregex_iterator();
       ++it, ++used) {
    EXPECT_TRUE(ko.contains((*it)[1].str())) << "ko.json lacks " << (*it)[1].str();
  }
  EXPECT_GT(used, 120);
  // The keys linkage.js makes from an identifier kind: its name, its hint, its error.
  for (const char* kind : {"phone", "account", "email", "url", "content-sha256"}) {
    for (const char* family : {"linkage.kind.", "linkage.hint.", "linkage.err."}) {
      EXPECT_TRUE(ko.contains(std::string(family) + kind)) << "ko.json lacks " << family << kind;
    }
  }
}

// The session cookie among others: exact names only, one of them, spaces allowed.
TEST(ConsoleSessionTest, FindsTheSessionCookieByItsExactName) {
  const std::string name = SessionCookieName(8470);
  EXPECT_EQ(name, "refbus_session_8470");
  auto v = FindCookie({"a=1; refbus_session_8470=abc ;b=2"}, name);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "abc");
  // Another agent's cookie on the same machine (another port), or a longer name, is not it.
  EXPECT_EQ(FindCookie({"refbus_session_84701=x; xrefbus_session_8470=y"}, name).status().code(),
            Status::Code::kNotFound);
  EXPECT_EQ(FindCookie({}, name).status().code(), Status::Code::kNotFound);
  // Twice, in one header or across two: refused.
  EXPECT_EQ(FindCookie({"refbus_session_8470=a; refbus_session_8470=b"}, name).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(FindCookie({"refbus_session_8470=a", "refbus_session_8470=a"}, name).status().code(),
            Status::Code::kInvalidArgument);
}

TEST(ConsoleSessionTest, CookieFlags) {
  EXPECT_EQ(SessionCookie("refbus_session_1", "tok", false),
            "refbus_session_1=tok; Path=/; HttpOnly; SameSite=Strict");
  EXPECT_EQ(SessionCookie("refbus_session_1", "tok", true),
            "refbus_session_1=tok; Path=/; HttpOnly; SameSite=Strict; Secure");
  EXPECT_EQ(ClearedSessionCookie("refbus_session_1", false),
            "refbus_session_1=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict");
}

}  // namespace
}  // namespace refbus::agent
