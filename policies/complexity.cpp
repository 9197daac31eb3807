#include "policies/complexity.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>

namespace gw::policies {

namespace {

bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
// Word characters: ASCII letters/digits and any non-ASCII byte (UTF-8 letters stay inside words).
bool is_word(unsigned char c) { return is_alpha(c) || is_digit(c) || c >= 0x80; }
char lower(unsigned char c) { return is_upper(c) ? static_cast<char>(c - 'A' + 'a') : static_cast<char>(c); }

// What a phrase or keyword hit adds to.
enum cue : std::uint8_t {
  cue_math, cue_latex, cue_fences, cue_code, cue_retry, cue_word_problem, cue_calc, cue_proof,
  cue_explain, cue_json, cue_which, cue_negation, cue_statement, cue_count
};

struct cue_text {
  std::string_view text;
  cue target;
};

// Substrings, each counted as non-overlapping occurrences, in the lower-cased text (the symbol
// phrases hold no letters, so lower-casing does not change their matches).
constexpr cue_text phrases[] = {
    // Unicode math: √ ∑ ∫ π ≤ ≥ ≠ × ÷ ∞ ∂
    {"\xE2\x88\x9A", cue_math}, {"\xE2\x88\x91", cue_math}, {"\xE2\x88\xAB", cue_math}, {"\xCF\x80", cue_math},
    {"\xE2\x89\xA4", cue_math}, {"\xE2\x89\xA5", cue_math}, {"\xE2\x89\xA0", cue_math}, {"\xC3\x97", cue_math},
    {"\xC3\xB7", cue_math}, {"\xE2\x88\x9E", cue_math}, {"\xE2\x88\x82", cue_math},
    {"$$", cue_latex}, {"```", cue_fences},
    {"#include", cue_code}, {"import ", cue_code}, {"print(", cue_code}, {"=>", cue_code}, {"->", cue_code},
    {"::", cue_code}, {"();", cue_code}, {"==", cue_code}, {"!=", cue_code},
    // counted in user turns only
    {"that's wrong", cue_retry}, {"that is wrong", cue_retry}, {"that's not right", cue_retry},
    {"that is not right", cue_retry}, {"try again", cue_retry}, {"are you sure", cue_retry},
    {"incorrect answer", cue_retry}, {"you made a mistake", cue_retry}, {"not what i asked", cue_retry},
    {"that's incorrect", cue_retry}, {"that is incorrect", cue_retry}, {"still wrong", cue_retry},
    {"doesn't work", cue_retry}, {"does not work", cue_retry},
    {"how many", cue_word_problem}, {"how much", cue_word_problem}, {"in total", cue_word_problem},
    {"altogether", cue_word_problem}, {"remaining", cue_word_problem}, {"left over", cue_word_problem},
    {"in all", cue_word_problem}, {"percent", cue_word_problem}, {"%", cue_word_problem},
    {"twice", cue_word_problem}, {"half of", cue_word_problem}, {"times as", cue_word_problem},
    {"what is the value", cue_calc}, {"what is the probability", cue_calc}, {"how long", cue_calc},
    {"how fast", cue_calc},
    {"show that", cue_proof},
    {"step by step", cue_explain}, {"step-by-step", cue_explain},
    {"json", cue_json}, {"yaml", cue_json}, {"as a table", cue_json}, {"in a table", cue_json},
    {"csv format", cue_json},
    {"which of the following", cue_which},
    {" except ", cue_negation}, {"is not ", cue_negation},
    {"statement 1", cue_statement},
};
constexpr std::size_t phrase_count = std::size(phrases);

// Whole words in the lower-cased text: a maximal run of word characters equal to the keyword.
constexpr cue_text keywords[] = {
    {"def", cue_code}, {"return", cue_code}, {"printf", cue_code}, {"lambda", cue_code}, {"void", cue_code},
    {"int", cue_code}, {"struct", cue_code}, {"elif", cue_code}, {"const", cue_code}, {"println", cue_code},
    {"async", cue_code}, {"await", cue_code}, {"namespace", cue_code}, {"null", cue_code},
    {"nullptr", cue_code}, {"malloc", cue_code}, {"sql", cue_code}, {"select", cue_code},
    {"function", cue_code}, {"var", cue_code}, {"endl", cue_code}, {"cout", cue_code},
    {"each", cue_word_problem}, {"per", cue_word_problem},
    {"calculate", cue_calc}, {"compute", cue_calc}, {"solve", cue_calc}, {"evaluate", cue_calc},
    {"find", cue_calc}, {"simplify", cue_calc}, {"estimate", cue_calc},
    {"prove", cue_proof}, {"derive", cue_proof}, {"justify", cue_proof}, {"proof", cue_proof},
    {"demonstrate", cue_proof},
    {"explain", cue_explain}, {"why", cue_explain}, {"describe", cue_explain}, {"analyze", cue_explain},
    {"analyse", cue_explain}, {"compare", cue_explain},
};
// Whole words in the original (case-sensitive) text.
constexpr std::string_view negation_words[] = {"NOT", "EXCEPT", "LEAST"};

// Phrase and keyword indices by first byte, so the scan tries only the candidates for each byte.
struct cue_index {
  std::array<std::array<std::uint8_t, 12>, 256> phrase{};
  std::array<std::uint8_t, 256> phrase_n{};
  std::array<std::array<std::uint8_t, 12>, 256> keyword{};
  std::array<std::uint8_t, 256> keyword_n{};
};

constexpr cue_index make_cue_index() {
  cue_index x;
  for (std::size_t i = 0; i < phrase_count; ++i) {
    auto c = static_cast<unsigned char>(phrases[i].text[0]);
    x.phrase[c][x.phrase_n[c]++] = static_cast<std::uint8_t>(i);
  }
  for (std::size_t i = 0; i < std::size(keywords); ++i) {
    auto c = static_cast<unsigned char>(keywords[i].text[0]);
    x.keyword[c][x.keyword_n[c]++] = static_cast<std::uint8_t>(i);
  }
  return x;
}
// Built at compile time: an overfull bucket is an out-of-bounds write, which fails the build.
constexpr cue_index cue_by_byte = make_cue_index();

// Cue counts of one message in one pass. `lo` is `text` lower-cased (same length). Gives the same
// counts as a separate find() loop per phrase (leftmost match, resume after it) and per keyword.
std::array<double, cue_count> scan_cues(std::string_view lo, std::string_view text, bool user) {
  std::array<double, cue_count> n{};
  std::array<std::size_t, phrase_count> next_ok{};  // a phrase may match again from here (no overlap)
  const std::size_t size = lo.size();
  for (std::size_t i = 0; i < size; ++i) {
    const auto c = static_cast<unsigned char>(lo[i]);
    for (std::uint8_t k = 0; k < cue_by_byte.phrase_n[c]; ++k) {
      const std::size_t id = cue_by_byte.phrase[c][k];
      const cue_text& p = phrases[id];
      if (i < next_ok[id] || p.text.size() > size - i) continue;
      // the second byte rejects most candidates before a full compare
      if (p.text.size() > 1 && (lo[i + 1] != p.text[1] || lo.compare(i + 2, p.text.size() - 2, p.text.substr(2)) != 0))
        continue;
      next_ok[id] = i + p.text.size();
      ++n[p.target];
    }
    if (is_word(c) && (i == 0 || !is_word(static_cast<unsigned char>(lo[i - 1])))) {
      std::size_t e = i + 1;
      while (e < size && is_word(static_cast<unsigned char>(lo[e]))) ++e;
      const std::string_view w = lo.substr(i, e - i);
      for (std::uint8_t k = 0; k < cue_by_byte.keyword_n[c]; ++k) {
        const cue_text& kw = keywords[cue_by_byte.keyword[c][k]];
        if (kw.text == w) {
          ++n[kw.target];
          break;
        }
      }
      const std::string_view orig = text.substr(i, e - i);
      for (std::string_view neg : negation_words)
        if (orig == neg) ++n[cue_negation];
    }
  }
  if (!user) n[cue_retry] = 0;
  return n;
}

// One token of a content string, for the hashed terms.
struct token {
  std::string_view text;  // as written
  bool number = false;
};

// Multiple-choice option lines: "A. x", "B) x", "(C) x" with consecutive letters from A.
struct option_scan {
  double count = 0, chars = 0, numeric = 0;
  std::size_t first_pos = std::string_view::npos;  // where option A starts
};

// Sorts ascending; large inputs (long prompts: thousands of term hashes) by a 4-pass LSD radix
// sort, which beats std::sort there. Same result as std::sort.
void sort_hashes(std::vector<std::uint32_t>& v) {
  if (v.size() < 1024) {
    std::sort(v.begin(), v.end());
    return;
  }
  std::vector<std::uint32_t> tmp(v.size());
  for (int shift = 0; shift < 32; shift += 8) {
    std::array<std::size_t, 257> start{};
    for (std::uint32_t x : v) ++start[((x >> shift) & 0xFFu) + 1];
    for (std::size_t b = 1; b < start.size(); ++b) start[b] += start[b - 1];
    for (std::uint32_t x : v) tmp[start[(x >> shift) & 0xFFu]++] = x;
    v.swap(tmp);
  }
}

option_scan scan_options(std::string_view text) {
  option_scan out;
  char want = 'A';
  std::size_t line_start = 0;
  while (line_start <= text.size()) {
    std::size_t nl = text.find('\n', line_start);
    std::size_t line_end = nl == std::string_view::npos ? text.size() : nl;
    std::string_view line = text.substr(line_start, line_end - line_start);
    std::size_t i = 0;
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    bool paren = i < line.size() && line[i] == '(';
    if (paren) ++i;
    if (i + 1 < line.size() && line[i] == want &&
        ((paren && line[i + 1] == ')') || (!paren && (line[i + 1] == '.' || line[i + 1] == ')')))) {
      std::string_view body = line.substr(i + 2);
      while (!body.empty() && body.front() == ' ') body.remove_prefix(1);
      if (want == 'A') out.first_pos = line_start;
      ++out.count;
      out.chars += static_cast<double>(body.size());
      std::size_t mathy = 0, letters = 0;
      for (unsigned char c : body) {
        if (is_alpha(c)) ++letters;
        else if (c != ' ') ++mathy;
      }
      if (!body.empty() && mathy >= letters) ++out.numeric;
      ++want;
    }
    if (nl == std::string_view::npos) break;
    line_start = nl + 1;
  }
  return out;
}

}  // namespace

std::uint32_t fnv1a32(std::string_view s, std::uint32_t h) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

const std::array<std::string_view, complexity_dense_count>& complexity_feature_names() {
  static constexpr std::array<std::string_view, complexity_dense_count> names = {
      "log_chars",       "log_words",        "mean_word_len",  "long_word_ratio", "cap_word_ratio",
      "log_sentences",   "log_question_marks", "log_turns",    "log_user_turns",  "has_system",
      "has_tools",       "wants_json",       "log_max_tokens", "retry_intent",    "log_code_fences",
      "log_code_keywords", "syntax_density", "log_math_symbols", "digit_ratio",   "log_numbers",
      "log_equations",   "log_latex",        "log_variables",  "log_units",       "log_word_problem",
      "log_calc_cues",   "log_proof_cues",   "log_explain_cues", "options",       "log_option_mean_chars",
      "option_numeric",  "log_stem_words",   "which_following", "negation",       "statement_pair"};
  return names;
}

std::array<double, complexity_dense_count> dense_vector(const complexity_features& f) {
  auto l = [](double x) { return std::log1p(std::max(0.0, x)); };
  return {l(f.chars),          l(f.words),          f.mean_word_len,     f.long_word_ratio,
          f.cap_word_ratio,    l(f.sentences),      l(f.question_marks), l(f.turns),
          l(f.user_turns),     f.has_system,        f.has_tools,         f.wants_json,
          l(f.max_tokens),     std::min(f.retry_intent, 3.0), l(f.code_fences), l(f.code_keywords),
          f.syntax_density,    l(f.math_symbols),   f.digit_ratio,       l(f.numbers),
          l(f.equations),      l(f.latex),          l(f.variables),      l(f.units),
          l(f.word_problem),   l(f.calc_cues),      l(f.proof_cues),     l(f.explain_cues),
          f.options,           l(f.option_mean_chars), f.option_numeric, l(f.stem_words),
          std::min(f.which_following, 1.0), std::min(f.negation, 3.0), std::min(f.statement_pair, 1.0)};
}

complexity_features extract_features(const std::vector<std::pair<std::string, std::string>>& messages,
                                     bool has_tools, bool wants_json, std::int64_t max_tokens) {
  complexity_features f;
  f.has_tools = has_tools ? 1 : 0;
  f.wants_json = wants_json ? 1 : 0;
  f.max_tokens = max_tokens > 0 ? static_cast<double>(max_tokens) : 0;
  f.turns = static_cast<double>(messages.size());

  double word_tokens = 0, letters = 0, long_words = 0, cap_words = 0, syntax = 0, digits = 0;
  std::string low;  // lower-cased content of one message, reused
  std::vector<std::uint32_t> hashes;
  std::vector<token> toks;  // tokens of one message, reused

  for (const auto& [role, content] : messages) {
    const bool user = role == "user";
    if (role == "system" || role == "developer") f.has_system = 1;
    if (user) ++f.user_turns;
    std::string_view text = content;
    f.chars += static_cast<double>(text.size());

    low.assign(text.size(), '\0');
    for (std::size_t i = 0; i < text.size(); ++i) low[i] = lower(static_cast<unsigned char>(text[i]));
    std::string_view lo = low;

    // Character pass: symbols, digits, sentences, '='.
    for (std::size_t i = 0; i < text.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(text[i]);
      unsigned char prev = i > 0 ? static_cast<unsigned char>(text[i - 1]) : ' ';
      unsigned char next = i + 1 < text.size() ? static_cast<unsigned char>(text[i + 1]) : ' ';
      if (is_digit(c)) ++digits;
      switch (c) {
        case '{': case '}': case '[': case ']': case ';': case '(': case ')': case '_':
          ++syntax; break;
        case '=':
          ++syntax; ++f.math_symbols;
          if (prev != '=' && prev != '<' && prev != '>' && prev != '!' && next != '=') ++f.equations;
          break;
        case '<': case '>':
          ++syntax; ++f.math_symbols; break;
        case '+': case '*': case '^':
          ++f.math_symbols; break;
        case '/':
          if (is_digit(prev) || is_digit(next) || prev == ' ') ++f.math_symbols;
          break;
        case '-':
          if (is_digit(next) || is_digit(prev)) ++f.math_symbols;
          break;
        case '?':
          ++f.question_marks; [[fallthrough]];
        case '.': case '!':
          if (next == ' ' || next == '\n' || i + 1 == text.size()) ++f.sentences;
          break;
        case '\\':
          if (is_alpha(next)) ++f.latex;
          break;
        default: break;
      }
    }
    // Unicode math: √ ∑ ∫ π ≤ ≥ ≠ × ÷ ∞ ∂
    const std::array<double, cue_count> cue = scan_cues(lo, text, user);
    f.math_symbols += cue[cue_math];
    f.latex += cue[cue_latex];
    f.code_fences += cue[cue_fences];
    f.code_keywords += cue[cue_code];

    // Token pass: words, numbers, variables, units, hashed terms.
    toks.clear();
    bool sentence_start = true;
    for (std::size_t i = 0; i < text.size();) {
      unsigned char c = static_cast<unsigned char>(text[i]);
      if (!is_word(c)) {
        if (c == '.' || c == '?' || c == '!' || c == '\n' || c == ':') sentence_start = true;
        ++i;
        continue;
      }
      std::size_t j = i;
      if (is_digit(c)) {  // number: digits with inner '.' / ','
        while (j < text.size() && (is_digit(static_cast<unsigned char>(text[j])) ||
                                   ((text[j] == '.' || text[j] == ',') && j + 1 < text.size() &&
                                    is_digit(static_cast<unsigned char>(text[j + 1])) && j > i)))
          ++j;
        // "3x", "2nd": the letters stay with the number
        while (j < text.size() && is_word(static_cast<unsigned char>(text[j]))) ++j;
        toks.push_back({text.substr(i, j - i), true});
        ++f.words;
        ++f.numbers;
      } else {
        while (j < text.size() && is_word(static_cast<unsigned char>(text[j]))) ++j;
        std::string_view w = text.substr(i, j - i);
        toks.push_back({w, false});
        ++f.words;
        ++word_tokens;
        letters += static_cast<double>(w.size());
        if (w.size() >= 10) ++long_words;
        if (is_upper(static_cast<unsigned char>(w[0])) && !sentence_start) ++cap_words;
        if (w.size() == 1 && is_alpha(static_cast<unsigned char>(w[0])) && w != "a" && w != "A" && w != "I")
          ++f.variables;
      }
      sentence_start = false;
      i = j;
    }
    for (std::size_t k = 0; k + 1 < toks.size(); ++k)
      if (toks[k].number && !toks[k + 1].number && toks[k + 1].text.size() <= 3) ++f.units;

    if (user) {
      f.retry_intent += cue[cue_retry];
      auto lower_term = [](std::string_view w, std::uint32_t h) {
        for (unsigned char ch : w) {
          h ^= static_cast<unsigned char>(lower(ch));
          h *= 16777619u;
        }
        return h;
      };
      auto term_hash = [&](const token& t, std::uint32_t h) { return t.number ? fnv1a32("0", h) : lower_term(t.text, h); };
      for (std::size_t k = 0; k < toks.size(); ++k) {
        std::uint32_t h = term_hash(toks[k], 2166136261u);
        hashes.push_back(h);
        if (k + 1 < toks.size()) hashes.push_back(term_hash(toks[k + 1], fnv1a32(" ", h)));
      }
    }

    f.word_problem += cue[cue_word_problem];
    for (std::size_t p = text.find('$'); p != std::string_view::npos; p = text.find('$', p + 1))
      if (p + 1 < text.size() && is_digit(static_cast<unsigned char>(text[p + 1]))) ++f.word_problem;
    f.calc_cues += cue[cue_calc];
    f.proof_cues += cue[cue_proof];
    f.explain_cues += cue[cue_explain];
    if (cue[cue_json] > 0) f.wants_json = 1;

    option_scan opts = scan_options(text);
    if (opts.count >= 2) {
      f.options += opts.count;
      f.option_mean_chars += opts.chars;  // divided below
      f.option_numeric += opts.numeric;
      // words before option A
      std::string_view stem = text.substr(0, opts.first_pos);
      double sw = 0;
      for (std::size_t i = 0; i < stem.size(); ++i)
        if (is_word(static_cast<unsigned char>(stem[i])) && (i == 0 || !is_word(static_cast<unsigned char>(stem[i - 1])))) ++sw;
      f.stem_words += sw;
    } else {
      f.stem_words += static_cast<double>(toks.size());
    }
    f.which_following += cue[cue_which];
    f.negation += cue[cue_negation];
    f.statement_pair += cue[cue_statement];
  }

  if (f.options > 0) {
    f.option_mean_chars /= f.options;
    f.option_numeric /= f.options;
  }
  if (word_tokens > 0) {
    f.mean_word_len = letters / word_tokens;
    f.long_word_ratio = long_words / word_tokens;
    f.cap_word_ratio = cap_words / word_tokens;
  }
  if (f.chars > 0) {
    f.syntax_density = syntax / f.chars;
    f.digit_ratio = digits / f.chars;
  }
  sort_hashes(hashes);
  hashes.erase(std::unique(hashes.begin(), hashes.end()), hashes.end());
  f.term_hashes = std::move(hashes);
  return f;
}

complexity_model parse_complexity_model(std::string_view json_text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::parse_error& e) {
    throw complexity_model_error(std::string("complexity model: invalid JSON: ") + e.what());
  }
  if (!j.is_object()) throw complexity_model_error("complexity model: top level must be an object");
  auto number = [](const nlohmann::json& v, const std::string& what) {
    if (!v.is_number()) throw complexity_model_error("complexity model: " + what + " must be a number");
    double d = v.get<double>();
    if (!std::isfinite(d)) throw complexity_model_error("complexity model: " + what + " is not finite");
    return d;
  };
  complexity_model m;
  if (!j.contains("bias")) throw complexity_model_error("complexity model: missing \"bias\"");
  m.bias = number(j["bias"], "\"bias\"");
  if (!j.contains("weights") || !j["weights"].is_object())
    throw complexity_model_error("complexity model: missing \"weights\" object");
  const auto& names = complexity_feature_names();
  for (const auto& [key, val] : j["weights"].items()) {
    auto it = std::find(names.begin(), names.end(), key);
    if (it == names.end()) throw complexity_model_error("complexity model: unknown feature \"" + key + "\"");
    m.weights[static_cast<std::size_t>(it - names.begin())] = number(val, "weight \"" + key + "\"");
  }
  if (j.contains("hash_buckets")) {
    const auto& b = j["hash_buckets"];
    if (!b.is_number_integer() || b.get<std::int64_t>() < 0 || b.get<std::int64_t>() > (1 << 24))
      throw complexity_model_error("complexity model: \"hash_buckets\" must be an integer in [0, 2^24]");
    m.hash_buckets = b.get<std::uint32_t>();
    m.hashed.assign(m.hash_buckets, 0.0);
  }
  if (j.contains("hashed")) {
    if (!j["hashed"].is_array()) throw complexity_model_error("complexity model: \"hashed\" must be an array");
    for (const auto& e : j["hashed"]) {
      if (!e.is_array() || e.size() != 2 || !e[0].is_number_integer())
        throw complexity_model_error("complexity model: \"hashed\" entries must be [bucket, weight]");
      std::int64_t b = e[0].get<std::int64_t>();
      if (b < 0 || b >= static_cast<std::int64_t>(m.hash_buckets))
        throw complexity_model_error("complexity model: hashed bucket " + std::to_string(b) + " out of range");
      m.hashed[static_cast<std::size_t>(b)] = number(e[1], "hashed weight");
    }
  }
  return m;
}

