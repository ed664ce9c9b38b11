// TransportStore: deduplication, order, persistence across reopen, damage detection, control
// items in the outbox, purged inbox records (tombstones).
#include "agent/transport_store.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/lmdb.h"
#include "keys/secret.h"
#include "tests/unit/test_util.h"

namespace refbus::agent {
namespace {

using refbus::test::HasCode;
using refbus::test::HasError;
using refbus::test::IsOk;
using refbus::test::Must;
using refbus::test::TempDir;

constexpr UnixMillis kNow = 1'790'000'000'000;

Bytes NewId() { return keys::RandomBytes(16); }
Bytes Envelope(size_t n = 300) { return keys::RandomBytes(n); }

std::unique_ptr<TransportStore> OpenStore(const TempDir& dir) {
  return Must(TransportStore::Open(dir.Join("data"), StoreOptions{size_t{16} << 20}));
}

// Flips one byte of the value stored under key in db, through core/lmdb.h, as a bad disk
// sector or a stray write would. REQUIRES: no TransportStore open on the directory.
void FlipStoredByte(const TempDir& dir, const char* db, ByteView key, size_t offset) {
  auto env = Must(lmdb::Env::Open(dir.Join("data"), lmdb::EnvOptions{size_t{16} << 20, 8, 126}));
  MDB_dbi dbi = Must(env->OpenDb(db));
  lmdb::Txn txn = Must(env->BeginWrite());
  Bytes value = [&] {
    ByteView v = Must(txn.Get(dbi, key));
    return Bytes(v.begin(), v.end());
  }();
  ASSERT_LT(offset, value.size());
  value[offset] ^= 0x01;
  Must(txn.Put(dbi, key, value));
  Must(txn.Commit());
}

TEST(TransportStoreTest, SecondDeliveryOfAnIdIsADuplicateAndKeepsTheFirstRecord) {
  TempDir dir;
  auto store = OpenStore(dir);
  Bytes id = NewId(), first = Envelope();

  auto a = store->StoreDeliveries(std::vector<Delivery>{{id, first}}, kNow);
  ASSERT_TRUE(IsOk(a));
  EXPECT_FALSE((*a)[0].duplicate);
  EXPECT_EQ((*a)[0].sequence, 1u);

  auto b = store->StoreDeliveries(std::vector<Delivery>{{id, first}}, kNow + 5);
  ASSERT_TRUE(IsOk(b));
  EXPECT_TRUE((*b)[0].duplicate);
  EXPECT_FALSE((*b)[0].id_reused);
  EXPECT_EQ((*b)[0].sequence, 1u);

  auto rec = store->GetInbox(id);
  ASSERT_TRUE(IsOk(rec));
  EXPECT_EQ(rec->envelope, first);  // a redelivery never overwrites
  EXPECT_EQ(rec->received_ms, kNow);
  EXPECT_EQ(rec->sha256, Sha256(first));

  // The application reads the message once.
  auto all = store->ReadInbox(0, 100);
  ASSERT_TRUE(IsOk(all));
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].message_id, id);

  auto c = store->Counters();
  ASSERT_TRUE(IsOk(c));
  EXPECT_EQ(c->inbox_messages, 1u);
  EXPECT_EQ(c->duplicate_deliveries, 1u);
  EXPECT_EQ(c->last_inbox_sequence, 1u);
}

// Issue 17 item 1: other bytes under a held id are not a redelivery: reported as
// id_reused (not a duplicate, not counted as one), never stored, the held record kept; also
// inside one batch and after a reopen.
TEST(TransportStoreTest, OtherBytesUnderAHeldIdAreIdReusedAndNeverReplaceIt) {
  TempDir dir;
  Bytes id = NewId(), held = Envelope(), other = Envelope();
  {
    auto store = OpenStore(dir);
    auto r = store->StoreDeliveries(std::vector<Delivery>{{id, held}, {id, other}}, kNow);
    ASSERT_TRUE(IsOk(r));
    EXPECT_FALSE((*r)[0].id_reused);
    EXPECT_TRUE((*r)[1].id_reused);
    EXPECT_FALSE((*r)[1].duplicate);
  }
  auto store = OpenStore(dir);
  auto again = store->StoreDeliveries(std::vector<Delivery>{{id, other}}, kNow + 5);
  ASSERT_TRUE(IsOk(again));
  EXPECT_TRUE((*again)[0].id_reused);
  EXPECT_FALSE((*again)[0].duplicate);
  auto rec = store->GetInbox(id);
  ASSERT_TRUE(IsOk(rec));
  EXPECT_EQ(rec->envelope, held);
  EXPECT_EQ(rec->sha256, Sha256(held));
  auto c = Must(store->Counters());
  EXPECT_EQ(c.inbox_messages, 1u);
  EXPECT_EQ(c.duplicate_deliveries, 0u);
  EXPECT_EQ(c.last_inbox_sequence, 1u);
}

