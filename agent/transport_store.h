// TransportStore: an agency agent's transport state in LMDB: the outbox and inbox of sealed
// envelopes (one data directory, <data_dir>/transport under the engine).
//
// What it holds, and why:
//   - outbox: every envelope the application handed over, until the broker acknowledged
//     it or refused it for good. Written before anything is sent, so an agent that crashes
//     resubmits on restart (brokers deduplicate by message id, so resending is safe).
//     Control frames (consent registrations, revocations, attestations; PROTOCOL.md 9)
//     share the outbox, its order and its guarantees; each record says which kind it is.
//     Envelopes and control items share one id namespace: an id queued as one kind is
//     refused as the other (both are random 128-bit values, so a clash means a bug).
//   - inbox: every envelope delivered to this agency, keyed by message id, with the
//     SHA-256 of the envelope bytes (checked on every read: LMDB has no page checksums),
//     stored as delivered or, when an InboxSealer is set and seals it, only in its sealed
//     form (the agent seals it under its grant's data key, so that a purge shreds it),
//     the time it arrived and its arrival sequence number. A message id is stored once;
//     a redelivery (the same bytes) is reported as a duplicate and leaves the first record
//     untouched; other bytes under a held id are reported as id_reused, not stored. The
//     SHA-256 is over the envelope bytes exactly, the same value a broker's audit entry
//     carries (envelope_sha256), so the two can be compared.
//   - inbox order: arrival sequence -> message id, so the application reads the inbox in
//     the order messages arrived, and an application cursor (the last sequence it has
//     finished with), so an application that crashed resumes where it stopped.
//   - counters that must survive restarts (redeliveries, next sequence numbers).
//   - the largest signed checkpoint of the home broker's audit log seen in an Ack, as
//     SHA-256(body) || body (checked on read): a commitment an auditor can check the log
//     against (refbus-audit verify --evidence).
//
// Durability: every method that changes state runs one explicit write transaction and
// returns after it committed (fsync; no MDB_NOSYNC or friends). Batch methods put a whole
// batch in one transaction (group commit): they succeed or fail as a whole.
//
// Damage: a record whose hash or layout does not check out is reported as kMalformed with
// "damaged" in the message; it is never silently returned or overwritten.
//
// Thread safety: one TransportStore per data directory per process (the directory is locked).
// Methods may be called from one thread at a time; a store is not synchronized.
#ifndef REFBUS_AGENT_TRANSPORT_STORE_H_
#define REFBUS_AGENT_TRANSPORT_STORE_H_

#include <lmdb.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/lmdb.h"
#include "core/status.h"

