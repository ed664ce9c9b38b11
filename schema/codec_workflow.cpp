// Codec for case messages and signed statements (schema/workflow.h).
#include <string>

#include "refbus/v1/workflow.pb.h"
#include "schema/codec.h"
#include "schema/codec_internal.h"
#include "schema/workflow.h"

namespace refbus::schema {
namespace {

using namespace internal;  // NOLINT(google-build-using-namespace): codec helpers

Status CheckText(std::string_view what, std::string_view field, const std::string& v, size_t max,
                 bool required) {
  if (required && v.empty()) return FieldError(what, field, "is empty");
  if (v.size() > max) {
    return FieldError(what, field,
                      "has " + std::to_string(v.size()) + " bytes, over " + std::to_string(max));
  }
  return Status::Ok();
}

Status CheckCaseRef(std::string_view what, const std::string& ref) {
  if (!IsValidCaseRef(ref)) return FieldError(what, "case_ref", "is not a valid case pseudonym");
  return Status::Ok();
}

Status CheckGrantBytes(std::string_view what, const std::string& b) {
  if (b.empty()) return FieldError(what, "signed_grant", "is empty");
  auto g = DecodeSignedConsentGrant(AsBytes(b));
  if (!g.ok()) return FieldError(what, "signed_grant", "does not decode: " + g.status().message());
  return Status::Ok();
}

template <typename Repeated>
Result<std::vector<CaseField>> Fields(std::string_view what, const Repeated& in) {
  if (static_cast<size_t>(in.size()) > kMaxCaseFields) {
    return FieldError(what, "fields", "has more than " + std::to_string(kMaxCaseFields));
  }
  std::vector<CaseField> out;
  for (const auto& f : in) {
    REFBUS_RETURN_IF_ERROR(
        CheckEnum<DataCategory>(what, "fields.category", f.category(), pb::DataCategory_MAX));
    REFBUS_RETURN_IF_ERROR(CheckText(what, "fields.name", f.name(), kMaxFieldNameBytes, true));
    REFBUS_RETURN_IF_ERROR(CheckText(what, "fields.value", f.value(), kMaxFieldValueBytes, false));
    out.push_back({static_cast<DataCategory>(f.category()), f.name(), f.value()});
  }
  return out;
}

template <typename Repeated>
void PutFields(const std::vector<CaseField>& in, Repeated* out) {
  for (const auto& f : in) {
    auto* o = out->Add();
    o->set_category(static_cast<pb::DataCategory>(f.category));
    o->set_name(f.name);
    o->set_value(f.value);
  }
}

Result<Referral> FromProto(const pb::Referral& m) {
  constexpr std::string_view kWhat = "referral";
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "referral_id", m.referral_id(), kWorkflowIdBytes));
  REFBUS_RETURN_IF_ERROR(CheckCaseRef(kWhat, m.case_ref()));
  REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "referring_agency", m.referring_agency()));
  REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "to_agency", m.to_agency()));
  REFBUS_RETURN_IF_ERROR(CheckEnum<Purpose>(kWhat, "purpose", m.purpose(), pb::Purpose_MAX));
  REFBUS_RETURN_IF_ERROR(CheckGrantBytes(kWhat, m.signed_grant()));
  REFBUS_RETURN_IF_ERROR(
      CheckText(kWhat, "operator_ref", m.operator_ref(), kMaxOperatorRefBytes, true));
  Referral r;
  r.referral_id = B(m.referral_id());
  r.case_ref = m.case_ref();
  r.referring_agency = m.referring_agency();
  r.to_agency = m.to_agency();
  r.purpose = static_cast<Purpose>(m.purpose());
  REFBUS_ASSIGN_OR_RETURN(r.fields, Fields(kWhat, m.fields()));
  r.signed_grant = B(m.signed_grant());
  r.operator_ref = m.operator_ref();
  r.sent_at_ms = m.sent_at_ms();
  return r;
}

void ToProto(const Referral& r, pb::Referral* m) {
  m->set_referral_id(S(r.referral_id));
  m->set_case_ref(r.case_ref);
  m->set_referring_agency(r.referring_agency);
  m->set_to_agency(r.to_agency);
  m->set_purpose(static_cast<pb::Purpose>(r.purpose));
  PutFields(r.fields, m->mutable_fields());
  m->set_signed_grant(S(r.signed_grant));
  m->set_operator_ref(r.operator_ref);
  m->set_sent_at_ms(r.sent_at_ms);
}

Result<ReferralStateChange> FromProto(const pb::ReferralStateChange& m) {
  constexpr std::string_view kWhat = "referral state change";
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "referral_id", m.referral_id(), kWorkflowIdBytes));
  REFBUS_RETURN_IF_ERROR(CheckCaseRef(kWhat, m.case_ref()));
  REFBUS_RETURN_IF_ERROR(
      CheckEnum<ReferralState>(kWhat, "from_state", m.from_state(), pb::ReferralState_MAX));
  REFBUS_RETURN_IF_ERROR(
      CheckEnum<ReferralState>(kWhat, "to_state", m.to_state(), pb::ReferralState_MAX));
  REFBUS_RETURN_IF_ERROR(CheckText(kWhat, "reason", m.reason(), kMaxReasonBytes, false));
  REFBUS_RETURN_IF_ERROR(
      CheckText(kWhat, "operator_ref", m.operator_ref(), kMaxOperatorRefBytes, true));
  ReferralStateChange c;
  c.referral_id = B(m.referral_id());
  c.case_ref = m.case_ref();
  c.from_state = static_cast<ReferralState>(m.from_state());
  c.to_state = static_cast<ReferralState>(m.to_state());
  c.reason = m.reason();
  c.operator_ref = m.operator_ref();
  c.changed_at_ms = m.changed_at_ms();
  return c;
}

