// Hot backup and checked restore of an agency agent's stores (core/lmdb_backup.h does the
// files). An agent keeps three LMDB environments in its data_dir (agent/engine.cpp):
//   transport/  TransportStore (agent/transport_store.h): outbox, inbox (sealed
//               envelopes), counters
//   cases/      CaseStore (agent/case_store.h): grants, referrals, cases, what was sent
//   linkage/    LinkageStore (agent/linkage_store.h): the agency's linkage entries sent
//               (links) and notices received (matches); at the escrow also the escrow's
//               shares (escrow_entries) and where they came from (escrow_deposits)
// Each is copied as one consistent snapshot while the daemon runs (or not): three
// snapshots, in the order cases, linkage, transport, so each copy is newer than the one
// before. That order is the safe one: the engine records in cases how far it has processed
// the inbox (processed_seq) and reprocesses what lies beyond at start; a cases copy newer
// than the inbox copy could claim sequence numbers the restored inbox hands out again to
// new messages, which would then never be processed. Likewise a notice's match is stored
// in linkage before cases records the notice as processed, so a linkage copy newer than
// cases holds every match cases says was processed (one processed again at start is
// stored again, the same record).
//
// Of linkage/, only links and matches: the agency's own records, naming cases, kinds,
// grants, messages and linkage ids, never an identifier (like cases/). The escrow's tables
// are never in a backup, for the reason grant-keys/ is not: each share was deposited under
// a consent grant, and leaves the escrow when that consent is withdrawn or the case's
// retention ends. A restore of an older copy would bring back shares withdrawn since, and a
// later entry of the same identifier would then open them and tell the other center of a
// case whose consent was withdrawn; a backup kept for years would also hold shares past
// their retention. The cost: an escrow restored from a backup holds no entries, so
// identifiers entered before are matched again only once their centers enter them again
// (matches already notified stay in the centers' own stores). The copy holds only the two
// tables from the start (lmdb::HotCopyDatabases): no share is written into the backup and
// then deleted, and restore refuses a linkage copy that holds escrow records anyway.
//
// Not in a backup, on purpose: grant-keys/ (the per-grant data keys: a purge destroys a
// key, and a backup must not bring it back), operator-keys/ (countersigning private keys),
// api.token (a secret; the daemon makes a new one at start), api.url, and every key file. The trust
// state file lives outside data_dir and stays as it is.
//
// RestoreAgent refuses when transport/, cases/ or linkage/ is in use (a daemon runs) or
// holds anything, or the backup is of another agency or does not match its manifest; it
// opens the staged stores with TransportStore::Open, CaseStore::Open and
// LinkageStore::Open and requires the inbox, outbox, links and matches counts the manifest
// recorded and no escrow record, and only then moves them into data_dir. A backup made
// before linkage/ was backed up restores transport/ and cases/ only. Other files in
// data_dir (operator-keys/, api.token) are left alone.
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
  bool linkage = false;    // the backup held a linkage store
  uint64_t links = 0;      // its linkage entries sent
  uint64_t matches = 0;    // its linkage notices received
  int64_t owner_uid = -1;  // run as root: the owner the files were given
};

Result<AgentRestoreReport> RestoreAgent(const std::string& data_dir, const std::string& agent_id,
                                        const std::string& from_dir);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_BACKUP_H_
