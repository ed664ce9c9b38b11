// A linkage evaluator's service core (PROTOCOL.md 13.4): one VOPRF key, a per-agency daily
// quota kept in LMDB, and a count for the audit log per evaluation, never the element.
//
// Handle() is what the evaluator's broker runs for one request from an agency whose
// identity it authenticated (ZAP User-Id, never a field the agency wrote):
//   1. the blinded element is checked (canonical ristretto255, not the identity);
//   2. the agency's count for the day (UTC) is charged in one committed LMDB write: past
//      the quota the request is refused (ResourceExhausted) and the refusal is counted;
//   3. the element is evaluated with a DLEQ proof;
//   4. the audit sink is given an EvaluationCount (agency, day, evaluations and refusals
//      so far that day, and whether this one was refused): no element, proof or key.
// A malformed element is refused before the quota is touched and reported to the sink as a
// refusal too. A quota record whose checksum does not match is refused (Malformed): the
// evaluator fails closed rather than start the day's count again.
//
// Storage: one named database "linkage_quota" in an Env the caller owns (the broker's
// store). Key: agency id || 0x00 || u32be(day). Value: u32be(evaluations) ||
// u32be(refused) || 16 bytes of SHA-256("refbus/v1/linkage-quota" || 0x00 || key ||
// counts). Old days are removed by PruneBefore().
//
// Thread safety: Handle may be called from several threads (LMDB serializes the writes;
// the key is only read); the sink is called from the calling thread.
#ifndef REFBUS_LINKAGE_EVALUATOR_H_
#define REFBUS_LINKAGE_EVALUATOR_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/lmdb.h"
#include "core/status.h"
#include "linkage/oprf.h"

namespace refbus::linkage {

inline constexpr uint32_t kDefaultDailyQuota = 300;
inline constexpr uint32_t kMaxDailyQuota = 100'000;

// What the audit log records of one request: counts only.
struct EvaluationCount {
  std::string agency_id;
  uint32_t day = 0;          // days since 1970-01-01, UTC
  uint32_t evaluations = 0;  // evaluations made for this agency this day, this one included
  uint32_t refused = 0;      // requests refused this day (quota or malformed), this one included
  uint32_t quota = 0;
  bool this_one_refused = false;
  Status::Code refusal = Status::Code::kOk;  // why this one was refused

  // One line for the audit entry's detail: "linkage evaluation: 17/300 today, 0 refused".
  std::string Describe() const;
};
using EvaluationAuditSink = std::function<void(const EvaluationCount&)>;

class EvaluationQuota {
 public:
  // Opens (creating) the "linkage_quota" database in env. InvalidArgument unless
  // 1 <= daily_quota <= kMaxDailyQuota. env must outlive the quota.
  static Result<EvaluationQuota> Open(lmdb::Env& env, uint32_t daily_quota);

  // Charges one evaluation (ok) or, past the quota, one refusal (ResourceExhausted, with the
  // counts in *count). Durable when it returns.
  Status Charge(std::string_view agency_id, UnixMillis now, EvaluationCount* count);
  // Counts one refusal for another reason (a malformed element).
  Status CountRefusal(std::string_view agency_id, UnixMillis now, EvaluationCount* count);
  // The counts of one agency and day (zeros if none).
  Result<EvaluationCount> Read(std::string_view agency_id, uint32_t day) const;
  // Removes the records of days before `day`; returns how many.
  Result<uint64_t> PruneBefore(uint32_t day);

  uint32_t daily_quota() const { return daily_quota_; }

 private:
  EvaluationQuota(lmdb::Env* env, MDB_dbi dbi, uint32_t quota)
      : env_(env), dbi_(dbi), daily_quota_(quota) {}
  Status Update(std::string_view agency_id, UnixMillis now, bool refusal_only,
                EvaluationCount* count);
  lmdb::Env* env_;
  MDB_dbi dbi_;
  uint32_t daily_quota_;
};

class Evaluator {
 public:
  // key: a VOPRF key (FailedPrecondition otherwise, at Handle).
  Evaluator(const oprf::ServerKey& key, EvaluationQuota quota, EvaluationAuditSink sink)
      : key_(key), quota_(std::move(quota)), sink_(std::move(sink)) {}

  // One evaluation for the authenticated agency (see the file comment). InvalidArgument,
  // before anything is counted, if agency_id is not a party id (PROTOCOL.md section 2).
  Result<oprf::Evaluation> Handle(std::string_view agency_id, ByteView blinded_element,
                                  UnixMillis now, const oprf::ScalarSource& scalars);

  EvaluationQuota& quota() { return quota_; }

 private:
  const oprf::ServerKey& key_;
  EvaluationQuota quota_;
  EvaluationAuditSink sink_;
};

}  // namespace refbus::linkage

#endif  // REFBUS_LINKAGE_EVALUATOR_H_
