// The AVX2 level (with FMA and F16C): matrix-product tiles for every weight type, activation
// quantizers and the vectorised elementwise ops (also used by the AVX-512 level). Quantized dot
// products stay in integers within a block: maddubs (u8 x s8 -> s16 pairs) then madd (-> s32),
// one float multiply-add per block (or per 256-element super-block for the K types).
// Everything here has internal linkage and uses no inline library templates or functions (libm
// through builtins), so no code built for AVX2 can be picked by the linker for another level.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "kernels/blocks.h"
#include "kernels/isa_kernels.h"
#include "kernels/tile_loop.h"

namespace gw::kernels::detail {
namespace {

inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline __m256i hsum_pairs_to_i32(__m256i pairs16) { return _mm256_madd_epi16(pairs16, _mm256_set1_epi16(1)); }

inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

// 16 bytes of nibbles -> 32 bytes: the low nibbles (elements 0..15), then the high ones (16..31).
inline __m256i unpack_nibbles_16(const uint8_t* qs) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// Signed bytes times signed bytes, summed in pairs: maddubs wants its first operand unsigned, so
// it takes |w| and moves w's sign onto x.
inline __m256i dot_pairs_s8(__m256i w_abs, __m256i w, __m256i x) {
  return _mm256_maddubs_epi16(w_abs, _mm256_sign_epi8(x, w));
}

// ---- activation quantizers ----

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// 32 floats -> 32 int8 (round to nearest even) at scale 127 / amax; returns amax.
inline float quantize_32(const float* x, int8_t* q) {
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  __m256 v[4];
  __m256 amax = _mm256_setzero_ps();
  TILE_UNROLL
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_loadu_ps(x + 8 * i);
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_mask, v[i]));
  }
  const float m = hmax(amax);
  const __m256 inv = _mm256_set1_ps(m != 0.0f ? 127.0f / m : 0.0f);
  __m256i i32[4];
  TILE_UNROLL
  for (int i = 0; i < 4; ++i) i32[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], inv));
  // Pack 32-bit -> 16-bit -> 8-bit; packs interleave 128-bit lanes, the permute restores order.
  const __m256i i16a = _mm256_packs_epi32(i32[0], i32[1]);
  const __m256i i16b = _mm256_packs_epi32(i32[2], i32[3]);
  const __m256i i8 = _mm256_packs_epi16(i16a, i16b);
  const __m256i ordered = _mm256_permutevar8x32_epi32(i8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), ordered);
  return m;
}

void quantize_q8_32(const float* x, int64_t k, int8_t* q, float* d) {
  for (int64_t b = 0; b < k / qk32; ++b) d[b] = quantize_32(x + b * qk32, q + b * qk32) / 127.0f;
}

void quantize_q8_256(const float* x, int64_t k, int8_t* q, float* d, int16_t* bsums) {
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < k / qk256; ++b, x += qk256, q += qk256, bsums += 16) {
    __m256 amax = _mm256_setzero_ps();
    for (int i = 0; i < qk256; i += 8) amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_mask, _mm256_loadu_ps(x + i)));
    const float m = hmax(amax);
    d[b] = m / 127.0f;
    const __m256 inv = _mm256_set1_ps(m != 0.0f ? 127.0f / m : 0.0f);
    for (int i = 0; i < qk256; i += 32) {
      __m256i i32[4];
      TILE_UNROLL
      for (int j = 0; j < 4; ++j) i32[j] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * j), inv));
      const __m256i i8 = _mm256_packs_epi16(_mm256_packs_epi32(i32[0], i32[1]), _mm256_packs_epi32(i32[2], i32[3]));
      const __m256i ordered = _mm256_permutevar8x32_epi32(i8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), ordered);
      // Sums of each 16: widen to 16 bits and add neighbours down to one per 16 elements.
      const __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), ordered);  // pairs
      const __m256i s32 = hsum_pairs_to_i32(s16);                               // quads
      alignas(32) int32_t quads[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(quads), s32);
      bsums[i / 16] = static_cast<int16_t>(quads[0] + quads[1] + quads[2] + quads[3]);
      bsums[i / 16 + 1] = static_cast<int16_t>(quads[4] + quads[5] + quads[6] + quads[7]);
    }
  }
}

// ---- float-type tiles ----

