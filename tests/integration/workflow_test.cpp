// The six field paths of the workflow issue across a real refbus-broker and real
// refbus-agent daemons (one per agency), driven through each agency's local HTTP API as
// its case-management software would: every state, every notice, every refusal, and the
// broker's audit log afterwards.
//
//   1. Wee center -> counseling center referral (guardian consent + student assent)
//   2. Police hand the case to a support center and task the deletion center directly
//   3. The deletion center reports per-item status with running counts
//   4. The counseling center refers onward (legal, psychological, family)
//   5. The guardian withdraws consent: recipients are told, purge, confirm
//   6. The case is closed
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "broker/store.h"
#include "keys/identity.h"
#include "keys/keyfile.h"
#include "schema/codec.h"
#include "tests/integration/agent_daemon.h"
#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

using schema::AgencyType;
using schema::AuditEvent;

class WorkflowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("refbus-workflow-test");
    ASSERT_TRUE(fed_.Create(root_, {"seoul-broker"},
                            {{"seoul-wee-01", AgencyType::kWeeCenter, "seoul-broker"},
                             {"seoul-counsel", AgencyType::kCounselingCenter, "seoul-broker"},
                             {"seoul-police-03", AgencyType::kPoliceUnit, "seoul-broker"},
                             {"central-dsc", AgencyType::kDeletionCenter, "seoul-broker"},
                             {"seoul-support", AgencyType::kSupportCenter, "seoul-broker"}}));
    broker_ = std::make_unique<Broker>(fed_, "seoul-broker", root_ + "/seoul-data");
    broker_->set_policy("allow_unscoped_opaque = false");
    ASSERT_TRUE(broker_->Start());
    for (const char* id :
         {"seoul-wee-01", "seoul-counsel", "seoul-police-03", "central-dsc", "seoul-support"}) {
      agents_[id] = std::make_unique<AgentDaemon>(fed_, id, root_, broker_->endpoint());
      ASSERT_TRUE(agents_[id]->Start()) << id;
    }
    for (auto& [id, a] : agents_) {
      a->WaitForSession();
    }
  }
  void TearDown() override {
    for (auto& [id, a] : agents_) EXPECT_EQ(a->Stop(), 0) << id << " did not stop cleanly";
    agents_.clear();
    broker_.reset();
    if (!HasFailure()) RemoveTree(root_);
  }
  AgentDaemon& A(const std::string& id) { return *agents_.at(id); }

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
  static size_t Count(const std::vector<schema::AuditEntry>& log, AuditEvent ev) {
    size_t n = 0;
    for (const auto& e : log) n += e.event == ev ? 1 : 0;
    return n;
  }

  std::string root_;
  Federation fed_;
  std::unique_ptr<Broker> broker_;
  std::map<std::string, std::unique_ptr<AgentDaemon>> agents_;
};

Json WeeConsent() {
  return {{"local_case", "WEE-2026-0042"},
          {"basis", "consent-legal-representative"},
          {"legal_article", "PIPA 22-2"},
          {"consenters", {"guardian"}},
          {"subject_assent", true},
          {"purposes", {"counseling"}},
          {"categories", {"identity", "contact", "incident-summary"}},
          {"recipient_types", {"counseling-center"}},
          {"valid_days", 90},
          {"operator", "wee-teacher-1"}};
}

