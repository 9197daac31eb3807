// Values of the chat-template interpreter: construction, JSON conversion, Python-style equality,
// ordering, str()/repr() and json.dumps() formatting.
#include "local_engine/jinja_value.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

namespace gw::local_engine::jinja {

namespace {

uint32_t depth_of_items(const std::vector<value>& items) {
  uint32_t d = 0;
  for (const value& v : items) d = std::max(d, v.depth());
  return d + 1;
}

void check_depth(uint32_t depth) {
  if (depth > max_value_depth)
    throw template_error("value nested more than " + std::to_string(max_value_depth) + " levels deep");
}

}  // namespace

// ---- containers ----

const value* dict_data::find(const value& key) const {
  if (key.is_string()) return find(std::string_view(key.as_string()));
  for (const auto& [k, v] : entries)
    if (!k.is_string() && equals(k, key)) return &v;
  return nullptr;
}

const value* dict_data::find(std::string_view key) const {
  if (!index.empty()) {
    auto it = index.find(key);
    return it == index.end() ? nullptr : &entries[it->second].second;
  }
  for (const auto& [k, v] : entries)
    if (k.is_string() && k.as_string() == key) return &v;
  return nullptr;
}

const value* namespace_data::find(std::string_view name) const {
  for (const auto& [k, v] : attrs)
    if (k == name) return &v;
  return nullptr;
}

void namespace_data::set(std::string_view name, value v) {
  for (auto& [k, old] : attrs)
    if (k == name) {
      old = std::move(v);
      return;
    }
  attrs.emplace_back(std::string(name), std::move(v));
}

// ---- construction ----

value value::undefined(std::string name, const char* owner) {
  value r;
  r.v_ = undefined_info{std::move(name), owner};
  return r;
}
value value::none() {
  value r;
  r.v_ = none_info{};
  return r;
}
value value::boolean(bool b) {
  value r;
  r.v_ = b;
  return r;
}
value value::integer(int64_t i) {
  value r;
  r.v_ = i;
  return r;
}
value value::number(double d) {
  value r;
  r.v_ = d;
  return r;
}
value value::string(std::string s) {
  value r;
  r.v_ = std::move(s);
  return r;
}

value value::list(std::vector<value> items, bool is_tuple) {
  auto data = std::make_shared<list_data>();
  data->depth = depth_of_items(items);
  check_depth(data->depth);
  data->items = std::move(items);
  data->is_tuple = is_tuple;
  value r;
  r.v_ = std::shared_ptr<const list_data>(std::move(data));
  return r;
}

value value::dict(std::vector<std::pair<value, value>> entries) {
  auto data = std::make_shared<dict_data>();
  uint32_t d = 0;
  // Reserved up front: the index holds views of the key strings, which must not move.
  data->entries.reserve(entries.size());
  bool indexed = entries.size() > dict_data::index_threshold;
  auto position_of = [&](const value& key) -> size_t {
    if (indexed && key.is_string()) {
      auto it = data->index.find(key.as_string());
      return it == data->index.end() ? SIZE_MAX : it->second;
    }
    for (size_t i = 0; i < data->entries.size(); ++i)
      if (equals(data->entries[i].first, key)) return i;
    return SIZE_MAX;
  };
  for (auto& [k, v] : entries) {
    d = std::max({d, k.depth(), v.depth()});
    if (size_t at = position_of(k); at != SIZE_MAX) {
      data->entries[at].second = std::move(v);  // a duplicate key: the last value wins, as in Python
      continue;
    }
    data->entries.emplace_back(std::move(k), std::move(v));
    const value& key = data->entries.back().first;
    if (indexed && key.is_string()) data->index.emplace(key.as_string(), data->entries.size() - 1);
  }
  data->depth = d + 1;
  check_depth(data->depth);
  value r;
  r.v_ = std::shared_ptr<const dict_data>(std::move(data));
  return r;
}

value value::make_namespace(std::shared_ptr<namespace_data> ns) {
  value r;
  r.v_ = std::move(ns);
  return r;
}

value value::make_callable(std::string name, native_fn fn) {
  value r;
  r.v_ = std::shared_ptr<const callable_data>(std::make_shared<callable_data>(callable_data{std::move(name), std::move(fn)}));
  return r;
}

value value::make_loop(std::shared_ptr<loop_data> loop) {
  value r;
  r.v_ = std::move(loop);
  return r;
}

namespace {

value from_json_at(const nlohmann::ordered_json& j, uint32_t depth) {
  if (depth > max_value_depth)
    throw template_error("input JSON nested more than " + std::to_string(max_value_depth) + " levels deep");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
    case nlohmann::ordered_json::value_t::discarded:
      return value::none();
    case nlohmann::ordered_json::value_t::boolean:
      return value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return value::integer(static_cast<int64_t>(u));
      return value::number(static_cast<double>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return value::number(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return value::string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::binary:
      return value::none();
    case nlohmann::ordered_json::value_t::array: {
      std::vector<value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json_at(e, depth + 1));
      return value::list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      std::vector<std::pair<value, value>> entries;
      entries.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it)
        entries.emplace_back(value::string(it.key()), from_json_at(it.value(), depth + 1));
      return value::dict(std::move(entries));
    }
  }
  return value::none();
}

}  // namespace

