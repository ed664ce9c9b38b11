// The brokers people would pick instead of refbus, measured the way broker_bench measures
// refbus: 1 KiB messages, the same count and in-flight window, a consumer draining the
// queue while the producer runs (store and forward), each set up for durability as its
// users would set it up. The servers are started by deploy/bench.sh; this only connects.
//
//   peer_bench rabbitmq --port P [--queue-type quorum|classic|both] [common options]
//   peer_bench mosquitto --port P [common options]
//   common options: [--messages N] [--window W] [--sync-messages M] [--host H]
//
// RabbitMQ (librabbitmq): a durable queue (quorum: x-queue-type=quorum, or classic),
// persistent messages (delivery_mode 2) through the default exchange, publisher confirms;
// the consumer has its own connection, a prefetch of 1024 and acks every message. Both
// queue types flush to disk before they confirm (checked with strace on RabbitMQ 3.10.8:
// one fsync per confirm when publishing one at a time; with a window they group commits).
// Mosquitto (libmosquitto): QoS 1 publishes, a QoS 1 subscriber with a persistent session
// (clean_session false); the broker is run with persistence on, which in Mosquitto is a
// snapshot of its memory written every autosave_interval and at exit: a PUBACK does not
// mean the message is on disk.
//
// For each: throughput (publish -> confirm/PUBACK, W in flight) with confirm latency
// p50/p99 and the consumer's end-to-end rate; then one at a time (publish, wait for the
// confirm, repeat; M messages) with latency p50/p99. Besides the text, prints one
// machine-readable line per target: RESULT <target> key=value ...
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <mosquitto.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tests/bench/bench_util.h"

namespace {

using refbus::bench::Percentile;

using SteadyClock = std::chrono::steady_clock;

constexpr size_t kPayloadBytes = 1024;
constexpr int kConsumerPrefetch = 1024;  // broker_bench runs refbus with delivery_window 1024

struct Options {
  std::string target;
  std::string host = "127.0.0.1";
  int port = 0;
  size_t messages = 20000;
  size_t window = 64;
  size_t sync_messages = 2000;
  std::string queue_type = "both";
};

double MillisSince(SteadyClock::time_point t) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t).count();
}

std::vector<uint8_t> Payload() {
  std::vector<uint8_t> p(kPayloadBytes);
  uint32_t x = 2463534242u;  // xorshift: incompressible enough, and no library needed
  for (auto& b : p) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<uint8_t>(x);
  }
  return p;
}

// What one producer run measured.
struct Run {
  size_t confirmed = 0;
  size_t refused = 0;  // nacks
  double seconds = 0;
  std::vector<double> latencies_ms;
  double Rate() const { return seconds > 0 ? static_cast<double>(confirmed) / seconds : 0; }
};

struct TargetResult {
  std::string name;
  Run full, sync;
  size_t consumed = 0;
  double consume_seconds = 0;  // from the first publish to the last message of the full run
  bool ok = true;
};

void Print(const TargetResult& r, const Options& o) {
  std::printf("  %-26s %8zu confirmed %4zu refused %8.0f msg/s   p50 %7.3f ms  p99 %7.3f ms\n",
              (r.name + ", window " + std::to_string(o.window)).c_str(), r.full.confirmed,
              r.full.refused, r.full.Rate(), Percentile(r.full.latencies_ms, 0.50),
              Percentile(r.full.latencies_ms, 0.99));
  double consume_rate =
      r.consume_seconds > 0 ? static_cast<double>(o.messages) / r.consume_seconds : 0;
  std::printf("  %-26s consumer received all %zu of the full run: %s (%.0f msg/s end to end)\n", "",
              o.messages, r.consumed >= o.messages ? "yes" : "NO", consume_rate);
  std::printf("  %-26s %8zu confirmed %4zu refused %8.0f msg/s   p50 %7.3f ms  p99 %7.3f ms\n",
              (r.name + ", one at a time").c_str(), r.sync.confirmed, r.sync.refused, r.sync.Rate(),
              Percentile(r.sync.latencies_ms, 0.50), Percentile(r.sync.latencies_ms, 0.99));
  std::printf(
      "RESULT %s ok=%d messages=%zu window=%zu rate=%.0f p50_ms=%.3f p99_ms=%.3f "
      "refused=%zu consumed=%zu consume_rate=%.0f sync_messages=%zu sync_rate=%.0f "
      "sync_p50_ms=%.3f sync_p99_ms=%.3f\n",
      r.name.c_str(), r.ok && r.consumed >= o.messages ? 1 : 0, o.messages, o.window, r.full.Rate(),
      Percentile(r.full.latencies_ms, 0.50), Percentile(r.full.latencies_ms, 0.99),
      r.full.refused + r.sync.refused, r.consumed, consume_rate, o.sync_messages, r.sync.Rate(),
      Percentile(r.sync.latencies_ms, 0.50), Percentile(r.sync.latencies_ms, 0.99));
  std::fflush(stdout);
}

