// Integration: `kind: local` targets served by the built-in engine through the real server — chat
// and completions, streaming and not, OpenAI usage, the ledger record (tokens, engine busy time,
// cost 0), fallback to a hosted target when the engine refuses, errors, and stories15M telling a
// real story when its GGUF is in the model cache.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/support/gateway_harness.h"
#include "tests/support/test_client.h"
#include "tests/support/test_env.h"

using namespace gw::test;
using nlohmann::json;

namespace {

const std::string server = "server: {listen: \"127.0.0.1:0\", io_threads: 2, access_log: false, log_level: error}\n"
                           "auth: none\n";

std::string local_config(const std::filesystem::path& model, const std::string& extra_target = "",
                         const std::string& models = "models:\n  tiny: loc\n") {
  return server + "targets:\n  loc:\n    kind: local\n    model_path: " + model.string() +
         "\n    context_size: 256\n    threads: 1\n" + extra_target + models;
}

std::filesystem::path stories_model() {
  const char* dir = std::getenv("TOLLGATE_MODEL_DIR");
  std::filesystem::path base = dir && *dir ? std::filesystem::path(dir)
                                           : std::filesystem::path(std::getenv("HOME") ? std::getenv("HOME") : "/root") /
                                                 ".cache/tollgate/models";
  return base / "stories15M.F32.gguf";
}

}  // namespace

