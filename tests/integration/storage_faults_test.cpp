// refbus-broker against faulty storage, as real processes on real files: a data file that is
// truncated, foreign or of another format at start-up gets a clear error and a clean exit
// (never a crash), and a disk that fills up (a small tmpfs) makes the broker refuse new
// submissions as storage-full while it keeps delivering what it holds, and recover when
// room returns.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/lmdb.h"
#include "keys/operator_roster.h"
#include "keys/secret.h"
#include "schema/codec.h"
#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

namespace fs = std::filesystem;
using schema::Frame;
using schema::NackReason;

class StorageFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("refbus-storage-faults");
    ASSERT_TRUE(
        fed_.Create(root_, {"seoul-broker"},
                    {{"seoul-wee-01", schema::AgencyType::kWeeCenter, "seoul-broker"},
                     {"seoul-counsel", schema::AgencyType::kCounselingCenter, "seoul-broker"}}));
  }
  void TearDown() override {
    broker_.reset();
    if (!mount_.empty()) ::umount2(mount_.c_str(), MNT_DETACH);
    if (!HasFailure()) RemoveTree(root_);
  }

  Bytes BrokerKey() const {
    return fed_.directory().Find("seoul-broker")->ActiveKeys()->transport_key;
  }
  const keys::Identity& Id(const std::string& party) {
    if (!ids_.count(party)) ids_.emplace(party, fed_.LoadIdentity(party));
    return ids_.at(party);
  }
  std::unique_ptr<RawClient> Connect(const std::string& party) {
    auto c = std::make_unique<RawClient>(Id(party), BrokerKey(), broker_->endpoint());
    EXPECT_TRUE(c->Hello(party)) << party << " got no Welcome; broker log:\n" << broker_->Log();
    return c;
  }
  UnixMillis Now() const { return SystemClock::Get().NowMillis(); }
  Bytes Envelope(size_t content_bytes = 1024) {
    return SealTo(Id("seoul-wee-01"), fed_.directory(), {"seoul-counsel"}, Now(), kMillisPerHour,
                  content_bytes);
  }

  // A broker on data_dir that ran, accepted envelopes of 8 KiB and stopped cleanly.
  void MakeStore(const std::string& data_dir, int envelopes = 20) {
    broker_ = std::make_unique<Broker>(fed_, "seoul-broker", data_dir);
    ASSERT_TRUE(broker_->Start()) << broker_->Log();
    auto wee = Connect("seoul-wee-01");
    for (int i = 0; i < envelopes; ++i) {
      auto r = wee->Submit(Envelope(8 << 10));
      ASSERT_TRUE(r.has_value() && r->type == Frame::Type::kAck) << broker_->Log();
    }
    ASSERT_EQ(broker_->Stop(), 0);
  }

  // Starts a broker on data_dir, which must refuse to start: it exits by itself with a
  // non-zero code (not by a signal: a crash is 128+N) and its log says why, naming the
  // words given.
  void ExpectRefusedAtStart(const std::string& data_dir, const std::vector<std::string>& words) {
    broker_ = std::make_unique<Broker>(fed_, "seoul-broker", data_dir);
    int code = broker_->StartExpectingExit(15000);
    EXPECT_NE(code, -1) << "started on a faulty store:\n" << broker_->Log();
    EXPECT_GT(code, 0) << broker_->Log();
    EXPECT_LT(code, 128) << "the broker died of signal " << code - 128
                         << " instead of refusing the store:\n"
                         << broker_->Log();
    std::string log = broker_->Log();
    for (const auto& w : words) EXPECT_NE(log.find(w), std::string::npos) << w << " in:\n" << log;
  }

  // Mounts a tmpfs of size_mb at root_/small-disk (mount_); fails the test if it cannot.
  void MountSmallDisk(int size_mb) {
    mount_ = root_ + "/small-disk";
    fs::create_directories(mount_);
    const std::string opts = "size=" + std::to_string(size_mb) + "m,mode=0700";
    if (::mount("tmpfs", mount_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
      std::string why = std::strerror(errno);
      mount_.clear();
      FAIL() << "cannot mount a small tmpfs to fill (needs root or CAP_SYS_ADMIN): " << why;
    }
  }

  // A broker whose data directory is on a tmpfs of 8 MiB, 6 MiB of it taken by a filler file
  // (mount_/filler): the disk fills long before the LMDB map (64 MiB) does.
  void StartOnAnAlmostFullDisk() {
    ASSERT_NO_FATAL_FAILURE(MountSmallDisk(8));
    {
      std::ofstream out(mount_ + "/filler", std::ios::binary);
      std::string mib(1 << 20, 'x');
      for (int i = 0; i < 6; ++i) out.write(mib.data(), static_cast<std::streamsize>(mib.size()));
      ASSERT_TRUE(out.good());
    }
    broker_ = std::make_unique<Broker>(fed_, "seoul-broker", mount_ + "/data");
    broker_->set_limits("map_size_mb = 64\nmailbox_quota = 100000\nsender_quota = 100000");
    ASSERT_TRUE(broker_->Start()) << broker_->Log();
  }

  std::string root_;
  std::string mount_;
  Federation fed_;
  std::unique_ptr<Broker> broker_;
  std::map<std::string, keys::Identity> ids_;
};

