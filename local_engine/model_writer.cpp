// generate-model and quantize: GGUF files written tensor by tensor through gguf_writer's produced
// tensors, rows converted in parallel on a kernels::thread_pool.
#include "local_engine/model_writer.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <numbers>
#include <unordered_set>
#include <utility>

#include "kernels/ops.h"
#include "local_engine/gguf.h"

namespace gw::local_engine {
namespace {

using kernels::dtype;

// ---- presets and file types ----

model_spec smollm2_135m() {
  model_spec s;
  s.name = "SmolLM2-135M (random weights)";
  s.n_embd = 576, s.n_layer = 30, s.n_head = 9, s.n_head_kv = 3, s.n_ff = 1536, s.n_vocab = 49152;
  s.n_ctx = 8192, s.rope_base = 100000.0f, s.vocab = "smollm";
  return s;
}

model_spec llama_32_1b() {
  model_spec s;
  s.name = "Llama-3.2-1B (random weights)";
  s.n_embd = 2048, s.n_layer = 16, s.n_head = 32, s.n_head_kv = 8, s.n_ff = 8192, s.n_vocab = 128256;
  s.n_ctx = 131072, s.rope_base = 500000.0f, s.llama3_rope_factors = true, s.vocab = "llama-bpe";
  return s;
}

model_spec qwen25_05b() {
  model_spec s;
  s.name = "Qwen2.5-0.5B (random weights)";
  s.arch = "qwen2";
  s.n_embd = 896, s.n_layer = 24, s.n_head = 14, s.n_head_kv = 2, s.n_ff = 4864, s.n_vocab = 151936;
  s.n_ctx = 32768, s.rope_base = 1000000.0f, s.rms_eps = 1e-6f, s.vocab = "qwen2";
  return s;
}

model_spec stories15m() {
  model_spec s;
  s.name = "stories15M-like (random weights)";
  s.n_embd = 288, s.n_layer = 6, s.n_head = 6, s.n_head_kv = 6, s.n_ff = 768, s.n_vocab = 32000;
  s.n_ctx = 256, s.vocab = "spm";
  return s;
}

const std::pair<const char*, model_spec (*)()> presets[] = {
    {"smollm2-135m", smollm2_135m},
    {"llama-3.2-1b", llama_32_1b},
    {"qwen2.5-0.5b", qwen25_05b},
    {"stories15m", stories15m},
};

std::string upper(std::string_view s) {
  std::string out;
  for (char c : s) out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  return out;
}

// llama.cpp's choice of layers that get more bits in Q4_K_M.
bool use_more_bits(int64_t layer, int64_t n_layer) {
  return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

// "blk.N." -> N, else -1.
int64_t layer_of(std::string_view name) {
  if (name.substr(0, 4) != "blk.") return -1;
  int64_t n = 0;
  size_t i = 4;
  if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
  for (; i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])); ++i) n = n * 10 + (name[i] - '0');
  return i < name.size() && name[i] == '.' ? n : -1;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_quantized(dtype t) { return t != dtype::F32 && t != dtype::F16 && t != dtype::BF16; }

// ---- deterministic random numbers ----

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001B3ull;
  return h;
}

// n samples of N(0, sigma^2) for row `row` of tensor `name` (Box-Muller on splitmix64).
void normal_row(uint64_t seed, uint64_t name_hash, int64_t row, float sigma, float* out, int64_t n) {
  uint64_t state = seed ^ (name_hash * 0x9E3779B97F4A7C15ull) ^ (static_cast<uint64_t>(row) * 0xD1B54A32D192ED03ull);
  splitmix64(state);
  for (int64_t i = 0; i < n; i += 2) {
    const double u1 = (static_cast<double>(splitmix64(state) >> 11) + 1.0) * 0x1p-53;  // (0, 1]
    const double u2 = static_cast<double>(splitmix64(state) >> 11) * 0x1p-53;
    const double radius = std::sqrt(-2.0 * std::log(u1)) * sigma;
    out[i] = static_cast<float>(radius * std::cos(2.0 * std::numbers::pi * u2));
    if (i + 1 < n) out[i + 1] = static_cast<float>(radius * std::sin(2.0 * std::numbers::pi * u2));
  }
}

// ---- vocabularies ----

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

