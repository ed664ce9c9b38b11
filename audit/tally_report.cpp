// What refbus-audit check-bundle prints (audit/tally_report.h).
#include "audit/tally_report.h"

#include <string>
#include <vector>

#include "core/bytes.h"

namespace refbus::audit {
namespace {

std::string TallyCosignerList(const std::vector<std::string>& ids) {
  std::string out;
  for (const auto& id : ids) out += (out.empty() ? "" : ", ") + id;
  return out.empty() ? "no witness" : out;
}

}  // namespace

void PrintTallyBundle(std::ostream& out, const keys::CheckedTallyBundle& b) {
  size_t n = 0;
  for (const keys::CheckedTally& t : b.tallies) {
    ++n;
    if (!t.ok()) {
      out << "  FAILED tally " << n << " (" << t.agency << "): " << t.problem << "\n";
      continue;
    }
    out << "  tally " << n << " (" << t.agency << "): " << t.tally->victims << " victims, "
        << t.tally->deletion_items << " deletion items, " << t.tally->from_date << " to "
        << t.tally->to_date << "; entry " << t.index << " of " << t.broker_id
        << "'s log, checkpoint size " << t.tree_size << ", cosigned by "
        << TallyCosignerList(t.cosigners) << "\n";
  }
  out << "  total:  " << b.victims << " victims, " << b.deletion_items << " deletion items, "
      << (b.from_date.empty() ? "-" : b.from_date) << " to "
      << (b.to_date.empty() ? "-" : b.to_date) << ", over " << b.tallies.size() - b.failed
      << " agencies whose tallies verify\n";
}

nlohmann::json TallyBundleJson(const keys::CheckedTallyBundle& b) {
  nlohmann::json list = nlohmann::json::array();
  for (const keys::CheckedTally& t : b.tallies) {
    nlohmann::json j = {
        {"agency", t.agency}, {"broker_id", t.broker_id}, {"index", t.index}, {"ok", t.ok()}};
    if (t.ok()) {
      j["victims"] = t.tally->victims;
      j["deletion_items"] = t.tally->deletion_items;
      j["from"] = t.tally->from_date;
      j["to"] = t.tally->to_date;
      j["tree_size"] = t.tree_size;
      j["cosigners"] = t.cosigners;
    } else {
      j["problem"] = t.problem;
    }
    list.push_back(std::move(j));
  }
  return {{"ok", b.failed == 0},
          {"linkage_id", HexEncode(b.linkage_id)},
          {"tallies", list},
          {"failed", b.failed},
          {"total",
           {{"victims", b.victims},
            {"deletion_items", b.deletion_items},
            {"from", b.from_date},
            {"to", b.to_date}}}};
}

}  // namespace refbus::audit
