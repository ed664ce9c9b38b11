// broker::Server's consent control frames (schema/PROTOCOL.md sections 6 and 12): grant
// registrations, revocations (an agency's own, and those peer brokers pass on) and
// attestations (access records, purge confirmations). Each is checked here, against the
// current directory, and decided against the stored grants in the commit.
#include <spdlog/spdlog.h>

#include "broker/server.h"
#include "broker/server_internal.h"
#include "keys/consent.h"
#include "keys/operator_signature.h"
#include "schema/codec.h"

namespace refbus::broker {

using schema::NackReason;

std::optional<std::pair<NackReason, std::string>> Server::VetGrant(
    const schema::SignedConsentGrant& g, UnixMillis now) const {
  if (Status s = keys::VerifyConsentGrant(g, directory_.directory, now); !s.ok()) {
    return std::make_pair(s.code() == Status::Code::kPermissionDenied
                              ? NackReason::kConsentOutOfScope
                              : NackReason::kBadSignature,
                          s.message());
  }
  return VetGrantTimes(g.grant, now);
}

std::optional<std::pair<NackReason, std::string>> Server::VetGrantTimes(
    const schema::ConsentGrant& grant, UnixMillis now) {
  if (now > grant.expires_at_ms) {
    return std::make_pair(NackReason::kConsentExpired,
                          "grant expired at " + FormatUtc(grant.expires_at_ms));
  }
  if (grant.issued_at_ms > now + keys::kClockSkewMs) {
    return std::make_pair(NackReason::kExpired,
                          "grant issued in the future (" + FormatUtc(grant.issued_at_ms) + ")");
  }
  if (!schema::IsValidCaseRef(grant.case_ref) || grant.purposes.empty() ||
      (grant.allowed_recipients.empty() && grant.allowed_agency_types.empty())) {
    return std::make_pair(NackReason::kMalformed, "grant names no case, purpose or recipient");
  }
  return std::nullopt;
}

schema::AuditEntry* Server::RejectControl(Turn& turn, const std::string& routing_id,
                                          uint64_t request_id, const std::string& peer,
                                          NackReason reason, std::string detail, ByteView id,
                                          ByteView statement_bytes) {
  schema::AuditEntry* e =
      Reject(turn, routing_id, request_id, peer, reason, std::move(detail), nullptr, {});
  if (e == nullptr) return nullptr;  // only counted: no entry, the Nack already queued
  if (!statement_bytes.empty()) e->statement_sha256 = Sha256(statement_bytes);
  if (id.size() == schema::kGrantIdBytes) {
    turn.replies.back().message_id.assign(id.begin(), id.end());
  }
  return e;
}

void Server::HandleGrantRegister(const std::string& routing_id, const std::string& peer,
                                 uint64_t request_id, Bytes signed_grant, Turn& turn,
                                 UnixMillis now) {
  auto g = schema::DecodeSignedConsentGrant(signed_grant);
  if (!g.ok()) {
    RejectControl(turn, routing_id, request_id, peer, NackReason::kMalformed,
                  "consent grant: " + g.status().message(), {}, signed_grant);
    return;
  }
  const schema::ConsentGrant& grant = g->grant;
  auto reject = [&](NackReason reason, std::string detail) {
    if (schema::AuditEntry* e = RejectControl(turn, routing_id, request_id, peer, reason,
                                              std::move(detail), grant.grant_id, signed_grant)) {
      e->consent_grant_id = grant.grant_id;
      e->case_ref = grant.case_ref;
    }
  };
  if (grant.recorded_by != peer) {
    reject(NackReason::kSenderMismatch,
           "grant recorded by " + grant.recorded_by + " registered by " + peer);
    return;
  }
  if (auto refusal = VetGrant(*g, now)) {
    reject(refusal->first, refusal->second);
    return;
  }
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = request_id;
  reply.message_id = grant.grant_id;
  reply.kind = Reply::Grant{turn.batch.grants.size()};
  turn.replies.push_back(std::move(reply));
  GrantRegistration r;
  r.decoded = std::move(*g);
  r.signed_grant = std::move(signed_grant);
  r.actor = peer;
  r.directory_serial = directory_.directory.serial;
  turn.batch.grants.push_back(std::move(r));
}

void Server::AdmitRevocation(Turn& turn, const std::string& routing_id, uint64_t request_id,
                             schema::ConsentRevocation rev, const std::string& actor,
                             Bytes signed_revocation, bool via_peer) {
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = request_id;
  reply.message_id = AttestationId(signed_revocation);  // statements are named by their hash
  reply.kind = Reply::Revocation{turn.batch.revocations.size()};
  turn.replies.push_back(std::move(reply));
  GrantRevocation r;
  r.revocation = std::move(rev);
  r.statement_sha256 = Sha256(signed_revocation);
  r.actor = actor;
  r.directory_serial = directory_.directory.serial;
  r.signed_statement = std::move(signed_revocation);
  r.via_peer = via_peer;
  turn.batch.revocations.push_back(std::move(r));
}

void Server::HandleGrantRevoke(const std::string& routing_id, const std::string& peer,
                               uint64_t request_id, const Bytes& signed_revocation, Turn& turn,
                               UnixMillis now) {
  auto st = schema::DecodeSignedStatement(signed_revocation);
  auto rev = st.ok() ? schema::DecodeConsentRevocation(st->statement)
                     : Result<schema::ConsentRevocation>(st.status());
  if (!rev.ok()) {
    RejectControl(turn, routing_id, request_id, peer, NackReason::kMalformed,
                  "consent revocation: " + rev.status().message(), {}, signed_revocation);
    return;
  }
  auto reject = [&](NackReason reason, std::string detail) {
    if (schema::AuditEntry* e =
            RejectControl(turn, routing_id, request_id, peer, reason, std::move(detail),
                          rev->grant_id, signed_revocation)) {
      e->consent_grant_id = rev->grant_id;
      e->case_ref = rev->case_ref;
    }
  };
  if (rev->revoked_by != peer) {
    reject(NackReason::kSenderMismatch,
           "revocation by " + rev->revoked_by + " handed over by " + peer);
    return;
  }
  if (Status s = keys::VerifyStatement(*st, keys::StatementType::kConsentRevocation, peer,
                                       rev->revoked_at_ms, directory_.directory, now);
      !s.ok()) {
    reject(NackReason::kBadSignature, s.message());
    return;
  }
  // The revoking operator's signature (PROTOCOL.md 9.2), if any, must verify with its key.
  if (const auto& sig = st->operator_signature;
      sig && (keys::IsServiceOperator(sig->operator_ref) ||
              !keys::VerifyOperatorSignature(keys::OperatorAction::kConsentRevocation,
                                             st->statement, *sig))) {
    reject(NackReason::kBadSignature, "the operator signature of " +
                                          sig->operator_ref.substr(0, 64) +
                                          " does not verify over the revocation");
    return;
  }
  AdmitRevocation(turn, routing_id, request_id, std::move(*rev), peer, signed_revocation, false);
}

void Server::HandleRelayedRevocation(const std::string& routing_id, const std::string& from,
                                     uint64_t request_id, Bytes signed_revocation, Turn& turn,
                                     UnixMillis now) {
  auto st = schema::DecodeSignedStatement(signed_revocation);
  auto rev = st.ok() ? schema::DecodeConsentRevocation(st->statement)
                     : Result<schema::ConsentRevocation>(st.status());
  if (!rev.ok()) {
    ++stats_.relays_refused;
    RejectControl(turn, routing_id, request_id, from, NackReason::kMalformed,
                  "relayed consent revocation: " + rev.status().message(), {}, signed_revocation);
    return;
  }
  // The relaying broker is not trusted: the recorder's signature is checked here.
  if (Status s =
          keys::VerifyStatement(*st, keys::StatementType::kConsentRevocation, rev->revoked_by,
                                rev->revoked_at_ms, directory_.directory, now);
      !s.ok()) {
    ++stats_.relays_refused;
    if (schema::AuditEntry* e = RejectControl(
            turn, routing_id, request_id, from, NackReason::kBadSignature,
            "relayed consent revocation: " + s.message(), rev->grant_id, signed_revocation)) {
      e->consent_grant_id = rev->grant_id;
      e->case_ref = rev->case_ref;
    }
    return;
  }
  AdmitRevocation(turn, routing_id, request_id, std::move(*rev), from, std::move(signed_revocation),
                  true);
}

namespace {

// What an attestation states, as its audit entry, with who signed it and when.
struct Attestation {
  schema::AuditEntry entry;
  std::string signer;
  UnixMillis signed_at = 0;
};

// Decodes the statement of an Attest: an access record or a purge confirmation.
Result<Attestation> DescribeAttestation(bool access, ByteView statement) {
  Attestation a;
  schema::AuditEntry& e = a.entry;
  if (access) {
    auto rec = schema::DecodeAccessRecord(statement);
    if (!rec.ok()) return Malformed("access record: " + rec.status().message());
    e.event = schema::AuditEvent::kEnvelopeOpened;
    e.message_id = rec->message_id;
    e.case_ref = rec->case_ref;
    e.consent_grant_id = rec->consent_grant_id;
    e.kind = rec->kind;
    e.sender_id = rec->owner_agency;
    e.recipients = {rec->agency_id};
    e.operator_ref = rec->operator_ref;
    e.detail = "opened at " + FormatUtc(rec->opened_at_ms);
    a.signer = rec->agency_id;
    a.signed_at = rec->opened_at_ms;
    return a;
  }
  auto conf = schema::DecodePurgeConfirmation(statement);
  if (!conf.ok()) return Malformed("purge confirmation: " + conf.status().message());
  e.event = schema::AuditEvent::kPurgeConfirmed;
  e.case_ref = conf->case_ref;
  e.consent_grant_id = conf->grant_id;
  e.recipients = {conf->agency_id};
  e.detail = std::to_string(conf->messages_purged) + " messages purged at " +
             FormatUtc(conf->purged_at_ms);
  a.signer = conf->agency_id;
  a.signed_at = conf->purged_at_ms;
  return a;
}

// An operator's signature on an access record (keys/operator_signature.h): it must name the
// record's operator, who is not the service account, and verify with the key it carries.
// Which person holds that key is the auditor's question (the agency's roster); the entry
// keeps the key, the signature and the signed bytes for it.
Status CheckOperatorSignature(bool access, const schema::SignedStatement& st,
                              const schema::AuditEntry& e) {
  if (!st.operator_signature) return Status::Ok();
  const schema::OperatorSignature& sig = *st.operator_signature;
  if (!access) return InvalidArgument("a purge confirmation carries no operator signature");
  if (keys::IsServiceOperator(e.operator_ref) || sig.operator_ref != e.operator_ref) {
    return InvalidArgument("the operator signature is by '" + sig.operator_ref.substr(0, 64) +
                           "', the access record names '" + e.operator_ref + "'");
  }
  if (!keys::VerifyOperatorSignature(keys::OperatorAction::kAccessRecord, st.statement, sig)) {
    return Unauthenticated("the operator signature of " + e.operator_ref +
                           " does not verify over the access record");
  }
  return Status::Ok();
}

}  // namespace

void Server::HandleAttest(const std::string& routing_id, const std::string& peer,
                          uint64_t request_id, const schema::Attest& attest, Turn& turn,
                          UnixMillis now) {
  const bool access = !attest.signed_access.empty();
  const Bytes& bytes = access ? attest.signed_access : attest.signed_purge;
  auto st = schema::DecodeSignedStatement(bytes);
  if (!st.ok()) {
    RejectControl(turn, routing_id, request_id, peer, NackReason::kMalformed,
                  "attestation: " + st.status().message(), {}, bytes);
    return;
  }
  auto described = DescribeAttestation(access, st->statement);
  if (!described.ok()) {
    RejectControl(turn, routing_id, request_id, peer, NackReason::kMalformed,
                  described.status().message(), {}, bytes);
    return;
  }
  if (described->signer != peer) {
    RejectControl(turn, routing_id, request_id, peer, NackReason::kSenderMismatch,
                  "statement by " + described->signer + " handed over by " + peer,
                  AttestationId(bytes), bytes);
    return;
  }
  auto type = access ? keys::StatementType::kAccessRecord : keys::StatementType::kPurgeConfirmation;
  if (Status s =
          keys::VerifyStatement(*st, type, peer, described->signed_at, directory_.directory, now);
      !s.ok()) {
    RejectControl(turn, routing_id, request_id, peer, NackReason::kBadSignature, s.message(),
                  AttestationId(bytes), bytes);
    return;
  }
  if (Status s = CheckOperatorSignature(access, *st, described->entry); !s.ok()) {
    RejectControl(turn, routing_id, request_id, peer,
                  s.code() == Status::Code::kUnauthenticated ? NackReason::kBadSignature
                                                             : NackReason::kMalformed,
                  s.message(), AttestationId(bytes), bytes);
    return;
  }
  schema::AuditEntry& e = described->entry;
  if (st->operator_signature) {
    e.operator_public_key = st->operator_signature->public_key;
    e.operator_signature = st->operator_signature->signature;
    e.operator_statement = st->statement;
  }
  e.actor = peer;
  e.directory_serial = directory_.directory.serial;
  e.statement_sha256 = Sha256(bytes);
  turn.batch.events.push_back(std::move(e));
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = request_id;
  // The answer names the statement itself (first 16 bytes of its SHA-256): an agency may
  // attest to many accesses of one message, each its own outbox item.
  reply.message_id = AttestationId(bytes);
  reply.kind = Reply::Attestation{};
  turn.replies.push_back(std::move(reply));
}

}  // namespace refbus::broker
