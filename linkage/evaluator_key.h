// A linkage evaluator's VOPRF private key on disk (PROTOCOL.md section 7, "linkage key").
//
// Format: the magic line "refbus-linkage-key/1\n", one mode byte (0x01, VOPRF), the private
// scalar (32 bytes, little-endian, in [1, L-1]), and a BLAKE2b-256 checksum over the label
// "refbus/v1/linkage-keyfile", a 0x00 byte, and everything before the checksum: 86 bytes.
// No passphrase: the evaluator runs unattended in its broker, like the broker's own key
// file; the file's mode protects it. Written atomically with mode 0600; loading opens it
// once without following a symbolic link, checks that descriptor (a regular file of this
// user, no group or other bits) and refuses a wrong size, magic, mode byte, checksum, or a
// scalar that is zero or not reduced, with a message that names the file and never the key.
// The bytes read are wiped before LoadEvaluatorKey returns.
//
// Thread safety: free functions; do not write one path from two threads.
#ifndef REFBUS_LINKAGE_EVALUATOR_KEY_H_
#define REFBUS_LINKAGE_EVALUATOR_KEY_H_

#include <string>

#include "core/status.h"
#include "linkage/oprf.h"

namespace refbus::linkage {

inline constexpr size_t kEvaluatorKeyFileBytes = 86;

// REQUIRES: key.mode() == kVoprf (InvalidArgument otherwise).
Status SaveEvaluatorKey(const oprf::ServerKey& key, const std::string& path);
Result<oprf::ServerKey> LoadEvaluatorKey(const std::string& path);

}  // namespace refbus::linkage

#endif  // REFBUS_LINKAGE_EVALUATOR_KEY_H_
