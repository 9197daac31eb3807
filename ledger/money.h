#pragma once
// Money is integer: pico-dollars (1 p$ = 1e-12 USD), never floating point.
// Token prices are pico-dollars per token ("$0.15 per 1M tokens" = 150'000 p$/token: exact for
// any price with up to 6 decimals per 1M tokens, which covers every published price), so a token
// cost is an exact integer product. Time-based costs (GPU $/hour × busy or provisioned time) are
// divided once and rounded half to even.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gw::ledger {

using pico_usd = std::int64_t;
using wide_pico_usd = __int128;  // for sums that could pass 2^63 p$ (~9.2 million USD)

// "USD per 1M tokens" text ("0.15", "2", "0.075") -> p$ per token, exactly; nullopt when it is not
// a plain non-negative decimal, has more than 6 fractional digits, or overflows.
std::optional<pico_usd> parse_usd_per_mtok(std::string_view text);
// A plain USD amount ("2.49", "0.000001") -> p$; up to 12 fractional digits.
std::optional<pico_usd> parse_usd(std::string_view text);

// tokens × price; nullopt on overflow.
std::optional<pico_usd> token_cost(std::int64_t tokens, pico_usd price_per_token);

// usd_per_hour (p$) × duration, rounded half to even to whole p$; nullopt on overflow.
std::optional<pico_usd> time_cost(pico_usd per_hour, std::chrono::microseconds duration);

// Exact decimal rendering with at least `min_decimals` decimals and no rounding:
// format_usd(1'500'000'000'000) == "1.50", format_usd(123) == "0.000000000123".
std::string format_usd(wide_pico_usd amount, int min_decimals = 2);

// USD as a double, for JSON/plots only; sums stay integer.
double to_usd_double(wide_pico_usd amount);

}  // namespace gw::ledger
