// Store::Commit (broker/store.h): one write transaction per Batch, one function per kind of
// batch, applied in the order the contract gives: grant registrations and revocations,
// then envelopes, acks, control queue ends, re-routes, audit-only events, witness
// decisions and cosignatures. The byte layouts are in broker/store_records.h.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>

#include "broker/store.h"
#include "broker/store_records.h"
#include "keys/consent.h"
#include "keys/crypto.h"
#include "keys/operator_signature.h"
#include "schema/codec.h"

namespace refbus::broker {

using records::DecodeRecord;
using records::DecodeTombstone;
using records::EncodeGrantRecord;
using records::EncodeRecord;
using records::EncodeTombstone;
using records::ExpiryKey;
using records::GetU64;
using records::Key;
using records::LoadGrant;
using records::MailboxKey;
using records::PutU64;
using records::Record;
using records::ServesFor;
using records::ServesRecipients;
using records::Tombstone;
using records::ValueIs;

// One Commit's write transaction, audit writer, sequence counter and result. Lives for
// one Commit call on the writer thread; a friend of Store for its databases and helpers.
class CommitTxn {
 public:
  CommitTxn(Store& store, lmdb::Txn& txn, AuditWriter& audit, uint64_t next_seq, UnixMillis now)
      : store_(store), txn_(txn), audit_(audit), next_seq_(next_seq), now_(now) {}

  Status Grants(const std::vector<GrantRegistration>& grants);
  Status Revocations(const std::vector<GrantRevocation>& revocations,
                     const std::vector<std::string>& peers);
  Status Envelopes(std::vector<Accepted>& accepted);
  Status Acks(const std::vector<RecipientAck>& acks);
  Status ControlEnds(const std::vector<ControlEnd>& ends);
  Status Reroutes(const std::vector<Reroute>& reroutes);
  // Copied, not moved: after a failed transaction (storage full) the caller commits the
  // same events again.
  Status Events(const std::vector<schema::AuditEntry>& events);
  Status Witness(const Batch& batch);
  Status Prekeys(const std::vector<PrekeyPublication>& prekeys,
                 const std::vector<std::string>& peers);
  Status Cosignatures(const std::vector<CheckpointCosignature>& cosignatures);

  uint64_t next_seq() const { return next_seq_; }
  CommitResult& result() { return result_; }

 private:
  // Appends e with its index, time and this broker's id.
  Status Audit(schema::AuditEntry e);
  Status AddGrant(const GrantRegistration& r);
  Status Revoke(const GrantRevocation& r, const std::vector<std::string>& peers);
  // The revocation of a grant not registered here, passed on by a peer broker. Sets newly
  // when it was not already kept.
  Status UnknownGrantRevocation(const GrantRevocation& r, ControlOutcome& out, bool& newly);
  Status StoreEnvelope(Accepted& a, size_t index);
  // Whether a's bytes (SHA-256 mine) are the ones held under its message id (seen: that
  // id's "seen" value). held_sha256 is set to the held envelope's hash when it is known.
  Result<bool> SameAsHeld(const Accepted& a, const Bytes& mine, ByteView seen, Bytes& held_sha256);
  // Refuses a, whose message id is held with other bytes: ID_REUSED, audited.
  Status IdReused(const Accepted& a, size_t index, const Bytes& held_sha256);
  // A message held already, with the same bytes: a mailbox it never had (a relay for a
  // recipient re-routed here) is added, if it serves one of the envelope's own recipients;
  // nothing is stored twice for the same mailbox.
  Status Duplicate(Accepted& a);
  // The refusal of a's scope by its consent grant, if any.
  Result<std::optional<keys::ScopeRefusal>> GrantScopeRefusal(const Accepted& a);
  // Why storing in targets would pass a quota ("" if it would not).
  Result<std::string> QuotaRefusal(const std::vector<std::string>& targets,
                                   const std::string& sender);
  Status ApplyAck(const RecipientAck& ack);
  // Adds the entries of rr's targets that are not pending yet; added lists them.
  Status RerouteOne(const broker::Reroute& rr);
  // Decrements a mailbox's depth counter (never below 0).
  Status DecrementDepth(const std::string& mailbox);

