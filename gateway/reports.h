#pragma once
// Reports over the ledger: daily aggregates as a table, CSV or JSON, and a raw export of entries.
// Every function here only reads; all take a `const ledger&` and may run concurrently with
// writers (the ledger is thread-safe). A read-only view (ledger::options::read_only) sees what the
// primary wrote up to its last open()/catch_up(): call catch_up() first for current numbers.
//
// Money is exact everywhere: a cost is rendered from the integer pico-dollar sum (a __int128 over
// a report's range), never through a double. Shapes are documented in docs/reports.md.
#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <variant>

#include "gateway/errors.h"
#include "ledger/ledger.h"

namespace gw::gateway {

enum class report_format { table, csv, json };
// "table", "csv", "json"; nullopt otherwise.
std::optional<report_format> parse_report_format(std::string_view s);

// "YYYY-MM-DD" (digits only, a real calendar date) -> day index; nullopt otherwise.
std::optional<ledger::day_index> parse_report_day(std::string_view s);

// The longest range daily_report() accepts, in days (both ends inclusive).
inline constexpr int max_report_days = 366;

// The range check every report makes: from > to, or more than max_report_days days -> 400
// (invalid_request_error, param "from"); nullopt when [from, to] is a valid range.
std::optional<api_error> check_report_range(ledger::day_index from, ledger::day_index to);

// Days [from, to] (inclusive, in the ledger's timezone) grouped by `by`: one row per day × group,
// ordered by day then group, and a totals line that is the exact merge of the rows (so its cost is
// the exact sum and its percentiles are over every request of the range).
//   table: aligned columns for a terminal, a TOTAL line, and a note when some requests have no
//          price (they are counted, but not in the cost).
//   csv:   header `day,group,requests,failed,prompt_tokens,completion_tokens,cached_prompt_tokens,
//          cost_usd,unpriced_requests,latency_p50_ms,latency_p95_ms,ttft_p50_ms,ttft_p95_ms`, one
//          line per row, then a line whose day is `TOTAL` (group empty); lines end in "\n"; a group
//          is quoted per RFC 4180 when it holds a comma, a quote, CR or LF; a percentile without
//          samples is an empty field.
//   json:  {"from","to","by","rows":[{"day","group","requests","failed","prompt_tokens",
//          "completion_tokens","cached_prompt_tokens","cost_usd","cost_pusd","unpriced_requests",
//          "latency_ms":{"p50","p95"},"ttft_ms":{"p50","p95"}}],"totals":{the same without day and
//          group}}. cost_usd is a JSON number written from the exact decimal (a parser that reads
//          numbers as doubles rounds it; cost_pusd, the exact integer of pico-dollars as a string,
//          does not); percentiles are milliseconds rounded to 3 decimals, null without samples.
// Errors: from > to or more than max_report_days days -> 400 (invalid_request_error, param "from");
// a ledger read error (corruption included) -> 500 with the ledger's message.
std::variant<std::string, api_error> daily_report(const ledger::ledger& l, ledger::day_index from,
                                                  ledger::day_index to, ledger::dimension by,
                                                  report_format f);

enum class export_format { csv, jsonl };
// "csv", "jsonl"; nullopt otherwise.
std::optional<export_format> parse_export_format(std::string_view s);

// Streams every entry that started in [from, to) to `out`, in start-time order, one at a time (no
// entry is kept after it is written, so the range may be any size). Every request_record field is
// written; times are `started` (RFC 3339 UTC with microseconds) and durations in microseconds
// (`ttft_us` -1 = none); the cost is `cost_usd` (exact decimal string) and `cost_pusd` (integer).
//   csv:   a header line, then one line per entry; text fields quoted per RFC 4180 when needed.
//   jsonl: one JSON object per line (invalid UTF-8 in text fields is replaced by U+FFFD).
// Returns the ledger's status (corruption stops the export with that error; what was written
// before stays written), invalid_argument when from > to, io_error when `out` fails.
ledger::status export_entries(const ledger::ledger& l, std::chrono::system_clock::time_point from,
                              std::chrono::system_clock::time_point to, export_format f,
                              std::ostream& out);

// One HTTP response, for the server to send as is.
struct http_answer {
  int status = 200;
  std::string content_type;
  std::string body;
};

// The parameters of a report's HTTP form (daily_report_http, breakeven_report_http).
struct report_query {
  ledger::day_index from = 0, to = 0;
  ledger::dimension by = ledger::dimension::target;
  report_format format = report_format::json;
};

// Reads `query_string` (the part after '?'; a leading '?' is accepted): from, to, format and, only
// when `with_by`, by. Parameters are percent-decoded ('+' is a space); from/to default to `today`,
// by to target, format to json (json|csv; table is not offered over HTTP). An unknown, repeated or
// malformed parameter, a bad date, dimension or format -> 400 (invalid_request_error, param
// naming it). The range itself is not checked here (see check_report_range).
std::variant<report_query, api_error> parse_report_query(std::string_view query_string, ledger::day_index today,
                                                         bool with_by);

// A report as the HTTP answer: its text with 200 and the content type of `f` (CSV or JSON), or the
// error as the OpenAI error JSON (to_body(api_error)) with the error's status.
http_answer report_answer(std::variant<std::string, api_error> result, report_format f);

// GET /…/reports/daily?from=YYYY-MM-DD&to=YYYY-MM-DD&by=target&format=json
// `query_string` is the part after '?' (a leading '?' is accepted). Parameters are
// percent-decoded ('+' is a space); from/to default to the UTC day of `now`, by to target,
// format to json (json|csv). An unknown, repeated or malformed parameter, a bad date, dimension or
// format, and the range errors of daily_report() answer 400 with the OpenAI error JSON
// (to_body(api_error)); a ledger error answers 500.
http_answer daily_report_http(const ledger::ledger& l, std::string_view query_string,
                              std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

}  // namespace gw::gateway
