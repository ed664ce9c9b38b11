#include "keys/key_upkeep.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "core/file.h"
#include "keys/crypto.h"
#include "keys/keyfile.h"

namespace refbus::keys {
namespace {

std::string Describe(const schema::Prekey& p) {
  return "prekey " + Fingerprint(KeyId(KeyUse::kPrekey, p.public_key)) + " (expired " +
         FormatUtc(p.not_after_ms) + ")";
}

// Overwrites the file's bytes with zeros and syncs before unlinking it, so the key does
// not stay readable in the freed blocks of a file system that overwrites in place.
Status ShredFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return IoError("cannot open " + path + " to wipe it");
  struct stat st {};
  Status s;
  if (::fstat(fd, &st) != 0) s = IoError("cannot stat " + path);
  Bytes zeros(4096, 0);
  for (off_t done = 0; s.ok() && done < st.st_size;) {
    size_t n = static_cast<size_t>(std::min<off_t>(st.st_size - done, 4096));
    ssize_t w = ::pwrite(fd, zeros.data(), n, done);
    if (w <= 0) s = IoError("cannot overwrite " + path);
    done += w > 0 ? w : 0;
  }
  if (s.ok() && ::fsync(fd) != 0) s = IoError("cannot sync " + path);
  ::close(fd);
  if (s.ok() && ::unlink(path.c_str()) != 0) s = IoError("cannot remove " + path);
  return s;
}

// The retired key file at path, if every prekey it holds is past the window: wiped.
Status UpkeepRetired(const std::string& path, const KeyUpkeepRequest& req,
                     std::vector<std::string>& lines) {
  auto old = LoadIdentity(path, req.passphrase);
  if (!old.ok()) {
    lines.push_back("kept retired key file " + path + ": " + old.status().message());
    return Status::Ok();
  }
  UnixMillis last = 0;
  for (const auto& p : old->prekeys()) last = std::max(last, p.signed_prekey.prekey.not_after_ms);
  if (last + req.keep_after_expiry_ms >= req.now) return Status::Ok();
  REFBUS_RETURN_IF_ERROR(ShredFile(path));
  lines.push_back("wiped retired key file " + path + " of key " +
                  Fingerprint(old->signing_key_id()) + " (its last prekey expired " +
                  FormatUtc(last) + ")");
  return Status::Ok();
}

}  // namespace

Result<std::vector<std::string>> WipeExpiredKeys(Identity& identity, const KeyUpkeepRequest& req) {
  std::vector<std::string> lines;
  std::vector<schema::Prekey> wiped;
  identity.PrunePrekeys(req.now, req.keep_after_expiry_ms, &wiped);
  if (!wiped.empty()) {
    REFBUS_RETURN_IF_ERROR(SaveIdentity(identity, req.key_path, req.passphrase));
    for (const auto& p : wiped) lines.push_back("wiped " + Describe(p));
  }
  if (req.retired_dir.empty() || !PathExists(req.retired_dir)) return lines;
  std::error_code ec;
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(req.retired_dir, ec)) {
    std::error_code type_ec;
    if (e.is_regular_file(type_ec) && e.path().extension() == ".key") {
      files.push_back(e.path());
    }
  }
  if (ec) return IoError("cannot list " + req.retired_dir + ": " + ec.message());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) REFBUS_RETURN_IF_ERROR(UpkeepRetired(f, req, lines));
  return lines;
}

}  // namespace refbus::keys