  Store& store_;
  lmdb::Txn& txn_;
  AuditWriter& audit_;
  uint64_t next_seq_;
  const UnixMillis now_;
  CommitResult result_;
};

Status CommitTxn::Audit(schema::AuditEntry e) {
  e.index = audit_.size();
  e.time_ms = now_;
  e.broker_id = store_.options_.broker_id;
  return audit_.Append(schema::EncodeAuditEntry(e));
}

Status CommitTxn::DecrementDepth(const std::string& mailbox) {
  REFBUS_ASSIGN_OR_RETURN(uint64_t depth, GetU64(txn_, store_.counts_, AsBytes(mailbox)));
  return PutU64(txn_, store_.counts_, AsBytes(mailbox), depth > 0 ? depth - 1 : 0);
}

// ---- Consent -------------------------------------------------------------------------

Status CommitTxn::Grants(const std::vector<GrantRegistration>& grants) {
  for (const GrantRegistration& r : grants) REFBUS_RETURN_IF_ERROR(AddGrant(r));
  return Status::Ok();
}

Status CommitTxn::AddGrant(const GrantRegistration& r) {
  const schema::ConsentGrant& g = r.decoded.grant;
  ControlOutcome out;
  REFBUS_ASSIGN_OR_RETURN(auto existing, LoadGrant(txn_, store_.grants_, g.grant_id));
  if (existing) {
    if (existing->grant.grant_bytes == r.decoded.grant_bytes) {
      out.ok = true;
      out.duplicate = true;
    } else {
      out.reason = schema::NackReason::kConsentOutOfScope;
      out.detail =
          "grant id " + HexEncode(g.grant_id) + " is already registered with other content";
    }
    result_.grants.push_back(std::move(out));
    return Status::Ok();
  }
  // A revocation that arrived (from a peer broker) before the grant: applied now, when
  // the grant's own recorder signed it for this case.
  std::optional<Tombstone> tomb;
  {
    auto t = txn_.Get(store_.tombstones_, g.grant_id);
    if (!t.ok() && t.status().code() != Status::Code::kNotFound) return t.status();
    if (t.ok()) tomb = DecodeTombstone(*t);
    if (tomb && (tomb->revoked_by != g.recorded_by || tomb->case_ref != g.case_ref)) {
      tomb.reset();
    }
  }
  REFBUS_RETURN_IF_ERROR(txn_.Put(
      store_.grants_, g.grant_id,
      EncodeGrantRecord(r.signed_grant, tomb.has_value(), tomb ? tomb->revoked_at_ms : 0)));
  schema::AuditEntry e;
  e.event = schema::AuditEvent::kConsentGranted;
  e.actor = r.actor;
  e.sender_id = g.recorded_by;
  e.case_ref = g.case_ref;
  e.consent_grant_id = g.grant_id;
  e.directory_serial = r.directory_serial;
  e.statement_sha256 = Sha256(r.signed_grant);
  e.emergency_override = keys::IsEmergencyOverride(g);
  e.recipients = g.allowed_recipients;
  e.detail = "basis " + std::string(schema::Name(g.basis)) +
             (g.legal_article.empty() ? "" : " (" + g.legal_article + ")") + "; expires " +
             FormatUtc(g.expires_at_ms);
  if (e.emergency_override || !r.decoded.countersignatures.empty()) {
    // Each countersigner with its key's fingerprint, which an auditor matches against the
    // agency's signed operator roster (refbus-audit overrides --roster): the two of an
    // override, or the operator who recorded an ordinary grant ("NAME (recorded)").
    e.detail +=
        e.emergency_override ? "; EMERGENCY OVERRIDE countersigned by" : "; countersigned by";
    for (const auto& c : r.decoded.countersignatures) {
      bool valid = keys::VerifySignature(c.public_key, keys::kLabelConsentCountersign,
                                         r.decoded.grant_bytes, c.signature);
      e.detail += " " + c.operator_ref + " [key " +
                  keys::Fingerprint(keys::KeyId(keys::KeyUse::kSigning, c.public_key)) +
                  (valid ? "]" : ", INVALID SIGNATURE]");
    }
  }
  REFBUS_RETURN_IF_ERROR(Audit(std::move(e)));
  if (tomb) {
    schema::AuditEntry rv;
    rv.event = schema::AuditEvent::kConsentRevoked;
    rv.actor = r.actor;
    rv.sender_id = g.recorded_by;
    rv.case_ref = g.case_ref;
    rv.consent_grant_id = g.grant_id;
    rv.directory_serial = r.directory_serial;
    rv.detail =
        "revoked at " + FormatUtc(tomb->revoked_at_ms) + ", before this broker saw the grant";
    REFBUS_RETURN_IF_ERROR(Audit(std::move(rv)));
  }
  out.ok = true;
  result_.grants.push_back(std::move(out));
  return Status::Ok();
}

Status CommitTxn::Revocations(const std::vector<GrantRevocation>& revocations,
                              const std::vector<std::string>& peers) {
  for (const GrantRevocation& r : revocations) REFBUS_RETURN_IF_ERROR(Revoke(r, peers));
  return Status::Ok();
}

namespace {

// The CONSENT_REVOKED audit entry of a revocation, with detail (the two places that record
// one differ only there).
schema::AuditEntry RevokedEntry(const GrantRevocation& r, std::string detail) {
  const schema::ConsentRevocation& rev = r.revocation;
  schema::AuditEntry e;
  e.event = schema::AuditEvent::kConsentRevoked;
  e.actor = r.actor;
  e.sender_id = rev.revoked_by;
  e.case_ref = rev.case_ref;
  e.consent_grant_id = rev.grant_id;
  e.directory_serial = r.directory_serial;
  e.statement_sha256 = r.statement_sha256;
  e.detail = std::move(detail);
  // The revoking operator (PROTOCOL.md 9.2): named, with key, signature and the signed
  // bytes, where the statement carries a signature that verifies (checked at admission;
  // again here for revocations a peer broker passed on).
  auto st = schema::DecodeSignedStatement(r.signed_statement);
  if (st.ok() && st->operator_signature &&
      !keys::IsServiceOperator(st->operator_signature->operator_ref) &&
      keys::VerifyOperatorSignature(keys::OperatorAction::kConsentRevocation, st->statement,
                                    *st->operator_signature)) {
    e.operator_ref = st->operator_signature->operator_ref;
    e.operator_public_key = st->operator_signature->public_key;
    e.operator_signature = st->operator_signature->signature;
    e.operator_statement = st->statement;
  }
  return e;
}

}  // namespace

Status CommitTxn::UnknownGrantRevocation(const GrantRevocation& r, ControlOutcome& out,
                                         bool& newly) {
  const schema::ConsentRevocation& rev = r.revocation;
  // Passed on by a peer broker for a grant this broker never saw: kept, so that the
  // grant is registered revoked if an envelope brings it later.
  auto t = txn_.Get(store_.tombstones_, rev.grant_id);
  if (!t.ok() && t.status().code() != Status::Code::kNotFound) return t.status();
  out.ok = true;
  out.duplicate = t.ok();
  if (t.ok()) return Status::Ok();
  REFBUS_RETURN_IF_ERROR(txn_.Put(store_.tombstones_, rev.grant_id, EncodeTombstone(rev)));
  REFBUS_RETURN_IF_ERROR(
      Audit(RevokedEntry(r, "reason " + std::string(schema::Name(rev.reason)) +
                                "; grant not registered here: kept, refused if it arrives")));
  newly = true;
  return Status::Ok();
}

Status CommitTxn::Revoke(const GrantRevocation& r, const std::vector<std::string>& peers) {
  const schema::ConsentRevocation& rev = r.revocation;
  ControlOutcome out;
  REFBUS_ASSIGN_OR_RETURN(auto existing, LoadGrant(txn_, store_.grants_, rev.grant_id));
  bool newly = false;
  if (!existing && r.via_peer) {
    REFBUS_RETURN_IF_ERROR(UnknownGrantRevocation(r, out, newly));
  } else if (!existing) {
    out.reason = schema::NackReason::kConsentOutOfScope;
    out.detail = "grant " + HexEncode(rev.grant_id) + " is not registered at this broker";
  } else if (existing->grant.grant.recorded_by != rev.revoked_by ||
             existing->grant.grant.case_ref != rev.case_ref) {
    out.reason = schema::NackReason::kConsentOutOfScope;
    out.detail = "only the recording agency " + existing->grant.grant.recorded_by +
                 " may revoke grant " + HexEncode(rev.grant_id) + ", for its own case";
  } else if (existing->revoked) {
    out.ok = true;
    out.duplicate = true;
  } else {
    REFBUS_RETURN_IF_ERROR(
        txn_.Put(store_.grants_, rev.grant_id,
                 EncodeGrantRecord(existing->signed_grant, true, rev.revoked_at_ms)));
    REFBUS_RETURN_IF_ERROR(
        Audit(RevokedEntry(r, "reason " + std::string(schema::Name(rev.reason)))));
    out.ok = true;
    newly = true;
  }
  // Every other broker is told, in this same transaction (its control queue).
  if (newly && !r.signed_statement.empty()) {
    for (const auto& peer : peers) {
      if (peer == r.actor) continue;
      REFBUS_RETURN_IF_ERROR(
          txn_.Put(store_.ctlq_, MailboxKey(peer, ++next_seq_), r.signed_statement));
    }
  }
  if (!out.ok) {
    schema::AuditEntry e;
    e.event = schema::AuditEvent::kEnvelopeRejected;
    e.actor = r.actor;
    e.case_ref = rev.case_ref;
    e.consent_grant_id = rev.grant_id;
    e.directory_serial = r.directory_serial;
    e.statement_sha256 = r.statement_sha256;
    e.reason = out.reason;
    e.detail = "consent revocation refused: " + out.detail;
    REFBUS_RETURN_IF_ERROR(Audit(std::move(e)));
  }
  result_.revocations.push_back(std::move(out));
  return Status::Ok();
}

// ---- Published prekeys ----------------------------------------------------------------

Status CommitTxn::Prekeys(const std::vector<PrekeyPublication>& prekeys,
                          const std::vector<std::string>& peers) {
  for (const auto& p : prekeys) {
    bool newer = true;
    auto held = txn_.Get(store_.prekeys_, AsBytes(p.owner));
    if (held.ok()) {
      // A damaged record is replaced (the new prekey is checked; the old one cannot be).
      auto body = records::OpenSealedRecord(*held, 1);
      auto sp = body.ok() ? schema::DecodeSignedPrekey(*body)
                          : Result<schema::SignedPrekey>(body.status());
      newer = !sp.ok() || sp->prekey.not_before_ms < p.not_before_ms;
    } else if (held.status().code() != Status::Code::kNotFound) {
      return held.status();
    }
    result_.prekeys_stored.push_back(newer);
    if (!newer) continue;
    REFBUS_RETURN_IF_ERROR(
        txn_.Put(store_.prekeys_, AsBytes(p.owner), records::SealRecord(p.signed_prekey)));
    schema::AuditEntry e;
    e.event = schema::AuditEvent::kPrekeyPublished;
    e.actor = p.actor;
    e.sender_id = p.owner;
    e.directory_serial = p.directory_serial;
    e.statement_sha256 = Sha256(p.signed_prekey);
    e.detail = p.detail;
    REFBUS_RETURN_IF_ERROR(Audit(std::move(e)));
    if (p.via_peer) continue;  // a full mesh: the owner's home broker tells every peer
    Bytes queued{records::kPrekeyControlTag};
    Append(queued, p.signed_prekey);
    for (const auto& peer : peers) {
      REFBUS_RETURN_IF_ERROR(txn_.Put(store_.ctlq_, MailboxKey(peer, ++next_seq_), queued));
    }
  }
  return Status::Ok();
}

// ---- Envelopes -----------------------------------------------------------------------

Status CommitTxn::Envelopes(std::vector<Accepted>& accepted) {
  result_.refusals.resize(accepted.size());
  for (size_t i = 0; i < accepted.size(); ++i)
    REFBUS_RETURN_IF_ERROR(StoreEnvelope(accepted[i], i));
  return Status::Ok();
}

Status CommitTxn::Duplicate(Accepted& a) {
  const schema::EnvelopeHeader& h = a.decoded->header;
  auto stored =
      a.mailboxes.empty() ? Result<ByteView>(NotFound("")) : txn_.Get(store_.msgs_, h.message_id);
  if (!stored.ok() && stored.status().code() != Status::Code::kNotFound) {
    return stored.status();
  }
  if (!stored.ok()) return Status::Ok();
  Bytes copy(stored->begin(), stored->end());
  auto rec = DecodeRecord(copy, h.message_id);
  if (!rec.ok()) return Status::Ok();
  auto mboxes = rec->mailboxes;
  for (const auto& t : a.mailboxes) {
    bool had = false;
    for (const auto& [m, seq] : mboxes) had = had || m == t;
    if (had) continue;
    if (!ServesRecipients(h, t, ServesFor(a.serves, t))) {
      // Intake routes by the envelope's own header, so this is a bug, not a peer's doing.
      spdlog::critical(
          "duplicate of message {} names mailbox {}, which serves none of its "
          "recipients: not added",
          HexEncode(h.message_id), t);
      continue;
    }
    uint64_t seq = ++next_seq_;
    REFBUS_RETURN_IF_ERROR(
        store_.AddEntry(txn_, t, seq, h.message_id, ServesFor(a.serves, t), rec->sender));
    mboxes.emplace_back(t, seq);
    a.added.push_back(t);
  }
  if (a.added.empty()) return Status::Ok();
  REFBUS_RETURN_IF_ERROR(txn_.Put(store_.msgs_, h.message_id,
                                  EncodeRecord(rec->accepted_ms, rec->expires_ms, rec->hops,
                                               rec->sender, mboxes, rec->envelope)));
  schema::AuditEntry e = EnvelopeAudit(schema::AuditEvent::kEnvelopeAccepted, *a.decoded,
                                       a.envelope, a.actor, a.directory_serial);
  e.detail = "already held; added mailbox";
  for (const auto& t : a.added) e.detail += " " + t;
  if (!a.audit_detail.empty()) e.detail += "; " + a.audit_detail;
  return Audit(std::move(e));
}

Result<bool> CommitTxn::SameAsHeld(const Accepted& a, const Bytes& mine, ByteView seen,
                                   Bytes& held_sha256) {
  if (seen.size() == records::kSeenBytes) {
    held_sha256.assign(seen.begin() + 8, seen.end());
    return held_sha256 == mine;
  }
  // A "seen" value written before it carried the hash: compared with the held record,
  // if any. Without one nothing can be re-addressed (a duplicate adds mailboxes only to a
  // held record), so it stays the plain duplicate it always was.
  const Bytes& id = a.decoded->header.message_id;
  auto stored = txn_.Get(store_.msgs_, id);
  if (!stored.ok()) {
    if (stored.status().code() != Status::Code::kNotFound) return stored.status();
    return true;
  }
  auto rec = DecodeRecord(*stored, id);
  if (!rec.ok()) return true;  // damaged: quarantined by its reader, adds nothing
  held_sha256 = Sha256(rec->envelope);
  return held_sha256 == mine;
}

Status CommitTxn::IdReused(const Accepted& a, size_t index, const Bytes& held_sha256) {
  std::string detail =
      "message id " + HexEncode(a.decoded->header.message_id) + " is already held with other bytes";
  if (!held_sha256.empty()) detail += " (held envelope sha256 " + HexEncode(held_sha256) + ")";
  schema::AuditEntry e = EnvelopeAudit(schema::AuditEvent::kEnvelopeRejected, *a.decoded,
                                       a.envelope, a.actor, a.directory_serial);
  e.reason = schema::NackReason::kIdReused;
  e.detail = detail;
  if (!a.audit_detail.empty()) e.detail += "; " + a.audit_detail;
  // Like every refusal in the commit: past the peer's allowance, counted into an aggregate
  // entry (broker/refusals.h) instead, so a party re-signing held ids cannot flood the log.
  if (a.audit_refusal) REFBUS_RETURN_IF_ERROR(Audit(std::move(e)));
  result_.accepted.push_back(Outcome::kRefused);
  result_.refusals[index] = keys::ScopeRefusal{schema::NackReason::kIdReused, std::move(detail)};
  return Status::Ok();
}

Result<std::optional<keys::ScopeRefusal>> CommitTxn::GrantScopeRefusal(const Accepted& a) {
  const schema::EnvelopeHeader& h = a.decoded->header;
  if (h.consent_grant_id.empty()) return std::optional<keys::ScopeRefusal>();
  REFBUS_ASSIGN_OR_RETURN(auto grant, LoadGrant(txn_, store_.grants_, h.consent_grant_id));
  if (!grant) {
    return std::optional<keys::ScopeRefusal>(keys::ScopeRefusal{
        schema::NackReason::kConsentOutOfScope,
        "consent grant " + HexEncode(h.consent_grant_id) + " is not registered at this broker"});
  }
  return keys::CheckScope(grant->grant.grant, grant->revoked, a.scope, now_);
}

Result<std::string> CommitTxn::QuotaRefusal(const std::vector<std::string>& targets,
                                            const std::string& sender) {
  std::string full;
  for (const auto& t : targets) {
    REFBUS_ASSIGN_OR_RETURN(uint64_t depth, GetU64(txn_, store_.counts_, AsBytes(t)));
    if (depth >= store_.options_.mailbox_quota) {
      full = "mailbox of " + t + " is full";
      result_.quota_recipient = t;
    }
    // One sender may not take a mailbox for itself: others keep their share.
    REFBUS_ASSIGN_OR_RETURN(uint64_t mine,
                            GetU64(txn_, store_.sender_counts_, records::SenderKey(sender, t)));
    if (full.empty() && mine >= store_.options_.sender_quota) {
      full = sender + " already has " + std::to_string(mine) + " envelopes waiting in " +
             "the mailbox of " + t + " (limits.sender_quota)";
      result_.quota_recipient = t;
    }
  }
  return full;
}

Status CommitTxn::StoreEnvelope(Accepted& a, size_t index) {
  const schema::EnvelopeHeader& h = a.decoded->header;
  // Hashed once here, for the "seen" value, the duplicate check and the entry (accepted or
  // refused).
  Bytes sha256 = Sha256(a.envelope);
  auto seen = txn_.Get(store_.seen_, h.message_id);
  if (seen.ok()) {
    // Only the very same bytes are a duplicate: another envelope under a held id is
    // refused before it can touch the held one (issue 17: it re-addressed it).
    Bytes held_sha256;
    REFBUS_ASSIGN_OR_RETURN(bool same, SameAsHeld(a, sha256, *seen, held_sha256));
    if (!same) return IdReused(a, index, held_sha256);
    REFBUS_RETURN_IF_ERROR(Duplicate(a));
    result_.accepted.push_back(Outcome::kDuplicate);
    return Status::Ok();
  }
  if (seen.status().code() != Status::Code::kNotFound) return seen.status();
  REFBUS_ASSIGN_OR_RETURN(std::optional<keys::ScopeRefusal> refusal, GrantScopeRefusal(a));
  if (refusal) {
    schema::AuditEntry e = EnvelopeAudit(schema::AuditEvent::kEnvelopeRejected, *a.decoded, sha256,
                                         a.envelope.size(), a.actor, a.directory_serial);
    e.reason = refusal->reason;
    e.detail = refusal->detail;
    if (a.audit_refusal) REFBUS_RETURN_IF_ERROR(Audit(std::move(e)));
    result_.accepted.push_back(Outcome::kRefused);
    result_.refusals[index] = std::move(*refusal);
    return Status::Ok();
  }
  std::vector<std::string> targets = a.mailboxes;
  if (targets.empty()) {
    for (const auto& r : h.recipients) targets.push_back(r.agency_id);
  }
  REFBUS_ASSIGN_OR_RETURN(std::string full, QuotaRefusal(targets, h.sender_id));
  if (!full.empty()) {
    // Back-pressure: nothing stored, the sender retries; the refusal is on record.
    schema::AuditEntry e = EnvelopeAudit(schema::AuditEvent::kEnvelopeRejected, *a.decoded, sha256,
                                         a.envelope.size(), a.actor, a.directory_serial);
    e.reason = schema::NackReason::kQuotaExceeded;
    e.detail = full;
    if (a.audit_refusal) REFBUS_RETURN_IF_ERROR(Audit(std::move(e)));
    result_.accepted.push_back(Outcome::kQuotaExceeded);
    result_.refusals[index] = keys::ScopeRefusal{schema::NackReason::kQuotaExceeded, full};
    return Status::Ok();
  }
  std::vector<std::pair<std::string, uint64_t>> mailboxes;
  for (const auto& t : targets) {
    uint64_t seq = ++next_seq_;
    mailboxes.emplace_back(t, seq);
    REFBUS_RETURN_IF_ERROR(
        store_.AddEntry(txn_, t, seq, h.message_id, ServesFor(a.serves, t), h.sender_id));
  }
  Bytes record = EncodeRecord(now_, h.expires_at_ms, a.hops, h.sender_id, mailboxes, a.envelope);
  REFBUS_RETURN_IF_ERROR(txn_.Put(store_.msgs_, h.message_id, record));
  REFBUS_RETURN_IF_ERROR(
      txn_.Put(store_.seen_, h.message_id, records::SeenValue(h.expires_at_ms, sha256)));
  REFBUS_RETURN_IF_ERROR(txn_.Put(store_.expiry_, ExpiryKey(h.expires_at_ms, h.message_id), {}));
  schema::AuditEntry accepted =
      EnvelopeAudit(schema::AuditEvent::kEnvelopeAccepted, *a.decoded, std::move(sha256),
                    a.envelope.size(), a.actor, a.directory_serial);
  accepted.detail = a.audit_detail;
  REFBUS_RETURN_IF_ERROR(Audit(std::move(accepted)));
  result_.accepted.push_back(Outcome::kStored);
  return Status::Ok();
}

// ---- Mailbox entry ends --------------------------------------------------------------

Status CommitTxn::Acks(const std::vector<RecipientAck>& acks) {
  for (const RecipientAck& ack : acks) REFBUS_RETURN_IF_ERROR(ApplyAck(ack));
  return Status::Ok();
}

namespace {

// The audit entry for the end of a mailbox entry.
schema::AuditEntry AckAudit(const RecipientAck& ack) {
  schema::AuditEntry e;
  switch (ack.kind) {
    case RecipientAck::Kind::kAcked:
      e.event = schema::AuditEvent::kEnvelopeAcked;
      break;
    case RecipientAck::Kind::kForwarded:
      // The next broker committed it: from here on it is that broker's to deliver.
      e.event = schema::AuditEvent::kEnvelopeForwarded;
      e.detail = "committed by broker " + ack.recipient;
      break;
    case RecipientAck::Kind::kRefusedByPeer:
      // Refused for good by the next broker (its own checks): kept no longer, on record.
      e.event = schema::AuditEvent::kEnvelopeRejected;
      e.reason = ack.reason;
      e.detail = "refused by broker " + ack.recipient + ": " + ack.detail;
      break;
    case RecipientAck::Kind::kQuarantined:
      e.event = schema::AuditEvent::kEnvelopeQuarantined;
      e.detail = ack.detail.substr(0, 512);
      break;
  }
  e.actor = ack.recipient;
  e.message_id = ack.message_id;
  e.recipients = {ack.recipient};
  return e;
}

}  // namespace

Status CommitTxn::ApplyAck(const RecipientAck& ack) {
  Bytes key = MailboxKey(ack.recipient, ack.seq);
  auto v = txn_.Get(store_.mbox_, key);
  if (!v.ok() || !ValueIs(*v, ack.message_id)) {
    if (!v.ok() && v.status().code() != Status::Code::kNotFound) return v.status();
    result_.acks_applied.push_back(false);
    return Status::Ok();
  }
  REFBUS_RETURN_IF_ERROR(txn_.Del(store_.mbox_, key));
  REFBUS_RETURN_IF_ERROR(DecrementDepth(ack.recipient));
  if (ack.kind == RecipientAck::Kind::kQuarantined) {
    // The damaged bytes stay (evidence) until the expiry sweep; the entry is kept aside.
    REFBUS_RETURN_IF_ERROR(txn_.Put(store_.quarantine_, key, AsBytes(ack.detail.substr(0, 512))));
  } else {
    // The sender's share of the mailbox, and the record once no entry holds it any more
    // (a damaged record: both left as they are, for the reader's quarantine and the
    // expiry sweep).
    auto stored = txn_.Get(store_.msgs_, ack.message_id);
    if (stored.ok()) {
      auto rec = DecodeRecord(*stored, ack.message_id);  // its envelope view is not used
      if (rec.ok()) {
        REFBUS_RETURN_IF_ERROR(store_.AdjustSender(txn_, rec->sender, ack.recipient, -1));
        REFBUS_ASSIGN_OR_RETURN(bool held,
                                store_.StillQueued(txn_, rec->mailboxes, ack.message_id));
        if (!held) REFBUS_RETURN_IF_ERROR(txn_.Del(store_.msgs_, ack.message_id));
      }
    } else if (stored.status().code() != Status::Code::kNotFound) {
      return stored.status();
    }
  }
  REFBUS_RETURN_IF_ERROR(Audit(AckAudit(ack)));
  result_.acks_applied.push_back(true);
  return Status::Ok();
}

Status CommitTxn::ControlEnds(const std::vector<ControlEnd>& ends) {
  for (const ControlEnd& c : ends) {
    Status d = txn_.Del(store_.ctlq_, MailboxKey(c.peer, c.seq));
    if (!d.ok() && d.code() != Status::Code::kNotFound) return d;
    if (c.refused && d.ok()) {
      schema::AuditEntry e;
      e.event = schema::AuditEvent::kEnvelopeRejected;
      e.actor = c.peer;
      e.reason = c.reason;
      e.detail = "consent revocation refused by broker " + c.peer + ": " + c.detail;
      REFBUS_RETURN_IF_ERROR(Audit(std::move(e)));
    }
  }
  return Status::Ok();
}

// Re-routing after a directory moved recipients: each entry leaves its mailbox for the
// targets; a target that still has a pending entry of this message is skipped (that entry
// carries the recipient too).
Status CommitTxn::Reroutes(const std::vector<broker::Reroute>& reroutes) {
  for (const broker::Reroute& rr : reroutes) REFBUS_RETURN_IF_ERROR(RerouteOne(rr));
  return Status::Ok();
}

Status CommitTxn::RerouteOne(const broker::Reroute& rr) {
  Bytes key = MailboxKey(rr.from, rr.seq);
  auto v = txn_.Get(store_.mbox_, key);
  if (!v.ok() || !ValueIs(*v, rr.message_id)) {
    if (!v.ok() && v.status().code() != Status::Code::kNotFound) return v.status();
    result_.reroutes_applied.push_back(false);
    return Status::Ok();
  }
  auto stored = txn_.Get(store_.msgs_, rr.message_id);
  if (!stored.ok()) {
    if (stored.status().code() != Status::Code::kNotFound) return stored.status();
    result_.reroutes_applied.push_back(false);
    return Status::Ok();
  }
  Bytes copy(stored->begin(), stored->end());
  auto rec = DecodeRecord(copy, rr.message_id);
  if (!rec.ok()) {  // damaged: left where it is, reported by the reader
    result_.reroutes_applied.push_back(false);
    return Status::Ok();
  }
  if (!rr.keep) {
    REFBUS_RETURN_IF_ERROR(txn_.Del(store_.mbox_, key));
    REFBUS_RETURN_IF_ERROR(DecrementDepth(rr.from));
    REFBUS_RETURN_IF_ERROR(store_.AdjustSender(txn_, rec->sender, rr.from, -1));
  }
  auto mboxes = rec->mailboxes;
  std::vector<std::string> added;
  for (const auto& t : rr.to) {
    if (t == rr.from) continue;
    bool pending = false;
    for (const auto& [m, seq] : mboxes) {
      if (m != t) continue;
      auto e = txn_.Get(store_.mbox_, MailboxKey(m, seq));
      if (e.ok()) pending = true;
      if (!e.ok() && e.status().code() != Status::Code::kNotFound) return e.status();
    }
    if (pending || std::find(added.begin(), added.end(), t) != added.end()) continue;
    uint64_t seq = ++next_seq_;
    REFBUS_RETURN_IF_ERROR(
        store_.AddEntry(txn_, t, seq, rr.message_id, ServesFor(rr.serves, t), rec->sender));
    mboxes.emplace_back(t, seq);
    added.push_back(t);
  }
  REFBUS_ASSIGN_OR_RETURN(bool held, store_.StillQueued(txn_, mboxes, rr.message_id));
  if (!held) {
    REFBUS_RETURN_IF_ERROR(txn_.Del(store_.msgs_, rr.message_id));
  } else if (!added.empty()) {
    REFBUS_RETURN_IF_ERROR(txn_.Put(store_.msgs_, rr.message_id,
                                    EncodeRecord(rec->accepted_ms, rec->expires_ms, rec->hops,
                                                 rec->sender, mboxes, rec->envelope)));
  }
  schema::AuditEntry e;
  e.event = schema::AuditEvent::kEnvelopeRerouted;
  e.actor = rr.from;
  e.message_id = rr.message_id;
  e.recipients = added;
  e.directory_serial = rr.directory_serial;
  e.detail = "directory serial " + std::to_string(rr.directory_serial) +
             (rr.keep ? " added a route beside " : " moved it out of ") + rr.from +
             (added.empty() ? "; already queued where it goes" : "");
  REFBUS_RETURN_IF_ERROR(Audit(std::move(e)));
  result_.reroutes_applied.push_back(true);
  return Status::Ok();
}

// ---- Audit-only events, witnessing ---------------------------------------------------

Status CommitTxn::Events(const std::vector<schema::AuditEntry>& events) {
  for (const auto& e : events) REFBUS_RETURN_IF_ERROR(Audit(e));
  return Status::Ok();
}

// As a witness: each request decided against the state as the earlier ones left it.
Status CommitTxn::Witness(const Batch& batch) {
  for (const WitnessItem& w : batch.witness) {
    auto decided = store_.DecideWitnessInTxn(txn_, w, batch, now_);
    if (!decided.ok()) {
      const Status::Code code = decided.status().code();
      if (code != Status::Code::kMalformed && code != Status::Code::kInternal &&
          code != Status::Code::kInvalidArgument) {
        return decided.status();  // the store itself failed: nothing of this batch commits
      }
      WitnessOutcome failed;
      failed.error = decided.status();
      result_.witness.push_back(std::move(failed));
      continue;
    }
    WitnessOutcome out = std::move(*decided);
    if (out.verdict != keys::WitnessVerdict::kCosign &&
        out.verdict != keys::WitnessVerdict::kConflict) {
      // A refusal is on record; a conflict is the protocol's ordinary "retry from here".
      schema::AuditEntry e;
      e.event = schema::AuditEvent::kWitnessRefused;
      e.actor = w.requester;
      e.directory_serial = w.directory_serial;
      e.detail = "refused to cosign a checkpoint of " + w.origin + " (" +
                 std::string(keys::Name(out.verdict)) + "): " + out.detail;
      if (out.evidence) e.detail += "; evidence record " + std::to_string(*out.evidence) + " kept";
      if (e.detail.size() > 2048) e.detail.resize(2048);
      REFBUS_RETURN_IF_ERROR(Audit(std::move(e)));
    }
    result_.witness.push_back(std::move(out));
  }
  return Status::Ok();
}

Status CommitTxn::Cosignatures(const std::vector<CheckpointCosignature>& cosignatures) {
  for (const CheckpointCosignature& c : cosignatures) {
    result_.cosignatures.push_back(
        AddCheckpointCosignature(txn_, store_.audit_dbs_, c.size, c.root, c.signature));
    const Status& st = result_.cosignatures.back();
    if (!st.ok() && st.code() != Status::Code::kNotFound &&
        st.code() != Status::Code::kFailedPrecondition) {
      return st;  // the store itself failed
    }
  }
  return Status::Ok();
}

// ---- Store::Commit -------------------------------------------------------------------

Result<CommitResult> Store::Commit(Batch& batch, UnixMillis now) {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginWrite());
  REFBUS_ASSIGN_OR_RETURN(uint64_t next_seq, GetU64(txn, meta_, Key("next_seq")));
  REFBUS_ASSIGN_OR_RETURN(AuditWriter audit, AuditWriter::Begin(txn, audit_dbs_));
  CommitTxn c(*this, txn, audit, next_seq, now);
  REFBUS_RETURN_IF_ERROR(c.Grants(batch.grants));
  REFBUS_RETURN_IF_ERROR(c.Revocations(batch.revocations, batch.revocation_peers));
  REFBUS_RETURN_IF_ERROR(c.Prekeys(batch.prekeys, batch.revocation_peers));
  REFBUS_RETURN_IF_ERROR(c.Envelopes(batch.accepted));
  REFBUS_RETURN_IF_ERROR(c.Acks(batch.acks));
  REFBUS_RETURN_IF_ERROR(c.ControlEnds(batch.control_ends));
  REFBUS_RETURN_IF_ERROR(c.Reroutes(batch.reroutes));
  REFBUS_RETURN_IF_ERROR(c.Events(batch.events));
  REFBUS_RETURN_IF_ERROR(PutRosterVersions(txn, batch.roster_versions));
  REFBUS_RETURN_IF_ERROR(c.Witness(batch));
  REFBUS_RETURN_IF_ERROR(c.Cosignatures(batch.cosignatures));
  REFBUS_RETURN_IF_ERROR(PutU64(txn, meta_, Key("next_seq"), c.next_seq()));
  REFBUS_RETURN_IF_ERROR(audit.Finish());
  if (!batch.accepted.empty() || !batch.grants.empty() || !batch.revocations.empty()) {
    REFBUS_RETURN_IF_ERROR(CheckHeadroom(txn));
  }
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  CommitResult result = std::move(c.result());
  result.audit_size = audit.size();
  return result;
}

