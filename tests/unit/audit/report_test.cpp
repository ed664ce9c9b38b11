// refbus-audit report on synthetic logs: the report of a small store holds the expected
// sections and values (verdict, log facts, counts, grants, unconsented accesses, overrides,
// timelines that select what QueryCase selects), escapes hostile strings from the log, keeps
// to one case with --case, and on a tampered store says FAIL and names the entry or the
// checkpoint, as verify does.
#include "audit/report.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <sstream>

#include "audit/local_store.h"
#include "audit/proof_bundle.h"
#include "audit/query.h"
#include "audit/verify.h"
#include "core/lmdb.h"
#include "keys/checkpoint.h"
#include "keys/merkle.h"
#include "keys/secret.h"
#include "schema/codec.h"
#include "tests/unit/test_util.h"

namespace refbus::audit {
namespace {

using refbus::test::HasSubstr;
using refbus::test::Must;
using refbus::test::TempDir;
using schema::AuditEntry;
using schema::AuditEvent;
using schema::NackReason;

constexpr UnixMillis kNow = 1'790'000'000'000;
constexpr char kBroker[] = "seoul-broker";
constexpr char kOrigin[] = "refbus/fed-test/seoul-broker";
constexpr char kCase[] = "case-00000001";
constexpr char kEmergencyCase[] = "case-e0000001";
constexpr char kHostile[] = "<script>document.title='owned'</script> & \"q\" 'a' <img src=x>";

::testing::AssertionResult Lacks(std::string_view text, std::string_view part) {
  if (text.find(part) == std::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "the page contains '" << part << "'";
}

class AuditReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = std::make_unique<keys::Identity>(
        Must(keys::Identity::Generate(kBroker, schema::PartyKind::kBroker, kNow, kMillisPerDay)));
    schema::Directory directory;
    directory.federation = "fed-test";
    directory.serial = 3;
    schema::Party p;
    p.id = kBroker;
    p.kind = schema::PartyKind::kBroker;
    p.status = schema::PartyStatus::kActive;
    schema::KeyRecord k;
    k.signing_key = broker_->signing_public_key();
    k.transport_key = broker_->transport_public_key();
    k.state = schema::KeyState::kActive;
    p.keys.push_back(k);
    directory.brokers.push_back(p);
    log_keys_ = Must(BrokerLogKeys(directory, kBroker));
    store_ = Must(LocalAuditStore::Open(dir_.Join("store"), /*create=*/true));
    Must(store_->Bind({kBroker, kOrigin, broker_->signing_public_key()}));
  }

  static Bytes Id(uint8_t b) { return Bytes(schema::kMessageIdBytes, b); }
  static Bytes Grant(uint8_t b) { return Bytes(schema::kGrantIdBytes, b); }

  AuditEntry Entry(AuditEvent event, std::string actor) {
    AuditEntry e;
    e.index = next_++;
    e.time_ms = kNow + e.index * 1000;
    e.event = event;
    e.broker_id = kBroker;
    e.actor = std::move(actor);
    return e;
  }
  AuditEntry Message(AuditEvent event, std::string actor, uint8_t id) {
    AuditEntry e = Entry(event, std::move(actor));
    e.message_id = Id(id);
    e.envelope_sha256 = Bytes(32, 0xa5);
    return e;
  }

