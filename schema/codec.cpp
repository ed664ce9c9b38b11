// Codec for envelopes, consent grants, audit entries and secret key files, with the
// identifier rules and file magic lines (schema/codec.h). Frames are in codec_frame.cpp,
// the directory in codec_directory.cpp, case messages in codec_workflow.cpp.
#include "schema/codec.h"

#include <google/protobuf/stubs/logging.h>
#include <string.h>

#include <algorithm>
#include <climits>
#include <mutex>
#include <string>

#include "refbus/v1/audit.pb.h"
#include "refbus/v1/consent.pb.h"
#include "refbus/v1/envelope.pb.h"
#include "refbus/v1/keyfile.pb.h"
#include "refbus/v1/transport.pb.h"
#include "schema/codec_internal.h"

namespace refbus::schema {
namespace {

using namespace internal;  // NOLINT(google-build-using-namespace): codec helpers

// ---- Envelope ----

Result<EnvelopeHeader> FromProto(const pb::EnvelopeHeader& m) {
  constexpr std::string_view kWhat = "envelope header";
  EnvelopeHeader h;
  h.version = m.version();
  if (h.version != 1) {
    return FieldError(kWhat, "version", "is " + std::to_string(h.version) + ", expected 1");
  }
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "message_id", m.message_id(), kMessageIdBytes));
  REFBUS_RETURN_IF_ERROR(CheckEnum<MessageKind>(kWhat, "kind", m.kind(), pb::MessageKind_MAX));
  REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "sender_id", m.sender_id()));
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "sender_key_id", m.sender_key_id(), kKeyIdBytes));
  if (m.recipients_size() == 0) return FieldError(kWhat, "recipients", "is empty");
  if (static_cast<size_t>(m.recipients_size()) > kMaxRecipients) {
    return FieldError(kWhat, "recipients", "has more than " + std::to_string(kMaxRecipients));
  }
  for (const auto& r : m.recipients()) {
    REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "recipients.agency_id", r.agency_id()));
    REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "recipients.prekey_id", r.prekey_id(), kKeyIdBytes));
    REFBUS_RETURN_IF_ERROR(
        CheckSize(kWhat, "recipients.wrapped_key", r.wrapped_key(), kWrappedKeyBytes));
    for (const auto& seen : h.recipients) {
      if (seen.agency_id == r.agency_id()) {
        return FieldError(kWhat, "recipients", "names one agency twice");
      }
    }
    h.recipients.push_back({r.agency_id(), B(r.prekey_id()), B(r.wrapped_key())});
  }
  if (!m.case_ref().empty() && !IsValidCaseRef(m.case_ref())) {
    return FieldError(kWhat, "case_ref", "is not a valid case pseudonym");
  }
  REFBUS_RETURN_IF_ERROR(
      CheckSizeOrEmpty(kWhat, "consent_grant_id", m.consent_grant_id(), kGrantIdBytes));
  REFBUS_RETURN_IF_ERROR(
      CheckEnum<Purpose>(kWhat, "purpose", m.purpose(), pb::Purpose_MAX, /*allow_zero=*/true));
  REFBUS_ASSIGN_OR_RETURN(h.categories, (EnumList<DataCategory>(kWhat, "categories", m.categories(),
                                                                pb::DataCategory_MAX)));
  if (m.expires_at_ms() <= m.created_at_ms()) {
    return FieldError(kWhat, "expires_at_ms", "is not after created_at_ms");
  }
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "ephemeral_key", m.ephemeral_key(), kPublicKeyBytes));
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "content_nonce", m.content_nonce(), kNonceBytes));
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "key_commitment", m.key_commitment(), kCommitmentBytes));
  h.message_id = B(m.message_id());
  h.kind = static_cast<MessageKind>(m.kind());
  h.sender_id = m.sender_id();
  h.sender_key_id = B(m.sender_key_id());
  h.case_ref = m.case_ref();
  h.consent_grant_id = B(m.consent_grant_id());
  h.purpose = static_cast<Purpose>(m.purpose());
  h.created_at_ms = m.created_at_ms();
  h.expires_at_ms = m.expires_at_ms();
  h.ephemeral_key = B(m.ephemeral_key());
  h.content_nonce = B(m.content_nonce());
  h.key_commitment = B(m.key_commitment());
  return h;
}

