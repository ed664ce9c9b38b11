#include "audit/fetch.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <set>
#include <thread>

#include "audit/local_store.h"
#include "audit/scan.h"
#include "audit/session.h"
#include "audit/verify.h"
#include "keys/ceremony.h"
#include "keys/checkpoint.h"
#include "keys/witness.h"
#include "schema/codec.h"

namespace refbus::audit {
namespace {

using schema::Frame;
using schema::NackReason;

constexpr char kCheckpointQueryDetail[] = "audit query: sign and return a checkpoint";

// The count of signature lines in a note beyond the first (the log's own): cosignatures.
size_t ExtraSignatureLines(std::string_view note) {
  auto n = keys::ParseSignedNote(note);
  return n.ok() && !n->signatures.empty() ? n->signatures.size() - 1 : 0;
}

// One run of Fetch, in the steps of audit/fetch.h.
class Fetcher {
 public:
  Fetcher(const FetchOptions& o, UnixMillis now)
      : o_(o), now_(now), started_(std::chrono::steady_clock::now()) {
    report_.broker_id = o.broker_id;
  }

  Result<FetchReport> Run() {
    REFBUS_RETURN_IF_ERROR(Connect());
    // 1. A fresh checkpoint. It covers the AUDITOR_QUERY entry of this very request.
    REFBUS_ASSIGN_OR_RETURN(fresh_note_, AskFreshCheckpoint(*session_, o_.broker_id));
    auto fresh = OpenLogCheckpoint(fresh_note_, log_keys_, &report_.key_fingerprint);
    if (!fresh.ok()) {
      report_.problems.push_back(
          "the broker's fresh checkpoint does not verify with its directory "
          "key: " +
          fresh.status().message());
      return Finish();
    }
    fresh_ = fresh->checkpoint;
    report_.checkpoint_size = fresh_.size;
    report_.checkpoint_root = fresh_.root;

    // 2. Every checkpoint the broker stored since the largest this store knows.
    REFBUS_ASSIGN_OR_RETURN(local_, store_->Checkpoints());
    uint64_t from = 0;
    for (const auto& c : local_) {
      known_.insert(c.note);
      from = std::max(from, c.size);
    }
    REFBUS_ASSIGN_OR_RETURN(std::vector<New> added, Collect(from, {fresh_note_}));

    // 4. Entries up to the fresh checkpoint, stored exactly as served.
    REFBUS_ASSIGN_OR_RETURN(bool complete, FetchEntries());
    if (!complete) return Finish();
    REFBUS_RETURN_IF_ERROR(AskAgainForCosignatures(added));
    REFBUS_RETURN_IF_ERROR(WaitForCosigners());
    // 5. The fresh checkpoint against the local log.
    REFBUS_RETURN_IF_ERROR(CompareWithLocalLog());
    return Finish();
  }

 private:
  struct New {
    std::string note;
    keys::Checkpoint cp;
  };

  // Who we are and whom we talk to, from the verified directory only.
  Status Connect() {
    REFBUS_ASSIGN_OR_RETURN(schema::SignedDirectory sd,
                            LoadVerifiedDirectory(o_.auditor_dir, now_));
    dir_ = std::move(sd.directory);
    REFBUS_ASSIGN_OR_RETURN(keys::Identity me, LoadAuditor(dir_, o_.auditor_dir, o_.passphrase_file,
                                                           /*witness=*/false));
    me_id_ = me.party_id();
    REFBUS_ASSIGN_OR_RETURN(BrokerTarget target, ResolveBroker(dir_, o_.broker_id, o_.endpoint));
    log_keys_ = std::move(target.log_keys);
    report_.origin = log_keys_.origin;
    report_.endpoint = target.endpoint;

    REFBUS_ASSIGN_OR_RETURN(store_, LocalAuditStore::Open(o_.store_dir, /*create=*/true));
    REFBUS_RETURN_IF_ERROR(store_->Bind({o_.broker_id, log_keys_.origin, log_keys_.active_key}));
    REFBUS_ASSIGN_OR_RETURN(report_.entries_before, store_->NextIndex());
    REFBUS_ASSIGN_OR_RETURN(session_, AuditSession::Open(me, target.transport_key, report_.endpoint,
                                                         o_.broker_id, o_.timeout_ms));
    return Status::Ok();
  }

