// The agent's linkage store (see linkage_store.h).
#include "agent/linkage_store.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "core/hash.h"

namespace refbus::agent {
namespace {

using Json = nlohmann::json;
constexpr size_t kLinkageStoreCheckBytes = 16;
constexpr size_t kLinkageIdBytes = 16;  // BLAKE2b-128 (PROTOCOL.md 13.6)

Bytes LinkageStoreCheck(std::string_view table, ByteView key, ByteView value) {
  Bytes in = ToBytes("refbus/v1/linkage-store");
  in.push_back(0);
  Append(in, ToBytes(table));
  in.push_back(0);
  AppendLengthPrefixed(in, key);
  Append(in, value);
  const Sha256Digest d = Sha256Array(in);
  return Bytes(d.begin(), d.begin() + kLinkageStoreCheckBytes);
}

Status PutChecked(lmdb::Txn& txn, MDB_dbi dbi, std::string_view table, ByteView key,
                  const Json& j) {
  Bytes value = ToBytes(j.dump());
  Append(value, LinkageStoreCheck(table, key, value));
  return txn.Put(dbi, key, value);
}

Result<Json> ReadChecked(std::string_view table, ByteView key, ByteView stored) {
  if (stored.size() < kLinkageStoreCheckBytes) {
    return Malformed("linkage store: a value in " + std::string(table) + " is truncated");
  }
  ByteView value = stored.first(stored.size() - kLinkageStoreCheckBytes);
  const Bytes check = LinkageStoreCheck(table, key, value);
  if (!std::equal(check.begin(), check.end(), stored.end() - kLinkageStoreCheckBytes)) {
    return Malformed("linkage store: a value in " + std::string(table) +
                     " does not match its checksum");
  }
  Json j = Json::parse(value.begin(), value.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Malformed("linkage store: a value in " + std::string(table) + " does not decode");
  }
  return j;
}

// Every value of a table, checked, in key order.
Result<std::vector<std::pair<Bytes, Json>>> ReadAll(const lmdb::Txn& txn, MDB_dbi dbi,
                                                    std::string_view table) {
  std::vector<std::pair<Bytes, Json>> out;
  REFBUS_ASSIGN_OR_RETURN(auto cur, lmdb::Cursor::Open(txn, dbi));
  REFBUS_ASSIGN_OR_RETURN(auto item, cur.First());
  while (item.has_value()) {
    REFBUS_ASSIGN_OR_RETURN(Json j, ReadChecked(table, item->key, item->value));
    out.emplace_back(Bytes(item->key.begin(), item->key.end()), std::move(j));
    REFBUS_ASSIGN_OR_RETURN(item, cur.Next());
  }
  return out;
}

Json LinkedJson(const std::vector<schema::LinkedAgency>& others) {
  Json a = Json::array();
  for (const auto& o : others) {
    a.push_back({{"agency", o.agency_id},
                 {"first_seen_ms", o.first_seen_ms},
                 {"last_seen_ms", o.last_seen_ms},
                 {"victims", o.victims},
                 {"items", o.items}});
  }
  return a;
}

// tag || agency || 0x00 [|| grant hex]: an agency's deposits on a tag share the prefix.
Bytes DepositPrefix(ByteView tag, std::string_view agency) {
  Bytes k(tag.begin(), tag.end());
  Append(k, ToBytes(agency));
  k.push_back(0);
  return k;
}

Json TallyRecordJson(const TallyRecord& t) {
  return {{"agency", t.agency},
          {"evidence", t.evidence},
          {"made_at_ms", t.made_at_ms},
          {"tally_sha256", t.tally_sha256},
          {"source", t.source},
          {"message_id", t.message_id},
          {"received_at_ms", t.received_at_ms}};
}

TallyRecord TallyRecordFrom(const Json& j) {
  return TallyRecord{j.value("agency", ""),
                     j.value("evidence", ""),
                     j.value("made_at_ms", UnixMillis{0}),
                     j.value("tally_sha256", ""),
                     j.value("source", ""),
                     j.value("message_id", ""),
                     j.value("received_at_ms", UnixMillis{0})};
}

DepositRecord DepositFrom(const Json& j) {
  return DepositRecord{j.value("agency", ""), j.value("grant_id", ""), j.value("case_ref", ""),
                       j.value("expires_ms", UnixMillis{0})};
}

}  // namespace

Result<std::unique_ptr<LinkageStore>> LinkageStore::Open(const std::string& dir,
                                                         uint32_t threshold) {
  std::unique_ptr<LinkageStore> s(new LinkageStore());
  lmdb::EnvOptions o;
  o.map_size_bytes = size_t{1} << 30;
  o.max_dbs = 8;
  REFBUS_ASSIGN_OR_RETURN(s->env_, lmdb::Env::Open(dir, o));
  REFBUS_ASSIGN_OR_RETURN(s->links_, s->env_->OpenDb(kLinksDb));
  REFBUS_ASSIGN_OR_RETURN(s->matches_, s->env_->OpenDb(kMatchesDb));
  REFBUS_ASSIGN_OR_RETURN(s->deposits_, s->env_->OpenDb(kEscrowDepositsDb));
  REFBUS_ASSIGN_OR_RETURN(s->tallies_, s->env_->OpenDb(kTalliesDb));
  REFBUS_ASSIGN_OR_RETURN(linkage::Escrow e, linkage::Escrow::Open(*s->env_, threshold));
  s->escrow_.emplace(std::move(e));
  return s;
}

Status LinkageStore::PutLink(const LinkRecord& l) {
  Json j = {
      {"link_id", l.link_id},       {"case_ref", l.case_ref},       {"kind", l.kind},
      {"grant_id", l.grant_id},     {"escrow", l.escrow},           {"message_id", l.message_id},
      {"operator", l.operator_ref}, {"added_at_ms", l.added_at_ms}, {"expires_ms", l.expires_ms}};
  REFBUS_ASSIGN_OR_RETURN(auto txn, env_->BeginWrite());
  REFBUS_RETURN_IF_ERROR(PutChecked(txn, links_, "links", ToBytes(l.link_id), j));
  return txn.Commit();
}

Result<std::vector<LinkRecord>> LinkageStore::Links() const {
  REFBUS_ASSIGN_OR_RETURN(auto txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(auto all, ReadAll(txn, links_, "links"));
  std::vector<LinkRecord> out;
  for (const auto& [key, j] : all) {
    out.push_back(LinkRecord{j.value("link_id", ""), j.value("case_ref", ""), j.value("kind", ""),
                             j.value("grant_id", ""), j.value("escrow", ""),
                             j.value("message_id", ""), j.value("operator", ""),
                             j.value("added_at_ms", UnixMillis{0}),
                             j.value("expires_ms", UnixMillis{0})});
  }
  return out;
}

nlohmann::json MatchJson(const MatchRecord& m) {
  return {{"linkage_id", m.linkage_id},
          {"case_ref", m.case_ref},
          {"kind", m.kind},
          {"escrow", m.escrow},
          {"message_id", m.message_id},
          {"others", LinkedJson(m.others)},
          {"matched_at_ms", m.matched_at_ms},
          {"received_at_ms", m.received_at_ms}};
}

Status LinkageStore::PutMatch(const MatchRecord& m) {
  const Json j = MatchJson(m);
  REFBUS_ASSIGN_OR_RETURN(auto txn, env_->BeginWrite());
  REFBUS_RETURN_IF_ERROR(
      PutChecked(txn, matches_, "matches", ToBytes(m.linkage_id + "/" + m.case_ref), j));
  return txn.Commit();
}

Status LinkageStore::PutTally(const std::string& linkage_id_hex, const TallyRecord& tally) {
  REFBUS_ASSIGN_OR_RETURN(auto txn, env_->BeginWrite());
  REFBUS_RETURN_IF_ERROR(PutChecked(txn, tallies_, "tallies",
                                    ToBytes(linkage_id_hex + "/" + tally.agency),
                                    TallyRecordJson(tally)));
  return txn.Commit();
}

Result<TallyPut> LinkageStore::PutTallyIfNewer(const std::string& linkage_id_hex,
                                               const TallyRecord& tally,
                                               UnixMillis* held_made_at_ms) {
  const Bytes key = ToBytes(linkage_id_hex + "/" + tally.agency);
  REFBUS_ASSIGN_OR_RETURN(auto txn, env_->BeginWrite());
  auto stored = txn.Get(tallies_, key);
  if (stored.ok()) {
    REFBUS_ASSIGN_OR_RETURN(Json j, ReadChecked("tallies", key, *stored));
    const TallyRecord held = TallyRecordFrom(j);
    *held_made_at_ms = held.made_at_ms;
    if (held.tally_sha256 == tally.tally_sha256) return TallyPut::kSame;
    if (held.made_at_ms >= tally.made_at_ms) return TallyPut::kOlder;
  } else if (stored.status().code() != Status::Code::kNotFound) {
    return stored.status();
  }
  REFBUS_RETURN_IF_ERROR(PutChecked(txn, tallies_, "tallies", key, TallyRecordJson(tally)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return TallyPut::kStored;
}

Result<std::vector<TallyRecord>> LinkageStore::TallyRecords(
    const std::string& linkage_id_hex) const {
  REFBUS_ASSIGN_OR_RETURN(auto txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(auto all, ReadAll(txn, tallies_, "tallies"));
  std::vector<TallyRecord> out;
  const std::string prefix = linkage_id_hex + "/";
  for (const auto& [key, j] : all) {
    const std::string_view k = AsChars(key);
    if (k.substr(0, prefix.size()) != prefix) continue;
    TallyRecord r = TallyRecordFrom(j);
    if (r.agency.empty()) r.agency = std::string(k.substr(prefix.size()));  // kept before 13.8
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::vector<std::string>> LinkageStore::Tallies(const std::string& linkage_id_hex) const {
  REFBUS_ASSIGN_OR_RETURN(auto records, TallyRecords(linkage_id_hex));
  std::vector<std::string> out;
  for (TallyRecord& r : records) out.push_back(std::move(r.evidence));
  return out;
}

Result<Bytes> LinkageStore::HeldLinkageId(const std::string& hex) const {
  auto id = HexDecode(hex);
  if (!id.ok() || id->size() != kLinkageIdBytes || HexEncode(*id) != hex) {
    return InvalidArgument("a linkage id is 32 lowercase hex digits");
  }
  REFBUS_ASSIGN_OR_RETURN(auto matches, Matches());
  for (const MatchRecord& m : matches) {
    if (m.linkage_id == hex) return std::move(*id);
  }
  return FailedPrecondition("this agency holds no linkage notice with id " + hex +
                            ": it tallies only linkages it was told of");
}

Result<std::vector<MatchRecord>> LinkageStore::Matches() const {
  REFBUS_ASSIGN_OR_RETURN(auto txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(auto all, ReadAll(txn, matches_, "matches"));
  std::vector<MatchRecord> out;
  for (const auto& [key, j] : all) {
    MatchRecord m{j.value("linkage_id", ""),
                  j.value("case_ref", ""),
                  j.value("kind", ""),
                  j.value("escrow", ""),
                  j.value("message_id", ""),
                  {},
                  j.value("matched_at_ms", UnixMillis{0}),
                  j.value("received_at_ms", UnixMillis{0})};
    for (const auto& o : j.value("others", Json::array())) {
      m.others.push_back({o.value("agency", ""), o.value("first_seen_ms", UnixMillis{0}),
                          o.value("last_seen_ms", UnixMillis{0}), o.value("victims", 0u),
                          o.value("items", 0u)});
    }
    out.push_back(std::move(m));
  }
  return out;
}

Result<std::optional<linkage::LinkageMatch>> LinkageStore::Deposit(
    const DepositRecord& from, const linkage::EscrowEntry& entry, UnixMillis now) {
  // A malformed entry is refused before anything of it is written: no deposit names it,
  // and the agency's earlier share on the tag stays as it was.
  REFBUS_RETURN_IF_ERROR(linkage::CheckEscrowEntry(entry, now));
  // The share stays as long as the agency's longest-kept case holds it.
  linkage::EscrowEntry kept = entry;
  REFBUS_ASSIGN_OR_RETURN(auto earlier, DepositsOf(entry.tag, from.agency));
  for (const DepositRecord& d : earlier) {
    if (d.grant_id != from.grant_id && d.expires_ms > now) {
      kept.expires_ms = std::max(kept.expires_ms, d.expires_ms);
    }
  }
  // Where the share came from first: a crash before the share is stored leaves a deposit
  // naming nothing, which a withdrawal or expiry removes without effect.
  {
    Json j = {{"agency", from.agency},
              {"grant_id", from.grant_id},
              {"case_ref", from.case_ref},
              {"expires_ms", entry.expires_ms}};
    Bytes key = DepositPrefix(entry.tag, from.agency);
    Append(key, ToBytes(from.grant_id));
    REFBUS_ASSIGN_OR_RETURN(auto txn, env_->BeginWrite());
    REFBUS_RETURN_IF_ERROR(PutChecked(txn, deposits_, "escrow_deposits", key, j));
    REFBUS_RETURN_IF_ERROR(txn.Commit());
  }
  return escrow_->Add(from.agency, kept, now);
}

Result<std::vector<DepositRecord>> LinkageStore::DepositsOf(ByteView tag,
                                                            std::string_view agency) const {
  REFBUS_ASSIGN_OR_RETURN(auto txn, env_->BeginRead());
  const Bytes prefix = DepositPrefix(tag, agency);
  std::vector<DepositRecord> out;
  REFBUS_ASSIGN_OR_RETURN(auto cur, lmdb::Cursor::Open(txn, deposits_));
  REFBUS_ASSIGN_OR_RETURN(auto item, cur.Seek(prefix));
  while (item.has_value() && item->key.size() > prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), item->key.begin())) {
    REFBUS_ASSIGN_OR_RETURN(Json j, ReadChecked("escrow_deposits", item->key, item->value));
    out.push_back(DepositFrom(j));
    REFBUS_ASSIGN_OR_RETURN(item, cur.Next());
  }
  return out;
}

Result<std::vector<std::pair<Bytes, DepositRecord>>> LinkageStore::AllDeposits() const {
  REFBUS_ASSIGN_OR_RETURN(auto txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(auto all, ReadAll(txn, deposits_, "escrow_deposits"));
  std::vector<std::pair<Bytes, DepositRecord>> out;
  for (auto& [key, j] : all) out.emplace_back(std::move(key), DepositFrom(j));
  return out;
}

Status LinkageStore::DropDeposits(const std::vector<std::pair<Bytes, DepositRecord>>& gone) {
  {
    REFBUS_ASSIGN_OR_RETURN(auto txn, env_->BeginWrite());
    for (const auto& [key, d] : gone) {
      Status s = txn.Del(deposits_, key);
      if (!s.ok() && s.code() != Status::Code::kNotFound) return s;
    }
    REFBUS_RETURN_IF_ERROR(txn.Commit());
  }
  for (const auto& [key, d] : gone) {
    const ByteView tag = ByteView(key).first(linkage::kEscrowTagBytes);
    REFBUS_ASSIGN_OR_RETURN(auto left, DepositsOf(tag, d.agency));
    if (left.empty()) REFBUS_RETURN_IF_ERROR(escrow_->Withdraw(d.agency, tag).status());
  }
  return Status::Ok();
}

// A linear scan of the deposits: the escrow holds one per agency, identifier and case, and
// a revocation is rare next to entries. An index by grant is the step when that changes.
Result<uint64_t> LinkageStore::WithdrawGrant(const std::string& grant_hex) {
  REFBUS_ASSIGN_OR_RETURN(auto all, AllDeposits());
  std::vector<std::pair<Bytes, DepositRecord>> gone;
  for (auto& d : all) {
    if (d.second.grant_id == grant_hex) gone.push_back(std::move(d));
  }
  REFBUS_RETURN_IF_ERROR(DropDeposits(gone));
  return gone.size();
}

Result<uint64_t> LinkageStore::Expire(UnixMillis now) {
  REFBUS_ASSIGN_OR_RETURN(auto all, AllDeposits());
  std::vector<std::pair<Bytes, DepositRecord>> gone;
  for (auto& d : all) {
    if (d.second.expires_ms <= now) gone.push_back(std::move(d));
  }
  REFBUS_RETURN_IF_ERROR(DropDeposits(gone));
  // Shares whose own expiry passed (a deposit lost in a crash cannot keep one).
  REFBUS_RETURN_IF_ERROR(escrow_->ExpireBefore(now).status());
  return gone.size();
}

Result<uint64_t> LinkageStore::HeldEntries() const {
  REFBUS_ASSIGN_OR_RETURN(auto txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(auto all, ReadAll(txn, deposits_, "escrow_deposits"));
  return static_cast<uint64_t>(all.size());
}

}  // namespace refbus::agent
