// Rows of each tensor type: dequantisation of hand-built blocks (the byte layouts as ggml defines
// them: nibble order, Q4_K's packed 6-bit scales, Q6_K's split low/high bits and group order) and
// quantize -> dequantize round trips within each type's error bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/dtype.h"
#include "kernels/ops.h"
#include "tests/kernels/quant_error_bounds.h"

namespace gw::kernels {
namespace {

void put_half(std::vector<uint8_t>& block, size_t offset, float v) {
  const uint16_t h = fp32_to_fp16(v);
  std::memcpy(block.data() + offset, &h, 2);
}

TEST(KernelsQuant, DequantizeQ4_0Block) {
  // f16 d, then 16 bytes: byte j = element j (low nibble) and element j + 16 (high nibble).
  std::vector<uint8_t> block(18);
  put_half(block, 0, 0.5f);
  for (int j = 0; j < 16; ++j) block[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  std::vector<float> out(32);
  dequantize_row(dtype::Q4_0, block.data(), out.data(), 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], 0.5f * static_cast<float>(j - 8)) << j;
    EXPECT_EQ(out[j + 16], 0.5f * static_cast<float>(7 - j)) << j;
  }
}

TEST(KernelsQuant, DequantizeQ8_0Block) {
  std::vector<uint8_t> block(34);
  put_half(block, 0, 0.25f);
  for (int j = 0; j < 32; ++j) block[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(4 * j - 64));
  std::vector<float> out(32);
  dequantize_row(dtype::Q8_0, block.data(), out.data(), 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], 0.25f * static_cast<float>(4 * j - 64)) << j;
}

// Q4_K per ggml: d, dmin (f16), 12 bytes of scales, 128 bytes of nibbles. Sub-block j (32
// elements) has scale sc[j] and min m[j] (6 bits each): for j < 4 the low 6 bits of byte j /
// byte j + 4; for j >= 4 the low / high nibble of byte j + 4 plus 2 high bits from the top of
// byte j - 4 / byte j. Elements 64c + l and 64c + 32 + l are the low and high nibble of qs[32c + l].
TEST(KernelsQuant, DequantizeQ4_KBlock) {
  const int sc[8] = {1, 17, 33, 63, 5, 48, 21, 62};
  const int m[8] = {0, 9, 40, 63, 31, 16, 2, 55};
  std::vector<uint8_t> block(144, 0);
  put_half(block, 0, 0.125f);   // d
  put_half(block, 2, 0.0625f);  // dmin
  uint8_t* scales = block.data() + 4;
  for (int j = 0; j < 4; ++j) {
    scales[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    scales[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
  }
  int level[256];
  for (int e = 0; e < 256; ++e) level[e] = (e * 7 + e / 32) % 16;
  uint8_t* qs = block.data() + 16;
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) qs[32 * c + l] = static_cast<uint8_t>(level[64 * c + l] | (level[64 * c + 32 + l] << 4));
  std::vector<float> out(256);
  dequantize_row(dtype::Q4_K, block.data(), out.data(), 256);
  for (int e = 0; e < 256; ++e) {
    const int j = e / 32;
    const double want = 0.125 * sc[j] * level[e] - 0.0625 * m[j];
    EXPECT_NEAR(out[e], want, 1e-6) << e;
  }
}

// Q6_K per ggml: ql[128], qh[64], int8 scales[16], f16 d. Element e = 128h + 32s + l (h half,
// s quarter, l < 32): low 4 bits from ql[64h + 32(s % 2) + l] (low nibble for s < 2, high
// nibble for s >= 2), top 2 bits from qh[32h + l] bits 2s, 2s + 1; value d * scales[e / 16] * (q - 32).
TEST(KernelsQuant, DequantizeQ6_KBlock) {
  std::vector<uint8_t> block(210, 0);
  uint8_t* ql = block.data();
  uint8_t* qh = block.data() + 128;
  auto* scales = reinterpret_cast<int8_t*>(block.data() + 192);
  put_half(block, 208, 0.03125f);
  for (int g = 0; g < 16; ++g) scales[g] = static_cast<int8_t>(g % 2 ? -(g * 8 + 1) : g * 8 + 2);
  int level[256];
  for (int e = 0; e < 256; ++e) level[e] = (e * 13 + e / 16) % 64;
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, s = (e % 128) / 32, l = e % 32;
    uint8_t& low = ql[64 * h + 32 * (s % 2) + l];
    low = static_cast<uint8_t>(low | ((level[e] & 15) << (s >= 2 ? 4 : 0)));
    qh[32 * h + l] = static_cast<uint8_t>(qh[32 * h + l] | ((level[e] >> 4) << (2 * s)));
  }
  std::vector<float> out(256);
  dequantize_row(dtype::Q6_K, block.data(), out.data(), 256);
  for (int e = 0; e < 256; ++e) {
    const double want = 0.03125 * scales[e / 16] * (level[e] - 32);
    EXPECT_NEAR(out[e], want, 1e-5) << e;
  }
}

