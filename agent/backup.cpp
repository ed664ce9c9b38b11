#include "agent/backup.h"

#include <chrono>
#include <utility>

#include "agent/case_store.h"
#include "agent/linkage_store.h"
#include "core/file.h"

namespace refbus::agent {
namespace {

constexpr char kCases[] = "cases";
constexpr char kTransport[] = "transport";
constexpr char kLinkage[] = "linkage";

std::string Sub(const std::string& data_dir, const char* name) { return data_dir + "/" + name; }

// The backup's MANIFEST.json, read without checking the files (Restorer::Begin does):
// which environments it holds decides the restore's targets.
Result<lmdb::BackupManifest> PeekManifest(const std::string& from_dir) {
  REFBUS_ASSIGN_OR_RETURN(Bytes bytes,
                          ReadFile(from_dir + "/" + lmdb::kManifestFile, size_t{1} << 20));
  return lmdb::ParseManifest(bytes);
}

// The staged linkage store: what the backup says (links and matches, each value's
// checksum read), and no escrow entry or deposit whatever the manifest says.
Status CheckStagedLinkage(const std::string& staging, const lmdb::BackupEnvironment& env,
                          AgentRestoreReport& report) {
  {
    REFBUS_ASSIGN_OR_RETURN(auto copy, lmdb::Env::OpenCopy(staging + "/data.mdb", 16));
    REFBUS_ASSIGN_OR_RETURN(auto counts, copy->DatabaseCounts());
    for (const char* db : {kEscrowEntriesDb, kEscrowDepositsDb}) {
      if (counts.count(db) != 0 && counts.at(db) != 0) {
        return Malformed("the backup's linkage store holds " + std::to_string(counts.at(db)) + " " +
                         db + " records: escrow entries are never restored (agent/backup.h)");
      }
    }
  }
  auto store = LinkageStore::Open(staging, linkage::kDefaultEscrowThreshold);
  if (!store.ok()) return store.status().WithContext("the restored linkage store fails to open");
  REFBUS_ASSIGN_OR_RETURN(auto links, (*store)->Links());
  REFBUS_ASSIGN_OR_RETURN(auto matches, (*store)->Matches());
  report.links = links.size();
  report.matches = matches.size();
  auto want = [&env](const char* db) {
    auto it = env.databases.find(db);
    return it == env.databases.end() ? uint64_t{0} : it->second;
  };
  if (report.links != want(kLinksDb) || report.matches != want(kMatchesDb)) {
    return Malformed("the restored linkage store holds " + std::to_string(report.links) +
                     " links and " + std::to_string(report.matches) +
                     " matches; the manifest says " + std::to_string(want(kLinksDb)) + " and " +
                     std::to_string(want(kMatchesDb)));
  }
  report.linkage = true;
  return Status::Ok();
}

}  // namespace

Result<AgentBackupReport> BackupAgent(const std::string& data_dir, const std::string& agent_id,
                                      const std::string& out_dir) {
  auto start = std::chrono::steady_clock::now();
  AgentBackupReport report;
  REFBUS_ASSIGN_OR_RETURN(auto writer, lmdb::BackupWriter::Create(out_dir));
  // Cases first, then linkage, transport last (agent/backup.h says why). Of linkage, the
  // agency's own records only; a data_dir whose daemon never ran this version has none.
  REFBUS_RETURN_IF_ERROR(writer->AddEnvironment(kCases, Sub(data_dir, kCases)).status());
  if (PathExists(Sub(data_dir, kLinkage) + "/data.mdb")) {
    REFBUS_RETURN_IF_ERROR(
        writer->AddEnvironment(kLinkage, Sub(data_dir, kLinkage), {kLinksDb, kMatchesDb}).status());
  }
  REFBUS_RETURN_IF_ERROR(writer->AddEnvironment(kTransport, Sub(data_dir, kTransport)).status());
  for (const char* db : {kOutboxDb, kInboxDb}) {
    if (writer->manifest().Find(kTransport)->databases.count(db) == 0) {
      return FailedPrecondition(Sub(data_dir, kTransport) +
                                " is not an agent's transport store (it has no " + db + ")");
    }
  }
  writer->manifest().kind = kAgentBackupKind;
  writer->manifest().id = agent_id;
  writer->manifest().facts["agent_id"] = agent_id;
  REFBUS_ASSIGN_OR_RETURN(report.manifest_sha256, writer->Finish());
  report.manifest = writer->manifest();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

Result<AgentRestoreReport> RestoreAgent(const std::string& data_dir, const std::string& agent_id,
                                        const std::string& from_dir) {
  AgentRestoreReport report;
  std::vector<lmdb::RestoreTarget> targets = {
      lmdb::RestoreTarget{kCases, Sub(data_dir, kCases)},
      lmdb::RestoreTarget{kTransport, Sub(data_dir, kTransport)}};
  // A backup from before linkage has no linkage store: the daemon starts an empty one. A
  // folder without a readable manifest is refused by Restorer::Begin, saying why.
  if (auto peeked = PeekManifest(from_dir); peeked.ok() && peeked->Find(kLinkage) != nullptr) {
    targets.push_back(lmdb::RestoreTarget{kLinkage, Sub(data_dir, kLinkage)});
  }
  REFBUS_ASSIGN_OR_RETURN(auto restorer,
                          lmdb::Restorer::Begin(from_dir, kAgentBackupKind, agent_id, targets));
  report.manifest = restorer->manifest();
  report.manifest_sha256 = restorer->manifest_sha256();
  {
    auto transport = TransportStore::Open(restorer->StagingDir(kTransport), StoreOptions{});
    if (!transport.ok()) {
      return transport.status().WithContext("the restored transport store fails to open");
    }
    REFBUS_ASSIGN_OR_RETURN(report.counters, (*transport)->Counters());
    const auto& dbs = report.manifest.Find(kTransport)->databases;
    auto want = [&dbs](const char* db) {
      auto it = dbs.find(db);
      return it == dbs.end() ? uint64_t{0} : it->second;
    };
    if (report.counters.inbox_messages != want(kInboxDb) ||
        report.counters.outbox_messages != want(kOutboxDb)) {
      return Malformed("the restored transport store holds " +
                       std::to_string(report.counters.inbox_messages) + " inbox and " +
                       std::to_string(report.counters.outbox_messages) +
                       " outbox records; the manifest says " + std::to_string(want(kInboxDb)) +
                       " and " + std::to_string(want(kOutboxDb)));
    }
    auto cases = CaseStore::Open(restorer->StagingDir(kCases));
    if (!cases.ok()) return cases.status().WithContext("the restored case store fails to open");
    REFBUS_ASSIGN_OR_RETURN(auto txn, (*cases)->Begin(false));
    REFBUS_ASSIGN_OR_RETURN(auto all, txn.List(Table::kCases));
    report.cases = all.size();
    if (const auto* env = report.manifest.Find(kLinkage); env != nullptr) {
      REFBUS_RETURN_IF_ERROR(CheckStagedLinkage(restorer->StagingDir(kLinkage), *env, report));
    }
  }  // every store is closed before they are moved
  REFBUS_RETURN_IF_ERROR(restorer->Commit());
  if (restorer->owner_uid() != static_cast<uid_t>(-1)) report.owner_uid = restorer->owner_uid();
  return report;
}

}  // namespace refbus::agent
