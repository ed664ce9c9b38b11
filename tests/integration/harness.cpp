#include "tests/integration/harness.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/file.h"
#include "core/zmq.h"
#include "keys/envelope.h"
#include "keys/keyfile.h"
#include "schema/codec.h"

namespace refbus::testing {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::optional<double> Sample(const std::string& body, const std::string& name_and_labels) {
  for (const auto& line : Lines(body)) {
    if (line.rfind(name_and_labels + " ", 0) == 0) {
      return std::stod(line.substr(name_and_labels.size() + 1));
    }
  }
  return std::nullopt;
}

std::string PromtoolProblems(const std::string& text, const std::string& dir) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    return "promtool is not installed: run deploy/install-deps.sh (Debian package prometheus) "
           "to validate the exposition format";
  }
  const std::string path = dir + "/metrics.txt";
  std::ofstream(path) << text;
  FILE* p = ::popen(("promtool check metrics < '" + path + "' 2>&1").c_str(), "r");
  if (p == nullptr) return "cannot run promtool";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int status = ::pclose(p);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !out.empty()) {
    return "promtool check metrics exit " + std::to_string(status) + ": " + out +
           "\n--- the text:\n" + text;
  }
  return "";
}
namespace fs = std::filesystem;

std::string MakeTempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + ".XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* d = ::mkdtemp(buf.data());
  if (d == nullptr) ADD_FAILURE() << "mkdtemp failed";
  return d == nullptr ? "/tmp" : std::string(d);
}

void RemoveTree(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
}

std::string BinDir() { return REFBUS_BIN_DIR; }

// ------------------------------------------------------------------- Federation

bool Federation::Create(const std::string& root, const std::vector<std::string>& brokers,
                        const std::vector<AgencySpec>& agencies) {
  root_ = root;
  UnixMillis now = SystemClock::Get().NowMillis();
  auto anchor = keys::InitAuthority(root_ + "/authority", "test-authority", nullptr, now);
  if (!anchor.ok()) {
    ADD_FAILURE() << "authority: " << anchor.status().ToString();
    return false;
  }
  keys::IssueRequest req;
  req.authority_dir = root_ + "/authority";
  req.federation = "refbus-test";
  for (const auto& b : brokers) {
    keys::Listing l;
    l.region = b;
    auto r = keys::InitParty(Dir(b), b, schema::PartyKind::kBroker, l, nullptr, now);
    if (!r.ok()) {
      ADD_FAILURE() << b << ": " << r.status().ToString();
      return false;
    }
    req.record_paths.push_back(Dir(b) + "/" + keys::RecordFileName(b));
    parties_.push_back(b);
  }
  for (const auto& a : agencies) {
    keys::Listing l;
    l.agency_type = a.type;
    l.home_broker = a.home_broker;
    auto r = keys::InitParty(Dir(a.id), a.id, schema::PartyKind::kAgency, l, nullptr, now);
    if (!r.ok()) {
      ADD_FAILURE() << a.id << ": " << r.status().ToString();
      return false;
    }
    req.record_paths.push_back(Dir(a.id) + "/" + keys::RecordFileName(a.id));
    parties_.push_back(a.id);
  }
  req.out_path = root_ + "/directory";
  auto sd = keys::IssueDirectory(req, now);
  if (!sd.ok()) {
    ADD_FAILURE() << "issue: " << sd.status().ToString();
    return false;
  }
  directory_ = *sd;
  for (const auto& p : parties_) {
    std::error_code ec;
    fs::copy_file(root_ + "/authority/authority.pub", Dir(p) + "/authority.pub",
                  fs::copy_options::overwrite_existing, ec);
    if (ec || !keys::WriteDirectoryFile(Dir(p) + "/directory", *sd).ok()) {
      ADD_FAILURE() << "cannot distribute the directory to " << p;
      return false;
    }
  }
  return true;
}

