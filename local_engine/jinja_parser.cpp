// Chat-template lexer and recursive-descent parser (see jinja_parser.h). Operator precedence follows
// Jinja2: conditional `a if c else b` < or < and < not < comparisons/in < + - < ~ < * / // % < ** <
// unary - + < filters/tests < postfix (.attr, [item], [a:b:c], call).
#include "local_engine/jinja_parser.h"

#include <charconv>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "local_engine/jinja_builtins.h"

namespace gw::local_engine::jinja {

namespace {

// Deepest nesting of blocks and expressions the parser accepts (bounds its recursion and the
// interpreter's).
constexpr int max_nesting = 64;

struct parse_failure {
  std::string message;
};

enum class tok : uint8_t { text, var_begin, var_end, block_begin, block_end, name, string, integer, number, op, eof };

struct token {
  tok type = tok::eof;
  std::string text;  // text, name, string value or operator
  int64_t i = 0;
  double d = 0;
  uint32_t line = 1, col = 1;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

// ---- lexer ----

class lexer {
 public:
  explicit lexer(std::string_view source) {
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_ += source[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();  // keep_trailing_newline=False
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<token> run() {
    size_t n = src_.size();
    bool line_starting = true;
    while (pos_ < n) {
      size_t tag = find_tag(pos_);
      std::string text = src_.substr(pos_, (tag == std::string::npos ? n : tag) - pos_);
      size_t text_pos = pos_;
      if (tag == std::string::npos) {
        push_text(std::move(text), text_pos);
        break;
      }
      char kind = src_[tag + 1];
      size_t p = tag + 2;
      char sign = 0;
      if (p < n && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
      if (sign == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      } else if (sign != '+' && kind != '{') {
        lstrip_block(text, line_starting);
      }
      push_text(std::move(text), text_pos);

      if (kind == '#') {
        size_t end = src_.find("#}", p);
        if (end == std::string::npos) fail_at(tag, "unclosed comment (missing '#}')");
        char end_sign = end > p && (src_[end - 1] == '-' || src_[end - 1] == '+') ? src_[end - 1] : 0;
        pos_ = end + 2;
        line_starting = after_tag(end_sign, true);
        continue;
      }
      if (kind == '%' && lex_raw(tag, p, line_starting)) continue;
      push(kind == '%' ? tok::block_begin : tok::var_begin, "", tag);
      pos_ = p;
      char end_sign = lex_tag_body(kind, tag);
      line_starting = after_tag(end_sign, kind == '%');
    }
    push(tok::eof, "", n);
    return std::move(tokens_);
  }

 private:
  std::string src_;
  size_t pos_ = 0;
  std::vector<size_t> line_starts_;
  std::vector<token> tokens_;

  void where(size_t pos, uint32_t& line, uint32_t& col) const {
    size_t lo = 0, hi = line_starts_.size();
    while (hi - lo > 1) {
      size_t mid = (lo + hi) / 2;
      if (line_starts_[mid] <= pos) lo = mid;
      else hi = mid;
    }
    line = static_cast<uint32_t>(lo + 1);
    col = static_cast<uint32_t>(pos - line_starts_[lo] + 1);
  }

  [[noreturn]] void fail_at(size_t pos, const std::string& what) const {
    uint32_t line, col;
    where(pos, line, col);
    throw parse_failure{"line " + std::to_string(line) + ", column " + std::to_string(col) + ": " + what};
  }

  void push(tok type, std::string text, size_t pos) {
    token t;
    t.type = type;
    t.text = std::move(text);
    where(pos, t.line, t.col);
    tokens_.push_back(std::move(t));
  }

  void push_text(std::string text, size_t pos) {
    if (!text.empty()) push(tok::text, std::move(text), pos);
  }

  size_t find_tag(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  // lstrip_blocks: spaces and tabs between the start of a line and a block or comment tag go.
  static void lstrip_block(std::string& text, bool line_starting) {
    size_t nl = text.rfind('\n');
    size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if (l_pos == 0 && !line_starting) return;
    if (l_pos == text.size()) return;
    for (size_t i = l_pos; i < text.size(); ++i)
      if (text[i] != ' ' && text[i] != '\t' && text[i] != '\v' && text[i] != '\f') return;
    text.resize(l_pos);
  }

  // Whitespace handling after a tag that ended just before pos_: `-` eats all whitespace, a block
  // or comment end eats one newline (trim_blocks) unless marked `+`. Returns whether the consumed
  // text ended with a newline (Jinja's "line starting" state for the next lstrip_blocks).
  bool after_tag(char end_sign, bool is_block) {
    if (end_sign == '-') {
      size_t start = pos_;
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
      return pos_ > start && src_[pos_ - 1] == '\n';
    }
    if (end_sign != '+' && is_block && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
      return true;
    }
    return false;
  }

  // {% raw %}...{% endraw %}: the content is text. Returns false when the tag is not `raw`.
  bool lex_raw(size_t tag, size_t p, bool& line_starting) {
    size_t q = p;
    while (q < src_.size() && is_space(src_[q])) ++q;
    if (src_.compare(q, 3, "raw") != 0 || (q + 3 < src_.size() && is_name_char(src_[q + 3]))) return false;
    q += 3;
    while (q < src_.size() && is_space(src_[q])) ++q;
    char begin_end_sign = 0;
    if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) begin_end_sign = src_[q++];
    if (src_.compare(q, 2, "%}") != 0) fail_at(q, "expected '%}' after 'raw'");
    pos_ = q + 2;
    after_tag(begin_end_sign == '-' ? '-' : '+', true);
    for (size_t s = src_.find("{%", pos_); s != std::string::npos; s = src_.find("{%", s + 2)) {
      size_t r = s + 2;
      char open_sign = 0;
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) open_sign = src_[r++];
      while (r < src_.size() && is_space(src_[r])) ++r;
      if (src_.compare(r, 6, "endraw") != 0) continue;
      r += 6;
      while (r < src_.size() && is_space(src_[r])) ++r;
      char close_sign = 0;
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) close_sign = src_[r++];
      if (src_.compare(r, 2, "%}") != 0) continue;
      std::string text = src_.substr(pos_, s - pos_);
      if (open_sign == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      } else if (open_sign != '+') {
        lstrip_block(text, false);
      }
      push_text(std::move(text), pos_);
      pos_ = r + 2;
      line_starting = after_tag(close_sign, true);
      return true;
    }
    fail_at(tag, "unclosed 'raw' block (missing '{% endraw %}')");
  }

  // Tokens inside {{ }} or {% %}; returns the whitespace sign of the closing delimiter.
  char lex_tag_body(char kind, size_t tag) {
    int depth = 0;
    const char* closer = kind == '%' ? "%}" : "}}";
    for (;;) {
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
      if (pos_ >= src_.size()) fail_at(tag, std::string("unclosed tag (missing '") + closer + "')");
      char c = src_[pos_];
      if (depth == 0) {
        if ((c == '-' || c == '+') && src_.compare(pos_ + 1, 2, closer) == 0 && (kind == '%' || c == '-')) {
          push(kind == '%' ? tok::block_end : tok::var_end, "", pos_);
          pos_ += 3;
          return c;
        }
        if (src_.compare(pos_, 2, closer) == 0) {
          push(kind == '%' ? tok::block_end : tok::var_end, "", pos_);
          pos_ += 2;
          return 0;
        }
      }
      size_t start = pos_;
      if (is_name_start(c)) {
        while (pos_ < src_.size() && is_name_char(src_[pos_])) ++pos_;
        push(tok::name, src_.substr(start, pos_ - start), start);
      } else if (is_digit(c)) {
        lex_number();
      } else if (c == '\'' || c == '"') {
        lex_string();
      } else {
        static const char* const two[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op;
        for (const char* t : two)
          if (src_.compare(pos_, 2, t) == 0) op = t;
        if (op.empty()) {
          if (c == '\0' || !std::strchr("+-*/%~<>=.,:|()[]{}", c)) {
            unsigned char u = static_cast<unsigned char>(c);
            char hex[8];
            std::snprintf(hex, sizeof hex, "0x%02x", u);
            fail_at(pos_, u >= 0x20 && u < 0x7f ? std::string("unexpected character '") + c + "'"
                                                : std::string("unexpected byte ") + hex);
          }
          op = std::string(1, c);
          if (c == '(' || c == '[' || c == '{') ++depth;
          if (c == ')' || c == ']' || c == '}') {
            if (depth == 0) fail_at(pos_, std::string("unexpected '") + c + "'");
            --depth;
          }
        }
        pos_ += op.size();
        push(tok::op, std::move(op), start);
      }
    }
  }

  void lex_number() {
    size_t start = pos_;
    std::string digits;
    auto take_digits = [&] {
      while (pos_ < src_.size() && (is_digit(src_[pos_]) || (src_[pos_] == '_' && pos_ + 1 < src_.size() && is_digit(src_[pos_ + 1])))) {
        if (src_[pos_] != '_') digits += src_[pos_];
        ++pos_;
      }
    };
    take_digits();
    bool is_float = false;
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' && is_digit(src_[pos_ + 1])) {
      is_float = true;
      digits += '.';
      ++pos_;
      take_digits();
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t q = pos_ + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && is_digit(src_[q])) {
        is_float = true;
        digits += 'e';
        digits.append(src_, pos_ + 1, q - pos_ - 1);
        pos_ = q;
        take_digits();
      }
    }
    token t;
    where(start, t.line, t.col);
    t.text = digits;
    if (is_float) {
      t.type = tok::number;
      auto r = std::from_chars(digits.data(), digits.data() + digits.size(), t.d);
      if (r.ec != std::errc()) fail_at(start, "invalid number '" + digits + "'");
    } else {
      t.type = tok::integer;
      auto r = std::from_chars(digits.data(), digits.data() + digits.size(), t.i);
      if (r.ec != std::errc()) fail_at(start, "integer literal out of range '" + digits + "'");
    }
    tokens_.push_back(std::move(t));
  }

