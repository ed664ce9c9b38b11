// refbus-audit witness: the auditor as a witness of a broker's log (schema/PROTOCOL.md
// section 11.3, keys/witness.h).
//   - The auditor must be an active auditor with the audit role (it asks with audit
//     queries, each logged by the broker) and the witness role (its cosignatures count).
//   - Steps: Hello; AuditCheckpoint (the broker's fresh checkpoint); AuditConsistency from
//     the size of the last checkpoint this auditor cosigned for the log (its witness state
//     in the store folder; none: no proof, the first is taken as it is); the keys/witness.h
//     rules; on success the new state is stored, then the cosignature goes to the broker in
//     AddCosignature and is stored with the checkpoint there (answered Ack).
//   - A checkpoint that is inconsistent with the one cosigned, or smaller than it, or a
//     broker that cannot prove consistency with it, is refused: both checkpoints are kept as
//     evidence in the store folder and the report says so (a finding, not an error).
//
// Thread safety: one witness run at a time per store (the store's folder lock enforces it).
#ifndef REFBUS_AUDIT_WITNESS_H_
#define REFBUS_AUDIT_WITNESS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "keys/merkle.h"

namespace refbus::audit {

struct WitnessOptions {
  std::string auditor_dir;
  std::string broker_id;
  std::string endpoint;  // empty: the broker's endpoint from the directory
  std::string store_dir;
  std::string passphrase_file;
  int timeout_ms = 10000;
};

struct WitnessReport {
  std::string broker_id;
  std::string origin;
  std::string endpoint;
  std::string witness_name;  // the cosigner name: "refbus/<federation>/witness/<auditor-id>"
  uint64_t old_size = 0;     // the last size this auditor had cosigned (0: none)
  uint64_t size = 0;         // the broker's fresh checkpoint
  keys::Hash root{};
  std::string verdict;  // keys::Name(WitnessVerdict)
  bool cosigned = false;
  bool stored_by_broker = false;  // the broker acknowledged the AddCosignature
  uint64_t timestamp_s = 0;
  std::optional<uint64_t> evidence;  // the evidence record kept for a refusal
  std::vector<std::string> problems;
  size_t queries = 0;
  double seconds = 0;

  bool ok() const { return problems.empty(); }
};

Result<WitnessReport> Witness(const WitnessOptions& options, UnixMillis now);

}  // namespace refbus::audit

#endif  // REFBUS_AUDIT_WITNESS_H_
