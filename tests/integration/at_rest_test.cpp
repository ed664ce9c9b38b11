// Case text at rest (issue 17 items 3 and 9), across a real refbus-broker and real
// refbus-agent daemons driven through their local APIs:
//   - unique text planted in every free-text field of every workflow message is found in
//     no file under the federation's folder (LMDB files with their freed pages, logs,
//     keys, the broker's store, backups made with refbus-agent backup), before and after
//     a revocation; the lists of the API do not return it; the recorded read does;
//   - after the purge the grant's data key is gone and no sealed value left anywhere
//     (files and backups) opens under any key the agency still holds;
//   - a grant whose retention has passed is purged like a revoked one: key destroyed,
//     a signed purge confirmation to the recorder and to the broker's audit log.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "agent/case_crypto.h"
#include "agent/case_store.h"
#include "agent/records.h"
#include "broker/store.h"
#include "keys/secret.h"
#include "schema/codec.h"
#include "tests/integration/agent_daemon.h"
#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

using schema::AgencyType;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every regular file under root whose bytes contain needle.
std::vector<std::string> FilesContaining(const std::string& root, const std::string& needle) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    if (Slurp(e.path().string()).find(needle) != std::string::npos) {
      out.push_back(e.path().string());
    }
  }
  return out;
}

// A sealed value as the case store writes it, found in raw bytes (live or freed pages).
struct FoundSealed {
  std::string file;
  agent::SealedText sealed;
  std::string place;
};

std::vector<FoundSealed> SealedValuesUnder(const std::string& root) {
  static const std::regex kSealed(
      R"re(^\{"at":"([^"]{1,300})","box":"([0-9a-f]{32,8192})","grant":"([0-9a-f]{32})","nonce":"([0-9a-f]{48})"\})re");
  std::vector<FoundSealed> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    std::string bytes = Slurp(e.path().string());
    for (size_t at = bytes.find("{\"at\":\""); at != std::string::npos;
         at = bytes.find("{\"at\":\"", at + 1)) {
      std::string window = bytes.substr(at, 9000);
      std::smatch m;
      if (!std::regex_search(window, m, kSealed)) continue;
      FoundSealed f;
      f.file = e.path().string();
      f.place = m[1];
      f.sealed.grant_id = m[3];
      f.sealed.box = *HexDecode(m[2].str());
      f.sealed.nonce = *HexDecode(m[4].str());
      out.push_back(std::move(f));
    }
  }
  return out;
}

class AtRestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(keys::InitSodium().ok());
    root_ = MakeTempDir("refbus-at-rest-test");
    ASSERT_TRUE(fed_.Create(root_, {"seoul-broker"},
                            {{"seoul-wee-01", AgencyType::kWeeCenter, "seoul-broker"},
                             {"seoul-counsel", AgencyType::kCounselingCenter, "seoul-broker"},
                             {"central-dsc", AgencyType::kDeletionCenter, "seoul-broker"}}));
    broker_ = std::make_unique<Broker>(fed_, "seoul-broker", root_ + "/seoul-data");
    broker_->set_policy("allow_unscoped_opaque = false");
    ASSERT_TRUE(broker_->Start());
    for (const char* id : {"seoul-wee-01", "seoul-counsel", "central-dsc"}) {
      agents_[id] = std::make_unique<AgentDaemon>(fed_, id, root_, broker_->endpoint());
      ASSERT_TRUE(agents_[id]->Start()) << id;
    }
    for (auto& [id, a] : agents_) {
      a->WaitForSession();
    }
    token_ = "plant" + HexEncode(keys::RandomBytes(8));
  }
  void TearDown() override {
    for (auto& [id, a] : agents_) EXPECT_EQ(a->Stop(), 0) << id << " did not stop cleanly";
    agents_.clear();
    broker_.reset();
    if (!HasFailure()) RemoveTree(root_);
  }
  AgentDaemon& A(const std::string& id) { return *agents_.at(id); }
  std::string Plant(const std::string& field) const { return token_ + "-" + field; }

  // refbus-agent backup of the agency's stores into root/backups/<tag>-<id>.
  void Backup(AgentDaemon& a, const std::string& tag) {
    std::string out = root_ + "/backups/" + tag + "-" + a.id();
    std::filesystem::create_directories(root_ + "/backups");
    Process p;
    ASSERT_TRUE(p.Start({BinDir() + "/refbus-agent", "backup", "-c", a.config_path(), "--out", out},
                        out + ".log"));
    ASSERT_EQ(p.Wait(Scaled(30000)), 0) << "refbus-agent backup failed: " << Slurp(out + ".log");
  }

  // No file anywhere under the federation's folder holds any planted text.
  void ExpectPlantedTextNowhere(const std::string& when) {
    auto found = FilesContaining(root_, token_);
    std::string list;
    for (const auto& f : found) list += "\n  " + f;
    EXPECT_TRUE(found.empty()) << when << ": planted case text found in the clear in "
                               << found.size() << " file(s):" << list;
  }

  std::string root_;
  Federation fed_;
  std::unique_ptr<Broker> broker_;
  std::map<std::string, std::unique_ptr<AgentDaemon>> agents_;
  std::string token_;
};

