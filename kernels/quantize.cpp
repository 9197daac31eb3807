// Rows of every tensor type to float32 and back. The quantizers follow ggml's reference
// (non-imatrix) quantizers: the same block formats and the same searches for the K types
// (weighted least squares over a sweep of candidate scales), so `tollgate quantize` output
// matches what llama-quantize makes.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/blocks.h"
#include "kernels/ops.h"

namespace gw::kernels {
namespace {

// Round to nearest, ties to even (the default rounding mode), as ggml's nearest_int.
inline int nearest_int(float v) { return static_cast<int>(std::nearbyint(v)); }

// ---- F32 / F16 / BF16 ----

void to_f16(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}
void from_f16(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_fp32(x[i]);
}
void to_bf16(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_bf16(x[i]);
}
void from_bf16(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_fp32(x[i]);
}

// ---- Q4_0 ----

void quantize_q4_0(const float* x, block_q4_0* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += qk32) {
    // The element of largest magnitude maps to -8 exactly (its sign kept in d).
    float amax = 0.0f, extreme = 0.0f;
    for (int j = 0; j < qk32; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        extreme = x[j];
      }
    }
    const float d = extreme / -8.0f;
    const float inv = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = fp32_to_fp16(d);
    for (int j = 0; j < qk32 / 2; ++j) {
      const int lo = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * inv + 8.5f)));
      const int hi = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * inv + 8.5f)));
      y[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void dequantize_q4_0(const block_q4_0* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += qk32) {
    const float d = fp16_to_fp32(x[b].d);
    for (int j = 0; j < qk32 / 2; ++j) {
      y[j] = d * static_cast<float>((x[b].qs[j] & 0x0F) - 8);
      y[j + 16] = d * static_cast<float>((x[b].qs[j] >> 4) - 8);
    }
  }
}

// ---- Q8_0 ----

void quantize_q8_0(const float* x, block_q8_0* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += qk32) {
    float amax = 0.0f;
    for (int j = 0; j < qk32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float inv = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = fp32_to_fp16(d);
    for (int j = 0; j < qk32; ++j) y[b].qs[j] = static_cast<int8_t>(std::round(x[j] * inv));
  }
}

void dequantize_q8_0(const block_q8_0* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += qk32) {
    const float d = fp16_to_fp32(x[b].d);
    for (int j = 0; j < qk32; ++j) y[j] = d * static_cast<float>(x[b].qs[j]);
  }
}

// ---- Q4_K ----

// Fits x[i] ~ scale * q[i] - min_out (q in 0..15, min_out >= 0) for one sub-block of 32,
// minimising the weighted squared error: starts from the plain min/max fit, then tries 21
// stretched grids (nmax - 1 .. nmax + 1 steps over the range), each followed by the closed-form
// least-squares scale and offset for the levels it picked, and keeps the best. Returns the scale.
float fit_scale_min_q4(const float* x, const float* w, uint8_t* q, float* min_out) {
  constexpr int n = 32, nmax = 15;
  constexpr float grid_start = -1.0f, grid_step = 0.1f;
  constexpr int grid_steps = 20;
  float lo = x[0], hi = x[0];
  float sum_w = w[0], sum_x = w[0] * x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (lo > 0) lo = 0;
  if (hi == lo) {
    std::fill(q, q + n, uint8_t{0});
    *min_out = -lo;
    return 0.0f;
  }
  float inv_scale = nmax / (hi - lo);
  float scale = 1.0f / inv_scale;
  float best_error = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest_int(inv_scale * (x[i] - lo)), 0, nmax);
    q[i] = static_cast<uint8_t>(l);
    const float diff = scale * static_cast<float>(l) + lo - x[i];
    best_error += w[i] * (diff * diff);
  }
  uint8_t trial[n];
  for (int step = 0; step <= grid_steps; ++step) {
    inv_scale = (grid_start + grid_step * static_cast<float>(step) + nmax) / (hi - lo);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(inv_scale * (x[i] - lo)), 0, nmax);
      trial[i] = static_cast<uint8_t>(l);
      const float fl = static_cast<float>(l);
      sum_l += w[i] * fl;
      sum_l2 += w[i] * fl * fl;
      sum_xl += w[i] * fl * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det <= 0) continue;
    float trial_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float trial_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (trial_min > 0) {
      trial_min = 0;
      trial_scale = sum_xl / sum_l2;
    }
    float error = 0.0f;
    for (int i = 0; i < n; ++i) {
      const float diff = trial_scale * static_cast<float>(trial[i]) + trial_min - x[i];
      error += w[i] * (diff * diff);
    }
    if (error < best_error) {
      std::memcpy(q, trial, n);
      best_error = error;
      scale = trial_scale;
      lo = trial_min;
    }
  }
  *min_out = -lo;
  return scale;
}

