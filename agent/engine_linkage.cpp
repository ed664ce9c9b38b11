// Engine: linkage on the bus (PROTOCOL.md 13.6). An agency adds an identifier to a case:
// it is put in canonical form, turned into a pseudonym by the two evaluators
// (agent/linkage_client.h), and the escrow entry derived from it (linkage/escrow.h) goes
// to the linkage-escrow party as a LINKAGE_ENTRY case message under the case's grant with
// purpose linkage. The escrow agency keeps the entries (agent/linkage_store.h), takes the
// depositing agency from the verified envelope's sender, and at threshold sends each
// matched agency a LINKAGE_NOTICE under that agency's own grant. A revocation of the grant
// reaches the escrow as every revocation reaches a party within the grant, and withdraws
// the entries deposited under it; entries expire with their grant's retention.
//
// Nothing here logs, stores or returns the identifier, its canonical form, the pseudonym,
// the tag or the share: the link records name the case, the kind and the messages only.
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "agent/engine_impl.h"
#include "agent/linkage_client.h"
#include "agent/linkage_store.h"
#include "keys/scope.h"
#include "keys/secret.h"
#include "keys/tally_bundle.h"
#include "linkage/escrow.h"
#include "linkage/identifier.h"
#include "schema/codec.h"

namespace refbus::agent {

using schema::CaseMessage;

namespace {

struct LinkAddRequest {
  linkage::IdentifierKind kind = linkage::IdentifierKind::kPhone;
  std::string value;  // the raw identifier: wiped by the caller
  std::string grant_id;
  UnixMillis first_seen_ms = 0;
  UnixMillis last_seen_ms = 0;
  uint32_t victims = 0;
  uint32_t items = 0;
  std::string operator_ref;
};

Result<std::string> LinkText(const Json& j, const char* field, bool required) {
  if (!j.is_object() || !j.contains(field) || j[field].is_null()) {
    if (required) return InvalidArgument(std::string("'") + field + "' is required");
    return std::string();
  }
  if (!j[field].is_string()) {
    return InvalidArgument(std::string("'") + field + "' must be a string");
  }
  return j[field].get<std::string>();
}

Result<uint64_t> LinkNumber(const Json& j, const char* field, uint64_t max) {
  if (!j.is_object() || !j.contains(field) || j[field].is_null()) return uint64_t{0};
  if (!j[field].is_number_unsigned() || j[field].get<uint64_t>() > max) {
    return InvalidArgument(std::string("'") + field + "' must be a whole number from 0 to " +
                           std::to_string(max));
  }
  return j[field].get<uint64_t>();
}

Result<LinkAddRequest> ParseLinkAdd(const Json& body) {
  LinkAddRequest r;
  REFBUS_ASSIGN_OR_RETURN(r.operator_ref, LinkText(body, "operator", true));
  if (r.operator_ref.empty() || r.operator_ref.size() > schema::kMaxOperatorRefBytes) {
    return InvalidArgument("'operator' must be a staff reference of 1 to 64 characters");
  }
  REFBUS_ASSIGN_OR_RETURN(std::string kind, LinkText(body, "kind", true));
  REFBUS_ASSIGN_OR_RETURN(r.kind, linkage::ParseKind(kind));
  REFBUS_ASSIGN_OR_RETURN(r.value, LinkText(body, "value", true));
  REFBUS_ASSIGN_OR_RETURN(r.grant_id, LinkText(body, "grant_id", false));
  constexpr uint64_t kMaxMs = uint64_t{1} << 53;
  REFBUS_ASSIGN_OR_RETURN(r.first_seen_ms, LinkNumber(body, "first_seen_ms", kMaxMs));
  REFBUS_ASSIGN_OR_RETURN(r.last_seen_ms, LinkNumber(body, "last_seen_ms", kMaxMs));
  REFBUS_ASSIGN_OR_RETURN(uint64_t victims, LinkNumber(body, "victims", 1000000));
  REFBUS_ASSIGN_OR_RETURN(uint64_t items, LinkNumber(body, "items", 100000000));
  r.victims = static_cast<uint32_t>(victims);
  r.items = static_cast<uint32_t>(items);
  if (r.first_seen_ms != 0 && r.last_seen_ms != 0 && r.last_seen_ms < r.first_seen_ms) {
    return InvalidArgument("'last_seen_ms' is before 'first_seen_ms'");
  }
  return r;
}

// The wiping of a std::string's bytes (the raw identifier and its canonical form).
void WipeText(std::string& s) {
  if (!s.empty()) sodium_memzero(s.data(), s.size());
  s.clear();
}

// When an entry under g leaves the escrow: the grant's retention, or its expiry.
UnixMillis EntryExpiry(const schema::ConsentGrant& g) {
  return g.retention_until_ms != 0 ? g.retention_until_ms : g.expires_at_ms;
}

}  // namespace

bool Engine::Impl::IsEscrow() const {
  const schema::Party* self = dir().Find(me());
  return self != nullptr && self->HasRole(schema::Role::kLinkageEscrow);
}

Result<std::string> Engine::Impl::EscrowParty() const {
  if (!options.linkage_escrow.empty()) {
    const schema::Party* p = dir().Find(options.linkage_escrow);
    if (p == nullptr || !p->HasRole(schema::Role::kLinkageEscrow)) {
      return FailedPrecondition("the configured linkage escrow " + options.linkage_escrow +
                                " is not listed with the role linkage-escrow");
    }
    return options.linkage_escrow;
  }
  std::vector<std::string> found;
  for (const schema::Party& p : dir().agencies) {
    if (p.HasRole(schema::Role::kLinkageEscrow) && p.status == schema::PartyStatus::kActive) {
      found.push_back(p.id);
    }
  }
  if (found.size() != 1) {
    return FailedPrecondition(found.empty()
                                  ? "the directory lists no agency with the role linkage-escrow"
                                  : "the directory lists several linkage escrows; set [linkage] "
                                    "escrow in the agent's configuration");
  }
  return found.front();
}

// The grant a case's entry travels under: recorded by this agency (the notice comes back to
// the recorder), in force, with purpose linkage and the escrow among its recipients.
Result<StoredGrant> Engine::Impl::LinkageGrant(const CaseStore::Txn& txn,
                                               const std::string& case_ref,
                                               const std::string& grant_hex,
                                               const std::string& escrow) {
  const keys::ScopeParty party = keys::ScopePartyOf(dir(), escrow);
  auto fits = [&](const StoredGrant& sg) {
    const schema::ConsentGrant& g = sg.grant();
    return g.case_ref == case_ref && g.recorded_by == me() && !sg.known.revoked &&
           Now() <= g.expires_at_ms &&
           std::find(g.purposes.begin(), g.purposes.end(), schema::Purpose::kLinkage) !=
               g.purposes.end() &&
           keys::MayReceive(g, party);
  };
  if (!grant_hex.empty()) {
    REFBUS_ASSIGN_OR_RETURN(StoredGrant sg, RequireGrant(txn, grant_hex));
    if (!fits(sg)) {
      return FailedPrecondition("grant " + grant_hex + " is not a grant for case " + case_ref +
                                " recorded by this agency, in force, with purpose linkage and " +
                                escrow + " among its recipients");
    }
    return sg;
  }
  REFBUS_ASSIGN_OR_RETURN(CaseRecord c, LoadCase(txn, case_ref));
  for (auto it = c.grants.rbegin(); it != c.grants.rend(); ++it) {
    auto sg = RequireGrant(txn, *it);
    if (sg.ok() && fits(*sg)) return std::move(*sg);
  }
  return FailedPrecondition("case " + case_ref +
                            " has no consent grant recorded by this agency, in force, with "
                            "purpose linkage and the escrow " +
                            escrow + " among its recipients; record one first");
}

// ---- the escrow's side ----

Status Engine::Impl::OnLinkageEntry(CaseStore::Txn& txn, const OpenedCase& oc, MessageRecord& msg) {
  const std::string& from = oc.envelope.header.sender_id;  // verified by OpenCase
  if (!IsEscrow() || linkage_store == nullptr) {
    return PermissionDenied("this agency keeps no linkage escrow (no linkage-escrow role)");
  }
  const schema::ConsentGrant& g = oc.grant.grant;
  if (g.recorded_by != from) {
    return PermissionDenied("a linkage entry comes from the agency that recorded its grant (" +
                            g.recorded_by + "), not from " + from);
  }
  REFBUS_RETURN_IF_ERROR(RememberGrant(txn, oc.grant, from));
  const schema::LinkageEntry& e = oc.message.linkage_entry;
  linkage::EscrowEntry entry{e.tag, e.y, e.sealed_record, e.expires_ms};
  // Never kept past the grant's retention, whatever the agency asked.
  entry.expires_ms = std::min(entry.expires_ms, EntryExpiry(g));
  DepositRecord d{from, HexEncode(g.grant_id), e.case_ref, entry.expires_ms};
  REFBUS_ASSIGN_OR_RETURN(auto match, linkage_store->Deposit(d, entry, Now()));
  TimelineEvent ev = Event("linkage-entry-held");
  ev.from = from;
  ev.message_id = msg.message_id;
  REFBUS_RETURN_IF_ERROR(Timeline(txn, e.case_ref, std::move(ev)));
  if (!match.has_value()) return Status::Ok();
  return SendLinkageNotices(txn, e.tag, *match);
}

// One notice per matched agency, under the grant its own entry came with, naming the
// others. An agency whose grant no longer allows it (revoked meanwhile) gets none; the
// others still do.
Status Engine::Impl::SendLinkageNotices(CaseStore::Txn& txn, ByteView tag,
                                        const linkage::LinkageMatch& match) {
  size_t sent = 0;
  for (const linkage::EscrowRecord& rec : match.records) {
    REFBUS_ASSIGN_OR_RETURN(auto deps, linkage_store->DepositsOf(tag, rec.agency_id));
    for (const DepositRecord& dep : deps) {
      REFBUS_ASSIGN_OR_RETURN(bool one, SendLinkageNotice(txn, dep, rec, match));
      sent += one ? 1 : 0;
    }
  }
  spdlog::info("agent {}: escrow match between {} agencies ({} entries unopened); {} notices", me(),
               match.records.size(), match.unopened, sent);
  return Status::Ok();
}

Result<bool> Engine::Impl::SendLinkageNotice(CaseStore::Txn& txn, const DepositRecord& dep,
                                             const linkage::EscrowRecord& rec,
                                             const linkage::LinkageMatch& match) {
  auto grant = RequireGrant(txn, dep.grant_id);
  if (!grant.ok() || grant->known.revoked) return false;
  CaseMessage m;
  m.type = CaseMessage::Type::kLinkageNotice;
  schema::LinkageNotice& n = m.linkage_notice;
  n.case_ref = dep.case_ref;
  n.linkage_id = match.linkage_id;
  n.identifier_kind = std::string(linkage::KindName(rec.kind));
  n.matched_at_ms = Now();
  std::vector<std::string> others;
  for (const linkage::EscrowRecord& o : match.records) {
    if (o.agency_id == rec.agency_id) continue;
    n.others.push_back({o.agency_id, o.first_seen_ms, o.last_seen_ms, o.victims, o.items});
    others.push_back(o.agency_id);
  }
  auto mid = SendCase(txn, grant->known, std::move(m), {rec.agency_id}, schema::Purpose::kLinkage,
                      "linkage-notice");
  if (!mid.ok()) {
    spdlog::warn("agent {}: no linkage notice to {}: {}", me(), rec.agency_id,
                 mid.status().ToString());
    return false;
  }
  TimelineEvent ev = Event("linkage-notice-sent");
  ev.to = rec.agency_id;
  ev.message_id = HexEncode(*mid);
  ev.linked = std::move(others);
  REFBUS_RETURN_IF_ERROR(Timeline(txn, dep.case_ref, std::move(ev)));
  return true;
}

Status Engine::Impl::WithdrawLinkage(CaseStore::Txn& txn, const std::string& grant_hex,
                                     const std::string& case_ref) {
  if (!IsEscrow() || linkage_store == nullptr) return Status::Ok();
  REFBUS_ASSIGN_OR_RETURN(uint64_t n, linkage_store->WithdrawGrant(grant_hex));
  if (n == 0) return Status::Ok();
  spdlog::info("agent {}: grant {} revoked: {} escrow entries withdrawn", me(), grant_hex, n);
  TimelineEvent ev = Event("linkage-entries-withdrawn");
  ev.grant_id = grant_hex;
  ev.items = n;
  return Timeline(txn, case_ref, std::move(ev));
}

Status Engine::Impl::ExpireLinkage() {
  if (!IsEscrow() || linkage_store == nullptr) return Status::Ok();
  REFBUS_ASSIGN_OR_RETURN(uint64_t n, linkage_store->Expire(Now()));
  if (n > 0) spdlog::info("agent {}: {} escrow entries expired", me(), n);
  return Status::Ok();
}

// ---- the matched agency's side ----

Status Engine::Impl::OnLinkageNotice(CaseStore::Txn& txn, const OpenedCase& oc,
                                     MessageRecord& msg) {
  const std::string& from = oc.envelope.header.sender_id;  // a linkage-escrow (scope rule)
  const schema::LinkageNotice& n = oc.message.linkage_notice;
  if (oc.grant.grant.recorded_by != me()) {
    return PermissionDenied("a linkage notice about a case whose grant this agency did not record");
  }
  MatchRecord m{HexEncode(n.linkage_id), n.case_ref, n.identifier_kind, from,
                msg.message_id,          n.others,   n.matched_at_ms,   Now()};
  REFBUS_RETURN_IF_ERROR(linkage_store->PutMatch(m));
  TimelineEvent ev = Event("linkage-notice");
  ev.from = from;
  ev.message_id = msg.message_id;
  ev.linkage_id = m.linkage_id;
  ev.identifier_kind = n.identifier_kind;
  std::vector<std::string> others;
  for (const auto& o : n.others) others.push_back(o.agency_id);
  ev.linked = std::move(others);
  return Timeline(txn, n.case_ref, std::move(ev));
}

// ---- commands ----

Result<Json> Engine::AddLink(const std::string& case_ref_or_local, const Json& body) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(LinkAddRequest req, ParseLinkAdd(body));
  if (d.options.linkage.first.id.empty() || d.options.linkage.second.id.empty()) {
    WipeText(req.value);
    return FailedPrecondition(
        "this agent has no linkage evaluators: set [linkage] first_evaluator and "
        "second_evaluator in its configuration");
  }
  auto canonical = linkage::Canonicalize(req.kind, req.value);
  WipeText(req.value);
  if (!canonical.ok()) return canonical.status();  // names the kind and rule, not the input
  REFBUS_ASSIGN_OR_RETURN(std::string escrow, d.EscrowParty());
  std::string case_ref;
  UnixMillis expires_ms = 0;
  {
    REFBUS_ASSIGN_OR_RETURN(auto rtxn, d.case_store->Begin(false));
    REFBUS_ASSIGN_OR_RETURN(case_ref, d.ResolveCase(rtxn, case_ref_or_local));
    REFBUS_ASSIGN_OR_RETURN(StoredGrant g, d.LinkageGrant(rtxn, case_ref, req.grant_id, escrow));
    req.grant_id = g.key;
    expires_ms = EntryExpiry(g.grant());
  }
  // The two evaluations happen outside any store transaction: they wait on the network.
  auto pseudonym = RequestPseudonym(d.identity, d.dir(), d.options.linkage, *canonical);
  WipeText(canonical->value);
  if (!pseudonym.ok()) return pseudonym.status();
  const UnixMillis now = Impl::Now();
  linkage::EscrowRecord record{d.me(),
                               case_ref,
                               req.kind,
                               req.first_seen_ms != 0 ? req.first_seen_ms : now,
                               req.last_seen_ms != 0 ? req.last_seen_ms : now,
                               req.victims,
                               req.items};
  auto entry = linkage::MakeEscrowEntry(*pseudonym, record, d.options.escrow_threshold, expires_ms);
  sodium_memzero(pseudonym->data(), pseudonym->size());
  if (!entry.ok()) return entry.status();
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(StoredGrant grant, d.LinkageGrant(txn, case_ref, req.grant_id, escrow));
  CaseMessage m;
  m.type = CaseMessage::Type::kLinkageEntry;
  m.linkage_entry = {case_ref,
                     keys::RandomBytes(schema::kWorkflowIdBytes),
                     entry->tag,
                     entry->y,
                     entry->sealed_record,
                     entry->expires_ms,
                     schema::EncodeSignedConsentGrant(grant.known.grant),
                     req.operator_ref,
                     now};
  LinkRecord link{HexEncode(m.linkage_entry.link_id),
                  case_ref,
                  std::string(linkage::KindName(req.kind)),
                  grant.key,
                  escrow,
                  "",
                  req.operator_ref,
                  now,
                  entry->expires_ms};
  REFBUS_ASSIGN_OR_RETURN(Bytes mid, d.SendCase(txn, grant.known, std::move(m), {escrow},
                                                schema::Purpose::kLinkage, "linkage-entry"));
  link.message_id = HexEncode(mid);
  REFBUS_RETURN_IF_ERROR(d.RecordShare(txn, grant, escrow));
  TimelineEvent ev = Event("linkage-entry-sent");
  ev.to = escrow;
  ev.message_id = link.message_id;
  ev.identifier_kind = link.kind;
  ev.operator_ref = req.operator_ref;
  REFBUS_RETURN_IF_ERROR(d.Timeline(txn, case_ref, std::move(ev)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  // After the commit: a link is listed only for an entry that is on its way.
  REFBUS_RETURN_IF_ERROR(d.linkage_store->PutLink(link));
  return Json{
      {"link_id", link.link_id}, {"case_ref", case_ref},          {"kind", link.kind},
      {"escrow", escrow},        {"message_id", link.message_id}, {"expires_ms", link.expires_ms}};
}

Result<Json> Engine::Links(const std::string& case_filter) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(auto links, d.linkage_store->Links());
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(false));
  std::string case_ref;
  if (!case_filter.empty()) {
    REFBUS_ASSIGN_OR_RETURN(case_ref, d.ResolveCase(txn, case_filter));
  }
  Json out = Json::array();
  for (const LinkRecord& l : links) {
    if (!case_ref.empty() && l.case_ref != case_ref) continue;
    auto g = d.RequireGrant(txn, l.grant_id);
    const bool withdrawn = g.ok() && g->known.revoked;
    out.push_back({{"link_id", l.link_id},
                   {"case_ref", l.case_ref},
                   {"kind", l.kind},
                   {"grant_id", l.grant_id},
                   {"escrow", l.escrow},
                   {"message_id", l.message_id},
                   {"operator", l.operator_ref},
                   {"added_at_ms", l.added_at_ms},
                   {"expires_ms", l.expires_ms},
                   {"withdrawn", withdrawn}});
  }
  return out;
}

