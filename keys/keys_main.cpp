// refbus-keys: the federation's key ceremony and directory tool.
//
// Thin over keys/ceremony.h and keys/directory.h: every command is one library call plus
// output for people (tables) or scripts (--json). Secret keys never leave the folder they
// were made in; only public records and directories are passed between parties.
#include <sodium.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/table.h"
#include "keys/ceremony.h"
#include "keys/crypto.h"
#include "keys/directory.h"
#include "keys/keyfile.h"
#include "schema/codec.h"

namespace {

using namespace refbus;        // NOLINT(google-build-using-namespace)
using namespace refbus::keys;  // NOLINT(google-build-using-namespace)
using json = nlohmann::json;

constexpr char kExitCodes[] = R"(
Exit codes:
  0  success
  1  error: bad input, missing or unreadable file, I/O failure
  2  usage error (unknown command or option)
  3  refused: a signature, expiry, rollback or revocation check failed)";

int ExitFor(const Status& s) {
  switch (s.code()) {
    case Status::Code::kOk:
      return 0;
    case Status::Code::kUnauthenticated:
    case Status::Code::kExpired:
    case Status::Code::kRevoked:
    case Status::Code::kRollback:
      return 3;
    default:
      return 1;
  }
}

int Fail(const Status& s) {
  std::cerr << "refbus-keys: " << s.ToString() << "\n";
  return ExitFor(s);
}

UnixMillis Now() { return SystemClock::Get().NowMillis(); }

Result<std::optional<SecretBuffer>> MaybePassphrase(const std::string& file) {
  if (file.empty()) return std::optional<SecretBuffer>();
  REFBUS_ASSIGN_OR_RETURN(SecretBuffer p, ReadPassphraseFile(file));
  return std::optional<SecretBuffer>(std::move(p));
}

const SecretBuffer* Ptr(const std::optional<SecretBuffer>& p) { return p ? &*p : nullptr; }

std::string Fp(ByteView public_key, KeyUse use) {
  return public_key.empty() ? "-" : Fingerprint(KeyId(use, public_key));
}

std::string Join(const std::vector<schema::Role>& roles) {
  std::string s;
  for (auto r : roles) {
    if (!s.empty()) s += ",";
    s += schema::Name(r);
  }
  return s.empty() ? "-" : s;
}

// Tables show the first 8 bytes of a key id; records and --json show all 16.
std::string Short(const std::string& fingerprint) { return fingerprint.substr(0, 19); }

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

json PartyJson(const schema::Party& p) {
  json keys = json::array();
  for (const auto& k : p.keys) {
    json prekeys = json::array();
    for (const auto& sp : k.prekeys) {
      prekeys.push_back({{"id", HexEncode(KeyId(KeyUse::kPrekey, sp.prekey.public_key))},
                         {"not_before", FormatUtc(sp.prekey.not_before_ms)},
                         {"not_after", FormatUtc(sp.prekey.not_after_ms)}});
    }
    keys.push_back({{"signing_key_id", HexEncode(KeyId(KeyUse::kSigning, k.signing_key))},
                    {"signing_key", HexEncode(k.signing_key)},
                    {"transport_key", HexEncode(k.transport_key)},
                    {"state", schema::Name(k.state)},
                    {"state_since", FormatUtc(k.state_since_ms)},
                    {"prekeys", prekeys}});
  }
  json roles = json::array();
  for (auto r : p.roles) roles.push_back(schema::Name(r));
  return {{"id", p.id},
          {"kind", schema::Name(p.kind)},
          {"name", p.display_name},
          {"agency_type", p.agency_type == schema::AgencyType::kUnspecified
                              ? ""
                              : std::string(schema::Name(p.agency_type))},
          {"region", p.region},
          {"home_broker", p.home_broker},
          {"roles", roles},
          {"endpoint", p.endpoint},
          {"status", schema::Name(p.status)},
          {"status_since", FormatUtc(p.status_since_ms)},
          {"keys", keys}};
}

