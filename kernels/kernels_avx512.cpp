// The AVX-512 level (F/BW/VL/DQ + VNNI; BF16 when the CPU has it): matrix-product tiles on 512-bit
// registers. Quantized dot products use vpdpbusd (u8 x s8 summed in fours into s32), so the
// weights' nibbles are used as unsigned values and the constant offsets (Q4_0's -8, Q6_K's -32)
// are folded in once per block through the activation sums; Q8_0 flips the activations to
// unsigned (x + 128) and subtracts 128 * sum(w). K-type sub-block scales are applied with
// vpdpwssd on the 16-bit pair sums. Activation quantizers and elementwise ops come from the AVX2
// level. Everything here has internal linkage.
// GCC 12 reports its own intrinsics' deliberately undefined lanes (_mm512_undefined_*) as
// uninitialised; those lanes never reach a result.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/blocks.h"
#include "kernels/cpu_features.h"
#include "kernels/isa_kernels.h"
#include "kernels/tile_loop.h"

namespace gw::kernels::detail {
namespace {

inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

inline int64_t round_up64(int64_t v) { return (v + 63) / 64 * 64; }

// A register of 16-bit lanes: `high` where bit l of `mask` is set, else `low`.
inline __m512i lanes16(__mmask32 mask, short low, short high) {
  return _mm512_mask_blend_epi16(mask, _mm512_set1_epi16(low), _mm512_set1_epi16(high));
}

// ---- float-type tiles ----

// 16 weights / activations (fewer at the end of a row, the rest zero) as float32.
struct f32_loader {
  static constexpr int bytes = 4;
  static __m512 load(const void* p, int64_t i, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(p) + i);
  }
};
struct f16_loader {
  static constexpr int bytes = 2;
  static __m512 load(const void* p, int64_t i, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + i));
  }
};
struct bf16_loader {
  static constexpr int bytes = 2;
  static __m512 load(const void* p, int64_t i, __mmask16 m) {
    const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
};

// Weights in format L times float activations (already rounded to L's precision).
template <class L>
struct float_kernel {
  static constexpr int C = 4;
  static constexpr int rows_for(int nc) { return nc == 1 ? 1 : 4; }

  // One weight row times one activation row: 64 elements per step on four accumulators.
  static void row_dot(const matmul_args& a, int64_t r, int64_t c) {
    const auto* w = a.w + static_cast<size_t>(r) * a.w_row_bytes;
    const float* x = a.xf + c * a.x_stride;
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t e = 0;
    for (; e + 64 <= a.k; e += 64) {
      prefetch_weights<1, 64 * L::bytes>(w + e * L::bytes);
      TILE_UNROLL
      for (int u = 0; u < 4; ++u)
        acc[u] = _mm512_fmadd_ps(L::load(w, e + 16 * u, 0xFFFF), _mm512_loadu_ps(x + e + 16 * u), acc[u]);
    }
    for (; e < a.k; e += 16) {
      const int64_t left = a.k - e;
      const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
      acc[0] = _mm512_fmadd_ps(L::load(w, e, m), _mm512_maskz_loadu_ps(m, x + e), acc[0]);
    }
    a.y[c * a.ldy + r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
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
    __m512 acc[NR][NC];
    TILE_UNROLL
    for (int i = 0; i < NR; ++i)
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) acc[i][j] = _mm512_setzero_ps();
    for (int64_t e = 0; e < a.k; e += 16) {
      TILE_UNROLL
      for (int i = 0; i < NR; ++i) prefetch_weights<NR, 16 * L::bytes>(static_cast<const uint8_t*>(w[i]) + e * L::bytes);
      const int64_t left = a.k - e;
      const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
      __m512 wv[NR];
      TILE_UNROLL
      for (int i = 0; i < NR; ++i) wv[i] = L::load(w[i], e, m);
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) {
        const __m512 xv = _mm512_maskz_loadu_ps(m, x[j] + e);
        TILE_UNROLL
        for (int i = 0; i < NR; ++i) acc[i][j] = _mm512_fmadd_ps(wv[i], xv, acc[i][j]);
      }
    }
    TILE_UNROLL
    for (int i = 0; i < NR; ++i)
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) a.y[(c + j) * a.ldy + r + i] = _mm512_reduce_add_ps(acc[i][j]);
  }
};

// BF16 x BF16 with vdpbf16ps (pairs of products accumulated in float32).
struct bf16_dot_kernel {
  static constexpr int C = 4;
  static constexpr int rows_for(int nc) { return nc == 1 ? 1 : 4; }

