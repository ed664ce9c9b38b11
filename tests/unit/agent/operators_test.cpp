// Operator accounts (agent/operators.h) and sessions (agent/sessions.h): a real store file
// with real Argon2id and XChaCha20-Poly1305; sessions with a clock the test moves.
#include "agent/operators.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>

#include "agent/sessions.h"
#include "keys/crypto.h"
#include "tests/unit/test_util.h"

namespace refbus::agent {
namespace {

using ::refbus::test::HasCode;
using ::refbus::test::HasError;
using ::refbus::test::IsOk;
using ::refbus::test::Must;
using ::refbus::test::TempDir;

ByteView Pw(const std::string& s) { return AsBytes(s); }

const std::string kAlicePw = "correct horse battery";
const std::string kBobPw = "another long passphrase";

class OperatorStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    store_ = std::make_unique<OperatorStore>(dir_.Join("operators.json"));
  }
  TempDir dir_;
  std::unique_ptr<OperatorStore> store_;
};

TEST_F(OperatorStoreTest, AddThenUnlockSignsVerifiably) {
  ASSERT_TRUE(IsOk(store_->Add("alice", OperatorRole::kCaseworker, Pw(kAlicePw), 1000)));
  auto key = store_->Unlock("alice", Pw(kAlicePw));
  ASSERT_TRUE(IsOk(key));
  EXPECT_EQ(key->name(), "alice");
  EXPECT_EQ(key->role(), OperatorRole::kCaseworker);
  Bytes body = {1, 2, 3};
  Bytes sig = key->Sign(kLabelOperatorAction, body);
  auto rec = Must(store_->Find("alice"));
  EXPECT_TRUE(keys::VerifySignature(rec.public_key, kLabelOperatorAction, body, sig));
  EXPECT_FALSE(keys::VerifySignature(rec.public_key, keys::kLabelConsentGrant, body, sig));
}

TEST_F(OperatorStoreTest, FileIsPrivateAndHoldsNoPasswordOrSecret) {
  ASSERT_TRUE(IsOk(store_->Add("alice", OperatorRole::kCaseworker, Pw(kAlicePw), 1000)));
  EXPECT_EQ(test::FileMode(store_->path()), 0600);
  Bytes file = test::ReadAll(store_->path());
  std::string text(file.begin(), file.end());
  EXPECT_EQ(text.find(kAlicePw), std::string::npos) << "the password is in the file";
  auto rec = Must(store_->Find("alice"));
  EXPECT_NE(text.find(HexEncode(rec.public_key)), std::string::npos);
  // An Ed25519 secret key is seed || public key: in the clear, its second half would be
  // the public key.
  ASSERT_EQ(rec.sealed_secret.size(), size_t{crypto_sign_SECRETKEYBYTES + 16});
  EXPECT_FALSE(
      std::equal(rec.public_key.begin(), rec.public_key.end(), rec.sealed_secret.begin() + 32));
  EXPECT_NE(text.find("$argon2id$"), std::string::npos) << "the hash is Argon2id";
}

TEST_F(OperatorStoreTest, WrongPasswordAndUnknownNameLookAlike) {
  ASSERT_TRUE(IsOk(store_->Add("alice", OperatorRole::kCaseworker, Pw(kAlicePw), 1000)));
  auto wrong = store_->Unlock("alice", Pw(kBobPw));
  auto unknown = store_->Unlock("mallory", Pw(kBobPw));
  EXPECT_TRUE(HasCode(wrong, Status::Code::kUnauthenticated));
  EXPECT_TRUE(HasCode(unknown, Status::Code::kUnauthenticated));
  EXPECT_EQ(wrong.status().message(), unknown.status().message());
}

TEST_F(OperatorStoreTest, DisabledKeepsRecordAndRefusesLogin) {
  ASSERT_TRUE(IsOk(store_->Add("alice", OperatorRole::kCaseworker, Pw(kAlicePw), 1000)));
  ASSERT_TRUE(IsOk(store_->SetActive("alice", false, 2000)));
  EXPECT_TRUE(
      HasError(store_->Unlock("alice", Pw(kAlicePw)), Status::Code::kPermissionDenied, "disabled"));
  auto rec = Must(store_->Find("alice"));
  EXPECT_FALSE(rec.active);
  EXPECT_EQ(rec.public_key.size(), 32u);
  ASSERT_TRUE(IsOk(store_->SetActive("alice", true, 3000)));
  EXPECT_TRUE(IsOk(store_->Unlock("alice", Pw(kAlicePw))));
}

