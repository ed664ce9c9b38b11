// Helpers shared by the codec's translation units (codec.cpp, codec_directory.cpp,
// codec_frame.cpp, codec_workflow.cpp).
// Internal to refbus::schema: nothing outside schema/ includes this header.
//
// Thread safety: all functions are thread-safe.
#ifndef REFBUS_SCHEMA_CODEC_INTERNAL_H_
#define REFBUS_SCHEMA_CODEC_INTERNAL_H_

#include <google/protobuf/stubs/logging.h>

#include <climits>
#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "schema/codec.h"

namespace refbus::v1 {}  // namespace refbus::v1

namespace refbus::schema::internal {

namespace pb = ::refbus::v1;

// Protobuf logs parse problems (for example invalid UTF-8 in a string field) to stderr
// itself. Peer input must not reach logs that way: refbus reports its own error instead.
inline void SilenceProtobufLogging() {
  static std::once_flag once;
  std::call_once(once, [] { google::protobuf::SetLogHandler(nullptr); });
}

template <typename Msg>
Status Parse(Msg& msg, ByteView bytes, size_t limit, std::string_view what) {
  SilenceProtobufLogging();
  if (bytes.size() > limit) {
    return ResourceExhausted(std::string(what) + " is " + std::to_string(bytes.size()) +
                             " bytes, over the limit of " + std::to_string(limit));
  }
  if (bytes.size() > static_cast<size_t>(INT_MAX) ||
      !msg.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Malformed(std::string(what) + " does not decode");
  }
  return Status::Ok();
}

template <typename Msg>
Bytes Serialize(const Msg& msg) {
  Bytes out(msg.ByteSizeLong());
  if (!out.empty() && !msg.SerializeToArray(out.data(), static_cast<int>(out.size()))) {
    std::abort();  // serializing a message we built cannot fail
  }
  return out;
}

// Through uint8_t pointers, so the copy is one memmove: from std::string's char iterators
// GCC 12 copied byte by byte (4.7% of the broker loop's samples, issue 21).
inline Bytes B(const std::string& s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  return Bytes(p, p + s.size());
}
inline std::string S(ByteView b) { return std::string(AsChars(b)); }

inline Status FieldError(std::string_view what, std::string_view field, std::string_view problem) {
  return Malformed(std::string(what) + ": field '" + std::string(field) + "' " +
                   std::string(problem));
}

inline Status CheckSize(std::string_view what, std::string_view field, const std::string& v,
                        size_t want) {
  if (v.size() != want) {
    return FieldError(
        what, field,
        "has " + std::to_string(v.size()) + " bytes, expected " + std::to_string(want));
  }
  return Status::Ok();
}

inline Status CheckSizeOrEmpty(std::string_view what, std::string_view field, const std::string& v,
                               size_t want) {
  if (v.empty()) return Status::Ok();
  return CheckSize(what, field, v, want);
}

inline Status CheckPartyId(std::string_view what, std::string_view field, const std::string& id) {
  if (!IsValidPartyId(id)) return FieldError(what, field, "is not a valid party id");
  return Status::Ok();
}

// Enum values are open in proto3: an unknown number parses. refbus refuses it.
template <typename E>
Status CheckEnum(std::string_view what, std::string_view field, int v, int max,
                 bool allow_zero = false) {
  if (v < (allow_zero ? 0 : 1) || v > max) {
    return FieldError(what, field, "has unknown value " + std::to_string(v));
  }
  return Status::Ok();
}

template <typename E, typename Repeated>
Result<std::vector<E>> EnumList(std::string_view what, std::string_view field, const Repeated& in,
                                int max) {
  std::vector<E> out;
  out.reserve(static_cast<size_t>(in.size()));
  for (int v : in) {
    REFBUS_RETURN_IF_ERROR(CheckEnum<E>(what, field, v, max));
    out.push_back(static_cast<E>(v));
  }
  return out;
}

template <typename E, typename Repeated>
void PutEnumList(const std::vector<E>& in, Repeated* out) {
  for (E v : in) out->Add(static_cast<int>(v));
}

}  // namespace refbus::schema::internal

#endif  // REFBUS_SCHEMA_CODEC_INTERNAL_H_
