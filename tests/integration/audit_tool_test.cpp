// refbus-audit against a real refbus-broker: auditor queries over CURVE (only auditors with
// the audit role; every query logged), fetch + verify of a real log, the auditors' queries,
// prove / check-proof, and tampering with the broker's LMDB file (flip a byte, delete an
// entry, swap two entries, truncate and re-sign) or with the auditor's local store: each is
// caught, by the broker itself at start-up or by fetch/verify, with the place named.
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
#include "broker/store.h"
#include "keys/ceremony.h"
#include "keys/consent.h"
#include "keys/crypto.h"
#include "keys/envelope.h"
#include "keys/secret.h"
#include "schema/codec.h"
#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

using json = nlohmann::json;
using schema::AgencyType;
using schema::AuditEvent;
using schema::DataCategory;
using schema::Frame;
using schema::MessageKind;
using schema::NackReason;
using schema::Purpose;

constexpr char kWitnessOnly[] = "audit-witness";
constexpr char kCase[] = "case-4b1d9e77";
constexpr char kEmergencyCase[] = "case-e0000001";

struct ToolResult {
  int code = -1;
  std::string out;
  std::string err;
  json j;  // stdout parsed, when it is JSON
};

class AuditToolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("refbus-audit-tool-test");
    ASSERT_TRUE(fed_.Create(root_, {kBroker},
                            {{"seoul-wee-01", AgencyType::kWeeCenter, kBroker},
                             {"seoul-counsel", AgencyType::kCounselingCenter, kBroker},
                             {"seoul-police-03", AgencyType::kPoliceUnit, kBroker}}));
    // Two auditors: one with the default roles (audit, witness), one a witness only.
    ASSERT_TRUE(fed_.AddAuditor(kAuditor));
    {
      // One broker, no witness: this auditor accepts an unwitnessed log (verify says so).
      std::ofstream cfg(fed_.Dir(kAuditor) + "/auditor.toml");
      cfg << "[verify]\nmin_cosignatures = 0\n";
    }
    ASSERT_TRUE(fed_.AddAuditor(kWitnessOnly, {schema::Role::kWitness}));
    broker_ = std::make_unique<Broker>(fed_, kBroker, DataDir());
    ASSERT_TRUE(broker_->Start());
  }
  void TearDown() override {
    clients_.clear();
    broker_.reset();
    if (!HasFailure()) RemoveTree(root_);
  }

  static Bytes ReadAll(const std::string& path) {
    std::string s = Slurp(path);
    return Bytes(s.begin(), s.end());
  }
  static void WriteAll(const std::string& path, const Bytes& b) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }

  std::string DataDir() const { return root_ + "/seoul-data"; }
  std::string StoreDir(const std::string& name) const { return root_ + "/audit-" + name; }
  UnixMillis Now() const { return SystemClock::Get().NowMillis(); }

  const keys::Identity& Id(const std::string& party) {
    if (!ids_.count(party)) ids_.emplace(party, fed_.LoadIdentity(party));
    return ids_.at(party);
  }
  Bytes BrokerTransportKey() const {
    return fed_.directory().Find(kBroker)->ActiveKeys()->transport_key;
  }
  RawClient& Client(const std::string& party) {
    auto it = clients_.find(party);
    if (it != clients_.end()) return *it->second;
    auto c = std::make_unique<RawClient>(Id(party), BrokerTransportKey(), broker_->endpoint());
    EXPECT_TRUE(c->Hello(party)) << party << " got no Welcome; broker log:\n" << broker_->Log();
    return *clients_.emplace(party, std::move(c)).first->second;
  }

  // Runs build/bin/refbus-audit with args; stdout and stderr captured apart.
  ToolResult Audit(const std::vector<std::string>& args) {
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
    ToolResult r;
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = Slurp(out_path);
    r.err = Slurp(err_path);
    r.j = json::parse(r.out, nullptr, false);
    return r;
  }
  ToolResult FetchInto(const std::string& store) {
    return Audit({"fetch", "--json", "--dir", fed_.Dir(kAuditor), "--broker", kBroker, "--endpoint",
                  broker_->endpoint(), "--store", store});
  }
  ToolResult Verify(const std::string& store) {
    return Audit({"verify", "--json", "--store", store, "--dir", fed_.Dir(kAuditor)});
  }
  void FetchAndVerifyOk(const std::string& store) {
    ToolResult f = FetchInto(store);
    ASSERT_EQ(f.code, 0) << f.out << f.err;
    ToolResult v = Verify(store);
    ASSERT_EQ(v.code, 0) << v.out << v.err;
    ASSERT_TRUE(v.j.value("ok", false)) << v.out;
  }

  void Opaque(int n) {
    auto& wee = Client("seoul-wee-01");
    for (int i = 0; i < n; ++i) {
      auto r = wee.Submit(SealTo(Id("seoul-wee-01"), fed_.directory(), {"seoul-counsel"}, Now()));
      ASSERT_TRUE(r.has_value());
      ASSERT_EQ(r->type, Frame::Type::kAck) << r->nack.detail;
    }
  }
  // The counseling center takes and acks every delivery waiting for it; returns them.
  std::vector<schema::SealedEnvelope> Receive(size_t n) {
    std::vector<schema::SealedEnvelope> got;
    auto& counsel = Client("seoul-counsel");
    for (size_t i = 0; i < n; ++i) {
      auto d = counsel.Receive(5000);
      if (!d.has_value() || d->type != Frame::Type::kDeliver) break;
      auto env = schema::DecodeEnvelope(d->deliver.envelope);
      EXPECT_TRUE(env.ok());
      if (!env.ok()) break;
      Frame ack;
      ack.type = Frame::Type::kAck;
      ack.request_id = d->request_id;
      ack.ack.message_id = env->header.message_id;
      counsel.SendFrame(ack);
      got.push_back(std::move(*env));
    }
    return got;
  }

  schema::ConsentGrant Grant(const std::string& case_ref, bool emergency) {
    schema::ConsentGrant g;
    g.grant_id = keys::RandomBytes(schema::kGrantIdBytes);
    g.case_ref = case_ref;
    g.recorded_by = "seoul-wee-01";
    g.basis = emergency ? schema::LegalBasis::kEmergencyLifeSafety
                        : schema::LegalBasis::kConsentLegalRepresentative;
    g.legal_article = emergency ? "PIPA 18(2)3" : "PIPA 22-2";
    if (!emergency) g.consenters = {schema::Consenter::kGuardian};
    g.subject_assent = !emergency;
    g.emergency_override = emergency;
    g.purposes = {emergency ? Purpose::kEmergency : Purpose::kCounseling};
    g.categories = {DataCategory::kIdentity, DataCategory::kIncidentSummary};
    g.allowed_agency_types = {AgencyType::kCounselingCenter};
    g.issued_at_ms = Now() - 1000;
    g.expires_at_ms = Now() + kMillisPerDay;
    g.retention_until_ms = Now() + 30 * kMillisPerDay;
    return g;
  }
  std::optional<Frame> Control(const std::string& party, Frame f) {
    f.request_id = next_request_++;
    RawClient& c = Client(party);
    c.SendFrame(f);
    return c.Expect(Frame::Type::kAck, f.request_id, 5000);
  }
  void ExpectAck(const std::optional<Frame>& r) {
    ASSERT_TRUE(r.has_value()) << "no reply; broker log:\n" << broker_->Log();
    ASSERT_EQ(r->type, Frame::Type::kAck) << schema::Name(r->nack.reason) << ": " << r->nack.detail;
  }
  void Register(const schema::ConsentGrant& g, bool countersign) {
    auto s = keys::SignConsentGrant(Id("seoul-wee-01"), g);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    if (countersign) {
      auto supervisor = keys::Identity::Generate("wee-supervisor", schema::PartyKind::kAgency,
                                                 Now(), kMillisPerDay);
      ASSERT_TRUE(supervisor.ok());
      ASSERT_TRUE(keys::Countersign(*s, "op-supervisor-2", *supervisor).ok());
    }
    Frame f;
    f.type = Frame::Type::kGrantRegister;
    f.grant_register.signed_grant = schema::EncodeSignedConsentGrant(*s);
    ExpectAck(Control("seoul-wee-01", f));
  }
  Bytes Referral(const schema::ConsentGrant& g) {
    keys::SealRequest req;
    req.kind = MessageKind::kReferral;
    req.case_ref = g.case_ref;
    req.consent_grant_id = g.grant_id;
    req.purpose = g.purposes.front();
    req.categories = {DataCategory::kIdentity};
    req.now = Now();
    req.lifetime_ms = kMillisPerDay;
    auto p = keys::CurrentPrekey(fed_.directory(), "seoul-counsel", req.now);
    EXPECT_TRUE(p.ok());
    if (p.ok()) req.recipients.push_back(*p);
    auto env = keys::SealEnvelope(Id("seoul-wee-01"), req, AsBytes("referral text"));
    EXPECT_TRUE(env.ok());
    return env.ok() ? *env : Bytes();
  }
  void Open(const schema::SealedEnvelope& env, const std::string& op) {
    const auto& h = env.header;
    schema::AccessRecord a{h.message_id, h.case_ref,         "seoul-counsel", op,
                           Now(),        h.consent_grant_id, h.kind,          h.sender_id};
    auto st = keys::SignStatement(Id("seoul-counsel"), keys::StatementType::kAccessRecord,
                                  schema::EncodeAccessRecord(a));
    Frame f;
    f.type = Frame::Type::kAttest;
    f.attest.signed_access = schema::EncodeSignedStatement(st);
    ExpectAck(Control("seoul-counsel", f));
  }
  void Revoke(const schema::ConsentGrant& g) {
    schema::ConsentRevocation r{g.grant_id, g.case_ref, "seoul-wee-01",
                                schema::RevocationReason::kWithdrawnByGuardian, Now()};
    auto st = keys::SignStatement(Id("seoul-wee-01"), keys::StatementType::kConsentRevocation,
                                  schema::EncodeConsentRevocation(r));
    Frame f;
    f.type = Frame::Type::kGrantRevoke;
    f.grant_revoke.signed_revocation = schema::EncodeSignedStatement(st);
    ExpectAck(Control("seoul-wee-01", f));
  }

  // Case traffic: a consented referral opened, an emergency override referral opened, an
  // opaque message opened (no grant), the grant revoked and the referral opened again.
  struct Traffic {
    schema::ConsentGrant grant, emergency;
    Bytes referral_id, emergency_id, opaque_id;
  };
  Traffic CaseTraffic() {
    Traffic t;
    t.grant = Grant(kCase, false);
    t.emergency = Grant(kEmergencyCase, true);
    Register(t.grant, false);
    Register(t.emergency, true);
    auto& wee = Client("seoul-wee-01");
    ExpectAck(wee.Submit(Referral(t.grant)));
    ExpectAck(wee.Submit(Referral(t.emergency)));
    ExpectAck(wee.Submit(SealTo(Id("seoul-wee-01"), fed_.directory(), {"seoul-counsel"}, Now())));
    auto got = Receive(3);
    EXPECT_EQ(got.size(), 3u);
    for (const auto& env : got) {
      Open(env, "op-counsel-7");
      if (env.header.consent_grant_id == t.grant.grant_id) t.referral_id = env.header.message_id;
      if (env.header.consent_grant_id == t.emergency.grant_id) {
        t.emergency_id = env.header.message_id;
      }
      if (env.header.consent_grant_id.empty()) t.opaque_id = env.header.message_id;
    }
    Revoke(t.grant);
    for (const auto& env : got) {
      if (env.header.consent_grant_id == t.grant.grant_id) Open(env, "op-counsel-9");
    }
    return t;
  }

  // The broker's store, opened by the test while the broker is stopped.
  std::unique_ptr<broker::Store> OpenBrokerStore() {
    broker::StoreOptions o;
    o.dir = DataDir();
    o.broker_id = kBroker;
    auto s = broker::Store::Open(o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
  // Runs edit on a raw write transaction of an LMDB environment (broker or local store).
  static void EditDb(lmdb::Env& env, const std::string& db,
                     const std::function<void(lmdb::Txn&, MDB_dbi)>& edit) {
    auto dbi = env.OpenDb(db);
    ASSERT_TRUE(dbi.ok());
    auto txn = env.BeginWrite();
    ASSERT_TRUE(txn.ok());
    edit(*txn, *dbi);
    ASSERT_TRUE(txn->Commit().ok());
  }
  static Bytes Get(lmdb::Txn& txn, MDB_dbi dbi, uint64_t index) {
    auto v = txn.Get(dbi, lmdb::U64Key(index));
    EXPECT_TRUE(v.ok()) << index;
    return v.ok() ? Bytes(v->begin(), v->end()) : Bytes();
  }
  // Flips a byte inside the envelope hash of an entry: it still decodes, only the Merkle
  // tree can tell.
  static void FlipHashByte(Bytes& entry) {
    auto e = schema::DecodeAuditEntry(entry);
    ASSERT_TRUE(e.ok());
    ASSERT_FALSE(e->envelope_sha256.empty());
    auto at = std::search(entry.begin(), entry.end(), e->envelope_sha256.begin(),
                          e->envelope_sha256.end());
    ASSERT_NE(at, entry.end());
    *(at + 3) ^= 0x01;
  }
  // The index of the first ACCEPTED entry at or after from (broker stopped).
  uint64_t AcceptedAtOrAfter(uint64_t from) {
    auto store = OpenBrokerStore();
    EXPECT_NE(store, nullptr);
    if (store == nullptr) return 0;
    uint64_t n = *store->AuditSize();
    for (uint64_t i = from; i < n; ++i) {
      auto e = schema::DecodeAuditEntry(*store->AuditEntryBytes(i));
      if (e.ok() && e->event == AuditEvent::kEnvelopeAccepted) return i;
    }
    ADD_FAILURE() << "no ACCEPTED entry from " << from;
    return 0;
  }
  // Every entry of a local audit store, decoded.
  std::vector<schema::AuditEntry> LocalEntries(const std::string& store_dir) {
    std::vector<schema::AuditEntry> out;
    auto env = LocalEnv(store_dir);
    if (env == nullptr) return out;
    auto dbi = env->OpenDb("entries");
    auto txn = env->BeginRead();
    auto cur = lmdb::Cursor::Open(*txn, *dbi);
    for (auto item = cur->First(); item.ok() && item->has_value(); item = cur->Next()) {
      auto e = schema::DecodeAuditEntry((*item)->value);
      if (e.ok()) out.push_back(*e);
    }
    return out;
  }
  void StopBroker() {
    clients_.clear();
    ASSERT_EQ(broker_->Stop(), 0) << broker_->Log();
  }
  // The auditor's local store, opened raw (refbus-audit is not running).
  static std::unique_ptr<lmdb::Env> LocalEnv(const std::string& dir) {
    lmdb::EnvOptions eo;
    eo.map_size_bytes = size_t{16} << 30;
    eo.max_dbs = 4;
    auto env = lmdb::Env::Open(dir, eo);
    EXPECT_TRUE(env.ok()) << env.status().ToString();
    return env.ok() ? std::move(*env) : nullptr;
  }
  // The next reply to request_id (other frames are dropped).
  static std::optional<Frame> Answer(RawClient& c, uint64_t request_id) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      auto f = c.Receive(100);
      if (f && f->request_id == request_id) return f;
    }
    return std::nullopt;
  }

  std::string root_;
  Federation fed_;
  std::unique_ptr<Broker> broker_;
  std::map<std::string, keys::Identity> ids_;
  std::map<std::string, std::unique_ptr<RawClient>> clients_;
  uint64_t next_request_ = 5000;
};

