// Engine facade on the tiny reference models: options and errors, chat prompts rendered with the
// models' own templates (Llama 3, Qwen 3) or an override, text prompts, and generation streamed
// as text through the scheduler.
#include "local_engine/engine.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "local_engine/tokenizer.h"
#include "tests/support/test_env.h"

namespace gw::local_engine {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path model_path(const fs::path& shared, const std::string& file) {
  return shared / "data" / "engine" / "models" / file;
}

std::unique_ptr<engine> open_engine(const fs::path& path, engine_options options = {}) {
  options.model_path = path.string();
  options.threads = 2;
  std::string error;
  auto e = engine::create(options, &error);
  EXPECT_TRUE(e) << error;
  return e;
}

// True when `s` is well-formed UTF-8.
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += n;
  }
  return true;
}

// `s` with every ill-formed sequence replaced by U+FFFD, one per maximal subpart (the Unicode
// recommended practice, which the detokenizer follows).
std::string repair_utf8(const std::string& s) {
  std::string out;
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  while (i < s.size()) {
    const unsigned char c = byte(i);
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // range of the second byte
    if (c < 0x80) len = 1;
    else if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c == 0xe0) len = 3, lo = 0xa0;
    else if (c == 0xed) len = 3, hi = 0x9f;
    else if (c >= 0xe1 && c <= 0xef) len = 3;
    else if (c == 0xf0) len = 4, lo = 0x90;
    else if (c == 0xf4) len = 4, hi = 0x8f;
    else if (c >= 0xf1 && c <= 0xf3) len = 4;
    size_t ok = len == 0 ? 0 : 1;  // bytes of a well-formed prefix
    while (ok > 0 && ok < len && i + ok < s.size()) {
      const unsigned char b = byte(i + ok);
      const bool fits = ok == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xbf);
      if (!fits) break;
      ++ok;
    }
    if (len != 0 && ok == len) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      i += std::max<size_t>(ok, 1);
    }
  }
  return out;
}

struct stream {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> chunks;
  std::vector<int32_t> ids;
  bool done = false;
  generation_stats stats;

  generation_callbacks callbacks() {
    return {[this](const token_output& t) {
              std::lock_guard lock(mu);
              chunks.push_back(t.text);
              if (t.id >= 0) ids.push_back(t.id);
            },
            [this](const generation_stats& s, const std::string&) {
              std::lock_guard lock(mu);
              stats = s;
              done = true;
              cv.notify_all();
            }};
  }
  std::string text() {
    std::string all;
    for (const auto& c : chunks) all += c;
    return all;
  }
  bool wait() {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(120), [&] { return done; });
  }
};

const json conversation = json::parse(R"([
  {"role": "system", "content": "You are terse."},
  {"role": "user", "content": "Hi there"},
  {"role": "assistant", "content": "Hello."},
  {"role": "user", "content": "Name a color."}
])");

TEST(engine, options_set_context_cache_and_name) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  auto e = open_engine(model_path(shared, "tiny-llama.F32.gguf"));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->model_name(), "tiny-llama");
  EXPECT_EQ(e->context_size(), 512);  // the model's, below the 4096 cap
  const auto s = e->current();
  EXPECT_EQ(s.kv_pages_total, 4 * 512 / 16);  // 4 full contexts by default
  EXPECT_EQ(s.kv_pages_free, s.kv_pages_total);
  EXPECT_EQ(s.running, 0);
  EXPECT_EQ(s.queued, 0);

  engine_options smaller;
  smaller.context_size = 128;
  smaller.kv_budget_bytes = 0;
  auto e2 = open_engine(model_path(shared, "tiny-llama.F32.gguf"), smaller);
  ASSERT_TRUE(e2);
  EXPECT_EQ(e2->context_size(), 128);
  EXPECT_EQ(e2->current().kv_pages_total, 4 * 128 / 16);
}