void ToProto(const ReferralStateChange& c, pb::ReferralStateChange* m) {
  m->set_referral_id(S(c.referral_id));
  m->set_case_ref(c.case_ref);
  m->set_from_state(static_cast<pb::ReferralState>(c.from_state));
  m->set_to_state(static_cast<pb::ReferralState>(c.to_state));
  m->set_reason(c.reason);
  m->set_operator_ref(c.operator_ref);
  m->set_changed_at_ms(c.changed_at_ms);
}

Result<Handoff> FromProto(const pb::Handoff& m) {
  constexpr std::string_view kWhat = "handoff";
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "handoff_id", m.handoff_id(), kWorkflowIdBytes));
  REFBUS_RETURN_IF_ERROR(CheckCaseRef(kWhat, m.case_ref()));
  REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "from_lead", m.from_lead()));
  REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "to_lead", m.to_lead()));
  REFBUS_RETURN_IF_ERROR(CheckText(kWhat, "reason", m.reason(), kMaxReasonBytes, false));
  REFBUS_RETURN_IF_ERROR(CheckGrantBytes(kWhat, m.signed_grant()));
  REFBUS_RETURN_IF_ERROR(
      CheckText(kWhat, "operator_ref", m.operator_ref(), kMaxOperatorRefBytes, true));
  Handoff h;
  h.handoff_id = B(m.handoff_id());
  h.case_ref = m.case_ref();
  h.from_lead = m.from_lead();
  h.to_lead = m.to_lead();
  h.reason = m.reason();
  REFBUS_ASSIGN_OR_RETURN(h.fields, Fields(kWhat, m.fields()));
  h.signed_grant = B(m.signed_grant());
  h.operator_ref = m.operator_ref();
  h.sent_at_ms = m.sent_at_ms();
  return h;
}

void ToProto(const Handoff& h, pb::Handoff* m) {
  m->set_handoff_id(S(h.handoff_id));
  m->set_case_ref(h.case_ref);
  m->set_from_lead(h.from_lead);
  m->set_to_lead(h.to_lead);
  m->set_reason(h.reason);
  PutFields(h.fields, m->mutable_fields());
  m->set_signed_grant(S(h.signed_grant));
  m->set_operator_ref(h.operator_ref);
  m->set_sent_at_ms(h.sent_at_ms);
}

Result<HandoffAck> FromProto(const pb::HandoffAck& m) {
  constexpr std::string_view kWhat = "handoff ack";
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "handoff_id", m.handoff_id(), kWorkflowIdBytes));
  REFBUS_RETURN_IF_ERROR(CheckCaseRef(kWhat, m.case_ref()));
  REFBUS_RETURN_IF_ERROR(CheckText(kWhat, "reason", m.reason(), kMaxReasonBytes, false));
  REFBUS_RETURN_IF_ERROR(
      CheckText(kWhat, "operator_ref", m.operator_ref(), kMaxOperatorRefBytes, true));
  return HandoffAck{B(m.handoff_id()), m.case_ref(),     m.accepted(),
                    m.reason(),        m.operator_ref(), m.acked_at_ms()};
}

void ToProto(const HandoffAck& a, pb::HandoffAck* m) {
  m->set_handoff_id(S(a.handoff_id));
  m->set_case_ref(a.case_ref);
  m->set_accepted(a.accepted);
  m->set_reason(a.reason);
  m->set_operator_ref(a.operator_ref);
  m->set_acked_at_ms(a.acked_at_ms);
}

Result<DeletionManifest> FromProto(const pb::DeletionManifest& m) {
  constexpr std::string_view kWhat = "deletion request";
  if (m.item_count() == 0 || m.item_count() > kMaxDeletionRequestItems) {
    return FieldError(kWhat, "manifest.item_count",
                      "must be 1 to " + std::to_string(kMaxDeletionRequestItems));
  }
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "manifest.items_sha256", m.items_sha256(), 32));
  if (m.chunk_count() == 0 || m.chunk_count() > kMaxDeletionChunks ||
      m.chunk_count() > m.item_count()) {
    return FieldError(
        kWhat, "manifest.chunk_count",
        "must be 1 to " + std::to_string(kMaxDeletionChunks) + " and at most item_count");
  }
  if (static_cast<uint32_t>(m.chunk_sha256().size()) != m.chunk_count()) {
    return FieldError(kWhat, "manifest.chunk_sha256", "must hold one hash per chunk");
  }
  DeletionManifest out;
  out.item_count = m.item_count();
  out.items_sha256 = B(m.items_sha256());
  out.chunk_count = m.chunk_count();
  for (const auto& h : m.chunk_sha256()) {
    REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "manifest.chunk_sha256", h, 32));
    out.chunk_sha256.push_back(B(h));
  }
  return out;
}

