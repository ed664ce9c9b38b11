// Federation links (schema/PROTOCOL.md section 12): this broker's outgoing side of the
// broker-to-broker relay.
//
// Contract:
//   - One link per other active broker in the current directory (a full mesh: routes are one
//     hop, from the sender's home broker to the recipient's). Each link is a DEALER socket, a
//     CURVE client with this broker's transport keys and the peer's transport key from the
//     directory: a broker that does not hold that key cannot complete the handshake, and the
//     peer's ZAP handler admits this broker only while the directory lists it. Endpoint: the
//     configured one, else the endpoint file (read at each connect), else the directory's.
//   - What a link carries lives in the Store, in the mailbox named by the peer's id (the
//     "link mailbox"): envelopes stay there, on this broker's disk, until the peer acks them,
//     which it does only after its own commit. So an envelope is always owned by at least one
//     broker's disk. Relays go out in mailbox order, at most `window` unacked; the peer
//     stores them in the order it reads them, so order per sender-recipient pair is kept.
//   - A session is one connection of one socket, started with Hello/Welcome. The socket never
//     reconnects by itself (ZMQ_RECONNECT_IVL -1): relays in flight on a broken connection
//     are lost with it, and newer ones must not overtake them on a new connection. The link
//     is up from the Welcome until no frame has come back for timeout_ms (a Hello is sent as
//     a keepalive when idle) or a relay stays unanswered that long, or until the socket's
//     monitor reports the connection closed (a peer that stopped or restarted: seen at once,
//     not after timeout_ms), the connect failed or the CURVE handshake did; then it is down: the
//     socket is closed, everything unacked is forgotten, and a new socket resends from the
//     oldest unacked entry (the peer answers duplicates with their earlier ack).
//   - A Nack is either retryable (the peer is full, failing, or does not yet know a party:
//     its directory may lag this one): the link pauses and resends from the oldest unacked
//     entry, and an entry refused that way for more than kDirectoryLagMs is refused for
//     good; or final (the peer's own checks refuse the envelope: bad signature, out of
//     consent, expired, malformed): the entry leaves the link mailbox as REJECTED in the
//     audit log, naming the peer and its reason, and the link goes on with the next.
//   - Ends of entries (acks and final refusals) are handed to the caller, who commits them
//     with its next turn; until Committed() they are not sent again.
//   - Checkpoint witnessing (broker/witness_client.h) sends its requests over the same
//     links (SendOther) and gets their replies back through a handler.
//   - Consent revocations and prekeys published here wait in the peer's control queue (Store)
//     and go out before envelopes, as Relay frames carrying the signed revocation or the
//     signed prekey, with the same ack/resend rules.
//
// Thread safety: the broker's event-loop thread only (sockets, state, the Store's const
// methods). The Identity is used const only.
#ifndef REFBUS_BROKER_LINK_H_
#define REFBUS_BROKER_LINK_H_

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "broker/store.h"
#include "core/clock.h"
#include "keys/identity.h"
#include "schema/types.h"

namespace refbus::broker {

struct LinkOptions {
  std::string broker_id;
  std::map<std::string, std::string> endpoints;       // broker id -> endpoint
  std::map<std::string, std::string> endpoint_files;  // broker id -> file with the endpoint
  UnixMillis timeout_ms = 5000;
  size_t window = 256;
};

// Upper bounds (seconds) of the per-link latency histograms (LinkStatus): a relay on an idle
// link waits a commit (milliseconds); seconds mean the link queues.
inline constexpr std::array<double, 12> kLinkSecondsBounds = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0};

// Observations per bucket of kLinkSecondsBounds, then +Inf (not cumulative), and their sum.
struct LinkHistogram {
  std::array<uint64_t, kLinkSecondsBounds.size() + 1> buckets{};
  double sum = 0;
  void Observe(double seconds);
};

// What the status output shows per peer.
struct LinkStatus {
  std::string peer;
  std::string state;  // "up", "down", "connecting"
  std::string endpoint;
  UnixMillis state_since_ms = 0;
  uint64_t backlog = 0;             // entries in the link mailbox
  uint64_t control_backlog = 0;     // consent revocations waiting to be passed on
  UnixMillis oldest_queued_ms = 0;  // when the oldest was accepted here; 0: none
  uint64_t inflight = 0;
  uint64_t forwarded = 0;  // acked by the peer (this process)
  uint64_t refused = 0;    // refused for good by the peer (this process)
  uint64_t sessions = 0;   // sessions started (reconnects + 1)
  std::string problem;     // the last problem, empty when up
  // Relays sent since the broker started: how long each waited in the link mailbox (from
  // its commit here to its send), and from its send until the peer acked it (the peer's
  // commit included).
  LinkHistogram queue_wait;
  LinkHistogram round_trip;
};

class Links {
 public:
  // REQUIRES: me and context outlive the links.
  Links(zmq::context_t& context, const keys::Identity& me, LinkOptions options);
  ~Links();
  Links(const Links&) = delete;
  Links& operator=(const Links&) = delete;

  // How long a retryable refusal may go on before it is final.
  static constexpr UnixMillis kDirectoryLagMs = 60 * kMillisPerSecond;

