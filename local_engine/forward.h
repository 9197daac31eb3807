#pragma once
// The batched forward pass (continuous batching): one step takes the new tokens of several
// sequences at once, sends all of them through every matrix product together (m = total tokens,
// which is what makes prefill fast), and runs causal attention per sequence over its own KV cache
// pages. Scratch buffers are kept between steps and only grow.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "local_engine/kv_cache.h"

namespace gw::kernels {
class thread_pool;
}

namespace gw::local_engine {

class model;

class forward_pass {
 public:
  // The model, cache and pool must outlive the forward pass. The cache's layout must be the
  // model's (kv_layout(model)); run() reports a mismatch.
  forward_pass(const model& m, kv_cache& kv, kernels::thread_pool& pool);
  ~forward_pass();
  forward_pass(const forward_pass&) = delete;
  forward_pass& operator=(const forward_pass&) = delete;

  struct seq_batch {
    kv_cache::seq_id seq = 0;
    std::span<const int32_t> tokens;  // the new tokens, at positions pos0, pos0 + 1, ...
    int64_t pos0 = 0;                 // must equal kv.length(seq)
    bool all_logits = false;          // logits for every new token, else only for the last
  };

  // Runs one step. On success `logits` holds n_rows x n_vocab floats: for each entry of `seqs`
  // in order, one row per token (all_logits) or one row for its last token; the sequences' KV
  // lengths grow by their token counts and full pages are published for prefix reuse.
  // On failure (unknown or repeated sequence, empty tokens, id out of range, pos0 != length,
  // KV cache out of pages) returns false with *error and changes no sequence's length.
  bool run(std::span<const seq_batch> seqs, std::vector<float>& logits, std::string* error);

 private:
  struct buffers;
  const model& model_;
  kv_cache& kv_;
  kernels::thread_pool& pool_;
  std::unique_ptr<buffers> buf_;
};

// The KV cache layout a model needs.
kv_cache::layout kv_layout(const model& m);

}  // namespace gw::local_engine
