// CaseStore: JSON records with their own SHA-256, damage detected on read.
#include "agent/case_store.h"

#include <gtest/gtest.h>

#include "tests/unit/test_util.h"

namespace refbus::agent {
namespace {

using ::refbus::test::TempDir;

TEST(CaseStoreTest, PutGetListDeleteAcrossReopen) {
  TempDir dir;
  {
    auto store = test::Must(CaseStore::Open(dir.Join("cases")));
    auto txn = test::Must(store->Begin(true));
    ASSERT_TRUE(txn.Put(Table::kReferrals, "b", {{"state", "accepted"}}).ok());
    ASSERT_TRUE(txn.Put(Table::kReferrals, "a", {{"state", "requested"}}).ok());
    ASSERT_TRUE(txn.Put(Table::kCases, "case-1", {{"lead", "x"}}).ok());
    ASSERT_TRUE(txn.Commit().ok());
  }
  auto store = test::Must(CaseStore::Open(dir.Join("cases")));
  {
    auto txn = test::Must(store->Begin(false));
    auto a = test::Must(txn.Get(Table::kReferrals, "a"));
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ((*a)["state"], "requested");
    EXPECT_FALSE(test::Must(txn.Get(Table::kReferrals, "zz")).has_value());
    EXPECT_FALSE(test::Must(txn.Get(Table::kHandoffs, "a")).has_value()) << "tables are separate";
    auto all = test::Must(txn.List(Table::kReferrals));
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].first, "a");
    EXPECT_EQ(all[1].second["state"], "accepted");
  }
  auto txn = test::Must(store->Begin(true));
  ASSERT_TRUE(txn.Del(Table::kReferrals, "a").ok());
  ASSERT_TRUE(txn.Del(Table::kReferrals, "absent").ok());
  ASSERT_TRUE(txn.Commit().ok());
  auto r = test::Must(store->Begin(false));
  EXPECT_EQ(test::Must(r.List(Table::kReferrals)).size(), 1u);
}

TEST(CaseStoreTest, DamagedRecordIsReportedNotReturned) {
  TempDir dir;
  {
    auto store = test::Must(CaseStore::Open(dir.Join("cases")));
    auto txn = test::Must(store->Begin(true));
    ASSERT_TRUE(txn.Put(Table::kGrants, "g1", {{"revoked", false}}).ok());
    ASSERT_TRUE(txn.Commit().ok());
  }
  {
    // Flip one byte of the stored JSON ("false" -> "fals?") behind the store's back.
    auto env = test::Must(lmdb::Env::Open(dir.Join("cases"), lmdb::EnvOptions{}));
    MDB_dbi dbi = test::Must(env->OpenDb("grants"));
    lmdb::Txn txn = test::Must(env->BeginWrite());
    ByteView v = test::Must(txn.Get(dbi, AsBytes("g1")));
    Bytes value(v.begin(), v.end());
    value[value.size() - 2] ^= 0x01;
    ASSERT_TRUE(txn.Put(dbi, AsBytes("g1"), value).ok());
    ASSERT_TRUE(txn.Commit().ok());
  }
  auto store = test::Must(CaseStore::Open(dir.Join("cases")));
  auto txn = test::Must(store->Begin(false));
  auto g = txn.Get(Table::kGrants, "g1");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), Status::Code::kMalformed);
  EXPECT_NE(g.status().message().find("damaged"), std::string::npos);
  EXPECT_NE(g.status().message().find("g1"), std::string::npos);
  EXPECT_FALSE(txn.List(Table::kGrants).ok());
}

}  // namespace
}  // namespace refbus::agent
