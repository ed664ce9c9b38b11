// Engine: chunked deletion requests (PROTOCOL.md 10.1). The requester cuts a request into
// chunks that each fit a case message, keeps every chunk sealed under the grant's data key
// and sends them with one manifest; the deletion center checks each chunk against the
// manifest, keeps it sealed the same way, and reports the list complete once it holds
// every chunk and the whole list's count and hash match. Chunks still missing after
// options.deletion_chunk_timeout_ms are asked for again in a status report
// (missing_chunks), and the requester sends them again from what it kept.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <utility>

#include "agent/engine_impl.h"
#include "agent/engine_requests.h"
#include "schema/codec.h"
#include "schema/deletion_list.h"

namespace refbus::agent {
namespace {

using schema::CaseMessage;
using schema::DeletionItem;
using schema::Purpose;

std::string ChunkPlace(const std::string& qid, uint32_t index) {
  return TextPlace("deletion-chunks", DeletionChunkKey(qid, index), "items");
}

Json ItemsJson(std::span<const DeletionItem> items) {
  Json a = Json::array();
  for (const auto& i : items) {
    a.push_back({i.item_id, i.url, HexEncode(i.content_sha256), i.platform, i.note});
  }
  return a;
}

Result<std::vector<DeletionItem>> ItemsFrom(const std::string& text) {
  auto j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_array()) return Malformed("a stored deletion chunk is not JSON");
  std::vector<DeletionItem> out;
  out.reserve(j.size());
  try {
    for (const auto& e : j) {
      auto sha = HexDecode(e.at(2).get<std::string>());
      if (!sha.ok()) return Malformed("a stored deletion chunk has a bad hash");
      out.push_back({e.at(0).get<std::string>(), e.at(1).get<std::string>(), std::move(*sha),
                     e.at(3).get<std::string>(), e.at(4).get<std::string>()});
    }
  } catch (const std::exception&) {
    return Malformed("a stored deletion chunk does not read");
  }
  return out;
}

std::vector<uint32_t> MissingChunks(const DeletionRecord& r) {
  std::vector<uint32_t> missing;
  const auto& held = r.chunks_held.value_or(std::vector<uint32_t>());
  for (uint32_t i = 0; r.manifest && i < r.manifest->chunk_count; ++i) {
    if (!std::binary_search(held.begin(), held.end(), i)) missing.push_back(i);
  }
  return missing;
}

}  // namespace

Status Engine::Impl::StoreDeletionChunk(CaseStore::Txn& txn, const std::string& grant_hex,
                                        const std::string& qid, uint32_t index,
                                        std::span<const DeletionItem> items,
                                        const std::string& message_id) {
  DeletionChunkRecord c;
  c.index = index;
  c.item_count = static_cast<uint32_t>(items.size());
  c.message_id = message_id;
  REFBUS_ASSIGN_OR_RETURN(c.items,
                          SealText(grant_hex, ChunkPlace(qid, index), ItemsJson(items).dump()));
  return Save(txn, DeletionChunkKey(qid, index), c);
}

Result<std::vector<DeletionItem>> Engine::Impl::LoadDeletionChunk(const CaseStore::Txn& txn,
                                                                  const std::string& qid,
                                                                  uint32_t index) {
  REFBUS_ASSIGN_OR_RETURN(auto c, Load<DeletionChunkRecord>(txn, DeletionChunkKey(qid, index)));
  if (!c)
    return NotFound("chunk " + std::to_string(index) + " of deletion request " + qid +
                    " is not held here");
  if (!c->items.sealed) return ItemsFrom(c->items.plain);
  // kFailedPrecondition when the grant's data was purged: the chunk is gone for good.
  REFBUS_ASSIGN_OR_RETURN(std::string text,
                          grant_keys->Unseal(*c->items.sealed, ChunkPlace(qid, index)));
  return ItemsFrom(text);
}

Result<std::vector<DeletionItem>> Engine::Impl::LoadDeletionList(const CaseStore::Txn& txn,
                                                                 const DeletionRecord& r) {
  std::vector<DeletionItem> all;
  for (uint32_t i = 0; r.manifest && i < r.manifest->chunk_count; ++i) {
    REFBUS_ASSIGN_OR_RETURN(auto items, LoadDeletionChunk(txn, r.request_id, i));
    all.insert(all.end(), std::make_move_iterator(items.begin()),
               std::make_move_iterator(items.end()));
  }
  return all;
}

