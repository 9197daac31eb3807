// matmul front end: prepares the activations once per call in the form the weight type's dot
// products take (float rows, 16-bit rows, or int8 rows with block scales), then splits the output
// into blocks of weight rows x activation rows and runs the level's tile kernel over them on the
// thread pool. A block keeps a few KiB of weight rows hot while it sweeps its activation rows, so
// with many activation rows (prompt processing) each weight block is reused many times.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "kernels/isa_kernels.h"
#include "kernels/ops.h"

namespace gw::kernels {
namespace {

// A growable 64-byte aligned scratch area (one per calling thread: the activation rows of the
// call in flight).
class scratch {
 public:
  uint8_t* get(size_t bytes) {
    if (bytes > capacity_) {
      capacity_ = std::max(bytes, capacity_ + capacity_ / 2);
      capacity_ = (capacity_ + 63) / 64 * 64;
      data_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, capacity_)));
    }
    return data_.get();
  }

 private:
  struct free_deleter {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, free_deleter> data_;
  size_t capacity_ = 0;
};

inline int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// Runs fn(begin, end) over [0, n) rows, on the pool when there is enough work.
void for_rows(thread_pool* pool, int64_t n, int64_t work_per_row,
              const std::function<void(int64_t, int64_t)>& fn) {
  constexpr int64_t min_parallel_work = 1 << 16;
  if (pool && pool->size() > 1 && n > 1 && n * work_per_row >= min_parallel_work) {
    pool->parallel_for(n, fn);
  } else {
    fn(0, n);
  }
}

// Weight types with no dot-product kernel (Q8_K is an activation format): dequantise each row.
void matmul_dequantized(const weight_view& w, const float* x, float* y, int64_t m) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  const size_t rb = row_bytes(w.type, w.cols);
  for (int64_t r = 0; r < w.rows; ++r) {
    dequantize_row(w.type, static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * rb, row.data(), w.cols);
    for (int64_t c = 0; c < m; ++c) {
      double sum = 0;
      for (int64_t i = 0; i < w.cols; ++i) sum += static_cast<double>(row[i]) * x[c * w.cols + i];
      y[c * w.rows + r] = static_cast<float>(sum);
    }
  }
}

}  // namespace

