// Daily reports and raw export (gateway/reports.h) against a real ledger in a temp directory, and
// the `tollgate report daily` / `tollgate export` subcommands of the real binary.
#include "gateway/reports.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "ledger/ledger.h"
#include "ledger/money.h"
#include "tests/support/process.h"
#include "tests/support/test_env.h"

using namespace gw;
using namespace gw::gateway;
using ledger::day_index;
using ledger::dimension;
using ledger::request_record;
namespace fs = std::filesystem;
using namespace std::chrono;

namespace {

// A temp directory whose ledger lives at db().
struct ledger_dir : gw::test::temp_dir {
  ledger_dir() : temp_dir("reports") {}
  std::string db() const { return (path / "ledger").string(); }
};

std::unique_ptr<ledger::ledger> must_open(const std::string& path, bool read_only = false) {
  ledger::status st;
  ledger::options o;
  o.read_only = read_only;
  auto l = ledger::ledger::open(path, o, &st);
  EXPECT_TRUE(l) << st.message;
  return l;
}

day_index day_of(const char* s) { return *ledger::parse_day(s); }
system_clock::time_point at(const char* d, int hour = 12) { return system_clock::time_point(days(day_of(d))) + hours(hour); }

// Independent of the implementation: the decimal of a 128-bit integer.
std::string i128(__int128 v) {
  if (v == 0) return "0";
  bool neg = v < 0;
  unsigned __int128 m = neg ? static_cast<unsigned __int128>(0) - static_cast<unsigned __int128>(v)
                            : static_cast<unsigned __int128>(v);
  std::string s;
  while (m) {
    s.insert(s.begin(), static_cast<char>('0' + static_cast<int>(m % 10)));
    m /= 10;
  }
  return neg ? "-" + s : s;
}

// ---- random ledger contents -------------------------------------------------------------------

const char* const k_targets[] = {"openai", "groq", "local", "", "we\"ird,target"};
const char* const k_models[] = {"gpt-4o-mini", "llama-3.1-8b", "gpt-4o"};
const char* const k_keys[] = {"app", "batch", "", "ci"};
const char* const k_teams[] = {"search", "équipe", "", "r&d, \"core\""};
const char* const k_routes[] = {"gpt-4o-mini", "cheap", "fallback"};
const int k_statuses[] = {200, 200, 200, 200, 201, 429, 500, 502, 499};

// `n` records over days [first, first + span) at random times; a few costs near 2^62 p$ so that
// the sums pass 2^63 (int64) and need the ledger's __int128.
std::vector<request_record> random_records(std::mt19937_64& rng, int n, const char* first, int span,
                                           const std::string& id_prefix) {
  std::vector<request_record> out;
  auto pick = [&](const auto& arr) { return arr[rng() % std::size(arr)]; };
  for (int i = 0; i < n; ++i) {
    request_record r;
    r.request_id = id_prefix + std::to_string(i);
    r.client_request_id = i % 7 == 0 ? "client,\"x\"\nline2" : "";
    r.started = system_clock::time_point(days(day_of(first) + static_cast<int>(rng() % span))) +
                microseconds(static_cast<std::int64_t>(rng() % 86'400'000'000ULL));
    r.target = pick(k_targets);
    r.model = pick(k_models);
    r.key_name = pick(k_keys);
    r.team = pick(k_teams);
    r.route = pick(k_routes);
    r.reason = "alias " + r.model + " -> " + r.target;
    r.endpoint = "/v1/chat/completions";
    r.upstream_model = r.model + "-upstream";
    r.provider = r.target == "local" ? "" : "prov";
    r.status = pick(k_statuses);
    r.stream = rng() % 2;
    r.prompt_tokens = static_cast<std::int64_t>(rng() % 5000);
    r.completion_tokens = static_cast<std::int64_t>(rng() % 2000);
    r.cached_prompt_tokens = r.prompt_tokens / 3;
    r.usage_estimated = rng() % 10 == 0;
    r.client_disconnected = r.status == 499;
    r.attempts = 1 + static_cast<int>(rng() % 3);
    r.retries = r.attempts - 1;
    r.fallbacks = static_cast<int>(rng() % 2);
    r.error_code = r.status >= 400 ? "upstream_error" : "";
    r.latency = microseconds(1000 + static_cast<std::int64_t>(rng() % 10'000'000));
    r.ttft = rng() % 4 == 0 ? microseconds(-1) : microseconds(500 + static_cast<std::int64_t>(rng() % 2'000'000));
    r.upstream_time = r.latency / 2;
    r.engine_busy = r.target == "local" ? r.latency : microseconds(0);
    r.priced = rng() % 5 != 0;
    if (r.priced) {
      r.cost_pusd = i % 97 == 5 ? (std::int64_t{1} << 62) + static_cast<std::int64_t>(rng() % 1'000'000'007)
                                : static_cast<std::int64_t>(rng() % 5'000'000'000ULL);
    }
    out.push_back(std::move(r));
  }
  return out;
}

void record_all(ledger::ledger& l, const std::vector<request_record>& rs) {
  for (const auto& r : rs) l.record(r, [](const ledger::status& s) { ASSERT_TRUE(s.ok()) << s.message; });
  ASSERT_TRUE(l.flush().ok());
}

// What a report row must say, summed here from raw entries without ledger::counters.
struct expected_sums {
  std::uint64_t requests = 0, failed = 0, prompt = 0, completion = 0, cached = 0, unpriced = 0;
  __int128 cost = 0;
  ledger::latency_histogram latency, ttft;  // percentiles are only defined by the histogram
  void add(const request_record& r) {
    ++requests;
    failed += (r.status < 200 || r.status >= 400) ? 1 : 0;
    prompt += static_cast<std::uint64_t>(r.prompt_tokens);
    completion += static_cast<std::uint64_t>(r.completion_tokens);
    cached += static_cast<std::uint64_t>(r.cached_prompt_tokens);
    unpriced += r.priced ? 0 : 1;
    cost += r.cost_pusd;
    latency.add(r.latency);
    if (r.ttft.count() >= 0) ttft.add(r.ttft);
  }
};

std::string group_of(const request_record& r, dimension d) {
  switch (d) {
    case dimension::total: return "";
    case dimension::target: return r.target;
    case dimension::model: return r.model;
    case dimension::key: return r.key_name;
    case dimension::team: return r.team;
    case dimension::route: return r.route;
  }
  return "?";
}

// Raw entries of [from, to] (UTC days) from the ledger itself, summed per (day, group).
std::map<std::pair<day_index, std::string>, expected_sums> sums_from_scan(const ledger::ledger& l, day_index from,
                                                                          day_index to, dimension d,
                                                                          expected_sums* total,
                                                                          std::size_t* entries = nullptr) {
  std::map<std::pair<day_index, std::string>, expected_sums> m;
  std::size_t n = 0;
  auto st = l.scan(system_clock::time_point(days(from)), system_clock::time_point(days(to + 1)),
                   [&](const request_record& r) {
                     m[{ledger::to_day(r.started, 0), group_of(r, d)}].add(r);
                     total->add(r);
                     ++n;
                     return true;
                   });
  EXPECT_TRUE(st.ok()) << st.message;
  if (entries) *entries = n;
  return m;
}

// The raw text of every `"cost_usd":<number>` in order (rows, then totals): the exact decimal as
// written, which a double-based parser would round.
std::vector<std::string> raw_costs(const std::string& body) {
  std::vector<std::string> out;
  const std::string tag = "\"cost_usd\":";
  for (auto p = body.find(tag); p != std::string::npos; p = body.find(tag, p + 1)) {
    auto start = p + tag.size();
    auto end = body.find_first_of(",}", start);
    out.push_back(body.substr(start, end - start));
  }
  return out;
}

void expect_percentile(const nlohmann::json& j, const ledger::latency_histogram& h, double p, const std::string& what) {
  auto v = h.quantile_ms(p);
  if (!v) {
    EXPECT_TRUE(j.is_null()) << what;
  } else {
    ASSERT_TRUE(j.is_number()) << what;
    EXPECT_NEAR(j.get<double>(), *v, 0.0005 + 1e-9) << what;
  }
}

void expect_counters(const nlohmann::json& j, const expected_sums& e, const std::string& raw_cost,
                     const std::string& what) {
  EXPECT_EQ(j.at("requests").get<std::uint64_t>(), e.requests) << what;
  EXPECT_EQ(j.at("failed").get<std::uint64_t>(), e.failed) << what;
  EXPECT_EQ(j.at("prompt_tokens").get<std::uint64_t>(), e.prompt) << what;
  EXPECT_EQ(j.at("completion_tokens").get<std::uint64_t>(), e.completion) << what;
  EXPECT_EQ(j.at("cached_prompt_tokens").get<std::uint64_t>(), e.cached) << what;
  EXPECT_EQ(j.at("unpriced_requests").get<std::uint64_t>(), e.unpriced) << what;
  EXPECT_EQ(j.at("cost_pusd").get<std::string>(), i128(e.cost)) << what;
  EXPECT_EQ(raw_cost, ledger::format_usd(e.cost)) << what;
  expect_percentile(j.at("latency_ms").at("p50"), e.latency, 0.50, what + " latency p50");
  expect_percentile(j.at("latency_ms").at("p95"), e.latency, 0.95, what + " latency p95");
  expect_percentile(j.at("ttft_ms").at("p50"), e.ttft, 0.50, what + " ttft p50");
  expect_percentile(j.at("ttft_ms").at("p95"), e.ttft, 0.95, what + " ttft p95");
}

std::string report_or_fail(const ledger::ledger& l, day_index from, day_index to, dimension d, report_format f) {
  auto r = daily_report(l, from, to, d, f);
  if (auto* e = std::get_if<api_error>(&r)) {
    ADD_FAILURE() << e->message;
    return "";
  }
  return std::get<std::string>(r);
}

// Checks a JSON report against the raw entries of the same range.
void check_json_report(const ledger::ledger& l, day_index from, day_index to, dimension d) {
  const std::string what = "by " + std::string(ledger::to_string(d));
  std::string body = report_or_fail(l, from, to, d, report_format::json);
  auto j = nlohmann::json::parse(body);
  expected_sums total;
  auto expected = sums_from_scan(l, from, to, d, &total);
  EXPECT_EQ(j.at("from"), ledger::day_string(from));
  EXPECT_EQ(j.at("to"), ledger::day_string(to));
  EXPECT_EQ(j.at("by"), ledger::to_string(d));
  const auto& rows = j.at("rows");
  auto costs = raw_costs(body);
  ASSERT_EQ(costs.size(), rows.size() + 1) << what;
  ASSERT_EQ(rows.size(), expected.size()) << what;
  auto it = expected.begin();  // std::map order = day, then group bytes: the report's order too
  for (std::size_t i = 0; i < rows.size(); ++i, ++it) {
    const auto& row = rows[i];
    EXPECT_EQ(row.at("day").get<std::string>(), ledger::day_string(it->first.first)) << what;
    EXPECT_EQ(row.at("group").get<std::string>(), it->first.second) << what;
    expect_counters(row, it->second, costs[i], what + " " + ledger::day_string(it->first.first) + " '" +
                                                   it->first.second + "'");
  }
  expect_counters(j.at("totals"), total, costs.back(), what + " totals");
  EXPECT_FALSE(j.at("totals").contains("day"));
  EXPECT_FALSE(j.at("totals").contains("group"));
}

// RFC 4180 reader (quoted fields may hold commas, quotes and newlines).
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') field.push_back('"'), ++i;
      else if (c == '"') quoted = false;
      else field.push_back(c);
    } else if (c == '"') {
      quoted = true;
      any = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      any = true;
    } else if (c == '\n') {
      row.push_back(std::move(field));
      field.clear();
      rows.push_back(std::move(row));
      row.clear();
      any = false;
    } else {
      field.push_back(c);
      any = true;
    }
  }
  if (any) {
    row.push_back(field);
    rows.push_back(row);
  }
  return rows;
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// ---- running the binary ------------------------------------------------------------------------

gw::test::process_result run_tollgate(const std::vector<std::string>& args, const fs::path& dir) {
  auto r = gw::test::run_process(TOLLGATE_BIN, args, dir);
  if (r.code == -1) ADD_FAILURE() << "tollgate did not exit";
  return r;
}

}  // namespace

TEST(reports, parses_formats_and_days) {
  EXPECT_EQ(parse_report_format("table"), report_format::table);
  EXPECT_EQ(parse_report_format("csv"), report_format::csv);
  EXPECT_EQ(parse_report_format("json"), report_format::json);
  EXPECT_FALSE(parse_report_format("xml"));
  EXPECT_FALSE(parse_report_format("JSON"));
  EXPECT_EQ(parse_export_format("jsonl"), export_format::jsonl);
  EXPECT_EQ(parse_export_format("csv"), export_format::csv);
  EXPECT_FALSE(parse_export_format("json"));
  EXPECT_EQ(parse_report_day("2026-11-20"), day_of("2026-11-20"));
  for (const char* bad : {"2026-13-01", "2026-02-30", "2026-1-01", "2026-01- 1", "+026-01-01", "yesterday", "",
                          "2026/01/01", "2026-01-011"})
    EXPECT_FALSE(parse_report_day(bad)) << bad;
}

TEST(reports, json_rows_and_totals_equal_the_raw_entries_for_every_dimension) {
  ledger_dir d;
  auto l = must_open(d.db());
  std::mt19937_64 rng(20261120);
  auto rs = random_records(rng, 1500, "2026-11-20", 5, "tg-");
  record_all(*l, rs);
  __int128 all = 0;
  for (const auto& r : rs) all += r.cost_pusd;
  ASSERT_GT(all, static_cast<__int128>(std::numeric_limits<std::int64_t>::max())) << "the data must exercise int128";

  for (auto dim : {dimension::total, dimension::target, dimension::model, dimension::key, dimension::team,
                   dimension::route}) {
    check_json_report(*l, day_of("2026-11-20"), day_of("2026-11-24"), dim);  // everything
    check_json_report(*l, day_of("2026-11-21"), day_of("2026-11-22"), dim);  // a slice
  }
  // The whole range's totals are every entry written.
  auto j = nlohmann::json::parse(report_or_fail(*l, day_of("2026-11-01"), day_of("2026-11-30"), dimension::team,
                                                report_format::json));
  EXPECT_EQ(j["totals"]["requests"].get<std::uint64_t>(), rs.size());
  EXPECT_EQ(j["totals"]["cost_pusd"].get<std::string>(), i128(all));
}

TEST(reports, csv_has_the_same_numbers_and_quotes_groups) {
  ledger_dir d;
  auto l = must_open(d.db());
  std::mt19937_64 rng(7);
  record_all(*l, random_records(rng, 600, "2026-11-20", 3, "tg-"));
  for (auto dim : {dimension::target, dimension::team, dimension::key}) {
    auto from = day_of("2026-11-20"), to = day_of("2026-11-22");
    auto json = nlohmann::json::parse(report_or_fail(*l, from, to, dim, report_format::json));
    auto costs = raw_costs(report_or_fail(*l, from, to, dim, report_format::json));
    auto csv_text = report_or_fail(*l, from, to, dim, report_format::csv);
    auto csv = parse_csv(csv_text);
    ASSERT_EQ(csv.size(), json["rows"].size() + 2);  // header + rows + TOTAL
    EXPECT_EQ(csv_text.substr(0, csv_text.find('\n')),
              "day,group,requests,failed,prompt_tokens,completion_tokens,cached_prompt_tokens,cost_usd,"
              "unpriced_requests,latency_p50_ms,latency_p95_ms,ttft_p50_ms,ttft_p95_ms");
    auto pct = [](const nlohmann::json& v) { return v.is_null() ? std::string() : v.dump(); };
    for (std::size_t i = 1; i < csv.size(); ++i) {
      const auto& c = csv[i];
      ASSERT_EQ(c.size(), 13u) << i;
      bool total = i + 1 == csv.size();
      const auto& j = total ? json["totals"] : json["rows"][i - 1];
      EXPECT_EQ(c[0], total ? "TOTAL" : j["day"].get<std::string>());
      EXPECT_EQ(c[1], total ? "" : j["group"].get<std::string>());
      EXPECT_EQ(c[2], std::to_string(j["requests"].get<std::uint64_t>()));
      EXPECT_EQ(c[3], std::to_string(j["failed"].get<std::uint64_t>()));
      EXPECT_EQ(c[4], std::to_string(j["prompt_tokens"].get<std::uint64_t>()));
      EXPECT_EQ(c[5], std::to_string(j["completion_tokens"].get<std::uint64_t>()));
      EXPECT_EQ(c[6], std::to_string(j["cached_prompt_tokens"].get<std::uint64_t>()));
      EXPECT_EQ(c[7], costs[i - 1]);
      EXPECT_EQ(c[8], std::to_string(j["unpriced_requests"].get<std::uint64_t>()));
      EXPECT_EQ(c[9], pct(j["latency_ms"]["p50"]));
      EXPECT_EQ(c[10], pct(j["latency_ms"]["p95"]));
      EXPECT_EQ(c[11], pct(j["ttft_ms"]["p50"]));
      EXPECT_EQ(c[12], pct(j["ttft_ms"]["p95"]));
    }
  }
  // Groups with a comma or quote are quoted, quotes doubled.
  auto teams = report_or_fail(*l, day_of("2026-11-20"), day_of("2026-11-22"), dimension::team, report_format::csv);
  EXPECT_NE(teams.find(",\"r&d, \"\"core\"\"\","), std::string::npos) << teams;
  auto targets = report_or_fail(*l, day_of("2026-11-20"), day_of("2026-11-22"), dimension::target, report_format::csv);
  EXPECT_NE(targets.find(",\"we\"\"ird,target\","), std::string::npos) << targets;
}

TEST(reports, table_is_aligned_with_totals_and_an_unpriced_note) {
  ledger_dir d;
  auto l = must_open(d.db());
  request_record a;
  a.request_id = "a";
  a.started = at("2026-11-20");
  a.target = "openai";
  a.status = 200;
  a.prompt_tokens = 1000;
  a.priced = true;
  a.cost_pusd = 1'500'000'000'000;  // $1.50
  a.latency = milliseconds(100);
  auto b = a;
  b.request_id = "b";
  b.target = "mystery";
  b.priced = false;
  b.cost_pusd = 0;
  ASSERT_TRUE(l->record_sync(a).ok());
  ASSERT_TRUE(l->record_sync(b).ok());
  auto t = report_or_fail(*l, day_of("2026-11-20"), day_of("2026-11-20"), dimension::target, report_format::table);
  auto lines = lines_of(t);
  ASSERT_GE(lines.size(), 6u) << t;
  EXPECT_NE(lines[0].find("by target"), std::string::npos) << t;
  // Header, two rows, a rule, TOTAL: numeric columns end at the same place on every line.
  EXPECT_EQ(lines[1].find("day"), 0u) << t;
  EXPECT_EQ(lines[2].substr(0, 10), "2026-11-20");
  EXPECT_NE(lines[2].find("mystery"), std::string::npos) << t;  // groups in byte order
  EXPECT_NE(lines[3].find("openai"), std::string::npos) << t;
  EXPECT_EQ(lines[4].find_first_not_of('-'), std::string::npos) << t;
  EXPECT_EQ(lines[5].substr(0, 5), "TOTAL");
  EXPECT_NE(lines[5].find("  2  "), std::string::npos) << t;  // 2 requests in total
  EXPECT_NE(lines[3].find("1.50"), std::string::npos) << t;
  EXPECT_NE(lines[5].find("1.50"), std::string::npos) << t;
  EXPECT_EQ(lines[3].find("1.50"), lines[5].find("1.50")) << t;  // right-aligned
  EXPECT_EQ(lines[2].find("0.00") + 4, lines[3].find("1.50") + 4) << t;
  EXPECT_NE(t.find("note: 1 request has no price"), std::string::npos) << t;

  // No unpriced requests, no note; an empty range says so.
  auto c = a;
  c.request_id = "c";
  c.started = at("2026-11-22");
  ASSERT_TRUE(l->record_sync(c).ok());
  auto priced_only = report_or_fail(*l, day_of("2026-11-22"), day_of("2026-11-22"), dimension::target, report_format::table);
  EXPECT_EQ(priced_only.find("note:"), std::string::npos) << priced_only;
  EXPECT_NE(priced_only.find("1.50"), std::string::npos) << priced_only;
  auto empty = report_or_fail(*l, day_of("2026-11-21"), day_of("2026-11-21"), dimension::target, report_format::table);
  EXPECT_EQ(empty.find("note:"), std::string::npos) << empty;
  EXPECT_NE(empty.find("no requests"), std::string::npos) << empty;
}

TEST(reports, empty_range_has_zero_totals_and_null_percentiles) {
  ledger_dir d;
  auto l = must_open(d.db());
  auto body = report_or_fail(*l, day_of("2026-01-01"), day_of("2026-01-31"), dimension::model, report_format::json);
  auto j = nlohmann::json::parse(body);
  EXPECT_TRUE(j["rows"].empty());
  EXPECT_EQ(j["totals"]["requests"], 0);
  EXPECT_EQ(j["totals"]["cost_pusd"], "0");
  EXPECT_EQ(raw_costs(body), std::vector<std::string>{"0.00"});
  EXPECT_TRUE(j["totals"]["latency_ms"]["p50"].is_null());
  EXPECT_TRUE(j["totals"]["ttft_ms"]["p95"].is_null());
  auto csv = parse_csv(report_or_fail(*l, day_of("2026-01-01"), day_of("2026-01-31"), dimension::model, report_format::csv));
  ASSERT_EQ(csv.size(), 2u);
  EXPECT_EQ(csv[1], (std::vector<std::string>{"TOTAL", "", "0", "0", "0", "0", "0", "0.00", "0", "", "", "", ""}));
}

TEST(reports, range_errors_are_400_and_366_days_is_the_limit) {
  ledger_dir d;
  auto l = must_open(d.db());
  auto err = [&](day_index from, day_index to) {
    auto r = daily_report(*l, from, to, dimension::target, report_format::json);
    return std::get_if<api_error>(&r) ? std::optional(*std::get_if<api_error>(&r)) : std::nullopt;
  };
  auto e = err(day_of("2026-11-21"), day_of("2026-11-20"));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 400);
  EXPECT_EQ(e->type, "invalid_request_error");
  EXPECT_NE(e->message.find("after"), std::string::npos);
  EXPECT_FALSE(err(day_of("2026-01-01"), day_of("2027-01-01")));  // 366 days
  e = err(day_of("2026-01-01"), day_of("2027-01-02"));             // 367
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 400);
  EXPECT_NE(e->message.find("366"), std::string::npos);
}