TEST_F(StorageFaultsTest, TruncatedDataFileIsRefusedAtStart) {
  std::string dir = root_ + "/data";
  // About 900 pages: cut in half, far more is missing than LMDB ever leaves unwritten at
  // the end of a sound file (core/lmdb.cpp, kMaxUnwrittenTail).
  MakeStore(dir, 400);
  std::string file = dir + "/data.mdb";
  uintmax_t size = fs::file_size(file);
  ASSERT_GT(size, 3u << 20) << "the store is too small to cut";
  // Cut in the middle: the meta pages survive, pages they point to do not.
  fs::resize_file(file, size / 2);
  ExpectRefusedAtStart(dir, {"data.mdb", "truncated"});
  // Cut to less than the meta pages.
  fs::resize_file(file, 4096);
  ExpectRefusedAtStart(dir, {dir});
}

TEST_F(StorageFaultsTest, ForeignDataFileIsRefusedAtStart) {
  std::string dir = root_ + "/data";
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
  {
    std::ofstream out(dir + "/data.mdb", std::ios::binary);
    Bytes junk = keys::RandomBytes(256 << 10);
    out.write(reinterpret_cast<const char*>(junk.data()),
              static_cast<std::streamsize>(junk.size()));
  }
  ExpectRefusedAtStart(dir, {dir});
}

