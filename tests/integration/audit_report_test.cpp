// refbus-audit report against a real refbus-broker, rendered by a real browser: traffic under
// consent grants (one with markup in its legal article, which the broker writes into the
// log), fetched with refbus-audit fetch, reported with refbus-audit report, and the page
// loaded by Debian's chromium in headless mode (--dump-dom: the DOM after load). What the
// browser shows is checked: the PASS verdict, the case pseudonym, the sender and recipient
// ids, the operator ref, the emergency override, the counts by event (against the stored
// entries), the markup as text and no script. Then the auditor's local store is tampered
// with and the page shows FAIL naming the entry (or, for a byte that still decodes, the
// checkpoint). A missing chromium fails the test with the reason; nothing is skipped.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include "core/lmdb.h"
#include "keys/consent.h"
#include "keys/crypto.h"
#include "keys/envelope.h"
#include "keys/secret.h"
#include "schema/codec.h"
#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

using schema::AgencyType;
using schema::AuditEvent;
using schema::DataCategory;
using schema::Frame;
using schema::MessageKind;
using schema::Purpose;

constexpr char kReportCase[] = "case-4b1d9e77";
constexpr char kReportEmergencyCase[] = "case-e0000001";
// Written by the sender into its grant, and by the broker into the log's CONSENT_GRANTED
// detail: the page must show it as text.
constexpr char kHostileArticle[] = "PIPA 22-2 <script>document.title='owned'</script><b>x</b>";

struct RunResult {
  int code = -1;
  std::string out, err;
};

// Runs argv with stdout and stderr in files, in a process group of its own (chromium
// starts helpers), killed as a group after timeout_ms.
RunResult RunCaptured(const std::vector<std::string>& argv, const std::string& dir,
                      int timeout_ms) {
  const std::string out_path = dir + "/run.out", err_path = dir + "/run.err";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> a;
    a.reserve(argv.size() + 1);
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execv(a[0], a.data());
    std::_Exit(127);
  }
  RunResult r;
  if (pid < 0) return r;
  ::setpgid(pid, pid);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  while (true) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      r.code = -1;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(-pid, SIGKILL);  // helpers left behind by the group, if any
  r.out = Slurp(out_path);
  r.err = Slurp(err_path);
  return r;
}

// The chromium executable on PATH, or "".
std::string FindChromium() {
  const char* path = std::getenv("PATH");  // NOLINT(concurrency-mt-unsafe): one thread
  std::stringstream ss(path != nullptr ? path : "/usr/bin:/bin");
  std::string d;
  while (std::getline(ss, d, ':')) {
    for (const char* name : {"chromium", "chromium-browser"}) {
      std::string p = d + "/" + name;
      if (::access(p.c_str(), X_OK) == 0) return p;
    }
  }
  return "";
}

// What a reader sees of an HTML fragment: tags as spaces, the character references a
// serialized DOM uses decoded, white space collapsed.
std::string VisibleText(std::string_view html) {
  std::string text;
  bool in_tag = false;
  for (char c : html) {
    if (c == '<') in_tag = true;
    if (!in_tag) text += c;
    if (c == '>') {
      in_tag = false;
      text += ' ';
    }
  }
  auto replace_all = [&](std::string_view from, std::string_view to) {
    std::string out;
    size_t pos = 0;
    while (true) {
      size_t at = text.find(from, pos);
      if (at == std::string::npos) break;
      out.append(text, pos, at - pos);
      out += to;
      pos = at + from.size();
    }
    out.append(text, pos);
    text = std::move(out);
  };
  replace_all("&nbsp;", " ");
  replace_all("&lt;", "<");
  replace_all("&gt;", ">");
  replace_all("&quot;", "\"");
  replace_all("&#39;", "'");
  replace_all("&amp;", "&");
  std::string out;
  for (char c : text) {
    bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (space && (out.empty() || out.back() == ' ')) continue;
    out += space ? ' ' : c;
  }
  return out;
}