  // One weight row times one activation row: 128 elements per step on four accumulators.
  static void row_dot(const matmul_args& a, int64_t r, int64_t c) {
    const auto* w = reinterpret_cast<const uint16_t*>(a.w + static_cast<size_t>(r) * a.w_row_bytes);
    const uint16_t* x = a.xh + c * a.x_stride;
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t e = 0;
    for (; e + 128 <= a.k; e += 128) {
      prefetch_weights<1, 256>(w + e);
      TILE_UNROLL
      for (int u = 0; u < 4; ++u)
        acc[u] = _mm512_dpbf16_ps(acc[u], (__m512bh)_mm512_loadu_si512(w + e + 32 * u),
                                  (__m512bh)_mm512_loadu_si512(x + e + 32 * u));
    }
    for (; e < a.k; e += 32) {
      const int64_t left = a.k - e;
      const __mmask32 m = left >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << left) - 1);
      acc[0] = _mm512_dpbf16_ps(acc[0], (__m512bh)_mm512_maskz_loadu_epi16(m, w + e),
                                (__m512bh)_mm512_maskz_loadu_epi16(m, x + e));
    }
    a.y[c * a.ldy + r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
  }

  template <int NR, int NC>
  static void micro(const matmul_args& a, int64_t r, int64_t c) {
    if constexpr (NR == 1 && NC == 1) {
      row_dot(a, r, c);
      return;
    }
    const uint16_t* w[NR];
    const uint16_t* x[NC];
    TILE_UNROLL
    for (int i = 0; i < NR; ++i) w[i] = reinterpret_cast<const uint16_t*>(a.w + static_cast<size_t>(r + i) * a.w_row_bytes);
    TILE_UNROLL
    for (int j = 0; j < NC; ++j) x[j] = a.xh + (c + j) * a.x_stride;
    __m512 acc[NR][NC];
    TILE_UNROLL
    for (int i = 0; i < NR; ++i)
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) acc[i][j] = _mm512_setzero_ps();
    for (int64_t e = 0; e < a.k; e += 32) {
      TILE_UNROLL
      for (int i = 0; i < NR; ++i) prefetch_weights<NR, 64>(w[i] + e);
      const int64_t left = a.k - e;
      const __mmask32 m = left >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << left) - 1);
      __m512bh wv[NR];
      TILE_UNROLL
      for (int i = 0; i < NR; ++i) wv[i] = (__m512bh)_mm512_maskz_loadu_epi16(m, w[i] + e);
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) {
        const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(m, x[j] + e);
        TILE_UNROLL
        for (int i = 0; i < NR; ++i) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wv[i], xv);
      }
    }
    TILE_UNROLL
    for (int i = 0; i < NR; ++i)
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) a.y[(c + j) * a.ldy + r + i] = _mm512_reduce_add_ps(acc[i][j]);
  }
};

// ---- Q4_0 / Q8_0: two blocks of 32 per register ----

// Lanes 0-7 = s[0], lanes 8-15 = s[1], from a register holding s in its first two lanes.
inline __m512 spread_pair(__m128 s) {
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                               _mm512_castps128_ps512(s));
}

inline __m128 half_pair(uint16_t d0, uint16_t d1) {
  return _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(d0 | (static_cast<uint32_t>(d1) << 16))));
}

inline __m128 float_pair(const float* p) {
  return _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(p)));
}

struct q4_0_kernel {
  static constexpr int C = 4;
  static constexpr int rows_for(int nc) { return nc == 1 ? 1 : 3; }

