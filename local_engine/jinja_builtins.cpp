// Filters, tests, global functions and Python methods of the chat-template interpreter (see
// jinja_builtins.h).
#include "local_engine/jinja_builtins.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <unordered_map>

#include "local_engine/jinja_interpreter.h"

namespace gw::local_engine::jinja {

namespace {

// ---- argument helpers ----

const value* arg(const call_args& a, size_t index, std::string_view name) { return a.get(index, name); }

bool arg_bool(const call_args& a, size_t index, std::string_view name, bool fallback) {
  const value* v = a.get(index, name);
  return v ? v->truthy() : fallback;
}

int64_t arg_int(const call_args& a, size_t index, std::string_view name, int64_t fallback) {
  const value* v = a.get(index, name);
  if (!v || v->is_none() || v->is_undefined()) return fallback;
  if (v->is_int() || v->is_bool()) return v->as_int();
  if (v->is_float() && std::fabs(v->as_double()) < 9.2e18) return static_cast<int64_t>(v->as_double());
  throw template_error(std::string("argument '") + std::string(name) + "' must be an integer, not " + v->type_name());
}

std::string arg_string(const call_args& a, size_t index, std::string_view name, std::string fallback) {
  const value* v = a.get(index, name);
  if (!v || v->is_none() || v->is_undefined()) return fallback;
  return to_string(*v);
}

const std::string& need_string(const value& v, const char* what) {
  if (v.is_undefined()) throw template_error(v.undefined_message());
  if (!v.is_string()) throw template_error(std::string(what) + " expects a string, got " + v.type_name());
  return v.as_string();
}

value make_string(interpreter& in, std::string s) {
  in.charge_string(s.size());
  return value::string(std::move(s));
}

// Elements of anything iterable, as `for` sees them: list items, dict keys, string characters.
// Undefined iterates as empty.
std::vector<value> iterate(interpreter& in, const value& v) {
  switch (v.kind()) {
    case value::type::undefined:
      return {};
    case value::type::list:
      in.charge(v.as_list().items.size());
      return v.as_list().items;
    case value::type::dict: {
      std::vector<value> keys;
      for (const auto& kv : v.as_dict().entries) keys.push_back(kv.first);
      in.charge(keys.size());
      return keys;
    }
    case value::type::string: {
      std::vector<value> chars;
      const std::string& s = v.as_string();
      std::vector<size_t> offsets = utf8_offsets(s);
      for (size_t i = 0; i + 1 < offsets.size(); ++i) chars.push_back(value::string(s.substr(offsets[i], offsets[i + 1] - offsets[i])));
      in.charge(chars.size());
      return chars;
    }
    default:
      throw template_error(std::string("'") + v.type_name() + "' object is not iterable");
  }
}

// Jinja's attribute getter for filters ("name", "function.name", "0"): item lookup per dotted part;
// with a fallback, an undefined step becomes the fallback (as map(default=) does).
value get_path(interpreter& in, value v, std::string_view path, const value* fallback = nullptr) {
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string_view part = path.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    int64_t index = 0;
    auto r = std::from_chars(part.data(), part.data() + part.size(), index);
    if (!part.empty() && r.ec == std::errc() && r.ptr == part.data() + part.size()) v = in.get_item(v, value::integer(index));
    else v = in.get_item(v, value::string(std::string(part)));
    if (fallback && v.is_undefined()) v = *fallback;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return v;
}

// ---- string helpers (Python str semantics, code points) ----

bool is_py_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

std::vector<uint32_t> code_points(std::string_view s) {
  std::vector<uint32_t> cps;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    i += decode_utf8(s, i, cp);
    cps.push_back(cp);
  }
  return cps;
}

// str.strip / lstrip / rstrip; chars null or None: whitespace.
std::string strip(std::string_view s, const value* chars, bool left, bool right) {
  std::vector<uint32_t> set;
  bool whitespace = !chars || chars->is_none() || chars->is_undefined();
  if (!whitespace) set = code_points(need_string(*chars, "strip"));
  auto strippable = [&](uint32_t cp) {
    return whitespace ? is_py_space(cp) : std::find(set.begin(), set.end(), cp) != set.end();
  };
  size_t begin = 0, end = s.size();
  if (left)
    while (begin < end) {
      uint32_t cp;
      size_t n = decode_utf8(s, begin, cp);
      if (!strippable(cp)) break;
      begin += n;
    }
  if (right)
    while (end > begin) {
      size_t p = end - 1;
      while (p > begin && (static_cast<unsigned char>(s[p]) & 0xc0) == 0x80 && end - p < 4) --p;
      uint32_t cp;
      size_t n = decode_utf8(s, p, cp);
      if (p + n != end) {  // invalid sequence: treat the last byte alone
        p = end - 1;
        cp = static_cast<unsigned char>(s[p]);
      }
      if (!strippable(cp)) break;
      end = p;
    }
  return std::string(s.substr(begin, end - begin));
}

char ascii_upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c; }
char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }
bool ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::string to_upper(std::string s) {
  for (char& c : s) c = ascii_upper(c);
  return s;
}
std::string to_lower(std::string s) {
  for (char& c : s) c = ascii_lower(c);
  return s;
}
std::string capitalize(std::string s) {
  for (size_t i = 0; i < s.size(); ++i) s[i] = i == 0 ? ascii_upper(s[i]) : ascii_lower(s[i]);
  return s;
}
// Python str.title(): a letter following a cased letter is lowered, any other letter raised.
// Non-ASCII bytes are left alone and count as cased.
std::string py_title(std::string s) {
  bool prev_cased = false;
  for (char& c : s) {
    if (ascii_alpha(c)) {
      c = prev_cased ? ascii_lower(c) : ascii_upper(c);
      prev_cased = true;
    } else {
      prev_cased = static_cast<unsigned char>(c) >= 0x80;
    }
  }
  return s;
}
// Jinja's title filter: each word (split at whitespace, - ( { [ <) gets its first character raised
// and the rest lowered.
std::string jinja_title(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  bool word_start = true;
  for (char c : s) {
    bool sep = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == '-' || c == '(' ||
               c == '{' || c == '[' || c == '<';
    if (sep) {
      out += c;
      word_start = true;
    } else {
      out += word_start ? ascii_upper(c) : ascii_lower(c);
      word_start = false;
    }
  }
  return out;
}

