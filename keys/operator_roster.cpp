#include "keys/operator_roster.h"

#include <sodium.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "keys/crypto.h"
#include "keys/directory.h"

namespace refbus::keys {
namespace {

using Json = nlohmann::json;

constexpr int kFormat = 1;
constexpr size_t kMaxOperators = 10000;

std::string RosterText(const OperatorRoster& r) {
  Json ops = Json::array();
  for (const auto& o : r.operators) {
    ops.push_back({{"name", o.name},
                   {"role", o.role},
                   {"public_key", HexEncode(o.public_key)},
                   {"active", o.active}});
  }
  return Json{{"agency", r.agency},
              {"version", r.version},
              {"issued_at_ms", r.issued_at_ms},
              {"operators", ops}}
      .dump();
}

Result<RosterOperator> OperatorOf(const Json& j) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || !j.contains("role") ||
      !j["role"].is_string() || !j.contains("public_key") || !j["public_key"].is_string() ||
      !j.contains("active") || !j["active"].is_boolean()) {
    return Malformed("a roster entry lacks name, role, public_key or active");
  }
  RosterOperator o;
  o.name = j["name"].get<std::string>();
  o.role = j["role"].get<std::string>();
  REFBUS_ASSIGN_OR_RETURN(o.public_key, HexDecode(j["public_key"].get<std::string>()));
  if (o.public_key.size() != crypto_sign_PUBLICKEYBYTES) {
    return Malformed("roster entry " + o.name.substr(0, 32) + ": the public key is not 32 bytes");
  }
  o.active = j["active"].get<bool>();
  return o;
}

Result<OperatorRoster> ParseRoster(const std::string& text) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("agency") || !j["agency"].is_string() ||
      !j.contains("version") || !j["version"].is_number_unsigned() || !j.contains("issued_at_ms") ||
      !j["issued_at_ms"].is_number_integer() || !j.contains("operators") ||
      !j["operators"].is_array() || j["operators"].size() > kMaxOperators) {
    return Malformed("the signed roster is not {agency, version, issued_at_ms, operators}");
  }
  OperatorRoster r;
  r.agency = j["agency"].get<std::string>();
  r.version = j["version"].get<uint64_t>();
  r.issued_at_ms = j["issued_at_ms"].get<UnixMillis>();
  for (const auto& e : j["operators"]) {
    REFBUS_ASSIGN_OR_RETURN(RosterOperator o, OperatorOf(e));
    r.operators.push_back(std::move(o));
  }
  return r;
}

}  // namespace

const RosterOperator* OperatorRoster::FindKey(ByteView public_key) const {
  for (const auto& o : operators) {
    if (std::ranges::equal(o.public_key, public_key)) return &o;
  }
  return nullptr;
}

Result<std::string> SignOperatorRoster(const Identity& agency, const OperatorRoster& roster) {
  if (roster.agency != agency.party_id()) {
    return InvalidArgument("the roster names " + roster.agency + ", the key is " +
                           agency.party_id() + "'s");
  }
  std::string text = RosterText(roster);
  Bytes sig = agency.Sign(kLabelOperatorRoster, AsBytes(text));
  return Json{{"format", kFormat},
              {"roster", text},
              {"signer_key_id", HexEncode(agency.signing_key_id())},
              {"signature", HexEncode(sig)}}
             .dump(1) +
         "\n";
}

Result<OperatorRoster> VerifyOperatorRoster(std::string_view file_text,
                                            const schema::Directory& directory, UnixMillis now) {
  Json f = Json::parse(file_text, nullptr, /*allow_exceptions=*/false);
  if (f.is_discarded() || !f.is_object() || f.value("format", 0) != kFormat ||
      !f.contains("roster") || !f["roster"].is_string() || !f.contains("signer_key_id") ||
      !f["signer_key_id"].is_string() || !f.contains("signature") || !f["signature"].is_string()) {
    return Malformed("not a format-1 operator roster file");
  }
  const std::string text = f["roster"].get<std::string>();
  REFBUS_ASSIGN_OR_RETURN(OperatorRoster r, ParseRoster(text));
  REFBUS_ASSIGN_OR_RETURN(Bytes key_id, HexDecode(f["signer_key_id"].get<std::string>()));
  REFBUS_ASSIGN_OR_RETURN(Bytes sig, HexDecode(f["signature"].get<std::string>()));
  auto key = FindSigningKey(directory, r.agency, key_id, r.issued_at_ms, now);
  if (!key.ok()) return key.status().WithContext("operator roster signer");
  if (!VerifySignature((*key)->signing_key, kLabelOperatorRoster, AsBytes(text), sig)) {
    return Unauthenticated("the operator roster is not signed by " + r.agency);
  }
  r.signer_key_id = std::move(key_id);
  return r;
}

}  // namespace refbus::keys