TEST(local_target, chat_and_completions_streaming_and_not_with_usage_and_ledger) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  gateway_harness gw(local_config(shared / "data/engine/models/tiny-llama3.F32.gguf"));

  auto chat = http_request(gw.port(), "/v1/chat/completions",
                           R"({"model":"tiny","max_tokens":8,"temperature":0,"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_EQ(chat.status, 200) << chat.body;
  EXPECT_EQ(chat.header("x-tollgate-target"), "loc");
  auto c = json::parse(chat.body);
  EXPECT_EQ(c["object"], "chat.completion");
  EXPECT_EQ(c["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE(c["choices"][0]["message"]["content"].is_string());
  const std::string finish = c["choices"][0]["finish_reason"];
  EXPECT_TRUE(finish == "length" || finish == "stop") << finish;
  EXPECT_LE(c["usage"]["completion_tokens"].get<int>(), 8);
  EXPECT_GE(c["usage"]["completion_tokens"].get<int>(), 1);
  EXPECT_GT(c["usage"]["prompt_tokens"].get<int>(), 3);

  auto comp = http_request(gw.port(), "/v1/completions",
                           R"({"model":"tiny","max_tokens":5,"temperature":0,"prompt":"Once upon"})");
  ASSERT_EQ(comp.status, 200) << comp.body;
  auto t = json::parse(comp.body);
  EXPECT_EQ(t["object"], "text_completion");
  EXPECT_EQ(t["usage"]["completion_tokens"], 5);

  // Streaming: role chunk, content chunks, finish chunk, usage when asked, [DONE]; the text equals
  // the non-streaming answer (greedy).
  auto st = http_request(gw.port(), "/v1/chat/completions",
                         R"({"model":"tiny","max_tokens":8,"temperature":0,"stream":true,)"
                         R"("stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_EQ(st.status, 200) << st.body;
  auto events = sse_data(st.body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  bool saw_usage = false, saw_finish = false;
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    auto e = json::parse(events[i]);
    if (e.contains("usage") && !e["usage"].is_null()) {
      saw_usage = true;
      EXPECT_EQ(e["usage"]["completion_tokens"], c["usage"]["completion_tokens"]);
      continue;
    }
    const json& ch = e["choices"][0];
    if (ch["delta"].contains("content")) text += ch["delta"]["content"].template get<std::string>();
    if (!ch["finish_reason"].is_null()) saw_finish = true;
  }
  EXPECT_TRUE(saw_usage);
  EXPECT_TRUE(saw_finish);
  EXPECT_EQ(text, c["choices"][0]["message"]["content"].get<std::string>());

  // The ledger records: tokens, engine busy time, priced at the local marginal cost (0).
  auto recs = gw.wait_records(3);
  ASSERT_GE(recs.size(), 3u);
  for (const auto& r : recs) {
    EXPECT_EQ(r.target, "loc");
    EXPECT_TRUE(r.priced);
    EXPECT_EQ(r.cost_pusd, 0);
    EXPECT_GT(r.engine_busy.count(), 0) << r.request_id << " " << r.endpoint << " " << r.completion_tokens << " stream " << r.stream << " latency " << r.latency.count();
    EXPECT_FALSE(r.usage_estimated);
  }
}

TEST(local_target, bad_requests_get_openai_errors) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  gateway_harness gw(local_config(shared / "data/engine/models/tiny-llama.F32.gguf"));
  auto bad_temp = http_request(gw.port(), "/v1/chat/completions",
                               R"({"model":"tiny","temperature":7,"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(bad_temp.status, 400);
  EXPECT_EQ(json::parse(bad_temp.body)["error"]["param"], "temperature");
  std::string long_prompt(3000, 'a');
  for (std::size_t i = 1; i < long_prompt.size(); i += 2) long_prompt[i] = ' ';
  auto too_long = http_request(gw.port(), "/v1/completions",
                               json{{"model", "tiny"}, {"max_tokens", 4}, {"prompt", long_prompt}}.dump());
  EXPECT_EQ(too_long.status, 400) << too_long.body;
  EXPECT_EQ(json::parse(too_long.body)["error"]["code"], "context_length_exceeded");
  auto emb = http_request(gw.port(), "/v1/embeddings", R"({"model":"tiny","input":"x"})");
  EXPECT_EQ(emb.status, 400);
}

TEST(local_target, a_model_that_does_not_load_leaves_the_target_unavailable_and_fallbacks_serve) {
  fake_upstream hosted;
  gateway_harness gw(local_config("/nonexistent/model.gguf",
                                  "  hosted:\n    base_url: " + hosted.base_url() + "\n",
                                  "models:\n  m: [loc, hosted]\n  only-local: loc\n"));
  auto r = http_request(gw.port(), "/v1/chat/completions", R"({"model":"m","messages":[{"role":"user","content":"hi"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-tollgate-target"), "hosted");
  EXPECT_NE(r.header("x-tollgate-reason").find("local model not loaded"), std::string::npos) << r.header("x-tollgate-reason");
  auto none = http_request(gw.port(), "/v1/chat/completions",
                           R"({"model":"only-local","messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(none.status, 503);
}

TEST(local_target, stories15m_tells_a_story) {
  const auto model = stories_model();
  if (!std::filesystem::exists(model)) {
    if (std::getenv("CI") && std::string(std::getenv("CI")) == "true")
      FAIL() << model << " is missing: run scripts/setup.sh and scripts/models.sh";
    GTEST_SKIP() << model << " not found (scripts/setup.sh && scripts/models.sh)";
  }
  gateway_harness gw(local_config(model));
  auto r = http_request(gw.port(), "/v1/completions",
                        R"({"model":"tiny","max_tokens":24,"temperature":0,"prompt":"Once upon a time"})");
  ASSERT_EQ(r.status, 200) << r.body;
  // llama.cpp's greedy continuation of this prompt (../shared/data/engine/README.md).
  EXPECT_EQ(json::parse(r.body)["choices"][0]["text"].get<std::string>().rfind(", there was a little girl named Lily.", 0), 0u)
      << r.body;
}

namespace {
// The value of an unlabelled-by-anything-but-target gauge line in /metrics ("name{target=\"t\"} v").
long metric(std::uint16_t port, const std::string& name, const std::string& target) {
  auto body = http_request(port, "/metrics", "", {.method = "GET"}).body;
  const std::string key = name + "{target=\"" + target + "\"} ";
  auto at = body.find(key);
  return at == std::string::npos ? -1 : std::stol(body.substr(at + key.size()));
}
}  // namespace

TEST(local_target, a_client_that_goes_away_cancels_its_generation_and_frees_the_cache) {
  // stories15M: slow enough (~1-3 ms per token) that 240 tokens outlast the client.
  const auto model = stories_model();
  if (!std::filesystem::exists(model)) {
    if (std::getenv("CI") && std::string(std::getenv("CI")) == "true")
      FAIL() << model << " is missing: run scripts/setup.sh and scripts/models.sh";
    GTEST_SKIP() << model << " not found (scripts/setup.sh && scripts/models.sh)";
  }
  gateway_harness gw(local_config(model));
  const long total = metric(gw.port(), "tollgate_engine_kv_pages_total", "loc");
  ASSERT_GT(total, 0);
  EXPECT_EQ(metric(gw.port(), "tollgate_engine_kv_pages_free", "loc"), total);
  {
    // ignore_eos + a long max_tokens: the engine would generate for a while; read the head, then leave.
    test_connection c(gw.port());
    auto head = c.request_partial("/v1/completions",
                                  R"({"model":"tiny","prompt":"a b c","max_tokens":240,"ignore_eos":true,"stream":true})", 1);
    ASSERT_EQ(head.status, 200);
    c.close();
  }
  // Cancelled at the engine's next step: nothing running, every page usable again.
  EXPECT_TRUE(wait_until([&] { return metric(gw.port(), "tollgate_engine_running", "loc") == 0; }));
  EXPECT_TRUE(wait_until([&] { return metric(gw.port(), "tollgate_engine_kv_pages_free", "loc") == total; }));
  // The ledger bills what was generated before the client left (/metrics calls are recorded too).
  const gw::ledger::request_record* cut = nullptr;
  wait_until([&] {
    static std::vector<gw::ledger::request_record> recs;
    recs = gw.records();
    for (const auto& r : recs)
      if (r.endpoint == "/v1/completions") cut = &r;
    return cut != nullptr;
  });
  ASSERT_NE(cut, nullptr);
  EXPECT_EQ(cut->status, 499);
  EXPECT_LT(cut->completion_tokens, 240);
}
