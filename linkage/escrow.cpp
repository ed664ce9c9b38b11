// The matching escrow (see escrow.h).
#include "linkage/escrow.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <utility>

#include "core/hash.h"
#include "keys/crypto.h"
#include "linkage/oprf.h"

namespace refbus::linkage {
namespace {

constexpr std::string_view kEscrowDb = "escrow_entries";
constexpr size_t kEscrowScalarBytes = crypto_core_ristretto255_SCALARBYTES;
constexpr size_t kEscrowNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kEscrowCheckBytes = 16;
constexpr size_t kEscrowMaxText = 256;  // agency id and case pseudonym, each
using EscrowScalar = std::array<uint8_t, kEscrowScalarBytes>;

ByteView EscrowView(std::string_view s) {
  return ByteView(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// BLAKE2b-512 of label || parts, reduced modulo the group order.
EscrowScalar EscrowHashToScalar(std::string_view label, std::initializer_list<ByteView> parts) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, 64);
  crypto_generichash_update(&st, reinterpret_cast<const uint8_t*>(label.data()), label.size());
  for (ByteView p : parts) crypto_generichash_update(&st, p.data(), p.size());
  std::array<uint8_t, 64> wide{};
  crypto_generichash_final(&st, wide.data(), wide.size());
  EscrowScalar s{};
  crypto_core_ristretto255_scalar_reduce(s.data(), wide.data());
  sodium_memzero(wide.data(), wide.size());
  return s;
}

EscrowScalar EscrowX(std::string_view agency, ByteView tag) {
  const uint8_t zero = 0;
  return EscrowHashToScalar("refbus/v1/escrow-x", {EscrowView(agency), ByteView(&zero, 1), tag});
}

// The polynomial's coefficients from the pseudonym. The caller wipes them.
std::vector<EscrowScalar> EscrowCoefficients(const Pseudonym& p, uint32_t threshold) {
  std::vector<EscrowScalar> a(threshold);
  for (uint32_t i = 0; i < threshold; ++i) {
    const auto index = static_cast<uint8_t>(i);
    a[i] = EscrowHashToScalar("refbus/v1/escrow-coef", {ByteView(&index, 1), ByteView(p)});
  }
  return a;
}

std::array<uint8_t, 32> EscrowRecordKey(const EscrowScalar& a0) {
  std::array<uint8_t, 32> k{};
  constexpr std::string_view kLabel = "refbus/v1/escrow-record-key";
  crypto_generichash(k.data(), k.size(), reinterpret_cast<const uint8_t*>(kLabel.data()),
                     kLabel.size(), a0.data(), a0.size());
  return k;
}

Bytes EscrowAd(ByteView tag, const EscrowScalar& x) {
  Bytes ad(tag.begin(), tag.end());
  ad.insert(ad.end(), x.begin(), x.end());
  return ad;
}

Bytes EncodeEscrowRecord(const EscrowRecord& r) {
  Bytes out;
  AppendLengthPrefixed(out, EscrowView(r.agency_id));
  AppendLengthPrefixed(out, EscrowView(r.case_pseudonym));
  out.push_back(static_cast<uint8_t>(r.kind));
  AppendU64BigEndian(out, r.first_seen_ms);
  AppendU64BigEndian(out, r.last_seen_ms);
  AppendU32BigEndian(out, r.victims);
  AppendU32BigEndian(out, r.items);
  return out;
}

uint64_t EscrowReadBe(ByteView b, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | b[i];
  return v;
}

Result<EscrowRecord> DecodeEscrowRecord(ByteView b) {
  EscrowRecord r;
  auto text = [&](std::string& out) -> Status {
    if (b.size() < 4) return Malformed("escrow record is truncated");
    const uint64_t n = EscrowReadBe(b, 4);
    if (n > kEscrowMaxText || b.size() < 4 + n) return Malformed("escrow record is truncated");
    out.assign(reinterpret_cast<const char*>(b.data() + 4), n);
    b = b.subspan(4 + n);
    return Status::Ok();
  };
  REFBUS_RETURN_IF_ERROR(text(r.agency_id));
  REFBUS_RETURN_IF_ERROR(text(r.case_pseudonym));
  if (b.size() != 1 + 8 + 8 + 4 + 4) return Malformed("escrow record has the wrong size");
  auto kind = ParseKind(KindName(static_cast<IdentifierKind>(b[0])));
  if (!kind.ok()) return Malformed("escrow record has an unknown identifier kind");
  r.kind = *kind;
  r.first_seen_ms = EscrowReadBe(b.subspan(1), 8);
  r.last_seen_ms = EscrowReadBe(b.subspan(9), 8);
  r.victims = static_cast<uint32_t>(EscrowReadBe(b.subspan(17), 4));
  r.items = static_cast<uint32_t>(EscrowReadBe(b.subspan(21), 4));
  return r;
}

Bytes EscrowCheck(ByteView key, ByteView value) {
  Bytes in = ToBytes("refbus/v1/escrow-entry");
  in.push_back(0);
  AppendLengthPrefixed(in, key);
  Append(in, value);
  const Sha256Digest d = Sha256Array(in);
  return Bytes(d.begin(), d.begin() + kEscrowCheckBytes);
}

// The record sealed under key with associated data ad, if it opens and decodes.
std::optional<EscrowRecord> OpenEscrowRecord(ByteView sealed, const Bytes& ad,
                                             const std::array<uint8_t, 32>& key) {
  Bytes plain(sealed.size());
  unsigned long long plen = 0;
  const bool opened =
      crypto_aead_xchacha20poly1305_ietf_decrypt(
          plain.data(), &plen, nullptr, sealed.data() + kEscrowNonceBytes,
          sealed.size() - kEscrowNonceBytes, ad.data(), ad.size(), sealed.data(), key.data()) == 0;
  auto record = opened ? DecodeEscrowRecord(ByteView(plain.data(), plen))
                       : Result<EscrowRecord>(Malformed("not opened"));
  sodium_memzero(plain.data(), plain.size());
  if (!record.ok()) return std::nullopt;
  return std::move(record).value();
}

// The next subset of pick.size() indices below n in lexicographic order; false after the
// last one.
bool NextEscrowSubset(std::vector<size_t>& pick, size_t n) {
  const size_t t = pick.size();
  for (size_t i = t; i-- > 0;) {
    if (pick[i] < n - t + i) {
      ++pick[i];
      for (size_t j = i + 1; j < t; ++j) pick[j] = pick[j - 1] + 1;
      return true;
    }
  }
  return false;
}

}  // namespace

struct Escrow::Stored {
  std::string agency;
  EscrowScalar x{};
  EscrowScalar y{};
  Bytes sealed;
  UnixMillis expires_ms = 0;
};

Bytes EscrowTag(const Pseudonym& p) {
  Bytes tag(kEscrowTagBytes);
  constexpr std::string_view kLabel = "refbus/v1/escrow-tag";
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, tag.size());
  crypto_generichash_update(&st, reinterpret_cast<const uint8_t*>(kLabel.data()), kLabel.size());
  crypto_generichash_update(&st, p.data(), p.size());
  crypto_generichash_final(&st, tag.data(), tag.size());
  return tag;
}