TEST(reports, export_jsonl_has_one_line_per_entry_with_exact_costs) {
  ledger_dir d;
  auto l = must_open(d.db());
  std::mt19937_64 rng(99);
  auto rs = random_records(rng, 800, "2026-11-20", 4, "tg-");
  record_all(*l, rs);
  std::map<std::string, const request_record*> by_id;
  for (const auto& r : rs) by_id[r.request_id] = &r;

  std::ostringstream out;
  auto from = at("2026-11-21", 0), to = at("2026-11-23", 0);
  ASSERT_TRUE(export_entries(*l, from, to, export_format::jsonl, out).ok());
  auto lines = lines_of(out.str());
  std::size_t expected = 0;
  for (const auto& r : rs) expected += (r.started >= from && r.started < to) ? 1 : 0;
  ASSERT_EQ(lines.size(), expected);
  std::set<std::string> seen;
  std::int64_t last_us = std::numeric_limits<std::int64_t>::min();
  for (const auto& line : lines) {
    auto j = nlohmann::json::parse(line);
    const auto& r = *by_id.at(j["request_id"].get<std::string>());
    EXPECT_TRUE(seen.insert(r.request_id).second);
    EXPECT_EQ(j["cost_pusd"].get<std::int64_t>(), r.cost_pusd);
    EXPECT_EQ(j["cost_usd"].get<std::string>(), ledger::format_usd(r.cost_pusd));
    EXPECT_EQ(j["priced"].get<bool>(), r.priced);
    auto us = duration_cast<microseconds>(r.started.time_since_epoch()).count();
    EXPECT_EQ(j["started_us"].get<std::int64_t>(), us);
    EXPECT_GE(us, last_us) << "time order";
    last_us = us;
    EXPECT_EQ(j["client_request_id"], r.client_request_id);
    EXPECT_EQ(j["key_name"], r.key_name);
    EXPECT_EQ(j["team"], r.team);
    EXPECT_EQ(j["endpoint"], r.endpoint);
    EXPECT_EQ(j["model"], r.model);
    EXPECT_EQ(j["route"], r.route);
    EXPECT_EQ(j["reason"], r.reason);
    EXPECT_EQ(j["target"], r.target);
    EXPECT_EQ(j["upstream_model"], r.upstream_model);
    EXPECT_EQ(j["provider"], r.provider);
    EXPECT_EQ(j["status"], r.status);
    EXPECT_EQ(j["stream"], r.stream);
    EXPECT_EQ(j["prompt_tokens"], r.prompt_tokens);
    EXPECT_EQ(j["completion_tokens"], r.completion_tokens);
    EXPECT_EQ(j["cached_prompt_tokens"], r.cached_prompt_tokens);
    EXPECT_EQ(j["usage_estimated"], r.usage_estimated);
    EXPECT_EQ(j["client_disconnected"], r.client_disconnected);
    EXPECT_EQ(j["attempts"], r.attempts);
    EXPECT_EQ(j["retries"], r.retries);
    EXPECT_EQ(j["fallbacks"], r.fallbacks);
    EXPECT_EQ(j["error_code"], r.error_code);
    EXPECT_EQ(j["latency_us"], r.latency.count());
    EXPECT_EQ(j["ttft_us"], r.ttft.count());
    EXPECT_EQ(j["upstream_time_us"], r.upstream_time.count());
    EXPECT_EQ(j["engine_busy_us"], r.engine_busy.count());
  }
  // RFC 3339 rendering of `started`.
  request_record one;
  one.request_id = "exact";
  one.started = system_clock::time_point(days(day_of("2026-11-25"))) + hours(13) + minutes(4) + seconds(5) +
                microseconds(6);
  one.cost_pusd = 123;
  one.priced = true;
  ASSERT_TRUE(l->record_sync(one).ok());
  std::ostringstream o2;
  ASSERT_TRUE(export_entries(*l, at("2026-11-25", 0), at("2026-11-26", 0), export_format::jsonl, o2).ok());
  auto j = nlohmann::json::parse(o2.str());
  EXPECT_EQ(j["started"], "2026-11-25T13:04:05.000006Z");
  EXPECT_EQ(j["cost_usd"], "0.000000000123");
}