std::string replace_all(interpreter& in, const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  if (from.empty()) {
    std::vector<size_t> offsets = utf8_offsets(s);
    int64_t done = 0;
    for (size_t i = 0; i + 1 < offsets.size(); ++i) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      out.append(s, offsets[i], offsets[i + 1] - offsets[i]);
      in.check_string_size(out.size());
    }
    if (count < 0 || done < count) out += to;
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  for (;;) {
    size_t hit = (count >= 0 && done >= count) ? std::string::npos : s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += to;
    in.check_string_size(out.size());
    pos = hit + from.size();
    ++done;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

std::vector<value> split(const std::string& s, const value* sep_v, int64_t maxsplit) {
  std::vector<value> parts;
  if (!sep_v || sep_v->is_none() || sep_v->is_undefined()) {
    size_t i = 0, n = s.size();
    auto space_at = [&](size_t p, size_t& len) {
      uint32_t cp;
      len = decode_utf8(s, p, cp);
      return is_py_space(cp);
    };
    size_t len = 0;
    for (;;) {
      while (i < n && space_at(i, len)) i += len;
      if (i >= n) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) {
        parts.push_back(value::string(s.substr(i)));  // the remainder keeps its trailing whitespace
        break;
      }
      size_t start = i;
      while (i < n && !space_at(i, len)) i += len;
      parts.push_back(value::string(s.substr(start, i - start)));
    }
    return parts;
  }
  const std::string& sep = need_string(*sep_v, "split");
  if (sep.empty()) throw template_error("empty separator");
  size_t pos = 0;
  for (;;) {
    size_t hit = (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) ? std::string::npos : s.find(sep, pos);
    if (hit == std::string::npos) break;
    parts.push_back(value::string(s.substr(pos, hit - pos)));
    pos = hit + sep.size();
  }
  parts.push_back(value::string(s.substr(pos)));
  return parts;
}

std::vector<value> rsplit(const std::string& s, const value* sep_v, int64_t maxsplit) {
  if (maxsplit < 0) return split(s, sep_v, -1);
  std::vector<value> parts;
  if (!sep_v || sep_v->is_none() || sep_v->is_undefined()) {
    std::string rest = strip(s, nullptr, false, true);
    while (!rest.empty() && static_cast<int64_t>(parts.size()) < maxsplit) {
      size_t p = rest.size();
      while (p > 0 && !is_py_space(static_cast<unsigned char>(rest[p - 1]))) --p;
      parts.push_back(value::string(rest.substr(p)));
      rest = strip(rest.substr(0, p), nullptr, false, true);
    }
    if (!rest.empty()) parts.push_back(value::string(rest));
    std::reverse(parts.begin(), parts.end());
    return parts;
  }
  const std::string& sep = need_string(*sep_v, "rsplit");
  if (sep.empty()) throw template_error("empty separator");
  size_t end = s.size();
  while (static_cast<int64_t>(parts.size()) < maxsplit) {
    if (end < sep.size()) break;
    size_t hit = s.rfind(sep, end - sep.size());
    if (hit == std::string::npos) break;
    parts.push_back(value::string(s.substr(hit + sep.size(), end - hit - sep.size())));
    end = hit;
  }
  parts.push_back(value::string(s.substr(0, end)));
  std::reverse(parts.begin(), parts.end());
  return parts;
}

std::vector<value> splitlines(const std::string& s, bool keepends) {
  std::vector<value> lines;
  size_t start = 0, i = 0;
  while (i < s.size()) {
    char c = s[i];
    size_t brk = 0;
    if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') brk = 2;
    else if (c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == '\x1c' || c == '\x1d' || c == '\x1e') brk = 1;
    if (brk) {
      lines.push_back(value::string(s.substr(start, (keepends ? i + brk : i) - start)));
      i += brk;
      start = i;
    } else {
      ++i;
    }
  }
  if (start < s.size()) lines.push_back(value::string(s.substr(start)));
  return lines;
}

// Code point index of byte offset `byte` in s.
int64_t cp_index(const std::string& s, size_t byte) {
  if (is_ascii(s)) return static_cast<int64_t>(byte);
  return static_cast<int64_t>(utf8_length(std::string_view(s).substr(0, byte)));
}

bool affix_match(const std::string& s, const value& affix, bool prefix) {
  auto one = [&](const value& a) {
    const std::string& t = need_string(a, prefix ? "startswith" : "endswith");
    if (t.size() > s.size()) return false;
    return prefix ? s.compare(0, t.size(), t) == 0 : s.compare(s.size() - t.size(), t.size(), t) == 0;
  };
  if (affix.is_list()) {
    for (const value& a : affix.as_list().items)
      if (one(a)) return true;
    return false;
  }
  return one(affix);
}

// printf-style formatting: %s %r %d %i %f %F %e %x %X %% with flags - 0 + space, width, precision.
std::string printf_format(const std::string& fmt, const std::vector<value>& args) {
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) throw template_error("incomplete format");
    if (fmt[i] == '%') {
      out += '%';
      continue;
    }
    std::string spec = "%";
    while (i < fmt.size() && fmt[i] != '\0' && std::strchr("-0+ #", fmt[i])) spec += fmt[i++];
    auto take_number = [&](int most) {
      int n = 0;
      while (i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9') {
        n = n * 10 + (fmt[i] - '0');
        if (n > most) throw template_error("format width or precision above " + std::to_string(most));
        spec += fmt[i++];
      }
    };
    take_number(400);  // width (fits the snprintf buffer below)
    if (i < fmt.size() && fmt[i] == '.') {
      spec += fmt[i++];
      take_number(60);  // precision
    }
    if (i >= fmt.size()) throw template_error("incomplete format");
    char conv = fmt[i];
    if (next >= args.size()) throw template_error("not enough arguments for format string");
    const value& a = args[next++];
    char buf[512];
    switch (conv) {
      case 's':
      case 'r': {
        std::string text = conv == 's' ? to_string(a) : repr(a);
        std::string sspec = spec + "s";
        if (spec == "%") {
          out += text;
        } else {
          int n = std::snprintf(buf, sizeof buf, sspec.c_str(), text.c_str());
          if (n < 0 || static_cast<size_t>(n) >= sizeof buf) out += text;
          else out += buf;
        }
        break;
      }
      case 'd':
      case 'i':
      case 'x':
      case 'X': {
        if (!a.is_number()) throw template_error(std::string("%") + conv + " format: a number is required, not " + a.type_name());
        if (a.is_float() && !(std::fabs(a.as_double()) < 9.2e18)) throw template_error("%d format: number out of range");
        std::string ispec = spec + "ll" + (conv == 'i' ? 'd' : conv);
        std::snprintf(buf, sizeof buf, ispec.c_str(), static_cast<long long>(a.is_float() ? static_cast<int64_t>(a.as_double()) : a.as_int()));
        out += buf;
        break;
      }
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G': {
        if (!a.is_number()) throw template_error(std::string("%") + conv + " format: a number is required, not " + a.type_name());
        std::string fspec = spec + conv;
        std::snprintf(buf, sizeof buf, fspec.c_str(), a.as_double());
        out += buf;
        break;
      }
      default:
        throw template_error(std::string("unsupported format character '") + conv + "'");
    }
  }
  if (next < args.size()) throw template_error("not all arguments converted during string formatting");
  return out;
}

