// Parses tollgate's YAML configuration into the validated structs of config.h.
//
// Contract (see docs/config.md for every key):
//  - every problem throws config_error with the file, the 1-based line and the dotted key path;
//  - unknown keys and duplicate keys are errors, with a "did you mean" for near misses;
//  - ${NAME} / ${NAME:-default} are expanded per scalar after parsing, so lines stay exact;
//  - an API key whose environment variable is unset disables its target with a warning instead of
//    failing the load; no message ever contains an API key or client key.
#include "gateway/config.h"
#include "gateway/routing.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <limits>
#include <string_view>
#include <utility>

#include "gateway/pricing.h"
#include "gateway/yaml_reader.h"

namespace gw::gateway {

namespace {

std::string format_what(const std::string& file, int line, const std::string& key,
                        const std::string& message) {
  std::string s = file + ":" + std::to_string(line) + ": ";
  if (!key.empty()) s += key + ": ";
  return s + message;
}

}  // namespace

config_error::config_error(std::string file, int line, std::string key, const std::string& message)
    : std::runtime_error(format_what(file, line, key, message)),
      file_(std::move(file)),
      line_(line),
      key_(std::move(key)) {}

namespace {

// Durations are capped so that adding one to a steady_clock time point can never overflow.
constexpr std::int64_t max_duration_ms = 7LL * 24 * 3600 * 1000;  // one week
constexpr std::int64_t max_size_bytes = std::int64_t{1} << 40;   // 1 TiB
constexpr std::int64_t unbounded = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t max_price_usd_per_mtok = 1'000'000;
constexpr std::size_t min_client_key_chars = 8;

const key_list top_keys = {"server",    "ledger",  "reports", "auth",    "budgets",
                           "rate_limits", "budget_default_max_tokens", "providers", "targets", "models",
                           "pricing_file", "routing"};
const key_list routing_keys = {"complexity", "tiers", "privacy", "rules"};
const key_list complexity_keys = {"model_file", "calibration_file", "strong_share", "adaptive",
                                  "adaptive_window", "adaptive_min_samples"};
const key_list tiers_keys = {"weak", "strong"};
const key_list privacy_keys = {"default_action", "actions", "patterns", "keywords", "sticky_conversations",
                               "conversation_ttl_s", "max_conversations"};
const key_list pattern_keys = {"type", "regex"};
const key_list keyword_keys = {"type", "words", "case_sensitive"};
const key_list rule_keys = {"name", "when", "route", "action", "message"};
const key_list when_keys = {"privacy", "entities", "tier", "budget", "key", "team", "model", "header"};
const key_list alias_keys = {"targets", "strategy"};
const key_list capability_names = {"tools", "json_mode", "vision"};
const key_list budget_keys = {"key", "team", "daily_usd", "monthly_usd", "hard"};
const key_list rate_limit_keys = {"key", "team", "requests_per_minute", "tokens_per_minute"};
const key_list ledger_keys = {"enabled", "sync", "sync_interval_ms", "retention_days"};
const key_list reports_keys = {"timezone"};
const key_list server_keys = {"listen",   "io_threads", "shutdown_grace_ms", "data_dir",
                              "log_level", "access_log", "limits"};
const key_list limits_keys = {"max_body_bytes",          "max_header_bytes",
                              "read_timeout_ms",         "idle_timeout_ms",
                              "write_timeout_ms",        "max_connections",
                              "max_stream_buffer_bytes", "max_upstream_response_bytes"};
const key_list listener_keys = {"address", "port", "tls"};
const key_list tls_keys = {"cert_file", "key_file"};
const key_list auth_keys = {"keys"};
const key_list client_key_keys = {"name", "team", "key", "key_sha256", "admin", "privacy"};
const key_list provider_keys = {"base_url", "api_key",         "api_key_env",    "headers",
                                "timeouts", "retry",           "circuit_breaker", "max_concurrency"};
const key_list target_keys = {"provider", "model",    "prices",          "base_url",
                              "api_key",  "api_key_env", "headers",      "timeouts",
                              "retry",    "circuit_breaker", "max_concurrency", "self_hosted", "trust",
                              "tier", "context_window", "capabilities", "kind", "model_path", "context_size",
                              "kv_budget_mb", "threads", "max_batch_tokens", "max_queue", "chat_template",
                              "chat_template_file", "huge_pages"};
const key_list self_hosted_keys = {"gpu", "gpus", "usd_per_hour", "ops_usd_per_day", "reference", "tier"};
const key_list timeout_keys = {"connect_ms", "first_byte_ms", "total_ms", "stream_idle_ms"};
const key_list retry_keys = {"max_attempts", "base_delay_ms", "max_delay_ms"};
const key_list breaker_keys = {"failure_threshold", "cooldown_ms"};
const key_list price_keys = {"input_per_mtok", "output_per_mtok", "cached_input_per_mtok"};
const key_list log_levels = {"trace", "debug", "info", "warn", "error", "off"};
// Headers tollgate itself owns on the upstream request.
const key_list reserved_headers = {"host", "content-length", "transfer-encoding", "connection"};

bool has_control_or_space(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

bool is_identifier(std::string_view s) {  // target and provider names
  if (s.empty() || !std::isalnum(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

bool is_env_name(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

bool is_header_token(std::string_view s) {
  static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || extra.find(c) != std::string_view::npos;
  });
}

std::array<unsigned char, 32> sha256(std::string_view s) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  if (EVP_Digest(s.data(), s.size(), out.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != out.size()) {
    throw std::runtime_error("SHA-256 is not available from OpenSSL");
  }
  return out;
}

// Result of ${...} expansion of one scalar.
struct expansion {
  std::string value;
  std::vector<std::string> vars;  // every variable referenced, in order
  std::string first_unset;        // first variable without a default that is not set
  std::string first_empty;        // first variable without a default that is set to ""
};

// How a target gets its upstream API key; the most specific map (target over provider) wins.
struct key_setting {
  bool from_env_name = false;  // api_key_env: NAME   (otherwise api_key: <text>)
  std::string text;            // the variable name, or the unexpanded api_key scalar
  int line = 1;
  std::string path;
};

struct provider_def {
  std::string name;
  int key_line = 1;
  std::vector<yaml_entry> entries;
};

class parser : yaml_reader {
 public:
  explicit parser(std::string file) : yaml_reader(std::move(file), unknown_key_hint::closest) {}

  load_result parse(const std::string& text) {
    const YAML::Node root = load(text, /*with_column=*/true);
    if (root.IsNull()) {
      fail(1, "", "the configuration is empty; it needs at least 'auth', 'targets' and 'models'");
    }
    auto cfg = std::make_shared<config>();
    cfg->source_file = file();
    const std::vector<yaml_entry> top = map_entries(root, "", 1, &top_keys);

    if (const yaml_entry* e = find_entry(top, "server")) {
      parse_server(*e, cfg->server);
    }
    if (cfg->server.listeners.empty()) cfg->server.listeners.emplace_back();
    if (const yaml_entry* e = find_entry(top, "ledger")) parse_ledger(*e, cfg->ledger);
    if (const yaml_entry* e = find_entry(top, "reports")) parse_reports(*e, cfg->reports);

    const yaml_entry* auth = find_entry(top, "auth");
    if (!auth) {
      fail(1, "auth",
           "missing required key (list client keys under auth.keys, or write `auth: none` to run "
           "without client authentication)");
    }
    parse_auth(*auth, cfg->auth);
    if (const yaml_entry* e = find_entry(top, "budgets")) parse_budgets(*e, *cfg);
    if (const yaml_entry* e = find_entry(top, "rate_limits")) parse_rate_limits(*e, *cfg);
    if (const yaml_entry* e = find_entry(top, "budget_default_max_tokens"))
      cfg->spend.default_max_tokens = integer(*e, 1, 10'000'000);

    if (const yaml_entry* e = find_entry(top, "providers")) parse_providers(*e);

    const yaml_entry* targets = find_entry(top, "targets");
    if (!targets) fail(1, "targets", "missing required key (at least one upstream target)");
    parse_targets(*targets, cfg->targets);
    parse_self_hosted(find_entry(top, "pricing_file"), *cfg);

    const yaml_entry* models = find_entry(top, "models");
    if (!models) fail(1, "models", "missing required key (maps model names to targets)");
    parse_models(*models, *cfg);
    parse_routing(find_entry(top, "routing"), *cfg);

    return load_result{std::move(cfg), std::move(warnings_)};
  }

 private:
  std::string where(int line, const std::string& key) const {
    return file() + ":" + std::to_string(line) + ": " + key;
  }

  expansion expand_env(const std::string& text, int line, const std::string& key) const {
    expansion r;
    for (std::size_t i = 0; i < text.size(); ++i) {
      const char c = text[i];
      if (c != '$') {
        r.value += c;
        continue;
      }
      if (i + 1 < text.size() && text[i + 1] == '$') {  // "$$" -> "$"
        r.value += '$';
        ++i;
        continue;
      }
      if (i + 1 >= text.size() || text[i + 1] != '{') {  // a lone '$' is literal
        r.value += '$';
        continue;
      }
      const std::size_t close = text.find('}', i + 2);
      if (close == std::string::npos) {
        fail(line, key, "unterminated '${' (write '$$' for a literal '$')");
      }
      const std::string_view ref(text.data() + i + 2, close - i - 2);
      std::size_t n = 0;
      while (n < ref.size() &&
             (std::isalnum(static_cast<unsigned char>(ref[n])) || ref[n] == '_')) {
        ++n;
      }
      const std::string name(ref.substr(0, n));
      std::optional<std::string_view> fallback;
      if (n < ref.size()) {
        if (ref.substr(n, 2) != ":-") {
          fail(line, key,
               "invalid environment variable reference '${" + std::string(ref) +
                   "}' (expected ${NAME} or ${NAME:-default})");
        }
        fallback = ref.substr(n + 2);
      }
      if (!is_env_name(name)) {
        fail(line, key,
             "invalid environment variable name in '${" + std::string(ref) +
                 "}' (letters, digits and '_', not starting with a digit)");
      }
      r.vars.push_back(name);
      const char* v = std::getenv(name.c_str());
      if (v && *v) {
        r.value += v;
      } else if (fallback) {
        r.value += *fallback;
      } else if (!v) {
        if (r.first_unset.empty()) r.first_unset = name;
      } else if (r.first_empty.empty()) {
        r.first_empty = name;  // set but empty: expands to ""
      }
      i = close;
    }
    return r;
  }

  std::string expand(const std::string& text, int line, const std::string& key) const {
    expansion r = expand_env(text, line, key);
    if (!r.first_unset.empty()) {
      fail(line, key,
           "environment variable " + r.first_unset + " is not set (write ${" + r.first_unset +
               ":-default} to give it a default)");
    }
    return std::move(r.value);
  }

  std::string string_value(const yaml_entry& e) const {
    return expand(raw_scalar(e, "a string"), e.line(), e.path);
  }

  std::string non_empty_string(const yaml_entry& e) const {
    std::string s = string_value(e);
    if (s.empty()) fail(e.line(), e.path, "must not be empty");
    return s;
  }

  std::int64_t parse_int(const std::string& s, int line, const std::string& key, std::int64_t min,
                         std::int64_t max) const {
    std::int64_t v = 0;
    const char* first = s.data();
    const char* last = s.data() + s.size();
    const auto [ptr, ec] = std::from_chars(first, last, v);
    if (s.empty() || ptr != last) fail(line, key, "expected an integer, got '" + s + "'");
    if (ec == std::errc::result_out_of_range) fail(line, key, "integer out of range: " + s);
    if (v < min || v > max) {
      const std::string got = " (got " + s + ")";
      if (v < 0 && min >= 0) fail(line, key, "must not be negative" + got);
      if (v < min) fail(line, key, "must be at least " + std::to_string(min) + got);
      fail(line, key, "must be at most " + std::to_string(max) + got);
    }
    return v;
  }

  std::int64_t integer(const yaml_entry& e, std::int64_t min, std::int64_t max) const {
    const std::string s = expand(raw_scalar(e, "an integer"), e.line(), e.path);
    return parse_int(s, e.line(), e.path, min, max);
  }

  std::chrono::milliseconds duration(const yaml_entry& e, std::int64_t min) const {
    return std::chrono::milliseconds(integer(e, min, max_duration_ms));
  }

  std::size_t byte_size(const yaml_entry& e) const {
    return static_cast<std::size_t>(integer(e, 1, max_size_bytes));
  }

  bool boolean(const yaml_entry& e) const {
    const std::string s = expand(raw_scalar(e, "true or false"), e.line(), e.path);
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
    fail(e.line(), e.path, "expected true or false, got '" + s + "'");
  }

  // USD per 1M tokens, exact decimal -> pico-dollars per token (the same digits scaled by 1e6).
  std::int64_t price(const yaml_entry& e) const {
    const std::string s = expand(raw_scalar(e, "a price"), e.line(), e.path);
    if (!s.empty() && s[0] == '-') fail(e.line(), e.path, "must not be negative (got " + s + ")");
    const std::size_t dot = s.find('.');
    const std::string_view whole = std::string_view(s).substr(0, dot);
    const std::string_view frac =
        dot == std::string::npos ? std::string_view() : std::string_view(s).substr(dot + 1);
    const auto digits = [](std::string_view x) {
      return !x.empty() && std::all_of(x.begin(), x.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c));
      });
    };
    if (!digits(whole) || (dot != std::string::npos && !digits(frac))) {
      fail(e.line(), e.path,
           "expected a price in USD per 1M tokens such as 0.15, got '" + s + "'");
    }
    if (frac.size() > 6) {
      fail(e.line(), e.path, "at most 6 decimal places are supported (got " + s + ")");
    }
    std::int64_t w = 0;
    const auto [ptr, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), w);
    if (ec != std::errc() || w > max_price_usd_per_mtok) {
      fail(e.line(), e.path,
           "must be at most " + std::to_string(max_price_usd_per_mtok) + " USD per 1M tokens");
    }
    std::int64_t f = 0;
    for (std::size_t i = 0; i < 6; ++i) f = f * 10 + (i < frac.size() ? frac[i] - '0' : 0);
    return w * 1'000'000 + f;
  }

