#pragma once
// CPU kernels: the per-op implementations the forward pass is built from. Every op has a plain
// float64 reference in tests/kernels and SIMD paths (AVX2 / AVX-512) chosen at run time
// (kernels/cpu_features.h). The CUDA kernels will be checked against these.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "kernels/dtype.h"

namespace gw::kernels {

// ---- scalar conversions ----
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);   // round to nearest even
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);   // round to nearest even (NaN kept NaN)

// ---- rows of a tensor type ----
// dst[0..n) = the n elements of a row stored in `t`'s layout (n a multiple of block_elems(t)).
void dequantize_row(dtype t, const void* src, float* dst, int64_t n);
// The reverse: stores n floats in `t`'s layout (the ggml reference quantizers' block formats).
void quantize_row(dtype t, const float* src, void* dst, int64_t n);

// ---- threads ----
// A fixed set of worker threads; parallel_for splits [0, n) into contiguous chunks, runs
// fn(begin, end) on the workers and the calling thread, and returns when all are done.
class thread_pool {
 public:
  explicit thread_pool(int n_threads);  // n_threads <= 0: the number of cores
  ~thread_pool();
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;
  int size() const;  // threads including the caller
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// ---- matrix products ----
// A weight matrix as stored in GGUF: `rows` rows (output features) of `cols` elements (input
// features, ne[0]), each row row_bytes(type, cols) bytes, contiguous.
struct weight_view {
  dtype type = dtype::F32;
  const void* data = nullptr;
  int64_t cols = 0;
  int64_t rows = 0;
};

// y[i][r] = sum_c x[i][c] * W[r][c] for i < m (x: m x cols floats, y: m x rows floats, row-major).
// Quantized weights use quantized dot products (activations quantized once per call, as llama.cpp
// does: Q8_0 blocks for Q4_0/Q8_0 weights, Q8_K for Q4_K/Q6_K; F16/BF16 weights take F16/BF16
// activations), never a dequantised copy of W. `pool` may be null (single thread).
void matmul(const weight_view& w, const float* x, float* y, int64_t m, thread_pool* pool);

// Several products of the same activations (the q, k and v projections; gate and up): the
// activations are prepared once per form and all outputs are computed in one pass over the
// threads. Every weight must have the same cols, the width of x (m x cols); jobs of another width
// are skipped. Job j's y is m x rows_j.
struct matmul_job {
  weight_view w;
  float* y = nullptr;
};
void matmul_many(const matmul_job* jobs, int n_jobs, const float* x, int64_t m, thread_pool* pool);

// Row `r` of W as floats (embedding lookup).
void get_row(const weight_view& w, int64_t r, float* dst);

// ---- elementwise and normalisation ----
// y = x / sqrt(mean(x^2) + eps) * weight   (y may alias x)
void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps);
// out = silu(gate) * up   (out may alias gate or up)
void silu_mul(const float* gate, const float* up, float* out, int64_t n);
// y += x
void add(float* y, const float* x, int64_t n);
// In place, numerically stable (max subtracted first).
void softmax(float* x, int64_t n);

// ---- rotary position embedding ----
enum class rope_pairing {
  adjacent,  // llama ("NORM"): rotates (2i, 2i+1)
  halves,    // qwen2 / neox: rotates (i, i + head_dim/2)
};
// Rotates n_heads heads of head_dim floats (contiguous) for position `pos`. Angle i is
// pos * base^(-2i/head_dim) / freq_factors[i] (freq_factors null: all 1; Llama-3.1 rope_freqs).
void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t pos, float base,
          const float* freq_factors, rope_pairing pairing);
// The same rotation with the (cos, sin) of each pair given: cs[2i], cs[2i + 1] (a forward pass
// computes them once per position for every layer, Q and K).
void rope_rotate(float* x, int64_t n_heads, int64_t head_dim, const float* cs, rope_pairing pairing);

// ---- attention for one query head ----
// out[head_dim] = sum_j softmax_j(scale * q·k_j) * v_j over the n_kv key/value rows given by pointer
// (rows may live anywhere, e.g. pages of a paged KV cache). `scratch` holds n_kv floats.
void attention_head(const float* q, const float* const* k_rows, const float* const* v_rows,
                    int64_t n_kv, int64_t head_dim, float scale, float* scratch, float* out);

// ---- instruction-set levels ----
// The ops above run on the best level the CPU offers (kernels::cpu(), capped by TOLLGATE_SIMD).
// Tests and benchmarks run a given level through the overloads below; `level` must be supported
// (isa_supported). The elementwise ops have scalar and AVX2 code; avx512 runs them with AVX2.
enum class isa { scalar, avx2, avx512 };
isa best_isa();
bool isa_supported(isa level);
const char* isa_name(isa level);  // "scalar", "avx2", "avx512"

void matmul(isa level, const weight_view& w, const float* x, float* y, int64_t m, thread_pool* pool);
void matmul_many(isa level, const matmul_job* jobs, int n_jobs, const float* x, int64_t m, thread_pool* pool);
void rms_norm(isa level, const float* x, const float* weight, float* y, int64_t n, float eps);
void silu_mul(isa level, const float* gate, const float* up, float* out, int64_t n);
void add(isa level, float* y, const float* x, int64_t n);
void softmax(isa level, float* x, int64_t n);
void attention_head(isa level, const float* q, const float* const* k_rows,
                    const float* const* v_rows, int64_t n_kv, int64_t head_dim, float scale,
                    float* scratch, float* out);

}  // namespace gw::kernels
