#pragma once
// Values of the chat-template interpreter (a Jinja2 subset, see jinja_parser.h): Python-like None,
// bool, int, float, str, list/tuple and insertion-ordered dict, plus Jinja's namespace(), callables
// (macros, builtins, bound methods), loop objects and "undefined". Lists and dicts are immutable and
// shared (copying one copies a pointer; strings are copied); a namespace is the one mutable object.
// Strings are UTF-8; string operations count code points as Python does.
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace gw::local_engine::jinja {

// A template error raised while rendering (caught and turned into an error string by the
// interpreter; never escapes the public chat_template API).
struct template_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// The template called raise_exception(message).
struct raised_error : template_error {
  using template_error::template_error;
};

class value;
class interpreter;
struct call_args;

// Containers nest at most this deep (JSON input and values built by a template alike), which keeps
// every recursive operation (equality, repr, tojson, destruction) within a small stack.
inline constexpr uint32_t max_value_depth = 256;

struct list_data {
  std::vector<value> items;
  bool is_tuple = false;
  uint32_t depth = 1;
};

struct dict_data {
  std::vector<std::pair<value, value>> entries;  // insertion order, unique keys
  // String key -> position, for dicts larger than index_threshold (smaller ones are scanned).
  std::unordered_map<std::string_view, size_t> index;
  static constexpr size_t index_threshold = 8;
  uint32_t depth = 1;
  dict_data() = default;
  dict_data(const dict_data&) = delete;  // the index points into `entries`
  dict_data& operator=(const dict_data&) = delete;
  const value* find(const value& key) const;
  const value* find(std::string_view key) const;
};

struct namespace_data {
  std::vector<std::pair<std::string, value>> attrs;
  const value* find(std::string_view name) const;
  void set(std::string_view name, value v);
};

using native_fn = std::function<value(interpreter&, call_args&)>;

struct callable_data {
  std::string name;
  native_fn fn;
};

// The `loop` variable of a for loop; the interpreter updates it in place between iterations.
struct loop_data {
  std::shared_ptr<const list_data> items;
  size_t index0 = 0;
  size_t depth0 = 0;
};

// Undefined values remember what was looked up so an error using one can say what is missing:
// `'x' is undefined` or `'dict object' has no attribute 'x'`.
struct undefined_info {
  std::string name;
  const char* owner = nullptr;  // type name of the object the lookup was made on, or null
};
struct none_info {};

class value {
 public:
  enum class type : uint8_t { undefined, none, boolean, integer, number, string, list, dict, ns, callable, loop };

  value() = default;
  static value undefined(std::string name, const char* owner = nullptr);
  static value none();
  static value boolean(bool b);
  static value integer(int64_t i);
  static value number(double d);
  static value string(std::string s);
  static value list(std::vector<value> items, bool is_tuple = false);  // throws when nested too deep
  static value dict(std::vector<std::pair<value, value>> entries);     // later duplicate keys win
  static value make_namespace(std::shared_ptr<namespace_data> ns);
  static value make_callable(std::string name, native_fn fn);
  static value make_loop(std::shared_ptr<loop_data> loop);
  // JSON -> value (objects keep their key order); throws template_error when nested too deeply.
  static value from_json(const nlohmann::ordered_json& j);

  type kind() const { return static_cast<type>(v_.index()); }
  bool is_undefined() const { return kind() == type::undefined; }
  bool is_none() const { return kind() == type::none; }
  bool is_bool() const { return kind() == type::boolean; }
  bool is_int() const { return kind() == type::integer; }
  bool is_float() const { return kind() == type::number; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }  // Python: bool is an int
  bool is_string() const { return kind() == type::string; }
  bool is_list() const { return kind() == type::list; }
  bool is_dict() const { return kind() == type::dict; }
  bool is_namespace() const { return kind() == type::ns; }
  bool is_callable() const { return kind() == type::callable; }
  bool is_loop() const { return kind() == type::loop; }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const;    // int or bool
  double as_double() const;  // int, bool or float
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const list_data& as_list() const { return *std::get<std::shared_ptr<const list_data>>(v_); }
  const std::shared_ptr<const list_data>& list_ptr() const { return std::get<std::shared_ptr<const list_data>>(v_); }
  const dict_data& as_dict() const { return *std::get<std::shared_ptr<const dict_data>>(v_); }
  namespace_data& as_namespace() const { return *std::get<std::shared_ptr<namespace_data>>(v_); }
  const std::shared_ptr<namespace_data>& namespace_ptr() const { return std::get<std::shared_ptr<namespace_data>>(v_); }
  const callable_data& as_callable() const { return *std::get<std::shared_ptr<const callable_data>>(v_); }
  const loop_data& as_loop() const { return *std::get<std::shared_ptr<loop_data>>(v_); }
  const std::shared_ptr<loop_data>& loop_ptr() const { return std::get<std::shared_ptr<loop_data>>(v_); }
  const undefined_info& as_undefined() const { return std::get<undefined_info>(v_); }

  uint32_t depth() const;  // 0 for scalars
  bool truthy() const;
  // Python's type name: 'str', 'int', 'float', 'bool', 'NoneType', 'list', 'tuple', 'dict', ...
  const char* type_name() const;
  // The message of the error raised when an undefined value is used.
  std::string undefined_message() const;

 private:
  std::variant<undefined_info, none_info, bool, int64_t, double, std::string, std::shared_ptr<const list_data>,
               std::shared_ptr<const dict_data>, std::shared_ptr<namespace_data>, std::shared_ptr<const callable_data>,
               std::shared_ptr<loop_data>>
      v_;
};

// Python semantics: 1 == 1.0 == True, deep equality of lists and dicts, undefined == undefined.
bool equals(const value& a, const value& b);
// <, for numbers, strings (code point order) and lists; throws template_error for other pairs.
bool less_than(const value& a, const value& b);

// str(v) as Jinja prints it: undefined -> "", None -> "None", True -> "True", floats as Python's
// repr ("1.0", "1e-05"), lists and dicts as Python's repr.
std::string to_string(const value& v);
void append_string(std::string& out, const value& v);
// repr(v): strings quoted ('a', "it's").
std::string repr(const value& v);
std::string float_repr(double d);

// json.dumps(v, ensure_ascii, indent, separators, sort_keys) as Hugging Face's tojson filter calls
// it: ", " and ": " separators, or "," and ": " when indenting.
struct json_format {
  bool pretty = false;         // indent=None -> false; indent=N -> true with N spaces per level
  std::string indent_unit;
  std::string item_separator;  // empty: the default for the indent mode
  std::string key_separator;   // empty: ": "
  bool sort_keys = false;
  bool ensure_ascii = false;
  size_t max_bytes = 0;  // > 0: throw template_error once the text grows past this
};
std::string to_json(const value& v, const json_format& format);

// UTF-8 helpers (code point based, as Python strings are). Invalid bytes count as one code point each.
// decode_utf8: the code point starting at s[i] and its length in bytes.
size_t decode_utf8(std::string_view s, size_t i, uint32_t& cp);
void append_utf8(std::string& out, uint32_t cp);
size_t utf8_length(std::string_view s);
std::vector<size_t> utf8_offsets(std::string_view s);  // byte offset of each code point, plus s.size()
bool is_ascii(std::string_view s);

}  // namespace gw::local_engine::jinja
