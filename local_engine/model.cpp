// Model loading: reads the hyperparameters from the `<arch>.*` keys of a GGUF file and binds every
// tensor the forward pass needs, checking presence, type and shape first so that a bad file is an
// error message, never a crash later in a kernel.
#include "local_engine/model.h"

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

#include "local_engine/gguf.h"

namespace gw::local_engine {
namespace {

// Upper bound for every size hyperparameter: keeps products such as n_head * head_dim far from
// overflow; real models are orders of magnitude below it.
constexpr int64_t k_max_dim = int64_t{1} << 24;
constexpr int64_t k_max_layers = 4096;

std::string shape_string(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(ne[i]);
  }
  return s + "]";
}

// Shapes compare equal up to trailing dimensions of 1 (some writers store [n, 1] for [n]).
std::vector<int64_t> squeezed(std::vector<int64_t> ne) {
  while (ne.size() > 1 && ne.back() == 1) ne.pop_back();
  return ne;
}

bool is_weight_type(kernels::dtype t) {
  switch (t) {
    case kernels::dtype::F32:
    case kernels::dtype::F16:
    case kernels::dtype::BF16:
    case kernels::dtype::Q8_0:
    case kernels::dtype::Q4_0:
    case kernels::dtype::Q4_K:
    case kernels::dtype::Q6_K:
      return true;
    default:
      return false;
  }
}

// Binds tensors of one file, accumulating the bytes used; the first problem becomes `error`.
class binder {
 public:
  explicit binder(const gguf_file& f) : file_(f) {}

  const std::string& error() const { return error_; }
  bool failed() const { return !error_.empty(); }
  size_t bytes() const { return bytes_; }

  // A 2-D weight [cols, rows] of any weight type. Missing and `optional`: a view with data null.
  kernels::weight_view matrix(const std::string& name, int64_t cols, int64_t rows, bool optional = false) {
    kernels::weight_view w;
    const gguf_tensor_info* t = find(name, {cols, rows}, optional);
    if (!t) return w;
    if (!is_weight_type(t->type)) {
      fail(name + ": type " + std::string(kernels::dtype_name(t->type)) + " is not a weight type");
      return w;
    }
    if (cols % kernels::block_elems(t->type) != 0) {
      fail(name + ": row length " + std::to_string(cols) + " is not a multiple of the " +
           std::string(kernels::dtype_name(t->type)) + " block size " +
           std::to_string(kernels::block_elems(t->type)));
      return w;
    }
    w.type = t->type;
    w.data = t->data;
    w.cols = cols;
    w.rows = rows;
    bytes_ += t->n_bytes;
    return w;
  }

  // A 1-D F32 vector of n floats (norm weights, biases, rope factors).
  const float* vector(const std::string& name, int64_t n, bool optional = false) {
    const gguf_tensor_info* t = find(name, {n}, optional);
    if (!t) return nullptr;
    if (t->type != kernels::dtype::F32) {
      fail(name + ": expected type F32, got " + std::string(kernels::dtype_name(t->type)));
      return nullptr;
    }
    if (reinterpret_cast<uintptr_t>(t->data) % alignof(float) != 0) {
      fail(name + ": data is not 4-byte aligned (offset " + std::to_string(t->offset) + ")");
      return nullptr;
    }
    bytes_ += t->n_bytes;
    return reinterpret_cast<const float*>(t->data);
  }

  void fail(std::string msg) {
    if (error_.empty()) error_ = std::move(msg);
  }

 private:
  const gguf_tensor_info* find(const std::string& name, const std::vector<int64_t>& want, bool optional) {
    if (failed()) return nullptr;
    const gguf_tensor_info* t = file_.find_tensor(name);
    if (!t) {
      if (!optional) fail(name + ": tensor missing");
      return nullptr;
    }
    if (squeezed(t->ne) != want) {
      fail(name + ": expected shape " + shape_string(want) + ", got " + shape_string(t->ne));
      return nullptr;
    }
    return t;
  }