double complexity_score(const complexity_features& f, const complexity_model& m) {
  auto x = dense_vector(f);
  double s = m.bias;
  for (std::size_t i = 0; i < x.size(); ++i) s += m.weights[i] * x[i];
  if (m.hash_buckets > 0 && !f.term_hashes.empty()) {
    double h = 0;
    for (std::uint32_t t : f.term_hashes) h += m.hashed[t % m.hash_buckets];
    s += h / std::sqrt(static_cast<double>(f.term_hashes.size()));
  }
  return s;
}

double threshold_for_share(std::vector<double> scores, double strong_share) {
  const double inf = std::numeric_limits<double>::infinity();
  if (scores.empty() || !(strong_share > 0)) return inf;  // NaN share counts as 0
  strong_share = std::min(strong_share, 1.0);
  std::sort(scores.begin(), scores.end(), std::greater<double>());
  const std::size_t n = scores.size();
  const auto k = static_cast<std::size_t>(std::llround(strong_share * static_cast<double>(n)));
  if (k == 0) return inf;
  if (k >= n) return std::nextafter(scores[n - 1], -inf);  // everything strictly above
  return scores[k - 1] / 2 + scores[k] / 2;  // in [scores[k], scores[k-1]]: top k are > t unless tied
}

chat_request_view read_chat_request(const nlohmann::json& req) {
  chat_request_view v;
  if (auto msgs = req.find("messages"); msgs != req.end() && msgs->is_array()) {
    for (const auto& m : *msgs) {
      std::string role, content;
      if (m.is_object()) {
        if (auto r = m.find("role"); r != m.end() && r->is_string()) role = r->get<std::string>();
        if (auto c = m.find("content"); c != m.end()) {
          if (c->is_string()) {
            content = c->get<std::string>();
          } else if (c->is_array()) {
            for (const auto& part : *c)
              if (part.is_object() && part.value("type", "") == "text" && part.contains("text") && part["text"].is_string())
                content += part["text"].get<std::string>() + "\n";
          }
        }
      }
      v.messages.emplace_back(std::move(role), std::move(content));
    }
  }
  v.has_tools = req.contains("tools") && req["tools"].is_array() && !req["tools"].empty();
  v.wants_json = req.contains("response_format") && req["response_format"].is_object();
  for (const char* k : {"max_completion_tokens", "max_tokens"})
    if (auto it = req.find(k); it != req.end() && it->is_number_integer() && it->get<std::int64_t>() > 0)
      v.max_tokens = it->get<std::int64_t>();
  return v;
}

}  // namespace gw::policies