namespace refbus::agent {

inline constexpr size_t kSha256Bytes = 32;

// Names of the LMDB databases (tests reach into them to simulate damage).
inline constexpr char kOutboxDb[] = "outbox";
inline constexpr char kOutboxOrderDb[] = "outbox_order";
inline constexpr char kInboxDb[] = "inbox";
inline constexpr char kInboxOrderDb[] = "inbox_order";
inline constexpr char kMetaDb[] = "meta";

// Byte layout of an inbox value: u8 format (1) || SHA-256(envelope) (32) ||
// u64be received_ms || u64be sequence || envelope. Outbox values are the same, with the
// time the envelope was queued instead of received_ms, and format 2 for a control item
// (its payload is a serialized Frame with request_id 0 instead of an envelope). A purged
// inbox record (tombstone) has format 3 and u64be purged_ms as its payload; its SHA-256
// covers format || message id || received_ms || sequence || purged_ms, everything that
// remains of the record. A tombstone's payload may go on with the SHA-256 of the envelope
// as delivered (32 bytes), so a redelivery is still told from other bytes under its id.
// A record sealed at rest (InboxSealer) has format 4: its SHA-256 is the delivered
// envelope's, and its payload is SHA-256(sealed form) (32) || sealed form.
inline constexpr size_t kRecordHeaderBytes = 1 + kSha256Bytes + 8 + 8;

struct StoreOptions {
  size_t map_size_bytes = size_t{1} << 30;  // the most the store may grow to
};

// One envelope (or control frame) to queue for sending.
struct OutboxItem {
  Bytes message_id;      // 16 bytes, from the envelope's header (control: the caller's id)
  Bytes envelope;        // serialized SealedEnvelope (control: serialized Frame)
  bool control = false;  // a control frame (Client::SubmitControl), not an envelope
};

// One envelope a broker delivered.
struct Delivery {
  Bytes message_id;
  Bytes envelope;
};

struct DeliveryOutcome {
  bool duplicate = false;  // the inbox already held this message id, with these bytes
  // The inbox holds this message id with other bytes: nothing was stored, the held record
  // stays as it is, and the delivery must be refused, not acked. A tombstone compares with
  // the delivered envelope's SHA-256 it kept; one that kept none (written by an older
  // version, or of a damaged record), or a record too damaged to parse, has no hash to
  // compare: its id stays a duplicate.
  bool id_reused = false;
  uint64_t sequence = 0;  // arrival sequence of the stored record (the held one if duplicate)
};

struct InboxRecord {
  Bytes message_id;
  uint64_t sequence = 0;
  UnixMillis received_ms = 0;
  // Of the envelope as delivered; a tombstone keeps it when the record was intact at the
  // purge (empty for tombstones of older stores and of damaged records).
  Bytes sha256;
  // The envelope as delivered or, if sealed_at_rest, its sealed form (the InboxSealer's
  // output; the caller unseals it and checks it against sha256). Empty when purged.
  Bytes envelope;
  bool sealed_at_rest = false;
  bool purged = false;  // PurgeInbox replaced the envelope by a tombstone
};

// Turns a delivered envelope into the form the inbox keeps instead of it (the agent:
// the envelope sealed under its grant's data key). Empty: keep the envelope as delivered.
// An error fails the whole StoreDeliveries batch (nothing stored, nothing acked).
using InboxSealer = std::function<Result<Bytes>(ByteView message_id, ByteView envelope)>;

// The largest signed checkpoint of the home broker's audit log this agency has seen in an
// Ack (PROTOCOL.md section 6): its size and root, the note as received, and when.
struct KeptCheckpoint {
  std::string broker_id;
  uint64_t size = 0;
  Bytes root;        // 32 bytes
  std::string note;  // the signed note, as the broker sent it (evidence for an auditor)
  UnixMillis received_ms = 0;
};

struct StoreCounters {
  uint64_t inbox_messages = 0;
  uint64_t outbox_messages = 0;
  uint64_t duplicate_deliveries = 0;  // redeliveries of messages already held, all time
  uint64_t last_inbox_sequence = 0;   // 0: nothing received yet
  uint64_t app_cursor = 0;            // last sequence the application finished with
};

class TransportStore {
 public:
  // Opens (creating if needed) the store in dir. Fails if another process holds it, or if
  // dir holds LMDB data of another program or format.
  [[nodiscard]] static Result<std::unique_ptr<TransportStore>> Open(const std::string& dir,
                                                                    const StoreOptions& options);

  TransportStore(const TransportStore&) = delete;
  TransportStore& operator=(const TransportStore&) = delete;

  // ---- Outbox ----

  // Queues items in one transaction. Per item: true if newly queued, false if that message
  // id was already queued with the same bytes (idempotent). The same id with other bytes
  // is refused (kAlreadyExists) and nothing of the batch is written.
  [[nodiscard]] Result<std::vector<bool>> AddToOutbox(std::span<const OutboxItem> items,
                                                      UnixMillis now);
  // Removes ids (acknowledged or refused for good) in one transaction; absent ids are
  // skipped.
  [[nodiscard]] Status RemoveFromOutbox(std::span<const Bytes> message_ids);
  // Message ids in the outbox (envelopes and control items), oldest first.
  [[nodiscard]] Result<std::vector<Bytes>> OutboxIds() const;
  // The queued envelope; kNotFound if not queued, kMalformed ("damaged") if its hash fails,
  // kFailedPrecondition if the id names a control item (use OutboxEntry).
  [[nodiscard]] Result<Bytes> OutboxEnvelope(ByteView message_id) const;
  // The queued item of either kind, with its kind; errors as OutboxEnvelope (but for the
  // kind check).
  [[nodiscard]] Result<OutboxItem> OutboxEntry(ByteView message_id) const;

  // ---- Inbox ----

  // From now on, new inbox records are kept in the form the sealer gives (see
  // InboxSealer). The store still compares redeliveries by the delivered bytes' SHA-256.
  void SetInboxSealer(InboxSealer sealer);
  // Seals, with the sealer, every inbox record still held as delivered (a store written
  // before sealing, or whose sealer left it as it was), in one write transaction. Damaged
  // records are left as they are. Returns how many were sealed (0 without a sealer).
  // Limitation: the old bytes stay on LMDB's freed pages until reused (see PurgeInbox).
  [[nodiscard]] Result<size_t> SealHeldEnvelopes();

