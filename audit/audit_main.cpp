// refbus-audit: the auditor's tool. Pulls a broker's tamper-evident audit log over CURVE
// into a local store, verifies it offline against every checkpoint the broker ever signed
// and the witnesses' cosignatures on them, witnesses a log itself (cosigns its checkpoints
// after checking they extend the last one it cosigned), makes and checks offline
// inclusion-proof bundles, answers the questions auditors ask, and writes the auditor's
// report as one self-contained HTML page (schema/PROTOCOL.md section 11). Thin over
// audit/fetch.h, audit/tool.h and audit/report.h.
// Output: readable text and tables, or --json (and --csv for the queries); no content is
// ever in the log, so none is in the output either.
#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "audit/auditor_config.h"
#include "audit/fetch.h"
#include "audit/local_store.h"
#include "audit/operator_check.h"
#include "audit/proof_bundle.h"
#include "audit/query.h"
#include "audit/report.h"
#include "audit/report_text.h"
#include "audit/roster_check.h"
#include "audit/roster_log.h"
#include "audit/tally_report.h"
#include "audit/verify.h"
#include "audit/witness.h"
#include "core/clock.h"
#include "core/file.h"
#include "core/table.h"
#include "keys/crypto.h"
#include "keys/operator_roster.h"
#include "keys/secret.h"
#include "keys/witness.h"
#include "schema/codec.h"

namespace {

using namespace refbus;         // NOLINT(google-build-using-namespace)
using namespace refbus::audit;  // NOLINT(google-build-using-namespace)
using json = nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;  // verification failed (or nothing to prove)
constexpr int kExitUsage = 2;
constexpr int kExitIo = 3;  // I/O, network, a broker that refused

constexpr char kExitCodes[] = R"(
Exit codes:
  0  ok
  1  verification failed: a bad entry, checkpoint, signature or proof (named in the output)
  2  usage error (unknown command or option, bad id or time)
  3  I/O or network error, or the broker refused the query)";

constexpr size_t kMaxBundleBytes = 64u << 20;

int Fail(const Status& s, int code) {
  std::cerr << "refbus-audit: " << s.ToString() << "\n";
  return code;
}

// Errors that stop a command before any verdict.
int ExitFor(const Status& s) {
  switch (s.code()) {
    case Status::Code::kInvalidArgument:
      return kExitUsage;
    case Status::Code::kUnauthenticated:
    case Status::Code::kRevoked:
    case Status::Code::kExpired:
    case Status::Code::kRollback:
      return kExitFailed;  // the directory (or a key in it) does not verify
    default:
      return kExitIo;
  }
}

UnixMillis Now() { return SystemClock::Get().NowMillis(); }

Result<Bytes> ParseMessageId(const std::string& hex) {
  auto b = HexDecode(hex);
  if (!b.ok() || b->size() != schema::kMessageIdBytes) {
    return InvalidArgument("a message id is 32 hex digits");
  }
  return std::move(*b);
}

int RunFetch(const FetchOptions& o, bool as_json) {
  auto r = Fetch(o, Now());
  if (!r.ok()) return Fail(r.status(), ExitFor(r.status()));
  const FetchReport& f = *r;
  if (as_json) {
    json out = {{"ok", f.ok()},
                {"broker_id", f.broker_id},
                {"origin", f.origin},
                {"endpoint", f.endpoint},
                {"entries_before", f.entries_before},
                {"entries", f.entries_after},
                {"checkpoints_new", f.checkpoints_new},
                {"checkpoints", f.checkpoints_total},
                {"checkpoint_size", f.checkpoint_size},
                {"checkpoint_root", HexEncode(f.checkpoint_root)},
                {"key_fingerprint", f.key_fingerprint},
                {"queries", f.queries},
                {"seconds", f.seconds},
                {"problems", f.problems}};
    out["own_query_index"] = f.own_query_index ? json(*f.own_query_index) : json(nullptr);
    out["fresh_cosigners"] = f.fresh_cosigners;
    out["first_differing_entry"] =
        f.first_differing_entry ? json(*f.first_differing_entry) : json(nullptr);
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << "Fetched the audit log " << f.origin << " from broker " << f.broker_id << " at "
              << f.endpoint << "\n"
              << "  entries:     " << f.entries_after << " ("
              << (f.entries_after - f.entries_before) << " new)\n"
              << "  checkpoints: " << f.checkpoints_total << " stored (" << f.checkpoints_new
              << " new)\n"
              << "  fresh:       size " << f.checkpoint_size << ", root "
              << HexEncode(f.checkpoint_root) << "\n"
              << "  signed by:   " << (f.key_fingerprint.empty() ? "-" : f.key_fingerprint) << "\n"
              << "  cosigned by: "
              << (f.fresh_cosigners.empty() ? std::string("-") : [&] {
                   std::string by;
                   for (const auto& w : f.fresh_cosigners) by += (by.empty() ? "" : ", ") + w;
                   return by;
                 }())
              << "\n"
              << "  this fetch:  " << f.queries << " queries, logged by the broker"
              << (f.own_query_index ? " (the checkpoint request is entry " +
                                          std::to_string(*f.own_query_index) + ")"
                                    : "")
              << "; " << f.seconds << " s\n";
    for (const auto& p : f.problems) std::cout << "  PROBLEM: " << p << "\n";
    std::cout << (f.ok() ? "ok: run refbus-audit verify for the full check\n"
                         : "FAILED: " + f.problems.front() + "\n");
  }
  return f.ok() ? kExitOk : kExitFailed;
}

