// Self-test of tests/support/fake_upstream with a plain synchronous Beast client.
#include "tests/support/fake_upstream.h"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "providers/sse.h"

namespace gw::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using namespace std::chrono_literals;

// One client connection; requests are sent one after another on it (keep-alive).
class client {
 public:
  explicit client(std::uint16_t port) { socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port)); }

  http::response<http::string_body> post(const std::string& target, const json& body, bool keep_alive = true) {
    send(http::verb::post, target, body.dump(), keep_alive);
    return receive();
  }

  http::response<http::string_body> get(const std::string& target) {
    send(http::verb::get, target, "", true);
    return receive();
  }

  void send(http::verb verb, const std::string& target, const std::string& body, bool keep_alive) {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::authorization, "Bearer sk-test");
    req.set("X-Custom-Header", "Value");
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.keep_alive(keep_alive);
    req.prepare_payload();
    http::write(socket_, req);
  }

  http::response<http::string_body> receive() {
    http::response<http::string_body> res;
    http::read(socket_, buffer_, res);
    return res;
  }

  // Everything until the server closes (raw bytes, including chunk framing).
  std::string read_to_eof() {
    std::string out(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    buffer_.consume(buffer_.size());
    beast::error_code ec;
    char buf[4096];
    for (;;) {
      const std::size_t n = socket_.read_some(asio::buffer(buf), ec);
      out.append(buf, n);
      if (ec) break;
    }
    return out;
  }

  tcp::socket& socket() { return socket_; }

 private:
  asio::io_context ioc_;
  tcp::socket socket_{ioc_};
  beast::flat_buffer buffer_;
};

const json chat_request = {{"model", "m1"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};

json stream_request(bool include_usage) {
  json j = chat_request;
  j["stream"] = true;
  if (include_usage) j["stream_options"] = {{"include_usage", true}};
  return j;
}

std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> out;
  providers::sse_parser p;
  p.feed(body, [&](providers::sse_event&& e) { out.push_back(std::move(e.data)); });
  EXPECT_EQ(p.buffered_bytes(), 0u);
  return out;
}

TEST(fake_upstream, base_url_and_port) {
  fake_upstream up;
  EXPECT_GT(up.port(), 0);
  EXPECT_EQ(up.base_url(), "http://127.0.0.1:" + std::to_string(up.port()) + "/v1");
  EXPECT_EQ(up.requests_count(), 0);
  EXPECT_EQ(up.open_connections(), 0);
}

TEST(fake_upstream, ok_chat_reply_and_recorded_request) {
  fake_upstream up;
  client c(up.port());
  auto res = c.post("/v1/chat/completions", chat_request);
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res[http::field::content_type], "application/json");
  const json j = json::parse(res.body());
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "m1");
  EXPECT_TRUE(j["id"].is_string());
  EXPECT_TRUE(j["created"].is_number_integer());
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hello from fake upstream");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 11);
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
  EXPECT_EQ(j["usage"]["total_tokens"], 16);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 3);

  ASSERT_EQ(up.requests_count(), 1);
  const auto reqs = up.requests();
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].target, "/v1/chat/completions");
  EXPECT_EQ(reqs[0].headers.at("authorization"), "Bearer sk-test");
  EXPECT_EQ(reqs[0].headers.at("x-custom-header"), "Value");
  EXPECT_EQ(json::parse(reqs[0].body), chat_request);
}

TEST(fake_upstream, ok_reply_per_endpoint) {
  fake_upstream up;
  client c(up.port());
  auto res = c.post("/v1/completions", {{"model", "c1"}, {"prompt", "x"}});
  json j = json::parse(res.body());
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["model"], "c1");
  EXPECT_EQ(j["choices"][0]["text"], "Hello from fake upstream");
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);

  res = c.post("/v1/embeddings", {{"model", "e1"}, {"input", "x"}});
  j = json::parse(res.body());
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["data"][0]["embedding"], json({0.1, 0.2, 0.3}));
  EXPECT_EQ(j["usage"]["prompt_tokens"], 11);

  res = c.get("/v1/models");
  EXPECT_EQ(res.result_int(), 200);
  j = json::parse(res.body());
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["data"][0]["object"], "model");

  res = c.post("/v1/nowhere", json::object());
  EXPECT_EQ(res.result_int(), 404);
  EXPECT_TRUE(json::parse(res.body()).contains("error"));
}

