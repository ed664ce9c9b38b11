// Engine: the inbox. Each delivered message is opened, checked against its grant, and
// handed to the handler of its kind (in the workflow files); a message that fails is
// refused and the refusal recorded on its case. Also the inbox commands: Inbox and Open.
#include <spdlog/spdlog.h>

#include "agent/engine_impl.h"
#include "agent/engine_requests.h"
#include "keys/consent.h"
#include "keys/crypto.h"
#include "schema/codec.h"

namespace refbus::agent {

using schema::CaseMessage;

GrantLookup Engine::Impl::Lookup(const CaseStore::Txn& txn) {
  return [this, &txn](ByteView id) -> std::optional<KnownGrant> {
    auto g = LoadGrant(txn, id);
    if (!g.ok()) return std::nullopt;
    return *g;
  };
}

Status Engine::Impl::ProcessInbox() {
  for (;;) {
    REFBUS_ASSIGN_OR_RETURN(auto txn, case_store->Begin(true));
    REFBUS_ASSIGN_OR_RETURN(auto meta, Load<SeqRecord>(txn, "processed_seq"));
    uint64_t done = meta ? meta->seq : 0;
    REFBUS_ASSIGN_OR_RETURN(auto records, transport_store->ReadInbox(done, 32));
    if (records.empty()) return Status::Ok();
    for (const auto& r : records) {
      REFBUS_RETURN_IF_ERROR(ProcessOne(txn, r));
      done = r.sequence;
    }
    REFBUS_RETURN_IF_ERROR(Save(txn, "processed_seq", SeqRecord{done}));
    REFBUS_RETURN_IF_ERROR(txn.Commit());
    FlushAfterCommit();
    REFBUS_RETURN_IF_ERROR(RunPendingPurges());
  }
}

Status Engine::Impl::Refuse(CaseStore::Txn& txn, MessageRecord& msg, const std::string& case_ref,
                            const std::string& why) {
  msg.status = MessageStatus::kRefused;
  msg.refusal = why;
  spdlog::warn("agent {}: refused message {} from {}: {}", me(), msg.message_id,
               msg.from.value_or(""), why);
  if (!case_ref.empty() && schema::IsValidCaseRef(case_ref)) {
    REFBUS_ASSIGN_OR_RETURN(CaseRecord c, LoadCase(txn, case_ref));
    RefusalNote n;
    n.by = me();
    n.message_id = msg.message_id;
    n.from = msg.from.value_or("");
    n.kind = msg.kind.value_or("");
    n.reason = why;
    n.at_ms = Now();
    c.refusals.push_back(std::move(n));
    REFBUS_RETURN_IF_ERROR(Save(txn, case_ref, c));
  }
  return Status::Ok();
}

Status Engine::Impl::ProcessOne(CaseStore::Txn& txn, const InboxRecord& r) {
  MessageRecord msg;
  msg.message_id = HexEncode(r.message_id);
  msg.received_at_ms = r.received_ms;
  if (r.purged) {
    msg.status = MessageStatus::kPurged;
    return Save(txn, msg.message_id, msg);
  }
  auto envelope = EnvelopeOf(r);
  if (!envelope.ok()) {
    if (envelope.status().code() == Status::Code::kFailedPrecondition) {
      // Kept sealed under a grant whose data was purged since: nothing left to open.
      msg.status = MessageStatus::kPurged;
      return Save(txn, msg.message_id, msg);
    }
    if (envelope.status().code() == Status::Code::kIoError) return envelope.status();
    REFBUS_RETURN_IF_ERROR(Refuse(txn, msg, "", envelope.status().message()));
    return Save(txn, msg.message_id, msg);
  }
  auto decoded = schema::DecodeEnvelope(*envelope);
  if (decoded.ok()) {
    msg.from = decoded->header.sender_id;
    msg.kind = std::string(schema::Name(decoded->header.kind));
    msg.case_ref = decoded->header.case_ref;
    msg.grant_id = HexEncode(decoded->header.consent_grant_id);
  }
  std::string case_ref = decoded.ok() ? decoded->header.case_ref : "";
  if (decoded.ok() && decoded->header.consent_grant_id.empty() &&
      decoded->header.kind == schema::MessageKind::kDeletionWatchList) {
    return ProcessWatchListMessage(txn, *envelope, msg);
  }
  auto opened = OpenCase(identity, *envelope, dir(), Lookup(txn), Now());
  if (!opened.ok()) {
    // Sealed to a prekey this process does not hold (yet): it waits, and is retried once
    // the key file has been read again; it is not refused for a key rotation.
    if (auto fp = MissingPrekey(*envelope)) {
      msg.status = MessageStatus::kWaitingPrekey;
      msg.waiting_for = *fp;
      if (waiting_prekey.emplace(r.sequence, msg.message_id).second) {
        spdlog::warn(
            "agent {}: message {} from {} is sealed to prekey {}, which this agency "
            "does not hold yet: it waits, and is retried when the key file is read "
            "again",
            me(), msg.message_id, msg.from.value_or(""), *fp);
        keys_stale = true;
      }
      return Save(txn, msg.message_id, msg);
    }
    REFBUS_RETURN_IF_ERROR(Refuse(txn, msg, case_ref, opened.status().message()));
    return Save(txn, msg.message_id, msg);
  }
  NoteOperatorSignature(opened->message, msg);
  Status s = Apply(txn, *opened, msg);
  if (!s.ok()) {
    if (s.code() == Status::Code::kInternal || s.code() == Status::Code::kIoError) return s;
    REFBUS_RETURN_IF_ERROR(Refuse(txn, msg, case_ref, s.message()));
  }
  return Save(txn, msg.message_id, msg);
}

void Engine::Impl::NoteOperatorSignature(const CaseMessage& m, MessageRecord& msg) {
  const auto& sig = m.operator_signature;
  if (!sig) return;
  msg.operator_ref = sig->operator_ref;
  msg.operator_key = keys::Fingerprint(keys::KeyId(keys::KeyUse::kSigning, sig->public_key));
  const bool ok = keys::VerifyOperatorSignature(keys::OperatorAction::kCaseMessage,
                                                m.operator_signed_bytes, *sig);
  msg.operator_signature = ok ? "verifies" : "INVALID";
  if (!ok) {
    spdlog::warn(
        "agent: message {} names operator {} with a signature that does not verify; "
        "kept, marked INVALID (the sending agency's own signature holds)",
        msg.message_id, sig->operator_ref);
  }
}

Status Engine::Impl::VerifyStatementFrom(const schema::SignedStatement& st,
                                         keys::StatementType type, const std::string& signer,
                                         UnixMillis signed_at) {
  return keys::VerifyStatement(st, type, signer, signed_at, dir(), Now());
}

Status Engine::Impl::Apply(CaseStore::Txn& txn, const OpenedCase& oc, MessageRecord& msg) {
  switch (oc.message.type) {
    case CaseMessage::Type::kReferral:
      return OnReferral(txn, oc, msg);
    case CaseMessage::Type::kStateChange:
      return OnStateChange(txn, oc);
    case CaseMessage::Type::kHandoff:
      return OnHandoff(txn, oc, msg);
    case CaseMessage::Type::kHandoffAck:
      return OnHandoffAck(txn, oc);
    case CaseMessage::Type::kDeletionRequest:
      return OnDeletionRequest(txn, oc, msg);
    case CaseMessage::Type::kDeletionStatus:
      return OnDeletionStatus(txn, oc, msg);
    case CaseMessage::Type::kAccessNotice:
      return OnAccessNotice(txn, oc);
    case CaseMessage::Type::kConsentRevocation:
      return OnRevocation(txn, oc);
    case CaseMessage::Type::kPurgeConfirmation:
      return OnPurgeConfirmation(txn, oc);
    case CaseMessage::Type::kCaseClosed:
      return OnCaseClosed(txn, oc);
    case CaseMessage::Type::kLinkageEntry:
      return OnLinkageEntry(txn, oc, msg);
    case CaseMessage::Type::kLinkageNotice:
      return OnLinkageNotice(txn, oc, msg);
    case CaseMessage::Type::kLinkageTally:
      return OnLinkageTally(txn, oc, msg);
    case CaseMessage::Type::kDeletionWatchList:  // never under a grant (OpenCase refuses)
      return PermissionDenied("a deletion watch list travels under no grant");
  }
  return Status::Ok();
}

// Another agency opened a message this agency sent: its signed access record.
Status Engine::Impl::OnAccessNotice(CaseStore::Txn& txn, const OpenedCase& oc) {
  const std::string& from = oc.envelope.header.sender_id;
  const CaseMessage& m = oc.message;
  REFBUS_ASSIGN_OR_RETURN(auto rec, schema::DecodeAccessRecord(m.statement.statement));
  if (rec.agency_id != from || rec.owner_agency != me()) {
    return PermissionDenied("access notice about " + rec.agency_id + " sent by " + from);
  }
  REFBUS_RETURN_IF_ERROR(
      VerifyStatementFrom(m.statement, keys::StatementType::kAccessRecord, from, rec.opened_at_ms));
  REFBUS_ASSIGN_OR_RETURN(CaseRecord c, LoadCase(txn, rec.case_ref));
  AccessNoticeNote note{HexEncode(rec.message_id),
                        rec.agency_id,
                        rec.operator_ref,
                        rec.opened_at_ms,
                        std::string(schema::Name(rec.kind)),
                        "none",
                        ""};
  if (const auto& sig = m.statement.operator_signature) {
    note.operator_key = keys::Fingerprint(keys::KeyId(keys::KeyUse::kSigning, sig->public_key));
    const bool ok = sig->operator_ref == rec.operator_ref &&
                    keys::VerifyOperatorSignature(keys::OperatorAction::kAccessRecord,
                                                  m.statement.statement, *sig);
    note.operator_signature = ok ? "verifies" : "INVALID";
    if (!ok) {
      spdlog::warn(
          "agent {}: the access notice from {} names operator {} with a signature "
          "that does not verify; kept, marked INVALID",
          me(), from, rec.operator_ref);
    }
  }
  c.access_notices.push_back(std::move(note));
  return Save(txn, rec.case_ref, c);
}

Status Engine::Impl::RecordAccess(CaseStore::Txn& txn, const schema::AccessRecord& ar,
                                  const KnownGrant& grant, schema::Purpose purpose) {
  schema::SignedStatement st = keys::SignStatement(identity, keys::StatementType::kAccessRecord,
                                                   schema::EncodeAccessRecord(ar));
  st.operator_signature =
      SignAsOperator(keys::OperatorAction::kAccessRecord, st.statement, ar.operator_ref);
  Bytes st_bytes = schema::EncodeSignedStatement(st);
  schema::Frame f;
  f.type = schema::Frame::Type::kAttest;
  f.attest.signed_access = st_bytes;
  REFBUS_RETURN_IF_ERROR(
      QueueControl(txn, StatementId(st_bytes), f, "access-attestation", ar.case_ref));
  if (ar.owner_agency == me()) return Status::Ok();
  CaseMessage notice;
  notice.type = CaseMessage::Type::kAccessNotice;
  notice.statement = std::move(st);
  auto sent = SendCase(txn, grant, std::move(notice), {ar.owner_agency}, purpose, "access-notice");
  if (!sent.ok()) {
    spdlog::warn("agent {}: no access notice to {} for {}: {}", me(), ar.owner_agency,
                 HexEncode(ar.message_id), sent.status().message());
  }
  return Status::Ok();
}

// ---- commands ----

Result<Json> Engine::Inbox() {
  REFBUS_ASSIGN_OR_RETURN(auto txn, impl_->case_store->Begin(false));
  REFBUS_ASSIGN_OR_RETURN(auto all, LoadAll<MessageRecord>(txn));
  std::vector<MessageRecord> messages;
  for (auto& [key, rec] : all) messages.push_back(std::move(rec));
  return InboxJson(std::move(messages));
}

namespace {

Status OpenableOrWhyNot(const MessageRecord& msg) {
  if (msg.status == MessageStatus::kPurged) {
    return FailedPrecondition("message " + msg.message_id +
                              " was purged when its consent was revoked; it cannot be opened");
  }
  if (msg.status == MessageStatus::kWaitingPrekey) {
    return Unavailable("message " + msg.message_id + " is waiting for prekey " +
                       msg.waiting_for.value_or("") +
                       ", which this agency's key file does not hold yet; it opens once the "
                       "key file has it (the agent reads it again on SIGHUP and while "
                       "messages wait)");
  }
  if (msg.status == MessageStatus::kRefused) {
    return FailedPrecondition("message " + msg.message_id + " was refused on arrival (" +
                              msg.refusal.value_or("") + "); it is not opened");
  }
  return Status::Ok();
}

}  // namespace

Result<Json> Engine::Open(const std::string& message_id, const Json& body) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(OpenRequest req, ParseOpenRequest(message_id, body));
  const Bytes& mid = req.message_id;
  std::string key = HexEncode(mid);
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(auto rec, Load<MessageRecord>(txn, key));
  if (!rec) return NotFound("no message " + key + " in the inbox (refbus-agent inbox)");
  MessageRecord& msg = *rec;
  REFBUS_RETURN_IF_ERROR(OpenableOrWhyNot(msg));
  REFBUS_ASSIGN_OR_RETURN(InboxRecord ir, d.transport_store->GetInbox(mid));
  if (ir.purged) return FailedPrecondition("message " + key + " was purged");
  REFBUS_ASSIGN_OR_RETURN(Bytes envelope, d.EnvelopeOf(ir));
  REFBUS_ASSIGN_OR_RETURN(OpenedCase oc,
                          OpenCase(d.identity, envelope, d.dir(), d.Lookup(txn), Impl::Now()));
  const auto& h = oc.envelope.header;
  // The access record: signed, to the broker's audit log and to the sender.
  schema::AccessRecord ar{mid,         h.case_ref,         d.me(), req.operator_ref,
                          Impl::Now(), h.consent_grant_id, h.kind, h.sender_id};
  KnownGrant grant{oc.grant, false};
  if (auto k = d.LoadGrant(txn, h.consent_grant_id); k.ok() && *k) grant = **k;
  REFBUS_RETURN_IF_ERROR(d.RecordAccess(txn, ar, grant, h.purpose));
  msg.opened = true;
  msg.opened_by = req.operator_ref;
  msg.opened_at_ms = ar.opened_at_ms;
  REFBUS_RETURN_IF_ERROR(Save(txn, key, msg));
  TimelineEvent ev = Event("opened");
  ev.message_id = key;
  ev.operator_ref = req.operator_ref;
  REFBUS_RETURN_IF_ERROR(d.Timeline(txn, h.case_ref, std::move(ev)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return OpenedJson(key, h, oc.message);
}

}  // namespace refbus::agent
