// Client: the checkpoint an Ack carries (agent/client.h, "Checkpoint in Ack";
// schema/PROTOCOL.md section 6).
#include <spdlog/spdlog.h>

#include "agent/client.h"
#include "keys/checkpoint.h"
#include "keys/witness.h"

namespace refbus::agent {

void Client::NoteCheckpoint(const std::string& note) {
  if (note == last_checkpoint_note_) return;  // the same as the last Ack's: checked already
  last_checkpoint_note_ = note;
  if (!kept_checkpoint_loaded_) {
    auto kept = store_.LatestCheckpoint();
    if (!kept.ok()) {
      ++counters_.store_errors;
      spdlog::error("agent: cannot read the kept checkpoint: {}", kept.status().ToString());
      last_checkpoint_note_.clear();  // try again with the next Ack
      return;
    }
    kept_checkpoint_ = std::move(*kept);
    kept_checkpoint_loaded_ = true;
  }
  auto origin = keys::LogOrigin(directory_.federation, broker_id_);
  auto verifiers = keys::LogVerifiers(directory_, broker_id_);
  Status bad = !origin.ok() ? origin.status() : verifiers.status();
  std::optional<keys::VerifiedCheckpoint> opened;
  if (bad.ok()) {
    bad = Unauthenticated("no signing key the directory lists for " + broker_id_ + " made it");
    for (const keys::NoteVerifier& v : *verifiers) {
      auto c = keys::OpenCheckpoint(note, *origin, v);
      if (c.ok()) {
        opened = std::move(*c);
        break;
      }
      bad = c.status();
    }
  }
  if (!opened) {
    ++counters_.checkpoints_refused;
    spdlog::warn("agent: the checkpoint in broker {}'s Ack does not verify, not kept: {}",
                 broker_id_, bad.ToString());
    return;
  }
  const keys::Checkpoint& cp = opened->checkpoint;
  const Bytes root(cp.root.begin(), cp.root.end());
  if (kept_checkpoint_ && kept_checkpoint_->broker_id == broker_id_) {
    const KeptCheckpoint& k = *kept_checkpoint_;
    if (cp.size < k.size || (cp.size == k.size && root != k.root)) {
      ++counters_.checkpoints_refused;
      spdlog::critical(
          "agent: BROKER {} SENT A CHECKPOINT (size {}, root {}) THAT DOES NOT EXTEND THE ONE "
          "THIS AGENCY KEEPS (size {}, root {}): its audit log was truncated or forked; the kept "
          "one stays (refbus-agent checkpoint --out FILE, for refbus-audit verify --evidence)",
          broker_id_, cp.size, HexEncode(cp.root), k.size, HexEncode(k.root));
      return;
    }
    if (cp.size == k.size) return;  // the same checkpoint, maybe with other cosignatures
  }
  KeptCheckpoint keep;
  keep.broker_id = broker_id_;
  keep.size = cp.size;
  keep.root = root;
  keep.note = note;
  keep.received_ms = SystemClock::Get().NowMillis();
  if (Status s = store_.KeepCheckpoint(keep); !s.ok()) {
    ++counters_.store_errors;
    spdlog::error("agent: cannot keep broker {}'s checkpoint of size {}: {}", broker_id_, cp.size,
                  s.ToString());
    last_checkpoint_note_.clear();
    return;
  }
  ++counters_.checkpoints_kept;
  spdlog::debug("agent: kept broker {}'s checkpoint of size {}", broker_id_, cp.size);
  kept_checkpoint_ = std::move(keep);
}

}  // namespace refbus::agent
