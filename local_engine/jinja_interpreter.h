#pragma once
// Renders a parsed chat template (jinja_parser.h) with a set of global variables. A tree-walking
// interpreter with Jinja2 semantics: for loops and macros open scopes (a `set` inside a loop does not
// leak out of it, hence namespace()), undefined values render as "" and fail when used as objects,
// and filters, tests, methods and globals come from jinja_builtins.h. Limits on executed steps,
// output size and call depth stop runaway templates with an error instead of a hang.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "local_engine/jinja_ast.h"
#include "local_engine/jinja_value.h"

namespace gw::local_engine::jinja {

struct render_limits {
  uint64_t max_steps = 20'000'000;       // statements, loop iterations, calls and element work
  size_t max_output_bytes = 32u << 20;   // the rendered text and every string built on the way
  int max_call_depth = 32;               // nested macro / caller() calls
  size_t max_sequence_length = 1u << 20; // range() and list repetition results
};

// Arguments of a call, filter, test or method: positional then keyword.
struct call_args {
  std::vector<value> positional;
  std::vector<std::pair<std::string, value>> keyword;

  // The argument at `index` or named `name`; null when absent.
  const value* get(size_t index, std::string_view name) const;
  value get_or(size_t index, std::string_view name, value fallback) const;
};

struct frame;

class interpreter {
 public:
  explicit interpreter(const render_limits& limits) : limits_(limits) {}
  ~interpreter();
  interpreter(const interpreter&) = delete;
  interpreter& operator=(const interpreter&) = delete;

  // Renders `prog` with `globals` as the top-level variables. nullopt + *error on failure, the
  // error naming the template line: "line 7: 'foo' is undefined". One render per interpreter.
  std::optional<std::string> render(const program& prog, std::vector<std::pair<std::string, value>> globals,
                                     std::string* error);
  // After a failed render: whether the template itself gave up through raise_exception().
  bool raised() const { return raised_; }

  // ---- services for builtins ----
  value call(const value& callee, call_args& args);
  value get_attr(const value& object, std::string_view name);
  value get_item(const value& object, const value& key);
  // Applies the filter / test `name` (map('upper'), select('odd'), ...); throws if unknown.
  value apply_filter(std::string_view name, const value& input, call_args& args);
  bool apply_test(std::string_view name, const value& input, call_args& args);
  // Accounts for work done (elements visited, bytes built); throws once the step budget is spent.
  void charge(uint64_t steps);
  // Throws when a string of `bytes` would exceed the output limit.
  void check_string_size(size_t bytes);
  // check_string_size, and charges for building a string of that size.
  void charge_string(size_t bytes);
  const render_limits& limits() const { return limits_; }
  // A new namespace() object (tracked: namespaces may form reference cycles, broken after rendering).
  value new_namespace();

 private:
  enum class flow : uint8_t { normal, break_, continue_ };

  render_limits limits_;
  uint64_t steps_ = 0;
  int call_depth_ = 0;
  uint32_t line_ = 0;  // line of the node being evaluated, for error messages
  bool raised_ = false;
  std::shared_ptr<frame> root_;
  std::vector<std::shared_ptr<namespace_data>> namespaces_;

  flow exec(const body& b, const std::shared_ptr<frame>& f, std::string& out);
  flow exec_for(const for_stmt& s, const std::shared_ptr<frame>& f, std::string& out);
  void exec_set(const set_stmt& s, const std::shared_ptr<frame>& f);
  value eval(const expr& e, const std::shared_ptr<frame>& f);
  value eval_call(const call_expr& c, const std::shared_ptr<frame>& f, value caller);
  value eval_compare(const compare_expr& c, const std::shared_ptr<frame>& f);
  value eval_binary(binary_op op, const value& a, const value& b);
  value eval_slice(const slice_expr& s, const std::shared_ptr<frame>& f);
  void eval_args(const arguments& a, const std::shared_ptr<frame>& f, call_args& out);
  value apply_filters(const std::vector<filter_call>& filters, value v, const std::shared_ptr<frame>& f);
  value make_macro(const macro_stmt& m, const std::shared_ptr<frame>& f);
  value invoke_body(const body& content, const std::vector<macro_param>& params, const std::shared_ptr<frame>& parent,
                    call_args& args, value caller);
  value lookup(std::string_view name, const std::shared_ptr<frame>& f);
  void emit(std::string& out, std::string_view text);
  void emit_value(std::string& out, const value& v);
  void step();
};

}  // namespace gw::local_engine::jinja
