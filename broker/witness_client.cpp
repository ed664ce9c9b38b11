#include "broker/witness_client.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/file.h"
#include "core/zmq.h"
#include "keys/checkpoint.h"
#include "keys/witness.h"
#include "schema/codec.h"

namespace refbus::broker {
namespace {

using schema::Frame;
using schema::WitnessRefusal;

std::vector<Bytes> ProofBytes(const std::vector<keys::Hash>& proof) {
  std::vector<Bytes> out;
  for (const auto& h : proof) out.emplace_back(h.begin(), h.end());
  return out;
}

}  // namespace

WitnessClient::WitnessClient(Links& links, WitnessClientOptions options)
    : links_(links), options_(std::move(options)) {
  for (const auto& p : options_.peers) {
    Peer peer;
    peer.config = p;
    peers_.push_back(std::move(peer));
  }
  links_.set_other_reply_handler([this](const std::string& peer, schema::Frame frame) {
    replies_.emplace_back(peer, std::move(frame));
  });
}

WitnessClient::~WitnessClient() = default;

void WitnessClient::Offer(const StoredCheckpoint& checkpoint) {
  if (!offered_.empty() && checkpoint.checkpoint.size <= offered_.back().size) return;
  auto note = keys::ParseSignedNote(checkpoint.note);
  if (!note.ok()) {
    spdlog::error("witnessing: the stored checkpoint of size {} does not parse: {}",
                  checkpoint.checkpoint.size, note.status().message());
    return;
  }
  Offered o;
  o.size = checkpoint.checkpoint.size;
  o.root = checkpoint.checkpoint.root;
  o.note = checkpoint.note;
  o.body = note->text;
  // The first checkpoint offered (the latest stored one at start) tells, by its cosignature
  // lines, how far each peer had cosigned before this process started.
  for (Peer& peer : peers_) {
    if (peer.believed) continue;
    peer.believed = 0;
    auto name = keys::WitnessName(options_.federation, peer.config.id);
    if (!name.ok()) continue;
    for (const auto& sig : note->signatures) {
      if (sig.name == *name) {
        peer.believed = o.size;
        peer.progress = o.size;
      }
    }
  }
  offered_.push_back(std::move(o));
  // The oldest beyond the backlog go (later cosignatures cover them), and so does what
  // every peer is done with (the latest stays: a peer may yet need it after a conflict).
  while (offered_.size() > kMaxBacklog) offered_.pop_front();
  while (offered_.size() > 1) {
    bool all_done = true;
    for (const Peer& peer : peers_) {
      all_done = all_done && peer.progress && *peer.progress >= offered_.front().size;
    }
    if (!all_done) break;
    offered_.pop_front();
  }
}

void WitnessClient::Problem(Peer& peer, int level, std::string message) {
  if (message == peer.last_problem) return;  // said already; said again when it changes
  peer.last_problem = message;
  if (level >= 2) {
    spdlog::critical("WITNESS {}: {}", peer.config.id, message);
  } else if (level == 1) {
    spdlog::error("witness {}: {}", peer.config.id, message);
  } else {
    spdlog::warn("witness {}: {}", peer.config.id, message);
  }
}

Status WitnessClient::Reachable(Peer& peer, const schema::Directory& directory) {
  const schema::Party* p = directory.Find(peer.config.id);
  if (p == nullptr || p->kind != schema::PartyKind::kBroker ||
      p->status != schema::PartyStatus::kActive) {
    return FailedPrecondition("not an active broker in directory serial " +
                              std::to_string(directory.serial));
  }
  if (!p->HasRole(schema::Role::kWitness)) {
    return FailedPrecondition("does not have the witness role in directory serial " +
                              std::to_string(directory.serial));
  }
  if (!links_.IsUp(peer.config.id)) {
    return Unavailable("the federation link to it is not up");
  }
  return Status::Ok();
}

const WitnessClient::Offered* WitnessClient::Next(Peer& peer) {
  const uint64_t believed = peer.believed.value_or(0);
  const Offered* next = nullptr;
  for (const Offered& o : offered_) {
    if (peer.progress && o.size <= *peer.progress) continue;
    // The witness will not go back below what it cosigned: those are covered or lost.
    if (o.size < believed) continue;
    next = &o;
    break;
  }
  if (next == nullptr && !offered_.empty() && offered_.back().size < believed &&
      (!peer.ahead_reported || *peer.ahead_reported != believed)) {
    peer.ahead_reported = believed;
    spdlog::critical(
        "WITNESS {} has cosigned a checkpoint of size {} of this log ({}), but the latest "
        "checkpoint has size {}: this log was truncated or rewritten after the witness saw "
        "it; the witness is asked again once the log has grown past that size",
        peer.config.id, believed, options_.origin, offered_.back().size);
  }
  return next;
}

void WitnessClient::Send(Peer& peer, UnixMillis now, const schema::Directory& directory,
                         const Store& store) {
  const Offered* next = Next(peer);
  if (next == nullptr) return;
  const Offered l = *next;  // copied: offered_ may change before the answer
  const uint64_t old_size = peer.believed.value_or(0);
  if (Status s = Reachable(peer, directory); !s.ok()) {
    Problem(peer, 0, s.message());
    peer.next_at = now + options_.interval_ms;
    return;
  }
  std::vector<keys::Hash> proof;
  if (old_size != 0 && old_size != l.size) {
    auto p = store.ConsistencyProof(old_size, l.size);
    if (!p.ok()) {
      Problem(peer, 1,
              "no consistency proof from size " + std::to_string(old_size) + " to " +
                  std::to_string(l.size) + ": " + p.status().message());
      peer.next_at = now + options_.interval_ms;
      return;
    }
    proof = std::move(*p);
  }
  Frame f;
  f.type = Frame::Type::kWitnessRequest;
  f.witness_request.checkpoint = l.note;
  f.witness_request.old_size = old_size;
  f.witness_request.consistency_proof = ProofBytes(proof);
  auto id = links_.SendOther(peer.config.id, std::move(f));
  if (!id) {
    Problem(peer, 0, "the federation link to it cannot take the request now");
    peer.next_at = now + options_.interval_ms;
    return;
  }
  ++stats_.requests;
  peer.inflight = true;
  peer.request_id = *id;
  peer.sent_at = now;
  peer.request = l;
  spdlog::debug("witnessing: asked {} to cosign size {} (old size {}, {} proof hashes)",
                peer.config.id, l.size, old_size, proof.size());
}

void WitnessClient::HandleReply(Peer& peer, const Frame& f, UnixMillis now,
                                const schema::Directory& directory,
                                std::vector<CheckpointCosignature>& out) {
  peer.inflight = false;
  const uint64_t size = peer.request.size;
  const std::string what = "checkpoint of size " + std::to_string(size);
  if (f.type == Frame::Type::kNack) {
    ++stats_.refused;
    Problem(peer, 1,
            "refused the request for " + what + ": " + std::string(schema::Name(f.nack.reason)) +
                " (" + f.nack.detail + ")");
    if (f.nack.reason == schema::NackReason::kNotPermitted ||
        f.nack.reason == schema::NackReason::kMalformed) {
      peer.progress = size;
    }
    peer.next_at = now + std::max<UnixMillis>(options_.interval_ms, f.nack.retry_after_ms);
    return;
  }
  if (f.type != Frame::Type::kWitnessReply) {
    ++stats_.refused;
    Problem(peer, 1, "answered a witness request with another frame type");
    peer.next_at = now + options_.interval_ms;
    return;
  }
  const schema::WitnessReply& r = f.witness_reply;
  switch (r.refusal) {
    case WitnessRefusal::kNone: {
      peer.next_at = now;  // the next checkpoint at once
      auto sig = keys::ParseSignatureLine(r.cosignature);
      auto keys = keys::WitnessVerifiersOf(directory, peer.config.id);
      Status bad;
      if (!sig.ok()) {
        bad = sig.status();
      } else if (!keys.ok()) {
        bad = keys.status();
      } else {
        bad = Unauthenticated("the cosignature is not by a key the directory lists for it");
        for (const auto& k : *keys) {
          if (k.name() != sig->name || k.key_id() != sig->key_id) continue;
          auto t = keys::VerifyCosignature(peer.request.body, *sig, k);
          bad = t.ok() ? Status::Ok() : t.status();
          break;
        }
      }
      if (!bad.ok()) {
        ++stats_.refused;
        Problem(peer, 1,
                "sent a cosignature of " + what + " that does not verify: " + bad.message());
        peer.progress = size;
        peer.next_at = now + options_.interval_ms;
        return;
      }
      ++stats_.cosigned;
      peer.believed = size;
      peer.progress = size;
      peer.ahead_reported.reset();
      if (!peer.last_problem.empty()) {
        spdlog::info("witness {}: cosigning again", peer.config.id);
        peer.last_problem.clear();
      }
      spdlog::debug("witness {} cosigned {}", peer.config.id, what);
      out.push_back({size, peer.request.root, peer.config.id, std::move(*sig)});
      return;
    }
    case WitnessRefusal::kConflict:
      ++stats_.conflicts;
      spdlog::info(
          "witness {} last cosigned size {} of this log (this broker believed {}); asking "
          "again with a proof from there",
          peer.config.id, r.witness_size, peer.believed.value_or(0));
      peer.believed = r.witness_size;
      // At once: Next skips what the witness is past and takes its cosigned size as done.
      if (peer.progress && *peer.progress > r.witness_size) peer.progress.reset();
      peer.next_at = now;
      return;
    case WitnessRefusal::kInconsistent:
      ++stats_.inconsistent;
      peer.progress = size;
      peer.believed = r.witness_size;
      // A rewritten history stays rewritten: every later checkpoint would be refused too.
      peer.given_up = true;
      spdlog::critical(
          "WITNESS {} REFUSED this log's {} as INCONSISTENT with the checkpoint of size {} it "
          "cosigned before: this log's history differs from what the witness saw ({}); it is "
          "not asked again until this broker restarts",
          peer.config.id, what, r.witness_size, r.detail);
      return;
    case WitnessRefusal::kUnknownLog:
    case WitnessRefusal::kBadSignature:
    case WitnessRefusal::kBadRequest:
      ++stats_.refused;
      peer.progress = size;
      peer.next_at = now + options_.interval_ms;
      Problem(peer, 1,
              "refused to cosign " + what + ": " + std::string(schema::Name(r.refusal)) + " (" +
                  r.detail + ")");
      return;
  }
}

void WitnessClient::Pump(UnixMillis now, const schema::Directory& directory, const Store& store,
                         std::vector<CheckpointCosignature>& out) {
  std::vector<std::pair<std::string, schema::Frame>> replies;
  replies.swap(replies_);
  for (auto& [id, f] : replies) {
    for (Peer& peer : peers_) {
      if (peer.config.id != id || !peer.inflight || f.request_id != peer.request_id) continue;
      HandleReply(peer, f, now, directory, out);
    }
  }
  for (Peer& peer : peers_) {
    if (peer.inflight && now - peer.sent_at >= options_.timeout_ms) {
      ++stats_.timeouts;
      Problem(peer, 0,
              "no answer within " + std::to_string(options_.timeout_ms) + " ms over the link to " +
                  links_.EndpointOf(peer.config.id) + "; asking again");
      peer.inflight = false;
      peer.next_at = now + options_.interval_ms;
    }
    if (!peer.inflight && !peer.given_up && now >= peer.next_at) Send(peer, now, directory, store);
  }
}

}  // namespace refbus::broker
