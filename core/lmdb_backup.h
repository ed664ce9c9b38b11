// Backups of LMDB environments: a folder of hot copies with a manifest, and the checked
// restore of such a folder into empty data directories. The layers above (broker/backup.h,
// agent/backup.h) say which environments, add what they know (a broker's audit log size
// and root, an agency id) and open the restored stores with their own start-up checks.
//
// A backup folder (0700), nothing else in it:
//   <name>.mdb       one per environment (0600): a compacted LMDB copy (HotCopy)
//   MANIFEST.json    (0600) written last: a folder without it is not a backup
// MANIFEST.json:
//   {"format": "refbus-backup/1", "kind": "broker", "id": "seoul-broker",
//    "created_ms": 1767..., "created_utc": "2026-...Z", "host": "broker-1",
//    "environments": [{"name": "store", "file": "store.mdb", "source": "/var/lib/...",
//                      "copied_ms": 1767..., "bytes": 1234, "sha256": "<hex>",
//                      "databases": {"msgs": 12, ...}}],
//    "facts": {"audit_size": 42, "audit_root": "<hex>", ...}}
// The SHA-256 values catch damage and casual edits. They are no defence against someone
// who can rewrite the whole folder (manifest included): keep the manifest's own SHA-256,
// which backup prints, apart from the backup, and for a broker compare the audit root
// with the checkpoints auditors hold.
//
// Contract:
//   - BackupWriter::Create refuses a folder that exists and is not empty (kAlreadyExists)
//     and never overwrites a file (O_EXCL). It creates the folder 0700 (an existing empty
//     one is set to 0700); every file is created 0600 from the start, whatever the umask,
//     and fsynced, and the folder is fsynced after each file. A writer destroyed before
//     Finish removes what it wrote (and the folder, if it made it).
//   - ReadBackup checks the manifest (format, plain file names) and every file's size and
//     SHA-256; any difference refuses the backup (kMalformed, naming the file).
//   - Restorer stages each environment next to its target and moves it in only after the
//     caller's checks passed: a refused or failed restore leaves every target as it was.
//     A target in use (its LOCK.refbus is held: a process runs on it) is refused
//     (kFailedPrecondition), as is a target that holds anything but an unheld LOCK.refbus
//     (kAlreadyExists).
//
// Thread safety: free functions and single-owner objects; no shared state.
#ifndef REFBUS_CORE_LMDB_BACKUP_H_
#define REFBUS_CORE_LMDB_BACKUP_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/bytes.h"
#include "core/clock.h"
#include "core/lmdb.h"
#include "core/status.h"

namespace refbus::lmdb {

inline constexpr char kBackupFormat[] = "refbus-backup/1";
inline constexpr char kManifestFile[] = "MANIFEST.json";

// A fact the layer above records about the backup (and checks at restore).
using BackupFact = std::variant<uint64_t, std::string>;

// One environment in a backup.
struct BackupEnvironment {
  std::string name;          // "store", "transport", "cases"
  std::string file;          // in the backup folder: name + ".mdb"
  std::string source;        // the data directory it was copied from
  UnixMillis copied_ms = 0;  // when its copy started (the snapshot is from then or later)
  uint64_t bytes = 0;
  std::string sha256;                         // hex, of the file
  std::map<std::string, uint64_t> databases;  // named database -> entries, in the copy
  double copy_seconds = 0;                    // how long the copy took (not in the manifest)
};

struct BackupManifest {
  std::string format = kBackupFormat;
  std::string kind;  // "broker" or "agent"
  std::string id;    // the broker's or agency's id
  UnixMillis created_ms = 0;
  std::string host;
  std::vector<BackupEnvironment> environments;
  std::map<std::string, BackupFact> facts;

  const BackupEnvironment* Find(std::string_view name) const;
  // NotFound if absent; InvalidArgument if the fact has the other type.
  Result<uint64_t> Number(const std::string& key) const;
  Result<std::string> Text(const std::string& key) const;
};

Bytes EncodeManifest(const BackupManifest& manifest);
// Refuses anything EncodeManifest could not have written (kMalformed, saying what).
Result<BackupManifest> ParseManifest(ByteView bytes);

// Writes one backup folder.
class BackupWriter {
 public:
  static Result<std::unique_ptr<BackupWriter>> Create(const std::string& out_dir);
  ~BackupWriter();  // not finished: removes what it wrote
  BackupWriter(const BackupWriter&) = delete;
  BackupWriter& operator=(const BackupWriter&) = delete;