void matmul(isa level, const weight_view& w, const float* x, float* y, int64_t m, thread_pool* pool) {
  if (m <= 0 || w.rows <= 0 || w.cols <= 0) return;
  const detail::isa_kernels& ks = detail::kernels_for(level);
  const int64_t k = w.cols;
  detail::matmul_args a;
  a.type = w.type;
  a.w = static_cast<const uint8_t*>(w.data);
  a.w_row_bytes = row_bytes(w.type, k);
  a.k1 = k;
  a.y = y;
  a.ldy = w.rows;

  thread_local scratch buffer;
  detail::tile_fn tile = nullptr;
  size_t x_row_bytes = 0;  // bytes of one prepared activation row (for blocking)
  switch (w.type) {
    case dtype::F32: {
      a.xf = x;
      a.x_stride = k;
      x_row_bytes = static_cast<size_t>(k) * 4;
      tile = ks.tile_f32;
      break;
    }
    case dtype::F16:
    case dtype::BF16: {
      const bool half = w.type == dtype::F16;
      if (!half && ks.bf16_pairs) {
        a.x_stride = round_up(k, 32);
        auto* xh = reinterpret_cast<uint16_t*>(buffer.get(static_cast<size_t>(m * a.x_stride) * 2));
        for_rows(pool, m, k, [&](int64_t c0, int64_t c1) {
          for (int64_t c = c0; c < c1; ++c) {
            uint16_t* dst = xh + c * a.x_stride;
            quantize_row(dtype::BF16, x + c * k, dst, k);
            std::fill(dst + k, dst + a.x_stride, uint16_t{0});
          }
        });
        a.xh = xh;
        x_row_bytes = static_cast<size_t>(a.x_stride) * 2;
      } else {
        // Rounded to the weights' format once here, so the tiles multiply floats.
        a.x_stride = round_up(k, 16);
        auto* xf = reinterpret_cast<float*>(buffer.get(static_cast<size_t>(m * a.x_stride) * 4));
        for_rows(pool, m, k, [&](int64_t c0, int64_t c1) {
          for (int64_t c = c0; c < c1; ++c) {
            const float* src = x + c * k;
            float* dst = xf + c * a.x_stride;
            if (half) {
              for (int64_t i = 0; i < k; ++i) dst[i] = fp16_to_fp32(fp32_to_fp16(src[i]));
            } else {
              for (int64_t i = 0; i < k; ++i) dst[i] = bf16_to_fp32(fp32_to_bf16(src[i]));
            }
          }
        });
        a.xf = xf;
        x_row_bytes = static_cast<size_t>(a.x_stride) * 4;
      }
      tile = half ? ks.tile_f16 : ks.tile_bf16;
      break;
    }
    case dtype::Q4_0:
    case dtype::Q8_0:
    case dtype::Q4_K:
    case dtype::Q6_K: {
      const bool k_type = w.type == dtype::Q4_K || w.type == dtype::Q6_K;
      const int64_t block = k_type ? 256 : 32;
      const int64_t nb = k / block;
      a.x_stride = round_up(k, 64);
      a.xd_stride = nb;
      const size_t q_bytes = static_cast<size_t>(m * a.x_stride);
      const size_t d_bytes = static_cast<size_t>(round_up(m * nb * 4, 64));
      const size_t bs_bytes = k_type ? static_cast<size_t>(m * nb * 16 * 2) : 0;
      uint8_t* base = buffer.get(q_bytes + d_bytes + bs_bytes);
      auto* xq = reinterpret_cast<int8_t*>(base);
      auto* xd = reinterpret_cast<float*>(base + q_bytes);
      auto* xbs = k_type ? reinterpret_cast<int16_t*>(base + q_bytes + d_bytes) : nullptr;
      for_rows(pool, m, k, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) {
          if (k_type) {
            ks.quantize_q8_256(x + c * k, k, xq + c * a.x_stride, xd + c * nb, xbs + c * nb * 16);
          } else {
            ks.quantize_q8_32(x + c * k, k, xq + c * a.x_stride, xd + c * nb);
          }
        }
      });
      a.xq = xq;
      a.xd = xd;
      a.xbsums = xbs;
      x_row_bytes = static_cast<size_t>(a.x_stride);
      tile = w.type == dtype::Q4_0 ? ks.tile_q4_0
           : w.type == dtype::Q8_0 ? ks.tile_q8_0
           : w.type == dtype::Q4_K ? ks.tile_q4_k
                                   : ks.tile_q6_k;
      break;
    }
    case dtype::Q8_K:
      matmul_dequantized(w, x, y, m);
      return;
  }

  // Blocks of weight rows x activation rows. A block's weight rows (up to ~256 KiB) stay in L2
  // while all its activation rows stream past; the activation rows of a block (up to ~4 MiB,
  // shared by the threads, which work on neighbouring row blocks) stay in L3. So the weights
  // come from memory once per ~4 MiB of activations, not once per tile.
  const int64_t rows_per_block =
      std::clamp<int64_t>(static_cast<int64_t>((256 << 10) / a.w_row_bytes) / 4 * 4, 4, 64);
  const int64_t cols_per_block =
      std::clamp<int64_t>(static_cast<int64_t>((4 << 20) / x_row_bytes) / 8 * 8, 8, 1 << 16);
  const int64_t n_row_blocks = (w.rows + rows_per_block - 1) / rows_per_block;
  const int64_t n_col_blocks = (m + cols_per_block - 1) / cols_per_block;
  // F16 / BF16 weights (not bf16 x bf16 pairs) with several activation rows: a block is computed
  // in slices of k, each slice of its weight rows converted to float32 once into the thread's
  // pack buffer and then used by every activation tile.
  const bool pack = (w.type == dtype::F16 || (w.type == dtype::BF16 && !ks.bf16_pairs)) && m >= 8;
  const int64_t k_slice = pack ? std::min<int64_t>(k, 2048) : k;
  auto run = [&](int64_t begin, int64_t end) {
    thread_local scratch pack_buffer;
    detail::matmul_args slice = a;
    if (pack) slice.pack = reinterpret_cast<float*>(pack_buffer.get(static_cast<size_t>(rows_per_block * k_slice) * 4));
    for (int64_t i = begin; i < end; ++i) {
      const int64_t rb = i % n_row_blocks, cb = i / n_row_blocks;
      const int64_t r0 = rb * rows_per_block, c0 = cb * cols_per_block;
      const int64_t r1 = std::min(w.rows, r0 + rows_per_block), c1 = std::min(m, c0 + cols_per_block);
      for (int64_t k0 = 0; k0 < k; k0 += k_slice) {
        slice.k0 = k0;
        slice.k1 = std::min(k, k0 + k_slice);
        slice.accumulate = k0 > 0;
        tile(slice, r0, r1, c0, c1);
      }
    }
  };
  constexpr int64_t min_parallel_macs = 1 << 18;
  const int64_t n_blocks = n_row_blocks * n_col_blocks;
  if (pool && pool->size() > 1 && n_blocks > 1 && w.rows * k * m >= min_parallel_macs) {
    pool->parallel_for(n_blocks, run);
  } else {
    run(0, n_blocks);
  }
}

}  // namespace gw::kernels
