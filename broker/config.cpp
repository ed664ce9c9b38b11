#include "broker/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "broker/metrics.h"
#include "core/config_reader.h"
#include "schema/codec.h"
#include "schema/types.h"

namespace refbus::broker {
namespace {

namespace fs = std::filesystem;

// [witness] peers, endpoints and endpoint_files.
Status LoadWitnessPeers(const toml::table& root, const ConfigReader& r, Config& c) {
  const toml::node* peers = root.at_path("witness.peers").node();
  if (peers == nullptr) {
    for (const char* key : {"endpoints", "endpoint_files"}) {
      if (root.at_path(std::string("witness.") + key).node() != nullptr) {
        return r.Error("witness", key, "is set but witness.peers is not");
      }
    }
    return Status::Ok();
  }
  const toml::array* list = peers->as_array();
  if (list == nullptr) return r.Error("witness", "peers", "must be a list of broker ids");
  for (const toml::node& n : *list) {
    auto id = n.value<std::string>();
    if (!id || !schema::IsValidPartyId(*id)) {
      return r.Error("witness", "peers", "holds something that is not a party id");
    }
    if (*id == c.id) return r.Error("witness", "peers", "names this broker itself");
    for (const auto& p : c.witness_peers) {
      if (p.id == *id) return r.Error("witness", "peers", "names " + *id + " twice");
    }
    c.witness_peers.push_back({*id, "", ""});
  }
  for (const char* key : {"endpoints", "endpoint_files"}) {
    const toml::node* n = root.at_path(std::string("witness.") + key).node();
    if (n == nullptr) continue;
    const toml::table* t = n->as_table();
    if (t == nullptr) return r.Error("witness", key, "must be a table of peer id = string");
    for (const auto& [k, v] : *t) {
      const std::string id(k.str());  // lambdas may not capture a structured binding (clang)
      auto value = v.value<std::string>();
      if (!value || value->empty()) {
        return r.Error("witness", std::string(key) + "." + id, "must be a non-empty string");
      }
      auto peer = std::find_if(c.witness_peers.begin(), c.witness_peers.end(),
                               [&](const WitnessPeerConfig& p) { return p.id == id; });
      if (peer == c.witness_peers.end()) {
        return r.Error("witness", std::string(key) + "." + id, "is not one of witness.peers");
      }
      if (std::string_view(key) == "endpoints") {
        if (value->rfind("tcp://", 0) != 0 && value->rfind("ipc://", 0) != 0) {
          return r.Error("witness", "endpoints." + id, "must start with tcp:// or ipc://");
        }
        peer->endpoint = *value;
      } else {
        peer->endpoint_file = r.Resolve(*value);
      }
    }
  }
  return Status::Ok();
}

// [federation] endpoints and endpoint_files: tables of broker id = string.
Status LoadPeerTable(const toml::table& root, const ConfigReader& r, const Config& c,
                     const char* key, std::map<std::string, std::string>& out) {
  const toml::node* n = root.at_path(std::string("federation.") + key).node();
  if (n == nullptr) return Status::Ok();
  const toml::table* t = n->as_table();
  if (t == nullptr) return r.Error("federation", key, "must be a table of broker id = string");
  for (const auto& [k, v] : *t) {
    const std::string id(k.str());
    auto value = v.value<std::string>();
    if (!schema::IsValidPartyId(id)) {
      return r.Error("federation", std::string(key) + "." + id, "does not name a broker id");
    }
    if (id == c.id) return r.Error("federation", std::string(key) + "." + id, "names this broker");
    if (!value || value->empty()) {
      return r.Error("federation", std::string(key) + "." + id, "must be a non-empty string");
    }
    if (std::string_view(key) == "endpoints") {
      if (value->rfind("tcp://", 0) != 0 && value->rfind("ipc://", 0) != 0) {
        return r.Error("federation", "endpoints." + id, "must start with tcp:// or ipc://");
      }
      out[id] = *value;
    } else {
      out[id] = r.Resolve(*value);
    }
  }
  return Status::Ok();
}

// [metrics]: absent, no listener; a bind that is not a loopback address is refused.
Status LoadMetrics(const toml::table& root, ConfigReader& r, Config& c) {
  if (root["metrics"].node() == nullptr) return Status::Ok();
  REFBUS_ASSIGN_OR_RETURN(c.metrics_bind, r.String("metrics", "bind", true));
  if (auto a = ParseLoopbackBind(c.metrics_bind); !a.ok()) {
    return r.Error("metrics", "bind", a.status().message());
  }
  REFBUS_ASSIGN_OR_RETURN(c.metrics_url_file, r.Path("metrics", "url_file", false));
  return Status::Ok();
}

}  // namespace

uint64_t DefaultIoThreads(unsigned cores) {
  // Two from two cores up (CURVE and the many connections' reads and writes on both cores),
  // one per two cores beyond, at most four.
  return cores < 2 ? 1 : std::clamp<uint64_t>(cores / 2, 2, 4);
}

namespace {

// The [limits] section.
Status LoadLimits(ConfigReader& r, Config& c) {
  REFBUS_RETURN_IF_ERROR(
      r.Uint("limits", "max_frame_bytes", 1024, schema::kMaxFrameBytes, &c.max_frame_bytes));
  REFBUS_RETURN_IF_ERROR(r.Uint("limits", "mailbox_quota", 1, 100000000, &c.mailbox_quota));
  REFBUS_RETURN_IF_ERROR(r.Uint("limits", "sender_quota", 1, c.mailbox_quota, &c.sender_quota));
  if (c.sender_quota == 0) c.sender_quota = std::max<uint64_t>(1, c.mailbox_quota / 2);
  REFBUS_RETURN_IF_ERROR(r.Uint("limits", "max_batch", 1, 65536, &c.max_batch));
  c.verify_threads = std::max(1u, std::thread::hardware_concurrency()) - 1;
  REFBUS_RETURN_IF_ERROR(r.Uint("limits", "verify_threads", 0, 64, &c.verify_threads));
  c.io_threads = DefaultIoThreads(std::thread::hardware_concurrency());
  REFBUS_RETURN_IF_ERROR(r.Uint("limits", "io_threads", 1, 16, &c.io_threads));
  REFBUS_RETURN_IF_ERROR(r.Uint("limits", "delivery_window", 1, 65536, &c.delivery_window));
  REFBUS_RETURN_IF_ERROR(r.Uint("limits", "redelivery_ms", 100, 3600000, &c.redelivery_ms));
  REFBUS_RETURN_IF_ERROR(r.Uint("limits", "map_size_mb", 16, 1u << 20, &c.map_size_mb));
  REFBUS_RETURN_IF_ERROR(
      r.Uint("limits", "refusals_audited_per_minute", 0, 1000000, &c.refusals_audited_per_minute));
  return Status::Ok();
}

// [linkage]: absent, this broker evaluates nothing (PROTOCOL.md 13.4). key_file is the
// evaluator's VOPRF key (refbus-keys linkage-key), daily_quota the evaluations per agency
// and UTC day.
Status LoadLinkage(ConfigReader& r, Config& c) {
  REFBUS_RETURN_IF_ERROR(r.NoUnknown("linkage", {"key_file", "daily_quota"}));
  REFBUS_ASSIGN_OR_RETURN(c.linkage_key_file, r.Path("linkage", "key_file", false));
  return r.Uint("linkage", "daily_quota", 1, 100000, &c.linkage_daily_quota);
}

}  // namespace

Result<Config> LoadConfig(const std::string& path) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return InvalidArgument(path + " line " + std::to_string(e.source().begin.line) + ": " +
                           std::string(e.description()));
  }
  for (const auto& [k, v] : root) {
    if (k.str() != "broker" && k.str() != "limits" && k.str() != "policy" && k.str() != "audit" &&
        k.str() != "witness" && k.str() != "federation" && k.str() != "metrics" &&
        k.str() != "linkage") {
      return InvalidArgument(path + ": unknown section [" + std::string(k.str()) + "]");
    }
  }
  ConfigReader r(root, path);
  REFBUS_RETURN_IF_ERROR(
      r.NoUnknown("broker", {"id", "bind", "data_dir", "key_file", "passphrase_file", "directory",
                             "anchor", "trust_state", "endpoint_file", "status_file"}));
  REFBUS_RETURN_IF_ERROR(
      r.NoUnknown("limits", {"max_frame_bytes", "mailbox_quota", "sender_quota", "max_batch",
                             "verify_threads", "io_threads", "delivery_window", "redelivery_ms",
                             "map_size_mb", "refusals_audited_per_minute"}));
  REFBUS_RETURN_IF_ERROR(r.NoUnknown("policy", {"allow_unscoped_opaque"}));
  REFBUS_RETURN_IF_ERROR(r.NoUnknown("audit", {"checkpoint_interval_ms"}));
  REFBUS_RETURN_IF_ERROR(r.NoUnknown(
      "witness", {"peers", "endpoints", "endpoint_files", "interval_ms", "timeout_ms"}));
  REFBUS_RETURN_IF_ERROR(r.NoUnknown(
      "federation", {"endpoints", "endpoint_files", "link_timeout_ms", "max_hops", "window"}));
  REFBUS_RETURN_IF_ERROR(r.NoUnknown("metrics", {"bind", "url_file"}));
  Config c;
  if (const toml::node* n = root.at_path("policy.allow_unscoped_opaque").node(); n != nullptr) {
    if (!n->is_boolean())
      return r.Error("policy", "allow_unscoped_opaque", "must be true or false");
    c.allow_unscoped_opaque = n->as_boolean()->get();
  }
  REFBUS_ASSIGN_OR_RETURN(c.id, r.String("broker", "id", true));
  if (!schema::IsValidPartyId(c.id)) {
    return r.Error("broker", "id", "is not a valid party id (3-48 of a-z, 0-9, '-')");
  }
  REFBUS_ASSIGN_OR_RETURN(c.bind, r.String("broker", "bind", true));
  if (c.bind.rfind("tcp://", 0) != 0 && c.bind.rfind("ipc://", 0) != 0) {
    return r.Error("broker", "bind", "must start with tcp:// or ipc://");
  }
  REFBUS_ASSIGN_OR_RETURN(c.data_dir, r.Path("broker", "data_dir", true));
  REFBUS_ASSIGN_OR_RETURN(c.key_file, r.Path("broker", "key_file", true));
  REFBUS_ASSIGN_OR_RETURN(c.passphrase_file, r.Path("broker", "passphrase_file", false));
  REFBUS_ASSIGN_OR_RETURN(c.directory, r.Path("broker", "directory", true));
  REFBUS_ASSIGN_OR_RETURN(c.anchor, r.Path("broker", "anchor", true));
  REFBUS_ASSIGN_OR_RETURN(c.trust_state, r.Path("broker", "trust_state", true));
  REFBUS_ASSIGN_OR_RETURN(c.endpoint_file, r.Path("broker", "endpoint_file", false));
  REFBUS_ASSIGN_OR_RETURN(c.status_file, r.Path("broker", "status_file", false));
  if (c.status_file.empty()) c.status_file = (fs::path(c.data_dir) / "status.json").string();
  for (const auto* p : {&c.key_file, &c.directory, &c.anchor}) {
    const char* setting = p == &c.key_file    ? "key_file"
                          : p == &c.directory ? "directory"
                                              : "anchor";
    // The non-throwing form: a path the system refuses to look at (too long, a loop of
    // links) is a bad setting too, not an exception.
    std::error_code ec;
    if (!fs::exists(*p, ec)) {
      return InvalidArgument(path + ": file " + *p + " (from setting broker." + setting + ") " +
                             (ec ? "cannot be checked: " + ec.message() : "does not exist"));
    }
  }
  REFBUS_RETURN_IF_ERROR(LoadLimits(r, c));
  REFBUS_RETURN_IF_ERROR(r.Uint("audit", "checkpoint_interval_ms", 100, uint64_t{24} * 3600 * 1000,
                                &c.checkpoint_interval_ms));
  REFBUS_RETURN_IF_ERROR(
      r.Uint("witness", "interval_ms", 100, uint64_t{3600} * 1000, &c.witness_interval_ms));
  REFBUS_RETURN_IF_ERROR(
      r.Uint("witness", "timeout_ms", 100, uint64_t{600} * 1000, &c.witness_timeout_ms));
  REFBUS_RETURN_IF_ERROR(LoadWitnessPeers(root, r, c));
  REFBUS_RETURN_IF_ERROR(
      r.Uint("federation", "link_timeout_ms", 200, uint64_t{600} * 1000, &c.link_timeout_ms));
  REFBUS_RETURN_IF_ERROR(r.Uint("federation", "max_hops", 1, 8, &c.max_hops));
  // Two of the peer's turns: it commits one while reading the next (PROTOCOL.md 12).
  c.link_window = std::max(c.delivery_window, 2 * c.max_batch);
  REFBUS_RETURN_IF_ERROR(r.Uint("federation", "window", 1, 65536, &c.link_window));
  REFBUS_RETURN_IF_ERROR(LoadPeerTable(root, r, c, "endpoints", c.peer_endpoints));
  REFBUS_RETURN_IF_ERROR(LoadPeerTable(root, r, c, "endpoint_files", c.peer_endpoint_files));
  REFBUS_RETURN_IF_ERROR(LoadMetrics(root, r, c));
  REFBUS_RETURN_IF_ERROR(LoadLinkage(r, c));
  // Witnessing runs over the federation links: an address given for a witness (the older
  // [witness] tables) is where its link goes, unless [federation] names one.
  for (const auto& w : c.witness_peers) {
    if (c.peer_endpoints.count(w.id) != 0 || c.peer_endpoint_files.count(w.id) != 0) continue;
    if (!w.endpoint.empty()) c.peer_endpoints[w.id] = w.endpoint;
    if (w.endpoint.empty() && !w.endpoint_file.empty()) {
      c.peer_endpoint_files[w.id] = w.endpoint_file;
    }
  }
  return c;
}

}  // namespace refbus::broker
