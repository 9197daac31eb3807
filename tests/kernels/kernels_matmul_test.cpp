// matmul for every weight type on every instruction-set level, against a float64 product with the
// dequantised weights, on ragged shapes (m = 1, 3, 17, 72; k from 1 / 32 / 256 up to 4096 including
// non powers of two and odd block counts; odd row counts).
//
// Tolerances follow from what the kernels round on purpose, the activations (llama.cpp's scheme):
//   F32        none: float accumulation only, 2e-6 * sum|w x|
//   F16 / BF16 each x rounded to the format: relative error uniform within +-2^-11 / +-2^-8
//   Q4_0, Q8_0 x quantized to int8 per 32 (step d = amax / 127), Q4_K, Q6_K per 256
// The rounding errors are independent, so the error of a dot product has standard deviation
// sigma = sqrt(sum_i w_i^2 e_i^2) with e_i's variance (step^2 / 12, or (x 2^-p)^2 / 3); the test
// allows 8 sigma plus the float accumulation slack. A layout or indexing error is of the order of
// |y| itself, ~20x that. Separately, every SIMD level must match the scalar level up to the float
// accumulation slack (they round the activations identically).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/dtype.h"
#include "kernels/ops.h"

namespace gw::kernels {
namespace {

struct test_weights {
  dtype type;
  int64_t rows, cols;
  std::vector<uint8_t> data;
  std::vector<float> dequantized;
  weight_view view() const { return {type, data.data(), cols, rows}; }
};

test_weights make_weights(dtype t, int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  test_weights w{t, rows, cols, std::vector<uint8_t>(row_bytes(t, cols) * static_cast<size_t>(rows)),
                 std::vector<float>(static_cast<size_t>(rows * cols))};
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = 0.02f * static_cast<float>(1 + r % 5);
    for (auto& v : row) v = normal(rng) * scale;
    uint8_t* dst = w.data.data() + row_bytes(t, cols) * static_cast<size_t>(r);
    quantize_row(t, row.data(), dst, cols);
    dequantize_row(t, dst, w.dequantized.data() + r * cols, cols);
  }
  return w;
}

std::vector<float> make_activations(int64_t m, int64_t k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(m * k));
  for (size_t i = 0; i < x.size(); ++i) x[i] = normal(rng) * (i % 97 == 3 ? 8.0f : 1.0f);  // a few outliers
  return x;
}

// Standard deviation of the activation rounding's effect on one output, and sum |w x|.
struct error_scale {
  double sigma = 0;
  double abs_sum = 0;
};

error_scale activation_error(dtype t, const float* w, const float* x, int64_t k) {
  error_scale e;
  for (int64_t i = 0; i < k; ++i) e.abs_sum += std::fabs(static_cast<double>(w[i]) * x[i]);
  double var = 0;
  if (t == dtype::F16 || t == dtype::BF16) {
    const double rel = t == dtype::F16 ? 0x1p-11 : 0x1p-8;
    for (int64_t i = 0; i < k; ++i) {
      const double wx = static_cast<double>(w[i]) * x[i] * rel;
      var += wx * wx / 3;
    }
  } else if (t != dtype::F32) {
    const int64_t block = (t == dtype::Q4_K || t == dtype::Q6_K) ? 256 : 32;
    for (int64_t b = 0; b < k; b += block) {
      double amax = 0, w2 = 0;
      for (int64_t i = b; i < b + block; ++i) {
        amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
        w2 += static_cast<double>(w[i]) * w[i];
      }
      const double step = amax / 127;
      var += w2 * step * step / 12;
    }
  }
  e.sigma = std::sqrt(var);
  return e;
}

double accumulation_slack(const error_scale& e) { return 2e-6 * e.abs_sum + 1e-30; }

