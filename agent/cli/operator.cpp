// refbus-agent operator add | list | disable | enable | passwd | role | roster: the agency
// administrator's commands for operator accounts (agent/operators.h), run on the agent's
// machine as the user the agent runs as. They work on the store file directly (a running
// daemon sees each change at the next request: a disabled account's sessions end).
//
// Passwords are read from --password-file (a 0600 file) or from stdin (one line), never
// from the command line, and never printed.
#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "agent/cli/commands.h"
#include "agent/config.h"
#include "agent/operators.h"
#include "core/clock.h"
#include "core/file.h"
#include "keys/keyfile.h"
#include "keys/operator_roster.h"
#include "keys/secret.h"

namespace refbus::agent::cli {
namespace {

constexpr char kOperatorFooter[] = R"(
Passwords come from --password-file (mode 0600, one line) or stdin (one line); never from
the command line. Exit codes: 0 done, 1 refused (unknown operator, wrong old password, bad
name or password), 2 usage error.)";

struct OperatorArgs {
  std::string config;
  std::string out;
  std::string name;
  std::string role = "caseworker";
  std::string password_file;
  std::string old_password_file;
  bool reset = false;
};

// One line of a password: from the file, or from stdin; the trailing newline is dropped.
// The result is in locked memory.
Result<keys::SecretBuffer> ReadPassword(const std::string& file, const char* what) {
  Bytes raw;
  if (!file.empty()) {
    REFBUS_RETURN_IF_ERROR(CheckPrivateFile(file).WithContext(what));
    REFBUS_ASSIGN_OR_RETURN(raw, ReadFile(file, kMaxPasswordBytes + 2));
  } else {
    if (::isatty(STDIN_FILENO) != 0) std::cerr << what << ": ";
    std::string line;
    std::getline(std::cin, line);
    raw.assign(line.begin(), line.end());
    sodium_memzero(line.data(), line.size());
  }
  size_t n = raw.size();
  while (n > 0 && (raw[n - 1] == '\n' || raw[n - 1] == '\r')) --n;
  auto out = keys::SecretBuffer::CopyOf(ByteView(raw).first(n));
  if (!raw.empty()) sodium_memzero(raw.data(), raw.size());
  return out;
}

Result<OperatorStore> StoreOf(const std::string& config_path) {
  REFBUS_ASSIGN_OR_RETURN(AgentConfig config, LoadAgentConfig(config_path));
  if (!PathExists(config.data_dir)) {
    REFBUS_RETURN_IF_ERROR(MakeDirectories(config.data_dir, 0700));
  }
  return OperatorStore(OperatorStorePath(config.data_dir));
}

int Done(const char* command, const Status& s, const std::string& what) {
  if (!s.ok()) {
    std::cerr << "refbus-agent operator " << command << ": " << s.ToString() << "\n";
    return kExitRefused;
  }
  std::cout << what << "\n";
  return kExitOk;
}

int RunAdd(const OperatorArgs& a) {
  auto store = StoreOf(a.config);
  if (!store.ok()) return Done("add", store.status(), "");
  auto role = ParseRole(a.role);
  if (!role.ok()) return Done("add", role.status(), "");
  auto pw = ReadPassword(a.password_file, "password");
  if (!pw.ok()) return Done("add", pw.status(), "");
  Status s = store->Add(a.name, *role, pw->view(), SystemClock::Get().NowMillis());
  return Done("add", s, "operator " + a.name + " added (" + a.role + ")");
}

int RunList(const OperatorArgs& a) {
  auto store = StoreOf(a.config);
  if (!store.ok()) return Done("list", store.status(), "");
  auto ops = store->List();
  if (!ops.ok()) return Done("list", ops.status(), "");
  Json list = Json::array();
  for (const auto& r : *ops) {
    list.push_back({{"name", r.name},
                    {"role", std::string(RoleName(r.role))},
                    {"active", r.active ? "yes" : "DISABLED"},
                    {"public_key", HexEncode(r.public_key).substr(0, 16) + "..."},
                    {"changed_at_ms", r.changed_at_ms}});
  }
  PrintTable(list,
             {Col("NAME", "name"), Col("ROLE", "role"), Col("ACTIVE", "active"),
              Col("PUBLIC KEY", "public_key"), Col("CHANGED", "changed_at_ms")},
             "no operators (refbus-agent operator add NAME)");
  return kExitOk;
}

int RunSetActive(const OperatorArgs& a, bool active) {
  const char* cmd = active ? "enable" : "disable";
  auto store = StoreOf(a.config);
  if (!store.ok()) return Done(cmd, store.status(), "");
  Status s = store->SetActive(a.name, active, SystemClock::Get().NowMillis());
  return Done(cmd, s,
              "operator " + a.name + (active ? " enabled" : " disabled (record and key kept)"));
}

int RunRole(const OperatorArgs& a) {
  auto store = StoreOf(a.config);
  if (!store.ok()) return Done("role", store.status(), "");
  auto role = ParseRole(a.role);
  if (!role.ok()) return Done("role", role.status(), "");
  Status s = store->SetRole(a.name, *role, SystemClock::Get().NowMillis());
  return Done("role", s, "operator " + a.name + " is now " + a.role);
}

int RunPasswd(const OperatorArgs& a) {
  auto store = StoreOf(a.config);
  if (!store.ok()) return Done("passwd", store.status(), "");
  std::optional<keys::SecretBuffer> old_pw;
  if (!a.reset) {
    auto o = ReadPassword(a.old_password_file, "old password");
    if (!o.ok()) return Done("passwd", o.status(), "");
    old_pw = std::move(*o);
  }
  auto pw = ReadPassword(a.password_file, "new password");
  if (!pw.ok()) return Done("passwd", pw.status(), "");
  std::optional<ByteView> old_view;
  if (old_pw) old_view = old_pw->view();
  Status s = store->SetPassword(a.name, old_view, pw->view(), SystemClock::Get().NowMillis());
  return Done("passwd", s,
              a.reset ? "operator " + a.name +
                            ": password reset, new key pair (publish a new "
                            "roster)"
                      : "operator " + a.name + ": password changed, key re-sealed");
}

// The roster of every account, signed by the agency's key (keys/operator_roster.h). Its
// version is the time of the latest change to any account, so a later roster is larger.
int RunRoster(const OperatorArgs& a) {
  auto config = LoadAgentConfig(a.config);
  if (!config.ok()) return Done("roster", config.status(), "");
  OperatorStore store(OperatorStorePath(config->data_dir));
  auto ops = store.List();
  if (!ops.ok()) return Done("roster", ops.status(), "");
  std::optional<keys::SecretBuffer> pass;
  if (!config->passphrase_file.empty()) {
    auto pf = keys::ReadPassphraseFile(config->passphrase_file);
    if (!pf.ok()) return Done("roster", pf.status(), "");
    pass = std::move(*pf);
  }
  auto id = keys::LoadIdentity(config->key_file, pass ? &*pass : nullptr);
  if (!id.ok()) return Done("roster", id.status(), "");
  keys::OperatorRoster roster = RosterOf(config->id, *ops, SystemClock::Get().NowMillis());
  auto text = keys::SignOperatorRoster(*id, roster);
  if (!text.ok()) return Done("roster", text.status(), "");
  Status s = WriteFileAtomic(a.out, AsBytes(*text), kPublicFileMode);
  return Done("roster", s,
              "roster version " + std::to_string(roster.version) + " of " + config->id + " (" +
                  std::to_string(roster.operators.size()) + " operators) written to " + a.out);
}

CLI::App* Sub(CLI::App* parent, const char* name, const char* help, OperatorArgs& a) {
  auto* cmd = parent->add_subcommand(name, help);
  cmd->add_option("-c,--config", a.config, "the agent's configuration file")->required();
  cmd->footer(kOperatorFooter);
  return cmd;
}

}  // namespace

