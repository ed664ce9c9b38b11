#include "agent/deletion_work.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <tuple>

#include "core/hash.h"
#include "keys/crypto.h"
#include "keys/directory.h"
#include "keys/identity.h"
#include "linkage/identifier.h"

namespace refbus::agent {

using Json = nlohmann::json;  // as agent/engine.h

namespace {

constexpr std::string_view kWatchTextHead = "refbus/deletion-watch-list/v1\n";

std::string Sha256HexOf(std::string_view domain, std::string_view value) {
  std::string in(domain);
  in += value;
  return HexEncode(Sha256(AsBytes(in)));
}

bool IsHex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

Result<uint64_t> WatchNumber(std::string_view line, std::string_view name) {
  if (line.substr(0, name.size() + 1) != std::string(name) + " ") {
    return Malformed("watch list: expected the line '" + std::string(name) + " N'");
  }
  std::string_view v = line.substr(name.size() + 1);
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size() || v.empty()) {
    return Malformed("watch list: '" + std::string(name) + "' is not a number");
  }
  return n;
}

}  // namespace

bool WorkItem::Monitored() const {
  return watch_ended.empty() &&
         std::any_of(links.begin(), links.end(), [](const WorkLink& l) { return l.monitor; });
}

bool WorkItem::Overdue(UnixMillis now, int64_t overdue_days) const {
  if (status == "removed" || status == "withdrawn" || links.empty()) return false;
  const UnixMillis limit = static_cast<UnixMillis>(overdue_days) * kMillisPerDay;
  return now > created_at_ms && now - created_at_ms > limit;
}

Json WorkItemToJson(const WorkItem& w) {
  Json links = Json::array();
  for (const auto& l : w.links) {
    links.push_back({{"request_id", l.request_id},
                     {"item_id", l.item_id},
                     {"requester", l.requester},
                     {"grant_id", l.grant_id},
                     {"linked_at_ms", l.linked_at_ms},
                     {"monitor", l.monitor}});
  }
  Json notices = Json::array();
  for (const auto& n : w.notices) {
    Json sealed = Json::array();
    for (const auto& x : n.answer_sealed) {
      sealed.push_back({{"at", x.place},
                        {"box", HexEncode(x.box)},
                        {"grant", x.grant_id},
                        {"nonce", HexEncode(x.nonce)}});
    }
    notices.push_back({{"sent_at_ms", n.sent_at_ms},
                       {"platform", n.platform},
                       {"answer", n.answer_sealed.empty() ? n.answer : std::string()},
                       {"answer_sealed", sealed},
                       {"removed", n.removed},
                       {"operator", n.operator_ref},
                       {"recorded_at_ms", n.recorded_at_ms}});
  }
  return {{"work_id", w.work_id},
          {"url_key", w.url_key},
          {"sha256", w.content_sha256},
          {"platform", w.platform},
          {"status", w.status},
          {"created_at_ms", w.created_at_ms},
          {"updated_at_ms", w.updated_at_ms},
          {"links", links},
          {"notices", notices},
          {"watch_ended", w.watch_ended},
          {"known_from", w.known_from},
          {"unlinked", w.unlinked}};
}

