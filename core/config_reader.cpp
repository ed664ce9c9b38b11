#include "core/config_reader.h"

#include <filesystem>
#include <system_error>

namespace refbus {

namespace fs = std::filesystem;

Status ConfigReader::Error(std::string_view section, std::string_view key,
                           std::string_view problem) const {
  return InvalidArgument(file_ + ": setting " + std::string(section) + "." + std::string(key) +
                         " " + std::string(problem));
}

Result<std::string> ConfigReader::String(std::string_view section, std::string_view key,
                                         bool required) const {
  const toml::node* n = root_.at_path(std::string(section) + "." + std::string(key)).node();
  if (n == nullptr) {
    if (required) return Error(section, key, "is missing");
    return std::string();
  }
  auto v = n->value<std::string>();
  if (!v) return Error(section, key, "must be a string");
  if (required && v->empty()) return Error(section, key, "is empty");
  return *v;
}

Result<std::string> ConfigReader::Path(std::string_view section, std::string_view key,
                                       bool required) const {
  REFBUS_ASSIGN_OR_RETURN(std::string s, String(section, key, required));
  if (s.empty()) return s;
  return Resolve(s);
}

std::string ConfigReader::Resolve(const std::string& path) const {
  fs::path p(path);
  if (p.is_relative()) {
    std::error_code ec;  // no working folder: resolve against the file's path as given
    fs::path file = fs::absolute(fs::path(file_), ec);
    if (ec) file = fs::path(file_);
    p = file.parent_path() / p;
  }
  return p.lexically_normal().string();
}

Status ConfigReader::Uint(std::string_view section, std::string_view key, uint64_t min,
                          uint64_t max, uint64_t* out) const {
  const toml::node* n = root_.at_path(std::string(section) + "." + std::string(key)).node();
  if (n == nullptr) return Status::Ok();  // the default stays
  auto v = n->value<int64_t>();
  if (!v) return Error(section, key, "must be an integer");
  if (*v < 0 || static_cast<uint64_t>(*v) < min || static_cast<uint64_t>(*v) > max) {
    return Error(section, key,
                 "is " + std::to_string(*v) + "; it must be between " + std::to_string(min) +
                     " and " + std::to_string(max));
  }
  *out = static_cast<uint64_t>(*v);
  return Status::Ok();
}

Status ConfigReader::NoUnknown(std::string_view section,
                               std::initializer_list<std::string_view> known) const {
  const toml::node* node = root_.get(section);
  if (node == nullptr) return Status::Ok();
  const toml::table* t = node->as_table();
  if (t == nullptr) {
    return InvalidArgument(file_ + ": " + std::string(section) + " must be a [" +
                           std::string(section) + "] section");
  }
  for (const auto& [k, v] : *t) {
    bool ok = false;
    for (auto name : known) ok = ok || k.str() == name;
    if (!ok) return Error(section, k.str(), "is not a known setting (misspelt?)");
  }
  return Status::Ok();
}

}  // namespace refbus
