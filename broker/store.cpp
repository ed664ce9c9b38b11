#include "broker/store.h"

#include <openssl/sha.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <map>
#include <optional>

#include "keys/consent.h"
#include "schema/codec.h"

namespace refbus::broker {
namespace {

// Format 2 adds the audit Merkle tree and checkpoints (audit_log.h); format 1 stores are
// upgraded at Open. A binary that knows only format 1 refuses a format 2 store instead of
// appending entries without tree nodes.
constexpr uint8_t kRecordVersion = 1;
// Envelope records since federation: version 2 adds the hop count after the expiry.
constexpr uint8_t kEnvelopeRecordV2 = 2;
constexpr size_t kHashBytes = SHA256_DIGEST_LENGTH;

ByteView Key(std::string_view s) { return AsBytes(s); }

Bytes MailboxKey(const std::string& recipient, uint64_t seq) {
  Bytes k(recipient.begin(), recipient.end());
  k.push_back(0);
  AppendU64BigEndian(k, seq);
  return k;
}

// A mailbox entry's value: the message id, then for a link mailbox the recipients the
// entry is carried for (count, then length-prefixed ids).
Bytes MailboxValue(ByteView message_id, const std::vector<std::string>* serves) {
  Bytes v(message_id.begin(), message_id.end());
  if (serves != nullptr && !serves->empty()) {
    v.push_back(static_cast<uint8_t>(serves->size()));
    for (const auto& r : *serves) {
      v.push_back(static_cast<uint8_t>(r.size()));
      Append(v, AsBytes(r));
    }
  }
  return v;
}

bool ValueIs(ByteView value, ByteView message_id) {
  return value.size() >= message_id.size() &&
         std::memcmp(value.data(), message_id.data(), message_id.size()) == 0;
}

Result<std::vector<std::string>> ServesOf(ByteView value) {
  std::vector<std::string> out;
  if (value.size() <= schema::kMessageIdBytes) return out;
  size_t pos = schema::kMessageIdBytes;
  size_t n = value[pos++];
  for (size_t i = 0; i < n; ++i) {
    if (pos >= value.size()) return Malformed("store: a mailbox entry is truncated");
    size_t len = value[pos++];
    if (value.size() - pos < len) return Malformed("store: a mailbox entry is truncated");
    out.emplace_back(AsChars(value.subspan(pos, len)));
    pos += len;
  }
  return out;
}

const std::vector<std::string>* ServesFor(const std::map<std::string, std::vector<std::string>>& m,
                                          const std::string& target) {
  auto it = m.find(target);
  return it == m.end() ? nullptr : &it->second;
}

// "sender_counts" keys: sender \0 mailbox -> envelopes from sender waiting in mailbox.
Bytes SenderKey(const std::string& sender, const std::string& mailbox) {
  Bytes k(sender.begin(), sender.end());
  k.push_back(0);
  Append(k, AsBytes(mailbox));
  return k;
}

// "revoked_unknown" values: revoked_by, case_ref (length-prefixed), revoked_at.
Bytes EncodeTombstone(const schema::ConsentRevocation& r) {
  Bytes v;
  v.push_back(static_cast<uint8_t>(r.revoked_by.size()));
  Append(v, AsBytes(r.revoked_by));
  v.push_back(static_cast<uint8_t>(r.case_ref.size()));
  Append(v, AsBytes(r.case_ref));
  AppendU64BigEndian(v, r.revoked_at_ms);
  return v;
}

struct Tombstone {
  std::string revoked_by;
  std::string case_ref;
  UnixMillis revoked_at_ms = 0;
};

std::optional<Tombstone> DecodeTombstone(ByteView v) {
  Tombstone t;
  size_t pos = 0;
  for (std::string* out : {&t.revoked_by, &t.case_ref}) {
    if (pos >= v.size()) return std::nullopt;
    size_t len = v[pos++];
    if (v.size() - pos < len) return std::nullopt;
    *out = std::string(AsChars(v.subspan(pos, len)));
    pos += len;
  }
  if (v.size() - pos != 8) return std::nullopt;
  t.revoked_at_ms = lmdb::ReadU64Key(v.subspan(pos));
  return t;
}

// Visits the entries of a queue keyed "owner \0 u64be seq" (mailboxes, control queues) with
// seq > after_seq, in order, until fn returns false or max were visited.
template <typename Fn>
Status ScanQueue(const lmdb::Txn& txn, MDB_dbi dbi, const std::string& owner, uint64_t after_seq,
                 size_t max, Fn fn) {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor cur, lmdb::Cursor::Open(txn, dbi));
  Bytes start = MailboxKey(owner, after_seq + 1);
  REFBUS_ASSIGN_OR_RETURN(auto item, cur.Seek(start));
  const size_t prefix = owner.size() + 1;
  for (size_t n = 0; item && n < max; ++n) {
    ByteView k = item->key;
    if (k.size() != prefix + 8 || std::memcmp(k.data(), start.data(), prefix) != 0) break;
    REFBUS_ASSIGN_OR_RETURN(bool more, fn(lmdb::ReadU64Key(k.subspan(prefix)), item->value));
    if (!more) break;
    REFBUS_ASSIGN_OR_RETURN(item, cur.Next());
  }
  return Status::Ok();
}

Bytes ExpiryKey(uint64_t expires, ByteView message_id) {
  Bytes k;
  AppendU64BigEndian(k, expires);
  Append(k, message_id);
  return k;
}

Result<uint64_t> GetU64(const lmdb::Txn& txn, MDB_dbi dbi, ByteView key) {
  auto v = txn.Get(dbi, key);
  if (!v.ok()) {
    if (v.status().code() == Status::Code::kNotFound) return uint64_t{0};
    return v.status();
  }
  if (v->size() != 8) return Malformed("store: a counter has the wrong size");
  return lmdb::ReadU64Key(*v);
}

Status PutU64(lmdb::Txn& txn, MDB_dbi dbi, ByteView key, uint64_t v) {
  Bytes b = lmdb::U64Key(v);
  return txn.Put(dbi, key, b);
}

// A stored envelope record, decoded.
struct Record {
  UnixMillis accepted_ms = 0;
  UnixMillis expires_ms = 0;
  std::vector<std::pair<std::string, uint64_t>> mailboxes;  // recipient, seq
  ByteView envelope;                                        // into the stored bytes
  uint8_t hops = 0;                                         // brokers it passed before this one
  std::string sender;  // the envelope's sender (per-sender quotas); empty in version 1
};

Bytes EncodeRecord(UnixMillis accepted, UnixMillis expires, uint8_t hops, const std::string& sender,
                   const std::vector<std::pair<std::string, uint64_t>>& mailboxes,
                   ByteView envelope) {
  Bytes body;
  body.reserve(64 + envelope.size());
  body.push_back(kEnvelopeRecordV2);
  AppendU64BigEndian(body, accepted);
  AppendU64BigEndian(body, expires);
  body.push_back(hops);
  body.push_back(static_cast<uint8_t>(sender.size()));
  Append(body, AsBytes(sender));
  body.push_back(static_cast<uint8_t>(mailboxes.size() >> 8));
  body.push_back(static_cast<uint8_t>(mailboxes.size()));
  for (const auto& [r, seq] : mailboxes) {
    body.push_back(static_cast<uint8_t>(r.size()));
    Append(body, AsBytes(r));
    AppendU64BigEndian(body, seq);
  }
  AppendLengthPrefixed(body, envelope);
  Bytes out = Sha256(body);
  Append(out, body);
  return out;
}

Result<Record> DecodeRecord(ByteView stored, ByteView message_id) {
  auto damaged = [&](std::string_view why) {
    return Malformed("stored envelope " + HexEncode(message_id) + " is damaged (" +
                     std::string(why) + "); it will not be delivered");
  };
  if (stored.size() < kHashBytes + 1) return damaged("too short");
  ByteView body = stored.subspan(kHashBytes);
  Bytes h = Sha256(body);
  if (std::memcmp(h.data(), stored.data(), kHashBytes) != 0) return damaged("hash mismatch");
  size_t pos = 0;
  auto need = [&](size_t n) { return body.size() - pos >= n; };
  auto u64 = [&]() {
    uint64_t v = lmdb::ReadU64Key(body.subspan(pos, 8));
    pos += 8;
    return v;
  };
  if (!need(1 + 16 + 2) || (body[0] != kRecordVersion && body[0] != kEnvelopeRecordV2)) {
    return damaged("unknown record version");
  }
  const bool v2 = body[0] == kEnvelopeRecordV2;
  pos = 1;
  Record r;
  r.accepted_ms = u64();
  r.expires_ms = u64();
  if (v2) {
    if (!need(2)) return damaged("truncated");
    r.hops = body[pos++];
    size_t slen = body[pos++];
    if (!need(slen + 2)) return damaged("truncated");
    r.sender = std::string(AsChars(body.subspan(pos, slen)));
    pos += slen;
  }
  size_t n = (size_t{body[pos]} << 8) | body[pos + 1];
  pos += 2;
  for (size_t i = 0; i < n; ++i) {
    if (!need(1)) return damaged("truncated");
    size_t len = body[pos++];
    if (!need(len + 8)) return damaged("truncated");
    std::string id(AsChars(body.subspan(pos, len)));
    pos += len;
    r.mailboxes.emplace_back(std::move(id), u64());
  }
  if (!need(4)) return damaged("truncated");
  uint32_t elen = (uint32_t{body[pos]} << 24) | (uint32_t{body[pos + 1]} << 16) |
                  (uint32_t{body[pos + 2]} << 8) | body[pos + 3];
  pos += 4;
  if (body.size() - pos != elen) return damaged("wrong length");
  r.envelope = body.subspan(pos, elen);
  return r;
}

// A stored grant: SHA-256(body) || body, body = u8 version || u8 revoked ||
// u64be revoked_at_ms || signed grant bytes.
Bytes EncodeGrantRecord(ByteView signed_grant, bool revoked, UnixMillis revoked_at) {
  Bytes body;
  body.reserve(10 + signed_grant.size());
  body.push_back(kRecordVersion);
  body.push_back(revoked ? 1 : 0);
  AppendU64BigEndian(body, revoked_at);
  Append(body, signed_grant);
  Bytes out = Sha256(body);
  Append(out, body);
  return out;
}

Result<GrantState> DecodeGrantRecord(ByteView stored, ByteView grant_id) {
  auto damaged = [&](std::string_view why) {
    return Malformed("stored consent grant " + HexEncode(grant_id) + " is damaged (" +
                     std::string(why) + ")");
  };
  if (stored.size() < kHashBytes + 10) return damaged("too short");
  ByteView body = stored.subspan(kHashBytes);
  Bytes h = Sha256(body);
  if (std::memcmp(h.data(), stored.data(), kHashBytes) != 0) return damaged("hash mismatch");
  if (body[0] != kRecordVersion || body[1] > 1) return damaged("unknown record version");
  GrantState g;
  g.revoked = body[1] == 1;
  g.revoked_at_ms = lmdb::ReadU64Key(body.subspan(2, 8));
  g.signed_grant.assign(body.begin() + 10, body.end());
  auto decoded = schema::DecodeSignedConsentGrant(g.signed_grant);
  if (!decoded.ok()) return damaged("grant does not decode");
  g.grant = std::move(*decoded);
  return g;
}

Result<std::optional<GrantState>> LoadGrant(lmdb::Txn& txn, MDB_dbi dbi, ByteView grant_id) {
  auto v = txn.Get(dbi, grant_id);
  if (!v.ok()) {
    if (v.status().code() == Status::Code::kNotFound) return std::optional<GrantState>();
    return v.status();
  }
  REFBUS_ASSIGN_OR_RETURN(GrantState g, DecodeGrantRecord(*v, grant_id));
  return std::optional<GrantState>(std::move(g));
}

}  // namespace

