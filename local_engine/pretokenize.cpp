// Pre-tokenizers of byte-level BPE vocabularies: hand matchers for the regexes llama.cpp uses for
// each `tokenizer.ggml.pre` name (the regex each matcher implements is quoted above it).
#include "local_engine/pretokenize.h"

#include <algorithm>
#include <initializer_list>
#include <utility>

#include "local_engine/unicode_tables.h"

namespace gw::local_engine {
namespace {

namespace uc = unicode;

constexpr uint32_t k_replacement = 0xFFFD;

// The text being split: code points and their class flags.
struct cpt_text {
  std::vector<uint32_t> cp;
  std::vector<uint8_t> fl;

  bool has(size_t i, uint8_t mask) const { return (fl[i] & mask) != 0; }
  bool ws(size_t i) const { return has(i, uc::whitespace); }
  bool newline(size_t i) const { return cp[i] == '\r' || cp[i] == '\n'; }
  // Past the run of code points from `i` (before `end`) whose flags meet `pred`.
  template <class Pred>
  size_t run(size_t i, size_t end, Pred pred) const {
    while (i < end && pred(i)) ++i;
    return i;
  }
};

// A character class of a pattern: category flags and literal code point ranges, maybe negated.
// Literal ranges see non-ASCII whitespace as U+000B, as llama.cpp's std::wregex path does.
struct char_class {
  uint8_t flags = 0;
  std::vector<std::pair<uint32_t, uint32_t>> ranges;  // inclusive
  bool negated = false;

