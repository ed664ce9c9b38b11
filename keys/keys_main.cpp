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

// ---------------------------------------------------------------- command line

// Every flag and argument of every subcommand. Subcommands share a field where they take
// the same flag (--dir, --id, --out, FILE, --passphrase-file): CLI11 sets it from the one
// subcommand that was given.
struct Args {
  bool as_json = false;
  std::string passphrase_file;
  bool insecure_no_passphrase = false;  // authority init: the explicit opt-out (tests)
  std::string dir, id, file, out;
  // party init, party move
  std::string kind_name, type_name, name, region, home_broker, endpoint;
  std::vector<std::string> role_names;
  std::string linkage_key_hex;
  std::string new_home;
  // directory issue
  std::string federation;
  std::vector<std::string> add_records, revoke, compromised;
  bool allow_unendorsed = false;
  int valid_days = 30;
  // directory verify
  std::string anchor_path, state_path;
  // federation init
  std::string manifest;
};

// What a subcommand needs besides its flags. pass: the key file's passphrase, or nullptr.
struct Context {
  const SecretBuffer* pass = nullptr;
  UnixMillis now = 0;
};

// A leaf subcommand and what runs it; returns the exit code.
struct Command {
  CLI::App* app;
  int (*run)(const Args&, const Context&);
};

void AddPassphraseOption(CLI::App* c, Args& a) {
  c->add_option("--passphrase-file", a.passphrase_file,
                "File (mode 0600) holding the passphrase that protects the key file");
}

// ---- authority init