Bytes Sha256(ByteView bytes) {
  Bytes out(SHA256_DIGEST_LENGTH);
  SHA256(bytes.data(), bytes.size(), out.data());
  return out;
}

Result<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  std::unique_ptr<Store> s(new Store());
  s->options_ = options;
  lmdb::EnvOptions eo;
  eo.map_size_bytes = options.map_size_bytes;
  eo.max_dbs = 20;
  REFBUS_ASSIGN_OR_RETURN(s->env_, lmdb::Env::Open(options.dir, eo));
  REFBUS_ASSIGN_OR_RETURN(s->meta_, s->env_->OpenDb("meta"));
  REFBUS_ASSIGN_OR_RETURN(s->msgs_, s->env_->OpenDb("msgs"));
  REFBUS_ASSIGN_OR_RETURN(s->mbox_, s->env_->OpenDb("mbox"));
  REFBUS_ASSIGN_OR_RETURN(s->seen_, s->env_->OpenDb("seen"));
  REFBUS_ASSIGN_OR_RETURN(s->expiry_, s->env_->OpenDb("expiry"));
  REFBUS_ASSIGN_OR_RETURN(s->counts_, s->env_->OpenDb("counts"));
  REFBUS_ASSIGN_OR_RETURN(s->audit_, s->env_->OpenDb("audit"));
  REFBUS_ASSIGN_OR_RETURN(s->grants_, s->env_->OpenDb("grants"));
  REFBUS_ASSIGN_OR_RETURN(s->ctlq_, s->env_->OpenDb("ctlq"));
  REFBUS_ASSIGN_OR_RETURN(s->tombstones_, s->env_->OpenDb("revoked_unknown"));
  REFBUS_ASSIGN_OR_RETURN(s->quarantine_, s->env_->OpenDb("quarantine"));
  REFBUS_ASSIGN_OR_RETURN(s->sender_counts_, s->env_->OpenDb("sender_counts"));
  REFBUS_ASSIGN_OR_RETURN(s->witness_, s->env_->OpenDb("witness"));
  REFBUS_ASSIGN_OR_RETURN(s->evidence_, s->env_->OpenDb("witness_evidence"));
  s->audit_dbs_.meta = s->meta_;
  s->audit_dbs_.entries = s->audit_;
  REFBUS_ASSIGN_OR_RETURN(s->audit_dbs_.tree, s->env_->OpenDb("audit_tree"));
  REFBUS_ASSIGN_OR_RETURN(s->audit_dbs_.checkpoints, s->env_->OpenDb("checkpoints"));
  // A data directory belongs to one broker and one format.
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, s->env_->BeginWrite());
  auto fmt = txn.Get(s->meta_, Key("format"));
  if (fmt.ok()) {
    const std::string format(AsChars(*fmt));
    if (format != kStoreFormat && format != kStoreFormatV2 && format != kStoreFormatV1) {
      return FailedPrecondition(options.dir + " holds store format '" + format + "', not '" +
                                std::string(kStoreFormat) + "'");
    }
    auto owner = txn.Get(s->meta_, Key("broker_id"));
    if (!owner.ok() || AsChars(*owner) != options.broker_id) {
      return FailedPrecondition(options.dir + " is the data directory of broker '" +
                                (owner.ok() ? std::string(AsChars(*owner)) : "?") + "', not '" +
                                options.broker_id + "'");
    }
    if (format == kStoreFormat) {
      // No replay: the frontier, counts and O(log N) stored nodes are checked.
      auto n = CheckAuditState(txn, s->audit_dbs_);
      if (!n.ok()) return n.status().WithContext(options.dir);
      txn.Abort();
      return s;
    }
    // An older format: upgraded once, in one transaction (all or nothing).
    auto start = std::chrono::steady_clock::now();
    std::string done;
    if (format == kStoreFormatV1) {  // build the tree
      auto n = RebuildAuditTree(txn, s->audit_dbs_);
      if (!n.ok()) {
        return n.status().WithContext(options.dir + ": upgrade to " + std::string(kStoreFormat));
      }
      done = "built the audit Merkle tree over " + std::to_string(*n) + " entries; ";
    } else {
      auto n = CheckAuditState(txn, s->audit_dbs_);
      if (!n.ok()) return n.status().WithContext(options.dir);
    }
    // Formats 1 and 2 kept a reference count per message; the records' entry lists and
    // the mailboxes hold the same facts.
    REFBUS_ASSIGN_OR_RETURN(bool dropped, txn.DropDbIfExists("refs"));
    done += dropped ? "dropped the reference counts" : "no reference counts to drop";
    REFBUS_RETURN_IF_ERROR(txn.Put(s->meta_, Key("format"), AsBytes(kStoreFormat)));
    REFBUS_RETURN_IF_ERROR(txn.Commit());
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count();
    spdlog::info("upgraded store {} from {} to {}: {} in {} ms", options.dir, format, kStoreFormat,
                 done, ms);
    return s;
  }
  if (fmt.status().code() != Status::Code::kNotFound) return fmt.status();
  REFBUS_RETURN_IF_ERROR(txn.Put(s->meta_, Key("format"), AsBytes(kStoreFormat)));
  REFBUS_RETURN_IF_ERROR(txn.Put(s->meta_, Key("broker_id"), AsBytes(options.broker_id)));
  {
    REFBUS_ASSIGN_OR_RETURN(uint64_t stray, txn.Count(s->audit_));
    if (stray != 0) return FailedPrecondition(options.dir + " holds audit entries but no format");
    // An empty log: writes audit_size 0 and the empty frontier.
    REFBUS_RETURN_IF_ERROR(RebuildAuditTree(txn, s->audit_dbs_).status());
  }
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return s;
}

