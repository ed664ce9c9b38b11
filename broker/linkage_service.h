// The broker's linkage evaluator (PROTOCOL.md 13.4): when the broker's config has a
// [linkage] key_file, the broker answers LinkageEvaluate frames from agencies with its
// VOPRF key, under a per-agency daily quota kept in its own LMDB environment
// (<data_dir>/linkage, apart from the store so that charging a quota never waits for the
// writer's commit). What the audit log gets is the EvaluationCount of each request: never
// the element, the proof or the key. The quota store keeps the counts of the current and
// the previous UTC day: the first evaluation of a day prunes the days before those
// (EvaluationQuota::PruneBefore), so the store does not grow with the days it has run.
//
// Start refuses a key file whose public key is not the linkage key the directory lists for
// this broker (with the role linkage-evaluator): every answer would fail the agencies'
// proof checks. At run time Permitted() checks the current directory again (a reissued
// directory may drop the role or replace the key).
//
// Thread safety: the loop thread only.
#ifndef REFBUS_BROKER_LINKAGE_SERVICE_H_
#define REFBUS_BROKER_LINKAGE_SERVICE_H_

#include <memory>
#include <optional>
#include <string>

#include "core/clock.h"
#include "core/lmdb.h"
#include "core/status.h"
#include "linkage/evaluator.h"
#include "linkage/oprf.h"
#include "schema/types.h"

namespace refbus::broker {

class LinkageService {
 public:
  // The service of broker `broker_id`: the key from key_file, the quota store in
  // data_dir/linkage. FailedPrecondition if the directory does not list this key for it.
  static Result<std::unique_ptr<LinkageService>> Start(const std::string& broker_id,
                                                       const std::string& key_file,
                                                       const std::string& data_dir,
                                                       uint32_t daily_quota,
                                                       const schema::Directory& directory);

  // Ok if this broker may evaluate under the current directory; why not otherwise.
  Status Permitted(const schema::Directory& directory) const;

  // One evaluation for the authenticated agency. *count is what the audit entry says; it
  // is set whenever the request was counted (also for refusals: ResourceExhausted past
  // the quota, Malformed for a bad element).
  Result<linkage::oprf::Evaluation> Evaluate(const std::string& agency_id, ByteView element,
                                             UnixMillis now,
                                             std::optional<linkage::EvaluationCount>* count);

  // The quota store's counts of one agency and day (operators and tests).
  Result<linkage::EvaluationCount> CountOf(std::string_view agency_id, uint32_t day) const;

 private:
  LinkageService() = default;
  std::string broker_id_;
  std::unique_ptr<linkage::oprf::ServerKey> key_;
  std::unique_ptr<lmdb::Env> env_;
  std::unique_ptr<linkage::Evaluator> evaluator_;
  std::optional<linkage::EvaluationCount> last_;  // set by the evaluator's sink
  uint32_t pruned_day_ = 0;  // the UTC day whose first evaluation pruned older days
};

}  // namespace refbus::broker

#endif  // REFBUS_BROKER_LINKAGE_SERVICE_H_
