#include "broker/backup.h"

#include <chrono>
#include <memory>
#include <utility>

#include "broker/audit_log.h"
#include "broker/store.h"
#include "core/bytes.h"
#include "core/lmdb.h"

namespace refbus::broker {
namespace {

// The store formats broker/store.cpp writes. A format-1 store has no audit tree yet (it
// gets one at its first Open by a newer broker): its backup records the log's size only.

// Reads the facts a restore is checked against from the copy itself, and checks the copy
// as Store::Open checks a store (without writing to it).
Status ReadFacts(lmdb::Env& copy, const Config& config, BrokerBackupReport& report) {
  auto& facts = report.manifest.facts;
  REFBUS_ASSIGN_OR_RETURN(MDB_dbi meta, copy.FindDb("meta"));
  REFBUS_ASSIGN_OR_RETURN(MDB_dbi entries, copy.FindDb("audit"));
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn txn, copy.BeginRead());
  auto format = txn.Get(meta, AsBytes("format"));
  if (!format.ok()) return format.status().WithContext("the copy has no store format");
  auto owner = txn.Get(meta, AsBytes("broker_id"));
  if (!owner.ok()) return owner.status().WithContext("the copy names no broker");
  std::string format_text(AsChars(*format)), owner_text(AsChars(*owner));
  if (owner_text != config.id) {
    return FailedPrecondition(config.data_dir + " is the store of broker '" + owner_text +
                              "', not of '" + config.id + "' (the id in the configuration)");
  }
  facts["broker_id"] = owner_text;
  facts["store_format"] = format_text;
  if (format_text == kStoreFormatV1) {
    REFBUS_ASSIGN_OR_RETURN(report.audit_size, txn.Count(entries));
    facts["audit_size"] = report.audit_size;
    return Status::Ok();
  }
  if (format_text != kStoreFormat && format_text != kStoreFormatV2) {  // the same audit tables
    return FailedPrecondition("the store's format is '" + format_text +
                              "', which this version of refbus-broker does not know");
  }
  txn.Abort();
  AuditDbs dbs;
  dbs.meta = meta;
  dbs.entries = entries;
  REFBUS_ASSIGN_OR_RETURN(dbs.tree, copy.FindDb("audit_tree"));
  REFBUS_ASSIGN_OR_RETURN(dbs.checkpoints, copy.FindDb("checkpoints"));
  REFBUS_ASSIGN_OR_RETURN(lmdb::Txn check, copy.BeginRead());
  auto size = CheckAuditState(check, dbs);
  if (!size.ok())
    return size.status().WithContext("the copy's audit log fails the start-up checks");
  REFBUS_ASSIGN_OR_RETURN(keys::MerkleFrontier frontier, LoadFrontier(check, dbs));
  report.audit_size = *size;
  report.audit_root = HexEncode(frontier.Root());
  facts["audit_size"] = report.audit_size;
  facts["audit_root"] = report.audit_root;
  REFBUS_ASSIGN_OR_RETURN(auto latest, LatestCheckpoint(check, dbs));
  if (latest) facts["checkpoint_size"] = latest->checkpoint.size;
  return Status::Ok();
}

}  // namespace

Result<BrokerBackupReport> BackupBroker(const Config& config, const std::string& out_dir) {
  auto start = std::chrono::steady_clock::now();
  BrokerBackupReport report;
  REFBUS_ASSIGN_OR_RETURN(auto writer, lmdb::BackupWriter::Create(out_dir));
  REFBUS_RETURN_IF_ERROR(writer->AddEnvironment(kBrokerStoreEnvironment, config.data_dir).status());
  writer->manifest().kind = kBrokerBackupKind;
  writer->manifest().id = config.id;
  {
    REFBUS_ASSIGN_OR_RETURN(auto copy, writer->OpenCopy(kBrokerStoreEnvironment, 32));
    REFBUS_RETURN_IF_ERROR(ReadFacts(*copy, config, report));
  }
  for (auto& [k, v] : report.manifest.facts) writer->manifest().facts[k] = v;
  REFBUS_ASSIGN_OR_RETURN(report.manifest_sha256, writer->Finish());
  report.manifest = writer->manifest();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

Result<BrokerRestoreReport> RestoreBroker(const Config& config, const std::string& from_dir) {
  BrokerRestoreReport report;
  REFBUS_ASSIGN_OR_RETURN(
      auto restorer,
      lmdb::Restorer::Begin(from_dir, kBrokerBackupKind, config.id,
                            {lmdb::RestoreTarget{kBrokerStoreEnvironment, config.data_dir}}));
  report.manifest = restorer->manifest();
  report.manifest_sha256 = restorer->manifest_sha256();
  const lmdb::BackupManifest& m = report.manifest;
  {
    StoreOptions so;
    so.dir = restorer->StagingDir(kBrokerStoreEnvironment);
    so.broker_id = config.id;
    so.map_size_bytes = size_t{config.map_size_mb} << 20;
    so.mailbox_quota = config.mailbox_quota;
    auto store = Store::Open(so);
    if (!store.ok()) {
      return store.status().WithContext("the restored store fails the broker's start-up checks");
    }
    REFBUS_ASSIGN_OR_RETURN(report.audit_size, (*store)->AuditSize());
    REFBUS_ASSIGN_OR_RETURN(keys::Hash root, (*store)->AuditRoot());
    report.audit_root = HexEncode(root);
    REFBUS_ASSIGN_OR_RETURN(uint64_t want_size, m.Number("audit_size"));
    auto want_root = m.Text("audit_root");
    report.root_in_manifest = want_root.ok();
    if (report.audit_size != want_size || (want_root.ok() && *want_root != report.audit_root)) {
      return Malformed("the restored audit log has size " + std::to_string(report.audit_size) +
                       " and root " + report.audit_root + "; the manifest says size " +
                       std::to_string(want_size) + " and root " +
                       (want_root.ok() ? *want_root : std::string("(none)")));
    }
    REFBUS_ASSIGN_OR_RETURN(auto latest, (*store)->LatestCheckpoint());
    if (latest) {
      const keys::Checkpoint& cp = latest->checkpoint;
      if (cp.size > report.audit_size) {
        return Malformed("the restored store's latest checkpoint has size " +
                         std::to_string(cp.size) + ", more than its audit log (" +
                         std::to_string(report.audit_size) + ")");
      }
      REFBUS_ASSIGN_OR_RETURN(keys::Hash at, (*store)->AuditRootAt(cp.size));
      if (at != cp.root) {
        return Malformed("the restored audit log's root at size " + std::to_string(cp.size) +
                         " is " + HexEncode(at) + ", not the root " + HexEncode(cp.root) +
                         " of its latest stored checkpoint");
      }
      report.checkpoint_size = cp.size;
    }
    REFBUS_ASSIGN_OR_RETURN(auto boxes, (*store)->NonEmptyMailboxes());
    report.mailboxes = boxes.size();
    for (const auto& [name, depth] : boxes) report.queued += depth;
  }  // the store is closed before it is moved
  REFBUS_RETURN_IF_ERROR(restorer->Commit());
  if (restorer->owner_uid() != static_cast<uid_t>(-1)) report.owner_uid = restorer->owner_uid();
  return report;
}

}  // namespace refbus::broker