  const gguf_file& file_;
  std::string error_;
  size_t bytes_ = 0;
};

// Reads `<arch>.<key>` as an integer in [1, max]; `fallback` when absent (nullopt: required).
bool read_dim(const gguf_file& f, const std::string& key, std::optional<int64_t> fallback, int64_t max,
              int64_t* out, std::string* error) {
  if (!f.has(key)) {
    if (!fallback) {
      *error = key + ": key missing";
      return false;
    }
    *out = *fallback;
    return true;
  }
  auto v = f.get_int(key);
  if (!v) {
    *error = key + ": not an integer";
    return false;
  }
  if (*v < 1 || *v > max) {
    *error = key + ": value " + std::to_string(*v) + " out of range [1, " + std::to_string(max) + "]";
    return false;
  }
  *out = *v;
  return true;
}

bool read_float(const gguf_file& f, const std::string& key, double fallback, double* out, std::string* error) {
  if (!f.has(key)) {
    *out = fallback;
    return true;
  }
  auto v = f.get_float(key);
  if (!v || !(*v > 0.0) || *v > 1e30) {
    *error = key + ": expected a positive number";
    return false;
  }
  *out = *v;
  return true;
}

}  // namespace

const char* architecture_name(architecture a) {
  switch (a) {
    case architecture::llama: return "llama";
    case architecture::qwen2: return "qwen2";
  }
  return "?";
}

model::model() = default;
model::~model() = default;

size_t model::kv_bytes_per_token() const {
  return 2 * static_cast<size_t>(hp_.n_layer) * static_cast<size_t>(hp_.kv_dim()) * sizeof(float);
}

std::unique_ptr<model> model::load(const std::string& path, std::string* error, file_memory memory) {
  auto f = gguf_file::open(path, error, memory);
  if (!f) return nullptr;
  return from_gguf(std::move(f), error);
}

