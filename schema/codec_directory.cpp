// Codec for the federation directory and its parts (schema/codec.h "Directory and its
// parts"): prekeys, parties, the directory, and the party records of the key ceremony.
#include <algorithm>
#include <string>
#include <vector>

#include "refbus/v1/directory.pb.h"
#include "schema/codec.h"
#include "schema/codec_internal.h"

namespace refbus::schema {
namespace {

using namespace internal;  // NOLINT(google-build-using-namespace): codec helpers

Result<Prekey> FromProto(const pb::Prekey& m) {
  constexpr std::string_view kWhat = "prekey";
  REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "owner_id", m.owner_id()));
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "public_key", m.public_key(), kPublicKeyBytes));
  if (m.not_after_ms() <= m.not_before_ms()) {
    return FieldError(kWhat, "not_after_ms", "is not after not_before_ms");
  }
  return Prekey{m.owner_id(), B(m.public_key()), m.not_before_ms(), m.not_after_ms()};
}

pb::Prekey ToProto(const Prekey& p) {
  pb::Prekey m;
  m.set_owner_id(p.owner_id);
  m.set_public_key(S(p.public_key));
  m.set_not_before_ms(p.not_before_ms);
  m.set_not_after_ms(p.not_after_ms);
  return m;
}

Result<Party> FromProto(const pb::Party& m) {
  constexpr std::string_view kWhat = "party";
  Party p;
  REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "id", m.id()));
  std::string what = "party " + m.id();
  REFBUS_RETURN_IF_ERROR(CheckEnum<PartyKind>(what, "kind", m.kind(), pb::PartyKind_MAX));
  REFBUS_RETURN_IF_ERROR(CheckEnum<AgencyType>(what, "agency_type", m.agency_type(),
                                               pb::AgencyType_MAX, /*allow_zero=*/true));
  REFBUS_RETURN_IF_ERROR(CheckEnum<PartyStatus>(what, "status", m.status(), pb::PartyStatus_MAX));
  if (!m.home_broker().empty()) {
    REFBUS_RETURN_IF_ERROR(CheckPartyId(what, "home_broker", m.home_broker()));
  }
  if (m.display_name().size() > 200) return FieldError(what, "display_name", "is too long");
  if (m.region().size() > 48) return FieldError(what, "region", "is too long");
  if (m.endpoint().size() > 256) return FieldError(what, "endpoint", "is too long");
  p.id = m.id();
  p.kind = static_cast<PartyKind>(m.kind());
  p.display_name = m.display_name();
  p.agency_type = static_cast<AgencyType>(m.agency_type());
  p.region = m.region();
  p.home_broker = m.home_broker();
  REFBUS_ASSIGN_OR_RETURN(p.roles, (EnumList<Role>(what, "roles", m.roles(), pb::Role_MAX)));
  if (m.keys_size() == 0) return FieldError(what, "keys", "is empty");
  for (const auto& k : m.keys()) {
    KeyRecord rec;
    REFBUS_RETURN_IF_ERROR(CheckSize(what, "keys.signing_key", k.signing_key(), kPublicKeyBytes));
    REFBUS_RETURN_IF_ERROR(
        CheckSizeOrEmpty(what, "keys.transport_key", k.transport_key(), kPublicKeyBytes));
    REFBUS_RETURN_IF_ERROR(CheckEnum<KeyState>(what, "keys.state", k.state(), pb::KeyState_MAX));
    REFBUS_RETURN_IF_ERROR(
        CheckSizeOrEmpty(what, "keys.linkage_key", k.linkage_key(), kPublicKeyBytes));
    rec.linkage_key = B(k.linkage_key());
    rec.signing_key = B(k.signing_key());
    rec.transport_key = B(k.transport_key());
    rec.state = static_cast<KeyState>(k.state());
    rec.state_since_ms = k.state_since_ms();
    for (const auto& sp : k.prekeys()) {
      REFBUS_RETURN_IF_ERROR(
          CheckSize(what, "keys.prekeys.signature", sp.signature(), kSignatureBytes));
      pb::Prekey pm;
      REFBUS_RETURN_IF_ERROR(Parse(pm, AsBytes(sp.prekey()), kMaxRecordBytes, what + " prekey"));
      REFBUS_ASSIGN_OR_RETURN(Prekey prekey, FromProto(pm));
      if (prekey.owner_id != p.id) {
        return FieldError(what, "keys.prekeys.owner_id", "names another party");
      }
      rec.prekeys.push_back({B(sp.prekey()), std::move(prekey), B(sp.signature())});
    }
    p.keys.push_back(std::move(rec));
  }
  p.valid_from_ms = m.valid_from_ms();
  p.valid_until_ms = m.valid_until_ms();
  p.status = static_cast<PartyStatus>(m.status());
  p.status_since_ms = m.status_since_ms();
  p.endpoint = m.endpoint();
  return p;
}

