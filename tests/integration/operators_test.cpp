// Operator accounts across a real refbus-broker and a real refbus-agent daemon (issue 18
// items 1 and 2): accounts made with `refbus-agent operator`, login over the local API,
// lockout at the tenth wrong password, idle expiry, the acting operator in the records
// (and "service:" for the API token), read-only refused, and the two-person emergency
// override whose audit entry at the broker names both people.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "broker/store.h"
#include "core/clock.h"
#include "keys/operator_roster.h"
#include "schema/codec.h"
#include "tests/integration/agent_daemon.h"
#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

using schema::AgencyType;
using schema::AuditEvent;

class OperatorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("refbus-operators-test");
    ASSERT_TRUE(fed_.Create(root_, {"seoul-broker"},
                            {{"seoul-counsel", AgencyType::kCounselingCenter, "seoul-broker"},
                             {"seoul-support", AgencyType::kSupportCenter, "seoul-broker"}}));
    ASSERT_TRUE(fed_.AddAuditor("auditor-1"));
    broker_ = std::make_unique<Broker>(fed_, "seoul-broker", root_ + "/seoul-data");
    ASSERT_TRUE(broker_->Start());
    agent_ = std::make_unique<AgentDaemon>(fed_, "seoul-counsel", root_, broker_->endpoint());
    agent_->set_extra("session_idle_timeout_ms = 4000\nlockout_after = 10\nlockout_ms = 60000\n");
    ASSERT_TRUE(agent_->Start());
    agent_->WaitForSession();
    AddOperator("carol", "caseworker");
    AddOperator("dave", "caseworker");
    AddOperator("sam", "supervisor");
    AddOperator("sue", "supervisor");
    AddOperator("rita", "read-only");
  }
  void TearDown() override {
    if (agent_) {
      EXPECT_EQ(agent_->Stop(), 0) << "the agent did not stop cleanly";
    }
    agent_.reset();
    broker_.reset();
    if (!HasFailure()) RemoveTree(root_);
  }

  static std::string PasswordOf(const std::string& name) { return name + "-long-password"; }

  // refbus-agent operator add NAME --role ROLE, the password from a 0600 file (at the agent
  // of config, by default seoul-counsel's).
  void AddOperator(const std::string& name, const std::string& role, std::string config = "") {
    if (config.empty()) config = agent_->config_path();
    std::string pw_file = root_ + "/" + name + ".pw";
    {
      std::ofstream out(pw_file);
      out << PasswordOf(name) << "\n";
    }
    ASSERT_EQ(::chmod(pw_file.c_str(), 0600), 0);
    Process p;
    ASSERT_TRUE(p.Start({BinDir() + "/refbus-agent", "operator", "add", name, "--role", role,
                         "--password-file", pw_file, "-c", config},
                        root_ + "/operator-" + name + ".log"));
    ASSERT_EQ(p.Wait(30000), 0) << "operator add " << name;
  }

  // Runs a refbus program to its end; returns its exit code and puts its output in *out.
  int Run(const std::vector<std::string>& argv, const std::string& name, std::string* out) {
    std::string log = root_ + "/" + name + ".out";
    Process p;
    if (!p.Start(argv, log)) return -1;
    int code = p.Wait(60000);
    std::ifstream in(log);
    *out = std::string(std::istreambuf_iterator<char>(in), {});
    return code;
  }

  AgentDaemon::Reply Login(const std::string& name, const std::string& password) {
    return agent_->Call("POST", "/v1/login", {{"operator", name}, {"password", password}},
                        /*with_token=*/false);
  }
  std::string Token(const std::string& name) {
    auto r = Login(name, PasswordOf(name));
    EXPECT_EQ(r.status, 200) << name << ": " << r.body.dump();
    return r.body.value("token", "");
  }

  // A call with an operator's session token.
  AgentDaemon::Reply As(const std::string& token, const std::string& method,
                        const std::string& path, const Json& body = nullptr) {
    httplib::Client c(agent_->url());
    c.set_read_timeout(30, 0);
    httplib::Headers h = {{"Authorization", "Bearer " + token}};
    httplib::Result r = method == "GET" ? c.Get(path.c_str(), h)
                                        : c.Post(path.c_str(), h, body.dump(), "application/json");
    AgentDaemon::Reply out;
    if (!r) {
      ADD_FAILURE() << method << " " << path << ": no answer";
      return out;
    }
    out.status = r->status;
    out.body = Json::parse(r->body, nullptr, false);
    return out;
  }

  std::vector<schema::AuditEntry> StopBrokerAndReadAudit() {
    EXPECT_EQ(broker_->Stop(), 0);
    broker::StoreOptions o;
    o.dir = root_ + "/seoul-data";
    o.broker_id = "seoul-broker";
    auto store = broker::Store::Open(o);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    std::vector<schema::AuditEntry> out;
    if (!store.ok()) return out;
    auto n = (*store)->AuditSize();
    for (uint64_t i = 0; n.ok() && i < *n; ++i) {
      auto e = schema::DecodeAuditEntry(*(*store)->AuditEntryBytes(i));
      if (e.ok()) out.push_back(*e);
    }
    return out;
  }

  // refbus-agent operator roster of the agent of config, written to root_/NAME.roster.
  std::string Roster(const std::string& config, const std::string& name) {
    std::string out, file = root_ + "/" + name + ".roster";
    EXPECT_EQ(Run({BinDir() + "/refbus-agent", "operator", "roster", "-c", config, "--out", file},
                  "roster-" + name, &out),
              0)
        << out;
    return file;
  }

  // Waits (up to 30 s) until the broker's log holds text; false if it never came.
  bool WaitForBrokerLog(const std::string& text) {
    for (int i = 0; i < 300; ++i) {
      if (broker_->Log().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  std::string root_;
  Federation fed_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<AgentDaemon> agent_;
};

Json Consent() {
  return {{"basis", "consent-subject"},
          {"consenters", {"subject"}},
          {"purposes", {"counseling"}},
          {"categories", {"incident-summary"}},
          {"recipients", {"seoul-support"}}};
}

Json Emergency() {
  return {{"basis", "emergency-life-safety"},
          {"legal_article", "PIPA 18(2)3"},
          {"emergency_override", true},
          {"purposes", {"emergency"}},
          {"categories", {"identity", "contact"}},
          {"recipient_types", {"support-center"}},
          {"expires_in_ms", 3600000}};
}

TEST_F(OperatorsTest, TenthWrongPasswordLocksTheAccount) {
  for (int i = 1; i <= 9; ++i) {
    EXPECT_EQ(Login("carol", "not-her-password").status, 401) << "wrong password " << i;
  }
  EXPECT_EQ(Login("carol", PasswordOf("carol")).status, 200) << "nine do not lock";
  for (int i = 1; i <= 10; ++i) {
    EXPECT_EQ(Login("carol", "not-her-password").status, 401) << "wrong password " << i;
  }
  auto locked = Login("carol", PasswordOf("carol"));
  EXPECT_EQ(locked.status, 403) << locked.body.dump();
  EXPECT_NE(locked.body.dump().find("locked"), std::string::npos) << locked.body.dump();
  EXPECT_EQ(Login("dave", PasswordOf("dave")).status, 200) << "counted per operator";
  EXPECT_NE(agent_->Log().find("operator 'carol' locked"), std::string::npos);
  EXPECT_EQ(agent_->Log().find(PasswordOf("carol")), std::string::npos) << "a password in the log";
}

TEST_F(OperatorsTest, SessionActsAsTheOperatorExpiresWhenIdleAndEndsAtLogout) {
  std::string carol = Token("carol");
  ASSERT_EQ(carol.size(), 64u);
  auto who = As(carol, "GET", "/v1/session");
  EXPECT_EQ(who.body.value("operator", ""), "carol");
  // The recorded operator is the logged-in one; naming another is refused.
  Json body = Consent();
  body["operator"] = "sue";
  EXPECT_EQ(As(carol, "POST", "/v1/consents", body).status, 400);
  auto rec = As(carol, "POST", "/v1/consents", Consent());
  ASSERT_EQ(rec.status, 201) << rec.body.dump();
  auto c = agent_->Ok("GET", "/v1/cases/" + rec.body.value("case_ref", ""));
  EXPECT_NE(c.dump().find("\"carol\""), std::string::npos) << c.dump(2);
  // The API token is the service account, named as such.
  Json svc = Consent();
  svc["operator"] = "carol";
  auto by_service = agent_->Ok("POST", "/v1/consents", svc);
  auto sc = agent_->Ok("GET", "/v1/cases/" + by_service.value("case_ref", ""));
  EXPECT_NE(sc.dump().find("service:carol"), std::string::npos) << sc.dump(2);
  // Read-only: may look, may not act.
  std::string rita = Token("rita");
  EXPECT_EQ(As(rita, "GET", "/v1/consents").status, 200);
  EXPECT_EQ(As(rita, "POST", "/v1/consents", Consent()).status, 403);
  // The administrator disables her: her session ends and she cannot log in again.
  std::string out;
  ASSERT_EQ(
      Run({BinDir() + "/refbus-agent", "operator", "disable", "rita", "-c", agent_->config_path()},
          "disable", &out),
      0)
      << out;
  EXPECT_EQ(As(rita, "GET", "/v1/consents").status, 401) << "a disabled operator's session";
  EXPECT_EQ(Login("rita", PasswordOf("rita")).status, 403);
  ASSERT_EQ(Run({BinDir() + "/refbus-agent", "operator", "list", "-c", agent_->config_path()},
                "list", &out),
            0);
  EXPECT_NE(out.find("DISABLED"), std::string::npos) << out;
  EXPECT_EQ(out.find(PasswordOf("rita")), std::string::npos) << out;
  // Idle expiry (4 s configured: logins under sanitizers take a while) and logout.
  std::this_thread::sleep_for(std::chrono::milliseconds(4500));
  EXPECT_EQ(As(carol, "GET", "/v1/session").status, 401) << "an idle session must expire";
  std::string dave = Token("dave");
  EXPECT_EQ(As(dave, "POST", "/v1/logout", Json::object()).status, 200);
  EXPECT_EQ(As(dave, "GET", "/v1/session").status, 401) << "logout must end the session";
}

TEST_F(OperatorsTest, OverrideNeedsADifferentSupervisorAndAuditNamesBoth) {
  // Each logs in just before acting (sessions expire after 4 s idle here).
  std::string sam = Token("sam");
  auto asked = As(sam, "POST", "/v1/consents", Emergency());
  ASSERT_EQ(asked.status, 201) << asked.body.dump();
  EXPECT_EQ(asked.body.value("state", ""), "awaiting-supervisor");
  std::string id = asked.body.value("override_id", "");
  ASSERT_EQ(id.size(), 32u);
  EXPECT_EQ(agent_->Ok("GET", "/v1/consents").size(), 0u) << "nothing recorded before approval";
  std::string dave = Token("dave");
  auto pending = As(dave, "GET", "/v1/overrides");
  ASSERT_EQ(pending.body.size(), 1u) << pending.body.dump();
  EXPECT_EQ(pending.body[0].value("requested_by", ""), "sam");

  auto self = As(sam, "POST", "/v1/overrides/" + id + "/approve", Json::object());
  EXPECT_EQ(self.status, 403) << self.body.dump();
  EXPECT_NE(self.body.dump().find("cannot approve"), std::string::npos) << self.body.dump();
  auto not_sup = As(dave, "POST", "/v1/overrides/" + id + "/approve", Json::object());
  EXPECT_EQ(not_sup.status, 403) << not_sup.body.dump();
  EXPECT_NE(not_sup.body.dump().find("supervisor role"), std::string::npos);
  auto service = agent_->Call("POST", "/v1/overrides/" + id + "/approve", Json::object());
  EXPECT_EQ(service.status, 403) << service.body.dump();

  std::string sue = Token("sue");
  auto ok = As(sue, "POST", "/v1/overrides/" + id + "/approve", Json::object());
  ASSERT_EQ(ok.status, 200) << ok.body.dump();
  EXPECT_EQ(ok.body.value("requested_by", ""), "sam");
  EXPECT_EQ(ok.body.value("approved_by", ""), "sue");
  EXPECT_TRUE(ok.body.value("emergency_override", false));
  std::string grant = ok.body.value("grant_id", "");
  EXPECT_EQ(As(sue, "POST", "/v1/overrides/" + id + "/approve", Json::object()).status, 404)
      << "approved once only";
  agent_->WaitFor(
      "/v1/consents",
      [&](const Json& l) {
        const Json* g = FindBy(l, "grant_id", grant);
        return g != nullptr && g->value("registered", false);
      },
      "the override's registration at the broker");

  // The agency's signed roster ties the countersigning keys to the two names: the auditor
  // checks the override's countersigners against it (refbus-audit overrides --roster).
  std::string out;
  std::string roster = root_ + "/seoul-counsel.roster";
  ASSERT_EQ(Run({BinDir() + "/refbus-agent", "operator", "roster", "-c", agent_->config_path(),
                 "--out", roster},
                "roster", &out),
            0)
      << out;
  std::string store = root_ + "/audit-store";
  std::string auditor = fed_.Dir("auditor-1");
  ASSERT_EQ(Run({BinDir() + "/refbus-audit", "fetch", "--dir", auditor, "--broker", "seoul-broker",
                 "--endpoint", broker_->endpoint(), "--store", store},
                "fetch", &out),
            0)
      << out;
  ASSERT_EQ(Run({BinDir() + "/refbus-audit", "overrides", "--csv", "--store", store, "--roster",
                 roster, "--dir", auditor},
                "overrides", &out),
            0)
      << out;
  EXPECT_NE(out.find("sam (requested) key matches, supervisor"), std::string::npos) << out;
  EXPECT_NE(out.find("sue (approved) key matches, supervisor"), std::string::npos) << out;
  EXPECT_EQ(out.find("NOT SHOWN"), std::string::npos) << out;
  // A roster edited after signing is refused.
  std::string forged = root_ + "/forged.roster";
  {
    std::ifstream in(roster);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    text.replace(text.find("supervisor"), 10, "caseworker");
    std::ofstream o(forged);
    o << text;
  }
  EXPECT_NE(Run({BinDir() + "/refbus-audit", "overrides", "--store", store, "--roster", forged,
                 "--dir", auditor},
                "overrides-forged", &out),
            0)
      << out;

  auto log = StopBrokerAndReadAudit();
  int found = 0;
  for (const auto& e : log) {
    if (e.event != AuditEvent::kConsentGranted || !e.emergency_override) continue;
    ++found;
    EXPECT_NE(e.detail.find("sam (requested)"), std::string::npos) << e.detail;
    EXPECT_NE(e.detail.find("sue (approved)"), std::string::npos) << e.detail;
  }
  EXPECT_EQ(found, 1) << "the broker's log must hold the override";
  EXPECT_TRUE(broker_->Start());
}

// Issue 18 item 1: an operator who opens a message signs the access record; the broker's
// A roster signed by the agency (tests: version and operators as given).
std::string SignedRoster(const keys::Identity& agency, uint64_t version) {
  keys::OperatorRoster r;
  r.agency = agency.party_id();
  r.version = version;
  r.issued_at_ms = SystemClock::Get().NowMillis();
  r.operators = {{"zoe", "caseworker", Bytes(32, 0x5a), true}};
  auto text = keys::SignOperatorRoster(agency, r);
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  return text.ok() ? *text : std::string();
}

// The agent publishes its operator roster through its broker (PROTOCOL.md 9.3), which
// records it whole in its audit log; a roster that the agency's key did not sign, another
// agency's, or one whose version is not newer than the last recorded (across a broker
// restart too) is refused with a clear reason and audited.
TEST_F(OperatorsTest, TheBrokerRecordsTheRosterAndRefusesAForgedOrOldOne) {
  // SetUp added five operators while the agent ran: a roster lists all five.
  ASSERT_TRUE(WaitForBrokerLog("(5 operators, signed by")) << broker_->Log();
  const keys::Identity support = fed_.LoadIdentity("seoul-support");
  const Bytes broker_key = fed_.directory().Find("seoul-broker")->ActiveKeys()->transport_key;
  uint64_t request = 100;
  auto publish = [&](RawClient& raw, const std::string& text) -> std::string {
    schema::Frame f;
    f.type = schema::Frame::Type::kRosterUpdate;
    f.request_id = ++request;
    f.roster_update.signed_roster = ToBytes(text);
    raw.SendFrame(f);
    for (int i = 0; i < 50; ++i) {
      auto r = raw.Receive(Scaled(5000));
      if (!r) break;
      if (r->request_id != request) continue;  // prekeys the broker pushes after Welcome
      if (r->type == schema::Frame::Type::kAck) return "ack";
      if (r->type == schema::Frame::Type::kNack) {
        return std::string(schema::Name(r->nack.reason)) + ": " + r->nack.detail;
      }
    }
    return "no answer";
  };
  {
    RawClient raw(support, broker_key, broker_->endpoint());
    ASSERT_TRUE(raw.Hello("seoul-support"));
    std::string forged = SignedRoster(support, 100);
    const std::string v100 = "version\\\":100", v101 = "version\\\":101";
    ASSERT_NE(forged.find(v100), std::string::npos) << forged;
    forged.replace(forged.find(v100), v100.size(), v101);
    const std::string bad = publish(raw, forged);
    EXPECT_EQ(bad.substr(0, 13), "bad-signature") << bad;
    EXPECT_EQ(publish(raw, SignedRoster(fed_.LoadIdentity("seoul-counsel"), 999)).substr(0, 15),
              "sender-mismatch");
    EXPECT_EQ(publish(raw, SignedRoster(support, 100)), "ack");
    const std::string again = publish(raw, SignedRoster(support, 100));
    EXPECT_EQ(again.substr(0, 12), "out-of-range") << again;
    EXPECT_NE(again.find("version 100 is not newer than version 100"), std::string::npos) << again;
    EXPECT_EQ(publish(raw, SignedRoster(support, 50)).substr(0, 12), "out-of-range");
  }
  // The last version is kept across a restart.
  ASSERT_EQ(broker_->Stop(), 0);
  ASSERT_TRUE(broker_->Start());
  {
    RawClient raw(support, broker_key, broker_->endpoint());
    ASSERT_TRUE(raw.Hello("seoul-support"));
    EXPECT_EQ(publish(raw, SignedRoster(support, 100)).substr(0, 12), "out-of-range");
    EXPECT_EQ(publish(raw, SignedRoster(support, 101)), "ack");
  }
  // The log: support's two rosters, counsel's, and every refusal, named as a roster's.
  std::map<std::string, std::vector<std::string>> rosters;
  std::vector<std::string> refused;
  for (const auto& e : StopBrokerAndReadAudit()) {
    if (e.event == AuditEvent::kOperatorRoster) {
      rosters[e.sender_id].emplace_back(AsChars(e.signed_roster));
    } else if (e.event == AuditEvent::kEnvelopeRejected && e.detail.starts_with("roster: ")) {
      refused.push_back(std::string(schema::Name(e.reason)) + " " + e.actor);
    }
  }
  ASSERT_EQ(rosters["seoul-support"].size(), 2u);
  ASSERT_FALSE(rosters["seoul-counsel"].empty());
  const std::string& counsel = rosters["seoul-counsel"].back();
  for (const char* name : {"carol", "dave", "sam", "sue", "rita"}) {
    EXPECT_NE(counsel.find(name), std::string::npos) << name << " " << counsel;
  }
  // Public keys, names, roles: no password hash, no sealed key.
  EXPECT_EQ(counsel.find("argon2"), std::string::npos) << counsel;
  EXPECT_EQ(counsel.find("sealed"), std::string::npos) << counsel;
  EXPECT_EQ(refused,
            (std::vector<std::string>{"bad-signature seoul-support",
                                      "sender-mismatch seoul-support", "out-of-range seoul-support",
                                      "out-of-range seoul-support", "out-of-range seoul-support"}));
}

// OPENED entry keeps the signature; refbus-audit names the operator of every access and
// checks the signature against the agency's roster: valid, the service account, an
// operator the roster does not list, and a key that is not the rostered one all differ.
TEST_F(OperatorsTest, OpeningIsSignedByTheOperatorAndTheAuditorVerifiesIt) {
  AgentDaemon support(fed_, "seoul-support", root_, broker_->endpoint());
  ASSERT_TRUE(support.Start());
  support.WaitForSession();
  AddOperator("pete", "caseworker", support.config_path());
  const std::string roster_without_olga = Roster(support.config_path(), "before-olga");
  AddOperator("olga", "caseworker", support.config_path());
  const std::string roster = Roster(support.config_path(), "support");

  std::string carol = Token("carol");
  auto consent = As(carol, "POST", "/v1/consents", Consent());
  ASSERT_EQ(consent.status, 201) << consent.body.dump();
  auto sent =
      As(carol, "POST", "/v1/referrals",
         {{"grant_id", consent.body.value("grant_id", "")},
          {"to", "seoul-support"},
          {"purpose", "counseling"},
          {"fields",
           {{{"category", "incident-summary"}, {"name", "summary"}, {"value", "threats"}}}}});
  ASSERT_EQ(sent.status, 201) << sent.body.dump();
  Json inbox = support.WaitFor(
      "/v1/inbox", [](const Json& l) { return FindBy(l, "kind", "referral") != nullptr; },
      "the referral");
  const Json& referral = *FindBy(inbox, "kind", "referral");
  const std::string mid = referral.value("message_id", "");
  // carol's referral carries her signature; the receiving agency checks it with its key.
  EXPECT_EQ(referral.value("operator", ""), "carol") << referral.dump();
  EXPECT_EQ(referral.value("operator_signature", ""), "verifies") << referral.dump();
  auto olga_session = Login("olga", PasswordOf("olga"));  // at seoul-counsel: no such operator
  EXPECT_EQ(olga_session.status, 401);
  auto olga_login =
      support.Call("POST", "/v1/login", {{"operator", "olga"}, {"password", PasswordOf("olga")}},
                   /*with_token=*/false);
  ASSERT_EQ(olga_login.status, 200) << olga_login.body.dump();
  {
    httplib::Client c(support.url());
    c.set_read_timeout(30, 0);
    auto r = c.Post(("/v1/messages/" + mid + "/open").c_str(),
                    {{"Authorization", "Bearer " + olga_login.body.value("token", "")}}, "{}",
                    "application/json");
    ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
  }
  support.Ok("POST", "/v1/messages/" + mid + "/open", {{"operator", "intake"}});
  // The owner's access notice names olga, her signature checked with the key it carries.
  agent_->WaitFor(
      "/v1/cases/" + consent.body.value("case_ref", ""),
      [](const Json& c) {
        for (const auto& n : c.value("access_notices", Json::array())) {
          if (n.value("operator", "") == "olga" && n.value("operator_signature", "") == "verifies")
            return true;
        }
        return false;
      },
      "the access notice of olga's open, her signature verified");

  // The auditor fetches until both OPENED entries are in, and asks who opened what.
  std::string store = root_ + "/audit-store", auditor = fed_.Dir("auditor-1"), out;
  Json rows;
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(Run({BinDir() + "/refbus-audit", "fetch", "--dir", auditor, "--broker",
                   "seoul-broker", "--endpoint", broker_->endpoint(), "--store", store},
                  "fetch", &out),
              0)
        << out;
    ASSERT_EQ(Run({BinDir() + "/refbus-audit", "--json", "accesses", "--agency", "seoul-support",
                   "--store", store, "--roster", roster, "--dir", auditor},
                  "accesses", &out),
              0)
        << out;
    Json parsed = Json::parse(out.substr(std::min(out.find('{'), out.size())), nullptr, false);
    ASSERT_TRUE(parsed.is_object() && parsed.contains("rows")) << out;
    rows = parsed["rows"];
    size_t opened = 0;
    for (const auto& r : rows) opened += r.value("event", "") == "opened" ? 1 : 0;
    if (opened == 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::map<std::string, std::string> verdicts;
  for (const auto& r : rows) {
    if (r.value("event", "") == "opened") {
      verdicts[r.value("operator_ref", "")] = r.value("operator_check", "");
    }
  }
  EXPECT_EQ(verdicts["olga"], "valid") << rows.dump(2);
  EXPECT_EQ(verdicts["service:intake"], "no signature (service account)") << rows.dump(2);
  ASSERT_EQ(verdicts.size(), 2u) << rows.dump(2);
  ASSERT_EQ(Run({BinDir() + "/refbus-audit", "accesses", "--agency", "seoul-support", "--store",
                 store, "--roster", roster, "--dir", auditor},
                "accesses-text", &out),
            0)
      << out;
  EXPECT_NE(out.find("olga (caseworker, key "), std::string::npos) << out;
  // Without --roster the auditor takes the roster from the log: the one the support agent
  // published before olga's opening (it publishes ahead of any operator's command).
  ASSERT_EQ(Run({BinDir() + "/refbus-audit", "accesses", "--agency", "seoul-support", "--store",
                 store, "--dir", auditor},
                "accesses-log", &out),
            0)
      << out;
  EXPECT_NE(out.find("olga (caseworker, key "), std::string::npos) << out;
  auto published = [&] {
    const std::string log = broker_->Log();
    size_t n = 0;
    for (size_t at = log.find("operator roster of seoul-support"); at != std::string::npos;
         at = log.find("operator roster of seoul-support", at + 1)) {
      ++n;
    }
    return n;
  };
  const size_t rosters_before_reset = published();

  // A roster from before olga's account: the auditor cannot tie her key to a person.
  EXPECT_EQ(Run({BinDir() + "/refbus-audit", "accesses", "--agency", "seoul-support", "--store",
                 store, "--roster", roster_without_olga, "--dir", auditor},
                "accesses-before", &out),
            1)
      << out;
  EXPECT_NE(out.find("NOT IN ROSTER"), std::string::npos) << out;
  // The administrator resets her password: a new key pair, a new roster. Her earlier
  // signature is not by the key that roster lists for her (a signature by any key but
  // the rostered one, a forged one included, reads the same); with the earlier roster
  // kept beside it, it is valid again.
  std::string pw = root_ + "/olga.pw";
  ASSERT_EQ(Run({BinDir() + "/refbus-agent", "operator", "passwd", "olga", "--reset",
                 "--password-file", pw, "-c", support.config_path()},
                "reset", &out),
            0)
      << out;
  const std::string roster_reset = Roster(support.config_path(), "after-reset");
  // The running agent publishes the new roster too. From the log, olga's access is judged
  // by the roster in effect at it (her old key): valid, where today's roster says KEY
  // MISMATCH (below).
  for (int i = 0; i < 300 && published() == rosters_before_reset; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_GT(published(), rosters_before_reset) << broker_->Log();
  ASSERT_EQ(Run({BinDir() + "/refbus-audit", "fetch", "--dir", auditor, "--broker", "seoul-broker",
                 "--endpoint", broker_->endpoint(), "--store", store},
                "fetch-after-reset", &out),
            0)
      << out;
  EXPECT_EQ(Run({BinDir() + "/refbus-audit", "case", consent.body.value("case_ref", ""), "--store",
                 store, "--dir", auditor},
                "case-log", &out),
            0)
      << out;
  EXPECT_NE(out.find("olga (caseworker, key "), std::string::npos) << out;
  EXPECT_EQ(Run({BinDir() + "/refbus-audit", "case", consent.body.value("case_ref", ""), "--store",
                 store, "--roster", roster_reset, "--dir", auditor},
                "case-reset", &out),
            1)
      << out;
  EXPECT_NE(out.find("INVALID"), std::string::npos) << out;
  EXPECT_NE(out.find("KEY MISMATCH"), std::string::npos) << out;
  EXPECT_EQ(Run({BinDir() + "/refbus-audit", "case", consent.body.value("case_ref", ""), "--store",
                 store, "--roster", roster_reset, "--roster", roster, "--dir", auditor},
                "case-both", &out),
            0)
      << out;
  // The grant carol recorded is countersigned by her ("carol (recorded)").
  ASSERT_EQ(Run({BinDir() + "/refbus-audit", "--json", "case", consent.body.value("case_ref", ""),
                 "--store", store},
                "case-json", &out),
            0)
      << out;
  EXPECT_NE(out.find("countersigned by carol (recorded) [key "), std::string::npos) << out;
  // The HTML report (Korean, the default) names the operator of every opening with the
  // same verdicts, and fails on the one the roster does not vouch for.
  const std::string page = root_ + "/report.html";
  EXPECT_EQ(Run({BinDir() + "/refbus-audit", "report", "--store", store, "--dir", auditor, "--out",
                 page, "--min-cosignatures", "0", "--roster", roster_reset},
                "report-reset", &out),
            1)
      << out;
  EXPECT_NE(out.find("INVALID"), std::string::npos) << out;
  {
    // The page marks the recipient's operator whose signature the roster does not vouch
    // for: a red badge on her opening, and the failure counted at the top of the section.
    std::ifstream bad_in(page);
    const std::string bad_html((std::istreambuf_iterator<char>(bad_in)), {});
    EXPECT_NE(bad_html.find("seoul-support (담당자 olga) 무효(INVALID)"), std::string::npos)
        << bad_html;
    EXPECT_NE(bad_html.find("<span class=\"badge bad\">무효(INVALID)</span>"), std::string::npos);
    EXPECT_NE(bad_html.find("id=\"operator-failures\""), std::string::npos);
  }
  ASSERT_EQ(Run({BinDir() + "/refbus-audit", "report", "--store", store, "--dir", auditor, "--out",
                 page, "--min-cosignatures", "0", "--roster", roster_reset, "--roster", roster},
                "report", &out),
            0)
      << out;
  std::ifstream in(page);
  const std::string html((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(html.find("누가 무엇을 열람했는가"), std::string::npos);
  EXPECT_NE(html.find("seoul-support (담당자 olga) 유효"), std::string::npos) << html;
  EXPECT_NE(html.find("seoul-support (담당자 service:intake) 서명 없음(서비스 계정)"),
            std::string::npos)
      << html;
  EXPECT_EQ(support.Stop(), 0);
}

}  // namespace
}  // namespace refbus::testing