Result<WorkItem> WorkItemFromJson(const Json& j) {
  WorkItem w;
  try {
    w.work_id = j.at("work_id").get<std::string>();
    w.url_key = j.at("url_key").get<std::string>();
    w.content_sha256 = j.at("sha256").get<std::string>();
    w.platform = j.at("platform").get<std::string>();
    w.status = j.at("status").get<std::string>();
    w.created_at_ms = j.at("created_at_ms").get<UnixMillis>();
    w.updated_at_ms = j.at("updated_at_ms").get<UnixMillis>();
    for (const auto& l : j.at("links")) {
      w.links.push_back({l.at("request_id").get<std::string>(), l.at("item_id").get<std::string>(),
                         l.at("requester").get<std::string>(), l.at("grant_id").get<std::string>(),
                         l.at("linked_at_ms").get<UnixMillis>(), l.at("monitor").get<bool>()});
    }
    for (const auto& n : j.at("notices")) {
      TakedownNotice t{n.at("sent_at_ms").get<UnixMillis>(),
                       n.at("platform").get<std::string>(),
                       n.at("answer").get<std::string>(),
                       n.at("removed").get<bool>(),
                       n.at("operator").get<std::string>(),
                       n.at("recorded_at_ms").get<UnixMillis>(),
                       {}};
      for (const auto& x : n.value("answer_sealed", Json::array())) {
        auto box = HexDecode(x.at("box").get<std::string>());
        auto nonce = HexDecode(x.at("nonce").get<std::string>());
        if (!box.ok() || !nonce.ok()) return Malformed("a stored takedown notice does not read");
        t.answer_sealed.push_back({x.at("grant").get<std::string>(), x.at("at").get<std::string>(),
                                   std::move(*nonce), std::move(*box)});
      }
      w.notices.push_back(std::move(t));
    }
    w.watch_ended = j.at("watch_ended").get<std::string>();
    w.known_from = j.at("known_from").get<std::vector<std::string>>();
    w.unlinked = j.at("unlinked").get<uint64_t>();
  } catch (const std::exception&) {
    return Malformed("a stored deletion work item does not read");
  }
  return w;
}

std::string NoticeAnswerPlace(const std::string& work_id, size_t notice_index) {
  return TextPlace("deletion-work", work_id, "notice-" + std::to_string(notice_index) + "-answer");
}

std::vector<std::string> WorkKeys(const schema::DeletionItem& item) {
  std::vector<std::string> keys;
  if (!item.url.empty()) {
    auto canonical = linkage::CanonicalUrl(item.url);
    std::string text = canonical.ok() ? *canonical : item.url;
    if (!canonical.ok()) {
      const auto b = text.find_first_not_of(" \t\r\n");
      const auto e = text.find_last_not_of(" \t\r\n");
      text = b == std::string::npos ? std::string() : text.substr(b, e - b + 1);
    }
    keys.push_back("u:" + Sha256HexOf("refbus/deletion-url/v1\n", text));
  }
  if (!item.content_sha256.empty()) keys.push_back("h:" + HexEncode(item.content_sha256));
  return keys;
}

std::string WorkIdFor(const std::string& key) {
  return Sha256HexOf("refbus/deletion-work/v1\n", key).substr(0, 32);
}

std::string WorkPlatform(const std::string& raw) {
  if (raw.empty()) return "";
  // Only a name of the known list: any other text is the requester's and stays sealed in
  // its chunk (the queue holds nothing of a case in the clear).
  auto p = linkage::CanonicalPlatform(raw);
  return p.ok() ? *p : "other";
}

// ---- statistics ----

bool StatsCell::operator<(const StatsCell& o) const {
  return std::tie(agency_type, region, outcome) < std::tie(o.agency_type, o.region, o.outcome);
}

std::string StatsCsv(const std::string& month, std::vector<StatsCell> cells) {
  std::sort(cells.begin(), cells.end());
  std::vector<bool> hidden(cells.size(), false);
  for (size_t i = 0; i < cells.size(); ++i) hidden[i] = cells[i].count < kStatsMinCount;
  // Complementary suppression per (agency_type, region) group.
  for (size_t b = 0; b < cells.size();) {
    size_t e = b;
    while (e < cells.size() && cells[e].agency_type == cells[b].agency_type &&
           cells[e].region == cells[b].region) {
      ++e;
    }
    size_t n_hidden = 0;
    std::optional<size_t> smallest;
    for (size_t i = b; i < e; ++i) {
      if (hidden[i]) {
        ++n_hidden;
      } else if (!smallest || cells[i].count < cells[*smallest].count) {
        smallest = i;
      }
    }
    if (n_hidden == 1 && smallest) hidden[*smallest] = true;
    b = e;
  }
  std::string out = "month,agency_type,region,outcome,count\n";
  for (size_t i = 0; i < cells.size(); ++i) {
    const auto& c = cells[i];
    std::string count = !hidden[i]                 ? std::to_string(c.count)
                        : c.count < kStatsMinCount ? std::string("<5")
                                                   : std::string("suppressed");
    out += month + "," + c.agency_type + "," + c.region + "," + c.outcome + "," + count + "\n";
  }
  return out;
}

