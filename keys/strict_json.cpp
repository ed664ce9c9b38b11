#include "keys/strict_json.h"

namespace refbus::keys::strict_json {

using json = nlohmann::json;

Result<Bytes> Hex(const json& v, std::string_view field, size_t want_bytes) {
  if (!v.is_string()) return InvalidArgument("field '" + std::string(field) + "' is not a string");
  const std::string& s = v.get_ref<const std::string&>();
  auto b = HexDecode(s);
  if (!b.ok() || HexEncode(*b) != s || (want_bytes != 0 && b->size() != want_bytes)) {
    return InvalidArgument("field '" + std::string(field) + "' is not " +
                           (want_bytes != 0 ? std::to_string(want_bytes) + " bytes of " : "") +
                           "lowercase hex");
  }
  return std::move(*b);
}

Status ExactKeys(const json& obj, std::initializer_list<std::string_view> keys,
                 std::string_view what) {
  if (!obj.is_object()) return InvalidArgument(std::string(what) + " is not a JSON object");
  if (obj.size() != keys.size()) {
    return InvalidArgument(std::string(what) + " has " + std::to_string(obj.size()) +
                           " fields, expected " + std::to_string(keys.size()));
  }
  for (auto k : keys) {
    if (!obj.contains(std::string(k))) {
      return InvalidArgument(std::string(what) + " has no field '" + std::string(k) + "'");
    }
  }
  return Status::Ok();
}

Result<std::string> String(const json& obj, const char* name) {
  const json& v = obj.at(name);
  if (!v.is_string()) return InvalidArgument(std::string("field '") + name + "' is not a string");
  return v.get<std::string>();
}

Result<uint64_t> Unsigned(const json& obj, const char* name) {
  const json& v = obj.at(name);
  if (!v.is_number_unsigned()) {
    return InvalidArgument(std::string("field '") + name + "' is not an unsigned number");
  }
  return v.get<uint64_t>();
}

}  // namespace refbus::keys::strict_json
