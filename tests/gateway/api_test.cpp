// Unit tests: request validation, error mapping, auth, metrics rendering.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "gateway/api.h"
#include "gateway/auth.h"
#include "gateway/errors.h"
#include "gateway/metrics.h"

using namespace gw::gateway;
using nlohmann::json;

TEST(errors, body_has_openai_shape_with_nulls) {
  auto b = json::parse(to_body(api_error::invalid_request("bad \"thing\"\n", "messages")));
  EXPECT_EQ(b["error"]["message"], "bad \"thing\"\n");
  EXPECT_EQ(b["error"]["type"], "invalid_request_error");
  EXPECT_EQ(b["error"]["param"], "messages");
  EXPECT_TRUE(b["error"]["code"].is_null());
  auto u = json::parse(to_body(api_error::unauthorized("no")));
  EXPECT_TRUE(u["error"]["param"].is_null());
  EXPECT_EQ(u["error"]["code"], "invalid_api_key");
  // Invalid UTF-8 in a message must not break the JSON.
  auto bad = to_body(api_error::internal(std::string("x\xff\xfey")));
  EXPECT_FALSE(json::parse(bad, nullptr, false).is_discarded());
}

TEST(errors, forward_errors_map_to_status_and_retry_after) {
  using gw::providers::forward_errc;
  using gw::providers::forward_error;
  auto e = from_forward_error(forward_error{forward_errc::no_target_available, "m", 7});
  EXPECT_EQ(e.status, 503);
  EXPECT_EQ(e.retry_after_s, 7);
  EXPECT_EQ(e.code, "no_target_available");
  EXPECT_EQ(from_forward_error({forward_errc::upstream_unreachable, "m", -1}).status, 502);
  EXPECT_EQ(from_forward_error({forward_errc::upstream_timeout, "m", -1}).status, 504);
  EXPECT_EQ(from_forward_error({forward_errc::response_too_large, "m", -1}).status, 502);
  EXPECT_EQ(from_forward_error({forward_errc::client_gone, "m", -1}).status, 499);
  EXPECT_EQ(from_forward_error({forward_errc::upstream_timeout, "m", -1}).retry_after_s, -1);
}

TEST(api, parse_model_request_validates_just_enough) {
  auto ok = parse_model_request(model_endpoint::chat_completions,
                                R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,)"
                                R"("stream_options":{"include_usage":true},"zz":1})");
  ASSERT_TRUE(std::holds_alternative<model_request>(ok));
  const auto& r = std::get<model_request>(ok);
  EXPECT_EQ(r.model, "m");
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.client_wants_usage);
  EXPECT_EQ(r.body->dump(), R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},"zz":1})");

  auto param_of = [](model_endpoint ep, const std::string& body) -> std::string {
    auto res = parse_model_request(ep, body);
    if (!std::holds_alternative<api_error>(res)) return "<accepted>";
    const auto& e = std::get<api_error>(res);
    EXPECT_EQ(e.status, 400);
    return e.param.value_or("<none>");
  };
  EXPECT_EQ(param_of(model_endpoint::chat_completions, "nope"), "<none>");
  EXPECT_EQ(param_of(model_endpoint::chat_completions, R"({"messages":[]})"), "model");
  EXPECT_EQ(param_of(model_endpoint::chat_completions, R"({"model":5,"messages":[]})"), "model");
  EXPECT_EQ(param_of(model_endpoint::chat_completions, R"({"model":"","messages":[]})"), "model");
  EXPECT_EQ(param_of(model_endpoint::chat_completions, R"({"model":"m","messages":[]})"), "messages");
  EXPECT_EQ(param_of(model_endpoint::chat_completions, R"({"model":"m","messages":[1]})"), "messages[0]");
  EXPECT_EQ(param_of(model_endpoint::chat_completions, R"({"model":"m","messages":[{"role":"user"},{}]})"),
            "messages[1].role");
  EXPECT_EQ(param_of(model_endpoint::chat_completions, R"({"model":"m","messages":[{"role":"user"}],"stream":1})"),
            "stream");
  EXPECT_EQ(param_of(model_endpoint::completions, R"({"model":"m"})"), "prompt");
  EXPECT_EQ(param_of(model_endpoint::completions, R"({"model":"m","prompt":"x"})"), "<accepted>");
  EXPECT_EQ(param_of(model_endpoint::embeddings, R"({"model":"m"})"), "input");
  EXPECT_EQ(param_of(model_endpoint::embeddings, R"({"model":"m","input":"x","stream":true})"), "stream");
}

