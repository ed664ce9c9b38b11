#include "audit/local_store.h"

#include <algorithm>

#include "core/file.h"

namespace refbus::audit {
namespace {

constexpr std::string_view kFormat = "refbus-audit-store/1";
constexpr uint8_t kCheckpointRecordVersion = 1;
constexpr uint64_t kNoProof = ~uint64_t{0};
constexpr size_t kMapSizeBytes = size_t{16} << 30;  // virtual; grows on disk as used

ByteView Key(std::string_view s) { return AsBytes(s); }

// u8 version || u64be size || u64be received_at_ms || u64be proof_from_seq (all ones: none)
// || u16be proof hashes || hashes || note
Bytes EncodeCheckpoint(const LocalCheckpoint& c) {
  Bytes out;
  out.push_back(kCheckpointRecordVersion);
  AppendU64BigEndian(out, c.size);
  AppendU64BigEndian(out, c.received_at_ms);
  AppendU64BigEndian(out, c.proof_from_seq.value_or(kNoProof));
  out.push_back(static_cast<uint8_t>(c.proof.size() >> 8));
  out.push_back(static_cast<uint8_t>(c.proof.size()));
  for (const auto& h : c.proof) Append(out, h);
  Append(out, AsBytes(c.note));
  return out;
}

Result<LocalCheckpoint> DecodeCheckpoint(ByteView v, uint64_t seq) {
  auto damaged = [&](std::string_view why) {
    return Malformed("local checkpoint record " + std::to_string(seq) + " is damaged (" +
                     std::string(why) + ")");
  };
  constexpr size_t kHead = 1 + 8 + 8 + 8 + 2;
  if (v.size() < kHead || v[0] != kCheckpointRecordVersion) return damaged("bad header");
  LocalCheckpoint c;
  c.seq = seq;
  c.size = lmdb::ReadU64Key(v.subspan(1));
  c.received_at_ms = lmdb::ReadU64Key(v.subspan(9));
  uint64_t from = lmdb::ReadU64Key(v.subspan(17));
  if (from != kNoProof) c.proof_from_seq = from;
  size_t n = (size_t{v[25]} << 8) | v[26];
  if (v.size() < kHead + n * keys::kMerkleHashBytes) return damaged("truncated proof");
  for (size_t i = 0; i < n; ++i) {
    keys::Hash h;
    std::copy_n(v.begin() + static_cast<long>(kHead + i * keys::kMerkleHashBytes), h.size(),
                h.begin());
    c.proof.push_back(h);
  }
  c.note = std::string(AsChars(v.subspan(kHead + n * keys::kMerkleHashBytes)));
  return c;
}

}  // namespace

Result<std::unique_ptr<LocalAuditStore>> LocalAuditStore::Open(const std::string& dir,
                                                               bool create) {
  if (!create && !PathExists(dir + "/data.mdb")) {
    return NotFound(dir + " holds no audit store (run refbus-audit fetch first)");
  }
  std::unique_ptr<LocalAuditStore> s(new LocalAuditStore());
  lmdb::EnvOptions eo;
  eo.map_size_bytes = kMapSizeBytes;
  eo.max_dbs = 6;
  REFBUS_ASSIGN_OR_RETURN(s->env_, lmdb::Env::Open(dir, eo));
  REFBUS_ASSIGN_OR_RETURN(s->meta_, s->env_->OpenDb("meta"));
  REFBUS_ASSIGN_OR_RETURN(s->entries_, s->env_->OpenDb("entries"));
  REFBUS_ASSIGN_OR_RETURN(s->checkpoints_, s->env_->OpenDb("checkpoints"));
  REFBUS_ASSIGN_OR_RETURN(s->witness_, s->env_->OpenDb("witness"));
  REFBUS_ASSIGN_OR_RETURN(s->evidence_, s->env_->OpenDb("witness_evidence"));
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, s->env_->BeginWrite());
  auto fmt = txn.Get(s->meta_, Key("format"));
  if (fmt.ok()) {
    if (AsChars(*fmt) != kFormat) {
      return FailedPrecondition(dir + " holds '" + std::string(AsChars(*fmt)) + "', not a " +
                                std::string(kFormat) + " store");
    }
    txn.Abort();
    return s;
  }
  if (fmt.status().code() != Status::Code::kNotFound) return fmt.status();
  REFBUS_RETURN_IF_ERROR(txn.Put(s->meta_, Key("format"), AsBytes(kFormat)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return s;
}

Result<std::optional<AuditBinding>> LocalAuditStore::Binding() const {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  auto broker = txn.Get(meta_, Key("broker_id"));
  if (!broker.ok()) {
    if (broker.status().code() == Status::Code::kNotFound) return std::optional<AuditBinding>();
    return broker.status();
  }
  AuditBinding b;
  b.broker_id = std::string(AsChars(*broker));
  REFBUS_ASSIGN_OR_RETURN(ByteView origin, txn.Get(meta_, Key("origin")));
  b.origin = std::string(AsChars(origin));
  REFBUS_ASSIGN_OR_RETURN(ByteView key, txn.Get(meta_, Key("broker_signing_key")));
  b.broker_signing_key.assign(key.begin(), key.end());
  return std::optional<AuditBinding>(std::move(b));
}

Status LocalAuditStore::Bind(const AuditBinding& binding) {
  REFBUS_ASSIGN_OR_RETURN(auto existing, Binding());
  if (existing &&
      (existing->broker_id != binding.broker_id || existing->origin != binding.origin)) {
    return FailedPrecondition("this audit store holds the log " + existing->origin + " of broker " +
                              existing->broker_id + ", not " + binding.origin +
                              ": use another --store folder");
  }
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginWrite());
  REFBUS_RETURN_IF_ERROR(txn.Put(meta_, Key("broker_id"), AsBytes(binding.broker_id)));
  REFBUS_RETURN_IF_ERROR(txn.Put(meta_, Key("origin"), AsBytes(binding.origin)));
  REFBUS_RETURN_IF_ERROR(txn.Put(meta_, Key("broker_signing_key"), binding.broker_signing_key));
  return txn.Commit();
}

Result<uint64_t> LocalAuditStore::NextIndex() const {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor cur, lmdb::Cursor::Open(txn, entries_));
  REFBUS_ASSIGN_OR_RETURN(auto last, cur.Last());
  if (!last) return uint64_t{0};
  if (last->key.size() != 8) return Malformed("local audit store: an entry key has the wrong size");
  return lmdb::ReadU64Key(last->key) + 1;
}