TEST_F(AuditToolTest, FetchVerifyQueriesAndProofBundles) {
  Opaque(3);
  Receive(3);
  Traffic t = CaseTraffic();
  const std::string store = StoreDir("a");

  ToolResult f = FetchInto(store);
  ASSERT_EQ(f.code, 0) << f.out << f.err;
  EXPECT_TRUE(f.j["ok"].get<bool>());
  const uint64_t first_size = f.j["entries"].get<uint64_t>();
  EXPECT_GT(first_size, 20u);
  EXPECT_EQ(f.j["checkpoint_size"].get<uint64_t>(), first_size);
  // The fetch's own checkpoint request is in the log it got (and signed for).
  ASSERT_TRUE(f.j["own_query_index"].is_number()) << f.out;
  EXPECT_LT(f.j["own_query_index"].get<uint64_t>(), first_size);
  ToolResult v = Verify(store);
  ASSERT_EQ(v.code, 0) << v.out << v.err;
  EXPECT_EQ(v.j["entries"].get<uint64_t>(), first_size);
  EXPECT_EQ(v.j["verified_size"].get<uint64_t>(), first_size);

  // Incremental: only what is new, and verification over the whole of it.
  Opaque(2);
  ToolResult f2 = FetchInto(store);
  ASSERT_EQ(f2.code, 0) << f2.out << f2.err;
  EXPECT_EQ(f2.j["entries_before"].get<uint64_t>(), first_size);
  EXPECT_GT(f2.j["entries"].get<uint64_t>(), first_size + 2);
  EXPECT_GE(f2.j["checkpoints"].get<size_t>(), 2u);
  ToolResult v2 = Verify(store);
  ASSERT_EQ(v2.code, 0) << v2.out;
  // The readable form says the same.
  ToolResult v2text = Audit({"verify", "--store", store, "--dir", fed_.Dir(kAuditor)});
  EXPECT_EQ(v2text.code, 0);
  EXPECT_NE(v2text.out.find("ok: "), std::string::npos) << v2text.out;

  // Every query the auditor made is in the log, with ids and ranges only.
  auto entries = LocalEntries(store);
  size_t queries = 0;
  for (const auto& e : entries) {
    if (e.event != AuditEvent::kAuditorQuery) continue;
    ++queries;
    EXPECT_EQ(e.actor, kAuditor);
    EXPECT_EQ(e.detail.rfind("audit query: ", 0), 0u) << e.detail;
  }
  EXPECT_GE(queries, 3u);

  // case: the referral's whole life, including the entries that carry only its id.
  ToolResult c = Audit({"case", kCase, "--json", "--store", store});
  ASSERT_EQ(c.code, 0) << c.out << c.err;
  std::set<std::string> events;
  for (const auto& row : c.j["rows"]) {
    events.insert(row["event"].get<std::string>());
    EXPECT_EQ(row["case_ref"].get<std::string>(), kCase);
  }
  for (const char* ev :
       {"consent-granted", "accepted", "delivered", "acked", "opened", "consent-revoked"}) {
    EXPECT_EQ(events.count(ev), 1u) << ev << " missing from:\n" << c.out;
  }
  ToolResult table = Audit({"case", kCase, "--store", store});
  EXPECT_EQ(table.code, 0);
  EXPECT_NE(table.out.find("INDEX"), std::string::npos);
  EXPECT_NE(table.out.find("op-counsel-9"), std::string::npos) << table.out;

  // accesses: what the counseling center received and opened; nothing in a future period.
  ToolResult a = Audit({"accesses", "--agency", "seoul-counsel", "--json", "--store", store});
  ASSERT_EQ(a.code, 0) << a.err;
  size_t opened = 0, delivered = 0;
  for (const auto& row : a.j["rows"]) {
    opened += row["event"] == "opened";
    delivered += row["event"] == "delivered";
    EXPECT_NE(row["event"], "accepted");
  }
  EXPECT_EQ(opened, 4u);
  EXPECT_GE(delivered, 6u);  // and redeliveries, if any
  ToolResult later = Audit({"accesses", "--agency", "seoul-counsel", "--from", "2999-01-01",
                            "--json", "--store", store});
  ASSERT_EQ(later.code, 0);
  EXPECT_TRUE(later.j["rows"].empty());
  EXPECT_EQ(
      Audit({"accesses", "--agency", "seoul-counsel", "--from", "yesterday", "--store", store})
          .code,
      2);

  // unconsented: the access after revocation and the one without a grant, nothing else.
  ToolResult u = Audit({"unconsented", "--json", "--store", store});
  ASSERT_EQ(u.code, 0) << u.err;
  ASSERT_EQ(u.j["rows"].size(), 2u) << u.out;
  std::string notes =
      u.j["rows"][0]["note"].get<std::string>() + "|" + u.j["rows"][1]["note"].get<std::string>();
  EXPECT_NE(notes.find("names no consent grant"), std::string::npos) << notes;
  EXPECT_NE(notes.find("revoked before this access"), std::string::npos) << notes;
  for (const auto& row : u.j["rows"]) {
    EXPECT_NE(row["message_id"].get<std::string>(), HexEncode(t.emergency_id));
  }

  // overrides: the emergency grant and what was shared under it, as CSV.
  ToolResult o = Audit({"overrides", "--csv", "--store", store});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out.rfind("index,time,event,", 0), 0u) << o.out;
  EXPECT_NE(o.out.find("consent-granted"), std::string::npos);
  EXPECT_NE(o.out.find(HexEncode(t.emergency_id)), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find(HexEncode(t.referral_id)), std::string::npos) << o.out;

  // prove / check-proof: offline, and a bundle with one byte changed is refused.
  const std::string bundle = root_ + "/bundle.json";
  ToolResult p = Audit({"prove", HexEncode(t.referral_id), "--store", store, "--out", bundle});
  ASSERT_EQ(p.code, 0) << p.out << p.err;
  ToolResult ok = Audit({"check-proof", bundle, "--json", "--dir", fed_.Dir(kAuditor)});
  ASSERT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_TRUE(ok.j["ok"].get<bool>());
  EXPECT_GE(ok.j["entries"].size(), 5u);  // accepted, delivered, acked, opened twice
  EXPECT_LT(ok.j["verify_us_per_entry"].get<double>(), 1000.0);
  std::string text = Slurp(bundle);
  for (std::string_view field : {"\"entry\": \"", "\"checkpoint\": \"", "\"proof\": [\n"}) {
    std::string bad = text;
    size_t at = bad.find(field);
    ASSERT_NE(at, std::string::npos) << field;
    at += field.size() + 20;
    bad[at] = static_cast<char>(bad[at] ^ 0x01);
    const std::string bad_path = root_ + "/bad-bundle.json";
    std::ofstream(bad_path, std::ios::trunc) << bad;
    ToolResult refused = Audit({"check-proof", bad_path, "--dir", fed_.Dir(kAuditor)});
    EXPECT_EQ(refused.code, 1) << field << refused.out;
    EXPECT_NE(refused.err.find("is refused"), std::string::npos) << refused.err;
  }
  // A message the log never saw: nothing to prove.
  ToolResult none = Audit({"prove", std::string(32, 'a'), "--store", store, "--out", bundle});
  EXPECT_EQ(none.code, 1) << none.out << none.err;

  ASSERT_EQ(broker_->Stop(), 0) << broker_->Log();
}

