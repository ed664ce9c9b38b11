// Engine: an agency's workflows over the bus. It owns the agency's session with its home
// broker (Client), its transport store (TransportStore) and its case store, and turns the
// commands of the local API into consent-checked, sealed case messages, and delivered
// envelopes into referral states, handoffs, deletion status, access notices, revocations
// and purges (PROTOCOL.md 9 and 10).
//
// Commands take and return JSON (the local API's bodies, documented per method below and
// in agent/API.md); ids travel as lowercase hex, times as Unix milliseconds, enums by
// their readable names ("counseling-center", "withdrawn-by-guardian"). A command either
// succeeds with everything it changed committed locally (and queued durably for the
// broker), or fails with a Status whose message tells the operator what to do:
//   kInvalidArgument    a malformed request (names the field)
//   kNotFound           unknown referral, message, grant or case
//   kPermissionDenied   outside the consent (names the field, category or recipient)
//   kFailedPrecondition not allowed now (illegal state change, revoked grant, not the lead)
// Messages never contain field values.
//
// Content at rest: the engine keeps no plaintext. Delivered envelopes are kept in the
// inbox sealed under the data key of the grant they name (agent/engine_at_rest.cpp), on
// top of their sealing to this agency's prekeys; "open" decrypts on demand and records
// the access. Case data an operator sends is sealed at once and not kept. Free text the
// case store keeps (reasons) is sealed under the data key of its grant
// (agent/case_crypto.h); the lists show "[sealed: ...]" and ReadCase shows it, recording
// the read (and, for another agency's words, telling it as open does). Purging a grant
// (revoked, or its retention passed) replaces its messages' envelopes by tombstones (the
// ids stay, for deduplication) and destroys the grant's data key: nothing under the grant
// can be opened or read again, in the stores' freed pages and in backups too.
//
// Thread safety: none. One thread (the daemon's loop) calls Poll() and every command.
#ifndef REFBUS_AGENT_ENGINE_H_
#define REFBUS_AGENT_ENGINE_H_

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "agent/client.h"
#include "agent/linkage_client.h"
#include "core/clock.h"
#include "core/status.h"
#include "keys/identity.h"
#include "keys/operator_roster.h"
#include "schema/types.h"

