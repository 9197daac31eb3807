// Integration: the ledger promise under SIGKILL. `tollgate serve` writes every model request to
// <data_dir>/ledger before the last byte of its response is sent, so killing the process never
// loses a request that a client saw complete; no request id is ever recorded twice (also across a
// crash and restart); and the daily aggregates always equal the entries (same atomic batch).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ledger/ledger.h"
#include "tests/support/fake_upstream.h"
#include "tests/support/process.h"
#include "tests/support/test_client.h"
#include "tests/support/test_env.h"

using namespace gw::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

struct scope_exit {
  std::function<void()> fn;
  ~scope_exit() {
    if (fn) fn();
  }
};

bool stream_complete(const std::string& body) {
  std::string_view b(body);
  while (!b.empty() && (b.back() == '\n' || b.back() == '\r' || b.back() == ' ')) b.remove_suffix(1);
  return b.ends_with("data: [DONE]");
}

const std::string chat_body = R"({"model":"m","messages":[{"role":"user","content":"count to three"}]})";
const std::string stream_body =
    R"({"model":"m-stream","stream":true,"stream_options":{"include_usage":true},)"
    R"("messages":[{"role":"user","content":"count to three"}]})";

struct round_result {
  std::vector<std::string> ids;  // x-request-id of every response received completely with 200
  int completed_chat = 0, completed_stream = 0;
  int other_status = 0;      // complete responses with another status
  int missing_id = 0;        // complete 200 responses without x-request-id
  int incomplete_stream = 0; // 200 stream bodies that did not end with [DONE] (not counted)
  int aborted = 0;           // requests that threw on an open connection (cut by the kill)
  int refused = 0;           // connection attempts that failed (server already dead)
};

}  // namespace

