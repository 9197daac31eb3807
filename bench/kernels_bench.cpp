// CPU matmul throughput per weight type: a 2048 x 2048 weight matrix times m activation rows
// (m = 1: one token of generation; m = 64: a prompt chunk), on 1 and 2 threads, on the best
// instruction-set level (TOLLGATE_SIMD=avx2|scalar caps it). matvec_96MiB is generation's case
// on a realistic model: one activation row against ~96 MiB of weights in the type (2048 columns),
// far more than the caches hold, so weight_GBps is the memory bandwidth the kernel reaches.
//   kernels_bench [--benchmark_out=bench/results/kernels.json --benchmark_out_format=json]
// Counters: GFLOPS (2 * rows * cols * m per call), weight_GBps (weight bytes read per second).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/dtype.h"
#include "kernels/ops.h"

namespace {

using gw::kernels::dtype;

constexpr int64_t n = 2048;         // columns (k) of every matrix
constexpr size_t big_bytes = size_t{96} << 20;  // weights of the memory-bound matrix-vector case
const dtype types[] = {dtype::F32, dtype::F16, dtype::BF16, dtype::Q8_0, dtype::Q4_0, dtype::Q4_K, dtype::Q6_K};

struct fixture_data {
  std::vector<uint8_t> weights;
  std::vector<float> x, y;
};

const fixture_data& data_for(dtype t, int64_t rows) {
  static std::unique_ptr<fixture_data> cache[2][32];
  auto& slot = cache[rows == n ? 0 : 1][static_cast<int>(t)];
  if (!slot) {
    slot = std::make_unique<fixture_data>();
    std::mt19937_64 rng(42);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    std::vector<float> row(n);
    slot->weights.resize(gw::kernels::row_bytes(t, n) * rows);
    for (int64_t r = 0; r < rows; ++r) {
      for (auto& v : row) v = normal(rng);
      gw::kernels::quantize_row(t, row.data(), slot->weights.data() + gw::kernels::row_bytes(t, n) * r, n);
    }
    slot->x.resize(64 * n);
    for (auto& v : slot->x) v = normal(rng) * 50.0f;
    slot->y.resize(64 * rows);
  }
  return *slot;
}

void bm_matmul(benchmark::State& state) {
  const dtype t = types[state.range(0)];
  const int64_t m = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  const int64_t rows = state.range(3);
  const fixture_data& d = data_for(t, rows);
  std::vector<float> y(static_cast<size_t>(m * rows));
  gw::kernels::thread_pool pool(threads);
  const gw::kernels::weight_view w{t, d.weights.data(), rows, n};
  for (auto _ : state) {
    gw::kernels::matmul(w, d.x.data(), y.data(), m, &pool);
    benchmark::DoNotOptimize(y.data());
  }
  const double flops = 2.0 * rows * n * m;
  state.counters["GFLOPS"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["weight_GBps"] =
      benchmark::Counter(static_cast<double>(d.weights.size()) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(gw::kernels::dtype_name(t)) + " m=" + std::to_string(m) + " threads=" +
                 std::to_string(threads) + " " + gw::kernels::isa_name(gw::kernels::best_isa()));
}

void register_all() {
  for (int i = 0; i < static_cast<int>(std::size(types)); ++i) {
    for (int64_t m : {1, 64}) {
      for (int threads : {1, 2}) {
        const std::string name = "matmul_2048/" + std::string(gw::kernels::dtype_name(types[i])) + "/m" +
                                 std::to_string(m) + "/t" + std::to_string(threads);
        benchmark::RegisterBenchmark(name.c_str(), bm_matmul)->Args({i, m, threads, n})->UseRealTime()->Unit(benchmark::kMicrosecond);
      }
    }
    for (int threads : {1, 2}) {
      const std::string name = "matvec_96MiB/" + std::string(gw::kernels::dtype_name(types[i])) + "/t" +
                               std::to_string(threads);
      const auto big_rows = static_cast<int64_t>(big_bytes / gw::kernels::row_bytes(types[i], n));
      benchmark::RegisterBenchmark(name.c_str(), bm_matmul)->Args({i, 1, threads, big_rows})->UseRealTime()->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
