// Engine::Impl: the engine's state and the steps its workflows share. Internal to the
// engine's files:
//   engine.cpp           creation, polling, directory, status and snapshot
//   engine_outgoing.cpp  sealing and queueing for the broker, the broker's answers
//   engine_inbound.cpp   the inbox: each delivered message to its handler; Inbox, Open
//   engine_consent.cpp   grants: record, list, revoke; revocations and purges
//   engine_referral.cpp  referrals and their states
//   engine_handoff.cpp   handoffs of a case's lead
//   engine_deletion.cpp  deletion requests and status reports
//   engine_case.cpp      cases: timeline, local numbers, closing
// Requests and answers are mapped to and from JSON in engine_requests.cpp; records to and
// from their stored form in records.cpp.
//
// Thread safety: none (as Engine).
#ifndef REFBUS_AGENT_ENGINE_IMPL_H_
#define REFBUS_AGENT_ENGINE_IMPL_H_

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "agent/case_crypto.h"
#include "agent/case_message.h"
#include "agent/case_store.h"
#include "agent/client.h"
#include "agent/deletion_bulk.h"
#include "agent/engine.h"
#include "agent/engine_requests.h"
#include "agent/linkage_store.h"
#include "agent/operators.h"
#include "agent/records.h"
#include "agent/records_json.h"
#include "agent/transport_store.h"
#include "keys/consent.h"
#include "keys/identity.h"
#include "keys/operator_signature.h"
#include "keys/tally_bundle.h"
#include "schema/types.h"

namespace refbus::agent {

// A grant the store holds, as checked (known) and as stored (record, under key).
struct StoredGrant {
  std::string key;  // hex id
  KnownGrant known;
  GrantRecord record;
  const schema::ConsentGrant& grant() const { return known.grant.grant; }
  // The purpose a message under the grant goes with when no other is named.
  schema::Purpose FirstPurpose() const;
};

// A tally as the linkage store keeps it (PROTOCOL.md 13.8): evidence, who made it when, the
// tally's hash, and how it came (source "own", "file" or "bus"; message_id for "bus").
TallyRecord HeldTally(const keys::TallyEvidence& ev, UnixMillis made_at_ms, std::string source,
                      std::string message_id, UnixMillis received_at_ms);

struct Engine::Impl {
  keys::Identity identity;
  schema::SignedDirectory directory;
  EngineOptions options;
  std::unique_ptr<TransportStore> transport_store;
  std::unique_ptr<CaseStore> case_store;
  std::unique_ptr<GrantKeys> grant_keys;        // the data keys sealing case text at rest
  std::unique_ptr<LinkageStore> linkage_store;  // links, matches; the escrow at its party
  std::unique_ptr<Client> client;
  std::set<std::string> handed;  // outgoing items given to the client in this process
  // Messages waiting for a prekey (kWaitingPrekey): inbox sequence -> message id (hex),
  // retried in arrival order. Rebuilt from the case store at Create.
  std::map<uint64_t, std::string> waiting_prekey;
  bool keys_stale = false;  // a message met an unknown prekey: read the key file again
  std::chrono::steady_clock::time_point next_prekey_retry{};
  std::chrono::steady_clock::time_point last_key_reload{};
  // The newest prekey other agencies published (one per owner, verified when it arrived),
  // kept in the transport store; senders seal to the newest valid one (PROTOCOL.md "Prekey
  // publication").
  std::vector<schema::SignedPrekey> published;
  // Chunked deletion requests this deletion center does not hold whole yet (loaded from the
  // store at the first check), and when to check them next (engine_deletion_chunks.cpp).
  std::map<std::string, UnixMillis> incomplete_deletions;  // request -> latest chunk or ask
  bool incomplete_loaded = false;
  // Chunked requests this requester sent that the deletion center has not answered at all
  // (no report: every chunk may be lost), and when they were last sent.
  std::map<std::string, UnixMillis> unanswered_deletions;
  std::chrono::steady_clock::time_point next_chunk_check{};
  bool chunk_dropped = false;  // options.test_skip_deletion_chunk was applied once
  // The watch list in parts (engine_deletion_watch.cpp): options.test_skip_watch_part was
  // applied once; when each center was last answered its full list; the next check of
  // staged parts.
  bool watch_part_dropped = false;
  std::map<std::string, UnixMillis> watch_full_answered;
  std::chrono::steady_clock::time_point next_watch_parts_check{};
  // The logged-in operator of the command being run (Engine::ActingOperator), or null for
  // the service account and for the engine's own work (purges, retention, deliveries).
  std::shared_ptr<const OperatorKey> acting;

