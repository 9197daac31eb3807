#pragma once
// Covers a block of weight rows x activation rows with a kernel's register tiles. A kernel K
// provides
//   static constexpr int C;                       widest tile in activation rows
//   static constexpr int rows_for(int nc);        tile height for a tile nc activation rows wide
//   template <int NR, int NC> static void micro(const matmul_args&, int64_t r, int64_t c);
// and run_tiles<K> instantiates micro for the full tiles and for the edges (one weight row at a
// time, and every narrower width). Only templates live here: each SIMD file instantiates them
// with its own kernel types, so no code compiled for one instruction set is shared with another.
#include <cstdint>

#include "kernels/isa_kernels.h"

// Fully unrolls a register tile's small constant loops. Without it GCC keeps arrays of vector
// accumulators in memory and stores them on every step.
#define TILE_UNROLL _Pragma("GCC unroll 16")

namespace gw::kernels::detail {

// Software prefetch of the weight streams. In a matrix-vector product (generation: one activation
// row) every weight byte comes from memory once, and the hardware prefetchers alone reach only
// 20-40 GB/s of the ~55 the machine has (they stop at page boundaries and look ahead too little);
// prefetching 8 KiB ahead of the reads, split over the tile's weight rows, reaches 50-55 GB/s on
// every type (bench/kernels_bench, matvec_96MiB). A product whose weights sit in the caches pays
// one cheap instruction per 64 bytes.
constexpr int64_t prefetch_ahead_bytes = 8192;

// Prefetches the cache lines a weight stream reads in one step (Bytes from p), as they will be
// needed prefetch_ahead_bytes / Streams bytes later. Past the end of the matrix it is a no-op.
template <int Streams, int Bytes>
inline void prefetch_weights(const void* p) {
  constexpr int64_t ahead = prefetch_ahead_bytes / Streams;
  TILE_UNROLL
  for (int off = 0; off < Bytes; off += 64) __builtin_prefetch(static_cast<const char*>(p) + ahead + off, 0, 3);
}

template <class K, int NC>
void tile_rows(const matmul_args& a, int64_t r0, int64_t r1, int64_t c) {
  constexpr int R = K::rows_for(NC);
  int64_t r = r0;
  for (; r + R <= r1; r += R) K::template micro<R, NC>(a, r, c);
  if constexpr (R > 1) {
    for (; r < r1; ++r) K::template micro<1, NC>(a, r, c);
  }
}

template <class K, int NC>
void tile_cols_tail(const matmul_args& a, int64_t r0, int64_t r1, int64_t c, int64_t nc) {
  if constexpr (NC >= 1) {
    if (nc == NC) {
      tile_rows<K, NC>(a, r0, r1, c);
    } else {
      tile_cols_tail<K, NC - 1>(a, r0, r1, c, nc);
    }
  }
}

template <class K>
void run_tiles(const matmul_args& a, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  int64_t c = c0;
  for (; c + K::C <= c1; c += K::C) tile_rows<K, K::C>(a, r0, r1, c);
  if (c < c1) tile_cols_tail<K, K::C - 1>(a, r0, r1, c, c1 - c);
}

}  // namespace gw::kernels::detail
