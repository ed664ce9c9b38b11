// Hot backup and checked restore of an agency agent's stores (core/lmdb_backup.h does the
// files). An agent keeps two LMDB environments in its data_dir (agent/engine.cpp):
//   transport/  TransportStore (agent/transport_store.h): outbox, inbox (sealed
//               envelopes), counters
//   cases/      CaseStore (agent/case_store.h): grants, referrals, cases, what was sent
// Both are copied, each as one consistent snapshot, while the daemon runs (or not). They
// are two snapshots, not one: cases is copied first, so the transport copy is the newer
// one. That order is the safe one: the engine records in cases how far it has processed
// the inbox (processed_seq) and reprocesses what lies beyond at start; a cases copy newer
// than the inbox copy could claim sequence numbers the restored inbox hands out again to
// new messages, which would then never be processed.
//
// Not in a backup, on purpose: grant-keys/ (the per-grant data keys: a purge destroys a
// key, and a backup must not bring it back), operator-keys/ (countersigning private keys),
// api.token (a secret; the daemon makes a new one at start), api.url, and every key file. The trust
// state file lives outside data_dir and stays as it is.
//
// RestoreAgent refuses when transport/ or cases/ is in use (a daemon runs) or holds
// anything, or the backup is of another agency or does not match its manifest; it opens
// the staged stores with TransportStore::Open and CaseStore::Open and requires the inbox
// and outbox counts the manifest recorded, and only then moves them into data_dir. Other
// files in data_dir (operator-keys/, api.token) are left alone.
//
// Thread safety: free functions. REQUIRES: this process does not have the stores open.
#ifndef REFBUS_AGENT_BACKUP_H_
#define REFBUS_AGENT_BACKUP_H_

#include <cstdint>
#include <string>

#include "agent/transport_store.h"
#include "core/lmdb_backup.h"
#include "core/status.h"

namespace refbus::agent {

inline constexpr char kAgentBackupKind[] = "agent";

struct AgentBackupReport {
  lmdb::BackupManifest manifest;
  std::string manifest_sha256;
  double seconds = 0;
};

// REQUIRES: out_dir does not exist or is empty.
Result<AgentBackupReport> BackupAgent(const std::string& data_dir, const std::string& agent_id,
                                      const std::string& out_dir);

struct AgentRestoreReport {
  lmdb::BackupManifest manifest;
  std::string manifest_sha256;
  StoreCounters counters;  // of the restored transport store
  uint64_t cases = 0;      // case records in the restored case store
  int64_t owner_uid = -1;  // run as root: the owner the files were given
};

Result<AgentRestoreReport> RestoreAgent(const std::string& data_dir, const std::string& agent_id,
                                        const std::string& from_dir);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_BACKUP_H_
