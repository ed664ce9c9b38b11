#include "core/lmdb_backup.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "core/file.h"
#include "core/hash.h"

namespace refbus::lmdb {
namespace {

using Json = nlohmann::json;

constexpr char kLockFile[] = "LOCK.refbus";
constexpr char kDataFile[] = "data.mdb";
constexpr char kLmdbLockFile[] = "lock.mdb";
constexpr size_t kMaxManifestBytes = size_t{1} << 20;
constexpr size_t kChunk = size_t{1} << 20;

std::string Join(const std::string& dir, const std::string& name) { return dir + "/" + name; }

std::string Parent(const std::string& path) {
  auto p = std::filesystem::path(path).parent_path();
  return p.empty() ? std::string(".") : p.string();
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // close(2) reports delayed write errors: checked where data was written.
  Status Close(const std::string& what) {
    int fd = std::exchange(fd_, -1);
    if (fd >= 0 && ::close(fd) != 0)
      return IoError("cannot close " + what + ": " + ErrnoText(errno));
    return Status::Ok();
  }

 private:
  int fd_;
};

Status FsyncDir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 || ::fsync(fd.get()) != 0) {
    return IoError("cannot fsync directory " + dir + ": " + ErrnoText(errno));
  }
  return Status::Ok();
}

// A new file, mode exactly 0600 from the start, never an existing one or a symlink.
Result<Fd> CreatePrivateFile(const std::string& path) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (fd.get() < 0) {
    int err = errno;
    if (err == EEXIST) return AlreadyExists(path + " exists; refusing to overwrite it");
    return IoError("cannot create " + path + ": " + ErrnoText(err));
  }
  if (::fchmod(fd.get(), 0600) != 0) {
    return IoError("cannot set mode of " + path + ": " + ErrnoText(errno));
  }
  return fd;
}

Result<Fd> OpenRegularForReading(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) {
    int err = errno;
    if (err == ENOENT) return NotFound("no such file: " + path);
    if (err == ELOOP) return InvalidArgument(path + " is a symbolic link, not a backup file");
    if (err == EACCES) return PermissionDenied("cannot read " + path + ": " + ErrnoText(err));
    return IoError("cannot open " + path + ": " + ErrnoText(err));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return IoError("cannot stat " + path + ": " + ErrnoText(errno));
  if (!S_ISREG(st.st_mode)) return InvalidArgument(path + " is not a regular file");
  return fd;
}

Status ReadAll(int fd, const std::string& path, Bytes& buf, size_t* got) {
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("cannot read " + path + ": " + ErrnoText(errno));
    *got = static_cast<size_t>(n);
    return Status::Ok();
  }
}

