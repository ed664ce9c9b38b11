// Shared by the files of broker::Server (server.cpp, server_*.cpp) and by nothing else:
// the loop's periods and retry hints, and small helpers for frames and log lines.
//
// Thread safety: constants and pure functions.
#ifndef REFBUS_BROKER_SERVER_INTERNAL_H_
#define REFBUS_BROKER_SERVER_INTERNAL_H_

#include <cstdint>
#include <string>

#include "core/bytes.h"
#include "core/clock.h"
#include "core/status.h"
#include "keys/envelope.h"
#include "schema/types.h"

namespace refbus::broker::server_internal {

// The RefusalLimiter window (broker/refusals.h) whose allowance the refusals decided in the
// commit (consent scope, quota) share per actor: whether one is audited is decided when the
// envelope is admitted, before its reason is known. Its window never has an aggregate: what
// it does not audit is counted under the refusal's own reason.
inline constexpr schema::NackReason kCommitRefusals = schema::NackReason::kUnspecified;

// ZAP metadata property with the connection's CURVE key (hex).
inline constexpr const char* kKeyProperty = "X-Transport-Key";
inline constexpr UnixMillis kTimerPeriodMs = 500;
inline constexpr UnixMillis kExpiryPeriodMs = 60 * kMillisPerSecond;
inline constexpr uint32_t kQuotaRetryMs = 1000;
inline constexpr uint32_t kStorageRetryMs = 5000;
inline constexpr UnixMillis kStatusPeriodMs = 1000;
// A turn of acks and audit events only waits this long for a submission to commit with
// (Server::HoldUnowed), and no longer once it holds kHoldMax acks and events.
inline constexpr UnixMillis kHoldMs = 2;
inline constexpr size_t kHoldMax = 256;
// A relayed grant's signature check is reused this long (and while the directory stays),
// for at most this many grants.
inline constexpr UnixMillis kGrantVetReuseMs = 60 * kMillisPerSecond;
inline constexpr size_t kMaxVettedGrants = 4096;
inline constexpr UnixMillis kLinkLogPeriodMs = 30 * kMillisPerSecond;

// The modification time of path in nanoseconds (0 if it cannot be read).
long FileMtime(const std::string& path);

// A message id for log lines.
inline std::string Short(ByteView message_id) { return HexEncode(message_id); }

// The Nack reason for a failed envelope check.
schema::NackReason ReasonFor(keys::EnvelopeCheck check, const Status& s);

schema::Frame NackFrame(uint64_t request_id, ByteView message_id, schema::NackReason reason,
                        std::string detail, uint32_t retry_after_ms);
schema::Frame AckFrame(uint64_t request_id, ByteView message_id, bool duplicate);

// Why an agency's signed statement (an operator roster, a linkage tally) was refused, from
// the status of its verification against the directory.
inline schema::NackReason SignedStatementRefusal(const Status& s) {
  switch (s.code()) {
    case Status::Code::kNotFound:
    case Status::Code::kRevoked:
    case Status::Code::kExpired:
      return schema::NackReason::kUnknownSenderKey;
    case Status::Code::kUnauthenticated:
      return schema::NackReason::kBadSignature;
    default:
      return schema::NackReason::kMalformed;
  }
}

}  // namespace refbus::broker::server_internal

#endif  // REFBUS_BROKER_SERVER_INTERNAL_H_
