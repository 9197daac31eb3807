// Integration: real tollgate server <-> real fake upstream over loopback HTTP.
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/gateway_harness.h"
#include "tests/support/test_client.h"

using namespace gw::test;
using nlohmann::json;

namespace {
const std::string chat_body =
    R"({"model":"gpt-test","messages":[{"role":"user","content":"Say hi"}],"temperature":0.25,)"
    R"("tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],)"
    R"("x_unknown_field":{"keep":[1,2,3]},"seed":42,"user":"u-1"})";

std::string stream_body(bool include_usage) {
  std::string b = R"({"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"Count"}])";
  if (include_usage) b += R"(,"stream_options":{"include_usage":true})";
  return b + "}";
}
}  // namespace

TEST(forwarding, non_streaming_passes_body_through_byte_for_byte) {
  fake_upstream up;
  // Odd formatting on purpose: tollgate must not re-serialise the upstream's answer.
  const std::string upstream_answer =
      "{ \"id\":\"chatcmpl-1\",  \"object\":\"chat.completion\",\"model\":\"upstream-model-a\",\n"
      "  \"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"h\\u00e9llo \xF0\x9F\x8E\x89\"},"
      "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":4,"
      "\"prompt_tokens_details\":{\"cached_tokens\":2}} }";
  up.push({.kind = behaviour::ok, .body = upstream_answer});
  gateway_harness gw(basic_config(up));
  auto r = http_request(gw.port(), "/v1/chat/completions", chat_body,
                        {.headers = {{"x-request-id", "client-abc"}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, upstream_answer);
  EXPECT_EQ(r.header("x-tollgate-target"), "primary");
  EXPECT_TRUE(r.header("x-request-id").starts_with("tg-"));
  EXPECT_EQ(r.header("x-client-request-id"), "client-abc");
  EXPECT_FALSE(r.header("x-tollgate-overhead-ms").empty());

  auto seen = up.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].target, "/v1/chat/completions");
  auto sent = json::parse(seen[0].body);
  EXPECT_EQ(sent["model"], "upstream-model-a");  // alias rewritten
  EXPECT_EQ(sent["temperature"], 0.25);
  EXPECT_EQ(sent["seed"], 42);
  EXPECT_EQ(sent["user"], "u-1");
  EXPECT_EQ(sent["x_unknown_field"]["keep"], json::array({1, 2, 3}));  // unknown fields kept
  EXPECT_EQ(sent["tools"][0]["function"]["name"], "f");
  EXPECT_FALSE(sent.contains("stream_options"));
  EXPECT_EQ(seen[0].headers["x-request-id"], "client-abc");
  EXPECT_EQ(seen[0].headers["x-tollgate-request-id"], r.header("x-request-id"));

  auto recs = gw.wait_records(1);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].prompt_tokens, 12);
  EXPECT_EQ(recs[0].completion_tokens, 4);
  EXPECT_EQ(recs[0].cached_prompt_tokens, 2);
  EXPECT_FALSE(recs[0].usage_estimated);
  EXPECT_EQ(recs[0].client_request_id, "client-abc");
  EXPECT_EQ(recs[0].request_id, r.header("x-request-id"));
}

