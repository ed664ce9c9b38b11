// refbus-broker backup | restore with real processes: a hot backup taken from a separate
// process while a real broker keeps accepting a stream of submissions, the broker stopped,
// the backup restored into a fresh data_dir and a broker started on it: it starts, its
// audit log is the backed-up prefix (size and root from the manifest, checked by
// Store::Open and against the original broker's log), the envelopes queued before the
// backup reach their recipient when it connects, and what was accepted after the backup is
// gone until its sender resubmits it. Then the refusals: a restore beside a running broker,
// over a non-empty data_dir, of a tampered backup, of another broker's backup, and a backup
// into a non-empty folder.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "agent/case_store.h"
#include "agent/linkage_store.h"
#include "agent/transport_store.h"
#include "broker/store.h"
#include "core/bytes.h"
#include "core/lmdb_backup.h"
#include "schema/codec.h"
#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

using json = nlohmann::json;
using schema::Frame;
using SteadyClock = std::chrono::steady_clock;

constexpr char kSender[] = "seoul-wee-01";
constexpr char kStreamer[] = "seoul-police-03";
constexpr char kRecipient[] = "seoul-counsel";

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

// The value after "key: " on its own line of a tool's output, or "".
std::string Field(const std::string& out, const std::string& key) {
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ": ", 0) == 0) return line.substr(key.size() + 2);
  }
  return "";
}

int Mode(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 07777) : -1;
}

struct ToolRun {
  int code = -1;
  std::string output;  // stdout and stderr
  double seconds = 0;
};

class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("refbus-backup-test");
    ASSERT_TRUE(fed_.Create(root_, {kBroker, "busan-broker"},
                            {{kSender, schema::AgencyType::kWeeCenter, kBroker},
                             {kStreamer, schema::AgencyType::kPoliceUnit, kBroker},
                             {kRecipient, schema::AgencyType::kCounselingCenter, kBroker}}));
    ASSERT_TRUE(fed_.AddAuditor(kAuditor));
    {
      // The auditor witnesses the log itself (refbus-audit witness), and counts itself.
      std::ofstream cfg(fed_.Dir(kAuditor) + "/auditor.toml");
      cfg << "[verify]\nwitnesses = [\"" << kAuditor << "\"]\n";
    }
    for (const char* p : {kSender, kStreamer, kRecipient}) ids_.emplace(p, fed_.LoadIdentity(p));
    original_ = std::make_unique<Broker>(fed_, kBroker, Data("seoul-data"));
  }
  void TearDown() override {
    original_.reset();
    restored_.reset();
    if (!HasFailure()) RemoveTree(root_);
  }

  std::string Data(const std::string& name) const { return root_ + "/" + name; }
  // The config Broker::Start wrote for data_dir (it lives at data_dir + ".toml").
  static std::string ConfigOf(const std::string& data_dir) { return data_dir + ".toml"; }
  // A copy of the original broker's config naming another data_dir (as Broker::Start
  // would write it for that folder).
  std::string ConfigFor(const std::string& data_dir) {
    std::string text = Slurp(ConfigOf(Data("seoul-data")));
    EXPECT_FALSE(text.empty()) << "the original broker's config is missing";
    WriteText(ConfigOf(data_dir), Replace(text, Data("seoul-data"), data_dir));
    return ConfigOf(data_dir);
  }

  // PROGRAM ARGS from BinDir(): its exit code, output (stdout and stderr, in log) and time.
  static ToolRun RunProgram(const std::string& program, const std::vector<std::string>& args,
                            const std::string& log, int timeout_ms) {
    std::vector<std::string> argv = {BinDir() + "/" + program};
    argv.insert(argv.end(), args.begin(), args.end());
    ::unlink(log.c_str());
    ToolRun r;
    Process p;
    auto start = SteadyClock::now();
    if (!p.Start(argv, log)) {
      ADD_FAILURE() << "cannot start " << program << " " << args.front();
      return r;
    }
    r.code = p.Wait(timeout_ms);
    r.seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
    r.output = Slurp(log);
    return r;
  }
  ToolRun Tool(const std::vector<std::string>& args, const std::string& log) {
    return RunProgram("refbus-broker", args, log, 120000);
  }

  // refbus-audit as the auditor against broker b, with --json: its exit code and its
  // stdout parsed (stderr goes to log).
  std::pair<int, json> Audit(const std::string& command, const Broker& b, const std::string& store,
                             const std::string& log) {
    std::string out = log + ".json";
    std::string cmd = "exec '" + BinDir() + "/refbus-audit' " + command + " --json --dir '" +
                      fed_.Dir(kAuditor) + "' --store '" + store + "'";
    if (command != "verify")
      cmd += " --broker " + std::string(kBroker) + " --endpoint " + b.endpoint();
    // The fresh checkpoint is cosigned only by the witness run after verify: the witnessed
    // size is checked, not required.
    if (command == "verify") cmd += " --min-cosignatures 0";
    Process p;
    if (!p.Start({"/bin/bash", "-c", cmd + " >'" + out + "'"}, log)) return {-1, json()};
    int code = p.Wait(60000);
    return {code, json::parse(Slurp(out), nullptr, false)};
  }

  Bytes BrokerKey() const { return fed_.directory().Find(kBroker)->ActiveKeys()->transport_key; }
  std::unique_ptr<RawClient> Connect(const std::string& party, const Broker& b) {
    auto c = std::make_unique<RawClient>(ids_.at(party), BrokerKey(), b.endpoint());
    EXPECT_TRUE(c->Hello(party)) << party << " got no Welcome";
    return c;
  }
  UnixMillis Now() const { return SystemClock::Get().NowMillis(); }
  Bytes Seal(const std::string& from, size_t content_bytes = 2048) {
    return SealTo(ids_.at(from), fed_.directory(), {kRecipient}, Now(), 24 * kMillisPerHour,
                  content_bytes);
  }

  // An agent configuration for the recipient agency with data_dir, at the original broker;
  // returns its path.
  std::string AgentConfig(const std::string& data_dir) {
    std::string dir = fed_.Dir(kRecipient);
    std::string cfg = data_dir + ".toml";
    WriteText(cfg, "[agent]\nid = \"" + std::string(kRecipient) + "\"\ndata_dir = \"" + data_dir +
                       "\"\nkey_file = \"" + dir + "/identity.key\"\ndirectory = \"" + dir +
                       "/directory\"\nanchor = \"" + dir + "/authority.pub\"\ntrust_state = \"" +
                       data_dir + ".trust-state\"\nbroker_endpoint = \"" + original_->endpoint() +
                       "\"\n[api]\nlisten = \"127.0.0.1:0\"\n");
    return cfg;
  }
  // refbus-agent ARGS: its exit code and output (stdout and stderr, in log).
  ToolRun AgentTool(const std::vector<std::string>& args, const std::string& log) {
    return RunProgram("refbus-agent", args, log, 60000);
  }

  std::string root_;
  Federation fed_;
  std::map<std::string, keys::Identity> ids_;
  std::unique_ptr<Broker> original_, restored_;
};

