#include "keys/operator_signature.h"

#include <algorithm>

#include "keys/crypto.h"

namespace refbus::keys {
namespace {

std::string KeyPrint(ByteView public_key) {
  return "key " + Fingerprint(KeyId(KeyUse::kSigning, public_key));
}
std::string Print(ByteView public_key) { return Fingerprint(KeyId(KeyUse::kSigning, public_key)); }

OperatorCheck Verdict(OperatorVerdict v, std::string why, OperatorWhy code,
                      std::vector<std::string> args) {
  return {v, std::move(why), code, std::move(args)};
}

// The verdict of a signature that verifies, by the rosters of its agency.
OperatorCheck ByRoster(std::string_view agency, const schema::OperatorSignature& sig,
                       const std::vector<OperatorRoster>& rosters) {
  const std::string name = sig.operator_ref;
  bool any_roster = false;
  bool name_listed = false;
  for (const auto& r : rosters) {
    if (r.agency != agency) continue;
    any_roster = true;
    for (const auto& o : r.operators) {
      if (o.name != name) continue;
      name_listed = true;
      if (std::ranges::equal(o.public_key, sig.public_key)) {
        return Verdict(OperatorVerdict::kValid,
                       name + " (" + o.role + ", " + KeyPrint(sig.public_key) + ", roster v" +
                           std::to_string(r.version) + ")",
                       OperatorWhy::kRostered,
                       {name, o.role, Print(sig.public_key), std::to_string(r.version)});
      }
    }
  }
  if (!any_roster) {
    return Verdict(OperatorVerdict::kNoRoster,
                   name + ": signature verifies with " + KeyPrint(sig.public_key) +
                       "; no roster of " + std::string(agency) + " to tie it to a person",
                   OperatorWhy::kNoRosterAtHand,
                   {name, Print(sig.public_key), std::string(agency)});
  }
  if (name_listed) {
    return Verdict(OperatorVerdict::kInvalid,
                   "signed with " + KeyPrint(sig.public_key) + ", which no roster of " +
                       std::string(agency) + " lists for " + name + " (KEY MISMATCH)",
                   OperatorWhy::kKeyMismatch, {Print(sig.public_key), std::string(agency), name});
  }
  return Verdict(OperatorVerdict::kNotInRoster,
                 "no roster of " + std::string(agency) + " lists an operator " + name + " (" +
                     KeyPrint(sig.public_key) + ")",
                 OperatorWhy::kNotListed, {std::string(agency), name, Print(sig.public_key)});
}

}  // namespace

std::string_view OperatorLabel(OperatorAction action) {
  switch (action) {
    case OperatorAction::kAccessRecord:
      return kLabelOperatorAccessRecord;
    case OperatorAction::kConsentRevocation:
      return kLabelOperatorConsentRevocation;
    case OperatorAction::kCaseMessage:
      return kLabelOperatorCaseMessage;
  }
  return kLabelOperatorCaseMessage;  // not reached: every action is listed
}

bool IsServiceOperator(std::string_view operator_ref) {
  return operator_ref == "service" || operator_ref.starts_with(kServiceOperatorPrefix);
}

bool VerifyOperatorSignature(OperatorAction action, ByteView record,
                             const schema::OperatorSignature& signature) {
  return VerifySignature(signature.public_key, OperatorLabel(action), record, signature.signature);
}

std::string_view VerdictName(OperatorVerdict verdict) {
  switch (verdict) {
    case OperatorVerdict::kValid:
      return "valid";
    case OperatorVerdict::kServiceAccount:
      return "no signature (service account)";
    case OperatorVerdict::kUnsigned:
      return "UNSIGNED";
    case OperatorVerdict::kNoRoster:
      return "NO ROSTER";
    case OperatorVerdict::kNotInRoster:
      return "NOT IN ROSTER";
    case OperatorVerdict::kInvalid:
      return "INVALID";
  }
  return "INVALID";
}

bool VerdictFails(OperatorVerdict verdict) {
  return verdict == OperatorVerdict::kInvalid || verdict == OperatorVerdict::kNotInRoster;
}

OperatorCheck CheckOperatorSignature(OperatorAction action, std::string_view agency,
                                     std::string_view operator_ref, ByteView record,
                                     const std::optional<schema::OperatorSignature>& signature,
                                     const std::vector<OperatorRoster>& rosters) {
  const std::string name(operator_ref);
  if (!signature) {
    if (IsServiceOperator(operator_ref)) {
      return Verdict(OperatorVerdict::kServiceAccount, name + ": the API token, no person",
                     OperatorWhy::kServiceAccount, {name});
    }
    return Verdict(OperatorVerdict::kUnsigned,
                   (name.empty() ? std::string("no operator") : name) +
                       ": no operator signature (not attributable to a person)",
                   OperatorWhy::kNoSignature, {name});
  }
  if (IsServiceOperator(operator_ref) || IsServiceOperator(signature->operator_ref)) {
    return Verdict(OperatorVerdict::kInvalid,
                   "an operator signature on a service-account record (" + name + ")",
                   OperatorWhy::kSignatureOnService, {name});
  }
  if (signature->operator_ref != operator_ref) {
    return Verdict(OperatorVerdict::kInvalid,
                   "the record names " + name + ", the signature " + signature->operator_ref,
                   OperatorWhy::kNamesDiffer, {name, signature->operator_ref});
  }
  if (!VerifyOperatorSignature(action, record, *signature)) {
    return Verdict(
        OperatorVerdict::kInvalid,
        name + ": the signature does not verify (" + KeyPrint(signature->public_key) + ")",
        OperatorWhy::kDoesNotVerify, {name, Print(signature->public_key)});
  }
  return ByRoster(agency, *signature, rosters);
}

}  // namespace refbus::keys
