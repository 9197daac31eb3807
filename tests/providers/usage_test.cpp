#include "providers/usage.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace gw::providers {
namespace {

using json = nlohmann::json;

// ---- extract_usage ----------------------------------------------------------------------------

TEST(extract_usage, full_openai_usage) {
  auto u = extract_usage(json::parse(R"({"id":"x","usage":{"prompt_tokens":11,"completion_tokens":5,
      "total_tokens":16,"prompt_tokens_details":{"cached_tokens":3}}})"));
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->prompt_tokens, 11);
  EXPECT_EQ(u->completion_tokens, 5);
  EXPECT_EQ(u->cached_prompt_tokens, 3);
  EXPECT_TRUE(u->present);
  EXPECT_FALSE(u->estimated);
}

TEST(extract_usage, embeddings_usage_without_completion_tokens) {
  auto u = extract_usage(json::parse(R"({"usage":{"prompt_tokens":8,"total_tokens":8}})"));
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->prompt_tokens, 8);
  EXPECT_EQ(u->completion_tokens, 0);
  EXPECT_EQ(u->cached_prompt_tokens, 0);
}

TEST(extract_usage, no_usage_object_is_nullopt) {
  EXPECT_FALSE(extract_usage(json::parse(R"({"id":"x"})")).has_value());
  EXPECT_FALSE(extract_usage(json::parse(R"({"usage":null})")).has_value());
  EXPECT_FALSE(extract_usage(json::parse(R"({"usage":5})")).has_value());
  EXPECT_FALSE(extract_usage(json::parse(R"({"usage":[1,2]})")).has_value());
  EXPECT_FALSE(extract_usage(json::parse(R"([{"usage":{}}])")).has_value());
  EXPECT_FALSE(extract_usage(json(nullptr)).has_value());
  EXPECT_FALSE(extract_usage(json("usage")).has_value());
}

TEST(extract_usage, empty_usage_object_is_present_with_zeros) {
  auto u = extract_usage(json::parse(R"({"usage":{}})"));
  ASSERT_TRUE(u.has_value());
  EXPECT_TRUE(u->present);
  EXPECT_EQ(u->prompt_tokens, 0);
  EXPECT_EQ(u->completion_tokens, 0);
}

TEST(extract_usage, bad_fields_read_as_zero) {
  auto u = extract_usage(json::parse(R"({"usage":{"prompt_tokens":-4,"completion_tokens":"5",
      "prompt_tokens_details":{"cached_tokens":null}}})"));
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->prompt_tokens, 0);
  EXPECT_EQ(u->completion_tokens, 0);
  EXPECT_EQ(u->cached_prompt_tokens, 0);

  u = extract_usage(json::parse(R"({"usage":{"prompt_tokens":3.5,"completion_tokens":7.0,
      "prompt_tokens_details":null}})"));
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->prompt_tokens, 0);      // fractional: ignored
  EXPECT_EQ(u->completion_tokens, 7);  // integral float: accepted
  EXPECT_EQ(u->cached_prompt_tokens, 0);

  u = extract_usage(json::parse(R"({"usage":{"prompt_tokens":18446744073709551615,
      "completion_tokens":true,"prompt_tokens_details":{"cached_tokens":[1]}}})"));
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->prompt_tokens, 0);  // beyond int64
  EXPECT_EQ(u->completion_tokens, 0);
  EXPECT_EQ(u->cached_prompt_tokens, 0);

  u = extract_usage(json::parse(R"({"usage":{"prompt_tokens":1e300,"completion_tokens":null}})"));
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->prompt_tokens, 0);
  EXPECT_EQ(u->completion_tokens, 0);
}

TEST(extract_usage, responses_api_spelling) {
  auto u = extract_usage(json::parse(R"({"usage":{"input_tokens":20,"output_tokens":9,
      "input_tokens_details":{"cached_tokens":4}}})"));
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->prompt_tokens, 20);
  EXPECT_EQ(u->completion_tokens, 9);
  EXPECT_EQ(u->cached_prompt_tokens, 4);
}

TEST(extract_usage, from_text) {
  auto u = extract_usage(std::string_view(R"({"usage":{"prompt_tokens":2,"completion_tokens":1}})"));
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->prompt_tokens, 2);
  EXPECT_EQ(u->completion_tokens, 1);
  EXPECT_FALSE(extract_usage(std::string_view("")).has_value());
  EXPECT_FALSE(extract_usage(std::string_view("{")).has_value());
  EXPECT_FALSE(extract_usage(std::string_view("null")).has_value());
  EXPECT_FALSE(extract_usage(std::string_view("[DONE]")).has_value());
  EXPECT_FALSE(extract_usage(std::string_view("{\"usage\":{\"prompt_tokens\":1}} trailing")).has_value());
  EXPECT_FALSE(extract_usage(std::string_view("\xff\xfe")).has_value());
}

