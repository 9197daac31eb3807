#pragma once
// What each instruction-set level (scalar, AVX2, AVX-512) provides to the op front ends in
// matmul.cpp and ops.cpp: matrix-product tiles per weight type, activation quantizers and the
// vectorised elementwise ops. Internal to kernels/.
#include <cstddef>
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/ops.h"

namespace gw::kernels::detail {

// One matrix product, with the activations already prepared for the weight type:
//   F32 weights:        xf, float rows
//   F16 / BF16 weights: xf, float rows rounded to the weights' format (llama.cpp converts the
//                       activations to it), or for BF16 on levels with bf16_pairs, xh: bf16 rows
//   Q4_0 / Q8_0:        xq + xd, int8 rows and one float scale per 32 (x = d * q)
//   Q4_K / Q6_K:        xq + xd + xbsums, one scale per 256 and the sums of each 16 q's
// y[c * ldy + r] = sum over k of W[r][k] * x[c][k].
struct matmul_args {
  dtype type = dtype::F32;
  const uint8_t* w = nullptr;
  size_t w_row_bytes = 0;
  int64_t k = 0;
  const float* xf = nullptr;
  const uint16_t* xh = nullptr;
  const int8_t* xq = nullptr;
  const float* xd = nullptr;
  const int16_t* xbsums = nullptr;
  int64_t x_stride = 0;  // elements between activation rows (xf / xh / xq)
  int64_t xd_stride = 0;  // scales between rows; the bsums stride is 16 * xd_stride
  float* y = nullptr;
  int64_t ldy = 0;
};

// Computes y for weight rows [r0, r1) and activation rows [c0, c1).
using tile_fn = void (*)(const matmul_args& a, int64_t r0, int64_t r1, int64_t c0, int64_t c1);

struct isa_kernels {
  tile_fn tile_f32, tile_f16, tile_bf16, tile_q4_0, tile_q8_0, tile_q4_k, tile_q6_k;
  bool bf16_pairs;  // tile_bf16 takes bf16 activation rows (xh) for bf16 x bf16 pair products
  // One activation row of k floats to int8 with a scale per 32 (q8_32) or per 256 plus 16-sums
  // (q8_256); q = round-to-nearest-even(x / d), d = max|x| / 127.
  void (*quantize_q8_32)(const float* x, int64_t k, int8_t* q, float* d);
  void (*quantize_q8_256)(const float* x, int64_t k, int8_t* q, float* d, int16_t* bsums);
  // x rounded to F16 / BF16 precision (round to nearest even), as floats: the activations of
  // F16 / BF16 weights.
  void (*round_f16)(const float* x, float* y, int64_t n);
  void (*round_bf16)(const float* x, float* y, int64_t n);
  void (*rms_norm)(const float* x, const float* weight, float* y, int64_t n, float eps);
  void (*silu_mul)(const float* gate, const float* up, float* out, int64_t n);
  void (*add)(float* y, const float* x, int64_t n);
  void (*softmax)(float* x, int64_t n);
  void (*attention_head)(const float* q, const float* const* k_rows, const float* const* v_rows,
                         int64_t n_kv, int64_t head_dim, float scale, float* scratch, float* out);
};

const isa_kernels& scalar_kernels();
const isa_kernels& avx2_kernels();    // only on CPUs with AVX2 + FMA + F16C
const isa_kernels& avx512_kernels();  // only on CPUs with AVX-512 F/BW/VL/DQ + VNNI
// The table of a supported level.
const isa_kernels& kernels_for(isa level);

}  // namespace gw::kernels::detail
