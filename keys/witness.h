// Witnessing audit-log checkpoints (c2sp.org/tlog-witness, carried by refbus frames:
// schema/PROTOCOL.md section 11.3): the rules a witness applies before it cosigns a log's
// checkpoint, what it remembers per log, the evidence it keeps when a log shows it two
// views that cannot both be true, and the directory lookups that name logs and witnesses.
//
// Names. A broker's log is "refbus/<federation>/<broker-id>" (its checkpoint origin and the
// key name of its own signatures, broker/audit_log.h). A witness cosigns as
// "refbus/<federation>/witness/<party-id>" with the Ed25519 signing key the directory lists
// for it (cosignature/v1, keys/checkpoint.h). The forms never collide (an origin has three
// '/'-separated parts, a witness name four), so the log's signature and the cosignatures
// of a note are told apart by name alone, also by tools that know nothing of refbus.
// Witnesses are the active parties with the witness role (brokers and auditors); a log is
// never its own witness.
//
// The rules (DecideWitness), in the order c2sp.org/tlog-witness gives them:
//   1. the note is a checkpoint of the expected origin (else kUnknownLog) with a valid
//      signature by a key the directory lists for the log (else kBadSignature); signature
//      lines by other keys are ignored;
//   2. old_size equals the size of the last checkpoint this witness cosigned for the
//      origin, 0 when it never cosigned one (else kConflict, carrying the witness's size:
//      the log retries with a proof from there - the protocol's 409);
//   3. old_size is not above the checkpoint's size, and the proof is empty where it must be
//      (old_size 0, or equal sizes) (else kBadRequest);
//   4. the consistency proof from (old_size, remembered root) to the checkpoint verifies
//      (RFC 9162 2.1.4.2; for equal sizes the roots must be equal) - else kInconsistent: the
//      log has signed two checkpoints no honest log can join; the witness keeps both as
//      evidence and reports it;
//   5. kCosign: the witness makes the checkpoint its new state *before* the cosignature
//      leaves it, so no cosignature exists that its state does not account for.
// A witness's state never moves backwards and it never cosigns two checkpoints of one
// origin that are inconsistent with each other, provided each decision and its state
// update are one atomic step (the callers use one LMDB write transaction).
//
// Storage forms (state, evidence) are SHA-256(body) || body with a version byte first in
// body, checked on every read (LMDB has no page checksums).
//
// Secrets: CosignDecided signs with the Identity's key in place (keys/checkpoint.h).
// Thread safety: free functions over values; thread-safe.
#ifndef REFBUS_KEYS_WITNESS_H_
#define REFBUS_KEYS_WITNESS_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/clock.h"
#include "core/status.h"
#include "keys/checkpoint.h"
#include "keys/identity.h"
#include "keys/merkle.h"
#include "schema/types.h"

namespace refbus::keys {

// ---- Names and keys from the directory -----------------------------------------------

// "refbus/<federation>/<broker-id>"; InvalidArgument if that is not a valid note key name.
Result<std::string> LogOrigin(std::string_view federation, std::string_view broker_id);
// "refbus/<federation>/witness/<witness-id>"; InvalidArgument likewise.
Result<std::string> WitnessName(std::string_view federation, std::string_view witness_id);

// The keys that may sign broker_id's checkpoints: its ACTIVE and RETIRED signing keys as
// Ed25519 note keys named by its origin. NotFound if broker_id is not a broker in
// directory; Revoked if it is revoked or has no unrevoked key.
Result<std::vector<NoteVerifier>> LogVerifiers(const schema::Directory& directory,
                                               std::string_view broker_id);

struct WitnessKey {
  std::string party_id;
  NoteVerifier verifier;  // cosignature/v1, named WitnessName(federation, party_id)
};

// Every witness's cosignature keys (ACTIVE and RETIRED signing keys of active parties with
// the witness role), except those of the party except_id (a log's own broker).
Result<std::vector<WitnessKey>> WitnessKeys(const schema::Directory& directory,
                                            std::string_view except_id = {});
// The keys of one witness. NotFound unless witness_id is an active party with the witness
// role.
Result<std::vector<NoteVerifier>> WitnessVerifiersOf(const schema::Directory& directory,
                                                     std::string_view witness_id);

// ---- The witness's state, per origin ----------------------------------------------------

struct WitnessState {
  std::string origin;
  uint64_t size = 0;  // of the last checkpoint cosigned
  Hash root{};
  std::string note;  // that checkpoint's signed note, as the log sent it (evidence)
  uint64_t cosigned_at_s = 0;
};

Bytes EncodeWitnessState(const WitnessState& state);
// Malformed (naming what) for a record that is damaged or whose note does not say size
// and root.
Result<WitnessState> DecodeWitnessState(ByteView stored);

// ---- Deciding --------------------------------------------------------------------------

enum class WitnessVerdict : uint8_t {
  kCosign,
  kConflict,      // old_size is not the witness's size (409)
  kUnknownLog,    // not a checkpoint of the expected origin (404)
  kBadSignature,  // no trusted log key signed it (403)
  kBadRequest,    // old_size above the checkpoint's size, or a proof where none belongs (400)
  kInconsistent,  // the proof does not join the remembered checkpoint to this one (422)
};
std::string_view Name(WitnessVerdict verdict);

struct WitnessDecision {
  WitnessVerdict verdict = WitnessVerdict::kBadRequest;
  std::string detail;         // for logs and the reply: sizes, roots and key names only
  uint64_t witness_size = 0;  // the last cosigned size, before this request
  Checkpoint checkpoint;      // the offered checkpoint, once its signature verified
  std::string body;           // its signed text
};

// Applies rules 1-4 to a request (note, old_size, proof) for the log named origin, given
// the witness's state for it (nullptr: none yet) and the log's keys. Never fails: every
// outcome is a verdict.
WitnessDecision DecideWitness(const WitnessState* last, std::string_view note,
                              std::string_view origin, std::span<const NoteVerifier> log_keys,
                              uint64_t old_size, std::span<const Hash> proof);

struct Cosigned {
  WitnessState state;  // to store before line is handed out
  NoteSignature signature;
  std::string line;  // "— <witness name> <base64>\n"
};

// The cosignature for a kCosign decision, at now_s (POSIX seconds), and the new state.
// REQUIRES: decision.verdict == kCosign and note is the note it was made from.
Result<Cosigned> CosignDecided(const WitnessDecision& decision, std::string_view note,
                               std::string_view witness_name, const Identity& witness,
                               uint64_t now_s);

// ---- Evidence --------------------------------------------------------------------------

// What a witness keeps when it refuses a checkpoint as inconsistent: both signed notes,
// the request's proof, who sent it and when.
struct WitnessEvidence {
  std::string origin;
  std::string requester;  // the party that sent the request (or "" for a pull)
  UnixMillis time_ms = 0;
  std::string cosigned_note;  // the witness's state: the last checkpoint it cosigned
  std::string offered_note;   // the refused checkpoint
  uint64_t old_size = 0;
  std::vector<Hash> proof;
  std::string detail;
};

Bytes EncodeWitnessEvidence(const WitnessEvidence& evidence);
Result<WitnessEvidence> DecodeWitnessEvidence(ByteView stored);

}  // namespace refbus::keys

#endif  // REFBUS_KEYS_WITNESS_H_