  Result<FetchReport> Finish() {
    report_.queries = session_->queries();
    auto n = store_->NextIndex();
    if (n.ok()) report_.entries_after = *n;
    auto all = store_->Checkpoints();
    if (all.ok()) report_.checkpoints_total = all->size();
    report_.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    return report_;
  }

  // Stores the notes (with those the broker serves from from_size) it has not seen before,
  // each with the broker's proof from the stored one below it; returns the new ones.
  Result<std::vector<New>> Collect(uint64_t from_size, std::vector<std::string> notes) {
    while (true) {
      Frame q = Query(Frame::Type::kAuditCheckpoints);
      q.audit_checkpoints = {from_size, schema::kMaxAuditCheckpointsPerReply};
      REFBUS_ASSIGN_OR_RETURN(schema::AuditReply r, session_->Ask(std::move(q)));
      uint64_t last = from_size;
      for (auto& note : r.checkpoints) {
        auto c = ParseUnverified(note);
        if (c) last = std::max(last, c->size);
        notes.push_back(std::move(note));
      }
      if (!r.more || r.checkpoints.empty() || last + 1 <= from_size) break;
      from_size = last + 1;
    }

    // 3. Store the new ones, each with the broker's proof from the stored one below it.
    std::vector<New> fresh_notes = Unseen(std::move(notes));
    for (const New& n : fresh_notes) REFBUS_RETURN_IF_ERROR(Store(n));
    return fresh_notes;
  }

  // The notes not seen before whose signature verifies, by size.
  std::vector<New> Unseen(std::vector<std::string> notes) {
    std::vector<New> fresh_notes;
    for (auto& note : notes) {
      if (known_.count(note) != 0) continue;
      // Newer than the fresh checkpoint: signed while this fetch ran; the next one takes it.
      auto size = ParseUnverified(note);
      if (size && size->size > fresh_.size) continue;
      auto opened = OpenLogCheckpoint(note, log_keys_);
      if (!opened.ok()) {
        report_.problems.push_back(
            "a stored checkpoint the broker served does not verify with its "
            "directory key (not kept): " +
            opened.status().message());
        continue;
      }
      known_.insert(note);
      fresh_notes.push_back({std::move(note), opened->checkpoint});
    }
    std::sort(fresh_notes.begin(), fresh_notes.end(),
              [](const New& a, const New& b) { return a.cp.size < b.cp.size; });
    return fresh_notes;
  }

  // Adds n to the store, with the broker's consistency proof from the largest stored
  // checkpoint not above it (checked; a failure or a fork is a problem, n is kept).
  Status Store(const New& n) {
    LocalCheckpoint c;
    c.size = n.cp.size;
    c.received_at_ms = now_;
    c.note = n.note;
    const LocalCheckpoint* pred = nullptr;
    for (const auto& l : local_) {
      if (l.size <= n.cp.size && (pred == nullptr || l.size >= pred->size)) pred = &l;
    }
    auto pred_cp = pred != nullptr ? ParseUnverified(pred->note) : std::nullopt;
    if (pred != nullptr && pred_cp && pred->size < n.cp.size) {
      Frame q = Query(Frame::Type::kAuditConsistency);
      q.audit_consistency = {pred->size, n.cp.size};
      auto r = session_->Ask(std::move(q));
      if (!r.ok()) {
        report_.problems.push_back("the broker gave no consistency proof from " +
                                   std::string("checkpoint #") + std::to_string(pred->seq) +
                                   " (size " + std::to_string(pred->size) + ") to size " +
                                   std::to_string(n.cp.size) + ": " + r.status().message());
      } else {
        c.proof_from_seq = pred->seq;
        c.proof = ToHashes(r->hashes);
        Status s =
            keys::VerifyConsistency(pred->size, n.cp.size, pred_cp->root, n.cp.root, c.proof);
        if (!s.ok()) {
          report_.problems.push_back(
              "the broker's checkpoint of size " + std::to_string(n.cp.size) +
              " is inconsistent with checkpoint #" + std::to_string(pred->seq) + " (size " +
              std::to_string(pred->size) + ", received " + FormatUtc(pred->received_at_ms) +
              "): its history was rewritten (" + s.message() + ")");
        }
      }
    } else if (pred != nullptr && pred_cp && pred->size == n.cp.size &&
               pred_cp->root != n.cp.root) {
      report_.problems.push_back(
          "the broker signed a second checkpoint of size " + std::to_string(n.cp.size) +
          " with another root than checkpoint #" + std::to_string(pred->seq) + ": a fork");
    }
    REFBUS_ASSIGN_OR_RETURN(c.seq, store_->AddCheckpoint(c));
    local_.push_back(c);
    ++report_.checkpoints_new;
    return Status::Ok();
  }