Result<Json> Engine::LinkageMatches() {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(auto matches, d.linkage_store->Matches());
  Json out = Json::array();
  for (const MatchRecord& m : matches) out.push_back(MatchJson(m));
  return out;
}

// ---- tallies (PROTOCOL.md 13.7) ----

namespace {

Result<keys::LinkageTally> ParseTallyRequest(const Json& body, const std::string& me,
                                             Bytes linkage_id, UnixMillis now) {
  keys::LinkageTally t;
  t.agency = me;
  t.linkage_id = std::move(linkage_id);
  REFBUS_ASSIGN_OR_RETURN(t.victims, LinkNumber(body, "victims", keys::kMaxTallyVictims));
  REFBUS_ASSIGN_OR_RETURN(t.deletion_items,
                          LinkNumber(body, "deletion_items", keys::kMaxTallyDeletionItems));
  REFBUS_ASSIGN_OR_RETURN(t.from_date, LinkText(body, "from", true));
  REFBUS_ASSIGN_OR_RETURN(t.to_date, LinkText(body, "to", true));
  if (!keys::IsTallyDate(t.from_date) || !keys::IsTallyDate(t.to_date)) {
    return InvalidArgument("'from' and 'to' must be dates written YYYY-MM-DD");
  }
  if (t.to_date < t.from_date) return InvalidArgument("'to' is before 'from'");
  t.made_at_ms = now;
  return t;
}

}  // namespace

