#pragma once
// Parses a chat template (the Jinja2 subset Hugging Face chat templates use) into a syntax tree.
//
// Lexing follows Jinja2 as Hugging Face configures it: trim_blocks and lstrip_blocks on, `-`/`+`
// whitespace control on every tag, line endings normalised to "\n" and one trailing newline dropped.
// Supported tags: if/elif/else, for (with `if` filter, else, loop.*), set (names, tuples,
// namespace attributes, blocks), macro, call, filter, with, raw, break/continue, generation.
// Errors name the line and column: "line 3, column 14: unknown filter 'frobnicate'". A filter or
// test unknown at parse time is an error unless it sits inside an if block, where (as in Jinja2)
// the error is raised only if that code runs.
#include <memory>
#include <string>
#include <string_view>

#include "local_engine/jinja_ast.h"

namespace gw::local_engine::jinja {

std::unique_ptr<program> parse_template(std::string_view source, std::string* error);

}  // namespace gw::local_engine::jinja
