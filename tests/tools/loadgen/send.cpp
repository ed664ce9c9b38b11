// refbus-loadgen send (loadgen.h).
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "agent/client.h"
#include "agent/transport_store.h"
#include "core/bytes.h"
#include "keys/directory.h"
#include "keys/envelope.h"
#include "keys/secret.h"
#include "schema/types.h"
#include "tests/tools/loadgen/line_log.h"
#include "tests/tools/loadgen/loadgen.h"

namespace refbus::loadgen {
namespace {

constexpr std::string_view kSendCmd = "send";

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

Result<std::vector<keys::RecipientPrekey>> Recipients(const Party& party, const std::string& to) {
  std::vector<keys::RecipientPrekey> recipients;
  for (const auto& id : SplitCommas(to)) {
    REFBUS_ASSIGN_OR_RETURN(keys::RecipientPrekey pk,
                            keys::CurrentPrekey(party.directory, id, Now()));
    recipients.push_back(std::move(pk));
  }
  if (recipients.empty()) return InvalidArgument("--to names no agency");
  return recipients;
}

// One run's stream: seals ahead of the window, submits, and counts the answers.
class Sender {
 public:
  Sender(const SendOptions& so, const Party& party, std::vector<keys::RecipientPrekey> recipients,
         agent::Client& client, LineLog& log)
      : so_(so),
        party_(party),
        recipients_(std::move(recipients)),
        client_(client),
        log_(log),
        keep_queued_(2 * so.window) {}

  // Until every envelope is answered, g_stop, or the deadline (*timed_out). An error is
  // local and final (sealing, the outbox, the log).
  Status Stream(SteadyClock::time_point deadline, bool* timed_out) {
    Status last_error;
    while (g_stop == 0) {
      REFBUS_RETURN_IF_ERROR(SealAhead());
      if (Status s = client_.Poll(100); !s.ok() && s.message() != last_error.message()) {
        // Local trouble (a full disk, say) is retried by the client; say it once.
        spdlog::error("send: {}", s.ToString());
        last_error = s;
      }
      REFBUS_RETURN_IF_ERROR(TakeEvents());
      if (sealed_ >= so_.count && client_.outstanding() == 0) break;
      if (SteadyClock::now() >= deadline) {
        *timed_out = true;
        break;
      }
    }
    return Status::Ok();
  }

  // After g_stop: stop sending, and give what is in flight a moment to be answered, so that
  // the broker's acks are recorded now rather than come back as duplicates next run.
  Status Drain() {
    client_.PauseSubmissions(true);
    auto drain_until = SteadyClock::now() + std::chrono::seconds(2);
    while (client_.in_flight() > 0 && SteadyClock::now() < drain_until) {
      (void)client_.Poll(50);
      REFBUS_RETURN_IF_ERROR(TakeEvents());
    }
    return Status::Ok();
  }

  void PrintSummary(SteadyClock::time_point started) const {
    const auto& c = client_.counters();
    double secs = Seconds(started);
    std::cout << "sealed: " << sealed_ << "\n"
              << "recovered from outbox: " << c.recovered << "\n"
              << "acked: " << acked_ << "\n"
              << "acked duplicate: " << acked_duplicate_ << "\n"
              << "refused: " << refused_ << "\n";
    for (const auto& [reason, n] : refused_by_reason_) {
      std::cout << "refused " << reason << ": " << n << "\n";
    }
    std::cout << "resent: " << c.resent << "\n"
              << "backpressure: " << c.backpressure << "\n"
              << "sessions: " << c.sessions << "\n"
              << "unacknowledged: " << client_.outstanding() << "\n"
              << "elapsed s: " << secs << "\n"
              << "acked per s: " << (secs > 0 ? static_cast<double>(acked_) / secs : 0.0) << "\n";
  }

  uint64_t acked() const { return acked_; }
  uint64_t refused() const { return refused_; }

