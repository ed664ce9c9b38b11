// TransportStore: the home broker's latest checkpoint, kept in the meta table
// (agent/transport_store.h). Record: SHA-256(body) || body, body = u8 version (1) ||
// u64be size || root (32) || u64be received_ms || u32be broker id length || broker id ||
// note.
#include <cstring>
#include <string_view>

#include "agent/transport_store.h"

namespace refbus::agent {
namespace {

constexpr std::string_view kCheckpointKey = "latest_checkpoint";
constexpr uint8_t kCheckpointVersion = 1;
constexpr size_t kRootBytes = 32;

void AppendBe(Bytes& out, uint64_t v, size_t bytes) {
  for (size_t i = bytes; i > 0; --i) out.push_back(static_cast<uint8_t>(v >> (8 * (i - 1))));
}

uint64_t ReadBe(ByteView b, size_t at, size_t bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < bytes; ++i) v = (v << 8) | b[at + i];
  return v;
}

Status Damaged(std::string_view why) {
  return Malformed("agent store: the kept checkpoint is damaged (" + std::string(why) + ")");
}

}  // namespace

Status TransportStore::KeepCheckpoint(const KeptCheckpoint& c) {
  if (c.root.size() != kRootBytes) return InvalidArgument("a checkpoint root is 32 bytes");
  Bytes body;
  body.push_back(kCheckpointVersion);
  AppendBe(body, c.size, 8);
  Append(body, c.root);
  AppendBe(body, c.received_ms, 8);
  AppendBe(body, c.broker_id.size(), 4);
  Append(body, AsBytes(c.broker_id));
  Append(body, AsBytes(c.note));
  Bytes record = Sha256(body);
  Append(record, body);
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginWrite());
  REFBUS_RETURN_IF_ERROR(txn.Put(meta_, AsBytes(kCheckpointKey), record));
  return txn.Commit();
}

Result<std::optional<KeptCheckpoint>> TransportStore::LatestCheckpoint() const {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  auto v = txn.Get(meta_, AsBytes(kCheckpointKey));
  if (!v.ok()) {
    if (v.status().code() == Status::Code::kNotFound) return std::optional<KeptCheckpoint>();
    return v.status();
  }
  const ByteView rec = *v;
  constexpr size_t kFixed = 1 + 8 + kRootBytes + 8 + 4;
  if (rec.size() < kSha256Bytes + kFixed) return Damaged("too short");
  const ByteView body = rec.subspan(kSha256Bytes);
  const Bytes h = Sha256(body);
  if (std::memcmp(h.data(), rec.data(), kSha256Bytes) != 0) return Damaged("hash mismatch");
  if (body[0] != kCheckpointVersion) return Damaged("unknown version");
  KeptCheckpoint c;
  c.size = ReadBe(body, 1, 8);
  c.root.assign(body.begin() + 9, body.begin() + 9 + kRootBytes);
  c.received_ms = ReadBe(body, 9 + kRootBytes, 8);
  const uint64_t id_len = ReadBe(body, 17 + kRootBytes, 4);
  if (body.size() - kFixed < id_len) return Damaged("truncated");
  const std::string_view rest = AsChars(body.subspan(kFixed));
  c.broker_id = std::string(rest.substr(0, id_len));
  c.note = std::string(rest.substr(id_len));
  return std::optional<KeptCheckpoint>(std::move(c));
}

}  // namespace refbus::agent