  // A Python string literal: \n \t \r \\ \' \" \a \b \f \v \0-\7.. \xhh \uXXXX \UXXXXXXXX;
  // other escapes keep their backslash.
  void lex_string() {
    size_t start = pos_;
    char quote = src_[pos_++];
    std::string out;
    for (;;) {
      if (pos_ >= src_.size()) fail_at(start, "unterminated string literal");
      char c = src_[pos_++];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= src_.size()) fail_at(start, "unterminated string literal");
      char e = src_[pos_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '\n': break;  // line continuation
        case 'x':
        case 'u':
        case 'U': {
          size_t len = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          auto r = std::from_chars(src_.data() + pos_, src_.data() + std::min(src_.size(), pos_ + len), cp, 16);
          if (r.ec != std::errc() || static_cast<size_t>(r.ptr - (src_.data() + pos_)) != len || cp > 0x10ffff)
            fail_at(pos_ - 2, std::string("invalid \\") + e + " escape in string literal");
          pos_ += len;
          append_utf8(out, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '7'; ++k)
              cp = cp * 8 + static_cast<uint32_t>(src_[pos_++] - '0');
            append_utf8(out, cp);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    push(tok::string, std::move(out), start);
  }
};

// ---- parser ----

bool is_end_tag(std::string_view name) {
  static const char* const ends[] = {"endif", "elif", "else", "endfor", "endset", "endmacro", "endcall",
                                     "endfilter", "endwith", "endraw", "endgeneration"};
  for (const char* e : ends)
    if (name == e) return true;
  return false;
}

// `x.content` or `x['content']`.
bool names_content(const expr& e) {
  if (e.kind == expr_kind::attr) return static_cast<const attr_expr&>(e).name == "content";
  if (e.kind != expr_kind::item) return false;
  const expr& key = *static_cast<const item_expr&>(e).key;
  if (key.kind != expr_kind::literal) return false;
  const value& v = static_cast<const literal_expr&>(key).v;
  return v.is_string() && v.as_string() == "content";
}

class parser {
 public:
  explicit parser(std::vector<token> tokens) : toks_(std::move(tokens)) {}

  std::unique_ptr<program> run() {
    prog_ = std::make_unique<program>();
    std::string found;
    prog_->root = parse_body({}, found, "", 0);
    return std::move(prog_);
  }

 private:
  std::vector<token> toks_;
  size_t i_ = 0;
  int nesting_ = 0;
  int conditional_ = 0;  // inside if/elif/else bodies: unknown filters/tests fail at run time
  int loops_ = 0;        // enclosing for loops in the current macro (break/continue need one)
  std::unique_ptr<program> prog_;

  struct nesting_guard {
    parser& p;
    explicit nesting_guard(parser& pp) : p(pp) {
      if (++p.nesting_ > max_nesting) p.fail("template nested too deeply (more than " + std::to_string(max_nesting) + " levels)");
    }
    ~nesting_guard() { --p.nesting_; }
  };

  const token& peek(size_t ahead = 0) const { return toks_[std::min(i_ + ahead, toks_.size() - 1)]; }
  const token& next() {
    const token& t = toks_[i_];
    if (i_ + 1 < toks_.size()) ++i_;
    return t;
  }
  uint32_t line() const { return peek().line; }

  [[noreturn]] void fail(const std::string& what, const token* at = nullptr) const {
    const token& t = at ? *at : peek();
    throw parse_failure{"line " + std::to_string(t.line) + ", column " + std::to_string(t.col) + ": " + what};
  }

  static std::string describe(const token& t) {
    switch (t.type) {
      case tok::text: return "template text";
      case tok::var_begin: return "'{{'";
      case tok::var_end: return "'}}'";
      case tok::block_begin: return "'{%'";
      case tok::block_end: return "'%}'";
      case tok::name: return "'" + t.text + "'";
      case tok::string: return "string literal";
      case tok::integer:
      case tok::number: return "number '" + t.text + "'";
      case tok::op: return "'" + t.text + "'";
      case tok::eof: return "end of template";
    }
    return "token";
  }

  bool is_op(std::string_view op, size_t ahead = 0) const {
    const token& t = peek(ahead);
    return t.type == tok::op && t.text == op;
  }
  bool is_name(std::string_view name, size_t ahead = 0) const {
    const token& t = peek(ahead);
    return t.type == tok::name && t.text == name;
  }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!is_name(name)) return false;
    next();
    return true;
  }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) fail("expected '" + std::string(op) + "', got " + describe(peek()));
  }
  std::string expect_name(const char* what) {
    if (peek().type != tok::name) fail(std::string("expected ") + what + ", got " + describe(peek()));
    return next().text;
  }
  void expect_block_end() {
    if (peek().type != tok::block_end) fail("expected '%}', got " + describe(peek()));
    next();
  }

