#include "audit/witness.h"

#include <chrono>
#include <memory>

#include "audit/fetch.h"
#include "audit/local_store.h"
#include "audit/scan.h"
#include "audit/session.h"
#include "audit/verify.h"
#include "keys/checkpoint.h"
#include "keys/witness.h"
#include "schema/codec.h"

namespace refbus::audit {
namespace {

using schema::Frame;

// One run of Witness, in the steps of audit/witness.h.
class Witnesser {
 public:
  Witnesser(const WitnessOptions& o, UnixMillis now)
      : o_(o), now_(now), started_(std::chrono::steady_clock::now()) {
    report_.broker_id = o.broker_id;
  }

  Result<WitnessReport> Run() {
    REFBUS_RETURN_IF_ERROR(Connect());
    // The broker's fresh checkpoint (it covers this request's own AUDITOR_QUERY entry).
    REFBUS_ASSIGN_OR_RETURN(note_, AskFreshCheckpoint(*session_, o_.broker_id));
    unverified_ = ParseUnverified(note_);
    if (unverified_) {
      report_.size = unverified_->size;
      report_.root = unverified_->root;
    }
    // The proof from what this auditor cosigned last, made by the broker.
    std::vector<keys::Hash> proof;
    if (unverified_ && report_.old_size != 0 && report_.old_size < unverified_->size) {
      Frame q = Query(Frame::Type::kAuditConsistency);
      q.audit_consistency = {report_.old_size, unverified_->size};
      auto r = session_->Ask(std::move(q));
      if (!r.ok()) {
        std::string why = "the broker gives no consistency proof from size " +
                          std::to_string(report_.old_size) + ", which this auditor cosigned, to " +
                          std::to_string(unverified_->size) + ": " + r.status().message();
        REFBUS_RETURN_IF_ERROR(KeepEvidence({}, why));
        report_.verdict = std::string(keys::Name(keys::WitnessVerdict::kInconsistent));
        report_.problems.push_back(why);
        return Finish();
      }
      proof = ToHashes(r->hashes);
    }
    REFBUS_RETURN_IF_ERROR(Decide(proof));
    return Finish();
  }

 private:
  Status Connect() {
    REFBUS_ASSIGN_OR_RETURN(schema::SignedDirectory sd,
                            LoadVerifiedDirectory(o_.auditor_dir, now_));
    const schema::Directory& dir = sd.directory;
    REFBUS_ASSIGN_OR_RETURN(me_, LoadAuditor(dir, o_.auditor_dir, o_.passphrase_file,
                                             /*witness=*/true));
    REFBUS_ASSIGN_OR_RETURN(report_.witness_name,
                            keys::WitnessName(dir.federation, me_->party_id()));
    REFBUS_ASSIGN_OR_RETURN(BrokerTarget target, ResolveBroker(dir, o_.broker_id, o_.endpoint));
    log_keys_ = std::move(target.log_keys);
    report_.origin = log_keys_.origin;
    report_.endpoint = target.endpoint;
    REFBUS_ASSIGN_OR_RETURN(store_, LocalAuditStore::Open(o_.store_dir, /*create=*/true));
    REFBUS_RETURN_IF_ERROR(store_->Bind({o_.broker_id, log_keys_.origin, log_keys_.active_key}));
    REFBUS_ASSIGN_OR_RETURN(last_, store_->Witnessed());
    if (last_ && last_->origin != log_keys_.origin) {
      return FailedPrecondition("the witness state in " + o_.store_dir + " is of log " +
                                last_->origin + ", not " + log_keys_.origin);
    }
    report_.old_size = last_ ? last_->size : 0;
    REFBUS_ASSIGN_OR_RETURN(
        session_, AuditSession::Open(*me_, target.transport_key, report_.endpoint, o_.broker_id,
                                     o_.timeout_ms));
    return Status::Ok();
  }

  Result<WitnessReport> Finish() {
    report_.queries = session_->queries();
    report_.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    return report_;
  }

