// refbus-agent handoff, ack-handoff: handing the case lead to another agency
// (POST /v1/handoffs, POST /v1/handoffs/{id}/ack).
#include <iostream>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "agent/cli/commands.h"

namespace refbus::agent::cli {
namespace {

struct HandoffArgs {
  std::string grant, to, purpose, reason;
  FieldArgs fields;
};

int SendHandoff(Commands& c, const HandoffArgs& s) {
  auto op = c.Operator("handoff");
  if (!op) return kExitUsage;
  auto fields = CollectFields(s.fields.fields, s.fields.fields_file);
  if (auto* f = std::get_if<CliFailure>(&fields)) return Report("handoff", *f);
  Json body = {{"grant_id", s.grant},
               {"to", s.to},
               {"reason", s.reason},
               {"fields", std::get<Json>(fields)},
               {"operator", *op}};
  if (!s.purpose.empty()) body["purpose"] = s.purpose;
  return c.Call("handoff", "POST", "/v1/handoffs", &body, [](const Json& r) {
    std::cout << "handoff " << Cell(r, "handoff_id") << " sent (message " << Cell(r, "message_id")
              << "); the new lead must acknowledge it\n";
  });
}

struct AckArgs {
  std::string id, reason;
  bool refuse = false;
};

int AckHandoff(Commands& c, const AckArgs& a) {
  auto op = c.Operator("ack-handoff");
  if (!op) return kExitUsage;
  if (a.refuse && a.reason.empty()) {
    std::cerr << "refbus-agent ack-handoff: --refuse needs --reason\n";
    return kExitUsage;
  }
  Json body = {{"accepted", !a.refuse}, {"operator", *op}};
  if (!a.reason.empty()) body["reason"] = a.reason;
  bool refused = a.refuse;
  return c.Call("ack-handoff", "POST", "/v1/handoffs/" + PathSegment(a.id) + "/ack", &body,
                [refused](const Json& r) {
                  std::cout << "handoff " << Cell(r, "handoff_id")
                            << (refused ? " refused" : " accepted")
                            << "; case lead: " << Cell(r, "lead") << "\n";
                });
}

}  // namespace

void AddHandoff(CLI::App& app, Commands& c) {
  static const std::vector<std::string> kPurposes = NamesOf<schema::Purpose>();
  auto s = std::make_shared<HandoffArgs>();
  auto* cmd = app.add_subcommand("handoff", "hand the case lead to another agency");
  c.Common(cmd, true);
  cmd->add_option("--grant", s->grant, "the consent grant id")->required();
  cmd->add_option("--to", s->to, "the new lead agency id")->required();
  cmd->add_option("--reason", s->reason, "why")->required();
  cmd->add_option("--purpose", s->purpose, "purpose (default: the grant's first)")
      ->check(CLI::IsMember(kPurposes));
  AddFieldOptions(cmd, s->fields);
  c.On(cmd, [&c, s] { return SendHandoff(c, *s); });
}

void AddAckHandoff(CLI::App& app, Commands& c) {
  auto a = std::make_shared<AckArgs>();
  auto* cmd = app.add_subcommand("ack-handoff", "accept (or refuse) a handoff of case lead");
  c.Common(cmd, true);
  cmd->add_option("handoff", a->id, "the handoff id")->required();
  cmd->add_flag("--refuse", a->refuse, "refuse the handoff (with --reason)");
  cmd->add_option("--reason", a->reason, "why (required with --refuse)");
  c.On(cmd, [&c, a] { return AckHandoff(c, *a); });
}

}  // namespace refbus::agent::cli
