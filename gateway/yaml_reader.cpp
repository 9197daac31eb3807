// YAML reading with FILE:LINE: KEY errors (contracts in yaml_reader.h).
#include "gateway/yaml_reader.h"

#include <algorithm>
#include <cctype>

namespace gw::gateway {

namespace {

// Case-insensitive Levenshtein distance.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                                       std::tolower(static_cast<unsigned char>(b[j - 1]))
                                   ? 0
                                   : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string join_path(const std::string& path, const std::string& name) {
  return path.empty() ? name : path + "." + name;
}

}  // namespace

int line_of(const YAML::Node& n, int fallback) {
  const YAML::Mark m = n.Mark();
  return m.line >= 0 ? m.line + 1 : fallback;
}

std::string kind_of(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a single value";
    default:
      return "nothing";
  }
}

std::string join_list(const key_list& items) {
  std::string s;
  for (std::string_view i : items) {
    if (!s.empty()) s += ", ";
    s += i;
  }
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string did_you_mean(std::string_view word, const key_list& candidates) {
  std::string_view best;
  std::size_t best_distance = 3;
  for (std::string_view c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_distance && d < word.size()) {  // "x" is not a typo of "t"
      best = c;
      best_distance = d;
    }
  }
  if (best.empty() && word.size() >= 4) {  // a truncated key, e.g. "connect" for "connect_ms"
    for (std::string_view c : candidates) {
      if (c.size() > word.size() && iequals(c.substr(0, word.size()), word)) {
        best = c;
        break;
      }
    }
  }
  if (best.empty()) return {};
  return " (did you mean '" + std::string(best) + "'?)";
}

int yaml_entry::line() const { return value.IsScalar() ? line_of(value, key_line) : key_line; }

const yaml_entry* find_entry(const std::vector<yaml_entry>& entries, std::string_view name) {
  for (const yaml_entry& e : entries) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

void yaml_reader::fail(int line, const std::string& key, const std::string& message) const {
  throw config_error(file_, line, key, message);
}

YAML::Node yaml_reader::load(const std::string& text, bool with_column) const {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {  // ParserException and the rare others carry a mark
    const int lines = static_cast<int>(std::count(text.begin(), text.end(), '\n')) +
                      (text.empty() || text.back() == '\n' ? 0 : 1);
    const int line = std::clamp(e.mark.line + 1, 1, std::max(lines, 1));
    fail(line, "",
         "YAML syntax error: " + e.msg +
             (with_column && e.mark.column >= 0 ? " (column " + std::to_string(e.mark.column + 1) + ")" : ""));
  }
}

std::vector<yaml_entry> yaml_reader::map_entries(const YAML::Node& n, const std::string& path, int line,
                                                 const key_list* known) const {
  if (!n.IsMap()) fail(line, path, "expected a map, got " + kind_of(n));
  std::vector<yaml_entry> out;
  for (auto it = n.begin(); it != n.end(); ++it) {
    // Copies: the iterator hands out a temporary pair, a reference into it would dangle.
    const YAML::Node k = it->first;
    const YAML::Node v = it->second;
    const int kl = line_of(k, line);
    if (!k.IsScalar()) fail(kl, path, "map keys must be plain strings, got " + kind_of(k));
    const std::string& name = k.Scalar();
    const std::string p = join_path(path, name);
    if (const yaml_entry* prev = find_entry(out, name)) {
      fail(kl, p, "duplicate key (first set on line " + std::to_string(prev->key_line) + ")");
    }
    if (known && std::find(known->begin(), known->end(), name) == known->end()) {
      fail(kl, p,
           "unknown key '" + name + "'" +
               (hint_ == unknown_key_hint::closest ? did_you_mean(name, *known)
                                                   : " (expected one of: " + join_list(*known) + ")"));
    }
    out.push_back(yaml_entry{name, p, kl, v});
  }
  return out;
}

std::vector<yaml_entry> yaml_reader::map_entries(const yaml_entry& e, const key_list* known) const {
  return map_entries(e.value, e.path, e.key_line, known);
}

std::vector<yaml_entry> yaml_reader::list_items(const yaml_entry& e) const {
  if (!e.value.IsSequence()) fail(e.key_line, e.path, "expected a list, got " + kind_of(e.value));
  std::vector<yaml_entry> out;
  std::size_t i = 0;
  for (const YAML::Node& item : e.value) {
    const std::string idx = "[" + std::to_string(i++) + "]";
    out.push_back(yaml_entry{idx, e.path + idx, line_of(item, e.key_line), item});
  }
  return out;
}

const std::string& yaml_reader::raw_scalar(const yaml_entry& e, std::string_view expected) const {
  if (!e.value.IsScalar()) {
    fail(e.key_line, e.path, "expected " + std::string(expected) + ", got " + kind_of(e.value));
  }
  return e.value.Scalar();
}

}  // namespace gw::gateway