// str.format with {} / {0} / {name} fields (no format specs).
std::string brace_format(interpreter& in, const std::string& fmt, const call_args& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c == '{' && i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
    } else if (c == '}' && i + 1 < fmt.size() && fmt[i + 1] == '}') {
      out += '}';
      ++i;
    } else if (c == '{') {
      size_t close = fmt.find('}', i);
      if (close == std::string::npos) throw template_error("single '{' encountered in format string");
      std::string field = fmt.substr(i + 1, close - i - 1);
      if (field.find_first_of(":!") != std::string::npos) throw template_error("format specs are not supported in str.format");
      const value* v = nullptr;
      if (field.empty()) {
        v = auto_index < args.positional.size() ? &args.positional[auto_index] : nullptr;
        ++auto_index;
      } else if (field.find_first_not_of("0123456789") == std::string::npos) {
        size_t k = SIZE_MAX;
        std::from_chars(field.data(), field.data() + field.size(), k);
        v = k < args.positional.size() ? &args.positional[k] : nullptr;
      } else {
        for (const auto& [name, val] : args.keyword)
          if (name == field) v = &val;
      }
      if (!v) throw template_error("format field '{" + field + "}' has no argument");
      append_string(out, *v);
      in.check_string_size(out.size());
      i = close;
    } else if (c == '}') {
      throw template_error("single '}' encountered in format string");
    } else {
      out += c;
    }
  }
  return out;
}

// ---- filters ----

size_t length_of(const value& v) {
  switch (v.kind()) {
    case value::type::undefined: return 0;
    case value::type::string: return utf8_length(v.as_string());
    case value::type::list: return v.as_list().items.size();
    case value::type::dict: return v.as_dict().entries.size();
    case value::type::ns: return v.as_namespace().attrs.size();
    default: throw template_error(std::string("object of type '") + v.type_name() + "' has no len()");
  }
}

value f_length(interpreter&, const value& v, call_args&) { return value::integer(static_cast<int64_t>(length_of(v))); }

value f_trim(interpreter&, const value& v, call_args& a) {
  return value::string(strip(to_string(v), arg(a, 0, "chars"), true, true));
}
value f_upper(interpreter&, const value& v, call_args&) { return value::string(to_upper(to_string(v))); }
value f_lower(interpreter&, const value& v, call_args&) { return value::string(to_lower(to_string(v))); }
value f_capitalize(interpreter&, const value& v, call_args&) { return value::string(capitalize(to_string(v))); }
value f_title(interpreter&, const value& v, call_args&) { return value::string(jinja_title(to_string(v))); }
value f_string(interpreter& in, const value& v, call_args&) { return make_string(in, to_string(v)); }
value f_safe(interpreter&, const value& v, call_args&) { return v; }

value f_escape(interpreter& in, const value& v, call_args&) {
  std::string s = to_string(v), out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return make_string(in, std::move(out));
}

value f_tojson(interpreter& in, const value& v, call_args& a) {
  json_format f;
  f.ensure_ascii = arg_bool(a, 0, "ensure_ascii", false);
  if (const value* indent = arg(a, 1, "indent"); indent && !indent->is_none() && !indent->is_undefined()) {
    f.pretty = true;
    if (indent->is_string()) f.indent_unit = indent->as_string();
    else f.indent_unit.assign(static_cast<size_t>(std::clamp<int64_t>(arg_int(a, 1, "indent", 0), 0, 64)), ' ');
  }
  if (const value* sep = arg(a, 2, "separators"); sep && sep->is_list() && sep->as_list().items.size() == 2) {
    f.item_separator = to_string(sep->as_list().items[0]);
    f.key_separator = to_string(sep->as_list().items[1]);
  }
  f.sort_keys = arg_bool(a, 3, "sort_keys", false);
  f.max_bytes = in.limits().max_output_bytes;
  return make_string(in, to_json(v, f));
}

value f_join(interpreter& in, const value& v, call_args& a) {
  std::string sep = arg_string(a, 0, "d", "");
  const value* attribute = arg(a, 1, "attribute");
  std::string out;
  bool first = true;
  for (const value& item : iterate(in, v)) {
    if (!first) out += sep;
    first = false;
    if (attribute && !attribute->is_none()) append_string(out, get_path(in, item, to_string(*attribute)));
    else append_string(out, item);
    in.check_string_size(out.size());
  }
  return make_string(in, std::move(out));
}

value f_default(interpreter&, const value& v, call_args& a) {
  bool boolean = arg_bool(a, 1, "boolean", false);
  if (v.is_undefined() || (boolean && !v.truthy())) return a.get_or(0, "default_value", value::string(""));
  return v;
}

value f_first(interpreter& in, const value& v, call_args&) {
  if (v.is_list()) return v.as_list().items.empty() ? value::undefined("first item of an empty sequence") : v.as_list().items.front();
  std::vector<value> items = iterate(in, v);
  return items.empty() ? value::undefined("first item of an empty sequence") : items.front();
}

value f_last(interpreter& in, const value& v, call_args&) {
  if (v.is_list()) return v.as_list().items.empty() ? value::undefined("last item of an empty sequence") : v.as_list().items.back();
  std::vector<value> items = iterate(in, v);
  return items.empty() ? value::undefined("last item of an empty sequence") : items.back();
}

value f_list(interpreter& in, const value& v, call_args&) {
  if (v.is_list() && !v.as_list().is_tuple) return v;
  return value::list(iterate(in, v));
}

value f_items(interpreter& in, const value& v, call_args&) {
  if (v.is_undefined()) return value::list({});
  if (!v.is_dict()) throw template_error(std::string("items filter: can only get item pairs from a mapping, not ") + v.type_name());
  std::vector<value> pairs;
  for (const auto& [k, val] : v.as_dict().entries) pairs.push_back(value::list({k, val}, true));
  in.charge(pairs.size());
  return value::list(std::move(pairs));
}

std::optional<int64_t> parse_int(std::string_view s, int base) {
  std::string t = strip(s, nullptr, true, true);
  std::string digits;  // Python allows single underscores between digits: int('1_000')
  for (size_t i = 0; i < t.size(); ++i) {
    bool inner_underscore = t[i] == '_' && i > 0 && i + 1 < t.size() && t[i - 1] != '_' && t[i + 1] != '_';
    if (!inner_underscore) digits += t[i];
  }
  size_t p = 0;
  bool negative = false;
  if (p < digits.size() && (digits[p] == '+' || digits[p] == '-')) negative = digits[p++] == '-';
  if (base == 16 && digits.compare(p, 2, "0x") == 0) p += 2;
  int64_t r = 0;
  auto res = std::from_chars(digits.data() + p, digits.data() + digits.size(), r, base);
  if (p == digits.size() || res.ec != std::errc() || res.ptr != digits.data() + digits.size()) return std::nullopt;
  return negative ? -r : r;
}

std::optional<double> parse_float(std::string_view s) {
  std::string t = strip(s, nullptr, true, true);
  if (!t.empty() && t[0] == '+') t.erase(0, 1);
  double d = 0;
  auto res = std::from_chars(t.data(), t.data() + t.size(), d);
  if (t.empty() || res.ec != std::errc() || res.ptr != t.data() + t.size()) return std::nullopt;
  return d;
}

