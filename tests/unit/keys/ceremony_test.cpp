// Tests for keys/ceremony.h: the key ceremony run in temporary folders, step by step and
// from a TOML manifest.
#include "keys/ceremony.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/file.h"
#include "keys/crypto.h"
#include "keys/keyfile.h"
#include "schema/codec.h"
#include "tests/unit/test_util.h"

namespace refbus::keys {
// Named after the file, not anonymous: its helpers share names with other test files
// compiled in the same unity batch (tests/CMakeLists.txt).
namespace ceremony_test {

namespace fs = std::filesystem;

using schema::AgencyType;
using schema::KeyState;
using schema::PartyKind;
using test::FileMode;
using test::HasCode;
using test::HasError;
using test::IsOk;
using test::Must;
using Code = Status::Code;

constexpr UnixMillis kNow = 1'780'000'000'000;
constexpr UnixMillis kDay = kMillisPerDay;

Listing AgencyListing(AgencyType type) {
  Listing l;
  l.display_name = "Agency";
  l.agency_type = type;
  l.region = "seoul";
  l.home_broker = "broker-seoul";
  return l;
}

// Every identity.key (and retired key) under root, recursively.
std::vector<std::string> KeyFilesUnder(const std::string& root) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file() && e.path().extension() == ".key") out.push_back(e.path().string());
  }
  return out;
}