TEST(forwarding, stream_strips_usage_chunk_unless_client_asked) {
  fake_upstream up;
  up.set_default({.kind = behaviour::stream, .chunks = 4});
  gateway_harness gw(basic_config(up));

  auto r = http_request(gw.port(), "/v1/chat/completions", stream_body(false));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.header("content-type").find("text/event-stream"), std::string::npos);
  auto events = sse_data(r.body);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "[DONE]");
  for (const auto& e : events) {
    if (e == "[DONE]") continue;
    auto j = json::parse(e);
    EXPECT_FALSE(j.contains("usage") && j["choices"].empty()) << "usage chunk leaked: " << e;
  }
  // The upstream was asked for usage anyway, and the ledger record has it.
  auto sent = json::parse(up.requests().at(0).body);
  EXPECT_EQ(sent["stream_options"]["include_usage"], true);
  auto recs = gw.wait_records(1);
  EXPECT_FALSE(recs.at(0).usage_estimated);
  EXPECT_EQ(recs.at(0).completion_tokens, 4);
  EXPECT_GE(recs.at(0).ttft.count(), 0);

  auto r2 = http_request(gw.port(), "/v1/chat/completions", stream_body(true));
  ASSERT_EQ(r2.status, 200);
  auto events2 = sse_data(r2.body);
  bool saw_usage = false;
  for (const auto& e : events2)
    if (e != "[DONE]" && json::parse(e)["choices"].empty()) saw_usage = true;
  EXPECT_TRUE(saw_usage);
  EXPECT_EQ(events2.size(), events.size() + 1);
}

TEST(forwarding, stream_events_are_relayed_unchanged) {
  fake_upstream up;
  up.set_default({.kind = behaviour::stream, .chunks = 3});
  gateway_harness gw(basic_config(up));
  auto via = http_request(gw.port(), "/v1/chat/completions", stream_body(true));
  auto direct = http_request(up.port(), "/v1/chat/completions", stream_body(true));
  ASSERT_EQ(via.status, 200);
  ASSERT_EQ(direct.status, 200);
  // Same events byte for byte, except what differs by construction: the fake's response id
  // counter and the model it echoes (tollgate rewrote the alias to the upstream model).
  auto normalise = [](std::vector<std::string> events) {
    for (auto& e : events) {
      for (std::string from : {"chatcmpl-fake-1", "chatcmpl-fake-2"})
        for (auto p = e.find(from); p != std::string::npos; p = e.find(from)) e.replace(p, from.size(), "ID");
      for (std::string from : {"upstream-model-a", "gpt-test"})
        for (auto p = e.find(from); p != std::string::npos; p = e.find(from)) e.replace(p, from.size(), "MODEL");
    }
    return events;
  };
  EXPECT_EQ(normalise(sse_data(via.body)), normalise(sse_data(direct.body)));
  EXPECT_EQ(sse_data(via.body).size(), 6u);
}

TEST(forwarding, missing_usage_is_estimated_and_marked) {
  fake_upstream up;
  up.push({.kind = behaviour::no_usage});
  up.push({.kind = behaviour::no_usage_stream, .chunks = 6});
  gateway_harness gw(basic_config(up));
  ASSERT_EQ(http_request(gw.port(), "/v1/chat/completions", chat_body).status, 200);
  ASSERT_EQ(http_request(gw.port(), "/v1/chat/completions", stream_body(false)).status, 200);
  auto recs = gw.wait_records(2);
  for (const auto& rec : recs) {
    EXPECT_TRUE(rec.usage_estimated);
    EXPECT_GT(rec.prompt_tokens, 0);
    EXPECT_GT(rec.completion_tokens, 0);
  }
}

TEST(forwarding, completions_embeddings_and_models) {
  fake_upstream up;
  up.push({.kind = behaviour::ok});
  up.push({.kind = behaviour::ok});
  gateway_harness gw(basic_config(up));
  auto c = http_request(gw.port(), "/v1/completions", R"({"model":"gpt-test","prompt":"Once upon"})");
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(json::parse(c.body)["object"], "text_completion");
  auto e = http_request(gw.port(), "/v1/embeddings", R"({"model":"gpt-test","input":"hello"})");
  ASSERT_EQ(e.status, 200) << e.body;
  EXPECT_EQ(json::parse(e.body)["data"][0]["embedding"].size(), 3u);
  EXPECT_EQ(up.requests().at(1).target, "/v1/embeddings");
  auto m = http_request(gw.port(), "/v1/models", "", {.method = "GET"});
  ASSERT_EQ(m.status, 200);
  auto models = json::parse(m.body);
  EXPECT_EQ(models["object"], "list");
  // The configured alias, then the built-in cost-aware aliases.
  ASSERT_EQ(models["data"].size(), 4u);
  EXPECT_EQ(models["data"][0]["id"], "gpt-test");
  EXPECT_EQ(models["data"][1]["id"], "auto");
  EXPECT_EQ(models["data"][3]["id"], "auto-private");
  auto one = http_request(gw.port(), "/v1/models/gpt-test", "", {.method = "GET"});
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(json::parse(one.body)["id"], "gpt-test");
  auto none = http_request(gw.port(), "/v1/models/nope", "", {.method = "GET"});
  EXPECT_EQ(none.status, 404);
  EXPECT_EQ(json::parse(none.body)["error"]["code"], "model_not_found");
}

