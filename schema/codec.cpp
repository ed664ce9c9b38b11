#include "schema/codec.h"

#include <google/protobuf/stubs/logging.h>
#include <string.h>

#include <algorithm>
#include <climits>
#include <mutex>
#include <string>

#include "refbus/v1/audit.pb.h"
#include "refbus/v1/consent.pb.h"
#include "refbus/v1/directory.pb.h"
#include "refbus/v1/envelope.pb.h"
#include "refbus/v1/keyfile.pb.h"
#include "refbus/v1/transport.pb.h"
#include "schema/codec_internal.h"

namespace refbus::schema {
namespace {

using namespace internal;  // NOLINT(google-build-using-namespace): codec helpers

// ---- Frames ----

Result<Frame> FromProto(const pb::Frame& m) {
  constexpr std::string_view kWhat = "frame";
  Frame f;
  f.version = m.version();
  f.request_id = m.request_id();
  if (f.version != 1) {
    return FieldError(kWhat, "version", "is " + std::to_string(f.version) + ", expected 1");
  }
  switch (m.body_case()) {
    case pb::Frame::kHello:
      f.type = Frame::Type::kHello;
      f.hello.party_id = m.hello().party_id();
      f.hello.directory_serial = m.hello().directory_serial();
      f.hello.software = m.hello().software();
      REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "hello.party_id", f.hello.party_id));
      break;
    case pb::Frame::kWelcome:
      f.type = Frame::Type::kWelcome;
      f.welcome.broker_id = m.welcome().broker_id();
      f.welcome.directory_serial = m.welcome().directory_serial();
      f.welcome.max_frame_bytes = m.welcome().max_frame_bytes();
      REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "welcome.broker_id", f.welcome.broker_id));
      break;
    case pb::Frame::kSubmit:
      f.type = Frame::Type::kSubmit;
      f.submit.envelope = B(m.submit().envelope());
      if (f.submit.envelope.empty()) return FieldError(kWhat, "submit.envelope", "is empty");
      break;
    case pb::Frame::kDeliver:
      f.type = Frame::Type::kDeliver;
      f.deliver.envelope = B(m.deliver().envelope());
      f.deliver.attempt = m.deliver().attempt();
      if (f.deliver.envelope.empty()) return FieldError(kWhat, "deliver.envelope", "is empty");
      break;
    case pb::Frame::kAck:
      f.type = Frame::Type::kAck;
      REFBUS_RETURN_IF_ERROR(
          CheckSize(kWhat, "ack.message_id", m.ack().message_id(), kMessageIdBytes));
      f.ack.message_id = B(m.ack().message_id());
      f.ack.duplicate = m.ack().duplicate();
      break;
    case pb::Frame::kNack:
      f.type = Frame::Type::kNack;
      REFBUS_RETURN_IF_ERROR(
          CheckSizeOrEmpty(kWhat, "nack.message_id", m.nack().message_id(), kMessageIdBytes));
      REFBUS_RETURN_IF_ERROR(
          CheckEnum<NackReason>(kWhat, "nack.reason", m.nack().reason(), pb::NackReason_MAX));
      f.nack.message_id = B(m.nack().message_id());
      f.nack.reason = static_cast<NackReason>(m.nack().reason());
      f.nack.detail = m.nack().detail();
      f.nack.retry_after_ms = m.nack().retry_after_ms();
      break;
    case pb::Frame::kDirectoryFetch:
      f.type = Frame::Type::kDirectoryFetch;
      f.directory_fetch.have_serial = m.directory_fetch().have_serial();
      break;
    case pb::Frame::kDirectoryReply:
      f.type = Frame::Type::kDirectoryReply;
      f.directory_reply.signed_directory = B(m.directory_reply().signed_directory());
      break;
    case pb::Frame::kGrantRegister:
      f.type = Frame::Type::kGrantRegister;
      f.grant_register.signed_grant = B(m.grant_register().signed_grant());
      if (f.grant_register.signed_grant.empty()) {
        return FieldError(kWhat, "grant_register.signed_grant", "is empty");
      }
      break;
    case pb::Frame::kGrantRevoke:
      f.type = Frame::Type::kGrantRevoke;
      f.grant_revoke.signed_revocation = B(m.grant_revoke().signed_revocation());
      if (f.grant_revoke.signed_revocation.empty()) {
        return FieldError(kWhat, "grant_revoke.signed_revocation", "is empty");
      }
      break;
    case pb::Frame::kAttest:
      f.type = Frame::Type::kAttest;
      f.attest.signed_access = B(m.attest().signed_access());
      f.attest.signed_purge = B(m.attest().signed_purge());
      if (f.attest.signed_access.empty() == f.attest.signed_purge.empty()) {
        return FieldError(kWhat, "attest", "must hold exactly one statement");
      }
      break;
    case pb::Frame::kAuditCheckpoint:
      f.type = Frame::Type::kAuditCheckpoint;
      break;
    case pb::Frame::kAuditEntries:
      f.type = Frame::Type::kAuditEntries;
      f.audit_entries.from_index = m.audit_entries().from_index();
      f.audit_entries.max = m.audit_entries().max();
      if (f.audit_entries.max == 0 || f.audit_entries.max > kMaxAuditEntriesPerReply) {
        return FieldError(kWhat, "audit_entries.max",
                          "must be 1 to " + std::to_string(kMaxAuditEntriesPerReply));
      }
      break;
    case pb::Frame::kAuditProof:
      f.type = Frame::Type::kAuditProof;
      f.audit_proof.index = m.audit_proof().index();
      f.audit_proof.tree_size = m.audit_proof().tree_size();
      if (f.audit_proof.index >= f.audit_proof.tree_size) {
        return FieldError(kWhat, "audit_proof.index", "is not below tree_size");
      }
      break;
    case pb::Frame::kAuditConsistency:
      f.type = Frame::Type::kAuditConsistency;
      f.audit_consistency.old_size = m.audit_consistency().old_size();
      f.audit_consistency.new_size = m.audit_consistency().new_size();
      if (f.audit_consistency.old_size > f.audit_consistency.new_size) {
        return FieldError(kWhat, "audit_consistency.old_size", "is above new_size");
      }
      break;
    case pb::Frame::kAuditCheckpoints:
      f.type = Frame::Type::kAuditCheckpoints;
      f.audit_checkpoints.from_size = m.audit_checkpoints().from_size();
      f.audit_checkpoints.max = m.audit_checkpoints().max();
      if (f.audit_checkpoints.max == 0 || f.audit_checkpoints.max > kMaxAuditCheckpointsPerReply) {
        return FieldError(kWhat, "audit_checkpoints.max",
                          "must be 1 to " + std::to_string(kMaxAuditCheckpointsPerReply));
      }
      break;
    case pb::Frame::kAuditReply: {
      f.type = Frame::Type::kAuditReply;
      const pb::AuditReply& r = m.audit_reply();
      if (static_cast<size_t>(r.checkpoints_size()) > kMaxAuditCheckpointsPerReply) {
        return FieldError(kWhat, "audit_reply.checkpoints", "has too many notes");
      }
      if (static_cast<size_t>(r.entries_size()) > kMaxAuditEntriesPerReply) {
        return FieldError(kWhat, "audit_reply.entries", "has too many entries");
      }
      if (static_cast<size_t>(r.hashes_size()) > kMaxAuditProofHashes) {
        return FieldError(kWhat, "audit_reply.hashes", "has too many hashes");
      }
      for (const auto& note : r.checkpoints()) {
        if (note.empty() || note.size() > kMaxAuditNoteBytes) {
          return FieldError(kWhat, "audit_reply.checkpoints", "holds an empty or oversized note");
        }
        f.audit_reply.checkpoints.push_back(note);
      }
      for (const auto& entry : r.entries()) {
        if (entry.empty() || entry.size() > kMaxRecordBytes) {
          return FieldError(kWhat, "audit_reply.entries", "holds an empty or oversized entry");
        }
        f.audit_reply.entries.push_back(B(entry));
      }
      for (const auto& h : r.hashes()) {
        REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "audit_reply.hashes", h, kAuditHashBytes));
        f.audit_reply.hashes.push_back(B(h));
      }
      f.audit_reply.first_index = r.first_index();
      f.audit_reply.log_size = r.log_size();
      f.audit_reply.more = r.more();
      break;
    }
    case pb::Frame::kWitnessRequest: {
      f.type = Frame::Type::kWitnessRequest;
      const pb::WitnessRequest& r = m.witness_request();
      if (r.checkpoint().empty() || r.checkpoint().size() > kMaxAuditNoteBytes) {
        return FieldError(kWhat, "witness_request.checkpoint", "is empty or over 16 KiB");
      }
      if (static_cast<size_t>(r.consistency_proof_size()) > kMaxAuditProofHashes) {
        return FieldError(kWhat, "witness_request.consistency_proof", "has too many hashes");
      }
      for (const auto& h : r.consistency_proof()) {
        REFBUS_RETURN_IF_ERROR(
            CheckSize(kWhat, "witness_request.consistency_proof", h, kAuditHashBytes));
        f.witness_request.consistency_proof.push_back(B(h));
      }
      f.witness_request.checkpoint = r.checkpoint();
      f.witness_request.old_size = r.old_size();
      break;
    }
    case pb::Frame::kWitnessReply: {
      f.type = Frame::Type::kWitnessReply;
      const pb::WitnessReply& r = m.witness_reply();
      REFBUS_RETURN_IF_ERROR(CheckEnum<WitnessRefusal>(kWhat, "witness_reply.refusal", r.refusal(),
                                                       pb::WitnessRefusal_MAX,
                                                       /*allow_zero=*/true));
      f.witness_reply.refusal = static_cast<WitnessRefusal>(r.refusal());
      if (f.witness_reply.refusal == WitnessRefusal::kNone) {
        if (r.cosignature().empty() || r.cosignature().size() > kMaxCosignatureLineBytes) {
          return FieldError(kWhat, "witness_reply.cosignature",
                            "must hold one cosignature line of at most 1 KiB");
        }
      } else if (!r.cosignature().empty()) {
        return FieldError(kWhat, "witness_reply.cosignature", "is set in a refusal");
      }
      if (r.detail().size() > kMaxWitnessDetailBytes) {
        return FieldError(kWhat, "witness_reply.detail", "is over 4 KiB");
      }
      f.witness_reply.cosignature = r.cosignature();
      f.witness_reply.detail = r.detail();
      f.witness_reply.witness_size = r.witness_size();
      break;
    }
    case pb::Frame::kAddCosignature: {
      f.type = Frame::Type::kAddCosignature;
      const std::string& note = m.add_cosignature().checkpoint();
      if (note.empty() || note.size() > kMaxAuditNoteBytes) {
        return FieldError(kWhat, "add_cosignature.checkpoint", "is empty or over 16 KiB");
      }
      f.add_cosignature.checkpoint = note;
      break;
    }
    case pb::Frame::kRelay: {
      f.type = Frame::Type::kRelay;
      const pb::Relay& r = m.relay();
      if (!r.signed_revocation().empty()) {
        if (r.signed_revocation().size() > kMaxRecordBytes) {
          return FieldError(kWhat, "relay.signed_revocation", "is over the record limit");
        }
        if (!r.envelope().empty() || !r.signed_grant().empty() || r.for_recipients_size() != 0) {
          return FieldError(kWhat, "relay.signed_revocation",
                            "comes with envelope fields (a relay carries one or the other)");
        }
        f.relay.signed_revocation = B(r.signed_revocation());
        f.relay.hops = r.hops();
        if (f.relay.hops > kMaxRelayHops) {
          return FieldError(kWhat, "relay.hops", "is over " + std::to_string(kMaxRelayHops));
        }
        break;
      }
      if (r.envelope().empty() || r.envelope().size() > kMaxEnvelopeBytes) {
        return FieldError(kWhat, "relay.envelope", "is empty or over the envelope limit");
      }
      if (r.signed_grant().size() > kMaxRecordBytes) {
        return FieldError(kWhat, "relay.signed_grant", "is over the record limit");
      }
      if (r.hops() > kMaxRelayHops) {
        return FieldError(kWhat, "relay.hops", "is over " + std::to_string(kMaxRelayHops));
      }
      if (r.for_recipients_size() == 0 ||
          static_cast<size_t>(r.for_recipients_size()) > kMaxRecipients) {
        return FieldError(kWhat, "relay.for_recipients",
                          "must name 1 to " + std::to_string(kMaxRecipients) + " recipients");
      }
      for (const auto& id : r.for_recipients()) {
        REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "relay.for_recipients", id));
        if (std::find(f.relay.for_recipients.begin(), f.relay.for_recipients.end(), id) !=
            f.relay.for_recipients.end()) {
          return FieldError(kWhat, "relay.for_recipients", "names " + id + " twice");
        }
        f.relay.for_recipients.push_back(id);
      }
      f.relay.envelope = B(r.envelope());
      f.relay.signed_grant = B(r.signed_grant());
      f.relay.hops = r.hops();
      break;
    }
    case pb::Frame::BODY_NOT_SET:
      return FieldError(kWhat, "body", "is missing");
  }
  return f;
}

