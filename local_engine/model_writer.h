#pragma once
// Writing model files: random-weight models of real shapes (`tollgate generate-model`, for tests
// and benchmarks without downloads) and re-quantising a GGUF model (`tollgate quantize`). Both
// stream tensor by tensor (a 1B model in F32 is 5 GB: only one tensor is in memory at a time) and
// choose per-tensor types as llama-quantize does (output at Q6_K, Q4_K_M's Q6_K layers, fallbacks
// for rows that do not fit a block size).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/dtype.h"

namespace gw::local_engine {

// The shape and vocabulary of a generated model.
struct model_spec {
  std::string name;            // general.name
  std::string arch = "llama";  // "llama" or "qwen2" (qwen2: q/k/v biases, halves RoPE pairing)
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t n_ff = 0;
  int64_t n_vocab = 0;
  int64_t n_ctx = 2048;
  float rope_base = 10000.0f;
  float rms_eps = 1e-5f;
  bool tied = true;                // no output.weight: the logits use token_embd.weight
  bool llama3_rope_factors = false;  // rope_freqs.weight with Llama-3.1's factors (factor 32)
  // Vocabulary: "spm" (SentencePiece: <unk> <s> </s>, 256 byte tokens, generated pieces) or a
  // byte-level BPE pre-tokenizer name ("llama-bpe", "qwen2", "smollm": 256 byte tokens,
  // generated merges, then the family's special tokens).
  std::string vocab = "spm";
};

// Presets: "smollm2-135m", "llama-3.2-1b", "qwen2.5-0.5b", "stories15m". nullopt if unknown.
std::optional<model_spec> model_preset(std::string_view name);
std::vector<std::string> model_preset_names();

// A file type as `--type` / the quantize TYPE argument names it: F32, F16, BF16, Q8_0, Q4_0,
// Q4_K, Q6_K or Q4_K_M (case-insensitive).
struct file_type {
  std::string name;
  kernels::dtype base = kernels::dtype::F32;  // the type of most 2-D weights
  bool q4_k_m = false;                        // Q4_K_M's Q6_K attn_v / ffn_down layers
  uint32_t ftype = 0;                         // general.file_type (llama_ftype)
};
std::optional<file_type> parse_file_type(std::string_view name);

// The type a tensor gets in a file of type `ft` (llama-quantize's rules): 1-D tensors F32; the
// output matrix (output.weight, or token_embd.weight when tied) Q6_K in quantized files (Q8_0
// stays Q8_0; Q8_0 when its rows do not fit 256); Q4_K_M: attn_v and ffn_down of the layers
// llama.cpp's use_more_bits picks in Q6_K; rows that do not fit the block size fall back
// (Q4_K -> Q4_0, llama.cpp's Q5_0 not being supported here; Q6_K -> Q8_0; then F16).
kernels::dtype tensor_type_for(const file_type& ft, std::string_view name, const std::vector<int64_t>& ne,
                               bool is_output, int64_t n_layer);

struct generate_options {
  model_spec spec;
  file_type type;
  uint64_t seed = 1;
  int threads = 0;  // 0: all cores
};

// Writes a model with weights N(0, 0.02^2) (norm weights 1, biases N(0, 0.02^2)), each tensor from
// its own stream seeded by (seed, name, row), so the result does not depend on the thread count.
// false and *error (naming the file and what failed) on failure.
bool generate_model(const generate_options& options, const std::string& out_path, std::string* error);

// Converts every 2-D weight of `in_path` to `type` (dequantise, quantise; per-tensor types as
// tensor_type_for), keeps the other tensors, copies all metadata and sets general.file_type.
bool quantize_model(const std::string& in_path, const std::string& out_path, const file_type& type, int threads,
                    std::string* error);

}  // namespace gw::local_engine