value value::from_json(const nlohmann::ordered_json& j) { return from_json_at(j, 1); }

// ---- accessors ----

int64_t value::as_int() const {
  if (is_bool()) return as_bool() ? 1 : 0;
  return std::get<int64_t>(v_);
}

double value::as_double() const {
  if (is_float()) return std::get<double>(v_);
  return static_cast<double>(as_int());
}

uint32_t value::depth() const {
  if (is_list()) return as_list().depth;
  if (is_dict()) return as_dict().depth;
  return 0;
}

bool value::truthy() const {
  switch (kind()) {
    case type::undefined:
    case type::none:
      return false;
    case type::boolean:
      return as_bool();
    case type::integer:
      return as_int() != 0;
    case type::number:
      return as_double() != 0.0;
    case type::string:
      return !as_string().empty();
    case type::list:
      return !as_list().items.empty();
    case type::dict:
      return !as_dict().entries.empty();
    default:
      return true;
  }
}

const char* value::type_name() const {
  switch (kind()) {
    case type::undefined: return "undefined";
    case type::none: return "NoneType";
    case type::boolean: return "bool";
    case type::integer: return "int";
    case type::number: return "float";
    case type::string: return "str";
    case type::list: return as_list().is_tuple ? "tuple" : "list";
    case type::dict: return "dict";
    case type::ns: return "Namespace";
    case type::callable: return "function";
    case type::loop: return "LoopContext";
  }
  return "object";
}

std::string value::undefined_message() const {
  const undefined_info& u = as_undefined();
  if (u.owner) return std::string("'") + u.owner + " object' has no attribute '" + u.name + "'";
  if (u.name.empty()) return "value is undefined";
  return "'" + u.name + "' is undefined";
}

// ---- comparison ----

bool equals(const value& a, const value& b) {
  using t = value::type;
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case t::undefined:
    case t::none:
      return true;
    case t::string:
      return a.as_string() == b.as_string();
    case t::list: {
      const auto& x = a.as_list().items;
      const auto& y = b.as_list().items;
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!equals(x[i], y[i])) return false;
      return true;
    }
    case t::dict: {
      const auto& x = a.as_dict();
      const auto& y = b.as_dict();
      if (x.entries.size() != y.entries.size()) return false;
      for (const auto& [k, v] : x.entries) {
        const value* other = y.find(k);
        if (!other || !equals(v, *other)) return false;
      }
      return true;
    }
    case t::ns:
      return a.namespace_ptr() == b.namespace_ptr();
    case t::callable:
      return &a.as_callable() == &b.as_callable();
    case t::loop:
      return &a.as_loop() == &b.as_loop();
    default:
      return false;
  }
}

bool less_than(const value& a, const value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();  // UTF-8 keeps code point order
  if (a.is_list() && b.is_list()) {
    const auto& x = a.as_list().items;
    const auto& y = b.as_list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equals(x[i], y[i])) continue;
      return less_than(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  if (a.is_undefined()) throw template_error(a.undefined_message());
  if (b.is_undefined()) throw template_error(b.undefined_message());
  throw template_error(std::string("'<' not supported between instances of '") + a.type_name() + "' and '" +
                       b.type_name() + "'");
}

// ---- formatting ----

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));  // "-d.ddde+XX", shortest round trip
  bool negative = !sci.empty() && sci[0] == '-';
  if (negative) sci.remove_prefix(1);
  size_t e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos))
    if (c != '.') digits += c;
  int exp10 = 0;
  std::string_view exp_text = sci.substr(e_pos + 1);
  if (!exp_text.empty() && exp_text[0] == '+') exp_text.remove_prefix(1);
  std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exp10);
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();

  std::string out = negative ? "-" : "";
  if (exp10 >= -4 && exp10 < 16) {
    if (exp10 >= 0) {
      size_t int_len = static_cast<size_t>(exp10) + 1;
      if (digits.size() <= int_len) {
        out += digits + std::string(int_len - digits.size(), '0') + ".0";
      } else {
        out += digits.substr(0, int_len) + "." + digits.substr(int_len);
      }
    } else {
      out += "0." + std::string(static_cast<size_t>(-exp10 - 1), '0') + digits;
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    out += exp10 < 0 ? "e-" : "e+";
    int a = exp10 < 0 ? -exp10 : exp10;
    if (a < 10) out += '0';
    out += std::to_string(a);
  }
  return out;
}

