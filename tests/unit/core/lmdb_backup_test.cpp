// core/lmdb_backup.h and lmdb::HotCopy: hot copies beside a writer in another process
// (consistent snapshots, 0600 files in a 0700 folder), manifests, refusals (a non-empty
// folder, a flipped byte, a missing or hostile manifest, a target in use or not empty,
// another kind or id), and restores that leave nothing behind when not committed.
#include "core/lmdb_backup.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <thread>

#include "core/file.h"
#include "core/lmdb.h"
#include "tests/unit/test_util.h"

namespace refbus::lmdb {
namespace {

using test::HasCode;
using test::HasError;
using test::IsOk;
using test::Must;
using test::TempDir;

std::string Num(uint64_t v) { return std::to_string(v); }

// Writes "a" = "b" = n in every transaction, n counting up, plus a 4 KiB value under a
// key that changes each time (the old one deleted), so pages are freed and reused.
void WriterLoop(const std::string& dir, int run_ms) {
  EnvOptions o;
  o.map_size_bytes = size_t{64} << 20;
  auto env = Env::Open(dir, o);
  if (!env.ok()) _exit(10);
  auto dbi = (*env)->OpenDb("kv");
  if (!dbi.ok()) _exit(11);
  Bytes filler(4096, 0x5a);
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(run_ms);
  for (uint64_t n = 1; std::chrono::steady_clock::now() < until; ++n) {
    auto txn = (*env)->BeginWrite();
    if (!txn.ok()) _exit(12);
    Bytes v = ToBytes(Num(n));
    if (!txn->Put(*dbi, AsBytes("a"), v).ok() || !txn->Put(*dbi, AsBytes("b"), v).ok()) _exit(13);
    if (n > 1) (void)txn->Del(*dbi, AsBytes("f" + Num(n - 1)));
    if (!txn->Put(*dbi, AsBytes("f" + Num(n)), filler).ok()) _exit(14);
    if (!txn->Commit().ok()) _exit(15);
  }
  _exit(0);
}

uint64_t ReadCounter(Env& env, MDB_dbi dbi, const char* key) {
  auto txn = Must(env.BeginRead());
  auto v = txn.Get(dbi, AsBytes(key));
  if (!v.ok()) return 0;
  return std::stoull(std::string(AsChars(*v)));
}

int Mode(const std::string& path) { return test::FileMode(path); }

// A small environment written and closed in this process (a cold store).
void MakeStore(const std::string& dir, int entries) {
  EnvOptions o;
  o.map_size_bytes = size_t{16} << 20;
  auto env = Must(Env::Open(dir, o));
  MDB_dbi dbi = Must(env->OpenDb("kv"));
  auto txn = Must(env->BeginWrite());
  for (int i = 0; i < entries; ++i) {
    Must(txn.Put(dbi, AsBytes("k" + Num(static_cast<uint64_t>(i))), AsBytes("v")));
  }
  Must(txn.Commit());
}

std::string Backup(const std::string& src, const std::string& out) {
  auto w = Must(BackupWriter::Create(out));
  Must(w->AddEnvironment("store", src).status());
  w->manifest().kind = "broker";
  w->manifest().id = "seoul-broker";
  w->manifest().facts["audit_size"] = uint64_t{7};
  w->manifest().facts["note"] = std::string("text");
  return Must(w->Finish());
}

void FlipByte(const std::string& path, size_t at) {
  Bytes b = test::ReadAll(path);
  b.at(at) ^= 0x01;
  test::WriteRaw(path, b, 0600);
}

TEST(HotCopyTest, ConsistentSnapshotsBesideAWriterInAnotherProcess) {
  TempDir t;
  std::string src = t.Join("live");
  pid_t child = ::fork();
  ASSERT_GE(child, 0) << std::strerror(errno);
  if (child == 0) WriterLoop(src, 20000);
  // Wait until the writer has committed something.
  bool started = false;
  for (int i = 0; i < 500 && !started; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    started = PathExists(src + "/data.mdb") && PathExists(src + "/lock.mdb");
  }
  ASSERT_TRUE(started) << "the writer process did not create its store";
  std::this_thread::sleep_for(std::chrono::milliseconds(200));

  uint64_t previous = 0;
  for (int round = 0; round < 3; ++round) {
    std::string out = t.Join("backup" + Num(static_cast<uint64_t>(round)));
    auto w = BackupWriter::Create(out);
    ASSERT_TRUE(IsOk(w));
    auto env = (*w)->AddEnvironment("store", src);
    ASSERT_TRUE(IsOk(env));
    EXPECT_EQ((*env)->databases.count("kv"), 1u);
    (*w)->manifest().kind = "broker";
    (*w)->manifest().id = "seoul-broker";
    {
      auto copy = Must((*w)->OpenCopy("store", 8));
      MDB_dbi dbi = Must(copy->FindDb("kv"));
      uint64_t a = ReadCounter(*copy, dbi, "a"), b = ReadCounter(*copy, dbi, "b");
      EXPECT_GT(a, 0u);
      EXPECT_EQ(a, b) << "a copy must be one committed state, never a torn one";
      EXPECT_GT(a, previous) << "the writer kept writing during the copies";
      previous = a;
      // One filler record survives each commit: the copy holds exactly a, b and it.
      EXPECT_EQ(Must(copy->DatabaseCounts()).at("kv"), 3u);
    }
    ASSERT_TRUE(IsOk((*w)->Finish()));
    EXPECT_EQ(Mode(out), 0700);
    EXPECT_EQ(Mode(out + "/store.mdb"), 0600);
    EXPECT_EQ(Mode(out + "/MANIFEST.json"), 0600);
    std::string sha;
    auto m = ReadBackup(out, &sha);
    ASSERT_TRUE(IsOk(m));
    EXPECT_EQ(sha.size(), 64u);
    // Nothing but the copy and the manifest: no lock files next to the copy.
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(out),
                            std::filesystem::directory_iterator()),
              2);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status))
      << "the writer process stopped early, exit " << WEXITSTATUS(status);
}