Status WriteAll(int fd, const std::string& path, ByteView data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      if (err == ENOSPC || err == EDQUOT) {
        return ResourceExhausted("cannot write " + path + ": " + ErrnoText(err));
      }
      return IoError("cannot write " + path + ": " + ErrnoText(err));
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// SHA-256 (hex) and size of a regular file, read in full.
Result<std::pair<std::string, uint64_t>> HashFile(const std::string& path) {
  REFBUS_ASSIGN_OR_RETURN(Fd fd, OpenRegularForReading(path));
  Sha256Hasher h;
  Bytes buf(kChunk);
  uint64_t total = 0;
  for (;;) {
    size_t n = 0;
    REFBUS_RETURN_IF_ERROR(ReadAll(fd.get(), path, buf, &n));
    if (n == 0) break;
    h.Update(ByteView(buf.data(), n));
    total += n;
  }
  Sha256Digest d = h.Finish();
  return std::make_pair(HexEncode(ByteView(d.data(), d.size())), total);
}

// Copies src to a new file dst (0600), hashing what it copies; dst is fsynced and kept
// only if its size and SHA-256 are the expected ones.
Status CopyChecked(const std::string& src, const std::string& dst, uint64_t expected_bytes,
                   const std::string& expected_sha256) {
  REFBUS_ASSIGN_OR_RETURN(Fd in, OpenRegularForReading(src));
  REFBUS_ASSIGN_OR_RETURN(Fd out, CreatePrivateFile(dst));
  Sha256Hasher h;
  Bytes buf(kChunk);
  uint64_t total = 0;
  Status s;
  for (;;) {
    size_t n = 0;
    s = ReadAll(in.get(), src, buf, &n);
    if (!s.ok() || n == 0) break;
    h.Update(ByteView(buf.data(), n));
    total += n;
    s = WriteAll(out.get(), dst, ByteView(buf.data(), n));
    if (!s.ok()) break;
  }
  if (s.ok() && ::fsync(out.get()) != 0)
    s = IoError("cannot fsync " + dst + ": " + ErrnoText(errno));
  if (Status c = out.Close(dst); s.ok()) s = c;
  if (s.ok()) {
    Sha256Digest d = h.Finish();
    std::string got = HexEncode(ByteView(d.data(), d.size()));
    if (total != expected_bytes || got != expected_sha256) {
      s = Malformed(src + " changed while it was copied (now " + std::to_string(total) +
                    " bytes, SHA-256 " + got + "; the manifest says " +
                    std::to_string(expected_bytes) + " bytes, " + expected_sha256 + ")");
    }
  }
  if (!s.ok()) ::unlink(dst.c_str());
  return s;
}

// Names in dir, but "." and "..". NotFound if dir does not exist.
Result<std::vector<std::string>> ListDir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    int err = errno;
    if (err == ENOENT) return NotFound("no such folder: " + dir);
    if (err == ENOTDIR) return InvalidArgument(dir + " is not a folder");
    return IoError("cannot list " + dir + ": " + ErrnoText(err));
  }
  std::vector<std::string> out;
  errno = 0;
  // readdir is safe on a stream no other thread uses (glibc; POSIX 2024).
  while (const dirent* e = ::readdir(d)) {  // NOLINT(concurrency-mt-unsafe)
    std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(std::move(name));
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) return IoError("cannot list " + dir + ": " + ErrnoText(err));
  return out;
}

// A file name the manifest may give: a plain name, no path.
bool PlainName(const std::string& name) {
  return !name.empty() && name.size() <= 255 && name[0] != '.' &&
         name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
}

// The nearest existing folder at or above path, with its stat.
Result<std::pair<std::string, struct stat>> NearestExisting(const std::string& path) {
  std::filesystem::path p = std::filesystem::absolute(path).lexically_normal();
  for (;;) {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) return InvalidArgument(p.string() + " is not a folder");
      return std::make_pair(p.string(), st);
    }
    if (errno != ENOENT) return IoError("cannot stat " + p.string() + ": " + ErrnoText(errno));
    if (!p.has_parent_path() || p.parent_path() == p) return NotFound("no folder above " + path);
    p = p.parent_path();
  }
}

// Creates path and its missing parents with mode 0700, appending each folder it made
// (parents first) to created.
Status MakePrivateDirs(const std::string& path, std::vector<std::string>* created) {
  std::filesystem::path target = std::filesystem::absolute(path).lexically_normal();
  std::vector<std::filesystem::path> missing;
  for (std::filesystem::path p = target; !p.empty() && p != p.parent_path(); p = p.parent_path()) {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) return InvalidArgument(p.string() + " is not a folder");
      break;
    }
    missing.push_back(p);
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0700) != 0) {
      return IoError("cannot create folder " + it->string() + ": " + ErrnoText(errno));
    }
    created->push_back(it->string());
    if (::chmod(it->c_str(), 0700) != 0) {  // mkdir applies the umask
      return IoError("cannot set mode of " + it->string() + ": " + ErrnoText(errno));
    }
    REFBUS_RETURN_IF_ERROR(FsyncDir(Parent(it->string())));
  }
  return Status::Ok();
}

std::string Hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "";
  return buf;
}