// GPT-2's byte-level alphabet: printable bytes stand for themselves, the others for U+0100 + n.
std::vector<std::string> byte_level_symbols() {
  std::vector<std::string> symbols(256);
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    symbols[b] = utf8(printable ? b : next++);
  }
  return symbols;
}

// Generated pieces: concatenations of pairs of earlier pieces (starting from `base`), shortest
// first, none repeated and none in `taken`; `on_new(left, right)` sees each one's two parts.
void grow_pieces(const std::vector<std::string>& base, std::unordered_set<std::string>& taken, size_t count,
                 const std::function<void(const std::string&, const std::string&)>& on_new) {
  std::vector<std::string> pool = base;
  size_t made = 0;
  auto attempt = [&](size_t a, size_t b) {
    std::string joined = pool[a] + pool[b];
    if (joined.size() > 24 || !taken.insert(joined).second) return;
    on_new(pool[a], pool[b]);
    pool.push_back(std::move(joined));
    ++made;
  };
  for (size_t i = 0; made < count && i < pool.size(); ++i) {
    for (size_t j = 0; made < count && j <= i; ++j) {
      attempt(i, j);
      if (made < count && i != j) attempt(j, i);
    }
  }
}

const char* const chatml_template =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const char* const llama3_template =
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

constexpr int32_t token_normal = 1, token_unknown = 2, token_control = 3, token_byte = 6;

bool write_spm_vocab(gguf_writer& w, int64_t n_vocab, std::string* error) {
  constexpr int64_t fixed = 3 + 256;
  if (n_vocab < fixed + 1) {
    *error = "a SentencePiece vocabulary needs at least " + std::to_string(fixed + 1) + " tokens";
    return false;
  }
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {token_unknown, token_control, token_control};
  char hex[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    tokens.emplace_back(hex);
    types.push_back(token_byte);
  }
  const std::string space = "\xE2\x96\x81";  // U+2581, SentencePiece's space
  std::vector<std::string> base;
  for (char c : std::string("etaoinshrdlucmfwypvbgkjqxzETAOINSHRDLUCMFWYPVBGKJQXZ0123456789.,!?'")) {
    base.emplace_back(1, c);
  }
  base.push_back(space);
  std::unordered_set<std::string> taken;
  for (const auto& b : base) {
    taken.insert(b);
    tokens.push_back(b);
    types.push_back(token_normal);
  }
  const size_t wanted = static_cast<size_t>(n_vocab) - tokens.size();
  grow_pieces(base, taken, wanted, [&](const std::string& a, const std::string& b) {
    tokens.push_back(a + b);
    types.push_back(token_normal);
  });
  tokens.resize(static_cast<size_t>(n_vocab));
  types.resize(tokens.size());
  std::vector<float> scores(tokens.size(), 0.0f);
  for (size_t i = fixed; i < tokens.size(); ++i) scores[i] = -static_cast<float>(i - fixed);
  set_llama_vocabulary(w, std::move(tokens), std::move(scores), std::move(types));
  return true;
}