TEST(forwarding, retries_503_then_succeeds) {
  fake_upstream up;
  up.push({.kind = behaviour::status, .status = 503, .retry_after_s = 0});
  up.push({.kind = behaviour::ok});
  gateway_harness gw(basic_config(up));
  auto r = http_request(gw.port(), "/v1/chat/completions", chat_body);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(up.requests_count(), 2);
  auto recs = gw.wait_records(1);
  EXPECT_EQ(recs[0].retries, 1);
  EXPECT_EQ(recs[0].attempts, 2);
}

TEST(forwarding, honours_retry_after_on_429) {
  fake_upstream up;
  up.push({.kind = behaviour::status, .status = 429, .retry_after_s = 1});
  up.push({.kind = behaviour::ok});
  gateway_harness gw(basic_config(up));
  auto t0 = std::chrono::steady_clock::now();
  auto r = http_request(gw.port(), "/v1/chat/completions", chat_body);
  auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_GE(elapsed, std::chrono::milliseconds(950));
  EXPECT_EQ(up.requests_count(), 2);
}

TEST(forwarding, falls_back_to_next_target_after_retries) {
  fake_upstream a, b;
  a.set_default({.kind = behaviour::status, .status = 500});
  gateway_harness gw(basic_config(a, &b));
  auto r = http_request(gw.port(), "/v1/chat/completions", chat_body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-tollgate-target"), "secondary");
  EXPECT_EQ(r.header("x-tollgate-reason"), "alias gpt-test -> primary (+1 fallback)");
  EXPECT_EQ(a.requests_count(), 2);  // max_attempts 2
  EXPECT_EQ(b.requests_count(), 1);
  EXPECT_EQ(json::parse(b.requests()[0].body)["model"], "upstream-model-b");
  auto recs = gw.wait_records(1);
  EXPECT_EQ(recs[0].target, "secondary");
  EXPECT_EQ(recs[0].fallbacks, 1);
}

TEST(forwarding, relays_last_upstream_error_when_everything_fails) {
  fake_upstream up;
  up.set_default({.kind = behaviour::status, .status = 429, .retry_after_s = 0});
  gateway_harness gw(basic_config(up));
  auto r = http_request(gw.port(), "/v1/chat/completions", chat_body);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.header("retry-after"), "0");
  auto err = json::parse(r.body);
  EXPECT_EQ(err["error"]["message"], "fake error");
}

TEST(forwarding, client_errors_are_not_retried) {
  fake_upstream up;
  up.set_default({.kind = behaviour::status, .status = 400,
                  .body = R"({"error":{"message":"bad tools","type":"invalid_request_error","param":"tools","code":null}})"});
  gateway_harness gw(basic_config(up));
  auto r = http_request(gw.port(), "/v1/chat/completions", chat_body);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json::parse(r.body)["error"]["param"], "tools");
  EXPECT_EQ(up.requests_count(), 1);
}

