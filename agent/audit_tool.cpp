#include "agent/audit_tool.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/table.h"
#include "keys/crypto.h"
#include "schema/codec.h"

namespace refbus::agent {
namespace {

using json = nlohmann::json;
using schema::AuditEntry;
using schema::AuditEvent;

std::string Hex(ByteView b) { return HexEncode(b); }
std::string Hex(const keys::Hash& h) { return HexEncode(h); }

std::string Describe(const LocalCheckpoint& c, uint64_t size) {
  return "checkpoint #" + std::to_string(c.seq) + " (size " + std::to_string(size) + ", received " +
         FormatUtc(c.received_at_ms) + ")";
}

// Streams the local entries in key order into a MemoryTree, stopping at the first gap.
struct Scan {
  keys::MemoryTree tree;
  std::optional<uint64_t> gap;       // the first missing index
  std::optional<uint64_t> next_key;  // the key found where gap was expected
};

Status ScanEntries(const LocalAuditStore& store, Scan& scan,
                   const std::function<void(uint64_t, ByteView)>& visit) {
  Status stop(Status::Code::kAlreadyExists, "gap");
  Status s = store.ForEachEntry([&](uint64_t key, ByteView bytes) -> Status {
    const uint64_t index = scan.tree.Size();
    if (key != index) {
      scan.gap = index;
      scan.next_key = key;
      return stop;
    }
    scan.tree.Append(keys::LeafHash(bytes));
    visit(index, bytes);
    return Status::Ok();
  });
  if (!s.ok() && !scan.gap) return s;
  return Status::Ok();
}

std::string GapMessage(const Scan& scan) {
  return "entry " + std::to_string(*scan.gap) +
         " is missing from the local store (the next stored entry is " +
         std::to_string(*scan.next_key) + ")";
}

// A checkpoint parsed without checking its signature (queries and reports only).
std::optional<keys::Checkpoint> ParseUnverified(std::string_view note) {
  auto n = keys::ParseSignedNote(note);
  if (!n.ok()) return std::nullopt;
  auto c = keys::ParseCheckpointBody(n->text);
  if (!c.ok()) return std::nullopt;
  return *c;
}

// Lowercase hex of exactly want_bytes (0: any length), nothing else accepted.
Result<Bytes> StrictHex(const json& v, std::string_view field, size_t want_bytes) {
  if (!v.is_string()) return InvalidArgument("field '" + std::string(field) + "' is not a string");
  const std::string& s = v.get_ref<const std::string&>();
  auto b = HexDecode(s);
  if (!b.ok() || HexEncode(*b) != s || (want_bytes != 0 && b->size() != want_bytes)) {
    return InvalidArgument("field '" + std::string(field) + "' is not " +
                           (want_bytes != 0 ? std::to_string(want_bytes) + " bytes of " : "") +
                           "lowercase hex");
  }
  return std::move(*b);
}

Status ExactKeys(const json& obj, std::initializer_list<std::string_view> keys,
                 std::string_view what) {
  if (!obj.is_object()) return InvalidArgument(std::string(what) + " is not a JSON object");
  if (obj.size() != keys.size()) {
    return InvalidArgument(std::string(what) + " has " + std::to_string(obj.size()) +
                           " fields, expected " + std::to_string(keys.size()));
  }
  for (auto k : keys) {
    if (!obj.contains(std::string(k))) {
      return InvalidArgument(std::string(what) + " has no field '" + std::string(k) + "'");
    }
  }
  return Status::Ok();
}

Result<std::string> StringField(const json& obj, const char* name) {
  const json& v = obj.at(name);
  if (!v.is_string()) return InvalidArgument(std::string("field '") + name + "' is not a string");
  return v.get<std::string>();
}

Result<uint64_t> NumberField(const json& obj, const char* name) {
  const json& v = obj.at(name);
  if (!v.is_number_unsigned()) {
    return InvalidArgument(std::string("field '") + name + "' is not an unsigned number");
  }
  return v.get<uint64_t>();
}

bool HasRecipient(const AuditEntry& e, std::string_view id) {
  return std::find(e.recipients.begin(), e.recipients.end(), id) != e.recipients.end();
}

// What the ACCEPTED entry of a message said, for rows whose entry carries only the id.
struct MessageInfo {
  std::string case_ref;
  std::string sender_id;
  schema::MessageKind kind = schema::MessageKind::kUnspecified;
  Bytes consent_grant_id;
};

MessageInfo InfoOf(const AuditEntry& e) {
  return {e.case_ref, e.sender_id, e.kind, e.consent_grant_id};
}

AuditRow RowOf(const AuditEntry& e) {
  AuditRow r;
  r.entry = e;
  r.case_ref = e.case_ref;
  r.sender_id = e.sender_id;
  r.kind = e.kind;
  r.consent_grant_id = e.consent_grant_id;
  return r;
}

void Join(AuditRow& r, const std::map<Bytes, MessageInfo>& info) {
  auto it = info.find(r.entry.message_id);
  if (it == info.end()) return;
  if (r.case_ref.empty()) r.case_ref = it->second.case_ref;
  if (r.sender_id.empty()) r.sender_id = it->second.sender_id;
  if (r.kind == schema::MessageKind::kUnspecified) r.kind = it->second.kind;
  if (r.consent_grant_id.empty()) r.consent_grant_id = it->second.consent_grant_id;
}

// Scans the decoded entries for a query, after checking that they are the log of the
// latest stored checkpoint.
Status ScanForQuery(const LocalAuditStore& store, QueryResult& result,
                    const std::function<void(const AuditEntry&)>& visit) {
  Scan scan;
  Status bad;
  REFBUS_RETURN_IF_ERROR(ScanEntries(store, scan, [&](uint64_t index, ByteView bytes) {
    if (!bad.ok()) return;
    auto e = schema::DecodeAuditEntry(bytes);
    if (!e.ok() || e->index != index) {
      bad = FailedPrecondition("local audit entry " + std::to_string(index) +
                               " is damaged or out of place: run refbus-audit verify");
      return;
    }
    visit(*e);
  }));
  if (scan.gap) return FailedPrecondition(GapMessage(scan) + ": run refbus-audit verify");
  REFBUS_RETURN_IF_ERROR(bad);
  REFBUS_ASSIGN_OR_RETURN(auto checkpoints, store.Checkpoints());
  const LocalCheckpoint* latest = nullptr;
  for (const auto& c : checkpoints) {
    if (latest == nullptr || c.size >= latest->size) latest = &c;
  }
  if (latest == nullptr) return FailedPrecondition("no checkpoint in the store: run fetch");
  auto cp = ParseUnverified(latest->note);
  auto root = keys::RootAt(scan.tree, std::min(latest->size, scan.tree.Size()));
  if (!cp || cp->size != scan.tree.Size() || !root.ok() || *root != cp->root) {
    return FailedPrecondition("the local entries are not the log of the latest stored " +
                              Describe(*latest, latest->size) + ": run refbus-audit verify");
  }
  result.entries_scanned = scan.tree.Size();
  result.checkpoint_size = cp->size;
  return Status::Ok();
}

std::string ShortId(ByteView id) {
  std::string h = Hex(id);
  return h.empty() ? "-" : h.substr(0, 8);
}

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

std::string Recipients(const AuditEntry& e, std::string_view sep) {
  std::string s;
  for (const auto& r : e.recipients) {
    if (!s.empty()) s += sep;
    s += r;
  }
  return s;
}

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
    std::string witnessed;
    if (witnessed_size) {
      witnessed = "; witnessed up to size " + std::to_string(*witnessed_size) + " by ";
      for (const auto& c : cosigned) {
        if (c.size != *witnessed_size) continue;
        for (size_t i = 0; i < c.witnesses.size(); ++i) {
          witnessed += (i == 0 ? "" : ", ") + c.witnesses[i];
        }
      }
    }
    return "ok: " + std::to_string(entries) + " entries of " + origin + " match all " +
           std::to_string(checkpoints) +
           " signed checkpoints, consistent with each other; latest " + "size " +
           std::to_string(verified_size) + ", root " + Hex(verified_root) + witnessed;
  }
  const VerifyProblem& p = problems.front();
  std::string more =
      problems.size() > 1 ? " (and " + std::to_string(problems.size() - 1) + " more problems)" : "";
  if (p.where == VerifyProblem::Where::kEntry) {
    return "FAILED: first bad entry " + std::to_string(p.index) + ": " + p.message + more;
  }
  return "FAILED: " + p.message + more;
}

