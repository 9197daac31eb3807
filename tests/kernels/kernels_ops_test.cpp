// Elementwise ops, RoPE and attention against float64 references on ragged sizes, on every
// instruction-set level, and the thread pool's parallel_for.
// Tolerances: these ops only round in float32 (and the vector exp, relative error ~2e-7), so
// results must agree with float64 to a few float ulps: 2e-6 relative unless stated.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernels/ops.h"

namespace gw::kernels {
namespace {

std::vector<float> random_vector(int64_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = normal(rng);
  return v;
}

const int64_t sizes[] = {1, 7, 8, 33, 576, 4099};

class KernelsOps : public testing::TestWithParam<isa> {
 protected:
  void SetUp() override {
    if (!isa_supported(GetParam())) GTEST_SKIP() << isa_name(GetParam()) << " not available on this CPU";
  }
};

TEST_P(KernelsOps, RmsNorm) {
  for (int64_t n : sizes) {
    const auto x = random_vector(n, 1 + static_cast<uint64_t>(n), 3.0f);
    const auto w = random_vector(n, 2 + static_cast<uint64_t>(n));
    std::vector<float> y(x.size());
    rms_norm(GetParam(), x.data(), w.data(), y.data(), n, 1e-5f);
    double ss = 0;
    for (float v : x) ss += static_cast<double>(v) * v;
    const double scale = 1.0 / std::sqrt(ss / static_cast<double>(n) + 1e-5);
    for (int64_t i = 0; i < n; ++i) {
      const double want = x[i] * scale * w[i];
      ASSERT_NEAR(y[i], want, 2e-6 * std::fabs(want) + 1e-30) << "n=" << n << " i=" << i;
    }
    // In place.
    std::vector<float> z = x;
    rms_norm(GetParam(), z.data(), w.data(), z.data(), n, 1e-5f);
    ASSERT_EQ(z, y);
  }
}

TEST_P(KernelsOps, SiluMul) {
  for (int64_t n : sizes) {
    auto gate = random_vector(n, 3 + static_cast<uint64_t>(n), 4.0f);
    if (n > 7) {  // the ends of exp's range
      gate[0] = -90.0f;
      gate[1] = -87.0f;
      gate[2] = 90.0f;
      gate[3] = 0.0f;
    }
    const auto up = random_vector(n, 4 + static_cast<uint64_t>(n));
    std::vector<float> out(gate.size());
    silu_mul(GetParam(), gate.data(), up.data(), out.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double g = gate[i];
      const double want = g / (1.0 + std::exp(-g)) * up[i];
      ASSERT_NEAR(out[i], want, 2e-6 * std::fabs(want) + 1e-30) << "n=" << n << " gate=" << g;
    }
    std::vector<float> in_place = gate;
    silu_mul(GetParam(), in_place.data(), up.data(), in_place.data(), n);
    ASSERT_EQ(in_place, out);
  }
}

TEST_P(KernelsOps, Add) {
  for (int64_t n : sizes) {
    auto y = random_vector(n, 5);
    const auto x = random_vector(n, 6);
    const auto before = y;
    add(GetParam(), y.data(), x.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], before[i] + x[i]);
  }
}

TEST_P(KernelsOps, Softmax) {
  for (int64_t n : sizes) {
    auto x = random_vector(n, 7 + static_cast<uint64_t>(n), 5.0f);
    if (n > 8) x[5] = 80.0f;  // max subtraction keeps this finite
    const auto in = x;
    softmax(GetParam(), x.data(), n);
    double max = in[0];
    for (float v : in) max = std::max(max, static_cast<double>(v));
    double sum = 0;
    for (float v : in) sum += std::exp(v - max);
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double want = std::exp(in[i] - max) / sum;
      ASSERT_NEAR(x[i], want, 2e-6 * want + 1e-30) << "n=" << n << " i=" << i;
      total += x[i];
    }
    ASSERT_NEAR(total, 1.0, 1e-5);
  }
}