TEST(api, models_list_skips_catch_all) {
  config cfg;
  cfg.models = {{"a", {"t"}}, {"*", {"t"}}, {"b", {"t"}}};
  auto j = json::parse(models_body(cfg));
  ASSERT_EQ(j["data"].size(), 2u);
  EXPECT_EQ(j["data"][0]["id"], "a");
  EXPECT_EQ(j["data"][1]["id"], "b");
  EXPECT_TRUE(model_body(cfg, "b").has_value());
  EXPECT_FALSE(model_body(cfg, "*").has_value());
  EXPECT_FALSE(model_body(cfg, "c").has_value());
}

TEST(auth, bearer_keys_by_sha256) {
  auth_config a;
  api_key_config k;
  k.name = "app";
  k.team = "t1";
  auto hex = sha256_hex("sk-secret-1");
  for (std::size_t i = 0; i < 32; ++i) k.sha256[i] = static_cast<unsigned char>(std::stoi(hex.substr(i * 2, 2), nullptr, 16));
  a.keys.push_back(k);
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  auto ok = authenticate(a, "Bearer sk-secret-1");
  ASSERT_TRUE(std::holds_alternative<client_identity>(ok));
  EXPECT_EQ(std::get<client_identity>(ok).key_name, "app");
  EXPECT_EQ(std::get<client_identity>(ok).team, "t1");
  EXPECT_FALSE(std::get<client_identity>(ok).admin);
  EXPECT_TRUE(std::holds_alternative<api_error>(authenticate(a, "Bearer sk-secret-2")));
  EXPECT_TRUE(std::holds_alternative<api_error>(authenticate(a, "")));
  EXPECT_TRUE(std::holds_alternative<api_error>(authenticate(a, "Bearer ")));
  EXPECT_TRUE(std::holds_alternative<api_error>(authenticate(a, "sk-secret-1")));
  EXPECT_EQ(std::get<api_error>(authenticate(a, "Bearer nope")).status, 401);
  a.enabled = false;
  auto anon = authenticate(a, "");
  ASSERT_TRUE(std::holds_alternative<client_identity>(anon));
  EXPECT_FALSE(std::get<client_identity>(anon).authenticated);
}

TEST(metrics, merges_shards_and_renders_prometheus_text) {
  metrics m(2);
  request_sample s;
  s.endpoint = "/v1/chat/completions";
  s.route = "r\"x";
  s.target = "t";
  s.status = 200;
  s.latency_s = 0.2;
  s.ttft_s = 0.05;
  s.overhead_s = 0.0002;
  s.prompt_tokens = 10;
  s.completion_tokens = 3;
  m.record_request(0, s);
  m.record_request(1, s);
  s.status = 502;
  m.record_request(1, s);
  m.record_upstream_error(0, "t", "connect_failed");
  auto text = m.render({{"t", true, false, 2, 1}});
  EXPECT_NE(text.find("tollgate_requests_total{endpoint=\"/v1/chat/completions\",route=\"r\\\"x\",target=\"t\",status=\"200\"} 2"),
            std::string::npos) << text;
  EXPECT_NE(text.find("status=\"502\"} 1"), std::string::npos);
  EXPECT_NE(text.find("tollgate_tokens_total{target=\"t\",kind=\"prompt\"} 30"), std::string::npos);
  EXPECT_NE(text.find("tollgate_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\",route=\"r\\\"x\",target=\"t\",le=\"0.25\"} 3"),
            std::string::npos) << text;
  EXPECT_NE(text.find("le=\"0.1\"} 0"), std::string::npos);
  EXPECT_NE(text.find("tollgate_gateway_overhead_seconds_count{endpoint=\"/v1/chat/completions\"} 3"), std::string::npos);
  EXPECT_NE(text.find("tollgate_upstream_errors_total{target=\"t\",reason=\"connect_failed\"} 1"), std::string::npos);
  EXPECT_NE(text.find("tollgate_target_in_flight{target=\"t\"} 2"), std::string::npos);
  EXPECT_NE(text.find("tollgate_target_circuit_trips_total{target=\"t\"} 1"), std::string::npos);
}
