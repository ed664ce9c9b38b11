// The linkage federation the linkage integration tests share (PROTOCOL.md 13): real
// refbus-broker processes (the home broker and a second broker, both linkage evaluators with
// key files from `refbus-broker linkage-key`) and real refbus-agent daemons for the centers a
// test names and the escrow (central-center, role linkage-escrow), driven through their
// local APIs and the refbus-agent CLI.
#ifndef REFBUS_TESTS_INTEGRATION_LINKAGE_FIXTURE_H_
#define REFBUS_TESTS_INTEGRATION_LINKAGE_FIXTURE_H_

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "keys/directory.h"
#include "keys/secret.h"
#include "tests/integration/agent_daemon.h"
#include "tests/integration/harness.h"

namespace refbus::testing::linkage_fixture {

using schema::AgencyType;

inline constexpr char kEvalB[] = "eval-b";
inline constexpr char kEscrow[] = "central-center";

// A grant an agency records for a case of its own with purpose linkage (incident summaries, to
// `recipients`, a day valid, 30 days kept), for a test that speaks for the agency itself
// without its daemon; sign it with keys::SignConsentGrant.
inline schema::ConsentGrant LinkageGrantOf(const std::string& recorded_by,
                                           const std::string& case_ref,
                                           std::vector<std::string> recipients) {
  const UnixMillis now = SystemClock::Get().NowMillis();
  schema::ConsentGrant g;
  g.grant_id = keys::RandomBytes(schema::kGrantIdBytes);
  g.case_ref = case_ref;
  g.recorded_by = recorded_by;
  g.basis = schema::LegalBasis::kConsentSubject;
  g.consenters = {schema::Consenter::kSubject};
  g.purposes = {schema::Purpose::kLinkage};
  g.categories = {schema::DataCategory::kIncidentSummary};
  g.allowed_recipients = std::move(recipients);
  g.issued_at_ms = now - 1000;
  g.expires_at_ms = now + kMillisPerDay;
  g.retention_until_ms = now + 30 * kMillisPerDay;
  return g;
}

class LinkageFixture : public ::testing::Test {
 protected:
  // The centers besides the escrow, all at kBroker.
  virtual std::vector<std::string> Centers() const = 0;
  // Centers listed in the directory at kBroker but run by no daemon: a test speaks for them.
  virtual std::vector<std::string> ListedOnly() const { return {}; }

  void SetUp() override {
    root_ = MakeTempDir("refbus-linkage-test");
    std::vector<Federation::AgencySpec> agencies;
    for (const std::string& c : Centers()) {
      agencies.push_back({c, AgencyType::kSupportCenter, kBroker});
    }
    for (const std::string& c : ListedOnly()) {
      agencies.push_back({c, AgencyType::kSupportCenter, kBroker});
    }
    agencies.push_back({kEscrow, AgencyType::kSupportCenter, kBroker});
    ASSERT_TRUE(fed_.Create(root_, {kBroker, kEvalB}, agencies));
    keys::DirectoryEdit edit;
    const UnixMillis now = SystemClock::Get().NowMillis();
    for (const char* b : {kBroker, kEvalB}) {
      const std::string pub = MakeKeyFile(fed_.Dir(b) + "/linkage.key");
      ASSERT_EQ(pub.size(), 64u) << b;
      keys::Listing l;
      l.region = b;
      l.roles = keys::DefaultRoles(schema::PartyKind::kBroker, AgencyType::kUnspecified);
      l.roles.push_back(schema::Role::kLinkageEvaluator);
      l.linkage_key = *HexDecode(pub);
      auto rec = keys::MakePartyRecord(fed_.LoadIdentity(b), l, now, nullptr);
      ASSERT_TRUE(rec.ok()) << rec.status().ToString();
      edit.upserts.push_back(*rec);
    }
    keys::Listing esc;
    esc.agency_type = AgencyType::kSupportCenter;
    esc.region = "central";
    esc.home_broker = kBroker;
    esc.roles = keys::DefaultRoles(schema::PartyKind::kAgency, AgencyType::kSupportCenter);
    esc.roles.push_back(schema::Role::kLinkageEscrow);
    auto rec = keys::MakePartyRecord(fed_.LoadIdentity(kEscrow), esc, now, nullptr);
    ASSERT_TRUE(rec.ok()) << rec.status().ToString();
    edit.upserts.push_back(*rec);
    ASSERT_TRUE(fed_.Reissue(edit));
    // An auditor's folder with the verified directory, for refbus-audit.
    ASSERT_TRUE(fed_.AddAuditor(kAuditor));
    for (const char* b : {kBroker, kEvalB}) {
      brokers_[b] = std::make_unique<Broker>(fed_, b, root_ + "/" + b + "-data");
      brokers_[b]->set_policy("allow_unscoped_opaque = false");
      brokers_[b]->set_extra("[linkage]\nkey_file = \"" + fed_.Dir(b) +
                             "/linkage.key\"\ndaily_quota = 50\n");
      ASSERT_TRUE(brokers_[b]->Start()) << brokers_[b]->Log();
    }
    const std::string linkage = "[linkage]\nfirst_evaluator = \"" + std::string(kBroker) +
                                "\"\nfirst_endpoint = \"" + brokers_[kBroker]->endpoint() +
                                "\"\nsecond_evaluator = \"" + kEvalB + "\"\nsecond_endpoint = \"" +
                                brokers_[kEvalB]->endpoint() +
                                "\"\ntimeout_ms = " + std::to_string(Scaled(5000)) + "\n";
    std::vector<std::string> ids = Centers();
    ids.push_back(kEscrow);
    for (const std::string& id : ids) {
      agents_[id] = std::make_unique<AgentDaemon>(fed_, id, root_, brokers_[kBroker]->endpoint());
      agents_[id]->set_extra(linkage);
      ASSERT_TRUE(agents_[id]->Start()) << id;
    }
    for (auto& [id, a] : agents_) a->WaitForSession();
  }
  void TearDown() override {
    for (auto& [id, a] : agents_) EXPECT_EQ(a->Stop(), 0) << id << " did not stop cleanly";
    agents_.clear();
    for (auto& [id, b] : brokers_) EXPECT_EQ(b->Stop(), 0) << id;
    brokers_.clear();
    if (!HasFailure()) RemoveTree(root_);
  }
  AgentDaemon& A(const std::string& id) { return *agents_.at(id); }

