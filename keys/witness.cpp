#include "keys/witness.h"

#include <algorithm>
#include <cstring>

#include "core/hash.h"

namespace refbus::keys {
namespace {

constexpr uint8_t kStateVersion = 1;
constexpr uint8_t kEvidenceVersion = 1;

std::string Describe(uint64_t size, const Hash& root) {
  return "(size " + std::to_string(size) + ", root " + HexEncode(root) + ")";
}

Bytes Sealed(const Bytes& body) {
  Bytes out = Sha256(body);
  Append(out, body);
  return out;
}

// Checks the SHA-256 in front of a stored record and returns the body after it.
Result<ByteView> Unseal(ByteView stored, std::string_view what) {
  if (stored.size() < kSha256DigestBytes + 1) return Malformed(std::string(what) + " is too short");
  ByteView body = stored.subspan(kSha256DigestBytes);
  Sha256Digest h = Sha256Array(body);
  if (!std::equal(h.begin(), h.end(), stored.begin())) {
    return Malformed(std::string(what) + " is damaged (hash mismatch)");
  }
  return body;
}

// Sequential reads over a record body; every read checks the length left.
class BodyReader {
 public:
  BodyReader(ByteView b, std::string_view what) : b_(b), what_(what) {}
  Result<uint8_t> U8() {
    REFBUS_RETURN_IF_ERROR(Need(1));
    return b_[pos_++];
  }
  Result<uint64_t> U64() {
    REFBUS_RETURN_IF_ERROR(Need(8));
    uint64_t v = 0;
    for (size_t i = 0; i < 8; ++i) v = (v << 8) | b_[pos_ + i];
    pos_ += 8;
    return v;
  }
  Result<uint32_t> U32() {
    REFBUS_RETURN_IF_ERROR(Need(4));
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = (v << 8) | b_[pos_ + i];
    pos_ += 4;
    return v;
  }
  Result<ByteView> Fixed(size_t n) {
    REFBUS_RETURN_IF_ERROR(Need(n));
    ByteView v = b_.subspan(pos_, n);
    pos_ += n;
    return v;
  }
  Result<std::string> String() {
    REFBUS_ASSIGN_OR_RETURN(uint32_t n, U32());
    REFBUS_ASSIGN_OR_RETURN(ByteView v, Fixed(n));
    return std::string(AsChars(v));
  }
  Status End() const {
    if (pos_ != b_.size()) return Malformed(std::string(what_) + " has trailing bytes");
    return Status::Ok();
  }

