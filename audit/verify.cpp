#include "audit/verify.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include "audit/scan.h"
#include "keys/crypto.h"
#include "schema/codec.h"

namespace refbus::audit {
namespace {

using schema::AuditEntry;
using schema::AuditEvent;

}  // namespace

// ---- Keys -----------------------------------------------------------------------------

Result<std::string> LogOrigin(std::string_view federation, std::string_view broker_id) {
  std::string origin = "refbus/" + std::string(federation) + "/" + std::string(broker_id);
  if (!keys::IsValidKeyName(origin)) {
    return InvalidArgument("log origin '" + origin + "' is not a valid note key name");
  }
  return origin;
}

Result<LogKeys> BrokerLogKeys(const schema::Directory& directory, const std::string& broker_id) {
  const schema::Party* p = directory.Find(broker_id);
  if (p == nullptr || p->kind != schema::PartyKind::kBroker) {
    return NotFound("'" + broker_id + "' is not a broker in directory serial " +
                    std::to_string(directory.serial));
  }
  if (p->status != schema::PartyStatus::kActive) {
    return Revoked("broker " + broker_id + " is revoked in directory serial " +
                   std::to_string(directory.serial) + ": nothing it signed can be trusted");
  }
  LogKeys k;
  k.broker_id = broker_id;
  REFBUS_ASSIGN_OR_RETURN(k.origin, LogOrigin(directory.federation, broker_id));
  for (const auto& rec : p->keys) {
    if (rec.state == schema::KeyState::kRevoked) continue;
    REFBUS_ASSIGN_OR_RETURN(
        auto v, keys::NoteVerifier::Create(k.origin, keys::NoteKeyType::kEd25519, rec.signing_key));
    k.verifiers.push_back(std::move(v));
    k.fingerprints.push_back(
        keys::Fingerprint(keys::KeyId(keys::KeyUse::kSigning, rec.signing_key)));
    if (rec.state == schema::KeyState::kActive) k.active_key = rec.signing_key;
  }
  if (k.verifiers.empty()) {
    return Revoked("broker " + broker_id + " has no unrevoked signing key in directory serial " +
                   std::to_string(directory.serial));
  }
  return k;
}

Result<LogKeys> LogKeysFromBinding(const AuditBinding& binding) {
  LogKeys k;
  k.broker_id = binding.broker_id;
  k.origin = binding.origin;
  REFBUS_ASSIGN_OR_RETURN(auto v,
                          keys::NoteVerifier::Create(binding.origin, keys::NoteKeyType::kEd25519,
                                                     binding.broker_signing_key));
  k.verifiers.push_back(std::move(v));
  k.fingerprints.push_back(
      keys::Fingerprint(keys::KeyId(keys::KeyUse::kSigning, binding.broker_signing_key)));
  k.active_key = binding.broker_signing_key;
  return k;
}

Result<keys::VerifiedCheckpoint> OpenLogCheckpoint(std::string_view note, const LogKeys& keys,
                                                   std::string* fingerprint) {
  if (keys.verifiers.empty()) return InvalidArgument("no key to verify the checkpoint with");
  Status first;
  for (size_t i = 0; i < keys.verifiers.size(); ++i) {
    auto c = keys::OpenCheckpoint(note, keys.origin, keys.verifiers[i]);
    if (c.ok()) {
      if (fingerprint != nullptr) *fingerprint = keys.fingerprints[i];
      return c;
    }
    if (first.ok()) first = c.status();
  }
  return first;
}

// ---- The local log ---------------------------------------------------------------------

Result<LocalTree> ReadLocalTree(const LocalAuditStore& store,
                                const std::function<void(uint64_t, ByteView)>& visit) {
  Scan scan;
  REFBUS_RETURN_IF_ERROR(ScanEntries(store, scan, [&](uint64_t index, ByteView bytes) {
    if (visit) visit(index, bytes);
  }));
  LocalTree out;
  out.tree = std::move(scan.tree);
  out.gap = scan.gap;
  return out;
}

// ---- Verify -----------------------------------------------------------------------------

std::string VerifyReport::Headline() const {
  if (ok()) {
    std::string suffix;
    if (witnessed_size) {
      suffix = "; witnessed up to size " + std::to_string(*witnessed_size) + " by ";
      for (const auto& c : cosigned) {
        if (c.size != *witnessed_size) continue;
        for (size_t i = 0; i < c.witnesses.size(); ++i) {
          suffix += (i == 0 ? "" : ", ") + c.witnesses[i];
        }
      }
    }
    if (!witnessed) suffix = "; " + std::string(kUnwitnessedWarning);
    if (evidence_checked > 0) {
      suffix += "; consistent with " + std::to_string(evidence_checked) + " evidence checkpoint" +
                (evidence_checked == 1 ? "" : "s");
    }
    return "ok: " + std::to_string(entries) + " entries of " + origin + " match all " +
           std::to_string(checkpoints) +
           " signed checkpoints, consistent with each other; latest " + "size " +
           std::to_string(verified_size) + ", root " + HexEncode(verified_root) + suffix;
  }
  const VerifyProblem& p = problems.front();
  std::string more =
      problems.size() > 1 ? " (and " + std::to_string(problems.size() - 1) + " more problems)" : "";
  if (p.where == VerifyProblem::Where::kEntry) {
    return "FAILED: first bad entry " + std::to_string(p.index) + ": " + p.message + more;
  }
  return "FAILED: " + p.message + more;
}

namespace {

// One run of VerifyLocalLog, step by step (the numbered checks of audit/verify.h). Problems
// are collected in the order the steps find them and sorted at the end.
class LogVerifier {
 public:
  LogVerifier(const LocalAuditStore& store, const LogKeys& log_keys, const VerifyOptions& options)
      : store_(store), log_keys_(log_keys), options_(options) {
    report_.broker_id = log_keys.broker_id;
    report_.origin = log_keys.origin;
  }

