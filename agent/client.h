// Client: an agency agent's session with its home broker (PROTOCOL.md section 6).
//
// Contract:
//   - Transport: one ZeroMQ DEALER socket, CURVE client with the agency's transport key;
//     the server key is the home broker's ACTIVE transport key from the verified
//     directory the caller passes in (the Client does not verify directories). Heartbeats
//     on, linger 0, reconnect every 100 ms backing off to 5 s, ZMQ_IMMEDIATE so nothing is
//     queued on a connection that is not up.
//   - Session: after every (re)connect (seen through a socket monitor) the Client sends
//     Hello and waits for Welcome; it re-sends Hello if no Welcome arrives within
//     welcome_timeout_ms. Submissions and directory fetches are sent only inside a
//     welcomed session.
//   - Submit: the envelope is written durably to the store's outbox before anything is
//     sent. Up to `window` submissions are in flight; one not answered within
//     submit_timeout_ms, or in flight when the connection was re-established, is sent
//     again (brokers deduplicate by message id). Ack (also duplicate) and final Nack remove
//     it from the outbox and produce one event; back-pressure Nacks (QUOTA_EXCEEDED,
//     STORAGE_FULL) and INTERNAL (the broker did not store it; see client.cpp) keep it and
//     retry after retry_after_ms. Outbox entries left by an
//     earlier process are resubmitted by Start().
//   - Control frames (SubmitControl) are submissions too: the same outbox (stored as a
//     control record holding the Frame with request_id 0; see store.h), order, window,
//     resends and answers; each send carries a fresh request_id. An answer to a control
//     frame is matched by its message_id, or, when that names nothing outstanding (the
//     broker derives the id from the frame and the caller may have chosen another one),
//     by the request_id of the frame's latest send. Envelope ids and control ids share
//     one namespace: an id queued as one kind is refused (kAlreadyExists) as the other.
//   - Deliver: the envelope is decoded only to read its message id (an envelope that does
//     not decode is answered with Nack MALFORMED), all deliveries waiting on the socket are
//     stored in one LMDB transaction, and only after that commit are they acknowledged
//     (Ack.duplicate = already in the inbox). kDelivered events fire once per message id
//     ever, because the inbox is the deduplication record. If the store fails, nothing is
//     acknowledged and the Client sends Hello again later, which makes the broker
//     redeliver.
//   - Checkpoint in Ack: an Ack's latest_checkpoint must verify with a signing key the
//     directory lists for the home broker under its log origin; one larger than the kept
//     one is kept in the store (TransportStore::KeepCheckpoint) at once. One that does not
//     verify, is smaller than the kept one, or has its size and another root is not kept
//     and is logged (the last two as critical: the broker showed this agency a log that
//     does not extend what it committed to before). The Ack itself stands either way.
//   - Events: Poll() appends events (acked, refused, delivered, directory reply) that the
//     caller takes with TakeEvents(). An event is produced only after the state it reports
//     is committed. Acked/Refused events fire once per process per message id; after a
//     crash between the broker's ack and the outbox commit, the resubmission comes back as
//     a duplicate ack and is reported again.
//   - Errors: every failure is a Status; cppzmq exceptions are caught here. A non-ok Status
//     from Poll reports a local failure (store or socket); the Client stays usable and
//     keeps retrying, so the caller decides whether to go on.
//   - Logs (spdlog) carry message ids in hex, counts and codes; never envelope content,
//     keys or Nack details from the peer beyond their code.
//
// Thread safety: none. One thread owns a Client and drives it by calling Poll(); the
// Identity and TransportStore must outlive the Client and not be used by another thread
// meanwhile.
#ifndef REFBUS_AGENT_CLIENT_H_
#define REFBUS_AGENT_CLIENT_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>
#include <zmq.hpp>

#include "agent/transport_store.h"
#include "core/bytes.h"
#include "core/status.h"
#include "core/zmq.h"
#include "keys/identity.h"
#include "schema/types.h"

