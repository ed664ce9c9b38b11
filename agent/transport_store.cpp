#include "agent/transport_store.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <string_view>

namespace refbus::agent {
namespace {

// Record formats (store.h): the first byte of every outbox and inbox value.
constexpr uint8_t kEnvelopeFormat = 1;        // outbox or inbox: an envelope
constexpr uint8_t kControlFormat = 2;         // outbox: a control frame
constexpr uint8_t kPurgedFormat = 3;          // inbox: a tombstone left by PurgeInbox
constexpr uint8_t kSealedFormat = 4;          // inbox: the envelope sealed at rest (InboxSealer)
constexpr size_t kTombstonePayloadBytes = 8;  // u64be purged_ms (|| the original's SHA-256)

bool IsOutboxFormat(uint8_t f) { return f == kEnvelopeFormat || f == kControlFormat; }
bool IsInboxFormat(uint8_t f) {
  return f == kEnvelopeFormat || f == kPurgedFormat || f == kSealedFormat;
}

// The meta database marks the directory as ours, so an agent never writes into a broker's
// (or anything else's) LMDB data by mistake.
constexpr std::string_view kFormatKey = "format";
constexpr std::string_view kFormatValue = "refbus-agent-store/1";
constexpr std::string_view kInboxSeqKey = "inbox_seq";
constexpr std::string_view kOutboxSeqKey = "outbox_seq";
constexpr std::string_view kDuplicatesKey = "duplicate_deliveries";
constexpr std::string_view kAppCursorKey = "app_cursor";

constexpr std::array<std::string_view, 5> kDbNames = {kOutboxDb, kOutboxOrderDb, kInboxDb,
                                                      kInboxOrderDb, kMetaDb};

Status CheckMessageId(ByteView id) {
  if (id.size() != 16) return InvalidArgument("a message id must be 16 bytes");
  return Status::Ok();
}

Result<uint64_t> GetU64(const lmdb::Txn& txn, MDB_dbi dbi, std::string_view key) {
  auto v = txn.Get(dbi, AsBytes(key));
  if (!v.ok()) {
    if (v.status().code() == Status::Code::kNotFound) return uint64_t{0};
    return v.status();
  }
  if (v->size() != 8)
    return Malformed("agent store: meta value '" + std::string(key) + "' is damaged");
  return lmdb::ReadU64Key(*v);
}

Status PutU64(lmdb::Txn& txn, MDB_dbi dbi, std::string_view key, uint64_t value) {
  return txn.Put(dbi, AsBytes(key), lmdb::U64Key(value));
}

void PutBe64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<uint8_t>(v & 0xff);
    v >>= 8;
  }
}

// A stored value split into its fields; views into LMDB memory, valid until the txn ends.
struct RecordView {
  uint8_t format = 0;
  ByteView sha256;
  uint64_t time_ms = 0;
  uint64_t sequence = 0;
  ByteView envelope;  // the payload: envelope, control frame, sealed form or tombstone's
  // The SHA-256 of the envelope as delivered, where the record still has it (envelope,
  // sealed form, a tombstone that kept it): what a redelivery is compared with.
  ByteView original_sha256;
  ByteView sealed_sha256;  // format 4: the SHA-256 of the sealed form (checked on read)
};

enum class Db { kOutbox, kInbox };

std::string_view DbName(Db db) { return db == Db::kOutbox ? "outbox" : "inbox"; }

