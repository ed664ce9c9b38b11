// Canonical forms of linkage identifiers (see identifier.h; rules in PROTOCOL.md 13.1).
//
// Error messages name the kind and the rule, never the input.
#include "linkage/identifier.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <iterator>
#include <optional>
#include <utility>
#include <vector>

namespace refbus::linkage {
namespace {

constexpr std::string_view kOprfInputLabel = "refbus/v1/linkage-id";

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsHexDigit(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

// Trims ASCII white space and the no-break / ideographic / zero-width spaces that pasted
// text carries (U+00A0, U+3000, U+200B, U+FEFF).
std::string_view Trim(std::string_view s) {
  static constexpr std::array<std::string_view, 4> kUnicodeSpaces = {
      "\xC2\xA0", "\xE3\x80\x80", "\xE2\x80\x8B", "\xEF\xBB\xBF"};
  bool changed = true;
  while (changed && !s.empty()) {
    changed = false;
    if (IsAsciiSpace(s.front())) s.remove_prefix(1), changed = true;
    if (!s.empty() && IsAsciiSpace(s.back())) s.remove_suffix(1), changed = true;
    for (std::string_view u : kUnicodeSpaces) {
      if (s.starts_with(u)) s.remove_prefix(u.size()), changed = true;
      if (s.ends_with(u)) s.remove_suffix(u.size()), changed = true;
    }
  }
  return s;
}

bool AllAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

Status Bad(IdentifierKind kind, std::string_view rule) {
  return InvalidArgument(std::string(KindName(kind)) + " identifier: " + std::string(rule));
}

Status CheckSize(IdentifierKind kind, std::string_view raw) {
  if (raw.size() > kMaxIdentifierBytes) return Bad(kind, "longer than 2048 bytes");
  return Status::Ok();
}

// --- Platforms -------------------------------------------------------------------------

struct PlatformAlias {
  std::string_view alias;
  std::string_view name;
};
// Every alias is compared after lower-casing and trimming. Names are the canonical ones.
constexpr PlatformAlias kPlatforms[] = {
    {"x", "x"},
    {"twitter", "x"},
    {"x.com", "x"},
    {"twitter.com", "x"},
    {"instagram", "instagram"},
    {"insta", "instagram"},
    {"ig", "instagram"},
    {"instagram.com", "instagram"},
    {"facebook", "facebook"},
    {"fb", "facebook"},
    {"facebook.com", "facebook"},
    {"tiktok", "tiktok"},
    {"tiktok.com", "tiktok"},
    {"telegram", "telegram"},
    {"tg", "telegram"},
    {"t.me", "telegram"},
    {"kakaotalk", "kakaotalk"},
    {"kakao", "kakaotalk"},
    {"\xEC\xB9\xB4\xEC\xB9\xB4\xEC\x98\xA4\xED\x86\xA1", "kakaotalk"},  // 카카오톡
    {"\xEC\xB9\xB4\xED\x86\xA1", "kakaotalk"},                          // 카톡
    {"line", "line"},
    {"discord", "discord"},
    {"youtube", "youtube"},
    {"yt", "youtube"},
    {"youtube.com", "youtube"},
    {"snapchat", "snapchat"},
    {"snap", "snapchat"},
    {"zepeto", "zepeto"},
    {"naver", "naver"},
    {"band", "band"},
    {"reddit", "reddit"},
    {"threads", "threads"},
    {"wechat", "wechat"},
    {"whatsapp", "whatsapp"},
    {"signal", "signal"},
};

// Profile addresses: host (after "www.", "m.", "mobile.") -> platform, and whether the
// handle is written with '@' in the path (tiktok.com/@name).
struct ProfileHost {
  std::string_view host;
  std::string_view platform;
  bool at_required;
};
constexpr ProfileHost kProfileHosts[] = {
    {"instagram.com", "instagram", false}, {"x.com", "x", false},
    {"twitter.com", "x", false},           {"tiktok.com", "tiktok", true},
    {"t.me", "telegram", false},           {"youtube.com", "youtube", true},
    {"facebook.com", "facebook", false},   {"threads.net", "threads", true},
};
// First path segments of these hosts that name pages, posts or functions, not accounts.
constexpr std::string_view kNotProfiles[] = {
    "p",        "reel",          "reels",   "stories",  "explore", "i",      "home",     "search",
    "hashtag",  "intent",        "share",   "watch",    "foryou",  "login",  "accounts", "settings",
    "messages", "notifications", "tv",      "joinchat", "s",       "groups", "pages",    "events",
    "video",    "profile.php",   "channel", "c",        "user"};

// --- Phone -----------------------------------------------------------------------------

// Characters that Korean word processors and full-width input put into numbers, mapped to
// their ASCII counterparts: full-width digits, plus, minus and parentheses (U+FF10-FF19,
// U+FF0B, U+FF0D, U+FF08, U+FF09), the hyphens and dashes U+2010-2015, the minus sign
// U+2212, and the ideographic and no-break spaces. Everything else is kept as it is.
std::string FoldTypographic(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
    const size_t left = s.size() - i;
    if (left >= 3 && b(0) == 0xEF && b(1) == 0xBC && b(2) >= 0x90 && b(2) <= 0x99) {
      out.push_back(static_cast<char>('0' + (b(2) - 0x90)));
    } else if (left >= 3 && b(0) == 0xEF && b(1) == 0xBC &&
               (b(2) == 0x8B || b(2) == 0x8D || b(2) == 0x88 || b(2) == 0x89)) {
      out.push_back(b(2) == 0x8B ? '+' : b(2) == 0x8D ? '-' : b(2) == 0x88 ? '(' : ')');
    } else if (left >= 3 && b(0) == 0xE2 && b(1) == 0x80 && b(2) >= 0x90 && b(2) <= 0x95) {
      out.push_back('-');
    } else if (left >= 3 && b(0) == 0xE2 && b(1) == 0x88 && b(2) == 0x92) {
      out.push_back('-');
    } else if (left >= 3 && b(0) == 0xE3 && b(1) == 0x80 && b(2) == 0x80) {
      out.push_back(' ');
    } else if (left >= 2 && b(0) == 0xC2 && b(1) == 0xA0) {
      out.push_back(' ');
      i += 2;
      continue;
    } else {
      out.push_back(s[i]);
      ++i;
      continue;
    }
    i += 3;
  }
  return out;
}

// Digits of a phone number with its visual separators removed; a leading '+' is kept as
// '+'. Empty if any other character occurs.
std::string PhoneDigits(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (IsDigit(c)) {
      out.push_back(c);
    } else if (c == '+' && i == 0) {
      out.push_back('+');
    } else if (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '/' || c == '\t') {
      continue;
    } else {
      return {};
    }
  }
  return out;
}

// A Korean national significant number (no trunk 0): mobile 10 + 8 digits, older mobile
// 11/16-19 + 7 or 8, Seoul 2 + 7 or 8, other areas 31-33, 41-44, 51-55, 61-64 + 7 or 8,
// internet phones 70 + 8, nationwide service numbers 15xx/16xx/18xx + 4 (8 digits, dialled
// without a trunk 0).
bool IsKoreanNsn(std::string_view n) {
  const size_t len = n.size();
  if (len < 8 || len > 10) return false;
  if (n.starts_with("10")) return len == 10;
  if (n.starts_with("70")) return len == 10;
  if (n.starts_with("11") || n.starts_with("16") || n.starts_with("17") || n.starts_with("18") ||
      n.starts_with("19"))
    return len == 9 || len == 10;
  if (n.starts_with("2")) return len == 8 || len == 9;
  static constexpr std::array<std::string_view, 16> kAreas = {"31", "32", "33", "41", "42", "43",
                                                              "44", "51", "52", "53", "54", "55",
                                                              "61", "62", "63", "64"};
  const bool area = std::any_of(kAreas.begin(), kAreas.end(),
                                [&](std::string_view a) { return n.starts_with(a); });
  return area && (len == 9 || len == 10);
}

bool IsServiceNumber(std::string_view d) {
  return d.size() == 8 && (d.starts_with("15") || d.starts_with("16") || d.starts_with("18"));
}

// --- Email -----------------------------------------------------------------------------

// A DNS host name in ASCII: labels of letters, digits and hyphens (not at either end),
// 1-63 bytes each, at most 253 in all, at least two labels. Punycode labels (xn--) pass.
bool IsHostName(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  size_t labels = 0;
  size_t start = 0;
  while (start <= h.size()) {
    const size_t dot = h.find('.', start);
    const std::string_view label =
        h.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return false;
    for (char c : label)
      if (!IsAlpha(c) && !IsDigit(c) && c != '-') return false;
    ++labels;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return labels >= 2;
}

// Lower-cased host; a trailing root dot removed. Error text names the rule.
Result<std::string> CanonicalHost(IdentifierKind kind, std::string_view raw) {
  if (!AllAscii(raw))
    return Bad(kind, "the host is not ASCII: enter an internationalized name in its xn-- form");
  std::string host = ToLower(raw);
  if (!host.empty() && host.back() == '.') host.pop_back();
  if (!IsHostName(host)) return Bad(kind, "the host is not a valid DNS name");
  return host;
}

bool IsEmailLocalChar(char c) {
  static constexpr std::string_view kSpecials = "!#$%&'*+-/=?^_`{|}~.";
  return IsAlpha(c) || IsDigit(c) || kSpecials.find(c) != std::string_view::npos;
}

// --- URL -------------------------------------------------------------------------------

bool IsTrackingParameter(std::string_view name) {
  static constexpr std::array<std::string_view, 18> kExact = {
      "fbclid", "gclid", "dclid",  "gbraid", "wbraid", "msclkid", "yclid",   "twclid",  "ttclid",
      "igshid", "igsh",  "mc_cid", "mc_eid", "_ga",    "_gl",     "mkt_tok", "srsltid", "ref_src"};
  const std::string lower = ToLower(name);
  if (lower.starts_with("utm_")) return true;
  return std::find(kExact.begin(), kExact.end(), lower) != kExact.end();
}

bool IsUnreserved(char c) {
  return IsAlpha(c) || IsDigit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

int HexValue(char c) {
  if (IsDigit(c)) return c - '0';
  return Lower(c) - 'a' + 10;
}

// RFC 3986 section 6.2.2: percent-encodings get upper-case hex digits, and encoded
// unreserved characters are decoded. False for a '%' not followed by two hex digits.
bool NormalizePercent(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size() || !IsHexDigit(in[i + 1]) || !IsHexDigit(in[i + 2])) return false;
    const char decoded = static_cast<char>(HexValue(in[i + 1]) * 16 + HexValue(in[i + 2]));
    if (IsUnreserved(decoded)) {
      out.push_back(decoded);
    } else {
      out.push_back('%');
      out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(in[i + 1]))));
      out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(in[i + 2]))));
    }
    i += 2;
  }
  return true;
}

