// LMDB, wrapped: an environment per data directory, RAII transactions, byte views.
//
// Contract:
//   - Env::Open sets the map size and the number of named databases explicitly, uses
//     none of MDB_NOSYNC, MDB_NOMETASYNC, MDB_MAPASYNC, MDB_WRITEMAP (durability after
//     Commit; a full disk is an error, not SIGBUS), runs mdb_reader_check, and holds an
//     exclusive flock on DIR/LOCK.refbus so that one process owns a data directory.
//   - Txn aborts in its destructor unless Commit() ran; Commit() gives up the handle even
//     when it fails (LMDB frees it). A committed write transaction is on disk (fsync).
//   - Values returned by Get or a Cursor are valid until the transaction ends.
//   - LMDB error numbers become a Status in one place (LmdbStatus): MDB_MAP_FULL and
//     ENOSPC are kResourceExhausted, MDB_NOTFOUND is kNotFound, corruption is kMalformed.
//   - No long-lived read transactions: take one, read, drop it.
//
// Thread safety: an Env may be shared by threads; a Txn belongs to the thread that began
// it (MDB_NOTLS is not used); one write transaction at a time (LMDB serializes them).
#ifndef REFBUS_CORE_LMDB_H_
#define REFBUS_CORE_LMDB_H_

#include <lmdb.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"

namespace refbus::lmdb {

Status LmdbStatus(int rc, std::string_view what);

class Env;

class Txn {
 public:
  Txn(Txn&& o) noexcept : txn_(std::exchange(o.txn_, nullptr)), write_(o.write_) {}
  Txn& operator=(Txn&&) = delete;
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  ~Txn() {
    if (txn_ != nullptr) mdb_txn_abort(txn_);
  }

  // Value stored under key, or NotFound. The view is valid until this Txn ends.
  Result<ByteView> Get(MDB_dbi dbi, ByteView key) const;
  Status Put(MDB_dbi dbi, ByteView key, ByteView value, unsigned flags = 0);
  // Reserves size bytes for key and returns where to write them (MDB_RESERVE): one copy
  // less for large values. Valid until the next write in this Txn.
  Result<uint8_t*> Reserve(MDB_dbi dbi, ByteView key, size_t size);
  // NotFound if absent.
  Status Del(MDB_dbi dbi, ByteView key);
  Result<uint64_t> Count(MDB_dbi dbi) const;
  // Bytes the trees of `dbis`, LMDB's table of tables and its free-page list take in this
  // transaction's view (branch, leaf and overflow pages, and the two meta pages). Pages on
  // the free-page list count as free.
  Result<uint64_t> BytesInUse(std::span<const MDB_dbi> dbis) const;
  // In a write transaction: deletes the named database and everything in it, if it exists
  // (a store upgrade retiring a table). Returns whether there was one.
  Result<bool> DropDbIfExists(const std::string& name);

  // REQUIRES: not yet committed. Durable once it returns ok. A full disk (also when LMDB
  // reports it as a short write, EIO) is kResourceExhausted.
  Status Commit();
  void Abort();

  MDB_txn* raw() const { return txn_; }
  bool is_write() const { return write_; }

 private:
  friend class Env;
  Txn(MDB_txn* txn, bool write) : txn_(txn), write_(write) {}
  MDB_txn* txn_;
  bool write_;
};

// A cursor over one database inside a Txn. Valid until the Txn ends.
class Cursor {
 public:
  static Result<Cursor> Open(const Txn& txn, MDB_dbi dbi);
  Cursor(Cursor&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  Cursor& operator=(Cursor&&) = delete;
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  ~Cursor() {
    if (c_ != nullptr) mdb_cursor_close(c_);
  }

  struct Item {
    ByteView key;
    ByteView value;
  };
  // Positioning: nullopt at the end (or nothing there); an error for real failures.
  Result<std::optional<Item>> First();
  Result<std::optional<Item>> Last();
  Result<std::optional<Item>> Next();
  // First item with key >= key.
  Result<std::optional<Item>> Seek(ByteView key);
  // Deletes the item under the cursor (write transactions).
  Status DeleteCurrent();

 private:
  explicit Cursor(MDB_cursor* c) : c_(c) {}
  Result<std::optional<Item>> Op(MDB_cursor_op op, ByteView key = {});
  MDB_cursor* c_;
};

struct EnvOptions {
  size_t map_size_bytes = size_t{1} << 30;
  unsigned max_dbs = 16;
  unsigned max_readers = 126;
  // Extra mdb_env_open flags. The broker and agent open with none (every commit flushes
  // its data pages, then its meta page); tests/bench/lmdb_commit_bench measures others.
  unsigned env_flags = 0;
};

class Env {
 public:
  // Creates dir (0700) if needed, takes the directory lock, opens the environment.
  static Result<std::unique_ptr<Env>> Open(const std::string& dir, const EnvOptions& options);
  ~Env();
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;

