#include "agent/engine_requests.h"

#include "agent/deletion_bulk.h"

#include <algorithm>
#include <set>

#include "agent/records_json.h"
#include "keys/consent.h"
#include "schema/codec.h"

namespace refbus::agent {
namespace {

using schema::DataCategory;
using schema::Purpose;
using schema::ReferralState;

// ---- JSON request helpers: every error names the field. ----

Result<std::string> Str(const Json& j, const char* field, bool required = true) {
  if (!j.is_object() || !j.contains(field) || j[field].is_null()) {
    if (required) return InvalidArgument(std::string("'") + field + "' is required");
    return std::string();
  }
  if (!j[field].is_string())
    return InvalidArgument(std::string("'") + field + "' must be a string");
  return j[field].get<std::string>();
}

Result<std::vector<std::string>> Strs(const Json& j, const char* field) {
  std::vector<std::string> out;
  if (!j.is_object() || !j.contains(field) || j[field].is_null()) return out;
  if (!j[field].is_array()) return InvalidArgument(std::string("'") + field + "' must be a list");
  for (const auto& v : j[field]) {
    if (!v.is_string()) return InvalidArgument(std::string("'") + field + "' must hold strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

bool Bool(const Json& j, const char* field) {
  return j.is_object() && j.contains(field) && j[field].is_boolean() && j[field].get<bool>();
}

Result<int64_t> Int(const Json& j, const char* field, int64_t def, int64_t lo, int64_t hi) {
  if (!j.is_object() || !j.contains(field) || j[field].is_null()) return def;
  if (!j[field].is_number_integer()) {
    return InvalidArgument(std::string("'") + field + "' must be a whole number");
  }
  int64_t v = j[field].get<int64_t>();
  if (v < lo || v > hi) {
    return InvalidArgument(std::string("'") + field + "' must be between " + std::to_string(lo) +
                           " and " + std::to_string(hi));
  }
  return v;
}

template <typename E, typename ParseFn>
Result<E> EnumOf(const std::string& field, const std::string& v, ParseFn parse) {
  auto e = parse(v);
  if (!e) return InvalidArgument("'" + field + "' has unknown value '" + v + "'");
  return *e;
}

template <typename E, typename ParseFn>
Result<std::vector<E>> EnumsOf(const Json& j, const char* field, ParseFn parse) {
  REFBUS_ASSIGN_OR_RETURN(auto names, Strs(j, field));
  std::vector<E> out;
  for (const auto& n : names) {
    REFBUS_ASSIGN_OR_RETURN(E e, EnumOf<E>(field, n, parse));
    out.push_back(e);
  }
  return out;
}

Result<std::string> OperatorOf(const Json& j) {
  REFBUS_ASSIGN_OR_RETURN(std::string op, Str(j, "operator"));
  if (op.empty() || op.size() > schema::kMaxOperatorRefBytes) {
    return InvalidArgument("'operator' must be a staff reference of 1 to 64 characters");
  }
  return op;
}

Result<std::vector<schema::CaseField>> FieldsOf(const Json& j) {
  std::vector<schema::CaseField> out;
  if (!j.is_object() || !j.contains("fields")) return out;
  if (!j["fields"].is_array()) return InvalidArgument("'fields' must be a list");
  for (const auto& f : j["fields"]) {
    REFBUS_ASSIGN_OR_RETURN(std::string cat, Str(f, "category"));
    REFBUS_ASSIGN_OR_RETURN(
        DataCategory c, EnumOf<DataCategory>("fields.category", cat, schema::ParseDataCategory));
    REFBUS_ASSIGN_OR_RETURN(std::string name, Str(f, "name"));
    REFBUS_ASSIGN_OR_RETURN(std::string value, Str(f, "value", false));
    if (name.empty() || name.size() > schema::kMaxFieldNameBytes) {
      return InvalidArgument("a field name must be 1 to 64 characters");
    }
    if (value.size() > schema::kMaxFieldValueBytes) {
      return InvalidArgument("field '" + name + "' is over 16 KiB");
    }
    out.push_back({c, name, value});
  }
  return out;
}

Json Names(const std::vector<std::string>& v) { return Json(v); }
template <typename E>
Json EnumNames(const std::vector<E>& v) {
  Json out = Json::array();
  for (E e : v) out.push_back(std::string(schema::Name(e)));
  return out;
}

Json FieldsJson(const std::vector<schema::CaseField>& fields) {
  Json out = Json::array();
  for (const auto& f : fields) {
    out.push_back({{"category", schema::Name(f.category)}, {"name", f.name}, {"value", f.value}});
  }
  return out;
}

}  // namespace

Result<Bytes> IdOf(const std::string& field, const std::string& hex) {
  auto b = HexDecode(hex);
  if (!b.ok() || b->size() != 16) {
    return InvalidArgument("'" + field + "' must be 32 hex digits (a refbus id)");
  }
  return *b;
}

// ---- requests ----

Result<ConsentRequest> ParseConsentRequest(const Json& req) {
  ConsentRequest r;
  schema::ConsentGrant& g = r.grant;
  REFBUS_ASSIGN_OR_RETURN(r.operator_ref, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(r.case_ref, Str(req, "case_ref", false));
  REFBUS_ASSIGN_OR_RETURN(r.local_case, Str(req, "local_case", false));
  // An empty case_ref is filled with a stored or new (valid) pseudonym.
  if (!r.case_ref.empty() && !schema::IsValidCaseRef(r.case_ref)) {
    return InvalidArgument("'case_ref' must be a pseudonym of 8-64 letters, digits or '-'");
  }
  REFBUS_ASSIGN_OR_RETURN(std::string basis, Str(req, "basis"));
  REFBUS_ASSIGN_OR_RETURN(g.basis,
                          EnumOf<schema::LegalBasis>("basis", basis, schema::ParseLegalBasis));
  REFBUS_ASSIGN_OR_RETURN(g.legal_article, Str(req, "legal_article", false));
  REFBUS_ASSIGN_OR_RETURN(g.consenters,
                          (EnumsOf<schema::Consenter>(req, "consenters", schema::ParseConsenter)));
  g.subject_assent = Bool(req, "subject_assent");
  REFBUS_ASSIGN_OR_RETURN(g.purposes, (EnumsOf<Purpose>(req, "purposes", schema::ParsePurpose)));
  REFBUS_ASSIGN_OR_RETURN(g.categories,
                          (EnumsOf<DataCategory>(req, "categories", schema::ParseDataCategory)));
  REFBUS_ASSIGN_OR_RETURN(g.allowed_recipients, Strs(req, "recipients"));
  REFBUS_ASSIGN_OR_RETURN(
      g.allowed_agency_types,
      (EnumsOf<schema::AgencyType>(req, "recipient_types", schema::ParseAgencyType)));
  g.onward_sharing = Bool(req, "onward_sharing");
  g.emergency_override = Bool(req, "emergency_override");
  g.representative_conflict = Bool(req, "representative_conflict");
  REFBUS_ASSIGN_OR_RETURN(r.valid_days, Int(req, "valid_days", 30, 1, 3650));
  REFBUS_ASSIGN_OR_RETURN(r.retention_days, Int(req, "retention_days", r.valid_days, 1, 3650));
  if (g.purposes.empty()) return InvalidArgument("'purposes' must name at least one purpose");
  if (g.allowed_recipients.empty() && g.allowed_agency_types.empty()) {
    return InvalidArgument("name who may receive data: 'recipients' or 'recipient_types'");
  }
  bool consent_basis = g.basis == schema::LegalBasis::kConsentSubject ||
                       g.basis == schema::LegalBasis::kConsentLegalRepresentative;
  if (consent_basis && g.consenters.empty()) {
    return InvalidArgument("a consent basis needs 'consenters' (subject, guardian, ...)");
  }
  // expires_in_ms: a shorter validity in milliseconds (short-lived emergency grants, tests).
  REFBUS_ASSIGN_OR_RETURN(r.expires_in_ms,
                          Int(req, "expires_in_ms", 0, 1000, int64_t{3650} * kMillisPerDay));
  // retention_in_ms: a shorter retention in milliseconds (tests), as expires_in_ms.
  REFBUS_ASSIGN_OR_RETURN(r.retention_in_ms,
                          Int(req, "retention_in_ms", 0, 1000, int64_t{3650} * kMillisPerDay));
  auto key = Str(req, "countersigner_key", false);
  auto cs_op = Str(req, "countersigner_operator", false);
  if (!key.ok()) {
    r.countersigner_error = key.status();
  } else if (!cs_op.ok()) {
    r.countersigner_error = cs_op.status();
  } else {
    r.countersigner_key = *key;
    r.countersigner_operator = *cs_op;
  }
  return r;
}

Result<ReferralRequest> ParseReferralRequest(const Json& req) {
  ReferralRequest r;
  REFBUS_ASSIGN_OR_RETURN(r.operator_ref, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(r.grant_id, Str(req, "grant_id"));
  REFBUS_ASSIGN_OR_RETURN(r.to, Str(req, "to"));
  REFBUS_ASSIGN_OR_RETURN(std::string purpose, Str(req, "purpose"));
  REFBUS_ASSIGN_OR_RETURN(r.purpose, EnumOf<Purpose>("purpose", purpose, schema::ParsePurpose));
  REFBUS_ASSIGN_OR_RETURN(r.fields, FieldsOf(req));
  return r;
}

Result<StateChangeRequest> ParseStateChangeRequest(const std::string& referral_id,
                                                   const Json& req) {
  StateChangeRequest r;
  REFBUS_ASSIGN_OR_RETURN(r.operator_ref, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(std::string to, Str(req, "state"));
  REFBUS_ASSIGN_OR_RETURN(r.to, EnumOf<ReferralState>("state", to, schema::ParseReferralState));
  REFBUS_ASSIGN_OR_RETURN(r.reason, Str(req, "reason", false));
  if (r.reason.size() > schema::kMaxReasonBytes) return InvalidArgument("'reason' is too long");
  REFBUS_ASSIGN_OR_RETURN(r.referral_id, IdOf("referral id", referral_id));
  return r;
}

Result<OpenRequest> ParseOpenRequest(const std::string& message_id, const Json& req) {
  OpenRequest r;
  REFBUS_ASSIGN_OR_RETURN(r.operator_ref, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(r.message_id, IdOf("message id", message_id));
  return r;
}

Result<HandoffRequest> ParseHandoffRequest(const Json& req) {
  HandoffRequest r;
  REFBUS_ASSIGN_OR_RETURN(r.operator_ref, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(r.grant_id, Str(req, "grant_id"));
  REFBUS_ASSIGN_OR_RETURN(r.to, Str(req, "to"));
  REFBUS_ASSIGN_OR_RETURN(r.reason, Str(req, "reason", false));
  REFBUS_ASSIGN_OR_RETURN(r.purpose, Str(req, "purpose", false));
  REFBUS_ASSIGN_OR_RETURN(r.fields, FieldsOf(req));
  return r;
}

Result<HandoffAckRequest> ParseHandoffAckRequest(const std::string& handoff_id, const Json& req) {
  HandoffAckRequest r;
  REFBUS_ASSIGN_OR_RETURN(r.operator_ref, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(r.handoff_id, IdOf("handoff id", handoff_id));
  r.accepted = !req.contains("accepted") || Bool(req, "accepted");
  REFBUS_ASSIGN_OR_RETURN(r.reason, Str(req, "reason", false));
  return r;
}

namespace {

Result<schema::DeletionItem> DeletionItemOf(const Json& i) {
  schema::DeletionItem item;
  REFBUS_ASSIGN_OR_RETURN(item.item_id, Str(i, "item_id"));
  REFBUS_ASSIGN_OR_RETURN(item.url, Str(i, "url"));
  REFBUS_ASSIGN_OR_RETURN(item.platform, Str(i, "platform", false));
  REFBUS_ASSIGN_OR_RETURN(item.note, Str(i, "note", false));
  REFBUS_ASSIGN_OR_RETURN(std::string sha, Str(i, "sha256", false));
  if (!sha.empty()) {
    auto b = HexDecode(sha);
    if (!b.ok() || b->size() != 32) return InvalidArgument("item sha256 must be 64 hex digits");
    item.content_sha256 = *b;
  }
  return item;
}

Result<DeletionStatusRequest::Update> UpdateOf(const Json& u) {
  DeletionStatusRequest::Update up;
  REFBUS_ASSIGN_OR_RETURN(up.item_id, Str(u, "item_id"));
  REFBUS_ASSIGN_OR_RETURN(up.status, Str(u, "status"));
  REFBUS_ASSIGN_OR_RETURN(up.parsed, EnumOf<schema::DeletionItemStatus>(
                                         "status", up.status, schema::ParseDeletionItemStatus));
  return up;
}

}  // namespace

Result<DeletionRequestRequest> ParseDeletionRequest(const Json& req) {
  DeletionRequestRequest r;
  REFBUS_ASSIGN_OR_RETURN(r.operator_ref, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(r.grant_id, Str(req, "grant_id"));
  REFBUS_ASSIGN_OR_RETURN(r.to, Str(req, "to"));
  REFBUS_ASSIGN_OR_RETURN(r.report_to, Strs(req, "report_to"));
  r.monitor = Bool(req, "monitor");
  if (req.contains("csv")) {
    if (req.contains("items")) return InvalidArgument("give 'items' or 'csv', not both");
    if (!req["csv"].is_string()) return InvalidArgument("'csv' must be the CSV text (a string)");
    REFBUS_ASSIGN_OR_RETURN(r.items, ParseDeletionCsv(req["csv"].get_ref<const std::string&>()));
    return r;
  }
  if (!req.contains("items") || !req["items"].is_array() || req["items"].empty()) {
    return InvalidArgument("'items' must list at least one item {item_id, url} (or give 'csv')");
  }
  if (req["items"].size() > schema::kMaxDeletionRequestItems) {
    return InvalidArgument("'items' lists " + std::to_string(req["items"].size()) +
                           " items; a request holds at most " +
                           std::to_string(schema::kMaxDeletionRequestItems) +
                           ": split it into several requests");
  }
  std::set<std::string> seen;
  r.items.reserve(req["items"].size());
  for (const auto& i : req["items"]) {
    REFBUS_ASSIGN_OR_RETURN(schema::DeletionItem item, DeletionItemOf(i));
    if (!seen.insert(item.item_id).second) {
      return InvalidArgument("item id '" + item.item_id + "' appears twice");
    }
    REFBUS_RETURN_IF_ERROR(CheckDeletionItem(item, "item " + std::to_string(r.items.size() + 1)));
    r.items.push_back(std::move(item));
  }
  return r;
}

Result<DeletionStatusRequest> ParseDeletionStatusRequest(const std::string& request_id,
                                                         const Json& req) {
  DeletionStatusRequest r;
  REFBUS_ASSIGN_OR_RETURN(r.operator_ref, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(r.request_id, IdOf("request id", request_id));
  if (req.contains("csv")) {
    if (req.contains("updates")) return InvalidArgument("give 'updates' or 'csv', not both");
    if (!req["csv"].is_string()) return InvalidArgument("'csv' must be the CSV text (a string)");
    REFBUS_ASSIGN_OR_RETURN(auto lines, ParseStatusCsv(req["csv"].get_ref<const std::string&>()));
    for (auto& l : lines) {
      r.updates.push_back(
          {std::move(l.item_id), std::string(schema::Name(l.status)), l.status, l.line});
    }
    return r;
  }
  if (!req.contains("updates") || !req["updates"].is_array() || req["updates"].empty()) {
    return InvalidArgument("'updates' must list at least one {item_id, status} (or give 'csv')");
  }
  for (const auto& u : req["updates"]) {
    auto up = UpdateOf(u);
    if (!up.ok()) {
      r.update_error = up.status();
      break;
    }
    r.updates.push_back(std::move(*up));
  }
  return r;
}

Result<RevokeRequest> ParseRevokeRequest(const Json& req) {
  RevokeRequest r;
  REFBUS_ASSIGN_OR_RETURN(r.operator_ref, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(std::string reason, Str(req, "reason"));
  REFBUS_ASSIGN_OR_RETURN(
      r.reason, EnumOf<schema::RevocationReason>("reason", reason, schema::ParseRevocationReason));
  return r;
}

Result<CloseCaseRequest> ParseCloseCaseRequest(const Json& req) {
  CloseCaseRequest r;
  REFBUS_ASSIGN_OR_RETURN(r.operator_ref, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(r.reason, Str(req, "reason", false));
  return r;
}

Result<std::string> ParseOperatorOnly(const Json& req) { return OperatorOf(req); }

Result<TallySendRequest> ParseTallySendRequest(const Json& req) {
  TallySendRequest r;
  REFBUS_ASSIGN_OR_RETURN(r.operator_ref, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(r.to, Str(req, "to"));
  if (!schema::IsValidPartyId(r.to)) return InvalidArgument("'to' must be an agency id");
  REFBUS_ASSIGN_OR_RETURN(r.grant_id, Str(req, "grant_id", false));
  return r;
}

Result<std::string> ParseLocalCaseRequest(const Json& req) {
  REFBUS_ASSIGN_OR_RETURN(std::string local, Str(req, "local_case"));
  if (local.empty() || local.size() > 64) {
    return InvalidArgument("'local_case' must be 1 to 64 characters");
  }
  return local;
}

// ---- answers ----

Json ToJson(const ConsentRecorded& r) {
  return Json{{"grant_id", r.grant_id},
              {"case_ref", r.case_ref},
              {"local_case", r.local_case},
              {"expires_at_ms", r.expires_at_ms},
              {"emergency_override", r.emergency_override}};
}

Json GrantJson(const std::string& key, const schema::ConsentGrant& g, const GrantRecord& rec) {
  return {{"grant_id", key},
          {"case_ref", g.case_ref},
          {"recorded_by", g.recorded_by},
          {"basis", schema::Name(g.basis)},
          {"purposes", EnumNames(g.purposes)},
          {"categories", EnumNames(g.categories)},
          {"recipients", Names(g.allowed_recipients)},
          {"recipient_types", EnumNames(g.allowed_agency_types)},
          {"onward_sharing", g.onward_sharing},
          {"emergency_override", keys::IsEmergencyOverride(g)},
          {"expires_at_ms", g.expires_at_ms},
          {"revoked", rec.revoked},
          {"registered", rec.registered.value_or(false)},
          {"shared_with", rec.shared_with}};
}

Json ToJson(const Sent& s) {
  return Json{{s.id_field, s.id}, {"message_id", s.message_id}, {"case_ref", s.case_ref}};
}

Json ReferralJson(const ReferralRecord& r, const std::string& local_case) {
  Json j = ToJson(r);
  j["local_case"] = local_case;
  return j;
}

Json ToJson(const HandoffAcked& a) {
  return Json{{"handoff_id", a.handoff_id}, {"lead", a.lead}, {"message_id", a.message_id}};
}

Json ToJson(const DeletionReported& r) {
  return Json{{"request_id", r.request_id},
              {"report_seq", r.report_seq},
              {"counts", ToJson(r.counts)},
              {"sent_to", r.sent_to},
              {"message_id", r.message_id},
              {"changed", r.changed},
              {"parts", r.parts}};
}

schema::DeletionCounts CountsOf(const std::map<std::string, std::string>& items) {
  schema::DeletionCounts c;
  for (const auto& [id, st] : items) {
    auto s = schema::ParseDeletionItemStatus(st);
    if (!s) continue;
    switch (*s) {
      case schema::DeletionItemStatus::kReceived:
        ++c.received;
        break;
      case schema::DeletionItemStatus::kNotified:
        ++c.notified;
        break;
      case schema::DeletionItemStatus::kRemoved:
        ++c.removed;
        break;
      case schema::DeletionItemStatus::kReappeared:
        ++c.reappeared;
        break;
      case schema::DeletionItemStatus::kWithdrawn:
        ++c.withdrawn;
        break;
      default:
        break;
    }
  }
  return c;
}

Json DeletionJson(const DeletionRecord& r) {
  Json j = ToJson(r);
  if (!r.counts) j["counts"] = ToJson(CountsOf(r.items));
  return j;
}

Json NotifiedJson(const char* id_field, const std::string& id,
                  const std::vector<std::string>& notified) {
  return Json{{id_field, id}, {"notified", notified}};
}

Json CaseJson(const CaseRecord& c, const std::vector<ReferralRecord>& referrals,
              const std::vector<HandoffRecord>& handoffs,
              const std::vector<DeletionRecord>& deletions, const TextReader& read) {
  Json j = ToJson(c, read);
  j["referrals"] = Json::array();
  for (const auto& r : referrals) j["referrals"].push_back(ToJson(r, read));
  j["handoffs"] = Json::array();
  for (const auto& h : handoffs) j["handoffs"].push_back(ToJson(h, read));
  j["deletions"] = Json::array();
  for (const auto& d : deletions) j["deletions"].push_back(ToJson(d));
  return j;
}

Json InboxJson(std::vector<MessageRecord> messages) {
  std::stable_sort(messages.begin(), messages.end(),
                   [](const MessageRecord& a, const MessageRecord& b) {
                     return a.received_at_ms < b.received_at_ms;
                   });
  Json out = Json::array();
  for (const auto& m : messages) out.push_back(ToJson(m));
  return out;
}

Json OpenedJson(const std::string& message_id, const schema::EnvelopeHeader& h,
                const schema::CaseMessage& m) {
  using schema::CaseMessage;
  Json content;
  switch (m.type) {
    case CaseMessage::Type::kReferral:
      content = {{"referral_id", HexEncode(m.referral.referral_id)},
                 {"purpose", schema::Name(m.referral.purpose)},
                 {"fields", FieldsJson(m.referral.fields)},
                 {"operator", m.referral.operator_ref}};
      break;
    case CaseMessage::Type::kHandoff:
      content = {{"handoff_id", HexEncode(m.handoff.handoff_id)},
                 {"reason", m.handoff.reason},
                 {"fields", FieldsJson(m.handoff.fields)},
                 {"operator", m.handoff.operator_ref}};
      break;
    case CaseMessage::Type::kDeletionRequest: {
      Json items = Json::array();
      for (const auto& i : m.deletion_request.items) {
        items.push_back({{"item_id", i.item_id},
                         {"url", i.url},
                         {"sha256", HexEncode(i.content_sha256)},
                         {"platform", i.platform}});
      }
      content = {{"request_id", HexEncode(m.deletion_request.request_id)},
                 {"items", items},
                 {"monitor", m.deletion_request.monitor},
                 {"report_to", m.deletion_request.report_to}};
      break;
    }
    default:
      content = {{"type", schema::Name(h.kind)}};
      break;
  }
  return Json{{"message_id", message_id},
              {"from", h.sender_id},
              {"kind", schema::Name(h.kind)},
              {"case_ref", h.case_ref},
              {"content", content}};
}

}  // namespace refbus::agent
