// Local engine throughput on one GGUF model, measured like llama-bench: prompt processing (ppN: one
// N-token prompt in one step) and generation (tgN: N tokens decoded one per step from an empty
// cache, a fixed pseudo-random token fed back each step), on one sequence through the forward pass
// (model + kv_cache + forward_pass, no sampling), then through the engine (scheduler, continuous
// batching, greedy sampling, detokenisation): the same tg on one request, and pp / tg on --seqs
// concurrent requests (aggregate tokens/s). Memory: weight bytes, KV bytes, peak RSS per phase.
//
//   engine_bench MODEL.gguf [--threads 2] [--pp 512] [--tg 128] [--seqs 8] [--reps 3] [--mapped]
//                [--json bench/results/engine_X.json]
//
// Weights are read into huge pages, as `tollgate serve` loads them (local target `huge_pages:
// true`, the default); --mapped mmaps the file instead (`huge_pages: false`), for comparison.
//
// A warm-up run of each test comes first; each figure is the mean of --reps runs with their
// sample standard deviation. Prompts are pseudo-random token ids, different in every run and
// sequence, so the engine's prefix cache never shortens a prompt.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/ops.h"
#include "local_engine/engine.h"
#include "local_engine/forward.h"
#include "local_engine/gguf.h"
#include "local_engine/kv_cache.h"
#include "local_engine/model.h"

namespace {

namespace le = gw::local_engine;
using steady = std::chrono::steady_clock;

struct options {
  std::string model_path;
  std::string json_path;
  int threads = 2;
  int pp = 512;
  int tg = 128;
  int seqs = 8;
  int reps = 3;
  bool mapped = false;  // --mapped: mmap the file instead of reading it into huge pages
};

[[noreturn]] void die(const std::string& msg) {
  std::cerr << "engine_bench: " << msg << "\n";
  std::exit(1);
}

int parse_int(const char* flag, const char* value, int min) {
  char* end = nullptr;
  const long v = std::strtol(value, &end, 10);
  if (*end != '\0' || v < min || v > 1'000'000) die(std::string(flag) + ": bad value '" + value + "'");
  return static_cast<int>(v);
}

options parse_args(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--threads") o.threads = parse_int("--threads", value(), 1);
    else if (a == "--pp") o.pp = parse_int("--pp", value(), 1);
    else if (a == "--tg") o.tg = parse_int("--tg", value(), 2);
    else if (a == "--seqs") o.seqs = parse_int("--seqs", value(), 0);
    else if (a == "--reps") o.reps = parse_int("--reps", value(), 1);
    else if (a == "--json") o.json_path = value();
    else if (a == "--mapped") o.mapped = true;
    else if (!a.empty() && a[0] == '-') die("unknown option " + a);
    else if (o.model_path.empty()) o.model_path = a;
    else die("one model only");
  }
  if (o.model_path.empty()) {
    die("usage: engine_bench MODEL.gguf [--threads N] [--pp 512] [--tg 128] [--seqs 8] [--reps 3] [--mapped] "
        "[--json FILE]");
  }
  return o;
}

double seconds_since(steady::time_point t0) { return std::chrono::duration<double>(steady::now() - t0).count(); }

// ---- process facts ----

// A "Key:  value kB" line of /proc/self/status, in bytes.
int64_t proc_status_kb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::atoll(line.c_str() + key.size() + 1) * 1024;
  }
  return -1;
}

// Resets the peak RSS (VmHWM) so the next phase reports its own peak.
void reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
}

double load_1m() {
  std::ifstream in("/proc/loadavg");
  double v = -1;
  in >> v;
  return v;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  }
  return "unknown";
}

// llama_ftype names of general.file_type (the types `tollgate quantize` writes).
std::string file_type_name(const le::gguf_file& f) {
  const auto ft = f.get_int("general.file_type");
  if (!ft) return "unknown";
  switch (*ft) {
    case 0: return "F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 7: return "Q8_0";
    case 14: return "Q4_K_S";
    case 15: return "Q4_K_M";
    case 18: return "Q6_K";
    case 32: return "BF16";
    default: return "ftype " + std::to_string(*ft);
  }
}

// ---- statistics ----

struct result {
  std::string name;    // "pp512", "tg128", ...
  std::string path;    // "forward" or "engine"
  int sequences = 1;
  int tokens = 0;      // per sequence
  int64_t kv_bytes = 0;  // K/V of the tokens held at the end of a run
  std::vector<double> tps;  // one per repetition
  double mean() const {
    double s = 0;
    for (double v : tps) s += v;
    return tps.empty() ? 0 : s / static_cast<double>(tps.size());
  }
  double stddev() const {
    if (tps.size() < 2) return 0;
    const double m = mean();
    double s = 0;
    for (double v : tps) s += (v - m) * (v - m);
    return std::sqrt(s / static_cast<double>(tps.size() - 1));
  }
};

