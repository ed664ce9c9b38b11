// Linkage cost (issue 19 "Done when": the cost of one evaluation, agency and evaluator CPU):
//
//   linkage_bench [--seconds S]
//
// Measures, on one core, the median µs of:
//   canonicalize   Canonicalize(phone) of a typed Korean number
//   agency         the agency's whole share of one pseudonym: canonical form, blind,
//                  verify A's proof, verify B's proof, unblind, finalize (PseudonymRequest)
//   evaluator      one evaluation with its DLEQ proof (EvaluateForAgency), as each of the
//                  two evaluators runs it
//   evaluator+lmdb the evaluator's Handle: element check, the quota's durable LMDB commit,
//                  evaluation with proof (a real LMDB environment in a temporary folder)
//   direct         a key holder's Evaluate (what both keys together would cost per guess)
//   escrow entry   an agency making one escrow entry (linkage/escrow.h), and the escrow
//                  storing it (durable LMDB commit, a fresh tag: no match to open)
// Each figure is the median of 7 batches of about S/7 seconds after a warm-up. Also prints
// how long the quota makes a dictionary attack on Korean mobile numbers (10^8 of them,
// 010-xxxx-xxxx) for one agency and for 17 agencies pooling their quotas.
//
// Besides the text, prints one machine-readable line: RESULT linkage key=value ...
#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/lmdb.h"
#include "keys/secret.h"
#include "linkage/escrow.h"
#include "linkage/evaluator.h"
#include "linkage/identifier.h"
#include "linkage/two_party.h"

using namespace refbus;           // NOLINT(google-build-using-namespace)
using namespace refbus::linkage;  // NOLINT(google-build-using-namespace)
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr int kBatches = 7;

