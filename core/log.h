// Logging setup for refbus executables (spdlog).
//
// Contract for every caller of spdlog in refbus: log ids, sizes, codes and counts; never
// case content, plaintext, passphrases or secret keys. Secret types have no formatter, so
// passing one to a log call does not compile.
//
// With LogFormat::kJson every line is one JSON object (time, level, program, msg), valid
// whatever the message holds: quotes, backslashes and control characters are escaped and
// bytes that are not UTF-8 become U+FFFD, so a line never splits or breaks its parser.
//
// Thread safety: call InitLogging once in main before starting threads (a second call
// replaces the logger; tests use it). JsonEscape is pure.
#ifndef REFBUS_CORE_LOG_H_
#define REFBUS_CORE_LOG_H_

#include <string>
#include <string_view>

#include "core/status.h"

namespace refbus {

enum class LogFormat { kText, kJson };

// Logs go to stderr. level: trace, debug, info, warn, error, critical, off.
Status InitLogging(std::string_view program, LogFormat format, std::string_view level);

// The inside of a JSON string (without the quotes) holding text: ", \ and control
// characters escaped, valid UTF-8 kept, each byte of an invalid sequence as \ufffd.
std::string JsonEscape(std::string_view text);

}  // namespace refbus

#endif  // REFBUS_CORE_LOG_H_