Result<bool> Store::StillQueued(const lmdb::Txn& txn,
                                const std::vector<std::pair<std::string, uint64_t>>& entries,
                                ByteView message_id) const {
  for (const auto& [mailbox, seq] : entries) {
    auto v = txn.Get(mbox_, MailboxKey(mailbox, seq));
    if (v.ok() && ValueIs(*v, message_id)) return true;
    if (!v.ok() && v.status().code() != Status::Code::kNotFound) return v.status();
  }
  return false;
}

Result<CommitResult> Store::Commit(Batch& batch, UnixMillis now) {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginWrite());
  REFBUS_ASSIGN_OR_RETURN(uint64_t next_seq, GetU64(txn, meta_, Key("next_seq")));
  REFBUS_ASSIGN_OR_RETURN(AuditWriter audit, AuditWriter::Begin(txn, audit_dbs_));
  CommitResult result;
  auto append_audit = [&](schema::AuditEntry e) -> Status {
    e.index = audit.size();
    e.time_ms = now;
    e.broker_id = options_.broker_id;
    return audit.Append(schema::EncodeAuditEntry(e));
  };

  for (const GrantRegistration& r : batch.grants) {
    const schema::ConsentGrant& g = r.decoded.grant;
    ControlOutcome out;
    REFBUS_ASSIGN_OR_RETURN(auto existing, LoadGrant(txn, grants_, g.grant_id));
    if (existing) {
      if (existing->grant.grant_bytes == r.decoded.grant_bytes) {
        out.ok = true;
        out.duplicate = true;
      } else {
        out.reason = schema::NackReason::kConsentOutOfScope;
        out.detail =
            "grant id " + HexEncode(g.grant_id) + " is already registered with other content";
      }
      result.grants.push_back(std::move(out));
      continue;
    }
    // A revocation that arrived (from a peer broker) before the grant: applied now, when
    // the grant's own recorder signed it for this case.
    std::optional<Tombstone> tomb;
    {
      auto t = txn.Get(tombstones_, g.grant_id);
      if (!t.ok() && t.status().code() != Status::Code::kNotFound) return t.status();
      if (t.ok()) tomb = DecodeTombstone(*t);
      if (tomb && (tomb->revoked_by != g.recorded_by || tomb->case_ref != g.case_ref)) {
        tomb.reset();
      }
    }
    REFBUS_RETURN_IF_ERROR(txn.Put(
        grants_, g.grant_id,
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
    if (e.emergency_override) {
      e.detail += "; EMERGENCY OVERRIDE countersigned by";
      for (const auto& c : r.decoded.countersignatures) e.detail += " " + c.operator_ref;
    }
    REFBUS_RETURN_IF_ERROR(append_audit(std::move(e)));
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
      REFBUS_RETURN_IF_ERROR(append_audit(std::move(rv)));
    }
    out.ok = true;
    result.grants.push_back(std::move(out));
  }

  for (const GrantRevocation& r : batch.revocations) {
    const schema::ConsentRevocation& rev = r.revocation;
    ControlOutcome out;
    REFBUS_ASSIGN_OR_RETURN(auto existing, LoadGrant(txn, grants_, rev.grant_id));
    bool newly = false;
    if (!existing && r.via_peer) {
      // Passed on by a peer broker for a grant this broker never saw: kept, so that the
      // grant is registered revoked if an envelope brings it later.
      auto t = txn.Get(tombstones_, rev.grant_id);
      if (!t.ok() && t.status().code() != Status::Code::kNotFound) return t.status();
      out.ok = true;
      out.duplicate = t.ok();
      if (!t.ok()) {
        REFBUS_RETURN_IF_ERROR(txn.Put(tombstones_, rev.grant_id, EncodeTombstone(rev)));
        schema::AuditEntry e;
        e.event = schema::AuditEvent::kConsentRevoked;
        e.actor = r.actor;
        e.sender_id = rev.revoked_by;
        e.case_ref = rev.case_ref;
        e.consent_grant_id = rev.grant_id;
        e.directory_serial = r.directory_serial;
        e.statement_sha256 = r.statement_sha256;
        e.detail = "reason " + std::string(schema::Name(rev.reason)) +
                   "; grant not registered here: kept, refused if it arrives";
        REFBUS_RETURN_IF_ERROR(append_audit(std::move(e)));
        newly = true;
      }
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
          txn.Put(grants_, rev.grant_id,
                  EncodeGrantRecord(existing->signed_grant, true, rev.revoked_at_ms)));
      schema::AuditEntry e;
      e.event = schema::AuditEvent::kConsentRevoked;
      e.actor = r.actor;
      e.sender_id = rev.revoked_by;
      e.case_ref = rev.case_ref;
      e.consent_grant_id = rev.grant_id;
      e.directory_serial = r.directory_serial;
      e.statement_sha256 = r.statement_sha256;
      e.detail = "reason " + std::string(schema::Name(rev.reason));
      REFBUS_RETURN_IF_ERROR(append_audit(std::move(e)));
      out.ok = true;
      newly = true;
    }
    // Every other broker is told, in this same transaction (its control queue).
    if (newly && !r.signed_statement.empty()) {
      for (const auto& peer : batch.revocation_peers) {
        if (peer == r.actor) continue;
        REFBUS_RETURN_IF_ERROR(txn.Put(ctlq_, MailboxKey(peer, ++next_seq), r.signed_statement));
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
      REFBUS_RETURN_IF_ERROR(append_audit(std::move(e)));
    }
    result.revocations.push_back(std::move(out));
  }

  result.refusals.resize(batch.accepted.size());
  for (size_t ai = 0; ai < batch.accepted.size(); ++ai) {
    Accepted& a = batch.accepted[ai];
    const schema::EnvelopeHeader& h = a.decoded->header;
    auto seen = txn.Get(seen_, h.message_id);
    if (seen.ok()) {
      // Held already. A mailbox it never had (a relay for a recipient re-routed here) is
      // added; nothing is stored twice for the same mailbox.
      auto stored =
          a.mailboxes.empty() ? Result<ByteView>(NotFound("")) : txn.Get(msgs_, h.message_id);
      if (!stored.ok() && stored.status().code() != Status::Code::kNotFound) {
        return stored.status();
      }
      if (stored.ok()) {
        Bytes copy(stored->begin(), stored->end());
        auto rec = DecodeRecord(copy, h.message_id);
        if (rec.ok()) {
          auto mboxes = rec->mailboxes;
          for (const auto& t : a.mailboxes) {
            bool had = false;
            for (const auto& [m, seq] : mboxes) had = had || m == t;
            if (had) continue;
            uint64_t seq = ++next_seq;
            REFBUS_RETURN_IF_ERROR(
                AddEntry(txn, t, seq, h.message_id, ServesFor(a.serves, t), rec->sender));
            mboxes.emplace_back(t, seq);
            a.added.push_back(t);
          }
          if (!a.added.empty()) {
            REFBUS_RETURN_IF_ERROR(
                txn.Put(msgs_, h.message_id,
                        EncodeRecord(rec->accepted_ms, rec->expires_ms, rec->hops, rec->sender,
                                     mboxes, rec->envelope)));
            schema::AuditEntry e = EnvelopeAudit(schema::AuditEvent::kEnvelopeAccepted, *a.decoded,
                                                 a.envelope, a.actor, a.directory_serial);
            e.detail = "already held; added mailbox";
            for (const auto& t : a.added) e.detail += " " + t;
            if (!a.audit_detail.empty()) e.detail += "; " + a.audit_detail;
            REFBUS_RETURN_IF_ERROR(append_audit(std::move(e)));
          }
        }
      }
      result.accepted.push_back(Outcome::kDuplicate);
      continue;
    }
    if (seen.status().code() != Status::Code::kNotFound) return seen.status();
    if (!h.consent_grant_id.empty()) {
      REFBUS_ASSIGN_OR_RETURN(auto grant, LoadGrant(txn, grants_, h.consent_grant_id));
      std::optional<keys::ScopeRefusal> refusal;
      if (!grant) {
        refusal = keys::ScopeRefusal{
            schema::NackReason::kConsentOutOfScope,
            "consent grant " + HexEncode(h.consent_grant_id) + " is not registered at this broker"};
      } else {
        refusal = keys::CheckScope(grant->grant.grant, grant->revoked, a.scope, now);
      }
      if (refusal) {
        schema::AuditEntry e = EnvelopeAudit(schema::AuditEvent::kEnvelopeRejected, *a.decoded,
                                             a.envelope, a.actor, a.directory_serial);
        e.reason = refusal->reason;
        e.detail = refusal->detail;
        REFBUS_RETURN_IF_ERROR(append_audit(std::move(e)));
        result.accepted.push_back(Outcome::kRefused);
        result.refusals[ai] = std::move(*refusal);
        continue;
      }
    }
    std::vector<std::string> targets = a.mailboxes;
    if (targets.empty()) {
      for (const auto& r : h.recipients) targets.push_back(r.agency_id);
    }
    std::string full;
    for (const auto& t : targets) {
      REFBUS_ASSIGN_OR_RETURN(uint64_t depth, GetU64(txn, counts_, AsBytes(t)));
      if (depth >= options_.mailbox_quota) {
        full = "mailbox of " + t + " is full";
        result.quota_recipient = t;
      }
      // One sender may not take a mailbox for itself: others keep their share.
      REFBUS_ASSIGN_OR_RETURN(uint64_t mine,
                              GetU64(txn, sender_counts_, SenderKey(h.sender_id, t)));
      if (full.empty() && mine >= options_.sender_quota) {
        full = h.sender_id + " already has " + std::to_string(mine) + " envelopes waiting in " +
               "the mailbox of " + t + " (limits.sender_quota)";
        result.quota_recipient = t;
      }
    }
    if (!full.empty()) {
      // Back-pressure: nothing stored, the sender retries; the refusal is on record.
      schema::AuditEntry e = EnvelopeAudit(schema::AuditEvent::kEnvelopeRejected, *a.decoded,
                                           a.envelope, a.actor, a.directory_serial);
      e.reason = schema::NackReason::kQuotaExceeded;
      e.detail = full;
      REFBUS_RETURN_IF_ERROR(append_audit(std::move(e)));
      result.accepted.push_back(Outcome::kQuotaExceeded);
      result.refusals[ai] = keys::ScopeRefusal{schema::NackReason::kQuotaExceeded, full};
      continue;
    }
    std::vector<std::pair<std::string, uint64_t>> mailboxes;
    for (const auto& t : targets) {
      uint64_t seq = ++next_seq;
      mailboxes.emplace_back(t, seq);
      REFBUS_RETURN_IF_ERROR(
          AddEntry(txn, t, seq, h.message_id, ServesFor(a.serves, t), h.sender_id));
    }
    Bytes record = EncodeRecord(now, h.expires_at_ms, a.hops, h.sender_id, mailboxes, a.envelope);
    REFBUS_RETURN_IF_ERROR(txn.Put(msgs_, h.message_id, record));
    REFBUS_RETURN_IF_ERROR(PutU64(txn, seen_, h.message_id, h.expires_at_ms));
    REFBUS_RETURN_IF_ERROR(txn.Put(expiry_, ExpiryKey(h.expires_at_ms, h.message_id), {}));
    schema::AuditEntry accepted = EnvelopeAudit(schema::AuditEvent::kEnvelopeAccepted, *a.decoded,
                                                a.envelope, a.actor, a.directory_serial);
    accepted.detail = a.audit_detail;
    REFBUS_RETURN_IF_ERROR(append_audit(std::move(accepted)));
    result.accepted.push_back(Outcome::kStored);
  }

  for (const RecipientAck& ack : batch.acks) {
    Bytes key = MailboxKey(ack.recipient, ack.seq);
    auto v = txn.Get(mbox_, key);
    if (!v.ok() || !ValueIs(*v, ack.message_id)) {
      if (!v.ok() && v.status().code() != Status::Code::kNotFound) return v.status();
      result.acks_applied.push_back(false);
      continue;
    }
    REFBUS_RETURN_IF_ERROR(txn.Del(mbox_, key));
    REFBUS_ASSIGN_OR_RETURN(uint64_t depth, GetU64(txn, counts_, AsBytes(ack.recipient)));
    REFBUS_RETURN_IF_ERROR(PutU64(txn, counts_, AsBytes(ack.recipient), depth > 0 ? depth - 1 : 0));
    if (ack.kind == RecipientAck::Kind::kQuarantined) {
      // The damaged bytes stay (evidence) until the expiry sweep; the entry is kept aside.
      REFBUS_RETURN_IF_ERROR(txn.Put(quarantine_, key, AsBytes(ack.detail.substr(0, 512))));
    } else {
      // The sender's share of the mailbox, and the record once no entry holds it any more
      // (a damaged record: both left as they are, for the reader's quarantine and the
      // expiry sweep).
      auto stored = txn.Get(msgs_, ack.message_id);
      if (stored.ok()) {
        auto rec = DecodeRecord(*stored, ack.message_id);  // its envelope view is not used
        if (rec.ok()) {
          REFBUS_RETURN_IF_ERROR(AdjustSender(txn, rec->sender, ack.recipient, -1));
          REFBUS_ASSIGN_OR_RETURN(bool held, StillQueued(txn, rec->mailboxes, ack.message_id));
          if (!held) REFBUS_RETURN_IF_ERROR(txn.Del(msgs_, ack.message_id));
        }
      } else if (stored.status().code() != Status::Code::kNotFound) {
        return stored.status();
      }
    }
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
    REFBUS_RETURN_IF_ERROR(append_audit(std::move(e)));
    result.acks_applied.push_back(true);
  }

  for (const ControlEnd& c : batch.control_ends) {
    Status d = txn.Del(ctlq_, MailboxKey(c.peer, c.seq));
    if (!d.ok() && d.code() != Status::Code::kNotFound) return d;
    if (c.refused && d.ok()) {
      schema::AuditEntry e;
      e.event = schema::AuditEvent::kEnvelopeRejected;
      e.actor = c.peer;
      e.reason = c.reason;
      e.detail = "consent revocation refused by broker " + c.peer + ": " + c.detail;
      REFBUS_RETURN_IF_ERROR(append_audit(std::move(e)));
    }
  }

  // Re-routing after a directory moved recipients: each entry leaves its mailbox for the
  // targets; a target that still has a pending entry of this message is skipped (that entry
  // carries the recipient too).
  for (const Reroute& rr : batch.reroutes) {
    Bytes key = MailboxKey(rr.from, rr.seq);
    auto v = txn.Get(mbox_, key);
    if (!v.ok() || !ValueIs(*v, rr.message_id)) {
      if (!v.ok() && v.status().code() != Status::Code::kNotFound) return v.status();
      result.reroutes_applied.push_back(false);
      continue;
    }
    auto stored = txn.Get(msgs_, rr.message_id);
    if (!stored.ok()) {
      if (stored.status().code() != Status::Code::kNotFound) return stored.status();
      result.reroutes_applied.push_back(false);
      continue;
    }
    Bytes copy(stored->begin(), stored->end());
    auto rec = DecodeRecord(copy, rr.message_id);
    if (!rec.ok()) {  // damaged: left where it is, reported by the reader
      result.reroutes_applied.push_back(false);
      continue;
    }
    if (!rr.keep) {
      REFBUS_RETURN_IF_ERROR(txn.Del(mbox_, key));
      REFBUS_ASSIGN_OR_RETURN(uint64_t from_depth, GetU64(txn, counts_, AsBytes(rr.from)));
      REFBUS_RETURN_IF_ERROR(
          PutU64(txn, counts_, AsBytes(rr.from), from_depth > 0 ? from_depth - 1 : 0));
      REFBUS_RETURN_IF_ERROR(AdjustSender(txn, rec->sender, rr.from, -1));
    }
    auto mboxes = rec->mailboxes;
    std::vector<std::string> added;
    for (const auto& t : rr.to) {
      if (t == rr.from) continue;
      bool pending = false;
      for (const auto& [m, seq] : mboxes) {
        if (m != t) continue;
        auto e = txn.Get(mbox_, MailboxKey(m, seq));
        if (e.ok()) pending = true;
        if (!e.ok() && e.status().code() != Status::Code::kNotFound) return e.status();
      }
      if (pending || std::find(added.begin(), added.end(), t) != added.end()) continue;
      uint64_t seq = ++next_seq;
      REFBUS_RETURN_IF_ERROR(
          AddEntry(txn, t, seq, rr.message_id, ServesFor(rr.serves, t), rec->sender));
      mboxes.emplace_back(t, seq);
      added.push_back(t);
    }
    REFBUS_ASSIGN_OR_RETURN(bool held, StillQueued(txn, mboxes, rr.message_id));
    if (!held) {
      REFBUS_RETURN_IF_ERROR(txn.Del(msgs_, rr.message_id));
    } else if (!added.empty()) {
      REFBUS_RETURN_IF_ERROR(txn.Put(msgs_, rr.message_id,
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
    REFBUS_RETURN_IF_ERROR(append_audit(std::move(e)));
    result.reroutes_applied.push_back(true);
  }

  // Copied, not moved: after a failed transaction (storage full) the caller commits the
  // same events again.
  for (const auto& e : batch.events) REFBUS_RETURN_IF_ERROR(append_audit(e));

  // As a witness: each request decided against the state as the earlier ones left it.
  for (const WitnessItem& w : batch.witness) {
    auto decided = DecideWitnessInTxn(txn, w, batch, now);
    if (!decided.ok()) {
      const Status::Code code = decided.status().code();
      if (code != Status::Code::kMalformed && code != Status::Code::kInternal &&
          code != Status::Code::kInvalidArgument) {
        return decided.status();  // the store itself failed: nothing of this batch commits
      }
      WitnessOutcome failed;
      failed.error = decided.status();
      result.witness.push_back(std::move(failed));
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
      REFBUS_RETURN_IF_ERROR(append_audit(std::move(e)));
    }
    result.witness.push_back(std::move(out));
  }
  for (const CheckpointCosignature& c : batch.cosignatures) {
    result.cosignatures.push_back(
        AddCheckpointCosignature(txn, audit_dbs_, c.size, c.root, c.signature));
    const Status& st = result.cosignatures.back();
    if (!st.ok() && st.code() != Status::Code::kNotFound &&
        st.code() != Status::Code::kFailedPrecondition) {
      return st;  // the store itself failed
    }
  }

  REFBUS_RETURN_IF_ERROR(PutU64(txn, meta_, Key("next_seq"), next_seq));
  REFBUS_RETURN_IF_ERROR(audit.Finish());
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  result.audit_size = audit.size();
  return result;
}

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

Result<std::optional<keys::WitnessState>> Store::WitnessStateOf(const std::string& origin) const {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  auto v = txn.Get(witness_, AsBytes(origin));
  if (!v.ok()) {
    if (v.status().code() == Status::Code::kNotFound) return std::optional<keys::WitnessState>();
    return v.status();
  }
  REFBUS_ASSIGN_OR_RETURN(keys::WitnessState st, keys::DecodeWitnessState(*v));
  return std::optional<keys::WitnessState>(std::move(st));
}

Result<std::vector<keys::WitnessEvidence>> Store::WitnessEvidence() const {
  std::vector<keys::WitnessEvidence> out;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor cur, lmdb::Cursor::Open(txn, evidence_));
  REFBUS_ASSIGN_OR_RETURN(auto item, cur.First());
  while (item) {
    REFBUS_ASSIGN_OR_RETURN(keys::WitnessEvidence e, keys::DecodeWitnessEvidence(item->value));
    out.push_back(std::move(e));
    REFBUS_ASSIGN_OR_RETURN(item, cur.Next());
  }
  return out;
}

Result<std::vector<Pending>> Store::ReadMailbox(const std::string& recipient, uint64_t after_seq,
                                                size_t max) const {
  std::vector<Pending> out;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_RETURN_IF_ERROR(ScanQueue(
      txn, mbox_, recipient, after_seq, max, [&](uint64_t seq, ByteView value) -> Result<bool> {
        Pending p;
        p.seq = seq;
        if (value.size() < schema::kMessageIdBytes) {
          return Malformed("store: mailbox entry " + recipient + "/" + std::to_string(seq) +
                           " is damaged");
        }
        p.message_id.assign(value.begin(), value.begin() + schema::kMessageIdBytes);
        REFBUS_ASSIGN_OR_RETURN(p.serves, ServesOf(value));
        auto stored = txn.Get(msgs_, p.message_id);
        if (!stored.ok() && stored.status().code() != Status::Code::kNotFound) {
          return stored.status();
        }
        auto r = stored.ok() ? DecodeRecord(*stored, p.message_id)
                             : Result<Record>(Malformed("stored envelope " +
                                                        HexEncode(p.message_id) + " is missing"));
        if (r.ok()) {
          p.envelope.assign(r->envelope.begin(), r->envelope.end());
          p.accepted_ms = r->accepted_ms;
          p.hops = r->hops;
        } else {
          p.damage = r.status().message();
        }
        out.push_back(std::move(p));
        return true;
      }));
  return out;
}

Result<std::vector<Pending>> Store::ReadMailboxIndex(const std::string& recipient,
                                                     size_t max) const {
  std::vector<Pending> out;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_RETURN_IF_ERROR(
      ScanQueue(txn, mbox_, recipient, 0, max, [&](uint64_t seq, ByteView value) -> Result<bool> {
        if (value.size() >= schema::kMessageIdBytes) {
          Pending p;
          p.seq = seq;
          p.message_id.assign(value.begin(), value.begin() + schema::kMessageIdBytes);
          auto serves = ServesOf(value);
          if (serves.ok()) p.serves = std::move(*serves);
          out.push_back(std::move(p));
        }
        return true;
      }));
  return out;
}

Status Store::AddEntry(lmdb::Txn& txn, const std::string& mailbox, uint64_t seq,
                       ByteView message_id, const std::vector<std::string>* serves,
                       const std::string& sender) {
  REFBUS_RETURN_IF_ERROR(
      txn.Put(mbox_, MailboxKey(mailbox, seq), MailboxValue(message_id, serves)));
  REFBUS_ASSIGN_OR_RETURN(uint64_t depth, GetU64(txn, counts_, AsBytes(mailbox)));
  REFBUS_RETURN_IF_ERROR(PutU64(txn, counts_, AsBytes(mailbox), depth + 1));
  return AdjustSender(txn, sender, mailbox, +1);
}

Status Store::AdjustSender(lmdb::Txn& txn, const std::string& sender, const std::string& mailbox,
                           int delta) {
  if (sender.empty()) return Status::Ok();  // records written before sender counts
  Bytes key = SenderKey(sender, mailbox);
  REFBUS_ASSIGN_OR_RETURN(uint64_t n, GetU64(txn, sender_counts_, key));
  if (delta > 0) {
    n += static_cast<uint64_t>(delta);
  } else {
    n = n > static_cast<uint64_t>(-delta) ? n - static_cast<uint64_t>(-delta) : 0;
  }
  if (n == 0) {
    Status d = txn.Del(sender_counts_, key);
    return d.ok() || d.code() == Status::Code::kNotFound ? Status::Ok() : d;
  }
  return PutU64(txn, sender_counts_, key, n);
}

Result<std::vector<ControlItem>> Store::ReadControlQueue(const std::string& peer,
                                                         uint64_t after_seq, size_t max) const {
  std::vector<ControlItem> out;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_RETURN_IF_ERROR(ScanQueue(
      txn, ctlq_, peer, after_seq, max, [&](uint64_t seq, ByteView value) -> Result<bool> {
        out.push_back(ControlItem{seq, Bytes(value.begin(), value.end())});
        return true;
      }));
  return out;
}

Result<uint64_t> Store::ControlQueueDepth(const std::string& peer) const {
  // Counted, not copied: the status asks every second.
  uint64_t n = 0;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_RETURN_IF_ERROR(
      ScanQueue(txn, ctlq_, peer, 0, SIZE_MAX, [&](uint64_t, ByteView) -> Result<bool> {
        ++n;
        return true;
      }));
  return n;
}

Result<std::vector<std::pair<std::string, uint64_t>>> Store::NonEmptyMailboxes() const {
  std::vector<std::pair<std::string, uint64_t>> out;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor cur, lmdb::Cursor::Open(txn, counts_));
  REFBUS_ASSIGN_OR_RETURN(auto item, cur.First());
  while (item) {
    if (item->value.size() == 8) {
      uint64_t n = lmdb::ReadU64Key(item->value);
      if (n > 0) out.emplace_back(std::string(AsChars(item->key)), n);
    }
    REFBUS_ASSIGN_OR_RETURN(item, cur.Next());
  }
  return out;
}

Result<std::vector<MailboxBacklog>> Store::MailboxBacklogs(size_t max) const {
  std::vector<MailboxBacklog> out;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor cur, lmdb::Cursor::Open(txn, counts_));
  REFBUS_ASSIGN_OR_RETURN(auto item, cur.First());
  while (item && out.size() < max) {
    if (item->value.size() == 8 && lmdb::ReadU64Key(item->value) > 0) {
      MailboxBacklog b;
      b.mailbox = std::string(AsChars(item->key));
      b.depth = lmdb::ReadU64Key(item->value);
      REFBUS_RETURN_IF_ERROR(
          ScanQueue(txn, mbox_, b.mailbox, 0, 1, [&](uint64_t, ByteView value) -> Result<bool> {
            if (value.size() < schema::kMessageIdBytes) return false;
            ByteView id = value.first(schema::kMessageIdBytes);
            auto stored = txn.Get(msgs_, id);
            // A damaged record is the reader's to quarantine; here it only has no age.
            auto r = stored.ok() ? DecodeRecord(*stored, id) : Result<Record>(stored.status());
            if (r.ok()) b.oldest_accepted_ms = r->accepted_ms;
            return false;
          }));
      out.push_back(std::move(b));
    }
    REFBUS_ASSIGN_OR_RETURN(item, cur.Next());
  }
  return out;
}

