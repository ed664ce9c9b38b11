#include "core/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

namespace refbus {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

std::string DirName(const std::string& path) {
  std::filesystem::path p(path);
  auto parent = p.parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

}  // namespace

Result<Bytes> ReadFile(const std::string& path, size_t max_bytes) {
  // O_NONBLOCK: a FIFO or device given as a path must not hang the open; it is refused
  // below as not a regular file.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) {
    int err = errno;
    if (err == ENOENT) return NotFound("no such file: " + path);
    if (err == EACCES) return PermissionDenied("cannot read " + path + ": " + ErrnoText(err));
    return IoError("cannot open " + path + ": " + ErrnoText(err));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return IoError("cannot stat " + path + ": " + ErrnoText(errno));
  if (!S_ISREG(st.st_mode)) return InvalidArgument(path + " is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return ResourceExhausted(path + " is " + std::to_string(st.st_size) +
                             " bytes, more than the limit of " + std::to_string(max_bytes));
  }
  Bytes out(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(fd.get(), out.data() + done, out.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("cannot read " + path + ": " + ErrnoText(errno));
    }
    if (n == 0) break;  // file shrank while reading
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

Status WriteFileAtomic(const std::string& path, ByteView data, mode_t mode) {
  std::string dir = DirName(path);
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  ::unlink(tmp.c_str());  // a leftover from a crashed writer with our pid
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
  if (fd.get() < 0) return IoError("cannot create " + tmp + ": " + ErrnoText(errno));
  // open() applies the umask; fchmod makes the mode exactly what was asked.
  if (::fchmod(fd.get(), mode) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return IoError("cannot set mode of " + tmp + ": " + ErrnoText(err));
  }
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::unlink(tmp.c_str());
      return IoError("cannot write " + tmp + ": " + ErrnoText(err));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return IoError("cannot fsync " + tmp + ": " + ErrnoText(err));
  }
  if (::close(fd.Release()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return IoError("cannot close " + tmp + ": " + ErrnoText(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return IoError("cannot rename " + tmp + " to " + path + ": " + ErrnoText(err));
  }
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() < 0 || ::fsync(dfd.get()) != 0) {
    return IoError("cannot fsync directory " + dir + ": " + ErrnoText(errno));
  }
  return Status::Ok();
}

Status CheckPrivateFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return NotFound("no such file: " + path);
    return IoError("cannot stat " + path + ": " + ErrnoText(errno));
  }
  if (!S_ISREG(st.st_mode)) return InvalidArgument(path + " is not a regular file");
  return CheckPrivateMode(path, st.st_mode, st.st_uid);
}

Status CheckPrivateMode(const std::string& path, mode_t mode, uid_t owner) {
  if ((mode & 077) != 0) {
    char text[8];
    std::snprintf(text, sizeof(text), "%04o", static_cast<unsigned>(mode & 07777));
    return PermissionDenied(path + " has mode " + text +
                            ", readable by others; a secret key file must be 0600 "
                            "(fix: chmod 600 " +
                            path + ")");
  }
  if (owner != ::geteuid()) {
    return PermissionDenied(path + " is owned by uid " + std::to_string(owner) +
                            ", not by this process's uid " + std::to_string(::geteuid()));
  }
  return Status::Ok();
}

bool PathExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

Status MakeDirectories(const std::string& path, mode_t mode) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return IoError("cannot create directory " + path + ": " + ec.message());
  if (::chmod(path.c_str(), mode) != 0) {
    return IoError("cannot set mode of " + path + ": " + ErrnoText(errno));
  }
  return Status::Ok();
}

}  // namespace refbus
