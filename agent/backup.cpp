#include "agent/backup.h"

#include <chrono>
#include <utility>

#include "agent/case_store.h"

namespace refbus::agent {
namespace {

constexpr char kCases[] = "cases";
constexpr char kTransport[] = "transport";

std::string Sub(const std::string& data_dir, const char* name) { return data_dir + "/" + name; }

}  // namespace

Result<AgentBackupReport> BackupAgent(const std::string& data_dir, const std::string& agent_id,
                                      const std::string& out_dir) {
  auto start = std::chrono::steady_clock::now();
  AgentBackupReport report;
  REFBUS_ASSIGN_OR_RETURN(auto writer, lmdb::BackupWriter::Create(out_dir));
  // Cases first, transport second (agent/backup.h says why).
  REFBUS_RETURN_IF_ERROR(writer->AddEnvironment(kCases, Sub(data_dir, kCases)).status());
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
  REFBUS_ASSIGN_OR_RETURN(
      auto restorer,
      lmdb::Restorer::Begin(from_dir, kAgentBackupKind, agent_id,
                            {lmdb::RestoreTarget{kCases, Sub(data_dir, kCases)},
                             lmdb::RestoreTarget{kTransport, Sub(data_dir, kTransport)}}));
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
  }  // both stores are closed before they are moved
  REFBUS_RETURN_IF_ERROR(restorer->Commit());
  if (restorer->owner_uid() != static_cast<uid_t>(-1)) report.owner_uid = restorer->owner_uid();
  return report;
}

}  // namespace refbus::agent
