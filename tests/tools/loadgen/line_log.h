// An append-only file of lines (message ids in hex): refbus-loadgen's --acked-log and
// --received-log. Each line is one write(2) on an O_APPEND descriptor, so a process killed
// at any moment leaves whole lines only; a torn last line (power loss) is cut off when the
// file is opened again.
//
// Thread safety: none; one owner.
#ifndef REFBUS_TESTS_TOOLS_LOADGEN_LINE_LOG_H_
#define REFBUS_TESTS_TOOLS_LOADGEN_LINE_LOG_H_

#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "core/status.h"

namespace refbus::loadgen {

class LineLog {
 public:
  // Opens (creates) path; an empty path gives a log that discards. The lines already in
  // the file are added to *existing when it is not null.
  static Result<LineLog> Open(const std::string& path, std::set<std::string>* existing);

  LineLog(LineLog&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  LineLog& operator=(LineLog&&) = delete;
  LineLog(const LineLog&) = delete;
  LineLog& operator=(const LineLog&) = delete;
  ~LineLog();

  Status Append(std::string_view line);

 private:
  explicit LineLog(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace refbus::loadgen

#endif  // REFBUS_TESTS_TOOLS_LOADGEN_LINE_LOG_H_
