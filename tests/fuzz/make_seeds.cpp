// Writes the seed corpus for envelope_fuzz: valid envelopes of several shapes, sealed with
// throwaway keys. Run by hand when the envelope format changes:
//   build/bin/make_fuzz_seeds tests/fuzz/corpus/envelope
#include <cstdio>
#include <fstream>
#include <string>

#include "keys/envelope.h"
#include "keys/identity.h"

using namespace refbus;  // NOLINT(google-build-using-namespace)

int main(int argc, char** argv) {
  if (argc != 2 || !keys::InitSodium().ok()) {
    std::fprintf(stderr, "usage: make_fuzz_seeds OUT_DIR\n");
    return 2;
  }
  const UnixMillis now = 1790000000000;
  auto sender = keys::Identity::Generate("seed-sender", schema::PartyKind::kAgency, now,
                                         keys::kPrekeyLifetimeMs);
  if (!sender.ok()) return 1;
  std::vector<keys::RecipientPrekey> recipients;
  std::vector<keys::Identity> holders;
  for (int i = 0; i < 3; ++i) {
    auto r = keys::Identity::Generate("seed-recipient-" + std::to_string(i),
                                      schema::PartyKind::kAgency, now, keys::kPrekeyLifetimeMs);
    if (!r.ok()) return 1;
    const auto& p = r->prekeys().front();
    recipients.push_back({r->party_id(), p.signed_prekey.prekey.public_key, p.id});
    holders.push_back(std::move(*r));
  }
  int n = 0;
  for (size_t nrec : {1u, 3u}) {
    for (size_t len : {0u, 1u, 100u, 1024u}) {
      keys::SealRequest req;
      req.kind = schema::MessageKind::kReferral;
      req.recipients.assign(recipients.begin(), recipients.begin() + static_cast<long>(nrec));
      req.case_ref = "case-7Q2M4K9XDW";
      req.consent_grant_id = keys::RandomBytes(16);
      req.purpose = schema::Purpose::kCounseling;
      req.categories = {schema::DataCategory::kIdentity, schema::DataCategory::kIncidentSummary};
      req.now = now;
      std::string content(len, 'x');
      auto env = keys::SealEnvelope(*sender, req, AsBytes(content));
      if (!env.ok()) return 1;
      std::ofstream out(std::string(argv[1]) + "/seed-" + std::to_string(n++), std::ios::binary);
      out.write(reinterpret_cast<const char*>(env->data()), static_cast<long>(env->size()));
    }
  }
  std::printf("wrote %d seeds\n", n);
  return 0;
}
