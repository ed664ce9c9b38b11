#include "agent/engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>

#include "agent/case_message.h"
#include "agent/case_store.h"
#include "agent/store.h"
#include "agent/workflow.h"
#include "core/file.h"
#include "core/hash.h"
#include "keys/consent.h"
#include "keys/directory.h"
#include "keys/keyfile.h"
#include "keys/scope.h"
#include "keys/secret.h"
#include "schema/codec.h"

namespace refbus::agent {
namespace {

using schema::CaseMessage;
using schema::DataCategory;
using schema::MessageKind;
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

Result<Bytes> IdOf(const std::string& field, const std::string& hex) {
  auto b = HexDecode(hex);
  if (!b.ok() || b->size() != 16) {
    return InvalidArgument("'" + field + "' must be 32 hex digits (a refbus id)");
  }
  return *b;
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

std::string NewCaseRef() { return "case-" + HexEncode(keys::RandomBytes(6)); }

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

schema::DeletionCounts CountsOf(const Json& items) {
  schema::DeletionCounts c;
  for (const auto& [id, st] : items.items()) {
    auto s = schema::ParseDeletionItemStatus(st.get<std::string>());
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

Json CountsJson(const schema::DeletionCounts& c) {
  return {{"received", c.received},
          {"notified", c.notified},
          {"removed", c.removed},
          {"reappeared", c.reappeared},
          {"withdrawn", c.withdrawn}};
}

Bytes StatementId(ByteView signed_statement) {
  Bytes h = Sha256(signed_statement);
  h.resize(16);
  return h;
}

}  // namespace

struct Engine::Impl {
  keys::Identity identity;
  schema::SignedDirectory directory;
  EngineOptions options;
  std::unique_ptr<AgentStore> transport;
  std::unique_ptr<CaseStore> cases;
  std::unique_ptr<Client> client;

  Impl(keys::Identity id, schema::SignedDirectory dir, EngineOptions o)
      : identity(std::move(id)), directory(std::move(dir)), options(std::move(o)) {}

  const std::string& me() const { return identity.party_id(); }
  const schema::Directory& dir() const { return directory.directory; }
  static UnixMillis Now() { return SystemClock::Get().NowMillis(); }

  // ---- grants ----

  static Result<KnownGrant> GrantFromRecord(const Json& rec) {
    REFBUS_ASSIGN_OR_RETURN(Bytes b, HexDecode(rec.at("signed").get<std::string>()));
    KnownGrant k;
    REFBUS_ASSIGN_OR_RETURN(k.grant, schema::DecodeSignedConsentGrant(b));
    k.revoked = rec.value("revoked", false);
    return k;
  }

  Result<std::optional<KnownGrant>> LoadGrant(const CaseStore::Txn& txn, ByteView grant_id) {
    REFBUS_ASSIGN_OR_RETURN(auto rec, txn.Get(Table::kGrants, HexEncode(grant_id)));
    if (!rec) return std::optional<KnownGrant>();
    REFBUS_ASSIGN_OR_RETURN(KnownGrant k, GrantFromRecord(*rec));
    return std::optional<KnownGrant>(std::move(k));
  }

  Result<std::pair<KnownGrant, Json>> RequireGrant(const CaseStore::Txn& txn,
                                                   const std::string& grant_hex) {
    REFBUS_ASSIGN_OR_RETURN(Bytes id, IdOf("grant_id", grant_hex));
    REFBUS_ASSIGN_OR_RETURN(auto rec, txn.Get(Table::kGrants, HexEncode(id)));
    if (!rec) {
      return NotFound("consent grant " + grant_hex +
                      " is not known here; record it (refbus-agent consent) or use the grant a "
                      "referral came with");
    }
    REFBUS_ASSIGN_OR_RETURN(KnownGrant k, GrantFromRecord(*rec));
    return std::make_pair(std::move(k), std::move(*rec));
  }

  // Stores a grant received inside a message (verified by OpenCase) if new.
  Status RememberGrant(CaseStore::Txn& txn, const schema::SignedConsentGrant& g,
                       const std::string& from) {
    std::string key = HexEncode(g.grant.grant_id);
    REFBUS_ASSIGN_OR_RETURN(auto rec, txn.Get(Table::kGrants, key));
    if (rec) return Status::Ok();
    Json r = {{"signed", HexEncode(schema::EncodeSignedConsentGrant(g))},
              {"case_ref", g.grant.case_ref},
              {"recorded_here", false},
              {"received_from", from},
              {"revoked", false},
              {"shared_with", Json::array()}};
    REFBUS_RETURN_IF_ERROR(txn.Put(Table::kGrants, key, r));
    return AddGrantToCase(txn, g.grant.case_ref, key);
  }

  // Remembers that data under the grant went to `to`: a revocation is sent (or forwarded)
  // to every agency listed here.
  Status RecordShare(CaseStore::Txn& txn, Json grant_record, ByteView grant_id,
                     const std::string& to) {
    auto& sw = grant_record["shared_with"];
    if (std::find(sw.begin(), sw.end(), to) == sw.end()) sw.push_back(to);
    return txn.Put(Table::kGrants, HexEncode(grant_id), grant_record);
  }

  // ---- cases ----

  Result<Json> LoadCase(const CaseStore::Txn& txn, const std::string& case_ref) {
    REFBUS_ASSIGN_OR_RETURN(auto rec, txn.Get(Table::kCases, case_ref));
    if (rec) return std::move(*rec);
    return Json{{"case_ref", case_ref},
                {"local_case", ""},
                {"lead", ""},
                {"closed", false},
                {"grants", Json::array()},
                {"access_notices", Json::array()},
                {"purge_confirmations", Json::array()},
                {"refusals", Json::array()},
                {"timeline", Json::array()}};
  }

  Status AddGrantToCase(CaseStore::Txn& txn, const std::string& case_ref,
                        const std::string& grant_hex) {
    REFBUS_ASSIGN_OR_RETURN(Json c, LoadCase(txn, case_ref));
    auto& g = c["grants"];
    if (std::find(g.begin(), g.end(), grant_hex) == g.end()) g.push_back(grant_hex);
    return txn.Put(Table::kCases, case_ref, c);
  }

  Status Timeline(CaseStore::Txn& txn, const std::string& case_ref, Json event) {
    REFBUS_ASSIGN_OR_RETURN(Json c, LoadCase(txn, case_ref));
    event["at_ms"] = Now();
    c["timeline"].push_back(std::move(event));
    return txn.Put(Table::kCases, case_ref, c);
  }

  Result<std::string> ResolveCase(const CaseStore::Txn& txn, const std::string& ref) {
    REFBUS_ASSIGN_OR_RETURN(auto c, txn.Get(Table::kCases, ref));
    if (c) return ref;
    REFBUS_ASSIGN_OR_RETURN(auto l, txn.Get(Table::kLocal, ref));
    if (l) return l->at("case_ref").get<std::string>();
    return NotFound("no case '" + ref + "' (neither a case pseudonym nor a local case number)");
  }

  // ---- sending ----

  // Seals, records as outgoing (with the envelope, so a restart resubmits it), submits.
  Result<Bytes> SendCase(CaseStore::Txn& txn, const KnownGrant& grant, CaseMessage message,
                         std::vector<std::string> to, Purpose purpose, const std::string& what) {
    SealCaseRequest req;
    req.message = std::move(message);
    req.recipients = std::move(to);
    req.purpose = purpose;
    req.now = Now();
    req.lifetime_ms = options.message_lifetime_ms;
    REFBUS_ASSIGN_OR_RETURN(Bytes env, SealCase(identity, dir(), grant, req));
    REFBUS_ASSIGN_OR_RETURN(schema::SealedEnvelope decoded, schema::DecodeEnvelope(env));
    std::string mid = HexEncode(decoded.header.message_id);
    REFBUS_ASSIGN_OR_RETURN(uint64_t seq, NextOutgoingSeq(txn));
    REFBUS_RETURN_IF_ERROR(txn.Put(Table::kOutgoing, mid,
                                   {{"seq", seq},
                                    {"kind", schema::Name(decoded.header.kind)},
                                    {"what", what},
                                    {"case_ref", decoded.header.case_ref},
                                    {"to", req.recipients},
                                    {"status", "queued"},
                                    {"envelope", HexEncode(env)}}));
    return decoded.header.message_id;
  }

  // Outgoing items are handed to the client in the order they were queued: a grant's
  // registration before the referral sent under it.
  Result<uint64_t> NextOutgoingSeq(CaseStore::Txn& txn) {
    REFBUS_ASSIGN_OR_RETURN(auto m, txn.Get(Table::kMeta, "out_seq"));
    uint64_t next = m ? m->at("seq").get<uint64_t>() + 1 : 1;
    REFBUS_RETURN_IF_ERROR(txn.Put(Table::kMeta, "out_seq", {{"seq", next}}));
    return next;
  }

  Status QueueControl(CaseStore::Txn& txn, const Bytes& id, const schema::Frame& frame,
                      const std::string& what, const std::string& case_ref) {
    REFBUS_ASSIGN_OR_RETURN(uint64_t seq, NextOutgoingSeq(txn));
    return txn.Put(Table::kOutgoing, HexEncode(id),
                   {{"seq", seq},
                    {"kind", "control"},
                    {"what", what},
                    {"case_ref", case_ref},
                    {"status", "queued"},
                    {"frame", HexEncode(schema::EncodeFrame(frame))}});
  }

  // After a commit: hands every queued outgoing item to the client (idempotent).
  Status FlushOutgoing() {
    REFBUS_ASSIGN_OR_RETURN(auto txn, cases->Begin(false));
    REFBUS_ASSIGN_OR_RETURN(auto all, txn.List(Table::kOutgoing));
    std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
      return a.second.value("seq", uint64_t{0}) < b.second.value("seq", uint64_t{0});
    });
    for (const auto& [key, rec] : all) {
      if (rec.value("status", "") != "queued" || handed_.count(key) != 0) continue;
      REFBUS_ASSIGN_OR_RETURN(Bytes id, HexDecode(key));
      if (rec.value("kind", "") == "control") {
        REFBUS_ASSIGN_OR_RETURN(Bytes fb, HexDecode(rec.at("frame").get<std::string>()));
        REFBUS_ASSIGN_OR_RETURN(schema::Frame f, schema::DecodeFrame(fb));
        Status s = client->SubmitControl(id, f);
        if (!s.ok() && s.code() != Status::Code::kAlreadyExists) return s;
      } else {
        REFBUS_ASSIGN_OR_RETURN(Bytes env, HexDecode(rec.at("envelope").get<std::string>()));
        auto r = client->Submit(std::move(env));
        if (!r.ok() && r.status().code() != Status::Code::kAlreadyExists) return r.status();
      }
      handed_.insert(key);
    }
    return Status::Ok();
  }
  std::set<std::string> handed_;  // outgoing items given to the client in this process

  // Failures are logged: what is queued in the case store is handed over again by the
  // next start (FlushOutgoing at Create).
  void FlushAfterCommit() {
    Status s = FlushOutgoing();
    if (!s.ok()) spdlog::error("agent {}: queueing for the broker failed: {}", me(), s.ToString());
  }

  Status OnAnswer(const ClientEvent& ev) {
    std::string key = HexEncode(ev.message_id);
    REFBUS_ASSIGN_OR_RETURN(auto txn, cases->Begin(true));
    REFBUS_ASSIGN_OR_RETURN(auto rec, txn.Get(Table::kOutgoing, key));
    if (!rec) return Status::Ok();
    Json r = std::move(*rec);
    r.erase("envelope");
    r.erase("frame");
    if (ev.type == ClientEvent::Type::kAcked) {
      r["status"] = "acked";
      if (r.value("what", "") == "grant-registration") {
        if (auto g = txn.Get(Table::kGrants, key); g.ok() && *g) {
          Json gr = std::move(**g);
          gr["registered"] = true;
          REFBUS_RETURN_IF_ERROR(txn.Put(Table::kGrants, key, gr));
        }
      }
    } else {
      r["status"] = "refused";
      r["reason"] = std::string(schema::Name(ev.reason));
      r["detail"] = ev.detail;
      spdlog::warn("agent {}: the broker refused {} {} for case {}: {} ({})", me(),
                   r.value("what", "message"), key, r.value("case_ref", ""),
                   schema::Name(ev.reason), ev.detail);
      std::string case_ref = r.value("case_ref", "");
      if (!case_ref.empty()) {
        REFBUS_ASSIGN_OR_RETURN(Json c, LoadCase(txn, case_ref));
        c["refusals"].push_back({{"by", "broker"},
                                 {"what", r.value("what", "")},
                                 {"id", key},
                                 {"reason", schema::Name(ev.reason)},
                                 {"detail", ev.detail},
                                 {"at_ms", Now()}});
        REFBUS_RETURN_IF_ERROR(txn.Put(Table::kCases, case_ref, c));
      }
    }
    REFBUS_RETURN_IF_ERROR(txn.Put(Table::kOutgoing, key, r));
    return txn.Commit();
  }

  // ---- receiving ----

  GrantLookup Lookup(const CaseStore::Txn& txn) {
    return [this, &txn](ByteView id) -> std::optional<KnownGrant> {
      auto g = LoadGrant(txn, id);
      if (!g.ok()) return std::nullopt;
      return *g;
    };
  }

  Status ProcessInbox() {
    for (;;) {
      REFBUS_ASSIGN_OR_RETURN(auto txn, cases->Begin(true));
      REFBUS_ASSIGN_OR_RETURN(auto meta, txn.Get(Table::kMeta, "processed_seq"));
      uint64_t done = meta ? meta->at("seq").get<uint64_t>() : 0;
      REFBUS_ASSIGN_OR_RETURN(auto records, transport->ReadInbox(done, 32));
      if (records.empty()) return Status::Ok();
      for (const auto& r : records) {
        REFBUS_RETURN_IF_ERROR(ProcessOne(txn, r));
        done = r.sequence;
      }
      REFBUS_RETURN_IF_ERROR(txn.Put(Table::kMeta, "processed_seq", {{"seq", done}}));
      REFBUS_RETURN_IF_ERROR(txn.Commit());
      FlushAfterCommit();
      REFBUS_RETURN_IF_ERROR(RunPendingPurges());
    }
  }

  Status Refuse(CaseStore::Txn& txn, Json& msg, const std::string& case_ref,
                const std::string& why) {
    msg["status"] = "refused";
    msg["refusal"] = why;
    spdlog::warn("agent {}: refused message {} from {}: {}", me(), msg.value("message_id", ""),
                 msg.value("from", ""), why);
    if (!case_ref.empty() && schema::IsValidCaseRef(case_ref)) {
      REFBUS_ASSIGN_OR_RETURN(Json c, LoadCase(txn, case_ref));
      c["refusals"].push_back({{"by", me()},
                               {"message_id", msg.value("message_id", "")},
                               {"from", msg.value("from", "")},
                               {"kind", msg.value("kind", "")},
                               {"reason", why},
                               {"at_ms", Now()}});
      REFBUS_RETURN_IF_ERROR(txn.Put(Table::kCases, case_ref, c));
    }
    return Status::Ok();
  }

  Status ProcessOne(CaseStore::Txn& txn, const InboxRecord& r) {
    std::string mid = HexEncode(r.message_id);
    Json msg = {{"message_id", mid},
                {"received_at_ms", r.received_ms},
                {"opened", false},
                {"status", "ok"}};
    if (r.purged) {
      msg["status"] = "purged";
      return txn.Put(Table::kMessages, mid, msg);
    }
    auto decoded = schema::DecodeEnvelope(r.envelope);
    if (decoded.ok()) {
      msg["from"] = decoded->header.sender_id;
      msg["kind"] = schema::Name(decoded->header.kind);
      msg["case_ref"] = decoded->header.case_ref;
      msg["grant_id"] = HexEncode(decoded->header.consent_grant_id);
    }
    std::string case_ref = decoded.ok() ? decoded->header.case_ref : "";
    auto opened = OpenCase(identity, r.envelope, dir(), Lookup(txn), Now());
    if (!opened.ok()) {
      REFBUS_RETURN_IF_ERROR(Refuse(txn, msg, case_ref, opened.status().message()));
      return txn.Put(Table::kMessages, mid, msg);
    }
    Status s = Apply(txn, *opened, msg);
    if (!s.ok()) {
      if (s.code() == Status::Code::kInternal || s.code() == Status::Code::kIoError) return s;
      REFBUS_RETURN_IF_ERROR(Refuse(txn, msg, case_ref, s.message()));
    }
    return txn.Put(Table::kMessages, mid, msg);
  }

  Status VerifyStatementFrom(const schema::SignedStatement& st, keys::StatementType type,
                             const std::string& signer, UnixMillis signed_at) {
    return keys::VerifyStatement(st, type, signer, signed_at, dir(), Now());
  }

  Status Apply(CaseStore::Txn& txn, const OpenedCase& oc, Json& msg) {
    const auto& h = oc.envelope.header;
    const std::string& from = h.sender_id;
    const CaseMessage& m = oc.message;
    const std::string grant_hex = HexEncode(h.consent_grant_id);
    switch (m.type) {
      case CaseMessage::Type::kReferral: {
        REFBUS_RETURN_IF_ERROR(RememberGrant(txn, oc.grant, from));
        const auto& ref = m.referral;
        std::string rid = HexEncode(ref.referral_id);
        REFBUS_ASSIGN_OR_RETURN(auto existing, txn.Get(Table::kReferrals, rid));
        if (existing) return FailedPrecondition("referral " + rid + " already received");
        Json rec = {{"referral_id", rid},
                    {"case_ref", ref.case_ref},
                    {"side", "receiver"},
                    {"peer", from},
                    {"purpose", schema::Name(ref.purpose)},
                    {"grant_id", grant_hex},
                    {"message_id", msg["message_id"]},
                    {"state", "requested"},
                    {"updated_at_ms", Now()},
                    {"history", Json::array({{{"from", ""},
                                              {"to", "requested"},
                                              {"by", from},
                                              {"operator", ref.operator_ref},
                                              {"at_ms", ref.sent_at_ms}}})}};
        REFBUS_RETURN_IF_ERROR(txn.Put(Table::kReferrals, rid, rec));
        msg["referral_id"] = rid;
        return Timeline(txn, ref.case_ref,
                        {{"event", "referral-received"},
                         {"from", from},
                         {"referral_id", rid},
                         {"purpose", schema::Name(ref.purpose)}});
      }
      case CaseMessage::Type::kStateChange: {
        const auto& sc = m.state_change;
        std::string rid = HexEncode(sc.referral_id);
        REFBUS_ASSIGN_OR_RETURN(auto rec, txn.Get(Table::kReferrals, rid));
        if (!rec) return NotFound("state change for unknown referral " + rid);
        Json r = std::move(*rec);
        if (r["peer"] != from) {
          return PermissionDenied("state change for referral " + rid + " from " + from +
                                  ", which is not the other party");
        }
        auto ours = schema::ParseReferralState(r["state"].get<std::string>());
        if (!ours || *ours != sc.from_state) {
          return FailedPrecondition("state change " + std::string(schema::Name(sc.from_state)) +
                                    " -> " + std::string(schema::Name(sc.to_state)) +
                                    " but the referral is " + r["state"].get<std::string>());
        }
        ReferralSide their_side =
            r["side"] == "referrer" ? ReferralSide::kReceiver : ReferralSide::kReferrer;
        REFBUS_ASSIGN_OR_RETURN(auto g, LoadGrant(txn, h.consent_grant_id));
        bool revoked = g && g->revoked;
        REFBUS_RETURN_IF_ERROR(
            CheckTransition(sc.from_state, sc.to_state, their_side, sc.reason, revoked));
        r["state"] = std::string(schema::Name(sc.to_state));
        r["updated_at_ms"] = Now();
        r["history"].push_back({{"from", schema::Name(sc.from_state)},
                                {"to", schema::Name(sc.to_state)},
                                {"by", from},
                                {"operator", sc.operator_ref},
                                {"reason", sc.reason},
                                {"at_ms", sc.changed_at_ms}});
        REFBUS_RETURN_IF_ERROR(txn.Put(Table::kReferrals, rid, r));
        return Timeline(txn, sc.case_ref,
                        {{"event", "referral-state"},
                         {"from", from},
                         {"referral_id", rid},
                         {"state", schema::Name(sc.to_state)},
                         {"reason", sc.reason}});
      }
      case CaseMessage::Type::kHandoff: {
        REFBUS_RETURN_IF_ERROR(RememberGrant(txn, oc.grant, from));
        const auto& ho = m.handoff;
        std::string hid = HexEncode(ho.handoff_id);
        REFBUS_RETURN_IF_ERROR(txn.Put(Table::kHandoffs, hid,
                                       {{"handoff_id", hid},
                                        {"case_ref", ho.case_ref},
                                        {"side", "to"},
                                        {"peer", from},
                                        {"grant_id", grant_hex},
                                        {"reason", ho.reason},
                                        {"message_id", msg["message_id"]},
                                        {"state", "pending"}}));
        REFBUS_ASSIGN_OR_RETURN(Json c, LoadCase(txn, ho.case_ref));
        if (c["lead"] == "") c["lead"] = from;
        REFBUS_RETURN_IF_ERROR(txn.Put(Table::kCases, ho.case_ref, c));
        msg["handoff_id"] = hid;
        return Timeline(txn, ho.case_ref,
                        {{"event", "handoff-received"}, {"from", from}, {"handoff_id", hid}});
      }
      case CaseMessage::Type::kHandoffAck: {
        const auto& ack = m.handoff_ack;
        std::string hid = HexEncode(ack.handoff_id);
        REFBUS_ASSIGN_OR_RETURN(auto rec, txn.Get(Table::kHandoffs, hid));
        if (!rec || (*rec)["peer"] != from || (*rec)["side"] != "from") {
          return NotFound("handoff acknowledgement for unknown handoff " + hid);
        }
        Json r = std::move(*rec);
        r["state"] = ack.accepted ? "accepted" : "refused";
        r["reason"] = ack.reason;
        REFBUS_RETURN_IF_ERROR(txn.Put(Table::kHandoffs, hid, r));
        if (ack.accepted) {
          REFBUS_ASSIGN_OR_RETURN(Json c, LoadCase(txn, ack.case_ref));
          c["lead"] = from;
          REFBUS_RETURN_IF_ERROR(txn.Put(Table::kCases, ack.case_ref, c));
        }
        return Timeline(txn, ack.case_ref,
                        {{"event", ack.accepted ? "handoff-accepted" : "handoff-refused"},
                         {"from", from},
                         {"handoff_id", hid}});
      }
      case CaseMessage::Type::kDeletionRequest: {
        REFBUS_RETURN_IF_ERROR(RememberGrant(txn, oc.grant, from));
        const auto& dr = m.deletion_request;
        std::string qid = HexEncode(dr.request_id);
        Json items = Json::object();
        for (const auto& i : dr.items) items[i.item_id] = "requested";
        REFBUS_RETURN_IF_ERROR(txn.Put(Table::kDeletions, qid,
                                       {{"request_id", qid},
                                        {"case_ref", dr.case_ref},
                                        {"side", "deletion-center"},
                                        {"peer", from},
                                        {"grant_id", grant_hex},
                                        {"report_to", dr.report_to},
                                        {"monitor", dr.monitor},
                                        {"items", items},
                                        {"report_seq", 0}}));
        msg["request_id"] = qid;
        return Timeline(txn, dr.case_ref,
                        {{"event", "deletion-requested"},
                         {"from", from},
                         {"request_id", qid},
                         {"items", dr.items.size()}});
      }
      case CaseMessage::Type::kDeletionStatus: {
        const auto& ds = m.deletion_status;
        std::string qid = HexEncode(ds.request_id);
        REFBUS_ASSIGN_OR_RETURN(auto rec, txn.Get(Table::kDeletions, qid));
        Json r = rec ? std::move(*rec) : Json{{"request_id", qid},     {"case_ref", ds.case_ref},
                                              {"side", "observer"},    {"peer", from},
                                              {"grant_id", grant_hex}, {"items", Json::object()},
                                              {"report_seq", 0}};
        if (r["peer"] != from) {
          return PermissionDenied("deletion status for request " + qid + " from " + from +
                                  ", which is not the deletion center handling it");
        }
        if (ds.report_seq <= r["report_seq"].get<uint64_t>()) {
          msg["stale"] = true;
          return Status::Ok();  // an older report: the newer one already applied
        }
        for (const auto& u : ds.updates)
          r["items"][u.item_id] = std::string(schema::Name(u.status));
        r["report_seq"] = ds.report_seq;
        r["counts"] = CountsJson(ds.counts);
        REFBUS_RETURN_IF_ERROR(txn.Put(Table::kDeletions, qid, r));
        return Timeline(txn, ds.case_ref,
                        {{"event", "deletion-status"},
                         {"from", from},
                         {"request_id", qid},
                         {"report_seq", ds.report_seq},
                         {"counts", CountsJson(ds.counts)}});
      }
      case CaseMessage::Type::kAccessNotice: {
        REFBUS_ASSIGN_OR_RETURN(auto rec, schema::DecodeAccessRecord(m.statement.statement));
        if (rec.agency_id != from || rec.owner_agency != me()) {
          return PermissionDenied("access notice about " + rec.agency_id + " sent by " + from);
        }
        REFBUS_RETURN_IF_ERROR(VerifyStatementFrom(m.statement, keys::StatementType::kAccessRecord,
                                                   from, rec.opened_at_ms));
        REFBUS_ASSIGN_OR_RETURN(Json c, LoadCase(txn, rec.case_ref));
        c["access_notices"].push_back({{"message_id", HexEncode(rec.message_id)},
                                       {"agency", rec.agency_id},
                                       {"operator", rec.operator_ref},
                                       {"opened_at_ms", rec.opened_at_ms},
                                       {"kind", schema::Name(rec.kind)}});
        return txn.Put(Table::kCases, rec.case_ref, c);
      }
      case CaseMessage::Type::kConsentRevocation: {
        REFBUS_ASSIGN_OR_RETURN(auto rev, schema::DecodeConsentRevocation(m.statement.statement));
        const std::string& recorder = oc.grant.grant.recorded_by;
        if (rev.revoked_by != recorder || rev.grant_id != h.consent_grant_id) {
          return PermissionDenied("revocation of grant " + HexEncode(rev.grant_id) + " signed by " +
                                  rev.revoked_by + ", not by its recorder " + recorder);
        }
        // Signed by the recorder, whoever forwarded it.
        REFBUS_RETURN_IF_ERROR(VerifyStatementFrom(
            m.statement, keys::StatementType::kConsentRevocation, recorder, rev.revoked_at_ms));
        REFBUS_RETURN_IF_ERROR(MarkRevoked(txn, rev, from));
        return ForwardRevocation(txn, m.statement, rev, {recorder, from});
      }
      case CaseMessage::Type::kPurgeConfirmation: {
        REFBUS_ASSIGN_OR_RETURN(auto pc, schema::DecodePurgeConfirmation(m.statement.statement));
        if (pc.agency_id != from) {
          return PermissionDenied("purge confirmation for " + pc.agency_id + " sent by " + from);
        }
        REFBUS_RETURN_IF_ERROR(VerifyStatementFrom(
            m.statement, keys::StatementType::kPurgeConfirmation, from, pc.purged_at_ms));
        REFBUS_ASSIGN_OR_RETURN(Json c, LoadCase(txn, pc.case_ref));
        c["purge_confirmations"].push_back({{"grant_id", HexEncode(pc.grant_id)},
                                            {"agency", pc.agency_id},
                                            {"messages_purged", pc.messages_purged},
                                            {"purged_at_ms", pc.purged_at_ms}});
        REFBUS_RETURN_IF_ERROR(txn.Put(Table::kCases, pc.case_ref, c));
        return Timeline(txn, pc.case_ref,
                        {{"event", "purge-confirmed"},
                         {"from", from},
                         {"messages_purged", pc.messages_purged}});
      }
      case CaseMessage::Type::kCaseClosed: {
        const auto& cc = m.case_closed;
        REFBUS_ASSIGN_OR_RETURN(Json c, LoadCase(txn, cc.case_ref));
        if (cc.closed_by != from || (c["lead"] != "" && c["lead"] != from)) {
          return PermissionDenied("case " + cc.case_ref + " closed by " + from +
                                  ", which does not hold the lead");
        }
        c["closed"] = true;
        c["closed_reason"] = cc.reason;
        REFBUS_RETURN_IF_ERROR(txn.Put(Table::kCases, cc.case_ref, c));
        return Timeline(txn, cc.case_ref,
                        {{"event", "case-closed"}, {"from", from}, {"reason", cc.reason}});
      }
    }
    return Status::Ok();
  }

  // Passes the recorder's signed revocation on to the agencies this agency shared data
  // with under the grant (onward sharing), except those that already know.
  Status ForwardRevocation(CaseStore::Txn& txn, const schema::SignedStatement& statement,
                           const schema::ConsentRevocation& rev,
                           const std::set<std::string>& skip) {
    REFBUS_ASSIGN_OR_RETURN(auto rec, txn.Get(Table::kGrants, HexEncode(rev.grant_id)));
    REFBUS_ASSIGN_OR_RETURN(auto known, LoadGrant(txn, rev.grant_id));
    if (!rec || !known) return Status::Ok();
    std::vector<std::string> to;
    for (const auto& a : rec->value("shared_with", Json::array())) {
      std::string id = a.get<std::string>();
      if (skip.count(id) == 0 && id != me()) to.push_back(id);
    }
    if (to.empty()) return Status::Ok();
    CaseMessage m;
    m.type = CaseMessage::Type::kConsentRevocation;
    m.statement = statement;
    const auto& g = known->grant.grant;
    Purpose purpose = g.purposes.empty() ? Purpose::kUnspecified : g.purposes[0];
    REFBUS_RETURN_IF_ERROR(
        SendCase(txn, *known, std::move(m), to, purpose, "consent-revocation-forward").status());
    return Timeline(txn, rev.case_ref, {{"event", "consent-revocation-forwarded"}, {"to", to}});
  }

  Status MarkRevoked(CaseStore::Txn& txn, const schema::ConsentRevocation& rev,
                     const std::string& from) {
    std::string key = HexEncode(rev.grant_id);
    REFBUS_ASSIGN_OR_RETURN(auto rec, txn.Get(Table::kGrants, key));
    if (!rec) return NotFound("revocation of unknown grant " + key);
    Json g = std::move(*rec);
    if (g.value("revoked", false)) return Status::Ok();
    g["revoked"] = true;
    g["revoked_at_ms"] = rev.revoked_at_ms;
    g["revocation_reason"] = std::string(schema::Name(rev.reason));
    g["purge_pending"] = !g.value("recorded_here", false);
    REFBUS_RETURN_IF_ERROR(txn.Put(Table::kGrants, key, g));
    // Open referrals under the grant are withdrawn.
    REFBUS_ASSIGN_OR_RETURN(auto refs, txn.List(Table::kReferrals));
    for (auto& [rid, r] : refs) {
      if (r["grant_id"] != key) continue;
      auto st = schema::ParseReferralState(r["state"].get<std::string>());
      if (!st || IsFinal(*st)) continue;
      r["history"].push_back({{"from", r["state"]},
                              {"to", "withdrawn"},
                              {"by", from},
                              {"reason", "consent revoked"},
                              {"at_ms", Now()}});
      r["state"] = "withdrawn";
      r["updated_at_ms"] = Now();
      REFBUS_RETURN_IF_ERROR(txn.Put(Table::kReferrals, rid, r));
    }
    return Timeline(txn, rev.case_ref,
                    {{"event", "consent-revoked"},
                     {"by", from},
                     {"grant_id", key},
                     {"reason", schema::Name(rev.reason)}});
  }

  // Purges what arrived under revoked grants, then confirms (signed) to the recorder and
  // to the broker's audit log. Idempotent: rerun after a crash at any point.
  Status RunPendingPurges() {
    std::vector<std::pair<std::string, Json>> grants, msgs;
    {
      // One LMDB transaction per thread at a time: this read ends before any write.
      REFBUS_ASSIGN_OR_RETURN(auto rtxn, cases->Begin(false));
      REFBUS_ASSIGN_OR_RETURN(grants, rtxn.List(Table::kGrants));
      bool pending = false;
      for (const auto& [k, g] : grants) pending = pending || g.value("purge_pending", false);
      if (!pending) return Status::Ok();
      REFBUS_ASSIGN_OR_RETURN(msgs, rtxn.List(Table::kMessages));
    }
    for (const auto& [gkey, g] : grants) {
      if (!g.value("purge_pending", false)) continue;
      std::vector<Bytes> ids;
      std::vector<std::string> hex_ids;
      for (const auto& [mkey, m] : msgs) {
        if (m.value("grant_id", "") != gkey) continue;
        REFBUS_ASSIGN_OR_RETURN(Bytes id, HexDecode(mkey));
        ids.push_back(std::move(id));
        hex_ids.push_back(mkey);
      }
      REFBUS_ASSIGN_OR_RETURN(size_t n, transport->PurgeInbox(ids, Now()));
      spdlog::info("agent {}: purged {} messages under revoked grant {} ({} newly)", me(),
                   ids.size(), gkey, n);
      std::sort(ids.begin(), ids.end());
      Bytes concat;
      for (const auto& id : ids) Append(concat, id);
      REFBUS_ASSIGN_OR_RETURN(Bytes grant_id, HexDecode(gkey));
      schema::PurgeConfirmation pc{grant_id, g.value("case_ref", ""),           me(),
                                   Now(),    static_cast<uint32_t>(ids.size()), Sha256(concat)};
      schema::SignedStatement st = keys::SignStatement(
          identity, keys::StatementType::kPurgeConfirmation, schema::EncodePurgeConfirmation(pc));
      Bytes st_bytes = schema::EncodeSignedStatement(st);
      REFBUS_ASSIGN_OR_RETURN(auto txn, cases->Begin(true));
      // Attestation for the broker's audit log.
      schema::Frame f;
      f.type = schema::Frame::Type::kAttest;
      f.attest.signed_purge = st_bytes;
      REFBUS_RETURN_IF_ERROR(
          QueueControl(txn, StatementId(st_bytes), f, "purge-attestation", pc.case_ref));
      // And the confirmation to the recording agency.
      REFBUS_ASSIGN_OR_RETURN(auto known, LoadGrant(txn, grant_id));
      if (known) {
        CaseMessage cm;
        cm.type = CaseMessage::Type::kPurgeConfirmation;
        cm.statement = st;
        Purpose purpose = known->grant.grant.purposes.empty() ? Purpose::kUnspecified
                                                              : known->grant.grant.purposes[0];
        auto sent = SendCase(txn, *known, std::move(cm), {known->grant.grant.recorded_by}, purpose,
                             "purge-confirmation");
        if (!sent.ok()) {
          spdlog::error("agent {}: cannot send the purge confirmation for grant {}: {}", me(), gkey,
                        sent.status().ToString());
        }
      }
      for (const auto& mk : hex_ids) {
        REFBUS_ASSIGN_OR_RETURN(auto m, txn.Get(Table::kMessages, mk));
        if (!m) continue;
        (*m)["status"] = "purged";
        REFBUS_RETURN_IF_ERROR(txn.Put(Table::kMessages, mk, *m));
      }
      Json gg = g;
      gg["purge_pending"] = false;
      gg["purged_messages"] = ids.size();
      gg["purged_at_ms"] = pc.purged_at_ms;
      REFBUS_RETURN_IF_ERROR(txn.Put(Table::kGrants, gkey, gg));
      REFBUS_RETURN_IF_ERROR(
          Timeline(txn, pc.case_ref,
                   {{"event", "purged"}, {"grant_id", gkey}, {"messages_purged", ids.size()}}));
      REFBUS_RETURN_IF_ERROR(txn.Commit());
      FlushAfterCommit();
    }
    return Status::Ok();
  }
};

// ======================================================================== Engine

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

Result<EngineSnapshot> Engine::Snapshot() {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(auto counters, d.transport->Counters());
  EngineSnapshot s;
  s.broker = d.client->home_broker_id();
  s.session_ready = d.client->session_ready();
  s.directory_serial = d.dir().serial;
  s.directory_expires_ms = d.dir().expires_at_ms;
  s.outbox = counters.outbox_messages;
  s.inbox = counters.inbox_messages;
  s.inbox_unprocessed = counters.last_inbox_sequence > counters.app_cursor
                            ? counters.last_inbox_sequence - counters.app_cursor
                            : 0;
  s.client = d.client->counters();
  return s;
}

const std::string& Engine::agency_id() const { return impl_->me(); }

Result<std::unique_ptr<Engine>> Engine::Create(keys::Identity identity,
                                               schema::SignedDirectory directory,
                                               EngineOptions options) {
  auto impl = std::make_unique<Impl>(std::move(identity), std::move(directory), options);
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return IoError("cannot create " + options.data_dir + ": " + ec.message());
  REFBUS_ASSIGN_OR_RETURN(impl->transport,
                          AgentStore::Open(options.data_dir + "/transport", StoreOptions{}));
  REFBUS_ASSIGN_OR_RETURN(impl->cases, CaseStore::Open(options.data_dir + "/cases"));
  std::string endpoint = options.broker_endpoint;
  if (endpoint.empty()) {
    const schema::Party* self = impl->dir().Find(impl->me());
    if (self == nullptr) return NotFound(impl->me() + " is not in the directory");
    const schema::Party* broker = impl->dir().Find(self->home_broker);
    if (broker == nullptr || broker->endpoint.empty()) {
      return FailedPrecondition("the directory lists no endpoint for home broker " +
                                self->home_broker + "; set agent.broker_endpoint");
    }
    endpoint = broker->endpoint;
  }
  impl->client = std::make_unique<Client>(impl->identity, impl->dir(), endpoint, *impl->transport,
                                          options.client);
  REFBUS_RETURN_IF_ERROR(impl->client->Start());
  std::unique_ptr<Engine> e(new Engine(std::move(impl)));
  // What an earlier run queued but may not have handed over, and what arrived unprocessed.
  REFBUS_RETURN_IF_ERROR(e->impl_->FlushOutgoing());
  REFBUS_RETURN_IF_ERROR(e->impl_->ProcessInbox());
  REFBUS_RETURN_IF_ERROR(e->impl_->RunPendingPurges());
  return e;
}

Status Engine::Poll(int timeout_ms) {
  Status s = impl_->client->Poll(timeout_ms);
  for (const auto& ev : impl_->client->TakeEvents()) {
    if (ev.type == ClientEvent::Type::kAcked || ev.type == ClientEvent::Type::kRefused) {
      Status a = impl_->OnAnswer(ev);
      if (!a.ok()) spdlog::error("agent: recording a broker answer failed: {}", a.ToString());
    }
  }
  Status p = impl_->ProcessInbox();
  if (!p.ok()) spdlog::error("agent: processing the inbox failed: {}", p.ToString());
  return s.ok() ? p : s;
}

void Engine::Shutdown(int linger_ms) {
  impl_->client->PauseSubmissions(true);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(linger_ms);
  while (impl_->client->in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
    (void)Poll(20);
  }
  impl_->client->Close(200);
}

Status Engine::UpdateDirectory(schema::SignedDirectory directory) {
  if (directory.directory.serial <= impl_->directory.directory.serial) return Status::Ok();
  impl_->directory = std::move(directory);
  return Status::Ok();
}

// ---------------------------------------------------------------- consents

Result<Json> Engine::RecordConsent(const Json& req) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(std::string op, OperatorOf(req));
  schema::ConsentGrant g;
  g.grant_id = keys::RandomBytes(schema::kGrantIdBytes);
  REFBUS_ASSIGN_OR_RETURN(g.case_ref, Str(req, "case_ref", false));
  REFBUS_ASSIGN_OR_RETURN(std::string local_case, Str(req, "local_case", false));
  if (g.case_ref.empty() && !local_case.empty()) {
    // A read transaction of its own, ended before the write below (one per thread).
    REFBUS_ASSIGN_OR_RETURN(auto txn0, d.cases->Begin(false));
    REFBUS_ASSIGN_OR_RETURN(auto l, txn0.Get(Table::kLocal, local_case));
    if (l) g.case_ref = l->at("case_ref").get<std::string>();
  }
  if (g.case_ref.empty()) g.case_ref = NewCaseRef();
  if (!schema::IsValidCaseRef(g.case_ref)) {
    return InvalidArgument("'case_ref' must be a pseudonym of 8-64 letters, digits or '-'");
  }
  g.recorded_by = d.me();
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
  REFBUS_ASSIGN_OR_RETURN(int64_t days, Int(req, "valid_days", 30, 1, 3650));
  REFBUS_ASSIGN_OR_RETURN(int64_t keep, Int(req, "retention_days", days, 1, 3650));
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
  REFBUS_ASSIGN_OR_RETURN(int64_t expires_in_ms,
                          Int(req, "expires_in_ms", 0, 1000, int64_t{3650} * kMillisPerDay));
  UnixMillis now = Impl::Now();
  g.issued_at_ms = now;
  g.expires_at_ms = expires_in_ms > 0 ? now + static_cast<UnixMillis>(expires_in_ms)
                                      : now + static_cast<UnixMillis>(days) * kMillisPerDay;
  g.retention_until_ms = now + static_cast<UnixMillis>(keep) * kMillisPerDay;
  REFBUS_ASSIGN_OR_RETURN(schema::SignedConsentGrant signed_grant,
                          keys::SignConsentGrant(d.identity, g));
  if (keys::IsEmergencyOverride(g)) {
    REFBUS_ASSIGN_OR_RETURN(std::string key_name, Str(req, "countersigner_key", false));
    REFBUS_ASSIGN_OR_RETURN(std::string cs_op, Str(req, "countersigner_operator", false));
    if (key_name.empty() || cs_op.empty()) {
      return FailedPrecondition(
          "an emergency override needs a second operator's countersignature: give "
          "'countersigner_key' and 'countersigner_operator'");
    }
    if (cs_op == op) return FailedPrecondition("the countersigner must be a second operator");
    // Only key files the administrator put in <data_dir>/operator-keys/ are read: the API
    // must not become a way to read arbitrary files.
    bool plain = key_name.size() <= 64 && key_name[0] != '.' &&
                 std::all_of(key_name.begin(), key_name.end(), [](char ch) {
                   return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' ||
                          ch == '.';
                 });
    if (!plain) {
      return InvalidArgument("'countersigner_key' must be a file name in operator-keys/");
    }
    std::string key_file = d.options.data_dir + "/operator-keys/" + key_name;
    REFBUS_RETURN_IF_ERROR(CheckPrivateFile(key_file));
    REFBUS_ASSIGN_OR_RETURN(keys::Identity cs, keys::LoadIdentity(key_file, nullptr));
    REFBUS_RETURN_IF_ERROR(keys::Countersign(signed_grant, cs_op, cs));
  }
  REFBUS_RETURN_IF_ERROR(keys::VerifyConsentGrant(signed_grant, d.dir(), now));
  Bytes signed_bytes = schema::EncodeSignedConsentGrant(signed_grant);
  std::string key = HexEncode(g.grant_id);
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.cases->Begin(true));
  REFBUS_RETURN_IF_ERROR(txn.Put(Table::kGrants, key,
                                 {{"signed", HexEncode(signed_bytes)},
                                  {"case_ref", g.case_ref},
                                  {"recorded_here", true},
                                  {"operator", op},
                                  {"revoked", false},
                                  {"registered", false},
                                  {"shared_with", Json::array()}}));
  REFBUS_ASSIGN_OR_RETURN(Json c, d.LoadCase(txn, g.case_ref));
  if (c["lead"] == "") c["lead"] = d.me();
  if (!local_case.empty()) {
    c["local_case"] = local_case;
    REFBUS_RETURN_IF_ERROR(txn.Put(Table::kLocal, local_case, {{"case_ref", g.case_ref}}));
  }
  REFBUS_RETURN_IF_ERROR(txn.Put(Table::kCases, g.case_ref, c));
  REFBUS_RETURN_IF_ERROR(d.AddGrantToCase(txn, g.case_ref, key));
  schema::Frame f;
  f.type = schema::Frame::Type::kGrantRegister;
  f.grant_register.signed_grant = signed_bytes;
  REFBUS_RETURN_IF_ERROR(d.QueueControl(txn, g.grant_id, f, "grant-registration", g.case_ref));
  REFBUS_RETURN_IF_ERROR(d.Timeline(txn, g.case_ref,
                                    {{"event", "consent-recorded"},
                                     {"grant_id", key},
                                     {"basis", basis},
                                     {"operator", op},
                                     {"emergency_override", keys::IsEmergencyOverride(g)}}));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return Json{{"grant_id", key},
              {"case_ref", g.case_ref},
              {"local_case", local_case},
              {"expires_at_ms", g.expires_at_ms},
              {"emergency_override", keys::IsEmergencyOverride(g)}};
}

