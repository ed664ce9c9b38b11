// The broker's linkage evaluator service (broker/linkage_service.h): its quota store keeps
// the current and the previous UTC day only; the first evaluation of a day prunes older
// days (issue 19: PruneBefore was never called, so the store grew by a record per agency
// and day forever).
#include <gtest/gtest.h>

#include <string>

#include "broker/linkage_service.h"
#include "linkage/evaluator_key.h"
#include "linkage/identifier.h"
#include "linkage/oprf.h"
#include "tests/unit/test_util.h"

namespace refbus::broker {
// Named after the file: unity batches share one scope.
namespace linkage_service_test {

using test::Must;

constexpr UnixMillis kDay0 = 20'000 * kMillisPerDay + 3'600'000;  // 01:00 UTC of day 20000

TEST(LinkageServiceTest, FirstEvaluationOfADayPrunesDaysBeforeYesterday) {
  test::TempDir dir;
  auto key = Must(linkage::oprf::ServerKey::Generate(linkage::oprf::Mode::kVoprf));
  const std::string key_file = dir.Join("linkage.key");
  Must(linkage::SaveEvaluatorKey(key, key_file));
  schema::Directory directory;
  schema::Party me;
  me.id = "eval-broker";
  me.kind = schema::PartyKind::kBroker;
  me.roles = {schema::Role::kLinkageEvaluator};
  schema::KeyRecord k;
  k.linkage_key.assign(key.public_key().begin(), key.public_key().end());
  me.keys.push_back(k);
  directory.brokers.push_back(me);
  auto service = Must(LinkageService::Start("eval-broker", key_file, dir.path(), 300, directory));

  const auto id = Must(linkage::Canonicalize(linkage::IdentifierKind::kPhone, "010-1234-5678"));
  auto blind = Must(linkage::oprf::Blind(linkage::oprf::Mode::kVoprf, id.OprfInput(),
                                         linkage::oprf::RandomScalars()));
  const auto& element = blind.blinded_element();
  auto evaluate = [&](UnixMillis now) {
    std::optional<linkage::EvaluationCount> count;
    auto r =
        service->Evaluate("seoul-center", ByteView(element.data(), element.size()), now, &count);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  };
  const uint32_t day0 = static_cast<uint32_t>(kDay0 / kMillisPerDay);
  evaluate(kDay0);
  evaluate(kDay0 + kMillisPerDay);  // the next day: day0 is yesterday and stays
  EXPECT_EQ(Must(service->CountOf("seoul-center", day0)).evaluations, 1u);
  evaluate(kDay0 + 2 * kMillisPerDay);  // two days on: day0 is gone, day0 + 1 stays
  EXPECT_EQ(Must(service->CountOf("seoul-center", day0)).evaluations, 0u);
  EXPECT_EQ(Must(service->CountOf("seoul-center", day0 + 1)).evaluations, 1u);
  EXPECT_EQ(Must(service->CountOf("seoul-center", day0 + 2)).evaluations, 1u);
}

}  // namespace linkage_service_test
}  // namespace refbus::broker