Status CheckDeletionItemCount(const pb::DeletionRequest& m) {
  constexpr std::string_view kWhat = "deletion request";
  const size_t n = static_cast<size_t>(m.items().size());
  if (!m.has_manifest()) {
    if (n == 0 || n > kMaxDeletionItems) {
      return FieldError(kWhat, "items",
                        "must hold 1 to " + std::to_string(kMaxDeletionItems) + " items");
    }
    return Status::Ok();
  }
  if (n == 0 || n > kMaxDeletionChunkItems || n > m.manifest().item_count()) {
    return FieldError(kWhat, "items",
                      "must hold 1 to " + std::to_string(kMaxDeletionChunkItems) +
                          " items per chunk, and no more than the manifest's item_count");
  }
  if (m.chunk_index() >= m.manifest().chunk_count()) {
    return FieldError(kWhat, "chunk_index", "is not below the manifest's chunk_count");
  }
  return Status::Ok();
}

Result<DeletionItem> FromProto(const pb::DeletionItem& i) {
  constexpr std::string_view kWhat = "deletion request";
  REFBUS_RETURN_IF_ERROR(CheckText(kWhat, "items.item_id", i.item_id(), 64, true));
  REFBUS_RETURN_IF_ERROR(CheckText(kWhat, "items.url", i.url(), kMaxUrlBytes, true));
  REFBUS_RETURN_IF_ERROR(CheckSizeOrEmpty(kWhat, "items.content_sha256", i.content_sha256(), 32));
  REFBUS_RETURN_IF_ERROR(CheckText(kWhat, "items.platform", i.platform(), 64, false));
  REFBUS_RETURN_IF_ERROR(CheckText(kWhat, "items.note", i.note(), kMaxDeletionNoteBytes, false));
  return DeletionItem{i.item_id(), i.url(), B(i.content_sha256()), i.platform(), i.note()};
}

Result<DeletionRequest> FromProto(const pb::DeletionRequest& m) {
  constexpr std::string_view kWhat = "deletion request";
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "request_id", m.request_id(), kWorkflowIdBytes));
  REFBUS_RETURN_IF_ERROR(CheckCaseRef(kWhat, m.case_ref()));
  REFBUS_RETURN_IF_ERROR(CheckDeletionItemCount(m));
  REFBUS_RETURN_IF_ERROR(CheckGrantBytes(kWhat, m.signed_grant()));
  REFBUS_RETURN_IF_ERROR(
      CheckText(kWhat, "operator_ref", m.operator_ref(), kMaxOperatorRefBytes, true));
  DeletionRequest r;
  if (m.has_manifest()) {
    REFBUS_ASSIGN_OR_RETURN(r.manifest, FromProto(m.manifest()));
    r.chunk_index = m.chunk_index();
  }
  r.request_id = B(m.request_id());
  r.case_ref = m.case_ref();
  r.items.reserve(static_cast<size_t>(m.items().size()));
  for (const auto& i : m.items()) {
    REFBUS_ASSIGN_OR_RETURN(DeletionItem item, FromProto(i));
    r.items.push_back(std::move(item));
  }
  r.monitor = m.monitor();
  if (m.report_to().size() > static_cast<int>(kMaxRecipients)) {
    return FieldError(kWhat, "report_to", "has too many agencies");
  }
  for (const auto& a : m.report_to()) {
    REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "report_to", a));
    r.report_to.push_back(a);
  }
  r.signed_grant = B(m.signed_grant());
  r.operator_ref = m.operator_ref();
  r.sent_at_ms = m.sent_at_ms();
  return r;
}

void ToProto(const DeletionRequest& r, pb::DeletionRequest* m) {
  m->set_request_id(S(r.request_id));
  m->set_case_ref(r.case_ref);
  for (const auto& i : r.items) {
    auto* o = m->add_items();
    o->set_item_id(i.item_id);
    o->set_url(i.url);
    o->set_content_sha256(S(i.content_sha256));
    o->set_platform(i.platform);
    o->set_note(i.note);
  }
  if (r.manifest) {
    auto* mf = m->mutable_manifest();
    mf->set_item_count(r.manifest->item_count);
    mf->set_items_sha256(S(r.manifest->items_sha256));
    mf->set_chunk_count(r.manifest->chunk_count);
    for (const auto& h : r.manifest->chunk_sha256) mf->add_chunk_sha256(S(h));
    m->set_chunk_index(r.chunk_index);
  }
  m->set_monitor(r.monitor);
  for (const auto& a : r.report_to) m->add_report_to(a);
  m->set_signed_grant(S(r.signed_grant));
  m->set_operator_ref(r.operator_ref);
  m->set_sent_at_ms(r.sent_at_ms);
}

