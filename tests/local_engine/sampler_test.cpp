// Sampler: greedy, temperature, top-k / top-p / min-p boundaries, penalties, seeds, logprobs.
#include "local_engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <ctime>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <vector>

using gw::local_engine::sampled_token;
using gw::local_engine::sampler;
using gw::local_engine::sampling_params;

namespace {

// Logits whose softmax is exactly `probs` (up to float rounding).
std::vector<float> logits_for(const std::vector<double>& probs) {
  std::vector<float> out;
  for (double p : probs) out.push_back(static_cast<float>(std::log(p)));
  return out;
}

// How often each id is drawn in `n` samples.
std::map<int32_t, int> histogram(sampler& s, const std::vector<float>& logits, int n) {
  std::map<int32_t, int> h;
  for (int i = 0; i < n; ++i) ++h[s.sample(logits, false, 0).id];
  return h;
}

std::set<int32_t> support(const sampling_params& p, const std::vector<float>& logits) {
  sampler s(p, {});
  std::set<int32_t> ids;
  for (const auto& [id, count] : histogram(s, logits, 4000)) ids.insert(id);
  return ids;
}

sampling_params seeded(uint64_t seed) {
  sampling_params p;
  p.seed = seed;
  return p;
}

std::vector<float> random_logits(size_t n, uint64_t seed, float scale = 3.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

}  // namespace

TEST(sampler, greedy_takes_the_argmax_and_the_lowest_id_on_ties) {
  sampling_params p = seeded(1);
  p.temperature = 0.0f;
  sampler s(p, {});
  EXPECT_EQ(s.sample(std::vector<float>{0.1f, 2.0f, -1.0f, 1.9f}, false, 0).id, 1);
  EXPECT_EQ(s.sample(std::vector<float>{0.5f, 3.0f, 3.0f, 3.0f}, false, 0).id, 1);
}

TEST(sampler, top_k_one_equals_greedy) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    const auto logits = random_logits(1000, seed);
    sampling_params greedy = seeded(seed);
    greedy.temperature = 0.0f;
    sampling_params top1 = seeded(seed + 1000);
    top1.temperature = 1.5f;
    top1.top_k = 1;
    sampler g(greedy, {}), t(top1, {});
    EXPECT_EQ(g.sample(logits, false, 0).id, t.sample(logits, false, 0).id) << "seed " << seed;
  }
}

TEST(sampler, draws_follow_the_softmax_and_temperature_sharpens_it) {
  const auto logits = logits_for({0.5, 0.3, 0.2});
  const int n = 40000;
  sampler plain(seeded(7), {});
  const auto h = histogram(plain, logits, n);
  // 4.5 standard deviations of a binomial count.
  for (auto [id, p] : std::map<int32_t, double>{{0, 0.5}, {1, 0.3}, {2, 0.2}}) {
    const double sd = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(h.count(id) ? h.at(id) : 0, n * p, 4.5 * sd) << "id " << id;
  }
  // T = 0.5 squares the probabilities before renormalising: 25 : 9 : 4.
  sampling_params cold = seeded(8);
  cold.temperature = 0.5f;
  sampler c(cold, {});
  const auto hc = histogram(c, logits, n);
  const double total = 25 + 9 + 4;
  for (auto [id, w] : std::map<int32_t, double>{{0, 25}, {1, 9}, {2, 4}}) {
    const double p = w / total, sd = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(hc.count(id) ? hc.at(id) : 0, n * p, 4.5 * sd) << "id " << id;
  }
}

TEST(sampler, top_k_keeps_exactly_k_best) {
  const auto logits = logits_for({0.3, 0.25, 0.2, 0.15, 0.1});
  sampling_params p = seeded(3);
  p.top_k = 3;
  EXPECT_EQ(support(p, logits), (std::set<int32_t>{0, 1, 2}));
  p.top_k = 10;  // more than the vocabulary: no limit
  EXPECT_EQ(support(p, logits), (std::set<int32_t>{0, 1, 2, 3, 4}));
}

TEST(sampler, top_p_keeps_the_smallest_set_reaching_the_mass) {
  const auto logits = logits_for({0.2, 0.5, 0.3});  // order by probability: 1, 2, 0
  sampling_params p = seeded(4);
  p.top_p = 0.45f;
  EXPECT_EQ(support(p, logits), (std::set<int32_t>{1}));
  p.top_p = 0.55f;
  EXPECT_EQ(support(p, logits), (std::set<int32_t>{1, 2}));
  p.top_p = 0.79f;
  EXPECT_EQ(support(p, logits), (std::set<int32_t>{1, 2}));
  p.top_p = 0.81f;
  EXPECT_EQ(support(p, logits), (std::set<int32_t>{0, 1, 2}));
  // The kept tokens are renormalised: with {1, 2} kept, 1 is drawn 5/8 of the time.
  p.top_p = 0.6f;
  sampler s(p, {});
  const int n = 20000;
  const auto h = histogram(s, logits, n);
  const double sd = std::sqrt(n * 0.625 * 0.375);
  EXPECT_NEAR(h.at(1), n * 0.625, 4.5 * sd);
}

