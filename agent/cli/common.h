// The plumbing every refbus-agent command shares: the registry of subcommands and their
// handlers (Commands), the options of a command over the daemon's local API (where the
// daemon is, --json, --timeout, --operator), one API call with its printed reply or its
// refusal, hint and exit code, the tables and "key: value" objects people read, and the
// parsing of repeated values (--field, --fields-file, --item).
//
// Output: a reply on stdout (the API's JSON with --json); failures on stderr as
// "refbus-agent COMMAND: ...", with the exit codes below (the footer every API command
// shows in --help says the same).
//
// Thread safety: none needed; the CLI runs on the main thread only.
#ifndef REFBUS_AGENT_CLI_COMMON_H_
#define REFBUS_AGENT_CLI_COMMON_H_

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "agent/api.h"
#include "schema/workflow.h"

namespace refbus::agent::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;

// Where the daemon's API is and how to talk to it; the options of every API command.
struct ApiTarget {
  std::string config;
  std::string data_dir;
  std::string url;
  std::string token_file;
  std::string operator_ref;
  bool json = false;
  int timeout_s = 40;
};

// A failure of the command line itself: what to print and the exit code.
struct CliFailure {
  int exit_code;
  std::string message;
};

// The subcommands of refbus-agent and what each one runs once parsed. One Commands lives
// in main for the whole run: handlers keep a reference to it (its ApiTarget holds the
// parsed API options, shared by all API commands since only one of them is parsed).
struct Commands {
  ApiTarget t;
  std::vector<std::pair<CLI::App*, std::function<int()>>> handlers;

  // Options every API command takes. acts: the operator is recorded, so it is required.
  void Common(CLI::App* cmd, bool acts);

  // Registers what runs when cmd is the parsed subcommand; it returns the exit code.
  void On(CLI::App* cmd, std::function<int()> run) { handlers.emplace_back(cmd, std::move(run)); }

  // The operator for an acting command (--operator, else $REFBUS_OPERATOR), or nullopt
  // after printing why the command cannot go on (exit with kExitUsage).
  std::optional<std::string> Operator(std::string_view command);

  // Runs one API call and prints the reply: JSON with --json, else print(body). Returns
  // the exit code; refusals are printed with a hint for the HTTP status.
  int Call(std::string_view command, std::string_view method, const std::string& path,
           const Json* body, const std::function<void(const Json&)>& print);
};

// Prints a failure from a parsing helper and returns its exit code.
int Report(std::string_view command, const CliFailure& f);

// Percent-encodes one path segment (ids, case references, local case numbers).
std::string PathSegment(std::string_view s);

// ---- Printing

// One member of an object as a table cell: "-" for absent, null, empty; times (keys that
// end in "_ms") in UTC; lists comma-separated.
std::string Cell(const Json& j, const std::string& key);

struct Column {
  std::string header;
  std::function<std::string(const Json&)> cell;
};

// A column showing one member.
Column Col(std::string header, std::string key);

// A table of a JSON array's elements, or the empty text when there are none.
void PrintTable(const Json& list, const std::vector<Column>& columns, std::string_view empty);

// "key: value" lines for the scalar members, then one line per element of each list.
void PrintObject(const Json& j, const std::string& indent = "");

// PrintObject as a reply printer: the reply as it is.
void Show(const Json& j);

// ---- Parsing of repeated values

// Lines from a file, or from stdin for "-"; blank lines and '#' comments skipped.
std::variant<std::vector<std::string>, CliFailure> ReadLines(const std::string& path);

// --field values and --fields-file (lines "category:name=value", or a JSON array).
std::variant<Json, CliFailure> CollectFields(const std::vector<std::string>& fields,
                                             const std::string& fields_file);

// The --field and --fields-file options that send-referral and handoff share.
struct FieldArgs {
  std::vector<std::string> fields;
  std::string fields_file;
};
void AddFieldOptions(CLI::App* cmd, FieldArgs& f);

// "ID,URL[,SHA256[,PLATFORM]]" as a deletion item; the URL may itself contain commas: the
// optional parts are recognized from the right (a SHA-256 is 64 hex digits).
std::optional<Json> ParseItem(const std::string& s);

// The names of an enum of schema/workflow.h from value `first` on, for CLI::IsMember.
template <typename E>
std::vector<std::string> NamesOf(int first = 1) {
  std::vector<std::string> names;
  for (int i = first; i < 64; ++i) {
    std::string_view n = schema::Name(static_cast<E>(i));
    if (n == "unknown") break;
    names.emplace_back(n);
  }
  return names;
}

// "a, b, c"
std::string JoinNames(const std::vector<std::string>& names);

}  // namespace refbus::agent::cli

#endif  // REFBUS_AGENT_CLI_COMMON_H_