Result<EscrowEntry> MakeEscrowEntry(const Pseudonym& p, const EscrowRecord& record,
                                    uint32_t threshold, UnixMillis expires_ms) {
  if (threshold < 2 || threshold > kMaxEscrowThreshold)
    return InvalidArgument("escrow threshold must be between 2 and 16");
  if (record.agency_id.empty() || record.agency_id.size() > kEscrowMaxText ||
      record.case_pseudonym.size() > kEscrowMaxText)
    return InvalidArgument("escrow record: agency id or case pseudonym empty or too long");
  EscrowEntry e;
  e.tag = EscrowTag(p);
  e.expires_ms = expires_ms;
  const EscrowScalar x = EscrowX(record.agency_id, e.tag);
  std::vector<EscrowScalar> a = EscrowCoefficients(p, threshold);
  // Horner: y = (((a_{t-1}) x + a_{t-2}) x + ...) x + a_0.
  EscrowScalar y = a.back();
  for (size_t i = a.size() - 1; i-- > 0;) {
    crypto_core_ristretto255_scalar_mul(y.data(), y.data(), x.data());
    crypto_core_ristretto255_scalar_add(y.data(), y.data(), a[i].data());
  }
  e.y.assign(y.begin(), y.end());
  std::array<uint8_t, 32> key = EscrowRecordKey(a[0]);
  for (auto& c : a) sodium_memzero(c.data(), c.size());
  Bytes plain = EncodeEscrowRecord(record);
  const Bytes ad = EscrowAd(e.tag, x);
  e.sealed_record.resize(kEscrowNonceBytes + plain.size() +
                         crypto_aead_xchacha20poly1305_ietf_ABYTES);
  randombytes_buf(e.sealed_record.data(), kEscrowNonceBytes);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(e.sealed_record.data() + kEscrowNonceBytes, &clen,
                                             plain.data(), plain.size(), ad.data(), ad.size(),
                                             nullptr, e.sealed_record.data(), key.data());
  sodium_memzero(key.data(), key.size());
  sodium_memzero(plain.data(), plain.size());
  return e;
}