bool Federation::Reissue(const keys::DirectoryEdit& edit,
                         const std::vector<std::string>& add_records) {
  keys::IssueRequest req;
  req.authority_dir = root_ + "/authority";
  req.edit = edit;
  req.record_paths = add_records;
  req.out_path = root_ + "/directory";
  auto sd = keys::IssueDirectory(req, SystemClock::Get().NowMillis());
  if (!sd.ok()) {
    ADD_FAILURE() << "reissue: " << sd.status().ToString();
    return false;
  }
  directory_ = *sd;
  for (const auto& p : parties_) {
    if (!keys::WriteDirectoryFile(Dir(p) + "/directory", *sd).ok()) return false;
  }
  return true;
}

bool Federation::AddAuditor(const std::string& id, std::vector<schema::Role> roles) {
  keys::Listing l;
  l.display_name = id;
  l.roles = std::move(roles);
  auto rec = keys::InitParty(Dir(id), id, schema::PartyKind::kAuditor, l, nullptr,
                             SystemClock::Get().NowMillis());
  if (!rec.ok()) {
    ADD_FAILURE() << "auditor " << id << ": " << rec.status().ToString();
    return false;
  }
  parties_.push_back(id);
  std::filesystem::copy_file(root_ + "/authority/authority.pub", Dir(id) + "/authority.pub",
                             std::filesystem::copy_options::overwrite_existing);
  return Reissue({}, {Dir(id) + "/" + keys::RecordFileName(id)});
}

keys::Identity Federation::LoadIdentity(const std::string& party) const {
  auto id = keys::LoadIdentity(Dir(party) + "/identity.key", nullptr);
  if (!id.ok()) {
    ADD_FAILURE() << "load " << party << ": " << id.status().ToString();
    std::abort();
  }
  return std::move(*id);
}

// ------------------------------------------------------------------- Process

Process::~Process() {
  if (pid_ > 0) Kill9();
}

bool Process::Start(const std::vector<std::string>& argv, const std::string& log_path) {
  pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) {
    FILE* f = std::fopen(log_path.c_str(), "a");
    if (f != nullptr) {
      ::dup2(fileno(f), 1);
      ::dup2(fileno(f), 2);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    std::_Exit(127);
  }
  pid_ = pid;
  return true;
}

void Process::Signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