  // A hot copy (HotCopy) of the environment in src_dir into <name>.mdb, fsynced and hashed,
  // with its databases' entry counts. Environments are copied in the order added, each in
  // its own read transaction: two environments are two snapshots, the later one newer.
  // only_databases, if not empty: the copy holds those named databases only
  // (HotCopyDatabases), for a store part of which must not outlive its source.
  // REQUIRES: this process does not have src_dir open.
  Result<const BackupEnvironment*> AddEnvironment(
      const std::string& name, const std::string& src_dir,
      const std::vector<std::string>& only_databases = {});
  // The copy of name, opened read-only without locks (Env::OpenCopy), for reading facts.
  Result<std::unique_ptr<Env>> OpenCopy(const std::string& name, unsigned max_dbs) const;

  // The manifest to be written: set kind, id and facts; environments are filled in.
  BackupManifest& manifest() { return manifest_; }
  const std::string& dir() const { return dir_; }

  // Writes MANIFEST.json (0600, atomically, fsynced): the backup is complete once this
  // returns ok. Returns the manifest's SHA-256 (hex).
  Result<std::string> Finish();

 private:
  BackupWriter() = default;
  std::string dir_;
  bool created_dir_ = false;
  bool finished_ = false;
  std::vector<std::string> files_;  // written so far, removed if not finished
  BackupManifest manifest_;
};

// Reads DIR/MANIFEST.json and checks every environment's file against it (size and
// SHA-256, read in full). Returns the manifest and, in manifest_sha256, its own hash (hex).
Result<BackupManifest> ReadBackup(const std::string& dir, std::string* manifest_sha256);

// Where one environment of a backup goes: the data directory of an LMDB environment.
struct RestoreTarget {
  std::string name;  // the environment's name in the backup
  std::string dir;   // its data directory (data.mdb goes in there)
};

// A restore in progress. Begin checks everything it can without writing to a target and
// stages the copies; the caller then opens the staged stores with their normal start-up
// checks (StagingDir) and closes them; Commit moves them in.
class Restorer {
 public:
  // Reads and checks the backup (ReadBackup), that it is of kind and id, that it holds
  // exactly the environments named by targets, and that every target is free (not in
  // use, empty); then copies each file to <target dir>.restoring/data.mdb (0600, checked
  // against the manifest again while copied, fsynced). A folder <target>.restoring left
  // by an interrupted restore is refused, naming it.
  static Result<std::unique_ptr<Restorer>> Begin(const std::string& backup_dir,
                                                 std::string_view kind, const std::string& id,
                                                 const std::vector<RestoreTarget>& targets);
  ~Restorer();  // not committed: removes the staging folders and what Begin created
  Restorer(const Restorer&) = delete;
  Restorer& operator=(const Restorer&) = delete;

  const BackupManifest& manifest() const { return manifest_; }
  const std::string& manifest_sha256() const { return manifest_sha256_; }
  // Where the caller opens environment name for its checks. REQUIRES: a target's name.
  std::string StagingDir(const std::string& name) const;

  // REQUIRES: the caller closed every store it opened in the staging folders.
  // Takes every target's LOCK.refbus, checks again that each is free and empty, and
  // moves each data.mdb in (rename, fsync). When run as root, every folder and file the
  // restore made gets the owner of the nearest folder above the target that existed
  // before (the service user's, e.g. /var/lib/refbus), so the service can open them.
  Status Commit();
  // The owner restored files were given (root only; -1 otherwise).
  uid_t owner_uid() const { return owner_uid_; }

 private:
  struct Target {
    RestoreTarget target;
    std::string staging;
    uid_t ref_uid = 0;
    gid_t ref_gid = 0;
  };
  Restorer() = default;
  std::vector<Target> targets_;
  std::vector<std::string> created_dirs_;  // by Begin, parents first (removed if not committed)
  BackupManifest manifest_;
  std::string manifest_sha256_;
  bool committed_ = false;
  uid_t owner_uid_ = static_cast<uid_t>(-1);
};

// Whether a process holds dir/LOCK.refbus (the lock lmdb::Env::Open takes). False if there
// is no such file.
Result<bool> DirectoryLockHeld(const std::string& dir);

}  // namespace refbus::lmdb

#endif  // REFBUS_CORE_LMDB_BACKUP_H_
