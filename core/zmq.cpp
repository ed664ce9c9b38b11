#include "core/zmq.h"

namespace refbus::zmqx {
namespace {

Status ZmqError(const zmq::error_t& e, std::string_view what) {
  return IoError(std::string(what) + ": " + e.what());
}

}  // namespace

Status ConfigureCurveServer(zmq::socket_t& socket, ByteView server_secret,
                            const std::string& zap_domain) {
  if (server_secret.size() != kCurveKeyBytes)
    return InvalidArgument("CURVE secret must be 32 bytes");
  if (zap_domain.empty()) return InvalidArgument("a CURVE server needs a ZAP domain");
  try {
    socket.set(zmq::sockopt::curve_server, 1);
    socket.set(zmq::sockopt::curve_secretkey,
               zmq::const_buffer(server_secret.data(), server_secret.size()));
    socket.set(zmq::sockopt::zap_domain, zap_domain);
    int enforce = 1;
    if (zmq_setsockopt(socket.handle(), kZapEnforceDomainOption, &enforce, sizeof(enforce)) != 0) {
      return IoError(
          "this libzmq does not support ZMQ_ZAP_ENFORCE_DOMAIN: refusing to run a "
          "server that would admit unknown keys");
    }
    socket.set(zmq::sockopt::linger, 0);
  } catch (const zmq::error_t& e) {
    return ZmqError(e, "configuring CURVE server");
  }
  return Status::Ok();
}

Status ConfigureCurveClient(zmq::socket_t& socket, ByteView server_public, ByteView client_public,
                            ByteView client_secret) {
  if (server_public.size() != kCurveKeyBytes || client_public.size() != kCurveKeyBytes ||
      client_secret.size() != kCurveKeyBytes) {
    return InvalidArgument("CURVE keys must be 32 bytes");
  }
  try {
    socket.set(zmq::sockopt::curve_serverkey,
               zmq::const_buffer(server_public.data(), server_public.size()));
    socket.set(zmq::sockopt::curve_publickey,
               zmq::const_buffer(client_public.data(), client_public.size()));
    socket.set(zmq::sockopt::curve_secretkey,
               zmq::const_buffer(client_secret.data(), client_secret.size()));
    socket.set(zmq::sockopt::linger, 0);
  } catch (const zmq::error_t& e) {
    return ZmqError(e, "configuring CURVE client");
  }
  return Status::Ok();
}

Status ConfigureHeartbeat(zmq::socket_t& socket, const Heartbeat& h) {
  try {
    socket.set(zmq::sockopt::heartbeat_ivl, h.interval_ms);
    socket.set(zmq::sockopt::heartbeat_timeout, h.timeout_ms);
    socket.set(zmq::sockopt::heartbeat_ttl, h.ttl_ms);
  } catch (const zmq::error_t& e) {
    return ZmqError(e, "configuring heartbeats");
  }
  return Status::Ok();
}

std::optional<std::string> UserId(const zmq::message_t& message) {
  const char* v = zmq_msg_gets(const_cast<zmq_msg_t*>(message.handle()), "User-Id");
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

std::optional<std::string> Property(const zmq::message_t& message, const char* name) {
  const char* v = zmq_msg_gets(const_cast<zmq_msg_t*>(message.handle()), name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

Result<std::string> LastEndpoint(const zmq::socket_t& socket) {
  try {
    return socket.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return ZmqError(e, "reading the bound endpoint");
  }
}

Result<std::optional<std::vector<zmq::message_t>>> RecvMultipart(zmq::socket_t& socket) {
  std::vector<zmq::message_t> parts;
  try {
    while (true) {
      zmq::message_t m;
      auto r = socket.recv(m, parts.empty() ? zmq::recv_flags::dontwait : zmq::recv_flags::none);
      if (!r) return std::optional<std::vector<zmq::message_t>>();
      bool more = m.more();
      parts.push_back(std::move(m));
      if (!more) break;
    }
  } catch (const zmq::error_t& e) {
    return ZmqError(e, "receiving");
  }
  return std::optional<std::vector<zmq::message_t>>(std::move(parts));
}

Result<std::unique_ptr<ZapHandler>> ZapHandler::Bind(zmq::context_t& context) {
  try {
    zmq::socket_t s(context, zmq::socket_type::rep);
    s.set(zmq::sockopt::linger, 0);
    s.bind("inproc://zeromq.zap.01");
    return std::unique_ptr<ZapHandler>(new ZapHandler(std::move(s)));
  } catch (const zmq::error_t& e) {
    return ZmqError(e, "binding the ZAP handler");
  }
}

Result<std::optional<ZapRequest>> ZapHandler::Read(std::string* version, std::string* request_id) {
  REFBUS_ASSIGN_OR_RETURN(auto parts, RecvMultipart(socket_));
  if (!parts) return Unavailable("no ZAP request waiting");
  auto& p = *parts;
  if (p.size() >= 2) {
    *version = p[0].to_string();
    *request_id = p[1].to_string();
  }
  // version, request id, domain, address, identity, mechanism, credentials...
  if (p.size() < 6 || *version != "1.0") return std::optional<ZapRequest>();
  ZapRequest r;
  r.request_id = *request_id;
  r.domain = p[2].to_string();
  r.address = p[3].to_string();
  r.mechanism = p[5].to_string();
  if (p.size() >= 7) {
    const auto* d = static_cast<const uint8_t*>(p[6].data());
    r.client_key.assign(d, d + p[6].size());
  }
  return std::optional<ZapRequest>(std::move(r));
}

Status ZapHandler::Reply(const std::string& request_id, const ZapDecision& d, const char* code) {
  try {
    socket_.send(zmq::buffer(std::string_view("1.0")), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(request_id), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(std::string_view(code)), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(d.status_text), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(d.allow ? d.user_id : std::string()), zmq::send_flags::sndmore);
    // Metadata: ZMTP property list (u8 name length, name, u32 big-endian value length, value).
    std::string meta;
    if (d.allow) {
      for (const auto& [name, value] : d.metadata) {
        meta.push_back(static_cast<char>(name.size()));
        meta += name;
        uint32_t n = static_cast<uint32_t>(value.size());
        for (int shift = 24; shift >= 0; shift -= 8) meta.push_back(static_cast<char>(n >> shift));
        meta += value;
      }
    }
    socket_.send(zmq::buffer(meta), zmq::send_flags::none);
  } catch (const zmq::error_t& e) {
    return ZmqError(e, "replying to ZAP");
  }
  return Status::Ok();
}

}  // namespace refbus::zmqx