std::vector<int32_t> random_tokens(std::mt19937_64& rng, int64_t n_vocab, int n) {
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(n_vocab - 1));
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& v : t) v = dist(rng);
  return t;
}

// ---- phase 1: the forward pass on one sequence ----

struct forward_bench {
  const le::model& m;
  le::kv_cache& kv;
  le::forward_pass& fwd;
  std::mt19937_64 rng{42};
  std::vector<float> logits;

  // One n-token prompt in one step; returns tokens/s.
  double prompt(int n) {
    const auto tokens = random_tokens(rng, m.hp().n_vocab, n);
    const auto seq = kv.create_sequence();
    if (!kv.reserve(seq, n)) die("KV cache too small for " + std::to_string(n) + " tokens");
    le::forward_pass::seq_batch b{seq, tokens, 0, false};
    std::string error;
    const auto t0 = steady::now();
    if (!fwd.run({&b, 1}, logits, &error)) die("forward: " + error);
    const double dt = seconds_since(t0);
    kv.free_sequence(seq);
    return n / dt;
  }

  // n single-token steps from position 0; returns tokens/s.
  double generate(int n) {
    const auto tokens = random_tokens(rng, m.hp().n_vocab, n);
    const auto seq = kv.create_sequence();
    if (!kv.reserve(seq, n)) die("KV cache too small for " + std::to_string(n) + " tokens");
    std::string error;
    const auto t0 = steady::now();
    for (int i = 0; i < n; ++i) {
      le::forward_pass::seq_batch b{seq, {&tokens[static_cast<size_t>(i)], 1}, i, false};
      if (!fwd.run({&b, 1}, logits, &error)) die("forward: " + error);
    }
    const double dt = seconds_since(t0);
    kv.free_sequence(seq);
    return n / dt;
  }
};

// ---- phase 2: the engine (scheduler, continuous batching) ----

class engine_bench {
 public:
  engine_bench(le::engine& e, int64_t n_vocab) : e_(e), n_vocab_(n_vocab) {}

  // `seqs` requests of a `pp`-token prompt and one generated token, submitted together; returns
  // the prompt tokens per second from the first submit to the last request's end.
  double prompt(int seqs, int pp) {
    std::vector<std::vector<int32_t>> prompts;
    for (int s = 0; s < seqs; ++s) prompts.push_back(random_tokens(rng_, n_vocab_, pp));
    const auto t0 = steady::now();
    auto runs = run(prompts, 1);
    steady::time_point last_done = t0;
    for (const auto& r : runs) last_done = std::max(last_done, r.done);
    return static_cast<double>(seqs) * pp / std::chrono::duration<double>(last_done - t0).count();
  }

  // `seqs` requests of a 4-token prompt generating `tg` tokens each. Aggregate tokens/s over the
  // window where all of them are generating: from the last request's first token to the first
  // request's last token (tokens in between, over that time); where the requests never all
  // generate at once, over the whole span (every token after a request's first).
  double generate(int seqs, int tg) {
    std::vector<std::vector<int32_t>> prompts;
    for (int s = 0; s < seqs; ++s) prompts.push_back(random_tokens(rng_, n_vocab_, 4));
    auto runs = run(prompts, tg);
    steady::time_point start = steady::time_point::min(), end = steady::time_point::max();
    for (const auto& r : runs) {
      if (static_cast<int>(r.token_times.size()) != tg) {
        die("engine: a request generated " + std::to_string(r.token_times.size()) + " tokens, not " +
            std::to_string(tg));
      }
      start = std::max(start, r.token_times.front());
      end = std::min(end, r.token_times.back());
    }
    int64_t tokens = 0;
    for (const auto& r : runs) {
      for (auto t : r.token_times) tokens += (t > start && t <= end) ? 1 : 0;
    }
    const double dt = std::chrono::duration<double>(end - start).count();
    if (tokens > 0 && dt > 0) return static_cast<double>(tokens) / dt;
    // No such window: on a tiny model a request can finish before the last one starts generating.
    // Then all tokens over the whole span, first token to last.
    steady::time_point first = steady::time_point::max(), last = steady::time_point::min();
    for (const auto& r : runs) {
      first = std::min(first, r.token_times.front());
      last = std::max(last, r.token_times.back());
    }
    const double span = std::chrono::duration<double>(last - first).count();
    if (span <= 0) die("engine: no generation time to measure (too few tokens)");
    return static_cast<double>(seqs) * (tg - 1) / span;
  }

