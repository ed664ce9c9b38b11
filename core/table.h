// A plain-text table for command-line output: columns padded to their widest cell.
//
// Thread safety: a value; not synchronized.
#ifndef REFBUS_CORE_TABLE_H_
#define REFBUS_CORE_TABLE_H_

#include <ostream>
#include <string>
#include <vector>

namespace refbus {

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  size_t rows() const { return rows_.size(); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace refbus

#endif  // REFBUS_CORE_TABLE_H_
