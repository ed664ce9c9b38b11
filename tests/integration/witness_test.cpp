// Checkpoint witnessing with real refbus-broker processes (schema/PROTOCOL.md section 11.3):
// two brokers that witness each other cosign each other's checkpoints and refbus-audit
// shows the cosignatures; a broker whose log was truncated and re-signed is refused by its
// witness (critical log, both checkpoints kept as evidence, the refusal in the witness's
// own audit log) and auditors see its checkpoints unwitnessed; an auditor witnesses a log
// with refbus-audit witness (and catches a rewrite); parties that are not brokers may not
// ask to be witnessed; the protocol itself (a stale old size gets the witness's size, the
// retry succeeds; every refusal) spoken directly to a broker; the [witness] settings.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <lmdb.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "broker/audit_log.h"
#include "broker/config.h"
#include "broker/store.h"
#include "keys/ceremony.h"
#include "keys/checkpoint.h"
#include "keys/merkle.h"
#include "keys/witness.h"
#include "schema/codec.h"
#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

using json = nlohmann::json;
using schema::AgencyType;
using schema::AuditEvent;
using schema::Frame;
using schema::NackReason;
using schema::WitnessRefusal;

constexpr char kSeoul[] = "seoul-broker";
constexpr char kBusan[] = "busan-broker";
constexpr char kSeoulOrigin[] = "refbus/refbus-test/seoul-broker";
constexpr char kBusanOrigin[] = "refbus/refbus-test/busan-broker";

struct WitnessToolResult {
  int code = -1;
  std::string out;
  std::string err;
  json j;
};

class WitnessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("refbus-witness-test");
    ASSERT_TRUE(fed_.Create(root_, {kSeoul, kBusan},
                            {{"seoul-wee-01", AgencyType::kWeeCenter, kSeoul},
                             {"seoul-counsel", AgencyType::kCounselingCenter, kSeoul},
                             {"busan-wee-01", AgencyType::kWeeCenter, kBusan},
                             {"busan-counsel", AgencyType::kCounselingCenter, kBusan}}));
    // An auditor with the default roles: audit and witness, that counts the cosignatures of
    // every witness here (a test below names fewer).
    ASSERT_TRUE(fed_.AddAuditor(kAuditor));
    NameWitnesses({kSeoul, kBusan, kAuditor});
    seoul_ = std::make_unique<Broker>(fed_, kSeoul, DataDir(kSeoul));
    busan_ = std::make_unique<Broker>(fed_, kBusan, DataDir(kBusan));
  }
  void TearDown() override {
    seoul_.reset();
    busan_.reset();
    if (!HasFailure()) RemoveTree(root_);
  }

  UnixMillis Now() const { return SystemClock::Get().NowMillis(); }
  // The auditor's auditor.toml: the witnesses whose cosignatures its verify counts.
  void NameWitnesses(const std::vector<std::string>& ids, const std::string& more = "") {
    std::ofstream out(fed_.Dir(kAuditor) + "/auditor.toml");
    out << "[verify]\nwitnesses = [";
    for (size_t i = 0; i < ids.size(); ++i) out << (i ? ", " : "") << "\"" << ids[i] << "\"";
    out << "]\n" << more;
  }
  std::string DataDir(const std::string& broker) const { return root_ + "/" + broker + "-data"; }
  std::string EndpointFile(const std::string& broker) const {
    return DataDir(broker) + ".endpoint";
  }
  std::string StoreDir(const std::string& name) const { return root_ + "/audit-" + name; }

  // [policy], [audit] and (with a peer) [witness] lines for a broker's configuration.
  std::string Settings(const std::string& peer, uint64_t checkpoint_ms = 300) const {
    std::string s = "allow_unscoped_opaque = true\n[audit]\ncheckpoint_interval_ms = " +
                    std::to_string(checkpoint_ms) + "\n";
    if (!peer.empty()) {
      s += "[witness]\npeers = [\"" + peer + "\"]\nendpoint_files = { " + peer + " = \"" +
           EndpointFile(peer) + "\" }\ninterval_ms = 200\ntimeout_ms = 2000\n";
    }
    return s;
  }

  const keys::Identity& Id(const std::string& party) {
    if (!ids_.count(party)) ids_.emplace(party, fed_.LoadIdentity(party));
    return ids_.at(party);
  }
  Bytes TransportKey(const std::string& broker) const {
    return fed_.directory().Find(broker)->ActiveKeys()->transport_key;
  }
  Bytes SigningKey(const std::string& party) const {
    return fed_.directory().Find(party)->ActiveKeys()->signing_key;
  }
  keys::NoteVerifier LogKey(const std::string& broker) const {
    auto v = keys::NoteVerifier::Create(*keys::LogOrigin("refbus-test", broker),
                                        keys::NoteKeyType::kEd25519, SigningKey(broker));
    EXPECT_TRUE(v.ok());
    return *v;
  }
  keys::NoteVerifier WitnessKey(const std::string& party) const {
    auto v = keys::NoteVerifier::Create(*keys::WitnessName("refbus-test", party),
                                        keys::NoteKeyType::kCosignatureV1, SigningKey(party));
    EXPECT_TRUE(v.ok());
    return *v;
  }

  // n opaque envelopes from <region>-wee-01 to <region>-counsel through broker, each acked.
  void Opaque(Broker& broker, const std::string& region, int n) {
    const std::string sender = region + "-wee-01";
    RawClient c(Id(sender), TransportKey(region + "-broker"), broker.endpoint());
    ASSERT_TRUE(c.Hello(sender));
    for (int i = 0; i < n; ++i) {
      auto r = c.Submit(SealTo(Id(sender), fed_.directory(), {region + "-counsel"}, Now()));
      ASSERT_TRUE(r.has_value());
      ASSERT_EQ(r->type, Frame::Type::kAck) << r->nack.detail;
    }
  }

  // build/bin/refbus-audit with args; stdout and stderr apart.
  WitnessToolResult Audit(const std::vector<std::string>& args) {
    std::string out_path = root_ + "/tool.out", err_path = root_ + "/tool.err";
    std::vector<std::string> argv = {BinDir() + "/refbus-audit"};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_t pid = ::fork();
    if (pid == 0) {
      int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(out, 1);
      ::dup2(err, 2);
      std::vector<char*> a;
      for (auto& s : argv) a.push_back(s.data());
      a.push_back(nullptr);
      ::execv(a[0], a.data());
      std::_Exit(127);
    }
    WitnessToolResult r;
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = Slurp(out_path);
    r.err = Slurp(err_path);
    r.j = json::parse(r.out, nullptr, false);
    return r;
  }
  WitnessToolResult Fetch(const std::string& broker, Broker& b, const std::string& store,
                          int wait_cosignatures, int wait_ms = 15000) {
    return Audit({"fetch", "--json", "--dir", fed_.Dir(kAuditor), "--broker", broker, "--endpoint",
                  b.endpoint(), "--store", store, "--wait-cosignatures",
                  std::to_string(wait_cosignatures), "--wait-ms", std::to_string(wait_ms)});
  }
  WitnessToolResult Verify(const std::string& store, int min_cosignatures) {
    return Audit({"verify", "--json", "--store", store, "--dir", fed_.Dir(kAuditor),
                  "--min-cosignatures", std::to_string(min_cosignatures)});
  }
  WitnessToolResult WitnessRun(const std::string& broker, Broker& b, const std::string& store) {
    return Audit({"witness", "--json", "--dir", fed_.Dir(kAuditor), "--broker", broker,
                  "--endpoint", b.endpoint(), "--store", store});
  }

  std::unique_ptr<broker::Store> OpenStore(const std::string& broker) {
    broker::StoreOptions o;
    o.dir = DataDir(broker);
    o.broker_id = broker;
    auto s = broker::Store::Open(o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::vector<schema::AuditEntry> Entries(broker::Store& store) {
    std::vector<schema::AuditEntry> out;
    uint64_t n = *store.AuditSize();
    for (uint64_t i = 0; i < n; ++i) {
      auto e = schema::DecodeAuditEntry(*store.AuditEntryBytes(i));
      EXPECT_TRUE(e.ok());
      if (e.ok()) out.push_back(*e);
    }
    return out;
  }
  // The largest stored checkpoint of broker's log (stopped) with a valid cosignature by
  // witness; 0 if none.
  uint64_t LargestCosignedBy(broker::Store& store, const std::string& broker,
                             const std::string& witness) {
    uint64_t largest = 0;
    auto all = store.Checkpoints(0, 100000);
    EXPECT_TRUE(all.ok());
    std::vector<keys::NoteVerifier> w = {WitnessKey(witness)};
    for (const auto& c : *all) {
      auto opened = keys::OpenCheckpoint(c.note, *keys::LogOrigin("refbus-test", broker),
                                         LogKey(broker), w, 1);
      if (opened.ok()) largest = std::max(largest, c.checkpoint.size);
    }
    return largest;
  }
  // Waits until text shows up in a broker's log.
  bool WaitForLog(Broker& b, const std::string& text, int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      if (b.Log().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  // With the broker stopped: its last entries deleted (down to keep), the tree, frontier and
  // size made to fit and the checkpoints above keep dropped, so that the broker starts and
  // signs checkpoints of a rewritten log (as in audit_tool_test.cpp).
  void TruncateAndRefrontier(const std::string& broker, uint64_t keep) {
    auto bs = OpenStore(broker);
    ASSERT_NE(bs, nullptr);
    const uint64_t n = *bs->AuditSize();
    ASSERT_GT(n, keep);
    lmdb::Env& env = bs->env();
    broker::AuditDbs dbs;
    dbs.meta = *env.OpenDb("meta");
    dbs.entries = *env.OpenDb("audit");
    dbs.tree = *env.OpenDb("audit_tree");
    dbs.checkpoints = *env.OpenDb("checkpoints");
    auto txn = env.BeginWrite();
    ASSERT_TRUE(txn.ok());
    for (uint64_t i = keep; i < n; ++i) ASSERT_TRUE(txn->Del(dbs.entries, lmdb::U64Key(i)).ok());
    ASSERT_EQ(mdb_drop(txn->raw(), dbs.tree, 0), 0);
    ASSERT_TRUE(txn->Del(dbs.meta, AsBytes("audit_frontier")).ok());
    ASSERT_TRUE(txn->Put(dbs.meta, AsBytes("audit_size"), lmdb::U64Key(keep)).ok());
    std::vector<Bytes> above;
    {
      auto cur = lmdb::Cursor::Open(*txn, dbs.checkpoints);
      for (auto item = cur->First(); item.ok() && item->has_value(); item = cur->Next()) {
        if (lmdb::ReadU64Key((*item)->key) > keep) {
          above.emplace_back((*item)->key.begin(), (*item)->key.end());
        }
      }
    }
    for (const Bytes& key : above) ASSERT_TRUE(txn->Del(dbs.checkpoints, key).ok());
    auto rebuilt = broker::RebuildAuditTree(*txn, dbs);
    ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
    ASSERT_TRUE(txn->Commit().ok());
  }

  std::string root_;
  Federation fed_;
  std::unique_ptr<Broker> seoul_, busan_;
  std::map<std::string, keys::Identity> ids_;
};

TEST_F(WitnessTest, TwoBrokersCosignEachOthersCheckpointsAndAuditorsSeeTheCosignatures) {
  seoul_->set_policy(Settings(kBusan));
  busan_->set_policy(Settings(kSeoul));
  ASSERT_TRUE(seoul_->Start());
  ASSERT_TRUE(busan_->Start());
  Opaque(*seoul_, "seoul", 3);
  Opaque(*busan_, "busan", 3);

  struct Side {
    const char* log;
    const char* witness;
    Broker* broker;
  };
  for (const Side& side :
       {Side{kSeoul, kBusan, seoul_.get()}, Side{kBusan, kSeoul, busan_.get()}}) {
    const std::string store = StoreDir(side.log);
    // The fetch waits until the fresh checkpoint carries the peer's cosignature.
    WitnessToolResult f = Fetch(side.log, *side.broker, store, 1);
    ASSERT_EQ(f.code, 0) << f.out << f.err << side.broker->Log();
    EXPECT_EQ(f.j["fresh_cosigners"], json::array({side.witness})) << f.out;
    WitnessToolResult v = Verify(store, 1);
    ASSERT_EQ(v.code, 0) << v.out << v.err;
    ASSERT_TRUE(v.j["witnessed_size"].is_number()) << v.out;
    EXPECT_EQ(v.j["witnessed_size"], v.j["verified_size"]) << v.out;
    bool seen = false;
    for (const auto& c : v.j["cosignatures"]) {
      for (const auto& w : c["witnesses"]) seen = seen || w == side.witness;
    }
    EXPECT_TRUE(seen) << v.out;
    EXPECT_NE(v.j["headline"].get<std::string>().find(std::string("witnessed up to size")),
              std::string::npos)
        << v.out;
    // The readable form names the witness too.
    WitnessToolResult text = Audit({"verify", "--store", store, "--dir", fed_.Dir(kAuditor)});
    EXPECT_EQ(text.code, 0) << text.out;
    EXPECT_NE(text.out.find(std::string("cosigned:    size ")), std::string::npos) << text.out;
    EXPECT_NE(text.out.find(side.witness), std::string::npos) << text.out;
  }
  // An honest restart: seoul's latest checkpoint (signed at its stop) was never cosigned,
  // so it starts from old size 0, learns busan's size from the conflict, proves
  // consistency from there and is cosigned again.
  ASSERT_EQ(seoul_->Stop(), 0) << seoul_->Log();
  ASSERT_TRUE(seoul_->Start()) << seoul_->Log();
  Opaque(*seoul_, "seoul", 2);
  WitnessToolResult again = Fetch(kSeoul, *seoul_, StoreDir(kSeoul), 1);
  ASSERT_EQ(again.code, 0) << again.out << again.err << seoul_->Log();
  WitnessToolResult verified = Verify(StoreDir(kSeoul), 1);
  EXPECT_EQ(verified.code, 0) << verified.out;
  EXPECT_EQ(seoul_->Log().find("REFUSED"), std::string::npos) << seoul_->Log();
  EXPECT_EQ(busan_->Log().find("REFUSED"), std::string::npos) << busan_->Log();
  ASSERT_EQ(seoul_->Stop(), 0) << seoul_->Log();
  ASSERT_EQ(busan_->Stop(), 0) << busan_->Log();

  // On disk: each log's checkpoints carry the other's cosignatures, which verify; each
  // witness's state is the largest checkpoint it cosigned; nothing was refused.
  for (const Side& side : {Side{kSeoul, kBusan, nullptr}, Side{kBusan, kSeoul, nullptr}}) {
    uint64_t cosigned = 0;
    {
      auto log = OpenStore(side.log);
      ASSERT_NE(log, nullptr);
      cosigned = LargestCosignedBy(*log, side.log, side.witness);
      EXPECT_GT(cosigned, 0u);
      // Every stored note still opens with the log key alone.
      auto all = log->Checkpoints(0, 100000);
      ASSERT_TRUE(all.ok());
      for (const auto& c : *all) {
        EXPECT_TRUE(keys::OpenCheckpoint(c.note, *keys::LogOrigin("refbus-test", side.log),
                                         LogKey(side.log))
                        .ok());
      }
    }
    auto witness = OpenStore(side.witness);
    ASSERT_NE(witness, nullptr);
    auto state = witness->WitnessStateOf(*keys::LogOrigin("refbus-test", side.log));
    ASSERT_TRUE(state.ok() && state->has_value());
    EXPECT_GE((*state)->size, cosigned);
    EXPECT_TRUE(witness->WitnessEvidence()->empty());
    for (const auto& e : Entries(*witness)) EXPECT_NE(e.event, AuditEvent::kWitnessRefused);
  }
}

// Issue 17 item 5: the log picks whom it asks to cosign; the auditor decides whose
// cosignature counts (auditor.toml), and requires one by default.
TEST_F(WitnessTest, AuditorsCountOnlyTheWitnessesTheyName) {
  seoul_->set_policy(Settings(kBusan));
  busan_->set_policy(Settings(kSeoul));
  ASSERT_TRUE(seoul_->Start());
  ASSERT_TRUE(busan_->Start());
  Opaque(*seoul_, "seoul", 3);
  const std::string store = StoreDir(kSeoul);
  WitnessToolResult f = Fetch(kSeoul, *seoul_, store, 1);
  ASSERT_EQ(f.code, 0) << f.out << f.err << seoul_->Log();
  ASSERT_EQ(f.j["fresh_cosigners"], json::array({kBusan})) << f.out;
  auto verify = [&] {
    return Audit({"verify", "--json", "--store", store, "--dir", fed_.Dir(kAuditor)});
  };

  // Busan cosigned, but this auditor names only itself (and seoul, the log, which never
  // counts): by default one named cosignature is required, and there is none.
  NameWitnesses({kAuditor, kSeoul});
  WitnessToolResult v = verify();
  EXPECT_EQ(v.code, 1) << v.out << v.err;
  EXPECT_EQ(v.j["witnessed"], false) << v.out;
  EXPECT_NE(v.j["problems"].dump().find("is not witnessed"), std::string::npos) << v.out;
  EXPECT_NE(v.err.find("UNWITNESSED: no independent witness has cosigned this log"),
            std::string::npos)
      << v.err;
  // No auditor.toml at all: nobody is named, and verify says so.
  ASSERT_EQ(::unlink((fed_.Dir(kAuditor) + "/auditor.toml").c_str()), 0);
  v = verify();
  EXPECT_EQ(v.code, 1) << v.out;
  EXPECT_NE(v.j["problems"].dump().find("names no witnesses"), std::string::npos) << v.out;
  // Lowered to 0 on purpose: it passes, loudly unwitnessed.
  WitnessToolResult zero = Verify(store, 0);
  EXPECT_EQ(zero.code, 0) << zero.out;
  EXPECT_EQ(zero.j["witnessed"], false) << zero.out;
  WitnessToolResult text =
      Audit({"verify", "--store", store, "--dir", fed_.Dir(kAuditor), "--min-cosignatures", "0"});
  EXPECT_EQ(text.code, 0) << text.out;
  EXPECT_NE(text.out.find("UNWITNESSED"), std::string::npos) << text.out;
  // Named: busan's cosignature counts.
  NameWitnesses({kBusan});
  v = verify();
  EXPECT_EQ(v.code, 0) << v.out << v.err;
  EXPECT_EQ(v.j["witnessed"], true) << v.out;
  EXPECT_EQ(v.err.find("UNWITNESSED"), std::string::npos) << v.err;
  // min_cosignatures from the file; a name that is no witness is an error, not ignored.
  NameWitnesses({kBusan}, "min_cosignatures = 2\n");
  EXPECT_EQ(verify().code, 1);
  NameWitnesses({kBusan, "seoul-wee-01"});
  v = verify();
  EXPECT_EQ(v.code, 1) << v.out;
  EXPECT_NE(v.err.find("seoul-wee-01"), std::string::npos) << v.err;
  ASSERT_EQ(seoul_->Stop(), 0) << seoul_->Log();
  ASSERT_EQ(busan_->Stop(), 0) << busan_->Log();
}

TEST_F(WitnessTest, ABrokerThatSignsACheckpointInconsistentWithAWitnessedOneIsRefused) {
  seoul_->set_policy(Settings(kBusan));
  busan_->set_policy(Settings(""));
  ASSERT_TRUE(busan_->Start());
  ASSERT_TRUE(seoul_->Start());
  Opaque(*seoul_, "seoul", 6);
  // An auditor that has followed the log, witnessed, all along.
  const std::string follower = StoreDir("follower");
  WitnessToolResult f = Fetch(kSeoul, *seoul_, follower, 1);
  ASSERT_EQ(f.code, 0) << f.out << f.err << seoul_->Log();
  const uint64_t followed = f.j["entries"].get<uint64_t>();
  ASSERT_EQ(seoul_->Stop(), 0) << seoul_->Log();

  // The tamper: below the largest checkpoint busan cosigned, and below what the follower
  // holds.
  uint64_t witnessed = 0;
  keys::Hash witnessed_root{};
  {
    auto log = OpenStore(kSeoul);
    ASSERT_NE(log, nullptr);
    witnessed = LargestCosignedBy(*log, kSeoul, kBusan);
    ASSERT_GT(witnessed, 4u);
    witnessed_root = *log->AuditRootAt(witnessed);
  }
  ASSERT_GT(followed, 4u);
  TruncateAndRefrontier(kSeoul, std::min(witnessed, followed) - 3);
  // The rewritten broker starts (its log is consistent with what is left of its own
  // checkpoints) and grows past the witnessed size; each new checkpoint goes to busan.
  ASSERT_TRUE(seoul_->Start()) << seoul_->Log();
  Opaque(*seoul_, "seoul", 12);
  ASSERT_TRUE(WaitForLog(*busan_, "REFUSED AN INCONSISTENT CHECKPOINT", 20000))
      << "busan:\n"
      << busan_->Log() << "\nseoul:\n"
      << seoul_->Log();
  EXPECT_TRUE(WaitForLog(*seoul_, "REFUSED this log's", 5000)) << seoul_->Log();

  // Auditors: the newcomer's fetch waits in vain for a cosignature of the fresh checkpoint,
  // and verify finds the rewritten log's checkpoints unwitnessed; the follower also sees
  // the rewrite itself.
  const std::string newcomer = StoreDir("newcomer");
  WitnessToolResult nf = Fetch(kSeoul, *seoul_, newcomer, 1, 2000);
  EXPECT_EQ(nf.code, 1) << nf.out << nf.err;
  EXPECT_NE(nf.j["problems"].dump().find("its witnesses have not cosigned it"), std::string::npos)
      << nf.out;
  WitnessToolResult nv = Verify(newcomer, 1);
  EXPECT_EQ(nv.code, 1) << nv.out;
  EXPECT_NE(nv.j["problems"].dump().find("is not witnessed"), std::string::npos) << nv.out;
  EXPECT_TRUE(nv.j["witnessed_size"].is_null() ||
              nv.j["witnessed_size"].get<uint64_t>() < witnessed)
      << nv.out;
  WitnessToolResult ff = Fetch(kSeoul, *seoul_, follower, 0);
  EXPECT_EQ(ff.code, 1) << ff.out;
  WitnessToolResult fv = Verify(follower, 1);
  EXPECT_EQ(fv.code, 1) << fv.out;
  EXPECT_NE(fv.out.find("rewrote its history"), std::string::npos) << fv.out;
  EXPECT_NE(fv.out.find("is not witnessed"), std::string::npos) << fv.out;

  ASSERT_EQ(seoul_->Stop(), 0) << seoul_->Log();
  ASSERT_EQ(busan_->Stop(), 0) << busan_->Log();
  // The witness kept its state, both checkpoints as evidence, and the refusal on record.
  auto witness = OpenStore(kBusan);
  ASSERT_NE(witness, nullptr);
  auto state = witness->WitnessStateOf(kSeoulOrigin);
  ASSERT_TRUE(state.ok() && state->has_value());
  EXPECT_GE((*state)->size, witnessed);
  if ((*state)->size == witnessed) {
    EXPECT_EQ((*state)->root, witnessed_root);
  }
  auto evidence = witness->WitnessEvidence();
  ASSERT_TRUE(evidence.ok());
  ASSERT_FALSE(evidence->empty());
  const keys::WitnessEvidence& e = evidence->front();
  EXPECT_EQ(e.origin, kSeoulOrigin);
  EXPECT_EQ(e.requester, kSeoul);
  auto kept = keys::OpenCheckpoint(e.cosigned_note, kSeoulOrigin, LogKey(kSeoul));
  auto offered = keys::OpenCheckpoint(e.offered_note, kSeoulOrigin, LogKey(kSeoul));
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  ASSERT_TRUE(offered.ok()) << offered.status().ToString();
  // Both signed by seoul's key; one log cannot produce both.
  EXPECT_EQ(kept->checkpoint.size, e.old_size);
  EXPECT_GE(offered->checkpoint.size, kept->checkpoint.size);
  EXPECT_NE(offered->checkpoint.root, kept->checkpoint.root);
  bool audited = false;
  for (const auto& entry : Entries(*witness)) {
    if (entry.event != AuditEvent::kWitnessRefused) continue;
    audited = true;
    EXPECT_EQ(entry.actor, kSeoul);
    EXPECT_NE(entry.detail.find("inconsistent"), std::string::npos) << entry.detail;
    EXPECT_NE(entry.detail.find("evidence record"), std::string::npos) << entry.detail;
  }
  EXPECT_TRUE(audited);
}

TEST_F(WitnessTest, AnAuditorWitnessesALogAndCatchesARewrite) {
  seoul_->set_policy(Settings("", 3600000));
  ASSERT_TRUE(seoul_->Start());
  Opaque(*seoul_, "seoul", 2);
  const std::string store = StoreDir("witness");
  WitnessToolResult w1 = WitnessRun(kSeoul, *seoul_, store);
  ASSERT_EQ(w1.code, 0) << w1.out << w1.err;
  EXPECT_TRUE(w1.j["cosigned"].get<bool>());
  EXPECT_TRUE(w1.j["stored_by_broker"].get<bool>());
  EXPECT_EQ(w1.j["old_size"], 0);
  EXPECT_EQ(w1.j["verdict"], "cosigned");
  EXPECT_EQ(w1.j["witness_name"], "refbus/refbus-test/witness/audit-office");
  const uint64_t n1 = w1.j["size"].get<uint64_t>();
  Opaque(*seoul_, "seoul", 1);
  WitnessToolResult w2 = WitnessRun(kSeoul, *seoul_, store);
  ASSERT_EQ(w2.code, 0) << w2.out << w2.err;
  EXPECT_EQ(w2.j["old_size"].get<uint64_t>(), n1);
  const uint64_t n2 = w2.j["size"].get<uint64_t>();
  EXPECT_GT(n2, n1);

  // The same store fetched: the broker serves both checkpoints with the auditor's
  // cosignature, and verify names who cosigned what.
  WitnessToolResult f = Fetch(kSeoul, *seoul_, store, 0);
  ASSERT_EQ(f.code, 0) << f.out << f.err;
  WitnessToolResult v = Verify(store, 0);
  ASSERT_EQ(v.code, 0) << v.out << v.err;
  std::map<uint64_t, std::vector<std::string>> by_size;
  for (const auto& c : v.j["cosignatures"]) {
    by_size[c["size"].get<uint64_t>()] = c["witnesses"].get<std::vector<std::string>>();
  }
  EXPECT_EQ(by_size[n1], std::vector<std::string>{kAuditor}) << v.out;
  EXPECT_EQ(by_size[n2], std::vector<std::string>{kAuditor}) << v.out;
  EXPECT_EQ(v.j["witnessed_size"].get<uint64_t>(), n2);
  // The fetch's own fresh checkpoint is newer than anything witnessed.
  WitnessToolResult strict = Verify(store, 1);
  EXPECT_EQ(strict.code, 1) << strict.out;
  EXPECT_NE(strict.out.find("is not witnessed"), std::string::npos) << strict.out;
  ASSERT_EQ(seoul_->Stop(), 0) << seoul_->Log();
  {
    auto log = OpenStore(kSeoul);
    ASSERT_NE(log, nullptr);
    EXPECT_EQ(LargestCosignedBy(*log, kSeoul, kAuditor), n2);
  }

  // The broker's log truncated below n2 and re-signed: the auditor refuses to cosign and
  // keeps the evidence.
  TruncateAndRefrontier(kSeoul, n2 - 2);
  ASSERT_TRUE(seoul_->Start()) << seoul_->Log();
  Opaque(*seoul_, "seoul", 4);
  WitnessToolResult w3 = WitnessRun(kSeoul, *seoul_, store);
  EXPECT_EQ(w3.code, 1) << w3.out << w3.err;
  EXPECT_FALSE(w3.j["cosigned"].get<bool>());
  EXPECT_TRUE(w3.j["evidence"].is_number()) << w3.out;
  EXPECT_EQ(w3.j["verdict"], "inconsistent") << w3.out;
  EXPECT_EQ(w3.j["old_size"].get<uint64_t>(), n2);
  ASSERT_EQ(seoul_->Stop(), 0) << seoul_->Log();
}

TEST_F(WitnessTest, OnlyBrokersMayAskToBeWitnessedAndOnlyWitnessesMayCosign) {
  seoul_->set_policy(Settings(""));
  ASSERT_TRUE(seoul_->Start());
  keys::MemoryTree tree;
  for (int i = 0; i < 4; ++i) tree.AppendEntry(AsBytes("e" + std::to_string(i)));
  keys::Checkpoint c;
  c.origin = kBusanOrigin;
  c.size = 4;
  c.root = *keys::RootAt(tree, 4);
  const std::string note = *keys::SignCheckpoint(c, Id(kBusan));

  uint64_t rid = 100;
  for (const char* party : {"seoul-wee-01", kAuditor}) {
    RawClient client(Id(party), TransportKey(kSeoul), seoul_->endpoint());
    Frame f;
    f.type = Frame::Type::kWitnessRequest;
    f.request_id = ++rid;
    f.witness_request.checkpoint = note;
    client.SendFrame(f);
    auto r = client.Expect(Frame::Type::kNack, f.request_id, 5000);
    ASSERT_TRUE(r.has_value()) << party << "\n" << seoul_->Log();
    EXPECT_EQ(r->nack.reason, NackReason::kNotPermitted);
    EXPECT_NE(r->nack.detail.find("only brokers"), std::string::npos) << r->nack.detail;
  }
  // An agency handing a "cosignature" over is refused too.
  {
    RawClient client(Id("seoul-wee-01"), TransportKey(kSeoul), seoul_->endpoint());
    Frame f;
    f.type = Frame::Type::kAddCosignature;
    f.request_id = ++rid;
    f.add_cosignature.checkpoint = note;
    client.SendFrame(f);
    auto r = client.Expect(Frame::Type::kNack, f.request_id, 5000);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->nack.reason, NackReason::kNotPermitted);
  }
  ASSERT_EQ(seoul_->Stop(), 0) << seoul_->Log();
  auto store = OpenStore(kSeoul);
  ASSERT_NE(store, nullptr);
  std::set<std::string> refused;
  for (const auto& e : Entries(*store)) {
    if (e.event != AuditEvent::kWitnessRefused) continue;
    EXPECT_EQ(e.reason, NackReason::kNotPermitted);
    refused.insert(e.actor);
  }
  EXPECT_EQ(refused, (std::set<std::string>{"seoul-wee-01", kAuditor}));
  EXPECT_FALSE(store->WitnessStateOf(kBusanOrigin)->has_value());
}

// The test speaks for busan's log to the seoul broker as its witness, with busan's keys.
class WitnessProtocolTest : public WitnessTest {
 protected:
  void Grow(keys::MemoryTree& tree, const std::string& tag, uint64_t to) {
    while (tree.Size() < to) {
      tree.AppendEntry(AsBytes(tag + std::to_string(tree.Size())));
    }
  }
  std::string Note(const keys::MemoryTree& tree, uint64_t size, const keys::Identity& key,
                   const std::string& origin = kBusanOrigin) {
    keys::Checkpoint c;
    c.origin = origin;
    c.size = size;
    c.root = *keys::RootAt(tree, size);
    auto n = keys::SignCheckpoint(c, key);
    EXPECT_TRUE(n.ok());
    return *n;
  }
  Frame Ask(RawClient& client, const std::string& note, uint64_t old_size,
            const keys::MemoryTree* tree = nullptr, uint64_t size = 0) {
    Frame f;
    f.type = Frame::Type::kWitnessRequest;
    f.request_id = ++rid_;
    f.witness_request.checkpoint = note;
    f.witness_request.old_size = old_size;
    if (tree != nullptr) {
      auto proof = keys::ConsistencyProof(*tree, old_size, size);
      EXPECT_TRUE(proof.ok());
      for (const auto& h : *proof) {
        f.witness_request.consistency_proof.emplace_back(h.begin(), h.end());
      }
    }
    client.SendFrame(f);
    auto r = client.Expect(Frame::Type::kWitnessReply, f.request_id, 5000);
    EXPECT_TRUE(r.has_value()) << seoul_->Log();
    return r.value_or(Frame{});
  }
  uint64_t rid_ = 0;
};

TEST_F(WitnessProtocolTest, StaleOldSizeGetsTheWitnessSizeAndTheRetrySucceeds) {
  seoul_->set_policy(Settings(""));
  ASSERT_TRUE(seoul_->Start());
  RawClient busan(Id(kBusan), TransportKey(kSeoul), seoul_->endpoint());
  keys::MemoryTree tree;
  Grow(tree, "e", 12);
  const keys::NoteVerifier seoul_witness = WitnessKey(kSeoul);

  // First sight: no proof, cosigned; the line verifies with seoul's witness key.
  Frame r = Ask(busan, Note(tree, 5, Id(kBusan)), 0);
  ASSERT_EQ(r.type, Frame::Type::kWitnessReply);
  ASSERT_EQ(r.witness_reply.refusal, WitnessRefusal::kNone) << r.witness_reply.detail;
  EXPECT_EQ(r.witness_reply.witness_size, 5u);
  auto sig = keys::ParseSignatureLine(r.witness_reply.cosignature);
  ASSERT_TRUE(sig.ok());
  auto body = keys::ParseSignedNote(Note(tree, 5, Id(kBusan)));
  EXPECT_TRUE(keys::VerifyCosignature(body->text, *sig, seoul_witness).ok());

  // A stale old size (the log thinks the witness is at 3): 409 with the witness's size.
  r = Ask(busan, Note(tree, 9, Id(kBusan)), 3, &tree, 9);
  EXPECT_EQ(r.witness_reply.refusal, WitnessRefusal::kConflict);
  EXPECT_EQ(r.witness_reply.witness_size, 5u);
  EXPECT_TRUE(r.witness_reply.cosignature.empty());
  // The retry from there succeeds.
  r = Ask(busan, Note(tree, 9, Id(kBusan)), 5, &tree, 9);
  ASSERT_EQ(r.witness_reply.refusal, WitnessRefusal::kNone) << r.witness_reply.detail;
  EXPECT_EQ(r.witness_reply.witness_size, 9u);

  // Refusals, each on record: another log's origin, a key that is not busan's, an older
  // checkpoint, and a forked history.
  r = Ask(busan, Note(tree, 10, Id(kBusan), kSeoulOrigin), 9);
  EXPECT_EQ(r.witness_reply.refusal, WitnessRefusal::kUnknownLog);
  r = Ask(busan, Note(tree, 10, Id("busan-wee-01")), 9, &tree, 10);
  EXPECT_EQ(r.witness_reply.refusal, WitnessRefusal::kBadSignature);
  r = Ask(busan, Note(tree, 4, Id(kBusan)), 9);
  EXPECT_EQ(r.witness_reply.refusal, WitnessRefusal::kBadRequest);
  keys::MemoryTree fork;
  Grow(fork, "f", 12);
  r = Ask(busan, Note(fork, 12, Id(kBusan)), 9, &fork, 12);
  EXPECT_EQ(r.witness_reply.refusal, WitnessRefusal::kInconsistent);
  EXPECT_EQ(r.witness_reply.witness_size, 9u);
  // The honest log goes on.
  r = Ask(busan, Note(tree, 12, Id(kBusan)), 9, &tree, 12);
  EXPECT_EQ(r.witness_reply.refusal, WitnessRefusal::kNone) << r.witness_reply.detail;

  ASSERT_EQ(seoul_->Stop(), 0) << seoul_->Log();
  EXPECT_NE(seoul_->Log().find("REFUSED AN INCONSISTENT CHECKPOINT"), std::string::npos);
  auto store = OpenStore(kSeoul);
  ASSERT_NE(store, nullptr);
  auto state = store->WitnessStateOf(kBusanOrigin);
  ASSERT_TRUE(state.ok() && state->has_value());
  EXPECT_EQ((*state)->size, 12u);
  EXPECT_EQ(store->WitnessEvidence()->size(), 1u);
  size_t refusals = 0;
  for (const auto& e : Entries(*store)) {
    if (e.event == AuditEvent::kWitnessRefused) {
      ++refusals;
      EXPECT_EQ(e.actor, kBusan);
    }
  }
  EXPECT_EQ(refusals, 4u);  // the conflict is the protocol, not a refusal
}

TEST_F(WitnessTest, WitnessSettingsAreValidated) {
  auto load = [&](const std::string& witness_section) {
    std::string cfg = root_ + "/w.toml";
    std::string dir = fed_.Dir(kSeoul);
    {
      std::ofstream out(cfg);
      out << "[broker]\nid = \"seoul-broker\"\nbind = \"tcp://127.0.0.1:*\"\n"
          << "data_dir = \"" << DataDir(kSeoul) << "\"\n"
          << "key_file = \"" << dir << "/identity.key\"\n"
          << "directory = \"" << dir << "/directory\"\n"
          << "anchor = \"" << dir << "/authority.pub\"\n"
          << "trust_state = \"" << DataDir(kSeoul) << ".trust-state\"\n"
          << "[witness]\n"
          << witness_section;
    }
    return broker::LoadConfig(cfg);
  };
  auto ok = load(
      "peers = [\"busan-broker\"]\nendpoints = { busan-broker = \"tcp://10.0.0.7:7450\" }\n"
      "interval_ms = 500\n");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  ASSERT_EQ(ok->witness_peers.size(), 1u);
  EXPECT_EQ(ok->witness_peers[0].id, kBusan);
  EXPECT_EQ(ok->witness_peers[0].endpoint, "tcp://10.0.0.7:7450");
  EXPECT_EQ(ok->witness_interval_ms, 500u);
  auto files = load("peers = [\"busan-broker\"]\nendpoint_files = { busan-broker = \"b.ep\" }\n");
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_EQ(files->witness_peers[0].endpoint_file, root_ + "/b.ep");

  for (const auto& [section, want] : std::vector<std::pair<std::string, std::string>>{
           {"peers = \"busan-broker\"\n", "witness.peers"},
           {"peers = [\"seoul-broker\"]\n", "names this broker itself"},
           {"peers = [\"busan-broker\", \"busan-broker\"]\n", "twice"},
           {"peers = [\"Busan\"]\n", "not a party id"},
           {"peers = [\"busan-broker\"]\nendpoints = { incheon-broker = \"tcp://x:1\" }\n",
            "not one of witness.peers"},
           {"peers = [\"busan-broker\"]\nendpoints = { busan-broker = \"http://x\" }\n", "tcp://"},
           {"endpoints = { busan-broker = \"tcp://x:1\" }\n", "witness.peers is not"},
           {"peers = [\"busan-broker\"]\ninterval_ms = 5\n", "witness.interval_ms"},
           {"peers = [\"busan-broker\"]\nretries = 3\n", "witness.retries"},
       }) {
    auto bad = load(section);
    ASSERT_FALSE(bad.ok()) << section;
    EXPECT_NE(bad.status().message().find(want), std::string::npos)
        << section << " -> " << bad.status().ToString();
  }
}

}  // namespace
}  // namespace refbus::testing
