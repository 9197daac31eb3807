// Chat templates (see chat_template.h): turns the request into template variables and runs the
// Jinja interpreter, retrying with adapted messages when a template rejects the input as given.
#include "local_engine/chat_template.h"

#include <utility>
#include <vector>

#include "local_engine/jinja_interpreter.h"
#include "local_engine/jinja_parser.h"

namespace gw::local_engine {

namespace {

using ojson = nlohmann::ordered_json;

// The text of a content array made only of text parts, or nullopt.
std::optional<std::string> text_only_content(const ojson& content) {
  if (!content.is_array() || content.empty()) return std::nullopt;
  std::string text;
  bool first = true;
  for (const ojson& part : content) {
    if (!part.is_object()) return std::nullopt;
    auto type = part.find("type");
    auto t = part.find("text");
    if (type == part.end() || !type->is_string() || *type != "text" || t == part.end() || !t->is_string())
      return std::nullopt;
    if (!first) text += '\n';
    first = false;
    text += t->get_ref<const std::string&>();
  }
  return text;
}

// Tool calls with their `function.arguments` JSON strings parsed into objects (Hugging Face
// templates expect dicts there; the OpenAI wire format carries strings). Sets *converted when one was.
ojson object_arguments(const ojson& tool_calls, bool* converted) {
  ojson out = tool_calls;
  for (ojson& call : out) {
    if (!call.is_object()) continue;
    auto fn = call.find("function");
    if (fn == call.end() || !fn->is_object()) continue;
    auto args = fn->find("arguments");
    if (args == fn->end() || !args->is_string()) continue;
    ojson parsed = ojson::parse(args->get_ref<const std::string&>(), nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_object()) continue;
    *args = std::move(parsed);
    *converted = true;
  }
  return out;
}

struct message_options {
  bool keep_parts = false;             // pass content-part arrays through
  bool objects_for_arguments = true;   // parse tool-call argument strings into objects
  bool empty_for_null_content = false; // "content": null -> ""
};

// What an adaptation changed in the messages (so that retries that would change nothing are skipped).
struct adaptations {
  bool arguments_parsed = false;
  bool null_content = false;
};

// One message as a template value, with text-only content arrays joined (unless the template
// wants the parts) and the adaptations of `opt`. content_override replaces the content.
jinja::value message_value(const ojson& message, const message_options& opt, const std::string* content_override,
                           adaptations* seen) {
  if (!message.is_object()) return jinja::value::from_json(message);
  std::vector<std::pair<jinja::value, jinja::value>> entries;
  entries.reserve(message.size());
  for (auto it = message.begin(); it != message.end(); ++it) {
    jinja::value v;
    if (it.key() == "content" && content_override) {
      v = jinja::value::string(*content_override);
    } else if (it.key() == "content" && it.value().is_null()) {
      seen->null_content = true;
      v = opt.empty_for_null_content ? jinja::value::string("") : jinja::value::none();
    } else if (it.key() == "content" && !opt.keep_parts) {
      if (auto text = text_only_content(it.value())) v = jinja::value::string(std::move(*text));
      else v = jinja::value::from_json(it.value());
    } else if (it.key() == "tool_calls" && opt.objects_for_arguments && it.value().is_array()) {
      v = jinja::value::from_json(object_arguments(it.value(), &seen->arguments_parsed));
    } else {
      v = jinja::value::from_json(it.value());
    }
    entries.emplace_back(jinja::value::string(it.key()), std::move(v));
  }
  return jinja::value::dict(std::move(entries));
}

std::string role_of(const ojson& m) {
  if (!m.is_object()) return "";
  auto r = m.find("role");
  return r != m.end() && r->is_string() ? r->get<std::string>() : "";
}

// The content of a message as a string (a string, or a text-only part array), if it is one.
std::optional<std::string> string_content(const ojson& m) {
  auto c = m.find("content");
  if (c == m.end()) return std::nullopt;
  if (c->is_string()) return c->get<std::string>();
  return text_only_content(*c);
}

// The template's `messages`. merge_system: the leading system message merged into the following
// user message; nullopt when the conversation does not start with system + user (both text).
std::optional<std::vector<jinja::value>> messages_value(const ojson& messages, const message_options& opt,
                                                        bool merge_system, adaptations* seen) {
  std::vector<jinja::value> out;
  out.reserve(messages.size());
  size_t first = 0;
  if (merge_system) {
    if (messages.size() < 2 || role_of(messages[0]) != "system" || role_of(messages[1]) != "user") return std::nullopt;
    auto system = string_content(messages[0]);
    auto user = string_content(messages[1]);
    if (!system || !user) return std::nullopt;
    std::string merged = *system + "\n" + *user;
    out.push_back(message_value(messages[1], opt, &merged, seen));
    first = 2;
  }
  for (size_t i = first; i < messages.size(); ++i) out.push_back(message_value(messages[i], opt, nullptr, seen));
  return out;
}

}  // namespace

chat_template::chat_template() = default;
chat_template::~chat_template() = default;

std::unique_ptr<chat_template> chat_template::parse(std::string_view source, std::string* error) {
  std::unique_ptr<jinja::program> prog = jinja::parse_template(source, error);
  if (!prog) return nullptr;
  std::unique_ptr<chat_template> t(new chat_template());
  t->program_ = std::move(prog);
  return t;
}

bool chat_template::iterates_content_parts() const { return program_->iterates_content; }

std::optional<std::string> chat_template::render(const chat_template_inputs& in, std::string* error) const {
  return render(in, jinja::render_limits{}, error);
}

std::optional<std::string> chat_template::render(const chat_template_inputs& in, const jinja::render_limits& limits,
                                                 std::string* error) const {
  if (!in.messages.is_array()) {
    if (error) *error = "messages must be an array";
    return std::nullopt;
  }
  if (!in.extra_context.is_null() && !in.extra_context.is_object()) {
    if (error) *error = "extra_context must be an object";
    return std::nullopt;
  }
  auto globals_with = [&](std::vector<jinja::value> messages) {
    std::vector<std::pair<std::string, jinja::value>> globals;
    globals.emplace_back("messages", jinja::value::list(std::move(messages)));
    globals.emplace_back("tools", jinja::value::from_json(in.tools));
    globals.emplace_back("documents", jinja::value::none());
    globals.emplace_back("add_generation_prompt", jinja::value::boolean(in.add_generation_prompt));
    globals.emplace_back("bos_token", jinja::value::string(in.bos_token));
    globals.emplace_back("eos_token", jinja::value::string(in.eos_token));
    if (in.extra_context.is_object())
      for (auto it = in.extra_context.begin(); it != in.extra_context.end(); ++it) {
        jinja::value v = jinja::value::from_json(it.value());
        bool replaced = false;
        for (auto& [k, old] : globals)
          if (k == it.key()) {
            old = v;
            replaced = true;
          }
        if (!replaced) globals.emplace_back(it.key(), std::move(v));
      }
    return globals;
  };

  // Attempts, in order: the messages as given (tool-call arguments as objects, null content as
  // None); then, only when the first attempt fails and the change applies, tool-call arguments as
  // the original strings (templates that concatenate them, e.g. DeepSeek R1), null content as ""
  // (templates that apply string operations to it, e.g. Qwen3), and both. An attempt that ends in
  // raise_exception() is retried once with the system message merged into the first user message.
  // The first attempt's error is the one reported.
  struct variant {
    bool objects, empty_null;
  };
  static constexpr variant variants[] = {{true, false}, {false, false}, {true, true}, {false, true}};
  std::string first_error;
  adaptations applicable;
  for (const variant& v : variants) {
    if (&v != &variants[0] && ((!v.objects && !applicable.arguments_parsed) || (v.empty_null && !applicable.null_content)))
      continue;
    message_options opt;
    opt.keep_parts = program_->iterates_content;
    opt.objects_for_arguments = v.objects;
    opt.empty_for_null_content = v.empty_null;
    bool raised = false;
    try {
      adaptations seen;
      auto messages = messages_value(in.messages, opt, false, &seen);
      if (&v == &variants[0]) applicable = seen;
      jinja::interpreter interp(limits);
      std::string attempt_error;
      if (auto out = interp.render(*program_, globals_with(std::move(*messages)), &attempt_error)) return out;
      if (first_error.empty()) first_error = std::move(attempt_error);
      raised = interp.raised();
    } catch (const std::exception& e) {
      if (error) *error = std::string("chat template inputs: ") + e.what();
      return std::nullopt;
    }
    if (raised) {
      try {
        adaptations ignored;
        if (auto merged = messages_value(in.messages, opt, true, &ignored)) {
          jinja::interpreter interp(limits);
          std::string retry_error;
          if (auto out = interp.render(*program_, globals_with(std::move(*merged)), &retry_error)) return out;
        }
      } catch (const std::exception&) {
        // Best effort: the first error stands.
      }
    }
  }
  if (error) *error = std::move(first_error);
  return std::nullopt;
}

std::string_view chatml_template() {
  static constexpr std::string_view tmpl =
      "{%- for message in messages -%}\n"
      "{{- '<|im_start|>' + message['role'] + '\\n' -}}\n"
      "{%- if message['content'] is string -%}{{- message['content'] -}}{%- endif -%}\n"
      "{{- '<|im_end|>\\n' -}}\n"
      "{%- endfor -%}\n"
      "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}\n";
  return tmpl;
}

}  // namespace gw::local_engine
