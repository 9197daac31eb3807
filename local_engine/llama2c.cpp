// llama2.c checkpoint + tokenizer.bin -> GGUF (F32, architecture `llama`, SentencePiece vocabulary).
// The checkpoint is memory-mapped and its weights are streamed into the GGUF without copies.
#include "local_engine/llama2c.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "local_engine/gguf.h"

namespace gw::local_engine {
namespace {

constexpr size_t k_header_bytes = 7 * sizeof(int32_t);
constexpr uint32_t k_export_magic = 0x616b3432;  // "ak42": llama2.c's versioned (non-legacy) exports
constexpr int64_t k_n_byte_tokens = 256;
constexpr int64_t k_first_byte_token = 3;  // after <unk>, <s>, </s>

// GGUF token types (llama.cpp's llama_token_type).
constexpr int32_t k_type_normal = 1, k_type_unknown = 2, k_type_control = 3, k_type_byte = 6;

// A read-only mapping of a whole file.
class mapped_file {
 public:
  bool open(const std::string& path, std::string* error) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(path, std::string("cannot open: ") + std::strerror(errno), error);
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return fail(path, "not a regular file", error);
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ == 0) {
      ::close(fd);
      return fail(path, "file is empty", error);
    }
    void* p = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int e = errno;
    ::close(fd);
    if (p == MAP_FAILED) return fail(path, std::string("cannot map: ") + std::strerror(e), error);
    data_ = static_cast<const uint8_t*>(p);
    madvise(p, size_, MADV_SEQUENTIAL);
    return true;
  }
  ~mapped_file() {
    if (data_) munmap(const_cast<uint8_t*>(data_), size_);
  }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }

 private:
  static bool fail(const std::string& path, const std::string& what, std::string* error) {
    if (error) *error = path + ": " + what;
    return false;
  }
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// The checkpoint's hyperparameters and where each weight array starts (in floats after the header).
struct checkpoint {
  int64_t dim = 0, hidden = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, n_vocab = 0, seq_len = 0;
  bool tied = true;
  int64_t head_size() const { return dim / n_heads; }
  int64_t kv_dim() const { return dim / n_heads * n_kv_heads; }

  // Offsets (in floats) of each array, in file order.
  uint64_t token_embd = 0, attn_norm = 0, wq = 0, wk = 0, wv = 0, wo = 0, ffn_norm = 0, w1 = 0, w2 = 0,
           w3 = 0, output_norm = 0, rope = 0, output = 0, end = 0;

  uint64_t file_bytes() const { return k_header_bytes + end * sizeof(float); }
};

bool parse_header(std::span<const uint8_t> bytes, const std::string& name, checkpoint* c, std::string* error) {
  auto fail = [&](const std::string& what) {
    if (error) *error = name + ": " + what;
    return false;
  };
  if (bytes.size() < k_header_bytes) {
    return fail("too small for a llama2.c checkpoint header (" + std::to_string(bytes.size()) + " bytes)");
  }
  if (load<uint32_t>(bytes.data()) == k_export_magic) {
    return fail("llama2.c export version " + std::to_string(load<int32_t>(bytes.data() + 4)) +
                " is not supported (only the legacy layout: seven int32 then float32 weights)");
  }
  int32_t h[7];
  std::memcpy(h, bytes.data(), sizeof(h));
  const char* names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  const int64_t limits[7] = {1 << 16, 1 << 18, 1 << 10, 1 << 10, 1 << 10, 1 << 22, 1 << 22};
  for (int i = 0; i < 7; ++i) {
    const int64_t v = i == 5 ? std::abs(static_cast<int64_t>(h[i])) : h[i];
    if (v <= 0 || v > limits[i]) {
      return fail("header " + std::string(names[i]) + " = " + std::to_string(h[i]) + " is out of range (1.." +
                  std::to_string(limits[i]) + ")");
    }
  }
  c->dim = h[0];
  c->hidden = h[1];
  c->n_layers = h[2];
  c->n_heads = h[3];
  c->n_kv_heads = h[4];
  c->tied = h[5] > 0;
  c->n_vocab = std::abs(static_cast<int64_t>(h[5]));
  c->seq_len = h[6];
  if (c->dim % c->n_heads != 0 || c->head_size() % 2 != 0) {
    return fail("dim " + std::to_string(c->dim) + " is not n_heads " + std::to_string(c->n_heads) +
                " times an even head size");
  }
  if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads != 0) {
    return fail("n_kv_heads " + std::to_string(c->n_kv_heads) + " does not divide n_heads " +
                std::to_string(c->n_heads));
  }
  if (c->n_vocab < k_first_byte_token + k_n_byte_tokens) {
    return fail("vocab_size " + std::to_string(c->n_vocab) +
                " is too small for a SentencePiece vocabulary with byte fallback (needs >= 259)");
  }
  // Every product below stays far inside 64 bits thanks to the limits above.
  const uint64_t L = static_cast<uint64_t>(c->n_layers), d = static_cast<uint64_t>(c->dim),
                 f = static_cast<uint64_t>(c->hidden), kv = static_cast<uint64_t>(c->kv_dim()),
                 v = static_cast<uint64_t>(c->n_vocab);
  uint64_t at = 0;
  auto next = [&](uint64_t n) {
    const uint64_t start = at;
    at += n;
    return start;
  };
  c->token_embd = next(v * d);
  c->attn_norm = next(L * d);
  c->wq = next(L * d * d);
  c->wk = next(L * kv * d);
  c->wv = next(L * kv * d);
  c->wo = next(L * d * d);
  c->ffn_norm = next(L * d);
  c->w1 = next(L * f * d);
  c->w2 = next(L * d * f);
  c->w3 = next(L * f * d);
  c->output_norm = next(d);
  c->rope = next(static_cast<uint64_t>(c->seq_len) * static_cast<uint64_t>(c->head_size() / 2) * 2);
  c->output = next(c->tied ? 0 : v * d);
  c->end = at;
  return true;
}