  Impl(keys::Identity id, schema::SignedDirectory dir, EngineOptions o)
      : identity(std::move(id)), directory(std::move(dir)), options(std::move(o)) {}

  const std::string& me() const { return identity.party_id(); }
  const schema::Directory& dir() const { return directory.directory; }
  static UnixMillis Now() { return SystemClock::Get().NowMillis(); }

  // ---- grants (engine_consent.cpp) ----
  Result<std::optional<KnownGrant>> LoadGrant(const CaseStore::Txn& txn, ByteView grant_id);
  // kInvalidArgument for a malformed id, kNotFound (telling what to do) for an unknown one.
  Result<StoredGrant> RequireGrant(const CaseStore::Txn& txn, const std::string& grant_hex);
  // Stores a grant received inside a message (verified by OpenCase) if new.
  Status RememberGrant(CaseStore::Txn& txn, const schema::SignedConsentGrant& g,
                       const std::string& from);
  // Remembers that data under the grant went to `to`: a revocation is sent (or forwarded)
  // to every agency listed here.
  Status RecordShare(CaseStore::Txn& txn, StoredGrant& grant, const std::string& to);
  Status MarkRevoked(CaseStore::Txn& txn, const schema::ConsentRevocation& rev,
                     const std::string& from);
  Status ForwardRevocation(CaseStore::Txn& txn, const schema::SignedStatement& statement,
                           const schema::ConsentRevocation& rev, const std::set<std::string>& skip);
  // Purges what arrived under revoked grants and confirms it. Idempotent.
  Status RunPendingPurges();
  // Tombstones the grant's messages, destroys its data key, and confirms (signed) to the
  // broker's audit log and, when recorded elsewhere, to the recorder. why: "consent
  // revoked" or "retention passed" (timeline and log).
  Status PurgeGrant(const std::string& grant_key, const GrantRecord& grant,
                    const std::vector<std::pair<std::string, MessageRecord>>& messages,
                    const std::string& why);
  GrantLookup Lookup(const CaseStore::Txn& txn);
  // Purges the data of grants whose retention has passed (engine_retention.cpp).
  Status EnforceRetention();

  // ---- case text at rest (engine_text.cpp) ----
  // Free text sealed under the grant's data key at its place; empty text stays empty.
  Result<CaseText> SealText(const std::string& grant_hex, const std::string& place,
                            const std::string& text);
  // Seals the free text older versions stored in the clear (at start).
  Status SealLegacyText();
  // The text, or what stands in for it: "[purged: ...]", "[unreadable: ...]".
  nlohmann::json ReadText(const CaseText& text, const std::string& place);
  // The case view; read: how its free text is shown.
  Result<Json> CaseView(const CaseStore::Txn& txn, const std::string& case_ref,
                        const TextReader& read);

  // The acting operator's signature over record (keys/operator_signature.h), when the
  // record names them (operator_ref); none for the service account and for records no
  // operator makes.
  std::optional<schema::OperatorSignature> SignAsOperator(keys::OperatorAction action,
                                                          ByteView record,
                                                          const std::string& operator_ref) const;

  // Adds the acting operator's signature to a case message they send (referral, state
  // change, handoff and its answer, deletion request and status report, case close);
  // SendCase calls it. Statements carry theirs inside (SignAsOperator).
  void SignCaseMessage(schema::CaseMessage& message) const;
  // What a received message's operator signature says, checked with the key it carries
  // (the sender's roster is the auditor's): on the inbox record.
  static void NoteOperatorSignature(const schema::CaseMessage& message, MessageRecord& msg);

  // ---- access records (engine_inbound.cpp) ----
  // Signs the access record, queues it for the broker's audit log and, when its owner is
  // another agency, sends the owner the access notice under grant with purpose (a notice
  // that cannot be sent is logged; the attestation still goes to the broker).
  Status RecordAccess(CaseStore::Txn& txn, const schema::AccessRecord& record,
                      const KnownGrant& grant, schema::Purpose purpose);
  // The recorded read of a case's text (engine_text.cpp): an access record for each
  // piece of another agency's text it shows.
  Status RecordTextAccess(CaseStore::Txn& txn, const std::string& case_ref,
                          const std::string& operator_ref);

