// Linkage evaluation over the bus (PROTOCOL.md 13.4, issue 19 item 2): two real
// refbus-broker processes hold the role linkage-evaluator with key files made by
// `refbus-broker linkage-key`; agencies ask them over CURVE sessions
// (agent::RequestPseudonym). The same identifier at two agencies gives one pseudonym; an
// agency past its daily quota is refused and the refusal is in the evaluator's audit log as
// a count; an evaluator answering with another key than the listed one is refused by the
// agency; a malformed element and a broker without the role are refused.
#include <gtest/gtest.h>
#include <sodium.h>
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "agent/linkage_client.h"
#include "broker/store.h"
#include "core/zmq.h"
#include "keys/directory.h"
#include "keys/secret.h"
#include "linkage/oprf.h"
#include "schema/codec.h"
#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

using schema::AgencyType;
using schema::Frame;

class LinkageEvalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(keys::InitSodium().ok());
    root_ = MakeTempDir("refbus-linkage-eval-test");
    ASSERT_TRUE(fed_.Create(root_, {"eval-a", "eval-b", "plain-broker"},
                            {{"seoul-center", AgencyType::kSupportCenter, "eval-a"},
                             {"incheon-center", AgencyType::kSupportCenter, "eval-b"}}));
    keys::DirectoryEdit edit;
    for (const char* b : {"eval-a", "eval-b"}) {
      const std::string key_file = fed_.Dir(b) + "/linkage.key";
      pub_[b] = MakeKeyFile(key_file);
      ASSERT_EQ(pub_[b].size(), 64u) << b;
      keys::Listing l;
      l.region = b;
      l.roles = keys::DefaultRoles(schema::PartyKind::kBroker, AgencyType::kUnspecified);
      l.roles.push_back(schema::Role::kLinkageEvaluator);
      l.linkage_key = *HexDecode(pub_[b]);
      auto rec =
          keys::MakePartyRecord(fed_.LoadIdentity(b), l, SystemClock::Get().NowMillis(), nullptr);
      ASSERT_TRUE(rec.ok()) << rec.status().ToString();
      edit.upserts.push_back(*rec);
    }
    ASSERT_TRUE(fed_.Reissue(edit));
  }
  void TearDown() override { RemoveTree(root_); }

  // refbus-broker linkage-key --out path; returns the public key hex it printed.
  std::string MakeKeyFile(const std::string& path) {
    const std::string out = path + ".out";
    Process p;
    if (!p.Start({BinDir() + "/refbus-broker", "linkage-key", "--out", path}, out)) return "";
    EXPECT_EQ(p.Wait(Scaled(10000)), 0);
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << path;  // a secret key: the owner's only
    std::ifstream in(out);
    std::string line, hex;
    while (std::getline(in, line)) {
      auto at = line.find("linkage_key for this broker): ");
      if (at != std::string::npos) hex = line.substr(line.find("): ") + 3);
    }
    return hex;
  }

  std::unique_ptr<Broker> StartEvaluator(const std::string& id, int quota) {
    auto b = std::make_unique<Broker>(fed_, id, root_ + "/" + id + "-data");
    b->set_extra("[linkage]\nkey_file = \"" + fed_.Dir(id) +
                 "/linkage.key\"\ndaily_quota = " + std::to_string(quota) + "\n");
    EXPECT_TRUE(b->Start()) << b->Log();
    return b;
  }

  agent::LinkageClientOptions Options() const {
    agent::LinkageClientOptions o;
    o.first = {"eval-a", a_->endpoint()};
    o.second = {"eval-b", b_->endpoint()};
    o.timeout_ms = Scaled(5000);
    return o;
  }

  Result<linkage::Pseudonym> Ask(const std::string& agency, std::string_view phone,
                                 const agent::LinkageClientOptions& o) {
    auto id = linkage::Canonicalize(linkage::IdentifierKind::kPhone, phone);
    if (!id.ok()) return id.status();
    return agent::RequestPseudonym(fed_.LoadIdentity(agency), fed_.directory(), o, *id);
  }

  // The LINKAGE_EVALUATION entries of a stopped broker's log.
  std::vector<schema::AuditEntry> LinkageEntries(const std::string& id) {
    std::vector<schema::AuditEntry> out;
    broker::StoreOptions o;
    o.dir = root_ + "/" + id + "-data";
    o.broker_id = id;
    auto store = broker::Store::Open(o);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return out;
    auto read = (*store)->AuditEntriesFrom(0, 4096, 1u << 24);
    EXPECT_TRUE(read.ok()) << read.status().ToString();
    if (!read.ok()) return out;
    for (const Bytes& b : read->entries) {
      auto e = schema::DecodeAuditEntry(b);
      EXPECT_TRUE(e.ok());
      if (e.ok() && e->event == schema::AuditEvent::kLinkageEvaluation) out.push_back(*e);
    }
    return out;
  }

  std::string root_;
  Federation fed_;
  std::map<std::string, std::string> pub_;
  std::unique_ptr<Broker> a_, b_;
};

