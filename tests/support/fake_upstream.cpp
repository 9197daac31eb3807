#include "tests/support/fake_upstream.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace gw::test {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

constexpr std::int64_t fake_created = 1'700'000'000;
constexpr const char* fake_content = "Hello from fake upstream";

json fake_usage(std::int64_t completion_tokens) {
  return {{"prompt_tokens", 11},
          {"completion_tokens", completion_tokens},
          {"total_tokens", 11 + completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", 3}}}};
}

json error_body(const std::string& message, const std::string& type) {
  return {{"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}}}};
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

enum class endpoint { chat, completions, embeddings, models, unknown };

endpoint endpoint_of(std::string_view target) {
  const std::string_view path = target.substr(0, target.find('?'));
  if (ends_with(path, "/chat/completions")) return endpoint::chat;
  if (ends_with(path, "/completions")) return endpoint::completions;
  if (ends_with(path, "/embeddings")) return endpoint::embeddings;
  if (ends_with(path, "/models")) return endpoint::models;
  return endpoint::unknown;
}

std::string chunked(std::string_view payload) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", payload.size());
  std::string out = size;
  out.append(payload);
  out.append("\r\n");
  return out;
}

std::string sse(const json& j) { return "data: " + j.dump() + "\n\n"; }

}  // namespace

namespace {

// What the sessions and the public API share. Counters are atomics; the rest is under mu.
struct shared_state {
  mutable std::mutex mu;
  std::deque<scripted_reply> queue;
  scripted_reply default_reply;
  std::vector<fake_upstream::seen_request> seen;
  std::atomic<int> open{0};
  std::atomic<int> cancelled{0};
  std::atomic<int> served{0};

  // Records the request and picks its reply.
  scripted_reply take(fake_upstream::seen_request req) {
    std::lock_guard lock(mu);
    seen.push_back(std::move(req));
    if (queue.empty()) return default_reply;
    scripted_reply r = std::move(queue.front());
    queue.pop_front();
    return r;
  }
};

}  // namespace

struct fake_upstream::impl {
  shared_state state;  // before the io_context: sessions destroyed with it still update it

  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::uint16_t port = 0;
  std::thread thread;

  impl() {
    const tcp::endpoint ep(asio::ip::make_address_v4("127.0.0.1"), 0);
    acceptor.open(ep.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen(asio::socket_base::max_listen_connections);
    port = acceptor.local_endpoint().port();
    do_accept();
    thread = std::thread([this] {
      for (;;) {
        try {
          ioc.run();
          return;
        } catch (const std::exception& e) {
          std::fprintf(stderr, "fake_upstream: handler threw: %s\n", e.what());
        }
      }
    });
  }

  ~impl() {
    // stop() abandons every pending operation; destroying the io_context (after the join) destroys
    // their handlers, which releases the sessions and closes their sockets.
    ioc.stop();
    if (thread.joinable()) thread.join();
  }

  void do_accept();
};

namespace {

// One client connection. Lives through shared_from_this() in its pending handlers; all handlers run
// on the single io thread, so no locking inside.
class session : public std::enable_shared_from_this<session> {
 public:
  session(shared_state& up, tcp::socket socket)
      : up_(up), socket_(std::move(socket)), timer_(socket_.get_executor()) {
    ++up_.open;
  }
  ~session() { --up_.open; }

  void start() {
    beast::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    do_read();
  }

 private:
  struct piece {
    std::string bytes;
    bool delay_before = false;
  };

  void do_read() {
    parser_.emplace();
    parser_->body_limit(64 * 1024 * 1024);
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (closed_) return;
    if (ec) return close();  // end_of_stream (client closed an idle connection) or a bad request
    auto req = parser_->release();
    request_id_ = ++up_.served;

    fake_upstream::seen_request seen;
    seen.method = std::string(req.method_string());
    seen.target = std::string(req.target());
    for (const auto& field : req) {
      std::string name(field.name_string());
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      seen.headers[name] = std::string(field.value());
    }
    seen.body = req.body();
    keep_alive_ = req.keep_alive();
    endpoint_ = endpoint_of(seen.target);

    const json body = json::parse(seen.body, nullptr, /*allow_exceptions=*/false);
    model_ = "fake-model";
    include_usage_ = false;
    if (body.is_object()) {
      if (auto m = body.find("model"); m != body.end() && m->is_string()) model_ = m->get<std::string>();
      if (auto so = body.find("stream_options"); so != body.end() && so->is_object()) {
        auto iu = so->find("include_usage");
        include_usage_ = iu != so->end() && iu->is_boolean() && iu->get<bool>();
      }
    }

    reply_ = up_.take(std::move(seen));
    reply_done_ = false;

    if (reply_.kind == behaviour::hang) return watch();  // never answers
    if (reply_.delay.count() > 0) {
      timer_.expires_after(reply_.delay);
      timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
        if (!ec && !self->closed_) self->respond();
      });
      return;
    }
    respond();
  }

  void respond() {
    switch (reply_.kind) {
      case behaviour::ok:
      case behaviour::no_usage:
      case behaviour::status:
        return respond_full();
      case behaviour::stream:
      case behaviour::no_usage_stream:
      case behaviour::drop_mid_stream:
        return respond_stream();
      case behaviour::hang:
        return watch();
    }
  }

  std::string request_tag() const { return "fake-" + std::to_string(request_id_); }

  json full_body() const {
    const bool with_usage = reply_.kind != behaviour::no_usage;
    json j;
    switch (endpoint_) {
      case endpoint::chat:
        j = {{"id", "chatcmpl-" + request_tag()},
             {"object", "chat.completion"},
             {"created", fake_created},
             {"model", model_},
             {"choices", json::array({{{"index", 0},
                                       {"message", {{"role", "assistant"}, {"content", fake_content}}},
                                       {"logprobs", nullptr},
                                       {"finish_reason", "stop"}}})}};
        if (with_usage) j["usage"] = fake_usage(5);
        return j;
      case endpoint::completions:
        j = {{"id", "cmpl-" + request_tag()},
             {"object", "text_completion"},
             {"created", fake_created},
             {"model", model_},
             {"choices", json::array({{{"index", 0},
                                       {"text", fake_content},
                                       {"logprobs", nullptr},
                                       {"finish_reason", "stop"}}})}};
        if (with_usage) j["usage"] = fake_usage(5);
        return j;
      case endpoint::embeddings:
        j = {{"object", "list"},
             {"data", json::array({{{"object", "embedding"}, {"index", 0}, {"embedding", {0.1, 0.2, 0.3}}}})},
             {"model", model_}};
        if (with_usage) j["usage"] = {{"prompt_tokens", 11}, {"total_tokens", 11}};
        return j;
      case endpoint::models:
        return {{"object", "list"},
                {"data", json::array({{{"id", "fake-model"},
                                       {"object", "model"},
                                       {"created", fake_created},
                                       {"owned_by", "fake-upstream"}}})}};
      case endpoint::unknown:
        break;
    }
    return error_body("fake upstream: unknown path", "invalid_request_error");
  }

  void respond_full() {
    auto& res = response_.emplace();
    res.version(11);
    res.keep_alive(keep_alive_);
    res.set(http::field::server, "fake-upstream");
    res.set(http::field::content_type, "application/json");
    res.set("x-request-id", request_tag());
    if (reply_.retry_after_s >= 0) res.set(http::field::retry_after, std::to_string(reply_.retry_after_s));
    if (!reply_.body.empty()) {
      res.result(static_cast<unsigned>(reply_.status));
      res.body() = reply_.body;
    } else if (reply_.kind == behaviour::status) {
      res.result(static_cast<unsigned>(reply_.status));
      res.body() = error_body("fake error", "server_error").dump();
    } else if (endpoint_ == endpoint::unknown) {
      res.result(http::status::not_found);
      res.body() = full_body().dump();
    } else {
      res.result(static_cast<unsigned>(reply_.status));
      res.body() = full_body().dump();
    }
    res.prepare_payload();
    http::async_write(socket_, res, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (self->closed_) return;
      self->response_.reset();
      if (ec) return self->close();
      self->reply_done_ = true;
      self->after_reply();
    });
  }

  json stream_chunk(int i) const {
    const bool chat = endpoint_ != endpoint::completions;
    const std::string text = "tok" + std::to_string(i) + " ";
    json choice;
    if (chat) {
      json delta = {{"content", text}};
      if (i == 0) delta["role"] = "assistant";
      choice = {{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
    } else {
      choice = {{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
    }
    return chunk_envelope(json::array({choice}));
  }

  json finish_chunk() const {
    const bool chat = endpoint_ != endpoint::completions;
    json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", "stop"}};
    if (chat) choice["delta"] = json::object();
    else choice["text"] = "";
    return chunk_envelope(json::array({choice}));
  }

  json chunk_envelope(json choices) const {
    const bool chat = endpoint_ != endpoint::completions;
    json j = {{"id", (chat ? "chatcmpl-" : "cmpl-") + request_tag()},
              {"object", chat ? "chat.completion.chunk" : "text_completion"},
              {"created", fake_created},
              {"model", model_},
              {"choices", std::move(choices)}};
    // OpenAI sends "usage": null on every ordinary chunk when usage was asked for.
    if (send_usage()) j["usage"] = nullptr;
    return j;
  }

  bool send_usage() const { return include_usage_ && reply_.kind == behaviour::stream; }

  void respond_stream() {
    pieces_.clear();
    next_piece_ = 0;
    std::string head =
        "HTTP/1.1 200 OK\r\n"
        "server: fake-upstream\r\n"
        "content-type: text/event-stream\r\n"
        "cache-control: no-cache\r\n"
        "transfer-encoding: chunked\r\n"
        "x-request-id: " + request_tag() + "\r\n";
    if (reply_.retry_after_s >= 0) head += "retry-after: " + std::to_string(reply_.retry_after_s) + "\r\n";
    if (!keep_alive_) head += "connection: close\r\n";
    head += "\r\n";
    pieces_.push_back({std::move(head), false});

    const bool drop = reply_.kind == behaviour::drop_mid_stream;
    const int content_chunks = drop ? 2 : std::max(reply_.chunks, 0);
    for (int i = 0; i < content_chunks; ++i) pieces_.push_back({chunked(sse(stream_chunk(i))), i > 0});
    if (!drop) {
      pieces_.push_back({chunked(sse(finish_chunk())), content_chunks > 0});
      if (send_usage()) {
        json u = chunk_envelope(json::array());
        u["usage"] = fake_usage(content_chunks);
        pieces_.push_back({chunked(sse(u)), true});
      }
      pieces_.push_back({chunked("data: [DONE]\n\n"), false});
      pieces_.push_back({"0\r\n\r\n", false});
    }
    watch();
    write_next();
  }

  void write_next() {
    if (closed_) return;
    if (next_piece_ == pieces_.size()) {
      if (reply_.kind == behaviour::drop_mid_stream) return close();  // no terminating chunk
      reply_done_ = true;
      // Stop the watch read; its handler continues the connection (after_reply).
      beast::error_code ec;
      socket_.cancel(ec);
      return;
    }
    const piece& p = pieces_[next_piece_];
    if (p.delay_before && reply_.chunk_delay.count() > 0) {
      timer_.expires_after(reply_.chunk_delay);
      timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
        if (ec || self->closed_) return;
        self->write_piece();
      });
      return;
    }
    write_piece();
  }

  void write_piece() {
    asio::async_write(socket_, asio::buffer(pieces_[next_piece_].bytes),
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        if (self->closed_) return;
                        if (ec) {
                          self->note_cancelled();
                          return self->close();
                        }
                        ++self->next_piece_;
                        self->write_next();
                      });
  }

  // While a reply is in progress (or hung), a read notices the client going away. Bytes that arrive
  // (a pipelined next request) are kept for the HTTP parser.
  void watch() {
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(side_buf_), [self](beast::error_code ec, std::size_t n) {
      if (self->closed_) return;
      if (!ec) {
        auto dst = self->buffer_.prepare(n);
        std::memcpy(dst.data(), self->side_buf_.data(), n);
        self->buffer_.commit(n);
        if (self->reply_done_) return self->after_reply();
        return self->watch();
      }
      if (ec == asio::error::operation_aborted && self->reply_done_) return self->after_reply();
      // The client went away.
      if (!self->reply_done_) self->note_cancelled();
      self->close();
    });
  }

  void after_reply() {
    if (closed_) return;
    if (!keep_alive_) return close();
    do_read();
  }

  void note_cancelled() {
    if (counted_cancel_ || reply_done_) return;
    const bool counts = reply_.kind == behaviour::stream || reply_.kind == behaviour::no_usage_stream ||
                        reply_.kind == behaviour::drop_mid_stream || reply_.kind == behaviour::hang;
    if (!counts) return;
    counted_cancel_ = true;
    ++up_.cancelled;
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  shared_state& up_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
  std::array<char, 4096> side_buf_{};

  // The request being answered.
  int request_id_ = 0;
  scripted_reply reply_;
  endpoint endpoint_ = endpoint::unknown;
  std::string model_;
  bool include_usage_ = false;
  bool keep_alive_ = true;

  std::vector<piece> pieces_;  // a stream: head, chunks, terminator
  std::size_t next_piece_ = 0;
  bool reply_done_ = false;
  bool counted_cancel_ = false;
  bool closed_ = false;
};

}  // namespace

void fake_upstream::impl::do_accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) std::make_shared<session>(state, std::move(socket))->start();
    do_accept();
  });
}

fake_upstream::fake_upstream() : impl_(std::make_unique<impl>()) {}

fake_upstream::~fake_upstream() = default;

std::uint16_t fake_upstream::port() const { return impl_->port; }

std::string fake_upstream::base_url() const {
  return "http://127.0.0.1:" + std::to_string(impl_->port) + "/v1";
}

void fake_upstream::push(scripted_reply r) {
  std::lock_guard lock(impl_->state.mu);
  impl_->state.queue.push_back(std::move(r));
}

void fake_upstream::set_default(scripted_reply r) {
  std::lock_guard lock(impl_->state.mu);
  impl_->state.default_reply = std::move(r);
}

std::vector<fake_upstream::seen_request> fake_upstream::requests() const {
  std::lock_guard lock(impl_->state.mu);
  return impl_->state.seen;
}

int fake_upstream::requests_count() const {
  std::lock_guard lock(impl_->state.mu);
  return static_cast<int>(impl_->state.seen.size());
}

int fake_upstream::open_connections() const { return impl_->state.open.load(); }

int fake_upstream::cancelled_streams() const { return impl_->state.cancelled.load(); }

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace gw::test
