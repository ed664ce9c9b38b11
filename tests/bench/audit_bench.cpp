// Audit-log verification benchmark: what an auditor pays to check a whole broker log.
//
//   audit_bench [--entries N]   (default 1,000,000)
//
// Builds N serialized AuditEntry records (realistic fields, about 230 bytes each) in one
// buffer, as an auditor reads them from the LMDB map, then measures in the same run:
//   (a) raw libcrypto SHA-256 over exactly the inputs a full verification hashes: every
//       leaf (0x00 || entry) and every interior node (0x01 || left || right), the same
//       N + N - 1 calls, with a hand-written loop straight on EVP;
//   (b) full verification through refbus: leaf hashes, the tree (a MerkleFrontier, as a
//       streaming auditor keeps), the root compared with a signed checkpoint, and the
//       checkpoint's signature (OpenCheckpoint); and the same with a MemoryTree, which
//       an auditor keeps to answer proof requests;
// then the cost of one inclusion proof (average over 10,000) and one consistency proof.
// Each timing is the best of three runs. Exits non-zero if any check disagrees.
#include <openssl/evp.h>
#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "keys/checkpoint.h"
#include "keys/identity.h"
#include "keys/merkle.h"
#include "keys/secret.h"
#include "schema/codec.h"

using namespace refbus;  // NOLINT(google-build-using-namespace)
using SteadyClock = std::chrono::steady_clock;

namespace {

struct Log {
  Bytes data;                   // the entries, back to back
  std::vector<size_t> offsets;  // entry i is data[offsets[i], offsets[i + 1])
  size_t size() const { return offsets.size() - 1; }
  ByteView entry(size_t i) const {
    return ByteView(data).subspan(offsets[i], offsets[i + 1] - offsets[i]);
  }
};

Log MakeLog(size_t n) {
  std::mt19937_64 rng(42);
  auto random_bytes = [&](size_t len) {
    Bytes b(len);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    return b;
  };
  const char* agencies[] = {"incheon-dsc", "seoul-police-03", "busan-youth-center",
                            "gyeonggi-child-protection", "daegu-school-office-12"};
  Log log;
  log.offsets.push_back(0);
  for (size_t i = 0; i < n; ++i) {
    schema::AuditEntry e;
    e.index = i;
    e.time_ms = 1760000000000 + i * 37;
    e.event = static_cast<schema::AuditEvent>(1 + i % 5);
    e.broker_id = "seoul-broker-01";
    e.actor = agencies[i % 5];
    e.message_id = random_bytes(16);
    e.sender_id = agencies[(i + 1) % 5];
    e.recipients = {agencies[(i + 2) % 5]};
    if (i % 3 == 0) e.recipients.push_back(agencies[(i + 3) % 5]);
    e.case_ref = "CR-" + HexEncode(random_bytes(12));
    e.consent_grant_id = random_bytes(16);
    e.kind = schema::MessageKind::kReferral;
    e.purpose = schema::Purpose::kCounseling;
    e.envelope_sha256 = random_bytes(32);
    e.directory_serial = 1042;
    e.envelope_bytes = 1024 + rng() % 60000;
    if (i % 7 == 0) e.detail = "delivered after 2 retries";
    Bytes b = schema::EncodeAuditEntry(e);
    log.data.insert(log.data.end(), b.begin(), b.end());
    log.offsets.push_back(log.data.size());
  }
  return log;
}

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

template <typename Fn>
double BestOf3(Fn&& fn) {
  double best = 1e300;
  for (int i = 0; i < 3; ++i) {
    auto t0 = SteadyClock::now();
    fn();
    best = std::min(best, Seconds(SteadyClock::now() - t0));
  }
  return best;
}

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "audit_bench: %s\n", what.c_str());
  std::exit(1);
}