  Result<VerifyReport> Run() {
    const auto start = std::chrono::steady_clock::now();
    REFBUS_RETURN_IF_ERROR(CheckEntries());
    REFBUS_ASSIGN_OR_RETURN(auto stored, store_.Checkpoints());
    OpenCheckpoints(stored);
    REFBUS_RETURN_IF_ERROR(ComputeLocalRoots());
    CheckForks();
    CheckConsistencyProofs();
    MatchLocalEntries();
    CheckCosignatures();
    RequireWitnessed();
    CheckEvidence();
    CheckCoverage();
    return Finish(start);
  }

 private:
  struct Verified {
    const LocalCheckpoint* local;
    keys::Checkpoint cp;
    bool matches_local = false;
    std::string body;
  };

  using Kind = VerifyProblem::Kind;
  void EntryProblem(uint64_t index, std::string message, Kind kind = Kind::kOther,
                    std::vector<std::string> args = {}) {
    entry_problems_.push_back(
        {VerifyProblem::Where::kEntry, index, 0, std::move(message), kind, std::move(args)});
  }
  void CheckpointProblem(const LocalCheckpoint& c, uint64_t size, const std::string& message,
                         Kind kind = Kind::kOther, std::vector<std::string> args = {}) {
    checkpoint_problems_.push_back({VerifyProblem::Where::kCheckpoint, size, c.seq,
                                    Describe(c, size) + " " + message, kind, std::move(args)});
  }

  // Entries: order, decoding, index field, broker; every entry is a leaf.
  Status CheckEntries() {
    REFBUS_RETURN_IF_ERROR(ScanEntries(store_, scan_, [&](uint64_t index, ByteView bytes) {
      auto e = schema::DecodeAuditEntry(bytes);
      if (!e.ok()) {
        EntryProblem(index, "does not decode (" + e.status().message() + ")", Kind::kUndecodable);
      } else if (e->index != index) {
        EntryProblem(index,
                     "its index field says " + std::to_string(e->index) +
                         ": entries were deleted, reordered or inserted",
                     Kind::kIndexMismatch, {std::to_string(e->index)});
      } else if (e->broker_id != log_keys_.broker_id) {
        EntryProblem(index,
                     "was written by broker '" + e->broker_id + "', not " + log_keys_.broker_id,
                     Kind::kWrongBroker, {e->broker_id, log_keys_.broker_id});
      } else if (e->event == schema::AuditEvent::kEnvelopeRejected) {
        ++report_.refusal_entries;
        report_.refusals += e->Refusals();
        if (e->refusal_count != 0) ++report_.refusal_aggregates;
      }
    }));
    n_ = scan_.tree.Size();
    report_.entries = n_;
    if (scan_.gap) {
      EntryProblem(*scan_.gap, GapMessage(scan_), Kind::kGap,
                   {std::to_string(*scan_.gap), std::to_string(scan_.next_key.value_or(0))});
    }
    return Status::Ok();
  }

