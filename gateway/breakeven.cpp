// The breakeven report (contracts in breakeven.h; shapes in docs/reports.md).
#include "gateway/breakeven.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "gateway/report_text.h"

namespace gw::gateway {

namespace {

using clock_type = std::chrono::system_clock;
using ledger::wide_pico_usd;

constexpr std::int64_t us_per_day = 86'400'000'000;
constexpr std::int64_t us_per_hour = 3'600'000'000;
constexpr wide_pico_usd pico_per_cent = 10'000'000'000;

// num / den rounded half to even (den > 0).
__int128 div_half_even(__int128 num, __int128 den) {
  __int128 q = num / den, r = num % den;
  const __int128 twice = (r < 0 ? -r : r) * 2;
  if (twice > den || (twice == den && q % 2 != 0)) q += num < 0 ? -1 : 1;
  return q;
}

// Whole cents (half away from zero) with a "$": only for the verdict sentence.
std::string dollars(wide_pico_usd v) {
  const wide_pico_usd mag = v < 0 ? -v : v;
  return "$" + ledger::format_usd((mag + pico_per_cent / 2) / pico_per_cent * pico_per_cent, 2);
}

// "18.2 M" (one decimal, rounded half up) from 100'000 tokens on, else the plain count.
std::string volume(std::uint64_t tokens) {
  if (tokens < 100'000) return std::to_string(tokens);
  const std::uint64_t tenths = (tokens + 50'000) / 100'000;
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + " M";
}

// The latency sum in µs read from the histogram at bucket midpoints (bucket 0 holds < 100 µs:
// 50 µs); the same midpoints as latency_histogram::quantile_ms.
std::int64_t latency_sum_us(const ledger::latency_histogram& h) {
  constexpr double base_us = 100.0;
  const double log_ratio = std::log(2.0) / 8.0;
  double sum = 0;
  for (int i = 0; i < ledger::latency_histogram::buckets; ++i) {
    const auto n = h.counts[static_cast<std::size_t>(i)];
    if (!n) continue;
    const double mid = i == 0 ? base_us / 2 : base_us * std::exp(log_ratio * (i + 0.5));
    sum += mid * static_cast<double>(n);
  }
  return static_cast<std::int64_t>(std::llround(sum));
}

// What `c`'s tokens cost at `m`: uncached prompt at input, cached at cached_input (input when the
// row has none), completion at output.
wide_pico_usd shadow(const breakeven_figures& c, const ledger::model_price& m) {
  const std::uint64_t cached = std::min(c.cached_prompt_tokens, c.prompt_tokens);
  const std::uint64_t uncached = c.prompt_tokens - cached;
  return static_cast<wide_pico_usd>(uncached) * m.input +
         static_cast<wide_pico_usd>(cached) * m.cached_input.value_or(m.input) +
         static_cast<wide_pico_usd>(c.completion_tokens) * m.output;
}

std::string api_name(const ledger::model_price& m) { return m.provider + "/" + m.model; }

// Rounded-up tokens/day at which `per_day` equals the shadow cost at f's mix; tokens/day served.
void volumes(const breakeven_figures& f, wide_pico_usd per_day, std::optional<std::uint64_t>* breakeven,
             std::optional<std::uint64_t>* now) {
  if (f.tokens() > 0 && f.shadow_cost > 0) {
    const __int128 num = per_day * static_cast<__int128>(f.tokens());
    *breakeven = static_cast<std::uint64_t>((num + f.shadow_cost - 1) / f.shadow_cost);
  }
  if (f.provisioned_us > 0)
    *now = static_cast<std::uint64_t>(
        div_half_even(static_cast<__int128>(f.tokens()) * us_per_day, f.provisioned_us));
}

std::string verdict_text(const std::string& who, const std::string& against, const breakeven_figures& t,
                         int days, const std::optional<std::uint64_t>& breakeven,
                         const std::optional<std::uint64_t>& now) {
  const std::string span = days == 1 ? "this day" : "these " + std::to_string(days) + " days";
  if (t.tokens() == 0)
    return who + " served no tokens over " + span + " and cost " + dollars(t.gpu_cost) +
           "; there is no token mix to compare with " + against;
  std::string s = t.savings() >= 0 ? who + " saved " + dollars(t.savings()) + " over " + span + " compared with " +
                                         against + "; at the current mix it breaks even above "
                                   : who + " cost " + dollars(t.savings()) + " more than " + against +
                                         " would have over " + span + "; it breaks even above ";
  s += breakeven ? volume(*breakeven) + " tokens/day" : std::string("(never: the reference is free)");
  if (now) s += " (now " + volume(*now) + "/day)";
  return s;
}

}  // namespace

std::optional<double> breakeven_figures::utilisation() const {
  if (gpu_us <= 0) return std::nullopt;
  return static_cast<double>(busy_us) / static_cast<double>(gpu_us);
}

void breakeven_figures::merge(const breakeven_figures& o) {
  requests += o.requests;
  prompt_tokens += o.prompt_tokens;
  completion_tokens += o.completion_tokens;
  cached_prompt_tokens += o.cached_prompt_tokens;
  busy_us += o.busy_us;
  busy_estimated = busy_estimated || o.busy_estimated;
  provisioned_us += o.provisioned_us;
  gpu_us += o.gpu_us;
  gpu_cost += o.gpu_cost;
  shadow_cost += o.shadow_cost;
  cheapest_cost += o.cheapest_cost;
}

std::variant<breakeven_summary, api_error> compute_breakeven(const ledger::ledger& l, const config& cfg,
                                                             ledger::day_index from, ledger::day_index to,
                                                             clock_type::time_point now) {
  if (cfg.self_hosted.empty() || !cfg.pricing)
    return api_error::invalid_request(
        "no target in " + cfg.source_file +
        " has a self_hosted section; add targets.<name>.self_hosted (gpu, reference; see docs/config.md) "
        "to compare your GPUs with an API");
  if (auto e = check_report_range(from, to)) return *e;
  const std::int64_t span = static_cast<std::int64_t>(to) - from + 1;
  std::vector<ledger::daily_row> rows;
  if (auto st = l.daily(from, to, ledger::dimension::target, &rows); !st.ok())
    return api_error::internal("ledger: " + st.message);
  std::map<std::pair<std::string, ledger::day_index>, const ledger::counters*> by_day;
  for (const auto& r : rows) by_day[{r.group, r.day}] = &r.c;

  const int offset = cfg.reports.utc_offset_minutes;
  const std::int64_t now_us =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() +
      static_cast<std::int64_t>(offset) * 60'000'000;
  const ledger::pricing_table& table = *cfg.pricing;

  breakeven_summary out;
  out.from = from;
  out.to = to;
  for (const auto& [name, sh] : cfg.self_hosted) {
    breakeven_target t;
    t.target = name;
    t.settings = sh;
    const ledger::model_price* ref = table.find(sh.reference_provider, sh.reference_model);
    if (!ref) return api_error::internal("reference " + sh.reference_provider + "/" + sh.reference_model + " is not priced");
    t.reference = api_name(*ref);
    const ledger::pico_usd fleet_per_hour = sh.per_hour * sh.gpus;  // fits: checked at config load
    t.gpu_cost_per_day = static_cast<wide_pico_usd>(fleet_per_hour) * 24 + sh.ops_per_day;

    for (ledger::day_index d = from; d <= to; ++d) {
      breakeven_figures f;
      f.day = d;
      const std::int64_t start_us = static_cast<std::int64_t>(d) * us_per_day;  // local midnight
      f.provisioned_us = std::clamp<std::int64_t>(now_us - start_us, 0, us_per_day);
      f.gpu_us = f.provisioned_us * sh.gpus;
      f.gpu_cost = div_half_even(static_cast<__int128>(fleet_per_hour) * f.provisioned_us, us_per_hour) +
                   div_half_even(static_cast<__int128>(sh.ops_per_day) * f.provisioned_us, us_per_day);
      if (auto it = by_day.find({name, d}); it != by_day.end()) {
        const ledger::counters& c = *it->second;
        f.requests = c.requests;
        f.prompt_tokens = c.prompt_tokens;
        f.completion_tokens = c.completion_tokens;
        f.cached_prompt_tokens = c.cached_prompt_tokens;
        if (c.engine_busy_us > 0) {
          f.busy_us = static_cast<std::int64_t>(c.engine_busy_us);
        } else if (c.requests > 0) {
          f.busy_us = latency_sum_us(c.latency);
          f.busy_estimated = true;
        }
      }
      f.shadow_cost = shadow(f, *ref);
      t.total.merge(f);
      t.days.push_back(f);
    }
    // The cheapest API for the range's mix: lowest shadow cost, then lowest list prices, then
    // table order.
    const ledger::model_price* best = nullptr;
    wide_pico_usd best_cost = 0;
    for (const ledger::model_price& m : table.models) {
      if (m.tier < sh.tier) continue;
      const wide_pico_usd c = shadow(t.total, m);
      if (!best || c < best_cost ||
          (c == best_cost && static_cast<wide_pico_usd>(m.input) + m.output <
                                 static_cast<wide_pico_usd>(best->input) + best->output)) {
        best = &m;
        best_cost = c;
      }
    }
    if (best) {
      t.cheapest = api_name(*best);
      t.cheapest_tier = best->tier;
      for (auto& f : t.days) f.cheapest_cost = shadow(f, *best);
      t.total.cheapest_cost = best_cost;
    }
    volumes(t.total, t.gpu_cost_per_day, &t.breakeven_tokens_per_day, &t.tokens_per_day);
    t.verdict = verdict_text("self-hosting on " + name, t.reference, t.total, static_cast<int>(span),
                             t.breakeven_tokens_per_day, t.tokens_per_day);
    out.total.merge(t.total);
    out.targets.push_back(std::move(t));
  }
  wide_pico_usd all_per_day = 0;
  for (const auto& t : out.targets) all_per_day += t.gpu_cost_per_day;
  volumes(out.total, all_per_day, &out.breakeven_tokens_per_day, &out.tokens_per_day);
  // provisioned_us sums over targets; tokens/day of the fleet is per calendar day.
  if (!out.targets.empty() && out.tokens_per_day)
    out.tokens_per_day = *out.tokens_per_day * out.targets.size();
  std::string against = out.targets.size() == 1 ? out.targets.front().reference : "the reference APIs";
  out.verdict = verdict_text(out.targets.size() == 1 ? "self-hosting" : "self-hosting (all targets)", against,
                             out.total, static_cast<int>(span), out.breakeven_tokens_per_day, out.tokens_per_day);
  return out;
}

namespace {

std::string opt_u64(const std::optional<std::uint64_t>& v) { return v ? std::to_string(*v) : "null"; }

std::string utilisation_text(const breakeven_figures& f) {
  auto u = f.utilisation();
  if (!u) return "null";
  return nlohmann::json(std::round(*u * 10000.0) / 10000.0).dump();
}

std::string money_members(const char* name, wide_pico_usd v) {
  return std::string(",\"") + name + "_usd\":" + ledger::format_usd(v) + ",\"" + name + "_pusd\":\"" +
         int128_string(v) + "\"";
}

std::string json_figures(const breakeven_figures& f, bool with_day) {
  std::string s = "{";
  if (with_day) s += "\"day\":\"" + ledger::day_string(f.day) + "\",";
  s += "\"requests\":" + std::to_string(f.requests);
  s += ",\"prompt_tokens\":" + std::to_string(f.prompt_tokens);
  s += ",\"completion_tokens\":" + std::to_string(f.completion_tokens);
  s += ",\"cached_prompt_tokens\":" + std::to_string(f.cached_prompt_tokens);
  s += ",\"busy_us\":" + std::to_string(f.busy_us);
  s += std::string(",\"busy_estimated\":") + (f.busy_estimated ? "true" : "false");
  s += ",\"provisioned_us\":" + std::to_string(f.provisioned_us);
  s += ",\"utilisation\":" + utilisation_text(f);
  s += money_members("gpu_cost", f.gpu_cost);
  s += money_members("shadow_cost", f.shadow_cost);
  s += money_members("cheapest_cost", f.cheapest_cost);
  s += money_members("savings", f.savings());
  return s + "}";
}

std::string render_json(const breakeven_summary& r) {
  std::string s = "{\"from\":\"" + ledger::day_string(r.from) + "\",\"to\":\"" + ledger::day_string(r.to) +
                  "\",\"targets\":[";
  for (std::size_t i = 0; i < r.targets.size(); ++i) {
    const auto& t = r.targets[i];
    if (i) s += ",";
    s += "{\"target\":" + json_string(t.target) + ",\"gpu\":" + json_string(t.settings.gpu) +
         ",\"gpus\":" + std::to_string(t.settings.gpus) +
         ",\"usd_per_hour\":" + ledger::format_usd(t.settings.per_hour) +
         ",\"ops_usd_per_day\":" + ledger::format_usd(t.settings.ops_per_day) +
         ",\"tier\":" + std::to_string(t.settings.tier) + ",\"reference\":" + json_string(t.reference) +
         ",\"cheapest\":{\"api\":" + json_string(t.cheapest) + ",\"tier\":" + std::to_string(t.cheapest_tier) + "}" +
         money_members("gpu_cost_per_day", t.gpu_cost_per_day) +
         ",\"breakeven_tokens_per_day\":" + opt_u64(t.breakeven_tokens_per_day) +
         ",\"tokens_per_day\":" + opt_u64(t.tokens_per_day) + ",\"verdict\":" + json_string(t.verdict) + ",\"days\":[";
    for (std::size_t d = 0; d < t.days.size(); ++d) s += (d ? "," : "") + json_figures(t.days[d], true);
    s += "],\"totals\":" + json_figures(t.total, false) + "}";
  }
  s += "],\"totals\":" + json_figures(r.total, false) +
       ",\"breakeven_tokens_per_day\":" + opt_u64(r.breakeven_tokens_per_day) +
       ",\"tokens_per_day\":" + opt_u64(r.tokens_per_day) + ",\"verdict\":" + json_string(r.verdict) + "}\n";
  return s;
}

std::string csv_line(const std::string& target, const std::string& day, const breakeven_figures& f,
                     const std::string& reference, const std::string& cheapest) {
  auto u = utilisation_text(f);
  return csv_field(target) + "," + day + "," + std::to_string(f.requests) + "," + std::to_string(f.prompt_tokens) +
         "," + std::to_string(f.completion_tokens) + "," + std::to_string(f.cached_prompt_tokens) + "," +
         std::to_string(f.busy_us) + "," + (f.busy_estimated ? "true" : "false") + "," +
         std::to_string(f.provisioned_us) + "," + (u == "null" ? "" : u) + "," + ledger::format_usd(f.gpu_cost) +
         "," + csv_field(reference) + "," + ledger::format_usd(f.shadow_cost) + "," + csv_field(cheapest) + "," +
         ledger::format_usd(f.cheapest_cost) + "," + ledger::format_usd(f.savings()) + "\n";
}

std::string render_csv(const breakeven_summary& r) {
  std::string s =
      "target,day,requests,prompt_tokens,completion_tokens,cached_prompt_tokens,busy_us,busy_estimated,"
      "provisioned_us,utilisation,gpu_cost_usd,reference,shadow_cost_usd,cheapest_api,cheapest_cost_usd,"
      "savings_usd\n";
  for (const auto& t : r.targets) {
    for (const auto& f : t.days) s += csv_line(t.target, ledger::day_string(f.day), f, t.reference, t.cheapest);
    s += csv_line(t.target, "TOTAL", t.total, t.reference, t.cheapest);
  }
  s += csv_line("ALL", "TOTAL", r.total, "", "");
  return s;
}

std::string render_table(const breakeven_summary& r) {
  std::string s = "breakeven report, " + ledger::day_string(r.from) + " to " + ledger::day_string(r.to) + "\n";
  bool any_estimated = false;
  for (const auto& t : r.targets) {
    std::string gpu = t.settings.gpu.empty() ? "GPU" : t.settings.gpu;
    s += "\n" + t.target + ": " + std::to_string(t.settings.gpus) + " x " + gpu + " at $" +
         ledger::format_usd(t.settings.per_hour) + "/h" +
         (t.settings.ops_per_day ? " + $" + ledger::format_usd(t.settings.ops_per_day) + "/day ops" : "") +
         "; reference " + t.reference + "; cheapest tier>=" + std::to_string(t.settings.tier) + " API " +
         (t.cheapest.empty() ? "(none)" : t.cheapest) + "\n";
    std::vector<std::vector<std::string>> lines = {{"day", "requests", "prompt_tok", "completion_tok", "busy_h",
                                                    "util_%", "gpu_usd", "reference_usd", "cheapest_usd",
                                                    "savings_usd"}};
    auto cells = [](std::string day, const breakeven_figures& f) {
      char busy[32], util[32];
      std::snprintf(busy, sizeof busy, "%.2f%s", static_cast<double>(f.busy_us) / us_per_hour,
                    f.busy_estimated ? "*" : "");
      auto u = f.utilisation();
      if (u) std::snprintf(util, sizeof util, "%.1f", *u * 100.0);
      else std::snprintf(util, sizeof util, "-");
      return std::vector<std::string>{std::move(day), std::to_string(f.requests), std::to_string(f.prompt_tokens),
                                      std::to_string(f.completion_tokens), busy, util,
                                      ledger::format_usd(f.gpu_cost), ledger::format_usd(f.shadow_cost),
                                      ledger::format_usd(f.cheapest_cost), ledger::format_usd(f.savings())};
    };
    for (const auto& f : t.days) {
      lines.push_back(cells(ledger::day_string(f.day), f));
      any_estimated = any_estimated || f.busy_estimated;
    }
    lines.push_back(cells("TOTAL", t.total));
    s += aligned_table(lines, /*left_columns=*/1);
    s += t.verdict + "\n";
  }
  if (r.targets.size() > 1) s += "\n" + r.verdict + "\n";
  if (any_estimated)
    s += "* busy time estimated from request latencies (the server reports no engine time): an upper bound\n";
  return s;
}

}  // namespace

std::variant<std::string, api_error> breakeven_report(const ledger::ledger& l, const config& cfg,
                                                      ledger::day_index from, ledger::day_index to, report_format f,
                                                      clock_type::time_point now) {
  auto r = compute_breakeven(l, cfg, from, to, now);
  if (auto* e = std::get_if<api_error>(&r)) return *e;
  const auto& s = std::get<breakeven_summary>(r);
  switch (f) {
    case report_format::table: return render_table(s);
    case report_format::csv: return render_csv(s);
    case report_format::json: return render_json(s);
  }
  return api_error::internal("unknown report format");
}

http_answer breakeven_report_http(const ledger::ledger& l, const config& cfg, std::string_view query,
                                  clock_type::time_point now) {
  auto q = parse_report_query(query, ledger::to_day(now, cfg.reports.utc_offset_minutes), /*with_by=*/false);
  if (auto* e = std::get_if<api_error>(&q)) return report_answer(std::move(*e), report_format::json);
  const auto& r = std::get<report_query>(q);
  return report_answer(breakeven_report(l, cfg, r.from, r.to, r.format, now), r.format);
}

}  // namespace gw::gateway
