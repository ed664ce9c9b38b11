// refbus-agent request-deletion, deletion-status, deletions: taking content down through a
// deletion center (POST/GET /v1/deletions, POST /v1/deletions/{id}/status).
#include <algorithm>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "agent/cli/commands.h"
#include "core/file.h"

namespace refbus::agent::cli {
namespace {

const std::vector<std::string>& ItemStates() {
  static const std::vector<std::string> kItemStates = NamesOf<schema::DeletionItemStatus>();
  return kItemStates;
}

// A CSV file's text (stdin for "-"), sent to the agent as it is: the agent parses it and
// names bad lines by number (agent/deletion_bulk.h).
std::variant<std::string, CliFailure> ReadCsv(const std::string& path) {
  if (path == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
  auto raw = ReadFile(path, size_t{32} << 20);
  if (!raw.ok()) return CliFailure{kExitUsage, raw.status().message()};
  return std::string(AsChars(*raw));
}

struct DeletionArgs {
  std::string grant, to, items_file, csv;
  std::vector<std::string> items, report_to;
  bool monitor = false;
};

int RequestDeletion(Commands& c, const DeletionArgs& d) {
  auto op = c.Operator("request-deletion");
  if (!op) return kExitUsage;
  if (!d.csv.empty()) {
    if (!d.items.empty() || !d.items_file.empty()) {
      std::cerr << "refbus-agent request-deletion: give --csv or --item/--items-file, not both\n";
      return kExitUsage;
    }
    auto text = ReadCsv(d.csv);
    if (auto* f = std::get_if<CliFailure>(&text)) return Report("request-deletion", *f);
    Json body = {
        {"grant_id", d.grant},      {"to", d.to},           {"csv", std::get<std::string>(text)},
        {"report_to", d.report_to}, {"monitor", d.monitor}, {"operator", *op}};
    return c.Call("request-deletion", "POST", "/v1/deletions", &body, [](const Json& r) {
      std::cout << "deletion request " << Cell(r, "request_id") << " sent with "
                << Cell(r, "item_count") << " items in " << Cell(r, "chunks")
                << " chunks (first message " << Cell(r, "message_id") << ")\n";
    });
  }
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
  std::string id, csv;
  std::vector<std::string> items;
};

void PrintReported(const Json& r) {
  if (r.value("parts", 0) == 0) {
    std::cout << "no item changed status since report #" << Cell(r, "report_seq")
              << ": nothing sent\n";
    return;
  }
  std::cout << "status report #" << Cell(r, "report_seq") << " for request "
            << Cell(r, "request_id") << " (" << Cell(r, "changed") << " items changed, "
            << Cell(r, "parts") << " messages) sent to " << Cell(r, "sent_to") << "\n";
  if (r.contains("counts")) {
    std::cout << "  counts:";
    for (const char* k : {"received", "notified", "removed", "reappeared", "withdrawn"}) {
      std::cout << " " << k << " " << Cell(r["counts"], k);
    }
    std::cout << "\n";
  }
}

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
  if (!a.csv.empty()) {
    if (!a.items.empty()) {
      std::cerr << "refbus-agent deletion-status: give --csv or --item, not both\n";
      return kExitUsage;
    }
    auto text = ReadCsv(a.csv);
    if (auto* f = std::get_if<CliFailure>(&text)) return Report("deletion-status", *f);
    body = {{"csv", std::get<std::string>(text)}, {"operator", *op}};
  } else if (a.items.empty()) {
    std::cerr << "refbus-agent deletion-status: give --item ITEM-ID:STATUS or --csv FILE\n";
    return kExitUsage;
  }
  return c.Call("deletion-status", "POST", "/v1/deletions/" + PathSegment(a.id) + "/status", &body,
                PrintReported);
}

struct ExportArgs {
  std::string id, out;
};

// The request's items with their current state, as CSV: to a file (0600: it holds the
// URLs) or stdout.
int ExportDeletion(Commands& c, const ExportArgs& a) {
  auto op = c.Operator("deletions export");
  if (!op) return kExitUsage;
  Json body = {{"operator", *op}};
  int failed = kExitOk;
  int rc = c.Call("deletions export", "POST", "/v1/deletions/" + PathSegment(a.id) + "/items.csv",
                  &body, [&a, &failed](const Json& r) {
                    const std::string text = r.is_string() ? r.get<std::string>() : "";
                    if (a.out.empty() || a.out == "-") {
                      std::cout << text;
                      return;
                    }
                    Status s = WriteFileAtomic(a.out, AsBytes(text), kPrivateFileMode);
                    if (!s.ok()) {
                      std::cerr << "refbus-agent deletions export: " << s.message() << "\n";
                      failed = kExitUsage;
                      return;
                    }
                    std::cerr << "wrote " << std::count(text.begin(), text.end(), '\n') - 1
                              << " items to " << a.out << "\n";
                  });
  return rc != kExitOk ? rc : failed;
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

// The work queue as one row per work item, grouped by platform.
void PrintWork(const Json& r) {
  Json rows = Json::array();
  for (const auto& p : r.value("platforms", Json::array())) {
    for (const auto& w : p.value("items", Json::array())) {
      rows.push_back({{"platform", p.value("platform", "")},
                      {"work_id", w.value("work_id", "")},
                      {"status", w.value("status", "")},
                      {"overdue", w.value("overdue", false) ? "OVERDUE" : ""},
                      {"requesters", std::to_string(w.value("requesters", Json::array()).size())},
                      {"notices", std::to_string(w.value("notices", Json::array()).size())},
                      {"watch", w.value("monitored", false) ? "watched" : ""}});
    }
  }
  PrintTable(rows,
             {Col("PLATFORM", "platform"), Col("WORK ITEM", "work_id"), Col("STATUS", "status"),
              Col("OVERDUE", "overdue"), Col("REQUESTERS", "requesters"), Col("NOTICES", "notices"),
              Col("WATCH", "watch")},
             "no work items");
  std::cout << r.value("overdue", 0) << " overdue of " << r.value("work_items", 0) << " (deadline "
            << r.value("overdue_days", 0) << " days)\n";
}

struct NoticeArgs {
  std::string work_id, platform, answer;
  uint64_t sent_at_ms = 0;
  bool removed = false;
};

// `deletions notice WORK-ID --platform P [--answer TEXT] [--removed] [--sent-at-ms N]`: a
// takedown notice on a work item (POST /v1/deletion-work/{id}/notice).
int RecordNotice(Commands& c, const NoticeArgs& a) {
  auto op = c.Operator("deletions notice");
  if (!op) return kExitUsage;
  Json body = {{"platform", a.platform}, {"removed", a.removed}, {"operator", *op}};
  if (!a.answer.empty()) body["answer"] = a.answer;
  if (a.sent_at_ms != 0) body["sent_at_ms"] = a.sent_at_ms;
  return c.Call(
      "deletions notice", "POST", "/v1/deletion-work/" + PathSegment(a.work_id) + "/notice", &body,
      [](const Json& r) {
        std::cout << "work item " << r.value("work_id", "") << ": "
                  << r.value("notices", Json::array()).size() << " notice(s)";
        if (r.contains("answer_not_kept")) {
          std::cout << " (answer not kept: " << r["answer_not_kept"].get<std::string>() << ")";
        }
        std::cout << "\n";
      });
}

struct WatchArgs {
  std::string out, file;
  bool no_send = false;
};

// `deletions watch-list publish [--out FILE] [--no-send]`: the next version, sent over the
// bus to the other deletion centers unless --no-send; --out writes the signed files
// ({"full": ..., "delta": ...}, mode 0600) for carrying by hand.
int PublishWatch(Commands& c, const WatchArgs& a) {
  auto op = c.Operator("deletions watch-list publish");
  if (!op) return kExitUsage;
  Json body = {{"operator", *op}, {"send", !a.no_send}};
  int failed = kExitOk;
  int rc = c.Call("deletions watch-list publish", "POST", "/v1/deletion-watch-list/publish", &body,
                  [&a, &failed](const Json& r) {
                    std::cout << "watch list version " << r.value("version", 0) << " ("
                              << r.value("hashes", 0) << " hashes)";
                    if (r.contains("bus")) {
                      std::cout << ", sent to " << r["bus"].value("sent_to", Json::array()).size()
                                << " deletion center(s)";
                      if (r["bus"].value("parts", 1) > 1) {  // over one message: PROTOCOL.md 10.3
                        std::cout << " in " << r["bus"].value("parts", 1) << " parts each ("
                                  << r["bus"].value("bytes", 0) << " bytes)";
                      }
                      const Json not_sent = r["bus"].value("not_sent", Json::object());
                      for (const auto& [id, why] : not_sent.items()) {
                        std::cout << "\n  not sent to " << id << ": " << why.get<std::string>();
                      }
                    }
                    std::cout << "\n";
                    if (a.out.empty()) return;
                    Json files = {{"full", r.value("full", Json())}};
                    if (r.contains("delta")) files["delta"] = r["delta"];
                    const std::string text = files.dump(2) + "\n";
                    Status s = WriteFileAtomic(a.out, AsBytes(text), kPrivateFileMode);
                    if (!s.ok()) {
                      std::cerr << "refbus-agent deletions watch-list publish: " << s.message()
                                << "\n";
                      failed = kExitUsage;
                    }
                  });
  return rc != kExitOk ? rc : failed;
}

// `deletions watch-list import FILE`: a signed watch-list file (or the {"full", "delta"}
// pair publish --out writes: the delta is imported, the full list if the delta's base is
// not held is for the operator to retry with).
int ImportWatch(Commands& c, const WatchArgs& a) {
  auto op = c.Operator("deletions watch-list import");
  if (!op) return kExitUsage;
  auto raw = ReadCsv(a.file);
  if (auto* f = std::get_if<CliFailure>(&raw)) return Report("deletions watch-list import", *f);
  Json file = Json::parse(std::get<std::string>(raw), nullptr, false);
  if (file.is_discarded() || !file.is_object()) {
    std::cerr << "refbus-agent deletions watch-list import: " << a.file << " is not JSON\n";
    return kExitUsage;
  }
  if (!file.contains("list") && file.contains("full")) {
    file = file.contains("delta") ? file["delta"] : file["full"];
  }
  Json body = {{"file", file}, {"operator", *op}};
  return c.Call("deletions watch-list import", "POST", "/v1/deletion-watch-list/import", &body,
                [](const Json& r) {
                  std::cout << "imported version " << r.value("version", 0) << " of "
                            << r.value("publisher", "") << "'s watch list: " << r.value("hashes", 0)
                            << " hashes, " << r.value("recognized", 0)
                            << " work item(s) recognized\n";
                });
}

void AddNoticeAndWatchVerbs(CLI::App* cmd, Commands& c) {
  auto n = std::make_shared<NoticeArgs>();
  auto* notice = cmd->add_subcommand("notice", "record a takedown notice on a work item");
  c.Common(notice, true);
  notice->add_option("work_item", n->work_id, "the work item id")->required();
  notice->add_option("--platform", n->platform, "the platform the notice went to")->required();
  notice->add_option("--answer", n->answer, "the platform's answer (kept sealed at rest)");
  notice->add_flag("--removed", n->removed, "the platform removed the content");
  notice->add_option("--sent-at-ms", n->sent_at_ms, "when it was sent (Unix ms; default now)");
  c.On(notice, [&c, n] { return RecordNotice(c, *n); });
  auto* watch = cmd->add_subcommand("watch-list", "the signed watch list of content hashes");
  watch->require_subcommand(1);
  auto w = std::make_shared<WatchArgs>();
  auto* publish = watch->add_subcommand("publish", "publish the next version");
  c.Common(publish, true);
  publish->add_option("--out", w->out, "also write the signed files here (mode 0600)");
  publish->add_flag("--no-send", w->no_send, "do not send it over the bus");
  c.On(publish, [&c, w] { return PublishWatch(c, *w); });
  auto* import = watch->add_subcommand("import", "import a signed watch-list file");
  c.Common(import, true);
  import->add_option("file", w->file, "the file (- for stdin)")->required();
  c.On(import, [&c, w] { return ImportWatch(c, *w); });
}

// `deletions work [--overdue] [--platform P]` and `deletions stats --month YYYY-MM` (the
// center's side).
void AddDeletionCenterVerbs(CLI::App* cmd, Commands& c) {
  auto overdue = std::make_shared<bool>(false);
  auto platform = std::make_shared<std::string>();
  auto* work = cmd->add_subcommand("work", "the deletion center's work queue, by platform");
  c.Common(work, false);
  work->add_flag("--overdue", *overdue, "overdue items only ([deletion] overdue_days)");
  work->add_option("--platform", *platform, "this platform's items only");
  c.On(work, [&c, overdue, platform] {
    return c.Call("deletions work", "GET",
                  *overdue ? "/v1/deletion-work/overdue" : "/v1/deletion-work", nullptr,
                  [&platform](const Json& r) {
                    if (platform->empty()) return PrintWork(r);
                    Json only = r;
                    only["platforms"] = Json::array();
                    for (const auto& p : r.value("platforms", Json::array())) {
                      if (p.value("platform", "") == *platform) only["platforms"].push_back(p);
                    }
                    PrintWork(only);
                  });
  });
  AddNoticeAndWatchVerbs(cmd, c);
  auto month = std::make_shared<std::string>();
  auto* stats = cmd->add_subcommand(
      "stats", "de-identified monthly counts as CSV (counts under 5 suppressed)");
  c.Common(stats, false);
  stats->add_option("--month", *month, "YYYY-MM (UTC)")->required();
  c.On(stats, [&c, month] {
    return c.Call(
        "deletions stats", "GET", "/v1/deletion-stats/" + PathSegment(*month), nullptr,
        [](const Json& r) { std::cout << (r.is_string() ? r.get<std::string>() : r.dump()); });
  });
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
  cmd->add_option("--csv", d->csv,
                  "a CSV file (- for stdin) of url,sha256,platform,note (header optional; "
                  "item ids are line numbers); up to 100,000 items");
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
                  "ITEM-ID:STATUS (repeatable); status: " + JoinNames(ItemStates()));
  cmd->add_option("--csv", a->csv,
                  "a CSV file (- for stdin) of item_id,status (header optional); only "
                  "items whose status changed are reported");
  c.On(cmd, [&c, a] { return ReportDeletionStatus(c, *a); });
}

void AddDeletions(CLI::App& app, Commands& c) {
  auto* cmd = app.add_subcommand("deletions", "list deletion requests and their item counts");
  auto e = std::make_shared<ExportArgs>();
  auto* exp = cmd->add_subcommand(
      "export", "a request's items with their current state as CSV (recorded as a read)");
  c.Common(exp, true);
  exp->add_option("request", e->id, "the deletion request id")->required();
  exp->add_option("--out", e->out, "write the CSV here (mode 0600) instead of stdout");
  c.On(exp, [&c, e] { return ExportDeletion(c, *e); });  // before `deletions` (parsed too)
  AddDeletionCenterVerbs(cmd, c);
  c.Common(cmd, false);
  c.On(cmd, [&c] { return c.Call("deletions", "GET", "/v1/deletions", nullptr, PrintDeletions); });
}

}  // namespace refbus::agent::cli