value f_int(interpreter&, const value& v, call_args& a) {
  value fallback = a.get_or(0, "default", value::integer(0));
  int base = static_cast<int>(arg_int(a, 1, "base", 10));
  if (base < 2 || base > 36) base = 10;
  if (v.is_int() || v.is_bool()) return value::integer(v.as_int());
  if (v.is_float()) {
    double d = v.as_double();
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return fallback;
    return value::integer(static_cast<int64_t>(d));
  }
  if (v.is_string()) {
    if (auto i = parse_int(v.as_string(), base)) return value::integer(*i);
    if (auto d = parse_float(v.as_string()); d && std::isfinite(*d) && std::fabs(*d) < 9.2e18)
      return value::integer(static_cast<int64_t>(*d));
  }
  return fallback;
}

value f_float(interpreter&, const value& v, call_args& a) {
  value fallback = a.get_or(0, "default", value::number(0.0));
  if (v.is_number()) return value::number(v.as_double());
  if (v.is_string())
    if (auto d = parse_float(v.as_string())) return value::number(*d);
  return fallback;
}

value f_abs(interpreter&, const value& v, call_args&) {
  if (v.is_float()) return value::number(std::fabs(v.as_double()));
  if (v.is_number()) {
    if (v.as_int() == INT64_MIN) throw template_error("integer overflow in abs");
    return value::integer(v.as_int() < 0 ? -v.as_int() : v.as_int());
  }
  throw template_error(std::string("bad operand type for abs(): '") + v.type_name() + "'");
}

value f_round(interpreter&, const value& v, call_args& a) {
  if (!v.is_number()) throw template_error(std::string("round expects a number, got ") + v.type_name());
  int64_t precision = std::clamp<int64_t>(arg_int(a, 0, "precision", 0), -20, 20);
  std::string method = arg_string(a, 1, "method", "common");
  double scale = std::pow(10.0, static_cast<double>(precision));
  double x = v.as_double() * scale;
  if (method == "ceil") x = std::ceil(x);
  else if (method == "floor") x = std::floor(x);
  else if (method == "common") x = std::nearbyint(x);  // Python round(): ties to even
  else throw template_error("round method must be 'common', 'ceil' or 'floor'");
  return value::number(x / scale);
}

value f_replace(interpreter& in, const value& v, call_args& a) {
  const value* from = arg(a, 0, "old");
  const value* to = arg(a, 1, "new");
  if (!from || !to) throw template_error("replace needs the old and new strings");
  return make_string(in, replace_all(in, to_string(v), to_string(*from), to_string(*to), arg_int(a, 2, "count", -1)));
}

value f_reverse(interpreter& in, const value& v, call_args&) {
  if (v.is_string()) {
    std::vector<size_t> offsets = utf8_offsets(v.as_string());
    std::string out;
    for (size_t i = offsets.size() - 1; i > 0; --i) out.append(v.as_string(), offsets[i - 1], offsets[i] - offsets[i - 1]);
    return value::string(std::move(out));
  }
  std::vector<value> items = iterate(in, v);
  std::reverse(items.begin(), items.end());
  return value::list(std::move(items));
}

// select / reject / selectattr / rejectattr: keep items whose test result equals `keep`.
value filter_items(interpreter& in, const value& v, call_args& a, bool keep, bool by_attribute) {
  size_t first_test_arg = 0;
  std::string attribute;
  if (by_attribute) {
    if (a.positional.empty()) throw template_error("selectattr/rejectattr need an attribute name");
    attribute = to_string(a.positional[0]);
    first_test_arg = 1;
  }
  std::string test_name;
  call_args test_args;
  if (a.positional.size() > first_test_arg) {
    test_name = to_string(a.positional[first_test_arg]);
    test_args.positional.assign(a.positional.begin() + static_cast<std::ptrdiff_t>(first_test_arg) + 1, a.positional.end());
    test_args.keyword = a.keyword;
  }
  std::vector<value> out;
  for (const value& item : iterate(in, v)) {
    value subject = by_attribute ? get_path(in, item, attribute) : item;
    bool result = test_name.empty() ? subject.truthy() : in.apply_test(test_name, subject, test_args);
    if (result == keep) out.push_back(item);
  }
  return value::list(std::move(out));
}

value f_select(interpreter& in, const value& v, call_args& a) { return filter_items(in, v, a, true, false); }
value f_reject(interpreter& in, const value& v, call_args& a) { return filter_items(in, v, a, false, false); }
value f_selectattr(interpreter& in, const value& v, call_args& a) { return filter_items(in, v, a, true, true); }
value f_rejectattr(interpreter& in, const value& v, call_args& a) { return filter_items(in, v, a, false, true); }

value f_map(interpreter& in, const value& v, call_args& a) {
  std::vector<value> out;
  const value* attribute = nullptr;
  const value* fallback = nullptr;
  for (const auto& [k, val] : a.keyword) {
    if (k == "attribute") attribute = &val;
    if (k == "default") fallback = &val;
  }
  if (attribute) {
    std::string path = to_string(*attribute);
    for (const value& item : iterate(in, v)) out.push_back(get_path(in, item, path, fallback));
    return value::list(std::move(out));
  }
  if (a.positional.empty()) throw template_error("map needs a filter name or attribute=");
  std::string filter = to_string(a.positional[0]);
  call_args filter_args;
  filter_args.positional.assign(a.positional.begin() + 1, a.positional.end());
  filter_args.keyword = a.keyword;
  for (const value& item : iterate(in, v)) {
    call_args copy = filter_args;
    out.push_back(in.apply_filter(filter, item, copy));
  }
  return value::list(std::move(out));
}

// Sort key: the attribute (if any), lowered when comparing strings case-insensitively.
value sort_key(interpreter& in, const value& item, const std::string& attribute, bool case_sensitive) {
  value k = attribute.empty() ? item : get_path(in, item, attribute);
  if (!case_sensitive && k.is_string()) return value::string(to_lower(k.as_string()));
  return k;
}

value f_sort(interpreter& in, const value& v, call_args& a) {
  bool reverse = arg_bool(a, 0, "reverse", false);
  bool case_sensitive = arg_bool(a, 1, "case_sensitive", false);
  std::string attribute = arg_string(a, 2, "attribute", "");
  std::vector<std::pair<value, value>> keyed;
  for (const value& item : iterate(in, v)) keyed.emplace_back(sort_key(in, item, attribute, case_sensitive), item);
  in.charge(keyed.size() * 4);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? less_than(y.first, x.first) : less_than(x.first, y.first);
  });
  std::vector<value> out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return value::list(std::move(out));
}