TEST(reports, export_csv_streams_every_field_of_every_entry) {
  ledger_dir d;
  auto l = must_open(d.db());
  std::mt19937_64 rng(5);
  auto rs = random_records(rng, 300, "2026-11-20", 2, "tg-");
  record_all(*l, rs);
  std::ostringstream out;
  ASSERT_TRUE(export_entries(*l, at("2026-11-20", 0), at("2026-11-22", 0), export_format::csv, out).ok());
  auto rows = parse_csv(out.str());
  ASSERT_EQ(rows.size(), rs.size() + 1);
  const auto& head = rows[0];
  ASSERT_EQ(head.size(), 31u);
  auto col = [&](const std::string& name) {
    return static_cast<std::size_t>(std::find(head.begin(), head.end(), name) - head.begin());
  };
  std::map<std::string, const request_record*> by_id;
  for (const auto& r : rs) by_id[r.request_id] = &r;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    ASSERT_EQ(rows[i].size(), head.size()) << i;
    const auto& r = *by_id.at(rows[i][col("request_id")]);
    EXPECT_EQ(rows[i][col("client_request_id")], r.client_request_id);  // holds a comma, quotes, a newline
    EXPECT_EQ(rows[i][col("team")], r.team);
    EXPECT_EQ(rows[i][col("target")], r.target);
    EXPECT_EQ(rows[i][col("cost_pusd")], std::to_string(r.cost_pusd));
    EXPECT_EQ(rows[i][col("cost_usd")], ledger::format_usd(r.cost_pusd));
    EXPECT_EQ(rows[i][col("status")], std::to_string(r.status));
    EXPECT_EQ(rows[i][col("priced")], r.priced ? "true" : "false");
    EXPECT_EQ(rows[i][col("ttft_us")], std::to_string(r.ttft.count()));
  }
  // from > to is an error; a stream that fails is reported.
  std::ostringstream o2;
  EXPECT_EQ(export_entries(*l, at("2026-11-22"), at("2026-11-21"), export_format::csv, o2).c,
            ledger::status::code::invalid_argument);
  std::ostringstream bad;
  bad.setstate(std::ios::badbit);
  EXPECT_EQ(export_entries(*l, at("2026-11-20", 0), at("2026-11-22", 0), export_format::jsonl, bad).c,
            ledger::status::code::io_error);
}