TEST_F(OperatorStoreTest, PasswdWithOldPasswordKeepsKeyWithoutItMakesANewOne) {
  ASSERT_TRUE(IsOk(store_->Add("alice", OperatorRole::kCaseworker, Pw(kAlicePw), 1000)));
  Bytes pk = Must(store_->Find("alice")).public_key;
  EXPECT_TRUE(HasCode(store_->SetPassword("alice", Pw(kBobPw), Pw("new password 1"), 2000),
                      Status::Code::kUnauthenticated));
  ASSERT_TRUE(IsOk(store_->SetPassword("alice", Pw(kAlicePw), Pw("new password 1"), 2000)));
  EXPECT_TRUE(HasCode(store_->Unlock("alice", Pw(kAlicePw)), Status::Code::kUnauthenticated));
  auto key = store_->Unlock("alice", Pw("new password 1"));
  ASSERT_TRUE(IsOk(key));
  EXPECT_EQ(key->public_key(), pk) << "re-sealed, same key pair";
  ASSERT_TRUE(IsOk(store_->SetPassword("alice", std::nullopt, Pw("reset password 2"), 3000)));
  auto reset = store_->Unlock("alice", Pw("reset password 2"));
  ASSERT_TRUE(IsOk(reset));
  EXPECT_NE(reset->public_key(), pk) << "a reset makes a new key pair";
}