  // Something new is in peer's link mailbox.
  void MarkDirty(const std::string& peer);
  // One poll item per open socket (POLLIN), appended.
  void AppendPollItems(std::vector<zmq::pollitem_t>& items);
  // Opens and closes links to follow the directory, reads replies, handles timeouts and
  // sends what is due. Ends of entries (acks, final refusals) are appended to out.
  // Ends of control queue items (revocations passed on) go to control_out.
  void Pump(UnixMillis now, const schema::Directory& directory, const Store& store,
            std::vector<RecipientAck>& out, std::vector<ControlEnd>& control_out);
  // The ends handed out by Pump were committed (or failed to: then they are sent again).
  void Committed(const std::vector<RecipientAck>& ends, const std::vector<ControlEnd>& control);
  // Whether a link has work it could do at once (the loop then does not sleep).
  bool Busy() const;
  std::vector<LinkStatus> Status(UnixMillis now, const Store& store) const;

  // Other traffic over the links (checkpoint witnessing): a request sent to peer when its
  // link is up, with a request id from the link's own sequence (returned; nullopt when the
  // link is not up or its queue is full). Replies to such requests are handed to the
  // handler as they are read; a request lost with a session gets no reply (the sender
  // times it out).
  using OtherReplyHandler = std::function<void(const std::string& peer, schema::Frame frame)>;
  void set_other_reply_handler(OtherReplyHandler handler) { other_handler_ = std::move(handler); }
  std::optional<uint64_t> SendOther(const std::string& peer, schema::Frame frame);
  bool IsUp(const std::string& peer) const;
  std::string EndpointOf(const std::string& peer) const;

 private:
  struct Sent {
    uint64_t seq = 0;
    Bytes message_id;
    UnixMillis sent_at = 0;
    double sent_steady = 0;  // SteadySeconds() at the send
    size_t bytes = 0;        // the envelope's size
  };
  // Relays in flight hold their envelopes in the socket's queue: besides `window`, a link
  // sends no more once this many envelope bytes are unanswered (at least one relay goes).
  static constexpr size_t kMaxInflightBytes = size_t{64} << 20;
  // The clock the link histograms read: finer than UnixMillis.
  static double SteadySeconds();
  struct Link {
    std::string peer;
    std::unique_ptr<zmq::socket_t> socket;
    // The socket's monitor (zmq_socket_monitor over inproc): disconnects, failed handshakes.
    std::unique_ptr<zmq::socket_t> monitor;
    Bytes server_key;
    std::string endpoint;
    enum class State { kConnecting, kUp, kDown } state = State::kDown;
    UnixMillis state_since = 0;
    UnixMillis hello_sent_at = 0;
    uint64_t hello_id = 0;  // 0: no Hello outstanding
    UnixMillis last_rx = 0;
    UnixMillis next_attempt_at = 0;  // kDown: reconnect from then
    UnixMillis paused_until = 0;     // after a retryable Nack
    uint64_t last_sent_seq = 0;
    std::unordered_map<uint64_t, Sent> inflight;   // by request id
    size_t inflight_bytes = 0;                     // their envelopes' sizes
    std::set<uint64_t> ends_uncommitted;           // seqs handed out, not yet committed
    std::map<uint64_t, UnixMillis> first_refused;  // seq -> first retryable refusal
    // The control queue (consent revocations passed on), sent before envelopes.
    uint64_t last_control_seq = 0;
    std::unordered_map<uint64_t, Sent> control_inflight;  // by request id
    std::set<uint64_t> control_uncommitted;
    std::set<uint64_t> other_inflight;  // request ids of SendOther frames
    bool dirty = true;
    uint64_t forwarded = 0, refused = 0, sessions = 0;
    std::string problem;
    LinkHistogram queue_wait, round_trip;
  };

  void Problem(Link& link, int level, std::string message);
  void Open(Link& link, UnixMillis now, const schema::Party& peer);
  void Down(Link& link, UnixMillis now, std::string why);
  void Close(Link& link);
  // The monitor's events since the last call; the reason the link is down if one says so.
  std::optional<std::string> ReadMonitor(Link& link);
  void SendFrame(Link& link, const schema::Frame& frame, bool* full);
  void ReadReplies(Link& link, UnixMillis now, std::vector<RecipientAck>& out,
                   std::vector<ControlEnd>& control_out);
  void HandleReply(Link& link, const schema::Frame& f, UnixMillis now,
                   std::vector<RecipientAck>& out, std::vector<ControlEnd>& control_out);
  // Loop: a control item's reply (true if f answered one).
  bool HandleControlReply(Link& link, const schema::Frame& f, UnixMillis now,
                          std::vector<ControlEnd>& control_out);
  void SendControl(Link& link, UnixMillis now, const Store& store);
  void SendRelays(Link& link, UnixMillis now, const schema::Directory& directory,
                  const Store& store, std::vector<RecipientAck>& out);

  zmq::context_t& context_;
  uint64_t monitors_ = 0;  // names the monitors' inproc endpoints
  const keys::Identity& me_;
  LinkOptions options_;
  std::map<std::string, Link> links_;  // by peer broker id
  uint64_t next_request_ = 1;
  OtherReplyHandler other_handler_;
};

}  // namespace refbus::broker

#endif  // REFBUS_BROKER_LINK_H_
