// Cryptographic floor: what the per-message cryptography alone costs on this machine, and
// so the highest rate its cores could reach if they did nothing else.
//
//   crypto_floor_bench [--seconds S]
//
// Measures, with the project's own keys/ API on 1 KiB contents: SealEnvelope to 1 and to 3
// recipients (Ed25519 signature, ephemeral X25519 and one key agreement per recipient,
// XChaCha20-Poly1305, encoding), VerifyEnvelope (what a broker runs: decode, times,
// directory look-up, signature), OpenEnvelope (what a recipient runs: verify, unwrap,
// commitment, decrypt); and the raw libsodium primitives under them. Each figure is the
// median of 7 timed batches of about S/7 seconds (default S = 0.7) after a warm-up, so a
// burst of other work on a shared machine moves it less than a mean would.
//
// The floor of one message from 1 sender to 1 recipient is seal + broker verify + open;
// for 3 recipients, seal + verify + 3 opens. It is printed as µs per message and as
// messages/s for one core and for every core (one core's rate times the number of cores,
// and also measured: that many threads sealing, verifying and opening at once).
//
// Besides the text, prints one machine-readable line: RESULT crypto key=value ...
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "keys/envelope.h"
#include "keys/secret.h"
#include "tests/integration/harness.h"

using namespace refbus;  // NOLINT(google-build-using-namespace)
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr size_t kContentBytes = 1024;
constexpr int kBatches = 7;