// Layout only (no hash): enough to find the sequence of a record even if it is damaged.
Result<RecordView> ParseLayout(ByteView v, Db db) {
  bool format_ok = !v.empty() && (db == Db::kOutbox ? IsOutboxFormat(v[0]) : IsInboxFormat(v[0]));
  const size_t payload = v.size() < kRecordHeaderBytes ? 0 : v.size() - kRecordHeaderBytes;
  if (v.size() < kRecordHeaderBytes || !format_ok ||
      (v[0] == kPurgedFormat && payload != kTombstonePayloadBytes &&
       payload != kTombstonePayloadBytes + kSha256Bytes) ||
      (v[0] == kSealedFormat && payload <= kSha256Bytes)) {
    return Malformed(std::string(DbName(db)) + " record is damaged (bad layout)");
  }
  RecordView r;
  r.format = v[0];
  r.sha256 = v.subspan(1, kSha256Bytes);
  r.time_ms = lmdb::ReadU64Key(v.subspan(1 + kSha256Bytes, 8));
  r.sequence = lmdb::ReadU64Key(v.subspan(1 + kSha256Bytes + 8, 8));
  r.envelope = v.subspan(kRecordHeaderBytes);
  if (r.format == kEnvelopeFormat) r.original_sha256 = r.sha256;
  if (r.format == kSealedFormat) {
    r.original_sha256 = r.sha256;
    r.sealed_sha256 = r.envelope.first(kSha256Bytes);
    r.envelope = r.envelope.subspan(kSha256Bytes);
  }
  if (r.format == kPurgedFormat && payload > kTombstonePayloadBytes) {
    r.original_sha256 = r.envelope.subspan(kTombstonePayloadBytes);
  }
  return r;
}

// The payload of a format-4 record: SHA-256(sealed) || sealed.
Bytes SealedPayload(ByteView sealed) {
  Bytes p = Sha256(sealed);
  p.insert(p.end(), sealed.begin(), sealed.end());
  return p;
}

// What a tombstone's SHA-256 covers: everything that remains of the record, so that a
// flipped bit anywhere in it (but the sequence, which the order index also checks) shows.
Bytes TombstoneSha256(ByteView message_id, uint64_t received_ms, uint64_t sequence,
                      ByteView payload) {
  Bytes b;
  b.reserve(1 + message_id.size() + 16 + payload.size());
  b.push_back(kPurgedFormat);
  b.insert(b.end(), message_id.begin(), message_id.end());
  Bytes t = lmdb::U64Key(received_ms), s = lmdb::U64Key(sequence);
  b.insert(b.end(), t.begin(), t.end());
  b.insert(b.end(), s.begin(), s.end());
  b.insert(b.end(), payload.begin(), payload.end());
  return Sha256(b);
}

// Layout and hash. message_id is the record's key (a tombstone's hash covers it).
Result<RecordView> ParseChecked(ByteView v, Db db, ByteView message_id) {
  REFBUS_ASSIGN_OR_RETURN(RecordView r, ParseLayout(v, db));
  if (r.format == kPurgedFormat) {
    Bytes h = TombstoneSha256(message_id, r.time_ms, r.sequence, r.envelope);
    if (!std::equal(h.begin(), h.end(), r.sha256.begin(), r.sha256.end())) {
      return Malformed(std::string(DbName(db)) +
                       " record is damaged (SHA-256 of the purged record does not match)");
    }
    return r;
  }
  if (r.format == kSealedFormat) {
    // The sealed form is checked here; the envelope inside it against r.sha256 by whoever
    // unseals it (the store holds no key).
    Bytes h = Sha256(r.envelope);
    if (!std::equal(h.begin(), h.end(), r.sealed_sha256.begin(), r.sealed_sha256.end())) {
      return Malformed(std::string(DbName(db)) +
                       " record is damaged (SHA-256 of the sealed envelope does not match)");
    }
    return r;
  }
  Bytes h = Sha256(r.envelope);
  if (!std::equal(h.begin(), h.end(), r.sha256.begin(), r.sha256.end())) {
    return Malformed(std::string(DbName(db)) + " record is damaged (SHA-256 of the " +
                     (r.format == kControlFormat ? "control frame" : "envelope") +
                     " does not match)");
  }
  return r;
}

Status WriteRecord(lmdb::Txn& txn, MDB_dbi dbi, ByteView key, uint8_t format, ByteView sha256,
                   uint64_t time_ms, uint64_t sequence, ByteView envelope) {
  // MDB_RESERVE: the envelope is copied once, straight into the page.
  REFBUS_ASSIGN_OR_RETURN(uint8_t * p, txn.Reserve(dbi, key, kRecordHeaderBytes + envelope.size()));
  p[0] = format;
  std::memcpy(p + 1, sha256.data(), kSha256Bytes);
  PutBe64(p + 1 + kSha256Bytes, time_ms);
  PutBe64(p + 1 + kSha256Bytes + 8, sequence);
  if (!envelope.empty()) std::memcpy(p + kRecordHeaderBytes, envelope.data(), envelope.size());
  return Status::Ok();
}

