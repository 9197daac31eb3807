// libFuzzer target for the GGUF reader (built only with clang: see CMakeLists.txt here).
//   CXX=clang++ cmake -S . -B build-fuzz -G Ninja && ninja -C build-fuzz gguf_fuzz
//   build-fuzz/local_engine/fuzz/gguf_fuzz -max_total_time=60 CORPUS_DIR
#include <cstddef>
#include <cstdint>
#include <string>

#include "local_engine/fuzz/gguf_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string error;
  if (!gw::local_engine::fuzz::gguf_fuzz_one(data, size, &error) && error.empty()) __builtin_trap();
  return 0;
}