bool write_bpe_vocab(gguf_writer& w, const std::string& pre, int64_t n_vocab, std::string* error) {
  std::vector<std::string> specials;
  int bos = 0, eos = 0, eot = -1;
  const char* chat_template = chatml_template;
  bool add_bos = false;
  if (pre == "llama-bpe") {
    specials = {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"};
    bos = 0, eos = 1, eot = 4;
    chat_template = llama3_template;
    add_bos = true;
  } else if (pre == "qwen2" || pre == "smollm") {
    specials = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    bos = pre == "qwen2" ? 0 : 1;
    eos = 2;
  } else {
    *error = "unknown vocabulary '" + pre + "' (spm, llama-bpe, qwen2, smollm)";
    return false;
  }
  const int64_t fixed = 256 + static_cast<int64_t>(specials.size());
  if (n_vocab < fixed + 1) {
    *error = "a byte-level BPE vocabulary needs at least " + std::to_string(fixed + 1) + " tokens";
    return false;
  }
  const std::vector<std::string> bytes = byte_level_symbols();
  std::vector<std::string> tokens = bytes;
  std::unordered_set<std::string> taken(bytes.begin(), bytes.end());
  // Merges grow from letters, digits, space (U+0120) and newline (U+010A) in byte-level form.
  std::vector<std::string> base;
  for (unsigned char c : std::string("etaoinshrdlucmfwypvbgkjqxzETAOINSHRDLUCMFWYPVBGKJQXZ0123456789.,")) {
    base.push_back(bytes[c]);
  }
  base.push_back(bytes[' ']);
  base.push_back(bytes['\n']);
  std::vector<std::string> merges;
  grow_pieces(base, taken, static_cast<size_t>(n_vocab - fixed), [&](const std::string& a, const std::string& b) {
    merges.push_back(a + " " + b);
    tokens.push_back(a + b);
  });
  if (static_cast<int64_t>(tokens.size()) + static_cast<int64_t>(specials.size()) != n_vocab) {
    *error = "could not generate " + std::to_string(n_vocab) + " tokens";
    return false;
  }
  std::vector<int32_t> types(tokens.size(), token_normal);
  const auto first_special = static_cast<int32_t>(tokens.size());
  for (const auto& s : specials) {
    tokens.push_back(s);
    types.push_back(token_control);
  }
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", pre);
  w.set_string_array("tokenizer.ggml.tokens", std::move(tokens));
  w.set_i32_array("tokenizer.ggml.token_type", std::move(types));
  w.set_string_array("tokenizer.ggml.merges", std::move(merges));
  w.set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(first_special + bos));
  w.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(first_special + eos));
  if (eot >= 0) w.set_u32("tokenizer.ggml.eot_token_id", static_cast<uint32_t>(first_special + eot));
  w.set_bool("tokenizer.ggml.add_bos_token", add_bos);
  w.set_string("tokenizer.chat_template", chat_template);
  return true;
}

// Llama-3.1's per-frequency RoPE divisors (factor 32, low/high frequency factors 1/4, original
// context 8192, as Llama 3.2 ships them).
std::vector<float> llama3_rope_factors(int64_t head_dim, float base) {
  constexpr double factor = 32.0, low_freq_factor = 1.0, high_freq_factor = 4.0, original_ctx = 8192.0;
  const double low_wavelen = original_ctx / low_freq_factor, high_wavelen = original_ctx / high_freq_factor;
  std::vector<float> out;
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const double freq = std::pow(static_cast<double>(base), -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    const double wavelen = 2.0 * std::numbers::pi / freq;
    double f;
    if (wavelen < high_wavelen) {
      f = 1.0;
    } else if (wavelen > low_wavelen) {
      f = factor;
    } else {
      const double smooth = (original_ctx / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
      f = 1.0 / ((1.0 - smooth) / factor + smooth);
    }
    out.push_back(static_cast<float>(f));
  }
  return out;
}

std::string check_spec(const model_spec& s) {
  if (s.arch != "llama" && s.arch != "qwen2") return "architecture '" + s.arch + "' (llama, qwen2)";
  for (auto [name, v] : {std::pair{"n_embd", s.n_embd}, {"n_layer", s.n_layer}, {"n_head", s.n_head},
                         {"n_head_kv", s.n_head_kv}, {"n_ff", s.n_ff}, {"n_vocab", s.n_vocab}, {"n_ctx", s.n_ctx}}) {
    if (v <= 0 || v > (int64_t{1} << 24)) return std::string(name) + " must be in 1.." + std::to_string(1 << 24);
  }
  if (s.n_embd % s.n_head != 0) return "n_embd must be a multiple of n_head";
  if ((s.n_embd / s.n_head) % 2 != 0) return "the head dimension n_embd / n_head must be even";
  if (s.n_head % s.n_head_kv != 0) return "n_head must be a multiple of n_head_kv";
  if (!(s.rope_base > 0) || !(s.rms_eps > 0)) return "rope base and RMS epsilon must be positive";
  return {};
}

// Fills rows [0, rows) of a tensor in `type` from `row_fn(r, floats)`, in parallel.
bool fill_rows(kernels::thread_pool& pool, dtype type, int64_t cols, int64_t rows, uint8_t* out,
               const std::function<bool(int64_t, float*, std::string*)>& row_fn, std::string* error) {
  const size_t rb = kernels::row_bytes(type, cols);
  std::atomic<bool> failed{false};
  std::string first_error;
  std::mutex error_mutex;
  pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(cols));
    std::string err;
    for (int64_t r = r0; r < r1 && !failed.load(std::memory_order_relaxed); ++r) {
      if (!row_fn(r, row.data(), &err)) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!failed.exchange(true)) first_error = err;
        return;
      }
      kernels::quantize_row(type, row.data(), out + rb * static_cast<size_t>(r), cols);
    }
  });
  if (failed.load()) {
    *error = first_error;
    return false;
  }
  return true;
}