Result<Json> Engine::Consents() {
  REFBUS_ASSIGN_OR_RETURN(auto txn, impl_->cases->Begin(false));
  REFBUS_ASSIGN_OR_RETURN(auto all, txn.List(Table::kGrants));
  Json out = Json::array();
  for (const auto& [key, rec] : all) {
    REFBUS_ASSIGN_OR_RETURN(KnownGrant k, Impl::GrantFromRecord(rec));
    const auto& g = k.grant.grant;
    out.push_back({{"grant_id", key},
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
                   {"revoked", rec.value("revoked", false)},
                   {"registered", rec.value("registered", false)},
                   {"shared_with", rec.value("shared_with", Json::array())}});
  }
  return out;
}

// ---------------------------------------------------------------- referrals

Result<Json> Engine::SendReferral(const Json& req) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(std::string op, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(std::string grant_hex, Str(req, "grant_id"));
  REFBUS_ASSIGN_OR_RETURN(std::string to, Str(req, "to"));
  REFBUS_ASSIGN_OR_RETURN(std::string purpose_s, Str(req, "purpose"));
  REFBUS_ASSIGN_OR_RETURN(Purpose purpose,
                          EnumOf<Purpose>("purpose", purpose_s, schema::ParsePurpose));
  REFBUS_ASSIGN_OR_RETURN(auto fields, FieldsOf(req));
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.cases->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(auto grant, d.RequireGrant(txn, grant_hex));
  const auto& g = grant.first.grant.grant;
  CaseMessage m;
  m.type = CaseMessage::Type::kReferral;
  m.referral.referral_id = keys::RandomBytes(schema::kWorkflowIdBytes);
  m.referral.case_ref = g.case_ref;
  m.referral.referring_agency = d.me();
  m.referral.to_agency = to;
  m.referral.purpose = purpose;
  m.referral.fields = std::move(fields);
  m.referral.signed_grant = schema::EncodeSignedConsentGrant(grant.first.grant);
  m.referral.operator_ref = op;
  m.referral.sent_at_ms = Impl::Now();
  std::string rid = HexEncode(m.referral.referral_id);
  REFBUS_ASSIGN_OR_RETURN(Bytes mid,
                          d.SendCase(txn, grant.first, std::move(m), {to}, purpose, "referral"));
  REFBUS_RETURN_IF_ERROR(txn.Put(Table::kReferrals, rid,
                                 {{"referral_id", rid},
                                  {"case_ref", g.case_ref},
                                  {"side", "referrer"},
                                  {"peer", to},
                                  {"purpose", purpose_s},
                                  {"grant_id", HexEncode(g.grant_id)},
                                  {"message_id", HexEncode(mid)},
                                  {"state", "requested"},
                                  {"updated_at_ms", Impl::Now()},
                                  {"history", Json::array({{{"from", ""},
                                                            {"to", "requested"},
                                                            {"by", d.me()},
                                                            {"operator", op},
                                                            {"at_ms", Impl::Now()}}})}}));
  REFBUS_RETURN_IF_ERROR(d.RecordShare(txn, grant.second, g.grant_id, to));
  REFBUS_RETURN_IF_ERROR(
      d.Timeline(txn, g.case_ref,
                 {{"event", "referral-sent"}, {"to", to}, {"referral_id", rid}, {"operator", op}}));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return Json{{"referral_id", rid},
              {"message_id", HexEncode(mid)},
              {"case_ref", g.case_ref},
              {"state", "requested"}};
}

