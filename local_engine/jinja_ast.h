#pragma once
// The syntax tree of a parsed chat template (see jinja_parser.h): expressions and statements, each
// tagged with its kind (the interpreter switches on it) and the template line it starts on.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "local_engine/jinja_value.h"

namespace gw::local_engine::jinja {

using filter_fn = value (*)(interpreter&, const value& input, call_args& args);
using test_fn = bool (*)(interpreter&, const value& input, call_args& args);

// ---- expressions ----

enum class expr_kind : uint8_t {
  literal, name, list, dict, attr, item, slice, call, filter, test, unary, binary, logical, compare, concat, cond,
};

struct expr {
  expr_kind kind;
  uint32_t line;
  expr(expr_kind k, uint32_t l) : kind(k), line(l) {}
  virtual ~expr() = default;
};
using expr_ptr = std::unique_ptr<expr>;

struct literal_expr : expr {
  value v;
  literal_expr(uint32_t l, value val) : expr(expr_kind::literal, l), v(std::move(val)) {}
};

struct name_expr : expr {
  std::string name;
  name_expr(uint32_t l, std::string n) : expr(expr_kind::name, l), name(std::move(n)) {}
};

struct list_expr : expr {  // [a, b] or (a, b)
  std::vector<expr_ptr> items;
  bool is_tuple = false;
  explicit list_expr(uint32_t l) : expr(expr_kind::list, l) {}
};

struct dict_expr : expr {
  std::vector<std::pair<expr_ptr, expr_ptr>> items;
  explicit dict_expr(uint32_t l) : expr(expr_kind::dict, l) {}
};

struct attr_expr : expr {  // object.name
  expr_ptr object;
  std::string name;
  attr_expr(uint32_t l, expr_ptr o, std::string n) : expr(expr_kind::attr, l), object(std::move(o)), name(std::move(n)) {}
};

struct item_expr : expr {  // object[key]
  expr_ptr object, key;
  item_expr(uint32_t l, expr_ptr o, expr_ptr k) : expr(expr_kind::item, l), object(std::move(o)), key(std::move(k)) {}
};

struct slice_expr : expr {  // object[start:stop:step], each part optional
  expr_ptr object, start, stop, step;
  explicit slice_expr(uint32_t l) : expr(expr_kind::slice, l) {}
};

struct arguments {
  std::vector<expr_ptr> positional;
  std::vector<std::pair<std::string, expr_ptr>> keyword;
};

struct call_expr : expr {
  expr_ptr callee;
  arguments args;
  explicit call_expr(uint32_t l) : expr(expr_kind::call, l) {}
};

struct filter_expr : expr {  // input | name(args); fn is null for an unknown filter in a conditional branch
  expr_ptr input;
  std::string name;
  filter_fn fn = nullptr;
  arguments args;
  explicit filter_expr(uint32_t l) : expr(expr_kind::filter, l) {}
};

struct test_expr : expr {  // input is [not] name(args)
  expr_ptr input;
  std::string name;
  test_fn fn = nullptr;
  arguments args;
  bool negated = false;
  explicit test_expr(uint32_t l) : expr(expr_kind::test, l) {}
};

enum class unary_op : uint8_t { neg, pos, not_ };
struct unary_expr : expr {
  unary_op op;
  expr_ptr operand;
  unary_expr(uint32_t l, unary_op o, expr_ptr e) : expr(expr_kind::unary, l), op(o), operand(std::move(e)) {}
};

enum class binary_op : uint8_t { add, sub, mul, div, floordiv, mod, pow };
struct binary_expr : expr {
  binary_op op;
  expr_ptr left, right;
  binary_expr(uint32_t l, binary_op o, expr_ptr a, expr_ptr b)
      : expr(expr_kind::binary, l), op(o), left(std::move(a)), right(std::move(b)) {}
};

struct logical_expr : expr {  // and / or, short-circuit, returning the deciding operand as Python does
  bool is_and;
  expr_ptr left, right;
  logical_expr(uint32_t l, bool a, expr_ptr x, expr_ptr y)
      : expr(expr_kind::logical, l), is_and(a), left(std::move(x)), right(std::move(y)) {}
};

enum class compare_op : uint8_t { eq, ne, lt, le, gt, ge, in, not_in };
struct compare_expr : expr {  // a < b <= c chains as Python does
  expr_ptr first;
  std::vector<std::pair<compare_op, expr_ptr>> rest;
  explicit compare_expr(uint32_t l) : expr(expr_kind::compare, l) {}
};

struct concat_expr : expr {  // a ~ b ~ c
  std::vector<expr_ptr> parts;
  explicit concat_expr(uint32_t l) : expr(expr_kind::concat, l) {}
};

struct cond_expr : expr {  // then if test else otherwise (otherwise optional: undefined)
  expr_ptr then, test, otherwise;
  explicit cond_expr(uint32_t l) : expr(expr_kind::cond, l) {}
};

// ---- statements ----

enum class stmt_kind : uint8_t {
  text, output, if_, for_, set, set_block, macro, call_block, filter_block, with, break_, continue_, block,
};

struct stmt {
  stmt_kind kind;
  uint32_t line;
  stmt(stmt_kind k, uint32_t l) : kind(k), line(l) {}
  virtual ~stmt() = default;
};
using stmt_ptr = std::unique_ptr<stmt>;
using body = std::vector<stmt_ptr>;

struct text_stmt : stmt {
  std::string text;
  text_stmt(uint32_t l, std::string t) : stmt(stmt_kind::text, l), text(std::move(t)) {}
};

struct output_stmt : stmt {
  expr_ptr e;
  output_stmt(uint32_t l, expr_ptr x) : stmt(stmt_kind::output, l), e(std::move(x)) {}
};

struct if_stmt : stmt {
  std::vector<std::pair<expr_ptr, body>> branches;  // if, elif...
  body otherwise;
  explicit if_stmt(uint32_t l) : stmt(stmt_kind::if_, l) {}
};

struct for_stmt : stmt {
  std::vector<std::string> targets;  // one name, or several to unpack each item into
  expr_ptr iterable;
  expr_ptr filter;  // for x in xs if filter
  body loop_body, otherwise;
  explicit for_stmt(uint32_t l) : stmt(stmt_kind::for_, l) {}
};

struct set_stmt : stmt {  // set a = v / set a, b = v / set ns.attr = v
  std::vector<std::string> targets;
  std::string attr;  // non-empty: targets[0] is a namespace and attr the attribute set on it
  expr_ptr value_expr;
  explicit set_stmt(uint32_t l) : stmt(stmt_kind::set, l) {}
};

// A filter applied by `{% set x | f %}` or `{% filter f %}`.
struct filter_call {
  std::string name;
  filter_fn fn = nullptr;
  arguments args;
  uint32_t line = 0;
};

struct set_block_stmt : stmt {  // set name [| filters] ... endset
  std::string target;
  std::vector<filter_call> filters;
  body content;
  explicit set_block_stmt(uint32_t l) : stmt(stmt_kind::set_block, l) {}
};

struct macro_param {
  std::string name;
  expr_ptr default_value;  // may be null
};

struct macro_stmt : stmt {
  std::string name;
  std::vector<macro_param> params;
  body content;
  explicit macro_stmt(uint32_t l) : stmt(stmt_kind::macro, l) {}
};

struct call_block_stmt : stmt {  // call(params) macro(args) ... endcall
  std::vector<macro_param> caller_params;
  std::unique_ptr<call_expr> call;
  body content;
  explicit call_block_stmt(uint32_t l) : stmt(stmt_kind::call_block, l) {}
};

struct filter_block_stmt : stmt {
  std::vector<filter_call> filters;
  body content;
  explicit filter_block_stmt(uint32_t l) : stmt(stmt_kind::filter_block, l) {}
};

struct with_stmt : stmt {
  std::vector<std::pair<std::string, expr_ptr>> assignments;
  body content;
  explicit with_stmt(uint32_t l) : stmt(stmt_kind::with, l) {}
};

struct block_stmt : stmt {  // {% generation %} (Hugging Face's assistant-mask marker): renders its body
  body content;
  explicit block_stmt(uint32_t l) : stmt(stmt_kind::block, l) {}
};

struct loop_control_stmt : stmt {  // break / continue
  explicit loop_control_stmt(uint32_t l, bool is_break) : stmt(is_break ? stmt_kind::break_ : stmt_kind::continue_, l) {}
};

// A parsed template.
struct program {
  body root;
  // Whether some for loop iterates a message's content (`for part in message['content']`): such a
  // template renders content-part arrays itself.
  bool iterates_content = false;
};

}  // namespace gw::local_engine::jinja