// Drives every workflow message that carries free text, with planted text in each field.
// Returns {grant, case_ref}.
std::pair<std::string, std::string> RunFlows(AtRestTest* t, AgentDaemon& wee, AgentDaemon& counsel,
                                             AgentDaemon& dsc,
                                             const std::function<std::string(std::string)>& plant) {
  Json consent = wee.Ok(
      "POST", "/v1/consents",
      {{"basis", "consent-legal-representative"},
       {"consenters", {"guardian"}},
       {"subject_assent", true},
       {"purposes", {"counseling", "deletion"}},
       {"categories", {"identity", "incident-summary", "content-locations", "deletion-status"}},
       {"recipient_types", {"counseling-center", "deletion-center"}},
       {"valid_days", 90},
       {"operator", "wee-teacher-1"}});
  std::string grant = consent["grant_id"];
  std::string case_ref = consent["case_ref"];
  auto referral = [&](const std::string& n) {
    Json r = wee.Ok("POST", "/v1/referrals",
                    {{"grant_id", grant},
                     {"to", "seoul-counsel"},
                     {"purpose", "counseling"},
                     {"fields",
                      {{{"category", "identity"},
                        {"name", plant("field-name-" + n)},
                        {"value", plant("field-value-" + n)}}}},
                     {"operator", "wee-teacher-1"}});
    std::string rid = r["referral_id"];
    counsel.WaitFor(
        "/v1/referrals", [&](const Json& l) { return FindBy(l, "referral_id", rid) != nullptr; },
        "referral " + n);
    return rid;
  };
  auto state = [&](AgentDaemon& who, AgentDaemon& other, const std::string& rid,
                   const std::string& to, const std::string& reason) {
    Json body = {{"state", to}, {"operator", "op"}};
    if (!reason.empty()) body["reason"] = plant(reason);
    who.Ok("POST", "/v1/referrals/" + rid + "/state", body);
    other.WaitFor(
        "/v1/referrals",
        [&](const Json& l) {
          const Json* r = FindBy(l, "referral_id", rid);
          return r != nullptr && (*r)["state"] == to;
        },
        "referral " + rid + " " + to + " at " + other.id());
  };
  // Decline; accept, hold, cancel.
  std::string r1 = referral("1");
  Json inbox = counsel.Ok("GET", "/v1/inbox");
  counsel.Ok("POST",
             "/v1/messages/" +
                 (*FindBy(inbox, "kind", "referral"))["message_id"].get<std::string>() + "/open",
             {{"operator", "counselor-7"}});
  state(counsel, wee, r1, "declined", "decline-reason");
  std::string r2 = referral("2");
  state(counsel, wee, r2, "accepted", "");
  state(counsel, wee, r2, "on-hold", "hold-reason");
  state(wee, counsel, r2, "cancelled", "cancel-reason");
  // A handoff, refused with a reason.
  Json ho = wee.Ok("POST", "/v1/handoffs",
                   {{"grant_id", grant},
                    {"to", "seoul-counsel"},
                    {"reason", plant("handoff-reason")},
                    {"fields",
                     {{{"category", "incident-summary"},
                       {"name", plant("handoff-field-name")},
                       {"value", plant("handoff-field-value")}}}},
                    {"operator", "wee-teacher-1"}});
  std::string hid = ho["handoff_id"];
  counsel.WaitFor(
      "/v1/cases/" + case_ref, [&](const Json& c) { return !c["handoffs"].empty(); },
      "the handoff");
  counsel.Ok("POST", "/v1/handoffs/" + hid + "/ack",
             {{"accepted", false}, {"reason", plant("handoff-refusal")}, {"operator", "c-7"}});
  wee.WaitFor(
      "/v1/cases/" + case_ref,
      [&](const Json& c) {
        return !c["handoffs"].empty() && c["handoffs"][0]["state"] == "refused";
      },
      "the handoff refused");
  // A deletion request and a status report.
  Json del = wee.Ok("POST", "/v1/deletions",
                    {{"grant_id", grant},
                     {"to", "central-dsc"},
                     {"items",
                      {{{"item_id", "v1"},
                        {"url", "https://video.example/" + plant("url")},
                        {"platform", plant("platform")}}}},
                     {"monitor", true},
                     {"operator", "wee-teacher-1"}});
  std::string qid = del["request_id"];
  dsc.WaitFor(
      "/v1/deletions", [&](const Json& l) { return FindBy(l, "request_id", qid) != nullptr; },
      "the deletion request");
  dsc.Ok("POST", "/v1/deletions/" + qid + "/status",
         {{"updates", {{{"item_id", "v1"}, {"status", "removed"}}}}, {"operator", "dsc-han"}});
  wee.WaitFor(
      "/v1/deletions",
      [&](const Json& l) {
        const Json* d = FindBy(l, "request_id", qid);
        return d != nullptr && (*d)["report_seq"] == 1;
      },
      "the status report");
  // The case is closed with a reason; both agencies are told.
  wee.Ok("POST", "/v1/cases/" + case_ref + "/close",
         {{"reason", plant("close-reason")}, {"operator", "wee-teacher-1"}});
  for (AgentDaemon* a : {&counsel, &dsc}) {
    a->WaitFor(
        "/v1/cases/" + case_ref, [&](const Json& c) { return c.value("closed", false); },
        "the case closed at " + a->id());
  }
  (void)t;
  return {grant, case_ref};
}