  // The 32 nibbles of a block as bytes in element order (low nibbles, then high), for two blocks.
  static __m512i unpack_pair(const block_q4_0* blk) {
    const __m256i q0 = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk[0].qs)));
    const __m256i q1 = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk[1].qs)));
    const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
    const __m512i shifts = lanes16(0xFF00FF00u, 0, 4);  // the high nibbles of each block
    return _mm512_and_si512(_mm512_srlv_epi16(both, shifts), _mm512_set1_epi8(0x0F));
  }

  static __m256i unpack_one(const block_q4_0& blk) {
    const __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.qs)));
    const __m256i shifts = _mm256_mask_blend_epi16(0xFF00, _mm256_setzero_si256(), _mm256_set1_epi16(4));
    return _mm256_and_si256(_mm256_srlv_epi16(q, shifts), _mm256_set1_epi8(0x0F));
  }

  template <int NR, int NC>
  static void micro(const matmul_args& a, int64_t r, int64_t c) {
    const block_q4_0* w[NR];
    TILE_UNROLL
    for (int i = 0; i < NR; ++i) w[i] = reinterpret_cast<const block_q4_0*>(a.w + static_cast<size_t>(r + i) * a.w_row_bytes);
    const int8_t* x[NC];
    const float* xd[NC];
    TILE_UNROLL
    for (int j = 0; j < NC; ++j) {
      x[j] = a.xq + (c + j) * a.x_stride;
      xd[j] = a.xd + (c + j) * a.xd_stride;
    }
    __m512 acc[NR][NC];
    TILE_UNROLL
    for (int i = 0; i < NR; ++i)
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) acc[i][j] = _mm512_setzero_ps();
    const __m512i eight = _mm512_set1_epi8(8);
    const int64_t nb = a.k / qk32;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
      TILE_UNROLL
      for (int i = 0; i < NR; ++i) prefetch_weights<NR, 2 * sizeof(block_q4_0)>(w[i] + b);
      __m512i wq[NR];
      __m512 wd[NR];
      TILE_UNROLL
      for (int i = 0; i < NR; ++i) {
        wq[i] = unpack_pair(w[i] + b);
        wd[i] = spread_pair(half_pair(w[i][b].d, w[i][b + 1].d));
      }
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) {
        const __m512i xv = _mm512_loadu_si512(x[j] + b * qk32);
        // sum((q - 8) * x) = dpbusd(q, x) - 8 * sum(x): start from -8 * sum(x).
        const __m512i start = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, xv));
        const __m512 xs = spread_pair(float_pair(xd[j] + b));
        TILE_UNROLL
        for (int i = 0; i < NR; ++i) {
          const __m512 dot = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(start, wq[i], xv));
          acc[i][j] = _mm512_fmadd_ps(dot, _mm512_mul_ps(wd[i], xs), acc[i][j]);
        }
      }
    }
    if (b < nb) {
      TILE_UNROLL
      for (int i = 0; i < NR; ++i) {
        const __m256i wq = unpack_one(w[i][b]);
        const float wd = half_to_float(w[i][b].d);
        TILE_UNROLL
        for (int j = 0; j < NC; ++j) {
          const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[j] + b * qk32));
          const __m256i start = _mm256_sub_epi32(_mm256_setzero_si256(),
                                                 _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8), xv));
          const __m256 dot = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(start, wq, xv));
          acc[i][j] = _mm512_fmadd_ps(_mm512_zextps256_ps512(dot), _mm512_set1_ps(wd * xd[j][b]), acc[i][j]);
        }
      }
    }
    TILE_UNROLL
    for (int i = 0; i < NR; ++i)
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) a.y[(c + j) * a.ldy + r + i] = _mm512_reduce_add_ps(acc[i][j]);
  }
};

struct q8_0_kernel {
  static constexpr int C = 4;
  static constexpr int rows_for(int nc) { return nc == 1 ? 1 : 3; }