TEST(reports, http_parses_the_query_and_answers_errors_as_openai_json) {
  ledger_dir d;
  auto l = must_open(d.db());
  std::mt19937_64 rng(3);
  auto rs = random_records(rng, 200, "2026-11-20", 2, "tg-");
  record_all(*l, rs);
  const auto now = at("2026-11-21", 23);

  // Defaults: today (UTC of `now`), by target, JSON.
  auto a = daily_report_http(*l, "", now);
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.content_type, "application/json");
  auto j = nlohmann::json::parse(a.body);
  EXPECT_EQ(j["from"], "2026-11-21");
  EXPECT_EQ(j["to"], "2026-11-21");
  EXPECT_EQ(j["by"], "target");
  EXPECT_EQ(a.body, std::get<std::string>(daily_report(*l, day_of("2026-11-21"), day_of("2026-11-21"), dimension::target,
                                                       report_format::json)));

  // Percent-decoding (names and values), '+' and a leading '?'.
  a = daily_report_http(*l, "?from=2026%2D11%2D20&to=2026-11-21&b%79=te%61m&format=csv", now);
  EXPECT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(a.content_type, "text/csv; charset=utf-8");
  EXPECT_EQ(a.body, std::get<std::string>(daily_report(*l, day_of("2026-11-20"), day_of("2026-11-21"), dimension::team,
                                                       report_format::csv)));

  auto expect_400 = [&](std::string_view q, const std::string& param) {
    auto e = daily_report_http(*l, q, now);
    EXPECT_EQ(e.status, 400) << q;
    EXPECT_EQ(e.content_type, "application/json");
    auto body = nlohmann::json::parse(e.body);
    EXPECT_EQ(body["error"]["type"], "invalid_request_error") << q;
    EXPECT_FALSE(body["error"]["message"].get<std::string>().empty());
    if (!param.empty()) {
      EXPECT_EQ(body["error"]["param"], param) << q << " " << e.body;
    }
  };
  expect_400("from=2026-11-22&to=2026-11-21", "from");   // from > to
  expect_400("from=2025-01-01&to=2026-11-21", "from");   // > 366 days
  expect_400("from=2026-13-01", "from");                 // bad dates
  expect_400("from=2026-02-30", "from");
  expect_400("to=yesterday", "to");
  expect_400("to=2026-11-2", "to");
  expect_400("from=2026+11+20", "from");                 // '+' is a space
  expect_400("by=provider", "by");                       // bad dimension
  expect_400("format=xml", "format");                    // bad format
  expect_400("format=table", "format");                  // terminals only
  expect_400("form=json", "form");                       // unknown parameter
  expect_400("by=team&by=key", "by");                    // repeated
  expect_400("from=2026%2", "");                         // malformed escapes
  expect_400("from=%zz", "");
}

