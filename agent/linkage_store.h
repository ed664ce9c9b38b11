// The agent's linkage store (PROTOCOL.md 13.6): an LMDB environment of its own
// (<data_dir>/linkage), apart from the case store so that the escrow's table and its
// transactions never mix with case data.
//
// At an agency it holds the entries this agency sent (links: case, identifier kind, grant,
// message; never the identifier, its canonical form, the pseudonym or the share) and the
// linkage notices it received (matches), and the evidence of linkage tallies (tallies). At the
// linkage-escrow party it holds the escrow (linkage::Escrow, table "escrow_entries") and the
// deposits: for each held share (tag and depositing agency) the grant and case it came under, so
// that the escrow can answer each matched agency under that agency's own grant, withdraw a revoked
// grant's entries and drop expired ones. One agency's entries on one identifier are one share
// (escrow.h), but may come from several of its cases: the share is withdrawn when the last case's
// deposit goes (revoked or expired), and a match is told to each case that still holds it.
//
// Every value carries the first 16 bytes of SHA-256("refbus/v1/linkage-store" || 0x00 ||
// table || 0x00 || u32be(len(key)) || key || value); a value that fails it is Malformed.
//
// Thread safety: none; the engine's thread only.
#ifndef REFBUS_AGENT_LINKAGE_STORE_H_
#define REFBUS_AGENT_LINKAGE_STORE_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/lmdb.h"
#include "core/status.h"
#include "linkage/escrow.h"
#include "schema/workflow.h"

namespace refbus::agent {

// The environment's tables (PROTOCOL.md 13.6). An agent backup copies the first two only
// (agent/backup.h says why).
inline constexpr char kLinksDb[] = "links";
inline constexpr char kMatchesDb[] = "matches";
// The agency's own signed tallies with their log proofs (PROTOCOL.md 13.7); not in backups yet.
inline constexpr char kTalliesDb[] = "tallies";
inline constexpr char kEscrowDepositsDb[] = "escrow_deposits";
inline constexpr char kEscrowEntriesDb[] = "escrow_entries";  // linkage/escrow.h

// An entry this agency sent to the escrow.
struct LinkRecord {
  std::string link_id;  // hex
  std::string case_ref;
  std::string kind;  // identifier kind name
  std::string grant_id;
  std::string escrow;
  std::string message_id;
  std::string operator_ref;
  UnixMillis added_at_ms = 0;
  UnixMillis expires_ms = 0;
};

// A linkage notice this agency received, one per linkage id and case (a later notice on
// the same pair replaces it: a third agency joined the match).
struct MatchRecord {
  std::string linkage_id;  // hex
  std::string case_ref;
  std::string kind;
  std::string escrow;
  std::string message_id;
  std::vector<schema::LinkedAgency> others;
  UnixMillis matched_at_ms = 0;
  UnixMillis received_at_ms = 0;
};
// A match as the store keeps it and GET /v1/linkage/matches shows it.
nlohmann::json MatchJson(const MatchRecord& m);

// A tally held about a linkage id (PROTOCOL.md 13.7, 13.8), one per linkage id and agency.
struct TallyRecord {
  std::string agency;
  std::string evidence;       // keys::TallyEvidenceJson text, checked before it is put
  UnixMillis made_at_ms = 0;  // the signed tally's made-at-ms (0 in records kept before 13.8)
  std::string tally_sha256;   // hex of SHA-256(signed tally)
  std::string source;         // "own", "file" (link bundle --with) or "bus" (13.8)
  std::string message_id;     // the LINKAGE_TALLY message's, for "bus"
  UnixMillis received_at_ms = 0;
};

// What PutTallyIfNewer did.
enum class TallyPut {
  kStored,  // none was held, or the held one's tally is older
  kSame,    // the held one is the same tally (same hash): kept as it was
  kOlder,   // the held one is a newer (or as new, other) tally: kept, this one not stored
};

// At the escrow: where a held share came from.
struct DepositRecord {
  std::string agency;
  std::string grant_id;  // hex
  std::string case_ref;
  UnixMillis expires_ms = 0;
};

class LinkageStore {
 public:
  // Opens (creating) the environment in dir; threshold: the escrow's.
  static Result<std::unique_ptr<LinkageStore>> Open(const std::string& dir, uint32_t threshold);

  Status PutLink(const LinkRecord& link);
  Result<std::vector<LinkRecord>> Links() const;
  Status PutMatch(const MatchRecord& match);
  Result<std::vector<MatchRecord>> Matches() const;

  // The linkage id (32 lowercase hex) as bytes if this agency holds a notice about it:
  // InvalidArgument for another spelling, FailedPrecondition for an id of no notice.
  Result<Bytes> HeldLinkageId(const std::string& hex) const;

  // Tallies (PROTOCOL.md 13.7): the evidence of one agency's tally about a linkage id
  // (keys::TallyEvidenceJson text, checked before it is put), one per linkage id and
  // agency: a newer one replaces it.
  Status PutTally(const std::string& linkage_id_hex, const TallyRecord& tally);
  // The same, in one write transaction with the comparison: the record replaces the held one
  // of its agency only if its made_at_ms is later (PROTOCOL.md 13.8); *held_made_at_ms is
  // the held one's when it is kept.
  Result<TallyPut> PutTallyIfNewer(const std::string& linkage_id_hex, const TallyRecord& tally,
                                   UnixMillis* held_made_at_ms);
  // The evidence texts held for the linkage id, in agency order.
  Result<std::vector<std::string>> Tallies(const std::string& linkage_id_hex) const;
  // The records held for the linkage id, in agency order.
  Result<std::vector<TallyRecord>> TallyRecords(const std::string& linkage_id_hex) const;

  // The escrow: stores the entry of the authenticated agency (replacing its share on the
  // tag) and where it came from; returns the match once `threshold` agencies' entries open.
  Result<std::optional<linkage::LinkageMatch>> Deposit(const DepositRecord& from,
                                                       const linkage::EscrowEntry& entry,
                                                       UnixMillis now);
  // The deposits of agency's share under tag, one per grant.
  Result<std::vector<DepositRecord>> DepositsOf(ByteView tag, std::string_view agency) const;
  // Removes every deposit made under the grant (consent revoked), and each share no other
  // grant of its agency still holds; returns how many deposits.
  Result<uint64_t> WithdrawGrant(const std::string& grant_hex);
  // The same for deposits whose expiry is at or before now (their grant's retention).
  Result<uint64_t> Expire(UnixMillis now);
  // Shares held in all (operators' counts and tests).
  Result<uint64_t> HeldEntries() const;

 private:
  LinkageStore() = default;
  Result<std::vector<std::pair<Bytes, DepositRecord>>> AllDeposits() const;
  // Deletes the deposits, then withdraws each share left with none.
  Status DropDeposits(const std::vector<std::pair<Bytes, DepositRecord>>& gone);
  std::unique_ptr<lmdb::Env> env_;
  MDB_dbi links_ = 0;
  MDB_dbi matches_ = 0;
  MDB_dbi deposits_ = 0;
  MDB_dbi tallies_ = 0;
  std::optional<linkage::Escrow> escrow_;
};

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_LINKAGE_STORE_H_