value f_dictsort(interpreter& in, const value& v, call_args& a) {
  if (!v.is_dict()) throw template_error(std::string("dictsort expects a dict, got ") + v.type_name());
  bool case_sensitive = arg_bool(a, 0, "case_sensitive", false);
  std::string by = arg_string(a, 1, "by", "key");
  bool reverse = arg_bool(a, 2, "reverse", false);
  size_t pos = by == "value" ? 1 : 0;
  std::vector<value> pairs;
  for (const auto& [k, val] : v.as_dict().entries) pairs.push_back(value::list({k, val}, true));
  in.charge(pairs.size() * 4);
  auto key = [&](const value& p) {
    const value& k = p.as_list().items[pos];
    return !case_sensitive && k.is_string() ? value::string(to_lower(k.as_string())) : k;
  };
  std::stable_sort(pairs.begin(), pairs.end(), [&](const value& x, const value& y) {
    return reverse ? less_than(key(y), key(x)) : less_than(key(x), key(y));
  });
  return value::list(std::move(pairs));
}

value f_unique(interpreter& in, const value& v, call_args& a) {
  bool case_sensitive = arg_bool(a, 0, "case_sensitive", false);
  std::string attribute = arg_string(a, 1, "attribute", "");
  std::vector<value> out, seen;
  for (const value& item : iterate(in, v)) {
    value k = sort_key(in, item, attribute, case_sensitive);
    bool dup = false;
    for (const value& s : seen) dup = dup || equals(s, k);
    in.charge(seen.size());
    if (!dup) {
      seen.push_back(k);
      out.push_back(item);
    }
  }
  return value::list(std::move(out));
}

value min_max(interpreter& in, const value& v, call_args& a, bool want_max) {
  bool case_sensitive = arg_bool(a, 0, "case_sensitive", false);
  std::string attribute = arg_string(a, 1, "attribute", "");
  std::vector<value> items = iterate(in, v);
  if (items.empty()) return value::undefined(want_max ? "max of an empty sequence" : "min of an empty sequence");
  size_t best = 0;
  value best_key = sort_key(in, items[0], attribute, case_sensitive);
  for (size_t i = 1; i < items.size(); ++i) {
    value k = sort_key(in, items[i], attribute, case_sensitive);
    if (want_max ? less_than(best_key, k) : less_than(k, best_key)) {
      best = i;
      best_key = std::move(k);
    }
  }
  return items[best];
}

value f_min(interpreter& in, const value& v, call_args& a) { return min_max(in, v, a, false); }
value f_max(interpreter& in, const value& v, call_args& a) { return min_max(in, v, a, true); }

value f_sum(interpreter& in, const value& v, call_args& a) {
  std::string attribute = arg_string(a, 0, "attribute", "");
  value total = a.get_or(1, "start", value::integer(0));
  for (const value& item : iterate(in, v)) {
    value x = attribute.empty() ? item : get_path(in, item, attribute);
    if (!x.is_number() || !total.is_number()) throw template_error(std::string("sum: cannot add ") + x.type_name());
    if (total.is_float() || x.is_float()) {
      total = value::number(total.as_double() + x.as_double());
    } else {
      int64_t r;
      if (__builtin_add_overflow(total.as_int(), x.as_int(), &r)) throw template_error("integer overflow in sum");
      total = value::integer(r);
    }
  }
  return total;
}

value f_indent(interpreter& in, const value& v, call_args& a) {
  std::string unit;
  if (const value* w = arg(a, 0, "width"); w && w->is_string()) unit = w->as_string();
  else unit.assign(static_cast<size_t>(std::clamp<int64_t>(arg_int(a, 0, "width", 4), 0, 256)), ' ');
  bool first = arg_bool(a, 1, "first", false);
  bool blank = arg_bool(a, 2, "blank", false);
  std::string s = to_string(v) + "\n";  // as Jinja does, so a trailing newline survives splitlines
  std::vector<value> lines = splitlines(s, false);
  in.check_string_size(s.size() + (lines.size() + 1) * unit.size());
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i].as_string();
    if (i > 0) {
      out += '\n';
      if (blank || !line.empty()) out += unit;
    }
    out += line;
  }
  if (first) out = unit + out;
  return make_string(in, std::move(out));
}

value f_center(interpreter& in, const value& v, call_args& a) {
  std::string s = to_string(v);
  int64_t width = std::clamp<int64_t>(arg_int(a, 0, "width", 80), 0, 1 << 20);
  int64_t len = static_cast<int64_t>(utf8_length(s));
  if (width <= len) return value::string(std::move(s));
  int64_t total = width - len;
  int64_t left = total / 2 + (total & width & 1);  // CPython's centering
  return make_string(in, std::string(static_cast<size_t>(left), ' ') + s + std::string(static_cast<size_t>(total - left), ' '));
}

value f_wordcount(interpreter&, const value& v, call_args&) {
  return value::integer(static_cast<int64_t>(split(to_string(v), nullptr, -1).size()));
}

value f_attr(interpreter& in, const value& v, call_args& a) {
  const value* name = arg(a, 0, "name");
  if (!name) throw template_error("attr needs an attribute name");
  return in.get_attr(v, to_string(*name));
}

value f_format(interpreter& in, const value& v, call_args& a) {
  return make_string(in, printf_format(to_string(v), a.positional));
}

value f_batch(interpreter& in, const value& v, call_args& a) {
  int64_t size = arg_int(a, 0, "linecount", 0);
  if (size <= 0 || static_cast<uint64_t>(size) > in.limits().max_sequence_length)
    throw template_error("batch size must be between 1 and " + std::to_string(in.limits().max_sequence_length));
  const value* fill = arg(a, 1, "fill_with");
  std::vector<value> out, current;
  for (const value& item : iterate(in, v)) {
    current.push_back(item);
    if (static_cast<int64_t>(current.size()) == size) {
      out.push_back(value::list(std::move(current)));
      current.clear();
    }
  }
  if (!current.empty()) {
    if (fill && !fill->is_none())
      while (static_cast<int64_t>(current.size()) < size) current.push_back(*fill);
    out.push_back(value::list(std::move(current)));
  }
  return value::list(std::move(out));
}

const std::unordered_map<std::string_view, filter_fn>& filter_table() {
  static const std::unordered_map<std::string_view, filter_fn> table = {
      {"abs", f_abs},           {"attr", f_attr},       {"batch", f_batch},       {"capitalize", f_capitalize},
      {"center", f_center},     {"count", f_length},    {"d", f_default},         {"default", f_default},
      {"dictsort", f_dictsort}, {"e", f_escape},        {"escape", f_escape},     {"first", f_first},
      {"float", f_float},       {"forceescape", f_escape}, {"format", f_format},  {"indent", f_indent},
      {"int", f_int},           {"items", f_items},     {"join", f_join},         {"last", f_last},
      {"length", f_length},     {"list", f_list},       {"lower", f_lower},       {"map", f_map},
      {"max", f_max},           {"min", f_min},         {"reject", f_reject},     {"rejectattr", f_rejectattr},
      {"replace", f_replace},   {"reverse", f_reverse}, {"round", f_round},       {"safe", f_safe},
      {"select", f_select},     {"selectattr", f_selectattr}, {"sort", f_sort},   {"string", f_string},
      {"sum", f_sum},           {"title", f_title},     {"tojson", f_tojson},     {"trim", f_trim},
      {"unique", f_unique},     {"upper", f_upper},     {"wordcount", f_wordcount},
  };
  return table;
}