int64_t rows_of(const std::vector<int64_t>& ne) {
  int64_t rows = 1;
  for (size_t i = 1; i < ne.size(); ++i) rows *= ne[i];
  return rows;
}

// Copies one metadata entry from `in` to `w` with its type.
bool copy_metadata(const gguf_file& in, std::string_view key, gguf_writer& w, std::string* error) {
  const std::string k(key);
  const auto type = in.type_of(key);
  auto fail = [&] {
    *error = "metadata '" + k + "' could not be copied";
    return false;
  };
  if (!type) return fail();
  switch (*type) {
    case gguf_value_type::string: w.set_string(k, std::string(*in.get_string(key))); return true;
    case gguf_value_type::boolean: w.set_bool(k, *in.get_bool(key)); return true;
    case gguf_value_type::u8: w.set_u8(k, static_cast<uint8_t>(*in.get_int(key))); return true;
    case gguf_value_type::i8: w.set_i8(k, static_cast<int8_t>(*in.get_int(key))); return true;
    case gguf_value_type::u16: w.set_u16(k, static_cast<uint16_t>(*in.get_int(key))); return true;
    case gguf_value_type::i16: w.set_i16(k, static_cast<int16_t>(*in.get_int(key))); return true;
    case gguf_value_type::u32: w.set_u32(k, static_cast<uint32_t>(*in.get_int(key))); return true;
    case gguf_value_type::i32: w.set_i32(k, static_cast<int32_t>(*in.get_int(key))); return true;
    case gguf_value_type::u64: w.set_u64(k, static_cast<uint64_t>(*in.get_int(key))); return true;
    case gguf_value_type::i64: w.set_i64(k, *in.get_int(key)); return true;
    case gguf_value_type::f32: w.set_f32(k, static_cast<float>(*in.get_float(key))); return true;
    case gguf_value_type::f64: w.set_f64(k, *in.get_float(key)); return true;
    case gguf_value_type::array: break;
  }
  const auto elem = in.array_type(key);
  if (!elem) return fail();
  switch (*elem) {
    case gguf_value_type::string: {
      auto v = in.get_string_array(key);
      if (!v) return fail();
      w.set_string_array(k, std::vector<std::string>(v->begin(), v->end()));
      return true;
    }
    case gguf_value_type::f32:
    case gguf_value_type::f64: {
      auto v = in.get_float_array(key);
      if (!v) return fail();
      if (*elem == gguf_value_type::f32) {
        w.set_f32_array(k, std::move(*v));
      } else {
        const std::vector<double> d(v->begin(), v->end());
        w.set_array(k, gguf_value_type::f64, d.data(), d.size());
      }
      return true;
    }
    case gguf_value_type::array: return fail();  // nested arrays: not used by any model key
    default: break;
  }
  auto v = in.get_int_array(key);
  if (!v) return fail();
  auto pack = [&](auto sample) {
    using T = decltype(sample);
    std::vector<T> out(v->begin(), v->end());
    w.set_array(k, *elem, out.data(), out.size());
    return true;
  };
  switch (*elem) {
    case gguf_value_type::u8:
    case gguf_value_type::boolean: return pack(uint8_t{});
    case gguf_value_type::i8: return pack(int8_t{});
    case gguf_value_type::u16: return pack(uint16_t{});
    case gguf_value_type::i16: return pack(int16_t{});
    case gguf_value_type::u32: return pack(uint32_t{});
    case gguf_value_type::i32: return pack(int32_t{});
    case gguf_value_type::u64: return pack(uint64_t{});
    case gguf_value_type::i64: return pack(int64_t{});
    default: return fail();
  }
}

}  // namespace

std::optional<model_spec> model_preset(std::string_view name) {
  for (const auto& [preset_name, make] : presets) {
    if (name == preset_name) return make();
  }
  return std::nullopt;
}

std::vector<std::string> model_preset_names() {
  std::vector<std::string> names;
  for (const auto& p : presets) names.emplace_back(p.first);
  return names;
}