pb::EnvelopeHeader ToProto(const EnvelopeHeader& h) {
  pb::EnvelopeHeader m;
  m.set_version(h.version);
  m.set_message_id(S(h.message_id));
  m.set_kind(static_cast<pb::MessageKind>(h.kind));
  m.set_sender_id(h.sender_id);
  m.set_sender_key_id(S(h.sender_key_id));
  for (const auto& r : h.recipients) {
    auto* out = m.add_recipients();
    out->set_agency_id(r.agency_id);
    out->set_prekey_id(S(r.prekey_id));
    out->set_wrapped_key(S(r.wrapped_key));
  }
  m.set_case_ref(h.case_ref);
  m.set_consent_grant_id(S(h.consent_grant_id));
  m.set_purpose(static_cast<pb::Purpose>(h.purpose));
  PutEnumList(h.categories, m.mutable_categories());
  m.set_created_at_ms(h.created_at_ms);
  m.set_expires_at_ms(h.expires_at_ms);
  m.set_ephemeral_key(S(h.ephemeral_key));
  m.set_content_nonce(S(h.content_nonce));
  m.set_key_commitment(S(h.key_commitment));
  return m;
}

// ---- Consent ----

Result<ConsentGrant> FromProto(const pb::ConsentGrant& m) {
  constexpr std::string_view kWhat = "consent grant";
  ConsentGrant g;
  g.format_version = m.format_version();
  if (g.format_version != 1) {
    return FieldError(kWhat, "format_version",
                      "is " + std::to_string(g.format_version) + ", expected 1");
  }
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "grant_id", m.grant_id(), kGrantIdBytes));
  if (!IsValidCaseRef(m.case_ref())) {
    return FieldError(kWhat, "case_ref", "is not a valid case pseudonym");
  }
  REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "recorded_by", m.recorded_by()));
  REFBUS_RETURN_IF_ERROR(CheckEnum<LegalBasis>(kWhat, "basis", m.basis(), pb::LegalBasis_MAX));
  if (m.legal_article().size() > 128) return FieldError(kWhat, "legal_article", "is too long");
  // It is shown to auditors and written into the audit log: text, no control characters.
  for (char c : m.legal_article()) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return FieldError(kWhat, "legal_article", "holds a control character");
    }
  }
  for (const auto& r : m.allowed_recipients()) {
    REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "allowed_recipients", r));
  }
  if (m.expires_at_ms() <= m.issued_at_ms()) {
    return FieldError(kWhat, "expires_at_ms", "is not after issued_at_ms");
  }
  g.grant_id = B(m.grant_id());
  g.case_ref = m.case_ref();
  g.recorded_by = m.recorded_by();
  g.basis = static_cast<LegalBasis>(m.basis());
  g.legal_article = m.legal_article();
  REFBUS_ASSIGN_OR_RETURN(
      g.consenters, (EnumList<Consenter>(kWhat, "consenters", m.consenters(), pb::Consenter_MAX)));
  g.subject_assent = m.subject_assent();
  REFBUS_ASSIGN_OR_RETURN(g.purposes,
                          (EnumList<Purpose>(kWhat, "purposes", m.purposes(), pb::Purpose_MAX)));
  REFBUS_ASSIGN_OR_RETURN(g.categories, (EnumList<DataCategory>(kWhat, "categories", m.categories(),
                                                                pb::DataCategory_MAX)));
  g.allowed_recipients.assign(m.allowed_recipients().begin(), m.allowed_recipients().end());
  REFBUS_ASSIGN_OR_RETURN(g.allowed_agency_types,
                          (EnumList<AgencyType>(kWhat, "allowed_agency_types",
                                                m.allowed_agency_types(), pb::AgencyType_MAX)));
  g.onward_sharing = m.onward_sharing();
  g.issued_at_ms = m.issued_at_ms();
  g.expires_at_ms = m.expires_at_ms();
  g.retention_until_ms = m.retention_until_ms();
  g.emergency_override = m.emergency_override();
  g.representative_conflict = m.representative_conflict();
  return g;
}