Status LocalAuditStore::AppendEntries(uint64_t first_index, const std::vector<Bytes>& entries) {
  REFBUS_ASSIGN_OR_RETURN(uint64_t next, NextIndex());
  if (first_index != next) {
    return Internal("appending audit entries at " + std::to_string(first_index) +
                    " to a local store whose next index is " + std::to_string(next));
  }
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginWrite());
  uint64_t index = first_index;
  for (const Bytes& e : entries) {
    REFBUS_RETURN_IF_ERROR(txn.Put(entries_, lmdb::U64Key(index++), e, MDB_APPEND));
  }
  return txn.Commit();
}

Status LocalAuditStore::ForEachEntry(
    const std::function<Status(uint64_t key, ByteView bytes)>& fn) const {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor cur, lmdb::Cursor::Open(txn, entries_));
  REFBUS_ASSIGN_OR_RETURN(auto item, cur.First());
  while (item) {
    if (item->key.size() != 8) {
      return Malformed("local audit store: an entry key has the wrong size");
    }
    REFBUS_RETURN_IF_ERROR(fn(lmdb::ReadU64Key(item->key), item->value));
    REFBUS_ASSIGN_OR_RETURN(item, cur.Next());
  }
  return Status::Ok();
}

Result<std::vector<LocalCheckpoint>> LocalAuditStore::Checkpoints() const {
  std::vector<LocalCheckpoint> out;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor cur, lmdb::Cursor::Open(txn, checkpoints_));
  REFBUS_ASSIGN_OR_RETURN(auto item, cur.First());
  while (item) {
    if (item->key.size() != 8) {
      return Malformed("local audit store: a checkpoint key has the wrong size");
    }
    REFBUS_ASSIGN_OR_RETURN(LocalCheckpoint c,
                            DecodeCheckpoint(item->value, lmdb::ReadU64Key(item->key)));
    out.push_back(std::move(c));
    REFBUS_ASSIGN_OR_RETURN(item, cur.Next());
  }
  return out;
}

Result<uint64_t> LocalAuditStore::AddCheckpoint(const LocalCheckpoint& checkpoint) {
  if (checkpoint.proof.size() > 0xffff) return InvalidArgument("consistency proof is too long");
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginWrite());
  uint64_t seq = 0;
  {
    REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor cur, lmdb::Cursor::Open(txn, checkpoints_));
    REFBUS_ASSIGN_OR_RETURN(auto last, cur.Last());
    if (last) {
      if (last->key.size() != 8) {
        return Malformed("local audit store: a checkpoint key has the wrong size");
      }
      seq = lmdb::ReadU64Key(last->key) + 1;
    }
  }
  REFBUS_RETURN_IF_ERROR(
      txn.Put(checkpoints_, lmdb::U64Key(seq), EncodeCheckpoint(checkpoint), MDB_APPEND));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return seq;
}

Result<std::optional<keys::WitnessState>> LocalAuditStore::Witnessed() const {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  auto v = txn.Get(witness_, Key("state"));
  if (!v.ok()) {
    if (v.status().code() == Status::Code::kNotFound) return std::optional<keys::WitnessState>();
    return v.status();
  }
  REFBUS_ASSIGN_OR_RETURN(keys::WitnessState st, keys::DecodeWitnessState(*v));
  return std::optional<keys::WitnessState>(std::move(st));
}

Status LocalAuditStore::SetWitnessed(const keys::WitnessState& state) {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginWrite());
  REFBUS_RETURN_IF_ERROR(txn.Put(witness_, Key("state"), keys::EncodeWitnessState(state)));
  return txn.Commit();
}

Result<uint64_t> LocalAuditStore::AddEvidence(const keys::WitnessEvidence& evidence) {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginWrite());
  uint64_t number = 0;
  {
    REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor cur, lmdb::Cursor::Open(txn, evidence_));
    REFBUS_ASSIGN_OR_RETURN(auto last, cur.Last());
    if (last) number = lmdb::ReadU64Key(last->key) + 1;
  }
  REFBUS_RETURN_IF_ERROR(txn.Put(evidence_, lmdb::U64Key(number),
                                 keys::EncodeWitnessEvidence(evidence), MDB_NOOVERWRITE));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return number;
}

Result<std::vector<keys::WitnessEvidence>> LocalAuditStore::Evidence() const {
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

}  // namespace refbus::audit