TEST(TransportStoreTest, RepeatInsideOneBatchIsADuplicate) {
  TempDir dir;
  auto store = OpenStore(dir);
  Bytes a = NewId(), b = NewId();
  Bytes ea = Envelope(), eb = Envelope();
  auto r = store->StoreDeliveries(std::vector<Delivery>{{a, ea}, {b, eb}, {a, ea}}, kNow);
  ASSERT_TRUE(IsOk(r));
  ASSERT_EQ(r->size(), 3u);
  EXPECT_FALSE((*r)[0].duplicate);
  EXPECT_FALSE((*r)[1].duplicate);
  EXPECT_TRUE((*r)[2].duplicate);
  EXPECT_EQ((*r)[0].sequence, 1u);
  EXPECT_EQ((*r)[1].sequence, 2u);
  EXPECT_EQ((*r)[2].sequence, 1u);
  EXPECT_EQ(Must(store->Counters()).inbox_messages, 2u);
}

TEST(TransportStoreTest, InboxOrderIsArrivalOrder) {
  TempDir dir;
  auto store = OpenStore(dir);
  std::vector<Bytes> ids;
  for (int batch = 0; batch < 4; ++batch) {
    std::vector<Delivery> ds;
    for (int i = 0; i < 3; ++i) {
      ids.push_back(NewId());
      ds.push_back(Delivery{ids.back(), Envelope(50)});
    }
    ASSERT_TRUE(IsOk(store->StoreDeliveries(ds, kNow + static_cast<UnixMillis>(batch))));
  }
  auto all = store->ReadInbox(0, 100);
  ASSERT_TRUE(IsOk(all));
  ASSERT_EQ(all->size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ((*all)[i].message_id, ids[i]) << i;
    EXPECT_EQ((*all)[i].sequence, i + 1);
  }
  // A page from the middle, as an application resuming after sequence 4 reads it.
  auto page = store->ReadInbox(4, 3);
  ASSERT_TRUE(IsOk(page));
  ASSERT_EQ(page->size(), 3u);
  EXPECT_EQ((*page)[0].sequence, 5u);
  EXPECT_EQ((*page)[2].message_id, ids[6]);
  EXPECT_TRUE(Must(store->ReadInbox(12, 10)).empty());
}

TEST(TransportStoreTest, InboxAndCountersPersistAcrossReopen) {
  TempDir dir;
  Bytes a = NewId(), b = NewId(), ea = Envelope(), eb = Envelope();
  {
    auto store = OpenStore(dir);
    ASSERT_TRUE(IsOk(store->StoreDeliveries(std::vector<Delivery>{{a, ea}, {b, eb}}, kNow)));
    ASSERT_TRUE(IsOk(store->StoreDeliveries(std::vector<Delivery>{{a, ea}}, kNow)));
    ASSERT_TRUE(IsOk(store->SetAppCursor(1)));
  }
  auto store = OpenStore(dir);
  auto rec = store->GetInbox(b);
  ASSERT_TRUE(IsOk(rec));
  EXPECT_EQ(rec->envelope, eb);
  EXPECT_EQ(rec->sequence, 2u);

  // Still known after the restart: a broker redelivery is a duplicate, not a new message.
  auto again = store->StoreDeliveries(std::vector<Delivery>{{b, eb}}, kNow);
  ASSERT_TRUE(IsOk(again));
  EXPECT_TRUE((*again)[0].duplicate);

  auto c = Must(store->Counters());
  EXPECT_EQ(c.inbox_messages, 2u);
  EXPECT_EQ(c.duplicate_deliveries, 2u);
  EXPECT_EQ(c.app_cursor, 1u);
  // The next new message continues the sequence.
  auto next = store->StoreDeliveries(std::vector<Delivery>{{NewId(), Envelope()}}, kNow);
  ASSERT_TRUE(IsOk(next));
  EXPECT_EQ((*next)[0].sequence, 3u);
}

TEST(TransportStoreTest, AppCursorCannotPassTheLastMessage) {
  TempDir dir;
  auto store = OpenStore(dir);
  ASSERT_TRUE(IsOk(store->StoreDeliveries(std::vector<Delivery>{{NewId(), Envelope()}}, kNow)));
  EXPECT_TRUE(IsOk(store->SetAppCursor(1)));
  EXPECT_TRUE(HasCode(store->SetAppCursor(2), Status::Code::kInvalidArgument));
  EXPECT_EQ(Must(store->Counters()).app_cursor, 1u);
}