  // ---- statements ----

  // Parses statements until one of `ends` opens a tag (consumed up to and including the name,
  // stored in `found`). `opening` names the block for the unclosed-block error.
  body parse_body(std::initializer_list<std::string_view> ends, std::string& found, std::string_view opening,
                  uint32_t opening_line) {
    nesting_guard guard(*this);
    body b;
    for (;;) {
      const token& t = peek();
      switch (t.type) {
        case tok::eof:
          if (ends.size() != 0) {
            std::string expected;
            for (std::string_view e : ends) expected += (expected.empty() ? "'" : " or '") + std::string(e) + "'";
            fail("unclosed '" + std::string(opening) + "' block opened at line " + std::to_string(opening_line) +
                 " (expected " + expected + ")");
          }
          return b;
        case tok::text:
          b.push_back(std::make_unique<text_stmt>(t.line, t.text));
          next();
          break;
        case tok::var_begin: {
          uint32_t l = t.line;
          next();
          expr_ptr e = parse_tuple(true);
          if (peek().type != tok::var_end) fail("expected '}}', got " + describe(peek()));
          next();
          b.push_back(std::make_unique<output_stmt>(l, std::move(e)));
          break;
        }
        case tok::block_begin: {
          const token& name = peek(1);
          if (name.type != tok::name) fail("expected a tag name after '{%', got " + describe(name), &name);
          for (std::string_view e : ends)
            if (name.text == e) {
              next();
              found = next().text;
              return b;
            }
          next();
          parse_statement(b);
          break;
        }
        default:
          fail("unexpected " + describe(t));
      }
    }
  }

