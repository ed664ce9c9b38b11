#include "broker/store.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <map>
#include <optional>

#include "broker/store_records.h"
#include "keys/consent.h"
#include "schema/codec.h"

namespace refbus::broker {

using records::DecodeRecord;
using records::GetU64;
using records::Key;
using records::LoadGrant;
using records::MailboxKey;
using records::MailboxValue;
using records::PutU64;
using records::Record;
using records::ScanQueue;
using records::SenderKey;
using records::ServesOf;
using records::ValueIs;

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
  REFBUS_ASSIGN_OR_RETURN(s->prekeys_, s->env_->OpenDb("prekeys"));
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
        // A prekey is stored behind a zero byte (a serialized SignedStatement never starts
        // with one: its first byte is a field tag).
        if (!value.empty() && value[0] == records::kPrekeyControlTag) {
          out.push_back(ControlItem{seq, Bytes(), Bytes(value.begin() + 1, value.end())});
        } else {
          out.push_back(ControlItem{seq, Bytes(value.begin(), value.end()), Bytes()});
        }
        return true;
      }));
  return out;
}

Result<std::vector<Bytes>> Store::PublishedPrekeys() const {
  std::vector<Bytes> out;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor cur, lmdb::Cursor::Open(txn, prekeys_));
  REFBUS_ASSIGN_OR_RETURN(auto item, cur.First());
  while (item) {
    auto body = records::OpenSealedRecord(item->value, 1);
    if (body.ok()) {
      out.emplace_back(body->begin(), body->end());
    } else {
      spdlog::critical("DAMAGED published prekey record of {}: {}; not served",
                       std::string(AsChars(item->key)), body.status().message());
    }
    REFBUS_ASSIGN_OR_RETURN(item, cur.Next());
  }
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
  return EnvelopeAudit(event, env, Sha256(envelope_bytes), envelope_bytes.size(), actor,
                       directory_serial);
}

schema::AuditEntry EnvelopeAudit(schema::AuditEvent event, const schema::SealedEnvelope& env,
                                 Bytes envelope_sha256, size_t envelope_bytes,
                                 const std::string& actor, uint64_t directory_serial) {
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
  e.envelope_sha256 = std::move(envelope_sha256);
  e.envelope_bytes = envelope_bytes;
  e.directory_serial = directory_serial;
  return e;
}

}  // namespace refbus::broker
