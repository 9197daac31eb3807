#pragma once
// The chat-template library: Jinja2 filters (trim, tojson, selectattr, map, join, ...), tests
// (defined, none, string, mapping, ...), global functions (range, namespace, dict, raise_exception,
// strftime_now, joiner) and the Python methods templates call on strings, dicts and lists
// (.strip(), .split(), .startswith(), .items(), .get(), ...). Semantics follow Python/Jinja2 as
// Hugging Face's ImmutableSandboxedEnvironment exposes them; tojson is Hugging Face's (key order
// kept, no HTML escaping). Case conversions (upper, lower, title, capitalize) touch ASCII letters only.
#include <string>
#include <string_view>

#include "local_engine/jinja_ast.h"
#include "local_engine/jinja_value.h"

namespace gw::local_engine::jinja {

// Null when unknown.
filter_fn find_filter(std::string_view name);
test_fn find_test(std::string_view name);
// A global function as a callable value, or nullptr when `name` is not one.
const value* find_global(std::string_view name);

// Python's `format % args` (args a tuple or a single value): %s %r %d %i %x %f %e %g with flags,
// width and precision.
std::string format_printf(const std::string& format, const value& args);

// Whether `object` (a str, dict or list) has the method `name`.
bool has_method(const value& object, std::string_view name);
// object.name(args); false when there is no such method.
bool call_method(interpreter& in, const value& object, std::string_view name, call_args& args, value& result);

}  // namespace gw::local_engine::jinja
