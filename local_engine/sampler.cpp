// Token sampling: penalties, temperature, top-k / top-p / min-p and a seeded draw (see sampler.h
// for the exact order). Built for large vocabularies: probabilities come from the SIMD softmax
// kernel, and nothing is fully sorted (one-pass selections, and for top-p a histogram that leaves
// only the tokens around the cut to order).
#include "local_engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "kernels/ops.h"

namespace gw::local_engine {
namespace {

// The top-p histogram's buckets cover this many nats (after temperature) below the best token;
// the last bucket also holds everything further away (at most n_vocab * e^-40 of the mass).
constexpr float kHistogramNats = 40.0f;
// Temperatures below this are treated as 0 (greedy).
constexpr float kGreedyTemperature = 1e-5f;

// A token and a key that orders it: a logit while selecting from logits, else a probability.
struct candidate {
  float key;
  int32_t id;
};

// Larger key first; the lower id wins an exact tie (deterministic, like greedy).
inline bool better(const candidate& a, const candidate& b) {
  return a.key > b.key || (a.key == b.key && a.id < b.id);
}

// Per-thread scratch, reused from step to step (the scheduler thread samples every request).
struct scratch {
  std::vector<float> penalized;
  std::vector<float> probs;
  std::vector<candidate> candidates;
  std::vector<int32_t> distinct;
  std::vector<candidate> edge;  // top-p: the candidates of the bucket where the mass crosses
  std::vector<candidate> top;   // logprobs: the best raw logits
};
scratch& thread_scratch() {
  thread_local scratch s;
  return s;
}

// Eight running maxima: no single chain of dependent comparisons through the whole vocabulary.
float max_of(std::span<const float> x) {
  float best[8];
  std::fill(best, best + 8, x[0]);
  size_t i = 0;
  for (; i + 8 <= x.size(); i += 8) {
    for (size_t k = 0; k < 8; ++k) best[k] = x[i + k] > best[k] ? x[i + k] : best[k];
  }
  for (; i < x.size(); ++i) best[0] = x[i] > best[0] ? x[i] : best[0];
  return *std::max_element(best, best + 8);
}

// The maximum, then its first index.
int32_t argmax(std::span<const float> logits) {
  const float best = max_of(logits);
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] == best) return static_cast<int32_t>(i);
  }
  return 0;  // NaN logits
}

// log(sum(exp(logits))), from the SIMD softmax: its largest probability is 1 / sum(exp(l - max))
// (up to rounding), so the sum itself never has to be formed here.
float log_sum_exp(std::span<const float> logits, std::vector<float>& probs) {
  probs.assign(logits.begin(), logits.end());
  kernels::softmax(probs.data(), static_cast<int64_t>(probs.size()));
  return max_of(logits) - std::log(max_of(probs));
}

// The `n` largest keys, best first, in one pass with a heap of the n best so far (its front is
// the worst of them, so most tokens are rejected by one comparison).
void best_n(std::span<const float> keys, size_t n, std::vector<candidate>& out) {
  out.clear();
  n = std::min(n, keys.size());
  if (n == 0) return;
  for (size_t i = 0; i < n; ++i) out.push_back({keys[i], static_cast<int32_t>(i)});
  std::make_heap(out.begin(), out.end(), better);
  for (size_t i = n; i < keys.size(); ++i) {
    const candidate c{keys[i], static_cast<int32_t>(i)};
    if (!better(c, out.front())) continue;
    std::pop_heap(out.begin(), out.end(), better);
    out.back() = c;
    std::push_heap(out.begin(), out.end(), better);
  }
  std::sort_heap(out.begin(), out.end(), better);
}

// Sum of many floats with four independent accumulators (no single long dependency chain).
template <class Get>
double sum_of(size_t n, Get get) {
  double acc[4] = {0.0, 0.0, 0.0, 0.0};
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (size_t k = 0; k < 4; ++k) acc[k] += get(i + k);
  }
  for (; i < n; ++i) acc[0] += get(i);
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