TEST(TransportStoreTest, OutboxSurvivesReopenInSubmissionOrder) {
  TempDir dir;
  Bytes x = NewId(), y = NewId(), z = NewId();
  Bytes ex = Envelope(), ey = Envelope(), ez = Envelope();
  {
    auto store = OpenStore(dir);
    auto added = store->AddToOutbox(std::vector<OutboxItem>{{x, ex}, {y, ey}, {z, ez}}, kNow);
    ASSERT_TRUE(IsOk(added));
    EXPECT_EQ(*added, (std::vector<bool>{true, true, true}));
    ASSERT_TRUE(IsOk(store->RemoveFromOutbox(std::vector<Bytes>{y})));
  }
  auto store = OpenStore(dir);
  auto ids = store->OutboxIds();
  ASSERT_TRUE(IsOk(ids));
  EXPECT_EQ(*ids, (std::vector<Bytes>{x, z}));
  auto env = store->OutboxEnvelope(z);
  ASSERT_TRUE(IsOk(env));
  EXPECT_EQ(*env, ez);
  EXPECT_TRUE(HasCode(store->OutboxEnvelope(y), Status::Code::kNotFound));
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 2u);

  // Removing what is gone is not an error (an ack can arrive twice).
  EXPECT_TRUE(IsOk(store->RemoveFromOutbox(std::vector<Bytes>{y, x, z})));
  EXPECT_TRUE(Must(store->OutboxIds()).empty());
}

TEST(TransportStoreTest, OutboxAddIsIdempotentAndRefusesOtherBytesUnderOneId) {
  TempDir dir;
  auto store = OpenStore(dir);
  Bytes id = NewId(), e = Envelope(), other = Envelope();
  ASSERT_TRUE(IsOk(store->AddToOutbox(std::vector<OutboxItem>{{id, e}}, kNow)));
  auto again = store->AddToOutbox(std::vector<OutboxItem>{{id, e}}, kNow);
  ASSERT_TRUE(IsOk(again));
  EXPECT_EQ(*again, std::vector<bool>{false});

  Bytes fresh = NewId();
  auto clash = store->AddToOutbox(std::vector<OutboxItem>{{fresh, e}, {id, other}}, kNow);
  EXPECT_TRUE(HasCode(clash, Status::Code::kAlreadyExists));
  // All or nothing: the first item of the refused batch was not queued either.
  EXPECT_EQ(Must(store->OutboxIds()), std::vector<Bytes>{id});
  EXPECT_EQ(Must(store->OutboxEnvelope(id)), e);
}

TEST(TransportStoreTest, DamagedInboxEnvelopeIsDetected) {
  TempDir dir;
  Bytes id = NewId(), e = Envelope(200);
  {
    auto store = OpenStore(dir);
    ASSERT_TRUE(IsOk(store->StoreDeliveries(std::vector<Delivery>{{id, e}}, kNow)));
  }
  FlipStoredByte(dir, kInboxDb, id, kRecordHeaderBytes + 17);  // inside the envelope
  auto store = OpenStore(dir);
  EXPECT_TRUE(HasError(store->GetInbox(id), Status::Code::kMalformed, "damaged"));
  EXPECT_TRUE(HasError(store->ReadInbox(0, 10), Status::Code::kMalformed, "damaged"));
  // Still a duplicate for the broker: the damaged record is not replaced by a redelivery.
  auto again = store->StoreDeliveries(std::vector<Delivery>{{id, e}}, kNow);
  ASSERT_TRUE(IsOk(again));
  EXPECT_TRUE((*again)[0].duplicate);
}

TEST(TransportStoreTest, DamagedInboxHashIsDetected) {
  TempDir dir;
  Bytes id = NewId(), e = Envelope(200);
  {
    auto store = OpenStore(dir);
    ASSERT_TRUE(IsOk(store->StoreDeliveries(std::vector<Delivery>{{id, e}}, kNow)));
  }
  FlipStoredByte(dir, kInboxDb, id, 1 + 5);  // inside the stored SHA-256
  auto store = OpenStore(dir);
  EXPECT_TRUE(HasError(store->GetInbox(id), Status::Code::kMalformed, "damaged"));
}

TEST(TransportStoreTest, DamagedInboxSequenceIsDetected) {
  TempDir dir;
  Bytes id = NewId(), e = Envelope(200);
  {
    auto store = OpenStore(dir);
    ASSERT_TRUE(IsOk(store->StoreDeliveries(std::vector<Delivery>{{id, e}}, kNow)));
  }
  FlipStoredByte(dir, kInboxDb, id, 1 + kSha256Bytes + 8 + 7);  // low byte of the sequence
  auto store = OpenStore(dir);
  EXPECT_TRUE(HasError(store->GetInbox(id), Status::Code::kMalformed, "damaged"));
  EXPECT_TRUE(HasError(store->ReadInbox(0, 10), Status::Code::kMalformed, "damaged"));
}

TEST(TransportStoreTest, DamagedOutboxRecordIsDetected) {
  TempDir dir;
  Bytes id = NewId(), e = Envelope(200);
  {
    auto store = OpenStore(dir);
    ASSERT_TRUE(IsOk(store->AddToOutbox(std::vector<OutboxItem>{{id, e}}, kNow)));
  }
  FlipStoredByte(dir, kOutboxDb, id, kRecordHeaderBytes + 3);
  auto store = OpenStore(dir);
  EXPECT_TRUE(HasError(store->OutboxEnvelope(id), Status::Code::kMalformed, "damaged"));
  // It can still be removed once the broker has answered for it.
  EXPECT_TRUE(IsOk(store->RemoveFromOutbox(std::vector<Bytes>{id})));
  EXPECT_TRUE(Must(store->OutboxIds()).empty());
}