TEST_F(StorageFaultsTest, StoreOfAnotherFormatIsRefusedAtStart) {
  std::string dir = root_ + "/data";
  MakeStore(dir);
  {
    lmdb::EnvOptions o;
    o.max_dbs = 32;
    auto env = lmdb::Env::Open(dir, o);
    ASSERT_TRUE(env.ok()) << env.status().ToString();
    auto meta = (*env)->OpenDb("meta");
    ASSERT_TRUE(meta.ok());
    auto txn = (*env)->BeginWrite();
    ASSERT_TRUE(txn.ok());
    ASSERT_TRUE(txn->Put(*meta, AsBytes(std::string_view("format")),
                         AsBytes(std::string_view("refbus-broker-store/9")))
                    .ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  ExpectRefusedAtStart(dir, {"refbus-broker-store/9"});
}

// An operator roster whose commit fails on a full disk is refused ("retry later"); when the
// agency sends it again after room came back it is recorded, not refused as "not newer"
// than itself: the broker's newest version per agency moves only with a commit.
TEST_F(StorageFaultsTest, ARosterRefusedOnAFullDiskIsRecordedWhenSentAgain) {
  ASSERT_NO_FATAL_FAILURE(StartOnAnAlmostFullDisk());
  const std::string filler = mount_ + "/filler";
  auto wee = Connect("seoul-wee-01");
  // Full for large envelopes, then for small ones: a roster of some 30 KiB fits nowhere.
  for (size_t size : {size_t{32} << 10, size_t{1} << 10}) {
    bool full = false;
    for (int i = 0; i < 5000 && !full; ++i) {
      auto r = wee->Submit(Envelope(size));
      ASSERT_TRUE(r.has_value()) << broker_->Log();
      full = r->type == Frame::Type::kNack && r->nack.reason == NackReason::kStorageFull;
    }
    ASSERT_TRUE(full) << "the disk never filled with envelopes of " << size << " bytes";
  }
  keys::OperatorRoster roster;
  roster.agency = "seoul-wee-01";
  roster.version = 7;
  roster.issued_at_ms = Now();
  for (int i = 0; i < 250; ++i) {
    roster.operators.push_back(
        {"operator-" + std::to_string(i), "caseworker", Bytes(32, static_cast<uint8_t>(i)), true});
  }
  auto text = keys::SignOperatorRoster(Id("seoul-wee-01"), roster);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  uint64_t request = 1u << 20;
  auto publish = [&]() -> std::string {
    Frame f;
    f.type = Frame::Type::kRosterUpdate;
    f.request_id = ++request;
    f.roster_update.signed_roster = ToBytes(*text);
    wee->SendFrame(f);
    for (int i = 0; i < 50; ++i) {
      auto r = wee->Receive(5000);
      if (!r) break;
      if (r->request_id != request) continue;
      if (r->type == Frame::Type::kAck) return "ack";
      if (r->type == Frame::Type::kNack) return std::string(schema::Name(r->nack.reason));
    }
    return "no answer";
  };
  ASSERT_EQ(publish(), "storage-full") << broker_->Log();
  // Room returns (the operator deletes the filler); the agent sends the same roster again.
  fs::remove(filler);
  std::string answer;
  for (int attempt = 0; attempt < 80; ++attempt) {
    answer = publish();
    if (answer != "storage-full") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_EQ(answer, "ack") << "the same roster, sent again once the disk had room";
  EXPECT_NE(broker_->Log().find("operator roster version 7 (250 operators"), std::string::npos)
      << broker_->Log();
  EXPECT_EQ(broker_->Stop(), 0) << broker_->Log();
}

// The data directory on a tmpfs of 8 MiB, most of it taken by a filler file: the disk
// fills long before the LMDB map (64 MiB) does.
TEST_F(StorageFaultsTest, DiskFullRefusesSubmissionsKeepsDeliveringAndRecovers) {
  ASSERT_NO_FATAL_FAILURE(StartOnAnAlmostFullDisk());
  const std::string filler = mount_ + "/filler";
  auto wee = Connect("seoul-wee-01");
  std::optional<Frame> refused;
  size_t accepted = 0;
  for (int i = 0; i < 2000 && !refused; ++i) {
    auto r = wee->Submit(Envelope(32 << 10));
    ASSERT_TRUE(r.has_value()) << broker_->Log();
    if (r->type == Frame::Type::kAck) {
      ++accepted;
    } else {
      refused = r;
    }
  }
  ASSERT_TRUE(refused.has_value()) << "the disk never filled";
  EXPECT_EQ(refused->nack.reason, NackReason::kStorageFull)
      << schema::Name(refused->nack.reason) << ": " << refused->nack.detail;
  EXPECT_GT(refused->nack.retry_after_ms, 0u);
  EXPECT_GT(accepted, 5u);
  EXPECT_NE(broker_->Log().find("STORAGE FULL"), std::string::npos) << broker_->Log();

  // Everything accepted is still delivered while the disk is full.
  auto counsel = Connect("seoul-counsel");
  size_t delivered = counsel->DrainAndAck(3000).size();
  EXPECT_EQ(delivered, accepted) << "an accepted envelope was lost while the disk was full";

  // Room returns (the operator deletes the filler): submissions are accepted again.
  fs::remove(filler);
  std::optional<Frame> r;
  for (int attempt = 0; attempt < 80; ++attempt) {
    r = wee->Submit(Envelope(32 << 10));
    ASSERT_TRUE(r.has_value());
    if (r->type == Frame::Type::kAck) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_EQ(r->type, Frame::Type::kAck)
      << "no recovery after room returned: " << schema::Name(r->nack.reason);
  EXPECT_EQ(broker_->Stop(), 0) << broker_->Log();
  // The store reopens: nothing was damaged by the failed writes.
  broker_ = std::make_unique<Broker>(fed_, "seoul-broker", mount_ + "/data");
  ASSERT_TRUE(broker_->Start()) << broker_->Log();
  auto counsel2 = Connect("seoul-counsel");
  auto d = counsel2->Receive(3000);
  ASSERT_TRUE(d.has_value()) << "the envelope accepted after recovery is gone";
  EXPECT_EQ(d->type, Frame::Type::kDeliver);
  EXPECT_EQ(broker_->Stop(), 0);
}

// A disk that fills in the middle of a commit's writes: LMDB sees a short write and says
// EIO, which must still read as a full disk (the broker's storage-full path), not as a
// failing one. One 4 MiB value on a 1 MiB tmpfs: its pages are written in one go, cut short.
TEST_F(StorageFaultsTest, ACommitCutShortByAFullDiskIsStorageFull) {
  ASSERT_NO_FATAL_FAILURE(MountSmallDisk(1));
  lmdb::EnvOptions eo;
  eo.map_size_bytes = size_t{64} << 20;
  auto env = lmdb::Env::Open(mount_ + "/store", eo);
  ASSERT_TRUE(env.ok()) << env.status().ToString();
  auto dbi = (*env)->OpenDb("big");
  ASSERT_TRUE(dbi.ok()) << dbi.status().ToString();
  auto txn = (*env)->BeginWrite();
  ASSERT_TRUE(txn.ok());
  Bytes value(size_t{4} << 20, 0x5a);
  ASSERT_TRUE(txn->Put(*dbi, AsBytes(std::string_view("key")), value).ok());
  Status s = txn->Commit();
  EXPECT_EQ(s.code(), Status::Code::kResourceExhausted) << s.ToString();
  EXPECT_NE(s.message().find("short write"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("the disk is full"), std::string::npos) << s.ToString();
}

}  // namespace
}  // namespace refbus::testing
