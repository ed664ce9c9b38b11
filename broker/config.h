// refbus-broker configuration, from a TOML file.
//
// Every setting is validated at load; an error names the file, the setting and what is
// wrong with it. Relative paths are resolved against the config file's folder.
//
//   [broker]
//   id = "seoul-broker"                 # this broker's id in the directory
//   bind = "tcp://127.0.0.1:7450"       # or "tcp://127.0.0.1:*" (port chosen at start)
//   data_dir = "data"                   # LMDB store (one broker per folder)
//   key_file = "identity.key"           # the broker's keys (refbus-keys party init)
//   passphrase_file = ""                # optional, for a protected key file
//   directory = "directory"             # signed directory; reloaded when it changes
//   anchor = "authority.pub"            # the authority's trust anchor
//   trust_state = "trust-state"         # highest directory serial accepted (rollback)
//   endpoint_file = ""                  # optional: write the bound endpoint here
//   status_file = ""                    # default <data_dir>/status.json: the running
//                                       # broker's status (refbus-broker --status reads it)
//
//   [limits]
//   max_frame_bytes = 4194304
//   mailbox_quota = 100000              # envelopes per recipient mailbox
//   sender_quota = 50000                # envelopes of one sender waiting in one mailbox
//                                       # (default: half of mailbox_quota)
//   max_batch = 1024                    # frames handled per group commit
//   verify_threads = N                  # threads besides the event loop that check
//                                       # envelope signatures (default: cores - 1; 0: the
//                                       # loop checks them alone)
//   io_threads = N                      # ZeroMQ I/O threads (CURVE, sockets, heartbeats)
//                                       # (default: 1 on one core, else cores / 2
//                                       # between 2 and 4; 1-16)
//   delivery_window = 256               # unacked deliveries per recipient
//   redelivery_ms = 10000               # resend an unacked delivery after this long
//   map_size_mb = 4096                  # LMDB map size
//   refusals_audited_per_minute = 10    # refusals audited one by one per peer and reason
//                                       # in a minute; the rest of that minute's are one
//                                       # aggregate entry with their count and times
//
//   [policy]
//   allow_unscoped_opaque = false       # accept OPAQUE envelopes that name no consent
//                                       # grant (transport tests and benchmarks only)
//
//   [audit]
//   checkpoint_interval_ms = 10000      # sign a checkpoint this often if the log grew
//                                       # (100 ms to 1 day); also at a clean stop
//
//   [witness]                           # peers that witness this broker's checkpoints
//   peers = ["busan-broker"]            # broker ids; each needs the witness role in the
//                                       # directory (schema/PROTOCOL.md section 11.3)
//   endpoints = { busan-broker = "tcp://10.0.0.7:7450" }
//                                       # optional, per peer; default: the endpoint the
//                                       # directory lists for it
//   endpoint_files = { busan-broker = "busan.endpoint" }
//                                       # optional, per peer: a file holding the endpoint
//                                       # (a broker's endpoint_file), read at each connect
//   interval_ms = 1000                  # at most one request per peer this often; a refused
//                                       # or unanswered one is retried after it (100 ms to 1 h)
//   timeout_ms = 5000                   # no answer by then: reconnect, retry (100 ms to 10 min)
//                                       # requests go over the federation link to the
//                                       # peer; these two tables, if set, give that link's
//                                       # address unless [federation] gives one
//
//   [federation]                        # links to the other brokers of the directory
//   endpoints = { busan-broker = "tcp://10.0.0.7:7450" }
//                                       # optional, per broker; default: the directory's
//   endpoint_files = { busan-broker = "busan.endpoint" }
//                                       # optional, per broker, read at each connect
//   link_timeout_ms = 5000              # no answer from a peer this long: link down,
//                                       # reconnect, resend what is unacked (200 ms to 10 min)
//   max_hops = 3                        # brokers an envelope may pass after its first (1-8)
//   window = 2048                       # relays in flight per link (default: two of the
//                                       # peer's turns, 2 x max_batch, at least delivery_window)
//
//   [metrics]                           # Prometheus metrics and health checks over HTTP
//   bind = "127.0.0.1:9470"             # loopback only: 127.0.0.0/8 or [::1], as a literal;
//                                       # port 0: any free port. Absent: no listener.
//                                       # Serves /metrics, /healthz, /readyz (broker/metrics.h)
//   url_file = ""                       # optional: write "http://127.0.0.1:PORT" here
//
// Thread safety: a value.
#ifndef REFBUS_BROKER_CONFIG_H_
#define REFBUS_BROKER_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"

namespace refbus::broker {

struct WitnessPeerConfig {
  std::string id;
  std::string endpoint;       // empty: endpoint_file, else the directory's
  std::string endpoint_file;  // empty: the directory's
};

struct Config {
  std::string id;
  std::string bind;
  std::string data_dir;
  std::string key_file;
  std::string passphrase_file;
  std::string directory;
  std::string anchor;
  std::string trust_state;
  std::string endpoint_file;
  std::string status_file;

  uint64_t max_frame_bytes = 4u << 20;
  uint64_t mailbox_quota = 100000;
  uint64_t sender_quota = 0;  // 0: half the mailbox quota
  uint64_t max_batch = 1024;
  uint64_t verify_threads = 0;  // set to cores - 1 when the file does not say
  uint64_t io_threads = 1;      // ZeroMQ I/O threads; set from the cores when the file does not say
  uint64_t delivery_window = 256;
  uint64_t redelivery_ms = 10000;
  uint64_t map_size_mb = 4096;
  // Refusals audited one by one per peer, reason and minute; the rest of the minute's are
  // recorded as one aggregate entry (broker/refusals.h).
  uint64_t refusals_audited_per_minute = 10;

  bool allow_unscoped_opaque = false;

  uint64_t checkpoint_interval_ms = 10000;

  std::vector<WitnessPeerConfig> witness_peers;
  uint64_t witness_interval_ms = 1000;
  uint64_t witness_timeout_ms = 5000;

  std::map<std::string, std::string> peer_endpoints;       // broker id -> endpoint
  std::map<std::string, std::string> peer_endpoint_files;  // broker id -> file
  uint64_t link_timeout_ms = 5000;
  uint64_t max_hops = 3;
  uint64_t link_window = 256;

  std::string metrics_bind;      // empty: no metrics listener
  std::string metrics_url_file;  // empty: none written

  // Linkage evaluation (PROTOCOL.md 13.4): empty, this broker evaluates nothing.
  std::string linkage_key_file;
  uint64_t linkage_daily_quota = 300;  // linkage::kDefaultDailyQuota
};

Result<Config> LoadConfig(const std::string& path);

// The default [limits] io_threads for a machine with this many cores (0: unknown).
uint64_t DefaultIoThreads(unsigned cores);

}  // namespace refbus::broker

#endif  // REFBUS_BROKER_CONFIG_H_