Result<Json> Engine::Referrals() {
  REFBUS_ASSIGN_OR_RETURN(auto txn, impl_->cases->Begin(false));
  REFBUS_ASSIGN_OR_RETURN(auto all, txn.List(Table::kReferrals));
  Json out = Json::array();
  for (auto& [key, rec] : all) {
    REFBUS_ASSIGN_OR_RETURN(Json c, impl_->LoadCase(txn, rec["case_ref"].get<std::string>()));
    rec["local_case"] = c["local_case"];
    out.push_back(rec);
  }
  return out;
}

Result<Json> Engine::ChangeState(const std::string& referral_id, const Json& req) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(std::string op, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(std::string to_s, Str(req, "state"));
  REFBUS_ASSIGN_OR_RETURN(ReferralState to,
                          EnumOf<ReferralState>("state", to_s, schema::ParseReferralState));
  REFBUS_ASSIGN_OR_RETURN(std::string reason, Str(req, "reason", false));
  if (reason.size() > schema::kMaxReasonBytes) return InvalidArgument("'reason' is too long");
  REFBUS_ASSIGN_OR_RETURN(Bytes rid_bytes, IdOf("referral id", referral_id));
  std::string rid = HexEncode(rid_bytes);
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.cases->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(auto rec, txn.Get(Table::kReferrals, rid));
  if (!rec) return NotFound("no referral " + rid + " (list them with: refbus-agent referrals)");
  Json r = std::move(*rec);
  REFBUS_ASSIGN_OR_RETURN(auto grant, d.RequireGrant(txn, r["grant_id"].get<std::string>()));
  auto from = schema::ParseReferralState(r["state"].get<std::string>());
  ReferralSide side = r["side"] == "referrer" ? ReferralSide::kReferrer : ReferralSide::kReceiver;
  REFBUS_RETURN_IF_ERROR(CheckTransition(*from, to, side, reason, grant.first.revoked));
  CaseMessage m;
  m.type = CaseMessage::Type::kStateChange;
  m.state_change = {rid_bytes,  r["case_ref"].get<std::string>(), *from, to, reason, op,
                    Impl::Now()};
  auto purpose = schema::ParsePurpose(r["purpose"].get<std::string>());
  REFBUS_ASSIGN_OR_RETURN(Bytes mid,
                          d.SendCase(txn, grant.first, std::move(m), {r["peer"].get<std::string>()},
                                     purpose.value_or(Purpose::kUnspecified), "referral-state"));
  r["history"].push_back({{"from", r["state"]},
                          {"to", to_s},
                          {"by", d.me()},
                          {"operator", op},
                          {"reason", reason},
                          {"at_ms", Impl::Now()}});
  r["state"] = to_s;
  r["updated_at_ms"] = Impl::Now();
  REFBUS_RETURN_IF_ERROR(txn.Put(Table::kReferrals, rid, r));
  REFBUS_RETURN_IF_ERROR(d.Timeline(txn, r["case_ref"].get<std::string>(),
                                    {{"event", "referral-state"},
                                     {"referral_id", rid},
                                     {"state", to_s},
                                     {"operator", op},
                                     {"message_id", HexEncode(mid)}}));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return r;
}