size_t StorageHeadroomBytes(size_t map_size_bytes) {
  return std::max<size_t>(map_size_bytes / 16, size_t{2} << 20);
}

Status Store::CheckHeadroom(const lmdb::Txn& txn) const {
  const MDB_dbi tables[] = {meta_,
                            msgs_,
                            mbox_,
                            seen_,
                            expiry_,
                            counts_,
                            audit_,
                            grants_,
                            witness_,
                            evidence_,
                            ctlq_,
                            tombstones_,
                            quarantine_,
                            sender_counts_,
                            prekeys_,
                            audit_dbs_.tree,
                            audit_dbs_.checkpoints};
  REFBUS_ASSIGN_OR_RETURN(uint64_t used, txn.BytesInUse(tables));
  const size_t map = options_.map_size_bytes;
  const size_t keep = StorageHeadroomBytes(map);
  if (used + keep <= map) return Status::Ok();
  return ResourceExhausted("storage headroom: " + std::to_string(used >> 20) + " MiB of the " +
                           std::to_string(map >> 20) + " MiB map in use; the last " +
                           std::to_string(keep >> 20) +
                           " MiB are kept for acknowledgements, which free room");
}

// ---- Witness decisions ---------------------------------------------------------------

Result<WitnessOutcome> Store::DecideWitnessInTxn(lmdb::Txn& txn, const WitnessItem& item,
                                                 const Batch& batch, UnixMillis now) {
  std::optional<keys::WitnessState> last;
  auto stored = txn.Get(witness_, AsBytes(item.origin));
  if (stored.ok()) {
    auto decoded = keys::DecodeWitnessState(*stored);
    // A damaged state must not be mistaken for "never cosigned": that would cosign anything.
    if (!decoded.ok()) return decoded.status().WithContext("witness state of " + item.origin);
    if (decoded->origin != item.origin) {
      return Malformed("witness state stored under " + item.origin + " names " + decoded->origin);
    }
    last = std::move(*decoded);
  } else if (stored.status().code() != Status::Code::kNotFound) {
    return stored.status();
  }
  std::vector<keys::Hash> proof;
  for (const Bytes& h : item.request.consistency_proof) {
    keys::Hash hash;
    std::copy(h.begin(), h.end(), hash.begin());  // the codec checked 32 bytes
    proof.push_back(hash);
  }
  keys::WitnessDecision d =
      keys::DecideWitness(last ? &*last : nullptr, item.request.checkpoint, item.origin,
                          item.log_keys, item.request.old_size, proof);
  WitnessOutcome out;
  out.verdict = d.verdict;
  out.detail = d.detail;
  out.witness_size = d.witness_size;
  out.checkpoint = d.checkpoint;
  if (d.verdict == keys::WitnessVerdict::kCosign) {
    if (batch.witness_signer.identity == nullptr) {
      return Internal("a witness request reached the store without a witness key");
    }
    REFBUS_ASSIGN_OR_RETURN(
        keys::Cosigned c, keys::CosignDecided(d, item.request.checkpoint, batch.witness_signer.name,
                                              *batch.witness_signer.identity, now / 1000));
    // The state first, in this transaction: the line is handed out only after the commit.
    REFBUS_RETURN_IF_ERROR(
        txn.Put(witness_, AsBytes(item.origin), keys::EncodeWitnessState(c.state)));
    out.cosignature = std::move(c.line);
    out.witness_size = c.state.size;
  } else if (d.verdict == keys::WitnessVerdict::kInconsistent) {
    keys::WitnessEvidence e;
    e.origin = item.origin;
    e.requester = item.requester;
    e.time_ms = now;
    e.cosigned_note = last ? last->note : std::string();
    e.offered_note = item.request.checkpoint;
    e.old_size = item.request.old_size;
    e.proof = std::move(proof);
    e.detail = d.detail;
    uint64_t number = 0;
    {
      REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor cur, lmdb::Cursor::Open(txn, evidence_));
      REFBUS_ASSIGN_OR_RETURN(auto item_last, cur.Last());
      if (item_last) {
        if (item_last->key.size() != 8)
          return Malformed("store: an evidence key has the wrong length");
        number = lmdb::ReadU64Key(item_last->key) + 1;
      }
    }
    REFBUS_RETURN_IF_ERROR(
        txn.Put(evidence_, lmdb::U64Key(number), keys::EncodeWitnessEvidence(e), MDB_NOOVERWRITE));
    out.evidence = number;
  }
  return out;
}

}  // namespace refbus::broker