TEST_P(KernelsOps, AttentionHead) {
  for (int64_t head_dim : {32, 64, 80, 128, 7}) {
    for (int64_t n_kv : {1, 5, 300}) {
      const auto q = random_vector(head_dim, 9);
      // Rows live anywhere: here, scattered through one buffer in reverse order.
      const auto store = random_vector(2 * n_kv * head_dim + 3, 10);
      std::vector<const float*> k_rows, v_rows;
      for (int64_t j = 0; j < n_kv; ++j) {
        k_rows.push_back(store.data() + 3 + (2 * (n_kv - 1 - j)) * head_dim);
        v_rows.push_back(store.data() + 3 + (2 * (n_kv - 1 - j) + 1) * head_dim);
      }
      const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
      std::vector<float> scratch(static_cast<size_t>(n_kv)), out(static_cast<size_t>(head_dim));
      attention_head(GetParam(), q.data(), k_rows.data(), v_rows.data(), n_kv, head_dim, scale, scratch.data(), out.data());
      std::vector<double> p(static_cast<size_t>(n_kv));
      double max = -1e300, sum = 0;
      for (int64_t j = 0; j < n_kv; ++j) {
        double dot = 0;
        for (int64_t i = 0; i < head_dim; ++i) dot += static_cast<double>(q[i]) * k_rows[j][i];
        p[j] = dot * scale;
        max = std::max(max, p[j]);
      }
      for (auto& v : p) sum += (v = std::exp(v - max));
      for (int64_t i = 0; i < head_dim; ++i) {
        double want = 0, mag = 0;
        for (int64_t j = 0; j < n_kv; ++j) {
          want += p[j] / sum * v_rows[j][i];
          mag += p[j] / sum * std::fabs(v_rows[j][i]);
        }
        ASSERT_NEAR(out[i], want, 1e-5 * mag + 1e-30) << "head_dim=" << head_dim << " n_kv=" << n_kv << " i=" << i;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Levels, KernelsOps, testing::Values(isa::scalar, isa::avx2, isa::avx512),
                         [](const testing::TestParamInfo<isa>& info) { return std::string(isa_name(info.param)); });

// ---- RoPE (one implementation for all levels) ----

void rope_reference(std::vector<double>& x, int64_t n_heads, int64_t head_dim, int64_t pos, double base,
                    const float* ff, rope_pairing pairing) {
  for (int64_t h = 0; h < n_heads; ++h) {
    double* v = x.data() + h * head_dim;
    for (int64_t i = 0; i < head_dim / 2; ++i) {
      double angle = pos * std::pow(base, -2.0 * i / head_dim);
      if (ff) angle /= ff[i];
      const int64_t a = pairing == rope_pairing::adjacent ? 2 * i : i;
      const int64_t b = pairing == rope_pairing::adjacent ? 2 * i + 1 : i + head_dim / 2;
      const double xa = v[a], xb = v[b];
      v[a] = xa * std::cos(angle) - xb * std::sin(angle);
      v[b] = xa * std::sin(angle) + xb * std::cos(angle);
    }
  }
}

TEST(KernelsRope, BothPairingsWithAndWithoutFreqFactors) {
  // Llama-3.1 style factors: 1 for high frequencies, 8 for low, one in between.
  std::vector<float> factors(32, 1.0f);
  for (int i = 24; i < 32; ++i) factors[static_cast<size_t>(i)] = 8.0f;
  factors[23] = 2.6945f;
  for (rope_pairing pairing : {rope_pairing::adjacent, rope_pairing::halves}) {
    for (const float* ff : {static_cast<const float*>(nullptr), static_cast<const float*>(factors.data())}) {
      for (int64_t pos : {0, 1, 17, 1000, 131071}) {
        const int64_t n_heads = 3, head_dim = 64;
        auto x = random_vector(n_heads * head_dim, 12 + static_cast<uint64_t>(pos));
        std::vector<double> ref(x.begin(), x.end());
        rope(x.data(), n_heads, head_dim, pos, 500000.0f, ff, pairing);
        rope_reference(ref, n_heads, head_dim, pos, 500000.0, ff, pairing);
        for (size_t i = 0; i < x.size(); ++i) {
          ASSERT_NEAR(x[i], ref[i], 2e-6 * (std::fabs(ref[i]) + 1.0)) << "pos=" << pos << " i=" << i;
        }
      }
    }
  }
}

TEST(KernelsRope, PairingsDiffer) {
  // The two pairings rotate different elements together: swapping them must show.
  auto a = random_vector(64, 13);
  auto b = a;
  rope(a.data(), 1, 64, 5, 10000.0f, nullptr, rope_pairing::adjacent);
  rope(b.data(), 1, 64, 5, 10000.0f, nullptr, rope_pairing::halves);
  double diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff += std::fabs(a[i] - b[i]);
  EXPECT_GT(diff, 1.0);
}

// ---- thread pool ----

TEST(KernelsThreadPool, CoversEveryIndexOnce) {
  thread_pool pool(4);
  EXPECT_EQ(pool.size(), 4);
  for (int64_t n : {1, 2, 3, 5, 16, 17, 1000, 100003}) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    pool.parallel_for(n, [&](int64_t begin, int64_t end) {
      ASSERT_LT(begin, end);
      for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "n=" << n;
  }
  int calls = 0;
  pool.parallel_for(0, [&](int64_t, int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(KernelsThreadPool, ManySmallJobsAndWakeAfterSleep) {
  thread_pool pool(3);
  std::atomic<int64_t> total{0};
  for (int rep = 0; rep < 20000; ++rep) {
    pool.parallel_for(64, [&](int64_t b, int64_t e) { total.fetch_add(e - b); });
  }
  EXPECT_EQ(total.load(), 20000 * 64);
  // Let the workers fall asleep, then they must wake for the next job.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::atomic<int64_t> sum{0};
  pool.parallel_for(1000, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) sum.fetch_add(i);
  });
  EXPECT_EQ(sum.load(), 999 * 1000 / 2);
}

TEST(KernelsThreadPool, WorkersActuallyRunInParallel) {
  thread_pool pool(2);
  std::atomic<int> inside{0}, max_inside{0};
  pool.parallel_for(2, [&](int64_t, int64_t) {
    const int now = inside.fetch_add(1) + 1;
    int prev = max_inside.load();
    while (now > prev && !max_inside.compare_exchange_weak(prev, now)) {}
    // Hold the chunk until the other thread arrives (bounded wait).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (max_inside.load() < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    inside.fetch_sub(1);
  });
  EXPECT_EQ(max_inside.load(), 2);
}

TEST(KernelsThreadPool, SingleThreadRunsInline) {
  thread_pool pool(1);
  EXPECT_EQ(pool.size(), 1);
  const auto caller = std::this_thread::get_id();
  bool same = false;
  pool.parallel_for(10, [&](int64_t b, int64_t e) {
    same = std::this_thread::get_id() == caller && b == 0 && e == 10;
  });
  EXPECT_TRUE(same);
}

}  // namespace
}  // namespace gw::kernels
