#include "audit/report_text.h"

#include <cstdio>
#include <ctime>

namespace refbus::audit {
namespace {

constexpr ReportText kEnglish{
    .html_lang = "en",
    .title = "{1} - audit report of {2}",
    .heading = "Audit report: ",
    .meta_broker = "Broker ",
    .meta_store = " &middot; local audit store ",
    .meta_generated = " &middot; generated {1} by refbus-audit report, offline",
    .meta_case_only = "case {1} only",
    .nav_verification = "Verification",
    .nav_log = "Log",
    .nav_counts = "Counts",
    .nav_grants = "Consent grants",
    .nav_unconsented = "Unconsented accesses",
    .nav_overrides = "Emergency overrides",
    .nav_timelines = "Timelines",
    .pass = "PASS",
    .fail = "FAIL",
    .first_bad_entry = "First bad entry: {1}",
    .first_bad_checkpoint = "First bad checkpoint: #{1}{2}",
    .size_suffix = " (size {1})",
    .checks_explained =
        "The same checks as <code>refbus-audit verify</code>, offline: every stored entry "
        "against the Merkle tree, every stored checkpoint's signature with the broker's keys "
        "from the verified directory, every cosignature by a directory witness, and the "
        "consistency of the checkpoints with each other and with the entries.",
    .problems = "Problems ({1})",
    .where = "Where",
    .problem = "Problem",
    .more_problems = "... and {1} more (refbus-audit verify --json lists them all)",
    .entry_n = "entry {1}",
    .checkpoint_n = "checkpoint #{1} (size {2})",
    .unverified =
        "<b>The log did not verify.</b> What follows is what the local store holds, read as "
        "it is: it is not what the broker signed where the problems above say so.",
    .log = "The log",
    .broker = "Broker",
    .origin = "Origin",
    .key_at_fetch = "Signing key at the last fetch",
    .entries_in_store = "Entries in the store",
    .checkpoints_in_store = "Checkpoints in the store",
    .checkpoints_desc = "{1} ({2} with a valid signature)",
    .verified_size = "Verified size",
    .root = ", root ",
    .latest_checkpoint = "Latest checkpoint",
    .latest_desc = "size {1}, checkpoint #{2}, received {3}",
    .not_verified = " <b>(not verified: see above)</b>",
    .cosigners = "Its cosigners",
    .none = "none",
    .none_stored = "none stored",
    .witnessed = "Witnessed",
    .witnessed_up_to = "up to size {1}",
    .unwitnessed = "UNWITNESSED: no independent witness has cosigned this log",
    .cosignatures_required = "Cosignatures required",
    .unknown_signatures = "Signatures by unknown keys",
    .unknown_signatures_desc = "{1} (ignored)",
    .time_range = "Time range",
    .to = " to ",
    .no_entries = "no entries",
    .undecodable = "Entries that do not decode",
    .cosigned_checkpoints = "Cosigned checkpoints",
    .size = "Size",
    .arrivals = "Arrivals",
    .witnesses_valid = "Witnesses with a valid cosignature",
    .smaller_not_shown =
        "{1} smaller checkpoints not shown (refbus-audit verify --json lists them)",
    .counts = "Counts (whole log)",
    .by_event = "By event",
    .event = "Event",
    .entries = "Entries",
    .total = "total",
    .by_reason = "By refusal reason",
    .no_reason = "No entry carries a refusal reason.",
    .reason = "Reason",
    .refusals = "Refusals",
    .in_events = "In events",
    .aggregates =
        "{1} entries are aggregates: each stands for the refusals of one party and reason "
        "beyond the broker's per-minute limit, with their count and first and last times.",
    .grants = "Consent grants",
    .no_grant_in_log = "No consent grant in this log.",
    .no_grant_for_case = "No consent grant in this log for this case.",
    .grant = "Grant",
    .case_ = "Case",
    .recorded_by = "Recorded by",
    .basis = "Basis",
    .granted = "Granted",
    .revoked = "Revoked",
    .detail = "Detail",
    .entry_at = "entry {1}, {2}",
    .not_in_log = "not in this log",
    .emergency = "EMERGENCY OVERRIDE",
    .revoked_at = "revoked at entry {1}",
    .no_grant = "no grant",
    .not_granted_here = "(not granted in this log)",
    .unconsented_title = "Accesses without matching consent",
    .unconsented_intro =
        "Every opening (OPENED entry) that names no consent grant, a grant not granted in "
        "this log before the access, or one revoked before it (as <code>refbus-audit "
        "unconsented</code>).",
    .unconsented_empty = "None: every opening in this log was under a consent grant in force.",
    .overrides_title = "Emergency overrides",
    .overrides_intro =
        "Every consent grant with an emergency override, followed by what was shared under "
        "it (as <code>refbus-audit overrides</code>).",
    .overrides_empty = "None: no emergency override was granted in this log.",
    .not_available = "Not available: ",
    .time = "Time",
    .actor = "Actor",
    .message = "Message",
    .sender = "Sender",
    .recipients = "Recipients",
    .operator_ = "Operator",
    .operator_lc = "operator ",
    .why_listed = "Why listed",
    .override_group = "Emergency override grant ",
    .rows_from = "{1} rows, from the {2} entries of the latest stored checkpoint (size {3}).",
    .operators_title = "Who opened what",
    .operators_intro =
        "Every opening (OPENED entry) with the operator who acted and what their signature "
        "says against the agencies' signed operator rosters (<code>--roster</code>): valid, "
        "no signature (service account), UNSIGNED, NO ROSTER, NOT IN ROSTER or INVALID.",
    .operators_none = "No opening in this log.",
    .operator_signature = "Operator signature",
    .operators_failing =
        "{1} openings name an operator whose signature is INVALID or whom the agency's "
        "roster does not list.",
    .opened_as = "{1} (operator {2}) {3}",
    .timelines = "Timelines by case",
    .no_case_entry = "No entry of {1} in this log.",
    .any_case = "any case",
    .case_n = "Case {1}",
    .timelines_intro =
        "Per case pseudonym: each message (who sent it, to whom, which brokers relayed it, "
        "its deliveries, acks and openings, and the consent grant it was sent under), then "
        "every entry of the case in log order.",
    .kind = "Kind",
    .accepted_from = "Accepted from",
    .relayed = "Relayed",
    .delivered_to = "Delivered to",
    .acked_by = "Acked by",
    .opened_by = "Opened by",
    .consent_grant = "Consent grant",
    .accepted_at = "accepted {1}",
    .no_accepted = "no ACCEPTED entry",
    .forwarded_to = "forwarded to {1}",
    .rerouted = "rerouted {1}",
    .refused = "Refused, expired or quarantined:",
    .details = "Details",
    .from = "from ",
    .to_ = "to ",
    .purpose = "purpose ",
    .footer =
        "This page holds only what the audit log holds: ids, case pseudonyms, operator refs, "
        "times, events and the broker's details. No message content is ever in the log. {1} "
        "entries read in {2} s.",
    .headline_ok = nullptr,
    .headline_witnessed = nullptr,
    .headline_unwitnessed = nullptr,
    .headline_evidence = nullptr,
    .headline_failed = nullptr,
    .event_names = {},
    .verdict_names = {},
    .problem_texts = {},
    .why_texts = {},
    .note_texts = {},
    .query_refused = nullptr,
};

constexpr ReportText kKorean{
    .html_lang = "ko",
    .title = "{1} - 감사 보고서: {2}",
    .heading = "감사 보고서: ",
    .meta_broker = "브로커 ",
    .meta_store = " &middot; 로컬 감사 저장소 ",
    .meta_generated = " &middot; 작성 {1} (refbus-audit report, 오프라인)",
    .meta_case_only = "사건 {1}만",
    .nav_verification = "검증",
    .nav_log = "로그",
    .nav_counts = "집계",
    .nav_grants = "동의",
    .nav_unconsented = "동의 없는 열람",
    .nav_overrides = "긴급 예외",
    .nav_timelines = "사건별 경과",
    .pass = "통과",
    .fail = "실패",
    .first_bad_entry = "첫 번째 잘못된 항목: {1}",
    .first_bad_checkpoint = "첫 번째 잘못된 체크포인트: #{1}{2}",
    .size_suffix = " (크기 {1})",
    .checks_explained =
        "<code>refbus-audit verify</code>와 같은 검사를 오프라인으로 합니다: 저장된 모든 "
        "항목을 머클 트리와 대조하고, 저장된 모든 체크포인트의 서명을 검증된 디렉터리의 "
        "브로커 키로, 모든 공동 서명을 디렉터리 증인의 키로 확인하며, 체크포인트끼리 그리고 "
        "항목과의 일관성을 확인합니다.",
    .problems = "문제 ({1}건)",
    .where = "위치",
    .problem = "문제",
    .more_problems = "... 외 {1}건 (refbus-audit verify --json 에 모두 나옵니다)",
    .entry_n = "항목 {1}",
    .checkpoint_n = "체크포인트 #{1} (크기 {2})",
    .unverified =
        "<b>로그가 검증되지 않았습니다.</b> 아래는 로컬 저장소에 있는 그대로의 내용입니다. "
        "위의 문제가 가리키는 부분은 브로커가 서명한 내용이 아닙니다.",
    .log = "로그",
    .broker = "브로커",
    .origin = "출처(origin)",
    .key_at_fetch = "마지막 수집 때의 서명 키",
    .entries_in_store = "저장된 항목",
    .checkpoints_in_store = "저장된 체크포인트",
    .checkpoints_desc = "{1}개 (유효한 서명 {2}개)",
    .verified_size = "검증된 크기",
    .root = ", 루트 ",
    .latest_checkpoint = "최신 체크포인트",
    .latest_desc = "크기 {1}, 체크포인트 #{2}, 수신 {3}",
    .not_verified = " <b>(검증되지 않음: 위 참조)</b>",
    .cosigners = "공동 서명자",
    .none = "없음",
    .none_stored = "저장된 것 없음",
    .witnessed = "증인 확인",
    .witnessed_up_to = "크기 {1}까지",
    .unwitnessed = "증인 없음(UNWITNESSED): 독립 증인이 이 로그에 공동 서명하지 않았습니다",
    .cosignatures_required = "필요한 공동 서명 수",
    .unknown_signatures = "알 수 없는 키의 서명",
    .unknown_signatures_desc = "{1}개 (무시함)",
    .time_range = "기간",
    .to = " ~ ",
    .no_entries = "항목 없음",
    .undecodable = "해독할 수 없는 항목",
    .cosigned_checkpoints = "공동 서명된 체크포인트",
    .size = "크기",
    .arrivals = "수신",
    .witnesses_valid = "유효한 공동 서명을 한 증인",
    .smaller_not_shown =
        "더 작은 체크포인트 {1}개는 생략 (refbus-audit verify --json 에 모두 나옵니다)",
    .counts = "집계 (로그 전체)",
    .by_event = "이벤트별",
    .event = "이벤트",
    .entries = "항목 수",
    .total = "합계",
    .by_reason = "거부 사유별",
    .no_reason = "거부 사유가 있는 항목이 없습니다.",
    .reason = "사유",
    .refusals = "거부 수",
    .in_events = "이벤트",
    .aggregates =
        "{1}개 항목은 묶음입니다: 한 당사자의 같은 사유 거부 중 브로커의 분당 한도를 넘은 것을 "
        "건수와 처음·마지막 시각으로 나타냅니다.",
    .grants = "동의",
    .no_grant_in_log = "이 로그에 동의가 없습니다.",
    .no_grant_for_case = "이 로그에 이 사건의 동의가 없습니다.",
    .grant = "동의 ID",
    .case_ = "사건",
    .recorded_by = "기록 기관",
    .basis = "근거",
    .granted = "부여",
    .revoked = "철회",
    .detail = "세부",
    .entry_at = "항목 {1}, {2}",
    .not_in_log = "이 로그에 없음",
    .emergency = "긴급 예외",
    .revoked_at = "항목 {1}에서 철회",
    .no_grant = "동의 없음",
    .not_granted_here = "(이 로그에서 부여되지 않음)",
    .unconsented_title = "동의 없는 열람",
    .unconsented_intro =
        "동의를 밝히지 않았거나, 열람 전에 이 로그에서 부여되지 않았거나, 열람 전에 철회된 "
        "동의로 한 모든 열람(OPENED 항목) (<code>refbus-audit unconsented</code>와 같음).",
    .unconsented_empty = "없음: 이 로그의 모든 열람은 유효한 동의에 따른 것입니다.",
    .overrides_title = "긴급 예외",
    .overrides_intro =
        "긴급 예외로 부여된 모든 동의와, 그에 따라 공유된 것 (<code>refbus-audit "
        "overrides</code>와 같음).",
    .overrides_empty = "없음: 이 로그에서 긴급 예외는 부여되지 않았습니다.",
    .not_available = "사용할 수 없음: ",
    .time = "시각",
    .actor = "행위자",
    .message = "메시지",
    .sender = "발신",
    .recipients = "수신",
    .operator_ = "담당자",
    .operator_lc = "담당자 ",
    .why_listed = "표시 사유",
    .override_group = "긴급 예외 동의 ",
    .rows_from = "{1}행, 저장된 최신 체크포인트(크기 {3})의 항목 {2}개에서.",
    .operators_title = "누가 무엇을 열람했는가",
    .operators_intro =
        "모든 열람(OPENED 항목)과 그 담당자, 그리고 기관이 서명한 담당자 명부"
        "(<code>--roster</code>)로 확인한 담당자 서명의 결과: valid(유효), no signature "
        "(service account)(서비스 계정, 서명 없음), UNSIGNED(서명 없음), NO ROSTER(명부 없음), "
        "NOT IN ROSTER(명부에 없음), INVALID(무효).",
    .operators_none = "이 로그에 열람이 없습니다.",
    .operator_signature = "담당자 서명",
    .operators_failing =
        "{1}건의 열람에서 담당자 서명이 무효(INVALID)이거나 담당자가 기관의 명부에 없습니다.",
    .opened_as = "{1} (담당자 {2}) {3}",
    .timelines = "사건별 경과",
    .no_case_entry = "이 로그에 {1}의 항목이 없습니다.",
    .any_case = "어떤 사건",
    .case_n = "사건 {1}",
    .timelines_intro =
        "사건 가명별로: 각 메시지(보낸 기관, 받는 기관, 중계한 브로커, 전달·수신 확인·열람, "
        "근거가 된 동의), 이어서 그 사건의 모든 항목을 로그 순서대로 보입니다.",
    .kind = "종류",
    .accepted_from = "접수 경로",
    .relayed = "중계",
    .delivered_to = "전달",
    .acked_by = "수신 확인",
    .opened_by = "열람",
    .consent_grant = "동의",
    .accepted_at = "접수 {1}",
    .no_accepted = "ACCEPTED 항목 없음",
    .forwarded_to = "{1}(으)로 전달",
    .rerouted = "경로 변경 {1}",
    .refused = "거부·만료·격리:",
    .details = "세부",
    .from = "발신 ",
    .to_ = "수신 ",
    .purpose = "목적 ",
    .footer =
        "이 페이지에는 감사 로그에 있는 것만 있습니다: ID, 사건 가명, 담당자, 시각, 이벤트와 "
        "브로커의 세부. 메시지 내용은 로그에 결코 들어가지 않습니다. 항목 {1}개를 {2}초에 "
        "읽었습니다.",
    .headline_ok =
        "{2}의 항목 {1}개가 서명된 체크포인트 {3}개 모두와 일치하고, 체크포인트끼리도 "
        "서로 일관됩니다. 최신 크기 {4}, 루트 {5}",
    .headline_witnessed = "; 크기 {1}까지 증인 서명: {2}",
    .headline_unwitnessed =
        "; 증인 서명이 없습니다: 브로커가 기록을 고쳐 쓰고 새로 서명해도 이 "
        "검증만으로는 알 수 없습니다",
    .headline_evidence = "; 증거 체크포인트 {1}개와 일관됨",
    .headline_failed = "검증 실패: 문제 {1}건 (아래 표)",
    .event_names = {"미지정",        "접수",      "거부",      "전달",        "배달",
                    "수신 확인",     "열람",      "동의 기록", "동의 철회",   "파기 확인",
                    "디렉터리 적재", "키 폐기",   "감사 조회", "브로커 시작", "만료",
                    "증인 거부",     "경로 변경", "격리",      "사전키 공개", "연계 평가",
                    "담당자 명부"},
    .verdict_names = {"유효", "서명 없음(서비스 계정)", "서명 없음(UNSIGNED)",
                      "명부 없음(NO ROSTER)", "명부에 없음(NOT IN ROSTER)", "무효(INVALID)"},
    // The technical detail of a library's error is left to refbus-audit verify.
    .problem_texts =
        {nullptr, "항목을 해독할 수 없습니다 (자세한 내용: refbus-audit verify)",
         "항목의 색인 필드가 {1}입니다: 항목이 삭제되었거나 순서가 바뀌었거나 끼워 넣어졌습니다",
         "브로커 '{1}'이(가) 쓴 항목입니다({2}이(가) 아님)",
         "항목 {1}이(가) 로컬 저장소에 없습니다(다음 저장 항목: {2})",
         "브로커 {1}의 디렉터리 키로 서명이 검증되지 않습니다 (자세한 내용: refbus-audit verify)",
         "크기 {1}로 저장되었으나 서명된 노트의 크기는 {2}입니다",
         "체크포인트 #{1}과(와) 크기는 같고 루트가 다릅니다: 브로커가 서로 다른 두 로그에 "
         "서명했습니다(포크)",
         "체크포인트 #{1}(크기 {2})과(와) 일관되지 않습니다: 브로커가 준 일관성 증명이 검증되지 "
         "않습니다. 브로커가 이력을 고쳐 썼습니다",
         "처음 {1}개의 로컬 항목이 브로커가 서명한 것과 다릅니다. 이와 일치하는 가장 큰 이전 "
         "체크포인트의 크기는 {2}입니다",
         "확인할 수 없습니다: 로컬 로그가 항목 {1}에서 끊겨 있습니다",
         "로컬 저장소에 없는 항목까지 포함합니다(보유 {1}개): fetch를 실행하십시오",
         "증인 {1}의 연서명이 검증되지 않습니다 (자세한 내용: refbus-audit verify)",
         "증인 서명이 부족합니다: 필요한 {2}개 중 {1}개이며 더 큰 체크포인트에도 없습니다. 로그는 "
         "크기 {3}까지만 증인 서명되었습니다(fetch --wait-cosignatures)",
         "이 항목 이후 {1}개 항목이 서명된 체크포인트에 포함되지 않습니다",
         "저장소에 체크포인트가 없습니다: fetch를 실행하십시오",
         "증거 {1}이(가) 이 로그와 맞지 않습니다 (자세한 내용: refbus-audit verify)"},
    .why_texts = {nullptr, "{1} ({2}, 키 {3}, 명부 v{4})",
                  "{1}: API 토큰(서비스 계정)이며 사람이 아닙니다",
                  "{1}: 담당자 서명이 없습니다(사람에게 귀속할 수 없음)",
                  "서비스 계정 기록에 담당자 서명이 있습니다({1})",
                  "기록의 담당자는 {1}, 서명의 담당자는 {2}입니다",
                  "{1}: 서명이 검증되지 않습니다(키 {2})",
                  "{1}: 키 {2}(으)로 서명이 검증되지만, 사람과 연결할 {3}의 명부가 없습니다",
                  "키 {1}(으)로 서명되었으나 {2}의 명부는 {3}에게 이 키를 두지 않습니다(키 불일치)",
                  "{1}의 명부에 담당자 {2}이(가) 없습니다(키 {3})",
                  "서명된 열람 기록을 해독할 수 없습니다",
                  "서명된 기록이 이 항목의 것이 아닙니다(메시지, 사건, 기관 또는 담당자가 다름)"},
    .note_texts = {nullptr, "담당자 {1}이(가) 열람", "동의 ID가 없습니다",
                   "동의 {1}은(는) 이 로그에서 기록된 적이 없습니다",
                   "동의 {1}은(는) 이 열람 뒤에야 기록되었습니다(항목 {2})",
                   "동의 {1}은(는) 이 열람 전에 철회되었습니다(항목 {2}, {3})",
                   "긴급 예외 동의: {1}", "긴급 예외에 따라 공유됨"},
    .query_refused = "로그가 검증되지 않아 조회하지 않았습니다 (자세한 내용: refbus-audit verify)",
};

}  // namespace

Result<ReportLang> ParseReportLang(std::string_view name) {
  if (name == "ko") return ReportLang::kKorean;
  if (name == "en") return ReportLang::kEnglish;
  return InvalidArgument("--lang is ko (Korean) or en (English), not '" +
                         std::string(name.substr(0, 16)) + "'");
}

const ReportText& ReportTextFor(ReportLang lang) {
  return lang == ReportLang::kKorean ? kKorean : kEnglish;
}

std::string FillList(std::string_view tmpl, const std::vector<std::string>& values) {
  std::string out;
  out.reserve(tmpl.size() + 32);
  for (size_t i = 0; i < tmpl.size(); ++i) {
    if (tmpl[i] == '{' && i + 2 < tmpl.size() && tmpl[i + 2] == '}' && tmpl[i + 1] >= '1' &&
        tmpl[i + 1] <= '9') {
      const size_t k = static_cast<size_t>(tmpl[i + 1] - '1');
      if (k < values.size()) out += values[k];
      i += 2;
      continue;
    }
    out += tmpl[i];
  }
  return out;
}

std::string Fill(std::string_view tmpl, std::initializer_list<std::string_view> values) {
  return FillList(tmpl, std::vector<std::string>(values.begin(), values.end()));
}

std::string KstTime(UnixMillis t) {
  constexpr UnixMillis kKstOffsetMs = 9 * 3600 * 1000;
  const auto secs = static_cast<std::time_t>((t + kKstOffsetMs) / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%03d KST", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(t % 1000));
  return buf;
}

}  // namespace refbus::audit