  template <int NR, int NC>
  static void micro(const matmul_args& a, int64_t r, int64_t c) {
    const block_q8_0* w[NR];
    TILE_UNROLL
    for (int i = 0; i < NR; ++i) w[i] = reinterpret_cast<const block_q8_0*>(a.w + static_cast<size_t>(r + i) * a.w_row_bytes);
    const int8_t* x[NC];
    const float* xd[NC];
    TILE_UNROLL
    for (int j = 0; j < NC; ++j) {
      x[j] = a.xq + (c + j) * a.x_stride;
      xd[j] = a.xd + (c + j) * a.xd_stride;
    }
    __m512 acc[NR][NC];
    TILE_UNROLL
    for (int i = 0; i < NR; ++i)
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) acc[i][j] = _mm512_setzero_ps();
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    const int64_t nb = a.k / qk32;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
      TILE_UNROLL
      for (int i = 0; i < NR; ++i) prefetch_weights<NR, 2 * sizeof(block_q8_0)>(w[i] + b);
      __m512i wq[NR], start[NR];
      __m512 wd[NR];
      TILE_UNROLL
      for (int i = 0; i < NR; ++i) {
        wq[i] = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i][b].qs))),
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i][b + 1].qs)), 1);
        // sum(x * w) = dpbusd(x + 128, w) - 128 * sum(w): start from -128 * sum(w).
        start[i] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), flip, wq[i]));
        wd[i] = spread_pair(half_pair(w[i][b].d, w[i][b + 1].d));
      }
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) {
        const __m512i xu = _mm512_xor_si512(_mm512_loadu_si512(x[j] + b * qk32), flip);
        const __m512 xs = spread_pair(float_pair(xd[j] + b));
        TILE_UNROLL
        for (int i = 0; i < NR; ++i) {
          const __m512 dot = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(start[i], xu, wq[i]));
          acc[i][j] = _mm512_fmadd_ps(dot, _mm512_mul_ps(wd[i], xs), acc[i][j]);
        }
      }
    }
    if (b < nb) {
      const __m256i flip256 = _mm256_set1_epi8(static_cast<char>(0x80));
      TILE_UNROLL
      for (int i = 0; i < NR; ++i) {
        const __m256i wq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i][b].qs));
        const __m256i start = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), flip256, wq));
        const float wd = half_to_float(w[i][b].d);
        TILE_UNROLL
        for (int j = 0; j < NC; ++j) {
          const __m256i xu = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[j] + b * qk32)), flip256);
          const __m256 dot = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(start, xu, wq));
          acc[i][j] = _mm512_fmadd_ps(_mm512_zextps256_ps512(dot), _mm512_set1_ps(wd * xd[j][b]), acc[i][j]);
        }
      }
    }
    TILE_UNROLL
    for (int i = 0; i < NR; ++i)
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) a.y[(c + j) * a.ldy + r + i] = _mm512_reduce_add_ps(acc[i][j]);
  }
};

// ---- Q4_K / Q6_K: one super-block of 256 per step, unpacked once per weight row and used for
// up to C activation rows ----

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

// Permutation indices that spread 16-bit scales over the 32 pair sums of a 64-element chunk:
// index[t][l] = per_chunk * t + l / run.
struct spread_index {
  alignas(64) int16_t v[4][32];
};
constexpr spread_index make_spread_index(int per_chunk, int run) {
  spread_index s{};
  TILE_UNROLL
  for (int t = 0; t < 4; ++t)
    for (int l = 0; l < 32; ++l) s.v[t][l] = static_cast<int16_t>(per_chunk * t + l / run);
  return s;
}
constexpr spread_index q4_k_spread = make_spread_index(2, 16);  // sub-blocks of 32
constexpr spread_index q6_k_spread = make_spread_index(4, 8);   // groups of 16

inline __m512i spread_16(const spread_index& index, int t, __m512i v16) {
  return _mm512_permutexvar_epi16(_mm512_load_si512(index.v[t]), v16);
}

struct q4_k_kernel {
  static constexpr int C = 8;
  static constexpr int rows_for(int) { return 1; }

  template <int NR, int NC>
  static void micro(const matmul_args& a, int64_t r, int64_t c) {
    static_assert(NR == 1);
    const auto* w = reinterpret_cast<const block_q4_k*>(a.w + static_cast<size_t>(r) * a.w_row_bytes);
    __m512 acc[NC];
    TILE_UNROLL
    for (int j = 0; j < NC; ++j) acc[j] = _mm512_setzero_ps();
    const __m512i low_mask = _mm512_set1_epi8(0x0F);
    const __m512i nibble_shifts = lanes16(0xFFFF0000u, 0, 4);
    const int64_t nb = a.k / qk256;
    for (int64_t b = 0; b < nb; ++b) {
      prefetch_weights<1, sizeof(block_q4_k)>(w + b);
      alignas(16) uint8_t sc[8], m[8];
      unpack_q4_k_scales(w[b].scales, sc, m);
      const __m512i sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc))));
      const __m128i m8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(m));
      const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));  // m0 m0 m1 m1 ...
      // Chunk g: 64 elements, sub-block 2g (low nibbles of qs[32g..]) then 2g + 1 (high nibbles).
      __m512i q[4], scale[4];
      TILE_UNROLL
      for (int g = 0; g < 4; ++g) {
        const __m512i both = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs + 32 * g)));
        q[g] = _mm512_and_si512(_mm512_srlv_epi16(both, nibble_shifts), low_mask);
        scale[g] = spread_16(q4_k_spread, g, sc16);
      }
      const float d = half_to_float(w[b].d), dmin = half_to_float(w[b].dmin);
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) {
        const int8_t* x = a.xq + (c + j) * a.x_stride + b * qk256;
        __m512i isum = _mm512_setzero_si512();
        TILE_UNROLL
        for (int g = 0; g < 4; ++g) {
          const __m512i pairs = _mm512_maddubs_epi16(q[g], _mm512_loadu_si512(x + 64 * g));
          isum = _mm512_dpwssd_epi32(isum, pairs, scale[g]);
        }
        const int64_t blk = (c + j) * a.xd_stride + b;
        const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xbsums + blk * 16));
        const __m256 mins = _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mins16));
        const float xd = a.xd[blk];
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * xd), acc[j]);
        acc[j] = _mm512_fnmadd_ps(_mm512_zextps256_ps512(mins), _mm512_set1_ps(dmin * xd), acc[j]);
      }
    }
    TILE_UNROLL
    for (int j = 0; j < NC; ++j) a.y[(c + j) * a.ldy + r] = _mm512_reduce_add_ps(acc[j]);
  }
};