std::string IdText(ByteView id) { return HexEncode(id); }

}  // namespace

Result<std::unique_ptr<TransportStore>> TransportStore::Open(const std::string& dir,
                                                             const StoreOptions& options) {
  lmdb::EnvOptions eo;
  eo.map_size_bytes = options.map_size_bytes;
  eo.max_dbs = 8;
  std::unique_ptr<TransportStore> s(new TransportStore());
  REFBUS_ASSIGN_OR_RETURN(s->env_, lmdb::Env::Open(dir, eo));

  // Refuse LMDB data that is not ours before creating anything in it: named databases are
  // keys of the main database, so foreign names there mean foreign data.
  {
    REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, s->env_->BeginRead());
    MDB_dbi main_dbi = 0;
    REFBUS_RETURN_IF_ERROR(
        lmdb::LmdbStatus(mdb_dbi_open(txn.raw(), nullptr, 0, &main_dbi), "lmdb open main db"));
    REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor c, lmdb::Cursor::Open(txn, main_dbi));
    REFBUS_ASSIGN_OR_RETURN(auto item, c.First());
    while (item) {
      std::string_view name = AsChars(item->key);
      if (std::find(kDbNames.begin(), kDbNames.end(), name) == kDbNames.end()) {
        return FailedPrecondition(dir + " holds LMDB data that is not a refbus agent store");
      }
      REFBUS_ASSIGN_OR_RETURN(item, c.Next());
    }
  }
  REFBUS_ASSIGN_OR_RETURN(s->outbox_, s->env_->OpenDb(kOutboxDb));
  REFBUS_ASSIGN_OR_RETURN(s->outbox_order_, s->env_->OpenDb(kOutboxOrderDb));
  REFBUS_ASSIGN_OR_RETURN(s->inbox_, s->env_->OpenDb(kInboxDb));
  REFBUS_ASSIGN_OR_RETURN(s->inbox_order_, s->env_->OpenDb(kInboxOrderDb));
  REFBUS_ASSIGN_OR_RETURN(s->meta_, s->env_->OpenDb(kMetaDb));

  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, s->env_->BeginWrite());
  auto format = txn.Get(s->meta_, AsBytes(kFormatKey));
  if (format.ok()) {
    if (AsChars(*format) != kFormatValue) {
      return FailedPrecondition(dir + " holds an agent store of another format version");
    }
    return s;  // the write transaction aborts: nothing to change
  }
  if (format.status().code() != Status::Code::kNotFound) return format.status();
  REFBUS_RETURN_IF_ERROR(txn.Put(s->meta_, AsBytes(kFormatKey), AsBytes(kFormatValue)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return s;
}

// ---------------------------------------------------------------- outbox

Result<std::vector<bool>> TransportStore::AddToOutbox(std::span<const OutboxItem> items,
                                                      UnixMillis now) {
  for (const auto& it : items) {
    REFBUS_RETURN_IF_ERROR(CheckMessageId(it.message_id));
    if (it.envelope.empty()) {
      return InvalidArgument(it.control ? "an empty control frame cannot be queued"
                                        : "an empty envelope cannot be queued");
    }
  }
  std::vector<bool> added;
  added.reserve(items.size());
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginWrite());
  REFBUS_ASSIGN_OR_RETURN(uint64_t seq, GetU64(txn, meta_, kOutboxSeqKey));
  for (const auto& it : items) {
    Bytes sha = Sha256(it.envelope);
    const uint8_t format = it.control ? kControlFormat : kEnvelopeFormat;
    auto existing = txn.Get(outbox_, it.message_id);
    if (existing.ok()) {
      REFBUS_ASSIGN_OR_RETURN(RecordView r, ParseLayout(*existing, Db::kOutbox));
      // One id namespace for both kinds: the same id as the other kind is a clash too.
      if (r.format != format) {
        return AlreadyExists("id " + IdText(it.message_id) + " is already queued as " +
                             (r.format == kControlFormat ? "a control frame" : "an envelope"));
      }
      if (!std::equal(sha.begin(), sha.end(), r.sha256.begin(), r.sha256.end())) {
        return AlreadyExists("message " + IdText(it.message_id) +
                             " is already queued with different content");
      }
      added.push_back(false);
      continue;
    }
    if (existing.status().code() != Status::Code::kNotFound) return existing.status();
    ++seq;
    REFBUS_RETURN_IF_ERROR(txn.Put(outbox_order_, lmdb::U64Key(seq), it.message_id));
    REFBUS_RETURN_IF_ERROR(
        WriteRecord(txn, outbox_, it.message_id, format, sha, now, seq, it.envelope));
    added.push_back(true);
  }
  REFBUS_RETURN_IF_ERROR(PutU64(txn, meta_, kOutboxSeqKey, seq));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return added;
}