// (a): the same hash calls with libcrypto and nothing else. Returns the root.
keys::Hash RawRoot(const Log& log) {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (md == nullptr || ctx == nullptr) Fail("libcrypto has no SHA-256");
  const uint8_t leaf_prefix = 0x00;
  std::vector<keys::Hash> stack;
  uint8_t node[65];
  node[0] = 0x01;
  for (size_t i = 0; i < log.size(); ++i) {
    ByteView e = log.entry(i);
    keys::Hash h;
    EVP_DigestInit_ex2(ctx, md, nullptr);
    EVP_DigestUpdate(ctx, &leaf_prefix, 1);
    EVP_DigestUpdate(ctx, e.data(), e.size());
    EVP_DigestFinal_ex(ctx, h.data(), nullptr);
    stack.push_back(h);
    for (size_t s = i; (s & 1) != 0; s >>= 1) {
      std::memcpy(node + 1, stack[stack.size() - 2].data(), 32);
      std::memcpy(node + 33, stack.back().data(), 32);
      stack.pop_back();
      EVP_DigestInit_ex2(ctx, md, nullptr);
      EVP_DigestUpdate(ctx, node, sizeof(node));
      EVP_DigestFinal_ex(ctx, stack.back().data(), nullptr);
    }
  }
  while (stack.size() > 1) {
    std::memcpy(node + 1, stack[stack.size() - 2].data(), 32);
    std::memcpy(node + 33, stack.back().data(), 32);
    stack.pop_back();
    EVP_DigestInit_ex2(ctx, md, nullptr);
    EVP_DigestUpdate(ctx, node, sizeof(node));
    EVP_DigestFinal_ex(ctx, stack.back().data(), nullptr);
  }
  EVP_MD_CTX_free(ctx);
  return stack.front();
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model = "unknown", sha = "no";
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0 && model == "unknown") {
      model = line.substr(line.find(':') + 2);
    }
    if (line.rfind("flags", 0) == 0 && line.find(" sha_ni") != std::string::npos) sha = "yes";
  }
  return model + " (SHA extensions: " + sha + ")";
}

}  // namespace