void CopyFile(const std::string& from, const std::string& to) {
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

// A federation made step by step, as operators would with refbus-keys.
class CeremonyTest : public ::testing::Test {
 protected:
  std::string Dir(const std::string& id) const { return tmp_.Join(id); }
  std::string RecordPath(const std::string& id) const {
    return JoinPath(Dir(id), RecordFileName(id));
  }

  void InitAll() {
    Must(InitAuthority(Dir("authority"), "authority", nullptr, kNow));
    Listing broker;
    broker.display_name = "Seoul broker";
    broker.region = "seoul";
    broker.endpoint = "tcp://127.0.0.1:7450";
    Must(InitParty(Dir("broker-seoul"), "broker-seoul", PartyKind::kBroker, broker, nullptr, kNow));
    Must(InitParty(Dir("agency-a"), "agency-a", PartyKind::kAgency,
                   AgencyListing(AgencyType::kCounselingCenter), nullptr, kNow));
    Must(InitParty(Dir("agency-b"), "agency-b", PartyKind::kAgency,
                   AgencyListing(AgencyType::kPoliceUnit), nullptr, kNow));
  }

  Result<schema::SignedDirectory> Issue(const std::vector<std::string>& ids, UnixMillis now) {
    IssueRequest req;
    req.authority_dir = Dir("authority");
    req.federation = "test-federation";
    for (const auto& id : ids) req.record_paths.push_back(RecordPath(id));
    req.out_path = tmp_.Join("directory.out");
    return IssueDirectory(req, now);
  }

  // Hands the authority's public files to a party and lets it verify them.
  Result<VerifiedDirectory> Distribute(const std::string& id, UnixMillis now) {
    CopyFile(JoinPath(Dir("authority"), kAnchorFile), JoinPath(Dir(id), kAnchorFile));
    CopyFile(tmp_.Join("directory.out"), JoinPath(Dir(id), kDirectoryFile));
    return AcceptDirectoryInFolder(Dir(id), "", now);
  }

  const schema::Party& PartyIn(const schema::SignedDirectory& sd, const std::string& id) {
    const schema::Party* p = sd.directory.Find(id);
    if (p == nullptr) throw std::runtime_error(id + " is not in the directory");
    return *p;
  }

  test::TempDir tmp_;
};

// Issue 17 item 8: the federation's root signing key, when protected, is protected at
// libsodium's moderate Argon2id cost (one derivation here: about a second, 256 MiB).
TEST_F(CeremonyTest, AuthorityKeyIsProtectedAtTheModerateCost) {
  SecretBuffer pass = Must(SecretBuffer::CopyOf(AsBytes("the authority's passphrase")));
  ASSERT_TRUE(IsOk(InitAuthority(Dir("authority"), "authority", &pass, kNow)));
  const std::string key = JoinPath(Dir("authority"), kIdentityFile);
  auto file = schema::DecodeSecretKeyFile(
      Must(schema::StripMagic(schema::kSecretKeyFileMagic, test::ReadAll(key), "key")));
  ASSERT_TRUE(IsOk(file));
  EXPECT_EQ(file->protection, schema::KeyProtection::kArgon2idXChaCha20Poly1305);
  EXPECT_EQ(file->kdf_opslimit, crypto_pwhash_OPSLIMIT_MODERATE);
  EXPECT_EQ(file->kdf_memlimit, crypto_pwhash_MEMLIMIT_MODERATE);
}

TEST_F(CeremonyTest, InitIssueAndAccept) {
  auto anchor = InitAuthority(Dir("authority"), "authority", nullptr, kNow);
  ASSERT_TRUE(IsOk(anchor));
  EXPECT_EQ(anchor->authority_id, "authority");
  EXPECT_TRUE(PathExists(JoinPath(Dir("authority"), kAnchorFile)));
  auto loaded_anchor = LoadTrustAnchor(JoinPath(Dir("authority"), kAnchorFile));
  ASSERT_TRUE(IsOk(loaded_anchor));
  EXPECT_EQ(loaded_anchor->key_id, anchor->key_id);

  auto rec = InitParty(Dir("agency-a"), "agency-a", PartyKind::kAgency,
                       AgencyListing(AgencyType::kCounselingCenter), nullptr, kNow);
  ASSERT_TRUE(IsOk(rec));
  EXPECT_TRUE(IsOk(VerifyPartyRecord(*rec)));
  EXPECT_TRUE(PathExists(RecordPath("agency-a")));
  EXPECT_EQ(FileMode(RecordPath("agency-a")), 0644);

  Listing broker;
  broker.endpoint = "tcp://127.0.0.1:7450";
  ASSERT_TRUE(IsOk(
      InitParty(Dir("broker-seoul"), "broker-seoul", PartyKind::kBroker, broker, nullptr, kNow)));
  ASSERT_TRUE(IsOk(InitParty(Dir("agency-b"), "agency-b", PartyKind::kAgency,
                             AgencyListing(AgencyType::kPoliceUnit), nullptr, kNow)));

  auto sd = Issue({"broker-seoul", "agency-a", "agency-b"}, kNow);
  ASSERT_TRUE(IsOk(sd));
  EXPECT_EQ(sd->directory.serial, 1u);
  EXPECT_EQ(sd->directory.federation, "test-federation");
  EXPECT_EQ(sd->directory.agencies.size(), 2u);
  EXPECT_EQ(sd->directory.brokers.size(), 1u);
  EXPECT_TRUE(PathExists(JoinPath(Dir("authority"), kDirectoryFile)));

  for (const char* id : {"broker-seoul", "agency-a", "agency-b"}) {
    auto v = Distribute(id, kNow);
    ASSERT_TRUE(IsOk(v)) << id;
    EXPECT_EQ(v->signed_directory.directory.serial, 1u);
    EXPECT_EQ(FileMode(JoinPath(Dir(id), kTrustStateFile)), 0600) << id;
  }

  // Each party's keys match its listing.
  Identity a = Must(LoadIdentity(JoinPath(Dir("agency-a"), kIdentityFile), nullptr));
  const schema::Party& listed = PartyIn(*sd, "agency-a");
  EXPECT_EQ(listed.keys[0].signing_key, a.signing_public_key());
  EXPECT_EQ(listed.keys[0].transport_key, a.transport_public_key());
}

TEST_F(CeremonyTest, EveryIdentityKeyIsPrivate) {
  test::UmaskGuard umask(0);
  InitAll();
  std::vector<std::string> keys = KeyFilesUnder(tmp_.path());
  EXPECT_EQ(keys.size(), 4u);
  for (const auto& k : keys) {
    EXPECT_EQ(FileMode(k), 0600) << k;
    EXPECT_TRUE(IsOk(CheckPrivateFile(k))) << k;
  }
  for (const char* id : {"authority", "broker-seoul", "agency-a"}) {
    EXPECT_EQ(FileMode(Dir(id)), 0700) << id;
  }
}

TEST_F(CeremonyTest, OverwritingAnIdentityIsRefused) {
  InitAll();
  const std::string key = JoinPath(Dir("agency-a"), kIdentityFile);
  const Bytes before = test::ReadAll(key);
  auto again = InitParty(Dir("agency-a"), "agency-a", PartyKind::kAgency,
                         AgencyListing(AgencyType::kHotline), nullptr, kNow + 1);
  EXPECT_TRUE(HasError(again, Code::kAlreadyExists, "identity.key"));
  EXPECT_EQ(test::ReadAll(key), before);

  const std::string auth_key = JoinPath(Dir("authority"), kIdentityFile);
  const Bytes auth_before = test::ReadAll(auth_key);
  EXPECT_TRUE(HasCode(InitAuthority(Dir("authority"), "authority", nullptr, kNow + 1),
                      Code::kAlreadyExists));
  EXPECT_EQ(test::ReadAll(auth_key), auth_before);
}

TEST_F(CeremonyTest, InitPartyRefusesBadInput) {
  EXPECT_TRUE(
      HasCode(InitParty(Dir("x"), "authority-2", PartyKind::kAuthority, Listing{}, nullptr, kNow),
              Code::kInvalidArgument));
  Listing no_type = AgencyListing(AgencyType::kUnspecified);
  EXPECT_TRUE(
      HasError(InitParty(Dir("agency-z"), "agency-z", PartyKind::kAgency, no_type, nullptr, kNow),
               Code::kInvalidArgument, "type"));
  EXPECT_FALSE(PathExists(JoinPath(Dir("agency-z"), kIdentityFile)));
  EXPECT_TRUE(HasCode(InitParty(Dir("bad"), "Bad Id", PartyKind::kBroker, Listing{}, nullptr, kNow),
                      Code::kInvalidArgument));
}

TEST_F(CeremonyTest, RotatePrekeyReachesTheNextDirectory) {
  InitAll();
  ASSERT_TRUE(IsOk(Issue({"broker-seoul", "agency-a", "agency-b"}, kNow)));
  const UnixMillis later = kNow + 5 * kDay;
  auto rec = RotatePrekey(Dir("agency-a"), nullptr, later);
  ASSERT_TRUE(IsOk(rec));
  ASSERT_EQ(rec->record.party.keys[0].prekeys.size(), 2u);

  Identity a = Must(LoadIdentity(JoinPath(Dir("agency-a"), kIdentityFile), nullptr));
  ASSERT_EQ(a.prekeys().size(), 2u);
  const schema::Prekey& fresh = a.prekeys()[1].signed_prekey.prekey;
  EXPECT_EQ(fresh.not_before_ms, later);

  auto sd = Issue({"agency-a"}, later);
  ASSERT_TRUE(IsOk(sd));
  EXPECT_EQ(sd->directory.serial, 2u);
  const schema::Party& p = PartyIn(*sd, "agency-a");
  ASSERT_EQ(p.keys.size(), 1u);
  bool listed = false;
  for (const auto& sp : p.keys[0].prekeys) listed |= sp.prekey.public_key == fresh.public_key;
  EXPECT_TRUE(listed);
  auto current = CurrentPrekey(sd->directory, "agency-a", later + kDay);
  ASSERT_TRUE(IsOk(current));
  EXPECT_EQ(current->public_key, fresh.public_key);
  EXPECT_TRUE(IsOk(Distribute("agency-a", later)));
}

TEST_F(CeremonyTest, RotatePrekeyIsForAgenciesOnly) {
  InitAll();
  EXPECT_TRUE(
      HasCode(RotatePrekey(Dir("broker-seoul"), nullptr, kNow + kDay), Code::kInvalidArgument));
}

TEST_F(CeremonyTest, RotateIdentityRetiresTheOldKey) {
  InitAll();
  ASSERT_TRUE(IsOk(Issue({"broker-seoul", "agency-a", "agency-b"}, kNow)));
  Identity old = Must(LoadIdentity(JoinPath(Dir("agency-a"), kIdentityFile), nullptr));

  const UnixMillis later = kNow + 5 * kDay;
  auto rec = RotateIdentity(Dir("agency-a"), nullptr, later);
  ASSERT_TRUE(IsOk(rec));
  EXPECT_FALSE(rec->previous_key_signature.empty());

  Identity fresh = Must(LoadIdentity(JoinPath(Dir("agency-a"), kIdentityFile), nullptr));
  EXPECT_NE(fresh.signing_key_id(), old.signing_key_id());
  EXPECT_EQ(fresh.party_id(), "agency-a");

  std::string retired =
      JoinPath(JoinPath(Dir("agency-a"), "retired"), HexEncode(old.signing_key_id()) + ".key");
  ASSERT_TRUE(PathExists(retired));
  EXPECT_EQ(FileMode(retired), 0600);
  Identity kept = Must(LoadIdentity(retired, nullptr));
  EXPECT_EQ(kept.signing_key_id(), old.signing_key_id());
  ASSERT_EQ(kept.prekeys().size(), old.prekeys().size());

  auto sd = Issue({"agency-a"}, later);
  ASSERT_TRUE(IsOk(sd));
  const schema::Party& p = PartyIn(*sd, "agency-a");
  ASSERT_EQ(p.keys.size(), 2u);
  EXPECT_EQ(p.keys[0].signing_key, fresh.signing_public_key());
  EXPECT_EQ(p.keys[0].state, KeyState::kActive);
  EXPECT_EQ(p.keys[1].signing_key, old.signing_public_key());
  EXPECT_EQ(p.keys[1].state, KeyState::kRetired);

  for (const auto& k : KeyFilesUnder(tmp_.path())) EXPECT_EQ(FileMode(k), 0600) << k;
}

TEST_F(CeremonyTest, AcceptRefusesRollbackAcrossIssues) {
  InitAll();
  ASSERT_TRUE(IsOk(Issue({"broker-seoul", "agency-a", "agency-b"}, kNow)));
  ASSERT_TRUE(IsOk(Distribute("agency-b", kNow)));
  const std::string serial1 = tmp_.Join("serial1");
  CopyFile(tmp_.Join("directory.out"), serial1);
  ASSERT_TRUE(IsOk(Issue({}, kNow + kDay)));
  ASSERT_TRUE(IsOk(Distribute("agency-b", kNow + kDay)));
  EXPECT_TRUE(
      HasCode(AcceptDirectoryInFolder(Dir("agency-b"), serial1, kNow + kDay), Code::kRollback));
}

TEST_F(CeremonyTest, AcceptRefusesAnotherAuthoritysDirectory) {
  InitAll();
  ASSERT_TRUE(IsOk(Issue({"broker-seoul", "agency-a", "agency-b"}, kNow)));
  ASSERT_TRUE(IsOk(Distribute("agency-a", kNow)));
  // A second authority issues a directory listing the same records.
  std::string rogue = tmp_.Join("rogue");
  Must(InitAuthority(rogue, "authority", nullptr, kNow));
  IssueRequest req;
  req.authority_dir = rogue;
  req.federation = "test-federation";
  req.record_paths = {RecordPath("broker-seoul"), RecordPath("agency-a")};
  Must(IssueDirectory(req, kNow + 1));
  EXPECT_TRUE(
      HasCode(AcceptDirectoryInFolder(Dir("agency-a"), JoinPath(rogue, kDirectoryFile), kNow + 1),
              Code::kUnauthenticated));
  // And the real authority refuses to build on it.
  CopyFile(JoinPath(rogue, kDirectoryFile), JoinPath(Dir("authority"), kDirectoryFile));
  EXPECT_TRUE(HasCode(Issue({}, kNow + 2), Code::kUnauthenticated));
}

TEST_F(CeremonyTest, IssueNeedsAnAuthority) {
  InitAll();
  IssueRequest req;
  req.authority_dir = Dir("agency-a");
  req.federation = "test-federation";
  EXPECT_TRUE(HasCode(IssueDirectory(req, kNow), Code::kInvalidArgument));
  IssueRequest no_name;
  no_name.authority_dir = Dir("authority");
  EXPECT_TRUE(HasCode(IssueDirectory(no_name, kNow), Code::kInvalidArgument));
}

// ---- federation init ----

constexpr char kManifest[] = R"(
federation = "test-federation"
authority = "authority"
valid_days = 10

[[broker]]
id = "broker-seoul"
region = "seoul"
name = "Seoul broker"
endpoint = "tcp://127.0.0.1:7450"

[[agency]]
id = "seoul-wee"
type = "wee-center"
region = "seoul"
home_broker = "broker-seoul"
name = "Seoul Wee center"

[[agency]]
id = "seoul-police"
type = "police-unit"
region = "seoul"
home_broker = "broker-seoul"
name = "Seoul police youth unit"

[[agency]]
id = "deletion-center"
type = "deletion-center"
region = "central"
home_broker = "broker-seoul"
name = "Deletion support center"

[[auditor]]
id = "auditor-1"
name = "Oversight"
)";

