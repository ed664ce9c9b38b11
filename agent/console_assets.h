// The console's static files (agent/console/), built into the agent binary.
//
// agent/console/embed.cmake generates console_assets.cpp at build time from the files listed
// in agent/CMakeLists.txt: the daemon reads nothing from disk and fetches nothing to serve
// the console, and the Debian package carries it inside refbus-agent.
//
// Thread safety: the table is constant data, readable from any thread.
#ifndef REFBUS_AGENT_CONSOLE_ASSETS_H_
#define REFBUS_AGENT_CONSOLE_ASSETS_H_

#include <span>
#include <string_view>

namespace refbus::agent {

struct ConsoleAsset {
  std::string_view path;          // under /console/: "index.html", "i18n/ko.json"
  std::string_view content_type;  // "text/html; charset=utf-8", ...
  std::span<const unsigned char> bytes;
};

// Every embedded file; valid for the whole process.
std::span<const ConsoleAsset> ConsoleAssets();

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_CONSOLE_ASSETS_H_
