// A private temporary folder for the fuzz targets whose decoders read files
// (keyfile_fuzz, config_fuzz): one per process, removed at exit. It lives on /dev/shm when
// that is writable, so the fsyncs of WriteFileAtomic (SaveIdentity) cost nothing.
//
// Thread safety: one fuzzing thread; not synchronized.
#ifndef REFBUS_TESTS_FUZZ_TEMP_DIR_H_
#define REFBUS_TESTS_FUZZ_TEMP_DIR_H_

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

#include "core/bytes.h"

namespace refbus::fuzz {

class TempDir {
 public:
  TempDir() {
    std::string base = "/tmp";
    if (const char* t = std::getenv("TMPDIR"); t != nullptr && *t != '\0') base = t;
    if (::access("/dev/shm", W_OK) == 0) base = "/dev/shm";
    std::string templ = base + "/refbus-fuzz-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      std::perror("fuzz: mkdtemp");
      std::abort();
    }
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

  // Writes bytes to <dir>/name with exactly this mode (whatever the umask or an earlier
  // mode of the file); returns the file's path. Aborts if the system refuses: the target
  // would otherwise test nothing.
  std::string Write(const std::string& name, ByteView bytes, mode_t mode) const {
    std::string p = path_ + "/" + name;
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0 || ::fchmod(fd, mode) != 0) {
      std::perror("fuzz: open");
      std::abort();
    }
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n <= 0) {
        std::perror("fuzz: write");
        std::abort();
      }
      done += static_cast<size_t>(n);
    }
    ::close(fd);
    return p;
  }

 private:
  std::string path_;
};

}  // namespace refbus::fuzz

#endif  // REFBUS_TESTS_FUZZ_TEMP_DIR_H_
