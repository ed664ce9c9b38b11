#include "agent/case_message.h"

#include <algorithm>

#include "keys/consent.h"
#include "keys/directory.h"
#include "keys/envelope.h"
#include "keys/published_prekey.h"
#include "keys/scope.h"
#include "schema/codec.h"

namespace refbus::agent {
namespace {

using schema::CaseMessage;
using schema::DataCategory;
using schema::MessageKind;

const std::vector<schema::CaseField>* FieldsOf(const CaseMessage& m) {
  switch (m.type) {
    case CaseMessage::Type::kReferral:
      return &m.referral.fields;
    case CaseMessage::Type::kHandoff:
      return &m.handoff.fields;
    default:
      return nullptr;
  }
}

// The signed grant a message carries, if its type carries one.
const Bytes* CarriedGrant(const CaseMessage& m) {
  switch (m.type) {
    case CaseMessage::Type::kReferral:
      return &m.referral.signed_grant;
    case CaseMessage::Type::kHandoff:
      return &m.handoff.signed_grant;
    case CaseMessage::Type::kDeletionRequest:
      return &m.deletion_request.signed_grant;
    case CaseMessage::Type::kLinkageEntry:
      return &m.linkage_entry.signed_grant;
    case CaseMessage::Type::kLinkageTally:
      return &m.linkage_tally.signed_grant;
    default:
      return nullptr;
  }
}

std::string CaseRefOf(const CaseMessage& m) {
  switch (m.type) {
    case CaseMessage::Type::kReferral:
      return m.referral.case_ref;
    case CaseMessage::Type::kStateChange:
      return m.state_change.case_ref;
    case CaseMessage::Type::kHandoff:
      return m.handoff.case_ref;
    case CaseMessage::Type::kHandoffAck:
      return m.handoff_ack.case_ref;
    case CaseMessage::Type::kDeletionRequest:
      return m.deletion_request.case_ref;
    case CaseMessage::Type::kDeletionStatus:
      return m.deletion_status.case_ref;
    case CaseMessage::Type::kCaseClosed:
      return m.case_closed.case_ref;
    case CaseMessage::Type::kLinkageEntry:
      return m.linkage_entry.case_ref;
    case CaseMessage::Type::kLinkageNotice:
      return m.linkage_notice.case_ref;
    case CaseMessage::Type::kLinkageTally:
      return m.linkage_tally.case_ref;
    case CaseMessage::Type::kAccessNotice:
    case CaseMessage::Type::kConsentRevocation:
    case CaseMessage::Type::kPurgeConfirmation:
      return "";  // inside the signed statement; checked by whoever opens it
    case CaseMessage::Type::kDeletionWatchList:
      return "";  // no case
  }
  return "";
}

keys::ScopeParty PartyOf(const schema::Directory& dir, const std::string& id) {
  return keys::ScopePartyOf(dir, id);
}

Status Denied(const keys::ScopeRefusal& r) {
  return PermissionDenied(std::string(schema::Name(r.reason)) + ": " + r.detail);
}

}  // namespace

std::vector<DataCategory> CategoriesOf(const CaseMessage& m) {
  std::vector<DataCategory> out;
  if (const auto* fields = FieldsOf(m)) {
    for (const auto& f : *fields) out.push_back(f.category);
  }
  MessageKind kind = schema::KindOf(m.type);
  if (keys::IsMetadataKind(kind)) out.push_back(DataCategory::kCaseStatus);
  if (kind == MessageKind::kDeletionRequest) out.push_back(DataCategory::kContentLocations);
  if (kind == MessageKind::kDeletionStatus) out.push_back(DataCategory::kDeletionStatus);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<Bytes> SealCase(const keys::Identity& sender, const schema::Directory& dir,
                       const KnownGrant& known, const SealCaseRequest& req) {
  const schema::ConsentGrant& g = known.grant.grant;
  const CaseMessage& m = req.message;
  // Field by field first, so the caseworker learns which field is outside the consent.
  if (const auto* fields = FieldsOf(m)) {
    for (const auto& f : *fields) {
      if (f.category != DataCategory::kCaseStatus &&
          std::find(g.categories.begin(), g.categories.end(), f.category) == g.categories.end()) {
        return PermissionDenied("field '" + f.name + "' is " +
                                std::string(schema::Name(f.category)) +
                                " data, which the consent grant for case " + g.case_ref +
                                " does not allow; remove the field or record a wider consent");
      }
    }
  }
  keys::ScopeSubject subject;
  subject.kind = schema::KindOf(m.type);
  subject.purpose = req.purpose;
  subject.categories = CategoriesOf(m);
  subject.case_ref = CaseRefOf(m).empty() ? g.case_ref : CaseRefOf(m);
  subject.sender = PartyOf(dir, sender.party_id());
  for (const auto& r : req.recipients) subject.recipients.push_back(PartyOf(dir, r));
  if (auto refusal = keys::CheckScope(g, known.revoked, subject, req.now)) {
    return Denied(*refusal);
  }
  keys::SealRequest seal;
  seal.kind = subject.kind;
  seal.case_ref = subject.case_ref;
  seal.consent_grant_id = g.grant_id;
  seal.purpose = req.purpose;
  seal.categories = subject.categories;
  seal.now = req.now;
  seal.lifetime_ms = req.lifetime_ms;
  for (const auto& r : req.recipients) {
    REFBUS_ASSIGN_OR_RETURN(auto prekey, keys::NewestPrekey(dir, r, req.published, req.now));
    seal.recipients.push_back(std::move(prekey));
  }
  Bytes content = schema::EncodeCaseMessage(m);
  auto env = keys::SealEnvelope(sender, seal, content);
  sodium_memzero(content.data(), content.size());
  return env;
}

Result<OpenedCase> OpenCase(const keys::Identity& me, ByteView envelope,
                            const schema::Directory& dir, const GrantLookup& known_grants,
                            UnixMillis now) {
  REFBUS_ASSIGN_OR_RETURN(keys::OpenedEnvelope opened, keys::OpenEnvelope(me, envelope, dir, now));
  const schema::EnvelopeHeader& h = opened.envelope.header;
  const std::string from = "message from " + h.sender_id;
  REFBUS_ASSIGN_OR_RETURN(CaseMessage m, schema::DecodeCaseMessage(opened.content.view()));
  if (schema::KindOf(m.type) != h.kind) {
    return Malformed(from + " is labelled " + std::string(schema::Name(h.kind)) + " but holds a " +
                     std::string(schema::Name(schema::KindOf(m.type))));
  }
  if (h.consent_grant_id.empty()) return PermissionDenied(from + " names no consent grant");
  std::string case_ref = CaseRefOf(m);
  if (!case_ref.empty() && case_ref != h.case_ref) {
    return Malformed(from + ": content is for case " + case_ref + ", header for " + h.case_ref);
  }
  // What the content carries must have been declared (the broker checked the declaration).
  for (DataCategory c : CategoriesOf(m)) {
    if (std::find(h.categories.begin(), h.categories.end(), c) == h.categories.end()) {
      return PermissionDenied(from + " carries " + std::string(schema::Name(c)) +
                              " data its header does not declare");
    }
  }
  // Inner ids agree with the signed header.
  if (m.type == CaseMessage::Type::kReferral &&
      (m.referral.referring_agency != h.sender_id || m.referral.to_agency != me.party_id())) {
    return Malformed(from + ": referral names " + m.referral.referring_agency + " -> " +
                     m.referral.to_agency);
  }
  if (m.type == CaseMessage::Type::kHandoff &&
      (m.handoff.from_lead != h.sender_id || m.handoff.to_lead != me.party_id())) {
    return Malformed(from + ": handoff names " + m.handoff.from_lead + " -> " + m.handoff.to_lead);
  }
  // The grant: carried inside (verified here) or known from earlier.
  KnownGrant grant;
  if (const Bytes* carried = CarriedGrant(m)) {
    REFBUS_ASSIGN_OR_RETURN(grant.grant, schema::DecodeSignedConsentGrant(*carried));
    REFBUS_RETURN_IF_ERROR(keys::VerifyConsentGrant(grant.grant, dir, now));
    if (auto k = known_grants(grant.grant.grant.grant_id); k && k->revoked) grant.revoked = true;
  } else {
    auto k = known_grants(h.consent_grant_id);
    if (!k) {
      return PermissionDenied(from + " names consent grant " + HexEncode(h.consent_grant_id) +
                              ", which this agency has not received");
    }
    grant = std::move(*k);
  }
  if (grant.grant.grant.grant_id != h.consent_grant_id) {
    return PermissionDenied(from + " carries another grant than its header names");
  }
  keys::ScopeSubject subject = keys::ScopeSubjectOf(h, dir);
  if (auto refusal = keys::CheckScope(grant.grant.grant, grant.revoked, subject, now)) {
    return Denied(*refusal);
  }
  OpenedCase out;
  out.envelope = std::move(opened.envelope);
  out.message = std::move(m);
  out.grant = std::move(grant.grant);
  return out;
}

Result<Bytes> SealGrantless(const keys::Identity& sender, const schema::Directory& dir,
                            const SealCaseRequest& req) {
  keys::ScopeSubject subject;
  subject.kind = schema::KindOf(req.message.type);
  subject.sender = PartyOf(dir, sender.party_id());
  for (const auto& r : req.recipients) subject.recipients.push_back(PartyOf(dir, r));
  if (auto refusal = keys::CheckGrantless(subject)) return Denied(*refusal);
  keys::SealRequest seal;
  seal.kind = subject.kind;
  seal.now = req.now;
  seal.lifetime_ms = req.lifetime_ms;
  for (const auto& r : req.recipients) {
    REFBUS_ASSIGN_OR_RETURN(auto prekey, keys::NewestPrekey(dir, r, req.published, req.now));
    seal.recipients.push_back(std::move(prekey));
  }
  return keys::SealEnvelope(sender, seal, schema::EncodeCaseMessage(req.message));
}

Result<OpenedGrantless> OpenGrantless(const keys::Identity& me, ByteView envelope,
                                      const schema::Directory& dir, UnixMillis now) {
  REFBUS_ASSIGN_OR_RETURN(keys::OpenedEnvelope opened, keys::OpenEnvelope(me, envelope, dir, now));
  const schema::EnvelopeHeader& h = opened.envelope.header;
  if (!h.consent_grant_id.empty()) {
    return Malformed("message from " + h.sender_id + " names a consent grant");
  }
  if (auto refusal = keys::CheckGrantless(keys::ScopeSubjectOf(h, dir))) return Denied(*refusal);
  REFBUS_ASSIGN_OR_RETURN(CaseMessage m, schema::DecodeCaseMessage(opened.content.view()));
  if (schema::KindOf(m.type) != h.kind) {
    return Malformed("message from " + h.sender_id + " is labelled " +
                     std::string(schema::Name(h.kind)) + " but holds a " +
                     std::string(schema::Name(schema::KindOf(m.type))));
  }
  OpenedGrantless out;
  out.envelope = std::move(opened.envelope);
  out.message = std::move(m);
  return out;
}

}  // namespace refbus::agent
