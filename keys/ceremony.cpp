#include "keys/ceremony.h"

#include <sodium.h>
#include <sys/stat.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/file.h"
#include "keys/crypto.h"
#include "keys/keyfile.h"
#include "schema/codec.h"

namespace refbus::keys {
namespace {

namespace fs = std::filesystem;

constexpr mode_t kPrivateDirMode = 0700;

// The listing a party's record proposes again (prekey updates, rotations): a linkage
// evaluator keeps its linkage key.
Listing ListingOf(const schema::Party& p) {
  const schema::KeyRecord* k = p.ActiveKeys();
  return Listing{p.display_name,
                 p.agency_type,
                 p.region,
                 p.home_broker,
                 p.roles,
                 p.endpoint,
                 k != nullptr ? k->linkage_key : Bytes{}};
}

Result<std::string> OwnRecordPath(const std::string& dir, const Identity& id) {
  std::string path = JoinPath(dir, RecordFileName(id.party_id()));
  if (!PathExists(path)) {
    return NotFound(path + " is missing: the party's public record holds its listing");
  }
  return path;
}

Status RefuseOverwrite(const std::string& dir) {
  std::string key = JoinPath(dir, kIdentityFile);
  if (PathExists(key)) {
    return AlreadyExists(key +
                         " already exists; refusing to overwrite keys (use a new folder, "
                         "or rotate)");
  }
  return Status::Ok();
}

// Ids name folders: check them before any folder is made from one.
Status CheckId(const std::string& id) {
  if (!schema::IsValidPartyId(id)) {
    return InvalidArgument("'" + id +
                           "' is not a valid party id: use 3 to 48 characters a-z, 0-9 and '-'");
  }
  return Status::Ok();
}

Status CopyPublicFile(const std::string& from, const std::string& to) {
  REFBUS_ASSIGN_OR_RETURN(Bytes b, ReadFile(from, schema::kMaxDirectoryBytes + 64));
  return WriteFileAtomic(to, b, kPublicFileMode);
}

}  // namespace

std::string JoinPath(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / name).string();
}

std::string RecordFileName(const std::string& party_id) { return party_id + ".record"; }

Result<Bytes> ParseLinkageKeyHex(std::string_view hex) {
  auto k = HexDecode(hex);
  if (!k.ok() || k->size() != crypto_core_ristretto255_BYTES) {
    return InvalidArgument(
        "a linkage key is 64 hex digits (the public key refbus-broker linkage-key prints)");
  }
  return std::move(k).value();
}

Result<TrustAnchor> InitAuthority(const std::string& dir, const std::string& authority_id,
                                  const SecretBuffer* passphrase, UnixMillis now) {
  REFBUS_RETURN_IF_ERROR(CheckId(authority_id));
  REFBUS_RETURN_IF_ERROR(MakeDirectories(dir, kPrivateDirMode));
  REFBUS_RETURN_IF_ERROR(RefuseOverwrite(dir));
  REFBUS_ASSIGN_OR_RETURN(
      Identity id,
      Identity::Generate(authority_id, schema::PartyKind::kAuthority, now, kPrekeyLifetimeMs));
  Listing listing;
  listing.display_name = "Federation authority";
  REFBUS_ASSIGN_OR_RETURN(auto rec, MakePartyRecord(id, listing, now, nullptr));
  // The federation's root key: the moderate Argon2id cost (a second per use; it is used
  // offline, once per directory).
  REFBUS_RETURN_IF_ERROR(
      SaveIdentity(id, JoinPath(dir, kIdentityFile), passphrase, AuthorityKdfCost()));
  REFBUS_RETURN_IF_ERROR(WritePartyRecordFile(JoinPath(dir, kAnchorFile), rec));
  return TrustAnchor{id.party_id(), id.signing_public_key(), id.signing_key_id()};
}

