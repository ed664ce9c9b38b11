#include "agent/sessions.h"

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <string_view>
#include <utility>

namespace refbus::agent {
namespace {

constexpr size_t kTokenBytes = 32;
// Wrong-password counts kept for at most this many names (an attacker trying names must
// not grow the table without bound); unlocked counts are dropped first.
constexpr size_t kMaxFailureEntries = 4096;

}  // namespace

SessionTable::SessionTable(const OperatorStore& store, SessionOptions options,
                           std::function<int64_t()> now_ms)
    : store_(store), options_(options), now_ms_(std::move(now_ms)) {
  auto key = keys::SecretBuffer::Allocate(crypto_generichash_KEYBYTES);
  if (!key.ok()) std::abort();  // sodium_malloc failed: out of memory at start
  csrf_key_ = std::move(key).value();
  randombytes_buf(csrf_key_.data(), csrf_key_.size());
}

std::string SessionTable::CsrfToken(ByteView token) const {
  static constexpr std::string_view kContext = "refbus console csrf v1";
  uint8_t h[32];
  crypto_generichash_state st;
  crypto_generichash_init(&st, csrf_key_.data(), csrf_key_.size(), sizeof h);
  crypto_generichash_update(&st, reinterpret_cast<const uint8_t*>(kContext.data()),
                            kContext.size());
  crypto_generichash_update(&st, token.data(), token.size());
  crypto_generichash_final(&st, h, sizeof h);
  sodium_memzero(&st, sizeof st);
  char hex[2 * sizeof h + 1];
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  return std::string(hex, 2 * sizeof h);
}

bool SessionTable::CsrfMatches(ByteView token, ByteView presented) const {
  const std::string expected = CsrfToken(token);
  return presented.size() == expected.size() &&
         sodium_memcmp(presented.data(), expected.data(), expected.size()) == 0;
}

std::string SessionTable::Handle(ByteView token) {
  uint8_t h[crypto_generichash_BYTES];
  crypto_generichash(h, sizeof h, token.data(), token.size(), nullptr, 0);
  return std::string(reinterpret_cast<const char*>(h), sizeof h);
}

Status SessionTable::CheckLock(const std::string& name, int64_t now) {
  MutexLock lock(&mu_);
  auto it = failures_.find(name);
  if (it == failures_.end() || it->second.locked_until_ms <= now) return Status::Ok();
  int64_t left_s = (it->second.locked_until_ms - now + 999) / 1000;
  return PermissionDenied(
      "operator '" + name + "' is locked after " + std::to_string(options_.lockout_after) +
      " wrong passwords; try again in " + std::to_string(left_s) + " s or ask the administrator");
}

void SessionTable::CountFailure(const std::string& name, int64_t now) {
  MutexLock lock(&mu_);
  if (failures_.size() >= kMaxFailureEntries && failures_.count(name) == 0) {
    std::erase_if(failures_, [now](const auto& e) { return e.second.locked_until_ms <= now; });
  }
  if (failures_.size() >= kMaxFailureEntries && failures_.count(name) == 0) return;
  Failures& f = failures_[name];
  ++f.count;
  spdlog::warn("api: wrong password for operator '{}' ({} in a row)", name, f.count);
  if (f.count >= options_.lockout_after) {
    f.count = 0;
    f.locked_until_ms = now + options_.lockout_for.count();
    spdlog::warn("api: operator '{}' locked for {} s after {} wrong passwords", name,
                 options_.lockout_for.count() / 1000, options_.lockout_after);
  }
}

Result<LoginResult> SessionTable::Login(const std::string& name, ByteView password) {
  REFBUS_RETURN_IF_ERROR(CheckOperatorName(name).WithContext("login"));
  REFBUS_RETURN_IF_ERROR(CheckLock(name, now_ms_()));
  {
    MutexLock lock(&mu_);
    if (logins_in_flight_ >= options_.max_concurrent_logins) {
      spdlog::warn("api: login of '{}' refused: {} logins already running", name,
                   logins_in_flight_);
      return ResourceExhausted("too many logins at once; retry in a moment");
    }
    ++logins_in_flight_;
  }
  auto key = store_.Unlock(name, password);
  {
    MutexLock lock(&mu_);
    --logins_in_flight_;
  }
  if (!key.ok()) {
    if (key.status().code() == Status::Code::kUnauthenticated) CountFailure(name, now_ms_());
    return key.status();
  }
  LoginResult out;
  REFBUS_ASSIGN_OR_RETURN(out.token, keys::SecretBuffer::Allocate(2 * kTokenBytes));
  keys::StackSecret<kTokenBytes> raw;
  randombytes_buf(raw.data(), raw.size());
  char hex[2 * kTokenBytes + 1];
  sodium_bin2hex(hex, sizeof hex, raw.data(), raw.size());
  std::copy(hex, hex + 2 * kTokenBytes, out.token.data());
  sodium_memzero(hex, sizeof hex);
  out.key = std::make_shared<const OperatorKey>(std::move(*key));
  MutexLock lock(&mu_);
  failures_.erase(name);
  sessions_[Handle(out.token.view())] = Session{out.key, now_ms_()};
  spdlog::info("api: operator '{}' ({}) logged in", name, RoleName(out.key->role()));
  return out;
}

std::shared_ptr<const OperatorKey> SessionTable::Find(ByteView token) {
  const std::string handle = Handle(token);
  std::shared_ptr<const OperatorKey> key;
  {
    MutexLock lock(&mu_);
    const int64_t now = now_ms_();
    auto it = sessions_.find(handle);
    if (it == sessions_.end()) return nullptr;
    if (now - it->second.last_used_ms > options_.idle_timeout.count()) {
      spdlog::info("api: operator '{}''s session expired after {} s idle", it->second.key->name(),
                   options_.idle_timeout.count() / 1000);
      sessions_.erase(it);
      return nullptr;
    }
    it->second.last_used_ms = now;
    key = it->second.key;
  }
  // An account disabled or given another role since login ends its sessions.
  auto rec = store_.Find(key->name());
  if (!rec.ok() || !rec->active || rec->role != key->role() ||
      rec->public_key != key->public_key()) {
    spdlog::info("api: operator '{}''s session ended: the account changed", key->name());
    MutexLock lock(&mu_);
    sessions_.erase(handle);
    return nullptr;
  }
  return key;
}

bool SessionTable::Logout(ByteView token) {
  MutexLock lock(&mu_);
  auto it = sessions_.find(Handle(token));
  if (it == sessions_.end()) return false;
  spdlog::info("api: operator '{}' logged out", it->second.key->name());
  sessions_.erase(it);
  return true;
}

int SessionTable::logins_in_flight() const {
  MutexLock lock(&mu_);
  return logins_in_flight_;
}

size_t SessionTable::size() const {
  MutexLock lock(&mu_);
  return sessions_.size();
}

}  // namespace refbus::agent