std::optional<file_type> parse_file_type(std::string_view name) {
  const std::string n = upper(name);
  // general.file_type values are llama.cpp's llama_ftype.
  if (n == "F32") return file_type{n, dtype::F32, false, 0};
  if (n == "F16") return file_type{n, dtype::F16, false, 1};
  if (n == "BF16") return file_type{n, dtype::BF16, false, 32};
  if (n == "Q4_0") return file_type{n, dtype::Q4_0, false, 2};
  if (n == "Q8_0") return file_type{n, dtype::Q8_0, false, 7};
  if (n == "Q4_K") return file_type{n, dtype::Q4_K, false, 14};  // "mostly Q4_K" (Q4_K_S's id)
  if (n == "Q4_K_M") return file_type{n, dtype::Q4_K, true, 15};
  if (n == "Q6_K") return file_type{n, dtype::Q6_K, false, 18};
  return std::nullopt;
}

dtype tensor_type_for(const file_type& ft, std::string_view name, const std::vector<int64_t>& ne, bool is_output,
                      int64_t n_layer) {
  if (ne.size() < 2 || rows_of(ne) < 2 || !ends_with(name, ".weight")) return dtype::F32;
  const int64_t cols = ne[0];
  dtype t = ft.base;
  if (is_quantized(t)) {
    if (is_output) {
      t = cols % 256 != 0 ? dtype::Q8_0 : t == dtype::Q8_0 ? dtype::Q8_0 : dtype::Q6_K;
    } else if (ft.q4_k_m && (name.find("attn_v.weight") != std::string_view::npos ||
                             name.find("ffn_down") != std::string_view::npos)) {
      if (use_more_bits(layer_of(name), n_layer)) t = dtype::Q6_K;
    }
    if (cols % kernels::block_elems(t) != 0) {
      t = t == dtype::Q4_K ? dtype::Q4_0 : t == dtype::Q6_K ? dtype::Q8_0 : t;
      if (cols % kernels::block_elems(t) != 0) t = dtype::F16;
    }
  }
  return t;
}

