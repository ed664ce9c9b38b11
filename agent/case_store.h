// CaseStore: an agency's workflow state in LMDB (its own environment, <data_dir>/cases):
// grants, referrals, handoffs, deletion requests, cases and local case numbers, and what
// the engine learnt about each delivered message. Values are JSON documents prefixed with
// their SHA-256 (checked on every read: LMDB has no checksums); a damaged value is
// reported as kMalformed naming the table and key, never returned.
//
// No case content is stored here in the clear: only ids, pseudonyms, states, agency ids,
// categories, operator references, times and fixed words (enum names, "consent revoked").
// Content stays sealed in the transport store's inbox; the free text the engine keeps
// (reasons) is stored sealed under its grant's data key (agent/case_crypto.h, records.h
// CaseText), so that destroying the key shreds it in this store's freed pages and
// backups too. Item ids of deletion requests are the requester's identifiers, kept plain.
//
// Thread safety: one thread; one CaseStore per directory per process (locked).
#ifndef REFBUS_AGENT_CASE_STORE_H_
#define REFBUS_AGENT_CASE_STORE_H_

#include <lmdb.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/lmdb.h"
#include "core/status.h"

namespace refbus::agent {

enum class Table {
  kGrants,     // grant id (hex) -> grant record
  kReferrals,  // referral id (hex) -> referral record
  kHandoffs,   // handoff id (hex) -> handoff record
  kDeletions,  // request id (hex) -> deletion record
  kCases,      // case_ref -> case record
  kLocal,      // local case number -> {"case_ref": ...}
  kMessages,   // message id (hex) -> what the engine learnt about a delivered message
  kOutgoing,   // message id (hex) -> what this agency sent (for refusals by the broker)
  kMeta,       // "processed_seq" -> {"seq": N}
  // Chunked deletion requests (agent/records.h): "<request id>/<chunk, 6 digits>" -> chunk
  // (items sealed), and "<request id>/<item id>" -> the item's reported history.
  kDeletionChunks,
  kDeletionHistory,
  // The deletion center's work queue (agent/deletion_work.h): work id -> work item, and
  // "u:<url key>" / "h:<content sha256>" -> work id.
  kDeletionWork,
  kDeletionWorkIndex,
  // A watch-list file arriving in parts (agent/watch_parts.h): "h:<sender>" -> what is
  // staged of the sender's file, "p:<sender>/<part, 3 digits>" -> a part's bytes.
  kWatchParts,
};

class CaseStore {
 public:
  static Result<std::unique_ptr<CaseStore>> Open(const std::string& dir);

  class Txn {
   public:
    // nullopt if absent; kMalformed if damaged.
    Result<std::optional<nlohmann::json>> Get(Table t, const std::string& key) const;
    Status Put(Table t, const std::string& key, const nlohmann::json& value);
    Status Del(Table t, const std::string& key);
    // Every (key, value) of a table, in key order.
    Result<std::vector<std::pair<std::string, nlohmann::json>>> List(Table t) const;
    // Those whose key starts with prefix, in key order.
    Result<std::vector<std::pair<std::string, nlohmann::json>>> ListPrefix(
        Table t, const std::string& prefix) const;
    Status Commit() { return txn_.Commit(); }

   private:
    friend class CaseStore;
    Txn(const CaseStore& store, lmdb::Txn txn) : store_(store), txn_(std::move(txn)) {}
    const CaseStore& store_;
    lmdb::Txn txn_;
  };

  Result<Txn> Begin(bool write);

 private:
  CaseStore() = default;
  MDB_dbi Dbi(Table t) const { return dbis_[static_cast<size_t>(t)]; }
  std::unique_ptr<lmdb::Env> env_;
  MDB_dbi dbis_[14] = {};
};

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_CASE_STORE_H_
