// The agency's linkage client (agent/linkage_client.h).
#include "agent/linkage_client.h"

#include <algorithm>
#include <chrono>
#include <zmq.hpp>

#include "core/zmq.h"
#include "schema/codec.h"

namespace refbus::agent {
namespace {

using schema::Frame;

// What a Nack from an evaluator means to the caller.
Status LinkageNackStatus(const std::string& evaluator, const schema::Nack& nack) {
  std::string why = "linkage evaluator " + evaluator +
                    " refused: " + std::string(schema::Name(nack.reason)) +
                    (nack.detail.empty() ? "" : " (" + nack.detail + ")");
  switch (nack.reason) {
    case schema::NackReason::kQuotaExceeded:
      return ResourceExhausted(std::move(why));
    case schema::NackReason::kNotPermitted:
      return PermissionDenied(std::move(why));
    case schema::NackReason::kMalformed:
      return InvalidArgument(std::move(why));
    default:
      return Unavailable(std::move(why));
  }
}

// Waits for the reply to request_id on sock; other frames are dropped.
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
  return Unavailable("linkage evaluator " + evaluator + " did not answer within " +
                     std::to_string(timeout_ms) + " ms");
}

// One evaluation by one evaluator over a fresh CURVE session.
Result<linkage::oprf::Evaluation> EvaluateAt(const keys::Identity& me,
                                             const schema::Directory& directory,
                                             const LinkageEvaluatorAddress& address,
                                             const linkage::oprf::Element& element,
                                             int timeout_ms) {
  const schema::Party* p = directory.Find(address.id);
  const schema::KeyRecord* k = p != nullptr ? p->ActiveKeys() : nullptr;
  if (k == nullptr) return NotFound("linkage evaluator " + address.id + " has no active keys");
  const std::string endpoint = address.endpoint.empty() ? p->endpoint : address.endpoint;
  if (endpoint.empty()) return NotFound("no endpoint for linkage evaluator " + address.id);
  Frame req;
  req.type = Frame::Type::kLinkageEvaluate;
  req.request_id = 1;
  req.linkage_evaluate.blinded_element.assign(element.begin(), element.end());
  Result<Frame> reply = Unavailable("not sent");
  try {
    zmq::context_t ctx;
    zmq::socket_t sock(ctx, zmq::socket_type::dealer);
    REFBUS_RETURN_IF_ERROR(zmqx::ConfigureCurveClient(
        sock, k->transport_key, me.transport_public_key(), me.transport_secret_key().view()));
    sock.set(zmq::sockopt::linger, 0);
    sock.connect(endpoint);
    const Bytes body = schema::EncodeFrame(req);
    sock.send(zmq::buffer(body.data(), body.size()), zmq::send_flags::none);
    reply = AwaitLinkageReply(sock, req.request_id, timeout_ms, address.id);
  } catch (const zmq::error_t& e) {
    return Unavailable("linkage evaluator " + address.id + ": " + e.what());
  }
  if (!reply.ok()) return reply.status();
  if (reply->type == Frame::Type::kNack) return LinkageNackStatus(address.id, reply->nack);
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

}  // namespace refbus::agent
