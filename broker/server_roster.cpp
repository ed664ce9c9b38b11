// broker::Server's operator rosters (PROTOCOL.md 9.3): an agency hands its home broker the
// roster of its operators' public keys, signed by the agency (keys/operator_roster.h). The
// broker checks that it is the agency's own, signed by the agency's current signing key in
// the directory, and newer than the last it recorded for the agency; then it records the
// roster whole in an OPERATOR_ROSTER audit entry (names, roles, public keys, active flags:
// no secret) and acks after the commit. Auditors take the roster in effect at each access
// from these entries. Every refusal is audited (REJECTED, detail "roster: ...").
#include <spdlog/spdlog.h>

#include "broker/server.h"
#include "broker/server_internal.h"
#include "keys/crypto.h"
#include "keys/operator_roster.h"

namespace refbus::broker {

using schema::Frame;
using schema::NackReason;

void Server::HandleRosterUpdate(const std::string& routing_id, const schema::Party& peer,
                                uint64_t request_id, Bytes signed_roster, Turn& turn,
                                UnixMillis now) {
  auto refuse = [&](NackReason reason, const std::string& detail) {
    if (schema::AuditEntry* e = Reject(turn, routing_id, request_id, peer.id, reason,
                                       "roster: " + detail, nullptr, {})) {
      e->sender_id = peer.id;
      e->statement_sha256 = Sha256(signed_roster);
      turn.replies.back().message_id = AttestationId(signed_roster);
    }
  };
  if (peer.kind != schema::PartyKind::kAgency) {
    refuse(NackReason::kNotPermitted, "only an agency publishes an operator roster");
    return;
  }
  auto roster = keys::VerifyOperatorRoster(AsChars(signed_roster), directory_.directory, now);
  if (!roster.ok()) {
    refuse(server_internal::SignedStatementRefusal(roster.status()), roster.status().message());
    return;
  }
  if (roster->agency != peer.id) {
    refuse(NackReason::kSenderMismatch, "the roster of " + roster->agency + " published by " +
                                            peer.id + " (an agency publishes only its own)");
    return;
  }
  // Signed by a key the directory lists, but it must be the agency's current one: a retired
  // key's holder cannot speak for today's operators.
  const schema::KeyRecord* current = peer.ActiveKeys();
  if (current == nullptr ||
      keys::KeyId(keys::KeyUse::kSigning, current->signing_key) != roster->signer_key_id) {
    refuse(NackReason::kUnknownSenderKey, "signed with " +
                                              keys::Fingerprint(roster->signer_key_id) +
                                              ", not with " + peer.id + "'s current signing key");
    return;
  }
  uint64_t& last = roster_versions_[peer.id];
  if (roster->version <= last) {
    refuse(NackReason::kOutOfRange, "version " + std::to_string(roster->version) +
                                        " is not newer than version " + std::to_string(last) +
                                        ", the last recorded for " + peer.id);
    return;
  }
  last = roster->version;
  schema::AuditEntry e;
  e.event = schema::AuditEvent::kOperatorRoster;
  e.actor = peer.id;
  e.sender_id = peer.id;
  e.directory_serial = directory_.directory.serial;
  e.statement_sha256 = Sha256(signed_roster);
  e.detail = "operator roster version " + std::to_string(roster->version) + " (" +
             std::to_string(roster->operators.size()) + " operators, signed by " +
             keys::Fingerprint(roster->signer_key_id) + ")";
  e.signed_roster = signed_roster;
  spdlog::info("operator roster of {}: {}", peer.id, e.detail);
  turn.batch.events.push_back(std::move(e));
  turn.batch.roster_versions.emplace_back(peer.id, roster->version);
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = request_id;
  reply.message_id = AttestationId(signed_roster);
  reply.kind = Reply::Attestation{};  // acked once the entry is committed
  turn.replies.push_back(std::move(reply));
}

void Server::ForgetUncommittedRosters(const Batch& batch) {
  for (const auto& [agency, version] : batch.roster_versions) {
    auto it = roster_versions_.find(agency);
    if (it != roster_versions_.end() && it->second == version) it->second = version - 1;
  }
}

}  // namespace refbus::broker
