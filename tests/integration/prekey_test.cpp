// Prekey rotation across real refbus-broker and refbus-agent daemons (issue 17, item 4):
// a referral sealed to a prekey the receiving agent does not hold yet is retried, never
// refused for good.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <string>
#include <thread>

#include "agent/case_crypto.h"
#include "agent/transport_store.h"
#include "core/clock.h"
#include "keys/crypto.h"
#include "keys/directory.h"
#include "keys/keyfile.h"
#include "schema/codec.h"
#include "tests/integration/agent_daemon.h"
#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

using schema::AgencyType;

constexpr const char* kWee = "seoul-wee-01";
constexpr const char* kCounsel = "seoul-counsel";

Json PrekeyConsent() {
  return {{"local_case", "WEE-2026-0077"},
          {"basis", "consent-legal-representative"},
          {"consenters", {"guardian"}},
          {"subject_assent", true},
          {"purposes", {"counseling"}},
          {"categories", {"identity", "incident-summary"}},
          {"recipient_types", {"counseling-center"}},
          {"valid_days", 90},
          {"operator", "wee-teacher-1"}};
}

Json Referral(const std::string& grant, const std::string& summary) {
  return {{"grant_id", grant},
          {"to", kCounsel},
          {"purpose", "counseling"},
          {"fields", {{{"category", "incident-summary"}, {"name", "summary"}, {"value", summary}}}},
          {"operator", "wee-teacher-1"}};
}

class PrekeyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("refbus-prekey-test");
    ASSERT_TRUE(fed_.Create(root_, {"seoul-broker"},
                            {{kWee, AgencyType::kWeeCenter, "seoul-broker"},
                             {kCounsel, AgencyType::kCounselingCenter, "seoul-broker"}}));
    broker_ = std::make_unique<Broker>(fed_, "seoul-broker", root_ + "/seoul-data");
    broker_->set_policy("allow_unscoped_opaque = false");
    ASSERT_TRUE(broker_->Start());
    wee_ = std::make_unique<AgentDaemon>(fed_, kWee, root_, broker_->endpoint());
    counsel_ = std::make_unique<AgentDaemon>(fed_, kCounsel, root_, broker_->endpoint());
  }
  void TearDown() override {
    for (auto* a : {wee_.get(), counsel_.get()}) {
      if (a != nullptr && a->running()) {
        EXPECT_EQ(a->Stop(), 0) << a->id() << " did not stop cleanly";
      }
    }
    wee_.reset();
    counsel_.reset();
    broker_.reset();
    if (!HasFailure()) RemoveTree(root_);
  }
  void StartAgents() {
    for (auto* a : {wee_.get(), counsel_.get()}) {
      ASSERT_TRUE(a->Start()) << a->id();
      a->WaitForSession();
    }
  }
  // Waits until the agent has loaded directory serial >= serial.
  static void WaitForSerial(AgentDaemon& a, uint64_t serial) {
    a.WaitFor(
        "/v1/status",
        [&](const Json& s) { return s.value("directory_serial", uint64_t{0}) >= serial; },
        "directory serial " + std::to_string(serial));
  }
  // Waits for the message carrying the referral and opens it; returns its summary.
  static std::string OpenReferral(AgentDaemon& counsel, const std::string& message_id) {
    Json inbox = counsel.WaitFor(
        "/v1/inbox",
        [&](const Json& l) {
          const Json* m = FindBy(l, "message_id", message_id);
          return m != nullptr && (*m)["status"] != "waiting-for-prekey";
        },
        "message " + message_id);
    const Json* m = FindBy(inbox, "message_id", message_id);
    if (m == nullptr) return "";
    EXPECT_EQ((*m)["status"], "ok") << m->dump();
    Json opened =
        counsel.Ok("POST", "/v1/messages/" + message_id + "/open", {{"operator", "counselor-7"}});
    if (!opened.contains("content")) return "";
    return opened["content"]["fields"][0]["value"];
  }
  // refbus-keys party rotate-prekey in the party's folder, then the next directory.
  void RotatePrekeyByCli(const std::string& party) {
    Process keys;
    ASSERT_TRUE(
        keys.Start({BinDir() + "/refbus-keys", "party", "rotate-prekey", "--dir", fed_.Dir(party)},
                   root_ + "/keys.log"));
    ASSERT_EQ(keys.Wait(20000), 0) << "refbus-keys party rotate-prekey failed";
    ASSERT_TRUE(fed_.Reissue({}, {fed_.Dir(party) + "/" + keys::RecordFileName(party)}));
  }

  std::string root_;
  Federation fed_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<AgentDaemon> wee_, counsel_;
};

