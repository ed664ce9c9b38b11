// The CURVE DEALER the refbus benchmarks connect with (broker_bench's client, scale_bench's
// agencies): the same socket settings everywhere, so their figures compare.
#ifndef REFBUS_TESTS_BENCH_BENCH_CLIENT_H_
#define REFBUS_TESTS_BENCH_BENCH_CLIENT_H_

#include <string>
#include <zmq.hpp>

#include "core/bytes.h"
#include "core/zmq.h"
#include "keys/identity.h"

namespace refbus::bench {

// A DEALER with me's transport keys as a CURVE client of server_key, deep queues (the
// benchmarks keep thousands of frames in flight), no linger, connected to endpoint.
inline zmq::socket_t ConnectDealer(zmq::context_t& ctx, const keys::Identity& me,
                                   ByteView server_key, const std::string& endpoint) {
  zmq::socket_t sock(ctx, zmq::socket_type::dealer);
  (void)zmqx::ConfigureCurveClient(sock, server_key, me.transport_public_key(),
                                   me.transport_secret_key().view());
  sock.set(zmq::sockopt::sndhwm, 100000);
  sock.set(zmq::sockopt::rcvhwm, 100000);
  sock.set(zmq::sockopt::linger, 0);
  sock.connect(endpoint);
  return sock;
}

}  // namespace refbus::bench

#endif  // REFBUS_TESTS_BENCH_BENCH_CLIENT_H_