TEST_F(AuditToolTest, OnlyAuditorsWithTheAuditRoleMayQueryAndEveryQueryIsLogged) {
  Frame q;
  q.type = Frame::Type::kAuditEntries;
  q.request_id = 77;
  q.audit_entries = {0, 10};
  // An agency.
  auto& wee = Client("seoul-wee-01");
  wee.SendFrame(q);
  auto r = Answer(wee, 77);
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->type, Frame::Type::kNack);
  EXPECT_EQ(r->nack.reason, NackReason::kNotPermitted);
  EXPECT_NE(r->nack.detail.find("audit role"), std::string::npos) << r->nack.detail;
  // An auditor without the audit role (a witness only).
  auto& witness = Client(kWitnessOnly);
  q.request_id = 78;
  witness.SendFrame(q);
  r = Answer(witness, 78);
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->type, Frame::Type::kNack);
  EXPECT_EQ(r->nack.reason, NackReason::kNotPermitted);
  EXPECT_NE(r->nack.detail.find("lacks the audit role"), std::string::npos) << r->nack.detail;

  // The auditor: entries, out of range, a proof that verifies against a checkpoint.
  auto& auditor = Client(kAuditor);
  Frame cq;
  cq.type = Frame::Type::kAuditCheckpoint;
  cq.request_id = 79;
  auditor.SendFrame(cq);
  auto cp_reply = Answer(auditor, 79);
  ASSERT_TRUE(cp_reply.has_value());
  ASSERT_EQ(cp_reply->type, Frame::Type::kAuditReply) << cp_reply->nack.detail;
  ASSERT_EQ(cp_reply->audit_reply.checkpoints.size(), 1u);
  auto verifier =
      keys::NoteVerifier::Create("refbus/refbus-test/seoul-broker", keys::NoteKeyType::kEd25519,
                                 fed_.directory().Find(kBroker)->ActiveKeys()->signing_key);
  ASSERT_TRUE(verifier.ok());
  auto cp = keys::OpenCheckpoint(cp_reply->audit_reply.checkpoints[0],
                                 "refbus/refbus-test/seoul-broker", *verifier);
  ASSERT_TRUE(cp.ok()) << cp.status().ToString();
  const uint64_t size = cp->checkpoint.size;
  EXPECT_EQ(cp_reply->audit_reply.log_size, size);

  q.request_id = 80;
  q.audit_entries = {0, 4096};
  auditor.SendFrame(q);
  auto entries = Answer(auditor, 80);
  ASSERT_TRUE(entries.has_value());
  ASSERT_EQ(entries->type, Frame::Type::kAuditReply) << entries->nack.detail;
  const auto& got = entries->audit_reply.entries;
  ASSERT_GE(got.size(), size);  // the log grew by this query's own entry since
  EXPECT_EQ(entries->audit_reply.log_size, got.size());
  EXPECT_FALSE(entries->audit_reply.more);
  keys::MemoryTree tree;
  for (const Bytes& e : got) tree.AppendEntry(e);
  EXPECT_EQ(*keys::RootAt(tree, size), cp->checkpoint.root);
  // The checkpoint covers the request it answered: its AUDITOR_QUERY entry is in it.
  bool covered = false;
  for (uint64_t i = 0; i < size; ++i) {
    auto e = schema::DecodeAuditEntry(got[i]);
    ASSERT_TRUE(e.ok());
    covered = covered || (e->event == AuditEvent::kAuditorQuery && e->actor == kAuditor &&
                          e->detail == "audit query: sign and return a checkpoint");
  }
  EXPECT_TRUE(covered);
  // The refusals are logged too, with their reason.
  size_t refused = 0;
  for (const Bytes& b : got) {
    auto e = schema::DecodeAuditEntry(b);
    ASSERT_TRUE(e.ok());
    if (e->event == AuditEvent::kAuditorQuery && e->reason == NackReason::kNotPermitted) {
      ++refused;
      EXPECT_TRUE(e->actor == "seoul-wee-01" || e->actor == kWitnessOnly) << e->actor;
      EXPECT_NE(e->detail.find("entries from index 0, at most 10"), std::string::npos) << e->detail;
    }
  }
  EXPECT_EQ(refused, 2u);

  Frame proof;
  proof.type = Frame::Type::kAuditProof;
  proof.request_id = 81;
  proof.audit_proof = {1, size};
  auditor.SendFrame(proof);
  auto pr = Answer(auditor, 81);
  ASSERT_TRUE(pr.has_value());
  ASSERT_EQ(pr->type, Frame::Type::kAuditReply) << pr->nack.detail;
  std::vector<keys::Hash> hashes;
  for (const Bytes& h : pr->audit_reply.hashes) {
    keys::Hash x;
    std::copy(h.begin(), h.end(), x.begin());
    hashes.push_back(x);
  }
  EXPECT_TRUE(
      keys::VerifyInclusion(keys::LeafHash(got[1]), 1, size, hashes, cp->checkpoint.root).ok());

  Frame far = q;
  far.request_id = 82;
  far.audit_entries = {1000000, 10};
  auditor.SendFrame(far);
  auto oor = Answer(auditor, 82);
  ASSERT_TRUE(oor.has_value());
  ASSERT_EQ(oor->type, Frame::Type::kNack);
  EXPECT_EQ(oor->nack.reason, NackReason::kOutOfRange);

  // A malformed query (max 0) is refused by the codec: a Nack MALFORMED, never an answer.
  Frame zero = q;
  zero.request_id = 83;
  zero.audit_entries.max = 0;
  auditor.SendFrame(zero);
  auto mal = Answer(auditor, 0);
  ASSERT_TRUE(mal.has_value());
  EXPECT_EQ(mal->type, Frame::Type::kNack);
  EXPECT_EQ(mal->nack.reason, NackReason::kMalformed);

  clients_.clear();
  ASSERT_EQ(broker_->Stop(), 0);
  EXPECT_NE(broker_->Log().find("not-permitted"), std::string::npos);
}