TEST(reports, read_only_view_opened_before_more_writes_sees_them_after_catch_up) {
  ledger_dir d;
  auto primary = must_open(d.db());
  std::mt19937_64 rng(11);
  auto first = random_records(rng, 300, "2026-11-20", 2, "a-");
  record_all(*primary, first);
  auto view = must_open(d.db(), /*read_only=*/true);
  ASSERT_TRUE(view);
  auto second = random_records(rng, 300, "2026-11-20", 3, "b-");
  record_all(*primary, second);
  ASSERT_TRUE(view->catch_up().ok());

  auto j = nlohmann::json::parse(report_or_fail(*view, day_of("2026-11-20"), day_of("2026-11-22"), dimension::key,
                                                report_format::json));
  __int128 cost = 0;
  for (const auto* set : {&first, &second})
    for (const auto& r : *set) cost += r.cost_pusd;
  EXPECT_EQ(j["totals"]["requests"].get<std::uint64_t>(), first.size() + second.size());
  EXPECT_EQ(j["totals"]["cost_pusd"], i128(cost));
  for (auto dim : {dimension::target, dimension::team}) check_json_report(*view, day_of("2026-11-20"), day_of("2026-11-22"), dim);
  std::ostringstream out;
  ASSERT_TRUE(export_entries(*view, at("2026-11-20", 0), at("2026-11-23", 0), export_format::jsonl, out).ok());
  EXPECT_EQ(lines_of(out.str()).size(), first.size() + second.size());
}

