// Store: the version of the last operator roster recorded for each agency (PROTOCOL.md 9.3),
// kept in the meta table as "roster-version/AGENCY" -> u64be, written in the same commit as
// the OPERATOR_ROSTER entry that records the roster itself.
#include <string_view>

#include "broker/store.h"
#include "broker/store_records.h"

namespace refbus::broker {
namespace {

constexpr std::string_view kRosterVersionPrefix = "roster-version/";

}  // namespace

Status Store::PutRosterVersions(lmdb::Txn& txn,
                                const std::vector<std::pair<std::string, uint64_t>>& versions) {
  for (const auto& [agency, version] : versions) {
    const std::string key = std::string(kRosterVersionPrefix) + agency;
    REFBUS_RETURN_IF_ERROR(records::PutU64(txn, meta_, AsBytes(key), version));
  }
  return Status::Ok();
}

Result<std::map<std::string, uint64_t>> Store::RosterVersions() const {
  std::map<std::string, uint64_t> out;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, env_->BeginRead());
  REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor cur, lmdb::Cursor::Open(txn, meta_));
  REFBUS_ASSIGN_OR_RETURN(auto item, cur.Seek(AsBytes(kRosterVersionPrefix)));
  while (item && AsChars(item->key).starts_with(kRosterVersionPrefix)) {
    const std::string agency(AsChars(item->key).substr(kRosterVersionPrefix.size()));
    REFBUS_ASSIGN_OR_RETURN(out[agency], records::GetU64(txn, meta_, item->key));
    REFBUS_ASSIGN_OR_RETURN(item, cur.Next());
  }
  return out;
}

}  // namespace refbus::broker