TEST(HotCopyTest, NoStoreIsNotFoundAndLeavesNoFolder) {
  TempDir t;
  std::string out = t.Join("backup");
  {
    auto w = Must(BackupWriter::Create(out));
    EXPECT_TRUE(
        HasCode(w->AddEnvironment("store", t.Join("nothing-here")), Status::Code::kNotFound));
  }
  EXPECT_FALSE(PathExists(out)) << "a failed backup must not leave a half-written folder";
}

// AddEnvironment with only_databases (HotCopyDatabases): the copy holds the named
// databases, an absent one as empty, and no byte of any other (not even on a free page);
// the scratch copy it goes through is gone.
TEST(BackupWriterTest, OnlyTheNamedDatabasesAreCopied) {
  TempDir t;
  {
    auto env = Must(Env::Open(t.Join("src"), EnvOptions{}));
    MDB_dbi keep = Must(env->OpenDb("keep"));
    MDB_dbi drop = Must(env->OpenDb("drop"));
    auto txn = Must(env->BeginWrite());
    for (int i = 0; i < 3; ++i) {
      Must(txn.Put(keep, AsBytes("k" + Num(static_cast<uint64_t>(i))), AsBytes("kept value")));
    }
    Must(txn.Put(drop, AsBytes("share-1"), AsBytes("LEFT-OUT-SHARE-BYTES-1")));
    Must(txn.Put(drop, AsBytes("share-2"), AsBytes("LEFT-OUT-SHARE-BYTES-2")));
    Must(txn.Commit());
  }
  const std::string out = t.Join("b");
  {
    auto w = Must(BackupWriter::Create(out));
    const BackupEnvironment* e =
        Must(w->AddEnvironment("store", t.Join("src"), {"keep", "absent"}));
    EXPECT_EQ(e->databases, (std::map<std::string, uint64_t>{{"absent", 0}, {"keep", 3}}));
    w->manifest().kind = "agent";
    w->manifest().id = "seoul-center";
    Must(w->Finish());
  }
  const std::string copy(AsChars(test::ReadAll(out + "/store.mdb")));
  EXPECT_EQ(copy.find("LEFT-OUT-SHARE"), std::string::npos);
  EXPECT_NE(copy.find("kept value"), std::string::npos);
  size_t files = 0;
  for (const auto& f : std::filesystem::directory_iterator(out)) files += f.exists() ? 1 : 0;
  EXPECT_EQ(files, 2u) << "store.mdb and MANIFEST.json, no scratch file";
  EXPECT_TRUE(IsOk(ReadBackup(out, nullptr)));
}

