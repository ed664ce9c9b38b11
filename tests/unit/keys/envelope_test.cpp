// Tests for keys/envelope.h: sealing to one or many recipients, opening, and refusing
// every kind of tampered, misaddressed, expired or forged envelope.
#include "keys/envelope.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "keys/crypto.h"
#include "schema/codec.h"
#include "tests/unit/keys/federation.h"
#include "tests/unit/test_util.h"

namespace refbus::keys {
// Named after the file, not anonymous: its helpers share names with other test files
// compiled in the same unity batch (tests/CMakeLists.txt).
namespace envelope_test {

using fed::kNow;
using fed::NewIdentity;
using schema::PartyKind;
using test::HasCode;
using test::HasError;
using test::IsOk;
using test::Must;
using Code = Status::Code;

constexpr UnixMillis kDay = kMillisPerDay;

// What keys/envelope.cpp signs: u32 big-endian header length || header || ciphertext.
Bytes SignatureBody(const schema::SealedEnvelope& e) {
  Bytes body;
  AppendLengthPrefixed(body, e.header_bytes);
  Append(body, e.ciphertext);
  return body;
}

class EnvelopeTest : public ::testing::Test {
 protected:
  SealRequest Request(const std::vector<std::string>& to, UnixMillis now = kNow) {
    SealRequest r;
    r.kind = schema::MessageKind::kReferral;
    for (const auto& id : to) r.recipients.push_back(fed_.PrekeyOf(id, now));
    r.case_ref = "CASE-2026-0001";
    r.consent_grant_id = Bytes(schema::kGrantIdBytes, 0x42);
    r.purpose = schema::Purpose::kCounseling;
    r.categories = {schema::DataCategory::kIncidentSummary};
    r.now = now;
    r.lifetime_ms = 7 * kDay;
    return r;
  }

  Bytes Seal(const std::vector<std::string>& to, ByteView content, UnixMillis now = kNow) {
    return Must(SealEnvelope(fed_.party("agency-a"), Request(to, now), content));
  }

  Result<OpenedEnvelope> Open(const std::string& who, ByteView envelope, UnixMillis now = kNow) {
    return OpenEnvelope(fed_.party(who), envelope, fed_.directory(), now);
  }

