#include "tests/fuzz/checks.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "keys/checkpoint.h"
#include "keys/consent.h"
#include "keys/crypto.h"
#include "keys/directory.h"
#include "keys/envelope.h"
#include "schema/codec.h"
#include "schema/workflow.h"
#include "tests/fuzz/fixtures.h"

namespace refbus::fuzz {
namespace {

using schema::Party;

std::string Str(const Status& s) { return s.ToString(); }

// decode(encode(v)) decodes, and encodes to the same bytes.
template <typename T>
void RoundTrip(const T& v, Result<T> (*decode)(ByteView), Bytes (*encode)(const T&),
               std::string_view what) {
  const Bytes once = encode(v);
  Result<T> again = decode(once);
  FUZZ_CHECK(again.ok(),
             std::string(what) + ": its re-encoding does not decode: " + Str(again.status()));
  FUZZ_CHECK(encode(*again) == once,
             std::string(what) + ": decode -> encode -> decode -> encode changed the bytes");
}

// The same for a signed wrapper: also, the signed bytes come back byte for byte, occur in
// the input verbatim, and decode on their own to what the wrapper decoded.
template <typename W, typename I>
void SignedRoundTrip(ByteView in, const W& w, const Bytes W::*signed_bytes, const I W::*inner,
                     Result<W> (*decode)(ByteView), Bytes (*encode)(const W&),
                     Result<I> (*decode_inner)(ByteView), Bytes (*encode_inner)(const I&),
                     std::string_view what) {
  const Bytes& sb = w.*signed_bytes;
  FUZZ_CHECK(Contains(in, sb), std::string(what) + ": the signed bytes are not in the input");
  Result<I> alone = decode_inner(sb);
  FUZZ_CHECK(alone.ok(), std::string(what) + ": the signed bytes do not decode on their own: " +
                             Str(alone.status()));
  FUZZ_CHECK(encode_inner(*alone) == encode_inner(w.*inner),
             std::string(what) + ": the decoded inner object differs from its signed bytes");
  const Bytes once = encode(w);
  Result<W> again = decode(once);
  FUZZ_CHECK(again.ok(),
             std::string(what) + ": its re-encoding does not decode: " + Str(again.status()));
  FUZZ_CHECK((*again).*signed_bytes == sb,
             std::string(what) + ": the signed bytes changed through a re-encoding");
  FUZZ_CHECK(encode(*again) == once,
             std::string(what) + ": decode -> encode -> decode -> encode changed the bytes");
}

Bytes Flip(Bytes b, size_t at) {
  if (!b.empty()) b[at % b.size()] ^= 0x01;
  return b;
}

bool ValidId(std::string_view id) { return schema::IsValidPartyId(id); }

// ---- Directory contract ----------------------------------------------------------------

void CheckPrekeyValue(const schema::Prekey& p, std::string_view what) {
  FUZZ_CHECK(ValidId(p.owner_id), std::string(what) + ": prekey owner id is invalid");
  FUZZ_CHECK(p.public_key.size() == schema::kPublicKeyBytes,
             std::string(what) + ": prekey public key size");
  FUZZ_CHECK(p.not_after_ms > p.not_before_ms, std::string(what) + ": prekey lifetime is empty");
}

void CheckPartyValue(ByteView in, const Party& p, std::string_view what) {
  FUZZ_CHECK(ValidId(p.id), std::string(what) + ": party id is invalid");
  FUZZ_CHECK(!p.keys.empty(), std::string(what) + ": party has no key");
  for (const auto& k : p.keys) {
    FUZZ_CHECK(k.signing_key.size() == schema::kPublicKeyBytes,
               std::string(what) + ": signing key size");
    FUZZ_CHECK(k.transport_key.empty() || k.transport_key.size() == schema::kPublicKeyBytes,
               std::string(what) + ": transport key size");
    for (const auto& sp : k.prekeys) {
      FUZZ_CHECK(sp.signature.size() == schema::kSignatureBytes,
                 std::string(what) + ": prekey signature size");
      FUZZ_CHECK(sp.prekey.owner_id == p.id,
                 std::string(what) + ": a prekey of " + p.id + " names another owner");
      CheckPrekeyValue(sp.prekey, what);
      // The signed prekey bytes are carried verbatim and decode to the listed prekey.
      FUZZ_CHECK(Contains(in, sp.prekey_bytes),
                 std::string(what) + ": signed prekey bytes are not in the input");
      auto alone = schema::DecodePrekey(sp.prekey_bytes);
      FUZZ_CHECK(alone.ok() && schema::EncodePrekey(*alone) == schema::EncodePrekey(sp.prekey),
                 std::string(what) + ": signed prekey bytes differ from the listed prekey");
    }
  }
}

void CheckDirectoryValue(ByteView in, const schema::Directory& d) {
  FUZZ_CHECK(d.format_version == 1, "directory format version");
  FUZZ_CHECK(!d.federation.empty() && d.federation.size() <= 64, "directory federation");
  FUZZ_CHECK(d.expires_at_ms > d.issued_at_ms, "directory validity");
  std::vector<std::string_view> ids;
  const std::pair<const std::vector<Party>*, schema::PartyKind> lists[] = {
      {&d.agencies, schema::PartyKind::kAgency},
      {&d.brokers, schema::PartyKind::kBroker},
      {&d.auditors, schema::PartyKind::kAuditor}};
  for (const auto& [list, kind] : lists) {
    for (const auto& p : *list) {
      FUZZ_CHECK(p.kind == kind, "directory: party " + p.id + " is in the wrong list");
      CheckPartyValue(in, p, "directory");
      ids.push_back(p.id);
      FUZZ_CHECK(d.Find(p.id) == &p, "directory: Find(" + p.id + ") is not that party");
    }
  }
  std::sort(ids.begin(), ids.end());
  FUZZ_CHECK(std::adjacent_find(ids.begin(), ids.end()) == ids.end(),
             "directory: a party id appears twice");
}

// Lookups over a decoded (not necessarily verified) directory: they must not crash, and
// what they return must satisfy keys/directory.h.
void CheckLookups(const schema::Directory& d, UnixMillis now) {
  for (const auto* list : {&d.agencies, &d.brokers, &d.auditors}) {
    for (const auto& p : *list) {
      for (const auto& k : p.keys) {
        const Bytes id = keys::KeyId(keys::KeyUse::kSigning, k.signing_key);
        auto found = keys::FindSigningKey(d, p.id, id, now, now);
        if (!found.ok()) continue;
        const schema::KeyRecord* r = *found;
        FUZZ_CHECK(p.status != schema::PartyStatus::kRevoked,
                   "FindSigningKey returned a key of revoked party " + p.id);
        FUZZ_CHECK(r->state == schema::KeyState::kActive || r->state == schema::KeyState::kRetired,
                   "FindSigningKey returned a revoked key of " + p.id);
        FUZZ_CHECK(keys::KeyId(keys::KeyUse::kSigning, r->signing_key) == id,
                   "FindSigningKey returned a key with another id");
      }
      if (p.kind != schema::PartyKind::kAgency) continue;
      auto pre = keys::CurrentPrekey(d, p.id, now);
      if (!pre.ok()) continue;
      FUZZ_CHECK(p.status == schema::PartyStatus::kActive,
                 "CurrentPrekey returned a prekey of inactive agency " + p.id);
      FUZZ_CHECK(pre->prekey_id == keys::KeyId(keys::KeyUse::kPrekey, pre->public_key),
                 "CurrentPrekey: prekey id does not match the key");
      const schema::KeyRecord* active = p.ActiveKeys();
      FUZZ_CHECK(active != nullptr, "CurrentPrekey returned a prekey without an active key");
      bool listed = false;
      for (const auto& sp : active->prekeys) {
        if (sp.prekey.public_key != pre->public_key) continue;
        listed = listed || (now < sp.prekey.not_after_ms &&
                            keys::VerifySignature(active->signing_key, keys::kLabelPrekey,
                                                  sp.prekey_bytes, sp.signature));
      }
      FUZZ_CHECK(listed,
                 "CurrentPrekey returned a prekey that is not a valid signed one of " + p.id);
    }
  }
}

// ---- Statements ------------------------------------------------------------------------

constexpr std::array<keys::StatementType, 3> kStatementTypes = {
    keys::StatementType::kConsentRevocation, keys::StatementType::kPurgeConfirmation,
    keys::StatementType::kAccessRecord};

// The signer and signing time a statement of this type names, if its bytes decode.
bool StatementSigner(const Bytes& statement, keys::StatementType type, std::string* signer,
                     UnixMillis* at) {
  switch (type) {
    case keys::StatementType::kConsentRevocation: {
      if (!CheckConsentRevocation(statement)) return false;
      auto r = schema::DecodeConsentRevocation(statement);
      *signer = r->revoked_by;
      *at = r->revoked_at_ms;
      return true;
    }
    case keys::StatementType::kPurgeConfirmation: {
      if (!CheckPurgeConfirmation(statement)) return false;
      auto r = schema::DecodePurgeConfirmation(statement);
      *signer = r->agency_id;
      *at = r->purged_at_ms;
      return true;
    }
    case keys::StatementType::kAccessRecord: {
      if (!CheckAccessRecord(statement)) return false;
      auto r = schema::DecodeAccessRecord(statement);
      *signer = r->agency_id;
      *at = r->opened_at_ms;
      return true;
    }
  }
  return false;
}

void CheckSignedStatementValue(const schema::SignedStatement& s, std::string_view what) {
  FUZZ_CHECK(!s.statement.empty(), std::string(what) + ": empty statement");
  FUZZ_CHECK(s.signer_key_id.size() == schema::kKeyIdBytes, std::string(what) + ": key id size");
  FUZZ_CHECK(s.signature.size() == schema::kSignatureBytes, std::string(what) + ": signature size");
}

void CheckCaseFields(const std::vector<schema::CaseField>& fields, std::string_view what) {
  FUZZ_CHECK(fields.size() <= schema::kMaxCaseFields, std::string(what) + ": too many fields");
  for (const auto& f : fields) {
    FUZZ_CHECK(!f.name.empty() && f.name.size() <= schema::kMaxFieldNameBytes,
               std::string(what) + ": field name size");
    FUZZ_CHECK(f.value.size() <= schema::kMaxFieldValueBytes,
               std::string(what) + ": field value size");
  }
}

void CheckOperatorRef(const std::string& ref, std::string_view what) {
  FUZZ_CHECK(!ref.empty() && ref.size() <= schema::kMaxOperatorRefBytes,
             std::string(what) + ": operator_ref size");
}

}  // namespace

void Fail(const char* file, int line, const char* cond, std::string_view what) {
  std::fprintf(stderr, "\nfuzz invariant violated at %s:%d\n  check: %s\n  what:  %.*s\n", file,
               line, cond, static_cast<int>(what.size()), what.data());
  std::abort();
}

bool Contains(ByteView haystack, ByteView needle) {
  if (needle.empty()) return true;
  return std::search(haystack.begin(), haystack.end(),
                     std::boyer_moore_horspool_searcher(needle.begin(), needle.end())) !=
         haystack.end();
}

// ---- Transport and envelopes -------------------------------------------------------------

bool CheckFrame(ByteView in) {
  auto f = schema::DecodeFrame(in);
  if (!f.ok()) return false;
  FUZZ_CHECK(f->version == 1, "frame version");
  RoundTrip<schema::Frame>(*f, schema::DecodeFrame, schema::EncodeFrame, "frame");
  auto again = schema::DecodeFrame(schema::EncodeFrame(*f));
  FUZZ_CHECK(again->type == f->type && again->request_id == f->request_id,
             "frame: type or request id changed through a re-encoding");
  // What the broker and the agent decode next, from the same bytes.
  using T = schema::Frame::Type;
  switch (f->type) {
    case T::kHello:
      FUZZ_CHECK(ValidId(f->hello.party_id), "frame: hello party id");
      break;
    case T::kWelcome:
      FUZZ_CHECK(ValidId(f->welcome.broker_id), "frame: welcome broker id");
      break;
    case T::kSubmit:
      FUZZ_CHECK(!f->submit.envelope.empty(), "frame: empty submit");
      CheckEnvelope(f->submit.envelope);
      break;
    case T::kDeliver:
      FUZZ_CHECK(!f->deliver.envelope.empty(), "frame: empty deliver");
      CheckEnvelope(f->deliver.envelope);
      break;
    case T::kAck:
      FUZZ_CHECK(f->ack.message_id.size() == schema::kMessageIdBytes, "frame: ack message id");
      break;
    case T::kNack:
      FUZZ_CHECK(f->nack.message_id.empty() || f->nack.message_id.size() == schema::kMessageIdBytes,
                 "frame: nack message id");
      FUZZ_CHECK(f->nack.reason != schema::NackReason::kUnspecified, "frame: nack reason");
      break;
    case T::kDirectoryReply:
      CheckSignedDirectory(f->directory_reply.signed_directory);
      break;
    case T::kGrantRegister:
      FUZZ_CHECK(!f->grant_register.signed_grant.empty(), "frame: empty grant");
      CheckSignedConsentGrant(f->grant_register.signed_grant);
      break;
    case T::kGrantRevoke:
      FUZZ_CHECK(!f->grant_revoke.signed_revocation.empty(), "frame: empty revocation");
      CheckSignedStatement(f->grant_revoke.signed_revocation,
                           keys::StatementType::kConsentRevocation);
      break;
    case T::kAttest:
      FUZZ_CHECK(f->attest.signed_access.empty() != f->attest.signed_purge.empty(),
                 "frame: attest holds both statements or none");
      if (!f->attest.signed_access.empty()) {
        CheckSignedStatement(f->attest.signed_access, keys::StatementType::kAccessRecord);
      } else {
        CheckSignedStatement(f->attest.signed_purge, keys::StatementType::kPurgeConfirmation);
      }
      break;
    case T::kAuditEntries:
      FUZZ_CHECK(
          f->audit_entries.max >= 1 && f->audit_entries.max <= schema::kMaxAuditEntriesPerReply,
          "frame: audit_entries.max");
      break;
    case T::kAuditProof:
      FUZZ_CHECK(f->audit_proof.index < f->audit_proof.tree_size, "frame: audit_proof index");
      break;
    case T::kAuditConsistency:
      FUZZ_CHECK(f->audit_consistency.old_size <= f->audit_consistency.new_size,
                 "frame: audit_consistency sizes");
      break;
    case T::kAuditCheckpoints:
      FUZZ_CHECK(f->audit_checkpoints.max >= 1 &&
                     f->audit_checkpoints.max <= schema::kMaxAuditCheckpointsPerReply,
                 "frame: audit_checkpoints.max");
      break;
    case T::kAuditReply: {
      const auto& r = f->audit_reply;
      FUZZ_CHECK(r.checkpoints.size() <= schema::kMaxAuditCheckpointsPerReply &&
                     r.entries.size() <= schema::kMaxAuditEntriesPerReply &&
                     r.hashes.size() <= schema::kMaxAuditProofHashes,
                 "frame: audit reply counts");
      for (const auto& note : r.checkpoints) {
        FUZZ_CHECK(!note.empty() && note.size() <= schema::kMaxAuditNoteBytes,
                   "frame: audit reply note size");
        CheckSignedNote(note);
        CheckCheckpointNote(note, 0);
      }
      for (const auto& e : r.entries) {
        FUZZ_CHECK(!e.empty() && e.size() <= schema::kMaxRecordBytes,
                   "frame: audit reply entry size");
        CheckAuditEntry(e);
      }
      for (const auto& h : r.hashes) {
        FUZZ_CHECK(h.size() == schema::kAuditHashBytes, "frame: audit reply hash size");
      }
      break;
    }
    case T::kWitnessRequest: {
      const auto& w = f->witness_request;
      FUZZ_CHECK(!w.checkpoint.empty() && w.checkpoint.size() <= schema::kMaxAuditNoteBytes,
                 "frame: witness request note size");
      FUZZ_CHECK(w.consistency_proof.size() <= schema::kMaxAuditProofHashes,
                 "frame: witness request proof length");
      for (const auto& h : w.consistency_proof) {
        FUZZ_CHECK(h.size() == schema::kAuditHashBytes, "frame: witness request hash size");
      }
      CheckSignedNote(w.checkpoint);
      CheckCheckpointNote(w.checkpoint, 0);
      break;
    }
    case T::kWitnessReply: {
      const auto& w = f->witness_reply;
      if (w.refusal == schema::WitnessRefusal::kNone) {
        FUZZ_CHECK(
            !w.cosignature.empty() && w.cosignature.size() <= schema::kMaxCosignatureLineBytes,
            "frame: a witness cosignature without its line");
      } else {
        FUZZ_CHECK(w.cosignature.empty(), "frame: a witness refusal with a cosignature");
      }
      FUZZ_CHECK(w.detail.size() <= schema::kMaxWitnessDetailBytes, "frame: witness detail size");
      break;
    }
    case T::kAddCosignature:
      FUZZ_CHECK(!f->add_cosignature.checkpoint.empty() &&
                     f->add_cosignature.checkpoint.size() <= schema::kMaxAuditNoteBytes,
                 "frame: add_cosignature note size");
      CheckSignedNote(f->add_cosignature.checkpoint);
      CheckCheckpointNote(f->add_cosignature.checkpoint, 1);
      break;
    case T::kPrekeyUpdate:
      FUZZ_CHECK(!f->prekey_update.signed_prekey.empty() &&
                     f->prekey_update.signed_prekey.size() <= schema::kMaxSignedPrekeyBytes,
                 "frame: prekey update size");
      break;
    case T::kRosterUpdate:
      FUZZ_CHECK(!f->roster_update.signed_roster.empty() &&
                     f->roster_update.signed_roster.size() <= schema::kMaxSignedRosterBytes,
                 "frame: roster update size");
      break;
    case T::kLinkageTally:
      FUZZ_CHECK(f->linkage_tally.signed_tally.empty()
                     ? f->linkage_tally.tally_sha256.size() == 32
                     : f->linkage_tally.signed_tally.size() <= schema::kMaxSignedTallyBytes &&
                           f->linkage_tally.tally_sha256.empty() &&
                           f->linkage_tally.entry_index == 0,
                 "frame: linkage tally fields");
      break;
    case T::kLinkageEvaluate:
      FUZZ_CHECK(f->linkage_evaluate.blinded_element.size() == schema::kLinkageElementBytes,
                 "frame: linkage element size");
      break;
    case T::kLinkageEvaluated:
      FUZZ_CHECK(f->linkage_evaluated.evaluated_element.size() == schema::kLinkageElementBytes &&
                     f->linkage_evaluated.proof.size() == schema::kLinkageProofBytes,
                 "frame: linkage answer sizes");
      break;
    case T::kRelay: {
      const auto& r = f->relay;
      if (!r.signed_prekey.empty()) {
        FUZZ_CHECK(r.envelope.empty() && r.signed_revocation.empty() && r.for_recipients.empty(),
                   "frame: a prekey relay with other fields");
        break;
      }
      if (!r.signed_revocation.empty()) {
        FUZZ_CHECK(r.envelope.empty() && r.signed_grant.empty() && r.for_recipients.empty(),
                   "frame: a revocation relay with envelope fields");
        FUZZ_CHECK(r.signed_revocation.size() <= schema::kMaxRecordBytes,
                   "frame: relay revocation size");
        break;
      }
      FUZZ_CHECK(!r.envelope.empty() && r.envelope.size() <= schema::kMaxEnvelopeBytes,
                 "frame: relay envelope size");
      FUZZ_CHECK(r.signed_grant.size() <= schema::kMaxRecordBytes, "frame: relay grant size");
      FUZZ_CHECK(r.hops <= schema::kMaxRelayHops, "frame: relay hops");
      FUZZ_CHECK(!r.for_recipients.empty() && r.for_recipients.size() <= schema::kMaxRecipients,
                 "frame: relay recipients count");
      for (const auto& id : r.for_recipients) {
        FUZZ_CHECK(schema::IsValidPartyId(id), "frame: relay recipient id");
      }
      break;
    }
    default:  // kDirectoryFetch, kAuditCheckpoint: nothing inside; and types added later
      break;
  }
  return true;
}

bool CheckEnvelopeHeader(ByteView in) {
  auto h = schema::DecodeEnvelopeHeader(in);
  if (!h.ok()) return false;
  FUZZ_CHECK(h->version == 1, "envelope header version");
  FUZZ_CHECK(h->message_id.size() == schema::kMessageIdBytes, "envelope header message id");
  FUZZ_CHECK(h->kind != schema::MessageKind::kUnspecified, "envelope header kind");
  FUZZ_CHECK(ValidId(h->sender_id), "envelope header sender id");
  FUZZ_CHECK(h->sender_key_id.size() == schema::kKeyIdBytes, "envelope header sender key id");
  FUZZ_CHECK(!h->recipients.empty() && h->recipients.size() <= schema::kMaxRecipients,
             "envelope header recipient count");
  for (size_t i = 0; i < h->recipients.size(); ++i) {
    const auto& r = h->recipients[i];
    FUZZ_CHECK(ValidId(r.agency_id), "envelope header recipient id");
    FUZZ_CHECK(r.prekey_id.size() == schema::kKeyIdBytes, "envelope header prekey id");
    FUZZ_CHECK(r.wrapped_key.size() == schema::kWrappedKeyBytes, "envelope header wrapped key");
    for (size_t j = 0; j < i; ++j) {
      FUZZ_CHECK(h->recipients[j].agency_id != r.agency_id,
                 "envelope header names a recipient twice");
    }
  }
  FUZZ_CHECK(h->case_ref.empty() || schema::IsValidCaseRef(h->case_ref), "envelope case ref");
  FUZZ_CHECK(h->consent_grant_id.empty() || h->consent_grant_id.size() == schema::kGrantIdBytes,
             "envelope header grant id");
  FUZZ_CHECK(h->expires_at_ms > h->created_at_ms, "envelope header lifetime");
  FUZZ_CHECK(h->ephemeral_key.size() == schema::kPublicKeyBytes &&
                 h->content_nonce.size() == schema::kNonceBytes &&
                 h->key_commitment.size() == schema::kCommitmentBytes,
             "envelope header key, nonce or commitment size");
  RoundTrip<schema::EnvelopeHeader>(*h, schema::DecodeEnvelopeHeader, schema::EncodeEnvelopeHeader,
                                    "envelope header");
  return true;
}

bool CheckEnvelope(ByteView in) {
  auto e = schema::DecodeEnvelope(in);
  if (!e.ok()) return false;
  FUZZ_CHECK(e->signature.size() == schema::kSignatureBytes, "envelope signature size");
  FUZZ_CHECK(e->ciphertext.size() >= 16, "envelope ciphertext shorter than a tag");
  FUZZ_CHECK(CheckEnvelopeHeader(e->header_bytes), "envelope: its header bytes do not decode");
  SignedRoundTrip<schema::SealedEnvelope, schema::EnvelopeHeader>(
      in, *e, &schema::SealedEnvelope::header_bytes, &schema::SealedEnvelope::header,
      schema::DecodeEnvelope, schema::EncodeEnvelope, schema::DecodeEnvelopeHeader,
      schema::EncodeEnvelopeHeader, "envelope");
  auto again = schema::DecodeEnvelope(schema::EncodeEnvelope(*e));
  FUZZ_CHECK(again->ciphertext == e->ciphertext && again->signature == e->signature,
             "envelope: ciphertext or signature changed through a re-encoding");

  const Fixture& fx = Get();
  const UnixMillis now = e->header.created_at_ms;
  schema::Directory empty;
  FUZZ_CHECK(!keys::VerifyEnvelope(in, empty, now).ok(),
             "envelope verifies against an empty directory");
  keys::EnvelopeCheck failed = keys::EnvelopeCheck::kOk;
  auto v = keys::VerifyEnvelope(in, fx.directory.directory, now, &failed);
  FUZZ_CHECK(v.ok() == (failed == keys::EnvelopeCheck::kOk),
             "VerifyEnvelope: result and reported check disagree");
  if (v.ok()) {
    const Party* sender = fx.directory.directory.Find(e->header.sender_id);
    FUZZ_CHECK(sender != nullptr && sender->kind == schema::PartyKind::kAgency,
               "a verified envelope's sender is not an agency of the directory");
    schema::SealedEnvelope bad = *e;
    bad.signature = Flip(bad.signature, e->ciphertext.size());
    FUZZ_CHECK(!keys::VerifyEnvelope(schema::EncodeEnvelope(bad), fx.directory.directory, now).ok(),
               "an envelope with a changed signature still verifies");
    bad = *e;
    bad.ciphertext = Flip(bad.ciphertext, e->signature[0]);
    FUZZ_CHECK(!keys::VerifyEnvelope(schema::EncodeEnvelope(bad), fx.directory.directory, now).ok(),
               "an envelope with a changed ciphertext still verifies");
  }
  auto opened = keys::OpenEnvelope(fx.recipient, in, fx.directory.directory, now);
  if (opened.ok()) {
    FUZZ_CHECK(v.ok(), "an envelope opens that does not verify");
    FUZZ_CHECK(opened->content.size() + 16 == e->ciphertext.size(),
               "opened content size does not match the ciphertext");
    bool addressed = false;
    for (const auto& r : e->header.recipients) addressed = addressed || r.agency_id == kRecipientId;
    FUZZ_CHECK(addressed, "an envelope opens for an agency it is not addressed to");
  }
  return true;
}

// ---- Directory ---------------------------------------------------------------------------

bool CheckPrekey(ByteView in) {
  auto p = schema::DecodePrekey(in);
  if (!p.ok()) return false;
  CheckPrekeyValue(*p, "prekey");
  RoundTrip<schema::Prekey>(*p, schema::DecodePrekey, schema::EncodePrekey, "prekey");
  return true;
}

bool CheckDirectory(ByteView in) {
  auto d = schema::DecodeDirectory(in);
  if (!d.ok()) return false;
  CheckDirectoryValue(in, *d);
  RoundTrip<schema::Directory>(*d, schema::DecodeDirectory, schema::EncodeDirectory, "directory");
  CheckLookups(*d, kNow);
  return true;
}

bool CheckSignedDirectory(ByteView in) {
  auto sd = schema::DecodeSignedDirectory(in);
  if (!sd.ok()) return false;
  FUZZ_CHECK(sd->authority_key_id.size() == schema::kKeyIdBytes, "signed directory key id size");
  FUZZ_CHECK(sd->signature.size() == schema::kSignatureBytes, "signed directory signature size");
  CheckDirectoryValue(in, sd->directory);
  SignedRoundTrip<schema::SignedDirectory, schema::Directory>(
      in, *sd, &schema::SignedDirectory::directory_bytes, &schema::SignedDirectory::directory,
      schema::DecodeSignedDirectory, schema::EncodeSignedDirectory, schema::DecodeDirectory,
      schema::EncodeDirectory, "signed directory");
  CheckLookups(sd->directory, kNow);

  const Fixture& fx = Get();
  auto v = keys::VerifyDirectory(in, fx.anchor, kNow);
  if (v.ok()) {
    FUZZ_CHECK(keys::VerifySignature(fx.anchor.signing_key, keys::kLabelDirectory,
                                     sd->directory_bytes, sd->signature),
               "a verified directory is not signed by the anchor");
    FUZZ_CHECK(v->signed_directory.directory_bytes == sd->directory_bytes,
               "VerifyDirectory returned other directory bytes");
    schema::SignedDirectory bad = *sd;
    bad.signature = Flip(bad.signature, sd->directory_bytes.size());
    FUZZ_CHECK(!keys::VerifyDirectory(schema::EncodeSignedDirectory(bad), fx.anchor, kNow).ok(),
               "a directory with a changed signature still verifies");
  }
  return true;
}

bool CheckPartyRecord(ByteView in) {
  auto r = schema::DecodePartyRecord(in);
  if (!r.ok()) return false;
  FUZZ_CHECK(r->format_version == 1, "party record format version");
  CheckPartyValue(in, r->party, "party record");
  RoundTrip<schema::PartyRecord>(*r, schema::DecodePartyRecord, schema::EncodePartyRecord,
                                 "party record");
  return true;
}

bool CheckSignedPartyRecord(ByteView in) {
  auto r = schema::DecodeSignedPartyRecord(in);
  if (!r.ok()) return false;
  FUZZ_CHECK(r->signature.size() == schema::kSignatureBytes, "signed party record signature");
  FUZZ_CHECK(r->previous_key_signature.empty() ||
                 r->previous_key_signature.size() == schema::kSignatureBytes,
             "signed party record previous key signature");
  CheckPartyValue(in, r->record.party, "signed party record");
  SignedRoundTrip<schema::SignedPartyRecord, schema::PartyRecord>(
      in, *r, &schema::SignedPartyRecord::record_bytes, &schema::SignedPartyRecord::record,
      schema::DecodeSignedPartyRecord, schema::EncodeSignedPartyRecord, schema::DecodePartyRecord,
      schema::EncodePartyRecord, "signed party record");
  if (keys::VerifyPartyRecord(*r).ok()) {
    const Party& p = r->record.party;
    FUZZ_CHECK(p.keys.size() == 1 && p.keys[0].state == schema::KeyState::kActive,
               "a verified party record does not list exactly one active key");
    const auto& k = p.keys[0];
    FUZZ_CHECK(keys::VerifySignature(k.signing_key, keys::kLabelPartyRecord, r->record_bytes,
                                     r->signature),
               "a verified party record is not signed by its key");
    for (const auto& sp : k.prekeys) {
      FUZZ_CHECK(
          keys::VerifySignature(k.signing_key, keys::kLabelPrekey, sp.prekey_bytes, sp.signature),
          "a verified party record lists an unsigned prekey");
    }
    schema::SignedPartyRecord bad = *r;
    bad.signature = Flip(bad.signature, r->record_bytes.size());
    FUZZ_CHECK(!keys::VerifyPartyRecord(bad).ok(),
               "a party record with a changed signature still verifies");
  }
  return true;
}

// ---- Consent and statements ----------------------------------------------------------------

bool CheckConsentGrant(ByteView in) {
  auto g = schema::DecodeConsentGrant(in);
  if (!g.ok()) return false;
  FUZZ_CHECK(g->format_version == 1, "consent grant format version");
  FUZZ_CHECK(g->grant_id.size() == schema::kGrantIdBytes, "consent grant id size");
  FUZZ_CHECK(schema::IsValidCaseRef(g->case_ref), "consent grant case ref");
  FUZZ_CHECK(ValidId(g->recorded_by), "consent grant recorded_by");
  FUZZ_CHECK(g->basis != schema::LegalBasis::kUnspecified, "consent grant basis");
  FUZZ_CHECK(g->legal_article.size() <= 128, "consent grant legal article");
  for (const auto& r : g->allowed_recipients) {
    FUZZ_CHECK(ValidId(r), "consent grant allowed recipient id");
  }
  FUZZ_CHECK(g->expires_at_ms > g->issued_at_ms, "consent grant validity");
  RoundTrip<schema::ConsentGrant>(*g, schema::DecodeConsentGrant, schema::EncodeConsentGrant,
                                  "consent grant");
  return true;
}

bool CheckSignedConsentGrant(ByteView in) {
  auto g = schema::DecodeSignedConsentGrant(in);
  if (!g.ok()) return false;
  FUZZ_CHECK(g->signer_key_id.size() == schema::kKeyIdBytes, "signed grant key id size");
  FUZZ_CHECK(g->signature.size() == schema::kSignatureBytes, "signed grant signature size");
  for (const auto& c : g->countersignatures) {
    FUZZ_CHECK(c.public_key.size() == schema::kPublicKeyBytes &&
                   c.signature.size() == schema::kSignatureBytes && !c.operator_ref.empty() &&
                   c.operator_ref.size() <= 64,
               "signed grant countersignature fields");
  }
  FUZZ_CHECK(CheckConsentGrant(g->grant_bytes), "signed grant: its grant bytes do not decode");
  SignedRoundTrip<schema::SignedConsentGrant, schema::ConsentGrant>(
      in, *g, &schema::SignedConsentGrant::grant_bytes, &schema::SignedConsentGrant::grant,
      schema::DecodeSignedConsentGrant, schema::EncodeSignedConsentGrant,
      schema::DecodeConsentGrant, schema::EncodeConsentGrant, "signed consent grant");

  const Fixture& fx = Get();
  const schema::Directory& d = fx.directory.directory;
  const UnixMillis now = g->grant.issued_at_ms;
  if (keys::VerifyConsentGrant(*g, d, now).ok()) {
    auto key =
        keys::FindSigningKey(d, g->grant.recorded_by, g->signer_key_id, g->grant.issued_at_ms, now);
    FUZZ_CHECK(key.ok(), "a verified grant's recorder key is not in the directory");
    FUZZ_CHECK(keys::VerifySignature((*key)->signing_key, keys::kLabelConsentGrant, g->grant_bytes,
                                     g->signature),
               "a verified grant is not signed by its recorder");
    if (keys::IsEmergencyOverride(g->grant)) {
      bool second = false;
      for (const auto& c : g->countersignatures) {
        second = second || (c.public_key != (*key)->signing_key &&
                            keys::VerifySignature(c.public_key, keys::kLabelConsentCountersign,
                                                  g->grant_bytes, c.signature));
      }
      FUZZ_CHECK(second, "an emergency grant verifies without a second operator");
    }
    schema::SignedConsentGrant bad = *g;
    bad.signature = Flip(bad.signature, g->grant_bytes.size());
    FUZZ_CHECK(!keys::VerifyConsentGrant(bad, d, now).ok(),
               "a grant with a changed signature still verifies");
  }
  return true;
}

bool CheckAccessRecord(ByteView in) {
  auto r = schema::DecodeAccessRecord(in);
  if (!r.ok()) return false;
  FUZZ_CHECK(r->message_id.size() == schema::kMessageIdBytes, "access record message id");
  FUZZ_CHECK(schema::IsValidCaseRef(r->case_ref), "access record case ref");
  FUZZ_CHECK(ValidId(r->agency_id) && ValidId(r->owner_agency), "access record agency ids");
  CheckOperatorRef(r->operator_ref, "access record");
  FUZZ_CHECK(r->consent_grant_id.empty() || r->consent_grant_id.size() == schema::kGrantIdBytes,
             "access record grant id");
  FUZZ_CHECK(r->kind != schema::MessageKind::kUnspecified, "access record kind");
  RoundTrip<schema::AccessRecord>(*r, schema::DecodeAccessRecord, schema::EncodeAccessRecord,
                                  "access record");
  return true;
}

bool CheckConsentRevocation(ByteView in) {
  auto r = schema::DecodeConsentRevocation(in);
  if (!r.ok()) return false;
  FUZZ_CHECK(r->grant_id.size() == schema::kGrantIdBytes, "revocation grant id");
  FUZZ_CHECK(schema::IsValidCaseRef(r->case_ref), "revocation case ref");
  FUZZ_CHECK(ValidId(r->revoked_by), "revocation revoked_by");
  FUZZ_CHECK(r->reason != schema::RevocationReason::kUnspecified, "revocation reason");
  RoundTrip<schema::ConsentRevocation>(*r, schema::DecodeConsentRevocation,
                                       schema::EncodeConsentRevocation, "consent revocation");
  return true;
}

bool CheckPurgeConfirmation(ByteView in) {
  auto r = schema::DecodePurgeConfirmation(in);
  if (!r.ok()) return false;
  FUZZ_CHECK(r->grant_id.size() == schema::kGrantIdBytes, "purge grant id");
  FUZZ_CHECK(schema::IsValidCaseRef(r->case_ref), "purge case ref");
  FUZZ_CHECK(ValidId(r->agency_id), "purge agency id");
  FUZZ_CHECK(r->purged_ids_sha256.size() == 32, "purge hash size");
  RoundTrip<schema::PurgeConfirmation>(*r, schema::DecodePurgeConfirmation,
                                       schema::EncodePurgeConfirmation, "purge confirmation");
  return true;
}

bool CheckSignedStatement(ByteView in, keys::StatementType type) {
  auto s = schema::DecodeSignedStatement(in);
  if (!s.ok()) return false;
  CheckSignedStatementValue(*s, "signed statement");
  FUZZ_CHECK(Contains(in, s->statement), "signed statement: the statement is not in the input");
  RoundTrip<schema::SignedStatement>(*s, schema::DecodeSignedStatement,
                                     schema::EncodeSignedStatement, "signed statement");
  std::string signer;
  UnixMillis at = 0;
  if (!StatementSigner(s->statement, type, &signer, &at)) return true;
  const schema::Directory& d = Get().directory.directory;
  if (!keys::VerifyStatement(*s, type, signer, at, d, at).ok()) return true;
  for (keys::StatementType other : kStatementTypes) {
    if (other == type) continue;
    FUZZ_CHECK(!keys::VerifyStatement(*s, other, signer, at, d, at).ok(),
               "a statement verifies under another statement type's label");
  }
  schema::SignedStatement bad = *s;
  bad.statement = Flip(bad.statement, s->signature[0]);
  FUZZ_CHECK(!keys::VerifyStatement(bad, type, signer, at, d, at).ok(),
             "a changed statement still verifies");
  return true;
}

// ---- Case messages -------------------------------------------------------------------------

bool CheckCaseMessage(ByteView in) {
  auto m = schema::DecodeCaseMessage(in);
  if (!m.ok()) return false;
  FUZZ_CHECK(m->version == 1, "case message version");
  RoundTrip<schema::CaseMessage>(*m, schema::DecodeCaseMessage, schema::EncodeCaseMessage,
                                 "case message");
  auto again = schema::DecodeCaseMessage(schema::EncodeCaseMessage(*m));
  FUZZ_CHECK(again->type == m->type, "case message type changed through a re-encoding");
  FUZZ_CHECK(schema::KindOf(m->type) != schema::MessageKind::kUnspecified &&
                 schema::KindOf(m->type) != schema::MessageKind::kOpaque,
             "case message type has no envelope kind");
  using T = schema::CaseMessage::Type;
  // "Nested signed grants are checked to decode" (schema/codec.h).
  const auto grant = [&](const Bytes& g, std::string_view what) {
    FUZZ_CHECK(CheckSignedConsentGrant(g),
               std::string(what) + ": its signed grant does not decode");
  };
  switch (m->type) {
    case T::kReferral: {
      const auto& r = m->referral;
      FUZZ_CHECK(r.referral_id.size() == schema::kWorkflowIdBytes, "referral id size");
      FUZZ_CHECK(schema::IsValidCaseRef(r.case_ref), "referral case ref");
      FUZZ_CHECK(ValidId(r.referring_agency) && ValidId(r.to_agency), "referral agency ids");
      FUZZ_CHECK(r.purpose != schema::Purpose::kUnspecified, "referral purpose");
      CheckCaseFields(r.fields, "referral");
      CheckOperatorRef(r.operator_ref, "referral");
      grant(r.signed_grant, "referral");
      break;
    }
    case T::kStateChange: {
      const auto& c = m->state_change;
      FUZZ_CHECK(c.referral_id.size() == schema::kWorkflowIdBytes, "state change id size");
      FUZZ_CHECK(schema::IsValidCaseRef(c.case_ref), "state change case ref");
      FUZZ_CHECK(c.reason.size() <= schema::kMaxReasonBytes, "state change reason");
      CheckOperatorRef(c.operator_ref, "state change");
      break;
    }
    case T::kHandoff: {
      const auto& h = m->handoff;
      FUZZ_CHECK(h.handoff_id.size() == schema::kWorkflowIdBytes, "handoff id size");
      FUZZ_CHECK(ValidId(h.from_lead) && ValidId(h.to_lead), "handoff lead ids");
      CheckCaseFields(h.fields, "handoff");
      CheckOperatorRef(h.operator_ref, "handoff");
      grant(h.signed_grant, "handoff");
      break;
    }
    case T::kHandoffAck:
      FUZZ_CHECK(m->handoff_ack.handoff_id.size() == schema::kWorkflowIdBytes, "handoff ack id");
      CheckOperatorRef(m->handoff_ack.operator_ref, "handoff ack");
      break;
    case T::kDeletionRequest: {
      const auto& r = m->deletion_request;
      FUZZ_CHECK(r.request_id.size() == schema::kWorkflowIdBytes, "deletion request id size");
      FUZZ_CHECK(!r.items.empty() && r.items.size() <= schema::kMaxDeletionItems,
                 "deletion request item count");
      for (const auto& i : r.items) {
        FUZZ_CHECK(!i.item_id.empty() && i.item_id.size() <= 64 && !i.url.empty() &&
                       i.url.size() <= schema::kMaxUrlBytes &&
                       (i.content_sha256.empty() || i.content_sha256.size() == 32),
                   "deletion request item fields");
      }
      FUZZ_CHECK(r.report_to.size() <= schema::kMaxRecipients, "deletion request report_to");
      for (const auto& a : r.report_to) FUZZ_CHECK(ValidId(a), "deletion request report_to id");
      CheckOperatorRef(r.operator_ref, "deletion request");
      grant(r.signed_grant, "deletion request");
      break;
    }
    case T::kDeletionStatus:
      FUZZ_CHECK(m->deletion_status.report_seq != 0, "deletion status report_seq");
      FUZZ_CHECK(m->deletion_status.updates.size() <= schema::kMaxDeletionItems,
                 "deletion status update count");
      break;
    case T::kAccessNotice:
      CheckSignedStatementValue(m->statement, "access notice");
      CheckSignedStatement(schema::EncodeSignedStatement(m->statement),
                           keys::StatementType::kAccessRecord);
      break;
    case T::kConsentRevocation:
      CheckSignedStatementValue(m->statement, "consent revocation notice");
      CheckSignedStatement(schema::EncodeSignedStatement(m->statement),
                           keys::StatementType::kConsentRevocation);
      break;
    case T::kPurgeConfirmation:
      CheckSignedStatementValue(m->statement, "purge confirmation notice");
      CheckSignedStatement(schema::EncodeSignedStatement(m->statement),
                           keys::StatementType::kPurgeConfirmation);
      break;
    case T::kCaseClosed:
      FUZZ_CHECK(schema::IsValidCaseRef(m->case_closed.case_ref), "case closed case ref");
      FUZZ_CHECK(ValidId(m->case_closed.closed_by), "case closed closed_by");
      CheckOperatorRef(m->case_closed.operator_ref, "case closed");
      break;
    case T::kLinkageEntry: {
      const auto& e = m->linkage_entry;
      FUZZ_CHECK(schema::IsValidCaseRef(e.case_ref), "linkage entry case ref");
      FUZZ_CHECK(e.link_id.size() == schema::kWorkflowIdBytes && e.tag.size() == 32 &&
                     e.y.size() == 32 && !e.sealed_record.empty(),
                 "linkage entry sizes");
      CheckOperatorRef(e.operator_ref, "linkage entry");
      grant(e.signed_grant, "linkage entry");
      break;
    }
    case T::kLinkageNotice: {
      const auto& n = m->linkage_notice;
      FUZZ_CHECK(schema::IsValidCaseRef(n.case_ref), "linkage notice case ref");
      FUZZ_CHECK(n.linkage_id.size() == 16 && !n.others.empty(), "linkage notice fields");
      for (const auto& o : n.others) FUZZ_CHECK(ValidId(o.agency_id), "linkage notice agency id");
      break;
    }
    case T::kLinkageTally: {
      const auto& t = m->linkage_tally;
      FUZZ_CHECK(schema::IsValidCaseRef(t.case_ref), "linkage tally case ref");
      FUZZ_CHECK(t.linkage_id.size() == 16 && !t.evidence.empty() &&
                     t.evidence.size() <= schema::kMaxLinkageEvidenceBytes,
                 "linkage tally sizes");
      CheckOperatorRef(t.operator_ref, "linkage tally");
      grant(t.signed_grant, "linkage tally");
      break;
    }
    case T::kDeletionWatchList:
      FUZZ_CHECK(m->watch_list.request_full == m->watch_list.file.empty(),
                 "deletion watch list: a file or a request");
      FUZZ_CHECK(m->watch_list.file.size() <= schema::kMaxWatchListFileBytes,
                 "deletion watch list file size");
      break;
  }
  return true;
}

// ---- Audit log -----------------------------------------------------------------------------

bool CheckAuditEntry(ByteView in) {
  auto e = schema::DecodeAuditEntry(in);
  if (!e.ok()) return false;
  FUZZ_CHECK(e->version == 1, "audit entry version");
  FUZZ_CHECK(e->event != schema::AuditEvent::kUnspecified, "audit entry event");
  FUZZ_CHECK(ValidId(e->broker_id), "audit entry broker id");
  FUZZ_CHECK(e->message_id.empty() || e->message_id.size() == schema::kMessageIdBytes,
             "audit entry message id");
  FUZZ_CHECK(e->consent_grant_id.empty() || e->consent_grant_id.size() == schema::kGrantIdBytes,
             "audit entry grant id");
  FUZZ_CHECK(e->envelope_sha256.empty() || e->envelope_sha256.size() == 32,
             "audit entry envelope hash");
  FUZZ_CHECK(e->statement_sha256.empty() || e->statement_sha256.size() == 32,
             "audit entry statement hash");
  FUZZ_CHECK(e->operator_ref.size() <= 64, "audit entry operator ref");
  FUZZ_CHECK(e->refusal_count == 0 ||
                 (e->event == schema::AuditEvent::kEnvelopeRejected && e->first_refused_ms != 0 &&
                  e->first_refused_ms <= e->last_refused_ms),
             "audit entry aggregate of refusals");
  RoundTrip<schema::AuditEntry>(*e, schema::DecodeAuditEntry, schema::EncodeAuditEntry,
                                "audit entry");
  return true;
}

bool CheckCheckpointBody(std::string_view text) {
  auto c = keys::ParseCheckpointBody(text);
  if (!c.ok()) return false;
  FUZZ_CHECK(keys::IsValidKeyName(c->origin), "checkpoint origin is not a valid key name");
  auto formatted = keys::FormatCheckpointBody(*c);
  FUZZ_CHECK(formatted.ok(), "a parsed checkpoint does not format: " + Str(formatted.status()));
  FUZZ_CHECK(*formatted == text,
             "ParseCheckpointBody accepted a text FormatCheckpointBody does not make");
  auto again = keys::ParseCheckpointBody(*formatted);
  FUZZ_CHECK(again.ok() && again->origin == c->origin && again->size == c->size &&
                 again->root == c->root && again->extensions == c->extensions,
             "checkpoint changed through Format -> Parse");
  return true;
}

bool CheckSignedNote(std::string_view note) {
  auto n = keys::ParseSignedNote(note);
  if (!n.ok()) return false;
  FUZZ_CHECK(!n->text.empty() && n->text.back() == '\n', "note text does not end in a newline");
  FUZZ_CHECK(!n->signatures.empty() && n->signatures.size() <= keys::kMaxNoteSignatures,
             "note signature count");
  for (const auto& s : n->signatures) {
    FUZZ_CHECK(keys::IsValidKeyName(s.name), "note signature key name is invalid");
    FUZZ_CHECK(!s.signature.empty(), "note signature is empty");
  }
  auto formatted = keys::FormatSignedNote(*n);
  FUZZ_CHECK(formatted.ok(), "a parsed note does not format: " + Str(formatted.status()));
  FUZZ_CHECK(*formatted == note, "ParseSignedNote accepted a text FormatSignedNote does not make");
  return true;
}

bool CheckCheckpointNote(std::string_view note, size_t min_cosignatures) {
  const Fixture& fx = Get();
  const std::array<keys::NoteVerifier, 1> cosigners = {fx.cosigner_key};
  auto v = keys::OpenCheckpoint(note, kLogOrigin, fx.log_key, cosigners, min_cosignatures);
  if (!v.ok()) return false;
  auto n = keys::ParseSignedNote(note);
  FUZZ_CHECK(n.ok() && n->text == v->body, "an opened checkpoint's body is not the note text");
  FUZZ_CHECK(v->checkpoint.origin == kLogOrigin, "an opened checkpoint names another origin");
  FUZZ_CHECK(v->cosignatures.size() >= min_cosignatures, "too few cosignatures were accepted");
  auto body = keys::FormatCheckpointBody(v->checkpoint);
  FUZZ_CHECK(body.ok() && *body == v->body, "an opened checkpoint's body is not canonical");
  // Ed25519 signatures are deterministic and libsodium refuses malleated ones: every line
  // by a known key must be exactly the signature the key makes over this body.
  auto own = keys::SignCheckpoint(v->checkpoint, fx.broker);
  FUZZ_CHECK(own.ok(), "cannot re-sign an opened checkpoint");
  auto own_note = keys::ParseSignedNote(*own);
  FUZZ_CHECK(own_note.ok() && own_note->signatures.size() == 1, "re-signed note shape");
  const keys::NoteSignature& log_sig = own_note->signatures[0];
  for (const auto& s : n->signatures) {
    if (s.name == fx.log_key.name() && s.key_id == fx.log_key.key_id()) {
      FUZZ_CHECK(s.signature == log_sig.signature,
                 "a note verified with a log signature other than the key's own");
    }
    if (s.name == fx.cosigner_key.name() && s.key_id == fx.cosigner_key.key_id()) {
      FUZZ_CHECK(s.signature.size() == 72, "a verified cosignature has the wrong size");
      uint64_t t = 0;
      for (size_t i = 0; i < 8; ++i) t = (t << 8) | s.signature[i];
      auto own_cosig = keys::CosignCheckpoint(v->body, kCosignerName, fx.auditor, t);
      FUZZ_CHECK(own_cosig.ok() && own_cosig->signature == s.signature,
                 "a note verified with a cosignature other than the key's own");
    }
  }
  if (min_cosignatures <= v->cosignatures.size()) {
    FUZZ_CHECK(
        !keys::OpenCheckpoint(note, kLogOrigin, fx.log_key, cosigners, v->cosignatures.size() + 1)
             .ok(),
        "OpenCheckpoint counted more cosignatures than it returned");
  }
  return true;
}

// ---- Key files -------------------------------------------------------------------------------

bool CheckSecretKeyFile(ByteView in) {
  auto f = schema::DecodeSecretKeyFile(in);
  if (!f.ok()) return false;
  FUZZ_CHECK(f->format_version == 1, "key file format version");
  FUZZ_CHECK(ValidId(f->party_id), "key file party id");
  FUZZ_CHECK(f->kind != schema::PartyKind::kUnspecified, "key file kind");
  if (f->protection == schema::KeyProtection::kArgon2idXChaCha20Poly1305) {
    FUZZ_CHECK(f->kdf_salt.size() == 16 && f->nonce.size() == schema::kNonceBytes,
               "protected key file salt or nonce size");
  } else {
    FUZZ_CHECK(f->protection == schema::KeyProtection::kNone, "key file protection");
    FUZZ_CHECK(f->checksum.size() == 32, "key file checksum size");
  }
  RoundTrip<schema::SecretKeyFile>(*f, schema::DecodeSecretKeyFile, schema::EncodeSecretKeyFile,
                                   "secret key file");
  f->WipePayload();
  return true;
}

}  // namespace refbus::fuzz
