// Linkage matching on a synthetic multi-center data set (issue 19 "Done when"): how many
// of the links between centers the canonical forms (linkage/identifier.h) find, how many
// they invent, and why the missed ones are missed.
//
//   linkage_match_bench [--centers N] [--perpetrators N] [--victims N] [--seed N]
//
// The generator (deterministic from the seed; its own arithmetic on std::mt19937_64 output,
// so every platform draws the same data) makes perpetrators with identifiers (a mobile
// number, 1-3 accounts on the listed platforms, sometimes an email address, profile or post
// URLs, content hashes), and victims, each supported by one center and abused by one
// perpetrator (a few perpetrators have many victims across centers, as in the seed
// 004_e1ec5fed091b91b3 case: 15 victims, 3 centers). Each center enters, for each of its
// victims, some of the perpetrator's identifiers, typed as caseworkers type them: the
// format variants the rules fold (hyphens, +82, full-width digits, '@', upper case,
// platform aliases, profile URLs, tracking parameters, http, trailing slashes, Gmail dots
// and +tags) and the mistakes they cannot (a wrong digit, a dropped letter, "www." or "m."
// added to a URL, dots dropped from a non-Gmail address, an unknown platform spelling).
// Some perpetrators get look-alike identifiers of others ("john.doe" / "john_doe", phone
// numbers one digit apart, naver.com addresses differing in a dot), which must stay apart.
//
// A true link is (center a, center b, perpetrator p): both centers entered an identifier of
// p. It is "linkable" when both entered the same underlying identifier (anything else no
// identifier matching can find). A predicted link is two entries of two centers with the
// same canonical form; it is correct when both entries belong to the same perpetrator.
// Printed for three matchers: the raw text, trimmed and lower-cased text, and
// Canonicalize(). The escrow's threshold and the OPRF do not change which entries match
// (the pseudonym is a deterministic function of the canonical form), so this measures them.
//
// Besides the text, prints machine-readable lines: RESULT linkage_match matcher=... .
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "linkage/identifier.h"

using refbus::linkage::Canonicalize;
using refbus::linkage::IdentifierKind;

namespace {

struct Rng {
  std::mt19937_64 g;
  uint64_t Below(uint64_t n) { return g() % n; }
  bool Chance(double p) { return static_cast<double>(g() % 1'000'000) < p * 1'000'000; }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[Below(v.size())];
  }
};

struct Identifier {
  IdentifierKind kind;
  std::string truth;  // the underlying identifier: same truth, same real-world thing
  // Parts the variant typing needs.
  std::string a, b;
};

struct Entry {
  int center;
  int perp;
  IdentifierKind kind;
  std::string truth;
  std::string raw;
  std::string cause;  // "" or why this entry cannot match its truth's other entries
};

const std::vector<std::string> kPlatforms = {"instagram", "x",       "tiktok", "telegram",
                                             "kakaotalk", "discord", "youtube"};
const std::vector<std::string> kNames = {"kim",  "lee",  "park", "choi", "jung", "kang", "cho",
                                         "yoon", "jang", "lim",  "han",  "shin", "seo",  "kwon"};

std::string Digits(Rng& r, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(static_cast<char>('0' + r.Below(10)));
  return s;
}

std::string Handle(Rng& r) {
  std::string h = r.Pick(kNames);
  const char sep = "._"[r.Below(2)];
  if (r.Chance(0.6)) h += sep + r.Pick(kNames);
  return h + Digits(r, static_cast<int>(1 + r.Below(3)));
}

