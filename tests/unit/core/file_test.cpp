// Tests for core/file.h: atomic writes with exact modes, bounded reads, private-file checks.
#include "core/file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "tests/unit/test_util.h"

namespace refbus {
namespace {

using test::FileMode;
using test::HasCode;
using test::HasError;
using test::IsOk;
using test::TempDir;
using test::UmaskGuard;

class FileTest : public ::testing::Test {
 protected:
  TempDir dir_;
};

TEST_F(FileTest, WriteFileAtomicUsesExactModeUnderPermissiveUmask) {
  UmaskGuard umask(0);
  std::string path = dir_.Join("secret");
  ASSERT_TRUE(IsOk(WriteFileAtomic(path, AsBytes("key material"), kPrivateFileMode)));
  EXPECT_EQ(FileMode(path), 0600);
  std::string pub = dir_.Join("public");
  ASSERT_TRUE(IsOk(WriteFileAtomic(pub, AsBytes("record"), kPublicFileMode)));
  EXPECT_EQ(FileMode(pub), 0644);
}

TEST_F(FileTest, WriteFileAtomicUsesExactModeUnderRestrictiveUmask) {
  // The mode is what was asked for, not what the umask leaves of it.
  UmaskGuard umask(077);
  std::string path = dir_.Join("public");
  ASSERT_TRUE(IsOk(WriteFileAtomic(path, AsBytes("x"), kPublicFileMode)));
  EXPECT_EQ(FileMode(path), 0644);
}

TEST_F(FileTest, WriteFileAtomicReplacesContentAndMode) {
  UmaskGuard umask(0);
  std::string path = dir_.Join("f");
  ASSERT_TRUE(IsOk(WriteFileAtomic(path, AsBytes("old content, longer"), kPublicFileMode)));
  ASSERT_EQ(FileMode(path), 0644);
  ASSERT_TRUE(IsOk(WriteFileAtomic(path, AsBytes("new"), kPrivateFileMode)));
  EXPECT_EQ(FileMode(path), 0600);
  auto read = ReadFile(path, 1024);
  ASSERT_TRUE(IsOk(read));
  EXPECT_EQ(AsChars(*read), "new");
}

TEST_F(FileTest, WriteFileAtomicLeavesNoTemporaryFiles) {
  std::string path = dir_.Join("f");
  ASSERT_TRUE(IsOk(WriteFileAtomic(path, AsBytes("1"), kPrivateFileMode)));
  ASSERT_TRUE(IsOk(WriteFileAtomic(path, AsBytes("2"), kPrivateFileMode)));
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_.path())) {
    ++entries;
    EXPECT_EQ(e.path().filename(), "f");
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(FileTest, WriteFileAtomicEmptyFile) {
  std::string path = dir_.Join("empty");
  ASSERT_TRUE(IsOk(WriteFileAtomic(path, ByteView(), kPrivateFileMode)));
  EXPECT_TRUE(PathExists(path));
  auto read = ReadFile(path, 0);
  ASSERT_TRUE(IsOk(read));
  EXPECT_TRUE(read->empty());
}

TEST_F(FileTest, WriteFileAtomicIntoMissingDirectoryFails) {
  std::string path = dir_.Join("no/such/dir/f");
  Status s = WriteFileAtomic(path, AsBytes("x"), kPrivateFileMode);
  EXPECT_TRUE(HasCode(s, Status::Code::kIoError));
  EXPECT_FALSE(PathExists(path));
}

TEST_F(FileTest, ReadFileRoundTripsBinary) {
  Bytes data(70000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 31);
  std::string path = dir_.Join("bin");
  ASSERT_TRUE(IsOk(WriteFileAtomic(path, data, kPrivateFileMode)));
  auto read = ReadFile(path, data.size());
  ASSERT_TRUE(IsOk(read));
  EXPECT_EQ(*read, data);
}

TEST_F(FileTest, ReadFileRefusesFilesOverTheLimit) {
  std::string path = dir_.Join("f");
  ASSERT_TRUE(IsOk(WriteFileAtomic(path, Bytes(100, 'a'), kPrivateFileMode)));
  auto too_big = ReadFile(path, 99);
  EXPECT_TRUE(HasError(too_big, Status::Code::kResourceExhausted, "100 bytes"));
  EXPECT_TRUE(HasCode(ReadFile(path, 0), Status::Code::kResourceExhausted));
  auto exact = ReadFile(path, 100);
  ASSERT_TRUE(IsOk(exact));
  EXPECT_EQ(exact->size(), 100u);
}

TEST_F(FileTest, ReadFileNotFound) {
  std::string path = dir_.Join("missing");
  EXPECT_TRUE(HasError(ReadFile(path, 1024), Status::Code::kNotFound, path));
}

TEST_F(FileTest, ReadFileRefusesADirectory) {
  EXPECT_TRUE(HasCode(ReadFile(dir_.path(), 1024), Status::Code::kInvalidArgument));
}

TEST_F(FileTest, CheckPrivateFileAcceptsOwnerOnlyModes) {
  std::string path = dir_.Join("key");
  ASSERT_TRUE(IsOk(WriteFileAtomic(path, AsBytes("k"), 0600)));
  EXPECT_TRUE(IsOk(CheckPrivateFile(path)));
  ASSERT_EQ(::chmod(path.c_str(), 0400), 0);
  EXPECT_TRUE(IsOk(CheckPrivateFile(path)));
}

TEST_F(FileTest, CheckPrivateFileRefusesWorldReadable) {
  std::string path = dir_.Join("key");
  ASSERT_TRUE(IsOk(WriteFileAtomic(path, AsBytes("k"), 0644)));
  Status s = CheckPrivateFile(path);
  EXPECT_TRUE(HasError(s, Status::Code::kPermissionDenied, "chmod 600"));
  EXPECT_TRUE(test::HasSubstr(s.message(), "0644"));
  EXPECT_TRUE(test::HasSubstr(s.message(), path));
}

TEST_F(FileTest, CheckPrivateFileRefusesAnyGroupOrOtherBit) {
  std::string path = dir_.Join("key");
  ASSERT_TRUE(IsOk(WriteFileAtomic(path, AsBytes("k"), 0600)));
  for (mode_t mode : {0640, 0620, 0610, 0604, 0602, 0601, 0660, 0666, 0700 | 0007}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    EXPECT_TRUE(HasCode(CheckPrivateFile(path), Status::Code::kPermissionDenied))
        << std::oct << mode;
  }
}

TEST_F(FileTest, CheckPrivateFileMissingAndDirectory) {
  EXPECT_TRUE(HasCode(CheckPrivateFile(dir_.Join("missing")), Status::Code::kNotFound));
  EXPECT_TRUE(HasCode(CheckPrivateFile(dir_.path()), Status::Code::kInvalidArgument));
}

TEST_F(FileTest, PathExists) {
  EXPECT_TRUE(PathExists(dir_.path()));
  EXPECT_FALSE(PathExists(dir_.Join("nope")));
  ASSERT_TRUE(IsOk(WriteFileAtomic(dir_.Join("f"), AsBytes("x"), 0600)));
  EXPECT_TRUE(PathExists(dir_.Join("f")));
}

TEST_F(FileTest, MakeDirectoriesCreatesNestedWithMode) {
  UmaskGuard umask(0);
  std::string path = dir_.Join("a/b/c");
  ASSERT_TRUE(IsOk(MakeDirectories(path, 0700)));
  EXPECT_TRUE(std::filesystem::is_directory(path));
  EXPECT_EQ(FileMode(path), 0700);
  // Existing: ok, and the mode is set again.
  ASSERT_EQ(::chmod(path.c_str(), 0755), 0);
  ASSERT_TRUE(IsOk(MakeDirectories(path, 0700)));
  EXPECT_EQ(FileMode(path), 0700);
}

TEST_F(FileTest, MakeDirectoriesOverAFileFails) {
  std::string path = dir_.Join("f");
  ASSERT_TRUE(IsOk(WriteFileAtomic(path, AsBytes("x"), 0600)));
  EXPECT_TRUE(HasCode(MakeDirectories(path + "/sub", 0700), Status::Code::kIoError));
}

}  // namespace
}  // namespace refbus