Result<uint64_t> Store::MailboxDepth(const std::string& recipient) const {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  return GetU64(txn, counts_, AsBytes(recipient));
}

Result<GrantState> Store::GetGrant(ByteView grant_id) const {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(auto g, LoadGrant(txn, grants_, grant_id));
  if (!g) return NotFound("consent grant " + HexEncode(grant_id) + " is not registered");
  return std::move(*g);
}

Result<uint64_t> Store::AuditSize() const {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  return GetU64(txn, meta_, Key("audit_size"));
}

Result<Bytes> Store::AuditEntryBytes(uint64_t index) const {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  return ReadAuditEntry(txn, audit_dbs_, index);
}

Result<AuditEntriesRead> Store::AuditEntriesFrom(uint64_t from_index, size_t max,
                                                 size_t max_bytes) const {
  AuditEntriesRead out;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(out.log_size, GetU64(txn, meta_, Key("audit_size")));
  if (from_index > out.log_size) {
    return InvalidArgument("the audit log has " + std::to_string(out.log_size) +
                           " entries; index " + std::to_string(from_index) + " is beyond it");
  }
  REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor cur, lmdb::Cursor::Open(txn, audit_dbs_.entries));
  REFBUS_ASSIGN_OR_RETURN(auto item, cur.Seek(lmdb::U64Key(from_index)));
  size_t bytes = 0;
  uint64_t index = from_index;
  while (index < out.log_size && out.entries.size() < max) {
    if (!item || item->key.size() != 8 || lmdb::ReadU64Key(item->key) != index) {
      return Malformed("audit entry " + std::to_string(index) + " is missing");
    }
    if (!out.entries.empty() && bytes + item->value.size() > max_bytes) break;
    uint64_t pos = StoredNodeIndex(0, index);
    auto node = txn.Get(audit_dbs_.tree, lmdb::U64Key(pos));
    auto leaf = node.ok() ? DecodeNode(*node, pos) : Result<keys::Hash>(node.status());
    if (!leaf.ok() || keys::LeafHash(item->value) != *leaf) out.damaged.push_back(index);
    bytes += item->value.size();
    out.entries.emplace_back(item->value.begin(), item->value.end());
    ++index;
    REFBUS_ASSIGN_OR_RETURN(item, cur.Next());
  }
  out.more = index < out.log_size;
  return out;
}