TEST(BackupWriterTest, RefusesANonEmptyFolderAndTightensAnEmptyOne) {
  TempDir t;
  std::string full = t.Join("full");
  Must(MakeDirectories(full, 0755));
  test::WriteRaw(full + "/keep", AsBytes("x"), 0644);
  EXPECT_TRUE(HasError(BackupWriter::Create(full), Status::Code::kAlreadyExists, "not empty"));
  EXPECT_EQ(test::ReadAll(full + "/keep"), ToBytes("x"));

  std::string empty = t.Join("empty");
  Must(MakeDirectories(empty, 0755));
  MakeStore(t.Join("src"), 10);
  Backup(t.Join("src"), empty);
  EXPECT_EQ(Mode(empty), 0700);
}

TEST(BackupWriterTest, RefusesAFolderInsideTheStore) {
  TempDir t;
  MakeStore(t.Join("src"), 3);
  {
    auto w = Must(BackupWriter::Create(t.Join("src/backup")));
    EXPECT_TRUE(HasError(w->AddEnvironment("store", t.Join("src")), Status::Code::kInvalidArgument,
                         "inside the data directory"));
  }
  EXPECT_FALSE(PathExists(t.Join("src/backup")));
}

TEST(BackupWriterTest, ManifestRoundTrip) {
  TempDir t;
  MakeStore(t.Join("src"), 25);
  Backup(t.Join("src"), t.Join("b"));
  auto m = ReadBackup(t.Join("b"), nullptr);
  ASSERT_TRUE(IsOk(m));
  EXPECT_EQ(m->format, kBackupFormat);
  EXPECT_EQ(m->kind, "broker");
  EXPECT_EQ(m->id, "seoul-broker");
  EXPECT_GT(m->created_ms, 0);
  ASSERT_EQ(m->environments.size(), 1u);
  EXPECT_EQ(m->environments[0].file, "store.mdb");
  EXPECT_EQ(m->environments[0].databases.at("kv"), 25u);
  EXPECT_EQ(Must(m->Number("audit_size")), 7u);
  EXPECT_EQ(Must(m->Text("note")), "text");
  EXPECT_TRUE(HasCode(m->Number("note"), Status::Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(m->Text("absent"), Status::Code::kNotFound));
}

TEST(ReadBackupTest, RefusesDamageAndHostileManifests) {
  TempDir t;
  MakeStore(t.Join("src"), 50);
  std::string b = t.Join("b");
  Backup(t.Join("src"), b);
  ASSERT_TRUE(IsOk(ReadBackup(b, nullptr)));

  // A flipped byte in the copy.
  FlipByte(b + "/store.mdb", 5000);
  EXPECT_TRUE(
      HasError(ReadBackup(b, nullptr), Status::Code::kMalformed, "does not match the manifest"));
  FlipByte(b + "/store.mdb", 5000);
  ASSERT_TRUE(IsOk(ReadBackup(b, nullptr)));

  Bytes manifest = test::ReadAll(b + "/MANIFEST.json");
  std::string text(AsChars(manifest));
  auto with = [&](const std::string& from, const std::string& to) {
    std::string changed = text;
    size_t at = changed.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    changed.replace(at, from.size(), to);
    test::WriteRaw(b + "/MANIFEST.json", AsBytes(changed), 0600);
    return ReadBackup(b, nullptr);
  };
  EXPECT_TRUE(
      HasError(with("\"store.mdb\"", "\"../store.mdb\""), Status::Code::kMalformed, "not a plain"));
  EXPECT_TRUE(HasError(with(kBackupFormat, "refbus-backup/9"), Status::Code::kMalformed, "format"));
  EXPECT_TRUE(HasCode(with("\"kind\"", "\"kinds\""), Status::Code::kMalformed));
  test::WriteRaw(b + "/MANIFEST.json", AsBytes("{not json"), 0600);
  EXPECT_TRUE(HasCode(ReadBackup(b, nullptr), Status::Code::kMalformed));
  ::unlink((b + "/MANIFEST.json").c_str());
  EXPECT_TRUE(HasError(ReadBackup(b, nullptr), Status::Code::kNotFound, "did not finish"));
}

TEST(RestorerTest, RestoresIntoAnAbsentFolderAndOnlyOnCommit) {
  TempDir t;
  MakeStore(t.Join("src"), 40);
  Backup(t.Join("src"), t.Join("b"));
  std::string target = t.Join("new/data");

  {  // Not committed: nothing stays, the parent it made included.
    auto r = Must(Restorer::Begin(t.Join("b"), "broker", "seoul-broker", {{"store", target}}));
    EXPECT_TRUE(PathExists(r->StagingDir("store") + "/data.mdb"));
  }
  EXPECT_FALSE(PathExists(t.Join("new")));

  auto r = Must(Restorer::Begin(t.Join("b"), "broker", "seoul-broker", {{"store", target}}));
  {
    EnvOptions o;
    o.map_size_bytes = size_t{16} << 20;
    auto env = Must(Env::Open(r->StagingDir("store"), o));
    EXPECT_EQ(Must(env->DatabaseCounts()).at("kv"), 40u);
  }
  ASSERT_TRUE(IsOk(r->Commit()));
  EXPECT_TRUE(PathExists(target + "/data.mdb"));
  EXPECT_FALSE(PathExists(target + ".restoring"));
  EXPECT_EQ(Mode(target), 0700);
  EXPECT_EQ(Mode(target + "/data.mdb"), 0600);
  EnvOptions o;
  o.map_size_bytes = size_t{16} << 20;
  auto env = Must(Env::Open(target, o));
  EXPECT_EQ(Must(env->DatabaseCounts()).at("kv"), 40u);
}

TEST(RestorerTest, RefusesTargetsInUseOrNotEmptyAndOtherBackups) {
  TempDir t;
  MakeStore(t.Join("src"), 5);
  Backup(t.Join("src"), t.Join("b"));

  // In use: a process (here this one) holds the target's LOCK.refbus.
  std::string busy = t.Join("busy");
  {
    auto env = Must(Env::Open(busy, EnvOptions{}));
    EXPECT_TRUE(HasError(Restorer::Begin(t.Join("b"), "broker", "seoul-broker", {{"store", busy}}),
                         Status::Code::kFailedPrecondition, "in use"));
  }
  // The same folder once nobody holds it: not empty.
  EXPECT_TRUE(HasError(Restorer::Begin(t.Join("b"), "broker", "seoul-broker", {{"store", busy}}),
                       Status::Code::kAlreadyExists, "not empty"));
  EXPECT_FALSE(PathExists(busy + ".restoring"));

  // An empty folder with a leftover, unheld LOCK.refbus is free.
  std::string empty = t.Join("empty");
  Must(MakeDirectories(empty, 0700));
  test::WriteRaw(empty + "/LOCK.refbus", {}, 0600);
  auto r = Restorer::Begin(t.Join("b"), "broker", "seoul-broker", {{"store", empty}});
  ASSERT_TRUE(IsOk(r));
  EXPECT_TRUE(IsOk((*r)->Commit()));

  // Another broker's backup, another kind, another environment layout.
  EXPECT_TRUE(
      HasError(Restorer::Begin(t.Join("b"), "broker", "busan-broker", {{"store", t.Join("x")}}),
               Status::Code::kFailedPrecondition, "not of broker busan-broker"));
  EXPECT_TRUE(
      HasError(Restorer::Begin(t.Join("b"), "agent", "seoul-broker", {{"store", t.Join("x")}}),
               Status::Code::kFailedPrecondition, "backup of broker"));
  EXPECT_TRUE(HasError(Restorer::Begin(t.Join("b"), "broker", "seoul-broker",
                                       {{"store", t.Join("x")}, {"cases", t.Join("y")}}),
                       Status::Code::kFailedPrecondition, "no environment 'cases'"));
  EXPECT_FALSE(PathExists(t.Join("x")));

  // A staging folder left by an interrupted restore is named, not reused.
  Must(MakeDirectories(t.Join("z.restoring"), 0700));
  EXPECT_TRUE(
      HasError(Restorer::Begin(t.Join("b"), "broker", "seoul-broker", {{"store", t.Join("z")}}),
               Status::Code::kFailedPrecondition, "interrupted restore"));
}

TEST(RestorerTest, CommitRefusesATargetThatFilledMeanwhile) {
  TempDir t;
  MakeStore(t.Join("src"), 5);
  Backup(t.Join("src"), t.Join("b"));
  std::string target = t.Join("data");
  auto r = Must(Restorer::Begin(t.Join("b"), "broker", "seoul-broker", {{"store", target}}));
  Must(MakeDirectories(target, 0700));
  test::WriteRaw(target + "/data.mdb", AsBytes("someone else's"), 0600);
  EXPECT_TRUE(HasError(r->Commit(), Status::Code::kAlreadyExists, "no longer empty"));
  EXPECT_EQ(test::ReadAll(target + "/data.mdb"), ToBytes("someone else's"));
}

}  // namespace
}  // namespace refbus::lmdb