// Broker LMDB: one byte flipped in a middle entry. The broker starts (its start-up check
// reads only the last entry) and serves the bytes as stored, alerting its operator; a
// fresh fetch names the entry (bisection with the broker's consistency proofs) and verify
// names the first checkpoint that no longer matches. An auditor who fetched before keeps
// the authentic copy and still verifies.
TEST_F(AuditToolTest, FlippedByteInAStoredEntryIsNamed) {
  Opaque(6);
  FetchAndVerifyOk(StoreDir("before"));
  StopBroker();
  const uint64_t k = AcceptedAtOrAfter(3);
  {
    auto store = OpenBrokerStore();
    ASSERT_NE(store, nullptr);
    EditDb(store->env(), "audit", [&](lmdb::Txn& txn, MDB_dbi dbi) {
      Bytes v = Get(txn, dbi, k);
      FlipHashByte(v);
      ASSERT_TRUE(txn.Put(dbi, lmdb::U64Key(k), v).ok());
    });
  }
  ASSERT_TRUE(broker_->Start());
  ToolResult f = FetchInto(StoreDir("after"));
  EXPECT_EQ(f.code, 1) << f.out << f.err;
  ASSERT_TRUE(f.j["first_differing_entry"].is_number()) << f.out;
  EXPECT_EQ(f.j["first_differing_entry"].get<uint64_t>(), k);
  ToolResult v = Verify(StoreDir("after"));
  EXPECT_EQ(v.code, 1) << v.out;
  ASSERT_FALSE(v.j["problems"].empty());
  const json& first = v.j["problems"][0];
  EXPECT_EQ(first["where"], "checkpoint") << v.out;
  EXPECT_GT(first["size"].get<uint64_t>(), k);
  EXPECT_NE(first["message"].get<std::string>().find("differ from what the broker signed"),
            std::string::npos);
  EXPECT_NE(v.j["headline"].get<std::string>().find("FAILED: checkpoint #"), std::string::npos);
  // The auditor that fetched before the damage holds the authentic entry.
  ToolResult again = FetchInto(StoreDir("before"));
  EXPECT_EQ(again.code, 0) << again.out;
  EXPECT_EQ(Verify(StoreDir("before")).code, 0);
  ASSERT_EQ(broker_->Stop(), 0);
  EXPECT_NE(broker_->Log().find("AUDIT LOG DAMAGED: entries " + std::to_string(k)),
            std::string::npos)
      << broker_->Log();
}