TEST_F(LinkageEvalTest, SameIdentifierAtTwoAgenciesGivesOnePseudonym) {
  a_ = StartEvaluator("eval-a", 300);
  b_ = StartEvaluator("eval-b", 300);
  auto seoul = Ask("seoul-center", "010-1234-5678", Options());
  ASSERT_TRUE(seoul.ok()) << seoul.status().ToString() << "\n" << a_->Log();
  auto incheon = Ask("incheon-center", "+82 10 1234 5678", Options());
  ASSERT_TRUE(incheon.ok()) << incheon.status().ToString();
  EXPECT_EQ(*seoul, *incheon);
  auto other = Ask("incheon-center", "010-1234-5679", Options());
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  EXPECT_NE(*seoul, *other);
  EXPECT_EQ(a_->Stop(), 0);
  EXPECT_EQ(b_->Stop(), 0);
  // Each evaluation is a count in the evaluator's log, naming the authenticated agency.
  auto entries = LinkageEntries("eval-b");
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].actor, "seoul-center");
  EXPECT_EQ(entries[1].actor, "incheon-center");
  EXPECT_NE(entries[2].detail.find("2/300"), std::string::npos) << entries[2].detail;
  // The evaluators' logs never name an identifier.
  EXPECT_EQ(a_->Log().find("1012345678"), std::string::npos);
}

TEST_F(LinkageEvalTest, QuotaExceededIsRefusedAndAuditedAsACount) {
  a_ = StartEvaluator("eval-a", 2);
  b_ = StartEvaluator("eval-b", 300);
  ASSERT_TRUE(Ask("seoul-center", "010-1111-2222", Options()).ok());
  ASSERT_TRUE(Ask("seoul-center", "010-1111-2223", Options()).ok());
  auto third = Ask("seoul-center", "010-1111-2224", Options());
  EXPECT_EQ(third.status().code(), Status::Code::kResourceExhausted) << third.status().ToString();
  // The quota is per agency: another agency still gets its evaluation.
  EXPECT_TRUE(Ask("incheon-center", "010-1111-2224", Options()).ok());
  // A malformed element is refused before the quota and audited as a refusal.
  RawClient raw(fed_.LoadIdentity("incheon-center"),
                fed_.directory().Find("eval-a")->ActiveKeys()->transport_key, a_->endpoint());
  Frame bad;
  bad.type = Frame::Type::kLinkageEvaluate;
  bad.request_id = 77;
  bad.linkage_evaluate.blinded_element = Bytes(32, 0xff);
  raw.SendFrame(bad);
  auto nack = raw.Expect(Frame::Type::kNack, 77, Scaled(5000));
  ASSERT_TRUE(nack.has_value());
  EXPECT_EQ(nack->nack.reason, schema::NackReason::kMalformed);
  EXPECT_EQ(a_->Stop(), 0);
  auto entries = LinkageEntries("eval-a");
  ASSERT_EQ(entries.size(), 5u);
  EXPECT_EQ(entries[2].actor, "seoul-center");
  EXPECT_EQ(entries[2].reason, schema::NackReason::kQuotaExceeded);
  EXPECT_NE(entries[2].detail.find("2/2"), std::string::npos) << entries[2].detail;
  EXPECT_NE(entries[2].detail.find("1 refused"), std::string::npos) << entries[2].detail;
  EXPECT_EQ(entries[3].actor, "incheon-center");
  EXPECT_EQ(entries[3].reason, schema::NackReason::kUnspecified);
  EXPECT_EQ(entries[4].reason, schema::NackReason::kMalformed);
  for (const auto& e : entries) {
    EXPECT_TRUE(e.message_id.empty() && e.envelope_sha256.empty() && e.statement_sha256.empty());
  }
}