pb::Frame ToProto(const Frame& f) {
  pb::Frame m;
  m.set_version(f.version);
  m.set_request_id(f.request_id);
  switch (f.type) {
    case Frame::Type::kHello: {
      auto* h = m.mutable_hello();
      h->set_party_id(f.hello.party_id);
      h->set_directory_serial(f.hello.directory_serial);
      h->set_software(f.hello.software);
      break;
    }
    case Frame::Type::kWelcome: {
      auto* w = m.mutable_welcome();
      w->set_broker_id(f.welcome.broker_id);
      w->set_directory_serial(f.welcome.directory_serial);
      w->set_max_frame_bytes(f.welcome.max_frame_bytes);
      break;
    }
    case Frame::Type::kSubmit:
      m.mutable_submit()->set_envelope(S(f.submit.envelope));
      break;
    case Frame::Type::kDeliver:
      m.mutable_deliver()->set_envelope(S(f.deliver.envelope));
      m.mutable_deliver()->set_attempt(f.deliver.attempt);
      break;
    case Frame::Type::kAck:
      m.mutable_ack()->set_message_id(S(f.ack.message_id));
      m.mutable_ack()->set_duplicate(f.ack.duplicate);
      break;
    case Frame::Type::kNack: {
      auto* n = m.mutable_nack();
      n->set_message_id(S(f.nack.message_id));
      n->set_reason(static_cast<pb::NackReason>(f.nack.reason));
      n->set_detail(f.nack.detail);
      n->set_retry_after_ms(f.nack.retry_after_ms);
      break;
    }
    case Frame::Type::kDirectoryFetch:
      m.mutable_directory_fetch()->set_have_serial(f.directory_fetch.have_serial);
      break;
    case Frame::Type::kDirectoryReply:
      m.mutable_directory_reply()->set_signed_directory(S(f.directory_reply.signed_directory));
      break;
    case Frame::Type::kGrantRegister:
      m.mutable_grant_register()->set_signed_grant(S(f.grant_register.signed_grant));
      break;
    case Frame::Type::kGrantRevoke:
      m.mutable_grant_revoke()->set_signed_revocation(S(f.grant_revoke.signed_revocation));
      break;
    case Frame::Type::kAttest:
      m.mutable_attest()->set_signed_access(S(f.attest.signed_access));
      m.mutable_attest()->set_signed_purge(S(f.attest.signed_purge));
      break;
    case Frame::Type::kAuditCheckpoint:
      m.mutable_audit_checkpoint();
      break;
    case Frame::Type::kAuditEntries:
      m.mutable_audit_entries()->set_from_index(f.audit_entries.from_index);
      m.mutable_audit_entries()->set_max(f.audit_entries.max);
      break;
    case Frame::Type::kAuditProof:
      m.mutable_audit_proof()->set_index(f.audit_proof.index);
      m.mutable_audit_proof()->set_tree_size(f.audit_proof.tree_size);
      break;
    case Frame::Type::kAuditConsistency:
      m.mutable_audit_consistency()->set_old_size(f.audit_consistency.old_size);
      m.mutable_audit_consistency()->set_new_size(f.audit_consistency.new_size);
      break;
    case Frame::Type::kAuditCheckpoints:
      m.mutable_audit_checkpoints()->set_from_size(f.audit_checkpoints.from_size);
      m.mutable_audit_checkpoints()->set_max(f.audit_checkpoints.max);
      break;
    case Frame::Type::kAuditReply: {
      auto* r = m.mutable_audit_reply();
      for (const auto& note : f.audit_reply.checkpoints) r->add_checkpoints(note);
      for (const auto& e : f.audit_reply.entries) r->add_entries(S(e));
      for (const auto& h : f.audit_reply.hashes) r->add_hashes(S(h));
      r->set_first_index(f.audit_reply.first_index);
      r->set_log_size(f.audit_reply.log_size);
      r->set_more(f.audit_reply.more);
      break;
    }
    case Frame::Type::kWitnessRequest: {
      auto* r = m.mutable_witness_request();
      r->set_checkpoint(f.witness_request.checkpoint);
      r->set_old_size(f.witness_request.old_size);
      for (const auto& h : f.witness_request.consistency_proof) r->add_consistency_proof(S(h));
      break;
    }
    case Frame::Type::kWitnessReply: {
      auto* r = m.mutable_witness_reply();
      r->set_cosignature(f.witness_reply.cosignature);
      r->set_refusal(static_cast<pb::WitnessRefusal>(f.witness_reply.refusal));
      r->set_detail(f.witness_reply.detail);
      r->set_witness_size(f.witness_reply.witness_size);
      break;
    }
    case Frame::Type::kAddCosignature:
      m.mutable_add_cosignature()->set_checkpoint(f.add_cosignature.checkpoint);
      break;
    case Frame::Type::kRelay: {
      auto* r = m.mutable_relay();
      r->set_envelope(S(f.relay.envelope));
      r->set_signed_grant(S(f.relay.signed_grant));
      r->set_hops(f.relay.hops);
      for (const auto& id : f.relay.for_recipients) r->add_for_recipients(id);
      r->set_signed_revocation(S(f.relay.signed_revocation));
      break;
    }
  }
  return m;
}

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

// ---- Directory ----

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

Result<Frame> DecodeFrame(ByteView bytes) {
  pb::Frame m;
  REFBUS_RETURN_IF_ERROR(Parse(m, bytes, kMaxFrameBytes, "frame"));
  return FromProto(m);
}

Bytes EncodeFrame(const Frame& frame) { return Serialize(ToProto(frame)); }

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

Result<Prekey> DecodePrekey(ByteView bytes) {
  pb::Prekey m;
  REFBUS_RETURN_IF_ERROR(Parse(m, bytes, kMaxRecordBytes, "prekey"));
  return FromProto(m);
}

Bytes EncodePrekey(const Prekey& prekey) { return Serialize(ToProto(prekey)); }

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