int main(int argc, char** argv) {
  size_t n = 1000000;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--entries") == 0 && i + 1 < argc) {
      n = std::strtoull(argv[++i], nullptr, 10);
    } else {
      std::fprintf(stderr, "usage: audit_bench [--entries N]\n");
      return 2;
    }
  }
  if (n < 2) Fail("need at least 2 entries");
  if (!keys::InitSodium().ok()) Fail("libsodium failed to initialize");

  std::printf("CPU: %s; %u hardware threads; one thread used\n", CpuModel().c_str(),
              std::thread::hardware_concurrency());
  const Log log = MakeLog(n);
  const size_t hash_calls = 2 * n - 1;
  const double hashed_bytes = static_cast<double>(log.data.size() + n + 65 * (n - 1));
  std::printf("log: %zu entries, %.1f MB, %.0f bytes per entry on average\n", n,
              static_cast<double>(log.data.size()) / 1e6,
              static_cast<double>(log.data.size()) / static_cast<double>(n));
  std::printf("per verification: %zu SHA-256 calls over %.1f MB\n", hash_calls, hashed_bytes / 1e6);

  // The broker's side, untimed: its tree and signed checkpoint.
  auto log_id = keys::Identity::Generate("seoul-broker-01", schema::PartyKind::kBroker, 0, 0);
  if (!log_id.ok()) Fail(log_id.status().ToString());
  keys::MerkleFrontier broker;
  for (size_t i = 0; i < n; ++i) broker.Append(keys::LeafHash(log.entry(i)));
  keys::Checkpoint cp{"refbus.example/seoul-broker-01", n, broker.Root(), {}};
  auto note = keys::SignCheckpoint(cp, *log_id);
  if (!note.ok()) Fail(note.status().ToString());
  auto log_key = keys::NoteVerifier::Create(cp.origin, keys::NoteKeyType::kEd25519,
                                            log_id->signing_public_key());
  if (!log_key.ok()) Fail(log_key.status().ToString());

  // (a)
  keys::Hash raw_root{};
  const double t_raw = BestOf3([&] { raw_root = RawRoot(log); });
  if (raw_root != cp.root) Fail("raw libcrypto root differs from the broker's root");

  // (b) Streaming: frontier.
  auto verify_log = [&](auto& tree) {
    for (size_t i = 0; i < n; ++i) tree.Append(keys::LeafHash(log.entry(i)));
    auto v = keys::OpenCheckpoint(*note, cp.origin, *log_key);
    if (!v.ok()) Fail(v.status().ToString());
    if (v->checkpoint.size != tree.Size() || v->checkpoint.root != tree.Root()) {
      Fail("recomputed tree does not match the signed checkpoint");
    }
  };
  const double t_full = BestOf3([&] {
    keys::MerkleFrontier f;
    verify_log(f);
  });
  // (b') With the whole tree kept for proofs.
  keys::MemoryTree tree;
  const double t_full_mem = BestOf3([&] {
    tree = keys::MemoryTree();
    tree.Reserve(n);
    verify_log(tree);
  });
  const double t_sig = BestOf3([&] {
    if (!keys::OpenCheckpoint(*note, cp.origin, *log_key).ok()) Fail("checkpoint");
  });

  auto line = [&](const char* what, double t) {
    std::printf("%-58s %8.3f s  %7.1f MB/s  %6.1f%% of raw speed\n", what, t,
                hashed_bytes / 1e6 / t, 100.0 * t_raw / t);
  };
  std::printf("\n");
  line("(a)  raw libcrypto SHA-256, same inputs", t_raw);
  line("(b)  full verification, MerkleFrontier + checkpoint", t_full);
  line("(b') full verification, MemoryTree (keeps all levels)", t_full_mem);
  std::printf("     of which checkpoint parse + Ed25519 verify: %.1f us\n", t_sig * 1e6);
  std::printf("ratio (b)/(a) speed: %.2f   (b')/(a): %.2f\n", t_raw / t_full, t_raw / t_full_mem);

  // Inclusion proofs: 10,000 random leaves of the full tree.
  const size_t kProofs = 10000;
  std::mt19937_64 rng(7);
  std::vector<uint64_t> indexes(kProofs);
  for (auto& i : indexes) i = rng() % n;
  std::vector<std::vector<keys::Hash>> proofs(kProofs);
  const double t_gen = BestOf3([&] {
    for (size_t k = 0; k < kProofs; ++k) {
      auto p = keys::InclusionProof(tree, indexes[k], n);
      if (!p.ok()) Fail(p.status().ToString());
      proofs[k] = std::move(*p);
    }
  });
  const keys::Hash root = cp.root;
  const double t_incl = BestOf3([&] {
    for (size_t k = 0; k < kProofs; ++k) {
      if (!keys::VerifyInclusion(tree.LeafHashAt(indexes[k]), indexes[k], n, proofs[k], root)
               .ok()) {
        Fail("an inclusion proof did not verify");
      }
    }
  });
  const double t_incl_leaf = BestOf3([&] {
    for (size_t k = 0; k < kProofs; ++k) {
      if (!keys::VerifyInclusion(keys::LeafHash(log.entry(indexes[k])), indexes[k], n, proofs[k],
                                 root)
               .ok()) {
        Fail("an inclusion proof did not verify");
      }
    }
  });
  std::printf(
      "\ninclusion proof (%zu hashes), average of %zu: verify %.2f us"
      " (%.2f us with the leaf hash), generate %.2f us\n",
      proofs[0].size(), kProofs, t_incl / kProofs * 1e6, t_incl_leaf / kProofs * 1e6,
      t_gen / kProofs * 1e6);

  // Consistency proofs: 1,000 random older sizes to the full tree.
  const size_t kCons = 1000;
  std::vector<uint64_t> olds(kCons);
  std::vector<keys::Hash> old_roots(kCons);
  std::vector<std::vector<keys::Hash>> cproofs(kCons);
  for (size_t k = 0; k < kCons; ++k) {
    olds[k] = 1 + rng() % (n - 1);
    auto r = keys::RootAt(tree, olds[k]);
    if (!r.ok()) Fail(r.status().ToString());
    old_roots[k] = *r;
  }
  const double t_cgen = BestOf3([&] {
    for (size_t k = 0; k < kCons; ++k) {
      auto p = keys::ConsistencyProof(tree, olds[k], n);
      if (!p.ok()) Fail(p.status().ToString());
      cproofs[k] = std::move(*p);
    }
  });
  const double t_cons = BestOf3([&] {
    for (size_t k = 0; k < kCons; ++k) {
      if (!keys::VerifyConsistency(olds[k], n, old_roots[k], root, cproofs[k]).ok()) {
        Fail("a consistency proof did not verify");
      }
    }
  });
  size_t clen = 0;
  for (const auto& p : cproofs) clen += p.size();
  std::printf(
      "consistency proof (%.1f hashes on average), average of %zu: verify %.2f us,"
      " generate %.2f us\n",
      static_cast<double>(clen) / kCons, kCons, t_cons / kCons * 1e6, t_cgen / kCons * 1e6);
  return 0;
}