TEST_F(OperatorStoreTest, RoleChangesAndNamesAreChecked) {
  ASSERT_TRUE(IsOk(store_->Add("bob", OperatorRole::kCaseworker, Pw(kBobPw), 1000)));
  ASSERT_TRUE(IsOk(store_->SetRole("bob", OperatorRole::kSupervisor, 2000)));
  EXPECT_EQ(Must(store_->Find("bob")).role, OperatorRole::kSupervisor);
  EXPECT_TRUE(HasCode(store_->Add("bob", OperatorRole::kCaseworker, Pw(kBobPw), 1000),
                      Status::Code::kAlreadyExists));
  for (const char* bad : {"", "Bob", "service", "service:bob", "-x", "a b", "../x"}) {
    EXPECT_TRUE(HasCode(store_->Add(bad, OperatorRole::kCaseworker, Pw(kBobPw), 1000),
                        Status::Code::kInvalidArgument))
        << bad;
  }
  EXPECT_TRUE(HasCode(store_->Add("carol", OperatorRole::kCaseworker, Pw("short"), 1000),
                      Status::Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(ParseRole("root"), Status::Code::kInvalidArgument));
  EXPECT_EQ(*ParseRole("read-only"), OperatorRole::kReadOnly);
}

TEST_F(OperatorStoreTest, TamperedSealedKeyOrSwappedPublicKeyDoNotUnlock) {
  ASSERT_TRUE(IsOk(store_->Add("alice", OperatorRole::kCaseworker, Pw(kAlicePw), 1000)));
  ASSERT_TRUE(IsOk(store_->Add("bob", OperatorRole::kSupervisor, Pw(kBobPw), 1000)));
  Bytes file = test::ReadAll(store_->path());
  std::string text(file.begin(), file.end());
  std::string alice_pk = HexEncode(Must(store_->Find("alice")).public_key);
  std::string bob_pk = HexEncode(Must(store_->Find("bob")).public_key);
  // Give alice's record bob's public key: her sealed secret no longer opens.
  text.replace(text.find(alice_pk), alice_pk.size(), bob_pk);
  test::WriteRaw(store_->path(), AsBytes(text), 0600);
  EXPECT_FALSE(store_->Unlock("alice", Pw(kAlicePw)).ok());
}

TEST_F(OperatorStoreTest, GroupReadableFileIsRefused) {
  ASSERT_TRUE(IsOk(store_->Add("alice", OperatorRole::kCaseworker, Pw(kAlicePw), 1000)));
  ASSERT_EQ(::chmod(store_->path().c_str(), 0640), 0);
  EXPECT_FALSE(store_->List().ok());
  EXPECT_FALSE(store_->Unlock("alice", Pw(kAlicePw)).ok());
}

// ---- sessions ----

class SessionTableTest : public OperatorStoreTest {
 protected:
  void SetUp() override {
    OperatorStoreTest::SetUp();
    Must(store_->Add("alice", OperatorRole::kCaseworker, Pw(kAlicePw), 1000));
    SessionOptions o;
    o.idle_timeout = std::chrono::milliseconds(1000);
    o.lockout_after = 10;
    o.lockout_for = std::chrono::milliseconds(60000);
    table_ = std::make_unique<SessionTable>(*store_, o, [this] { return now_; });
  }
  int64_t now_ = 1'000'000;
  std::unique_ptr<SessionTable> table_;
};

TEST_F(SessionTableTest, LoginFindLogout) {
  auto login = table_->Login("alice", Pw(kAlicePw));
  ASSERT_TRUE(IsOk(login));
  EXPECT_EQ(login->token.size(), 64u);
  auto key = table_->Find(login->token.view());
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(key->name(), "alice");
  EXPECT_EQ(table_->Find(AsBytes(std::string(64, '0'))), nullptr);
  EXPECT_TRUE(table_->Logout(login->token.view()));
  EXPECT_EQ(table_->Find(login->token.view()), nullptr);
  EXPECT_FALSE(table_->Logout(login->token.view()));
}

TEST_F(SessionTableTest, IdleSessionExpiresAndUseKeepsItAlive) {
  auto login = Must(table_->Login("alice", Pw(kAlicePw)));
  now_ += 900;
  ASSERT_NE(table_->Find(login.token.view()), nullptr);
  now_ += 900;  // 900 ms since the last use: still alive
  ASSERT_NE(table_->Find(login.token.view()), nullptr);
  now_ += 1001;
  EXPECT_EQ(table_->Find(login.token.view()), nullptr);
  EXPECT_EQ(table_->size(), 0u);
}

TEST_F(SessionTableTest, TenthWrongPasswordLocksEvenTheRightOne) {
  for (int i = 0; i < 9; ++i) {
    EXPECT_TRUE(
        HasCode(table_->Login("alice", Pw("wrong password")), Status::Code::kUnauthenticated));
  }
  // Nine wrong ones do not lock; a good login resets the count.
  ASSERT_TRUE(IsOk(table_->Login("alice", Pw(kAlicePw))));
  for (int i = 0; i < 9; ++i) (void)table_->Login("alice", Pw("wrong password"));
  EXPECT_TRUE(HasCode(table_->Login("alice", Pw("wrong password")),
                      Status::Code::kUnauthenticated));  // the tenth in a row
  EXPECT_TRUE(
      HasError(table_->Login("alice", Pw(kAlicePw)), Status::Code::kPermissionDenied, "locked"));
  now_ += 60001;
  EXPECT_TRUE(IsOk(table_->Login("alice", Pw(kAlicePw))));
}

TEST_F(SessionTableTest, DisablingOrRoleChangeEndsSessions) {
  auto login = Must(table_->Login("alice", Pw(kAlicePw)));
  ASSERT_TRUE(IsOk(store_->SetRole("alice", OperatorRole::kSupervisor, 2000)));
  EXPECT_EQ(table_->Find(login.token.view()), nullptr);
  auto again = Must(table_->Login("alice", Pw(kAlicePw)));
  ASSERT_NE(table_->Find(again.token.view()), nullptr);
  ASSERT_TRUE(IsOk(store_->SetActive("alice", false, 3000)));
  EXPECT_EQ(table_->Find(again.token.view()), nullptr);
  EXPECT_TRUE(HasCode(table_->Login("alice", Pw(kAlicePw)), Status::Code::kPermissionDenied));
}

TEST_F(SessionTableTest, LoginsBeyondTheConcurrentLimitAreRefusedAtOnce) {
  SessionOptions o;
  o.max_concurrent_logins = 1;
  SessionTable one(*store_, o, [this] { return now_; });
  // A second login while the first is checking its password is refused. Argon2id takes
  // tens of milliseconds, so the two overlap; should the first end before the second could
  // start, the round is tried again.
  bool refused = false;
  for (int round = 0; round < 20 && !refused; ++round) {
    std::atomic<bool> done{false};
    std::thread t([&] {
      EXPECT_TRUE(IsOk(one.Login("alice", Pw(kAlicePw))));
      done = true;
    });
    while (one.logins_in_flight() == 0 && !done) std::this_thread::yield();
    if (!done) {
      auto second = one.Login("alice", Pw(kAlicePw));
      refused = !second.ok();
      if (refused) {
        EXPECT_TRUE(HasError(second, Status::Code::kResourceExhausted, "too many logins"));
      }
    }
    t.join();
  }
  EXPECT_TRUE(refused) << "no overlapping login was refused in 20 rounds";
  EXPECT_EQ(one.logins_in_flight(), 0);
  EXPECT_TRUE(IsOk(one.Login("alice", Pw(kAlicePw)))) << "alone, a login goes through";
}

}  // namespace
}  // namespace refbus::agent