pb::ConsentGrant ToProto(const ConsentGrant& g) {
  pb::ConsentGrant m;
  m.set_format_version(g.format_version);
  m.set_grant_id(S(g.grant_id));
  m.set_case_ref(g.case_ref);
  m.set_recorded_by(g.recorded_by);
  m.set_basis(static_cast<pb::LegalBasis>(g.basis));
  m.set_legal_article(g.legal_article);
  PutEnumList(g.consenters, m.mutable_consenters());
  m.set_subject_assent(g.subject_assent);
  PutEnumList(g.purposes, m.mutable_purposes());
  PutEnumList(g.categories, m.mutable_categories());
  for (const auto& r : g.allowed_recipients) m.add_allowed_recipients(r);
  PutEnumList(g.allowed_agency_types, m.mutable_allowed_agency_types());
  m.set_onward_sharing(g.onward_sharing);
  m.set_issued_at_ms(g.issued_at_ms);
  m.set_expires_at_ms(g.expires_at_ms);
  m.set_retention_until_ms(g.retention_until_ms);
  m.set_emergency_override(g.emergency_override);
  m.set_representative_conflict(g.representative_conflict);
  return m;
}

}  // namespace

bool IsValidPartyId(std::string_view id) {
  if (id.size() < 3 || id.size() > 48) return false;
  if (id.front() == '-' || id.back() == '-') return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool IsValidCaseRef(std::string_view ref) {
  if (ref.size() < 8 || ref.size() > 64) return false;
  for (char c : ref) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
  }
  return true;
}

Result<EnvelopeHeader> DecodeEnvelopeHeader(ByteView bytes) {
  pb::EnvelopeHeader m;
  REFBUS_RETURN_IF_ERROR(Parse(m, bytes, kMaxRecordBytes, "envelope header"));
  return FromProto(m);
}

Bytes EncodeEnvelopeHeader(const EnvelopeHeader& header) { return Serialize(ToProto(header)); }

Result<SealedEnvelope> DecodeEnvelope(ByteView bytes) {
  pb::SealedEnvelope m;
  REFBUS_RETURN_IF_ERROR(Parse(m, bytes, kMaxEnvelopeBytes, "envelope"));
  REFBUS_RETURN_IF_ERROR(CheckSize("envelope", "signature", m.signature(), kSignatureBytes));
  if (m.ciphertext().size() < 16) {
    return FieldError("envelope", "ciphertext", "is shorter than an authentication tag");
  }
  SealedEnvelope e;
  e.header_bytes = B(m.header());
  REFBUS_ASSIGN_OR_RETURN(e.header, DecodeEnvelopeHeader(e.header_bytes));
  e.ciphertext = B(m.ciphertext());
  e.signature = B(m.signature());
  return e;
}

Bytes EncodeEnvelope(const SealedEnvelope& envelope) {
  pb::SealedEnvelope m;
  m.set_header(S(envelope.header_bytes));
  m.set_ciphertext(S(envelope.ciphertext));
  m.set_signature(S(envelope.signature));
  return Serialize(m);
}

Result<ConsentGrant> DecodeConsentGrant(ByteView bytes) {
  pb::ConsentGrant m;
  REFBUS_RETURN_IF_ERROR(Parse(m, bytes, kMaxRecordBytes, "consent grant"));
  return FromProto(m);
}

Bytes EncodeConsentGrant(const ConsentGrant& grant) { return Serialize(ToProto(grant)); }

