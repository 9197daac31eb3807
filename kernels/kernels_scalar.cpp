// The portable level: plain C++ tile kernels (integer sums per block, float accumulation, the
// same arithmetic as the SIMD levels), activation quantizers and elementwise ops. It is what runs
// on CPUs without AVX2 and the baseline the SIMD paths are tested against.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/blocks.h"
#include "kernels/isa_kernels.h"

namespace gw::kernels::detail {
namespace {

// ---- activation quantizers ----

void quantize_q8_32(const float* x, int64_t k, int8_t* q, float* d) {
  for (int64_t b = 0; b < k / qk32; ++b, x += qk32, q += qk32) {
    float amax = 0.0f;
    for (int i = 0; i < qk32; ++i) amax = std::max(amax, std::fabs(x[i]));
    d[b] = amax / 127.0f;
    const float inv = amax != 0.0f ? 127.0f / amax : 0.0f;
    for (int i = 0; i < qk32; ++i) q[i] = static_cast<int8_t>(std::nearbyint(x[i] * inv));
  }
}

void quantize_q8_256(const float* x, int64_t k, int8_t* q, float* d, int16_t* bsums) {
  for (int64_t b = 0; b < k / qk256; ++b, x += qk256, q += qk256, bsums += 16) {
    float amax = 0.0f;
    for (int i = 0; i < qk256; ++i) amax = std::max(amax, std::fabs(x[i]));
    d[b] = amax / 127.0f;
    const float inv = amax != 0.0f ? 127.0f / amax : 0.0f;
    for (int i = 0; i < qk256; ++i) q[i] = static_cast<int8_t>(std::nearbyint(x[i] * inv));
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += q[16 * g + i];
      bsums[g] = static_cast<int16_t>(sum);
    }
  }
}

// ---- dot products of one weight row with one prepared activation row ----

float dot_f32(const matmul_args& a, int64_t r, int64_t c) {
  const auto* w = reinterpret_cast<const float*>(a.w + static_cast<size_t>(r) * a.w_row_bytes);
  const float* x = a.xf + c * a.x_stride;
  float sum = 0.0f;
  for (int64_t i = 0; i < a.k; ++i) sum += w[i] * x[i];
  return sum;
}

// F16 / BF16 weights; the activations come rounded to the same format, as floats.
template <float (*to_f32)(uint16_t)>
float dot_16bit(const matmul_args& a, int64_t r, int64_t c) {
  const auto* w = reinterpret_cast<const uint16_t*>(a.w + static_cast<size_t>(r) * a.w_row_bytes);
  const float* x = a.xf + c * a.x_stride;
  float sum = 0.0f;
  for (int64_t i = 0; i < a.k; ++i) sum += to_f32(w[i]) * x[i];
  return sum;
}

float dot_q4_0(const matmul_args& a, int64_t r, int64_t c) {
  const auto* w = reinterpret_cast<const block_q4_0*>(a.w + static_cast<size_t>(r) * a.w_row_bytes);
  const int8_t* x = a.xq + c * a.x_stride;
  const float* xd = a.xd + c * a.xd_stride;
  float sum = 0.0f;
  for (int64_t b = 0; b < a.k / qk32; ++b, x += qk32) {
    int isum = 0;
    for (int j = 0; j < qk32 / 2; ++j) {
      isum += ((w[b].qs[j] & 0x0F) - 8) * x[j] + ((w[b].qs[j] >> 4) - 8) * x[j + 16];
    }
    sum += static_cast<float>(isum) * (fp16_to_fp32(w[b].d) * xd[b]);
  }
  return sum;
}

float dot_q8_0(const matmul_args& a, int64_t r, int64_t c) {
  const auto* w = reinterpret_cast<const block_q8_0*>(a.w + static_cast<size_t>(r) * a.w_row_bytes);
  const int8_t* x = a.xq + c * a.x_stride;
  const float* xd = a.xd + c * a.xd_stride;
  float sum = 0.0f;
  for (int64_t b = 0; b < a.k / qk32; ++b, x += qk32) {
    int isum = 0;
    for (int j = 0; j < qk32; ++j) isum += w[b].qs[j] * x[j];
    sum += static_cast<float>(isum) * (fp16_to_fp32(w[b].d) * xd[b]);
  }
  return sum;
}

float dot_q4_k(const matmul_args& a, int64_t r, int64_t c) {
  const auto* w = reinterpret_cast<const block_q4_k*>(a.w + static_cast<size_t>(r) * a.w_row_bytes);
  const int8_t* x = a.xq + c * a.x_stride;
  const float* xd = a.xd + c * a.xd_stride;
  const int16_t* bsums = a.xbsums + c * a.xd_stride * 16;
  float sum = 0.0f;
  for (int64_t b = 0; b < a.k / qk256; ++b, x += qk256, bsums += 16) {
    int scaled = 0, mins = 0;
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      q4_k_scale_min(w[b].scales, j, &sc, &m);
      const uint8_t* q = w[b].qs + 32 * (j / 2);
      const int shift = (j % 2) * 4;
      int isum = 0;
      for (int l = 0; l < 32; ++l) isum += ((q[l] >> shift) & 0x0F) * x[32 * j + l];
      scaled += sc * isum;
      mins += m * (bsums[2 * j] + bsums[2 * j + 1]);
    }
    sum += xd[b] * (fp16_to_fp32(w[b].d) * static_cast<float>(scaled) -
                    fp16_to_fp32(w[b].dmin) * static_cast<float>(mins));
  }
  return sum;
}