// ---------------------------------------------------------------- inbox

Result<Json> Engine::Inbox() {
  REFBUS_ASSIGN_OR_RETURN(auto txn, impl_->cases->Begin(false));
  REFBUS_ASSIGN_OR_RETURN(auto all, txn.List(Table::kMessages));
  Json out = Json::array();
  for (auto& [key, rec] : all) out.push_back(rec);
  std::sort(out.begin(), out.end(), [](const Json& a, const Json& b) {
    return a.value("received_at_ms", uint64_t{0}) < b.value("received_at_ms", uint64_t{0});
  });
  return out;
}

Result<Json> Engine::Open(const std::string& message_id, const Json& req) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(std::string op, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(Bytes mid, IdOf("message id", message_id));
  std::string key = HexEncode(mid);
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.cases->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(auto rec, txn.Get(Table::kMessages, key));
  if (!rec) return NotFound("no message " + key + " in the inbox (refbus-agent inbox)");
  Json msg = std::move(*rec);
  if (msg["status"] == "purged") {
    return FailedPrecondition("message " + key +
                              " was purged when its consent was revoked; it cannot be opened");
  }
  if (msg["status"] == "refused") {
    return FailedPrecondition("message " + key + " was refused on arrival (" +
                              msg.value("refusal", "") + "); it is not opened");
  }
  REFBUS_ASSIGN_OR_RETURN(InboxRecord ir, d.transport->GetInbox(mid));
  if (ir.purged) return FailedPrecondition("message " + key + " was purged");
  REFBUS_ASSIGN_OR_RETURN(OpenedCase oc,
                          OpenCase(d.identity, ir.envelope, d.dir(), d.Lookup(txn), Impl::Now()));
  const auto& h = oc.envelope.header;
  // The access record: signed, to the broker's audit log and to the sender.
  schema::AccessRecord ar{mid,         h.case_ref,         d.me(), op,
                          Impl::Now(), h.consent_grant_id, h.kind, h.sender_id};
  schema::SignedStatement st = keys::SignStatement(d.identity, keys::StatementType::kAccessRecord,
                                                   schema::EncodeAccessRecord(ar));
  Bytes st_bytes = schema::EncodeSignedStatement(st);
  schema::Frame f;
  f.type = schema::Frame::Type::kAttest;
  f.attest.signed_access = st_bytes;
  REFBUS_RETURN_IF_ERROR(
      d.QueueControl(txn, StatementId(st_bytes), f, "access-attestation", h.case_ref));
  KnownGrant grant{oc.grant, false};
  if (auto k = d.LoadGrant(txn, h.consent_grant_id); k.ok() && *k) grant = **k;
  if (h.sender_id != d.me()) {
    CaseMessage notice;
    notice.type = CaseMessage::Type::kAccessNotice;
    notice.statement = st;
    auto sent =
        d.SendCase(txn, grant, std::move(notice), {h.sender_id}, h.purpose, "access-notice");
    if (!sent.ok()) {
      spdlog::warn("agent {}: no access notice to {} for {}: {}", d.me(), h.sender_id, key,
                   sent.status().message());
    }
  }
  msg["opened"] = true;
  msg["opened_by"] = op;
  msg["opened_at_ms"] = ar.opened_at_ms;
  REFBUS_RETURN_IF_ERROR(txn.Put(Table::kMessages, key, msg));
  REFBUS_RETURN_IF_ERROR(
      d.Timeline(txn, h.case_ref, {{"event", "opened"}, {"message_id", key}, {"operator", op}}));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  Json content;
  const CaseMessage& m = oc.message;
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
  return Json{{"message_id", key},
              {"from", h.sender_id},
              {"kind", schema::Name(h.kind)},
              {"case_ref", h.case_ref},
              {"content", content}};
}