TEST(KernelsQuant, DequantizeQ8_KBlock) {
  std::vector<uint8_t> block(292, 0);
  const float d = 0.75f;
  std::memcpy(block.data(), &d, 4);
  for (int e = 0; e < 256; ++e) block[4 + e] = static_cast<uint8_t>(static_cast<int8_t>(e - 128));
  std::vector<float> out(256);
  dequantize_row(dtype::Q8_K, block.data(), out.data(), 256);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(out[e], 0.75f * static_cast<float>(e - 128)) << e;
}

// ---- round trips ----

// Test rows: Gaussian rows plus the awkward ones (all zero, constant, one spike, all negative,
// tiny values, a huge range within a block).
std::vector<std::vector<float>> test_rows(int64_t n) {
  std::mt19937_64 rng(1234);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> rows;
  for (int i = 0; i < 6; ++i) {
    std::vector<float> r(static_cast<size_t>(n));
    for (auto& v : r) v = normal(rng) * (i + 1) * 0.02f;
    rows.push_back(r);
  }
  rows.emplace_back(static_cast<size_t>(n), 0.0f);
  rows.emplace_back(static_cast<size_t>(n), 0.3f);
  std::vector<float> spike(static_cast<size_t>(n), 0.001f);
  spike[static_cast<size_t>(n / 3)] = -50.0f;
  rows.push_back(spike);
  std::vector<float> negative(static_cast<size_t>(n));
  for (auto& v : negative) v = -std::fabs(normal(rng)) - 0.5f;
  rows.push_back(negative);
  std::vector<float> tiny(static_cast<size_t>(n));
  for (auto& v : tiny) v = normal(rng) * 1e-6f;
  rows.push_back(tiny);
  std::vector<float> wide(static_cast<size_t>(n));
  for (size_t i = 0; i < wide.size(); ++i) wide[i] = normal(rng) * (i % 32 == 5 ? 100.0f : 0.01f);
  rows.push_back(wide);
  return rows;
}

std::vector<float> round_trip(dtype t, const std::vector<float>& x) {
  const auto n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(row_bytes(t, n));
  quantize_row(t, x.data(), q.data(), n);
  std::vector<float> back(x.size());
  dequantize_row(t, q.data(), back.data(), n);
  return back;
}

// Every element within its type's bound (quant_error_bounds.h); also the RMS error over the
// Gaussian rows relative to the row's RMS (the usual quality figure of a format) must stay under
// `max_rel_rms`, set ~20% above what ggml's reference quantizers reach on Gaussian data (Q8_0
// 0.0053, Q4_0 0.085, Q4_K 0.071, Q6_K 0.018, Q8_K 0.0068), so a weaker search fails.
void check_round_trip(dtype t, int64_t n, double max_rel_rms) {
  const auto rows = test_rows(n);
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto& x = rows[r];
    const auto y = round_trip(t, x);
    const auto bound = test::error_bounds(t, x.data(), n);
    double err2 = 0, x2 = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double e = std::fabs(static_cast<double>(y[i]) - x[i]);
      ASSERT_LE(e, bound[i]) << dtype_name(t) << " row " << r << " element " << i << ": " << x[i] << " -> " << y[i];
      err2 += e * e;
      x2 += static_cast<double>(x[i]) * x[i];
    }
    if (r < 6) {
      EXPECT_LE(std::sqrt(err2 / x2), max_rel_rms) << dtype_name(t) << " row " << r;
    }
  }
}

TEST(KernelsQuant, RoundTripF16AndBF16) {
  for (int64_t n : {1, 7, 256}) {
    for (dtype t : {dtype::F16, dtype::BF16}) check_round_trip(t, n, t == dtype::F16 ? 0x1p-11 : 0x1p-8);
  }
}

TEST(KernelsQuant, RoundTripQ8_0) { check_round_trip(dtype::Q8_0, 32 * 37, 0.0065); }
TEST(KernelsQuant, RoundTripQ4_0) { check_round_trip(dtype::Q4_0, 32 * 37, 0.1); }
TEST(KernelsQuant, RoundTripQ4_K) { check_round_trip(dtype::Q4_K, 256 * 9, 0.08); }
TEST(KernelsQuant, RoundTripQ6_K) { check_round_trip(dtype::Q6_K, 256 * 9, 0.021); }
TEST(KernelsQuant, RoundTripQ8_K) { check_round_trip(dtype::Q8_K, 256 * 9, 0.0085); }

TEST(KernelsQuant, Q8_KBlockSumsMatchQuants) {
  const auto rows = test_rows(512);
  std::vector<uint8_t> q(row_bytes(dtype::Q8_K, 512));
  quantize_row(dtype::Q8_K, rows[2].data(), q.data(), 512);
  for (int b = 0; b < 2; ++b) {
    const uint8_t* blk = q.data() + 292 * b;
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += static_cast<int8_t>(blk[4 + 16 * g + i]);
      int16_t stored;
      std::memcpy(&stored, blk + 4 + 256 + 2 * g, 2);
      EXPECT_EQ(stored, sum);
    }
  }
}

TEST(KernelsQuant, ZeroRowsStayZero) {
  for (dtype t : {dtype::Q4_0, dtype::Q8_0, dtype::Q4_K, dtype::Q6_K, dtype::Q8_K}) {
    const std::vector<float> zero(512, 0.0f);
    for (float v : round_trip(t, zero)) ASSERT_EQ(v, 0.0f) << dtype_name(t);
  }
}

}  // namespace
}  // namespace gw::kernels