std::vector<Identifier> MakePerpetrator(Rng& r, const std::vector<Identifier>* lookalike) {
  std::vector<Identifier> ids;
  std::string phone = "10" + Digits(r, 8);
  if (lookalike != nullptr && r.Chance(0.5)) {  // one digit away from another perpetrator's
    const std::string& other = (*lookalike)[0].a;
    phone = other;
    phone[9] = phone[9] == '9' ? '0' : static_cast<char>(phone[9] + 1);
  }
  ids.push_back({IdentifierKind::kPhone, "phone:+82" + phone, phone, ""});
  const int accounts = static_cast<int>(1 + r.Below(3));
  for (int i = 0; i < accounts; ++i) {
    std::string platform = r.Pick(kPlatforms);
    std::string handle = Handle(r);
    if (lookalike != nullptr && i == 0) {  // "john.doe" vs "john_doe" on the same platform
      for (const auto& o : *lookalike) {
        if (o.kind != IdentifierKind::kAccount) continue;
        platform = o.a;
        handle = o.b;
        const size_t dot = handle.find_first_of("._");
        if (dot != std::string::npos)
          handle[dot] = handle[dot] == '.' ? '_' : '.';
        else
          handle += "0";
        break;
      }
    }
    ids.push_back(
        {IdentifierKind::kAccount, "account:" + platform + ":" + handle, platform, handle});
  }
  if (r.Chance(0.4)) {
    const bool gmail = r.Chance(0.5);
    std::string local = r.Pick(kNames) + (gmail ? "." : "") + r.Pick(kNames) + Digits(r, 2);
    if (lookalike != nullptr) {  // the same naver/daum address without its dot: another mailbox
      for (const auto& o : *lookalike) {
        if (o.kind == IdentifierKind::kEmail && o.b != "gmail.com" &&
            o.a.find('.') != std::string::npos) {
          local = o.a;
          std::erase(local, '.');
          ids.push_back({IdentifierKind::kEmail, "email:" + local + "@" + o.b, local, o.b});
          break;
        }
      }
    }
    const std::string domain = gmail ? "gmail.com" : (r.Chance(0.5) ? "naver.com" : "daum.net");
    std::string truth_local = local;
    if (gmail) std::erase(truth_local, '.');
    ids.push_back({IdentifierKind::kEmail, "email:" + truth_local + "@" + domain, local, domain});
  }
  const int urls = static_cast<int>(r.Below(3));
  for (int i = 0; i < urls; ++i) {
    const std::string host = "share" + Digits(r, 3) + ".example";
    const std::string path = "/v/" + Digits(r, 7);
    ids.push_back({IdentifierKind::kUrl, "url:" + host + path, host, path});
  }
  const int hashes = static_cast<int>(r.Below(6));
  for (int i = 0; i < hashes; ++i) {
    std::string h;
    for (int k = 0; k < 64; ++k) h.push_back("0123456789abcdef"[r.Below(16)]);
    ids.push_back({IdentifierKind::kContentSha256, "content-sha256:" + h, h, ""});
  }
  return ids;
}

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string TypePhone(Rng& r, const std::string& n, std::string& cause) {
  // n = "10xxxxxxxx": national number without the trunk 0.
  const std::string a = n.substr(0, 2), b = n.substr(2, 4), c = n.substr(6);
  std::string s;
  switch (r.Below(9)) {
    case 0:
      s = "0" + a + "-" + b + "-" + c;
      break;
    case 1:
      s = "0" + n;
      break;
    case 2:
      s = "+82 " + a + " " + b + " " + c;
      break;
    case 3:
      s = "+82-" + a + "-" + b + "-" + c;
      break;
    case 4:
      s = "82 " + a + " " + b + " " + c;
      break;
    case 5:
      s = "0" + a + " " + b + " " + c;
      break;
    case 6:
      s = "0" + a + "\xE2\x80\x93" + b + "\xE2\x80\x93" + c;
      break;  // en dash
    case 7:
      s = "(0" + a + ") " + b + "-" + c;
      break;
    default:
      s = "0" + a + "." + b + "." + c;
      break;
  }
  if (r.Chance(0.02)) {  // a wrong digit
    const size_t pos = s.find_last_of("0123456789");
    s[pos] = s[pos] == '9' ? '0' : static_cast<char>(s[pos] + 1);
    cause = "wrong digit";
  }
  return s;
}