Result<std::pair<UnixMillis, UnixMillis>> MonthRange(std::string_view text) {
  const auto bad = [] { return InvalidArgument("a month is written YYYY-MM, e.g. 2026-11"); };
  if (text.size() != 7 || text[4] != '-') return bad();
  int y = 0;
  unsigned m = 0;
  auto r1 = std::from_chars(text.data(), text.data() + 4, y);
  auto r2 = std::from_chars(text.data() + 5, text.data() + 7, m);
  if (r1.ec != std::errc() || r2.ec != std::errc() || r1.ptr != text.data() + 4 ||
      r2.ptr != text.data() + 7 || y < 1970 || m < 1 || m > 12) {
    return bad();
  }
  using namespace std::chrono;
  const year_month first{year{y}, std::chrono::month{m}};
  const year_month next = first + months{1};
  const auto ms = [](year_month ym) {
    return static_cast<UnixMillis>(sys_days{ym / day{1}}.time_since_epoch().count()) *
           kMillisPerDay;
  };
  return std::make_pair(ms(first), ms(next));
}

// ---- the watch list ----

std::string WatchListText(const WatchList& list) {
  std::string t(kWatchTextHead);
  t += "publisher " + list.publisher + "\n";
  t += "version " + std::to_string(list.version) + "\n";
  t += "base " + std::to_string(list.base_version) + "\n";
  t += "issued_at_ms " + std::to_string(list.issued_at_ms) + "\n";
  for (const auto& h : list.added) t += "+" + h + "\n";
  for (const auto& h : list.removed) t += "-" + h + "\n";
  return t;
}

Result<WatchList> ParseWatchListText(std::string_view text) {
  if (text.substr(0, kWatchTextHead.size()) != kWatchTextHead) {
    return Malformed("watch list: not a refbus deletion watch list (v1)");
  }
  std::vector<std::string_view> lines;
  for (size_t at = kWatchTextHead.size(); at < text.size();) {
    const size_t nl = text.find('\n', at);
    if (nl == std::string_view::npos) return Malformed("watch list: the last line has no newline");
    lines.push_back(text.substr(at, nl - at));
    at = nl + 1;
  }
  if (lines.size() < 4 || lines[0].substr(0, 10) != "publisher ") {
    return Malformed("watch list: the header lines are missing");
  }
  WatchList w;
  w.publisher = std::string(lines[0].substr(10));
  REFBUS_ASSIGN_OR_RETURN(w.version, WatchNumber(lines[1], "version"));
  REFBUS_ASSIGN_OR_RETURN(w.base_version, WatchNumber(lines[2], "base"));
  REFBUS_ASSIGN_OR_RETURN(w.issued_at_ms, WatchNumber(lines[3], "issued_at_ms"));
  if (w.version == 0 || w.base_version >= w.version) {
    return Malformed("watch list: version must be positive and newer than its base");
  }
  for (size_t i = 4; i < lines.size(); ++i) {
    const std::string_view l = lines[i];
    if (l.size() != 65 || (l[0] != '+' && l[0] != '-') || !IsHex64(l.substr(1))) {
      return Malformed("watch list: line " + std::to_string(i + 2) +
                       " is not '+' or '-' and a lowercase hex SHA-256");
    }
    if (l[0] == '-' && w.base_version == 0) {
      return Malformed("watch list: a full list removes nothing");
    }
    auto& set = l[0] == '+' ? w.added : w.removed;
    if (!set.insert(std::string(l.substr(1))).second) {
      return Malformed("watch list: a hash is listed twice");
    }
  }
  if (WatchListText(w) != text) return Malformed("watch list: not in canonical order");
  return w;
}