// Loads 8 weights / activations of each float format as float32.
struct f32_loader {
  static constexpr int bytes = 4;
  static __m256 load(const void* p, int64_t i) { return _mm256_loadu_ps(static_cast<const float*>(p) + i); }
  static float scalar(const void* p, int64_t i) { return static_cast<const float*>(p)[i]; }
};
struct f16_loader {
  static constexpr int bytes = 2;
  static __m256 load(const void* p, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i)));
  }
  static float scalar(const void* p, int64_t i) { return half_to_float(static_cast<const uint16_t*>(p)[i]); }
};
struct bf16_loader {
  static constexpr int bytes = 2;
  static __m256 load(const void* p, int64_t i) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float scalar(const void* p, int64_t i) {
    const uint32_t u = static_cast<uint32_t>(static_cast<const uint16_t*>(p)[i]) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  }
};

// Weights in format L times float activations (already rounded to L's precision).
template <class L>
struct float_kernel {
  static constexpr int C = 4;
  static constexpr int rows_for(int nc) { return nc == 1 ? 1 : 2; }

  // One weight row times one activation row: 32 elements per step on four accumulators.
  static void row_dot(const matmul_args& a, int64_t r, int64_t c) {
    const auto* w = a.w + static_cast<size_t>(r) * a.w_row_bytes;
    const float* x = a.xf + c * a.x_stride;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t e = 0;
    for (; e + 32 <= a.k; e += 32) {
      prefetch_weights<1, 32 * L::bytes>(w + e * L::bytes);
      TILE_UNROLL
      for (int u = 0; u < 4; ++u) acc[u] = _mm256_fmadd_ps(L::load(w, e + 8 * u), _mm256_loadu_ps(x + e + 8 * u), acc[u]);
    }
    for (; e + 8 <= a.k; e += 8) acc[0] = _mm256_fmadd_ps(L::load(w, e), _mm256_loadu_ps(x + e), acc[0]);
    float sum = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; e < a.k; ++e) sum += L::scalar(w, e) * x[e];
    a.y[c * a.ldy + r] = sum;
  }

  template <int NR, int NC>
  static void micro(const matmul_args& a, int64_t r, int64_t c) {
    if constexpr (NR == 1 && NC == 1) {
      row_dot(a, r, c);
      return;
    }
    const void* w[NR];
    const float* x[NC];
    TILE_UNROLL
    for (int i = 0; i < NR; ++i) w[i] = a.w + static_cast<size_t>(r + i) * a.w_row_bytes;
    TILE_UNROLL
    for (int j = 0; j < NC; ++j) x[j] = a.xf + (c + j) * a.x_stride;
    __m256 acc[NR][NC];
    TILE_UNROLL
    for (int i = 0; i < NR; ++i)
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) acc[i][j] = _mm256_setzero_ps();
    const int64_t k8 = a.k / 8 * 8;
    for (int64_t e = 0; e < k8; e += 8) {
      TILE_UNROLL
      for (int i = 0; i < NR; ++i) prefetch_weights<NR, 8 * L::bytes>(static_cast<const uint8_t*>(w[i]) + e * L::bytes);
      __m256 wv[NR];
      TILE_UNROLL
      for (int i = 0; i < NR; ++i) wv[i] = L::load(w[i], e);
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) {
        const __m256 xv = _mm256_loadu_ps(x[j] + e);
        TILE_UNROLL
        for (int i = 0; i < NR; ++i) acc[i][j] = _mm256_fmadd_ps(wv[i], xv, acc[i][j]);
      }
    }
    TILE_UNROLL
    for (int i = 0; i < NR; ++i) {
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) {
        float sum = hsum(acc[i][j]);
        for (int64_t e = k8; e < a.k; ++e) sum += L::scalar(w[i], e) * x[j][e];
        a.y[(c + j) * a.ldy + r + i] = sum;
      }
    }
  }
};

// ---- Q4_0 / Q8_0 (blocks of 32, Q8 activations with a scale per 32) ----

struct q4_0_kernel {
  static constexpr int C = 4;
  static constexpr int rows_for(int nc) { return nc == 1 ? 1 : 2; }