std::unique_ptr<model> model::from_gguf(std::unique_ptr<gguf_file> file, std::string* error) {
  const gguf_file& f = *file;
  auto fail = [&](const std::string& msg) -> std::unique_ptr<model> {
    if (error) *error = f.path() + ": " + msg;
    return nullptr;
  };
  std::unique_ptr<model> m(new model());
  hparams& hp = m->hp_;

  auto arch = f.get_string("general.architecture");
  if (!arch) return fail("general.architecture: key missing or not a string");
  if (*arch == "llama") {
    hp.arch = architecture::llama;
    hp.rope_pairing = kernels::rope_pairing::adjacent;
  } else if (*arch == "qwen2") {
    hp.arch = architecture::qwen2;
    hp.rope_pairing = kernels::rope_pairing::halves;
  } else {
    return fail("architecture '" + std::string(*arch) + "' is not supported (supported: llama, qwen2)");
  }
  hp.arch_name = std::string(*arch);
  const std::string a = hp.arch_name + ".";

  std::string err;
  if (!read_dim(f, a + "embedding_length", std::nullopt, k_max_dim, &hp.n_embd, &err) ||
      !read_dim(f, a + "block_count", std::nullopt, k_max_layers, &hp.n_layer, &err) ||
      !read_dim(f, a + "feed_forward_length", std::nullopt, k_max_dim, &hp.n_ff, &err) ||
      !read_dim(f, a + "attention.head_count", std::nullopt, k_max_dim, &hp.n_head, &err) ||
      !read_dim(f, a + "attention.head_count_kv", hp.n_head, k_max_dim, &hp.n_head_kv, &err) ||
      !read_dim(f, a + "context_length", int64_t{2048}, k_max_dim * 64, &hp.n_ctx_train, &err)) {
    return fail(err);
  }
  if (hp.n_head % hp.n_head_kv != 0) {
    return fail(a + "attention.head_count " + std::to_string(hp.n_head) +
                " is not a multiple of head_count_kv " + std::to_string(hp.n_head_kv));
  }
  if (!read_dim(f, a + "attention.key_length", hp.n_embd / hp.n_head, k_max_dim, &hp.head_dim, &err)) {
    return fail(err);
  }
  int64_t value_length = 0, rope_dims = 0;
  if (!read_dim(f, a + "attention.value_length", hp.head_dim, k_max_dim, &value_length, &err) ||
      !read_dim(f, a + "rope.dimension_count", hp.head_dim, k_max_dim, &rope_dims, &err)) {
    return fail(err);
  }
  if (hp.head_dim % 2 != 0) return fail("head dimension " + std::to_string(hp.head_dim) + " is odd");
  if (value_length != hp.head_dim) {
    return fail(a + "attention.value_length " + std::to_string(value_length) + " differs from key_length " +
                std::to_string(hp.head_dim) + " (not supported)");
  }
  if (rope_dims != hp.head_dim) {
    return fail(a + "rope.dimension_count " + std::to_string(rope_dims) + " differs from the head dimension " +
                std::to_string(hp.head_dim) + " (partial RoPE is not supported)");
  }
  if (auto experts = f.get_int(a + "expert_count"); experts && *experts > 0) {
    return fail("mixture-of-experts models (" + a + "expert_count " + std::to_string(*experts) +
                ") are not supported");
  }
  double eps = 0, base = 0;
  if (!f.has(a + "attention.layer_norm_rms_epsilon")) return fail(a + "attention.layer_norm_rms_epsilon: key missing");
  if (!read_float(f, a + "attention.layer_norm_rms_epsilon", 1e-5, &eps, &err) ||
      !read_float(f, a + "rope.freq_base", 10000.0, &base, &err)) {
    return fail(err);
  }
  hp.rms_eps = static_cast<float>(eps);
  hp.rope_base = static_cast<float>(base);

  double rope_scale = 1.0;
  if (f.has(a + "rope.scaling.type")) {
    auto type = f.get_string(a + "rope.scaling.type");
    if (!type) return fail(a + "rope.scaling.type: not a string");
    if (*type == "linear") {
      if (!read_float(f, a + "rope.scaling.factor", 1.0, &rope_scale, &err)) return fail(err);
    } else if (*type != "none") {
      return fail(a + "rope.scaling.type '" + std::string(*type) + "' is not supported (none, linear)");
    }
  }

  // Tensors. n_vocab comes from the embedding table itself.
  const gguf_tensor_info* embd = f.find_tensor("token_embd.weight");
  if (!embd) return fail("token_embd.weight: tensor missing");
  auto embd_ne = squeezed(embd->ne);
  if (embd_ne.size() != 2 || embd_ne[0] != hp.n_embd || embd_ne[1] < 1) {
    return fail("token_embd.weight: expected shape [" + std::to_string(hp.n_embd) + ", n_vocab], got " +
                shape_string(embd->ne));
  }
  hp.n_vocab = embd_ne[1];

  binder b(f);
  m->token_embd_ = b.matrix("token_embd.weight", hp.n_embd, hp.n_vocab);
  m->output_norm_ = b.vector("output_norm.weight", hp.n_embd);
  m->output_ = b.matrix("output.weight", hp.n_embd, hp.n_vocab, /*optional=*/true);
  hp.tied_output = !b.failed() && m->output_.data == nullptr;
  if (hp.tied_output) m->output_ = m->token_embd_;

  const int64_t half = hp.head_dim / 2;
  if (const float* freqs = b.vector("rope_freqs.weight", half, /*optional=*/true)) {
    m->freq_factors_.assign(freqs, freqs + half);
  }
  if (rope_scale != 1.0) {
    if (m->freq_factors_.empty()) m->freq_factors_.assign(static_cast<size_t>(half), 1.0f);
    for (float& x : m->freq_factors_) x *= static_cast<float>(rope_scale);
  }
  for (float x : m->freq_factors_) {
    if (!(x > 0.0f) || x > 1e30f) return fail("rope_freqs.weight: factors must be positive and finite");
  }

  const bool biases_required = hp.arch == architecture::qwen2;
  m->layers_.resize(static_cast<size_t>(hp.n_layer));
  for (int64_t i = 0; i < hp.n_layer && !b.failed(); ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    layer_weights& l = m->layers_[static_cast<size_t>(i)];
    l.attn_norm = b.vector(p + "attn_norm.weight", hp.n_embd);
    l.wq = b.matrix(p + "attn_q.weight", hp.n_embd, hp.q_dim());
    l.wk = b.matrix(p + "attn_k.weight", hp.n_embd, hp.kv_dim());
    l.wv = b.matrix(p + "attn_v.weight", hp.n_embd, hp.kv_dim());
    l.bq = b.vector(p + "attn_q.bias", hp.q_dim(), !biases_required);
    l.bk = b.vector(p + "attn_k.bias", hp.kv_dim(), !biases_required);
    l.bv = b.vector(p + "attn_v.bias", hp.kv_dim(), !biases_required);
    l.wo = b.matrix(p + "attn_output.weight", hp.q_dim(), hp.n_embd);
    l.ffn_norm = b.vector(p + "ffn_norm.weight", hp.n_embd);
    l.w_gate = b.matrix(p + "ffn_gate.weight", hp.n_embd, hp.n_ff);
    l.w_up = b.matrix(p + "ffn_up.weight", hp.n_embd, hp.n_ff);
    l.w_down = b.matrix(p + "ffn_down.weight", hp.n_ff, hp.n_embd);
  }
  if (b.failed()) return fail(b.error());
  m->weight_bytes_ = b.bytes();
  m->file_ = std::move(file);
  return m;
}

}  // namespace gw::local_engine
