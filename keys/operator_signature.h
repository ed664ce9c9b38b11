// Operators' own signatures over the records their agency makes and sends (issue 18 item
// 1; PROTOCOL.md 9.2 "Operator signatures").
//
// A logged-in operator (agent/operators.h) signs every action the agency records or sends
// with their Ed25519 key: Ed25519 over label || 0x00 || the exact bytes of the record
// (keys/crypto.h), the label naming the record type, so a signature over one type can
// never pass for another, nor for an agency's signature (whose labels differ). The
// signature travels as schema::OperatorSignature{operator_ref, public_key, signature}.
// Records made with the API token name "service:NAME" and carry no operator signature.
// Consent grants are the exception: the recording operator countersigns the grant bytes
// as an override's operators do (kLabelConsentCountersign, "NAME (recorded)"), so the
// broker's entry and refbus-audit overrides read them one way.
//
// Who checks what: the broker and recipients check that a signature verifies with the key
// it carries (they do not hold the sender's roster); the auditor ties the key to a person
// with the agency's signed roster (keys/operator_roster.h): CheckOperatorSignature.
//
// Thread safety: free functions over values, thread-safe.
#ifndef REFBUS_KEYS_OPERATOR_SIGNATURE_H_
#define REFBUS_KEYS_OPERATOR_SIGNATURE_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "keys/operator_roster.h"
#include "schema/workflow.h"

namespace refbus::keys {

// The record types an operator signs, each with its own label.
enum class OperatorAction {
  kAccessRecord,       // serialized AccessRecord (an open, a read of kept text)
  kConsentRevocation,  // serialized ConsentRevocation
  kCaseMessage,        // serialized CaseMessage without its operator signature
};

inline constexpr std::string_view kLabelOperatorAccessRecord = "refbus/v1/operator/access-record";
inline constexpr std::string_view kLabelOperatorConsentRevocation =
    "refbus/v1/operator/consent-revocation";
inline constexpr std::string_view kLabelOperatorCaseMessage = "refbus/v1/operator/case-message";

std::string_view OperatorLabel(OperatorAction action);

// The service account's operator refs: "service" and "service:NAME".
inline constexpr std::string_view kServiceOperatorPrefix = "service:";
bool IsServiceOperator(std::string_view operator_ref);

// True if signature verifies over record with the key it carries.
[[nodiscard]] bool VerifyOperatorSignature(OperatorAction action, ByteView record,
                                           const schema::OperatorSignature& signature);

// What an auditor can say about the operator of one record.
enum class OperatorVerdict {
  kValid,           // the signature verifies with the rostered key of that name
  kServiceAccount,  // "service:NAME", no signature: the API token, no person
  kUnsigned,        // a person's name and no signature (records made before signatures)
  kNoRoster,        // the signature verifies, but no roster of the agency is at hand
  kNotInRoster,     // the signature verifies, but the agency's rosters do not list the name
  kInvalid,         // does not verify, is not the rostered key of the name, or names another
};

std::string_view VerdictName(OperatorVerdict verdict);  // "valid", "INVALID", ...
// True for the verdicts an audit fails on (INVALID, NOT IN ROSTER).
bool VerdictFails(OperatorVerdict verdict);

// Which sentence why is, so that a report can say it in another language: its values
// (names, roles, key prints, versions, agencies) are in why_args, in the order given here.
enum class OperatorWhy {
  kNone,                // why_args empty
  kRostered,            // name, role, key print, roster version
  kServiceAccount,      // name
  kNoSignature,         // name ("" for no operator)
  kSignatureOnService,  // name
  kNamesDiffer,         // the record's name, the signature's name
  kDoesNotVerify,       // name, key print
  kNoRosterAtHand,      // name, key print, agency
  kKeyMismatch,         // key print, agency, name
  kNotListed,           // agency, name, key print
  kRecordUnreadable,    // (none)
  kNotThisEntry,        // (none)
};

struct OperatorCheck {
  OperatorVerdict verdict = OperatorVerdict::kUnsigned;
  std::string why;  // one line for the auditor: names, roles and key fingerprints only
  OperatorWhy why_code = OperatorWhy::kNone;
  std::vector<std::string> why_args;
};

// Checks the operator of a record made by agency: operator_ref as the record states it,
// record the exact bytes signed, signature the one it carries (if any), rosters every
// verified roster the auditor holds (any agency's; each of agency's is tried, so a key
// replaced after a password reset is still found in an older roster).
OperatorCheck CheckOperatorSignature(OperatorAction action, std::string_view agency,
                                     std::string_view operator_ref, ByteView record,
                                     const std::optional<schema::OperatorSignature>& signature,
                                     const std::vector<OperatorRoster>& rosters);

}  // namespace refbus::keys

#endif  // REFBUS_KEYS_OPERATOR_SIGNATURE_H_