  // False (with a problem) when the broker's log cannot be fetched up to the checkpoint.
  Result<bool> FetchEntries() {
    const uint64_t target = fresh_.size;
    REFBUS_ASSIGN_OR_RETURN(uint64_t next, store_->NextIndex());
    if (target < next) {
      report_.problems.push_back("the broker's log now has " + std::to_string(target) +
                                 " entries, fewer than the " + std::to_string(next) +
                                 " fetched from it before: it was truncated or rewritten");
      return false;
    }
    while (next < target) {
      Frame q = Query(Frame::Type::kAuditEntries);
      q.audit_entries = {next, static_cast<uint32_t>(std::min<uint64_t>(
                                   schema::kMaxAuditEntriesPerReply, target - next))};
      REFBUS_ASSIGN_OR_RETURN(schema::AuditReply r, session_->Ask(std::move(q)));
      if (r.first_index != next) {
        return Malformed("broker " + o_.broker_id + " answered entries from " +
                         std::to_string(r.first_index) + " when asked for " + std::to_string(next));
      }
      if (r.entries.empty()) {
        report_.problems.push_back("the broker served no entries from index " +
                                   std::to_string(next) + " though its checkpoint covers " +
                                   std::to_string(target));
        return false;
      }
      if (r.entries.size() > target - next) r.entries.resize(target - next);
      REFBUS_RETURN_IF_ERROR(store_->AppendEntries(next, r.entries));
      next += r.entries.size();
    }
    return true;
  }

  // Witnesses cosign a checkpoint moments after it is signed, while this fetch was busy
  // with entries: the checkpoints it took without cosignatures are asked for once more, so
  // that the store holds the cosignatures the broker has by now (as new arrivals of the
  // same checkpoints). The fresh one is in the same position at the next fetch.
  Status AskAgainForCosignatures(const std::vector<New>& added) {
    std::optional<uint64_t> uncosigned;
    for (const New& n : added) {
      if (ExtraSignatureLines(n.note) == 0) {
        uncosigned = std::min(uncosigned.value_or(n.cp.size), n.cp.size);
      }
    }
    if (uncosigned) REFBUS_RETURN_IF_ERROR(Collect(*uncosigned, {}).status());
    return Status::Ok();
  }

