// The RocksDB ledger against a real database in a temp directory.
#include "ledger/ledger.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "ledger/encoding.h"
#include "tests/support/test_env.h"

using namespace gw::ledger;
namespace fs = std::filesystem;
using namespace std::chrono;

namespace {

// A temp directory whose database lives at db().
struct db_dir : gw::test::temp_dir {
  db_dir() : temp_dir("ledger") {}
  std::string db() const { return (path / "db").string(); }
};

system_clock::time_point at(const char* day, int hour = 12) {
  return system_clock::time_point(days(*parse_day(day))) + hours(hour);
}

request_record make(std::string id, system_clock::time_point t, std::string target = "openai", std::string key = "app",
                    std::string team = "search", std::int64_t cost = 1000, int status = 200) {
  request_record r;
  r.request_id = std::move(id);
  r.started = t;
  r.target = std::move(target);
  r.model = "gpt-4o-mini";
  r.route = "gpt-4o-mini";
  r.key_name = std::move(key);
  r.team = std::move(team);
  r.endpoint = "/v1/chat/completions";
  r.status = status;
  r.prompt_tokens = 10;
  r.completion_tokens = 5;
  r.cached_prompt_tokens = 2;
  r.cost_pusd = cost;
  r.priced = true;
  r.latency = milliseconds(120);
  r.ttft = milliseconds(30);
  return r;
}

std::unique_ptr<ledger> must_open(const std::string& path, options o = {}) {
  status st;
  auto l = ledger::open(path, o, &st);
  EXPECT_TRUE(l) << st.message;
  return l;
}

}  // namespace

TEST(ledger, records_round_trip_and_are_exactly_once_across_restart) {
  db_dir d;
  {
    auto l = must_open(d.db());
    auto r = make("tg-1", at("2026-11-20"));
    r.client_request_id = "client-x";
    r.reason = "alias gpt-4o-mini -> openai";
    r.usage_estimated = true;
    r.stream = true;
    ASSERT_TRUE(l->record_sync(r).ok());
    EXPECT_EQ(l->record_sync(make("tg-1", at("2026-11-21"))).c, status::code::duplicate);
    request_record back;
    ASSERT_TRUE(l->get("tg-1", &back).ok());
    EXPECT_EQ(back.client_request_id, "client-x");
    EXPECT_EQ(back.reason, r.reason);
    EXPECT_TRUE(back.usage_estimated && back.stream && back.priced);
    EXPECT_EQ(back.cost_pusd, 1000);
    EXPECT_EQ(back.ttft, milliseconds(30));
    EXPECT_EQ(duration_cast<microseconds>(back.started.time_since_epoch()),
              duration_cast<microseconds>(r.started.time_since_epoch()));
  }
  auto l = must_open(d.db());
  EXPECT_EQ(l->record_sync(make("tg-1", at("2026-11-22"))).c, status::code::duplicate);
  std::vector<daily_row> rows;
  ASSERT_TRUE(l->daily(*parse_day("2026-11-01"), *parse_day("2026-11-30"), dimension::total, &rows).ok());
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].c.requests, 1u);
  EXPECT_EQ(rows[0].c.estimated_requests, 1u);
}

TEST(ledger, duplicate_ids_within_one_group_commit_are_refused) {
  db_dir d;
  auto l = must_open(d.db());
  std::atomic<int> ok{0}, dup{0};
  for (int i = 0; i < 50; ++i)
    l->record(make("same", at("2026-11-20")), [&](const status& s) { (s.ok() ? ok : dup)++; });
  ASSERT_TRUE(l->flush().ok());
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(dup.load(), 49);
}