Result<DeletionStatusReport> FromProto(const pb::DeletionStatusReport& m) {
  constexpr std::string_view kWhat = "deletion status report";
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "request_id", m.request_id(), kWorkflowIdBytes));
  REFBUS_RETURN_IF_ERROR(CheckCaseRef(kWhat, m.case_ref()));
  if (static_cast<size_t>(m.updates().size()) > kMaxDeletionItems) {
    return FieldError(kWhat, "updates", "has too many updates");
  }
  if (m.report_seq() == 0) return FieldError(kWhat, "report_seq", "is 0");
  const uint32_t parts = m.part_count() == 0 ? 1 : m.part_count();
  if (parts > kMaxDeletionChunks || m.part_index() >= parts) {
    return FieldError(
        kWhat, "part_index",
        "is not below part_count (at most " + std::to_string(kMaxDeletionChunks) + ")");
  }
  if (static_cast<size_t>(m.missing_chunks().size()) > kMaxDeletionChunks ||
      m.items_held() > kMaxDeletionRequestItems) {
    return FieldError(kWhat, "missing_chunks", "is out of range");
  }
  DeletionStatusReport r;
  r.part_index = m.part_index();
  r.part_count = parts;
  r.items_held = m.items_held();
  r.list_complete = m.list_complete();
  for (uint32_t c : m.missing_chunks()) {
    if (c >= kMaxDeletionChunks) return FieldError(kWhat, "missing_chunks", "is out of range");
    r.missing_chunks.push_back(c);
  }
  r.request_id = B(m.request_id());
  r.case_ref = m.case_ref();
  for (const auto& u : m.updates()) {
    REFBUS_RETURN_IF_ERROR(CheckText(kWhat, "updates.item_id", u.item_id(), 64, true));
    REFBUS_RETURN_IF_ERROR(CheckEnum<DeletionItemStatus>(kWhat, "updates.status", u.status(),
                                                         pb::DeletionItemStatus_MAX));
    r.updates.push_back({u.item_id(), static_cast<DeletionItemStatus>(u.status()), u.at_ms()});
  }
  const auto& c = m.counts();
  r.counts = {c.received(), c.notified(), c.removed(), c.reappeared(), c.withdrawn()};
  r.report_seq = m.report_seq();
  return r;
}

void ToProto(const DeletionStatusReport& r, pb::DeletionStatusReport* m) {
  m->set_request_id(S(r.request_id));
  m->set_case_ref(r.case_ref);
  for (const auto& u : r.updates) {
    auto* o = m->add_updates();
    o->set_item_id(u.item_id);
    o->set_status(static_cast<pb::DeletionItemStatus>(u.status));
    o->set_at_ms(u.at_ms);
  }
  auto* c = m->mutable_counts();
  c->set_received(r.counts.received);
  c->set_notified(r.counts.notified);
  c->set_removed(r.counts.removed);
  c->set_reappeared(r.counts.reappeared);
  c->set_withdrawn(r.counts.withdrawn);
  m->set_report_seq(r.report_seq);
  m->set_part_index(r.part_index);
  m->set_part_count(r.part_count);
  m->set_items_held(r.items_held);
  m->set_list_complete(r.list_complete);
  for (uint32_t i : r.missing_chunks) m->add_missing_chunks(i);
}

Result<CaseClosed> FromProto(const pb::CaseClosed& m) {
  constexpr std::string_view kWhat = "case closed";
  REFBUS_RETURN_IF_ERROR(CheckCaseRef(kWhat, m.case_ref()));
  REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "closed_by", m.closed_by()));
  REFBUS_RETURN_IF_ERROR(CheckText(kWhat, "reason", m.reason(), kMaxReasonBytes, false));
  REFBUS_RETURN_IF_ERROR(
      CheckText(kWhat, "operator_ref", m.operator_ref(), kMaxOperatorRefBytes, true));
  return CaseClosed{m.case_ref(), m.closed_by(), m.reason(), m.operator_ref(), m.closed_at_ms()};
}

void ToProto(const CaseClosed& c, pb::CaseClosed* m) {
  m->set_case_ref(c.case_ref);
  m->set_closed_by(c.closed_by);
  m->set_reason(c.reason);
  m->set_operator_ref(c.operator_ref);
  m->set_closed_at_ms(c.closed_at_ms);
}

// Linkage (PROTOCOL.md 13.6). Sizes are checked here; the escrow checks the scalars.
constexpr size_t kMaxSealedRecordBytes = 1024;
constexpr size_t kMaxLinkedAgencies = 16;

Result<LinkageEntry> FromProto(const pb::LinkageEntry& m) {
  constexpr std::string_view kWhat = "linkage entry";
  REFBUS_RETURN_IF_ERROR(CheckCaseRef(kWhat, m.case_ref()));
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "link_id", m.link_id(), kWorkflowIdBytes));
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "tag", m.tag(), 32));
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "y", m.y(), 32));
  REFBUS_RETURN_IF_ERROR(
      CheckText(kWhat, "sealed_record", m.sealed_record(), kMaxSealedRecordBytes, true));
  REFBUS_RETURN_IF_ERROR(CheckGrantBytes(kWhat, m.signed_grant()));
  REFBUS_RETURN_IF_ERROR(
      CheckText(kWhat, "operator_ref", m.operator_ref(), kMaxOperatorRefBytes, true));
  return LinkageEntry{m.case_ref(),         B(m.link_id()), B(m.tag()),          B(m.y()),
                      B(m.sealed_record()), m.expires_ms(), B(m.signed_grant()), m.operator_ref(),
                      m.sent_at_ms()};
}