// ---- RabbitMQ ------------------------------------------------------------------------

// A connection with channel 1 open, or nullopt (the reason printed).
class AmqpConnection {
 public:
  AmqpConnection() : conn_(amqp_new_connection()) {}
  ~AmqpConnection() {
    if (open_) {
      (void)amqp_channel_close(conn_, 1, AMQP_REPLY_SUCCESS);
      (void)amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(conn_);
  }
  AmqpConnection(const AmqpConnection&) = delete;
  AmqpConnection& operator=(const AmqpConnection&) = delete;

  bool Open(const std::string& host, int port) {
    amqp_socket_t* socket = amqp_tcp_socket_new(conn_);
    if (socket == nullptr || amqp_socket_open(socket, host.c_str(), port) != AMQP_STATUS_OK) {
      std::fprintf(stderr, "peer_bench: cannot connect to RabbitMQ at %s:%d\n", host.c_str(), port);
      return false;
    }
    if (!Check(amqp_login(conn_, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"),
               "login")) {
      return false;
    }
    amqp_channel_open(conn_, 1);
    if (!Check(amqp_get_rpc_reply(conn_), "channel open")) return false;
    open_ = true;
    return true;
  }

  bool Check(const amqp_rpc_reply_t& r, const char* what) {
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return true;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
      std::fprintf(stderr, "peer_bench: RabbitMQ %s: %s\n", what,
                   amqp_error_string2(r.library_error));
    } else {
      std::fprintf(stderr, "peer_bench: RabbitMQ %s: server replied with method 0x%08x\n", what,
                   r.reply.id);
    }
    return false;
  }
  bool CheckLast(const char* what) { return Check(amqp_get_rpc_reply(conn_), what); }

  amqp_connection_state_t get() const { return conn_; }

 private:
  amqp_connection_state_t conn_;
  bool open_ = false;
};

// Drains the queue, acking each message, until stop; counts what arrived and when the
// first `wanted` had.
void AmqpConsume(const Options* o, std::string queue, std::atomic<bool>* ready,
                 std::atomic<bool>* stop, std::atomic<size_t>* count,
                 std::atomic<int64_t>* wanted_at_ns, size_t wanted) {
  AmqpConnection c;
  if (!c.Open(o->host, o->port)) {
    *ready = true;
    return;
  }
  amqp_basic_qos(c.get(), 1, 0, kConsumerPrefetch, 0);
  if (!c.CheckLast("basic.qos")) {
    *ready = true;
    return;
  }
  amqp_basic_consume(c.get(), 1, amqp_cstring_bytes(queue.c_str()), amqp_empty_bytes, 0, 0, 0,
                     amqp_empty_table);
  if (!c.CheckLast("basic.consume")) {
    *ready = true;
    return;
  }
  *ready = true;
  while (!stop->load()) {
    amqp_maybe_release_buffers(c.get());
    amqp_envelope_t envelope;
    timeval tv{0, 100000};
    amqp_rpc_reply_t r = amqp_consume_message(c.get(), &envelope, &tv, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
          r.library_error == AMQP_STATUS_TIMEOUT) {
        continue;
      }
      std::fprintf(stderr, "peer_bench: RabbitMQ consumer stopped (reply type %d, %s)\n",
                   static_cast<int>(r.reply_type), amqp_error_string2(r.library_error));
      return;
    }
    bool good = envelope.message.body.len == kPayloadBytes;
    if (amqp_basic_ack(c.get(), 1, envelope.delivery_tag, 0) != AMQP_STATUS_OK) good = false;
    amqp_destroy_envelope(&envelope);
    if (!good) {
      std::fprintf(stderr, "peer_bench: RabbitMQ consumer: bad message or ack failed\n");
      return;
    }
    if (++*count == wanted) {
      *wanted_at_ns = SteadyClock::now().time_since_epoch().count();
    }
  }
}

