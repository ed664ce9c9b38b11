#include "core/status.h"

#include <cstring>

namespace refbus {

std::string ErrnoText(int err) {
  char buf[256];
  return strerror_r(err, buf, sizeof(buf));  // GNU strerror_r: returns the text
}

std::string_view CodeName(Status::Code code) {
  switch (code) {
    case Status::Code::kOk:
      return "ok";
    case Status::Code::kInvalidArgument:
      return "invalid argument";
    case Status::Code::kNotFound:
      return "not found";
    case Status::Code::kAlreadyExists:
      return "already exists";
    case Status::Code::kPermissionDenied:
      return "permission denied";
    case Status::Code::kMalformed:
      return "malformed";
    case Status::Code::kUnauthenticated:
      return "unauthenticated";
    case Status::Code::kExpired:
      return "expired";
    case Status::Code::kRevoked:
      return "revoked";
    case Status::Code::kRollback:
      return "rollback";
    case Status::Code::kFailedPrecondition:
      return "failed precondition";
    case Status::Code::kResourceExhausted:
      return "resource exhausted";
    case Status::Code::kUnavailable:
      return "unavailable";
    case Status::Code::kIoError:
      return "I/O error";
    case Status::Code::kInternal:
      return "internal error";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string out(CodeName(code_));
  out += ": ";
  out += message_;
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string m(context);
  m += ": ";
  m += message_;
  return Status(code_, std::move(m));
}

}  // namespace refbus