  // Opens (creating, in a write transaction) a named database.
  Result<MDB_dbi> OpenDb(const std::string& name, unsigned flags = 0);

  Result<Txn> BeginRead() const;
  Result<Txn> BeginWrite();

  // Bytes used in the map (last page number * page size) and the map size.
  Result<std::pair<size_t, size_t>> Usage() const;
  // Raises the map size (REQUIRES: no transaction active in this process).
  Status Grow(size_t new_map_size_bytes);
  // A consistent copy of the environment into an empty directory, while running.
  Status CopyTo(const std::string& dir) const;

  // Opens a copy written by HotCopy (one file, not a directory) read-only and without a
  // lock file or directory lock, to check it or read from it: nothing is written next to
  // it. REQUIRES: no process writes the file while it is open.
  static Result<std::unique_ptr<Env>> OpenCopy(const std::string& file, unsigned max_dbs);
  // An existing named database, opened in a read transaction (so also in a read-only Env);
  // NotFound if there is none of that name.
  Result<MDB_dbi> FindDb(const std::string& name);
  // Every named database with its number of entries, in one read transaction.
  Result<std::map<std::string, uint64_t>> DatabaseCounts();

  const std::string& dir() const { return dir_; }
  MDB_env* raw() const { return env_; }

 private:
  Env() = default;
  MDB_env* env_ = nullptr;
  int lock_fd_ = -1;
  std::string dir_;
};

// ---- Hot copies (backups) ------------------------------------------------------------

// Writes a consistent copy of the environment in src_dir to fd, compacted (MDB_CP_COMPACT:
// free pages are left out, so content deleted before the copy, such as purged envelopes,
// is not carried into it), and returns the bytes written. The copy is one committed
// snapshot, taken in one read transaction on a read-only handle of this process's own,
// beside a process that has the environment open and writes: LMDB allows readers in any
// number of processes next to its one writer, and this needs neither the refbus directory
// lock nor a pause of the writer. What LMDB requires of such a second opener, and how it
// is met:
//   - the same map size as the writer: none is set, so the map size the environment
//     records is taken; if the writer grew the map meanwhile (MDB_MAP_RESIZED), the new
//     size is adopted and the copy restarts, a few times at most;
//   - read access to data.mdb and write access to lock.mdb (reader table): run it as the
//     user the writer runs as (or root; a lock.mdb root had to create, for a stopped store,
//     is given to the owner of data.mdb);
//   - the copy's read transaction holds the writer back from reusing pages freed meanwhile,
//     so the store can grow while a large copy runs.
// Does not fsync fd: the caller does, after it wrote the rest.
// REQUIRES: this process does not have src_dir open as an Env (LMDB: never open one
// environment twice in a process: closing one handle drops the other's file locks); fd is
// an empty regular file open for writing.
Result<uint64_t> HotCopy(const std::string& src_dir, int fd);

// The same, holding only the named databases of the environment (one read transaction,
// so one snapshot); a name the source lacks is an empty database in the copy. The records
// go through scratch_file, a single-file LMDB environment this makes (0600) and removes
// before it returns, failures included; put it where the copy goes. What the copy leaves
// out is never written anywhere. Same REQUIREMENTS as HotCopy.
Result<uint64_t> HotCopyDatabases(const std::string& src_dir,
                                  const std::vector<std::string>& databases,
                                  const std::string& scratch_file, int fd);

// Big-endian u64 keys sort numerically in LMDB's default byte order.
Bytes U64Key(uint64_t v);
uint64_t ReadU64Key(ByteView key);  // REQUIRES: key.size() >= 8

}  // namespace refbus::lmdb

#endif  // REFBUS_CORE_LMDB_H_
