#pragma once
// Custom privacy detectors from the config: regular expressions (RE2: linear time, no
// backtracking, so a hostile prompt cannot stall a worker) and keyword lists (whole words, ASCII
// case-insensitive by default). Each has a type name (e.g. EMPLOYEE_ID) that rules and per-type
// actions refer to like the built-in types. Pure: text in, matches out. Build once per config.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gw::policies {

struct custom_pattern {
  std::string type;   // upper-case name, e.g. "EMPLOYEE_ID"
  std::string regex;  // RE2 syntax
};

struct custom_keywords {
  std::string type;
  std::vector<std::string> words;  // phrases allowed ("Project Falcon")
  bool case_sensitive = false;
};

struct custom_match {
  std::string_view type;  // points into the detector set (lives as long as it)
  std::size_t start = 0, end = 0;  // UTF-8 byte offsets
};

class custom_detectors {
 public:
  // nullptr and *error ("pattern EMPLOYEE_ID: missing ): ...") when a regex does not compile.
  static std::unique_ptr<custom_detectors> build(std::vector<custom_pattern> patterns,
                                                 std::vector<custom_keywords> keywords, std::string* error);
  ~custom_detectors();
  bool empty() const;
  // Every match, ordered by start.
  std::vector<custom_match> scan(std::string_view text) const;

 private:
  custom_detectors();
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace gw::policies