// ---- is_usage_only_chunk ------------------------------------------------------------------------

TEST(stream_accumulator, usage_only_chunk_detection) {
  EXPECT_TRUE(stream_accumulator::is_usage_only_chunk(json::parse(
      R"({"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}})")));
  EXPECT_FALSE(stream_accumulator::is_usage_only_chunk(
      json::parse(R"({"choices":[{"index":0,"delta":{}}],"usage":{"prompt_tokens":1}})")));
  EXPECT_FALSE(stream_accumulator::is_usage_only_chunk(json::parse(R"({"choices":[],"usage":null})")));
  EXPECT_FALSE(stream_accumulator::is_usage_only_chunk(json::parse(R"({"choices":[]})")));
  EXPECT_FALSE(stream_accumulator::is_usage_only_chunk(json::parse(R"({"usage":{"prompt_tokens":1}})")));
  EXPECT_FALSE(stream_accumulator::is_usage_only_chunk(json::parse(R"({"choices":{},"usage":{}})")));
  EXPECT_FALSE(stream_accumulator::is_usage_only_chunk(json::parse("[]")));
}

// ---- stream_accumulator -------------------------------------------------------------------------

std::string chat_chunk(const std::string& content) {
  return json{{"object", "chat.completion.chunk"},
              {"choices", json::array({{{"index", 0}, {"delta", {{"content", content}}}, {"finish_reason", nullptr}}})},
              {"usage", nullptr}}
      .dump();
}

TEST(stream_accumulator, upstream_usage_wins) {
  stream_accumulator acc;
  acc.add(chat_chunk("Hello"));
  acc.add(chat_chunk(" world"));
  acc.add(R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null})");
  acc.add(R"({"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":2,"total_tokens":13,
      "prompt_tokens_details":{"cached_tokens":3}}})");
  acc.add("[DONE]");
  EXPECT_TRUE(acc.saw_usage());
  EXPECT_EQ(acc.text(), "Hello world");
  EXPECT_EQ(acc.chunks(), 4);
  usage u = acc.finish(999);
  EXPECT_TRUE(u.present);
  EXPECT_FALSE(u.estimated);
  EXPECT_EQ(u.prompt_tokens, 11);
  EXPECT_EQ(u.completion_tokens, 2);
  EXPECT_EQ(u.cached_prompt_tokens, 3);
}

TEST(stream_accumulator, last_usage_seen_wins) {
  stream_accumulator acc;
  acc.add(R"({"choices":[{"delta":{"content":"a"}}],"usage":{"prompt_tokens":5,"completion_tokens":1}})");
  acc.add(R"({"choices":[{"delta":{"content":"b"}}],"usage":{"prompt_tokens":5,"completion_tokens":2}})");
  EXPECT_EQ(acc.finish(0).completion_tokens, 2);
}

TEST(stream_accumulator, estimates_without_upstream_usage) {
  stream_accumulator acc;
  for (int i = 0; i < 5; ++i) acc.add(chat_chunk("tok" + std::to_string(i) + " "));
  acc.add("[DONE]");
  EXPECT_FALSE(acc.saw_usage());
  EXPECT_EQ(acc.text(), "tok0 tok1 tok2 tok3 tok4 ");
  usage u = acc.finish(42);
  EXPECT_FALSE(u.present);
  EXPECT_TRUE(u.estimated);
  EXPECT_EQ(u.prompt_tokens, 42);
  EXPECT_EQ(u.completion_tokens, estimate_tokens("tok0 tok1 tok2 tok3 tok4 "));
  EXPECT_GT(u.completion_tokens, 0);
  EXPECT_EQ(u.cached_prompt_tokens, 0);
}

TEST(stream_accumulator, empty_stream_estimates_zero_completion) {
  stream_accumulator acc;
  usage u = acc.finish(-3);
  EXPECT_TRUE(u.estimated);
  EXPECT_EQ(u.prompt_tokens, 0);
  EXPECT_EQ(u.completion_tokens, 0);
}

TEST(stream_accumulator, completions_text_and_tool_call_arguments) {
  stream_accumulator acc;
  acc.add(R"({"object":"text_completion","choices":[{"text":"Once upon","index":0}]})");
  acc.add(R"({"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[
      {"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]})");
  acc.add(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]})");
  acc.add(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]})");
  EXPECT_EQ(acc.text(), "Once uponget_weather{\"city\":\"Paris\"}");
  EXPECT_TRUE(acc.finish(0).estimated);
}

