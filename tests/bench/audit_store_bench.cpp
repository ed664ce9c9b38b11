// The broker store's audit log at scale: appending N audit entries through Store::Commit
// (the Merkle tree kept in the same transactions), then Store::Open of the N-entry store
// (start-up reads the stored frontier; no replay), root, proofs, a checkpoint, and the
// one-time upgrade of a format 1 store (the tree rebuilt from the entries).
//
//   audit_store_bench [--entries N] [--batch B] [--dir DIR]
//
// Prints times and sizes; asserts nothing (not part of the suite). The store goes into a
// fresh folder under /tmp (or DIR), removed at the end.
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "broker/audit_log.h"
#include "broker/store.h"
#include "core/lmdb.h"
#include "keys/checkpoint.h"
#include "keys/crypto.h"
#include "keys/identity.h"
#include "keys/merkle.h"

using namespace refbus;  // NOLINT(google-build-using-namespace)
using SteadyClock = std::chrono::steady_clock;

namespace {

double MsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t).count();
}

template <typename T>
T Must(Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, r.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}
void Must(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

double FileMiB(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<double>(st.st_blocks) * 512 / (1 << 20);
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t entries = 1000000;
  size_t batch = 1000;
  std::string parent = "/tmp";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--entries") entries = std::strtoull(argv[i + 1], nullptr, 10);
    if (a == "--batch") batch = std::strtoull(argv[i + 1], nullptr, 10);
    if (a == "--dir") parent = argv[i + 1];
  }
  Must(keys::InitSodium(), "sodium");
  std::string dir = parent + "/refbus-audit-store-bench-" + std::to_string(::getpid());
  broker::StoreOptions o;
  o.dir = dir;
  o.broker_id = "seoul-broker";
  o.map_size_bytes = size_t{8} << 30;

  // ---- Append.
  auto store = Must(broker::Store::Open(o), "open");
  UnixMillis now = 1'800'000'000'000;
  auto t = SteadyClock::now();
  uint64_t commits = 0;
  for (uint64_t done = 0; done < entries;) {
    broker::Batch b;
    for (size_t i = 0; i < batch && done < entries; ++i, ++done) {
      schema::AuditEntry e;
      e.event = schema::AuditEvent::kEnvelopeDelivered;
      e.actor = "seoul-counsel";
      e.message_id = Bytes(16, static_cast<uint8_t>(done));
      e.recipients = {"seoul-counsel"};
      e.envelope_sha256 = Bytes(32, static_cast<uint8_t>(done >> 8));
      e.detail = "bench entry " + std::to_string(done);
      b.events.push_back(std::move(e));
    }
    Must(store->Commit(b, ++now).status(), "commit");
    ++commits;
  }
  double append_ms = MsSince(t);
  std::printf(
      "appended %llu audit entries in %llu commits of %zu: %.0f ms (%.0f entries/s, %.2f "
      "ms/commit)\n",
      static_cast<unsigned long long>(entries), static_cast<unsigned long long>(commits), batch,
      append_ms, static_cast<double>(entries) / append_ms * 1000,
      append_ms / static_cast<double>(commits));
  std::printf("store file: %.1f MiB (%.0f bytes per entry, entries and tree together)\n",
              FileMiB(dir + "/data.mdb"),
              FileMiB(dir + "/data.mdb") * (1 << 20) / static_cast<double>(entries));
  for (const char* name : {"audit", "audit_tree"}) {
    MDB_dbi dbi = Must(store->env().OpenDb(name), "dbi");
    auto txn = Must(store->env().BeginRead(), "txn");
    MDB_stat st{};
    if (mdb_stat(txn.raw(), dbi, &st) != MDB_SUCCESS) return 1;
    double bytes =
        static_cast<double>(st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages) *
        st.ms_psize;
    std::printf("  db %-10s %9zu records, %7.1f MiB, %5.0f bytes per audit entry\n", name,
                st.ms_entries, bytes / (1 << 20), bytes / static_cast<double>(entries));
  }
  keys::Hash root = Must(store->AuditRoot(), "root");
  store.reset();

  // ---- Start-up.
  for (int run = 0; run < 3; ++run) {
    t = SteadyClock::now();
    store = Must(broker::Store::Open(o), "reopen");
    double open_ms = MsSince(t);
    t = SteadyClock::now();
    keys::Hash r = Must(store->AuditRoot(), "root");
    double root_ms = MsSince(t);
    std::printf("Store::Open of %llu entries: %.2f ms (then AuditRoot %.3f ms, %s)\n",
                static_cast<unsigned long long>(entries), open_ms, root_ms,
                r == root ? "same root" : "ROOT DIFFERS");
    store.reset();
  }
  store = Must(broker::Store::Open(o), "reopen");

  // ---- Proofs and a checkpoint.
  const uint64_t n = entries;
  t = SteadyClock::now();
  const int kProofs = 1000;
  for (int i = 0; i < kProofs; ++i) {
    uint64_t index = (static_cast<uint64_t>(i) * 7919) % n;
    auto proof = Must(store->InclusionProof(index, n), "inclusion proof");
    if (i == 0) {
      Bytes entry = Must(store->AuditEntryBytes(index), "entry");
      Must(keys::VerifyInclusion(keys::LeafHash(entry), index, n, proof, root), "verify");
    }
  }
  std::printf("inclusion proof from the store: %.1f us each\n", MsSince(t) * 1000 / kProofs);
  t = SteadyClock::now();
  for (int i = 0; i < kProofs; ++i) {
    uint64_t old = 1 + (static_cast<uint64_t>(i) * 104729) % (n - 1);
    (void)Must(store->ConsistencyProof(old, n), "consistency proof");
  }
  std::printf("consistency proof from the store: %.1f us each\n", MsSince(t) * 1000 / kProofs);
  auto key =
      Must(keys::Identity::Generate("seoul-broker", schema::PartyKind::kBroker, 0, 0), "key");
  t = SteadyClock::now();
  auto c1 = Must(store->SignCheckpoint("refbus/bench/seoul-broker", key), "checkpoint");
  std::printf("first checkpoint (%llu entries): %.2f ms\n",
              static_cast<unsigned long long>(c1.stored.checkpoint.size), MsSince(t));
  broker::Batch b;
  b.events.resize(1);
  b.events[0].event = schema::AuditEvent::kAuditorQuery;
  Must(store->Commit(b, ++now).status(), "commit");
  t = SteadyClock::now();
  auto c2 = Must(store->SignCheckpoint("refbus/bench/seoul-broker", key), "checkpoint");
  std::printf("next checkpoint (consistency checked from %llu to %llu): %.2f ms\n",
              static_cast<unsigned long long>(c1.stored.checkpoint.size),
              static_cast<unsigned long long>(c2.stored.checkpoint.size), MsSince(t));
  store.reset();

  // ---- The one-time upgrade of a format 1 store.
  {
    lmdb::EnvOptions eo;
    eo.map_size_bytes = o.map_size_bytes;
    eo.max_dbs = 16;
    auto env = Must(lmdb::Env::Open(dir, eo), "raw open");
    MDB_dbi meta = Must(env->OpenDb("meta"), "meta");
    MDB_dbi tree = Must(env->OpenDb("audit_tree"), "tree");
    MDB_dbi cps = Must(env->OpenDb("checkpoints"), "checkpoints");
    auto txn = Must(env->BeginWrite(), "txn");
    Must(txn.Put(meta, AsBytes("format"), AsBytes("refbus-broker-store/1")), "format");
    Must(txn.Del(meta, AsBytes("audit_frontier")), "frontier");
    if (mdb_drop(txn.raw(), tree, 0) != MDB_SUCCESS || mdb_drop(txn.raw(), cps, 0) != MDB_SUCCESS) {
      std::fprintf(stderr, "mdb_drop failed\n");
      return 1;
    }
    Must(txn.Commit(), "commit");
  }
  t = SteadyClock::now();
  store = Must(broker::Store::Open(o), "upgrade");
  double upgrade_ms = MsSince(t);
  keys::Hash after = Must(store->AuditRoot(), "root");
  std::printf("upgrade of a format 1 store (%llu entries, tree rebuilt): %.0f ms (%s)\n",
              static_cast<unsigned long long>(n + 1), upgrade_ms,
              after == c2.stored.checkpoint.root ? "same root" : "ROOT DIFFERS");
  store.reset();
  t = SteadyClock::now();
  store = Must(broker::Store::Open(o), "reopen");
  std::printf("Store::Open after the upgrade: %.2f ms\n", MsSince(t));
  store.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