  void parse_statement(body& b) {
    const token& name_tok = peek();
    std::string name = next().text;
    uint32_t l = name_tok.line;
    if (name == "if") return parse_if(b, l);
    if (name == "for") return parse_for(b, l);
    if (name == "set") return parse_set(b, l);
    if (name == "macro") return parse_macro(b, l);
    if (name == "call") return parse_call_block(b, l);
    if (name == "filter") return parse_filter_block(b, l);
    if (name == "with") return parse_with(b, l);
    if (name == "generation") {
      expect_block_end();
      auto s = std::make_unique<block_stmt>(l);
      std::string found;
      s->content = parse_body({"endgeneration"}, found, "generation", l);
      expect_block_end();
      b.push_back(std::move(s));
      return;
    }
    if (name == "break" || name == "continue") {
      if (loops_ == 0) fail("'" + name + "' outside of a loop", &toks_[i_ - 1]);
      expect_block_end();
      b.push_back(std::make_unique<loop_control_stmt>(l, name == "break"));
      return;
    }
    if (name == "include" || name == "import" || name == "from" || name == "extends" || name == "block")
      fail("'" + name + "' is not supported (chat templates must be self-contained)", &toks_[i_ - 1]);
    if (is_end_tag(name)) fail("unexpected '" + name + "' (no open block it closes)", &toks_[i_ - 1]);
    fail("unknown tag '" + name + "'", &toks_[i_ - 1]);
  }

