// Wall-clock time as refbus uses it on the wire: unsigned milliseconds since the Unix
// epoch (UTC). A Clock is injectable so that validity windows can be tested without
// sleeping.
//
// Thread safety: SystemClock is stateless; FixedClock is for single-threaded tests.
#ifndef REFBUS_CORE_CLOCK_H_
#define REFBUS_CORE_CLOCK_H_

#include <cstdint>
#include <string>

namespace refbus {

using UnixMillis = uint64_t;

inline constexpr UnixMillis kMillisPerSecond = 1000;
inline constexpr UnixMillis kMillisPerMinute = 60 * kMillisPerSecond;
inline constexpr UnixMillis kMillisPerHour = 60 * kMillisPerMinute;
inline constexpr UnixMillis kMillisPerDay = 24 * kMillisPerHour;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual UnixMillis NowMillis() const = 0;
};

class SystemClock final : public Clock {
 public:
  UnixMillis NowMillis() const override;
  static const SystemClock& Get();
};

class FixedClock final : public Clock {
 public:
  explicit FixedClock(UnixMillis now) : now_(now) {}
  UnixMillis NowMillis() const override { return now_; }
  void Set(UnixMillis now) { now_ = now; }
  void Advance(UnixMillis by) { now_ += by; }

 private:
  UnixMillis now_;
};

// "2026-11-22T06:07:14Z" (UTC, second precision) for people.
std::string FormatUtc(UnixMillis t);

}  // namespace refbus

#endif  // REFBUS_CORE_CLOCK_H_