class FederationInitTest : public ::testing::Test {
 protected:
  std::string WriteManifest(const std::string& text) {
    std::string path = tmp_.Join("federation.toml");
    test::WriteRaw(path, AsBytes(text), 0644);
    return path;
  }
  std::string Out() const { return tmp_.Join("out"); }

  test::TempDir tmp_;
};

TEST_F(FederationInitTest, BuildsOneFolderPerParty) {
  std::ostringstream log;
  Status s = FederationInit(WriteManifest(kManifest), Out(), kNow, log);
  ASSERT_TRUE(IsOk(s));
  EXPECT_TRUE(test::HasSubstr(log.str(), "directory serial 1"));

  const std::vector<std::string> parties = {"authority",    "broker-seoul",    "seoul-wee",
                                            "seoul-police", "deletion-center", "auditor-1"};
  for (const auto& id : parties) {
    std::string dir = JoinPath(Out(), id);
    EXPECT_TRUE(fs::is_directory(dir)) << id;
    std::string key = JoinPath(dir, kIdentityFile);
    ASSERT_TRUE(PathExists(key)) << id;
    EXPECT_EQ(FileMode(key), 0600) << id;
    // The folder holds this party's keys and nobody else's.
    Identity identity = Must(LoadIdentity(key, nullptr));
    EXPECT_EQ(identity.party_id(), id);
    if (id != "authority") {
      EXPECT_TRUE(PathExists(JoinPath(dir, kAnchorFile))) << id;
      EXPECT_TRUE(PathExists(JoinPath(dir, kDirectoryFile))) << id;
      EXPECT_TRUE(PathExists(JoinPath(dir, kTrustStateFile))) << id;
    }
  }

  // Exactly one key file per party, each inside its own folder; none in exchange/.
  std::vector<std::string> keys = KeyFilesUnder(Out());
  EXPECT_EQ(keys.size(), parties.size());
  for (const auto& k : keys) {
    fs::path p(k);
    EXPECT_EQ(p.filename(), kIdentityFile) << k;
    EXPECT_EQ(p.parent_path().parent_path(), fs::path(Out())) << k;
    EXPECT_NE(p.parent_path().filename(), "exchange") << k;
  }

  // The exchange folder holds only public files.
  std::string exchange = JoinPath(Out(), "exchange");
  auto sd = ReadDirectoryFile(JoinPath(exchange, kDirectoryFile));
  ASSERT_TRUE(IsOk(sd));
  EXPECT_EQ(sd->directory.federation, "test-federation");
  EXPECT_EQ(sd->directory.serial, 1u);
  EXPECT_EQ(sd->directory.agencies.size(), 3u);
  EXPECT_EQ(sd->directory.brokers.size(), 1u);
  EXPECT_EQ(sd->directory.auditors.size(), 1u);
  EXPECT_EQ(sd->directory.expires_at_ms, kNow + 10 * kDay);
  const schema::Party* wee = sd->directory.Find("seoul-wee");
  ASSERT_NE(wee, nullptr);
  EXPECT_EQ(wee->agency_type, AgencyType::kWeeCenter);
  EXPECT_EQ(wee->display_name, "Seoul Wee center");
  EXPECT_EQ(wee->home_broker, "broker-seoul");
  EXPECT_EQ(sd->directory.Find("broker-seoul")->endpoint, "tcp://127.0.0.1:7450");
  for (const auto& e : fs::directory_iterator(exchange)) {
    EXPECT_EQ(FileMode(e.path().string()) & 0777, 0644) << e.path();
    EXPECT_NE(e.path().extension(), ".key") << e.path();
  }
  EXPECT_TRUE(PathExists(JoinPath(exchange, kAnchorFile)));
  EXPECT_TRUE(PathExists(JoinPath(exchange, RecordFileName("seoul-police"))));

  // Every party's own copy verifies against its own anchor.
  for (const auto& id : parties) {
    if (id == "authority") continue;
    EXPECT_TRUE(IsOk(AcceptDirectoryInFolder(JoinPath(Out(), id), "", kNow))) << id;
  }
}

