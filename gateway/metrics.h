#pragma once
// Prometheus metrics. Writers record into per-I/O-thread shards (an uncontended mutex each), so the
// request path never contends; render() merges the shards into the text exposition format.
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace gw::gateway {

struct request_sample {
  std::string_view endpoint;  // "/v1/chat/completions"
  std::string_view route;     // alias / route label ("" for non-model endpoints)
  std::string_view target;    // "" when no target was involved
  int status = 0;
  double latency_s = 0;
  double ttft_s = -1;      // < 0: not a streamed / model response
  double overhead_s = -1;  // < 0: unknown
  std::int64_t prompt_tokens = 0, completion_tokens = 0, cached_prompt_tokens = 0;
  bool tokens_estimated = false;
  int retries = 0;
  int fallbacks = 0;
};

class metrics {
 public:
  explicit metrics(int shards);
  ~metrics();

  void record_request(int shard, const request_sample& s);
  void record_upstream_error(int shard, std::string_view target, std::string_view reason);
  void record_reload(bool ok);
  void connection_opened();
  void connection_closed();
  void request_started();
  void request_finished();
  std::int64_t active_requests() const;
  std::int64_t active_connections() const;

  struct target_gauge {
    std::string name;
    bool enabled = true;
    bool circuit_open = false;
    int in_flight = 0;
    std::uint64_t trips = 0;
    // kind: local targets whose model is loaded: the engine's scheduler state.
    bool local_engine = false;
    int engine_running = 0, engine_queued = 0;
    std::int64_t kv_pages_free = 0, kv_pages_total = 0;
  };
  // Prometheus text format 0.0.4.
  std::string render(const std::vector<target_gauge>& targets) const;

 private:
  struct shard;
  std::vector<std::unique_ptr<shard>> shards_;
  struct atomics;
  std::unique_ptr<atomics> atomics_;
};

}  // namespace gw::gateway