bool generate_model(const generate_options& o, const std::string& out_path, std::string* error) {
  const model_spec& s = o.spec;
  if (const std::string bad = check_spec(s); !bad.empty()) {
    *error = out_path + ": " + bad;
    return false;
  }
  const std::string& a = s.arch;
  const int64_t head_dim = s.n_embd / s.n_head;
  gguf_writer w;
  w.set_string("general.architecture", a);
  w.set_string("general.name", s.name);
  w.set_u32("general.file_type", o.type.ftype);
  if (is_quantized(o.type.base)) w.set_u32("general.quantization_version", 2);
  w.set_u32(a + ".context_length", static_cast<uint32_t>(s.n_ctx));
  w.set_u32(a + ".embedding_length", static_cast<uint32_t>(s.n_embd));
  w.set_u32(a + ".block_count", static_cast<uint32_t>(s.n_layer));
  w.set_u32(a + ".feed_forward_length", static_cast<uint32_t>(s.n_ff));
  w.set_u32(a + ".attention.head_count", static_cast<uint32_t>(s.n_head));
  w.set_u32(a + ".attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  w.set_f32(a + ".attention.layer_norm_rms_epsilon", s.rms_eps);
  w.set_f32(a + ".rope.freq_base", s.rope_base);
  w.set_u32(a + ".rope.dimension_count", static_cast<uint32_t>(head_dim));
  w.set_u32(a + ".vocab_size", static_cast<uint32_t>(s.n_vocab));
  const bool vocab_ok = s.vocab == "spm" ? write_spm_vocab(w, s.n_vocab, error)
                                         : write_bpe_vocab(w, s.vocab, s.n_vocab, error);
  if (!vocab_ok) {
    *error = out_path + ": " + *error;
    return false;
  }

  auto pool = std::make_shared<kernels::thread_pool>(o.threads);
  const uint64_t seed = o.seed;
  // A tensor of generated values: N(0, 0.02^2) or all ones (norm weights).
  auto add = [&](const std::string& name, std::vector<int64_t> ne, bool ones) {
    const bool is_output = name == "output.weight" || (s.tied && name == "token_embd.weight");
    const dtype t = tensor_type_for(o.type, name, ne, is_output, s.n_layer);
    const int64_t cols = ne[0], rows = rows_of(ne);
    const uint64_t name_hash = fnv1a(name);
    w.add_tensor_produced(name, t, std::move(ne), [=](uint8_t* out, std::string* err) {
      return fill_rows(
          *pool, t, cols, rows, out,
          [&](int64_t r, float* row, std::string*) {
            if (ones) {
              std::fill(row, row + cols, 1.0f);
            } else {
              normal_row(seed, name_hash, r, 0.02f, row, cols);
            }
            return true;
          },
          err);
    });
  };
  add("token_embd.weight", {s.n_embd, s.n_vocab}, false);
  add("output_norm.weight", {s.n_embd}, true);
  if (!s.tied) add("output.weight", {s.n_embd, s.n_vocab}, false);
  if (s.llama3_rope_factors) {
    std::vector<float> f = llama3_rope_factors(head_dim, s.rope_base);
    std::vector<uint8_t> bytes(f.size() * sizeof(float));
    std::memcpy(bytes.data(), f.data(), bytes.size());
    w.add_tensor("rope_freqs.weight", dtype::F32, {head_dim / 2}, std::move(bytes));
  }
  const int64_t q_dim = s.n_head * head_dim, kv_dim = s.n_head_kv * head_dim;
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {s.n_embd}, true);
    add(p + "attn_q.weight", {s.n_embd, q_dim}, false);
    if (a == "qwen2") add(p + "attn_q.bias", {q_dim}, false);
    add(p + "attn_k.weight", {s.n_embd, kv_dim}, false);
    if (a == "qwen2") add(p + "attn_k.bias", {kv_dim}, false);
    add(p + "attn_v.weight", {s.n_embd, kv_dim}, false);
    if (a == "qwen2") add(p + "attn_v.bias", {kv_dim}, false);
    add(p + "attn_output.weight", {q_dim, s.n_embd}, false);
    add(p + "ffn_norm.weight", {s.n_embd}, true);
    add(p + "ffn_gate.weight", {s.n_embd, s.n_ff}, false);
    add(p + "ffn_up.weight", {s.n_embd, s.n_ff}, false);
    add(p + "ffn_down.weight", {s.n_ff, s.n_embd}, false);
  }
  return w.write(out_path, error);
}

bool quantize_model(const std::string& in_path, const std::string& out_path, const file_type& type, int threads,
                    std::string* error) {
  auto in = gguf_file::open(in_path, error);
  if (!in) return false;
  gguf_writer w;
  for (std::string_view key : in->keys()) {
    if (!copy_metadata(*in, key, w, error)) {
      *error = in_path + ": " + *error;
      return false;
    }
  }
  w.set_u32("general.file_type", type.ftype);
  if (is_quantized(type.base)) w.set_u32("general.quantization_version", 2);

  int64_t n_layer = 0;
  bool has_output = false;
  for (const auto& t : in->tensors()) {
    n_layer = std::max(n_layer, layer_of(t.name) + 1);
    has_output = has_output || t.name == "output.weight";
  }
  auto pool = std::make_shared<kernels::thread_pool>(threads);
  for (const auto& t : in->tensors()) {
    const bool is_output = t.name == "output.weight" || (!has_output && t.name == "token_embd.weight");
    const dtype target = tensor_type_for(type, t.name, t.ne, is_output, n_layer);
    if (target == t.type) {  // already in the wanted type: copy the bytes
      w.add_tensor_ref(t.name, t.type, t.ne, t.data, static_cast<size_t>(t.n_bytes));
      continue;
    }
    const int64_t cols = t.ne[0], rows = rows_of(t.ne);
    const size_t src_row_bytes = kernels::row_bytes(t.type, cols);
    const uint8_t* src = t.data;
    const dtype src_type = t.type;
    w.add_tensor_produced(t.name, target, t.ne, [=](uint8_t* out, std::string* err) {
      return fill_rows(
          *pool, target, cols, rows, out,
          [&](int64_t r, float* row, std::string*) {
            kernels::dequantize_row(src_type, src + src_row_bytes * static_cast<size_t>(r), row, cols);
            return true;
          },
          err);
    });
  }
  return w.write(out_path, error);
}

}  // namespace gw::local_engine
