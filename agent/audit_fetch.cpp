#include "agent/audit_fetch.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <set>
#include <thread>
#include <zmq.hpp>

#include "agent/audit_store.h"
#include "agent/audit_tool.h"
#include "core/zmq.h"
#include "keys/ceremony.h"
#include "keys/checkpoint.h"
#include "keys/crypto.h"
#include "keys/keyfile.h"
#include "schema/codec.h"

namespace refbus::agent {
namespace {

using schema::Frame;
using schema::NackReason;

constexpr char kSoftware[] = "refbus-audit/0.1";
constexpr char kCheckpointQueryDetail[] = "audit query: sign and return a checkpoint";

// One request at a time to one broker, as the auditor, over CURVE.
class AuditSession {
 public:
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
    Frame hello;
    hello.type = Frame::Type::kHello;
    hello.hello.party_id = me.party_id();
    hello.hello.software = kSoftware;
    REFBUS_ASSIGN_OR_RETURN(Frame welcome, s->Exchange(std::move(hello)));
    if (welcome.type == Frame::Type::kNack) return s->Refusal(welcome, "session");
    if (welcome.type != Frame::Type::kWelcome) {
      return Malformed("broker " + broker_id + " answered Hello with another frame type");
    }
    if (welcome.welcome.broker_id != broker_id) {
      return Unauthenticated("the broker at " + endpoint + " calls itself '" +
                             welcome.welcome.broker_id + "', not " + broker_id);
    }
    return s;
  }

  // The AuditReply to query, or the broker's refusal as a Status.
  Result<schema::AuditReply> Ask(Frame query) {
    ++queries_;
    REFBUS_ASSIGN_OR_RETURN(Frame r, Exchange(std::move(query)));
    if (r.type == Frame::Type::kNack) return Refusal(r, "audit query");
    if (r.type != Frame::Type::kAuditReply) {
      return Malformed("broker " + broker_id_ + " answered an audit query with another frame type");
    }
    return std::move(r.audit_reply);
  }

  // Any other request (AddCosignature): the answering frame, a Nack included.
  Result<Frame> Call(Frame request) { return Exchange(std::move(request)); }

  size_t queries() const { return queries_; }

 private:
  AuditSession(std::string broker_id, std::string endpoint, int timeout_ms)
      : broker_id_(std::move(broker_id)), endpoint_(std::move(endpoint)), timeout_ms_(timeout_ms) {}

  Status Refusal(const Frame& nack, std::string_view what) const {
    std::string m = "broker " + broker_id_ + " refused the " + std::string(what) + ": " +
                    std::string(schema::Name(nack.nack.reason)) + " (" + nack.nack.detail + ")";
    switch (nack.nack.reason) {
      case NackReason::kNotPermitted:
      case NackReason::kUnknownSenderKey:
      case NackReason::kSenderMismatch:
        return PermissionDenied(m);
      case NackReason::kOutOfRange:
        return InvalidArgument(m);
      default:
        return Unavailable(m);
    }
  }