// Top-p over a short candidate list keyed by probability: sorts it and keeps the smallest prefix
// whose mass reaches `target`.
void keep_nucleus_sorted(std::vector<candidate>& cands, double target) {
  std::sort(cands.begin(), cands.end(), better);
  double cumulative = 0.0;
  for (size_t i = 0; i < cands.size(); ++i) {
    cumulative += cands[i].key;
    if (cumulative >= target) {
      cands.resize(i + 1);
      return;
    }
  }
}

// Top-p over the whole vocabulary without ordering it: a histogram of the probability mass over
// the distance to the best token in nats ((max_logit - logit) / temperature, 256 buckets over 40
// nats, the last one open) finds the bucket where the mass crosses `target`. Tokens of earlier
// buckets are all kept; only the crossing bucket is ordered, by selecting and sorting windows of
// growing size until the target is reached. Tokens below `min_prob` (min-p) are then left out.
// The kept tokens are the first entries of `kept` (the return value says how many); both vectors
// only ever grow, so they are not refilled from step to step.
size_t keep_nucleus_histogram(std::span<const float> logits, std::span<const float> probs,
                              float max_logit, float inv_temp, double top_p, float min_prob,
                              std::vector<candidate>& kept, std::vector<candidate>& edge) {
  constexpr int kBuckets = 256;
  const float per_logit = inv_temp * (kBuckets / kHistogramNats);
  const size_t n = logits.size();
  const float* l = logits.data();
  const float* p = probs.data();
  auto bucket = [&](size_t i) {
    return static_cast<int>(std::min((max_logit - l[i]) * per_logit, kBuckets - 1.0f));
  };
  // Two histograms (even and odd tokens) halve the chains of additions to the same bucket.
  double mass[kBuckets] = {}, mass_odd[kBuckets] = {};
  size_t i = 0;
  for (; i + 2 <= n; i += 2) {
    mass[bucket(i)] += p[i];
    mass_odd[bucket(i + 1)] += p[i + 1];
  }
  if (i < n) mass[bucket(i)] += p[i];
  double total = 0.0;
  for (int b = 0; b < kBuckets; ++b) {
    mass[b] += mass_odd[b];
    total += mass[b];
  }
  const double target = top_p * total;
  int crossing = kBuckets - 1;
  double cumulative = 0.0;  // mass of the buckets ahead of `crossing`
  for (int b = 0; b < kBuckets; ++b) {
    if (cumulative + mass[b] >= target) {
      crossing = b;
      break;
    }
    cumulative += mass[b];
  }

  // Branch-free split: every token is written to both lists, and each list's end only moves on
  // for the tokens that belong to it.
  if (kept.size() < n) kept.resize(n);
  if (edge.size() < n) edge.resize(n);
  candidate* to_kept = kept.data();
  candidate* to_edge = edge.data();
  size_t n_kept = 0, n_edge = 0;
  for (size_t k = 0; k < n; ++k) {
    const int b = bucket(k);
    const candidate c{p[k], static_cast<int32_t>(k)};
    to_kept[n_kept] = c;
    to_edge[n_edge] = c;
    n_kept += b < crossing ? 1 : 0;
    n_edge += b == crossing ? 1 : 0;
  }
  for (size_t lo = 0; lo < n_edge;) {
    const size_t hi = std::min(n_edge, std::max<size_t>(64, lo * 2));
    if (hi < n_edge) std::nth_element(to_edge + lo, to_edge + hi, to_edge + n_edge, better);
    std::sort(to_edge + lo, to_edge + hi, better);
    for (size_t k = lo; k < hi; ++k) {
      to_kept[n_kept++] = to_edge[k];
      cumulative += to_edge[k].key;
      if (cumulative >= target) {
        lo = n_edge;
        break;
      }
    }
    lo = std::max(lo, hi);
  }
  if (min_prob > 0.0f) {
    n_kept = static_cast<size_t>(std::remove_if(to_kept, to_kept + n_kept, [min_prob](const candidate& c) {
                                   return c.key < min_prob;
                                 }) - to_kept);
  }
  return n_kept;
}

}  // namespace

