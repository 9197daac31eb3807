#include "providers/sse.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace gw::providers {
namespace {

std::vector<sse_event> parse_chunks(const std::vector<std::string_view>& chunks,
                                    std::size_t max_line = sse_parser::default_max_line_bytes,
                                    sse_parser* out_parser = nullptr) {
  sse_parser local(max_line);
  sse_parser& p = out_parser != nullptr ? *out_parser : local;
  std::vector<sse_event> events;
  for (auto c : chunks) p.feed(c, [&](sse_event&& e) { events.push_back(std::move(e)); });
  return events;
}

std::vector<sse_event> parse(std::string_view stream) { return parse_chunks({stream}); }

// Renders events as one string so mismatches print readably.
std::string render(const std::vector<sse_event>& events) {
  std::string out;
  for (const auto& e : events) out += "[" + e.event + "|" + e.id + "|" + e.data + "]";
  return out;
}

// A stream exercising every rule: BOM, all three line endings (also back to back), comments,
// multi-line data, event/id fields, empty data, a field without colon, unknown fields, a blank
// line without data, multi-byte UTF-8, and a trailing incomplete event.
const std::string rich_stream =
    "\xEF\xBB\xBF"
    ": comment line\n"
    "data: first\r\n"
    "\r\n"
    "event: update\r\n"
    "id: 7\r"
    "data: line one\r\n"
    "data:line two\n"
    "data:  leading space kept\n"
    "\n"
    "retry: 1000\n"
    "foo: bar\n"
    "\n"
    "data\n"
    "\r"
    "data: h\xC3\xA9llo \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x8E\x89\r\n"
    "\r\r\n"
    "event: ignored-by-blank-line\n"
    "\n"
    "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n"
    "\n"
    "data: [DONE]\n"
    "\n"
    "data: never dispatched\n";

const std::string rich_expected =
    "[||first]"
    "[update|7|line one\nline two\n leading space kept]"
    "[|7|]"
    "[|7|h\xC3\xA9llo \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x8E\x89]"
    "[|7|{\"choices\":[{\"delta\":{\"content\":\"x\"}}]}]"
    "[|7|[DONE]]";

TEST(sse_parser, basic_event) {
  auto events = parse("data: hello\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "hello");
  EXPECT_EQ(events[0].event, "");
  EXPECT_EQ(events[0].id, "");
}

TEST(sse_parser, rich_stream_in_one_chunk) { EXPECT_EQ(render(parse(rich_stream)), rich_expected); }

TEST(sse_parser, every_two_chunk_split_gives_identical_events) {
  for (std::size_t cut = 0; cut <= rich_stream.size(); ++cut) {
    std::string_view s = rich_stream;
    EXPECT_EQ(render(parse_chunks({s.substr(0, cut), s.substr(cut)})), rich_expected) << "cut at " << cut;
  }
}

TEST(sse_parser, every_three_chunk_split_gives_identical_events) {
  const std::string_view s = rich_stream;
  for (std::size_t a = 0; a <= s.size(); ++a) {
    for (std::size_t b = a; b <= s.size(); b += 3) {
      ASSERT_EQ(render(parse_chunks({s.substr(0, a), s.substr(a, b - a), s.substr(b)})), rich_expected)
          << "cuts at " << a << ", " << b;
    }
  }
}

TEST(sse_parser, byte_by_byte_gives_identical_events) {
  std::vector<std::string_view> chunks;
  const std::string_view s = rich_stream;
  for (std::size_t i = 0; i < s.size(); ++i) chunks.push_back(s.substr(i, 1));
  EXPECT_EQ(render(parse_chunks(chunks)), rich_expected);
}

TEST(sse_parser, random_chunkings_with_empty_chunks_give_identical_events) {
  std::mt19937 rng(12345);
  const std::string_view s = rich_stream;
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<std::string_view> chunks;
    std::size_t pos = 0;
    while (pos < s.size()) {
      const std::size_t len = std::uniform_int_distribution<std::size_t>(0, 9)(rng);
      chunks.push_back(s.substr(pos, len));
      pos += std::min(len, s.size() - pos);
    }
    ASSERT_EQ(render(parse_chunks(chunks)), rich_expected) << "trial " << trial;
  }
}

TEST(sse_parser, stream_without_bom_split_everywhere) {
  const std::string stream = "data: a\r\n\r\nevent: e\ndata: b\n\n";
  const std::string expected = "[||a][e||b]";
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    std::string_view s = stream;
    EXPECT_EQ(render(parse_chunks({s.substr(0, cut), s.substr(cut)})), expected) << cut;
  }
}