Result<schema::SignedPartyRecord> InitParty(const std::string& dir, const std::string& party_id,
                                            schema::PartyKind kind, const Listing& listing,
                                            const SecretBuffer* passphrase, UnixMillis now) {
  REFBUS_RETURN_IF_ERROR(CheckId(party_id));
  if (kind != schema::PartyKind::kAgency && kind != schema::PartyKind::kBroker &&
      kind != schema::PartyKind::kAuditor) {
    return InvalidArgument("a party is an agency, a broker or an auditor");
  }
  if (kind == schema::PartyKind::kAgency &&
      listing.agency_type == schema::AgencyType::kUnspecified) {
    return InvalidArgument(
        "an agency needs a type (wee-center, police-unit, counseling-center, "
        "deletion-center, support-center, hotline)");
  }
  REFBUS_RETURN_IF_ERROR(MakeDirectories(dir, kPrivateDirMode));
  REFBUS_RETURN_IF_ERROR(RefuseOverwrite(dir));
  REFBUS_ASSIGN_OR_RETURN(Identity id, Identity::Generate(party_id, kind, now, kPrekeyLifetimeMs));
  REFBUS_ASSIGN_OR_RETURN(auto rec, MakePartyRecord(id, listing, now, nullptr));
  REFBUS_RETURN_IF_ERROR(SaveIdentity(id, JoinPath(dir, kIdentityFile), passphrase));
  REFBUS_RETURN_IF_ERROR(WritePartyRecordFile(JoinPath(dir, RecordFileName(party_id)), rec));
  return rec;
}

Result<schema::SignedPartyRecord> RotatePrekey(const std::string& dir,
                                               const SecretBuffer* passphrase, UnixMillis now) {
  std::string key_path = JoinPath(dir, kIdentityFile);
  REFBUS_ASSIGN_OR_RETURN(Identity id, LoadIdentity(key_path, passphrase));
  if (id.kind() != schema::PartyKind::kAgency) {
    return InvalidArgument("only agencies hold prekeys");
  }
  REFBUS_ASSIGN_OR_RETURN(std::string rec_path, OwnRecordPath(dir, id));
  REFBUS_ASSIGN_OR_RETURN(auto old_rec, ReadPartyRecordFile(rec_path));
  REFBUS_ASSIGN_OR_RETURN(auto unused, id.AddPrekey(now, now + kPrekeyLifetimeMs));
  (void)unused;
  id.PrunePrekeys(now, kPrekeyKeepAfterExpiryMs);
  REFBUS_ASSIGN_OR_RETURN(auto rec,
                          MakePartyRecord(id, ListingOf(old_rec.record.party), now, nullptr));
  REFBUS_RETURN_IF_ERROR(SaveIdentity(id, key_path, passphrase));
  REFBUS_RETURN_IF_ERROR(WritePartyRecordFile(rec_path, rec));
  return rec;
}

Result<schema::SignedPartyRecord> MoveHome(const std::string& dir, const std::string& home_broker,
                                           const SecretBuffer* passphrase, UnixMillis now) {
  if (!schema::IsValidPartyId(home_broker)) {
    return InvalidArgument("'" + home_broker + "' is not a broker id");
  }
  std::string key_path = JoinPath(dir, kIdentityFile);
  REFBUS_ASSIGN_OR_RETURN(Identity id, LoadIdentity(key_path, passphrase));
  if (id.kind() != schema::PartyKind::kAgency) {
    return InvalidArgument("only agencies have a home broker");
  }
  REFBUS_ASSIGN_OR_RETURN(std::string rec_path, OwnRecordPath(dir, id));
  REFBUS_ASSIGN_OR_RETURN(auto old_rec, ReadPartyRecordFile(rec_path));
  Listing listing = ListingOf(old_rec.record.party);
  if (listing.home_broker == home_broker) {
    return InvalidArgument(id.party_id() + " is already homed at " + home_broker);
  }
  listing.home_broker = home_broker;
  REFBUS_ASSIGN_OR_RETURN(auto rec, MakePartyRecord(id, listing, now, nullptr));
  REFBUS_RETURN_IF_ERROR(WritePartyRecordFile(rec_path, rec));
  return rec;
}

