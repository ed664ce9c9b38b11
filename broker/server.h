// The broker's event loop: one ROUTER socket with CURVE, its ZAP handler, the durable
// store, deliveries and directory reloads, all on one thread.
//
// Each turn: answer ZAP requests; read up to max_batch frames; check each (size, decode,
// authenticated peer still valid in the current directory, envelope checks); commit every
// accepted envelope, every recipient ack and every audit event of the turn in one LMDB
// transaction (group commit); only then send acks and nacks; then push deliveries.
//
// Identity of a peer is ZAP's User-Id, attached by libzmq to each message of an
// authenticated connection, plus the connection's CURVE key (ZAP metadata
// X-Transport-Key): every frame is checked against the current directory, so a party
// revoked (or a key rotated out) by a reloaded directory is cut off at once, even on a
// connection that authenticated earlier.
//
// Thread safety: Run() on one thread; RequestStop()/RequestReload() from any thread or a
// signal handler (they only set atomics).
#ifndef REFBUS_BROKER_SERVER_H_
#define REFBUS_BROKER_SERVER_H_

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "broker/config.h"
#include "broker/store.h"
#include "core/clock.h"
#include "core/status.h"
#include "core/zmq.h"
#include "keys/directory.h"
#include "keys/identity.h"

namespace refbus::broker {

struct ServerStats {
  uint64_t accepted = 0;
  uint64_t duplicates = 0;
  uint64_t rejected = 0;
  uint64_t delivered = 0;  // delivery frames sent (with redeliveries)
  uint64_t acked = 0;      // recipient acks applied
  uint64_t commits = 0;
  uint64_t zap_refused = 0;
};

class Server {
 public:
  static Result<std::unique_ptr<Server>> Create(const Config& config);
  ~Server();

  // The bound endpoint (with the port the OS chose for "tcp://127.0.0.1:*").
  const std::string& endpoint() const { return endpoint_; }

  // Runs until RequestStop(); then finishes the turn in progress (its commit and its
  // replies) and returns ok.
  Status Run();
  void RequestStop() { stop_.store(true); }
  void RequestReload() { reload_.store(true); }
  const ServerStats& stats() const { return stats_; }

 private:
  struct Peer {
    std::string routing_id;
    uint64_t last_sent_seq = 0;  // deliveries up to here are in flight
    size_t inflight = 0;
    bool online = false;
  };
  struct Inflight {
    std::string recipient;
    uint64_t seq = 0;
    Bytes message_id;
    UnixMillis sent_at = 0;
  };
  // A reply owed to a submitter, sent after the turn's commit.
  struct Reply {
    std::string routing_id;
    uint64_t request_id = 0;
    Bytes message_id;
    int accepted_index = -1;  // index into the batch's accepted list, or -1: a nack
    bool duplicate = false;   // the ack says the message was already held
    schema::NackReason reason = schema::NackReason::kUnspecified;
    std::string detail;
    uint32_t retry_after_ms = 0;
  };
  struct Turn {
    Batch batch;
    std::vector<schema::SealedEnvelope> decoded;  // parallel to batch.accepted
    std::vector<Reply> replies;
    std::vector<std::pair<std::string, schema::Frame>> direct;  // not waiting for commit
  };

  Server() = default;
  Status Bind();
  Status HandleZap();
  void HandleMessage(std::vector<zmq::message_t>& parts, Turn& turn, UnixMillis now);
  void HandleSubmit(const std::string& routing_id, const std::string& peer, uint64_t request_id,
                    const Bytes& envelope, Turn& turn, UnixMillis now);
  void Reject(Turn& turn, const std::string& routing_id, uint64_t request_id,
              const std::string& peer, schema::NackReason reason, std::string detail,
              const schema::SealedEnvelope* env, ByteView envelope_bytes);
  Status CommitTurn(Turn& turn, UnixMillis now);
  void Send(const std::string& routing_id, const schema::Frame& frame);
  void PumpDeliveries(UnixMillis now);
  void CheckTimers(UnixMillis now);
  void ReloadDirectory(UnixMillis now, bool forced);
  // The party behind a connection, if it is still allowed by the current directory.
  Result<const schema::Party*> CurrentPeer(const zmq::message_t& msg) const;

  Config config_;
  std::unique_ptr<keys::Identity> identity_;
  keys::TrustAnchor anchor_;
  std::unique_ptr<keys::TrustState> trust_;
  schema::SignedDirectory directory_;
  long directory_mtime_ = 0;
  std::unique_ptr<Store> store_;

  zmq::context_t context_;
  zmq::socket_t router_;
  std::unique_ptr<zmqx::ZapHandler> zap_;
  std::string endpoint_;

  std::map<std::string, Peer> peers_;                // by party id
  std::set<std::string> dirty_;                      // recipients with something new to deliver
  std::unordered_map<uint64_t, Inflight> inflight_;  // by delivery request id
  uint64_t next_delivery_id_ = 1;
  std::vector<schema::AuditEntry> pending_events_;  // written with the next commit
  UnixMillis last_timer_check_ = 0;
  UnixMillis last_expiry_ = 0;

  std::atomic<bool> stop_{false};
  std::atomic<bool> reload_{false};
  ServerStats stats_;
};

}  // namespace refbus::broker

#endif  // REFBUS_BROKER_SERVER_H_
