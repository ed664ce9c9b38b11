// The evaluator's quota and request handling (see evaluator.h).
#include "linkage/evaluator.h"

#include <algorithm>
#include <utility>

#include "core/hash.h"
#include "keys/crypto.h"

namespace refbus::linkage {
namespace {

constexpr std::string_view kQuotaDb = "linkage_quota";
constexpr std::string_view kQuotaLabel = "refbus/v1/linkage-quota";
constexpr size_t kCountsBytes = 8;
constexpr size_t kCheckBytes = 16;

uint32_t DayOf(UnixMillis now) { return static_cast<uint32_t>(now / kMillisPerDay); }

Bytes QuotaKey(std::string_view agency_id, uint32_t day) {
  Bytes key = ToBytes(agency_id);
  key.push_back(0);
  AppendU32BigEndian(key, day);
  return key;
}

uint32_t ReadU32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

Bytes Check(ByteView key, ByteView counts) {
  Bytes in = ToBytes(kQuotaLabel);
  in.push_back(0);
  AppendLengthPrefixed(in, key);
  Append(in, counts);
  const Sha256Digest d = Sha256Array(in);
  return Bytes(d.begin(), d.begin() + kCheckBytes);
}

Bytes EncodeCounts(ByteView key, uint32_t evaluations, uint32_t refused) {
  Bytes v;
  AppendU32BigEndian(v, evaluations);
  AppendU32BigEndian(v, refused);
  Append(v, Check(key, v));
  return v;
}

// Counts from a stored value; Malformed if its checksum does not match.
Status DecodeCounts(ByteView key, ByteView value, EvaluationCount& out) {
  if (value.size() != kCountsBytes + kCheckBytes)
    return Malformed("linkage quota record has the wrong size");
  if (!keys::ConstantTimeEquals(Check(key, value.first(kCountsBytes)), value.subspan(kCountsBytes)))
    return Malformed("linkage quota record does not match its checksum");
  out.evaluations = ReadU32(value.data());
  out.refused = ReadU32(value.data() + 4);
  return Status::Ok();
}

}  // namespace

std::string EvaluationCount::Describe() const {
  std::string s = "linkage evaluation: " + std::to_string(evaluations) + "/" +
                  std::to_string(quota) + " on UTC day " + std::to_string(day) + ", " +
                  std::to_string(refused) + " refused";
  if (this_one_refused) s += "; this request refused (" + std::string(CodeName(refusal)) + ")";
  return s;
}

Result<EvaluationQuota> EvaluationQuota::Open(lmdb::Env& env, uint32_t daily_quota) {
  if (daily_quota < 1 || daily_quota > kMaxDailyQuota)
    return InvalidArgument("linkage daily quota must be between 1 and " +
                           std::to_string(kMaxDailyQuota));
  REFBUS_ASSIGN_OR_RETURN(const MDB_dbi dbi, env.OpenDb(std::string(kQuotaDb)));
  return EvaluationQuota(&env, dbi, daily_quota);
}

Status EvaluationQuota::Update(std::string_view agency_id, UnixMillis now, bool refusal_only,
                               EvaluationCount* count) {
  EvaluationCount c;
  c.agency_id = std::string(agency_id);
  c.day = DayOf(now);
  c.quota = daily_quota_;
  const Bytes key = QuotaKey(agency_id, c.day);
  REFBUS_ASSIGN_OR_RETURN(auto txn, env_->BeginWrite());
  auto old = txn.Get(dbi_, key);
  if (old.ok()) {
    REFBUS_RETURN_IF_ERROR(DecodeCounts(key, *old, c));
  } else if (old.status().code() != Status::Code::kNotFound) {
    return old.status();
  }
  const bool over = !refusal_only && c.evaluations >= daily_quota_;
  if (refusal_only || over) {
    c.refused = std::min<uint32_t>(c.refused, UINT32_MAX - 1) + 1;
  } else {
    ++c.evaluations;
  }
  REFBUS_RETURN_IF_ERROR(txn.Put(dbi_, key, EncodeCounts(key, c.evaluations, c.refused)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  c.this_one_refused = refusal_only || over;
  if (over) c.refusal = Status::Code::kResourceExhausted;
  if (count != nullptr) *count = c;
  if (over)
    return ResourceExhausted("linkage evaluation quota of " + std::to_string(daily_quota_) +
                             " a day used up for this agency; try again tomorrow (UTC)");
  return Status::Ok();
}

Status EvaluationQuota::Charge(std::string_view agency_id, UnixMillis now, EvaluationCount* count) {
  return Update(agency_id, now, false, count);
}

Status EvaluationQuota::CountRefusal(std::string_view agency_id, UnixMillis now,
                                     EvaluationCount* count) {
  return Update(agency_id, now, true, count);
}

Result<EvaluationCount> EvaluationQuota::Read(std::string_view agency_id, uint32_t day) const {
  EvaluationCount c;
  c.agency_id = std::string(agency_id);
  c.day = day;
  c.quota = daily_quota_;
  const Bytes key = QuotaKey(agency_id, day);
  REFBUS_ASSIGN_OR_RETURN(auto txn, env_->BeginRead());
  auto v = txn.Get(dbi_, key);
  if (!v.ok()) {
    if (v.status().code() == Status::Code::kNotFound) return c;
    return v.status();
  }
  REFBUS_RETURN_IF_ERROR(DecodeCounts(key, *v, c));
  return c;
}

Result<uint64_t> EvaluationQuota::PruneBefore(uint32_t day) {
  REFBUS_ASSIGN_OR_RETURN(auto txn, env_->BeginWrite());
  uint64_t removed = 0;
  {  // The cursor closes before the commit: LMDB frees a write transaction's cursors itself.
    REFBUS_ASSIGN_OR_RETURN(auto cur, lmdb::Cursor::Open(txn, dbi_));
    REFBUS_ASSIGN_OR_RETURN(auto item, cur.First());
    while (item.has_value()) {
      const ByteView k = item->key;
      if (k.size() >= 5 && ReadU32(k.data() + k.size() - 4) < day) {
        REFBUS_RETURN_IF_ERROR(cur.DeleteCurrent());
        ++removed;
      }
      REFBUS_ASSIGN_OR_RETURN(item, cur.Next());
    }
  }
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return removed;
}

Result<oprf::Evaluation> Evaluator::Handle(std::string_view agency_id, ByteView blinded_element,
                                           UnixMillis now, const oprf::ScalarSource& scalars) {
  if (key_.mode() != oprf::Mode::kVoprf)
    return FailedPrecondition("linkage evaluator key is not a VOPRF key");
  const bool id_ok = !agency_id.empty() && agency_id.size() <= 48 &&
                     std::all_of(agency_id.begin(), agency_id.end(), [](char c) {
                       return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
                     });
  if (!id_ok) return InvalidArgument("linkage evaluation: not a party id");
  EvaluationCount count;
  auto element = oprf::DeserializeElement(blinded_element);
  if (!element.ok()) {
    REFBUS_RETURN_IF_ERROR(quota_.CountRefusal(agency_id, now, &count));
    count.refusal = element.status().code();
    sink_(count);
    return element.status();
  }
  const Status charged = quota_.Charge(agency_id, now, &count);
  if (!charged.ok()) {
    if (charged.code() == Status::Code::kResourceExhausted) sink_(count);
    return charged;
  }
  sink_(count);
  return oprf::BlindEvaluate(key_, *element, scalars);
}

}  // namespace refbus::linkage