Result<Escrow> Escrow::Open(lmdb::Env& env, uint32_t threshold) {
  if (threshold < 2 || threshold > kMaxEscrowThreshold)
    return InvalidArgument("escrow threshold must be between 2 and 16");
  REFBUS_ASSIGN_OR_RETURN(const MDB_dbi dbi, env.OpenDb(std::string(kEscrowDb)));
  return Escrow(&env, dbi, threshold);
}

Result<std::vector<Escrow::Stored>> Escrow::ReadUnder(const lmdb::Txn& txn, ByteView tag) const {
  std::vector<Stored> out;
  REFBUS_ASSIGN_OR_RETURN(auto cur, lmdb::Cursor::Open(txn, dbi_));
  REFBUS_ASSIGN_OR_RETURN(auto item, cur.Seek(tag));
  while (item.has_value() && item->key.size() == kEscrowTagBytes + kEscrowScalarBytes &&
         std::equal(tag.begin(), tag.end(), item->key.begin())) {
    const ByteView v = item->value;
    if (v.size() < 8 + kEscrowScalarBytes + 2 + kEscrowCheckBytes ||
        !keys::ConstantTimeEquals(EscrowCheck(item->key, v.first(v.size() - kEscrowCheckBytes)),
                                  v.last(kEscrowCheckBytes)))
      return Malformed("escrow entry does not match its checksum");
    Stored s;
    std::copy_n(item->key.begin() + kEscrowTagBytes, kEscrowScalarBytes, s.x.begin());
    s.expires_ms = EscrowReadBe(v, 8);
    std::copy_n(v.begin() + 8, kEscrowScalarBytes, s.y.begin());
    const size_t at = 8 + kEscrowScalarBytes;
    const size_t n = EscrowReadBe(v.subspan(at), 2);
    if (v.size() < at + 2 + n + kEscrowCheckBytes) return Malformed("escrow entry is truncated");
    s.agency.assign(reinterpret_cast<const char*>(v.data() + at + 2), n);
    s.sealed.assign(v.begin() + static_cast<long>(at + 2 + n), v.end() - kEscrowCheckBytes);
    out.push_back(std::move(s));
    REFBUS_ASSIGN_OR_RETURN(item, cur.Next());
  }
  return out;
}

Status CheckEscrowEntry(const EscrowEntry& entry, UnixMillis now) {
  if (entry.tag.size() != kEscrowTagBytes || entry.y.size() != kEscrowScalarBytes ||
      entry.sealed_record.size() <= kEscrowNonceBytes + crypto_aead_xchacha20poly1305_ietf_ABYTES ||
      entry.sealed_record.size() > 4096)
    return InvalidArgument("escrow entry: wrong tag, share or record size");
  // Every point is a scalar below the group order: an unreduced y is another encoding of a
  // point some share may already hold, and is refused rather than reduced.
  if (!oprf::IsCanonicalScalar(entry.y))
    return InvalidArgument("escrow entry: the share is not reduced modulo the group order");
  if (entry.expires_ms <= now) return InvalidArgument("escrow entry has already expired");
  return Status::Ok();
}

Result<std::optional<LinkageMatch>> Escrow::Add(std::string_view agency, const EscrowEntry& entry,
                                                UnixMillis now) {
  if (agency.empty() || agency.size() > kEscrowMaxText)
    return InvalidArgument("escrow: not an agency id");
  REFBUS_RETURN_IF_ERROR(CheckEscrowEntry(entry, now));
  const EscrowScalar x = EscrowX(agency, entry.tag);
  Bytes key = entry.tag;
  key.insert(key.end(), x.begin(), x.end());
  Bytes value;
  AppendU64BigEndian(value, entry.expires_ms);
  Append(value, entry.y);
  value.push_back(static_cast<uint8_t>(agency.size() >> 8));
  value.push_back(static_cast<uint8_t>(agency.size()));
  Append(value, EscrowView(agency));
  Append(value, entry.sealed_record);
  Append(value, EscrowCheck(key, value));
  REFBUS_ASSIGN_OR_RETURN(auto txn, env_->BeginWrite());
  REFBUS_RETURN_IF_ERROR(txn.Put(dbi_, key, value));
  REFBUS_ASSIGN_OR_RETURN(auto held, ReadUnder(txn, entry.tag));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return TryOpen(held, entry.tag);
}

// One point per agency (x is a function of the agency and the tag: one agency has one).
// A share off the polynomial (a lying or faulty agency, or one whose record names another
// agency) gives a wrong a_0 in every subset that holds it, so subsets of `threshold`
// points are tried in turn until one's key opens each of that subset's own records: such a
// share can neither open anything nor keep the honest ones from matching.
Result<std::optional<LinkageMatch>> Escrow::TryOpen(const std::vector<Stored>& held,
                                                    ByteView tag) const {
  if (held.size() < threshold_) return std::optional<LinkageMatch>();
  std::vector<size_t> pick(threshold_);
  for (size_t i = 0; i < pick.size(); ++i) pick[i] = i;
  for (uint32_t tried = 0; tried < kMaxEscrowSubsets; ++tried) {
    REFBUS_ASSIGN_OR_RETURN(auto match, OpenWith(held, pick, tag));
    if (match.has_value()) return match;
    if (!NextEscrowSubset(pick, held.size())) break;
  }
  return std::optional<LinkageMatch>();
}

