#include "policies/complexity.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

using namespace gw::policies;

namespace {
using msgs = std::vector<std::pair<std::string, std::string>>;
complexity_features user(const std::string& text) { return extract_features({{"user", text}}, false, false, 0); }

std::string read_model_file() {
  // the repo root, from this file's path (tests/policies/complexity_test.cpp)
  auto root = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
  std::ifstream in(root / "policies" / "complexity_model.json");
  EXPECT_TRUE(in) << "policies/complexity_model.json not found under " << root;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

TEST(complexity, code_signals) {
  auto f = user("Fix this:\n```python\ndef f(x):\n    return x == 1\n```\nand also `print(f(2))`");
  EXPECT_EQ(f.code_fences, 2);
  EXPECT_GE(f.code_keywords, 3);  // def, return, print(, ==
  EXPECT_GT(f.syntax_density, 0.02);
  EXPECT_EQ(user("Tell me about the history of Rome.").code_fences, 0);
  EXPECT_EQ(user("Tell me about the history of Rome.").code_keywords, 0);
}

TEST(complexity, math_signals) {
  auto f = user("Solve for x: 3x + 5 = 20, then compute \\frac{x}{2} and $$x^2$$.");
  EXPECT_GE(f.equations, 1);
  EXPECT_GE(f.math_symbols, 3);  // + = ^
  EXPECT_GE(f.latex, 2);          // \frac and $$
  EXPECT_GE(f.numbers, 3);
  EXPECT_GT(f.digit_ratio, 0);
  EXPECT_GE(f.calc_cues, 2);      // solve, compute
  EXPECT_EQ(user("a == b").equations, 0);  // comparison, not an equation
  auto w = user("Tom has $12 and buys 3 apples for $2 each. How much money is left?");
  EXPECT_GE(w.word_problem, 4);  // $12, $2, each, how much
}

TEST(complexity, reasoning_and_retry) {
  auto f = user("Explain why the sky is blue, step by step, and prove that it must be so.");
  EXPECT_GE(f.explain_cues, 2);
  EXPECT_GE(f.proof_cues, 1);
  auto r = extract_features({{"user", "What is 2+2?"}, {"assistant", "5"}, {"user", "That's wrong, try again."}},
                            false, false, 0);
  EXPECT_EQ(r.retry_intent, 2);
  EXPECT_EQ(r.turns, 3);
  EXPECT_EQ(r.user_turns, 2);
  // retry phrases in assistant turns do not count
  EXPECT_EQ(extract_features({{"assistant", "try again"}}, false, false, 0).retry_intent, 0);
}

TEST(complexity, request_shape) {
  auto f = extract_features({{"system", "You are terse."}, {"user", "hi"}}, true, false, 512);
  EXPECT_EQ(f.has_tools, 1);
  EXPECT_EQ(f.has_system, 1);
  EXPECT_EQ(f.max_tokens, 512);
  EXPECT_EQ(f.wants_json, 0);
  EXPECT_EQ(user("Return the result as JSON.").wants_json, 1);
  EXPECT_EQ(extract_features({{"user", "x"}}, false, true, 0).wants_json, 1);
  auto mc = user("Which of the following is NOT a prime?\nA. 2\nB. 3\nC. 9\nD. 11\nAnswer:");
  EXPECT_EQ(mc.options, 4);
  EXPECT_EQ(mc.option_numeric, 1);
  EXPECT_EQ(mc.which_following, 1);
  EXPECT_GE(mc.negation, 1);
  EXPECT_EQ(mc.stem_words, 8);
  EXPECT_EQ(user("A. lone line\nnothing else").options, 0);  // one option is not a question
}

TEST(complexity, term_hashes_sorted_unique_and_case_folded) {
  auto a = user("Integral integral INTEGRAL of 3 and 4");
  EXPECT_TRUE(std::is_sorted(a.term_hashes.begin(), a.term_hashes.end()));
  EXPECT_EQ(std::adjacent_find(a.term_hashes.begin(), a.term_hashes.end()), a.term_hashes.end());
  EXPECT_TRUE(std::binary_search(a.term_hashes.begin(), a.term_hashes.end(), fnv1a32("integral")));
  EXPECT_TRUE(std::binary_search(a.term_hashes.begin(), a.term_hashes.end(), fnv1a32("integral integral")));
  EXPECT_TRUE(std::binary_search(a.term_hashes.begin(), a.term_hashes.end(), fnv1a32("0")));  // numbers
  EXPECT_TRUE(std::binary_search(a.term_hashes.begin(), a.term_hashes.end(), fnv1a32("of 0")));
  EXPECT_EQ(fnv1a32(""), 2166136261u);
  EXPECT_EQ(fnv1a32("a"), 0xe40c292cu);  // FNV-1a 32 reference value
}

TEST(complexity, shipped_model_parses_and_is_sane) {
  auto m = parse_complexity_model(read_model_file());
  EXPECT_GT(m.hash_buckets, 0u);
  EXPECT_EQ(m.hashed.size(), m.hash_buckets);
  double hi = complexity_score(user("hi"), m);
  double hard = complexity_score(
      user("A store sells pencils at $0.35 each and notebooks at $2.40 each. Maria buys 12 pencils and "
           "5 notebooks, pays with a $50 bill, and then spends 40% of her change on a book. The book's "
           "price is then discounted by 15% at the register. Calculate step by step how much money "
           "Maria has left, and explain why the order of the discounts does not matter."),
      m);
  EXPECT_GT(hard, hi);
  EXPECT_TRUE(std::isfinite(hi));
}

TEST(complexity, model_parse_errors) {
  EXPECT_THROW(parse_complexity_model("{not json"), complexity_model_error);
  EXPECT_THROW(parse_complexity_model("[]"), complexity_model_error);
  EXPECT_THROW(parse_complexity_model(R"({"weights":{}})"), complexity_model_error);  // no bias
  EXPECT_THROW(parse_complexity_model(R"({"bias":0})"), complexity_model_error);      // no weights
  EXPECT_THROW(parse_complexity_model(R"({"bias":0,"weights":{"nope":1}})"), complexity_model_error);
  EXPECT_THROW(parse_complexity_model(R"({"bias":"0","weights":{}})"), complexity_model_error);
  EXPECT_THROW(parse_complexity_model(R"({"bias":0,"weights":{},"hash_buckets":4,"hashed":[[4,1]]})"),
               complexity_model_error);
  EXPECT_THROW(parse_complexity_model(R"({"bias":0,"weights":{},"hash_buckets":4,"hashed":[[1]]})"),
               complexity_model_error);
  try {
    parse_complexity_model(R"({"bias":0,"weights":{"log_chars":1,"bogus":2}})");
    FAIL();
  } catch (const complexity_model_error& e) {
    EXPECT_NE(std::string(e.what()).find("bogus"), std::string::npos);
  }
  auto m = parse_complexity_model(R"({"bias":0.5,"weights":{"has_tools":2},"hash_buckets":8,"hashed":[[3,1.5]]})");
  EXPECT_EQ(m.bias, 0.5);
  EXPECT_EQ(m.hashed[3], 1.5);
  auto f = extract_features({{"user", "hi"}}, true, false, 0);
  // 0.5 + 2*1 + hashed: "hi" -> fnv1a32("hi") % 8 is 3 or not
  double expect = 2.5 + (fnv1a32("hi") % 8 == 3 ? 1.5 : 0.0);
  EXPECT_DOUBLE_EQ(complexity_score(f, m), expect);
}

TEST(complexity, threshold_for_share_exact_and_order_independent) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> s{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(threshold_for_share(s, 0.3), 7.5);  // 8, 9, 10 are above
  EXPECT_EQ(threshold_for_share(s, 0.0), inf);
  EXPECT_EQ(threshold_for_share(s, -1), inf);
  EXPECT_EQ(threshold_for_share({}, 0.5), inf);
  double all = threshold_for_share(s, 1.0);
  EXPECT_LT(all, 1.0);
  EXPECT_EQ(threshold_for_share(s, 7.0), all);  // clamped
  std::mt19937 rng(7);
  std::vector<double> big(1001);
  for (auto& x : big) x = std::uniform_real_distribution<double>(-3, 3)(rng);
  for (double share : {0.1, 0.25, 0.5, 0.9}) {
    double t = threshold_for_share(big, share);
    auto above = std::count_if(big.begin(), big.end(), [&](double x) { return x > t; });
    EXPECT_EQ(above, std::llround(share * 1001)) << share;
    auto shuffled = big;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    EXPECT_EQ(threshold_for_share(shuffled, share), t);
    std::reverse(shuffled.begin(), shuffled.end());
    EXPECT_EQ(threshold_for_share(shuffled, share), t);
  }
}