  // A small log: a consented referral (accepted, delivered, acked, opened), an emergency
  // override referral relayed on to another broker, a refused envelope whose detail is
  // hostile markup, an opening without a grant, and a refused auditor query.
  void SmallLog() {
    std::vector<AuditEntry> v;
    AuditEntry g = Entry(AuditEvent::kConsentGranted, "seoul-wee-01");
    g.sender_id = "seoul-wee-01";
    g.case_ref = kCase;
    g.consent_grant_id = Grant(0x11);
    g.detail = "basis consent-legal-representative (PIPA 22-2); expires 2026-09-23T00:00:00Z";
    v.push_back(g);
    AuditEntry a = Message(AuditEvent::kEnvelopeAccepted, "seoul-wee-01", 1);
    a.sender_id = "seoul-wee-01";
    a.recipients = {"seoul-counsel"};
    a.case_ref = kCase;
    a.consent_grant_id = Grant(0x11);
    a.kind = schema::MessageKind::kReferral;
    v.push_back(a);
    AuditEntry d = Message(AuditEvent::kEnvelopeDelivered, "seoul-counsel", 1);
    d.recipients = {"seoul-counsel"};
    v.push_back(d);
    v.push_back(Message(AuditEvent::kEnvelopeAcked, "seoul-counsel", 1));
    AuditEntry o = Message(AuditEvent::kEnvelopeOpened, "seoul-counsel", 1);
    o.case_ref = kCase;
    o.consent_grant_id = Grant(0x11);
    o.operator_ref = "op-counsel-7";
    o.sender_id = "seoul-wee-01";
    v.push_back(o);
    AuditEntry eg = Entry(AuditEvent::kConsentGranted, "seoul-wee-01");
    eg.sender_id = "seoul-wee-01";
    eg.case_ref = kEmergencyCase;
    eg.consent_grant_id = Grant(0x22);
    eg.emergency_override = true;
    eg.detail =
        "basis emergency-life-safety (PIPA 18(2)3); expires 2026-09-23T00:00:00Z; "
        "EMERGENCY OVERRIDE countersigned by op-supervisor-2";
    v.push_back(eg);
    AuditEntry ea = Message(AuditEvent::kEnvelopeAccepted, "seoul-wee-01", 2);
    ea.sender_id = "seoul-wee-01";
    ea.recipients = {"busan-counsel"};
    ea.case_ref = kEmergencyCase;
    ea.consent_grant_id = Grant(0x22);
    ea.kind = schema::MessageKind::kReferral;
    v.push_back(ea);
    AuditEntry f = Message(AuditEvent::kEnvelopeForwarded, "busan-broker", 2);
    f.recipients = {"busan-broker"};
    f.detail = "committed by broker busan-broker";
    v.push_back(f);
    AuditEntry r = Message(AuditEvent::kEnvelopeRejected, "seoul-wee-01", 3);
    r.sender_id = "seoul-wee-01";
    r.case_ref = kCase;
    r.reason = NackReason::kConsentRevoked;
    r.detail = kHostile;
    v.push_back(r);
    AuditEntry u = Message(AuditEvent::kEnvelopeOpened, "seoul-counsel", 4);
    u.case_ref = kCase;
    u.operator_ref = "op-counsel-9";
    v.push_back(u);
    AuditEntry q = Entry(AuditEvent::kAuditorQuery, "seoul-wee-01");
    q.reason = NackReason::kNotPermitted;
    q.detail = "audit query: entries from index 0, at most 10";
    v.push_back(q);
    Append(v);
    AddCheckpoint(tree_.Size());
  }

  void Append(const std::vector<AuditEntry>& entries) {
    std::vector<Bytes> bytes;
    for (const auto& e : entries) {
      bytes.push_back(schema::EncodeAuditEntry(e));
      tree_.AppendEntry(bytes.back());
    }
    Must(store_->AppendEntries(Must(store_->NextIndex()), bytes));
  }
  void AddCheckpoint(uint64_t size) {
    keys::Checkpoint c;
    c.origin = kOrigin;
    c.size = size;
    c.root = Must(keys::RootAt(tree_, size));
    LocalCheckpoint lc;
    lc.size = size;
    lc.received_at_ms = kNow + 60'000;
    lc.note = Must(keys::SignCheckpoint(c, *broker_));
    Must(store_->AddCheckpoint(lc));
  }
  // Flips a byte of entry 1's envelope hash (SmallLog's 0xa5 bytes): the entry still
  // decodes with its index; only the tree can tell.
  void FlipAByteOfEntryOnesHash() {
    const Bytes hash(32, 0xa5);
    EditEntry(1, [&](Bytes& v) {
      auto at = std::search(v.begin(), v.end(), hash.begin(), hash.end());
      ASSERT_NE(at, v.end());
      *(at + 3) ^= 0x01;
    });
  }

  void EditEntry(uint64_t index, const std::function<void(Bytes&)>& edit) {
    lmdb::Env& env = store_->env();
    MDB_dbi dbi = Must(env.OpenDb("entries"));
    lmdb::Txn txn = Must(env.BeginWrite());
    Bytes v = [&] {
      ByteView b = Must(txn.Get(dbi, lmdb::U64Key(index)));
      return Bytes(b.begin(), b.end());
    }();
    edit(v);
    Must(txn.Put(dbi, lmdb::U64Key(index), v));
    Must(txn.Commit());
  }

