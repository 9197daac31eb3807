#include "gateway/metrics.h"

#include <atomic>
#include <charconv>

namespace gw::gateway {

namespace {

constexpr std::array<double, 14> latency_buckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                  1,     2.5,  5,     10,   30,  60,  120};
constexpr std::array<double, 12> overhead_buckets{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                   0.005,   0.01,   0.025,   0.05,   0.1,   0.25};

template <std::size_t N>
struct histogram {
  std::array<std::uint64_t, N + 1> counts{};  // last = +Inf
  double sum = 0;
  std::uint64_t count = 0;
  void observe(const std::array<double, N>& bounds, double v) {
    std::size_t i = 0;
    while (i < N && v > bounds[i]) ++i;
    ++counts[i];
    sum += v;
    ++count;
  }
  void merge(const histogram& o) {
    for (std::size_t i = 0; i <= N; ++i) counts[i] += o.counts[i];
    sum += o.sum;
    count += o.count;
  }
};

// Label values are escaped per the exposition format.
std::string escape(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string key(std::initializer_list<std::string_view> parts) {
  std::string k;
  for (auto p : parts) {
    k.append(p);
    k.push_back('\x1f');
  }
  return k;
}

std::vector<std::string> split_key(const std::string& k) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : k) {
    if (c == '\x1f') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  return parts;
}

// Shortest representation that round-trips ("0.1", not "0.10000000000000001").
std::string fmt(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

template <std::size_t N>
void render_histogram(std::string& out, std::string_view name, const std::string& labels,
                      const std::array<double, N>& bounds, const histogram<N>& h) {
  std::uint64_t cum = 0;
  std::string sep = labels.empty() ? "" : ",";
  for (std::size_t i = 0; i < N; ++i) {
    cum += h.counts[i];
    out += std::string(name) + "_bucket{" + labels + sep + "le=\"" + fmt(bounds[i]) + "\"} " +
           std::to_string(cum) + "\n";
  }
  cum += h.counts[N];
  out += std::string(name) + "_bucket{" + labels + sep + "le=\"+Inf\"} " + std::to_string(cum) + "\n";
  out += std::string(name) + "_sum{" + labels + "} " + fmt(h.sum) + "\n";
  out += std::string(name) + "_count{" + labels + "} " + std::to_string(h.count) + "\n";
}

}  // namespace

struct metrics::shard {
  std::mutex mu;
  std::unordered_map<std::string, std::uint64_t> requests;           // endpoint,route,target,status
  std::unordered_map<std::string, histogram<14>> latency;            // endpoint,route,target
  std::unordered_map<std::string, histogram<14>> ttft;               // route,target
  std::unordered_map<std::string, histogram<12>> overhead;           // endpoint
  std::unordered_map<std::string, std::uint64_t> tokens;             // target,kind
  std::unordered_map<std::string, std::uint64_t> estimated;          // target
  std::unordered_map<std::string, std::uint64_t> upstream_errors;    // target,reason
  std::unordered_map<std::string, std::uint64_t> retries;            // route,target
  std::unordered_map<std::string, std::uint64_t> fallbacks;          // route
};

struct metrics::atomics {
  std::atomic<std::int64_t> active_requests{0};
  std::atomic<std::int64_t> active_connections{0};
  std::atomic<std::uint64_t> connections_total{0};
  std::atomic<std::uint64_t> reloads_ok{0};
  std::atomic<std::uint64_t> reloads_failed{0};
};

metrics::metrics(int shards) : atomics_(std::make_unique<atomics>()) {
  for (int i = 0; i < std::max(1, shards); ++i) shards_.push_back(std::make_unique<shard>());
}
metrics::~metrics() = default;

void metrics::record_request(int shard_index, const request_sample& s) {
  auto& sh = *shards_[static_cast<std::size_t>(shard_index) % shards_.size()];
  std::string status = std::to_string(s.status);
  std::lock_guard lock(sh.mu);
  ++sh.requests[key({s.endpoint, s.route, s.target, status})];
  sh.latency[key({s.endpoint, s.route, s.target})].observe(latency_buckets, s.latency_s);
  if (s.ttft_s >= 0) sh.ttft[key({s.route, s.target})].observe(latency_buckets, s.ttft_s);
  if (s.overhead_s >= 0) sh.overhead[key({s.endpoint})].observe(overhead_buckets, s.overhead_s);
  if (!s.target.empty()) {
    if (s.prompt_tokens) sh.tokens[key({s.target, "prompt"})] += static_cast<std::uint64_t>(s.prompt_tokens);
    if (s.completion_tokens)
      sh.tokens[key({s.target, "completion"})] += static_cast<std::uint64_t>(s.completion_tokens);
    if (s.cached_prompt_tokens)
      sh.tokens[key({s.target, "cached_prompt"})] += static_cast<std::uint64_t>(s.cached_prompt_tokens);
    if (s.tokens_estimated) ++sh.estimated[key({s.target})];
  }
  if (s.retries) sh.retries[key({s.route, s.target})] += static_cast<std::uint64_t>(s.retries);
  if (s.fallbacks) sh.fallbacks[key({s.route})] += static_cast<std::uint64_t>(s.fallbacks);
}

void metrics::record_upstream_error(int shard_index, std::string_view target, std::string_view reason) {
  auto& sh = *shards_[static_cast<std::size_t>(shard_index) % shards_.size()];
  std::lock_guard lock(sh.mu);
  ++sh.upstream_errors[key({target, reason})];
}

void metrics::record_reload(bool ok) { (ok ? atomics_->reloads_ok : atomics_->reloads_failed)++; }
void metrics::connection_opened() {
  atomics_->active_connections++;
  atomics_->connections_total++;
}
void metrics::connection_closed() { atomics_->active_connections--; }
void metrics::request_started() { atomics_->active_requests++; }
void metrics::request_finished() { atomics_->active_requests--; }
std::int64_t metrics::active_requests() const { return atomics_->active_requests.load(); }
std::int64_t metrics::active_connections() const { return atomics_->active_connections.load(); }

std::string metrics::render(const std::vector<target_gauge>& targets) const {
  std::map<std::string, std::uint64_t> requests, tokens, estimated, upstream_errors, retries, fallbacks;
  std::map<std::string, histogram<14>> latency, ttft;
  std::map<std::string, histogram<12>> overhead;
  for (const auto& sh : shards_) {
    std::lock_guard lock(sh->mu);
    for (const auto& [k, v] : sh->requests) requests[k] += v;
    for (const auto& [k, v] : sh->tokens) tokens[k] += v;
    for (const auto& [k, v] : sh->estimated) estimated[k] += v;
    for (const auto& [k, v] : sh->upstream_errors) upstream_errors[k] += v;
    for (const auto& [k, v] : sh->retries) retries[k] += v;
    for (const auto& [k, v] : sh->fallbacks) fallbacks[k] += v;
    for (const auto& [k, v] : sh->latency) latency[k].merge(v);
    for (const auto& [k, v] : sh->ttft) ttft[k].merge(v);
    for (const auto& [k, v] : sh->overhead) overhead[k].merge(v);
  }
  auto labels = [](const std::string& k, std::initializer_list<const char*> names) {
    auto parts = split_key(k);
    std::string out;
    std::size_t i = 0;
    for (const char* n : names) {
      if (i) out += ",";
      out += std::string(n) + "=\"" + escape(i < parts.size() ? parts[i] : "") + "\"";
      ++i;
    }
    return out;
  };
  std::string out;
  out.reserve(8192);
  out += "# HELP tollgate_requests_total Requests answered, by endpoint, route, target and HTTP status.\n";
  out += "# TYPE tollgate_requests_total counter\n";
  for (const auto& [k, v] : requests)
    out += "tollgate_requests_total{" + labels(k, {"endpoint", "route", "target", "status"}) + "} " +
           std::to_string(v) + "\n";
  out += "# HELP tollgate_request_duration_seconds Time from request received to last byte sent.\n";
  out += "# TYPE tollgate_request_duration_seconds histogram\n";
  for (const auto& [k, h] : latency)
    render_histogram(out, "tollgate_request_duration_seconds", labels(k, {"endpoint", "route", "target"}),
                     latency_buckets, h);
  out += "# HELP tollgate_time_to_first_token_seconds Time from request received to the first streamed byte sent.\n";
  out += "# TYPE tollgate_time_to_first_token_seconds histogram\n";
  for (const auto& [k, h] : ttft)
    render_histogram(out, "tollgate_time_to_first_token_seconds", labels(k, {"route", "target"}),
                     latency_buckets, h);
  out += "# HELP tollgate_gateway_overhead_seconds Time spent in tollgate itself, upstream time excluded.\n";
  out += "# TYPE tollgate_gateway_overhead_seconds histogram\n";
  for (const auto& [k, h] : overhead)
    render_histogram(out, "tollgate_gateway_overhead_seconds", labels(k, {"endpoint"}), overhead_buckets, h);
  out += "# HELP tollgate_tokens_total Tokens by target and kind (prompt, completion, cached_prompt).\n";
  out += "# TYPE tollgate_tokens_total counter\n";
  for (const auto& [k, v] : tokens)
    out += "tollgate_tokens_total{" + labels(k, {"target", "kind"}) + "} " + std::to_string(v) + "\n";
  out += "# HELP tollgate_estimated_usage_total Requests whose token counts were estimated (no upstream usage).\n";
  out += "# TYPE tollgate_estimated_usage_total counter\n";
  for (const auto& [k, v] : estimated)
    out += "tollgate_estimated_usage_total{" + labels(k, {"target"}) + "} " + std::to_string(v) + "\n";
  out += "# HELP tollgate_upstream_errors_total Failed upstream attempts by target and reason.\n";
  out += "# TYPE tollgate_upstream_errors_total counter\n";
  for (const auto& [k, v] : upstream_errors)
    out += "tollgate_upstream_errors_total{" + labels(k, {"target", "reason"}) + "} " + std::to_string(v) + "\n";
  out += "# HELP tollgate_upstream_retries_total Retries of the same target.\n";
  out += "# TYPE tollgate_upstream_retries_total counter\n";
  for (const auto& [k, v] : retries)
    out += "tollgate_upstream_retries_total{" + labels(k, {"route", "target"}) + "} " + std::to_string(v) + "\n";
  out += "# HELP tollgate_fallbacks_total Moves to a later target of the route.\n";
  out += "# TYPE tollgate_fallbacks_total counter\n";
  for (const auto& [k, v] : fallbacks)
    out += "tollgate_fallbacks_total{" + labels(k, {"route"}) + "} " + std::to_string(v) + "\n";
  out += "# HELP tollgate_active_requests Requests in flight.\n# TYPE tollgate_active_requests gauge\n";
  out += "tollgate_active_requests " + std::to_string(atomics_->active_requests.load()) + "\n";
  out += "# HELP tollgate_active_connections Open client connections.\n# TYPE tollgate_active_connections gauge\n";
  out += "tollgate_active_connections " + std::to_string(atomics_->active_connections.load()) + "\n";
  out += "# HELP tollgate_connections_total Client connections accepted.\n# TYPE tollgate_connections_total counter\n";
  out += "tollgate_connections_total " + std::to_string(atomics_->connections_total.load()) + "\n";
  out += "# HELP tollgate_config_reloads_total Configuration reloads by result.\n# TYPE tollgate_config_reloads_total counter\n";
  out += "tollgate_config_reloads_total{result=\"ok\"} " + std::to_string(atomics_->reloads_ok.load()) + "\n";
  out += "tollgate_config_reloads_total{result=\"failed\"} " + std::to_string(atomics_->reloads_failed.load()) + "\n";
  out += "# HELP tollgate_target_up 1 when the target is enabled and its circuit breaker is closed.\n# TYPE tollgate_target_up gauge\n";
  for (const auto& t : targets)
    out += "tollgate_target_up{target=\"" + escape(t.name) + "\"} " + ((t.enabled && !t.circuit_open) ? "1" : "0") + "\n";
  out += "# HELP tollgate_target_circuit_open 1 while the target's circuit breaker is open.\n# TYPE tollgate_target_circuit_open gauge\n";
  for (const auto& t : targets)
    out += "tollgate_target_circuit_open{target=\"" + escape(t.name) + "\"} " + (t.circuit_open ? "1" : "0") + "\n";
  out += "# HELP tollgate_target_in_flight Upstream requests in flight per target.\n# TYPE tollgate_target_in_flight gauge\n";
  for (const auto& t : targets)
    out += "tollgate_target_in_flight{target=\"" + escape(t.name) + "\"} " + std::to_string(t.in_flight) + "\n";
  out += "# HELP tollgate_target_circuit_trips_total Times the target's circuit breaker opened.\n# TYPE tollgate_target_circuit_trips_total counter\n";
  for (const auto& t : targets)
    out += "tollgate_target_circuit_trips_total{target=\"" + escape(t.name) + "\"} " + std::to_string(t.trips) + "\n";
  auto engine_gauge = [&](const char* name, const char* help, auto field) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n";
    for (const auto& t : targets)
      if (t.local_engine) out += std::string(name) + "{target=\"" + escape(t.name) + "\"} " + std::to_string(field(t)) + "\n";
  };
  engine_gauge("tollgate_engine_running", "Requests the local engine is prefilling or generating.",
               [](const target_gauge& t) { return t.engine_running; });
  engine_gauge("tollgate_engine_queued", "Requests waiting for the local engine.",
               [](const target_gauge& t) { return t.engine_queued; });
  engine_gauge("tollgate_engine_kv_pages_free", "KV-cache pages a new request can use (free + cached prefixes).",
               [](const target_gauge& t) { return t.kv_pages_free; });
  engine_gauge("tollgate_engine_kv_pages_total", "KV-cache pages of the local engine.",
               [](const target_gauge& t) { return t.kv_pages_total; });
  return out;
}

}  // namespace gw::gateway
