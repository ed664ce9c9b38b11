// The shared plumbing of refbus-agent's commands (agent/cli/common.h).
#include "agent/cli/common.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <utility>

#include "agent/daemon.h"
#include "core/clock.h"
#include "core/file.h"
#include "core/table.h"

namespace refbus::agent::cli {
namespace {

constexpr char kApiFooter[] = R"(
Where the daemon is: --data DIR (its data_dir: DIR/api.url, DIR/api.token), -c agent.toml
(its [api] url_file and token_file), or --url URL with --token-file FILE.
Exit codes: 0 ok, 1 refused or failed (the agent's message says why), 2 usage error,
3 cannot reach the daemon.)";

std::string Trimmed(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

// Finds the daemon's URL and token, and checks that the token goes to loopback only.
std::variant<agent::ApiClient, CliFailure> Connect(const ApiTarget& t) {
  std::string url = t.url, token_file = t.token_file, url_file, where, tls_cert;
  if (!t.data_dir.empty()) {
    url_file = (std::filesystem::path(t.data_dir) / "api.url").string();
    if (token_file.empty()) token_file = (std::filesystem::path(t.data_dir) / "api.token").string();
    where = "data directory " + t.data_dir;
  } else if (!t.config.empty()) {
    auto c = agent::LoadAgentConfig(t.config);
    if (!c.ok()) return CliFailure{kExitUsage, c.status().message()};
    url_file = c->api_url_file;
    tls_cert = c->console_tls_cert;
    if (token_file.empty()) token_file = c->api_token_file;
    where = "configuration " + t.config;
  } else if (url.empty()) {
    return CliFailure{kExitUsage,
                      "say where the daemon is: --data DIR, -c agent.toml, or --url URL with "
                      "--token-file FILE"};
  }
  if (url.empty()) {
    auto raw = ReadFile(url_file, 1024);
    if (!raw.ok()) {
      return CliFailure{kExitUnreachable, "no API URL file " + url_file +
                                              ": is `refbus-agent run` started with this " + where +
                                              "?"};
    }
    url = Trimmed(std::string(AsChars(*raw)));
  }
  if (token_file.empty()) {
    return CliFailure{kExitUsage, "--url needs --token-file (or --data DIR / -c agent.toml)"};
  }
  // Over TLS (the console serves a LAN) the CLI still talks to loopback, and checks that
  // the server holds the certificate the configuration names.
  const bool tls = url.rfind("https://", 0) == 0;
  const std::string_view scheme = tls ? "https://" : "http://";
  if (url.rfind(scheme, 0) != 0 || !agent::ParseLoopbackListen(url.substr(scheme.size())).ok()) {
    return CliFailure{kExitUsage, "refusing to send the API token to '" + url +
                                      "': the agent's API is on http(s)://127.0.0.1:PORT only"};
  }
  if (tls && tls_cert.empty()) {
    return CliFailure{kExitUsage, "the agent serves TLS (" + url +
                                      "): use -c agent.toml, so that the certificate it names "
                                      "([console] tls_cert) is checked"};
  }
  auto token = agent::ReadApiToken(token_file);
  if (!token.ok()) {
    if (token.status().code() == Status::Code::kNotFound) {
      return CliFailure{kExitUnreachable, token.status().message() +
                                              "; is the daemon running with this " +
                                              (where.empty() ? "token file" : where) + "?"};
    }
    return CliFailure{kExitRefused, token.status().message() +
                                        " (run the command as the user the daemon runs as)"};
  }
  return agent::ApiClient(url, std::move(token).value(), t.timeout_s, tls_cert);
}

std::string HintFor(int http_status, std::string_view code, std::string_view command) {
  switch (http_status) {
    case 400:
      return "check the command's options: refbus-agent " + std::string(command) + " --help";
    case 401:
      return "check --token-file: is the daemon running with this data directory?";
    case 403:
      return "outside the consent: check the grant's purposes, categories and recipients "
             "(refbus-agent consents), or record a consent that covers this";
    case 404:
      return "check the id: refbus-agent inbox, referrals, consents and deletions list them";
    case 409:
      return "not allowed in the current state: see refbus-agent case CASE or referrals";
    case 503:
      return code == "resource-exhausted"
                 ? "the agent is busy: retry in a moment"
                 : "the agent is not connected to its broker or is stopping: see refbus-agent "
                   "status and the agent's log";
    default:
      return "the agent failed: see its log";
  }
}

std::string Scalar(const Json& v, const std::string& key = "") {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>().empty() ? "-" : v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  if (v.is_number_unsigned() || v.is_number_integer()) {
    bool is_time = key.size() > 3 && key.compare(key.size() - 3, 3, "_ms") == 0;
    if (is_time && v.get<int64_t>() > 0) return FormatUtc(v.get<UnixMillis>());
    return std::to_string(v.get<int64_t>());
  }
  if (v.is_array()) {
    std::string out;
    for (const auto& e : v) {
      if (!out.empty()) out += ", ";
      out += e.is_object() ? e.dump() : Scalar(e);
    }
    return out.empty() ? "-" : out;
  }
  return v.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// Runs one API call and prints the reply: JSON with --json, else print(body).
int CallApi(const ApiTarget& t, std::string_view command, std::string_view method,
            const std::string& path, const Json* body,
            const std::function<void(const Json&)>& print) {
  auto connected = Connect(t);
  if (auto* f = std::get_if<CliFailure>(&connected)) {
    std::cerr << "refbus-agent " << command << ": " << f->message << "\n";
    return f->exit_code;
  }
  auto& client = std::get<agent::ApiClient>(connected);
  auto reply = client.Call(method, path, body);
  if (!reply.ok()) {
    bool unreachable = reply.status().code() == Status::Code::kUnavailable;
    std::cerr << "refbus-agent " << command << ": " << reply.status().message() << "\n";
    if (unreachable) {
      std::cerr << "  is `refbus-agent run` started? (url " << client.url() << ")\n";
    }
    return unreachable ? kExitUnreachable : kExitRefused;
  }
  if (reply->http_status >= 400) {
    if (t.json) std::cout << reply->body.dump(2) << "\n";
    std::string code = "error", message = "HTTP " + std::to_string(reply->http_status);
    if (reply->body.is_object() && reply->body.contains("error") &&
        reply->body["error"].is_object()) {
      code = reply->body["error"].value("code", code);
      message = reply->body["error"].value("message", message);
    }
    std::cerr << "refbus-agent " << command << ": refused (" << reply->http_status << " " << code
              << "): " << message << "\n"
              << "  " << HintFor(reply->http_status, code, command) << "\n";
    return kExitRefused;
  }
  if (!reply->text.empty()) {  // text/csv: the printer writes it as it is
    print(Json(reply->text));
  } else if (t.json) {
    std::cout << reply->body.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    print(reply->body);
  }
  return kExitOk;
}

// "category:name=value"
std::optional<Json> ParseField(const std::string& s) {
  size_t colon = s.find(':');
  size_t eq = s.find('=', colon == std::string::npos ? 0 : colon);
  if (colon == std::string::npos || colon == 0 || eq == std::string::npos || eq == colon + 1) {
    return std::nullopt;
  }
  return Json{{"category", s.substr(0, colon)},
              {"name", s.substr(colon + 1, eq - colon - 1)},
              {"value", s.substr(eq + 1)}};
}

bool IsSha256Hex(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c)) != 0;
         });
}

}  // namespace