TEST(ledger, aggregates_equal_the_sum_of_entries_on_random_data) {
  db_dir d;
  auto l = must_open(d.db());
  std::mt19937_64 rng(1234);
  const char* targets[] = {"openai", "groq", "local", ""};
  const char* keys[] = {"a", "b", "c"};
  const char* teams[] = {"x", "y", ""};
  std::vector<request_record> all;
  std::vector<std::thread> writers;
  std::mutex mu;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      std::mt19937_64 r(rng() + static_cast<unsigned>(w));
      for (int i = 0; i < 500; ++i) {
        auto rec = make("w" + std::to_string(w) + "-" + std::to_string(i),
                        at("2026-11-01") + minutes(static_cast<int>(r() % (60 * 24 * 10))), targets[r() % 4],
                        keys[r() % 3], teams[r() % 3], static_cast<std::int64_t>(r() % 5'000'000'000ULL),
                        (r() % 10) ? 200 : 502);
        rec.prompt_tokens = static_cast<std::int64_t>(r() % 100000);
        rec.completion_tokens = static_cast<std::int64_t>(r() % 5000);
        rec.cached_prompt_tokens = rec.prompt_tokens / 3;
        rec.priced = (r() % 7) != 0;
        rec.latency = microseconds(static_cast<std::int64_t>(r() % 60'000'000));
        {
          std::lock_guard lock(mu);
          all.push_back(rec);
        }
        l->record(rec, nullptr);
      }
    });
  }
  for (auto& t : writers) t.join();
  ASSERT_TRUE(l->flush().ok());
  EXPECT_EQ(l->entries_written(), 2000u);

  for (auto dim : {dimension::total, dimension::target, dimension::key, dimension::team, dimension::model, dimension::route}) {
    std::map<std::pair<day_index, std::string>, counters> expect;
    for (const auto& r : all) {
      std::string group;
      switch (dim) {
        case dimension::total: break;
        case dimension::target: group = r.target; break;
        case dimension::key: group = r.key_name; break;
        case dimension::team: group = r.team; break;
        case dimension::model: group = r.model; break;
        case dimension::route: group = r.route; break;
      }
      expect[{to_day(r.started, 0), group}].add(r);
    }
    std::vector<daily_row> rows;
    ASSERT_TRUE(l->daily(*parse_day("2026-10-01"), *parse_day("2026-12-31"), dim, &rows).ok());
    ASSERT_EQ(rows.size(), expect.size()) << to_string(dim);
    for (const auto& row : rows) {
      const auto& e = expect.at({row.day, row.group});
      EXPECT_EQ(row.c.requests, e.requests);
      EXPECT_EQ(row.c.failed, e.failed);
      EXPECT_EQ(row.c.prompt_tokens, e.prompt_tokens);
      EXPECT_EQ(row.c.completion_tokens, e.completion_tokens);
      EXPECT_EQ(row.c.cached_prompt_tokens, e.cached_prompt_tokens);
      EXPECT_TRUE(row.c.cost == e.cost);
      EXPECT_EQ(row.c.unpriced_requests, e.unpriced_requests);
      EXPECT_EQ(row.c.latency.counts, e.latency.counts);
    }
  }
  // The raw entries scan back in time order, all of them.
  std::size_t n = 0;
  system_clock::time_point prev{};
  ASSERT_TRUE(l->scan(at("2026-10-01"), at("2026-12-31"), [&](const request_record& r) {
                   EXPECT_GE(r.started, prev);
                   prev = r.started;
                   ++n;
                   return true;
                 }).ok());
  EXPECT_EQ(n, 2000u);
}

TEST(ledger, spend_state_is_rebuilt_when_reopened) {
  db_dir d;
  auto now = system_clock::now();
  {
    auto l = must_open(d.db());
    ASSERT_TRUE(l->record_sync(make("a", now, "openai", "k1", "t1", 1'000'000)).ok());
    ASSERT_TRUE(l->record_sync(make("b", now, "openai", "k1", "t2", 2'000'000)).ok());
    EXPECT_TRUE(l->key_spend("k1", now).day == 3'000'000);
  }
  auto l = must_open(d.db());
  auto s = l->key_spend("k1", now);
  EXPECT_TRUE(s.day == 3'000'000);
  EXPECT_TRUE(s.month == 3'000'000);
  EXPECT_TRUE(l->team_spend("t2", now).day == 2'000'000);
  EXPECT_TRUE(l->key_spend("nobody", now).day == 0);
}

TEST(ledger, prune_removes_old_entries_but_keeps_aggregates) {
  db_dir d;
  auto l = must_open(d.db());
  ASSERT_TRUE(l->record_sync(make("old", at("2026-10-01"))).ok());
  ASSERT_TRUE(l->record_sync(make("new", at("2026-11-20"))).ok());
  std::uint64_t removed = 0;
  ASSERT_TRUE(l->prune(at("2026-11-01"), &removed).ok());
  EXPECT_EQ(removed, 1u);
  request_record r;
  EXPECT_EQ(l->get("old", &r).c, status::code::not_found);
  EXPECT_TRUE(l->get("new", &r).ok());
  std::vector<daily_row> rows;
  ASSERT_TRUE(l->daily(*parse_day("2026-10-01"), *parse_day("2026-10-01"), dimension::total, &rows).ok());
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].c.requests, 1u);
}