  fed::Federation fed_;
  const Bytes content_ = ToBytes("Referral: counseling requested for case CASE-2026-0001.");
};

// ---- Sealing and opening ----

TEST_F(EnvelopeTest, OneRecipientOpens) {
  Bytes env = Seal({"agency-b"}, content_);
  auto opened = Open("agency-b", env);
  ASSERT_TRUE(IsOk(opened));
  EXPECT_EQ(Bytes(opened->content.view().begin(), opened->content.view().end()), content_);
  const schema::EnvelopeHeader& h = opened->envelope.header;
  EXPECT_EQ(h.sender_id, "agency-a");
  EXPECT_EQ(h.sender_key_id, fed_.party("agency-a").signing_key_id());
  EXPECT_EQ(h.kind, schema::MessageKind::kReferral);
  EXPECT_EQ(h.case_ref, "CASE-2026-0001");
  EXPECT_EQ(h.purpose, schema::Purpose::kCounseling);
  EXPECT_EQ(h.created_at_ms, kNow);
  EXPECT_EQ(h.expires_at_ms, kNow + 7 * kDay);
  ASSERT_EQ(h.recipients.size(), 1u);
  EXPECT_EQ(h.recipients[0].agency_id, "agency-b");
  EXPECT_EQ(h.recipients[0].prekey_id, fed_.party("agency-b").prekeys()[0].id);
}

TEST_F(EnvelopeTest, ThreeRecipientsOpenIdenticalContent) {
  Bytes env = Seal({"agency-b", "agency-c", "agency-d"}, content_);
  for (const char* who : {"agency-b", "agency-c", "agency-d"}) {
    auto opened = Open(who, env);
    ASSERT_TRUE(IsOk(opened)) << who;
    EXPECT_EQ(AsChars(opened->content.view()), AsChars(content_)) << who;
    EXPECT_EQ(opened->envelope.header.recipients.size(), 3u);
  }
}

TEST_F(EnvelopeTest, BrokerCanVerifyWithoutSecrets) {
  Bytes env = Seal({"agency-b"}, content_);
  auto v = VerifyEnvelope(env, fed_.directory(), kNow);
  ASSERT_TRUE(IsOk(v));
  EXPECT_EQ(v->header.sender_id, "agency-a");
  // The content is not in the clear anywhere in the envelope.
  auto it = std::search(env.begin(), env.end(), content_.begin(), content_.end());
  EXPECT_EQ(it, env.end());
}

TEST_F(EnvelopeTest, EmptyAndOneMebibyteContent) {
  Bytes empty_env = Seal({"agency-b"}, ByteView());
  auto empty = Open("agency-b", empty_env);
  ASSERT_TRUE(IsOk(empty));
  EXPECT_EQ(empty->content.size(), 0u);

  Bytes big(1u << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 131 + 7);
  Bytes big_env = Seal({"agency-b", "agency-c"}, big);
  for (const char* who : {"agency-b", "agency-c"}) {
    auto opened = Open(who, big_env);
    ASSERT_TRUE(IsOk(opened)) << who;
    ASSERT_EQ(opened->content.size(), big.size());
    EXPECT_TRUE(std::equal(big.begin(), big.end(), opened->content.data())) << who;
  }
}

TEST_F(EnvelopeTest, GivenMessageIdIsUsed) {
  SealRequest r = Request({"agency-b"});
  r.message_id = Bytes(schema::kMessageIdBytes, 0x5a);
  Bytes env = Must(SealEnvelope(fed_.party("agency-a"), r, content_));
  auto opened = Open("agency-b", env);
  ASSERT_TRUE(IsOk(opened));
  EXPECT_EQ(opened->envelope.header.message_id, r.message_id);
  // Random ids otherwise, different every time.
  auto a = Must(schema::DecodeEnvelope(Seal({"agency-b"}, content_)));
  auto b = Must(schema::DecodeEnvelope(Seal({"agency-b"}, content_)));
  EXPECT_NE(a.header.message_id, b.header.message_id);
  EXPECT_NE(a.header.ephemeral_key, b.header.ephemeral_key);
}

TEST_F(EnvelopeTest, NewMessageIdsSortByCreationTime) {
  // The broker's and agents' tables keyed by message id take new ids at their end only if
  // ids made later sort later (bytewise, as LMDB compares keys); ids of one millisecond
  // still differ in their random part.
  Bytes earlier =
      Must(schema::DecodeEnvelope(Seal({"agency-b"}, content_, kNow))).header.message_id;
  Bytes later =
      Must(schema::DecodeEnvelope(Seal({"agency-b"}, content_, kNow + 1))).header.message_id;
  Bytes much_later =
      Must(schema::DecodeEnvelope(Seal({"agency-b"}, content_, kNow + kMillisPerDay)))
          .header.message_id;
  EXPECT_LT(earlier, later);
  EXPECT_LT(later, much_later);
  Bytes same_ms =
      Must(schema::DecodeEnvelope(Seal({"agency-b"}, content_, kNow))).header.message_id;
  EXPECT_NE(earlier, same_ms);
  EXPECT_TRUE(std::equal(earlier.begin(), earlier.begin() + 6, same_ms.begin()));
  EXPECT_FALSE(std::equal(earlier.begin() + 6, earlier.end(), same_ms.begin() + 6));
}

TEST_F(EnvelopeTest, SealRefusesBadRequests) {
  const Identity& sender = fed_.party("agency-a");
  SealRequest none = Request({});
  EXPECT_TRUE(HasCode(SealEnvelope(sender, none, content_), Code::kInvalidArgument));

  SealRequest bad_id = Request({"agency-b"});
  bad_id.message_id = Bytes(15, 1);
  EXPECT_TRUE(HasCode(SealEnvelope(sender, bad_id, content_), Code::kInvalidArgument));

  SealRequest zero_life = Request({"agency-b"});
  zero_life.lifetime_ms = 0;
  EXPECT_TRUE(HasCode(SealEnvelope(sender, zero_life, content_), Code::kInvalidArgument));
  SealRequest long_life = Request({"agency-b"});
  long_life.lifetime_ms = kMaxEnvelopeLifetimeMs + 1;
  EXPECT_TRUE(HasCode(SealEnvelope(sender, long_life, content_), Code::kInvalidArgument));

  SealRequest twice = Request({"agency-b", "agency-b"});
  EXPECT_TRUE(HasError(SealEnvelope(sender, twice, content_), Code::kMalformed, "twice"));

  SealRequest bad_prekey = Request({"agency-b"});
  bad_prekey.recipients[0].public_key.resize(31);
  EXPECT_TRUE(HasCode(SealEnvelope(sender, bad_prekey, content_), Code::kInvalidArgument));

  SealRequest weak = Request({"agency-b"});
  weak.recipients[0].public_key.assign(32, 0);  // the all-zero point: no shared secret
  EXPECT_TRUE(HasCode(SealEnvelope(sender, weak, content_), Code::kUnauthenticated));

  EXPECT_TRUE(HasCode(SealEnvelope(sender, Request({"agency-b"}), Bytes(schema::kMaxEnvelopeBytes)),
                      Code::kResourceExhausted));
}

TEST_F(EnvelopeTest, OnlyAgenciesSeal) {
  Identity broker = NewIdentity(fed::kBroker, PartyKind::kBroker);
  EXPECT_TRUE(
      HasCode(SealEnvelope(broker, Request({"agency-b"}), content_), Code::kInvalidArgument));
}

// ---- Refusals when opening ----

TEST_F(EnvelopeTest, NonRecipientIsPermissionDenied) {
  Bytes env = Seal({"agency-b", "agency-c"}, content_);
  EXPECT_TRUE(HasError(Open("agency-d", env), Code::kPermissionDenied, "not addressed"));
  // The sender is not a recipient of its own envelope either.
  EXPECT_TRUE(HasCode(Open("agency-a", env), Code::kPermissionDenied));
}

TEST_F(EnvelopeTest, TamperedHeaderIsUnauthenticated) {
  SealRequest r = Request({"agency-b"});
  r.message_id = Bytes(schema::kMessageIdBytes, 0x5a);
  Bytes env = Must(SealEnvelope(fed_.party("agency-a"), r, content_));
  schema::SealedEnvelope e = Must(schema::DecodeEnvelope(env));
  // Flip a byte of the message id, of the ephemeral key and of the commitment: each still
  // decodes, none verifies.
  for (const Bytes* field : {&e.header.message_id, &e.header.ephemeral_key,
                             &e.header.key_commitment, &e.header.content_nonce}) {
    schema::SealedEnvelope t = e;
    auto it =
        std::search(t.header_bytes.begin(), t.header_bytes.end(), field->begin(), field->end());
    ASSERT_NE(it, t.header_bytes.end());
    *it ^= 0x01;
    Bytes tampered = schema::EncodeEnvelope(t);
    ASSERT_TRUE(IsOk(schema::DecodeEnvelope(tampered)));
    EXPECT_TRUE(HasError(Open("agency-b", tampered), Code::kUnauthenticated, "signature"));
    EXPECT_TRUE(HasCode(VerifyEnvelope(tampered, fed_.directory(), kNow), Code::kUnauthenticated));
  }
}

TEST_F(EnvelopeTest, TamperedCiphertextIsUnauthenticated) {
  schema::SealedEnvelope e = Must(schema::DecodeEnvelope(Seal({"agency-b"}, content_)));
  for (size_t i : {size_t{0}, e.ciphertext.size() / 2, e.ciphertext.size() - 1}) {
    schema::SealedEnvelope t = e;
    t.ciphertext[i] ^= 0x01;
    EXPECT_TRUE(HasCode(Open("agency-b", schema::EncodeEnvelope(t)), Code::kUnauthenticated)) << i;
  }
  schema::SealedEnvelope shorter = e;
  shorter.ciphertext.pop_back();
  EXPECT_TRUE(HasCode(Open("agency-b", schema::EncodeEnvelope(shorter)), Code::kUnauthenticated));
}

TEST_F(EnvelopeTest, TamperedSignatureIsUnauthenticated) {
  schema::SealedEnvelope e = Must(schema::DecodeEnvelope(Seal({"agency-b"}, content_)));
  for (size_t i : {size_t{0}, size_t{32}, size_t{63}}) {
    schema::SealedEnvelope t = e;
    t.signature[i] ^= 0x01;
    EXPECT_TRUE(HasCode(Open("agency-b", schema::EncodeEnvelope(t)), Code::kUnauthenticated)) << i;
  }
  // A valid signature by the sender over something else (another label) does not count.
  schema::SealedEnvelope relabelled = e;
  relabelled.signature = fed_.party("agency-a").Sign(kLabelConsentGrant, SignatureBody(e));
  EXPECT_TRUE(
      HasCode(Open("agency-b", schema::EncodeEnvelope(relabelled)), Code::kUnauthenticated));
}

// What a home broker runs on its sender's own session (SECURITY.md, issue 21): every check
// of VerifyEnvelope but the signature, which it leaves to the recipient.
TEST_F(EnvelopeTest, CheckExceptSignatureSkipsOnlyTheSignature) {
  schema::SealedEnvelope e = Must(schema::DecodeEnvelope(Seal({"agency-b"}, content_)));
  e.signature[0] ^= 0x01;
  Bytes bad = schema::EncodeEnvelope(e);
  EnvelopeCheck check = EnvelopeCheck::kSignature;
  EXPECT_TRUE(IsOk(CheckEnvelopeExceptSignature(bad, fed_.directory(), kNow, &check)));
  EXPECT_EQ(check, EnvelopeCheck::kOk);
  EXPECT_TRUE(HasCode(VerifyEnvelope(bad, fed_.directory(), kNow), Code::kUnauthenticated));
  // Times, the sender's listing and decoding are still checked.
  EXPECT_TRUE(HasCode(CheckEnvelopeExceptSignature(bad, fed_.directory(), kNow + 8 * kDay, &check),
                      Code::kExpired));
  EXPECT_EQ(check, EnvelopeCheck::kTime);
  Identity stranger = NewIdentity("agency-x", PartyKind::kAgency);
  Bytes unlisted = Must(SealEnvelope(stranger, Request({"agency-b"}), content_));
  EXPECT_FALSE(CheckEnvelopeExceptSignature(unlisted, fed_.directory(), kNow, &check).ok());
  EXPECT_EQ(check, EnvelopeCheck::kSenderKey);
  EXPECT_FALSE(
      CheckEnvelopeExceptSignature(ToBytes("not an envelope"), fed_.directory(), kNow, &check)
          .ok());
  EXPECT_EQ(check, EnvelopeCheck::kMalformed);
}

TEST_F(EnvelopeTest, ReaddressedEnvelopeIsUnauthenticated) {
  schema::SealedEnvelope e = Must(schema::DecodeEnvelope(Seal({"agency-b", "agency-c"}, content_)));
  RecipientPrekey d = fed_.PrekeyOf("agency-d", kNow);

  // agency-c's entry handed to agency-d (header re-encoded, old signature kept).
  schema::SealedEnvelope swapped = e;
  swapped.header.recipients[1].agency_id = "agency-d";
  swapped.header.recipients[1].prekey_id = d.prekey_id;
  swapped.header_bytes = schema::EncodeEnvelopeHeader(swapped.header);
  Bytes swapped_bytes = schema::EncodeEnvelope(swapped);
  EXPECT_TRUE(HasError(Open("agency-d", swapped_bytes), Code::kUnauthenticated, "signature"));
  EXPECT_TRUE(HasCode(Open("agency-b", swapped_bytes), Code::kUnauthenticated));

  // A recipient added.
  schema::SealedEnvelope added = e;
  added.header.recipients.push_back({"agency-d", d.prekey_id, e.header.recipients[0].wrapped_key});
  added.header_bytes = schema::EncodeEnvelopeHeader(added.header);
  EXPECT_TRUE(HasCode(Open("agency-d", schema::EncodeEnvelope(added)), Code::kUnauthenticated));

  // A recipient removed.
  schema::SealedEnvelope removed = e;
  removed.header.recipients.pop_back();
  removed.header_bytes = schema::EncodeEnvelopeHeader(removed.header);
  EXPECT_TRUE(HasCode(Open("agency-b", schema::EncodeEnvelope(removed)), Code::kUnauthenticated));
}

TEST_F(EnvelopeTest, UnknownSenderIsUnauthenticated) {
  Identity stranger = NewIdentity("agency-x", PartyKind::kAgency);
  Bytes env = Must(SealEnvelope(stranger, Request({"agency-b"}), content_));
  EXPECT_TRUE(HasError(Open("agency-b", env), Code::kUnauthenticated, "agency-x"));

  // An impostor with a listed id but its own keys.
  Identity impostor = NewIdentity("agency-a", PartyKind::kAgency);
  Bytes forged = Must(SealEnvelope(impostor, Request({"agency-b"}), content_));
  EXPECT_TRUE(HasCode(Open("agency-b", forged), Code::kUnauthenticated));
}

TEST_F(EnvelopeTest, ImpostorSigningAsAnotherSenderIsUnauthenticated) {
  // agency-c is listed and signs correctly, but claims to be agency-a.
  schema::SealedEnvelope e = Must(schema::DecodeEnvelope(Seal({"agency-b"}, content_)));
  e.header.sender_id = "agency-a";
  e.header.sender_key_id = fed_.party("agency-c").signing_key_id();
  e.header_bytes = schema::EncodeEnvelopeHeader(e.header);
  e.signature = fed_.party("agency-c").Sign(kLabelEnvelope, SignatureBody(e));
  EXPECT_TRUE(HasCode(Open("agency-b", schema::EncodeEnvelope(e)), Code::kUnauthenticated));
}

TEST_F(EnvelopeTest, SenderRevokedInALaterDirectoryIsRevoked) {
  Bytes env = Seal({"agency-b"}, content_);
  DirectoryEdit edit;
  edit.revoke.push_back("agency-a");
  ASSERT_TRUE(IsOk(fed_.Issue(edit, kNow + 1)));
  EXPECT_TRUE(HasError(Open("agency-b", env, kNow + 2), Code::kRevoked, "envelope sender"));
}

TEST_F(EnvelopeTest, RetiredSenderKeyOpensForEnvelopesSealedBeforeRotation) {
  Bytes before = Seal({"agency-b"}, content_, kNow);
  const UnixMillis rotated_at = kNow + kMillisPerHour;
  Identity old = fed_.Replace("agency-a", NewIdentity("agency-a", PartyKind::kAgency, rotated_at));
  DirectoryEdit edit;
  edit.upserts.push_back(fed_.Record("agency-a", rotated_at, &old));
  ASSERT_TRUE(IsOk(fed_.Issue(edit, rotated_at)));

  auto opened = Open("agency-b", before, rotated_at + kMillisPerHour);
  ASSERT_TRUE(IsOk(opened));
  EXPECT_EQ(AsChars(opened->content.view()), AsChars(content_));

  // The old key sealing after its retirement is refused.
  Bytes after = Must(SealEnvelope(old, Request({"agency-b"}, rotated_at + 1), content_));
  EXPECT_TRUE(HasCode(Open("agency-b", after, rotated_at + 2), Code::kRevoked));
  // The new key works.
  Bytes fresh =
      Must(SealEnvelope(fed_.party("agency-a"), Request({"agency-b"}, rotated_at + 1), content_));
  EXPECT_TRUE(IsOk(Open("agency-b", fresh, rotated_at + 2)));
}

TEST_F(EnvelopeTest, CompromisedSenderKeyIsRevokedEvenForOldEnvelopes) {
  Bytes before = Seal({"agency-b"}, content_, kNow);
  const UnixMillis rotated_at = kNow + kMillisPerHour;
  Identity old = fed_.Replace("agency-a", NewIdentity("agency-a", PartyKind::kAgency, rotated_at));
  DirectoryEdit edit;
  edit.upserts.push_back(fed_.Record("agency-a", rotated_at, &old));
  edit.compromised.push_back("agency-a");
  ASSERT_TRUE(IsOk(fed_.Issue(edit, rotated_at)));
  EXPECT_TRUE(HasCode(Open("agency-b", before, rotated_at + 1), Code::kRevoked));
}

TEST_F(EnvelopeTest, ExpiredEnvelopeIsExpired) {
  Bytes env = Seal({"agency-b"}, content_);
  EXPECT_TRUE(IsOk(Open("agency-b", env, kNow + 7 * kDay - 1)));
  EXPECT_TRUE(HasError(Open("agency-b", env, kNow + 7 * kDay), Code::kExpired, "expired"));
  EXPECT_TRUE(HasCode(VerifyEnvelope(env, fed_.directory(), kNow + 8 * kDay), Code::kExpired));
}

TEST_F(EnvelopeTest, EnvelopeFromTheFutureIsExpired) {
  Bytes env = Seal({"agency-b"}, content_, kNow + kClockSkewMs + 1);
  EXPECT_TRUE(HasError(Open("agency-b", env, kNow), Code::kExpired, "clock"));
  // Within the allowed skew it opens.
  Bytes near = Seal({"agency-b"}, content_, kNow + kClockSkewMs);
  EXPECT_TRUE(IsOk(Open("agency-b", near, kNow)));
}

TEST_F(EnvelopeTest, PrekeyOutsideItsWindowIsExpired) {
  // agency-b still holds an old prekey that expired ten days ago; a sender seals to it now.
  Identity& b = fed_.party("agency-b");
  auto old = Must(b.AddPrekey(kNow - 20 * kDay, kNow - 10 * kDay));
  SealRequest r = Request({"agency-b"});
  r.recipients[0] = RecipientPrekey{"agency-b", old.prekey.public_key,
                                    KeyId(KeyUse::kPrekey, old.prekey.public_key)};
  Bytes env = Must(SealEnvelope(fed_.party("agency-a"), r, content_));
  EXPECT_TRUE(HasError(Open("agency-b", env), Code::kExpired, "prekey"));

  // A prekey whose window has not started yet is refused the same way.
  auto future = Must(b.AddPrekey(kNow + 10 * kDay, kNow + 40 * kDay));
  r.recipients[0] = RecipientPrekey{"agency-b", future.prekey.public_key,
                                    KeyId(KeyUse::kPrekey, future.prekey.public_key)};
  Bytes early = Must(SealEnvelope(fed_.party("agency-a"), r, content_));
  EXPECT_TRUE(HasCode(Open("agency-b", early), Code::kExpired));
}

TEST_F(EnvelopeTest, PrunedPrekeyIsNotFound) {
  Bytes env = Seal({"agency-b", "agency-c"}, content_);
  Identity& b = fed_.party("agency-b");
  ASSERT_EQ(b.PrunePrekeys(kNow + 365 * kDay, 0), 1u);
  EXPECT_TRUE(HasError(Open("agency-b", env), Code::kNotFound, "prekey"));
  // The other recipient is unaffected.
  EXPECT_TRUE(IsOk(Open("agency-c", env)));
}

TEST_F(EnvelopeTest, RecipientWithAnotherIdentityCannotOpen) {
  // Same id, other keys (for example a restored old backup): no matching prekey.
  Bytes env = Seal({"agency-b"}, content_);
  Identity other_b = NewIdentity("agency-b", PartyKind::kAgency);
  EXPECT_TRUE(HasCode(OpenEnvelope(other_b, env, fed_.directory(), kNow), Code::kNotFound));
}

// A sender that signs validly but puts a wrong wrapped key or commitment in the header.
class MaliciousSenderTest : public EnvelopeTest {
 protected:
  // Applies change to the decoded header, re-encodes it and re-signs as agency-a.
  Bytes Resign(const Bytes& env, const std::function<void(schema::EnvelopeHeader&)>& change) {
    schema::SealedEnvelope e = Must(schema::DecodeEnvelope(env));
    change(e.header);
    e.header_bytes = schema::EncodeEnvelopeHeader(e.header);
    e.signature = fed_.party("agency-a").Sign(kLabelEnvelope, SignatureBody(e));
    Bytes out = schema::EncodeEnvelope(e);
    if (!VerifyEnvelope(out, fed_.directory(), kNow).ok()) {
      throw std::runtime_error("re-signed envelope does not verify");
    }
    return out;
  }
};

TEST_F(MaliciousSenderTest, WrongWrappedKeyIsUnauthenticated) {
  Bytes env = Seal({"agency-b", "agency-c"}, content_);
  for (size_t i : {size_t{0}, size_t{20}, size_t{47}}) {
    Bytes bad =
        Resign(env, [i](schema::EnvelopeHeader& h) { h.recipients[0].wrapped_key[i] ^= 1; });
    EXPECT_TRUE(HasError(Open("agency-b", bad), Code::kUnauthenticated, "unwrap")) << i;
  }
  // Another recipient's wrapped key, under this recipient's name.
  Bytes swapped = Resign(env, [](schema::EnvelopeHeader& h) {
    h.recipients[0].wrapped_key = h.recipients[1].wrapped_key;
  });
  EXPECT_TRUE(HasCode(Open("agency-b", swapped), Code::kUnauthenticated));
}

TEST_F(MaliciousSenderTest, WrongKeyCommitmentIsUnauthenticated) {
  Bytes env = Seal({"agency-b"}, content_);
  Bytes bad = Resign(env, [](schema::EnvelopeHeader& h) { h.key_commitment[3] ^= 1; });
  EXPECT_TRUE(HasError(Open("agency-b", bad), Code::kUnauthenticated, "commitment"));
}

TEST_F(MaliciousSenderTest, WrongEphemeralKeyIsUnauthenticated) {
  Bytes env = Seal({"agency-b"}, content_);
  Bytes bad = Resign(env, [](schema::EnvelopeHeader& h) { h.ephemeral_key[0] ^= 1; });
  EXPECT_TRUE(HasCode(Open("agency-b", bad), Code::kUnauthenticated));
  Bytes zero = Resign(env, [](schema::EnvelopeHeader& h) { h.ephemeral_key.assign(32, 0); });
  EXPECT_TRUE(HasCode(Open("agency-b", zero), Code::kUnauthenticated));
}

TEST_F(MaliciousSenderTest, HeaderChangedAfterEncryptionIsUnauthenticated) {
  // Everything about the key checks out, but the content was encrypted under another header.
  Bytes env = Seal({"agency-b"}, content_);
  Bytes bad = Resign(env, [](schema::EnvelopeHeader& h) { h.purpose = schema::Purpose::kLegal; });
  EXPECT_TRUE(HasError(Open("agency-b", bad), Code::kUnauthenticated, "content"));
}

TEST_F(MaliciousSenderTest, OverlongLifetimeIsRefused) {
  Bytes env = Seal({"agency-b"}, content_);
  Bytes bad = [&] {
    schema::SealedEnvelope e = Must(schema::DecodeEnvelope(env));
    e.header.expires_at_ms = e.header.created_at_ms + kMaxEnvelopeLifetimeMs + 1;
    e.header_bytes = schema::EncodeEnvelopeHeader(e.header);
    e.signature = fed_.party("agency-a").Sign(kLabelEnvelope, SignatureBody(e));
    return schema::EncodeEnvelope(e);
  }();
  EXPECT_TRUE(HasCode(Open("agency-b", bad), Code::kMalformed));
}

TEST_F(EnvelopeTest, GarbageIsMalformed) {
  EXPECT_TRUE(HasCode(Open("agency-b", AsBytes("garbage")), Code::kMalformed));
  EXPECT_TRUE(HasCode(Open("agency-b", ByteView()), Code::kMalformed));
  Bytes env = Seal({"agency-b"}, content_);
  for (size_t n = 0; n < env.size(); n += 7) {
    auto r = Open("agency-b", ByteView(env.data(), n));
    EXPECT_FALSE(r.ok()) << n;
  }
}

}  // namespace envelope_test
}  // namespace refbus::keys