namespace refbus::agent {

inline constexpr char kSoftwareName[] = "refbus-agent/0.1";

struct ClientOptions {
  size_t window = 64;                      // submissions in flight at most
  int submit_timeout_ms = 3000;            // resend a submission not answered within this
  int welcome_timeout_ms = 2000;           // resend Hello if no Welcome within this
  int reconnect_interval_ms = 100;         // ZMQ_RECONNECT_IVL
  int reconnect_interval_max_ms = 5000;    // ZMQ_RECONNECT_IVL_MAX (exponential backoff)
  uint32_t default_retry_after_ms = 1000;  // back-pressure Nack that names no delay
  int store_retry_ms = 1000;               // after a failed inbox commit, ask for redelivery
  size_t max_deliveries_per_commit = 256;  // group commit size
  zmqx::Heartbeat heartbeat;
  std::string software = kSoftwareName;
};

// Counts for this process (the store keeps the all-time ones).
struct ClientCounters {
  uint64_t submitted = 0;             // envelopes and control frames newly queued
  uint64_t recovered = 0;             // outbox entries found by Start (an earlier process's)
  uint64_t sent = 0;                  // Submit and control frames sent, first sends and resends
  uint64_t resent = 0;                // of which resends (timeout, reconnect, back-pressure)
  uint64_t acked = 0;                 // Ack received (including duplicates)
  uint64_t acked_duplicate = 0;       // of which the broker already had the message
  uint64_t refused = 0;               // final Nack
  uint64_t backpressure = 0;          // QUOTA_EXCEEDED / STORAGE_FULL Nacks
  uint64_t delivered = 0;             // new messages stored in the inbox
  uint64_t duplicate_deliveries = 0;  // redeliveries of messages already stored
  uint64_t malformed_deliveries = 0;  // Deliver frames whose envelope did not decode
  uint64_t id_reused_deliveries = 0;  // deliveries of other bytes under a held message id
  uint64_t delivery_commits = 0;      // inbox transactions (group commits)
  uint64_t hellos = 0;                // Hello frames sent
  uint64_t sessions = 0;              // Welcomes received
  uint64_t connects = 0;              // successful CURVE handshakes
  uint64_t disconnects = 0;
  uint64_t handshake_failures = 0;  // e.g. the broker's ZAP refused this key
  uint64_t store_errors = 0;
  uint64_t bad_frames = 0;  // frames from the broker that did not decode or fit
  // Nacks for outstanding submissions, by reason (back-pressure and final ones).
  std::array<uint64_t, schema::kNackReasonCount> nacks{};
  UnixMillis last_ack_ms = 0;  // when the latest Ack arrived (0: none yet)
  // Checkpoints carried by Acks (PROTOCOL.md 6): newly kept, and refused (no valid
  // signature by the home broker, or smaller than or forking from the kept one).
  uint64_t checkpoints_kept = 0;
  uint64_t checkpoints_refused = 0;
};

struct ClientEvent {
  enum class Type {
    kAcked,           // the broker stored message_id durably (duplicate: it already had it)
    kRefused,         // the broker refused message_id for good (reason, detail)
    kDelivered,       // a new message, stored in the inbox at inbox_sequence
    kDirectoryReply,  // answer to FetchDirectory (directory empty: nothing newer)
    kPrekey,          // the broker sent a published prekey (signed_prekey, unverified)
  };
  Type type = Type::kAcked;
  Bytes message_id;
  bool duplicate = false;
  schema::NackReason reason = schema::NackReason::kUnspecified;
  std::string detail;  // from the broker: ids and limits only (PROTOCOL.md)
  Bytes envelope;      // kDelivered: the envelope bytes as stored
  uint64_t inbox_sequence = 0;
  Bytes signed_directory;  // kDirectoryReply: serialized SignedDirectory, unverified
  bool control = false;    // kAcked/kRefused: the answer to a SubmitControl
  Bytes signed_prekey;     // kPrekey: serialized SignedPrekey
};

class Client {
 public:
  // identity: this agency's keys (not owned). directory: verified by the caller.
  // endpoint: the home broker's ZeroMQ endpoint ("tcp://host:port").
  Client(const keys::Identity& identity, schema::Directory directory, std::string endpoint,
         TransportStore& store, ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Finds the home broker's key, loads the outbox left by an earlier process, and
  // connects (ZeroMQ connects in the background; Poll drives the session). May be called
  // again after a failed directory check, not after it got as far as the sockets.
  [[nodiscard]] Status Start();

  // Queues one envelope (durably) and sends it when the window allows. Returns its message
  // id. Submitting an id already queued with the same bytes is a no-op returning the id.
  // REQUIRES: Start() returned ok.
  [[nodiscard]] Result<Bytes> Submit(Bytes envelope);
  // The same for many envelopes, in one store transaction. All or nothing.
  [[nodiscard]] Result<std::vector<Bytes>> SubmitBatch(std::vector<Bytes> envelopes);

  // Queues a control frame (GrantRegister, GrantRevoke, Attest or PrekeyUpdate; PROTOCOL.md
  // 9 and "Prekey publication") durably,
  // exactly like an envelope: written to the outbox first, sent inside a welcomed session
  // within the same window, resent after a timeout or reconnect (brokers answer repeats
  // idempotently), removed on Ack or final Nack. id names it in the outbox and in the
  // answer (the broker acks with Ack.message_id = id): the grant id for registrations;
  // for revocations and attestations the first 16 bytes of the SHA-256 of the signed
  // statement (PROTOCOL.md 6).
  // Events: kAcked / kRefused with message_id = id and control = true.
  // REQUIRES: Start() returned ok; frame.type is one of the three; id is 16 bytes.
  [[nodiscard]] Status SubmitControl(Bytes id, const schema::Frame& frame);

  // One turn of the event loop: waits up to timeout_ms (less when a timer is due) for the
  // socket or the monitor, then handles what arrived, timers and sends.
  [[nodiscard]] Status Poll(int timeout_ms);

  // Asks the broker for its directory if newer than have_serial; the answer comes as a
  // kDirectoryReply event. One fetch at a time: a new call replaces a pending one.
  [[nodiscard]] Status FetchDirectory(uint64_t have_serial);

  // While paused, no Submit or control frame is sent (neither new ones nor resends);
  // answers and deliveries are still handled. For a clean stop: pause, Poll until
  // in_flight() is 0 (or a deadline), close. Unanswered submissions stay in the outbox for
  // the next run.
  void PauseSubmissions(bool paused) { paused_ = paused; }

  // Events since the last call, oldest first.
  std::vector<ClientEvent> TakeEvents();

  const ClientCounters& counters() const { return counters_; }
  // Submissions not yet acknowledged or refused (queued, in flight or backing off).
  size_t outstanding() const { return pending_.size(); }
  // Of those, how many wait to be sent (never sent, or due again).
  size_t unsent() const;
  size_t in_flight() const { return in_flight_.size(); }
  bool session_ready() const { return welcomed_; }
  const std::string& home_broker_id() const { return broker_id_; }
  uint64_t broker_directory_serial() const { return broker_directory_serial_; }

  // Closes the sockets, giving queued outgoing frames (such as acks) up to linger_ms to
  // leave. Further calls to Poll fail. The destructor closes with linger 0.
  void Close(int linger_ms);

 private:
  using SteadyTime = std::chrono::steady_clock::time_point;

  struct Pending {
    enum class State { kQueued, kInFlight, kBackoff };
    State state = State::kQueued;
    uint64_t order = 0;        // submission order, to requeue in order
    uint64_t request_id = 0;   // of the latest send
    bool sent_before = false;  // a next send is a resend
    bool control = false;      // a control frame (known once queued here or read back)
    SteadyTime deadline{};     // in flight: resend after; backoff: retry after
    // The envelope, or the control Frame as stored (request_id 0); cached while likely to
    // be sent soon, else read from the store.
    Bytes payload;
  };

  struct Completion {  // an ack or final nack waiting for its outbox removal to commit
    Bytes message_id;
    ClientEvent event;
  };

  struct IncomingDelivery {
    uint64_t request_id = 0;
    Bytes message_id;
    Bytes envelope;
  };

  void Track(std::vector<OutboxItem> items, const std::vector<bool>& added);
  Status HandleMonitor();
  Status HandleIncoming();
  void HandleFrame(schema::Frame frame, std::vector<IncomingDelivery>& deliveries);
  void HandleAck(const schema::Frame& frame);
  // The latest_checkpoint of an Ack: verified, compared with the kept one, kept if larger
  // (agent/client_checkpoint.cpp).
  void NoteCheckpoint(const std::string& note);
  // The key of the pending control item whose latest send had this request id, or empty.
  std::string ControlByRequest(uint64_t request_id) const;
  // The frame that sends p (a Submit, or its stored control frame) under request_id.
  // Moves p.payload out and back for an envelope, so it is not copied.
  static Result<Bytes> EncodeSubmission(Pending& p, uint64_t request_id);
  void HandleNack(const schema::Frame& frame);
  Status FlushCompletions();
  Status FlushDeliveries(std::vector<IncomingDelivery>& deliveries);
  // Answers a delivery of other bytes under a message id the inbox holds: a Nack
  // (ID_REUSED), counted and logged; nothing stored.
  void RefuseReusedId(uint64_t request_id, const Bytes& message_id);
  void HandleTimers();
  Status Pump();
  // Pump's steps: the Hello a new connection needs, a requested directory fetch, and
  // dropping an outbox item that cannot be sent (the application hears of it at once).
  Status PumpHello(SteadyTime now);
  Status PumpDirectoryFetch(SteadyTime now);
  void DropUnsendable(const std::string& key, const char* detail);
  void RequeueInFlight();
  void Finish(const std::string& key, ClientEvent event);
  int MillisUntilNextTimer(int cap) const;
  // Sends one frame without blocking: true if sent, false if it would block (no
  // connection or a full queue).
  Result<bool> SendFrame(const schema::Frame& frame);
  Result<bool> SendBytes(const Bytes& encoded_frame);
  Result<bool> SendHello();
  uint64_t NextRequestId() { return next_request_id_++; }

  const keys::Identity& identity_;
  schema::Directory directory_;
  std::string endpoint_;
  TransportStore& store_;
  ClientOptions options_;

  std::string broker_id_;
  Bytes broker_key_;

  std::optional<zmq::context_t> context_;  // made by Start (its constructor may throw)
  zmq::socket_t dealer_;
  zmq::socket_t monitor_;
  bool started_ = false;
  bool closed_ = false;

  // Session state.
  bool connected_ = false;   // a CURVE handshake succeeded and no disconnect since
  bool welcomed_ = false;    // Welcome received for the latest Hello on this connection
  bool need_hello_ = false;  // a Hello is due
  bool awaiting_welcome_ = false;
  uint64_t hello_request_id_ = 0;
  SteadyTime last_hello_{};  // last Hello sent (or Start)
  uint64_t broker_directory_serial_ = 0;
  size_t broker_max_frame_bytes_ = schema::kMaxFrameBytes;  // from Welcome
  bool paused_ = false;
  std::optional<SteadyTime> redelivery_hello_at_;  // after a failed inbox commit

  // Submissions, keyed by message id bytes (as a string).
  std::unordered_map<std::string, Pending> pending_;
  std::deque<std::string> queue_;  // kQueued ids in send order; stale entries are skipped
  std::unordered_set<std::string> in_flight_;
  std::unordered_set<std::string> backoff_;
  std::unordered_map<uint64_t, std::string> request_to_id_;  // for Nacks without an id
  uint64_t next_order_ = 1;
  uint64_t next_request_id_ = 1;
  std::vector<Completion> completions_;

  // Directory fetch.
  std::optional<uint64_t> fetch_have_serial_;
  uint64_t fetch_request_id_ = 0;
  bool fetch_in_flight_ = false;
  SteadyTime fetch_deadline_{};

  std::vector<ClientEvent> events_;
  ClientCounters counters_;

  // Checkpoints in Acks: the last note seen (each is checked once), the kept one.
  std::string last_checkpoint_note_;
  std::optional<KeptCheckpoint> kept_checkpoint_;
  bool kept_checkpoint_loaded_ = false;
};

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_CLIENT_H_