// RFC 3986 section 5.2.4, on a path that starts with '/': "." and ".." segments removed.
std::string RemoveDotSegments(std::string_view path) {
  std::vector<std::string_view> segments;
  size_t start = 1;
  while (start <= path.size()) {
    const size_t slash = path.find('/', start);
    const std::string_view seg = path.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    const bool last = slash == std::string_view::npos;
    if (seg == "..") {
      if (!segments.empty()) segments.pop_back();
      if (last) segments.emplace_back();
    } else if (seg == ".") {
      if (last) segments.emplace_back();
    } else {
      segments.push_back(seg);
    }
    if (last) break;
    start = slash + 1;
  }
  std::string out;
  for (std::string_view s : segments) {
    out.push_back('/');
    out.append(s);
  }
  return out.empty() ? "/" : out;
}

bool IsAllowedUrlChar(char c) {
  static constexpr std::string_view kOther = "-._~:/?#[]@!$&'()*+,;=%";
  return IsAlpha(c) || IsDigit(c) || kOther.find(c) != std::string_view::npos;
}

struct UrlParts {
  std::string scheme;
  std::string_view authority;
  std::string_view path;
  std::string_view query;
  bool has_query = false;
};

Result<UrlParts> SplitUrl(std::string_view s) {
  UrlParts p;
  const size_t colon = s.find("://");
  if (colon == std::string_view::npos) {
    p.scheme = "https";  // "example.com/x": pasted without a scheme
  } else {
    p.scheme = ToLower(s.substr(0, colon));
    s.remove_prefix(colon + 3);
  }
  if (p.scheme != "http" && p.scheme != "https")
    return Bad(IdentifierKind::kUrl, "only http and https URLs are accepted");
  if (const size_t hash = s.find('#'); hash != std::string_view::npos) s = s.substr(0, hash);
  const size_t path_start = s.find_first_of("/?");
  p.authority = s.substr(0, path_start);
  std::string_view rest = path_start == std::string_view::npos ? "" : s.substr(path_start);
  if (const size_t q = rest.find('?'); q != std::string_view::npos) {
    p.query = rest.substr(q + 1);
    p.has_query = true;
    rest = rest.substr(0, q);
  }
  p.path = rest;
  return p;
}

