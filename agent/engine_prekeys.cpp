// Engine: messages sealed to a prekey this process does not hold yet. Such a message is not
// refused: it waits (kWaitingPrekey), the key file is read again (another process, such
// as `refbus-keys party rotate-prekey`, may have added the prekey), and it is retried in
// arrival order until it opens or its envelope expires.
#include <spdlog/spdlog.h>

#include "agent/engine_impl.h"
#include "keys/crypto.h"
#include "keys/envelope.h"

namespace refbus::agent {

namespace {
// Key file reads triggered by arriving messages are at least this far apart (each may
// cost an Argon2id derivation); the retry timer comes on top.
constexpr auto kMinKeyReloadGap = std::chrono::seconds(1);
}  // namespace

std::optional<std::string> Engine::Impl::MissingPrekey(ByteView envelope) const {
  auto env = keys::VerifyEnvelope(envelope, dir(), Now());
  if (!env.ok()) return std::nullopt;  // refused for what it is, not for our keys
  for (const auto& rk : env->header.recipients) {
    if (rk.agency_id != me()) continue;
    if (identity.FindPrekey(rk.prekey_id) != nullptr) return std::nullopt;
    return keys::Fingerprint(rk.prekey_id);
  }
  return std::nullopt;
}

Status Engine::Impl::LoadWaiting() {
  REFBUS_ASSIGN_OR_RETURN(auto txn, case_store->Begin(false));
  REFBUS_ASSIGN_OR_RETURN(auto all, LoadAll<MessageRecord>(txn));
  for (const auto& [key, msg] : all) {
    if (msg.status != MessageStatus::kWaitingPrekey) continue;
    REFBUS_ASSIGN_OR_RETURN(Bytes id, HexDecode(key));
    REFBUS_ASSIGN_OR_RETURN(InboxRecord r, transport_store->GetInbox(id));
    waiting_prekey.emplace(r.sequence, key);
  }
  if (!waiting_prekey.empty()) {
    spdlog::warn("agent {}: {} message(s) wait for a prekey; retrying them", me(),
                 waiting_prekey.size());
    keys_stale = true;
  }
  return Status::Ok();
}

Status Engine::Impl::ReloadKeysAndRetry() {
  last_key_reload = std::chrono::steady_clock::now();
  if (options.reload_keys) {
    auto fresh = options.reload_keys();
    if (!fresh.ok()) return fresh.status().WithContext("cannot read the key file again");
    REFBUS_RETURN_IF_ERROR(identity.AdoptPrekeys(std::move(*fresh)));
    spdlog::info("agent {}: key file read again ({} prekey(s))", me(), identity.prekeys().size());
  }
  return RetryWaiting();
}

Status Engine::Impl::RetryWaiting() {
  if (waiting_prekey.empty()) return Status::Ok();
  REFBUS_ASSIGN_OR_RETURN(auto txn, case_store->Begin(true));
  const auto waiting = waiting_prekey;
  for (const auto& [seq, key] : waiting) {
    REFBUS_ASSIGN_OR_RETURN(Bytes id, HexDecode(key));
    auto r = transport_store->GetInbox(id);
    if (r.ok()) REFBUS_RETURN_IF_ERROR(ProcessOne(txn, *r));
    REFBUS_ASSIGN_OR_RETURN(auto msg, Load<MessageRecord>(txn, key));
    if (r.ok() && msg && msg->status == MessageStatus::kWaitingPrekey) continue;
    waiting_prekey.erase(seq);
    spdlog::info("agent {}: message {} no longer waits for a prekey: {}", me(), key,
                 msg ? std::string(Name(msg->status)) : std::string("gone from the inbox"));
  }
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  keys_stale = false;  // the retries just met the keys as read: the timer decides the next
  FlushAfterCommit();
  return RunPendingPurges();
}

void Engine::Impl::PrekeyTurn() {
  if (waiting_prekey.empty()) {
    keys_stale = false;
    return;
  }
  auto now = std::chrono::steady_clock::now();
  if (now < last_key_reload + kMinKeyReloadGap) return;
  if (!keys_stale && now < next_prekey_retry) return;
  keys_stale = false;
  next_prekey_retry = now + std::chrono::milliseconds(options.prekey_retry_ms);
  if (Status s = ReloadKeysAndRetry(); !s.ok()) {
    spdlog::error("agent {}: retrying messages that wait for a prekey: {}", me(), s.ToString());
  }
}

Status Engine::ReloadKeys() { return impl_->ReloadKeysAndRetry(); }

Status Engine::UpdateKeys(const std::function<Status(keys::Identity&)>& change) {
  return change(impl_->identity);
}

}  // namespace refbus::agent
