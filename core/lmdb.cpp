#include "core/lmdb.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/file.h"

namespace refbus::lmdb {
namespace {

// A commit that fails with a short write (EIO) while less than this is free on the file
// system counts as a full disk.
constexpr uint64_t kDiskFullBelowBytes = uint64_t{16} << 20;

MDB_val Val(ByteView b) { return MDB_val{b.size(), const_cast<uint8_t*>(b.data())}; }
ByteView View(const MDB_val& v) { return {static_cast<const uint8_t*>(v.mv_data), v.mv_size}; }

// strerror is not thread-safe; a backup's copy runs beside threads of LMDB's own.
}  // namespace

Status LmdbStatus(int rc, std::string_view what) {
  if (rc == MDB_SUCCESS) return Status::Ok();
  std::string m = std::string(what) + ": " + mdb_strerror(rc);
  switch (rc) {
    case MDB_NOTFOUND:
      return NotFound(m);
    case MDB_MAP_FULL:
    case ENOSPC:
    case EDQUOT:
    case MDB_TXN_FULL:
      return ResourceExhausted(m);
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
      return Malformed(m);
    case MDB_KEYEXIST:
      return AlreadyExists(m);
    case EACCES:
      return PermissionDenied(m);
    default:
      return IoError(m);
  }
}

// ---------------------------------------------------------------- Txn

Result<ByteView> Txn::Get(MDB_dbi dbi, ByteView key) const {
  MDB_val k = Val(key), v{};
  int rc = mdb_get(txn_, dbi, &k, &v);
  if (rc != MDB_SUCCESS) return LmdbStatus(rc, "lmdb get");
  return View(v);
}

Status Txn::Put(MDB_dbi dbi, ByteView key, ByteView value, unsigned flags) {
  MDB_val k = Val(key), v = Val(value);
  return LmdbStatus(mdb_put(txn_, dbi, &k, &v, flags), "lmdb put");
}

Result<uint8_t*> Txn::Reserve(MDB_dbi dbi, ByteView key, size_t size) {
  MDB_val k = Val(key), v{size, nullptr};
  int rc = mdb_put(txn_, dbi, &k, &v, MDB_RESERVE);
  if (rc != MDB_SUCCESS) return LmdbStatus(rc, "lmdb reserve");
  return static_cast<uint8_t*>(v.mv_data);
}

Status Txn::Del(MDB_dbi dbi, ByteView key) {
  MDB_val k = Val(key);
  return LmdbStatus(mdb_del(txn_, dbi, &k, nullptr), "lmdb del");
}

Result<uint64_t> Txn::Count(MDB_dbi dbi) const {
  MDB_stat st{};
  int rc = mdb_stat(txn_, dbi, &st);
  if (rc != MDB_SUCCESS) return LmdbStatus(rc, "lmdb stat");
  return static_cast<uint64_t>(st.ms_entries);
}

Result<uint64_t> Txn::BytesInUse(std::span<const MDB_dbi> dbis) const {
  MDB_stat st{};
  uint64_t pages = 2;  // the meta pages
  auto add = [&](MDB_dbi dbi) {
    int rc = mdb_stat(txn_, dbi, &st);
    if (rc != MDB_SUCCESS) return LmdbStatus(rc, "lmdb stat");
    pages += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
    return Status::Ok();
  };
  REFBUS_RETURN_IF_ERROR(add(0));  // FREE_DBI: the free-page list's own tree
  REFBUS_RETURN_IF_ERROR(add(1));  // MAIN_DBI: the table of tables
  for (MDB_dbi dbi : dbis) REFBUS_RETURN_IF_ERROR(add(dbi));
  return pages * st.ms_psize;
}

Result<bool> Txn::DropDbIfExists(const std::string& name) {
  MDB_dbi dbi = 0;
  int rc = mdb_dbi_open(txn_, name.c_str(), 0, &dbi);
  if (rc == MDB_NOTFOUND) return false;
  if (rc != MDB_SUCCESS) return LmdbStatus(rc, "lmdb open database " + name);
  rc = mdb_drop(txn_, dbi, 1);
  if (rc != MDB_SUCCESS) return LmdbStatus(rc, "lmdb drop database " + name);
  return true;
}

Status Txn::Commit() {
  MDB_txn* t = std::exchange(txn_, nullptr);
  if (t == nullptr) return Internal("commit of a finished transaction");
  MDB_env* env = mdb_txn_env(t);
  int rc = mdb_txn_commit(t);
  if (rc == EIO) {
    // LMDB reports a short write as EIO, and a disk that fills in the middle of writing a
    // commit's pages gives exactly that (ENOSPC only when not a byte more fits). With almost
    // nothing left on the file system, it is a full disk, not a failing one.
    const char* path = nullptr;
    struct statvfs fs {};
    if (mdb_env_get_path(env, &path) == MDB_SUCCESS && path != nullptr &&
        ::statvfs(path, &fs) == 0) {
      const uint64_t blocks = ::geteuid() == 0 ? fs.f_bfree : fs.f_bavail;
      const uint64_t free_bytes = blocks * fs.f_frsize;
      if (free_bytes < kDiskFullBelowBytes) {
        return ResourceExhausted("lmdb commit: a short write with " + std::to_string(free_bytes) +
                                 " bytes left under " + path + ": the disk is full");
      }
    }
  }
  return LmdbStatus(rc, "lmdb commit");
}

void Txn::Abort() {
  if (txn_ != nullptr) mdb_txn_abort(std::exchange(txn_, nullptr));
}

// ---------------------------------------------------------------- Cursor

Result<Cursor> Cursor::Open(const Txn& txn, MDB_dbi dbi) {
  MDB_cursor* c = nullptr;
  int rc = mdb_cursor_open(txn.raw(), dbi, &c);
  if (rc != MDB_SUCCESS) return LmdbStatus(rc, "lmdb cursor open");
  return Cursor(c);
}

Result<std::optional<Cursor::Item>> Cursor::Op(MDB_cursor_op op, ByteView key) {
  MDB_val k = Val(key), v{};
  int rc = mdb_cursor_get(c_, &k, &v, op);
  if (rc == MDB_NOTFOUND) return std::optional<Item>();
  if (rc != MDB_SUCCESS) return LmdbStatus(rc, "lmdb cursor");
  return std::optional<Item>(Item{View(k), View(v)});
}

Result<std::optional<Cursor::Item>> Cursor::First() { return Op(MDB_FIRST); }
Result<std::optional<Cursor::Item>> Cursor::Last() { return Op(MDB_LAST); }
Result<std::optional<Cursor::Item>> Cursor::Next() { return Op(MDB_NEXT); }
Result<std::optional<Cursor::Item>> Cursor::Seek(ByteView key) { return Op(MDB_SET_RANGE, key); }

Status Cursor::DeleteCurrent() { return LmdbStatus(mdb_cursor_del(c_, 0), "lmdb cursor del"); }

// ---------------------------------------------------------------- Env

// LMDB reads its pages through a memory map and trusts the meta page's last page number: a
// data file cut short (a bad copy, a full disk while copying, a tool's mistake) opens, and
// the first read past its end kills the process with SIGBUS. Checked once at open, so the
// error names the file instead.
//
// The check cannot be exact without walking every tree: LMDB counts pages it allocated and
// freed again in the same transaction without writing them, so a sound file may end a few
// pages before its last page number (seen after a kill -9 under ThreadSanitizer: one page
// short). Only a shortfall too large for that is refused: more than kMaxUnwrittenTail
// pages and more than an eighth of the file. A file cut by less can still fault when a
// missing page is read (SECURITY.md, known gaps).
constexpr uint64_t kMaxUnwrittenTail = 256;

static Status CheckFileHoldsItsPages(MDB_env* env, const std::string& file) {
  MDB_envinfo info{};
  MDB_stat stat{};
  REFBUS_RETURN_IF_ERROR(LmdbStatus(mdb_env_info(env, &info), "lmdb env info"));
  REFBUS_RETURN_IF_ERROR(LmdbStatus(mdb_env_stat(env, &stat), "lmdb env stat"));
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    return IoError("cannot stat " + file + ": " + std::strerror(errno));
  }
  const uint64_t psize = stat.ms_psize;
  const uint64_t pages = static_cast<uint64_t>(info.me_last_pgno) + 1;
  const uint64_t have = static_cast<uint64_t>(st.st_size) / psize;
  if (have < pages && pages - have > kMaxUnwrittenTail && pages - have > pages / 8) {
    return Malformed(file + " is truncated: it has " + std::to_string(st.st_size) +
                     " bytes, but its pages reach to byte " + std::to_string(pages * psize) +
                     "; restore the data directory from a backup");
  }
  return Status::Ok();
}