std::vector<std::string> PartyRow(const schema::Party& p, UnixMillis now) {
  const schema::KeyRecord* k = p.ActiveKeys();
  if (k == nullptr && !p.keys.empty()) k = &p.keys.front();
  size_t valid_prekeys = 0;
  if (k != nullptr) {
    for (const auto& sp : k->prekeys) {
      if (sp.prekey.not_before_ms <= now + kClockSkewMs && now < sp.prekey.not_after_ms) {
        ++valid_prekeys;
      }
    }
  }
  std::string type = p.kind == schema::PartyKind::kAgency ? std::string(schema::Name(p.agency_type))
                                                          : std::string(schema::Name(p.kind));
  return {p.id,
          type,
          OrDash(p.region),
          OrDash(p.home_broker),
          std::string(schema::Name(p.status)),
          k ? Short(Fp(k->signing_key, KeyUse::kSigning)) : "-",
          k ? Short(Fp(k->transport_key, KeyUse::kTransport)) : "-",
          p.kind == schema::PartyKind::kAgency ? std::to_string(valid_prekeys) : "-",
          Join(p.roles),
          OrDash(p.display_name)};
}

void PrintDirectory(const VerifiedDirectory& v, const TrustAnchor& anchor, bool as_json) {
  const auto& d = v.signed_directory.directory;
  UnixMillis now = Now();
  if (as_json) {
    json parties = json::array();
    for (const auto* list : {&d.brokers, &d.agencies, &d.auditors}) {
      for (const auto& p : *list) parties.push_back(PartyJson(p));
    }
    json out = {{"verified", true},
                {"federation", d.federation},
                {"serial", d.serial},
                {"issued_at", FormatUtc(d.issued_at_ms)},
                {"expires_at", FormatUtc(d.expires_at_ms)},
                {"in_grace", v.in_grace},
                {"authority", anchor.authority_id},
                {"authority_key_id", HexEncode(anchor.key_id)},
                {"parties", parties}};
    std::cout << out.dump(2) << "\n";
    return;
  }
  std::cout << "Directory of federation '" << d.federation << "', serial " << d.serial << "\n"
            << "  signature: valid, by authority " << anchor.authority_id << " (key "
            << Fingerprint(anchor.key_id) << ")\n"
            << "  issued:    " << FormatUtc(d.issued_at_ms) << "\n"
            << "  expires:   " << FormatUtc(d.expires_at_ms)
            << (v.in_grace ? "  ** EXPIRED: in grace period, get a new directory now **" : "")
            << "\n\n";
  Table t({"ID", "TYPE", "REGION", "HOME BROKER", "STATUS", "SIGNING KEY", "TRANSPORT KEY",
           "PREKEYS", "ROLES", "NAME"});
  for (const auto* list : {&d.brokers, &d.agencies, &d.auditors}) {
    for (const auto& p : *list) t.AddRow(PartyRow(p, now));
  }
  t.Print(std::cout);
  std::cout << "\n"
            << t.rows() << " parties: " << d.brokers.size() << " brokers, " << d.agencies.size()
            << " agencies, " << d.auditors.size() << " auditors\n";
}

