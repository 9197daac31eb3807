#pragma once
// A fake OpenAI-compatible upstream for integration tests: a real HTTP/1.1 server on 127.0.0.1
// (ephemeral port) with its own io_context on its own thread. Replies are scripted per request.
// Beast stays in the .cpp (pimpl) so tests including this header compile fast.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace gw::test {

enum class behaviour {
  ok,               // non-streaming OpenAI JSON for the endpoint (or `body` verbatim)
  stream,           // SSE stream; usage chunk only if the request asked stream_options.include_usage
  status,           // `status` with `body` (default: an OpenAI error JSON) and optional retry-after
  drop_mid_stream,  // stream headers and 2 chunks, then the connection is closed (no terminator)
  hang,             // read the request, never answer (until the client goes away or the server stops)
  no_usage_stream,  // like stream but never a usage chunk, even when asked for
  no_usage,         // like ok but without the usage field
};

struct scripted_reply {
  behaviour kind = behaviour::ok;
  int status = 200;  // HTTP status of non-streamed replies (ok, no_usage, status)
  std::string body;  // ok/status: sent verbatim when non-empty (content-type application/json)
  int retry_after_s = -1;  // >= 0: adds "retry-after: N" (any behaviour that answers)
  int chunks = 5;          // stream: content chunks "tok0 ", "tok1 ", ... before the finish chunk
  std::chrono::milliseconds chunk_delay{0};  // stream: pause before each chunk after the first
  std::chrono::milliseconds delay{0};        // pause between reading the request and answering

  // Shorthands (designated initializers that skip members trip GCC's -Wmissing-field-initializers).
  static scripted_reply of(behaviour kind) {
    scripted_reply r;
    r.kind = kind;
    return r;
  }
  static scripted_reply stream(int chunks = 5, std::chrono::milliseconds chunk_delay = {}) {
    scripted_reply r = of(behaviour::stream);
    r.chunks = chunks;
    r.chunk_delay = chunk_delay;
    return r;
  }
  // behaviour::status with the default OpenAI error body (or `body` when non-empty).
  static scripted_reply error(int status, int retry_after_s = -1, std::string body = {}) {
    scripted_reply r = of(behaviour::status);
    r.status = status;
    r.retry_after_s = retry_after_s;
    r.body = std::move(body);
    return r;
  }
};

// Thread-safety: every public member may be called from any thread while the server runs.
class fake_upstream {
 public:
  struct seen_request {
    std::string method;
    std::string target;                          // e.g. "/v1/chat/completions"
    std::map<std::string, std::string> headers;  // names lower-cased; repeated names: last wins
    std::string body;
  };

  // Starts listening on 127.0.0.1:0 and serving on a background thread. Throws on failure.
  fake_upstream();
  // Stops promptly even with hung requests or streams in flight: open connections are closed.
  ~fake_upstream();
  fake_upstream(const fake_upstream&) = delete;
  fake_upstream& operator=(const fake_upstream&) = delete;

  std::uint16_t port() const;
  std::string base_url() const;  // "http://127.0.0.1:PORT/v1"

  void push(scripted_reply r);         // FIFO queue, one reply consumed per request
  void set_default(scripted_reply r);  // used when the queue is empty (initially behaviour::ok)

  std::vector<seen_request> requests() const;  // copies, in arrival order
  int requests_count() const;
  int open_connections() const;  // client connections currently open
  // Replies (stream or hang) whose client went away before the reply was complete. A client close
  // is noticed even while the server is idle between chunks.
  int cancelled_streams() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// Polls pred every few milliseconds until it is true or timeout passes; returns its last value.
// For counters that change asynchronously (open_connections after a client disconnects, ...).
bool wait_until(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

}  // namespace gw::test