 private:
  struct request_run {
    std::vector<steady::time_point> token_times;
    steady::time_point done;
    std::string error;
  };

  std::vector<request_run> run(const std::vector<std::vector<int32_t>>& prompts, int max_tokens) {
    std::vector<request_run> runs(prompts.size());
    std::mutex mu;
    std::condition_variable cv;
    size_t finished = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
      le::generation_request req;
      req.prompt = prompts[i];
      req.max_tokens = max_tokens;
      req.ignore_eos = true;
      req.sampling.temperature = 0.0f;
      req.sampling.seed = 1;
      le::generation_callbacks cb;
      request_run* r = &runs[i];
      cb.on_token = [r](const le::token_output& out) {
        if (out.id >= 0) r->token_times.push_back(steady::now());
      };
      cb.on_done = [&, r](const le::generation_stats& stats, const std::string& error) {
        const auto now = steady::now();
        std::lock_guard lock(mu);
        r->done = now;
        if (!error.empty() || stats.finish_reason != "length") r->error = stats.finish_reason + " " + error;
        ++finished;
        cv.notify_all();
      };
      le::submit_status status{};
      std::string error;
      if (e_.submit(std::move(req), std::move(cb), &status, &error) == 0) die("engine submit: " + error);
    }
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return finished == prompts.size(); });
    for (const auto& r : runs) {
      if (!r.error.empty()) die("engine request ended with: " + r.error);
    }
    return runs;
  }

  le::engine& e_;
  int64_t n_vocab_;
  std::mt19937_64 rng_{7};
};

