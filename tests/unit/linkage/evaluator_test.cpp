// The evaluator's service core (linkage/evaluator.h) on a real LMDB environment: the
// per-agency daily quota, its audit counts (never the element), durability across a
// reopen, and failing closed on a damaged record. Times are given, never read from a clock.
#include "linkage/evaluator.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "linkage/identifier.h"
#include "linkage/two_party.h"
#include "tests/unit/test_util.h"

namespace refbus::linkage {
namespace {

using test::IsOk;

constexpr UnixMillis kT0 = 1'800'000'000'000;  // 2027-01-15, 08:00 UTC

std::unique_ptr<lmdb::Env> OpenEnv(const test::TempDir& dir) {
  auto env = lmdb::Env::Open(dir.Join("store"), lmdb::EnvOptions{});
  if (!env.ok()) throw std::runtime_error("cannot open LMDB: " + env.status().ToString());
  return std::move(env).value();
}

oprf::ServerKey Key() {
  auto k = oprf::ServerKey::Generate(oprf::Mode::kVoprf);
  if (!k.ok()) std::abort();
  return std::move(k).value();
}

// A fresh blinded element, as an agency would send.
oprf::Element Blinded(std::string_view phone) {
  auto id = Canonicalize(IdentifierKind::kPhone, phone);
  auto req = PseudonymRequest::Start(*id, oprf::RandomScalars());
  if (!req.ok()) std::abort();
  return req->first_request();
}

struct Fixture {
  test::TempDir dir;
  std::unique_ptr<lmdb::Env> env = OpenEnv(dir);
  oprf::ServerKey key = Key();
  std::vector<EvaluationCount> audited;