  // Checkpoints: signatures; the verified ones sorted by size, then arrival.
  void OpenCheckpoints(const std::vector<LocalCheckpoint>& stored) {
    report_.checkpoints = stored.size();
    for (const auto& c : stored) {
      auto opened = OpenLogCheckpoint(c.note, log_keys_);
      if (!opened.ok()) {
        CheckpointProblem(c, c.size,
                          "does not verify with broker " + log_keys_.broker_id +
                              "'s directory key: " + opened.status().message(),
                          Kind::kCheckpointSignature, {log_keys_.broker_id});
        continue;
      }
      if (opened->checkpoint.size != c.size) {
        CheckpointProblem(c, opened->checkpoint.size,
                          "is stored under size " + std::to_string(c.size) +
                              " but its signed note says " +
                              std::to_string(opened->checkpoint.size),
                          Kind::kCheckpointSize,
                          {std::to_string(c.size), std::to_string(opened->checkpoint.size)});
      }
      verified_.push_back({&c, opened->checkpoint, false, opened->body});
    }
    report_.signatures_ok = verified_.size();
    std::sort(verified_.begin(), verified_.end(), [](const Verified& a, const Verified& b) {
      return a.cp.size != b.cp.size ? a.cp.size < b.cp.size : a.local->seq < b.local->seq;
    });
    for (size_t i = 0; i < verified_.size(); ++i) by_seq_[verified_[i].local->seq] = i;
    if (stored.empty()) {
      checkpoint_problems_.push_back({VerifyProblem::Where::kCheckpoint,
                                      0,
                                      0,
                                      "the store holds no checkpoint: run fetch",
                                      Kind::kNoCheckpoint,
                                      {}});
    }
  }

  // Roots against the local entries.
  Status ComputeLocalRoots() {
    local_roots_.resize(verified_.size());
    for (size_t i = 0; i < verified_.size(); ++i) {
      Verified& v = verified_[i];
      largest_signed_ = std::max(largest_signed_, v.cp.size);
      if (v.cp.size > n_) continue;
      auto root = keys::RootAt(scan_.tree, v.cp.size);
      if (!root.ok()) return root.status();
      local_roots_[i] = *root;
      v.matches_local = *root == v.cp.root;
    }
    return Status::Ok();
  }

  // Consistency between checkpoints (reported first: the most specific finding): forks...
  void CheckForks() {
    for (size_t i = 1; i < verified_.size(); ++i) {
      const Verified& prev = verified_[i - 1];
      const Verified& cur = verified_[i];
      if (prev.cp.size == cur.cp.size && prev.cp.root != cur.cp.root) {
        CheckpointProblem(*cur.local, cur.cp.size,
                          "and checkpoint #" + std::to_string(prev.local->seq) +
                              " have the same size and different roots: the broker signed two "
                              "different logs (a fork)",
                          Kind::kFork, {std::to_string(prev.local->seq)});
      }
    }
  }

  // ...and the broker's proofs from fetch time.
  void CheckConsistencyProofs() {
    for (const Verified& cur : verified_) {
      if (!cur.local->proof_from_seq) continue;
      auto it = by_seq_.find(*cur.local->proof_from_seq);
      if (it == by_seq_.end()) continue;  // that one's signature failed: reported above
      const Verified& old = verified_[it->second];
      Status s = keys::VerifyConsistency(old.cp.size, cur.cp.size, old.cp.root, cur.cp.root,
                                         cur.local->proof);
      if (!s.ok()) {
        CheckpointProblem(*cur.local, cur.cp.size,
                          "is inconsistent with " + Describe(*old.local, old.cp.size) +
                              ": the consistency proof the broker gave does not verify (" +
                              s.message() + "); the broker rewrote its history",
                          Kind::kInconsistent,
                          {std::to_string(old.local->seq), std::to_string(old.cp.size)});
      }
    }
  }