TEST(sampler, top_p_on_a_large_flat_vocabulary_needs_many_tokens) {
  // 10,000 equal tokens: top_p 0.5 must keep 5,000 of them (several selection windows).
  std::vector<float> logits(10000, 0.0f);
  sampling_params p = seeded(5);
  p.top_p = 0.5f;
  sampler s(p, {});
  std::set<int32_t> seen;
  for (int i = 0; i < 5000; ++i) seen.insert(s.sample(logits, false, 0).id);
  // Ties are broken by id, so the kept half is ids 0..4999.
  EXPECT_LT(*seen.rbegin(), 5000);
  EXPECT_GT(seen.size(), 2900u);  // 5000 draws over 5000 ids: ~3160 distinct
}

TEST(sampler, min_p_drops_tokens_below_a_fraction_of_the_best) {
  const auto logits = logits_for({0.4, 0.25, 0.19, 0.16});
  sampling_params p = seeded(6);
  p.min_p = 0.5f;  // keep p >= 0.2
  EXPECT_EQ(support(p, logits), (std::set<int32_t>{0, 1}));
  p.min_p = 0.45f;  // keep p >= 0.18
  EXPECT_EQ(support(p, logits), (std::set<int32_t>{0, 1, 2}));
  // Combined with top-p: top-p 0.7 keeps {0, 1, 2}; min-p then drops 2.
  p.min_p = 0.5f;
  p.top_p = 0.7f;
  EXPECT_EQ(support(p, logits), (std::set<int32_t>{0, 1}));
}

TEST(sampler, frequency_and_presence_penalties_count_generated_tokens) {
  const std::vector<float> logits{0.0f, 0.0f, 0.0f, 2.5f, 0.0f, 2.0f};
  auto greedy_with = [&](float frequency, float presence, std::vector<int32_t> prompt,
                         std::vector<int32_t> generated) {
    sampling_params p = seeded(1);
    p.temperature = 0.0f;
    p.frequency_penalty = frequency;
    p.presence_penalty = presence;
    sampler s(p, prompt);
    for (int32_t id : generated) s.accept(id);
    return s.sample(logits, false, 0).id;
  };
  // Token 3 generated twice: frequency 0.3 -> 2.5 - 0.6 = 1.9 < 2.0.
  EXPECT_EQ(greedy_with(0.3f, 0.0f, {}, {3, 3}), 5);
  EXPECT_EQ(greedy_with(0.2f, 0.0f, {}, {3, 3}), 3);  // 2.1
  // Presence counts once: 0.6 -> 1.9, 0.4 -> 2.1.
  EXPECT_EQ(greedy_with(0.0f, 0.6f, {}, {3, 3}), 5);
  EXPECT_EQ(greedy_with(0.0f, 0.4f, {}, {3, 3}), 3);
  // Both add up: 2.5 - 2 * 0.1 - 0.35 = 1.95.
  EXPECT_EQ(greedy_with(0.1f, 0.35f, {}, {3, 3}), 5);
  // The prompt does not count for the OpenAI penalties.
  EXPECT_EQ(greedy_with(2.0f, 2.0f, {3, 3, 3}, {}), 3);
  // Negative penalties encourage repetition.
  EXPECT_EQ(greedy_with(0.0f, -1.0f, {}, {5}), 5);
}

TEST(sampler, repetition_penalty_divides_positive_and_multiplies_negative_logits_in_its_window) {
  auto greedy_with = [](std::vector<float> logits, float penalty, int window,
                        std::vector<int32_t> prompt, std::vector<int32_t> generated) {
    sampling_params p = seeded(1);
    p.temperature = 0.0f;
    p.repetition_penalty = penalty;
    p.repetition_window = window;
    sampler s(p, prompt);
    for (int32_t id : generated) s.accept(id);
    return s.sample(logits, false, 0).id;
  };
  const std::vector<float> positive{0.0f, 0.0f, 0.0f, 2.5f, 0.0f, 2.0f};
  EXPECT_EQ(greedy_with(positive, 1.3f, 64, {3}, {}), 5);  // 2.5 / 1.3 = 1.92
  EXPECT_EQ(greedy_with(positive, 1.2f, 64, {3}, {}), 3);  // 2.08
  EXPECT_EQ(greedy_with(positive, 1.3f, 64, {}, {3}), 5);  // generated tokens count too
  // Applied once per distinct token, however often it appears.
  EXPECT_EQ(greedy_with(positive, 1.2f, 64, {3, 3, 3, 3}, {}), 3);
  const std::vector<float> negative{-1.0f, -1.0f, -1.0f, -0.5f, -0.6f, -1.0f};
  EXPECT_EQ(greedy_with(negative, 1.1f, 64, {3}, {}), 3);  // -0.55
  EXPECT_EQ(greedy_with(negative, 1.3f, 64, {3}, {}), 4);  // -0.65
  // Outside the window: token 3 is 3 tokens back, the window holds 2.
  EXPECT_EQ(greedy_with(positive, 1.3f, 2, {3, 7, 8}, {}), 3);
  EXPECT_EQ(greedy_with(positive, 1.3f, 3, {3, 7, 8}, {}), 5);
  // The ring keeps sliding as tokens are generated: {3} falls out after two more tokens.
  EXPECT_EQ(greedy_with(positive, 1.3f, 2, {3}, {7}), 5);
  EXPECT_EQ(greedy_with(positive, 1.3f, 2, {3}, {7, 8}), 3);
}