struct vocab_entry {
  std::string text;
  float score = 0;
};

// tokenizer.bin: int32 max_token_length, then n_vocab x (float32 score, int32 length, bytes).
bool parse_tokenizer(std::span<const uint8_t> bytes, int64_t n_vocab, const std::string& name,
                     uint64_t base_offset, std::vector<vocab_entry>* out, std::string* error) {
  size_t pos = 0;
  auto fail = [&](const std::string& what) {
    if (error) *error = name + ": " + what + " (at byte " + std::to_string(base_offset + pos) + ")";
    return false;
  };
  if (bytes.size() < 4) return fail("tokenizer truncated before max_token_length");
  const int32_t max_len = load<int32_t>(bytes.data());
  if (max_len <= 0) return fail("tokenizer max_token_length " + std::to_string(max_len) + " is not positive");
  pos = 4;
  out->resize(static_cast<size_t>(n_vocab));
  for (int64_t i = 0; i < n_vocab; ++i) {
    if (bytes.size() - pos < 8) {
      return fail("tokenizer truncated at token " + std::to_string(i) + " of " + std::to_string(n_vocab));
    }
    const float score = load<float>(bytes.data() + pos);
    const int32_t len = load<int32_t>(bytes.data() + pos + 4);
    if (std::isnan(score)) return fail("token " + std::to_string(i) + " has a NaN score");
    if (len < 0 || static_cast<size_t>(len) > bytes.size() - pos - 8) {
      return fail("token " + std::to_string(i) + " length " + std::to_string(len) + " exceeds the bytes left");
    }
    pos += 8;
    (*out)[static_cast<size_t>(i)] = {std::string(reinterpret_cast<const char*>(bytes.data() + pos),
                                                  static_cast<size_t>(len)),
                                      score};
    pos += static_cast<size_t>(len);
  }
  if (pos != bytes.size()) {
    return fail("tokenizer has " + std::to_string(bytes.size() - pos) + " bytes after its " +
                std::to_string(n_vocab) + " tokens (vocab_size mismatch?)");
  }
  return true;
}

// llama2.c writes SentencePiece's U+2581 as a plain space; GGUF `llama` vocabularies keep U+2581.
std::string to_sentencepiece(const std::string& text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (char ch : text) {
    if (ch == ' ') {
      out += "\xe2\x96\x81";
    } else {
      out += ch;
    }
  }
  return out;
}