struct q6_k_kernel {
  static constexpr int C = 8;
  static constexpr int rows_for(int) { return 1; }

  template <int NR, int NC>
  static void micro(const matmul_args& a, int64_t r, int64_t c) {
    static_assert(NR == 1);
    const auto* w = reinterpret_cast<const block_q6_k*>(a.w + static_cast<size_t>(r) * a.w_row_bytes);
    __m512 acc[NC];
    TILE_UNROLL
    for (int j = 0; j < NC; ++j) acc[j] = _mm512_setzero_ps();
    const __m512i low_mask = _mm512_set1_epi8(0x0F);
    const __m512i top_mask = _mm512_set1_epi8(0x30);
    // Top bits: elements 0-31 take qh bits 0-1, 32-63 bits 2-3, 64-95 bits 4-5, 96-127 bits 6-7.
    const __m512i left_01 = lanes16(0xFFFF0000u, 4, 2);
    const __m512i right_23 = lanes16(0xFFFF0000u, 0, 2);
    const int64_t nb = a.k / qk256;
    for (int64_t b = 0; b < nb; ++b) {
      prefetch_weights<1, sizeof(block_q6_k)>(w + b);
      const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].scales)));
      // -32 * sc, paired with the activation sums of each 16 for the levels' -32 offset.
      const __m256i offset_scale = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(sc16, 5));
      __m512i q[4], scale[4];
      TILE_UNROLL
      for (int h = 0; h < 2; ++h) {
        const __m512i ql = _mm512_loadu_si512(w[b].ql + 64 * h);
        const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qh + 32 * h)));
        const __m512i top01 = _mm512_and_si512(_mm512_sllv_epi16(qh, left_01), top_mask);
        const __m512i top23 = _mm512_and_si512(_mm512_srlv_epi16(qh, right_23), top_mask);
        q[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, low_mask), top01);
        q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low_mask), top23);
      }
      TILE_UNROLL
      for (int t = 0; t < 4; ++t) scale[t] = spread_16(q6_k_spread, t, _mm512_castsi256_si512(sc16));
      const float d = half_to_float(w[b].d);
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) {
        const int8_t* x = a.xq + (c + j) * a.x_stride + b * qk256;
        const int64_t blk = (c + j) * a.xd_stride + b;
        const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xbsums + blk * 16));
        __m512i isum = _mm512_zextsi256_si512(_mm256_madd_epi16(bs, offset_scale));
        TILE_UNROLL
        for (int t = 0; t < 4; ++t) {
          const __m512i pairs = _mm512_maddubs_epi16(q[t], _mm512_loadu_si512(x + 64 * t));
          isum = _mm512_dpwssd_epi32(isum, pairs, scale[t]);
        }
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * a.xd[blk]), acc[j]);
      }
    }
    TILE_UNROLL
    for (int j = 0; j < NC; ++j) a.y[(c + j) * a.ldy + r] = _mm512_reduce_add_ps(acc[j]);
  }
};

// Calls f(std::integral_constant<int, nc>) for a run-time width nc in [1, N]: the column tails of
// the many-row paths below, each width its own fully unrolled instance.
template <int N, class F>
void with_width(int nc, F&& f) {
  if constexpr (N > 1) {
    if (nc < N) return with_width<N - 1>(nc, f);
  }
  f(std::integral_constant<int, N>{});
}