// ---- tests ----

const value& test_arg(const call_args& a, const char* test) {
  if (a.positional.empty()) throw template_error(std::string("test '") + test + "' needs an argument");
  return a.positional[0];
}

bool t_defined(interpreter&, const value& v, call_args&) { return !v.is_undefined(); }
bool t_undefined(interpreter&, const value& v, call_args&) { return v.is_undefined(); }
bool t_none(interpreter&, const value& v, call_args&) { return v.is_none(); }
bool t_boolean(interpreter&, const value& v, call_args&) { return v.is_bool(); }
bool t_true(interpreter&, const value& v, call_args&) { return v.is_bool() && v.as_bool(); }
bool t_false(interpreter&, const value& v, call_args&) { return v.is_bool() && !v.as_bool(); }
bool t_integer(interpreter&, const value& v, call_args&) { return v.is_int(); }
bool t_float(interpreter&, const value& v, call_args&) { return v.is_float(); }
bool t_number(interpreter&, const value& v, call_args&) { return v.is_number(); }
bool t_string(interpreter&, const value& v, call_args&) { return v.is_string(); }
bool t_mapping(interpreter&, const value& v, call_args&) { return v.is_dict(); }
// Jinja: undefined is iterable (and a sequence) too.
bool t_iterable(interpreter&, const value& v, call_args&) {
  return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
}
bool t_sequence(interpreter&, const value& v, call_args&) {
  return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
}
bool t_callable(interpreter&, const value& v, call_args&) { return v.is_callable(); }
bool t_eq(interpreter&, const value& v, call_args& a) { return equals(v, test_arg(a, "eq")); }
bool t_ne(interpreter&, const value& v, call_args& a) { return !equals(v, test_arg(a, "ne")); }
bool t_lt(interpreter&, const value& v, call_args& a) { return less_than(v, test_arg(a, "lt")); }
bool t_le(interpreter&, const value& v, call_args& a) { return !less_than(test_arg(a, "le"), v); }
bool t_gt(interpreter&, const value& v, call_args& a) { return less_than(test_arg(a, "gt"), v); }
bool t_ge(interpreter&, const value& v, call_args& a) { return !less_than(v, test_arg(a, "ge")); }
// Python `is`: identity for containers and objects, equality of value and type for scalars.
bool t_sameas(interpreter&, const value& v, call_args& a) {
  const value& other = test_arg(a, "sameas");
  if (v.kind() != other.kind()) return false;
  if (v.is_list()) return &v.as_list() == &other.as_list();
  if (v.is_dict()) return &v.as_dict() == &other.as_dict();
  return equals(v, other);
}
bool t_in(interpreter&, const value& v, call_args& a) {
  const value& seq = test_arg(a, "in");
  if (seq.is_string()) return v.is_string() && seq.as_string().find(v.as_string()) != std::string::npos;
  if (seq.is_list()) {
    for (const value& x : seq.as_list().items)
      if (equals(x, v)) return true;
    return false;
  }
  if (seq.is_dict()) return seq.as_dict().find(v) != nullptr;
  return false;
}
bool t_odd(interpreter&, const value& v, call_args&) {
  if (!v.is_int() && !v.is_bool()) throw template_error(std::string("odd: expected an integer, got ") + v.type_name());
  return (v.as_int() & 1) != 0;
}
bool t_even(interpreter&, const value& v, call_args&) {
  if (!v.is_int() && !v.is_bool()) throw template_error(std::string("even: expected an integer, got ") + v.type_name());
  return (v.as_int() & 1) == 0;
}
bool t_divisibleby(interpreter&, const value& v, call_args& a) {
  const value& d = test_arg(a, "divisibleby");
  if (!v.is_number() || !d.is_number()) throw template_error("divisibleby expects numbers");
  if (d.as_double() == 0) throw template_error("integer division or modulo by zero");
  if (v.is_float() || d.is_float()) return std::fmod(v.as_double(), d.as_double()) == 0;
  if (d.as_int() == -1) return true;
  return v.as_int() % d.as_int() == 0;
}
bool t_lower(interpreter&, const value& v, call_args&) {
  if (!v.is_string()) return false;
  bool cased = false;
  for (char c : v.as_string()) {
    if (c >= 'A' && c <= 'Z') return false;
    cased = cased || (c >= 'a' && c <= 'z');
  }
  return cased;
}
bool t_upper(interpreter&, const value& v, call_args&) {
  if (!v.is_string()) return false;
  bool cased = false;
  for (char c : v.as_string()) {
    if (c >= 'a' && c <= 'z') return false;
    cased = cased || (c >= 'A' && c <= 'Z');
  }
  return cased;
}
bool t_escaped(interpreter&, const value&, call_args&) { return false; }
bool t_filter(interpreter&, const value& v, call_args&) { return v.is_string() && find_filter(v.as_string()) != nullptr; }
bool t_test(interpreter&, const value& v, call_args&) { return v.is_string() && find_test(v.as_string()) != nullptr; }

const std::unordered_map<std::string_view, test_fn>& test_table() {
  static const std::unordered_map<std::string_view, test_fn> table = {
      {"boolean", t_boolean},   {"callable", t_callable}, {"defined", t_defined},     {"divisibleby", t_divisibleby},
      {"eq", t_eq},             {"equalto", t_eq},        {"==", t_eq},               {"escaped", t_escaped},
      {"even", t_even},         {"false", t_false},       {"filter", t_filter},       {"float", t_float},
      {"ge", t_ge},             {">=", t_ge},             {"gt", t_gt},               {"greaterthan", t_gt},
      {">", t_gt},              {"in", t_in},             {"integer", t_integer},     {"iterable", t_iterable},
      {"le", t_le},             {"<=", t_le},             {"lower", t_lower},         {"lt", t_lt},
      {"lessthan", t_lt},       {"<", t_lt},              {"mapping", t_mapping},     {"ne", t_ne},
      {"!=", t_ne},             {"none", t_none},         {"number", t_number},       {"odd", t_odd},
      {"sameas", t_sameas},     {"sequence", t_sequence}, {"string", t_string},       {"test", t_test},
      {"true", t_true},         {"undefined", t_undefined}, {"upper", t_upper},
  };
  return table;
}

// ---- globals ----

