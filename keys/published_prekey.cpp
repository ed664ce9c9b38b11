#include "keys/published_prekey.h"

#include "keys/crypto.h"

namespace refbus::keys {

Status VerifyPublishedPrekey(const schema::Directory& directory, const schema::SignedPrekey& prekey,
                             UnixMillis now) {
  const std::string& owner = prekey.prekey.owner_id;
  const schema::Party* p = directory.Find(owner);
  if (p == nullptr || p->kind != schema::PartyKind::kAgency) {
    return NotFound("published prekey names " + owner +
                    ", which is not an agency in directory serial " +
                    std::to_string(directory.serial));
  }
  if (p->status != schema::PartyStatus::kActive) return Revoked(owner + " is revoked");
  const schema::KeyRecord* k = p->ActiveKeys();
  if (k == nullptr) return Revoked(owner + " has no active key");
  REFBUS_RETURN_IF_ERROR(CheckSignedPrekey(*p, *k, prekey));
  if (now >= prekey.prekey.not_after_ms) {
    return Expired("published prekey of " + owner + " expired at " +
                   FormatUtc(prekey.prekey.not_after_ms));
  }
  return Status::Ok();
}

Result<RecipientPrekey> NewestPrekey(const schema::Directory& directory, std::string_view agency_id,
                                     std::span<const schema::SignedPrekey> published,
                                     UnixMillis now) {
  auto from_directory = CurrentPrekey(directory, agency_id, now);
  if (!from_directory.ok() && from_directory.status().code() != Status::Code::kExpired) {
    return from_directory;  // unknown, revoked: no published prekey changes that
  }
  const schema::SignedPrekey* best = nullptr;
  UnixMillis best_from = 0;
  if (from_directory.ok()) {
    const schema::KeyRecord* k = directory.Find(agency_id)->ActiveKeys();
    for (const auto& sp : k->prekeys) {
      if (ConstantTimeEquals(sp.prekey.public_key, from_directory->public_key)) {
        best_from = sp.prekey.not_before_ms;
      }
    }
  }
  for (const auto& sp : published) {
    if (sp.prekey.owner_id != agency_id) continue;
    if (sp.prekey.not_before_ms > now + kClockSkewMs) continue;
    if (!VerifyPublishedPrekey(directory, sp, now).ok()) continue;
    if (best == nullptr ? (!from_directory.ok() || sp.prekey.not_before_ms > best_from)
                        : sp.prekey.not_before_ms > best->prekey.not_before_ms) {
      best = &sp;
    }
  }
  if (best == nullptr) return from_directory;
  return RecipientPrekey{std::string(agency_id), best->prekey.public_key,
                         KeyId(KeyUse::kPrekey, best->prekey.public_key)};
}

}  // namespace refbus::keys