Result<SignedConsentGrant> DecodeSignedConsentGrant(ByteView bytes) {
  constexpr std::string_view kWhat = "signed consent grant";
  pb::SignedConsentGrant m;
  REFBUS_RETURN_IF_ERROR(Parse(m, bytes, kMaxRecordBytes, kWhat));
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "signer_key_id", m.signer_key_id(), kKeyIdBytes));
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "signature", m.signature(), kSignatureBytes));
  SignedConsentGrant g;
  g.grant_bytes = B(m.grant());
  REFBUS_ASSIGN_OR_RETURN(g.grant, DecodeConsentGrant(g.grant_bytes));
  g.signer_key_id = B(m.signer_key_id());
  g.signature = B(m.signature());
  for (const auto& c : m.countersignatures()) {
    REFBUS_RETURN_IF_ERROR(
        CheckSize(kWhat, "countersignatures.public_key", c.public_key(), kPublicKeyBytes));
    REFBUS_RETURN_IF_ERROR(
        CheckSize(kWhat, "countersignatures.signature", c.signature(), kSignatureBytes));
    if (c.operator_ref().empty() || c.operator_ref().size() > 64) {
      return FieldError(kWhat, "countersignatures.operator_ref", "is empty or too long");
    }
    g.countersignatures.push_back({c.operator_ref(), B(c.public_key()), B(c.signature())});
  }
  return g;
}

Bytes EncodeSignedConsentGrant(const SignedConsentGrant& g) {
  pb::SignedConsentGrant m;
  m.set_grant(S(g.grant_bytes));
  m.set_signer_key_id(S(g.signer_key_id));
  m.set_signature(S(g.signature));
  for (const auto& c : g.countersignatures) {
    auto* o = m.add_countersignatures();
    o->set_operator_ref(c.operator_ref);
    o->set_public_key(S(c.public_key));
    o->set_signature(S(c.signature));
  }
  return Serialize(m);
}

Result<AuditEntry> DecodeAuditEntry(ByteView bytes) {
  constexpr std::string_view kWhat = "audit entry";
  pb::AuditEntry m;
  REFBUS_RETURN_IF_ERROR(Parse(m, bytes, kMaxRecordBytes, kWhat));
  if (m.version() != 1) {
    return FieldError(kWhat, "version", "is " + std::to_string(m.version()) + ", expected 1");
  }
  REFBUS_RETURN_IF_ERROR(CheckEnum<AuditEvent>(kWhat, "event", m.event(), pb::AuditEvent_MAX));
  REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "broker_id", m.broker_id()));
  REFBUS_RETURN_IF_ERROR(CheckSizeOrEmpty(kWhat, "message_id", m.message_id(), kMessageIdBytes));
  REFBUS_RETURN_IF_ERROR(
      CheckSizeOrEmpty(kWhat, "consent_grant_id", m.consent_grant_id(), kGrantIdBytes));
  REFBUS_RETURN_IF_ERROR(CheckSizeOrEmpty(kWhat, "envelope_sha256", m.envelope_sha256(), 32));
  REFBUS_RETURN_IF_ERROR(
      CheckEnum<MessageKind>(kWhat, "kind", m.kind(), pb::MessageKind_MAX, /*allow_zero=*/true));
  REFBUS_RETURN_IF_ERROR(
      CheckEnum<Purpose>(kWhat, "purpose", m.purpose(), pb::Purpose_MAX, /*allow_zero=*/true));
  REFBUS_RETURN_IF_ERROR(
      CheckEnum<NackReason>(kWhat, "reason", m.reason(), pb::NackReason_MAX, /*allow_zero=*/true));
  AuditEntry e;
  e.index = m.index();
  e.time_ms = m.time_ms();
  e.event = static_cast<AuditEvent>(m.event());
  e.broker_id = m.broker_id();
  e.actor = m.actor();
  e.message_id = B(m.message_id());
  e.sender_id = m.sender_id();
  e.recipients.assign(m.recipients().begin(), m.recipients().end());
  e.case_ref = m.case_ref();
  e.consent_grant_id = B(m.consent_grant_id());
  e.kind = static_cast<MessageKind>(m.kind());
  e.purpose = static_cast<Purpose>(m.purpose());
  e.envelope_sha256 = B(m.envelope_sha256());
  e.reason = static_cast<NackReason>(m.reason());
  e.directory_serial = m.directory_serial();
  e.detail = m.detail();
  e.envelope_bytes = m.envelope_bytes();
  REFBUS_RETURN_IF_ERROR(CheckSizeOrEmpty(kWhat, "statement_sha256", m.statement_sha256(), 32));
  if (m.operator_ref().size() > 64) return FieldError(kWhat, "operator_ref", "is too long");
  e.statement_sha256 = B(m.statement_sha256());
  e.operator_ref = m.operator_ref();
  e.emergency_override = m.emergency_override();
  if (m.refusal_count() != 0 &&
      (m.event() != pb::AUDIT_EVENT_ENVELOPE_REJECTED || m.first_refused_ms() == 0 ||
       m.first_refused_ms() > m.last_refused_ms())) {
    return FieldError(kWhat, "refusal_count",
                      "is set on an entry that is no aggregate of refusals (its event or "
                      "its first and last times do not fit)");
  }
  e.refusal_count = m.refusal_count();
  e.first_refused_ms = m.first_refused_ms();
  e.last_refused_ms = m.last_refused_ms();
  REFBUS_RETURN_IF_ERROR(
      CheckSizeOrEmpty(kWhat, "operator_public_key", m.operator_public_key(), kPublicKeyBytes));
  REFBUS_RETURN_IF_ERROR(
      CheckSizeOrEmpty(kWhat, "operator_signature", m.operator_signature(), kSignatureBytes));
  if (m.operator_public_key().empty() != m.operator_signature().empty() ||
      m.operator_signature().empty() != m.operator_statement().empty()) {
    return FieldError(kWhat, "operator_signature",
                      "needs its public key and statement, and they need it");
  }
  e.operator_public_key = B(m.operator_public_key());
  e.operator_signature = B(m.operator_signature());
  e.operator_statement = B(m.operator_statement());
  if (m.signed_roster().size() > kMaxSignedRosterBytes) {
    return FieldError(kWhat, "signed_roster", "is over 48 KiB");
  }
  e.signed_roster = B(m.signed_roster());
  return e;
}