UnixMillis NowMs() { return SystemClock::Get().NowMillis(); }

// A target data directory is free: nobody holds its lock (checked for every target first,
// so that a running process is named as such) and it holds nothing but an unheld
// LOCK.refbus (left by a process that stopped). Missing is free.
Status CheckNotInUse(const std::string& dir, std::string_view what) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return IoError("cannot stat " + dir + ": " + ErrnoText(errno));
  }
  if (!S_ISDIR(st.st_mode)) return InvalidArgument(dir + " is not a folder");
  REFBUS_ASSIGN_OR_RETURN(bool held, DirectoryLockHeld(dir));
  if (held) {
    return FailedPrecondition(dir + " is in use: a running " + std::string(what) + " holds " +
                              Join(dir, kLockFile) + " (stop it first)");
  }
  return Status::Ok();
}

Status CheckEmpty(const std::string& dir) {
  if (!PathExists(dir)) return Status::Ok();
  REFBUS_ASSIGN_OR_RETURN(auto names, ListDir(dir));
  std::string listed;
  for (const auto& n : names) {
    if (n == kLockFile) continue;
    if (!listed.empty()) listed += ", ";
    listed += n;
  }
  if (!listed.empty()) {
    return AlreadyExists(dir + " is not empty (it holds " + listed +
                         "): a restore never overwrites a store; move the folder aside (mv " + dir +
                         " " + dir + ".old) or name another data directory");
  }
  return Status::Ok();
}

Json FactToJson(const BackupFact& f) {
  if (const auto* n = std::get_if<uint64_t>(&f)) return *n;
  return std::get<std::string>(f);
}

}  // namespace

// ---------------------------------------------------------------- manifest