TEST(fake_upstream, verbatim_body_and_no_usage) {
  fake_upstream up;
  auto verbatim = scripted_reply::of(behaviour::ok);
  verbatim.body = R"({"custom":true})";
  up.push(verbatim);
  up.push(scripted_reply::of(behaviour::no_usage));
  client c(up.port());
  EXPECT_EQ(c.post("/v1/chat/completions", chat_request).body(), R"({"custom":true})");
  const json j = json::parse(c.post("/v1/chat/completions", chat_request).body());
  EXPECT_FALSE(j.contains("usage"));
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hello from fake upstream");
}

TEST(fake_upstream, stream_without_include_usage) {
  fake_upstream up;
  up.set_default(scripted_reply::stream(3));
  client c(up.port());
  auto res = c.post("/v1/chat/completions", stream_request(false));
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res[http::field::content_type], "text/event-stream");
  EXPECT_TRUE(res.chunked());
  const auto data = sse_data(res.body());
  ASSERT_EQ(data.size(), 5u);  // 3 content chunks, finish chunk, [DONE]
  std::string text;
  for (int i = 0; i < 3; ++i) {
    const json j = json::parse(data[i]);
    EXPECT_EQ(j["object"], "chat.completion.chunk");
    EXPECT_EQ(j["model"], "m1");
    EXPECT_FALSE(j.contains("usage"));
    EXPECT_TRUE(j["choices"][0]["finish_reason"].is_null());
    text += j["choices"][0]["delta"]["content"].get<std::string>();
  }
  EXPECT_EQ(text, "tok0 tok1 tok2 ");
  EXPECT_EQ(json::parse(data[0])["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(json::parse(data[3])["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(data[4], "[DONE]");
}

TEST(fake_upstream, stream_with_include_usage) {
  fake_upstream up;
  up.set_default(scripted_reply::stream(4));
  client c(up.port());
  const auto data = sse_data(c.post("/v1/chat/completions", stream_request(true)).body());
  ASSERT_EQ(data.size(), 7u);  // 4 content, finish, usage-only, [DONE]
  for (int i = 0; i < 5; ++i) {
    const json j = json::parse(data[i]);
    ASSERT_TRUE(j.contains("usage"));
    EXPECT_TRUE(j["usage"].is_null());
  }
  const json u = json::parse(data[5]);
  EXPECT_EQ(u["choices"], json::array());
  EXPECT_EQ(u["usage"]["prompt_tokens"], 11);
  EXPECT_EQ(u["usage"]["completion_tokens"], 4);
  EXPECT_EQ(u["usage"]["total_tokens"], 15);
  EXPECT_EQ(data[6], "[DONE]");
}

TEST(fake_upstream, no_usage_stream_ignores_include_usage) {
  fake_upstream up;
  auto r = scripted_reply::of(behaviour::no_usage_stream);
  r.chunks = 2;
  up.push(r);
  client c(up.port());
  const auto data = sse_data(c.post("/v1/chat/completions", stream_request(true)).body());
  ASSERT_EQ(data.size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(json::parse(data[i]).contains("usage"));
  EXPECT_EQ(data[3], "[DONE]");
}

TEST(fake_upstream, completions_stream) {
  fake_upstream up;
  up.push(scripted_reply::stream(2));
  client c(up.port());
  json req = {{"model", "c1"}, {"prompt", "x"}, {"stream", true}, {"stream_options", {{"include_usage", true}}}};
  const auto data = sse_data(c.post("/v1/completions", req).body());
  ASSERT_EQ(data.size(), 5u);
  EXPECT_EQ(json::parse(data[0])["object"], "text_completion");
  EXPECT_EQ(json::parse(data[1])["choices"][0]["text"], "tok1 ");
  EXPECT_EQ(json::parse(data[2])["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(json::parse(data[3])["usage"]["completion_tokens"], 2);
  EXPECT_EQ(data[4], "[DONE]");
}

TEST(fake_upstream, status_with_retry_after) {
  fake_upstream up;
  up.push(scripted_reply::error(429, 2));
  up.push(scripted_reply::error(400, -1, R"({"error":{"message":"bad"}})"));
  client c(up.port());
  auto res = c.post("/v1/chat/completions", chat_request);
  EXPECT_EQ(res.result_int(), 429);
  EXPECT_EQ(res[http::field::retry_after], "2");
  const json j = json::parse(res.body());
  EXPECT_EQ(j["error"]["message"], "fake error");
  EXPECT_EQ(j["error"]["type"], "server_error");
  EXPECT_TRUE(j["error"]["param"].is_null());
  EXPECT_TRUE(j["error"]["code"].is_null());

  res = c.post("/v1/chat/completions", chat_request);
  EXPECT_EQ(res.result_int(), 400);
  EXPECT_EQ(res.body(), R"({"error":{"message":"bad"}})");
  EXPECT_EQ(res.find(http::field::retry_after), res.end());
}

TEST(fake_upstream, push_queue_is_fifo_then_default) {
  fake_upstream up;
  up.push(scripted_reply::error(500));
  up.push(scripted_reply::error(503));
  up.push(scripted_reply::of(behaviour::ok));
  up.set_default(scripted_reply::error(418));
  client c(up.port());
  std::vector<int> statuses;
  for (int i = 0; i < 5; ++i) statuses.push_back(c.post("/v1/chat/completions", chat_request).result_int());
  EXPECT_EQ(statuses, (std::vector<int>{500, 503, 200, 418, 418}));
}

TEST(fake_upstream, keep_alive_three_requests_on_one_connection) {
  fake_upstream up;
  up.push(scripted_reply::of(behaviour::ok));
  up.push(scripted_reply::stream(2));
  up.push(scripted_reply::error(500));
  {
    client c(up.port());
    EXPECT_EQ(c.post("/v1/chat/completions", chat_request).result_int(), 200);
    EXPECT_EQ(sse_data(c.post("/v1/chat/completions", stream_request(true)).body()).size(), 5u);
    auto last = c.post("/v1/chat/completions", chat_request);
    EXPECT_EQ(last.result_int(), 500);
    EXPECT_TRUE(last.keep_alive());
    EXPECT_EQ(up.requests_count(), 3);
    EXPECT_EQ(up.open_connections(), 1);
  }
  EXPECT_TRUE(wait_until([&] { return up.open_connections() == 0; }));
  EXPECT_EQ(up.cancelled_streams(), 0);
}

TEST(fake_upstream, connection_close_request_is_honoured) {
  fake_upstream up;
  client c(up.port());
  auto res = c.post("/v1/chat/completions", chat_request, /*keep_alive=*/false);
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_FALSE(res.keep_alive());
  EXPECT_EQ(c.read_to_eof(), "");
  EXPECT_TRUE(wait_until([&] { return up.open_connections() == 0; }));
}

TEST(fake_upstream, drop_mid_stream_closes_without_terminator) {
  fake_upstream up;
  up.push(scripted_reply::of(behaviour::drop_mid_stream));
  client c(up.port());
  c.send(http::verb::post, "/v1/chat/completions", stream_request(true).dump(), true);
  const std::string raw = c.read_to_eof();
  EXPECT_NE(raw.find("text/event-stream"), std::string::npos);
  EXPECT_NE(raw.find("tok0 "), std::string::npos);
  EXPECT_NE(raw.find("tok1 "), std::string::npos);
  EXPECT_EQ(raw.find("tok2 "), std::string::npos);
  EXPECT_EQ(raw.find("[DONE]"), std::string::npos);
  EXPECT_EQ(raw.find("\r\n0\r\n\r\n"), std::string::npos);
  EXPECT_TRUE(wait_until([&] { return up.open_connections() == 0; }));
}

TEST(fake_upstream, client_leaving_mid_stream_is_counted) {
  fake_upstream up;
  up.push(scripted_reply::stream(50, 20ms));
  {
    client c(up.port());
    c.send(http::verb::post, "/v1/chat/completions", stream_request(false).dump(), true);
    char buf[256];
    c.socket().read_some(asio::buffer(buf));  // the stream has started
  }  // client closes
  EXPECT_TRUE(wait_until([&] { return up.cancelled_streams() == 1; }));
  EXPECT_TRUE(wait_until([&] { return up.open_connections() == 0; }));
  EXPECT_EQ(up.cancelled_streams(), 1);
}

TEST(fake_upstream, chunk_delay_spaces_chunks) {
  fake_upstream up;
  up.push(scripted_reply::stream(4, 30ms));
  client c(up.port());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(sse_data(c.post("/v1/chat/completions", stream_request(false)).body()).size(), 6u);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 4 * 30ms);  // 3 gaps + before the finish chunk
}

TEST(fake_upstream, delay_before_answer) {
  fake_upstream up;
  auto r = scripted_reply::of(behaviour::ok);
  r.delay = 100ms;
  up.push(r);
  client c(up.port());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(c.post("/v1/chat/completions", chat_request).result_int(), 200);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
}

TEST(fake_upstream, hang_then_client_leaves) {
  fake_upstream up;
  up.push(scripted_reply::of(behaviour::hang));
  {
    client c(up.port());
    c.send(http::verb::post, "/v1/chat/completions", chat_request.dump(), true);
    ASSERT_TRUE(wait_until([&] { return up.requests_count() == 1; }));
    EXPECT_EQ(up.open_connections(), 1);
  }
  EXPECT_TRUE(wait_until([&] { return up.open_connections() == 0; }));
  EXPECT_EQ(up.cancelled_streams(), 1);
}

TEST(fake_upstream, destructor_returns_promptly_with_hung_request) {
  auto up = std::make_unique<fake_upstream>();
  up->set_default(scripted_reply::of(behaviour::hang));
  client c(up->port());
  c.send(http::verb::post, "/v1/chat/completions", chat_request.dump(), true);
  client c2(up->port());
  c2.send(http::verb::post, "/v1/chat/completions", stream_request(true).dump(), true);
  ASSERT_TRUE(wait_until([&] { return up->requests_count() == 2; }));

  const auto start = std::chrono::steady_clock::now();
  up.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_EQ(c.read_to_eof(), "");  // the server closed the connection without answering
}

TEST(fake_upstream, destructor_returns_promptly_mid_stream) {
  auto up = std::make_unique<fake_upstream>();
  up->push(scripted_reply::stream(1000, 100ms));
  client c(up->port());
  c.send(http::verb::post, "/v1/chat/completions", stream_request(false).dump(), true);
  char buf[256];
  c.socket().read_some(asio::buffer(buf));
  const auto start = std::chrono::steady_clock::now();
  up.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

TEST(fake_upstream, pipelined_requests_are_answered_in_order) {
  fake_upstream up;
  up.push(scripted_reply::stream(3, 10ms));
  up.push(scripted_reply::of(behaviour::ok));
  client c(up.port());
  // Both requests are on the wire before the first (streamed) reply ends.
  c.send(http::verb::post, "/v1/chat/completions", stream_request(false).dump(), true);
  c.send(http::verb::post, "/v1/chat/completions", chat_request.dump(), true);
  EXPECT_EQ(sse_data(c.receive().body()).size(), 5u);
  EXPECT_EQ(json::parse(c.receive().body())["object"], "chat.completion");
  EXPECT_EQ(up.cancelled_streams(), 0);
}

TEST(fake_upstream, many_connections) {
  fake_upstream up;
  std::vector<std::unique_ptr<client>> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(std::make_unique<client>(up.port()));
  for (auto& c : clients) EXPECT_EQ(c->post("/v1/chat/completions", chat_request).result_int(), 200);
  EXPECT_EQ(up.open_connections(), 20);
  clients.clear();
  EXPECT_TRUE(wait_until([&] { return up.open_connections() == 0; }));
  EXPECT_EQ(up.requests_count(), 20);
}

}  // namespace
}  // namespace gw::test