// The report: the counseling center rotates its prekey with the CLI while its agent
// runs, the authority issues the next directory, every party gets it and SIGHUP; the Wee
// center's next referral is sealed to the new prekey and must open at the counseling center.
TEST_F(PrekeyTest, PrekeyRotatedByCliWhileAgentRunsStillOpens) {
  StartAgents();
  Json consent = wee_->Ok("POST", "/v1/consents", PrekeyConsent());
  std::string grant = consent["grant_id"];
  Json before = wee_->Ok("POST", "/v1/referrals", Referral(grant, "before the rotation"));
  EXPECT_EQ(OpenReferral(*counsel_, before["message_id"]), "before the rotation");

  RotatePrekeyByCli(kCounsel);
  uint64_t serial = fed_.directory().serial;
  for (auto* a : {wee_.get(), counsel_.get()}) a->Signal(SIGHUP);
  WaitForSerial(*wee_, serial);
  WaitForSerial(*counsel_, serial);

  Json after = wee_->Ok("POST", "/v1/referrals", Referral(grant, "after the rotation"));
  EXPECT_EQ(OpenReferral(*counsel_, after["message_id"]), "after the rotation") << counsel_->Log();
}

// Without SIGHUP: the agent notices the new directory file by itself but not the key file;
// the referral sealed to the new prekey makes it read its key file again, and it opens.
// Before that, `open` answers "waiting for prekey" (503), never a permanent refusal.
TEST_F(PrekeyTest, UnknownPrekeyMakesAgentReadKeyFileAgain) {
  StartAgents();
  Json consent = wee_->Ok("POST", "/v1/consents", PrekeyConsent());
  std::string grant = consent["grant_id"];
  RotatePrekeyByCli(kCounsel);
  WaitForSerial(*wee_, fed_.directory().serial);
  Json after = wee_->Ok("POST", "/v1/referrals", Referral(grant, "sealed to the new prekey"));
  EXPECT_EQ(OpenReferral(*counsel_, after["message_id"]), "sealed to the new prekey")
      << counsel_->Log();
  EXPECT_NE(counsel_->Log().find("key file read again"), std::string::npos) << counsel_->Log();
}

// The prekey is made in a copy of the counseling center's folder, so the key file its agent
// reads does not hold it: the referral waits ("waiting-for-prekey"), `open` answers 503
// and says why, and a restart keeps it waiting. Once the key file with the prekey is put in
// place and the agent gets SIGHUP, it opens.
TEST_F(PrekeyTest, MessageWaitsUntilKeyFileHoldsPrekey) {
  StartAgents();
  Json consent = wee_->Ok("POST", "/v1/consents", PrekeyConsent());
  std::string grant = consent["grant_id"];
  std::string copy = root_ + "/counsel-copy";
  std::filesystem::copy(fed_.Dir(kCounsel), copy, std::filesystem::copy_options::recursive);
  {
    Process keys;
    ASSERT_TRUE(keys.Start({BinDir() + "/refbus-keys", "party", "rotate-prekey", "--dir", copy},
                           root_ + "/keys.log"));
    ASSERT_EQ(keys.Wait(20000), 0);
  }
  ASSERT_TRUE(fed_.Reissue({}, {copy + "/" + keys::RecordFileName(kCounsel)}));
  WaitForSerial(*wee_, fed_.directory().serial);
  WaitForSerial(*counsel_, fed_.directory().serial);
  Json sent = wee_->Ok("POST", "/v1/referrals", Referral(grant, "kept until the key is here"));
  std::string mid = sent["message_id"];
  auto waiting = [&](const Json& l) {
    const Json* m = FindBy(l, "message_id", mid);
    return m != nullptr && (*m)["status"] == "waiting-for-prekey";
  };
  counsel_->WaitFor("/v1/inbox", waiting, "the referral waiting for its prekey");
  counsel_->Refused("POST", "/v1/messages/" + mid + "/open", {{"operator", "counselor-7"}}, 503,
                    "waiting for prekey");
  ASSERT_EQ(counsel_->Stop(), 0);
  ASSERT_TRUE(counsel_->Start());
  counsel_->WaitFor("/v1/inbox", waiting, "the referral still waiting after a restart");

  std::filesystem::copy_file(copy + "/identity.key", fed_.Dir(kCounsel) + "/identity.key",
                             std::filesystem::copy_options::overwrite_existing);
  counsel_->Signal(SIGHUP);
  EXPECT_EQ(OpenReferral(*counsel_, mid), "kept until the key is here") << counsel_->Log();
}

