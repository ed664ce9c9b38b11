// Tests for schema/deletion_list.h: how a deletion request is cut into chunks and the
// hashes of its manifest (PROTOCOL.md 10.1).
#include "schema/deletion_list.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/test_util.h"

namespace refbus::schema {
namespace {

using test::HasError;

std::vector<DeletionItem> Items(size_t n, size_t url_bytes = 40) {
  std::vector<DeletionItem> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    std::string url = "https://video.example/v/" + std::to_string(i);
    url.resize(std::max(url.size(), url_bytes), 'x');
    out.push_back({std::to_string(i + 1), url, Bytes(32, static_cast<uint8_t>(i)), "video-a", ""});
  }
  return out;
}

TEST(DeletionListTest, CutsByItemCount) {
  auto items = Items(12001);
  auto cuts = CutDeletionChunks(items);
  ASSERT_EQ(cuts.size(), 3u);
  EXPECT_EQ(cuts[0], (std::pair<size_t, size_t>{0, 5000}));
  EXPECT_EQ(cuts[1], (std::pair<size_t, size_t>{5000, 10000}));
  EXPECT_EQ(cuts[2], (std::pair<size_t, size_t>{10000, 12001}));
}

TEST(DeletionListTest, CutsByBytesWhenUrlsAreLong) {
  auto items = Items(2000, kMaxUrlBytes);  // ~2.1 KiB each: a chunk holds < 500
  for (auto& i : items) i.note.assign(kMaxDeletionNoteBytes, 'n');
  auto cuts = CutDeletionChunks(items);
  ASSERT_GT(cuts.size(), 4u);
  size_t next = 0;
  for (const auto& [b, e] : cuts) {
    EXPECT_EQ(b, next);
    size_t bytes = 0;
    for (size_t i = b; i < e; ++i) bytes += CanonicalSize(items[i]);
    EXPECT_LE(bytes, kMaxDeletionChunkBytes);
    next = e;
  }
  EXPECT_EQ(next, items.size());
}

TEST(DeletionListTest, ManifestHashesTheWholeListAndEachChunk) {
  auto items = Items(10500);
  auto cuts = CutDeletionChunks(items);
  auto m = MakeDeletionManifest(items, cuts);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->item_count, 10500u);
  EXPECT_EQ(m->chunk_count, 3u);
  EXPECT_EQ(m->items_sha256, DeletionListSha256(items));
  ASSERT_EQ(m->chunk_sha256.size(), 3u);
  for (size_t c = 0; c < cuts.size(); ++c) {
    std::span<const DeletionItem> chunk(items.data() + cuts[c].first,
                                        cuts[c].second - cuts[c].first);
    EXPECT_EQ(m->chunk_sha256[c], DeletionChunkSha256(chunk));
  }
  // The list's hash does not depend on where it was cut; a chunk's and the list's differ.
  EXPECT_EQ(DeletionListSha256(items), m->items_sha256);
  EXPECT_NE(m->chunk_sha256[0], DeletionListSha256(std::span(items).first(5000)));
}

TEST(DeletionListTest, HashCoversEveryFieldAndOrderWithoutAmbiguity) {
  std::vector<DeletionItem> a = {{"ab", "c", Bytes(), "", ""}};
  std::vector<DeletionItem> b = {{"a", "bc", Bytes(), "", ""}};
  EXPECT_NE(DeletionListSha256(a), DeletionListSha256(b));  // lengths are framed
  auto items = Items(3);
  const Bytes base = DeletionListSha256(items);
  auto changed = items;
  changed[1].note = "n";
  EXPECT_NE(DeletionListSha256(changed), base);
  changed = items;
  changed[2].content_sha256.clear();
  EXPECT_NE(DeletionListSha256(changed), base);
  changed = items;
  changed[0].platform = "video-b";
  EXPECT_NE(DeletionListSha256(changed), base);
  changed = items;
  std::swap(changed[0], changed[1]);
  EXPECT_NE(DeletionListSha256(changed), base);
  EXPECT_EQ(DeletionListSha256(items), base);  // and it is deterministic
}

TEST(DeletionListTest, RefusesMoreThanTheLimit) {
  auto items = Items(kMaxDeletionRequestItems + 1, 1);
  auto cuts = CutDeletionChunks(items);
  EXPECT_TRUE(HasError(MakeDeletionManifest(items, cuts), Status::Code::kInvalidArgument,
                       "1 to 100000 items, not 100001"));
  items.pop_back();
  cuts = CutDeletionChunks(items);
  auto m = MakeDeletionManifest(items, cuts);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->chunk_count, 20u);
}

}  // namespace
}  // namespace refbus::schema