// ---------------------------------------------------------------- handoffs

Result<Json> Engine::Handoff(const Json& req) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(std::string op, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(std::string grant_hex, Str(req, "grant_id"));
  REFBUS_ASSIGN_OR_RETURN(std::string to, Str(req, "to"));
  REFBUS_ASSIGN_OR_RETURN(std::string reason, Str(req, "reason", false));
  REFBUS_ASSIGN_OR_RETURN(std::string purpose_s, Str(req, "purpose", false));
  REFBUS_ASSIGN_OR_RETURN(auto fields, FieldsOf(req));
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.cases->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(auto grant, d.RequireGrant(txn, grant_hex));
  const auto& g = grant.first.grant.grant;
  REFBUS_ASSIGN_OR_RETURN(Json c, d.LoadCase(txn, g.case_ref));
  if (c["lead"] != d.me()) {
    return FailedPrecondition("case " + g.case_ref + " is led by " + c["lead"].get<std::string>() +
                              "; only the lead hands it over");
  }
  Purpose purpose = g.purposes.empty() ? Purpose::kUnspecified : g.purposes[0];
  if (!purpose_s.empty()) {
    REFBUS_ASSIGN_OR_RETURN(purpose, EnumOf<Purpose>("purpose", purpose_s, schema::ParsePurpose));
  }
  CaseMessage m;
  m.type = CaseMessage::Type::kHandoff;
  m.handoff.handoff_id = keys::RandomBytes(schema::kWorkflowIdBytes);
  m.handoff.case_ref = g.case_ref;
  m.handoff.from_lead = d.me();
  m.handoff.to_lead = to;
  m.handoff.reason = reason;
  m.handoff.fields = std::move(fields);
  m.handoff.signed_grant = schema::EncodeSignedConsentGrant(grant.first.grant);
  m.handoff.operator_ref = op;
  m.handoff.sent_at_ms = Impl::Now();
  std::string hid = HexEncode(m.handoff.handoff_id);
  REFBUS_ASSIGN_OR_RETURN(Bytes mid,
                          d.SendCase(txn, grant.first, std::move(m), {to}, purpose, "handoff"));
  REFBUS_RETURN_IF_ERROR(txn.Put(Table::kHandoffs, hid,
                                 {{"handoff_id", hid},
                                  {"case_ref", g.case_ref},
                                  {"side", "from"},
                                  {"peer", to},
                                  {"grant_id", HexEncode(g.grant_id)},
                                  {"reason", reason},
                                  {"message_id", HexEncode(mid)},
                                  {"state", "pending"}}));
  REFBUS_RETURN_IF_ERROR(d.RecordShare(txn, grant.second, g.grant_id, to));
  REFBUS_RETURN_IF_ERROR(
      d.Timeline(txn, g.case_ref, {{"event", "handoff-sent"}, {"to", to}, {"handoff_id", hid}}));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return Json{{"handoff_id", hid}, {"message_id", HexEncode(mid)}, {"case_ref", g.case_ref}};
}

