#include "agent/console_server.h"

#include <memory>
#include <string>
#include <utility>

namespace refbus::agent {
namespace {

void ServeAsset(const ConsoleAsset& asset, httplib::Response& res) {
  res.status = 200;
  res.set_content(reinterpret_cast<const char*>(asset.bytes.data()), asset.bytes.size(),
                  std::string(asset.content_type));
}

}  // namespace

httplib::Headers ConsoleSecurityHeaders() {
  return {{"Content-Security-Policy", std::string(kConsoleCsp)},
          {"X-Content-Type-Options", "nosniff"},
          {"Referrer-Policy", "no-referrer"},
          {"X-Frame-Options", "DENY"},
          {"Cache-Control", "no-store"}};
}

const ConsoleAsset* FindConsoleAsset(std::string_view path) {
  for (const ConsoleAsset& asset : ConsoleAssets()) {
    if (asset.path == path) return &asset;
  }
  return nullptr;
}

void AddConsoleRoutes(httplib::Server& server, RequestCheck allowed) {
  auto check = std::make_shared<RequestCheck>(std::move(allowed));
  server.Get("/", [check](const httplib::Request& req, httplib::Response& res) {
    if (!(*check)(req, res)) return;
    res.status = 303;
    res.set_header("Location", "/console/");
    res.set_content("", "text/plain");
  });
  server.Get("/console/?", [check](const httplib::Request& req, httplib::Response& res) {
    if (!(*check)(req, res)) return;
    ServeAsset(*FindConsoleAsset("index.html"), res);
  });
  // Names are matched against the table, never used as file paths.
  server.Get("/console/([A-Za-z0-9_./-]{1,100})",
             [check](const httplib::Request& req, httplib::Response& res) {
               if (!(*check)(req, res)) return;
               const ConsoleAsset* asset = FindConsoleAsset(req.matches[1].str());
               if (asset == nullptr) {
                 res.status = 404;
                 res.set_content(
                     "{\"error\":{\"code\":\"not-found\",\"message\":\"no such "
                     "console file\"}}",
                     "application/json");
                 return;
               }
               ServeAsset(*asset, res);
             });
}

}  // namespace refbus::agent
