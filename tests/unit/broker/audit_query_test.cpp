// Store::AuditEntriesFrom, which serves auditors' AuditEntries queries: exactly the stored
// bytes from an index, in one read transaction, capped by count and bytes, with the
// committed size; damaged entries are served as stored and listed; ranges beyond the log
// are refused.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "broker/store.h"
#include "core/lmdb.h"
#include "keys/merkle.h"
#include "tests/unit/test_util.h"

namespace refbus::broker {
namespace {

using test::HasCode;
using test::Must;

constexpr UnixMillis kT0 = 1'800'000'000'000;

class AuditQueryStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions o;
    o.dir = dir_.path();
    o.broker_id = "seoul-broker";
    o.map_size_bytes = size_t{64} << 20;
    store_ = Must(Store::Open(o));
    Batch b;
    for (size_t i = 0; i < 50; ++i) {
      schema::AuditEntry e;
      e.event = schema::AuditEvent::kDirectoryLoaded;
      e.detail = std::string(i * 10, 'x');  // entries of growing size
      b.events.push_back(std::move(e));
    }
    Must(store_->Commit(b, kT0).status());
  }

  test::TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(AuditQueryStoreTest, ServesTheStoredBytesInOrderWithTheLogSize) {
  AuditEntriesRead r = Must(store_->AuditEntriesFrom(10, 5, 1 << 20));
  ASSERT_EQ(r.entries.size(), 5u);
  EXPECT_EQ(r.log_size, 50u);
  EXPECT_TRUE(r.more);
  EXPECT_TRUE(r.damaged.empty());
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(r.entries[i], Must(store_->AuditEntryBytes(10 + i)));

  AuditEntriesRead all = Must(store_->AuditEntriesFrom(0, 4096, 1 << 20));
  ASSERT_EQ(all.entries.size(), 50u);
  EXPECT_FALSE(all.more);
  keys::MemoryTree tree;
  for (const Bytes& e : all.entries) tree.AppendEntry(e);
  EXPECT_EQ(tree.Root(), Must(store_->AuditRoot()));

  // At the end: nothing, and nothing more. Beyond it: refused.
  AuditEntriesRead end = Must(store_->AuditEntriesFrom(50, 10, 1 << 20));
  EXPECT_TRUE(end.entries.empty());
  EXPECT_FALSE(end.more);
  EXPECT_TRUE(HasCode(store_->AuditEntriesFrom(51, 10, 1 << 20), Status::Code::kInvalidArgument));
}

TEST_F(AuditQueryStoreTest, StopsBeforeTheByteCapButAlwaysServesOne) {
  AuditEntriesRead r = Must(store_->AuditEntriesFrom(40, 10, 900));
  size_t bytes = 0;
  for (const Bytes& e : r.entries) bytes += e.size();
  EXPECT_LE(bytes, 900u);
  EXPECT_GE(r.entries.size(), 1u);
  EXPECT_LT(r.entries.size(), 10u);
  EXPECT_TRUE(r.more);
  AuditEntriesRead one = Must(store_->AuditEntriesFrom(49, 10, 1));
  EXPECT_EQ(one.entries.size(), 1u);
  EXPECT_FALSE(one.more);
}

TEST_F(AuditQueryStoreTest, DamagedEntriesAreServedAsStoredAndListed) {
  Bytes v;
  {
    lmdb::Env& env = store_->env();
    MDB_dbi dbi = Must(env.OpenDb("audit"));
    lmdb::Txn txn = Must(env.BeginWrite());
    ByteView b = Must(txn.Get(dbi, lmdb::U64Key(7)));
    v.assign(b.begin(), b.end());
    v.back() ^= 0x01;
    Must(txn.Put(dbi, lmdb::U64Key(7), v));
    Must(txn.Commit());
  }
  AuditEntriesRead r = Must(store_->AuditEntriesFrom(5, 5, 1 << 20));
  ASSERT_EQ(r.damaged, std::vector<uint64_t>{7});
  EXPECT_EQ(r.entries[2], v);  // exactly as stored: the auditor sees the damage
  EXPECT_TRUE(HasCode(store_->AuditEntryBytes(7), Status::Code::kMalformed));
}

}  // namespace
}  // namespace refbus::broker
