// Helpers shared by the unit tests: status assertions, temporary folders, raw file access.
//
// Header-only; every test binary includes it from the repository root
// (#include "tests/unit/test_util.h"). Nothing here is used by library code.
//
// Thread safety: single-threaded tests only (UmaskGuard changes a process-wide setting).
#ifndef REFBUS_TESTS_UNIT_TEST_UTIL_H_
#define REFBUS_TESTS_UNIT_TEST_UTIL_H_

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "core/bytes.h"
#include "core/status.h"

namespace refbus::test {

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

// EXPECT_TRUE(IsOk(x)) prints the status when it fails.
template <typename T>
::testing::AssertionResult IsOk(const T& r) {
  const Status& s = StatusOf(r);
  if (s.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected ok, got " << s.ToString();
}

// EXPECT_TRUE(HasCode(x, Status::Code::kExpired)).
template <typename T>
::testing::AssertionResult HasCode(const T& r, Status::Code code) {
  const Status& s = StatusOf(r);
  if (s.code() == code) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "expected code '" << CodeName(code) << "', got " << s.ToString();
}

inline ::testing::AssertionResult HasSubstr(std::string_view text, std::string_view part) {
  if (text.find(part) != std::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

// Code and a part of the message at once.
template <typename T>
::testing::AssertionResult HasError(const T& r, Status::Code code, std::string_view part) {
  const Status& s = StatusOf(r);
  if (s.code() == code && s.message().find(part) != std::string::npos) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "expected code '" << CodeName(code) << "' with a message containing '" << part
         << "', got " << s.ToString();
}

// Unwraps a Result in test setup code. A failure throws, which gtest reports as a failure
// of the running test (with the status text) instead of aborting the whole binary.
template <typename T>
T Must(Result<T> r) {
  if (!r.ok()) throw std::runtime_error("setup failed: " + r.status().ToString());
  return std::move(r).value();
}
inline void Must(const Status& s) {
  if (!s.ok()) throw std::runtime_error("setup failed: " + s.ToString());
}

// A fresh folder under /tmp, removed with everything in it when the object goes away.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/refbus-unit-XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    if (p == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = p;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  const std::string& path() const { return path_; }
  std::string Join(std::string_view name) const {
    return (std::filesystem::path(path_) / name).string();
  }

 private:
  std::string path_;
};

// Sets the process umask for one scope and restores the old one.
class UmaskGuard {
 public:
  explicit UmaskGuard(mode_t mask) : old_(::umask(mask)) {}
  UmaskGuard(const UmaskGuard&) = delete;
  UmaskGuard& operator=(const UmaskGuard&) = delete;
  ~UmaskGuard() { ::umask(old_); }

 private:
  mode_t old_;
};

// Permission bits of a file (-1 if it cannot be stat'ed).
inline int FileMode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

inline Bytes ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Replaces a file's content and sets its mode, without fsync: fast enough for loops that
// write hundreds of damaged variants of one file.
inline void WriteRaw(const std::string& path, ByteView data, mode_t mode) {
  ::unlink(path.c_str());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) throw std::runtime_error("cannot create " + path);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n <= 0) {
      ::close(fd);
      throw std::runtime_error("cannot write " + path);
    }
    done += static_cast<size_t>(n);
  }
  ::fchmod(fd, mode);
  ::close(fd);
}

}  // namespace refbus::test

#endif  // REFBUS_TESTS_UNIT_TEST_UTIL_H_