void PrintRecord(const schema::SignedPartyRecord& r, bool as_json) {
  const auto& p = r.record.party;
  if (as_json) {
    json out = PartyJson(p);
    out["record_created"] = FormatUtc(r.record.created_at_ms);
    out["endorsed_by_previous_key"] = !r.previous_key_signature.empty();
    std::cout << out.dump(2) << "\n";
    return;
  }
  const auto& k = p.keys.front();
  std::cout << "Public record of " << schema::Name(p.kind) << " '" << p.id << "'\n"
            << "  name:          " << OrDash(p.display_name) << "\n";
  if (p.kind == schema::PartyKind::kAgency) {
    std::cout << "  agency type:   " << schema::Name(p.agency_type) << "\n"
              << "  home broker:   " << p.home_broker << "\n";
  }
  std::cout << "  region:        " << OrDash(p.region) << "\n"
            << "  roles:         " << Join(p.roles) << "\n"
            << "  signing key:   " << Fp(k.signing_key, KeyUse::kSigning) << "\n"
            << "  transport key: " << Fp(k.transport_key, KeyUse::kTransport) << "\n"
            << "  prekeys:       " << k.prekeys.size() << "\n"
            << "  rotation:      "
            << (r.previous_key_signature.empty() ? "no (new party)" : "endorsed by previous key")
            << "\n"
            << "Compare the signing key fingerprint with the party by phone or in person before "
               "adding it.\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (!InitSodium().ok()) {
    std::cerr << "refbus-keys: libsodium failed to initialize\n";
    return 1;
  }
  CLI::App app{"refbus-keys: key ceremony and signed federation directory for refbus"};
  app.footer(kExitCodes);
  app.require_subcommand(1);
  app.fallthrough();  // global options such as --json are accepted after the subcommand too
  bool as_json = false;
  app.add_flag("--json", as_json, "Machine-readable output");

  std::string passphrase_file;
  auto add_passphrase = [&](CLI::App* c) {
    c->add_option("--passphrase-file", passphrase_file,
                  "File (mode 0600) holding the passphrase that protects the key file");
  };

  // authority init
  auto* authority = app.add_subcommand("authority", "The federation authority's keys");
  authority->require_subcommand(1);
  auto* auth_init = authority->add_subcommand(
      "init",
      "Make the authority's signing key (DIR/identity.key) and its public trust anchor "
      "(DIR/authority.pub)");
  std::string dir, id;
  auth_init->add_option("--dir", dir, "Authority folder (keep it offline)")->required();
  auth_init->add_option("--id", id, "Authority id")->default_val("authority");
  add_passphrase(auth_init);

  // party init / rotate-prekey / rotate
  auto* party = app.add_subcommand("party", "An agency's, broker's or auditor's own keys");
  party->require_subcommand(1);
  auto* party_init = party->add_subcommand(
      "init", "Make a party's keys in its own folder and its public record DIR/<id>.record");
  std::string kind_name, type_name, name, region, home_broker, endpoint;
  std::vector<std::string> role_names;
  party_init->add_option("--dir", dir, "The party's own folder")->required();
  party_init->add_option("--id", id, "Party id (a-z, 0-9, '-')")->required();
  party_init->add_option("--kind", kind_name, "agency, broker or auditor")->required();
  party_init->add_option("--type", type_name,
                         "Agency type: wee-center, police-unit, counseling-center, "
                         "deletion-center, support-center, hotline");
  party_init->add_option("--name", name, "Name for people");
  party_init->add_option("--region", region, "Region (seoul, busan, central, ...)");
  party_init->add_option("--home-broker", home_broker, "Agencies: id of their home broker");
  party_init->add_option("--endpoint", endpoint, "Brokers: endpoint others connect to");
  party_init->add_option("--role", role_names, "Role (repeatable); default by kind and type");
  add_passphrase(party_init);
  auto* party_prekey = party->add_subcommand(
      "rotate-prekey", "Add a new prekey, delete long-expired ones, rewrite the public record");
  party_prekey->add_option("--dir", dir, "The party's own folder")->required();
  add_passphrase(party_prekey);
  auto* party_rotate = party->add_subcommand(
      "rotate", "New keys for the party; the old key endorses them and is kept in DIR/retired/");
  party_rotate->add_option("--dir", dir, "The party's own folder")->required();
  add_passphrase(party_rotate);
  auto* party_move = party->add_subcommand(
      "move", "An agency's new home broker (same keys); rewrites the public record");
  std::string new_home;
  party_move->add_option("--dir", dir, "The agency's own folder")->required();
  party_move->add_option("--home-broker", new_home, "Id of the new home broker")->required();
  add_passphrase(party_move);

  // record show
  auto* record = app.add_subcommand("record", "Public records");
  record->require_subcommand(1);
  auto* record_show = record->add_subcommand("show", "Show a public record and its fingerprints");
  std::string file;
  record_show->add_option("FILE", file, "A .record or authority.pub file")->required();

  // directory issue / verify
  auto* directory = app.add_subcommand("directory", "The signed federation directory");
  directory->require_subcommand(1);
  auto* dir_issue = directory->add_subcommand(
      "issue", "Authority: issue the next directory (serial + 1) from public records");
  std::string federation, out;
  std::vector<std::string> add_records, revoke, compromised;
  bool allow_unendorsed = false;
  int valid_days = 30;
  dir_issue->add_option("--authority-dir", dir, "The authority's folder")->required();
  dir_issue->add_option("--federation", federation, "Federation name (first directory only)");
  dir_issue->add_option("--add", add_records, "Public record to add or update (repeatable)");
  dir_issue->add_option("--revoke", revoke, "Party id to revoke (repeatable)");
  dir_issue->add_option("--compromised", compromised,
                        "Party whose old key was compromised: revoke it rather than retire it");
  dir_issue->add_flag("--allow-unendorsed-rotation", allow_unendorsed,
                      "Accept new keys not endorsed by the old key (checked out of band)");
  dir_issue->add_option("--valid-days", valid_days, "Validity in days")
      ->default_val(30)
      ->check(CLI::Range(1, 366));
  dir_issue->add_option("--out", out, "Where to write the signed directory")->required();
  add_passphrase(dir_issue);

  auto* dir_verify = directory->add_subcommand(
      "verify", "Verify a directory against the authority's trust anchor and print it");
  std::string anchor_path, state_path;
  dir_verify->add_option("FILE", file, "Signed directory file")->required();
  dir_verify->add_option("--anchor", anchor_path, "The authority's public record (authority.pub)")
      ->required();
  dir_verify->add_option("--state", state_path,
                         "Trust-state file: refuse rollback, and record the serial if accepted");

  // federation init
  auto* fed = app.add_subcommand("federation", "Whole-federation helpers for demos and tests");
  fed->require_subcommand(1);
  auto* fed_init = fed->add_subcommand(
      "init", "Run the key ceremony for every party of a TOML manifest, one folder each");
  std::string manifest;
  fed_init->add_option("--manifest", manifest, "Federation manifest (TOML)")->required();
  fed_init->add_option("--out", out, "Output folder (one sub-folder per party)")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  UnixMillis now = Now();
  auto pass_r = MaybePassphrase(passphrase_file);
  if (!pass_r.ok()) return Fail(pass_r.status());
  const SecretBuffer* pass = Ptr(*pass_r);

  if (auth_init->parsed()) {
    auto a = InitAuthority(dir, id, pass, now);
    if (!a.ok()) return Fail(a.status());
    if (as_json) {
      std::cout << json{{"authority", a->authority_id},
                        {"key_id", HexEncode(a->key_id)},
                        {"anchor", JoinPath(dir, kAnchorFile)}}
                       .dump(2)
                << "\n";
    } else {
      std::cout << "Authority '" << a->authority_id << "' created in " << dir << "\n"
                << "  signing key: " << Fingerprint(a->key_id) << "\n"
                << "  trust anchor for every party: " << JoinPath(dir, kAnchorFile) << "\n";
    }
    return 0;
  }
  if (party_init->parsed()) {
    auto kind = schema::ParsePartyKind(kind_name);
    if (!kind) return Fail(InvalidArgument("--kind must be agency, broker or auditor"));
    Listing listing;
    listing.display_name = name;
    listing.region = region;
    listing.home_broker = home_broker;
    listing.endpoint = endpoint;
    if (!type_name.empty()) {
      auto t = schema::ParseAgencyType(type_name);
      if (!t) return Fail(InvalidArgument("unknown agency type '" + type_name + "'"));
      listing.agency_type = *t;
    }
    for (const auto& r : role_names) {
      auto role = schema::ParseRole(r);
      if (!role) return Fail(InvalidArgument("unknown role '" + r + "'"));
      listing.roles.push_back(*role);
    }
    auto rec = InitParty(dir, id, *kind, listing, pass, now);
    if (!rec.ok()) return Fail(rec.status());
    if (!as_json) {
      std::cout << "Keys made in " << dir << " (" << kIdentityFile << ", mode 0600).\n"
                << "Hand only " << JoinPath(dir, RecordFileName(id)) << " to the authority.\n\n";
    }
    PrintRecord(*rec, as_json);
    return 0;
  }
  if (party_move->parsed()) {
    auto rec = MoveHome(dir, new_home, pass, now);
    if (!rec.ok()) return Fail(rec.status());
    if (!as_json) {
      std::cout << "Record now names home broker " << new_home
                << "; hand it to the authority. Once the new directory is out, brokers move "
                   "what they hold for this agency; point its agent at the new broker.\n\n";
    }
    PrintRecord(*rec, as_json);
    return 0;
  }
  if (party_prekey->parsed() || party_rotate->parsed()) {
    auto rec =
        party_prekey->parsed() ? RotatePrekey(dir, pass, now) : RotateIdentity(dir, pass, now);
    if (!rec.ok()) return Fail(rec.status());
    if (!as_json) {
      std::cout << (party_prekey->parsed() ? "New prekey added" : "New keys made")
                << "; hand the updated record to the authority.\n\n";
    }
    PrintRecord(*rec, as_json);
    return 0;
  }
  if (record_show->parsed()) {
    auto rec = ReadPartyRecordFile(file);
    if (!rec.ok()) return Fail(rec.status());
    Status s = VerifyPartyRecord(*rec);
    if (!s.ok()) return Fail(s.WithContext(file));
    PrintRecord(*rec, as_json);
    return 0;
  }
  if (dir_issue->parsed()) {
    IssueRequest req;
    req.authority_dir = dir;
    req.passphrase = pass;
    req.federation = federation;
    req.record_paths = add_records;
    req.edit.revoke = revoke;
    req.edit.compromised = compromised;
    req.edit.allow_unendorsed_rotation = allow_unendorsed;
    req.validity_ms = static_cast<UnixMillis>(valid_days) * kMillisPerDay;
    req.out_path = out;
    auto sd = IssueDirectory(req, now);
    if (!sd.ok()) return Fail(sd.status());
    const auto& d = sd->directory;
    if (as_json) {
      std::cout << json{{"federation", d.federation},
                        {"serial", d.serial},
                        {"expires_at", FormatUtc(d.expires_at_ms)},
                        {"out", out}}
                       .dump(2)
                << "\n";
    } else {
      std::cout << "Directory serial " << d.serial << " of '" << d.federation << "' written to "
                << out << " (" << d.brokers.size() << " brokers, " << d.agencies.size()
                << " agencies, " << d.auditors.size() << " auditors; expires "
                << FormatUtc(d.expires_at_ms) << ")\n";
    }
    return 0;
  }
  if (dir_verify->parsed()) {
    auto anchor = LoadTrustAnchor(anchor_path);
    if (!anchor.ok()) return Fail(anchor.status());
    Result<VerifiedDirectory> v = Internal("unset");
    if (state_path.empty()) {
      auto raw = ReadDirectoryFile(file);
      if (!raw.ok()) return Fail(raw.status());
      v = VerifyDirectory(schema::EncodeSignedDirectory(*raw), *anchor, now);
      if (!v.ok()) return Fail(v.status().WithContext(file));
    } else {
      auto state = TrustState::Open(state_path);
      if (!state.ok()) return Fail(state.status());
      v = LoadAndAcceptDirectory(file, *anchor, *state, now);
      if (!v.ok()) return Fail(v.status());
    }
    PrintDirectory(*v, *anchor, as_json);
    return 0;
  }
  if (fed_init->parsed()) {
    Status s = FederationInit(manifest, out, now, std::cout);
    if (!s.ok()) return Fail(s);
    return 0;
  }
  return 2;
}