  // Keeps both checkpoints (and the proof, if any) as evidence of a refusal.
  Status KeepEvidence(const std::vector<keys::Hash>& proof, const std::string& detail) {
    keys::WitnessEvidence e;
    e.origin = log_keys_.origin;
    e.requester = o_.broker_id;
    e.time_ms = now_;
    e.cosigned_note = last_ ? last_->note : std::string();
    e.offered_note = note_;
    e.old_size = report_.old_size;
    e.proof = proof;
    e.detail = detail;
    REFBUS_ASSIGN_OR_RETURN(uint64_t n, store_->AddEvidence(e));
    report_.evidence = n;
    return Status::Ok();
  }

  // The keys/witness.h rules; a refusal is a problem (with evidence where it is one), a
  // cosignature is stored here first, then given to the broker.
  Status Decide(const std::vector<keys::Hash>& proof) {
    keys::WitnessDecision d =
        keys::DecideWitness(last_ ? &*last_ : nullptr, note_, log_keys_.origin, log_keys_.verifiers,
                            report_.old_size, proof);
    report_.verdict = std::string(keys::Name(d.verdict));
    if (d.verdict != keys::WitnessVerdict::kCosign) {
      // Smaller than what was cosigned is a rollback here: the fresh checkpoint covers the
      // broker's whole committed log, so that log has shrunk.
      const bool evidence = d.verdict == keys::WitnessVerdict::kInconsistent ||
                            (d.verdict == keys::WitnessVerdict::kBadRequest && unverified_ &&
                             unverified_->size < report_.old_size);
      if (evidence) REFBUS_RETURN_IF_ERROR(KeepEvidence(proof, d.detail));
      report_.problems.push_back("refused to cosign: " + d.detail +
                                 (evidence ? "; both checkpoints are kept as evidence record " +
                                                 std::to_string(*report_.evidence)
                                           : ""));
      return Status::Ok();
    }
    const uint64_t now_s = now_ / kMillisPerSecond;
    REFBUS_ASSIGN_OR_RETURN(keys::Cosigned c,
                            keys::CosignDecided(d, note_, report_.witness_name, *me_, now_s));
    // On disk before it leaves: no cosignature exists that the state does not account for.
    REFBUS_RETURN_IF_ERROR(store_->SetWitnessed(c.state));
    report_.cosigned = true;
    report_.timestamp_s = now_s;
    REFBUS_ASSIGN_OR_RETURN(std::string cosigned_note, keys::AddNoteSignature(note_, c.signature));
    return GiveToBroker(std::move(cosigned_note));
  }

  Status GiveToBroker(std::string cosigned_note) {
    Frame add;
    add.type = Frame::Type::kAddCosignature;
    add.add_cosignature.checkpoint = std::move(cosigned_note);
    REFBUS_ASSIGN_OR_RETURN(Frame answer, session_->Call(std::move(add)));
    if (answer.type == Frame::Type::kAck) {
      report_.stored_by_broker = true;
    } else if (answer.type == Frame::Type::kNack) {
      report_.problems.push_back("the broker did not store the cosignature: " +
                                 std::string(schema::Name(answer.nack.reason)) + " (" +
                                 answer.nack.detail + ")");
    } else {
      return Malformed("broker " + o_.broker_id +
                       " answered AddCosignature with another frame type");
    }
    return Status::Ok();
  }

  const WitnessOptions& o_;
  const UnixMillis now_;
  const std::chrono::steady_clock::time_point started_;
  WitnessReport report_;
  std::optional<keys::Identity> me_;
  LogKeys log_keys_;
  std::unique_ptr<LocalAuditStore> store_;
  std::optional<keys::WitnessState> last_;
  std::unique_ptr<AuditSession> session_;
  std::string note_;
  std::optional<keys::Checkpoint> unverified_;
};

}  // namespace

Result<WitnessReport> Witness(const WitnessOptions& o, UnixMillis now) {
  return Witnesser(o, now).Run();
}

}  // namespace refbus::audit
