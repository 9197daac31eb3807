// matmul front end: prepares the activations once per call in the form the weight type's dot
// products take (float rows, 16-bit rows, or int8 rows with block scales), then splits the output
// into blocks of weight rows x activation rows and runs the level's tile kernel over them on the
// thread pool. matmul_many does the same for several weights sharing the activations: each
// activation form is prepared once and all products share one pass over the threads.
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

// A growable 64-byte aligned scratch area (per calling thread and activation form: the
// activation rows of the call in flight).
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

// The forms activations are prepared in (see isa_kernels.h, matmul_args).
enum class act_form { f32, f16_rounded, bf16_rounded, bf16_pairs, q8_32, q8_256 };
constexpr int n_act_forms = 6;

act_form form_for(dtype t, const detail::isa_kernels& ks) {
  switch (t) {
    case dtype::F16: return act_form::f16_rounded;
    case dtype::BF16: return ks.bf16_pairs ? act_form::bf16_pairs : act_form::bf16_rounded;
    case dtype::Q4_0:
    case dtype::Q8_0: return act_form::q8_32;
    case dtype::Q4_K:
    case dtype::Q6_K: return act_form::q8_256;
    default: return act_form::f32;
  }
}

detail::tile_fn tile_for(dtype t, const detail::isa_kernels& ks) {
  switch (t) {
    case dtype::F32: return ks.tile_f32;
    case dtype::F16: return ks.tile_f16;
    case dtype::BF16: return ks.tile_bf16;
    case dtype::Q4_0: return ks.tile_q4_0;
    case dtype::Q8_0: return ks.tile_q8_0;
    case dtype::Q4_K: return ks.tile_q4_k;
    case dtype::Q6_K: return ks.tile_q6_k;
    case dtype::Q8_K: break;
  }
  return nullptr;
}

// Activations of m rows of k floats in one form: the matmul_args fields that carry them, and the
// bytes of one prepared row (for blocking).
struct prepared_activations {
  detail::matmul_args fields;
  size_t row_bytes = 0;
};

prepared_activations prepare(act_form form, const float* x, int64_t m, int64_t k, const detail::isa_kernels& ks,
                             thread_pool* pool, scratch& buffer) {
  prepared_activations p;
  detail::matmul_args& a = p.fields;
  switch (form) {
    case act_form::f32:
      a.xf = x;
      a.x_stride = k;
      p.row_bytes = static_cast<size_t>(k) * 4;
      break;
    case act_form::bf16_pairs: {
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
      p.row_bytes = static_cast<size_t>(a.x_stride) * 2;
      break;
    }
    case act_form::f16_rounded:
    case act_form::bf16_rounded: {
      // Rounded to the weights' format once here, so the tiles multiply floats.
      const bool half = form == act_form::f16_rounded;
      a.x_stride = round_up(k, 16);
      auto* xf = reinterpret_cast<float*>(buffer.get(static_cast<size_t>(m * a.x_stride) * 4));
      const auto round = half ? ks.round_f16 : ks.round_bf16;
      for_rows(pool, m, k, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) round(x + c * k, xf + c * a.x_stride, k);
      });
      a.xf = xf;
      p.row_bytes = static_cast<size_t>(a.x_stride) * 4;
      break;
    }
    case act_form::q8_32:
    case act_form::q8_256: {
      const bool k_type = form == act_form::q8_256;
      const int64_t nb = k / (k_type ? 256 : 32);
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
      p.row_bytes = static_cast<size_t>(a.x_stride);
      break;
    }
  }
  return p;
}

// One product's share of the combined pass: its arguments, tile kernel and blocking.
struct planned_product {
  detail::matmul_args a;
  detail::tile_fn tile = nullptr;
  int64_t rows = 0, m = 0;
  int64_t rows_per_block = 0, cols_per_block = 0, n_row_blocks = 0;
  int64_t first_block = 0;  // index of its first block in the combined pass
};

}  // namespace