TEST_F(AtRestTest, PlantedCaseTextIsSealedAtRestAndShreddedByThePurge) {
  AgentDaemon& wee = A("seoul-wee-01");
  AgentDaemon& counsel = A("seoul-counsel");
  AgentDaemon& dsc = A("central-dsc");
  auto flows = RunFlows(this, wee, counsel, dsc, [this](const std::string& f) { return Plant(f); });
  const std::string grant = flows.first;
  const std::string case_ref = flows.second;

  // The lists answer without the text.
  for (AgentDaemon* a : {&wee, &counsel, &dsc}) {
    for (const std::string& path :
         std::vector<std::string>{"/v1/referrals", "/v1/cases/" + case_ref, "/v1/deletions"}) {
      std::string body = a->Ok("GET", path).dump();
      EXPECT_EQ(body.find(token_), std::string::npos)
          << a->id() << " GET " << path << " returns case text without an access record";
    }
  }
  // The recorded read shows it, and the read is on the case's timeline.
  Json read = counsel.Ok("POST", "/v1/cases/" + case_ref + "/read", {{"operator", "counselor-7"}});
  EXPECT_NE(read.dump().find(Plant("decline-reason")), std::string::npos) << read.dump();
  EXPECT_NE(read.dump().find(Plant("close-reason")), std::string::npos) << read.dump();
  EXPECT_NE(read.dump().find(Plant("handoff-reason")), std::string::npos) << read.dump();
  Json wee_read =
      wee.Ok("POST", "/v1/cases/" + case_ref + "/read", {{"operator", "wee-teacher-1"}});
  EXPECT_NE(wee_read.dump().find(Plant("handoff-refusal")), std::string::npos) << wee_read.dump();
  EXPECT_NE(wee_read.dump().find(Plant("cancel-reason")), std::string::npos) << wee_read.dump();
  bool recorded = false;
  Json after_read = counsel.Ok("GET", "/v1/cases/" + case_ref);
  for (const auto& e : after_read["timeline"]) {
    recorded = recorded || (e.value("event", "") == "case-text-read" &&
                            e.value("operator", "") == "service:counselor-7");
  }
  EXPECT_TRUE(recorded) << "the read of the case's text is not recorded";
  counsel.Refused("POST", "/v1/cases/" + case_ref + "/read", Json::object(), 400, "operator");
  for (auto& [id, a] : agents_) Backup(*a, "before");
  ExpectPlantedTextNowhere("before the revocation");
  // The text is there, sealed: it opens under the counseling center's key for the grant.
  auto counsel_sealed = SealedValuesUnder(counsel.data_dir());
  auto keys_c = agent::GrantKeys::Open(counsel.grant_key_dir(), fed_.LoadIdentity("seoul-counsel"));
  ASSERT_TRUE(keys_c.ok()) << keys_c.status().ToString();
  size_t opened = 0;
  for (const auto& f : counsel_sealed) {
    auto text = (*keys_c)->Unseal(f.sealed, f.place);
    if (text.ok() && text->find(token_) == 0) ++opened;
  }
  EXPECT_GE(opened, 4u)
      << "the decline, hold, handoff and close text, sealed at the counseling center";

  // Revocation: both recipients purge and confirm.
  wee.Ok("POST", "/v1/consents/" + grant + "/revoke",
         {{"reason", "withdrawn-by-guardian"}, {"operator", "wee-teacher-1"}});
  wee.WaitFor(
      "/v1/cases/" + case_ref, [&](const Json& c) { return c["purge_confirmations"].size() == 2; },
      "purge confirmations from both recipients");
  for (auto& [id, a] : agents_) Backup(*a, "after");
  ExpectPlantedTextNowhere("after the revocation");
  // Nowhere a copy of the destroyed key file: not in the data folders, not in a backup.
  for (const auto& e : std::filesystem::recursive_directory_iterator(root_)) {
    const std::string name = e.path().filename().string();
    if (name == grant + ".key") {
      EXPECT_NE(e.path().string().find("/seoul-wee-01-agent/"), std::string::npos)
          << "a copy of the purged grant's data key: " << e.path();
    }
  }
  for (AgentDaemon* a : {&counsel, &dsc}) {
    EXPECT_FALSE(std::filesystem::exists(a->grant_key_dir() + "/" + grant + ".key"))
        << a->id() << " still holds the purged grant's data key";
    auto k = agent::GrantKeys::Open(a->grant_key_dir(), fed_.LoadIdentity(a->id()));
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    auto remaining = (*k)->Grants();
    ASSERT_TRUE(remaining.ok());
    std::vector<FoundSealed> all = SealedValuesUnder(a->data_dir());
    auto in_backups = SealedValuesUnder(root_ + "/backups");
    all.insert(all.end(), in_backups.begin(), in_backups.end());
    EXPECT_FALSE(all.empty()) << a->id() << ": no sealed value found to try";
    for (const auto& g : *remaining) {
      auto key = (*k)->KeyOf(g);
      ASSERT_TRUE(key.ok()) << key.status().ToString();
      for (const auto& f : all) {
        std::string text;
        bool opens = agent::TryUnseal(f.sealed, f.place, (*key)->data(), &text) &&
                     text.find(token_) != std::string::npos;
        EXPECT_FALSE(opens) << a->id() << ": " << f.file << " still opens under grant " << g;
      }
    }
    // The API says the text was purged.
    Json c = a->Ok("POST", "/v1/cases/" + case_ref + "/read", {{"operator", "auditor"}});
    EXPECT_NE(c.dump().find("purged"), std::string::npos) << c.dump();
  }
}

