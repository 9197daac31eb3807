// Daily reports and raw export over the ledger (contracts in reports.h; shapes in docs/reports.md).
#include "gateway/reports.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "gateway/report_text.h"
#include "ledger/money.h"

namespace gw::gateway {

namespace {

using clock_type = std::chrono::system_clock;

// ---- daily report ------------------------------------------------------------------------------

// A percentile in ms rounded to 3 decimals (1 µs), as the shortest text that reads back the same
// double ("120.345", "0.05"); nullopt without samples.
std::optional<std::string> percentile_text(const ledger::latency_histogram& h, double p) {
  auto v = h.quantile_ms(p);
  if (!v) return std::nullopt;
  return nlohmann::json(std::round(*v * 1000.0) / 1000.0).dump();
}

std::string json_percentiles(const ledger::latency_histogram& h) {
  auto p50 = percentile_text(h, 0.50), p95 = percentile_text(h, 0.95);
  return "{\"p50\":" + p50.value_or("null") + ",\"p95\":" + p95.value_or("null") + "}";
}

// The counters of one row or the totals, as JSON members (no braces). cost_usd is inserted as a
// raw number token from format_usd (exact, no double on the way); cost_pusd is the same amount as
// a string of the integer, for readers whose JSON numbers are doubles.
std::string json_counters(const ledger::counters& c) {
  std::string s;
  s += "\"requests\":" + std::to_string(c.requests);
  s += ",\"failed\":" + std::to_string(c.failed);
  s += ",\"prompt_tokens\":" + std::to_string(c.prompt_tokens);
  s += ",\"completion_tokens\":" + std::to_string(c.completion_tokens);
  s += ",\"cached_prompt_tokens\":" + std::to_string(c.cached_prompt_tokens);
  s += ",\"cost_usd\":" + ledger::format_usd(c.cost);
  s += ",\"cost_pusd\":\"" + int128_string(c.cost) + "\"";
  s += ",\"unpriced_requests\":" + std::to_string(c.unpriced_requests);
  s += ",\"latency_ms\":" + json_percentiles(c.latency);
  s += ",\"ttft_ms\":" + json_percentiles(c.ttft);
  return s;
}

std::string render_json(ledger::day_index from, ledger::day_index to, ledger::dimension by,
                        const std::vector<ledger::daily_row>& rows, const ledger::counters& total) {
  std::string s = "{\"from\":\"" + ledger::day_string(from) + "\",\"to\":\"" + ledger::day_string(to) +
                  "\",\"by\":\"" + std::string(ledger::to_string(by)) + "\",\"rows\":[";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i) s += ",";
    s += "{\"day\":\"" + ledger::day_string(rows[i].day) + "\",\"group\":" + json_string(rows[i].group) + "," +
         json_counters(rows[i].c) + "}";
  }
  s += "],\"totals\":{" + json_counters(total) + "}}\n";
  return s;
}

std::string csv_counters(const ledger::counters& c) {
  std::string s = std::to_string(c.requests) + "," + std::to_string(c.failed) + "," +
                  std::to_string(c.prompt_tokens) + "," + std::to_string(c.completion_tokens) + "," +
                  std::to_string(c.cached_prompt_tokens) + "," + ledger::format_usd(c.cost) + "," +
                  std::to_string(c.unpriced_requests);
  for (const auto* h : {&c.latency, &c.ttft})
    for (double p : {0.50, 0.95}) s += "," + percentile_text(*h, p).value_or("");
  return s;
}

std::string render_csv(const std::vector<ledger::daily_row>& rows, const ledger::counters& total) {
  std::string s =
      "day,group,requests,failed,prompt_tokens,completion_tokens,cached_prompt_tokens,cost_usd,"
      "unpriced_requests,latency_p50_ms,latency_p95_ms,ttft_p50_ms,ttft_p95_ms\n";
  for (const auto& r : rows) s += ledger::day_string(r.day) + "," + csv_field(r.group) + "," + csv_counters(r.c) + "\n";
  s += "TOTAL,," + csv_counters(total) + "\n";
  return s;
}

