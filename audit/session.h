// The auditor's side of a connection to one broker (schema/PROTOCOL.md section 11), shared
// by fetch (audit/fetch.h) and witness (audit/witness.h): the auditor's identity checked
// against the verified directory, the broker's keys and endpoint from it, and a CURVE
// session that asks one question at a time. Internal to the audit library.
//
// Thread safety: an AuditSession is used by one thread.
#ifndef REFBUS_AUDIT_SESSION_H_
#define REFBUS_AUDIT_SESSION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "audit/verify.h"
#include "core/bytes.h"
#include "core/status.h"
#include "core/zmq.h"
#include "keys/identity.h"
#include "keys/merkle.h"
#include "schema/codec.h"
#include "schema/types.h"

namespace refbus::audit {

inline constexpr char kAuditSoftware[] = "refbus-audit/0.1";

// One request at a time to one broker, as the auditor, over CURVE.
class AuditSession {
 public:
  // Connects, says Hello as me and checks that the broker is broker_id.
  static Result<std::unique_ptr<AuditSession>> Open(const keys::Identity& me, ByteView server_key,
                                                    const std::string& endpoint,
                                                    const std::string& broker_id, int timeout_ms) {
    std::unique_ptr<AuditSession> s(new AuditSession(broker_id, endpoint, timeout_ms));
    try {
      s->sock_ = zmq::socket_t(s->ctx_, zmq::socket_type::dealer);
      REFBUS_RETURN_IF_ERROR(zmqx::ConfigureCurveClient(
          s->sock_, server_key, me.transport_public_key(), me.transport_secret_key().view()));
      REFBUS_RETURN_IF_ERROR(zmqx::ConfigureHeartbeat(s->sock_, zmqx::Heartbeat{}));
      // A broker cannot make the auditor buffer more than one frame's worth.
      s->sock_.set(zmq::sockopt::maxmsgsize,
                   static_cast<int64_t>(schema::kMaxFrameBytes + (64 << 10)));
      s->sock_.connect(endpoint);
    } catch (const zmq::error_t& e) {
      return Unavailable("cannot connect to " + endpoint + ": " + e.what());
    }
    schema::Frame hello;
    hello.type = schema::Frame::Type::kHello;
    hello.hello.party_id = me.party_id();
    hello.hello.software = kAuditSoftware;
    REFBUS_ASSIGN_OR_RETURN(schema::Frame welcome, s->Exchange(std::move(hello)));
    if (welcome.type == schema::Frame::Type::kNack) return s->Refusal(welcome, "session");
    if (welcome.type != schema::Frame::Type::kWelcome) {
      return Malformed("broker " + broker_id + " answered Hello with another frame type");
    }
    if (welcome.welcome.broker_id != broker_id) {
      return Unauthenticated("the broker at " + endpoint + " calls itself '" +
                             welcome.welcome.broker_id + "', not " + broker_id);
    }
    return s;
  }

  // The AuditReply to query, or the broker's refusal as a Status.
  Result<schema::AuditReply> Ask(schema::Frame query) {
    ++queries_;
    REFBUS_ASSIGN_OR_RETURN(schema::Frame r, Exchange(std::move(query)));
    if (r.type == schema::Frame::Type::kNack) return Refusal(r, "audit query");
    if (r.type != schema::Frame::Type::kAuditReply) {
      return Malformed("broker " + broker_id_ + " answered an audit query with another frame type");
    }
    return std::move(r.audit_reply);
  }

  // Any other request (AddCosignature): the answering frame, a Nack included.
  Result<schema::Frame> Call(schema::Frame request) { return Exchange(std::move(request)); }

  size_t queries() const { return queries_; }

 private:
  AuditSession(std::string broker_id, std::string endpoint, int timeout_ms)
      : broker_id_(std::move(broker_id)), endpoint_(std::move(endpoint)), timeout_ms_(timeout_ms) {}

  Status Refusal(const schema::Frame& nack, std::string_view what) const {
    std::string m = "broker " + broker_id_ + " refused the " + std::string(what) + ": " +
                    std::string(schema::Name(nack.nack.reason)) + " (" + nack.nack.detail + ")";
    switch (nack.nack.reason) {
      case schema::NackReason::kNotPermitted:
      case schema::NackReason::kUnknownSenderKey:
      case schema::NackReason::kSenderMismatch:
        return PermissionDenied(m);
      case schema::NackReason::kOutOfRange:
        return InvalidArgument(m);
      default:
        return Unavailable(m);
    }
  }

  // Sends f with a new request id and waits for the frame answering it.
  Result<schema::Frame> Exchange(schema::Frame f) {
    f.request_id = next_request_++;
    Bytes body = schema::EncodeFrame(f);
    try {
      sock_.send(zmq::buffer(body.data(), body.size()), zmq::send_flags::none);
      auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
      while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        zmq::pollitem_t items[] = {{sock_.handle(), 0, ZMQ_POLLIN, 0}};
        zmq::poll(items, 1, left);
        if (!(items[0].revents & ZMQ_POLLIN)) continue;
        zmq::message_t m;
        if (!sock_.recv(m, zmq::recv_flags::dontwait)) continue;
        auto r = schema::DecodeFrame(ByteView(static_cast<const uint8_t*>(m.data()), m.size()));
        if (!r.ok()) {
          return Malformed("broker " + broker_id_ +
                           " sent a frame that does not decode: " + r.status().message());
        }
        // A Nack with request id 0 answers a frame the broker could not read: ours.
        if (r->request_id == f.request_id ||
            (r->type == schema::Frame::Type::kNack && r->request_id == 0)) {
          return std::move(*r);
        }
      }
    } catch (const zmq::error_t& e) {
      return Unavailable("talking to broker " + broker_id_ + " at " + endpoint_ + ": " + e.what());
    }
    return Unavailable("no answer from broker " + broker_id_ + " at " + endpoint_ + " within " +
                       std::to_string(timeout_ms_) +
                       " ms: is it running there, and does its directory list this auditor's key?");
  }

  std::string broker_id_;
  std::string endpoint_;
  int timeout_ms_;
  zmq::context_t ctx_;
  zmq::socket_t sock_;
  uint64_t next_request_ = 1;
  size_t queries_ = 0;
};

// A frame of the given type with nothing else set (audit queries).
schema::Frame Query(schema::Frame::Type type);

// The hashes of a consistency proof (the codec checked that each has 32 bytes).
std::vector<keys::Hash> ToHashes(const std::vector<Bytes>& in);

// The auditor's identity from its folder, checked against the verified directory: an active
// auditor with the audit role (and the witness role when witness), holding its active keys.
Result<keys::Identity> LoadAuditor(const schema::Directory& dir, const std::string& auditor_dir,
                                   const std::string& passphrase_file, bool witness);

// The broker an auditor talks to, from the verified directory only.
struct BrokerTarget {
  LogKeys log_keys;
  Bytes transport_key;   // the broker's active CURVE key
  std::string endpoint;  // the one given, else the directory's
};
Result<BrokerTarget> ResolveBroker(const schema::Directory& dir, const std::string& broker_id,
                                   const std::string& endpoint);

// Asks for a fresh signed checkpoint (it covers this request's own AUDITOR_QUERY entry) and
// returns its note, unverified.
Result<std::string> AskFreshCheckpoint(AuditSession& session, const std::string& broker_id);

}  // namespace refbus::audit

#endif  // REFBUS_AUDIT_SESSION_H_
