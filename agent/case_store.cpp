#include "agent/case_store.h"

#include <cstring>

#include "core/hash.h"

namespace refbus::agent {
namespace {

constexpr const char* kNames[] = {"grants",
                                  "referrals",
                                  "handoffs",
                                  "deletions",
                                  "cases",
                                  "local",
                                  "messages",
                                  "outgoing",
                                  "meta",
                                  "deletion-chunks",
                                  "deletion-history",
                                  "deletion-work",
                                  "deletion-work-index",
                                  "watch-parts"};
constexpr size_t kHash = 32;

Status Damaged(Table t, const std::string& key, std::string_view why) {
  return Malformed(std::string("case store ") + kNames[static_cast<size_t>(t)] + " record '" + key +
                   "' is damaged (" + std::string(why) + ")");
}

}  // namespace

Result<std::unique_ptr<CaseStore>> CaseStore::Open(const std::string& dir) {
  std::unique_ptr<CaseStore> s(new CaseStore());
  lmdb::EnvOptions o;
  o.map_size_bytes = size_t{1} << 30;
  o.max_dbs = 16;
  REFBUS_ASSIGN_OR_RETURN(s->env_, lmdb::Env::Open(dir, o));
  for (size_t i = 0; i < std::size(kNames); ++i) {
    REFBUS_ASSIGN_OR_RETURN(s->dbis_[i], s->env_->OpenDb(kNames[i]));
  }
  return s;
}

Result<CaseStore::Txn> CaseStore::Begin(bool write) {
  if (write) {
    REFBUS_ASSIGN_OR_RETURN(lmdb::Txn t, env_->BeginWrite());
    return Txn(*this, std::move(t));
  }
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn t, env_->BeginRead());
  return Txn(*this, std::move(t));
}

Result<std::optional<nlohmann::json>> CaseStore::Txn::Get(Table t, const std::string& key) const {
  auto v = txn_.Get(store_.Dbi(t), AsBytes(key));
  if (!v.ok()) {
    if (v.status().code() == Status::Code::kNotFound) return std::optional<nlohmann::json>();
    return v.status();
  }
  if (v->size() < kHash) return Damaged(t, key, "too short");
  ByteView body = v->subspan(kHash);
  Sha256Digest h = Sha256Array(body);
  if (std::memcmp(h.data(), v->data(), kHash) != 0) return Damaged(t, key, "hash mismatch");
  auto j = nlohmann::json::parse(AsChars(body), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Damaged(t, key, "not JSON");
  return std::optional<nlohmann::json>(std::move(j));
}

Status CaseStore::Txn::Put(Table t, const std::string& key, const nlohmann::json& value) {
  std::string text = value.dump();
  Sha256Digest h = Sha256Array(AsBytes(text));
  Bytes out(h.begin(), h.end());
  Append(out, AsBytes(text));
  return txn_.Put(store_.Dbi(t), AsBytes(key), out);
}

Status CaseStore::Txn::Del(Table t, const std::string& key) {
  Status s = txn_.Del(store_.Dbi(t), AsBytes(key));
  if (!s.ok() && s.code() == Status::Code::kNotFound) return Status::Ok();
  return s;
}

Result<std::vector<std::pair<std::string, nlohmann::json>>> CaseStore::Txn::List(Table t) const {
  std::vector<std::pair<std::string, nlohmann::json>> out;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor c, lmdb::Cursor::Open(txn_, store_.Dbi(t)));
  REFBUS_ASSIGN_OR_RETURN(auto item, c.First());
  while (item) {
    std::string key(AsChars(item->key));
    REFBUS_ASSIGN_OR_RETURN(auto j, Get(t, key));
    if (j) out.emplace_back(std::move(key), std::move(*j));
    REFBUS_ASSIGN_OR_RETURN(item, c.Next());
  }
  return out;
}

Result<std::vector<std::pair<std::string, nlohmann::json>>> CaseStore::Txn::ListPrefix(
    Table t, const std::string& prefix) const {
  std::vector<std::pair<std::string, nlohmann::json>> out;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor c, lmdb::Cursor::Open(txn_, store_.Dbi(t)));
  REFBUS_ASSIGN_OR_RETURN(auto item, c.Seek(AsBytes(prefix)));
  while (item) {
    std::string key(AsChars(item->key));
    if (key.compare(0, prefix.size(), prefix) != 0) break;
    REFBUS_ASSIGN_OR_RETURN(auto j, Get(t, key));
    if (j) out.emplace_back(std::move(key), std::move(*j));
    REFBUS_ASSIGN_OR_RETURN(item, c.Next());
  }
  return out;
}

}  // namespace refbus::agent
