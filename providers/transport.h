#pragma once
// What the forwarder talks to for one attempt: an HTTP client (http_client, libcurl) for hosted and
// self-hosted servers, or the in-process local engine (gateway/local_backend) for `kind: local`
// targets, which answers the same OpenAI wire format. Every callback runs on the io_context thread
// of the forwarder that started the transfer.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "providers/target.h"

namespace gw::providers {

enum class transfer_status {
  ok,                    // complete response received (any HTTP status)
  connect_failed,        // DNS, refused, unreachable
  tls_failed,            // handshake or certificate verification
  timed_out_connect,
  timed_out_first_byte,  // request sent, no response byte within timeouts.first_byte
  timed_out_total,
  timed_out_idle,        // a gap between body bytes longer than timeouts.stream_idle
  io_error,              // reset, truncated body, protocol error
};
std::string_view to_string(transfer_status s);
// True for failures where nothing reached the upstream application: safe to retry even for
// non-idempotent requests.
bool is_timeout(transfer_status s);

struct transfer_result {
  transfer_status status = transfer_status::ok;
  std::string detail;  // curl's message, for logs (never contains secrets)
};

struct http_request {
  std::string url;
  std::string method = "POST";
  header_list headers;
  std::string body;
  timeouts timeout;
};

// Receives one transfer's events, always on the client's io_context thread.
class transfer_handler {
 public:
  virtual ~transfer_handler() = default;
  // Status line and headers (names lower-cased), once, before the first on_data.
  virtual void on_head(int status, const header_list& headers) = 0;
  // Body bytes. Return false to pause: the bytes are NOT consumed and are delivered again after
  // http_client::resume(). While paused, the idle timeout does not run.
  virtual bool on_data(std::string_view bytes) = 0;
  // Exactly once at the end, unless the transfer was cancel()ed (then never).
  virtual void on_done(const transfer_result& result) = 0;
};

// One way to run transfers. Not thread-safe: one instance per I/O thread.
class transport {
 public:
  using transfer_id = std::uint64_t;
  virtual ~transport() = default;
  // Starts a transfer. Callbacks never run inside start(); the earliest is posted.
  virtual transfer_id start(http_request request, std::shared_ptr<transfer_handler> handler) = 0;
  // Aborts a transfer; no callback of it runs afterwards. Unknown ids are ignored.
  virtual void cancel(transfer_id id) = 0;
  // Continues a transfer paused by on_data returning false.
  virtual void resume(transfer_id id) = 0;
};

}  // namespace gw::providers