TEST(ledger, checkpoint_and_read_only_view) {
  db_dir d;
  auto l = must_open(d.db());
  ASSERT_TRUE(l->record_sync(make("one", at("2026-11-20"))).ok());
  auto cp = (d.path / "backup").string();
  ASSERT_TRUE(l->checkpoint(cp).ok());
  {
    auto copy = must_open(cp);
    request_record r;
    EXPECT_TRUE(copy->get("one", &r).ok());
  }
  options ro;
  ro.read_only = true;
  auto view = must_open(d.db(), ro);
  request_record r;
  EXPECT_TRUE(view->get("one", &r).ok());
  ASSERT_TRUE(l->record_sync(make("two", at("2026-11-21"))).ok());
  ASSERT_TRUE(view->catch_up().ok());
  EXPECT_TRUE(view->get("two", &r).ok());
  EXPECT_FALSE(view->record_sync(make("three", at("2026-11-21"))).ok());
}

TEST(ledger_encoding, damaged_values_are_detected_not_read_as_zero) {
  counters c;
  c.add(make("x", at("2026-11-20")));
  auto bytes = encoding::encode_counters(c);
  counters back;
  ASSERT_TRUE(encoding::decode_counters(bytes, &back));
  EXPECT_EQ(back.requests, 1u);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    auto bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    EXPECT_FALSE(encoding::decode_counters(bad, &back)) << "flip at " << i;
  }
  EXPECT_FALSE(encoding::decode_counters("", &back));
  auto e = encoding::encode_entry(make("y", at("2026-11-20")));
  e[e.size() / 2] ^= 0x10;
  request_record r;
  EXPECT_FALSE(encoding::decode_entry(e, &r));
}

TEST(ledger_histogram, quantiles_within_the_stated_error) {
  latency_histogram h;
  std::vector<double> values;
  std::mt19937 rng(7);
  std::lognormal_distribution<double> dist(std::log(200.0), 1.0);  // ms
  for (int i = 0; i < 20000; ++i) {
    double ms = dist(rng);
    values.push_back(ms);
    h.add(microseconds(static_cast<std::int64_t>(ms * 1000)));
  }
  std::sort(values.begin(), values.end());
  for (double p : {0.5, 0.95, 0.99}) {
    double truth = values[static_cast<std::size_t>(std::ceil(p * values.size())) - 1];
    double est = *h.quantile_ms(p);
    EXPECT_NEAR(est / truth, 1.0, 0.045) << "p" << p;
  }
  EXPECT_FALSE(latency_histogram().quantile_ms(0.5));
}

TEST(ledger_days, parse_format_and_offsets) {
  EXPECT_EQ(day_string(*parse_day("2026-11-25")), "2026-11-25");
  EXPECT_FALSE(parse_day("2026-02-30"));
  EXPECT_FALSE(parse_day("26-11-25"));
  auto t = at("2026-11-25", 23);
  EXPECT_EQ(day_string(to_day(t, 0)), "2026-11-25");
  EXPECT_EQ(day_string(to_day(t, 120)), "2026-11-26");
  EXPECT_EQ(day_string(to_day(at("2026-11-25", 1), -180)), "2026-11-24");
}

TEST(ledger, spend_rebuild_uses_the_injected_clock_and_month_boundaries) {
  db_dir d;
  {
    auto l = must_open(d.db());
    ASSERT_TRUE(l->record_sync(make("oct31", at("2026-10-31", 23), "openai", "k", "t", 5)).ok());
    ASSERT_TRUE(l->record_sync(make("nov01", at("2026-11-01", 1), "openai", "k", "t", 7)).ok());
    ASSERT_TRUE(l->record_sync(make("nov02", at("2026-11-02", 1), "openai", "k", "t", 11)).ok());
  }
  options o;
  o.now = [] { return at("2026-11-02", 12); };
  auto l = must_open(d.db(), o);
  auto s = l->key_spend("k", at("2026-11-02", 12));
  EXPECT_TRUE(s.day == 11);
  EXPECT_TRUE(s.month == 18);  // October's 5 is not in November
  options o2;
  o2.now = [] { return at("2026-10-31", 12); };
  l.reset();
  auto l2 = must_open(d.db(), o2);
  EXPECT_TRUE(l2->key_spend("k", at("2026-10-31", 12)).day == 5);
}