Result<Json> Engine::AckHandoff(const std::string& handoff_id, const Json& req) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(std::string op, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(Bytes hid_bytes, IdOf("handoff id", handoff_id));
  std::string hid = HexEncode(hid_bytes);
  bool accepted = !req.contains("accepted") || Bool(req, "accepted");
  REFBUS_ASSIGN_OR_RETURN(std::string reason, Str(req, "reason", false));
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.cases->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(auto rec, txn.Get(Table::kHandoffs, hid));
  if (!rec || (*rec)["side"] != "to") return NotFound("no handoff " + hid + " to this agency");
  Json h = std::move(*rec);
  if (h["state"] != "pending") {
    return FailedPrecondition("handoff " + hid + " was already " + h["state"].get<std::string>());
  }
  if (!accepted && reason.empty()) return FailedPrecondition("refusing a handoff needs a reason");
  REFBUS_ASSIGN_OR_RETURN(auto grant, d.RequireGrant(txn, h["grant_id"].get<std::string>()));
  const auto& g = grant.first.grant.grant;
  CaseMessage m;
  m.type = CaseMessage::Type::kHandoffAck;
  m.handoff_ack = {hid_bytes, g.case_ref, accepted, reason, op, Impl::Now()};
  Purpose purpose = g.purposes.empty() ? Purpose::kUnspecified : g.purposes[0];
  REFBUS_ASSIGN_OR_RETURN(
      Bytes mid, d.SendCase(txn, grant.first, std::move(m), {h["peer"].get<std::string>()}, purpose,
                            "handoff-ack"));
  h["state"] = accepted ? "accepted" : "refused";
  REFBUS_RETURN_IF_ERROR(txn.Put(Table::kHandoffs, hid, h));
  REFBUS_ASSIGN_OR_RETURN(Json c, d.LoadCase(txn, g.case_ref));
  if (accepted) c["lead"] = d.me();
  REFBUS_RETURN_IF_ERROR(txn.Put(Table::kCases, g.case_ref, c));
  REFBUS_RETURN_IF_ERROR(d.Timeline(txn, g.case_ref,
                                    {{"event", accepted ? "lead-taken" : "handoff-refused"},
                                     {"handoff_id", hid},
                                     {"operator", op}}));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return Json{{"handoff_id", hid}, {"lead", c["lead"]}, {"message_id", HexEncode(mid)}};
}

