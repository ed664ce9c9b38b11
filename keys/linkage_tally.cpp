#include "keys/linkage_tally.h"

#include <sodium.h>

#include <array>
#include <charconv>
#include <vector>

#include "keys/crypto.h"
#include "keys/directory.h"
#include "keys/secret.h"

namespace refbus::keys {
namespace {

constexpr std::string_view kTallyHeader = "refbus linkage tally v1";
constexpr std::string_view kSignatureKey = "signature";
constexpr size_t kMaxTallyAgencyBytes = 128;

bool TallyAgencyOk(std::string_view id) {
  if (id.empty() || id.size() > kMaxTallyAgencyBytes) return false;
  for (char ch : id) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

// Digits only, no sign, no leading zero (except "0").
bool ParseTallyNumber(std::string_view s, uint64_t* out) {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// Splits text into lines "key value\n"; false unless every line has both and ends in '\n'.
bool TallyLines(std::string_view text,
                std::vector<std::pair<std::string_view, std::string_view>>* out) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) return false;
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return false;
    out->emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }
  return true;
}

}  // namespace

bool IsTallyDate(std::string_view date) {
  if (date.size() != 10 || date[4] != '-' || date[7] != '-') return false;
  uint64_t y = 0, m = 0, d = 0;
  auto digits = [](std::string_view s, uint64_t* v) {
    for (char c : s) {
      if (c < '0' || c > '9') return false;
    }
    return std::from_chars(s.data(), s.data() + s.size(), *v).ec == std::errc();
  };
  if (!digits(date.substr(0, 4), &y) || !digits(date.substr(5, 2), &m) ||
      !digits(date.substr(8, 2), &d)) {
    return false;
  }
  if (y < 1970 || m < 1 || m > 12 || d < 1) return false;
  static constexpr std::array<uint64_t, 12> kDays = {31, 28, 31, 30, 31, 30,
                                                     31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return d <= kDays[m - 1] + (m == 2 && leap ? 1 : 0);
}

Result<std::string> TallyStatement(const LinkageTally& t) {
  if (!TallyAgencyOk(t.agency)) {
    return InvalidArgument("tally: the agency id is empty, over 128 bytes or has white space");
  }
  if (t.linkage_id.size() != kTallyLinkageIdBytes) {
    return InvalidArgument("tally: the linkage id is not 16 bytes");
  }
  if (t.victims > kMaxTallyVictims) return InvalidArgument("tally: victims over 1,000,000");
  if (t.deletion_items > kMaxTallyDeletionItems) {
    return InvalidArgument("tally: deletion items over 1,000,000,000");
  }
  if (!IsTallyDate(t.from_date) || !IsTallyDate(t.to_date)) {
    return InvalidArgument("tally: the dates are not YYYY-MM-DD (1970 to 9999)");
  }
  if (t.to_date < t.from_date) return InvalidArgument("tally: the range ends before it starts");
  if (t.made_at_ms <= 0) return InvalidArgument("tally: no time made");
  if (t.nonce.size() != kTallyNonceBytes)
    return InvalidArgument("tally: the nonce is not 16 bytes");
  std::string s(kTallyHeader);
  s += "\nagency " + t.agency;
  s += "\nlinkage-id " + HexEncode(t.linkage_id);
  s += "\nvictims " + std::to_string(t.victims);
  s += "\ndeletion-items " + std::to_string(t.deletion_items);
  s += "\nfrom " + t.from_date;
  s += "\nto " + t.to_date;
  s += "\nmade-at-ms " + std::to_string(t.made_at_ms);
  s += "\nnonce " + HexEncode(t.nonce) + "\n";
  return s;
}

Result<LinkageTally> ParseTallyStatement(std::string_view text) {
  static const std::array<std::string_view, 9> kKeys = {"refbus",  "agency",         "linkage-id",
                                                        "victims", "deletion-items", "from",
                                                        "to",      "made-at-ms",     "nonce"};
  std::vector<std::pair<std::string_view, std::string_view>> lines;
  if (!TallyLines(text, &lines) || lines.size() != kKeys.size()) {
    return Malformed("tally: not the nine lines of a tally statement");
  }
  for (size_t i = 0; i < kKeys.size(); ++i) {
    if (lines[i].first != kKeys[i]) {
      return Malformed("tally: line " + std::to_string(i + 1) + " is not '" +
                       std::string(kKeys[i]) + "'");
    }
  }
  LinkageTally t;
  t.agency = std::string(lines[1].second);
  auto id = HexDecode(lines[2].second);
  auto nonce = HexDecode(lines[8].second);
  uint64_t made = 0;
  if (!id.ok() || !nonce.ok() || !ParseTallyNumber(lines[3].second, &t.victims) ||
      !ParseTallyNumber(lines[4].second, &t.deletion_items) ||
      !ParseTallyNumber(lines[7].second, &made) || made > uint64_t{INT64_MAX}) {
    return Malformed("tally: a number or hex field does not parse");
  }
  t.linkage_id = std::move(*id);
  t.nonce = std::move(*nonce);
  t.from_date = std::string(lines[5].second);
  t.to_date = std::string(lines[6].second);
  t.made_at_ms = static_cast<UnixMillis>(made);
  auto again = TallyStatement(t);
  if (!again.ok()) return Malformed(again.status().message());
  if (*again != text) return Malformed("tally: not in its canonical form");
  return t;
}

Result<std::string> SignLinkageTally(const Identity& agency, LinkageTally tally) {
  if (tally.agency != agency.party_id()) {
    return InvalidArgument("the tally names " + tally.agency + ", the key is " + agency.party_id() +
                           "'s");
  }
  if (tally.nonce.empty()) tally.nonce = RandomBytes(kTallyNonceBytes);
  REFBUS_ASSIGN_OR_RETURN(std::string text, TallyStatement(tally));
  Bytes sig = agency.Sign(kLabelLinkageTally, AsBytes(text));
  return text + std::string(kSignatureKey) + " " + HexEncode(agency.signing_key_id()) + " " +
         HexEncode(sig) + "\n";
}

Result<LinkageTally> VerifyLinkageTally(std::string_view signed_tally,
                                        const schema::Directory& directory, UnixMillis now) {
  if (signed_tally.size() > schema::kMaxSignedTallyBytes || signed_tally.empty() ||
      signed_tally.back() != '\n') {
    return Malformed("tally: empty, over 4 KiB or not ending in a new line");
  }
  const size_t last = signed_tally.rfind('\n', signed_tally.size() - 2);
  if (last == std::string_view::npos) return Malformed("tally: no signature line");
  const std::string_view text = signed_tally.substr(0, last + 1);
  const std::string_view line = signed_tally.substr(last + 1);
  // "signature " + 32 hex + " " + 128 hex + "\n"
  const size_t want = kSignatureKey.size() + 1 + 32 + 1 + 2 * crypto_sign_BYTES + 1;
  if (line.size() != want || line.substr(0, kSignatureKey.size() + 1) != "signature " ||
      line[kSignatureKey.size() + 33] != ' ') {
    return Malformed("tally: the last line is not 'signature <key id> <signature>'");
  }
  auto key_id = HexDecode(line.substr(kSignatureKey.size() + 1, 32));
  auto sig = HexDecode(line.substr(kSignatureKey.size() + 34, 2 * crypto_sign_BYTES));
  if (!key_id.ok() || !sig.ok() ||
      HexEncode(*key_id) != line.substr(kSignatureKey.size() + 1, 32) ||
      HexEncode(*sig) != line.substr(kSignatureKey.size() + 34, 2 * crypto_sign_BYTES)) {
    return Malformed("tally: the signature line is not lowercase hex");
  }
  REFBUS_ASSIGN_OR_RETURN(LinkageTally t, ParseTallyStatement(text));
  auto key = FindSigningKey(directory, t.agency, *key_id, t.made_at_ms, now);
  if (!key.ok()) return key.status().WithContext("tally signer");
  if (!VerifySignature((*key)->signing_key, kLabelLinkageTally, AsBytes(text), *sig)) {
    return Unauthenticated("the tally is not signed by " + t.agency);
  }
  t.signer_key_id = std::move(*key_id);
  return t;
}

}  // namespace refbus::keys
