// Byte buffers and text encodings used across refbus.
//
// Bytes owns; ByteView borrows (valid as long as the owner). Hex is written lower case
// and read in either case;
// Base64 is the standard alphabet with padding (RFC 4648 section 4), as C2SP notes use.
// Decoders return an error for anything that is not exactly well-formed.
//
// Thread safety: free functions, no shared state.
#ifndef REFBUS_CORE_BYTES_H_
#define REFBUS_CORE_BYTES_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace refbus {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

inline ByteView AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string_view AsChars(ByteView b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline Bytes ToBytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

std::string HexEncode(ByteView bytes);
Result<Bytes> HexDecode(std::string_view hex);

std::string Base64Encode(ByteView bytes);
Result<Bytes> Base64Decode(std::string_view text);

// Appends to out, for building the exact byte strings that are signed or hashed.
void AppendU32BigEndian(Bytes& out, uint32_t v);
void AppendU64BigEndian(Bytes& out, uint64_t v);
void Append(Bytes& out, ByteView bytes);
// Appends a u32 big-endian length and the bytes: unambiguous concatenation.
void AppendLengthPrefixed(Bytes& out, ByteView bytes);

}  // namespace refbus

#endif  // REFBUS_CORE_BYTES_H_