Result<std::unique_ptr<Env>> Env::Open(const std::string& dir, const EnvOptions& options) {
  REFBUS_RETURN_IF_ERROR(MakeDirectories(dir, 0700));
  std::unique_ptr<Env> env(new Env());
  env->dir_ = dir;
  std::string lock = dir + "/LOCK.refbus";
  env->lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (env->lock_fd_ < 0) {
    return IoError("cannot open " + lock + ": " + std::strerror(errno));
  }
  if (::flock(env->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return FailedPrecondition("data directory " + dir + " is in use by another process (lock " +
                              lock + " is held)");
  }
  int rc = mdb_env_create(&env->env_);
  if (rc != MDB_SUCCESS) return LmdbStatus(rc, "lmdb env create");
  REFBUS_RETURN_IF_ERROR(
      LmdbStatus(mdb_env_set_mapsize(env->env_, options.map_size_bytes), "lmdb set map size"));
  REFBUS_RETURN_IF_ERROR(
      LmdbStatus(mdb_env_set_maxdbs(env->env_, options.max_dbs), "lmdb set max dbs"));
  REFBUS_RETURN_IF_ERROR(
      LmdbStatus(mdb_env_set_maxreaders(env->env_, options.max_readers), "lmdb set max readers"));
  rc = mdb_env_open(env->env_, dir.c_str(), options.env_flags, 0600);
  if (rc != MDB_SUCCESS) {
    return LmdbStatus(rc, "cannot open the LMDB data in " + dir +
                              " (is it a refbus data directory of this version?)");
  }
  REFBUS_RETURN_IF_ERROR(CheckFileHoldsItsPages(env->env_, dir + "/data.mdb"));
  int dead = 0;
  REFBUS_RETURN_IF_ERROR(LmdbStatus(mdb_reader_check(env->env_, &dead), "lmdb reader check"));
  return env;
}

Env::~Env() {
  if (env_ != nullptr) mdb_env_close(env_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

Result<MDB_dbi> Env::OpenDb(const std::string& name, unsigned flags) {
  REFBUS_ASSIGN_OR_RETURN(Txn txn, BeginWrite());
  MDB_dbi dbi = 0;
  int rc = mdb_dbi_open(txn.raw(), name.c_str(), flags | MDB_CREATE, &dbi);
  if (rc != MDB_SUCCESS) return LmdbStatus(rc, "lmdb open database " + name);
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return dbi;
}

Result<Txn> Env::BeginRead() const {
  MDB_txn* t = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &t);
  if (rc != MDB_SUCCESS) return LmdbStatus(rc, "lmdb begin read");
  return Txn(t, false);
}

Result<Txn> Env::BeginWrite() {
  MDB_txn* t = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &t);
  if (rc != MDB_SUCCESS) return LmdbStatus(rc, "lmdb begin write");
  return Txn(t, true);
}

Result<std::pair<size_t, size_t>> Env::Usage() const {
  MDB_envinfo info{};
  MDB_stat st{};
  REFBUS_RETURN_IF_ERROR(LmdbStatus(mdb_env_info(env_, &info), "lmdb env info"));
  REFBUS_RETURN_IF_ERROR(LmdbStatus(mdb_env_stat(env_, &st), "lmdb env stat"));
  return std::pair<size_t, size_t>((info.me_last_pgno + 1) * st.ms_psize, info.me_mapsize);
}

Status Env::Grow(size_t new_map_size_bytes) {
  return LmdbStatus(mdb_env_set_mapsize(env_, new_map_size_bytes), "lmdb grow map");
}

Status Env::CopyTo(const std::string& dir) const {
  REFBUS_RETURN_IF_ERROR(MakeDirectories(dir, 0700));
  return LmdbStatus(mdb_env_copy2(env_, dir.c_str(), MDB_CP_COMPACT), "lmdb copy to " + dir);
}

Result<std::unique_ptr<Env>> Env::OpenCopy(const std::string& file, unsigned max_dbs) {
  std::unique_ptr<Env> env(new Env());
  env->dir_ = file;
  int rc = mdb_env_create(&env->env_);
  if (rc != MDB_SUCCESS) return LmdbStatus(rc, "lmdb env create");
  REFBUS_RETURN_IF_ERROR(LmdbStatus(mdb_env_set_maxdbs(env->env_, max_dbs), "lmdb set max dbs"));
  // No map size: the one recorded in the file (at least the size of its data) is used.
  rc = mdb_env_open(env->env_, file.c_str(), MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK, 0600);
  if (rc != MDB_SUCCESS) return LmdbStatus(rc, "cannot open the LMDB copy " + file);
  REFBUS_RETURN_IF_ERROR(CheckFileHoldsItsPages(env->env_, file));
  return env;
}

Result<MDB_dbi> Env::FindDb(const std::string& name) {
  REFBUS_ASSIGN_OR_RETURN(Txn txn, BeginRead());
  MDB_dbi dbi = 0;
  int rc = mdb_dbi_open(txn.raw(), name.c_str(), 0, &dbi);
  if (rc != MDB_SUCCESS) return LmdbStatus(rc, "lmdb open database " + name);
  // Committing (not aborting) the read transaction keeps the handle in the environment.
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return dbi;
}

Result<std::map<std::string, uint64_t>> Env::DatabaseCounts() {
  std::map<std::string, uint64_t> out;
  REFBUS_ASSIGN_OR_RETURN(Txn txn, BeginRead());
  MDB_dbi main_dbi = 0;
  REFBUS_RETURN_IF_ERROR(
      LmdbStatus(mdb_dbi_open(txn.raw(), nullptr, 0, &main_dbi), "lmdb open main database"));
  std::vector<std::string> names;
  {
    REFBUS_ASSIGN_OR_RETURN(Cursor c, Cursor::Open(txn, main_dbi));
    REFBUS_ASSIGN_OR_RETURN(auto item, c.First());
    while (item) {
      names.emplace_back(reinterpret_cast<const char*>(item->key.data()), item->key.size());
      REFBUS_ASSIGN_OR_RETURN(item, c.Next());
    }
  }
  for (const auto& name : names) {
    MDB_dbi dbi = 0;
    int rc = mdb_dbi_open(txn.raw(), name.c_str(), 0, &dbi);
    if (rc == MDB_INCOMPATIBLE) continue;  // a plain key in the main database, not a database
    if (rc != MDB_SUCCESS) return LmdbStatus(rc, "lmdb open database " + name);
    REFBUS_ASSIGN_OR_RETURN(out[name], txn.Count(dbi));
  }
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return out;
}

namespace {

// An MDB_env of this process's own, closed with it.
class RawEnv {
 public:
  RawEnv() = default;
  RawEnv(const RawEnv&) = delete;
  RawEnv& operator=(const RawEnv&) = delete;
  ~RawEnv() {
    if (env_ != nullptr) mdb_env_close(env_);
  }
  Status Create() { return LmdbStatus(mdb_env_create(&env_), "lmdb env create"); }
  MDB_env* get() const { return env_; }

 private:
  MDB_env* env_ = nullptr;
};

// Opens the environment in src_dir read-only beside its writer (HotCopy says how).
Status OpenCopySource(const std::string& src_dir, unsigned max_dbs, RawEnv& env) {
  std::string data_file = src_dir + "/data.mdb";
  struct stat st {};
  if (::stat(data_file.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) return NotFound("no LMDB store in " + src_dir + " (no data.mdb)");
    return IoError("cannot stat " + data_file + ": " + ErrnoText(err));
  }
  std::string lock_file = src_dir + "/lock.mdb";
  struct stat lock_st {};
  const bool lock_existed = ::stat(lock_file.c_str(), &lock_st) == 0;
  REFBUS_RETURN_IF_ERROR(env.Create());
  if (max_dbs > 0) {
    REFBUS_RETURN_IF_ERROR(LmdbStatus(mdb_env_set_maxdbs(env.get(), max_dbs), "lmdb max dbs"));
  }
  int rc = mdb_env_open(env.get(), src_dir.c_str(), MDB_RDONLY, 0600);
  if (rc != MDB_SUCCESS) {
    return LmdbStatus(rc, "cannot open the LMDB store in " + src_dir +
                              " read-only (run as the user the service runs as)");
  }
  if (!lock_existed && ::geteuid() == 0 && ::chown(lock_file.c_str(), st.st_uid, st.st_gid) != 0) {
    // Made by root for a stopped store: the service, under its own user, could not open it.
    return IoError("cannot give " + lock_file + " to the owner of " + data_file + ": " +
                   ErrnoText(errno));
  }
  return Status::Ok();
}

// The writer grew its map beyond ours: adopt the size it recorded. REQUIRES: no
// transaction of this process is active on env.
Status AdoptMapSize(MDB_env* env) {
  return LmdbStatus(mdb_env_set_mapsize(env, 0), "lmdb adopt map size");
}

// A compacted copy of env into fd (restarted if the writer grows its map); its size.
Result<uint64_t> CopyCompacted(MDB_env* env, int fd, const std::string& what) {
  constexpr int kAttempts = 5;
  int rc = MDB_SUCCESS;
  for (int attempt = 1;; ++attempt) {
    rc = mdb_env_copyfd2(env, fd, MDB_CP_COMPACT);
    if (rc != MDB_MAP_RESIZED || attempt == kAttempts) break;
    REFBUS_RETURN_IF_ERROR(AdoptMapSize(env));
    if (::ftruncate(fd, 0) != 0 || ::lseek(fd, 0, SEEK_SET) != 0) {
      return IoError(std::string("cannot restart the copy: ") + ErrnoText(errno));
    }
  }
  if (rc != MDB_SUCCESS) return LmdbStatus(rc, "lmdb copy of " + what);
  struct stat out {};
  if (::fstat(fd, &out) != 0) {
    return IoError(std::string("cannot stat the copy: ") + ErrnoText(errno));
  }
  return static_cast<uint64_t>(out.st_size);
}

// A read transaction on a source opened by OpenCopySource, adopting a grown map.
Result<MDB_txn*> BeginCopyRead(MDB_env* env) {
  constexpr int kAttempts = 5;
  for (int attempt = 1;; ++attempt) {
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn);
    if (rc == MDB_SUCCESS) return txn;
    if (rc != MDB_MAP_RESIZED || attempt == kAttempts) return LmdbStatus(rc, "lmdb read txn");
    REFBUS_RETURN_IF_ERROR(AdoptMapSize(env));
  }
}

// Copies database `name` (absent: created empty) from the read transaction to the write one.
Status CopyDatabase(MDB_txn* from, MDB_txn* to, const std::string& name) {
  MDB_dbi src = 0, dst = 0;
  int rc = mdb_dbi_open(from, name.c_str(), 0, &src);
  if (rc == MDB_NOTFOUND) {
    return LmdbStatus(mdb_dbi_open(to, name.c_str(), MDB_CREATE, &dst), "lmdb create " + name);
  }
  REFBUS_RETURN_IF_ERROR(LmdbStatus(rc, "lmdb open database " + name));
  unsigned flags = 0;
  REFBUS_RETURN_IF_ERROR(LmdbStatus(mdb_dbi_flags(from, src, &flags), "lmdb flags of " + name));
  REFBUS_RETURN_IF_ERROR(
      LmdbStatus(mdb_dbi_open(to, name.c_str(), MDB_CREATE | flags, &dst), "lmdb create " + name));
  MDB_cursor* cur = nullptr;
  REFBUS_RETURN_IF_ERROR(LmdbStatus(mdb_cursor_open(from, src, &cur), "lmdb cursor " + name));
  MDB_val k{}, v{};
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    rc = mdb_put(to, dst, &k, &v, 0);
    if (rc != MDB_SUCCESS) break;
  }
  mdb_cursor_close(cur);
  return rc == MDB_NOTFOUND ? Status::Ok() : LmdbStatus(rc, "lmdb copy of " + name);
}

}  // namespace