  template <int NR, int NC>
  static void micro(const matmul_args& a, int64_t r, int64_t c) {
    const block_q4_0* w[NR];
    TILE_UNROLL
    for (int i = 0; i < NR; ++i) w[i] = reinterpret_cast<const block_q4_0*>(a.w + static_cast<size_t>(r + i) * a.w_row_bytes);
    __m256 acc[NR][NC];
    TILE_UNROLL
    for (int i = 0; i < NR; ++i)
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) acc[i][j] = _mm256_setzero_ps();
    const __m256i eight = _mm256_set1_epi8(8);
    const int64_t nb = a.k / qk32;
    for (int64_t b = 0; b < nb; ++b) {
      TILE_UNROLL
      for (int i = 0; i < NR; ++i) prefetch_weights<NR, sizeof(block_q4_0)>(w[i] + b);
      __m256i wq[NR], wabs[NR];
      float wd[NR];
      TILE_UNROLL
      for (int i = 0; i < NR; ++i) {
        wq[i] = _mm256_sub_epi8(unpack_nibbles_16(w[i][b].qs), eight);
        wabs[i] = _mm256_sign_epi8(wq[i], wq[i]);
        wd[i] = half_to_float(w[i][b].d);
      }
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq + (c + j) * a.x_stride + b * qk32));
        const float xd = a.xd[(c + j) * a.xd_stride + b];
        TILE_UNROLL
        for (int i = 0; i < NR; ++i) {
          const __m256 dot = _mm256_cvtepi32_ps(hsum_pairs_to_i32(dot_pairs_s8(wabs[i], wq[i], xv)));
          acc[i][j] = _mm256_fmadd_ps(dot, _mm256_set1_ps(wd[i] * xd), acc[i][j]);
        }
      }
    }
    TILE_UNROLL
    for (int i = 0; i < NR; ++i)
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) a.y[(c + j) * a.ldy + r + i] = hsum(acc[i][j]);
  }
};

struct q8_0_kernel {
  static constexpr int C = 4;
  static constexpr int rows_for(int nc) { return nc == 1 ? 1 : 2; }

  template <int NR, int NC>
  static void micro(const matmul_args& a, int64_t r, int64_t c) {
    const block_q8_0* w[NR];
    TILE_UNROLL
    for (int i = 0; i < NR; ++i) w[i] = reinterpret_cast<const block_q8_0*>(a.w + static_cast<size_t>(r + i) * a.w_row_bytes);
    __m256 acc[NR][NC];
    TILE_UNROLL
    for (int i = 0; i < NR; ++i)
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) acc[i][j] = _mm256_setzero_ps();
    const int64_t nb = a.k / qk32;
    for (int64_t b = 0; b < nb; ++b) {
      TILE_UNROLL
      for (int i = 0; i < NR; ++i) prefetch_weights<NR, sizeof(block_q8_0)>(w[i] + b);
      __m256i wq[NR], wabs[NR];
      float wd[NR];
      TILE_UNROLL
      for (int i = 0; i < NR; ++i) {
        wq[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i][b].qs));
        wabs[i] = _mm256_sign_epi8(wq[i], wq[i]);
        wd[i] = half_to_float(w[i][b].d);
      }
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq + (c + j) * a.x_stride + b * qk32));
        const float xd = a.xd[(c + j) * a.xd_stride + b];
        TILE_UNROLL
        for (int i = 0; i < NR; ++i) {
          const __m256 dot = _mm256_cvtepi32_ps(hsum_pairs_to_i32(dot_pairs_s8(wabs[i], wq[i], xv)));
          acc[i][j] = _mm256_fmadd_ps(dot, _mm256_set1_ps(wd[i] * xd), acc[i][j]);
        }
      }
    }
    TILE_UNROLL
    for (int i = 0; i < NR; ++i)
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) a.y[(c + j) * a.ldy + r + i] = hsum(acc[i][j]);
  }
};

// ---- Q4_K / Q6_K (super-blocks of 256, Q8_K-style activations) ----

// The eight 6-bit scales and mins of a Q4_K block as bytes.
inline void unpack_q4_k_scales(const uint8_t* packed, uint8_t* sc, uint8_t* m) {
  uint32_t w[3];
  std::memcpy(w, packed, 12);
  const uint32_t sc_lo = w[0] & 0x3F3F3F3Fu;
  const uint32_t m_lo = w[1] & 0x3F3F3F3Fu;
  const uint32_t sc_hi = (w[2] & 0x0F0F0F0Fu) | ((w[0] >> 2) & 0x30303030u);
  const uint32_t m_hi = ((w[2] >> 4) & 0x0F0F0F0Fu) | ((w[1] >> 2) & 0x30303030u);
  std::memcpy(sc, &sc_lo, 4);
  std::memcpy(sc + 4, &sc_hi, 4);
  std::memcpy(m, &m_lo, 4);
  std::memcpy(m + 4, &m_hi, 4);
}

