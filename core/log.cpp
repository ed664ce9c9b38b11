#include "core/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <string>

namespace refbus {

Status InitLogging(std::string_view program, LogFormat format, std::string_view level) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") {
    return InvalidArgument("log level '" + std::string(level) +
                           "' is not one of trace, debug, info, warn, error, critical, off");
  }
  auto logger = spdlog::stderr_logger_mt(std::string(program));
  if (format == LogFormat::kJson) {
    // Messages are built by refbus from ids and codes, which contain no quotes.
    logger->set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","program":"%n","msg":"%v"})",
        spdlog::pattern_time_type::utc);
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %n %l: %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(lvl);
  spdlog::set_default_logger(logger);
  return Status::Ok();
}

}  // namespace refbus
