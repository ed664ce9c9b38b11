// Engine: received envelopes at rest (issue 17 item 3). The inbox keeps a delivered
// envelope only sealed under the data key of the grant it names (agent/case_crypto.h), so
// that purging the grant (its key destroyed) makes the envelope unreadable everywhere --
// the live record, LMDB's freed pages, backups -- even though this agency still holds the
// prekey secret it was sealed to until the prekey's window ends. The transport store keeps
// the SHA-256 of the envelope as delivered, for redeliveries and for comparison with the
// broker's audit entries.
#include <spdlog/spdlog.h>

#include "agent/engine_impl.h"
#include "keys/envelope.h"
#include "schema/codec.h"

namespace refbus::agent {

namespace {

std::string InboxPlace(ByteView message_id) {
  return TextPlace("inbox", HexEncode(message_id), "envelope");
}

}  // namespace

Result<Bytes> Engine::Impl::SealEnvelopeAtRest(ByteView message_id, ByteView envelope,
                                               bool verify) {
  // Only an envelope a listed sender signed makes this agency keep a data key for the
  // grant it names; anything else is kept as delivered and refused when processed.
  Result<schema::SealedEnvelope> env =
      verify ? keys::VerifyEnvelope(envelope, dir(), Now()) : schema::DecodeEnvelope(envelope);
  if (!env.ok() || env->header.consent_grant_id.size() != 16) return Bytes{};
  const std::string grant = HexEncode(env->header.consent_grant_id);
  std::string_view as_text(reinterpret_cast<const char*>(envelope.data()), envelope.size());
  auto sealed = grant_keys->Seal(grant, InboxPlace(message_id), as_text);
  if (!sealed.ok()) {
    if (sealed.status().code() != Status::Code::kFailedPrecondition) return sealed.status();
    // The grant's data was purged before this message came: there is no key to keep it
    // under. It is kept as delivered (SECURITY.md: a message arriving after its grant's
    // purge stays readable with this agency's prekeys until their window ends).
    spdlog::info(
        "agent {}: message {} arrived under grant {}, whose data was purged; kept as "
        "delivered",
        me(), HexEncode(message_id), grant);
    return Bytes{};
  }
  return EncodeSealedBlob(*sealed);
}

Result<Bytes> Engine::Impl::EnvelopeOf(const InboxRecord& r) {
  if (!r.sealed_at_rest) return r.envelope;
  REFBUS_ASSIGN_OR_RETURN(SealedText s, DecodeSealedBlob(r.envelope));
  auto text = grant_keys->Unseal(s, InboxPlace(r.message_id));
  if (!text.ok()) return text.status();
  Bytes envelope(text->begin(), text->end());
  if (Sha256(envelope) != r.sha256) {
    return Malformed("message " + HexEncode(r.message_id) +
                     ": the envelope kept at rest is not the one delivered (damaged)");
  }
  return envelope;
}

Status Engine::Impl::SealInboxAtRest() {
  // Stores written before: what they hold as delivered is sealed now (no signature or time
  // check: those envelopes were checked when they arrived, and may have expired since).
  transport_store->SetInboxSealer(
      [this](ByteView id, ByteView envelope) { return SealEnvelopeAtRest(id, envelope, false); });
  REFBUS_ASSIGN_OR_RETURN(size_t n, transport_store->SealHeldEnvelopes());
  if (n > 0) {
    spdlog::info(
        "agent {}: {} received envelope(s) of an older store sealed under their grants' "
        "data keys (old copies stay on the store's freed pages until reused; a backup and "
        "restore compacts them away)",
        me(), n);
  }
  transport_store->SetInboxSealer(
      [this](ByteView id, ByteView envelope) { return SealEnvelopeAtRest(id, envelope, true); });
  return Status::Ok();
}

}  // namespace refbus::agent