  // Sends f with a new request id and waits for the frame answering it.
  Result<Frame> Exchange(Frame f) {
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
            (r->type == Frame::Type::kNack && r->request_id == 0)) {
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

Frame Query(Frame::Type type) {
  Frame f;
  f.type = type;
  return f;
}

std::vector<keys::Hash> ToHashes(const std::vector<Bytes>& in) {
  std::vector<keys::Hash> out;
  for (const Bytes& b : in) {
    keys::Hash h;
    std::copy(b.begin(), b.end(), h.begin());  // the codec checked 32 bytes
    out.push_back(h);
  }
  return out;
}

std::optional<keys::Checkpoint> ParseUnverifiedNote(std::string_view note) {
  auto n = keys::ParseSignedNote(note);
  if (!n.ok()) return std::nullopt;
  auto c = keys::ParseCheckpointBody(n->text);
  if (!c.ok()) return std::nullopt;
  return *c;
}

// The auditor's identity from its folder, checked against the verified directory: an active
// auditor with the audit role (and the witness role when witness), holding its active keys.
Result<keys::Identity> LoadAuditor(const schema::Directory& dir, const std::string& auditor_dir,
                                   const std::string& passphrase_file, bool witness) {
  std::optional<keys::SecretBuffer> pass;
  if (!passphrase_file.empty()) {
    REFBUS_ASSIGN_OR_RETURN(auto p, keys::ReadPassphraseFile(passphrase_file));
    pass = std::move(p);
  }
  REFBUS_ASSIGN_OR_RETURN(keys::Identity me,
                          keys::LoadIdentity(keys::JoinPath(auditor_dir, keys::kIdentityFile),
                                             pass ? &*pass : nullptr));
  const schema::Party* self = dir.Find(me.party_id());
  if (me.kind() != schema::PartyKind::kAuditor || self == nullptr ||
      self->kind != schema::PartyKind::kAuditor || self->status != schema::PartyStatus::kActive ||
      !self->HasRole(schema::Role::kAudit)) {
    return PermissionDenied(me.party_id() + " is not an active auditor with the audit role in " +
                            "directory serial " + std::to_string(dir.serial));
  }
  if (witness && !self->HasRole(schema::Role::kWitness)) {
    return PermissionDenied(me.party_id() + " does not have the witness role in directory serial " +
                            std::to_string(dir.serial) +
                            ": its cosignatures would count for nobody");
  }
  const schema::KeyRecord* my_keys = self->ActiveKeys();
  if (my_keys == nullptr || my_keys->transport_key != me.transport_public_key() ||
      my_keys->signing_key != me.signing_public_key()) {
    return PermissionDenied("the keys in " + auditor_dir + " are not auditor " + me.party_id() +
                            "'s active keys in directory serial " + std::to_string(dir.serial));
  }
  return me;
}

// The count of signature lines in a note beyond the first (the log's own): cosignatures.
size_t ExtraSignatureLines(std::string_view note) {
  auto n = keys::ParseSignedNote(note);
  return n.ok() && !n->signatures.empty() ? n->signatures.size() - 1 : 0;
}

}  // namespace

Result<schema::SignedDirectory> LoadVerifiedDirectory(const std::string& dir, UnixMillis now) {
  REFBUS_ASSIGN_OR_RETURN(auto v, keys::AcceptDirectoryInFolder(dir, "", now));
  if (v.in_grace) {
    spdlog::warn("directory serial {} has EXPIRED and is in its grace period: get a new one",
                 v.signed_directory.directory.serial);
  }
  return std::move(v.signed_directory);
}

Result<FetchReport> Fetch(const FetchOptions& o, UnixMillis now) {
  auto started = std::chrono::steady_clock::now();
  FetchReport report;
  report.broker_id = o.broker_id;

  // Who we are and whom we talk to, from the verified directory only.
  REFBUS_ASSIGN_OR_RETURN(schema::SignedDirectory sd, LoadVerifiedDirectory(o.auditor_dir, now));
  const schema::Directory& dir = sd.directory;
  REFBUS_ASSIGN_OR_RETURN(keys::Identity me,
                          LoadAuditor(dir, o.auditor_dir, o.passphrase_file, /*witness=*/false));
  REFBUS_ASSIGN_OR_RETURN(LogKeys log_keys, BrokerLogKeys(dir, o.broker_id));
  report.origin = log_keys.origin;
  const schema::KeyRecord* broker_keys = dir.Find(o.broker_id)->ActiveKeys();
  if (broker_keys == nullptr) {
    return FailedPrecondition("broker " + o.broker_id + " has no active key to connect to");
  }
  report.endpoint = o.endpoint.empty() ? dir.Find(o.broker_id)->endpoint : o.endpoint;
  if (report.endpoint.empty()) {
    return InvalidArgument("the directory lists no endpoint for broker " + o.broker_id +
                           ": give --endpoint");
  }

  REFBUS_ASSIGN_OR_RETURN(auto store, LocalAuditStore::Open(o.store_dir, /*create=*/true));
  REFBUS_RETURN_IF_ERROR(store->Bind({o.broker_id, log_keys.origin, log_keys.active_key}));
  REFBUS_ASSIGN_OR_RETURN(report.entries_before, store->NextIndex());

  REFBUS_ASSIGN_OR_RETURN(
      auto session, AuditSession::Open(me, broker_keys->transport_key, report.endpoint, o.broker_id,
                                       o.timeout_ms));
  auto finish = [&]() -> Result<FetchReport> {
    report.queries = session->queries();
    auto n = store->NextIndex();
    if (n.ok()) report.entries_after = *n;
    auto all = store->Checkpoints();
    if (all.ok()) report.checkpoints_total = all->size();
    report.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return report;
  };

  // 1. A fresh checkpoint. It covers the AUDITOR_QUERY entry of this very request.
  REFBUS_ASSIGN_OR_RETURN(schema::AuditReply fresh_reply,
                          session->Ask(Query(Frame::Type::kAuditCheckpoint)));
  if (fresh_reply.checkpoints.size() != 1) {
    return Malformed("broker " + o.broker_id + " answered AuditCheckpoint with " +
                     std::to_string(fresh_reply.checkpoints.size()) + " notes");
  }
  const std::string fresh_note = fresh_reply.checkpoints[0];
  auto fresh = OpenLogCheckpoint(fresh_note, log_keys, &report.key_fingerprint);
  if (!fresh.ok()) {
    report.problems.push_back(
        "the broker's fresh checkpoint does not verify with its directory "
        "key: " +
        fresh.status().message());
    return finish();
  }
  report.checkpoint_size = fresh->checkpoint.size;
  report.checkpoint_root = fresh->checkpoint.root;

  // 2. Every checkpoint the broker stored since the largest this store knows.
  REFBUS_ASSIGN_OR_RETURN(std::vector<LocalCheckpoint> local, store->Checkpoints());
  std::set<std::string> known;
  uint64_t from = 0;
  for (const auto& c : local) {
    known.insert(c.note);
    from = std::max(from, c.size);
  }
  // Stores the notes (with those the broker serves from from_size) it has not seen before,
  // each with the broker's proof from the stored one below it; returns the new ones.
  struct New {
    std::string note;
    keys::Checkpoint cp;
  };
  auto collect = [&](uint64_t from_size,
                     std::vector<std::string> notes) -> Result<std::vector<New>> {
    while (true) {
      Frame q = Query(Frame::Type::kAuditCheckpoints);
      q.audit_checkpoints = {from_size, schema::kMaxAuditCheckpointsPerReply};
      REFBUS_ASSIGN_OR_RETURN(schema::AuditReply r, session->Ask(std::move(q)));
      uint64_t last = from_size;
      for (auto& note : r.checkpoints) {
        auto c = ParseUnverifiedNote(note);
        if (c) last = std::max(last, c->size);
        notes.push_back(std::move(note));
      }
      if (!r.more || r.checkpoints.empty() || last + 1 <= from_size) break;
      from_size = last + 1;
    }

    // 3. Store the new ones, each with the broker's proof from the stored one below it.
    std::vector<New> fresh_notes;
    for (auto& note : notes) {
      if (known.count(note) != 0) continue;
      // Newer than the fresh checkpoint: signed while this fetch ran; the next one takes it.
      auto size = ParseUnverifiedNote(note);
      if (size && size->size > fresh->checkpoint.size) continue;
      auto opened = OpenLogCheckpoint(note, log_keys);
      if (!opened.ok()) {
        report.problems.push_back(
            "a stored checkpoint the broker served does not verify with its "
            "directory key (not kept): " +
            opened.status().message());
        continue;
      }
      known.insert(note);
      fresh_notes.push_back({std::move(note), opened->checkpoint});
    }
    std::sort(fresh_notes.begin(), fresh_notes.end(),
              [](const New& a, const New& b) { return a.cp.size < b.cp.size; });
    for (const New& n : fresh_notes) {
      LocalCheckpoint c;
      c.size = n.cp.size;
      c.received_at_ms = now;
      c.note = n.note;
      const LocalCheckpoint* pred = nullptr;
      for (const auto& l : local) {
        if (l.size <= n.cp.size && (pred == nullptr || l.size >= pred->size)) pred = &l;
      }
      auto pred_cp = pred != nullptr ? ParseUnverifiedNote(pred->note) : std::nullopt;
      if (pred != nullptr && pred_cp && pred->size < n.cp.size) {
        Frame q = Query(Frame::Type::kAuditConsistency);
        q.audit_consistency = {pred->size, n.cp.size};
        auto r = session->Ask(std::move(q));
        if (!r.ok()) {
          report.problems.push_back("the broker gave no consistency proof from " +
                                    std::string("checkpoint #") + std::to_string(pred->seq) +
                                    " (size " + std::to_string(pred->size) + ") to size " +
                                    std::to_string(n.cp.size) + ": " + r.status().message());
        } else {
          c.proof_from_seq = pred->seq;
          c.proof = ToHashes(r->hashes);
          Status s =
              keys::VerifyConsistency(pred->size, n.cp.size, pred_cp->root, n.cp.root, c.proof);
          if (!s.ok()) {
            report.problems.push_back(
                "the broker's checkpoint of size " + std::to_string(n.cp.size) +
                " is inconsistent with checkpoint #" + std::to_string(pred->seq) + " (size " +
                std::to_string(pred->size) + ", received " + FormatUtc(pred->received_at_ms) +
                "): its history was rewritten (" + s.message() + ")");
          }
        }
      } else if (pred != nullptr && pred_cp && pred->size == n.cp.size &&
                 pred_cp->root != n.cp.root) {
        report.problems.push_back(
            "the broker signed a second checkpoint of size " + std::to_string(n.cp.size) +
            " with another root than checkpoint #" + std::to_string(pred->seq) + ": a fork");
      }
      REFBUS_ASSIGN_OR_RETURN(c.seq, store->AddCheckpoint(c));
      local.push_back(c);
      ++report.checkpoints_new;
    }
    return fresh_notes;
  };
  REFBUS_ASSIGN_OR_RETURN(std::vector<New> added, collect(from, {fresh_note}));

  // 4. Entries up to the fresh checkpoint, stored exactly as served.
  const uint64_t target = fresh->checkpoint.size;
  REFBUS_ASSIGN_OR_RETURN(uint64_t next, store->NextIndex());
  if (target < next) {
    report.problems.push_back("the broker's log now has " + std::to_string(target) +
                              " entries, fewer than the " + std::to_string(next) +
                              " fetched from it before: it was truncated or rewritten");
    return finish();
  }
  while (next < target) {
    Frame q = Query(Frame::Type::kAuditEntries);
    q.audit_entries = {next, static_cast<uint32_t>(std::min<uint64_t>(
                                 schema::kMaxAuditEntriesPerReply, target - next))};
    REFBUS_ASSIGN_OR_RETURN(schema::AuditReply r, session->Ask(std::move(q)));
    if (r.first_index != next) {
      return Malformed("broker " + o.broker_id + " answered entries from " +
                       std::to_string(r.first_index) + " when asked for " + std::to_string(next));
    }
    if (r.entries.empty()) {
      report.problems.push_back("the broker served no entries from index " + std::to_string(next) +
                                " though its checkpoint covers " + std::to_string(target));
      return finish();
    }
    if (r.entries.size() > target - next) r.entries.resize(target - next);
    REFBUS_RETURN_IF_ERROR(store->AppendEntries(next, r.entries));
    next += r.entries.size();
  }

  // Witnesses cosign a checkpoint moments after it is signed, while this fetch was busy
  // with entries: the checkpoints it took without cosignatures are asked for once more, so
  // that the store holds the cosignatures the broker has by now (as new arrivals of the
  // same checkpoints). The fresh one is in the same position at the next fetch.
  std::optional<uint64_t> uncosigned;
  for (const New& n : added) {
    if (ExtraSignatureLines(n.note) == 0) {
      uncosigned = std::min(uncosigned.value_or(n.cp.size), n.cp.size);
    }
  }
  if (uncosigned) REFBUS_RETURN_IF_ERROR(collect(*uncosigned, {}).status());

  // Who cosigned the fresh checkpoint (over every arrival of it); wait for enough of them.
  REFBUS_ASSIGN_OR_RETURN(std::vector<keys::WitnessKey> witness_keys,
                          keys::WitnessKeys(dir, o.broker_id));
  auto fresh_cosigners = [&]() {
    std::set<std::string> who;
    for (const auto& c : local) {
      if (c.size != target) continue;
      auto note = keys::ParseSignedNote(c.note);
      if (!note.ok()) continue;
      for (const auto& sig : note->signatures) {
        for (const auto& w : witness_keys) {
          if (w.verifier.name() == sig.name && w.verifier.key_id() == sig.key_id &&
              keys::VerifyCosignature(note->text, sig, w.verifier).ok()) {
            who.insert(w.party_id);
          }
        }
      }
    }
    return std::vector<std::string>(who.begin(), who.end());
  };
  report.fresh_cosigners = fresh_cosigners();
  if (o.wait_cosignatures > 0) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(o.wait_ms);
    while (report.fresh_cosigners.size() < o.wait_cosignatures &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      REFBUS_RETURN_IF_ERROR(collect(target, {}).status());
      report.fresh_cosigners = fresh_cosigners();
    }
    if (report.fresh_cosigners.size() < o.wait_cosignatures) {
      report.problems.push_back("the fresh checkpoint (size " + std::to_string(target) + ") has " +
                                std::to_string(report.fresh_cosigners.size()) + " of the " +
                                std::to_string(o.wait_cosignatures) +
                                " cosignatures waited for after " + std::to_string(o.wait_ms) +
                                " ms: its witnesses have not cosigned it");
    }
  }