Status Engine::Impl::SendDeletionChunk(CaseStore::Txn& txn, const StoredGrant& grant,
                                       const DeletionRecord& r, const schema::DeletionRequest& base,
                                       uint32_t index, std::span<const DeletionItem> items) {
  CaseMessage m;
  m.type = CaseMessage::Type::kDeletionRequest;
  m.deletion_request = base;
  m.deletion_request.items.assign(items.begin(), items.end());
  m.deletion_request.manifest = r.manifest;
  m.deletion_request.chunk_index = index;
  REFBUS_ASSIGN_OR_RETURN(Bytes mid, SendCase(txn, grant.known, std::move(m), {r.peer},
                                              Purpose::kDeletion, "deletion-request"));
  return StoreDeletionChunk(txn, r.grant_id, r.request_id, index, items, HexEncode(mid));
}

// The requester: chunks the deletion center asked for again, sent from what was kept.
Status Engine::Impl::ResendDeletionChunks(CaseStore::Txn& txn, DeletionRecord& r,
                                          const std::vector<uint32_t>& chunks,
                                          const std::string& operator_ref) {
  if (!r.manifest) {
    return InvalidArgument("deletion request " + r.request_id +
                           " was sent in one message: it has no chunks to send again");
  }
  REFBUS_ASSIGN_OR_RETURN(StoredGrant grant, RequireGrant(txn, r.grant_id));
  schema::DeletionRequest base;
  REFBUS_ASSIGN_OR_RETURN(base.request_id, HexDecode(r.request_id));
  base.case_ref = r.case_ref;
  base.monitor = r.monitor.value_or(false);
  base.report_to = r.report_to.value_or(std::vector<std::string>());
  base.signed_grant = schema::EncodeSignedConsentGrant(grant.known.grant);
  base.operator_ref = operator_ref;
  base.sent_at_ms = Now();
  std::set<uint32_t> once(chunks.begin(), chunks.end());
  for (uint32_t i : once) {
    if (i >= r.manifest->chunk_count) {
      return InvalidArgument("chunk " + std::to_string(i) + " is not in deletion request " +
                             r.request_id);
    }
    REFBUS_ASSIGN_OR_RETURN(auto items, LoadDeletionChunk(txn, r.request_id, i));
    REFBUS_RETURN_IF_ERROR(SendDeletionChunk(txn, grant, r, base, i, items));
  }
  r.chunks_resent = r.chunks_resent.value_or(0) + once.size();
  TimelineEvent ev = Event("deletion-chunks-resent");
  ev.to = r.peer;
  ev.request_id = r.request_id;
  ev.items = once.size();
  return Timeline(txn, r.case_ref, std::move(ev));
}

// The deletion center's report on the list itself (complete, or chunks missing), to the
// requester only.
Status Engine::Impl::SendListReport(CaseStore::Txn& txn, DeletionRecord& r,
                                    std::vector<uint32_t> missing) {
  REFBUS_ASSIGN_OR_RETURN(StoredGrant grant, RequireGrant(txn, r.grant_id));
  schema::DeletionStatusReport rep;
  REFBUS_ASSIGN_OR_RETURN(rep.request_id, HexDecode(r.request_id));
  rep.case_ref = r.case_ref;
  rep.counts = CountsOf(r.items);
  rep.report_seq = r.report_seq + 1;
  rep.items_held = static_cast<uint32_t>(r.items.size());
  rep.list_complete = r.list_complete.value_or(false);
  rep.missing_chunks = std::move(missing);
  CaseMessage m;
  m.type = CaseMessage::Type::kDeletionStatus;
  m.deletion_status = std::move(rep);
  REFBUS_ASSIGN_OR_RETURN(Bytes mid, SendCase(txn, grant.known, std::move(m), {r.peer},
                                              Purpose::kDeletion, "deletion-status"));
  (void)mid;
  r.report_seq += 1;
  return Status::Ok();
}

