#pragma once
// The local inference engine as the gateway sees it: a GGUF model, its tokenizer and chat template,
// a paged KV cache, a compute thread pool and the continuous-batching scheduler, behind one object.
// Requests are token prompts (chat_prompt / text_prompt build them) submitted with callbacks that
// stream tokens and report the end. Kept free of heavy includes (nlohmann::json is forward
// declared).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "local_engine/gguf.h"
#include "local_engine/scheduler.h"

namespace gw::local_engine {

struct engine_options {
  std::string model_path;
  int context_size = 0;          // 0: the model's training context, capped at 4096
  int64_t kv_budget_bytes = 0;   // 0: enough for 4 full contexts
  int threads = 0;               // compute threads; 0: the number of cores
  int max_batch_tokens = 512;    // tokens per scheduler step
  int max_queue = 64;            // requests waiting for admission
  std::string chat_template_override;  // Jinja source used instead of the model's template
  // huge_pages (default): the weights are read into transparent huge pages (faster generation);
  // mapped: the file is mmap'ed (no copy, shared with the page cache). See gguf.h.
  file_memory weights_memory = file_memory::huge_pages;
};

class engine {
 public:
  // Loads the model, tokenizer and chat template (the override, else the model's, else ChatML;
  // a model template this engine cannot parse falls back to ChatML with a warning) and starts the
  // scheduler. nullptr and *error on failure.
  static std::unique_ptr<engine> create(const engine_options& options, std::string* error);
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  // general.name, else the file name without .gguf.
  std::string model_name() const;
  int context_size() const;
  const tokenizer& tok() const;

  // Renders OpenAI messages (and tools, may be null) with the chat template, adding the assistant
  // generation prompt, and tokenizes the result: special-token text in the rendered prompt becomes
  // its ids; BOS is prepended when the vocabulary asks for it and the template did not write it.
  std::optional<std::vector<int32_t>> chat_prompt(const nlohmann::json& messages,
                                                  const nlohmann::json& tools,
                                                  std::string* error) const;
  // The same for requests parsed with key order kept (tools and tool-call arguments then render
  // in the client's key order).
  std::optional<std::vector<int32_t>> chat_prompt(const nlohmann::ordered_json& messages,
                                                  const nlohmann::ordered_json& tools,
                                                  std::string* error) const;
  // A raw text prompt (/v1/completions): BOS as the vocabulary says, special-token text kept as
  // plain text.
  std::vector<int32_t> text_prompt(std::string_view text) const;

  using submit_status = local_engine::submit_status;
  // Returns a request id (> 0), or 0 with *status and *error set. Callbacks run on the scheduler
  // thread (see scheduler.h).
  uint64_t submit(generation_request request, generation_callbacks callbacks, submit_status* status,
                  std::string* error);
  // Safe from any thread, any time (also after completion).
  void cancel(uint64_t id);

  struct stats {
    int running = 0;
    int queued = 0;
    int64_t kv_pages_free = 0;
    int64_t kv_pages_total = 0;
    int retry_after_s = 1;  // suggested Retry-After for a queue_full refusal
  };
  stats current() const;

 private:
  engine();
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace gw::local_engine
