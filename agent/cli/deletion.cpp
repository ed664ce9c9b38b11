// refbus-agent request-deletion, deletion-status, deletions: taking content down through a
// deletion center (POST/GET /v1/deletions, POST /v1/deletions/{id}/status).
#include <algorithm>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "agent/cli/commands.h"

namespace refbus::agent::cli {
namespace {

const std::vector<std::string>& ItemStates() {
  static const std::vector<std::string> kItemStates = NamesOf<schema::DeletionItemStatus>();
  return kItemStates;
}

struct DeletionArgs {
  std::string grant, to, items_file;
  std::vector<std::string> items, report_to;
  bool monitor = false;
};

int RequestDeletion(Commands& c, const DeletionArgs& d) {
  auto op = c.Operator("request-deletion");
  if (!op) return kExitUsage;
  std::vector<std::string> lines = d.items;
  if (!d.items_file.empty()) {
    auto read = ReadLines(d.items_file);
    if (auto* f = std::get_if<CliFailure>(&read)) return Report("request-deletion", *f);
    for (auto& l : std::get<std::vector<std::string>>(read)) lines.push_back(std::move(l));
  }
  if (lines.empty()) {
    std::cerr << "refbus-agent request-deletion: give at least one --item or --items-file\n";
    return kExitUsage;
  }
  Json items = Json::array();
  for (const auto& l : lines) {
    auto item = ParseItem(l);
    if (!item) {
      std::cerr << "refbus-agent request-deletion: item '" << l.substr(0, l.find(','))
                << ",...' is not ID,URL[,SHA256[,PLATFORM]]\n";
      return kExitUsage;
    }
    items.push_back(*item);
  }
  Json body = {{"grant_id", d.grant},      {"to", d.to},           {"items", items},
               {"report_to", d.report_to}, {"monitor", d.monitor}, {"operator", *op}};
  size_t n = items.size();
  return c.Call("request-deletion", "POST", "/v1/deletions", &body, [n](const Json& r) {
    std::cout << "deletion request " << Cell(r, "request_id") << " sent with " << n
              << " items (message " << Cell(r, "message_id") << ")\n";
  });
}

struct StatusArgs {
  std::string id;
  std::vector<std::string> items;
};

int ReportDeletionStatus(Commands& c, const StatusArgs& a) {
  const std::vector<std::string>& item_states = ItemStates();
  auto op = c.Operator("deletion-status");
  if (!op) return kExitUsage;
  Json updates = Json::array();
  for (const auto& i : a.items) {
    size_t colon = i.rfind(':');
    std::string status = colon == std::string::npos ? "" : i.substr(colon + 1);
    if (colon == 0 ||
        std::find(item_states.begin(), item_states.end(), status) == item_states.end()) {
      std::cerr << "refbus-agent deletion-status: --item '" << i
                << "' is not ITEM-ID:STATUS with STATUS one of " << JoinNames(item_states) << "\n";
      return kExitUsage;
    }
    updates.push_back({{"item_id", i.substr(0, colon)}, {"status", status}});
  }
  Json body = {{"updates", updates}, {"operator", *op}};
  return c.Call(
      "deletion-status", "POST", "/v1/deletions/" + PathSegment(a.id) + "/status", &body,
      [](const Json& r) {
        std::cout << "status report #" << Cell(r, "report_seq") << " for request "
                  << Cell(r, "request_id") << " sent to " << Cell(r, "sent_to") << "\n";
        if (r.contains("counts")) {
          std::cout << "  counts:";
          for (const char* k : {"received", "notified", "removed", "reappeared", "withdrawn"}) {
            std::cout << " " << k << " " << Cell(r["counts"], k);
          }
          std::cout << "\n";
        }
      });
}

void PrintDeletions(const Json& r) {
  auto count = [](const char* key) {
    return [key](const Json& j) {
      return j.contains("counts") ? Cell(j["counts"], key) : std::string("-");
    };
  };
  PrintTable(r,
             {Col("REQUEST", "request_id"),
              Col("CASE", "case_ref"),
              Col("SIDE", "side"),
              Col("PEER", "peer"),
              {"ITEMS",
               [](const Json& j) {
                 return j.contains("items") && j["items"].is_array()
                            ? std::to_string(j["items"].size())
                            : (j.contains("items") && j["items"].is_object()
                                   ? std::to_string(j["items"].size())
                                   : std::string("-"));
               }},
              {"RECEIVED", count("received")},
              {"NOTIFIED", count("notified")},
              {"REMOVED", count("removed")},
              {"REAPPEARED", count("reappeared")},
              {"WITHDRAWN", count("withdrawn")},
              Col("REPORT", "report_seq")},
             "no deletion requests");
}

}  // namespace

void AddRequestDeletion(CLI::App& app, Commands& c) {
  auto d = std::make_shared<DeletionArgs>();
  auto* cmd =
      app.add_subcommand("request-deletion", "task a deletion center with taking content down");
  c.Common(cmd, true);
  cmd->add_option("--grant", d->grant, "the consent grant id")->required();
  cmd->add_option("--to", d->to, "the deletion center's agency id")->required();
  cmd->add_option("--item", d->items, "ID,URL[,SHA256[,PLATFORM]] (repeatable)");
  cmd->add_option("--items-file", d->items_file, "one ID,URL[,SHA256[,PLATFORM]] per line");
  cmd->add_option("--report-to", d->report_to, "also report status to these agencies")
      ->delimiter(',');
  cmd->add_flag("--monitor", d->monitor, "keep monitoring for re-uploads");
  c.On(cmd, [&c, d] { return RequestDeletion(c, *d); });
}

void AddDeletionStatus(CLI::App& app, Commands& c) {
  auto a = std::make_shared<StatusArgs>();
  auto* cmd = app.add_subcommand("deletion-status", "report per-item deletion status");
  c.Common(cmd, true);
  cmd->add_option("request", a->id, "the deletion request id")->required();
  cmd->add_option("--item", a->items,
                  "ITEM-ID:STATUS (repeatable); status: " + JoinNames(ItemStates()))
      ->required();
  c.On(cmd, [&c, a] { return ReportDeletionStatus(c, *a); });
}

void AddDeletions(CLI::App& app, Commands& c) {
  auto* cmd = app.add_subcommand("deletions", "list deletion requests and their item counts");
  c.Common(cmd, false);
  c.On(cmd, [&c] { return c.Call("deletions", "GET", "/v1/deletions", nullptr, PrintDeletions); });
}

}  // namespace refbus::agent::cli
