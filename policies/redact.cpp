#include "policies/redact.h"

#include <algorithm>

namespace gw::policies {

std::string redaction_map::redact(std::string_view text, std::vector<span_to_redact> spans) {
  std::sort(spans.begin(), spans.end(), [](const auto& a, const auto& b) {
    return a.start != b.start ? a.start < b.start : a.end > b.end;
  });
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  for (const auto& s : spans) {
    if (s.start < pos || s.end > text.size() || s.end <= s.start) continue;  // overlap or bad span
    out.append(text.substr(pos, s.start - pos));
    std::string_view value = text.substr(s.start, s.end - s.start);
    const std::string* placeholder = nullptr;
    for (const auto& [ph, orig] : entries_)
      if (orig == value && ph.compare(1, s.type.size(), s.type) == 0) placeholder = &ph;
    if (!placeholder) {
      int n = 0;
      for (auto& [t, c] : counters_)
        if (t == s.type) n = ++c;
      if (n == 0) {
        counters_.emplace_back(std::string(s.type), 1);
        n = 1;
      }
      entries_.emplace_back("[" + std::string(s.type) + "_" + std::to_string(n) + "]", std::string(value));
      placeholder = &entries_.back().first;
    }
    out += *placeholder;
    pos = s.end;
  }
  out.append(text.substr(pos));
  return out;
}

namespace {

void append_json_escaped(std::string& out, std::string_view v) {
  static const char* hex = "0123456789abcdef";
  for (unsigned char c : v) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

}  // namespace

std::string redaction_map::restore(std::string_view text, bool escape_json) const {
  if (entries_.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t open = text.find('[', pos);
    if (open == std::string_view::npos) break;
    out.append(text.substr(pos, open - pos));
    bool replaced = false;
    for (const auto& [ph, orig] : entries_) {
      if (text.compare(open, ph.size(), ph) == 0) {
        if (escape_json) append_json_escaped(out, orig);
        else out += orig;
        pos = open + ph.size();
        replaced = true;
        break;
      }
    }
    if (!replaced) {
      out += '[';
      pos = open + 1;
    }
  }
  if (pos < text.size()) out.append(text.substr(pos));
  return out;
}

std::size_t redaction_map::partial_suffix(std::string_view text) const {
  std::size_t open = text.rfind('[');
  if (open == std::string_view::npos) return 0;
  std::string_view tail = text.substr(open);
  for (const auto& [ph, orig] : entries_)
    if (tail.size() < ph.size() && ph.compare(0, tail.size(), tail) == 0) return tail.size();
  return 0;
}

}  // namespace gw::policies