std::string mib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse_args(argc, argv);
  spdlog::set_level(spdlog::level::warn);
  const double load_start = load_1m();
  std::vector<result> results;

  // ---- phase 1: forward pass, one sequence ----
  std::string error;
  const auto memory = o.mapped ? le::file_memory::mapped : le::file_memory::huge_pages;
  auto m = le::model::load(o.model_path, &error, memory);
  if (!m) die(error);
  const int64_t huge_page_bytes = static_cast<int64_t>(m->file().huge_page_bytes());
  const le::hparams hp = m->hp();
  const int64_t weight_bytes = static_cast<int64_t>(m->weight_bytes());
  const int64_t kv_per_token = static_cast<int64_t>(m->kv_bytes_per_token());
  const std::string model_name = std::string(m->file().get_string("general.name").value_or(""));
  const std::string ftype = file_type_name(m->file());
  int64_t n_params = 0;
  for (const auto& t : m->file().tensors()) n_params += t.n_elements();
  const int64_t n_ctx = hp.n_ctx_train > 0 ? hp.n_ctx_train : 4096;
  if (o.pp > n_ctx || o.tg > n_ctx) {
    die("--pp / --tg exceed the model's context (" + std::to_string(n_ctx) + ")");
  }
  const int64_t page = 16;
  const int64_t max_run = std::max(o.pp, o.tg);
  const size_t fwd_budget = static_cast<size_t>((max_run + page - 1) / page + 1) * page * kv_per_token;
  auto kv = le::kv_cache::create(le::kv_layout(*m), fwd_budget, &error, page);
  if (!kv) die(error);
  int64_t peak_forward = 0;
  {
    gw::kernels::thread_pool pool(o.threads);
    le::forward_pass fwd(*m, *kv, pool);
    forward_bench fb{*m, *kv, fwd};
    result pp{"pp" + std::to_string(o.pp), "forward", 1, o.pp, o.pp * kv_per_token, {}};
    result tg{"tg" + std::to_string(o.tg), "forward", 1, o.tg, o.tg * kv_per_token, {}};
    fb.prompt(o.pp);  // warm-up
    for (int r = 0; r < o.reps; ++r) pp.tps.push_back(fb.prompt(o.pp));
    fb.generate(o.tg);  // warm-up
    for (int r = 0; r < o.reps; ++r) tg.tps.push_back(fb.generate(o.tg));
    results.push_back(pp);
    results.push_back(tg);
    peak_forward = proc_status_kb("VmHWM");
  }
  kv.reset();
  m.reset();

  // ---- phase 2: engine, 1 and --seqs concurrent requests ----
  reset_peak_rss();
  int64_t peak_engine = -1;
  const int n_seqs = std::max(o.seqs, 1);
  {
    le::engine_options eo;
    eo.model_path = o.model_path;
    eo.threads = o.threads;
    eo.context_size = static_cast<int>(std::min<int64_t>(n_ctx, std::max(o.pp + 1, o.tg + 4)));
    eo.kv_budget_bytes = n_seqs * ((eo.context_size + page - 1) / page + 1) * page * kv_per_token;
    eo.max_queue = std::max(64, n_seqs);
    eo.weights_memory = memory;
    auto e = le::engine::create(eo, &error);
    if (!e) die(error);
    engine_bench eb(*e, hp.n_vocab);
    result tg1{"tg" + std::to_string(o.tg), "engine", 1, o.tg, (o.tg + 4) * kv_per_token, {}};
    eb.generate(1, std::min(o.tg, 16));  // warm-up
    for (int r = 0; r < o.reps; ++r) tg1.tps.push_back(eb.generate(1, o.tg));
    results.push_back(tg1);
    if (o.seqs > 0) {
      result ppn{"pp" + std::to_string(o.pp), "engine", o.seqs, o.pp, int64_t{o.seqs} * (o.pp + 1) * kv_per_token, {}};
      result tgn{"tg" + std::to_string(o.tg), "engine", o.seqs, o.tg, int64_t{o.seqs} * (o.tg + 4) * kv_per_token, {}};
      eb.prompt(o.seqs, std::min(o.pp, 64));  // warm-up
      for (int r = 0; r < o.reps; ++r) ppn.tps.push_back(eb.prompt(o.seqs, o.pp));
      eb.generate(o.seqs, std::min(o.tg, 16));  // warm-up
      for (int r = 0; r < o.reps; ++r) tgn.tps.push_back(eb.generate(o.seqs, o.tg));
      results.push_back(ppn);
      results.push_back(tgn);
    }
    peak_engine = proc_status_kb("VmHWM");
  }
  const double load_end = load_1m();

  // ---- report ----
  std::printf("model %s (%s, %s, %.1f M params, %s MiB weights), %d threads, %s, %d reps\n",
              o.model_path.c_str(), hp.arch_name.c_str(), ftype.c_str(), static_cast<double>(n_params) / 1e6,
              mib(weight_bytes).c_str(), o.threads, gw::kernels::simd_level(), o.reps);
  std::printf("weights %s (%s MiB in huge pages)\n", o.mapped ? "mapped from the file" : "read into huge pages",
              mib(huge_page_bytes).c_str());
  std::printf("%-8s %-8s %5s %12s %10s %10s\n", "test", "path", "seqs", "tok/s", "stddev", "KV MiB");
  for (const auto& r : results) {
    std::printf("%-8s %-8s %5d %12.2f %10.2f %10s\n", r.name.c_str(), r.path.c_str(), r.sequences, r.mean(),
                r.stddev(), mib(r.kv_bytes).c_str());
  }
  std::printf("peak RSS: forward phase %s MiB, engine phase %s MiB (weights %s MiB, KV %s KiB/token); "
              "load 1m %.2f -> %.2f\n",
              mib(peak_forward).c_str(), mib(peak_engine).c_str(), mib(weight_bytes).c_str(),
              std::to_string(kv_per_token / 1024).c_str(), load_start, load_end);

  if (!o.json_path.empty()) {
    nlohmann::json j;
    j["model"] = o.model_path;
    j["model_name"] = model_name;
    j["arch"] = hp.arch_name;
    j["file_type"] = ftype;
    j["n_params"] = n_params;
    j["threads"] = o.threads;
    j["reps"] = o.reps;
    j["simd"] = gw::kernels::simd_level();
    j["cpu"] = cpu_model();
    j["gpu"] = false;
    j["weight_bytes"] = weight_bytes;
    j["weights_memory"] = o.mapped ? "mapped" : "huge_pages";
    j["huge_page_bytes"] = huge_page_bytes;
    j["kv_bytes_per_token"] = kv_per_token;
    j["peak_rss_bytes"] = {{"forward", peak_forward}, {"engine", peak_engine}};
    j["load_1m"] = {{"start", load_start}, {"end", load_end}};
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    j["date"] = date;
    auto& tests = j["tests"] = nlohmann::json::array();
    for (const auto& r : results) {
      tests.push_back({{"test", r.name},
                       {"path", r.path},
                       {"sequences", r.sequences},
                       {"tokens_per_sequence", r.tokens},
                       {"tokens_per_s", r.mean()},
                       {"stddev", r.stddev()},
                       {"samples", r.tps},
                       {"kv_bytes", r.kv_bytes}});
    }
    std::ofstream out(o.json_path);
    out << j.dump(2) << "\n";
    if (!out) die("cannot write " + o.json_path);
  }
  return 0;
}