TEST(engine, bad_options_and_files_are_errors) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  std::string error;
  engine_options o;
  o.model_path = model_path(shared, "no-such-model.gguf").string();
  EXPECT_FALSE(engine::create(o, &error));
  EXPECT_NE(error.find("no-such-model.gguf"), std::string::npos) << error;

  o.model_path = model_path(shared, "tiny-llama.F32.gguf").string();
  o.context_size = 1024;  // the model was trained with 512
  EXPECT_FALSE(engine::create(o, &error));
  EXPECT_NE(error.find("512"), std::string::npos) << error;

  o.context_size = 0;
  o.chat_template_override = "{% for m in messages %}{{ m.content ";
  EXPECT_FALSE(engine::create(o, &error));
  EXPECT_NE(error.find("chat template"), std::string::npos) << error;

  o.chat_template_override.clear();
  o.kv_budget_bytes = 100;  // not even one page
  EXPECT_FALSE(engine::create(o, &error));
  EXPECT_NE(error.find("kv cache"), std::string::npos) << error;
}

TEST(engine, chat_prompt_uses_the_llama3_template_with_one_bos) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  auto e = open_engine(model_path(shared, "tiny-llama3.F32.gguf"));
  ASSERT_TRUE(e);
  std::string error;
  const auto ids = e->chat_prompt(conversation, nullptr, &error);
  ASSERT_TRUE(ids) << error;
  const tokenizer& t = e->tok();
  EXPECT_EQ(t.decode(*ids, true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nName a color.<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  // The template writes BOS itself; it is not added a second time. Special tokens are single ids.
  ASSERT_GE(ids->size(), 2u);
  EXPECT_EQ((*ids)[0], t.bos());
  EXPECT_NE((*ids)[1], t.bos());
  EXPECT_EQ((*ids)[1], *t.find_token("<|start_header_id|>"));
  EXPECT_EQ(std::count(ids->begin(), ids->end(), *t.find_token("<|eot_id|>")), 4);
}

TEST(engine, chat_prompt_uses_the_qwen_template_without_bos) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  auto e = open_engine(model_path(shared, "tiny-qwen2.F32.gguf"));
  ASSERT_TRUE(e);
  std::string error;
  const auto ids = e->chat_prompt(conversation, nullptr, &error);
  ASSERT_TRUE(ids) << error;
  const tokenizer& t = e->tok();
  EXPECT_EQ(t.decode(*ids, true),
            "<|im_start|>system\nYou are terse.<|im_end|>\n"
            "<|im_start|>user\nHi there<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n"
            "<|im_start|>user\nName a color.<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ((*ids)[0], *t.find_token("<|im_start|>"));  // add_bos_token is false
  EXPECT_EQ(std::count(ids->begin(), ids->end(), *t.find_token("<|im_end|>")), 4);

  // Tools reach the template.
  const json tools = json::parse(R"([{"type": "function", "function": {"name": "get_color",
      "description": "Pick a color", "parameters": {"type": "object", "properties": {}}}}])");
  const auto with_tools = e->chat_prompt(conversation, tools, &error);
  ASSERT_TRUE(with_tools) << error;
  const std::string text = t.decode(*with_tools, true);
  EXPECT_NE(text.find("<tools>"), std::string::npos) << text;
  EXPECT_NE(text.find("get_color"), std::string::npos) << text;
}

TEST(engine, a_template_override_and_its_errors) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  engine_options o;
  o.chat_template_override =
      "{% for m in messages %}[{{ m.role }}]{{ m.content }}\n{% endfor %}"
      "{% if messages|length > 5 %}{{ raise_exception('too many messages') }}{% endif %}[assistant]";
  auto e = open_engine(model_path(shared, "tiny-llama3.F32.gguf"), o);
  ASSERT_TRUE(e);
  std::string error;
  const auto ids = e->chat_prompt(json::parse(R"([{"role": "user", "content": "Hi"}])"), nullptr, &error);
  ASSERT_TRUE(ids) << error;
  EXPECT_EQ((*ids)[0], e->tok().bos());  // add_bos_token, and this template does not write BOS
  EXPECT_EQ(e->tok().decode(*ids, false), "[user]Hi\n[assistant]");

  json many = json::array();
  for (int i = 0; i < 6; ++i) many.push_back({{"role", "user"}, {"content", "x"}});
  EXPECT_FALSE(e->chat_prompt(many, nullptr, &error));
  EXPECT_NE(error.find("too many messages"), std::string::npos) << error;
}