void ToProto(const Party& p, pb::Party* m) {
  m->set_id(p.id);
  m->set_kind(static_cast<pb::PartyKind>(p.kind));
  m->set_display_name(p.display_name);
  m->set_agency_type(static_cast<pb::AgencyType>(p.agency_type));
  m->set_region(p.region);
  m->set_home_broker(p.home_broker);
  PutEnumList(p.roles, m->mutable_roles());
  for (const auto& k : p.keys) {
    auto* out = m->add_keys();
    out->set_signing_key(S(k.signing_key));
    out->set_transport_key(S(k.transport_key));
    out->set_state(static_cast<pb::KeyState>(k.state));
    out->set_state_since_ms(k.state_since_ms);
    out->set_linkage_key(S(k.linkage_key));
    for (const auto& sp : k.prekeys) {
      auto* o = out->add_prekeys();
      o->set_prekey(S(sp.prekey_bytes));
      o->set_signature(S(sp.signature));
    }
  }
  m->set_valid_from_ms(p.valid_from_ms);
  m->set_valid_until_ms(p.valid_until_ms);
  m->set_status(static_cast<pb::PartyStatus>(p.status));
  m->set_status_since_ms(p.status_since_ms);
  m->set_endpoint(p.endpoint);
}

Result<std::vector<Party>> PartyList(const google::protobuf::RepeatedPtrField<pb::Party>& in,
                                     PartyKind want, std::string_view list) {
  std::vector<Party> out;
  out.reserve(static_cast<size_t>(in.size()));
  for (const auto& m : in) {
    REFBUS_ASSIGN_OR_RETURN(Party p, FromProto(m));
    if (p.kind != want) {
      return Malformed("directory: party " + p.id + " in the " + std::string(list) +
                       " list is of kind " + std::string(Name(p.kind)));
    }
    out.push_back(std::move(p));
  }
  return out;
}

Result<Directory> FromProto(const pb::Directory& m) {
  Directory d;
  d.format_version = m.format_version();
  if (d.format_version != 1) {
    return FieldError("directory", "format_version",
                      "is " + std::to_string(d.format_version) + ", expected 1");
  }
  if (m.federation().empty() || m.federation().size() > 64) {
    return FieldError("directory", "federation", "is empty or too long");
  }
  d.federation = m.federation();
  d.serial = m.serial();
  d.issued_at_ms = m.issued_at_ms();
  d.expires_at_ms = m.expires_at_ms();
  if (d.expires_at_ms <= d.issued_at_ms) {
    return FieldError("directory", "expires_at_ms", "is not after issued_at_ms");
  }
  REFBUS_ASSIGN_OR_RETURN(d.agencies, PartyList(m.agencies(), PartyKind::kAgency, "agency"));
  REFBUS_ASSIGN_OR_RETURN(d.brokers, PartyList(m.brokers(), PartyKind::kBroker, "broker"));
  REFBUS_ASSIGN_OR_RETURN(d.auditors, PartyList(m.auditors(), PartyKind::kAuditor, "auditor"));
  // Ids are unique across the whole directory: ZAP's User-Id names exactly one party.
  std::vector<std::string_view> ids;
  for (const auto* list : {&d.agencies, &d.brokers, &d.auditors}) {
    for (const auto& p : *list) ids.push_back(p.id);
  }
  std::sort(ids.begin(), ids.end());
  if (std::adjacent_find(ids.begin(), ids.end()) != ids.end()) {
    return Malformed("directory: a party id appears twice");
  }
  d.BuildIndex();
  return d;
}

pb::Directory ToProto(const Directory& d) {
  pb::Directory m;
  m.set_format_version(d.format_version);
  m.set_federation(d.federation);
  m.set_serial(d.serial);
  m.set_issued_at_ms(d.issued_at_ms);
  m.set_expires_at_ms(d.expires_at_ms);
  for (const auto& p : d.agencies) ToProto(p, m.add_agencies());
  for (const auto& p : d.brokers) ToProto(p, m.add_brokers());
  for (const auto& p : d.auditors) ToProto(p, m.add_auditors());
  return m;
}

}  // namespace

Result<Prekey> DecodePrekey(ByteView bytes) {
  pb::Prekey m;
  REFBUS_RETURN_IF_ERROR(Parse(m, bytes, kMaxRecordBytes, "prekey"));
  return FromProto(m);
}

Bytes EncodePrekey(const Prekey& prekey) { return Serialize(ToProto(prekey)); }

