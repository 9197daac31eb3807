#pragma once
// A small blocking HTTP/1.1 client for integration tests (Beast stays in the .cpp).
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace gw::test {

struct http_reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  bool ok() const { return status >= 200 && status < 300; }
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct request_options {
  std::string method = "POST";
  std::map<std::string, std::string> headers;
  std::chrono::milliseconds timeout{10'000};
};

// One TCP connection to 127.0.0.1:port; requests reuse it (keep-alive).
class test_connection {
 public:
  explicit test_connection(std::uint16_t port);
  ~test_connection();
  // Sends a request and reads the whole response (chunked bodies are de-chunked).
  http_reply request(const std::string& target, const std::string& body,
                     const request_options& opts = {});
  // Sends raw bytes as they are (for malformed requests).
  void send_raw(const std::string& bytes);
  // Reads one whole response after send_raw.
  http_reply read_reply(std::chrono::milliseconds timeout = std::chrono::milliseconds(10'000));
  // Sends a request and reads only the response header and `min_bytes` of body, then returns;
  // the connection stays open so the test can close it mid-response.
  http_reply request_partial(const std::string& target, const std::string& body,
                             std::size_t min_bytes, const request_options& opts = {});
  void close();  // abrupt close (no more reads)
  bool is_open() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// One request on a fresh connection.
http_reply http_request(std::uint16_t port, const std::string& target, const std::string& body,
                        const request_options& opts = {});

// The `data:` payloads of an SSE body, in order (comments and blank lines skipped).
std::vector<std::string> sse_data(const std::string& body);

}  // namespace gw::test
