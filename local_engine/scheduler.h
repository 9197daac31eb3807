#pragma once
// The request scheduler (continuous batching). One thread owns the KV cache and the forward pass;
// requests wait in a bounded queue and are admitted first come, first served once the cache can
// reserve their prompt plus max_tokens (so an admitted request never runs out of pages). Each step
// builds one batch under a token budget: the next token of every generating sequence first, then
// chunks of waiting prompts with what is left (a long prompt is prefilled over several steps).
// Prompts start from the longest cached prefix (kv_cache::adopt_prefix).
//
// Per request: sampling (local_engine/sampler.h), streaming text through a detokenizer, stop
// conditions (end-of-generation token unless ignore_eos, max_tokens, context full, stop strings
// with OpenAI semantics: the stop text is not returned and text that could still become a stop
// string is held back), cancellation at the next step, and timing stats.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "local_engine/sampler.h"

namespace gw::kernels {
class thread_pool;
}

namespace gw::local_engine {

class model;
class tokenizer;
class kv_cache;

struct generation_request {
  std::vector<int32_t> prompt;
  sampling_params sampling;
  int max_tokens = 0;              // <= 0: until the context is full
  std::vector<std::string> stop;   // stop strings (non-empty)
  bool ignore_eos = false;         // keep generating past end-of-generation tokens
  bool logprobs = false;
  int top_logprobs = 0;            // 0..20, needs logprobs
};

// One generated token, or (id -1) trailing text released when the request ends (text held back
// for a stop string, or the rest of a character, when an end-of-generation token arrives).
// End-of-generation tokens themselves are not reported (they count in completion_tokens).
struct token_output {
  std::string text;     // valid UTF-8 released by this step (may be empty while text is held back)
  int32_t id = -1;
  float logprob = 0.0f; // log-softmax of the raw logits (when logprobs was asked)
  // top_logprobs: (token piece as raw bytes, which may be part of a character, logprob)
  std::vector<std::pair<std::string, float>> top;
};

struct generation_stats {
  std::string finish_reason;  // "stop", "length", "cancelled", "error"
  int prompt_tokens = 0;
  int cached_prompt_tokens = 0;   // prompt tokens taken from the prefix cache
  int completion_tokens = 0;      // generated tokens, an end-of-generation token included
  int64_t queue_ns = 0;           // submit -> admission
  int64_t busy_ns = 0;            // engine time spent on this request (its share of each step)
  int64_t first_token_ns = 0;     // submit -> first generated token (0 if none)
};

struct generation_callbacks {
  std::function<void(const token_output&)> on_token;  // scheduler thread; must not block
  std::function<void(const generation_stats&, const std::string& error)> on_done;  // exactly once
};

enum class submit_status { ok, queue_full, too_long, invalid };

struct scheduler_options {
  int context_size = 4096;      // tokens per sequence, prompt included
  int max_batch_tokens = 512;   // tokens per step
  int max_queue = 64;           // requests waiting for admission
};

struct scheduler_stats {
  int running = 0;              // admitted (prefilling or generating)
  int queued = 0;               // waiting for admission
  int64_t kv_pages_free = 0;    // pages a new sequence can use (free + cached prefix pages)
  int64_t kv_pages_total = 0;
  int retry_after_s = 1;        // suggested wait for a client refused with queue_full
};

class scheduler {
 public:
  // Starts the scheduler thread. The model, tokenizer, cache and pool must outlive it; the cache
  // must have the model's layout and is used by this scheduler only.
  scheduler(const model& m, const tokenizer& tok, kv_cache& kv, kernels::thread_pool& pool,
            const scheduler_options& options);
  // Stops the thread; requests still queued or running end with finish "cancelled" and the error
  // "engine stopped".
  ~scheduler();
  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  // Queues a request. Returns its id (> 0), or 0 with *status and *error set: invalid (empty
  // prompt, id out of range, bad sampling values), too_long (prompt >= context, or more KV pages
  // than the cache has), queue_full (error names the suggested retry delay). Callbacks run on the
  // scheduler thread, on_done exactly once for an accepted request.
  uint64_t submit(generation_request request, generation_callbacks callbacks, submit_status* status,
                  std::string* error);
  // Drops the request at the next step (on_done with finish "cancelled"); its pages are freed.
  // Safe from any thread at any time; unknown or finished ids are ignored.
  void cancel(uint64_t id);
  scheduler_stats current() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace gw::local_engine
