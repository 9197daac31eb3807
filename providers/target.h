#pragma once
// What providers/ needs to know about one upstream target. Built by gateway/config.cpp from YAML;
// immutable once built. Pure data: no curl, no Asio.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gw::providers {

using header_list = std::vector<std::pair<std::string, std::string>>;

struct timeouts {
  std::chrono::milliseconds connect{5'000};       // TCP + TLS handshake
  std::chrono::milliseconds first_byte{60'000};   // request sent -> first response byte
  std::chrono::milliseconds total{600'000};       // whole transfer
  std::chrono::milliseconds stream_idle{60'000};  // max gap between two body bytes
};

struct retry_policy {
  int max_attempts = 3;                        // per target, first try included
  std::chrono::milliseconds base_delay{200};   // backoff: base * 2^n, full jitter
  std::chrono::milliseconds max_delay{5'000};  // cap for one backoff and for honoured retry-after
};

struct breaker_policy {
  int failure_threshold = 5;                 // consecutive failed requests that open the breaker
  std::chrono::milliseconds cooldown{30'000};  // how long an open breaker rejects traffic
};

// Integer prices: pico-dollars (1e-12 USD) per token. "$0.15 per 1M tokens" = 150'000 p$/token.
struct token_prices {
  std::optional<std::int64_t> input;
  std::optional<std::int64_t> output;
  std::optional<std::int64_t> cached_input;
};

// A model served in-process by the local engine (`kind: local`).
struct local_model_spec {
  std::string model_path;          // GGUF file
  int context_size = 0;            // 0: the model's (capped at 4096)
  std::int64_t kv_budget_bytes = 0;  // 0: enough for 4 full contexts
  int threads = 0;                 // compute threads; 0: the number of cores
  int max_batch_tokens = 512;      // tokens per scheduler step
  int max_queue = 64;              // requests waiting; beyond: 503 with retry-after
  std::string chat_template;       // Jinja source overriding the model's template ("" = the model's)
  bool huge_pages = true;          // weights read into huge pages (false: the file is mmap'ed)
};

struct target_spec {
  std::string name;            // config key, e.g. "openai-gpt4o-mini"
  std::string kind = "http";   // "http" (an OpenAI-compatible server) or "local" (the built-in engine)
  local_model_spec local;      // kind == "local"
  std::string provider;        // provider name, e.g. "openai"
  std::string base_url;        // e.g. "https://api.openai.com/v1" (no trailing slash)
  std::string api_key;         // resolved secret; empty = send no Authorization header
  std::string api_key_source;  // e.g. "env OPENAI_API_KEY", for messages; never the key itself
  bool enabled = true;
  std::string disabled_reason;  // e.g. "environment variable OPENAI_API_KEY is not set"
  std::optional<std::string> upstream_model;  // nullopt: forward the client's model name unchanged
  timeouts timeout;
  retry_policy retry;
  breaker_policy breaker;
  int max_concurrency = 0;  // 0 = unlimited
  header_list headers;      // extra headers sent upstream
  token_prices prices;
  // Who may see private data: "local" (this machine), "trusted" (your own servers or a provider
  // under contract), "external" (default). Requests carrying detected personal data or secrets
  // never go to an external target.
  std::string trust = "external";
  // Routing properties (policies/decide.h): quality tier 1..3 (0: not declared; the price table's
  // row or 1), context window in tokens (0: not declared), and capabilities (nullopt: not declared,
  // all assumed; else the listed ones of "tools", "json_mode", "vision").
  int tier = 0;
  std::int64_t context_window = 0;
  std::optional<std::vector<std::string>> capabilities;
};

}  // namespace gw::providers