TEST(forwarding, unreachable_upstream_gives_502_in_openai_shape) {
  std::string yaml =
      "server: {listen: \"127.0.0.1:0\", io_threads: 1, access_log: false, log_level: error}\n"
      "auth: none\n"
      "targets:\n  dead:\n    base_url: http://127.0.0.1:1/v1\n"
      "    retry: {max_attempts: 2, base_delay_ms: 1, max_delay_ms: 10}\n"
      "models:\n  gpt-test: dead\n";
  gateway_harness gw(yaml);
  auto r = http_request(gw.port(), "/v1/chat/completions", chat_body);
  EXPECT_EQ(r.status, 502);
  auto err = json::parse(r.body);
  EXPECT_EQ(err["error"]["type"], "upstream_error");
  EXPECT_EQ(err["error"]["code"], "upstream_unreachable");
  EXPECT_TRUE(err["error"].contains("param"));
}

TEST(forwarding, circuit_breaker_opens_and_shows_in_readyz_and_metrics) {
  fake_upstream a, b;
  a.set_default({.kind = behaviour::status, .status = 500});
  std::string extra = "    circuit_breaker: {failure_threshold: 2, cooldown_ms: 60000}\n";
  gateway_harness gw(basic_config(a, &b, extra));
  // First request: 2 failed attempts on primary open its breaker, then secondary answers.
  ASSERT_EQ(http_request(gw.port(), "/v1/chat/completions", chat_body).status, 200);
  EXPECT_EQ(a.requests_count(), 2);
  // Next requests skip primary entirely.
  ASSERT_EQ(http_request(gw.port(), "/v1/chat/completions", chat_body).status, 200);
  EXPECT_EQ(a.requests_count(), 2);
  EXPECT_EQ(b.requests_count(), 2);
  auto ready = http_request(gw.port(), "/readyz", "", {.method = "GET"});
  EXPECT_EQ(ready.status, 200);  // secondary still up
  auto j = json::parse(ready.body);
  EXPECT_EQ(j["targets"]["primary"]["circuit"], "open");
  EXPECT_EQ(j["targets"]["secondary"]["circuit"], "closed");
  auto m = http_request(gw.port(), "/metrics", "", {.method = "GET"});
  EXPECT_NE(m.body.find("tollgate_target_circuit_open{target=\"primary\"} 1"), std::string::npos);
  EXPECT_NE(m.body.find("tollgate_target_up{target=\"secondary\"} 1"), std::string::npos);
}

TEST(forwarding, readyz_is_503_when_no_target_can_serve) {
  fake_upstream a;
  a.set_default({.kind = behaviour::status, .status = 502});
  std::string extra = "    circuit_breaker: {failure_threshold: 1, cooldown_ms: 60000}\n";
  gateway_harness gw(basic_config(a, nullptr, extra));
  http_request(gw.port(), "/v1/chat/completions", chat_body);
  auto ready = http_request(gw.port(), "/readyz", "", {.method = "GET"});
  EXPECT_EQ(ready.status, 503);
  // A request now gets 503 with retry-after (the breaker's cooldown), not a hang.
  auto r = http_request(gw.port(), "/v1/chat/completions", chat_body);
  EXPECT_EQ(r.status, 503);
  EXPECT_FALSE(r.header("retry-after").empty());
  EXPECT_EQ(json::parse(r.body)["error"]["code"], "no_target_available");
}

TEST(forwarding, client_disconnect_cancels_upstream_while_waiting) {
  fake_upstream up;
  up.set_default({.kind = behaviour::hang});
  gateway_harness gw(basic_config(up));
  {
    test_connection c(gw.port());
    c.send_raw("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: " + std::to_string(chat_body.size()) + "\r\n\r\n" + chat_body);
    ASSERT_TRUE(wait_until([&] { return up.requests_count() == 1; }));
    c.close();
  }
  EXPECT_TRUE(wait_until([&] { return up.cancelled_streams() == 1; }));
  EXPECT_TRUE(wait_until([&] { return up.open_connections() == 0 || up.cancelled_streams() == 1; }));
  auto recs = gw.wait_records(1);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].status, 499);
  EXPECT_TRUE(recs[0].client_disconnected);
}