TEST(crash, sigkill_under_load_loses_no_completed_request_and_keeps_aggregates_exact) {
  constexpr int rounds = 5;
  constexpr int clients = 8;
  const auto test_start = std::chrono::steady_clock::now();

  temp_dir d("crash");
  fake_upstream up_chat;    // non-streaming JSON replies (alias m)
  fake_upstream up_stream;  // SSE streams with a few chunks (alias m-stream)
  up_chat.set_default(scripted_reply::of(behaviour::ok));
  up_stream.set_default(scripted_reply::stream(4, 1ms));

  const auto port = free_port();
  const fs::path data = d.path / "data";
  const std::string prices = "    prices: {input_per_mtok: 0.15, output_per_mtok: 0.60}\n";
  std::string yaml;
  yaml += "server: {listen: \"127.0.0.1:" + std::to_string(port) +
          "\", io_threads: 2, access_log: false, log_level: warn, data_dir: \"" + data.string() + "\"}\n";
  yaml += "auth: none\n";
  yaml += "targets:\n";
  yaml += "  t:\n    base_url: " + up_chat.base_url() + "\n" + prices;
  yaml += "  ts:\n    base_url: " + up_stream.base_url() + "\n" + prices;
  yaml += "models:\n  m: [t]\n  m-stream: [ts]\n";
  const fs::path cfg = d.path / "tollgate.yaml";
  std::ofstream(cfg) << yaml;

  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  std::printf("[crash] seed %u, port %u, data %s\n", seed, port, data.c_str());
  RecordProperty("seed", std::to_string(seed));

  std::vector<round_result> results(rounds);
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string tag = "round" + std::to_string(round);
    std::vector<round_result> per_client(clients);
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    child proc;
    // On any exit path: kill the server first (clients then fail fast), then stop and join clients.
    scope_exit cleanup{[&] {
      proc.kill_and_reap();
      stop = true;
      for (auto& t : threads)
        if (t.joinable()) t.join();
    }};

    proc.pid = spawn_process(TOLLGATE_BIN, {"serve", "--config", cfg.string()}, d.path / (tag + ".stdout"),
                             d.path / (tag + ".stderr"));
    const bool healthy = wait_until(
        [&] {
          if (!proc.alive()) return true;  // exited early: stop waiting, reported below
          try {
            return http_request(port, "/healthz", "", {.method = "GET", .timeout = 1s}).status == 200;
          } catch (...) {
            return false;
          }
        },
        10s);
    ASSERT_TRUE(healthy && proc.alive()) << "serve did not come up; stderr:\n"
                                         << read_file(d.path / (tag + ".stderr"));

    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        round_result& r = per_client[c];
        std::unique_ptr<test_connection> conn;
        bool stream = (c % 2) == 1;
        while (!stop.load()) {
          if (!conn) {
            try {
              conn = std::make_unique<test_connection>(port);
            } catch (...) {
              ++r.refused;
              std::this_thread::sleep_for(2ms);
              continue;
            }
          }
          try {
            http_reply rep = conn->request("/v1/chat/completions", stream ? stream_body : chat_body,
                                           {.timeout = 3s});
            // The whole response was read (content-length reached / terminal chunk seen).
            const std::string id = rep.header("x-request-id");
            if (rep.status != 200) {
              ++r.other_status;
            } else if (id.empty()) {
              ++r.missing_id;
            } else if (stream && !stream_complete(rep.body)) {
              ++r.incomplete_stream;
            } else {
              r.ids.push_back(id);
              ++(stream ? r.completed_stream : r.completed_chat);
            }
            if (rep.header("connection") == "close") conn.reset();
          } catch (...) {
            ++r.aborted;
            conn.reset();
          }
          stream = !stream;
        }
      });
    }

    const auto kill_after = std::chrono::milliseconds(std::uniform_int_distribution<int>(200, 800)(rng));
    std::this_thread::sleep_for(kill_after);
    const bool alive_at_kill = proc.alive();
    const int ws = proc.kill_and_reap();
    // Clients were sending when the kill landed; now let them notice and stop.
    std::this_thread::sleep_for(20ms);
    stop = true;
    for (auto& t : threads) t.join();
    threads.clear();

    EXPECT_TRUE(alive_at_kill && WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL)
        << "serve was not running until the kill; stderr:\n" << read_file(d.path / (tag + ".stderr"));

    round_result& rr = results[round];
    for (auto& r : per_client) {
      rr.ids.insert(rr.ids.end(), r.ids.begin(), r.ids.end());
      rr.completed_chat += r.completed_chat;
      rr.completed_stream += r.completed_stream;
      rr.other_status += r.other_status;
      rr.missing_id += r.missing_id;
      rr.incomplete_stream += r.incomplete_stream;
      rr.aborted += r.aborted;
      rr.refused += r.refused;
    }
    std::printf("[crash] round %d: killed after %lld ms; completed %zu (chat %d, stream %d); "
                "other status %d, missing id %d, incomplete streams %d, aborted by the kill %d, refused after it %d\n",
                round, static_cast<long long>(kill_after.count()), rr.ids.size(), rr.completed_chat,
                rr.completed_stream, rr.other_status, rr.missing_id, rr.incomplete_stream, rr.aborted, rr.refused);
    RecordProperty("completed_round_" + std::to_string(round), static_cast<int>(rr.ids.size()));
    EXPECT_GT(rr.completed_chat, 0) << "no non-streaming request completed in round " << round;
    EXPECT_GT(rr.completed_stream, 0) << "no streaming request completed in round " << round;
    EXPECT_EQ(rr.other_status, 0);
    EXPECT_EQ(rr.missing_id, 0);
  }

  int aborted_total = 0;
  for (const auto& rr : results) aborted_total += rr.aborted;
  EXPECT_GT(aborted_total, 0) << "no kill ever cut a request in flight";

  // ---- The ledger after the last crash (opened directly: RocksDB recovers from its WAL). ----
  gw::ledger::status st;
  auto led = gw::ledger::ledger::open((data / "ledger").string(), {}, &st);
  ASSERT_TRUE(led) << st.message;

  // 1. Every completed response is in the ledger; no id was handed out twice to clients.
  std::unordered_map<std::string, int> id_round;
  std::size_t completed_total = 0, missing = 0;
  for (int round = 0; round < rounds; ++round) {
    for (const auto& id : results[round].ids) {
      ++completed_total;
      auto [it, fresh] = id_round.emplace(id, round);
      EXPECT_TRUE(fresh) << "request id " << id << " seen by clients in round " << it->second
                         << " and again in round " << round;
      gw::ledger::request_record e;
      auto g = led->get(id, &e);
      if (!g.ok()) {
        ++missing;
        ADD_FAILURE() << "completed response lost: request id " << id << " (round " << round
                      << ") not in the ledger: " << g.message;
        continue;
      }
      EXPECT_EQ(e.request_id, id);
      EXPECT_EQ(e.status, 200) << id;
      EXPECT_TRUE(e.priced) << id;
    }
  }

  // Scan every entry: no duplicate ids; sums for the aggregate comparison.
  std::unordered_set<std::string> scanned;
  std::uint64_t entries = 0, dups = 0, prompt = 0, completion = 0;
  gw::ledger::wide_pico_usd cost = 0;
  std::set<gw::ledger::day_index> days;
  const auto now = std::chrono::system_clock::now();
  st = led->scan(std::chrono::system_clock::time_point{}, now + std::chrono::hours(48),
                 [&](const gw::ledger::request_record& e) {
                   ++entries;
                   if (!scanned.insert(e.request_id).second) {
                     ++dups;
                     ADD_FAILURE() << "request id recorded twice in the ledger: " << e.request_id;
                   }
                   prompt += static_cast<std::uint64_t>(e.prompt_tokens);
                   completion += static_cast<std::uint64_t>(e.completion_tokens);
                   cost += e.cost_pusd;
                   days.insert(gw::ledger::to_day(e.started, 0));
                   return true;
                 });
  ASSERT_TRUE(st.ok()) << st.message;
  EXPECT_EQ(dups, 0u);
  for (const auto& [id, round] : id_round)
    EXPECT_TRUE(scanned.count(id)) << "completed id " << id << " (round " << round << ") missing from scan";
  EXPECT_GE(entries, completed_total);

  // 2. Aggregates equal the entries (dimension::total, summed over the days).
  const auto today = gw::ledger::to_day(now, 0);
  std::vector<gw::ledger::daily_row> rows;
  st = led->daily(today - 3, today + 3, gw::ledger::dimension::total, &rows);
  ASSERT_TRUE(st.ok()) << st.message;
  std::uint64_t agg_requests = 0, agg_prompt = 0, agg_completion = 0;
  gw::ledger::wide_pico_usd agg_cost = 0;
  for (const auto& r : rows) {
    agg_requests += r.c.requests;
    agg_prompt += r.c.prompt_tokens;
    agg_completion += r.c.completion_tokens;
    agg_cost += r.c.cost;
  }
  EXPECT_EQ(agg_requests, entries);
  EXPECT_EQ(agg_prompt, prompt);
  EXPECT_EQ(agg_completion, completion);
  EXPECT_TRUE(agg_cost == cost) << "aggregate cost " << gw::ledger::format_usd(agg_cost)
                                << " != entries' cost " << gw::ledger::format_usd(cost);
  EXPECT_GT(cost, 0);

  const auto secs =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - test_start);
  std::printf("[crash] completed responses %zu, ledger entries %llu (%llu never seen complete by a client), "
              "missing %zu, duplicates %llu; tokens %llu+%llu, cost %s USD; aggregate requests %llu over %zu "
              "day(s); %.1f s\n",
              completed_total, static_cast<unsigned long long>(entries),
              static_cast<unsigned long long>(entries - std::min<std::uint64_t>(entries, completed_total)), missing,
              static_cast<unsigned long long>(dups), static_cast<unsigned long long>(prompt),
              static_cast<unsigned long long>(completion), gw::ledger::format_usd(cost).c_str(),
              static_cast<unsigned long long>(agg_requests), days.size(), secs.count() / 1000.0);
  RecordProperty("completed_total", static_cast<int>(completed_total));
  RecordProperty("ledger_entries", static_cast<int>(entries));
}
