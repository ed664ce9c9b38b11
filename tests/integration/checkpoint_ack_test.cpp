// Checkpoint in Ack (schema/PROTOCOL.md section 6) with real processes: a refbus-broker
// signs checkpoints; a refbus-agent daemon gets one with every Ack, verifies it and keeps
// the latest; `refbus-agent checkpoint --out` writes it; `refbus-audit verify --evidence`
// checks a fetched log against it: the honest log passes, a log the broker truncated and
// rewrote afterwards fails, naming the file, and the agent itself refuses the rewritten
// log's smaller checkpoint (critical log line) and keeps its own.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <lmdb.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "broker/audit_log.h"
#include "broker/store.h"
#include "keys/checkpoint.h"
#include "schema/codec.h"
#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

using json = nlohmann::json;
using schema::AgencyType;
using schema::Frame;

constexpr char kWee[] = "seoul-wee-01";
constexpr char kCounsel[] = "seoul-counsel";

struct ExecResult {
  int code = -1;
  std::string out, err;
  json j;
};

// Runs argv[0] from build/bin with its output in files under dir.
ExecResult Exec(const std::string& dir, std::vector<std::string> argv) {
  const std::string out_path = dir + "/exec.out", err_path = dir + "/exec.err";
  argv[0] = BinDir() + "/" + argv[0];
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
  ExecResult r;
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = Slurp(out_path);
  r.err = Slurp(err_path);
  r.j = json::parse(r.out, nullptr, false);
  return r;
}

class CheckpointAckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("refbus-checkpoint-ack-test");
    ASSERT_TRUE(fed_.Create(root_, {kBroker},
                            {{kWee, AgencyType::kWeeCenter, kBroker},
                             {kCounsel, AgencyType::kCounselingCenter, kBroker}}));
    ASSERT_TRUE(fed_.AddAuditor(kAuditor));
    broker_ = std::make_unique<Broker>(fed_, kBroker, DataDir());
    broker_->set_policy("allow_unscoped_opaque = true\n[audit]\ncheckpoint_interval_ms = 150");
  }
  void TearDown() override {
    if (agent_.running()) {
      agent_.Signal(SIGTERM);
      agent_.Wait(10000);
    }
    broker_.reset();
    if (!HasFailure()) RemoveTree(root_);
  }

  std::string DataDir() const { return root_ + "/seoul-data"; }
  std::string AgentConfig() const { return root_ + "/wee-agent.toml"; }

  // refbus-agent run for the Wee center, until its API answers.
  void StartAgent() {
    const std::string dir = fed_.Dir(kWee), data = root_ + "/wee-agent";
    std::ofstream out(AgentConfig());
    out << "[agent]\nid = \"" << kWee << "\"\ndata_dir = \"" << data << "\"\nkey_file = \"" << dir
        << "/identity.key\"\ndirectory = \"" << dir << "/directory\"\nanchor = \"" << dir
        << "/authority.pub\"\ntrust_state = \"" << data << ".trust-state\"\nbroker_endpoint = \""
        << broker_->endpoint() << "\"\n[api]\nlisten = \"127.0.0.1:0\"\nurl_file = \"" << data
        << ".url\"\ntoken_file = \"" << data << ".token\"\n";
    out.close();
    agent_log_ = data + ".log";
    ASSERT_TRUE(agent_.Start({BinDir() + "/refbus-agent", "run", "-c", AgentConfig()}, agent_log_));
    for (int i = 0; i < 500 && url_.empty(); ++i) {
      std::ifstream u(data + ".url"), t(data + ".token");
      std::getline(u, url_);
      std::getline(t, token_);
      if (url_.empty() || token_.empty()) {
        url_.clear();
        ASSERT_LT(agent_.Wait(10), 0) << "refbus-agent run exited:\n" << Slurp(agent_log_);
      }
    }
    ASSERT_FALSE(url_.empty()) << "refbus-agent run did not come up:\n" << Slurp(agent_log_);
  }

  json Api(const std::string& method, const std::string& path, const json& body = nullptr) {
    httplib::Client c(url_);
    c.set_read_timeout(30, 0);
    httplib::Headers h = {{"Authorization", "Bearer " + token_}};
    auto r = method == "GET" ? c.Get(path.c_str(), h)
                             : c.Post(path.c_str(), h, body.dump(), "application/json");
    if (!r) return json();
    EXPECT_LT(r->status, 300) << method << " " << path << ": " << r->body;
    return json::parse(r->body, nullptr, false);
  }
  // A consent grant recorded by the Wee center: a GrantRegister the broker acks.
  void RecordConsent() {
    Api("POST", "/v1/consents",
        {{"local_case", "WEE-2026-" + std::to_string(1000 + consents_++)},
         {"basis", "consent-legal-representative"},
         {"legal_article", "PIPA 22-2"},
         {"consenters", {"guardian"}},
         {"subject_assent", true},
         {"purposes", {"counseling"}},
         {"categories", {"identity", "contact"}},
         {"recipient_types", {"counseling-center"}},
         {"valid_days", 90},
         {"operator", "wee-teacher-1"}});
  }
  // Acks until the agent keeps a checkpoint of at least min_size; its status.
  json KeepCheckpoint(uint64_t min_size) {
    json s;
    for (int i = 0; i < 60; ++i) {
      RecordConsent();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      s = Api("GET", "/v1/status");
      if (s.value("checkpoint_size", uint64_t{0}) >= min_size) return s;
    }
    ADD_FAILURE() << "no checkpoint of size >= " << min_size << " kept; status: " << s.dump(2)
                  << "\nagent log:\n"
                  << Slurp(agent_log_) << "\nbroker log:\n"
                  << broker_->Log();
    return s;
  }

  // n opaque envelopes from the counseling center to the Wee center, each acked.
  void Opaque(int n) {
    keys::Identity id = fed_.LoadIdentity(kCounsel);
    RawClient c(id, fed_.directory().Find(kBroker)->ActiveKeys()->transport_key,
                broker_->endpoint());
    ASSERT_TRUE(c.Hello(kCounsel));
    for (int i = 0; i < n; ++i) {
      auto now = SystemClock::Get().NowMillis();
      auto r = c.Submit(SealTo(id, fed_.directory(), {kWee}, now));
      ASSERT_TRUE(r.has_value());
      ASSERT_EQ(r->type, Frame::Type::kAck) << r->nack.detail;
    }
  }

  ExecResult Audit(std::vector<std::string> args) {
    args.insert(args.begin(), "refbus-audit");
    return Exec(root_, std::move(args));
  }
  ExecResult FetchInto(const std::string& store) {
    return Audit({"fetch", "--json", "--dir", fed_.Dir(kAuditor), "--broker", kBroker, "--endpoint",
                  broker_->endpoint(), "--store", store});
  }
  ExecResult VerifyWith(const std::string& store, const std::string& evidence) {
    return Audit({"verify", "--json", "--store", store, "--dir", fed_.Dir(kAuditor),
                  "--min-cosignatures", "0", "--evidence", evidence});
  }

  // With the broker stopped: the log cut back to keep entries, its tree, frontier, size
  // and the checkpoints above made to fit, so that it starts and signs a rewritten log.
  void Truncate(uint64_t keep) {
    broker::StoreOptions o;
    o.dir = DataDir();
    o.broker_id = kBroker;
    auto bs = broker::Store::Open(o);
    ASSERT_TRUE(bs.ok()) << bs.status().ToString();
    const uint64_t n = *(*bs)->AuditSize();
    ASSERT_GT(n, keep);
    lmdb::Env& env = (*bs)->env();
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
  std::unique_ptr<Broker> broker_;
  Process agent_;
  std::string agent_log_, url_, token_;
  int consents_ = 0;
};

