// Key upkeep in an agency's own key folder: forward secrecy for prekeys without an
// operator. A prekey's secret is kept for kPrekeyKeepAfterExpiryMs after the prekey
// expires (messages sealed to it just before its expiry may still be on their way), then
// wiped from memory and from the key file. A retired key file (dir/retired/<key id>.key,
// kept by a rotation of the whole identity so its backlog still opens) is wiped once every
// prekey it holds is past that window.
//
// Each wiped key is reported as a line for the log ("wiped prekey <fingerprint> (expired
// <date>)"), which names no secret.
//
// Thread safety: free functions; the caller owns the Identity (no concurrent use).
#ifndef REFBUS_KEYS_KEY_UPKEEP_H_
#define REFBUS_KEYS_KEY_UPKEEP_H_

#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "keys/identity.h"
#include "keys/secret.h"

namespace refbus::keys {

struct KeyUpkeepRequest {
  std::string key_path;     // the identity's own key file; rewritten (atomic, 0600) if changed
  std::string retired_dir;  // empty: no retired key files to look at
  const SecretBuffer* passphrase = nullptr;  // of the key files; nullptr: unprotected
  UnixMillis now = 0;
  UnixMillis keep_after_expiry_ms = 0;  // normally kPrekeyKeepAfterExpiryMs
};

// Wipes identity's prekey secrets past the window and rewrites the key file, then wipes
// retired key files past the window (overwritten with zeros, synced, removed). Returns one
// log line per wiped key. A retired file that cannot be read is left alone and reported
// in the returned lines ("kept ..."), not as an error: it is the operator's to look at.
Result<std::vector<std::string>> WipeExpiredKeys(Identity& identity, const KeyUpkeepRequest& req);

}  // namespace refbus::keys

#endif  // REFBUS_KEYS_KEY_UPKEEP_H_