std::string render_table(ledger::day_index from, ledger::day_index to, ledger::dimension by,
                         const std::vector<ledger::daily_row>& rows, const ledger::counters& total) {
  // Columns: day, group (left-aligned), then numbers (right-aligned).
  std::vector<std::string> head = {"day", std::string(ledger::to_string(by)), "requests", "failed", "prompt_tok",
                                   "completion_tok", "cached_tok", "cost_usd", "unpriced", "lat_p50_ms",
                                   "lat_p95_ms", "ttft_p50_ms", "ttft_p95_ms"};
  // Costs are exact; all get as many decimals as the longest, so the points line up.
  int cost_decimals = 2;
  for (const auto& r : rows) {
    auto text = ledger::format_usd(r.c.cost);
    auto dot = text.find('.');
    if (dot != std::string::npos) cost_decimals = std::max(cost_decimals, static_cast<int>(text.size() - dot - 1));
  }
  auto cells = [cost_decimals](std::string day, std::string group, const ledger::counters& c) {
    auto ms = [](const ledger::latency_histogram& h, double p) {
      auto v = h.quantile_ms(p);
      if (!v) return std::string("-");
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1f", *v);
      return std::string(buf);
    };
    return std::vector<std::string>{std::move(day), std::move(group), std::to_string(c.requests),
                                    std::to_string(c.failed), std::to_string(c.prompt_tokens),
                                    std::to_string(c.completion_tokens), std::to_string(c.cached_prompt_tokens),
                                    ledger::format_usd(c.cost, cost_decimals), std::to_string(c.unpriced_requests),
                                    ms(c.latency, 0.5), ms(c.latency, 0.95), ms(c.ttft, 0.5), ms(c.ttft, 0.95)};
  };
  std::vector<std::vector<std::string>> lines = {head};
  for (const auto& r : rows)
    lines.push_back(cells(ledger::day_string(r.day), r.group.empty() ? "(none)" : r.group, r.c));
  lines.push_back(cells("TOTAL", "", total));
  std::string s = "daily report by " + std::string(ledger::to_string(by)) + ", " + ledger::day_string(from) +
                  " to " + ledger::day_string(to) + "\n";
  s += aligned_table(lines, /*left_columns=*/2);
  if (rows.empty()) s += "(no requests in this range)\n";
  if (total.unpriced_requests > 0)
    s += "note: " + std::to_string(total.unpriced_requests) +
         (total.unpriced_requests == 1 ? " request has" : " requests have") +
         " no price and is not in cost_usd (counted in 'unpriced')\n";
  return s;
}

// ---- export --------------------------------------------------------------------------------------

