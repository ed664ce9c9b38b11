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

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <regex>
#include <set>
#include <thread>

#include "agent/case_crypto.h"
#include "agent/case_store.h"
#include "agent/records.h"
#include "agent/transport_store.h"
#include "broker/store.h"
#include "core/lmdb.h"
#include "keys/envelope.h"
#include "keys/secret.h"
#include "schema/codec.h"
#include "tests/integration/agent_daemon.h"
#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

using schema::AgencyType;

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

// Reads a protobuf varint of exactly `len` bytes at b[p].
bool VarintOf(const std::string& b, size_t p, size_t len, uint64_t* v) {
  if (p + len > b.size()) return false;
  uint64_t out = 0;
  for (size_t i = 0; i < len; ++i) {
    auto c = static_cast<uint8_t>(b[p + i]);
    if (((c & 0x80) != 0) != (i + 1 < len)) return false;
    out |= uint64_t{c & 0x7fu} << (7 * i);
  }
  *v = out;
  return true;
}

// A serialized SealedEnvelope ending at or after `header` (where its header's version
// and message-id fields start: 08 01 12 10), read back to its first byte; empty if the
// bytes around it are not one.
std::string EnvelopeAround(const std::string& b, size_t header) {
  for (size_t k = 1; k <= 3; ++k) {
    if (header < k + 1) break;
    size_t start = header - k - 1;
    uint64_t hlen = 0, clen = 0;
    if (b[start] != 0x0a || !VarintOf(b, start + 1, k, &hlen)) continue;
    size_t p = header + hlen;
    if (p >= b.size() || b[p] != 0x12) continue;
    size_t c = 1;
    while (c <= 3 && !VarintOf(b, p + 1, c, &clen)) ++c;
    if (c > 3) continue;
    p += 1 + c + clen;
    if (p + 2 + 64 > b.size() || b[p] != 0x1a || b[p + 1] != 0x40) continue;
    return b.substr(start, p + 2 + 64 - start);
  }
  return {};
}

// A sealed form (agent/case_crypto.h) starting at b[at], or nothing.
std::optional<agent::SealedText> SealedFormAt(const std::string& b, size_t at) {
  constexpr size_t kFixed = agent::kSealedBlobMagic.size() + 16 + 24;
  if (at + kFixed + 2 > b.size()) return std::nullopt;
  size_t place_len = (size_t{static_cast<uint8_t>(b[at + kFixed])} << 8) |
                     static_cast<uint8_t>(b[at + kFixed + 1]);
  size_t p = at + kFixed + 2 + place_len;
  if (p + 4 > b.size()) return std::nullopt;
  size_t box_len = 0;
  for (size_t i = 0; i < 4; ++i) box_len = (box_len << 8) | static_cast<uint8_t>(b[p + i]);
  if (box_len > b.size() - p - 4) return std::nullopt;
  auto s = agent::DecodeSealedBlob(AsBytes(std::string_view(b).substr(at, p + 4 + box_len - at)));
  if (!s.ok()) return std::nullopt;
  return *s;
}

