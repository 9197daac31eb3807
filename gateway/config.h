#pragma once
// tollgate's configuration: parsed once from YAML into validated, immutable structs.
// A reload builds a new `config` and swaps a shared_ptr<const config>; nothing here is mutated
// after load. Every key is documented in docs/config.md.
#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ledger/money.h"
#include "ledger/pricing_table.h"
#include "policies/budget.h"
#include "policies/custom_detect.h"
#include "policies/decide.h"
#include "providers/target.h"

namespace gw::gateway {

// Thrown only at start-up / reload (never on the request path). what() reads
// "FILE:LINE: KEY: message" so the user can jump straight to the problem.
class config_error : public std::runtime_error {
 public:
  config_error(std::string file, int line, std::string key, const std::string& message);
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  const std::string& key() const { return key_; }

 private:
  std::string file_;
  int line_;
  std::string key_;
};

struct listener_config {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;  // 0 = ephemeral (tests)
  std::string tls_cert_file;  // both set -> HTTPS
  std::string tls_key_file;
  bool tls() const { return !tls_cert_file.empty(); }
};

struct limits_config {
  std::size_t max_body_bytes = 10 * 1024 * 1024;
  std::size_t max_header_bytes = 16 * 1024;
  std::chrono::milliseconds read_timeout{30'000};   // reading one request (headers + body)
  std::chrono::milliseconds idle_timeout{60'000};   // keep-alive connection with no request
  std::chrono::milliseconds write_timeout{60'000};  // one write to a client that does not read
  std::size_t max_connections = 10'000;
  std::size_t max_stream_buffer_bytes = 1024 * 1024;  // per SSE client, before upstream is paused
  std::size_t max_upstream_response_bytes = 64 * 1024 * 1024;  // non-streaming bodies
};

struct server_config {
  std::vector<listener_config> listeners;  // at least one
  int io_threads = 0;                      // 0 = hardware concurrency
  std::chrono::milliseconds shutdown_grace{10'000};
  std::string data_dir = "./data";
  limits_config limits;
  std::string log_level = "info";
  bool access_log = true;
};

struct api_key_config {
  std::string name;
  std::string team;
  bool privacy_strict = false;  // privacy: strict — every request of this key stays local/trusted
  std::array<unsigned char, 32> sha256{};  // we only keep the hash, also for plain keys
  bool admin = false;
};

struct auth_config {
  bool enabled = true;  // false = `auth: none` (development only; warned at start)
  std::vector<api_key_config> keys;
};

// An alias maps to an ordered list of targets (first = preferred, rest = fallbacks).
struct model_alias {
  std::string name;  // "*" = any model name not otherwise listed
  std::vector<std::string> targets;
  policies::route_strategy strategy = policies::route_strategy::ordered;
  bool private_only = false;  // auto-private
  bool ignore_tier = false;   // auto-cheap
  bool builtin = false;       // auto, auto-cheap, auto-private when the config does not define them
};

struct complexity_scorer;  // gateway/routing.h

// routing: how requests are scored and which target serves them (docs/config.md#routing).
struct routing_config {
  std::string model_file;        // "" = the model built into the binary
  std::string calibration_file;  // "" = the calibration sample built into the binary
  double strong_share = 0.5;     // share of the calibration sample scored strong
  bool adaptive = false;         // re-calibrate on a window of recent traffic (serve only)
  int adaptive_window = 2000;
  int adaptive_min_samples = 200;
  policies::policy policy;       // rules, per-type privacy actions, tiers
  bool sticky_conversations = true;  // once private, a conversation stays private
  int conversation_ttl_s = 86400;
  std::size_t max_conversations = 100000;
  std::shared_ptr<const complexity_scorer> scorer;            // loaded model + threshold
  std::shared_ptr<const policies::custom_detectors> detectors;  // null when none configured
};

// The request ledger (ledger/ledger.h) in <server.data_dir>/ledger.
struct ledger_config {
  bool enabled = true;
  std::string sync = "interval";  // interval | always | none (see ledger::sync_mode)
  std::chrono::milliseconds sync_interval{100};
  int retention_days = 0;  // 0 = keep raw entries forever (aggregates are always kept)
};

struct reports_config {
  std::string timezone = "UTC";  // "UTC" or a fixed offset "+HH:MM" / "-HH:MM"
  int utc_offset_minutes = 0;    // parsed from timezone
};

// targets.<name>.self_hosted: an OpenAI-compatible server on the user's own GPUs (vLLM, llama.cpp
// server, ...), paid per hour provisioned whether busy or idle. Used by the breakeven report
// (gateway/breakeven.h) to compare against what a priced API would have cost.
struct self_hosted_config {
  std::string gpu;                 // the pricing table's gpus[].gpu; "" when usd_per_hour is given
  int gpus = 1;                    // >= 1
  ledger::pico_usd per_hour = 0;   // p$ per hour for ONE GPU: usd_per_hour, else the table's price
  bool per_hour_from_config = false;  // true: usd_per_hour overrode the table
  ledger::pico_usd ops_per_day = 0;   // p$ per day on top (power, ops); 0 by default
  std::string reference_provider;  // the priced API row to compare against ("openai")
  std::string reference_model;     // ("gpt-4o-mini")
  int tier = 1;                    // 1..3: the cheapest-API comparison uses rows of tier >= this
};

// Spending limits and rate limits per client key or team (policies/budget.h).
struct limits_policy_config {
  std::vector<policies::budget_limit> budgets;
  std::vector<policies::rate_limit> rate_limits;
  // Worst-case completion length reserved against a budget when a request sets no max_tokens.
  std::int64_t default_max_tokens = 1024;
};

struct config {
  std::string source_file;  // path it was loaded from
  server_config server;
  ledger_config ledger;
  reports_config reports;
  auth_config auth;
  limits_policy_config spend;
  std::map<std::string, providers::target_spec> targets;  // by name
  std::vector<model_alias> models;                        // in file order
  std::vector<model_alias> builtin_models;                // auto, auto-cheap, auto-private unless defined
  routing_config routing;
  // pricing_file as resolved (relative to the config file's directory when the file is there,
  // else as given, i.e. relative to the working directory).
  std::string pricing_file = "configs/pricing.yaml";
  // Targets with a self_hosted map, by target name.
  std::map<std::string, self_hosted_config> self_hosted;
  // The price table, loaded only when some target is self_hosted (nullptr otherwise: a missing
  // pricing file is then not an error).
  std::shared_ptr<const ledger::pricing_table> pricing;

  // nullptr when the model is not configured (and there is no "*" alias).
  const model_alias* find_alias(std::string_view model) const;
  const providers::target_spec* find_target(std::string_view name) const;
};

// Warnings that are not errors (disabled targets, auth off), to be logged once by the caller.
struct load_result {
  std::shared_ptr<const config> cfg;
  std::vector<std::string> warnings;
};

// Reads, expands ${VAR} / ${VAR:-default}, validates. Throws config_error (or std::runtime_error
// when the file cannot be read, naming the file).
load_result load_config_file(const std::string& path);
// Same, from text; `file_name` is used in error messages.
load_result load_config_text(const std::string& text, const std::string& file_name);

}  // namespace gw::gateway