// Broker LMDB: the last entry flipped: the broker refuses to start. Then the auditor's own
// copy is tampered with: verify names it.
TEST_F(AuditToolTest, FlippedLastEntryStopsTheBrokerAndLocalDamageIsNamed) {
  Opaque(4);
  const std::string store = StoreDir("a");
  FetchAndVerifyOk(store);
  StopBroker();
  uint64_t last = 0;
  {
    auto bs = OpenBrokerStore();
    ASSERT_NE(bs, nullptr);
    last = *bs->AuditSize() - 1;
    EditDb(bs->env(), "audit", [&](lmdb::Txn& txn, MDB_dbi dbi) {
      Bytes v = Get(txn, dbi, last);
      v[v.size() - 1] ^= 0x01;
      ASSERT_TRUE(txn.Put(dbi, lmdb::U64Key(last), v).ok());
    });
  }
  Process p;
  std::string log = root_ + "/refused.log";
  ASSERT_TRUE(p.Start({BinDir() + "/refbus-broker", "-c", DataDir() + ".toml"}, log));
  EXPECT_EQ(p.Wait(10000), 1);
  EXPECT_NE(Slurp(log).find("audit entry " + std::to_string(last) + " is damaged"),
            std::string::npos)
      << Slurp(log);

  // The local store: a byte flipped inside an entry's hash (it still decodes) ...
  uint64_t k = 0;
  for (const auto& e : LocalEntries(store)) {
    if (e.event == AuditEvent::kEnvelopeAccepted) {
      k = e.index;
      break;
    }
  }
  ASSERT_GT(k, 0u);
  {
    auto local = LocalEnv(store);
    ASSERT_NE(local, nullptr);
    EditDb(*local, "entries", [&](lmdb::Txn& txn, MDB_dbi dbi) {
      Bytes v = Get(txn, dbi, k);
      FlipHashByte(v);
      ASSERT_TRUE(txn.Put(dbi, lmdb::U64Key(k), v).ok());
    });
  }
  ToolResult v = Verify(store);
  EXPECT_EQ(v.code, 1) << v.out;
  ASSERT_FALSE(v.j["problems"].empty()) << v.out;
  EXPECT_EQ(v.j["problems"][0]["where"], "checkpoint") << v.out;
  EXPECT_GT(v.j["problems"][0]["size"].get<uint64_t>(), k);
  EXPECT_NE(v.out.find("differ from what the broker signed"), std::string::npos) << v.out;
  // ... and one that no longer decodes: named as the entry.
  {
    auto local = LocalEnv(store);
    EditDb(*local, "entries", [&](lmdb::Txn& txn, MDB_dbi dbi) {
      Bytes v2 = Get(txn, dbi, k);
      v2[0] = 0xff;
      ASSERT_TRUE(txn.Put(dbi, lmdb::U64Key(k), v2).ok());
    });
  }
  ToolResult v2 = Verify(store);
  EXPECT_EQ(v2.code, 1);
  EXPECT_EQ(v2.j["first_bad_entry"], json(k)) << v2.out;
  EXPECT_NE(v2.j["headline"].get<std::string>().find("first bad entry " + std::to_string(k)),
            std::string::npos)
      << v2.out;
  // A local checkpoint note with a changed byte no longer verifies: named as the checkpoint.
  {
    auto local = LocalEnv(store);
    EditDb(*local, "checkpoints", [&](lmdb::Txn& txn, MDB_dbi dbi) {
      Bytes c = Get(txn, dbi, 0);
      c[c.size() - 10] ^= 0x01;  // inside the signature line
      ASSERT_TRUE(txn.Put(dbi, lmdb::U64Key(0), c).ok());
    });
  }
  ToolResult v3 = Verify(store);
  EXPECT_EQ(v3.code, 1);
  EXPECT_NE(v3.out.find("checkpoint #0"), std::string::npos) << v3.out;
  EXPECT_NE(v3.out.find("does not verify with broker seoul-broker"), std::string::npos) << v3.out;
}