// Paths 1 and 5: referral with consent, access notice, states; refusals; withdrawal.
TEST_F(WorkflowTest, WeeReferralToCounselingThenConsentWithdrawn) {
  AgentDaemon& wee = A("seoul-wee-01");
  AgentDaemon& counsel = A("seoul-counsel");
  Json consent = wee.Ok("POST", "/v1/consents", WeeConsent());
  std::string grant = consent["grant_id"];
  std::string case_ref = consent["case_ref"];
  ASSERT_FALSE(grant.empty());
  Json referral = {{"grant_id", grant},
                   {"to", "seoul-counsel"},
                   {"purpose", "counseling"},
                   {"fields",
                    {{{"category", "identity"}, {"name", "student"}, {"value", "Kim, grade 8"}},
                     {{"category", "incident-summary"},
                      {"name", "summary"},
                      {"value", "threats after image sharing"}}}},
                   {"operator", "wee-teacher-1"}};
  // Refusals at the sending agent: a field outside the consent, a recipient outside it.
  Json health = referral;
  health["fields"].push_back({{"category", "health"}, {"name", "diagnosis"}, {"value", "x"}});
  wee.Refused("POST", "/v1/referrals", health, 403, "diagnosis");
  Json police = referral;
  police["to"] = "seoul-police-03";
  wee.Refused("POST", "/v1/referrals", police, 403, "seoul-police-03");
  // Missing token.
  EXPECT_EQ(wee.Call("GET", "/v1/referrals", nullptr, /*with_token=*/false).status, 401);

  Json sent = wee.Ok("POST", "/v1/referrals", referral);
  std::string rid = sent["referral_id"];
  EXPECT_EQ(sent["state"], "requested");

  Json inbox = counsel.WaitFor(
      "/v1/inbox", [&](const Json& l) { return FindBy(l, "kind", "referral") != nullptr; },
      "the referral");
  std::string mid = (*FindBy(inbox, "kind", "referral"))["message_id"];
  EXPECT_EQ((*FindBy(inbox, "kind", "referral"))["from"], "seoul-wee-01");
  Json opened = counsel.Ok("POST", "/v1/messages/" + mid + "/open", {{"operator", "counselor-7"}});
  EXPECT_EQ(opened["content"]["fields"][1]["value"], "threats after image sharing");
  // The Wee center is told who opened it.
  wee.WaitFor(
      "/v1/cases/" + case_ref, [&](const Json& c) { return !c["access_notices"].empty(); },
      "the access notice");
  Json wcase = wee.Ok("GET", "/v1/cases/WEE-2026-0042");
  // The API token is the service account: the operator it names is recorded as such.
  EXPECT_EQ(wcase["access_notices"][0]["operator"], "service:counselor-7");
  EXPECT_EQ(wcase["access_notices"][0]["agency"], "seoul-counsel");

  // Illegal transitions: the receiver cannot complete a requested referral, the referrer
  // cannot accept its own, a decline needs a reason.
  counsel.Refused("POST", "/v1/referrals/" + rid + "/state",
                  {{"state", "completed"}, {"operator", "counselor-7"}}, 409, "accepted");
  wee.Refused("POST", "/v1/referrals/" + rid + "/state",
              {{"state", "accepted"}, {"operator", "wee-teacher-1"}}, 409, "referring agency");
  counsel.Refused("POST", "/v1/referrals/" + rid + "/state",
                  {{"state", "declined"}, {"operator", "counselor-7"}}, 409, "reason");
  for (const char* st : {"accepted", "in-progress"}) {
    counsel.Ok("POST", "/v1/referrals/" + rid + "/state",
               {{"state", st}, {"operator", "counselor-7"}});
  }
  wee.WaitFor(
      "/v1/referrals",
      [&](const Json& l) {
        const Json* r = FindBy(l, "referral_id", rid);
        return r != nullptr && (*r)["state"] == "in-progress";
      },
      "the referral in progress at the Wee center");

  // Path 5: the guardian withdraws consent.
  Json revoked = wee.Ok("POST", "/v1/consents/" + grant + "/revoke",
                        {{"reason", "withdrawn-by-guardian"}, {"operator", "wee-teacher-1"}});
  EXPECT_EQ(revoked["notified"], Json({"seoul-counsel"}));
  counsel.WaitFor(
      "/v1/inbox",
      [&](const Json& l) {
        const Json* m = FindBy(l, "message_id", mid);
        return m != nullptr && (*m)["status"] == "purged";
      },
      "the purge at the counseling center");
  counsel.Refused("POST", "/v1/messages/" + mid + "/open", {{"operator", "counselor-7"}}, 409,
                  "purged");
  Json purge = wee.WaitFor(
      "/v1/cases/" + case_ref, [&](const Json& c) { return !c["purge_confirmations"].empty(); },
      "the purge confirmation");
  EXPECT_EQ(purge["purge_confirmations"][0]["agency"], "seoul-counsel");
  EXPECT_GE(purge["purge_confirmations"][0]["messages_purged"].get<int>(), 1);
  Json refs = counsel.Ok("GET", "/v1/referrals");
  EXPECT_EQ((*FindBy(refs, "referral_id", rid))["state"], "withdrawn");
  // Nothing more under the revoked grant.
  Json again = referral;
  wee.Refused("POST", "/v1/referrals", again, 403, "revoked");

  auto log = StopBrokerAndReadAudit();
  EXPECT_EQ(Count(log, AuditEvent::kConsentGranted), 1u);
  EXPECT_EQ(Count(log, AuditEvent::kConsentRevoked), 1u);
  EXPECT_EQ(Count(log, AuditEvent::kEnvelopeOpened), 1u);
  EXPECT_EQ(Count(log, AuditEvent::kPurgeConfirmed), 1u);
  for (const auto& e : log) {
    EXPECT_EQ(e.detail.find("threats"), std::string::npos) << "case content in the audit log";
  }
  broker_->Start();  // TearDown stops it again
}

