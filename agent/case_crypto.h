// GrantKeys: the agency's per-grant data keys, which seal case text at rest
// (crypto-shredding). Every free-text field the case store keeps (decline, handoff and
// close reasons, ...) is sealed with XChaCha20-Poly1305 under the data key of the consent
// grant it was shared under, with associated data naming the grant and the field's place
// (table, record key, field), so a sealed value cannot be moved to another record.
//
// The keys live outside the case store, one file per grant in their own folder
// (<dir>/<grant id hex>.key, 0600, folder 0700; default <data_dir>/grant-keys, the
// [agent] grant_key_dir setting; never in a backup). Each
// file holds the data key wrapped (XChaCha20-Poly1305) under a key derived from the
// agency's identity signing seed (crypto_kdf, context "rbgrntky"), so the folder alone
// reveals nothing. A key file is written atomically and fsynced before any text is
// sealed under it.
//
// Destroy(grant) is the purge: the file is overwritten with zeros, fsynced, unlinked and
// its folder fsynced, and the in-memory copy wiped. From then on every copy of the text
// sealed under it (LMDB's freed pages, backups, old disks) is unreadable. What remains:
// a filesystem or device that relocates blocks (copy-on-write filesystems, SSD wear
// levelling) may keep the old key file's blocks; the wrap key protects them as long as
// the identity key file is safe.
//
// Thread safety: none (the engine's one thread).
#ifndef REFBUS_AGENT_CASE_CRYPTO_H_
#define REFBUS_AGENT_CASE_CRYPTO_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "keys/identity.h"
#include "keys/secret.h"

namespace refbus::agent {

inline constexpr size_t kDataKeyBytes = 32;

// A free-text value sealed under a grant's data key.
struct SealedText {
  std::string grant_id;  // hex: the grant whose data key seals it
  std::string place;     // TextPlace(...): where it is stored (in the associated data)
  Bytes nonce;           // 24 bytes
  Bytes box;             // ciphertext || tag
};

// The associated data of a sealed field: grant and place.
std::string TextPlace(std::string_view table, std::string_view key, std::string_view field);

class GrantKeys {
 public:
  // dir is created (0700) if absent. The wrap key is derived from identity's signing seed.
  static Result<std::unique_ptr<GrantKeys>> Open(const std::string& dir,
                                                 const keys::Identity& identity);

  // Seals text under the grant's key, making and storing the key first if there is none.
  // kFailedPrecondition if the grant's data was purged (its key destroyed).
  Result<SealedText> Seal(const std::string& grant_hex, std::string_view place,
                          std::string_view text);
  // kFailedPrecondition ("purged") if the grant's key is gone; kMalformed if the value
  // does not authenticate under it at this place.
  Result<std::string> Unseal(const SealedText& s, std::string_view place);

  bool Has(const std::string& grant_hex) const;
  // Wipes and removes the grant's key and remembers that it was destroyed (so no new key
  // is made for it). Idempotent.
  Status Destroy(const std::string& grant_hex);
  // The grants that have a key (hex, sorted).
  Result<std::vector<std::string>> Grants() const;
  // The unwrapped key, for tests that try every remaining key on stored ciphertext.
  Result<const keys::SecretKey<kDataKeyBytes>*> KeyOf(const std::string& grant_hex);
  const std::string& dir() const { return dir_; }

 private:
  GrantKeys(std::string dir, keys::SecretKey<kDataKeyBytes> wrap)
      : dir_(std::move(dir)), wrap_(std::move(wrap)) {}
  std::string PathOf(const std::string& grant_hex) const;
  std::string TombPathOf(const std::string& grant_hex) const;
  Result<const keys::SecretKey<kDataKeyBytes>*> Load(const std::string& grant_hex, bool create);

  std::string dir_;
  keys::SecretKey<kDataKeyBytes> wrap_;
  std::map<std::string, keys::SecretKey<kDataKeyBytes>> cache_;
};

// The binary form of a SealedText, in which the inbox keeps each received envelope
// (sealed at TextPlace("inbox", <message id hex>, "envelope"), so a purge shreds it like
// the case text): "refbus-sealed-v1" (16 bytes) || grant id (16) || nonce (24) ||
// u16be place length || place || u32be box length || box. The place is there for readers
// that meet the form without its record (tests scanning raw pages); the agent unseals at
// the place it computes for the record, so a sealed form moved to another record fails.
inline constexpr std::string_view kSealedBlobMagic = "refbus-sealed-v1";
Bytes EncodeSealedBlob(const SealedText& s);
// kMalformed unless b is exactly one sealed form.
Result<SealedText> DecodeSealedBlob(ByteView b);

// Opens a sealed value with a given raw key (tests: the key is tried, nothing stored).
bool TryUnseal(const SealedText& s, std::string_view place, const uint8_t* key, std::string* out);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_CASE_CRYPTO_H_