TEST(forwarding, client_disconnect_mid_stream_cancels_upstream_and_bills_what_was_sent) {
  fake_upstream up;
  up.set_default({.kind = behaviour::stream, .chunks = 200, .chunk_delay = std::chrono::milliseconds(20)});
  gateway_harness gw(basic_config(up));
  {
    test_connection c(gw.port());
    auto partial = c.request_partial("/v1/chat/completions", stream_body(false), 200);
    EXPECT_EQ(partial.status, 200);
    c.close();
  }
  EXPECT_TRUE(wait_until([&] { return up.cancelled_streams() == 1; }));
  auto recs = gw.wait_records(1);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_TRUE(recs[0].client_disconnected);
  EXPECT_GT(recs[0].completion_tokens, 0);
  EXPECT_LT(recs[0].completion_tokens, 200 * 3);
}

TEST(forwarding, first_byte_timeout_gives_504) {
  fake_upstream up;
  up.set_default({.kind = behaviour::hang});
  std::string extra =
      "    timeouts: {first_byte_ms: 150}\n";
  gateway_harness gw(basic_config(up, nullptr, extra));
  auto t0 = std::chrono::steady_clock::now();
  auto r = http_request(gw.port(), "/v1/chat/completions", chat_body);
  EXPECT_EQ(r.status, 504) << r.body;
  EXPECT_EQ(json::parse(r.body)["error"]["code"], "upstream_timeout");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
}

TEST(forwarding, stream_idle_timeout_ends_stream_with_error_event) {
  fake_upstream up;
  up.set_default({.kind = behaviour::stream, .chunks = 5, .chunk_delay = std::chrono::milliseconds(600)});
  std::string extra = "    timeouts: {stream_idle_ms: 200}\n";
  gateway_harness gw(basic_config(up, nullptr, extra));
  auto r = http_request(gw.port(), "/v1/chat/completions", stream_body(false));
  ASSERT_EQ(r.status, 200);
  auto events = sse_data(r.body);
  ASSERT_FALSE(events.empty());
  EXPECT_NE(events.back(), "[DONE]");
  EXPECT_EQ(json::parse(events.back())["error"]["code"], "upstream_stream_error");
}

TEST(forwarding, upstream_dropping_mid_stream_ends_with_error_event) {
  fake_upstream up;
  up.set_default({.kind = behaviour::drop_mid_stream});
  gateway_harness gw(basic_config(up));
  auto r = http_request(gw.port(), "/v1/chat/completions", stream_body(false));
  ASSERT_EQ(r.status, 200);
  auto events = sse_data(r.body);
  ASSERT_EQ(events.size(), 3u);  // 2 chunks + error
  EXPECT_TRUE(json::parse(events.back()).contains("error"));
  auto recs = gw.wait_records(1);
  EXPECT_EQ(recs[0].error_code, "upstream_stream_error");
}

TEST(forwarding, two_hundred_concurrent_streams) {
  fake_upstream up;
  up.set_default({.kind = behaviour::stream, .chunks = 5, .chunk_delay = std::chrono::milliseconds(20)});
  gateway_harness gw(basic_config(up));
  std::atomic<int> complete{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 200; ++i) {
    threads.emplace_back([&] {
      try {
        auto r = http_request(gw.port(), "/v1/chat/completions", stream_body(false),
                              {.timeout = std::chrono::seconds(30)});
        auto ev = sse_data(r.body);
        if (r.status == 200 && ev.size() == 7 && ev.back() == "[DONE]") ++complete;
      } catch (...) {
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(complete.load(), 200);
  EXPECT_EQ(up.requests_count(), 200);
  auto recs = gw.wait_records(200);
  EXPECT_EQ(recs.size(), 200u);
}