void ToProto(const LinkageEntry& e, pb::LinkageEntry* m) {
  m->set_case_ref(e.case_ref);
  m->set_link_id(S(e.link_id));
  m->set_tag(S(e.tag));
  m->set_y(S(e.y));
  m->set_sealed_record(S(e.sealed_record));
  m->set_expires_ms(e.expires_ms);
  m->set_signed_grant(S(e.signed_grant));
  m->set_operator_ref(e.operator_ref);
  m->set_sent_at_ms(e.sent_at_ms);
}

Result<LinkageNotice> FromProto(const pb::LinkageNotice& m) {
  constexpr std::string_view kWhat = "linkage notice";
  REFBUS_RETURN_IF_ERROR(CheckCaseRef(kWhat, m.case_ref()));
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "linkage_id", m.linkage_id(), 16));
  REFBUS_RETURN_IF_ERROR(CheckText(kWhat, "identifier_kind", m.identifier_kind(), 32, true));
  if (m.others().empty() || static_cast<size_t>(m.others().size()) > kMaxLinkedAgencies) {
    return FieldError(kWhat, "others", "must name 1 to 16 agencies");
  }
  LinkageNotice n{m.case_ref(), B(m.linkage_id()), m.identifier_kind(), {}, m.matched_at_ms()};
  for (const auto& o : m.others()) {
    REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "others.agency_id", o.agency_id()));
    n.others.push_back(
        {o.agency_id(), o.first_seen_ms(), o.last_seen_ms(), o.victims(), o.items()});
  }
  return n;
}

void ToProto(const LinkageNotice& n, pb::LinkageNotice* m) {
  m->set_case_ref(n.case_ref);
  m->set_linkage_id(S(n.linkage_id));
  m->set_identifier_kind(n.identifier_kind);
  for (const auto& o : n.others) {
    auto* p = m->add_others();
    p->set_agency_id(o.agency_id);
    p->set_first_seen_ms(o.first_seen_ms);
    p->set_last_seen_ms(o.last_seen_ms);
    p->set_victims(o.victims);
    p->set_items(o.items);
  }
  m->set_matched_at_ms(n.matched_at_ms);
}

// A part of a parted watch-list file (PROTOCOL.md 10.3): every size follows from
// (total_bytes, part_index), so a part that contradicts itself is refused here.
Result<WatchListPart> FromProto(const pb::WatchListPart& m) {
  constexpr std::string_view kWhat = "deletion watch list part";
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "file_sha256", m.file_sha256(), 32));
  if (m.total_bytes() <= kMaxWatchListFileBytes || m.total_bytes() > kMaxWatchListPartedBytes) {
    return FieldError(kWhat, "total_bytes",
                      "is " + std::to_string(m.total_bytes()) + ": a parted file has more than " +
                          std::to_string(kMaxWatchListFileBytes) + " and at most " +
                          std::to_string(kMaxWatchListPartedBytes) + " bytes");
  }
  const uint32_t count = WatchListPartCount(m.total_bytes());
  if (m.part_count() != count) {
    return FieldError(kWhat, "part_count",
                      "is " + std::to_string(m.part_count()) + ", but " +
                          std::to_string(m.total_bytes()) + " bytes make " + std::to_string(count) +
                          " parts");
  }
  if (m.part_index() >= count) {
    return FieldError(kWhat, "part_index", "is not less than part_count");
  }
  const uint64_t want = WatchListPartSize(m.total_bytes(), m.part_index());
  if (m.data().size() != want) {
    return FieldError(kWhat, "data",
                      "has " + std::to_string(m.data().size()) + " bytes, part " +
                          std::to_string(m.part_index()) + " holds " + std::to_string(want));
  }
  return WatchListPart{B(m.file_sha256()), m.part_index(), m.part_count(), m.total_bytes(),
                       B(m.data())};
}

Result<DeletionWatchList> FromProto(const pb::DeletionWatchList& m) {
  constexpr std::string_view kWhat = "deletion watch list";
  if (m.has_part()) {
    if (!m.file().empty() || m.request_full() || m.held_version() != 0) {
      return FieldError(kWhat, "part", "is alone in its message (no file, no request)");
    }
    REFBUS_ASSIGN_OR_RETURN(WatchListPart part, FromProto(m.part()));
    DeletionWatchList w;
    w.part = std::move(part);
    return w;
  }
  if (m.request_full() == !m.file().empty()) {
    return FieldError(kWhat, "file", "must be set in a list and empty in a request");
  }
  if (m.file().size() > kMaxWatchListFileBytes) {
    return FieldError(kWhat, "file",
                      "is over " + std::to_string(kMaxWatchListFileBytes) +
                          " bytes (a larger file travels as parts)");
  }
  if (!m.request_full() && m.held_version() != 0) {
    return FieldError(kWhat, "held_version", "is for requests only");
  }
  return DeletionWatchList{m.file(), m.request_full(), m.held_version(), std::nullopt};
}

void ToProto(const DeletionWatchList& w, pb::DeletionWatchList* m) {
  m->set_file(w.file);
  m->set_request_full(w.request_full);
  m->set_held_version(w.held_version);
  if (w.part) {
    auto* p = m->mutable_part();
    p->set_file_sha256(S(w.part->file_sha256));
    p->set_part_index(w.part->index);
    p->set_part_count(w.part->count);
    p->set_total_bytes(w.part->total_bytes);
    p->set_data(S(w.part->data));
  }
}

