// Settings from a TOML configuration file, with errors that name the file and the setting
// ("broker.toml: setting limits.map_size_mb is 0; it must be between 1 and 1048576"), so an
// operator can fix the file from the message alone. Shared by refbus-broker and refbus-agent.
//
// Thread safety: a value over a table the caller keeps alive; not synchronized.
#ifndef REFBUS_CORE_CONFIG_READER_H_
#define REFBUS_CORE_CONFIG_READER_H_

#include <toml++/toml.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "core/status.h"

namespace refbus {

class ConfigReader {
 public:
  // file: the configuration's path, for messages and to resolve relative paths.
  ConfigReader(const toml::table& root, std::string file) : root_(root), file_(std::move(file)) {}

  // "<file>: setting <section>.<key> <problem>" (kInvalidArgument).
  Status Error(std::string_view section, std::string_view key, std::string_view problem) const;

  // A string; "" when absent and not required. Required: absent or empty is an error.
  Result<std::string> String(std::string_view section, std::string_view key, bool required) const;
  // A path: String, made absolute against the configuration file's folder when relative,
  // so that logs and errors name the file whatever the working folder.
  Result<std::string> Path(std::string_view section, std::string_view key, bool required) const;
  std::string Resolve(const std::string& path) const;
  // An integer in [min, max] into *out; absent leaves *out (the default) as it is.
  Status Uint(std::string_view section, std::string_view key, uint64_t min, uint64_t max,
              uint64_t* out) const;
  // Every key of [section] is one of known (catches misspellings); the section, when
  // present, must be a table.
  Status NoUnknown(std::string_view section, std::initializer_list<std::string_view> known) const;

 private:
  const toml::table& root_;
  std::string file_;
};

}  // namespace refbus

#endif  // REFBUS_CORE_CONFIG_READER_H_
