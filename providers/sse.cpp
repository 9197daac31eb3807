#include "providers/sse.h"

#include <algorithm>
#include <utility>

namespace gw::providers {

namespace {

constexpr std::string_view utf8_bom = "\xEF\xBB\xBF";

// Calls fn(line) for each line of text, splitting on "\r\n", "\r" and "\n": k line endings give
// k + 1 lines, so "a\n" is {"a", ""} and "" is {""}.
template <typename Fn>
void for_each_line(std::string_view text, Fn&& fn) {
  std::size_t pos = 0;
  while (true) {
    const std::size_t end = text.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) {
      fn(text.substr(pos));
      return;
    }
    fn(text.substr(pos, end - pos));
    pos = end + 1;
    if (text[end] == '\r' && pos < text.size() && text[pos] == '\n') ++pos;
  }
}

}  // namespace

sse_parser::sse_parser(std::size_t max_line_bytes) : max_line_bytes_(max_line_bytes) {}

std::size_t sse_parser::buffered_bytes() const {
  return line_.size() + bom_prefix_.size() + data_.size() + event_type_.size();
}

void sse_parser::fail() {
  failed_ = true;
  // Release the memory: nothing buffered will ever be used again.
  std::string().swap(line_);
  std::string().swap(bom_prefix_);
  std::string().swap(data_);
  std::string().swap(event_type_);
}

void sse_parser::feed(std::string_view chunk, const std::function<void(sse_event&&)>& on_event) {
  if (failed_ || chunk.empty()) return;
  if (at_start_) {
    // Collect up to 3 bytes to decide whether the stream starts with a BOM.
    const std::size_t take = std::min(chunk.size(), utf8_bom.size() - bom_prefix_.size());
    bom_prefix_.append(chunk.substr(0, take));
    chunk.remove_prefix(take);
    if (utf8_bom.substr(0, bom_prefix_.size()) == bom_prefix_ && bom_prefix_.size() < utf8_bom.size()) {
      return;  // still a possible BOM prefix, and chunk is exhausted
    }
    at_start_ = false;
    std::string prefix = std::move(bom_prefix_);
    bom_prefix_.clear();
    if (prefix != utf8_bom) feed_lines(prefix, on_event);
  }
  feed_lines(chunk, on_event);
}

void sse_parser::feed_lines(std::string_view chunk, const std::function<void(sse_event&&)>& on_event) {
  std::size_t pos = 0;
  const std::size_t n = chunk.size();
  if (pending_cr_ && n > 0) {
    pending_cr_ = false;
    if (chunk[0] == '\n') pos = 1;
  }
  while (pos < n && !failed_) {
    const std::size_t end = chunk.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) {
      const std::size_t rest = n - pos;
      if (line_.size() + rest > max_line_bytes_) return fail();
      line_.append(chunk.substr(pos));
      return;
    }
    std::string_view piece = chunk.substr(pos, end - pos);
    if (line_.size() + piece.size() > max_line_bytes_) return fail();
    if (line_.empty()) {
      process_line(piece, on_event);
    } else {
      line_.append(piece);
      // Move out first: process_line may dispatch, and the callback may throw.
      std::string line = std::move(line_);
      line_.clear();
      process_line(line, on_event);
    }
    pos = end + 1;
    if (chunk[end] == '\r') {
      if (pos < n) {
        if (chunk[pos] == '\n') ++pos;
      } else {
        pending_cr_ = true;
      }
    }
  }
}

void sse_parser::process_line(std::string_view line, const std::function<void(sse_event&&)>& on_event) {
  if (line.empty()) {
    if (data_.empty()) {
      event_type_.clear();
      return;
    }
    data_.pop_back();  // the '\n' after the last data line
    sse_event ev{std::move(event_type_), std::move(data_), last_id_};
    event_type_.clear();
    data_.clear();
    on_event(std::move(ev));
    return;
  }
  if (line.front() == ':') return;  // comment

  std::string_view field = line;
  std::string_view value;
  if (const std::size_t colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }

  if (field == "data") {
    if (data_.size() + value.size() + 1 > max_line_bytes_) return fail();
    data_.append(value);
    data_.push_back('\n');
  } else if (field == "event") {
    event_type_.assign(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) last_id_.assign(value);
  }
  // "retry" and unknown fields: ignored.
}

std::string format_sse(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 8);
  for_each_line(data, [&](std::string_view line) {
    out.append("data: ");
    out.append(line);
    out.push_back('\n');
  });
  out.push_back('\n');
  return out;
}

std::string format_sse_done() { return "data: [DONE]\n\n"; }

std::string format_sse_comment(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 4);
  for_each_line(text, [&](std::string_view line) {
    out.push_back(':');
    if (!line.empty()) {
      out.push_back(' ');
      out.append(line);
    }
    out.push_back('\n');
  });
  out.push_back('\n');
  return out;
}

}  // namespace gw::providers
