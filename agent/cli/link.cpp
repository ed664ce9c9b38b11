// refbus-agent link add | list | matches | tally | send-tally | tallies | bundle: identifiers
// for the matching escrow, and the tallies and joint evidence bundle after a match (PROTOCOL.md
// 13.6-13.8; POST /v1/linkage/{id}/send, GET /v1/linkage/{id}/tallies, POST
// /v1/cases/{case}/links, GET /v1/links, GET /v1/cases/{case}/links, GET /v1/linkage/matches). The
// identifier goes to the daemon in the request body and is never printed: the answer names the
// case, the kind and the messages only.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "agent/cli/commands.h"
#include "core/clock.h"
#include "core/file.h"

namespace refbus::agent::cli {
namespace {

void PrintLinks(const Json& r) {
  PrintTable(r,
             {Col("LINK", "link_id"), Col("CASE", "case_ref"), Col("KIND", "kind"),
              Col("ESCROW", "escrow"), Col("ADDED", "added_at_ms"), Col("EXPIRES", "expires_ms"),
              Col("WITHDRAWN", "withdrawn")},
             "no linkage entries");
}

// The day of a time the notice carries ("2024-03-02"), or "?" when the agency gave none.
std::string NoticeDay(const Json& j, const char* key) {
  const UnixMillis t = j.value(key, UnixMillis{0});
  return t > 0 ? FormatUtc(t).substr(0, 10) : std::string("?");
}

// One other agency of a notice as a caseworker reads it: who, when it saw the identifier,
// and the counts it chose to give ("busan-center 2024-03-02..2026-10-30 3 victims").
std::string OtherAgency(const Json& o) {
  std::string out = o.value("agency", "") + " " + NoticeDay(o, "first_seen_ms") + ".." +
                    NoticeDay(o, "last_seen_ms");
  if (const uint64_t v = o.value("victims", uint64_t{0}); v > 0) {
    out += " " + std::to_string(v) + (v == 1 ? " victim" : " victims");
  }
  if (const uint64_t n = o.value("items", uint64_t{0}); n > 0) {
    out += " " + std::to_string(n) + " items";
  }
  return out;
}

void PrintMatches(const Json& r) {
  PrintTable(r,
             {Col("LINKAGE", "linkage_id"),
              Col("CASE", "case_ref"),
              Col("KIND", "kind"),
              {"OTHER AGENCIES (SEEN, COUNTS)",
               [](const Json& j) {
                 std::string out;
                 for (const auto& o : j.value("others", Json::array())) {
                   if (!out.empty()) out += "; ";
                   out += OtherAgency(o);
                 }
                 return out.empty() ? std::string("-") : out;
               }},
              Col("MATCHED", "matched_at_ms")},
             "no linkage notices");
}

void AddLinkAdd(CLI::App& link, Commands& c) {
  struct Args {
    std::string id, kind, value, grant;
    uint64_t first_seen = 0, last_seen = 0, victims = 0, items = 0;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = link.add_subcommand("add", "enter an identifier of a case for the matching escrow");
  c.Common(cmd, true);
  cmd->add_option("--case", a->id, "the case reference or local case number")->required();
  cmd->add_option("--kind", a->kind, "account, phone, email, url or content-sha256")->required();
  cmd->add_option("--value", a->value,
                  "the identifier; '-' reads one line from standard input (a value on the "
                  "command line is visible to other local users while it runs)")
      ->required();
  cmd->add_option("--grant", a->grant,
                  "the grant (default: the case's grant with purpose linkage)");
  cmd->add_option("--first-seen-ms", a->first_seen, "first seen (Unix ms; default now)");
  cmd->add_option("--last-seen-ms", a->last_seen, "last seen (Unix ms; default now)");
  cmd->add_option("--victims", a->victims, "victims supported in this case (optional)");
  cmd->add_option("--items", a->items, "deletion items handled (optional)");
  c.On(cmd, [&c, a] {
    auto op = c.Operator("link add");
    if (!op) return kExitUsage;
    if (a->value == "-" && !std::getline(std::cin, a->value)) {
      std::cerr << "link add: no identifier on standard input\n";
      return kExitUsage;
    }
    Json body = {{"kind", a->kind}, {"value", a->value}, {"operator", *op}};
    a->value.assign(a->value.size(), '\0');
    if (!a->grant.empty()) body["grant_id"] = a->grant;
    if (a->first_seen != 0) body["first_seen_ms"] = a->first_seen;
    if (a->last_seen != 0) body["last_seen_ms"] = a->last_seen;
    if (a->victims != 0) body["victims"] = a->victims;
    if (a->items != 0) body["items"] = a->items;
    return c.Call("link add", "POST", "/v1/cases/" + PathSegment(a->id) + "/links", &body,
                  [](const Json& r) {
                    std::cout << "linkage entry " << Cell(r, "link_id") << " (" << Cell(r, "kind")
                              << ") of case " << Cell(r, "case_ref") << " sent to "
                              << Cell(r, "escrow") << "; message " << Cell(r, "message_id") << "\n";
                  });
  });
}

// Writes text to path (0600: tallies are case metadata); false, with *failed set and the
// error printed, if it cannot.
bool WriteLinkFile(const char* command, const std::string& path, const std::string& text,
                   int* failed) {
  Status s = WriteFileAtomic(path, AsBytes(text), kPrivateFileMode);
  if (s.ok()) return true;
  std::cerr << "refbus-agent " << command << ": " << s.message() << "\n";
  *failed = kExitUsage;
  return false;
}

// `link tally LINKAGE_ID --victims N --deletion-items N --from DATE --to DATE [--out FILE]`:
// this agency's signed tally, recorded at its home broker; --out writes the evidence (the
// signed tally with its log entry, proof and checkpoint) for the lead agency.
void AddLinkTally(CLI::App& link, Commands& c) {
  struct Args {
    std::string id, from, to, out;
    uint64_t victims = 0, items = 0;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = link.add_subcommand(
      "tally", "sign this agency's tally about a linkage id and record it at its broker");
  c.Common(cmd, true);
  cmd->add_option("LINKAGE_ID", a->id, "the linkage id of a notice (32 hex digits)")->required();
  cmd->add_option("--victims", a->victims, "victims supported")->required();
  cmd->add_option("--deletion-items", a->items, "deletion items handled")->required();
  cmd->add_option("--from", a->from, "first day (YYYY-MM-DD)")->required();
  cmd->add_option("--to", a->to, "last day (YYYY-MM-DD)")->required();
  cmd->add_option("--out", a->out, "also write the tally's evidence here for the lead agency");
  c.On(cmd, [&c, a] {
    auto op = c.Operator("link tally");
    if (!op) return kExitUsage;
    Json body = {{"victims", a->victims},
                 {"deletion_items", a->items},
                 {"from", a->from},
                 {"to", a->to},
                 {"operator", *op}};
    int failed = kExitOk;
    int rc = c.Call("link tally", "POST", "/v1/linkage/" + PathSegment(a->id) + "/tally", &body,
                    [&a, &failed](const Json& r) {
                      std::cout << "tally of " << Cell(r, "agency") << " about linkage "
                                << Cell(r, "linkage_id") << ": " << Cell(r, "victims")
                                << " victims, " << Cell(r, "deletion_items") << " deletion items, "
                                << Cell(r, "from") << " to " << Cell(r, "to") << "; recorded in "
                                << Cell(r, "broker_id") << "'s audit log, entry "
                                << Cell(r, "index") << "\n";
                      if (a->out.empty()) return;
                      if (!WriteLinkFile("link tally", a->out, r.value("evidence", ""), &failed)) {
                        return;
                      }
                      std::cout << "evidence written to " << a->out << "\n";
                    });
    return rc != kExitOk ? rc : failed;
  });
}

// `link bundle LINKAGE_ID --out FILE [--with FILE]...`: the joint evidence bundle of every
// tally held about the linkage id (others' evidence files given with --with are checked and
// kept by the agent first).
void AddLinkBundle(CLI::App& link, Commands& c) {
  struct Args {
    std::string id, out;
    std::vector<std::string> with;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = link.add_subcommand("bundle", "write the joint evidence bundle of a linkage id");
  c.Common(cmd, false);
  cmd->add_option("LINKAGE_ID", a->id, "the linkage id (32 hex digits)")->required();
  cmd->add_option("--out", a->out, "the bundle file to write (JSON)")->required();
  cmd->add_option("--with", a->with, "another agency's tally evidence file (repeatable)");
  c.On(cmd, [&c, a] {
    Json with = Json::array();
    for (const auto& path : a->with) {
      auto raw = ReadFile(path, size_t{1} << 20);
      if (!raw.ok()) {
        std::cerr << "refbus-agent link bundle: " << raw.status().message() << "\n";
        return kExitUsage;
      }
      with.push_back(std::string(AsChars(*raw)));
    }
    Json body = {{"with", with}};
    int failed = kExitOk;
    int rc = c.Call("link bundle", "POST", "/v1/linkage/" + PathSegment(a->id) + "/bundle", &body,
                    [&a, &failed](const Json& r) {
                      if (!WriteLinkFile("link bundle", a->out, r.value("bundle", ""), &failed)) {
                        return;
                      }
                      std::cout << "bundle of " << r.value("agencies", Json::array()).size()
                                << " tallies about linkage " << Cell(r, "linkage_id")
                                << " written to " << a->out
                                << "\nCheck it anywhere with: refbus-audit check-bundle " << a->out
                                << " --dir AUDITOR_DIR\n";
                    });
    return rc != kExitOk ? rc : failed;
  });
}

// `link send-tally LINKAGE_ID --to AGENCY [--grant GRANT]`: this agency's tally evidence to
// another agency of the match over the bus (PROTOCOL.md 13.8), under this agency's grant
// with purpose linkage naming that agency.
void AddLinkSendTally(CLI::App& link, Commands& c) {
  struct Args {
    std::string id, to, grant;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = link.add_subcommand(
      "send-tally", "send this agency's tally about a linkage id to another agency of the match");
  c.Common(cmd, true);
  cmd->add_option("LINKAGE_ID", a->id, "the linkage id of a notice (32 hex digits)")->required();
  cmd->add_option("--to", a->to, "the agency (usually the lead) to send it to")->required();
  cmd->add_option("--grant", a->grant,
                  "the grant (default: the newest grant of the notice's case with purpose "
                  "linkage naming that agency)");
  c.On(cmd, [&c, a] {
    auto op = c.Operator("link send-tally");
    if (!op) return kExitUsage;
    Json body = {{"to", a->to}, {"operator", *op}};
    if (!a->grant.empty()) body["grant_id"] = a->grant;
    return c.Call("link send-tally", "POST", "/v1/linkage/" + PathSegment(a->id) + "/send", &body,
                  [](const Json& r) {
                    std::cout << "tally about linkage " << Cell(r, "linkage_id") << " sent to "
                              << Cell(r, "to") << " under grant " << Cell(r, "grant_id")
                              << " of case " << Cell(r, "case_ref") << "; message "
                              << Cell(r, "message_id") << "\n";
                  });
  });
}

void PrintTallies(const Json& r) {
  PrintTable(
      r,
      {Col("AGENCY", "agency"), Col("VICTIMS", "victims"), Col("DELETION ITEMS", "deletion_items"),
       Col("FROM", "from"), Col("TO", "to"), Col("MADE", "made_at_ms"), Col("SOURCE", "source"),
       Col("RECEIVED", "received_at_ms")},
      "no tallies");
}

}  // namespace

void AddLink(CLI::App& app, Commands& c) {
  auto* link = app.add_subcommand("link",
                                  "identifiers for the matching escrow: add, list, matches, tally, "
                                  "send-tally, tallies, bundle");
  link->require_subcommand(1);
  AddLinkAdd(*link, c);
  AddLinkTally(*link, c);
  AddLinkBundle(*link, c);
  AddLinkSendTally(*link, c);
  auto tallies_id = std::make_shared<std::string>();
  auto* tallies = link->add_subcommand("tallies", "the tallies held about a linkage id");
  c.Common(tallies, false);
  tallies->add_option("LINKAGE_ID", *tallies_id, "the linkage id (32 hex digits)")->required();
  c.On(tallies, [&c, tallies_id] {
    return c.Call("link tallies", "GET", "/v1/linkage/" + PathSegment(*tallies_id) + "/tallies",
                  nullptr, PrintTallies);
  });
  auto id = std::make_shared<std::string>();
  auto* list = link->add_subcommand("list", "the linkage entries this agency sent");
  c.Common(list, false);
  list->add_option("--case", *id, "only this case (reference or local case number)");
  c.On(list, [&c, id] {
    const std::string path = id->empty() ? "/v1/links" : "/v1/cases/" + PathSegment(*id) + "/links";
    return c.Call("link list", "GET", path, nullptr, PrintLinks);
  });
  auto* matches = link->add_subcommand("matches", "the linkage notices this agency received");
  c.Common(matches, false);
  c.On(matches, [&c] {
    return c.Call("link matches", "GET", "/v1/linkage/matches", nullptr, PrintMatches);
  });
}

}  // namespace refbus::agent::cli