std::string TypeAccount(Rng& r, const Identifier& id, std::string& cause) {
  std::string handle = r.Chance(0.3) ? Upper(id.b.substr(0, 1)) + id.b.substr(1) : id.b;
  if (r.Chance(0.02)) {
    handle.erase(handle.size() / 2, 1);
    cause = "dropped letter";
  }
  static const std::map<std::string, std::vector<std::string>> kAliases = {
      {"instagram", {"instagram", "Instagram", "IG", "insta"}},
      {"x", {"x", "X", "twitter", "Twitter"}},
      {"tiktok", {"tiktok", "TikTok"}},
      {"telegram", {"telegram", "Telegram", "tg"}},
      {"kakaotalk", {"kakaotalk", "kakao", "\xEC\xB9\xB4\xED\x86\xA1"}},
      {"discord", {"discord", "Discord"}},
      {"youtube", {"youtube", "YouTube"}}};
  static const std::map<std::string, std::string> kHosts = {
      {"instagram", "https://www.instagram.com/"},
      {"x", "https://x.com/"},
      {"tiktok", "https://www.tiktok.com/@"},
      {"telegram", "https://t.me/"},
      {"youtube", "https://www.youtube.com/@"}};
  if (r.Chance(0.02)) {
    cause = "unknown platform spelling";
    return "Instgram:" + handle;
  }
  if (auto it = kHosts.find(id.a); it != kHosts.end() && r.Chance(0.3)) {
    return it->second + handle + (r.Chance(0.5) ? "/" : "") + (r.Chance(0.3) ? "?igshid=x1" : "");
  }
  const std::string at = r.Chance(0.4) ? "@" : "";
  return r.Pick(kAliases.at(id.a)) + ":" + at + handle;
}

std::string TypeEmail(Rng& r, const Identifier& id, std::string& cause) {
  std::string local = id.a;
  if (id.b == "gmail.com") {
    if (r.Chance(0.3)) std::erase(local, '.');
    if (r.Chance(0.2)) local += "+shop";
  } else if (r.Chance(0.05) && local.find('.') != std::string::npos) {
    std::erase(local, '.');
    cause = "dots dropped (not Gmail)";
  }
  std::string s = local + "@" + id.b;
  return r.Chance(0.3) ? Upper(s) : s;
}

std::string TypeUrl(Rng& r, const Identifier& id, std::string& cause) {
  std::string host = id.a;
  if (r.Chance(0.08)) {
    host = "www." + host;
    cause = "www. added";
  } else if (r.Chance(0.04)) {
    host = "m." + host;
    cause = "m. added";
  }
  std::string s =
      (r.Chance(0.5) ? "http://" : "https://") + (r.Chance(0.2) ? Upper(host) : host) + id.b;
  if (r.Chance(0.3)) s += "/";
  if (r.Chance(0.3)) s += "?utm_source=kakao&utm_medium=share";
  if (r.Chance(0.2)) s += "#t=12";
  return s;
}

std::string Type(Rng& r, const Identifier& id, std::string& cause) {
  switch (id.kind) {
    case IdentifierKind::kPhone:
      return TypePhone(r, id.a, cause);
    case IdentifierKind::kAccount:
      return TypeAccount(r, id, cause);
    case IdentifierKind::kEmail:
      return TypeEmail(r, id, cause);
    case IdentifierKind::kUrl:
      return TypeUrl(r, id, cause);
    case IdentifierKind::kContentSha256:
      return r.Chance(0.3) ? Upper(id.a) : (r.Chance(0.2) ? "sha256:" + id.a : id.a);
  }
  return {};
}