// ---------------------------------------------------------------- control items

TEST(TransportStoreTest, ControlItemsShareTheOutboxAndKeepTheirKind) {
  TempDir dir;
  Bytes env_id = NewId(), ctl_id = NewId(), env = Envelope(), ctl = Envelope(80);
  {
    auto store = OpenStore(dir);
    auto added = store->AddToOutbox(
        std::vector<OutboxItem>{{env_id, env, false}, {ctl_id, ctl, true}}, kNow);
    ASSERT_TRUE(IsOk(added));
    EXPECT_EQ(*added, (std::vector<bool>{true, true}));
    // Idempotent per kind.
    EXPECT_EQ(Must(store->AddToOutbox(std::vector<OutboxItem>{{ctl_id, ctl, true}}, kNow)),
              std::vector<bool>{false});
    // One id namespace: the same id and bytes as the other kind is a clash.
    EXPECT_TRUE(HasError(store->AddToOutbox(std::vector<OutboxItem>{{ctl_id, ctl, false}}, kNow),
                         Status::Code::kAlreadyExists, "control frame"));
    EXPECT_TRUE(HasError(store->AddToOutbox(std::vector<OutboxItem>{{env_id, env, true}}, kNow),
                         Status::Code::kAlreadyExists, "envelope"));
    EXPECT_TRUE(
        HasCode(store->AddToOutbox(std::vector<OutboxItem>{{ctl_id, Envelope(), true}}, kNow),
                Status::Code::kAlreadyExists));
    EXPECT_TRUE(HasCode(store->AddToOutbox(std::vector<OutboxItem>{{NewId(), Bytes(), true}}, kNow),
                        Status::Code::kInvalidArgument));
  }
  auto store = OpenStore(dir);
  EXPECT_EQ(Must(store->OutboxIds()), (std::vector<Bytes>{env_id, ctl_id}));
  OutboxItem e = Must(store->OutboxEntry(env_id));
  EXPECT_FALSE(e.control);
  EXPECT_EQ(e.envelope, env);
  EXPECT_EQ(e.message_id, env_id);
  OutboxItem c = Must(store->OutboxEntry(ctl_id));
  EXPECT_TRUE(c.control);
  EXPECT_EQ(c.envelope, ctl);
  EXPECT_EQ(Must(store->OutboxEnvelope(env_id)), env);
  // Never handed out as an envelope.
  EXPECT_TRUE(HasCode(store->OutboxEnvelope(ctl_id), Status::Code::kFailedPrecondition));
  EXPECT_TRUE(HasCode(store->OutboxEntry(NewId()), Status::Code::kNotFound));
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 2u);
  ASSERT_TRUE(IsOk(store->RemoveFromOutbox(std::vector<Bytes>{ctl_id})));
  EXPECT_EQ(Must(store->OutboxIds()), std::vector<Bytes>{env_id});
}

TEST(TransportStoreTest, DamagedControlOutboxRecordIsDetected) {
  TempDir dir;
  Bytes id = NewId(), ctl = Envelope(120);
  {
    auto store = OpenStore(dir);
    ASSERT_TRUE(IsOk(store->AddToOutbox(std::vector<OutboxItem>{{id, ctl, true}}, kNow)));
  }
  FlipStoredByte(dir, kOutboxDb, id, kRecordHeaderBytes + 5);
  auto store = OpenStore(dir);
  EXPECT_TRUE(HasError(store->OutboxEntry(id), Status::Code::kMalformed, "damaged"));
  EXPECT_TRUE(IsOk(store->RemoveFromOutbox(std::vector<Bytes>{id})));
  EXPECT_TRUE(Must(store->OutboxIds()).empty());
}

// ---------------------------------------------------------------- purge