std::int64_t micros(clock_type::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

// RFC 3339 in UTC with microseconds: "2026-11-20T12:00:00.000000Z".
std::string rfc3339_us(std::int64_t us) {
  constexpr std::int64_t per_day = 86'400'000'000;
  std::int64_t day = us >= 0 ? us / per_day : -((-us + per_day - 1) / per_day);
  std::int64_t rest = us - day * per_day;
  char buf[48];
  std::snprintf(buf, sizeof buf, "T%02lld:%02lld:%02lld.%06lldZ", static_cast<long long>(rest / 3'600'000'000),
                static_cast<long long>(rest / 60'000'000 % 60), static_cast<long long>(rest / 1'000'000 % 60),
                static_cast<long long>(rest % 1'000'000));
  return ledger::day_string(static_cast<ledger::day_index>(day)) + buf;
}

constexpr const char* export_header =
    "request_id,client_request_id,started,started_us,key_name,team,endpoint,model,route,reason,target,"
    "upstream_model,provider,status,stream,prompt_tokens,completion_tokens,cached_prompt_tokens,"
    "usage_estimated,client_disconnected,attempts,retries,fallbacks,error_code,latency_us,ttft_us,"
    "upstream_time_us,engine_busy_us,priced,cost_usd,cost_pusd\n";

void write_csv_entry(const ledger::request_record& r, std::string& line) {
  auto text = [&](std::string_view s) { line += csv_field(s); line += ','; };
  auto num = [&](std::int64_t v) { line += std::to_string(v); line += ','; };
  auto flag = [&](bool b) { line += b ? "true," : "false,"; };
  line.clear();
  text(r.request_id);
  text(r.client_request_id);
  text(rfc3339_us(micros(r.started)));
  num(micros(r.started));
  text(r.key_name);
  text(r.team);
  text(r.endpoint);
  text(r.model);
  text(r.route);
  text(r.reason);
  text(r.target);
  text(r.upstream_model);
  text(r.provider);
  num(r.status);
  flag(r.stream);
  num(r.prompt_tokens);
  num(r.completion_tokens);
  num(r.cached_prompt_tokens);
  flag(r.usage_estimated);
  flag(r.client_disconnected);
  num(r.attempts);
  num(r.retries);
  num(r.fallbacks);
  text(r.error_code);
  num(r.latency.count());
  num(r.ttft.count());
  num(r.upstream_time.count());
  num(r.engine_busy.count());
  flag(r.priced);
  text(ledger::format_usd(r.cost_pusd));
  line += std::to_string(r.cost_pusd);
  line += '\n';
}

void write_json_entry(const ledger::request_record& r, std::string& line) {
  nlohmann::ordered_json j;
  j["request_id"] = r.request_id;
  j["client_request_id"] = r.client_request_id;
  j["started"] = rfc3339_us(micros(r.started));
  j["started_us"] = micros(r.started);
  j["key_name"] = r.key_name;
  j["team"] = r.team;
  j["endpoint"] = r.endpoint;
  j["model"] = r.model;
  j["route"] = r.route;
  j["reason"] = r.reason;
  j["target"] = r.target;
  j["upstream_model"] = r.upstream_model;
  j["provider"] = r.provider;
  j["status"] = r.status;
  j["stream"] = r.stream;
  j["prompt_tokens"] = r.prompt_tokens;
  j["completion_tokens"] = r.completion_tokens;
  j["cached_prompt_tokens"] = r.cached_prompt_tokens;
  j["usage_estimated"] = r.usage_estimated;
  j["client_disconnected"] = r.client_disconnected;
  j["attempts"] = r.attempts;
  j["retries"] = r.retries;
  j["fallbacks"] = r.fallbacks;
  j["error_code"] = r.error_code;
  j["latency_us"] = r.latency.count();
  j["ttft_us"] = r.ttft.count();
  j["upstream_time_us"] = r.upstream_time.count();
  j["engine_busy_us"] = r.engine_busy.count();
  j["priced"] = r.priced;
  j["cost_usd"] = ledger::format_usd(r.cost_pusd);
  j["cost_pusd"] = r.cost_pusd;  // int64: exact in JSON text
  line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line += '\n';
}

// ---- query strings -------------------------------------------------------------------------------

// application/x-www-form-urlencoded decoding; nullopt on a bad %-escape.
std::optional<std::string> percent_decode(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

std::optional<report_format> parse_report_format(std::string_view s) {
  if (s == "table") return report_format::table;
  if (s == "csv") return report_format::csv;
  if (s == "json") return report_format::json;
  return std::nullopt;
}

std::optional<ledger::day_index> parse_report_day(std::string_view s) {
  // ledger::parse_day reads with sscanf, which would also take " 1" or "+1" in a field.
  if (s.size() != 10) return std::nullopt;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (i == 4 || i == 7 ? s[i] != '-' : (s[i] < '0' || s[i] > '9')) return std::nullopt;
  return ledger::parse_day(s);
}

std::optional<export_format> parse_export_format(std::string_view s) {
  if (s == "csv") return export_format::csv;
  if (s == "jsonl") return export_format::jsonl;
  return std::nullopt;
}

std::optional<api_error> check_report_range(ledger::day_index from, ledger::day_index to) {
  if (from > to)
    return api_error::invalid_request("'from' (" + ledger::day_string(from) + ") is after 'to' (" +
                                          ledger::day_string(to) + ")",
                                      "from");
  const std::int64_t span = static_cast<std::int64_t>(to) - from + 1;
  if (span > max_report_days)
    return api_error::invalid_request("a report covers at most " + std::to_string(max_report_days) + " days; " +
                                          ledger::day_string(from) + " to " + ledger::day_string(to) + " is " +
                                          std::to_string(span),
                                      "from");
  return std::nullopt;
}

std::variant<std::string, api_error> daily_report(const ledger::ledger& l, ledger::day_index from,
                                                  ledger::day_index to, ledger::dimension by,
                                                  report_format f) {
  if (auto e = check_report_range(from, to)) return *e;
  std::vector<ledger::daily_row> rows;
  if (auto st = l.daily(from, to, by, &rows); !st.ok()) return api_error::internal("ledger: " + st.message);
  ledger::counters total;
  for (const auto& r : rows) total.merge(r.c);
  switch (f) {
    case report_format::table: return render_table(from, to, by, rows, total);
    case report_format::csv: return render_csv(rows, total);
    case report_format::json: return render_json(from, to, by, rows, total);
  }
  return api_error::internal("unknown report format");
}

ledger::status export_entries(const ledger::ledger& l, clock_type::time_point from, clock_type::time_point to,
                              export_format f, std::ostream& out) {
  using ledger::status;
  if (from > to) return status::make(status::code::invalid_argument, "export range starts after it ends");
  if (f == export_format::csv) out << export_header;
  if (!out) return status::make(status::code::io_error, "export: cannot write the output");
  bool write_failed = false;
  std::string line;  // reused: one entry in memory at a time
  auto st = l.scan(from, to, [&](const ledger::request_record& r) {
    if (f == export_format::csv) write_csv_entry(r, line);
    else write_json_entry(r, line);
    out.write(line.data(), static_cast<std::streamsize>(line.size()));
    if (!out) {
      write_failed = true;
      return false;
    }
    return true;
  });
  if (!st.ok()) return st;
  out.flush();
  if (write_failed || !out) return status::make(status::code::io_error, "export: cannot write the output");
  return {};
}

std::variant<report_query, api_error> parse_report_query(std::string_view query, ledger::day_index today,
                                                         bool with_by) {
  if (!query.empty() && query.front() == '?') query.remove_prefix(1);
  std::optional<std::string> from_s, to_s, by_s, format_s;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (part.empty()) continue;
    auto eq = part.find('=');
    auto name = percent_decode(part.substr(0, eq));
    auto value = percent_decode(eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1));
    if (!name || !value) return api_error::invalid_request("malformed percent-encoding in the query string");
    std::optional<std::string>* slot = *name == "from"           ? &from_s
                                       : *name == "to"           ? &to_s
                                       : *name == "by" && with_by ? &by_s
                                       : *name == "format"       ? &format_s
                                                                 : nullptr;
    if (!slot)
      return api_error::invalid_request("unknown query parameter '" + *name + "' (expected from, to, " +
                                            (with_by ? "by, " : "") + "format)",
                                        *name);
    if (*slot) return api_error::invalid_request("query parameter '" + *name + "' given twice", *name);
    *slot = std::move(*value);
  }

  report_query q;
  auto from = from_s ? parse_report_day(*from_s) : std::optional(today);
  if (!from) return api_error::invalid_request("'from' must be a date YYYY-MM-DD, got '" + *from_s + "'", "from");
  q.from = *from;
  auto to = to_s ? parse_report_day(*to_s) : std::optional(today);
  if (!to) return api_error::invalid_request("'to' must be a date YYYY-MM-DD, got '" + *to_s + "'", "to");
  q.to = *to;
  if (by_s) {
    auto by = ledger::parse_dimension(*by_s);
    if (!by)
      return api_error::invalid_request(
          "'by' must be one of target, model, key, team, route, total; got '" + *by_s + "'", "by");
    q.by = *by;
  }
  if (format_s) {
    if (*format_s == "csv") q.format = report_format::csv;
    else if (*format_s != "json")
      return api_error::invalid_request("'format' must be json or csv, got '" + *format_s + "'", "format");
  }
  return q;
}

http_answer report_answer(std::variant<std::string, api_error> result, report_format f) {
  if (auto* e = std::get_if<api_error>(&result)) return {e->status, "application/json", to_body(*e)};
  return {200, f == report_format::csv ? "text/csv; charset=utf-8" : "application/json",
          std::move(std::get<std::string>(result))};
}

http_answer daily_report_http(const ledger::ledger& l, std::string_view query, clock_type::time_point now) {
  auto q = parse_report_query(query, ledger::to_day(now, 0), /*with_by=*/true);
  if (auto* e = std::get_if<api_error>(&q)) return report_answer(std::move(*e), report_format::json);
  const auto& r = std::get<report_query>(q);
  return report_answer(daily_report(l, r.from, r.to, r.by, r.format), r.format);
}

}  // namespace gw::gateway