// Forward secrecy without an operator: a prekey whose window ended (expired more than
// kPrekeyKeepAfterExpiryMs ago) and a retired key file whose prekeys all did are wiped by
// the agent at start, each with a log line; a retired file still in its window is kept.
TEST_F(PrekeyTest, AgentWipesPrekeysAndRetiredKeyFilesPastTheirWindow) {
  const UnixMillis now = SystemClock::Get().NowMillis();
  const UnixMillis day = kMillisPerDay;
  std::string key_path = fed_.Dir(kCounsel) + "/identity.key";
  keys::Identity me = fed_.LoadIdentity(kCounsel);
  auto old = me.AddPrekey(now - 70 * day, now - 40 * day - 1);  // window ended 1 ms ago
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  auto recent = me.AddPrekey(now - 50 * day, now - 20 * day);  // window ends in 10 days
  ASSERT_TRUE(recent.ok()) << recent.status().ToString();
  ASSERT_TRUE(keys::SaveIdentity(me, key_path, nullptr).ok());
  std::string retired = fed_.Dir(kCounsel) + "/retired";
  std::filesystem::create_directories(retired);
  auto gone = keys::Identity::Generate(kCounsel, schema::PartyKind::kAgency, now - 100 * day,
                                       keys::kPrekeyLifetimeMs);  // expired 70 days ago
  auto kept = keys::Identity::Generate(kCounsel, schema::PartyKind::kAgency, now - 40 * day,
                                       keys::kPrekeyLifetimeMs);  // expired 10 days ago
  ASSERT_TRUE(gone.ok() && kept.ok());
  std::string gone_path = retired + "/" + HexEncode(gone->signing_key_id()) + ".key";
  std::string kept_path = retired + "/" + HexEncode(kept->signing_key_id()) + ".key";
  ASSERT_TRUE(keys::SaveIdentity(*gone, gone_path, nullptr).ok());
  ASSERT_TRUE(keys::SaveIdentity(*kept, kept_path, nullptr).ok());

  StartAgents();
  auto id = [](const schema::SignedPrekey& sp) {
    return keys::KeyId(keys::KeyUse::kPrekey, sp.prekey.public_key);
  };
  keys::Identity after = fed_.LoadIdentity(kCounsel);
  EXPECT_EQ(after.FindPrekey(id(*old)), nullptr) << "the expired prekey's secret is still kept";
  EXPECT_NE(after.FindPrekey(id(*recent)), nullptr) << "a prekey in its window was wiped";
  EXPECT_EQ(after.prekeys().size(), 2u);  // the directory's prekey and the recent one
  EXPECT_FALSE(std::filesystem::exists(gone_path)) << "the retired key file past its window";
  EXPECT_TRUE(std::filesystem::exists(kept_path)) << "a retired key file in its window";
  std::string log = counsel_->Log();
  EXPECT_NE(log.find("wiped prekey " + keys::Fingerprint(id(*old)) + " (expired "),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("wiped retired key file " + gone_path), std::string::npos) << log;

  // And the agency still receives (its current prekey was kept).
  Json consent = wee_->Ok("POST", "/v1/consents", PrekeyConsent());
  Json sent = wee_->Ok("POST", "/v1/referrals", Referral(consent["grant_id"], "still open"));
  EXPECT_EQ(OpenReferral(*counsel_, sent["message_id"]), "still open");
}