std::vector<int64_t> test_ks(dtype t) {
  switch (t) {
    case dtype::F32:
    case dtype::F16:
    case dtype::BF16: return {1, 17, 64, 333, 4096};
    case dtype::Q4_0:
    case dtype::Q8_0: return {32, 96, 800, 4096};
    default: return {256, 768, 4096};
  }
}

const dtype weight_types[] = {dtype::F32, dtype::F16, dtype::BF16, dtype::Q4_0, dtype::Q8_0, dtype::Q4_K, dtype::Q6_K};

class KernelsMatmul : public testing::TestWithParam<isa> {
 protected:
  void SetUp() override {
    if (!isa_supported(GetParam())) GTEST_SKIP() << isa_name(GetParam()) << " not available on this CPU";
  }
};

TEST_P(KernelsMatmul, MatchesFloat64ReferenceWithinActivationRounding) {
  const isa level = GetParam();
  for (dtype t : weight_types) {
    for (int64_t k : test_ks(t)) {
      for (int64_t rows : {1, 7, 33}) {
        const test_weights w = make_weights(t, rows, k, static_cast<uint64_t>(k * 131 + rows));
        // m = 72: enough activation rows for the levels' many-row paths (AVX-512's interleaved
        // Q4_0 / Q8_0 rows from 32, transposed float rows from 64).
        for (int64_t m : {1, 3, 17, 72}) {
          SCOPED_TRACE(std::string(dtype_name(t)) + " k=" + std::to_string(k) + " rows=" + std::to_string(rows) +
                       " m=" + std::to_string(m) + " " + isa_name(level));
          const auto x = make_activations(m, k, static_cast<uint64_t>(m * 7 + k));
          std::vector<float> y(static_cast<size_t>(m * rows), -1.0f), y_scalar(y.size(), -1.0f);
          matmul(level, w.view(), x.data(), y.data(), m, nullptr);
          matmul(isa::scalar, w.view(), x.data(), y_scalar.data(), m, nullptr);
          for (int64_t c = 0; c < m; ++c) {
            for (int64_t r = 0; r < rows; ++r) {
              const float* wr = w.dequantized.data() + r * k;
              const float* xc = x.data() + c * k;
              double ref = 0;
              for (int64_t i = 0; i < k; ++i) ref += static_cast<double>(wr[i]) * xc[i];
              const error_scale e = activation_error(t, wr, xc, k);
              const float got = y[static_cast<size_t>(c * rows + r)];
              ASSERT_NEAR(got, ref, 8 * e.sigma + accumulation_slack(e)) << "r=" << r << " c=" << c;
              ASSERT_NEAR(got, y_scalar[static_cast<size_t>(c * rows + r)], 2 * accumulation_slack(e))
                  << "vs scalar, r=" << r << " c=" << c;
            }
          }
        }
      }
    }
  }
}

// Many rows and activation rows: the blocked, threaded path. Threads only split the work, so the
// result is bit for bit the single-threaded one.
TEST_P(KernelsMatmul, ThreadedEqualsSingleThreadedOnLargeShapes) {
  const isa level = GetParam();
  thread_pool pool(3);
  for (dtype t : weight_types) {
    SCOPED_TRACE(std::string(dtype_name(t)) + " " + isa_name(level));
    const int64_t rows = 203, k = 1024, m = 41;
    const test_weights w = make_weights(t, rows, k, 99);
    const auto x = make_activations(m, k, 5);
    std::vector<float> y1(static_cast<size_t>(m * rows)), y3(y1.size());
    matmul(level, w.view(), x.data(), y1.data(), m, nullptr);
    matmul(level, w.view(), x.data(), y3.data(), m, &pool);
    ASSERT_EQ(y1, y3);
    // And the products are right (spot check a column against float64).
    for (int64_t r = 0; r < rows; r += 17) {
      double ref = 0;
      for (int64_t i = 0; i < k; ++i) ref += static_cast<double>(w.dequantized[static_cast<size_t>(r * k + i)]) * x[static_cast<size_t>(40 * k + i)];
      const error_scale e = activation_error(t, w.dequantized.data() + r * k, x.data() + 40 * k, k);
      ASSERT_NEAR(y3[static_cast<size_t>(40 * rows + r)], ref, 8 * e.sigma + accumulation_slack(e));
    }
  }
}

