#pragma once
// Run-time CPU feature detection: SIMD code paths are chosen by what the CPU has, not by how the
// binary was compiled.
namespace gw::kernels {

struct cpu_features {
  bool avx2 = false;    // with FMA and F16C
  bool avx512 = false;  // F, BW, VL, DQ
  bool avx512_vnni = false;
  bool avx512_bf16 = false;
};

// Detected once; TOLLGATE_SIMD=scalar|avx2 in the environment caps what is used (tests, benchmarks).
const cpu_features& cpu();
// "avx512", "avx2" or "scalar": the best level in use.
const char* simd_level();

}  // namespace gw::kernels
