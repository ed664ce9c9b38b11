// A small federation built in memory for the trust-library tests: an authority, one
// broker and four agencies, with their identities, public records and signed directories.
//
// Everything uses the real ceremony functions (Identity::Generate, MakePartyRecord,
// NextDirectory, SignDirectory); nothing touches the disk. Setup failures throw (see
// test::Must), which gtest reports as a failure of the running test.
//
// Thread safety: single-threaded tests only.
#ifndef REFBUS_TESTS_UNIT_KEYS_FEDERATION_H_
#define REFBUS_TESTS_UNIT_KEYS_FEDERATION_H_

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "keys/crypto.h"
#include "keys/directory.h"
#include "keys/identity.h"
#include "schema/codec.h"
#include "schema/types.h"
#include "tests/unit/test_util.h"

namespace refbus::keys::fed {

// A fixed "now" in 2026; tests move time explicitly from here.
inline constexpr UnixMillis kNow = 1'780'000'000'000;
inline constexpr char kFederation[] = "test-federation";
inline constexpr char kBroker[] = "broker-seoul";

inline Identity NewIdentity(const std::string& id, schema::PartyKind kind, UnixMillis now = kNow) {
  return test::Must(Identity::Generate(id, kind, now, kPrekeyLifetimeMs));
}

inline Listing AgencyListing(schema::AgencyType type, const std::string& home = kBroker) {
  Listing l;
  l.display_name = "Test agency";
  l.agency_type = type;
  l.region = "seoul";
  l.home_broker = home;
  return l;
}

inline Listing BrokerListing() {
  Listing l;
  l.display_name = "Seoul broker";
  l.region = "seoul";
  l.endpoint = "tcp://127.0.0.1:7450";
  return l;
}

class Federation {
 public:
  // Generates every identity at `now` and issues directory serial 1.
  explicit Federation(UnixMillis now = kNow)
      : authority_(NewIdentity("authority", schema::PartyKind::kAuthority, now)) {
    Add(kBroker, schema::PartyKind::kBroker, BrokerListing(), now);
    Add("agency-a", schema::PartyKind::kAgency,
        AgencyListing(schema::AgencyType::kCounselingCenter), now);
    Add("agency-b", schema::PartyKind::kAgency, AgencyListing(schema::AgencyType::kPoliceUnit),
        now);
    Add("agency-c", schema::PartyKind::kAgency, AgencyListing(schema::AgencyType::kDeletionCenter),
        now);
    Add("agency-d", schema::PartyKind::kAgency, AgencyListing(schema::AgencyType::kSupportCenter),
        now);
    DirectoryEdit edit;
    for (const auto& [id, unused] : identities_) edit.upserts.push_back(Record(id, now));
    test::Must(Issue(edit, now));
  }

  const Identity& authority() const { return authority_; }
  Identity& party(const std::string& id) { return identities_.at(id); }
  const Listing& listing(const std::string& id) const { return listings_.at(id); }

  TrustAnchor anchor() const {
    return TrustAnchor{authority_.party_id(), authority_.signing_public_key(),
                       authority_.signing_key_id()};
  }

  // Generates a new party (not yet in any directory) and remembers it.
  void Add(const std::string& id, schema::PartyKind kind, const Listing& listing, UnixMillis now) {
    identities_.erase(id);
    identities_.emplace(id, NewIdentity(id, kind, now));
    listings_[id] = listing;
  }

  // Replaces a party's identity (for rotations); returns the old one.
  Identity Replace(const std::string& id, Identity fresh) {
    Identity old = std::move(identities_.at(id));
    identities_.erase(id);
    identities_.emplace(id, std::move(fresh));
    return old;
  }

  // The party's current public record.
  schema::SignedPartyRecord Record(const std::string& id, UnixMillis now,
                                   const Identity* previous = nullptr) {
    return test::Must(MakePartyRecord(party(id), listing(id), now, previous));
  }

  // The next directory from the current one, signed; becomes current on success.
  Result<schema::SignedDirectory> Issue(const DirectoryEdit& edit, UnixMillis now,
                                        UnixMillis validity_ms = kDefaultDirectoryValidityMs) {
    auto next = NextDirectory(current_ ? &current_->directory : nullptr, kFederation, edit, now,
                              validity_ms);
    if (!next.ok()) return next.status();
    current_ = SignDirectory(*next, authority_);
    return *current_;
  }

  const schema::SignedDirectory& current() const { return *current_; }
  const schema::Directory& directory() const { return current_->directory; }
  Bytes current_bytes() const { return schema::EncodeSignedDirectory(*current_); }

  // The recipient entry a sender would look up.
  RecipientPrekey PrekeyOf(const std::string& id, UnixMillis now) const {
    return test::Must(CurrentPrekey(directory(), id, now));
  }

 private:
  Identity authority_;
  std::map<std::string, Identity> identities_;
  std::map<std::string, Listing> listings_;
  std::optional<schema::SignedDirectory> current_;
};

}  // namespace refbus::keys::fed

#endif  // REFBUS_TESTS_UNIT_KEYS_FEDERATION_H_