Status TransportStore::RemoveFromOutbox(std::span<const Bytes> message_ids) {
  if (message_ids.empty()) return Status::Ok();
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginWrite());
  for (const auto& id : message_ids) {
    auto existing = txn.Get(outbox_, id);
    if (!existing.ok()) {
      if (existing.status().code() == Status::Code::kNotFound) continue;
      return existing.status();
    }
    // A damaged record is still removed (the broker has it, or refused it for good); its
    // order entry is found by sequence when the layout is intact.
    auto r = ParseLayout(*existing, Db::kOutbox);
    if (r.ok()) {
      Status s = txn.Del(outbox_order_, lmdb::U64Key(r->sequence));
      if (!s.ok() && s.code() != Status::Code::kNotFound) return s;
    }
    REFBUS_RETURN_IF_ERROR(txn.Del(outbox_, id));
  }
  return txn.Commit();
}

Result<std::vector<Bytes>> TransportStore::OutboxIds() const {
  std::vector<Bytes> ids;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor c, lmdb::Cursor::Open(txn, outbox_order_));
  REFBUS_ASSIGN_OR_RETURN(auto item, c.First());
  while (item) {
    ids.emplace_back(item->value.begin(), item->value.end());
    REFBUS_ASSIGN_OR_RETURN(item, c.Next());
  }
  return ids;
}

Result<Bytes> TransportStore::OutboxEnvelope(ByteView message_id) const {
  REFBUS_ASSIGN_OR_RETURN(OutboxItem item, OutboxEntry(message_id));
  if (item.control) {
    return FailedPrecondition("outbox item " + IdText(message_id) +
                              " is a control frame, not an envelope");
  }
  return std::move(item.envelope);
}

Result<OutboxItem> TransportStore::OutboxEntry(ByteView message_id) const {
  REFBUS_RETURN_IF_ERROR(CheckMessageId(message_id));
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  auto v = txn.Get(outbox_, message_id);
  if (!v.ok()) {
    if (v.status().code() == Status::Code::kNotFound) {
      return NotFound("message " + IdText(message_id) + " is not in the outbox");
    }
    return v.status();
  }
  auto r = ParseChecked(*v, Db::kOutbox, message_id);
  if (!r.ok()) return r.status().WithContext("message " + IdText(message_id));
  OutboxItem item;
  item.message_id.assign(message_id.begin(), message_id.end());
  item.envelope.assign(r->envelope.begin(), r->envelope.end());
  item.control = r->format == kControlFormat;
  return item;
}

// ---------------------------------------------------------------- inbox

