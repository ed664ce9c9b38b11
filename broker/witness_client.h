// The log side of witnessing (schema/PROTOCOL.md section 11.3): a broker asks the peer
// brokers named in its [witness] configuration to cosign its latest checkpoint, and collects
// their cosignatures for the writer to store with the checkpoint.
//
// Contract:
//   - Requests go over the federation link to the peer (broker/link.h: the link's CURVE
//     session, its address and its key checks); a peer whose link is not up is asked again
//     after the interval, and a request unanswered by timeout_ms is given up and asked again
//     after the interval (a request lost with a link session gets no answer).
//   - Every checkpoint the broker signs is offered (Offer) and asked for in order of size,
//     so that each stored checkpoint gets its own cosignatures (auditors wait for the one
//     they fetched). At most one request per peer is in flight; the next goes out as soon
//     as the answer is in, and after a refusal, a Nack or a timeout only after the
//     interval. A refused checkpoint is not asked for again. At most kMaxBacklog
//     checkpoints wait: beyond that the oldest are dropped (a cosignature of a later one
//     covers them by consistency).
//   - old_size is the size of the last checkpoint of this log the peer cosigned, as far as
//     this broker knows: from the peer's cosignature on the first checkpoint offered (the
//     latest stored one at start), then from the peer's replies. A CONFLICT reply corrects
//     it and the request goes out again at once with a proof from the witness's size. If
//     the witness's size is above the latest checkpoint's, the witness has cosigned more of
//     this log than the log now holds: that is logged as critical (the log was truncated
//     or rewritten after the witness saw it) and the peer is not asked again until the log
//     has grown past that size - then the witness decides, with this log's own proof.
//   - A cosignature is verified with the peer's witness key from the current directory
//     before it is handed on. An INCONSISTENT refusal is logged as critical: a witness holds
//     a checkpoint of this log that the current log does not extend. That peer is not asked
//     again by this process (it would refuse every later checkpoint, and keep evidence of
//     each): the operator investigates, and a restart asks it again.
//   - Nothing here blocks: sends do not wait (a full queue shows up as a retry), replies
//     arrive through the links' handler and are handled in the next Pump; proofs come from
//     the store's read transactions.
//
// Thread safety: the broker's event-loop thread only (the links, state, the Store's const
// methods).
#ifndef REFBUS_BROKER_WITNESS_CLIENT_H_
#define REFBUS_BROKER_WITNESS_CLIENT_H_

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "broker/config.h"
#include "broker/link.h"
#include "broker/store.h"
#include "core/clock.h"
#include "keys/identity.h"
#include "schema/types.h"

namespace refbus::broker {

struct WitnessClientOptions {
  std::string broker_id;
  std::string federation;
  std::string origin;
  std::vector<WitnessPeerConfig> peers;
  UnixMillis interval_ms = 1000;
  UnixMillis timeout_ms = 5000;
};

// Counters for logs and tests.
struct WitnessClientStats {
  uint64_t requests = 0;
  uint64_t cosigned = 0;      // cosignatures received and verified
  uint64_t conflicts = 0;     // CONFLICT replies (old_size corrected)
  uint64_t refused = 0;       // other refusals and Nacks
  uint64_t inconsistent = 0;  // INCONSISTENT refusals
  uint64_t timeouts = 0;
};

class WitnessClient {
 public:
  // REQUIRES: links outlives the client. Registers the links' other-reply handler.
  WitnessClient(Links& links, WitnessClientOptions options);
  ~WitnessClient();
  WitnessClient(const WitnessClient&) = delete;
  WitnessClient& operator=(const WitnessClient&) = delete;

  static constexpr size_t kMaxBacklog = 64;

  // A checkpoint to be witnessed (each one signed, and the latest stored one at start), as
  // stored. One not larger than the last offered is ignored.
  void Offer(const StoredCheckpoint& checkpoint);
  // Handles the replies the links handed over, timeouts, and sends the requests that are due.
  // Cosignatures that verified are appended to out (for the writer to store).
  void Pump(UnixMillis now, const schema::Directory& directory, const Store& store,
            std::vector<CheckpointCosignature>& out);

  const WitnessClientStats& stats() const { return stats_; }

 private:
  struct Offered {
    uint64_t size = 0;
    keys::Hash root{};
    std::string note;  // as stored (the log's signature, maybe cosignatures)
    std::string body;  // the checkpoint text
  };
  struct Peer {
    WitnessPeerConfig config;
    std::optional<uint64_t> believed;  // the peer's last cosigned size of this log
    // Checkpoints up to this size are done with (cosigned, or refused): not asked for.
    std::optional<uint64_t> progress;
    std::optional<uint64_t> ahead_reported;
    bool given_up = false;  // refused as inconsistent: not asked again by this process
    bool inflight = false;
    uint64_t request_id = 0;
    UnixMillis sent_at = 0;
    Offered request;  // what is in flight
    UnixMillis next_at = 0;
    std::string last_problem;  // logged once until it changes
  };

  void Problem(Peer& peer, int level, std::string message);
  // Whether peer may be asked now (an active broker with the witness role, its link up).
  Status Reachable(Peer& peer, const schema::Directory& directory);
  // The next checkpoint for peer, or nullptr.
  const Offered* Next(Peer& peer);
  void Send(Peer& peer, UnixMillis now, const schema::Directory& directory, const Store& store);
  void HandleReply(Peer& peer, const schema::Frame& f, UnixMillis now,
                   const schema::Directory& directory, std::vector<CheckpointCosignature>& out);

  Links& links_;
  WitnessClientOptions options_;
  std::vector<Peer> peers_;
  std::deque<Offered> offered_;  // ascending sizes, at most kMaxBacklog
  std::vector<std::pair<std::string, schema::Frame>> replies_;  // from the links' handler
  WitnessClientStats stats_;
};

}  // namespace refbus::broker

#endif  // REFBUS_BROKER_WITNESS_CLIENT_H_
