#include "schema/deletion_list.h"

#include <string>
#include <string_view>

#include "core/hash.h"

namespace refbus::schema {
namespace {

constexpr std::string_view kListDomain = "refbus/deletion-items/v1\n";
constexpr std::string_view kChunkDomain = "refbus/deletion-chunk/v1\n";

void Field(Sha256Hasher& h, ByteView b) {
  const auto n = static_cast<uint32_t>(b.size());
  const uint8_t len[4] = {static_cast<uint8_t>(n >> 24), static_cast<uint8_t>(n >> 16),
                          static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)};
  h.Update(ByteView(len, 4));
  h.Update(b);
}

Bytes HashItems(std::string_view domain, std::span<const DeletionItem> items) {
  Sha256Hasher h;
  h.Update(AsBytes(domain));
  for (const auto& i : items) {
    Field(h, AsBytes(i.item_id));
    Field(h, AsBytes(i.url));
    Field(h, i.content_sha256);
    Field(h, AsBytes(i.platform));
    Field(h, AsBytes(i.note));
  }
  Sha256Digest d = h.Finish();
  return Bytes(d.begin(), d.end());
}

}  // namespace

size_t CanonicalSize(const DeletionItem& i) {
  return 5 * 4 + i.item_id.size() + i.url.size() + i.content_sha256.size() + i.platform.size() +
         i.note.size();
}

Bytes DeletionListSha256(std::span<const DeletionItem> items) {
  return HashItems(kListDomain, items);
}

Bytes DeletionChunkSha256(std::span<const DeletionItem> items) {
  return HashItems(kChunkDomain, items);
}

std::vector<std::pair<size_t, size_t>> CutDeletionChunks(std::span<const DeletionItem> items) {
  std::vector<std::pair<size_t, size_t>> cuts;
  size_t begin = 0;
  size_t bytes = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const size_t size = CanonicalSize(items[i]);
    if (i > begin &&
        (i - begin == kMaxDeletionChunkItems || bytes + size > kMaxDeletionChunkBytes)) {
      cuts.emplace_back(begin, i);
      begin = i;
      bytes = 0;
    }
    bytes += size;
  }
  if (begin < items.size()) cuts.emplace_back(begin, items.size());
  return cuts;
}

Result<DeletionManifest> MakeDeletionManifest(std::span<const DeletionItem> items,
                                              const std::vector<std::pair<size_t, size_t>>& cuts) {
  if (items.empty() || items.size() > kMaxDeletionRequestItems) {
    return InvalidArgument("a deletion request holds 1 to " +
                           std::to_string(kMaxDeletionRequestItems) + " items, not " +
                           std::to_string(items.size()) + "; split it into several requests");
  }
  if (cuts.empty() || cuts.size() > kMaxDeletionChunks) {
    return InvalidArgument("a deletion request travels in 1 to " +
                           std::to_string(kMaxDeletionChunks) + " chunks, not " +
                           std::to_string(cuts.size()) + "; split it into several requests");
  }
  DeletionManifest m;
  m.item_count = static_cast<uint32_t>(items.size());
  m.items_sha256 = DeletionListSha256(items);
  m.chunk_count = static_cast<uint32_t>(cuts.size());
  for (const auto& [b, e] : cuts)
    m.chunk_sha256.push_back(DeletionChunkSha256(items.subspan(b, e - b)));
  return m;
}

}  // namespace refbus::schema