  // ---- received envelopes at rest (engine_at_rest.cpp) ----
  // The inbox's sealer: a delivered envelope naming a grant (and, if verify, signed by a
  // listed sender) is kept only sealed under that grant's data key. Empty (kept as
  // delivered): no grant, not verified, or the grant's data already purged.
  Result<Bytes> SealEnvelopeAtRest(ByteView message_id, ByteView envelope, bool verify);
  // Seals what an older store holds as delivered, then sets the inbox's sealer (at Create).
  Status SealInboxAtRest();
  // The envelope as delivered: unsealed if kept sealed, checked against its SHA-256.
  // kFailedPrecondition ("purged") if its grant's data key was destroyed.
  Result<Bytes> EnvelopeOf(const InboxRecord& r);

  // ---- cases (engine_case.cpp) ----
  // The case, or a new empty one.
  Result<CaseRecord> LoadCase(const CaseStore::Txn& txn, const std::string& case_ref);
  Status AddGrantToCase(CaseStore::Txn& txn, const std::string& case_ref,
                        const std::string& grant_hex);
  // Appends to the case's timeline, stamped now.
  Status Timeline(CaseStore::Txn& txn, const std::string& case_ref, TimelineEvent event);
  Result<CaseText> SealClosedReason(const CaseRecord& c,
                                    const std::map<std::string, std::string>& peers,
                                    const std::string& reason);
  // A case pseudonym or local case number -> the case pseudonym.
  Result<std::string> ResolveCase(const CaseStore::Txn& txn, const std::string& ref);

  // ---- outgoing (engine_outgoing.cpp) ----
  // Seals, records as outgoing (with the envelope, so a restart resubmits it); returns the
  // message id. Handed to the client by FlushAfterCommit.
  Result<Bytes> SendCase(CaseStore::Txn& txn, const KnownGrant& grant, schema::CaseMessage message,
                         std::vector<std::string> to, schema::Purpose purpose,
                         const std::string& what);
  // Records a sealed envelope as outgoing (SendCase's last step); returns its message id.
  Result<Bytes> QueueEnvelope(CaseStore::Txn& txn, Bytes envelope,
                              const std::vector<std::string>& to, const std::string& what);
  Status QueueControl(CaseStore::Txn& txn, const Bytes& id, const schema::Frame& frame,
                      const std::string& what, const std::string& case_ref);
  Result<uint64_t> NextOutgoingSeq(CaseStore::Txn& txn);
  // After a commit: hands every queued outgoing item to the client (idempotent).
  Status FlushOutgoing();
  void FlushAfterCommit();
  // The broker's ack or refusal of something this agency queued.
  Status OnAnswer(const ClientEvent& ev);

  // ---- inbound (engine_inbound.cpp and the workflow files) ----
  Status ProcessInbox();
  Status ProcessOne(CaseStore::Txn& txn, const InboxRecord& r);

  // ---- published prekeys (engine_published.cpp) ----
  Status LoadPublished();  // at Create, from the transport store
  // A prekey the broker sent: verified against the directory, kept if newer than the one
  // held for its owner. A refused one is logged, never an error of the loop.
  void OnPublishedPrekey(const Bytes& signed_prekey);

  // ---- prekeys (engine_prekeys.cpp) ----
  // The fingerprint of this agency's prekey the envelope is sealed to, if the envelope is
  // valid (signature, times) but that prekey is not among the identity's: the message waits.
  std::optional<std::string> MissingPrekey(ByteView envelope) const;
  Status LoadWaiting();  // at Create
  // Reads the key file again (if a loader is set), then retries every waiting message.
  Status ReloadKeysAndRetry();
  Status RetryWaiting();
  // From Poll: retries when a message met an unknown prekey, and on the timer.
  void PrekeyTurn();
  Status Refuse(CaseStore::Txn& txn, MessageRecord& msg, const std::string& case_ref,
                const std::string& why);
  // The delivered message to its kind's handler. An error refuses the message.
  Status Apply(CaseStore::Txn& txn, const OpenedCase& oc, MessageRecord& msg);
  Status VerifyStatementFrom(const schema::SignedStatement& st, keys::StatementType type,
                             const std::string& signer, UnixMillis signed_at);
  Status OnReferral(CaseStore::Txn& txn, const OpenedCase& oc, MessageRecord& msg);
  Status OnStateChange(CaseStore::Txn& txn, const OpenedCase& oc);
  Status OnHandoff(CaseStore::Txn& txn, const OpenedCase& oc, MessageRecord& msg);
  Status OnHandoffAck(CaseStore::Txn& txn, const OpenedCase& oc);
  Status OnDeletionRequest(CaseStore::Txn& txn, const OpenedCase& oc, MessageRecord& msg);
  Status OnDeletionStatus(CaseStore::Txn& txn, const OpenedCase& oc, MessageRecord& msg);
  // Applies a report's updates to the record and each item's history (requester, observer).
  Status ApplyDeletionUpdates(CaseStore::Txn& txn, DeletionRecord& r,
                              const schema::DeletionStatusReport& ds, const std::string& from,
                              MessageRecord& msg);

