// broker::Server's intake: frames read from the router are checked (size, decode, the peer
// still allowed by the current directory), envelopes verified (on the verify pool when a
// burst has several) and routed, and submissions and relays from peer brokers admitted
// into the accumulating Turn (schema/PROTOCOL.md sections 4 and 12).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "broker/server.h"
#include "broker/server_internal.h"
#include "keys/envelope.h"
#include "keys/scope.h"
#include "schema/codec.h"

namespace refbus::broker {

using schema::Frame;
using schema::NackReason;
using server_internal::ReasonFor;

Server::Verified Server::Verify(ByteView envelope, UnixMillis now, SignatureCheck signature) const {
  keys::EnvelopeCheck check = keys::EnvelopeCheck::kOk;
  // An envelope on its sender's own CURVE session is not signature-checked here: ZAP named
  // the sender, HandleSubmit refuses another sender_id, and every recipient checks the
  // signature before it opens anything (SECURITY.md, "The home broker does not check the
  // envelope signature"). A relayed envelope always is: a peer broker is not its sender.
  auto env = signature == SignatureCheck::kCheck
                 ? keys::VerifyEnvelope(envelope, directory_.directory, now, &check)
                 : keys::CheckEnvelopeExceptSignature(envelope, directory_.directory, now, &check);
  return Verified{std::move(env), check};
}

void Server::Precheck(std::vector<Incoming>& burst, UnixMillis now) {
  auto check = [&](size_t i) {
    Incoming& in = burst[i];
    if (in.parts.size() != 2 || in.parts[1].size() > config_.max_frame_bytes) return;
    const zmq::message_t& body = in.parts[1];
    // A party the current directory no longer admits costs no decode and no signature check.
    if (!CurrentPeer(body).ok()) return;
    in.frame = schema::DecodeFrame(ByteView(static_cast<const uint8_t*>(body.data()), body.size()));
    if (!in.frame->ok()) return;
    const Frame& f = **in.frame;
    if (f.type == Frame::Type::kSubmit) {
      in.verified.emplace(Verify(f.submit.envelope, now, SignatureCheck::kSendersOwnSession));
    }
    if (f.type == Frame::Type::kRelay && f.relay.signed_revocation.empty() &&
        f.relay.signed_prekey.empty()) {
      in.verified.emplace(Verify(f.relay.envelope, now, SignatureCheck::kCheck));
    }
  };
  // Worth handing out only when there are several envelopes to check.
  size_t envelopes = 0;
  for (const auto& in : burst) {
    if (in.parts.size() == 2 && in.parts[1].size() > 256) ++envelopes;
  }
  if (envelopes >= 2 && verify_pool_ != nullptr) {
    verify_pool_->ForEach(burst.size(), check);
  } else {
    for (size_t i = 0; i < burst.size(); ++i) check(i);
  }
}

void Server::HandleMessage(Incoming& in, Turn& turn, UnixMillis now) {
  std::vector<zmq::message_t>& parts = in.parts;
  if (parts.size() != 2) {
    spdlog::warn("dropped a message with {} parts (expected routing id and one frame)",
                 parts.size());
    return;
  }
  std::string routing_id = parts[0].to_string();
  const zmq::message_t& body = parts[1];
  std::string peer_id = zmqx::UserId(body).value_or("");
  ByteView bytes(static_cast<const uint8_t*>(body.data()), body.size());
  // ZAP ran at the handshake; the directory may have changed since: every frame's peer is
  // checked first, before anything of the frame is read.
  auto peer = CurrentPeer(body);
  if (!peer.ok()) {
    RefuseCutOff(turn, routing_id, peer_id, bytes, peer.status().message());
    return;
  }
  if (bytes.size() > config_.max_frame_bytes) {
    Reject(turn, routing_id, 0, peer_id, NackReason::kTooLarge,
           "frame of " + std::to_string(bytes.size()) + " bytes is over the limit of " +
               std::to_string(config_.max_frame_bytes),
           nullptr, {});
    return;
  }
  Result<Frame> frame = in.frame.has_value() ? std::move(*in.frame) : schema::DecodeFrame(bytes);
  if (!frame.ok()) {
    Reject(turn, routing_id, 0, peer_id, NackReason::kMalformed, frame.status().message(), nullptr,
           {});
    return;
  }
  HandleFrame(routing_id, peer_id, **peer, *frame, in, turn, now);
}

void Server::HandleFrame(const std::string& routing_id, const std::string& peer_id,
                         const schema::Party& peer, Frame& frame, Incoming& in, Turn& turn,
                         UnixMillis now) {
  switch (frame.type) {
    case Frame::Type::kHello:
      HandleHello(routing_id, peer_id, peer, frame, turn);
      return;
    case Frame::Type::kSubmit:
      HandleSubmit(routing_id, peer_id, frame.request_id, std::move(frame.submit.envelope),
                   std::move(in.verified), turn, now);
      return;
    case Frame::Type::kRelay:
      HandleRelay(routing_id, peer, frame.request_id, std::move(frame.relay),
                  std::move(in.verified), turn, now);
      return;
    case Frame::Type::kAck:
      HandleRecipientAck(peer_id, frame, turn);
      return;
    case Frame::Type::kNack:
      HandleRecipientNack(peer_id, frame);
      return;
    case Frame::Type::kGrantRegister:
      HandleGrantRegister(routing_id, peer_id, frame.request_id,
                          std::move(frame.grant_register.signed_grant), turn, now);
      return;
    case Frame::Type::kGrantRevoke:
      HandleGrantRevoke(routing_id, peer_id, frame.request_id, frame.grant_revoke.signed_revocation,
                        turn, now);
      return;
    case Frame::Type::kAttest:
      HandleAttest(routing_id, peer_id, frame.request_id, frame.attest, turn, now);
      return;
    case Frame::Type::kAuditCheckpoint:
    case Frame::Type::kAuditEntries:
    case Frame::Type::kAuditProof:
    case Frame::Type::kAuditConsistency:
    case Frame::Type::kAuditCheckpoints:
      HandleAuditQuery(routing_id, peer, frame, turn);
      return;
    case Frame::Type::kWitnessRequest:
      HandleWitnessRequest(routing_id, peer, frame, turn);
      return;
    case Frame::Type::kAddCosignature:
      HandleAddCosignature(routing_id, peer, frame, turn);
      return;
    case Frame::Type::kDirectoryFetch:
      HandleDirectoryFetch(routing_id, frame, turn);
      return;
    case Frame::Type::kPrekeyUpdate:
      HandlePrekey(routing_id, peer, frame.request_id, std::move(frame.prekey_update.signed_prekey),
                   false, turn, now);
      return;
    case Frame::Type::kLinkageEvaluate:
      HandleLinkageEvaluate(routing_id, peer, frame, turn, now);
      return;
    case Frame::Type::kRosterUpdate:
      HandleRosterUpdate(routing_id, peer, frame.request_id,
                         std::move(frame.roster_update.signed_roster), turn, now);
      return;
    case Frame::Type::kLinkageTally:
      HandleLinkageTally(routing_id, peer, frame.request_id, std::move(frame.linkage_tally), turn,
                         now);
      return;
    default:
      Reject(turn, routing_id, frame.request_id, peer_id, NackReason::kMalformed,
             "a client may not send this frame type", nullptr, {});
      return;
  }
}

void Server::Admit(Turn& turn, const std::string& routing_id, uint64_t request_id, Admitted a) {
  const schema::Directory& dir = directory_.directory;
  const schema::EnvelopeHeader& h = a.decoded.header;
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = request_id;
  reply.message_id = h.message_id;
  reply.kind = Reply::Submission{turn.batch.accepted.size()};
  turn.replies.push_back(std::move(reply));
  Accepted accepted;
  accepted.envelope = std::move(a.envelope);  // decoded is a copy: it does not point into these
  accepted.actor = std::move(a.actor);
  accepted.directory_serial = dir.serial;
  if (!h.consent_grant_id.empty()) accepted.scope = keys::ScopeSubjectOf(h, dir);
  accepted.mailboxes = std::move(a.mailboxes);
  accepted.serves = std::move(a.serves);
  accepted.hops = a.hops;
  accepted.audit_detail = std::move(a.audit_detail);
  // Refusals in the commit share one allowance per actor (server_internal::kCommitRefusals).
  accepted.audit_refusal = refusals_.MayAudit(accepted.actor, server_internal::kCommitRefusals,
                                              SystemClock::Get().NowMillis());
  turn.batch.accepted.push_back(std::move(accepted));
  turn.decoded.push_back(std::move(a.decoded));
}

void Server::HandleSubmit(const std::string& routing_id, const std::string& peer,
                          uint64_t request_id, Bytes envelope, std::optional<Verified> verified,
                          Turn& turn, UnixMillis now) {
  const schema::Directory& dir = directory_.directory;
  if (!verified.has_value()) {
    verified.emplace(Verify(envelope, now, SignatureCheck::kSendersOwnSession));
  }
  keys::EnvelopeCheck check = verified->check;
  Result<schema::SealedEnvelope>& env = verified->envelope;
  if (!env.ok()) {
    // A header that decodes is worth auditing in full even when the envelope is refused.
    auto decoded = schema::DecodeEnvelope(envelope);
    Reject(turn, routing_id, request_id, peer, ReasonFor(check, env.status()),
           env.status().message(), decoded.ok() ? &*decoded : nullptr, envelope);
    return;
  }
  const auto& h = env->header;
  if (h.sender_id != peer) {
    Reject(turn, routing_id, request_id, peer, NackReason::kSenderMismatch,
           "envelope sender " + h.sender_id + " is not the authenticated peer " + peer, &*env,
           envelope);
    return;
  }
  for (const auto& r : h.recipients) {
    const schema::Party* p = dir.Find(r.agency_id);
    if (p == nullptr || p->kind != schema::PartyKind::kAgency) {
      Reject(turn, routing_id, request_id, peer, NackReason::kUnknownRecipient,
             "recipient " + r.agency_id + " is not an agency in the directory", &*env, envelope);
      return;
    }
    if (p->status != schema::PartyStatus::kActive) {
      Reject(turn, routing_id, request_id, peer, NackReason::kRevokedRecipient,
             "recipient " + r.agency_id + " is revoked", &*env, envelope);
      return;
    }
  }
  std::vector<std::string> recipients;
  for (const auto& r : h.recipients) recipients.push_back(r.agency_id);
  std::string why;
  Admitted a;
  a.mailboxes = Route(recipients, 0, &why, &a.audit_detail, &a.serves);
  if (a.mailboxes.empty()) {
    Reject(turn, routing_id, request_id, peer, NackReason::kUnknownRecipient, why, &*env, envelope);
    return;
  }
  // Consent: an envelope names its grant (checked against the stored grant when it is
  // committed), or is an OPAQUE transport test where the operator allows those.
  if (h.consent_grant_id.empty()) {
    if (auto refusal = GrantlessRefusal(h)) {
      Reject(turn, routing_id, request_id, peer, refusal->first, refusal->second, &*env, envelope);
      return;
    }
  }
  a.envelope = std::move(envelope);
  a.decoded = std::move(*env);
  a.actor = peer;
  Admit(turn, routing_id, request_id, std::move(a));
}

std::vector<std::string> Server::Route(
    const std::vector<std::string>& recipients, uint32_t hops, std::string* why,
    std::string* detail, std::map<std::string, std::vector<std::string>>* serves) const {
  const schema::Directory& dir = directory_.directory;
  std::vector<std::string> targets;
  std::vector<std::string> via;
  for (const auto& id : recipients) {
    const schema::Party* p = dir.Find(id);
    if (p == nullptr || p->kind != schema::PartyKind::kAgency) {
      *why = "recipient " + id + " is not an agency in the directory";
      return {};
    }
    std::string target = id;
    if (p->home_broker != config_.id) {
      const schema::Party* home = dir.Find(p->home_broker);
      if (home == nullptr || home->kind != schema::PartyKind::kBroker ||
          home->status != schema::PartyStatus::kActive) {
        *why = "recipient " + id + " is homed at " + p->home_broker +
               ", which is not an active broker in directory serial " + std::to_string(dir.serial);
        return {};
      }
      if (hops >= config_.max_hops) {
        *why = "recipient " + id + " is homed at " + p->home_broker + " and the envelope has " +
               "passed " + std::to_string(hops) + " brokers (federation.max_hops " +
               std::to_string(config_.max_hops) + ")";
        return {};
      }
      target = p->home_broker;
      if (std::find(via.begin(), via.end(), target) == via.end()) via.push_back(target);
      (*serves)[target].push_back(id);
    }
    if (std::find(targets.begin(), targets.end(), target) == targets.end()) {
      targets.push_back(std::move(target));
    }
  }
  if (!via.empty()) {
    *detail = "queued for broker";
    for (const auto& b : via) *detail += " " + b;
  }
  return targets;
}

void Server::RefuseRelay(Turn& turn, const std::string& routing_id, uint64_t request_id,
                         const std::string& from, NackReason reason, const std::string& detail,
                         const schema::SealedEnvelope* env, ByteView envelope) {
  ++stats_.relays_refused;
  Reject(turn, routing_id, request_id, from, reason, "relayed by broker " + from + ": " + detail,
         env, envelope);
}

void Server::HandleRelay(const std::string& routing_id, const schema::Party& peer,
                         uint64_t request_id, schema::Relay relay, std::optional<Verified> verified,
                         Turn& turn, UnixMillis now) {
  const schema::Directory& dir = directory_.directory;
  const std::string& from = peer.id;
  Bytes& envelope = relay.envelope;
  auto refuse = [&](NackReason reason, std::string detail, const schema::SealedEnvelope* env) {
    RefuseRelay(turn, routing_id, request_id, from, reason, detail, env, envelope);
  };
  if (peer.kind != schema::PartyKind::kBroker || from == config_.id) {
    refuse(NackReason::kNotPermitted, "only another broker may relay", nullptr);
    return;
  }
  if (!relay.signed_prekey.empty()) {
    HandlePrekey(routing_id, peer, request_id, std::move(relay.signed_prekey), true, turn, now);
    return;
  }
  if (!relay.signed_revocation.empty()) {
    HandleRelayedRevocation(routing_id, from, request_id, std::move(relay.signed_revocation), turn,
                            now);
    return;
  }
  // The relaying broker is not trusted with content or signatures: everything is checked here.
  if (!verified.has_value()) verified.emplace(Verify(envelope, now, SignatureCheck::kCheck));
  keys::EnvelopeCheck check = verified->check;
  Result<schema::SealedEnvelope>& env = verified->envelope;
  if (!env.ok()) {
    auto decoded = schema::DecodeEnvelope(envelope);
    refuse(ReasonFor(check, env.status()), env.status().message(),
           decoded.ok() ? &*decoded : nullptr);
    return;
  }
  const auto& h = env->header;
  const schema::Party* sender = dir.Find(h.sender_id);
  if (relay.hops == 0 && (sender == nullptr || sender->home_broker != from)) {
    refuse(NackReason::kSenderMismatch,
           "sender " + h.sender_id + " is homed at " +
               (sender != nullptr ? sender->home_broker : std::string("?")) +
               ", not at the broker that says it accepted it first",
           &*env);
    return;
  }
  for (const auto& id : relay.for_recipients) {
    bool named = false;
    for (const auto& r : h.recipients) named = named || r.agency_id == id;
    if (!named) {
      refuse(NackReason::kMalformed, id + " is not a recipient of the envelope", &*env);
      return;
    }
    const schema::Party* p = dir.Find(id);
    if (p != nullptr && p->status != schema::PartyStatus::kActive) {
      refuse(NackReason::kRevokedRecipient, "recipient " + id + " is revoked", &*env);
      return;
    }
  }
  const uint32_t hops_here = relay.hops + 1;
  std::string why;
  std::string route_detail;
  Admitted a;
  a.mailboxes = Route(relay.for_recipients, hops_here, &why, &route_detail, &a.serves);
  if (a.mailboxes.empty()) {
    refuse(NackReason::kUnknownRecipient, why, &*env);
    return;
  }
  if (std::find(a.mailboxes.begin(), a.mailboxes.end(), from) != a.mailboxes.end()) {
    refuse(NackReason::kUnknownRecipient,
           "a recipient is homed at the relaying broker itself (directories differ?)", &*env);
    return;
  }
  if (!AdmitRelayedGrant(routing_id, from, request_id, relay, *env, turn, now)) return;
  a.envelope = std::move(envelope);
  a.decoded = std::move(*env);
  a.actor = from;
  a.hops = static_cast<uint8_t>(hops_here);
  a.audit_detail = "relayed by broker " + from + " (hop " + std::to_string(hops_here) + ")" +
                   (route_detail.empty() ? "" : "; " + route_detail);
  Admit(turn, routing_id, request_id, std::move(a));
}

bool Server::AdmitRelayedGrant(const std::string& routing_id, const std::string& from,
                               uint64_t request_id, schema::Relay& relay,
                               const schema::SealedEnvelope& env, Turn& turn, UnixMillis now) {
  const auto& h = env.header;
  auto refuse = [&](NackReason reason, const std::string& detail) {
    RefuseRelay(turn, routing_id, request_id, from, reason, detail, &env, relay.envelope);
    return false;
  };
  if (h.consent_grant_id.empty()) {
    if (auto refusal = GrantlessRefusal(h)) return refuse(refusal->first, refusal->second);
    return true;
  }
  // The grant travels with the envelope: its recorder's signature is checked here and it
  // is registered (once) before the envelope's scope is checked in the commit.
  if (relay.signed_grant.empty()) {
    return refuse(NackReason::kConsentOutOfScope, "the relay does not carry the envelope's grant");
  }
  auto g = schema::DecodeSignedConsentGrant(relay.signed_grant);
  if (!g.ok()) return refuse(NackReason::kMalformed, "its consent grant: " + g.status().message());
  if (g->grant.grant_id != h.consent_grant_id) {
    return refuse(NackReason::kConsentOutOfScope, "the grant it carries is not the envelope's");
  }
  // The signatures once per grant (its exact bytes) and directory; the times every time.
  const Bytes digest = Sha256(relay.signed_grant);
  auto vetted = vetted_grants_.find(digest);
  const bool known =
      vetted != vetted_grants_.end() && now - vetted->second < server_internal::kGrantVetReuseMs;
  if (!known) ++stats_.relayed_grant_checks;
  if (auto refusal = known ? VetGrantTimes(g->grant, now) : VetGrant(*g, now)) {
    return refuse(refusal->first, "its consent grant: " + refusal->second);
  }
  if (!known) {
    if (vetted_grants_.size() >= server_internal::kMaxVettedGrants) vetted_grants_.clear();
    vetted_grants_[digest] = now;
  }
  GrantRegistration r;
  r.decoded = std::move(*g);
  r.signed_grant = std::move(relay.signed_grant);
  r.actor = from;
  r.directory_serial = directory_.directory.serial;
  turn.batch.grants.push_back(std::move(r));
  return true;
}

}  // namespace refbus::broker
