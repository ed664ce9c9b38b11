// Writes the seed corpora of every fuzz target: valid objects of several shapes, made and
// signed with the fixture keys (tests/fuzz/fixtures.h), so that they decode and verify
// inside the targets and the fuzzer starts from deep inside each decoder. Run it by hand
// when a format changes (it replaces the seed-* files, leaving other files alone):
//   build/bin/make_fuzz_seeds tests/fuzz/corpus
// Each target's corpus is <root>/<target without _fuzz>/; inputs begin with the target's
// selector byte (see each *_fuzz.cpp) except frame_fuzz's, which are bare frames.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "keys/checkpoint.h"
#include "keys/consent.h"
#include "keys/directory.h"
#include "keys/envelope.h"
#include "keys/keyfile.h"
#include "keys/merkle.h"
#include "keys/operator_roster.h"
#include "schema/codec.h"
#include "schema/workflow.h"
#include "tests/fuzz/fixtures.h"

namespace {

using namespace refbus;  // NOLINT(google-build-using-namespace)
namespace fs = std::filesystem;
using fuzz::kNow;

[[noreturn]] void Die(const std::string& what, const Status& s) {
  std::fprintf(stderr, "make_fuzz_seeds: %s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(1);
}

template <typename T>
T Must(Result<T> r, const std::string& what) {
  if (!r.ok()) Die(what, r.status());
  return std::move(*r);
}

void MustOk(const Status& s, const std::string& what) {
  if (!s.ok()) Die(what, s);
}

class Corpus {
 public:
  Corpus(const fs::path& root, const std::string& name) : dir_(root / name) {
    fs::create_directories(dir_);
    for (const auto& e : fs::directory_iterator(dir_)) {
      if (e.path().filename().string().rfind("seed-", 0) == 0) fs::remove(e.path());
    }
  }
  ~Corpus() { std::printf("%-12s %d seeds\n", dir_.filename().c_str(), n_); }
  Corpus(const Corpus&) = delete;
  Corpus& operator=(const Corpus&) = delete;

  // Writes seed-<name> holding the selector byte (if any) and the bytes.
  void Add(const std::string& name, int selector, ByteView bytes) {
    std::ofstream out(dir_ / ("seed-" + name), std::ios::binary);
    if (selector >= 0) out.put(static_cast<char>(selector));
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    if (!out) Die("seed " + name, IoError("cannot write into " + dir_.string()));
    ++n_;
  }
  void Add(const std::string& name, int selector, std::string_view text) {
    Add(name, selector, AsBytes(text));
  }

 private:
  fs::path dir_;
  int n_ = 0;
};

Bytes Id16(uint8_t fill) { return Bytes(16, fill); }

const std::string kCaseRef = "case-7Q2M4K9XDW";

schema::ConsentGrant Grant(bool emergency) {
  schema::ConsentGrant g;
  g.grant_id = Id16(emergency ? 0xE1 : 0x61);
  g.case_ref = kCaseRef;
  g.recorded_by = std::string(fuzz::kSenderId);
  g.basis =
      emergency ? schema::LegalBasis::kEmergencyLifeSafety : schema::LegalBasis::kConsentSubject;
  g.legal_article = "Child Welfare Act art. 22";
  g.consenters = {schema::Consenter::kSubject, schema::Consenter::kGuardian};
  g.subject_assent = true;
  g.purposes = {schema::Purpose::kCounseling, schema::Purpose::kDeletion};
  g.categories = {schema::DataCategory::kIdentity, schema::DataCategory::kIncidentSummary};
  g.allowed_recipients = {std::string(fuzz::kRecipientId)};
  g.allowed_agency_types = {schema::AgencyType::kCounselingCenter};
  g.issued_at_ms = kNow;
  g.expires_at_ms = kNow + 30 * kMillisPerDay;
  g.retention_until_ms = kNow + 365 * kMillisPerDay;
  g.emergency_override = emergency;
  return g;
}

Bytes SignedGrant(const fuzz::Fixture& fx, bool emergency) {
  auto g = Must(keys::SignConsentGrant(fx.sender, Grant(emergency)), "grant");
  if (emergency) MustOk(keys::Countersign(g, "op-second-42", fx.auditor), "countersign");
  return schema::EncodeSignedConsentGrant(g);
}

Bytes Revocation() {
  schema::ConsentRevocation r{Id16(0x61), kCaseRef, std::string(fuzz::kSenderId),
                              schema::RevocationReason::kWithdrawnBySubject, kNow + 1000};
  return schema::EncodeConsentRevocation(r);
}

Bytes Access() {
  schema::AccessRecord r{
      Id16(0x4D),  kCaseRef,   std::string(fuzz::kRecipientId), "op-17",
      kNow + 2000, Id16(0x61), schema::MessageKind::kReferral,  std::string(fuzz::kSenderId)};
  return schema::EncodeAccessRecord(r);
}

Bytes Purge() {
  schema::PurgeConfirmation p{Id16(0x61),  kCaseRef, std::string(fuzz::kRecipientId),
                              kNow + 3000, 3,        Bytes(32, 0x5A)};
  return schema::EncodePurgeConfirmation(p);
}

Bytes Signed(const keys::Identity& who, keys::StatementType type, Bytes statement) {
  return schema::EncodeSignedStatement(keys::SignStatement(who, type, std::move(statement)));
}

Bytes Envelope(const fuzz::Fixture& fx, size_t recipients, size_t content_bytes) {
  keys::SealRequest req;
  req.kind = schema::MessageKind::kReferral;
  req.recipients.push_back(
      Must(keys::CurrentPrekey(fx.directory.directory, fuzz::kRecipientId, kNow), "prekey b"));
  if (recipients > 1) {
    req.recipients.push_back(
        Must(keys::CurrentPrekey(fx.directory.directory, fuzz::kSenderId, kNow), "prekey a"));
  }
  req.case_ref = kCaseRef;
  req.consent_grant_id = Id16(0x61);
  req.purpose = schema::Purpose::kCounseling;
  req.categories = {schema::DataCategory::kIdentity, schema::DataCategory::kIncidentSummary};
  req.now = kNow;
  req.message_id = Id16(static_cast<uint8_t>(0x10 + recipients * 16 + content_bytes % 16));
  std::string content(content_bytes, 'x');
  return Must(keys::SealEnvelope(fx.sender, req, AsBytes(content)), "envelope");
}

schema::AuditEntry Entry(uint64_t index, schema::AuditEvent event) {
  schema::AuditEntry e;
  e.index = index;
  e.time_ms = kNow + index;
  e.event = event;
  e.broker_id = std::string(fuzz::kBrokerId);
  e.actor = std::string(fuzz::kSenderId);
  e.message_id = Id16(0x4D);
  e.sender_id = std::string(fuzz::kSenderId);
  e.recipients = {std::string(fuzz::kRecipientId)};
  e.case_ref = kCaseRef;
  e.consent_grant_id = Id16(0x61);
  e.kind = schema::MessageKind::kReferral;
  e.purpose = schema::Purpose::kCounseling;
  e.envelope_sha256 = Bytes(32, 0xE5);
  e.directory_serial = 1;
  e.envelope_bytes = 1234;
  if (event == schema::AuditEvent::kEnvelopeRejected) {
    e.reason = schema::NackReason::kBadSignature;
    e.detail = "envelope signature does not verify";
  }
  if (event == schema::AuditEvent::kEnvelopeOpened) {
    e.statement_sha256 = Bytes(32, 0x5A);
    e.operator_ref = "op-17";
  }
  return e;
}

Bytes ProofBytes(const std::vector<keys::Hash>& proof) {
  Bytes out;
  for (const auto& h : proof) Append(out, h);
  return out;
}

keys::Checkpoint CheckpointAt(uint64_t size) {
  keys::Checkpoint c;
  c.origin = std::string(fuzz::kLogOrigin);
  c.size = size;
  c.root = Must(keys::RootAt(fuzz::Tree(), size), "root");
  return c;
}

std::string CosignedNote(const fuzz::Fixture& fx, uint64_t size) {
  std::string note = Must(keys::SignCheckpoint(CheckpointAt(size), fx.broker), "checkpoint");
  return Must(keys::AddCosignature(note, fuzz::kCosignerName, fx.auditor, kNow / 1000), "cosign");
}

// The auditor's cosignature line over the size-100 checkpoint, as a witness replies it.
std::string CosignatureLine(const fuzz::Fixture& fx) {
  auto body = Must(keys::FormatCheckpointBody(CheckpointAt(100)), "body");
  auto sig = Must(keys::CosignCheckpoint(body, fuzz::kCosignerName, fx.auditor, kNow / 1000),
                  "cosignature");
  return Must(keys::FormatSignatureLine(sig), "line");
}

Bytes ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// ---- per target ----------------------------------------------------------------------

void Frames(const fs::path& root, const fuzz::Fixture& fx) {
  Corpus c(root, "frame");
  using T = schema::Frame::Type;
  auto add = [&](const std::string& name, schema::Frame f) {
    f.request_id = 7;
    c.Add(name, -1, schema::EncodeFrame(f));
  };
  schema::Frame f;
  f.type = T::kHello;
  f.hello = {std::string(fuzz::kSenderId), 1, "refbus-agent/0.1"};
  add("hello", f);
  f = {};
  f.type = T::kWelcome;
  f.welcome = {std::string(fuzz::kBrokerId), 1, 4u << 20};
  add("welcome", f);
  f = {};
  f.type = T::kSubmit;
  f.submit.envelope = Envelope(fx, 1, 64);
  add("submit", f);
  f = {};
  f.type = T::kDeliver;
  f.deliver = {Envelope(fx, 2, 16), 2};
  add("deliver", f);
  f = {};
  f.type = T::kAck;
  f.ack = {Id16(0x4D), false, ""};
  add("ack", f);
  f = {};
  f.type = T::kNack;
  f.nack = {Id16(0x4D), schema::NackReason::kQuotaExceeded, "mailbox full", 5000};
  add("nack", f);
  f = {};
  f.type = T::kDirectoryFetch;
  f.directory_fetch.have_serial = 0;
  add("directory-fetch", f);
  f = {};
  f.type = T::kDirectoryReply;
  f.directory_reply.signed_directory = fx.directory_bytes;
  add("directory-reply", f);
  f = {};
  f.type = T::kGrantRegister;
  f.grant_register.signed_grant = SignedGrant(fx, false);
  add("grant-register", f);
  f = {};
  f.type = T::kGrantRevoke;
  f.grant_revoke.signed_revocation =
      Signed(fx.sender, keys::StatementType::kConsentRevocation, Revocation());
  add("grant-revoke", f);
  f = {};
  f.type = T::kAttest;
  f.attest.signed_access = Signed(fx.recipient, keys::StatementType::kAccessRecord, Access());
  add("attest-access", f);
  f = {};
  f.type = T::kAttest;
  f.attest.signed_purge = Signed(fx.recipient, keys::StatementType::kPurgeConfirmation, Purge());
  add("attest-purge", f);
  f = {};
  f.type = T::kAuditCheckpoint;
  add("audit-checkpoint", f);
  f = {};
  f.type = T::kAuditEntries;
  f.audit_entries = {10, 100};
  add("audit-entries", f);
  f = {};
  f.type = T::kAuditProof;
  f.audit_proof = {37, 100};
  add("audit-proof", f);
  f = {};
  f.type = T::kAuditConsistency;
  f.audit_consistency = {37, 100};
  add("audit-consistency", f);
  f = {};
  f.type = T::kAuditCheckpoints;
  f.audit_checkpoints = {0, 16};
  add("audit-checkpoints", f);
  f = {};
  f.type = T::kAuditReply;
  f.audit_reply.checkpoints = {CosignedNote(fx, 100)};
  f.audit_reply.entries = {
      schema::EncodeAuditEntry(Entry(37, schema::AuditEvent::kEnvelopeAccepted))};
  for (const auto& h : Must(keys::InclusionProof(fuzz::Tree(), 37, 100), "proof")) {
    f.audit_reply.hashes.emplace_back(h.begin(), h.end());
  }
  f.audit_reply.first_index = 37;
  f.audit_reply.log_size = 100;
  add("audit-reply", f);
  // Witnessing (schema/PROTOCOL.md 11.3): a peer broker asks for a cosignature.
  f = {};
  f.type = T::kWitnessRequest;
  f.witness_request.checkpoint = Must(keys::SignCheckpoint(CheckpointAt(100), fx.broker), "cp");
  f.witness_request.old_size = 37;
  for (const auto& h : Must(keys::ConsistencyProof(fuzz::Tree(), 37, 100), "proof")) {
    f.witness_request.consistency_proof.emplace_back(h.begin(), h.end());
  }
  add("witness-request", f);
  f = {};
  f.type = T::kWitnessReply;
  f.witness_reply.cosignature = CosignatureLine(fx);
  f.witness_reply.witness_size = 100;
  add("witness-reply", f);
  f = {};
  f.type = T::kWitnessReply;
  f.witness_reply.refusal = schema::WitnessRefusal::kInconsistent;
  f.witness_reply.detail = "consistency proof does not lead to the old root";
  f.witness_reply.witness_size = 120;
  add("witness-refusal", f);
  // Linkage evaluation (PROTOCOL.md 13.5): a valid ristretto255 element (the generator's
  // encoding) and an answer with a 64-byte proof.
  const Bytes generator =
      *HexDecode("e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76");
  f = {};
  f.type = T::kLinkageEvaluate;
  f.linkage_evaluate.blinded_element = generator;
  add("linkage-evaluate", f);
  f = {};
  f.type = T::kLinkageEvaluated;
  f.linkage_evaluated.evaluated_element = generator;
  f.linkage_evaluated.proof = Bytes(64, 0x01);
  add("linkage-evaluated", f);
  // Linkage tallies (PROTOCOL.md 13.7): one to record (a statement and its signature line,
  // as text) and a proof of an earlier entry.
  f = {};
  f.type = T::kLinkageTally;
  f.linkage_tally.signed_tally = ToBytes(
      "refbus linkage tally v1\nagency agency-a\nlinkage-id 5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a\n"
      "victims 2\ndeletion-items 1283\nfrom 2024-03-01\nto 2026-10-31\nmade-at-ms "
      "1780000000000\nnonce 11111111111111111111111111111111\nsignature " +
      std::string(32, 'a') + " " + std::string(128, 'b') + "\n");
  add("linkage-tally", f);
  f = {};
  f.type = T::kLinkageTally;
  f.linkage_tally.entry_index = 42;
  f.linkage_tally.tally_sha256 = Bytes(32, 0x07);
  add("linkage-tally-proof", f);
  f = {};
  f.type = T::kAddCosignature;
  f.add_cosignature.checkpoint = CosignedNote(fx, 100);
  add("add-cosignature", f);
  // An agency's operator roster (PROTOCOL.md 9.3), signed by the agency.
  keys::OperatorRoster roster;
  roster.agency = std::string(fuzz::kSenderId);
  roster.version = 3;
  roster.issued_at_ms = kNow;
  roster.operators = {{"Park Jiwoo", "supervisor", fx.recipient.signing_public_key(), true}};
  f = {};
  f.type = T::kRosterUpdate;
  f.roster_update.signed_roster =
      ToBytes(Must(keys::SignOperatorRoster(fx.sender, roster), "roster"));
  add("roster-update", f);
}

void Envelopes(const fs::path& root, const fuzz::Fixture& fx) {
  Corpus c(root, "envelope");
  for (size_t n : {1u, 2u}) {
    for (size_t len : {0u, 100u, 1024u}) {
      Bytes e = Envelope(fx, n, len);
      c.Add("envelope-" + std::to_string(n) + "rcpt-" + std::to_string(len) + "B", 0, e);
      if (len == 100) {
        c.Add("header-" + std::to_string(n) + "rcpt", 1,
              Must(schema::DecodeEnvelope(e), "envelope").header_bytes);
      }
    }
  }
}

void Directories(const fs::path& root, const fuzz::Fixture& fx) {
  Corpus c(root, "directory");
  c.Add("signed-directory", 0, fx.directory_bytes);
  c.Add("directory", 1, fx.directory.directory_bytes);
  keys::Listing l;
  l.display_name = "Fuzz Wee Center";
  l.agency_type = schema::AgencyType::kWeeCenter;
  l.region = "fuzz";
  l.home_broker = std::string(fuzz::kBrokerId);
  auto agency = Must(keys::MakePartyRecord(fx.sender, l, kNow, nullptr), "agency record");
  c.Add("signed-record-agency", 2, schema::EncodeSignedPartyRecord(agency));
  keys::Listing a;
  a.display_name = "Fuzz authority";
  auto authority = Must(keys::MakePartyRecord(fx.authority, a, kNow, nullptr), "authority record");
  c.Add("signed-record-authority", 2, schema::EncodeSignedPartyRecord(authority));
  c.Add("record-agency", 3, agency.record_bytes);
  c.Add("prekey", 4, fx.sender.prekeys().front().signed_prekey.prekey_bytes);
  c.Add("directory-file", 5, schema::WithMagic(schema::kDirectoryFileMagic, fx.directory_bytes));
}

void Consents(const fs::path& root, const fuzz::Fixture& fx) {
  Corpus c(root, "consent");
  c.Add("signed-grant", 0, SignedGrant(fx, false));
  c.Add("signed-grant-emergency", 0, SignedGrant(fx, true));
  c.Add("grant", 1, schema::EncodeConsentGrant(Grant(false)));
  c.Add("signed-revocation", 2,
        Signed(fx.sender, keys::StatementType::kConsentRevocation, Revocation()));
  c.Add("revocation", 3, Revocation());
}

void CaseMessages(const fs::path& root, const fuzz::Fixture& fx) {
  Corpus c(root, "case_message");
  using T = schema::CaseMessage::Type;
  const std::vector<schema::CaseField> fields = {
      {schema::DataCategory::kIdentity, "name", "Kim Minji"},
      {schema::DataCategory::kIncidentSummary, "summary", "Images shared without consent."}};
  auto add = [&](const std::string& name, const schema::CaseMessage& m) {
    c.Add(name, 0, schema::EncodeCaseMessage(m));
  };
  schema::CaseMessage m;
  m.type = T::kReferral;
  m.referral = {Id16(0x52),
                kCaseRef,
                std::string(fuzz::kSenderId),
                std::string(fuzz::kRecipientId),
                schema::Purpose::kCounseling,
                fields,
                SignedGrant(fx, false),
                "op-17",
                kNow};
  add("referral", m);
  m = {};
  m.type = T::kStateChange;
  m.state_change = {Id16(0x52),
                    kCaseRef,
                    schema::ReferralState::kRequested,
                    schema::ReferralState::kAccepted,
                    "capacity available",
                    "op-18",
                    kNow};
  add("state-change", m);
  m = {};
  m.type = T::kHandoff;
  m.handoff = {Id16(0x48), kCaseRef, std::string(fuzz::kSenderId), std::string(fuzz::kRecipientId),
               "moving",   fields,   SignedGrant(fx, true),        "op-19",
               kNow};
  add("handoff", m);
  m = {};
  m.type = T::kHandoffAck;
  m.handoff_ack = {Id16(0x48), kCaseRef, true, "", "op-20", kNow};
  add("handoff-ack", m);
  m = {};
  m.type = T::kDeletionRequest;
  m.deletion_request.request_id = Id16(0x44);
  m.deletion_request.case_ref = kCaseRef;
  m.deletion_request.items = {{"item-1", "https://example.org/p/1", Bytes(32, 0xC0), "example", ""},
                              {"item-2", "https://example.net/v/2", {}, "", "a note"}};
  m.deletion_request.monitor = true;
  m.deletion_request.report_to = {std::string(fuzz::kSenderId)};
  m.deletion_request.signed_grant = SignedGrant(fx, false);
  m.deletion_request.operator_ref = "op-21";
  m.deletion_request.sent_at_ms = kNow;
  add("deletion-request", m);
  m = {};
  m.type = T::kDeletionStatus;
  m.deletion_status.request_id = Id16(0x44);
  m.deletion_status.case_ref = kCaseRef;
  m.deletion_status.updates = {{"item-1", schema::DeletionItemStatus::kRemoved, kNow}};
  m.deletion_status.counts = {2, 1, 1, 0, 0};
  m.deletion_status.report_seq = 1;
  add("deletion-status", m);
  m = {};
  m.type = T::kAccessNotice;
  m.statement = *schema::DecodeSignedStatement(
      Signed(fx.recipient, keys::StatementType::kAccessRecord, Access()));
  add("access-notice", m);
  m.type = T::kConsentRevocation;
  m.statement = *schema::DecodeSignedStatement(
      Signed(fx.sender, keys::StatementType::kConsentRevocation, Revocation()));
  add("revocation-notice", m);
  m.type = T::kPurgeConfirmation;
  m.statement = *schema::DecodeSignedStatement(
      Signed(fx.recipient, keys::StatementType::kPurgeConfirmation, Purge()));
  add("purge-notice", m);
  m = {};
  m.type = T::kCaseClosed;
  m.case_closed = {kCaseRef, std::string(fuzz::kSenderId), "support completed", "op-22", kNow};
  add("case-closed", m);
  m = {};
  m.type = T::kLinkageEntry;
  m.linkage_entry = {kCaseRef,
                     Id16(0x4C),
                     Bytes(32, 0x54),
                     Bytes(32, 0x05),
                     Bytes(80, 0x5E),
                     kNow + 1,
                     SignedGrant(fx, false),
                     "op-23",
                     kNow};
  add("linkage-entry", m);
  m = {};
  m.type = T::kLinkageNotice;
  m.linkage_notice = {kCaseRef,
                      Bytes(16, 0x4E),
                      "phone",
                      {{std::string(fuzz::kRecipientId), kNow, kNow, 2, 9}},
                      kNow};
  add("linkage-notice", m);
  m = {};
  m.type = T::kLinkageTally;
  m.linkage_tally = {kCaseRef,
                     Bytes(16, 0x4E),
                     R"({"agency":"fuzz-sender","tally":"refbus linkage tally v1\n"})",
                     SignedGrant(fx, false),
                     "op-25",
                     kNow};
  add("linkage-tally", m);
  // The deletion centers' watch list (PROTOCOL.md 10.3): a full file and a request for one.
  m = {};
  m.type = T::kDeletionWatchList;
  m.watch_list.file =
      R"({"list":"refbus-watch-list v1\npublisher fuzz-dsc\nversion 3\n","signature":"00"})";
  add("watch-list", m);
  m = {};
  m.type = T::kDeletionWatchList;
  m.watch_list.request_full = true;
  m.watch_list.held_version = 2;
  add("watch-list-request", m);
  c.Add("signed-access", 1, Signed(fx.recipient, keys::StatementType::kAccessRecord, Access()));
  c.Add("access", 2, Access());
  c.Add("signed-purge", 3, Signed(fx.recipient, keys::StatementType::kPurgeConfirmation, Purge()));
  c.Add("purge", 4, Purge());
}

void Audit(const fs::path& root) {
  Corpus c(root, "audit");
  const auto& tree = fuzz::Tree();
  c.Add("entry-accepted", 0,
        schema::EncodeAuditEntry(Entry(0, schema::AuditEvent::kEnvelopeAccepted)));
  c.Add("entry-rejected", 0,
        schema::EncodeAuditEntry(Entry(1, schema::AuditEvent::kEnvelopeRejected)));
  c.Add("entry-opened", 0, schema::EncodeAuditEntry(Entry(2, schema::AuditEvent::kEnvelopeOpened)));
  // An operator roster as the broker records it (PROTOCOL.md 9.3): the signed file itself.
  schema::AuditEntry roster = Entry(3, schema::AuditEvent::kOperatorRoster);
  roster.signed_roster = ToBytes("refbus-operator-roster v1\nagency fuzz-agency\nversion 3\n");
  c.Add("entry-operator-roster", 0, schema::EncodeAuditEntry(roster));
  for (uint64_t n : {0u, 1u, 7u, 100u}) {
    keys::MerkleFrontier f;
    for (uint64_t i = 0; i < n; ++i) f.Append(tree.LeafHashAt(i));
    c.Add("frontier-" + std::to_string(n), 1, f.Serialize());
  }
  struct Incl {
    uint64_t size, index;
  };
  for (Incl t : {Incl{100, 37}, Incl{64, 0}, Incl{1, 0}, Incl{99, 98}}) {
    Bytes in = {static_cast<uint8_t>(t.size - 1), static_cast<uint8_t>(t.index)};
    Append(in, ProofBytes(Must(keys::InclusionProof(tree, t.index, t.size), "inclusion")));
    c.Add("inclusion-" + std::to_string(t.index) + "-of-" + std::to_string(t.size), 2, in);
  }
  for (Incl t : {Incl{100, 37}, Incl{100, 64}, Incl{5, 0}, Incl{5, 5}}) {
    Bytes in = {static_cast<uint8_t>(t.index), static_cast<uint8_t>(t.size)};
    Append(in, ProofBytes(Must(keys::ConsistencyProof(tree, t.index, t.size), "consistency")));
    c.Add("consistency-" + std::to_string(t.index) + "-to-" + std::to_string(t.size), 3, in);
  }
  Bytes raw;
  AppendU64BigEndian(raw, 37);
  AppendU64BigEndian(raw, 100);
  Append(raw, tree.LeafHashAt(37));
  Append(raw, Must(keys::RootAt(tree, 100), "root"));
  Append(raw, ProofBytes(Must(keys::InclusionProof(tree, 37, 100), "inclusion")));
  c.Add("raw-inclusion-37-of-100", 4, raw);
}

void Checkpoints(const fs::path& root, const fuzz::Fixture& fx) {
  Corpus c(root, "checkpoint");
  keys::Checkpoint cp = CheckpointAt(100);
  c.Add("body", 0, Must(keys::FormatCheckpointBody(cp), "body"));
  keys::Checkpoint ext = CheckpointAt(0);
  ext.extensions = {"extension line"};
  c.Add("body-extension", 0, Must(keys::FormatCheckpointBody(ext), "body"));
  const std::string signed_note = Must(keys::SignCheckpoint(cp, fx.broker), "checkpoint");
  const std::string cosigned = CosignedNote(fx, 100);
  c.Add("note", 1, cosigned);
  c.Add("checkpoint", 2, signed_note);
  c.Add("checkpoint-cosigned", 2, cosigned);
  c.Add("checkpoint-cosignature-required", 3, cosigned);
  // A line from a key nobody knows is ignored, not refused.
  keys::SignedNote n = Must(keys::ParseSignedNote(cosigned), "note");
  n.signatures.push_back({"witness.example/unknown", 0x01020304, Bytes(72, 0x77)});
  c.Add("checkpoint-unknown-witness", 3, Must(keys::FormatSignedNote(n), "note"));
  c.Add("line-cosignature", 4, CosignatureLine(fx));
  c.Add("line-unknown-witness", 4, Must(keys::FormatSignatureLine(n.signatures.back()), "line"));
}

void KeyFiles(const fs::path& root, const fuzz::Fixture& fx) {
  Corpus c(root, "keyfile");
  const fs::path tmp = fs::temp_directory_path() / "refbus-make-seeds";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const auto saved = [&](const keys::Identity& id, const keys::SecretBuffer* pass) {
    const std::string p = (tmp / (id.party_id() + ".key")).string();
    MustOk(keys::SaveIdentity(id, p, pass, keys::KdfCost{1, 8192}), "save identity");
    return ReadAll(p);
  };
  const Bytes agency = saved(fx.sender, nullptr);
  c.Add("identity-agency", 0, agency);
  c.Add("identity-broker", 0, saved(fx.broker, nullptr));
  c.Add("identity-authority", 0, saved(fx.authority, nullptr));
  auto pass = Must(keys::SecretBuffer::CopyOf(AsBytes(fuzz::kPassphrase)), "passphrase");
  const Bytes protected_agency = saved(fx.recipient, &pass);
  c.Add("identity-agency-protected", 1, protected_agency);
  const auto body = [](const Bytes& file) {
    return Bytes(file.begin() + static_cast<std::ptrdiff_t>(schema::kSecretKeyFileMagic.size()),
                 file.end());
  };
  c.Add("container-agency", 2, body(agency));
  c.Add("container-protected", 2, body(protected_agency));
  keys::Listing a;
  a.display_name = "Fuzz authority";
  auto anchor = Must(keys::MakePartyRecord(fx.authority, a, kNow, nullptr), "authority record");
  const std::string anchor_path = (tmp / "authority.pub").string();
  MustOk(keys::WritePartyRecordFile(anchor_path, anchor), "write anchor");
  c.Add("anchor", 3, ReadAll(anchor_path));
  const std::string state_path = (tmp / "trust-state").string();
  auto state = Must(keys::TrustState::Open(state_path), "trust state");
  MustOk(state.Accept(fx.directory), "accept directory");
  c.Add("trust-state", 4, ReadAll(state_path));
  keys::Listing l;
  l.display_name = "Fuzz Counseling Center";
  l.agency_type = schema::AgencyType::kCounselingCenter;
  l.region = "fuzz";
  l.home_broker = std::string(fuzz::kBrokerId);
  auto rec = Must(keys::MakePartyRecord(fx.recipient, l, kNow, nullptr), "record");
  const std::string rec_path = (tmp / "agency.record").string();
  MustOk(keys::WritePartyRecordFile(rec_path, rec), "write record");
  c.Add("party-record", 5, ReadAll(rec_path));
  fs::remove_all(tmp);
}

void Configs(const fs::path& root) {
  Corpus c(root, "config");
  c.Add("broker-full", 0, R"([broker]
id = "fuzz-broker"
bind = "tcp://127.0.0.1:*"
data_dir = "data"
key_file = "identity.key"
passphrase_file = "passphrase"
directory = "directory"
anchor = "authority.pub"
trust_state = "trust-state"
endpoint_file = "endpoint"

[limits]
max_frame_bytes = 4194304
mailbox_quota = 100000
max_batch = 1024
delivery_window = 256
redelivery_ms = 10000
map_size_mb = 4096

[policy]
allow_unscoped_opaque = false

[audit]
checkpoint_interval_ms = 10000
)");
  c.Add("broker-witness", 0, R"([broker]
id = "fuzz-broker"
bind = "tcp://127.0.0.1:7450"
data_dir = "data"
key_file = "identity.key"
directory = "directory"
anchor = "authority.pub"
trust_state = "trust-state"

[witness]
peers = ["busan-broker", "central-broker"]
endpoints = { busan-broker = "tcp://10.0.0.7:7450" }
endpoint_files = { central-broker = "../central/endpoint" }
interval_ms = 1000
timeout_ms = 5000
)");
  c.Add("broker-minimal", 0, R"([broker]
id = "seoul-broker"
bind = "ipc:///run/refbus/broker.sock"
data_dir = "./var/../data"
key_file = "identity.key"
directory = "directory"
anchor = "authority.pub"
trust_state = "state/trust-state"
)");
  c.Add("agent-full", 1, R"([agent]
id = "fuzz-agency-a"
data_dir = "data"
key_file = "identity.key"
passphrase_file = "passphrase"
directory = "directory"
anchor = "authority.pub"
trust_state = "trust-state"
broker_endpoint = "tcp://127.0.0.1:7450"

[api]
listen = "127.0.0.1:0"
url_file = "api.url"
token_file = "api.token"
command_timeout_ms = 30000
)");
  c.Add("agent-minimal", 1, R"([agent]
id = "incheon-wee-01"
data_dir = "data"
key_file = "identity.key"
directory = "directory"
anchor = "authority.pub"
trust_state = "trust-state"
)");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_fuzz_seeds CORPUS_ROOT   (e.g. tests/fuzz/corpus)\n");
    return 2;
  }
  const fs::path root(argv[1]);
  const fuzz::Fixture& fx = fuzz::Get();
  Frames(root, fx);
  Envelopes(root, fx);
  Directories(root, fx);
  Consents(root, fx);
  CaseMessages(root, fx);
  Audit(root);
  Checkpoints(root, fx);
  KeyFiles(root, fx);
  Configs(root);
  return 0;
}
