// Operator sessions of the local API (issue 18 item 1): login with a password, a session
// token, idle expiry, logout, and lockout after repeated wrong passwords.
//
// Login checks the password against the operator store and unseals the operator's signing
// key (agent/operators.h); the session holds that key in sodium_malloc memory until it ends
// (logout, idle timeout, or the account disabled or its role changed in the store), when the
// key is wiped (once no request in flight still uses it). A session token is 32 random bytes
// (64 hex digits); the table keys sessions by the token's BLAKE2b hash, so looking one up
// does not compare the token itself in variable time, and the token is never logged.
//
// Lockout: the lockout_after-th consecutive wrong password for an operator name locks that
// name for lockout_for (the right password is refused too until then); a good login resets
// the count. Counted in memory per name (a restart clears it: only the administrator can
// restart the agent), each wrong password and each lockout logged with the name only.
//
// Thread safety: thread-safe. Login runs Argon2id (tens of milliseconds and 64 MiB) outside
// the table's lock, at most options.max_concurrent_logins at once.
#ifndef REFBUS_AGENT_SESSIONS_H_
#define REFBUS_AGENT_SESSIONS_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "agent/operators.h"
#include "core/mutex.h"
#include "core/status.h"
#include "keys/secret.h"

namespace refbus::agent {

struct SessionOptions {
  std::chrono::milliseconds idle_timeout{15 * 60 * 1000};
  int lockout_after = 10;  // consecutive wrong passwords
  std::chrono::milliseconds lockout_for{15 * 60 * 1000};
  // Logins checking a password at once (each Argon2id takes 64 MiB and tens of
  // milliseconds); more are answered ResourceExhausted at once, so that a flood of logins
  // cannot take every API thread or much memory.
  int max_concurrent_logins = 2;
};

struct LoginResult {
  keys::SecretBuffer token;  // 64 lowercase hex digits; the caller hands it out and wipes it
  std::shared_ptr<const OperatorKey> key;
};

class SessionTable {
 public:
  // store: the operator store (outlives the table). now_ms: a steady clock in milliseconds
  // (tests pass their own).
  SessionTable(const OperatorStore& store, SessionOptions options, std::function<int64_t()> now_ms);

  // Unauthenticated for a wrong name or password; PermissionDenied for a disabled account
  // or one locked by lockout (with when it unlocks).
  Result<LoginResult> Login(const std::string& name, ByteView password) EXCLUDES(mu_);

  // The session's operator, its idle time reset; nullptr for an unknown or expired token,
  // or an account since disabled or given another role (the session is ended).
  std::shared_ptr<const OperatorKey> Find(ByteView token) EXCLUDES(mu_);

  // Ends the session; false if there was none.
  bool Logout(ByteView token) EXCLUDES(mu_);

  // The session's CSRF token (agent/console_session.h): 64 hex digits of BLAKE2b keyed by a
  // random key the table made at construction, over the session token. Unguessable without
  // that key, different for every session, and gone with the session (Find refuses its
  // token). Computed, not stored, so the login reply and GET /v1/session agree.
  std::string CsrfToken(ByteView token) const;
  // Whether presented is token's CSRF token; compared in constant time.
  bool CsrfMatches(ByteView token, ByteView presented) const;

  size_t size() const EXCLUDES(mu_);
  int logins_in_flight() const EXCLUDES(mu_);
  const SessionOptions& options() const { return options_; }

 private:
  struct Session {
    std::shared_ptr<const OperatorKey> key;
    int64_t last_used_ms = 0;
  };
  struct Failures {
    int count = 0;
    int64_t locked_until_ms = 0;
  };

  Status CheckLock(const std::string& name, int64_t now) EXCLUDES(mu_);
  void CountFailure(const std::string& name, int64_t now) EXCLUDES(mu_);
  static std::string Handle(ByteView token);  // the table's key for a token

  const OperatorStore& store_;
  const SessionOptions options_;
  const std::function<int64_t()> now_ms_;
  keys::SecretBuffer csrf_key_;  // random, made at construction; wiped with the table
  mutable Mutex mu_;
  std::map<std::string, Session> sessions_ GUARDED_BY(mu_);
  std::map<std::string, Failures> failures_ GUARDED_BY(mu_);
  int logins_in_flight_ GUARDED_BY(mu_) = 0;
};

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_SESSIONS_H_