int Process::Wait(int timeout_ms) {
  if (pid_ <= 0) return -1;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(Scaled(timeout_ms));
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void Process::Kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

// ------------------------------------------------------------------- Broker

Broker::Broker(const Federation& fed, std::string id, std::string data_dir)
    : fed_(fed), id_(std::move(id)), data_dir_(std::move(data_dir)) {
  log_ = data_dir_ + ".log";
}

std::string Broker::WriteConfig() const {
  std::string dir = fed_.Dir(id_);
  std::string cfg = data_dir_ + ".toml";
  std::string endpoint_file = data_dir_ + ".endpoint";
  ::unlink(endpoint_file.c_str());
  std::ofstream out(cfg);
  out << "[broker]\n"
      << "id = \"" << id_ << "\"\n"
      << "bind = \"" << bind_ << "\"\n"
      << "data_dir = \"" << data_dir_ << "\"\n"
      << "key_file = \"" << dir << "/identity.key\"\n"
      << "directory = \"" << dir << "/directory\"\n"
      << "anchor = \"" << dir << "/authority.pub\"\n"
      << "trust_state = \"" << data_dir_ << ".trust-state\"\n"
      << "endpoint_file = \"" << endpoint_file << "\"\n"
      << "[limits]\n"
      << limits_ << "\n"
      << "[policy]\n"
      << policy_ << "\n"
      << extra_ << "\n";
  return cfg;
}

int Broker::StartExpectingExit(int timeout_ms) {
  if (!process_.Start({BinDir() + "/refbus-broker", "-c", WriteConfig()}, log_)) return -1;
  int code = process_.Wait(timeout_ms);
  if (code < 0) process_.Kill9();
  return code;
}

bool Broker::Start() {
  std::string cfg = WriteConfig();
  std::string endpoint_file = data_dir_ + ".endpoint";
  if (!process_.Start({BinDir() + "/refbus-broker", "-c", cfg}, log_)) {
    ADD_FAILURE() << "cannot start refbus-broker";
    return false;
  }
  for (int i = 0; i < 500; ++i) {  // each Wait(10) is stretched by kSlow
    std::ifstream in(endpoint_file);
    std::string ep;
    if (in && std::getline(in, ep) && !ep.empty()) {
      endpoint_ = ep;
      return true;
    }
    if (process_.Wait(10) >= 0) break;  // it exited
  }
  ADD_FAILURE() << "refbus-broker did not start; its log:\n" << Log();
  return false;
}

int Broker::Stop() {
  process_.Signal(SIGTERM);
  return process_.Wait(10000);
}

std::string Broker::StatusJson() const {
  std::ifstream in(data_dir_ + "/status.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Broker::Log() const {
  std::ifstream in(log_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ------------------------------------------------------------------- RawClient

RawClient::RawClient(const keys::Identity& me, ByteView server_public, const std::string& endpoint)
    : sock_(ctx_, zmq::socket_type::dealer) {
  Status s = zmqx::ConfigureCurveClient(sock_, server_public, me.transport_public_key(),
                                        me.transport_secret_key().view());
  if (!s.ok()) ADD_FAILURE() << s.ToString();
  sock_.connect(endpoint);
}

std::unique_ptr<RawClient> RawClient::WithUnknownKey(ByteView server_public,
                                                     const std::string& endpoint) {
  std::unique_ptr<RawClient> c(new RawClient());
  c->sock_ = zmq::socket_t(c->ctx_, zmq::socket_type::dealer);
  Bytes pub(32), sec(32);
  crypto_box_keypair(pub.data(), sec.data());
  Status s = zmqx::ConfigureCurveClient(c->sock_, server_public, pub, sec);
  if (!s.ok()) ADD_FAILURE() << s.ToString();
  c->sock_.connect(endpoint);
  return c;
}

void RawClient::SendFrame(const schema::Frame& frame) { SendRaw(schema::EncodeFrame(frame)); }

void RawClient::SendRaw(ByteView bytes) {
  sock_.send(zmq::buffer(bytes.data(), bytes.size()), zmq::send_flags::none);
}

std::vector<Bytes> RawClient::DrainAndAck(int idle_ms, bool skip_others) {
  std::vector<Bytes> got;
  while (auto d = Receive(idle_ms)) {
    if (d->type != schema::Frame::Type::kDeliver) {
      if (!skip_others) {
        ADD_FAILURE() << "expected a delivery, got frame type " << static_cast<int>(d->type);
      }
      continue;
    }
    auto e = schema::DecodeEnvelope(d->deliver.envelope);
    if (!e.ok()) {
      ADD_FAILURE() << "undecodable delivery: " << e.status().ToString();
      continue;
    }
    got.push_back(e->header.message_id);
    schema::Frame ack;
    ack.type = schema::Frame::Type::kAck;
    ack.request_id = d->request_id;
    ack.ack.message_id = e->header.message_id;
    SendFrame(ack);
  }
  return got;
}

std::optional<schema::Frame> RawClient::Receive(int timeout_ms) {
  if (!backlog_.empty()) {
    schema::Frame f = std::move(backlog_.front());
    backlog_.erase(backlog_.begin());
    return f;
  }
  zmq::pollitem_t items[] = {{sock_.handle(), 0, ZMQ_POLLIN, 0}};
  zmq::poll(items, 1, std::chrono::milliseconds(Scaled(timeout_ms)));
  if (!(items[0].revents & ZMQ_POLLIN)) return std::nullopt;
  zmq::message_t m;
  if (!sock_.recv(m, zmq::recv_flags::none)) return std::nullopt;
  auto f = schema::DecodeFrame(ByteView(static_cast<const uint8_t*>(m.data()), m.size()));
  if (!f.ok()) {
    ADD_FAILURE() << "broker sent an undecodable frame: " << f.status().ToString();
    return std::nullopt;
  }
  return *f;
}

std::optional<schema::Frame> RawClient::Expect(schema::Frame::Type type, uint64_t request_id,
                                               int timeout_ms) {
  for (size_t i = 0; i < backlog_.size(); ++i) {
    if (backlog_[i].type == type && backlog_[i].request_id == request_id) {
      schema::Frame f = std::move(backlog_[i]);
      backlog_.erase(backlog_.begin() + static_cast<long>(i));
      return f;
    }
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(Scaled(timeout_ms));
  while (std::chrono::steady_clock::now() < deadline) {
    zmq::pollitem_t items[] = {{sock_.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 1, std::chrono::milliseconds(50));
    if (!(items[0].revents & ZMQ_POLLIN)) continue;
    zmq::message_t m;
    if (!sock_.recv(m, zmq::recv_flags::none)) continue;
    auto f = schema::DecodeFrame(ByteView(static_cast<const uint8_t*>(m.data()), m.size()));
    if (!f.ok()) {
      ADD_FAILURE() << "broker sent an undecodable frame: " << f.status().ToString();
      continue;
    }
    bool match = f->request_id == request_id &&
                 (f->type == type ||
                  (type == schema::Frame::Type::kAck && f->type == schema::Frame::Type::kNack));
    if (match) return *f;
    backlog_.push_back(std::move(*f));
  }
  return std::nullopt;
}

bool RawClient::Hello(const std::string& party_id, int timeout_ms) {
  schema::Frame f;
  f.type = schema::Frame::Type::kHello;
  f.request_id = next_request_++;
  f.hello.party_id = party_id;
  SendFrame(f);
  auto r = Expect(schema::Frame::Type::kWelcome, f.request_id, timeout_ms);
  return r.has_value();
}

std::optional<schema::Frame> RawClient::Submit(const Bytes& envelope, int timeout_ms) {
  schema::Frame f;
  f.type = schema::Frame::Type::kSubmit;
  f.request_id = next_request_++;
  f.submit.envelope = envelope;
  SendFrame(f);
  return Expect(schema::Frame::Type::kAck, f.request_id, timeout_ms);
}

Bytes SealTo(const keys::Identity& sender, const schema::Directory& dir,
             const std::vector<std::string>& recipients, UnixMillis now, UnixMillis lifetime_ms,
             size_t content_bytes) {
  keys::SealRequest req;
  req.kind = schema::MessageKind::kOpaque;
  req.case_ref = "test-case-0001";
  req.now = now;
  req.lifetime_ms = lifetime_ms;
  for (const auto& r : recipients) {
    auto p = keys::CurrentPrekey(dir, r, now);
    if (!p.ok()) {
      ADD_FAILURE() << "prekey of " << r << ": " << p.status().ToString();
      return {};
    }
    req.recipients.push_back(*p);
  }
  Bytes content = keys::RandomBytes(content_bytes);
  auto env = keys::SealEnvelope(sender, req, content);
  if (!env.ok()) {
    ADD_FAILURE() << "seal: " << env.status().ToString();
    return {};
  }
  return *env;
}

Bytes SealWatchListByHand(const keys::Identity& from, const schema::Directory& dir,
                          const std::string& to, const std::string& file_text) {
  schema::DeletionWatchList body;
  body.file = file_text;
  return SealWatchListBodyByHand(from, dir, to, std::move(body));
}

Bytes SealWatchListBodyByHand(const keys::Identity& from, const schema::Directory& dir,
                              const std::string& to, schema::DeletionWatchList body) {
  schema::CaseMessage m;
  m.type = schema::CaseMessage::Type::kDeletionWatchList;
  m.watch_list = std::move(body);
  keys::SealRequest req;
  req.kind = schema::MessageKind::kDeletionWatchList;
  req.now = SystemClock::Get().NowMillis();
  req.lifetime_ms = kMillisPerHour;
  auto prekey = keys::CurrentPrekey(dir, to, req.now);
  if (!prekey.ok()) {
    ADD_FAILURE() << "prekey of " << to << ": " << prekey.status().ToString();
    return {};
  }
  req.recipients.push_back(*prekey);
  auto env = keys::SealEnvelope(from, req, schema::EncodeCaseMessage(m));
  if (!env.ok()) ADD_FAILURE() << "seal: " << env.status().ToString();
  return env.ok() ? *env : Bytes{};
}

}  // namespace refbus::testing