Result<Json> Engine::RecordTally(const std::string& linkage_id, const Json& body) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(Bytes id, d.linkage_store->HeldLinkageId(linkage_id));
  const UnixMillis now = Impl::Now();
  REFBUS_ASSIGN_OR_RETURN(keys::LinkageTally t, ParseTallyRequest(body, d.me(), id, now));
  REFBUS_ASSIGN_OR_RETURN(std::string signed_tally, keys::SignLinkageTally(d.identity, t));
  const schema::Party* self = d.dir().Find(d.me());
  if (self == nullptr || self->home_broker.empty()) {
    return FailedPrecondition("this agency has no home broker in the directory");
  }
  TallyBroker broker{self->home_broker, d.options.broker_endpoint, d.options.linkage.timeout_ms};
  // The round trip waits on the network: no store transaction is open.
  REFBUS_ASSIGN_OR_RETURN(keys::TallyEvidence ev,
                          RecordLinkageTally(d.identity, d.dir(), broker, signed_tally, {}, now));
  const std::string evidence = keys::TallyEvidenceJson(ev);
  REFBUS_RETURN_IF_ERROR(
      d.linkage_store->PutTally(linkage_id, HeldTally(ev, t.made_at_ms, "own", "", now)));
  spdlog::info("linkage tally about {} recorded at {} (entry {})", linkage_id, ev.broker_id,
               ev.index);
  return Json{{"linkage_id", linkage_id},           {"agency", d.me()},    {"victims", t.victims},
              {"deletion_items", t.deletion_items}, {"from", t.from_date}, {"to", t.to_date},
              {"broker_id", ev.broker_id},          {"index", ev.index},   {"evidence", evidence}};
}