// host[:port], with any userinfo dropped; default ports (80, 443) dropped.
Result<std::string> CanonicalAuthority(std::string_view authority, std::string_view scheme) {
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos)
    authority.remove_prefix(at + 1);
  std::string_view host = authority;
  std::string_view port;
  if (const size_t c = authority.rfind(':');
      c != std::string_view::npos && authority.find(']', c) == std::string_view::npos) {
    host = authority.substr(0, c);
    port = authority.substr(c + 1);
  }
  std::string out;
  if (host.starts_with("[")) {
    if (!host.ends_with("]") || host.size() < 4) return Bad(IdentifierKind::kUrl, "bad IPv6 host");
    for (char c : host.substr(1, host.size() - 2))
      if (!IsHexDigit(c) && c != ':' && c != '.') return Bad(IdentifierKind::kUrl, "bad IPv6 host");
    out = ToLower(host);
  } else {
    REFBUS_ASSIGN_OR_RETURN(out, CanonicalHost(IdentifierKind::kUrl, host));
  }
  if (port.empty()) return out;
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(), IsDigit))
    return Bad(IdentifierKind::kUrl, "the port is not a number");
  const int n = std::stoi(std::string(port));
  if (n < 1 || n > 65535) return Bad(IdentifierKind::kUrl, "the port is out of range");
  if ((n == 443 && scheme == "https") || (n == 80 && scheme == "http")) return out;
  return out + ":" + std::to_string(n);
}