 private:
  // Seals lazily: a large --count never sits in memory, only what the window needs next.
  Status SealAhead() {
    while (sealed_ < so_.count && client_.unsent() < keep_queued_) {
      uint64_t n = std::min<uint64_t>({so_.count - sealed_, keep_queued_ - client_.unsent(), 256});
      std::vector<Bytes> batch;
      batch.reserve(n);
      UnixMillis now = Now();
      for (uint64_t i = 0; i < n; ++i) {
        keys::SealRequest req;
        req.kind = schema::MessageKind::kOpaque;
        req.recipients = recipients_;
        req.case_ref = "bench-case-" + std::to_string(100000 + ((sealed_ + i + 1) % 900000));
        req.now = now;
        keys::Plaintext content(so_.size);
        randombytes_buf(content.data(), content.size());
        REFBUS_ASSIGN_OR_RETURN(Bytes env,
                                keys::SealEnvelope(party_.identity, req, content.view()));
        batch.push_back(std::move(env));
      }
      REFBUS_RETURN_IF_ERROR(client_.SubmitBatch(std::move(batch)).status());
      sealed_ += n;
    }
    return Status::Ok();
  }

  Status TakeEvents() {
    for (auto& ev : client_.TakeEvents()) {
      if (ev.type == agent::ClientEvent::Type::kAcked) {
        ++acked_;
        if (ev.duplicate) ++acked_duplicate_;
        REFBUS_RETURN_IF_ERROR(log_.Append(HexEncode(ev.message_id)));
      } else if (ev.type == agent::ClientEvent::Type::kRefused) {
        ++refused_;
        ++refused_by_reason_[std::string(schema::Name(ev.reason))];
      }
    }
    return Status::Ok();
  }

  const SendOptions& so_;
  const Party& party_;
  const std::vector<keys::RecipientPrekey> recipients_;
  agent::Client& client_;
  LineLog& log_;
  const size_t keep_queued_;  // sealed ahead of the window, no more
  uint64_t sealed_ = 0, acked_ = 0, acked_duplicate_ = 0, refused_ = 0;
  std::map<std::string, uint64_t> refused_by_reason_;
};

}  // namespace

int RunSend(const CommonOptions& o, const SendOptions& so) {
  auto started = SteadyClock::now();
  auto party = LoadParty(o, Now());
  if (!party.ok()) return Fail(kSendCmd, party.status());
  auto recipients = Recipients(*party, so.to);
  if (!recipients.ok()) return Fail(kSendCmd, recipients.status());
  if (so.window == 0) return Fail(kSendCmd, InvalidArgument("--window must be at least 1"));

  auto store = agent::TransportStore::Open(o.data_dir, {o.map_size_mb << 20});
  if (!store.ok()) return Fail(kSendCmd, store.status());
  auto log = LineLog::Open(so.acked_log, nullptr);
  if (!log.ok()) return Fail(kSendCmd, log.status());
  agent::Client client(party->identity, party->directory, o.endpoint, **store,
                       ClientOptionsFrom(o, so.window));
  if (Status s = client.Start(); !s.ok()) return Fail(kSendCmd, s);

  Sender sender(so, *party, std::move(recipients).value(), client, *log);
  bool timed_out = false;
  if (Status s = sender.Stream(started + std::chrono::seconds(o.timeout_s), &timed_out); !s.ok()) {
    return Fail(kSendCmd, s);
  }
  if (g_stop != 0) {
    if (Status s = sender.Drain(); !s.ok()) return Fail(kSendCmd, s);
  }
  client.Close(0);
  sender.PrintSummary(started);
  if (g_stop != 0) {
    std::cerr << "refbus-loadgen send: stopped by signal; " << client.outstanding()
              << " unacknowledged envelopes stay in the outbox in " << o.data_dir
              << " and are resubmitted by the next run\n";
    return 0;
  }
  if (timed_out) {
    std::cerr << "refbus-loadgen send: timed out after " << o.timeout_s << " s: " << sender.acked()
              << " acknowledged, " << sender.refused() << " refused, " << client.outstanding()
              << " still unacknowledged (kept in the outbox in " << o.data_dir
              << "; is the broker at " << o.endpoint << " running?)\n";
    return 1;
  }
  return 0;
}

}  // namespace refbus::loadgen