TEST_F(FederationInitTest, UnknownAgencyTypeIsInvalidArgument) {
  std::string manifest = kManifest;
  manifest.replace(manifest.find("\"police-unit\""), 13, "\"fire-brigade\"");
  std::ostringstream log;
  Status s = FederationInit(WriteManifest(manifest), Out(), kNow, log);
  EXPECT_TRUE(HasError(s, Code::kInvalidArgument, "fire-brigade"));
  EXPECT_TRUE(test::HasSubstr(s.message(), "seoul-police"));
  // Nothing was made: the manifest is checked before any key is generated.
  EXPECT_FALSE(PathExists(Out()));
}

TEST_F(FederationInitTest, OtherManifestProblems) {
  struct Case {
    std::string manifest;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {"authority = \"authority\"\n[[broker]]\nid = \"broker-seoul\"\n", "federation"},
      {"federation = \"f\"\n[[broker]]\nid = \"broker-seoul\"\n", "authority"},
      {"federation = \"f\"\nauthority = \"authority\"\n", "no parties"},
      {"federation = \"f\"\nauthority = \"authority\"\nvalid_days = 0\n[[broker]]\nid = "
       "\"broker-seoul\"\n",
       "valid_days"},
      {"federation = \"f\"\nauthority = \"authority\"\n[[agency]]\nid = \"a-1\"\ntype = "
       "\"hotline\"\n",
       "home_broker"},
      {"federation = \"f\"\nauthority = \"authority\"\n[[broker]]\nid = 42\n", "id"},
      {"federation = \"f\"\nauthority = \"authority\"\nbroker = \"x\"\n", "broker"},
      {"federation = \"f\"\nauthority = \"authority\"\n[[broker]]\nid = \"b-1\"\nroles = "
       "[\"admin\"]\n",
       "role"},
      {"federation = \n", "line"},
  };
  for (const auto& c : cases) {
    std::ostringstream log;
    Status s = FederationInit(WriteManifest(c.manifest), Out(), kNow, log);
    EXPECT_TRUE(HasError(s, Code::kInvalidArgument, c.mentions)) << c.manifest;
  }
  EXPECT_FALSE(PathExists(Out()));
}