  void MatchLocalEntries() {
    uint64_t last_matched = 0;
    for (size_t i = 0; i < verified_.size(); ++i) {
      const Verified& v = verified_[i];
      const uint64_t size = v.cp.size;
      if (v.matches_local) {
        last_matched = size;
        report_.verified_size = size;
        report_.verified_root = v.cp.root;
      } else if (size <= n_) {
        CheckpointProblem(*v.local, size,
                          "does not match the first " + std::to_string(size) +
                              " local entries: they differ from what the broker signed (root " +
                              HexEncode(v.cp.root) + ", local " + HexEncode(local_roots_[i]) +
                              "); the largest smaller checkpoint that matches them has size " +
                              std::to_string(last_matched),
                          Kind::kLocalMismatch,
                          {std::to_string(size), std::to_string(last_matched)});
      } else if (scan_.gap) {
        CheckpointProblem(
            *v.local, size,
            "cannot be checked: the local log is broken at entry " + std::to_string(*scan_.gap),
            Kind::kLocalBroken, {std::to_string(*scan_.gap)});
      } else {
        CheckpointProblem(*v.local, size,
                          "covers entries the local store does not have (it holds " +
                              std::to_string(n_) + "): run fetch",
                          Kind::kMissingEntries, {std::to_string(n_)});
      }
    }
  }

  // The witness key that made sig, or null for a key the directory does not list.
  const keys::WitnessKey* WitnessOf(const keys::NoteSignature& sig) const {
    const keys::WitnessKey* key = nullptr;
    for (const auto& w : options_.witnesses) {
      if (w.party_id == log_keys_.broker_id) continue;  // a log never witnesses itself
      if (w.verifier.name() == sig.name && w.verifier.key_id() == sig.key_id) key = &w;
    }
    return key;
  }

  // Cosignatures, per checkpoint size (over every arrival of it).
  void CheckCosignatures() {
    report_.min_cosignatures = options_.min_cosignatures;
    std::map<uint64_t, std::set<std::string>> cosigners;
    std::map<uint64_t, std::vector<uint64_t>> arrivals;
    for (const Verified& v : verified_) {
      arrivals[v.cp.size].push_back(v.local->seq);
      cosigners[v.cp.size];
      auto note = keys::ParseSignedNote(v.local->note);
      if (!note.ok()) continue;  // it opened above: cannot happen
      for (const keys::NoteSignature& sig : note->signatures) {
        if (sig.name == log_keys_.origin) continue;  // the log's own
        const keys::WitnessKey* key = WitnessOf(sig);
        if (key == nullptr) {
          ++report_.unknown_signatures;
          continue;
        }
        auto t = keys::VerifyCosignature(v.body, sig, key->verifier);
        if (!t.ok()) {
          CheckpointProblem(*v.local, v.cp.size,
                            "has a cosignature by witness " + key->party_id +
                                " that does not verify: " + t.status().message(),
                            Kind::kBadCosignature, {key->party_id});
          continue;
        }
        cosigners[v.cp.size].insert(key->party_id);
      }
    }
    const size_t need = std::max<size_t>(1, options_.min_cosignatures);
    for (const auto& [size, who] : cosigners) {
      CosignedCheckpoint c;
      c.size = size;
      c.seqs = arrivals[size];
      c.witnesses.assign(who.begin(), who.end());
      if (who.size() >= need) {
        report_.witnessed_size = size;
        report_.witnessed = true;
      }
      report_.cosigned.push_back(std::move(c));
    }
  }

  // With min_cosignatures N > 0, every checkpoint above the witnessed size is a problem.
  void RequireWitnessed() {
    if (options_.min_cosignatures == 0 || report_.cosigned.empty()) return;
    const std::string required = std::to_string(options_.min_cosignatures) + " cosignature" +
                                 (options_.min_cosignatures == 1 ? "" : "s");
    const std::string none_named =
        options_.witnesses.empty()
            ? "; this auditor names no witnesses, so no cosignature counts (name them in "
              "auditor.toml: [verify] witnesses = [...])"
            : "";
    for (const CosignedCheckpoint& c : report_.cosigned) {
      if (report_.witnessed_size && c.size <= *report_.witnessed_size) continue;
      std::string by;
      for (const auto& w : c.witnesses) by += (by.empty() ? "" : ", ") + w;
      const Verified& v = verified_[by_seq_.at(c.seqs.front())];
      CheckpointProblem(
          *v.local, c.size,
          "is not witnessed: it has " + std::to_string(c.witnesses.size()) + " of the " + required +
              " required" + (by.empty() ? "" : " (by " + by + ")") +
              " and no larger checkpoint has them; the log is witnessed only up to size " +
              (report_.witnessed_size ? std::to_string(*report_.witnessed_size) : "0") +
              " (its witnesses refused this, or were not asked; a fresh checkpoint needs "
              "fetch --wait-cosignatures)" +
              none_named,
          Kind::kUnwitnessed,
          {std::to_string(c.witnesses.size()), std::to_string(options_.min_cosignatures),
           report_.witnessed_size ? std::to_string(*report_.witnessed_size) : "0"});
    }
  }