// Path 5 with onward sharing: the recorder told only the counseling center, which had
// shared onward with the support center; the revocation is forwarded and both purge.
TEST_F(WorkflowTest, RevocationReachesAgenciesThatReceivedDataOnward) {
  AgentDaemon& wee = A("seoul-wee-01");
  AgentDaemon& counsel = A("seoul-counsel");
  AgentDaemon& support = A("seoul-support");
  Json c = WeeConsent();
  c["recipient_types"] = {"counseling-center", "support-center"};
  c["onward_sharing"] = true;
  Json consent = wee.Ok("POST", "/v1/consents", c);
  std::string grant = consent["grant_id"];
  std::string case_ref = consent["case_ref"];
  Json fields = {{{"category", "incident-summary"}, {"name", "summary"}, {"value", "..."}}};
  wee.Ok("POST", "/v1/referrals",
         {{"grant_id", grant},
          {"to", "seoul-counsel"},
          {"purpose", "counseling"},
          {"fields", fields},
          {"operator", "wee-teacher-1"}});
  counsel.WaitFor(
      "/v1/consents", [&](const Json& l) { return FindBy(l, "grant_id", grant) != nullptr; },
      "the grant carried by the referral");
  counsel.Ok("POST", "/v1/referrals",
             {{"grant_id", grant},
              {"to", "seoul-support"},
              {"purpose", "counseling"},
              {"fields", fields},
              {"operator", "counselor-7"}});
  support.WaitFor(
      "/v1/inbox", [&](const Json& l) { return FindBy(l, "kind", "referral") != nullptr; },
      "the onward referral");
  Json revoked = wee.Ok("POST", "/v1/consents/" + grant + "/revoke",
                        {{"reason", "withdrawn-by-subject"}, {"operator", "wee-teacher-1"}});
  EXPECT_EQ(revoked["notified"], Json({"seoul-counsel"})) << "the recorder knows its direct share";
  support.WaitFor(
      "/v1/inbox",
      [&](const Json& l) {
        const Json* m = FindBy(l, "kind", "referral");
        return m != nullptr && (*m)["status"] == "purged";
      },
      "the purge at the support center");
  Json wcase = wee.WaitFor(
      "/v1/cases/" + case_ref, [&](const Json& k) { return k["purge_confirmations"].size() == 2; },
      "purge confirmations from both agencies");
  std::set<std::string> from;
  for (const auto& p : wcase["purge_confirmations"]) from.insert(p["agency"]);
  EXPECT_EQ(from, (std::set<std::string>{"seoul-counsel", "seoul-support"}));
}

