// refbus-agent configuration, from a TOML file (the daemon's: agent/daemon.h).
//
// Every setting is validated at load; an error names the file, the setting and what is
// wrong with it; unknown sections and settings are refused. Relative paths are resolved
// against the config file's folder.
//
//   [agent]
//   id = "incheon-wee-01"            # this agency's id in the directory
//   data_dir = "data"                # LMDB stores, API token and URL files (one agent
//                                    # per folder)
//   key_file = "identity.key"        # the agency's keys (refbus-keys party init)
//   passphrase_file = ""             # optional, for a protected key file
//   directory = "directory"          # signed directory; reloaded on SIGHUP or change
//   anchor = "authority.pub"         # the authority's trust anchor
//   trust_state = "trust-state"      # highest directory serial accepted (rollback)
//   broker_endpoint = ""             # optional: default is the home broker's endpoint
//                                    # in the directory
//   grant_key_dir = ""               # per-grant data keys sealing case text at rest
//                                    # (agent/case_crypto.h); default <data_dir>/grant-keys,
//                                    # never in a backup (agent/backup.h)
//
//   [api]
//   listen = "127.0.0.1:0"           # loopback only unless [console] TLS is set (then
//                                    # any IPv4 literal, e.g. "0.0.0.0:8443"); port 0 = any
//   url_file = ""                    # default <data_dir>/api.url (written at start, 0600)
//   token_file = ""                  # default <data_dir>/api.token (created 0600)
//   command_timeout_ms = 30000       # a command not started by then is answered 503
//   allowed_hosts = []               # host names a request may name in Host (and Origin)
//                                    # besides 127.0.0.1 and localhost: "NAME" (at the API's
//                                    # port) or "NAME:PORT"; any other is refused (421/403)
//   session_idle_timeout_ms = 900000 # an operator's session ends after this long unused
//   lockout_after = 10               # this many wrong passwords in a row lock the operator
//   lockout_ms = 900000              # for this long (agent/sessions.h)
//
//   [console]                        # the browser console, served with the API
//   tls_cert = ""                    # PEM certificate (chain) and key (0600, unencrypted):
//   tls_key = ""                     # with both, the API and console serve HTTPS only (on
//                                    # loopback too) and [api] listen may leave loopback;
//                                    # without them a non-loopback listen refuses to start
//
//   [metrics]                        # Prometheus metrics and health checks over HTTP
//   bind = "127.0.0.1:9471"          # loopback only: 127.0.0.0/8 or [::1], as a literal;
//                                    # port 0: any free port. Absent: no listener.
//                                    # Serves /metrics, /healthz, /readyz (agent/metrics.h)
//   url_file = ""                    # optional: write "http://127.0.0.1:PORT" here
//
//   [keys]                           # prekeys (PROTOCOL.md "Prekey publication")
//   prekey_rotate_days = 7           # the daemon makes, signs and publishes a new prekey
//                                    # this often (1..29); each is valid for 30 days and
//                                    # its secret is wiped 30 days after that
//   # For tests only, in milliseconds (each replaces the setting above or the constant):
//   # test_prekey_rotate_ms, test_prekey_lifetime_ms, test_prekey_keep_after_expiry_ms
//
//   [deletion]                       # chunked deletion requests (PROTOCOL.md 10.1)
//   chunk_timeout_ms = 60000         # a deletion center asks again for chunks still
//                                    # missing this long after the latest one arrived
//   overdue_days = 14                # a work item of the deletion center's queue not
//                                    # removed this long after it was first requested is
//                                    # flagged overdue (1..3650)
//   # For tests only: test_skip_chunk = N keeps chunk N of the first chunked request this
//   # process sends, unsent, so that its loss and recovery can be seen;
//   # test_skip_watch_part = N keeps part N of the first watch-list file it sends in parts
//   # (chunk_timeout_ms is also how long a center waits for a missing part, PROTOCOL.md 10.3).
//
//   [linkage]                        # identifiers and the matching escrow (PROTOCOL.md 13)
//   first_evaluator = ""             # the two brokers with the role linkage-evaluator whose
//   second_evaluator = ""            # keys make the pseudonym (the same two everywhere)
//   first_endpoint = ""              # optional: default is the directory's endpoint
//   second_endpoint = ""
//   escrow = ""                      # default: the directory's agency with linkage-escrow
//   threshold = 2                    # agencies a match needs (2..16; the escrow's too)
//   timeout_ms = 5000                # per evaluator
//
// Thread safety: a value; LoadAgentConfig is a free function.
#ifndef REFBUS_AGENT_CONFIG_H_
#define REFBUS_AGENT_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace refbus::agent {

struct AgentConfig {
  std::string path;  // the file it was loaded from

  std::string id;
  std::string data_dir;
  std::string key_file;
  std::string passphrase_file;
  std::string directory;
  std::string anchor;
  std::string trust_state;
  std::string broker_endpoint;
  std::string grant_key_dir;

  std::string api_listen = "127.0.0.1:0";
  std::string api_url_file;
  std::string api_token_file;
  uint64_t api_command_timeout_ms = 30000;
  std::vector<std::string> api_allowed_hosts;
  uint64_t api_session_idle_timeout_ms = 900000;
  uint64_t api_lockout_after = 10;
  uint64_t api_lockout_ms = 900000;

  std::string console_tls_cert;  // empty: none (loopback only)
  std::string console_tls_key;

  std::string metrics_bind;      // empty: no metrics listener
  std::string metrics_url_file;  // empty: none written

  // [keys]: how often the daemon makes and publishes a new prekey, how long each is valid,
  // and how long its secret is kept after it expires (agent/prekey_rotation.h).
  uint64_t prekey_rotate_ms = 7 * 24 * 3600 * 1000ull;
  uint64_t prekey_lifetime_ms = 30 * 24 * 3600 * 1000ull;           // keys::kPrekeyLifetimeMs
  uint64_t prekey_keep_after_expiry_ms = 30 * 24 * 3600 * 1000ull;  // kPrekeyKeepAfterExpiryMs

  // [deletion] (agent/engine.h EngineOptions).
  uint64_t deletion_chunk_timeout_ms = 60000;
  uint64_t deletion_overdue_days = 14;  // [deletion] overdue_days
  int64_t deletion_test_skip_chunk = -1;
  int64_t deletion_test_skip_watch_part = -1;  // [deletion] test_skip_watch_part

  std::string linkage_first;  // [linkage]
  std::string linkage_first_endpoint;
  std::string linkage_second;
  std::string linkage_second_endpoint;
  std::string linkage_escrow;
  uint64_t linkage_threshold = 2;
  uint64_t linkage_timeout_ms = 5000;
};

Result<AgentConfig> LoadAgentConfig(const std::string& path);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_CONFIG_H_
