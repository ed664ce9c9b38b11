// Codec for transport frames (schema/codec.h "Transport frames"): one FromProto and one
// ToProto per frame body; the Frame-level pair only dispatches on the body's kind.
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <algorithm>
#include <string>

#include "refbus/v1/transport.pb.h"
#include "schema/codec.h"
#include "schema/codec_internal.h"

namespace refbus::schema {
namespace {

using namespace internal;  // NOLINT(google-build-using-namespace): codec helpers

// Every frame error names the object "frame" and the field as "<body>.<field>".
constexpr std::string_view kFrameWhat = "frame";

// ---- Bodies: proto -> domain, checked ----

Status FromProto(const pb::Hello& m, Hello* h) {
  h->party_id = m.party_id();
  h->directory_serial = m.directory_serial();
  h->software = m.software();
  return CheckPartyId(kFrameWhat, "hello.party_id", h->party_id);
}

Status FromProto(const pb::Welcome& m, Welcome* w) {
  w->broker_id = m.broker_id();
  w->directory_serial = m.directory_serial();
  w->max_frame_bytes = m.max_frame_bytes();
  return CheckPartyId(kFrameWhat, "welcome.broker_id", w->broker_id);
}

Status FromProto(const pb::Submit& m, Submit* s) {
  s->envelope = B(m.envelope());
  if (s->envelope.empty()) return FieldError(kFrameWhat, "submit.envelope", "is empty");
  return Status::Ok();
}

Status FromProto(const pb::Deliver& m, Deliver* d) {
  d->envelope = B(m.envelope());
  d->attempt = m.attempt();
  if (d->envelope.empty()) return FieldError(kFrameWhat, "deliver.envelope", "is empty");
  return Status::Ok();
}

Status FromProto(const pb::Ack& m, Ack* a) {
  REFBUS_RETURN_IF_ERROR(CheckSize(kFrameWhat, "ack.message_id", m.message_id(), kMessageIdBytes));
  a->message_id = B(m.message_id());
  a->duplicate = m.duplicate();
  if (m.latest_checkpoint().size() > kMaxAuditNoteBytes) {
    return FieldError(kFrameWhat, "ack.latest_checkpoint", "is over 16 KiB");
  }
  a->latest_checkpoint = m.latest_checkpoint();
  return Status::Ok();
}

Status FromProto(const pb::Nack& m, Nack* n) {
  REFBUS_RETURN_IF_ERROR(
      CheckSizeOrEmpty(kFrameWhat, "nack.message_id", m.message_id(), kMessageIdBytes));
  REFBUS_RETURN_IF_ERROR(
      CheckEnum<NackReason>(kFrameWhat, "nack.reason", m.reason(), pb::NackReason_MAX));
  n->message_id = B(m.message_id());
  n->reason = static_cast<NackReason>(m.reason());
  n->detail = m.detail();
  n->retry_after_ms = m.retry_after_ms();
  return Status::Ok();
}

Status FromProto(const pb::GrantRegister& m, GrantRegister* g) {
  g->signed_grant = B(m.signed_grant());
  if (g->signed_grant.empty())
    return FieldError(kFrameWhat, "grant_register.signed_grant", "is empty");
  return Status::Ok();
}

Status FromProto(const pb::GrantRevoke& m, GrantRevoke* g) {
  g->signed_revocation = B(m.signed_revocation());
  if (g->signed_revocation.empty()) {
    return FieldError(kFrameWhat, "grant_revoke.signed_revocation", "is empty");
  }
  return Status::Ok();
}

Status FromProto(const pb::Attest& m, Attest* a) {
  a->signed_access = B(m.signed_access());
  a->signed_purge = B(m.signed_purge());
  if (a->signed_access.empty() == a->signed_purge.empty()) {
    return FieldError(kFrameWhat, "attest", "must hold exactly one statement");
  }
  return Status::Ok();
}

// ---- Auditor queries and replies ----

Status FromProto(const pb::AuditEntries& m, AuditEntriesQuery* q) {
  q->from_index = m.from_index();
  q->max = m.max();
  if (q->max == 0 || q->max > kMaxAuditEntriesPerReply) {
    return FieldError(kFrameWhat, "audit_entries.max",
                      "must be 1 to " + std::to_string(kMaxAuditEntriesPerReply));
  }
  return Status::Ok();
}

Status FromProto(const pb::AuditProof& m, AuditProofQuery* q) {
  q->index = m.index();
  q->tree_size = m.tree_size();
  if (q->index >= q->tree_size) {
    return FieldError(kFrameWhat, "audit_proof.index", "is not below tree_size");
  }
  return Status::Ok();
}

Status FromProto(const pb::AuditConsistency& m, AuditConsistencyQuery* q) {
  q->old_size = m.old_size();
  q->new_size = m.new_size();
  if (q->old_size > q->new_size) {
    return FieldError(kFrameWhat, "audit_consistency.old_size", "is above new_size");
  }
  return Status::Ok();
}

Status FromProto(const pb::AuditCheckpoints& m, AuditCheckpointsQuery* q) {
  q->from_size = m.from_size();
  q->max = m.max();
  if (q->max == 0 || q->max > kMaxAuditCheckpointsPerReply) {
    return FieldError(kFrameWhat, "audit_checkpoints.max",
                      "must be 1 to " + std::to_string(kMaxAuditCheckpointsPerReply));
  }
  return Status::Ok();
}

// The counts are checked before any element is copied.
Status FromProto(const pb::AuditReply& r, AuditReply* out) {
  if (static_cast<size_t>(r.checkpoints_size()) > kMaxAuditCheckpointsPerReply) {
    return FieldError(kFrameWhat, "audit_reply.checkpoints", "has too many notes");
  }
  if (static_cast<size_t>(r.entries_size()) > kMaxAuditEntriesPerReply) {
    return FieldError(kFrameWhat, "audit_reply.entries", "has too many entries");
  }
  if (static_cast<size_t>(r.hashes_size()) > kMaxAuditProofHashes) {
    return FieldError(kFrameWhat, "audit_reply.hashes", "has too many hashes");
  }
  for (const auto& note : r.checkpoints()) {
    if (note.empty() || note.size() > kMaxAuditNoteBytes) {
      return FieldError(kFrameWhat, "audit_reply.checkpoints", "holds an empty or oversized note");
    }
    out->checkpoints.push_back(note);
  }
  for (const auto& entry : r.entries()) {
    if (entry.empty() || entry.size() > kMaxRecordBytes) {
      return FieldError(kFrameWhat, "audit_reply.entries", "holds an empty or oversized entry");
    }
    out->entries.push_back(B(entry));
  }
  for (const auto& h : r.hashes()) {
    REFBUS_RETURN_IF_ERROR(CheckSize(kFrameWhat, "audit_reply.hashes", h, kAuditHashBytes));
    out->hashes.push_back(B(h));
  }
  out->first_index = r.first_index();
  out->log_size = r.log_size();
  out->more = r.more();
  return Status::Ok();
}

// ---- Witnessing ----

Status FromProto(const pb::WitnessRequest& r, WitnessRequest* out) {
  if (r.checkpoint().empty() || r.checkpoint().size() > kMaxAuditNoteBytes) {
    return FieldError(kFrameWhat, "witness_request.checkpoint", "is empty or over 16 KiB");
  }
  if (static_cast<size_t>(r.consistency_proof_size()) > kMaxAuditProofHashes) {
    return FieldError(kFrameWhat, "witness_request.consistency_proof", "has too many hashes");
  }
  for (const auto& h : r.consistency_proof()) {
    REFBUS_RETURN_IF_ERROR(
        CheckSize(kFrameWhat, "witness_request.consistency_proof", h, kAuditHashBytes));
    out->consistency_proof.push_back(B(h));
  }
  out->checkpoint = r.checkpoint();
  out->old_size = r.old_size();
  return Status::Ok();
}

// A cosignature, or a refusal (with no cosignature).
Status FromProto(const pb::WitnessReply& r, WitnessReply* out) {
  REFBUS_RETURN_IF_ERROR(CheckEnum<WitnessRefusal>(kFrameWhat, "witness_reply.refusal", r.refusal(),
                                                   pb::WitnessRefusal_MAX,
                                                   /*allow_zero=*/true));
  out->refusal = static_cast<WitnessRefusal>(r.refusal());
  if (out->refusal == WitnessRefusal::kNone) {
    if (r.cosignature().empty() || r.cosignature().size() > kMaxCosignatureLineBytes) {
      return FieldError(kFrameWhat, "witness_reply.cosignature",
                        "must hold one cosignature line of at most 1 KiB");
    }
  } else if (!r.cosignature().empty()) {
    return FieldError(kFrameWhat, "witness_reply.cosignature", "is set in a refusal");
  }
  if (r.detail().size() > kMaxWitnessDetailBytes) {
    return FieldError(kFrameWhat, "witness_reply.detail", "is over 4 KiB");
  }
  out->cosignature = r.cosignature();
  out->detail = r.detail();
  out->witness_size = r.witness_size();
  return Status::Ok();
}

Status FromProto(const pb::AddCosignature& m, AddCosignature* out) {
  const std::string& note = m.checkpoint();
  if (note.empty() || note.size() > kMaxAuditNoteBytes) {
    return FieldError(kFrameWhat, "add_cosignature.checkpoint", "is empty or over 16 KiB");
  }
  out->checkpoint = note;
  return Status::Ok();
}

// ---- Linkage evaluation (PROTOCOL.md 13.4): exact sizes ----

// A tally to record, or a proof of an earlier one: never both, never neither.
Status FromProto(const pb::LinkageTally& m, LinkageTallyFrame* out) {
  const std::string& st = m.signed_tally();
  if (!st.empty()) {
    if (st.size() > kMaxSignedTallyBytes) {
      return FieldError(kFrameWhat, "linkage_tally.signed_tally", "is over 4 KiB");
    }
    if (m.entry_index() != 0 || !m.tally_sha256().empty()) {
      return FieldError(kFrameWhat, "linkage_tally",
                        "has a signed tally and an entry to prove (one or the other)");
    }
    out->signed_tally = B(st);
    return Status::Ok();
  }
  if (m.tally_sha256().size() != 32) {
    return FieldError(kFrameWhat, "linkage_tally.tally_sha256",
                      "is not 32 bytes (and there is no signed tally)");
  }
  out->entry_index = m.entry_index();
  out->tally_sha256 = B(m.tally_sha256());
  return Status::Ok();
}

Status FromProto(const pb::LinkageEvaluate& m, LinkageEvaluate* out) {
  if (m.blinded_element().size() != kLinkageElementBytes) {
    return FieldError(kFrameWhat, "linkage_evaluate.blinded_element", "is not 32 bytes");
  }
  out->blinded_element = B(m.blinded_element());
  return Status::Ok();
}

Status FromProto(const pb::LinkageEvaluated& m, LinkageEvaluated* out) {
  if (m.evaluated_element().size() != kLinkageElementBytes) {
    return FieldError(kFrameWhat, "linkage_evaluated.evaluated_element", "is not 32 bytes");
  }
  if (m.proof().size() != kLinkageProofBytes) {
    return FieldError(kFrameWhat, "linkage_evaluated.proof", "is not 64 bytes");
  }
  out->evaluated_element = B(m.evaluated_element());
  out->proof = B(m.proof());
  return Status::Ok();
}

// ---- Relays between brokers ----

// A relay that carries a consent revocation: nothing of an envelope comes with it.
Status RevocationRelayFromProto(const pb::Relay& r, Relay* out) {
  if (r.signed_revocation().size() > kMaxRecordBytes) {
    return FieldError(kFrameWhat, "relay.signed_revocation", "is over the record limit");
  }
  if (!r.envelope().empty() || !r.signed_grant().empty() || r.for_recipients_size() != 0) {
    return FieldError(kFrameWhat, "relay.signed_revocation",
                      "comes with envelope fields (a relay carries one or the other)");
  }
  out->signed_revocation = B(r.signed_revocation());
  out->hops = r.hops();
  if (out->hops > kMaxRelayHops) {
    return FieldError(kFrameWhat, "relay.hops", "is over " + std::to_string(kMaxRelayHops));
  }
  return Status::Ok();
}

// 1..kMaxRecipients valid party ids, none named twice.
Status RelayRecipientsFromProto(const pb::Relay& r, Relay* out) {
  if (r.for_recipients_size() == 0 ||
      static_cast<size_t>(r.for_recipients_size()) > kMaxRecipients) {
    return FieldError(kFrameWhat, "relay.for_recipients",
                      "must name 1 to " + std::to_string(kMaxRecipients) + " recipients");
  }
  for (const auto& id : r.for_recipients()) {
    REFBUS_RETURN_IF_ERROR(CheckPartyId(kFrameWhat, "relay.for_recipients", id));
    if (std::find(out->for_recipients.begin(), out->for_recipients.end(), id) !=
        out->for_recipients.end()) {
      return FieldError(kFrameWhat, "relay.for_recipients", "names " + id + " twice");
    }
    out->for_recipients.push_back(id);
  }
  return Status::Ok();
}

// A relay that carries a published prekey: nothing else comes with it.
Status PrekeyRelayFromProto(const pb::Relay& r, Relay* out) {
  if (r.signed_prekey().size() > kMaxSignedPrekeyBytes) {
    return FieldError(kFrameWhat, "relay.signed_prekey", "is over 1 KiB");
  }
  if (!r.envelope().empty() || !r.signed_grant().empty() || r.for_recipients_size() != 0 ||
      !r.signed_revocation().empty() || r.hops() != 0) {
    return FieldError(kFrameWhat, "relay.signed_prekey",
                      "comes with envelope or revocation fields (a relay carries one thing)");
  }
  out->signed_prekey = B(r.signed_prekey());
  return Status::Ok();
}

Status FromProto(const pb::Relay& r, Relay* out) {
  if (!r.signed_prekey().empty()) return PrekeyRelayFromProto(r, out);
  if (!r.signed_revocation().empty()) return RevocationRelayFromProto(r, out);
  if (r.envelope().empty() || r.envelope().size() > kMaxEnvelopeBytes) {
    return FieldError(kFrameWhat, "relay.envelope", "is empty or over the envelope limit");
  }
  if (r.signed_grant().size() > kMaxRecordBytes) {
    return FieldError(kFrameWhat, "relay.signed_grant", "is over the record limit");
  }
  if (r.hops() > kMaxRelayHops) {
    return FieldError(kFrameWhat, "relay.hops", "is over " + std::to_string(kMaxRelayHops));
  }
  REFBUS_RETURN_IF_ERROR(RelayRecipientsFromProto(r, out));
  out->envelope = B(r.envelope());
  out->signed_grant = B(r.signed_grant());
  out->hops = r.hops();
  return Status::Ok();
}

// ---- The frame: sets f->type from the body's kind and decodes that body ----

Status BodyFromProto(const pb::Frame& m, Frame* f) {
  using T = Frame::Type;
  switch (m.body_case()) {
    case pb::Frame::kHello:
      f->type = T::kHello;
      return FromProto(m.hello(), &f->hello);
    case pb::Frame::kWelcome:
      f->type = T::kWelcome;
      return FromProto(m.welcome(), &f->welcome);
    case pb::Frame::kSubmit:
      f->type = T::kSubmit;
      return FromProto(m.submit(), &f->submit);
    case pb::Frame::kDeliver:
      f->type = T::kDeliver;
      return FromProto(m.deliver(), &f->deliver);
    case pb::Frame::kAck:
      f->type = T::kAck;
      return FromProto(m.ack(), &f->ack);
    case pb::Frame::kNack:
      f->type = T::kNack;
      return FromProto(m.nack(), &f->nack);
    case pb::Frame::kDirectoryFetch:
      f->type = T::kDirectoryFetch;
      f->directory_fetch.have_serial = m.directory_fetch().have_serial();
      return Status::Ok();
    case pb::Frame::kDirectoryReply:
      f->type = T::kDirectoryReply;
      f->directory_reply.signed_directory = B(m.directory_reply().signed_directory());
      return Status::Ok();
    case pb::Frame::kGrantRegister:
      f->type = T::kGrantRegister;
      return FromProto(m.grant_register(), &f->grant_register);
    case pb::Frame::kGrantRevoke:
      f->type = T::kGrantRevoke;
      return FromProto(m.grant_revoke(), &f->grant_revoke);
    case pb::Frame::kAttest:
      f->type = T::kAttest;
      return FromProto(m.attest(), &f->attest);
    case pb::Frame::kAuditCheckpoint:
      f->type = T::kAuditCheckpoint;
      return Status::Ok();
    case pb::Frame::kAuditEntries:
      f->type = T::kAuditEntries;
      return FromProto(m.audit_entries(), &f->audit_entries);
    case pb::Frame::kAuditProof:
      f->type = T::kAuditProof;
      return FromProto(m.audit_proof(), &f->audit_proof);
    case pb::Frame::kAuditConsistency:
      f->type = T::kAuditConsistency;
      return FromProto(m.audit_consistency(), &f->audit_consistency);
    case pb::Frame::kAuditCheckpoints:
      f->type = T::kAuditCheckpoints;
      return FromProto(m.audit_checkpoints(), &f->audit_checkpoints);
    case pb::Frame::kAuditReply:
      f->type = T::kAuditReply;
      return FromProto(m.audit_reply(), &f->audit_reply);
    case pb::Frame::kWitnessRequest:
      f->type = T::kWitnessRequest;
      return FromProto(m.witness_request(), &f->witness_request);
    case pb::Frame::kWitnessReply:
      f->type = T::kWitnessReply;
      return FromProto(m.witness_reply(), &f->witness_reply);
    case pb::Frame::kAddCosignature:
      f->type = T::kAddCosignature;
      return FromProto(m.add_cosignature(), &f->add_cosignature);
    case pb::Frame::kRelay:
      f->type = T::kRelay;
      return FromProto(m.relay(), &f->relay);
    case pb::Frame::kPrekeyUpdate: {
      f->type = T::kPrekeyUpdate;
      const std::string& sp = m.prekey_update().signed_prekey();
      if (sp.empty() || sp.size() > kMaxSignedPrekeyBytes) {
        return FieldError(kFrameWhat, "prekey_update.signed_prekey", "is empty or over 1 KiB");
      }
      f->prekey_update.signed_prekey = B(sp);
      return Status::Ok();
    }
    case pb::Frame::kRosterUpdate: {
      f->type = T::kRosterUpdate;
      const std::string& sr = m.roster_update().signed_roster();
      if (sr.empty() || sr.size() > kMaxSignedRosterBytes) {
        return FieldError(kFrameWhat, "roster_update.signed_roster", "is empty or over 48 KiB");
      }
      f->roster_update.signed_roster = B(sr);
      return Status::Ok();
    }
    case pb::Frame::kLinkageTally:
      f->type = T::kLinkageTally;
      return FromProto(m.linkage_tally(), &f->linkage_tally);
    case pb::Frame::kLinkageEvaluate:
      f->type = T::kLinkageEvaluate;
      return FromProto(m.linkage_evaluate(), &f->linkage_evaluate);
    case pb::Frame::kLinkageEvaluated:
      f->type = T::kLinkageEvaluated;
      return FromProto(m.linkage_evaluated(), &f->linkage_evaluated);
    case pb::Frame::BODY_NOT_SET:
      return FieldError(kFrameWhat, "body", "is missing");
  }
  return Status::Ok();
}

Result<Frame> FromProto(const pb::Frame& m) {
  Frame f;
  f.version = m.version();
  f.request_id = m.request_id();
  if (f.version != 1) {
    return FieldError(kFrameWhat, "version", "is " + std::to_string(f.version) + ", expected 1");
  }
  REFBUS_RETURN_IF_ERROR(BodyFromProto(m, &f));
  return f;
}

// ---- Bodies: domain -> proto ----

void ToProto(const Hello& h, pb::Hello* m) {
  m->set_party_id(h.party_id);
  m->set_directory_serial(h.directory_serial);
  m->set_software(h.software);
}

void ToProto(const Welcome& w, pb::Welcome* m) {
  m->set_broker_id(w.broker_id);
  m->set_directory_serial(w.directory_serial);
  m->set_max_frame_bytes(w.max_frame_bytes);
}

void ToProto(const Nack& n, pb::Nack* m) {
  m->set_message_id(S(n.message_id));
  m->set_reason(static_cast<pb::NackReason>(n.reason));
  m->set_detail(n.detail);
  m->set_retry_after_ms(n.retry_after_ms);
}

void ToProto(const AuditReply& r, pb::AuditReply* m) {
  for (const auto& note : r.checkpoints) m->add_checkpoints(note);
  for (const auto& e : r.entries) m->add_entries(S(e));
  for (const auto& h : r.hashes) m->add_hashes(S(h));
  m->set_first_index(r.first_index);
  m->set_log_size(r.log_size);
  m->set_more(r.more);
}

void ToProto(const WitnessRequest& r, pb::WitnessRequest* m) {
  m->set_checkpoint(r.checkpoint);
  m->set_old_size(r.old_size);
  for (const auto& h : r.consistency_proof) m->add_consistency_proof(S(h));
}

void ToProto(const WitnessReply& r, pb::WitnessReply* m) {
  m->set_cosignature(r.cosignature);
  m->set_refusal(static_cast<pb::WitnessRefusal>(r.refusal));
  m->set_detail(r.detail);
  m->set_witness_size(r.witness_size);
}

void ToProto(const Relay& r, pb::Relay* m) {
  m->set_envelope(S(r.envelope));
  m->set_signed_grant(S(r.signed_grant));
  m->set_hops(r.hops);
  for (const auto& id : r.for_recipients) m->add_for_recipients(id);
  m->set_signed_revocation(S(r.signed_revocation));
  m->set_signed_prekey(S(r.signed_prekey));
}

// Bodies of one or two fields are set here; the larger ones have their own ToProto.
void BodyToProto(const Frame& f, pb::Frame* m) {
  using T = Frame::Type;
  switch (f.type) {
    case T::kHello:
      ToProto(f.hello, m->mutable_hello());
      break;
    case T::kWelcome:
      ToProto(f.welcome, m->mutable_welcome());
      break;
    case T::kSubmit:
      m->mutable_submit()->set_envelope(S(f.submit.envelope));
      break;
    case T::kDeliver:
      m->mutable_deliver()->set_envelope(S(f.deliver.envelope));
      m->mutable_deliver()->set_attempt(f.deliver.attempt);
      break;
    case T::kAck:
      m->mutable_ack()->set_message_id(S(f.ack.message_id));
      m->mutable_ack()->set_duplicate(f.ack.duplicate);
      m->mutable_ack()->set_latest_checkpoint(f.ack.latest_checkpoint);
      break;
    case T::kNack:
      ToProto(f.nack, m->mutable_nack());
      break;
    case T::kDirectoryFetch:
      m->mutable_directory_fetch()->set_have_serial(f.directory_fetch.have_serial);
      break;
    case T::kDirectoryReply:
      m->mutable_directory_reply()->set_signed_directory(S(f.directory_reply.signed_directory));
      break;
    case T::kGrantRegister:
      m->mutable_grant_register()->set_signed_grant(S(f.grant_register.signed_grant));
      break;
    case T::kGrantRevoke:
      m->mutable_grant_revoke()->set_signed_revocation(S(f.grant_revoke.signed_revocation));
      break;
    case T::kAttest:
      m->mutable_attest()->set_signed_access(S(f.attest.signed_access));
      m->mutable_attest()->set_signed_purge(S(f.attest.signed_purge));
      break;
    case T::kAuditCheckpoint:
      m->mutable_audit_checkpoint();  // an empty body: its presence is the request
      break;
    case T::kAuditEntries:
      m->mutable_audit_entries()->set_from_index(f.audit_entries.from_index);
      m->mutable_audit_entries()->set_max(f.audit_entries.max);
      break;
    case T::kAuditProof:
      m->mutable_audit_proof()->set_index(f.audit_proof.index);
      m->mutable_audit_proof()->set_tree_size(f.audit_proof.tree_size);
      break;
    case T::kAuditConsistency:
      m->mutable_audit_consistency()->set_old_size(f.audit_consistency.old_size);
      m->mutable_audit_consistency()->set_new_size(f.audit_consistency.new_size);
      break;
    case T::kAuditCheckpoints:
      m->mutable_audit_checkpoints()->set_from_size(f.audit_checkpoints.from_size);
      m->mutable_audit_checkpoints()->set_max(f.audit_checkpoints.max);
      break;
    case T::kAuditReply:
      ToProto(f.audit_reply, m->mutable_audit_reply());
      break;
    case T::kWitnessRequest:
      ToProto(f.witness_request, m->mutable_witness_request());
      break;
    case T::kWitnessReply:
      ToProto(f.witness_reply, m->mutable_witness_reply());
      break;
    case T::kAddCosignature:
      m->mutable_add_cosignature()->set_checkpoint(f.add_cosignature.checkpoint);
      break;
    case T::kRelay:
      ToProto(f.relay, m->mutable_relay());
      break;
    case T::kPrekeyUpdate:
      m->mutable_prekey_update()->set_signed_prekey(S(f.prekey_update.signed_prekey));
      break;
    case T::kRosterUpdate:
      m->mutable_roster_update()->set_signed_roster(S(f.roster_update.signed_roster));
      break;
    case T::kLinkageTally:
      m->mutable_linkage_tally()->set_signed_tally(S(f.linkage_tally.signed_tally));
      m->mutable_linkage_tally()->set_entry_index(f.linkage_tally.entry_index);
      m->mutable_linkage_tally()->set_tally_sha256(S(f.linkage_tally.tally_sha256));
      break;
    case T::kLinkageEvaluate:
      m->mutable_linkage_evaluate()->set_blinded_element(S(f.linkage_evaluate.blinded_element));
      break;
    case T::kLinkageEvaluated:
      m->mutable_linkage_evaluated()->set_evaluated_element(
          S(f.linkage_evaluated.evaluated_element));
      m->mutable_linkage_evaluated()->set_proof(S(f.linkage_evaluated.proof));
      break;
  }
}

pb::Frame ToProto(const Frame& f) {
  pb::Frame m;
  m.set_version(f.version);
  m.set_request_id(f.request_id);
  BodyToProto(f, &m);
  return m;
}

}  // namespace

Result<Frame> DecodeFrame(ByteView bytes) {
  pb::Frame m;
  REFBUS_RETURN_IF_ERROR(Parse(m, bytes, kMaxFrameBytes, "frame"));
  return FromProto(m);
}

Bytes EncodeFrame(const Frame& frame) { return Serialize(ToProto(frame)); }

uint64_t PeekRequestId(ByteView bytes) {
  using google::protobuf::internal::WireFormatLite;
  if (bytes.size() > kMaxFrameBytes) return 0;
  google::protobuf::io::CodedInputStream in(bytes.data(), static_cast<int>(bytes.size()));
  constexpr uint32_t kRequestIdTag =
      (2u << 3) | static_cast<uint32_t>(WireFormatLite::WIRETYPE_VARINT);  // Frame.request_id
  uint64_t id = 0;
  for (uint32_t tag = in.ReadTag(); tag != 0; tag = in.ReadTag()) {
    if (tag == kRequestIdTag) {
      if (!in.ReadVarint64(&id)) return 0;
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return 0;
    }
  }
  return in.ConsumedEntireMessage() ? id : 0;
}

}  // namespace refbus::schema
