// The forwarder and http_client driven directly on an io_context against the fake upstream.
#include "providers/forwarder.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "providers/http_client.h"
#include "providers/sse.h"
#include "tests/support/fake_upstream.h"
#include "tests/support/test_client.h"

using namespace gw::providers;
using namespace gw::test;
namespace asio = boost::asio;

namespace {

// Records everything; can refuse bodies (backpressure) and resume later from a timer.
class recording_sink : public forward_sink {
 public:
  explicit recording_sink(asio::io_context& io) : io_(io), timer_(io) {}
  std::optional<commit_info> commit;
  std::string body;
  std::optional<forward_outcome> outcome;
  int refusals = 0;
  int refuse_every = 0;  // 0: never refuse
  int bodies = 0;
  std::shared_ptr<forward_call> call;

  void on_commit(const commit_info& info) override { commit = info; }
  bool on_body(std::string_view bytes) override {
    body.append(bytes);
    ++bodies;
    if (refuse_every && bodies % refuse_every == 0) {
      ++refusals;
      timer_.expires_after(std::chrono::milliseconds(5));
      timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec && call) call->resume();
      });
      return false;
    }
    return true;
  }
  void on_complete(forward_outcome&& o) override {
    outcome = std::move(o);
    io_.stop();
  }

 private:
  asio::io_context& io_;
  asio::steady_timer timer_;
};

target_spec make_target(const fake_upstream& up, std::string name = "t") {
  target_spec t;
  t.name = std::move(name);
  t.base_url = up.base_url();
  t.upstream_model = "up-model";
  t.retry.max_attempts = 1;
  return t;
}

forward_request chat(bool stream) {
  forward_request r;
  r.endpoint = "/chat/completions";
  r.stream = stream;
  r.body = std::make_shared<nlohmann::ordered_json>(nlohmann::ordered_json::parse(
      std::string(R"({"model":"alias","z_first":1,"messages":[{"role":"user","content":"hello there"}])") +
      (stream ? R"(,"stream":true})" : "}")));
  return r;
}

}  // namespace

TEST(forwarder, upstream_body_rewrites_model_keeps_order_and_asks_streams_for_usage) {
  fake_upstream up;
  auto t = make_target(up);
  auto body = forwarder::upstream_body(chat(false), t);
  EXPECT_EQ(body, R"({"model":"up-model","z_first":1,"messages":[{"role":"user","content":"hello there"}]})");
  auto sbody = forwarder::upstream_body(chat(true), t);
  EXPECT_EQ(sbody,
            R"({"model":"up-model","z_first":1,"messages":[{"role":"user","content":"hello there"}],"stream":true,)"
            R"("stream_options":{"include_usage":true}})");
  t.upstream_model.reset();
  EXPECT_NE(forwarder::upstream_body(chat(false), t).find(R"("model":"alias")"), std::string::npos);
}

TEST(forwarder, paused_stream_resumes_without_losing_or_duplicating_events) {
  fake_upstream up;
  up.set_default({.kind = behaviour::stream, .chunks = 300});
  asio::io_context io;
  http_client client(io);
  forwarder fw(io, client);
  auto spec = make_target(up);
  auto sink = std::make_shared<recording_sink>(io);
  sink->refuse_every = 7;
  auto health = std::make_shared<target_health>();
  sink->call = fw.start(chat(true), {{&spec, health}}, sink);
  io.run_for(std::chrono::seconds(20));
  ASSERT_TRUE(sink->outcome.has_value());
  EXPECT_GT(sink->refusals, 10);
  auto events = sse_data(sink->body);
  ASSERT_EQ(events.size(), 302u);  // 300 content chunks + finish chunk + [DONE]; usage chunk stripped
  for (int i = 0; i < 300; ++i) {
    auto j = nlohmann::json::parse(events[static_cast<std::size_t>(i)]);
    EXPECT_EQ(j["choices"][0]["delta"]["content"], "tok" + std::to_string(i) + " ");
  }
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_FALSE(sink->outcome->tokens.estimated);
  EXPECT_EQ(sink->outcome->tokens.completion_tokens, 300);
  EXPECT_EQ(health->in_flight(), 0);  // concurrency slot released
  sink->call.reset();
}

TEST(forwarder, breaker_counts_failures_and_concurrency_limit_skips_target) {
  fake_upstream a, b;
  a.set_default({.kind = behaviour::status, .status = 500});
  asio::io_context io;
  http_client client(io);
  forwarder fw(io, client);
  auto ta = make_target(a, "a");
  ta.breaker.failure_threshold = 1;
  ta.breaker.cooldown = std::chrono::seconds(60);
  auto tb = make_target(b, "b");
  auto ha = std::make_shared<target_health>();
  auto hb = std::make_shared<target_health>();

  auto sink = std::make_shared<recording_sink>(io);
  auto call = fw.start(chat(false), {{&ta, ha}, {&tb, hb}}, sink);
  io.run_for(std::chrono::seconds(10));
  ASSERT_TRUE(sink->outcome);
  EXPECT_EQ(sink->outcome->target, "b");
  EXPECT_EQ(sink->outcome->fallbacks, 1);
  EXPECT_TRUE(ha->breaker_open(target_health::clock::now()));
  EXPECT_EQ(ha->trips(), 1u);

  // b at its concurrency limit and a's breaker open: nothing can serve -> 503-style error.
  tb.max_concurrency = 1;
  ASSERT_TRUE(hb->try_acquire(1));
  io.restart();
  auto sink2 = std::make_shared<recording_sink>(io);
  auto call2 = fw.start(chat(false), {{&ta, ha}, {&tb, hb}}, sink2);
  io.run_for(std::chrono::seconds(10));
  ASSERT_TRUE(sink2->outcome);
  ASSERT_TRUE(sink2->outcome->error);
  EXPECT_EQ(sink2->outcome->error->code, forward_errc::no_target_available);
  EXPECT_GE(sink2->outcome->error->retry_after_s, 1);
  EXPECT_FALSE(sink2->commit.has_value());
  EXPECT_EQ(a.requests_count(), 1);
  EXPECT_EQ(b.requests_count(), 1);
  hb->release();
}

TEST(forwarder, cancel_completes_synchronously_and_stops_the_transfer) {
  fake_upstream up;
  up.set_default({.kind = behaviour::hang});
  asio::io_context io;
  http_client client(io);
  forwarder fw(io, client);
  auto spec = make_target(up);
  auto health = std::make_shared<target_health>();
  auto sink = std::make_shared<recording_sink>(io);
  auto call = fw.start(chat(false), {{&spec, health}}, sink);
  asio::steady_timer t(io);
  // Cancel once the upstream has the request.
  std::function<void()> poll = [&] {
    if (up.requests_count() == 1) {
      call->cancel();
      return;
    }
    t.expires_after(std::chrono::milliseconds(5));
    t.async_wait([&](const boost::system::error_code&) { poll(); });
  };
  poll();
  io.run_for(std::chrono::seconds(10));
  ASSERT_TRUE(sink->outcome);
  EXPECT_TRUE(sink->outcome->client_gone);
  ASSERT_TRUE(sink->outcome->error);
  EXPECT_EQ(sink->outcome->error->code, forward_errc::client_gone);
  EXPECT_EQ(health->in_flight(), 0);
  // Let the deferred removal run, then the upstream sees the connection go.
  io.restart();
  io.run_for(std::chrono::milliseconds(100));
  EXPECT_EQ(client.active_transfers(), 0u);
  EXPECT_TRUE(wait_until([&] { return up.cancelled_streams() == 1; }));
}
