#pragma once
// Budgets and rate limits: in-memory state behind narrow interfaces. No I/O and no clock: every
// call is given `now`. Thread-safe (one mutex per store; operations are a few map lookups).
//
// Budgets: per key and per team, daily and monthly limits in pico-dollars, hard (refuse) or soft
// (allow, flag). Before a hosted call the worst-case cost is reserved atomically; when usage
// arrives the reservation settles to the real cost; on failure it is released. Spend from before a
// restart comes in through seed() (the ledger's key/team spend).
//
// Rate limits: token buckets per key and per team, for requests per minute and tokens per minute.
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>
#include <string>
#include <unordered_map>
#include <vector>

namespace gw::policies {

using pusd = std::int64_t;  // pico-dollars
using time_point = std::chrono::system_clock::time_point;

enum class budget_scope { key, team };
enum class budget_period { day, month };

struct budget_limit {
  budget_scope scope;
  std::string name;  // key name or team name
  budget_period period;
  pusd limit = 0;
  bool hard = true;  // false: soft (over-limit requests are allowed and flagged)
};

struct budget_subject {
  std::string key, team;
};

struct reservation {
  std::uint64_t id = 0;  // 0: nothing reserved (no budget applies)
};

struct budget_verdict {
  bool allowed = true;
  bool soft_exceeded = false;
  std::string exhausted;  // e.g. "team search daily budget ($50.00)" when refused or soft-exceeded
  reservation r;
};

class budget_store {
 public:
  explicit budget_store(std::vector<budget_limit> limits, int utc_offset_minutes = 0);

  // Reserves `worst_case` against every limit that applies to `who`. All-or-nothing: refused when
  // any hard limit would be exceeded (spent + reserved + worst_case > limit).
  budget_verdict reserve(const budget_subject& who, pusd worst_case, time_point now);
  // The state without reserving anything: refused (allowed = false) when a hard limit has nothing
  // left (spent + reserved >= limit), soft_exceeded likewise for a soft limit. Routing uses it to
  // send an exhausted key/team to local targets before any reservation is tried.
  budget_verdict check(const budget_subject& who, time_point now);
  // Replaces the reservation by the real cost (may be more or less than reserved).
  void settle(reservation r, pusd actual, time_point now);
  // Drops the reservation (the request failed without cost).
  void release(reservation r);

  // Spend that happened before this process (from the ledger), added to the current period.
  void seed(budget_scope scope, const std::string& name, pusd day_spent, pusd month_spent, time_point now);

  struct usage {
    pusd spent = 0, reserved = 0, limit = 0;
  };
  std::optional<usage> state(budget_scope scope, const std::string& name, budget_period period, time_point now) const;
  std::size_t open_reservations() const;

 private:
  struct account {
    std::int32_t period_id = 0;  // day index or year*12+month; a new period resets the totals
    pusd spent = 0, reserved = 0;
  };
  struct open_reservation {
    budget_subject who;
    pusd amount;
    std::int32_t day, month;
  };
  account& acct(budget_scope s, const std::string& name, budget_period p, std::int32_t period_id);
  void close_reservation(reservation r, pusd actual);
  std::int32_t day_of(time_point t) const;
  std::int32_t month_of(time_point t) const;

  std::vector<budget_limit> limits_;
  int offset_minutes_;
  mutable std::mutex mu_;
  std::map<std::tuple<int, std::string, int>, account> accounts_;
  std::unordered_map<std::uint64_t, open_reservation> open_;
  std::uint64_t next_id_ = 1;
};

// A token bucket: `capacity` tokens, refilled continuously at capacity per minute.
struct rate_limit {
  budget_scope scope;
  std::string name;
  std::int64_t requests_per_minute = 0;  // 0 = no limit
  std::int64_t tokens_per_minute = 0;
};

struct rate_verdict {
  bool allowed = true;
  int retry_after_s = 0;
  std::string limit;  // e.g. "key web-app: 60 requests per minute"
};

class rate_limiter {
 public:
  explicit rate_limiter(std::vector<rate_limit> limits);
  // Takes one request and `tokens` tokens from every bucket that applies; all-or-nothing.
  rate_verdict take(const budget_subject& who, std::int64_t tokens, time_point now);

 private:
  struct bucket {
    double level = 0;
    double capacity = 0;
    time_point last{};
    bool init = false;
  };
  std::vector<rate_limit> limits_;
  std::mutex mu_;
  std::map<std::pair<std::size_t, int>, bucket> buckets_;  // (limit index, 0 requests / 1 tokens)
};

}  // namespace gw::policies