// Paths 2, 3 and 6: police hand over to the support center, task the deletion center
// directly; per-item deletion status with running counts; the new lead closes the case.
TEST_F(WorkflowTest, PoliceHandoffDeletionStatusAndClose) {
  AgentDaemon& police = A("seoul-police-03");
  AgentDaemon& support = A("seoul-support");
  AgentDaemon& dsc = A("central-dsc");
  Json consent =
      police.Ok("POST", "/v1/consents",
                {{"local_case", "SPD-2026-118"},
                 {"basis", "police-notify-support-center"},
                 {"legal_article", "Youth Sex Offense Act 38, 38-2"},
                 {"purposes", {"counseling", "legal", "deletion"}},
                 {"categories",
                  {"incident-summary", "investigation", "content-locations", "deletion-status"}},
                 {"recipient_types", {"support-center", "deletion-center"}},
                 {"operator", "officer-park"}});
  std::string grant = consent["grant_id"];
  std::string case_ref = consent["case_ref"];
  Json ho = police.Ok(
      "POST", "/v1/handoffs",
      {{"grant_id", grant},
       {"to", "seoul-support"},
       {"reason", "victim support after report"},
       {"fields", {{{"category", "investigation"}, {"name", "case"}, {"value", "SPD-118"}}}},
       {"operator", "officer-park"}});
  std::string hid = ho["handoff_id"];
  Json del =
      police.Ok("POST", "/v1/deletions",
                {{"grant_id", grant},
                 {"to", "central-dsc"},
                 {"items",
                  {{{"item_id", "v1"}, {"url", "https://video.example/a"}, {"platform", "video-a"}},
                   {{"item_id", "v2"}, {"url", "https://video.example/b"}},
                   {{"item_id", "v3"}, {"url", "https://forum.example/t/9"}}}},
                 {"report_to", {"seoul-support"}},
                 {"monitor", true},
                 {"operator", "officer-park"}});
  std::string qid = del["request_id"];

  // The support center takes the lead.
  support.WaitFor(
      "/v1/cases/" + case_ref, [&](const Json& c) { return !c["handoffs"].empty(); },
      "the handoff");
  // Only the lead may close; the support center is not the lead yet.
  support.Refused("POST", "/v1/cases/" + case_ref + "/close",
                  {{"reason", "done"}, {"operator", "sc-lee"}}, 409, "led by");
  support.Ok("POST", "/v1/handoffs/" + hid + "/ack", {{"accepted", true}, {"operator", "sc-lee"}});
  police.WaitFor(
      "/v1/cases/" + case_ref, [&](const Json& c) { return c["lead"] == "seoul-support"; },
      "the lead moving to the support center");

  // Path 3: the deletion center reports per item, twice.
  dsc.WaitFor(
      "/v1/deletions", [&](const Json& l) { return FindBy(l, "request_id", qid) != nullptr; },
      "the deletion request");
  dsc.Ok("POST", "/v1/deletions/" + qid + "/status",
         {{"updates",
           {{{"item_id", "v1"}, {"status", "received"}},
            {{"item_id", "v2"}, {"status", "received"}},
            {{"item_id", "v3"}, {"status", "received"}}}},
          {"operator", "dsc-han"}});
  Json second = dsc.Ok("POST", "/v1/deletions/" + qid + "/status",
                       {{"updates",
                         {{{"item_id", "v1"}, {"status", "removed"}},
                          {{"item_id", "v2"}, {"status", "notified"}},
                          {{"item_id", "v3"}, {"status", "reappeared"}}}},
                        {"operator", "dsc-han"}});
  // Report 1 was the center's own "whole list held" report (PROTOCOL.md 10.1).
  EXPECT_EQ(second["report_seq"], 3);
  EXPECT_EQ(second["counts"]["removed"], 1);
  dsc.Refused("POST", "/v1/deletions/" + qid + "/status",
              {{"updates", {{{"item_id", "v9"}, {"status", "removed"}}}}, {"operator", "dsc-han"}},
              404, "v9");
  for (AgentDaemon* a : {&police, &support}) {
    Json l = a->WaitFor(
        "/v1/deletions",
        [&](const Json& list) {
          const Json* d = FindBy(list, "request_id", qid);
          return d != nullptr && (*d)["report_seq"] == 3;
        },
        "the second status report");
    const Json& d = *FindBy(l, "request_id", qid);
    EXPECT_EQ(d["items"]["v1"], "removed");
    EXPECT_EQ(d["items"]["v3"], "reappeared");
    EXPECT_EQ(d["counts"]["notified"], 1);
    EXPECT_EQ(d["counts"]["reappeared"], 1);
  }

  // Path 6: the lead closes the case; everyone involved is told.
  Json closed = support.Ok("POST", "/v1/cases/" + case_ref + "/close",
                           {{"reason", "support completed"}, {"operator", "sc-lee"}});
  // The police (handoff) and the deletion center (its status reports reached the support
  // center) are the agencies involved.
  EXPECT_EQ(closed["notified"], Json({"central-dsc", "seoul-police-03"}));
  police.WaitFor(
      "/v1/cases/SPD-2026-118", [&](const Json& c) { return c.value("closed", false); },
      "the case closed at the police");
}

