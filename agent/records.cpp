#include "agent/records.h"

#include <cstdio>
#include <stdexcept>

#include "agent/records_json.h"

namespace refbus::agent {
namespace {

using Json = nlohmann::json;

// A record that does not read: thrown inside the decoders, caught by Load / LoadAll.
struct Unreadable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename T>
void PutOpt(Json& j, const char* key, const std::optional<T>& v) {
  if (v) j[key] = *v;
}
template <typename T>
void GetOpt(const Json& j, const char* key, std::optional<T>& v) {
  if (j.contains(key)) v = j.at(key).get<T>();
}

Bytes Unhex(const Json& j, const char* key) {
  auto b = HexDecode(j.at(key).get<std::string>());
  if (!b.ok()) throw Unreadable(std::string("'") + key + "' is not hex");
  return std::move(*b);
}

// Enum <-> name by a fixed table, both ways.
template <typename E, size_t N>
E EnumFrom(const std::array<const char*, N>& names, const std::string& s, const char* what) {
  for (size_t i = 0; i < N; ++i) {
    if (s == names[i]) return static_cast<E>(i);
  }
  throw Unreadable(std::string("unknown ") + what + " '" + s + "'");
}

constexpr std::array<const char*, 2> kReferralSide = {"referrer", "receiver"};
constexpr std::array<const char*, 2> kHandoffSide = {"from", "to"};
constexpr std::array<const char*, 3> kHandoffState = {"pending", "accepted", "refused"};
constexpr std::array<const char*, 3> kDeletionSide = {"requester", "deletion-center", "observer"};
constexpr std::array<const char*, 4> kMessageStatus = {"ok", "refused", "purged",
                                                       "waiting-for-prekey"};
constexpr std::array<const char*, 3> kOutgoingStatus = {"queued", "acked", "refused"};

template <typename E, size_t N>
std::string_view NameIn(const std::array<const char*, N>& names, E e) {
  return names.at(static_cast<size_t>(e));
}

std::string StateName(schema::ReferralState s) {
  return s == schema::ReferralState::kUnspecified ? "" : std::string(schema::Name(s));
}
schema::ReferralState StateFrom(const std::string& s) {
  if (s.empty()) return schema::ReferralState::kUnspecified;
  auto st = schema::ParseReferralState(s);
  if (!st) throw Unreadable("unknown referral state '" + s + "'");
  return *st;
}

// ---- free text ----

Json Encode(const CaseText& t) {
  if (!t.sealed) return t.plain;
  const SealedText& x = *t.sealed;
  return {{"at", x.place},
          {"box", HexEncode(x.box)},
          {"grant", x.grant_id},
          {"nonce", HexEncode(x.nonce)}};
}

CaseText DecodeText(const Json& j) {
  CaseText t;
  if (j.is_string()) {
    t.plain = j.get<std::string>();
    return t;
  }
  if (!j.is_object()) throw Unreadable("a text field is neither text nor sealed");
  SealedText x;
  x.place = j.at("at").get<std::string>();
  x.box = Unhex(j, "box");
  x.grant_id = j.at("grant").get<std::string>();
  x.nonce = Unhex(j, "nonce");
  t.sealed = std::move(x);
  return t;
}

void GetText(const Json& j, const char* key, std::optional<CaseText>& v) {
  if (j.contains(key)) v = DecodeText(j.at(key));
}

// ---- encoders ----

Json Encode(const GrantRecord& r) {
  Json j = {{"signed", HexEncode(r.signed_grant)},
            {"case_ref", r.case_ref},
            {"recorded_here", r.recorded_here},
            {"revoked", r.revoked},
            {"shared_with", r.shared_with}};
  PutOpt(j, "operator", r.operator_ref);
  PutOpt(j, "received_from", r.received_from);
  PutOpt(j, "registered", r.registered);
  PutOpt(j, "revoked_at_ms", r.revoked_at_ms);
  PutOpt(j, "revocation_reason", r.revocation_reason);
  PutOpt(j, "purge_pending", r.purge_pending);
  PutOpt(j, "purged_messages", r.purged_messages);
  PutOpt(j, "purged_at_ms", r.purged_at_ms);
  return j;
}

Json Encode(const ReferralStep& s) {
  Json j = {{"from", StateName(s.from)}, {"to", StateName(s.to)}, {"by", s.by}, {"at_ms", s.at_ms}};
  PutOpt(j, "operator", s.operator_ref);
  if (s.reason) j["reason"] = Encode(*s.reason);
  PutOpt(j, "message_id", s.message_id);
  return j;
}

Json Encode(const ReferralRecord& r) {
  Json history = Json::array();
  for (const auto& s : r.history) history.push_back(Encode(s));
  return {{"referral_id", r.referral_id},
          {"case_ref", r.case_ref},
          {"side", NameIn(kReferralSide, r.side)},
          {"peer", r.peer},
          {"purpose", schema::Name(r.purpose)},
          {"grant_id", r.grant_id},
          {"message_id", r.message_id},
          {"state", schema::Name(r.state)},
          {"updated_at_ms", r.updated_at_ms},
          {"history", std::move(history)}};
}

Json Encode(const HandoffRecord& r) {
  Json j = {{"handoff_id", r.handoff_id},
            {"case_ref", r.case_ref},
            {"side", NameIn(kHandoffSide, r.side)},
            {"peer", r.peer},
            {"grant_id", r.grant_id},
            {"reason", Encode(r.reason)},
            {"message_id", r.message_id},
            {"state", NameIn(kHandoffState, r.state)}};
  PutOpt(j, "answer_message_id", r.answer_message_id);
  return j;
}

Json Encode(const schema::DeletionCounts& c) {
  return {{"received", c.received},
          {"notified", c.notified},
          {"removed", c.removed},
          {"reappeared", c.reappeared},
          {"withdrawn", c.withdrawn}};
}

Json Encode(const schema::DeletionManifest& m) {
  Json chunks = Json::array();
  for (const auto& h : m.chunk_sha256) chunks.push_back(HexEncode(h));
  return {{"item_count", m.item_count},
          {"items_sha256", HexEncode(m.items_sha256)},
          {"chunk_count", m.chunk_count},
          {"chunk_sha256", chunks}};
}

Json Encode(const DeletionRecord& r) {
  Json j = {{"request_id", r.request_id},
            {"case_ref", r.case_ref},
            {"side", NameIn(kDeletionSide, r.side)},
            {"peer", r.peer},
            {"grant_id", r.grant_id},
            {"items", r.items},
            {"report_seq", r.report_seq}};
  PutOpt(j, "report_to", r.report_to);
  PutOpt(j, "monitor", r.monitor);
  if (r.counts) j["counts"] = Encode(*r.counts);
  if (r.manifest) j["manifest"] = Encode(*r.manifest);
  PutOpt(j, "chunks_held", r.chunks_held);
  PutOpt(j, "list_complete", r.list_complete);
  PutOpt(j, "items_held", r.items_held);
  PutOpt(j, "last_chunk_at_ms", r.last_chunk_at_ms);
  PutOpt(j, "missing_asked_at_ms", r.missing_asked_at_ms);
  PutOpt(j, "chunks_resent", r.chunks_resent);
  PutOpt(j, "monitoring_stopped", r.monitoring_stopped);
  return j;
}

Json Encode(const DeletionChunkRecord& r) {
  return {{"index", r.index},
          {"item_count", r.item_count},
          {"message_id", r.message_id},
          {"items", Encode(r.items)}};
}

Json Encode(const DeletionHistoryRecord& r) {
  Json steps = Json::array();
  for (const auto& s : r.steps) {
    steps.push_back({{"status", s.status},
                     {"by", s.by},
                     {"report_seq", s.report_seq},
                     {"at_ms", s.at_ms},
                     {"received_ms", s.received_ms}});
  }
  return {{"steps", steps}};
}

Json Encode(const RefusalNote& n) {
  Json j = {{"by", n.by}, {"reason", n.reason}, {"at_ms", n.at_ms}};
  PutOpt(j, "what", n.what);
  PutOpt(j, "id", n.id);
  PutOpt(j, "message_id", n.message_id);
  PutOpt(j, "from", n.from);
  PutOpt(j, "kind", n.kind);
  PutOpt(j, "detail", n.detail);
  return j;
}

Json Encode(const TimelineEvent& e) {
  Json j = {{"event", e.event}, {"at_ms", e.at_ms}};
  PutOpt(j, "from", e.from);
  PutOpt(j, "to", e.to);
  PutOpt(j, "to", e.to_agencies);
  PutOpt(j, "by", e.by);
  PutOpt(j, "referral_id", e.referral_id);
  PutOpt(j, "handoff_id", e.handoff_id);
  PutOpt(j, "request_id", e.request_id);
  PutOpt(j, "grant_id", e.grant_id);
  PutOpt(j, "message_id", e.message_id);
  PutOpt(j, "purpose", e.purpose);
  PutOpt(j, "state", e.state);
  PutOpt(j, "reason", e.reason);
  PutOpt(j, "basis", e.basis);
  PutOpt(j, "operator", e.operator_ref);
  PutOpt(j, "items", e.items);
  PutOpt(j, "report_seq", e.report_seq);
  if (e.counts) j["counts"] = Encode(*e.counts);
  PutOpt(j, "messages_purged", e.messages_purged);
  PutOpt(j, "emergency_override", e.emergency_override);
  PutOpt(j, "notified", e.notified);
  PutOpt(j, "linkage_id", e.linkage_id);
  PutOpt(j, "linked", e.linked);
  PutOpt(j, "identifier_kind", e.identifier_kind);
  return j;
}

Json Encode(const CaseRecord& c) {
  Json notices = Json::array();
  for (const auto& n : c.access_notices) {
    Json note = {{"message_id", n.message_id},
                 {"agency", n.agency},
                 {"operator", n.operator_ref},
                 {"opened_at_ms", n.opened_at_ms},
                 {"kind", n.kind}};
    // Only where the notice carried an operator signature: older records keep their bytes.
    if (n.operator_signature != "none" || !n.operator_key.empty()) {
      note["operator_signature"] = n.operator_signature;
      note["operator_key"] = n.operator_key;
    }
    notices.push_back(std::move(note));
  }
  Json purges = Json::array();
  for (const auto& p : c.purge_confirmations) {
    purges.push_back({{"grant_id", p.grant_id},
                      {"agency", p.agency},
                      {"messages_purged", p.messages_purged},
                      {"purged_at_ms", p.purged_at_ms}});
  }
  Json refusals = Json::array();
  for (const auto& r : c.refusals) refusals.push_back(Encode(r));
  Json timeline = Json::array();
  for (const auto& e : c.timeline) timeline.push_back(Encode(e));
  Json j = {{"case_ref", c.case_ref},
            {"local_case", c.local_case},
            {"lead", c.lead},
            {"closed", c.closed},
            {"grants", c.grants},
            {"access_notices", std::move(notices)},
            {"purge_confirmations", std::move(purges)},
            {"refusals", std::move(refusals)},
            {"timeline", std::move(timeline)}};
  if (c.closed_reason) j["closed_reason"] = Encode(*c.closed_reason);
  PutOpt(j, "closed_by", c.closed_by);
  PutOpt(j, "closed_message_id", c.closed_message_id);
  return j;
}

Json Encode(const LocalCaseRecord& r) { return {{"case_ref", r.case_ref}}; }

Json Encode(const MessageRecord& m) {
  Json j = {{"message_id", m.message_id},
            {"received_at_ms", m.received_at_ms},
            {"opened", m.opened},
            {"status", NameIn(kMessageStatus, m.status)}};
  PutOpt(j, "from", m.from);
  PutOpt(j, "kind", m.kind);
  PutOpt(j, "case_ref", m.case_ref);
  PutOpt(j, "grant_id", m.grant_id);
  PutOpt(j, "refusal", m.refusal);
  PutOpt(j, "waiting_for", m.waiting_for);
  PutOpt(j, "referral_id", m.referral_id);
  PutOpt(j, "handoff_id", m.handoff_id);
  PutOpt(j, "request_id", m.request_id);
  PutOpt(j, "stale", m.stale);
  PutOpt(j, "alert", m.alert);
  PutOpt(j, "alert_items", m.alert_items);
  PutOpt(j, "watch_list", m.watch_list);
  PutOpt(j, "crisis_support", m.crisis_support);
  PutOpt(j, "opened_by", m.opened_by);
  PutOpt(j, "opened_at_ms", m.opened_at_ms);
  PutOpt(j, "operator", m.operator_ref);
  PutOpt(j, "operator_signature", m.operator_signature);
  PutOpt(j, "operator_key", m.operator_key);
  return j;
}

Json Encode(const OutgoingRecord& o) {
  Json j = {{"seq", o.seq},
            {"kind", o.kind},
            {"what", o.what},
            {"case_ref", o.case_ref},
            {"status", NameIn(kOutgoingStatus, o.status)}};
  PutOpt(j, "to", o.to);
  if (o.envelope) j["envelope"] = HexEncode(*o.envelope);
  if (o.frame) j["frame"] = HexEncode(*o.frame);
  PutOpt(j, "reason", o.reason);
  PutOpt(j, "detail", o.detail);
  return j;
}

Json Encode(const SeqRecord& s) { return {{"seq", s.seq}}; }

// ---- decoders (throw on what does not read) ----

void Decode(const Json& j, GrantRecord& r) {
  r.signed_grant = Unhex(j, "signed");
  r.case_ref = j.value("case_ref", "");
  r.recorded_here = j.value("recorded_here", false);
  r.revoked = j.value("revoked", false);
  r.shared_with = j.value("shared_with", std::vector<std::string>());
  GetOpt(j, "operator", r.operator_ref);
  GetOpt(j, "received_from", r.received_from);
  GetOpt(j, "registered", r.registered);
  GetOpt(j, "revoked_at_ms", r.revoked_at_ms);
  GetOpt(j, "revocation_reason", r.revocation_reason);
  GetOpt(j, "purge_pending", r.purge_pending);
  GetOpt(j, "purged_messages", r.purged_messages);
  GetOpt(j, "purged_at_ms", r.purged_at_ms);
}

void Decode(const Json& j, ReferralStep& s) {
  s.from = StateFrom(j.at("from").get<std::string>());
  s.to = StateFrom(j.at("to").get<std::string>());
  s.by = j.at("by").get<std::string>();
  s.at_ms = j.at("at_ms").get<UnixMillis>();
  GetOpt(j, "operator", s.operator_ref);
  GetText(j, "reason", s.reason);
  GetOpt(j, "message_id", s.message_id);
}

void Decode(const Json& j, ReferralRecord& r) {
  r.referral_id = j.at("referral_id").get<std::string>();
  r.case_ref = j.at("case_ref").get<std::string>();
  r.side = EnumFrom<ReferralSide>(kReferralSide, j.at("side").get<std::string>(), "side");
  r.peer = j.at("peer").get<std::string>();
  r.purpose = schema::ParsePurpose(j.at("purpose").get<std::string>())
                  .value_or(schema::Purpose::kUnspecified);
  r.grant_id = j.at("grant_id").get<std::string>();
  r.message_id = j.at("message_id").get<std::string>();
  r.state = StateFrom(j.at("state").get<std::string>());
  r.updated_at_ms = j.at("updated_at_ms").get<UnixMillis>();
  for (const auto& s : j.at("history")) Decode(s, r.history.emplace_back());
}

void Decode(const Json& j, HandoffRecord& r) {
  r.handoff_id = j.at("handoff_id").get<std::string>();
  r.case_ref = j.at("case_ref").get<std::string>();
  r.side = EnumFrom<HandoffSide>(kHandoffSide, j.at("side").get<std::string>(), "side");
  r.peer = j.at("peer").get<std::string>();
  r.grant_id = j.at("grant_id").get<std::string>();
  r.reason = DecodeText(j.at("reason"));
  r.message_id = j.at("message_id").get<std::string>();
  r.state = EnumFrom<HandoffState>(kHandoffState, j.at("state").get<std::string>(), "state");
  GetOpt(j, "answer_message_id", r.answer_message_id);
}

void Decode(const Json& j, schema::DeletionCounts& c) {
  c.received = j.at("received").get<uint32_t>();
  c.notified = j.at("notified").get<uint32_t>();
  c.removed = j.at("removed").get<uint32_t>();
  c.reappeared = j.at("reappeared").get<uint32_t>();
  c.withdrawn = j.at("withdrawn").get<uint32_t>();
}

void Decode(const Json& j, DeletionRecord& r) {
  r.request_id = j.at("request_id").get<std::string>();
  r.case_ref = j.at("case_ref").get<std::string>();
  r.side = EnumFrom<DeletionSide>(kDeletionSide, j.at("side").get<std::string>(), "side");
  r.peer = j.at("peer").get<std::string>();
  r.grant_id = j.at("grant_id").get<std::string>();
  r.items = j.at("items").get<std::map<std::string, std::string>>();
  r.report_seq = j.at("report_seq").get<uint64_t>();
  GetOpt(j, "report_to", r.report_to);
  GetOpt(j, "monitor", r.monitor);
  if (j.contains("counts")) Decode(j.at("counts"), r.counts.emplace());
  if (j.contains("manifest")) {
    const Json& m = j.at("manifest");
    auto& out = r.manifest.emplace();
    out.item_count = m.at("item_count").get<uint32_t>();
    out.items_sha256 = Unhex(m, "items_sha256");
    out.chunk_count = m.at("chunk_count").get<uint32_t>();
    for (const auto& h : m.at("chunk_sha256")) {
      auto b = HexDecode(h.get<std::string>());
      if (!b.ok()) throw Unreadable("'chunk_sha256' is not hex");
      out.chunk_sha256.push_back(std::move(*b));
    }
  }
  GetOpt(j, "chunks_held", r.chunks_held);
  GetOpt(j, "list_complete", r.list_complete);
  GetOpt(j, "items_held", r.items_held);
  GetOpt(j, "last_chunk_at_ms", r.last_chunk_at_ms);
  GetOpt(j, "missing_asked_at_ms", r.missing_asked_at_ms);
  GetOpt(j, "chunks_resent", r.chunks_resent);
  GetOpt(j, "monitoring_stopped", r.monitoring_stopped);
}

void Decode(const Json& j, DeletionChunkRecord& r) {
  r.index = j.at("index").get<uint32_t>();
  r.item_count = j.at("item_count").get<uint32_t>();
  r.message_id = j.at("message_id").get<std::string>();
  r.items = DecodeText(j.at("items"));
}

void Decode(const Json& j, DeletionHistoryRecord& r) {
  for (const auto& s : j.at("steps")) {
    r.steps.push_back({s.at("status").get<std::string>(), s.at("by").get<std::string>(),
                       s.at("report_seq").get<uint64_t>(), s.at("at_ms").get<UnixMillis>(),
                       s.at("received_ms").get<UnixMillis>()});
  }
}

void Decode(const Json& j, RefusalNote& n) {
  n.by = j.at("by").get<std::string>();
  n.reason = j.at("reason").get<std::string>();
  n.at_ms = j.at("at_ms").get<UnixMillis>();
  GetOpt(j, "what", n.what);
  GetOpt(j, "id", n.id);
  GetOpt(j, "message_id", n.message_id);
  GetOpt(j, "from", n.from);
  GetOpt(j, "kind", n.kind);
  GetOpt(j, "detail", n.detail);
}

void Decode(const Json& j, TimelineEvent& e) {
  e.event = j.at("event").get<std::string>();
  e.at_ms = j.at("at_ms").get<UnixMillis>();
  GetOpt(j, "from", e.from);
  if (j.contains("to")) {
    if (j.at("to").is_array()) {
      e.to_agencies = j.at("to").get<std::vector<std::string>>();
    } else {
      e.to = j.at("to").get<std::string>();
    }
  }
  GetOpt(j, "by", e.by);
  GetOpt(j, "referral_id", e.referral_id);
  GetOpt(j, "handoff_id", e.handoff_id);
  GetOpt(j, "request_id", e.request_id);
  GetOpt(j, "grant_id", e.grant_id);
  GetOpt(j, "message_id", e.message_id);
  GetOpt(j, "purpose", e.purpose);
  GetOpt(j, "state", e.state);
  GetOpt(j, "reason", e.reason);
  GetOpt(j, "basis", e.basis);
  GetOpt(j, "operator", e.operator_ref);
  GetOpt(j, "items", e.items);
  GetOpt(j, "report_seq", e.report_seq);
  if (j.contains("counts")) Decode(j.at("counts"), e.counts.emplace());
  GetOpt(j, "messages_purged", e.messages_purged);
  GetOpt(j, "emergency_override", e.emergency_override);
  GetOpt(j, "notified", e.notified);
  GetOpt(j, "linkage_id", e.linkage_id);
  GetOpt(j, "linked", e.linked);
  GetOpt(j, "identifier_kind", e.identifier_kind);
}

void Decode(const Json& j, CaseRecord& c) {
  c.case_ref = j.at("case_ref").get<std::string>();
  c.local_case = j.value("local_case", "");
  c.lead = j.value("lead", "");
  c.closed = j.value("closed", false);
  GetText(j, "closed_reason", c.closed_reason);
  GetOpt(j, "closed_by", c.closed_by);
  GetOpt(j, "closed_message_id", c.closed_message_id);
  c.grants = j.value("grants", std::vector<std::string>());
  for (const auto& n : j.value("access_notices", Json::array())) {
    c.access_notices.push_back(
        {n.at("message_id").get<std::string>(), n.at("agency").get<std::string>(),
         n.at("operator").get<std::string>(), n.at("opened_at_ms").get<UnixMillis>(),
         n.at("kind").get<std::string>(), n.value("operator_signature", "none"),
         n.value("operator_key", "")});
  }
  for (const auto& p : j.value("purge_confirmations", Json::array())) {
    c.purge_confirmations.push_back(
        {p.at("grant_id").get<std::string>(), p.at("agency").get<std::string>(),
         p.at("messages_purged").get<uint64_t>(), p.at("purged_at_ms").get<UnixMillis>()});
  }
  for (const auto& r : j.value("refusals", Json::array())) Decode(r, c.refusals.emplace_back());
  for (const auto& e : j.value("timeline", Json::array())) Decode(e, c.timeline.emplace_back());
}

void Decode(const Json& j, LocalCaseRecord& r) { r.case_ref = j.at("case_ref").get<std::string>(); }

void Decode(const Json& j, MessageRecord& m) {
  m.message_id = j.at("message_id").get<std::string>();
  m.received_at_ms = j.value("received_at_ms", UnixMillis{0});
  m.opened = j.value("opened", false);
  m.status = EnumFrom<MessageStatus>(kMessageStatus, j.at("status").get<std::string>(), "status");
  GetOpt(j, "from", m.from);
  GetOpt(j, "kind", m.kind);
  GetOpt(j, "case_ref", m.case_ref);
  GetOpt(j, "grant_id", m.grant_id);
  GetOpt(j, "refusal", m.refusal);
  GetOpt(j, "waiting_for", m.waiting_for);
  GetOpt(j, "referral_id", m.referral_id);
  GetOpt(j, "handoff_id", m.handoff_id);
  GetOpt(j, "request_id", m.request_id);
  GetOpt(j, "stale", m.stale);
  GetOpt(j, "alert", m.alert);
  GetOpt(j, "alert_items", m.alert_items);
  GetOpt(j, "watch_list", m.watch_list);
  GetOpt(j, "crisis_support", m.crisis_support);
  GetOpt(j, "opened_by", m.opened_by);
  GetOpt(j, "opened_at_ms", m.opened_at_ms);
  GetOpt(j, "operator", m.operator_ref);
  GetOpt(j, "operator_signature", m.operator_signature);
  GetOpt(j, "operator_key", m.operator_key);
}

void Decode(const Json& j, OutgoingRecord& o) {
  o.seq = j.value("seq", uint64_t{0});
  o.kind = j.value("kind", "");
  o.what = j.value("what", "");
  o.case_ref = j.value("case_ref", "");
  o.status = EnumFrom<OutgoingStatus>(kOutgoingStatus, j.value("status", ""), "status");
  GetOpt(j, "to", o.to);
  if (j.contains("envelope")) o.envelope = Unhex(j, "envelope");
  if (j.contains("frame")) o.frame = Unhex(j, "frame");
  GetOpt(j, "reason", o.reason);
  GetOpt(j, "detail", o.detail);
}

void Decode(const Json& j, SeqRecord& s) { s.seq = j.at("seq").get<uint64_t>(); }

Table TableOf(const GrantRecord*) { return Table::kGrants; }
Table TableOf(const ReferralRecord*) { return Table::kReferrals; }
Table TableOf(const HandoffRecord*) { return Table::kHandoffs; }
Table TableOf(const DeletionRecord*) { return Table::kDeletions; }
Table TableOf(const CaseRecord*) { return Table::kCases; }
Table TableOf(const LocalCaseRecord*) { return Table::kLocal; }
Table TableOf(const MessageRecord*) { return Table::kMessages; }
Table TableOf(const OutgoingRecord*) { return Table::kOutgoing; }
Table TableOf(const SeqRecord*) { return Table::kMeta; }
Table TableOf(const DeletionChunkRecord*) { return Table::kDeletionChunks; }
Table TableOf(const DeletionHistoryRecord*) { return Table::kDeletionHistory; }

template <typename R>
Result<R> FromJson(const Json& j, const std::string& key) {
  R r;
  try {
    Decode(j, r);
  } catch (const std::exception& e) {  // nlohmann's type and key errors, and Unreadable
    return Malformed("case store record '" + key + "' does not read (" + e.what() + ")");
  }
  return r;
}

}  // namespace

CaseRecord NewCase(const std::string& case_ref) {
  CaseRecord c;
  c.case_ref = case_ref;
  return c;
}

std::string_view Name(ReferralSide side) { return NameIn(kReferralSide, side); }
std::string_view Name(HandoffState state) { return NameIn(kHandoffState, state); }
std::string_view Name(DeletionSide side) { return NameIn(kDeletionSide, side); }
std::string_view Name(MessageStatus status) { return NameIn(kMessageStatus, status); }

template <typename R>
Result<std::optional<R>> Load(const CaseStore::Txn& txn, const std::string& key) {
  REFBUS_ASSIGN_OR_RETURN(auto j, txn.Get(TableOf(static_cast<const R*>(nullptr)), key));
  if (!j) return std::optional<R>();
  REFBUS_ASSIGN_OR_RETURN(R r, FromJson<R>(*j, key));
  return std::optional<R>(std::move(r));
}

template <typename R>
Status Save(CaseStore::Txn& txn, const std::string& key, const R& record) {
  return txn.Put(TableOf(static_cast<const R*>(nullptr)), key, Encode(record));
}

template <typename R>
Result<std::vector<std::pair<std::string, R>>> LoadAll(const CaseStore::Txn& txn) {
  REFBUS_ASSIGN_OR_RETURN(auto all, txn.List(TableOf(static_cast<const R*>(nullptr))));
  std::vector<std::pair<std::string, R>> out;
  out.reserve(all.size());
  for (const auto& [key, j] : all) {
    REFBUS_ASSIGN_OR_RETURN(R r, FromJson<R>(j, key));
    out.emplace_back(key, std::move(r));
  }
  return out;
}

template <typename R>
Result<std::vector<std::pair<std::string, R>>> LoadPrefix(const CaseStore::Txn& txn,
                                                          const std::string& prefix) {
  REFBUS_ASSIGN_OR_RETURN(auto all,
                          txn.ListPrefix(TableOf(static_cast<const R*>(nullptr)), prefix));
  std::vector<std::pair<std::string, R>> out;
  out.reserve(all.size());
  for (const auto& [key, j] : all) {
    REFBUS_ASSIGN_OR_RETURN(R r, FromJson<R>(j, key));
    out.emplace_back(key, std::move(r));
  }
  return out;
}

#define REFBUS_RECORD(R)                                                                       \
  template Result<std::optional<R>> Load<R>(const CaseStore::Txn&, const std::string&);        \
  template Status Save<R>(CaseStore::Txn&, const std::string&, const R&);                      \
  template Result<std::vector<std::pair<std::string, R>>> LoadAll<R>(const CaseStore::Txn&);   \
  template Result<std::vector<std::pair<std::string, R>>> LoadPrefix<R>(const CaseStore::Txn&, \
                                                                        const std::string&);
REFBUS_RECORD(GrantRecord)
REFBUS_RECORD(ReferralRecord)
REFBUS_RECORD(HandoffRecord)
REFBUS_RECORD(DeletionRecord)
REFBUS_RECORD(CaseRecord)
REFBUS_RECORD(LocalCaseRecord)
REFBUS_RECORD(MessageRecord)
REFBUS_RECORD(OutgoingRecord)
REFBUS_RECORD(SeqRecord)
REFBUS_RECORD(DeletionChunkRecord)
REFBUS_RECORD(DeletionHistoryRecord)
#undef REFBUS_RECORD

std::string HistoryReasonPlace(const std::string& referral_id, size_t step) {
  return TextPlace("referrals", referral_id, "history/" + std::to_string(step) + "/reason");
}
std::string HandoffReasonPlace(const std::string& handoff_id) {
  return TextPlace("handoffs", handoff_id, "reason");
}
std::string DeletionChunkKey(const std::string& request_id, uint32_t index) {
  char n[16];
  std::snprintf(n, sizeof(n), "%06u", index);
  return request_id + "/" + n;
}

std::string ClosedReasonPlace(const std::string& case_ref) {
  return TextPlace("cases", case_ref, "closed_reason");
}

nlohmann::json SealedMark(const CaseText& text, const std::string& /*place*/) {
  if (!text.sealed) return text.plain;
  return "[sealed: read with POST /v1/cases/{case_ref}/read]";
}

nlohmann::json ToJson(const ReferralRecord& r, const TextReader& read) {
  Json j = Encode(r);
  for (size_t i = 0; i < r.history.size(); ++i) {
    if (r.history[i].reason) {
      j["history"][i]["reason"] = read(*r.history[i].reason, HistoryReasonPlace(r.referral_id, i));
    }
  }
  return j;
}
nlohmann::json ToJson(const DeletionRecord& r) { return Encode(r); }
nlohmann::json ToJson(const MessageRecord& r) { return Encode(r); }
nlohmann::json ToJson(const CaseRecord& r, const TextReader& read) {
  Json j = Encode(r);
  if (r.closed_reason) j["closed_reason"] = read(*r.closed_reason, ClosedReasonPlace(r.case_ref));
  return j;
}
nlohmann::json ToJson(const HandoffRecord& r, const TextReader& read) {
  Json j = Encode(r);
  j["reason"] = read(r.reason, HandoffReasonPlace(r.handoff_id));
  return j;
}
nlohmann::json ToJson(const schema::DeletionCounts& c) { return Encode(c); }

}  // namespace refbus::agent
