#pragma once
// The tollgate HTTP server: Boost.Beast/Asio, one io_context per I/O thread (each with its own
// libcurl multi handle), HTTP/1.1 keep-alive, optional TLS. Beast and Asio stay behind this
// header's pimpl.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gateway/config.h"
#include "ledger/record.h"

namespace gw::ledger {
class ledger;
}

namespace gw::gateway {

struct server_hooks {
  // Called on an I/O thread for every finished request, after the access log. Must be fast and
  // thread-safe. (The ledger plugs in here.)
  std::function<void(const ledger::request_record&)> on_record;
  // Where model requests are recorded (not owned; must outlive the server). Null: no ledger.
  ledger::ledger* ledger = nullptr;
};

class server {
 public:
  explicit server(std::shared_ptr<const config> cfg, server_hooks hooks = {});
  ~server();  // shuts down (grace = 0) if still running
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds every listener and starts the I/O threads. Throws std::runtime_error on bind failure.
  void start();
  // Bound ports, in listener order (useful with port 0).
  std::vector<std::uint16_t> ports() const;

  std::shared_ptr<const config> current_config() const;
  // Re-reads the config file it was loaded from; on success swaps it in for new requests. On
  // failure keeps the running config and returns false with `error` set. Thread-safe.
  bool reload(std::string* error);
  void swap_config(std::shared_ptr<const config> next);

  // Graceful stop: stop accepting, close idle connections, let in-flight requests finish for up
  // to `grace`, then cancel what is left and stop the threads. Idempotent; blocks until stopped.
  void shutdown(std::chrono::milliseconds grace);
  // Serves until SIGTERM/SIGINT (graceful shutdown with the configured grace); SIGHUP reloads.
  void run_until_signal();

  std::int64_t active_requests() const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace gw::gateway
