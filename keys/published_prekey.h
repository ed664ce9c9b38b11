// Prekeys an agency publishes between directories (PROTOCOL.md "Prekey publication").
//
// The authority's directory carries an agency's identity keys and the prekeys it had when
// the directory was issued. An agency that makes a new prekey signs it with its identity
// key and publishes it through its home broker; a published prekey is trusted only if the
// verified directory lists its owner as an active agency whose ACTIVE signing key signed
// it, and it keeps the prekey rules (CheckSignedPrekey: at most kPrekeyLifetimeMs). No
// reissued directory is needed for a prekey. Senders seal to the newest valid prekey among
// the directory's and the published ones.
//
// Thread safety: free functions over values.
#ifndef REFBUS_KEYS_PUBLISHED_PREKEY_H_
#define REFBUS_KEYS_PUBLISHED_PREKEY_H_

#include <span>
#include <string_view>

#include "core/clock.h"
#include "core/status.h"
#include "keys/directory.h"
#include "schema/types.h"

namespace refbus::keys {

// kNotFound (owner not an agency in the directory), kRevoked (owner revoked or without an
// active key), kUnauthenticated (not signed by the owner's active key), kInvalidArgument
// (lifetime over the cap), kExpired (not_after passed at now).
Status VerifyPublishedPrekey(const schema::Directory& directory, const schema::SignedPrekey& prekey,
                             UnixMillis now);

// As CurrentPrekey, over the directory's prekeys and `published` (any owners and any order;
// those of other agencies and those VerifyPublishedPrekey refuses are skipped).
Result<RecipientPrekey> NewestPrekey(const schema::Directory& directory, std::string_view agency_id,
                                     std::span<const schema::SignedPrekey> published,
                                     UnixMillis now);

}  // namespace refbus::keys

#endif  // REFBUS_KEYS_PUBLISHED_PREKEY_H_