std::string PathSegment(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string Cell(const Json& j, const std::string& key) {
  if (!j.is_object() || !j.contains(key)) return "-";
  return Scalar(j[key], key);
}

Column Col(std::string header, std::string key) {
  return {std::move(header), [key](const Json& j) { return Cell(j, key); }};
}

void PrintTable(const Json& list, const std::vector<Column>& columns, std::string_view empty) {
  if (!list.is_array() || list.empty()) {
    std::cout << empty << "\n";
    return;
  }
  std::vector<std::string> header;
  for (const auto& c : columns) header.push_back(c.header);
  Table table(header);
  for (const auto& item : list) {
    std::vector<std::string> row;
    for (const auto& c : columns) row.push_back(c.cell(item));
    table.AddRow(std::move(row));
  }
  table.Print(std::cout);
}

void PrintObject(const Json& j, const std::string& indent) {
  if (!j.is_object()) {
    std::cout << indent << Scalar(j) << "\n";
    return;
  }
  size_t width = 0;
  for (const auto& [k, v] : j.items()) {
    if (!v.is_object() && !(v.is_array() && !v.empty() && v.front().is_object())) {
      width = std::max(width, k.size());
    }
  }
  for (const auto& [k, v] : j.items()) {
    if (v.is_object() || (v.is_array() && !v.empty() && v.front().is_object())) continue;
    std::cout << indent << k << ": " << std::string(width - k.size(), ' ') << Scalar(v, k) << "\n";
  }
  for (const auto& [k, v] : j.items()) {
    if (v.is_object()) {
      std::cout << indent << k << ":\n";
      PrintObject(v, indent + "  ");
    } else if (v.is_array() && !v.empty() && v.front().is_object()) {
      std::cout << indent << k << " (" << v.size() << "):\n";
      for (const auto& e : v) {
        std::string line;
        for (const auto& [ek, ev] : e.items()) {
          if (ev.is_object() || (ev.is_array() && !ev.empty() && ev.front().is_object())) continue;
          line += (line.empty() ? "" : "  ") + ek + "=" + Scalar(ev, ek);
        }
        std::cout << indent << "  - " << line << "\n";
      }
    }
  }
}

void Show(const Json& j) { PrintObject(j); }

std::variant<std::vector<std::string>, CliFailure> ReadLines(const std::string& path) {
  std::vector<std::string> lines;
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), {});
  } else {
    auto raw = ReadFile(path, size_t{16} << 20);
    if (!raw.ok()) return CliFailure{kExitUsage, raw.status().message()};
    text.assign(AsChars(*raw));
  }
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    std::string line = Trimmed(text.substr(start, nl - start));
    if (!line.empty() && line[0] != '#') lines.push_back(line);
    start = nl + 1;
  }
  return lines;
}

