// GrantKeys (agent/case_crypto.h): per-grant data keys sealing case text at rest, with
// real key files: a value opens only at its place under its grant's key, a key file opens
// only with its agency's identity and never holds the key in the clear, and Destroy
// (the purge) leaves nothing that opens the grant's values.
#include "agent/case_crypto.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "core/file.h"
#include "tests/unit/test_util.h"

namespace refbus::agent {
namespace {

using ::refbus::test::Must;
using ::refbus::test::TempDir;

constexpr char kGrant[] = "00112233445566778899aabbccddeeff";
constexpr char kOther[] = "ffeeddccbbaa99887766554433221100";

keys::Identity Agency(const std::string& id) {
  return Must(keys::Identity::Generate(id, schema::PartyKind::kAgency, 1, kMillisPerDay));
}

TEST(GrantKeysTest, SealedTextOpensOnlyAtItsPlaceUnderItsGrant) {
  TempDir dir;
  keys::Identity me = Agency("agency-a");
  auto keys = Must(GrantKeys::Open(dir.Join("grant-keys"), me));
  const std::string place = TextPlace("handoffs", "aa", "reason");
  SealedText s = Must(keys->Seal(kGrant, place, "moving to the support center"));
  EXPECT_EQ(s.grant_id, kGrant);
  EXPECT_EQ(s.place, place);
  EXPECT_EQ(Must(keys->Unseal(s, place)), "moving to the support center");
  // Moved to another record, or relabelled as another grant's: refused, never garbage.
  EXPECT_EQ(keys->Unseal(s, TextPlace("handoffs", "bb", "reason")).status().code(),
            Status::Code::kMalformed);
  Must(keys->Seal(kOther, place, "x").status());
  SealedText relabelled = s;
  relabelled.grant_id = kOther;
  EXPECT_EQ(keys->Unseal(relabelled, place).status().code(), Status::Code::kMalformed);
  EXPECT_EQ(Must(keys->Grants()), (std::vector<std::string>{kGrant, kOther}));
  EXPECT_EQ(keys->Seal("../etc", place, "x").status().code(), Status::Code::kInvalidArgument);
}

// The binary form the inbox keeps received envelopes in: it round-trips exactly, and a
// cut, extended or relabelled form is refused (kMalformed), never read past its end.
TEST(GrantKeysTest, SealedFormRoundTripsAndRefusesDamage) {
  TempDir dir;
  keys::Identity me = Agency("agency-a");
  auto keys = Must(GrantKeys::Open(dir.Join("grant-keys"), me));
  const std::string place = TextPlace("inbox", "0123", "envelope");
  std::string envelope(3000, '\0');
  for (size_t i = 0; i < envelope.size(); ++i) envelope[i] = static_cast<char>(i * 7);
  SealedText s = Must(keys->Seal(kGrant, place, envelope));
  Bytes form = EncodeSealedBlob(s);
  SealedText back = Must(DecodeSealedBlob(form));
  EXPECT_EQ(back.grant_id, kGrant);
  EXPECT_EQ(back.place, place);
  EXPECT_EQ(Must(keys->Unseal(back, place)), envelope);
  for (size_t cut : {size_t{0}, size_t{10}, form.size() / 2, form.size() - 1}) {
    EXPECT_EQ(DecodeSealedBlob(ByteView(form).first(cut)).status().code(), Status::Code::kMalformed)
        << cut;
  }
  Bytes longer = form;
  longer.push_back(0);
  EXPECT_EQ(DecodeSealedBlob(longer).status().code(), Status::Code::kMalformed);
  Bytes other_magic = form;
  other_magic[0] ^= 1;
  EXPECT_EQ(DecodeSealedBlob(other_magic).status().code(), Status::Code::kMalformed);
  Bytes flipped = form;
  flipped[form.size() - 5] ^= 1;
  EXPECT_EQ(keys->Unseal(Must(DecodeSealedBlob(flipped)), place).status().code(),
            Status::Code::kMalformed);
}

TEST(GrantKeysTest, KeyFilesArePrivateWrappedAndOpenOnlyWithTheAgencysIdentity) {
  TempDir dir;
  keys::Identity me = Agency("agency-a");
  const std::string place = TextPlace("cases", "case-1", "closed_reason");
  SealedText s;
  Bytes raw_key;
  {
    auto keys = Must(GrantKeys::Open(dir.Join("grant-keys"), me));
    s = Must(keys->Seal(kGrant, place, "closed"));
    auto k = Must(keys->KeyOf(kGrant));
    raw_key.assign(k->data(), k->data() + kDataKeyBytes);
  }
  const std::string file = dir.Join("grant-keys") + "/" + kGrant + ".key";
  Must(CheckPrivateFile(file));
  Bytes bytes = Must(ReadFile(file, 4096));
  EXPECT_EQ(std::search(bytes.begin(), bytes.end(), raw_key.begin(), raw_key.end()), bytes.end())
      << "the data key is in its file in the clear";
  // A new process of the same agency reads it; another agency's identity does not.
  auto again = Must(GrantKeys::Open(dir.Join("grant-keys"), me));
  EXPECT_EQ(Must(again->Unseal(s, place)), "closed");
  keys::Identity other = Agency("agency-b");
  auto theirs = Must(GrantKeys::Open(dir.Join("grant-keys"), other));
  EXPECT_EQ(theirs->Unseal(s, place).status().code(), Status::Code::kMalformed);
}

TEST(GrantKeysTest, DestroyShredsTheGrantsTextForGood) {
  TempDir dir;
  keys::Identity me = Agency("agency-a");
  auto keys = Must(GrantKeys::Open(dir.Join("grant-keys"), me));
  const std::string place = TextPlace("referrals", "r1", "history/1/reason");
  SealedText s = Must(keys->Seal(kGrant, place, "declined: wrong region"));
  Must(keys->Seal(kOther, place, "kept").status());
  auto k = Must(keys->KeyOf(kGrant));
  Bytes raw(k->data(), k->data() + kDataKeyBytes);
  Must(keys->Destroy(kGrant));
  Must(keys->Destroy(kGrant));  // idempotent (a purge rerun after a crash)
  EXPECT_FALSE(keys->Has(kGrant));
  EXPECT_FALSE(PathExists(dir.Join("grant-keys") + "/" + kGrant + ".key"));
  auto gone = keys->Unseal(s, place);
  EXPECT_EQ(gone.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(gone.status().message().find("purged"), std::string::npos);
  // No new key is made for a purged grant, in this process or the next.
  EXPECT_EQ(keys->Seal(kGrant, place, "x").status().code(), Status::Code::kFailedPrecondition);
  auto next = Must(GrantKeys::Open(dir.Join("grant-keys"), me));
  EXPECT_EQ(next->Seal(kGrant, place, "x").status().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(Must(next->Grants()), (std::vector<std::string>{kOther}));
  // The value does not open under any key left.
  for (const auto& g : Must(next->Grants())) {
    std::string out;
    EXPECT_FALSE(TryUnseal(s, place, Must(next->KeyOf(g))->data(), &out));
  }
  std::string out;
  EXPECT_TRUE(TryUnseal(s, place, raw.data(), &out)) << "the test's copy of the old key opens it";
}

}  // namespace
}  // namespace refbus::agent
