#pragma once
// The breakeven report: "would our own GPU have been cheaper?" For every target with a
// `self_hosted` section (docs/config.md), per day and over a range: tokens served, busy time,
// utilisation, what the GPUs cost (per hour provisioned, busy or idle, plus ops per day), what the
// same tokens would have cost at the configured reference API and at the cheapest priced API of at
// least the target's tier, the savings, and the daily token volume at which the GPUs break even.
//
// Only reads the ledger (like gateway/reports.h); may run concurrently with writers. Money is
// integer pico-dollars (__int128 sums) until it is rendered; utilisation is a double (a ratio, not
// money). Shapes are documented in docs/reports.md ("breakeven").
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "gateway/config.h"
#include "gateway/errors.h"
#include "gateway/reports.h"
#include "ledger/ledger.h"
#include "ledger/money.h"

namespace gw::gateway {

// The figures of one day, or of a range (then `day` is unused), for one target or all of them.
struct breakeven_figures {
  ledger::day_index day = 0;
  std::uint64_t requests = 0, prompt_tokens = 0, completion_tokens = 0, cached_prompt_tokens = 0;
  // Engine busy time (µs, summed over GPUs' work). When the server does not report it
  // (engine_busy_us == 0: external vLLM / llama.cpp servers), the sum of request latencies is used
  // instead, read from the latency histogram at bucket midpoints (±4.4%); it is an upper bound on
  // busy time (concurrent requests overlap) and busy_estimated is true.
  std::int64_t busy_us = 0;
  bool busy_estimated = false;
  std::int64_t provisioned_us = 0;  // wall-clock time the GPUs were paid for (today: up to now)
  std::int64_t gpu_us = 0;          // provisioned_us × gpus: the denominator of utilisation
  ledger::wide_pico_usd gpu_cost = 0;       // rent for provisioned time + ops (prorated today)
  ledger::wide_pico_usd shadow_cost = 0;    // the same tokens at the reference API
  ledger::wide_pico_usd cheapest_cost = 0;  // ... at the cheapest API of tier >= the target's
  std::uint64_t tokens() const { return prompt_tokens + completion_tokens; }
  ledger::wide_pico_usd savings() const { return shadow_cost - gpu_cost; }  // < 0: GPU cost more
  // busy / (provisioned × gpus); nullopt when nothing was provisioned. May pass 1 when estimated.
  std::optional<double> utilisation() const;
  void merge(const breakeven_figures& o);
};

struct breakeven_target {
  std::string target;
  self_hosted_config settings;
  std::string reference;  // "provider/model"
  std::string cheapest;   // "provider/model": the lowest shadow cost over the range, tier >= settings.tier
  int cheapest_tier = 0;
  std::vector<breakeven_figures> days;  // one per day of the range, traffic or not
  breakeven_figures total;
  ledger::wide_pico_usd gpu_cost_per_day = 0;  // a full day: 24 h × per_hour × gpus + ops
  // Tokens/day at which gpu_cost_per_day equals the reference API's cost, at the range's token
  // mix (rounded up); nullopt when the range has no tokens (no mix to price).
  std::optional<std::uint64_t> breakeven_tokens_per_day;
  std::optional<std::uint64_t> tokens_per_day;  // served, averaged over provisioned time
  std::string verdict;                          // one sentence in plain words
};

struct breakeven_summary {
  ledger::day_index from = 0, to = 0;
  std::vector<breakeven_target> targets;  // by target name
  breakeven_figures total;                // all self-hosted targets together
  std::optional<std::uint64_t> breakeven_tokens_per_day, tokens_per_day;  // for `total`
  std::string verdict;
};

// Days [from, to] inclusive in the config's reports.timezone; `now` bounds today's provisioned
// time (days after now's day cost nothing). Errors: no self_hosted target, from > to, or more than
// max_report_days days -> 400 (invalid_request_error); a ledger read error -> 500.
std::variant<breakeven_summary, api_error> compute_breakeven(
    const ledger::ledger& l, const config& cfg, ledger::day_index from, ledger::day_index to,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// The same rendered:
//   table: per target a block with one line per day and a TOTAL line, then its verdict; then the
//          verdict over all targets when there are several.
//   csv:   header `target,day,requests,prompt_tokens,completion_tokens,cached_prompt_tokens,busy_us,
//          busy_estimated,provisioned_us,utilisation,gpu_cost_usd,reference,shadow_cost_usd,
//          cheapest_api,cheapest_cost_usd,savings_usd`; a `TOTAL` day line per target, then a line
//          with target `ALL` and day `TOTAL`.
//   json:  see docs/reports.md.
std::variant<std::string, api_error> breakeven_report(
    const ledger::ledger& l, const config& cfg, ledger::day_index from, ledger::day_index to,
    report_format f, std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// GET /…/reports/breakeven?from=YYYY-MM-DD&to=YYYY-MM-DD&format=json|csv — like
// daily_report_http (from/to default to today in reports.timezone, format to json); unknown,
// repeated or malformed parameters answer 400, a ledger error 500.
http_answer breakeven_report_http(const ledger::ledger& l, const config& cfg, std::string_view query_string,
                                  std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

}  // namespace gw::gateway