Result<keys::Hash> Store::AuditRoot() const {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(keys::MerkleFrontier f, LoadFrontier(txn, audit_dbs_));
  return f.Root();
}

namespace {

Status CheckSize(uint64_t size, uint64_t committed) {
  if (size > committed) {
    return InvalidArgument("the audit log has " + std::to_string(committed) +
                           " entries, fewer than the " + std::to_string(size) + " asked for");
  }
  return Status::Ok();
}

}  // namespace

Result<keys::Hash> Store::AuditRootAt(uint64_t size) const {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(keys::MerkleFrontier f, LoadFrontier(txn, audit_dbs_));
  REFBUS_RETURN_IF_ERROR(CheckSize(size, f.Size()));
  return keys::RootAt(StoredTreeReader(txn, audit_dbs_, f.Size()), size);
}

Result<std::vector<keys::Hash>> Store::InclusionProof(uint64_t index, uint64_t size) const {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(keys::MerkleFrontier f, LoadFrontier(txn, audit_dbs_));
  REFBUS_RETURN_IF_ERROR(CheckSize(size, f.Size()));
  return keys::InclusionProof(StoredTreeReader(txn, audit_dbs_, f.Size()), index, size);
}

Result<std::vector<keys::Hash>> Store::ConsistencyProof(uint64_t old_size,
                                                        uint64_t new_size) const {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(keys::MerkleFrontier f, LoadFrontier(txn, audit_dbs_));
  REFBUS_RETURN_IF_ERROR(CheckSize(new_size, f.Size()));
  return keys::ConsistencyProof(StoredTreeReader(txn, audit_dbs_, f.Size()), old_size, new_size);
}