// Checks a chunk against its manifest and the request as held so far. Nothing is written
// before it passes: a refused chunk leaves only the refusal.
Status Engine::Impl::CheckDeletionChunk(const schema::DeletionRequest& dr,
                                        const std::optional<DeletionRecord>& rec,
                                        const std::string& from) {
  const std::string qid = HexEncode(dr.request_id);
  const auto& mf = *dr.manifest;
  const std::string which =
      "chunk " + std::to_string(dr.chunk_index) + " of deletion request " + qid;
  if (schema::DeletionChunkSha256(dr.items) != mf.chunk_sha256.at(dr.chunk_index)) {
    return PermissionDenied(which + " does not match its hash in the manifest");
  }
  std::set<std::string> ids;
  for (const auto& i : dr.items) {
    if (!ids.insert(i.item_id).second) {
      return InvalidArgument(which + " names item '" + i.item_id + "' twice");
    }
  }
  if (!rec) return Status::Ok();
  if (rec->side != DeletionSide::kDeletionCenter || rec->peer != from) {
    return PermissionDenied(which + " comes from " + from +
                            ", which is not the agency that made the request");
  }
  if (!rec->manifest || *rec->manifest != mf || rec->case_ref != dr.case_ref) {
    return PermissionDenied(which + " carries another manifest or case than its first chunk");
  }
  const auto& held = rec->chunks_held.value_or(std::vector<uint32_t>());
  if (std::binary_search(held.begin(), held.end(), dr.chunk_index)) return Status::Ok();
  for (const auto& i : dr.items) {
    if (rec->items.count(i.item_id) != 0) {
      return InvalidArgument(which + " names item '" + i.item_id + "', held from another chunk");
    }
  }
  if (rec->items.size() + dr.items.size() > mf.item_count) {
    return PermissionDenied(which + " holds more items than its manifest counts");
  }
  return Status::Ok();
}

// The deletion center: one chunk of a chunked request.
Status Engine::Impl::OnDeletionChunk(CaseStore::Txn& txn, const OpenedCase& oc,
                                     MessageRecord& msg) {
  const std::string& from = oc.envelope.header.sender_id;
  const auto& dr = oc.message.deletion_request;
  const std::string qid = HexEncode(dr.request_id);
  REFBUS_ASSIGN_OR_RETURN(auto rec, Load<DeletionRecord>(txn, qid));
  REFBUS_RETURN_IF_ERROR(CheckDeletionChunk(dr, rec, from));
  msg.request_id = qid;
  const bool first = !rec;
  if (first) {
    rec.emplace();
    rec->request_id = qid;
    rec->case_ref = dr.case_ref;
    rec->side = DeletionSide::kDeletionCenter;
    rec->peer = from;
    rec->grant_id = HexEncode(oc.envelope.header.consent_grant_id);
    rec->report_to = dr.report_to;
    rec->monitor = dr.monitor;
    rec->manifest = dr.manifest;
    rec->chunks_held.emplace();
    rec->list_complete = false;
  }
  DeletionRecord& r = *rec;
  auto& held = *r.chunks_held;
  if (std::binary_search(held.begin(), held.end(), dr.chunk_index)) {
    return Status::Ok();  // a duplicate: already held, nothing changes
  }
  REFBUS_RETURN_IF_ERROR(RememberGrant(txn, oc.grant, from));
  held.insert(std::upper_bound(held.begin(), held.end(), dr.chunk_index), dr.chunk_index);
  for (const auto& i : dr.items) r.items[i.item_id] = "requested";
  r.last_chunk_at_ms = Now();
  REFBUS_RETURN_IF_ERROR(
      StoreDeletionChunk(txn, r.grant_id, qid, dr.chunk_index, dr.items, msg.message_id));
  if (first) {
    TimelineEvent ev = Event("deletion-requested");
    ev.from = from;
    ev.request_id = qid;
    ev.items = r.manifest->item_count;
    REFBUS_RETURN_IF_ERROR(Timeline(txn, dr.case_ref, std::move(ev)));
  }
  if (held.size() == r.manifest->chunk_count) REFBUS_RETURN_IF_ERROR(CompleteDeletionList(txn, r));
  if (!r.list_complete.value_or(false)) incomplete_deletions[qid] = Now();
  return Save(txn, qid, r);
}

