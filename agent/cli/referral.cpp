// refbus-agent send-referral, referrals, accept, decline, state: referrals
// (POST/GET /v1/referrals, POST /v1/referrals/{id}/state).
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "agent/cli/commands.h"

namespace refbus::agent::cli {
namespace {

struct SendArgs {
  std::string grant, to, purpose;
  FieldArgs fields;
};

int SendReferral(Commands& c, const SendArgs& s) {
  auto op = c.Operator("send-referral");
  if (!op) return kExitUsage;
  auto fields = CollectFields(s.fields.fields, s.fields.fields_file);
  if (auto* f = std::get_if<CliFailure>(&fields)) return Report("send-referral", *f);
  Json body = {{"grant_id", s.grant},
               {"to", s.to},
               {"purpose", s.purpose},
               {"fields", std::get<Json>(fields)},
               {"operator", *op}};
  return c.Call("send-referral", "POST", "/v1/referrals", &body, [](const Json& r) {
    std::cout << "referral " << Cell(r, "referral_id") << " sent (message " << Cell(r, "message_id")
              << ")\n"
              << "  case:  " << Cell(r, "case_ref") << "\n"
              << "  state: " << Cell(r, "state") << "\n";
  });
}

// accept, decline and state: one state change of a referral.
int ChangeState(Commands& c, std::string_view command, const std::string& id,
                const std::string& state, const std::string& reason) {
  auto op = c.Operator(command);
  if (!op) return kExitUsage;
  Json body = {{"state", state}, {"operator", *op}};
  if (!reason.empty()) body["reason"] = reason;
  return c.Call(command, "POST", "/v1/referrals/" + PathSegment(id) + "/state", &body,
                [](const Json& r) {
                  std::cout << "referral " << Cell(r, "referral_id") << " is now "
                            << Cell(r, "state") << "\n";
                });
}

struct StateArgs {
  std::string id, state, reason;
};

}  // namespace

void AddSendReferral(CLI::App& app, Commands& c) {
  static const std::vector<std::string> kPurposes = NamesOf<schema::Purpose>();
  auto s = std::make_shared<SendArgs>();
  auto* cmd = app.add_subcommand("send-referral", "refer a case to another agency");
  c.Common(cmd, true);
  cmd->add_option("--grant", s->grant, "the consent grant id")->required();
  cmd->add_option("--to", s->to, "the receiving agency id")->required();
  cmd->add_option("--purpose", s->purpose, "the purpose (one the grant names)")
      ->required()
      ->check(CLI::IsMember(kPurposes));
  AddFieldOptions(cmd, s->fields);
  c.On(cmd, [&c, s] { return SendReferral(c, *s); });
}

void AddReferrals(CLI::App& app, Commands& c) {
  auto* cmd = app.add_subcommand("referrals", "list referrals sent and received");
  c.Common(cmd, false);
  c.On(cmd, [&c] {
    return c.Call("referrals", "GET", "/v1/referrals", nullptr, [](const Json& r) {
      PrintTable(
          r,
          {Col("REFERRAL", "referral_id"), Col("CASE", "case_ref"), Col("LOCAL", "local_case"),
           Col("SIDE", "side"), Col("PEER", "peer"), Col("PURPOSE", "purpose"),
           Col("STATE", "state"), Col("UPDATED", "updated_at_ms")},
          "no referrals");
    });
  });
}

void AddAccept(CLI::App& app, Commands& c) {
  auto a = std::make_shared<StateArgs>();
  auto* cmd = app.add_subcommand("accept", "accept a referral");
  c.Common(cmd, true);
  cmd->add_option("referral", a->id, "the referral id")->required();
  c.On(cmd, [&c, a] { return ChangeState(c, "accept", a->id, "accepted", ""); });
}

void AddDecline(CLI::App& app, Commands& c) {
  auto a = std::make_shared<StateArgs>();
  auto* cmd = app.add_subcommand("decline", "decline a referral, with a reason");
  c.Common(cmd, true);
  cmd->add_option("referral", a->id, "the referral id")->required();
  cmd->add_option("--reason", a->reason, "why (the referring agency sees it)")->required();
  c.On(cmd, [&c, a] { return ChangeState(c, "decline", a->id, "declined", a->reason); });
}

void AddState(CLI::App& app, Commands& c) {
  static const std::vector<std::string> kStates = NamesOf<schema::ReferralState>(2);
  auto a = std::make_shared<StateArgs>();
  auto* cmd = app.add_subcommand("state", "move a referral to another state");
  c.Common(cmd, true);
  cmd->add_option("referral", a->id, "the referral id")->required();
  cmd->add_option("state", a->state, "the new state")->required()->check(CLI::IsMember(kStates));
  cmd->add_option("--reason", a->reason, "why");
  c.On(cmd, [&c, a] { return ChangeState(c, "state", a->id, a->state, a->reason); });
}

}  // namespace refbus::agent::cli