Result<CheckpointOutcome> Store::SignCheckpoint(const std::string& origin,
                                                const keys::Identity& log_key) {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginWrite());
  REFBUS_ASSIGN_OR_RETURN(CheckpointOutcome out,
                          SignCheckpointInTxn(txn, audit_dbs_, origin, log_key));
  if (!out.signed_now) {
    txn.Abort();
    return out;
  }
  // Handed out only once on disk; a failed commit discards the signature unseen.
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return out;
}

Status Store::CheckLatestCheckpoint(const std::string& origin) const {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(keys::MerkleFrontier f, LoadFrontier(txn, audit_dbs_));
  return CheckConsistentWithLatest(txn, audit_dbs_, origin, f.Size(), f.Root());
}

Result<std::optional<StoredCheckpoint>> Store::LatestCheckpoint() const {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  return broker::LatestCheckpoint(txn, audit_dbs_);
}

Result<std::vector<StoredCheckpoint>> Store::Checkpoints(uint64_t from_size, size_t max) const {
  std::vector<StoredCheckpoint> out;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor cur, lmdb::Cursor::Open(txn, audit_dbs_.checkpoints));
  REFBUS_ASSIGN_OR_RETURN(auto item, cur.Seek(lmdb::U64Key(from_size)));
  while (item && out.size() < max) {
    if (item->key.size() != 8) return Malformed("store: a checkpoint key has the wrong length");
    REFBUS_ASSIGN_OR_RETURN(StoredCheckpoint c,
                            DecodeCheckpointRecord(item->value, lmdb::ReadU64Key(item->key)));
    out.push_back(std::move(c));
    REFBUS_ASSIGN_OR_RETURN(item, cur.Next());
  }
  return out;
}

