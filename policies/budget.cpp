#include "policies/budget.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace gw::policies {

namespace {

std::string usd(pusd v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "$%lld.%02lld", static_cast<long long>(v / 1'000'000'000'000LL),
                static_cast<long long>((v % 1'000'000'000'000LL) / 10'000'000'000LL));
  return buf;
}

std::string describe(const budget_limit& l) {
  return std::string(l.scope == budget_scope::key ? "key " : "team ") + l.name +
         (l.period == budget_period::day ? " daily" : " monthly") + " budget (" + usd(l.limit) + ")";
}

bool applies(const budget_limit& l, const budget_subject& who) {
  return l.scope == budget_scope::key ? l.name == who.key : (!who.team.empty() && l.name == who.team);
}

}  // namespace

budget_store::budget_store(std::vector<budget_limit> limits, int utc_offset_minutes)
    : limits_(std::move(limits)), offset_minutes_(utc_offset_minutes) {}

std::int32_t budget_store::day_of(time_point t) const {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count() +
           static_cast<std::int64_t>(offset_minutes_) * 60;
  return static_cast<std::int32_t>(s >= 0 ? s / 86400 : (s - 86399) / 86400);
}

std::int32_t budget_store::month_of(time_point t) const {
  std::chrono::year_month_day ymd{std::chrono::sys_days{std::chrono::days{day_of(t)}}};
  return static_cast<int>(ymd.year()) * 12 + static_cast<int>(static_cast<unsigned>(ymd.month())) - 1;
}

budget_store::account& budget_store::acct(budget_scope s, const std::string& name, budget_period p,
                                          std::int32_t period_id) {
  auto& a = accounts_[{static_cast<int>(s), name, static_cast<int>(p)}];
  if (a.period_id != period_id) {
    // A new day or month: old spend no longer counts; reservations made in the old period are
    // settled against it (see settle), so only this period's reservations are kept.
    if (period_id > a.period_id) {
      a.period_id = period_id;
      a.spent = 0;
      a.reserved = 0;
    }
  }
  return a;
}

budget_verdict budget_store::reserve(const budget_subject& who, pusd worst_case, time_point now) {
  budget_verdict v;
  std::int32_t day = day_of(now), month = month_of(now);
  std::lock_guard lock(mu_);
  std::vector<std::pair<const budget_limit*, account*>> hits;
  for (const auto& l : limits_) {
    if (!applies(l, who)) continue;
    account& a = acct(l.scope, l.name, l.period, l.period == budget_period::day ? day : month);
    hits.emplace_back(&l, &a);
    if (a.spent + a.reserved + worst_case > l.limit) {
      if (l.hard) {
        v.allowed = false;
        v.exhausted = describe(l);
        return v;  // nothing reserved anywhere
      }
      v.soft_exceeded = true;
      if (v.exhausted.empty()) v.exhausted = describe(l);
    }
  }
  if (hits.empty()) return v;
  // Accounts are shared by scope+name+period; several limits can point at one account only if the
  // config lists the same budget twice, which it rejects, so each is charged once.
  for (auto& [l, a] : hits) a->reserved += worst_case;
  v.r.id = next_id_++;
  open_[v.r.id] = {who, worst_case, day, month};
  return v;
}

budget_verdict budget_store::check(const budget_subject& who, time_point now) {
  budget_verdict v;
  std::int32_t day = day_of(now), month = month_of(now);
  std::lock_guard lock(mu_);
  for (const auto& l : limits_) {
    if (!applies(l, who)) continue;
    account& a = acct(l.scope, l.name, l.period, l.period == budget_period::day ? day : month);
    if (a.spent + a.reserved < l.limit) continue;
    if (l.hard) {
      v.allowed = false;
      v.exhausted = describe(l);
      return v;
    }
    v.soft_exceeded = true;
    if (v.exhausted.empty()) v.exhausted = describe(l);
  }
  return v;
}

void budget_store::settle(reservation r, pusd actual, time_point now) {
  (void)now;
  close_reservation(r, actual);
}

void budget_store::release(reservation r) { close_reservation(r, 0); }

// Removes the reservation from every account it was made against and charges `actual` there
// (charged to the period the request started in; a period that has rolled over keeps nothing).
void budget_store::close_reservation(reservation r, pusd actual) {
  if (!r.id) return;
  std::lock_guard lock(mu_);
  auto it = open_.find(r.id);
  if (it == open_.end()) return;
  const open_reservation o = it->second;
  open_.erase(it);
  for (const auto& l : limits_) {
    if (!applies(l, o.who)) continue;
    std::int32_t pid = l.period == budget_period::day ? o.day : o.month;
    auto& a = accounts_[{static_cast<int>(l.scope), l.name, static_cast<int>(l.period)}];
    if (a.period_id == pid) {
      a.reserved -= o.amount;
      a.spent += actual;
    }
  }
}

void budget_store::seed(budget_scope scope, const std::string& name, pusd day_spent, pusd month_spent, time_point now) {
  std::lock_guard lock(mu_);
  acct(scope, name, budget_period::day, day_of(now)).spent += day_spent;
  acct(scope, name, budget_period::month, month_of(now)).spent += month_spent;
}

std::optional<budget_store::usage> budget_store::state(budget_scope scope, const std::string& name,
                                                       budget_period period, time_point now) const {
  std::lock_guard lock(mu_);
  const budget_limit* lim = nullptr;
  for (const auto& l : limits_)
    if (l.scope == scope && l.name == name && l.period == period) lim = &l;
  if (!lim) return std::nullopt;
  usage u;
  u.limit = lim->limit;
  auto it = accounts_.find({static_cast<int>(scope), name, static_cast<int>(period)});
  std::int32_t pid = period == budget_period::day ? day_of(now) : month_of(now);
  if (it != accounts_.end() && it->second.period_id == pid) {
    u.spent = it->second.spent;
    u.reserved = it->second.reserved;
  }
  return u;
}

std::size_t budget_store::open_reservations() const {
  std::lock_guard lock(mu_);
  return open_.size();
}

// ---- rate limits ---------------------------------------------------------------------------------

rate_limiter::rate_limiter(std::vector<rate_limit> limits) : limits_(std::move(limits)) {}

rate_verdict rate_limiter::take(const budget_subject& who, std::int64_t tokens, time_point now) {
  rate_verdict v;
  std::lock_guard lock(mu_);
  struct pending {
    bucket* b;
    double amount;
  };
  std::vector<pending> takes;
  double worst_wait = 0;
  for (std::size_t i = 0; i < limits_.size(); ++i) {
    const auto& l = limits_[i];
    bool hit = l.scope == budget_scope::key ? l.name == who.key : (!who.team.empty() && l.name == who.team);
    if (!hit) continue;
    for (int kind = 0; kind < 2; ++kind) {
      std::int64_t per_min = kind == 0 ? l.requests_per_minute : l.tokens_per_minute;
      if (per_min <= 0) continue;
      double amount = kind == 0 ? 1.0 : static_cast<double>(std::max<std::int64_t>(0, tokens));
      bucket& b = buckets_[{i, kind}];
      double cap = static_cast<double>(per_min);
      if (!b.init) {
        b.init = true;
        b.level = cap;
        b.capacity = cap;
        b.last = now;
      }
      double elapsed_min = std::chrono::duration<double>(now - b.last).count() / 60.0;
      if (elapsed_min > 0) {
        b.level = std::min(cap, b.level + elapsed_min * cap);
        b.last = now;
      }
      // A request larger than the whole bucket can never pass: refuse it with a full-refill wait.
      double need = std::min(amount, cap);
      if (b.level < need) {
        double wait_s = (need - b.level) / cap * 60.0;
        if (wait_s > worst_wait || v.allowed) {
          worst_wait = std::max(worst_wait, wait_s);
          v.limit = std::string(l.scope == budget_scope::key ? "key " : "team ") + l.name + ": " +
                    std::to_string(per_min) + (kind == 0 ? " requests per minute" : " tokens per minute");
        }
        v.allowed = false;
        continue;
      }
      takes.push_back({&b, need});
    }
  }
  if (!v.allowed) {
    v.retry_after_s = std::max(1, static_cast<int>(std::ceil(worst_wait)));
    return v;
  }
  for (auto& t : takes) t.b->level -= t.amount;
  return v;
}

}  // namespace gw::policies