// The element that opens with the first tag holding marker, up to the first `end` after it.
std::string Fragment(const std::string& dom, std::string_view marker, std::string_view end) {
  size_t at = dom.find(marker);
  if (at == std::string::npos) return "";
  size_t open = dom.rfind('<', at);
  size_t close = dom.find(end, at);
  if (close == std::string::npos) return dom.substr(open);
  return dom.substr(open, close + end.size() - open);
}

class AuditReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    chromium_ = FindChromium();
    ASSERT_FALSE(chromium_.empty())
        << "chromium is missing: the report test renders the page with Debian's chromium "
           "in headless mode; install it (deploy/install-deps.sh, package chromium)";
    root_ = MakeTempDir("refbus-audit-report-test");
    ASSERT_TRUE(fed_.Create(root_, {kBroker},
                            {{"seoul-wee-01", AgencyType::kWeeCenter, kBroker},
                             {"seoul-counsel", AgencyType::kCounselingCenter, kBroker}}));
    ASSERT_TRUE(fed_.AddAuditor(kAuditor));
    {
      // One broker, no witness: this auditor accepts an unwitnessed log (verify says so).
      std::ofstream cfg(fed_.Dir(kAuditor) + "/auditor.toml");
      cfg << "[verify]\nmin_cosignatures = 0\n";
    }
    broker_ = std::make_unique<Broker>(fed_, kBroker, root_ + "/seoul-data");
    ASSERT_TRUE(broker_->Start());
  }
  void TearDown() override {
    clients_.clear();
    if (broker_) broker_.reset();
    if (!HasFailure()) RemoveTree(root_);
  }

  UnixMillis Now() const { return SystemClock::Get().NowMillis(); }
  const keys::Identity& Id(const std::string& party) {
    if (!ids_.count(party)) ids_.emplace(party, fed_.LoadIdentity(party));
    return ids_.at(party);
  }
  RawClient& Client(const std::string& party) {
    auto it = clients_.find(party);
    if (it != clients_.end()) return *it->second;
    auto c = std::make_unique<RawClient>(
        Id(party), fed_.directory().Find(kBroker)->ActiveKeys()->transport_key,
        broker_->endpoint());
    EXPECT_TRUE(c->Hello(party)) << party << " got no Welcome; broker log:\n" << broker_->Log();
    return *clients_.emplace(party, std::move(c)).first->second;
  }
  void ExpectAck(const std::optional<Frame>& r) {
    ASSERT_TRUE(r.has_value()) << "no reply; broker log:\n" << broker_->Log();
    ASSERT_EQ(r->type, Frame::Type::kAck) << schema::Name(r->nack.reason) << ": " << r->nack.detail;
  }
  std::optional<Frame> Control(const std::string& party, Frame f) {
    f.request_id = next_request_++;
    RawClient& c = Client(party);
    c.SendFrame(f);
    return c.Expect(Frame::Type::kAck, f.request_id, 5000);
  }

  schema::ConsentGrant Grant(const std::string& case_ref, bool emergency) {
    schema::ConsentGrant g;
    g.grant_id = keys::RandomBytes(schema::kGrantIdBytes);
    g.case_ref = case_ref;
    g.recorded_by = "seoul-wee-01";
    g.basis = emergency ? schema::LegalBasis::kEmergencyLifeSafety
                        : schema::LegalBasis::kConsentLegalRepresentative;
    g.legal_article = emergency ? "PIPA 18(2)3" : kHostileArticle;
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
  // The counseling center takes, acks and opens (operator op-counsel-7) n deliveries.
  void ReceiveAndOpen(size_t n) {
    auto& counsel = Client("seoul-counsel");
    for (size_t i = 0; i < n; ++i) {
      auto d = counsel.Receive(5000);
      ASSERT_TRUE(d.has_value() && d->type == Frame::Type::kDeliver) << "delivery " << i;
      auto env = schema::DecodeEnvelope(d->deliver.envelope);
      ASSERT_TRUE(env.ok());
      Frame ack;
      ack.type = Frame::Type::kAck;
      ack.request_id = d->request_id;
      ack.ack.message_id = env->header.message_id;
      counsel.SendFrame(ack);
      const auto& h = env->header;
      schema::AccessRecord a{h.message_id, h.case_ref,         "seoul-counsel", "op-counsel-7",
                             Now(),        h.consent_grant_id, h.kind,          h.sender_id};
      auto st = keys::SignStatement(Id("seoul-counsel"), keys::StatementType::kAccessRecord,
                                    schema::EncodeAccessRecord(a));
      Frame f;
      f.type = Frame::Type::kAttest;
      f.attest.signed_access = schema::EncodeSignedStatement(st);
      ExpectAck(Control("seoul-counsel", f));
    }
  }

  RunResult Audit(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {BinDir() + "/refbus-audit"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCaptured(argv, root_, 20000);
  }
  RunResult Report(const std::string& store, const std::string& out) {
    return Audit(
        {"report", "--store", store, "--dir", fed_.Dir(kAuditor), "--out", out, "--lang", "en"});
  }
  // The DOM after chromium loaded the page (fails the test if it cannot).
  std::string Render(const std::string& page) {
    RunResult r = RunCaptured({chromium_, "--headless", "--no-sandbox", "--disable-gpu",
                               "--user-data-dir=" + root_ + "/chromium-profile", "--no-first-run",
                               "--dump-dom", "file://" + page},
                              root_, 20000);
    EXPECT_EQ(r.code, 0) << "chromium failed on " << page << ":\n" << r.err;
    EXPECT_NE(r.out.find("</html>"), std::string::npos) << "no DOM from chromium:\n" << r.err;
    return r.out;
  }

  // The auditor's local store, opened raw (refbus-audit is not running).
  static std::unique_ptr<lmdb::Env> LocalEnv(const std::string& store) {
    lmdb::EnvOptions eo;
    eo.map_size_bytes = size_t{16} << 30;
    eo.max_dbs = 4;
    auto env = lmdb::Env::Open(store, eo);
    EXPECT_TRUE(env.ok()) << env.status().ToString();
    return env.ok() ? std::move(*env) : nullptr;
  }
  static std::vector<schema::AuditEntry> LocalEntries(const std::string& store) {
    std::vector<schema::AuditEntry> out;
    auto env = LocalEnv(store);
    if (env == nullptr) return out;
    auto dbi = env->OpenDb("entries");
    auto txn = env->BeginRead();
    if (!dbi.ok() || !txn.ok()) return out;
    auto cur = lmdb::Cursor::Open(*txn, *dbi);
    for (auto item = cur->First(); item.ok() && item->has_value(); item = cur->Next()) {
      auto e = schema::DecodeAuditEntry((*item)->value);
      EXPECT_TRUE(e.ok());
      if (e.ok()) out.push_back(*e);
    }
    return out;
  }
  static void EditLocalEntry(const std::string& store, uint64_t index,
                             const std::function<void(Bytes&)>& edit) {
    auto env = LocalEnv(store);
    ASSERT_NE(env, nullptr);
    auto dbi = env->OpenDb("entries");
    ASSERT_TRUE(dbi.ok());
    auto txn = env->BeginWrite();
    ASSERT_TRUE(txn.ok());
    auto v = txn->Get(*dbi, lmdb::U64Key(index));
    ASSERT_TRUE(v.ok());
    Bytes b(v->begin(), v->end());
    edit(b);
    ASSERT_TRUE(txn->Put(*dbi, lmdb::U64Key(index), b).ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  // Flips the last bit of the first occurrence of part in entry.
  static void FlipIn(Bytes& entry, ByteView part) {
    auto at = std::search(entry.begin(), entry.end(), part.begin(), part.end());
    ASSERT_NE(at, entry.end());
    *(at + static_cast<std::ptrdiff_t>(part.size()) - 1) ^= 0x01;
  }

  std::string chromium_;
  std::string root_;
  Federation fed_;
  std::unique_ptr<Broker> broker_;
  std::map<std::string, keys::Identity> ids_;
  std::map<std::string, std::unique_ptr<RawClient>> clients_;
  uint64_t next_request_ = 5000;
};

// The index of the first entry of event in entries.
uint64_t FirstOf(const std::vector<schema::AuditEntry>& entries, AuditEvent event) {
  for (const auto& e : entries) {
    if (e.event == event) return e.index;
  }
  ADD_FAILURE() << "no " << schema::Name(event) << " entry";
  return 0;
}

TEST_F(AuditReportTest, ChromiumShowsTheReportAndTheTampering) {
  const auto t0 = std::chrono::steady_clock::now();
  schema::ConsentGrant grant = Grant(kReportCase, false);
  schema::ConsentGrant emergency = Grant(kReportEmergencyCase, true);
  Register(grant, false);
  Register(emergency, true);
  auto& wee = Client("seoul-wee-01");
  ExpectAck(wee.Submit(Referral(grant)));
  ExpectAck(wee.Submit(Referral(grant)));
  ExpectAck(wee.Submit(Referral(emergency)));
  ReceiveAndOpen(3);
  clients_.clear();

  const std::string store = root_ + "/audit-store";
  RunResult f = Audit({"fetch", "--json", "--dir", fed_.Dir(kAuditor), "--broker", kBroker,
                       "--endpoint", broker_->endpoint(), "--store", store});
  ASSERT_EQ(f.code, 0) << f.out << f.err;
  ASSERT_EQ(broker_->Stop(), 0) << broker_->Log();  // the report needs no broker
  broker_.reset();

  // The report: PASS, written 0600.
  const std::string page = root_ + "/report.html";
  RunResult r = Report(store, page);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("PASS"), std::string::npos) << r.out;
  struct stat st {};
  ASSERT_EQ(::stat(page.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // What chromium shows.
  const std::string dom = Render(page);
  const std::string text = VisibleText(dom);
  const std::string verdict = VisibleText(Fragment(dom, "id=\"verdict\"", "</div>"));
  EXPECT_EQ(verdict.substr(0, 5), "PASS ") << verdict;
  EXPECT_NE(dom.find("class=\"verdict pass\""), std::string::npos);
  EXPECT_EQ(text.find("FAIL"), std::string::npos);
  const std::string cases = VisibleText(Fragment(dom, "id=\"timelines\"", "</section>"));
  for (const char* want : {kReportCase, kReportEmergencyCase, "seoul-wee-01", "seoul-counsel",
                           "seoul-counsel (operator op-counsel-7)", "EMERGENCY OVERRIDE"}) {
    EXPECT_NE(cases.find(want), std::string::npos) << want << " not shown in:\n" << cases;
  }
  EXPECT_NE(cases.find(HexEncode(grant.grant_id)), std::string::npos);
  // The markup the sender put into its grant is shown as text, and nothing ran.
  EXPECT_NE(text.find(kHostileArticle), std::string::npos) << text;
  EXPECT_EQ(dom.find("<script"), std::string::npos);
  EXPECT_EQ(dom.find("<b>x</b>"), std::string::npos);
  EXPECT_EQ(dom.find("owned</title>"), std::string::npos);
  EXPECT_NE(dom.find("<title>PASS - audit report of refbus/refbus-test/seoul-broker</title>"),
            std::string::npos);

  // The Korean page, the default: the same verdict in Korean, times in KST beside UTC,
  // every opening with its operator (these came through a raw client: unsigned).
  const std::string page_ko = root_ + "/report-ko.html";
  RunResult ko = Audit({"report", "--store", store, "--dir", fed_.Dir(kAuditor), "--out", page_ko});
  ASSERT_EQ(ko.code, 0) << ko.out << ko.err;
  const std::string dom_ko = Render(page_ko);
  EXPECT_NE(dom_ko.find("<html lang=\"ko\">"), std::string::npos) << dom_ko.substr(0, 300);
  const std::string verdict_ko = VisibleText(Fragment(dom_ko, "id=\"verdict\"", "</div>"));
  EXPECT_EQ(verdict_ko.rfind("통과", 0), 0u) << verdict_ko;
  const std::string text_ko = VisibleText(dom_ko);
  for (const char* want :
       {"감사 보고서", "사건별 경과", "누가 무엇을 열람했는가", " KST (",
        "seoul-counsel (담당자 op-counsel-7) 서명 없음(UNSIGNED)", "긴급 예외"}) {
    EXPECT_NE(text_ko.find(want), std::string::npos) << want << " not shown in:\n" << text_ko;
  }
  EXPECT_EQ(text_ko.find("Timelines by case"), std::string::npos) << "English left in the page";

  // The counts by event, as the browser shows them, are the stored entries'.
  const std::vector<schema::AuditEntry> entries = LocalEntries(store);
  std::map<std::string, uint64_t> counts;
  for (const auto& e : entries) ++counts[std::string(schema::Name(e.event))];
  ASSERT_GE(counts["accepted"], 3u);
  ASSERT_GE(counts["opened"], 3u);
  const std::string count_text = VisibleText(Fragment(dom, "id=\"event-counts\"", "</table>"));
  for (const auto& [event, n] : counts) {
    EXPECT_NE(count_text.find(" " + event + " " + std::to_string(n) + " "), std::string::npos)
        << event << " " << n << " not in: " << count_text;
  }
  EXPECT_NE(count_text.find("total " + std::to_string(entries.size())), std::string::npos)
      << count_text;

  // Tampered with: one byte of the first ACCEPTED entry's broker id, "seoul-broker" ->
  // "seoul-brokes" (it still decodes). The page says FAIL and names the entry.
  const uint64_t k = FirstOf(entries, AuditEvent::kEnvelopeAccepted);
  EditLocalEntry(store, k, [](Bytes& v) { FlipIn(v, AsBytes(std::string_view(kBroker))); });
  const std::string tampered = root_ + "/tampered.html";
  r = Report(store, tampered);
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  std::string bad = Render(tampered);
  std::string bad_verdict = VisibleText(Fragment(bad, "id=\"verdict\"", "</div>"));
  EXPECT_EQ(bad_verdict.substr(0, 5), "FAIL ") << bad_verdict;
  EXPECT_NE(bad.find("class=\"verdict fail\""), std::string::npos);
  EXPECT_NE(bad_verdict.find("First bad entry: " + std::to_string(k)), std::string::npos)
      << bad_verdict;
  const std::string problems = VisibleText(Fragment(bad, "id=\"problems\"", "</table>"));
  EXPECT_NE(problems.find("entry " + std::to_string(k) +
                          " was written by broker 'seoul-brokes', not seoul-broker"),
            std::string::npos)
      << problems;
  EXPECT_NE(VisibleText(bad).find("The log did not verify."), std::string::npos);

  // Put back (the report passes again), then a byte of the same entry's envelope hash, as
  // audit_tool_test.cpp flips it: it decodes with its own index and broker, so only the
  // tree can tell, and offline the page names the checkpoint that no longer matches (fetch
  // names such an entry, by bisection with the broker's proofs).
  EditLocalEntry(store, k, [](Bytes& v) { FlipIn(v, AsBytes(std::string_view("seoul-brokes"))); });
  ASSERT_EQ(Report(store, tampered).code, 0);
  EditLocalEntry(store, k, [&](Bytes& v) { FlipIn(v, entries[k].envelope_sha256); });
  r = Report(store, tampered);
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  bad = Render(tampered);
  bad_verdict = VisibleText(Fragment(bad, "id=\"verdict\"", "</div>"));
  EXPECT_EQ(bad_verdict.substr(0, 5), "FAIL ") << bad_verdict;
  EXPECT_NE(bad_verdict.find("First bad checkpoint: #"), std::string::npos) << bad_verdict;
  EXPECT_NE(VisibleText(bad).find("differ from what the broker signed"), std::string::npos);

  // A case pseudonym that is not one: a usage error, nothing written.
  EXPECT_EQ(Audit({"report", "--store", store, "--dir", fed_.Dir(kAuditor), "--out",
                   root_ + "/x.html", "--case", "no"})
                .code,
            2);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
}

}  // namespace
}  // namespace refbus::testing
