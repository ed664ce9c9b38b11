// Integration-test harness: a real federation on disk (the key ceremony of keys/ceremony.h),
// real refbus-broker processes, and a raw CURVE client that speaks frames directly so tests
// can send exactly the bytes they want (malformed, forged, replayed).
//
// A test that cannot set up what it needs fails with the reason; nothing is skipped.
#ifndef REFBUS_TESTS_INTEGRATION_HARNESS_H_
#define REFBUS_TESTS_INTEGRATION_HARNESS_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "core/bytes.h"
#include "core/clock.h"
#include "core/status.h"
#include "keys/ceremony.h"
#include "keys/identity.h"
#include "schema/types.h"
#include "schema/workflow.h"

namespace refbus::testing {

std::string MakeTempDir(const std::string& prefix);
void RemoveTree(const std::string& dir);
std::string BinDir();  // where refbus-* executables are (REFBUS_BIN_DIR)
// The whole file as bytes ("" if it cannot be read).
std::string Slurp(const std::string& path);

// Party ids several tests' federations share.
inline constexpr char kBroker[] = "seoul-broker";
inline constexpr char kAuditor[] = "audit-office";

// Prometheus text exposition: its lines; the value of the sample `name{labels}` if present;
// and what `promtool check metrics` finds wrong with it ("" when nothing), with the text
// written to DIR/metrics.txt for the check.
std::vector<std::string> Lines(const std::string& text);
std::optional<double> Sample(const std::string& body, const std::string& name_and_labels);
std::string PromtoolProblems(const std::string& text, const std::string& dir);

// How many times slower than the normal build this build runs the programs under test: 1
// normally, more under a sanitizer (CMake sets REFBUS_TEST_SLOW from REFBUS_SANITIZE;
// ThreadSanitizer runs a broker about ten times slower). Every wait and deadline of the
// harness is stretched by it, and tests stretch theirs with Scaled(); what a test asserts
// does not change, only how long it waits for it.
inline constexpr int kSlow = REFBUS_TEST_SLOW;
constexpr int Scaled(int ms) { return ms * kSlow; }

// A federation in a temp folder: an authority, brokers and agencies, each party in
// root/<id>/ with identity.key, authority.pub, directory.
class Federation {
 public:
  struct AgencySpec {
    std::string id;
    schema::AgencyType type;
    std::string home_broker;
  };
  // REQUIRES: called once; aborts the test (ADD_FAILURE + return false) on any error.
  bool Create(const std::string& root, const std::vector<std::string>& brokers,
              const std::vector<AgencySpec>& agencies);
  // Issues the next directory with the edit, and copies it into every party folder.
  bool Reissue(const keys::DirectoryEdit& edit, const std::vector<std::string>& add_records = {});
  // Makes an auditor's keys in Dir(id), lists it in the next directory (roles empty: the
  // default, audit and witness) and gives its folder the anchor and the directory; later
  // Reissues reach it too.
  bool AddAuditor(const std::string& id, std::vector<schema::Role> roles = {});

  const std::string& root() const { return root_; }
  std::string Dir(const std::string& party) const { return root_ + "/" + party; }
  keys::Identity LoadIdentity(const std::string& party) const;
  const schema::Directory& directory() const { return directory_.directory; }

 private:
  std::string root_;
  std::vector<std::string> parties_;
  schema::SignedDirectory directory_;
};

// A child process (fork + exec), killed with SIGKILL on destruction if still running.
class Process {
 public:
  Process() = default;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();
  bool Start(const std::vector<std::string>& argv, const std::string& log_path);
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // Waits for exit; returns the exit code, 128+signal if killed, -1 on timeout (timeouts
  // here and in Broker and RawClient are stretched by kSlow).
  int Wait(int timeout_ms);
  void Kill9();

