#pragma once
// Token sampling for one generation request: penalties, temperature, top-k / top-p / min-p
// filters and a seeded random draw over the model's logits, plus the OpenAI-style logprobs of the
// chosen token. One sampler per request, used by one thread at a time (the scheduler samples
// several requests in parallel, each with its own sampler).
//
// Order of operations on a step's logits:
//   1. logprobs: log-softmax of the RAW logits (before penalties, temperature and filters), as
//      OpenAI reports them.
//   2. repetition_penalty (llama.cpp semantics): each distinct token among the last
//      `repetition_window` tokens of prompt + generated text has its logit divided by the penalty
//      when positive, multiplied when negative or zero.
//   3. presence / frequency penalties (OpenAI semantics, over GENERATED tokens only):
//      logit -= count * frequency_penalty + (count > 0) * presence_penalty.
//   4. temperature 0 (or below 1e-5): greedy, argmax with the lowest id winning exact ties; the
//      filters below are skipped.
//   5. otherwise logits / temperature, then top-k, top-p (nucleus: the smallest set of most likely
//      tokens whose probability reaches top_p), min-p (tokens with p < min_p * p_max dropped),
//      each over the renormalised result of the previous one, then one draw.
// The random stream is xoshiro256** seeded through splitmix64 (defined here, not by the standard
// library): a seed gives the same draws everywhere, so the same tokens for the same logits.
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace gw::local_engine {

struct sampling_params {
  float temperature = 1.0f;         // 0: greedy
  int top_k = 0;                    // 0: no limit
  float top_p = 1.0f;               // 1: no limit
  float min_p = 0.0f;               // 0: no limit
  float presence_penalty = 0.0f;    // OpenAI, -2..2
  float frequency_penalty = 0.0f;   // OpenAI, -2..2
  float repetition_penalty = 1.0f;  // llama.cpp, 1: off
  int repetition_window = 64;       // tokens of prompt + generated the repetition penalty sees
  std::optional<uint64_t> seed;     // none: a random seed per request
};

// Range checks with a message naming the field ("top_p must be in (0, 1]"). Empty when valid.
std::string validate(const sampling_params& p);

struct sampled_token {
  int32_t id = -1;
  float logprob = 0.0f;                        // log-softmax of the raw logits at `id`
  std::vector<std::pair<int32_t, float>> top;  // the top_logprobs best (id, logprob), best first
};

class sampler {
 public:
  // `prompt` seeds the repetition-penalty window.
  sampler(const sampling_params& params, std::span<const int32_t> prompt);

  // Picks the next token from `logits` (one per vocabulary entry). Fills logprob and `top` only
  // when `logprobs` is set (top_logprobs entries, at most the vocabulary size). Does not record the
  // token: call accept() with the id that is actually generated.
  sampled_token sample(std::span<const float> logits, bool logprobs, int top_logprobs);
  // Records a generated token for the penalties.
  void accept(int32_t id);

  uint64_t seed() const { return seed_; }
  const sampling_params& params() const { return params_; }

 private:
  bool penalties_active() const;
  void apply_penalties(std::span<float> logits) const;
  int32_t draw(std::span<const float> logits);
  uint64_t next_random();  // xoshiro256**
  double uniform();        // [0, 1), 53 random bits

  sampling_params params_;
  uint64_t seed_ = 0;
  std::array<uint64_t, 4> rng_{};  // xoshiro256** state, from the seed via splitmix64
  std::vector<int32_t> window_;    // ring of the last repetition_window tokens
  size_t window_next_ = 0;         // where the next token goes once the ring is full
  std::vector<std::pair<int32_t, int>> generated_counts_;  // (id, count), sorted by id
};

}  // namespace gw::local_engine