Result<std::optional<LinkageMatch>> Escrow::OpenWith(const std::vector<Stored>& held,
                                                     const std::vector<size_t>& pick,
                                                     ByteView tag) const {
  // a_0 = sum_j y_j prod_{m != j} x_m / (x_m - x_j), over the picked points.
  EscrowScalar a0{};
  for (size_t j : pick) {
    EscrowScalar term = held[j].y;
    for (size_t m : pick) {
      if (m == j) continue;
      EscrowScalar diff{}, inv{};
      crypto_core_ristretto255_scalar_sub(diff.data(), held[m].x.data(), held[j].x.data());
      if (crypto_core_ristretto255_scalar_invert(inv.data(), diff.data()) != 0)
        return Internal("escrow: two agencies share a point");
      crypto_core_ristretto255_scalar_mul(term.data(), term.data(), held[m].x.data());
      crypto_core_ristretto255_scalar_mul(term.data(), term.data(), inv.data());
    }
    crypto_core_ristretto255_scalar_add(a0.data(), a0.data(), term.data());
  }
  std::array<uint8_t, 32> key = EscrowRecordKey(a0);
  // A record naming another agency than the one that deposited it is not believed.
  auto open = [&](const Stored& s) {
    auto r = OpenEscrowRecord(s.sealed, EscrowAd(tag, s.x), key);
    return r.has_value() && r->agency_id == s.agency ? r : std::nullopt;
  };
  bool all_picked_open = true;
  for (size_t j : pick) all_picked_open = all_picked_open && open(held[j]).has_value();
  std::optional<LinkageMatch> found;
  if (all_picked_open) {
    LinkageMatch match;
    match.linkage_id.resize(kLinkageIdBytes);
    constexpr std::string_view kLabel = "refbus/v1/linkage-id";
    crypto_generichash(match.linkage_id.data(), kLinkageIdBytes,
                       reinterpret_cast<const uint8_t*>(kLabel.data()), kLabel.size(), a0.data(),
                       a0.size());
    std::map<std::string, int> agencies;
    for (const auto& s : held) {
      auto record = open(s);
      if (!record.has_value()) {
        ++match.unopened;
        continue;
      }
      ++agencies[record->agency_id];
      match.records.push_back(std::move(*record));
    }
    if (agencies.size() >= threshold_) found = std::move(match);
  }
  sodium_memzero(a0.data(), a0.size());
  sodium_memzero(key.data(), key.size());
  return found;
}

Result<uint64_t> Escrow::Withdraw(std::string_view agency, ByteView tag) {
  if (tag.size() != kEscrowTagBytes) return InvalidArgument("escrow: wrong tag size");
  const EscrowScalar x = EscrowX(agency, tag);
  Bytes key(tag.begin(), tag.end());
  key.insert(key.end(), x.begin(), x.end());
  REFBUS_ASSIGN_OR_RETURN(auto txn, env_->BeginWrite());
  Status s = txn.Del(dbi_, key);
  if (s.code() == Status::Code::kNotFound) return uint64_t{0};
  REFBUS_RETURN_IF_ERROR(s);
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return uint64_t{1};
}

Result<uint64_t> Escrow::ExpireBefore(UnixMillis now) {
  REFBUS_ASSIGN_OR_RETURN(auto txn, env_->BeginWrite());
  uint64_t removed = 0;
  {  // The cursor closes before the commit (LMDB frees a write transaction's cursors).
    REFBUS_ASSIGN_OR_RETURN(auto cur, lmdb::Cursor::Open(txn, dbi_));
    REFBUS_ASSIGN_OR_RETURN(auto item, cur.First());
    while (item.has_value()) {
      if (item->value.size() >= 8 && EscrowReadBe(item->value, 8) <= now) {
        REFBUS_RETURN_IF_ERROR(cur.DeleteCurrent());
        ++removed;
      }
      REFBUS_ASSIGN_OR_RETURN(item, cur.Next());
    }
  }
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return removed;
}

Result<uint64_t> Escrow::CountUnder(ByteView tag) const {
  REFBUS_ASSIGN_OR_RETURN(auto txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(auto held, ReadUnder(txn, tag));
  return uint64_t{held.size()};
}

}  // namespace refbus::linkage