  void parse_if(body& b, uint32_t l) {
    auto s = std::make_unique<if_stmt>(l);
    ++conditional_;
    expr_ptr cond = parse_tuple(true);
    expect_block_end();
    std::string found;
    body branch = parse_body({"elif", "else", "endif"}, found, "if", l);
    s->branches.emplace_back(std::move(cond), std::move(branch));
    while (found == "elif") {
      cond = parse_tuple(true);
      expect_block_end();
      branch = parse_body({"elif", "else", "endif"}, found, "if", l);
      s->branches.emplace_back(std::move(cond), std::move(branch));
    }
    if (found == "else") {
      expect_block_end();
      s->otherwise = parse_body({"endif"}, found, "if", l);
    }
    expect_block_end();
    --conditional_;
    b.push_back(std::move(s));
  }

  void parse_for(body& b, uint32_t l) {
    auto s = std::make_unique<for_stmt>(l);
    bool parens = skip_op("(");
    s->targets.push_back(expect_name("a loop variable name"));
    while (skip_op(",")) {
      if (is_name("in") || is_op(")")) break;
      s->targets.push_back(expect_name("a loop variable name"));
    }
    if (parens) expect_op(")");
    if (!skip_name("in")) fail("expected 'in' in for loop, got " + describe(peek()));
    s->iterable = parse_tuple(false);
    if (skip_name("if")) s->filter = parse_expression(true);
    if (is_name("recursive")) fail("recursive loops are not supported");
    expect_block_end();
    if (names_content(*s->iterable)) prog_->iterates_content = true;
    ++loops_;
    std::string found;
    s->loop_body = parse_body({"else", "endfor"}, found, "for", l);
    --loops_;
    if (found == "else") {
      expect_block_end();
      s->otherwise = parse_body({"endfor"}, found, "for", l);
    }
    expect_block_end();
    b.push_back(std::move(s));
  }

  void parse_set(body& b, uint32_t l) {
    std::vector<std::string> targets;
    std::string attr;
    bool parens = skip_op("(");
    targets.push_back(expect_name("a variable name"));
    if (!parens && skip_op(".")) {
      attr = expect_name("an attribute name");
    } else {
      while (skip_op(",")) {
        if (is_op(")") || is_op("=")) break;
        targets.push_back(expect_name("a variable name"));
      }
      if (parens) expect_op(")");
    }
    if (skip_op("=")) {
      auto s = std::make_unique<set_stmt>(l);
      s->targets = std::move(targets);
      s->attr = std::move(attr);
      s->value_expr = parse_tuple(true);
      expect_block_end();
      b.push_back(std::move(s));
      return;
    }
    if (targets.size() != 1 || !attr.empty()) fail("expected '=' in set");
    auto s = std::make_unique<set_block_stmt>(l);
    s->target = targets[0];
    while (skip_op("|")) s->filters.push_back(parse_filter_call());
    expect_block_end();
    std::string found;
    s->content = parse_body({"endset"}, found, "set", l);
    expect_block_end();
    b.push_back(std::move(s));
  }

  std::vector<macro_param> parse_params() {
    std::vector<macro_param> params;
    expect_op("(");
    while (!is_op(")")) {
      macro_param p;
      p.name = expect_name("a parameter name");
      if (skip_op("=")) p.default_value = parse_expression(true);
      params.push_back(std::move(p));
      if (!skip_op(",")) break;
    }
    expect_op(")");
    return params;
  }

