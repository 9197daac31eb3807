#include "providers/usage.h"

#include <cmath>
#include <limits>

namespace gw::providers {

namespace {

using json = nlohmann::json;

// Non-negative integer value of j, or 0 (missing, null, negative, fractional, huge, not a number).
std::int64_t token_count(const json* j) {
  if (j == nullptr) return 0;
  if (j->is_number_unsigned()) {
    const auto v = j->get<std::uint64_t>();
    return v <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
               ? static_cast<std::int64_t>(v)
               : 0;
  }
  if (j->is_number_integer()) {
    const auto v = j->get<std::int64_t>();
    return v >= 0 ? v : 0;
  }
  if (j->is_number_float()) {
    const double v = j->get<double>();
    // 2^62: comfortably inside int64, far beyond any real count.
    if (std::isfinite(v) && v >= 0 && v < 4.6e18 && std::floor(v) == v) {
      return static_cast<std::int64_t>(v);
    }
  }
  return 0;
}

const json* member(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

const json* first_member(const json& obj, const char* key, const char* fallback_key) {
  const json* j = member(obj, key);
  return j != nullptr ? j : member(obj, fallback_key);
}

// ---- estimate_tokens ------------------------------------------------------------------------

enum class byte_class { letter, digit, space, newline, punct, wide3, wide4, invalid };

bool is_ascii_letter(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_ascii_digit(unsigned char c) { return c >= '0' && c <= '9'; }

// Classifies the code point starting at text[i] and returns its length in bytes (>= 1).
std::size_t classify(std::string_view text, std::size_t i, byte_class& cls) {
  const auto c = static_cast<unsigned char>(text[i]);
  if (c < 0x80) {
    if (is_ascii_letter(c)) cls = byte_class::letter;
    else if (is_ascii_digit(c)) cls = byte_class::digit;
    else if (c == '\n' || c == '\r') cls = byte_class::newline;
    else if (c == ' ' || c == '\t' || c == '\v' || c == '\f') cls = byte_class::space;
    else cls = byte_class::punct;  // symbols and other control characters
    return 1;
  }
  std::size_t len = 0;
  if ((c & 0xE0) == 0xC0) len = 2;
  else if ((c & 0xF0) == 0xE0) len = 3;
  else if ((c & 0xF8) == 0xF0) len = 4;
  if (len == 0 || i + len > text.size()) {
    cls = byte_class::invalid;
    return 1;
  }
  for (std::size_t k = 1; k < len; ++k) {
    if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) {
      cls = byte_class::invalid;
      return 1;
    }
  }
  // 2-byte code points are overwhelmingly letters (Latin-1 accents, Greek, Cyrillic, Hebrew, Arabic).
  cls = len == 2 ? byte_class::letter : len == 3 ? byte_class::wide3 : byte_class::wide4;
  return len;
}

// Cost of one run of letters measured in half-characters: an ASCII letter is 2, a 2-byte code point
// 5 (non-English words split into more pieces). Common English words up to 8 letters are single
// tokens in cl100k; longer or rarer ones split roughly every 5 letters.
std::int64_t letter_run_cost(std::size_t half_chars) {
  constexpr std::size_t one_token = 2 * 8;
  constexpr std::size_t per_extra_token = 2 * 5;
  if (half_chars <= one_token) return 1;
  return 1 + static_cast<std::int64_t>((half_chars - one_token + per_extra_token - 1) / per_extra_token);
}

}  // namespace

std::int64_t estimate_tokens(std::string_view text) {
  std::int64_t tokens = 0;
  std::size_t i = 0;
  const std::size_t n = text.size();
  byte_class cls{};
  while (i < n) {
    std::size_t len = classify(text, i, cls);
    switch (cls) {
      case byte_class::letter: {
        std::int64_t ascii = 0;
        std::int64_t wide = 0;
        byte_class next{};
        while (i < n) {
          const std::size_t l = classify(text, i, next);
          if (next != byte_class::letter) break;
          if (l == 1) ++ascii;
          else ++wide;
          i += l;
        }
        tokens += letter_run_cost(static_cast<std::size_t>(2 * ascii + 5 * wide));
        // An accented letter inside an otherwise ASCII word splits it (" r\u00e9", "sum", "\u00e9").
        if (ascii > 0) tokens += wide;
        break;
      }
      case byte_class::digit: {
        std::size_t digits = 0;
        while (i < n && is_ascii_digit(static_cast<unsigned char>(text[i]))) {
          ++digits;
          ++i;
        }
        tokens += static_cast<std::int64_t>((digits + 2) / 3);
        break;
      }
      case byte_class::punct: {
        std::size_t run = 0;
        while (i < n) {
          classify(text, i, cls);
          if (cls != byte_class::punct) break;
          ++run;
          ++i;
        }
        // A single symbol directly before a letter merges into the word (".get", "(self", "'s").
        if (run == 1 && i < n) {
          classify(text, i, cls);
          if (cls == byte_class::letter) break;
        }
        tokens += static_cast<std::int64_t>((run + 1) / 2);
        // Trailing newlines join the symbol run ("{\n", ";\n").
        while (i < n && (text[i] == '\n' || text[i] == '\r')) ++i;
        break;
      }
      case byte_class::space:
      case byte_class::newline: {
        bool saw_newline = false;
        std::size_t trailing_spaces = 0;  // spaces after the last newline
        while (i < n) {
          classify(text, i, cls);
          if (cls == byte_class::newline) {
            saw_newline = true;
            trailing_spaces = 0;
          } else if (cls == byte_class::space) {
            ++trailing_spaces;
          } else {
            break;
          }
          ++i;
        }
        if (saw_newline) ++tokens;
        if (trailing_spaces > 0) {
          bool next_absorbs = false;
          if (i < n) {
            classify(text, i, cls);
            next_absorbs = cls == byte_class::letter || cls == byte_class::punct ||
                           cls == byte_class::wide3 || cls == byte_class::wide4;
          }
          // One space merges into the next word/symbol; what is left is one token of spaces.
          if (trailing_spaces > (next_absorbs ? 1u : 0u)) ++tokens;
        }
        break;
      }
      case byte_class::wide3:
        tokens += 1;
        i += len;
        break;
      case byte_class::wide4:
        tokens += 2;
        i += len;
        break;
      case byte_class::invalid:
        tokens += 1;
        i += 1;
        break;
    }
  }
  return tokens;
}

namespace {

std::int64_t estimate_json_text(const json& j) {
  if (j.is_string()) return estimate_tokens(j.get_ref<const std::string&>());
  if (j.is_array()) {
    std::int64_t sum = 0;
    for (const auto& e : j) {
      if (e.is_string()) sum += estimate_tokens(e.get_ref<const std::string&>());
      else if (e.is_number()) sum += 1;  // a token id
      else if (e.is_array()) sum += estimate_json_text(e);  // batch of token-id arrays
    }
    return sum;
  }
  return 0;
}

std::int64_t estimate_content(const json& content) {
  if (content.is_string()) return estimate_tokens(content.get_ref<const std::string&>());
  if (!content.is_array()) return 0;
  std::int64_t sum = 0;
  for (const auto& part : content) {
    if (part.is_string()) {
      sum += estimate_tokens(part.get_ref<const std::string&>());
    } else if (const json* t = member(part, "text"); t != nullptr && t->is_string()) {
      sum += estimate_tokens(t->get_ref<const std::string&>());
    }
  }
  return sum;
}

}  // namespace

std::int64_t estimate_prompt_tokens(const json& request_body) {
  if (!request_body.is_object()) return 0;
  if (const json* messages = member(request_body, "messages"); messages != nullptr) {
    if (!messages->is_array()) return 0;
    constexpr std::int64_t per_message = 4;  // role and separators
    constexpr std::int64_t reply_priming = 3;
    std::int64_t sum = reply_priming;
    for (const auto& m : *messages) {
      sum += per_message;
      if (!m.is_object()) continue;
      if (const json* c = member(m, "content")) sum += estimate_content(*c);
      if (const json* name = member(m, "name"); name != nullptr && name->is_string()) {
        sum += 1 + estimate_tokens(name->get_ref<const std::string&>());
      }
      if (const json* calls = member(m, "tool_calls"); calls != nullptr && calls->is_array()) {
        for (const auto& call : *calls) {
          const json* fn = member(call, "function");
          if (fn == nullptr) continue;
          for (const char* key : {"name", "arguments"}) {
            if (const json* v = member(*fn, key); v != nullptr && v->is_string()) {
              sum += estimate_tokens(v->get_ref<const std::string&>());
            }
          }
        }
      }
    }
    return sum;
  }
  if (const json* prompt = member(request_body, "prompt")) return estimate_json_text(*prompt);
  if (const json* input = member(request_body, "input")) return estimate_json_text(*input);
  return 0;
}

// ---- extraction ------------------------------------------------------------------------------

std::optional<usage> extract_usage(const json& body) {
  const json* u = member(body, "usage");
  if (u == nullptr || !u->is_object()) return std::nullopt;
  usage out;
  out.present = true;
  out.prompt_tokens = token_count(first_member(*u, "prompt_tokens", "input_tokens"));
  out.completion_tokens = token_count(first_member(*u, "completion_tokens", "output_tokens"));
  const json* details = first_member(*u, "prompt_tokens_details", "input_tokens_details");
  if (details != nullptr) out.cached_prompt_tokens = token_count(member(*details, "cached_tokens"));
  return out;
}

std::optional<usage> extract_usage(std::string_view json_text) {
  json body = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return std::nullopt;
  return extract_usage(body);
}

// ---- stream_accumulator ----------------------------------------------------------------------

bool stream_accumulator::is_usage_only_chunk(const json& chunk) {
  if (!chunk.is_object()) return false;
  const auto choices = chunk.find("choices");
  const auto u = chunk.find("usage");
  return choices != chunk.end() && choices->is_array() && choices->empty() && u != chunk.end() &&
         u->is_object();
}

void stream_accumulator::add(std::string_view data_payload) {
  if (data_payload == "[DONE]") return;
  json chunk = json::parse(data_payload, nullptr, /*allow_exceptions=*/false);
  if (chunk.is_discarded()) return;
  add_chunk(chunk);
}

void stream_accumulator::add_chunk(const json& chunk) {
  if (!chunk.is_object()) return;
  ++chunks_;
  if (auto u = extract_usage(chunk)) last_usage_ = *u;
  const json* choices = member(chunk, "choices");
  if (choices == nullptr || !choices->is_array()) return;
  const auto append = [this](const json* s) {
    if (s != nullptr && s->is_string()) text_ += s->get_ref<const std::string&>();
  };
  for (const auto& choice : *choices) {
    append(member(choice, "text"));
    const json* delta = member(choice, "delta");
    if (delta == nullptr) continue;
    append(member(*delta, "content"));
    append(member(*delta, "reasoning_content"));
    if (const json* calls = member(*delta, "tool_calls"); calls != nullptr && calls->is_array()) {
      for (const auto& call : *calls) {
        if (const json* fn = member(call, "function")) {
          append(member(*fn, "name"));
          append(member(*fn, "arguments"));
        }
      }
    }
  }
}

usage stream_accumulator::finish(std::int64_t estimated_prompt_tokens) const {
  if (last_usage_) return *last_usage_;
  usage out;
  out.prompt_tokens = estimated_prompt_tokens < 0 ? 0 : estimated_prompt_tokens;
  out.completion_tokens = estimate_tokens(text_);
  out.estimated = true;
  return out;
}

namespace {
// End of the JSON object starting at body[open] ('{'), honouring strings; npos when unbalanced.
std::size_t object_end(std::string_view body, std::size_t open) {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = open; i < body.size(); ++i) {
    char c = body[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{') ++depth;
    else if (c == '}' && --depth == 0) return i + 1;
  }
  return std::string_view::npos;
}
}  // namespace

std::optional<usage> extract_response_usage(std::string_view body, bool* parsed_all) {
  if (parsed_all) *parsed_all = false;
  constexpr std::string_view key = "\"usage\"";
  auto pos = body.rfind(key);
  if (pos != std::string_view::npos && pos > 0 && body[pos - 1] != '\\') {
    std::size_t i = pos + key.size();
    while (i < body.size() && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t')) ++i;
    if (i < body.size() && body[i] == ':') {
      ++i;
      while (i < body.size() && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t')) ++i;
      if (i < body.size() && body[i] == '{') {
        auto end = object_end(body, i);
        if (end != std::string_view::npos) {
          auto obj = nlohmann::json::parse(body.substr(i, end - i), nullptr, false);
          if (!obj.is_discarded() && obj.is_object() &&
              (obj.contains("prompt_tokens") || obj.contains("completion_tokens") || obj.contains("input_tokens"))) {
            nlohmann::json wrapper;
            wrapper["usage"] = std::move(obj);
            if (auto u = extract_usage(wrapper)) return u;
          }
        }
      }
    }
  }
  if (parsed_all) *parsed_all = true;
  auto full = nlohmann::json::parse(body, nullptr, false);
  if (full.is_discarded()) return std::nullopt;
  return extract_usage(full);
}

}  // namespace gw::providers