// One submission of the stream: its envelope, when it was sent and when its ack came.
struct Streamed {
  Bytes id;
  Bytes envelope;
  SteadyClock::time_point sent, acked;
};

TEST_F(BackupTest, HotBackupDuringAStreamRestoresTheQueueAndTheAuditLog) {
  ASSERT_TRUE(original_->Start());
  // Queued for an agency that is offline: 300 envelopes of 48 KiB (a store of about 15 MB,
  // so that the copy takes long enough for the stream to go on during it), acked
  // (committed) before the backup.
  std::vector<Bytes> before;
  {
    auto sender = Connect(kSender, *original_);
    for (int i = 0; i < 300; ++i) {
      auto r = sender->Submit(Seal(kSender, 48 << 10));
      ASSERT_TRUE(r && r->type == Frame::Type::kAck) << "submission " << i << "; broker log:\n"
                                                     << original_->Log();
      before.push_back(r->ack.message_id);
    }
  }

  // An auditor witnesses the log before the backup: it keeps the checkpoint it cosigned,
  // and the broker stores the cosignature with its log.
  const std::string witness_store = Data("auditor-witness");
  auto [w1_code, w1] = Audit("witness", *original_, witness_store, Data("witness-1.log"));
  ASSERT_EQ(w1_code, 0) << Slurp(Data("witness-1.log")) << w1.dump();
  ASSERT_TRUE(w1["cosigned"].get<bool>()) << w1.dump();
  ASSERT_TRUE(w1["stored_by_broker"].get<bool>()) << w1.dump();
  const uint64_t witnessed = w1["size"].get<uint64_t>();
  ASSERT_GT(witnessed, before.size());

  // A stream of submissions from another agency, running across the backup.
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<Streamed> stream;
  std::thread streamer([&] {
    auto c = Connect(kStreamer, *original_);
    // Eight submissions in flight at a time (they share group commits): a fast stream.
    uint64_t request_id = 1000000;
    while (!stop.load()) {
      std::vector<Streamed> batch(8);
      for (auto& s : batch) {
        s.envelope = Seal(kStreamer);
        s.sent = SteadyClock::now();
        Frame f;
        f.type = Frame::Type::kSubmit;
        f.request_id = ++request_id;
        f.submit.envelope = s.envelope;
        c->SendFrame(f);
      }
      for (size_t i = 0; i < batch.size(); ++i) {
        auto r = c->Expect(Frame::Type::kAck, request_id - batch.size() + 1 + i, 10000);
        if (!r || r->type != Frame::Type::kAck) {
          ADD_FAILURE() << "a streamed submission was not acked";
          return;
        }
        batch[i].acked = SteadyClock::now();
        batch[i].id = r->ack.message_id;
        std::lock_guard<std::mutex> l(mu);
        stream.push_back(std::move(batch[i]));
      }
    }
  });
  auto stream_size = [&] {
    std::lock_guard<std::mutex> l(mu);
    return stream.size();
  };
  while (stream_size() < 50) std::this_thread::sleep_for(std::chrono::milliseconds(5));

  const std::string backup = Data("backup");
  auto backup_start = SteadyClock::now();
  size_t acked_at_start = stream_size();
  ToolRun b =
      Tool({"backup", "-c", ConfigOf(Data("seoul-data")), "--out", backup}, Data("backup.log"));
  auto backup_end = SteadyClock::now();
  size_t acked_at_end = stream_size();
  // More after the backup: these are accepted by the original broker only.
  auto sent_after = [&](SteadyClock::time_point t) {
    std::lock_guard<std::mutex> l(mu);
    size_t n = 0;
    for (const auto& st : stream) n += st.sent > t ? 1 : 0;
    return n;
  };
  while (sent_after(backup_end) < 30) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  stop = true;
  streamer.join();
  ASSERT_EQ(b.code, 0) << b.output;
  EXPECT_GT(acked_at_end, acked_at_start)
      << "the broker must keep accepting submissions while the backup runs";
  std::cout << "[ backup   ] " << Field(b.output, "seconds") << " s inside refbus-broker backup, "
            << b.seconds << " s for the process; " << (acked_at_end - acked_at_start)
            << " submissions acked meanwhile; " << Field(b.output, "file store.mdb") << "\n";
  RecordProperty("backup_seconds", Field(b.output, "seconds"));

  // The folder: 0700, the copy and the manifest 0600, hashes and facts as printed.
  EXPECT_EQ(Mode(backup), 0700);
  EXPECT_EQ(Mode(backup + "/store.mdb"), 0600);
  EXPECT_EQ(Mode(backup + "/MANIFEST.json"), 0600);
  std::string manifest_sha;
  auto manifest = lmdb::ReadBackup(backup, &manifest_sha);
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString();
  EXPECT_EQ(manifest->kind, "broker");
  EXPECT_EQ(manifest->id, kBroker);
  EXPECT_EQ(Field(b.output, "manifest sha256").substr(0, 64), manifest_sha);
  json mj = json::parse(Slurp(backup + "/MANIFEST.json"));
  EXPECT_EQ(mj["facts"]["broker_id"], kBroker);
  ASSERT_TRUE(manifest->Number("audit_size").ok());
  ASSERT_TRUE(manifest->Text("audit_root").ok());
  const uint64_t audit_size = *manifest->Number("audit_size");
  const std::string audit_root = *manifest->Text("audit_root");
  EXPECT_GE(audit_size, before.size() + acked_at_start);
  EXPECT_EQ(Field(b.output, "audit size"), std::to_string(audit_size));
  EXPECT_EQ(Field(b.output, "audit root"), audit_root);

  // A restore beside the running broker, on its own data_dir: refused, named as such.
  ToolRun busy = Tool({"restore", "-c", ConfigOf(Data("seoul-data")), "--from", backup},
                      Data("restore-busy.log"));
  EXPECT_EQ(busy.code, 1) << busy.output;
  EXPECT_NE(busy.output.find("in use"), std::string::npos) << busy.output;

  ASSERT_EQ(original_->Stop(), 0) << original_->Log();

  // Restore into a fresh data_dir with a config of its own.
  const std::string fresh = Data("restored-data");
  ToolRun r = Tool({"restore", "-c", ConfigFor(fresh), "--from", backup}, Data("restore.log"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(Field(r.output, "audit size"), std::to_string(audit_size) + " (as in the manifest)");
  EXPECT_EQ(Field(r.output, "audit root"), audit_root + " (as in the manifest)");
  EXPECT_EQ(Field(r.output, "manifest sha256"), manifest_sha);
  EXPECT_NE(r.output.find("start-up checks: passed"), std::string::npos) << r.output;
  EXPECT_TRUE(std::filesystem::exists(fresh + "/data.mdb"));
  EXPECT_FALSE(std::filesystem::exists(fresh + ".restoring"));
  EXPECT_EQ(Mode(fresh), 0700);
  EXPECT_EQ(Mode(fresh + "/data.mdb"), 0600);

  // A broker on the restored store starts, and the recipient gets its backlog.
  restored_ = std::make_unique<Broker>(fed_, kBroker, fresh);
  ASSERT_TRUE(restored_->Start());
  std::vector<Bytes> delivered;
  {
    auto recipient = Connect(kRecipient, *restored_);
    delivered = recipient->DrainAndAck(3000, true);
  }
  std::set<Bytes> got(delivered.begin(), delivered.end());
  EXPECT_EQ(got.size(), delivered.size()) << "an envelope was delivered twice in one session";
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_TRUE(got.count(before[i])) << "queued envelope " << i << " of " << before.size()
                                      << " (before the backup) was not delivered";
  }
  std::set<Bytes> possible(before.begin(), before.end());
  size_t stream_in_backup = 0, lost_after = 0;
  const Streamed* lost = nullptr;
  for (const auto& s : stream) {
    if (s.acked < backup_start) {
      EXPECT_TRUE(got.count(s.id)) << "an envelope acked before the backup started is missing";
    }
    if (s.sent < backup_end) possible.insert(s.id);
    if (got.count(s.id)) ++stream_in_backup;
    if (s.sent > backup_end) {
      EXPECT_FALSE(got.count(s.id)) << "an envelope accepted after the backup was delivered";
      ++lost_after;
      lost = &s;
    }
  }
  for (const auto& id : got) {
    EXPECT_TRUE(possible.count(id)) << "delivered an envelope the backup cannot hold";
  }
  EXPECT_EQ(got.size(), before.size() + stream_in_backup);
  ASSERT_NE(lost, nullptr);
  EXPECT_GE(lost_after, 30u);
  std::cout << "[ restore  ] delivered " << got.size() << " (" << before.size()
            << " queued before the backup, " << stream_in_backup << " of the stream); "
            << lost_after << " accepted after the backup are not in it\n";

  // Restoring loses what came after the backup: the restored broker takes it as new when
  // its sender submits it again, and still knows the ids from before as duplicates.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the acks reach the broker
  {
    auto streamer2 = Connect(kStreamer, *restored_);
    auto again = streamer2->Submit(lost->envelope);
    ASSERT_TRUE(again && again->type == Frame::Type::kAck);
    EXPECT_FALSE(again->ack.duplicate) << "an envelope from after the backup is new here";
    auto recipient = Connect(kRecipient, *restored_);
    auto more = recipient->DrainAndAck(2000, true);
    ASSERT_EQ(more.size(), 1u);
    EXPECT_EQ(more[0], lost->id);
  }
  // The restored log still verifies against the checkpoint witnessed before the backup: an
  // auditor's fresh fetch finds the cosignature and a consistent, longer log, and the
  // witness that cosigned before cosigns the restored log as an extension of what it saw.
  {
    auto [f_code, f] = Audit("fetch", *restored_, Data("auditor-fetch"), Data("fetch.log"));
    ASSERT_EQ(f_code, 0) << Slurp(Data("fetch.log")) << f.dump();
    auto [v_code, v] = Audit("verify", *restored_, Data("auditor-fetch"), Data("verify.log"));
    ASSERT_EQ(v_code, 0) << Slurp(Data("verify.log")) << v.dump();
    ASSERT_TRUE(v["witnessed_size"].is_number()) << v.dump();
    EXPECT_GE(v["witnessed_size"].get<uint64_t>(), witnessed) << v.dump();
    EXPECT_GE(v["verified_size"].get<uint64_t>(), audit_size) << v.dump();
    auto [w2_code, w2] = Audit("witness", *restored_, witness_store, Data("witness-2.log"));
    ASSERT_EQ(w2_code, 0) << Slurp(Data("witness-2.log")) << w2.dump();
    EXPECT_EQ(w2["old_size"].get<uint64_t>(), witnessed) << w2.dump();
    EXPECT_TRUE(w2["cosigned"].get<bool>()) << w2.dump();
  }
  ASSERT_EQ(restored_->Stop(), 0) << restored_->Log();

  // The restored log passes Store::Open's checks and its first audit_size entries are the
  // backed-up log; so are the original broker's (the backup is a prefix of its history).
  for (const std::string& dir : {fresh, Data("seoul-data")}) {
    broker::StoreOptions so;
    so.dir = dir;
    so.broker_id = kBroker;
    auto store = broker::Store::Open(so);
    ASSERT_TRUE(store.ok()) << dir << ": " << store.status().ToString();
    auto size = (*store)->AuditSize();
    ASSERT_TRUE(size.ok());
    EXPECT_GT(*size, audit_size) << dir << ": the log grew after the backup";
    auto root = (*store)->AuditRootAt(audit_size);
    ASSERT_TRUE(root.ok()) << root.status().ToString();
    EXPECT_EQ(HexEncode(ByteView(root->data(), root->size())), audit_root) << dir;
  }
}

TEST_F(BackupTest, RestoreRefusesTamperedBackupsFullDataDirsAndOtherBrokers) {
  ASSERT_TRUE(original_->Start());
  {
    auto sender = Connect(kSender, *original_);
    for (int i = 0; i < 20; ++i) {
      auto r = sender->Submit(Seal(kSender));
      ASSERT_TRUE(r && r->type == Frame::Type::kAck);
    }
  }
  const std::string backup = Data("backup");
  ToolRun b =
      Tool({"backup", "-c", ConfigOf(Data("seoul-data")), "--out", backup}, Data("backup.log"));
  ASSERT_EQ(b.code, 0) << b.output;
  // A second backup into the same folder: refused, the first one untouched.
  ToolRun again = Tool({"backup", "-c", ConfigOf(Data("seoul-data")), "--out", backup},
                       Data("backup-again.log"));
  EXPECT_EQ(again.code, 1) << again.output;
  EXPECT_NE(again.output.find("not empty"), std::string::npos) << again.output;
  ASSERT_TRUE(lmdb::ReadBackup(backup, nullptr).ok());
  ASSERT_EQ(original_->Stop(), 0) << original_->Log();

  // Over the data_dir it came from (stopped, not empty).
  ToolRun full = Tool({"restore", "-c", ConfigOf(Data("seoul-data")), "--from", backup},
                      Data("restore-full.log"));
  EXPECT_EQ(full.code, 1) << full.output;
  EXPECT_NE(full.output.find("is not empty"), std::string::npos) << full.output;

  // A tampered copy: one flipped byte in the store file.
  const std::string tampered = Data("tampered");
  std::filesystem::copy(backup, tampered);
  {
    std::fstream f(tampered + "/store.mdb", std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.good());
    f.seekg(9000);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x04);
    f.seekp(9000);
    f.write(&c, 1);
  }
  const std::string fresh = Data("fresh-data");
  const std::string fresh_config = ConfigFor(fresh);
  ToolRun bad = Tool({"restore", "-c", fresh_config, "--from", tampered}, Data("restore-bad.log"));
  EXPECT_EQ(bad.code, 1) << bad.output;
  EXPECT_NE(bad.output.find("does not match the manifest"), std::string::npos) << bad.output;
  EXPECT_FALSE(std::filesystem::exists(fresh)) << "a refused restore must leave nothing";
  EXPECT_FALSE(std::filesystem::exists(fresh + ".restoring"));

  // A folder without a manifest (an unfinished backup), and no folder at all.
  std::filesystem::remove(tampered + "/MANIFEST.json");
  ToolRun unfinished =
      Tool({"restore", "-c", fresh_config, "--from", tampered}, Data("restore-unfinished.log"));
  EXPECT_EQ(unfinished.code, 1) << unfinished.output;
  EXPECT_NE(unfinished.output.find("did not finish"), std::string::npos) << unfinished.output;

  // Another broker's configuration.
  std::string busan_config = Data("busan-data.toml");
  WriteText(busan_config, Replace(Replace(Slurp(fresh_config), fresh, Data("busan-data")),
                                  fed_.Dir(kBroker), fed_.Dir("busan-broker")));
  {
    std::string text = Slurp(busan_config);
    WriteText(busan_config, Replace(text, "id = \"seoul-broker\"", "id = \"busan-broker\""));
  }
  ToolRun other =
      Tool({"restore", "-c", busan_config, "--from", backup}, Data("restore-other.log"));
  EXPECT_EQ(other.code, 1) << other.output;
  EXPECT_NE(other.output.find("not of broker busan-broker"), std::string::npos) << other.output;

  // Usage errors.
  EXPECT_EQ(Tool({"restore", "-c", fresh_config}, Data("usage.log")).code, 2);
  EXPECT_EQ(Tool({"backup", "--out", Data("x")}, Data("usage2.log")).code, 2);

  // After all that, the good backup restores into the same fresh folder and a broker runs.
  ToolRun good = Tool({"restore", "-c", fresh_config, "--from", backup}, Data("restore.log"));
  ASSERT_EQ(good.code, 0) << good.output;
  EXPECT_EQ(Field(good.output, "queued"), "20 entries in 1 mailboxes") << good.output;
  restored_ = std::make_unique<Broker>(fed_, kBroker, fresh);
  ASSERT_TRUE(restored_->Start());
  auto recipient = Connect(kRecipient, *restored_);
  EXPECT_EQ(recipient->DrainAndAck(2000, true).size(), 20u);
  EXPECT_EQ(restored_->Stop(), 0) << restored_->Log();
}

