#include "gateway/engine_cli.h"

#include <CLI/CLI.hpp>

#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace gw::gateway {
namespace {

// One registered command: its CLI11 subcommand and what runs it after parsing.
struct engine_command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};
using command_list = std::vector<engine_command>;

// ---- tokenize ----

// ---- eval-logits ----

// ---- convert ----

// ---- quantize / generate-model ----

}  // namespace

std::function<int()> add_engine_commands(CLI::App& app) {
  auto cmds = std::make_shared<command_list>();
  // Each command's add_* function is called here (keep one line per command).
  return [cmds]() -> int {
    for (const auto& c : *cmds) {
      if (*c.app) return c.run();
    }
    return -1;
  };
}

}  // namespace gw::gateway