// Query parameters: empty ones and tracking ones dropped, the rest percent-normalized
// and sorted. Empty string if nothing remains.
Result<std::string> CanonicalQuery(std::string_view query) {
  std::vector<std::string> kept;
  size_t start = 0;
  while (start <= query.size()) {
    const size_t amp = query.find('&', start);
    const std::string_view param =
        query.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
    const std::string_view name = param.substr(0, param.find('='));
    if (!param.empty() && !IsTrackingParameter(name)) {
      std::string norm;
      if (!NormalizePercent(param, norm))
        return Bad(IdentifierKind::kUrl, "a '%' is not followed by two hex digits");
      kept.push_back(std::move(norm));
    }
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  std::sort(kept.begin(), kept.end());
  std::string out;
  for (const auto& k : kept) {
    if (!out.empty()) out.push_back('&');
    out += k;
  }
  return out;
}

}  // namespace

std::string_view KindName(IdentifierKind kind) {
  switch (kind) {
    case IdentifierKind::kAccount:
      return "account";
    case IdentifierKind::kPhone:
      return "phone";
    case IdentifierKind::kEmail:
      return "email";
    case IdentifierKind::kUrl:
      return "url";
    case IdentifierKind::kContentSha256:
      return "content-sha256";
  }
  return "unknown";
}

Result<IdentifierKind> ParseKind(std::string_view name) {
  for (auto k : {IdentifierKind::kAccount, IdentifierKind::kPhone, IdentifierKind::kEmail,
                 IdentifierKind::kUrl, IdentifierKind::kContentSha256}) {
    if (name == KindName(k)) return k;
  }
  return InvalidArgument("identifier kind: not one of account, phone, email, url, content-sha256");
}

Bytes CanonicalIdentifier::OprfInput() const {
  Bytes out = ToBytes(kOprfInputLabel);
  out.push_back(0);
  Append(out, AsBytes(KindName(kind)));
  out.push_back(0);
  Append(out, AsBytes(value));
  return out;
}

Result<std::string> CanonicalPlatform(std::string_view raw) {
  const std::string lower = ToLower(Trim(raw));
  for (const auto& p : kPlatforms)
    if (lower == p.alias) return std::string(p.name);
  return Bad(IdentifierKind::kAccount,
             "unknown platform (known: x, instagram, facebook, tiktok, telegram, kakaotalk, "
             "line, discord, youtube, snapchat, zepeto, naver, band, reddit, threads, wechat, "
             "whatsapp, signal)");
}

