#include "agent/watch_parts.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <utility>

#include "core/bytes.h"
#include "core/hash.h"

namespace refbus::agent {

using Json = nlohmann::json;  // as agent/engine.h

namespace {

constexpr char kWatchStagedPrefix[] = "h:";

std::string WatchStagedKey(const std::string& sender) { return kWatchStagedPrefix + sender; }

std::string WatchPartKey(const std::string& sender, uint32_t index) {
  char n[8];
  std::snprintf(n, sizeof n, "%03u", index);
  return "p:" + sender + "/" + n;
}

Json WatchStagedToJson(const WatchStaged& s) {
  return Json{{"sender", s.sender},
              {"file_sha256", HexEncode(s.file_sha256)},
              {"count", s.count},
              {"total_bytes", s.total_bytes},
              {"held", s.held},
              {"first_at_ms", s.first_at_ms},
              {"progress_at_ms", s.progress_at_ms},
              {"asks", s.asks},
              {"done", s.done}};
}

Result<WatchStaged> WatchStagedFromJson(const Json& j) {
  try {
    WatchStaged s;
    s.sender = j.at("sender").get<std::string>();
    REFBUS_ASSIGN_OR_RETURN(s.file_sha256, HexDecode(j.at("file_sha256").get<std::string>()));
    s.count = j.at("count").get<uint32_t>();
    s.total_bytes = j.at("total_bytes").get<uint64_t>();
    s.held = j.at("held").get<std::set<uint32_t>>();
    s.first_at_ms = j.at("first_at_ms").get<UnixMillis>();
    s.progress_at_ms = j.at("progress_at_ms").get<UnixMillis>();
    s.asks = j.at("asks").get<uint32_t>();
    s.done = j.at("done").get<std::vector<std::string>>();
    return s;
  } catch (const Json::exception& e) {
    return Malformed(std::string("staged watch-list file: ") + e.what());
  }
}

void NoteWatchDigestDone(WatchStaged& s) {
  if (s.file_sha256.empty()) return;
  s.done.push_back(HexEncode(s.file_sha256));
  if (s.done.size() > kWatchDigestsKept) {
    s.done.erase(s.done.begin(), s.done.end() - static_cast<ptrdiff_t>(kWatchDigestsKept));
  }
}

// The bytes staged by every sender but `sender`.
Result<uint64_t> WatchStagedByOthers(const CaseStore::Txn& txn, const std::string& sender) {
  REFBUS_ASSIGN_OR_RETURN(auto all, ListWatchStaged(txn));
  uint64_t n = 0;
  for (const auto& s : all) {
    if (s.sender != sender && !s.idle()) n += s.total_bytes;
  }
  return n;
}

// Every part held: the whole text, if it hashes to the file's digest.
Result<std::string> PutWatchPartsTogether(const CaseStore::Txn& txn, const WatchStaged& s) {
  std::string text;
  text.reserve(s.total_bytes);
  for (uint32_t i = 0; i < s.count; ++i) {
    REFBUS_ASSIGN_OR_RETURN(auto part, txn.Get(Table::kWatchParts, WatchPartKey(s.sender, i)));
    if (!part || !part->is_string()) {
      return Malformed("staged watch-list part " + std::to_string(i) + " is missing");
    }
    REFBUS_ASSIGN_OR_RETURN(Bytes data, Base64Decode(part->get<std::string>()));
    text.append(AsChars(data));
  }
  if (text.size() != s.total_bytes || Sha256(AsBytes(text)) != s.file_sha256) {
    return InvalidArgument("the watch list's " + std::to_string(s.count) +
                           " parts put together do not match the file's SHA-256 digest");
  }
  return text;
}

// A part of a file other than the one staged: starts that file (replacing an unfinished
// one), or is a late part of a file already replaced or finished.
Result<bool> StartWatchFile(CaseStore::Txn& txn, WatchStaged& s, const schema::WatchListPart& part,
                            UnixMillis now, WatchPartStaged& out) {
  const std::string hex = HexEncode(part.file_sha256);
  if (std::find(s.done.begin(), s.done.end(), hex) != s.done.end()) {
    out.stale = true;
    return false;
  }
  REFBUS_ASSIGN_OR_RETURN(uint64_t others, WatchStagedByOthers(txn, s.sender));
  if (others + part.total_bytes > kMaxWatchStagedBytes) {
    return ResourceExhausted("staging a watch list of " + std::to_string(part.total_bytes) +
                             " bytes would pass the " + std::to_string(kMaxWatchStagedBytes) +
                             " bytes staged for every deletion center together");
  }
  if (!s.idle()) {
    out.replaced = true;
    REFBUS_RETURN_IF_ERROR(DropWatchStaged(txn, s));
  }
  s.file_sha256 = part.file_sha256;
  s.count = part.count;
  s.total_bytes = part.total_bytes;
  s.held.clear();
  s.first_at_ms = now;
  s.asks = 0;
  return true;
}

}  // namespace

Result<std::vector<schema::WatchListPart>> SplitWatchFile(std::string_view text) {
  if (text.size() <= schema::kMaxWatchListFileBytes ||
      text.size() > schema::kMaxWatchListPartedBytes) {
    return InvalidArgument("a watch list of " + std::to_string(text.size()) +
                           " bytes: parts carry more than " +
                           std::to_string(schema::kMaxWatchListFileBytes) + " and at most " +
                           std::to_string(schema::kMaxWatchListPartedBytes) + " bytes");
  }
  const Bytes digest = Sha256(AsBytes(text));
  const uint32_t count = schema::WatchListPartCount(text.size());
  std::vector<schema::WatchListPart> parts;
  parts.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    const size_t at = size_t{i} * schema::kWatchListPartBytes;
    const std::string_view data = text.substr(at, schema::WatchListPartSize(text.size(), i));
    parts.push_back({digest, i, count, text.size(), Bytes(data.begin(), data.end())});
  }
  return parts;
}