// ---- float weights times many activation rows (prompt processing): weight rows transposed ----
//
// The dot-product tiles end every (weight row, activation row) pair with a horizontal sum and
// convert F16 / BF16 weights again in every tile. With many activation rows the block's weight
// rows are converted to float once per call and transposed in groups of 16 rows (one register =
// element e of 16 rows); each activation element, broadcast, then multiplies 32 weight rows in two
// FMAs: an outer product with no horizontal sums, whose 16-row results are contiguous in y. Sums
// run over chunks of 256 elements added into the totals, so rounding grows no faster than in the
// dot-product tiles.
struct alignas(64) float16x {  // one register's worth: element e of 16 weight rows
  float v[16];
};

template <class L>
void transpose_rows(const matmul_args& a, int64_t r0, int64_t n, int64_t groups, std::vector<float16x>& out) {
  const int64_t k = a.k;
  out.resize(static_cast<size_t>(groups * k));
  alignas(64) float staging[16][16];
  const __m512i index = _mm512_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240);
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t e0 = 0; e0 < k; e0 += 16) {
      const int64_t left = k - e0;
      const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
      for (int i = 0; i < 16; ++i) {
        const int64_t r = g * 16 + i;
        const __m512 v = r < n ? L::load(a.w + static_cast<size_t>(r0 + r) * a.w_row_bytes, e0, m) : _mm512_setzero_ps();
        _mm512_store_ps(staging[i], v);
      }
      const int64_t count = std::min<int64_t>(16, left);
      for (int64_t e = 0; e < count; ++e)
        _mm512_store_ps(out[static_cast<size_t>(g * k + e0 + e)].v, _mm512_i32gather_ps(index, &staging[0][e], 4));
    }
  }
}

// 32 transposed weight rows (w0: the first 16, w1: the next 16) x NC activation rows.
template <int NC>
void outer_cols(const float* w0, const float* w1, int64_t k, const float* const* x, float* const* y, __mmask16 m0,
                __mmask16 m1) {
  constexpr int64_t chunk = 256;
  __m512 total0[NC], total1[NC];
  TILE_UNROLL
  for (int j = 0; j < NC; ++j) total0[j] = total1[j] = _mm512_setzero_ps();
  for (int64_t e0 = 0; e0 < k; e0 += chunk) {
    const int64_t e1 = std::min(k, e0 + chunk);
    __m512 acc0[NC], acc1[NC];
    TILE_UNROLL
    for (int j = 0; j < NC; ++j) acc0[j] = acc1[j] = _mm512_setzero_ps();
    for (int64_t e = e0; e < e1; ++e) {
      const __m512 a0 = _mm512_load_ps(w0 + e * 16), a1 = _mm512_load_ps(w1 + e * 16);
      TILE_UNROLL
      for (int j = 0; j < NC; ++j) {
        const __m512 xb = _mm512_set1_ps(x[j][e]);
        acc0[j] = _mm512_fmadd_ps(a0, xb, acc0[j]);
        acc1[j] = _mm512_fmadd_ps(a1, xb, acc1[j]);
      }
    }
    TILE_UNROLL
    for (int j = 0; j < NC; ++j) {
      total0[j] = _mm512_add_ps(total0[j], acc0[j]);
      total1[j] = _mm512_add_ps(total1[j], acc1[j]);
    }
  }
  TILE_UNROLL
  for (int j = 0; j < NC; ++j) {
    _mm512_mask_storeu_ps(y[j], m0, total0[j]);
    _mm512_mask_storeu_ps(y[j] + 16, m1, total1[j]);
  }
}

inline __mmask16 rows_mask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : left <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << left) - 1);
}

template <class L, auto fallback>
void transposed_tile(const matmul_args& a, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  // Transposing the rows costs about as much as 30-40 activation rows' worth of products.
  constexpr int64_t min_cols = 64;
  if (c1 - c0 < min_cols) {
    fallback(a, r0, r1, c0, c1);
    return;
  }
  thread_local std::vector<float16x> rows;
  const int64_t n = r1 - r0, cols = c1 - c0;
  const int64_t groups = (n + 31) / 32 * 2;  // pairs of 16-row groups; rows past n are zero
  transpose_rows<L>(a, r0, n, groups, rows);
  constexpr int C = 6;
  for (int64_t p = 0; p * 32 < n; ++p) {
    const float* w0 = rows[static_cast<size_t>(2 * p * a.k)].v;
    const float* w1 = w0 + a.k * 16;
    const __mmask16 m0 = rows_mask(n - p * 32), m1 = rows_mask(n - p * 32 - 16);
    for (int64_t j0 = 0; j0 < cols; j0 += C) {
      const float* x[C];
      float* y[C];
      const int nc = static_cast<int>(std::min<int64_t>(C, cols - j0));
      for (int j = 0; j < nc; ++j) {
        x[j] = a.xf + (c0 + j0 + j) * a.x_stride;
        y[j] = a.y + (c0 + j0 + j) * a.ldy + r0 + p * 32;
      }
      with_width<C>(nc, [&](auto width) { outer_cols<width.value>(w0, w1, a.k, x, y, m0, m1); });
    }
  }
}

