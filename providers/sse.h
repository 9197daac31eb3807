#pragma once
// Server-Sent Events framing (WHATWG HTML "event stream" interpretation), pure: no I/O, no threads.
// The parser consumes the body of a text/event-stream response in arbitrary chunks; the formatters
// produce what the gateway writes to its own clients.
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace gw::providers {

struct sse_event {
  std::string event;  // value of the last `event:` field; empty means the default type "message"
  std::string data;   // `data:` lines joined with "\n" (no trailing newline)
  std::string id;     // last event id seen on the stream so far (it persists across events)
};

// Incremental event-stream parser.
//
// Contract:
// - Lines end in "\n", "\r\n" or "\r"; a "\r" ending one chunk followed by "\n" starting the next is
//   one line ending. A UTF-8 BOM at the very start of the stream is skipped (even if split).
// - Lines starting with ':' are comments. Otherwise `field:value` with one leading space of the value
//   removed (no colon: the whole line is the field name, value empty). Fields `event`, `data`, `id`
//   (ignored if it contains NUL) are used; `retry` and unknown fields are ignored.
// - A blank line dispatches the pending event if at least one `data` field was seen, then resets the
//   event type and data. An event not closed by a blank line is never dispatched (truncated stream:
//   buffered_bytes() > 0 tells the caller that something was left over).
// - Bytes are passed through untouched: no UTF-8 decoding, so characters split across chunks come
//   out whole. The output is independent of how the input is split into chunks.
// - Bounded memory: a line longer than max_line_bytes, or the data of one event growing past
//   max_line_bytes, puts the parser in the failed() state; from then on feed() ignores its input and
//   dispatches nothing. Memory held is O(max_line_bytes).
//
// Not thread-safe; one parser per stream. on_event must not call feed() on the same parser.
class sse_parser {
 public:
  static constexpr std::size_t default_max_line_bytes = std::size_t{1} << 20;  // 1 MiB

  explicit sse_parser(std::size_t max_line_bytes = default_max_line_bytes);

  // Consumes one chunk; calls on_event (synchronously, in stream order) for every completed event.
  void feed(std::string_view chunk, const std::function<void(sse_event&&)>& on_event);

  // Bytes held for an incomplete line or an event not yet dispatched (0 at a clean event boundary).
  std::size_t buffered_bytes() const;

  // True once a limit was exceeded; the stream should be treated as broken.
  bool failed() const { return failed_; }

  std::size_t max_line_bytes() const { return max_line_bytes_; }

 private:
  void feed_lines(std::string_view chunk, const std::function<void(sse_event&&)>& on_event);
  void process_line(std::string_view line, const std::function<void(sse_event&&)>& on_event);
  void fail();

  std::size_t max_line_bytes_;
  std::string line_;        // incomplete line carried over from previous chunks
  std::string bom_prefix_;  // first bytes of the stream while deciding whether they are a BOM
  std::string data_;        // pending data, each data line followed by '\n'
  std::string event_type_;  // pending event type
  std::string last_id_;     // last event id buffer (persists across events)
  bool at_start_ = true;    // nothing but (part of) a BOM seen yet
  bool pending_cr_ = false; // previous chunk ended in '\r': a leading '\n' belongs to that ending
  bool failed_ = false;
};

// "data: <line1>\ndata: <line2>\n\n". data is split on "\r\n", "\r" and "\n" (k line endings give
// k + 1 data lines), so a parser gets data back exactly, with line endings normalised to "\n".
// Empty data gives "data: \n\n", which dispatches an event with empty data.
std::string format_sse(std::string_view data);

// "data: [DONE]\n\n", OpenAI's end-of-stream marker.
std::string format_sse_done();

// ": <text>\n\n" (one comment line per line of text). Dispatches nothing; useful as a keep-alive.
std::string format_sse_comment(std::string_view text);

}  // namespace gw::providers