// Publishes n persistent messages keeping `window` unconfirmed; window 1 is one at a time.
Run AmqpPublish(AmqpConnection& c, const std::string& queue, size_t n, size_t window,
                uint64_t& next_tag) {
  Run r;
  std::vector<uint8_t> payload = Payload();
  amqp_basic_properties_t props;
  std::memset(&props, 0, sizeof(props));
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  props.content_type = amqp_cstring_bytes("application/octet-stream");
  amqp_bytes_t body{payload.size(), payload.data()};
  const uint64_t first_tag = next_tag;
  std::vector<SteadyClock::time_point> sent(n);
  std::vector<bool> done(n, false);
  size_t published = 0, settled = 0, lowest_open = 0;
  auto settle = [&](uint64_t tag, bool ack) {
    if (tag < first_tag || tag - first_tag >= n) return;
    size_t i = static_cast<size_t>(tag - first_tag);
    if (done[i]) return;
    done[i] = true;
    ++settled;
    if (ack) {
      ++r.confirmed;
      r.latencies_ms.push_back(MillisSince(sent[i]));
    } else {
      ++r.refused;
    }
  };
  auto start = SteadyClock::now();
  while (settled < n) {
    while (published < n && published - settled < window) {
      sent[published] = SteadyClock::now();
      if (amqp_basic_publish(c.get(), 1, amqp_empty_bytes, amqp_cstring_bytes(queue.c_str()), 0, 0,
                             &props, body) != AMQP_STATUS_OK) {
        std::fprintf(stderr, "peer_bench: RabbitMQ publish failed\n");
        r.seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
        return r;
      }
      ++published;
      ++next_tag;
    }
    amqp_frame_t frame;
    timeval tv{5, 0};
    int rc = amqp_simple_wait_frame_noblock(c.get(), &frame, &tv);
    if (rc != AMQP_STATUS_OK) {
      std::fprintf(stderr, "peer_bench: RabbitMQ waiting for confirms: %s (%zu unconfirmed)\n",
                   amqp_error_string2(rc), published - settled);
      break;
    }
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;
    bool ack = frame.payload.method.id == AMQP_BASIC_ACK_METHOD;
    bool nack = frame.payload.method.id == AMQP_BASIC_NACK_METHOD;
    if (!ack && !nack) {
      if (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
        std::fprintf(stderr, "peer_bench: RabbitMQ closed the channel\n");
        break;
      }
      continue;
    }
    uint64_t tag = 0;
    bool multiple = false;
    if (ack) {
      auto* m = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
      tag = m->delivery_tag;
      multiple = m->multiple != 0;
    } else {
      auto* m = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
      tag = m->delivery_tag;
      multiple = m->multiple != 0;
    }
    if (multiple) {
      while (lowest_open < n && first_tag + lowest_open <= tag) {
        settle(first_tag + lowest_open, ack);
        ++lowest_open;
      }
    } else {
      settle(tag, ack);
    }
    while (lowest_open < n && done[lowest_open]) ++lowest_open;
    if (!amqp_frames_enqueued(c.get()) && !amqp_data_in_buffer(c.get())) {
      amqp_maybe_release_buffers(c.get());
    }
  }
  r.seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  return r;
}

