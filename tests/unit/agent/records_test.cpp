// Records: every case store record, in the stored form the engine wrote before records
// were typed, reads into its struct and is written back to the same bytes.
#include "agent/records.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "agent/records_json.h"
#include "tests/unit/test_util.h"

namespace refbus::agent {
namespace {

using Json = nlohmann::json;
using ::refbus::test::TempDir;

// Puts `stored` under "in", reads it as R, saves it as "out"; the two values must match
// to the byte (CaseStore writes Json::dump()).
template <typename R>
void ExpectSameBytes(Table table, const std::string& stored) {
  TempDir dir;
  auto store = test::Must(CaseStore::Open(dir.Join("cases")));
  auto txn = test::Must(store->Begin(true));
  Json in = Json::parse(stored);
  ASSERT_TRUE(txn.Put(table, "in", in).ok());
  auto rec = test::Must(Load<R>(txn, "in"));
  ASSERT_TRUE(rec.has_value());
  ASSERT_TRUE(Save(txn, "out", *rec).ok());
  auto out = test::Must(txn.Get(table, "out"));
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->dump(), in.dump());
}

TEST(RecordsTest, GrantsRecordedReceivedRevokedAndPurgedKeepTheirBytes) {
  ExpectSameBytes<GrantRecord>(
      Table::kGrants,
      R"({"signed":"0a0b","case_ref":"case-0011223344ff","recorded_here":true,"operator":"op-1",
          "revoked":false,"registered":false,"shared_with":[]})");
  ExpectSameBytes<GrantRecord>(
      Table::kGrants,
      R"({"signed":"0a0b","case_ref":"case-0011223344ff","recorded_here":false,
          "received_from":"agency-a","revoked":true,"shared_with":["agency-c"],
          "revoked_at_ms":1700000000000,"revocation_reason":"withdrawn-by-guardian",
          "purge_pending":false,"purged_messages":2,"purged_at_ms":1700000000500})");
}

TEST(RecordsTest, ReferralsKeepTheirBytes) {
  ExpectSameBytes<ReferralRecord>(
      Table::kReferrals,
      R"({"referral_id":"00112233445566778899aabbccddeeff","case_ref":"case-0011223344ff",
          "side":"receiver","peer":"agency-a","purpose":"counseling",
          "grant_id":"ffeeddccbbaa99887766554433221100","message_id":"0102",
          "state":"withdrawn","updated_at_ms":1700000000900,
          "history":[{"from":"","to":"requested","by":"agency-a","operator":"op-1",
                      "at_ms":1700000000000},
                     {"from":"requested","to":"accepted","by":"agency-b","operator":"op-2",
                      "reason":"","at_ms":1700000000100},
                     {"from":"accepted","to":"withdrawn","by":"agency-a",
                      "reason":"consent revoked","at_ms":1700000000900}]})");
}

TEST(RecordsTest, SealedTextKeepsItsBytesAndIsNeverShownByTheLists) {
  const std::string sealed =
      R"({"at":"handoffs/aa/reason","box":"00112233445566778899aabbccddeeff",)"
      R"("grant":"ffeeddccbbaa99887766554433221100","nonce":"000102030405060708090a0b0c0d0e0f1011121314151617"})";
  ExpectSameBytes<HandoffRecord>(
      Table::kHandoffs,
      R"({"handoff_id":"aa","case_ref":"case-0011223344ff","side":"to","peer":"agency-a",
          "grant_id":"bb","reason":)" +
          sealed + R"(,"message_id":"cc","state":"pending"})");
  ExpectSameBytes<CaseRecord>(Table::kCases,
                              R"({"case_ref":"case-0011223344ff","local_case":"","lead":"a",
          "closed":true,"grants":[],"access_notices":[],"purge_confirmations":[],
          "refusals":[],"timeline":[],"closed_reason":)" +
                                  sealed + "}");
  HandoffRecord h;
  h.handoff_id = "aa";
  h.reason.sealed = SealedText{"ffeeddccbbaa99887766554433221100", "handoffs/aa/reason",
                               Bytes(24, 1), Bytes(20, 2)};
  Json shown = ToJson(h);
  EXPECT_EQ(shown["reason"].get<std::string>().rfind("[sealed", 0), 0u) << shown.dump();
  // A reader sees each value with its place.
  Json read = ToJson(h, [](const CaseText&, const std::string& place) { return "at " + place; });
  EXPECT_EQ(read["reason"], "at handoffs/aa/reason");
}

TEST(RecordsTest, HandoffsAndDeletionsKeepTheirBytes) {
  ExpectSameBytes<HandoffRecord>(
      Table::kHandoffs,
      R"({"handoff_id":"aa","case_ref":"case-0011223344ff","side":"to","peer":"agency-a",
          "grant_id":"bb","reason":"moving","message_id":"cc","state":"pending"})");
  ExpectSameBytes<DeletionRecord>(
      Table::kDeletions,
      R"({"request_id":"aa","case_ref":"case-0011223344ff","side":"deletion-center",
          "peer":"agency-a","grant_id":"bb","report_to":["agency-c"],"monitor":true,
          "items":{"i1":"removed","i2":"requested"},"report_seq":1,
          "counts":{"received":0,"notified":0,"removed":1,"reappeared":0,"withdrawn":0}})");
  ExpectSameBytes<DeletionRecord>(
      Table::kDeletions,
      R"({"request_id":"aa","case_ref":"case-0011223344ff","side":"observer",
          "peer":"agency-d","grant_id":"bb","items":{},"report_seq":0})");
}