std::string validate(const sampling_params& p) {
  if (!std::isfinite(p.temperature) || p.temperature < 0.0f || p.temperature > 100.0f)
    return "temperature must be between 0 and 100";
  if (p.top_k < 0) return "top_k must be >= 0";
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) return "top_p must be in (0, 1]";
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) return "min_p must be in [0, 1]";
  if (!(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f))
    return "presence_penalty must be between -2 and 2";
  if (!(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f))
    return "frequency_penalty must be between -2 and 2";
  if (!(p.repetition_penalty > 0.0f && std::isfinite(p.repetition_penalty)))
    return "repetition_penalty must be > 0";
  if (p.repetition_window < 0) return "repetition_window must be >= 0";
  return {};
}

sampler::sampler(const sampling_params& params, std::span<const int32_t> prompt)
    : params_(params) {
  if (params_.seed) {
    seed_ = *params_.seed;
  } else {
    std::random_device device;
    seed_ = (static_cast<uint64_t>(device()) << 32) ^ device();
  }
  uint64_t mix = seed_;
  for (auto& word : rng_) {  // splitmix64
    mix += 0x9e3779b97f4a7c15ULL;
    uint64_t z = mix;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    word = z ^ (z >> 31);
  }
  const size_t window = static_cast<size_t>(std::max(params_.repetition_window, 0));
  const size_t from = prompt.size() > window ? prompt.size() - window : 0;
  window_.assign(prompt.begin() + static_cast<std::ptrdiff_t>(from), prompt.end());
}

bool sampler::penalties_active() const {
  const bool repetition = params_.repetition_penalty != 1.0f && !window_.empty();
  const bool openai = (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f) &&
                      !generated_counts_.empty();
  return repetition || openai;
}

void sampler::apply_penalties(std::span<float> logits) const {
  const auto n = static_cast<int32_t>(logits.size());
  if (params_.repetition_penalty != 1.0f) {
    auto& distinct = thread_scratch().distinct;
    distinct.assign(window_.begin(), window_.end());
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    for (int32_t id : distinct) {
      if (id < 0 || id >= n) continue;
      float& l = logits[static_cast<size_t>(id)];
      l = l > 0.0f ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
  }
  if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f) {
    for (const auto& [id, count] : generated_counts_) {
      if (id < 0 || id >= n) continue;
      logits[static_cast<size_t>(id)] -=
          static_cast<float>(count) * params_.frequency_penalty + params_.presence_penalty;
    }
  }
}

uint64_t sampler::next_random() {
  auto rotl = [](uint64_t x, int k) { return (x << k) | (x >> (64 - k)); };
  const uint64_t result = rotl(rng_[1] * 5, 7) * 9;
  const uint64_t t = rng_[1] << 17;
  rng_[2] ^= rng_[0];
  rng_[3] ^= rng_[1];
  rng_[1] ^= rng_[2];
  rng_[0] ^= rng_[3];
  rng_[2] ^= t;
  rng_[3] = rotl(rng_[3], 45);
  return result;
}

double sampler::uniform() { return static_cast<double>(next_random() >> 11) * 0x1.0p-53; }