Json SignWatchList(const WatchList& list, const keys::Identity& identity) {
  const std::string text = WatchListText(list);
  return {{"format", 1},
          {"list", text},
          {"signer_key_id", HexEncode(identity.signing_key_id())},
          {"signature", HexEncode(identity.Sign(kWatchListLabel, AsBytes(text)))}};
}

Result<WatchList> VerifyWatchList(const Json& file, const schema::Directory& directory,
                                  UnixMillis now) {
  if (!file.is_object() || file.value("format", 0) != 1 || !file.contains("list") ||
      !file["list"].is_string() || !file.contains("signer_key_id") ||
      !file["signer_key_id"].is_string() || !file.contains("signature") ||
      !file["signature"].is_string()) {
    return Malformed("watch list file: expected {format: 1, list, signer_key_id, signature}");
  }
  const std::string text = file["list"].get<std::string>();
  REFBUS_ASSIGN_OR_RETURN(WatchList w, ParseWatchListText(text));
  const schema::Party* p = directory.Find(w.publisher);
  if (p == nullptr || !p->HasRole(schema::Role::kDeletion)) {
    return PermissionDenied("watch list from " + w.publisher.substr(0, 64) +
                            ", which is not a deletion center in the directory");
  }
  auto key_id = HexDecode(file["signer_key_id"].get<std::string>());
  auto sig = HexDecode(file["signature"].get<std::string>());
  if (!key_id.ok() || !sig.ok()) return Malformed("watch list file: key id or signature not hex");
  REFBUS_ASSIGN_OR_RETURN(
      const schema::KeyRecord* key,
      keys::FindSigningKey(directory, w.publisher, *key_id, w.issued_at_ms, now));
  if (!keys::VerifySignature(key->signing_key, kWatchListLabel, AsBytes(text), *sig)) {
    return PermissionDenied("watch list from " + w.publisher +
                            ": the signature does not verify with its directory signing key");
  }
  return w;
}

Status ApplyWatchList(WatchHeld& held, const WatchList& list) {
  if (!held.publisher.empty() && held.publisher != list.publisher) {
    return InvalidArgument("watch list from " + list.publisher + " applied to " + held.publisher +
                           "'s");
  }
  if (list.version <= held.version) {
    return FailedPrecondition("watch list version " + std::to_string(list.version) + " from " +
                              list.publisher + " is not newer than version " +
                              std::to_string(held.version) + ", which is held: refused");
  }
  if (list.base_version != 0 && list.base_version != held.version) {
    return FailedPrecondition(
        "watch list delta " + std::to_string(list.version) + " from " + list.publisher +
        " applies to version " + std::to_string(list.base_version) + "; version " +
        std::to_string(held.version) + " is held: ask the publisher for the full list");
  }
  if (list.base_version == 0) held.hashes.clear();
  for (const auto& h : list.removed) held.hashes.erase(h);
  held.hashes.insert(list.added.begin(), list.added.end());
  held.publisher = list.publisher;
  held.version = list.version;
  return Status::Ok();
}

bool NeedsFullList(const WatchHeld& held, const WatchList& list) {
  return list.base_version != 0 && list.version > held.version && list.base_version != held.version;
}

Json WatchHeldToJson(const WatchHeld& h) {
  return {{"publisher", h.publisher}, {"version", h.version}, {"hashes", h.hashes}};
}

Result<WatchHeld> WatchHeldFromJson(const Json& j) {
  WatchHeld h;
  try {
    h.publisher = j.at("publisher").get<std::string>();
    h.version = j.at("version").get<uint64_t>();
    h.hashes = j.at("hashes").get<std::set<std::string>>();
  } catch (const std::exception&) {
    return Malformed("a stored watch list does not read");
  }
  return h;
}

}  // namespace refbus::agent