struct q4_k_kernel {
  static constexpr int C = 4;
  static constexpr int rows_for(int) { return 1; }

  template <int NR, int NC>
  static void micro(const matmul_args& a, int64_t r, int64_t c) {
    static_assert(NR == 1);
    const auto* w = reinterpret_cast<const block_q4_k*>(a.w + static_cast<size_t>(r) * a.w_row_bytes);
    const __m256i low_mask = _mm256_set1_epi8(0x0F);
    __m256 acc[NC];
    TILE_UNROLL
    for (int j = 0; j < NC; ++j) acc[j] = _mm256_setzero_ps();
    const int64_t nb = a.k / qk256;
    for (int64_t b = 0; b < nb; ++b) {
      prefetch_weights<1, sizeof(block_q4_k)>(w + b);
      alignas(16) uint8_t sc[8], m[8];
      unpack_q4_k_scales(w[b].scales, sc, m);
      // Mins paired with the 16-element sums: m0 m0 m1 m1 ... m7 m7.
      const __m128i m8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(m));
      const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
      __m256i isum[NC];
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) isum[j] = _mm256_setzero_si256();
      TILE_UNROLL
      for (int g = 0; g < 4; ++g) {
        const __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs + 32 * g));
        const __m256i lo = _mm256_and_si256(qv, low_mask);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qv, 4), low_mask);
        const __m256i sc_lo = _mm256_set1_epi16(sc[2 * g]);
        const __m256i sc_hi = _mm256_set1_epi16(sc[2 * g + 1]);
        TILE_UNROLL
        for (int j = 0; j < NC; ++j) {
          const int8_t* x = a.xq + (c + j) * a.x_stride + b * qk256 + 64 * g;
          const __m256i x_lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
          const __m256i x_hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32));
          const __m256i p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x_lo), sc_lo);
          const __m256i p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x_hi), sc_hi);
          isum[j] = _mm256_add_epi32(isum[j], _mm256_add_epi32(p_lo, p_hi));
        }
      }
      const float d = half_to_float(w[b].d), dmin = half_to_float(w[b].dmin);
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) {
        const float xd = a.xd[(c + j) * a.xd_stride + b];
        const __m256i bs = _mm256_loadu_si256(
            reinterpret_cast<const __m256i*>(a.xbsums + ((c + j) * a.xd_stride + b) * 16));
        const __m256 mins = _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mins16));
        acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_set1_ps(d * xd), acc[j]);
        acc[j] = _mm256_fnmadd_ps(mins, _mm256_set1_ps(dmin * xd), acc[j]);
      }
    }
    TILE_UNROLL
    for (int j = 0; j < NC; ++j) a.y[(c + j) * a.ldy + r] = hsum(acc[j]);
  }
};

struct q6_k_kernel {
  static constexpr int C = 4;
  static constexpr int rows_for(int) { return 1; }

