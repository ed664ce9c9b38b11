// Secret key files: an Identity on disk.
//
// Format (PROTOCOL.md "Key files"): the magic line "refbus-secret-key/1\n", then a
// SecretKeyFile message whose payload is the secret bundle, either in the clear with a
// BLAKE2b checksum (the file's 0600 mode protects it) or encrypted with
// XChaCha20-Poly1305 under a key derived from a passphrase with Argon2id.
//
// Files are written atomically with mode 0600 from creation. Loading refuses, with a
// clear error and without crashing: a file readable by group or others, a file owned by
// another user, a foreign or newer-version file, damaged bytes, a missing or wrong
// passphrase.
//
// Secrets pass only through locked memory (SecretBuffer) except for protobuf's own
// parse buffer, which the codec wipes.
//
// Thread safety: free functions; do not write one path from two threads.
#ifndef REFBUS_KEYS_KEYFILE_H_
#define REFBUS_KEYS_KEYFILE_H_

#include <string>

#include "core/status.h"
#include "keys/identity.h"
#include "keys/secret.h"

namespace refbus::keys {

struct KdfCost {
  uint64_t opslimit;
  uint64_t memlimit;
};
// Argon2id cost for new files: libsodium's "interactive" limits (2 passes, 64 MiB).
KdfCost DefaultKdfCost();
// For the federation authority's root signing key: libsodium's "moderate" limits (3
// passes, 256 MiB; about a second per derivation).
KdfCost AuthorityKdfCost();
// The least cost a protected file may have to be loaded: the interactive limits.
KdfCost LeastKdfCost();

// passphrase may be nullptr (unprotected file). Refuses an empty passphrase.
Status SaveIdentity(const Identity& identity, const std::string& path,
                    const SecretBuffer* passphrase, KdfCost cost = DefaultKdfCost());

// passphrase may be nullptr; a protected file then fails with kFailedPrecondition, and so
// does one whose stored Argon2id cost is below least (checked before any derivation).
// Lowering least is for tests that save with libsodium's minimum cost, and nothing else.
Result<Identity> LoadIdentity(const std::string& path, const SecretBuffer* passphrase,
                              KdfCost least = LeastKdfCost());

// True if the file at path is passphrase-protected (reads only the outer container).
Result<bool> IsProtected(const std::string& path);

// Reads a passphrase from a file (which must be private, like a key file), without its
// trailing newline, into locked memory.
Result<SecretBuffer> ReadPassphraseFile(const std::string& path);

}  // namespace refbus::keys

#endif  // REFBUS_KEYS_KEYFILE_H_