TEST(sse_parser, crlf_split_across_chunks_is_one_line_ending) {
  // Were "\r" + "\n" two endings, the "\n" would be a blank line dispatching "a" alone.
  auto events = parse_chunks({"data: a\r", "\ndata: b\r\n\r\n"});
  EXPECT_EQ(render(events), "[||a\nb]");
}

TEST(sse_parser, cr_at_chunk_end_survives_empty_chunks) {
  auto events = parse_chunks({"data: a\r", "", "", "\ndata: b\n\n"});
  EXPECT_EQ(render(events), "[||a\nb]");
}

TEST(sse_parser, lone_cr_then_other_byte_is_line_ending) {
  EXPECT_EQ(render(parse_chunks({"data: a\r", "\r"})), "[||a]");
  EXPECT_EQ(render(parse_chunks({"data: a\r", "data: b\r\r"})), "[||a\nb]");
}

TEST(sse_parser, cr_cr_is_two_line_endings) { EXPECT_EQ(render(parse("data: x\r\rdata: y\n\n")), "[||x][||y]"); }

TEST(sse_parser, multibyte_utf8_split_at_every_byte_boundary_is_intact) {
  const std::string text = "h\xC3\xA9llo \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x8E\x89";  // "héllo 日本 🎉"
  const std::string stream = "data: " + text + "\n\n";
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    std::string_view s = stream;
    auto events = parse_chunks({s.substr(0, cut), s.substr(cut)});
    ASSERT_EQ(events.size(), 1u) << cut;
    EXPECT_EQ(events[0].data, text) << cut;
  }
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < stream.size(); ++i) bytes.push_back(std::string_view(stream).substr(i, 1));
  auto events = parse_chunks(bytes);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, text);
}

TEST(sse_parser, comments_are_ignored) {
  EXPECT_EQ(render(parse(": ping\n\n:\n: another\ndata: x\n: inside an event\n\n")), "[||x]");
}

TEST(sse_parser, multi_line_data_joined_with_newline) {
  EXPECT_EQ(render(parse("data: a\ndata: b\ndata:\ndata: c\n\n")), "[||a\nb\n\nc]");
}

TEST(sse_parser, only_one_leading_space_removed) {
  EXPECT_EQ(render(parse("data:x\n\ndata:  x\n\ndata: \n\n")), "[||x][|| x][||]");
}

TEST(sse_parser, value_may_contain_colons) {
  EXPECT_EQ(render(parse("data: {\"a\":\"b:c\"}\n\n")), "[||{\"a\":\"b:c\"}]");
}

TEST(sse_parser, event_and_id_fields) {
  auto events = parse("event: message_start\nid: 42\ndata: {}\n\ndata: second\n\n");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].event, "message_start");
  EXPECT_EQ(events[0].id, "42");
  EXPECT_EQ(events[1].event, "");   // event type resets after each dispatch
  EXPECT_EQ(events[1].id, "42");    // last event id persists
}

TEST(sse_parser, id_with_nul_is_ignored) {
  using namespace std::string_literals;
  auto events = parse("id: 1\ndata: a\n\nid: x\0y\ndata: b\n\nid\ndata: c\n\n"s);
  EXPECT_EQ(render(events), "[|1|a][|1|b][||c]");
}

TEST(sse_parser, blank_line_without_data_dispatches_nothing_and_resets_event_type) {
  EXPECT_EQ(render(parse("event: foo\nid: 3\n\n\n\ndata: x\n\n")), "[|3|x]");
}

TEST(sse_parser, no_trailing_blank_line_means_no_dispatch) {
  sse_parser p;
  auto events = parse_chunks({"data: complete\n\n", "data: partial\n"}, sse_parser::default_max_line_bytes, &p);
  EXPECT_EQ(render(events), "[||complete]");
  EXPECT_GT(p.buffered_bytes(), 0u);  // the truncated event is visible to the caller
  EXPECT_FALSE(p.failed());

  EXPECT_TRUE(parse("data: x").empty());
  EXPECT_TRUE(parse("data: x\n").empty());
  EXPECT_TRUE(parse("data: x\r").empty());
}

TEST(sse_parser, buffered_bytes_is_zero_at_event_boundary) {
  sse_parser p;
  int n = 0;
  p.feed("data: a\n\ndata: b", [&](sse_event&&) { ++n; });
  EXPECT_EQ(n, 1);
  EXPECT_EQ(p.buffered_bytes(), 7u);  // "data: b"
  p.feed("\n\n", [&](sse_event&&) { ++n; });
  EXPECT_EQ(n, 2);
  EXPECT_EQ(p.buffered_bytes(), 0u);
}