const BackupEnvironment* BackupManifest::Find(std::string_view name) const {
  for (const auto& e : environments) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

Result<uint64_t> BackupManifest::Number(const std::string& key) const {
  auto it = facts.find(key);
  if (it == facts.end()) return NotFound("the manifest records no " + key);
  if (const auto* n = std::get_if<uint64_t>(&it->second)) return *n;
  return InvalidArgument("the manifest's " + key + " is not a number");
}

Result<std::string> BackupManifest::Text(const std::string& key) const {
  auto it = facts.find(key);
  if (it == facts.end()) return NotFound("the manifest records no " + key);
  if (const auto* s = std::get_if<std::string>(&it->second)) return *s;
  return InvalidArgument("the manifest's " + key + " is not text");
}

Bytes EncodeManifest(const BackupManifest& m) {
  Json envs = Json::array();
  for (const auto& e : m.environments) {
    Json dbs = Json::object();
    for (const auto& [name, n] : e.databases) dbs[name] = n;
    envs.push_back({{"name", e.name},
                    {"file", e.file},
                    {"source", e.source},
                    {"copied_ms", e.copied_ms},
                    {"bytes", e.bytes},
                    {"sha256", e.sha256},
                    {"databases", dbs}});
  }
  Json facts = Json::object();
  for (const auto& [k, v] : m.facts) facts[k] = FactToJson(v);
  Json j = {{"format", m.format},
            {"kind", m.kind},
            {"id", m.id},
            {"created_ms", m.created_ms},
            {"created_utc", FormatUtc(m.created_ms)},
            {"host", m.host},
            {"environments", envs},
            {"facts", facts}};
  std::string text = j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
  return Bytes(text.begin(), text.end());
}

Result<BackupManifest> ParseManifest(ByteView bytes) {
  Json j = Json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Malformed("the manifest is not a JSON object");
  auto text = [](const Json& o, const char* key) -> Result<std::string> {
    auto it = o.find(key);
    if (it == o.end() || !it->is_string()) {
      return Malformed(std::string("the manifest has no text field '") + key + "'");
    }
    return it->get<std::string>();
  };
  auto number = [](const Json& o, const char* key) -> Result<uint64_t> {
    auto it = o.find(key);
    if (it == o.end() || !it->is_number_unsigned()) {
      return Malformed(std::string("the manifest has no number field '") + key + "'");
    }
    return it->get<uint64_t>();
  };
  BackupManifest m;
  REFBUS_ASSIGN_OR_RETURN(m.format, text(j, "format"));
  if (m.format != kBackupFormat) {
    return Malformed("the manifest's format is '" + m.format + "', not '" + kBackupFormat + "'");
  }
  REFBUS_ASSIGN_OR_RETURN(m.kind, text(j, "kind"));
  REFBUS_ASSIGN_OR_RETURN(m.id, text(j, "id"));
  REFBUS_ASSIGN_OR_RETURN(uint64_t created, number(j, "created_ms"));
  m.created_ms = static_cast<UnixMillis>(created);
  REFBUS_ASSIGN_OR_RETURN(m.host, text(j, "host"));
  auto envs = j.find("environments");
  if (envs == j.end() || !envs->is_array() || envs->empty()) {
    return Malformed("the manifest lists no environments");
  }
  for (const auto& e : *envs) {
    if (!e.is_object()) return Malformed("an environment in the manifest is not an object");
    BackupEnvironment env;
    REFBUS_ASSIGN_OR_RETURN(env.name, text(e, "name"));
    REFBUS_ASSIGN_OR_RETURN(env.file, text(e, "file"));
    if (!PlainName(env.name) || env.file != env.name + ".mdb") {
      return Malformed("the manifest names file '" + env.file + "' for environment '" + env.name +
                       "': not a plain <name>.mdb");
    }
    if (m.Find(env.name) != nullptr) {
      return Malformed("the manifest lists environment '" + env.name + "' twice");
    }
    REFBUS_ASSIGN_OR_RETURN(env.source, text(e, "source"));
    REFBUS_ASSIGN_OR_RETURN(uint64_t copied, number(e, "copied_ms"));
    env.copied_ms = static_cast<UnixMillis>(copied);
    REFBUS_ASSIGN_OR_RETURN(env.bytes, number(e, "bytes"));
    REFBUS_ASSIGN_OR_RETURN(env.sha256, text(e, "sha256"));
    if (env.sha256.size() != 64 || !HexDecode(env.sha256).ok()) {
      return Malformed("the manifest's sha256 of " + env.file + " is not 64 hex digits");
    }
    auto dbs = e.find("databases");
    if (dbs == e.end() || !dbs->is_object()) {
      return Malformed("the manifest has no databases for " + env.file);
    }
    for (const auto& [name, n] : dbs->items()) {
      if (!n.is_number_unsigned()) return Malformed("the manifest's count of " + name + " is bad");
      env.databases[name] = n.get<uint64_t>();
    }
    m.environments.push_back(std::move(env));
  }
  auto facts = j.find("facts");
  if (facts == j.end() || !facts->is_object()) return Malformed("the manifest has no facts");
  for (const auto& [k, v] : facts->items()) {
    if (v.is_number_unsigned()) {
      m.facts[k] = v.get<uint64_t>();
    } else if (v.is_string()) {
      m.facts[k] = v.get<std::string>();
    } else {
      return Malformed("the manifest's fact '" + k + "' is neither a number nor text");
    }
  }
  return m;
}

// ---------------------------------------------------------------- BackupWriter

Result<std::unique_ptr<BackupWriter>> BackupWriter::Create(const std::string& out_dir) {
  std::unique_ptr<BackupWriter> w(new BackupWriter());
  w->dir_ = out_dir;
  struct stat st {};
  if (::stat(out_dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return AlreadyExists(out_dir + " exists and is not a folder");
    REFBUS_ASSIGN_OR_RETURN(auto names, ListDir(out_dir));
    if (!names.empty()) {
      return AlreadyExists(out_dir + " is not empty (it holds " + names.front() +
                           (names.size() > 1 ? " and more" : "") +
                           "): a backup never overwrites anything; name a new folder");
    }
    if (::chmod(out_dir.c_str(), 0700) != 0) {
      return IoError("cannot set mode 0700 on " + out_dir + ": " + ErrnoText(errno));
    }
  } else if (errno == ENOENT) {
    std::vector<std::string> created;
    Status s = MakePrivateDirs(out_dir, &created);
    // Only the backup folder itself is removed again if the backup fails; parents stay.
    w->created_dir_ = !created.empty();
    if (!s.ok()) return s;
  } else {
    return IoError("cannot stat " + out_dir + ": " + ErrnoText(errno));
  }
  w->manifest_.created_ms = NowMs();
  w->manifest_.host = Hostname();
  return w;
}

BackupWriter::~BackupWriter() {
  if (finished_) return;
  for (const auto& f : files_) ::unlink(f.c_str());
  if (created_dir_) ::rmdir(dir_.c_str());
}

Result<const BackupEnvironment*> BackupWriter::AddEnvironment(
    const std::string& name, const std::string& src_dir,
    const std::vector<std::string>& only_databases) {
  if (!PlainName(name) || manifest_.Find(name) != nullptr) {
    return InvalidArgument("bad or repeated environment name '" + name + "'");
  }
  BackupEnvironment env;
  env.name = name;
  env.file = name + ".mdb";
  env.source = std::filesystem::absolute(src_dir).lexically_normal().string();
  {
    // A backup inside the store's own folder would be lost with it, and would make the
    // folder unfit for a restore.
    std::error_code ec1, ec2;
    auto src = std::filesystem::weakly_canonical(src_dir, ec1);
    auto out = std::filesystem::weakly_canonical(dir_, ec2);
    if (!ec1 && !ec2) {
      auto rel = out.lexically_relative(src);
      if (!rel.empty() && *rel.begin() != "..") {
        return InvalidArgument("the backup folder " + dir_ + " is inside the data directory " +
                               src_dir + "; put backups elsewhere (another disk, another host)");
      }
    }
  }
  std::string path = Join(dir_, env.file);
  REFBUS_ASSIGN_OR_RETURN(Fd fd, CreatePrivateFile(path));
  files_.push_back(path);
  env.copied_ms = NowMs();
  auto start = std::chrono::steady_clock::now();
  auto bytes = only_databases.empty()
                   ? HotCopy(src_dir, fd.get())
                   : HotCopyDatabases(src_dir, only_databases, Join(dir_, "." + name + ".scratch"),
                                      fd.get());
  if (!bytes.ok()) return bytes.status().WithContext("copying " + src_dir);
  if (::fsync(fd.get()) != 0) return IoError("cannot fsync " + path + ": " + ErrnoText(errno));
  REFBUS_RETURN_IF_ERROR(fd.Close(path));
  REFBUS_RETURN_IF_ERROR(FsyncDir(dir_));
  env.copy_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  REFBUS_ASSIGN_OR_RETURN(auto hashed, HashFile(path));
  env.sha256 = hashed.first;
  env.bytes = hashed.second;
  {
    REFBUS_ASSIGN_OR_RETURN(auto copy, Env::OpenCopy(path, 64));
    auto counts = copy->DatabaseCounts();
    if (!counts.ok()) return counts.status().WithContext("checking the copy " + path);
    env.databases = std::move(counts).value();
  }
  manifest_.environments.push_back(std::move(env));
  return &manifest_.environments.back();
}

Result<std::unique_ptr<Env>> BackupWriter::OpenCopy(const std::string& name,
                                                    unsigned max_dbs) const {
  const BackupEnvironment* e = manifest_.Find(name);
  if (e == nullptr) return NotFound("no environment '" + name + "' in this backup");
  return Env::OpenCopy(Join(dir_, e->file), max_dbs);
}

Result<std::string> BackupWriter::Finish() {
  if (manifest_.environments.empty()) return FailedPrecondition("nothing was copied");
  Bytes text = EncodeManifest(manifest_);
  std::string path = Join(dir_, kManifestFile);
  files_.push_back(path);
  REFBUS_RETURN_IF_ERROR(WriteFileAtomic(path, text, 0600));
  if (created_dir_) REFBUS_RETURN_IF_ERROR(FsyncDir(Parent(dir_)));
  finished_ = true;
  Sha256Digest d = Sha256Array(text);
  return HexEncode(ByteView(d.data(), d.size()));
}

// ---------------------------------------------------------------- reading and restoring

Result<BackupManifest> ReadBackup(const std::string& dir, std::string* manifest_sha256) {
  std::string path = Join(dir, kManifestFile);
  auto text = ReadFile(path, kMaxManifestBytes);
  if (!text.ok()) {
    if (text.status().code() == Status::Code::kNotFound) {
      return NotFound(dir + " holds no " + kManifestFile +
                      ": not a refbus backup, or one that did not finish");
    }
    return text.status();
  }
  auto m = ParseManifest(*text);
  if (!m.ok()) return m.status().WithContext(path);
  if (manifest_sha256 != nullptr) {
    Sha256Digest d = Sha256Array(*text);
    *manifest_sha256 = HexEncode(ByteView(d.data(), d.size()));
  }
  for (const auto& e : m->environments) {
    std::string file = Join(dir, e.file);
    auto h = HashFile(file);
    if (!h.ok()) return h.status().WithContext("backup file of environment " + e.name);
    if (h->second != e.bytes || h->first != e.sha256) {
      return Malformed(file + " does not match the manifest (" + std::to_string(h->second) +
                       " bytes, SHA-256 " + h->first + "; the manifest says " +
                       std::to_string(e.bytes) + " bytes, " + e.sha256 +
                       "): the backup is damaged or was altered; do not restore it");
    }
  }
  return m;
}

Result<bool> DirectoryLockHeld(const std::string& dir) {
  std::string lock = Join(dir, kLockFile);
  Fd fd(::open(lock.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return false;
    return IoError("cannot open " + lock + ": " + ErrnoText(errno));
  }
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) return false;  // released with the fd
  if (errno == EWOULDBLOCK) return true;
  return IoError("cannot test the lock " + lock + ": " + ErrnoText(errno));
}

Result<std::unique_ptr<Restorer>> Restorer::Begin(const std::string& backup_dir,
                                                  std::string_view kind, const std::string& id,
                                                  const std::vector<RestoreTarget>& targets) {
  std::unique_ptr<Restorer> r(new Restorer());
  REFBUS_ASSIGN_OR_RETURN(r->manifest_, ReadBackup(backup_dir, &r->manifest_sha256_));
  const BackupManifest& m = r->manifest_;
  if (m.kind != kind || m.id != id) {
    return FailedPrecondition(backup_dir + " is a backup of " + m.kind + " " + m.id + ", not of " +
                              std::string(kind) + " " + id + " (the id in the configuration)");
  }
  for (const auto& e : m.environments) {
    bool named = false;
    for (const auto& t : targets) named = named || t.name == e.name;
    if (!named) {
      return FailedPrecondition(backup_dir + " holds environment '" + e.name + "', which a " +
                                std::string(kind) + " does not have");
    }
  }
  for (const auto& t : targets) {
    if (m.Find(t.name) == nullptr) {
      return FailedPrecondition(backup_dir + " holds no environment '" + t.name + "'");
    }
    REFBUS_RETURN_IF_ERROR(CheckNotInUse(t.dir, kind));
  }
  for (const auto& t : targets) {
    REFBUS_RETURN_IF_ERROR(CheckEmpty(t.dir));
    Target tg;
    tg.target = t;
    tg.staging = std::filesystem::absolute(t.dir).lexically_normal().string() + ".restoring";
    if (PathExists(tg.staging)) {
      return FailedPrecondition(tg.staging +
                                " exists, left by an interrupted restore: remove it (rm -r " +
                                tg.staging + ") and run the restore again");
    }
    REFBUS_ASSIGN_OR_RETURN(auto ref, NearestExisting(t.dir));
    tg.ref_uid = ref.second.st_uid;
    tg.ref_gid = ref.second.st_gid;
    r->targets_.push_back(std::move(tg));
  }
  for (const auto& tg : r->targets_) {
    REFBUS_RETURN_IF_ERROR(MakePrivateDirs(tg.staging, &r->created_dirs_));
    const BackupEnvironment* e = m.Find(tg.target.name);
    REFBUS_RETURN_IF_ERROR(
        CopyChecked(Join(backup_dir, e->file), Join(tg.staging, kDataFile), e->bytes, e->sha256));
    REFBUS_RETURN_IF_ERROR(FsyncDir(tg.staging));
  }
  return r;
}

Restorer::~Restorer() {
  if (committed_) return;
  for (const auto& tg : targets_) {
    for (const char* f : {kDataFile, kLmdbLockFile, kLockFile}) {
      ::unlink(Join(tg.staging, f).c_str());
    }
  }
  for (auto it = created_dirs_.rbegin(); it != created_dirs_.rend(); ++it) ::rmdir(it->c_str());
}

std::string Restorer::StagingDir(const std::string& name) const {
  for (const auto& tg : targets_) {
    if (tg.target.name == name) return tg.staging;
  }
  std::abort();  // REQUIRES: a target's name
}

namespace {

// Restorer::Commit's steps.

// A target data directory, locked from Commit's checks until Commit returns.
struct TakenTarget {
  std::string dir;
  Fd lock;
  bool created_dir = false;
  bool created_lock = false;
};

// Undoes TakeTarget for every target (one not taken is left alone): removes the lock
// files and folders Commit made, and lets the locks go.
void ReleaseTargets(std::vector<TakenTarget>& taken) {
  for (auto& t : taken) {
    if (t.created_lock) ::unlink(Join(t.dir, kLockFile).c_str());
    t.lock = Fd();
    if (t.created_dir) ::rmdir(t.dir.c_str());
  }
}

// The check of CheckEmpty again, made under the lock.
Status CheckStillEmpty(const std::string& dir) {
  REFBUS_ASSIGN_OR_RETURN(auto names, ListDir(dir));
  for (const auto& n : names) {
    if (n != kLockFile) {
      return AlreadyExists(dir + " is no longer empty (it holds " + n + "); nothing was restored");
    }
  }
  return Status::Ok();
}

// Creates dir (0700) if it is missing, takes its LOCK.refbus and checks that it holds
// nothing else. Records in t what it made, for ReleaseTargets, also when it fails.
Status TakeTarget(const std::string& dir, const std::string& kind, TakenTarget* t) {
  t->dir = dir;
  if (!PathExists(dir)) {
    if (::mkdir(dir.c_str(), 0700) != 0 || ::chmod(dir.c_str(), 0700) != 0) {
      return IoError("cannot create folder " + dir + ": " + ErrnoText(errno));
    }
    t->created_dir = true;
  }
  std::string lock = Join(dir, kLockFile);
  t->created_lock = !PathExists(lock);
  t->lock = Fd(::open(lock.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (t->lock.get() < 0) return IoError("cannot open " + lock + ": " + ErrnoText(errno));
  if (::flock(t->lock.get(), LOCK_EX | LOCK_NB) != 0) {
    return FailedPrecondition(dir + " is in use: a running " + kind + " holds " + lock +
                              " (it started during the restore?); nothing was restored");
  }
  if (::fchmod(t->lock.get(), 0600) != 0) {
    return IoError("cannot set mode of " + lock + ": " + ErrnoText(errno));
  }
  return CheckStillEmpty(dir);
}

// Renames each (from, to) in order, all or nothing: when one fails, the ones already
// moved are moved back and the failure is returned.
Status RenameAll(const std::vector<std::pair<std::string, std::string>>& moves) {
  for (size_t i = 0; i < moves.size(); ++i) {
    const auto& [from, to] = moves[i];
    if (::rename(from.c_str(), to.c_str()) != 0) {
      Status s = IoError("cannot move " + from + " to " + to + ": " + ErrnoText(errno));
      for (size_t j = 0; j < i; ++j) {
        (void)::rename(moves[j].second.c_str(), moves[j].first.c_str());
      }
      return s;
    }
  }
  return Status::Ok();
}

void KeepFirstError(Status* result, Status s) {
  if (result->ok() && !s.ok()) *result = std::move(s);
}

// After the move: fsyncs the target (and its parent, if Commit made the target) and
// removes the staging folder. Every step runs; returns the first failure.
Status SettleTarget(const std::string& dir, const std::string& staging, bool created_dir) {
  Status result;
  KeepFirstError(&result, FsyncDir(dir));
  if (created_dir) KeepFirstError(&result, FsyncDir(Parent(dir)));
  // The staged store's LMDB lock file and directory lock go; the service makes its own.
  for (const char* f : {kLmdbLockFile, kLockFile}) ::unlink(Join(staging, f).c_str());
  if (::rmdir(staging.c_str()) != 0) {
    KeepFirstError(&result, IoError("cannot remove " + staging + ": " + ErrnoText(errno)));
  }
  return result;
}

// A path the restore made and the owner it is to have.
struct OwnedPath {
  std::string path;
  uid_t uid;
  gid_t gid;
};

// Every path gets its owner; returns the first failure.
Status GiveOwners(const std::vector<OwnedPath>& paths) {
  Status result;
  for (const auto& p : paths) {
    if (::lchown(p.path.c_str(), p.uid, p.gid) != 0) {
      KeepFirstError(&result, IoError("cannot give " + p.path + " to uid " + std::to_string(p.uid) +
                                      ": " + ErrnoText(errno)));
    }
  }
  return result;
}

}  // namespace

Status Restorer::Commit() {
  if (committed_) return FailedPrecondition("the restore was already committed");
  std::vector<TakenTarget> taken(targets_.size());
  // Every target is locked and checked before the first one is moved in.
  for (size_t i = 0; i < targets_.size(); ++i) {
    Status s = TakeTarget(targets_[i].target.dir, manifest_.kind, &taken[i]);
    if (!s.ok()) {
      ReleaseTargets(taken);
      return s;
    }
  }
  std::vector<std::pair<std::string, std::string>> moves;
  for (const Target& tg : targets_) {
    moves.emplace_back(Join(tg.staging, kDataFile), Join(tg.target.dir, kDataFile));
  }
  if (Status s = RenameAll(moves); !s.ok()) {
    ReleaseTargets(taken);
    return s;
  }
  committed_ = true;
  Status result;
  for (size_t i = 0; i < targets_.size(); ++i) {
    const Target& tg = targets_[i];
    KeepFirstError(&result, SettleTarget(tg.target.dir, tg.staging, taken[i].created_dir));
  }
  if (::geteuid() == 0 && !targets_.empty()) {
    // The service runs as its own user: what root made here must be the service's.
    std::vector<OwnedPath> paths;
    for (size_t i = 0; i < targets_.size(); ++i) {
      const Target& tg = targets_[i];
      paths.push_back({Join(tg.target.dir, kDataFile), tg.ref_uid, tg.ref_gid});
      paths.push_back({Join(tg.target.dir, kLockFile), tg.ref_uid, tg.ref_gid});
      if (taken[i].created_dir) paths.push_back({tg.target.dir, tg.ref_uid, tg.ref_gid});
    }
    const Target& first = targets_.front();
    for (const auto& d : created_dirs_) {
      if (PathExists(d)) paths.push_back({d, first.ref_uid, first.ref_gid});
    }
    KeepFirstError(&result, GiveOwners(paths));
    owner_uid_ = first.ref_uid;
  }
  for (auto& t : taken) t.lock = Fd();
  return result;
}

}  // namespace refbus::lmdb