TEST(RecordsTest, CasesWithEveryKindOfNoteAndEventKeepTheirBytes) {
  ExpectSameBytes<CaseRecord>(
      Table::kCases,
      R"({"case_ref":"case-0011223344ff","local_case":"L-1","lead":"agency-a","closed":true,
          "closed_reason":"done","grants":["bb"],
          "access_notices":[{"message_id":"cc","agency":"agency-b","operator":"op-2",
                             "opened_at_ms":5,"kind":"referral"}],
          "purge_confirmations":[{"grant_id":"bb","agency":"agency-b","messages_purged":3,
                                  "purged_at_ms":6}],
          "refusals":[{"by":"broker","what":"referral","id":"cc","reason":"out-of-scope",
                       "detail":"d","at_ms":7},
                      {"by":"agency-a","message_id":"dd","from":"agency-x","kind":"",
                       "reason":"bad","at_ms":8}],
          "timeline":[
            {"event":"consent-recorded","grant_id":"bb","basis":"consent-subject",
             "operator":"op-1","emergency_override":false,"at_ms":1},
            {"event":"referral-sent","to":"agency-b","referral_id":"aa","operator":"op-1",
             "at_ms":2},
            {"event":"consent-revocation-forwarded","to":["agency-c","agency-d"],"at_ms":3},
            {"event":"deletion-status","from":"agency-b","request_id":"aa","report_seq":2,
             "counts":{"received":1,"notified":0,"removed":0,"reappeared":0,"withdrawn":0},
             "at_ms":4},
            {"event":"deletion-sent","to":"agency-b","request_id":"aa","items":2,"at_ms":5},
            {"event":"purge-confirmed","from":"agency-b","messages_purged":3,"at_ms":6},
            {"event":"case-closed","operator":"op-1","notified":["agency-b"],"at_ms":7},
            {"event":"referral-state","from":"agency-b","referral_id":"aa","state":"declined",
             "reason":"full","at_ms":8},
            {"event":"consent-revoked","by":"agency-a","grant_id":"bb",
             "reason":"basis-ended","at_ms":9},
            {"event":"opened","message_id":"cc","operator":"op-2","at_ms":10},
            {"event":"handoff-received","from":"agency-a","handoff_id":"ee","at_ms":11},
            {"event":"referral-received","from":"agency-a","referral_id":"aa",
             "purpose":"counseling","at_ms":12}]})");
  ExpectSameBytes<CaseRecord>(
      Table::kCases,
      R"({"case_ref":"case-0011223344ff","local_case":"","lead":"","closed":false,
          "grants":[],"access_notices":[],"purge_confirmations":[],"refusals":[],
          "timeline":[]})");
}

TEST(RecordsTest, MessagesOutgoingLocalAndMetaKeepTheirBytes) {
  ExpectSameBytes<MessageRecord>(
      Table::kMessages,
      R"({"message_id":"cc","received_at_ms":5,"opened":true,"status":"ok","from":"agency-a",
          "kind":"referral","case_ref":"case-0011223344ff","grant_id":"bb","referral_id":"aa",
          "opened_by":"op-2","opened_at_ms":9})");
  ExpectSameBytes<MessageRecord>(
      Table::kMessages,
      R"({"message_id":"cc","received_at_ms":5,"opened":false,"status":"refused",
          "refusal":"no grant"})");
  ExpectSameBytes<MessageRecord>(
      Table::kMessages,
      R"({"message_id":"cc","received_at_ms":5,"opened":false,"status":"ok","stale":true,
          "from":"agency-a","kind":"deletion-status","case_ref":"case-0011223344ff",
          "grant_id":"bb"})");
  ExpectSameBytes<OutgoingRecord>(
      Table::kOutgoing,
      R"({"seq":3,"kind":"referral","what":"referral","case_ref":"case-0011223344ff",
          "to":["agency-b"],"status":"queued","envelope":"0a0b0c"})");
  ExpectSameBytes<OutgoingRecord>(Table::kOutgoing,
                                  R"({"seq":4,"kind":"control","what":"grant-registration",
          "case_ref":"case-0011223344ff","status":"refused","reason":"unknown-party",
          "detail":"x"})");
  ExpectSameBytes<LocalCaseRecord>(Table::kLocal, R"({"case_ref":"case-0011223344ff"})");
  ExpectSameBytes<SeqRecord>(Table::kMeta, R"({"seq":42})");
}

TEST(RecordsTest, ARecordThatDoesNotReadIsMalformed) {
  TempDir dir;
  auto store = test::Must(CaseStore::Open(dir.Join("cases")));
  auto txn = test::Must(store->Begin(true));
  ASSERT_TRUE(txn.Put(Table::kHandoffs, "h", {{"handoff_id", 7}}).ok());
  auto r = Load<HandoffRecord>(txn, "h");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kMalformed);
}

}  // namespace
}  // namespace refbus::agent
