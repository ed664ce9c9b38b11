// libFuzzer target: the broker's and the agent's TOML configuration loaders.
//
// Input: one selector byte, then the file's text, written to <private folder>/refbus.toml
// (tests/fuzz/temp_dir.h). The folder also holds the files a configuration must name
// (identity.key, directory, authority.pub, passphrase), so that loads can succeed.
//   0  broker::LoadConfig
//   1  agent::LoadAgentConfig
// Checks beyond "does not crash" for a file that loads: the id is a valid party id;
// endpoints have an allowed scheme; limits lie in their documented ranges; witness peers
// are distinct valid ids other than the broker's own; every path is
// absolute and lexically normal, and the required files exist; the agent's API address
// is a loopback one; and the settings written back out as TOML load to the very same
// configuration (load -> write -> load is a fixed point).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <sstream>
#include <string>

#include <toml++/toml.h>

#include "agent/config.h"
#include "agent/listen.h"
#include "broker/config.h"
#include "schema/codec.h"
#include "schema/types.h"
#include "tests/fuzz/checks.h"
#include "tests/fuzz/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using refbus::ByteView;

const refbus::fuzz::TempDir& Dir() {
  static const refbus::fuzz::TempDir dir;
  static const bool files = [] {
    for (const char* name : {"identity.key", "directory", "authority.pub", "passphrase"}) {
      dir.Write(name, {}, 0600);
    }
    return true;
  }();
  (void)files;
  return dir;
}

void CheckPath(const std::string& p, bool required, const char* what) {
  if (p.empty()) {
    FUZZ_CHECK(!required, std::string(what) + " is empty");
    return;
  }
  fs::path path(p);
  FUZZ_CHECK(path.is_absolute(), std::string(what) + " is not absolute: " + p);
  FUZZ_CHECK(path.lexically_normal() == path, std::string(what) + " is not normal: " + p);
}

std::string Emit(const toml::table& t) {
  std::ostringstream out;
  out << t;
  return out.str();
}

// Adds key = value to t unless value is empty (optional settings left out).
void Put(toml::table& t, std::string_view key, const std::string& value) {
  if (!value.empty()) t.insert_or_assign(key, value);
}

