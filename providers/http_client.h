#pragma once
// An asynchronous HTTP client: libcurl's multi interface driven by an Asio io_context
// (CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION), so thousands of upstream transfers share the
// I/O threads with no thread per request. One http_client per io_context thread; it is NOT
// thread-safe: every member function must be called on that io_context's thread, and every callback
// runs there. curl types never leave http_client.cpp.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "providers/target.h"
#include "providers/transport.h"

namespace boost::asio {
class io_context;
}

namespace gw::providers {

class http_client final : public transport {
 public:
  explicit http_client(boost::asio::io_context& io);
  ~http_client();  // cancels every transfer (no callbacks)
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  // Starts a transfer. Callbacks never run inside start(); the earliest is posted.
  transfer_id start(http_request request, std::shared_ptr<transfer_handler> handler) override;
  // Aborts a transfer; no callback of it runs afterwards. Unknown ids are ignored.
  void cancel(transfer_id id) override;
  // Continues a transfer paused by on_data returning false.
  void resume(transfer_id id) override;
  std::size_t active_transfers() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace gw::providers
