// Engine: consent grants. Recording (signed here, registered with the broker), listing,
// revoking; grants that arrive with messages; revocations received and forwarded; and the
// purge of what arrived under a revoked grant, with its signed confirmation.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "agent/engine_impl.h"
#include "agent/engine_requests.h"
#include "core/file.h"
#include "core/hash.h"
#include "keys/consent.h"
#include "keys/keyfile.h"
#include "keys/secret.h"
#include "schema/codec.h"

namespace refbus::agent {

using schema::CaseMessage;
using schema::Purpose;

schema::Purpose StoredGrant::FirstPurpose() const {
  return grant().purposes.empty() ? Purpose::kUnspecified : grant().purposes[0];
}

namespace {}  // namespace

Result<KnownGrant> KnownFrom(const GrantRecord& rec) {
  KnownGrant k;
  REFBUS_ASSIGN_OR_RETURN(k.grant, schema::DecodeSignedConsentGrant(rec.signed_grant));
  k.revoked = rec.revoked;
  return k;
}

namespace {

std::string NewCaseRef() { return "case-" + HexEncode(keys::RandomBytes(6)); }

}  // namespace

Result<std::optional<KnownGrant>> Engine::Impl::LoadGrant(const CaseStore::Txn& txn,
                                                          ByteView grant_id) {
  REFBUS_ASSIGN_OR_RETURN(auto rec, Load<GrantRecord>(txn, HexEncode(grant_id)));
  if (!rec) return std::optional<KnownGrant>();
  REFBUS_ASSIGN_OR_RETURN(KnownGrant k, KnownFrom(*rec));
  return std::optional<KnownGrant>(std::move(k));
}

Result<StoredGrant> Engine::Impl::RequireGrant(const CaseStore::Txn& txn,
                                               const std::string& grant_hex) {
  REFBUS_ASSIGN_OR_RETURN(Bytes id, IdOf("grant_id", grant_hex));
  StoredGrant g;
  g.key = HexEncode(id);
  REFBUS_ASSIGN_OR_RETURN(auto rec, Load<GrantRecord>(txn, g.key));
  if (!rec) {
    return NotFound("consent grant " + grant_hex +
                    " is not known here; record it (refbus-agent consent) or use the grant a "
                    "referral came with");
  }
  REFBUS_ASSIGN_OR_RETURN(g.known, KnownFrom(*rec));
  g.record = std::move(*rec);
  return g;
}

Status Engine::Impl::RememberGrant(CaseStore::Txn& txn, const schema::SignedConsentGrant& g,
                                   const std::string& from) {
  std::string key = HexEncode(g.grant.grant_id);
  REFBUS_ASSIGN_OR_RETURN(auto rec, Load<GrantRecord>(txn, key));
  if (rec) return Status::Ok();
  GrantRecord r;
  r.signed_grant = schema::EncodeSignedConsentGrant(g);
  r.case_ref = g.grant.case_ref;
  r.recorded_here = false;
  r.received_from = from;
  r.revoked = false;
  REFBUS_RETURN_IF_ERROR(Save(txn, key, r));
  return AddGrantToCase(txn, g.grant.case_ref, key);
}

Status Engine::Impl::RecordShare(CaseStore::Txn& txn, StoredGrant& grant, const std::string& to) {
  auto& sw = grant.record.shared_with;
  if (std::find(sw.begin(), sw.end(), to) == sw.end()) sw.push_back(to);
  return Save(txn, grant.key, grant.record);
}

Status Engine::Impl::MarkRevoked(CaseStore::Txn& txn, const schema::ConsentRevocation& rev,
                                 const std::string& from) {
  std::string key = HexEncode(rev.grant_id);
  REFBUS_ASSIGN_OR_RETURN(auto rec, Load<GrantRecord>(txn, key));
  if (!rec) return NotFound("revocation of unknown grant " + key);
  GrantRecord& g = *rec;
  if (g.revoked) return Status::Ok();
  g.revoked = true;
  g.revoked_at_ms = rev.revoked_at_ms;
  g.revocation_reason = std::string(schema::Name(rev.reason));
  g.purge_pending = !g.recorded_here;
  REFBUS_RETURN_IF_ERROR(Save(txn, key, g));
  // Open referrals under the grant are withdrawn.
  REFBUS_ASSIGN_OR_RETURN(auto refs, LoadAll<ReferralRecord>(txn));
  for (auto& [rid, r] : refs) {
    if (r.grant_id != key || IsFinal(r.state)) continue;
    r.history.push_back({r.state, schema::ReferralState::kWithdrawn, from, std::nullopt,
                         CaseText{kRevokedWords, std::nullopt}, Now(), std::nullopt});
    r.state = schema::ReferralState::kWithdrawn;
    r.updated_at_ms = Now();
    REFBUS_RETURN_IF_ERROR(Save(txn, rid, r));
  }
  TimelineEvent ev = Event("consent-revoked");
  ev.by = from;
  ev.grant_id = key;
  ev.reason = std::string(schema::Name(rev.reason));
  REFBUS_RETURN_IF_ERROR(Timeline(txn, rev.case_ref, std::move(ev)));
  // Watching for re-uploads ends explicitly (PROTOCOL.md 10.3).
  return EndWatching(txn, key, std::string(schema::Name(rev.reason)), from);
}

// Passes the recorder's signed revocation on to the agencies this agency shared data
// with under the grant (onward sharing), except those that already know.
Status Engine::Impl::ForwardRevocation(CaseStore::Txn& txn,
                                       const schema::SignedStatement& statement,
                                       const schema::ConsentRevocation& rev,
                                       const std::set<std::string>& skip) {
  REFBUS_ASSIGN_OR_RETURN(auto rec, Load<GrantRecord>(txn, HexEncode(rev.grant_id)));
  if (!rec) return Status::Ok();
  REFBUS_ASSIGN_OR_RETURN(KnownGrant known, KnownFrom(*rec));
  std::vector<std::string> to;
  for (const auto& id : rec->shared_with) {
    if (skip.count(id) == 0 && id != me()) to.push_back(id);
  }
  if (to.empty()) return Status::Ok();
  CaseMessage m;
  m.type = CaseMessage::Type::kConsentRevocation;
  m.statement = statement;
  const auto& g = known.grant.grant;
  Purpose purpose = g.purposes.empty() ? Purpose::kUnspecified : g.purposes[0];
  REFBUS_RETURN_IF_ERROR(
      SendCase(txn, known, std::move(m), to, purpose, "consent-revocation-forward").status());
  TimelineEvent ev = Event("consent-revocation-forwarded");
  ev.to_agencies = to;
  return Timeline(txn, rev.case_ref, std::move(ev));
}

// The grant's recorder revoked it (the statement may come forwarded by another agency).
Status Engine::Impl::OnRevocation(CaseStore::Txn& txn, const OpenedCase& oc) {
  const auto& h = oc.envelope.header;
  const std::string& from = h.sender_id;
  const CaseMessage& m = oc.message;
  REFBUS_ASSIGN_OR_RETURN(auto rev, schema::DecodeConsentRevocation(m.statement.statement));
  const std::string& recorder = oc.grant.grant.recorded_by;
  if (rev.revoked_by != recorder || rev.grant_id != h.consent_grant_id) {
    return PermissionDenied("revocation of grant " + HexEncode(rev.grant_id) + " signed by " +
                            rev.revoked_by + ", not by its recorder " + recorder);
  }
  // Signed by the recorder, whoever forwarded it.
  REFBUS_RETURN_IF_ERROR(VerifyStatementFrom(m.statement, keys::StatementType::kConsentRevocation,
                                             recorder, rev.revoked_at_ms));
  REFBUS_RETURN_IF_ERROR(MarkRevoked(txn, rev, from));
  REFBUS_RETURN_IF_ERROR(WithdrawLinkage(txn, HexEncode(rev.grant_id), oc.grant.grant.case_ref));
  return ForwardRevocation(txn, m.statement, rev, {recorder, from});
}

// An agency this agency shared with purged what it held under a revoked grant.
Status Engine::Impl::OnPurgeConfirmation(CaseStore::Txn& txn, const OpenedCase& oc) {
  const std::string& from = oc.envelope.header.sender_id;
  const CaseMessage& m = oc.message;
  REFBUS_ASSIGN_OR_RETURN(auto pc, schema::DecodePurgeConfirmation(m.statement.statement));
  if (pc.agency_id != from) {
    return PermissionDenied("purge confirmation for " + pc.agency_id + " sent by " + from);
  }
  REFBUS_RETURN_IF_ERROR(VerifyStatementFrom(m.statement, keys::StatementType::kPurgeConfirmation,
                                             from, pc.purged_at_ms));
  REFBUS_ASSIGN_OR_RETURN(CaseRecord c, LoadCase(txn, pc.case_ref));
  c.purge_confirmations.push_back(
      {HexEncode(pc.grant_id), pc.agency_id, pc.messages_purged, pc.purged_at_ms});
  REFBUS_RETURN_IF_ERROR(Save(txn, pc.case_ref, c));
  TimelineEvent ev = Event("purge-confirmed");
  ev.from = from;
  ev.messages_purged = pc.messages_purged;
  return Timeline(txn, pc.case_ref, std::move(ev));
}

// Purges what arrived under revoked grants, then confirms (signed) to the recorder and
// to the broker's audit log. Idempotent: rerun after a crash at any point.
Status Engine::Impl::RunPendingPurges() {
  std::vector<std::pair<std::string, GrantRecord>> grants;
  std::vector<std::pair<std::string, MessageRecord>> msgs;
  {
    // One LMDB transaction per thread at a time: this read ends before any write.
    REFBUS_ASSIGN_OR_RETURN(auto rtxn, case_store->Begin(false));
    REFBUS_ASSIGN_OR_RETURN(grants, LoadAll<GrantRecord>(rtxn));
    bool pending = false;
    for (const auto& [k, g] : grants) pending = pending || g.purge_pending.value_or(false);
    if (!pending) return Status::Ok();
    REFBUS_ASSIGN_OR_RETURN(msgs, LoadAll<MessageRecord>(rtxn));
  }
  for (const auto& [gkey, g] : grants) {
    if (!g.purge_pending.value_or(false)) continue;
    REFBUS_RETURN_IF_ERROR(PurgeGrant(gkey, g, msgs, "consent revoked"));
  }
  return Status::Ok();
}

Status Engine::Impl::PurgeGrant(const std::string& gkey, const GrantRecord& g,
                                const std::vector<std::pair<std::string, MessageRecord>>& msgs,
                                const std::string& why) {
  std::vector<Bytes> ids;
  std::vector<std::string> hex_ids;
  for (const auto& [mkey, m] : msgs) {
    if (m.grant_id.value_or("") != gkey) continue;
    REFBUS_ASSIGN_OR_RETURN(Bytes id, HexDecode(mkey));
    ids.push_back(std::move(id));
    hex_ids.push_back(mkey);
  }
  REFBUS_ASSIGN_OR_RETURN(size_t n, transport_store->PurgeInbox(ids, Now()));
  // Crypto-shredding: the text sealed under the grant's key becomes unreadable everywhere.
  REFBUS_RETURN_IF_ERROR(grant_keys->Destroy(gkey));
  spdlog::info(
      "agent {}: purged {} messages under grant {} ({}; {} newly) and destroyed its data key", me(),
      ids.size(), gkey, why, n);
  std::sort(ids.begin(), ids.end());
  Bytes concat;
  for (const auto& id : ids) Append(concat, id);
  REFBUS_ASSIGN_OR_RETURN(Bytes grant_id, HexDecode(gkey));
  schema::PurgeConfirmation pc{
      grant_id, g.case_ref, me(), Now(), static_cast<uint32_t>(ids.size()), Sha256(concat)};
  schema::SignedStatement st = keys::SignStatement(
      identity, keys::StatementType::kPurgeConfirmation, schema::EncodePurgeConfirmation(pc));
  Bytes st_bytes = schema::EncodeSignedStatement(st);
  REFBUS_ASSIGN_OR_RETURN(auto txn, case_store->Begin(true));
  // Attestation for the broker's audit log.
  schema::Frame f;
  f.type = schema::Frame::Type::kAttest;
  f.attest.signed_purge = st_bytes;
  REFBUS_RETURN_IF_ERROR(
      QueueControl(txn, StatementId(st_bytes), f, "purge-attestation", pc.case_ref));
  // And the confirmation to the recording agency.
  REFBUS_ASSIGN_OR_RETURN(auto known, LoadGrant(txn, grant_id));
  if (known && known->grant.grant.recorded_by != me()) {
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
    REFBUS_ASSIGN_OR_RETURN(auto m, Load<MessageRecord>(txn, mk));
    if (!m) continue;
    m->status = MessageStatus::kPurged;
    REFBUS_RETURN_IF_ERROR(Save(txn, mk, *m));
  }
  GrantRecord gg = g;
  gg.purge_pending = false;
  gg.purged_messages = ids.size();
  gg.purged_at_ms = pc.purged_at_ms;
  REFBUS_RETURN_IF_ERROR(Save(txn, gkey, gg));
  TimelineEvent ev = Event("purged");
  ev.grant_id = gkey;
  ev.reason = why;
  ev.messages_purged = ids.size();
  REFBUS_RETURN_IF_ERROR(Timeline(txn, pc.case_ref, std::move(ev)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  FlushAfterCommit();
  return Status::Ok();
}

// ---- commands ----

namespace {

// An emergency override's second signature, by an operator key the administrator put in
// <data_dir>/operator-keys/.
Status Countersign(schema::SignedConsentGrant& signed_grant, const ConsentRequest& req,
                   const std::string& data_dir) {
  REFBUS_RETURN_IF_ERROR(req.countersigner_error);
  const std::string& key_name = req.countersigner_key;
  const std::string& cs_op = req.countersigner_operator;
  if (key_name.empty() || cs_op.empty()) {
    return FailedPrecondition(
        "an emergency override needs a second operator's countersignature: give "
        "'countersigner_key' and 'countersigner_operator'");
  }
  if (cs_op == req.operator_ref) {
    return FailedPrecondition("the countersigner must be a second operator");
  }
  // Only key files the administrator put in <data_dir>/operator-keys/ are read: the API
  // must not become a way to read arbitrary files.
  bool plain =
      key_name.size() <= 64 && key_name[0] != '.' &&
      std::all_of(key_name.begin(), key_name.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.';
      });
  if (!plain) return InvalidArgument("'countersigner_key' must be a file name in operator-keys/");
  std::string key_file = data_dir + "/operator-keys/" + key_name;
  REFBUS_RETURN_IF_ERROR(CheckPrivateFile(key_file));
  REFBUS_ASSIGN_OR_RETURN(keys::Identity cs, keys::LoadIdentity(key_file, nullptr));
  return keys::Countersign(signed_grant, cs_op, cs);
}

}  // namespace

Result<Json> Engine::RecordConsent(const Json& body) {
  REFBUS_ASSIGN_OR_RETURN(schema::SignedConsentGrant signed_grant, PrepareConsent(body));
  if (keys::IsEmergencyOverride(signed_grant.grant)) {
    REFBUS_ASSIGN_OR_RETURN(ConsentRequest req, ParseConsentRequest(body));
    REFBUS_RETURN_IF_ERROR(Countersign(signed_grant, req, impl_->options.data_dir));
  }
  return CommitConsent(body, signed_grant);
}

Result<schema::SignedConsentGrant> Engine::PrepareConsent(const Json& body) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(ConsentRequest req, ParseConsentRequest(body));
  schema::ConsentGrant g = req.grant;
  g.grant_id = keys::RandomBytes(schema::kGrantIdBytes);
  g.case_ref = req.case_ref;
  if (g.case_ref.empty() && !req.local_case.empty()) {
    // A read transaction of its own, ended before any write (one per thread).
    REFBUS_ASSIGN_OR_RETURN(auto txn0, d.case_store->Begin(false));
    REFBUS_ASSIGN_OR_RETURN(auto l, Load<LocalCaseRecord>(txn0, req.local_case));
    if (l) g.case_ref = l->case_ref;
  }
  if (g.case_ref.empty()) g.case_ref = NewCaseRef();
  g.recorded_by = d.me();
  UnixMillis now = Impl::Now();
  g.issued_at_ms = now;
  g.expires_at_ms = req.expires_in_ms > 0
                        ? now + static_cast<UnixMillis>(req.expires_in_ms)
                        : now + static_cast<UnixMillis>(req.valid_days) * kMillisPerDay;
  g.retention_until_ms = req.retention_in_ms > 0
                             ? now + static_cast<UnixMillis>(req.retention_in_ms)
                             : now + static_cast<UnixMillis>(req.retention_days) * kMillisPerDay;
  return keys::SignConsentGrant(d.identity, g);
}

Result<Json> Engine::CommitConsent(const Json& body,
                                   const schema::SignedConsentGrant& signed_grant) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(ConsentRequest req, ParseConsentRequest(body));
  const schema::ConsentGrant& g = signed_grant.grant;
  const bool emergency = keys::IsEmergencyOverride(g);
  REFBUS_RETURN_IF_ERROR(keys::VerifyConsentGrant(signed_grant, d.dir(), Impl::Now()));
  GrantRecord rec;
  rec.signed_grant = schema::EncodeSignedConsentGrant(signed_grant);
  rec.case_ref = g.case_ref;
  rec.recorded_here = true;
  rec.operator_ref = req.operator_ref;
  rec.revoked = false;
  rec.registered = false;
  std::string key = HexEncode(g.grant_id);
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(true));
  REFBUS_RETURN_IF_ERROR(Save(txn, key, rec));
  REFBUS_ASSIGN_OR_RETURN(CaseRecord c, d.LoadCase(txn, g.case_ref));
  if (c.lead.empty()) c.lead = d.me();
  if (!req.local_case.empty()) {
    c.local_case = req.local_case;
    REFBUS_RETURN_IF_ERROR(Save(txn, req.local_case, LocalCaseRecord{g.case_ref}));
  }
  REFBUS_RETURN_IF_ERROR(Save(txn, g.case_ref, c));
  REFBUS_RETURN_IF_ERROR(d.AddGrantToCase(txn, g.case_ref, key));
  schema::Frame f;
  f.type = schema::Frame::Type::kGrantRegister;
  f.grant_register.signed_grant = rec.signed_grant;
  REFBUS_RETURN_IF_ERROR(d.QueueControl(txn, g.grant_id, f, "grant-registration", g.case_ref));
  TimelineEvent ev = Event("consent-recorded");
  ev.grant_id = key;
  ev.basis = std::string(schema::Name(g.basis));
  ev.operator_ref = req.operator_ref;
  ev.emergency_override = emergency;
  REFBUS_RETURN_IF_ERROR(d.Timeline(txn, g.case_ref, std::move(ev)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return ToJson(ConsentRecorded{key, g.case_ref, req.local_case, g.expires_at_ms, emergency});
}

Result<Json> Engine::Consents() {
  REFBUS_ASSIGN_OR_RETURN(auto txn, impl_->case_store->Begin(false));
  REFBUS_ASSIGN_OR_RETURN(auto all, LoadAll<GrantRecord>(txn));
  Json out = Json::array();
  for (const auto& [key, rec] : all) {
    REFBUS_ASSIGN_OR_RETURN(KnownGrant k, KnownFrom(rec));
    out.push_back(GrantJson(key, k.grant.grant, rec));
  }
  return out;
}

Result<Json> Engine::RevokeConsent(const std::string& grant_id, const Json& body) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(RevokeRequest req, ParseRevokeRequest(body));
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(StoredGrant grant, d.RequireGrant(txn, grant_id));
  const auto& g = grant.grant();
  if (g.recorded_by != d.me()) {
    return FailedPrecondition("grant " + grant_id + " was recorded by " + g.recorded_by +
                              "; only that agency can revoke it (ask them)");
  }
  if (grant.known.revoked) return FailedPrecondition("grant " + grant_id + " is already revoked");
  schema::ConsentRevocation rev{g.grant_id, g.case_ref, d.me(), req.reason, Impl::Now()};
  schema::SignedStatement st = keys::SignStatement(
      d.identity, keys::StatementType::kConsentRevocation, schema::EncodeConsentRevocation(rev));
  st.operator_signature =
      d.SignAsOperator(keys::OperatorAction::kConsentRevocation, st.statement, req.operator_ref);
  Bytes st_bytes = schema::EncodeSignedStatement(st);
  // First tell the recipients (still allowed after revocation), then the broker.
  std::vector<std::string> notified = grant.record.shared_with;
  if (!notified.empty()) {
    CaseMessage m;
    m.type = CaseMessage::Type::kConsentRevocation;
    m.statement = st;
    REFBUS_RETURN_IF_ERROR(d.SendCase(txn, grant.known, std::move(m), notified,
                                      grant.FirstPurpose(), "consent-revocation")
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
  return NotifiedJson("grant_id", HexEncode(g.grant_id), notified);
}

}  // namespace refbus::agent