void CheckBroker(const std::string& path) {
  auto c = refbus::broker::LoadConfig(path);
  if (!c.ok()) return;
  FUZZ_CHECK(refbus::schema::IsValidPartyId(c->id), "broker id");
  FUZZ_CHECK(c->bind.rfind("tcp://", 0) == 0 || c->bind.rfind("ipc://", 0) == 0, "broker bind");
  CheckPath(c->data_dir, true, "broker.data_dir");
  CheckPath(c->key_file, true, "broker.key_file");
  CheckPath(c->passphrase_file, false, "broker.passphrase_file");
  CheckPath(c->directory, true, "broker.directory");
  CheckPath(c->anchor, true, "broker.anchor");
  CheckPath(c->trust_state, true, "broker.trust_state");
  CheckPath(c->endpoint_file, false, "broker.endpoint_file");
  for (const auto* p : {&c->key_file, &c->directory, &c->anchor}) {
    FUZZ_CHECK(fs::exists(*p), "a required broker file does not exist: " + *p);
  }
  FUZZ_CHECK(c->max_frame_bytes >= 1024 && c->max_frame_bytes <= refbus::schema::kMaxFrameBytes &&
                 c->mailbox_quota >= 1 && c->mailbox_quota <= 100000000 && c->max_batch >= 1 &&
                 c->max_batch <= 65536 && c->delivery_window >= 1 && c->delivery_window <= 65536 &&
                 c->redelivery_ms >= 100 && c->redelivery_ms <= 3600000 && c->map_size_mb >= 16 &&
                 c->map_size_mb <= (1u << 20) && c->checkpoint_interval_ms >= 100 &&
                 c->checkpoint_interval_ms <= uint64_t{24} * 3600 * 1000,
             "a broker limit is outside its range");
  FUZZ_CHECK(c->witness_interval_ms >= 100 && c->witness_interval_ms <= uint64_t{3600} * 1000 &&
                 c->witness_timeout_ms >= 100 && c->witness_timeout_ms <= uint64_t{600} * 1000,
             "a witness interval is outside its range");
  for (size_t n = 0; n < c->witness_peers.size(); ++n) {
    const auto& p = c->witness_peers[n];
    FUZZ_CHECK(refbus::schema::IsValidPartyId(p.id) && p.id != c->id, "witness peer id");
    for (size_t k = 0; k < n; ++k) {
      FUZZ_CHECK(c->witness_peers[k].id != p.id, "a witness peer is listed twice");
    }
    FUZZ_CHECK(p.endpoint.empty() || p.endpoint.rfind("tcp://", 0) == 0 ||
                   p.endpoint.rfind("ipc://", 0) == 0,
               "witness peer endpoint");
    CheckPath(p.endpoint_file, false, "witness.endpoint_files");
  }

  toml::table broker;
  Put(broker, "id", c->id);
  Put(broker, "bind", c->bind);
  Put(broker, "data_dir", c->data_dir);
  Put(broker, "key_file", c->key_file);
  Put(broker, "passphrase_file", c->passphrase_file);
  Put(broker, "directory", c->directory);
  Put(broker, "anchor", c->anchor);
  Put(broker, "trust_state", c->trust_state);
  Put(broker, "endpoint_file", c->endpoint_file);
  const auto i = [](uint64_t v) { return static_cast<int64_t>(v); };
  toml::table limits{{"max_frame_bytes", i(c->max_frame_bytes)},
                     {"mailbox_quota", i(c->mailbox_quota)},
                     {"max_batch", i(c->max_batch)},
                     {"delivery_window", i(c->delivery_window)},
                     {"redelivery_ms", i(c->redelivery_ms)},
                     {"map_size_mb", i(c->map_size_mb)}};
  toml::table root{
      {"broker", broker},
      {"limits", limits},
      {"policy", toml::table{{"allow_unscoped_opaque", c->allow_unscoped_opaque}}},
      {"audit", toml::table{{"checkpoint_interval_ms", i(c->checkpoint_interval_ms)}}}};
  toml::table witness{{"interval_ms", i(c->witness_interval_ms)},
                      {"timeout_ms", i(c->witness_timeout_ms)}};
  if (!c->witness_peers.empty()) {
    toml::array peers;
    toml::table endpoints, endpoint_files;
    for (const auto& p : c->witness_peers) {
      peers.push_back(p.id);
      Put(endpoints, p.id, p.endpoint);
      Put(endpoint_files, p.id, p.endpoint_file);
    }
    witness.insert("peers", peers);
    if (!endpoints.empty()) witness.insert("endpoints", endpoints);
    if (!endpoint_files.empty()) witness.insert("endpoint_files", endpoint_files);
  }
  root.insert("witness", witness);
  const std::string text = Emit(root);
  auto again = refbus::broker::LoadConfig(Dir().Write("again.toml", refbus::AsBytes(text), 0600));
  FUZZ_CHECK(again.ok(), "a broker config written back does not load: " +
                             again.status().ToString() + "\n" + text);
  const auto& a = *again;
  FUZZ_CHECK(a.id == c->id && a.bind == c->bind && a.data_dir == c->data_dir &&
                 a.key_file == c->key_file && a.passphrase_file == c->passphrase_file &&
                 a.directory == c->directory && a.anchor == c->anchor &&
                 a.trust_state == c->trust_state && a.endpoint_file == c->endpoint_file &&
                 a.max_frame_bytes == c->max_frame_bytes && a.mailbox_quota == c->mailbox_quota &&
                 a.max_batch == c->max_batch && a.delivery_window == c->delivery_window &&
                 a.redelivery_ms == c->redelivery_ms && a.map_size_mb == c->map_size_mb &&
                 a.allow_unscoped_opaque == c->allow_unscoped_opaque &&
                 a.checkpoint_interval_ms == c->checkpoint_interval_ms &&
                 a.witness_interval_ms == c->witness_interval_ms &&
                 a.witness_timeout_ms == c->witness_timeout_ms &&
                 a.witness_peers.size() == c->witness_peers.size(),
             "a broker config changed through load -> write -> load:\n" + text);
  for (size_t n = 0; n < a.witness_peers.size(); ++n) {
    const auto& x = a.witness_peers[n];
    const auto& y = c->witness_peers[n];
    FUZZ_CHECK(x.id == y.id && x.endpoint == y.endpoint && x.endpoint_file == y.endpoint_file,
               "a witness peer changed through load -> write -> load:\n" + text);
  }
}

