// refbus-agent inbox, open, status: delivered messages and the agent's own state
// (GET /v1/inbox, POST /v1/messages/{id}/open, GET /v1/status).
#include <iostream>
#include <memory>
#include <string>

#include "agent/cli/commands.h"

namespace refbus::agent::cli {
namespace {

void PrintInbox(const Json& r) {
  PrintTable(r,
             {Col("MESSAGE", "message_id"),
              Col("FROM", "from"),
              Col("KIND", "kind"),
              Col("CASE", "case_ref"),
              Col("LOCAL", "local_case"),
              Col("RECEIVED", "received_at_ms"),
              Col("OPENED", "opened"),
              {"STATUS",
               [](const Json& j) {
                 std::string s = Cell(j, "status");
                 std::string why = Cell(j, "refusal");
                 return why == "-" ? s : s + ": " + why;
               }}},
             "the inbox is empty");
}

void PrintOpened(const Json& r) {
  std::cout << "message " << Cell(r, "message_id") << " from " << Cell(r, "from") << " ("
            << Cell(r, "kind") << ", case " << Cell(r, "case_ref") << ")\n"
            << "access recorded; the sender is notified\n";
  const Json content = r.contains("content") ? r["content"] : Json();
  const Json* fields = nullptr;
  if (content.is_object() && content.contains("fields") && content["fields"].is_array()) {
    fields = &content["fields"];
  }
  if (fields != nullptr) {
    Json rest = content;
    rest.erase("fields");
    PrintObject(rest, "  ");
    PrintTable(*fields, {Col("CATEGORY", "category"), Col("NAME", "name"), Col("VALUE", "value")},
               "  (no fields)");
  } else if (!content.is_null()) {
    PrintObject(content, "  ");
  }
}

}  // namespace

void AddInbox(CLI::App& app, Commands& c) {
  auto* cmd = app.add_subcommand("inbox", "list delivered messages");
  c.Common(cmd, false);
  c.On(cmd, [&c] { return c.Call("inbox", "GET", "/v1/inbox", nullptr, PrintInbox); });
}

void AddOpen(CLI::App& app, Commands& c) {
  auto id = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand(
      "open", "open a message (records the access and notifies the sending agency)");
  c.Common(cmd, true);
  cmd->add_option("message", *id, "the message id (refbus-agent inbox)")->required();
  c.On(cmd, [&c, id] {
    auto op = c.Operator("open");
    if (!op) return kExitUsage;
    Json body = {{"operator", *op}};
    return c.Call("open", "POST", "/v1/messages/" + PathSegment(*id) + "/open", &body, PrintOpened);
  });
}

void AddStatus(CLI::App& app, Commands& c) {
  auto* cmd = app.add_subcommand("status", "the agent's session and counts");
  c.Common(cmd, false);
  c.On(cmd, [&c] { return c.Call("status", "GET", "/v1/status", nullptr, Show); });
}

}  // namespace refbus::agent::cli