TEST_F(FederationInitTest, MissingManifestIsAnError) {
  std::ostringstream log;
  EXPECT_FALSE(FederationInit(tmp_.Join("missing.toml"), Out(), kNow, log).ok());
}

// Party ids name folders: an id that is not a valid party id must be refused before
// anything is created, and never create folders outside the output folder.
TEST_F(FederationInitTest, InvalidIdsNeverEscapeTheOutputFolder) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"authority", "../escape-authority"},
      {"broker", "../escape-broker"},
  };
  for (const auto& [section, id] : cases) {
    std::string manifest = "federation = \"f\"\nauthority = \"" +
                           (section == "authority" ? id : std::string("authority")) + "\"\n";
    if (section == "broker")
      manifest += "[[broker]]\nid = \"" + id + "\"\n";
    else
      manifest += "[[broker]]\nid = \"broker-seoul\"\n";
    std::ostringstream log;
    Status s = FederationInit(WriteManifest(manifest), Out(), kNow, log);
    EXPECT_TRUE(HasCode(s, Code::kInvalidArgument)) << id;
    std::string escaped = (fs::path(Out()) / id).lexically_normal().string();
    EXPECT_FALSE(PathExists(escaped))
        << "FederationInit created " << escaped << " outside " << Out() << " for id '" << id << "'";
  }
}

}  // namespace ceremony_test
}  // namespace refbus::keys