Result<OperatorSignature> FromProto(const pb::OperatorSignature& m) {
  constexpr std::string_view kWhat = "operator signature";
  REFBUS_RETURN_IF_ERROR(
      CheckText(kWhat, "operator_ref", m.operator_ref(), kMaxOperatorRefBytes, true));
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "public_key", m.public_key(), kPublicKeyBytes));
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "signature", m.signature(), kSignatureBytes));
  return OperatorSignature{m.operator_ref(), B(m.public_key()), B(m.signature())};
}

void ToProto(const OperatorSignature& o, pb::OperatorSignature* m) {
  m->set_operator_ref(o.operator_ref);
  m->set_public_key(S(o.public_key));
  m->set_signature(S(o.signature));
}

Result<SignedStatement> FromProto(const pb::SignedStatement& m) {
  constexpr std::string_view kWhat = "signed statement";
  if (m.statement().empty()) return FieldError(kWhat, "statement", "is empty");
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "signer_key_id", m.signer_key_id(), kKeyIdBytes));
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "signature", m.signature(), kSignatureBytes));
  SignedStatement s{B(m.statement()), B(m.signer_key_id()), B(m.signature()), std::nullopt};
  if (m.has_operator_signature()) {
    REFBUS_ASSIGN_OR_RETURN(s.operator_signature, FromProto(m.operator_signature()));
  }
  return s;
}

void ToProto(const SignedStatement& s, pb::SignedStatement* m) {
  m->set_statement(S(s.statement));
  m->set_signer_key_id(S(s.signer_key_id));
  m->set_signature(S(s.signature));
  if (s.operator_signature) ToProto(*s.operator_signature, m->mutable_operator_signature());
}

// A tally's evidence (PROTOCOL.md 13.8): sizes here; the receiving agent checks the evidence.
Result<LinkageTallyEvidence> FromProto(const pb::LinkageTallyEvidence& m) {
  constexpr std::string_view kWhat = "linkage tally";
  REFBUS_RETURN_IF_ERROR(CheckCaseRef(kWhat, m.case_ref()));
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "linkage_id", m.linkage_id(), 16));
  REFBUS_RETURN_IF_ERROR(
      CheckText(kWhat, "evidence", m.evidence(), kMaxLinkageEvidenceBytes, true));
  REFBUS_RETURN_IF_ERROR(CheckGrantBytes(kWhat, m.signed_grant()));
  REFBUS_RETURN_IF_ERROR(
      CheckText(kWhat, "operator_ref", m.operator_ref(), kMaxOperatorRefBytes, true));
  return LinkageTallyEvidence{m.case_ref(),        B(m.linkage_id()), m.evidence(),
                              B(m.signed_grant()), m.operator_ref(),  m.sent_at_ms()};
}

void ToProto(const LinkageTallyEvidence& t, pb::LinkageTallyEvidence* m) {
  m->set_case_ref(t.case_ref);
  m->set_linkage_id(S(t.linkage_id));
  m->set_evidence(t.evidence);
  m->set_signed_grant(S(t.signed_grant));
  m->set_operator_ref(t.operator_ref);
  m->set_sent_at_ms(t.sent_at_ms);
}

}  // namespace

