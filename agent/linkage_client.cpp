// The agency's linkage client (agent/linkage_client.h).
#include "agent/linkage_client.h"

#include <algorithm>
#include <chrono>
#include <zmq.hpp>

#include "core/hash.h"
#include "core/zmq.h"
#include "schema/codec.h"

namespace refbus::agent {
namespace {

using schema::Frame;

// What a Nack from an evaluator (or the home broker, for a tally) means to the caller.
Status LinkageNackStatus(const std::string& evaluator, const schema::Nack& nack) {
  std::string why = evaluator + " refused: " + std::string(schema::Name(nack.reason)) +
                    (nack.detail.empty() ? "" : " (" + nack.detail + ")");
  switch (nack.reason) {
    case schema::NackReason::kQuotaExceeded:
      return ResourceExhausted(std::move(why));
    case schema::NackReason::kNotPermitted:
    case schema::NackReason::kSenderMismatch:
    case schema::NackReason::kUnknownSenderKey:
      return PermissionDenied(std::move(why));
    case schema::NackReason::kBadSignature:
      return Unauthenticated(std::move(why));
    case schema::NackReason::kMalformed:
      return InvalidArgument(std::move(why));
    default:
      return Unavailable(std::move(why));
  }
}

// Waits for the reply to request_id on sock; other frames are dropped. who: "linkage
// evaluator broker-a", for the error.
Result<Frame> AwaitLinkageReply(zmq::socket_t& sock, uint64_t request_id, int timeout_ms,
                                const std::string& evaluator) {
  zmq::pollitem_t item{sock.handle(), 0, ZMQ_POLLIN, 0};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    zmq::poll(&item, 1, left);
    if ((item.revents & ZMQ_POLLIN) == 0) continue;
    zmq::message_t msg;
    if (!sock.recv(msg, zmq::recv_flags::dontwait)) continue;
    auto f = schema::DecodeFrame(ByteView(static_cast<const uint8_t*>(msg.data()), msg.size()));
    if (!f.ok() || f->request_id != request_id) continue;
    return std::move(*f);
  }
  return Unavailable(evaluator + " did not answer within " + std::to_string(timeout_ms) + " ms");
}

// One request to the broker `id` over a fresh CURVE session, and its reply (a Nack too).
// `what` names the broker's part in errors ("linkage evaluator").
Result<Frame> BrokerRoundTrip(const keys::Identity& me, const schema::Directory& directory,
                              const std::string& id, const std::string& endpoint_override,
                              const Frame& req, int timeout_ms, const std::string& what) {
  const schema::Party* p = directory.Find(id);
  const schema::KeyRecord* k = p != nullptr ? p->ActiveKeys() : nullptr;
  if (k == nullptr) return NotFound(what + " " + id + " has no active keys");
  const std::string endpoint = endpoint_override.empty() ? p->endpoint : endpoint_override;
  if (endpoint.empty()) return NotFound("no endpoint for " + what + " " + id);
  try {
    zmq::context_t ctx;
    zmq::socket_t sock(ctx, zmq::socket_type::dealer);
    REFBUS_RETURN_IF_ERROR(zmqx::ConfigureCurveClient(
        sock, k->transport_key, me.transport_public_key(), me.transport_secret_key().view()));
    sock.set(zmq::sockopt::linger, 0);
    sock.connect(endpoint);
    const Bytes body = schema::EncodeFrame(req);
    sock.send(zmq::buffer(body.data(), body.size()), zmq::send_flags::none);
    return AwaitLinkageReply(sock, req.request_id, timeout_ms, what + " " + id);
  } catch (const zmq::error_t& e) {
    return Unavailable(what + " " + id + ": " + e.what());
  }
}

// One evaluation by one evaluator over a fresh CURVE session.
Result<linkage::oprf::Evaluation> EvaluateAt(const keys::Identity& me,
                                             const schema::Directory& directory,
                                             const LinkageEvaluatorAddress& address,
                                             const linkage::oprf::Element& element,
                                             int timeout_ms) {
  Frame req;
  req.type = Frame::Type::kLinkageEvaluate;
  req.request_id = 1;
  req.linkage_evaluate.blinded_element.assign(element.begin(), element.end());
  auto reply = BrokerRoundTrip(me, directory, address.id, address.endpoint, req, timeout_ms,
                               "linkage evaluator");
  if (!reply.ok()) return reply.status();
  if (reply->type == Frame::Type::kNack) {
    return LinkageNackStatus("linkage evaluator " + address.id, reply->nack);
  }
  if (reply->type != Frame::Type::kLinkageEvaluated) {
    return Malformed("linkage evaluator " + address.id + " answered with another frame");
  }
  linkage::oprf::Evaluation ev;
  const Bytes& z = reply->linkage_evaluated.evaluated_element;
  std::copy(z.begin(), z.end(), ev.evaluated.begin());  // 32 bytes: checked by the codec
  REFBUS_ASSIGN_OR_RETURN(ev.proof,
                          linkage::oprf::Proof::Deserialize(reply->linkage_evaluated.proof));
  return ev;
}

}  // namespace