Result<std::vector<DeliveryOutcome>> TransportStore::StoreDeliveries(
    std::span<const Delivery> deliveries, UnixMillis now) {
  for (const auto& d : deliveries) {
    REFBUS_RETURN_IF_ERROR(CheckMessageId(d.message_id));
    if (d.envelope.empty()) return InvalidArgument("an empty envelope cannot be stored");
  }
  std::vector<DeliveryOutcome> out;
  out.reserve(deliveries.size());
  if (deliveries.empty()) return out;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginWrite());
  REFBUS_ASSIGN_OR_RETURN(uint64_t seq, GetU64(txn, meta_, kInboxSeqKey));
  REFBUS_ASSIGN_OR_RETURN(uint64_t dups, GetU64(txn, meta_, kDuplicatesKey));
  for (const auto& d : deliveries) {
    // LMDB reads see this transaction's own writes, so a repeat inside the batch is found.
    auto existing = txn.Get(inbox_, d.message_id);
    if (existing.ok()) {
      // The first record stays as it is, damaged or not: a redelivery never overwrites.
      auto r = ParseLayout(*existing, Db::kInbox);
      DeliveryOutcome o;
      o.duplicate = true;
      o.sequence = r.ok() ? r->sequence : 0;
      const Bytes sha = Sha256(d.envelope);
      if (r.ok() && !r->original_sha256.empty() &&
          !std::equal(sha.begin(), sha.end(), r->original_sha256.begin(),
                      r->original_sha256.end())) {
        // Other bytes under a held id: not a redelivery (issue 17, item 1), not counted
        // as one, and never stored.
        o.duplicate = false;
        o.id_reused = true;
      } else {
        ++dups;
      }
      out.push_back(o);
      continue;
    }
    if (existing.status().code() != Status::Code::kNotFound) return existing.status();
    ++seq;
    REFBUS_RETURN_IF_ERROR(txn.Put(inbox_order_, lmdb::U64Key(seq), d.message_id));
    Bytes sealed;
    if (inbox_sealer_) {
      REFBUS_ASSIGN_OR_RETURN(sealed, inbox_sealer_(d.message_id, d.envelope));
    }
    if (sealed.empty()) {
      REFBUS_RETURN_IF_ERROR(WriteRecord(txn, inbox_, d.message_id, kEnvelopeFormat,
                                         Sha256(d.envelope), now, seq, d.envelope));
    } else {
      REFBUS_RETURN_IF_ERROR(WriteRecord(txn, inbox_, d.message_id, kSealedFormat,
                                         Sha256(d.envelope), now, seq, SealedPayload(sealed)));
    }
    DeliveryOutcome stored;
    stored.sequence = seq;
    out.push_back(stored);
  }
  REFBUS_RETURN_IF_ERROR(PutU64(txn, meta_, kInboxSeqKey, seq));
  REFBUS_RETURN_IF_ERROR(PutU64(txn, meta_, kDuplicatesKey, dups));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return out;
}

namespace {

// Decodes and checks one inbox record, including that the order index points back at it
// (the hash covers the envelope only, so this catches a damaged sequence number).
Result<InboxRecord> ReadInboxRecord(const lmdb::Txn& txn, MDB_dbi order, ByteView message_id,
                                    ByteView value) {
  auto r = ParseChecked(value, Db::kInbox, message_id);
  if (!r.ok()) return r.status().WithContext("message " + IdText(message_id));
  auto back = txn.Get(order, lmdb::U64Key(r->sequence));
  if (!back.ok() || !std::equal(back->begin(), back->end(), message_id.begin(), message_id.end())) {
    if (back.ok() || back.status().code() == Status::Code::kNotFound) {
      return Malformed("message " + IdText(message_id) +
                       ": inbox record is damaged (its sequence number does not match the index)");
    }
    return back.status();
  }
  InboxRecord rec;
  rec.message_id.assign(message_id.begin(), message_id.end());
  rec.sequence = r->sequence;
  rec.received_ms = r->time_ms;
  rec.sha256.assign(r->original_sha256.begin(), r->original_sha256.end());
  if (r->format == kPurgedFormat) {
    rec.purged = true;  // the envelope stays empty: there is none any more
    return rec;
  }
  rec.envelope.assign(r->envelope.begin(), r->envelope.end());
  rec.sealed_at_rest = r->format == kSealedFormat;
  return rec;
}

// The arrival sequence of an inbox record about to be purged: the one it names if the
// order index agrees, else (the record is damaged) the one the index holds for its id,
// found by a scan; else the one it names. Only damaged records pay for the scan.
Result<uint64_t> SequenceForPurge(const lmdb::Txn& txn, MDB_dbi order, ByteView message_id,
                                  uint64_t named) {
  auto matches = [&](ByteView v) {
    return std::equal(v.begin(), v.end(), message_id.begin(), message_id.end());
  };
  if (named != 0) {
    auto back = txn.Get(order, lmdb::U64Key(named));
    if (back.ok() && matches(*back)) return named;
    if (!back.ok() && back.status().code() != Status::Code::kNotFound) return back.status();
  }
  REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor c, lmdb::Cursor::Open(txn, order));
  REFBUS_ASSIGN_OR_RETURN(auto item, c.First());
  while (item) {
    if (item->key.size() == 8 && matches(item->value)) return lmdb::ReadU64Key(item->key);
    REFBUS_ASSIGN_OR_RETURN(item, c.Next());
  }
  return named;
}

}  // namespace

