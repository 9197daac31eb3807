// Tree-walking interpreter for parsed chat templates (see jinja_interpreter.h).
#include "local_engine/jinja_interpreter.h"

#include <cmath>
#include <new>

#include "local_engine/jinja_builtins.h"

namespace gw::local_engine::jinja {

// A variable scope: the template's top level, one per for loop (cleared at each iteration), one per
// macro / caller() call and per with block. Lookups walk up the parents.
struct frame {
  std::vector<std::pair<std::string, value>> vars;
  std::shared_ptr<frame> parent;

  const value* find(std::string_view name) const {
    for (const auto& [k, v] : vars)
      if (k == name) return &v;
    return nullptr;
  }
  void set(std::string_view name, value v) {
    for (auto& [k, old] : vars)
      if (k == name) {
        old = std::move(v);
        return;
      }
    vars.emplace_back(std::string(name), std::move(v));
  }
};

namespace {

// Steps charged for copying a value: strings cost by size, so that templates cannot multiply
// memory without running out of steps.
uint64_t weight(const value& v) { return 1 + (v.is_string() ? v.as_string().size() / 16 : 0); }

[[noreturn]] void type_error(const char* op, const value& a, const value& b) {
  throw template_error(std::string("unsupported operand type(s) for ") + op + ": '" + a.type_name() + "' and '" +
                       b.type_name() + "'");
}

void check_defined(const value& v) {
  if (v.is_undefined()) throw template_error(v.undefined_message());
}

// Python slice(start, stop, step).indices(n) iteration.
struct slice_range {
  int64_t start, stop, step;