  void parse_macro(body& b, uint32_t l) {
    auto s = std::make_unique<macro_stmt>(l);
    s->name = expect_name("a macro name");
    s->params = parse_params();
    expect_block_end();
    int saved_loops = loops_;
    loops_ = 0;
    std::string found;
    s->content = parse_body({"endmacro"}, found, "macro", l);
    loops_ = saved_loops;
    if (peek().type == tok::name) next();  // {% endmacro name %}
    expect_block_end();
    b.push_back(std::move(s));
  }

  void parse_call_block(body& b, uint32_t l) {
    auto s = std::make_unique<call_block_stmt>(l);
    if (is_op("(")) s->caller_params = parse_params();
    const token& at = peek();
    expr_ptr e = parse_expression(true);
    if (e->kind != expr_kind::call) fail("expected a macro call after 'call'", &at);
    s->call.reset(static_cast<call_expr*>(e.release()));
    expect_block_end();
    int saved_loops = loops_;
    loops_ = 0;
    std::string found;
    s->content = parse_body({"endcall"}, found, "call", l);
    loops_ = saved_loops;
    expect_block_end();
    b.push_back(std::move(s));
  }

  void parse_filter_block(body& b, uint32_t l) {
    auto s = std::make_unique<filter_block_stmt>(l);
    s->filters.push_back(parse_filter_call());
    while (skip_op("|")) s->filters.push_back(parse_filter_call());
    expect_block_end();
    std::string found;
    s->content = parse_body({"endfilter"}, found, "filter", l);
    expect_block_end();
    b.push_back(std::move(s));
  }

  void parse_with(body& b, uint32_t l) {
    auto s = std::make_unique<with_stmt>(l);
    while (peek().type != tok::block_end) {
      std::string n = expect_name("a variable name");
      expect_op("=");
      s->assignments.emplace_back(std::move(n), parse_expression(true));
      if (!skip_op(",")) break;
    }
    expect_block_end();
    std::string found;
    s->content = parse_body({"endwith"}, found, "with", l);
    expect_block_end();
    b.push_back(std::move(s));
  }

  filter_call parse_filter_call() {
    const token& at = peek();
    filter_call f;
    f.line = at.line;
    f.name = expect_name("a filter name");
    f.fn = find_filter(f.name);
    if (!f.fn && conditional_ == 0) fail("unknown filter '" + f.name + "'", &at);
    if (is_op("(")) f.args = parse_call_args();
    return f;
  }

  // ---- expressions ----

  // a, b, c (a tuple) or a single expression.
  expr_ptr parse_tuple(bool with_condexpr) {
    uint32_t l = line();
    expr_ptr first = parse_expression(with_condexpr);
    if (!is_op(",")) return first;
    auto t = std::make_unique<list_expr>(l);
    t->is_tuple = true;
    t->items.push_back(std::move(first));
    while (skip_op(",")) {
      if (peek().type == tok::block_end || peek().type == tok::var_end || is_op(")") || is_name("if")) break;
      t->items.push_back(parse_expression(with_condexpr));
    }
    return t;
  }

  expr_ptr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  expr_ptr parse_condexpr() {
    nesting_guard guard(*this);
    expr_ptr e = parse_or();
    while (is_name("if")) {
      uint32_t l = line();
      next();
      auto c = std::make_unique<cond_expr>(l);
      c->then = std::move(e);
      c->test = parse_or();
      if (skip_name("else")) c->otherwise = parse_condexpr();
      e = std::move(c);
    }
    return e;
  }

  expr_ptr parse_or() {
    expr_ptr left = parse_and();
    while (is_name("or")) {
      uint32_t l = line();
      next();
      left = std::make_unique<logical_expr>(l, false, std::move(left), parse_and());
    }
    return left;
  }

  expr_ptr parse_and() {
    expr_ptr left = parse_not();
    while (is_name("and")) {
      uint32_t l = line();
      next();
      left = std::make_unique<logical_expr>(l, true, std::move(left), parse_not());
    }
    return left;
  }

  expr_ptr parse_not() {
    if (is_name("not")) {
      nesting_guard guard(*this);
      uint32_t l = line();
      next();
      return std::make_unique<unary_expr>(l, unary_op::not_, parse_not());
    }
    return parse_compare();
  }

