#pragma once
// Chat templates: turns OpenAI-style chat messages into a model's prompt text by rendering the
// model's own `tokenizer.chat_template` (a Jinja2 template from GGUF metadata / tokenizer_config.json)
// with a built-in Jinja2-subset interpreter (local_engine/jinja_*.h).
//
// Rendering follows Hugging Face's apply_chat_template: trim_blocks and lstrip_blocks on; the
// template sees `messages`, `tools` (None when absent), `documents` (None), `add_generation_prompt`,
// `bos_token`, `eos_token` and every key of extra_context (e.g. enable_thinking); raise_exception()
// and strftime_now() (local time) exist; tojson keeps key order and does not HTML-escape.
//
// Message data passes through as given (a null stays None), with these adjustments:
//  - content arrays: when every part is {"type": "text", "text": ...} the parts are joined into one
//    string with "\n" between them, unless the template iterates message content itself
//    (`for part in message['content']`, e.g. Gemma 3, Mistral Small 3.x), which then gets the array.
//    Arrays holding other parts (images) always pass through unchanged.
//  - tool calls: `function.arguments` strings holding a JSON object are parsed into objects, the form
//    Hugging Face templates expect (`tool_call.arguments | tojson`).
//  - retries: when rendering fails, it is retried with tool-call arguments as the original strings
//    (templates that concatenate them, e.g. DeepSeek R1), then with null content as "" (templates
//    that use it as a string, e.g. Qwen3 on tool-call turns), then both; a retry runs only if it
//    changes the input. An attempt ending in raise_exception() (Gemma 2, old Mistral rejecting a
//    system role) is retried once with a leading system message merged into the following user
//    message ("<system>\n<user>", as llama.cpp does). The first attempt's error is reported.
//
// Thread safety: a parsed template is immutable; render() may run concurrently.
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace gw::local_engine {

namespace jinja {
struct program;
struct render_limits;
}  // namespace jinja

struct chat_template_inputs {
  // ordered_json keeps the request's key order, which tojson reproduces (tools, tool arguments).
  nlohmann::ordered_json messages;  // [{role, content, tool_calls?, tool_call_id?, name?, ...}]
  nlohmann::ordered_json tools;     // null or the OpenAI tools array
  bool add_generation_prompt = true;
  std::string bos_token, eos_token;
  nlohmann::ordered_json extra_context;  // object of extra template variables, e.g. {"enable_thinking": false}
};

class chat_template {
 public:
  // Parses `source`. nullptr + *error ("line 3, column 14: unknown filter 'frobnicate'") on failure.
  static std::unique_ptr<chat_template> parse(std::string_view source, std::string* error);
  ~chat_template();
  chat_template(const chat_template&) = delete;
  chat_template& operator=(const chat_template&) = delete;

  // The prompt text, or nullopt + *error ("line 7: raise_exception: Conversation roles must
  // alternate ...", "line 2: template exceeded its step limit ...") on failure.
  std::optional<std::string> render(const chat_template_inputs& in, std::string* error) const;
  // The same under explicit limits (default: jinja::render_limits{}).
  std::optional<std::string> render(const chat_template_inputs& in, const jinja::render_limits& limits,
                                    std::string* error) const;

  // Whether the template renders content-part arrays itself (see the header comment).
  bool iterates_content_parts() const;

 private:
  chat_template();
  std::unique_ptr<jinja::program> program_;
};

// A ChatML template ("<|im_start|>role\ncontent<|im_end|>\n" ... "<|im_start|>assistant\n") for
// models without a chat template of their own.
std::string_view chatml_template();

}  // namespace gw::local_engine
