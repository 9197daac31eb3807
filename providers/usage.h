#pragma once
// Token usage: read from OpenAI-style responses, or estimated when an upstream reports none.
// Pure functions and a per-stream accumulator; no I/O, nothing here throws on bad input.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace gw::providers {

struct usage {
  std::int64_t prompt_tokens = 0;         // includes cached_prompt_tokens (OpenAI semantics)
  std::int64_t completion_tokens = 0;
  std::int64_t cached_prompt_tokens = 0;  // prompt tokens served from the upstream's prompt cache
  bool present = false;    // true when the numbers come from an upstream usage object
  bool estimated = false;  // true when the numbers come from estimate_tokens()
};

// Reads body["usage"]: prompt_tokens, completion_tokens, prompt_tokens_details.cached_tokens
// (Responses-API spellings input_tokens, output_tokens, input_tokens_details.cached_tokens are used
// when the OpenAI names are absent). A field that is missing, null, negative, fractional, not a
// number or beyond int64 reads as 0. Returns nullopt when body is not an object or has no usage
// object (missing or null); otherwise present = true.
std::optional<usage> extract_usage(const nlohmann::json& body);

// Same, from JSON text; nullopt when the text is not valid JSON. Never throws.
std::optional<usage> extract_usage(std::string_view json_text);
// Text overloads: nlohmann::json converts implicitly from strings, so without these a std::string
// or literal argument would be ambiguous.
inline std::optional<usage> extract_usage(const std::string& json_text) {
  return extract_usage(std::string_view(json_text));
}
inline std::optional<usage> extract_usage(const char* json_text) {
  return extract_usage(std::string_view(json_text));
}

// Approximate cl100k-style token count of text, for when an upstream reports no usage.
// Emulates the GPT-4 pre-tokenizer on bytes, then charges each piece:
// - a run of letters (ASCII, or 2-byte UTF-8 such as accented Latin, Cyrillic, Greek, which count
//   as 2.5 letters each), absorbing one preceding space or single symbol (" the", ".get", "'s"):
//   1 token up to 8 letters, then 1 more per 5 letters started; plus 1 per accented letter in an
//   otherwise ASCII word ("r\u00e9sum\u00e9" splits around its accents);
// - digits: 1 token per group of up to 3;
// - a run of ASCII symbols (absorbing one preceding space and trailing newlines): 1 token per 2;
// - whitespace: free when it is the single space before a word or symbol; a run containing newlines
//   costs 1, and so does a run of several spaces or a lone space before a digit;
// - 3-byte UTF-8 code points (CJK, kana, ...): 1 token each; 4-byte ones (emoji, ...): 2 each;
//   invalid UTF-8: 1 per byte.
// Measured against cl100k: within ±10% on English prose, C++/Python/JS code, Markdown and chat
// JSON, Russian, Chinese and Japanese; about -20% on base64/hash-heavy JSON and -25% on German.
// Short texts of rare words can be off by a third ("tiktoken": 1 estimated, 3 real).
// Linear time, no allocation.
// Usage of a whole non-streaming response body without building its full DOM: finds the last
// top-level-looking `"usage": {...}` object and parses only that; falls back to a full parse when
// that does not work out. `parsed_all` (optional) receives whether the fallback ran.
std::optional<usage> extract_response_usage(std::string_view body, bool* parsed_all = nullptr);

std::int64_t estimate_tokens(std::string_view text);

// Estimated prompt size of an OpenAI request body: chat `messages` (content as a string or an array
// of {"type":"text","text":...} parts, plus name and tool-call arguments, + 4 tokens per message and
// 3 for the reply priming), else completions `prompt` (string or array of strings), else
// embeddings `input` (string or array of strings). Token-id arrays count 1 per id. Anything else: 0.
std::int64_t estimate_prompt_tokens(const nlohmann::json& request_body);

// Follows one streamed chat/completions response. Feed it the `data` payload of every SSE event
// (the "[DONE]" marker and unparsable payloads are ignored). Not thread-safe.
class stream_accumulator {
 public:
  void add(std::string_view data_payload);
  // Same, for a payload the caller already parsed.
  void add_chunk(const nlohmann::json& chunk);

  // Upstream usage when any chunk carried a usage object (the last one wins), else an estimate:
  // prompt = estimated_prompt_tokens, completion = estimate_tokens(accumulated text),
  // estimated = true.
  usage finish(std::int64_t estimated_prompt_tokens) const;

  bool saw_usage() const { return last_usage_.has_value(); }
  // Completion text seen so far, all choices together in arrival order: choices[].text,
  // choices[].delta.content, delta.reasoning_content (billed as completion by the upstreams that
  // send it) and delta.tool_calls[].function.{name,arguments}.
  const std::string& text() const { return text_; }
  std::int64_t chunks() const { return chunks_; }

  // True for the extra chunk OpenAI sends with stream_options.include_usage: `choices` is an empty
  // array and `usage` is an object.
  static bool is_usage_only_chunk(const nlohmann::json& chunk);

 private:
  std::optional<usage> last_usage_;
  std::string text_;
  std::int64_t chunks_ = 0;
};

}  // namespace gw::providers