// Broker LMDB: an entry deleted: the broker refuses to start (the entry count no longer
// fits its Merkle frontier). The same deletion in the auditor's store: verify names it.
TEST_F(AuditToolTest, DeletedEntryIsCaughtByTheBrokerAndByVerify) {
  Opaque(4);
  const std::string store = StoreDir("a");
  FetchAndVerifyOk(store);
  StopBroker();
  const uint64_t k = 4;
  {
    auto bs = OpenBrokerStore();
    ASSERT_NE(bs, nullptr);
    EditDb(bs->env(), "audit",
           [&](lmdb::Txn& txn, MDB_dbi dbi) { ASSERT_TRUE(txn.Del(dbi, lmdb::U64Key(k)).ok()); });
  }
  Process p;
  std::string log = root_ + "/refused.log";
  ASSERT_TRUE(p.Start({BinDir() + "/refbus-broker", "-c", DataDir() + ".toml"}, log));
  EXPECT_EQ(p.Wait(10000), 1);
  EXPECT_NE(Slurp(log).find("entries but its database holds"), std::string::npos) << Slurp(log);

  {
    auto local = LocalEnv(store);
    ASSERT_NE(local, nullptr);
    EditDb(*local, "entries",
           [&](lmdb::Txn& txn, MDB_dbi dbi) { ASSERT_TRUE(txn.Del(dbi, lmdb::U64Key(k)).ok()); });
  }
  ToolResult v = Verify(store);
  EXPECT_EQ(v.code, 1);
  EXPECT_EQ(v.j["first_bad_entry"], json(k)) << v.out;
  EXPECT_NE(v.j["headline"].get<std::string>().find("entry " + std::to_string(k) + " is missing"),
            std::string::npos)
      << v.out;
}