// refbus-agent backup | restore beside a real daemon that keeps storing deliveries.
TEST_F(BackupTest, AgentHotBackupAndRestoreBesideARunningDaemon) {
  ASSERT_TRUE(original_->Start());
  auto agent_config = [&](const std::string& data_dir) { return AgentConfig(data_dir); };
  auto agent_tool = [&](const std::vector<std::string>& args, const std::string& log) {
    return AgentTool(args, log);
  };
  auto start_daemon = [&](Process& p, const std::string& cfg, const std::string& data_dir) {
    if (!p.Start({BinDir() + "/refbus-agent", "run", "-c", cfg}, data_dir + ".log")) return false;
    for (int i = 0; i < 1000; ++i) {
      if (std::filesystem::exists(data_dir + "/api.url")) return true;
      if (p.Wait(10) >= 0) break;
    }
    ADD_FAILURE() << "refbus-agent run did not come up:\n" << Slurp(data_dir + ".log");
    return false;
  };
  auto inbox_of = [&](const std::string& cfg) -> uint64_t {
    ToolRun r = agent_tool({"status", "-c", cfg, "--json"}, Data("agent-status.log"));
    json j = json::parse(r.output.substr(r.output.find('{')), nullptr, false);
    return j.is_object() ? j.value("inbox", uint64_t{0}) : 0;
  };

  const std::string data = Data("counsel-agent"), cfg = agent_config(data);
  Process daemon;
  ASSERT_TRUE(start_daemon(daemon, cfg, data));
  {
    auto sender = Connect(kSender, *original_);
    for (int i = 0; i < 40; ++i) {
      auto r = sender->Submit(Seal(kSender));
      ASSERT_TRUE(r && r->type == Frame::Type::kAck);
    }
  }
  auto deadline = SteadyClock::now() + std::chrono::seconds(30);
  while (inbox_of(cfg) < 40 && SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_GE(inbox_of(cfg), 40u) << Slurp(data + ".log");

  // Deliveries keep arriving at the daemon while its stores are copied.
  std::atomic<bool> stop{false};
  std::thread streamer([&] {
    auto c = Connect(kStreamer, *original_);
    while (!stop.load()) {
      auto r = c->Submit(Seal(kStreamer));
      if (!r || r->type != Frame::Type::kAck) return;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const std::string backup = Data("agent-backup");
  ToolRun b = agent_tool({"backup", "-c", cfg, "--out", backup}, Data("agent-backup.log"));
  stop = true;
  streamer.join();
  ASSERT_EQ(b.code, 0) << b.output;
  std::cout << "[ agent    ] backup " << Field(b.output, "seconds") << " s; "
            << Field(b.output, "file transport.mdb") << "\n";
  auto manifest = lmdb::ReadBackup(backup, nullptr);
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString();
  ASSERT_NE(manifest->Find("transport"), nullptr);
  const uint64_t inbox = manifest->Find("transport")->databases.at("inbox");
  EXPECT_GE(inbox, 40u);
  EXPECT_FALSE(std::filesystem::exists(backup + "/api.token"));
  EXPECT_EQ(Mode(backup + "/transport.mdb"), 0600);
  EXPECT_EQ(Mode(backup + "/cases.mdb"), 0600);

  ToolRun busy = agent_tool({"restore", "-c", cfg, "--from", backup}, Data("agent-busy.log"));
  EXPECT_EQ(busy.code, 1) << busy.output;
  EXPECT_NE(busy.output.find("in use"), std::string::npos) << busy.output;
  daemon.Signal(SIGTERM);
  ASSERT_EQ(daemon.Wait(15000), 0) << Slurp(data + ".log");

  const std::string fresh = Data("counsel-restored"), fresh_cfg = agent_config(fresh);
  ToolRun r = agent_tool({"restore", "-c", fresh_cfg, "--from", backup}, Data("agent-restore.log"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(Field(r.output, "inbox"), std::to_string(inbox) + " (as in the manifest)");
  Process restored;
  ASSERT_TRUE(start_daemon(restored, fresh_cfg, fresh));
  EXPECT_GE(inbox_of(fresh_cfg), inbox);
  restored.Signal(SIGTERM);
  EXPECT_EQ(restored.Wait(15000), 0) << Slurp(fresh + ".log");
  EXPECT_EQ(original_->Stop(), 0);
}

// What an agent at the escrow had in data_dir/linkage, written through its own store.
struct EscrowFixtureData {
  Bytes tag;     // of the first held share
  Bytes sealed;  // that share's sealed record
};

// Two links, one match, and two shares deposited by two agencies on two identifiers (no
// match): the linkage store of an escrow that is also a center. Also makes the empty
// transport and case stores a data_dir has.
EscrowFixtureData FillLinkageStore(const std::string& data_dir) {
  EscrowFixtureData out;
  std::filesystem::create_directories(data_dir);
  auto transport = agent::TransportStore::Open(data_dir + "/transport", agent::StoreOptions{});
  EXPECT_TRUE(transport.ok()) << transport.status().ToString();
  auto cases = agent::CaseStore::Open(data_dir + "/cases");
  EXPECT_TRUE(cases.ok()) << cases.status().ToString();
  auto store = agent::LinkageStore::Open(data_dir + "/linkage", 2);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  if (!store.ok()) return out;
  const UnixMillis now = SystemClock::Get().NowMillis();
  for (const char* id : {"00112233445566778899aabbccddeeff", "ffeeddccbbaa99887766554433221100"}) {
    EXPECT_TRUE((*store)
                    ->PutLink({id, "case-1", "phone", "ab12", "escrow", "cd34", "op", now,
                               now + kMillisPerDay})
                    .ok());
  }
  EXPECT_TRUE((*store)
                  ->PutMatch({"0123456789abcdef0123456789abcdef",
                              "case-1",
                              "phone",
                              "escrow",
                              "ef56",
                              {{"other-center", now - kMillisPerDay, now, 2, 1283}},
                              now,
                              now})
                  .ok());
  for (const char* agency : {"seoul-wee-01", "seoul-police-03"}) {
    linkage::Pseudonym p;
    randombytes_buf(p.data(), p.size());
    linkage::EscrowRecord rec{agency, "case-9", linkage::IdentifierKind::kPhone, now, now, 0, 0};
    auto entry = linkage::MakeEscrowEntry(p, rec, 2, now + kMillisPerDay);
    EXPECT_TRUE(entry.ok()) << entry.status().ToString();
    if (!entry.ok()) return out;
    auto held = (*store)->Deposit({agency, "aa55", "case-9", now + kMillisPerDay}, *entry, now);
    EXPECT_TRUE(held.ok() && !held->has_value()) << held.status().ToString();
    if (out.tag.empty()) out = {entry->tag, entry->sealed_record};
  }
  auto held = (*store)->HeldEntries();
  EXPECT_TRUE(held.ok() && *held == 2u);
  return out;
}

bool BackupFileContains(const std::string& path, ByteView needle) {
  const std::string text = Slurp(path);
  return std::search(text.begin(), text.end(), needle.begin(), needle.end(),
                     [](char a, uint8_t b) { return static_cast<uint8_t>(a) == b; }) != text.end();
}

// An agency's linkage records (entries sent, notices received) are in its backup and come
// back with a restore; an escrow's shares and deposits never are (agent/backup.h): not in
// the backup's file, not restored, and a backup that holds them anyway is refused.
TEST_F(BackupTest, AgentBackupKeepsLinkageRecordsButNeverEscrowShares) {
  ASSERT_TRUE(original_->Start());
  const std::string data = Data("escrow-agent"), cfg = AgentConfig(data);
  const EscrowFixtureData held = FillLinkageStore(data);
  ASSERT_FALSE(held.tag.empty());
  ASSERT_TRUE(BackupFileContains(data + "/linkage/data.mdb", held.tag))
      << "the share is in the store";

  const std::string backup = Data("escrow-backup");
  ToolRun b = AgentTool({"backup", "-c", cfg, "--out", backup}, Data("escrow-backup.log"));
  ASSERT_EQ(b.code, 0) << b.output;
  auto manifest = lmdb::ReadBackup(backup, nullptr);
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString();
  const lmdb::BackupEnvironment* env = manifest->Find("linkage");
  ASSERT_NE(env, nullptr) << b.output;
  EXPECT_EQ(env->databases.at("links"), 2u);
  EXPECT_EQ(env->databases.at("matches"), 1u);
  EXPECT_EQ(env->databases.count("escrow_entries"), 0u);
  EXPECT_EQ(env->databases.count("escrow_deposits"), 0u);
  EXPECT_EQ(Mode(backup + "/linkage.mdb"), 0600);
  EXPECT_FALSE(BackupFileContains(backup + "/linkage.mdb", held.tag));
  EXPECT_FALSE(BackupFileContains(backup + "/linkage.mdb", ByteView(held.sealed).first(32)));
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(backup)) files += e.exists() ? 1 : 0;
  EXPECT_EQ(files, 4u) << "cases, linkage, transport and the manifest; no scratch file left";

  // Into a data_dir whose linkage store holds anything: refused, nothing put in place.
  const std::string half = Data("escrow-half"), half_cfg = AgentConfig(half);
  std::filesystem::create_directories(half);
  ASSERT_TRUE(agent::LinkageStore::Open(half + "/linkage", 2).ok());
  ToolRun full = AgentTool({"restore", "-c", half_cfg, "--from", backup}, Data("half.log"));
  EXPECT_EQ(full.code, 1) << full.output;
  EXPECT_NE(full.output.find(half + "/linkage"), std::string::npos) << full.output;
  EXPECT_FALSE(std::filesystem::exists(half + "/cases/data.mdb"));

  const std::string fresh = Data("escrow-restored"), fresh_cfg = AgentConfig(fresh);
  ToolRun r = AgentTool({"restore", "-c", fresh_cfg, "--from", backup}, Data("escrow-restore.log"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(Field(r.output, "linkage"),
            "2 entries sent, 1 notices (as in the manifest; an escrow's entries are never in a "
            "backup)")
      << r.output;
  {
    auto store = agent::LinkageStore::Open(fresh + "/linkage", 2);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto links = (*store)->Links();
    auto matches = (*store)->Matches();
    auto shares = (*store)->HeldEntries();
    ASSERT_TRUE(links.ok() && matches.ok() && shares.ok());
    EXPECT_EQ(links->size(), 2u);
    ASSERT_EQ(matches->size(), 1u);
    EXPECT_EQ(matches->front().others.at(0).items, 1283u);
    EXPECT_EQ(*shares, 0u);
  }

  // A backup whose linkage copy holds the escrow's tables (made by hand, as an older tool
  // or an edited backup would): refused before anything is put in place.
  const std::string whole = Data("escrow-whole");
  {
    auto w = lmdb::BackupWriter::Create(whole);
    ASSERT_TRUE(w.ok());
    for (const char* e : {"cases", "linkage", "transport"}) {
      ASSERT_TRUE((*w)->AddEnvironment(e, data + "/" + e).ok()) << e;
    }
    (*w)->manifest().kind = "agent";
    (*w)->manifest().id = kRecipient;
    ASSERT_TRUE((*w)->Finish().ok());
  }
  const std::string other = Data("escrow-other"), other_cfg = AgentConfig(other);
  ToolRun refused = AgentTool({"restore", "-c", other_cfg, "--from", whole}, Data("whole.log"));
  EXPECT_EQ(refused.code, 1) << refused.output;
  EXPECT_NE(refused.output.find("escrow entries are never restored"), std::string::npos)
      << refused.output;
  EXPECT_FALSE(std::filesystem::exists(other + "/linkage/data.mdb"));
  EXPECT_FALSE(std::filesystem::exists(other + "/cases/data.mdb"));
  EXPECT_EQ(original_->Stop(), 0);
}

}  // namespace
}  // namespace refbus::testing
