// Hot backup and checked restore of a broker's store (core/lmdb_backup.h does the files).
//
// BackupBroker copies the LMDB environment in the configured data_dir while the broker
// runs (or not), from this process: one consistent snapshot (a committed state, never a
// torn one). The copy is then checked as the broker checks its store at start (format,
// owning broker, audit tree frontier: CheckAuditState) and the manifest records the
// broker id, the store format, the audit log's size and Merkle root and the latest stored
// checkpoint's size, all read from the copy itself, so they describe exactly what it holds.
// A backup holds sealed envelopes, grants and the audit log; never key files.
//
// RestoreBroker refuses a data_dir that is in use (a broker runs on it) or not empty, and a
// backup of another broker or one whose files do not match its manifest. It stages the
// copy next to data_dir, opens it with Store::Open (the broker's own start-up checks), and
// requires the audit log's size and root to be the manifest's and the latest stored
// checkpoint to be consistent with the log; only then is the store moved into data_dir.
// A refused or failed restore leaves data_dir as it was.
//
// What a restore cannot give back is written in deploy/README.md ("Backup and restore"):
// everything the broker committed after the backup, including audit entries already
// covered by checkpoints that auditors and witnesses hold.
//
// Thread safety: free functions. REQUIRES: this process does not have the store open.
#ifndef REFBUS_BROKER_BACKUP_H_
#define REFBUS_BROKER_BACKUP_H_

#include <cstdint>
#include <optional>
#include <string>

#include "broker/config.h"
#include "core/lmdb_backup.h"
#include "core/status.h"

namespace refbus::broker {

inline constexpr char kBrokerBackupKind[] = "broker";
inline constexpr char kBrokerStoreEnvironment[] = "store";

struct BrokerBackupReport {
  lmdb::BackupManifest manifest;
  std::string manifest_sha256;
  double seconds = 0;  // the whole backup: copy, hash, checks, manifest
  uint64_t audit_size = 0;
  std::string audit_root;  // hex; empty for a store of format 1 (no tree yet)
};

// REQUIRES: out_dir does not exist or is empty.
Result<BrokerBackupReport> BackupBroker(const Config& config, const std::string& out_dir);

struct BrokerRestoreReport {
  lmdb::BackupManifest manifest;
  std::string manifest_sha256;
  uint64_t audit_size = 0;
  std::string audit_root;                   // hex
  bool root_in_manifest = false;            // false: a format-1 backup recorded none
  std::optional<uint64_t> checkpoint_size;  // the latest stored checkpoint, if any
  uint64_t mailboxes = 0;                   // non-empty mailboxes (link mailboxes included)
  uint64_t queued = 0;                      // mailbox entries waiting for delivery
  int64_t owner_uid = -1;                   // run as root: the owner the files were given
};

Result<BrokerRestoreReport> RestoreBroker(const Config& config, const std::string& from_dir);

}  // namespace refbus::broker

#endif  // REFBUS_BROKER_BACKUP_H_