  AuditReport Build(std::optional<std::string> case_ref = std::nullopt) {
    ReportOptions o;
    o.case_ref = std::move(case_ref);
    o.verify.min_cosignatures = 0;  // unwitnessed on purpose: the page must say so
    o.store_label = "/srv/audit/<seoul>";
    o.generated_at_ms = kNow + 120'000;
    return Must(BuildAuditReport(*store_, log_keys_, o));
  }

  TempDir dir_;
  std::unique_ptr<keys::Identity> broker_;
  LogKeys log_keys_;
  std::unique_ptr<LocalAuditStore> store_;
  keys::MemoryTree tree_;
  uint64_t next_ = 0;
};

TEST(HtmlEscapeTest, MarkupQuotesControlsAndBidi) {
  EXPECT_EQ(HtmlEscape("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
  EXPECT_EQ(HtmlEscape("tab\tnl\ncr\rnul" + std::string(1, '\0') + "del\x7f"),
            "tab\tnl\ncr\\x0dnul\\x00del\\x7f");
  // RIGHT-TO-LEFT OVERRIDE, LRI, ALM and RLM are shown, never applied.
  EXPECT_EQ(HtmlEscape("a\xe2\x80\xae"
                       "b\xe2\x81\xa6"
                       "c\xd8\x9c"
                       "d\xe2\x80\x8f"),
            "a[U+202E]b[U+2066]c[U+061C]d[U+200F]");
  // Other UTF-8 passes through.
  EXPECT_EQ(HtmlEscape("\xea\xb0\x80\xe2\x80\x94"), "\xea\xb0\x80\xe2\x80\x94");
  EXPECT_EQ(HtmlEscape("\xe2\x80"), "\xe2\x80");  // truncated: left to the browser
}

TEST_F(AuditReportTest, AnAggregateOfRefusalsCountsForTheRefusalsItStandsFor) {
  SmallLog();
  AuditEntry one = Entry(AuditEvent::kEnvelopeRejected, "seoul-police-03");
  one.reason = NackReason::kMalformed;
  AuditEntry agg = Entry(AuditEvent::kEnvelopeRejected, "seoul-police-03");
  agg.reason = NackReason::kMalformed;
  agg.refusal_count = 4990;
  agg.first_refused_ms = kNow + 1;
  agg.last_refused_ms = kNow + 9'000;
  agg.detail = "4990 refusals not recorded one by one";
  Append({one, agg});
  AddCheckpoint(tree_.Size());
  AuditReport r = Build();
  ASSERT_TRUE(r.verify.ok()) << r.verify.Headline();
  EXPECT_EQ(r.verify.refusal_entries, 3u);  // with the small log's consent-revoked one
  EXPECT_EQ(r.verify.refusals, 4992u);
  EXPECT_EQ(r.verify.refusal_aggregates, 1u);
  EXPECT_EQ(r.reason_counts.at(NackReason::kMalformed).at(AuditEvent::kEnvelopeRejected), 2u);
  EXPECT_EQ(r.refusal_counts.at(NackReason::kMalformed), 4991u);
  const std::string h = RenderAuditReportHtml(r);
  for (const char* part : {"<td>malformed</td><td class=\"num\">2</td><td class=\"num\">4991</td>",
                           "id=\"refusal-aggregates\""}) {
    EXPECT_TRUE(HasSubstr(h, part)) << part;
  }
  // A query shows the count and the times, in every format.
  QueryResult q;
  q.rows.push_back(AuditRow{});
  q.rows[0].entry = agg;
  std::ostringstream js, csv, table;
  PrintRows(q, OutputFormat::kJson, js);
  PrintRows(q, OutputFormat::kCsv, csv);
  PrintRows(q, OutputFormat::kTable, table);
  EXPECT_TRUE(HasSubstr(js.str(), "\"refusals\": 4990")) << js.str();
  EXPECT_TRUE(HasSubstr(csv.str(), ",4990,")) << csv.str();
  EXPECT_TRUE(HasSubstr(table.str(), "4990 refusals")) << table.str();
}

TEST_F(AuditReportTest, ASmallStoreHasItsSectionsAndValues) {
  SmallLog();
  AuditReport r = Build();
  ASSERT_TRUE(r.verify.ok()) << r.verify.Headline();
  EXPECT_EQ(r.entries, 11u);
  EXPECT_TRUE(r.undecodable.empty());
  ASSERT_TRUE(r.latest.has_value());
  EXPECT_EQ(r.latest->size, 11u);
  EXPECT_EQ(*r.first_ms, kNow);
  EXPECT_EQ(*r.last_ms, kNow + 10'000);
  EXPECT_EQ(r.event_counts.at(AuditEvent::kEnvelopeAccepted), 2u);
  EXPECT_EQ(r.event_counts.at(AuditEvent::kEnvelopeOpened), 2u);
  EXPECT_EQ(r.event_counts.at(AuditEvent::kConsentGranted), 2u);
  EXPECT_EQ(r.event_counts.at(AuditEvent::kAuditorQuery), 1u);
  EXPECT_EQ(r.reason_counts.at(NackReason::kConsentRevoked).at(AuditEvent::kEnvelopeRejected), 1u);
  EXPECT_EQ(r.reason_counts.at(NackReason::kNotPermitted).at(AuditEvent::kAuditorQuery), 1u);

  ASSERT_EQ(r.grants.size(), 2u);
  const ReportGrant& g = r.grants.at(Grant(0x22));
  EXPECT_TRUE(g.emergency_override);
  EXPECT_EQ(g.basis, "emergency-life-safety (PIPA 18(2)3)");
  EXPECT_EQ(g.case_ref, kEmergencyCase);

  ASSERT_EQ(r.cases.size(), 2u);
  const ReportCase& c = r.cases[0];
  EXPECT_EQ(c.case_ref, kCase);
  ASSERT_EQ(c.messages.size(), 3u);
  const ReportMessage& m = c.messages[0];
  EXPECT_EQ(m.message_id, Id(1));
  EXPECT_EQ(m.sender_id, "seoul-wee-01");
  EXPECT_EQ(m.recipients, std::vector<std::string>{"seoul-counsel"});
  EXPECT_EQ(m.delivered_to, std::vector<std::string>{"seoul-counsel"});
  EXPECT_EQ(m.acked_by, std::vector<std::string>{"seoul-counsel"});
  EXPECT_EQ(m.opened_by, std::vector<std::string>{"seoul-counsel (operator op-counsel-7)"});
  EXPECT_EQ(m.consent_grant_id, Grant(0x11));
  EXPECT_EQ(r.cases[1].messages.at(0).forwarded_to, std::vector<std::string>{"busan-broker"});
  ASSERT_TRUE(r.unconsented.ok()) << r.unconsented.status().ToString();
  ASSERT_EQ(r.unconsented->rows.size(), 1u);
  EXPECT_EQ(r.unconsented->rows[0].entry.message_id, Id(4));
  ASSERT_TRUE(r.overrides.ok());
  EXPECT_FALSE(r.overrides->rows.empty());

  const std::string h = RenderAuditReportHtml(r);
  // Verified without witnesses (min_cosignatures 0): the page says so plainly.
  EXPECT_FALSE(r.verify.witnessed);
  EXPECT_NE(h.find(kUnwitnessedWarning), std::string::npos);
  for (const char* part :
       {"<!DOCTYPE html>",
        "Content-Security-Policy",
        "id=\"verdict\"",
        ">PASS</p>",
        "id=\"log\"",
        "<code class=\"ref\">refbus/fed-test/seoul-broker</code>",
        "id=\"counts\"",
        "id=\"event-counts\"",
        "<td>accepted</td><td class=\"num\">2</td>",
        "<td>auditor-query</td><td class=\"num\">1</td>",
        "id=\"reason-counts\"",
        "<td>consent-revoked</td><td class=\"num\">1</td><td class=\"num\">1</td><td>"
        "rejected 1</td>",
        "<td>not-permitted</td><td class=\"num\">1</td><td class=\"num\">0</td><td>"
        "auditor-query 1</td>",
        "id=\"grants\"",
        "id=\"unconsented\"",
        "id=\"overrides\"",
        "id=\"timelines\"",
        "<code class=\"ref\">case-00000001</code>",
        "<code class=\"ref\">case-e0000001</code>",
        "seoul-counsel (operator op-counsel-7)",
        "forwarded to busan-broker",
        "EMERGENCY OVERRIDE",
        "basis consent-legal-representative (PIPA 22-2)",
        "names no consent grant",
        "2026-09-21T",
        "/srv/audit/&lt;seoul&gt;"}) {
    EXPECT_TRUE(HasSubstr(h, part)) << part;
  }
  EXPECT_TRUE(HasSubstr(h, HexEncode(Id(1))));
  EXPECT_TRUE(HasSubstr(h, HexEncode(Grant(0x22))));
  EXPECT_TRUE(HasSubstr(h, "Entries in the store</th><td>11</td>"));
  EXPECT_TRUE(HasSubstr(h, "Latest checkpoint</th><td>size 11, checkpoint #0"));
  // The hostile detail is text, every character of it.
  EXPECT_TRUE(HasSubstr(h,
                        "&lt;script&gt;document.title=&#39;owned&#39;&lt;/script&gt; &amp; "
                        "&quot;q&quot; &#39;a&#39; &lt;img src=x&gt;"));
  EXPECT_TRUE(Lacks(h, "<script"));
  EXPECT_TRUE(Lacks(h, "<img"));
  EXPECT_TRUE(Lacks(h, ">FAIL</p>"));
  // Self-contained: nothing to fetch.
  EXPECT_TRUE(Lacks(h, "src=\""));
  EXPECT_TRUE(Lacks(h, "url("));
  EXPECT_TRUE(Lacks(h, "@import"));
  EXPECT_TRUE(Lacks(h, "<link"));
  EXPECT_TRUE(Lacks(h, "http://"));
  EXPECT_TRUE(Lacks(h, "https://"));
}

TEST_F(AuditReportTest, TimelinesSelectWhatQueryCaseSelects) {
  SmallLog();
  AuditReport r = Build();
  for (const ReportCase& c : r.cases) {
    QueryResult q = Must(QueryCase(*store_, c.case_ref));
    std::vector<uint64_t> want, got;
    for (const auto& row : q.rows) want.push_back(row.entry.index);
    for (const auto& e : c.entries) got.push_back(e.index);
    EXPECT_EQ(got, want) << c.case_ref;
  }
}

TEST_F(AuditReportTest, OneCaseOnly) {
  SmallLog();
  AuditReport r = Build(std::string(kEmergencyCase));
  ASSERT_EQ(r.cases.size(), 1u);
  EXPECT_EQ(r.cases[0].case_ref, kEmergencyCase);
  ASSERT_TRUE(r.unconsented.ok());
  EXPECT_TRUE(r.unconsented->rows.empty());  // the unconsented opening is of the other case
  const std::string h = RenderAuditReportHtml(r);
  EXPECT_TRUE(HasSubstr(h, "case <code class=\"ref\">case-e0000001</code> only"));
  EXPECT_TRUE(HasSubstr(h, "forwarded to busan-broker"));
  EXPECT_TRUE(Lacks(h, kCase));
  EXPECT_TRUE(Lacks(h, "op-counsel-7"));
  EXPECT_TRUE(Lacks(h, "&lt;script&gt;"));
  // The log's facts stay whole-log.
  EXPECT_TRUE(HasSubstr(h, "<td>accepted</td><td class=\"num\">2</td>"));
}

TEST_F(AuditReportTest, ATamperedEntryFailsAndIsNamed) {
  SmallLog();
  // A byte of entry 4 (an opening): it no longer decodes. Verify names the entry.
  EditEntry(4, [](Bytes& v) { v[0] = 0xff; });
  AuditReport r = Build();
  ASSERT_FALSE(r.verify.ok());
  ASSERT_TRUE(r.verify.first_bad_entry.has_value());
  EXPECT_EQ(*r.verify.first_bad_entry, 4u);
  EXPECT_EQ(r.undecodable, std::vector<uint64_t>{4});
  EXPECT_FALSE(r.unconsented.ok());  // the queries refuse a log that is not its checkpoint's
  const std::string h = RenderAuditReportHtml(r);
  EXPECT_TRUE(
      HasSubstr(h, "<div class=\"verdict fail\" id=\"verdict\"><p class=\"word\">FAIL</p>"));
  EXPECT_TRUE(HasSubstr(h, "First bad entry: 4"));
  EXPECT_TRUE(HasSubstr(h, "<td>entry 4</td><td>does not decode"));
  EXPECT_TRUE(HasSubstr(h, "The log did not verify."));
  EXPECT_TRUE(HasSubstr(h, "Not available: failed precondition: local audit entry 4 is damaged"));
  EXPECT_TRUE(Lacks(h, ">PASS</p>"));
}

TEST_F(AuditReportTest, AFlippedByteThatStillDecodesNamesTheCheckpoint) {
  SmallLog();
  // A byte of entry 1's envelope hash: it decodes with its index; only the tree can tell,
  // and offline that names the checkpoint above it (fetch's bisection names the entry).
  FlipAByteOfEntryOnesHash();
  AuditReport r = Build();
  ASSERT_FALSE(r.verify.ok());
  ASSERT_TRUE(r.verify.first_bad_checkpoint_seq.has_value());
  const std::string h = RenderAuditReportHtml(r);
  EXPECT_TRUE(HasSubstr(h, ">FAIL</p>"));
  EXPECT_TRUE(HasSubstr(h, "First bad checkpoint: #0 (size 11)"));
  EXPECT_TRUE(HasSubstr(h, "differ from what the broker signed"));
}

TEST_F(AuditReportTest, AnEmptyStoreIsRefused) {
  auto empty = LocalAuditStore::Open(dir_.Join("empty"), /*create=*/true);
  ASSERT_TRUE(empty.ok());
  ReportOptions o;
  EXPECT_TRUE(refbus::test::HasCode(BuildAuditReport(**empty, log_keys_, o),
                                    Status::Code::kFailedPrecondition));
}

// Issue 18: the report in Korean too. Every sentence from the Korean catalog, times in KST
// (UTC+9) beside UTC, the openings with their operators; English on request.
// Every sentence of the Korean page is from the catalog, the findings of a log that fails
// verification and the operator and row explanations included: none of the English messages
// verify, the operator check and the queries wrote is on the page.
TEST_F(AuditReportTest, TheKoreanPageOfALogWithProblemsHasNoEnglishMessages) {
  SmallLog();
  AuditReport good = Build();
  ASSERT_TRUE(good.unconsented.ok());
  std::vector<std::string> english;
  for (const auto& [index, o] : good.openings) english.push_back(o.check.why);
  for (const auto& row : good.unconsented->rows) english.push_back(row.note);
  ASSERT_FALSE(english.empty());
  const std::string ko_good = RenderAuditReportHtml(good, ReportLang::kKorean);
  EXPECT_TRUE(HasSubstr(ko_good, "op-counsel-9: 담당자 서명이 없습니다")) << ko_good;
  EXPECT_TRUE(HasSubstr(ko_good, "동의 ID가 없습니다"));
  // An entry that no longer decodes: verify names it, and the queries refuse the log.
  EditEntry(4, [](Bytes& v) { v[0] = 0xff; });
  AuditReport bad = Build();
  ASSERT_FALSE(bad.verify.ok());
  ASSERT_FALSE(bad.unconsented.ok());
  english.push_back(bad.unconsented.status().ToString());
  for (const auto& p : bad.verify.problems) english.push_back(p.message);
  const std::string ko_bad = RenderAuditReportHtml(bad, ReportLang::kKorean);
  EXPECT_TRUE(HasSubstr(ko_bad, "항목을 해독할 수 없습니다")) << ko_bad;
  for (const auto& m : english) {
    ASSERT_FALSE(m.empty());
    EXPECT_TRUE(Lacks(ko_good, HtmlEscape(m))) << "English left in the Korean page: " << m;
    EXPECT_TRUE(Lacks(ko_bad, HtmlEscape(m))) << "English left in the Korean page: " << m;
  }
  for (const char* fragment : {"does not decode", "no operator signature", "names no consent",
                               "failed precondition", "not covered by any signed", "run fetch"}) {
    EXPECT_TRUE(Lacks(ko_good, fragment)) << fragment;
    EXPECT_TRUE(Lacks(ko_bad, fragment)) << fragment;
  }
  // The English page keeps the English messages.
  const std::string en_bad = RenderAuditReportHtml(bad, ReportLang::kEnglish);
  EXPECT_TRUE(HasSubstr(en_bad, HtmlEscape(bad.verify.problems.front().message)));
}

// A byte flipped under a checkpoint: the finding is named in Korean too.
TEST_F(AuditReportTest, TheKoreanPageNamesAFlippedByteInKorean) {
  SmallLog();
  FlipAByteOfEntryOnesHash();
  AuditReport r = Build();
  ASSERT_FALSE(r.verify.ok());
  const std::string ko = RenderAuditReportHtml(r, ReportLang::kKorean);
  ASSERT_FALSE(r.verify.problems.empty());
  for (const auto& p : r.verify.problems) {
    EXPECT_TRUE(Lacks(ko, HtmlEscape(p.message)))
        << "English left in the Korean page: " << p.message;
  }
  EXPECT_TRUE(HasSubstr(ko, "브로커가 서명한 것과 다릅니다")) << ko;
  EXPECT_TRUE(Lacks(ko, "differ from what the broker signed"));
}

TEST_F(AuditReportTest, TheKoreanPageSaysItInKoreanWithKstTimes) {
  SmallLog();
  AuditReport r = Build();
  ASSERT_TRUE(r.verify.ok()) << r.verify.Headline();
  ASSERT_EQ(r.openings.size(), 2u);
  const std::string ko = RenderAuditReportHtml(r, ReportLang::kKorean);
  EXPECT_TRUE(HasSubstr(ko, "<html lang=\"ko\">"));
  EXPECT_TRUE(HasSubstr(ko, "<p class=\"word\">통과</p>"));
  EXPECT_TRUE(HasSubstr(ko, "감사 보고서"));
  EXPECT_TRUE(HasSubstr(ko, "저장된 항목</th><td>11</td>"));
  EXPECT_TRUE(HasSubstr(ko, "누가 무엇을 열람했는가"));
  EXPECT_TRUE(HasSubstr(ko, "seoul-counsel (담당자 op-counsel-7) 서명 없음(UNSIGNED)"));
  // The headline, event names and verdicts are from the catalog too.
  EXPECT_TRUE(HasSubstr(ko, "서명된 체크포인트 "));
  EXPECT_TRUE(HasSubstr(ko, "증인 서명이 없습니다"));
  EXPECT_TRUE(HasSubstr(ko, "<td>열람</td>"));
  for (AuditEvent ev :
       {AuditEvent::kEnvelopeOpened, AuditEvent::kEnvelopeAccepted, AuditEvent::kConsentGranted}) {
    EXPECT_TRUE(Lacks(ko, ">" + std::string(schema::Name(ev)) + "<")) << schema::Name(ev);
  }
  EXPECT_TRUE(Lacks(ko, "ok: ")) << "verify's English headline";
  // kNow is 2026-09-21T14:13:20Z: 23:13:20 in Seoul.
  EXPECT_EQ(KstTime(kNow), "2026-09-21 23:13:20.000 KST");
  EXPECT_TRUE(HasSubstr(ko, "2026-09-21 23:13:20.000 KST (2026-09-21T14:13:20.000Z)"));
  for (const char* english : {"Timelines by case", "Consent grants", "The log", "PASS",
                              "Entries in the store", "Why listed", "This page holds"}) {
    EXPECT_TRUE(Lacks(ko, english)) << "English left in the Korean page";
  }
  const std::string en = RenderAuditReportHtml(r, ReportLang::kEnglish);
  EXPECT_TRUE(HasSubstr(en, "<html lang=\"en\">"));
  EXPECT_TRUE(HasSubstr(en, "Who opened what"));
  EXPECT_TRUE(Lacks(en, "감사"));
  EXPECT_TRUE(ParseReportLang("ko").ok());
  EXPECT_FALSE(ParseReportLang("jp").ok());
  EXPECT_EQ(Fill("{2} and {1}", {"a", "b"}), "b and a");
}

}  // namespace
}  // namespace refbus::audit
