// Per-request scoring cost: complexity features + score, and PII detection, on realistic prompts.
// Goal (issue): features + score + privacy detection <= 20 us per 1 KB prompt on one core.
//   scoring_bench [--benchmark_out=bench/results/scoring.json --benchmark_out_format=json]
// Time is microseconds per call; counters: bytes_per_second (prompt bytes), prompt_bytes; the
// combined 1 KB case also carries goal_us, and a final line prints its figure beside the goal.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "policies/complexity.h"
#include "policies/privacy.h"

namespace {

constexpr double goal_us_per_kb = 20.0;

// A word problem, a code snippet and a question about it; repeated to the wanted size. The PII
// variant plants an e-mail, a phone number, a card number and an IP address in each repetition.
std::string make_prompt(std::size_t bytes, bool with_pii) {
  std::string unit =
      "A train leaves the station at 3:15 pm travelling at 80 km/h. A second train leaves 45 minutes "
      "later on a parallel track at 110 km/h. Each train carries 240 passengers and tickets cost $12.50 "
      "per passenger. Calculate how long after the first train departs the second one catches up, and "
      "how much money the two trains collect in total.\n"
      "```python\n"
      "def catch_up(v1, v2, delay):\n"
      "    if v2 <= v1:\n"
      "        return None\n"
      "    return v1 * delay / (v2 - v1)\n"
      "```\n"
      "Why does this function return None for some inputs? Explain step by step.\n";
  if (with_pii)
    unit +=
        "Send the answer to jane.doe@example.com or call +1 (415) 555-0132; my card is "
        "4111 1111 1111 1111 and the server is at 192.168.10.24.\n";
  std::string text;
  while (text.size() < bytes) text += unit;
  text.resize(bytes);
  return text;
}

const gw::policies::complexity_model& model() {
  static const gw::policies::complexity_model m = [] {
    const std::string path = std::string(TOLLGATE_SOURCE_DIR) + "/policies/complexity_model.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("scoring_bench: cannot read " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    return gw::policies::parse_complexity_model(ss.str());
  }();
  return m;
}

using messages = std::vector<std::pair<std::string, std::string>>;

messages chat(const std::string& prompt) { return {{"system", "You are a helpful assistant."}, {"user", prompt}}; }

void set_counters(benchmark::State& state, std::size_t bytes) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes));
  state.counters["prompt_bytes"] = static_cast<double>(bytes);
}

void bm_complexity(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const messages msgs = chat(make_prompt(bytes, false));
  const auto& m = model();
  for (auto _ : state) {
    double s = gw::policies::complexity_score(gw::policies::extract_features(msgs, false, false, 0), m);
    benchmark::DoNotOptimize(s);
  }
  set_counters(state, bytes);
}

void bm_pii(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const std::string text = make_prompt(bytes, true);
  for (auto _ : state) {
    auto found = gw::policies::detect_pii(text);
    benchmark::DoNotOptimize(found.data());
  }
  set_counters(state, bytes);
}

double combined_1kb_us = 0;

void bm_scoring_total(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const std::string text = make_prompt(bytes, true);
  const messages msgs = chat(text);
  const auto& m = model();
  for (auto _ : state) {
    double s = gw::policies::complexity_score(gw::policies::extract_features(msgs, false, false, 0), m);
    auto found = gw::policies::detect_pii(text);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(found.data());
  }
  set_counters(state, bytes);
  state.counters["goal_us"] = goal_us_per_kb * static_cast<double>(bytes) / 1024.0;
}

BENCHMARK(bm_complexity)->Name("extract_features+complexity_score")->Arg(1024)->Arg(32 * 1024)->Unit(benchmark::kMicrosecond);
BENCHMARK(bm_pii)->Name("detect_pii")->Arg(1024)->Arg(32 * 1024)->Unit(benchmark::kMicrosecond);
BENCHMARK(bm_scoring_total)->Name("features+score+detect_pii")->Arg(1024)->Unit(benchmark::kMicrosecond);

// Console reporter that remembers the combined 1 KB figure so main() can print it beside the goal.
class goal_reporter : public benchmark::ConsoleReporter {
 public:
  goal_reporter() : ConsoleReporter(isatty(STDOUT_FILENO) ? OO_Defaults : OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs)
      if (r.run_name.str() == "features+score+detect_pii/1024" && r.iterations > 0 &&
          (r.run_type == Run::RT_Iteration || r.aggregate_name == "median"))
        combined_1kb_us = r.GetAdjustedCPUTime();  // in the run's time unit (microseconds)
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  goal_reporter console;
  benchmark::RunSpecifiedBenchmarks(&console);
  benchmark::Shutdown();
  if (combined_1kb_us > 0)
    std::printf("features+score+detect_pii, 1 KB prompt: %.2f us/call (goal <= %.0f us): %s\n", combined_1kb_us,
                goal_us_per_kb, combined_1kb_us <= goal_us_per_kb ? "MET" : "NOT MET");
  return 0;
}
