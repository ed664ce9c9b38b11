// The broker's store of published prekeys (PROTOCOL.md "Prekey publication"): the newest per
// owner (by not_before) is kept, audited as PREKEY_PUBLISHED and queued for the peer brokers
// in the same commit; an older or repeated one changes nothing; one relayed by a peer is not
// queued again.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "broker/store.h"
#include "schema/codec.h"
#include "tests/unit/test_util.h"

namespace refbus::broker {
// Named after the file, not anonymous: its helpers share names with other test files
// compiled in the same unity batch (tests/CMakeLists.txt).
namespace prekey_store_test {

using test::Must;

constexpr UnixMillis kT0 = 1'800'000'000'000;

// A SignedPrekey's bytes (the store does not check signatures: the loop did).
Bytes PrekeyBytes(const std::string& owner, UnixMillis not_before, uint8_t fill) {
  schema::SignedPrekey sp;
  sp.prekey = {owner, Bytes(schema::kPublicKeyBytes, fill), not_before, not_before + kMillisPerDay};
  sp.prekey_bytes = schema::EncodePrekey(sp.prekey);
  sp.signature = Bytes(schema::kSignatureBytes, fill);
  return schema::EncodeSignedPrekey(sp);
}

PrekeyPublication Publication(const std::string& owner, UnixMillis not_before, uint8_t fill,
                              bool via_peer) {
  PrekeyPublication p;
  p.signed_prekey = PrekeyBytes(owner, not_before, fill);
  p.owner = owner;
  p.not_before_ms = not_before;
  p.detail = "prekey test";
  p.actor = via_peer ? "busan-broker" : owner;
  p.via_peer = via_peer;
  return p;
}

TEST(PrekeyStoreTest, NewestPerOwnerIsStoredAuditedAndQueuedForPeers) {
  test::TempDir dir;
  StoreOptions o;
  o.dir = dir.path();
  o.broker_id = "seoul-broker";
  o.map_size_bytes = size_t{64} << 20;
  auto store = Must(Store::Open(o));
  const std::vector<std::string> peers = {"busan-broker", "central-broker"};
  auto commit = [&](std::vector<PrekeyPublication> ps) {
    Batch b;
    b.prekeys = std::move(ps);
    b.revocation_peers = peers;
    return Must(store->Commit(b, kT0)).prekeys_stored;
  };
  const auto first = Publication("seoul-wee-01", kT0, 1, false);
  const auto newer = Publication("seoul-wee-01", kT0 + 1000, 2, false);
  const auto older = Publication("seoul-wee-01", kT0 - 1000, 3, false);
  const auto relayed = Publication("busan-police", kT0, 4, true);
  EXPECT_EQ(commit({first, relayed}), (std::vector<bool>{true, true}));
  EXPECT_EQ(commit({newer, older, first}), (std::vector<bool>{true, false, false}));
  // Served: the newest of each owner, in owner order.
  EXPECT_EQ(Must(store->PublishedPrekeys()),
            (std::vector<Bytes>{relayed.signed_prekey, newer.signed_prekey}));
  // Queued for each peer: the two stored from the owner, not the relayed one.
  for (const auto& peer : peers) {
    auto q = Must(store->ReadControlQueue(peer, 0, 10));
    ASSERT_EQ(q.size(), 2u) << peer;
    EXPECT_EQ(q[0].signed_prekey, first.signed_prekey);
    EXPECT_EQ(q[1].signed_prekey, newer.signed_prekey);
    EXPECT_TRUE(q[0].signed_revocation.empty());
  }
  // Audited once per stored prekey, with the owner and the hash of the bytes.
  size_t published = 0;
  for (uint64_t i = 0; i < Must(store->AuditSize()); ++i) {
    auto e = Must(schema::DecodeAuditEntry(Must(store->AuditEntryBytes(i))));
    if (e.event != schema::AuditEvent::kPrekeyPublished) continue;
    ++published;
    EXPECT_FALSE(e.sender_id.empty());
    EXPECT_EQ(e.statement_sha256.size(), 32u);
  }
  EXPECT_EQ(published, 3u);
}

}  // namespace prekey_store_test
}  // namespace refbus::broker
