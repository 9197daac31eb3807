// Dequantisation and quantisation against files made by llama.cpp: the shared tiny models come in
// F32 and in six other types, each produced from the F32 file by llama-quantize. Every 2-D weight
// of a quantized file, dequantised here, must be within its type's error bound of the F32 file's
// weight (catches any layout error: nibble order, scale packing, sub-block order), and our
// quantizers, which follow ggml's reference ones, must reproduce llama-quantize's bytes.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "kernels/dtype.h"
#include "kernels/ops.h"
#include "local_engine/gguf.h"
#include "tests/kernels/quant_error_bounds.h"
#include "tests/support/test_env.h"

namespace gw::kernels {
namespace {

using local_engine::gguf_file;

const char* const models[] = {"tiny-llama", "tiny-llama3", "tiny-qwen2"};
const char* const quantized_types[] = {"F16", "BF16", "Q8_0", "Q4_0", "Q4_K_M", "Q6_K"};

std::unique_ptr<gguf_file> open_model(const std::filesystem::path& dir, const std::string& name) {
  std::string error;
  auto f = gguf_file::open((dir / name).string(), &error);
  EXPECT_TRUE(f) << error;
  return f;
}

struct tensor_stats {
  int tensors = 0;
  int64_t blocks = 0;
  int64_t blocks_different = 0;
};

void check_file(const gguf_file& f32, const gguf_file& q, tensor_stats& stats) {
  for (const auto& t : q.tensors()) {
    if (t.ne.size() != 2 || t.ne[1] < 2) continue;  // 1-D tensors stay F32
    const auto* src = f32.find_tensor(t.name);
    ASSERT_NE(src, nullptr) << t.name;
    ASSERT_EQ(src->type, dtype::F32) << t.name;
    ASSERT_EQ(src->ne, t.ne) << t.name;
    ++stats.tensors;
    const int64_t cols = t.ne[0], rows = t.ne[1];
    const size_t rb = row_bytes(t.type, cols);
    ASSERT_EQ(t.n_bytes, rb * static_cast<size_t>(rows)) << t.name;
    std::vector<float> deq(static_cast<size_t>(cols));
    std::vector<uint8_t> requant(rb);
    const size_t block_bytes_ = block_bytes(t.type);
    for (int64_t r = 0; r < rows; ++r) {
      const auto* want = reinterpret_cast<const float*>(src->data) + r * cols;
      const uint8_t* stored = t.data + rb * static_cast<size_t>(r);
      dequantize_row(t.type, stored, deq.data(), cols);
      const auto bound = test::error_bounds(t.type, want, cols);
      for (int64_t i = 0; i < cols; ++i) {
        ASSERT_LE(std::fabs(static_cast<double>(deq[i]) - want[i]), bound[static_cast<size_t>(i)])
            << t.name << " (" << dtype_name(t.type) << ") row " << r << " col " << i;
      }
      quantize_row(t.type, want, requant.data(), cols);
      for (size_t off = 0; off < rb; off += block_bytes_) {
        ++stats.blocks;
        if (std::memcmp(requant.data() + off, stored + off, block_bytes_) != 0) ++stats.blocks_different;
      }
    }
  }
}

TEST(KernelsGgufCrossCheck, QuantizedFilesMatchTheirF32Source) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const auto dir = shared / "data/engine/models";
  for (const char* model : models) {
    auto f32 = open_model(dir, std::string(model) + ".F32.gguf");
    ASSERT_TRUE(f32);
    for (const char* type : quantized_types) {
      SCOPED_TRACE(std::string(model) + "." + type);
      auto q = open_model(dir, std::string(model) + "." + type + ".gguf");
      ASSERT_TRUE(q);
      tensor_stats stats;
      check_file(*f32, *q, stats);
      EXPECT_GE(stats.tensors, 14);  // 7 per layer x 2 layers, plus embeddings / output
      // Our quantizers make exactly llama-quantize's blocks.
      EXPECT_EQ(stats.blocks_different, 0) << "of " << stats.blocks << " blocks";
    }
  }
}

}  // namespace
}  // namespace gw::kernels