Result<InboxRecord> TransportStore::GetInbox(ByteView message_id) const {
  REFBUS_RETURN_IF_ERROR(CheckMessageId(message_id));
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  auto v = txn.Get(inbox_, message_id);
  if (!v.ok()) {
    if (v.status().code() == Status::Code::kNotFound) {
      return NotFound("message " + IdText(message_id) + " is not in the inbox");
    }
    return v.status();
  }
  return ReadInboxRecord(txn, inbox_order_, message_id, *v);
}

Result<bool> TransportStore::InboxContains(ByteView message_id) const {
  REFBUS_RETURN_IF_ERROR(CheckMessageId(message_id));
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  auto v = txn.Get(inbox_, message_id);
  if (v.ok()) return true;
  if (v.status().code() == Status::Code::kNotFound) return false;
  return v.status();
}

Result<std::vector<InboxRecord>> TransportStore::ReadInbox(uint64_t after_sequence,
                                                           size_t limit) const {
  std::vector<InboxRecord> out;
  if (limit == 0 || after_sequence == UINT64_MAX) return out;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor c, lmdb::Cursor::Open(txn, inbox_order_));
  Bytes start = lmdb::U64Key(after_sequence + 1);
  REFBUS_ASSIGN_OR_RETURN(auto item, c.Seek(start));
  while (item && out.size() < limit) {
    if (item->key.size() != 8) return Malformed("inbox order index is damaged (key size)");
    uint64_t seq = lmdb::ReadU64Key(item->key);
    ByteView id = item->value;
    auto v = txn.Get(inbox_, id);
    if (!v.ok()) {
      if (v.status().code() == Status::Code::kNotFound) {
        return Malformed("inbox order index is damaged: sequence " + std::to_string(seq) +
                         " names a message that is not stored");
      }
      return v.status();
    }
    auto rec = ReadInboxRecord(txn, inbox_order_, id, *v);
    if (!rec.ok()) return rec.status().WithContext("sequence " + std::to_string(seq));
    if (rec->sequence != seq) {
      return Malformed("sequence " + std::to_string(seq) +
                       ": inbox record is damaged (its sequence number does not match the index)");
    }
    out.push_back(std::move(rec).value());
    REFBUS_ASSIGN_OR_RETURN(item, c.Next());
  }
  return out;
}

