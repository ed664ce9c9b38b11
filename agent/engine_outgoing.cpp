// Engine: sealing and queueing for the broker, and the broker's answers (engine_impl.h).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "agent/engine_impl.h"
#include "core/hash.h"
#include "schema/codec.h"

namespace refbus::agent {

Bytes StatementId(ByteView signed_statement) {
  Bytes h = Sha256(signed_statement);
  h.resize(16);
  return h;
}

Result<Bytes> Engine::Impl::SendCase(CaseStore::Txn& txn, const KnownGrant& grant,
                                     schema::CaseMessage message, std::vector<std::string> to,
                                     schema::Purpose purpose, const std::string& what) {
  SignCaseMessage(message);
  SealCaseRequest req;
  req.message = std::move(message);
  req.recipients = std::move(to);
  req.purpose = purpose;
  req.now = Now();
  req.lifetime_ms = options.message_lifetime_ms;
  req.published = published;
  REFBUS_ASSIGN_OR_RETURN(Bytes env, SealCase(identity, dir(), grant, req));
  return QueueEnvelope(txn, std::move(env), req.recipients, what);
}

Result<Bytes> Engine::Impl::QueueEnvelope(CaseStore::Txn& txn, Bytes env,
                                          const std::vector<std::string>& to,
                                          const std::string& what) {
  REFBUS_ASSIGN_OR_RETURN(schema::SealedEnvelope decoded, schema::DecodeEnvelope(env));
  std::string mid = HexEncode(decoded.header.message_id);
  OutgoingRecord out;
  REFBUS_ASSIGN_OR_RETURN(out.seq, NextOutgoingSeq(txn));
  out.kind = std::string(schema::Name(decoded.header.kind));
  out.what = what;
  out.case_ref = decoded.header.case_ref;
  out.to = to;
  out.status = OutgoingStatus::kQueued;
  out.envelope = std::move(env);
  REFBUS_RETURN_IF_ERROR(Save(txn, mid, out));
  return decoded.header.message_id;
}

namespace {

// The operator a case message names (nullptr for a deletion status report, which names
// none, and for the signed statements, whose operator signature is inside them).
const std::string* OperatorRefOf(const schema::CaseMessage& m, bool* signable) {
  using T = schema::CaseMessage::Type;
  *signable = true;
  switch (m.type) {
    case T::kReferral:
      return &m.referral.operator_ref;
    case T::kStateChange:
      return &m.state_change.operator_ref;
    case T::kHandoff:
      return &m.handoff.operator_ref;
    case T::kHandoffAck:
      return &m.handoff_ack.operator_ref;
    case T::kDeletionRequest:
      return &m.deletion_request.operator_ref;
    case T::kCaseClosed:
      return &m.case_closed.operator_ref;
    case T::kLinkageEntry:
      return &m.linkage_entry.operator_ref;
    case T::kLinkageNotice:
      return nullptr;
    case T::kLinkageTally:
      return &m.linkage_tally.operator_ref;
    case T::kDeletionStatus:
      return nullptr;
    case T::kAccessNotice:
    case T::kConsentRevocation:
    case T::kPurgeConfirmation:
    case T::kDeletionWatchList:  // the agency's own list, signed inside by its key
      break;
  }
  *signable = false;
  return nullptr;
}

}  // namespace

void Engine::Impl::SignCaseMessage(schema::CaseMessage& m) const {
  m.operator_signature.reset();
  bool signable = false;
  const std::string* named = OperatorRefOf(m, &signable);
  if (!acting || !signable) return;
  const std::string& name = named ? *named : acting->name();
  m.operator_signature =
      SignAsOperator(keys::OperatorAction::kCaseMessage, schema::EncodeCaseMessageBody(m), name);
}

// Outgoing items are handed to the client in the order they were queued: a grant's
// registration before the referral sent under it.
Result<uint64_t> Engine::Impl::NextOutgoingSeq(CaseStore::Txn& txn) {
  REFBUS_ASSIGN_OR_RETURN(auto m, Load<SeqRecord>(txn, "out_seq"));
  SeqRecord next{m ? m->seq + 1 : 1};
  REFBUS_RETURN_IF_ERROR(Save(txn, "out_seq", next));
  return next.seq;
}

Status Engine::Impl::QueueControl(CaseStore::Txn& txn, const Bytes& id, const schema::Frame& frame,
                                  const std::string& what, const std::string& case_ref) {
  OutgoingRecord out;
  REFBUS_ASSIGN_OR_RETURN(out.seq, NextOutgoingSeq(txn));
  out.kind = kControlKind;
  out.what = what;
  out.case_ref = case_ref;
  out.status = OutgoingStatus::kQueued;
  out.frame = schema::EncodeFrame(frame);
  return Save(txn, HexEncode(id), out);
}

Status Engine::Impl::FlushOutgoing() {
  REFBUS_ASSIGN_OR_RETURN(auto txn, case_store->Begin(false));
  REFBUS_ASSIGN_OR_RETURN(auto all, LoadAll<OutgoingRecord>(txn));
  std::stable_sort(all.begin(), all.end(),
                   [](const auto& a, const auto& b) { return a.second.seq < b.second.seq; });
  for (const auto& [key, rec] : all) {
    if (rec.status != OutgoingStatus::kQueued || handed.count(key) != 0) continue;
    REFBUS_ASSIGN_OR_RETURN(Bytes id, HexDecode(key));
    if (rec.kind == kControlKind) {
      if (!rec.frame) return Malformed("outgoing control item " + key + " has no frame");
      REFBUS_ASSIGN_OR_RETURN(schema::Frame f, schema::DecodeFrame(*rec.frame));
      Status s = client->SubmitControl(id, f);
      if (!s.ok() && s.code() != Status::Code::kAlreadyExists) return s;
    } else {
      if (!rec.envelope) return Malformed("outgoing message " + key + " has no envelope");
      auto r = client->Submit(*rec.envelope);
      if (!r.ok() && r.status().code() != Status::Code::kAlreadyExists) return r.status();
    }
    handed.insert(key);
  }
  return Status::Ok();
}

// Failures are logged: what is queued in the case store is handed over again by the
// next start (FlushOutgoing at Create).
void Engine::Impl::FlushAfterCommit() {
  Status s = FlushOutgoing();
  if (!s.ok()) spdlog::error("agent {}: queueing for the broker failed: {}", me(), s.ToString());
}

Status Engine::Impl::OnAnswer(const ClientEvent& ev) {
  std::string key = HexEncode(ev.message_id);
  REFBUS_ASSIGN_OR_RETURN(auto txn, case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(auto rec, Load<OutgoingRecord>(txn, key));
  if (!rec) {
    // A control frame with no record of its own (a prekey, the operator roster).
    if (ev.type == ClientEvent::Type::kRefused) {
      spdlog::error("agent {}: the broker refused control frame {}: {} ({})", me(), key,
                    schema::Name(ev.reason), ev.detail);
    }
    return Status::Ok();
  }
  OutgoingRecord& r = *rec;
  r.envelope.reset();
  r.frame.reset();
  if (ev.type == ClientEvent::Type::kAcked) {
    r.status = OutgoingStatus::kAcked;
    if (r.what == "grant-registration") {
      if (auto g = Load<GrantRecord>(txn, key); g.ok() && *g) {
        (*g)->registered = true;
        REFBUS_RETURN_IF_ERROR(Save(txn, key, **g));
      }
    }
  } else {
    r.status = OutgoingStatus::kRefused;
    r.reason = std::string(schema::Name(ev.reason));
    r.detail = ev.detail;
    spdlog::warn("agent {}: the broker refused {} {} for case {}: {} ({})", me(),
                 r.what.empty() ? "message" : r.what, key, r.case_ref, schema::Name(ev.reason),
                 ev.detail);
    if (!r.case_ref.empty()) {
      REFBUS_ASSIGN_OR_RETURN(CaseRecord c, LoadCase(txn, r.case_ref));
      RefusalNote n;
      n.by = "broker";
      n.what = r.what;
      n.id = key;
      n.reason = std::string(schema::Name(ev.reason));
      n.detail = ev.detail;
      n.at_ms = Now();
      c.refusals.push_back(std::move(n));
      REFBUS_RETURN_IF_ERROR(Save(txn, r.case_ref, c));
    }
  }
  REFBUS_RETURN_IF_ERROR(Save(txn, key, r));
  return txn.Commit();
}

}  // namespace refbus::agent