namespace {

void append_string_repr(std::string& out, const std::string& s) {
  char quote = '\'';
  if (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) quote = '"';
  out += quote;
  for (unsigned char c : s) {
    if (c == static_cast<unsigned char>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += quote;
}

// str()/repr() of a value. `in_namespace`: inside a namespace's attributes, where a nested
// namespace prints as "<Namespace>" only (namespaces can reference themselves, directly or through
// lists, and chains of them are not bounded by max_value_depth).
void append_str(std::string& out, const value& v, bool in_namespace);

void append_repr(std::string& out, const value& v, bool in_namespace) {
  if (v.is_string()) {
    append_string_repr(out, v.as_string());
  } else if (v.is_undefined()) {
    out += "Undefined";
  } else {
    append_str(out, v, in_namespace);
  }
}

void append_container_repr(std::string& out, const value& v, bool in_namespace) {
  if (v.is_list()) {
    const list_data& l = v.as_list();
    out += l.is_tuple ? '(' : '[';
    for (size_t i = 0; i < l.items.size(); ++i) {
      if (i) out += ", ";
      append_repr(out, l.items[i], in_namespace);
    }
    if (l.is_tuple && l.items.size() == 1) out += ',';
    out += l.is_tuple ? ')' : ']';
    return;
  }
  const dict_data& d = v.as_dict();
  out += '{';
  bool first = true;
  for (const auto& [k, val] : d.entries) {
    if (!first) out += ", ";
    first = false;
    append_repr(out, k, in_namespace);
    out += ": ";
    append_repr(out, val, in_namespace);
  }
  out += '}';
}

void append_str(std::string& out, const value& v, bool in_namespace) {
  using t = value::type;
  switch (v.kind()) {
    case t::undefined:
      return;
    case t::none:
      out += "None";
      return;
    case t::boolean:
      out += v.as_bool() ? "True" : "False";
      return;
    case t::integer: {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof buf, v.as_int());
      out.append(buf, r.ptr);
      return;
    }
    case t::number:
      out += float_repr(v.as_double());
      return;
    case t::string:
      out += v.as_string();
      return;
    case t::list:
    case t::dict:
      append_container_repr(out, v, in_namespace);
      return;
    case t::ns: {
      if (in_namespace) {
        out += "<Namespace>";
        return;
      }
      out += "<Namespace {";
      bool first = true;
      for (const auto& [k, val] : v.as_namespace().attrs) {
        if (!first) out += ", ";
        first = false;
        append_string_repr(out, k);
        out += ": ";
        append_repr(out, val, true);
      }
      out += "}>";
      return;
    }
    case t::callable:
      out += "<function " + v.as_callable().name + ">";
      return;
    case t::loop:
      out += "<LoopContext>";
      return;
  }
}

}  // namespace

void append_string(std::string& out, const value& v) { append_str(out, v, false); }

std::string to_string(const value& v) {
  if (v.is_string()) return v.as_string();
  std::string out;
  append_string(out, v);
  return out;
}

std::string repr(const value& v) {
  std::string out;
  append_repr(out, v, false);
  return out;
}

// ---- JSON ----

// Decodes one UTF-8 code point at s[i]; returns its length (1 for an invalid byte, cp = the byte).
size_t decode_utf8(std::string_view s, size_t i, uint32_t& cp) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size()) {
    cp = c;
    return 1;
  }
  if (n == 1) {
    cp = c;
    return 1;
  }
  cp = c & (0x7f >> n);
  for (size_t k = 1; k < n; ++k) {
    unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) {
      cp = c;
      return 1;
    }
    cp = (cp << 6) | (cc & 0x3f);
  }
  return n;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

