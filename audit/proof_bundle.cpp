#include "audit/proof_bundle.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <set>

#include "audit/scan.h"
#include "audit/verify.h"
#include "keys/crypto.h"
#include "keys/strict_json.h"
#include "schema/codec.h"

namespace refbus::audit {
namespace {

using json = nlohmann::json;
using schema::AuditEntry;
using schema::AuditEvent;

namespace strict_json = keys::strict_json;
using strict_json::ExactKeys;

}  // namespace

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
    for (const auto& h : proof) hashes.push_back(HexEncode(h));
    auto e = schema::DecodeAuditEntry(bytes);
    entries.push_back({{"index", index},
                       {"event", std::string(schema::Name(e->event))},
                       {"time", FormatUtc(e->time_ms)},
                       {"actor", e->actor},
                       {"entry", HexEncode(bytes)},
                       {"proof", hashes}});
  }
  if (entries.empty()) {
    return NotFound("no entry of the first " + std::to_string(size) + " of " + log_keys.origin +
                    " concerns message " + HexEncode(message_id));
  }
  json bundle = {{"format", std::string(kProofBundleFormat)},
                 {"broker_id", log_keys.broker_id},
                 {"origin", log_keys.origin},
                 {"broker_key_fingerprint", fingerprint},
                 {"message_id", HexEncode(message_id)},
                 {"checkpoint", note},
                 {"tree_size", size},
                 {"root", HexEncode(best->checkpoint.root)},
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
  REFBUS_ASSIGN_OR_RETURN(std::string format, strict_json::String(b, "format"));
  if (format != kProofBundleFormat) {
    return InvalidArgument("not a " + std::string(kProofBundleFormat) + " bundle");
  }
  CheckedProof out;
  REFBUS_ASSIGN_OR_RETURN(out.broker_id, strict_json::String(b, "broker_id"));
  REFBUS_ASSIGN_OR_RETURN(LogKeys log_keys, BrokerLogKeys(directory, out.broker_id));
  REFBUS_ASSIGN_OR_RETURN(std::string origin, strict_json::String(b, "origin"));
  if (origin != log_keys.origin) {
    return InvalidArgument("the bundle names log '" + origin + "', but broker " + out.broker_id +
                           "'s log in this federation is '" + log_keys.origin + "'");
  }
  out.origin = origin;
  REFBUS_ASSIGN_OR_RETURN(std::string note, strict_json::String(b, "checkpoint"));
  auto cp = OpenLogCheckpoint(note, log_keys, &out.key_fingerprint);
  if (!cp.ok()) {
    return Unauthenticated("the bundle's checkpoint does not verify with broker " + out.broker_id +
                           "'s directory key: " + cp.status().message());
  }
  REFBUS_ASSIGN_OR_RETURN(std::string fingerprint,
                          strict_json::String(b, "broker_key_fingerprint"));
  if (fingerprint != out.key_fingerprint) {
    return InvalidArgument("the checkpoint is signed by key " + out.key_fingerprint +
                           ", the bundle says " + fingerprint);
  }
  REFBUS_ASSIGN_OR_RETURN(out.tree_size, strict_json::Unsigned(b, "tree_size"));
  if (out.tree_size != cp->checkpoint.size) {
    return InvalidArgument("the bundle says tree size " + std::to_string(out.tree_size) +
                           ", its checkpoint " + std::to_string(cp->checkpoint.size));
  }
  REFBUS_ASSIGN_OR_RETURN(Bytes root,
                          strict_json::Hex(b.at("root"), "root", keys::kMerkleHashBytes));
  if (!std::equal(root.begin(), root.end(), cp->checkpoint.root.begin())) {
    return InvalidArgument("the bundle's root is not its checkpoint's");
  }
  REFBUS_ASSIGN_OR_RETURN(
      out.message_id, strict_json::Hex(b.at("message_id"), "message_id", schema::kMessageIdBytes));
  const json& entries = b.at("entries");
  if (!entries.is_array() || entries.empty()) {
    return InvalidArgument("the bundle proves no entry");
  }
  std::chrono::nanoseconds verify_time{0};
  std::set<uint64_t> seen;
  for (const json& item : entries) {
    REFBUS_RETURN_IF_ERROR(ExactKeys(item, {"index", "event", "time", "actor", "entry", "proof"},
                                     "an entry of the proof bundle"));
    REFBUS_ASSIGN_OR_RETURN(uint64_t index, strict_json::Unsigned(item, "index"));
    const std::string at = "entry " + std::to_string(index);
    if (index >= out.tree_size || !seen.insert(index).second) {
      return InvalidArgument(at + " is beyond the tree or listed twice");
    }
    REFBUS_ASSIGN_OR_RETURN(Bytes bytes, strict_json::Hex(item.at("entry"), "entry", 0));
    auto e = schema::DecodeAuditEntry(bytes);
    if (!e.ok()) return InvalidArgument(at + " does not decode: " + e.status().message());
    if (e->index != index || e->message_id != out.message_id || e->broker_id != out.broker_id) {
      return InvalidArgument(at + ": its signed bytes say index " + std::to_string(e->index) +
                             ", message " + HexEncode(e->message_id) + ", broker " + e->broker_id);
    }
    REFBUS_ASSIGN_OR_RETURN(std::string event, strict_json::String(item, "event"));
    REFBUS_ASSIGN_OR_RETURN(std::string time, strict_json::String(item, "time"));
    REFBUS_ASSIGN_OR_RETURN(std::string actor, strict_json::String(item, "actor"));
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
      REFBUS_ASSIGN_OR_RETURN(Bytes hb, strict_json::Hex(h, "proof", keys::kMerkleHashBytes));
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

}  // namespace refbus::audit