 private:
  pid_t pid_ = -1;
};

// Writes a broker config and starts refbus-broker; endpoint() once it listens.
class Broker {
 public:
  Broker(const Federation& fed, std::string id, std::string data_dir);
  // Extra [limits] lines, e.g. "mailbox_quota = 3".
  void set_limits(std::string limits) { limits_ = std::move(limits); }
  // TOML lines for the [policy] section. Transport tests send OPAQUE envelopes without a
  // consent grant, which brokers refuse unless told otherwise.
  void set_policy(std::string policy) { policy_ = std::move(policy); }
  // More TOML appended to the config (whole sections, e.g. "[federation]\n...").
  void set_extra(std::string extra) { extra_ = std::move(extra); }
  // The bind address; by default "tcp://127.0.0.1:*". A restart on the same port sets it to
  // endpoint() first.
  void set_bind(std::string bind) { bind_ = std::move(bind); }
  // The file the broker writes its bound endpoint to (peers' endpoint_files name it).
  std::string endpoint_file() const { return data_dir_ + ".endpoint"; }
  // The broker's status file (JSON), as it last wrote it; empty if there is none.
  std::string StatusJson() const;
  bool Start();
  // Starts a broker that should refuse to start: waits for it to exit and returns its exit
  // code (128+N for signal N), or -1 if it still ran after timeout_ms (it is then killed).
  int StartExpectingExit(int timeout_ms);
  int Stop();  // SIGTERM; returns the exit code
  void Kill9() { process_.Kill9(); }
  const std::string& endpoint() const { return endpoint_; }
  const std::string& log_path() const { return log_; }
  std::string Log() const;
  Process& process() { return process_; }

 private:
  // Writes the config file (and removes a stale endpoint file); returns its path.
  std::string WriteConfig() const;
  const Federation& fed_;
  std::string id_, data_dir_, limits_, log_, endpoint_, extra_;
  std::string bind_ = "tcp://127.0.0.1:*";
  std::string policy_ = "allow_unscoped_opaque = true";
  Process process_;
};

// A raw client: DEALER with CURVE as some party, speaking frames.
class RawClient {
 public:
  // server_public: the broker's transport key.
  RawClient(const keys::Identity& me, ByteView server_public, const std::string& endpoint);
  // A client with CURVE keys that are in no directory.
  static std::unique_ptr<RawClient> WithUnknownKey(ByteView server_public,
                                                   const std::string& endpoint);
  void SendFrame(const schema::Frame& frame);
  void SendRaw(ByteView bytes);
  // Next frame within timeout_ms, or nullopt.
  std::optional<schema::Frame> Receive(int timeout_ms);
  // Next frame of the given type with the request id (others are kept in order).
  std::optional<schema::Frame> Expect(schema::Frame::Type type, uint64_t request_id,
                                      int timeout_ms);
  // As a recipient: receives deliveries and acks each, until none comes for idle_ms;
  // returns their message ids in arrival order. An undecodable delivery is a test failure,
  // and so is any other frame unless skip_others.
  std::vector<Bytes> DrainAndAck(int idle_ms, bool skip_others = false);
  bool Hello(const std::string& party_id, int timeout_ms = 3000);
  // Submit and wait for the ack or nack.
  std::optional<schema::Frame> Submit(const Bytes& envelope, int timeout_ms = 5000);

 private:
  RawClient() = default;
  zmq::context_t ctx_;
  zmq::socket_t sock_;
  std::vector<schema::Frame> backlog_;
  uint64_t next_request_ = 1;
};

// Seals an opaque envelope from sender to recipients using the directory's prekeys.
Bytes SealTo(const keys::Identity& sender, const schema::Directory& dir,
             const std::vector<std::string>& recipients, UnixMillis now,
             UnixMillis lifetime_ms = 24 * kMillisPerHour, size_t content_bytes = 1024);

// A deletion watch-list message (PROTOCOL.md 10.3) carrying file_text, sealed by hand as an
// agency writing its own client would: no rule of the sending agent applies, so what
// refuses it is the broker or the receiver.
Bytes SealWatchListByHand(const keys::Identity& sender, const schema::Directory& dir,
                          const std::string& to, const std::string& file_text);
// Any watch-list message body (a part, a request), unchecked: the encoder passes what it is
// given, so a part that contradicts itself reaches the receiver's decoder.
Bytes SealWatchListBodyByHand(const keys::Identity& sender, const schema::Directory& dir,
                              const std::string& to, schema::DeletionWatchList body);

}  // namespace refbus::testing

#endif  // REFBUS_TESTS_INTEGRATION_HARNESS_H_
