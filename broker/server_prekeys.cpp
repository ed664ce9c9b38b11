// broker::Server's prekey publication (schema/PROTOCOL.md "Prekey publication"): an agency
// hands its home broker a prekey it signed (PrekeyUpdate); a peer broker passes one on
// (Relay.signed_prekey). Each is checked here against the current directory
// (keys::VerifyPublishedPrekey), stored as its owner's newest in the commit, audited
// (PREKEY_PUBLISHED: key id only) and queued for the peer brokers; once committed it is
// pushed to the agencies connected here, and every agency gets the whole stored set after
// its Welcome.
#include <spdlog/spdlog.h>

#include "broker/server.h"
#include "broker/server_internal.h"
#include "keys/crypto.h"
#include "keys/published_prekey.h"
#include "schema/codec.h"

namespace refbus::broker {

using schema::Frame;
using schema::NackReason;

namespace {

NackReason PrekeyRefusalReason(const Status& s) {
  switch (s.code()) {
    case Status::Code::kNotFound:
    case Status::Code::kRevoked:
      return NackReason::kUnknownSenderKey;
    case Status::Code::kUnauthenticated:
      return NackReason::kBadSignature;
    case Status::Code::kExpired:
      return NackReason::kExpired;
    default:
      return NackReason::kMalformed;
  }
}

Frame PrekeyFrame(Bytes signed_prekey) {
  Frame f;
  f.type = Frame::Type::kPrekeyUpdate;
  f.prekey_update.signed_prekey = std::move(signed_prekey);
  return f;
}

}  // namespace

void Server::RefusePrekey(Turn& turn, const std::string& routing_id, uint64_t request_id,
                          const std::string& peer, NackReason reason, std::string detail,
                          const Bytes& signed_prekey, const std::string& owner) {
  // Audited one by one (not only counted into the window's aggregate): name what it was.
  if (schema::AuditEntry* e =
          Reject(turn, routing_id, request_id, peer, reason, "prekey: " + detail, nullptr, {})) {
    e->sender_id = owner;
    e->statement_sha256 = Sha256(signed_prekey);
    turn.replies.back().message_id = AttestationId(signed_prekey);
  }
}

void Server::HandlePrekey(const std::string& routing_id, const schema::Party& peer,
                          uint64_t request_id, Bytes signed_prekey, bool via_peer, Turn& turn,
                          UnixMillis now) {
  auto refuse = [&](NackReason reason, std::string detail, const std::string& owner) {
    if (via_peer) ++stats_.relays_refused;
    RefusePrekey(turn, routing_id, request_id, peer.id, reason,
                 (via_peer ? "relayed by broker " + peer.id + ": " : std::string()) + detail,
                 signed_prekey, owner);
  };
  auto sp = schema::DecodeSignedPrekey(signed_prekey);
  if (!sp.ok()) {
    refuse(NackReason::kMalformed, sp.status().message(), "");
    return;
  }
  const std::string& owner = sp->prekey.owner_id;
  // From an agency: only its own prekey. From a peer broker: any agency's, signed by it.
  if (!via_peer && (peer.kind != schema::PartyKind::kAgency || owner != peer.id)) {
    refuse(
        NackReason::kSenderMismatch,
        "a prekey of " + owner + " published by " + peer.id + " (an agency publishes only its own)",
        owner);
    return;
  }
  if (Status s = keys::VerifyPublishedPrekey(directory_.directory, *sp, now); !s.ok()) {
    refuse(PrekeyRefusalReason(s), s.message(), owner);
    return;
  }
  const Bytes key_id = keys::KeyId(keys::KeyUse::kPrekey, sp->prekey.public_key);
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = request_id;
  reply.message_id = AttestationId(signed_prekey);
  reply.kind = Reply::Attestation{};  // acked once the commit ran
  turn.replies.push_back(std::move(reply));
  PrekeyPublication p;
  p.owner = owner;
  p.not_before_ms = sp->prekey.not_before_ms;
  p.detail = "prekey " + keys::Fingerprint(key_id) + " valid " +
             FormatUtc(sp->prekey.not_before_ms) + " to " + FormatUtc(sp->prekey.not_after_ms);
  p.actor = peer.id;
  p.directory_serial = directory_.directory.serial;
  p.via_peer = via_peer;
  p.signed_prekey = std::move(signed_prekey);
  turn.batch.prekeys.push_back(std::move(p));
}

void Server::ServePrekeys(const std::string& routing_id, Turn& turn) {
  auto all = store_->PublishedPrekeys();
  if (!all.ok()) {
    spdlog::error("published prekeys not served: {}", all.status().ToString());
    return;
  }
  for (auto& sp : *all) turn.direct.emplace_back(routing_id, PrekeyFrame(std::move(sp)));
}

void Server::PushPrekeys(const Job& job) {
  const auto& stored = job.result.prekeys_stored;
  for (size_t i = 0; i < stored.size() && i < job.turn.batch.prekeys.size(); ++i) {
    if (!stored[i]) continue;
    const PrekeyPublication& p = job.turn.batch.prekeys[i];
    spdlog::info("published prekey of {} stored ({}, from {})", p.owner, p.detail, p.actor);
    for (const auto& [id, peer] : deliveries_.peers) {
      if (peer.online) Send(peer.routing_id, PrekeyFrame(p.signed_prekey));
    }
  }
}

}  // namespace refbus::broker