Result<VerifyReport> VerifyLocalLog(const LocalAuditStore& store, const LogKeys& log_keys,
                                    const VerifyOptions& options) {
  auto start = std::chrono::steady_clock::now();
  VerifyReport report;
  report.broker_id = log_keys.broker_id;
  report.origin = log_keys.origin;
  std::vector<VerifyProblem> entry_problems, checkpoint_problems;
  auto entry_problem = [&](uint64_t index, std::string message) {
    entry_problems.push_back({VerifyProblem::Where::kEntry, index, 0, std::move(message)});
  };
  auto checkpoint_problem = [&](const LocalCheckpoint& c, uint64_t size,
                                const std::string& message) {
    checkpoint_problems.push_back(
        {VerifyProblem::Where::kCheckpoint, size, c.seq, Describe(c, size) + " " + message});
  };

  // Entries: order, decoding, index field, broker; every entry is a leaf.
  Scan scan;
  REFBUS_RETURN_IF_ERROR(ScanEntries(store, scan, [&](uint64_t index, ByteView bytes) {
    auto e = schema::DecodeAuditEntry(bytes);
    if (!e.ok()) {
      entry_problem(index, "does not decode (" + e.status().message() + ")");
    } else if (e->index != index) {
      entry_problem(index, "its index field says " + std::to_string(e->index) +
                               ": entries were deleted, reordered or inserted");
    } else if (e->broker_id != log_keys.broker_id) {
      entry_problem(index,
                    "was written by broker '" + e->broker_id + "', not " + log_keys.broker_id);
    }
  }));
  const uint64_t n = scan.tree.Size();
  report.entries = n;
  if (scan.gap) entry_problem(*scan.gap, GapMessage(scan));

  // Checkpoints: signatures.
  REFBUS_ASSIGN_OR_RETURN(auto stored, store.Checkpoints());
  report.checkpoints = stored.size();
  struct Verified {
    const LocalCheckpoint* local;
    keys::Checkpoint cp;
    bool matches_local = false;
    std::string body;
  };
  std::vector<Verified> verified;
  std::map<uint64_t, size_t> by_seq;  // seq -> index into verified
  for (const auto& c : stored) {
    auto opened = OpenLogCheckpoint(c.note, log_keys);
    if (!opened.ok()) {
      checkpoint_problem(c, c.size,
                         "does not verify with broker " + log_keys.broker_id +
                             "'s directory key: " + opened.status().message());
      continue;
    }
    if (opened->checkpoint.size != c.size) {
      checkpoint_problem(c, opened->checkpoint.size,
                         "is stored under size " + std::to_string(c.size) +
                             " but its signed note says " +
                             std::to_string(opened->checkpoint.size));
    }
    verified.push_back({&c, opened->checkpoint, false, opened->body});
  }
  report.signatures_ok = verified.size();
  std::sort(verified.begin(), verified.end(), [](const Verified& a, const Verified& b) {
    return a.cp.size != b.cp.size ? a.cp.size < b.cp.size : a.local->seq < b.local->seq;
  });
  for (size_t i = 0; i < verified.size(); ++i) by_seq[verified[i].local->seq] = i;
  if (stored.empty()) {
    checkpoint_problems.push_back(
        {VerifyProblem::Where::kCheckpoint, 0, 0, "the store holds no checkpoint: run fetch"});
  }

  // Roots against the local entries.
  std::vector<keys::Hash> local_roots(verified.size());
  uint64_t largest_signed = 0;
  for (size_t i = 0; i < verified.size(); ++i) {
    Verified& v = verified[i];
    largest_signed = std::max(largest_signed, v.cp.size);
    if (v.cp.size > n) continue;
    auto root = keys::RootAt(scan.tree, v.cp.size);
    if (!root.ok()) return root.status();
    local_roots[i] = *root;
    v.matches_local = *root == v.cp.root;
  }

  // Consistency between checkpoints (reported first: the most specific finding): forks,
  // and the broker's proofs from fetch time.
  for (size_t i = 1; i < verified.size(); ++i) {
    const Verified& prev = verified[i - 1];
    const Verified& cur = verified[i];
    if (prev.cp.size == cur.cp.size && prev.cp.root != cur.cp.root) {
      checkpoint_problem(*cur.local, cur.cp.size,
                         "and checkpoint #" + std::to_string(prev.local->seq) +
                             " have the same size and different roots: the broker signed two "
                             "different logs (a fork)");
    }
  }
  for (const Verified& cur : verified) {
    if (!cur.local->proof_from_seq) continue;
    auto it = by_seq.find(*cur.local->proof_from_seq);
    if (it == by_seq.end()) continue;  // that one's signature failed: reported above
    const Verified& old = verified[it->second];
    Status s = keys::VerifyConsistency(old.cp.size, cur.cp.size, old.cp.root, cur.cp.root,
                                       cur.local->proof);
    if (!s.ok()) {
      checkpoint_problem(*cur.local, cur.cp.size,
                         "is inconsistent with " + Describe(*old.local, old.cp.size) +
                             ": the consistency proof the broker gave does not verify (" +
                             s.message() + "); the broker rewrote its history");
    }
  }

  uint64_t last_matched = 0;
  for (size_t i = 0; i < verified.size(); ++i) {
    const Verified& v = verified[i];
    const uint64_t size = v.cp.size;
    if (v.matches_local) {
      last_matched = size;
      report.verified_size = size;
      report.verified_root = v.cp.root;
    } else if (size <= n) {
      checkpoint_problem(*v.local, size,
                         "does not match the first " + std::to_string(size) +
                             " local entries: they differ from what the broker signed (root " +
                             Hex(v.cp.root) + ", local " + Hex(local_roots[i]) +
                             "); the largest smaller checkpoint that matches them has size " +
                             std::to_string(last_matched));
    } else if (scan.gap) {
      checkpoint_problem(
          *v.local, size,
          "cannot be checked: the local log is broken at entry " + std::to_string(*scan.gap));
    } else {
      checkpoint_problem(*v.local, size,
                         "covers entries the local store does not have (it holds " +
                             std::to_string(n) + "): run fetch");
    }
  }

  // Cosignatures, per checkpoint size (over every arrival of it).
  report.min_cosignatures = options.min_cosignatures;
  std::map<uint64_t, std::set<std::string>> cosigners;
  std::map<uint64_t, std::vector<uint64_t>> arrivals;
  for (const Verified& v : verified) {
    arrivals[v.cp.size].push_back(v.local->seq);
    cosigners[v.cp.size];
    auto note = keys::ParseSignedNote(v.local->note);
    if (!note.ok()) continue;  // it opened above: cannot happen
    for (const keys::NoteSignature& sig : note->signatures) {
      if (sig.name == log_keys.origin) continue;  // the log's own
      const keys::WitnessKey* key = nullptr;
      for (const auto& w : options.witnesses) {
        if (w.verifier.name() == sig.name && w.verifier.key_id() == sig.key_id) key = &w;
      }
      if (key == nullptr) {
        ++report.unknown_signatures;
        continue;
      }
      auto t = keys::VerifyCosignature(v.body, sig, key->verifier);
      if (!t.ok()) {
        checkpoint_problem(*v.local, v.cp.size,
                           "has a cosignature by witness " + key->party_id +
                               " that does not verify: " + t.status().message());
        continue;
      }
      cosigners[v.cp.size].insert(key->party_id);
    }
  }
  const size_t need = std::max<size_t>(1, options.min_cosignatures);
  for (const auto& [size, who] : cosigners) {
    CosignedCheckpoint c;
    c.size = size;
    c.seqs = arrivals[size];
    c.witnesses.assign(who.begin(), who.end());
    if (who.size() >= need) report.witnessed_size = size;
    report.cosigned.push_back(std::move(c));
  }
  if (options.min_cosignatures > 0 && !report.cosigned.empty()) {
    const std::string required = std::to_string(options.min_cosignatures) + " cosignature" +
                                 (options.min_cosignatures == 1 ? "" : "s");
    for (const CosignedCheckpoint& c : report.cosigned) {
      if (report.witnessed_size && c.size <= *report.witnessed_size) continue;
      std::string by;
      for (const auto& w : c.witnesses) by += (by.empty() ? "" : ", ") + w;
      const Verified& v = verified[by_seq.at(c.seqs.front())];
      checkpoint_problem(
          *v.local, c.size,
          "is not witnessed: it has " + std::to_string(c.witnesses.size()) + " of the " + required +
              " required" + (by.empty() ? "" : " (by " + by + ")") +
              " and no larger checkpoint has them; the log is witnessed only up to size " +
              (report.witnessed_size ? std::to_string(*report.witnessed_size) : "0") +
              " (its witnesses refused this, or were not asked; a fresh checkpoint needs "
              "fetch --wait-cosignatures)");
    }
  }

  // Coverage: every local entry under a signed checkpoint.
  if (!verified.empty() && largest_signed < n) {
    entry_problem(largest_signed, "and the " + std::to_string(n - largest_signed) +
                                      " entries after it are not covered by any signed checkpoint");
  }

  std::sort(entry_problems.begin(), entry_problems.end(),
            [](const VerifyProblem& a, const VerifyProblem& b) { return a.index < b.index; });
  std::stable_sort(checkpoint_problems.begin(), checkpoint_problems.end(),
                   [](const VerifyProblem& a, const VerifyProblem& b) {
                     return a.index != b.index ? a.index < b.index : a.seq < b.seq;
                   });
  if (!entry_problems.empty()) report.first_bad_entry = entry_problems.front().index;
  if (!checkpoint_problems.empty()) {
    report.first_bad_checkpoint_seq = checkpoint_problems.front().seq;
  }
  report.problems = std::move(entry_problems);
  report.problems.insert(report.problems.end(), checkpoint_problems.begin(),
                         checkpoint_problems.end());
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
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

// ---- Proof bundles ---------------------------------------------------------------------

Result<std::string> MakeProofBundle(const LocalAuditStore& store, ByteView message_id) {
  REFBUS_ASSIGN_OR_RETURN(auto binding, store.Binding());
  if (!binding) return FailedPrecondition("the audit store is empty: run refbus-audit fetch");
  REFBUS_ASSIGN_OR_RETURN(LogKeys log_keys, LogKeysFromBinding(*binding));
  Scan scan;
  std::vector<std::pair<uint64_t, Bytes>> found;
  REFBUS_RETURN_IF_ERROR(ScanEntries(store, scan, [&](uint64_t index, ByteView bytes) {
    auto e = schema::DecodeAuditEntry(bytes);
    if (e.ok() && e->index == index &&
        std::equal(e->message_id.begin(), e->message_id.end(), message_id.begin(),
                   message_id.end())) {
      found.emplace_back(index, Bytes(bytes.begin(), bytes.end()));
    }
  }));
  // The largest checkpoint that verifies and is the log of the local entries.
  REFBUS_ASSIGN_OR_RETURN(auto stored, store.Checkpoints());
  std::optional<keys::VerifiedCheckpoint> best;
  std::string note, fingerprint;
  for (const auto& c : stored) {
    std::string fp;
    auto opened = OpenLogCheckpoint(c.note, log_keys, &fp);
    if (!opened.ok() || opened->checkpoint.size > scan.tree.Size()) continue;
    if (best && opened->checkpoint.size <= best->checkpoint.size) continue;
    auto root = keys::RootAt(scan.tree, opened->checkpoint.size);
    if (!root.ok() || *root != opened->checkpoint.root) continue;
    best = std::move(*opened);
    note = c.note;
    fingerprint = fp;
  }
  if (!best) {
    return FailedPrecondition(
        "no stored checkpoint verifies and matches the local entries: run refbus-audit verify");
  }
  const uint64_t size = best->checkpoint.size;
  json entries = json::array();
  for (const auto& [index, bytes] : found) {
    if (index >= size) continue;
    REFBUS_ASSIGN_OR_RETURN(auto proof, keys::InclusionProof(scan.tree, index, size));
    // A bundle that would not check is never written.
    REFBUS_RETURN_IF_ERROR(
        keys::VerifyInclusion(keys::LeafHash(bytes), index, size, proof, best->checkpoint.root));
    json hashes = json::array();
    for (const auto& h : proof) hashes.push_back(Hex(h));
    auto e = schema::DecodeAuditEntry(bytes);
    entries.push_back({{"index", index},
                       {"event", std::string(schema::Name(e->event))},
                       {"time", FormatUtc(e->time_ms)},
                       {"actor", e->actor},
                       {"entry", Hex(bytes)},
                       {"proof", hashes}});
  }
  if (entries.empty()) {
    return NotFound("no entry of the first " + std::to_string(size) + " of " + log_keys.origin +
                    " concerns message " + Hex(message_id));
  }
  json bundle = {{"format", std::string(kProofBundleFormat)},
                 {"broker_id", log_keys.broker_id},
                 {"origin", log_keys.origin},
                 {"broker_key_fingerprint", fingerprint},
                 {"message_id", Hex(message_id)},
                 {"checkpoint", note},
                 {"tree_size", size},
                 {"root", Hex(best->checkpoint.root)},
                 {"entries", entries}};
  return bundle.dump(2) + "\n";
}

Result<CheckedProof> CheckProofBundle(std::string_view bundle_json,
                                      const schema::Directory& directory) {
  json b = json::parse(bundle_json, nullptr, /*allow_exceptions=*/false);
  if (b.is_discarded()) return Malformed("the proof bundle is not valid JSON");
  REFBUS_RETURN_IF_ERROR(ExactKeys(b,
                                   {"format", "broker_id", "origin", "broker_key_fingerprint",
                                    "message_id", "checkpoint", "tree_size", "root", "entries"},
                                   "the proof bundle"));
  REFBUS_ASSIGN_OR_RETURN(std::string format, StringField(b, "format"));
  if (format != kProofBundleFormat) {
    return InvalidArgument("not a " + std::string(kProofBundleFormat) + " bundle");
  }
  CheckedProof out;
  REFBUS_ASSIGN_OR_RETURN(out.broker_id, StringField(b, "broker_id"));
  REFBUS_ASSIGN_OR_RETURN(LogKeys log_keys, BrokerLogKeys(directory, out.broker_id));
  REFBUS_ASSIGN_OR_RETURN(std::string origin, StringField(b, "origin"));
  if (origin != log_keys.origin) {
    return InvalidArgument("the bundle names log '" + origin + "', but broker " + out.broker_id +
                           "'s log in this federation is '" + log_keys.origin + "'");
  }
  out.origin = origin;
  REFBUS_ASSIGN_OR_RETURN(std::string note, StringField(b, "checkpoint"));
  auto cp = OpenLogCheckpoint(note, log_keys, &out.key_fingerprint);
  if (!cp.ok()) {
    return Unauthenticated("the bundle's checkpoint does not verify with broker " + out.broker_id +
                           "'s directory key: " + cp.status().message());
  }
  REFBUS_ASSIGN_OR_RETURN(std::string fingerprint, StringField(b, "broker_key_fingerprint"));
  if (fingerprint != out.key_fingerprint) {
    return InvalidArgument("the checkpoint is signed by key " + out.key_fingerprint +
                           ", the bundle says " + fingerprint);
  }
  REFBUS_ASSIGN_OR_RETURN(out.tree_size, NumberField(b, "tree_size"));
  if (out.tree_size != cp->checkpoint.size) {
    return InvalidArgument("the bundle says tree size " + std::to_string(out.tree_size) +
                           ", its checkpoint " + std::to_string(cp->checkpoint.size));
  }
  REFBUS_ASSIGN_OR_RETURN(Bytes root, StrictHex(b.at("root"), "root", keys::kMerkleHashBytes));
  if (!std::equal(root.begin(), root.end(), cp->checkpoint.root.begin())) {
    return InvalidArgument("the bundle's root is not its checkpoint's");
  }
  REFBUS_ASSIGN_OR_RETURN(out.message_id,
                          StrictHex(b.at("message_id"), "message_id", schema::kMessageIdBytes));
  const json& entries = b.at("entries");
  if (!entries.is_array() || entries.empty()) {
    return InvalidArgument("the bundle proves no entry");
  }
  std::chrono::nanoseconds verify_time{0};
  std::set<uint64_t> seen;
  for (const json& item : entries) {
    REFBUS_RETURN_IF_ERROR(ExactKeys(item, {"index", "event", "time", "actor", "entry", "proof"},
                                     "an entry of the proof bundle"));
    REFBUS_ASSIGN_OR_RETURN(uint64_t index, NumberField(item, "index"));
    const std::string at = "entry " + std::to_string(index);
    if (index >= out.tree_size || !seen.insert(index).second) {
      return InvalidArgument(at + " is beyond the tree or listed twice");
    }
    REFBUS_ASSIGN_OR_RETURN(Bytes bytes, StrictHex(item.at("entry"), "entry", 0));
    auto e = schema::DecodeAuditEntry(bytes);
    if (!e.ok()) return InvalidArgument(at + " does not decode: " + e.status().message());
    if (e->index != index || e->message_id != out.message_id || e->broker_id != out.broker_id) {
      return InvalidArgument(at + ": its signed bytes say index " + std::to_string(e->index) +
                             ", message " + Hex(e->message_id) + ", broker " + e->broker_id);
    }
    REFBUS_ASSIGN_OR_RETURN(std::string event, StringField(item, "event"));
    REFBUS_ASSIGN_OR_RETURN(std::string time, StringField(item, "time"));
    REFBUS_ASSIGN_OR_RETURN(std::string actor, StringField(item, "actor"));
    if (event != schema::Name(e->event) || time != FormatUtc(e->time_ms) || actor != e->actor) {
      return InvalidArgument(at +
                             ": the bundle's event, time or actor is not what its signed "
                             "bytes say");
    }
    const json& hashes = item.at("proof");
    if (!hashes.is_array() || hashes.size() > keys::kMaxTreeHeight) {
      return InvalidArgument(at + ": the proof is not a list of at most 64 hashes");
    }
    std::vector<keys::Hash> proof;
    for (const json& h : hashes) {
      REFBUS_ASSIGN_OR_RETURN(Bytes hb, StrictHex(h, "proof", keys::kMerkleHashBytes));
      keys::Hash hash;
      std::copy(hb.begin(), hb.end(), hash.begin());
      proof.push_back(hash);
    }
    auto t0 = std::chrono::steady_clock::now();
    Status s = keys::VerifyInclusion(keys::LeafHash(bytes), index, out.tree_size, proof,
                                     cp->checkpoint.root);
    verify_time += std::chrono::steady_clock::now() - t0;
    if (!s.ok()) {
      return Unauthenticated(at + " is not in the signed checkpoint of size " +
                             std::to_string(out.tree_size) + ": " + s.message());
    }
    out.entries.push_back(std::move(*e));
  }
  out.verify_us_per_entry = std::chrono::duration<double, std::micro>(verify_time).count() /
                            static_cast<double>(out.entries.size());
  return out;
}

// ---- Queries ---------------------------------------------------------------------------

Result<QueryResult> QueryCase(const LocalAuditStore& store, std::string_view case_ref) {
  QueryResult result;
  std::set<Bytes> messages;
  std::map<Bytes, MessageInfo> info;
  REFBUS_RETURN_IF_ERROR(ScanForQuery(store, result, [&](const AuditEntry& e) {
    if (e.case_ref == case_ref) {
      if (!e.message_id.empty()) {
        messages.insert(e.message_id);
        if (e.event == AuditEvent::kEnvelopeAccepted) info[e.message_id] = InfoOf(e);
      }
      result.rows.push_back(RowOf(e));
    } else if (!e.message_id.empty() && messages.count(e.message_id) != 0) {
      result.rows.push_back(RowOf(e));
    }
  }));
  for (auto& r : result.rows) Join(r, info);
  return result;
}

Result<QueryResult> QueryAccesses(const LocalAuditStore& store, std::string_view agency,
                                  UnixMillis from_ms, UnixMillis to_ms) {
  QueryResult result;
  std::map<Bytes, MessageInfo> info;
  REFBUS_RETURN_IF_ERROR(ScanForQuery(store, result, [&](const AuditEntry& e) {
    if (e.event == AuditEvent::kEnvelopeAccepted && HasRecipient(e, agency)) {
      info[e.message_id] = InfoOf(e);
    }
    if (e.time_ms < from_ms || e.time_ms >= to_ms) return;
    bool access = (e.event == AuditEvent::kEnvelopeDelivered && HasRecipient(e, agency)) ||
                  (e.event == AuditEvent::kEnvelopeAcked && e.actor == agency) ||
                  (e.event == AuditEvent::kEnvelopeOpened && e.actor == agency);
    if (!access) return;
    AuditRow r = RowOf(e);
    if (e.event == AuditEvent::kEnvelopeOpened) r.note = "opened by operator " + e.operator_ref;
    result.rows.push_back(std::move(r));
  }));
  for (auto& r : result.rows) Join(r, info);
  return result;
}

Result<QueryResult> QueryUnconsented(const LocalAuditStore& store) {
  QueryResult result;
  struct Grant {
    std::optional<AuditEntry> granted;
    std::optional<AuditEntry> revoked;
  };
  std::map<Bytes, Grant> grants;
  std::vector<AuditEntry> opened;
  REFBUS_RETURN_IF_ERROR(ScanForQuery(store, result, [&](const AuditEntry& e) {
    switch (e.event) {
      case AuditEvent::kConsentGranted:
        if (!grants[e.consent_grant_id].granted) grants[e.consent_grant_id].granted = e;
        break;
      case AuditEvent::kConsentRevoked:
        if (!grants[e.consent_grant_id].revoked) grants[e.consent_grant_id].revoked = e;
        break;
      case AuditEvent::kEnvelopeOpened:
        opened.push_back(e);
        break;
      default:
        break;
    }
  }));
  for (const AuditEntry& o : opened) {
    std::string why;
    auto it = grants.find(o.consent_grant_id);
    if (o.consent_grant_id.empty()) {
      why = "names no consent grant";
    } else if (it == grants.end() || !it->second.granted) {
      why = "consent grant " + Hex(o.consent_grant_id) + " was never granted in this log";
    } else if (it->second.granted->index > o.index) {
      why = "consent grant " + Hex(o.consent_grant_id) + " was granted only after this access " +
            "(entry " + std::to_string(it->second.granted->index) + ")";
    } else if (it->second.revoked && it->second.revoked->index < o.index) {
      why = "consent grant " + Hex(o.consent_grant_id) + " was revoked before this access " +
            "(entry " + std::to_string(it->second.revoked->index) + ", " +
            FormatUtc(it->second.revoked->time_ms) + ")";
    } else {
      continue;
    }
    AuditRow r = RowOf(o);
    r.note = std::move(why);
    result.rows.push_back(std::move(r));
  }
  return result;
}

Result<QueryResult> QueryOverrides(const LocalAuditStore& store) {
  QueryResult result;
  std::map<Bytes, uint64_t> emergency;  // grant id -> its CONSENT_GRANTED index
  std::map<Bytes, Bytes> message_grant;
  std::map<Bytes, MessageInfo> info;
  REFBUS_RETURN_IF_ERROR(ScanForQuery(store, result, [&](const AuditEntry& e) {
    if (e.event == AuditEvent::kConsentGranted && e.emergency_override) {
      emergency.emplace(e.consent_grant_id, e.index);
      AuditRow r = RowOf(e);
      r.group = Hex(e.consent_grant_id);
      r.note = "EMERGENCY OVERRIDE granted: " + e.detail;
      result.rows.push_back(std::move(r));
      return;
    }
    Bytes grant;
    if (!e.consent_grant_id.empty() && emergency.count(e.consent_grant_id) != 0) {
      grant = e.consent_grant_id;
      if (!e.message_id.empty()) {
        message_grant[e.message_id] = grant;
        if (e.event == AuditEvent::kEnvelopeAccepted) info[e.message_id] = InfoOf(e);
      }
    } else if (!e.message_id.empty()) {
      auto it = message_grant.find(e.message_id);
      if (it == message_grant.end()) return;
      grant = it->second;
    } else {
      return;
    }
    AuditRow r = RowOf(e);
    r.group = Hex(grant);
    if (e.event == AuditEvent::kEnvelopeAccepted) r.note = "shared under the override";
    result.rows.push_back(std::move(r));
  }));
  for (auto& r : result.rows) Join(r, info);
  // Grouped by grant, in the order the grants were made; log order within each.
  std::map<std::string, uint64_t> order;
  for (const auto& [grant, index] : emergency) order[Hex(grant)] = index;
  std::stable_sort(
      result.rows.begin(), result.rows.end(),
      [&](const AuditRow& a, const AuditRow& b) { return order.at(a.group) < order.at(b.group); });
  return result;
}

std::string CsvField(std::string_view s) {
  // A spreadsheet runs a cell that starts with one of these as a formula: text from the
  // log (case references, details written by other agencies) is kept as text.
  const bool formula =
      !s.empty() && std::string_view("=+-@\t\r").find(s[0]) != std::string_view::npos;
  if (!formula && s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
  std::string out = formula ? "\"'" : "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

void PrintRows(const QueryResult& result, OutputFormat format, std::ostream& out) {
  if (format == OutputFormat::kJson) {
    json rows = json::array();
    for (const AuditRow& r : result.rows) {
      const AuditEntry& e = r.entry;
      rows.push_back({{"index", e.index},
                      {"time", FormatUtc(e.time_ms)},
                      {"time_ms", e.time_ms},
                      {"event", std::string(schema::Name(e.event))},
                      {"actor", e.actor},
                      {"message_id", Hex(e.message_id)},
                      {"case_ref", r.case_ref},
                      {"sender_id", r.sender_id},
                      {"recipients", e.recipients},
                      {"consent_grant_id", Hex(r.consent_grant_id)},
                      {"kind", std::string(schema::Name(r.kind))},
                      {"purpose", std::string(schema::Name(e.purpose))},
                      {"reason", std::string(schema::Name(e.reason))},
                      {"operator_ref", e.operator_ref},
                      {"emergency_override", e.emergency_override},
                      {"statement_sha256", Hex(e.statement_sha256)},
                      {"detail", e.detail},
                      {"group", r.group},
                      {"note", r.note}});
    }
    out << json{{"checkpoint_size", result.checkpoint_size},
                {"entries_scanned", result.entries_scanned},
                {"rows", rows}}
               .dump(2)
        << "\n";
    return;
  }
  if (format == OutputFormat::kCsv) {
    out << "index,time,event,actor,message_id,case_ref,sender_id,recipients,consent_grant_id,"
           "kind,purpose,reason,operator_ref,emergency_override,detail,group,note\r\n";
    for (const AuditRow& r : result.rows) {
      const AuditEntry& e = r.entry;
      std::vector<std::string> f = {std::to_string(e.index),
                                    FormatUtc(e.time_ms),
                                    std::string(schema::Name(e.event)),
                                    e.actor,
                                    Hex(e.message_id),
                                    r.case_ref,
                                    r.sender_id,
                                    Recipients(e, ";"),
                                    Hex(r.consent_grant_id),
                                    std::string(schema::Name(r.kind)),
                                    std::string(schema::Name(e.purpose)),
                                    std::string(schema::Name(e.reason)),
                                    e.operator_ref,
                                    e.emergency_override ? "true" : "false",
                                    e.detail,
                                    r.group,
                                    r.note};
      for (size_t i = 0; i < f.size(); ++i) out << (i ? "," : "") << CsvField(f[i]);
      out << "\r\n";
    }
    return;
  }
  Table t({"INDEX", "TIME", "EVENT", "ACTOR", "MESSAGE", "CASE", "SENDER", "RECIPIENTS", "GRANT",
           "KIND", "OPERATOR", "NOTE"});
  for (const AuditRow& r : result.rows) {
    const AuditEntry& e = r.entry;
    std::string note = r.note.empty() ? e.detail : r.note;
    if (note.size() > 100) note = note.substr(0, 97) + "...";
    t.AddRow({std::to_string(e.index), FormatUtc(e.time_ms), std::string(schema::Name(e.event)),
              OrDash(e.actor), ShortId(e.message_id), OrDash(r.case_ref), OrDash(r.sender_id),
              OrDash(Recipients(e, ",")), ShortId(r.consent_grant_id),
              r.kind == schema::MessageKind::kUnspecified ? "-" : std::string(schema::Name(r.kind)),
              OrDash(e.operator_ref), OrDash(note)});
  }
  t.Print(out);
  out << "\n"
      << result.rows.size() << " rows from " << result.entries_scanned
      << " entries (the log of the latest stored checkpoint, size " << result.checkpoint_size
      << ")\n";
}

Result<UnixMillis> ParseTime(std::string_view text) {
  const std::string s(text);
  if (!s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (s.size() > 15) return InvalidArgument("time '" + s + "' is too large");
    return static_cast<UnixMillis>(std::stoull(s));
  }
  // Fixed positions: "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SSZ", digits where digits go.
  auto num = [&](size_t pos, size_t len) {
    int v = 0;
    for (size_t i = pos; i < pos + len; ++i) {
      if (s[i] < '0' || s[i] > '9') return -1;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  const bool date_only = s.size() == 10;
  const bool full = s.size() == 20 && s[10] == 'T' && s[13] == ':' && s[16] == ':' && s[19] == 'Z';
  int y = -1, mo = -1, d = -1, h = 0, mi = 0, sec = 0;
  if ((date_only || full) && s[4] == '-' && s[7] == '-') {
    y = num(0, 4);
    mo = num(5, 2);
    d = num(8, 2);
    if (full) {
      h = num(11, 2);
      mi = num(14, 2);
      sec = num(17, 2);
    }
  }
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
      sec < 0 || sec > 59) {
    return InvalidArgument("time '" + s +
                           "' is not YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ (UTC) or Unix milliseconds");
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  std::time_t t = timegm(&tm);
  if (t < 0 || tm.tm_mday != d) return InvalidArgument("time '" + s + "' is not a real date");
  return static_cast<UnixMillis>(t) * kMillisPerSecond;
}

}  // namespace refbus::agent
