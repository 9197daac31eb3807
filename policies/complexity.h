#pragma once
// Request-complexity scorer: how much a request is likely to need the strong (expensive) model.
// Pure (no I/O, no clock, no globals): request text in, features out; features and a model in, a
// score out. The model (weights) is data, trained offline by scripts/train_complexity.py from the
// features that bench/complexity_features prints, and shipped as policies/complexity_model.json.
// Costs about 9 us for a 1 KB prompt (bench/scoring_bench): a few linear passes over the text; the
// phrase and keyword cues are counted in one of them, dispatched on the first byte.
#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace gw::policies {

// Dense features, in the order of complexity_feature_names(). Counts are raw (not log-scaled);
// dense_vector() applies the fixed transforms the model is trained on.
struct complexity_features {
  // size
  double chars = 0;           // bytes of message content, all messages
  double words = 0;           // alphanumeric runs (numbers included)
  double mean_word_len = 0;   // letters per word-token (numbers excluded)
  double long_word_ratio = 0; // share of word-tokens with >= 10 letters (jargon)
  double cap_word_ratio = 0;  // share of word-tokens starting upper-case, not sentence-initial
  double sentences = 0;       // '.', '?', '!' followed by space/newline/end
  double question_marks = 0;
  // conversation / request shape
  double turns = 0;           // messages
  double user_turns = 0;
  double has_system = 0;      // 0/1
  double has_tools = 0;       // 0/1 (argument)
  double wants_json = 0;      // 0/1: argument, or the text asks for JSON/YAML/a table
  double max_tokens = 0;      // argument; 0 when not given
  double retry_intent = 0;    // "that's wrong", "try again", "are you sure"... in user turns
  // code
  double code_fences = 0;     // ``` occurrences
  double code_keywords = 0;   // def, return, #include, printf, lambda, ... (whole words)
  double syntax_density = 0;  // {}[];=<>()_ per char
  // math
  double math_symbols = 0;    // + * / ^ = < > and '-' next to a digit, and a few Unicode symbols
  double digit_ratio = 0;     // digits per char
  double numbers = 0;         // numeric tokens (1, 3.5, 1,000)
  double equations = 0;       // '=' not part of '==', '<=', '>=', '!='
  double latex = 0;           // backslash commands (\frac, \sqrt) and "$$"
  double variables = 0;       // single-letter tokens other than a/A/I (x, n, p, ...)
  double units = 0;           // a number followed by a short word ("5 kg", "3 m/s")
  double word_problem = 0;    // "how many", "how much", "total", "each", "per", "$<digit>", "%"...
  // what the user asks for
  double calc_cues = 0;       // calculate, compute, solve, evaluate, find, "what is the value"
  double proof_cues = 0;      // prove, derive, "show that", justify
  double explain_cues = 0;    // explain, why, describe, "step by step"
  // multiple-choice shape
  double options = 0;         // lines starting "A." / "B)" / "(C)" (consecutive letters from A)
  double option_mean_chars = 0;
  double option_numeric = 0;  // share of options that are mostly digits/symbols
  double stem_words = 0;      // words before the first option (all words when no options)
  double which_following = 0; // "which of the following"
  double negation = 0;        // NOT / EXCEPT / LEAST in capitals, "is not", "except"
  double statement_pair = 0;  // "statement 1"

  // Hashes (FNV-1a 32-bit) of the distinct lower-cased word unigrams and adjacent bigrams ("a b")
  // of the user turns; numbers become the token "0". Sorted, unique.
  std::vector<std::uint32_t> term_hashes;
};

inline constexpr std::size_t complexity_dense_count = 35;

// Names of the dense model inputs, in dense_vector() order (the keys of "weights" in the model).
const std::array<std::string_view, complexity_dense_count>& complexity_feature_names();

// The model inputs: counts log1p-scaled, ratios as they are.
std::array<double, complexity_dense_count> dense_vector(const complexity_features& f);

// What the scorer reads from an OpenAI chat request (JSON): (role, text) per message — string
// content, or the text parts of array content joined by newlines — and whether it has tools, asks
// for structured output, and its max_tokens / max_completion_tokens (0 = not given). The one place
// requests become scorer input, so training (bench/complexity_features) and serving
// (`tollgate score`, `explain`) see the same features.
struct chat_request_view {
  std::vector<std::pair<std::string, std::string>> messages;
  bool has_tools = false;
  bool wants_json = false;
  std::int64_t max_tokens = 0;
};
chat_request_view read_chat_request(const nlohmann::json& request);

// messages: (role, content) in order. max_tokens <= 0 means "not given".
complexity_features extract_features(const std::vector<std::pair<std::string, std::string>>& messages,
                                     bool has_tools, bool wants_json, std::int64_t max_tokens);

// FNV-1a 32-bit, exposed so tests and the trainer can agree on it.
std::uint32_t fnv1a32(std::string_view s, std::uint32_t h = 2166136261u);

// A linear model over dense_vector() plus hashed terms:
//   score = bias + sum_i weights[i] * x[i] + sum_{h in term_hashes} hashed[h % hash_buckets] / sqrt(n)
// where n = term_hashes.size(). Higher = more likely to need the strong model (a logit when the
// model was fitted with a logistic loss; only the order matters for routing).
struct complexity_model {
  double bias = 0;
  std::array<double, complexity_dense_count> weights{};
  std::uint32_t hash_buckets = 0;  // 0: no hashed part
  std::vector<double> hashed;      // size hash_buckets
};

struct complexity_model_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Parses the model file's text. Throws complexity_model_error with a message naming the problem
// (bad JSON, missing "bias"/"weights", unknown feature name, bucket out of range, non-finite
// weight). Features missing from "weights" get weight 0. Load once at startup.
//   {"version":1, "bias":b, "weights":{"log_chars":w,...},
//    "hash_buckets":B, "hashed":[[bucket,w],...]}
complexity_model parse_complexity_model(std::string_view json_text);

double complexity_score(const complexity_features& f, const complexity_model& m);

// The threshold t such that routing "score > t" to the strong model sends round(strong_share * n)
// of the n calibration scores there: the midpoint between the k-th and (k+1)-th largest scores
// (k = round(share*n)); +inf when k == 0, below the minimum when k == n. Ties at the boundary send
// the whole tied group the same way, so the realised share can differ from the asked one.
// Deterministic and independent of the input order. strong_share is clamped to [0, 1]; an empty
// sample gives +inf (nothing goes strong).
double threshold_for_share(std::vector<double> calibration_scores, double strong_share);

}  // namespace gw::policies