  // Stores deliveries in one transaction (group commit): new ids get the next arrival
  // sequence; ids already held with the same bytes (also earlier in the same batch) are
  // duplicates and are counted; ids held with other bytes are id_reused (nothing stored). Returns
  // one outcome per delivery, in order. On error nothing is stored.
  [[nodiscard]] Result<std::vector<DeliveryOutcome>> StoreDeliveries(
      std::span<const Delivery> deliveries, UnixMillis now);
  // kNotFound if absent; kMalformed ("damaged") if the record does not check out.
  [[nodiscard]] Result<InboxRecord> GetInbox(ByteView message_id) const;
  [[nodiscard]] Result<bool> InboxContains(ByteView message_id) const;
  // Up to limit records with sequence > after_sequence, in arrival order. A damaged
  // record fails the whole read (kMalformed naming its sequence).
  [[nodiscard]] Result<std::vector<InboxRecord>> ReadInbox(uint64_t after_sequence,
                                                           size_t limit) const;

  // Purges messages (consent revoked): each record's envelope is replaced by a tombstone
  // in one transaction, so the content and its wrapped keys are gone while the id still
  // deduplicates redeliveries. Returns how many were purged (absent or already purged ids
  // are skipped). GetInbox/ReadInbox report a purged record with purged = true and an
  // empty envelope; its message id, sequence, received_ms and (if the record checked out)
  // the delivered envelope's SHA-256 stay.
  // Counters do not change (a tombstone still counts in inbox_messages). A damaged
  // record is purged too (its content must go whatever state it is in); its sequence is
  // taken from the order index, so the tombstone reads back as intact.
  //
  // Limitation: this removes the envelope from every read through this API, not from the
  // disk. LMDB has no secure delete: it writes copy-on-write, so the pages that held the
  // envelope are put on its free list with their old bytes and keep them until LMDB
  // reuses them for new writes (and a reader's snapshot open during the purge keeps
  // them readable to that reader until it ends). Anyone who can read the data file may
  // find old records there. Records kept in a sealer's form (the agent's: under the
  // grant's data key, which the purge destroys) are unreadable from then on; records kept
  // as delivered are still sealed to this agency's prekeys and readable while it holds
  // them (and disk encryption underneath the store is what protects them). To drop
  // freed pages from a file, copy the store with compaction (mdb_env_copy2 with
  // MDB_CP_COMPACT) and destroy the old file, which on SSDs and copy-on-write file
  // systems is itself no guarantee.
  [[nodiscard]] Result<size_t> PurgeInbox(std::span<const Bytes> message_ids, UnixMillis now);

  // The application has finished with every record up to sequence (durable).
  [[nodiscard]] Status SetAppCursor(uint64_t sequence);

  [[nodiscard]] Result<StoreCounters> Counters() const;

  // ---- The home broker's latest checkpoint (agent/transport_checkpoint.cpp) ----

  // Keeps checkpoint (verified by the caller) as the latest, in the meta table, in one
  // write transaction. REQUIRES: its size is above the kept one's, or nothing is kept.
  [[nodiscard]] Status KeepCheckpoint(const KeptCheckpoint& checkpoint);
  // The kept checkpoint, or nullopt; kMalformed ("damaged") if the record does not check out.
  [[nodiscard]] Result<std::optional<KeptCheckpoint>> LatestCheckpoint() const;

  // ---- Published prekeys of other agencies (agent/transport_prekeys.cpp) ----

  // Keeps signed_prekey (a serialized SignedPrekey the caller verified) as owner's newest,
  // in the meta table ("prekey/<owner>": SHA-256(bytes) || bytes), in one transaction.
  [[nodiscard]] Status KeepPublishedPrekey(const std::string& owner, ByteView signed_prekey);
  // Every kept one, in owner order. A record that fails its hash is left out and logged.
  [[nodiscard]] Result<std::vector<Bytes>> PublishedPrekeys() const;

  // The version of this agency's operator roster last queued for its broker (PROTOCOL.md
  // 9.3; meta "roster/queued-version"), 0 if none.
  [[nodiscard]] Result<uint64_t> QueuedRosterVersion() const;
  [[nodiscard]] Status KeepQueuedRosterVersion(uint64_t version);

  const std::string& dir() const { return env_->dir(); }

 private:
  TransportStore() = default;

  std::unique_ptr<lmdb::Env> env_;
  MDB_dbi outbox_ = 0;
  MDB_dbi outbox_order_ = 0;
  MDB_dbi inbox_ = 0;
  MDB_dbi inbox_order_ = 0;
  MDB_dbi meta_ = 0;
  InboxSealer inbox_sealer_;
};

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_TRANSPORT_STORE_H_