double MicrosPerOp(double seconds, const std::function<void()>& op) {
  size_t calls = 0;
  auto start = SteadyClock::now();
  const auto warm = std::chrono::duration<double>(seconds / kBatches / 2);
  while (SteadyClock::now() - start < warm || calls < 3) {
    op();
    ++calls;
  }
  const double per_call = std::chrono::duration<double>(SteadyClock::now() - start).count() /
                          static_cast<double>(calls);
  const auto per_batch = static_cast<size_t>(seconds / kBatches / per_call) + 1;
  std::vector<double> us;
  for (int b = 0; b < kBatches; ++b) {
    const auto t0 = SteadyClock::now();
    for (size_t i = 0; i < per_batch; ++i) op();
    us.push_back(std::chrono::duration<double, std::micro>(SteadyClock::now() - t0).count() /
                 static_cast<double>(per_batch));
  }
  std::sort(us.begin(), us.end());
  return us[kBatches / 2];
}

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "linkage_bench: %s failed\n", what);
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 0.7;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--seconds") seconds = std::atof(argv[i + 1]);
  }
  Check(keys::InitSodium().ok(), "libsodium");
  auto a = oprf::ServerKey::Generate(oprf::Mode::kVoprf);
  auto b = oprf::ServerKey::Generate(oprf::Mode::kVoprf);
  Check(a.ok() && b.ok(), "key generation");
  const auto scalars = oprf::RandomScalars();
  auto id = Canonicalize(IdentifierKind::kPhone, "+82 10-1234-5678");
  Check(id.ok(), "canonicalize");
  auto req0 = PseudonymRequest::Start(*id, scalars);
  Check(req0.ok(), "blind");
  const oprf::Element blinded = req0->first_request();

  const double canon = MicrosPerOp(seconds, [] {
    auto c = Canonicalize(IdentifierKind::kPhone, "010-1234-5678");
    Check(c.ok(), "canonicalize");
  });
  const double evaluator = MicrosPerOp(
      seconds, [&] { Check(EvaluateForAgency(*a, blinded, scalars).ok(), "evaluate"); });
  // The agency's share: everything but the evaluators' own work, which is done once
  // beforehand for a fixed blind (the agency's steps do not depend on which blind).
  const double agency_total = MicrosPerOp(seconds, [&] {
    auto c = Canonicalize(IdentifierKind::kPhone, "010-1234-5678");
    auto req = PseudonymRequest::Start(*c, scalars);
    auto ea = EvaluateForAgency(*a, req->first_request(), scalars);
    auto to_b = req->AcceptFirst(a->public_key(), *ea);
    auto eb = EvaluateForAgency(*b, *to_b, scalars);
    Check(req->Finish(b->public_key(), *eb).ok(), "pseudonym");
  });
  const double agency = agency_total - 2 * evaluator;
  const double direct =
      MicrosPerOp(seconds, [&] { Check(oprf::Evaluate(*a, id->OprfInput()).ok(), "direct"); });

  char tmpl[] = "/tmp/refbus-linkage-bench-XXXXXX";
  const char* dir = ::mkdtemp(tmpl);
  Check(dir != nullptr, "mkdtemp");
  double with_lmdb = 0;
  {
    auto env = lmdb::Env::Open(std::string(dir) + "/store", lmdb::EnvOptions{});
    Check(env.ok(), "LMDB");
    auto quota = EvaluationQuota::Open(**env, kMaxDailyQuota);
    Check(quota.ok(), "quota");
    Evaluator ev(*a, std::move(quota).value(), [](const EvaluationCount&) {});
    UnixMillis now = 1'800'000'000'000;
    with_lmdb = MicrosPerOp(seconds / 2, [&] {
      now += kMillisPerDay / kMaxDailyQuota;  // stays within the day's quota
      Check(ev.Handle("incheon-dsc", blinded, now, scalars).ok(), "handle");
    });
  }
  // The escrow (linkage/escrow.h): an agency making one entry (share and sealed record),
  // and the escrow storing it with a durable LMDB commit, each on a fresh tag (no match).
  EscrowRecord record;
  record.agency_id = "incheon-dsc";
  record.case_pseudonym = "case-0001";
  record.kind = IdentifierKind::kPhone;
  Pseudonym pseudonym{};
  const double escrow_make = MicrosPerOp(seconds, [&] {
    ++pseudonym[0];
    Check(MakeEscrowEntry(pseudonym, record, kDefaultEscrowThreshold, 1'900'000'000'000).ok(),
          "escrow entry");
  });
  double escrow_add = 0;
  {
    auto env = lmdb::Env::Open(std::string(dir) + "/escrow", lmdb::EnvOptions{});
    Check(env.ok(), "LMDB");
    auto escrow = Escrow::Open(**env, kDefaultEscrowThreshold);
    Check(escrow.ok(), "escrow");
    uint32_t n = 0;
    escrow_add = MicrosPerOp(seconds / 2, [&] {
      ++n;
      std::memcpy(pseudonym.data() + 8, &n, sizeof n);
      auto e = MakeEscrowEntry(pseudonym, record, kDefaultEscrowThreshold, 1'900'000'000'000);
      Check(e.ok() && escrow->Add("incheon-dsc", *e, 1'800'000'000'000).ok(), "escrow add");
    });
    escrow_add -= escrow_make;
  }
  std::filesystem::remove_all(dir);

  const double numbers = 1e8;  // 010-0000-0000 .. 010-9999-9999
  const double days_one = numbers / kDefaultDailyQuota;
  const double days_17 = days_one / 17;
  std::printf("linkage, one core (median of %d batches):\n", kBatches);
  std::printf("  canonicalize phone          %9.1f us\n", canon);
  std::printf("  agency share of a pseudonym %9.1f us (blind, 2 proof checks, unblind)\n", agency);
  std::printf("  evaluator, one evaluation   %9.1f us (with DLEQ proof)\n", evaluator);
  std::printf("  evaluator with LMDB quota   %9.1f us (durable commit per request)\n", with_lmdb);
  std::printf("  one pseudonym, all parties  %9.1f us\n", agency_total);
  std::printf("  key holder's direct Evaluate %8.1f us\n", direct);
  std::printf("  escrow entry, agency side   %9.1f us (share, sealed record)\n", escrow_make);
  std::printf("  escrow entry, escrow side   %9.1f us (durable LMDB commit, no match)\n",
              escrow_add);
  std::printf(
      "dictionary of 10^8 mobile numbers at %u a day: %.0f days (%.0f years) for one "
      "agency, %.0f years for 17 pooling quotas; with both keys: %.0f core-minutes\n",
      kDefaultDailyQuota, days_one, days_one / 365, days_17 / 365, numbers * direct / 1e6 / 60);
  std::printf(
      "RESULT linkage canonicalize_us=%.1f agency_us=%.1f evaluator_us=%.1f "
      "evaluator_lmdb_us=%.1f total_us=%.1f direct_us=%.1f escrow_make_us=%.1f "
      "escrow_add_us=%.1f\n",
      canon, agency, evaluator, with_lmdb, agency_total, direct, escrow_make, escrow_add);
  return 0;
}