// ---- Q4_0 / Q8_0 times many activation rows (prompt processing): weight rows interleaved ----
//
// The dot-product tiles above spend four instructions per 64 products (vpdpbusd, convert, scale
// multiply, accumulate). With many activation rows the block's weight rows are first rewritten,
// once per call, in groups of 16 rows: per block of 32, eight registers whose 32-bit lane i holds
// four consecutive weights of row i as signed bytes (Q4_0: q - 8), plus the 16 rows' scales and
// -128 * (the row's block sum). Four bytes of one activation row, broadcast, then meet 16 weight
// rows in one vpdpbusd (64 products), and a block of 16 rows x one activation row costs 8
// vpdpbusd and one convert / multiply / accumulate, with no horizontal sums: the 16 results are
// contiguous in y. vpdpbusd takes unsigned bytes on the activation side, so the activations are
// used as x + 128 (flipped once per call) and the stored -128 * sum(w) cancels the offset.
struct alignas(64) interleaved_block {
  __m512i q[8];   // q[t] lane i: weights 4t .. 4t + 3 of row i
  __m512 d;       // lane i: row i's block scale
  __m512i ncorr;  // lane i: -128 * sum of row i's 32 weights
};

// The signed weights of one block of one row (32 bytes), for each weight type.
inline __m256i block_weights(const block_q4_0& blk) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.qs));
  const __m128i low = _mm_and_si128(packed, _mm_set1_epi8(0x0F));
  const __m128i high = _mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0F));
  return _mm256_sub_epi8(_mm256_set_m128i(high, low), _mm256_set1_epi8(8));
}
inline __m256i block_weights(const block_q8_0& blk) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs));
}

// Rewrites weight rows [r0, r0 + n) (blocks of type Block) into groups of 16; rows past n are zero.
template <class Block>
void interleave_rows(const matmul_args& a, int64_t r0, int64_t n, std::vector<interleaved_block>& out) {
  const int64_t nb = a.k / qk32, groups = (n + 15) / 16;
  out.resize(static_cast<size_t>(groups * nb));
  alignas(64) int32_t staging[16][8];
  alignas(64) float scales[16];
  alignas(64) int32_t ncorr[16];
  const __m512i gather_index = _mm512_setr_epi32(0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120);
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t b = 0; b < nb; ++b) {
      for (int i = 0; i < 16; ++i) {
        const int64_t r = g * 16 + i;
        if (r >= n) {
          _mm256_store_si256(reinterpret_cast<__m256i*>(staging[i]), _mm256_setzero_si256());
          scales[i] = 0.0f;
          ncorr[i] = 0;
          continue;
        }
        const Block& blk = reinterpret_cast<const Block*>(a.w + static_cast<size_t>(r0 + r) * a.w_row_bytes)[b];
        const __m256i v = block_weights(blk);
        _mm256_store_si256(reinterpret_cast<__m256i*>(staging[i]), v);
        // sum(v) = sum(v + 128) - 32 * 128, the former by sums of absolute differences from zero.
        const __m256i sad = _mm256_sad_epu8(_mm256_xor_si256(v, flip), _mm256_setzero_si256());
        const __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(sad), _mm256_extracti128_si256(sad, 1));
        const int64_t sum = _mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1) - 32 * 128;
        scales[i] = half_to_float(blk.d);
        ncorr[i] = static_cast<int32_t>(-128 * sum);
      }
      interleaved_block& ib = out[static_cast<size_t>(g * nb + b)];
      for (int t = 0; t < 8; ++t) ib.q[t] = _mm512_i32gather_epi32(gather_index, &staging[0][t], 4);
      ib.d = _mm512_load_ps(scales);
      ib.ncorr = _mm512_load_si512(ncorr);
    }
  }
}

