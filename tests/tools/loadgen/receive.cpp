// refbus-loadgen receive (loadgen.h).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <iostream>
#include <set>
#include <string>

#include "agent/client.h"
#include "agent/transport_store.h"
#include "core/bytes.h"
#include "tests/tools/loadgen/line_log.h"
#include "tests/tools/loadgen/loadgen.h"

namespace refbus::loadgen {
namespace {

constexpr std::string_view kReceiveCmd = "receive";

// Appends inbox records the application has not finished with (after a crash) to the log,
// skipping ids the log already holds, and moves the application cursor past them.
Status CatchUp(agent::TransportStore& store, LineLog& log, std::set<std::string>& logged,
               uint64_t* appended) {
  REFBUS_ASSIGN_OR_RETURN(agent::StoreCounters c, store.Counters());
  uint64_t cursor = c.app_cursor;
  while (true) {
    REFBUS_ASSIGN_OR_RETURN(auto records, store.ReadInbox(cursor, 512));
    if (records.empty()) return Status::Ok();
    for (const auto& r : records) {
      std::string hex = HexEncode(r.message_id);
      if (logged.insert(hex).second) {
        REFBUS_RETURN_IF_ERROR(log.Append(hex));
        ++*appended;
      }
      cursor = r.sequence;
    }
    REFBUS_RETURN_IF_ERROR(store.SetAppCursor(cursor));
  }
}

// One run's deliveries: stores them (the client does), logs each new id once, and moves
// the application cursor past what is logged.
class Receiver {
 public:
  Receiver(const ReceiveOptions& ro, agent::TransportStore& store, agent::Client& client,
           LineLog& log, std::set<std::string>& logged, uint64_t initial)
      : ro_(ro), store_(store), client_(client), log_(log), logged_(logged), initial_(initial) {}

  bool reached() const { return ro_.expect > 0 && initial_ + received_ >= ro_.expect; }
  uint64_t received() const { return received_; }

  // Until --expect, --idle-exit (counted from last_activity on), g_stop or the deadline
  // (*timed_out, *idle). An error is local and final (the store, the log).
  Status Stream(SteadyClock::time_point deadline, SteadyClock::time_point last_activity,
                bool* timed_out, bool* idle) {
    Status last_error;
    uint64_t seen = 0;
    while (g_stop == 0) {
      if (Status s = client_.Poll(100); !s.ok() && s.message() != last_error.message()) {
        spdlog::error("receive: {}", s.ToString());
        last_error = s;
      }
      REFBUS_RETURN_IF_ERROR(TakeEvents());
      const auto& c = client_.counters();
      if (c.delivered + c.duplicate_deliveries != seen) {
        seen = c.delivered + c.duplicate_deliveries;
        last_activity = SteadyClock::now();
      }
      if (reached()) break;
      if (ro_.idle_exit_s > 0 &&
          SteadyClock::now() - last_activity >= std::chrono::seconds(ro_.idle_exit_s)) {
        *idle = true;
        break;
      }
      if (SteadyClock::now() >= deadline) {
        *timed_out = true;
        break;
      }
    }
    return Status::Ok();
  }

  // New messages go to the log first, then the cursor moves past them: a crash in between
  // is repaired by CatchUp on the next start (the log is checked for each id).
  Status TakeEvents() {
    uint64_t cursor = 0;
    for (auto& ev : client_.TakeEvents()) {
      if (ev.type != agent::ClientEvent::Type::kDelivered) continue;
      ++received_;
      std::string hex = HexEncode(ev.message_id);
      if (logged_.insert(hex).second) REFBUS_RETURN_IF_ERROR(log_.Append(hex));
      cursor = std::max(cursor, ev.inbox_sequence);
    }
    if (cursor > 0) REFBUS_RETURN_IF_ERROR(store_.SetAppCursor(cursor));
    return Status::Ok();
  }

 private:
  const ReceiveOptions& ro_;
  agent::TransportStore& store_;
  agent::Client& client_;
  LineLog& log_;
  std::set<std::string>& logged_;
  const uint64_t initial_;
  uint64_t received_ = 0;  // new this run
};

void PrintSummary(const Receiver& receiver, const agent::Client& client,
                  const agent::TransportStore& store, uint64_t initial,
                  SteadyClock::time_point started) {
  const auto& c = client.counters();
  auto all = store.Counters();
  std::cout << "received: " << receiver.received() << "\n"
            << "inbox total: " << (all.ok() ? all->inbox_messages : initial + receiver.received())
            << "\n"
            << "duplicates: " << c.duplicate_deliveries << "\n"
            << "duplicates all runs: " << (all.ok() ? all->duplicate_deliveries : 0) << "\n"
            << "malformed: " << c.malformed_deliveries << "\n"
            << "commits: " << c.delivery_commits << "\n"
            << "sessions: " << c.sessions << "\n"
            << "elapsed s: " << Seconds(started) << "\n";
}

}  // namespace

int RunReceive(const CommonOptions& o, const ReceiveOptions& ro) {
  auto started = SteadyClock::now();
  auto party = LoadParty(o, Now());
  if (!party.ok()) return Fail(kReceiveCmd, party.status());
  auto store = agent::TransportStore::Open(o.data_dir, {o.map_size_mb << 20});
  if (!store.ok()) return Fail(kReceiveCmd, store.status());
  std::set<std::string> logged;
  auto log = LineLog::Open(ro.received_log, &logged);
  if (!log.ok()) return Fail(kReceiveCmd, log.status());

  uint64_t caught_up = 0;
  if (Status s = CatchUp(**store, *log, logged, &caught_up); !s.ok()) return Fail(kReceiveCmd, s);
  auto counters = (*store)->Counters();
  if (!counters.ok()) return Fail(kReceiveCmd, counters.status());
  const uint64_t initial = counters->inbox_messages;
  if (caught_up > 0) {
    spdlog::info("receive: {} stored messages were not yet in the log; appended", caught_up);
  }

  agent::Client client(party->identity, party->directory, o.endpoint, **store,
                       ClientOptionsFrom(o, 64));
  Receiver receiver(ro, **store, client, *log, logged, initial);
  bool timed_out = false, idle = false;
  auto deadline = started + std::chrono::seconds(o.timeout_s);
  auto last_activity = SteadyClock::now();
  if (!receiver.reached()) {
    if (Status s = client.Start(); !s.ok()) return Fail(kReceiveCmd, s);
    Status s = receiver.Stream(deadline, last_activity, &timed_out, &idle);
    if (!s.ok()) return Fail(kReceiveCmd, s);
    if (g_stop != 0) {
      // Store and acknowledge what has already arrived; the rest is redelivered later.
      (void)client.Poll(0);
      if (Status t = receiver.TakeEvents(); !t.ok()) return Fail(kReceiveCmd, t);
    }
    // The last acks are queued in the socket: give them a moment to leave.
    client.Close(500);
  }

  PrintSummary(receiver, client, **store, initial, started);
  if (g_stop != 0) return 0;
  if (timed_out) {
    std::cerr << "refbus-loadgen receive: timed out after " << o.timeout_s << " s with "
              << initial + receiver.received() << " of " << ro.expect << " messages\n";
    return 1;
  }
  if (idle && ro.expect > 0 && !receiver.reached()) {
    std::cerr << "refbus-loadgen receive: idle for " << ro.idle_exit_s << " s with "
              << initial + receiver.received() << " of " << ro.expect << " messages\n";
    return 1;
  }
  return 0;
}

}  // namespace refbus::loadgen
