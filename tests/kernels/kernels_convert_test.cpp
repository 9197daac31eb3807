// F16 / BF16 <-> F32 conversions, exhaustively over all 65536 16-bit patterns, against a reference
// computed from the formats' definitions in double precision: every value widens exactly, every
// value survives the round trip, and the midpoints between neighbours round to the even one.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/ops.h"

namespace gw::kernels {
namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// IEEE half by definition: (-1)^s * 2^(e-15) * 1.m, subnormals 2^-14 * 0.m.
double half_value(uint16_t h) {
  const int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 0) {
    v = std::ldexp(static_cast<double>(m), -24);
  } else if (e == 31) {
    v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  } else {
    v = std::ldexp(1.0 + m / 1024.0, e - 15);
  }
  return sign ? -v : v;
}

// bfloat16 by definition: the top 16 bits of a float32, i.e. (-1)^s * 2^(e-127) * 1.m (7 bits).
double bf16_value(uint16_t h) {
  const int sign = h >> 15, e = (h >> 7) & 255, m = h & 127;
  double v;
  if (e == 0) {
    v = std::ldexp(static_cast<double>(m), -133);
  } else if (e == 255) {
    v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  } else {
    v = std::ldexp(1.0 + m / 128.0, e - 127);
  }
  return sign ? -v : v;
}

TEST(KernelsConvert, HalfToFloatMatchesDefinitionForAll65536) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const double want = half_value(static_cast<uint16_t>(h));
    const float got = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << h;
      // The payload moves to the top of the float mantissa.
      ASSERT_EQ((bits(got) >> 13) & 0x3FF, h & 0x3FF) << h;
    } else {
      ASSERT_EQ(static_cast<double>(got), want) << h;
      ASSERT_EQ(std::signbit(got), (h & 0x8000) != 0) << h;
    }
  }
}

TEST(KernelsConvert, BF16ToFloatMatchesDefinitionForAll65536) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const double want = bf16_value(static_cast<uint16_t>(h));
    const float got = bf16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << h;
    } else {
      ASSERT_EQ(static_cast<double>(got), want) << h;
      ASSERT_EQ(std::signbit(got), (h & 0x8000) != 0) << h;
    }
  }
}

// For each 16-bit pattern: the value converts back to itself, and (finite, not the largest) the
// midpoint to its successor rounds to whichever of the two is even, while a hair either side of
// the midpoint rounds to the nearer.
template <double (*value)(uint16_t), uint16_t (*narrow)(float)>
void check_narrowing(uint16_t exponent_mask) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto v = static_cast<uint16_t>(h);
    const double x = value(v);
    if (std::isnan(x)) {
      ASSERT_TRUE(std::isnan(value(narrow(static_cast<float>(x))))) << h;
      continue;
    }
    ASSERT_EQ(narrow(static_cast<float>(x)), v) << h;
    if ((v & exponent_mask) == exponent_mask) continue;  // infinity
    const auto next = static_cast<uint16_t>(v + 1);
    const double x_next = value(next);
    if (std::isinf(x_next)) continue;  // overflow boundary: checked separately
    const auto mid = static_cast<float>((x + x_next) / 2);  // exact: fits in a float
    ASSERT_EQ(static_cast<double>(mid), (x + x_next) / 2) << h;
    const uint16_t even = (v & 1) ? next : v;
    ASSERT_EQ(narrow(mid), even) << h;
    const float below = std::nextafter(mid, static_cast<float>(x));
    const float above = std::nextafter(mid, static_cast<float>(x_next));
    ASSERT_EQ(narrow(below), v) << h;
    ASSERT_EQ(narrow(above), next) << h;
  }
}

TEST(KernelsConvert, FloatToHalfRoundsToNearestEvenForAll65536) {
  check_narrowing<half_value, fp32_to_fp16>(0x7C00);
}

TEST(KernelsConvert, FloatToBF16RoundsToNearestEvenForAll65536) {
  check_narrowing<bf16_value, fp32_to_bf16>(0x7F80);
}

TEST(KernelsConvert, OverflowAndSpecialValues) {
  // 65504 is the largest half; 65520 is the midpoint to 65536 and rounds up (65504 is odd).
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(std::nextafter(65520.0f, 0.0f)), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);
  EXPECT_EQ(fp32_to_fp16(-1e9f), 0xFC00);
  EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(fp32_to_fp16(1e-30f), 0x0000);  // underflow to zero
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // half the smallest subnormal: ties to even (0)
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(std::numeric_limits<float>::quiet_NaN()))));
  // A float NaN whose payload sits only in the dropped bits stays NaN (not infinity).
  uint32_t low_payload_nan = 0x7F800001u;
  float f;
  std::memcpy(&f, &low_payload_nan, sizeof f);
  EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(f))));
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(f))));
  // bfloat16 overflows only past float's range; the largest float rounds to infinity.
  EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(fp32_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
}

}  // namespace
}  // namespace gw::kernels