Result<linkage::Pseudonym> RequestPseudonym(const keys::Identity& me,
                                            const schema::Directory& directory,
                                            const LinkageClientOptions& options,
                                            const linkage::CanonicalIdentifier& identifier) {
  // Both keys from the directory first: nothing is sent to an evaluator that is not one.
  REFBUS_ASSIGN_OR_RETURN(auto pk_a, linkage::ListedEvaluatorKey(directory, options.first.id));
  REFBUS_ASSIGN_OR_RETURN(auto pk_b, linkage::ListedEvaluatorKey(directory, options.second.id));
  REFBUS_ASSIGN_OR_RETURN(
      auto request, linkage::PseudonymRequest::Start(identifier, linkage::oprf::RandomScalars()));
  REFBUS_ASSIGN_OR_RETURN(auto eval_a, EvaluateAt(me, directory, options.first,
                                                  request.first_request(), options.timeout_ms));
  REFBUS_ASSIGN_OR_RETURN(auto to_b, request.AcceptFirst(pk_a, eval_a));
  REFBUS_ASSIGN_OR_RETURN(auto eval_b,
                          EvaluateAt(me, directory, options.second, to_b, options.timeout_ms));
  return request.Finish(pk_b, eval_b);
}

Result<keys::TallyEvidence> RecordLinkageTally(
    const keys::Identity& me, const schema::Directory& directory, const TallyBroker& broker,
    const std::string& signed_tally, std::optional<uint64_t> entry_index, UnixMillis now) {
  REFBUS_ASSIGN_OR_RETURN(keys::LinkageTally tally,
                          keys::VerifyLinkageTally(signed_tally, directory, now));
  Frame req;
  req.type = Frame::Type::kLinkageTally;
  req.request_id = 1;
  if (entry_index) {
    req.linkage_tally.entry_index = *entry_index;
    req.linkage_tally.tally_sha256 = Sha256(AsBytes(signed_tally));
  } else {
    req.linkage_tally.signed_tally = ToBytes(signed_tally);
  }
  const std::string who = "home broker " + broker.id;
  REFBUS_ASSIGN_OR_RETURN(Frame reply, BrokerRoundTrip(me, directory, broker.id, broker.endpoint,
                                                       req, broker.timeout_ms, "home broker"));
  if (reply.type == Frame::Type::kNack) return LinkageNackStatus(who, reply.nack);
  const schema::AuditReply& r = reply.audit_reply;
  if (reply.type != Frame::Type::kAuditReply || r.entries.size() != 1 ||
      r.checkpoints.size() != 1) {
    return Malformed(who + " answered the tally with another frame");
  }
  keys::TallyEvidence ev;
  ev.agency = me.party_id();
  ev.signed_tally = signed_tally;
  ev.broker_id = broker.id;
  ev.index = r.first_index;
  ev.entry = r.entries.front();
  ev.checkpoint = r.checkpoints.front();
  for (const Bytes& h : r.hashes) {
    if (h.size() != keys::kMerkleHashBytes)
      return Malformed(who + " sent a proof hash of another size");
    keys::Hash hash;
    std::copy(h.begin(), h.end(), hash.begin());
    ev.proof.push_back(hash);
  }
  // Kept only if it would pass check-bundle: the broker's answer is checked like any other.
  auto checked = keys::CheckTallyEvidence(ev, tally.linkage_id, directory, now);
  if (!checked.ok()) return checked.status().WithContext(who + "'s evidence of the tally");
  return ev;
}

}  // namespace refbus::agent