Result<uint64_t> HotCopy(const std::string& src_dir, int fd) {
  RawEnv env;
  REFBUS_RETURN_IF_ERROR(OpenCopySource(src_dir, 0, env));
  return CopyCompacted(env.get(), fd, src_dir);
}

Result<uint64_t> HotCopyDatabases(const std::string& src_dir,
                                  const std::vector<std::string>& databases,
                                  const std::string& scratch_file, int fd) {
  RawEnv src;
  REFBUS_RETURN_IF_ERROR(
      OpenCopySource(src_dir, static_cast<unsigned>(databases.size()) + 64, src));
  MDB_envinfo info{};
  REFBUS_RETURN_IF_ERROR(LmdbStatus(mdb_env_info(src.get(), &info), "lmdb env info"));
  // The scratch copy is thrown away once copied (below, failures included), and holds
  // only what the backup holds: written without locks or syncs.
  struct Scratch {
    std::string path;
    ~Scratch() { ::unlink(path.c_str()); }
  } scratch{scratch_file};
  RawEnv dst;
  REFBUS_RETURN_IF_ERROR(dst.Create());
  REFBUS_RETURN_IF_ERROR(LmdbStatus(
      mdb_env_set_maxdbs(dst.get(), static_cast<MDB_dbi>(databases.size()) + 1), "lmdb max dbs"));
  REFBUS_RETURN_IF_ERROR(LmdbStatus(mdb_env_set_mapsize(dst.get(), info.me_mapsize), "lmdb map"));
  REFBUS_RETURN_IF_ERROR(LmdbStatus(
      mdb_env_open(dst.get(), scratch_file.c_str(), MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOSYNC, 0600),
      "lmdb scratch copy " + scratch_file));
  {
    REFBUS_ASSIGN_OR_RETURN(MDB_txn * from, BeginCopyRead(src.get()));
    MDB_txn* to = nullptr;
    int rc = mdb_txn_begin(dst.get(), nullptr, 0, &to);
    Status s = LmdbStatus(rc, "lmdb scratch txn");
    for (size_t i = 0; s.ok() && i < databases.size(); ++i) {
      s = CopyDatabase(from, to, databases[i]);
    }
    mdb_txn_abort(from);  // one snapshot: every database from the same read transaction
    if (!s.ok()) {
      if (to != nullptr) mdb_txn_abort(to);
      return s;
    }
    REFBUS_RETURN_IF_ERROR(LmdbStatus(mdb_txn_commit(to), "lmdb scratch commit"));
  }
  return CopyCompacted(dst.get(), fd, src_dir);
}

Bytes U64Key(uint64_t v) {
  Bytes b;
  b.reserve(8);
  AppendU64BigEndian(b, v);
  return b;
}

uint64_t ReadU64Key(ByteView key) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | key[i];
  return v;
}

}  // namespace refbus::lmdb
