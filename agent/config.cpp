#include "agent/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <string_view>

#include "agent/listen.h"
#include "core/clock.h"
#include "core/config_reader.h"
#include "core/file.h"
#include "core/metrics.h"
#include "schema/codec.h"
#include "schema/types.h"

namespace refbus::agent {

namespace fs = std::filesystem;

namespace {

// [keys]: a rotation period below the prekeys' lifetime, so that a valid one is always
// published before the newest expires.
Status LoadKeysSection(ConfigReader& r, AgentConfig* c) {
  uint64_t days = 7;
  REFBUS_RETURN_IF_ERROR(r.Uint("keys", "prekey_rotate_days", 1, 29, &days));
  c->prekey_rotate_ms = days * kMillisPerDay;
  REFBUS_RETURN_IF_ERROR(
      r.Uint("keys", "test_prekey_rotate_ms", 100, c->prekey_rotate_ms, &c->prekey_rotate_ms));
  REFBUS_RETURN_IF_ERROR(r.Uint("keys", "test_prekey_lifetime_ms", 1000, c->prekey_lifetime_ms,
                                &c->prekey_lifetime_ms));
  REFBUS_RETURN_IF_ERROR(r.Uint("keys", "test_prekey_keep_after_expiry_ms", 0,
                                c->prekey_keep_after_expiry_ms, &c->prekey_keep_after_expiry_ms));
  if (c->prekey_rotate_ms >= c->prekey_lifetime_ms) {
    return r.Error("keys", "prekey_rotate_days",
                   "must be shorter than a prekey's lifetime (30 days)");
  }
  return Status::Ok();
}

// [deletion]: the chunk timeout, the work queue's deadline, and the tests' dropped chunk.
Status LoadDeletionSection(const toml::table& root, ConfigReader& r, AgentConfig* c) {
  REFBUS_RETURN_IF_ERROR(r.NoUnknown(
      "deletion", {"chunk_timeout_ms", "test_skip_chunk", "test_skip_watch_part", "overdue_days"}));
  REFBUS_RETURN_IF_ERROR(r.Uint("deletion", "overdue_days", 1, 3650, &c->deletion_overdue_days));
  REFBUS_RETURN_IF_ERROR(r.Uint("deletion", "chunk_timeout_ms", 100, 24 * 3600 * 1000ull,
                                &c->deletion_chunk_timeout_ms));
  uint64_t skip = 0;
  REFBUS_RETURN_IF_ERROR(r.Uint("deletion", "test_skip_chunk", 0, 1000, &skip));
  if (root.at_path("deletion.test_skip_chunk").node() != nullptr) {
    c->deletion_test_skip_chunk = static_cast<int64_t>(skip);
  }
  REFBUS_RETURN_IF_ERROR(r.Uint("deletion", "test_skip_watch_part", 0, 1000, &skip));
  if (root.at_path("deletion.test_skip_watch_part").node() != nullptr) {
    c->deletion_test_skip_watch_part = static_cast<int64_t>(skip);
  }
  return Status::Ok();
}

// [linkage] (PROTOCOL.md 13.6): the two evaluators (broker ids; endpoints default to the
// directory's), the escrow party and threshold, the evaluators' timeout.
Status LoadLinkageSection(ConfigReader& r, AgentConfig* c) {
  REFBUS_RETURN_IF_ERROR(
      r.NoUnknown("linkage", {"first_evaluator", "first_endpoint", "second_evaluator",
                              "second_endpoint", "escrow", "threshold", "timeout_ms"}));
  REFBUS_ASSIGN_OR_RETURN(c->linkage_first, r.String("linkage", "first_evaluator", false));
  REFBUS_ASSIGN_OR_RETURN(c->linkage_first_endpoint, r.String("linkage", "first_endpoint", false));
  REFBUS_ASSIGN_OR_RETURN(c->linkage_second, r.String("linkage", "second_evaluator", false));
  REFBUS_ASSIGN_OR_RETURN(c->linkage_second_endpoint,
                          r.String("linkage", "second_endpoint", false));
  REFBUS_ASSIGN_OR_RETURN(c->linkage_escrow, r.String("linkage", "escrow", false));
  REFBUS_RETURN_IF_ERROR(r.Uint("linkage", "threshold", 2, 16, &c->linkage_threshold));
  REFBUS_RETURN_IF_ERROR(r.Uint("linkage", "timeout_ms", 100, 600000, &c->linkage_timeout_ms));
  for (const auto* ep : {&c->linkage_first_endpoint, &c->linkage_second_endpoint}) {
    if (!ep->empty() && ep->rfind("tcp://", 0) != 0 && ep->rfind("ipc://", 0) != 0) {
      return r.Error("linkage",
                     ep == &c->linkage_first_endpoint ? "first_endpoint" : "second_endpoint",
                     "must start with tcp:// or ipc://");
    }
  }
  return Status::Ok();
}

// [api] listen and [console]: the console is served with the API, so a listen address off
// loopback would carry caseworkers' passwords and case data over the LAN; without TLS
// settings it is refused at start (with them the API serves HTTPS only).
Status ReadListenAndConsole(const toml::table& root, ConfigReader& r, AgentConfig& c) {
  if (const toml::node* n = root.at_path("api.listen").node(); n != nullptr) {
    auto v = n->value<std::string>();
    if (!v) return r.Error("api", "listen", "must be a string such as \"127.0.0.1:0\"");
    c.api_listen = *v;
  }
  REFBUS_ASSIGN_OR_RETURN(c.console_tls_cert, r.Path("console", "tls_cert", false));
  REFBUS_ASSIGN_OR_RETURN(c.console_tls_key, r.Path("console", "tls_key", false));
  if (c.console_tls_cert.empty() != c.console_tls_key.empty()) {
    return r.Error("console", c.console_tls_cert.empty() ? "tls_cert" : "tls_key",
                   "is missing: TLS needs both a certificate and its key");
  }
  // With TLS any IPv4 literal (the API serves HTTPS only, agent/api_tls.h); without, loopback.
  auto listen = c.console_tls_cert.empty() ? ParseLoopbackListen(c.api_listen)
                                           : ParseNetworkListen(c.api_listen);
  if (!listen.ok()) {
    return r.Error("api", "listen",
                   listen.status().message() +
                       (c.console_tls_cert.empty()
                            ? ". The console may serve a network only over TLS: set [console] "
                              "tls_cert and tls_key; without them the agent does not start"
                            : ""));
  }
  return Status();
}

// Only the known sections: a misspelt one would otherwise be ignored silently.
Status CheckSections(const toml::table& root, const std::string& path) {
  static constexpr std::array<std::string_view, 7> kKnown = {
      "agent", "api", "metrics", "keys", "console", "deletion", "linkage"};
  for (const auto& [k, v] : root) {
    if (std::find(kKnown.begin(), kKnown.end(), k.str()) == kKnown.end()) {
      return InvalidArgument(path + ": unknown section [" + std::string(k.str()) +
                             "] (known: [agent], [api], [metrics], [keys], [console], [deletion], "
                             "[linkage])");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<AgentConfig> LoadAgentConfig(const std::string& path) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return InvalidArgument(path + " line " + std::to_string(e.source().begin.line) + ": " +
                           std::string(e.description()));
  }
  REFBUS_RETURN_IF_ERROR(CheckSections(root, path));
  ConfigReader r(root, path);
  REFBUS_RETURN_IF_ERROR(
      r.NoUnknown("agent", {"id", "data_dir", "key_file", "passphrase_file", "directory", "anchor",
                            "trust_state", "broker_endpoint", "grant_key_dir"}));
  REFBUS_RETURN_IF_ERROR(
      r.NoUnknown("api", {"listen", "url_file", "token_file", "command_timeout_ms", "allowed_hosts",
                          "session_idle_timeout_ms", "lockout_after", "lockout_ms"}));
  REFBUS_RETURN_IF_ERROR(r.NoUnknown("metrics", {"bind", "url_file"}));
  REFBUS_RETURN_IF_ERROR(
      r.NoUnknown("keys", {"prekey_rotate_days", "test_prekey_rotate_ms", "test_prekey_lifetime_ms",
                           "test_prekey_keep_after_expiry_ms"}));
  REFBUS_RETURN_IF_ERROR(r.NoUnknown("console", {"tls_cert", "tls_key"}));
  AgentConfig c;
  c.path = path;
  REFBUS_ASSIGN_OR_RETURN(c.id, r.String("agent", "id", true));
  if (!schema::IsValidPartyId(c.id)) {
    return r.Error("agent", "id", "is not a valid party id (3-48 of a-z, 0-9, '-')");
  }
  REFBUS_ASSIGN_OR_RETURN(c.data_dir, r.Path("agent", "data_dir", true));
  REFBUS_ASSIGN_OR_RETURN(c.key_file, r.Path("agent", "key_file", true));
  REFBUS_ASSIGN_OR_RETURN(c.passphrase_file, r.Path("agent", "passphrase_file", false));
  REFBUS_ASSIGN_OR_RETURN(c.directory, r.Path("agent", "directory", true));
  REFBUS_ASSIGN_OR_RETURN(c.anchor, r.Path("agent", "anchor", true));
  REFBUS_ASSIGN_OR_RETURN(c.trust_state, r.Path("agent", "trust_state", true));
  REFBUS_ASSIGN_OR_RETURN(c.broker_endpoint, r.String("agent", "broker_endpoint", false));
  REFBUS_ASSIGN_OR_RETURN(c.grant_key_dir, r.Path("agent", "grant_key_dir", false));
  if (c.grant_key_dir.empty()) c.grant_key_dir = (fs::path(c.data_dir) / "grant-keys").string();
  if (!c.broker_endpoint.empty() && c.broker_endpoint.rfind("tcp://", 0) != 0 &&
      c.broker_endpoint.rfind("ipc://", 0) != 0) {
    return r.Error("agent", "broker_endpoint", "must start with tcp:// or ipc://");
  }
  struct Required {
    const std::string* file;
    const char* key;
  };
  for (const Required& f : {Required{&c.key_file, "key_file"}, Required{&c.directory, "directory"},
                            Required{&c.anchor, "anchor"}}) {
    if (!PathExists(*f.file)) {
      return InvalidArgument(path + ": file " + *f.file + " (from setting agent." + f.key +
                             ") does not exist");
    }
  }
  if (!c.passphrase_file.empty() && !PathExists(c.passphrase_file)) {
    return InvalidArgument(path + ": file " + c.passphrase_file +
                           " (from setting agent.passphrase_file) does not exist");
  }

  REFBUS_RETURN_IF_ERROR(ReadListenAndConsole(root, r, c));
  REFBUS_ASSIGN_OR_RETURN(c.api_url_file, r.Path("api", "url_file", false));
  REFBUS_ASSIGN_OR_RETURN(c.api_token_file, r.Path("api", "token_file", false));
  if (c.api_url_file.empty()) c.api_url_file = (fs::path(c.data_dir) / "api.url").string();
  if (c.api_token_file.empty()) c.api_token_file = (fs::path(c.data_dir) / "api.token").string();
  REFBUS_RETURN_IF_ERROR(
      r.Uint("api", "command_timeout_ms", 100, 600000, &c.api_command_timeout_ms));
  REFBUS_RETURN_IF_ERROR(
      r.Uint("api", "session_idle_timeout_ms", 1000, 86400000, &c.api_session_idle_timeout_ms));
  REFBUS_RETURN_IF_ERROR(r.Uint("api", "lockout_after", 3, 100, &c.api_lockout_after));
  REFBUS_RETURN_IF_ERROR(r.Uint("api", "lockout_ms", 1000, 86400000, &c.api_lockout_ms));
  if (const toml::node* n = root.at_path("api.allowed_hosts").node(); n != nullptr) {
    const toml::array* list = n->as_array();
    if (list == nullptr) {
      return r.Error("api", "allowed_hosts",
                     "must be a list of host names, such as [\"console.example\"]");
    }
    for (const auto& item : *list) {
      auto v = item.value<std::string>();
      if (!v || !IsAllowedHostEntry(*v)) {
        return r.Error("api", "allowed_hosts",
                       "holds an entry that is not a host name or NAME:PORT (letters, digits, "
                       "'.', '-', and one ':' before a port)");
      }
      c.api_allowed_hosts.push_back(*v);
    }
  }
  // [metrics]: absent, no listener; a bind that is not a loopback address is refused.
  if (root["metrics"].node() != nullptr) {
    REFBUS_ASSIGN_OR_RETURN(c.metrics_bind, r.String("metrics", "bind", true));
    if (auto a = ParseLoopbackBind(c.metrics_bind); !a.ok()) {
      return r.Error("metrics", "bind", a.status().message());
    }
    REFBUS_ASSIGN_OR_RETURN(c.metrics_url_file, r.Path("metrics", "url_file", false));
  }
  REFBUS_RETURN_IF_ERROR(LoadKeysSection(r, &c));
  REFBUS_RETURN_IF_ERROR(LoadDeletionSection(root, r, &c));
  REFBUS_RETURN_IF_ERROR(LoadLinkageSection(r, &c));
  return c;
}

}  // namespace refbus::agent