// Broker LMDB: two middle entries' values swapped. The broker starts; a fresh fetch and
// verify both name the first of the two.
TEST_F(AuditToolTest, SwappedEntriesAreNamed) {
  Opaque(6);
  FetchAndVerifyOk(StoreDir("before"));
  StopBroker();
  const uint64_t a = 3, b = 7;
  {
    auto bs = OpenBrokerStore();
    ASSERT_NE(bs, nullptr);
    ASSERT_GT(*bs->AuditSize(), b + 1);
    EditDb(bs->env(), "audit", [&](lmdb::Txn& txn, MDB_dbi dbi) {
      Bytes va = Get(txn, dbi, a), vb = Get(txn, dbi, b);
      ASSERT_TRUE(txn.Put(dbi, lmdb::U64Key(a), vb).ok());
      ASSERT_TRUE(txn.Put(dbi, lmdb::U64Key(b), va).ok());
    });
  }
  ASSERT_TRUE(broker_->Start());
  ToolResult f = FetchInto(StoreDir("after"));
  EXPECT_EQ(f.code, 1) << f.out;
  EXPECT_EQ(f.j["first_differing_entry"], json(a)) << f.out;
  ToolResult v = Verify(StoreDir("after"));
  EXPECT_EQ(v.code, 1);
  EXPECT_EQ(v.j["first_bad_entry"], json(a)) << v.out;
  EXPECT_NE(v.j["headline"].get<std::string>().find("index field says " + std::to_string(b)),
            std::string::npos)
      << v.out;
  ASSERT_EQ(broker_->Stop(), 0);
}