  // ---- chunked deletion requests (engine_deletion_chunks.cpp) ----
  Status StoreDeletionChunk(CaseStore::Txn& txn, const std::string& grant_hex,
                            const std::string& qid, uint32_t index,
                            std::span<const schema::DeletionItem> items,
                            const std::string& message_id);
  Result<std::vector<schema::DeletionItem>> LoadDeletionChunk(const CaseStore::Txn& txn,
                                                              const std::string& qid,
                                                              uint32_t index);
  // Every chunk's items in order (REQUIRES: every chunk held).
  Result<std::vector<schema::DeletionItem>> LoadDeletionList(const CaseStore::Txn& txn,
                                                             const DeletionRecord& r);
  // Sends chunk `index` to r.peer and keeps it (sealed) with the message that carried it.
  Status SendDeletionChunk(CaseStore::Txn& txn, const StoredGrant& grant, const DeletionRecord& r,
                           const schema::DeletionRequest& base, uint32_t index,
                           std::span<const schema::DeletionItem> items);
  Status ResendDeletionChunks(CaseStore::Txn& txn, DeletionRecord& r,
                              const std::vector<uint32_t>& chunks, const std::string& operator_ref);
  Status SendListReport(CaseStore::Txn& txn, DeletionRecord& r, std::vector<uint32_t> missing);
  Status CheckDeletionChunk(const schema::DeletionRequest& dr,
                            const std::optional<DeletionRecord>& rec, const std::string& from);
  Status OnDeletionChunk(CaseStore::Txn& txn, const OpenedCase& oc, MessageRecord& msg);
  Status CompleteDeletionList(CaseStore::Txn& txn, DeletionRecord& r);
  Status DeletionChunkTurn();  // from Poll
  // A check paced by the chunk timeout (a quarter of it, 50 ms to 5 s) is due: advances next.
  bool ChunkCheckDue(std::chrono::steady_clock::time_point& next) const;
  // The requester's side of it: every chunk sent again when the center said nothing.
  Result<size_t> UnansweredDeletionTurn(CaseStore::Txn& txn);
  // The report of a delta of one request (engine_deletion.cpp); the caller commits.
  Result<DeletionReported> SendDeletionDelta(CaseStore::Txn& txn, DeletionRecord& r,
                                             const std::vector<StatusLine>& delta,
                                             const std::string& operator_ref);