// ---------------------------------------------------------------- deletion

Result<Json> Engine::RequestDeletion(const Json& req) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(std::string op, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(std::string grant_hex, Str(req, "grant_id"));
  REFBUS_ASSIGN_OR_RETURN(std::string to, Str(req, "to"));
  REFBUS_ASSIGN_OR_RETURN(auto report_to, Strs(req, "report_to"));
  if (!req.contains("items") || !req["items"].is_array() || req["items"].empty()) {
    return InvalidArgument("'items' must list at least one item {item_id, url}");
  }
  schema::DeletionRequest dr;
  dr.request_id = keys::RandomBytes(schema::kWorkflowIdBytes);
  std::set<std::string> seen;
  for (const auto& i : req["items"]) {
    schema::DeletionItem item;
    REFBUS_ASSIGN_OR_RETURN(item.item_id, Str(i, "item_id"));
    REFBUS_ASSIGN_OR_RETURN(item.url, Str(i, "url"));
    REFBUS_ASSIGN_OR_RETURN(item.platform, Str(i, "platform", false));
    REFBUS_ASSIGN_OR_RETURN(std::string sha, Str(i, "sha256", false));
    if (!sha.empty()) {
      auto b = HexDecode(sha);
      if (!b.ok() || b->size() != 32) return InvalidArgument("item sha256 must be 64 hex digits");
      item.content_sha256 = *b;
    }
    if (!seen.insert(item.item_id).second) {
      return InvalidArgument("item id '" + item.item_id + "' appears twice");
    }
    dr.items.push_back(std::move(item));
  }
  dr.monitor = Bool(req, "monitor");
  dr.report_to = report_to;
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.cases->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(auto grant, d.RequireGrant(txn, grant_hex));
  const auto& g = grant.first.grant.grant;
  for (const auto& a : report_to) {
    keys::ScopeParty p;
    p.id = a;
    if (const schema::Party* party = d.dir().Find(a)) p.type = party->agency_type;
    if (!keys::MayReceive(g, p)) {
      return PermissionDenied("'report_to' agency " + a + " is not within the consent grant");
    }
  }
  dr.case_ref = g.case_ref;
  dr.signed_grant = schema::EncodeSignedConsentGrant(grant.first.grant);
  dr.operator_ref = op;
  dr.sent_at_ms = Impl::Now();
  std::string qid = HexEncode(dr.request_id);
  Json items = Json::object();
  for (const auto& i : dr.items) items[i.item_id] = "requested";
  CaseMessage m;
  m.type = CaseMessage::Type::kDeletionRequest;
  m.deletion_request = dr;
  REFBUS_ASSIGN_OR_RETURN(Bytes mid, d.SendCase(txn, grant.first, std::move(m), {to},
                                                Purpose::kDeletion, "deletion-request"));
  REFBUS_RETURN_IF_ERROR(txn.Put(Table::kDeletions, qid,
                                 {{"request_id", qid},
                                  {"case_ref", g.case_ref},
                                  {"side", "requester"},
                                  {"peer", to},
                                  {"grant_id", HexEncode(g.grant_id)},
                                  {"report_to", report_to},
                                  {"monitor", dr.monitor},
                                  {"items", items},
                                  {"report_seq", 0}}));
  REFBUS_RETURN_IF_ERROR(d.RecordShare(txn, grant.second, g.grant_id, to));
  REFBUS_RETURN_IF_ERROR(d.Timeline(
      txn, g.case_ref,
      {{"event", "deletion-sent"}, {"to", to}, {"request_id", qid}, {"items", dr.items.size()}}));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return Json{{"request_id", qid}, {"message_id", HexEncode(mid)}, {"case_ref", g.case_ref}};
}

Result<Json> Engine::Deletions() {
  REFBUS_ASSIGN_OR_RETURN(auto txn, impl_->cases->Begin(false));
  REFBUS_ASSIGN_OR_RETURN(auto all, txn.List(Table::kDeletions));
  Json out = Json::array();
  for (auto& [key, rec] : all) {
    if (!rec.contains("counts")) rec["counts"] = CountsJson(CountsOf(rec["items"]));
    out.push_back(rec);
  }
  return out;
}

