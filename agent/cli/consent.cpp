// refbus-agent consent, consents, revoke-consent: consent grants (POST/GET /v1/consents,
// POST /v1/consents/{id}/revoke).
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "agent/cli/commands.h"

namespace refbus::agent::cli {
namespace {

struct ConsentArgs {
  std::string case_ref, local_case, basis, legal_article, countersigner_key, countersigner_operator;
  std::vector<std::string> consenters, purposes, categories, recipients, recipient_types;
  bool assent = false, onward = false, emergency = false, representative_conflict = false;
  int days = 0, retention_days = 0;
};

void AddConsentOptions(CLI::App* cmd, ConsentArgs& o) {
  static const std::vector<std::string> kBases = NamesOf<schema::LegalBasis>();
  static const std::vector<std::string> kPurposes = NamesOf<schema::Purpose>();
  static const std::vector<std::string> kCategories = NamesOf<schema::DataCategory>();
  static const std::vector<std::string> kConsenters = NamesOf<schema::Consenter>();
  static const std::vector<std::string> kAgencyTypes = NamesOf<schema::AgencyType>();
  cmd->add_option("--basis", o.basis, "the legal basis")->required()->check(CLI::IsMember(kBases));
  cmd->add_option("--legal-article", o.legal_article, "the article it rests on");
  cmd->add_option("--case-ref", o.case_ref, "an existing case (default: a new pseudonym)");
  cmd->add_option("--local-case", o.local_case, "this agency's own case number");
  cmd->add_option("--consenter", o.consenters, "who consented (repeatable or comma-separated)")
      ->delimiter(',')
      ->check(CLI::IsMember(kConsenters));
  cmd->add_flag("--assent", o.assent, "the young person assented too");
  cmd->add_option("--purpose", o.purposes, "purposes (repeatable or comma-separated)")
      ->required()
      ->delimiter(',')
      ->check(CLI::IsMember(kPurposes));
  cmd->add_option("--category", o.categories, "data categories that may be shared")
      ->delimiter(',')
      ->check(CLI::IsMember(kCategories));
  cmd->add_option("--recipient", o.recipients, "agencies allowed to receive (ids)")->delimiter(',');
  cmd->add_option("--recipient-type", o.recipient_types, "agency types allowed to receive")
      ->delimiter(',')
      ->check(CLI::IsMember(kAgencyTypes));
  cmd->add_flag("--onward", o.onward, "recipients may share onward within the grant");
  cmd->add_option("--days", o.days, "valid for this many days (agent default: 30)")
      ->check(CLI::Range(1, 3650));
  cmd->add_option("--retention-days", o.retention_days,
                  "keep the data this many days (default: --days)")
      ->check(CLI::Range(1, 3650));
  cmd->add_flag("--representative-conflict", o.representative_conflict,
                "the legal representative may be the suspect (flagged for auditors)");
  cmd->add_flag("--emergency", o.emergency,
                "emergency override (needs a second operator's countersignature; auditors "
                "are alerted)");
  cmd->add_option("--countersigner-key", o.countersigner_key,
                  "name of the second operator's key file in the daemon's "
                  "<data_dir>/operator-keys/ folder");
  cmd->add_option("--countersigner-operator", o.countersigner_operator,
                  "the second operator's reference");
}

int RecordConsent(Commands& c, const ConsentArgs& o) {
  auto op = c.Operator("consent");
  if (!op) return kExitUsage;
  if (o.emergency && (o.countersigner_key.empty() || o.countersigner_operator.empty())) {
    std::cerr << "refbus-agent consent: --emergency needs --countersigner-key and "
                 "--countersigner-operator (a second person)\n";
    return kExitUsage;
  }
  Json body = {{"basis", o.basis},
               {"consenters", o.consenters},
               {"subject_assent", o.assent},
               {"purposes", o.purposes},
               {"categories", o.categories},
               {"recipients", o.recipients},
               {"recipient_types", o.recipient_types},
               {"onward_sharing", o.onward},
               {"emergency_override", o.emergency},
               {"representative_conflict", o.representative_conflict},
               {"operator", *op}};
  if (!o.case_ref.empty()) body["case_ref"] = o.case_ref;
  if (!o.local_case.empty()) body["local_case"] = o.local_case;
  if (!o.legal_article.empty()) body["legal_article"] = o.legal_article;
  if (o.days > 0) body["valid_days"] = o.days;
  if (o.retention_days > 0) body["retention_days"] = o.retention_days;
  if (!o.countersigner_key.empty()) {
    body["countersigner_key"] = o.countersigner_key;
    body["countersigner_operator"] = o.countersigner_operator;
  }
  return c.Call("consent", "POST", "/v1/consents", &body, [](const Json& r) {
    std::cout << "consent grant " << Cell(r, "grant_id") << " recorded\n"
              << "  case:    " << Cell(r, "case_ref") << " (local " << Cell(r, "local_case")
              << ")\n"
              << "  expires: " << Cell(r, "expires_at_ms") << "\n";
    if (r.value("emergency_override", false)) {
      std::cout << "  emergency override: countersigned; the auditors are alerted\n";
    }
  });
}

void PrintConsents(const Json& r) {
  PrintTable(
      r,
      {Col("GRANT", "grant_id"),
       Col("CASE", "case_ref"),
       Col("BASIS", "basis"),
       Col("PURPOSES", "purposes"),
       Col("CATEGORIES", "categories"),
       {"RECIPIENTS",
        [](const Json& j) {
          std::string a = Cell(j, "recipients"), b = Cell(j, "recipient_types");
          if (a == "-") return b;
          return b == "-" ? a : a + ", " + b;
        }},
       Col("EXPIRES", "expires_at_ms"),
       {"STATE",
        [](const Json& j) {
          if (j.value("revoked", false)) return std::string("revoked");
          return std::string(j.value("registered", false) ? "registered" : "not yet registered");
        }}},
      "no consent grants");
}

}  // namespace

void AddConsent(CLI::App& app, Commands& c) {
  auto o = std::make_shared<ConsentArgs>();
  auto* cmd = app.add_subcommand("consent", "record a consent grant (or a legal basis)");
  c.Common(cmd, true);
  AddConsentOptions(cmd, *o);
  c.On(cmd, [&c, o] { return RecordConsent(c, *o); });
}

void AddConsents(CLI::App& app, Commands& c) {
  auto* cmd = app.add_subcommand("consents", "list consent grants");
  c.Common(cmd, false);
  c.On(cmd, [&c] { return c.Call("consents", "GET", "/v1/consents", nullptr, PrintConsents); });
}

void AddRevokeConsent(CLI::App& app, Commands& c) {
  static const std::vector<std::string> kReasons = NamesOf<schema::RevocationReason>();
  struct Args {
    std::string id, reason;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("revoke-consent",
                                 "withdraw a consent grant: every recipient is told and purges");
  c.Common(cmd, true);
  cmd->add_option("grant", a->id, "the consent grant id")->required();
  cmd->add_option("--reason", a->reason, "why the consent ends")
      ->required()
      ->check(CLI::IsMember(kReasons));
  c.On(cmd, [&c, a] {
    auto op = c.Operator("revoke-consent");
    if (!op) return kExitUsage;
    Json body = {{"reason", a->reason}, {"operator", *op}};
    return c.Call("revoke-consent", "POST", "/v1/consents/" + PathSegment(a->id) + "/revoke", &body,
                  [](const Json& r) {
                    std::cout << "consent " << Cell(r, "grant_id")
                              << " revoked; notified: " << Cell(r, "notified") << "\n"
                              << "each recipient purges the data and confirms (refbus-agent "
                                 "case shows the confirmations)\n";
                  });
  });
}

}  // namespace refbus::agent::cli
