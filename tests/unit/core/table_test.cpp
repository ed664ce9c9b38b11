// Table output of text from other parties: nothing a terminal would act on gets through.
#include "core/table.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>

namespace refbus {
namespace {

TEST(PrintableTest, ShowsControlsAndMalformedUtf8AsEscapes) {
  EXPECT_EQ(Printable("seoul-wee-01"), "seoul-wee-01");
  EXPECT_EQ(Printable("서울 상담센터"), "서울 상담센터");  // well-formed UTF-8 stays
  EXPECT_EQ(Printable("a\x1b]0;owned\x07"
                      "b"),
            "a\\x1b]0;owned\\x07b");  // title
  EXPECT_EQ(Printable("line\r\nnext\tx\x7f"), "line\\x0d\\x0anext\\x09x\\x7f");
  EXPECT_EQ(Printable("\xc2\x9b"
                      "2J"),
            "\\xc2\\x9b2J");  // C1 CSI, encoded as UTF-8
  EXPECT_EQ(Printable("\x9b"
                      "2J"),
            "\\x9b2J");                                     // a lone 8-bit CSI
  EXPECT_EQ(Printable("\xc0\xaf"), "\\xc0\\xaf");           // overlong '/'
  EXPECT_EQ(Printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a surrogate
  EXPECT_EQ(Printable("\xe4\xb8"), "\\xe4\\xb8");           // cut short
  EXPECT_EQ(Printable("back\\slash"), "back\\\\slash");     // escapes stay unambiguous
  EXPECT_EQ(Printable(std::string("nul\0x", 5)), "nul\\x00x");
}

TEST(TableTest, CellsArePrintedEscapedAndAligned) {
  Table t({"ID", "NOTE"});
  t.AddRow({"a\x1b[2J", "x"});
  t.AddRow({"bb", "y"});
  std::ostringstream out;
  t.Print(out);
  EXPECT_EQ(out.str(),
            "ID        NOTE\n"
            "a\\x1b[2J  x\n"
            "bb        y\n");
}

}  // namespace
}  // namespace refbus