namespace {

void append_u_escape(std::string& out, uint32_t unit) {
  static const char* hex = "0123456789abcdef";
  out += "\\u";
  for (int shift = 12; shift >= 0; shift -= 4) out += hex[(unit >> shift) & 15];
}

void append_json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      uint32_t cp = 0;
      size_t n = decode_utf8(s, i, cp);
      if (ensure_ascii) {
        if (cp >= 0x10000) {
          cp -= 0x10000;
          append_u_escape(out, 0xd800 + (cp >> 10));
          append_u_escape(out, 0xdc00 + (cp & 0x3ff));
        } else {
          append_u_escape(out, cp);
        }
      } else {
        out.append(s.data() + i, n);
      }
      i += n;
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) append_u_escape(out, c);
        else out += static_cast<char>(c);
    }
    ++i;
  }
  out += '"';
}

void append_json(std::string& out, const value& v, const json_format& f, const std::string& item_sep,
                 const std::string& key_sep, int level) {
  auto newline = [&](int lvl) {
    if (f.max_bytes && out.size() + static_cast<size_t>(lvl) * f.indent_unit.size() > f.max_bytes)
      throw template_error("tojson output exceeds " + std::to_string(f.max_bytes) + " bytes");
    out += '\n';
    for (int k = 0; k < lvl; ++k) out += f.indent_unit;
  };
  switch (v.kind()) {
    case value::type::none:
      out += "null";
      return;
    case value::type::boolean:
      out += v.as_bool() ? "true" : "false";
      return;
    case value::type::integer:
      append_string(out, v);
      return;
    case value::type::number: {
      double d = v.as_double();
      if (std::isnan(d)) out += "NaN";
      else if (std::isinf(d)) out += d < 0 ? "-Infinity" : "Infinity";
      else out += float_repr(d);
      return;
    }
    case value::type::string:
      append_json_string(out, v.as_string(), f.ensure_ascii);
      return;
    case value::type::list: {
      const auto& items = v.as_list().items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        if (f.pretty) newline(level + 1);
        append_json(out, items[i], f, item_sep, key_sep, level + 1);
      }
      if (f.pretty) newline(level);
      out += ']';
      return;
    }
    case value::type::dict: {
      const auto& entries = v.as_dict().entries;
      if (entries.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<value, value>*> order;
      order.reserve(entries.size());
      for (const auto& e : entries) order.push_back(&e);
      if (f.sort_keys)
        std::stable_sort(order.begin(), order.end(),
                         [](const auto* a, const auto* b) { return less_than(a->first, b->first); });
      out += '{';
      bool first = true;
      for (const auto* e : order) {
        if (!first) out += item_sep;
        first = false;
        if (f.pretty) newline(level + 1);
        // json.dumps turns non-string keys into strings: 1 -> "1", True -> "true", None -> "null".
        if (e->first.is_string()) {
          append_json_string(out, e->first.as_string(), f.ensure_ascii);
        } else if (e->first.is_bool() || e->first.is_none() || e->first.is_number()) {
          std::string key;
          append_json(key, e->first, f, item_sep, key_sep, level);
          append_json_string(out, key, f.ensure_ascii);
        } else {
          throw template_error(std::string("keys must be str, int, float, bool or None, not ") + e->first.type_name());
        }
        out += key_sep;
        append_json(out, e->second, f, item_sep, key_sep, level + 1);
      }
      if (f.pretty) newline(level);
      out += '}';
      return;
    }
    case value::type::undefined:
      throw template_error("Object of type Undefined is not JSON serializable (" + v.undefined_message() + ")");
    default:
      throw template_error(std::string("Object of type ") + v.type_name() + " is not JSON serializable");
  }
}

}  // namespace

std::string to_json(const value& v, const json_format& format) {
  std::string item_sep = format.item_separator.empty() ? (format.pretty ? "," : ", ") : format.item_separator;
  std::string key_sep = format.key_separator.empty() ? ": " : format.key_separator;
  std::string out;
  append_json(out, v, format, item_sep, key_sep, 0);
  return out;
}

// ---- UTF-8 ----

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

size_t utf8_length(std::string_view s) {
  if (is_ascii(s)) return s.size();
  size_t n = 0;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    i += decode_utf8(s, i, cp);
    ++n;
  }
  return n;
}

std::vector<size_t> utf8_offsets(std::string_view s) {
  std::vector<size_t> offsets;
  offsets.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size();) {
    offsets.push_back(i);
    uint32_t cp;
    i += decode_utf8(s, i, cp);
  }
  offsets.push_back(s.size());
  return offsets;
}

}  // namespace gw::local_engine::jinja