// Every chunk is held: the whole list's count and hash decide whether it is complete.
Status Engine::Impl::CompleteDeletionList(CaseStore::Txn& txn, DeletionRecord& r) {
  REFBUS_ASSIGN_OR_RETURN(auto all, LoadDeletionList(txn, r));
  const bool ok = all.size() == r.manifest->item_count &&
                  schema::DeletionListSha256(all) == r.manifest->items_sha256;
  TimelineEvent ev = Event(ok ? "deletion-list-complete" : "deletion-list-mismatch");
  ev.from = r.peer;
  ev.request_id = r.request_id;
  ev.items = all.size();
  REFBUS_RETURN_IF_ERROR(Timeline(txn, r.case_ref, std::move(ev)));
  if (!ok) {
    // Every chunk matched its own hash, so the requester's manifest contradicts itself:
    // recorded, and the list is never reported complete.
    spdlog::warn(
        "agent {}: deletion request {} from {}: the chunks do not add up to the "
        "manifest's item count and hash",
        me(), r.request_id, r.peer);
    return Status::Ok();
  }
  r.list_complete = true;
  incomplete_deletions.erase(r.request_id);
  REFBUS_RETURN_IF_ERROR(LinkWorkItems(txn, r, all));
  spdlog::info("agent {}: deletion request {} from {}: holds the whole list ({} items)", me(),
               r.request_id, r.peer, all.size());
  return SendListReport(txn, r, {});
}

// The deletion center's export shows the requester's items: an access to each chunk
// message, recorded as opening it would be (PROTOCOL.md 10).
Status Engine::Impl::RecordChunkAccess(CaseStore::Txn& txn, const DeletionRecord& r,
                                       const std::string& operator_ref) {
  REFBUS_ASSIGN_OR_RETURN(StoredGrant grant, RequireGrant(txn, r.grant_id));
  REFBUS_ASSIGN_OR_RETURN(auto chunks, LoadPrefix<DeletionChunkRecord>(txn, r.request_id + "/"));
  for (const auto& [key, c] : chunks) {
    auto mid = HexDecode(c.message_id);
    if (!mid.ok() || mid->empty()) continue;
    schema::AccessRecord ar{*mid,
                            r.case_ref,
                            me(),
                            operator_ref,
                            Now(),
                            grant.known.grant.grant.grant_id,
                            schema::MessageKind::kDeletionRequest,
                            r.peer};
    REFBUS_RETURN_IF_ERROR(RecordAccess(txn, ar, grant.known, Purpose::kDeletion));
  }
  return Status::Ok();
}

// From Poll: asks for chunks still missing once the timeout has passed since the latest
// chunk (or the latest ask).
bool Engine::Impl::ChunkCheckDue(std::chrono::steady_clock::time_point& next) const {
  const auto now_steady = std::chrono::steady_clock::now();
  if (now_steady < next) return false;
  next = now_steady + std::chrono::milliseconds(
                          std::clamp<int64_t>(options.deletion_chunk_timeout_ms / 4, 50, 5000));
  return true;
}