// A store written before case text was sealed: its plain reasons are sealed at the next
// start (the list no longer shows them; the recorded read still does).
TEST_F(AtRestTest, PlainReasonsOfAnOlderStoreAreSealedAtStart) {
  AgentDaemon& wee = A("seoul-wee-01");
  AgentDaemon& counsel = A("seoul-counsel");
  Json consent = wee.Ok("POST", "/v1/consents",
                        {{"basis", "consent-subject"},
                         {"consenters", {"subject"}},
                         {"purposes", {"counseling"}},
                         {"categories", {"identity"}},
                         {"recipient_types", {"counseling-center"}},
                         {"operator", "wee-teacher-1"}});
  std::string case_ref = consent["case_ref"];
  Json sent = wee.Ok("POST", "/v1/referrals",
                     {{"grant_id", consent["grant_id"]},
                      {"to", "seoul-counsel"},
                      {"purpose", "counseling"},
                      {"fields", {{{"category", "identity"}, {"name", "n"}, {"value", "v"}}}},
                      {"operator", "wee-teacher-1"}});
  std::string rid = sent["referral_id"];
  counsel.WaitFor(
      "/v1/referrals", [&](const Json& l) { return FindBy(l, "referral_id", rid) != nullptr; },
      "the referral");
  counsel.Ok("POST", "/v1/referrals/" + rid + "/state",
             {{"state", "declined"}, {"reason", "sealed now"}, {"operator", "c-7"}});
  ASSERT_EQ(counsel.Stop(), 0);
  {
    // What an older version wrote: the decline reason in the clear.
    auto store = agent::CaseStore::Open(counsel.data_dir() + "/cases");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto txn = (*store)->Begin(true);
    ASSERT_TRUE(txn.ok());
    auto rec = agent::Load<agent::ReferralRecord>(*txn, rid);
    ASSERT_TRUE(rec.ok() && rec->has_value());
    ASSERT_EQ((*rec)->history.size(), 2u);
    (*rec)->history[1].reason = agent::CaseText{Plant("legacy-decline"), std::nullopt};
    ASSERT_TRUE(agent::Save(*txn, rid, **rec).ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  ASSERT_TRUE(counsel.Start());
  Json list = counsel.Ok("GET", "/v1/referrals");
  EXPECT_EQ(list.dump().find(token_), std::string::npos)
      << "an older store's plain reason is still shown (and stored) in the clear: " << list.dump();
  Json read = counsel.Ok("POST", "/v1/cases/" + case_ref + "/read", {{"operator", "c-7"}});
  EXPECT_NE(read.dump().find(Plant("legacy-decline")), std::string::npos) << read.dump();
}

// Item 9: a grant whose retention passed is purged at the recipient (and the recorder):
// the data key destroyed, the message tombstoned, a signed purge confirmation to the
// recorder and to the broker's audit log.
TEST_F(AtRestTest, RetentionPassedPurgesTheGrantsDataAndConfirms) {
  AgentDaemon& wee = A("seoul-wee-01");
  AgentDaemon& counsel = A("seoul-counsel");
  Json consent = wee.Ok("POST", "/v1/consents",
                        {{"basis", "consent-legal-representative"},
                         {"consenters", {"guardian"}},
                         {"subject_assent", true},
                         {"purposes", {"counseling"}},
                         {"categories", {"identity"}},
                         {"recipient_types", {"counseling-center"}},
                         {"retention_in_ms", Scaled(6000)},
                         {"operator", "wee-teacher-1"}});
  std::string grant = consent["grant_id"];
  std::string case_ref = consent["case_ref"];
  Json sent = wee.Ok("POST", "/v1/referrals",
                     {{"grant_id", grant},
                      {"to", "seoul-counsel"},
                      {"purpose", "counseling"},
                      {"fields", {{{"category", "identity"}, {"name", "n"}, {"value", "v"}}}},
                      {"operator", "wee-teacher-1"}});
  std::string rid = sent["referral_id"];
  counsel.WaitFor(
      "/v1/referrals", [&](const Json& l) { return FindBy(l, "referral_id", rid) != nullptr; },
      "the referral");
  counsel.Ok("POST", "/v1/referrals/" + rid + "/state",
             {{"state", "declined"}, {"reason", Plant("decline")}, {"operator", "c-7"}});
  EXPECT_TRUE(std::filesystem::exists(counsel.grant_key_dir() + "/" + grant + ".key"));
  // The retention passes: the counseling center purges and confirms to the recorder.
  Json wcase = wee.WaitFor(
      "/v1/cases/" + case_ref, [&](const Json& c) { return !c["purge_confirmations"].empty(); },
      "the purge confirmation after the retention passed", Scaled(20000));
  ASSERT_FALSE(wcase["purge_confirmations"].empty());
  EXPECT_EQ(wcase["purge_confirmations"][0]["agency"], "seoul-counsel");
  EXPECT_GE(wcase["purge_confirmations"][0]["messages_purged"].get<int>(), 1);
  Json inbox = counsel.Ok("GET", "/v1/inbox");
  const Json* m = FindBy(inbox, "kind", "referral");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ((*m)["status"], "purged");
  for (AgentDaemon* a : {&counsel, &wee}) {
    EXPECT_FALSE(std::filesystem::exists(a->grant_key_dir() + "/" + grant + ".key"))
        << a->id() << " still holds the grant's data key after its retention";
  }
  Json read = counsel.Ok("POST", "/v1/cases/" + case_ref + "/read", {{"operator", "c-7"}});
  EXPECT_EQ(read.dump().find(token_), std::string::npos) << read.dump();
  EXPECT_NE(read.dump().find("[purged"), std::string::npos) << read.dump();
  // The broker's audit log holds the signed purge record.
  for (auto& [id, a] : agents_) EXPECT_EQ(a->Stop(), 0) << id;
  agents_.clear();
  EXPECT_EQ(broker_->Stop(), 0);
  broker::StoreOptions o;
  o.dir = root_ + "/seoul-data";
  o.broker_id = "seoul-broker";
  auto store = broker::Store::Open(o);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  size_t purges = 0;
  auto n = (*store)->AuditSize();
  for (uint64_t i = 0; n.ok() && i < *n; ++i) {
    auto e = schema::DecodeAuditEntry(*(*store)->AuditEntryBytes(i));
    if (e.ok() && e->event == schema::AuditEvent::kPurgeConfirmed && e->actor == "seoul-counsel") {
      ++purges;
    }
  }
  EXPECT_GE(purges, 1u) << "no purge confirmation from the counseling center in the audit log";
}

}  // namespace
}  // namespace refbus::testing
