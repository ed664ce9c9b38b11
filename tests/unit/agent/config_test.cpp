// refbus-agent run's configuration (agent/config.h): every setting checked, with errors
// that name the file and the setting.
#include "agent/config.h"

#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "core/clock.h"
#include "tests/unit/test_util.h"

namespace refbus::agent {
namespace {

using ::refbus::test::HasError;
using ::refbus::test::IsOk;
using ::refbus::test::TempDir;

class AgentConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* f : {"identity.key", "directory", "authority.pub"}) {
      test::WriteRaw(dir_.Join(f), AsBytes("x"), 0600);
    }
  }

  std::string Write(const std::string& text) {
    std::string path = dir_.Join("agent.toml");
    std::ofstream(path) << text;
    return path;
  }

  static std::string Base() {
    return "[agent]\n"
           "id = \"incheon-wee-01\"\n"
           "data_dir = \"data\"\n"
           "key_file = \"identity.key\"\n"
           "directory = \"directory\"\n"
           "anchor = \"authority.pub\"\n"
           "trust_state = \"trust-state\"\n";
  }

  TempDir dir_;
};

TEST_F(AgentConfigTest, MinimalConfigGetsDefaultsAndResolvedPaths) {
  auto c = LoadAgentConfig(Write(Base()));
  ASSERT_TRUE(IsOk(c));
  EXPECT_EQ(c->id, "incheon-wee-01");
  EXPECT_EQ(c->data_dir, dir_.Join("data"));
  EXPECT_EQ(c->key_file, dir_.Join("identity.key"));
  EXPECT_EQ(c->trust_state, dir_.Join("trust-state"));
  EXPECT_EQ(c->api_listen, "127.0.0.1:0");
  EXPECT_EQ(c->api_url_file, dir_.Join("data/api.url"));
  EXPECT_EQ(c->api_token_file, dir_.Join("data/api.token"));
  EXPECT_EQ(c->grant_key_dir, dir_.Join("data/grant-keys"));
  EXPECT_EQ(c->api_command_timeout_ms, 30000u);
  EXPECT_TRUE(c->broker_endpoint.empty());
  EXPECT_TRUE(c->passphrase_file.empty());
}

TEST_F(AgentConfigTest, PathsAreAbsoluteEvenForARelativeConfigPath) {
  Write(Base());
  char old[4096];
  ASSERT_NE(::getcwd(old, sizeof(old)), nullptr);
  ASSERT_EQ(::chdir(dir_.path().c_str()), 0);
  auto c = LoadAgentConfig("agent.toml");
  ASSERT_EQ(::chdir(old), 0);
  ASSERT_TRUE(IsOk(c));
  EXPECT_EQ(c->key_file, dir_.Join("identity.key"));
  EXPECT_EQ(c->api_token_file, dir_.Join("data/api.token"));
}

TEST_F(AgentConfigTest, ApiSection) {
  auto c = LoadAgentConfig(Write(Base() +
                                 "broker_endpoint = \"tcp://127.0.0.1:7450\"\n"
                                 "[api]\n"
                                 "listen = \"127.0.0.1:8470\"\n"
                                 "url_file = \"run/url\"\n"
                                 "token_file = \"/etc/refbus/token\"\n"
                                 "command_timeout_ms = 5000\n"
                                 "allowed_hosts = [\"console.example\", \"p.example:8443\"]\n"));
  ASSERT_TRUE(IsOk(c));
  EXPECT_EQ(c->api_allowed_hosts, (std::vector<std::string>{"console.example", "p.example:8443"}));
  EXPECT_EQ(c->broker_endpoint, "tcp://127.0.0.1:7450");
  EXPECT_EQ(c->api_listen, "127.0.0.1:8470");
  EXPECT_EQ(c->api_url_file, dir_.Join("run/url"));
  EXPECT_EQ(c->api_token_file, "/etc/refbus/token");
  EXPECT_EQ(c->api_command_timeout_ms, 5000u);
}