Result<Json> Engine::ReportDeletionStatus(const std::string& request_id, const Json& req) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(std::string op, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(Bytes qid_bytes, IdOf("request id", request_id));
  std::string qid = HexEncode(qid_bytes);
  if (!req.contains("updates") || !req["updates"].is_array() || req["updates"].empty()) {
    return InvalidArgument("'updates' must list at least one {item_id, status}");
  }
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.cases->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(auto rec, txn.Get(Table::kDeletions, qid));
  if (!rec || (*rec)["side"] != "deletion-center") {
    return NotFound("no deletion request " + qid + " handled by this agency");
  }
  Json r = std::move(*rec);
  schema::DeletionStatusReport rep;
  rep.request_id = qid_bytes;
  rep.case_ref = r["case_ref"].get<std::string>();
  for (const auto& u : req["updates"]) {
    REFBUS_ASSIGN_OR_RETURN(std::string item, Str(u, "item_id"));
    REFBUS_ASSIGN_OR_RETURN(std::string st, Str(u, "status"));
    REFBUS_ASSIGN_OR_RETURN(auto status, EnumOf<schema::DeletionItemStatus>(
                                             "status", st, schema::ParseDeletionItemStatus));
    if (!r["items"].contains(item)) {
      return NotFound("item '" + item + "' is not in deletion request " + qid);
    }
    r["items"][item] = st;
    rep.updates.push_back({item, status, Impl::Now()});
  }
  rep.counts = CountsOf(r["items"]);
  rep.report_seq = r["report_seq"].get<uint64_t>() + 1;
  REFBUS_ASSIGN_OR_RETURN(auto grant, d.RequireGrant(txn, r["grant_id"].get<std::string>()));
  std::vector<std::string> to = {r["peer"].get<std::string>()};
  for (const auto& a : r["report_to"]) {
    if (std::find(to.begin(), to.end(), a.get<std::string>()) == to.end()) {
      to.push_back(a.get<std::string>());
    }
  }
  CaseMessage m;
  m.type = CaseMessage::Type::kDeletionStatus;
  m.deletion_status = rep;
  REFBUS_ASSIGN_OR_RETURN(Bytes mid, d.SendCase(txn, grant.first, std::move(m), to,
                                                Purpose::kDeletion, "deletion-status"));
  r["report_seq"] = rep.report_seq;
  r["counts"] = CountsJson(rep.counts);
  REFBUS_RETURN_IF_ERROR(txn.Put(Table::kDeletions, qid, r));
  REFBUS_RETURN_IF_ERROR(d.Timeline(txn, rep.case_ref,
                                    {{"event", "deletion-status-sent"},
                                     {"request_id", qid},
                                     {"report_seq", rep.report_seq},
                                     {"counts", CountsJson(rep.counts)},
                                     {"operator", op}}));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return Json{{"request_id", qid},
              {"report_seq", rep.report_seq},
              {"counts", CountsJson(rep.counts)},
              {"sent_to", to},
              {"message_id", HexEncode(mid)}};
}

// ---------------------------------------------------------------- revocation, closing

Result<Json> Engine::RevokeConsent(const std::string& grant_id, const Json& req) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(std::string op, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(std::string reason_s, Str(req, "reason"));
  REFBUS_ASSIGN_OR_RETURN(auto reason, EnumOf<schema::RevocationReason>(
                                           "reason", reason_s, schema::ParseRevocationReason));
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.cases->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(auto grant, d.RequireGrant(txn, grant_id));
  const auto& g = grant.first.grant.grant;
  if (g.recorded_by != d.me()) {
    return FailedPrecondition("grant " + grant_id + " was recorded by " + g.recorded_by +
                              "; only that agency can revoke it (ask them)");
  }
  if (grant.first.revoked) return FailedPrecondition("grant " + grant_id + " is already revoked");
  schema::ConsentRevocation rev{g.grant_id, g.case_ref, d.me(), reason, Impl::Now()};
  schema::SignedStatement st = keys::SignStatement(
      d.identity, keys::StatementType::kConsentRevocation, schema::EncodeConsentRevocation(rev));
  Bytes st_bytes = schema::EncodeSignedStatement(st);
  // First tell the recipients (still allowed after revocation), then the broker.
  std::vector<std::string> notified;
  for (const auto& a : grant.second.value("shared_with", Json::array())) {
    notified.push_back(a.get<std::string>());
  }
  if (!notified.empty()) {
    CaseMessage m;
    m.type = CaseMessage::Type::kConsentRevocation;
    m.statement = st;
    Purpose purpose = g.purposes.empty() ? Purpose::kUnspecified : g.purposes[0];
    REFBUS_RETURN_IF_ERROR(
        d.SendCase(txn, grant.first, std::move(m), notified, purpose, "consent-revocation")
            .status());
  }
  schema::Frame f;
  f.type = schema::Frame::Type::kGrantRevoke;
  f.grant_revoke.signed_revocation = st_bytes;
  REFBUS_RETURN_IF_ERROR(
      d.QueueControl(txn, StatementId(st_bytes), f, "grant-revocation", g.case_ref));
  REFBUS_RETURN_IF_ERROR(d.MarkRevoked(txn, rev, d.me()));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return Json{{"grant_id", HexEncode(g.grant_id)}, {"notified", notified}};
}

Result<Json> Engine::CloseCase(const std::string& case_ref_in, const Json& req) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(std::string op, OperatorOf(req));
  REFBUS_ASSIGN_OR_RETURN(std::string reason, Str(req, "reason", false));
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.cases->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(std::string case_ref, d.ResolveCase(txn, case_ref_in));
  REFBUS_ASSIGN_OR_RETURN(Json c, d.LoadCase(txn, case_ref));
  if (c["lead"] != d.me()) {
    return FailedPrecondition("case " + case_ref + " is led by " + c["lead"].get<std::string>() +
                              "; only the lead closes it");
  }
  if (c["closed"].get<bool>()) return FailedPrecondition("case " + case_ref + " is already closed");
  // Tell every agency involved, under the grant they were involved under.
  std::map<std::string, std::string> peers;  // agency -> grant
  for (Table t : {Table::kReferrals, Table::kHandoffs, Table::kDeletions}) {
    REFBUS_ASSIGN_OR_RETURN(auto all, txn.List(t));
    for (const auto& [k, r] : all) {
      if (r.value("case_ref", "") == case_ref) peers[r["peer"]] = r["grant_id"];
    }
  }
  std::vector<std::string> notified;
  for (const auto& [peer, grant_hex] : peers) {
    REFBUS_ASSIGN_OR_RETURN(auto grant, d.RequireGrant(txn, grant_hex));
    if (grant.first.revoked) continue;
    CaseMessage m;
    m.type = CaseMessage::Type::kCaseClosed;
    m.case_closed = {case_ref, d.me(), reason, op, Impl::Now()};
    const auto& g = grant.first.grant.grant;
    Purpose purpose = g.purposes.empty() ? Purpose::kUnspecified : g.purposes[0];
    auto sent = d.SendCase(txn, grant.first, std::move(m), {peer}, purpose, "case-closed");
    if (sent.ok()) {
      notified.push_back(peer);
    } else {
      spdlog::warn("agent {}: cannot tell {} that case {} closed: {}", d.me(), peer, case_ref,
                   sent.status().message());
    }
  }
  c["closed"] = true;
  c["closed_reason"] = reason;
  REFBUS_RETURN_IF_ERROR(txn.Put(Table::kCases, case_ref, c));
  REFBUS_RETURN_IF_ERROR(d.Timeline(
      txn, case_ref, {{"event", "case-closed"}, {"operator", op}, {"notified", notified}}));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return Json{{"case_ref", case_ref}, {"notified", notified}};
}

Result<Json> Engine::SetLocalCase(const std::string& case_ref_in, const Json& req) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(std::string local, Str(req, "local_case"));
  if (local.empty() || local.size() > 64) {
    return InvalidArgument("'local_case' must be 1 to 64 characters");
  }
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.cases->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(std::string case_ref, d.ResolveCase(txn, case_ref_in));
  REFBUS_ASSIGN_OR_RETURN(auto taken, txn.Get(Table::kLocal, local));
  if (taken && taken->at("case_ref") != case_ref) {
    return FailedPrecondition("local case number " + local + " is already used for " +
                              taken->at("case_ref").get<std::string>());
  }
  REFBUS_ASSIGN_OR_RETURN(Json c, d.LoadCase(txn, case_ref));
  if (c["local_case"] != "" && c["local_case"] != local) {
    REFBUS_RETURN_IF_ERROR(txn.Del(Table::kLocal, c["local_case"].get<std::string>()));
  }
  c["local_case"] = local;
  REFBUS_RETURN_IF_ERROR(txn.Put(Table::kLocal, local, {{"case_ref", case_ref}}));
  REFBUS_RETURN_IF_ERROR(txn.Put(Table::kCases, case_ref, c));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return Case(case_ref);
}

Result<Json> Engine::Case(const std::string& case_ref_in) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.cases->Begin(false));
  REFBUS_ASSIGN_OR_RETURN(std::string case_ref, d.ResolveCase(txn, case_ref_in));
  REFBUS_ASSIGN_OR_RETURN(Json c, d.LoadCase(txn, case_ref));
  for (auto [t, name] :
       {std::pair{Table::kReferrals, "referrals"}, std::pair{Table::kHandoffs, "handoffs"},
        std::pair{Table::kDeletions, "deletions"}}) {
    REFBUS_ASSIGN_OR_RETURN(auto all, txn.List(t));
    Json list = Json::array();
    for (const auto& [k, r] : all) {
      if (r.value("case_ref", "") == case_ref) list.push_back(r);
    }
    c[name] = list;
  }
  return c;
}

Result<Json> Engine::GetStatus() {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(auto counters, d.transport->Counters());
  return Json{{"agency", d.me()},
              {"broker", d.client->home_broker_id()},
              {"session_ready", d.client->session_ready()},
              {"outstanding", d.client->outstanding()},
              {"inbox", counters.inbox_messages},
              {"directory_serial", d.directory.directory.serial}};
}

}  // namespace refbus::agent