TEST(TransportStoreTest, PurgeReplacesEnvelopesWithTombstones) {
  TempDir dir;
  Bytes a = NewId(), b = NewId(), c = NewId(), ea = Envelope(), eb = Envelope(5000),
        ec = Envelope();
  {
    auto store = OpenStore(dir);
    ASSERT_TRUE(
        IsOk(store->StoreDeliveries(std::vector<Delivery>{{a, ea}, {b, eb}, {c, ec}}, kNow)));
    ASSERT_TRUE(IsOk(store->SetAppCursor(1)));
    auto before = Must(store->Counters());
    auto n = store->PurgeInbox(std::vector<Bytes>{b}, kNow + 1000);
    ASSERT_TRUE(IsOk(n));
    EXPECT_EQ(*n, 1u);
    auto after = Must(store->Counters());
    EXPECT_EQ(after.inbox_messages, before.inbox_messages);
    EXPECT_EQ(after.duplicate_deliveries, before.duplicate_deliveries);
    EXPECT_EQ(after.last_inbox_sequence, before.last_inbox_sequence);
    EXPECT_EQ(after.app_cursor, before.app_cursor);
  }
  auto store = OpenStore(dir);  // the purge is durable
  auto rec = store->GetInbox(b);
  ASSERT_TRUE(IsOk(rec));
  EXPECT_TRUE(rec->purged);
  EXPECT_TRUE(rec->envelope.empty());
  EXPECT_EQ(rec->sha256, Sha256(eb));  // kept: a redelivery is still compared
  EXPECT_EQ(rec->message_id, b);
  EXPECT_EQ(rec->sequence, 2u);
  EXPECT_EQ(rec->received_ms, kNow);
  EXPECT_TRUE(Must(store->InboxContains(b)));

  auto kept = store->GetInbox(a);
  ASSERT_TRUE(IsOk(kept));
  EXPECT_FALSE(kept->purged);
  EXPECT_EQ(kept->envelope, ea);

  // Arrival order is unchanged; the tombstone keeps its place.
  auto all = store->ReadInbox(0, 10);
  ASSERT_TRUE(IsOk(all));
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].message_id, a);
  EXPECT_EQ((*all)[1].message_id, b);
  EXPECT_EQ((*all)[2].message_id, c);
  EXPECT_FALSE((*all)[0].purged);
  EXPECT_TRUE((*all)[1].purged);
  EXPECT_TRUE((*all)[1].envelope.empty());
  EXPECT_EQ((*all)[1].sequence, 2u);
  EXPECT_FALSE((*all)[2].purged);
  EXPECT_EQ((*all)[2].envelope, ec);
}

TEST(TransportStoreTest, RedeliveryOfAPurgedIdIsADuplicate) {
  TempDir dir;
  auto store = OpenStore(dir);
  Bytes a = NewId(), b = NewId(), ea = Envelope(), eb = Envelope();
  ASSERT_TRUE(IsOk(store->StoreDeliveries(std::vector<Delivery>{{a, ea}, {b, eb}}, kNow)));
  ASSERT_EQ(Must(store->PurgeInbox(std::vector<Bytes>{a}, kNow + 1)), 1u);

  auto again = store->StoreDeliveries(std::vector<Delivery>{{a, ea}}, kNow + 2);
  ASSERT_TRUE(IsOk(again));
  EXPECT_TRUE((*again)[0].duplicate);
  EXPECT_EQ((*again)[0].sequence, 1u);
  auto rec = Must(store->GetInbox(a));
  EXPECT_TRUE(rec.purged);  // not re-stored
  EXPECT_TRUE(rec.envelope.empty());
  auto c = Must(store->Counters());
  EXPECT_EQ(c.inbox_messages, 2u);
  EXPECT_EQ(c.duplicate_deliveries, 1u);
  EXPECT_EQ(c.last_inbox_sequence, 2u);
}

// Issue 17 item 3: a tombstone keeps the delivered envelope's SHA-256, so other bytes
// under a purged id are refused as id_reused, not acked as a redelivery.
TEST(TransportStoreTest, OtherBytesUnderAPurgedIdAreIdReused) {
  TempDir dir;
  Bytes a = NewId(), ea = Envelope(), other = Envelope();
  {
    auto store = OpenStore(dir);
    ASSERT_TRUE(IsOk(store->StoreDeliveries(std::vector<Delivery>{{a, ea}}, kNow)));
    ASSERT_EQ(Must(store->PurgeInbox(std::vector<Bytes>{a}, kNow + 1)), 1u);
  }
  auto store = OpenStore(dir);
  auto r = Must(store->StoreDeliveries(std::vector<Delivery>{{a, other}, {a, ea}}, kNow + 2));
  EXPECT_TRUE(r[0].id_reused);
  EXPECT_FALSE(r[0].duplicate);
  EXPECT_TRUE(r[1].duplicate);
  EXPECT_FALSE(r[1].id_reused);
  auto rec = Must(store->GetInbox(a));
  EXPECT_TRUE(rec.purged);
  EXPECT_EQ(rec.sha256, Sha256(ea));
}

// A test sealer: a recognizable, reversible form that is not the envelope.
Bytes TestSeal(ByteView envelope) {
  Bytes out = {'S', 'E', 'A', 'L'};
  for (uint8_t b : envelope) out.push_back(static_cast<uint8_t>(b ^ 0x5a));
  return out;
}