Result<size_t> Store::ExpireOld(UnixMillis now, size_t max_items) {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginWrite());
  REFBUS_ASSIGN_OR_RETURN(AuditWriter audit, AuditWriter::Begin(txn, audit_dbs_));
  std::vector<Bytes> expired_keys;
  {
    REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor cur, lmdb::Cursor::Open(txn, expiry_));
    REFBUS_ASSIGN_OR_RETURN(auto item, cur.First());
    while (item && expired_keys.size() < max_items) {
      if (item->key.size() != 8 + schema::kMessageIdBytes)
        return Malformed("store: bad expiry key");
      if (lmdb::ReadU64Key(item->key) > now) break;
      expired_keys.emplace_back(item->key.begin(), item->key.end());
      REFBUS_ASSIGN_OR_RETURN(item, cur.Next());
    }
  }
  for (const Bytes& key : expired_keys) {
    Bytes mid(key.begin() + 8, key.end());
    auto stored = txn.Get(msgs_, mid);
    if (stored.ok()) {
      // Never delivered to every recipient before it expired: drop it, and say so.
      Bytes copy(stored->begin(), stored->end());
      auto rec = DecodeRecord(copy, mid);
      schema::AuditEntry e;
      e.event = schema::AuditEvent::kEnvelopeExpired;
      e.message_id = mid;
      if (rec.ok()) {
        for (const auto& [r, seq] : rec->mailboxes) {
          if (txn.Del(mbox_, MailboxKey(r, seq)).ok()) {
            e.recipients.push_back(r);
            REFBUS_ASSIGN_OR_RETURN(uint64_t depth, GetU64(txn, counts_, AsBytes(r)));
            REFBUS_RETURN_IF_ERROR(PutU64(txn, counts_, AsBytes(r), depth > 0 ? depth - 1 : 0));
            REFBUS_RETURN_IF_ERROR(AdjustSender(txn, rec->sender, r, -1));
          }
        }
      } else {
        e.detail = "record damaged";
      }
      REFBUS_RETURN_IF_ERROR(txn.Del(msgs_, mid));
      e.index = audit.size();
      e.time_ms = now;
      e.broker_id = options_.broker_id;
      REFBUS_RETURN_IF_ERROR(audit.Append(schema::EncodeAuditEntry(e)));
    }
    Status s = txn.Del(seen_, mid);
    if (!s.ok() && s.code() != Status::Code::kNotFound) return s;
    REFBUS_RETURN_IF_ERROR(txn.Del(expiry_, key));
  }
  REFBUS_RETURN_IF_ERROR(audit.Finish());
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return expired_keys.size();
}

schema::AuditEntry EnvelopeAudit(schema::AuditEvent event, const schema::SealedEnvelope& env,
                                 ByteView envelope_bytes, const std::string& actor,
                                 uint64_t directory_serial) {
  schema::AuditEntry e;
  e.event = event;
  e.actor = actor;
  const auto& h = env.header;
  e.message_id = h.message_id;
  e.sender_id = h.sender_id;
  for (const auto& r : h.recipients) e.recipients.push_back(r.agency_id);
  e.case_ref = h.case_ref;
  e.consent_grant_id = h.consent_grant_id;
  e.kind = h.kind;
  e.purpose = h.purpose;
  e.envelope_sha256 = Sha256(envelope_bytes);
  e.envelope_bytes = envelope_bytes.size();
  e.directory_serial = directory_serial;
  return e;
}

}  // namespace refbus::broker
