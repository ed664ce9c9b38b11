// refbus-audit fetch: an auditor pulls a broker's audit log and checkpoints over CURVE into
// its local audit store (audit/local_store.h), incrementally (schema/PROTOCOL.md section 11).
//
// Contract:
//   - The auditor's folder (as keys/ceremony.h lays it out: identity.key, authority.pub,
//     directory, trust-state) gives its identity and the directory, which is verified
//     against the anchor and the trust state (rollback refused) before anything is used.
//     The identity must be an active auditor with the audit role in that directory. The
//     broker's CURVE key, signing keys and (unless given) endpoint come from the directory:
//     a connection to anything else fails the CURVE handshake.
//   - Steps: Hello; AuditCheckpoint (a fresh checkpoint, which covers this request's own
//     AUDITOR_QUERY entry); AuditCheckpoints from the largest size the store knows; every
//     new checkpoint that verifies is stored with the broker's consistency proof from the
//     largest stored checkpoint not above it (checked at once as well); AuditEntries from
//     the store's next index up to the fresh checkpoint's size, stored as received.
//   - Only checkpoints up to the fresh one's size are taken: later ones (signed while the
//     fetch ran) come with the next fetch, together with their entries. After the entries,
//     the checkpoints this fetch took without cosignatures are asked for once more (their
//     witnesses cosign moments after the broker signs); with wait_cosignatures N, the
//     fetch then asks for the fresh checkpoint every 250 ms until it carries N valid
//     cosignatures from directory witnesses, or wait_ms pass (a problem: not witnessed).
//   - Then the fresh checkpoint is compared with the root of the local log. On a mismatch
//     the first differing entry is found by bisection with the broker's consistency proofs
//     (O(log N) queries) and named. On a match, the AUDITOR_QUERY entry of the checkpoint
//     request must be among the new entries.
//   - Findings (a checkpoint that does not verify, an inconsistency, a shorter log than
//     before, a mismatch) are reported, never thrown away: evidence stays in the store.
//   - Errors (a Status) are for what stopped the fetch: the folder, the directory, the
//     network, a broker refusal, the local store.
//
// Thread safety: one fetch at a time per store (the store's folder lock enforces it).
#ifndef REFBUS_AUDIT_FETCH_H_
#define REFBUS_AUDIT_FETCH_H_

#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "keys/merkle.h"
#include "schema/types.h"

namespace refbus::audit {

struct FetchOptions {
  std::string auditor_dir;
  std::string broker_id;
  std::string endpoint;  // empty: the broker's endpoint from the directory
  std::string store_dir;
  std::string passphrase_file;  // for a passphrase-protected identity.key
  int timeout_ms = 10000;       // per request
  // Witnessing: wait until the fresh checkpoint carries this many valid cosignatures from
  // directory witnesses (0: do not wait), for at most wait_ms; short of them is a problem.
  size_t wait_cosignatures = 0;
  int wait_ms = 10000;
};

struct FetchReport {
  std::string broker_id;
  std::string origin;
  std::string endpoint;
  std::string key_fingerprint;  // of the broker key that signed the fresh checkpoint
  uint64_t entries_before = 0;
  uint64_t entries_after = 0;
  size_t checkpoints_new = 0;
  size_t checkpoints_total = 0;
  uint64_t checkpoint_size = 0;  // the fresh checkpoint
  keys::Hash checkpoint_root{};
  std::optional<uint64_t> own_query_index;   // this fetch's AuditCheckpoint in the log
  std::vector<std::string> fresh_cosigners;  // witnesses that cosigned the fresh checkpoint
  std::optional<uint64_t> first_differing_entry;
  std::vector<std::string> problems;
  size_t queries = 0;  // audit queries sent (each is an entry in the broker's log)
  double seconds = 0;

  bool ok() const { return problems.empty(); }
};

Result<FetchReport> Fetch(const FetchOptions& options, UnixMillis now);

// The directory of the auditor's folder, verified against its anchor and trust state.
Result<schema::SignedDirectory> LoadVerifiedDirectory(const std::string& dir, UnixMillis now);

}  // namespace refbus::audit

#endif  // REFBUS_AUDIT_FETCH_H_
