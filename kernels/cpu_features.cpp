#include "kernels/cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace gw::kernels {
namespace {

cpu_features detect() {
  cpu_features f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
  f.avx512 = f.avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  f.avx512_vnni = f.avx512 && __builtin_cpu_supports("avx512vnni");
  f.avx512_bf16 = f.avx512 && __builtin_cpu_supports("avx512bf16");
#endif
  if (const char* cap = std::getenv("TOLLGATE_SIMD")) {
    if (std::strcmp(cap, "scalar") == 0) f = cpu_features{};
    if (std::strcmp(cap, "avx2") == 0) f.avx512 = f.avx512_vnni = f.avx512_bf16 = false;
  }
  return f;
}

}  // namespace

const cpu_features& cpu() {
  static const cpu_features f = detect();
  return f;
}

const char* simd_level() {
  if (cpu().avx512) return "avx512";
  if (cpu().avx2) return "avx2";
  return "scalar";
}

}  // namespace gw::kernels