// What verify and report start from: the auditor's local store, bound to one broker's log,
// with the broker's log keys and its witnesses' keys from the verified directory. Local
// files only, no network.
struct OpenedLog {
  std::unique_ptr<LocalAuditStore> store;
  LogKeys keys;
  std::vector<keys::WitnessKey> witnesses;  // the ones the auditor names (auditor.toml)
  size_t min_cosignatures = 1;              // auditor.toml's, unless the command line says
};

// --min-cosignatures when given, else the auditor's configuration.
using MinCosignatures = std::optional<size_t>;

// kExitOk with *out filled, or the exit code after the error is printed.
int OpenLog(const std::string& store_dir, const std::string& dir, OpenedLog* out) {
  auto config = LoadAuditorConfig(dir);
  if (!config.ok()) return Fail(config.status(), kExitUsage);
  auto sd = LoadVerifiedDirectory(dir, Now());
  if (!sd.ok()) return Fail(sd.status(), ExitFor(sd.status()));
  auto store = LocalAuditStore::Open(store_dir, /*create=*/false);
  if (!store.ok()) return Fail(store.status(), kExitIo);
  auto binding = (*store)->Binding();
  if (!binding.ok()) return Fail(binding.status(), kExitIo);
  if (!*binding) return Fail(FailedPrecondition(store_dir + " is empty: run fetch"), kExitIo);
  auto keys = BrokerLogKeys(sd->directory, (*binding)->broker_id);
  if (!keys.ok()) return Fail(keys.status(), kExitFailed);
  if (keys->origin != (*binding)->origin) {
    return Fail(FailedPrecondition("the store holds the log " + (*binding)->origin +
                                   ", but this directory's federation names it " + keys->origin),
                kExitFailed);
  }
  auto witnesses = NamedWitnessKeys(sd->directory, *config, (*binding)->broker_id);
  if (!witnesses.ok()) return Fail(witnesses.status(), kExitFailed);
  out->store = std::move(*store);
  out->keys = std::move(*keys);
  out->witnesses = std::move(*witnesses);
  out->min_cosignatures = config->min_cosignatures;
  return kExitOk;
}

// Every --evidence file: a signed checkpoint note (refbus-agent checkpoint --out).
int ReadEvidence(const std::vector<std::string>& files, std::vector<CheckpointEvidence>* out) {
  for (const std::string& f : files) {
    auto text = ReadFile(f, schema::kMaxFrameBytes);
    if (!text.ok()) return Fail(text.status(), kExitIo);
    out->push_back({f, std::string(AsChars(*text))});
  }
  return kExitOk;
}

// Said on stderr as well, so that it shows whatever happens to stdout.
void WarnIfUnwitnessed(const VerifyReport& v) {
  if (!v.witnessed) std::cerr << "refbus-audit: " << kUnwitnessedWarning << "\n";
}

