#include "keys/directory.h"

#include <sodium.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <sstream>

#include "core/file.h"
#include "keys/crypto.h"
#include "schema/codec.h"

namespace refbus::keys {
namespace {

using schema::AgencyType;
using schema::KeyRecord;
using schema::KeyState;
using schema::Party;
using schema::PartyKind;
using schema::PartyStatus;
using schema::Role;

constexpr std::string_view kTrustStateMagic = "refbus-trust-state/1";

std::vector<Party>* ListFor(schema::Directory& d, PartyKind kind) {
  switch (kind) {
    case PartyKind::kAgency:
      return &d.agencies;
    case PartyKind::kBroker:
      return &d.brokers;
    case PartyKind::kAuditor:
      return &d.auditors;
    default:
      return nullptr;
  }
}

Status CheckPrekeys(const Party& p, const KeyRecord& k) {
  for (const auto& sp : k.prekeys) REFBUS_RETURN_IF_ERROR(CheckSignedPrekey(p, k, sp));
  return Status::Ok();
}

// A linkage evaluator's key generations carry a valid ristretto255 public key (not the
// identity); no other party's carry one.
Status CheckLinkageKeys(const Party& p) {
  const bool evaluator = p.HasRole(Role::kLinkageEvaluator);
  for (const auto& k : p.keys) {
    if (!evaluator && !k.linkage_key.empty()) {
      return InvalidArgument("record of " + p.id +
                             " carries a linkage key without the role linkage-evaluator");
    }
    if (evaluator && k.state == KeyState::kActive &&
        (k.linkage_key.size() != crypto_core_ristretto255_BYTES ||
         sodium_is_zero(k.linkage_key.data(), k.linkage_key.size()) == 1 ||
         crypto_core_ristretto255_is_valid_point(k.linkage_key.data()) != 1)) {
      return InvalidArgument("record of " + p.id +
                             " has the role linkage-evaluator but no valid linkage key");
    }
  }
  return Status::Ok();
}

// Roles a kind of party may hold, whatever its own record proposes.
Status CheckRoles(const Party& p) {
  for (Role r : p.roles) {
    bool ok = false;
    switch (p.kind) {
      case PartyKind::kAgency:
        ok = r == Role::kRefer || r == Role::kReceive || r == Role::kDeletion ||
             r == Role::kInvestigation || r == Role::kCaseLead || r == Role::kLinkageEvaluator ||
             r == Role::kLinkageEscrow;
        break;
      case PartyKind::kBroker:
        ok = r == Role::kRelay || r == Role::kWitness || r == Role::kLinkageEvaluator;
        break;
      case PartyKind::kAuditor:
        ok = r == Role::kAudit || r == Role::kWitness;
        break;
      default:
        break;
    }
    if (!ok) {
      return PermissionDenied("record of " + p.id + " asks for role '" +
                              std::string(schema::Name(r)) + "', which a " +
                              std::string(schema::Name(p.kind)) + " may not hold");
    }
  }
  return CheckLinkageKeys(p);
}

}  // namespace

std::vector<Role> DefaultRoles(PartyKind kind, AgencyType type) {
  switch (kind) {
    case PartyKind::kBroker:
      return {Role::kRelay, Role::kWitness};
    case PartyKind::kAuditor:
      return {Role::kAudit, Role::kWitness};
    case PartyKind::kAgency:
      break;
    default:
      return {};
  }
  std::vector<Role> roles = {Role::kRefer, Role::kReceive};
  switch (type) {
    case AgencyType::kPoliceUnit:
      roles.push_back(Role::kInvestigation);
      roles.push_back(Role::kCaseLead);
      break;
    case AgencyType::kDeletionCenter:
      roles.push_back(Role::kDeletion);
      break;
    case AgencyType::kCounselingCenter:
    case AgencyType::kSupportCenter:
    case AgencyType::kWeeCenter:
      roles.push_back(Role::kCaseLead);
      break;
    default:
      break;
  }
  return roles;
}

// ---------------------------------------------------------------- trust anchor

Result<TrustAnchor> LoadTrustAnchor(const std::string& path) {
  REFBUS_ASSIGN_OR_RETURN(auto rec, ReadPartyRecordFile(path));
  const Party& p = rec.record.party;
  if (p.kind != PartyKind::kAuthority) {
    return InvalidArgument(path + " is the record of " + std::string(Name(p.kind)) + " " + p.id +
                           ", not of the federation authority");
  }
  REFBUS_RETURN_IF_ERROR(VerifyPartyRecord(rec).WithContext(path));
  const KeyRecord* k = p.ActiveKeys();
  return TrustAnchor{p.id, k->signing_key, KeyId(KeyUse::kSigning, k->signing_key)};
}

// ---------------------------------------------------------------- party records

Result<schema::SignedPartyRecord> MakePartyRecord(const Identity& identity, const Listing& listing,
                                                  UnixMillis now, const Identity* previous) {
  if (previous != nullptr && previous->party_id() != identity.party_id()) {
    return InvalidArgument("the previous identity belongs to " + previous->party_id() + ", not " +
                           identity.party_id());
  }
  if (identity.kind() == PartyKind::kAgency && listing.home_broker.empty()) {
    return InvalidArgument("an agency needs a home broker");
  }
  schema::PartyRecord r;
  r.created_at_ms = now;
  Party& p = r.party;
  p.id = identity.party_id();
  p.kind = identity.kind();
  p.display_name = listing.display_name;
  p.agency_type = listing.agency_type;
  p.region = listing.region;
  p.home_broker = listing.home_broker;
  p.roles = listing.roles.empty() ? DefaultRoles(p.kind, p.agency_type) : listing.roles;
  p.endpoint = listing.endpoint;
  p.valid_from_ms = now;
  p.status = PartyStatus::kActive;
  p.status_since_ms = now;
  KeyRecord k;
  k.signing_key = identity.signing_public_key();
  k.transport_key = identity.transport_public_key();
  k.linkage_key = listing.linkage_key;
  for (const auto& e : identity.prekeys()) {
    if (e.signed_prekey.prekey.not_after_ms > now) k.prekeys.push_back(e.signed_prekey);
  }
  k.state = KeyState::kActive;
  k.state_since_ms = now;
  p.keys.push_back(std::move(k));

  schema::SignedPartyRecord s;
  s.record_bytes = schema::EncodePartyRecord(r);
  s.record = std::move(r);
  s.signature = identity.Sign(kLabelPartyRecord, s.record_bytes);
  if (previous != nullptr)
    s.previous_key_signature = previous->Sign(kLabelPartyRecord, s.record_bytes);
  return s;
}

Status VerifyPartyRecord(const schema::SignedPartyRecord& record) {
  const Party& p = record.record.party;
  if (p.keys.size() != 1 || p.keys[0].state != KeyState::kActive) {
    return Malformed("record of " + p.id + " must list exactly one active key generation");
  }
  const KeyRecord& k = p.keys[0];
  if (!VerifySignature(k.signing_key, kLabelPartyRecord, record.record_bytes, record.signature)) {
    return Unauthenticated("record of " + p.id +
                           " is not signed by the key it lists (no proof of possession)");
  }
  if (p.kind != PartyKind::kAuthority && k.transport_key.size() != schema::kPublicKeyBytes) {
    return Malformed("record of " + p.id + " has no transport key");
  }
  if (p.kind == PartyKind::kAgency) {
    if (k.prekeys.empty()) return Malformed("record of agency " + p.id + " has no prekey");
    if (p.agency_type == AgencyType::kUnspecified) {
      return Malformed("record of agency " + p.id + " has no agency type");
    }
  }
  return CheckPrekeys(p, k);
}

Result<schema::SignedPartyRecord> ReadPartyRecordFile(const std::string& path) {
  REFBUS_ASSIGN_OR_RETURN(Bytes raw, ReadFile(path, schema::kMaxRecordBytes));
  auto body = schema::StripMagic(schema::kPartyRecordFileMagic, raw, "refbus party record");
  if (!body.ok()) return body.status().WithContext(path);
  auto rec = schema::DecodeSignedPartyRecord(*body);
  if (!rec.ok()) return rec.status().WithContext(path);
  return rec;
}

Status WritePartyRecordFile(const std::string& path, const schema::SignedPartyRecord& record) {
  return WriteFileAtomic(
      path,
      schema::WithMagic(schema::kPartyRecordFileMagic, schema::EncodeSignedPartyRecord(record)),
      kPublicFileMode);
}

// ---------------------------------------------------------------- issuing

namespace {

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// A party new to the directory: listed active from now.
void AddParty(std::vector<Party>* list, const Party& in, UnixMillis now) {
  Party p = in;
  p.valid_from_ms = now;
  p.status = PartyStatus::kActive;
  p.status_since_ms = now;
  p.keys[0].state_since_ms = now;
  list->push_back(std::move(p));
}

// Key rotation: fresh becomes the active key; the one it replaces is retired (revoked if
// compromised). The old key must endorse the record unless the edit allows otherwise.
Status RotateKey(Party& cur, KeyRecord& active, const schema::SignedPartyRecord& rec,
                 const DirectoryEdit& edit, UnixMillis now) {
  const KeyRecord& fresh = rec.record.party.keys[0];
  // A key that was ever listed for this party (retired or revoked) is never made active
  // again.
  for (const auto& k : cur.keys) {
    if (k.signing_key == fresh.signing_key || k.transport_key == fresh.transport_key) {
      return FailedPrecondition("record of " + cur.id +
                                " brings a key that this party used before; make new keys");
    }
  }
  bool endorsed = !rec.previous_key_signature.empty() &&
                  VerifySignature(active.signing_key, kLabelPartyRecord, rec.record_bytes,
                                  rec.previous_key_signature);
  bool compromised = Contains(edit.compromised, cur.id);
  if (!endorsed && !edit.allow_unendorsed_rotation) {
    return Unauthenticated("record of " + cur.id +
                           " brings new keys that its current key did not endorse; check the "
                           "party out of band and allow an unendorsed rotation");
  }
  active.state = compromised ? KeyState::kRevoked : KeyState::kRetired;
  active.state_since_ms = now;
  KeyRecord next = fresh;
  next.state = KeyState::kActive;
  next.state_since_ms = now;
  cur.keys.insert(cur.keys.begin(), std::move(next));
  return Status::Ok();
}

// A party already listed: its listing follows the record, and the record brings either
// new prekeys (same keys) or new keys (a rotation, which sets *rotated).
Status UpdateParty(Party& cur, const schema::SignedPartyRecord& rec, const DirectoryEdit& edit,
                   UnixMillis now, bool* rotated) {
  const Party& in = rec.record.party;
  if (cur.status == PartyStatus::kRevoked) {
    return FailedPrecondition(cur.id + " was revoked; a revoked id is never reused");
  }
  KeyRecord* active = nullptr;
  for (auto& k : cur.keys) {
    if (k.state == KeyState::kActive) active = &k;
  }
  if (active == nullptr) return Internal(cur.id + " is active but has no active key");
  const KeyRecord& fresh = in.keys[0];
  // Listing fields follow the record.
  cur.display_name = in.display_name;
  cur.agency_type = in.agency_type;
  cur.region = in.region;
  cur.home_broker = in.home_broker;
  cur.roles = in.roles;
  cur.endpoint = in.endpoint;
  if (fresh.signing_key == active->signing_key) {
    if (fresh.transport_key != active->transport_key) {
      return InvalidArgument("record of " + cur.id +
                             " changes the transport key without rotating the signing key");
    }
    active->prekeys = fresh.prekeys;          // prekey rotation
    active->linkage_key = fresh.linkage_key;  // a new linkage key: a new pseudonym epoch
    return Status::Ok();
  }
  REFBUS_RETURN_IF_ERROR(RotateKey(cur, *active, rec, edit, now));
  *rotated = true;
  return Status::Ok();
}

// One record of edit.upserts: verified, then added or applied to the party it names.
// Appends the party's id to rotated when its signing key changed.
Status ApplyUpsert(schema::Directory& d, const schema::SignedPartyRecord& rec,
                   const DirectoryEdit& edit, UnixMillis now, std::vector<std::string>* rotated) {
  REFBUS_RETURN_IF_ERROR(VerifyPartyRecord(rec));
  const Party& in = rec.record.party;
  REFBUS_RETURN_IF_ERROR(CheckRoles(in));
  std::vector<Party>* list = ListFor(d, in.kind);
  if (list == nullptr) {
    return InvalidArgument("record of " + in.id + " is of kind " + std::string(Name(in.kind)) +
                           ", which the directory does not list");
  }
  if (const Party* other = d.Find(in.id); other != nullptr && other->kind != in.kind) {
    return AlreadyExists("id " + in.id + " is already used by a " + std::string(Name(other->kind)));
  }
  auto it = std::find_if(list->begin(), list->end(), [&](const Party& p) { return p.id == in.id; });
  if (it == list->end()) {
    AddParty(list, in, now);
    return Status::Ok();
  }
  bool key_rotated = false;
  REFBUS_RETURN_IF_ERROR(UpdateParty(*it, rec, edit, now, &key_rotated));
  if (key_rotated) rotated->push_back(it->id);
  return Status::Ok();
}

// Cuts off each party in edit.revoke: the party and all its keys become REVOKED.
Status ApplyRevocations(schema::Directory& d, const DirectoryEdit& edit, UnixMillis now) {
  for (const auto& id : edit.revoke) {
    bool found = false;
    for (auto* list : {&d.agencies, &d.brokers, &d.auditors}) {
      for (auto& p : *list) {
        if (p.id != id) continue;
        found = true;
        if (p.status == PartyStatus::kRevoked) continue;
        p.status = PartyStatus::kRevoked;
        p.status_since_ms = now;
        for (auto& k : p.keys) {
          if (k.state != KeyState::kRevoked) {
            k.state = KeyState::kRevoked;
            k.state_since_ms = now;
          }
        }
      }
    }
    if (!found) return NotFound("cannot revoke " + id + ": no such party in the directory");
  }
  return Status::Ok();
}

// A party marked compromised had its keys rotated or revoked by this edit.
Status CheckCompromisedHandled(const DirectoryEdit& edit, const std::vector<std::string>& rotated) {
  for (const auto& id : edit.compromised) {
    if (!Contains(rotated, id) && !Contains(edit.revoke, id)) {
      return InvalidArgument(id +
                             " is marked compromised but its keys were neither rotated "
                             "to new ones nor revoked: the compromised key would stay active");
    }
  }
  return Status::Ok();
}

// Consistency: agencies point at brokers that exist and are active.
Status CheckHomeBrokers(const schema::Directory& d) {
  for (const auto& a : d.agencies) {
    if (a.status != PartyStatus::kActive) continue;
    const Party* b = d.Find(a.home_broker);
    if (b == nullptr || b->kind != PartyKind::kBroker) {
      return InvalidArgument("agency " + a.id + " names home broker '" + a.home_broker +
                             "', which is not a broker in the directory");
    }
    if (b->status != PartyStatus::kActive) {
      return FailedPrecondition("agency " + a.id + " has revoked broker " + b->id +
                                " as its home broker: move it first");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<schema::Directory> NextDirectory(const schema::Directory* base,
                                        const std::string& federation, const DirectoryEdit& edit,
                                        UnixMillis now, UnixMillis validity_ms) {
  if (federation.empty()) return InvalidArgument("the federation name is empty");
  if (base != nullptr && base->federation != federation) {
    return InvalidArgument("the base directory belongs to federation '" + base->federation +
                           "', not '" + federation + "'");
  }
  schema::Directory d;
  if (base != nullptr) d = *base;
  d.format_version = 1;
  d.federation = federation;
  d.serial = (base == nullptr ? 0 : base->serial) + 1;
  d.issued_at_ms = now;
  d.expires_at_ms = now + validity_ms;

  std::vector<std::string> rotated;  // parties whose signing key really changed
  for (const auto& rec : edit.upserts) {
    REFBUS_RETURN_IF_ERROR(ApplyUpsert(d, rec, edit, now, &rotated));
  }
  REFBUS_RETURN_IF_ERROR(ApplyRevocations(d, edit, now));
  REFBUS_RETURN_IF_ERROR(CheckCompromisedHandled(edit, rotated));

  for (auto* list : {&d.agencies, &d.brokers, &d.auditors}) {
    std::sort(list->begin(), list->end(),
              [](const Party& a, const Party& b) { return a.id < b.id; });
  }
  d.BuildIndex();
  REFBUS_RETURN_IF_ERROR(CheckHomeBrokers(d));
  // Round-trip through the codec so that the issuer refuses what verifiers would refuse.
  REFBUS_ASSIGN_OR_RETURN(auto unused, schema::DecodeDirectory(schema::EncodeDirectory(d)));
  (void)unused;
  return d;
}

schema::SignedDirectory SignDirectory(const schema::Directory& directory,
                                      const Identity& authority) {
  if (authority.kind() != PartyKind::kAuthority) std::abort();
  schema::SignedDirectory sd;
  sd.directory_bytes = schema::EncodeDirectory(directory);
  sd.directory = directory;
  sd.authority_key_id = authority.signing_key_id();
  sd.signature = authority.Sign(kLabelDirectory, sd.directory_bytes);
  return sd;
}

Result<schema::SignedDirectory> ReadDirectoryFile(const std::string& path) {
  REFBUS_ASSIGN_OR_RETURN(Bytes raw, ReadFile(path, schema::kMaxDirectoryBytes + 64));
  auto body = schema::StripMagic(schema::kDirectoryFileMagic, raw, "refbus directory");
  if (!body.ok()) return body.status().WithContext(path);
  auto sd = schema::DecodeSignedDirectory(*body);
  if (!sd.ok()) return sd.status().WithContext(path);
  return sd;
}

Status WriteDirectoryFile(const std::string& path, const schema::SignedDirectory& directory) {
  return WriteFileAtomic(
      path,
      schema::WithMagic(schema::kDirectoryFileMagic, schema::EncodeSignedDirectory(directory)),
      kPublicFileMode);
}

Bytes DirectoryHash(const schema::SignedDirectory& directory) {
  Bytes h(crypto_generichash_BYTES);
  crypto_generichash(h.data(), h.size(), directory.directory_bytes.data(),
                     directory.directory_bytes.size(), nullptr, 0);
  return h;
}

// ---------------------------------------------------------------- verifying

Result<VerifiedDirectory> VerifyDirectory(ByteView signed_directory_bytes,
                                          const TrustAnchor& anchor, UnixMillis now) {
  REFBUS_ASSIGN_OR_RETURN(auto sd, schema::DecodeSignedDirectory(signed_directory_bytes));
  if (!ConstantTimeEquals(sd.authority_key_id, anchor.key_id)) {
    return Unauthenticated("directory is signed by key " + Fingerprint(sd.authority_key_id) +
                           ", not by the authority key " + Fingerprint(anchor.key_id) +
                           " this party trusts");
  }
  if (!VerifySignature(anchor.signing_key, kLabelDirectory, sd.directory_bytes, sd.signature)) {
    return Unauthenticated(
        "directory signature does not verify: the file was altered or not "
        "issued by the authority");
  }
  const auto& d = sd.directory;
  if (now + kClockSkewMs < d.issued_at_ms) {
    return Expired("directory serial " + std::to_string(d.serial) + " is issued in the future (" +
                   FormatUtc(d.issued_at_ms) + "); check this machine's clock");
  }
  VerifiedDirectory v;
  if (now >= d.expires_at_ms) {
    if (now >= d.expires_at_ms + kDirectoryGraceMs) {
      return Expired("directory serial " + std::to_string(d.serial) + " expired at " +
                     FormatUtc(d.expires_at_ms) + " (grace ended " +
                     FormatUtc(d.expires_at_ms + kDirectoryGraceMs) +
                     "); ask the authority for a new one");
    }
    v.in_grace = true;
  }
  v.signed_directory = std::move(sd);
  return v;
}

Result<TrustState> TrustState::Open(const std::string& path) {
  TrustState s;
  s.path_ = path;
  auto raw = ReadFile(path, 4096);
  if (!raw.ok()) {
    if (raw.status().code() == Status::Code::kNotFound) return s;
    return raw.status();
  }
  std::istringstream in(std::string(AsChars(*raw)));
  std::string magic, k1, serial_text, k2, hash_hex, extra;
  // The serial is plain decimal digits: istream's >> into uint64_t would take "-1" as
  // 2^64-1 (refusing every directory from then on) and "+7" as 7.
  uint64_t serial = 0;
  bool digits = !serial_text.empty();
  if (in >> magic >> k1 >> serial_text >> k2 >> hash_hex) {
    digits = !serial_text.empty() && serial_text.size() <= 20 &&
             std::all_of(serial_text.begin(), serial_text.end(),
                         [](char c) { return c >= '0' && c <= '9'; }) &&
             (serial_text.size() == 1 || serial_text[0] != '0');
    if (digits) {
      auto [end, ec] =
          std::from_chars(serial_text.data(), serial_text.data() + serial_text.size(), serial);
      digits = ec == std::errc() && end == serial_text.data() + serial_text.size();
    }
  }
  if (!in || !digits || (in >> extra) || magic != kTrustStateMagic || k1 != "serial" ||
      k2 != "hash") {
    return Malformed(path +
                     " is not a refbus trust state file; restore it from backup (deleting "
                     "it would re-open rollback to older directories)");
  }
  auto h = HexDecode(hash_hex);
  if (!h.ok() || h->size() != crypto_generichash_BYTES) {
    return Malformed(path + " has a damaged directory hash");
  }
  s.serial_ = serial;
  s.hash_ = std::move(*h);
  return s;
}

Status TrustState::Check(const schema::SignedDirectory& directory) const {
  uint64_t serial = directory.directory.serial;
  if (serial < serial_) {
    return Rollback("directory serial " + std::to_string(serial) + " is older than serial " +
                    std::to_string(serial_) + " already accepted here: refusing a rollback");
  }
  if (serial == serial_ && !ConstantTimeEquals(DirectoryHash(directory), hash_)) {
    return Rollback("directory serial " + std::to_string(serial) +
                    " differs from the directory with the same serial accepted earlier");
  }
  return Status::Ok();
}

Status TrustState::Accept(const schema::SignedDirectory& directory) {
  REFBUS_RETURN_IF_ERROR(Check(directory));
  if (directory.directory.serial == serial_) return Status::Ok();
  Bytes hash = DirectoryHash(directory);
  std::string text = std::string(kTrustStateMagic) + "\nserial " +
                     std::to_string(directory.directory.serial) + "\nhash " + HexEncode(hash) +
                     "\n";
  REFBUS_RETURN_IF_ERROR(WriteFileAtomic(path_, AsBytes(text), kPrivateFileMode));
  serial_ = directory.directory.serial;
  hash_ = std::move(hash);
  return Status::Ok();
}

Result<VerifiedDirectory> LoadAndAcceptDirectory(const std::string& directory_path,
                                                 const TrustAnchor& anchor, TrustState& state,
                                                 UnixMillis now) {
  REFBUS_ASSIGN_OR_RETURN(Bytes raw, ReadFile(directory_path, schema::kMaxDirectoryBytes + 64));
  auto body = schema::StripMagic(schema::kDirectoryFileMagic, raw, "refbus directory");
  if (!body.ok()) return body.status().WithContext(directory_path);
  auto v = VerifyDirectory(*body, anchor, now);
  if (!v.ok()) return v.status().WithContext(directory_path);
  REFBUS_RETURN_IF_ERROR(state.Accept(v->signed_directory).WithContext(directory_path));
  return v;
}

// ---------------------------------------------------------------- lookups

Result<const KeyRecord*> FindSigningKey(const schema::Directory& directory,
                                        std::string_view party_id, ByteView key_id,
                                        UnixMillis signed_at, UnixMillis now) {
  const Party* p = directory.Find(party_id);
  if (p == nullptr) {
    return Unauthenticated("signer " + std::string(party_id) + " is not in the directory");
  }
  if (p->status == PartyStatus::kRevoked) {
    return Revoked(p->id + " was revoked at " + FormatUtc(p->status_since_ms));
  }
  for (const auto& k : p->keys) {
    if (!ConstantTimeEquals(KeyId(KeyUse::kSigning, k.signing_key), key_id)) continue;
    switch (k.state) {
      case KeyState::kActive:
        return &k;
      case KeyState::kRetired:
        if (signed_at < k.state_since_ms && now < k.state_since_ms + kRetiredKeyAcceptMs) {
          return &k;
        }
        return Revoked("key " + Fingerprint(key_id) + " of " + p->id + " was rotated out at " +
                       FormatUtc(k.state_since_ms));
      case KeyState::kRevoked:
      case KeyState::kUnspecified:
        return Revoked("key " + Fingerprint(key_id) + " of " + p->id + " is revoked");
    }
  }
  return Unauthenticated("key " + Fingerprint(key_id) + " is not a key of " + p->id);
}

Status CheckSignedPrekey(const schema::Party& owner, const schema::KeyRecord& keys,
                         const schema::SignedPrekey& prekey) {
  const schema::Prekey& pk = prekey.prekey;
  if (!VerifySignature(keys.signing_key, kLabelPrekey, prekey.prekey_bytes, prekey.signature)) {
    return Unauthenticated("a prekey of " + owner.id + " is not signed by its signing key");
  }
  if (pk.owner_id != owner.id) {
    return Unauthenticated("a prekey in the record of " + owner.id + " names owner " + pk.owner_id);
  }
  if (pk.public_key.size() != schema::kPublicKeyBytes) {
    return Malformed("a prekey of " + owner.id + " is not an X25519 public key");
  }
  if (pk.not_after_ms <= pk.not_before_ms) {
    return InvalidArgument("prekey " + Fingerprint(KeyId(KeyUse::kPrekey, pk.public_key)) + " of " +
                           owner.id + " has an empty validity window");
  }
  if (pk.not_after_ms - pk.not_before_ms > kPrekeyLifetimeMs) {
    return InvalidArgument("prekey " + Fingerprint(KeyId(KeyUse::kPrekey, pk.public_key)) + " of " +
                           owner.id + " is valid from " + FormatUtc(pk.not_before_ms) + " to " +
                           FormatUtc(pk.not_after_ms) +
                           ": prekeys may be valid for at most 30 days (rotate it)");
  }
  return Status::Ok();
}

Result<RecipientPrekey> CurrentPrekey(const schema::Directory& directory,
                                      std::string_view agency_id, UnixMillis now) {
  const Party* p = directory.Find(agency_id);
  if (p == nullptr || p->kind != PartyKind::kAgency) {
    return NotFound("recipient " + std::string(agency_id) + " is not an agency in the directory");
  }
  if (p->status != PartyStatus::kActive) {
    return Revoked("recipient " + p->id + " is revoked");
  }
  const KeyRecord* k = p->ActiveKeys();
  if (k == nullptr) return Revoked("recipient " + p->id + " has no active key");
  const schema::SignedPrekey* best = nullptr;
  for (const auto& sp : k->prekeys) {
    if (sp.prekey.not_before_ms > now + kClockSkewMs || now >= sp.prekey.not_after_ms) continue;
    if (!CheckSignedPrekey(*p, *k, sp).ok()) continue;
    if (best == nullptr || sp.prekey.not_before_ms > best->prekey.not_before_ms) best = &sp;
  }
  if (best == nullptr) {
    return Expired("recipient " + p->id +
                   " has no valid prekey in this directory; it must publish a new one");
  }
  return RecipientPrekey{p->id, best->prekey.public_key,
                         KeyId(KeyUse::kPrekey, best->prekey.public_key)};
}

}  // namespace refbus::keys