void quantize_q4_k(const float* x, block_q4_k* y, int64_t nb) {
  constexpr int n_sub = qk256 / 32;
  for (int64_t b = 0; b < nb; ++b, x += qk256) {
    uint8_t levels[qk256];
    float scales[n_sub], mins[n_sub], weights[32];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < n_sub; ++j) {
      const float* xs = x + 32 * j;
      // Weights favour large elements: |x| plus the sub-block's RMS.
      float sum_x2 = 0.0f;
      for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
      const float rms = std::sqrt(sum_x2 / 32);
      for (int l = 0; l < 32; ++l) weights[l] = rms + std::fabs(xs[l]);
      scales[j] = fit_scale_min_q4(xs, weights, levels + 32 * j, &mins[j]);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    // Six-bit scales and mins relative to the block's largest.
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    block_q4_k& out = y[b];
    std::memset(out.scales, 0, sizeof out.scales);
    for (int j = 0; j < n_sub; ++j) {
      const int ls = std::min(63, nearest_int(inv_scale * scales[j]));
      const int lm = std::min(63, nearest_int(inv_min * mins[j]));
      if (j < 4) {
        out.scales[j] = static_cast<uint8_t>(ls);
        out.scales[j + 4] = static_cast<uint8_t>(lm);
      } else {
        out.scales[j + 4] = static_cast<uint8_t>((ls & 0x0F) | ((lm & 0x0F) << 4));
        out.scales[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
        out.scales[j] |= static_cast<uint8_t>((lm >> 4) << 6);
      }
    }
    out.d = fp32_to_fp16(max_scale / 63.0f);
    out.dmin = fp32_to_fp16(max_min / 63.0f);
    // Re-pick every level against the scales as stored.
    const float d = fp16_to_fp32(out.d), dmin = fp16_to_fp32(out.dmin);
    for (int j = 0; j < n_sub; ++j) {
      int sc, m;
      q4_k_scale_min(out.scales, j, &sc, &m);
      const float step = d * static_cast<float>(sc);
      if (step == 0.0f) continue;
      const float offset = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) {
        levels[32 * j + l] =
            static_cast<uint8_t>(std::clamp(nearest_int((x[32 * j + l] + offset) / step), 0, 15));
      }
    }
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        out.qs[32 * c + l] =
            static_cast<uint8_t>(levels[64 * c + l] | (levels[64 * c + 32 + l] << 4));
      }
    }
  }
}

void dequantize_q4_k(const block_q4_k* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const float d = fp16_to_fp32(x[b].d), dmin = fp16_to_fp32(x[b].dmin);
    for (int c = 0; c < 4; ++c) {
      int sc_lo, m_lo, sc_hi, m_hi;
      q4_k_scale_min(x[b].scales, 2 * c, &sc_lo, &m_lo);
      q4_k_scale_min(x[b].scales, 2 * c + 1, &sc_hi, &m_hi);
      const float d_lo = d * static_cast<float>(sc_lo), min_lo = dmin * static_cast<float>(m_lo);
      const float d_hi = d * static_cast<float>(sc_hi), min_hi = dmin * static_cast<float>(m_hi);
      const uint8_t* q = x[b].qs + 32 * c;
      for (int l = 0; l < 32; ++l) y[l] = d_lo * static_cast<float>(q[l] & 0x0F) - min_lo;
      for (int l = 0; l < 32; ++l) y[32 + l] = d_hi * static_cast<float>(q[l] >> 4) - min_hi;
      y += 64;
    }
  }
}

