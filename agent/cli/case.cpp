// refbus-agent close, set-local-case, case: one case (POST /v1/cases/{case}/close,
// PUT /v1/cases/{case}/local, GET /v1/cases/{case}).
#include <iostream>
#include <memory>
#include <string>

#include "agent/cli/commands.h"

namespace refbus::agent::cli {

void AddClose(CLI::App& app, Commands& c) {
  struct Args {
    std::string id, reason;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("close", "close a case");
  c.Common(cmd, true);
  cmd->add_option("case", a->id, "the case reference or local case number")->required();
  cmd->add_option("--reason", a->reason, "why")->required();
  c.On(cmd, [&c, a] {
    auto op = c.Operator("close");
    if (!op) return kExitUsage;
    Json body = {{"reason", a->reason}, {"operator", *op}};
    return c.Call("close", "POST", "/v1/cases/" + PathSegment(a->id) + "/close", &body,
                  [](const Json& r) {
                    std::cout << "case " << Cell(r, "case_ref")
                              << " closed; notified: " << Cell(r, "notified") << "\n";
                  });
  });
}

void AddSetLocalCase(CLI::App& app, Commands& c) {
  struct Args {
    std::string id, local;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("set-local-case", "map a case to this agency's case number");
  c.Common(cmd, false);
  cmd->add_option("case", a->id, "the case reference")->required();
  cmd->add_option("local", a->local, "this agency's case number")->required();
  c.On(cmd, [&c, a] {
    Json body = {{"local_case", a->local}};
    return c.Call("set-local-case", "PUT", "/v1/cases/" + PathSegment(a->id) + "/local", &body,
                  Show);
  });
}

void AddCase(CLI::App& app, Commands& c) {
  auto id = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("case", "show a case: grants, referrals, notices, purges");
  c.Common(cmd, false);
  cmd->add_option("case", *id, "the case reference or local case number")->required();
  c.On(cmd,
       [&c, id] { return c.Call("case", "GET", "/v1/cases/" + PathSegment(*id), nullptr, Show); });
}

}  // namespace refbus::agent::cli