Result<CanonicalIdentifier> CanonicalAccount(std::string_view platform, std::string_view handle) {
  REFBUS_RETURN_IF_ERROR(CheckSize(IdentifierKind::kAccount, handle));
  REFBUS_ASSIGN_OR_RETURN(std::string name, CanonicalPlatform(platform));
  std::string_view h = Trim(handle);
  if (h.starts_with("@")) h.remove_prefix(1);
  if (h.empty()) return Bad(IdentifierKind::kAccount, "the handle is empty");
  if (h.size() > 64) return Bad(IdentifierKind::kAccount, "the handle is longer than 64 bytes");
  for (char c : h) {
    if (!IsAlpha(c) && !IsDigit(c) && c != '.' && c != '_' && c != '-')
      return Bad(IdentifierKind::kAccount,
                 "the handle has a character other than A-Z, a-z, 0-9, '.', '_', '-'");
  }
  return CanonicalIdentifier{IdentifierKind::kAccount, name + ":" + ToLower(h)};
}

namespace {

// "https://www.instagram.com/name/..." -> CanonicalAccount("instagram", "name"). nullopt if
// s is not written as an address (no scheme, and no known profile host before a '/').
std::optional<Result<CanonicalIdentifier>> AccountFromProfileUrl(std::string_view s) {
  const std::string lower = ToLower(s);
  size_t start = 0;
  if (lower.starts_with("https://")) start = 8;
  if (lower.starts_with("http://")) start = 7;
  const size_t end = lower.find_first_of("/?#", start);
  std::string host =
      lower.substr(start, end == std::string::npos ? std::string::npos : end - start);
  for (std::string_view prefix : {"www.", "m.", "mobile."}) {
    if (host.starts_with(prefix)) host.erase(0, prefix.size());
  }
  const auto* known = std::find_if(std::begin(kProfileHosts), std::end(kProfileHosts),
                                   [&](const ProfileHost& h) { return h.host == host; });
  if (known == std::end(kProfileHosts)) {
    if (start == 0) return std::nullopt;
    return Bad(IdentifierKind::kAccount, "the address is not on a platform with known profiles");
  }
  if (start == 0 && (end == std::string::npos || s[end] != '/')) return std::nullopt;
  std::string_view path = end == std::string::npos ? "" : s.substr(end);
  path = path.substr(0, path.find_first_of("?#"));
  while (path.starts_with("/")) path.remove_prefix(1);
  const std::string_view segment = path.substr(0, path.find('/'));
  const bool at = segment.starts_with("@");
  const std::string name = ToLower(at ? segment.substr(1) : segment);
  const bool page =
      std::find(std::begin(kNotProfiles), std::end(kNotProfiles), name) != std::end(kNotProfiles);
  if (segment.empty() || (known->at_required && !at) || (!at && page))
    return Bad(IdentifierKind::kAccount, "the address is not a profile (a post, page or search)");
  return CanonicalAccount(known->platform, segment);
}

}  // namespace

Result<std::string> CanonicalPhone(std::string_view raw) {
  REFBUS_RETURN_IF_ERROR(CheckSize(IdentifierKind::kPhone, raw));
  const std::string folded = FoldTypographic(raw);
  std::string d = PhoneDigits(Trim(folded));
  if (d.empty() || d == "+")
    return Bad(IdentifierKind::kPhone, "only digits, spaces, '-', '.', '(', ')' and a leading '+'");
  bool international = false;
  if (d.starts_with("+")) {
    d.erase(0, 1);
    international = true;
  } else if (d.starts_with("00")) {
    d.erase(0, 2);  // "0082 10 ...": the international prefix dialled from abroad
    international = true;
  }
  if (international || d.starts_with("82")) {
    if (!d.starts_with("82")) {
      if (!international) return Bad(IdentifierKind::kPhone, "not a phone number");
      if (d.size() < 8 || d.size() > 15)
        return Bad(IdentifierKind::kPhone, "an E.164 number has 8 to 15 digits");
      return "+" + d;  // another country: kept as given (digits only)
    }
    d.erase(0, 2);
    if (d.starts_with("0")) d.erase(0, 1);  // "+82 010 ...": trunk 0 written anyway
  } else if (d.starts_with("0")) {
    d.erase(0, 1);
  } else if (!IsServiceNumber(d)) {
    return Bad(IdentifierKind::kPhone,
               "a Korean number starts with 0 or 82; give other countries with '+'");
  }
  if (!IsKoreanNsn(d) && !IsServiceNumber(d))
    return Bad(IdentifierKind::kPhone, "not a valid Korean number (wrong prefix or length)");
  return "+82" + d;
}