TEST(sampler, same_seed_same_tokens_and_other_seeds_differ) {
  const auto logits = random_logits(5000, 42, 1.0f);
  auto run = [&](uint64_t seed) {
    sampling_params p = seeded(seed);
    p.temperature = 0.9f;
    p.top_p = 0.95f;
    sampler s(p, {});
    std::vector<int32_t> ids;
    for (int i = 0; i < 100; ++i) {
      ids.push_back(s.sample(logits, false, 0).id);
      s.accept(ids.back());
    }
    return ids;
  };
  EXPECT_EQ(run(123), run(123));
  EXPECT_NE(run(123), run(124));
  // No seed: each sampler picks its own, and reports it.
  sampling_params unseeded;
  sampler a(unseeded, {}), b(unseeded, {});
  EXPECT_NE(a.seed(), b.seed());
}

TEST(sampler, logprobs_are_the_log_softmax_of_the_raw_logits) {
  const auto logits = random_logits(300, 9);
  sampling_params p = seeded(2);
  p.temperature = 0.3f;            // neither temperature ...
  p.frequency_penalty = 2.0f;      // ... nor penalties change the reported logprobs
  p.top_k = 5;
  sampler s(p, {});
  s.accept(17);
  const sampled_token t = s.sample(logits, true, 300);
  ASSERT_EQ(t.top.size(), 300u);
  double mass = 0.0;
  for (const auto& [id, lp] : t.top) mass += std::exp(static_cast<double>(lp));
  EXPECT_NEAR(mass, 1.0, 1e-5);
  for (size_t i = 1; i < t.top.size(); ++i) EXPECT_GE(t.top[i - 1].second, t.top[i].second);
  // Reference log-softmax in double.
  double max_logit = *std::max_element(logits.begin(), logits.end()), z = 0.0;
  for (float l : logits) z += std::exp(l - max_logit);
  const double lse = max_logit + std::log(z);
  EXPECT_NEAR(t.logprob, logits[static_cast<size_t>(t.id)] - lse, 1e-4);
  EXPECT_EQ(t.top[0].first, std::max_element(logits.begin(), logits.end()) - logits.begin());
  EXPECT_NEAR(t.top[17].second, logits[static_cast<size_t>(t.top[17].first)] - lse, 1e-4);

  const sampled_token few = s.sample(logits, true, 3);
  ASSERT_EQ(few.top.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(few.top[i].first, t.top[i].first);
  const sampled_token none = s.sample(logits, false, 5);
  EXPECT_TRUE(none.top.empty());
}

TEST(sampler, validate_names_the_bad_field) {
  EXPECT_EQ(validate(sampling_params{}), "");
  sampling_params p;
  p.top_p = 0.0f;
  EXPECT_NE(validate(p).find("top_p"), std::string::npos);
  p = {};
  p.temperature = -1.0f;
  EXPECT_NE(validate(p).find("temperature"), std::string::npos);
  p = {};
  p.presence_penalty = 2.5f;
  EXPECT_NE(validate(p).find("presence_penalty"), std::string::npos);
  p = {};
  p.repetition_penalty = 0.0f;
  EXPECT_NE(validate(p).find("repetition_penalty"), std::string::npos);
}

TEST(sampler, speed_on_a_152k_vocabulary) {
  // Not a timed assertion: prints the CPU time per token for the common settings (CPU time, not
  // wall time, so that other processes on the machine distort it less).
  const auto logits = random_logits(152064, 11, 2.0f);
  auto time_us = [&](sampling_params p, bool logprobs) {
    sampler s(p, {});
    const int n = 200;
    const std::clock_t t0 = std::clock();
    int32_t sink = 0;
    for (int i = 0; i < n; ++i) sink ^= s.sample(logits, logprobs, logprobs ? 5 : 0).id;
    const std::clock_t t1 = std::clock();
    EXPECT_GE(sink, 0);
    return 1e6 * static_cast<double>(t1 - t0) / CLOCKS_PER_SEC / n;
  };
  sampling_params greedy = seeded(1);
  greedy.temperature = 0.0f;
  sampling_params nucleus = seeded(1);
  nucleus.temperature = 0.8f;
  nucleus.top_p = 0.95f;
  sampling_params topk = seeded(1);
  topk.top_k = 40;
  sampling_params penal = nucleus;
  penal.repetition_penalty = 1.1f;
  penal.frequency_penalty = 0.5f;
  std::cout << "sampler CPU us/token on 152064 logits: greedy " << time_us(greedy, false)
            << ", top_p 0.95 " << time_us(nucleus, false) << ", top_k 40 " << time_us(topk, false)
            << ", top_p + penalties " << time_us(penal, false) << ", greedy + logprobs(5) "
            << time_us(greedy, true) << "\n";
}
