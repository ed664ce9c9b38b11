// Bulk deletion work at the API edge (agent/API.md "Deletions in bulk"): deletion items
// and status updates from CSV files, the status report as a delta over what the deletion
// center last reported, and the CSV export of a request's items.
//
// CSV follows RFC 4180: comma-separated fields, a field quoted with '"' may hold commas,
// line breaks and '""' (one quote); records end with CRLF or LF; blank lines are skipped.
// Errors name the line (1-based, the line a record starts on) and the problem, never a
// field's value: the files hold URLs of abuse material.
//
// Thread safety: free functions over values.
#ifndef REFBUS_AGENT_DELETION_BULK_H_
#define REFBUS_AGENT_DELETION_BULK_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "schema/workflow.h"

namespace refbus::agent {

// One CSV record: its fields and the line it starts on.
struct CsvRecord {
  size_t line = 0;
  std::vector<std::string> fields;
};

// RFC 4180 records. kInvalidArgument naming the line for an unterminated quote, a quote
// inside an unquoted field or text after a closing quote.
Result<std::vector<CsvRecord>> ParseCsv(std::string_view text);

// A field quoted when it needs to be (comma, quote, CR or LF).
std::string CsvField(std::string_view v);

// Checks an item as the receiving codec will (lengths, UTF-8), naming `where` ("line 7",
// "item 'v1'") and the field, never the value.
Status CheckDeletionItem(const schema::DeletionItem& item, const std::string& where);

// Deletion items from `url,sha256,platform,note` (header line optional; sha256, platform
// and note may be empty or left out). Each item's id is its line number ("17"). Every bad
// line is reported (up to 20, then a count), in one kInvalidArgument.
Result<std::vector<schema::DeletionItem>> ParseDeletionCsv(std::string_view text);

// One wanted status: `item_id,status` (header optional; status a DeletionItemStatus name).
struct StatusLine {
  std::string item_id;
  schema::DeletionItemStatus status = schema::DeletionItemStatus::kUnspecified;
  size_t line = 0;  // 0: not from a file
};
// kInvalidArgument naming the lines for unknown statuses, empty ids and an id given twice.
Result<std::vector<StatusLine>> ParseStatusCsv(std::string_view text);

// The delta: the wanted statuses that differ from the current ones (item id -> status
// name, "requested" before any report), in the order given. kNotFound naming the first
// item id the request does not hold. An item given twice keeps its last status.
Result<std::vector<StatusLine>> StatusDelta(const std::map<std::string, std::string>& current,
                                            const std::vector<StatusLine>& wanted);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_DELETION_BULK_H_
