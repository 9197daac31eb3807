#pragma once
// The block layouts of the quantized types, ggml's byte for byte (files come from llama.cpp).
// Internal to kernels/.
#include <cstdint>

namespace gw::kernels {

inline constexpr int qk32 = 32;    // elements per Q4_0 / Q8_0 block
inline constexpr int qk256 = 256;  // elements per K-quant super-block

// Q4_0: x = d * (q - 8), q in 0..15. qs[j] holds element j (low nibble) and j + 16 (high nibble).
struct block_q4_0 {
  uint16_t d;  // f16
  uint8_t qs[qk32 / 2];
};
static_assert(sizeof(block_q4_0) == 18);

// Q8_0: x = d * q.
struct block_q8_0 {
  uint16_t d;  // f16
  int8_t qs[qk32];
};
static_assert(sizeof(block_q8_0) == 34);

// Q4_K: 8 sub-blocks of 32; x = d * sc[j] * q - dmin * m[j], q in 0..15, sc/m 6-bit. `scales`
// packs them: bytes 0-3 low 6 bits of sc[0..3] (top 2 bits: high bits of sc[4..7]), bytes 4-7
// likewise m[0..3] (top bits: high bits of m[4..7]), bytes 8-11 low nibble sc[4..7] low 4 bits,
// high nibble m[4..7] low 4 bits. qs: 4 chunks of 32 bytes; chunk c holds elements 64c + l (low
// nibble) and 64c + 32 + l (high nibble).
struct block_q4_k {
  uint16_t d;     // f16, scale of the scales
  uint16_t dmin;  // f16, scale of the mins
  uint8_t scales[12];
  uint8_t qs[qk256 / 2];
};
static_assert(sizeof(block_q4_k) == 144);

// Q6_K: 16 groups of 16; x = d * sc[g] * (q - 32), q 6-bit. Per half h (128 elements): ql[64h..]
// low nibbles hold elements l and 32 + l of the half, high nibbles 64 + l and 96 + l (l < 32 for
// ql[l], ql[32 + l]); qh[32h + l] holds the top 2 bits of elements l, 32 + l, 64 + l, 96 + l in
// bit pairs 0-1, 2-3, 4-5, 6-7.
struct block_q6_k {
  uint8_t ql[qk256 / 2];
  uint8_t qh[qk256 / 4];
  int8_t scales[qk256 / 16];
  uint16_t d;  // f16
};
static_assert(sizeof(block_q6_k) == 210);

// Q8_K (ggml's activation partner of the K types): x = d * q, bsums = sums of 16 q's.
struct block_q8_k {
  float d;
  int8_t qs[qk256];
  int16_t bsums[qk256 / 16];
};
static_assert(sizeof(block_q8_k) == 292);

// The six-bit scale and min of sub-block j (0..7) of a Q4_K block. (static: each file that uses
// it gets its own copy, compiled for that file's instruction set.)
static inline void q4_k_scale_min(const uint8_t* scales, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = (scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4);
    *m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

}  // namespace gw::kernels
