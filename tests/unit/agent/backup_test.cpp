// agent/backup.h: an agent's two stores backed up and restored with their records, the
// files left out of a backup, and the refusals (a flipped byte, another agency, a data_dir
// whose stores are not empty, a daemon running on it).
#include "agent/backup.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "agent/case_store.h"
#include "agent/transport_store.h"
#include "core/file.h"
#include "keys/secret.h"
#include "tests/unit/test_util.h"

namespace refbus::agent {
namespace {

using refbus::test::HasError;
using refbus::test::IsOk;
using refbus::test::Must;
using refbus::test::TempDir;

constexpr UnixMillis kNow = 1'790'000'000'000;
constexpr char kAgency[] = "seoul-wee-01";

struct Written {
  std::vector<Bytes> outbox, inbox;
};

// A daemon's data_dir as the engine lays it out, with a secret and an operator key that a
// backup must leave out.
Written MakeAgentData(const std::string& data_dir) {
  Written w;
  {
    auto store =
        Must(TransportStore::Open(data_dir + "/transport", StoreOptions{size_t{16} << 20}));
    std::vector<OutboxItem> items;
    for (int i = 0; i < 3; ++i) {
      items.push_back({keys::RandomBytes(16), keys::RandomBytes(200), false});
      w.outbox.push_back(items.back().message_id);
    }
    Must(store->AddToOutbox(items, kNow).status());
    std::vector<Delivery> ds;
    for (int i = 0; i < 5; ++i) {
      ds.push_back({keys::RandomBytes(16), keys::RandomBytes(300)});
      w.inbox.push_back(ds.back().message_id);
    }
    Must(store->StoreDeliveries(ds, kNow).status());
  }
  {
    auto cases = Must(CaseStore::Open(data_dir + "/cases"));
    auto txn = Must(cases->Begin(true));
    Must(txn.Put(Table::kCases, "case-4b1d9e77", {{"lead", kAgency}}));
    Must(txn.Put(Table::kMeta, "processed_seq", {{"seq", 5}}));
    Must(txn.Commit());
  }
  test::WriteRaw(data_dir + "/api.token", AsBytes("secret-token"), 0600);
  Must(MakeDirectories(data_dir + "/operator-keys", 0700));
  test::WriteRaw(data_dir + "/operator-keys/supervisor.key", AsBytes("secret-key"), 0600);
  return w;
}

TEST(AgentBackupTest, BackupAndRestoreKeepEveryRecordAndNoSecret) {
  TempDir t;
  std::string data = t.Join("data"), out = t.Join("backup"), restored = t.Join("restored");
  Written w = MakeAgentData(data);

  auto b = BackupAgent(data, kAgency, out);
  ASSERT_TRUE(IsOk(b));
  ASSERT_EQ(b->manifest.environments.size(), 2u);
  EXPECT_EQ(b->manifest.environments[0].name, "cases") << "cases is copied first";
  EXPECT_EQ(b->manifest.environments[1].name, "transport");
  EXPECT_EQ(b->manifest.Find("transport")->databases.at(kInboxDb), 5u);
  EXPECT_EQ(b->manifest.Find("transport")->databases.at(kOutboxDb), 3u);
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(out)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"MANIFEST.json", "cases.mdb", "transport.mdb"}))
      << "a backup holds the stores and the manifest, never api.token or operator-keys/";

  auto r = RestoreAgent(restored, kAgency, out);
  ASSERT_TRUE(IsOk(r));
  EXPECT_EQ(r->counters.inbox_messages, 5u);
  EXPECT_EQ(r->counters.outbox_messages, 3u);
  EXPECT_EQ(r->cases, 1u);
  EXPECT_EQ(r->manifest_sha256, b->manifest_sha256);

  auto store = Must(TransportStore::Open(restored + "/transport", StoreOptions{size_t{16} << 20}));
  EXPECT_EQ(Must(store->OutboxIds()), w.outbox) << "the outbox comes back in its order";
  auto inbox = Must(store->ReadInbox(0, 100));
  ASSERT_EQ(inbox.size(), w.inbox.size());
  for (size_t i = 0; i < inbox.size(); ++i) EXPECT_EQ(inbox[i].message_id, w.inbox[i]);
  auto cases = Must(CaseStore::Open(restored + "/cases"));
  auto txn = Must(cases->Begin(false));
  auto meta = Must(txn.Get(Table::kMeta, "processed_seq"));
  ASSERT_TRUE(meta.has_value());
  EXPECT_EQ(meta->at("seq").get<uint64_t>(), 5u);
  EXPECT_FALSE(PathExists(restored + "/api.token"));
}

TEST(AgentBackupTest, RestoreRefusesDamageOtherAgenciesAndFullOrBusyStores) {
  TempDir t;
  std::string data = t.Join("data"), out = t.Join("backup");
  MakeAgentData(data);
  ASSERT_TRUE(IsOk(BackupAgent(data, kAgency, out)));

  // Over the stores it was taken from: not empty.
  EXPECT_TRUE(
      HasError(RestoreAgent(data, kAgency, out), Status::Code::kAlreadyExists, "not empty"));
  // A daemon running on it holds the stores' locks.
  {
    auto busy = Must(TransportStore::Open(data + "/transport", StoreOptions{size_t{16} << 20}));
    EXPECT_TRUE(
        HasError(RestoreAgent(data, kAgency, out), Status::Code::kFailedPrecondition, "in use"));
  }
  // Another agency's configuration.
  EXPECT_TRUE(HasError(RestoreAgent(t.Join("other"), "seoul-counsel", out),
                       Status::Code::kFailedPrecondition, "not of agent seoul-counsel"));
  EXPECT_FALSE(PathExists(t.Join("other")));

  // A data_dir that holds only operator keys is fine to restore into; they stay.
  std::string fresh = t.Join("fresh");
  Must(MakeDirectories(fresh + "/operator-keys", 0700));
  test::WriteRaw(fresh + "/operator-keys/supervisor.key", AsBytes("k"), 0600);

  // One flipped byte in the inbox copy: refused before anything is written.
  Bytes file = test::ReadAll(out + "/transport.mdb");
  file.at(file.size() / 2) ^= 0x10;
  test::WriteRaw(out + "/transport.mdb", file, 0600);
  EXPECT_TRUE(HasError(RestoreAgent(fresh, kAgency, out), Status::Code::kMalformed,
                       "does not match the manifest"));
  EXPECT_FALSE(PathExists(fresh + "/transport"));
  EXPECT_FALSE(PathExists(fresh + "/cases"));
  EXPECT_FALSE(PathExists(fresh + "/transport.restoring"));
  file.at(file.size() / 2) ^= 0x10;
  test::WriteRaw(out + "/transport.mdb", file, 0600);
  ASSERT_TRUE(IsOk(RestoreAgent(fresh, kAgency, out)));
  EXPECT_EQ(test::ReadAll(fresh + "/operator-keys/supervisor.key"), ToBytes("k"));
}

TEST(AgentBackupTest, BackupRefusesAFolderThatIsNotAnAgentsData) {
  TempDir t;
  EXPECT_TRUE(HasError(BackupAgent(t.Join("none"), kAgency, t.Join("b")), Status::Code::kNotFound,
                       "no LMDB store"));
  EXPECT_FALSE(PathExists(t.Join("b")));
}

}  // namespace
}  // namespace refbus::agent
