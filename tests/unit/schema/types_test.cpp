// Tests for schema/types.h: readable enum names, their parsers, and the lookup helpers.
#include "schema/types.h"

#include <gtest/gtest.h>

namespace refbus::schema {
namespace {

TEST(TypesTest, AgencyTypeNamesRoundTrip) {
  for (int v = 1; v <= static_cast<int>(AgencyType::kHotline); ++v) {
    auto type = static_cast<AgencyType>(v);
    auto parsed = ParseAgencyType(Name(type));
    ASSERT_TRUE(parsed.has_value()) << Name(type);
    EXPECT_EQ(*parsed, type);
  }
  EXPECT_EQ(Name(AgencyType::kPoliceUnit), "police-unit");
  EXPECT_EQ(ParseAgencyType("deletion-center"), AgencyType::kDeletionCenter);
}

TEST(TypesTest, ParsersRefuseUnknownAndUnspecified) {
  EXPECT_FALSE(ParseAgencyType("fire-brigade").has_value());
  EXPECT_FALSE(ParseAgencyType("-").has_value());
  EXPECT_FALSE(ParseAgencyType("").has_value());
  EXPECT_FALSE(ParseAgencyType("Police-Unit").has_value());
  EXPECT_FALSE(ParseRole("unspecified").has_value());
  EXPECT_FALSE(ParseRole("admin").has_value());
  EXPECT_FALSE(ParsePartyKind("unspecified").has_value());
  EXPECT_EQ(ParseRole("case-lead"), Role::kCaseLead);
  EXPECT_EQ(ParsePartyKind("auditor"), PartyKind::kAuditor);
}

TEST(TypesTest, RoleAndKindNamesRoundTrip) {
  for (int v = 1; v <= static_cast<int>(Role::kLinkageEscrow); ++v) {
    auto role = static_cast<Role>(v);
    EXPECT_EQ(ParseRole(Name(role)), role) << Name(role);
  }
  for (int v = 1; v <= static_cast<int>(PartyKind::kAuditor); ++v) {
    auto kind = static_cast<PartyKind>(v);
    EXPECT_EQ(ParsePartyKind(Name(kind)), kind) << Name(kind);
  }
}

TEST(TypesTest, OutOfRangeValuesAreNamedUnknown) {
  EXPECT_EQ(Name(static_cast<AgencyType>(99)), "unknown");
  EXPECT_EQ(Name(static_cast<NackReason>(19)), "unknown");
  EXPECT_EQ(Name(NackReason::kIdReused), "id-reused");
  EXPECT_EQ(Name(NackReason::kNotPermitted), "not-permitted");
  EXPECT_EQ(Name(NackReason::kOutOfRange), "out-of-range");
  EXPECT_EQ(Name(static_cast<MessageKind>(16)), "unknown");
  EXPECT_EQ(Name(MessageKind::kLinkageTally), "linkage-tally");
  EXPECT_EQ(Name(MessageKind::kLinkageEntry), "linkage-entry");
  EXPECT_EQ(Name(MessageKind::kLinkageNotice), "linkage-notice");
  EXPECT_EQ(Name(Role::kLinkageEscrow), "linkage-escrow");
  EXPECT_EQ(ParsePurpose("linkage"), Purpose::kLinkage);
  EXPECT_EQ(Name(MessageKind::kDeletionWatchList), "deletion-watch-list");
  EXPECT_EQ(Name(NackReason::kInternal), "internal");
  EXPECT_EQ(Name(MessageKind::kOpaque), "opaque");
  EXPECT_EQ(Name(LegalBasis::kEmergencyLifeSafety), "emergency-life-safety");
  EXPECT_EQ(Name(DataCategory::kCaseStatus), "case-status");
}

TEST(TypesTest, PartyHelpers) {
  Party p;
  p.roles = {Role::kRefer, Role::kReceive};
  EXPECT_TRUE(p.HasRole(Role::kRefer));
  EXPECT_FALSE(p.HasRole(Role::kAudit));
  EXPECT_EQ(p.ActiveKeys(), nullptr);
  KeyRecord retired;
  retired.state = KeyState::kRetired;
  KeyRecord active;
  active.state = KeyState::kActive;
  active.signing_key = Bytes(32, 1);
  p.keys = {retired, active};
  ASSERT_NE(p.ActiveKeys(), nullptr);
  EXPECT_EQ(p.ActiveKeys(), &p.keys[1]);
}

TEST(TypesTest, DirectoryFindSearchesEveryList) {
  Directory d;
  d.agencies.resize(1);
  d.agencies[0].id = "agency-a";
  d.brokers.resize(1);
  d.brokers[0].id = "broker-a";
  d.auditors.resize(1);
  d.auditors[0].id = "auditor-a";
  EXPECT_EQ(d.Find("agency-a"), &d.agencies[0]);
  EXPECT_EQ(d.Find("broker-a"), &d.brokers[0]);
  EXPECT_EQ(d.Find("auditor-a"), &d.auditors[0]);
  EXPECT_EQ(d.Find("agency"), nullptr);
  EXPECT_EQ(d.Find(""), nullptr);
}

// Three agencies, a broker and an auditor, indexed.
Directory IndexedDirectory() {
  Directory d;
  for (const char* id : {"agency-c", "agency-a", "agency-b"}) {
    d.agencies.emplace_back();
    d.agencies.back().id = id;
  }
  d.brokers.resize(1);
  d.brokers[0].id = "broker-a";
  d.auditors.resize(1);
  d.auditors[0].id = "auditor-a";
  d.BuildIndex();
  return d;
}

TEST(TypesTest, DirectoryIndexFindsEveryPartyAndNoOther) {
  const Directory d = IndexedDirectory();
  EXPECT_EQ(d.IndexedParties(), 5u);
  EXPECT_EQ(d.Find("agency-c"), &d.agencies[0]);
  EXPECT_EQ(d.Find("agency-a"), &d.agencies[1]);
  EXPECT_EQ(d.Find("agency-b"), &d.agencies[2]);
  EXPECT_EQ(d.Find("broker-a"), &d.brokers[0]);
  EXPECT_EQ(d.Find("auditor-a"), &d.auditors[0]);
  EXPECT_EQ(d.Find("agency-d"), nullptr);
  EXPECT_EQ(d.Find("agency-a "), nullptr);
  EXPECT_EQ(d.Find(""), nullptr);
}

// The index holds positions, not pointers: a copy or a moved-to directory finds its own
// parties, also after the original is gone (AddressSanitizer would see a dangling one).
TEST(TypesTest, DirectoryIndexFollowsCopiesAndMoves) {
  Directory copy;
  Directory moved;
  Directory assigned;
  {
    Directory original = IndexedDirectory();
    copy = original;
    assigned = IndexedDirectory();
    assigned = copy;
    moved = std::move(original);
  }
  const Directory copy_constructed(copy);
  for (const Directory* d :
       std::initializer_list<const Directory*>{&copy, &moved, &assigned, &copy_constructed}) {
    EXPECT_EQ(d->IndexedParties(), 5u);
    EXPECT_EQ(d->Find("agency-b"), &d->agencies[2]);
    EXPECT_EQ(d->Find("broker-a"), &d->brokers[0]);
    EXPECT_EQ(d->Find("auditor-a"), &d->auditors[0]);
    EXPECT_EQ(d->Find("agency-d"), nullptr);
  }
}

// Changing the lists after BuildIndex never gives a wrong answer: a stale entry is
// checked against the party it points at, and what the index does not hold is scanned for.
TEST(TypesTest, DirectoryIndexNeverAnswersFromStaleEntries) {
  Directory d = IndexedDirectory();
  d.agencies[1].id = "agency-renamed";
  std::swap(d.agencies[0], d.agencies[2]);  // agency-b first, agency-c last
  d.brokers.emplace_back();
  d.brokers.back().id = "broker-b";
  d.auditors.clear();
  EXPECT_EQ(d.Find("agency-a"), nullptr);
  EXPECT_EQ(d.Find("agency-renamed"), &d.agencies[1]);
  EXPECT_EQ(d.Find("agency-b"), &d.agencies[0]);
  EXPECT_EQ(d.Find("agency-c"), &d.agencies[2]);
  EXPECT_EQ(d.Find("broker-b"), &d.brokers[1]);
  EXPECT_EQ(d.Find("auditor-a"), nullptr);
  d.BuildIndex();
  EXPECT_EQ(d.IndexedParties(), 5u);
  EXPECT_EQ(d.Find("agency-renamed"), &d.agencies[1]);
  EXPECT_EQ(d.Find("broker-b"), &d.brokers[1]);
}

// The decoder refuses a repeated id; a directory built by hand with one finds the first,
// in the order agencies, brokers, auditors, with or without the index.
TEST(TypesTest, DirectoryIndexFindsTheFirstOfARepeatedId) {
  Directory d;
  d.agencies.resize(2);
  d.agencies[0].id = "twice";
  d.agencies[1].id = "twice";
  d.brokers.resize(1);
  d.brokers[0].id = "twice";
  EXPECT_EQ(d.Find("twice"), &d.agencies[0]);
  d.BuildIndex();
  EXPECT_EQ(d.Find("twice"), &d.agencies[0]);
  d.agencies.erase(d.agencies.begin());
  d.BuildIndex();
  EXPECT_EQ(d.Find("twice"), &d.agencies[0]);
  d.agencies.clear();
  d.BuildIndex();
  EXPECT_EQ(d.Find("twice"), &d.brokers[0]);
}

}  // namespace
}  // namespace refbus::schema
