#pragma once
// Which compute backend the engine runs on. With no usable GPU the engine runs on the CPU and says so
// once in the log.
#include <string>

namespace gw::local_engine {

// "cpu (avx512)", "cpu (avx2)", "cpu (scalar)" (or "cuda ..." once the CUDA path exists).
std::string backend_description();
// Logs the backend once per process (later calls do nothing).
void log_backend_once();

}  // namespace gw::local_engine