// A CURVE server on the listed broker's transport key that answers every LinkageEvaluate
// with an evaluation under a key of its own (valid proof, wrong key).
class ForgingEvaluator {
 public:
  explicit ForgingEvaluator(const keys::Identity& as)
      : sock_(ctx_, zmq::socket_type::router), key_(Must()) {
    sock_.set(zmq::sockopt::curve_server, true);
    sock_.set(zmq::sockopt::curve_secretkey,
              zmq::const_buffer(as.transport_secret_key().view().data(), 32));
    sock_.set(zmq::sockopt::linger, 0);
    sock_.bind("tcp://127.0.0.1:*");
    endpoint_ = sock_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ForgingEvaluator() {
    stop_ = true;
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }
  int answered() const { return answered_; }

 private:
  static linkage::oprf::ServerKey Must() {
    auto k = linkage::oprf::ServerKey::Generate(linkage::oprf::Mode::kVoprf);
    if (!k.ok()) std::abort();
    return std::move(*k);
  }
  void Serve() {
    zmq::pollitem_t item{sock_.handle(), 0, ZMQ_POLLIN, 0};
    while (!stop_) {
      zmq::poll(&item, 1, std::chrono::milliseconds(50));
      if ((item.revents & ZMQ_POLLIN) == 0) continue;
      zmq::message_t rid, body;
      if (!sock_.recv(rid) || !sock_.recv(body)) continue;
      auto f = schema::DecodeFrame(ByteView(static_cast<const uint8_t*>(body.data()), body.size()));
      if (!f.ok() || f->type != Frame::Type::kLinkageEvaluate) continue;
      auto x = linkage::oprf::DeserializeElement(f->linkage_evaluate.blinded_element);
      auto ev = linkage::oprf::BlindEvaluate(key_, *x, linkage::oprf::RandomScalars());
      Frame r;
      r.type = Frame::Type::kLinkageEvaluated;
      r.request_id = f->request_id;
      r.linkage_evaluated.evaluated_element.assign(ev->evaluated.begin(), ev->evaluated.end());
      auto proof = ev->proof.Serialize();
      r.linkage_evaluated.proof.assign(proof.begin(), proof.end());
      Bytes out = schema::EncodeFrame(r);
      sock_.send(rid, zmq::send_flags::sndmore);
      sock_.send(zmq::buffer(out.data(), out.size()));
      ++answered_;
    }
  }
  zmq::context_t ctx_;
  zmq::socket_t sock_;
  linkage::oprf::ServerKey key_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::atomic<int> answered_{0};
  std::thread thread_;
};

TEST_F(LinkageEvalTest, AnEvaluatorAnsweringWithAnotherKeyIsRefused) {
  a_ = StartEvaluator("eval-a", 300);
  b_ = StartEvaluator("eval-b", 300);
  auto honest = Ask("seoul-center", "010-5555-6666", Options());
  ASSERT_TRUE(honest.ok()) << honest.status().ToString();
  {  // The second evaluator forges: the agency refuses and computes nothing.
    ForgingEvaluator forger(fed_.LoadIdentity("eval-b"));
    auto o = Options();
    o.second.endpoint = forger.endpoint();
    auto r = Ask("seoul-center", "010-5555-6666", o);
    EXPECT_EQ(r.status().code(), Status::Code::kUnauthenticated) << r.status().ToString();
    EXPECT_EQ(forger.answered(), 1);
  }
  {  // The first evaluator forges: refused before anything goes to the second.
    ForgingEvaluator forger(fed_.LoadIdentity("eval-a"));
    auto o = Options();
    o.first.endpoint = forger.endpoint();
    auto r = Ask("seoul-center", "010-5555-6666", o);
    EXPECT_EQ(r.status().code(), Status::Code::kUnauthenticated) << r.status().ToString();
  }
  EXPECT_EQ(b_->Stop(), 0);
  EXPECT_EQ(LinkageEntries("eval-b").size(), 1u);  // only the honest request reached B
}

TEST_F(LinkageEvalTest, ABrokerWithoutTheRoleOrAKeyEvaluatesNothing) {
  Broker plain(fed_, "plain-broker", root_ + "/plain-data");
  ASSERT_TRUE(plain.Start());
  RawClient raw(fed_.LoadIdentity("seoul-center"),
                fed_.directory().Find("plain-broker")->ActiveKeys()->transport_key,
                plain.endpoint());
  Frame f;
  f.type = Frame::Type::kLinkageEvaluate;
  f.request_id = 5;
  f.linkage_evaluate.blinded_element = Bytes(32, 0x01);
  raw.SendFrame(f);
  auto nack = raw.Expect(Frame::Type::kNack, 5, Scaled(5000));
  ASSERT_TRUE(nack.has_value());
  EXPECT_EQ(nack->nack.reason, schema::NackReason::kNotPermitted);
  EXPECT_EQ(plain.Stop(), 0);
  // A key file the directory does not list for the broker: it refuses to start.
  Broker wrong(fed_, "plain-broker", root_ + "/plain-data");
  wrong.set_extra("[linkage]\nkey_file = \"" + fed_.Dir("eval-a") + "/linkage.key\"\n");
  EXPECT_NE(wrong.StartExpectingExit(Scaled(10000)), -1);
  EXPECT_NE(wrong.Log().find("linkage-evaluator"), std::string::npos) << wrong.Log();
}

}  // namespace
}  // namespace refbus::testing