float dot_q6_k(const matmul_args& a, int64_t r, int64_t c) {
  const auto* w = reinterpret_cast<const block_q6_k*>(a.w + static_cast<size_t>(r) * a.w_row_bytes);
  const int8_t* x = a.xq + c * a.x_stride;
  const float* xd = a.xd + c * a.xd_stride;
  float sum = 0.0f;
  for (int64_t b = 0; b < a.k / qk256; ++b, x += qk256) {
    int scaled = 0;
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = w[b].ql + 64 * h;
      const uint8_t* qh = w[b].qh + 32 * h;
      const int8_t* sc = w[b].scales + 8 * h;
      const int8_t* xs = x + 128 * h;
      // Quarter s (elements 32s .. 32s + 31 of the half) takes its low 4 bits from ql[l] or
      // ql[32 + l] (low or high nibble) and its top 2 bits from qh[l], bits 2s, 2s + 1.
      for (int s = 0; s < 4; ++s) {
        const uint8_t* lo = ql + 32 * (s % 2);
        const int lo_shift = 4 * (s / 2);
        for (int g = 0; g < 2; ++g) {
          int isum = 0;
          for (int l = 16 * g; l < 16 * g + 16; ++l) {
            const int q = (((lo[l] >> lo_shift) & 0x0F) | (((qh[l] >> (2 * s)) & 3) << 4)) - 32;
            isum += q * xs[32 * s + l];
          }
          scaled += sc[2 * s + g] * isum;
        }
      }
    }
    sum += xd[b] * fp16_to_fp32(w[b].d) * static_cast<float>(scaled);
  }
  return sum;
}

template <float (*dot)(const matmul_args&, int64_t, int64_t)>
void tile(const matmul_args& a, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  for (int64_t c = c0; c < c1; ++c) {
    for (int64_t r = r0; r < r1; ++r) a.y[c * a.ldy + r] = dot(a, r, c);
  }
}

// ---- elementwise ----

void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * weight[i];
}

void round_f16(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
}

void round_bf16(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_fp32(fp32_to_bf16(x[i]));
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void add(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  const float max = *std::max_element(x, x + n);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void attention_head(const float* q, const float* const* k_rows, const float* const* v_rows,
                    int64_t n_kv, int64_t head_dim, float scale, float* scratch, float* out) {
  for (int64_t j = 0; j < n_kv; ++j) {
    float dot = 0.0f;
    for (int64_t i = 0; i < head_dim; ++i) dot += q[i] * k_rows[j][i];
    scratch[j] = scale * dot;
  }
  softmax(scratch, n_kv);
  std::fill(out, out + head_dim, 0.0f);
  for (int64_t j = 0; j < n_kv; ++j) {
    const float p = scratch[j];
    for (int64_t i = 0; i < head_dim; ++i) out[i] += p * v_rows[j][i];
  }
}

}  // namespace

const isa_kernels& scalar_kernels() {
  static const isa_kernels k = {
      tile<dot_f32>,
      tile<dot_16bit<fp16_to_fp32>>,
      tile<dot_16bit<bf16_to_fp32>>,
      tile<dot_q4_0>,
      tile<dot_q8_0>,
      tile<dot_q4_k>,
      tile<dot_q6_k>,
      false,
      quantize_q8_32,
      quantize_q8_256,
      round_f16,
      round_bf16,
      rms_norm,
      silu_mul,
      add,
      softmax,
      attention_head,
  };
  return k;
}

}  // namespace gw::kernels::detail