Result<schema::SignedPartyRecord> RotateIdentity(const std::string& dir,
                                                 const SecretBuffer* passphrase, UnixMillis now) {
  std::string key_path = JoinPath(dir, kIdentityFile);
  REFBUS_ASSIGN_OR_RETURN(Identity old_id, LoadIdentity(key_path, passphrase));
  REFBUS_ASSIGN_OR_RETURN(std::string rec_path, OwnRecordPath(dir, old_id));
  REFBUS_ASSIGN_OR_RETURN(auto old_rec, ReadPartyRecordFile(rec_path));
  REFBUS_ASSIGN_OR_RETURN(
      Identity fresh, Identity::Generate(old_id.party_id(), old_id.kind(), now, kPrekeyLifetimeMs));
  REFBUS_ASSIGN_OR_RETURN(auto rec,
                          MakePartyRecord(fresh, ListingOf(old_rec.record.party), now, &old_id));
  // The old key file is kept (retired/) so messages already sealed to its prekeys still
  // open; the operator deletes it once the backlog window has passed.
  std::string retired_dir = JoinPath(dir, "retired");
  REFBUS_RETURN_IF_ERROR(MakeDirectories(retired_dir, kPrivateDirMode));
  std::string retired = JoinPath(retired_dir, HexEncode(old_id.signing_key_id()) + ".key");
  REFBUS_RETURN_IF_ERROR(SaveIdentity(old_id, retired, passphrase));
  REFBUS_RETURN_IF_ERROR(SaveIdentity(fresh, key_path, passphrase));
  REFBUS_RETURN_IF_ERROR(WritePartyRecordFile(rec_path, rec));
  return rec;
}

Result<schema::SignedDirectory> IssueDirectory(const IssueRequest& req, UnixMillis now) {
  REFBUS_ASSIGN_OR_RETURN(Identity authority,
                          LoadIdentity(JoinPath(req.authority_dir, kIdentityFile), req.passphrase));
  if (authority.kind() != schema::PartyKind::kAuthority) {
    return InvalidArgument(req.authority_dir + " holds the keys of " + authority.party_id() +
                           ", not of an authority");
  }
  std::string base_path = JoinPath(req.authority_dir, kDirectoryFile);
  std::optional<schema::SignedDirectory> base;
  if (PathExists(base_path)) {
    REFBUS_ASSIGN_OR_RETURN(auto b, ReadDirectoryFile(base_path));
    // The authority checks its own last directory like any verifier would.
    if (!VerifySignature(authority.signing_public_key(), kLabelDirectory, b.directory_bytes,
                         b.signature)) {
      return Unauthenticated(base_path + " is not signed by this authority's key");
    }
    base = std::move(b);
  }
  std::string federation = req.federation;
  if (federation.empty()) {
    if (!base) return InvalidArgument("the first directory needs a federation name");
    federation = base->directory.federation;
  }
  DirectoryEdit edit = req.edit;
  for (const auto& path : req.record_paths) {
    REFBUS_ASSIGN_OR_RETURN(auto rec, ReadPartyRecordFile(path));
    edit.upserts.push_back(std::move(rec));
  }
  REFBUS_ASSIGN_OR_RETURN(
      schema::Directory next,
      NextDirectory(base ? &base->directory : nullptr, federation, edit, now, req.validity_ms));
  schema::SignedDirectory sd = SignDirectory(next, authority);
  REFBUS_RETURN_IF_ERROR(WriteDirectoryFile(base_path, sd));
  if (!req.out_path.empty()) REFBUS_RETURN_IF_ERROR(WriteDirectoryFile(req.out_path, sd));
  return sd;
}

Result<VerifiedDirectory> AcceptDirectoryInFolder(const std::string& dir,
                                                  const std::string& directory_path,
                                                  UnixMillis now) {
  REFBUS_ASSIGN_OR_RETURN(TrustAnchor anchor, LoadTrustAnchor(JoinPath(dir, kAnchorFile)));
  REFBUS_ASSIGN_OR_RETURN(TrustState state, TrustState::Open(JoinPath(dir, kTrustStateFile)));
  return LoadAndAcceptDirectory(
      directory_path.empty() ? JoinPath(dir, kDirectoryFile) : directory_path, anchor, state, now);
}