TargetResult RunRabbitmq(const Options& o, const std::string& type) {
  TargetResult result;
  result.name = "rabbitmq_" + type;
  std::string queue = "refbus-bench-" + type;
  AmqpConnection c;
  if (!c.Open(o.host, o.port)) {
    result.ok = false;
    return result;
  }
  // A fresh queue each run, so that nothing left from an earlier run is counted.
  amqp_queue_delete(c.get(), 1, amqp_cstring_bytes(queue.c_str()), 0, 0);
  if (!c.CheckLast("queue.delete")) {
    result.ok = false;
    return result;
  }
  amqp_table_entry_t arg;
  arg.key = amqp_cstring_bytes("x-queue-type");
  arg.value.kind = AMQP_FIELD_KIND_UTF8;
  arg.value.value.bytes = amqp_cstring_bytes(type.c_str());
  amqp_table_t args{1, &arg};
  amqp_queue_declare(c.get(), 1, amqp_cstring_bytes(queue.c_str()), 0, /*durable=*/1,
                     /*exclusive=*/0, /*auto_delete=*/0, args);
  if (!c.CheckLast("queue.declare")) {
    result.ok = false;
    return result;
  }
  amqp_confirm_select(c.get(), 1);
  if (!c.CheckLast("confirm.select")) {
    result.ok = false;
    return result;
  }

  std::atomic<bool> ready{false}, stop{false};
  std::atomic<size_t> consumed{0};
  std::atomic<int64_t> wanted_at_ns{0};
  std::thread consumer(AmqpConsume, &o, queue, &ready, &stop, &consumed, &wanted_at_ns, o.messages);
  while (!ready.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  uint64_t next_tag = 1;  // confirm tags count publishes on the channel from 1
  auto start = SteadyClock::now();
  result.full = AmqpPublish(c, queue, o.messages, o.window, next_tag);
  result.sync = AmqpPublish(c, queue, o.sync_messages, 1, next_tag);
  // Let the consumer drain what is left (bounded).
  for (int i = 0; i < 300 && consumed.load() < o.messages + o.sync_messages; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  stop = true;
  consumer.join();
  result.consumed = consumed.load();
  if (wanted_at_ns.load() != 0) {
    result.consume_seconds =
        std::chrono::duration<double>(SteadyClock::time_point(SteadyClock::duration(wanted_at_ns)) -
                                      start)
            .count();
  }
  result.ok = result.full.confirmed == o.messages && result.sync.confirmed == o.sync_messages;
  amqp_queue_delete(c.get(), 1, amqp_cstring_bytes(queue.c_str()), 0, 0);
  (void)amqp_get_rpc_reply(c.get());
  return result;
}

// ---- Mosquitto -----------------------------------------------------------------------

// Pairs each publish with its PUBACK by message id, whichever is seen first: the PUBACK
// can arrive (on libmosquitto's thread) before mosquitto_publish has returned the id.
struct MqttPublisher {
  std::mutex mu;
  std::condition_variable cv;
  bool connected = false;
  size_t inflight = 0;
  std::unordered_map<int, SteadyClock::time_point> sent, acked;
  std::vector<double>* latencies = nullptr;
};

struct MqttSubscriber {
  std::atomic<bool> subscribed{false};
  std::atomic<size_t> count{0};
  std::atomic<size_t> bad{0};
  size_t wanted = 0;
  std::atomic<int64_t> wanted_at_ns{0};
};

constexpr const char* kTopic = "refbus/bench";

void OnPublisherConnect(mosquitto*, void* obj, int rc) {
  auto* p = static_cast<MqttPublisher*>(obj);
  std::lock_guard<std::mutex> lock(p->mu);
  p->connected = rc == 0;
  p->cv.notify_all();
}

void OnPublish(mosquitto*, void* obj, int mid) {
  auto now = SteadyClock::now();
  auto* p = static_cast<MqttPublisher*>(obj);
  std::lock_guard<std::mutex> lock(p->mu);
  auto it = p->sent.find(mid);
  if (it != p->sent.end()) {
    p->latencies->push_back(std::chrono::duration<double, std::milli>(now - it->second).count());
    p->sent.erase(it);
  } else {
    p->acked[mid] = now;
  }
  --p->inflight;
  p->cv.notify_all();
}

void OnSubscriberConnect(mosquitto* m, void*, int rc) {
  if (rc == 0) (void)mosquitto_subscribe(m, nullptr, kTopic, 1);
}

void OnSubscribe(mosquitto*, void* obj, int, int count, const int* granted) {
  auto* s = static_cast<MqttSubscriber*>(obj);
  if (count == 1 && granted[0] == 1) s->subscribed = true;
}

void OnMessage(mosquitto*, void* obj, const mosquitto_message* m) {
  auto* s = static_cast<MqttSubscriber*>(obj);
  if (m->payloadlen != static_cast<int>(kPayloadBytes)) ++s->bad;
  if (++s->count == s->wanted) s->wanted_at_ns = SteadyClock::now().time_since_epoch().count();
}

Run MqttPublishRun(mosquitto* m, MqttPublisher& p, size_t n, size_t window) {
  Run r;
  std::vector<uint8_t> payload = Payload();
  p.latencies = &r.latencies_ms;
  auto start = SteadyClock::now();
  for (size_t i = 0; i < n; ++i) {
    {
      std::unique_lock<std::mutex> lock(p.mu);
      if (!p.cv.wait_for(lock, std::chrono::seconds(10), [&] { return p.inflight < window; })) {
        std::fprintf(stderr, "peer_bench: Mosquitto: no PUBACK for 10 s\n");
        break;
      }
      ++p.inflight;
    }
    int mid = 0;
    auto t = SteadyClock::now();
    int rc = mosquitto_publish(m, &mid, kTopic, static_cast<int>(payload.size()), payload.data(), 1,
                               false);
    std::lock_guard<std::mutex> lock(p.mu);
    if (rc != MOSQ_ERR_SUCCESS) {
      std::fprintf(stderr, "peer_bench: Mosquitto publish: %s\n", mosquitto_strerror(rc));
      --p.inflight;
      break;
    }
    auto it = p.acked.find(mid);
    if (it != p.acked.end()) {
      r.latencies_ms.push_back(std::chrono::duration<double, std::milli>(it->second - t).count());
      p.acked.erase(it);
    } else {
      p.sent[mid] = t;
    }
  }
  {
    std::unique_lock<std::mutex> lock(p.mu);
    if (!p.cv.wait_for(lock, std::chrono::seconds(10), [&] { return p.inflight == 0; })) {
      std::fprintf(stderr, "peer_bench: Mosquitto: %zu PUBACKs missing\n", p.inflight);
    }
    r.confirmed = r.latencies_ms.size();
    p.latencies = nullptr;
  }
  r.seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  return r;
}

TargetResult RunMosquitto(const Options& o) {
  TargetResult result;
  result.name = "mosquitto";
  result.ok = false;
  MqttSubscriber sub_state;
  sub_state.wanted = o.messages;
  MqttPublisher pub_state;
  // The subscriber's session persists (clean_session false): while it is away its QoS 1
  // messages are queued for it, as a consumer of a durable queue would expect.
  mosquitto* sub = mosquitto_new("refbus-bench-sub", false, &sub_state);
  mosquitto* pub = mosquitto_new("refbus-bench-pub", true, &pub_state);
  if (sub == nullptr || pub == nullptr) {
    std::fprintf(stderr, "peer_bench: mosquitto_new failed\n");
    return result;
  }
  mosquitto_connect_callback_set(sub, OnSubscriberConnect);
  mosquitto_subscribe_callback_set(sub, OnSubscribe);
  mosquitto_message_callback_set(sub, OnMessage);
  mosquitto_connect_callback_set(pub, OnPublisherConnect);
  mosquitto_publish_callback_set(pub, OnPublish);
  (void)mosquitto_max_inflight_messages_set(pub, static_cast<unsigned>(o.window));
  (void)mosquitto_int_option(pub, MOSQ_OPT_TCP_NODELAY, 1);
  (void)mosquitto_int_option(sub, MOSQ_OPT_TCP_NODELAY, 1);
  auto fail = [&](const char* what, int rc) {
    std::fprintf(stderr, "peer_bench: Mosquitto %s: %s\n", what, mosquitto_strerror(rc));
  };
  int rc = mosquitto_connect(sub, o.host.c_str(), o.port, 60);
  if (rc != MOSQ_ERR_SUCCESS) {
    fail("subscriber connect", rc);
  } else if ((rc = mosquitto_loop_start(sub)) != MOSQ_ERR_SUCCESS) {
    fail("subscriber loop", rc);
  } else if ((rc = mosquitto_connect(pub, o.host.c_str(), o.port, 60)) != MOSQ_ERR_SUCCESS) {
    fail("publisher connect", rc);
  } else if ((rc = mosquitto_loop_start(pub)) != MOSQ_ERR_SUCCESS) {
    fail("publisher loop", rc);
  } else {
    for (int i = 0; i < 500 && !sub_state.subscribed.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    bool connected = false;
    {
      std::unique_lock<std::mutex> lock(pub_state.mu);
      connected =
          pub_state.cv.wait_for(lock, std::chrono::seconds(5), [&] { return pub_state.connected; });
    }
    if (!sub_state.subscribed.load() || !connected) {
      std::fprintf(stderr, "peer_bench: Mosquitto: not connected or not subscribed\n");
    } else {
      auto start = SteadyClock::now();
      result.full = MqttPublishRun(pub, pub_state, o.messages, o.window);
      result.sync = MqttPublishRun(pub, pub_state, o.sync_messages, 1);
      for (int i = 0; i < 300 && sub_state.count.load() < o.messages + o.sync_messages; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      result.consumed = sub_state.count.load();
      if (sub_state.wanted_at_ns.load() != 0) {
        result.consume_seconds =
            std::chrono::duration<double>(
                SteadyClock::time_point(SteadyClock::duration(sub_state.wanted_at_ns.load())) -
                start)
                .count();
      }
      result.ok = result.full.confirmed == o.messages && result.sync.confirmed == o.sync_messages &&
                  sub_state.bad.load() == 0;
    }
  }
  (void)mosquitto_disconnect(pub);
  (void)mosquitto_disconnect(sub);
  (void)mosquitto_loop_stop(pub, false);
  (void)mosquitto_loop_stop(sub, false);
  mosquitto_destroy(pub);
  mosquitto_destroy(sub);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (argc < 2) {
    std::fprintf(stderr, "usage: peer_bench rabbitmq|mosquitto --port P [options]\n");
    return 2;
  }
  o.target = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--port") {
      o.port = std::stoi(v);
    } else if (k == "--host") {
      o.host = v;
    } else if (k == "--messages") {
      o.messages = std::stoul(v);
    } else if (k == "--window") {
      o.window = std::max<size_t>(1, std::stoul(v));
    } else if (k == "--sync-messages") {
      o.sync_messages = std::stoul(v);
    } else if (k == "--queue-type") {
      o.queue_type = v;
    } else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (o.port <= 0) {
    std::fprintf(stderr, "peer_bench: --port is required\n");
    return 2;
  }
  bool all_ok = true;
  if (o.target == "rabbitmq") {
    std::vector<std::string> types;
    if (o.queue_type == "both" || o.queue_type == "quorum") types.push_back("quorum");
    if (o.queue_type == "both" || o.queue_type == "classic") types.push_back("classic");
    std::printf(
        "RabbitMQ: durable queue (%s), persistent 1 KiB messages, publisher confirms, "
        "consumer with manual acks (prefetch %d):\n",
        o.queue_type.c_str(), kConsumerPrefetch);
    for (const auto& t : types) {
      TargetResult r = RunRabbitmq(o, t);
      Print(r, o);
      all_ok = all_ok && r.ok;
    }
  } else if (o.target == "mosquitto") {
    mosquitto_lib_init();
    std::printf(
        "Mosquitto: QoS 1, 1 KiB, persistent subscriber session; broker persistence is a "
        "periodic snapshot (autosave_interval), so a PUBACK is not a disk write:\n");
    TargetResult r = RunMosquitto(o);
    Print(r, o);
    all_ok = r.ok;
    mosquitto_lib_cleanup();
  } else {
    std::fprintf(stderr, "peer_bench: unknown target %s\n", o.target.c_str());
    return 2;
  }
  return all_ok ? 0 : 1;
}