// With an InboxSealer, a new record holds only the sealed form; the store still compares
// redeliveries with the delivered bytes' SHA-256; the sealer is not asked for duplicates;
// an envelope it leaves alone (empty result) is kept as delivered.
TEST(TransportStoreTest, SealedRecordsKeepOnlyTheSealedFormAndTheDeliveredHash) {
  TempDir dir;
  Bytes a = NewId(), b = NewId(), ea = Envelope(), eb = Envelope(), other = Envelope();
  int calls = 0;
  {
    auto store = OpenStore(dir);
    store->SetInboxSealer([&](ByteView id, ByteView envelope) -> Result<Bytes> {
      ++calls;
      if (Bytes(id.begin(), id.end()) == b) return Bytes{};
      return TestSeal(envelope);
    });
    ASSERT_TRUE(IsOk(store->StoreDeliveries(std::vector<Delivery>{{a, ea}, {b, eb}}, kNow)));
    auto again = Must(store->StoreDeliveries(std::vector<Delivery>{{a, ea}, {a, other}}, kNow));
    EXPECT_TRUE(again[0].duplicate);
    EXPECT_TRUE(again[1].id_reused);
    EXPECT_EQ(calls, 2);
  }
  auto store = OpenStore(dir);  // durable, and read without a sealer
  auto ra = Must(store->GetInbox(a));
  EXPECT_TRUE(ra.sealed_at_rest);
  EXPECT_EQ(ra.envelope, TestSeal(ea));
  EXPECT_EQ(ra.sha256, Sha256(ea));
  auto rb = Must(store->GetInbox(b));
  EXPECT_FALSE(rb.sealed_at_rest);
  EXPECT_EQ(rb.envelope, eb);
  // A purge keeps the delivered hash of a sealed record too.
  ASSERT_EQ(Must(store->PurgeInbox(std::vector<Bytes>{a}, kNow + 1)), 1u);
  EXPECT_EQ(Must(store->GetInbox(a)).sha256, Sha256(ea));
  EXPECT_TRUE(Must(store->StoreDeliveries(std::vector<Delivery>{{a, other}}, kNow))[0].id_reused);
}

// A store written before sealing: SealHeldEnvelopes seals what is held as delivered, once.
TEST(TransportStoreTest, SealHeldEnvelopesSealsWhatAnOlderStoreHolds) {
  TempDir dir;
  Bytes a = NewId(), b = NewId(), ea = Envelope(), eb = Envelope(4000);
  {
    auto store = OpenStore(dir);
    ASSERT_TRUE(IsOk(store->StoreDeliveries(std::vector<Delivery>{{a, ea}, {b, eb}}, kNow)));
    ASSERT_EQ(Must(store->PurgeInbox(std::vector<Bytes>{b}, kNow + 1)), 1u);
    EXPECT_EQ(Must(store->SealHeldEnvelopes()), 0u);  // no sealer: nothing
    store->SetInboxSealer([](ByteView, ByteView e) -> Result<Bytes> { return TestSeal(e); });
    EXPECT_EQ(Must(store->SealHeldEnvelopes()), 1u);  // the tombstone has nothing to seal
    EXPECT_EQ(Must(store->SealHeldEnvelopes()), 0u);
  }
  auto store = OpenStore(dir);
  auto all = Must(store->ReadInbox(0, 10));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_TRUE(all[0].sealed_at_rest);
  EXPECT_EQ(all[0].envelope, TestSeal(ea));
  EXPECT_EQ(all[0].sha256, Sha256(ea));
  EXPECT_EQ(all[0].sequence, 1u);
  EXPECT_EQ(all[0].received_ms, kNow);
  EXPECT_TRUE(all[1].purged);
}

TEST(TransportStoreTest, DamagedSealedRecordIsReported) {
  TempDir dir;
  Bytes a = NewId(), ea = Envelope();
  {
    auto store = OpenStore(dir);
    store->SetInboxSealer([](ByteView, ByteView e) -> Result<Bytes> { return TestSeal(e); });
    ASSERT_TRUE(IsOk(store->StoreDeliveries(std::vector<Delivery>{{a, ea}}, kNow)));
  }
  FlipStoredByte(dir, kInboxDb, a, kRecordHeaderBytes + kSha256Bytes + 10);
  auto store = OpenStore(dir);
  EXPECT_TRUE(HasError(store->GetInbox(a), Status::Code::kMalformed, "damaged"));
}

TEST(TransportStoreTest, PurgeSkipsAbsentAndAlreadyPurgedIds) {
  TempDir dir;
  auto store = OpenStore(dir);
  Bytes a = NewId(), b = NewId();
  ASSERT_TRUE(
      IsOk(store->StoreDeliveries(std::vector<Delivery>{{a, Envelope()}, {b, Envelope()}}, kNow)));
  EXPECT_EQ(Must(store->PurgeInbox(std::vector<Bytes>{}, kNow)), 0u);
  // Absent ids, and a repeat inside one call, are skipped.
  EXPECT_EQ(Must(store->PurgeInbox(std::vector<Bytes>{NewId(), a, a}, kNow)), 1u);
  EXPECT_EQ(Must(store->PurgeInbox(std::vector<Bytes>{a}, kNow)), 0u);
  EXPECT_EQ(Must(store->PurgeInbox(std::vector<Bytes>{a, b}, kNow)), 1u);
  // A malformed id fails the call before anything is written.
  Bytes c = NewId();
  ASSERT_TRUE(IsOk(store->StoreDeliveries(std::vector<Delivery>{{c, Envelope()}}, kNow)));
  EXPECT_TRUE(HasCode(store->PurgeInbox(std::vector<Bytes>{c, Bytes(15, 1)}, kNow),
                      Status::Code::kInvalidArgument));
  EXPECT_FALSE(Must(store->GetInbox(c)).purged);
  EXPECT_EQ(Must(store->Counters()).inbox_messages, 3u);
}