Bytes EncodeAuditEntry(const AuditEntry& e) {
  pb::AuditEntry m;
  m.set_version(e.version);
  m.set_index(e.index);
  m.set_time_ms(e.time_ms);
  m.set_event(static_cast<pb::AuditEvent>(e.event));
  m.set_broker_id(e.broker_id);
  m.set_actor(e.actor);
  m.set_message_id(S(e.message_id));
  m.set_sender_id(e.sender_id);
  for (const auto& r : e.recipients) m.add_recipients(r);
  m.set_case_ref(e.case_ref);
  m.set_consent_grant_id(S(e.consent_grant_id));
  m.set_kind(static_cast<pb::MessageKind>(e.kind));
  m.set_purpose(static_cast<pb::Purpose>(e.purpose));
  m.set_envelope_sha256(S(e.envelope_sha256));
  m.set_reason(static_cast<pb::NackReason>(e.reason));
  m.set_directory_serial(e.directory_serial);
  m.set_detail(e.detail);
  m.set_envelope_bytes(e.envelope_bytes);
  m.set_statement_sha256(S(e.statement_sha256));
  m.set_operator_ref(e.operator_ref);
  m.set_emergency_override(e.emergency_override);
  m.set_refusal_count(e.refusal_count);
  m.set_first_refused_ms(e.first_refused_ms);
  m.set_last_refused_ms(e.last_refused_ms);
  m.set_operator_public_key(S(e.operator_public_key));
  m.set_operator_signature(S(e.operator_signature));
  m.set_operator_statement(S(e.operator_statement));
  m.set_signed_roster(S(e.signed_roster));
  return Serialize(m);
}