int RunVerify(const std::string& store_dir, const std::string& dir,
              MinCosignatures min_cosignatures, const std::vector<std::string>& evidence,
              bool as_json) {
  OpenedLog log;
  if (int code = OpenLog(store_dir, dir, &log); code != kExitOk) return code;
  VerifyOptions options;
  options.min_cosignatures = min_cosignatures.value_or(log.min_cosignatures);
  options.witnesses = std::move(log.witnesses);
  if (int code = ReadEvidence(evidence, &options.evidence); code != kExitOk) return code;
  auto report = VerifyLocalLog(*log.store, log.keys, options);
  if (!report.ok()) return Fail(report.status(), kExitIo);
  const VerifyReport& v = *report;
  WarnIfUnwitnessed(v);
  if (as_json) {
    json problems = json::array();
    for (const auto& p : v.problems) {
      bool entry = p.where == VerifyProblem::Where::kEntry;
      problems.push_back({{"where", entry ? "entry" : "checkpoint"},
                          {"index", entry ? json(p.index) : json(nullptr)},
                          {"size", entry ? json(nullptr) : json(p.index)},
                          {"seq", entry ? json(nullptr) : json(p.seq)},
                          {"message", p.message}});
    }
    json out = {{"ok", v.ok()},
                {"headline", v.Headline()},
                {"broker_id", v.broker_id},
                {"origin", v.origin},
                {"entries", v.entries},
                {"refusals",
                 {{"entries", v.refusal_entries},
                  {"refusals", v.refusals},
                  {"aggregates", v.refusal_aggregates}}},
                {"checkpoints", v.checkpoints},
                {"signatures_ok", v.signatures_ok},
                {"verified_size", v.verified_size},
                {"verified_root", HexEncode(v.verified_root)},
                {"seconds", v.seconds},
                {"problems", problems}};
    json cosigned = json::array();
    for (const auto& c : v.cosigned) {
      cosigned.push_back({{"size", c.size}, {"seqs", c.seqs}, {"witnesses", c.witnesses}});
    }
    out["cosignatures"] = cosigned;
    out["min_cosignatures"] = v.min_cosignatures;
    out["unknown_signatures"] = v.unknown_signatures;
    out["witnessed_size"] = v.witnessed_size ? json(*v.witnessed_size) : json(nullptr);
    out["witnessed"] = v.witnessed;
    out["evidence_checked"] = v.evidence_checked;
    out["first_bad_entry"] = v.first_bad_entry ? json(*v.first_bad_entry) : json(nullptr);
    out["first_bad_checkpoint_seq"] =
        v.first_bad_checkpoint_seq ? json(*v.first_bad_checkpoint_seq) : json(nullptr);
    std::cout << out.dump(2) << "\n";
  } else {
    if (!v.witnessed) std::cout << "*** " << kUnwitnessedWarning << " ***\n";
    std::cout << "Audit log " << v.origin << " of broker " << v.broker_id << " in " << store_dir
              << "\n"
              << "  entries:     " << v.entries << "\n"
              << "  refusals:    " << v.refusals << " in " << v.refusal_entries << " entries ("
              << v.refusal_aggregates
              << " of them aggregates of refusals not recorded one by one)\n"
              << "  checkpoints: " << v.checkpoints << " (" << v.signatures_ok
              << " signatures valid)\n"
              << "  verified:    size " << v.verified_size << ", root "
              << HexEncode(v.verified_root) << "\n"
              << "  time:        " << v.seconds << " s\n";
    std::cout << "  witnessed:   "
              << (v.witnessed_size ? "up to size " + std::to_string(*v.witnessed_size)
                                   : std::string("nothing"))
              << (v.min_cosignatures > 0
                      ? " (" + std::to_string(v.min_cosignatures) + " cosignatures required)"
                      : std::string())
              << "\n";
    // The newest checkpoints and who cosigned them (all of them in --json).
    const size_t from = v.cosigned.size() > 10 ? v.cosigned.size() - 10 : 0;
    for (size_t i = from; i < v.cosigned.size(); ++i) {
      const auto& c = v.cosigned[i];
      std::string by;
      for (const auto& w : c.witnesses) by += (by.empty() ? "" : ", ") + w;
      std::cout << "  cosigned:    size " << c.size << ": " << (by.empty() ? "-" : by) << "\n";
    }
    size_t shown = 0;
    for (const auto& p : v.problems) {
      if (++shown > 50) {
        std::cout << "  ... " << v.problems.size() - 50 << " more (see --json)\n";
        break;
      }
      if (p.where == VerifyProblem::Where::kEntry) {
        std::cout << "  PROBLEM: entry " << p.index << " " << p.message << "\n";
      } else {
        std::cout << "  PROBLEM: " << p.message << "\n";
      }
    }
    std::cout << v.Headline() << "\n";
  }
  return v.ok() ? kExitOk : kExitFailed;
}