TEST(stream_accumulator, ignores_garbage) {
  stream_accumulator acc;
  acc.add("not json");
  acc.add("");
  acc.add("[DONE]");
  acc.add("42");
  acc.add(R"({"choices":"nope"})");
  acc.add(R"({"choices":[null,1,{"delta":null},{"delta":{"content":7}}]})");
  EXPECT_EQ(acc.text(), "");
  EXPECT_FALSE(acc.saw_usage());
}

// ---- estimate_tokens ----------------------------------------------------------------------------

struct sample {
  const char* text;
  std::int64_t cl100k;  // real count from OpenAI's cl100k_base encoding (tiktoken)
};

// Real counts: tiktoken's cl100k_base (the first seven also appear in OpenAI's cookbook).
const sample samples[] = {
    {"hello world", 2},
    {"Hello, world!", 4},
    {"The quick brown fox jumps over the lazy dog.", 10},
    {"antidisestablishmentarianism", 6},
    {"2 + 2 = 4", 7},
    // お誕生日おめでとう
    {"\xE3\x81\x8A\xE8\xAA\x95\xE7\x94\x9F\xE6\x97\xA5\xE3\x81\x8A\xE3\x82\x81\xE3\x81\xA7\xE3\x81\xA8\xE3\x81\x86",
     9},
    {"Large language models are neural networks trained on vast amounts of text to predict the next "
     "token in a sequence. During inference, a gateway sits between applications and one or more model "
     "providers, deciding where each request should go.",
     43},
    {"int main(int argc, char** argv) {\n  std::vector<int> values = {1, 2, 3};\n  for (int v : values) {\n"
     "    std::cout << v << \"\\n\";\n  }\n  return 0;\n}\n",
     54},
    {"def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n", 30},
    {R"({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": )"
     R"("What is the capital of France?"}], "temperature": 0.7})",
     40},
    {"Order 1234567 shipped on 2024-03-15 at 14:32:07; total $1,299.99 for 3 items.", 34},
    {"h\xC3\xA9llo \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x8E\x89", 8},  // héllo 日本 🎉
};

TEST(estimate_tokens, within_30_percent_of_cl100k) {
  std::int64_t total_est = 0;
  std::int64_t total_real = 0;
  for (const auto& s : samples) {
    const std::int64_t est = estimate_tokens(s.text);
    const double ratio = static_cast<double>(est) / static_cast<double>(s.cl100k);
    EXPECT_GE(ratio, 0.7) << s.text << ": estimated " << est << ", real " << s.cl100k;
    EXPECT_LE(ratio, 1.3) << s.text << ": estimated " << est << ", real " << s.cl100k;
    total_est += est;
    total_real += s.cl100k;
  }
  // Over a mix of text the per-sample errors largely cancel.
  EXPECT_NEAR(static_cast<double>(total_est) / static_cast<double>(total_real), 1.0, 0.15)
      << "estimated " << total_est << ", real " << total_real;
}

TEST(estimate_tokens, rare_words_are_the_known_weak_spot) {
  // cl100k splits "tiktoken" into "t", "ik", "token": 6 tokens in all, while a length-based
  // estimate sees an ordinary 8-letter word. Short texts full of rare words can be off by a third.
  const std::int64_t est = estimate_tokens("tiktoken is great!");
  EXPECT_GE(est, 6 / 2);
  EXPECT_LE(est, 6 * 3 / 2);
}

TEST(estimate_tokens, tiny_inputs) {
  EXPECT_EQ(estimate_tokens(""), 0);
  EXPECT_EQ(estimate_tokens(" "), 1);
  EXPECT_EQ(estimate_tokens("hello"), 1);
  EXPECT_EQ(estimate_tokens("hello world"), 2);
  EXPECT_EQ(estimate_tokens("123456"), 2);
  EXPECT_EQ(estimate_tokens("1234567"), 3);
}

TEST(estimate_tokens, grows_with_text) {
  const std::string word = "gateway ";
  std::string text;
  std::int64_t last = 0;
  for (int i = 0; i < 50; ++i) {
    text += word;
    const std::int64_t now = estimate_tokens(text);
    EXPECT_GT(now, last);
    last = now;
  }
}

TEST(estimate_tokens, invalid_utf8_is_counted_not_crashed_on) {
  EXPECT_GT(estimate_tokens("\xff\xfe\xfd"), 0);
  EXPECT_GT(estimate_tokens("abc\xE6\x97"), 0);      // truncated 3-byte sequence at the end
  EXPECT_GT(estimate_tokens("\xF0\x9F\x8E"), 0);     // truncated 4-byte sequence
  EXPECT_GT(estimate_tokens(std::string_view("a\0b", 3)), 0);
}