// Median over batches of the µs one call of op takes.
double MicrosPerOp(double seconds, const std::function<void()>& op) {
  // Warm-up, and a first estimate of how many calls fill a batch.
  size_t calls = 0;
  auto start = SteadyClock::now();
  auto warm = std::chrono::duration<double>(seconds / kBatches / 2);
  while (SteadyClock::now() - start < warm || calls < 3) {
    op();
    ++calls;
  }
  double per_call = std::chrono::duration<double>(SteadyClock::now() - start).count() /
                    static_cast<double>(calls);
  auto per_batch = static_cast<size_t>(seconds / kBatches / per_call) + 1;
  std::vector<double> us;
  for (int b = 0; b < kBatches; ++b) {
    auto t0 = SteadyClock::now();
    for (size_t i = 0; i < per_batch; ++i) op();
    us.push_back(std::chrono::duration<double, std::micro>(SteadyClock::now() - t0).count() /
                 static_cast<double>(per_batch));
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

struct Row {
  std::string key;   // RESULT key
  std::string what;  // for people
  double us = 0;
};

void Fail(const char* what, const Status& s) {
  std::fprintf(stderr, "crypto_floor_bench: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 0.7;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--seconds") {
      seconds = std::stod(argv[i + 1]);
    } else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (auto s = keys::InitSodium(); !s.ok()) Fail("sodium", s);

  std::string root = testing::MakeTempDir("refbus-crypto-bench");
  testing::Federation fed;
  if (!fed.Create(root, {"bench-broker"},
                  {{"bench-sender", schema::AgencyType::kPoliceUnit, "bench-broker"},
                   {"bench-r1", schema::AgencyType::kDeletionCenter, "bench-broker"},
                   {"bench-r2", schema::AgencyType::kCounselingCenter, "bench-broker"},
                   {"bench-r3", schema::AgencyType::kSupportCenter, "bench-broker"}})) {
    return 1;
  }
  const schema::Directory& dir = fed.directory();
  keys::Identity sender = fed.LoadIdentity("bench-sender");
  keys::Identity r1 = fed.LoadIdentity("bench-r1");
  keys::Identity r3 = fed.LoadIdentity("bench-r3");
  UnixMillis now = SystemClock::Get().NowMillis();

  auto request_to = [&](const std::vector<std::string>& ids) {
    keys::SealRequest req;
    req.kind = schema::MessageKind::kOpaque;
    req.case_ref = "bench-case-0001";
    req.now = now;
    req.lifetime_ms = 24 * kMillisPerHour;
    for (const auto& id : ids) {
      auto p = keys::CurrentPrekey(dir, id, now);
      if (!p.ok()) Fail("prekey", p.status());
      req.recipients.push_back(*p);
    }
    return req;
  };
  keys::SealRequest to1 = request_to({"bench-r1"});
  keys::SealRequest to3 = request_to({"bench-r1", "bench-r2", "bench-r3"});
  Bytes content = keys::RandomBytes(kContentBytes);
  auto env1 = keys::SealEnvelope(sender, to1, content);
  auto env3 = keys::SealEnvelope(sender, to3, content);
  if (!env1.ok()) Fail("seal", env1.status());
  if (!env3.ok()) Fail("seal", env3.status());
  // Every call below is checked, so a failing call cannot pass for a fast one.
  auto must = [](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "crypto_floor_bench: %s failed\n", what);
      std::exit(1);
    }
  };
  must(keys::OpenEnvelope(r1, *env1, dir, now).ok(), "open");
  must(keys::OpenEnvelope(r3, *env3, dir, now).ok(), "open of 3");

  std::vector<Row> rows;
  auto measure = [&](std::string key, std::string what, const std::function<void()>& op) {
    rows.push_back({std::move(key), std::move(what), MicrosPerOp(seconds, op)});
    std::printf("  %-58s %9.2f us\n", rows.back().what.c_str(), rows.back().us);
    std::fflush(stdout);
    return rows.back().us;
  };

  std::printf("refbus keys/ API, %zu-byte content (envelope %zu bytes to 1, %zu to 3):\n",
              kContentBytes, env1->size(), env3->size());
  double seal1 = measure("seal1_us", "SealEnvelope, 1 recipient",
                         [&] { must(keys::SealEnvelope(sender, to1, content).ok(), "seal"); });
  double seal3 = measure("seal3_us", "SealEnvelope, 3 recipients",
                         [&] { must(keys::SealEnvelope(sender, to3, content).ok(), "seal"); });
  double verify1 = measure("verify1_us", "VerifyEnvelope (broker), 1 recipient",
                           [&] { must(keys::VerifyEnvelope(*env1, dir, now).ok(), "verify"); });
  double verify3 = measure("verify3_us", "VerifyEnvelope (broker), 3 recipients",
                           [&] { must(keys::VerifyEnvelope(*env3, dir, now).ok(), "verify"); });
  double open1 = measure("open1_us", "OpenEnvelope (recipient, incl. verify), 1 recipient",
                         [&] { must(keys::OpenEnvelope(r1, *env1, dir, now).ok(), "open"); });
  double open3 = measure("open3_us", "OpenEnvelope by the 3rd of 3 recipients",
                         [&] { must(keys::OpenEnvelope(r3, *env3, dir, now).ok(), "open"); });

  std::printf("libsodium %s primitives:\n", sodium_version_string());
  {
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(pk, sk);
    std::vector<unsigned char> msg(env1->size());
    randombytes_buf(msg.data(), msg.size());
    unsigned char sig[crypto_sign_BYTES];
    measure("sign_us", "crypto_sign_detached (Ed25519), envelope-sized message",
            [&] { crypto_sign_detached(sig, nullptr, msg.data(), msg.size(), sk); });
    measure("sign_verify_us", "crypto_sign_verify_detached", [&] {
      must(crypto_sign_verify_detached(sig, msg.data(), msg.size(), pk) == 0, "verify");
    });
    sodium_memzero(sk, sizeof(sk));
  }
  {
    unsigned char a_pk[crypto_box_PUBLICKEYBYTES], a_sk[crypto_box_SECRETKEYBYTES];
    unsigned char b_pk[crypto_box_PUBLICKEYBYTES], b_sk[crypto_box_SECRETKEYBYTES];
    crypto_box_keypair(a_pk, a_sk);
    crypto_box_keypair(b_pk, b_sk);
    unsigned char shared[crypto_scalarmult_BYTES], k[crypto_box_BEFORENMBYTES];
    measure("box_keypair_us", "crypto_box_keypair (ephemeral X25519 key)",
            [&] { crypto_box_keypair(b_pk, b_sk); });
    measure("scalarmult_us", "crypto_scalarmult (X25519)",
            [&] { must(crypto_scalarmult(shared, a_sk, b_pk) == 0, "scalarmult"); });
    measure("beforenm_us", "crypto_box_beforenm (X25519 + HSalsa20)",
            [&] { must(crypto_box_beforenm(k, b_pk, a_sk) == 0, "beforenm"); });
    sodium_memzero(a_sk, sizeof(a_sk));
    sodium_memzero(b_sk, sizeof(b_sk));
    sodium_memzero(shared, sizeof(shared));
    sodium_memzero(k, sizeof(k));
  }
  {
    unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
    unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
    crypto_aead_xchacha20poly1305_ietf_keygen(key);
    randombytes_buf(nonce, sizeof(nonce));
    std::vector<unsigned char> plain(kContentBytes), ad(200);
    randombytes_buf(plain.data(), plain.size());
    std::vector<unsigned char> sealed(kContentBytes + crypto_aead_xchacha20poly1305_ietf_ABYTES);
    unsigned long long sealed_len = 0, plain_len = 0;
    measure("aead_seal_us", "XChaCha20-Poly1305 encrypt, 1 KiB (200 B associated data)", [&] {
      crypto_aead_xchacha20poly1305_ietf_encrypt(sealed.data(), &sealed_len, plain.data(),
                                                 plain.size(), ad.data(), ad.size(), nullptr, nonce,
                                                 key);
    });
    measure("aead_open_us", "XChaCha20-Poly1305 decrypt, 1 KiB", [&] {
      must(crypto_aead_xchacha20poly1305_ietf_decrypt(plain.data(), &plain_len, nullptr,
                                                      sealed.data(), sealed_len, ad.data(),
                                                      ad.size(), nonce, key) == 0,
           "decrypt");
    });
    sodium_memzero(key, sizeof(key));
  }

  // The floor: every message is sealed once, verified by the broker once, opened by each
  // recipient.
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  double floor1_us = seal1 + verify1 + open1;
  double floor3_us = seal3 + verify3 + 3 * open3;
  double floor1_rate = 1e6 / floor1_us;
  double floor3_rate = 1e6 / floor3_us;
  double verify_rate = 1e6 / verify1;

  // The same work on every core at once, measured: hyperthreads, turbo limits and other
  // load on the machine show here and not in one core's rate times the number of cores.
  std::atomic<bool> stop{false};
  std::atomic<size_t> done{0};
  std::vector<std::thread> threads;
  auto run_seconds = std::max(0.5, seconds);
  for (unsigned t = 0; t < cores; ++t) {
    threads.emplace_back([&] {
      size_t mine = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        auto e = keys::SealEnvelope(sender, to1, content);
        if (!e.ok() || !keys::VerifyEnvelope(*e, dir, now).ok() ||
            !keys::OpenEnvelope(r1, *e, dir, now).ok()) {
          std::fprintf(stderr, "crypto_floor_bench: parallel run failed\n");
          std::exit(1);
        }
        ++mine;
      }
      done += mine;
    });
  }
  auto t0 = SteadyClock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(run_seconds));
  stop = true;
  for (auto& t : threads) t.join();
  double parallel_rate = static_cast<double>(done.load()) /
                         std::chrono::duration<double>(SteadyClock::now() - t0).count();

  std::printf("per-message floor (seal + broker verify + open, 1 recipient): %.1f us\n", floor1_us);
  std::printf(
      "  = %.0f msg/s on 1 core, %.0f msg/s on %u cores (x%u); measured on %u threads: "
      "%.0f msg/s\n",
      floor1_rate, floor1_rate * cores, cores, cores, cores, parallel_rate);
  std::printf(
      "per-message floor, 3 recipients (seal + verify + 3 opens): %.1f us = %.0f msg/s "
      "on 1 core, %.0f on %u cores\n",
      floor3_us, floor3_rate, floor3_rate * cores, cores);
  std::printf("broker's share (verify only): %.0f envelopes/s on 1 core, %.0f on %u cores\n",
              verify_rate, verify_rate * cores, cores);

  std::printf("RESULT crypto cores=%u", cores);
  for (const auto& r : rows) std::printf(" %s=%.2f", r.key.c_str(), r.us);
  std::printf(
      " floor1_us=%.2f floor1_rate_1core=%.0f floor1_rate_ncores=%.0f "
      "floor1_rate_measured=%.0f floor3_us=%.2f floor3_rate_1core=%.0f floor3_rate_ncores=%.0f "
      "verify_rate_1core=%.0f verify_rate_ncores=%.0f\n",
      floor1_us, floor1_rate, floor1_rate * cores, parallel_rate, floor3_us, floor3_rate,
      floor3_rate * cores, verify_rate, verify_rate * cores);
  testing::RemoveTree(root);
  return 0;
}