Result<CaseMessage> DecodeCaseMessage(ByteView bytes) {
  constexpr std::string_view kWhat = "case message";
  pb::CaseMessage m;
  REFBUS_RETURN_IF_ERROR(Parse(m, bytes, kMaxCaseMessageBytes, kWhat));
  if (m.version() != 1) {
    return FieldError(kWhat, "version", "is " + std::to_string(m.version()) + ", expected 1");
  }
  CaseMessage c;
  switch (m.body_case()) {
    case pb::CaseMessage::kReferral: {
      c.type = CaseMessage::Type::kReferral;
      REFBUS_ASSIGN_OR_RETURN(c.referral, FromProto(m.referral()));
      break;
    }
    case pb::CaseMessage::kStateChange: {
      c.type = CaseMessage::Type::kStateChange;
      REFBUS_ASSIGN_OR_RETURN(c.state_change, FromProto(m.state_change()));
      break;
    }
    case pb::CaseMessage::kHandoff: {
      c.type = CaseMessage::Type::kHandoff;
      REFBUS_ASSIGN_OR_RETURN(c.handoff, FromProto(m.handoff()));
      break;
    }
    case pb::CaseMessage::kHandoffAck: {
      c.type = CaseMessage::Type::kHandoffAck;
      REFBUS_ASSIGN_OR_RETURN(c.handoff_ack, FromProto(m.handoff_ack()));
      break;
    }
    case pb::CaseMessage::kDeletionRequest: {
      c.type = CaseMessage::Type::kDeletionRequest;
      REFBUS_ASSIGN_OR_RETURN(c.deletion_request, FromProto(m.deletion_request()));
      break;
    }
    case pb::CaseMessage::kDeletionStatus: {
      c.type = CaseMessage::Type::kDeletionStatus;
      REFBUS_ASSIGN_OR_RETURN(c.deletion_status, FromProto(m.deletion_status()));
      break;
    }
    case pb::CaseMessage::kAccessNotice: {
      c.type = CaseMessage::Type::kAccessNotice;
      REFBUS_ASSIGN_OR_RETURN(c.statement, FromProto(m.access_notice()));
      break;
    }
    case pb::CaseMessage::kConsentRevocation: {
      c.type = CaseMessage::Type::kConsentRevocation;
      REFBUS_ASSIGN_OR_RETURN(c.statement, FromProto(m.consent_revocation()));
      break;
    }
    case pb::CaseMessage::kPurgeConfirmation: {
      c.type = CaseMessage::Type::kPurgeConfirmation;
      REFBUS_ASSIGN_OR_RETURN(c.statement, FromProto(m.purge_confirmation()));
      break;
    }
    case pb::CaseMessage::kCaseClosed: {
      c.type = CaseMessage::Type::kCaseClosed;
      REFBUS_ASSIGN_OR_RETURN(c.case_closed, FromProto(m.case_closed()));
      break;
    }
    case pb::CaseMessage::kLinkageEntry: {
      c.type = CaseMessage::Type::kLinkageEntry;
      REFBUS_ASSIGN_OR_RETURN(c.linkage_entry, FromProto(m.linkage_entry()));
      break;
    }
    case pb::CaseMessage::kLinkageNotice: {
      c.type = CaseMessage::Type::kLinkageNotice;
      REFBUS_ASSIGN_OR_RETURN(c.linkage_notice, FromProto(m.linkage_notice()));
      break;
    }
    case pb::CaseMessage::kDeletionWatchList: {
      c.type = CaseMessage::Type::kDeletionWatchList;
      REFBUS_ASSIGN_OR_RETURN(c.watch_list, FromProto(m.deletion_watch_list()));
      break;
    }
    case pb::CaseMessage::kLinkageTally: {
      c.type = CaseMessage::Type::kLinkageTally;
      REFBUS_ASSIGN_OR_RETURN(c.linkage_tally, FromProto(m.linkage_tally()));
      break;
    }
    case pb::CaseMessage::BODY_NOT_SET:
      return FieldError(kWhat, "body", "is missing");
  }
  if (m.has_operator_signature()) {
    // The signature covers the bytes before it: it must be the message's last field.
    pb::CaseMessage tail;
    *tail.mutable_operator_signature() = m.operator_signature();
    const std::string suffix = tail.SerializeAsString();
    const std::string_view all(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    if (suffix.size() >= all.size() || !all.ends_with(suffix)) {
      return FieldError(kWhat, "operator_signature", "is not the last field of the message");
    }
    REFBUS_ASSIGN_OR_RETURN(c.operator_signature, FromProto(m.operator_signature()));
    c.operator_signed_bytes =
        Bytes(bytes.begin(), bytes.end() - static_cast<ptrdiff_t>(suffix.size()));
  }
  return c;
}

Bytes EncodeCaseMessage(const CaseMessage& c) {
  Bytes out = EncodeCaseMessageBody(c);
  if (c.operator_signature) {
    pb::CaseMessage tail;
    ToProto(*c.operator_signature, tail.mutable_operator_signature());
    Bytes t = Serialize(tail);
    out.insert(out.end(), t.begin(), t.end());
  }
  return out;
}

Bytes EncodeCaseMessageBody(const CaseMessage& c) {
  pb::CaseMessage m;
  m.set_version(c.version);
  switch (c.type) {
    case CaseMessage::Type::kReferral:
      ToProto(c.referral, m.mutable_referral());
      break;
    case CaseMessage::Type::kStateChange:
      ToProto(c.state_change, m.mutable_state_change());
      break;
    case CaseMessage::Type::kHandoff:
      ToProto(c.handoff, m.mutable_handoff());
      break;
    case CaseMessage::Type::kHandoffAck:
      ToProto(c.handoff_ack, m.mutable_handoff_ack());
      break;
    case CaseMessage::Type::kDeletionRequest:
      ToProto(c.deletion_request, m.mutable_deletion_request());
      break;
    case CaseMessage::Type::kDeletionStatus:
      ToProto(c.deletion_status, m.mutable_deletion_status());
      break;
    case CaseMessage::Type::kAccessNotice:
      ToProto(c.statement, m.mutable_access_notice());
      break;
    case CaseMessage::Type::kConsentRevocation:
      ToProto(c.statement, m.mutable_consent_revocation());
      break;
    case CaseMessage::Type::kPurgeConfirmation:
      ToProto(c.statement, m.mutable_purge_confirmation());
      break;
    case CaseMessage::Type::kCaseClosed:
      ToProto(c.case_closed, m.mutable_case_closed());
      break;
    case CaseMessage::Type::kLinkageEntry:
      ToProto(c.linkage_entry, m.mutable_linkage_entry());
      break;
    case CaseMessage::Type::kLinkageNotice:
      ToProto(c.linkage_notice, m.mutable_linkage_notice());
      break;
    case CaseMessage::Type::kDeletionWatchList:
      ToProto(c.watch_list, m.mutable_deletion_watch_list());
      break;
    case CaseMessage::Type::kLinkageTally:
      ToProto(c.linkage_tally, m.mutable_linkage_tally());
      break;
  }
  return Serialize(m);
}

Result<SignedStatement> DecodeSignedStatement(ByteView bytes) {
  pb::SignedStatement m;
  REFBUS_RETURN_IF_ERROR(Parse(m, bytes, kMaxRecordBytes, "signed statement"));
  return FromProto(m);
}

Bytes EncodeSignedStatement(const SignedStatement& s) {
  pb::SignedStatement m;
  ToProto(s, &m);
  return Serialize(m);
}

Result<AccessRecord> DecodeAccessRecord(ByteView bytes) {
  constexpr std::string_view kWhat = "access record";
  pb::AccessRecord m;
  REFBUS_RETURN_IF_ERROR(Parse(m, bytes, kMaxRecordBytes, kWhat));
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "message_id", m.message_id(), kMessageIdBytes));
  REFBUS_RETURN_IF_ERROR(CheckCaseRef(kWhat, m.case_ref()));
  REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "agency_id", m.agency_id()));
  REFBUS_RETURN_IF_ERROR(
      CheckText(kWhat, "operator_ref", m.operator_ref(), kMaxOperatorRefBytes, true));
  REFBUS_RETURN_IF_ERROR(
      CheckSizeOrEmpty(kWhat, "consent_grant_id", m.consent_grant_id(), kGrantIdBytes));
  REFBUS_RETURN_IF_ERROR(CheckEnum<MessageKind>(kWhat, "kind", m.kind(), pb::MessageKind_MAX));
  REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "owner_agency", m.owner_agency()));
  return AccessRecord{B(m.message_id()),
                      m.case_ref(),
                      m.agency_id(),
                      m.operator_ref(),
                      m.opened_at_ms(),
                      B(m.consent_grant_id()),
                      static_cast<MessageKind>(m.kind()),
                      m.owner_agency()};
}

