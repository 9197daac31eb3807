#include "gateway/cli.h"
#include "gateway/engine_cli.h"

#include <CLI/CLI.hpp>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <optional>
#include <thread>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <spdlog/spdlog.h>
#include <variant>

#include "gateway/auth.h"
#include "gateway/breakeven.h"
#include "gateway/config.h"
#include "gateway/ledger_setup.h"
#include "gateway/score_cmd.h"
#include "gateway/reports.h"
#include "ledger/ledger.h"
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
  std::unique_ptr<ledger::ledger> ledger;
  if (loaded.cfg->ledger.enabled) {
    std::string error;
    ledger = open_ledger(*loaded.cfg, /*read_only=*/false, &error);
    if (!ledger) {
      std::cerr << "tollgate: " << error << "\n";
      return 1;
    }
  }
  server_hooks hooks;
  hooks.ledger = ledger.get();
  server srv(loaded.cfg, std::move(hooks));
  auto log = spdlog::get("tollgate");
  for (const auto& w : loaded.warnings) log->warn("{}", w);
  log->info("tollgate starting with {} ({} targets, {} model aliases)", path,
            loaded.cfg->targets.size(), loaded.cfg->models.size());
  if (ledger) log->info("ledger: {} (sync: {})", ledger_path(*loaded.cfg), loaded.cfg->ledger.sync);
  else log->warn("ledger disabled (ledger.enabled: false): requests are not recorded");
  try {
    srv.start();
  } catch (const std::exception& e) {
    log->error("{}", e.what());
    return 1;
  }
  // Retention: prune raw entries older than ledger.retention_days, at start and every hour.
  std::mutex prune_mu;
  std::condition_variable prune_cv;
  bool stopping = false;
  std::thread pruner;
  if (ledger && loaded.cfg->ledger.retention_days > 0) {
    pruner = std::thread([&] {
      std::unique_lock lock(prune_mu);
      do {
        auto cutoff = std::chrono::system_clock::now() - std::chrono::days(loaded.cfg->ledger.retention_days);
        std::uint64_t removed = 0;
        auto st = ledger->prune(cutoff, &removed);
        if (!st.ok()) log->error("ledger prune failed: {}", st.message);
        else if (removed) log->info("ledger: pruned {} entries older than {} days", removed, loaded.cfg->ledger.retention_days);
      } while (!prune_cv.wait_for(lock, std::chrono::hours(1), [&] { return stopping; }));
    });
  }
  srv.run_until_signal();
  {
    std::lock_guard lock(prune_mu);
    stopping = true;
  }
  prune_cv.notify_all();
  if (pruner.joinable()) pruner.join();
  if (ledger) {
    auto st = ledger->flush();
    if (!st.ok()) log->error("ledger flush at exit failed: {}", st.message);
  }
  return 0;
}