TEST_P(KernelsMatmul, ZeroActivationsGiveZero) {
  const isa level = GetParam();
  for (dtype t : weight_types) {
    const int64_t k = 512, rows = 9;
    const test_weights w = make_weights(t, rows, k, 3);
    const std::vector<float> x(static_cast<size_t>(2 * k), 0.0f);
    std::vector<float> y(static_cast<size_t>(2 * rows), 1.0f);
    matmul(level, w.view(), x.data(), y.data(), 2, nullptr);
    for (float v : y) ASSERT_EQ(v, 0.0f) << dtype_name(t);
  }
}

// matmul_many: several weights (here every type, so every activation form, some sharing one)
// over the same activations give exactly what one matmul each gives; a job of another width is
// skipped and its output left alone.
TEST_P(KernelsMatmul, ManyEqualsOneByOne) {
  const isa level = GetParam();
  thread_pool pool(2);
  const int64_t k = 768, m = 5;
  const auto x = make_activations(m, k, 8);
  std::vector<test_weights> ws;
  int64_t seed = 40;
  for (dtype t : weight_types) ws.push_back(make_weights(t, 37 + seed % 5, k, static_cast<uint64_t>(seed++)));
  ws.push_back(make_weights(dtype::Q4_K, 64, k, 77));  // a second weight of an already prepared form
  const test_weights narrow = make_weights(dtype::Q8_0, 8, 256, 78);
  std::vector<std::vector<float>> ys(ws.size());
  std::vector<matmul_job> jobs;
  for (size_t i = 0; i < ws.size(); ++i) {
    ys[i].assign(static_cast<size_t>(m * ws[i].rows), -7.0f);
    jobs.push_back({ws[i].view(), ys[i].data()});
  }
  std::vector<float> y_narrow(static_cast<size_t>(m * 8), -7.0f);
  jobs.push_back({narrow.view(), y_narrow.data()});
  matmul_many(level, jobs.data(), static_cast<int>(jobs.size()), x.data(), m, &pool);
  for (size_t i = 0; i < ws.size(); ++i) {
    std::vector<float> one(ys[i].size());
    matmul(level, ws[i].view(), x.data(), one.data(), m, nullptr);
    EXPECT_EQ(ys[i], one) << dtype_name(ws[i].type);
  }
  for (float v : y_narrow) ASSERT_EQ(v, -7.0f);
}

INSTANTIATE_TEST_SUITE_P(Levels, KernelsMatmul, testing::Values(isa::scalar, isa::avx2, isa::avx512),
                         [](const testing::TestParamInfo<isa>& info) { return std::string(isa_name(info.param)); });

TEST(KernelsMatmulDispatch, BestLevelIsUsedByDefault) {
  // The default entry point gives exactly what the best level gives.
  const test_weights w = make_weights(dtype::Q4_K, 13, 512, 11);
  const auto x = make_activations(2, 512, 12);
  std::vector<float> a(26), b(26);
  matmul(w.view(), x.data(), a.data(), 2, nullptr);
  matmul(best_isa(), w.view(), x.data(), b.data(), 2, nullptr);
  EXPECT_EQ(a, b);
}

TEST(KernelsMatmulDispatch, GetRowDequantizesOneRow) {
  for (dtype t : weight_types) {
    const test_weights w = make_weights(t, 5, 256, 21);
    std::vector<float> row(256);
    get_row(w.view(), 3, row.data());
    for (int i = 0; i < 256; ++i) ASSERT_EQ(row[static_cast<size_t>(i)], w.dequantized[static_cast<size_t>(3 * 256 + i)]) << dtype_name(t);
  }
}

}  // namespace
}  // namespace gw::kernels
