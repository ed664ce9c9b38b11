// Linkage identifiers and their canonical forms (PROTOCOL.md section 13.1).
//
// An identifier names something two centers may both have seen: a perpetrator's account
// on a platform, a phone number, an email address, a URL, or the SHA-256 of a piece of
// content. Canonicalize() maps every way a person is likely to type one of them to one
// byte string per kind, so that the pseudonym (oprf.h, two_party.h) of "+82 10-1234-5678"
// at one center equals the pseudonym of "01012345678" at another. The rules per kind are
// written in PROTOCOL.md; each rule is there because one of its variants occurs in real
// entries, and no rule merges two values that can name different things (the email rule
// for gmail.com is the one provider-specific rule, and says why).
//
// Identifiers point at victims and suspects: no error message here contains any part of
// the input, only the kind and what rule it broke. Callers must not log the input either.
//
// Thread safety: free functions over immutable tables; thread-safe.
#ifndef REFBUS_LINKAGE_IDENTIFIER_H_
#define REFBUS_LINKAGE_IDENTIFIER_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "core/bytes.h"
#include "core/status.h"

namespace refbus::linkage {

// The wire values are fixed (they are part of OprfInput()).
enum class IdentifierKind : uint8_t {
  kAccount = 1,        // platform + handle: "instagram:some.handle"
  kPhone = 2,          // E.164: "+821012345678"
  kEmail = 3,          // "name@example.com"
  kUrl = 4,            // "https://example.com/path?a=1"
  kContentSha256 = 5,  // 64 lower-case hex digits
};

// "account", "phone", "email", "url", "content-sha256".
std::string_view KindName(IdentifierKind kind);
// The inverse of KindName; InvalidArgument for any other text.
Result<IdentifierKind> ParseKind(std::string_view name);

// Longest raw input accepted for any kind, in bytes (a URL is the longest).
inline constexpr size_t kMaxIdentifierBytes = 2048;

struct CanonicalIdentifier {
  IdentifierKind kind;
  std::string value;  // the canonical text, e.g. "+821012345678"; sensitive: never log it

  // The OPRF input: "refbus/v1/linkage-id" || 0x00 || KindName || 0x00 || value. The kind
  // is inside, so "x:abc" as an account and some other kind's "x:abc" never collide.
  Bytes OprfInput() const;
};

// Canonical form of raw text of the given kind. For kAccount the text is
// "<platform>:<handle>" (CanonicalAccount takes them apart). InvalidArgument, naming the
// kind and the rule, for anything that is not a valid identifier of that kind.
Result<CanonicalIdentifier> Canonicalize(IdentifierKind kind, std::string_view raw);

// An account: the platform's name or alias (a known list, PROTOCOL.md) and the handle.
Result<CanonicalIdentifier> CanonicalAccount(std::string_view platform, std::string_view handle);

// The per-kind rules, exposed for the tests and for callers that know the kind.
Result<std::string> CanonicalPhone(std::string_view raw);
Result<std::string> CanonicalEmail(std::string_view raw);
Result<std::string> CanonicalUrl(std::string_view raw);
Result<std::string> CanonicalContentSha256(std::string_view raw);
// The canonical platform name for a name or alias ("Twitter", "x.com" -> "x").
Result<std::string> CanonicalPlatform(std::string_view raw);

}  // namespace refbus::linkage

#endif  // REFBUS_LINKAGE_IDENTIFIER_H_