  // ---- the deletion center's work queue and watch list (engine_deletion_work.cpp) ----
  // Links every item of a request held whole to its work item (created when new).
  Status LinkWorkItems(CaseStore::Txn& txn, const DeletionRecord& r,
                       const std::vector<schema::DeletionItem>& items);
  // A revoked grant: the center unlinks its requests from the work queue (ending watching
  // where no monitoring requester is left); the requester marks its monitored requests
  // stopped, with the reason, on the request and the case.
  Status EndWatching(CaseStore::Txn& txn, const std::string& grant_key, const std::string& reason,
                     const std::string& by);
  // ---- the watch list over the bus (engine_deletion_watch.cpp, PROTOCOL.md 10.3) ----
  // A delivered DELETION_WATCH_LIST envelope: opened and checked (OpenGrantless), then a
  // list is verified and imported (a delta whose base is not held asks the publisher for
  // its full list), and a request for the full list is answered with it. A refusal is on
  // the message (inbox); saves msg.
  Status ProcessWatchListMessage(CaseStore::Txn& txn, ByteView envelope, MessageRecord& msg);
  // The three kinds of watch-list message (each sets msg.watch_list to what came of it; an
  // error is a refusal of the message, kIoError and kInternal aside).
  Status AnswerFullWatchListRequest(CaseStore::Txn& txn, const std::string& from,
                                    MessageRecord& msg);
  Status StageWatchListPart(CaseStore::Txn& txn, const schema::WatchListPart& part,
                            const std::string& from, MessageRecord& msg);
  // hashes, if given: set to how many the imported list holds (left alone otherwise).
  Status ImportWatchText(CaseStore::Txn& txn, const std::string& text, const std::string& from,
                         MessageRecord& msg, size_t* hashes = nullptr);
  // From Poll: staged parts that stopped coming are asked for again, or expire.
  Status WatchPartsTurn();
  // Verifies a watch-list file and applies it to what this center holds of its publisher;
  // marks the work items it lists. The caller commits.
  // from: the sending center (its own list only), or "" (an operator's import). A delta
  // whose base is not held is not applied: the answer is {needs_full: why, publisher,
  // held_version}.
  Result<Json> ImportWatchFile(CaseStore::Txn& txn, const Json& file, const std::string& from);
  // Seals a grant-less watch-list message to one deletion center and queues it.
  Result<Bytes> SendWatchList(CaseStore::Txn& txn, schema::DeletionWatchList body,
                              const std::string& to, const std::string& what);
  // Publishing: sends file to every other active agency with the deletion role; the answer
  // names those it went to and why any could not be sent.
  Result<Json> SendWatchListToCenters(CaseStore::Txn& txn, const Json& file);
  // Sends the file text to one center: in one message when parts is empty, else part by
  // part (SplitWatchFile). Returns the number of messages queued.
  Result<size_t> SendWatchFile(CaseStore::Txn& txn, const std::string& text,
                               const std::vector<schema::WatchListPart>& parts,
                               const std::string& to, const std::string& what);
  // Takedown notice answers an older version stored in the clear: each is sealed under
  // its work item's linked grants in force, or dropped when none is (SealLegacyText, at
  // start). Returns how many.
  Result<size_t> SealLegacyNoticeAnswers(CaseStore::Txn& txn);
  Status RecordChunkAccess(CaseStore::Txn& txn, const DeletionRecord& r,
                           const std::string& operator_ref);
  // ---- linkage (engine_linkage.cpp, PROTOCOL.md 13.6) ----
  bool IsEscrow() const;  // this agency has the role linkage-escrow
  Result<std::string> EscrowParty() const;
  Result<StoredGrant> LinkageGrant(const CaseStore::Txn& txn, const std::string& case_ref,
                                   const std::string& grant_hex, const std::string& escrow);
  Status OnLinkageEntry(CaseStore::Txn& txn, const OpenedCase& oc, MessageRecord& msg);
  Status SendLinkageNotices(CaseStore::Txn& txn, ByteView tag, const linkage::LinkageMatch& match);
  // One notice to the agency of rec, for its deposit dep; false if none could be sent.
  Result<bool> SendLinkageNotice(CaseStore::Txn& txn, const DepositRecord& dep,
                                 const linkage::EscrowRecord& rec,
                                 const linkage::LinkageMatch& match);
  Status OnLinkageNotice(CaseStore::Txn& txn, const OpenedCase& oc, MessageRecord& msg);
  // Checks another agency's evidence about the linkage id (keys::CheckTallyEvidence) and
  // keeps it unless a newer tally of that agency is held (FailedPrecondition then, naming
  // both times; the same tally again is kept as it was). source: "file" or "bus".
  Status KeepTallyEvidence(const std::string& linkage_hex, ByteView linkage_id,
                           const keys::TallyEvidence& ev, const std::string& source,
                           const std::string& message_id);
  // A linked agency's tally evidence (engine_linkage_tally.cpp, PROTOCOL.md 13.8).
  Status OnLinkageTally(CaseStore::Txn& txn, const OpenedCase& oc, MessageRecord& msg);
  // The grant a tally about linkage_hex travels under to `to` (13.8): recorded by this
  // agency for a case of its notice naming `to`, in force, purpose linkage, `to` a recipient.
  Result<StoredGrant> TallyGrant(const CaseStore::Txn& txn, const std::string& linkage_hex,
                                 const std::string& to, const std::string& grant_hex);
  // At the escrow: a revoked grant's entries withdrawn; expired entries dropped.
  Status WithdrawLinkage(CaseStore::Txn& txn, const std::string& grant_hex,
                         const std::string& case_ref);
  Status ExpireLinkage();

  Status OnAccessNotice(CaseStore::Txn& txn, const OpenedCase& oc);
  Status OnRevocation(CaseStore::Txn& txn, const OpenedCase& oc);
  Status OnPurgeConfirmation(CaseStore::Txn& txn, const OpenedCase& oc);
  Status OnCaseClosed(CaseStore::Txn& txn, const OpenedCase& oc);
};

// The agent's own words for a withdrawal by revocation (kept plain).
inline constexpr char kRevokedWords[] = "consent revoked";

// The grant a record holds, decoded.
Result<KnownGrant> KnownFrom(const GrantRecord& rec);

// The first 16 bytes of the statement's SHA-256: the id its control frame is queued under.
Bytes StatementId(ByteView signed_statement);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_ENGINE_IMPL_H_