void AddOperator(CLI::App& app, Commands& c) {
  auto* op = app.add_subcommand("operator", "operator accounts (the administrator's commands)");
  op->require_subcommand(1);
  auto a = std::make_shared<OperatorArgs>();
  auto* add = Sub(op, "add", "add an operator account", *a);
  add->add_option("name", a->name, "the operator's name (a-z, 0-9, . _ -)")->required();
  add->add_option("--role", a->role, "caseworker, supervisor, administrator or read-only")
      ->capture_default_str();
  add->add_option("--password-file", a->password_file, "read the password here (else stdin)");
  c.On(add, [a] { return RunAdd(*a); });

  auto* list = Sub(op, "list", "list the operator accounts", *a);
  c.On(list, [a] { return RunList(*a); });

  auto* dis = Sub(op, "disable", "refuse an operator's logins (the record is kept)", *a);
  dis->add_option("name", a->name, "the operator")->required();
  c.On(dis, [a] { return RunSetActive(*a, false); });
  auto* en = Sub(op, "enable", "allow a disabled operator to log in again", *a);
  en->add_option("name", a->name, "the operator")->required();
  c.On(en, [a] { return RunSetActive(*a, true); });

  auto* role = Sub(op, "role", "change an operator's role", *a);
  role->add_option("name", a->name, "the operator")->required();
  role->add_option("role", a->role, "caseworker, supervisor, administrator or read-only")
      ->required();
  c.On(role, [a] { return RunRole(*a); });

  auto* pw = Sub(op, "passwd", "change an operator's password", *a);
  pw->add_option("name", a->name, "the operator")->required();
  pw->add_option("--password-file", a->password_file, "the new password (else stdin)");
  pw->add_option("--old-password-file", a->old_password_file,
                 "the old password (else stdin, first line); keeps the key pair");
  pw->add_flag("--reset", a->reset,
               "without the old password: a new key pair (the old one cannot be unsealed)");
  c.On(pw, [a] { return RunPasswd(*a); });

  auto* roster = Sub(op, "roster", "write the operators' public keys, signed by the agency", *a);
  roster->add_option("--out", a->out, "the roster file (public)")->required();
  c.On(roster, [a] { return RunRoster(*a); });
}

}  // namespace refbus::agent::cli