  Evaluator Make(uint32_t quota) {
    auto q = EvaluationQuota::Open(*env, quota);
    if (!q.ok()) throw std::runtime_error(q.status().ToString());
    return Evaluator(key, std::move(q).value(),
                     [this](const EvaluationCount& c) { audited.push_back(c); });
  }
};

TEST(EvaluatorTest, QuotaExceededIsRefusedAndAuditedAsACount) {
  Fixture f;
  Evaluator ev = f.Make(3);
  const oprf::Element x = Blinded("010-1234-5678");
  for (int i = 0; i < 3; ++i) {
    auto r = ev.Handle("incheon-dsc", x, kT0 + static_cast<UnixMillis>(i), oprf::RandomScalars());
    ASSERT_TRUE(IsOk(r)) << i;
    EXPECT_TRUE(oprf::VerifyProof(oprf::Mode::kVoprf, f.key.public_key(), {&x, 1},
                                  {&r->evaluated, 1}, r->proof));
  }
  auto refused = ev.Handle("incheon-dsc", x, kT0 + 10, oprf::RandomScalars());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::Code::kResourceExhausted)
      << refused.status().ToString();
  ASSERT_EQ(f.audited.size(), 4u);
  EXPECT_EQ(f.audited[2].evaluations, 3u);
  EXPECT_FALSE(f.audited[2].this_one_refused);
  const EvaluationCount& last = f.audited[3];
  EXPECT_EQ(last.agency_id, "incheon-dsc");
  EXPECT_EQ(last.day, kT0 / kMillisPerDay);
  EXPECT_EQ(last.evaluations, 3u);
  EXPECT_EQ(last.refused, 1u);
  EXPECT_EQ(last.quota, 3u);
  EXPECT_TRUE(last.this_one_refused);
  EXPECT_EQ(last.refusal, Status::Code::kResourceExhausted);
  // What goes into the audit entry: counts, never the element.
  const std::string text = last.Describe();
  EXPECT_NE(text.find("3/3"), std::string::npos) << text;
  EXPECT_NE(text.find("1 refused"), std::string::npos) << text;
  EXPECT_EQ(text.find(HexEncode(x)), std::string::npos) << text;
  EXPECT_EQ(text.find(HexEncode(ByteView(x.data(), 8))), std::string::npos) << text;
  // The next UTC day starts a new count.
  EXPECT_TRUE(IsOk(ev.Handle("incheon-dsc", x, kT0 + kMillisPerDay, oprf::RandomScalars())));
}

TEST(EvaluatorTest, EachAgencyHasItsOwnQuota) {
  Fixture f;
  Evaluator ev = f.Make(1);
  const oprf::Element x = Blinded("010-1234-5678");
  ASSERT_TRUE(IsOk(ev.Handle("incheon-dsc", x, kT0, oprf::RandomScalars())));
  EXPECT_FALSE(ev.Handle("incheon-dsc", x, kT0, oprf::RandomScalars()).ok());
  EXPECT_TRUE(IsOk(ev.Handle("seoul-dsc", x, kT0, oprf::RandomScalars())));
  auto a = ev.quota().Read("incheon-dsc", static_cast<uint32_t>(kT0 / kMillisPerDay));
  ASSERT_TRUE(IsOk(a));
  EXPECT_EQ(a->evaluations, 1u);
  EXPECT_EQ(a->refused, 1u);
}

TEST(EvaluatorTest, CountsSurviveARestart) {
  Fixture f;
  const oprf::Element x = Blinded("010-1234-5678");
  {
    Evaluator ev = f.Make(2);
    ASSERT_TRUE(IsOk(ev.Handle("incheon-dsc", x, kT0, oprf::RandomScalars())));
    ASSERT_TRUE(IsOk(ev.Handle("incheon-dsc", x, kT0, oprf::RandomScalars())));
  }
  f.env.reset();
  f.env = OpenEnv(f.dir);
  Evaluator ev = f.Make(2);
  auto r = ev.Handle("incheon-dsc", x, kT0 + 1000, oprf::RandomScalars());
  EXPECT_EQ(r.status().code(), Status::Code::kResourceExhausted) << r.status().ToString();
}

TEST(EvaluatorTest, MalformedElementIsRefusedWithoutUsingQuota) {
  Fixture f;
  Evaluator ev = f.Make(1);
  oprf::Element identity{};
  oprf::Element garbage;
  garbage.fill(0xff);
  for (const auto& e : {identity, garbage}) {
    auto r = ev.Handle("incheon-dsc", e, kT0, oprf::RandomScalars());
    EXPECT_EQ(r.status().code(), Status::Code::kMalformed) << r.status().ToString();
  }
  EXPECT_EQ(ev.Handle("incheon-dsc", Bytes(31, 1), kT0, oprf::RandomScalars()).status().code(),
            Status::Code::kMalformed);
  ASSERT_EQ(f.audited.size(), 3u);
  EXPECT_TRUE(f.audited[2].this_one_refused);
  EXPECT_EQ(f.audited[2].refusal, Status::Code::kMalformed);
  EXPECT_EQ(f.audited[2].refused, 3u);
  EXPECT_EQ(f.audited[2].evaluations, 0u);
  // The quota is untouched: the one evaluation of the day is still there.
  EXPECT_TRUE(IsOk(ev.Handle("incheon-dsc", Blinded("010-1234-5678"), kT0, oprf::RandomScalars())));
}

TEST(EvaluatorTest, ADamagedQuotaRecordFailsClosed) {
  Fixture f;
  Evaluator ev = f.Make(5);
  const oprf::Element x = Blinded("010-1234-5678");
  ASSERT_TRUE(IsOk(ev.Handle("incheon-dsc", x, kT0, oprf::RandomScalars())));
  {  // Someone resets the count on disk: evaluations 1 -> 0.
    auto dbi = f.env->OpenDb("linkage_quota");
    ASSERT_TRUE(IsOk(dbi));
    auto txn = f.env->BeginWrite();
    ASSERT_TRUE(IsOk(txn));
    Bytes key;
    Bytes value;
    {  // closed before the commit (LMDB frees a write transaction's cursors itself)
      auto cur = lmdb::Cursor::Open(*txn, *dbi);
      ASSERT_TRUE(IsOk(cur));
      auto item = cur->First();
      ASSERT_TRUE(IsOk(item));
      ASSERT_TRUE(item->has_value());
      key.assign((*item)->key.begin(), (*item)->key.end());
      value.assign((*item)->value.begin(), (*item)->value.end());
    }
    value[3] = 0;
    ASSERT_TRUE(IsOk(txn->Put(*dbi, key, value)));
    ASSERT_TRUE(IsOk(txn->Commit()));
  }
  auto r = ev.Handle("incheon-dsc", x, kT0, oprf::RandomScalars());
  EXPECT_EQ(r.status().code(), Status::Code::kMalformed) << r.status().ToString();
}

// The agency id is the broker's authenticated party id; anything else is a bug in the
// caller, refused before the store is touched (an empty id would share one count).
TEST(EvaluatorTest, AnInvalidAgencyIdIsRefused) {
  Fixture f;
  Evaluator ev = f.Make(5);
  const oprf::Element x = Blinded("010-1234-5678");
  for (const std::string& id : {std::string(), std::string(49, 'a'), std::string("a\0b", 3)}) {
    auto r = ev.Handle(id, x, kT0, oprf::RandomScalars());
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument) << r.status().ToString();
  }
  EXPECT_TRUE(f.audited.empty());
}

TEST(EvaluatorTest, QuotaMustBeSensibleAndOldDaysArePruned) {
  Fixture f;
  EXPECT_EQ(EvaluationQuota::Open(*f.env, 0).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(EvaluationQuota::Open(*f.env, kMaxDailyQuota + 1).status().code(),
            Status::Code::kInvalidArgument);
  Evaluator ev = f.Make(kDefaultDailyQuota);
  const oprf::Element x = Blinded("010-1234-5678");
  ASSERT_TRUE(IsOk(ev.Handle("incheon-dsc", x, kT0, oprf::RandomScalars())));
  ASSERT_TRUE(IsOk(ev.Handle("incheon-dsc", x, kT0 + 2 * kMillisPerDay, oprf::RandomScalars())));
  auto pruned = ev.quota().PruneBefore(static_cast<uint32_t>(kT0 / kMillisPerDay) + 1);
  ASSERT_TRUE(IsOk(pruned));
  EXPECT_EQ(*pruned, 1u);
  auto old = ev.quota().Read("incheon-dsc", static_cast<uint32_t>(kT0 / kMillisPerDay));
  ASSERT_TRUE(IsOk(old));
  EXPECT_EQ(old->evaluations, 0u);
}

}  // namespace
}  // namespace refbus::linkage