namespace refbus::agent {

using Json = nlohmann::json;

struct EngineOptions {
  std::string data_dir;         // transport store in <data_dir>/transport, cases in /cases
  std::string broker_endpoint;  // empty: the home broker's endpoint from the directory
  ClientOptions client;
  UnixMillis message_lifetime_ms = 30 * kMillisPerDay;
  // The per-grant data keys (agent/case_crypto.h); empty: <data_dir>/grant-keys (out of
  // the stores, and so out of every backup: agent/backup.h).
  std::string grant_key_dir;
  // Reads this agency's key file again (the daemon's loader). Called when a delivered
  // message is sealed to a prekey the engine does not hold, by ReloadKeys, and every
  // prekey_retry_ms while such messages wait. Empty: the keys given to Create only.
  std::function<Result<keys::Identity>()> reload_keys;
  int prekey_retry_ms = 30000;
  // A deletion center asks again for the chunks of a request still missing this long after
  // the latest chunk arrived (PROTOCOL.md 10.1).
  int64_t deletion_chunk_timeout_ms = 60000;
  // The deletion center's work queue: an item not removed this many days after it was
  // first requested is flagged overdue.
  int64_t deletion_overdue_days = 14;
  // Tests only: the requester keeps this chunk (0-based) of the next chunked request it
  // sends, without sending it (once per process), so its loss and recovery can be seen.
  // kSkipAllDeletionChunks: every chunk of that request (the requester must notice that
  // the center never answered).
  int64_t test_skip_deletion_chunk = -1;
  // Tests only: the publisher keeps this part (0-based) of the first watch-list file it
  // sends in parts, without sending it (once per process), so the receiving center must
  // notice it missing and ask again.
  int64_t test_skip_watch_part = -1;
  // Linkage (PROTOCOL.md 13.6): the two evaluators an entry's pseudonym comes from, the
  // escrow's threshold (the same at every agency and the escrow), and the escrow party
  // (empty: the directory's one agency with the role linkage-escrow).
  LinkageClientOptions linkage;
  uint32_t escrow_threshold = 2;
  std::string linkage_escrow;
};

inline constexpr int64_t kSkipAllDeletionChunks = 1000;
// A requester sends every chunk of a request again when the deletion center has not
// answered this many chunk timeouts after the last sending, at most this many times.
inline constexpr int64_t kUnansweredTimeouts = 3;
inline constexpr uint64_t kUnansweredResends = 3;

class CaseStore;
class OperatorKey;

// The engine's numbers for metrics and health checks (agent/metrics.h): counts and the
// agency's and broker's ids only.
struct EngineSnapshot {
  std::string broker;  // the home broker's id
  bool session_ready = false;
  uint64_t directory_serial = 0;
  UnixMillis directory_expires_ms = 0;
  uint64_t outbox = 0;             // submissions and control frames not yet answered
  uint64_t inbox = 0;              // messages held in the inbox (opened or not)
  uint64_t inbox_unprocessed = 0;  // received, not yet taken up by the workflows
  ClientCounters client;           // this process's session counters
};

class Engine {
 public:
  // identity: this agency's keys; directory: verified by the caller.
  static Result<std::unique_ptr<Engine>> Create(keys::Identity identity,
                                                schema::SignedDirectory directory,
                                                EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // One turn: the broker session (sends, acks, deliveries) and processing of what arrived.
  Status Poll(int timeout_ms);
  // Stops submitting, waits up to linger_ms for answers to what is in flight, closes.
  void Shutdown(int linger_ms);
  // A newer verified directory (from refbus-keys or the broker).
  Status UpdateDirectory(schema::SignedDirectory directory);
  // Reads the key file again (options.reload_keys) and takes its prekeys, then retries the
  // messages waiting for a prekey. The daemon calls it on SIGHUP.
  Status ReloadKeys();
  // Runs change on this agency's keys (the daemon's key upkeep), on the loop's thread.
  Status UpdateKeys(const std::function<Status(keys::Identity&)>& change);
  // Publishes this agency's prekey through the home broker (PROTOCOL.md "Prekey
  // publication"): queued durably in the outbox and sent until the broker acks it. A prekey
  // already queued is not queued twice. REQUIRES: prekey is one of this agency's, signed.
  Status PublishPrekey(const schema::SignedPrekey& prekey);
  // Publishes this agency's operator roster through the home broker (PROTOCOL.md 9.3):
  // signed with the agency's key and queued durably like a prekey, when its version is newer
  // than the last one queued (kept in the transport store); otherwise nothing. Returns
  // whether it was queued. REQUIRES: roster.agency is this agency.
  Result<bool> PublishRoster(const keys::OperatorRoster& roster);

  // The logged-in operator the next commands act for (their records carry their signature,
  // keys/operator_signature.h), or null: the service account (API token) and the engine's
  // own work. The daemon sets it around each API command (ActingOperator below).
  void SetActingOperator(std::shared_ptr<const OperatorKey> op);

  // ---- Commands (bodies: agent/API.md) ----
  // POST /v1/consents: record a consent grant signed by this agency and register it with
  // the broker. {case_ref?, local_case?, basis, legal_article?, consenters[], subject_assent,
  // purposes[], categories[], recipients[], recipient_types[], onward_sharing, valid_days,
  // retention_days, expires_in_ms?, emergency_override, countersigner_key?,
  // countersigner_operator?, operator} -> {grant_id, case_ref, local_case, expires_at_ms,
  // emergency_override}
  Result<Json> RecordConsent(const Json& request);
  // Two-person emergency overrides (agent/overrides.h). PrepareConsent builds and signs the
  // grant of a RecordConsent request as RecordConsent does, and stores nothing;
  // CommitConsent records and registers such a grant once its countersignatures are added
  // (the same request body; checked again, the signatures included). RecordConsent is the
  // two with the countersignature from operator-keys/ in between.
  Result<schema::SignedConsentGrant> PrepareConsent(const Json& request);
  Result<Json> CommitConsent(const Json& request, const schema::SignedConsentGrant& grant);
  // GET /v1/consents -> [{grant_id, case_ref, recorded_by, basis, purposes, categories,
  // recipients, recipient_types, onward_sharing, expires_at_ms, revoked, registered}]
  Result<Json> Consents();
  // POST /v1/referrals {grant_id, to, purpose, fields[{category,name,value}], operator}
  // -> {referral_id, message_id, case_ref, state}
  Result<Json> SendReferral(const Json& request);
  // GET /v1/referrals -> [{referral_id, case_ref, local_case, side, peer, purpose, state,
  // updated_at_ms, history[{from,to,by,operator,reason,at_ms}]}]
  Result<Json> Referrals();
  // POST /v1/referrals/{id}/state {state, reason?, operator} -> the referral
  Result<Json> ChangeState(const std::string& referral_id, const Json& request);
  // GET /v1/inbox -> [{message_id, from, kind, case_ref, local_case, received_at_ms,
  // opened, status ("ok" | "refused" | "purged" | "waiting-for-prekey"), refusal?,
  // waiting_for?}]
  Result<Json> Inbox();
  // POST /v1/messages/{id}/open {operator} -> {message_id, from, kind, case_ref, content}
  // Records the access: a signed access record to the broker's audit log and an access
  // notice to the sender.
  Result<Json> Open(const std::string& message_id, const Json& request);
  // POST /v1/handoffs {grant_id, to, reason, fields[], operator} -> {handoff_id, message_id}
  Result<Json> Handoff(const Json& request);
  // POST /v1/handoffs/{id}/ack {accepted, reason?, operator} -> {handoff_id, lead}
  Result<Json> AckHandoff(const std::string& handoff_id, const Json& request);
  // POST /v1/deletions {grant_id, to, items[{item_id,url,sha256?,platform?,note?}] or
  // csv ("url,sha256,platform,note" lines), report_to[], monitor, operator}
  // -> {request_id, message_id, case_ref, item_count, chunks}. Up to 100,000 items, sent in
  // chunks with a manifest (PROTOCOL.md 10.1).
  Result<Json> RequestDeletion(const Json& request);
  // GET /v1/deletions -> [{request_id, case_ref, side, peer, items{item_id: status},
  // counts{received,notified,removed,reappeared,withdrawn}, report_seq, manifest?,
  // list_complete?, items_held?, chunks_held?}]
  Result<Json> Deletions();
  // POST /v1/deletions/{id}/status {updates[{item_id,status}] or csv ("item_id,status"
  // lines), operator} -> {request_id, report_seq, counts, sent_to[], changed, parts}: only
  // the items whose status changed are reported (none changed: nothing is sent).
  Result<Json> ReportDeletionStatus(const std::string& request_id, const Json& request);
  // POST /v1/deletions/{id}/items.csv {operator} -> the CSV text
  // "item_id,url,sha256,platform,note,status,updated_at_ms,updated_by" (a JSON string; the
  // API serves it as text/csv). Recorded on the case's timeline with the operator.
  Result<Json> ExportDeletionItems(const std::string& request_id, const Json& request);
  // GET /v1/deletions/{id}/items/{item} -> {request_id, item_id, status, history[{status,
  // by, report_seq, at_ms, received_ms}]}
  Result<Json> DeletionItemHistory(const std::string& request_id, const std::string& item_id);
  // GET /v1/deletions/{id} -> one element of Deletions() with "items" replaced by
  // "item_count" (a request's items are listed by items.csv), and "chunks_held" by a count.
  Result<Json> DeletionSummary(const std::string& request_id);
  // The deletion center's work queue (PROTOCOL.md 10.2).
  // GET /v1/deletion-work, .../overdue, .../overdue/{as_of_ms} ({overdue?, platform?,
  // as_of_ms?}) -> {overdue_days, as_of_ms, work_items, overdue,
  // platforms: [{platform, items: [{work_id, sha256, status, overdue, requesters[],
  // links, notices[], monitored, known_from[]}]}]}; as_of_ms (default now) lets a
  // center see what will be overdue by a date.
  Result<Json> DeletionWork(const Json& query);
  // POST /v1/deletion-work/{id}/status {status, operator} -> {work_id, status, told[],
  // unlinked[]}: every linked requester is told under its own request and grant; a link
  // whose grant was revoked is removed, not told.
  Result<Json> SetDeletionWorkStatus(const std::string& work_id, const Json& request);
  // POST /v1/deletion-work/{id}/notice {platform, sent_at_ms?, answer?, removed?, operator}
  // -> the work item: a takedown notice sent to a platform, and its answer.
  Result<Json> RecordTakedownNotice(const std::string& work_id, const Json& request);
  // POST /v1/deletion-watch-list/publish {operator} -> {version, full, delta?}: signed
  // watch list files (PROTOCOL.md 10.3); delta over the previous version when there is one.
  Result<Json> PublishWatchList(const Json& request);
  // POST /v1/deletion-watch-list/import {file} -> {publisher, version, hashes, recognized}
  Result<Json> ImportWatchList(const Json& request);
  // GET /v1/deletion-stats?month=YYYY-MM -> the CSV text (a JSON string), PROTOCOL.md 10.4.
  Result<Json> DeletionStats(const std::string& month);
  // POST /v1/consents/{id}/revoke {reason, operator} -> {grant_id, notified[]}
  Result<Json> RevokeConsent(const std::string& grant_id, const Json& request);
  // POST /v1/cases/{case_ref}/close {reason, operator} -> {case_ref, notified[]}
  Result<Json> CloseCase(const std::string& case_ref, const Json& request);
  // POST /v1/cases/{case_ref}/read {operator} -> the case as Case() shows it, with its
  // free text opened ("[purged: ...]" where the grant's data was purged). The read is
  // recorded on the case's timeline ("case-text-read", with the operator) and logged.
  Result<Json> ReadCase(const std::string& case_ref_or_local, const Json& request);
  // Purges the data of every grant whose retention has passed, as a revocation's purge
  // does (data key destroyed, signed purge record to the broker and the recorder). The
  // daemon calls it at start and every minute.
  Status EnforceRetention();
  // PUT /v1/cases/{case_ref}/local {local_case} -> the case
  Result<Json> SetLocalCase(const std::string& case_ref, const Json& request);
  // GET /v1/cases/{case_ref} (case_ref or local case number) -> {case_ref, local_case, lead,
  // closed, grants[], referrals[], handoffs[], deletions[], access_notices[],
  // purge_confirmations[], refusals[]}
  Result<Json> Case(const std::string& case_ref_or_local);
  // GET /v1/status -> {agency, broker, session_ready, outstanding, inbox, directory_serial}
  // (Not named Status: that would hide the Status type inside the class.)
  Result<Json> GetStatus();
  // GET /v1/directory -> [{id, display_name, agency_type, region, status}]: the agencies of
  // the verified directory in use (public listings; the console's directory page).
  Result<Json> Agencies();
  // ---- Linkage (PROTOCOL.md 13.6) ----
  // POST /v1/cases/{case_ref}/links {kind, value, grant_id?, first_seen_ms?, last_seen_ms?,
  // victims?, items?, operator} -> {link_id, case_ref, kind, escrow, message_id, expires_ms}:
  // the identifier is put in canonical form, its pseudonym asked of the two evaluators, and
  // the escrow entry sent under the case's grant with purpose linkage (recorded by this
  // agency, the escrow among its recipients). The identifier is never stored, logged or
  // returned.
  Result<Json> AddLink(const std::string& case_ref_or_local, const Json& request);
  // GET /v1/links[?case=] -> [{link_id, case_ref, kind, grant_id, escrow, message_id,
  // operator, added_at_ms, expires_ms, withdrawn}]
  Result<Json> Links(const std::string& case_filter);
  // GET /v1/linkage/matches -> [{linkage_id, case_ref, kind, escrow, message_id,
  // others[{agency, first_seen_ms, last_seen_ms, victims, items}], matched_at_ms,
  // received_at_ms}]
  Result<Json> LinkageMatches();
  // Linkage tallies (PROTOCOL.md 13.7): signs this agency's tally about a linkage id it
  // was told of ({victims, deletion_items, from, to}), records it at the home broker and
  // keeps the evidence; answers with the tally's fields, where it is logged and the
  // evidence (JSON text, for the lead agency).
  Result<Json> RecordTally(const std::string& linkage_id, const Json& request);
  // The joint evidence bundle of a linkage id ({"with": [evidence texts of other
  // agencies]}, each checked and kept): every tally held, this agency's with a fresh proof.
  Result<Json> LinkageBundle(const std::string& linkage_id, const Json& request);
  // Tallies over the bus (PROTOCOL.md 13.8): POST /v1/linkage/{id}/send {to, grant_id?,
  // operator} -> {linkage_id, to, case_ref, grant_id, message_id}: this agency's held tally
  // evidence about the linkage id, to another agency of its notice, under this agency's
  // grant with purpose linkage naming that agency (FailedPrecondition without one).
  Result<Json> SendTally(const std::string& linkage_id, const Json& request);
  // GET /v1/linkage/{id}/tallies -> [{agency, victims, deletion_items, from, to,
  // made_at_ms, source, message_id, received_at_ms}]: the tallies held about the linkage id.
  Result<Json> LinkageTallies(const std::string& linkage_id);

  // For metrics: one read transaction of the transport store.
  Result<EngineSnapshot> Snapshot();

  const std::string& agency_id() const;

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Sets the engine's acting operator for one command, and clears it on every exit path.
class ActingOperator {
 public:
  ActingOperator(Engine& engine, std::shared_ptr<const OperatorKey> op) : engine_(engine) {
    engine_.SetActingOperator(std::move(op));
  }
  ~ActingOperator() { engine_.SetActingOperator(nullptr); }
  ActingOperator(const ActingOperator&) = delete;
  ActingOperator& operator=(const ActingOperator&) = delete;

 private:
  Engine& engine_;
};

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_ENGINE_H_
