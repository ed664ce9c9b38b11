// An agency's real refbus-agent daemon in integration tests (one per agency, on a
// Federation's keys and a broker's endpoint): its config in the test's work folder, its
// start, stop and signals, and a client for its local HTTP API.
//
// A test that cannot set up what it needs fails with the reason; nothing is skipped.
// Thread safety: one test thread.
#ifndef REFBUS_TESTS_INTEGRATION_AGENT_DAEMON_H_
#define REFBUS_TESTS_INTEGRATION_AGENT_DAEMON_H_

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>

#include "tests/integration/harness.h"

namespace refbus::testing {

using Json = nlohmann::json;

inline std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (in) std::getline(in, line);
  return line;
}

// One agency's refbus-agent daemon and a client for its API.
class AgentDaemon {
 public:
  AgentDaemon(const Federation& fed, std::string id, std::string work, std::string broker_ep)
      : fed_(fed), id_(std::move(id)), work_(std::move(work)), broker_ep_(std::move(broker_ep)) {}

  bool Start() {
    std::string dir = fed_.Dir(id_);
    data_ = work_ + "/" + id_ + "-agent";
    cfg_ = work_ + "/" + id_ + "-agent.toml";
    url_file_ = data_ + ".url";
    token_file_ = data_ + ".token";
    ::unlink(url_file_.c_str());
    std::ofstream out(cfg_);
    out << "[agent]\n"
        << "id = \"" << id_ << "\"\n"
        << "data_dir = \"" << data_ << "\"\n"
        << "key_file = \"" << dir << "/identity.key\"\n"
        << "directory = \"" << dir << "/directory\"\n"
        << "anchor = \"" << dir << "/authority.pub\"\n"
        << "trust_state = \"" << data_ << ".trust-state\"\n"
        << "broker_endpoint = \"" << broker_ep_ << "\"\n"
        << "[api]\n"
        << "listen = \"127.0.0.1:0\"\n"
        << "url_file = \"" << url_file_ << "\"\n"
        << "token_file = \"" << token_file_ << "\"\n"
        << extra_;
    out.close();
    log_ = data_ + ".log";
    if (!process_.Start({BinDir() + "/refbus-agent", "run", "-c", cfg_}, log_)) return false;
    for (int i = 0; i < 500; ++i) {
      std::string url = ReadFirstLine(url_file_);
      if (!url.empty()) {
        url_ = url;
        token_ = ReadFirstLine(token_file_);
        return !token_.empty();
      }
      if (process_.Wait(10) >= 0) break;
    }
    ADD_FAILURE() << id_ << ": refbus-agent run did not come up; log:\n" << Log();
    return false;
  }

  // More TOML appended to the config (whole sections, e.g. "[keys]\n...").
  void set_extra(std::string extra) { extra_ = std::move(extra); }
  void Signal(int sig) { process_.Signal(sig); }
  bool running() const { return process_.running(); }
  pid_t pid() const { return process_.pid(); }

  int Stop() {
    process_.Signal(SIGTERM);
    return process_.Wait(10000);
  }

  std::string Log() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  struct Reply {
    int status = 0;
    Json body;
  };
  Reply Call(const std::string& method, const std::string& path, const Json& body = nullptr,
             bool with_token = true) {
    httplib::Client c(url_);
    c.set_read_timeout(30, 0);
    httplib::Headers h;
    if (with_token) h.emplace("Authorization", "Bearer " + token_);
    httplib::Result r = method == "GET" ? c.Get(path.c_str(), h)
                        : method == "PUT"
                            ? c.Put(path.c_str(), h, body.dump(), "application/json")
                            : c.Post(path.c_str(), h, body.dump(), "application/json");
    Reply out;
    if (!r) {
      ADD_FAILURE() << id_ << " " << method << " " << path << ": no answer from the daemon";
      return out;
    }
    out.status = r->status;
    out.body = Json::parse(r->body, nullptr, false);
    return out;
  }
  // A call that must succeed; returns its body.
  Json Ok(const std::string& method, const std::string& path, const Json& body = nullptr) {
    Reply r = Call(method, path, body);
    EXPECT_TRUE(r.status == 200 || r.status == 201)
        << id_ << " " << method << " " << path << " -> " << r.status << " " << r.body.dump();
    return r.body;
  }
  // A call that must be refused with http_status and a message mentioning says.
  void Refused(const std::string& method, const std::string& path, const Json& body,
               int http_status, const std::string& says) {
    Reply r = Call(method, path, body);
    EXPECT_EQ(r.status, http_status) << id_ << " " << method << " " << path << " " << r.body.dump();
    std::string msg = r.body.is_object() && r.body.contains("error")
                          ? r.body["error"].value("message", "")
                          : r.body.dump();
    EXPECT_NE(msg.find(says), std::string::npos)
        << "refusal '" << msg << "' should mention '" << says << "'";
  }

  // Polls until pred(body of GET path) holds or timeout.
  Json WaitFor(const std::string& path, const std::function<bool(const Json&)>& pred,
               const std::string& what, int timeout_ms = 15000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    Json last;
    while (std::chrono::steady_clock::now() < deadline) {
      Reply r = Call("GET", path);
      if (r.status == 200) {
        last = r.body;
        if (pred(last)) return last;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << id_ << ": timed out waiting for " << what << "; last " << path << ": "
                  << last.dump(2) << "\nlog:\n"
                  << Log();
    return last;
  }

  // Waits until the daemon has a session with its broker (GET /v1/status session_ready).
  void WaitForSession() {
    WaitFor(
        "/v1/status", [](const Json& st) { return st.value("session_ready", false); },
        "a session with the broker");
  }

  const std::string& id() const { return id_; }
  const std::string& data_dir() const { return data_; }
  const std::string& url() const { return url_; }  // "http://127.0.0.1:PORT"

  const std::string& config_path() const { return cfg_; }
  const std::string& log_path() const { return log_; }
  // The folder of the agency's per-grant data keys (the default, <data_dir>/grant-keys).
  std::string grant_key_dir() const { return data_ + "/grant-keys"; }

 private:
  const Federation& fed_;
  std::string id_, work_, broker_ep_;
  std::string data_, cfg_, url_file_, token_file_, log_, url_, token_, extra_;
  Process process_;
};

inline const Json* FindBy(const Json& list, const std::string& key, const std::string& value) {
  for (const auto& x : list) {
    if (x.value(key, "") == value) return &x;
  }
  return nullptr;
}

// A deletion center's inbox holds a watch-list message whose outcome is `what` (or refused
// with `refused` in its reason).
inline bool InboxHasWatchList(const Json& inbox, const std::string& what,
                              const std::string& refused) {
  for (const auto& m : inbox) {
    if (m.value("kind", "") != "deletion-watch-list") continue;
    if (!what.empty() && m.value("watch_list", "") == what) return true;
    if (!refused.empty() && m.value("status", "") == "refused" &&
        m.value("refusal", "").find(refused) != std::string::npos) {
      return true;
    }
  }
  return false;
}

}  // namespace refbus::testing

#endif  // REFBUS_TESTS_INTEGRATION_AGENT_DAEMON_H_
