#pragma once
// The ledger: every request's tokens and spend in an embedded RocksDB database (no server to run).
//
// One entry per request, keyed by tollgate's request id, plus daily aggregates (by day × target,
// model, key, team, route) written in the SAME atomic write batch, so the aggregates always equal
// the entries. Writes are group-committed by one writer thread: concurrent requests share one
// RocksDB write, and callers get a callback once their entry is in the WAL (durable against a
// process crash; against power loss after the next WAL sync, see options::sync). RocksDB types stay
// in ledger/*.cpp.
//
// Thread-safety: every member function may be called from any thread.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ledger/money.h"
#include "ledger/record.h"

namespace gw::ledger {

// Errors are values (like rocksdb::Status): ok() or a code with a message.
struct status {
  enum class code { ok, not_found, corruption, io_error, invalid_argument, duplicate, busy, closed };
  code c = code::ok;
  std::string message;
  bool ok() const { return c == code::ok; }
  static status make(code c, std::string m) { return {c, std::move(m)}; }
};

enum class sync_mode {
  interval,  // WAL fsync'ed every options::sync_interval (default): a power loss loses at most that
  always,    // fsync before every acknowledgement (slow; exact)
  none,      // leave it to the OS (a process crash still loses nothing: the WAL is written)
};

struct options {
  sync_mode sync = sync_mode::interval;
  std::chrono::milliseconds sync_interval{100};
  int utc_offset_minutes = 0;  // reports.timezone as a fixed offset; days are UTC by default
  std::size_t max_batch = 8192;  // entries per group commit at most
  bool read_only = false;        // open a secondary view (reports while `serve` runs)
  // The clock for "today" (spend rebuild at open); tests inject one. Default: system_clock::now.
  std::function<std::chrono::system_clock::time_point()> now;
};

// A calendar day in the ledger's timezone: days since 1970-01-01.
using day_index = std::int32_t;
day_index to_day(std::chrono::system_clock::time_point t, int utc_offset_minutes);
std::string day_string(day_index d);                 // "2026-11-25"
std::optional<day_index> parse_day(std::string_view);  // "YYYY-MM-DD"

enum class dimension : std::uint8_t { total = 0, target = 1, model = 2, key = 3, team = 4, route = 5 };
std::optional<dimension> parse_dimension(std::string_view);  // "target", "model", ...
std::string_view to_string(dimension d);

// Log-scale latency histogram: bucket i holds values in [base·r^i, base·r^(i+1)), base = 100 µs,
// r = 2^(1/8); a percentile read from it is within ±4.4% of the true value (half a bucket), for
// values from 100 µs to ~28 minutes.
struct latency_histogram {
  static constexpr int buckets = 192;
  std::vector<std::uint64_t> counts = std::vector<std::uint64_t>(buckets, 0);
  static int bucket_of(std::chrono::microseconds v);
  void add(std::chrono::microseconds v, std::uint64_t n = 1);
  void merge(const latency_histogram& o);
  std::uint64_t total() const;
  // The p-quantile (0..1) in milliseconds (bucket midpoint, geometric); nullopt when empty.
  std::optional<double> quantile_ms(double p) const;
};

struct counters {
  std::uint64_t requests = 0, failed = 0;
  std::uint64_t prompt_tokens = 0, completion_tokens = 0, cached_prompt_tokens = 0;
  std::uint64_t unpriced_requests = 0, estimated_requests = 0;
  std::uint64_t engine_busy_us = 0;
  wide_pico_usd cost = 0;
  latency_histogram latency, ttft;
  void add(const request_record& r);
  void merge(const counters& o);
};

struct daily_row {
  day_index day;
  std::string group;  // the dimension's value ("" for total)
  counters c;
};

class ledger {
 public:
  // Opens (creating when absent) the ledger in directory `path`. Rebuilds the in-memory spend
  // state from the aggregates. On failure returns nullptr and sets `error`.
  static std::unique_ptr<ledger> open(const std::string& path, const options& opts, status* error);
  virtual ~ledger() = default;

  using done_fn = std::function<void(const status&)>;
  // Queues one entry; `done` runs on the writer thread once the entry and its aggregates are in the
  // WAL (or with an error). A request id already recorded gives status::duplicate, and nothing is
  // written twice. Never blocks on disk.
  virtual void record(request_record r, done_fn done) = 0;
  // record() and wait.
  virtual status record_sync(request_record r) = 0;
  // Waits until everything queued before the call is written.
  virtual status flush() = 0;

  // Entries with start time in [from, to), in time order; stop early by returning false.
  virtual status scan(std::chrono::system_clock::time_point from,
                      std::chrono::system_clock::time_point to,
                      const std::function<bool(const request_record&)>& visit) const = 0;
  virtual status get(const std::string& request_id, request_record* out) const = 0;
  // Aggregates for days [from, to] by one dimension, ordered by day then group.
  virtual status daily(day_index from, day_index to, dimension by, std::vector<daily_row>* out) const = 0;

  // Spend so far (p$) of a client key or team in the current day / month (in-memory, kept
  // current by record(); rebuilt at open).
  struct spend { wide_pico_usd day = 0, month = 0; };
  virtual spend key_spend(const std::string& key, std::chrono::system_clock::time_point now) const = 0;
  virtual spend team_spend(const std::string& team, std::chrono::system_clock::time_point now) const = 0;

  // Deletes raw entries that started before `before` (aggregates are kept). Returns how many.
  virtual status prune(std::chrono::system_clock::time_point before, std::uint64_t* removed) = 0;
  // A consistent copy of the whole ledger in `dir` (must not exist), openable like any ledger.
  virtual status checkpoint(const std::string& dir) = 0;
  // Read-only views: pick up what the primary wrote since the last call.
  virtual status catch_up() = 0;

  virtual std::uint64_t entries_written() const = 0;
};

}  // namespace gw::ledger
