#include "audit/auditor_config.h"

#include <sys/stat.h>

#include <algorithm>

#include "core/config_reader.h"
#include "keys/ceremony.h"
#include "schema/codec.h"

namespace refbus::audit {

Result<AuditorConfig> LoadAuditorConfig(const std::string& auditor_dir) {
  AuditorConfig c;
  const std::string path = keys::JoinPath(auditor_dir, kAuditorConfigFile);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return c;  // none: nobody named
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return InvalidArgument(path + ": " + std::string(e.description()));
  }
  for (const auto& [k, v] : root) {
    if (k.str() != "verify") {
      return InvalidArgument(path + ": unknown section [" + std::string(k.str()) + "]");
    }
  }
  ConfigReader r(root, path);
  REFBUS_RETURN_IF_ERROR(r.NoUnknown("verify", {"witnesses", "min_cosignatures"}));
  uint64_t min = c.min_cosignatures;
  REFBUS_RETURN_IF_ERROR(r.Uint("verify", "min_cosignatures", 0, 100, &min));
  c.min_cosignatures = static_cast<size_t>(min);
  if (const toml::node* n = root.at_path("verify.witnesses").node(); n != nullptr) {
    const toml::array* list = n->as_array();
    if (list == nullptr) return r.Error("verify", "witnesses", "must be a list of party ids");
    for (const toml::node& item : *list) {
      auto id = item.value<std::string>();
      if (!id || !schema::IsValidPartyId(*id)) {
        return r.Error("verify", "witnesses", "holds something that is not a party id");
      }
      if (std::find(c.witnesses.begin(), c.witnesses.end(), *id) != c.witnesses.end()) {
        return r.Error("verify", "witnesses", "names " + *id + " twice");
      }
      c.witnesses.push_back(*id);
    }
  }
  c.file = path;
  return c;
}

Result<std::vector<keys::WitnessKey>> NamedWitnessKeys(const schema::Directory& directory,
                                                       const AuditorConfig& config,
                                                       const std::string& log_broker_id) {
  std::vector<keys::WitnessKey> out;
  for (const std::string& id : config.witnesses) {
    if (id == log_broker_id) continue;  // a log never witnesses itself
    auto verifiers = keys::WitnessVerifiersOf(directory, id);
    if (!verifiers.ok()) {
      return NotFound(config.file + " names witness " + id + ": " + verifiers.status().message());
    }
    for (auto& v : *verifiers) out.push_back({id, std::move(v)});
  }
  return out;
}

}  // namespace refbus::audit
