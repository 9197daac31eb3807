#pragma once
// A decoder-only transformer loaded from a GGUF file: architectures `llama` (Llama 2 / 3.x with
// Llama-3.1 rope factors, Mistral, SmolLM, TinyLlama) and `qwen2` (q/k/v biases). The weights stay
// in the file's memory mapping, in their stored types (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K,
// mixed per tensor); loading validates every tensor's presence, type and shape.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "local_engine/gguf.h"

namespace gw::local_engine {

class gguf_file;

enum class architecture { llama, qwen2 };

struct hparams {
  architecture arch = architecture::llama;
  std::string arch_name;      // "llama", "qwen2"
  int64_t n_vocab = 0;        // rows of token_embd.weight
  int64_t n_ctx_train = 0;    // <arch>.context_length
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_ff = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;       // <arch>.attention.key_length (default n_embd / n_head)
  float rms_eps = 1e-5f;
  float rope_base = 10000.0f;
  kernels::rope_pairing rope_pairing = kernels::rope_pairing::adjacent;
  bool tied_output = false;   // no output.weight: the logits use token_embd.weight

  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }
};

// One transformer block. 1-D tensors (norms, biases) are F32; null biases are absent.
struct layer_weights {
  const float* attn_norm = nullptr;
  kernels::weight_view wq, wk, wv, wo;
  const float* bq = nullptr;
  const float* bk = nullptr;
  const float* bv = nullptr;
  const float* ffn_norm = nullptr;
  kernels::weight_view w_gate, w_up, w_down;
};

class model {
 public:
  // Opens and validates `path`. On failure: nullptr and *error naming the file and what is wrong
  // (e.g. "m.gguf: blk.3.attn_k.weight: expected shape [576, 192], got [576, 576]").
  // `memory`: mapped (tools) or huge_pages (serving: faster generation, see gguf.h).
  static std::unique_ptr<model> load(const std::string& path, std::string* error,
                                     file_memory memory = file_memory::mapped);
  // The same over an already opened file (tests build models in memory).
  static std::unique_ptr<model> from_gguf(std::unique_ptr<gguf_file> file, std::string* error);
  ~model();
  model(const model&) = delete;
  model& operator=(const model&) = delete;

  const hparams& hp() const { return hp_; }
  const gguf_file& file() const { return *file_; }

  const kernels::weight_view& token_embd() const { return token_embd_; }
  const float* output_norm() const { return output_norm_; }
  // output.weight, or token_embd.weight when tied.
  const kernels::weight_view& output() const { return output_; }
  // Per-frequency RoPE divisors (head_dim / 2 floats: rope_freqs.weight times any linear
  // rope scaling factor), or null when all are 1.
  const float* rope_freq_factors() const { return freq_factors_.empty() ? nullptr : freq_factors_.data(); }
  const layer_weights& layer(int64_t i) const { return layers_[static_cast<size_t>(i)]; }

  // Bytes of all tensor data the model uses (its weight memory footprint).
  size_t weight_bytes() const { return weight_bytes_; }
  // Bytes of K and V (F32) for one token over all layers: what a token costs in the KV cache.
  size_t kv_bytes_per_token() const;

 private:
  model();
  std::unique_ptr<gguf_file> file_;
  hparams hp_;
  kernels::weight_view token_embd_, output_;
  const float* output_norm_ = nullptr;
  std::vector<float> freq_factors_;
  std::vector<layer_weights> layers_;
  size_t weight_bytes_ = 0;
};

// "llama", "qwen2".
const char* architecture_name(architecture a);

}  // namespace gw::local_engine