Bytes EncodeAccessRecord(const AccessRecord& r) {
  pb::AccessRecord m;
  m.set_message_id(S(r.message_id));
  m.set_case_ref(r.case_ref);
  m.set_agency_id(r.agency_id);
  m.set_operator_ref(r.operator_ref);
  m.set_opened_at_ms(r.opened_at_ms);
  m.set_consent_grant_id(S(r.consent_grant_id));
  m.set_kind(static_cast<pb::MessageKind>(r.kind));
  m.set_owner_agency(r.owner_agency);
  return Serialize(m);
}

Result<ConsentRevocation> DecodeConsentRevocation(ByteView bytes) {
  constexpr std::string_view kWhat = "consent revocation";
  pb::ConsentRevocation m;
  REFBUS_RETURN_IF_ERROR(Parse(m, bytes, kMaxRecordBytes, kWhat));
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "grant_id", m.grant_id(), kGrantIdBytes));
  REFBUS_RETURN_IF_ERROR(CheckCaseRef(kWhat, m.case_ref()));
  REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "revoked_by", m.revoked_by()));
  REFBUS_RETURN_IF_ERROR(
      CheckEnum<RevocationReason>(kWhat, "reason", m.reason(), pb::RevocationReason_MAX));
  return ConsentRevocation{B(m.grant_id()), m.case_ref(), m.revoked_by(),
                           static_cast<RevocationReason>(m.reason()), m.revoked_at_ms()};
}

Bytes EncodeConsentRevocation(const ConsentRevocation& r) {
  pb::ConsentRevocation m;
  m.set_grant_id(S(r.grant_id));
  m.set_case_ref(r.case_ref);
  m.set_revoked_by(r.revoked_by);
  m.set_reason(static_cast<pb::RevocationReason>(r.reason));
  m.set_revoked_at_ms(r.revoked_at_ms);
  return Serialize(m);
}

Result<PurgeConfirmation> DecodePurgeConfirmation(ByteView bytes) {
  constexpr std::string_view kWhat = "purge confirmation";
  pb::PurgeConfirmation m;
  REFBUS_RETURN_IF_ERROR(Parse(m, bytes, kMaxRecordBytes, kWhat));
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "grant_id", m.grant_id(), kGrantIdBytes));
  REFBUS_RETURN_IF_ERROR(CheckCaseRef(kWhat, m.case_ref()));
  REFBUS_RETURN_IF_ERROR(CheckPartyId(kWhat, "agency_id", m.agency_id()));
  REFBUS_RETURN_IF_ERROR(CheckSize(kWhat, "purged_ids_sha256", m.purged_ids_sha256(), 32));
  return PurgeConfirmation{B(m.grant_id()),  m.case_ref(),        m.agency_id(),
                           m.purged_at_ms(), m.messages_purged(), B(m.purged_ids_sha256())};
}

Bytes EncodePurgeConfirmation(const PurgeConfirmation& p) {
  pb::PurgeConfirmation m;
  m.set_grant_id(S(p.grant_id));
  m.set_case_ref(p.case_ref);
  m.set_agency_id(p.agency_id);
  m.set_purged_at_ms(p.purged_at_ms);
  m.set_messages_purged(p.messages_purged);
  m.set_purged_ids_sha256(S(p.purged_ids_sha256));
  return Serialize(m);
}

}  // namespace refbus::schema
