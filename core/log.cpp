#include "core/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace refbus {
namespace {

// The length of the well-formed UTF-8 sequence at s[i] (Unicode table 3-7: no overlong
// forms, no surrogates, nothing above U+10FFFF), or 0.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](size_t k, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return k < s.size() && byte(k) >= lo && byte(k) <= hi;
  };
  const unsigned char b = byte(i);
  if (b >= 0xC2 && b <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (b == 0xE0) return cont(i + 1, 0xA0, 0xBF) && cont(i + 2) ? 3 : 0;
  if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return cont(i + 1) && cont(i + 2) ? 3 : 0;
  if (b == 0xED) return cont(i + 1, 0x80, 0x9F) && cont(i + 2) ? 3 : 0;
  if (b == 0xF0) return cont(i + 1, 0x90, 0xBF) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (b >= 0xF1 && b <= 0xF3) return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (b == 0xF4) return cont(i + 1, 0x80, 0x8F) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  return 0;
}

// JSON's two-character escapes, or nullptr.
const char* ShortEscape(unsigned char c) {
  switch (c) {
    case '"':
      return "\\\"";
    case '\\':
      return "\\\\";
    case '\n':
      return "\\n";
    case '\r':
      return "\\r";
    case '\t':
      return "\\t";
    case '\b':
      return "\\b";
    case '\f':
      return "\\f";
    default:
      return nullptr;
  }
}

template <typename Out>
void AppendJsonEscaped(std::string_view s, Out& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  auto put = [&](std::string_view piece) { out.append(piece.data(), piece.data() + piece.size()); };
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (const char* e = ShortEscape(c); e != nullptr) {
        put(e);
      } else if (c < 0x20 || c == 0x7F) {
        const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        put(std::string_view(esc, sizeof(esc)));
      } else {
        put(std::string_view(&s[i], 1));
      }
      ++i;
      continue;
    }
    size_t n = Utf8SequenceLength(s, i);
    if (n == 0) {
      put("\\ufffd");
      ++i;
    } else {
      put(s.substr(i, n));
      i += n;
    }
  }
}

// %v and %n, escaped for a JSON string.
class JsonFlag final : public spdlog::custom_flag_formatter {
 public:
  explicit JsonFlag(bool logger_name) : logger_name_(logger_name) {}
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string_view text = logger_name_
                                ? std::string_view(msg.logger_name.data(), msg.logger_name.size())
                                : std::string_view(msg.payload.data(), msg.payload.size());
    AppendJsonEscaped(text, dest);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonFlag>(logger_name_);
  }

 private:
  bool logger_name_;
};

// %v for people: control characters (a newline could forge a line) as \n, \r, \t or
// \xNN; everything else as it is.
class TextFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    static constexpr char kHex[] = "0123456789abcdef";
    for (char c : std::string_view(msg.payload.data(), msg.payload.size())) {
      const auto u = static_cast<unsigned char>(c);
      if (u >= 0x20 && u != 0x7f) {
        dest.push_back(c);
        continue;
      }
      const char* esc = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : nullptr;
      if (esc != nullptr) {
        dest.append(esc, esc + 2);
      } else {
        const char hex[4] = {'\\', 'x', kHex[u >> 4], kHex[u & 15]};
        dest.append(hex, hex + 4);
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<TextFlag>();
  }
};

}  // namespace

std::string JsonEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  AppendJsonEscaped(text, out);
  return out;
}

Status InitLogging(std::string_view program, LogFormat format, std::string_view level) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") {
    return InvalidArgument("log level '" + std::string(level) +
                           "' is not one of trace, debug, info, warn, error, critical, off");
  }
  spdlog::drop(std::string(program));  // a second call replaces the logger
  auto logger = spdlog::stderr_logger_mt(std::string(program));
  if (format == LogFormat::kJson) {
    // %* is the message and %& the program, both escaped (JsonFlag); the rest is fixed text.
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc,
                                                                 std::string("\n"));
    formatter->add_flag<JsonFlag>('*', false)
        .add_flag<JsonFlag>('&', true)
        .set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","program":"%&","msg":"%*"})");
    logger->set_formatter(std::move(formatter));
  } else {
    // %* is the message with control characters escaped (TextFlag).
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc,
                                                                 std::string("\n"));
    formatter->add_flag<TextFlag>('*').set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %n %l: %*");
    logger->set_formatter(std::move(formatter));
  }
  logger->set_level(lvl);
  spdlog::set_default_logger(logger);
  return Status::Ok();
}

}  // namespace refbus