TEST_F(CheckpointAckTest, AnAgencysKeptCheckpointIsEvidenceAgainstARewrittenLog) {
  ASSERT_TRUE(broker_->Start()) << broker_->Log();
  StartAgent();
  ASSERT_FALSE(HasFatalFailure());
  Opaque(4);
  // Large enough that the rewritten log, cut back to 3 entries, is still below it when the
  // agent next hears from the broker.
  json status = KeepCheckpoint(12);
  ASSERT_TRUE(status["checkpoint"].is_object()) << status.dump(2);
  const uint64_t kept = status["checkpoint_size"].get<uint64_t>();
  const std::string kept_root = status["checkpoint_root"].get<std::string>();
  // What the agent keeps is the broker's own signed note.
  auto opened = keys::OpenCheckpoint(
      status["checkpoint"]["note"].get<std::string>(), "refbus/refbus-test/seoul-broker",
      *keys::NoteVerifier::Create("refbus/refbus-test/seoul-broker", keys::NoteKeyType::kEd25519,
                                  fed_.directory().Find(kBroker)->ActiveKeys()->signing_key));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(opened->checkpoint.size, kept);
  EXPECT_EQ(HexEncode(opened->checkpoint.root), kept_root);

  // Exported with the CLI, checked by the auditor against the honest log.
  const std::string evidence = root_ + "/wee.checkpoint";
  ExecResult exported =
      Exec(root_, {"refbus-agent", "checkpoint", "-c", AgentConfig(), "--out", evidence});
  ASSERT_EQ(exported.code, 0) << exported.out << exported.err;
  EXPECT_NE(exported.out.find("size " + std::to_string(kept)), std::string::npos) << exported.out;
  EXPECT_EQ(Slurp(evidence), status["checkpoint"]["note"].get<std::string>());
  const std::string honest = root_ + "/audit-honest";
  ExecResult f = FetchInto(honest);
  ASSERT_EQ(f.code, 0) << f.out << f.err;
  ExecResult v = VerifyWith(honest, evidence);
  EXPECT_EQ(v.code, 0) << v.out << v.err;
  EXPECT_EQ(v.j["evidence_checked"], 1) << v.out;
  EXPECT_EQ(v.j["witnessed"], false) << v.out;
  EXPECT_NE(v.err.find("UNWITNESSED"), std::string::npos) << v.err;

  // The broker truncates its log below the agency's checkpoint and rewrites it past it.
  ASSERT_EQ(broker_->Stop(), 0) << broker_->Log();
  Truncate(3);
  ASSERT_FALSE(HasFatalFailure());
  broker_->set_bind(broker_->endpoint());
  ASSERT_TRUE(broker_->Start()) << broker_->Log();
  // The agent is shown the smaller checkpoint first: it refuses it and keeps its own.
  for (int i = 0; i < 50 && Slurp(agent_log_).find("DOES NOT EXTEND") == std::string::npos; ++i) {
    RecordConsent();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(Slurp(agent_log_).find("DOES NOT EXTEND THE ONE THIS AGENCY KEEPS"), std::string::npos)
      << Slurp(agent_log_);
  json after = Api("GET", "/v1/status");
  EXPECT_EQ(after["checkpoint_size"], kept) << after.dump(2);
  EXPECT_EQ(after["checkpoint_root"], kept_root) << after.dump(2);
  Opaque(8);
  // A newcomer auditor fetches the rewritten log, consistent in itself: the agency's
  // checkpoint shows the rewrite.
  const std::string rewritten = root_ + "/audit-rewritten";
  ExecResult f2 = FetchInto(rewritten);
  ASSERT_EQ(f2.code, 0) << f2.out << f2.err;
  ASSERT_GT(f2.j["entries"].get<uint64_t>(), kept) << f2.out;
  ExecResult plain = Audit({"verify", "--json", "--store", rewritten, "--dir", fed_.Dir(kAuditor),
                            "--min-cosignatures", "0"});
  EXPECT_EQ(plain.code, 0) << plain.out;  // nothing else could tell
  ExecResult v2 = VerifyWith(rewritten, evidence);
  EXPECT_EQ(v2.code, 1) << v2.out << v2.err;
  EXPECT_NE(v2.out.find("evidence " + evidence), std::string::npos) << v2.out;
  EXPECT_NE(v2.out.find("does not match the log"), std::string::npos) << v2.out;
}

}  // namespace
}  // namespace refbus::testing