Result<Json> Engine::LinkageBundle(const std::string& linkage_id, const Json& body) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(Bytes id, d.linkage_store->HeldLinkageId(linkage_id));
  const UnixMillis now = Impl::Now();
  const Json with = body.is_object() ? body.value("with", Json::array()) : Json::array();
  if (!with.is_array() || with.size() > keys::kMaxBundleTallies) {
    return InvalidArgument("'with' must be a list of at most 64 tally evidence texts");
  }
  for (const Json& text : with) {
    if (!text.is_string()) return InvalidArgument("'with' holds tally evidence texts");
    REFBUS_ASSIGN_OR_RETURN(keys::TallyEvidence ev,
                            keys::ParseTallyEvidence(text.get<std::string>()));
    REFBUS_RETURN_IF_ERROR(d.KeepTallyEvidence(linkage_id, id, ev, "file", ""));
  }
  REFBUS_ASSIGN_OR_RETURN(auto texts, d.linkage_store->Tallies(linkage_id));
  std::vector<keys::TallyEvidence> tallies;
  Json agencies = Json::array();
  for (const std::string& text : texts) {
    REFBUS_ASSIGN_OR_RETURN(keys::TallyEvidence ev, keys::ParseTallyEvidence(text));
    if (ev.agency == d.me()) {
      // A fresh proof, against a checkpoint that may carry cosignatures by now.
      const schema::Party* self = d.dir().Find(d.me());
      TallyBroker broker{
          ev.broker_id,
          self != nullptr && self->home_broker == ev.broker_id ? d.options.broker_endpoint : "",
          d.options.linkage.timeout_ms};
      auto fresh = RecordLinkageTally(d.identity, d.dir(), broker, ev.signed_tally, ev.index, now);
      if (fresh.ok()) {
        ev = std::move(*fresh);
      } else {
        spdlog::warn("linkage bundle {}: keeping the first proof of this agency's tally ({})",
                     linkage_id, fresh.status().message());
      }
    }
    agencies.push_back(ev.agency);
    tallies.push_back(std::move(ev));
  }
  // The lead's own tally first, then the others in the order of their ids.
  std::stable_partition(tallies.begin(), tallies.end(),
                        [&](const keys::TallyEvidence& t) { return t.agency == d.me(); });
  if (tallies.empty()) return FailedPrecondition("no tally about linkage " + linkage_id + " yet");
  return Json{{"linkage_id", linkage_id},
              {"agencies", agencies},
              {"bundle", keys::MakeTallyBundle(id, tallies)}};
}

}  // namespace refbus::agent