Result<SecretKeyFile> DecodeSecretKeyFile(ByteView bytes) {
  constexpr std::string_view kWhat = "secret key file";
  pb::SecretKeyFile m;
  Status s = Parse(m, bytes, kMaxRecordBytes, kWhat);
  // Whatever happens next, the parsed copy of the payload is wiped before m is freed.
  struct Wipe {
    pb::SecretKeyFile& m;
    ~Wipe() {
      std::string* p = m.mutable_payload();
      if (!p->empty()) explicit_bzero(p->data(), p->size());
    }
  } wipe{m};
  REFBUS_RETURN_IF_ERROR(s);
  if (m.format_version() != 1) {
    return FieldError(kWhat, "format_version",
                      "is " + std::to_string(m.format_version()) + ", expected 1");
  }
  REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "party_id", m.party_id()));
  REFBUS_RETURN_IF_ERROR(CheckEnum<PartyKind>(kWhat, "kind", m.kind(), pb::PartyKind_MAX));
  REFBUS_RETURN_IF_ERROR(
      CheckEnum<KeyProtection>(kWhat, "protection", m.protection(), pb::KeyProtection_MAX));
  SecretKeyFile f;
  f.party_id = m.party_id();
  f.kind = static_cast<PartyKind>(m.kind());
  f.protection = static_cast<KeyProtection>(m.protection());
  if (f.protection == KeyProtection::kArgon2idXChaCha20Poly1305) {
    REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "kdf_salt", m.kdf_salt(), 16));
    REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "nonce", m.nonce(), kNonceBytes));
  } else {
    REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "checksum", m.checksum(), 32));
  }
  f.kdf_salt = B(m.kdf_salt());
  f.kdf_opslimit = m.kdf_opslimit();
  f.kdf_memlimit = m.kdf_memlimit();
  f.nonce = B(m.nonce());
  f.payload = B(m.payload());
  f.checksum = B(m.checksum());
  return f;
}

Bytes EncodeSecretKeyFile(const SecretKeyFile& f) {
  pb::SecretKeyFile m;
  m.set_format_version(f.format_version);
  m.set_party_id(f.party_id);
  m.set_kind(static_cast<pb::PartyKind>(f.kind));
  m.set_protection(static_cast<pb::KeyProtection>(f.protection));
  m.set_kdf_salt(S(f.kdf_salt));
  m.set_kdf_opslimit(f.kdf_opslimit);
  m.set_kdf_memlimit(f.kdf_memlimit);
  m.set_nonce(S(f.nonce));
  m.set_payload(S(f.payload));
  m.set_checksum(S(f.checksum));
  Bytes out = Serialize(m);
  std::string* p = m.mutable_payload();
  if (!p->empty()) explicit_bzero(p->data(), p->size());
  return out;
}

void SecretKeyFile::WipePayload() {
  if (!payload.empty()) explicit_bzero(payload.data(), payload.size());
  payload.clear();
}

Bytes WithMagic(std::string_view magic, ByteView body) {
  Bytes out;
  out.reserve(magic.size() + body.size());
  Append(out, AsBytes(magic));
  Append(out, body);
  return out;
}

Result<ByteView> StripMagic(std::string_view magic, ByteView file, std::string_view what) {
  std::string_view text = AsChars(file);
  if (text.substr(0, magic.size()) == magic) return file.subspan(magic.size());
  // Say what the file is instead, when it is another refbus file or version.
  std::string_view first_line = text.substr(0, std::min<size_t>(text.find('\n'), 64));
  if (first_line.rfind("refbus-", 0) == 0) {
    bool printable = std::all_of(first_line.begin(), first_line.end(),
                                 [](char c) { return c >= 0x20 && c < 0x7f; });
    if (printable) {
      return Malformed("not a " + std::string(what) + " file: it is a '" + std::string(first_line) +
                       "' file (this refbus reads '" +
                       std::string(magic.substr(0, magic.size() - 1)) + "')");
    }
  }
  return Malformed("not a " + std::string(what) + " file (it does not start with '" +
                   std::string(magic.substr(0, magic.size() - 1)) + "')");
}

}  // namespace refbus::schema