  expr_ptr parse_compare() {
    uint32_t l = line();
    expr_ptr first = parse_math1();
    std::unique_ptr<compare_expr> c;
    for (;;) {
      compare_op op;
      if (is_op("==")) op = compare_op::eq;
      else if (is_op("!=")) op = compare_op::ne;
      else if (is_op("<")) op = compare_op::lt;
      else if (is_op("<=")) op = compare_op::le;
      else if (is_op(">")) op = compare_op::gt;
      else if (is_op(">=")) op = compare_op::ge;
      else if (is_name("in")) op = compare_op::in;
      else if (is_name("not") && is_name("in", 1)) op = compare_op::not_in;
      else break;
      next();
      if (op == compare_op::not_in) next();
      if (!c) {
        c = std::make_unique<compare_expr>(l);
        c->first = std::move(first);
      }
      c->rest.emplace_back(op, parse_math1());
    }
    if (c) return c;
    return first;
  }

  expr_ptr parse_math1() {
    expr_ptr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      uint32_t l = line();
      binary_op op = next().text == "+" ? binary_op::add : binary_op::sub;
      left = std::make_unique<binary_expr>(l, op, std::move(left), parse_concat());
    }
    return left;
  }

  expr_ptr parse_concat() {
    uint32_t l = line();
    expr_ptr first = parse_math2();
    if (!is_op("~")) return first;
    auto c = std::make_unique<concat_expr>(l);
    c->parts.push_back(std::move(first));
    while (skip_op("~")) c->parts.push_back(parse_math2());
    return c;
  }

  expr_ptr parse_math2() {
    expr_ptr left = parse_pow();
    for (;;) {
      binary_op op;
      if (is_op("*")) op = binary_op::mul;
      else if (is_op("/")) op = binary_op::div;
      else if (is_op("//")) op = binary_op::floordiv;
      else if (is_op("%")) op = binary_op::mod;
      else break;
      uint32_t l = line();
      next();
      left = std::make_unique<binary_expr>(l, op, std::move(left), parse_pow());
    }
    return left;
  }

  expr_ptr parse_pow() {
    expr_ptr left = parse_unary(true);
    while (is_op("**")) {
      uint32_t l = line();
      next();
      left = std::make_unique<binary_expr>(l, binary_op::pow, std::move(left), parse_unary(true));
    }
    return left;
  }