Result<std::vector<WatchStaged>> ListWatchStaged(const CaseStore::Txn& txn) {
  REFBUS_ASSIGN_OR_RETURN(auto rows, txn.ListPrefix(Table::kWatchParts, kWatchStagedPrefix));
  std::vector<WatchStaged> out;
  out.reserve(rows.size());
  for (const auto& [key, j] : rows) {
    REFBUS_ASSIGN_OR_RETURN(WatchStaged s, WatchStagedFromJson(j));
    out.push_back(std::move(s));
  }
  return out;
}

Status SaveWatchStaged(CaseStore::Txn& txn, const WatchStaged& s) {
  return txn.Put(Table::kWatchParts, WatchStagedKey(s.sender), WatchStagedToJson(s));
}

Status DropWatchStaged(CaseStore::Txn& txn, WatchStaged& s) {
  for (uint32_t i : s.held) {
    REFBUS_RETURN_IF_ERROR(txn.Del(Table::kWatchParts, WatchPartKey(s.sender, i)));
  }
  NoteWatchDigestDone(s);
  s.file_sha256.clear();
  s.count = 0;
  s.total_bytes = 0;
  s.held.clear();
  s.asks = 0;
  return SaveWatchStaged(txn, s);
}

Result<WatchPartStaged> StageWatchPart(CaseStore::Txn& txn, const std::string& sender,
                                       const schema::WatchListPart& part, UnixMillis now) {
  WatchPartStaged out;
  REFBUS_ASSIGN_OR_RETURN(auto j, txn.Get(Table::kWatchParts, WatchStagedKey(sender)));
  WatchStaged s;
  s.sender = sender;
  if (j) {
    REFBUS_ASSIGN_OR_RETURN(s, WatchStagedFromJson(*j));
  }
  if (s.idle() || s.file_sha256 != part.file_sha256) {
    REFBUS_ASSIGN_OR_RETURN(bool started, StartWatchFile(txn, s, part, now, out));
    if (!started) {
      out.staged = std::move(s);
      return out;
    }
  } else if (part.total_bytes != s.total_bytes || part.count != s.count) {
    return InvalidArgument("a watch-list part says its file has " +
                           std::to_string(part.total_bytes) + " bytes in " +
                           std::to_string(part.count) + " parts; its first part said " +
                           std::to_string(s.total_bytes) + " in " + std::to_string(s.count));
  }
  if (s.held.count(part.index) != 0) {
    out.duplicate = true;
    out.staged = std::move(s);
    return out;
  }
  REFBUS_RETURN_IF_ERROR(
      txn.Put(Table::kWatchParts, WatchPartKey(sender, part.index), Base64Encode(part.data)));
  s.held.insert(part.index);
  s.progress_at_ms = now;
  s.asks = 0;
  if (s.held.size() == s.count) {
    auto text = PutWatchPartsTogether(txn, s);
    REFBUS_RETURN_IF_ERROR(DropWatchStaged(txn, s));
    if (!text.ok()) return text.status();
    out.file_text = std::move(*text);
  } else {
    REFBUS_RETURN_IF_ERROR(SaveWatchStaged(txn, s));
  }
  out.staged = std::move(s);
  return out;
}

}  // namespace refbus::agent