bool convert(std::span<const uint8_t> model, std::span<const uint8_t> tokenizer,
             const std::string& tokenizer_name, uint64_t tokenizer_offset, const checkpoint& c,
             const std::string& out_gguf, std::string* error) {
  std::vector<vocab_entry> vocab;
  if (!parse_tokenizer(tokenizer, c.n_vocab, tokenizer_name, tokenizer_offset, &vocab, error)) return false;

  gguf_writer w;
  w.set_string("general.architecture", "llama");
  w.set_u32("general.file_type", 0);  // all F32
  w.set_u32("llama.vocab_size", static_cast<uint32_t>(c.n_vocab));
  w.set_u32("llama.context_length", static_cast<uint32_t>(c.seq_len));
  w.set_u32("llama.embedding_length", static_cast<uint32_t>(c.dim));
  w.set_u32("llama.block_count", static_cast<uint32_t>(c.n_layers));
  w.set_u32("llama.feed_forward_length", static_cast<uint32_t>(c.hidden));
  w.set_u32("llama.attention.head_count", static_cast<uint32_t>(c.n_heads));
  w.set_u32("llama.attention.head_count_kv", static_cast<uint32_t>(c.n_kv_heads));
  w.set_u32("llama.rope.dimension_count", static_cast<uint32_t>(c.head_size()));
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_f32("llama.rope.freq_base", 10000.0f);

  std::vector<std::string> tokens(vocab.size());
  std::vector<float> scores(vocab.size());
  std::vector<int32_t> types(vocab.size());
  for (size_t i = 0; i < vocab.size(); ++i) {
    scores[i] = vocab[i].score;
    if (i == 0) {
      tokens[i] = "<unk>";
      types[i] = k_type_unknown;
    } else if (i == 1 || i == 2) {
      tokens[i] = i == 1 ? "<s>" : "</s>";
      types[i] = k_type_control;
    } else if (static_cast<int64_t>(i) < k_first_byte_token + k_n_byte_tokens) {
      static const char hex[] = "0123456789ABCDEF";
      const size_t b = i - static_cast<size_t>(k_first_byte_token);
      tokens[i] = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
      types[i] = k_type_byte;
    } else {
      tokens[i] = to_sentencepiece(vocab[i].text);
      types[i] = k_type_normal;
    }
  }
  vocab.clear();
  set_llama_vocabulary(w, std::move(tokens), std::move(scores), std::move(types));

  // Weights straight from the mapping: each llama2.c matrix is [out][in] row-major = GGUF ne {in, out}.
  const uint8_t* base = model.data() + k_header_bytes;
  auto add = [&](std::string name, uint64_t first_float, std::vector<int64_t> ne) {
    uint64_t n = 1;
    for (int64_t d : ne) n *= static_cast<uint64_t>(d);
    w.add_tensor_ref(std::move(name), kernels::dtype::F32, std::move(ne), base + first_float * sizeof(float),
                     n * sizeof(float));
  };
  const int64_t d = c.dim, f = c.hidden, kv = c.kv_dim();
  const auto D = static_cast<uint64_t>(d), F = static_cast<uint64_t>(f), KV = static_cast<uint64_t>(kv);
  add("token_embd.weight", c.token_embd, {d, c.n_vocab});
  add("output_norm.weight", c.output_norm, {d});
  if (!c.tied) add("output.weight", c.output, {d, c.n_vocab});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const auto L = static_cast<uint64_t>(l);
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", c.attn_norm + L * D, {d});
    add(p + "attn_q.weight", c.wq + L * D * D, {d, d});
    add(p + "attn_k.weight", c.wk + L * KV * D, {d, kv});
    add(p + "attn_v.weight", c.wv + L * KV * D, {d, kv});
    add(p + "attn_output.weight", c.wo + L * D * D, {d, d});
    add(p + "ffn_norm.weight", c.ffn_norm + L * D, {d});
    add(p + "ffn_gate.weight", c.w1 + L * F * D, {d, f});
    add(p + "ffn_down.weight", c.w2 + L * D * F, {f, d});
    add(p + "ffn_up.weight", c.w3 + L * F * D, {d, f});
  }
  return w.write(out_gguf, error);
}

}  // namespace

bool convert_llama2c(const std::string& model_bin, const std::string& tokenizer_bin, const std::string& out_gguf,
                     std::string* error) {
  mapped_file model, tokenizer;
  if (!model.open(model_bin, error) || !tokenizer.open(tokenizer_bin, error)) return false;
  checkpoint c;
  if (!parse_header(model.bytes(), model_bin, &c, error)) return false;
  if (model.bytes().size() != c.file_bytes()) {
    if (error) {
      *error = model_bin + ": checkpoint is " + std::to_string(model.bytes().size()) + " bytes, its header (" +
               std::to_string(c.n_layers) + " layers, dim " + std::to_string(c.dim) + ", vocab " +
               std::to_string(c.n_vocab) + (c.tied ? ", tied" : ", untied") + ") needs " +
               std::to_string(c.file_bytes());
    }
    return false;
  }
  return convert(model.bytes(), tokenizer.bytes(), tokenizer_bin, 0, c, out_gguf, error);
}

bool convert_llama2c_bundle(const std::string& data_file, const std::string& out_gguf, std::string* error) {
  mapped_file data;
  if (!data.open(data_file, error)) return false;
  checkpoint c;
  if (!parse_header(data.bytes(), data_file, &c, error)) return false;
  const uint64_t model_bytes = c.file_bytes();
  if (model_bytes >= data.bytes().size()) {
    if (error) {
      *error = data_file + ": " + std::to_string(data.bytes().size()) + " bytes, but the checkpoint header alone needs " +
               std::to_string(model_bytes) + " plus a tokenizer";
    }
    return false;
  }
  const auto split = static_cast<size_t>(model_bytes);
  return convert(data.bytes().first(split), data.bytes().subspan(split), data_file, model_bytes, c,
                 out_gguf, error);
}

}  // namespace gw::local_engine
