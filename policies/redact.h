#pragma once
// Redaction before a request leaves for an external target, and restoration in its response.
// Each distinct value becomes a placeholder "[TYPE_n]" (the same value keeps the same placeholder
// across messages, so the model can still refer to it); the map back stays in the gateway's memory
// for the life of the request and is never logged. Pure functions.
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gw::policies {

struct span_to_redact {
  std::string_view type;
  std::size_t start = 0, end = 0;
};

class redaction_map {
 public:
  // Returns `text` with each span (non-overlapping after this call drops overlaps; any order)
  // replaced by its placeholder.
  std::string redact(std::string_view text, std::vector<span_to_redact> spans);
  // Replaces every placeholder by its original value. `escape_json` writes the value as the
  // contents of a JSON string (for raw response bodies).
  std::string restore(std::string_view text, bool escape_json) const;
  // The length of the longest suffix of `text` that could still grow into a placeholder (a stream
  // holds that much back until more arrives).
  std::size_t partial_suffix(std::string_view text) const;
  bool empty() const { return entries_.empty(); }
  std::size_t size() const { return entries_.size(); }

 private:
  std::vector<std::pair<std::string, std::string>> entries_;  // placeholder, original
  std::vector<std::pair<std::string, int>> counters_;        // per type
};

}  // namespace gw::policies
