// A plain-text table for command-line output: columns padded to their widest cell. Cells
// often hold text from elsewhere (audit entries, directory records written by other
// parties): the table shows every byte a terminal would act on (C0 and C1 controls, DEL, bytes
// that are not well-formed UTF-8) as a visible \xNN escape, so no cell can move the cursor,
// rewrite earlier lines or set the window title (cells are escaped as they are added).
//
// Thread safety: a value; not synchronized.
#ifndef REFBUS_CORE_TABLE_H_
#define REFBUS_CORE_TABLE_H_

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace refbus {

// text with controls and malformed UTF-8 shown as \xNN ("\" itself as "\\").
std::string Printable(std::string_view text);

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(Escaped(std::move(header))) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(Escaped(std::move(row))); }
  size_t rows() const { return rows_.size(); }
  void Print(std::ostream& out) const;

 private:
  static std::vector<std::string> Escaped(std::vector<std::string> cells);  // Printable each
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace refbus

#endif  // REFBUS_CORE_TABLE_H_