// A RocksDB checkpoint of the ledger. The primary instance is locked while serve runs; then the
// running server makes the copy (POST /admin/backup).
int backup(const std::string& config_path, const std::string& dir) {
  try {
    auto loaded = load_config_file(config_path);
    std::string error;
    auto l = open_ledger(*loaded.cfg, /*read_only=*/false, &error);
    if (!l) {
      std::cerr << "tollgate: " << error
                << (error.find("lock") != std::string::npos
                        ? "\n(is `tollgate serve` running on this data_dir? then ask it: POST /admin/backup)"
                        : "")
                << "\n";
      return 1;
    }
    auto st = l->checkpoint(dir);
    if (!st.ok()) {
      std::cerr << "tollgate: backup to " << dir << " failed: " << st.message << "\n";
      return 1;
    }
    std::cout << "ledger copied to " << dir << " (open it with server.data_dir pointing at its parent's layout, "
              << "or copy it to <data_dir>/ledger)\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "tollgate: " << e.what() << "\n";
    return 1;
  }
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

// ---- report / export (read-only view of <data_dir>/ledger: safe while `serve` writes it) ----

// What every report command reads: the config, its ledger opened read-only, and the range of
// --from/--to ("YYYY-MM-DD", or empty for today in the config's reports.timezone; both inclusive).
struct report_input {
  std::shared_ptr<const config> cfg;
  std::unique_ptr<ledger::ledger> l;
  ledger::day_index from = 0, to = 0;
};

// Loads the config, opens its ledger and reads the range; prints the problem to stderr and
// returns nullopt on failure (a config or ledger error, a bad date, from after to).
std::optional<report_input> open_report_input(const std::string& config_path, const std::string& from_s,
                                              const std::string& to_s) {
  report_input in;
  try {
    in.cfg = load_config_file(config_path).cfg;
  } catch (const std::exception& e) {
    std::cerr << "tollgate: " << e.what() << "\n";
    return std::nullopt;
  }
  std::string error;
  in.l = open_ledger(*in.cfg, /*read_only=*/true, &error);
  if (!in.l) {
    std::cerr << "tollgate: " << error << "\n";
    return std::nullopt;
  }
  const ledger::day_index today =
      ledger::to_day(std::chrono::system_clock::now(), in.cfg->reports.utc_offset_minutes);
  auto one = [&](const std::string& text, const char* name, ledger::day_index* out) {
    auto d = text.empty() ? std::optional(today) : parse_report_day(text);
    if (!d) std::cerr << "tollgate: " << name << " must be a date YYYY-MM-DD, got '" << text << "'\n";
    else *out = *d;
    return d.has_value();
  };
  if (!one(from_s, "--from", &in.from) || !one(to_s, "--to", &in.to)) return std::nullopt;
  if (in.from > in.to) {
    std::cerr << "tollgate: --from " << ledger::day_string(in.from) << " is after --to "
              << ledger::day_string(in.to) << "\n";
    return std::nullopt;
  }
  return in;
}

// Prints a report to stdout, or its error to stderr; the exit code.
int print_report(const std::variant<std::string, api_error>& result) {
  if (auto* e = std::get_if<api_error>(&result)) {
    std::cerr << "tollgate: " << e->message << "\n";
    return 1;
  }
  std::cout << std::get<std::string>(result) << std::flush;
  if (!std::cout) {
    std::cerr << "tollgate: cannot write the report to stdout\n";
    return 1;
  }
  return 0;
}

// --format of `report daily` / `report breakeven`; prints the problem and returns nullopt when bad.
std::optional<report_format> report_format_arg(const std::string& format_s) {
  auto format = parse_report_format(format_s);
  if (!format) std::cerr << "tollgate: --format must be table, csv or json, got '" << format_s << "'\n";
  return format;
}

int report_daily_cmd(const std::string& config_path, const std::string& from_s, const std::string& to_s,
                     const std::string& by_s, const std::string& format_s) {
  auto by = ledger::parse_dimension(by_s);
  if (!by) {
    std::cerr << "tollgate: --by must be target, model, key, team, route or total, got '" << by_s << "'\n";
    return 1;
  }
  auto format = report_format_arg(format_s);
  if (!format) return 1;
  auto in = open_report_input(config_path, from_s, to_s);
  if (!in) return 1;
  return print_report(daily_report(*in->l, in->from, in->to, *by, *format));
}

int report_breakeven_cmd(const std::string& config_path, const std::string& from_s, const std::string& to_s,
                         const std::string& format_s) {
  auto format = report_format_arg(format_s);
  if (!format) return 1;
  auto in = open_report_input(config_path, from_s, to_s);
  if (!in) return 1;
  return print_report(breakeven_report(*in->l, *in->cfg, in->from, in->to, *format));
}

int export_cmd(const std::string& config_path, const std::string& from_s, const std::string& to_s,
               const std::string& format_s) {
  auto format = parse_export_format(format_s);
  if (!format) {
    std::cerr << "tollgate: --format must be csv or jsonl, got '" << format_s << "'\n";
    return 1;
  }
  auto in = open_report_input(config_path, from_s, to_s);
  if (!in) return 1;
  // Both dates inclusive, as calendar days of the ledger's timezone: [from 00:00, to+1 00:00).
  const int offset = in->cfg->reports.utc_offset_minutes;
  auto day_start = [&](ledger::day_index d) {
    return std::chrono::system_clock::time_point(std::chrono::sys_days{std::chrono::days{d}}) -
           std::chrono::minutes(offset);
  };
  auto st = export_entries(*in->l, day_start(in->from), day_start(in->to + 1), *format, std::cout);
  if (!st.ok()) {
    std::cerr << "tollgate: export failed: " << st.message << "\n";
    return 1;
  }
  return 0;
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
  std::string backup_config = default_config, backup_dir;
  auto* backup_cmd = app.add_subcommand(
      "backup", "Write a consistent copy of the ledger to DIR (while serve runs: POST /admin/backup)");
  backup_cmd->add_option("-c,--config", backup_config, "Config file")->capture_default_str();
  backup_cmd->add_option("dir", backup_dir, "Directory to create (must not exist)")->required();

  std::string score_config = default_config;
  score_options score_opts;
  auto* score_cmd = app.add_subcommand(
      "score", "Score requests (JSONL on stdin): complexity, tier, privacy matches, route (JSONL on stdout)");
  score_cmd->add_option("-c,--config", score_config, "Config file")->capture_default_str();
  score_cmd->add_option("--model", score_opts.model_file, "Complexity model (default: the config's routing.complexity, else built in)");
  score_cmd->add_option("--calibration", score_opts.calibration_file, "Calibration sample of scores (default: as --model)");
  score_cmd->add_option("--strong-share", score_opts.strong_share, "Share of traffic for the strong tier")
      ->check(CLI::Range(0.0, 1.0));

  std::string explain_config = default_config, explain_file;
  auto* explain_cmd = app.add_subcommand(
      "explain", "Explain how a request (JSON file, or stdin) is scored and which plan serve would take");
  explain_cmd->add_option("-c,--config", explain_config, "Config file")->capture_default_str();
  explain_cmd->add_option("request", explain_file, "Request JSON file (stdin when omitted or '-')");
  explain_cmd->add_option("--model", score_opts.model_file, "Complexity model (default: the config's routing.complexity, else built in)");
  explain_cmd->add_option("--calibration", score_opts.calibration_file, "Calibration sample of scores (default: as --model)");
  explain_context explain_ctx;
  explain_cmd->add_option("-H,--header", explain_ctx.headers, "A request header serve would see (\"name: value\"), repeatable");
  explain_cmd->add_option("--key", explain_ctx.key, "The client key's name (auth.keys[].name): its team and privacy label apply");
  explain_cmd->add_option("--strong-share", score_opts.strong_share, "Share of traffic for the strong tier")
      ->check(CLI::Range(0.0, 1.0));

  auto run_engine_command = add_engine_commands(app);

  auto* hash_cmd = app.add_subcommand("hash-key", "Print the SHA-256 of an API key, for auth.keys[].key_sha256");
  hash_cmd->add_option("key", key, "The key (read from stdin when omitted)");

  // report daily / export: read-only views of the ledger (docs/reports.md).
  std::string report_config = default_config, report_from, report_to, report_by = "target",
              report_format_s = "table";
  auto* report_cmd = app.add_subcommand("report", "Reports from the ledger (works while serve runs)");
  report_cmd->require_subcommand(1);
  auto* daily_cmd = report_cmd->add_subcommand("daily", "Requests, tokens, cost and latency per day and group");
  daily_cmd->add_option("-c,--config", report_config, "Config file (its server.data_dir holds the ledger)")
      ->capture_default_str();
  daily_cmd->add_option("--from", report_from, "First day, YYYY-MM-DD (default: today)");
  daily_cmd->add_option("--to", report_to, "Last day, inclusive, YYYY-MM-DD (default: today)");
  daily_cmd->add_option("--by", report_by, "target|model|key|team|route|total")->capture_default_str();
  daily_cmd->add_option("--format", report_format_s, "table|csv|json")->capture_default_str();

  std::string breakeven_config = default_config, breakeven_from, breakeven_to, breakeven_format_s = "table";
  auto* breakeven_cmd =
      report_cmd->add_subcommand("breakeven", "Self-hosted GPU cost against what a priced API would have cost");
  breakeven_cmd->add_option("-c,--config", breakeven_config, "Config file (targets with self_hosted, the ledger)")
      ->capture_default_str();
  breakeven_cmd->add_option("--from", breakeven_from, "First day, YYYY-MM-DD (default: today)");
  breakeven_cmd->add_option("--to", breakeven_to, "Last day, inclusive, YYYY-MM-DD (default: today)");
  breakeven_cmd->add_option("--format", breakeven_format_s, "table|csv|json")->capture_default_str();

  std::string export_config = default_config, export_from, export_to, export_format_s = "jsonl";
  auto* export_cmd_app = app.add_subcommand("export", "Raw ledger entries of a date range, streamed to stdout");
  export_cmd_app->add_option("-c,--config", export_config, "Config file (its server.data_dir holds the ledger)")
      ->capture_default_str();
  export_cmd_app->add_option("--from", export_from, "First day, YYYY-MM-DD (default: today)");
  export_cmd_app->add_option("--to", export_to, "Last day, inclusive, YYYY-MM-DD (default: today)");
  export_cmd_app->add_option("--format", export_format_s, "csv|jsonl")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (int rc = run_engine_command(); rc >= 0) return rc;
  if (*backup_cmd) return backup(backup_config, backup_dir);
  if (*explain_cmd) {
    try {
      auto loaded = load_config_file(explain_config);
      if (explain_file.empty() || explain_file == "-")
        return run_explain(*loaded.cfg, score_opts, std::cin, std::cout, std::cerr, explain_ctx);
      std::ifstream f(explain_file);
      if (!f) {
        std::cerr << "tollgate: cannot read " << explain_file << "\n";
        return 1;
      }
      return run_explain(*loaded.cfg, score_opts, f, std::cout, std::cerr, explain_ctx);
    } catch (const std::exception& e) {
      std::cerr << "tollgate: " << e.what() << "\n";
      return 1;
    }
  }
  if (*score_cmd) {
    try {
      auto loaded = load_config_file(score_config);
      return run_score(*loaded.cfg, score_opts, std::cin, std::cout, std::cerr);
    } catch (const std::exception& e) {
      std::cerr << "tollgate: " << e.what() << "\n";
      return 1;
    }
  }
  if (*serve_cmd) return serve(serve_config);
  if (*check_cmd) return check_config(check_path.empty() ? check_config_opt : check_path);
  if (*hash_cmd) {
    if (key.empty()) std::getline(std::cin, key);
    std::cout << sha256_hex(key) << "\n";
    return 0;
  }
  if (*daily_cmd) return report_daily_cmd(report_config, report_from, report_to, report_by, report_format_s);
  if (*breakeven_cmd)
    return report_breakeven_cmd(breakeven_config, breakeven_from, breakeven_to, breakeven_format_s);
  if (*export_cmd_app) return export_cmd(export_config, export_from, export_to, export_format_s);
  return 1;
}

}  // namespace gw::gateway
