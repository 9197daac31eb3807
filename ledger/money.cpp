// Integer money: parsing, exact products, half-even time division and exact rendering.
//
// Contract (see money.h): no floating point except to_usd_double; every arithmetic step that
// could overflow is checked and reported as nullopt instead of wrapping.
#include "ledger/money.h"

#include <algorithm>
#include <limits>

namespace gw::ledger {

namespace {

constexpr std::int64_t pico_per_usd = 1'000'000'000'000;  // 1e12
// "$X per 1M tokens" = X * 1e12 / 1e6 p$ per token = X * 1e6 p$ per token.
constexpr std::int64_t pico_per_token_per_usd_per_mtok = 1'000'000;
constexpr std::int64_t us_per_hour = 3'600'000'000;  // 3.6e9 microseconds

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Plain non-negative decimal "D+" or "D+.D+" with at most `max_frac` fractional digits, scaled
// by 10^max_frac into an int64; nullopt on any other form or on overflow.
std::optional<std::int64_t> parse_scaled(std::string_view text, std::size_t max_frac) {
  const std::size_t dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  const std::string_view frac =
      dot == std::string_view::npos ? std::string_view{} : text.substr(dot + 1);
  if (!all_digits(whole)) return std::nullopt;
  if (dot != std::string_view::npos && !all_digits(frac)) return std::nullopt;
  if (frac.size() > max_frac) return std::nullopt;

  constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
  std::int64_t v = 0;
  for (char c : whole) {
    const std::int64_t d = c - '0';
    if (v > (max - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  for (std::size_t i = 0; i < max_frac; ++i) {
    const std::int64_t d = i < frac.size() ? frac[i] - '0' : 0;
    if (v > (max - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

// Magnitude of a signed 128-bit value, valid for the minimum value too.
unsigned __int128 magnitude(__int128 v) {
  return v < 0 ? static_cast<unsigned __int128>(0) - static_cast<unsigned __int128>(v)
               : static_cast<unsigned __int128>(v);
}

std::string to_decimal(unsigned __int128 v) {
  if (v == 0) return "0";
  std::string s;
  while (v != 0) {
    s.push_back(static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  std::reverse(s.begin(), s.end());
  return s;
}

}  // namespace

std::optional<pico_usd> parse_usd_per_mtok(std::string_view text) {
  // 6 fractional digits of USD/1M tokens are exactly the integer p$/token.
  static_assert(pico_per_token_per_usd_per_mtok == 1'000'000);
  return parse_scaled(text, 6);
}

std::optional<pico_usd> parse_usd(std::string_view text) {
  static_assert(pico_per_usd == 1'000'000'000'000);
  return parse_scaled(text, 12);
}

std::optional<pico_usd> token_cost(std::int64_t tokens, pico_usd price_per_token) {
  pico_usd out = 0;
  if (__builtin_mul_overflow(tokens, price_per_token, &out)) return std::nullopt;
  return out;
}

std::optional<pico_usd> time_cost(pico_usd per_hour, std::chrono::microseconds duration) {
  // |int64 * int64| < 2^126, so the product always fits in __int128.
  const __int128 num = static_cast<__int128>(per_hour) * static_cast<__int128>(duration.count());
  const __int128 q = num / us_per_hour;  // truncates toward zero
  const __int128 r = num % us_per_hour;  // same sign as num
  const __int128 twice_r = (r < 0 ? -r : r) * 2;
  __int128 rounded = q;
  if (twice_r > us_per_hour || (twice_r == us_per_hour && (q % 2) != 0)) {
    rounded += num < 0 ? -1 : 1;  // away from zero; ties only when q is odd (half to even)
  }
  if (rounded > std::numeric_limits<pico_usd>::max() ||
      rounded < std::numeric_limits<pico_usd>::min()) {
    return std::nullopt;
  }
  return static_cast<pico_usd>(rounded);
}

std::string format_usd(wide_pico_usd amount, int min_decimals) {
  const unsigned __int128 mag = magnitude(amount);
  const unsigned __int128 scale = static_cast<unsigned __int128>(pico_per_usd);
  std::string frac = to_decimal(mag % scale);
  frac.insert(0, 12 - frac.size(), '0');  // exactly 12 digits
  const std::size_t keep_min = static_cast<std::size_t>(std::max(min_decimals, 0));
  while (frac.size() > keep_min && !frac.empty() && frac.back() == '0') frac.pop_back();
  if (frac.size() < keep_min) frac.append(keep_min - frac.size(), '0');

  std::string out = amount < 0 ? "-" : "";
  out += to_decimal(mag / scale);
  if (!frac.empty()) out += "." + frac;
  return out;
}

double to_usd_double(wide_pico_usd amount) {
  // Split first so the integer dollars are exact in the double when they can be.
  const __int128 whole = amount / pico_per_usd;
  const __int128 rest = amount % pico_per_usd;
  return static_cast<double>(whole) + static_cast<double>(rest) / static_cast<double>(pico_per_usd);
}

}  // namespace gw::ledger