value g_range(interpreter& in, call_args& a) {
  int64_t start = 0, stop = 0, step = 1;
  auto num = [](const value& v) {
    if (!v.is_int() && !v.is_bool()) throw template_error(std::string("range() arguments must be integers, not ") + v.type_name());
    return v.as_int();
  };
  if (a.positional.size() == 1) {
    stop = num(a.positional[0]);
  } else if (a.positional.size() == 2 || a.positional.size() == 3) {
    start = num(a.positional[0]);
    stop = num(a.positional[1]);
    if (a.positional.size() == 3) step = num(a.positional[2]);
  } else {
    throw template_error("range() takes 1 to 3 integer arguments");
  }
  if (step == 0) throw template_error("range() arg 3 must not be zero");
  std::vector<value> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (out.size() >= in.limits().max_sequence_length)
      throw template_error("range() longer than " + std::to_string(in.limits().max_sequence_length) + " items");
    out.push_back(value::integer(i));
    if ((step > 0 && i > INT64_MAX - step) || (step < 0 && i < INT64_MIN - step)) break;
  }
  in.charge(out.size());
  return value::list(std::move(out));
}

value g_namespace(interpreter& in, call_args& a) {
  value ns = in.new_namespace();
  for (const value& p : a.positional) {
    if (!p.is_dict()) throw template_error("namespace() takes keyword arguments or a dict");
    for (const auto& [k, v] : p.as_dict().entries) ns.as_namespace().set(to_string(k), v);
  }
  for (const auto& [k, v] : a.keyword) ns.as_namespace().set(k, v);
  return ns;
}

value g_dict(interpreter& in, call_args& a) {
  std::vector<std::pair<value, value>> entries;
  for (const value& p : a.positional) {
    if (p.is_dict()) {
      for (const auto& e : p.as_dict().entries) entries.push_back(e);
    } else {
      for (const value& pair : iterate(in, p)) {
        if (!pair.is_list() || pair.as_list().items.size() != 2) throw template_error("dict() needs a mapping or key/value pairs");
        entries.emplace_back(pair.as_list().items[0], pair.as_list().items[1]);
      }
    }
  }
  for (const auto& [k, v] : a.keyword) entries.emplace_back(value::string(k), v);
  return value::dict(std::move(entries));
}

value g_raise_exception(interpreter&, call_args& a) {
  throw raised_error("raise_exception: " + (a.positional.empty() ? std::string("(no message)") : to_string(a.positional[0])));
}

value g_strftime_now(interpreter& in, call_args& a) {
  if (a.positional.empty()) throw template_error("strftime_now() needs a format");
  std::string fmt = to_string(a.positional[0]);
  if (fmt.size() > 256) throw template_error("strftime_now() format too long");
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buf[1024];
  size_t n = std::strftime(buf, sizeof buf, fmt.c_str(), &local);
  return make_string(in, std::string(buf, n));
}

value g_joiner(interpreter&, call_args& a) {
  std::string sep = arg_string(a, 0, "sep", ", ");
  auto used = std::make_shared<bool>(false);
  return value::make_callable("joiner", [sep, used](interpreter&, call_args&) {
    if (!*used) {
      *used = true;
      return value::string("");
    }
    return value::string(sep);
  });
}

const std::unordered_map<std::string_view, value>& global_table() {
  static const std::unordered_map<std::string_view, value> table = {
      {"range", value::make_callable("range", g_range)},
      {"namespace", value::make_callable("namespace", g_namespace)},
      {"dict", value::make_callable("dict", g_dict)},
      {"raise_exception", value::make_callable("raise_exception", g_raise_exception)},
      {"strftime_now", value::make_callable("strftime_now", g_strftime_now)},
      {"joiner", value::make_callable("joiner", g_joiner)},
  };
  return table;
}

// ---- methods ----

using method_fn = value (*)(interpreter&, const value& self, call_args& args);

value m_strip(interpreter&, const value& s, call_args& a) { return value::string(strip(s.as_string(), arg(a, 0, "chars"), true, true)); }
value m_lstrip(interpreter&, const value& s, call_args& a) { return value::string(strip(s.as_string(), arg(a, 0, "chars"), true, false)); }
value m_rstrip(interpreter&, const value& s, call_args& a) { return value::string(strip(s.as_string(), arg(a, 0, "chars"), false, true)); }
value m_upper(interpreter&, const value& s, call_args&) { return value::string(to_upper(s.as_string())); }
value m_lower(interpreter&, const value& s, call_args&) { return value::string(to_lower(s.as_string())); }
value m_title(interpreter&, const value& s, call_args&) { return value::string(py_title(s.as_string())); }
value m_capitalize(interpreter&, const value& s, call_args&) { return value::string(capitalize(s.as_string())); }
value m_split(interpreter& in, const value& s, call_args& a) {
  std::vector<value> parts = split(s.as_string(), arg(a, 0, "sep"), arg_int(a, 1, "maxsplit", -1));
  in.charge(parts.size());
  return value::list(std::move(parts));
}
value m_rsplit(interpreter& in, const value& s, call_args& a) {
  std::vector<value> parts = rsplit(s.as_string(), arg(a, 0, "sep"), arg_int(a, 1, "maxsplit", -1));
  in.charge(parts.size());
  return value::list(std::move(parts));
}
value m_splitlines(interpreter& in, const value& s, call_args& a) {
  std::vector<value> lines = splitlines(s.as_string(), arg_bool(a, 0, "keepends", false));
  in.charge(lines.size());
  return value::list(std::move(lines));
}
value m_startswith(interpreter&, const value& s, call_args& a) {
  const value* p = arg(a, 0, "prefix");
  if (!p) throw template_error("startswith needs a prefix");
  return value::boolean(affix_match(s.as_string(), *p, true));
}
value m_endswith(interpreter&, const value& s, call_args& a) {
  const value* p = arg(a, 0, "suffix");
  if (!p) throw template_error("endswith needs a suffix");
  return value::boolean(affix_match(s.as_string(), *p, false));
}
value m_replace(interpreter& in, const value& s, call_args& a) {
  const value* from = arg(a, 0, "old");
  const value* to = arg(a, 1, "new");
  if (!from || !to) throw template_error("replace needs the old and new strings");
  return make_string(in, replace_all(in, s.as_string(), need_string(*from, "replace"), need_string(*to, "replace"),
                                     arg_int(a, 2, "count", -1)));
}
value m_find(interpreter&, const value& s, call_args& a) {
  const value* sub = arg(a, 0, "sub");
  if (!sub) throw template_error("find needs a substring");
  size_t at = s.as_string().find(need_string(*sub, "find"));
  return value::integer(at == std::string::npos ? -1 : cp_index(s.as_string(), at));
}
value m_rfind(interpreter&, const value& s, call_args& a) {
  const value* sub = arg(a, 0, "sub");
  if (!sub) throw template_error("rfind needs a substring");
  size_t at = s.as_string().rfind(need_string(*sub, "rfind"));
  return value::integer(at == std::string::npos ? -1 : cp_index(s.as_string(), at));
}
value m_count(interpreter&, const value& s, call_args& a) {
  const value* sub_v = arg(a, 0, "sub");
  if (!sub_v) throw template_error("count needs a substring");
  const std::string& sub = need_string(*sub_v, "count");
  if (sub.empty()) return value::integer(static_cast<int64_t>(utf8_length(s.as_string())) + 1);
  int64_t n = 0;
  for (size_t at = s.as_string().find(sub); at != std::string::npos; at = s.as_string().find(sub, at + sub.size())) ++n;
  return value::integer(n);
}
value m_join(interpreter& in, const value& s, call_args& a) {
  const value* items = arg(a, 0, "iterable");
  if (!items) throw template_error("join needs an iterable");
  std::string out;
  bool first = true;
  for (const value& item : iterate(in, *items)) {
    if (!first) out += s.as_string();
    first = false;
    out += need_string(item, "str.join");
    in.check_string_size(out.size());
  }
  return make_string(in, std::move(out));
}
value m_removeprefix(interpreter&, const value& s, call_args& a) {
  const value* p = arg(a, 0, "prefix");
  if (!p) throw template_error("removeprefix needs a prefix");
  const std::string& pre = need_string(*p, "removeprefix");
  const std::string& str = s.as_string();
  return value::string(str.compare(0, pre.size(), pre) == 0 ? str.substr(pre.size()) : str);
}
value m_removesuffix(interpreter&, const value& s, call_args& a) {
  const value* p = arg(a, 0, "suffix");
  if (!p) throw template_error("removesuffix needs a suffix");
  const std::string& suf = need_string(*p, "removesuffix");
  const std::string& str = s.as_string();
  bool match = !suf.empty() && str.size() >= suf.size() && str.compare(str.size() - suf.size(), suf.size(), suf) == 0;
  return value::string(match ? str.substr(0, str.size() - suf.size()) : str);
}
template <bool (*pred)(char)>
value m_is(interpreter&, const value& s, call_args&) {
  const std::string& str = s.as_string();
  if (str.empty()) return value::boolean(false);
  for (char c : str)
    if (!pred(c)) return value::boolean(false);
  return value::boolean(true);
}
bool is_digit_char(char c) { return c >= '0' && c <= '9'; }
bool is_alnum_char(char c) { return ascii_alpha(c) || is_digit_char(c); }
bool is_space_char(char c) { return is_py_space(static_cast<unsigned char>(c)); }
value m_islower(interpreter& in, const value& s, call_args& a) { return value::boolean(t_lower(in, s, a)); }
value m_isupper(interpreter& in, const value& s, call_args& a) { return value::boolean(t_upper(in, s, a)); }
value m_format(interpreter& in, const value& s, call_args& a) { return make_string(in, brace_format(in, s.as_string(), a)); }

