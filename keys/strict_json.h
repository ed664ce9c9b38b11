// Strict readers for the JSON files refbus hands to people and courts (proof bundles,
// linkage bundles): a field must be present, of its type, and hex must be lowercase and of
// its exact size, so that a file has one spelling of its content and any byte changed
// outside JSON white space is refused or detected.
//
// Thread safety: free functions over values.
#ifndef REFBUS_KEYS_STRICT_JSON_H_
#define REFBUS_KEYS_STRICT_JSON_H_

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/bytes.h"
#include "core/status.h"

namespace refbus::keys::strict_json {

// Lowercase hex of exactly want_bytes (0: any length), nothing else accepted.
Result<Bytes> Hex(const nlohmann::json& v, std::string_view field, size_t want_bytes);

// obj is an object with exactly these keys.
Status ExactKeys(const nlohmann::json& obj, std::initializer_list<std::string_view> keys,
                 std::string_view what);

// REQUIRES: obj is an object holding name (ExactKeys checked it).
Result<std::string> String(const nlohmann::json& obj, const char* name);
Result<uint64_t> Unsigned(const nlohmann::json& obj, const char* name);

}  // namespace refbus::keys::strict_json

#endif  // REFBUS_KEYS_STRICT_JSON_H_
