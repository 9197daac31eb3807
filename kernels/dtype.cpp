#include "kernels/dtype.h"

#include <cctype>
#include <string>

namespace gw::kernels {

bool dtype_supported(uint32_t id) {
  switch (static_cast<dtype>(id)) {
    case dtype::F32: case dtype::F16: case dtype::Q4_0: case dtype::Q8_0:
    case dtype::Q4_K: case dtype::Q6_K: case dtype::Q8_K: case dtype::BF16:
      return true;
  }
  return false;
}

int64_t block_elems(dtype t) {
  switch (t) {
    case dtype::F32: case dtype::F16: case dtype::BF16: return 1;
    case dtype::Q4_0: case dtype::Q8_0: return 32;
    case dtype::Q4_K: case dtype::Q6_K: case dtype::Q8_K: return 256;
  }
  return 1;
}

size_t block_bytes(dtype t) {
  switch (t) {
    case dtype::F32: return 4;
    case dtype::F16: case dtype::BF16: return 2;
    case dtype::Q4_0: return 2 + 16;               // f16 d, 32 nibbles
    case dtype::Q8_0: return 2 + 32;               // f16 d, 32 int8
    case dtype::Q4_K: return 2 + 2 + 12 + 128;     // f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 256 nibbles
    case dtype::Q6_K: return 128 + 64 + 16 + 2;    // ql, qh, int8 scales, f16 d
    case dtype::Q8_K: return 4 + 256 + 16 * 2;     // f32 d, 256 int8, 16 int16 block sums
  }
  return 0;
}

std::string_view dtype_name(dtype t) {
  switch (t) {
    case dtype::F32: return "F32";
    case dtype::F16: return "F16";
    case dtype::BF16: return "BF16";
    case dtype::Q4_0: return "Q4_0";
    case dtype::Q8_0: return "Q8_0";
    case dtype::Q4_K: return "Q4_K";
    case dtype::Q6_K: return "Q6_K";
    case dtype::Q8_K: return "Q8_K";
  }
  return "?";
}

std::optional<dtype> parse_dtype(std::string_view name) {
  std::string up;
  for (char c : name) up.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  for (dtype t : {dtype::F32, dtype::F16, dtype::BF16, dtype::Q4_0, dtype::Q8_0, dtype::Q4_K,
                  dtype::Q6_K, dtype::Q8_K}) {
    if (dtype_name(t) == up) return t;
  }
  return std::nullopt;
}

}  // namespace gw::kernels