TEST(reports, cli_report_daily_and_export_run_against_a_ledger_in_use) {
  ledger_dir d;
  auto cfg = d.path / "tollgate.yaml";
  std::ofstream(cfg) << "server:\n  data_dir: " << d.path.string()
                     << "\nauth: none\ntargets:\n  t:\n    base_url: http://127.0.0.1:9/v1\nmodels:\n  m: [t]\n";
  // The primary stays open (as `serve` would) while the binary reads through a read-only view.
  auto l = must_open(d.db());
  std::mt19937_64 rng(42);
  auto rs = random_records(rng, 400, "2026-11-20", 3, "tg-");
  // Two entries today, for the default --from/--to.
  for (int i = 0; i < 2; ++i) {
    auto r = rs[static_cast<std::size_t>(i)];
    r.request_id = "today-" + std::to_string(i);
    r.started = system_clock::now() - seconds(1);
    rs.push_back(r);
  }
  record_all(*l, rs);
  const std::string c = cfg.string();

  auto json = run_tollgate({"report", "daily", "--config", c, "--from", "2026-11-20", "--to", "2026-11-22", "--by",
                            "team", "--format", "json"},
                           d.path);
  ASSERT_EQ(json.code, 0) << json.err;
  EXPECT_EQ(json.out, std::get<std::string>(daily_report(*l, day_of("2026-11-20"), day_of("2026-11-22"), dimension::team,
                                                         report_format::json)));
  auto j = nlohmann::json::parse(json.out);
  EXPECT_EQ(j["totals"]["requests"].get<std::uint64_t>(), rs.size() - 2);

  auto csv = run_tollgate({"report", "daily", "--config", c, "--from", "2026-11-20", "--to", "2026-11-22", "--by",
                           "route", "--format", "csv"},
                          d.path);
  ASSERT_EQ(csv.code, 0) << csv.err;
  EXPECT_EQ(csv.out, std::get<std::string>(daily_report(*l, day_of("2026-11-20"), day_of("2026-11-22"), dimension::route,
                                                        report_format::csv)));

  auto table = run_tollgate({"report", "daily", "--config", c, "--from", "2026-11-20", "--to", "2026-11-22"}, d.path);
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_NE(table.out.find("by target"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("TOTAL"), std::string::npos);
  EXPECT_NE(table.out.find("no price"), std::string::npos);

  auto today = run_tollgate({"report", "daily", "--config", c, "--format", "json", "--by", "total"}, d.path);
  ASSERT_EQ(today.code, 0) << today.err;
  EXPECT_EQ(nlohmann::json::parse(today.out)["totals"]["requests"], 2);

  auto jsonl = run_tollgate({"export", "--config", c, "--from", "2026-11-21", "--to", "2026-11-22", "--format",
                             "jsonl"},
                            d.path);
  ASSERT_EQ(jsonl.code, 0) << jsonl.err;
  std::size_t expected = 0;
  for (const auto& r : rs) expected += (r.started >= at("2026-11-21", 0) && r.started < at("2026-11-23", 0)) ? 1 : 0;
  EXPECT_EQ(lines_of(jsonl.out).size(), expected);
  std::ostringstream direct;
  ASSERT_TRUE(export_entries(*l, at("2026-11-21", 0), at("2026-11-23", 0), export_format::jsonl, direct).ok());
  EXPECT_EQ(jsonl.out, direct.str());

  auto ecsv = run_tollgate({"export", "--config", c, "--from", "2026-11-20", "--to", "2026-11-20", "--format", "csv"},
                           d.path);
  ASSERT_EQ(ecsv.code, 0) << ecsv.err;
  std::size_t day1 = 0;
  for (const auto& r : rs) day1 += ledger::to_day(r.started, 0) == day_of("2026-11-20") ? 1 : 0;
  EXPECT_EQ(parse_csv(ecsv.out).size(), day1 + 1);

  // Errors: exit 1 with a message on stderr.
  auto bad_by = run_tollgate({"report", "daily", "--config", c, "--by", "provider"}, d.path);
  EXPECT_EQ(bad_by.code, 1);
  EXPECT_NE(bad_by.err.find("--by"), std::string::npos) << bad_by.err;
  auto backwards = run_tollgate({"report", "daily", "--config", c, "--from", "2026-11-22", "--to", "2026-11-20"}, d.path);
  EXPECT_EQ(backwards.code, 1);
  EXPECT_NE(backwards.err.find("after"), std::string::npos) << backwards.err;
  auto bad_date = run_tollgate({"export", "--config", c, "--from", "2026-11-31"}, d.path);
  EXPECT_EQ(bad_date.code, 1);
  EXPECT_NE(bad_date.err.find("--from"), std::string::npos) << bad_date.err;
  auto bad_format = run_tollgate({"export", "--config", c, "--format", "json"}, d.path);
  EXPECT_EQ(bad_format.code, 1);
  EXPECT_NE(bad_format.err.find("--format"), std::string::npos) << bad_format.err;
  auto too_long = run_tollgate({"report", "daily", "--config", c, "--from", "2024-01-01", "--to", "2026-01-01"}, d.path);
  EXPECT_EQ(too_long.code, 1);
  EXPECT_NE(too_long.err.find("366"), std::string::npos) << too_long.err;

  // No ledger directory under data_dir.
  auto empty_dir = d.path / "empty";
  fs::create_directories(empty_dir);
  auto cfg2 = d.path / "nodata.yaml";
  std::ofstream(cfg2) << "server:\n  data_dir: " << empty_dir.string()
                      << "\nauth: none\ntargets:\n  t:\n    base_url: http://127.0.0.1:9/v1\nmodels:\n  m: [t]\n";
  for (auto args : {std::vector<std::string>{"report", "daily", "--config", cfg2.string()},
                    std::vector<std::string>{"export", "--config", cfg2.string()}}) {
    auto missing = run_tollgate(args, d.path);
    EXPECT_EQ(missing.code, 1);
    EXPECT_NE(missing.err.find("no ledger at"), std::string::npos) << missing.err;
    EXPECT_TRUE(missing.out.empty());
  }
  EXPECT_FALSE(fs::exists(empty_dir / "ledger")) << "a report must not create a ledger";
  auto no_config = run_tollgate({"report", "daily", "--config", (d.path / "absent.yaml").string()}, d.path);
  EXPECT_EQ(no_config.code, 1);
  EXPECT_NE(no_config.err.find("absent.yaml"), std::string::npos) << no_config.err;
}