TEST(TransportStoreTest, DamagedTombstoneIsDetected) {
  TempDir dir;
  Bytes a = NewId(), b = NewId(), eb = Envelope();
  {
    auto store = OpenStore(dir);
    ASSERT_TRUE(
        IsOk(store->StoreDeliveries(std::vector<Delivery>{{a, Envelope()}, {b, eb}}, kNow)));
    ASSERT_EQ(Must(store->PurgeInbox(std::vector<Bytes>{b}, kNow + 9)), 1u);
  }
  // Format byte, hash, received time, sequence, purge time: each is caught.
  for (size_t offset : {size_t{0}, size_t{1 + 5}, size_t{1 + kSha256Bytes + 7},
                        size_t{1 + kSha256Bytes + 8 + 7}, size_t{kRecordHeaderBytes + 7}}) {
    FlipStoredByte(dir, kInboxDb, b, offset);
    {
      auto store = OpenStore(dir);
      EXPECT_TRUE(HasError(store->GetInbox(b), Status::Code::kMalformed, "damaged")) << offset;
      EXPECT_TRUE(HasError(store->ReadInbox(0, 10), Status::Code::kMalformed, "damaged")) << offset;
      // Still a duplicate for the broker.
      auto again = store->StoreDeliveries(std::vector<Delivery>{{b, eb}}, kNow);
      ASSERT_TRUE(IsOk(again));
      EXPECT_TRUE((*again)[0].duplicate) << offset;
    }
    FlipStoredByte(dir, kInboxDb, b, offset);  // repaired for the next round
  }
  auto store = OpenStore(dir);
  EXPECT_TRUE(Must(store->GetInbox(b)).purged);
}

TEST(TransportStoreTest, DamagedRecordIsPurgedToo) {
  // Consent was revoked: the content goes, whatever state its record is in; the
  // tombstone takes the sequence the order index holds, so it reads back intact.
  TempDir dir;
  Bytes a = NewId(), b = NewId(), c = NewId();
  {
    auto store = OpenStore(dir);
    ASSERT_TRUE(IsOk(store->StoreDeliveries(
        std::vector<Delivery>{{a, Envelope()}, {b, Envelope()}, {c, Envelope()}}, kNow)));
  }
  FlipStoredByte(dir, kInboxDb, a, kRecordHeaderBytes + 3);    // in the envelope
  FlipStoredByte(dir, kInboxDb, b, 1 + kSha256Bytes + 8 + 7);  // in the sequence
  auto store = OpenStore(dir);
  ASSERT_TRUE(HasError(store->GetInbox(a), Status::Code::kMalformed, "damaged"));
  ASSERT_TRUE(HasError(store->GetInbox(b), Status::Code::kMalformed, "damaged"));
  EXPECT_EQ(Must(store->PurgeInbox(std::vector<Bytes>{a, b}, kNow + 5)), 2u);
  auto ra = Must(store->GetInbox(a));
  EXPECT_TRUE(ra.purged);
  EXPECT_EQ(ra.sequence, 1u);
  EXPECT_EQ(ra.received_ms, kNow);
  auto rb = Must(store->GetInbox(b));
  EXPECT_TRUE(rb.purged);
  EXPECT_EQ(rb.sequence, 2u);
  auto all = Must(store->ReadInbox(0, 10));
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[2].message_id, c);
  EXPECT_FALSE(all[2].purged);
}

TEST(TransportStoreTest, OneProcessPerDataDirectory) {
  TempDir dir;
  auto store = OpenStore(dir);
  auto second = TransportStore::Open(dir.Join("data"), StoreOptions{});
  EXPECT_TRUE(HasError(second, Status::Code::kFailedPrecondition, "in use"));
}

TEST(TransportStoreTest, RefusesLmdbDataThatIsNotAnTransportStore) {
  TempDir dir;
  {
    auto env = Must(lmdb::Env::Open(dir.Join("data"), lmdb::EnvOptions{size_t{16} << 20, 8, 126}));
    MDB_dbi dbi = Must(env->OpenDb("queue"));
    lmdb::Txn txn = Must(env->BeginWrite());
    Must(txn.Put(dbi, AsBytes("k"), AsBytes("v")));
    Must(txn.Commit());
  }
  auto store = TransportStore::Open(dir.Join("data"), StoreOptions{size_t{16} << 20});
  EXPECT_TRUE(HasError(store, Status::Code::kFailedPrecondition, "not a refbus agent store"));
}

