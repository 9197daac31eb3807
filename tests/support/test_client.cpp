#include "tests/support/test_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <stdexcept>

namespace gw::test {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct test_connection::impl {
  asio::io_context io;
  beast::tcp_stream stream{io};
  beast::flat_buffer buffer;
  bool open = false;

  http_reply to_reply(http::response<http::string_body>& res) {
    http_reply r;
    r.status = res.result_int();
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = std::string(f.value());
    }
    r.body = std::move(res.body());
    return r;
  }

  http::request<http::string_body> make(const std::string& target, const std::string& body,
                                        const request_options& opts) {
    http::request<http::string_body> req{http::string_to_verb(opts.method), target, 11};
    req.set(http::field::host, "127.0.0.1");
    bool has_ct = false;
    for (const auto& [k, v] : opts.headers) {
      req.set(k, v);
      if (k == "content-type" || k == "Content-Type") has_ct = true;
    }
    if (!body.empty() && !has_ct) req.set(http::field::content_type, "application/json");
    req.body() = body;
    if (opts.method != "GET" || !body.empty()) req.prepare_payload();
    return req;
  }
};

test_connection::test_connection(std::uint16_t port) : impl_(std::make_unique<impl>()) {
  impl_->stream.expires_after(std::chrono::seconds(10));
  impl_->stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  impl_->open = true;
}
test_connection::~test_connection() { close(); }

http_reply test_connection::request(const std::string& target, const std::string& body,
                                    const request_options& opts) {
  auto req = impl_->make(target, body, opts);
  impl_->stream.expires_after(opts.timeout);
  http::write(impl_->stream, req);
  http::response_parser<http::string_body> parser;
  parser.body_limit(256 * 1024 * 1024);
  http::read(impl_->stream, impl_->buffer, parser);
  auto res = parser.release();
  return impl_->to_reply(res);
}

void test_connection::send_raw(const std::string& bytes) {
  impl_->stream.expires_after(std::chrono::seconds(10));
  asio::write(impl_->stream, asio::buffer(bytes));
}

http_reply test_connection::read_reply(std::chrono::milliseconds timeout) {
  impl_->stream.expires_after(timeout);
  http::response_parser<http::string_body> parser;
  parser.body_limit(256 * 1024 * 1024);
  http::read(impl_->stream, impl_->buffer, parser);
  auto res = parser.release();
  return impl_->to_reply(res);
}

http_reply test_connection::request_partial(const std::string& target, const std::string& body,
                                            std::size_t min_bytes, const request_options& opts) {
  auto req = impl_->make(target, body, opts);
  impl_->stream.expires_after(opts.timeout);
  http::write(impl_->stream, req);
  http::response_parser<http::string_body> parser;
  parser.body_limit(256 * 1024 * 1024);
  http::read_header(impl_->stream, impl_->buffer, parser);
  while (parser.get().body().size() < min_bytes && !parser.is_done()) {
    http::read_some(impl_->stream, impl_->buffer, parser);
  }
  auto res = parser.get();  // a copy: the connection may keep reading into the parser
  return impl_->to_reply(res);
}

void test_connection::close() {
  if (!impl_->open) return;
  impl_->open = false;
  beast::error_code ec;
  impl_->stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  impl_->stream.socket().close(ec);
}

bool test_connection::is_open() const { return impl_->open; }

http_reply http_request(std::uint16_t port, const std::string& target, const std::string& body,
                        const request_options& opts) {
  test_connection c(port);
  return c.request(target, body, opts);
}

std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    auto end = body.find('\n', pos);
    if (end == std::string::npos) end = body.size();
    std::string_view line(body.data() + pos, end - pos);
    if (line.starts_with("data: ")) out.emplace_back(line.substr(6));
    else if (line.starts_with("data:")) out.emplace_back(line.substr(5));
    pos = end + 1;
  }
  return out;
}

}  // namespace gw::test
