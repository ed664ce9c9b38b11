// The matching escrow (PROTOCOL.md 13.6, issue 19 item 3): centers deposit entries about
// an identifier's pseudonym; the escrow can open them only once entries from `threshold`
// different agencies name the same pseudonym.
//
// From the pseudonym P (the 64-byte VOPRF output only agencies learn) an agency derives:
//   tag  = BLAKE2b-256("refbus/v1/escrow-tag" || P)           what the escrow indexes by
//   a_i  = BLAKE2b-512("refbus/v1/escrow-coef" || u8(i) || P) mod L, i < threshold
//          (a_0 the intercept, a_1 the slope: a line for the default threshold 2)
//   x    = BLAKE2b-512("refbus/v1/escrow-x" || agency || 0x00 || tag) mod L
//   y    = a_0 + a_1 x + ... (mod L, the ristretto255 scalar field)
//   key  = BLAKE2b-256(key = a_0, "refbus/v1/escrow-record-key")
// and seals its record (agency, case pseudonym, identifier kind, first and last seen,
// counts) with XChaCha20-Poly1305 under key, with tag || x as associated data. The entry it
// sends is (tag, y, sealed record, expiry). The escrow computes x itself from the
// authenticated agency, so an agency cannot pose as another's share. x depends on the agency
// and the entry's tag only: one agency's entries on one pseudonym are one point, so the
// escrow can open nothing from a single agency however many entries it sends. With points
// from `threshold` agencies, Lagrange interpolation at 0 gives a_0, the key, every record
// under the tag, and a linkage id BLAKE2b-128(key = a_0, "refbus/v1/linkage-id") that
// nobody without a match can compute.
//
// Storage: LMDB database "escrow_entries" in an Env the caller owns; key tag || x, value
// u64be(expires_ms) || y || u16be(len) || agency || sealed || SHA-256 check (16 bytes) over
// key and value. A record that fails its check is refused (Malformed), never used.
//
// Thread safety: one thread per Escrow (LMDB serializes writers across threads).
#ifndef REFBUS_LINKAGE_ESCROW_H_
#define REFBUS_LINKAGE_ESCROW_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/lmdb.h"
#include "core/status.h"
#include "linkage/identifier.h"
#include "linkage/two_party.h"

namespace refbus::linkage {

inline constexpr uint32_t kDefaultEscrowThreshold = 2;
inline constexpr uint32_t kMaxEscrowThreshold = 16;
inline constexpr size_t kEscrowTagBytes = 32;
inline constexpr size_t kLinkageIdBytes = 16;

// What one agency knows about one identifier, sealed in its entry.
struct EscrowRecord {
  std::string agency_id;
  std::string case_pseudonym;  // the agency's own reference for the case, not a case id
  IdentifierKind kind = IdentifierKind::kPhone;
  UnixMillis first_seen_ms = 0;
  UnixMillis last_seen_ms = 0;
  uint32_t victims = 0;  // optional counts (0: not given)
  uint32_t items = 0;
};

// What an agency sends to the escrow.
struct EscrowEntry {
  Bytes tag;            // kEscrowTagBytes
  Bytes y;              // 32: the share's value
  Bytes sealed_record;  // nonce (24) || ciphertext
  UnixMillis expires_ms = 0;
};

// How many subsets of `threshold` held points the escrow tries on one tag before it gives
// up for this entry (Escrow::Add): at threshold 2, every pair of up to 91 agencies.
inline constexpr uint32_t kMaxEscrowSubsets = 4096;

// Agency side: the entry for pseudonym p. record.agency_id is the submitting agency.
// InvalidArgument for a threshold outside [2, kMaxEscrowThreshold] or an empty agency.
Result<EscrowEntry> MakeEscrowEntry(const Pseudonym& p, const EscrowRecord& record,
                                    uint32_t threshold, UnixMillis expires_ms);
// The tag of p (for withdrawing an entry).
Bytes EscrowTag(const Pseudonym& p);

// Escrow side: an entry's sizes, its share a reduced scalar, its expiry after now.
// InvalidArgument, saying which, otherwise. Escrow::Add checks it; callers that record
// anything about an entry before adding it check it first.
Status CheckEscrowEntry(const EscrowEntry& entry, UnixMillis now);

// The escrow's finding once `threshold` agencies' entries name one tag.
struct LinkageMatch {
  Bytes linkage_id;                   // kLinkageIdBytes
  std::vector<EscrowRecord> records;  // every entry under the tag that opened
  uint32_t unopened = 0;              // entries whose record did not open (a bad share)
};

class Escrow {
 public:
  // InvalidArgument unless 2 <= threshold <= kMaxEscrowThreshold. env outlives the escrow.
  static Result<Escrow> Open(lmdb::Env& env, uint32_t threshold);

  // Stores agency's entry (replacing its earlier one on the same tag) and returns the
  // match when entries from `threshold` agencies are now held under the tag and open. agency
  // is the authenticated submitter. InvalidArgument (CheckEscrowEntry) for malformed
  // entries or an entry already expired: nothing is stored, and the agency's earlier entry
  // stays. Entries that do not open (a share off the polynomial, a record naming another
  // agency) are counted as unopened and never keep the others from matching: subsets of
  // `threshold` points are tried, at most kMaxEscrowSubsets of them.
  Result<std::optional<LinkageMatch>> Add(std::string_view agency, const EscrowEntry& entry,
                                          UnixMillis now);
  // Removes agency's entry under tag (consent revoked). Returns how many (0 or 1).
  Result<uint64_t> Withdraw(std::string_view agency, ByteView tag);
  // Removes entries whose expiry is at or before now (their case's retention ended).
  Result<uint64_t> ExpireBefore(UnixMillis now);
  // Entries held under tag (any agency), for tests and operators' counts.
  Result<uint64_t> CountUnder(ByteView tag) const;

 private:
  struct Stored;
  Escrow(lmdb::Env* env, MDB_dbi dbi, uint32_t threshold)
      : env_(env), dbi_(dbi), threshold_(threshold) {}
  Result<std::vector<Stored>> ReadUnder(const lmdb::Txn& txn, ByteView tag) const;
  Result<std::optional<LinkageMatch>> TryOpen(const std::vector<Stored>& held, ByteView tag) const;
  // The match if the key interpolated from the picked points opens each of their records.
  Result<std::optional<LinkageMatch>> OpenWith(const std::vector<Stored>& held,
                                               const std::vector<size_t>& pick, ByteView tag) const;
  lmdb::Env* env_;
  MDB_dbi dbi_;
  uint32_t threshold_;
};

}  // namespace refbus::linkage

#endif  // REFBUS_LINKAGE_ESCROW_H_
