#pragma once
// Forwards one OpenAI-style request along a route plan (preferred target, then fallbacks):
// rewrites the model name, asks streams for usage, retries with exponential backoff and full jitter
// on connect errors, timeouts, 429 and 5xx (honouring retry-after) only while nothing has been sent
// to the client, falls back to the next target, keeps circuit breakers and concurrency limits, and
// extracts (or estimates) token usage. One forwarder per I/O thread; not thread-safe; every
// callback runs on that thread.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "providers/target.h"
#include "providers/target_health.h"
#include "providers/usage.h"

namespace boost::asio {
class io_context;
}

namespace gw::providers {

class http_client;
class transport;

// The transport of a `kind: local` target on this forwarder's thread (null: not available).
using local_transport_resolver = std::function<transport*(const target_spec&)>;

struct forward_request {
  std::string endpoint;  // appended to base_url: "/chat/completions", "/completions", "/embeddings"
  std::shared_ptr<const nlohmann::ordered_json> body;  // the client's JSON; only "model" (and
                                                       // stream_options for streams) is changed
  bool stream = false;
  bool client_wants_usage = false;  // client set stream_options.include_usage itself
  header_list headers;              // forwarded unchanged (x-request-id, …)
  std::int64_t estimated_prompt_tokens = -1;  // < 0: estimated lazily if usage is missing
  std::size_t max_response_bytes = 64 * 1024 * 1024;
};

struct route_step {
  const target_spec* spec = nullptr;  // owned by the config the caller keeps alive
  std::shared_ptr<target_health> health;
};

// Why no upstream response could be relayed (errors are values; the gateway maps them to HTTP).
enum class forward_errc {
  no_target_available,  // every target disabled, breaker open or at max concurrency -> 503
  upstream_unreachable,  // connect/TLS/IO errors on every attempt -> 502
  upstream_timeout,      // the last failure was a timeout -> 504
  response_too_large,    // -> 502
  client_gone,           // the client disconnected first
};
struct forward_error {
  forward_errc code;
  std::string message;
  int retry_after_s = -1;  // >= 0: send retry-after
};

struct attempt_record {
  std::string target;
  int http_status = 0;     // 0 when no response
  std::string failure;     // "" on success, else transfer status or "http 503"
  bool retried_after = false;
};

struct forward_outcome {
  std::string target;      // target whose response reached the client (or the last one tried)
  std::string upstream_model;
  int status = 0;          // HTTP status relayed (0 when none)
  usage tokens;
  std::vector<attempt_record> attempts;
  int retries = 0;         // further attempts on the same target
  int fallbacks = 0;       // moves to a later target
  bool committed = false;  // bytes reached the client
  bool client_gone = false;
  bool stream_truncated = false;  // the upstream stream broke after bytes were sent
  std::optional<forward_error> error;
  std::chrono::microseconds upstream_time{0};  // spent waiting for upstreams and backoffs
};

struct commit_info {
  int status = 200;
  header_list headers;  // relayed upstream headers: content-type, retry-after, x-ratelimit-*
  std::string target;
  std::chrono::microseconds upstream_time{0};  // so far
  bool stream = false;  // an SSE stream follows (on_body gets framed events)
};

class forward_sink {
 public:
  virtual ~forward_sink() = default;
  // Once, before any body: the response is committed from here on (no more retries).
  virtual void on_commit(const commit_info& info) = 0;
  // Response bytes: the whole body, or one framed SSE event. Return false when the client buffer
  // is over its bound: the upstream is paused until forward_call::resume().
  virtual bool on_body(std::string_view bytes) = 0;
  // Exactly once, last. Also called (synchronously) from forward_call::cancel().
  virtual void on_complete(forward_outcome&& outcome) = 0;
};

class forward_call {
 public:
  virtual ~forward_call() = default;
  virtual void cancel() = 0;  // client went away: abort upstream work, complete with client_gone
  virtual void resume() = 0;  // the sink drained its buffer
};

class forwarder {
 public:
  forwarder(boost::asio::io_context& io, http_client& client, local_transport_resolver local = {});
  ~forwarder();
  // Starts the request. The sink is held until on_complete. Callbacks never run inside start().
  std::shared_ptr<forward_call> start(forward_request request, std::vector<route_step> plan,
                                      std::shared_ptr<forward_sink> sink);

  // Exposed for tests: the request body sent to `target` for `request`.
  static std::string upstream_body(const forward_request& request, const target_spec& target);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  friend class forward_call_impl;
};

}  // namespace gw::providers