TEST(engine, text_prompt_adds_bos_as_the_vocabulary_says_and_keeps_special_text) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  auto llama = open_engine(model_path(shared, "tiny-llama.F32.gguf"));
  auto qwen = open_engine(model_path(shared, "tiny-qwen2.F32.gguf"));
  ASSERT_TRUE(llama && qwen);
  const auto a = llama->text_prompt("Hello world");
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a[0], llama->tok().bos());
  EXPECT_EQ(llama->tok().decode(a, false), "Hello world");
  const auto b = qwen->text_prompt("<|im_start|>hi");
  ASSERT_FALSE(b.empty());
  EXPECT_NE(b[0], qwen->tok().bos());
  EXPECT_EQ(std::count(b.begin(), b.end(), *qwen->tok().find_token("<|im_start|>")), 0);
  EXPECT_EQ(qwen->tok().decode(b, true), "<|im_start|>hi");
}

TEST(engine, streamed_text_is_the_decoded_continuation_of_the_prompt) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  auto e = open_engine(model_path(shared, "tiny-llama.F32.gguf"));
  ASSERT_TRUE(e);
  const tokenizer& t = e->tok();
  const auto prompt = e->text_prompt("Once upon a time");
  const std::string head = t.decode(prompt, false);
  int spaced_starts = 0;  // continuations whose first piece carries a leading space (U+2581)
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    generation_request req;
    req.prompt = prompt;
    req.sampling.seed = seed;
    req.max_tokens = 12;
    req.ignore_eos = true;
    stream s;
    engine::submit_status status;
    std::string error;
    ASSERT_GT(e->submit(req, s.callbacks(), &status, &error), 0u) << error;
    ASSERT_TRUE(s.wait());
    EXPECT_EQ(s.stats.finish_reason, "length");
    ASSERT_EQ(s.ids.size(), 12u);
    // Prompt and completion decoded together = the prompt's text followed by the streamed text
    // (the random model also emits byte tokens that do not form characters: the stream carries
    // U+FFFD for those).
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), s.ids.begin(), s.ids.end());
    const std::string whole = t.decode(all, false);
    ASSERT_EQ(whole.substr(0, head.size()), head);
    EXPECT_EQ(s.text(), repair_utf8(whole.substr(head.size()))) << "seed " << seed;
    for (const auto& chunk : s.chunks) EXPECT_TRUE(valid_utf8(chunk));
    spaced_starts += t.token_text(s.ids[0]).substr(0, 3) == "\xE2\x96\x81" ? 1 : 0;
  }
  EXPECT_GT(spaced_starts, 0) << "no continuation started with a spaced piece: the check proved less";
}

TEST(engine, streamed_chunks_are_always_valid_utf8_on_a_byte_level_vocabulary) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  auto e = open_engine(model_path(shared, "tiny-qwen2.F32.gguf"));
  ASSERT_TRUE(e);
  std::string error;
  const auto prompt = e->chat_prompt(conversation, nullptr, &error);
  ASSERT_TRUE(prompt) << error;
  // Sampled at a high temperature: the random model emits lone byte tokens, which split
  // characters; every chunk must still be valid UTF-8.
  int split_tokens = 0;  // tokens whose bytes alone are not valid UTF-8
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    generation_request req;
    req.prompt = *prompt;
    req.sampling.temperature = 1.5f;
    req.sampling.seed = seed;
    req.max_tokens = 64;
    req.ignore_eos = true;
    stream s;
    engine::submit_status status;
    ASSERT_GT(e->submit(req, s.callbacks(), &status, &error), 0u) << error;
    ASSERT_TRUE(s.wait());
    for (const auto& chunk : s.chunks) EXPECT_TRUE(valid_utf8(chunk)) << chunk;
    for (int32_t id : s.ids) split_tokens += valid_utf8(e->tok().token_to_piece(id, false)) ? 0 : 1;
  }
  EXPECT_GT(split_tokens, 0) << "no partial character was generated: the check proved nothing";
}

}  // namespace
}  // namespace gw::local_engine
