#pragma once
// Tensor element types, with the ids ggml and GGUF use on disk, and their block layouts.
// A row of n elements of a quantized type is n / block_elems(t) blocks of block_bytes(t) bytes.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace gw::kernels {

enum class dtype : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q8_0 = 8,
  Q4_K = 12,
  Q6_K = 14,
  Q8_K = 15,  // activations only (the partner of Q4_K/Q6_K in dot products); never a weight type here
  BF16 = 30,
};

// True for the ids above (the types this engine reads); other ggml ids are rejected by the loader.
bool dtype_supported(uint32_t ggml_id);
// Elements per block (1 for F32/F16/BF16, 32 for Q4_0/Q8_0, 256 for the K types).
int64_t block_elems(dtype t);
// Bytes per block.
size_t block_bytes(dtype t);
// Bytes of a row of n elements; n must be a multiple of block_elems(t).
inline size_t row_bytes(dtype t, int64_t n) {
  return static_cast<size_t>(n / block_elems(t)) * block_bytes(t);
}
// "F32", "Q4_K", ...
std::string_view dtype_name(dtype t);
// Inverse of dtype_name (case-insensitive); nullopt for an unknown name.
std::optional<dtype> parse_dtype(std::string_view name);

}  // namespace gw::kernels