 private:
  Status Need(size_t n) const {
    if (b_.size() - pos_ < n) return Malformed(std::string(what_) + " is truncated");
    return Status::Ok();
  }
  ByteView b_;
  std::string_view what_;
  size_t pos_ = 0;
};

// The verifiers of one party's unrevoked signing keys under name, of type.
Result<std::vector<NoteVerifier>> PartyNoteKeys(const schema::Party& p, const std::string& name,
                                                NoteKeyType type) {
  std::vector<NoteVerifier> out;
  for (const auto& rec : p.keys) {
    if (rec.state != schema::KeyState::kActive && rec.state != schema::KeyState::kRetired) {
      continue;
    }
    REFBUS_ASSIGN_OR_RETURN(auto v, NoteVerifier::Create(name, type, rec.signing_key));
    out.push_back(std::move(v));
  }
  return out;
}

bool IsWitness(const schema::Party& p) {
  return p.status == schema::PartyStatus::kActive && p.HasRole(schema::Role::kWitness) &&
         (p.kind == schema::PartyKind::kBroker || p.kind == schema::PartyKind::kAuditor);
}

}  // namespace

// ---- Names and keys ------------------------------------------------------------------------

Result<std::string> LogOrigin(std::string_view federation, std::string_view broker_id) {
  std::string origin = "refbus/" + std::string(federation) + "/" + std::string(broker_id);
  if (!IsValidKeyName(origin)) {
    return InvalidArgument("log origin '" + origin +
                           "' is not a valid note key name (no spaces, '+' or control "
                           "characters; at most 255 bytes): check the federation name");
  }
  return origin;
}

Result<std::string> WitnessName(std::string_view federation, std::string_view witness_id) {
  std::string name = "refbus/" + std::string(federation) + "/witness/" + std::string(witness_id);
  if (!IsValidKeyName(name)) {
    return InvalidArgument("witness name '" + name + "' is not a valid note key name");
  }
  return name;
}

Result<std::vector<NoteVerifier>> LogVerifiers(const schema::Directory& directory,
                                               std::string_view broker_id) {
  const schema::Party* p = directory.Find(broker_id);
  if (p == nullptr || p->kind != schema::PartyKind::kBroker) {
    return NotFound("'" + std::string(broker_id) + "' is not a broker in directory serial " +
                    std::to_string(directory.serial));
  }
  if (p->status != schema::PartyStatus::kActive) {
    return Revoked("broker " + std::string(broker_id) + " is revoked in directory serial " +
                   std::to_string(directory.serial));
  }
  REFBUS_ASSIGN_OR_RETURN(std::string origin, LogOrigin(directory.federation, broker_id));
  REFBUS_ASSIGN_OR_RETURN(auto out, PartyNoteKeys(*p, origin, NoteKeyType::kEd25519));
  if (out.empty()) {
    return Revoked("broker " + std::string(broker_id) + " has no unrevoked signing key");
  }
  return out;
}

Result<std::vector<WitnessKey>> WitnessKeys(const schema::Directory& directory,
                                            std::string_view except_id) {
  std::vector<WitnessKey> out;
  for (const auto* list : {&directory.brokers, &directory.auditors}) {
    for (const schema::Party& p : *list) {
      if (!IsWitness(p) || p.id == except_id) continue;
      REFBUS_ASSIGN_OR_RETURN(std::string name, WitnessName(directory.federation, p.id));
      REFBUS_ASSIGN_OR_RETURN(auto keys, PartyNoteKeys(p, name, NoteKeyType::kCosignatureV1));
      for (auto& k : keys) out.push_back({p.id, std::move(k)});
    }
  }
  return out;
}

Result<std::vector<NoteVerifier>> WitnessVerifiersOf(const schema::Directory& directory,
                                                     std::string_view witness_id) {
  const schema::Party* p = directory.Find(witness_id);
  if (p == nullptr || !IsWitness(*p)) {
    return NotFound("'" + std::string(witness_id) +
                    "' is not an active witness (a broker or auditor with the witness role) in "
                    "directory serial " +
                    std::to_string(directory.serial));
  }
  REFBUS_ASSIGN_OR_RETURN(std::string name, WitnessName(directory.federation, witness_id));
  return PartyNoteKeys(*p, name, NoteKeyType::kCosignatureV1);
}

// ---- State -------------------------------------------------------------------------------

Bytes EncodeWitnessState(const WitnessState& state) {
  Bytes body;
  body.push_back(kStateVersion);
  AppendLengthPrefixed(body, AsBytes(state.origin));
  AppendU64BigEndian(body, state.size);
  Append(body, state.root);
  AppendU64BigEndian(body, state.cosigned_at_s);
  AppendLengthPrefixed(body, AsBytes(state.note));
  return Sealed(body);
}

Result<WitnessState> DecodeWitnessState(ByteView stored) {
  constexpr std::string_view kWhat = "witness state";
  REFBUS_ASSIGN_OR_RETURN(ByteView body, Unseal(stored, kWhat));
  BodyReader r(body, kWhat);
  REFBUS_ASSIGN_OR_RETURN(uint8_t version, r.U8());
  if (version != kStateVersion) return Malformed("witness state has unknown version");
  WitnessState s;
  REFBUS_ASSIGN_OR_RETURN(s.origin, r.String());
  REFBUS_ASSIGN_OR_RETURN(s.size, r.U64());
  REFBUS_ASSIGN_OR_RETURN(ByteView root, r.Fixed(kMerkleHashBytes));
  std::copy(root.begin(), root.end(), s.root.begin());
  REFBUS_ASSIGN_OR_RETURN(s.cosigned_at_s, r.U64());
  REFBUS_ASSIGN_OR_RETURN(s.note, r.String());
  REFBUS_RETURN_IF_ERROR(r.End());
  // The note is what the size and root were taken from: they must agree.
  auto note = ParseSignedNote(s.note);
  auto cp = note.ok() ? ParseCheckpointBody(note->text) : Result<Checkpoint>(note.status());
  if (!cp.ok()) return Malformed("witness state's note does not parse: " + cp.status().message());
  if (cp->origin != s.origin || cp->size != s.size || cp->root != s.root) {
    return Malformed("witness state's note does not say its origin, size and root");
  }
  return s;
}

// ---- Deciding ------------------------------------------------------------------------------

std::string_view Name(WitnessVerdict verdict) {
  switch (verdict) {
    case WitnessVerdict::kCosign:
      return "cosigned";
    case WitnessVerdict::kConflict:
      return "conflict";
    case WitnessVerdict::kUnknownLog:
      return "unknown-log";
    case WitnessVerdict::kBadSignature:
      return "bad-signature";
    case WitnessVerdict::kBadRequest:
      return "bad-request";
    case WitnessVerdict::kInconsistent:
      return "inconsistent";
  }
  return "?";
}

WitnessDecision DecideWitness(const WitnessState* last, std::string_view note,
                              std::string_view origin, std::span<const NoteVerifier> log_keys,
                              uint64_t old_size, std::span<const Hash> proof) {
  WitnessDecision d;
  d.witness_size = last != nullptr ? last->size : 0;
  auto verdict = [&](WitnessVerdict v, std::string detail) {
    d.verdict = v;
    d.detail = std::move(detail);
    return d;
  };
  // 1. Origin and signature.
  auto parsed = ParseSignedNote(note);
  if (!parsed.ok()) return verdict(WitnessVerdict::kBadRequest, parsed.status().message());
  auto body = ParseCheckpointBody(parsed->text);
  if (!body.ok()) return verdict(WitnessVerdict::kBadRequest, body.status().message());
  if (body->origin != origin) {
    return verdict(WitnessVerdict::kUnknownLog, "the checkpoint is of log '" + body->origin +
                                                    "'; this witness takes only '" +
                                                    std::string(origin) + "' from this party");
  }
  Status first;
  bool signed_ok = false;
  for (const NoteVerifier& k : log_keys) {
    auto opened = OpenCheckpoint(note, origin, k);
    if (opened.ok()) {
      signed_ok = true;
      d.checkpoint = std::move(opened->checkpoint);
      d.body = std::move(opened->body);
      break;
    }
    if (first.ok()) first = opened.status();
  }
  if (!signed_ok) {
    return verdict(WitnessVerdict::kBadSignature,
                   "no key the directory lists for " + std::string(origin) +
                       " signed the checkpoint" + (first.ok() ? "" : " (" + first.message() + ")"));
  }
  const uint64_t size = d.checkpoint.size;
  // 2. The size the log believes this witness has.
  if (old_size != d.witness_size) {
    return verdict(WitnessVerdict::kConflict, "old size " + std::to_string(old_size) +
                                                  " is not the size this witness last "
                                                  "cosigned for " +
                                                  std::string(origin) + ": " +
                                                  std::to_string(d.witness_size));
  }
  // 3. Shapes.
  if (old_size > size) {
    return verdict(WitnessVerdict::kBadRequest,
                   "the checkpoint of size " + std::to_string(size) +
                       " is older than the one this witness cosigned, of size " +
                       std::to_string(old_size));
  }
  if ((old_size == 0 || old_size == size) && !proof.empty()) {
    return verdict(WitnessVerdict::kBadRequest, "a consistency proof from size " +
                                                    std::to_string(old_size) + " to " +
                                                    std::to_string(size) + " must be empty");
  }
  // 4. Consistency with what this witness cosigned.
  const Hash old_root = last != nullptr ? last->root : EmptyRoot();
  Status s = VerifyConsistency(old_size, size, old_root, d.checkpoint.root, proof);
  if (!s.ok()) {
    return verdict(WitnessVerdict::kInconsistent,
                   "checkpoint " + Describe(size, d.checkpoint.root) + " of " +
                       std::string(origin) + " is inconsistent with " +
                       Describe(old_size, old_root) + ", which this witness cosigned (" +
                       s.message() + ")");
  }
  return verdict(WitnessVerdict::kCosign, "checkpoint " + Describe(size, d.checkpoint.root) +
                                              " extends " + Describe(old_size, old_root));
}

Result<Cosigned> CosignDecided(const WitnessDecision& decision, std::string_view note,
                               std::string_view witness_name, const Identity& witness,
                               uint64_t now_s) {
  if (decision.verdict != WitnessVerdict::kCosign) {
    return Internal("cosigning a checkpoint that was not accepted");
  }
  Cosigned out;
  REFBUS_ASSIGN_OR_RETURN(out.signature,
                          CosignCheckpoint(decision.body, witness_name, witness, now_s));
  REFBUS_ASSIGN_OR_RETURN(out.line, FormatSignatureLine(out.signature));
  out.state.origin = decision.checkpoint.origin;
  out.state.size = decision.checkpoint.size;
  out.state.root = decision.checkpoint.root;
  out.state.note = std::string(note);
  out.state.cosigned_at_s = now_s;
  return out;
}

// ---- Evidence ------------------------------------------------------------------------------

Bytes EncodeWitnessEvidence(const WitnessEvidence& e) {
  Bytes body;
  body.push_back(kEvidenceVersion);
  AppendLengthPrefixed(body, AsBytes(e.origin));
  AppendLengthPrefixed(body, AsBytes(e.requester));
  AppendU64BigEndian(body, e.time_ms);
  AppendLengthPrefixed(body, AsBytes(e.cosigned_note));
  AppendLengthPrefixed(body, AsBytes(e.offered_note));
  AppendU64BigEndian(body, e.old_size);
  AppendU32BigEndian(body, static_cast<uint32_t>(e.proof.size()));
  for (const Hash& h : e.proof) Append(body, h);
  AppendLengthPrefixed(body, AsBytes(e.detail));
  return Sealed(body);
}

Result<WitnessEvidence> DecodeWitnessEvidence(ByteView stored) {
  constexpr std::string_view kWhat = "witness evidence";
  REFBUS_ASSIGN_OR_RETURN(ByteView body, Unseal(stored, kWhat));
  BodyReader r(body, kWhat);
  REFBUS_ASSIGN_OR_RETURN(uint8_t version, r.U8());
  if (version != kEvidenceVersion) return Malformed("witness evidence has unknown version");
  WitnessEvidence e;
  REFBUS_ASSIGN_OR_RETURN(e.origin, r.String());
  REFBUS_ASSIGN_OR_RETURN(e.requester, r.String());
  REFBUS_ASSIGN_OR_RETURN(e.time_ms, r.U64());
  REFBUS_ASSIGN_OR_RETURN(e.cosigned_note, r.String());
  REFBUS_ASSIGN_OR_RETURN(e.offered_note, r.String());
  REFBUS_ASSIGN_OR_RETURN(e.old_size, r.U64());
  REFBUS_ASSIGN_OR_RETURN(uint32_t n, r.U32());
  if (n > 2 * kMaxTreeHeight) return Malformed("witness evidence holds too many proof hashes");
  for (uint32_t i = 0; i < n; ++i) {
    REFBUS_ASSIGN_OR_RETURN(ByteView h, r.Fixed(kMerkleHashBytes));
    Hash hash;
    std::copy(h.begin(), h.end(), hash.begin());
    e.proof.push_back(hash);
  }
  REFBUS_ASSIGN_OR_RETURN(e.detail, r.String());
  REFBUS_RETURN_IF_ERROR(r.End());
  return e;
}

}  // namespace refbus::keys
