#pragma once
// The largest error each tensor type's quantize -> dequantize may make on an element, from the
// values of the block the element sits in (shared by the round-trip tests and the checks against
// llama.cpp-quantized files).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/dtype.h"

namespace gw::kernels::test {

// Absolute rounding of an f16 scale in the subnormal range (half its step): a block's error
// floor when its scale is that small.
inline constexpr double f16_floor = 0x1p-25;

inline double amax_of(const float* x, int64_t len) {
  double m = 0;
  for (int64_t i = 0; i < len; ++i) m = std::max(m, std::fabs(static_cast<double>(x[i])));
  return m;
}

// max - min of x[0, len) with 0 included (the K types' mins are clamped to <= 0).
inline double range_with_zero(const float* x, int64_t len) {
  double lo = 0, hi = 0;
  for (int64_t i = 0; i < len; ++i) {
    lo = std::min(lo, static_cast<double>(x[i]));
    hi = std::max(hi, static_cast<double>(x[i]));
  }
  return hi - lo;
}

// Per-element bounds for a row x of n elements (n a multiple of the type's block).
//   F16 / BF16: half an ulp (subnormal halves: half the smallest step).
//   Q8_0: step d = amax / 127: d / 2, plus d's own f16 rounding (relative 2^-11, or f16_floor)
//         over up to 127 steps.
//   Q4_0: d = extreme / -8, levels -8..7: the far side tops out at 7|d|, so |d| = amax / 8
//         (plus d's rounding over 8 steps).
//   Q4_K: 16 levels over each sub-block's range: half a step is range / 30; allow a full step.
//         The 6-bit sub-block scales and mins are relative to the super-block's largest, so a
//         small sub-block beside a large one also carries up to ~7.5 steps of the largest scale
//         (range_256 / 126) from a rounded-down scale, and half a step of the mins.
//   Q6_K: levels -32..31 per group of 16 (step ~ amax / 32): allow a full step; the 8-bit group
//         scales are relative to the super-block's largest (d = its scale / 128), and a scale
//         rounded down can clip the group's extreme by up to 15.5 d ~ amax_256 / 264.
//   Q8_K: d = amax / 127 in float32: d / 2.
inline std::vector<double> error_bounds(dtype t, const float* x, int64_t n) {
  std::vector<double> bound(static_cast<size_t>(n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const float* b32 = x + i / 32 * 32;
    const float* b16 = x + i / 16 * 16;
    const float* b256 = x + i / 256 * 256;
    double v = 0;
    switch (t) {
      case dtype::F32: v = 0; break;
      case dtype::F16: v = std::max(std::fabs(static_cast<double>(x[i])) * 0x1p-11, 0x1p-25); break;
      case dtype::BF16: v = std::fabs(static_cast<double>(x[i])) * 0x1p-8; break;
      case dtype::Q8_0: v = amax_of(b32, 32) / 127 * (0.5 + 127 * 0x1p-11) + 127 * f16_floor; break;
      case dtype::Q4_0: v = amax_of(b32, 32) / 8 * (1 + 8 * 0x1p-11) + 8 * f16_floor; break;
      case dtype::Q4_K: v = range_with_zero(b32, 32) / 15 + range_with_zero(b256, 256) / 50 + 16 * 63 * f16_floor; break;
      case dtype::Q6_K: v = amax_of(b16, 16) / 31 + amax_of(b256, 256) / 256 + 128 * 32 * f16_floor; break;
      case dtype::Q8_K: v = amax_of(b256, 256) / 127 * (0.5 + 1e-4); break;
    }
    bound[static_cast<size_t>(i)] = v + 1e-30;
  }
  return bound;
}

}  // namespace gw::kernels::test