  // refbus-broker linkage-key --out path; returns the public key hex it printed.
  std::string MakeKeyFile(const std::string& path) {
    const std::string out = path + ".out";
    Process p;
    if (!p.Start({BinDir() + "/refbus-broker", "linkage-key", "--out", path}, out)) return "";
    EXPECT_EQ(p.Wait(Scaled(10000)), 0);
    std::ifstream in(out);
    std::string line, hex;
    while (std::getline(in, line)) {
      auto at = line.find("): ");
      if (line.find("linkage_key for this broker") != std::string::npos && at != std::string::npos)
        hex = line.substr(at + 3);
    }
    return hex;
  }

  // A consent recorded at `id` with purpose linkage (the subject's, for incident summaries, 90
  // days valid, kept a year) to `recipients`; `fields` adds to or overrides the body (the
  // case: local_case or case_ref; another basis). Returns the answer.
  Json LinkageConsent(const std::string& id, const std::vector<std::string>& recipients,
                      const Json& fields) {
    Json body = {{"basis", "consent-subject"}, {"consenters", {"subject"}},
                 {"purposes", {"linkage"}},    {"categories", {"incident-summary"}},
                 {"recipients", recipients},   {"valid_days", 90},
                 {"retention_days", 365},      {"operator", "officer-1"}};
    body.update(fields);
    return A(id).Ok("POST", "/v1/consents", body);
  }

  // A case at `id` whose grant lets its entries go to the escrow; returns the case ref.
  std::string LinkageCase(const std::string& id, const std::string& local) {
    Json grant = LinkageConsent(id, {kEscrow}, {{"local_case", local}});
    grants_[id + "/" + local] = grant.value("grant_id", "");
    return grant.value("case_ref", "");
  }

  Json AddPhone(const std::string& id, const std::string& case_ref, const std::string& phone) {
    return A(id).Ok("POST", "/v1/cases/" + case_ref + "/links",
                    {{"kind", "phone"}, {"value", phone}, {"operator", "officer-1"}});
  }

  // Waits until the escrow has taken up `n` linkage entries (held, not refused; from `from`
  // only, if given: entries under a revoked grant are purged afterwards).
  void WaitForEntriesHeld(size_t n, const std::string& from = "") {
    A(kEscrow).WaitFor(
        "/v1/inbox",
        [&](const Json& l) {
          size_t held = 0;
          for (const auto& m : l) {
            held += m.value("kind", "") == "linkage-entry" && m.value("status", "") == "ok" &&
                    (from.empty() || m.value("from", "") == from);
          }
          return held >= n;
        },
        std::to_string(n) + " linkage entries at the escrow", Scaled(20000));
  }

  // refbus-agent ARGS... against the daemon of `id`; its output, and its exit code in *rc.
  std::string LinkCli(const std::string& id, std::vector<std::string> args, int* rc) {
    AgentDaemon& a = A(id);
    std::vector<std::string> argv = {BinDir() + "/refbus-agent"};
    argv.insert(argv.end(), args.begin(), args.end());
    for (const std::string& s :
         {std::string("--url"), a.url(), std::string("--token-file"), a.data_dir() + ".token"}) {
      argv.push_back(s);
    }
    return RunTool(argv, rc);
  }

  // Runs argv to its end; its output (stdout and stderr), and its exit code in *rc.
  std::string RunTool(const std::vector<std::string>& argv, int* rc) {
    const std::string log = root_ + "/cli-" + std::to_string(++cli_runs_) + ".log";
    Process p;
    *rc = p.Start(argv, log) ? p.Wait(Scaled(30000)) : -1;
    return Slurp(log);
  }

  // The escrow's timeline events named `event` on the case.
  size_t EscrowEvents(const std::string& case_ref, const std::string& event) {
    Json c = A(kEscrow).Ok("GET", "/v1/cases/" + case_ref);
    size_t n = 0;
    for (const auto& e : c.value("timeline", Json::array())) n += e.value("event", "") == event;
    return n;
  }

  std::string root_;
  Federation fed_;
  std::map<std::string, std::unique_ptr<Broker>> brokers_;
  std::map<std::string, std::unique_ptr<AgentDaemon>> agents_;
  std::map<std::string, std::string> grants_;
  int cli_runs_ = 0;
};

}  // namespace refbus::testing::linkage_fixture

#endif  // REFBUS_TESTS_INTEGRATION_LINKAGE_FIXTURE_H_