// ---- Q6_K ----

// Symmetric fit of one group of 16: x[i] ~ scale * l[i], l in -32..31, weighted by x^2. Tries the
// grid that maps the largest-magnitude element to -32 and 18 slightly stretched ones, each with
// its least-squares scale, and keeps the best. Stores l + 32 in q; returns the (signed) scale.
float fit_scale_q6(const float* x, uint8_t* q) {
  constexpr int n = 16, nmax = 32;
  float amax = 0.0f, extreme = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      extreme = x[i];
    }
  }
  if (amax < 1e-15f) {
    std::fill(q, q + n, uint8_t{0});
    return 0.0f;
  }
  auto level = [](float v) { return std::clamp(nearest_int(v), -nmax, nmax - 1); };
  float inv_scale = -nmax / extreme;
  float sum_lx = 0, sum_l2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = level(inv_scale * x[i]);
    q[i] = static_cast<uint8_t>(l + nmax);
    const float w = x[i] * x[i], fl = static_cast<float>(l);
    sum_lx += w * x[i] * fl;
    sum_l2 += w * fl * fl;
  }
  float scale = sum_l2 != 0 ? sum_lx / sum_l2 : 0.0f;
  float best = scale * sum_lx;
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    inv_scale = -(nmax + 0.1f * static_cast<float>(step)) / extreme;
    sum_lx = sum_l2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = level(inv_scale * x[i]);
      const float w = x[i] * x[i], fl = static_cast<float>(l);
      sum_lx += w * x[i] * fl;
      sum_l2 += w * fl * fl;
    }
    if (sum_l2 > 0 && sum_lx * sum_lx > best * sum_l2) {
      for (int i = 0; i < n; ++i) q[i] = static_cast<uint8_t>(level(inv_scale * x[i]) + nmax);
      scale = sum_lx / sum_l2;
      best = scale * sum_lx;
    }
  }
  return scale;
}

void quantize_q6_k(const float* x, block_q6_k* y, int64_t nb) {
  constexpr int n_groups = qk256 / 16;
  for (int64_t b = 0; b < nb; ++b, x += qk256) {
    uint8_t levels[qk256];
    float scales[n_groups];
    float max_abs_scale = 0.0f, max_scale = 0.0f;
    for (int g = 0; g < n_groups; ++g) {
      scales[g] = fit_scale_q6(x + 16 * g, levels + 16 * g);
      if (std::fabs(scales[g]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[g]);
        max_scale = scales[g];
      }
    }
    block_q6_k& out = y[b];
    if (max_abs_scale < 1e-15f) {
      std::memset(&out, 0, sizeof out);
      continue;
    }
    // Eight-bit group scales relative to the largest (which maps to -128).
    const float inv_scale = -128.0f / max_scale;
    out.d = fp32_to_fp16(1.0f / inv_scale);
    for (int g = 0; g < n_groups; ++g) {
      out.scales[g] = static_cast<int8_t>(std::min(127, nearest_int(inv_scale * scales[g])));
    }
    const float d = fp16_to_fp32(out.d);
    for (int g = 0; g < n_groups; ++g) {
      const float step = d * static_cast<float>(out.scales[g]);
      if (step == 0.0f) continue;
      for (int i = 0; i < 16; ++i) {
        const int l = std::clamp(nearest_int(x[16 * g + i] / step), -32, 31);
        levels[16 * g + i] = static_cast<uint8_t>(l + 32);
      }
    }
    for (int h = 0; h < 2; ++h) {
      const uint8_t* L = levels + 128 * h;
      uint8_t* ql = out.ql + 64 * h;
      uint8_t* qh = out.qh + 32 * h;
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<uint8_t>((L[l] & 0x0F) | ((L[l + 64] & 0x0F) << 4));
        ql[l + 32] = static_cast<uint8_t>((L[l + 32] & 0x0F) | ((L[l + 96] & 0x0F) << 4));
        qh[l] = static_cast<uint8_t>((L[l] >> 4) | ((L[l + 32] >> 4) << 2) | ((L[l + 64] >> 4) << 4) |
                                     ((L[l + 96] >> 4) << 6));
      }
    }
  }
}