std::string Trimmed(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  const size_t e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct Score {
  uint64_t tp = 0, fp = 0, refused = 0;
  std::set<std::tuple<int, int, int>> found;
  std::map<std::string, uint64_t> wrong_by;  // the typing mistake behind each wrong match
};

// Links predicted by a matcher (key per entry; "" = refused), scored against the truth.
Score ScoreMatcher(const std::vector<Entry>& entries,
                   const std::function<std::string(const Entry&)>& key_of,
                   const std::set<std::tuple<int, int, int>>& truth_links) {
  std::map<std::string, std::vector<const Entry*>> by_key;
  Score s;
  for (const auto& e : entries) {
    std::string k = key_of(e);
    if (k.empty()) {
      ++s.refused;
      continue;
    }
    by_key[std::string(refbus::linkage::KindName(e.kind)) + "|" + k].push_back(&e);
  }
  std::set<std::tuple<int, int, int>> good;
  std::set<std::tuple<int, int, int, int>> bad;
  for (const auto& [k, list] : by_key) {
    for (const Entry* x : list) {
      for (const Entry* y : list) {
        if (x->center >= y->center) continue;
        if (x->perp == y->perp) {
          good.insert({x->center, y->center, x->perp});
        } else {
          const bool fresh = bad.insert({x->center, y->center, std::min(x->perp, y->perp),
                                         std::max(x->perp, y->perp)})
                                 .second;
          if (fresh) {
            const std::string why = !x->cause.empty()   ? x->cause
                                    : !y->cause.empty() ? y->cause
                                                        : "none: two people merged by a rule";
            ++s.wrong_by[why];
          }
        }
      }
    }
  }
  for (const auto& g : good) s.tp += truth_links.count(g);
  s.fp = bad.size();
  s.found = std::move(good);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  int centers = 17, perps = 2000, victims = 10000;
  uint64_t seed = 19;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const long v = std::atol(argv[i + 1]);
    if (flag == "--centers") centers = static_cast<int>(v);
    if (flag == "--perpetrators") perps = static_cast<int>(v);
    if (flag == "--victims") victims = static_cast<int>(v);
    if (flag == "--seed") seed = static_cast<uint64_t>(v);
  }
  Rng r{std::mt19937_64(seed)};
  std::vector<std::vector<Identifier>> ids;
  std::vector<int> home;
  std::set<std::string> taken;  // an account, number or address belongs to one person
  for (int p = 0; p < perps; ++p) {
    const bool lookalike = p > 0 && r.Chance(0.05);
    std::vector<Identifier> mine;
    for (const auto& id : MakePerpetrator(r, lookalike ? &ids[r.Below(ids.size())] : nullptr)) {
      if (taken.insert(id.truth).second) mine.push_back(id);
    }
    ids.push_back(std::move(mine));
    home.push_back(static_cast<int>(r.Below(static_cast<uint64_t>(centers))));
  }
  std::vector<Entry> entries;
  for (int v = 0; v < victims; ++v) {
    // Skewed: a few perpetrators have many victims.
    const double u = static_cast<double>(r.Below(1'000'000)) / 1e6;
    const int p = static_cast<int>(u * u * u * perps);
    const int c =
        r.Chance(0.5) ? home[p] : static_cast<int>(r.Below(static_cast<uint64_t>(centers)));
    for (const auto& id : ids[p]) {
      const double chance = id.kind == IdentifierKind::kPhone           ? 0.5
                            : id.kind == IdentifierKind::kAccount       ? 0.6
                            : id.kind == IdentifierKind::kContentSha256 ? 0.2
                                                                        : 0.35;
      if (!r.Chance(chance)) continue;
      Entry e{c, p, id.kind, id.truth, "", ""};
      e.raw = Type(r, id, e.cause);
      entries.push_back(std::move(e));
    }
  }
  // The truth: (a, b, p) for centers a < b that both entered an identifier of p; linkable
  // when both entered the same underlying identifier.
  std::map<int, std::set<int>> centers_of_perp;
  std::map<std::string, std::set<int>> centers_of_truth;
  std::map<std::string, int> perp_of_truth;
  for (const auto& e : entries) {
    centers_of_perp[e.perp].insert(e.center);
    centers_of_truth[e.truth].insert(e.center);
    perp_of_truth[e.truth] = e.perp;
  }
  std::set<std::tuple<int, int, int>> all_links, linkable;
  for (const auto& [p, cs] : centers_of_perp)
    for (int a : cs)
      for (int b : cs)
        if (a < b) all_links.insert({a, b, p});
  for (const auto& [t, cs] : centers_of_truth)
    for (int a : cs)
      for (int b : cs)
        if (a < b) linkable.insert({a, b, perp_of_truth[t]});

  std::map<std::string, uint64_t> causes;
  for (const auto& e : entries)
    if (!e.cause.empty()) ++causes[e.cause];

  std::printf("synthetic data: seed %llu, %d centers, %d perpetrators, %d victims, %zu entries\n",
              static_cast<unsigned long long>(seed), centers, perps, victims, entries.size());
  std::printf("true links (center pair, perpetrator): %zu; linkable by a shared identifier: %zu\n",
              all_links.size(), linkable.size());
  std::printf("entries typed with a mistake no rule can undo: ");
  for (const auto& [c, n] : causes)
    std::printf("%s %llu; ", c.c_str(), static_cast<unsigned long long>(n));
  std::printf("\n\n%-14s %8s %8s %10s %10s %12s %9s\n", "matcher", "found", "wrong", "precision",
              "recall", "recall(all)", "refused");
  const std::vector<std::pair<std::string, std::function<std::string(const Entry&)>>> matchers = {
      {"raw", [](const Entry& e) { return e.raw; }},
      {"trim+lower", [](const Entry& e) { return Lower(Trimmed(e.raw)); }},
      {"canonical", [](const Entry& e) {
         auto c = Canonicalize(e.kind, e.raw);
         return c.ok() ? c->value : std::string();
       }}};
  for (const auto& [name, fn] : matchers) {
    const Score s = ScoreMatcher(entries, fn, all_links);
    const double precision = s.tp + s.fp == 0 ? 1.0 : double(s.tp) / double(s.tp + s.fp);
    const double recall = double(s.tp) / double(linkable.size());
    const double recall_all = double(s.tp) / double(all_links.size());
    std::printf("%-14s %8llu %8llu %10.4f %10.4f %12.4f %9llu\n", name.c_str(),
                static_cast<unsigned long long>(s.tp), static_cast<unsigned long long>(s.fp),
                precision, recall, recall_all, static_cast<unsigned long long>(s.refused));
    std::printf(
        "RESULT linkage_match matcher=%s found=%llu wrong=%llu precision=%.4f recall=%.4f "
        "recall_all=%.4f refused=%llu\n",
        name.c_str(), static_cast<unsigned long long>(s.tp), static_cast<unsigned long long>(s.fp),
        precision, recall, recall_all, static_cast<unsigned long long>(s.refused));
  }
  // What the canonical matcher misses, by cause: each linkable link it did not find, blamed
  // on the typing mistakes in the two centers' entries for that perpetrator.
  const Score canonical = ScoreMatcher(entries, matchers[2].second, all_links);
  std::map<std::string, uint64_t> missed_by;
  uint64_t missed = 0;
  for (const auto& link : linkable) {
    if (canonical.found.count(link) != 0) continue;
    ++missed;
    const auto [a, b, p] = link;
    std::set<std::string> why;
    for (const auto& e : entries)
      if (e.perp == p && (e.center == a || e.center == b) && !e.cause.empty()) why.insert(e.cause);
    if (why.empty()) why.insert("no typing mistake: a gap in the rules");
    for (const auto& w : why) ++missed_by[w];
  }
  std::printf("\ncanonical: %llu wrong matches; the mistake behind each:\n",
              static_cast<unsigned long long>(canonical.fp));
  for (const auto& [w, n] : canonical.wrong_by)
    std::printf("  %-40s %llu\n", w.c_str(), static_cast<unsigned long long>(n));
  std::printf("canonical: %llu linkable links missed; the mistakes in their entries:\n",
              static_cast<unsigned long long>(missed));
  for (const auto& [w, n] : missed_by)
    std::printf("  %-40s %llu\n", w.c_str(), static_cast<unsigned long long>(n));
  return 0;
}
