// Ledger benchmark: sustained recording rate, daily-report latency over many entries, disk bytes
// per entry. Prints a table with the goals beside the figures and writes JSON.
//   ledger_bench [entries=10000000] [threads=4] [out.json]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ledger/ledger.h"

using namespace gw::ledger;
using namespace std::chrono;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
  std::uint64_t n = argc > 1 ? std::stoull(argv[1]) : 10'000'000ULL;
  int threads = argc > 2 ? std::stoi(argv[2]) : 4;
  std::string out_json = argc > 3 ? argv[3] : "bench/results/ledger.json";
  auto dir = fs::temp_directory_path() / ("tollgate-ledger-bench-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  status st;
  auto l = ledger::open(dir.string(), {}, &st);
  if (!l) {
    std::fprintf(stderr, "open failed: %s\n", st.message.c_str());
    return 1;
  }
  const char* targets[] = {"openai-gpt-4o-mini", "openai-gpt-4o", "groq-llama-3.1-8b", "together-llama-3.3-70b", "local"};
  const char* keys[] = {"web", "batch", "search", "support", "ml", "ops", "mobile", "api"};
  auto day0 = system_clock::now() - days(29);
  std::atomic<std::uint64_t> acked{0}, failed{0};
  // Realistic ids and reasons: what the gateway writes.
  auto t0 = steady_clock::now();
  std::vector<std::thread> producers;
  for (int t = 0; t < threads; ++t) {
    producers.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<unsigned>(t) * 7919 + 1);
      std::uint64_t share = n / static_cast<std::uint64_t>(threads) + (static_cast<std::uint64_t>(t) < n % static_cast<std::uint64_t>(threads) ? 1 : 0);
      char id[40];
      // Like the gateway: a random 64-bit prefix per I/O thread, then a counter; start times move
      // forward with the traffic (30 days spread over the run).
      auto seed = static_cast<unsigned long long>(rng());
      for (std::uint64_t i = 0; i < share; ++i) {
        request_record r;
        std::snprintf(id, sizeof id, "tg-%016llx%02x%06llx", seed, t, static_cast<unsigned long long>(i & 0xffffff));
        if ((i & 0xffffff) == 0xffffff) seed = static_cast<unsigned long long>(rng());
        r.request_id = id;
        const char* target = targets[rng() % 5];
        r.target = target;
        r.model = target;
        r.route = target;
        r.key_name = keys[rng() % 8];
        r.team = keys[rng() % 4];
        r.endpoint = "/v1/chat/completions";
        r.reason = "alias -> " + std::string(target);
        r.status = rng() % 50 ? 200 : 502;
        r.started = day0 + microseconds(static_cast<std::int64_t>(
                                static_cast<double>(i) / static_cast<double>(share) * (30.0 * 86400 * 1e6)) +
                            static_cast<std::int64_t>(rng() % 1'000'000));
        r.prompt_tokens = static_cast<std::int64_t>(rng() % 4000);
        r.completion_tokens = static_cast<std::int64_t>(rng() % 800);
        r.cost_pusd = r.prompt_tokens * 150000 + r.completion_tokens * 600000;
        r.priced = true;
        r.latency = microseconds(static_cast<std::int64_t>(rng() % 5'000'000));
        r.ttft = microseconds(static_cast<std::int64_t>(rng() % 1'000'000));
        l->record(std::move(r), [&](const status& s) { (s.ok() ? acked : failed)++; });
        // Keep the queue bounded like real traffic would (the gateway waits for acks).
        while (i > acked.load() / static_cast<std::uint64_t>(threads) + 50'000)
          std::this_thread::sleep_for(microseconds(100));
      }
    });
  }
  for (auto& p : producers) p.join();
  l->flush();
  double record_s = duration<double>(steady_clock::now() - t0).count();
  double rate = static_cast<double>(acked.load()) / record_s;

  // Daily report over the whole 30 days by target (what `report daily` reads), best of 5.
  auto today = to_day(system_clock::now(), 0);
  double best_ms = 1e9;
  std::size_t rows_n = 0;
  for (int i = 0; i < 5; ++i) {
    std::vector<daily_row> rows;
    auto r0 = steady_clock::now();
    auto s = l->daily(today - 30, today, dimension::target, &rows);
    double ms = duration<double, std::milli>(steady_clock::now() - r0).count();
    if (!s.ok()) {
      std::fprintf(stderr, "daily failed: %s\n", s.message.c_str());
      return 1;
    }
    best_ms = std::min(best_ms, ms);
    rows_n = rows.size();
  }
  // Raw export speed: scan one day of entries.
  auto s0 = steady_clock::now();
  std::uint64_t scanned = 0;
  l->scan(day0 + days(10), day0 + days(11), [&](const request_record&) { ++scanned; return true; });
  double scan_s = duration<double>(steady_clock::now() - s0).count();
  l.reset();
  std::uint64_t bytes = 0;
  for (auto& f : fs::recursive_directory_iterator(dir))
    if (f.is_regular_file()) bytes += f.file_size();
  double per_entry = static_cast<double>(bytes) / static_cast<double>(acked.load());

  std::printf("%-34s %14s %14s\n", "measure", "value", "goal");
  std::printf("%-34s %14.0f %14s\n", "recording rate (entries/s)", rate, ">= 200000");
  std::printf("%-34s %14.2f %14s\n", "daily report, 30 days by target (ms)", best_ms, "< 100");
  std::printf("%-34s %14zu %14s\n", "  rows in that report", rows_n, "");
  std::printf("%-34s %14.0f %14s\n", "raw scan (entries/s)", static_cast<double>(scanned) / scan_s, "streaming");
  std::printf("%-34s %14.1f %14s\n", "disk bytes per entry", per_entry, "");
  std::printf("%-34s %14llu %14s\n", "entries recorded", static_cast<unsigned long long>(acked.load()), "");
  std::printf("%-34s %14llu %14s\n", "failed", static_cast<unsigned long long>(failed.load()), "0");
  fs::create_directories(fs::path(out_json).parent_path());
  std::ofstream(out_json) << "{\"bench\":\"ledger\",\"entries\":" << acked.load() << ",\"threads\":" << threads
                          << ",\"record_seconds\":" << record_s << ",\"entries_per_second\":" << rate
                          << ",\"daily_report_ms\":" << best_ms << ",\"daily_report_rows\":" << rows_n
                          << ",\"scan_entries_per_second\":" << static_cast<double>(scanned) / scan_s
                          << ",\"disk_bytes_per_entry\":" << per_entry << ",\"failed\":" << failed.load() << "}\n";
  fs::remove_all(dir);
  return failed.load() ? 1 : 0;
}