  void check_readable_file(const std::string& path, int line, const std::string& key) const {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      fail(line, key, "file '" + path + "' does not exist or is not a regular file");
    }
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail(line, key, "cannot read file '" + path + "': " + std::strerror(errno));
    std::fclose(f);
  }

  // ---- server ---------------------------------------------------------------------------

  void parse_server(const yaml_entry& section, server_config& s) {
    for (const yaml_entry& e : map_entries(section, &server_keys)) {
      if (e.name == "listen") {
        s.listeners = parse_listeners(e);
      } else if (e.name == "io_threads") {
        s.io_threads = static_cast<int>(integer(e, 0, 1024));
      } else if (e.name == "shutdown_grace_ms") {
        s.shutdown_grace = duration(e, 0);
      } else if (e.name == "data_dir") {
        s.data_dir = non_empty_string(e);
      } else if (e.name == "log_level") {
        s.log_level = string_value(e);
        if (std::find(log_levels.begin(), log_levels.end(), s.log_level) == log_levels.end()) {
          fail(e.line(), e.path,
               "unknown log level '" + s.log_level + "'" + did_you_mean(s.log_level, log_levels) +
                   "; expected one of " + join_list(log_levels));
        }
      } else if (e.name == "access_log") {
        s.access_log = boolean(e);
      } else if (e.name == "limits") {
        parse_limits(e, s.limits);
      }
    }
  }

  // `key: NAME` or `team: NAME` (exactly one); a key must be one of auth.keys when auth is on.
  std::pair<policies::budget_scope, std::string> limit_subject(const yaml_entry& item, const std::vector<yaml_entry>& fields,
                                                               const config& cfg) {
    const yaml_entry* key = find_entry(fields, "key");
    const yaml_entry* team = find_entry(fields, "team");
    if ((key != nullptr) == (team != nullptr))
      fail(item.key_line, item.path, "needs exactly one of 'key' or 'team'");
    if (key) {
      std::string name = non_empty_string(*key);
      if (cfg.auth.enabled) {
        bool known = false;
        for (const auto& k : cfg.auth.keys) known = known || k.name == name;
        if (!known) fail(key->line(), key->path, "unknown client key '" + name + "' (not in auth.keys)");
      }
      return {policies::budget_scope::key, name};
    }
    return {policies::budget_scope::team, non_empty_string(*team)};
  }

