// Status and Result<T>: how every layer of refbus reports failure.
//
// Contract: a Status is either ok() or carries a Code and a human-readable message.
// Messages are written for the operator who reads them: they name what was wrong and,
// where possible, what to do. They never contain secrets or case content; callers that
// build messages from peer input include only ids, sizes and codes.
//
// Bad input from a peer (malformed bytes, bad signatures, replays) is a normal outcome
// and travels as a Status; only broken internal invariants abort.
//
// Thread safety: values; safe to copy and move between threads.
#ifndef REFBUS_CORE_STATUS_H_
#define REFBUS_CORE_STATUS_H_

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace refbus {

class [[nodiscard]] Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,     // caller or configuration gave a bad value
    kNotFound,            // a named thing does not exist
    kAlreadyExists,       // refusing to overwrite
    kPermissionDenied,    // file mode, role or scope does not allow this
    kMalformed,           // bytes that do not decode (frame, protobuf, file format)
    kUnauthenticated,     // bad signature, failed MAC, wrong passphrase, unknown key
    kExpired,             // a validity window has passed (or not started)
    kRevoked,             // key or party revoked
    kRollback,            // an older serial than one already seen
    kFailedPrecondition,  // state does not allow the operation
    kResourceExhausted,   // size limits, quotas, full disk
    kUnavailable,         // peer or resource not reachable now; retry later
    kIoError,             // the operating system refused (open, write, fsync, ...)
    kInternal,            // a bug: should not happen
  };

  Status() = default;  // ok
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "<code name>: <message>", or "ok".
  std::string ToString() const;

  // Returns a copy with "context: " prepended to the message, keeping the code.
  Status WithContext(std::string_view context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

std::string_view CodeName(Status::Code code);

// The system's text for an errno value (thread-safe), for error messages.
std::string ErrnoText(int err);

// Shorthands that read well at call sites: return InvalidArgument("...");
inline Status InvalidArgument(std::string m) {
  return {Status::Code::kInvalidArgument, std::move(m)};
}
inline Status NotFound(std::string m) { return {Status::Code::kNotFound, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {Status::Code::kAlreadyExists, std::move(m)}; }
inline Status PermissionDenied(std::string m) {
  return {Status::Code::kPermissionDenied, std::move(m)};
}
inline Status Malformed(std::string m) { return {Status::Code::kMalformed, std::move(m)}; }
inline Status Unauthenticated(std::string m) {
  return {Status::Code::kUnauthenticated, std::move(m)};
}
inline Status Expired(std::string m) { return {Status::Code::kExpired, std::move(m)}; }
inline Status Revoked(std::string m) { return {Status::Code::kRevoked, std::move(m)}; }
inline Status Rollback(std::string m) { return {Status::Code::kRollback, std::move(m)}; }
inline Status FailedPrecondition(std::string m) {
  return {Status::Code::kFailedPrecondition, std::move(m)};
}
inline Status ResourceExhausted(std::string m) {
  return {Status::Code::kResourceExhausted, std::move(m)};
}
inline Status Unavailable(std::string m) { return {Status::Code::kUnavailable, std::move(m)}; }
inline Status IoError(std::string m) { return {Status::Code::kIoError, std::move(m)}; }
inline Status Internal(std::string m) { return {Status::Code::kInternal, std::move(m)}; }

// Result<T>: a T or a non-ok Status. GCC 12 in C++20 has no std::expected.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).ok()) std::abort();   // a Result error must be an error
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }

  // REQUIRES: ok(). Aborts otherwise: reading a value that is not there is a bug.
  T& value() & { return Get(); }
  const T& value() const& { return const_cast<Result*>(this)->Get(); }
  T&& value() && { return std::move(Get()); }
  T* operator->() { return &Get(); }
  const T* operator->() const { return &const_cast<Result*>(this)->Get(); }
  T& operator*() & { return Get(); }
  const T& operator*() const& { return const_cast<Result*>(this)->Get(); }

 private:
  T& Get() {
    if (!ok()) std::abort();
    return std::get<T>(v_);
  }
  std::variant<T, Status> v_;
};

}  // namespace refbus

// Propagates a non-ok Status from an expression returning Status.
#define REFBUS_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::refbus::Status refbus_status_ = (expr);        \
    if (!refbus_status_.ok()) return refbus_status_; \
  } while (0)

#define REFBUS_CONCAT_INNER_(a, b) a##b
#define REFBUS_CONCAT_(a, b) REFBUS_CONCAT_INNER_(a, b)

// REFBUS_ASSIGN_OR_RETURN(auto x, Fn()); declares x from a Result or returns its Status.
#define REFBUS_ASSIGN_OR_RETURN(lhs, expr)                    \
  auto REFBUS_CONCAT_(refbus_result_, __LINE__) = (expr);     \
  if (!REFBUS_CONCAT_(refbus_result_, __LINE__).ok())         \
    return REFBUS_CONCAT_(refbus_result_, __LINE__).status(); \
  lhs = std::move(REFBUS_CONCAT_(refbus_result_, __LINE__)).value()

#endif  // REFBUS_CORE_STATUS_H_
