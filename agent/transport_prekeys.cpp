// TransportStore: the newest published prekey of each other agency (PROTOCOL.md "Prekey
// publication"), kept in the meta table so that a restarted agent seals to the prekeys it
// learned before (agent/transport_store.h). Record: SHA-256(bytes) || bytes. Also the version
// of this agency's operator roster last queued for the broker (PROTOCOL.md 9.3).
#include <spdlog/spdlog.h>

#include <cstring>
#include <string>

#include "agent/transport_store.h"

namespace refbus::agent {
namespace {

constexpr std::string_view kPrekeyKeyPrefix = "prekey/";
constexpr std::string_view kRosterVersionKey = "roster/queued-version";

}  // namespace

Status TransportStore::KeepPublishedPrekey(const std::string& owner, ByteView signed_prekey) {
  const std::string key = std::string(kPrekeyKeyPrefix) + owner;
  Bytes record = Sha256(signed_prekey);
  Append(record, signed_prekey);
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginWrite());
  REFBUS_RETURN_IF_ERROR(txn.Put(meta_, AsBytes(key), record));
  return txn.Commit();
}

Result<uint64_t> TransportStore::QueuedRosterVersion() const {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  auto v = txn.Get(meta_, AsBytes(kRosterVersionKey));
  if (!v.ok()) {
    if (v.status().code() == Status::Code::kNotFound) return uint64_t{0};
    return v.status();
  }
  if (v->size() != 8) return Malformed("agent store: the queued roster version is damaged");
  uint64_t out = 0;
  for (auto b : *v) out = (out << 8) | static_cast<uint64_t>(b);
  return out;
}

Status TransportStore::KeepQueuedRosterVersion(uint64_t version) {
  Bytes v(8);
  for (size_t i = 0; i < 8; ++i) v[7 - i] = static_cast<uint8_t>((version >> (8 * i)) & 0xff);
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginWrite());
  REFBUS_RETURN_IF_ERROR(txn.Put(meta_, AsBytes(kRosterVersionKey), v));
  return txn.Commit();
}

Result<std::vector<Bytes>> TransportStore::PublishedPrekeys() const {
  std::vector<Bytes> out;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor cur, lmdb::Cursor::Open(txn, meta_));
  REFBUS_ASSIGN_OR_RETURN(auto item, cur.Seek(AsBytes(kPrekeyKeyPrefix)));
  while (item && AsChars(item->key).starts_with(kPrekeyKeyPrefix)) {
    const ByteView rec = item->value;
    if (rec.size() > kSha256Bytes &&
        std::memcmp(Sha256(rec.subspan(kSha256Bytes)).data(), rec.data(), kSha256Bytes) == 0) {
      out.emplace_back(rec.begin() + kSha256Bytes, rec.end());
    } else {
      spdlog::error("agent store: the kept prekey {} is damaged; left out",
                    std::string(AsChars(item->key)));
    }
    REFBUS_ASSIGN_OR_RETURN(item, cur.Next());
  }
  return out;
}

}  // namespace refbus::agent