  // Evidence: checkpoints of this log held by others must match the local log.
  void CheckEvidence() {
    for (const CheckpointEvidence& e : options_.evidence) {
      auto add = [&](uint64_t size, const std::string& why) {
        checkpoint_problems_.push_back({VerifyProblem::Where::kCheckpoint,
                                        size,
                                        0,
                                        "evidence " + e.label + " " + why,
                                        Kind::kEvidence,
                                        {e.label}});
      };
      auto opened = OpenLogCheckpoint(e.note, log_keys_);
      if (!opened.ok()) {
        add(0, "is not a checkpoint of " + log_keys_.origin + " signed by a key of broker " +
                   log_keys_.broker_id + ": " + opened.status().message());
        continue;
      }
      const keys::Checkpoint& cp = opened->checkpoint;
      const std::string what =
          "(size " + std::to_string(cp.size) + ", root " + HexEncode(cp.root) + ")";
      if (cp.size > n_) {
        add(cp.size, what + " covers entries the local store does not have (it holds " +
                         std::to_string(n_) + "): run fetch, then verify again");
        continue;
      }
      auto root = keys::RootAt(scan_.tree, cp.size);
      if (!root.ok()) {
        add(cp.size, what + " cannot be checked: " + root.status().message());
        continue;
      }
      if (*root != cp.root) {
        add(cp.size, what + " does not match the log: its first " + std::to_string(cp.size) +
                         " entries have root " + HexEncode(*root) + "; broker " +
                         log_keys_.broker_id +
                         " signed this checkpoint for a log it no longer shows (it rewrote its "
                         "history or forked it)");
        continue;
      }
      ++report_.evidence_checked;
    }
  }

  // Coverage: every local entry under a signed checkpoint.
  void CheckCoverage() {
    if (!verified_.empty() && largest_signed_ < n_) {
      EntryProblem(largest_signed_,
                   "and the " + std::to_string(n_ - largest_signed_) +
                       " entries after it are not covered by any signed checkpoint",
                   Kind::kUncovered, {std::to_string(n_ - largest_signed_)});
    }
  }

  VerifyReport Finish(std::chrono::steady_clock::time_point start) {
    std::sort(entry_problems_.begin(), entry_problems_.end(),
              [](const VerifyProblem& a, const VerifyProblem& b) { return a.index < b.index; });
    std::stable_sort(checkpoint_problems_.begin(), checkpoint_problems_.end(),
                     [](const VerifyProblem& a, const VerifyProblem& b) {
                       return a.index != b.index ? a.index < b.index : a.seq < b.seq;
                     });
    if (!entry_problems_.empty()) report_.first_bad_entry = entry_problems_.front().index;
    if (!checkpoint_problems_.empty()) {
      report_.first_bad_checkpoint_seq = checkpoint_problems_.front().seq;
    }
    report_.problems = std::move(entry_problems_);
    report_.problems.insert(report_.problems.end(), checkpoint_problems_.begin(),
                            checkpoint_problems_.end());
    report_.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return std::move(report_);
  }

  const LocalAuditStore& store_;
  const LogKeys& log_keys_;
  const VerifyOptions& options_;
  VerifyReport report_;
  std::vector<VerifyProblem> entry_problems_;
  std::vector<VerifyProblem> checkpoint_problems_;
  Scan scan_;
  uint64_t n_ = 0;  // local entries up to the first gap
  std::vector<Verified> verified_;
  std::map<uint64_t, size_t> by_seq_;  // seq -> index into verified_
  std::vector<keys::Hash> local_roots_;
  uint64_t largest_signed_ = 0;
};

}  // namespace

Result<VerifyReport> VerifyLocalLog(const LocalAuditStore& store, const LogKeys& log_keys,
                                    const VerifyOptions& options) {
  return LogVerifier(store, log_keys, options).Run();
}

Result<uint64_t> Bisect(uint64_t checkpoint_size,
                        const std::function<Result<bool>(uint64_t m)>& consistent) {
  uint64_t lo = 0, hi = checkpoint_size;  // consistent(lo), !consistent(hi)
  while (hi - lo > 1) {
    uint64_t mid = lo + (hi - lo) / 2;
    REFBUS_ASSIGN_OR_RETURN(bool ok, consistent(mid));
    (ok ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace refbus::audit
