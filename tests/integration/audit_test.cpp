// The broker's audit checkpoints with a real broker: signed at the configured interval and
// at a clean stop (the last one covers the whole log), each opening with the broker's
// signing key from the directory and consistent with the one before, also across a
// restart; signed on demand (in-process server); a broker whose log no longer extends its
// latest checkpoint refuses to start; the interval setting is validated.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <thread>

#include "broker/config.h"
#include "broker/server.h"
#include "broker/store.h"
#include "keys/checkpoint.h"
#include "keys/merkle.h"
#include "schema/codec.h"
#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

using schema::Frame;

constexpr char kOrigin[] = "refbus/refbus-test/seoul-broker";

class AuditCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("refbus-audit-test");
    ASSERT_TRUE(
        fed_.Create(root_, {"seoul-broker"},
                    {{"seoul-wee-01", schema::AgencyType::kWeeCenter, "seoul-broker"},
                     {"seoul-counsel", schema::AgencyType::kCounselingCenter, "seoul-broker"}}));
    broker_ = std::make_unique<Broker>(fed_, "seoul-broker", DataDir());
  }
  void TearDown() override {
    broker_.reset();
    if (!HasFailure()) RemoveTree(root_);
  }

  std::string DataDir() const { return root_ + "/seoul-data"; }
  UnixMillis Now() const { return SystemClock::Get().NowMillis(); }
  const keys::Identity& Wee() {
    if (!wee_) wee_ = std::make_unique<keys::Identity>(fed_.LoadIdentity("seoul-wee-01"));
    return *wee_;
  }
  const schema::KeyRecord& BrokerKeys() const {
    return *fed_.directory().Find("seoul-broker")->ActiveKeys();
  }
  keys::NoteVerifier Verifier() const {
    auto v =
        keys::NoteVerifier::Create(kOrigin, keys::NoteKeyType::kEd25519, BrokerKeys().signing_key);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return *v;
  }

  // Submits n envelopes to seoul-counsel from seoul-wee-01; each must be acked.
  void Submit(const std::string& endpoint, int n) {
    RawClient c(Wee(), BrokerKeys().transport_key, endpoint);
    ASSERT_TRUE(c.Hello("seoul-wee-01"));
    for (int i = 0; i < n; ++i) {
      auto r = c.Submit(SealTo(Wee(), fed_.directory(), {"seoul-counsel"}, Now()));
      ASSERT_TRUE(r.has_value());
      ASSERT_EQ(r->type, Frame::Type::kAck) << r->nack.detail;
    }
  }

  std::unique_ptr<broker::Store> OpenStore() {
    broker::StoreOptions o;
    o.dir = DataDir();
    o.broker_id = "seoul-broker";
    auto s = broker::Store::Open(o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  // Every stored checkpoint opens with the broker's directory key, sizes grow, each is
  // consistent with the one before (proof from the store), and the last one is the log.
  // Returns the checkpoints' sizes.
  std::vector<uint64_t> CheckCheckpoints(broker::Store& store) {
    std::vector<uint64_t> sizes;
    auto all = store.Checkpoints(0, 100000);
    EXPECT_TRUE(all.ok()) << all.status().ToString();
    if (!all.ok()) return sizes;
    std::optional<keys::Checkpoint> prev;
    for (const auto& c : *all) {
      auto opened = keys::OpenCheckpoint(c.note, kOrigin, Verifier());
      EXPECT_TRUE(opened.ok()) << opened.status().ToString();
      if (!opened.ok()) return sizes;
      const keys::Checkpoint& cp = opened->checkpoint;
      EXPECT_EQ(cp.size, c.checkpoint.size);
      if (prev) {
        EXPECT_GT(cp.size, prev->size);
        auto proof = store.ConsistencyProof(prev->size, cp.size);
        EXPECT_TRUE(proof.ok());
        if (proof.ok()) {
          Status s = keys::VerifyConsistency(prev->size, cp.size, prev->root, cp.root, *proof);
          EXPECT_TRUE(s.ok()) << s.ToString();
        }
      }
      EXPECT_EQ(*store.AuditRootAt(cp.size), cp.root);
      sizes.push_back(cp.size);
      prev = cp;
    }
    EXPECT_TRUE(prev.has_value()) << "no checkpoint stored";
    if (prev) {
      EXPECT_EQ(prev->size, *store.AuditSize()) << "the last checkpoint does not cover the log";
      EXPECT_EQ(prev->root, *store.AuditRoot());
    }
    return sizes;
  }

  std::string ReadFile(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  std::string root_;
  Federation fed_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<keys::Identity> wee_;
};

TEST_F(AuditCheckpointTest, SignedAtTheIntervalAndAtStopConsistentAcrossARestart) {
  broker_->set_policy("allow_unscoped_opaque = true\n[audit]\ncheckpoint_interval_ms = 200");
  ASSERT_TRUE(broker_->Start());
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // the start-up entries
  Submit(broker_->endpoint(), 5);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // and the first burst
  Submit(broker_->endpoint(), 5);
  ASSERT_EQ(broker_->Stop(), 0) << broker_->Log();  // the stop covers the second
  EXPECT_NE(broker_->Log().find("signed audit checkpoint"), std::string::npos) << broker_->Log();

  std::vector<uint64_t> before;
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    before = CheckCheckpoints(*store);
    // One at the interval over the start-up entries (started, directory loaded), at least
    // one after the first burst, and the last one covering the second burst.
    ASSERT_GE(before.size(), 3u);
    EXPECT_EQ(before[0], 2u);
    EXPECT_EQ(before.back(), *store->AuditSize());
    // Every entry is provably in the last checkpoint.
    const uint64_t n = before.back();
    const keys::Hash root = *store->AuditRoot();
    for (uint64_t i = 0; i < n; ++i) {
      auto proof = store->InclusionProof(i, n);
      ASSERT_TRUE(proof.ok());
      EXPECT_TRUE(
          keys::VerifyInclusion(keys::LeafHash(*store->AuditEntryBytes(i)), i, n, *proof, root)
              .ok())
          << "entry " << i;
    }
  }

  // Restart (the log is not replayed) and carry on: still one consistent chain.
  ASSERT_TRUE(broker_->Start());
  Submit(broker_->endpoint(), 3);
  ASSERT_EQ(broker_->Stop(), 0) << broker_->Log();
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::vector<uint64_t> after = CheckCheckpoints(*store);
  ASSERT_GT(after.size(), before.size());
  EXPECT_TRUE(std::equal(before.begin(), before.end(), after.begin()));
}

TEST_F(AuditCheckpointTest, BrokerRefusesToStartOnALogInconsistentWithItsCheckpoint) {
  ASSERT_TRUE(broker_->Start());
  Submit(broker_->endpoint(), 2);
  ASSERT_EQ(broker_->Stop(), 0);
  {
    // A forger rewrites history: a checkpoint, signed with the broker's own key, of the
    // current size with another root.
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    auto latest = store->LatestCheckpoint();
    ASSERT_TRUE(latest.ok() && latest->has_value());
    keys::Checkpoint forged = (*latest)->checkpoint;
    forged.root[5] ^= 0x20;
    auto broker_id = fed_.LoadIdentity("seoul-broker");
    auto note = keys::SignCheckpoint(forged, broker_id);
    ASSERT_TRUE(note.ok());
    lmdb::Env& env = store->env();
    auto dbi = env.OpenDb("checkpoints");
    ASSERT_TRUE(dbi.ok());
    auto txn = env.BeginWrite();
    ASSERT_TRUE(txn.ok());
    ASSERT_TRUE(
        txn->Put(*dbi, lmdb::U64Key(forged.size), broker::EncodeCheckpointRecord(*note)).ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  Process p;
  std::string log = root_ + "/refused.log";
  ASSERT_TRUE(p.Start({BinDir() + "/refbus-broker", "-c", DataDir() + ".toml"}, log));
  EXPECT_EQ(p.Wait(10000), 1);
  std::string text = ReadFile(log);
  EXPECT_NE(text.find("inconsistent"), std::string::npos) << text;
}

TEST_F(AuditCheckpointTest, SignedOnDemandByAnInProcessServer) {
  // A long interval: only the request and the stop sign.
  std::string cfg = root_ + "/inproc.toml";
  std::string dir = fed_.Dir("seoul-broker");
  {
    std::ofstream out(cfg);
    out << "[broker]\nid = \"seoul-broker\"\nbind = \"tcp://127.0.0.1:*\"\n"
        << "data_dir = \"" << DataDir() << "\"\n"
        << "key_file = \"" << dir << "/identity.key\"\n"
        << "directory = \"" << dir << "/directory\"\n"
        << "anchor = \"" << dir << "/authority.pub\"\n"
        << "trust_state = \"" << DataDir() << ".trust-state\"\n"
        << "[policy]\nallow_unscoped_opaque = true\n"
        << "[audit]\ncheckpoint_interval_ms = 3600000\n";
  }
  auto config = broker::LoadConfig(cfg);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->checkpoint_interval_ms, 3600000u);
  auto server = broker::Server::Create(*config);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  EXPECT_EQ((*server)->checkpoint_origin(), kOrigin);
  Status run_status;
  std::thread loop([&] { run_status = (*server)->Run(); });

  (*server)->RequestCheckpoint();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  Submit((*server)->endpoint(), 2);
  (*server)->RequestStop();
  loop.join();
  EXPECT_TRUE(run_status.ok()) << run_status.ToString();
  EXPECT_EQ((*server)->stats().checkpoints, 2u);
  auto last = keys::OpenCheckpoint((*server)->latest_checkpoint(), kOrigin, Verifier());
  EXPECT_TRUE(last.ok()) << last.status().ToString();
  server->reset();

  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  std::vector<uint64_t> sizes = CheckCheckpoints(*store);
  // The one asked for (the start-up entries only), then the stop's (with the submissions).
  ASSERT_EQ(sizes.size(), 2u);
  EXPECT_EQ(sizes[0], 2u);
  if (last.ok()) {
    EXPECT_EQ(last->checkpoint.size, sizes[1]);
  }
}

TEST_F(AuditCheckpointTest, CheckpointIntervalIsValidated) {
  std::string cfg = root_ + "/bad.toml";
  std::string dir = fed_.Dir("seoul-broker");
  {
    std::ofstream out(cfg);
    out << "[broker]\nid = \"seoul-broker\"\nbind = \"tcp://127.0.0.1:*\"\n"
        << "data_dir = \"" << DataDir() << "\"\n"
        << "key_file = \"" << dir << "/identity.key\"\n"
        << "directory = \"" << dir << "/directory\"\n"
        << "anchor = \"" << dir << "/authority.pub\"\n"
        << "trust_state = \"" << DataDir() << ".trust-state\"\n"
        << "[audit]\ncheckpoint_interval_ms = 5\n";
  }
  auto config = broker::LoadConfig(cfg);
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("audit.checkpoint_interval_ms"), std::string::npos)
      << config.status().ToString();
  EXPECT_NE(config.status().message().find("between 100 and"), std::string::npos);

  Process p;
  std::string log = root_ + "/bad.log";
  ASSERT_TRUE(p.Start({BinDir() + "/refbus-broker", "-c", cfg}, log));
  EXPECT_EQ(p.Wait(10000), 1);
  EXPECT_NE(ReadFile(log).find("audit.checkpoint_interval_ms"), std::string::npos);
}

}  // namespace
}  // namespace refbus::testing