  // Who cosigned the fresh checkpoint (over every arrival of it).
  std::vector<std::string> FreshCosigners(const std::vector<keys::WitnessKey>& witness_keys) const {
    std::set<std::string> who;
    for (const auto& c : local_) {
      if (c.size != fresh_.size) continue;
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
  }

  // Waits (FetchOptions::wait_cosignatures) for enough cosigners of the fresh checkpoint.
  Status WaitForCosigners() {
    REFBUS_ASSIGN_OR_RETURN(std::vector<keys::WitnessKey> witness_keys,
                            keys::WitnessKeys(dir_, o_.broker_id));
    report_.fresh_cosigners = FreshCosigners(witness_keys);
    if (o_.wait_cosignatures == 0) return Status::Ok();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(o_.wait_ms);
    while (report_.fresh_cosigners.size() < o_.wait_cosignatures &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      REFBUS_RETURN_IF_ERROR(Collect(fresh_.size, {}).status());
      report_.fresh_cosigners = FreshCosigners(witness_keys);
    }
    if (report_.fresh_cosigners.size() < o_.wait_cosignatures) {
      report_.problems.push_back("the fresh checkpoint (size " + std::to_string(fresh_.size) +
                                 ") has " + std::to_string(report_.fresh_cosigners.size()) +
                                 " of the " + std::to_string(o_.wait_cosignatures) +
                                 " cosignatures waited for after " + std::to_string(o_.wait_ms) +
                                 " ms: its witnesses have not cosigned it");
    }
    return Status::Ok();
  }

  Status CompareWithLocalLog() {
    const uint64_t target = fresh_.size;
    std::optional<uint64_t> own;
    REFBUS_ASSIGN_OR_RETURN(
        LocalTree lt, ReadLocalTree(*store_, [&](uint64_t index, ByteView bytes) {
          if (index < report_.entries_before || index >= target) return;
          auto e = schema::DecodeAuditEntry(bytes);
          if (e.ok() && e->event == schema::AuditEvent::kAuditorQuery && e->actor == me_id_ &&
              e->detail == kCheckpointQueryDetail && e->reason == NackReason::kUnspecified) {
            own = index;  // the last one: this fetch's request
          }
        }));
    if (lt.gap) {
      report_.problems.push_back("the local store is missing entry " + std::to_string(*lt.gap) +
                                 ": run refbus-audit verify");
      return Status::Ok();
    }
    auto root = keys::RootAt(lt.tree, target);
    if (!root.ok()) return root.status();
    if (*root != fresh_.root) {
      LocateDifference(lt);
      return Status::Ok();
    }
    report_.own_query_index = own;
    if (!own) {
      report_.problems.push_back(
          "the broker's fresh checkpoint does not include the AUDITOR_QUERY "
          "entry of this fetch's checkpoint request");
    }
    return Status::Ok();
  }

  // The first local entry that differs from the signed log, by bisection over the broker's
  // consistency proofs.
  void LocateDifference(const LocalTree& lt) {
    const uint64_t target = fresh_.size;
    report_.problems.push_back("the local log's first " + std::to_string(target) +
                               " entries do not match the broker's fresh checkpoint of that size");
    const keys::Hash signed_root = fresh_.root;
    auto located = Bisect(target, [&](uint64_t m) -> Result<bool> {
      Frame q = Query(Frame::Type::kAuditConsistency);
      q.audit_consistency = {m, target};
      REFBUS_ASSIGN_OR_RETURN(schema::AuditReply r, session_->Ask(std::move(q)));
      REFBUS_ASSIGN_OR_RETURN(keys::Hash local_root, keys::RootAt(lt.tree, m));
      return keys::VerifyConsistency(m, target, local_root, signed_root, ToHashes(r.hashes)).ok();
    });
    if (located.ok()) {
      report_.first_differing_entry = *located;
      report_.problems.push_back("entry " + std::to_string(*located) +
                                 " is the first local entry that differs from the log the "
                                 "broker signed (found with the broker's consistency proofs)");
    } else {
      report_.problems.push_back("could not locate the differing entry: " +
                                 located.status().message());
    }
  }

  const FetchOptions& o_;
  const UnixMillis now_;
  const std::chrono::steady_clock::time_point started_;
  FetchReport report_;
  schema::Directory dir_;
  std::string me_id_;
  LogKeys log_keys_;
  std::unique_ptr<LocalAuditStore> store_;
  std::unique_ptr<AuditSession> session_;
  std::string fresh_note_;
  keys::Checkpoint fresh_;
  std::vector<LocalCheckpoint> local_;
  std::set<std::string> known_;
};

}  // namespace

Result<schema::SignedDirectory> LoadVerifiedDirectory(const std::string& dir, UnixMillis now) {
  REFBUS_ASSIGN_OR_RETURN(auto v, keys::AcceptDirectoryInFolder(dir, "", now));
  if (v.in_grace) {
    spdlog::warn("directory serial {} has EXPIRED and is in its grace period: get a new one",
                 v.signed_directory.directory.serial);
  }
  return std::move(v.signed_directory);
}

Result<FetchReport> Fetch(const FetchOptions& o, UnixMillis now) { return Fetcher(o, now).Run(); }

}  // namespace refbus::audit
