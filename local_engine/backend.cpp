#include "local_engine/backend.h"

#include <spdlog/spdlog.h>

#include <mutex>

#include "kernels/cpu_features.h"

namespace gw::local_engine {

std::string backend_description() {
  return std::string("cpu (") + kernels::simd_level() + ")";
}

void log_backend_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    spdlog::info("local engine: no GPU in use, running on the CPU ({} kernels)", kernels::simd_level());
  });
}

}  // namespace gw::local_engine