  expr_ptr parse_unary(bool with_filter) {
    nesting_guard guard(*this);
    uint32_t l = line();
    expr_ptr node;
    if (is_op("-")) {
      next();
      node = std::make_unique<unary_expr>(l, unary_op::neg, parse_unary(false));
    } else if (is_op("+")) {
      next();
      node = std::make_unique<unary_expr>(l, unary_op::pos, parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  expr_ptr parse_primary() {
    const token& t = peek();
    uint32_t l = t.line;
    switch (t.type) {
      case tok::name: {
        std::string n = next().text;
        if (n == "true" || n == "True") return std::make_unique<literal_expr>(l, value::boolean(true));
        if (n == "false" || n == "False") return std::make_unique<literal_expr>(l, value::boolean(false));
        if (n == "none" || n == "None") return std::make_unique<literal_expr>(l, value::none());
        return std::make_unique<name_expr>(l, std::move(n));
      }
      case tok::string: {
        std::string s = next().text;
        while (peek().type == tok::string) s += next().text;  // "a" "b" concatenates
        return std::make_unique<literal_expr>(l, value::string(std::move(s)));
      }
      case tok::integer:
        return std::make_unique<literal_expr>(l, value::integer(next().i));
      case tok::number:
        return std::make_unique<literal_expr>(l, value::number(next().d));
      case tok::op:
        if (t.text == "(") {
          next();
          if (skip_op(")")) {
            auto e = std::make_unique<list_expr>(l);
            e->is_tuple = true;
            return e;
          }
          expr_ptr inner = parse_tuple(true);
          expect_op(")");
          return inner;
        }
        if (t.text == "[") {
          next();
          auto e = std::make_unique<list_expr>(l);
          while (!is_op("]")) {
            e->items.push_back(parse_expression(true));
            if (!skip_op(",")) break;
          }
          expect_op("]");
          return e;
        }
        if (t.text == "{") {
          next();
          auto e = std::make_unique<dict_expr>(l);
          while (!is_op("}")) {
            expr_ptr k = parse_expression(true);
            expect_op(":");
            e->items.emplace_back(std::move(k), parse_expression(true));
            if (!skip_op(",")) break;
          }
          expect_op("}");
          return e;
        }
        break;
      default:
        break;
    }
    fail("unexpected " + describe(t));
  }

  expr_ptr parse_postfix(expr_ptr node) {
    for (;;) {
      uint32_t l = line();
      if (skip_op(".")) {
        const token& t = peek();
        if (t.type == tok::name) {
          node = std::make_unique<attr_expr>(l, std::move(node), next().text);
        } else if (t.type == tok::integer) {
          auto key = std::make_unique<literal_expr>(l, value::integer(next().i));
          node = std::make_unique<item_expr>(l, std::move(node), std::move(key));
        } else {
          fail("expected an attribute name after '.', got " + describe(t));
        }
      } else if (is_op("[")) {
        next();
        node = parse_subscript(std::move(node), l);
      } else if (is_op("(")) {
        auto c = std::make_unique<call_expr>(l);
        c->callee = std::move(node);
        c->args = parse_call_args();
        node = std::move(c);
      } else {
        return node;
      }
    }
  }

  expr_ptr parse_subscript(expr_ptr object, uint32_t l) {
    expr_ptr start;
    if (!is_op(":")) {
      start = parse_expression(true);
      if (skip_op("]")) return std::make_unique<item_expr>(l, std::move(object), std::move(start));
    }
    auto s = std::make_unique<slice_expr>(l);
    s->object = std::move(object);
    s->start = std::move(start);
    expect_op(":");
    if (!is_op(":") && !is_op("]")) s->stop = parse_expression(true);
    if (skip_op(":") && !is_op("]")) s->step = parse_expression(true);
    expect_op("]");
    return s;
  }

  arguments parse_call_args() {
    arguments args;
    expect_op("(");
    while (!is_op(")")) {
      if (is_op("*") || is_op("**")) fail("*args and **kwargs are not supported");
      if (peek().type == tok::name && is_op("=", 1)) {
        std::string n = next().text;
        next();
        args.keyword.emplace_back(std::move(n), parse_expression(true));
      } else {
        if (!args.keyword.empty()) fail("positional argument after keyword argument");
        args.positional.push_back(parse_expression(true));
      }
      if (!skip_op(",")) break;
    }
    expect_op(")");
    return args;
  }

  expr_ptr parse_filter_expr(expr_ptr node) {
    for (;;) {
      if (is_op("|")) {
        next();
        const token& at = peek();
        auto f = std::make_unique<filter_expr>(at.line);
        f->input = std::move(node);
        f->name = expect_name("a filter name");
        f->fn = find_filter(f->name);
        if (!f->fn && conditional_ == 0) fail("unknown filter '" + f->name + "'", &at);
        if (is_op("(")) f->args = parse_call_args();
        node = std::move(f);
      } else if (is_name("is")) {
        next();
        auto t = std::make_unique<test_expr>(line());
        t->negated = skip_name("not");
        const token& at = peek();
        t->input = std::move(node);
        t->name = expect_name("a test name");
        t->fn = find_test(t->name);
        if (!t->fn && conditional_ == 0) fail("unknown test '" + t->name + "'", &at);
        const token& a = peek();
        if (is_op("(")) {
          t->args = parse_call_args();
        } else if ((a.type == tok::name || a.type == tok::string || a.type == tok::integer || a.type == tok::number ||
                    is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          if (is_name("is")) fail("cannot chain tests with 'is'");
          t->args.positional.push_back(parse_postfix(parse_primary()));
        }
        node = std::move(t);
      } else if (is_op("(")) {
        auto c = std::make_unique<call_expr>(line());
        c->callee = std::move(node);
        c->args = parse_call_args();
        node = std::move(c);
      } else {
        return node;
      }
    }
  }
};

}  // namespace

std::unique_ptr<program> parse_template(std::string_view source, std::string* error) {
  try {
    lexer lex(source);
    parser p(lex.run());
    return p.run();
  } catch (const parse_failure& f) {
    if (error) *error = f.message;
  } catch (const std::exception& e) {
    if (error) *error = std::string("template parse failed: ") + e.what();
  }
  return nullptr;
}

}  // namespace gw::local_engine::jinja