  bool contains(uint32_t cp, uint8_t fl) const {
    bool in = (fl & flags) != 0;
    if (!in && !ranges.empty()) {
      const uint32_t c = (cp > 0x7F && (fl & uc::whitespace)) ? 0x0B : cp;
      for (const auto& [lo, hi] : ranges) {
        if (c >= lo && c <= hi) {
          in = true;
          break;
        }
      }
    }
    return in != negated;
  }
};

char_class flag_class(uint8_t flags) { return char_class{flags, {}, false}; }
char_class range_class(std::initializer_list<std::pair<uint32_t, uint32_t>> ranges, uint8_t flags = 0,
                       bool negated = false) {
  return char_class{flags, ranges, negated};
}

bool ascii_lower_is(uint32_t cp, char c) { return cp == static_cast<uint32_t>(c) || cp + 32 == static_cast<uint32_t>(c); }
bool is_ascii_alpha(uint32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Length of an English contraction at `pos` ('s 't 'm 'd 're 've 'll), 0 when none. `any_case`
// accepts upper-case letters after the apostrophe.
size_t contraction_at(const cpt_text& t, size_t pos, size_t end, bool any_case) {
  if (pos + 1 >= end || t.cp[pos] != '\'') return 0;
  auto is = [&](size_t i, char c) {
    return any_case ? ascii_lower_is(t.cp[i], c) : t.cp[i] == static_cast<uint32_t>(c);
  };
  if (is(pos + 1, 's') || is(pos + 1, 't') || is(pos + 1, 'm') || is(pos + 1, 'd')) return 2;
  if (pos + 2 < end &&
      ((is(pos + 1, 'r') && is(pos + 2, 'e')) || (is(pos + 1, 'v') && is(pos + 2, 'e')) ||
       (is(pos + 1, 'l') && is(pos + 2, 'l')))) {
    return 3;
  }
  return 0;
}

// The whitespace alternatives shared by the newer patterns, at a whitespace code point:
// \s*[\r\n]+|\s+(?!\S)|\s+
size_t whitespace_tail(const cpt_text& t, size_t pos, size_t end) {
  const size_t w = t.run(pos, end, [&](size_t i) { return t.ws(i); });
  for (size_t i = w; i > pos; --i) {
    if (t.newline(i - 1)) return i - pos;  // \s*[\r\n]+ ends at the run's last newline
  }
  if (w == end || w - pos == 1) return w - pos;  // \s+(?!\S) up to the end, or a lone \s+
  return w - pos - 1;                           // \s+(?!\S) leaves one space for the next word
}

}  // namespace

struct pre_tokenizer::pass {
  virtual ~pass() = default;
  // Length (in code points) of the match starting at `pos`, 0 when the pattern does not match
  // there. The match may not extend past `end`, the end of the piece being split.
  virtual size_t match(const cpt_text& t, size_t pos, size_t end) const = 0;
};

namespace {

using pass = pre_tokenizer::pass;

// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
struct gpt2_pass final : pass {
  size_t match(const cpt_text& t, size_t pos, size_t end) const override {
    if (size_t n = contraction_at(t, pos, end, false)) return n;
    const size_t s = (t.cp[pos] == ' ' && pos + 1 < end) ? pos + 1 : pos;
    for (uint8_t cls : {uc::letter, uc::number}) {
      if (t.has(s, cls)) return t.run(s, end, [&](size_t i) { return t.has(i, cls); }) - pos;
    }
    auto other = [&](size_t i) { return !t.has(i, uc::whitespace | uc::letter | uc::number); };
    if (other(s)) return t.run(s, end, other) - pos;
    if (!t.ws(pos)) return 0;
    const size_t w = t.run(pos, end, [&](size_t i) { return t.ws(i); });
    if (w == end) return w - pos;
    return w - pos >= 2 ? w - pos - 1 : 0;  // a single \s before \S matches nothing
  }
};

// Llama 3 and its relatives (Qwen2 uses one digit, MiniCPM5 any number; Qwen3.5 counts marks as
// letters; Seed-Coder has no [\r\n]* after punctuation; some drop the contractions):
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
// \s*[\r\n]+|\s+(?!\S)|\s+
struct llama3_pass final : pass {
  bool contractions = true;
  size_t max_digits = 3;  // 0: unbounded
  bool marks_are_letters = false;
  bool newlines_after_punct = true;

  size_t match(const cpt_text& t, size_t pos, size_t end) const override {
    if (contractions) {
      if (size_t n = contraction_at(t, pos, end, true)) return n;
    }
    const uint8_t word = marks_are_letters ? (uc::letter | uc::mark) : uc::letter;
    auto is_word = [&](size_t i) { return t.has(i, word); };
    if (is_word(pos)) return t.run(pos, end, is_word) - pos;
    if (!t.newline(pos) && !t.has(pos, uc::letter | uc::number) && pos + 1 < end && is_word(pos + 1)) {
      return t.run(pos + 1, end, is_word) - pos;
    }
    if (t.has(pos, uc::number)) {
      const size_t n = t.run(pos, end, [&](size_t i) { return t.has(i, uc::number); }) - pos;
      return max_digits ? std::min(n, max_digits) : n;
    }
    const uint8_t not_punct = uc::whitespace | word | uc::number;
    auto punct = [&](size_t i) { return !t.has(i, not_punct); };
    const size_t s = (t.cp[pos] == ' ' && pos + 1 < end) ? pos + 1 : pos;
    if (punct(s)) {
      size_t e = t.run(s, end, punct);
      if (newlines_after_punct) e = t.run(e, end, [&](size_t i) { return t.newline(i); });
      return e - pos;
    }
    return t.ws(pos) ? whitespace_tail(t, pos, end) : 0;
  }
};

// GPT-4o (and Tekken without contractions, single digits), as llama.cpp runs it:
// [^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'s|'t|'re|'ve|'m|'ll|'d)?|
// [^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'s|'t|'re|'ve|'m|'ll|'d)?|
// \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
// "Upper" is a letter that is not a-z, "lower" a letter that is not A-Z: non-ASCII letters are both.
struct cased_words_pass final : pass {
  bool contractions = true;
  size_t max_digits = 3;

  size_t match(const cpt_text& t, size_t pos, size_t end) const override {
    auto letter = [&](size_t i) { return t.has(i, uc::letter); };
    size_t s = end;
    if (letter(pos)) {
      s = pos;
    } else if (!t.newline(pos) && !t.has(pos, uc::number) && pos + 1 < end && letter(pos + 1)) {
      s = pos + 1;
    }
    if (s < end) {
      const size_t e = t.run(s, end, letter);
      auto upper = [&](size_t i) { return t.cp[i] < 'a' || t.cp[i] > 'z'; };  // within [s, e)
      auto lower = [&](size_t i) { return i < e && (t.cp[i] < 'A' || t.cp[i] > 'Z'); };
      const size_t u = t.run(s, e, upper);
      // upper* lower+: backtrack the upper run to the last code point that is also lower.
      size_t k = u;
      if (u == e) {
        k = e;
        for (size_t i = e; i > s; --i) {
          if (lower(i - 1)) {
            k = i - 1;
            break;
          }
        }
      }
      // Without any lower code point the second alternative (upper+ lower*) takes the whole run.
      const size_t word_end = k < e ? t.run(k, end, lower) : e;
      const size_t c = contractions ? contraction_at(t, word_end, end, true) : 0;
      return word_end + c - pos;
    }
    if (t.has(pos, uc::number)) {
      const size_t n = t.run(pos, end, [&](size_t i) { return t.has(i, uc::number); }) - pos;
      return std::min(n, max_digits);
    }
    auto punct = [&](size_t i) { return !t.has(i, uc::whitespace | uc::letter | uc::number); };
    const size_t sp = (t.cp[pos] == ' ' && pos + 1 < end) ? pos + 1 : pos;
    if (punct(sp)) {
      const size_t e = t.run(t.run(sp, end, punct), end, [&](size_t i) { return t.newline(i) || t.cp[i] == '/'; });
      return e - pos;
    }
    return t.ws(pos) ? whitespace_tail(t, pos, end) : 0;
  }
};

// DeepSeek V3: [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
// ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
struct deepseek3_pass final : pass {
  size_t match(const cpt_text& t, size_t pos, size_t end) const override {
    const uint32_t c = t.cp[pos];
    auto ascii_alpha = [&](size_t i) { return is_ascii_alpha(t.cp[i]); };
    const bool ascii_punct = c >= 0x21 && c <= 0x7E && !is_ascii_alpha(c) && !(c >= '0' && c <= '9');
    if (ascii_punct && pos + 1 < end && ascii_alpha(pos + 1)) return t.run(pos + 1, end, ascii_alpha) - pos;
    auto word = [&](size_t i) { return t.has(i, uc::letter | uc::mark); };
    // \p{S} as llama.cpp's category-collapsed regex sees it: without '~'.
    auto punct = [&](size_t i) { return t.has(i, uc::punctuation) || (t.has(i, uc::symbol) && t.cp[i] != '~'); };
    if (word(pos)) return t.run(pos, end, word) - pos;
    if (!t.newline(pos) && !t.has(pos, uc::letter) && !punct(pos) && pos + 1 < end && word(pos + 1)) {
      return t.run(pos + 1, end, word) - pos;
    }
    const size_t s = (c == ' ' && pos + 1 < end) ? pos + 1 : pos;
    if (punct(s)) {
      const size_t e = t.run(t.run(s, end, punct), end, [&](size_t i) { return t.newline(i); });
      return e - pos;
    }
    return t.ws(pos) ? whitespace_tail(t, pos, end) : 0;
  }
};

// One optional prefix code point, then a run of one class: P?B{min,max}, optionally anchored at
// the end of the piece (B+$). Covers \p{N}, \p{N}{1,3}, [\r\n], \s?\p{L}+, [0-9][0-9][0-9], \s+$,
// literal range classes, ...
struct run_pass final : pass {
  bool has_prefix = false;
  char_class prefix;
  char_class body;
  size_t min = 1;
  size_t max = 0;  // 0: unbounded
  bool to_end = false;

  size_t body_len(const cpt_text& t, size_t s, size_t end) const {
    size_t n = 0;
    while (s + n < end && (max == 0 || n < max) && body.contains(t.cp[s + n], t.fl[s + n])) ++n;
    return n;
  }
  size_t match(const cpt_text& t, size_t pos, size_t end) const override {
    if (has_prefix && pos + 1 < end && prefix.contains(t.cp[pos], t.fl[pos])) {
      const size_t n = body_len(t, pos + 1, end);
      if (n >= min && (!to_end || pos + 1 + n == end)) return n + 1;
    }
    const size_t n = body_len(t, pos, end);
    return n >= min && (!to_end || pos + n == end) ? n : 0;
  }
};

std::unique_ptr<pass> run_of(char_class body, size_t min = 1, size_t max = 0) {
  auto p = std::make_unique<run_pass>();
  p->body = std::move(body);
  p->min = min;
  p->max = max;
  return p;
}

std::unique_ptr<pass> prefixed_run(char_class prefix, char_class body) {
  auto p = std::make_unique<run_pass>();
  p->has_prefix = true;
  p->prefix = std::move(prefix);
  p->body = std::move(body);
  return p;
}

std::unique_ptr<pass> llama3(size_t max_digits, bool contractions = true) {
  auto p = std::make_unique<llama3_pass>();
  p->max_digits = max_digits;
  p->contractions = contractions;
  return p;
}

std::unique_ptr<pass> cased_words(size_t max_digits, bool contractions) {
  auto p = std::make_unique<cased_words_pass>();
  p->max_digits = max_digits;
  p->contractions = contractions;
  return p;
}

// \p{N}
std::unique_ptr<pass> single_digits() { return run_of(flag_class(uc::number), 1, 1); }

// [一-龥ࠀ-一가-퟿]+ (DeepSeek LLM / Coder)
std::unique_ptr<pass> deepseek_cjk_hangul() {
  return run_of(range_class({{0x4E00, 0x9FA5}, {0x0800, 0x4E00}, {0xAC00, 0xD7FF}}));
}

// [\p{P}\$\+<=>\^~\|]+ (the `default` split; Falcon adds `)
std::unique_ptr<pass> punctuation_runs(bool backtick) {
  char_class c = range_class({{'$', '$'}, {'+', '+'}, {'<', '>'}, {'^', '^'}, {'~', '~'}, {'|', '|'}},
                             uc::punctuation);
  if (backtick) c.ranges.emplace_back('`', '`');
  return run_of(std::move(c));
}

// [0-9][0-9][0-9]
std::unique_ptr<pass> ascii_digit_triples() { return run_of(range_class({{'0', '9'}}), 3, 3); }

// ?[^(\s|.,!?…。，、।۔،)]+ (Poro, BLOOM)
std::unique_ptr<pass> poro_words() {
  return prefixed_run(range_class({{' ', ' '}}),
                      range_class({{'(', ')'}, {'|', '|'}, {'.', '.'}, {',', ','}, {'!', '!'}, {'?', '?'},
                                   {0x2026, 0x2026}, {0x3002, 0x3002}, {0xFF0C, 0xFF0C}, {0x3001, 0x3001},
                                   {0x0964, 0x0964}, {0x06D4, 0x06D4}, {0x060C, 0x060C}},
                                  uc::whitespace, /*negated=*/true));
}

// DeepSeek LLM: \s?[A-Za-zµÀ-ÖØ-öø-ƺ...]+ (cased letters of the scripts its tokenizer names)
std::unique_ptr<pass> deepseek_llm_letters() {
  return prefixed_run(
      flag_class(uc::whitespace),
      range_class({{0x41, 0x5A},       {0x61, 0x7A},       {0xB5, 0xB5},       {0xC0, 0xD6},
                   {0xD8, 0xF6},       {0xF8, 0x1BA},      {0x1BC, 0x1BF},     {0x1C4, 0x293},
                   {0x295, 0x2AF},     {0x370, 0x373},     {0x376, 0x377},     {0x37B, 0x37D},
                   {0x37F, 0x37F},     {0x386, 0x386},     {0x388, 0x38A},     {0x38C, 0x38C},
                   {0x38E, 0x3A1},     {0x3A3, 0x3F5},     {0x3F7, 0x481},     {0x48A, 0x52F},
                   {0x531, 0x556},     {0x10A0, 0x10C5},   {0x13A0, 0x13F5},   {0x13F8, 0x13FD},
                   {0x1C90, 0x1CBA},   {0x1CBD, 0x1CBF},   {0x1D00, 0x1D2B},   {0x1D6B, 0x1D77},
                   {0x1D79, 0x1D9A},   {0x1E00, 0x1F15},   {0x1F18, 0x1F1D},   {0x1F20, 0x1F45},
                   {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},   {0x1F59, 0x1F59},   {0x1F5B, 0x1F5B},
                   {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},   {0x1FB6, 0x1FBC},
                   {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FC4},   {0x1FC6, 0x1FCC},   {0x1FD0, 0x1FD3},
                   {0x1FD6, 0x1FDB},   {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},   {0x1FF6, 0x1FFC},
                   {0x2102, 0x2102},   {0x2107, 0x2107},   {0x210A, 0x2113},   {0x2115, 0x2115},
                   {0x2119, 0x211D},   {0x2124, 0x2124},   {0x2126, 0x2126},   {0x2128, 0x2128},
                   {0x212A, 0x212D},   {0x212F, 0x2134},   {0x2139, 0x2139},   {0x213C, 0x213F},
                   {0x2145, 0x2149},   {0x214E, 0x214E},   {0x2183, 0x2184},   {0x2C00, 0x2C7B},
                   {0x2C7E, 0x2CE4},   {0x2CEB, 0x2CEE},   {0x2CF2, 0x2CF3},   {0xA640, 0xA66D},
                   {0xA680, 0xA69B},   {0xA722, 0xA76F},   {0xA771, 0xA787},   {0xA78B, 0xA78E},
                   {0xAB70, 0xABBF},   {0xFB00, 0xFB06},   {0xFB13, 0xFB17},   {0xFF21, 0xFF3A},
                   {0xFF41, 0xFF5A},   {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
                   {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943}}));
}

// DeepSeek LLM: \s?[!-/:-~！-／：-～‘-‟　-。]+
std::unique_ptr<pass> deepseek_llm_punctuation() {
  return prefixed_run(flag_class(uc::whitespace),
                      range_class({{0x21, 0x2F}, {0x3A, 0x7E}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E},
                                   {0x2018, 0x201F}, {0x3000, 0x3002}}));
}

// \s+$
std::unique_ptr<pass> trailing_whitespace() {
  auto p = std::make_unique<run_pass>();
  p->body = flag_class(uc::whitespace);
  p->to_end = true;
  return p;
}

// Decodes UTF-8 like llama.cpp (one U+FFFD per byte that does not start a well-formed sequence);
// overlong forms, surrogates and code points past U+10FFFF count as ill-formed here.
// Returns false when some byte was replaced.
bool decode_utf8(std::string_view s, cpt_text* t) {
  t->cp.clear();
  t->cp.reserve(s.size());
  bool valid = true;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char b = p[i];
    if (b < 0x80) {
      t->cp.push_back(b);
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0, min = 0;
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2, cp = b & 0x1F, min = 0x80;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3, cp = b & 0x0F, min = 0x800;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4, cp = b & 0x07, min = 0x10000;
    }
    bool ok = len != 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    ok = ok && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (ok) {
      t->cp.push_back(cp);
      i += len;
    } else {
      t->cp.push_back(k_replacement);
      valid = false;
      ++i;
    }
  }
  return valid;
}

void append_utf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t utf8_len(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

bool name_in(std::string_view name, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

pre_tokenizer::pre_tokenizer() = default;
pre_tokenizer::~pre_tokenizer() = default;

std::unique_ptr<pre_tokenizer> pre_tokenizer::create(std::string_view name, std::string* error) {
  std::unique_ptr<pre_tokenizer> p(new pre_tokenizer());
  auto& v = p->passes_;
  if (name.empty() || name == "default") {
    v.push_back(punctuation_runs(false));
    v.push_back(std::make_unique<gpt2_pass>());
    v.push_back(run_of(flag_class(uc::number)));
    v.push_back(ascii_digit_triples());
  } else if (name_in(name, {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                            "jina-v5-nano"})) {
    v.push_back(llama3(3));
    p->ignore_merges_ = true;
    p->add_bos_ = true;
  } else if (name_in(name, {"dbrx", "smaug-bpe"})) {
    v.push_back(llama3(3));
  } else if (name_in(name, {"glm4", "chatglm-bpe"})) {
    v.push_back(llama3(3));
    p->no_bos_ = true;
  } else if (name_in(name, {"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "stablelm2", "megrez", "hunyuan",
                            "solar-open", "grok-2", "bailingmoe", "bailingmoe2", "llada-moe"})) {
    // (BailingMoE's \s*[\r\n] ends where \s*[\r\n]+ does: at the run's last newline.)
    v.push_back(llama3(1));
  } else if (name == "qwen35") {
    auto q = std::make_unique<llama3_pass>();
    q->max_digits = 1;
    q->marks_are_letters = true;
    v.push_back(std::move(q));
  } else if (name == "seed-coder") {
    auto q = std::make_unique<llama3_pass>();
    q->max_digits = 1;
    q->newlines_after_punct = false;
    v.push_back(std::move(q));
  } else if (name == "ufakzeka") {
    v.push_back(llama3(1, /*contractions=*/false));
  } else if (name == "minicpm5") {
    v.push_back(run_of(flag_class(uc::number), 1, 3));
    v.push_back(llama3(0));
    p->ignore_merges_ = true;
  } else if (name == "laguna") {
    v.push_back(run_of(range_class({{'\n', '\n'}}, 0, /*negated=*/true)));  // [^\n]+|[\n]+
    v.push_back(llama3(1));
  } else if (name == "deepseek-llm") {
    v.push_back(run_of(range_class({{'\r', '\r'}, {'\n', '\n'}}), 1, 1));
    v.push_back(deepseek_llm_letters());
    v.push_back(deepseek_llm_punctuation());
    v.push_back(trailing_whitespace());
    v.push_back(deepseek_cjk_hangul());
    v.push_back(run_of(flag_class(uc::number)));
  } else if (name == "deepseek-coder") {
    v.push_back(run_of(range_class({{'\r', '\r'}, {'\n', '\n'}}), 1, 1));
    v.push_back(prefixed_run(flag_class(uc::whitespace), flag_class(uc::letter)));
    v.push_back(prefixed_run(flag_class(uc::whitespace), flag_class(uc::punctuation)));
    v.push_back(deepseek_cjk_hangul());
    v.push_back(single_digits());
  } else if (name_in(name, {"deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4"})) {
    v.push_back(run_of(flag_class(uc::number), 1, 3));
    v.push_back(run_of(range_class({{0x4E00, 0x9FA5}, {0x3040, 0x309F}, {0x30A0, 0x30FF}})));
    v.push_back(std::make_unique<deepseek3_pass>());
  } else if (name == "falcon") {
    v.push_back(punctuation_runs(true));
    v.push_back(std::make_unique<gpt2_pass>());
    v.push_back(ascii_digit_triples());
  } else if (name_in(name, {"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b",
                            "mellum2"})) {
    v.push_back(single_digits());
    v.push_back(std::make_unique<gpt2_pass>());
  } else if (name_in(name, {"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de",
                            "a.x-4.0", "mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "mpt",
                            "olmo", "jais", "trillion", "granite-docling", "exaone4"})) {
    v.push_back(std::make_unique<gpt2_pass>());
  } else if (name_in(name, {"poro-chat", "bloom", "gpt3-finnish"})) {
    v.push_back(poro_words());
  } else if (name == "viking") {
    v.push_back(poro_words());
    v.push_back(single_digits());
  } else if (name == "tekken") {
    v.push_back(cased_words(1, /*contractions=*/false));
    p->ignore_merges_ = true;
    p->add_bos_ = true;
  } else if (name_in(name, {"gpt-4o", "llama4", "kanana2", "minimax-m2", "talkie"})) {
    v.push_back(cased_words(3, /*contractions=*/true));
  } else {
    if (error) *error = "unsupported pre-tokenizer '" + std::string(name) + "'";
    return nullptr;
  }
  return p;
}

void pre_tokenizer::split(std::string_view text, std::string* normalized, std::vector<uint32_t>* word_ends) const {
  cpt_text t;
  const bool valid = decode_utf8(text, &t);
  const size_t n = t.cp.size();
  t.fl.resize(n);
  for (size_t i = 0; i < n; ++i) t.fl[i] = uc::flags(t.cp[i]);

  // Piece boundaries (end code point index of each piece), refined by every pass.
  std::vector<uint32_t> ends, next;
  if (n > 0) ends.push_back(static_cast<uint32_t>(n));
  for (const auto& p : passes_) {
    next.clear();
    size_t begin = 0;
    for (const uint32_t end : ends) {
      size_t gap = begin;  // start of the text no match has covered yet
      for (size_t pos = begin; pos < end;) {
        const size_t len = p->match(t, pos, end);
        if (len == 0) {
          ++pos;
          continue;
        }
        if (gap < pos) next.push_back(static_cast<uint32_t>(pos));
        pos += len;
        next.push_back(static_cast<uint32_t>(pos));
        gap = pos;
      }
      if (gap < end) next.push_back(end);
      begin = end;
    }
    ends.swap(next);
  }

  normalized->clear();
  word_ends->clear();
  word_ends->reserve(ends.size());
  if (valid) {
    normalized->assign(text);
    size_t cp_index = 0, byte = 0;
    for (const uint32_t end : ends) {
      for (; cp_index < end; ++cp_index) byte += utf8_len(t.cp[cp_index]);
      word_ends->push_back(static_cast<uint32_t>(byte));
    }
    return;
  }
  normalized->reserve(text.size() + 2 * n);
  size_t cp_index = 0;
  for (const uint32_t end : ends) {
    for (; cp_index < end; ++cp_index) append_utf8(t.cp[cp_index], normalized);
    word_ends->push_back(static_cast<uint32_t>(normalized->size()));
  }
}

}  // namespace gw::local_engine
