// ZeroMQ with CURVE, the way refbus uses it on every socket (cppzmq underneath).
//
// Servers: CURVE server key, a ZAP domain and ZMQ_ZAP_ENFORCE_DOMAIN (option 93, a draft
// option in Debian's libzmq 4.3.4, set by number): without both, libzmq admits any client
// that knows the server key. The application answers ZAP requests (ZapHandler) and puts
// the peer's identity in User-Id, which every received message then carries (UserId()).
// Clients: CURVE client keys and the server's public key. Everyone: heartbeats, so dead
// peers are noticed, and no linger, so shutdown does not hang.
//
// Keys are passed as bytes (32 raw bytes each); libzmq keeps its own copy of a secret key
// inside the socket for the socket's life. Functions catch cppzmq exceptions and return a
// Status; would-block is not an error.
//
// Thread safety: a socket belongs to one thread, as in ZeroMQ.
#ifndef REFBUS_CORE_ZMQ_H_
#define REFBUS_CORE_ZMQ_H_

#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "core/bytes.h"
#include "core/status.h"

namespace refbus::zmqx {

inline constexpr int kZapEnforceDomainOption = 93;  // ZMQ_ZAP_ENFORCE_DOMAIN (draft)
inline constexpr size_t kCurveKeyBytes = 32;

struct Heartbeat {
  int interval_ms = 2000;
  int timeout_ms = 6000;
  int ttl_ms = 10000;
};

Status ConfigureCurveServer(zmq::socket_t& socket, ByteView server_secret,
                            const std::string& zap_domain);
Status ConfigureCurveClient(zmq::socket_t& socket, ByteView server_public, ByteView client_public,
                            ByteView client_secret);
Status ConfigureHeartbeat(zmq::socket_t& socket, const Heartbeat& heartbeat);

// ZAP's User-Id on a received message, if the connection was authenticated.
std::optional<std::string> UserId(const zmq::message_t& message);

// The endpoint a socket is bound to (after binding "tcp://127.0.0.1:*").
Result<std::string> LastEndpoint(const zmq::socket_t& socket);

// Receives all parts of one message without blocking. nullopt if none is waiting.
Result<std::optional<std::vector<zmq::message_t>>> RecvMultipart(zmq::socket_t& socket);

// A ZAP request (RFC 27) as the handler sees it.
struct ZapRequest {
  std::string request_id;
  std::string domain;
  std::string address;    // peer IP address
  std::string mechanism;  // "CURVE" for refbus
  Bytes client_key;       // CURVE: the client's 32-byte public key
};

struct ZapDecision {
  bool allow = false;
  std::string user_id;      // the authenticated party id when allowed
  std::string status_text;  // short reason, for the peer's logs
  // Properties attached to every message of the connection (names start with "X-"),
  // read back with Property().
  std::vector<std::pair<std::string, std::string>> metadata;
};

// A ZAP metadata property on a received message.
std::optional<std::string> Property(const zmq::message_t& message, const char* name);

// Binds inproc://zeromq.zap.01 in the context; the owner polls socket() and calls
// HandleOne when it is readable.
class ZapHandler {
 public:
  static Result<std::unique_ptr<ZapHandler>> Bind(zmq::context_t& context);
  zmq::socket_t& socket() { return socket_; }

  // Reads one request, asks decide, replies. Malformed requests are answered with 500.
  template <typename Decide>
  Status HandleOne(Decide&& decide);

 private:
  explicit ZapHandler(zmq::socket_t s) : socket_(std::move(s)) {}
  Result<std::optional<ZapRequest>> Read(std::string* version, std::string* request_id);
  Status Reply(const std::string& request_id, const ZapDecision& d, const char* code);
  zmq::socket_t socket_;
};

template <typename Decide>
Status ZapHandler::HandleOne(Decide&& decide) {
  std::string version, request_id;
  auto req = Read(&version, &request_id);
  if (!req.ok()) return req.status();
  if (!req->has_value()) {
    ZapDecision refuse;
    refuse.status_text = "malformed ZAP request";
    return Reply(request_id, refuse, "500");
  }
  ZapDecision d = decide(**req);
  return Reply(request_id, d, d.allow ? "200" : "400");
}

}  // namespace refbus::zmqx

#endif  // REFBUS_CORE_ZMQ_H_