  void parse_budgets(const yaml_entry& section, config& cfg) {
    for (const yaml_entry& item : list_items(section)) {
      const std::vector<yaml_entry> fields = map_entries(item, &budget_keys);
      auto [scope, name] = limit_subject(item, fields, cfg);
      bool hard = true;
      if (const yaml_entry* h = find_entry(fields, "hard")) hard = boolean(*h);
      bool any = false;
      for (auto [field, period] : {std::pair{"daily_usd", policies::budget_period::day},
                                   std::pair{"monthly_usd", policies::budget_period::month}}) {
        const yaml_entry* v = find_entry(fields, field);
        if (!v) continue;
        any = true;
        for (const auto& b : cfg.spend.budgets)
          if (b.scope == scope && b.name == name && b.period == period)
            fail(v->line(), v->path, "a " + std::string(field) + " budget for '" + name + "' is already set");
        cfg.spend.budgets.push_back({scope, name, period, usd_amount(*v), hard});
      }
      if (!any) fail(item.key_line, item.path, "needs daily_usd and/or monthly_usd");
    }
  }

  void parse_rate_limits(const yaml_entry& section, config& cfg) {
    for (const yaml_entry& item : list_items(section)) {
      const std::vector<yaml_entry> fields = map_entries(item, &rate_limit_keys);
      auto [scope, name] = limit_subject(item, fields, cfg);
      policies::rate_limit r{scope, name, 0, 0};
      if (const yaml_entry* v = find_entry(fields, "requests_per_minute")) r.requests_per_minute = integer(*v, 1, 100'000'000);
      if (const yaml_entry* v = find_entry(fields, "tokens_per_minute")) r.tokens_per_minute = integer(*v, 1, 10'000'000'000);
      if (!r.requests_per_minute && !r.tokens_per_minute)
        fail(item.key_line, item.path, "needs requests_per_minute and/or tokens_per_minute");
      cfg.spend.rate_limits.push_back(std::move(r));
    }
  }

  void parse_ledger(const yaml_entry& section, ledger_config& l) {
    for (const yaml_entry& e : map_entries(section, &ledger_keys)) {
      if (e.name == "enabled") {
        l.enabled = boolean(e);
      } else if (e.name == "sync") {
        l.sync = string_value(e);
        if (l.sync != "interval" && l.sync != "always" && l.sync != "none")
          fail(e.line(), e.path, "unknown sync mode '" + l.sync + "'; expected interval, always or none");
      } else if (e.name == "sync_interval_ms") {
        l.sync_interval = duration(e, 1);
      } else if (e.name == "retention_days") {
        l.retention_days = static_cast<int>(integer(e, 0, 100'000));
      }
    }
  }

  void parse_reports(const yaml_entry& section, reports_config& r) {
    for (const yaml_entry& e : map_entries(section, &reports_keys)) {
      if (e.name == "timezone") {
        r.timezone = string_value(e);
        const std::string& tz = r.timezone;
        if (tz == "UTC" || tz == "Z") {
          r.utc_offset_minutes = 0;
        } else if (tz.size() == 6 && (tz[0] == '+' || tz[0] == '-') && tz[3] == ':' && std::isdigit(tz[1]) &&
                   std::isdigit(tz[2]) && std::isdigit(tz[4]) && std::isdigit(tz[5])) {
          int h = (tz[1] - '0') * 10 + (tz[2] - '0'), m = (tz[4] - '0') * 10 + (tz[5] - '0');
          if (h > 14 || m > 59) fail(e.line(), e.path, "offset out of range: '" + tz + "'");
          r.utc_offset_minutes = (tz[0] == '-' ? -1 : 1) * (h * 60 + m);
        } else {
          fail(e.line(), e.path, "expected UTC or a fixed offset like +02:00, got '" + tz + "'");
        }
      }
    }
  }

  void parse_limits(const yaml_entry& section, limits_config& l) {
    for (const yaml_entry& e : map_entries(section, &limits_keys)) {
      if (e.name == "max_body_bytes") {
        l.max_body_bytes = byte_size(e);
      } else if (e.name == "max_header_bytes") {
        l.max_header_bytes = byte_size(e);
      } else if (e.name == "read_timeout_ms") {
        l.read_timeout = duration(e, 1);
      } else if (e.name == "idle_timeout_ms") {
        l.idle_timeout = duration(e, 1);
      } else if (e.name == "write_timeout_ms") {
        l.write_timeout = duration(e, 1);
      } else if (e.name == "max_connections") {
        l.max_connections = static_cast<std::size_t>(integer(e, 1, 10'000'000));
      } else if (e.name == "max_stream_buffer_bytes") {
        l.max_stream_buffer_bytes = byte_size(e);
      } else if (e.name == "max_upstream_response_bytes") {
        l.max_upstream_response_bytes = byte_size(e);
      }
    }
  }

  std::vector<listener_config> parse_listeners(const yaml_entry& e) {
    std::vector<listener_config> out;
    if (e.value.IsSequence()) {
      const std::vector<yaml_entry> items = list_items(e);
      if (items.empty()) fail(e.key_line, e.path, "must list at least one address");
      std::vector<int> lines;
      for (const yaml_entry& item : items) {
        listener_config l = parse_listener(item);
        for (std::size_t i = 0; i < out.size(); ++i) {
          if (l.port != 0 && out[i].port == l.port && out[i].address == l.address) {
            fail(item.line(), item.path,
                 "duplicate listener " + l.address + ":" + std::to_string(l.port) +
                     " (also on line " + std::to_string(lines[i]) + ")");
          }
        }
        out.push_back(std::move(l));
        lines.push_back(item.line());
      }
    } else {
      out.push_back(parse_listener(e));
    }
    return out;
  }

  // Strips IPv6 brackets and requires an IP literal (the listener binds, it does not resolve).
  std::string ip_address(std::string a, int line, const std::string& key) const {
    if (a.size() >= 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
    unsigned char buf[16];
    if (inet_pton(AF_INET, a.c_str(), buf) != 1 && inet_pton(AF_INET6, a.c_str(), buf) != 1) {
      fail(line, key,
           "expected an IPv4 or IPv6 address such as 127.0.0.1, 0.0.0.0 or ::1, got '" + a + "'");
    }
    return a;
  }

  std::uint16_t port_number(const std::string& s, int line, const std::string& key) const {
    std::int64_t v = 0;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ptr != s.data() + s.size()) {
      fail(line, key, "expected a port number, got '" + s + "'");
    }
    if (ec != std::errc() || v < 0 || v > 65535) {
      fail(line, key, "port must be in 0..65535 (got " + s + ")");
    }
    return static_cast<std::uint16_t>(v);
  }

  listener_config parse_listener(const yaml_entry& e) {
    listener_config l;
    if (e.value.IsMap()) {
      const std::vector<yaml_entry> entries = map_entries(e, &listener_keys);
      for (const yaml_entry& f : entries) {
        if (f.name == "address") {
          l.address = ip_address(non_empty_string(f), f.line(), f.path);
        } else if (f.name == "port") {
          l.port = port_number(expand(raw_scalar(f, "a port number"), f.line(), f.path), f.line(),
                               f.path);
        } else if (f.name == "tls") {
          parse_tls(f, l);
        }
      }
      return l;
    }
    if (!e.value.IsScalar()) {
      fail(e.key_line, e.path,
           "expected \"host:port\" or a map with address and port, got " + kind_of(e.value));
    }
    const std::string s = string_value(e);
    const std::size_t colon = s.rfind(':');
    if (colon == std::string::npos) {
      fail(e.line(), e.path, "expected \"host:port\", e.g. \"127.0.0.1:8080\", got '" + s + "'");
    }
    const std::string host = s.substr(0, colon);
    if (host.empty()) fail(e.line(), e.path, "missing host in '" + s + "' (e.g. 0.0.0.0:8080)");
    if (host.find(':') != std::string::npos && host.front() != '[') {
      fail(e.line(), e.path, "write IPv6 addresses in brackets, e.g. \"[::1]:8080\", got '" + s + "'");
    }
    l.address = ip_address(host, e.line(), e.path);
    l.port = port_number(s.substr(colon + 1), e.line(), e.path);
    return l;
  }

  void parse_tls(const yaml_entry& section, listener_config& l) {
    const std::vector<yaml_entry> entries = map_entries(section, &tls_keys);
    const yaml_entry* cert = find_entry(entries, "cert_file");
    const yaml_entry* key = find_entry(entries, "key_file");
    if (!cert || !key) {
      fail(section.key_line, section.path,
           std::string("needs both cert_file and key_file (missing ") +
               (cert ? "key_file" : "cert_file") + ")");
    }
    l.tls_cert_file = non_empty_string(*cert);
    check_readable_file(l.tls_cert_file, cert->line(), cert->path);
    l.tls_key_file = non_empty_string(*key);
    check_readable_file(l.tls_key_file, key->line(), key->path);
  }

  // ---- auth -----------------------------------------------------------------------------

  void parse_auth(const yaml_entry& section, auth_config& a) {
    if (!section.value.IsScalar() && !section.value.IsMap()) {
      fail(section.key_line, section.path,
           "expected `none` or a map with 'keys', got " + kind_of(section.value));
    }
    if (section.value.IsScalar()) {
      const std::string s = string_value(section);
      if (s != "none") {
        fail(section.line(), section.path,
             "expected `none` or a map with 'keys', got '" + s + "'");
      }
      a.enabled = false;
      warnings_.push_back("client authentication is off (auth: none)");
      return;
    }
    const std::vector<yaml_entry> entries = map_entries(section, &auth_keys);
    const yaml_entry* keys = find_entry(entries, "keys");
    if (!keys) {
      fail(section.key_line, section.path + ".keys",
           "missing required key (or write `auth: none` to run without client authentication)");
    }
    const std::vector<yaml_entry> items = list_items(*keys);
    if (items.empty()) {
      fail(keys->key_line, keys->path,
           "must list at least one key (or write `auth: none` to run without client "
           "authentication)");
    }
    std::vector<int> lines;
    for (const yaml_entry& item : items) {
      api_key_config k = parse_client_key(item);
      for (std::size_t i = 0; i < a.keys.size(); ++i) {
        if (a.keys[i].name == k.name) {
          fail(item.key_line, item.path + ".name",
               "duplicate key name '" + k.name + "' (also on line " + std::to_string(lines[i]) +
                   ")");
        }
        if (a.keys[i].sha256 == k.sha256) {
          fail(item.key_line, item.path,
               "same key as '" + a.keys[i].name + "' (line " + std::to_string(lines[i]) +
                   "); every client key must be unique");
        }
      }
      a.keys.push_back(std::move(k));
      lines.push_back(item.key_line);
    }
  }

  api_key_config parse_client_key(const yaml_entry& item) {
    const std::vector<yaml_entry> entries = map_entries(item, &client_key_keys);
    api_key_config k;
    const yaml_entry* name = find_entry(entries, "name");
    if (!name) fail(item.key_line, item.path + ".name", "missing required key");
    k.name = non_empty_string(*name);
    if (const yaml_entry* e = find_entry(entries, "team")) k.team = string_value(*e);
    if (const yaml_entry* e = find_entry(entries, "admin")) k.admin = boolean(*e);
    if (const yaml_entry* e = find_entry(entries, "privacy")) {
      const std::string v = string_value(*e);
      if (v != "strict" && v != "normal") fail(e->line(), e->path, "expected strict or normal, got '" + v + "'");
      k.privacy_strict = v == "strict";
    }
    const yaml_entry* plain = find_entry(entries, "key");
    const yaml_entry* hashed = find_entry(entries, "key_sha256");
    if (plain && hashed) {
      fail(hashed->key_line, hashed->path, "set either key or key_sha256, not both");
    }
    if (!plain && !hashed) {
      fail(item.key_line, item.path + ".key", "missing required key (or key_sha256)");
    }
    if (plain) {
      const std::string s = string_value(*plain);
      if (s.size() < min_client_key_chars) {
        fail(plain->line(), plain->path,
             "client keys must be at least " + std::to_string(min_client_key_chars) +
                 " characters long (got " + std::to_string(s.size()) + ")");
      }
      if (has_control_or_space(s)) {
        fail(plain->line(), plain->path, "client keys must not contain spaces or control characters");
      }
      k.sha256 = sha256(s);
    } else {
      const std::string s = string_value(*hashed);
      const auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
      };
      const bool ok = s.size() == 64 && std::all_of(s.begin(), s.end(), [&](char c) {
                        return hex(c) >= 0;
                      });
      if (!ok) {
        fail(hashed->line(), hashed->path,
             "expected 64 hexadecimal characters (a SHA-256 digest, e.g. from "
             "`printf %s KEY | sha256sum`), got " +
                 std::to_string(s.size()) + " characters");
      }
      for (std::size_t i = 0; i < 32; ++i) {
        k.sha256[i] = static_cast<unsigned char>(hex(s[2 * i]) * 16 + hex(s[2 * i + 1]));
      }
    }
    return k;
  }

  // ---- providers and targets ------------------------------------------------------------

  void parse_providers(const yaml_entry& section) {
    for (const yaml_entry& p : map_entries(section, nullptr)) {
      if (!is_identifier(p.name)) {
        fail(p.key_line, p.path,
             "provider names use letters, digits, '.', '_' and '-' and start with a letter or "
             "digit");
      }
      provider_def def{p.name, p.key_line, map_entries(p, &provider_keys)};
      // Validate now, so that a provider no target uses is still checked.
      providers::target_spec scratch;
      std::optional<key_setting> key;
      apply_settings(def.entries, scratch, key);
      check_key_setting(key);
      providers_.push_back(std::move(def));
    }
  }

  const provider_def* find_provider(std::string_view name) const {
    for (const provider_def& p : providers_) {
      if (p.name == name) return &p;
    }
    return nullptr;
  }

  std::string base_url(const yaml_entry& e) const {
    std::string s = non_empty_string(e);
    std::string_view rest;
    if (s.rfind("http://", 0) == 0) {
      rest = std::string_view(s).substr(7);
    } else if (s.rfind("https://", 0) == 0) {
      rest = std::string_view(s).substr(8);
    } else {
      fail(e.line(), e.path, "must start with http:// or https:// (got '" + s + "')");
    }
    if (rest.empty() || rest[0] == '/') fail(e.line(), e.path, "has no host (got '" + s + "')");
    if (has_control_or_space(s)) fail(e.line(), e.path, "must not contain spaces");
    if (s.find_first_of("?#") != std::string::npos) {
      fail(e.line(), e.path, "must not contain a query string or fragment (got '" + s + "')");
    }
    while (s.back() == '/') s.pop_back();
    return s;
  }

  // Applies the provider-level keys in `entries` on top of `t` (later maps override earlier
  // ones field by field; headers merge by case-insensitive name). Target-only keys are skipped.
  void apply_settings(const std::vector<yaml_entry>& entries, providers::target_spec& t,
                      std::optional<key_setting>& key) {
    const yaml_entry* api_key = find_entry(entries, "api_key");
    const yaml_entry* api_key_env = find_entry(entries, "api_key_env");
    if (api_key && api_key_env) {
      fail(api_key_env->key_line, api_key_env->path, "set either api_key or api_key_env, not both");
    }
    if (api_key) {
      key = key_setting{false, raw_scalar(*api_key, "a string"), api_key->line(), api_key->path};
    } else if (api_key_env) {
      const std::string name = non_empty_string(*api_key_env);
      if (!is_env_name(name)) {
        fail(api_key_env->line(), api_key_env->path,
             "expected an environment variable name such as OPENAI_API_KEY, got '" + name +
                 "' (to give the key itself, use api_key)");
      }
      key = key_setting{true, name, api_key_env->line(), api_key_env->path};
    }
    for (const yaml_entry& e : entries) {
      if (e.name == "base_url") {
        t.base_url = base_url(e);
      } else if (e.name == "headers") {
        apply_headers(e, t.headers);
      } else if (e.name == "timeouts") {
        for (const yaml_entry& f : map_entries(e, &timeout_keys)) {
          if (f.name == "connect_ms") t.timeout.connect = duration(f, 1);
          if (f.name == "first_byte_ms") t.timeout.first_byte = duration(f, 1);
          if (f.name == "total_ms") t.timeout.total = duration(f, 1);
          if (f.name == "stream_idle_ms") t.timeout.stream_idle = duration(f, 1);
        }
      } else if (e.name == "retry") {
        for (const yaml_entry& f : map_entries(e, &retry_keys)) {
          if (f.name == "max_attempts") t.retry.max_attempts = static_cast<int>(integer(f, 1, 10));
          if (f.name == "base_delay_ms") t.retry.base_delay = duration(f, 0);
          if (f.name == "max_delay_ms") t.retry.max_delay = duration(f, 0);
        }
      } else if (e.name == "circuit_breaker") {
        for (const yaml_entry& f : map_entries(e, &breaker_keys)) {
          if (f.name == "failure_threshold") {
            t.breaker.failure_threshold = static_cast<int>(integer(f, 1, 1'000'000));
          }
          if (f.name == "cooldown_ms") t.breaker.cooldown = duration(f, 1);
        }
      } else if (e.name == "max_concurrency") {
        t.max_concurrency = static_cast<int>(integer(e, 0, 1'000'000));
      }
    }
  }

  void apply_headers(const yaml_entry& section, providers::header_list& headers) {
    for (const yaml_entry& h : map_entries(section, nullptr)) {
      if (!is_header_token(h.name)) {
        fail(h.key_line, h.path, "'" + h.name + "' is not a valid HTTP header name");
      }
      for (std::string_view r : reserved_headers) {
        if (iequals(h.name, r)) {
          fail(h.key_line, h.path, "header '" + h.name + "' is set by tollgate and cannot be configured");
        }
      }
      std::string value = string_value(h);
      if (std::any_of(value.begin(), value.end(), [](char c) {
            const auto u = static_cast<unsigned char>(c);
            return (u < 0x20 && c != '\t') || u == 0x7f;
          })) {
        fail(h.line(), h.path, "header values must not contain control characters");
      }
      auto same = std::find_if(headers.begin(), headers.end(),
                               [&](const auto& kv) { return iequals(kv.first, h.name); });
      if (same != headers.end()) {
        same->second = std::move(value);
      } else {
        headers.emplace_back(h.name, std::move(value));
      }
    }
  }

  // Syntax of an api_key expression (variables referenced, ${...} well formed), without deciding
  // anything about the environment.
  void check_key_setting(const std::optional<key_setting>& key) const {
    if (key && !key->from_env_name) expand_env(key->text, key->line, key->path);
  }

  // Resolves the key into `t`; an unset/empty variable disables the target with one warning.
  void resolve_key(const std::optional<key_setting>& key, providers::target_spec& t) {
    if (!key) return;  // no key: self-hosted upstream, no Authorization header
    std::string missing;
    std::string value;
    std::string source;
    if (key->from_env_name) {
      const char* v = std::getenv(key->text.c_str());
      if (!v || !*v) {
        missing = key->text;
      } else {
        value = v;
      }
      source = "env " + key->text;
    } else {
      expansion r = expand_env(key->text, key->line, key->path);
      missing = !r.first_unset.empty() ? r.first_unset : r.first_empty;
      value = std::move(r.value);
      source = r.vars.empty() ? "config file" : "env " + r.vars.front();
    }
    if (!missing.empty()) {
      t.enabled = false;
      t.disabled_reason = "environment variable " + missing + " is not set";
      t.api_key_source = "env " + missing;
      warnings_.push_back("target '" + t.name + "' is disabled: " + t.disabled_reason + " (" +
                          where(key->line, key->path) + ")");
      return;
    }
    if (value.empty()) return;  // e.g. api_key: ${KEY:-} -- explicitly optional
    if (has_control_or_space(value)) {
      fail(key->line, key->path,
           "the API key (" + source + ") contains spaces or control characters");
    }
    t.api_key = std::move(value);
    t.api_key_source = std::move(source);
  }

  void parse_targets(const yaml_entry& section, std::map<std::string, providers::target_spec>& out) {
    const std::vector<yaml_entry> targets = map_entries(section, nullptr);
    if (targets.empty()) fail(section.key_line, section.path, "must define at least one target");
    for (const yaml_entry& te : targets) {
      if (!is_identifier(te.name)) {
        fail(te.key_line, te.path,
             "target names use letters, digits, '.', '_' and '-' and start with a letter or digit");
      }
      const std::vector<yaml_entry> entries = map_entries(te, &target_keys);
      providers::target_spec t;
      t.name = te.name;
      t.provider = te.name;
      std::optional<key_setting> key;
      if (const yaml_entry* p = find_entry(entries, "provider")) {
        const std::string name = non_empty_string(*p);
        const provider_def* def = find_provider(name);
        if (!def) {
          key_list names;
          for (const provider_def& d : providers_) names.push_back(d.name);
          fail(p->line(), p->path,
               "unknown provider '" + name + "'" + did_you_mean(name, names) +
                   (providers_.empty() ? " (there is no 'providers' section)" : ""));
        }
        t.provider = name;
        apply_settings(def->entries, t, key);
      }
      apply_settings(entries, t, key);
      check_key_setting(key);
      if (const yaml_entry* k = find_entry(entries, "kind")) {
        t.kind = string_value(*k);
        if (t.kind != "http" && t.kind != "local")
          fail(k->line(), k->path, "unknown kind '" + t.kind + "'; expected http (an OpenAI-compatible server) or local (the built-in engine)");
      }
      parse_local_settings(te, entries, t);
      if (t.kind == "local") {
        if (!t.base_url.empty()) fail(te.key_line, te.path + ".base_url", "a kind: local target runs in-process and has no base_url");
        if (!find_entry(entries, "trust")) t.trust = "local";
        if (!find_entry(entries, "provider")) t.provider = "";
      } else if (t.base_url.empty()) {
        fail(te.key_line, te.path, "needs either 'provider' (a name under providers) or 'base_url'");
      }
      if (t.retry.max_delay < t.retry.base_delay) {
        fail(te.key_line, te.path + ".retry",
             "max_delay_ms (" + std::to_string(t.retry.max_delay.count()) +
                 ") is less than base_delay_ms (" + std::to_string(t.retry.base_delay.count()) +
                 ")");
      }
      if (const yaml_entry* m = find_entry(entries, "model")) {
        t.upstream_model = string_value(*m);
        if (t.upstream_model->empty()) {
          fail(m->line(), m->path,
               "must not be empty (leave 'model' out to forward the client's model name)");
        }
      }
      if (const yaml_entry* pr = find_entry(entries, "prices")) {
        for (const yaml_entry& f : map_entries(*pr, &price_keys)) {
          if (f.name == "input_per_mtok") t.prices.input = price(f);
          if (f.name == "output_per_mtok") t.prices.output = price(f);
          if (f.name == "cached_input_per_mtok") t.prices.cached_input = price(f);
        }
      }
      if (const yaml_entry* tr = find_entry(entries, "trust")) {
        t.trust = string_value(*tr);
        if (t.trust != "local" && t.trust != "trusted" && t.trust != "external")
          fail(tr->line(), tr->path, "unknown trust '" + t.trust + "'; expected local, trusted or external");
      }
      if (const yaml_entry* e = find_entry(entries, "tier")) t.tier = static_cast<int>(integer(*e, 1, 3));
      if (const yaml_entry* e = find_entry(entries, "context_window")) t.context_window = integer(*e, 1, 100'000'000);
      if (const yaml_entry* e = find_entry(entries, "capabilities")) {
        std::vector<std::string> caps;
        for (const yaml_entry& c : list_items(*e)) {
          std::string name = non_empty_string(c);
          if (std::find(capability_names.begin(), capability_names.end(), name) == capability_names.end())
            fail(c.line(), c.path, "unknown capability '" + name + "'" + did_you_mean(name, capability_names) +
                                       " (expected tools, json_mode, vision)");
          caps.push_back(std::move(name));
        }
        t.capabilities = std::move(caps);
      }
      if (const yaml_entry* sh = find_entry(entries, "self_hosted")) self_hosted_entries_.push_back(*sh);
      resolve_key(key, t);
      if (!t.api_key.empty()) {
        for (const auto& [name, value] : t.headers) {
          if (iequals(name, "authorization")) {
            fail(te.key_line, te.path + ".headers." + name,
                 "an Authorization header conflicts with the target's API key; set only one");
          }
        }
      }
      out.emplace(te.name, std::move(t));
    }
  }

  // kind: local settings; an error to give them to an http target.
  void parse_local_settings(const yaml_entry& te, const std::vector<yaml_entry>& entries, providers::target_spec& t) {
    static const key_list local_keys = {"model_path", "context_size", "kv_budget_mb", "threads", "max_batch_tokens",
                                        "max_queue", "chat_template", "chat_template_file", "huge_pages"};
    for (const yaml_entry& e : entries) {
      if (std::find(local_keys.begin(), local_keys.end(), e.name) == local_keys.end()) continue;
      if (t.kind != "local") fail(e.key_line, e.path, "only for targets with kind: local");
      auto& l = t.local;
      if (e.name == "model_path") l.model_path = expand_home(non_empty_string(e));
      if (e.name == "context_size") l.context_size = static_cast<int>(integer(e, 16, 1 << 20));
      if (e.name == "kv_budget_mb") l.kv_budget_bytes = integer(e, 1, 1 << 20) * 1024 * 1024;
      if (e.name == "threads") l.threads = static_cast<int>(integer(e, 0, 1024));
      if (e.name == "max_batch_tokens") l.max_batch_tokens = static_cast<int>(integer(e, 1, 1 << 16));
      if (e.name == "max_queue") l.max_queue = static_cast<int>(integer(e, 1, 1 << 20));
      if (e.name == "chat_template") l.chat_template = string_value(e);
      if (e.name == "huge_pages") l.huge_pages = boolean(e);
      if (e.name == "chat_template_file") {
        const std::string path = resolve_relative(non_empty_string(e));
        std::ifstream f(path);
        if (!f) fail(e.line(), e.path, "cannot read " + path);
        std::stringstream ss;
        ss << f.rdbuf();
        l.chat_template = ss.str();
      }
    }
    if (t.kind == "local" && t.local.model_path.empty())
      fail(te.key_line, te.path + ".model_path", "missing required key (the GGUF file a kind: local target serves)");
  }

  static std::string expand_home(std::string p) {
    if (p.rfind("~/", 0) == 0)
      if (const char* home = std::getenv("HOME")) p = std::string(home) + p.substr(1);
    return p;
  }

  // ---- self-hosted GPU costs (breakeven report) -------------------------------------------

  // A plain USD amount, exact (ledger::parse_usd, up to 12 decimals).
  ledger::pico_usd usd_amount(const yaml_entry& e) const {
    const std::string s = expand(raw_scalar(e, "an amount in USD"), e.line(), e.path);
    if (const auto v = ledger::parse_usd(s)) return *v;
    if (!s.empty() && s[0] == '-') fail(e.line(), e.path, "must not be negative (got " + s + ")");
    fail(e.line(), e.path,
         "expected a plain decimal amount in USD such as 2.49 (at most 12 decimals), got '" + s + "'");
  }

  // A target without any `prices:` takes its provider/model row of the price table, when there is
  // one (the target's own prices always win).
  void fill_prices_from_table(config& cfg) {
    if (!cfg.pricing) return;
    for (auto& [name, spec] : cfg.targets) {
      auto& p = spec.prices;
      if (p.input || p.output || p.cached_input || !spec.upstream_model) continue;
      const ledger::model_price* row = cfg.pricing->find(spec.provider, *spec.upstream_model);
      if (!row) continue;
      p.input = row->input;
      p.output = row->output;
      p.cached_input = row->cached_input;
    }
  }

  // pricing_file relative to the config file's directory when it exists there, else as given.
  std::string resolve_pricing_path(const std::string& p) const {
    namespace fs = std::filesystem;
    if (fs::path(p).is_absolute()) return p;
    const fs::path dir = fs::path(file()).parent_path();
    if (!dir.empty()) {
      std::error_code ec;
      const fs::path candidate = dir / p;
      if (fs::exists(candidate, ec)) return candidate.string();
    }
    return p;
  }

  // Reads pricing_file and every targets.*.self_hosted map collected by parse_targets. The price
  // table is loaded only when some target is self-hosted, so that a missing table never breaks a
  // config that does not need it.
  void parse_self_hosted(const yaml_entry* pricing_file, config& cfg) {
    std::string given = cfg.pricing_file;
    if (pricing_file) given = non_empty_string(*pricing_file);
    cfg.pricing_file = resolve_pricing_path(given);
    if (self_hosted_entries_.empty()) {
      // Not required: when the table is there, it prices targets that set no prices of their own.
      std::error_code ec;
      if (std::filesystem::exists(cfg.pricing_file, ec)) {
        cfg.pricing = std::make_shared<const ledger::pricing_table>(load_pricing_file(cfg.pricing_file));
        fill_prices_from_table(cfg);
      }
      return;
    }

    const yaml_entry& first = self_hosted_entries_.front();
    try {
      cfg.pricing = std::make_shared<const ledger::pricing_table>(load_pricing_file(cfg.pricing_file));
    } catch (const config_error&) {
      throw;  // already names the price table's file and line
    } catch (const std::exception& e) {
      const int line = pricing_file ? pricing_file->line() : first.key_line;
      fail(line, pricing_file ? pricing_file->path : std::string("pricing_file"),
           std::string(e.what()) + " (needed by " + first.path +
               "; set pricing_file to the price table, e.g. configs/pricing.yaml)");
    }
    const ledger::pricing_table& table = *cfg.pricing;
    fill_prices_from_table(cfg);

    for (const yaml_entry& section : self_hosted_entries_) {
      // section.path is "targets.<name>.self_hosted"
      const std::string target = section.path.substr(8, section.path.size() - 8 - 12);
      const std::vector<yaml_entry> entries = map_entries(section, &self_hosted_keys);
      self_hosted_config sh;
      const yaml_entry* gpu = find_entry(entries, "gpu");
      const yaml_entry* per_hour = find_entry(entries, "usd_per_hour");
      if (!gpu && !per_hour) {
        fail(section.key_line, section.path + ".gpu",
             "missing required key (a GPU of the price table, or usd_per_hour)");
      }
      if (gpu) sh.gpu = non_empty_string(*gpu);
      if (per_hour) {
        sh.per_hour = usd_amount(*per_hour);
        sh.per_hour_from_config = true;
      } else {
        const ledger::gpu_price* g = table.find_gpu(sh.gpu);
        if (!g) {
          key_list names;
          for (const ledger::gpu_price& p : table.gpus) names.push_back(p.gpu);
          fail(gpu->line(), gpu->path,
               "GPU '" + sh.gpu + "' is not in the price table " + cfg.pricing_file +
                   did_you_mean(sh.gpu, names) + " (or give usd_per_hour)");
        }
        sh.per_hour = g->per_hour;
      }
      if (const yaml_entry* e = find_entry(entries, "gpus")) sh.gpus = static_cast<int>(integer(*e, 1, 100'000));
      if (const yaml_entry* e = find_entry(entries, "ops_usd_per_day")) sh.ops_per_day = usd_amount(*e);
      if (const yaml_entry* e = find_entry(entries, "tier")) sh.tier = static_cast<int>(integer(*e, 1, 3));
      const yaml_entry* ref = find_entry(entries, "reference");
      if (!ref) {
        fail(section.key_line, section.path + ".reference",
             "missing required key (a priced API as provider/model, e.g. openai/gpt-4o-mini)");
      }
      const std::string r = non_empty_string(*ref);
      const std::size_t slash = r.find('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == r.size()) {
        fail(ref->line(), ref->path, "expected provider/model, e.g. openai/gpt-4o-mini, got '" + r + "'");
      }
      sh.reference_provider = r.substr(0, slash);
      sh.reference_model = r.substr(slash + 1);
      if (!table.find(sh.reference_provider, sh.reference_model)) {
        std::vector<std::string> all;
        for (const ledger::model_price& m : table.models) all.push_back(m.provider + "/" + m.model);
        const key_list names(all.begin(), all.end());
        fail(ref->line(), ref->path,
             "'" + r + "' is not in the price table " + cfg.pricing_file + did_you_mean(r, names));
      }
      // A fleet must fit the day's cost in int64 p$ (about $9.2M/day).
      const __int128 day = static_cast<__int128>(sh.per_hour) * sh.gpus * 24 + sh.ops_per_day;
      if (day > std::numeric_limits<ledger::pico_usd>::max()) {
        fail(section.key_line, section.path, "the daily cost of this fleet is too large");
      }
      cfg.self_hosted.emplace(target, std::move(sh));
    }
  }

  // ---- models ---------------------------------------------------------------------------

  void parse_models(const yaml_entry& section, config& cfg) {
    const std::vector<yaml_entry> aliases = map_entries(section, nullptr);
    if (aliases.empty()) fail(section.key_line, section.path, "must define at least one model");
    key_list target_names;
    for (const auto& [name, t] : cfg.targets) target_names.push_back(name);
    for (const yaml_entry& a : aliases) {
      if (a.name.empty()) fail(a.key_line, a.path, "model names must not be empty");
      model_alias alias;
      alias.name = a.name;
      std::vector<yaml_entry> items;
      if (a.value.IsMap()) {
        const std::vector<yaml_entry> fields = map_entries(a, &alias_keys);
        if (const yaml_entry* st = find_entry(fields, "strategy")) {
          const std::string v = string_value(*st);
          if (v == "cost") alias.strategy = policies::route_strategy::cost;
          else if (v != "ordered") fail(st->line(), st->path, "expected ordered or cost, got '" + v + "'");
        }
        const yaml_entry* ts = find_entry(fields, "targets");
        if (!ts) fail(a.key_line, a.path + ".targets", "missing required key");
        items = ts->value.IsSequence() ? list_items(*ts) : std::vector<yaml_entry>{*ts};
        if (items.empty()) fail(ts->key_line, ts->path, "must list at least one target");
      } else if (a.value.IsSequence()) {
        items = list_items(a);
        if (items.empty()) fail(a.key_line, a.path, "must list at least one target");
      } else {
        items.push_back(a);  // a single target name
      }
      for (const yaml_entry& item : items) {
        const std::string target = non_empty_string(item);
        if (!cfg.find_target(target)) {
          fail(a.key_line, a.path,
               "unknown target '" + target + "'" + did_you_mean(target, target_names));
        }
        if (std::find(alias.targets.begin(), alias.targets.end(), target) != alias.targets.end()) {
          fail(a.key_line, a.path, "target '" + target + "' is listed twice");
        }
        alias.targets.push_back(target);
      }
      const bool any_enabled = std::any_of(alias.targets.begin(), alias.targets.end(),
                                           [&](const std::string& n) {
                                             return cfg.find_target(n)->enabled;
                                           });
      if (!any_enabled) {
        warnings_.push_back("model '" + alias.name + "' has no enabled target; requests for it " +
                            "will fail (" + where(a.key_line, a.path) + ")");
      }
      if (alias.name == "auto-cheap") alias.ignore_tier = true;
      if (alias.name == "auto-private") alias.private_only = true;
      cfg.models.push_back(std::move(alias));
    }
    // Built-in cost-aware aliases over every target, unless the config defines them.
    for (const char* name : {"auto", "auto-cheap", "auto-private"}) {
      if (std::any_of(cfg.models.begin(), cfg.models.end(), [&](const model_alias& m) { return m.name == name; }))
        continue;
      model_alias alias;
      alias.name = name;
      alias.builtin = true;
      alias.strategy = policies::route_strategy::cost;
      alias.ignore_tier = alias.name == "auto-cheap";
      alias.private_only = alias.name == "auto-private";
      for (const auto& [tname, t] : cfg.targets) alias.targets.push_back(tname);
      cfg.builtin_models.push_back(std::move(alias));
    }
  }

  // ---- routing (docs/config.md#routing) -------------------------------------------------------

  std::string resolve_relative(const std::string& p) const {
    namespace fs = std::filesystem;
    if (p.empty() || fs::path(p).is_absolute()) return p;
    const fs::path dir = fs::path(file()).parent_path();
    std::error_code ec;
    if (!dir.empty() && fs::exists(dir / p, ec)) return (dir / p).string();
    return p;
  }

  double share(const yaml_entry& e) const {
    const std::string s = expand(raw_scalar(e, "a number between 0 and 1"), e.line(), e.path);
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || !(v >= 0 && v <= 1))
      fail(e.line(), e.path, "expected a number between 0 and 1, got '" + s + "'");
    return v;
  }

  std::vector<std::string> string_list(const yaml_entry& e) {
    std::vector<std::string> out;
    if (e.value.IsSequence()) {
      for (const yaml_entry& i : list_items(e)) out.push_back(non_empty_string(i));
    } else {
      out.push_back(non_empty_string(e));
    }
    return out;
  }

  policies::privacy_action action(const yaml_entry& e) const {
    const std::string v = string_value(e);
    if (v == "local") return policies::privacy_action::local;
    if (v == "redact") return policies::privacy_action::redact;
    if (v == "block") return policies::privacy_action::block;
    fail(e.line(), e.path, "expected local, redact or block, got '" + v + "'");
  }

  static bool type_name_ok(const std::string& t) {
    if (t.empty()) return false;
    for (char c : t)
      if (!(std::isupper(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_'))
        return false;
    return true;
  }

  void parse_routing(const yaml_entry* section, config& cfg) {
    routing_config& r = cfg.routing;
    key_list known_types = {"CREDIT_CARD", "IBAN_CODE", "US_SSN", "EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS", "SECRET"};
    std::vector<policies::custom_pattern> patterns;
    std::vector<policies::custom_keywords> keywords;
    int detectors_line = 1;
    std::string detectors_path = "routing.privacy";
    if (section) {
      const std::vector<yaml_entry> top = map_entries(*section, &routing_keys);
      if (const yaml_entry* c = find_entry(top, "complexity")) {
        for (const yaml_entry& e : map_entries(*c, &complexity_keys)) {
          if (e.name == "model_file") r.model_file = resolve_relative(non_empty_string(e));
          if (e.name == "calibration_file") r.calibration_file = resolve_relative(non_empty_string(e));
          if (e.name == "strong_share") r.strong_share = share(e);
          if (e.name == "adaptive") r.adaptive = boolean(e);
          if (e.name == "adaptive_window") r.adaptive_window = static_cast<int>(integer(e, 10, 1'000'000));
          if (e.name == "adaptive_min_samples") r.adaptive_min_samples = static_cast<int>(integer(e, 1, 1'000'000));
        }
        if (r.adaptive_min_samples > r.adaptive_window)
          fail(c->key_line, c->path + ".adaptive_min_samples", "must not exceed adaptive_window");
      }
      if (const yaml_entry* t = find_entry(top, "tiers")) {
        for (const yaml_entry& e : map_entries(*t, &tiers_keys)) {
          if (e.name == "weak") r.policy.weak_tier = static_cast<int>(integer(e, 1, 3));
          if (e.name == "strong") r.policy.strong_tier = static_cast<int>(integer(e, 1, 3));
        }
      }
      if (const yaml_entry* p = find_entry(top, "privacy")) {
        detectors_line = p->key_line;
        detectors_path = p->path;
        const std::vector<yaml_entry> fields = map_entries(*p, &privacy_keys);
        if (const yaml_entry* e = find_entry(fields, "patterns")) {
          for (const yaml_entry& item : list_items(*e)) {
            const std::vector<yaml_entry> pf = map_entries(item, &pattern_keys);
            const yaml_entry* ty = find_entry(pf, "type");
            const yaml_entry* re = find_entry(pf, "regex");
            if (!ty || !re) fail(item.key_line, item.path, "needs 'type' and 'regex'");
            std::string type = non_empty_string(*ty);
            if (!type_name_ok(type)) fail(ty->line(), ty->path, "type names use A-Z, 0-9 and '_' (got '" + type + "')");
            std::string err;
            if (!policies::custom_detectors::build({{type, string_value(*re)}}, {}, &err))
              fail(re->line(), re->path, err);
            patterns.push_back({type, string_value(*re)});
            known_types.push_back(type);
          }
        }
        if (const yaml_entry* e = find_entry(fields, "keywords")) {
          for (const yaml_entry& item : list_items(*e)) {
            const std::vector<yaml_entry> kf = map_entries(item, &keyword_keys);
            const yaml_entry* ty = find_entry(kf, "type");
            const yaml_entry* ws = find_entry(kf, "words");
            if (!ty || !ws) fail(item.key_line, item.path, "needs 'type' and 'words'");
            policies::custom_keywords k;
            k.type = non_empty_string(*ty);
            if (!type_name_ok(k.type)) fail(ty->line(), ty->path, "type names use A-Z, 0-9 and '_' (got '" + k.type + "')");
            k.words = string_list(*ws);
            if (const yaml_entry* cs = find_entry(kf, "case_sensitive")) k.case_sensitive = boolean(*cs);
            keywords.push_back(std::move(k));
            known_types.push_back(keywords.back().type);
          }
        }
        if (const yaml_entry* e = find_entry(fields, "default_action")) r.policy.default_action = action(*e);
        if (const yaml_entry* e = find_entry(fields, "actions")) {
          for (const yaml_entry& a : map_entries(*e, nullptr)) {
            if (std::find(known_types.begin(), known_types.end(), a.name) == known_types.end())
              fail(a.key_line, a.path, "unknown data type '" + a.name + "'" + did_you_mean(a.name, known_types));
            r.policy.entity_actions[a.name] = action(a);
          }
        }
        if (const yaml_entry* e = find_entry(fields, "sticky_conversations")) r.sticky_conversations = boolean(*e);
        if (const yaml_entry* e = find_entry(fields, "conversation_ttl_s"))
          r.conversation_ttl_s = static_cast<int>(integer(*e, 1, 365LL * 86400));
        if (const yaml_entry* e = find_entry(fields, "max_conversations"))
          r.max_conversations = static_cast<std::size_t>(integer(*e, 1, 100'000'000));
      }
      if (const yaml_entry* rules = find_entry(top, "rules")) {
        key_list target_names, model_names;
        for (const auto& [name, t] : cfg.targets) target_names.push_back(name);
        for (const auto& m : cfg.models) model_names.push_back(m.name);
        for (const yaml_entry& item : list_items(*rules)) r.policy.rules.push_back(parse_rule(item, cfg, target_names, known_types));
      }
    }
    try {
      r.scorer = load_complexity_scorer(r.model_file, r.calibration_file, r.strong_share);
    } catch (const std::exception& e) {
      fail(section ? section->key_line : 1, "routing.complexity", e.what());
    }
    if (!patterns.empty() || !keywords.empty()) {
      std::string err;
      auto d = policies::custom_detectors::build(std::move(patterns), std::move(keywords), &err);
      if (!d) fail(detectors_line, detectors_path, err);
      r.detectors = std::shared_ptr<const policies::custom_detectors>(std::move(d));
    }
  }

  policies::rule parse_rule(const yaml_entry& item, const config& cfg, const key_list& target_names,
                            const key_list& known_types) {
    const std::vector<yaml_entry> fields = map_entries(item, &rule_keys);
    policies::rule rule;
    const yaml_entry* name = find_entry(fields, "name");
    if (!name) fail(item.key_line, item.path + ".name", "missing required key");
    rule.name = non_empty_string(*name);
    for (const auto& other : cfg.routing.policy.rules)
      if (other.name == rule.name) fail(name->line(), name->path, "duplicate rule name '" + rule.name + "'");
    if (const yaml_entry* w = find_entry(fields, "when")) {
      for (const yaml_entry& c : map_entries(*w, &when_keys)) {
        if (c.name == "privacy") {
          const std::string v = string_value(c);
          if (v != "sensitive" && v != "none") fail(c.line(), c.path, "expected sensitive or none, got '" + v + "'");
          rule.private_data = v == "sensitive";
        } else if (c.name == "entities") {
          rule.entities = string_list(c);
          for (const auto& t : rule.entities)
            if (std::find(known_types.begin(), known_types.end(), t) == known_types.end())
              fail(c.line(), c.path, "unknown data type '" + t + "'" + did_you_mean(t, known_types));
        } else if (c.name == "tier") {
          const std::string v = string_value(c);
          if (v != "strong" && v != "weak") fail(c.line(), c.path, "expected strong or weak, got '" + v + "'");
          rule.strong = v == "strong";
        } else if (c.name == "budget") {
          for (const auto& v : string_list(c)) {
            if (v == "ok") rule.budget.push_back(policies::budget_state::ok);
            else if (v == "soft_exceeded") rule.budget.push_back(policies::budget_state::soft_exceeded);
            else if (v == "exhausted") rule.budget.push_back(policies::budget_state::exhausted);
            else fail(c.line(), c.path, "expected ok, soft_exceeded or exhausted, got '" + v + "'");
          }
        } else if (c.name == "key") {
          rule.keys = string_list(c);
        } else if (c.name == "team") {
          rule.teams = string_list(c);
        } else if (c.name == "model") {
          rule.models = string_list(c);
        } else if (c.name == "header") {
          for (const yaml_entry& h : map_entries(c, nullptr)) {
            std::string n = h.name;
            for (auto& ch : n) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            rule.headers.emplace_back(n, string_value(h));
          }
        }
      }
    }
    const yaml_entry* route = find_entry(fields, "route");
    const yaml_entry* act = find_entry(fields, "action");
    if ((route != nullptr) == (act != nullptr))
      fail(item.key_line, item.path, "rule '" + rule.name + "' needs exactly one of 'route' or 'action'");
    if (route) {
      rule.action = policies::rule::kind::route;
      rule.route = string_list(*route);
      for (const auto& t : rule.route)
        if (!cfg.find_target(t)) fail(route->line(), route->path, "unknown target '" + t + "'" + did_you_mean(t, target_names));
    } else {
      const std::string v = string_value(*act);
      if (v == "block") rule.action = policies::rule::kind::block;
      else if (v == "redact") rule.action = policies::rule::kind::redact;
      else fail(act->line(), act->path, "expected block or redact (or use 'route:'), got '" + v + "'");
    }
    if (const yaml_entry* m = find_entry(fields, "message")) rule.message = string_value(*m);
    return rule;
  }

  std::vector<std::string> warnings_;
  std::vector<provider_def> providers_;
  std::vector<yaml_entry> self_hosted_entries_;  // targets.*.self_hosted, in file order
};

}  // namespace

const model_alias* config::find_alias(std::string_view model) const {
  const model_alias* wildcard = nullptr;
  for (const model_alias& a : models) {
    if (a.name == model) return &a;
    if (a.name == "*") wildcard = &a;
  }
  for (const model_alias& a : builtin_models)
    if (a.name == model) return &a;
  return wildcard;
}

const providers::target_spec* config::find_target(std::string_view name) const {
  const auto it = targets.find(std::string(name));
  return it == targets.end() ? nullptr : &it->second;
}

load_result load_config_text(const std::string& text, const std::string& file_name) {
  return parser(file_name).parse(text);
}

load_result load_config_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    throw std::runtime_error("cannot read config file '" + path + "': " + std::strerror(errno));
  }
  std::string text;
  char buf[64 * 1024];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (failed) {
    throw std::runtime_error("cannot read config file '" + path + "': " + std::strerror(err));
  }
  return load_config_text(text, path);
}

}  // namespace gw::gateway
