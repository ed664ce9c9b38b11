// The byte layouts of the broker store's keys and values (broker/store.h), for the store's
// own files (store.cpp, store_commit.cpp) only: nothing else reads LMDB values directly.
//
// Sealed records: every value that matters (stored envelopes, consent grants, audit
// checkpoints) is stored as SHA-256(body) || body and checked on every read (LMDB has no
// page checksums). SealRecord and OpenSealedRecord are the one place that writes and
// checks that hash; the Encode*/Decode* functions below lay out and parse the bodies.
//
// Thread safety: plain functions over the bytes they are given; ByteViews returned point
// into the bytes passed in (valid as long as those are).
#ifndef REFBUS_BROKER_STORE_RECORDS_H_
#define REFBUS_BROKER_STORE_RECORDS_H_

#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "broker/store.h"
#include "core/bytes.h"
#include "core/clock.h"
#include "core/lmdb.h"
#include "core/status.h"
#include "schema/types.h"

namespace refbus::broker::records {

// Format 2 adds the audit Merkle tree and checkpoints (audit_log.h); format 1 stores are
// upgraded at Open. A binary that knows only format 1 refuses a format 2 store instead of
// appending entries without tree nodes.
inline constexpr uint8_t kRecordVersion = 1;
// Envelope records since federation: version 2 adds the hop count after the expiry.
inline constexpr uint8_t kEnvelopeRecordV2 = 2;
inline constexpr size_t kHashBytes = 32;  // SHA-256

// A published prekey in the "ctlq" control queue is stored behind this byte (a consent
// revocation is stored as its SignedStatement, whose first byte is a field tag, never 0).
inline constexpr uint8_t kPrekeyControlTag = 0;

// SHA-256(body) || body.
Bytes SealRecord(ByteView body);
// The body of a sealed record whose body has at least min_body_bytes; Malformed with the
// reason alone ("too short", "hash mismatch") for the caller to name the record.
Result<ByteView> OpenSealedRecord(ByteView stored, size_t min_body_bytes);

inline ByteView Key(std::string_view s) { return AsBytes(s); }

// "mbox" and "ctlq" keys: owner \0 u64be seq.
Bytes MailboxKey(const std::string& recipient, uint64_t seq);
// A mailbox entry's value: the message id, then for a link mailbox the recipients the
// entry is carried for (count, then length-prefixed ids).
Bytes MailboxValue(ByteView message_id, const std::vector<std::string>* serves);
// Whether a mailbox entry's value names message_id.
bool ValueIs(ByteView value, ByteView message_id);
// The recipients a link mailbox entry is carried for (empty for an agency's own mailbox).
Result<std::vector<std::string>> ServesOf(ByteView value);
const std::vector<std::string>* ServesFor(const std::map<std::string, std::vector<std::string>>& m,
                                          const std::string& target);
// "sender_counts" keys: sender \0 mailbox -> envelopes from sender waiting in mailbox.
Bytes SenderKey(const std::string& sender, const std::string& mailbox);
// "expiry" keys: u64be expires || message id.
Bytes ExpiryKey(uint64_t expires, ByteView message_id);

// "seen" values (message id -> until when it deduplicates): u64be expires || SHA-256 of
// the envelope bytes stored under it, so that only the very same bytes are a duplicate.
// Values written before the hash was added are the 8 bytes of the expiry alone.
inline constexpr size_t kSeenBytes = 8 + kHashBytes;
Bytes SeenValue(UnixMillis expires, ByteView envelope_sha256);
// Whether a link mailbox entry (serves: the recipients it is carried for) or an agency's
// own mailbox (serves null: the mailbox is the agency's) is for recipients of h only.
bool ServesRecipients(const schema::EnvelopeHeader& h, const std::string& mailbox,
                      const std::vector<std::string>* serves);

// "revoked_unknown" values: revoked_by, case_ref (length-prefixed), revoked_at.
struct Tombstone {
  std::string revoked_by;
  std::string case_ref;
  UnixMillis revoked_at_ms = 0;
};
Bytes EncodeTombstone(const schema::ConsentRevocation& r);
std::optional<Tombstone> DecodeTombstone(ByteView v);

// A counter (u64be); a missing key reads as 0.
Result<uint64_t> GetU64(const lmdb::Txn& txn, MDB_dbi dbi, ByteView key);
Status PutU64(lmdb::Txn& txn, MDB_dbi dbi, ByteView key, uint64_t v);

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

// A stored envelope record ("msgs"), decoded.
struct Record {
  UnixMillis accepted_ms = 0;
  UnixMillis expires_ms = 0;
  std::vector<std::pair<std::string, uint64_t>> mailboxes;  // recipient, seq
  ByteView envelope;                                        // into the stored bytes
  uint8_t hops = 0;                                         // brokers it passed before this one
  std::string sender;  // the envelope's sender (per-sender quotas); empty in version 1
};
// A sealed record, body = u8 version (2) || u64be accepted || u64be expires || u8 hops ||
// sender (length-prefixed) || u16be count of (mailbox, u64be seq) || u32be-prefixed envelope.
Bytes EncodeRecord(UnixMillis accepted, UnixMillis expires, uint8_t hops, const std::string& sender,
                   const std::vector<std::pair<std::string, uint64_t>>& mailboxes,
                   ByteView envelope);
// Reads versions 1 and 2. Malformed ("stored envelope <id> is damaged (...)") when the
// record fails its hash or does not parse.
Result<Record> DecodeRecord(ByteView stored, ByteView message_id);

// A stored grant: sealed, body = u8 version || u8 revoked || u64be revoked_at_ms ||
// signed grant bytes.
Bytes EncodeGrantRecord(ByteView signed_grant, bool revoked, UnixMillis revoked_at);
Result<GrantState> DecodeGrantRecord(ByteView stored, ByteView grant_id);
// nullopt: not registered.
Result<std::optional<GrantState>> LoadGrant(lmdb::Txn& txn, MDB_dbi dbi, ByteView grant_id);

}  // namespace refbus::broker::records

#endif  // REFBUS_BROKER_STORE_RECORDS_H_