Result<std::string> CanonicalEmail(std::string_view raw) {
  REFBUS_RETURN_IF_ERROR(CheckSize(IdentifierKind::kEmail, raw));
  std::string_view s = Trim(raw);
  if (s.starts_with("mailto:") || s.starts_with("MAILTO:")) s.remove_prefix(7);
  const size_t at = s.rfind('@');
  if (at == std::string_view::npos || s.find('@') != at)
    return Bad(IdentifierKind::kEmail, "needs exactly one '@'");
  std::string local = ToLower(s.substr(0, at));
  if (local.empty() || local.size() > 64)
    return Bad(IdentifierKind::kEmail, "the part before '@' must be 1 to 64 bytes");
  if (!std::all_of(local.begin(), local.end(), IsEmailLocalChar))
    return Bad(IdentifierKind::kEmail,
               "the part before '@' has a character outside RFC 5322 atoms");
  if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string::npos)
    return Bad(IdentifierKind::kEmail, "the part before '@' has a misplaced '.'");
  REFBUS_ASSIGN_OR_RETURN(std::string domain,
                          CanonicalHost(IdentifierKind::kEmail, s.substr(at + 1)));
  if (domain == "googlemail.com") domain = "gmail.com";
  if (domain == "gmail.com") {
    // Gmail ignores dots and everything from '+' on: these are one mailbox (PROTOCOL.md).
    local = local.substr(0, local.find('+'));
    std::erase(local, '.');
    if (local.empty()) return Bad(IdentifierKind::kEmail, "the Gmail user name is empty");
  }
  return local + "@" + domain;
}

Result<std::string> CanonicalUrl(std::string_view raw) {
  REFBUS_RETURN_IF_ERROR(CheckSize(IdentifierKind::kUrl, raw));
  const std::string_view s = Trim(raw);
  if (s.empty()) return Bad(IdentifierKind::kUrl, "empty");
  if (!std::all_of(s.begin(), s.end(), IsAllowedUrlChar))
    return Bad(IdentifierKind::kUrl,
               "a character outside RFC 3986 (spaces and non-ASCII must be percent-encoded; "
               "hosts in their xn-- form)");
  REFBUS_ASSIGN_OR_RETURN(const UrlParts parts, SplitUrl(s));
  if (parts.authority.empty()) return Bad(IdentifierKind::kUrl, "no host");
  REFBUS_ASSIGN_OR_RETURN(const std::string authority,
                          CanonicalAuthority(parts.authority, parts.scheme));
  std::string path;
  if (!NormalizePercent(parts.path.empty() ? "/" : parts.path, path))
    return Bad(IdentifierKind::kUrl, "a '%' is not followed by two hex digits");
  path = RemoveDotSegments(path);
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  REFBUS_ASSIGN_OR_RETURN(const std::string query, CanonicalQuery(parts.query));
  std::string out = "https://" + authority + path;
  if (!query.empty()) out += "?" + query;
  return out;
}

Result<std::string> CanonicalContentSha256(std::string_view raw) {
  REFBUS_RETURN_IF_ERROR(CheckSize(IdentifierKind::kContentSha256, raw));
  std::string s = ToLower(Trim(raw));
  if (s.starts_with("sha256:")) s.erase(0, 7);
  if (s.size() != 64 || !std::all_of(s.begin(), s.end(), IsHexDigit))
    return Bad(IdentifierKind::kContentSha256, "must be 64 hexadecimal digits");
  return s;
}

Result<CanonicalIdentifier> Canonicalize(IdentifierKind kind, std::string_view raw) {
  Result<std::string> value = Bad(kind, "unknown kind");
  switch (kind) {
    case IdentifierKind::kAccount: {
      REFBUS_RETURN_IF_ERROR(CheckSize(kind, raw));
      if (auto from_url = AccountFromProfileUrl(Trim(raw)); from_url.has_value())
        return std::move(*from_url);
      const size_t colon = raw.find(':');
      if (colon == std::string_view::npos)
        return Bad(kind, "write an account as <platform>:<handle>");
      return CanonicalAccount(raw.substr(0, colon), raw.substr(colon + 1));
    }
    case IdentifierKind::kPhone:
      value = CanonicalPhone(raw);
      break;
    case IdentifierKind::kEmail:
      value = CanonicalEmail(raw);
      break;
    case IdentifierKind::kUrl:
      value = CanonicalUrl(raw);
      break;
    case IdentifierKind::kContentSha256:
      value = CanonicalContentSha256(raw);
      break;
  }
  if (!value.ok()) return value.status();
  return CanonicalIdentifier{kind, std::move(value).value()};
}

}  // namespace refbus::linkage
