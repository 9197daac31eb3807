#include "gateway/cli.h"

#include <CLI/CLI.hpp>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <spdlog/spdlog.h>

#include "gateway/auth.h"
#include "gateway/config.h"
#include "gateway/server.h"

namespace gw::gateway {

namespace {

constexpr const char* default_config = "configs/tollgate.yaml";

int serve(const std::string& path) {
  std::signal(SIGPIPE, SIG_IGN);
  load_result loaded;
  try {
    loaded = load_config_file(path);
  } catch (const std::exception& e) {
    std::cerr << "tollgate: " << e.what() << "\n";
    return 2;
  }
  server srv(loaded.cfg);
  auto log = spdlog::get("tollgate");
  for (const auto& w : loaded.warnings) log->warn("{}", w);
  log->info("tollgate starting with {} ({} targets, {} model aliases)", path,
            loaded.cfg->targets.size(), loaded.cfg->models.size());
  try {
    srv.start();
  } catch (const std::exception& e) {
    log->error("{}", e.what());
    return 1;
  }
  srv.run_until_signal();
  return 0;
}

int check_config(const std::string& path) {
  try {
    auto loaded = load_config_file(path);
    for (const auto& w : loaded.warnings) std::cerr << "warning: " << w << "\n";
    std::size_t enabled = 0;
    for (const auto& [name, t] : loaded.cfg->targets) enabled += t.enabled ? 1 : 0;
    std::cout << path << ": ok (" << loaded.cfg->targets.size() << " targets, " << enabled
              << " enabled; " << loaded.cfg->models.size() << " model aliases)\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"tollgate: a cost-aware LLM gateway with one OpenAI-compatible endpoint"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("tollgate 0.1.0"));

  std::string serve_config = default_config;
  auto* serve_cmd = app.add_subcommand("serve", "Run the gateway");
  serve_cmd->add_option("-c,--config", serve_config, "Config file")->capture_default_str();

  std::string check_path;
  auto* check_cmd = app.add_subcommand("check-config", "Validate a config file and exit (non-zero on error)");
  check_cmd->add_option("file", check_path, "Config file")->required();
  std::string check_config_opt;
  check_cmd->add_option("-c,--config", check_config_opt, "Config file (alternative to the positional)");

  std::string key;
  auto* hash_cmd = app.add_subcommand("hash-key", "Print the SHA-256 of an API key, for auth.keys[].key_sha256");
  hash_cmd->add_option("key", key, "The key (read from stdin when omitted)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (*serve_cmd) return serve(serve_config);
  if (*check_cmd) return check_config(check_path.empty() ? check_config_opt : check_path);
  if (*hash_cmd) {
    if (key.empty()) std::getline(std::cin, key);
    std::cout << sha256_hex(key) << "\n";
    return 0;
  }
  return 1;
}

}  // namespace gw::gateway