// ---- estimate_prompt_tokens ---------------------------------------------------------------------

TEST(estimate_prompt_tokens, chat_messages_with_string_and_parts) {
  const json body = json::parse(R"({"model":"m","messages":[
      {"role":"system","content":"You are helpful."},
      {"role":"user","content":[{"type":"text","text":"hello world"},
                                {"type":"image_url","image_url":{"url":"https://x/y.png"}}]},
      {"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function",
          "function":{"name":"lookup","arguments":"{\"q\":\"x\"}"}}]}]})");
  const std::int64_t expected = 3 + 3 * 4 + estimate_tokens("You are helpful.") + estimate_tokens("hello world") +
                                estimate_tokens("lookup") + estimate_tokens("{\"q\":\"x\"}");
  EXPECT_EQ(estimate_prompt_tokens(body), expected);
}

TEST(estimate_prompt_tokens, chat_estimate_is_close_to_openai_accounting) {
  // 24 by the OpenAI cookbook's num_tokens_from_messages for gpt-4 (cl100k): 3 reply priming +
  // per message 3 + role (1) + content (6 and 7).
  const json body = json::parse(R"({"model":"gpt-4","messages":[
      {"role":"system","content":"You are a helpful assistant."},
      {"role":"user","content":"What is the capital of France?"}]})");
  const std::int64_t est = estimate_prompt_tokens(body);
  EXPECT_GE(est, 24 * 0.7);
  EXPECT_LE(est, 24 * 1.3);
}

TEST(estimate_prompt_tokens, completions_prompt) {
  EXPECT_EQ(estimate_prompt_tokens(json::parse(R"({"prompt":"hello world"})")), 2);
  EXPECT_EQ(estimate_prompt_tokens(json::parse(R"({"prompt":["hello world","hello"]})")), 3);
  EXPECT_EQ(estimate_prompt_tokens(json::parse(R"({"prompt":[1,2,3]})")), 3);  // token ids
}

TEST(estimate_prompt_tokens, embeddings_input) {
  EXPECT_EQ(estimate_prompt_tokens(json::parse(R"({"model":"e","input":"hello world"})")), 2);
  EXPECT_EQ(estimate_prompt_tokens(json::parse(R"({"input":["hello","world"]})")), 2);
  EXPECT_EQ(estimate_prompt_tokens(json::parse(R"({"input":[[1,2],[3]]})")), 3);
}

TEST(estimate_prompt_tokens, unknown_shapes_are_zero) {
  EXPECT_EQ(estimate_prompt_tokens(json::parse(R"({"model":"m"})")), 0);
  EXPECT_EQ(estimate_prompt_tokens(json::parse(R"({"messages":"nope"})")), 0);
  EXPECT_EQ(estimate_prompt_tokens(json::parse(R"([1,2])")), 0);
  EXPECT_EQ(estimate_prompt_tokens(json(nullptr)), 0);
  EXPECT_EQ(estimate_prompt_tokens(json::parse(R"({"messages":[null, 3]})")), 3 + 2 * 4);
}

}  // namespace
}  // namespace gw::providers

TEST(usage_fast_path, finds_usage_without_full_parse_and_falls_back_when_needed) {
  using gw::providers::extract_response_usage;
  bool full = true;
  auto u = extract_response_usage(
      R"({"id":"x","choices":[{"message":{"content":"the \"usage\": {\"prompt_tokens\": 999}"}}],)"
      R"( "usage" : {"prompt_tokens":12,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":2}}})",
      &full);
  ASSERT_TRUE(u);
  EXPECT_FALSE(full);
  EXPECT_EQ(u->prompt_tokens, 12);
  EXPECT_EQ(u->completion_tokens, 4);
  EXPECT_EQ(u->cached_prompt_tokens, 2);
  // An escaped look-alike inside a string is not a key: the real usage (first) is found.
  auto v = extract_response_usage(
      R"({"usage":{"prompt_tokens":3,"completion_tokens":1},"choices":[{"text":"x \"usage\": {\"a\":1}"}]})", &full);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->prompt_tokens, 3);
  // The last "usage" key is not the usage object: the full parse takes over.
  auto w = extract_response_usage(R"({"usage":{"prompt_tokens":5,"completion_tokens":2},"meta":{"usage":"n/a"}})", &full);
  ASSERT_TRUE(w);
  EXPECT_TRUE(full);
  EXPECT_EQ(w->prompt_tokens, 5);
  EXPECT_FALSE(extract_response_usage(R"({"choices":[]})"));
  EXPECT_FALSE(extract_response_usage("not json"));
}