// Every received envelope found in the raw bytes of the files under the roots -- live
// records, LMDB's freed pages, backups -- that opens with what the agency holds: as
// sealed to a prekey, with its prekey secrets; in the sealed form the inbox keeps, with
// any grant data key in keys. "file: how".
std::vector<std::string> EnvelopesOpeningUnder(const std::vector<std::string>& roots,
                                               const keys::Identity& identity,
                                               const schema::Directory& directory,
                                               agent::GrantKeys& keys) {
  static const std::string kHeaderStart("\x08\x01\x12\x10", 4);
  const std::string magic(agent::kSealedBlobMagic);
  std::vector<std::string> grants = *keys.Grants();
  std::vector<std::string> out;
  const UnixMillis now = SystemClock::Get().NowMillis();
  for (const auto& root : roots) {
    for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
      if (!e.is_regular_file()) continue;
      std::string bytes = Slurp(e.path().string());
      for (size_t at = bytes.find(kHeaderStart); at != std::string::npos;
           at = bytes.find(kHeaderStart, at + 1)) {
        std::string env = EnvelopeAround(bytes, at);
        if (env.empty()) continue;
        auto opened = keys::OpenEnvelope(identity, AsBytes(env), directory, now);
        if (opened.ok()) {
          out.push_back(e.path().string() + ": message " +
                        HexEncode(opened->envelope.header.message_id) + " with a prekey");
        }
      }
      for (size_t at = bytes.find(magic); at != std::string::npos; at = bytes.find(magic, at + 1)) {
        auto sealed = SealedFormAt(bytes, at);
        if (!sealed) continue;
        for (const auto& g : grants) {
          std::string env;
          if (agent::TryUnseal(*sealed, sealed->place, (*keys.KeyOf(g))->data(), &env)) {
            bool opens = keys::OpenEnvelope(identity, AsBytes(env), directory, now).ok();
            out.push_back(e.path().string() + ": " + sealed->place + " under grant " + g +
                          (opens ? ", and the envelope opens" : ""));
          }
        }
      }
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

  // Stops the agents and the broker, and returns the broker's audit log, entry by entry.
  std::vector<schema::AuditEntry> StopAllAndReadAudit() {
    for (auto& [id, a] : agents_) EXPECT_EQ(a->Stop(), 0) << id;
    agents_.clear();
    EXPECT_EQ(broker_->Stop(), 0);
    broker::StoreOptions o;
    o.dir = root_ + "/seoul-data";
    o.broker_id = "seoul-broker";
    auto store = broker::Store::Open(o);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    std::vector<schema::AuditEntry> entries;
    if (!store.ok()) return entries;
    auto n = (*store)->AuditSize();
    for (uint64_t i = 0; n.ok() && i < *n; ++i) {
      auto e = schema::DecodeAuditEntry(*(*store)->AuditEntryBytes(i));
      if (e.ok()) entries.push_back(std::move(*e));
    }
    return entries;
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
        // Report 1 is the center's "whole list held" report (PROTOCOL.md 10.1).
        return d != nullptr && (*d)["report_seq"] == 2;
      },
      "the status report");
  // The center's operator records a takedown notice with the platform's answer (free text
  // in the work queue, PROTOCOL.md 10.2).
  Json work = dsc.Ok("GET", "/v1/deletion-work");
  std::string wid = work["platforms"][0]["items"][0]["work_id"];
  Json noticed = dsc.Ok("POST", "/v1/deletion-work/" + wid + "/notice",
                        {{"platform", "video-a"},
                         {"answer", plant("notice-answer")},
                         {"removed", true},
                         {"operator", "dsc-han"}});
  EXPECT_EQ(noticed["notices"][0]["answer"], plant("notice-answer")) << noticed.dump();
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
  // Reading another agency's words is an access like opening its message: the agency
  // whose words were read is told (signed access notice), naming the reader's operator.
  auto told = [](const Json& c, const std::string& agency, const std::string& op,
                 const std::string& kind) {
    for (const auto& n : c["access_notices"]) {
      if (n["agency"] == agency && n["operator"] == op && n["kind"] == kind) return true;
    }
    return false;
  };
  for (const char* kind : {"case-closed", "handoff", "referral-state"}) {
    wee.WaitFor(
        "/v1/cases/" + case_ref,
        [&](const Json& c) { return told(c, "seoul-counsel", "service:counselor-7", kind); },
        std::string("the access notice for the counseling center's read of the ") + kind + " text");
  }
  for (const char* kind : {"handoff-ack", "referral-state"}) {
    counsel.WaitFor(
        "/v1/cases/" + case_ref,
        [&](const Json& c) { return told(c, "seoul-wee-01", "service:wee-teacher-1", kind); },
        std::string("the access notice for the Wee center's read of the ") + kind + " text");
  }
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
  // The envelopes it received are on its disk (the scan below finds what it looks for).
  EXPECT_FALSE(EnvelopesOpeningUnder({counsel.data_dir(), root_ + "/backups"},
                                     fed_.LoadIdentity("seoul-counsel"), fed_.directory(), **keys_c)
                   .empty())
      << "no received envelope found at the counseling center before the revocation";

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
    // Nor does any envelope it received under the grant, in any form, in any file or
    // backup: not with its prekey secrets (kept until their window ends), and not with
    // any data key it still holds.
    auto envelopes = EnvelopesOpeningUnder({a->data_dir(), root_ + "/backups"},
                                           fed_.LoadIdentity(a->id()), fed_.directory(), **k);
    std::string list;
    for (const auto& f : envelopes) list += "\n  " + f;
    EXPECT_TRUE(envelopes.empty()) << a->id() << ": after the purge " << envelopes.size()
                                   << " received envelope(s) still open with its prekeys:" << list;
    // The API says the text was purged.
    Json c = a->Ok("POST", "/v1/cases/" + case_ref + "/read", {{"operator", "auditor"}});
    EXPECT_NE(c.dump().find("purged"), std::string::npos) << c.dump();
  }
  // The reads of another agency's text are in the broker's audit log, as opens are.
  std::set<std::string> audited;
  for (const schema::AuditEntry& e : StopAllAndReadAudit()) {
    if (e.event == schema::AuditEvent::kEnvelopeOpened) {
      audited.insert(e.actor + "/" + e.operator_ref + "/" + e.sender_id + "/" +
                     std::string(schema::Name(e.kind)));
    }
  }
  for (const char* want : {"seoul-counsel/service:counselor-7/seoul-wee-01/case-closed",
                           "seoul-counsel/service:counselor-7/seoul-wee-01/handoff",
                           "seoul-wee-01/service:wee-teacher-1/seoul-counsel/handoff-ack"}) {
    EXPECT_EQ(audited.count(want), 1u) << "no audit entry for the read " << want;
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

// A store written before takedown notice answers were sealed: the plain answer is sealed at
// the next start under the work item's linked grant (and still shown by the work queue).
TEST_F(AtRestTest, PlainNoticeAnswersOfAnOlderStoreAreSealedAtStart) {
  AgentDaemon& wee = A("seoul-wee-01");
  AgentDaemon& dsc = A("central-dsc");
  Json consent = wee.Ok("POST", "/v1/consents",
                        {{"basis", "consent-subject"},
                         {"consenters", {"subject"}},
                         {"purposes", {"deletion"}},
                         {"categories", {"content-locations", "deletion-status"}},
                         {"recipient_types", {"deletion-center"}},
                         {"operator", "wee-teacher-1"}});
  wee.Ok("POST", "/v1/deletions",
         {{"grant_id", consent["grant_id"]},
          {"to", "central-dsc"},
          {"items", {{{"item_id", "v1"}, {"url", "https://video.example/legacy"}}}},
          {"operator", "wee-teacher-1"}});
  Json work = dsc.WaitFor(
      "/v1/deletion-work", [](const Json& w) { return w.value("work_items", 0) == 1; },
      "the work item");
  const std::string wid = work["platforms"][0]["items"][0]["work_id"];
  dsc.Ok("POST", "/v1/deletion-work/" + wid + "/notice",
         {{"platform", "video-a"}, {"answer", "sealed now"}, {"operator", "dsc-han"}});
  auto stored_notice = [&](const std::function<void(Json&)>& edit) {
    auto store = agent::CaseStore::Open(dsc.data_dir() + "/cases");
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return Json();
    auto txn = (*store)->Begin(true);
    EXPECT_TRUE(txn.ok());
    auto rec = txn->Get(agent::Table::kDeletionWork, wid);
    EXPECT_TRUE(rec.ok() && rec->has_value());
    if (!rec.ok() || !rec->has_value()) return Json();
    Json w = **rec;
    if (edit) {
      edit(w);
      EXPECT_TRUE(txn->Put(agent::Table::kDeletionWork, wid, w).ok());
      EXPECT_TRUE(txn->Commit().ok());
    }
    return w["notices"][0];
  };
  ASSERT_EQ(dsc.Stop(), 0);
  // What an older version wrote: the answer in the clear.
  stored_notice([&](Json& w) {
    w["notices"][0]["answer"] = Plant("legacy-answer");
    w["notices"][0].erase("answer_sealed");
  });
  ASSERT_TRUE(dsc.Start());
  Json shown = dsc.Ok("GET", "/v1/deletion-work");
  EXPECT_EQ(shown["platforms"][0]["items"][0]["notices"][0]["answer"], Plant("legacy-answer"))
      << shown.dump();
  ASSERT_EQ(dsc.Stop(), 0);
  Json notice = stored_notice(nullptr);
  EXPECT_EQ(notice.value("answer", "?"), "") << "still in the clear: " << notice.dump();
  EXPECT_EQ(notice.value("answer_sealed", Json::array()).size(), 1u) << notice.dump();
  ASSERT_TRUE(dsc.Start());
}

// A transport store written before received envelopes were sealed at rest: its inbox
// records hold the envelopes as delivered. At the next start they are sealed under their
// grants' data keys, and still open.
TEST_F(AtRestTest, ReceivedEnvelopesOfAnOlderStoreAreSealedAtStart) {
  AgentDaemon& wee = A("seoul-wee-01");
  AgentDaemon& counsel = A("seoul-counsel");
  Json consent = wee.Ok("POST", "/v1/consents",
                        {{"basis", "consent-subject"},
                         {"consenters", {"subject"}},
                         {"purposes", {"counseling"}},
                         {"categories", {"identity"}},
                         {"recipient_types", {"counseling-center"}},
                         {"operator", "wee-teacher-1"}});
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
  std::string mid = (*FindBy(counsel.Ok("GET", "/v1/inbox"), "kind", "referral"))["message_id"];
  Bytes id = *HexDecode(mid);
  ASSERT_EQ(counsel.Stop(), 0);
  auto sealed_now = [&]() -> bool {
    auto store = agent::TransportStore::Open(counsel.data_dir() + "/transport", {});
    if (!store.ok()) {
      ADD_FAILURE() << store.status().ToString();
      return false;
    }
    auto rec = (*store)->GetInbox(id);
    if (!rec.ok()) ADD_FAILURE() << rec.status().ToString();
    return rec.ok() && rec->sealed_at_rest;
  };
  ASSERT_TRUE(sealed_now()) << "the referral is not kept sealed under its grant's data key";
  {
    // What an older version wrote: the record with the envelope as delivered (format 1).
    auto keys_c =
        agent::GrantKeys::Open(counsel.grant_key_dir(), fed_.LoadIdentity("seoul-counsel"));
    ASSERT_TRUE(keys_c.ok()) << keys_c.status().ToString();
    auto env = lmdb::Env::Open(counsel.data_dir() + "/transport", lmdb::EnvOptions{});
    ASSERT_TRUE(env.ok()) << env.status().ToString();
    auto dbi = (*env)->OpenDb(agent::kInboxDb);
    ASSERT_TRUE(dbi.ok());
    auto txn = (*env)->BeginWrite();
    ASSERT_TRUE(txn.ok());
    auto v = txn->Get(*dbi, id);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    Bytes value(v->begin(), v->end());
    Bytes header(value.begin(), value.begin() + agent::kRecordHeaderBytes);
    auto form = agent::DecodeSealedBlob(
        ByteView(value).subspan(agent::kRecordHeaderBytes + agent::kSha256Bytes));
    ASSERT_TRUE(form.ok()) << form.status().ToString();
    auto envelope = (*keys_c)->Unseal(*form, form->place);
    ASSERT_TRUE(envelope.ok()) << envelope.status().ToString();
    header[0] = 1;
    Append(header, AsBytes(*envelope));
    ASSERT_TRUE(txn->Put(*dbi, id, header).ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  ASSERT_FALSE(sealed_now());
  ASSERT_TRUE(counsel.Start());
  counsel.Ok("POST", "/v1/messages/" + mid + "/open", {{"operator", "counselor-7"}});
  ASSERT_EQ(counsel.Stop(), 0);
  EXPECT_TRUE(sealed_now()) << "an older store's envelope is still kept as delivered";
  ASSERT_TRUE(counsel.Start());
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
  // Each agency runs its own retention timer (every 2 s): the recorder's purge of its own
  // copy need not come before the confirmation it received.
  for (AgentDaemon* a : {&counsel, &wee}) {
    std::string key_file = a->grant_key_dir() + "/" + grant + ".key";
    for (int i = 0; i < Scaled(100) && std::filesystem::exists(key_file); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_FALSE(std::filesystem::exists(key_file))
        << a->id() << " still holds the grant's data key 10 s after its retention";
  }
  Json read = counsel.Ok("POST", "/v1/cases/" + case_ref + "/read", {{"operator", "c-7"}});
  EXPECT_EQ(read.dump().find(token_), std::string::npos) << read.dump();
  EXPECT_NE(read.dump().find("[purged"), std::string::npos) << read.dump();
  // The broker's audit log holds the signed purge record.
  size_t purges = 0;
  for (const schema::AuditEntry& e : StopAllAndReadAudit()) {
    if (e.event == schema::AuditEvent::kPurgeConfirmed && e.actor == "seoul-counsel") ++purges;
  }
  EXPECT_GE(purges, 1u) << "no purge confirmation from the counseling center in the audit log";
}

}  // namespace
}  // namespace refbus::testing
