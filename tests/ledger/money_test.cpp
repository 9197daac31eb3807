// Tests for ledger/money.cpp: exact parsing (and what is rejected), sums that stay exact,
// overflow reported as nullopt, half-to-even rounding of time costs, exact rendering including
// negative amounts and amounts beyond 2^63 p$.
#include "ledger/money.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

namespace {

using gw::ledger::format_usd;
using gw::ledger::parse_usd;
using gw::ledger::parse_usd_per_mtok;
using gw::ledger::pico_usd;
using gw::ledger::time_cost;
using gw::ledger::to_usd_double;
using gw::ledger::token_cost;
using gw::ledger::wide_pico_usd;
using std::chrono::microseconds;

constexpr pico_usd max64 = std::numeric_limits<pico_usd>::max();
constexpr pico_usd min64 = std::numeric_limits<pico_usd>::min();

TEST(money, parse_usd_per_mtok_accepts_plain_decimals_exactly) {
  struct row {
    const char* text;
    pico_usd want;  // p$ per token
  };
  const row rows[] = {
      {"0.15", 150'000},     {"0.60", 600'000},          {"0.075", 75'000},
      {"2", 2'000'000},      {"2.50", 2'500'000},        {"0", 0},
      {"0.0", 0},            {"0.000001", 1},            {"10.000000", 10'000'000},
      {"007", 7'000'000},    {"1234.567891", 1'234'567'891},
      {"75", 75'000'000},    {"9223372036854.775807", max64},  // the largest representable
  };
  for (const row& r : rows) {
    SCOPED_TRACE(r.text);
    const std::optional<pico_usd> got = parse_usd_per_mtok(r.text);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, r.want);
  }
}

TEST(money, parse_usd_per_mtok_rejects_everything_else) {
  for (const char* text :
       {"", ".", ".5", "5.", "-1", "-0.15", "+1", "1e3", "1E-3", " 1", "1 ", "1,5", "0x10",
        "1.2.3", "abc", "0.0000001", "0.1500000", "inf", "nan", "1_000",
        "9223372036854.775808",  // one p$ past int64
        "99999999999999999999", "18446744073709551616"}) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(parse_usd_per_mtok(text).has_value());
  }
}

TEST(money, parse_usd_allows_twelve_decimals) {
  EXPECT_EQ(parse_usd("2.49"), pico_usd{2'490'000'000'000});
  EXPECT_EQ(parse_usd("0.000001"), pico_usd{1'000'000});
  EXPECT_EQ(parse_usd("0.000000000001"), pico_usd{1});
  EXPECT_EQ(parse_usd("3"), pico_usd{3'000'000'000'000});
  EXPECT_EQ(parse_usd("9223372.036854775807"), max64);
  EXPECT_FALSE(parse_usd("9223372.036854775808").has_value());
  EXPECT_FALSE(parse_usd("0.0000000000001").has_value());  // 13 decimals
  EXPECT_FALSE(parse_usd("-2.49").has_value());
  EXPECT_FALSE(parse_usd("2.").has_value());
  EXPECT_FALSE(parse_usd("").has_value());
}

TEST(money, sums_of_decimal_prices_stay_exact) {
  // The classic 0.1 + 0.2 != 0.3 of binary floating point does not happen here.
  EXPECT_EQ(*parse_usd_per_mtok("0.1") + *parse_usd_per_mtok("0.2"), *parse_usd_per_mtok("0.3"));
  EXPECT_EQ(*parse_usd("0.1") + *parse_usd("0.2"), *parse_usd("0.3"));
  pico_usd sum = 0;
  for (int i = 0; i < 10; ++i) sum += *parse_usd("0.1");
  EXPECT_EQ(sum, *parse_usd("1"));
  // A million tokens at "$0.15 per 1M tokens" cost exactly $0.15.
  EXPECT_EQ(token_cost(1'000'000, *parse_usd_per_mtok("0.15")), parse_usd("0.15"));
  // Three requests of 333'333 + 333'333 + 333'334 tokens add up to the same exact $0.15.
  const pico_usd p = *parse_usd_per_mtok("0.15");
  EXPECT_EQ(*token_cost(333'333, p) + *token_cost(333'333, p) + *token_cost(333'334, p),
            *parse_usd("0.15"));
  EXPECT_EQ(format_usd(*token_cost(1, *parse_usd_per_mtok("0.075"))), "0.000000075");
}

TEST(money, token_cost_reports_overflow) {
  EXPECT_EQ(token_cost(0, max64), pico_usd{0});
  EXPECT_EQ(token_cost(max64, 1), max64);
  EXPECT_EQ(token_cost(-3, 5), pico_usd{-15});
  EXPECT_EQ(token_cost(1'000'000'000, 75'000'000), pico_usd{75'000'000'000'000'000});  // $75'000
  EXPECT_FALSE(token_cost(max64, 2).has_value());
  EXPECT_FALSE(token_cost(max64 / 2 + 1, 2).has_value());
  EXPECT_FALSE(token_cost(-1, min64).has_value());
  EXPECT_FALSE(token_cost(4'000'000'000'000, 4'000'000).has_value());  // 1.6e19 > 9.2e18
}

TEST(money, time_cost_rounds_half_to_even) {
  struct row {
    pico_usd per_hour;
    std::int64_t us;
    pico_usd want;
    const char* why;
  };
  constexpr pico_usd half = 1'800'000'000;  // p$/hour that costs exactly 0.5 p$ per microsecond
  const row rows[] = {
      {3'600'000'000, 1, 1, "exactly 1"},
      {half, 1, 0, "0.5 -> 0 (even)"},
      {half, 3, 2, "1.5 -> 2 (even)"},
      {half, 5, 2, "2.5 -> 2 (even)"},
      {half, 7, 4, "3.5 -> 4 (even)"},
      {half + 1, 1, 1, "just above 0.5 -> 1"},
      {half - 1, 1, 0, "just below 0.5 -> 0"},
      {900'000'000, 1, 0, "0.25 -> 0"},
      {900'000'000, 3, 1, "0.75 -> 1"},
      {3'601'800'000'000, 1, 1000, "1000.5 -> 1000 (even)"},
      {3'605'400'000'000, 1, 1002, "1001.5 -> 1002 (even)"},
      {half, 1'000'001, 500'000, "500000.5 -> 500000 (even)"},
      {half, 1'000'003, 500'002, "500001.5 -> 500002 (even)"},
      {-half, 1, 0, "-0.5 -> 0 (even)"},
      {-half, 3, -2, "-1.5 -> -2 (even)"},
      {-half, 5, -2, "-2.5 -> -2 (even)"},
      {half, -7, -4, "-3.5 -> -4 (even)"},
      {-900'000'000, 3, -1, "-0.75 -> -1"},
      {2'490'000'000'000, 3'600'000'000, 2'490'000'000'000, "$2.49/h for one hour"},
      {2'690'000'000'000, 1'000'000, 747'222'222, "$2.69/h for one second (747222222.2)"},
      {2'690'000'000'000, 0, 0, "no time, no cost"},
      {max64, 3'600'000'000, max64, "the largest rate for one hour"},
  };
  for (const row& r : rows) {
    SCOPED_TRACE(r.why);
    const std::optional<pico_usd> got = time_cost(r.per_hour, microseconds{r.us});
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, r.want);
  }
}

TEST(money, time_cost_reports_overflow) {
  EXPECT_FALSE(time_cost(max64, microseconds{7'200'000'000}).has_value());  // two hours
  EXPECT_FALSE(time_cost(max64, microseconds{max64}).has_value());
  EXPECT_FALSE(time_cost(min64, microseconds{max64}).has_value());
  EXPECT_FALSE(time_cost(min64, microseconds{min64}).has_value());  // product near 2^126
  // A year of an H100 is nowhere near the limit.
  const auto year = std::chrono::duration_cast<microseconds>(std::chrono::hours{24 * 365});
  EXPECT_EQ(time_cost(2'690'000'000'000, year), pico_usd{2'690'000'000'000} * 24 * 365);
}

TEST(money, format_usd_is_exact) {
  struct row {
    wide_pico_usd amount;
    int min_decimals;
    const char* want;
  };
  const wide_pico_usd two63 = static_cast<wide_pico_usd>(max64) + 1;
  const wide_pico_usd max128 =
      static_cast<wide_pico_usd>((static_cast<unsigned __int128>(1) << 127) - 1);
  const wide_pico_usd min128 = -max128 - 1;
  const row rows[] = {
      {1'500'000'000'000, 2, "1.50"},
      {123, 2, "0.000000000123"},
      {0, 2, "0.00"},
      {0, 0, "0"},
      {1, 2, "0.000000000001"},
      {10'000'000'000, 2, "0.01"},
      {1'000'000'000'000, 0, "1"},
      {1'500'000'000'000, 0, "1.5"},
      {1'000'000'000'000, -3, "1"},
      {150'000'000'000, 4, "0.1500"},
      {1, 14, "0.00000000000100"},
      {12'345'678'900'000'000, 2, "12345.6789"},
      {-1'500'000'000'000, 2, "-1.50"},
      {-123, 2, "-0.000000000123"},
      {-1, 0, "-0.000000000001"},
      {max64, 2, "9223372.036854775807"},
      {min64, 2, "-9223372.036854775808"},
      {two63, 2, "9223372.036854775808"},
      {two63 * 1000, 2, "9223372036.854775808"},
      {static_cast<wide_pico_usd>(1'000'000'000'000) * 10'000'000'000, 2, "10000000000.00"},
      {max128, 2, "170141183460469231731687303.715884105727"},
      {min128, 2, "-170141183460469231731687303.715884105728"},
  };
  for (const row& r : rows) {
    SCOPED_TRACE(r.want);
    EXPECT_EQ(format_usd(r.amount, r.min_decimals), r.want);
  }
  EXPECT_EQ(format_usd(2'490'000'000'000), "2.49");  // default: at least 2 decimals
}

TEST(money, to_usd_double_is_for_display) {
  EXPECT_DOUBLE_EQ(to_usd_double(1'500'000'000'000), 1.5);
  EXPECT_DOUBLE_EQ(to_usd_double(-250'000'000'000), -0.25);
  EXPECT_DOUBLE_EQ(to_usd_double(0), 0.0);
  EXPECT_DOUBLE_EQ(to_usd_double(static_cast<wide_pico_usd>(max64) * 4),
                   4.0 * 9223372.036854775807);
}

}  // namespace