// ---------------------------------------------------------------- manifest

namespace {

struct ManifestParty {
  std::string id;
  schema::PartyKind kind;
  Listing listing;
};

Result<std::string> Str(const toml::table& t, std::string_view key, std::string_view where,
                        bool required) {
  auto v = t[key].value<std::string>();
  if (!v) {
    if (t.contains(key)) {
      return InvalidArgument(std::string(where) + ": '" + std::string(key) + "' must be a string");
    }
    if (required)
      return InvalidArgument(std::string(where) + ": '" + std::string(key) + "' is missing");
    return std::string();
  }
  return *v;
}

Result<std::vector<ManifestParty>> PartiesOf(const toml::table& root, std::string_view section,
                                             schema::PartyKind kind) {
  std::vector<ManifestParty> out;
  const toml::node* node = root.get(section);
  if (node == nullptr) return out;
  const toml::array* arr = node->as_array();
  if (arr == nullptr) {
    return InvalidArgument("manifest: '" + std::string(section) +
                           "' must be an array of tables ([[" + std::string(section) + "]])");
  }
  size_t i = 0;
  for (const auto& el : *arr) {
    std::string where = "manifest: [[" + std::string(section) + "]] #" + std::to_string(++i);
    const toml::table* t = el.as_table();
    if (t == nullptr) return InvalidArgument(where + " is not a table");
    ManifestParty p;
    p.kind = kind;
    REFBUS_ASSIGN_OR_RETURN(p.id, Str(*t, "id", where, true));
    where += " (" + p.id + ")";
    REFBUS_ASSIGN_OR_RETURN(p.listing.display_name, Str(*t, "name", where, false));
    REFBUS_ASSIGN_OR_RETURN(p.listing.region, Str(*t, "region", where, false));
    REFBUS_ASSIGN_OR_RETURN(p.listing.endpoint, Str(*t, "endpoint", where, false));
    if (kind == schema::PartyKind::kAgency) {
      REFBUS_ASSIGN_OR_RETURN(p.listing.home_broker, Str(*t, "home_broker", where, true));
      REFBUS_ASSIGN_OR_RETURN(std::string type, Str(*t, "type", where, true));
      auto at = schema::ParseAgencyType(type);
      if (!at) return InvalidArgument(where + ": unknown agency type '" + type + "'");
      p.listing.agency_type = *at;
    }
    if (const toml::array* roles = (*t)["roles"].as_array()) {
      for (const auto& r : *roles) {
        auto name = r.value<std::string>();
        auto role = name ? schema::ParseRole(*name) : std::nullopt;
        if (!role) return InvalidArgument(where + ": unknown role in 'roles'");
        p.listing.roles.push_back(*role);
      }
    }
    // A linkage evaluator's VOPRF public key (refbus-broker linkage-key prints it); the
    // directory checks it against the role (keys/directory.cpp CheckLinkageKeys).
    REFBUS_ASSIGN_OR_RETURN(std::string linkage_key, Str(*t, "linkage_key", where, false));
    if (!linkage_key.empty()) {
      auto k = ParseLinkageKeyHex(linkage_key);
      if (!k.ok()) return k.status().WithContext(where);
      p.listing.linkage_key = std::move(k).value();
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace

Status FederationInit(const std::string& manifest_path, const std::string& out_dir, UnixMillis now,
                      std::ostream& log) {
  toml::table root;
  try {
    root = toml::parse_file(manifest_path);
  } catch (const toml::parse_error& e) {
    return InvalidArgument("manifest " + manifest_path + " line " +
                           std::to_string(e.source().begin.line) + ": " +
                           std::string(e.description()));
  }
  REFBUS_ASSIGN_OR_RETURN(std::string federation, Str(root, "federation", "manifest", true));
  REFBUS_ASSIGN_OR_RETURN(std::string authority_id, Str(root, "authority", "manifest", true));
  int64_t valid_days = root["valid_days"].value_or<int64_t>(30);
  if (valid_days < 1 || valid_days > 366) {
    return InvalidArgument("manifest: 'valid_days' must be between 1 and 366");
  }
  std::vector<ManifestParty> parties;
  for (auto [section, kind] : {std::pair{"broker", schema::PartyKind::kBroker},
                               std::pair{"agency", schema::PartyKind::kAgency},
                               std::pair{"auditor", schema::PartyKind::kAuditor}}) {
    REFBUS_ASSIGN_OR_RETURN(auto list, PartiesOf(root, section, kind));
    parties.insert(parties.end(), list.begin(), list.end());
  }
  if (parties.empty()) return InvalidArgument("manifest lists no parties");
  std::vector<std::string> ids = {authority_id};
  for (const auto& p : parties) ids.push_back(p.id);
  for (const auto& id : ids) REFBUS_RETURN_IF_ERROR(CheckId(id).WithContext("manifest"));
  std::sort(ids.begin(), ids.end());
  if (auto dup = std::adjacent_find(ids.begin(), ids.end()); dup != ids.end()) {
    return InvalidArgument("manifest: id '" + *dup + "' is used twice");
  }

  std::string exchange = JoinPath(out_dir, "exchange");
  REFBUS_RETURN_IF_ERROR(MakeDirectories(exchange, 0755));

  // 1. The authority makes its key and publishes its anchor.
  std::string auth_dir = JoinPath(out_dir, authority_id);
  REFBUS_ASSIGN_OR_RETURN(TrustAnchor anchor, InitAuthority(auth_dir, authority_id, nullptr, now));
  REFBUS_RETURN_IF_ERROR(
      CopyPublicFile(JoinPath(auth_dir, kAnchorFile), JoinPath(exchange, kAnchorFile)));
  log << "authority " << authority_id << ": key " << Fingerprint(anchor.key_id) << "\n";

  // 2. Each party makes its keys in its own folder and hands over only its record.
  IssueRequest issue;
  issue.authority_dir = auth_dir;
  issue.federation = federation;
  issue.validity_ms = static_cast<UnixMillis>(valid_days) * kMillisPerDay;
  for (const auto& p : parties) {
    std::string dir = JoinPath(out_dir, p.id);
    REFBUS_ASSIGN_OR_RETURN(auto rec, InitParty(dir, p.id, p.kind, p.listing, nullptr, now));
    std::string shared = JoinPath(exchange, RecordFileName(p.id));
    REFBUS_RETURN_IF_ERROR(CopyPublicFile(JoinPath(dir, RecordFileName(p.id)), shared));
    issue.record_paths.push_back(shared);
    log << Name(p.kind) << " " << p.id << ": key "
        << Fingerprint(KeyId(KeyUse::kSigning, rec.record.party.keys[0].signing_key)) << "\n";
  }

  // 3. The authority issues the directory from the records it received.
  issue.out_path = JoinPath(exchange, kDirectoryFile);
  REFBUS_ASSIGN_OR_RETURN(auto sd, IssueDirectory(issue, now));
  log << "directory serial " << sd.directory.serial << " issued for federation " << federation
      << "\n";

  // 4. Every party receives the anchor and directory and verifies them itself.
  for (const auto& p : parties) {
    std::string dir = JoinPath(out_dir, p.id);
    REFBUS_RETURN_IF_ERROR(
        CopyPublicFile(JoinPath(exchange, kAnchorFile), JoinPath(dir, kAnchorFile)));
    REFBUS_RETURN_IF_ERROR(
        CopyPublicFile(JoinPath(exchange, kDirectoryFile), JoinPath(dir, kDirectoryFile)));
    auto v = AcceptDirectoryInFolder(dir, "", now);
    if (!v.ok()) return v.status().WithContext(p.id);
  }
  log << "all " << parties.size() << " parties verified directory serial " << sd.directory.serial
      << "\n";
  return Status::Ok();
}

}  // namespace refbus::keys
