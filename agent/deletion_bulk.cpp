#include "agent/deletion_bulk.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "core/bytes.h"

namespace refbus::agent {
namespace {

constexpr size_t kMaxErrorsShown = 20;

// Collects line errors: the first kMaxErrorsShown verbatim, the rest counted.
class LineErrors {
 public:
  void Add(size_t line, const std::string& problem) {
    if (count_++ < kMaxErrorsShown) {
      text_ += (text_.empty() ? "" : "; ") + std::string("line ") + std::to_string(line) + ": " +
               problem;
    }
  }
  Status Result(std::string_view what) const {
    if (count_ == 0) return Status::Ok();
    std::string more = count_ > kMaxErrorsShown
                           ? " (and " + std::to_string(count_ - kMaxErrorsShown) + " more)"
                           : "";
    return InvalidArgument(std::string(what) + ": " + std::to_string(count_) +
                           (count_ == 1 ? " line is" : " lines are") + " not valid: " + text_ +
                           more);
  }

 private:
  size_t count_ = 0;
  std::string text_;
};

// Well-formed UTF-8 as protobuf checks it (no overlong forms, surrogates or code points
// past U+10FFFF): a string it would refuse must be refused here, before it is sent.
bool IsUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // the second byte's range
    if (c < 0x80) {
      n = 0;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if (k == 1 ? (b < lo || b > hi) : (b >> 6) != 0x2) return false;
    }
    i += n + 1;
  }
  return true;
}

bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

std::string LowerTrim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IsHeader(const CsvRecord& r, const std::vector<std::string_view>& names) {
  if (r.fields.empty() || r.fields.size() > names.size()) return false;
  for (size_t i = 0; i < r.fields.size(); ++i) {
    if (LowerTrim(r.fields[i]) != names[i]) return false;
  }
  return true;
}