  // Calls fn(i) for each index of the slice.
  template <typename Fn>
  void for_each(Fn fn) const {
    for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
      fn(static_cast<size_t>(i));
      if (__builtin_add_overflow(i, step, &i)) break;
    }
  }
};

slice_range resolve_slice(int64_t n, const value& start_v, const value& stop_v, const value& step_v) {
  auto present = [](const value& v) { return !v.is_undefined() && !v.is_none(); };
  auto as_index = [](const value& v) {
    if (!v.is_int() && !v.is_bool()) throw template_error(std::string("slice indices must be integers, not ") + v.type_name());
    return v.as_int();
  };
  int64_t step = present(step_v) ? as_index(step_v) : 1;
  if (step == 0) throw template_error("slice step cannot be zero");
  int64_t lower = step > 0 ? 0 : -1, upper = step > 0 ? n : n - 1;
  auto clamp = [&](const value& v, int64_t dflt) {
    if (!present(v)) return dflt;
    int64_t i = as_index(v);
    if (i < 0) {
      i += n;
      if (i < lower) i = lower;
    } else if (i > upper) {
      i = upper;
    }
    return i;
  };
  int64_t start = clamp(start_v, step > 0 ? lower : upper);
  int64_t stop = clamp(stop_v, step > 0 ? upper : lower);
  return {start, stop, step};
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t py_mod(int64_t a, int64_t b) {
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

}  // namespace

// ---- call_args ----

const value* call_args::get(size_t index, std::string_view name) const {
  if (index < positional.size()) return &positional[index];
  for (const auto& [k, v] : keyword)
    if (k == name) return &v;
  return nullptr;
}

value call_args::get_or(size_t index, std::string_view name, value fallback) const {
  const value* v = get(index, name);
  return v ? *v : std::move(fallback);
}

// ---- interpreter ----

interpreter::~interpreter() {
  for (auto& ns : namespaces_) ns->attrs.clear();
  if (root_) root_->vars.clear();
}

std::optional<std::string> interpreter::render(const program& prog, std::vector<std::pair<std::string, value>> globals,
                                               std::string* error) {
  root_ = std::make_shared<frame>();
  root_->vars = std::move(globals);
  std::string out;
  std::string failure;
  try {
    exec(prog.root, root_, out);
  } catch (const raised_error& e) {
    raised_ = true;
    failure = e.what();
  } catch (const template_error& e) {
    failure = e.what();
  } catch (const std::bad_alloc&) {
    failure = "out of memory";
  } catch (const std::exception& e) {
    failure = std::string("internal error: ") + e.what();
  }
  // Break reference cycles (a namespace holding itself) and drop everything the template built.
  for (auto& ns : namespaces_) ns->attrs.clear();
  namespaces_.clear();
  root_->vars.clear();
  root_.reset();
  if (!failure.empty()) {
    if (error) *error = "line " + std::to_string(line_) + ": " + failure;
    return std::nullopt;
  }
  return out;
}

void interpreter::charge(uint64_t steps) {
  steps_ += steps;
  if (steps_ > limits_.max_steps)
    throw template_error("template exceeded its step limit (" + std::to_string(limits_.max_steps) +
                         " steps): runaway loop?");
}

void interpreter::step() { charge(1); }

void interpreter::check_string_size(size_t bytes) {
  if (bytes > limits_.max_output_bytes)
    throw template_error("string of " + std::to_string(bytes) + " bytes exceeds the output limit (" +
                         std::to_string(limits_.max_output_bytes) + " bytes)");
}

void interpreter::charge_string(size_t bytes) {
  check_string_size(bytes);
  charge(bytes / 16);
}

value interpreter::new_namespace() {
  auto ns = std::make_shared<namespace_data>();
  namespaces_.push_back(ns);
  return value::make_namespace(std::move(ns));
}

void interpreter::emit(std::string& out, std::string_view text) {
  if (out.size() + text.size() > limits_.max_output_bytes)
    throw template_error("output exceeds the limit of " + std::to_string(limits_.max_output_bytes) + " bytes");
  charge(text.size() / 16);
  out.append(text);
}

void interpreter::emit_value(std::string& out, const value& v) {
  if (v.is_string()) return emit(out, v.as_string());
  if (v.is_undefined()) return;
  std::string text;
  append_string(text, v);
  emit(out, text);
}

value interpreter::lookup(std::string_view name, const std::shared_ptr<frame>& f) {
  for (const frame* fr = f.get(); fr; fr = fr->parent.get())
    if (const value* v = fr->find(name)) {
      charge(weight(*v));
      return *v;
    }
  if (const value* g = find_global(name)) return *g;
  return value::undefined(std::string(name));
}

// ---- statements ----

interpreter::flow interpreter::exec(const body& b, const std::shared_ptr<frame>& f, std::string& out) {
  for (const stmt_ptr& sp : b) {
    const stmt& s = *sp;
    step();
    line_ = s.line;
    switch (s.kind) {
      case stmt_kind::text:
        emit(out, static_cast<const text_stmt&>(s).text);
        break;
      case stmt_kind::output:
        emit_value(out, eval(*static_cast<const output_stmt&>(s).e, f));
        break;
      case stmt_kind::if_: {
        const auto& is = static_cast<const if_stmt&>(s);
        const body* chosen = &is.otherwise;
        for (const auto& [cond, branch] : is.branches)
          if (eval(*cond, f).truthy()) {
            chosen = &branch;
            break;
          }
        flow r = exec(*chosen, f, out);
        if (r != flow::normal) return r;
        break;
      }
      case stmt_kind::for_: {
        flow r = exec_for(static_cast<const for_stmt&>(s), f, out);
        if (r != flow::normal) return r;
        break;
      }
      case stmt_kind::set:
        exec_set(static_cast<const set_stmt&>(s), f);
        break;
      case stmt_kind::set_block: {
        const auto& sb = static_cast<const set_block_stmt&>(s);
        std::string buf;
        flow r = exec(sb.content, f, buf);
        f->set(sb.target, apply_filters(sb.filters, value::string(std::move(buf)), f));
        if (r != flow::normal) return r;
        break;
      }
      case stmt_kind::macro: {
        const auto& m = static_cast<const macro_stmt&>(s);
        f->set(m.name, make_macro(m, f));
        break;
      }
      case stmt_kind::call_block: {
        const auto& cb = static_cast<const call_block_stmt&>(s);
        std::weak_ptr<frame> site = f;
        const call_block_stmt* block = &cb;
        value caller = value::make_callable("caller", [block, site](interpreter& in, call_args& args) {
          std::shared_ptr<frame> parent = site.lock();
          if (!parent) throw template_error("caller() used outside of its call block");
          return in.invoke_body(block->content, block->caller_params, parent, args, value());
        });
        emit_value(out, eval_call(*cb.call, f, std::move(caller)));
        break;
      }
      case stmt_kind::filter_block: {
        const auto& fb = static_cast<const filter_block_stmt&>(s);
        std::string buf;
        flow r = exec(fb.content, f, buf);
        emit_value(out, apply_filters(fb.filters, value::string(std::move(buf)), f));
        if (r != flow::normal) return r;
        break;
      }
      case stmt_kind::with: {
        const auto& w = static_cast<const with_stmt&>(s);
        auto inner = std::make_shared<frame>();
        inner->parent = f;
        for (const auto& [name, e] : w.assignments) inner->set(name, eval(*e, f));
        flow r = exec(w.content, inner, out);
        inner->vars.clear();
        if (r != flow::normal) return r;
        break;
      }
      case stmt_kind::block: {
        flow r = exec(static_cast<const block_stmt&>(s).content, f, out);
        if (r != flow::normal) return r;
        break;
      }
      case stmt_kind::break_:
        return flow::break_;
      case stmt_kind::continue_:
        return flow::continue_;
    }
  }
  return flow::normal;
}

interpreter::flow interpreter::exec_for(const for_stmt& s, const std::shared_ptr<frame>& f, std::string& out) {
  value iterable = eval(*s.iterable, f);
  std::shared_ptr<const list_data> items;
  switch (iterable.kind()) {
    case value::type::undefined:
      break;
    case value::type::list:
      items = iterable.list_ptr();
      break;
    case value::type::dict: {
      auto keys = std::make_shared<list_data>();
      for (const auto& kv : iterable.as_dict().entries) keys->items.push_back(kv.first);
      items = std::move(keys);
      break;
    }
    case value::type::string: {
      auto chars = std::make_shared<list_data>();
      const std::string& str = iterable.as_string();
      std::vector<size_t> offsets = utf8_offsets(str);
      for (size_t i = 0; i + 1 < offsets.size(); ++i)
        chars->items.push_back(value::string(str.substr(offsets[i], offsets[i + 1] - offsets[i])));
      charge(chars->items.size());
      items = std::move(chars);
      break;
    }
    default:
      throw template_error(std::string("'") + iterable.type_name() + "' object is not iterable");
  }

  auto loop_frame = std::make_shared<frame>();
  loop_frame->parent = f;
  auto bind = [&](const value& item) {
    if (s.targets.size() == 1) {
      loop_frame->set(s.targets[0], item);
      return;
    }
    if (!item.is_list() || item.as_list().items.size() != s.targets.size())
      throw template_error("cannot unpack " + std::string(item.type_name()) + " into " +
                           std::to_string(s.targets.size()) + " loop variables");
    for (size_t k = 0; k < s.targets.size(); ++k) loop_frame->set(s.targets[k], item.as_list().items[k]);
  };

  if (items && s.filter) {
    auto kept = std::make_shared<list_data>();
    for (const value& item : items->items) {
      step();
      loop_frame->vars.clear();
      bind(item);
      if (eval(*s.filter, loop_frame).truthy()) kept->items.push_back(item);
    }
    items = std::move(kept);
  }
  if (!items || items->items.empty()) {
    loop_frame->vars.clear();
    return exec(s.otherwise, f, out);
  }

  auto loop = std::make_shared<loop_data>();
  loop->items = items;
  value loop_value = value::make_loop(loop);
  for (size_t i = 0; i < items->items.size(); ++i) {
    step();
    loop->index0 = i;
    loop_frame->vars.clear();
    loop_frame->vars.emplace_back("loop", loop_value);
    bind(items->items[i]);
    flow r = exec(s.loop_body, loop_frame, out);
    if (r == flow::break_) break;
  }
  loop_frame->vars.clear();
  return flow::normal;
}

void interpreter::exec_set(const set_stmt& s, const std::shared_ptr<frame>& f) {
  value v = eval(*s.value_expr, f);
  if (!s.attr.empty()) {
    value target = lookup(s.targets[0], f);
    if (!target.is_namespace())
      throw template_error("cannot assign attribute '" + s.attr + "' on " + (target.is_undefined() ? "undefined '" + s.targets[0] + "'" : std::string("'") + target.type_name() + "' (only namespace() objects take attributes)"));
    target.as_namespace().set(s.attr, std::move(v));
    return;
  }
  if (s.targets.size() == 1) {
    f->set(s.targets[0], std::move(v));
    return;
  }
  if (!v.is_list() || v.as_list().items.size() != s.targets.size())
    throw template_error("cannot unpack " + std::string(v.type_name()) + " into " + std::to_string(s.targets.size()) +
                         " variables");
  for (size_t k = 0; k < s.targets.size(); ++k) f->set(s.targets[k], v.as_list().items[k]);
}

value interpreter::apply_filters(const std::vector<filter_call>& filters, value v, const std::shared_ptr<frame>& f) {
  for (const filter_call& fc : filters) {
    line_ = fc.line;
    if (!fc.fn) throw template_error("unknown filter '" + fc.name + "'");
    call_args args;
    eval_args(fc.args, f, args);
    v = fc.fn(*this, v, args);
  }
  return v;
}

value interpreter::make_macro(const macro_stmt& m, const std::shared_ptr<frame>& f) {
  std::weak_ptr<frame> home = f;
  const macro_stmt* macro = &m;
  return value::make_callable(m.name, [macro, home](interpreter& in, call_args& args) {
    std::shared_ptr<frame> parent = home.lock();
    if (!parent) parent = in.root_;
    value caller;
    for (auto it = args.keyword.begin(); it != args.keyword.end(); ++it)
      if (it->first == "caller") {
        caller = std::move(it->second);
        args.keyword.erase(it);
        break;
      }
    return in.invoke_body(macro->content, macro->params, parent, args, std::move(caller));
  });
}

value interpreter::invoke_body(const body& content, const std::vector<macro_param>& params,
                               const std::shared_ptr<frame>& parent, call_args& args, value caller) {
  if (call_depth_ >= limits_.max_call_depth)
    throw template_error("macro calls nested more than " + std::to_string(limits_.max_call_depth) +
                         " deep (runaway recursion?)");
  struct depth_guard {
    int& d;
    explicit depth_guard(int& dd) : d(dd) { ++d; }
    ~depth_guard() { --d; }
  } guard(call_depth_);
  uint32_t call_line = line_;

  auto fr = std::make_shared<frame>();
  fr->parent = parent;
  for (size_t i = 0; i < params.size(); ++i) {
    const macro_param& p = params[i];
    if (const value* v = args.get(i, p.name)) fr->set(p.name, *v);
    else if (p.default_value) fr->set(p.name, eval(*p.default_value, fr));
    else fr->set(p.name, value::undefined(p.name));
  }
  std::vector<value> varargs;
  for (size_t i = params.size(); i < args.positional.size(); ++i) varargs.push_back(args.positional[i]);
  std::vector<std::pair<value, value>> kwargs;
  for (const auto& [k, v] : args.keyword) {
    bool is_param = false;
    for (const macro_param& p : params) is_param = is_param || p.name == k;
    if (!is_param) kwargs.emplace_back(value::string(k), v);
  }
  fr->set("varargs", value::list(std::move(varargs), true));
  fr->set("kwargs", value::dict(std::move(kwargs)));
  if (!caller.is_undefined()) fr->set("caller", std::move(caller));

  std::string buf;
  exec(content, fr, buf);
  fr->vars.clear();
  line_ = call_line;
  return value::string(std::move(buf));
}

// ---- expressions ----

value interpreter::call(const value& callee, call_args& args) {
  if (callee.is_callable()) {
    step();
    return callee.as_callable().fn(*this, args);
  }
  check_defined(callee);
  throw template_error(std::string("'") + callee.type_name() + "' object is not callable");
}

void interpreter::eval_args(const arguments& a, const std::shared_ptr<frame>& f, call_args& out) {
  out.positional.reserve(a.positional.size());
  for (const expr_ptr& e : a.positional) out.positional.push_back(eval(*e, f));
  for (const auto& [k, e] : a.keyword) out.keyword.emplace_back(k, eval(*e, f));
}

value interpreter::eval_call(const call_expr& c, const std::shared_ptr<frame>& f, value caller) {
  value callee;
  if (c.callee->kind == expr_kind::attr) {
    // obj.method(...) runs the method directly instead of building a bound-method value.
    const auto& a = static_cast<const attr_expr&>(*c.callee);
    value object = eval(*a.object, f);
    if ((object.is_string() || object.is_dict() || object.is_list()) && has_method(object, a.name)) {
      call_args args;
      eval_args(c.args, f, args);
      line_ = c.line;
      step();
      value result;
      call_method(*this, object, a.name, args, result);
      return result;
    }
    callee = get_attr(object, a.name);
  } else {
    callee = eval(*c.callee, f);
  }
  call_args args;
  eval_args(c.args, f, args);
  if (!caller.is_undefined()) args.keyword.emplace_back("caller", std::move(caller));
  line_ = c.line;
  return call(callee, args);
}

value interpreter::get_attr(const value& object, std::string_view name) {
  switch (object.kind()) {
    case value::type::undefined:
      throw template_error(object.undefined_message());
    case value::type::dict:
    case value::type::string:
    case value::type::list: {
      if (has_method(object, name)) {
        std::string method(name);
        return value::make_callable(method, [object, method](interpreter& in, call_args& args) {
          value result;
          call_method(in, object, method, args, result);
          return result;
        });
      }
      if (object.is_dict())
        if (const value* v = object.as_dict().find(name)) {
          charge(weight(*v));
          return *v;
        }
      return value::undefined(std::string(name), object.type_name());
    }
    case value::type::ns:
      if (const value* v = object.as_namespace().find(name)) {
        charge(weight(*v));
        return *v;
      }
      return value::undefined(std::string(name), "Namespace");
    case value::type::loop: {
      const loop_data& l = object.as_loop();
      const auto& items = l.items->items;
      int64_t n = static_cast<int64_t>(items.size());
      int64_t i = static_cast<int64_t>(l.index0);
      if (name == "index") return value::integer(i + 1);
      if (name == "index0") return value::integer(i);
      if (name == "revindex") return value::integer(n - i);
      if (name == "revindex0") return value::integer(n - i - 1);
      if (name == "first") return value::boolean(i == 0);
      if (name == "last") return value::boolean(i == n - 1);
      if (name == "length") return value::integer(n);
      if (name == "depth") return value::integer(static_cast<int64_t>(l.depth0) + 1);
      if (name == "depth0") return value::integer(static_cast<int64_t>(l.depth0));
      if (name == "previtem") return i > 0 ? items[static_cast<size_t>(i - 1)] : value::undefined("previtem");
      if (name == "nextitem") return i + 1 < n ? items[static_cast<size_t>(i + 1)] : value::undefined("nextitem");
      if (name == "cycle") {
        std::shared_ptr<loop_data> lp = object.loop_ptr();
        return value::make_callable("cycle", [lp](interpreter&, call_args& args) {
          if (args.positional.empty()) throw template_error("loop.cycle() needs at least one value");
          return args.positional[lp->index0 % args.positional.size()];
        });
      }
      return value::undefined(std::string(name), "LoopContext");
    }
    default:
      return value::undefined(std::string(name), object.type_name());
  }
}

value interpreter::get_item(const value& object, const value& key) {
  switch (object.kind()) {
    case value::type::undefined:
      throw template_error(object.undefined_message());
    case value::type::dict: {
      if (const value* v = object.as_dict().find(key)) {
        charge(weight(*v));
        return *v;
      }
      if (key.is_string()) return get_attr(object, key.as_string());
      return value::undefined(to_string(key), "dict");
    }
    case value::type::list: {
      if (!key.is_int() && !key.is_bool()) {
        if (key.is_string()) return get_attr(object, key.as_string());
        return value::undefined(to_string(key), "list");
      }
      const auto& items = object.as_list().items;
      int64_t i = key.as_int();
      int64_t n = static_cast<int64_t>(items.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return value::undefined(to_string(key), "list");
      charge(weight(items[static_cast<size_t>(i)]));
      return items[static_cast<size_t>(i)];
    }
    case value::type::string: {
      if (!key.is_int() && !key.is_bool()) {
        if (key.is_string()) return get_attr(object, key.as_string());
        return value::undefined(to_string(key), "str");
      }
      const std::string& s = object.as_string();
      int64_t i = key.as_int();
      if (is_ascii(s)) {
        int64_t n = static_cast<int64_t>(s.size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) return value::undefined(to_string(key), "str");
        return value::string(std::string(1, s[static_cast<size_t>(i)]));
      }
      std::vector<size_t> offsets = utf8_offsets(s);
      int64_t n = static_cast<int64_t>(offsets.size()) - 1;
      if (i < 0) i += n;
      if (i < 0 || i >= n) return value::undefined(to_string(key), "str");
      size_t at = offsets[static_cast<size_t>(i)];
      return value::string(s.substr(at, offsets[static_cast<size_t>(i) + 1] - at));
    }
    case value::type::ns:
    case value::type::loop:
      if (key.is_string()) return get_attr(object, key.as_string());
      return value::undefined(to_string(key), object.type_name());
    default:
      return value::undefined(to_string(key), object.type_name());
  }
}

value interpreter::eval_slice(const slice_expr& s, const std::shared_ptr<frame>& f) {
  value object = eval(*s.object, f);
  value start = s.start ? eval(*s.start, f) : value();
  value stop = s.stop ? eval(*s.stop, f) : value();
  value stride = s.step ? eval(*s.step, f) : value();
  check_defined(object);
  if (object.is_list()) {
    const auto& items = object.as_list().items;
    slice_range r = resolve_slice(static_cast<int64_t>(items.size()), start, stop, stride);
    std::vector<value> out;
    r.for_each([&](size_t i) {
      charge(weight(items[i]));
      out.push_back(items[i]);
    });
    return value::list(std::move(out), object.as_list().is_tuple);
  }
  if (object.is_string()) {
    const std::string& str = object.as_string();
    charge_string(str.size());
    std::string out;
    if (is_ascii(str)) {
      slice_range r = resolve_slice(static_cast<int64_t>(str.size()), start, stop, stride);
      if (r.step == 1) {
        if (r.stop > r.start) out = str.substr(static_cast<size_t>(r.start), static_cast<size_t>(r.stop - r.start));
      } else {
        r.for_each([&](size_t i) { out += str[i]; });
      }
    } else {
      std::vector<size_t> offsets = utf8_offsets(str);
      slice_range r = resolve_slice(static_cast<int64_t>(offsets.size()) - 1, start, stop, stride);
      r.for_each([&](size_t i) { out.append(str, offsets[i], offsets[i + 1] - offsets[i]); });
    }
    return value::string(std::move(out));
  }
  throw template_error(std::string("'") + object.type_name() + "' object is not subscriptable");
}

value interpreter::eval_binary(binary_op op, const value& a, const value& b) {
  check_defined(a);
  check_defined(b);
  bool numbers = a.is_number() && b.is_number();
  bool ints = numbers && !a.is_float() && !b.is_float();
  switch (op) {
    case binary_op::add:
      if (ints) {
        int64_t r;
        if (__builtin_add_overflow(a.as_int(), b.as_int(), &r)) throw template_error("integer overflow in +");
        return value::integer(r);
      }
      if (numbers) return value::number(a.as_double() + b.as_double());
      if (a.is_string() && b.is_string()) {
        charge_string(a.as_string().size() + b.as_string().size());
        return value::string(a.as_string() + b.as_string());
      }
      if (a.is_list() && b.is_list()) {
        std::vector<value> items = a.as_list().items;
        for (const value& v : b.as_list().items) {
          charge(weight(v));
          items.push_back(v);
        }
        charge(items.size());
        return value::list(std::move(items), a.as_list().is_tuple && b.as_list().is_tuple);
      }
      if (a.is_string() || b.is_string())
        throw template_error(std::string("can only concatenate str (not \"") + (a.is_string() ? b : a).type_name() +
                             "\") to str");
      type_error("+", a, b);
    case binary_op::sub:
      if (ints) {
        int64_t r;
        if (__builtin_sub_overflow(a.as_int(), b.as_int(), &r)) throw template_error("integer overflow in -");
        return value::integer(r);
      }
      if (numbers) return value::number(a.as_double() - b.as_double());
      type_error("-", a, b);
    case binary_op::mul: {
      if (ints) {
        int64_t r;
        if (__builtin_mul_overflow(a.as_int(), b.as_int(), &r)) throw template_error("integer overflow in *");
        return value::integer(r);
      }
      if (numbers) return value::number(a.as_double() * b.as_double());
      const value* seq = (a.is_string() || a.is_list()) ? &a : (b.is_string() || b.is_list()) ? &b : nullptr;
      const value* count = seq == &a ? &b : &a;
      if (seq && (count->is_int() || count->is_bool())) {
        int64_t times = std::max<int64_t>(0, count->as_int());
        if (seq->is_string()) {
          const std::string& s = seq->as_string();
          if (s.empty()) return value::string("");
          if (!s.empty() && static_cast<uint64_t>(times) > limits_.max_output_bytes / s.size())
            check_string_size(limits_.max_output_bytes + 1);
          charge_string(s.size() * static_cast<size_t>(times));
          std::string out;
          out.reserve(s.size() * static_cast<size_t>(times));
          for (int64_t i = 0; i < times; ++i) out += s;
          return value::string(std::move(out));
        }
        const auto& items = seq->as_list().items;
        if (items.empty()) return value::list({}, seq->as_list().is_tuple);
        if (static_cast<uint64_t>(times) > limits_.max_sequence_length / items.size())
          throw template_error("list repetition longer than " + std::to_string(limits_.max_sequence_length) + " items");
        std::vector<value> out;
        for (int64_t i = 0; i < times; ++i)
          for (const value& v : items) {
            charge(weight(v));
            out.push_back(v);
          }
        return value::list(std::move(out), seq->as_list().is_tuple);
      }
      type_error("*", a, b);
    }
    case binary_op::div:
      if (!numbers) type_error("/", a, b);
      if (b.as_double() == 0.0) throw template_error("division by zero");
      return value::number(a.as_double() / b.as_double());
    case binary_op::floordiv:
      if (!numbers) type_error("//", a, b);
      if (b.as_double() == 0.0) throw template_error("integer division or modulo by zero");
      if (ints) {
        if (a.as_int() == INT64_MIN && b.as_int() == -1) throw template_error("integer overflow in //");
        return value::integer(floor_div(a.as_int(), b.as_int()));
      }
      return value::number(std::floor(a.as_double() / b.as_double()));
    case binary_op::mod:
      if (a.is_string()) {
        std::string formatted = format_printf(a.as_string(), b);
        charge_string(formatted.size());
        return value::string(std::move(formatted));
      }
      if (!numbers) type_error("%", a, b);
      if (b.as_double() == 0.0) throw template_error("integer division or modulo by zero");
      if (ints) {
        if (b.as_int() == -1) return value::integer(0);
        return value::integer(py_mod(a.as_int(), b.as_int()));
      }
      {
        double r = std::fmod(a.as_double(), b.as_double());
        if (r != 0 && ((r < 0) != (b.as_double() < 0))) r += b.as_double();
        return value::number(r);
      }
    case binary_op::pow:
      if (!numbers) type_error("**", a, b);
      if (ints && b.as_int() >= 0) {
        int64_t base = a.as_int(), exp = b.as_int(), r = 1;
        while (exp > 0) {
          if ((exp & 1) && __builtin_mul_overflow(r, base, &r)) throw template_error("integer overflow in **");
          exp >>= 1;
          if (exp > 0 && __builtin_mul_overflow(base, base, &base)) throw template_error("integer overflow in **");
        }
        return value::integer(r);
      }
      return value::number(std::pow(a.as_double(), b.as_double()));
  }
  throw template_error("unknown operator");
}

namespace {

bool contains(const value& container, const value& item) {
  switch (container.kind()) {
    case value::type::undefined:
      return false;
    case value::type::string:
      if (!item.is_string())
        throw template_error(std::string("'in <string>' requires string as left operand, not ") + item.type_name());
      return container.as_string().find(item.as_string()) != std::string::npos;
    case value::type::list:
      for (const value& v : container.as_list().items)
        if (equals(v, item)) return true;
      return false;
    case value::type::dict:
      return container.as_dict().find(item) != nullptr;
    case value::type::ns:
      return item.is_string() && container.as_namespace().find(item.as_string()) != nullptr;
    default:
      throw template_error(std::string("argument of type '") + container.type_name() + "' is not iterable");
  }
}

}  // namespace

value interpreter::eval_compare(const compare_expr& c, const std::shared_ptr<frame>& f) {
  value left = eval(*c.first, f);
  for (const auto& [op, e] : c.rest) {
    value right = eval(*e, f);
    bool ok = false;
    switch (op) {
      case compare_op::eq: ok = equals(left, right); break;
      case compare_op::ne: ok = !equals(left, right); break;
      case compare_op::lt: ok = less_than(left, right); break;
      case compare_op::le: ok = equals(left, right) || less_than(left, right); break;
      case compare_op::gt: ok = less_than(right, left); break;
      case compare_op::ge: ok = equals(left, right) || less_than(right, left); break;
      case compare_op::in: ok = contains(right, left); break;
      case compare_op::not_in: ok = !contains(right, left); break;
    }
    if (!ok) return value::boolean(false);
    left = std::move(right);
  }
  return value::boolean(true);
}

value interpreter::eval(const expr& e, const std::shared_ptr<frame>& f) {
  line_ = e.line;
  switch (e.kind) {
    case expr_kind::literal:
      return static_cast<const literal_expr&>(e).v;
    case expr_kind::name:
      return lookup(static_cast<const name_expr&>(e).name, f);
    case expr_kind::list: {
      const auto& l = static_cast<const list_expr&>(e);
      std::vector<value> items;
      items.reserve(l.items.size());
      for (const expr_ptr& item : l.items) items.push_back(eval(*item, f));
      charge(items.size());
      return value::list(std::move(items), l.is_tuple);
    }
    case expr_kind::dict: {
      const auto& d = static_cast<const dict_expr&>(e);
      std::vector<std::pair<value, value>> entries;
      entries.reserve(d.items.size());
      for (const auto& [k, v] : d.items) {
        value key = eval(*k, f);
        entries.emplace_back(std::move(key), eval(*v, f));
      }
      charge(entries.size());
      return value::dict(std::move(entries));
    }
    case expr_kind::attr: {
      const auto& a = static_cast<const attr_expr&>(e);
      value object = eval(*a.object, f);
      line_ = e.line;
      return get_attr(object, a.name);
    }
    case expr_kind::item: {
      const auto& it = static_cast<const item_expr&>(e);
      value object = eval(*it.object, f);
      value key = eval(*it.key, f);
      line_ = e.line;
      return get_item(object, key);
    }
    case expr_kind::slice:
      return eval_slice(static_cast<const slice_expr&>(e), f);
    case expr_kind::call:
      return eval_call(static_cast<const call_expr&>(e), f, value());
    case expr_kind::filter: {
      const auto& fe = static_cast<const filter_expr&>(e);
      value input = eval(*fe.input, f);
      call_args args;
      eval_args(fe.args, f, args);
      line_ = e.line;
      if (!fe.fn) throw template_error("unknown filter '" + fe.name + "'");
      step();
      return fe.fn(*this, input, args);
    }
    case expr_kind::test: {
      const auto& te = static_cast<const test_expr&>(e);
      value input = eval(*te.input, f);
      call_args args;
      eval_args(te.args, f, args);
      line_ = e.line;
      if (!te.fn) throw template_error("unknown test '" + te.name + "'");
      bool r = te.fn(*this, input, args);
      return value::boolean(te.negated ? !r : r);
    }
    case expr_kind::unary: {
      const auto& u = static_cast<const unary_expr&>(e);
      value v = eval(*u.operand, f);
      if (u.op == unary_op::not_) return value::boolean(!v.truthy());
      check_defined(v);
      if (!v.is_number()) throw template_error(std::string("bad operand type for unary ") + (u.op == unary_op::neg ? "-" : "+") + ": '" + v.type_name() + "'");
      if (u.op == unary_op::pos) return v.is_bool() ? value::integer(v.as_int()) : v;
      if (v.is_float()) return value::number(-v.as_double());
      if (v.as_int() == INT64_MIN) throw template_error("integer overflow in unary -");
      return value::integer(-v.as_int());
    }
    case expr_kind::binary: {
      const auto& b = static_cast<const binary_expr&>(e);
      value left = eval(*b.left, f);
      value right = eval(*b.right, f);
      line_ = e.line;
      return eval_binary(b.op, left, right);
    }
    case expr_kind::logical: {
      const auto& l = static_cast<const logical_expr&>(e);
      value left = eval(*l.left, f);
      if (l.is_and ? !left.truthy() : left.truthy()) return left;
      return eval(*l.right, f);
    }
    case expr_kind::compare:
      return eval_compare(static_cast<const compare_expr&>(e), f);
    case expr_kind::concat: {
      const auto& c = static_cast<const concat_expr&>(e);
      std::string out;
      for (const expr_ptr& part : c.parts) {
        append_string(out, eval(*part, f));
        check_string_size(out.size());
      }
      charge(out.size() / 16);
      return value::string(std::move(out));
    }
    case expr_kind::cond: {
      const auto& c = static_cast<const cond_expr&>(e);
      if (eval(*c.test, f).truthy()) return eval(*c.then, f);
      if (c.otherwise) return eval(*c.otherwise, f);
      return value::undefined("conditional expression without else");
    }
  }
  throw template_error("unknown expression");
}

value interpreter::apply_filter(std::string_view name, const value& input, call_args& args) {
  filter_fn fn = find_filter(name);
  if (!fn) throw template_error("unknown filter '" + std::string(name) + "'");
  step();
  return fn(*this, input, args);
}

bool interpreter::apply_test(std::string_view name, const value& input, call_args& args) {
  test_fn fn = find_test(name);
  if (!fn) throw template_error("unknown test '" + std::string(name) + "'");
  step();
  return fn(*this, input, args);
}

}  // namespace gw::local_engine::jinja
