#pragma once
// YAML reading with FILE:LINE: KEY errors, shared by the parsers of the config (config.cpp) and of
// the price table (pricing.cpp). Internal to gateway/: only its .cpp files include this header, so
// yaml-cpp stays out of the public ones.
//
// Every problem throws config_error(file, line, key, message): `line` is 1-based and `key` the
// dotted path from the document root, e.g. "targets.x.timeouts.connect_ms" or "models[3].tier".
// Start-up / reload only (exceptions are fine there). A yaml_reader holds only the file name and
// its unknown_key_hint, so its const members may run on any thread.
#include <yaml-cpp/yaml.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/config.h"

namespace gw::gateway {

using key_list = std::vector<std::string_view>;

// 1-based line of `n`, or `fallback` when yaml-cpp has no position for it.
int line_of(const YAML::Node& n, int fallback);

// What a node is, for "expected X, got Y": "a map", "a list", "a single value" or "nothing".
std::string kind_of(const YAML::Node& n);

// "a, b, c".
std::string join_list(const key_list& items);

// ASCII case-insensitive equality.
bool iequals(std::string_view a, std::string_view b);

// " (did you mean 'x'?)" for the closest candidate within case-insensitive edit distance 2 (or,
// failing that, the first candidate the word is a prefix of), otherwise "".
std::string did_you_mean(std::string_view word, const key_list& candidates);

// One key/value pair of a YAML map (or one item of a list, named "[i]").
struct yaml_entry {
  std::string name;  // key as written
  std::string path;  // dotted path from the document root
  int key_line = 1;  // 1-based
  YAML::Node value;

  // Errors about the value point at the value when it is a scalar, otherwise at the key (a block
  // map's own position is its first child's line, which would mislead).
  int line() const;
};

// The entry named `name`, or nullptr.
const yaml_entry* find_entry(const std::vector<yaml_entry>& entries, std::string_view name);

// What follows "unknown key 'x'" in the error for a key a map does not allow.
enum class unknown_key_hint {
  closest,   // did_you_mean(x, known): a near miss is named, otherwise nothing
  all_keys,  // " (expected one of: a, b, c)"
};

class yaml_reader {
 public:
  yaml_reader(std::string file, unknown_key_hint hint) : file_(std::move(file)), hint_(hint) {}

  const std::string& file() const { return file_; }

  [[noreturn]] void fail(int line, const std::string& key, const std::string& message) const;

  // The document in `text`. A syntax error fails with "YAML syntax error: <yaml-cpp's message>",
  // plus " (column N)" when `with_column`, at yaml-cpp's line clamped to the text's lines (it
  // reports errors found at the end of input one line past the last). An empty text gives a null
  // node (the caller says what was expected).
  YAML::Node load(const std::string& text, bool with_column) const;

  // The pairs of map `n` at `path` (on `line`), in file order. Keys must be plain strings and
  // unique. `known` == nullptr: any key is allowed (names chosen by the user, e.g. target names);
  // otherwise a key not in `known` is an error explained per the reader's unknown_key_hint.
  std::vector<yaml_entry> map_entries(const YAML::Node& n, const std::string& path, int line,
                                      const key_list* known) const;
  std::vector<yaml_entry> map_entries(const yaml_entry& e, const key_list* known) const;

  // The items of list `e`, named "[0]", "[1]", ... (paths "<e.path>[i]").
  std::vector<yaml_entry> list_items(const yaml_entry& e) const;

  // The scalar text of `e` as written (no ${...} expansion); anything else fails with
  // "expected <expected>, got <kind>".
  const std::string& raw_scalar(const yaml_entry& e, std::string_view expected) const;

 private:
  std::string file_;
  unknown_key_hint hint_;
};

}  // namespace gw::gateway