int32_t sampler::draw(std::span<const float> logits) {
  const float inv_temp = 1.0f / params_.temperature;
  const float max_logit = max_of(logits);
  const bool nucleus = params_.top_p < 1.0f;
  auto& scratch = thread_scratch();
  auto& cands = scratch.candidates;

  const bool top_k = params_.top_k > 0 && static_cast<size_t>(params_.top_k) < logits.size();
  std::span<const candidate> chosen;
  if (top_k && static_cast<size_t>(params_.top_k) < logits.size() / 4) {
    // A small top-k: selected from the logits in one pass, then only k exponentials
    // (unnormalised: the best weighs 1).
    best_n(logits, static_cast<size_t>(params_.top_k), cands);
    for (auto& c : cands) c.key = std::exp((c.key - max_logit) * inv_temp);
  } else {
    auto& probs = scratch.probs;
    probs.resize(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) probs[i] = logits[i] * inv_temp;
    kernels::softmax(probs.data(), static_cast<int64_t>(probs.size()));
    const float min_prob = params_.min_p * max_of(probs);
    if (!top_k && nucleus) {
      const size_t n = keep_nucleus_histogram(logits, probs, max_logit, inv_temp, params_.top_p,
                                              min_prob, cands, scratch.edge);
      chosen = std::span<const candidate>(cands.data(), n);
    } else if (!top_k) {
      // Temperature (and min-p) only: draw straight from the probabilities.
      const float* p = probs.data();
      const double total =
          sum_of(probs.size(), [&](size_t i) { return p[i] >= min_prob ? p[i] : 0.0f; });
      double u = uniform() * total;
      for (size_t i = 0; i < probs.size(); ++i) {
        if (p[i] < min_prob) continue;
        u -= p[i];
        if (u < 0.0) return static_cast<int32_t>(i);
      }
      return argmax(logits);  // rounding left u a hair above zero: the best token
    } else {
      // A large top-k.
      cands.resize(probs.size());
      for (size_t i = 0; i < probs.size(); ++i) cands[i] = {probs[i], static_cast<int32_t>(i)};
      std::nth_element(cands.begin(), cands.begin() + params_.top_k, cands.end(), better);
      cands.resize(static_cast<size_t>(params_.top_k));
    }
  }
  if (top_k) {
    // The candidates are the k best: top-p over their renormalised mass, then min-p.
    float best = 0.0f;
    for (const auto& c : cands) best = std::max(best, c.key);
    if (nucleus) {
      const double total = sum_of(cands.size(), [&](size_t i) { return cands[i].key; });
      keep_nucleus_sorted(cands, params_.top_p * total);
    }
    const float min_key = params_.min_p * best;
    std::erase_if(cands, [min_key](const candidate& c) { return c.key < min_key; });
    chosen = cands;
  }
  if (chosen.empty()) return argmax(logits);  // unreachable: the best token always survives

  const double total = sum_of(chosen.size(), [&](size_t i) { return chosen[i].key; });
  double u = uniform() * total;
  for (const auto& c : chosen) {
    u -= c.key;
    if (u < 0.0) return c.id;
  }
  return chosen.back().id;  // rounding left u a hair above zero
}

sampled_token sampler::sample(std::span<const float> logits, bool logprobs, int top_logprobs) {
  sampled_token out;
  if (logits.empty()) return out;
  float lse = 0.0f;
  if (logprobs) {
    auto& s = thread_scratch();
    lse = log_sum_exp(logits, s.probs);
    if (top_logprobs > 0) {
      best_n(logits, static_cast<size_t>(top_logprobs), s.top);
      for (const auto& c : s.top) out.top.emplace_back(c.id, c.key - lse);
    }
  }

  std::span<const float> working = logits;
  if (penalties_active()) {
    auto& buf = thread_scratch().penalized;
    buf.assign(logits.begin(), logits.end());
    apply_penalties(buf);
    working = buf;
  }

  out.id = params_.temperature < kGreedyTemperature ? argmax(working) : draw(working);
  if (logprobs) out.logprob = logits[static_cast<size_t>(out.id)] - lse;
  return out;
}

void sampler::accept(int32_t id) {
  auto it = std::lower_bound(generated_counts_.begin(), generated_counts_.end(), id,
                             [](const std::pair<int32_t, int>& e, int32_t v) { return e.first < v; });
  if (it != generated_counts_.end() && it->first == id) {
    ++it->second;
  } else {
    generated_counts_.insert(it, {id, 1});
  }
  const size_t window = static_cast<size_t>(std::max(params_.repetition_window, 0));
  if (window == 0) return;
  if (window_.size() < window) {
    window_.push_back(id);
  } else {
    window_[window_next_] = id;
    window_next_ = (window_next_ + 1) % window;
  }
}

}  // namespace gw::local_engine