void dequantize_q6_k(const block_q6_k* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const float d = fp16_to_fp32(x[b].d);
    for (int h = 0; h < 2; ++h, y += 128) {
      const uint8_t* ql = x[b].ql + 64 * h;
      const uint8_t* qh = x[b].qh + 32 * h;
      const int8_t* sc = x[b].scales + 8 * h;
      for (int l = 0; l < 32; ++l) {
        const int g = l / 16;
        const int q0 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q1 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * static_cast<float>(sc[g] * q0);
        y[l + 32] = d * static_cast<float>(sc[g + 2] * q1);
        y[l + 64] = d * static_cast<float>(sc[g + 4] * q2);
        y[l + 96] = d * static_cast<float>(sc[g + 6] * q3);
      }
    }
  }
}

// ---- Q8_K ----

void quantize_q8_k(const float* x, block_q8_k* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += qk256) {
    float amax = 0.0f, extreme = 0.0f;
    for (int j = 0; j < qk256; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        extreme = x[j];
      }
    }
    block_q8_k& out = y[b];
    if (amax == 0.0f) {
      std::memset(&out, 0, sizeof out);
      continue;
    }
    const float inv_scale = -127.0f / extreme;
    for (int j = 0; j < qk256; ++j) {
      out.qs[j] = static_cast<int8_t>(std::min(127, nearest_int(inv_scale * x[j])));
    }
    for (int g = 0; g < qk256 / 16; ++g) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += out.qs[16 * g + i];
      out.bsums[g] = static_cast<int16_t>(sum);
    }
    out.d = 1.0f / inv_scale;
  }
}

void dequantize_q8_k(const block_q8_k* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += qk256) {
    for (int j = 0; j < qk256; ++j) y[j] = x[b].d * static_cast<float>(x[b].qs[j]);
  }
}

}  // namespace

void dequantize_row(dtype t, const void* src, float* dst, int64_t n) {
  const int64_t nb = n / block_elems(t);
  switch (t) {
    case dtype::F32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); break;
    case dtype::F16: from_f16(static_cast<const uint16_t*>(src), dst, n); break;
    case dtype::BF16: from_bf16(static_cast<const uint16_t*>(src), dst, n); break;
    case dtype::Q4_0: dequantize_q4_0(static_cast<const block_q4_0*>(src), dst, nb); break;
    case dtype::Q8_0: dequantize_q8_0(static_cast<const block_q8_0*>(src), dst, nb); break;
    case dtype::Q4_K: dequantize_q4_k(static_cast<const block_q4_k*>(src), dst, nb); break;
    case dtype::Q6_K: dequantize_q6_k(static_cast<const block_q6_k*>(src), dst, nb); break;
    case dtype::Q8_K: dequantize_q8_k(static_cast<const block_q8_k*>(src), dst, nb); break;
  }
}

void quantize_row(dtype t, const float* src, void* dst, int64_t n) {
  const int64_t nb = n / block_elems(t);
  switch (t) {
    case dtype::F32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); break;
    case dtype::F16: to_f16(src, static_cast<uint16_t*>(dst), n); break;
    case dtype::BF16: to_bf16(src, static_cast<uint16_t*>(dst), n); break;
    case dtype::Q4_0: quantize_q4_0(src, static_cast<block_q4_0*>(dst), nb); break;
    case dtype::Q8_0: quantize_q8_0(src, static_cast<block_q8_0*>(dst), nb); break;
    case dtype::Q4_K: quantize_q4_k(src, static_cast<block_q4_k*>(dst), nb); break;
    case dtype::Q6_K: quantize_q6_k(src, static_cast<block_q6_k*>(dst), nb); break;
    case dtype::Q8_K: quantize_q8_k(src, static_cast<block_q8_k*>(dst), nb); break;
  }
}

}  // namespace gw::kernels
