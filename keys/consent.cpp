#include "keys/consent.h"

#include "keys/crypto.h"
#include "keys/directory.h"
#include "schema/codec.h"

namespace refbus::keys {

bool IsEmergencyOverride(const schema::ConsentGrant& grant) {
  return grant.emergency_override || grant.basis == schema::LegalBasis::kEmergencyLifeSafety;
}

Result<schema::SignedConsentGrant> SignConsentGrant(const Identity& recorder,
                                                    const schema::ConsentGrant& grant) {
  if (grant.recorded_by != recorder.party_id()) {
    return InvalidArgument("grant says it was recorded by " + grant.recorded_by + ", not " +
                           recorder.party_id());
  }
  schema::SignedConsentGrant s;
  s.grant_bytes = schema::EncodeConsentGrant(grant);
  REFBUS_ASSIGN_OR_RETURN(s.grant, schema::DecodeConsentGrant(s.grant_bytes));
  s.signer_key_id = recorder.signing_key_id();
  s.signature = recorder.Sign(kLabelConsentGrant, s.grant_bytes);
  return s;
}

Status Countersign(schema::SignedConsentGrant& grant, const std::string& operator_ref,
                   const Identity& countersigner) {
  if (operator_ref.empty() || operator_ref.size() > 64) {
    return InvalidArgument("operator reference must be 1 to 64 characters");
  }
  grant.countersignatures.push_back(
      {operator_ref, countersigner.signing_public_key(),
       countersigner.Sign(kLabelConsentCountersign, grant.grant_bytes)});
  return Status::Ok();
}

Status VerifyConsentGrant(const schema::SignedConsentGrant& grant,
                          const schema::Directory& directory, UnixMillis now) {
  const auto& g = grant.grant;
  auto key = FindSigningKey(directory, g.recorded_by, grant.signer_key_id, g.issued_at_ms, now);
  if (!key.ok()) return key.status().WithContext("consent grant recorder");
  if (!VerifySignature((*key)->signing_key, kLabelConsentGrant, grant.grant_bytes,
                       grant.signature)) {
    return Unauthenticated("consent grant is not signed by " + g.recorded_by);
  }
  if (IsEmergencyOverride(g)) {
    bool ok = false;
    for (const auto& c : grant.countersignatures) {
      if (c.public_key == (*key)->signing_key) continue;  // must be a second person
      if (VerifySignature(c.public_key, kLabelConsentCountersign, grant.grant_bytes, c.signature)) {
        ok = true;
      }
    }
    if (!ok) {
      return PermissionDenied(
          "emergency override grant has no valid countersignature by a "
          "second operator");
    }
  }
  return Status::Ok();
}

namespace {
std::string_view LabelFor(StatementType type) {
  switch (type) {
    case StatementType::kConsentRevocation:
      return kLabelConsentRevocation;
    case StatementType::kPurgeConfirmation:
      return kLabelPurgeConfirmation;
    case StatementType::kAccessRecord:
      return kLabelAccessRecord;
  }
  return "";
}
}  // namespace

schema::SignedStatement SignStatement(const Identity& signer, StatementType type, Bytes statement) {
  schema::SignedStatement s;
  s.signature = signer.Sign(LabelFor(type), statement);
  s.signer_key_id = signer.signing_key_id();
  s.statement = std::move(statement);
  return s;
}

Status VerifyStatement(const schema::SignedStatement& statement, StatementType type,
                       const std::string& signer_id, UnixMillis signed_at_ms,
                       const schema::Directory& directory, UnixMillis now) {
  auto key = FindSigningKey(directory, signer_id, statement.signer_key_id, signed_at_ms, now);
  if (!key.ok()) return key.status().WithContext("statement signer");
  if (!VerifySignature((*key)->signing_key, LabelFor(type), statement.statement,
                       statement.signature)) {
    return Unauthenticated("statement is not signed by " + signer_id);
  }
  return Status::Ok();
}

}  // namespace refbus::keys