value m_items(interpreter& in, const value& d, call_args& a) { return f_items(in, d, a); }
value m_keys(interpreter& in, const value& d, call_args&) {
  std::vector<value> keys;
  for (const auto& kv : d.as_dict().entries) keys.push_back(kv.first);
  in.charge(keys.size());
  return value::list(std::move(keys));
}
value m_values(interpreter& in, const value& d, call_args&) {
  std::vector<value> vals;
  for (const auto& kv : d.as_dict().entries) vals.push_back(kv.second);
  in.charge(vals.size());
  return value::list(std::move(vals));
}
value m_get(interpreter&, const value& d, call_args& a) {
  const value* key = arg(a, 0, "key");
  if (!key) throw template_error("get needs a key");
  if (const value* v = d.as_dict().find(*key)) return *v;
  return a.get_or(1, "default", value::none());
}

value m_list_index(interpreter&, const value& l, call_args& a) {
  const value& x = test_arg(a, "index");
  const auto& items = l.as_list().items;
  for (size_t i = 0; i < items.size(); ++i)
    if (equals(items[i], x)) return value::integer(static_cast<int64_t>(i));
  throw template_error(repr(x) + " is not in list");
}
value m_list_count(interpreter&, const value& l, call_args& a) {
  const value& x = test_arg(a, "count");
  int64_t n = 0;
  for (const value& v : l.as_list().items) n += equals(v, x) ? 1 : 0;
  return value::integer(n);
}

const std::unordered_map<std::string_view, method_fn>& string_methods() {
  static const std::unordered_map<std::string_view, method_fn> table = {
      {"strip", m_strip},           {"lstrip", m_lstrip},       {"rstrip", m_rstrip},
      {"upper", m_upper},           {"lower", m_lower},         {"title", m_title},
      {"capitalize", m_capitalize}, {"split", m_split},         {"rsplit", m_rsplit},
      {"splitlines", m_splitlines}, {"startswith", m_startswith}, {"endswith", m_endswith},
      {"replace", m_replace},       {"find", m_find},           {"rfind", m_rfind},
      {"count", m_count},           {"join", m_join},           {"removeprefix", m_removeprefix},
      {"removesuffix", m_removesuffix}, {"isdigit", m_is<is_digit_char>}, {"isalpha", m_is<ascii_alpha>},
      {"isalnum", m_is<is_alnum_char>}, {"isspace", m_is<is_space_char>}, {"islower", m_islower},
      {"isupper", m_isupper},       {"format", m_format},
  };
  return table;
}

const std::unordered_map<std::string_view, method_fn>& dict_methods() {
  static const std::unordered_map<std::string_view, method_fn> table = {
      {"items", m_items}, {"keys", m_keys}, {"values", m_values}, {"get", m_get},
  };
  return table;
}

const std::unordered_map<std::string_view, method_fn>& list_methods() {
  static const std::unordered_map<std::string_view, method_fn> table = {
      {"index", m_list_index}, {"count", m_list_count},
  };
  return table;
}

method_fn find_method(const value& object, std::string_view name) {
  const std::unordered_map<std::string_view, method_fn>* table = nullptr;
  if (object.is_string()) table = &string_methods();
  else if (object.is_dict()) table = &dict_methods();
  else if (object.is_list()) table = &list_methods();
  if (!table) return nullptr;
  auto it = table->find(name);
  return it == table->end() ? nullptr : it->second;
}

}  // namespace

filter_fn find_filter(std::string_view name) {
  auto it = filter_table().find(name);
  return it == filter_table().end() ? nullptr : it->second;
}

test_fn find_test(std::string_view name) {
  auto it = test_table().find(name);
  return it == test_table().end() ? nullptr : it->second;
}

const value* find_global(std::string_view name) {
  auto it = global_table().find(name);
  return it == global_table().end() ? nullptr : &it->second;
}

bool has_method(const value& object, std::string_view name) { return find_method(object, name) != nullptr; }

std::string format_printf(const std::string& format, const value& args) {
  if (args.is_list() && args.as_list().is_tuple) return printf_format(format, args.as_list().items);
  return printf_format(format, {args});
}

bool call_method(interpreter& in, const value& object, std::string_view name, call_args& args, value& result) {
  method_fn fn = find_method(object, name);
  if (!fn) return false;
  result = fn(in, object, args);
  return true;
}

}  // namespace gw::local_engine::jinja