// The text of one field: quoted or not. Advances pos past it; line counts line breaks.
Status ReadField(std::string_view t, size_t& pos, size_t& line, std::string& out) {
  out.clear();
  if (pos < t.size() && t[pos] == '"') {
    const size_t start_line = line;
    ++pos;
    for (;;) {
      if (pos >= t.size()) {
        return InvalidArgument("line " + std::to_string(start_line) +
                               ": a quoted field is not closed");
      }
      char c = t[pos++];
      if (c == '"') {
        if (pos < t.size() && t[pos] == '"') {
          out.push_back('"');
          ++pos;
          continue;
        }
        break;
      }
      if (c == '\n') ++line;
      out.push_back(c);
    }
    if (pos < t.size() && t[pos] != ',' && t[pos] != '\n' && t[pos] != '\r') {
      return InvalidArgument("line " + std::to_string(line) +
                             ": text after a closing quote (a quote inside a quoted field is "
                             "written \"\")");
    }
    return Status::Ok();
  }
  while (pos < t.size() && t[pos] != ',' && t[pos] != '\n' && t[pos] != '\r') {
    if (t[pos] == '"') {
      return InvalidArgument("line " + std::to_string(line) +
                             ": a quote inside an unquoted field (quote the whole field)");
    }
    out.push_back(t[pos++]);
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<CsvRecord>> ParseCsv(std::string_view t) {
  std::vector<CsvRecord> out;
  size_t pos = 0;
  size_t line = 1;
  std::string field;
  while (pos < t.size()) {
    if (t[pos] == '\n' || t[pos] == '\r') {  // a blank line
      if (t[pos] == '\r' && pos + 1 < t.size() && t[pos + 1] == '\n') ++pos;
      ++pos;
      ++line;
      continue;
    }
    CsvRecord rec;
    rec.line = line;
    for (;;) {
      REFBUS_RETURN_IF_ERROR(ReadField(t, pos, line, field));
      rec.fields.push_back(field);
      if (pos < t.size() && t[pos] == ',') {
        ++pos;
        continue;
      }
      break;
    }
    if (pos < t.size() && t[pos] == '\r') ++pos;
    if (pos < t.size() && t[pos] == '\n') ++pos;
    ++line;
    out.push_back(std::move(rec));
  }
  return out;
}

std::string CsvField(std::string_view v) {
  if (v.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(v);
  std::string out = "\"";
  for (char c : v) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

Status CheckDeletionItem(const schema::DeletionItem& i, const std::string& where) {
  auto bad = [&where](const std::string& problem) {
    return InvalidArgument(where + ": " + problem);
  };
  if (i.item_id.empty() || i.item_id.size() > 64 || !IsUtf8(i.item_id) || HasControl(i.item_id)) {
    return bad("the item id must be 1 to 64 characters of text");
  }
  if (i.url.empty()) return bad("the url is empty");
  if (i.url.size() > schema::kMaxUrlBytes) {
    return bad("the url has " + std::to_string(i.url.size()) + " bytes, over " +
               std::to_string(schema::kMaxUrlBytes));
  }
  if (!IsUtf8(i.url) || HasControl(i.url)) return bad("the url is not text (UTF-8)");
  if (!i.content_sha256.empty() && i.content_sha256.size() != 32) {
    return bad("sha256 must be 64 hex digits or empty");
  }
  if (i.platform.size() > 64 || !IsUtf8(i.platform) || HasControl(i.platform)) {
    return bad("the platform must be at most 64 bytes of text");
  }
  if (i.note.size() > schema::kMaxDeletionNoteBytes || !IsUtf8(i.note)) {
    return bad("the note must be at most " + std::to_string(schema::kMaxDeletionNoteBytes) +
               " bytes of text");
  }
  return Status::Ok();
}

Result<std::vector<schema::DeletionItem>> ParseDeletionCsv(std::string_view text) {
  REFBUS_ASSIGN_OR_RETURN(auto records, ParseCsv(text));
  std::vector<schema::DeletionItem> items;
  items.reserve(records.size());
  LineErrors errors;
  for (size_t r = 0; r < records.size(); ++r) {
    const CsvRecord& rec = records[r];
    if (r == 0 && IsHeader(rec, {"url", "sha256", "platform", "note"})) continue;
    if (rec.fields.size() > 4) {
      errors.Add(rec.line, "has " + std::to_string(rec.fields.size()) +
                               " fields; the columns are url,sha256,platform,note");
      continue;
    }
    schema::DeletionItem item;
    item.item_id = std::to_string(rec.line);
    item.url = rec.fields[0];
    if (rec.fields.size() > 1 && !rec.fields[1].empty()) {
      auto sha = HexDecode(LowerTrim(rec.fields[1]));
      if (!sha.ok() || sha->size() != 32) {
        errors.Add(rec.line, "sha256 must be 64 hex digits or empty");
        continue;
      }
      item.content_sha256 = std::move(*sha);
    }
    if (rec.fields.size() > 2) item.platform = rec.fields[2];
    if (rec.fields.size() > 3) item.note = rec.fields[3];
    Status s = CheckDeletionItem(item, "x");
    if (!s.ok()) {
      errors.Add(rec.line, s.message().substr(3));  // without "x: "
      continue;
    }
    items.push_back(std::move(item));
  }
  REFBUS_RETURN_IF_ERROR(errors.Result("the deletion CSV"));
  if (items.empty()) return InvalidArgument("the deletion CSV holds no items");
  if (items.size() > schema::kMaxDeletionRequestItems) {
    return InvalidArgument("the deletion CSV holds " + std::to_string(items.size()) +
                           " items; a request holds at most " +
                           std::to_string(schema::kMaxDeletionRequestItems) +
                           ": split the file into several requests");
  }
  return items;
}

Result<std::vector<StatusLine>> ParseStatusCsv(std::string_view text) {
  REFBUS_ASSIGN_OR_RETURN(auto records, ParseCsv(text));
  std::vector<StatusLine> out;
  out.reserve(records.size());
  std::map<std::string, size_t> seen;  // item id -> line
  LineErrors errors;
  for (size_t r = 0; r < records.size(); ++r) {
    const CsvRecord& rec = records[r];
    if (r == 0 && IsHeader(rec, {"item_id", "status"})) continue;
    if (rec.fields.size() != 2) {
      errors.Add(rec.line, "has " + std::to_string(rec.fields.size()) +
                               " fields; the columns are item_id,status");
      continue;
    }
    auto st = schema::ParseDeletionItemStatus(LowerTrim(rec.fields[1]));
    if (!st || *st == schema::DeletionItemStatus::kUnspecified) {
      errors.Add(rec.line,
                 "the status is not received, notified, removed, reappeared or withdrawn");
      continue;
    }
    const std::string& id = rec.fields[0];
    if (id.empty() || id.size() > 64) {
      errors.Add(rec.line, "the item id must be 1 to 64 characters");
      continue;
    }
    auto [it, fresh] = seen.emplace(id, rec.line);
    if (!fresh) {
      errors.Add(rec.line, "item '" + id + "' was given on line " + std::to_string(it->second));
      continue;
    }
    out.push_back({id, *st, rec.line});
  }
  REFBUS_RETURN_IF_ERROR(errors.Result("the status CSV"));
  if (out.empty()) return InvalidArgument("the status CSV holds no item_id,status lines");
  return out;
}

Result<std::vector<StatusLine>> StatusDelta(const std::map<std::string, std::string>& current,
                                            const std::vector<StatusLine>& wanted) {
  std::map<std::string, size_t> last;  // item id -> index of its last wanted status
  for (size_t i = 0; i < wanted.size(); ++i) {
    if (current.count(wanted[i].item_id) == 0) {
      return NotFound(
          "item '" + wanted[i].item_id + "' is not in this deletion request" +
          (wanted[i].line > 0 ? " (line " + std::to_string(wanted[i].line) + ")" : std::string()));
    }
    last[wanted[i].item_id] = i;
  }
  std::vector<StatusLine> delta;
  for (size_t i = 0; i < wanted.size(); ++i) {
    const StatusLine& w = wanted[i];
    if (last[w.item_id] != i) continue;
    if (current.at(w.item_id) == schema::Name(w.status)) continue;
    delta.push_back(w);
  }
  return delta;
}

}  // namespace refbus::agent
