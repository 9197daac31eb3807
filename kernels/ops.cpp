// Front ends of the elementwise ops, RoPE and row lookup: choose the instruction-set level and
// call its implementation (isa_kernels.h). RoPE is computed here for every level: its angles are
// evaluated once per call (in double) and applied to all heads.
#include <cmath>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/isa_kernels.h"
#include "kernels/ops.h"

namespace gw::kernels {

isa best_isa() {
  if (isa_supported(isa::avx512)) return isa::avx512;
  if (isa_supported(isa::avx2)) return isa::avx2;
  return isa::scalar;
}

bool isa_supported(isa level) {
  switch (level) {
    case isa::scalar: return true;
    case isa::avx2: return cpu().avx2;
    case isa::avx512: return cpu().avx512 && cpu().avx512_vnni;
  }
  return false;
}

const char* isa_name(isa level) {
  switch (level) {
    case isa::scalar: return "scalar";
    case isa::avx2: return "avx2";
    case isa::avx512: return "avx512";
  }
  return "?";
}

namespace detail {

const isa_kernels& kernels_for(isa level) {
  switch (level) {
    case isa::avx512: return avx512_kernels();
    case isa::avx2: return avx2_kernels();
    case isa::scalar: break;
  }
  return scalar_kernels();
}

}  // namespace detail

namespace {

const detail::isa_kernels& best_kernels() {
  static const detail::isa_kernels& k = detail::kernels_for(best_isa());
  return k;
}

}  // namespace

void matmul(const weight_view& w, const float* x, float* y, int64_t m, thread_pool* pool) {
  static const isa level = best_isa();
  matmul(level, w, x, y, m, pool);
}

void matmul_many(const matmul_job* jobs, int n_jobs, const float* x, int64_t m, thread_pool* pool) {
  static const isa level = best_isa();
  matmul_many(level, jobs, n_jobs, x, m, pool);
}

void get_row(const weight_view& w, int64_t r, float* dst) {
  const auto* row = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * row_bytes(w.type, w.cols);
  dequantize_row(w.type, row, dst, w.cols);
}

void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps) {
  best_kernels().rms_norm(x, weight, y, n, eps);
}
void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  best_kernels().silu_mul(gate, up, out, n);
}
void add(float* y, const float* x, int64_t n) { best_kernels().add(y, x, n); }
void softmax(float* x, int64_t n) { best_kernels().softmax(x, n); }
void attention_head(const float* q, const float* const* k_rows, const float* const* v_rows,
                    int64_t n_kv, int64_t head_dim, float scale, float* scratch, float* out) {
  best_kernels().attention_head(q, k_rows, v_rows, n_kv, head_dim, scale, scratch, out);
}

void rms_norm(isa level, const float* x, const float* weight, float* y, int64_t n, float eps) {
  detail::kernels_for(level).rms_norm(x, weight, y, n, eps);
}
void silu_mul(isa level, const float* gate, const float* up, float* out, int64_t n) {
  detail::kernels_for(level).silu_mul(gate, up, out, n);
}
void add(isa level, float* y, const float* x, int64_t n) { detail::kernels_for(level).add(y, x, n); }
void softmax(isa level, float* x, int64_t n) { detail::kernels_for(level).softmax(x, n); }
void attention_head(isa level, const float* q, const float* const* k_rows,
                    const float* const* v_rows, int64_t n_kv, int64_t head_dim, float scale,
                    float* scratch, float* out) {
  detail::kernels_for(level).attention_head(q, k_rows, v_rows, n_kv, head_dim, scale, scratch, out);
}

void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t pos, float base,
          const float* freq_factors, rope_pairing pairing) {
  const int64_t half = head_dim / 2;
  thread_local std::vector<float> cos_sin;
  cos_sin.resize(static_cast<size_t>(2 * half));
  for (int64_t i = 0; i < half; ++i) {
    double angle = static_cast<double>(pos) *
                   std::pow(static_cast<double>(base), -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    if (freq_factors) angle /= static_cast<double>(freq_factors[i]);
    cos_sin[static_cast<size_t>(2 * i)] = static_cast<float>(std::cos(angle));
    cos_sin[static_cast<size_t>(2 * i + 1)] = static_cast<float>(std::sin(angle));
  }
  rope_rotate(x, n_heads, head_dim, cos_sin.data(), pairing);
}

void rope_rotate(float* x, int64_t n_heads, int64_t head_dim, const float* cs, rope_pairing pairing) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    if (pairing == rope_pairing::adjacent) {
      for (int64_t i = 0; i < half; ++i) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        const float a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * c - b * s;
        v[2 * i + 1] = a * s + b * c;
      }
    } else {
      for (int64_t i = 0; i < half; ++i) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        const float a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = a * s + b * c;
      }
    }
  }
}

}  // namespace gw::kernels