std::variant<Json, CliFailure> CollectFields(const std::vector<std::string>& fields,
                                             const std::string& fields_file) {
  Json out = Json::array();
  for (const auto& f : fields) {
    auto parsed = ParseField(f);
    if (!parsed) {
      return CliFailure{kExitUsage,
                        "--field '" + f.substr(0, f.find('=')) + "...' is not CATEGORY:NAME=VALUE"};
    }
    out.push_back(*parsed);
  }
  if (!fields_file.empty()) {
    auto lines = ReadLines(fields_file);
    if (auto* f = std::get_if<CliFailure>(&lines)) return *f;
    const auto& l = std::get<std::vector<std::string>>(lines);
    if (!l.empty() && l.front().front() == '[') {
      std::string all;
      for (const auto& line : l) all += line + "\n";
      Json arr = Json::parse(all, nullptr, false);
      if (!arr.is_array()) {
        return CliFailure{kExitUsage,
                          fields_file + ": not a JSON array of {category, name, value}"};
      }
      for (auto& e : arr) out.push_back(std::move(e));
    } else {
      size_t n = 0;
      for (const auto& line : l) {
        ++n;
        auto parsed = ParseField(line);
        if (!parsed) {
          return CliFailure{kExitUsage, fields_file + " line " + std::to_string(n) +
                                            " is not CATEGORY:NAME=VALUE"};
        }
        out.push_back(*parsed);
      }
    }
  }
  return out;
}

std::optional<Json> ParseItem(const std::string& s) {
  size_t comma = s.find(',');
  if (comma == std::string::npos || comma == 0 || comma + 1 == s.size()) return std::nullopt;
  Json item = {{"item_id", s.substr(0, comma)}};
  std::string rest = s.substr(comma + 1);
  size_t last = rest.rfind(',');
  if (last != std::string::npos && IsSha256Hex(rest.substr(last + 1))) {
    item["sha256"] = rest.substr(last + 1);
    rest.resize(last);
  } else if (last != std::string::npos) {
    size_t before = rest.rfind(',', last - 1);
    if (before != std::string::npos && last > 0 &&
        IsSha256Hex(rest.substr(before + 1, last - before - 1))) {
      item["platform"] = rest.substr(last + 1);
      item["sha256"] = rest.substr(before + 1, last - before - 1);
      rest.resize(before);
    }
  }
  if (rest.empty()) return std::nullopt;
  item["url"] = rest;
  return item;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

void AddFieldOptions(CLI::App* cmd, FieldArgs& f) {
  cmd->add_option("--field", f.fields,
                  "CATEGORY:NAME=VALUE (repeatable; values on the command line are visible "
                  "to other users in the process list: prefer --fields-file)");
  cmd->add_option("--fields-file", f.fields_file,
                  "lines CATEGORY:NAME=VALUE, or a JSON array of {category,name,value}; - "
                  "for stdin");
}

void Commands::Common(CLI::App* cmd, bool acts) {
  cmd->add_option("-c,--config", t.config, "the daemon's configuration (agent.toml)");
  cmd->add_option("--data", t.data_dir, "the daemon's data directory (api.url, api.token)");
  cmd->add_option("--url", t.url, "the daemon's API URL (http://127.0.0.1:PORT)");
  cmd->add_option("--token-file", t.token_file, "the API token file");
  cmd->add_flag("--json", t.json, "print the API's JSON reply");
  cmd->add_option("--timeout", t.timeout_s, "seconds to wait for the reply")
      ->capture_default_str()
      ->check(CLI::Range(1, 600));
  if (acts) {
    cmd->add_option("--operator", t.operator_ref,
                    "who does this (recorded with the action; default $REFBUS_OPERATOR)");
  }
  cmd->footer(kApiFooter);
}

std::optional<std::string> Commands::Operator(std::string_view command) {
  if (t.operator_ref.empty()) {
    if (const char* env = std::getenv("REFBUS_OPERATOR"); env != nullptr) t.operator_ref = env;
  }
  if (t.operator_ref.empty()) {
    std::cerr << "refbus-agent " << command
              << ": give --operator REF (or set REFBUS_OPERATOR): the agent records who "
                 "acted\n";
    return std::nullopt;
  }
  return t.operator_ref;
}

int Commands::Call(std::string_view command, std::string_view method, const std::string& path,
                   const Json* body, const std::function<void(const Json&)>& print) {
  return CallApi(t, command, method, path, body, print);
}

int Report(std::string_view command, const CliFailure& f) {
  std::cerr << "refbus-agent " << command << ": " << f.message << "\n";
  return f.exit_code;
}

}  // namespace refbus::agent::cli