// Path 4: the counseling center refers onward under its own consent; the emergency
// override needs a countersignature; an expired grant refuses.
TEST_F(WorkflowTest, CounselingRefersOnwardAndOverrideNeedsCountersignature) {
  AgentDaemon& counsel = A("seoul-counsel");
  AgentDaemon& support = A("seoul-support");
  Json consent = counsel.Ok("POST", "/v1/consents",
                            {{"basis", "consent-legal-representative"},
                             {"consenters", {"guardian"}},
                             {"subject_assent", true},
                             {"purposes", {"legal", "psychological", "family"}},
                             {"categories", {"identity", "incident-summary", "counseling-notes"}},
                             {"recipients", {"seoul-support"}},
                             {"operator", "counselor-7"}});
  std::string grant = consent["grant_id"];
  std::vector<std::string> rids;
  for (const char* purpose : {"legal", "psychological", "family"}) {
    Json r = counsel.Ok(
        "POST", "/v1/referrals",
        {{"grant_id", grant},
         {"to", "seoul-support"},
         {"purpose", purpose},
         {"fields", {{{"category", "counseling-notes"}, {"name", "notes"}, {"value", "..."}}}},
         {"operator", "counselor-7"}});
    rids.push_back(r["referral_id"]);
  }
  Json refs = support.WaitFor(
      "/v1/referrals",
      [&](const Json& l) {
        for (const auto& id : rids) {
          if (FindBy(l, "referral_id", id) == nullptr) return false;
        }
        return true;
      },
      "three onward referrals");
  EXPECT_EQ((*FindBy(refs, "referral_id", rids[1]))["purpose"], "psychological");
  support.Ok("POST", "/v1/referrals/" + rids[2] + "/state",
             {{"state", "declined"}, {"reason", "no family service here"}, {"operator", "sc-lee"}});
  // Every other state: legal support is accepted, paused (with a reason), resumed and
  // completed; the counseling center cancels the psychological referral.
  support.Ok("POST", "/v1/referrals/" + rids[0] + "/state",
             {{"state", "accepted"}, {"operator", "sc-lee"}});
  support.Refused("POST", "/v1/referrals/" + rids[0] + "/state",
                  {{"state", "on-hold"}, {"operator", "sc-lee"}}, 409, "reason");
  support.Ok("POST", "/v1/referrals/" + rids[0] + "/state",
             {{"state", "on-hold"}, {"reason", "lawyer on leave"}, {"operator", "sc-lee"}});
  for (const char* st : {"in-progress", "completed"}) {
    support.Ok("POST", "/v1/referrals/" + rids[0] + "/state",
               {{"state", st}, {"operator", "sc-lee"}});
  }
  support.Refused("POST", "/v1/referrals/" + rids[0] + "/state",
                  {{"state", "in-progress"}, {"operator", "sc-lee"}}, 409, "final");
  counsel.Ok(
      "POST", "/v1/referrals/" + rids[1] + "/state",
      {{"state", "cancelled"}, {"reason", "family moved away"}, {"operator", "counselor-7"}});
  support.WaitFor(
      "/v1/referrals",
      [&](const Json& l) {
        const Json* r = FindBy(l, "referral_id", rids[1]);
        return r != nullptr && (*r)["state"] == "cancelled";
      },
      "the cancellation at the support center");
  Json legal = counsel.WaitFor(
      "/v1/referrals",
      [&](const Json& l) {
        const Json* r = FindBy(l, "referral_id", rids[0]);
        return r != nullptr && (*r)["state"] == "completed";
      },
      "the completed legal referral");
  const Json& history = (*FindBy(legal, "referral_id", rids[0]))["history"];
  std::vector<std::string> states;
  for (const auto& h : history) states.push_back(h["to"]);
  EXPECT_EQ(states, (std::vector<std::string>{"requested", "accepted", "on-hold", "in-progress",
                                              "completed"}));
  // Reasons are sealed at rest: the list does not show them, the recorded read does.
  EXPECT_EQ(history[2]["reason"].get<std::string>().rfind("[sealed", 0), 0u);
  Json read = counsel.Ok(
      "POST", "/v1/cases/" + FindBy(legal, "referral_id", rids[0])->value("case_ref", "") + "/read",
      {{"operator", "counselor-7"}});
  const Json* legal_read = FindBy(read["referrals"], "referral_id", rids[0]);
  ASSERT_NE(legal_read, nullptr);
  EXPECT_EQ((*legal_read)["history"][2]["reason"], "lawyer on leave");
  counsel.WaitFor(
      "/v1/referrals",
      [&](const Json& l) {
        const Json* r = FindBy(l, "referral_id", rids[2]);
        return r != nullptr && (*r)["state"] == "declined";
      },
      "the decline");

  // Emergency override: refused without a countersignature, accepted with one.
  Json emergency = {{"basis", "emergency-life-safety"},
                    {"legal_article", "PIPA 18(2)3"},
                    {"emergency_override", true},
                    {"purposes", {"emergency"}},
                    {"categories", {"identity", "contact"}},
                    {"recipient_types", {"support-center"}},
                    {"expires_in_ms", 3600000},
                    {"operator", "counselor-7"}};
  counsel.Refused("POST", "/v1/consents", emergency, 409, "countersignature");
  auto sup = keys::Identity::Generate("counsel-supervisor", schema::PartyKind::kAgency,
                                      SystemClock::Get().NowMillis(), kMillisPerDay);
  ASSERT_TRUE(sup.ok());
  // A key file outside the daemon's operator-keys folder is never read.
  std::string outside = root_ + "/supervisor.key";
  ASSERT_TRUE(keys::SaveIdentity(*sup, outside, nullptr).ok());
  emergency["countersigner_key"] = "../../supervisor.key";
  emergency["countersigner_operator"] = "supervisor-2";
  counsel.Refused("POST", "/v1/consents", emergency, 400, "operator-keys");
  std::filesystem::create_directories(counsel.data_dir() + "/operator-keys");
  ASSERT_TRUE(
      keys::SaveIdentity(*sup, counsel.data_dir() + "/operator-keys/supervisor.key", nullptr).ok());
  emergency["countersigner_key"] = "supervisor.key";
  emergency["countersigner_operator"] = "supervisor-2";
  Json em = counsel.Ok("POST", "/v1/consents", emergency);
  EXPECT_TRUE(em["emergency_override"].get<bool>());

  // A grant that expires: sharing is refused once it has.
  Json brief = {{"basis", "consent-subject"},      {"consenters", {"subject"}},
                {"purposes", {"legal"}},           {"categories", {"incident-summary"}},
                {"recipients", {"seoul-support"}}, {"expires_in_ms", 1500},
                {"operator", "counselor-7"}};
  std::string short_grant = counsel.Ok("POST", "/v1/consents", brief)["grant_id"];
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  counsel.Refused("POST", "/v1/referrals",
                  {{"grant_id", short_grant},
                   {"to", "seoul-support"},
                   {"purpose", "legal"},
                   {"operator", "counselor-7"}},
                  403, "expired");

  auto log = StopBrokerAndReadAudit();
  size_t overrides = 0;
  for (const auto& e : log) {
    if (e.event == AuditEvent::kConsentGranted && e.emergency_override) ++overrides;
  }
  EXPECT_EQ(overrides, 1u) << "the override must be flagged for auditors";
  broker_->Start();
}

}  // namespace
}  // namespace refbus::testing
