// refbus-agent inbox, open, status, checkpoint: delivered messages and the agent's own
// state (GET /v1/inbox, POST /v1/messages/{id}/open, GET /v1/status).
#include <iostream>
#include <memory>
#include <string>

#include "agent/cli/commands.h"
#include "core/file.h"

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

  // The kept checkpoint, written as the signed note the broker sent: an auditor checks the
  // broker's log against it (refbus-audit verify --evidence FILE).
  auto* cp = app.add_subcommand(
      "checkpoint", "the home broker's latest signed audit checkpoint, kept from its Acks");
  c.Common(cp, false);
  auto out = std::make_shared<std::string>();
  cp->add_option("--out", *out,
                 "write the signed checkpoint to this file (for refbus-audit "
                 "verify --evidence)");
  c.On(cp, [&c, out] {
    const bool as_json = c.t.json;
    c.t.json = false;  // the printer runs either way: it writes the file
    int written = kExitOk;
    int code = c.Call("checkpoint", "GET", "/v1/status", nullptr, [&](const Json& r) {
      const Json cpj = r.value("checkpoint", Json());
      if (!cpj.is_object()) {
        std::cerr << "refbus-agent checkpoint: no checkpoint kept yet (the home broker sends "
                     "one with each Ack once it has signed one)\n";
        written = kExitRefused;
        return;
      }
      if (!out->empty()) {
        const std::string note = cpj.value("note", "");
        Status s = WriteFileAtomic(*out, AsBytes(note), kPublicFileMode);
        if (!s.ok()) {
          std::cerr << "refbus-agent checkpoint: " << s.ToString() << "\n";
          written = kExitRefused;
          return;
        }
      }
      if (as_json) {
        std::cout << cpj.dump(2) << "\n";
      } else {
        std::cout << "broker " << Cell(cpj, "broker") << ": size " << Cell(cpj, "size") << ", root "
                  << Cell(cpj, "root") << ", received " << Cell(cpj, "received_at_ms")
                  << (out->empty() ? std::string() : "; written to " + *out) << "\n";
      }
    });
    return code != kExitOk ? code : written;
  });
}

}  // namespace refbus::agent::cli
