// The JSON form of the case store's records (agent/records.h), for the API edge: the
// local API returns some records as they are stored (referrals, deletions, the inbox,
// cases), so engine_requests.cpp builds those bodies with the store's own codec.
//
// Thread safety: free functions.
#ifndef REFBUS_AGENT_RECORDS_JSON_H_
#define REFBUS_AGENT_RECORDS_JSON_H_

#include <nlohmann/json.hpp>

#include "agent/records.h"

namespace refbus::agent {

// How the API shows a free-text field: SealedMark by default (no text without a recorded
// access); the recorded read passes a reader that opens it.
using TextReader = std::function<nlohmann::json(const CaseText& text, const std::string& place)>;
nlohmann::json SealedMark(const CaseText& text, const std::string& place);

nlohmann::json ToJson(const ReferralRecord& r, const TextReader& read = SealedMark);
nlohmann::json ToJson(const DeletionRecord& r);
nlohmann::json ToJson(const MessageRecord& r);
nlohmann::json ToJson(const CaseRecord& r, const TextReader& read = SealedMark);
nlohmann::json ToJson(const HandoffRecord& r, const TextReader& read = SealedMark);
nlohmann::json ToJson(const schema::DeletionCounts& c);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_RECORDS_JSON_H_