TEST(sse_parser, bom_only_skipped_at_start) {
  EXPECT_EQ(render(parse("\xEF\xBB\xBF" "data: x\n\n")), "[||x]");
  // Split BOM.
  EXPECT_EQ(render(parse_chunks({"\xEF", "\xBB", "\xBF" "data: x\n\n"})), "[||x]");
  // A second BOM is not skipped: it becomes part of the field name, which is then unknown.
  EXPECT_EQ(render(parse("\xEF\xBB\xBF\xEF\xBB\xBF" "data: x\n\n")), "");
  // A BOM later in the stream is data.
  EXPECT_EQ(render(parse("data: \xEF\xBB\xBFx\n\n")), "[||\xEF\xBB\xBFx]");
}

TEST(sse_parser, partial_bom_prefix_bytes_are_not_lost) {
  // "\xEF\xBB" then a newline: not a BOM, so the bytes form a (junk) line and the next event parses.
  EXPECT_EQ(render(parse_chunks({"\xEF", "\xBB", "\ndata: y\n\n"})), "[||y]");
  EXPECT_EQ(render(parse_chunks({"d", "ata: z\n\n"})), "[||z]");
  EXPECT_EQ(render(parse_chunks({"\n", "data: z\n\n"})), "[||z]");
}

TEST(sse_parser, line_over_limit_fails) {
  sse_parser p(16);
  int n = 0;
  auto count = [&](sse_event&&) { ++n; };
  p.feed("data: 0123456789\n\n", count);  // line of exactly 16 bytes: fine
  EXPECT_EQ(n, 1);
  EXPECT_FALSE(p.failed());
  p.feed("data: 0123456789a\n\n", count);  // 17 bytes
  EXPECT_TRUE(p.failed());
  EXPECT_EQ(p.buffered_bytes(), 0u);
  p.feed("data: ok\n\n", count);  // ignored once failed
  EXPECT_EQ(n, 1);
}

TEST(sse_parser, unterminated_line_fails_before_terminator_arrives) {
  sse_parser p(100);
  int n = 0;
  const std::string junk(64, 'x');
  for (int i = 0; i < 1000 && !p.failed(); ++i) {
    p.feed(junk, [&](sse_event&&) { ++n; });
    EXPECT_LE(p.buffered_bytes(), 100u);
  }
  EXPECT_TRUE(p.failed());
  EXPECT_EQ(n, 0);
}

TEST(sse_parser, event_data_over_limit_fails) {
  // Many short data lines with no blank line: memory stays bounded too.
  sse_parser p(64);
  for (int i = 0; i < 100 && !p.failed(); ++i) p.feed("data: 0123456789\n", [](sse_event&&) {});
  EXPECT_TRUE(p.failed());
}

TEST(sse_parser, limit_failure_independent_of_split) {
  const std::string stream = "data: a\n\ndata: " + std::string(40, 'y') + "\n\ndata: b\n\n";
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    sse_parser p(32);
    std::string_view s = stream;
    auto events = parse_chunks({s.substr(0, cut), s.substr(cut)}, 32, &p);
    EXPECT_TRUE(p.failed()) << cut;
    EXPECT_EQ(render(events), "[||a]") << cut;
  }
}

TEST(format_sse, single_and_multi_line) {
  EXPECT_EQ(format_sse("{\"a\":1}"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(format_sse("a\nb"), "data: a\ndata: b\n\n");
  EXPECT_EQ(format_sse("a\r\nb\rc"), "data: a\ndata: b\ndata: c\n\n");
  EXPECT_EQ(format_sse(""), "data: \n\n");
  EXPECT_EQ(format_sse("a\n"), "data: a\ndata: \n\n");
}

TEST(format_sse, done_and_comment) {
  EXPECT_EQ(format_sse_done(), "data: [DONE]\n\n");
  EXPECT_EQ(format_sse_comment("keep-alive"), ": keep-alive\n\n");
  EXPECT_EQ(format_sse_comment("a\nb"), ": a\n: b\n\n");
  EXPECT_EQ(format_sse_comment(""), ":\n\n");
}

TEST(format_sse, round_trips_through_parser) {
  const std::vector<std::string> payloads = {"", "x", "a\nb", "\n", "\n\n", "line\n", " lead", ": colon",
                                             "data: nested", "h\xC3\xA9llo \xF0\x9F\x8E\x89"};
  std::string stream = format_sse_comment("hi");
  for (const auto& d : payloads) stream += format_sse(d);
  stream += format_sse_done();
  auto events = parse(stream);
  ASSERT_EQ(events.size(), payloads.size() + 1);
  for (std::size_t i = 0; i < payloads.size(); ++i) EXPECT_EQ(events[i].data, payloads[i]) << i;
  EXPECT_EQ(events.back().data, "[DONE]");
}

}  // namespace
}  // namespace gw::providers