// Broker LMDB: the last entries deleted, the tree, frontier and size made to fit and the
// checkpoints above the cut dropped, so that the broker starts and signs new checkpoints of
// a rewritten log. An auditor who kept an earlier checkpoint catches it at fetch (the
// broker cannot prove consistency with it) and at verify; one who never saw the old log
// cannot (that is what witnesses are for).
TEST_F(AuditToolTest, TruncatedAndResignedLogIsCaughtByTheCheckpointsKept) {
  Opaque(8);
  const std::string store = StoreDir("a");
  FetchAndVerifyOk(store);
  const uint64_t fetched = LocalEntries(store).size();
  StopBroker();
  uint64_t n = 0;
  // Cut below what the auditor fetched: the rewrite changes entries it holds.
  const uint64_t keep = fetched - 3;
  {
    auto bs = OpenBrokerStore();
    ASSERT_NE(bs, nullptr);
    n = *bs->AuditSize();
    ASSERT_GT(n, fetched);
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
        if (lmdb::ReadU64Key((*item)->key) > keep)
          above.emplace_back((*item)->key.begin(), (*item)->key.end());
      }
    }
    ASSERT_FALSE(above.empty());
    for (const Bytes& key : above) ASSERT_TRUE(txn->Del(dbs.checkpoints, key).ok());
    auto rebuilt = broker::RebuildAuditTree(*txn, dbs);
    ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
    ASSERT_TRUE(txn->Commit().ok());
  }
  // The rewritten broker starts (its log is consistent with what is left) and grows past
  // the old size.
  ASSERT_TRUE(broker_->Start()) << broker_->Log();
  Opaque(8);
  ToolResult f = FetchInto(store);
  EXPECT_EQ(f.code, 1) << f.out << f.err;
  std::string problems = f.j["problems"].dump();
  EXPECT_NE(problems.find("is inconsistent with checkpoint #"), std::string::npos) << f.out;
  EXPECT_NE(problems.find("history was rewritten"), std::string::npos) << f.out;
  ASSERT_TRUE(f.j["first_differing_entry"].is_number()) << f.out;
  EXPECT_EQ(f.j["first_differing_entry"].get<uint64_t>(), keep);

  ToolResult v = Verify(store);
  EXPECT_EQ(v.code, 1) << v.out;
  EXPECT_EQ(v.j["problems"][0]["where"], "checkpoint") << v.out;
  EXPECT_NE(v.out.find("the broker rewrote its history"), std::string::npos) << v.out;
  EXPECT_GE(v.j["problems"].size(), 2u);

  // A newcomer sees only the rewritten log, which is consistent in itself.
  FetchAndVerifyOk(StoreDir("newcomer"));
  ASSERT_EQ(broker_->Stop(), 0);
}

}  // namespace
}  // namespace refbus::testing