  template <int NR, int NC>
  static void micro(const matmul_args& a, int64_t r, int64_t c) {
    static_assert(NR == 1);
    const auto* w = reinterpret_cast<const block_q6_k*>(a.w + static_cast<size_t>(r) * a.w_row_bytes);
    const __m256i low_mask = _mm256_set1_epi8(0x0F);
    const __m256i top_mask = _mm256_set1_epi8(0x30);
    __m256 acc[NC];
    TILE_UNROLL
    for (int j = 0; j < NC; ++j) acc[j] = _mm256_setzero_ps();
    const int64_t nb = a.k / qk256;
    for (int64_t b = 0; b < nb; ++b) {
      prefetch_weights<1, sizeof(block_q6_k)>(w + b);
      const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].scales)));
      __m256i isum[NC];
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) {
        // The -32 offset of every level: -32 * sum_g sc[g] * bsums[g].
        const __m256i bs = _mm256_loadu_si256(
            reinterpret_cast<const __m256i*>(a.xbsums + ((c + j) * a.xd_stride + b) * 16));
        isum[j] = _mm256_slli_epi32(_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_madd_epi16(bs, sc16)), 5);
      }
      TILE_UNROLL
      for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = w[b].ql + 64 * h;
        const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
        const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qh + 32 * h));
        __m256i q[4];
        q[0] = _mm256_or_si256(_mm256_and_si256(ql0, low_mask), _mm256_and_si256(_mm256_slli_epi16(qh, 4), top_mask));
        q[1] = _mm256_or_si256(_mm256_and_si256(ql1, low_mask), _mm256_and_si256(_mm256_slli_epi16(qh, 2), top_mask));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low_mask), _mm256_and_si256(qh, top_mask));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low_mask),
                               _mm256_and_si256(_mm256_srli_epi16(qh, 2), top_mask));
        // Group scales of this half in both 128-bit lanes; quarter s takes groups 2s and 2s + 1
        // (the low lane's 8 pair sums are group 2s, the high lane's group 2s + 1).
        const __m256i half_scales = _mm256_broadcastsi128_si256(
            h == 0 ? _mm256_castsi256_si128(sc16) : _mm256_extracti128_si256(sc16, 1));
        TILE_UNROLL
        for (int s = 0; s < 4; ++s) {
          const __m256i pick = _mm256_setr_epi8(
              static_cast<char>(4 * s), static_cast<char>(4 * s + 1), static_cast<char>(4 * s), static_cast<char>(4 * s + 1),
              static_cast<char>(4 * s), static_cast<char>(4 * s + 1), static_cast<char>(4 * s), static_cast<char>(4 * s + 1),
              static_cast<char>(4 * s), static_cast<char>(4 * s + 1), static_cast<char>(4 * s), static_cast<char>(4 * s + 1),
              static_cast<char>(4 * s), static_cast<char>(4 * s + 1), static_cast<char>(4 * s), static_cast<char>(4 * s + 1),
              static_cast<char>(4 * s + 2), static_cast<char>(4 * s + 3), static_cast<char>(4 * s + 2), static_cast<char>(4 * s + 3),
              static_cast<char>(4 * s + 2), static_cast<char>(4 * s + 3), static_cast<char>(4 * s + 2), static_cast<char>(4 * s + 3),
              static_cast<char>(4 * s + 2), static_cast<char>(4 * s + 3), static_cast<char>(4 * s + 2), static_cast<char>(4 * s + 3),
              static_cast<char>(4 * s + 2), static_cast<char>(4 * s + 3), static_cast<char>(4 * s + 2), static_cast<char>(4 * s + 3));
          const __m256i scale = _mm256_shuffle_epi8(half_scales, pick);
          TILE_UNROLL
          for (int j = 0; j < NC; ++j) {
            const __m256i xv = _mm256_loadu_si256(
                reinterpret_cast<const __m256i*>(a.xq + (c + j) * a.x_stride + b * qk256 + 128 * h + 32 * s));
            isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(_mm256_maddubs_epi16(q[s], xv), scale));
          }
        }
      }
      const float d = half_to_float(w[b].d);
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) {
        const float xd = a.xd[(c + j) * a.xd_stride + b];
        acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_set1_ps(d * xd), acc[j]);
      }
    }
    TILE_UNROLL
    for (int j = 0; j < NC; ++j) a.y[(c + j) * a.ldy + r] = hsum(acc[j]);
  }
};

// ---- elementwise ----

// e^x for 8 floats: 2^n * p(r) with x = n ln2 + r, |r| <= ln2 / 2, p a degree-6 polynomial
// (Cephes' coefficients, relative error ~2e-7); inputs below -87.3 give 0, above 88.7 give +inf.
inline __m256 exp8(__m256 x) {
  const __m256 ln2_hi = _mm256_set1_ps(0.693359375f), ln2_lo = _mm256_set1_ps(-2.12194440e-4f);
  const __m256 too_small = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_LT_OQ);
  const __m256 too_big = _mm256_cmp_ps(x, _mm256_set1_ps(88.7f), _CMP_GT_OQ);
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.7f)), _mm256_set1_ps(-87.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, ln2_hi, x);
  r = _mm256_fnmadd_ps(n, ln2_lo, r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n: n in [-126, 128]; split into two factors so n = 128 does not overflow the exponent.
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i half_n = _mm256_srai_epi32(ni, 1);
  const __m256 f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half_n, _mm256_set1_epi32(127)), 23));
  const __m256 f2 = _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half_n), _mm256_set1_epi32(127)), 23));
  __m256 result = _mm256_mul_ps(_mm256_mul_ps(p, f1), f2);
  result = _mm256_andnot_ps(too_small, result);
  return _mm256_blendv_ps(result, _mm256_set1_ps(INFINITY), too_big);
}

