#include "audit/scan.h"

#include "core/clock.h"

namespace refbus::audit {

std::string Describe(const LocalCheckpoint& c, uint64_t size) {
  return "checkpoint #" + std::to_string(c.seq) + " (size " + std::to_string(size) + ", received " +
         FormatUtc(c.received_at_ms) + ")";
}

Status ScanEntries(const LocalAuditStore& store, Scan& scan,
                   const std::function<void(uint64_t, ByteView)>& visit) {
  Status stop(Status::Code::kAlreadyExists, "gap");
  Status s = store.ForEachEntry([&](uint64_t key, ByteView bytes) -> Status {
    const uint64_t index = scan.tree.Size();
    if (key != index) {
      scan.gap = index;
      scan.next_key = key;
      return stop;
    }
    scan.tree.Append(keys::LeafHash(bytes));
    visit(index, bytes);
    return Status::Ok();
  });
  if (!s.ok() && !scan.gap) return s;
  return Status::Ok();
}

std::string GapMessage(const Scan& scan) {
  return "entry " + std::to_string(*scan.gap) +
         " is missing from the local store (the next stored entry is " +
         std::to_string(*scan.next_key) + ")";
}

// A checkpoint parsed without checking its signature (queries and reports only).
std::optional<keys::Checkpoint> ParseUnverified(std::string_view note) {
  auto n = keys::ParseSignedNote(note);
  if (!n.ok()) return std::nullopt;
  auto c = keys::ParseCheckpointBody(n->text);
  if (!c.ok()) return std::nullopt;
  return *c;
}

}  // namespace refbus::audit
