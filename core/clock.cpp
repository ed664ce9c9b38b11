#include "core/clock.h"

#include <chrono>
#include <ctime>

namespace refbus {

UnixMillis SystemClock::NowMillis() const {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  return static_cast<UnixMillis>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
}

const SystemClock& SystemClock::Get() {
  static const SystemClock clock;
  return clock;
}

std::string FormatUtc(UnixMillis t) {
  std::time_t secs = static_cast<std::time_t>(t / kMillisPerSecond);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace refbus