int RunAuthorityInit(const Args& a, const Context& ctx) {
  // The federation's root signing key is never written in the clear by accident.
  if (ctx.pass == nullptr && !a.insecure_no_passphrase) {
    return Fail(InvalidArgument(
        "authority init needs --passphrase-file FILE: the authority's key signs every "
        "directory of the federation. (For a throwaway test federation only: "
        "--insecure-no-passphrase)"));
  }
  if (ctx.pass != nullptr && a.insecure_no_passphrase) {
    return Fail(InvalidArgument("give --passphrase-file or --insecure-no-passphrase, not both"));
  }
  if (ctx.pass == nullptr) {
    std::cerr << "refbus-keys: WARNING: the authority's signing key in " << a.dir
              << " is NOT protected by a passphrase (--insecure-no-passphrase). Anyone who "
                 "can read that file can issue directories for the whole federation. Use "
                 "this for tests only.\n";
  }
  auto r = InitAuthority(a.dir, a.id, ctx.pass, ctx.now);
  if (!r.ok()) return Fail(r.status());
  if (a.as_json) {
    std::cout << json{{"authority", r->authority_id},
                      {"key_id", HexEncode(r->key_id)},
                      {"anchor", JoinPath(a.dir, kAnchorFile)}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << "Authority '" << r->authority_id << "' created in " << a.dir << "\n"
              << "  signing key: " << Fingerprint(r->key_id) << "\n"
              << "  trust anchor for every party: " << JoinPath(a.dir, kAnchorFile) << "\n";
  }
  return 0;
}

void AddAuthorityCommands(CLI::App& app, Args& a, std::vector<Command>& commands) {
  auto* authority = app.add_subcommand("authority", "The federation authority's keys");
  authority->require_subcommand(1);
  auto* init = authority->add_subcommand(
      "init",
      "Make the authority's signing key (DIR/identity.key) and its public trust anchor "
      "(DIR/authority.pub)");
  init->add_option("--dir", a.dir, "Authority folder (keep it offline)")->required();
  init->add_option("--id", a.id, "Authority id")->default_val("authority");
  AddPassphraseOption(init, a);
  init->add_flag("--insecure-no-passphrase", a.insecure_no_passphrase,
                 "Write the authority's key unprotected (throwaway test federations only; "
                 "warns on stderr). Without it, --passphrase-file is required");
  commands.push_back({init, RunAuthorityInit});
}

// ---- party init / rotate-prekey / rotate / move

// The listing of party init's flags.
Result<Listing> ListingFromArgs(const Args& a) {
  Listing listing;
  listing.display_name = a.name;
  listing.region = a.region;
  listing.home_broker = a.home_broker;
  listing.endpoint = a.endpoint;
  if (!a.type_name.empty()) {
    auto t = schema::ParseAgencyType(a.type_name);
    if (!t) return InvalidArgument("unknown agency type '" + a.type_name + "'");
    listing.agency_type = *t;
  }
  for (const auto& r : a.role_names) {
    auto role = schema::ParseRole(r);
    if (!role) return InvalidArgument("unknown role '" + r + "'");
    listing.roles.push_back(*role);
  }
  if (!a.linkage_key_hex.empty()) {
    auto k = ParseLinkageKeyHex(a.linkage_key_hex);
    if (!k.ok()) return k.status().WithContext("--linkage-key");
    listing.linkage_key = std::move(k).value();
  }
  return listing;
}

int RunPartyInit(const Args& a, const Context& ctx) {
  auto kind = schema::ParsePartyKind(a.kind_name);
  if (!kind) return Fail(InvalidArgument("--kind must be agency, broker or auditor"));
  auto listing = ListingFromArgs(a);
  if (!listing.ok()) return Fail(listing.status());
  auto rec = InitParty(a.dir, a.id, *kind, *listing, ctx.pass, ctx.now);
  if (!rec.ok()) return Fail(rec.status());
  if (!a.as_json) {
    std::cout << "Keys made in " << a.dir << " (" << kIdentityFile << ", mode 0600).\n"
              << "Hand only " << JoinPath(a.dir, RecordFileName(a.id)) << " to the authority.\n\n";
  }
  PrintRecord(*rec, a.as_json);
  return 0;
}

int RunPartyRotatePrekey(const Args& a, const Context& ctx) {
  auto rec = RotatePrekey(a.dir, ctx.pass, ctx.now);
  if (!rec.ok()) return Fail(rec.status());
  if (!a.as_json) std::cout << "New prekey added; hand the updated record to the authority.\n\n";
  PrintRecord(*rec, a.as_json);
  return 0;
}

int RunPartyRotate(const Args& a, const Context& ctx) {
  auto rec = RotateIdentity(a.dir, ctx.pass, ctx.now);
  if (!rec.ok()) return Fail(rec.status());
  if (!a.as_json) std::cout << "New keys made; hand the updated record to the authority.\n\n";
  PrintRecord(*rec, a.as_json);
  return 0;
}

int RunPartyMove(const Args& a, const Context& ctx) {
  auto rec = MoveHome(a.dir, a.new_home, ctx.pass, ctx.now);
  if (!rec.ok()) return Fail(rec.status());
  if (!a.as_json) {
    std::cout << "Record now names home broker " << a.new_home
              << "; hand it to the authority. Once the new directory is out, brokers move "
                 "what they hold for this agency; point its agent at the new broker.\n\n";
  }
  PrintRecord(*rec, a.as_json);
  return 0;
}

CLI::App* AddPartyInit(CLI::App* party, Args& a) {
  auto* init = party->add_subcommand(
      "init", "Make a party's keys in its own folder and its public record DIR/<id>.record");
  init->add_option("--dir", a.dir, "The party's own folder")->required();
  init->add_option("--id", a.id, "Party id (a-z, 0-9, '-')")->required();
  init->add_option("--kind", a.kind_name, "agency, broker or auditor")->required();
  init->add_option("--type", a.type_name,
                   "Agency type: wee-center, police-unit, counseling-center, "
                   "deletion-center, support-center, hotline");
  init->add_option("--name", a.name, "Name for people");
  init->add_option("--region", a.region, "Region (seoul, busan, central, ...)");
  init->add_option("--home-broker", a.home_broker, "Agencies: id of their home broker");
  init->add_option("--endpoint", a.endpoint, "Brokers: endpoint others connect to");
  init->add_option("--role", a.role_names, "Role (repeatable); default by kind and type");
  init->add_option("--linkage-key", a.linkage_key_hex,
                   "Linkage evaluators: the public key refbus-broker linkage-key printed "
                   "(with --role linkage-evaluator)");
  AddPassphraseOption(init, a);
  return init;
}

void AddPartyCommands(CLI::App& app, Args& a, std::vector<Command>& commands) {
  auto* party = app.add_subcommand("party", "An agency's, broker's or auditor's own keys");
  party->require_subcommand(1);
  commands.push_back({AddPartyInit(party, a), RunPartyInit});
  auto* prekey = party->add_subcommand(
      "rotate-prekey", "Add a new prekey, delete long-expired ones, rewrite the public record");
  prekey->add_option("--dir", a.dir, "The party's own folder")->required();
  AddPassphraseOption(prekey, a);
  commands.push_back({prekey, RunPartyRotatePrekey});
  auto* rotate = party->add_subcommand(
      "rotate", "New keys for the party; the old key endorses them and is kept in DIR/retired/");
  rotate->add_option("--dir", a.dir, "The party's own folder")->required();
  AddPassphraseOption(rotate, a);
  commands.push_back({rotate, RunPartyRotate});
  auto* move = party->add_subcommand(
      "move", "An agency's new home broker (same keys); rewrites the public record");
  move->add_option("--dir", a.dir, "The agency's own folder")->required();
  move->add_option("--home-broker", a.new_home, "Id of the new home broker")->required();
  AddPassphraseOption(move, a);
  commands.push_back({move, RunPartyMove});
}

// ---- record show

int RunRecordShow(const Args& a, const Context& /*ctx*/) {
  auto rec = ReadPartyRecordFile(a.file);
  if (!rec.ok()) return Fail(rec.status());
  Status s = VerifyPartyRecord(*rec);
  if (!s.ok()) return Fail(s.WithContext(a.file));
  PrintRecord(*rec, a.as_json);
  return 0;
}

void AddRecordCommands(CLI::App& app, Args& a, std::vector<Command>& commands) {
  auto* record = app.add_subcommand("record", "Public records");
  record->require_subcommand(1);
  auto* show = record->add_subcommand("show", "Show a public record and its fingerprints");
  show->add_option("FILE", a.file, "A .record or authority.pub file")->required();
  commands.push_back({show, RunRecordShow});
}

// ---- directory issue / verify

int RunDirectoryIssue(const Args& a, const Context& ctx) {
  IssueRequest req;
  req.authority_dir = a.dir;
  req.passphrase = ctx.pass;
  req.federation = a.federation;
  req.record_paths = a.add_records;
  req.edit.revoke = a.revoke;
  req.edit.compromised = a.compromised;
  req.edit.allow_unendorsed_rotation = a.allow_unendorsed;
  req.validity_ms = static_cast<UnixMillis>(a.valid_days) * kMillisPerDay;
  req.out_path = a.out;
  auto sd = IssueDirectory(req, ctx.now);
  if (!sd.ok()) return Fail(sd.status());
  const auto& d = sd->directory;
  if (a.as_json) {
    std::cout << json{{"federation", d.federation},
                      {"serial", d.serial},
                      {"expires_at", FormatUtc(d.expires_at_ms)},
                      {"out", a.out}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << "Directory serial " << d.serial << " of '" << d.federation << "' written to "
              << a.out << " (" << d.brokers.size() << " brokers, " << d.agencies.size()
              << " agencies, " << d.auditors.size() << " auditors; expires "
              << FormatUtc(d.expires_at_ms) << ")\n";
  }
  return 0;
}

// Without --state: signature and expiry only. With it: rollback too, and the serial is
// recorded if accepted.
int RunDirectoryVerify(const Args& a, const Context& ctx) {
  auto anchor = LoadTrustAnchor(a.anchor_path);
  if (!anchor.ok()) return Fail(anchor.status());
  Result<VerifiedDirectory> v = Internal("unset");
  if (a.state_path.empty()) {
    auto raw = ReadDirectoryFile(a.file);
    if (!raw.ok()) return Fail(raw.status());
    v = VerifyDirectory(schema::EncodeSignedDirectory(*raw), *anchor, ctx.now);
    if (!v.ok()) return Fail(v.status().WithContext(a.file));
  } else {
    auto state = TrustState::Open(a.state_path);
    if (!state.ok()) return Fail(state.status());
    v = LoadAndAcceptDirectory(a.file, *anchor, *state, ctx.now);
    if (!v.ok()) return Fail(v.status());
  }
  PrintDirectory(*v, *anchor, a.as_json);
  return 0;
}

CLI::App* AddDirectoryIssue(CLI::App* directory, Args& a) {
  auto* issue = directory->add_subcommand(
      "issue", "Authority: issue the next directory (serial + 1) from public records");
  issue->add_option("--authority-dir", a.dir, "The authority's folder")->required();
  issue->add_option("--federation", a.federation, "Federation name (first directory only)");
  issue->add_option("--add", a.add_records, "Public record to add or update (repeatable)");
  issue->add_option("--revoke", a.revoke, "Party id to revoke (repeatable)");
  issue->add_option("--compromised", a.compromised,
                    "Party whose old key was compromised: revoke it rather than retire it");
  issue->add_flag("--allow-unendorsed-rotation", a.allow_unendorsed,
                  "Accept new keys not endorsed by the old key (checked out of band)");
  issue->add_option("--valid-days", a.valid_days, "Validity in days")
      ->default_val(30)
      ->check(CLI::Range(1, 366));
  issue->add_option("--out", a.out, "Where to write the signed directory")->required();
  AddPassphraseOption(issue, a);
  return issue;
}

void AddDirectoryCommands(CLI::App& app, Args& a, std::vector<Command>& commands) {
  auto* directory = app.add_subcommand("directory", "The signed federation directory");
  directory->require_subcommand(1);
  commands.push_back({AddDirectoryIssue(directory, a), RunDirectoryIssue});
  auto* verify = directory->add_subcommand(
      "verify", "Verify a directory against the authority's trust anchor and print it");
  verify->add_option("FILE", a.file, "Signed directory file")->required();
  verify->add_option("--anchor", a.anchor_path, "The authority's public record (authority.pub)")
      ->required();
  verify->add_option("--state", a.state_path,
                     "Trust-state file: refuse rollback, and record the serial if accepted");
  commands.push_back({verify, RunDirectoryVerify});
}

// ---- federation init

int RunFederationInit(const Args& a, const Context& ctx) {
  std::cerr << "refbus-keys: WARNING: federation init writes every key of the federation, the "
               "authority's included, unprotected into one folder: for demos and tests only\n";
  Status s = FederationInit(a.manifest, a.out, ctx.now, std::cout);
  if (!s.ok()) return Fail(s);
  return 0;
}

void AddFederationCommands(CLI::App& app, Args& a, std::vector<Command>& commands) {
  auto* fed = app.add_subcommand("federation", "Whole-federation helpers for demos and tests");
  fed->require_subcommand(1);
  auto* init = fed->add_subcommand(
      "init", "Run the key ceremony for every party of a TOML manifest, one folder each");
  init->add_option("--manifest", a.manifest, "Federation manifest (TOML)")->required();
  init->add_option("--out", a.out, "Output folder (one sub-folder per party)")->required();
  commands.push_back({init, RunFederationInit});
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
  Args args;
  app.add_flag("--json", args.as_json, "Machine-readable output");
  std::vector<Command> commands;
  AddAuthorityCommands(app, args, commands);
  AddPartyCommands(app, args, commands);
  AddRecordCommands(app, args, commands);
  AddDirectoryCommands(app, args, commands);
  AddFederationCommands(app, args, commands);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  Context ctx;
  ctx.now = Now();
  auto pass = MaybePassphrase(args.passphrase_file);
  if (!pass.ok()) return Fail(pass.status());
  ctx.pass = Ptr(*pass);
  for (const Command& c : commands) {
    if (c.app->parsed()) return c.run(args, ctx);
  }
  return 2;
}
