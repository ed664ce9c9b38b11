// Small, careful file helpers: bounded reads, atomic durable writes, mode checks.
//
// WriteFileAtomic writes to a temporary file in the same directory, fsyncs it, renames
// it over the target and fsyncs the directory: a reader sees the old or the new content,
// never a torn file, and the new content survives a crash once the call returns ok.
// The file is created with the given mode from the start (no window where a secret is
// world-readable), whatever the process umask.
//
// Thread safety: free functions; concurrent writers to one path race (last rename wins).
#ifndef REFBUS_CORE_FILE_H_
#define REFBUS_CORE_FILE_H_

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "core/bytes.h"
#include "core/status.h"

namespace refbus {

inline constexpr mode_t kPrivateFileMode = 0600;
inline constexpr mode_t kPublicFileMode = 0644;

// Reads a whole regular file. Refuses files larger than max_bytes before reading them.
Result<Bytes> ReadFile(const std::string& path, size_t max_bytes);

Status WriteFileAtomic(const std::string& path, ByteView data, mode_t mode);

// ok if path is a regular file that only its owner may read or write (no group or other
// bits); PermissionDenied naming the mode and the fix otherwise.
Status CheckPrivateFile(const std::string& path);
// The same check on what fstat said of a descriptor already open (mode bits, owner).
Status CheckPrivateMode(const std::string& path, mode_t mode, uid_t owner);

bool PathExists(const std::string& path);

// Creates a directory (and parents) with the given mode if it does not exist.
Status MakeDirectories(const std::string& path, mode_t mode);

}  // namespace refbus

#endif  // REFBUS_CORE_FILE_H_