Result<size_t> TransportStore::PurgeInbox(std::span<const Bytes> message_ids, UnixMillis now) {
  for (const auto& id : message_ids) REFBUS_RETURN_IF_ERROR(CheckMessageId(id));
  if (message_ids.empty()) return size_t{0};
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginWrite());
  size_t purged = 0;
  for (const auto& id : message_ids) {
    // LMDB reads see this transaction's own writes: a repeated id finds its tombstone.
    auto v = txn.Get(inbox_, id);
    if (!v.ok()) {
      if (v.status().code() == Status::Code::kNotFound) continue;
      return v.status();
    }
    // A tombstone holds no content, so there is nothing to destroy, damaged or not.
    if (!v->empty() && (*v)[0] == kPurgedFormat) continue;
    // Keep the arrival time and sequence; read them by position, so that a record whose
    // hash or format byte is damaged is purged as well.
    uint64_t received_ms = 0, named_sequence = 0;
    if (v->size() >= kRecordHeaderBytes) {
      received_ms = lmdb::ReadU64Key(v->subspan(1 + kSha256Bytes, 8));
      named_sequence = lmdb::ReadU64Key(v->subspan(1 + kSha256Bytes + 8, 8));
    }
    REFBUS_ASSIGN_OR_RETURN(uint64_t seq, SequenceForPurge(txn, inbox_order_, id, named_sequence));
    Bytes payload = lmdb::U64Key(now);
    // The tombstone keeps the delivered envelope's SHA-256 (when the record checks out), so
    // other bytes under this id are still told from a redelivery.
    if (auto intact = ParseChecked(*v, Db::kInbox, id); intact.ok()) {
      payload.insert(payload.end(), intact->original_sha256.begin(), intact->original_sha256.end());
    }
    Bytes sha = TombstoneSha256(id, received_ms, seq, payload);
    // Put replaces the value; the envelope's old pages go to LMDB's free list (see the
    // limitation in store.h).
    REFBUS_RETURN_IF_ERROR(
        WriteRecord(txn, inbox_, id, kPurgedFormat, sha, received_ms, seq, payload));
    ++purged;
  }
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return purged;
}

void TransportStore::SetInboxSealer(InboxSealer sealer) { inbox_sealer_ = std::move(sealer); }

Result<size_t> TransportStore::SealHeldEnvelopes() {
  if (!inbox_sealer_) return size_t{0};
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginWrite());
  // The records to seal first (copies), then the writes: no cursor across a Put.
  std::vector<std::pair<Bytes, Bytes>> held;  // message id, value
  {
    REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor c, lmdb::Cursor::Open(txn, inbox_));
    REFBUS_ASSIGN_OR_RETURN(auto item, c.First());
    while (item) {
      if (!item->value.empty() && item->value[0] == kEnvelopeFormat) {
        held.emplace_back(Bytes(item->key.begin(), item->key.end()),
                          Bytes(item->value.begin(), item->value.end()));
      }
      REFBUS_ASSIGN_OR_RETURN(item, c.Next());
    }
  }
  size_t sealed_count = 0;
  for (const auto& [id, value] : held) {
    auto r = ParseChecked(value, Db::kInbox, id);
    if (!r.ok()) continue;  // damaged: left for the reader to report, never rewritten
    REFBUS_ASSIGN_OR_RETURN(Bytes sealed, inbox_sealer_(id, r->envelope));
    if (sealed.empty()) continue;
    REFBUS_RETURN_IF_ERROR(WriteRecord(txn, inbox_, id, kSealedFormat, r->sha256, r->time_ms,
                                       r->sequence, SealedPayload(sealed)));
    ++sealed_count;
  }
  if (sealed_count == 0) return size_t{0};  // the transaction aborts: nothing changed
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return sealed_count;
}

Status TransportStore::SetAppCursor(uint64_t sequence) {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginWrite());
  REFBUS_ASSIGN_OR_RETURN(uint64_t last, GetU64(txn, meta_, kInboxSeqKey));
  if (sequence > last) {
    return InvalidArgument("application cursor " + std::to_string(sequence) +
                           " is beyond the last stored message (" + std::to_string(last) + ")");
  }
  REFBUS_RETURN_IF_ERROR(PutU64(txn, meta_, kAppCursorKey, sequence));
  return txn.Commit();
}

Result<StoreCounters> TransportStore::Counters() const {
  StoreCounters c;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(c.inbox_messages, txn.Count(inbox_));
  REFBUS_ASSIGN_OR_RETURN(c.outbox_messages, txn.Count(outbox_));
  REFBUS_ASSIGN_OR_RETURN(c.duplicate_deliveries, GetU64(txn, meta_, kDuplicatesKey));
  REFBUS_ASSIGN_OR_RETURN(c.last_inbox_sequence, GetU64(txn, meta_, kInboxSeqKey));
  REFBUS_ASSIGN_OR_RETURN(c.app_cursor, GetU64(txn, meta_, kAppCursorKey));
  return c;
}

}  // namespace refbus::agent