void matmul_many(isa level, const matmul_job* jobs, int n_jobs, const float* x, int64_t m, thread_pool* pool) {
  if (m <= 0 || n_jobs <= 0) return;
  const detail::isa_kernels& ks = detail::kernels_for(level);
  thread_local scratch buffers[n_act_forms];
  prepared_activations prepared[n_act_forms];
  bool have[n_act_forms] = {};

  std::vector<planned_product> plan;
  plan.reserve(static_cast<size_t>(n_jobs));
  int64_t n_blocks = 0, total_macs = 0;
  const int64_t k = jobs[0].w.cols;
  for (int j = 0; j < n_jobs; ++j) {
    const weight_view& w = jobs[j].w;
    if (w.rows <= 0 || w.cols <= 0 || w.cols != k) continue;  // x is m x k: other widths cannot share it
    detail::tile_fn tile = tile_for(w.type, ks);
    if (!tile) {
      matmul_dequantized(w, x, jobs[j].y, m);
      continue;
    }
    const auto form = static_cast<size_t>(form_for(w.type, ks));
    if (!have[form]) {
      prepared[form] = prepare(static_cast<act_form>(form), x, m, k, ks, pool, buffers[form]);
      have[form] = true;
    }
    planned_product p;
    p.a = prepared[form].fields;
    p.a.type = w.type;
    p.a.w = static_cast<const uint8_t*>(w.data);
    p.a.w_row_bytes = row_bytes(w.type, k);
    p.a.k = k;
    p.a.y = jobs[j].y;
    p.a.ldy = w.rows;
    p.tile = tile;
    p.rows = w.rows;
    p.m = m;
    // Blocks of weight rows x activation rows. A block's weight rows (up to ~256 KiB) stay in L2
    // while all its activation rows stream past; the activation rows of a block (up to ~4 MiB,
    // shared by the threads, which work on neighbouring row blocks) stay in L3. So the weights
    // come from memory once per ~4 MiB of activations, not once per register tile. Many-row
    // blocks (prompts) have at least 32 weight rows and are a multiple of 16, which the levels'
    // interleaved paths work in (a wide matrix's 32 rows of F32 are 0.6 MiB: still L2).
    const int64_t fit = static_cast<int64_t>((256 << 10) / p.a.w_row_bytes);
    p.rows_per_block = m >= 32 ? std::clamp<int64_t>(fit / 16 * 16, 32, 64) : std::clamp<int64_t>(fit / 4 * 4, 4, 64);
    p.cols_per_block =
        std::clamp<int64_t>(static_cast<int64_t>((4 << 20) / prepared[form].row_bytes) / 8 * 8, 8, 1 << 16);
    p.n_row_blocks = (w.rows + p.rows_per_block - 1) / p.rows_per_block;
    p.first_block = n_blocks;
    n_blocks += p.n_row_blocks * ((m + p.cols_per_block - 1) / p.cols_per_block);
    total_macs += w.rows * k * m;
    plan.push_back(p);
  }

  auto run = [&](int64_t begin, int64_t end) {
    size_t j = 0;
    for (int64_t i = begin; i < end; ++i) {
      while (j + 1 < plan.size() && plan[j + 1].first_block <= i) ++j;
      const planned_product& p = plan[j];
      const int64_t local = i - p.first_block;
      const int64_t rb = local % p.n_row_blocks, cb = local / p.n_row_blocks;
      const int64_t r0 = rb * p.rows_per_block, c0 = cb * p.cols_per_block;
      p.tile(p.a, r0, std::min(p.rows, r0 + p.rows_per_block), c0, std::min(p.m, c0 + p.cols_per_block));
    }
  };
  constexpr int64_t min_parallel_macs = 1 << 18;
  if (pool && pool->size() > 1 && n_blocks > 1 && total_macs >= min_parallel_macs) {
    pool->parallel_for(n_blocks, run);
  } else if (n_blocks > 0) {
    run(0, n_blocks);
  }
}

void matmul(isa level, const weight_view& w, const float* x, float* y, int64_t m, thread_pool* pool) {
  const matmul_job job{w, y};
  matmul_many(level, &job, 1, x, m, pool);
}

}  // namespace gw::kernels