int RunProve(const std::string& message_hex, const std::string& store_dir, const std::string& out,
             bool as_json) {
  auto id = ParseMessageId(message_hex);
  if (!id.ok()) return Fail(id.status(), kExitUsage);
  auto store = LocalAuditStore::Open(store_dir, /*create=*/false);
  if (!store.ok()) return Fail(store.status(), kExitIo);
  auto bundle = MakeProofBundle(**store, *id);
  if (!bundle.ok()) {
    bool verdict = bundle.status().code() == Status::Code::kNotFound ||
                   bundle.status().code() == Status::Code::kFailedPrecondition;
    return Fail(bundle.status(), verdict ? kExitFailed : kExitIo);
  }
  Status s = WriteFileAtomic(out, AsBytes(*bundle), kPublicFileMode);
  if (!s.ok()) return Fail(s, kExitIo);
  json parsed = json::parse(*bundle);
  if (as_json) {
    std::cout << json{{"out", out},
                      {"message_id", message_hex},
                      {"entries", parsed["entries"].size()},
                      {"tree_size", parsed["tree_size"]}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << "Wrote " << out << ": " << parsed["entries"].size() << " entries of message "
              << message_hex << " with inclusion proofs in the signed checkpoint of size "
              << parsed["tree_size"].get<uint64_t>() << " of "
              << parsed["origin"].get<std::string>()
              << "\nCheck it anywhere with: refbus-audit check-proof " << out
              << " --dir AUDITOR_DIR\n";
  }
  return kExitOk;
}

int RunWitness(const WitnessOptions& o, bool as_json) {
  auto r = Witness(o, Now());
  if (!r.ok()) return Fail(r.status(), ExitFor(r.status()));
  const WitnessReport& w = *r;
  if (as_json) {
    json out = {{"ok", w.ok()},
                {"broker_id", w.broker_id},
                {"origin", w.origin},
                {"endpoint", w.endpoint},
                {"witness_name", w.witness_name},
                {"old_size", w.old_size},
                {"size", w.size},
                {"root", HexEncode(w.root)},
                {"verdict", w.verdict},
                {"cosigned", w.cosigned},
                {"stored_by_broker", w.stored_by_broker},
                {"timestamp", w.timestamp_s},
                {"queries", w.queries},
                {"seconds", w.seconds},
                {"problems", w.problems}};
    out["evidence"] = w.evidence ? json(*w.evidence) : json(nullptr);
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << "Witnessed the audit log " << w.origin << " of broker " << w.broker_id << " at "
              << w.endpoint << " as " << w.witness_name << "\n"
              << "  last cosigned: size " << w.old_size << "\n"
              << "  checkpoint:    size " << w.size << ", root " << HexEncode(w.root) << "\n"
              << "  verdict:       " << w.verdict
              << (w.cosigned ? (w.stored_by_broker ? " (stored by the broker)"
                                                   : " (NOT stored by the broker)")
                             : "")
              << "\n";
    if (w.evidence) std::cout << "  evidence:      record " << *w.evidence << " kept\n";
    for (const auto& p : w.problems) std::cout << "  PROBLEM: " << p << "\n";
    std::cout << (w.ok() ? "ok\n" : "FAILED: " + w.problems.front() + "\n");
  }
  return w.ok() ? kExitOk : kExitFailed;
}

int RunCheckProof(const std::string& path, const std::string& dir, bool as_json) {
  auto sd = LoadVerifiedDirectory(dir, Now());
  if (!sd.ok()) return Fail(sd.status(), ExitFor(sd.status()));
  auto text = ReadFile(path, kMaxBundleBytes);
  if (!text.ok()) return Fail(text.status(), kExitIo);
  auto checked = CheckProofBundle(AsChars(*text), sd->directory);
  if (!checked.ok()) {
    if (as_json) {
      std::cout << json{{"ok", false}, {"error", checked.status().ToString()}}.dump(2) << "\n";
    }
    return Fail(checked.status().WithContext(path + " is refused"), kExitFailed);
  }
  const CheckedProof& c = *checked;
  if (as_json) {
    json entries = json::array();
    for (const auto& e : c.entries) {
      entries.push_back({{"index", e.index},
                         {"time", FormatUtc(e.time_ms)},
                         {"event", std::string(schema::Name(e.event))},
                         {"actor", e.actor}});
    }
    std::cout << json{{"ok", true},
                      {"broker_id", c.broker_id},
                      {"origin", c.origin},
                      {"key_fingerprint", c.key_fingerprint},
                      {"tree_size", c.tree_size},
                      {"message_id", HexEncode(c.message_id)},
                      {"verify_us_per_entry", c.verify_us_per_entry},
                      {"entries", entries}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << "ok: " << c.entries.size() << " entries of message " << HexEncode(c.message_id)
              << " are in the audit log " << c.origin << "\n"
              << "  checkpoint: size " << c.tree_size << ", signed by broker " << c.broker_id
              << " key " << c.key_fingerprint << " (from the verified directory)\n"
              << "  proofs:     " << c.verify_us_per_entry << " us per entry\n";
    for (const auto& e : c.entries) {
      std::cout << "  entry " << e.index << "  " << FormatUtc(e.time_ms) << "  "
                << schema::Name(e.event) << "  " << (e.actor.empty() ? "-" : e.actor) << "\n";
    }
  }
  return kExitOk;
}

// check-bundle: a joint evidence bundle of linkage tallies (PROTOCOL.md 13.7), offline.
int RunCheckBundle(const std::string& path, const std::string& dir, bool as_json) {
  auto sd = LoadVerifiedDirectory(dir, Now());
  if (!sd.ok()) return Fail(sd.status(), ExitFor(sd.status()));
  auto text = ReadFile(path, keys::kMaxTallyBundleBytes);
  if (!text.ok()) return Fail(text.status(), kExitIo);
  auto checked = keys::CheckTallyBundle(AsChars(*text), sd->directory, Now());
  if (!checked.ok()) {
    if (as_json) {
      std::cout << json{{"ok", false}, {"error", checked.status().ToString()}}.dump(2) << "\n";
    }
    return Fail(checked.status().WithContext(path + " is refused"), kExitFailed);
  }
  const keys::CheckedTallyBundle& b = *checked;
  if (as_json) {
    std::cout << TallyBundleJson(b).dump(2) << "\n";
  } else {
    std::cout << (b.failed == 0 ? "ok: " : "FAILED: ") << b.tallies.size() - b.failed << " of "
              << b.tallies.size() << " tallies about linkage " << HexEncode(b.linkage_id)
              << " verify (signed by each agency's directory key, in its broker's audit log "
                 "under a signed checkpoint)\n";
    PrintTallyBundle(std::cout, b);
  }
  if (b.failed != 0) {
    std::cerr << "refbus-audit: " << path << ": " << b.failed
              << " tally(ies) do not verify; the totals count only those that do\n";
    return kExitFailed;
  }
  return kExitOk;
}

// The report holds who sent what to whom and who opened it when, per case pseudonym and
// operator ref: the same metadata as the local store, made easy to read. Written 0600 like
// the store's own files, not 0644 like a proof bundle (which proves one message and is made
// to be handed over); an auditor who shares the page decides that with chmod or a copy.
constexpr mode_t kReportFileMode = kPrivateFileMode;

Result<std::vector<keys::OperatorRoster>> LoadRosters(const std::vector<std::string>& files,
                                                      const std::string& dir);
int ExitForRosters(const Status& s);

// The rosters operators are checked against: the --roster files when given (an override),
// else, with --dir, the rosters the log itself recorded, each access judged by the one in
// effect at it (audit/roster_log.h); else none (NO ROSTER).
struct OperatorRosters {
  std::vector<keys::OperatorRoster> files;
  std::optional<RosterHistory> log;
};

// What report takes besides the store and the auditor's folder.
struct ReportArgs {
  std::string out, case_ref, lang = "ko";
  MinCosignatures min_cosignatures;
  std::vector<std::string> rosters;
};

int RunReport(const std::string& store_dir, const std::string& dir, const ReportArgs& a,
              bool as_json) {
  const std::string& out = a.out;
  const std::string& case_ref = a.case_ref;
  const MinCosignatures& min_cosignatures = a.min_cosignatures;
  auto lang = ParseReportLang(a.lang);
  if (!lang.ok()) return Fail(lang.status(), kExitUsage);
  if (!case_ref.empty() && !schema::IsValidCaseRef(case_ref)) {
    return Fail(InvalidArgument("'" + case_ref + "' is not a case pseudonym"), kExitUsage);
  }
  OpenedLog log;
  if (int code = OpenLog(store_dir, dir, &log); code != kExitOk) return code;
  ReportOptions options;
  options.verify.min_cosignatures = min_cosignatures.value_or(log.min_cosignatures);
  options.verify.witnesses = std::move(log.witnesses);
  if (!case_ref.empty()) options.case_ref = case_ref;
  auto rosters = LoadRosters(a.rosters, dir);
  if (!rosters.ok()) return Fail(rosters.status(), ExitForRosters(rosters.status()));
  options.rosters = std::move(*rosters);
  if (a.rosters.empty()) {
    auto sd = LoadVerifiedDirectory(dir, Now());
    if (!sd.ok()) return Fail(sd.status(), kExitIo);
    options.roster_directory = std::move(sd->directory);
  }
  options.store_label = store_dir;
  options.generated_at_ms = Now();
  auto report = BuildAuditReport(*log.store, log.keys, options);
  if (!report.ok()) return Fail(report.status(), kExitIo);
  const std::string html = RenderAuditReportHtml(*report, *lang);
  Status s = WriteFileAtomic(out, AsBytes(html), kReportFileMode);
  if (!s.ok()) return Fail(s, kExitIo);
  const AuditReport& r = *report;
  WarnIfUnwitnessed(r.verify);
  if (as_json) {
    std::cout << json{{"ok", r.verify.ok()},  {"witnessed", r.verify.witnessed},
                      {"out", out},           {"headline", r.verify.Headline()},
                      {"entries", r.entries}, {"cases", r.cases.size()},
                      {"bytes", html.size()}, {"seconds", r.seconds}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << "Wrote " << out << " (" << html.size()
              << " bytes): " << (r.verify.ok() ? "PASS" : "FAIL") << ", " << r.entries
              << " entries, " << r.cases.size() << (r.cases.size() == 1 ? " case" : " cases")
              << ", " << r.seconds << " s\n"
              << r.verify.Headline() << "\n";
  }
  if (r.operator_failures > 0) {
    std::cerr << "refbus-audit: " << r.operator_failures
              << " openings name an operator whose signature is INVALID or who is NOT IN "
                 "ROSTER (the page lists them under \"Who opened what\")\n";
  }
  return r.verify.ok() && r.operator_failures == 0 ? kExitOk : kExitFailed;
}

// Every roster file, verified against the directory of the auditor's folder.
Result<std::vector<keys::OperatorRoster>> LoadRosters(const std::vector<std::string>& files,
                                                      const std::string& dir) {
  std::vector<keys::OperatorRoster> rosters;
  if (files.empty()) return rosters;
  if (dir.empty()) return InvalidArgument("--roster needs --dir (the directory)");
  REFBUS_ASSIGN_OR_RETURN(auto sd, LoadVerifiedDirectory(dir, Now()));
  for (const auto& f : files) {
    REFBUS_ASSIGN_OR_RETURN(Bytes text, ReadFile(f, size_t{4} << 20));
    auto roster = keys::VerifyOperatorRoster(AsChars(text), sd.directory, Now());
    if (!roster.ok()) return roster.status().WithContext(f + " is refused");
    rosters.push_back(std::move(*roster));
  }
  return rosters;
}

int ExitForRosters(const Status& s) {
  if (s.code() == Status::Code::kInvalidArgument) return kExitUsage;
  if (s.code() == Status::Code::kNotFound || s.code() == Status::Code::kIoError) return kExitIo;
  return kExitFailed;
}

// Prints the rows, each access with its operator's verdict (audit/operator_check.h); exit
// 1 if an access's operator signature is INVALID or its operator NOT IN ROSTER.
int RunQuery(Result<QueryResult> r, OutputFormat format, const OperatorRosters& rosters) {
  if (!r.ok()) {
    int code = r.status().code() == Status::Code::kFailedPrecondition ? kExitFailed : kExitIo;
    return Fail(r.status(), code);
  }
  const auto failing =
      rosters.log ? CheckRowOperatorsByLog(*r, *rosters.log) : CheckRowOperators(*r, rosters.files);
  PrintRows(*r, format, std::cout);
  if (failing.empty()) return kExitOk;
  std::cerr << "refbus-audit: " << failing.size()
            << (failing.size() == 1 ? " access names an operator" : " accesses name operators")
            << " the agency's roster does not vouch for:\n";
  for (const AuditRow* row : failing) {
    std::cerr << "  entry " << row->entry.index << ": "
              << keys::VerdictName(row->operator_check->verdict) << ": "
              << Printable(row->operator_check->why) << "\n";
  }
  return kExitFailed;
}

// overrides [--roster FILE --dir DIR]: with rosters, each override's countersigners are
// checked against the recording agency's roster (audit/roster_check.h).
int RunOverrides(const LocalAuditStore& store, const OperatorRosters& rosters, bool with_rosters,
                 OutputFormat format) {
  auto r = QueryOverrides(store);
  if (r.ok() && with_rosters) CheckOverridesWithRosters(*r, rosters.files);
  return RunQuery(std::move(r), format, rosters);
}

// What the command line says, filled by CLI11 (one field per option).
struct Args {
  bool as_json = false;
  bool as_csv = false;
  FetchOptions fo;
  WitnessOptions wo;
  std::string store_dir, dir, out, message, bundle, case_ref, agency, from, to;
  MinCosignatures min_cosignatures;
  std::vector<std::string> evidence;
  std::vector<std::string> rosters;
  std::string lang = "ko";
};

struct Commands {
  CLI::App* fetch = nullptr;
  CLI::App* verify = nullptr;
  CLI::App* witness = nullptr;
  CLI::App* prove = nullptr;
  CLI::App* check = nullptr;
  CLI::App* check_bundle = nullptr;
  CLI::App* q_case = nullptr;
  CLI::App* q_access = nullptr;
  CLI::App* q_unconsented = nullptr;
  CLI::App* q_overrides = nullptr;
  CLI::App* report = nullptr;
};

// fetch: pull from a broker.
void AddFetch(CLI::App& app, Args& a, Commands& c) {
  c.fetch = app.add_subcommand(
      "fetch", "Pull new entries and checkpoints from a broker into the local audit store");
  c.fetch
      ->add_option("--dir", a.fo.auditor_dir,
                   "The auditor's folder (identity.key, authority.pub, directory)")
      ->required();
  c.fetch->add_option("--broker", a.fo.broker_id, "Broker id")->required();
  c.fetch->add_option("--endpoint", a.fo.endpoint,
                      "Broker endpoint (tcp://host:port); default: the directory's");
  c.fetch->add_option("--store", a.fo.store_dir, "Local audit store folder (one per broker)")
      ->required();
  c.fetch->add_option("--passphrase-file", a.fo.passphrase_file,
                      "File (0600) with the passphrase of a protected identity.key");
  c.fetch->add_option("--timeout-ms", a.fo.timeout_ms, "Per request")
      ->default_val(10000)
      ->check(CLI::Range(100, 600000));
  c.fetch
      ->add_option("--wait-cosignatures", a.fo.wait_cosignatures,
                   "Wait until the fresh checkpoint carries this many cosignatures from "
                   "directory witnesses (for verify --min-cosignatures)")
      ->check(CLI::Range(0, 100));
  c.fetch->add_option("--wait-ms", a.fo.wait_ms, "How long to wait for them")
      ->default_val(10000)
      ->check(CLI::Range(100, 600000));
}

// verify: check the local copy offline.
void AddVerify(CLI::App& app, Args& a, Commands& c) {
  c.verify = app.add_subcommand(
      "verify",
      "Check every checkpoint signature and cosignature, every entry and the Merkle tree, "
      "offline");
  c.verify->add_option("--store", a.store_dir, "Local audit store folder")->required();
  c.verify->add_option("--dir", a.dir, "The auditor's folder (for the verified directory)")
      ->required();
  c.verify
      ->add_option("--min-cosignatures", a.min_cosignatures,
                   "Require this many of the witnesses named in auditor.toml to have cosigned "
                   "the log (every checkpoint but the newest is covered by one that has them); "
                   "default: auditor.toml's min_cosignatures, else 1. 0 accepts an "
                   "unwitnessed log and says UNWITNESSED")
      ->check(CLI::Range(0, 100));
  c.verify->add_option("--evidence", a.evidence,
                       "A signed checkpoint of this log kept by someone else (refbus-agent "
                       "checkpoint --out FILE): the log must be consistent with it (repeatable)");
  c.verify->footer(R"(
Witnesses: only cosignatures by the witnesses named in AUDITOR_DIR/auditor.toml count,
never the log's own broker, whoever the broker asked:
  [verify]
  witnesses = ["busan-broker"]
  min_cosignatures = 1)");
}

// witness: cosign the broker's latest checkpoint.
void AddWitness(CLI::App& app, Args& a, Commands& c) {
  c.witness = app.add_subcommand(
      "witness",
      "Cosign the broker's latest checkpoint after checking it extends the last one this "
      "auditor cosigned, and hand the cosignature to the broker");
  c.witness->add_option("--dir", a.wo.auditor_dir, "The auditor's folder")->required();
  c.witness->add_option("--broker", a.wo.broker_id, "Broker id")->required();
  c.witness->add_option("--endpoint", a.wo.endpoint,
                        "Broker endpoint (tcp://host:port); default: the directory's");
  c.witness
      ->add_option("--store", a.wo.store_dir,
                   "Local audit store folder of this broker (keeps the witness state)")
      ->required();
  c.witness->add_option("--passphrase-file", a.wo.passphrase_file,
                        "File (0600) with the passphrase of a protected identity.key");
  c.witness->add_option("--timeout-ms", a.wo.timeout_ms, "Per request")
      ->default_val(10000)
      ->check(CLI::Range(100, 600000));
}

// prove and check-proof: inclusion-proof bundles.
void AddProofs(CLI::App& app, Args& a, Commands& c) {
  c.prove = app.add_subcommand(
      "prove", "Write an offline inclusion-proof bundle for every entry about one message");
  c.prove->add_option("MESSAGE-ID", a.message, "Message id (32 hex digits)")->required();
  c.prove->add_option("--store", a.store_dir, "Local audit store folder")->required();
  c.prove->add_option("--out", a.out, "Bundle file to write (JSON)")->required();

  c.check = app.add_subcommand("check-proof", "Verify a proof bundle without the log");
  c.check->add_option("BUNDLE", a.bundle, "Bundle file")->required();
  c.check->add_option("--dir", a.dir, "The auditor's folder (for the verified directory)")
      ->required();

  c.check_bundle = app.add_subcommand(
      "check-bundle", "Verify a joint evidence bundle of linkage tallies without the logs");
  c.check_bundle->add_option("BUNDLE", a.bundle, "Bundle file")->required();
  c.check_bundle->add_option("--dir", a.dir, "The auditor's folder (for the verified directory)")
      ->required();
}

// case, accesses, unconsented, overrides: the queries.
void AddQueries(CLI::App& app, Args& a, Commands& c) {
  c.q_case = app.add_subcommand("case", "Everything that happened to one case");
  c.q_case->add_option("CASE-REF", a.case_ref, "Case pseudonym")->required();
  c.q_case->add_option("--store", a.store_dir, "Local audit store folder")->required();

  c.q_access = app.add_subcommand(
      "accesses", "Everything one agency received or opened in a period (from <= t < to)");
  c.q_access->add_option("--agency", a.agency, "Agency id")->required();
  c.q_access->add_option("--from", a.from, "Start: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or Unix ms");
  c.q_access->add_option("--to", a.to, "End (exclusive), same forms");
  c.q_access->add_option("--store", a.store_dir, "Local audit store folder")->required();

  c.q_unconsented = app.add_subcommand(
      "unconsented",
      "Every access whose consent grant was not granted in this log, or revoked first");
  c.q_unconsented->add_option("--store", a.store_dir, "Local audit store folder")->required();

  c.q_overrides = app.add_subcommand("overrides",
                                     "Every emergency override grant and what was shared under it");
  c.q_overrides->add_option("--store", a.store_dir, "Local audit store folder")->required();
  for (CLI::App* q : {c.q_case, c.q_access, c.q_unconsented, c.q_overrides}) {
    q->add_option("--roster", a.rosters,
                  "An agency's signed operator roster (refbus-agent operator roster; "
                  "repeatable): each access's operator signature, and each override's "
                  "countersigners, are checked against it");
    q->add_option("--dir", a.dir,
                  "The auditor's folder (for the verified directory; with --roster)");
    q->footer(R"(
Every access (OPENED) names its operator and what their signature says: valid (the key
the agency's roster lists for that name), no signature (service account), UNSIGNED,
NO ROSTER (signature verifies, no roster given), NOT IN ROSTER or INVALID.
Exit 1 when an access is NOT IN ROSTER or INVALID.)");
  }
}

// report: the auditor's HTML page.
void AddReport(CLI::App& app, Args& a, Commands& c) {
  c.report = app.add_subcommand(
      "report",
      "Write the auditor's report, one self-contained HTML page (0600), offline: the verify "
      "verdict, the log, counts, consent grants, unconsented accesses, emergency overrides "
      "and a timeline per case");
  c.report->add_option("--store", a.store_dir, "Local audit store folder")->required();
  c.report->add_option("--dir", a.dir, "The auditor's folder (for the verified directory)")
      ->required();
  c.report->add_option("--out", a.out, "HTML file to write")->required();
  c.report->add_option("--case", a.case_ref, "Only this case pseudonym in the case sections");
  c.report
      ->add_option("--lang", a.lang,
                   "ko (Korean, the default; times in KST next to UTC) or en (English)")
      ->capture_default_str();
  c.report->add_option("--roster", a.rosters,
                       "An agency's signed operator roster (repeatable): every opening's "
                       "operator signature is checked against it; exit 1 on INVALID or NOT "
                       "IN ROSTER");
  c.report
      ->add_option("--min-cosignatures", a.min_cosignatures,
                   "As for verify: require this many named witnesses to have cosigned")
      ->check(CLI::Range(0, 100));
  c.report->footer(R"(
The page, from the local store only (no network; --dir is read for the broker's and the
witnesses' keys, as by verify): the verify verdict, PASS or FAIL with the first bad entry
or checkpoint named; the log's origin, size, latest checkpoint, its cosigners and the time
range; counts by event and by refusal reason; consent grants; accesses without matching
consent and emergency overrides (as unconsented and overrides); a timeline per case
pseudonym (sender, recipients, relaying brokers, deliveries, acks, openings by operator
ref, consent grant). Inline CSS, no script, nothing loaded from elsewhere; every string
from the log is escaped. Written 0600 (it holds who opened which case when).
Exit 0 on PASS; 1 on FAIL (the page is still written, saying why).

Example:
  refbus-audit report --dir AUDITOR_KEYS --store /srv/audit/seoul --out seoul.html)");
}

// The queries, over the local store.
int RunQueries(const Args& a, const Commands& c) {
  OutputFormat format =
      a.as_json ? OutputFormat::kJson : (a.as_csv ? OutputFormat::kCsv : OutputFormat::kTable);
  auto store = LocalAuditStore::Open(a.store_dir, /*create=*/false);
  if (!store.ok()) return Fail(store.status(), kExitIo);
  auto loaded = LoadRosters(a.rosters, a.dir);
  if (!loaded.ok()) return Fail(loaded.status(), ExitForRosters(loaded.status()));
  OperatorRosters rosters{std::move(*loaded), std::nullopt};
  if (a.rosters.empty() && !a.dir.empty()) {
    auto sd = LoadVerifiedDirectory(a.dir, Now());
    if (!sd.ok()) return Fail(sd.status(), kExitIo);
    auto h = RosterHistory::FromStore(**store, sd->directory, Now());
    if (!h.ok()) return Fail(h.status(), kExitIo);
    for (const auto& p : h->problems()) std::cerr << "refbus-audit: " << Printable(p) << "\n";
    rosters.log = std::move(*h);
  }
  if (c.q_case->parsed()) {
    if (!schema::IsValidCaseRef(a.case_ref)) {
      return Fail(InvalidArgument("'" + a.case_ref + "' is not a case pseudonym"), kExitUsage);
    }
    return RunQuery(QueryCase(**store, a.case_ref), format, rosters);
  }
  if (c.q_access->parsed()) {
    if (!schema::IsValidPartyId(a.agency)) {
      return Fail(InvalidArgument("'" + a.agency + "' is not a party id"), kExitUsage);
    }
    UnixMillis from_ms = 0, to_ms = ~UnixMillis{0};
    if (!a.from.empty()) {
      auto t = ParseTime(a.from);
      if (!t.ok()) return Fail(t.status(), kExitUsage);
      from_ms = *t;
    }
    if (!a.to.empty()) {
      auto t = ParseTime(a.to);
      if (!t.ok()) return Fail(t.status(), kExitUsage);
      to_ms = *t;
    }
    return RunQuery(QueryAccesses(**store, a.agency, from_ms, to_ms), format, rosters);
  }
  if (c.q_unconsented->parsed()) return RunQuery(QueryUnconsented(**store), format, rosters);
  if (c.q_overrides->parsed()) {
    return RunOverrides(**store, rosters, !a.rosters.empty(), format);
  }
  return kExitUsage;
}

int Main(int argc, char** argv) {
  if (!keys::InitSodium().ok()) {
    std::cerr << "refbus-audit: libsodium failed to initialize\n";
    return kExitIo;
  }
  CLI::App app{"refbus-audit: fetch, verify and query a refbus broker's tamper-evident audit log"};
  app.footer(kExitCodes);
  app.require_subcommand(1);
  app.fallthrough();
  Args a;
  Commands c;
  app.add_flag("--json", a.as_json, "Machine-readable output");
  app.add_flag("--csv", a.as_csv, "CSV output (queries)");
  AddFetch(app, a, c);
  AddVerify(app, a, c);
  AddWitness(app, a, c);
  AddProofs(app, a, c);
  AddQueries(app, a, c);
  AddReport(app, a, c);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  if (a.as_json && a.as_csv) {
    std::cerr << "refbus-audit: --json and --csv exclude each other\n";
    return kExitUsage;
  }

  if (c.fetch->parsed()) return RunFetch(a.fo, a.as_json);
  if (c.verify->parsed()) {
    return RunVerify(a.store_dir, a.dir, a.min_cosignatures, a.evidence, a.as_json);
  }
  if (c.witness->parsed()) return RunWitness(a.wo, a.as_json);
  if (c.prove->parsed()) return RunProve(a.message, a.store_dir, a.out, a.as_json);
  if (c.check->parsed()) return RunCheckProof(a.bundle, a.dir, a.as_json);
  if (c.check_bundle->parsed()) return RunCheckBundle(a.bundle, a.dir, a.as_json);
  if (c.report->parsed()) {
    ReportArgs ra{a.out, a.case_ref, a.lang, a.min_cosignatures, a.rosters};
    return RunReport(a.store_dir, a.dir, ra, a.as_json);
  }
  return RunQueries(a, c);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {  // a bug or no memory: say so, never abort silently
    std::cerr << "refbus-audit: internal error: " << e.what() << "\n";
    return kExitIo;
  }
}