  // 5. The fresh checkpoint against the local log.
  const std::string& me_id = me.party_id();
  std::optional<uint64_t> own;
  REFBUS_ASSIGN_OR_RETURN(LocalTree lt, ReadLocalTree(*store, [&](uint64_t index, ByteView bytes) {
                            if (index < report.entries_before || index >= target) return;
                            auto e = schema::DecodeAuditEntry(bytes);
                            if (e.ok() && e->event == schema::AuditEvent::kAuditorQuery &&
                                e->actor == me_id && e->detail == kCheckpointQueryDetail &&
                                e->reason == NackReason::kUnspecified) {
                              own = index;  // the last one: this fetch's request
                            }
                          }));
  if (lt.gap) {
    report.problems.push_back("the local store is missing entry " + std::to_string(*lt.gap) +
                              ": run refbus-audit verify");
    return finish();
  }
  auto root = keys::RootAt(lt.tree, target);
  if (!root.ok()) return root.status();
  if (*root != fresh->checkpoint.root) {
    report.problems.push_back("the local log's first " + std::to_string(target) +
                              " entries do not match the broker's fresh checkpoint of that size");
    const keys::Hash signed_root = fresh->checkpoint.root;
    auto located = Bisect(target, [&](uint64_t m) -> Result<bool> {
      Frame q = Query(Frame::Type::kAuditConsistency);
      q.audit_consistency = {m, target};
      REFBUS_ASSIGN_OR_RETURN(schema::AuditReply r, session->Ask(std::move(q)));
      REFBUS_ASSIGN_OR_RETURN(keys::Hash local_root, keys::RootAt(lt.tree, m));
      return keys::VerifyConsistency(m, target, local_root, signed_root, ToHashes(r.hashes)).ok();
    });
    if (located.ok()) {
      report.first_differing_entry = *located;
      report.problems.push_back("entry " + std::to_string(*located) +
                                " is the first local entry that differs from the log the broker "
                                "signed (found with the broker's consistency proofs)");
    } else {
      report.problems.push_back("could not locate the differing entry: " +
                                located.status().message());
    }
    return finish();
  }
  report.own_query_index = own;
  if (!own) {
    report.problems.push_back(
        "the broker's fresh checkpoint does not include the AUDITOR_QUERY "
        "entry of this fetch's checkpoint request");
  }
  return finish();
}

Result<WitnessReport> Witness(const WitnessOptions& o, UnixMillis now) {
  auto started = std::chrono::steady_clock::now();
  WitnessReport report;
  report.broker_id = o.broker_id;
  REFBUS_ASSIGN_OR_RETURN(schema::SignedDirectory sd, LoadVerifiedDirectory(o.auditor_dir, now));
  const schema::Directory& dir = sd.directory;
  REFBUS_ASSIGN_OR_RETURN(keys::Identity me,
                          LoadAuditor(dir, o.auditor_dir, o.passphrase_file, /*witness=*/true));
  REFBUS_ASSIGN_OR_RETURN(report.witness_name, keys::WitnessName(dir.federation, me.party_id()));
  REFBUS_ASSIGN_OR_RETURN(LogKeys log_keys, BrokerLogKeys(dir, o.broker_id));
  report.origin = log_keys.origin;
  const schema::KeyRecord* broker_keys = dir.Find(o.broker_id)->ActiveKeys();
  if (broker_keys == nullptr) {
    return FailedPrecondition("broker " + o.broker_id + " has no active key to connect to");
  }
  report.endpoint = o.endpoint.empty() ? dir.Find(o.broker_id)->endpoint : o.endpoint;
  if (report.endpoint.empty()) {
    return InvalidArgument("the directory lists no endpoint for broker " + o.broker_id +
                           ": give --endpoint");
  }
  REFBUS_ASSIGN_OR_RETURN(auto store, LocalAuditStore::Open(o.store_dir, /*create=*/true));
  REFBUS_RETURN_IF_ERROR(store->Bind({o.broker_id, log_keys.origin, log_keys.active_key}));
  REFBUS_ASSIGN_OR_RETURN(std::optional<keys::WitnessState> last, store->Witnessed());
  if (last && last->origin != log_keys.origin) {
    return FailedPrecondition("the witness state in " + o.store_dir + " is of log " + last->origin +
                              ", not " + log_keys.origin);
  }
  report.old_size = last ? last->size : 0;

  REFBUS_ASSIGN_OR_RETURN(
      auto session, AuditSession::Open(me, broker_keys->transport_key, report.endpoint, o.broker_id,
                                       o.timeout_ms));
  auto finish = [&]() -> Result<WitnessReport> {
    report.queries = session->queries();
    report.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return report;
  };
  // Keeps both checkpoints (and the proof, if any) as evidence of a refusal.
  auto keep_evidence = [&](const std::string& note, const std::vector<keys::Hash>& proof,
                           const std::string& detail) -> Status {
    keys::WitnessEvidence e;
    e.origin = log_keys.origin;
    e.requester = o.broker_id;
    e.time_ms = now;
    e.cosigned_note = last ? last->note : std::string();
    e.offered_note = note;
    e.old_size = report.old_size;
    e.proof = proof;
    e.detail = detail;
    REFBUS_ASSIGN_OR_RETURN(uint64_t n, store->AddEvidence(e));
    report.evidence = n;
    return Status::Ok();
  };

  // The broker's fresh checkpoint (it covers this request's own AUDITOR_QUERY entry).
  REFBUS_ASSIGN_OR_RETURN(schema::AuditReply fresh_reply,
                          session->Ask(Query(Frame::Type::kAuditCheckpoint)));
  if (fresh_reply.checkpoints.size() != 1) {
    return Malformed("broker " + o.broker_id + " answered AuditCheckpoint with " +
                     std::to_string(fresh_reply.checkpoints.size()) + " notes");
  }
  const std::string note = fresh_reply.checkpoints[0];
  auto unverified = ParseUnverifiedNote(note);
  if (unverified) {
    report.size = unverified->size;
    report.root = unverified->root;
  }

  // The proof from what this auditor cosigned last, made by the broker.
  std::vector<keys::Hash> proof;
  if (unverified && report.old_size != 0 && report.old_size < unverified->size) {
    Frame q = Query(Frame::Type::kAuditConsistency);
    q.audit_consistency = {report.old_size, unverified->size};
    auto r = session->Ask(std::move(q));
    if (!r.ok()) {
      std::string why = "the broker gives no consistency proof from size " +
                        std::to_string(report.old_size) + ", which this auditor cosigned, to " +
                        std::to_string(unverified->size) + ": " + r.status().message();
      REFBUS_RETURN_IF_ERROR(keep_evidence(note, {}, why));
      report.verdict = std::string(keys::Name(keys::WitnessVerdict::kInconsistent));
      report.problems.push_back(why);
      return finish();
    }
    proof = ToHashes(r->hashes);
  }

  keys::WitnessDecision d = keys::DecideWitness(last ? &*last : nullptr, note, log_keys.origin,
                                                log_keys.verifiers, report.old_size, proof);
  report.verdict = std::string(keys::Name(d.verdict));
  if (d.verdict != keys::WitnessVerdict::kCosign) {
    // Smaller than what was cosigned is a rollback here: the fresh checkpoint covers the
    // broker's whole committed log, so that log has shrunk.
    const bool evidence = d.verdict == keys::WitnessVerdict::kInconsistent ||
                          (d.verdict == keys::WitnessVerdict::kBadRequest && unverified &&
                           unverified->size < report.old_size);
    if (evidence) REFBUS_RETURN_IF_ERROR(keep_evidence(note, proof, d.detail));
    report.problems.push_back("refused to cosign: " + d.detail +
                              (evidence ? "; both checkpoints are kept as evidence record " +
                                              std::to_string(*report.evidence)
                                        : ""));
    return finish();
  }
  const uint64_t now_s = now / kMillisPerSecond;
  REFBUS_ASSIGN_OR_RETURN(keys::Cosigned c,
                          keys::CosignDecided(d, note, report.witness_name, me, now_s));
  // On disk before it leaves: no cosignature exists that the state does not account for.
  REFBUS_RETURN_IF_ERROR(store->SetWitnessed(c.state));
  report.cosigned = true;
  report.timestamp_s = now_s;
  REFBUS_ASSIGN_OR_RETURN(std::string cosigned_note, keys::AddNoteSignature(note, c.signature));
  Frame add;
  add.type = Frame::Type::kAddCosignature;
  add.add_cosignature.checkpoint = cosigned_note;
  REFBUS_ASSIGN_OR_RETURN(Frame answer, session->Call(std::move(add)));
  if (answer.type == Frame::Type::kAck) {
    report.stored_by_broker = true;
  } else if (answer.type == Frame::Type::kNack) {
    report.problems.push_back("the broker did not store the cosignature: " +
                              std::string(schema::Name(answer.nack.reason)) + " (" +
                              answer.nack.detail + ")");
  } else {
    return Malformed("broker " + o.broker_id + " answered AddCosignature with another frame type");
  }
  return finish();
}

}  // namespace refbus::agent
