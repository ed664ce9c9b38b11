// refbus-loadgen's append-only id logs (line_log.h).
#include "tests/tools/loadgen/line_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "core/bytes.h"
#include "core/file.h"
#include "tests/tools/loadgen/common.h"

namespace refbus::loadgen {

Result<LineLog> LineLog::Open(const std::string& path, std::set<std::string>* existing) {
  if (path.empty()) return LineLog(-1);
  if (PathExists(path)) {
    REFBUS_ASSIGN_OR_RETURN(Bytes content, ReadFile(path, size_t{1} << 30));
    size_t keep = content.size();
    while (keep > 0 && content[keep - 1] != '\n') --keep;
    if (keep != content.size() && ::truncate(path.c_str(), static_cast<off_t>(keep)) != 0) {
      return IoError("cannot cut the torn last line of " + path + ": " + ErrnoText(errno));
    }
    if (existing != nullptr) {
      std::string_view text = AsChars(ByteView(content).first(keep));
      while (!text.empty()) {
        size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        if (!line.empty()) existing->emplace(line);
        text.remove_prefix(nl + 1);
      }
    }
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("cannot open " + path + ": " + ErrnoText(errno));
  return LineLog(fd);
}

LineLog::~LineLog() {
  if (fd_ >= 0) ::close(fd_);
}

Status LineLog::Append(std::string_view line) {
  if (fd_ < 0) return Status::Ok();
  std::string buf(line);
  buf.push_back('\n');
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::write(fd_, buf.data() + done, buf.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return IoError(std::string("cannot append to the log: ") + ErrnoText(errno));
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace refbus::loadgen
