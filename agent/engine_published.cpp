// Engine: published prekeys (PROTOCOL.md "Prekey publication"). This agency's own new
// prekeys go to the home broker as PrekeyUpdate control frames (durable in the outbox,
// resent until acked); the prekeys the broker sends (other agencies') are checked against
// the directory and the newest per owner is kept in the transport store, for sealing.
#include <spdlog/spdlog.h>

#include "agent/engine_impl.h"
#include "keys/crypto.h"
#include "keys/operator_roster.h"
#include "keys/published_prekey.h"
#include "schema/codec.h"

namespace refbus::agent {

Status Engine::PublishPrekey(const schema::SignedPrekey& prekey) {
  if (prekey.prekey.owner_id != impl_->me()) {
    return InvalidArgument("only this agency's own prekeys are published");
  }
  schema::Frame f;
  f.type = schema::Frame::Type::kPrekeyUpdate;
  f.prekey_update.signed_prekey = schema::EncodeSignedPrekey(prekey);
  Status s = impl_->client->SubmitControl(StatementId(f.prekey_update.signed_prekey), f);
  if (s.code() == Status::Code::kAlreadyExists) return Status::Ok();
  return s;
}

Result<bool> Engine::PublishRoster(const keys::OperatorRoster& roster) {
  REFBUS_ASSIGN_OR_RETURN(uint64_t queued, impl_->transport_store->QueuedRosterVersion());
  if (roster.version <= queued) return false;
  REFBUS_ASSIGN_OR_RETURN(std::string text, keys::SignOperatorRoster(impl_->identity, roster));
  schema::Frame f;
  f.type = schema::Frame::Type::kRosterUpdate;
  f.roster_update.signed_roster = ToBytes(text);
  Status s = impl_->client->SubmitControl(StatementId(f.roster_update.signed_roster), f);
  if (!s.ok() && s.code() != Status::Code::kAlreadyExists) return s;
  REFBUS_RETURN_IF_ERROR(impl_->transport_store->KeepQueuedRosterVersion(roster.version));
  return true;
}

Status Engine::Impl::LoadPublished() {
  REFBUS_ASSIGN_OR_RETURN(auto all, transport_store->PublishedPrekeys());
  for (const auto& bytes : all) {
    auto sp = schema::DecodeSignedPrekey(bytes);
    if (!sp.ok()) {
      spdlog::error("agent {}: a kept published prekey does not decode: {}", me(),
                    sp.status().message());
      continue;
    }
    published.push_back(std::move(*sp));
  }
  return Status::Ok();
}

void Engine::Impl::OnPublishedPrekey(const Bytes& signed_prekey) {
  auto sp = schema::DecodeSignedPrekey(signed_prekey);
  Status s = sp.ok() ? keys::VerifyPublishedPrekey(dir(), *sp, Now()) : sp.status();
  if (!s.ok()) {
    // The broker checked it against its directory; ours may be older or newer.
    spdlog::warn("agent {}: a published prekey from the broker was not taken: {}", me(),
                 s.message());
    return;
  }
  const std::string& owner = sp->prekey.owner_id;
  if (owner == me()) return;  // this agency seals to nobody with its own
  auto held = std::find_if(published.begin(), published.end(),
                           [&](const auto& p) { return p.prekey.owner_id == owner; });
  if (held != published.end() && held->prekey.not_before_ms >= sp->prekey.not_before_ms) return;
  if (Status k = transport_store->KeepPublishedPrekey(owner, signed_prekey); !k.ok()) {
    spdlog::error("agent {}: a published prekey of {} was not kept: {}", me(), owner, k.ToString());
    return;
  }
  spdlog::info("agent {}: published prekey {} of {} taken (valid until {})", me(),
               keys::Fingerprint(keys::KeyId(keys::KeyUse::kPrekey, sp->prekey.public_key)), owner,
               FormatUtc(sp->prekey.not_after_ms));
  if (held != published.end()) {
    *held = std::move(*sp);
  } else {
    published.push_back(std::move(*sp));
  }
}

}  // namespace refbus::agent