void CheckAgent(const std::string& path) {
  auto c = refbus::agent::LoadAgentConfig(path);
  if (!c.ok()) return;
  FUZZ_CHECK(refbus::schema::IsValidPartyId(c->id), "agent id");
  FUZZ_CHECK(c->broker_endpoint.empty() || c->broker_endpoint.rfind("tcp://", 0) == 0 ||
                 c->broker_endpoint.rfind("ipc://", 0) == 0,
             "agent broker endpoint");
  CheckPath(c->data_dir, true, "agent.data_dir");
  CheckPath(c->key_file, true, "agent.key_file");
  CheckPath(c->passphrase_file, false, "agent.passphrase_file");
  CheckPath(c->directory, true, "agent.directory");
  CheckPath(c->anchor, true, "agent.anchor");
  CheckPath(c->trust_state, true, "agent.trust_state");
  CheckPath(c->grant_key_dir, true, "agent.grant_key_dir");
  CheckPath(c->api_url_file, true, "api.url_file");
  CheckPath(c->api_token_file, true, "api.token_file");
  for (const auto* p : {&c->key_file, &c->directory, &c->anchor}) {
    FUZZ_CHECK(fs::exists(*p), "a required agent file does not exist: " + *p);
  }
  FUZZ_CHECK(c->passphrase_file.empty() || fs::exists(c->passphrase_file),
             "the agent passphrase file does not exist");
  FUZZ_CHECK(refbus::agent::ParseLoopbackListen(c->api_listen).ok(),
             "the agent API listens on a non-loopback address: " + c->api_listen);
  FUZZ_CHECK(c->api_command_timeout_ms >= 100 && c->api_command_timeout_ms <= 600000,
             "api.command_timeout_ms is outside its range");

  toml::table agent;
  Put(agent, "id", c->id);
  Put(agent, "data_dir", c->data_dir);
  Put(agent, "key_file", c->key_file);
  Put(agent, "passphrase_file", c->passphrase_file);
  Put(agent, "directory", c->directory);
  Put(agent, "anchor", c->anchor);
  Put(agent, "trust_state", c->trust_state);
  Put(agent, "broker_endpoint", c->broker_endpoint);
  Put(agent, "grant_key_dir", c->grant_key_dir);
  toml::table api{{"listen", c->api_listen},
                  {"url_file", c->api_url_file},
                  {"token_file", c->api_token_file},
                  {"command_timeout_ms", static_cast<int64_t>(c->api_command_timeout_ms)}};
  const std::string text = Emit(toml::table{{"agent", agent}, {"api", api}});
  auto again =
      refbus::agent::LoadAgentConfig(Dir().Write("again.toml", refbus::AsBytes(text), 0600));
  FUZZ_CHECK(again.ok(), "an agent config written back does not load: " +
                             again.status().ToString() + "\n" + text);
  const auto& a = *again;
  FUZZ_CHECK(a.id == c->id && a.data_dir == c->data_dir && a.key_file == c->key_file &&
                 a.passphrase_file == c->passphrase_file && a.directory == c->directory &&
                 a.anchor == c->anchor && a.trust_state == c->trust_state &&
                 a.broker_endpoint == c->broker_endpoint && a.grant_key_dir == c->grant_key_dir &&
                 a.api_listen == c->api_listen && a.api_url_file == c->api_url_file &&
                 a.api_token_file == c->api_token_file &&
                 a.api_command_timeout_ms == c->api_command_timeout_ms,
             "an agent config changed through load -> write -> load:\n" + text);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  (void)Dir();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  ByteView in(data + 1, size - 1);
  const std::string path = Dir().Write("refbus.toml", in, 0600);
  switch (data[0] % 2) {
    case 0:
      CheckBroker(path);
      break;
    default:
      CheckAgent(path);
      break;
  }
  return 0;
}