// 16 weight rows (one group) x NC activation rows, all blocks.
template <int NC>
void interleaved_cols(const interleaved_block* blocks, int64_t nb, const uint8_t* const* xu, const float* const* xd,
                      float* const* y, __mmask16 rows) {
  __m512 acc[NC];
  TILE_UNROLL
  for (int j = 0; j < NC; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const interleaved_block& ib = blocks[b];
    TILE_UNROLL
    for (int j = 0; j < NC; ++j) {
      const uint8_t* x = xu[j] + b * qk32;
      __m512i even = ib.ncorr, odd = _mm512_setzero_si512();
      TILE_UNROLL
      for (int t = 0; t < 8; t += 2) {
        int32_t x0, x1;
        std::memcpy(&x0, x + 4 * t, 4);
        std::memcpy(&x1, x + 4 * t + 4, 4);
        even = _mm512_dpbusd_epi32(even, _mm512_set1_epi32(x0), ib.q[t]);
        odd = _mm512_dpbusd_epi32(odd, _mm512_set1_epi32(x1), ib.q[t + 1]);
      }
      const __m512 dot = _mm512_cvtepi32_ps(_mm512_add_epi32(even, odd));
      acc[j] = _mm512_fmadd_ps(dot, _mm512_mul_ps(ib.d, _mm512_set1_ps(xd[j][b])), acc[j]);
    }
  }
  TILE_UNROLL
  for (int j = 0; j < NC; ++j) _mm512_mask_storeu_ps(y[j], rows, acc[j]);
}

template <class Block, auto fallback>
void interleaved_tile(const matmul_args& a, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  // Rewriting the rows costs about as much as 16 activation rows' worth of products.
  constexpr int64_t min_cols = 32;
  if (c1 - c0 < min_cols) {
    fallback(a, r0, r1, c0, c1);
    return;
  }
  thread_local std::vector<interleaved_block> rows;
  thread_local std::vector<uint8_t> flipped;
  const int64_t n = r1 - r0, nb = a.k / qk32, cols = c1 - c0;
  interleave_rows<Block>(a, r0, n, rows);
  const int64_t stride = round_up64(a.k);
  flipped.resize(static_cast<size_t>(cols * stride));
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t j = 0; j < cols; ++j) {
    const int8_t* src = a.xq + (c0 + j) * a.x_stride;
    uint8_t* dst = flipped.data() + j * stride;
    for (int64_t e = 0; e < a.k; e += 64) {
      const __mmask64 m = a.k - e >= 64 ? ~__mmask64{0} : (__mmask64{1} << (a.k - e)) - 1;
      _mm512_mask_storeu_epi8(dst + e, m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, src + e), flip));
    }
  }
  constexpr int C = 8;
  for (int64_t g = 0; g * 16 < n; ++g) {
    const int64_t left = n - g * 16;
    const __mmask16 row_mask = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
    const interleaved_block* blocks = rows.data() + g * nb;
    for (int64_t j0 = 0; j0 < cols; j0 += C) {
      const uint8_t* xu[C];
      const float* xd[C];
      float* y[C];
      const int nc = static_cast<int>(std::min<int64_t>(C, cols - j0));
      for (int j = 0; j < nc; ++j) {
        xu[j] = flipped.data() + (j0 + j) * stride;
        xd[j] = a.xd + (c0 + j0 + j) * a.xd_stride;
        y[j] = a.y + (c0 + j0 + j) * a.ldy + r0 + g * 16;
      }
      with_width<C>(nc, [&](auto width) { interleaved_cols<width.value>(blocks, nb, xu, xd, y, row_mask); });
    }
  }
}

isa_kernels make_kernels() {
  isa_kernels k = avx2_kernels();  // quantizers and elementwise ops
  k.tile_f32 = transposed_tile<f32_loader, run_tiles<float_kernel<f32_loader>>>;
  k.tile_f16 = transposed_tile<f16_loader, run_tiles<float_kernel<f16_loader>>>;
  k.bf16_pairs = cpu().avx512_bf16;
  k.tile_bf16 = k.bf16_pairs ? run_tiles<bf16_dot_kernel>
                              : transposed_tile<bf16_loader, run_tiles<float_kernel<bf16_loader>>>;
  k.tile_q4_0 = interleaved_tile<block_q4_0, run_tiles<q4_0_kernel>>;
  k.tile_q8_0 = interleaved_tile<block_q8_0, run_tiles<q8_0_kernel>>;
  k.tile_q4_k = run_tiles<q4_k_kernel>;
  k.tile_q6_k = run_tiles<q6_k_kernel>;
  return k;
}

}  // namespace

const isa_kernels& avx512_kernels() {
  static const isa_kernels k = make_kernels();
  return k;
}

}  // namespace gw::kernels::detail
