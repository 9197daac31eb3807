// The text formats shared by the reports (gateway/report_text.h).
#include "gateway/report_text.h"

#include <gtest/gtest.h>

#include <limits>

using namespace gw::gateway;

TEST(report_text, int128_string_is_exact_at_the_extremes) {
  EXPECT_EQ(int128_string(0), "0");
  EXPECT_EQ(int128_string(-12), "-12");
  const __int128 max = static_cast<__int128>((~static_cast<unsigned __int128>(0)) >> 1);
  EXPECT_EQ(int128_string(max), "170141183460469231731687303715884105727");
  EXPECT_EQ(int128_string(-max - 1), "-170141183460469231731687303715884105728");
}

TEST(report_text, json_string_escapes_and_replaces_invalid_utf8) {
  EXPECT_EQ(json_string("a\"b\n"), "\"a\\\"b\\n\"");
  EXPECT_EQ(json_string("x\xff"), "\"x\xef\xbf\xbd\"");  // U+FFFD
}

TEST(report_text, csv_field_quotes_only_when_needed) {
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field(""), "");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_field("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(csv_field("cr\r"), "\"cr\r\"");
}

TEST(report_text, aligned_table_pads_rules_and_trims) {
  const std::vector<std::vector<std::string>> rows = {
      {"day", "group", "n"}, {"2026-01-01", "a", "12"}, {"TOTAL", "", "3"}};
  EXPECT_EQ(aligned_table(rows, 2),
            "day         group   n\n"
            "2026-01-01  a      12\n"
            "---------------------\n"
            "TOTAL               3\n");
  EXPECT_EQ(aligned_table(rows, 1),
            "day         group   n\n"
            "2026-01-01      a  12\n"
            "---------------------\n"
            "TOTAL               3\n");
  EXPECT_EQ(aligned_table({{"x", ""}, {"TOTAL", ""}}, 2), "x\n-------\nTOTAL\n");  // trailing spaces trimmed
  EXPECT_EQ(aligned_table({}, 1), "");
}
