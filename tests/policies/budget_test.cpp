#include "policies/budget.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

using namespace gw::policies;
using namespace std::chrono;

namespace {
constexpr pusd dollar = 1'000'000'000'000LL;
gw::policies::time_point at(int day, int hour = 12) { return gw::policies::time_point(days(20000 + day)) + hours(hour); }
}  // namespace

TEST(budget, reserve_settle_release_and_the_named_budget_that_ran_out) {
  budget_store b({{budget_scope::team, "search", budget_period::day, 1 * dollar, true}});
  budget_subject who{"app", "search"};
  auto v1 = b.reserve(who, dollar / 2, at(0));
  ASSERT_TRUE(v1.allowed);
  auto v2 = b.reserve(who, dollar / 2, at(0));
  ASSERT_TRUE(v2.allowed);
  auto v3 = b.reserve(who, 1, at(0));  // 1 p$ over
  EXPECT_FALSE(v3.allowed);
  EXPECT_EQ(v3.exhausted, "team search daily budget ($1.00)");
  b.settle(v1.r, dollar / 10, at(0));  // real cost far below the worst case
  b.release(v2.r);                     // failed upstream call
  auto s = b.state(budget_scope::team, "search", budget_period::day, at(0));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->spent, dollar / 10);
  EXPECT_EQ(s->reserved, 0);
  EXPECT_TRUE(b.reserve(who, dollar / 2, at(0)).allowed);
  EXPECT_EQ(b.open_reservations(), 1u);
  // Other teams and keys are not affected; a new day starts from zero.
  EXPECT_TRUE(b.reserve({"x", "other"}, 5 * dollar, at(0)).allowed);
  EXPECT_EQ(b.reserve({"x", "other"}, 5 * dollar, at(0)).r.id, 0u);  // no budget applies: nothing reserved
  EXPECT_TRUE(b.reserve(who, 9 * dollar / 10, at(1)).allowed);
}

TEST(budget, soft_limits_allow_and_flag) {
  budget_store b({{budget_scope::key, "app", budget_period::month, dollar, false}});
  auto v = b.reserve({"app", ""}, 2 * dollar, at(0));
  EXPECT_TRUE(v.allowed);
  EXPECT_TRUE(v.soft_exceeded);
  EXPECT_EQ(v.exhausted, "key app monthly budget ($1.00)");
}

TEST(budget, seeded_spend_from_the_ledger_counts) {
  budget_store b({{budget_scope::key, "app", budget_period::day, dollar, true}});
  b.seed(budget_scope::key, "app", 9 * dollar / 10, 9 * dollar / 10, at(0));
  EXPECT_FALSE(b.reserve({"app", ""}, dollar / 5, at(0)).allowed);
  EXPECT_TRUE(b.reserve({"app", ""}, dollar / 20, at(0)).allowed);
}

TEST(budget, two_hundred_concurrent_requests_never_overshoot_by_more_than_one_reservation) {
  const pusd worst = dollar / 50;  // $0.02 reserved per request
  budget_store b({{budget_scope::team, "t", budget_period::day, dollar, true}});
  std::atomic<int> allowed{0}, refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 200; ++i) {
    threads.emplace_back([&, i] {
      std::mt19937_64 rng(static_cast<unsigned>(i));
      auto v = b.reserve({"k" + std::to_string(i), "t"}, worst, at(0));
      if (!v.allowed) {
        ++refused;
        return;
      }
      ++allowed;
      std::this_thread::sleep_for(microseconds(rng() % 500));
      if (rng() % 5 == 0) b.release(v.r);                                  // failed call
      else b.settle(v.r, static_cast<pusd>(rng() % (worst + 1)), at(0));  // real cost <= worst
    });
  }
  for (auto& t : threads) t.join();
  auto s = b.state(budget_scope::team, "t", budget_period::day, at(0));
  ASSERT_TRUE(s);
  EXPECT_LE(s->spent, dollar + worst);
  EXPECT_EQ(s->reserved, 0);                 // every reservation settled or released
  EXPECT_EQ(b.open_reservations(), 0u);
  EXPECT_GT(refused.load(), 0);              // the budget really bound
  EXPECT_EQ(allowed.load() + refused.load(), 200);
}

TEST(rate_limits, requests_and_tokens_per_minute_with_retry_after) {
  rate_limiter r({{budget_scope::key, "app", 3, 0}, {budget_scope::team, "t", 0, 1000}});
  budget_subject who{"app", "t"};
  auto t0 = at(0);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(r.take(who, 10, t0).allowed);
  auto v = r.take(who, 10, t0);
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.limit, "key app: 3 requests per minute");
  EXPECT_EQ(v.retry_after_s, 20);  // one request refills in 60/3 s
  EXPECT_TRUE(r.take(who, 10, t0 + seconds(20)).allowed);
  // Tokens: 1000 per minute for team t, shared by every key of the team.
  auto t1 = t0 + seconds(20);
  EXPECT_TRUE(r.take({"other", "t"}, 980, t1).allowed);  // 990 left after the key app call above
  auto t = r.take({"other", "t"}, 100, t1);
  EXPECT_FALSE(t.allowed);
  EXPECT_EQ(t.limit, "team t: 1000 tokens per minute");
  EXPECT_GE(t.retry_after_s, 5);
  EXPECT_LE(t.retry_after_s, 7);
  // All-or-nothing: the refused call took nothing, so a small one still fits.
  EXPECT_TRUE(r.take({"other", "t"}, 5, t1).allowed);
}
