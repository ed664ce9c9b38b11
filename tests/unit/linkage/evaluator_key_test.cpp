// The linkage evaluator's key file (linkage/evaluator_key.h): a round trip with mode 0600,
// and every damaged or exposed file refused with a message that never shows the key.
#include "linkage/evaluator_key.h"

#include <gtest/gtest.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "core/file.h"
#include "tests/unit/test_util.h"

namespace refbus::linkage {
// Named after the file, not anonymous: its helpers share names with other test files
// compiled in the same unity batch (tests/CMakeLists.txt).
namespace evaluator_key_test {

using test::IsOk;

oprf::ServerKey Key() {
  auto k = oprf::ServerKey::Generate(oprf::Mode::kVoprf);
  if (!k.ok()) std::abort();
  return std::move(k).value();
}

Bytes ReadAll(const std::string& path) {
  auto b = ReadFile(path, 1024);
  if (!b.ok()) throw std::runtime_error(b.status().ToString());
  return *b;
}

void Overwrite(const std::string& path, const Bytes& bytes) {
  std::filesystem::remove(path);
  ASSERT_TRUE(IsOk(WriteFileAtomic(path, bytes, kPrivateFileMode)));
}

// The error never carries the private scalar, in hex or raw.
void ExpectNoKeyIn(const Status& s, const oprf::ServerKey& key) {
  const std::string hex = HexEncode(key.private_scalar());
  EXPECT_EQ(s.message().find(hex.substr(0, 16)), std::string::npos) << s.message();
  const std::string raw(reinterpret_cast<const char*>(key.private_scalar().data()), 8);
  EXPECT_EQ(s.message().find(raw), std::string::npos);
}

TEST(EvaluatorKeyTest, RoundTripWithAPrivateFile) {
  test::TempDir dir;
  const std::string path = dir.Join("linkage.key");
  const oprf::ServerKey key = Key();
  ASSERT_TRUE(IsOk(SaveEvaluatorKey(key, path)));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(ReadAll(path).size(), kEvaluatorKeyFileBytes);
  auto loaded = LoadEvaluatorKey(path);
  ASSERT_TRUE(IsOk(loaded));
  EXPECT_EQ(loaded->public_key(), key.public_key());
  EXPECT_EQ(loaded->mode(), oprf::Mode::kVoprf);
}

TEST(EvaluatorKeyTest, AnOprfModeKeyIsNotSaved) {
  test::TempDir dir;
  auto k = oprf::ServerKey::Generate(oprf::Mode::kOprf);
  ASSERT_TRUE(IsOk(k));
  EXPECT_EQ(SaveEvaluatorKey(*k, dir.Join("k")).code(), Status::Code::kInvalidArgument);
}

TEST(EvaluatorKeyTest, ExposedFilesAndLinksAreRefused) {
  test::TempDir dir;
  const std::string path = dir.Join("linkage.key");
  const oprf::ServerKey key = Key();
  ASSERT_TRUE(IsOk(SaveEvaluatorKey(key, path)));
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  auto r = LoadEvaluatorKey(path);
  EXPECT_EQ(r.status().code(), Status::Code::kPermissionDenied) << r.status().ToString();
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  const std::string link = dir.Join("link.key");
  ASSERT_EQ(::symlink(path.c_str(), link.c_str()), 0);
  EXPECT_FALSE(LoadEvaluatorKey(link).ok());
  EXPECT_EQ(LoadEvaluatorKey(dir.Join("missing")).status().code(), Status::Code::kNotFound);
  EXPECT_TRUE(IsOk(LoadEvaluatorKey(path)));
}

TEST(EvaluatorKeyTest, DamagedFilesAreRefusedWithoutShowingTheKey) {
  test::TempDir dir;
  const std::string path = dir.Join("linkage.key");
  const oprf::ServerKey key = Key();
  ASSERT_TRUE(IsOk(SaveEvaluatorKey(key, path)));
  const Bytes good = ReadAll(path);
  const auto refused = [&](Bytes bytes, const char* what) {
    Overwrite(path, bytes);
    auto r = LoadEvaluatorKey(path);
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.status().code(), Status::Code::kMalformed) << what << ": " << r.status().ToString();
    ExpectNoKeyIn(r.status(), key);
  };
  for (size_t i : {size_t{0}, size_t{21}, size_t{30}, good.size() - 1}) {
    Bytes b = good;
    b[i] ^= 0x01;
    refused(b, "a flipped byte");
  }
  refused(Bytes(good.begin(), good.end() - 1), "one byte short");
  Bytes longer = good;
  longer.push_back(0);
  refused(longer, "one byte more");
  // A zero scalar with a correct checksum: the file is whole, the key is not a key.
  Bytes zero = good;
  std::fill(zero.begin() + 22, zero.begin() + 54, 0);
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, 32);
  const std::string label = "refbus/v1/linkage-keyfile";
  crypto_generichash_update(&st, reinterpret_cast<const uint8_t*>(label.data()), label.size());
  const uint8_t nul = 0;
  crypto_generichash_update(&st, &nul, 1);
  crypto_generichash_update(&st, zero.data(), 54);
  crypto_generichash_final(&st, zero.data() + 54, 32);
  refused(zero, "a zero scalar");
  Overwrite(path, good);
  EXPECT_TRUE(IsOk(LoadEvaluatorKey(path)));
}

}  // namespace evaluator_key_test
}  // namespace refbus::linkage
