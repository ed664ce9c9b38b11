#include "keys/tally_bundle.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "core/hash.h"
#include "keys/checkpoint.h"
#include "keys/strict_json.h"
#include "keys/witness.h"
#include "schema/codec.h"

namespace refbus::keys {
namespace {

using json = nlohmann::json;

json EvidenceObject(const TallyEvidence& e) {
  json proof = json::array();
  for (const Hash& h : e.proof) proof.push_back(HexEncode(h));
  return {{"agency", e.agency},        {"tally", e.signed_tally},     {"broker_id", e.broker_id},
          {"index", e.index},          {"entry", HexEncode(e.entry)}, {"proof", proof},
          {"checkpoint", e.checkpoint}};
}

Result<TallyEvidence> EvidenceFromObject(const json& o) {
  namespace sj = strict_json;
  REFBUS_RETURN_IF_ERROR(sj::ExactKeys(
      o, {"agency", "tally", "broker_id", "index", "entry", "proof", "checkpoint"}, "a tally"));
  TallyEvidence e;
  REFBUS_ASSIGN_OR_RETURN(e.agency, sj::String(o, "agency"));
  REFBUS_ASSIGN_OR_RETURN(e.signed_tally, sj::String(o, "tally"));
  REFBUS_ASSIGN_OR_RETURN(e.broker_id, sj::String(o, "broker_id"));
  REFBUS_ASSIGN_OR_RETURN(e.index, sj::Unsigned(o, "index"));
  REFBUS_ASSIGN_OR_RETURN(e.entry, sj::Hex(o.at("entry"), "entry", 0));
  REFBUS_ASSIGN_OR_RETURN(e.checkpoint, sj::String(o, "checkpoint"));
  if (e.signed_tally.empty() || e.signed_tally.size() > schema::kMaxSignedTallyBytes ||
      e.entry.empty() || e.entry.size() > kMaxTallyEntryBytes || e.checkpoint.empty() ||
      e.checkpoint.size() > schema::kMaxAuditNoteBytes || e.agency.empty() ||
      e.agency.size() > 128 || e.broker_id.empty() || e.broker_id.size() > 128) {
    return InvalidArgument(
        "a tally's agency, tally, broker, entry or checkpoint is empty or "
        "over its size limit");
  }
  const json& hashes = o.at("proof");
  if (!hashes.is_array() || hashes.size() > kMaxTreeHeight) {
    return InvalidArgument("a tally's proof is not a list of at most 64 hashes");
  }
  for (const json& h : hashes) {
    REFBUS_ASSIGN_OR_RETURN(Bytes b, sj::Hex(h, "proof", kMerkleHashBytes));
    Hash hash;
    std::copy(b.begin(), b.end(), hash.begin());
    e.proof.push_back(hash);
  }
  return e;
}

// The checkpoint opened with the broker's directory keys (any failing cosignature by a
// directory witness refuses it), and the witnesses whose cosignatures verified.
Result<VerifiedCheckpoint> OpenTallyCheckpoint(const TallyEvidence& ev,
                                               const schema::Directory& directory,
                                               std::vector<std::string>* cosigners) {
  REFBUS_ASSIGN_OR_RETURN(std::string origin, LogOrigin(directory.federation, ev.broker_id));
  REFBUS_ASSIGN_OR_RETURN(auto log_keys, LogVerifiers(directory, ev.broker_id));
  REFBUS_ASSIGN_OR_RETURN(auto witnesses, WitnessKeys(directory, ev.broker_id));
  std::vector<NoteVerifier> witness_verifiers;
  for (const auto& w : witnesses) witness_verifiers.push_back(w.verifier);
  Status first = NotFound("broker " + ev.broker_id + " has no signing key");
  for (const NoteVerifier& v : log_keys) {
    auto cp = OpenCheckpoint(ev.checkpoint, origin, v, witness_verifiers, 0);
    if (!cp.ok()) {
      if (first.code() == Status::Code::kNotFound) first = cp.status();
      continue;
    }
    for (const VerifiedSignature& s : cp->cosignatures) {
      for (const auto& w : witnesses) {
        if (w.verifier.name() == s.name && w.verifier.key_id() == s.key_id &&
            std::find(cosigners->begin(), cosigners->end(), w.party_id) == cosigners->end()) {
          cosigners->push_back(w.party_id);
        }
      }
    }
    return cp;
  }
  return first;
}

// The entry is the agency's LINKAGE_TALLY at ev.index in ev.broker_id's log, and commits to
// exactly ev.signed_tally.
Status CheckTallyEntry(const TallyEvidence& ev) {
  auto e = schema::DecodeAuditEntry(ev.entry);
  if (!e.ok()) return InvalidArgument("its log entry does not decode: " + e.status().message());
  if (e->event != schema::AuditEvent::kLinkageTally || e->index != ev.index ||
      e->broker_id != ev.broker_id || e->actor != ev.agency) {
    return InvalidArgument("its log entry is not a linkage-tally entry of " + ev.agency +
                           " at index " + std::to_string(ev.index) + " of " + ev.broker_id +
                           " (it is " + std::string(schema::Name(e->event)) + " of '" + e->actor +
                           "' at index " + std::to_string(e->index) + ")");
  }
  if (e->statement_sha256 != Sha256(AsBytes(ev.signed_tally))) {
    return InvalidArgument(
        "the log entry commits to another tally (its SHA-256 is not this "
        "tally's): this tally is not in " +
        ev.broker_id + "'s log");
  }
  return Status::Ok();
}

}  // namespace

std::string TallyEvidenceJson(const TallyEvidence& evidence) {
  return EvidenceObject(evidence).dump(1) + "\n";
}

Result<TallyEvidence> ParseTallyEvidence(std::string_view json_text) {
  json o = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (o.is_discarded()) return Malformed("the tally evidence is not valid JSON");
  return EvidenceFromObject(o);
}

std::string MakeTallyBundle(ByteView linkage_id, const std::vector<TallyEvidence>& tallies) {
  json list = json::array();
  for (const auto& t : tallies) list.push_back(EvidenceObject(t));
  return json{{"format", std::string(kTallyBundleFormat)},
              {"linkage_id", HexEncode(linkage_id)},
              {"tallies", list}}
             .dump(2) +
         "\n";
}

Result<ParsedTallyBundle> ParseTallyBundle(std::string_view text) {
  if (text.size() > kMaxTallyBundleBytes) return InvalidArgument("the bundle is over 8 MiB");
  json b = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (b.is_discarded()) return Malformed("the linkage bundle is not valid JSON");
  REFBUS_RETURN_IF_ERROR(
      strict_json::ExactKeys(b, {"format", "linkage_id", "tallies"}, "the linkage bundle"));
  REFBUS_ASSIGN_OR_RETURN(std::string format, strict_json::String(b, "format"));
  if (format != kTallyBundleFormat) {
    return InvalidArgument("not a " + std::string(kTallyBundleFormat) + " bundle");
  }
  ParsedTallyBundle out;
  REFBUS_ASSIGN_OR_RETURN(out.linkage_id,
                          strict_json::Hex(b.at("linkage_id"), "linkage_id", kTallyLinkageIdBytes));
  const json& list = b.at("tallies");
  if (!list.is_array() || list.empty() || list.size() > kMaxBundleTallies) {
    return InvalidArgument("the bundle's tallies are not a list of 1 to 64");
  }
  for (const json& item : list) {
    auto e = EvidenceFromObject(item);
    if (!e.ok()) {
      return e.status().WithContext("tally " + std::to_string(out.tallies.size() + 1));
    }
    out.tallies.push_back(std::move(*e));
  }
  return out;
}

Result<CheckedTally> CheckTallyEvidence(const TallyEvidence& ev, ByteView linkage_id,
                                        const schema::Directory& directory, UnixMillis now) {
  CheckedTally out;
  out.agency = ev.agency;
  out.broker_id = ev.broker_id;
  out.index = ev.index;
  auto tally = VerifyLinkageTally(ev.signed_tally, directory, now);
  if (!tally.ok()) return tally.status().WithContext("its signature");
  if (tally->agency != ev.agency) {
    return InvalidArgument("the signed tally is " + tally->agency + "'s, the bundle says " +
                           ev.agency + "'s");
  }
  if (!std::ranges::equal(tally->linkage_id, linkage_id)) {
    return InvalidArgument("the tally is about linkage " + HexEncode(tally->linkage_id) +
                           ", the bundle about " + HexEncode(linkage_id));
  }
  REFBUS_RETURN_IF_ERROR(CheckTallyEntry(ev));
  auto cp = OpenTallyCheckpoint(ev, directory, &out.cosigners);
  if (!cp.ok()) {
    return Unauthenticated("its checkpoint does not verify with broker " + ev.broker_id +
                           "'s directory keys: " + cp.status().message());
  }
  out.tree_size = cp->checkpoint.size;
  if (ev.index >= out.tree_size) {
    return InvalidArgument("its entry " + std::to_string(ev.index) +
                           " is beyond the checkpoint of size " + std::to_string(out.tree_size));
  }
  Status s =
      VerifyInclusion(LeafHash(ev.entry), ev.index, out.tree_size, ev.proof, cp->checkpoint.root);
  if (!s.ok()) {
    return Unauthenticated("its entry is not in the signed checkpoint of size " +
                           std::to_string(out.tree_size) + ": " + s.message());
  }
  out.tally = std::move(*tally);
  return out;
}

Result<CheckedTallyBundle> CheckTallyBundle(std::string_view text,
                                            const schema::Directory& directory, UnixMillis now) {
  REFBUS_ASSIGN_OR_RETURN(ParsedTallyBundle b, ParseTallyBundle(text));
  CheckedTallyBundle out;
  out.linkage_id = b.linkage_id;
  std::set<std::string> agencies;
  for (const TallyEvidence& ev : b.tallies) {
    auto c = CheckTallyEvidence(ev, b.linkage_id, directory, now);
    if (c.ok() && !agencies.insert(ev.agency).second) {
      c = InvalidArgument("a second tally of " + ev.agency + " in the bundle");
    }
    if (!c.ok()) {
      CheckedTally failed;
      failed.agency = ev.agency;
      failed.broker_id = ev.broker_id;
      failed.index = ev.index;
      failed.problem = c.status().message();
      ++out.failed;
      out.tallies.push_back(std::move(failed));
      continue;
    }
    const LinkageTally& t = *c->tally;
    out.victims += t.victims;
    out.deletion_items += t.deletion_items;
    if (out.from_date.empty() || t.from_date < out.from_date) out.from_date = t.from_date;
    if (out.to_date.empty() || t.to_date > out.to_date) out.to_date = t.to_date;
    out.tallies.push_back(std::move(*c));
  }
  return out;
}

}  // namespace refbus::keys