// [keys]: a weekly rotation of 30-day prekeys, kept 30 days after expiry, unless set.
TEST_F(AgentConfigTest, KeysSectionSetsThePrekeyRotation) {
  auto c = LoadAgentConfig(Write(Base()));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->prekey_rotate_ms, 7 * static_cast<uint64_t>(kMillisPerDay));
  EXPECT_EQ(c->prekey_lifetime_ms, 30 * static_cast<uint64_t>(kMillisPerDay));
  EXPECT_EQ(c->prekey_keep_after_expiry_ms, 30 * static_cast<uint64_t>(kMillisPerDay));
  c = LoadAgentConfig(Write(Base() + "[keys]\nprekey_rotate_days = 3\n"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->prekey_rotate_ms, 3 * static_cast<uint64_t>(kMillisPerDay));
  c = LoadAgentConfig(Write(Base() +
                            "[keys]\ntest_prekey_rotate_ms = 2500\ntest_prekey_lifetime_ms = "
                            "9000\ntest_prekey_keep_after_expiry_ms = 1000\n"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->prekey_rotate_ms, 2500u);
  EXPECT_EQ(c->prekey_lifetime_ms, 9000u);
  EXPECT_EQ(c->prekey_keep_after_expiry_ms, 1000u);
}

TEST_F(AgentConfigTest, DeletionSection) {
  auto c = LoadAgentConfig(Write(Base()));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->deletion_chunk_timeout_ms, 60000u);
  EXPECT_EQ(c->deletion_test_skip_chunk, -1);
  EXPECT_EQ(c->deletion_test_skip_watch_part, -1);
  c = LoadAgentConfig(Write(Base() + "[deletion]\nchunk_timeout_ms = 1500\ntest_skip_chunk = 0\n"
                                     "test_skip_watch_part = 1\n"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->deletion_chunk_timeout_ms, 1500u);
  EXPECT_EQ(c->deletion_test_skip_chunk, 0);
  EXPECT_EQ(c->deletion_test_skip_watch_part, 1);
}

TEST_F(AgentConfigTest, LinkageSection) {
  auto c = LoadAgentConfig(Write(Base()));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->linkage_threshold, 2u);
  EXPECT_TRUE(c->linkage_first.empty());
  c = LoadAgentConfig(
      Write(Base() + "[linkage]\nfirst_evaluator = \"eval-a\"\nsecond_evaluator = \"eval-b\"\n"
                     "second_endpoint = \"tcp://127.0.0.1:7451\"\nescrow = \"central\"\n"
                     "threshold = 3\ntimeout_ms = 2000\n"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->linkage_first, "eval-a");
  EXPECT_EQ(c->linkage_second_endpoint, "tcp://127.0.0.1:7451");
  EXPECT_EQ(c->linkage_escrow, "central");
  EXPECT_EQ(c->linkage_threshold, 3u);
  EXPECT_EQ(c->linkage_timeout_ms, 2000u);
  for (const auto& [text, says] : std::vector<std::pair<std::string, std::string>>{
           {"[linkage]\nthreshold = 1\n", "linkage.threshold is 1"},
           {"[linkage]\nfirst_endpoint = \"127.0.0.1:1\"\n", "linkage.first_endpoint must start"},
           {"[linkage]\nkey = \"x\"\n", "setting linkage.key is not a known setting"}}) {
    EXPECT_TRUE(
        HasError(LoadAgentConfig(Write(Base() + text)), Status::Code::kInvalidArgument, says))
        << text;
  }
}

TEST_F(AgentConfigTest, BadSettingsAreNamed) {
  struct Case {
    std::string text;
    std::string says;
  };
  const Case cases[] = {
      {Base() + "colour = \"blue\"\n", "setting agent.colour is not a known setting"},
      {Base() + "[api]\nport = 80\n", "setting api.port is not a known setting"},
      {Base() + "[broker]\n", "unknown section [broker]"},
      {Base() + "[api]\nlisten = \"0.0.0.0:8470\"\n", "setting api.listen"},
      {Base() + "[api]\nlisten = \"192.168.0.5:8470\"\n", "not a loopback address"},
      {Base() + "[api]\nlisten = 8470\n", "setting api.listen must be a string"},
      {Base() + "[api]\ncommand_timeout_ms = 5\n", "api.command_timeout_ms is 5"},
      {Base() + "[api]\nallowed_hosts = \"console.example\"\n", "api.allowed_hosts must be a list"},
      {Base() + "[api]\nallowed_hosts = [\"http://x.example/\"]\n", "api.allowed_hosts holds"},
      {Base() + "[api]\nallowed_hosts = [\"x.example:0\"]\n", "api.allowed_hosts holds"},
      {Base() + "broker_endpoint = \"127.0.0.1:7450\"\n", "agent.broker_endpoint must start"},
      {Base() + "passphrase_file = \"nope\"\n", "agent.passphrase_file) does not exist"},
      {"[agent]\nid = \"incheon-wee-01\"\n", "setting agent.data_dir is missing"},
      {"[agent]\nid = \"Bad Id\"\n", "agent.id is not a valid party id"},
      {"[agent]\nid = 3\n", "agent.id must be a string"},
      {"[agent\n", "line 1"},
      {Base() + "[keys]\nprekey_rotate_days = 30\n", "keys.prekey_rotate_days is 30"},
      {Base() + "[keys]\nprekey_rotate_days = 0\n", "keys.prekey_rotate_days is 0"},
      {Base() + "[keys]\nrotate = 3\n", "setting keys.rotate is not a known setting"},
      {Base() + "[deletion]\nchunk_timeout_ms = 5\n", "deletion.chunk_timeout_ms is 5"},
      {Base() + "[deletion]\ntimeout = 5\n", "setting deletion.timeout is not a known setting"},
      {Base() + "[keys]\ntest_prekey_rotate_ms = 5000\ntest_prekey_lifetime_ms = 5000\n",
       "shorter than a prekey's lifetime"},
  };
  for (const auto& tc : cases) {
    std::string path = Write(tc.text);
    EXPECT_TRUE(HasError(LoadAgentConfig(path), Status::Code::kInvalidArgument, tc.says))
        << tc.text;
  }
  std::string text = Base();
  text.replace(text.find("identity.key"), 12, "missing.key");
  EXPECT_TRUE(HasError(LoadAgentConfig(Write(text)), Status::Code::kInvalidArgument,
                       "(from setting agent.key_file) does not exist"));
}

// The console is served with the API: a LAN listen refuses to start without TLS, and says
// how to get TLS; with a certificate and key set it is accepted (the API serves HTTPS).
TEST_F(AgentConfigTest, ConsoleOnANetworkNeedsTls) {
  const std::string lan = "[api]\nlisten = \"192.168.0.5:8443\"\n";
  EXPECT_TRUE(HasError(LoadAgentConfig(Write(Base() + lan)), Status::Code::kInvalidArgument,
                       "only over TLS: set [console] tls_cert and tls_key"));
  const std::string tls = "[console]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n";
  auto on_lan = LoadAgentConfig(Write(Base() + lan + tls));
  ASSERT_TRUE(IsOk(on_lan));
  EXPECT_EQ(on_lan->api_listen, "192.168.0.5:8443");
  EXPECT_TRUE(
      HasError(LoadAgentConfig(Write(Base() + "[api]\nlisten = \"lan.example:8443\"\n" + tls)),
               Status::Code::kInvalidArgument, "not a host name"));
  EXPECT_TRUE(HasError(LoadAgentConfig(Write(Base() + "[console]\ntls_cert = \"c.pem\"\n")),
                       Status::Code::kInvalidArgument, "setting console.tls_key is missing"));
  EXPECT_TRUE(HasError(LoadAgentConfig(Write(Base() + "[console]\nport = 1\n")),
                       Status::Code::kInvalidArgument,
                       "setting console.port is not a known setting"));
  auto loopback = LoadAgentConfig(Write(Base() + tls));
  ASSERT_TRUE(IsOk(loopback));
  EXPECT_EQ(loopback->console_tls_cert, dir_.Join("c.pem"));
  EXPECT_EQ(loopback->console_tls_key, dir_.Join("k.pem"));
}

TEST_F(AgentConfigTest, MetricsAbsentIsOffLoopbackAcceptedOthersRefused) {
  auto off = LoadAgentConfig(Write(Base()));
  ASSERT_TRUE(IsOk(off));
  EXPECT_TRUE(off->metrics_bind.empty());
  auto on = LoadAgentConfig(
      Write(Base() + "[metrics]\nbind = \"[::1]:9471\"\nurl_file = \"metrics.url\"\n"));
  ASSERT_TRUE(IsOk(on));
  EXPECT_EQ(on->metrics_bind, "[::1]:9471");
  EXPECT_EQ(on->metrics_url_file, dir_.Join("metrics.url"));
  struct Case {
    std::string text;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {"[metrics]\nbind = \"0.0.0.0:9471\"\n",
            "setting metrics.bind is \"0.0.0.0:9471\", not a loopback address"},
           {"[metrics]\nbind = \"localhost:9471\"\n", "setting metrics.bind is \"localhost:9471\""},
           {"[metrics]\nbind = 9471\n", "setting metrics.bind must be a string"},
           {"[metrics]\nurl_file = \"m.url\"\n", "setting metrics.bind is missing"},
           {"[metrics]\nbind = \"127.0.0.1:0\"\nport = 1\n",
            "setting metrics.port is not a known setting"},
       }) {
    auto r = LoadAgentConfig(Write(Base() + c.text));
    EXPECT_TRUE(HasError(r, Status::Code::kInvalidArgument, c.error)) << c.text;
  }
}

}  // namespace
}  // namespace refbus::agent