Status Engine::Impl::DeletionChunkTurn() {
  if (!ChunkCheckDue(next_chunk_check)) return Status::Ok();
  const int64_t timeout = options.deletion_chunk_timeout_ms;
  REFBUS_ASSIGN_OR_RETURN(auto txn, case_store->Begin(true));
  if (!incomplete_loaded) {
    REFBUS_ASSIGN_OR_RETURN(auto all, LoadAll<DeletionRecord>(txn));
    for (const auto& [key, r] : all) {
      if (r.side == DeletionSide::kDeletionCenter && r.manifest &&
          !r.list_complete.value_or(false)) {
        incomplete_deletions[key] =
            std::max(r.last_chunk_at_ms.value_or(0), r.missing_asked_at_ms.value_or(0));
      }
      if (r.side == DeletionSide::kRequester && r.manifest && r.report_seq == 0) {
        unanswered_deletions[key] = r.last_chunk_at_ms.value_or(0);
      }
    }
    incomplete_loaded = true;
  }
  REFBUS_ASSIGN_OR_RETURN(size_t asked, UnansweredDeletionTurn(txn));
  for (auto it = incomplete_deletions.begin(); it != incomplete_deletions.end();) {
    // The latest chunk or ask, kept in memory: a record is read only once it is due.
    if (Now() - std::min(Now(), it->second) < static_cast<UnixMillis>(timeout)) {
      ++it;
      continue;
    }
    REFBUS_ASSIGN_OR_RETURN(auto rec, Load<DeletionRecord>(txn, it->first));
    if (!rec || rec->list_complete.value_or(false) || !rec->manifest) {
      it = incomplete_deletions.erase(it);
      continue;
    }
    DeletionRecord& r = *rec;
    const UnixMillis since =
        std::max(r.last_chunk_at_ms.value_or(0), r.missing_asked_at_ms.value_or(0));
    std::vector<uint32_t> missing = MissingChunks(r);
    if (missing.empty()) {  // every chunk held, the list did not add up: nothing to ask for
      it = incomplete_deletions.erase(it);
      continue;
    }
    it->second = since;
    if (Now() - std::min(Now(), since) >= static_cast<UnixMillis>(timeout)) {
      spdlog::warn(
          "agent {}: deletion request {} from {}: {} chunks missing after {} ms; asking "
          "again",
          me(), r.request_id, r.peer, missing.size(), timeout);
      TimelineEvent ev = Event("deletion-chunks-missing");
      ev.to = r.peer;
      ev.request_id = r.request_id;
      ev.items = missing.size();
      REFBUS_RETURN_IF_ERROR(Timeline(txn, r.case_ref, std::move(ev)));
      REFBUS_RETURN_IF_ERROR(SendListReport(txn, r, std::move(missing)));
      r.missing_asked_at_ms = Now();
      it->second = Now();
      REFBUS_RETURN_IF_ERROR(Save(txn, r.request_id, r));
      ++asked;
    }
    ++it;
  }
  if (asked == 0) return Status::Ok();
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  FlushAfterCommit();
  return Status::Ok();
}

// The requester: a chunked request the deletion center has not answered at all (no
// report: it asks for missing chunks itself once it holds one, so every chunk may be lost)
// kUnansweredTimeouts chunk timeouts after the chunks were last sent is sent again whole,
// at most kUnansweredResends times; then it is recorded unanswered and left to the people.
Result<size_t> Engine::Impl::UnansweredDeletionTurn(CaseStore::Txn& txn) {
  const UnixMillis wait =
      static_cast<UnixMillis>(options.deletion_chunk_timeout_ms * kUnansweredTimeouts);
  size_t sent = 0;
  for (auto it = unanswered_deletions.begin(); it != unanswered_deletions.end();) {
    if (Now() - std::min(Now(), it->second) < wait) {
      ++it;
      continue;
    }
    REFBUS_ASSIGN_OR_RETURN(auto rec, Load<DeletionRecord>(txn, it->first));
    if (!rec || rec->report_seq > 0 || rec->list_complete.value_or(false) || !rec->manifest) {
      it = unanswered_deletions.erase(it);  // answered (or gone)
      continue;
    }
    DeletionRecord& r = *rec;
    const uint64_t rounds =
        r.chunks_resent.value_or(0) / std::max<uint32_t>(1, r.manifest->chunk_count);
    if (rounds >= kUnansweredResends) {
      spdlog::error("agent {}: deletion request {} to {}: no answer after {} sendings; giving up",
                    me(), r.request_id, r.peer, rounds + 1);
      TimelineEvent ev = Event("deletion-unanswered");
      ev.to = r.peer;
      ev.request_id = r.request_id;
      REFBUS_RETURN_IF_ERROR(Timeline(txn, r.case_ref, std::move(ev)));
      it = unanswered_deletions.erase(it);
      ++sent;
      continue;
    }
    spdlog::warn(
        "agent {}: deletion request {} to {}: no answer {} ms after sending; sending "
        "every chunk again",
        me(), r.request_id, r.peer, wait);
    std::vector<uint32_t> all(r.manifest->chunk_count);
    for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
    REFBUS_RETURN_IF_ERROR(ResendDeletionChunks(txn, r, all, "service:resend"));
    r.last_chunk_at_ms = Now();
    it->second = Now();
    REFBUS_RETURN_IF_ERROR(Save(txn, r.request_id, r));
    ++sent;
    ++it;
  }
  return sent;
}

}  // namespace refbus::agent