// The newest of the party's prekeys in its key file (by not_before), or an empty id.
Bytes NewestOwnPrekey(const keys::Identity& id) {
  const keys::PrekeyEntry* best = nullptr;
  for (const auto& e : id.prekeys()) {
    if (best == nullptr ||
        e.signed_prekey.prekey.not_before_ms > best->signed_prekey.prekey.not_before_ms) {
      best = &e;
    }
  }
  return best == nullptr ? Bytes() : best->id;
}

// Issue 17 item 4, done when: the daemons rotate their prekeys by themselves (a short period
// for the test, [keys] in the config) and publish them through the broker; no directory is
// reissued. Traffic before, during and after the rotations, the Wee center offline across
// one of the counseling center's rotations: every message opens, both ways. After its
// window the first rotated prekey's secret is gone from the key file, and what is sent then
// still opens (so senders seal to the newest published prekey, not to the wiped one).
TEST_F(PrekeyTest, DaemonsRotateAndPublishPrekeysWithoutNewDirectory) {
  const std::string fast =
      "[keys]\ntest_prekey_rotate_ms = 2500\ntest_prekey_lifetime_ms = 9000\n"
      "test_prekey_keep_after_expiry_ms = 1000\n";
  wee_->set_extra(fast);
  counsel_->set_extra(fast);
  const uint64_t serial = fed_.directory().serial;
  const Bytes first = NewestOwnPrekey(fed_.LoadIdentity(kCounsel));  // the directory's
  StartAgents();
  Json consent = wee_->Ok("POST", "/v1/consents", PrekeyConsent());
  std::string grant = consent["grant_id"];
  Json before = wee_->Ok("POST", "/v1/referrals", Referral(grant, "before"));
  EXPECT_EQ(OpenReferral(*counsel_, before["message_id"]), "before");

  // Waits until the counseling center's key file holds a prekey newer than `than`.
  auto wait_rotation = [&](const Bytes& than) {
    for (int i = 0; i < 200; ++i) {
      Bytes now = NewestOwnPrekey(fed_.LoadIdentity(kCounsel));
      if (now != than) return now;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "no prekey rotation at " << kCounsel << " within 20 s\n" << counsel_->Log();
    return than;
  };
  const Bytes rotated = wait_rotation(first);
  if (HasFailure()) return;
  Json during = wee_->Ok("POST", "/v1/referrals", Referral(grant, "during"));
  EXPECT_EQ(OpenReferral(*counsel_, during["message_id"]), "during");

  // The Wee center goes offline; the counseling center rotates again meanwhile.
  ASSERT_EQ(wee_->Stop(), 0);
  const Bytes offline = wait_rotation(rotated);
  ASSERT_TRUE(wee_->Start());
  wee_->WaitForSession();
  // The broker serves the prekey made while the Wee center was away right after its Welcome.
  const std::string offline_taken =
      "published prekey " + keys::Fingerprint(offline) + " of " + kCounsel + " taken";
  for (int i = 0; i < 100 && wee_->Log().find(offline_taken) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(wee_->Log().find(offline_taken), std::string::npos) << wee_->Log();
  Json back = wee_->Ok("POST", "/v1/referrals", Referral(grant, "back online"));
  std::string back_rid = back["referral_id"];
  EXPECT_EQ(OpenReferral(*counsel_, back["message_id"]), "back online");
  // And it receives: the counseling center's state change is sealed to the Wee center's
  // prekeys (its own rotated ones included).
  counsel_->Ok("POST", "/v1/referrals/" + back_rid + "/state",
               {{"state", "accepted"}, {"operator", "counselor-7"}});
  wee_->WaitFor(
      "/v1/referrals",
      [&](const Json& l) {
        const Json* r = FindBy(l, "referral_id", back_rid);
        return r != nullptr && (*r)["state"] == "accepted";
      },
      "the acceptance at the Wee center");

  // After the first rotated prekey's window (lifetime 9 s + 1 s) its secret is wiped.
  bool wiped = false;
  for (int i = 0; i < 250 && !wiped; ++i) {
    wiped = fed_.LoadIdentity(kCounsel).FindPrekey(rotated) == nullptr;
    if (!wiped) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(wiped) << "the first rotated prekey's secret is still in the key file";
  EXPECT_NE(offline, rotated);
  Json after = wee_->Ok("POST", "/v1/referrals", Referral(grant, "after the window"));
  EXPECT_EQ(OpenReferral(*counsel_, after["message_id"]), "after the window") << counsel_->Log();
  // Every message either agency received opened.
  for (auto* a : {wee_.get(), counsel_.get()}) {
    Json inbox = a->Ok("GET", "/v1/inbox");
    for (const auto& m : inbox) EXPECT_EQ(m["status"], "ok") << a->id() << ": " << m.dump();
  }
  EXPECT_EQ(fed_.directory().serial, serial) << "the test must not reissue the directory";
  EXPECT_NE(counsel_->Log().find("published prekey"), std::string::npos) << counsel_->Log();

  // The envelopes as the counseling center received them: "back online" and "after the
  // window" are sealed to prekeys the counseling center published, not the directory's.
  const keys::Identity held = fed_.LoadIdentity(kCounsel);
  for (auto* a : {wee_.get(), counsel_.get()}) ASSERT_EQ(a->Stop(), 0);
  auto store = agent::TransportStore::Open(counsel_->data_dir() + "/transport", {});
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  // The inbox keeps each envelope sealed under its grant's data key (issue 17 item 3).
  auto grant_keys = agent::GrantKeys::Open(counsel_->grant_key_dir(), held);
  ASSERT_TRUE(grant_keys.ok()) << grant_keys.status().ToString();
  auto sealed_to = [&](const Json& sent) -> Bytes {
    const std::string mid_hex = sent["message_id"].get<std::string>();
    auto mid = HexDecode(mid_hex);
    auto rec = mid.ok() ? (*store)->GetInbox(*mid) : Result<agent::InboxRecord>(mid.status());
    if (!rec.ok()) {
      ADD_FAILURE() << "no inbox record for " << mid_hex << ": " << rec.status().ToString();
      return {};
    }
    Bytes bytes = rec->envelope;
    if (rec->sealed_at_rest) {
      const std::string place = agent::TextPlace("inbox", mid_hex, "envelope");
      auto blob = agent::DecodeSealedBlob(rec->envelope);
      auto text =
          blob.ok() ? (*grant_keys)->Unseal(*blob, place) : Result<std::string>(blob.status());
      if (!text.ok()) {
        ADD_FAILURE() << "inbox record " << mid_hex
                      << " does not open: " << text.status().ToString();
        return {};
      }
      bytes.assign(text->begin(), text->end());
    }
    auto env = schema::DecodeEnvelope(bytes);
    if (!env.ok() || env->header.recipients.size() != 1) return {};
    return env->header.recipients[0].prekey_id;
  };
  const Bytes back_to = sealed_to(back);
  const Bytes after_to = sealed_to(after);
  EXPECT_NE(back_to, first) << "sealed to the directory's prekey after the rotations";
  EXPECT_NE(after_to, first) << "sealed to the directory's prekey after the rotations";
  EXPECT_NE(after_to, rotated) << "sealed to a prekey whose window had ended";
  ASSERT_NE(held.FindPrekey(after_to), nullptr);
  const keys::PrekeyEntry* offline_entry = held.FindPrekey(offline);
  if (offline_entry != nullptr && held.FindPrekey(back_to) != nullptr) {
    EXPECT_GE(held.FindPrekey(back_to)->signed_prekey.prekey.not_before_ms,
              offline_entry->signed_prekey.prekey.not_before_ms)
        << "the Wee center sealed to a prekey older than the one made while it was away";
  }
}

}  // namespace
}  // namespace refbus::testing
