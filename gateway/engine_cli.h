#pragma once
// The engine's commands on the `tollgate` command line: tokenize, eval-logits, convert, quantize,
// generate-model. CLI11 stays out of this header.
#include <functional>

namespace CLI {
class App;
}

namespace gw::gateway {

// Registers the engine commands on `app`. After parsing, the returned function runs the chosen one
// and returns its exit code, or -1 when none of them was chosen.
std::function<int()> add_engine_commands(CLI::App& app);

}  // namespace gw::gateway