TEST(TransportStoreTest, RefusesMalformedInput) {
  TempDir dir;
  auto store = OpenStore(dir);
  Bytes short_id(15, 1);
  EXPECT_TRUE(HasCode(store->StoreDeliveries(std::vector<Delivery>{{short_id, Envelope()}}, kNow),
                      Status::Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(store->StoreDeliveries(std::vector<Delivery>{{NewId(), Bytes()}}, kNow),
                      Status::Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(store->AddToOutbox(std::vector<OutboxItem>{{short_id, Envelope()}}, kNow),
                      Status::Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(store->GetInbox(short_id), Status::Code::kInvalidArgument));
  EXPECT_EQ(Must(store->Counters()).inbox_messages, 0u);
}

TEST(TransportStoreTest, FullMapIsAnErrorAndStoresNothingOfTheBatch) {
  TempDir dir;
  auto store = Must(TransportStore::Open(dir.Join("data"), StoreOptions{size_t{256} << 10}));
  Bytes small = NewId();
  auto r = store->StoreDeliveries(
      std::vector<Delivery>{{small, Envelope(100)}, {NewId(), Envelope(size_t{1} << 20)}}, kNow);
  EXPECT_TRUE(HasCode(r, Status::Code::kResourceExhausted));
  EXPECT_FALSE(Must(store->InboxContains(small)));
  EXPECT_EQ(Must(store->Counters()).inbox_messages, 0u);
}

TEST(TransportStoreTest, Sha256MatchesAKnownVector) {
  // FIPS 180-2 example: SHA-256("abc").
  EXPECT_EQ(HexEncode(Sha256(AsBytes("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// The home broker's checkpoint from its Acks: kept across reopen, damage detected.
TEST(TransportStoreTest, KeptCheckpointPersistsAndDamageIsDetected) {
  TempDir dir;
  KeptCheckpoint c;
  c.broker_id = "seoul-broker";
  c.size = 42;
  c.root = Bytes(32, 0x5a);
  c.note = "refbus/fed/seoul-broker\n42\nWlpa\n\n\u2014 refbus/fed/seoul-broker abc=\n";
  c.received_ms = kNow;
  {
    auto store = OpenStore(dir);
    EXPECT_FALSE(Must(store->LatestCheckpoint()).has_value());
    ASSERT_TRUE(IsOk(store->KeepCheckpoint(c)));
  }
  {
    auto store = OpenStore(dir);
    auto kept = Must(store->LatestCheckpoint());
    ASSERT_TRUE(kept.has_value());
    EXPECT_EQ(kept->broker_id, c.broker_id);
    EXPECT_EQ(kept->size, 42u);
    EXPECT_EQ(kept->root, c.root);
    EXPECT_EQ(kept->note, c.note);
    EXPECT_EQ(kept->received_ms, kNow);
    c.root.pop_back();
    EXPECT_TRUE(HasCode(store->KeepCheckpoint(c), Status::Code::kInvalidArgument));
  }
  FlipStoredByte(dir, kMetaDb, AsBytes("latest_checkpoint"), 40);
  auto store = OpenStore(dir);
  EXPECT_TRUE(HasError(store->LatestCheckpoint(), Status::Code::kMalformed, "damaged"));
}

// Published prekeys of other agencies: one per owner (the newest kept replaces), kept across
// a reopen; a damaged record is left out, the others still read.
TEST(TransportStoreTest, PublishedPrekeysPersistPerOwnerAndDamageIsLeftOut) {
  TempDir dir;
  const Bytes a1 = keys::RandomBytes(150), a2 = keys::RandomBytes(150), b = keys::RandomBytes(150);
  {
    auto store = OpenStore(dir);
    EXPECT_TRUE(Must(store->PublishedPrekeys()).empty());
    ASSERT_TRUE(IsOk(store->KeepPublishedPrekey("seoul-counsel", a1)));
    ASSERT_TRUE(IsOk(store->KeepPublishedPrekey("busan-police", b)));
    ASSERT_TRUE(IsOk(store->KeepPublishedPrekey("seoul-counsel", a2)));
    // The checkpoint in the same table is not mistaken for a prekey.
    KeptCheckpoint c;
    c.broker_id = "seoul-broker";
    c.root = Bytes(32, 1);
    ASSERT_TRUE(IsOk(store->KeepCheckpoint(c)));
  }
  {
    auto store = OpenStore(dir);
    EXPECT_EQ(Must(store->PublishedPrekeys()), (std::vector<Bytes>{b, a2}));
  }
  FlipStoredByte(dir, kMetaDb, AsBytes("prekey/busan-police"), 40);
  auto store = OpenStore(dir);
  EXPECT_EQ(Must(store->PublishedPrekeys()), (std::vector<Bytes>{a2}));
}

}  // namespace
}  // namespace refbus::agent
