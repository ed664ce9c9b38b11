// Logging setup for refbus executables (spdlog).
//
// Contract for every caller of spdlog in refbus: log ids, sizes, codes and counts; never
// case content, plaintext, passphrases or secret keys. Secret types have no formatter, so
// passing one to a log call does not compile.
//
// Thread safety: call InitLogging once in main before starting threads.
#ifndef REFBUS_CORE_LOG_H_
#define REFBUS_CORE_LOG_H_

#include <string_view>

#include "core/status.h"

namespace refbus {

enum class LogFormat { kText, kJson };

// Logs go to stderr. level: trace, debug, info, warn, error, critical, off.
Status InitLogging(std::string_view program, LogFormat format, std::string_view level);

}  // namespace refbus

#endif  // REFBUS_CORE_LOG_H_
