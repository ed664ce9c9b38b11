// The canonical form of a deletion request's item list (PROTOCOL.md 10.1): how a request of
// up to kMaxDeletionRequestItems items is cut into chunks, and the SHA-256 values of its
// manifest (over the whole list, and over each chunk) that let a deletion center know it
// holds exactly the list the requester sent.
//
// Canonical encoding of one item: for each of item_id, url, content_sha256, platform and
// note in that order, its length as 4 bytes big-endian, then its bytes. The list's hash is
// SHA-256 of the domain "refbus/deletion-items/v1\n" followed by every item's encoding in
// request order; a chunk's hash uses "refbus/deletion-chunk/v1\n" and the chunk's items.
//
// Thread safety: free functions over values.
#ifndef REFBUS_SCHEMA_DELETION_LIST_H_
#define REFBUS_SCHEMA_DELETION_LIST_H_

#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "schema/workflow.h"

namespace refbus::schema {

// The canonical bytes of one chunk's items stay under this (the case message cap is
// kMaxCaseMessageBytes; the rest is room for the signed grant, the manifest and protobuf's
// own framing). The largest item allowed (2 KiB URL, 512-byte note) is under 3 KiB.
inline constexpr size_t kMaxDeletionChunkBytes = size_t{1} << 20;

// The canonical encoding's length for one item.
size_t CanonicalSize(const DeletionItem& item);

// SHA-256 over the whole list (32 bytes), and over one chunk's items.
Bytes DeletionListSha256(std::span<const DeletionItem> items);
Bytes DeletionChunkSha256(std::span<const DeletionItem> items);

// Where the list is cut: [begin, end) of each chunk, in order. A chunk holds at most
// kMaxDeletionChunkItems items and kMaxDeletionChunkBytes canonical bytes.
// REQUIRES: items is not empty.
std::vector<std::pair<size_t, size_t>> CutDeletionChunks(std::span<const DeletionItem> items);

// The manifest of items cut at `cuts`. kInvalidArgument above kMaxDeletionRequestItems
// items or kMaxDeletionChunks chunks.
Result<DeletionManifest> MakeDeletionManifest(std::span<const DeletionItem> items,
                                              const std::vector<std::pair<size_t, size_t>>& cuts);

}  // namespace refbus::schema

#endif  // REFBUS_SCHEMA_DELETION_LIST_H_