void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps) {
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    acc0 = _mm256_fmadd_pd(lo, lo, acc0);
    acc1 = _mm256_fmadd_pd(hi, hi, acc1);
  }
  alignas(32) double parts[4];
  _mm256_store_pd(parts, _mm256_add_pd(acc0, acc1));
  double sum = parts[0] + parts[1] + parts[2] + parts[3];
  for (; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / __builtin_sqrt(sum / static_cast<double>(n) + eps));
  const __m256 s = _mm256_set1_ps(scale);
  i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), s), _mm256_loadu_ps(weight + i)));
  }
  for (; i < n; ++i) y[i] = x[i] * scale * weight[i];
}

void round_f16(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
  for (; i < n; ++i) y[i] = half_to_float(fp32_to_fp16(x[i]));
}

void round_bf16(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_fp32(fp32_to_bf16(x[i]));
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
    const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + __builtin_expf(-gate[i])) * up[i];
}

void add(float* y, const float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
  for (; i < n; ++i) y[i] += x[i];
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  __m256 vmax = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
  float max = hmax(vmax);
  for (; i < n; ++i) max = x[i] > max ? x[i] : max;
  const __m256 m = _mm256_set1_ps(max);
  __m256 vsum = _mm256_setzero_ps();
  i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
    _mm256_storeu_ps(x + i, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  float sum = hsum(vsum);
  for (; i < n; ++i) {
    x[i] = __builtin_expf(x[i] - max);
    sum += x[i];
  }
  const __m256 inv = _mm256_set1_ps(1.0f / sum);
  i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  for (; i < n; ++i) x[i] *= 1.0f / sum;
}

void attention_head(const float* q, const float* const* k_rows, const float* const* v_rows,
                    int64_t n_kv, int64_t head_dim, float scale, float* scratch, float* out) {
  const int64_t d8 = head_dim / 8 * 8;
  for (int64_t j = 0; j < n_kv; ++j) {
    const float* k = k_rows[j];
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < d8; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(k + i), acc);
    float dot = hsum(acc);
    for (int64_t i = d8; i < head_dim; ++i) dot += q[i] * k[i];
    scratch[j] = scale * dot;
  }
  softmax(scratch, n_kv);
  // Output in chunks of 64 floats kept in registers across all value rows.
  for (int64_t base = 0; base < d8; base += 64) {
    const int64_t width = min_i64(64, d8 - base);
    __m256 acc[8];
    TILE_UNROLL
    for (int t = 0; t < 8; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t j = 0; j < n_kv; ++j) {
      const __m256 p = _mm256_set1_ps(scratch[j]);
      const float* v = v_rows[j] + base;
      TILE_UNROLL
      for (int t = 0; t < 8; ++t) {
        if (8 * t < width) acc[t] = _mm256_fmadd_ps(p, _mm256_loadu_ps(v + 8 * t), acc[t]);
      }
    }
    TILE_UNROLL
    for (int t = 0; t < 8; ++t) {
      if (8 * t < width) _mm256_storeu_ps(out + base + 8 * t, acc[t]);
    }
  }
  for (int64_t i = d8; i < head_dim; ++i) {
    float sum = 0.0f;
    for (int64_t j = 0; j < n_kv; ++j) sum += scratch[j] * v_rows[j][i];
    out[i] = sum;
  }
}

}  // namespace

const isa_kernels& avx2_kernels() {
  static const isa_kernels k = {
      run_tiles<float_kernel<f32_loader>>,
      run_tiles<float_kernel<f16_loader>>,
      run_tiles<float_kernel<bf16_loader>>,
      run_tiles<q4_0_kernel>,
      run_tiles<q8_0_kernel>,
      run_tiles<q4_k_kernel>,
      run_tiles<q6_k_kernel>,
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