Result<SignedPrekey> DecodeSignedPrekey(ByteView bytes) {
  constexpr std::string_view kWhat = "signed prekey";
  pb::SignedPrekey m;
  REFBUS_RETURN_IF_ERROR(Parse(m, bytes, kMaxSignedPrekeyBytes, kWhat));
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "signature", m.signature(), kSignatureBytes));
  pb::Prekey pm;
  REFBUS_RETURN_IF_ERROR(Parse(pm, AsBytes(m.prekey()), kMaxSignedPrekeyBytes, "prekey"));
  REFBUS_ASSIGN_OR_RETURN(Prekey prekey, FromProto(pm));
  return SignedPrekey{B(m.prekey()), std::move(prekey), B(m.signature())};
}

Bytes EncodeSignedPrekey(const SignedPrekey& prekey) {
  pb::SignedPrekey m;
  m.set_prekey(S(prekey.prekey_bytes));
  m.set_signature(S(prekey.signature));
  return Serialize(m);
}

Result<Directory> DecodeDirectory(ByteView bytes) {
  pb::Directory m;
  REFBUS_RETURN_IF_ERROR(Parse(m, bytes, kMaxDirectoryBytes, "directory"));
  return FromProto(m);
}

Bytes EncodeDirectory(const Directory& directory) { return Serialize(ToProto(directory)); }

Result<SignedDirectory> DecodeSignedDirectory(ByteView bytes) {
  pb::SignedDirectory m;
  REFBUS_RETURN_IF_ERROR(Parse(m, bytes, kMaxDirectoryBytes, "signed directory"));
  REFBUS_RETURN_IF_ERROR(
      CheckSize("signed directory", "authority_key_id", m.authority_key_id(), kKeyIdBytes));
  REFBUS_RETURN_IF_ERROR(
      CheckSize("signed directory", "signature", m.signature(), kSignatureBytes));
  SignedDirectory sd;
  sd.directory_bytes = B(m.directory());
  REFBUS_ASSIGN_OR_RETURN(sd.directory, DecodeDirectory(sd.directory_bytes));
  sd.authority_key_id = B(m.authority_key_id());
  sd.signature = B(m.signature());
  return sd;
}

Bytes EncodeSignedDirectory(const SignedDirectory& sd) {
  pb::SignedDirectory m;
  m.set_directory(S(sd.directory_bytes));
  m.set_authority_key_id(S(sd.authority_key_id));
  m.set_signature(S(sd.signature));
  return Serialize(m);
}

Result<PartyRecord> DecodePartyRecord(ByteView bytes) {
  pb::PartyRecord m;
  REFBUS_RETURN_IF_ERROR(Parse(m, bytes, kMaxRecordBytes, "party record"));
  if (m.format_version() != 1) {
    return FieldError("party record", "format_version",
                      "is " + std::to_string(m.format_version()) + ", expected 1");
  }
  if (!m.has_party()) return FieldError("party record", "party", "is missing");
  PartyRecord r;
  REFBUS_ASSIGN_OR_RETURN(r.party, FromProto(m.party()));
  r.created_at_ms = m.created_at_ms();
  return r;
}

Bytes EncodePartyRecord(const PartyRecord& record) {
  pb::PartyRecord m;
  m.set_format_version(record.format_version);
  ToProto(record.party, m.mutable_party());
  m.set_created_at_ms(record.created_at_ms);
  return Serialize(m);
}

Result<SignedPartyRecord> DecodeSignedPartyRecord(ByteView bytes) {
  pb::SignedPartyRecord m;
  REFBUS_RETURN_IF_ERROR(Parse(m, bytes, kMaxRecordBytes, "signed party record"));
  REFBUS_RETURN_IF_ERROR(
      CheckSize("signed party record", "signature", m.signature(), kSignatureBytes));
  REFBUS_RETURN_IF_ERROR(CheckSizeOrEmpty("signed party record", "previous_key_signature",
                                          m.previous_key_signature(), kSignatureBytes));
  SignedPartyRecord r;
  r.record_bytes = B(m.record());
  REFBUS_ASSIGN_OR_RETURN(r.record, DecodePartyRecord(r.record_bytes));
  r.signature = B(m.signature());
  r.previous_key_signature = B(m.previous_key_signature());
  return r;
}

Bytes EncodeSignedPartyRecord(const SignedPartyRecord& r) {
  pb::SignedPartyRecord m;
  m.set_record(S(r.record_bytes));
  m.set_signature(S(r.signature));
  m.set_previous_key_signature(S(r.previous_key_signature));
  return Serialize(m);
}

}  // namespace refbus::schema
