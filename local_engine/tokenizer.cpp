// Tokenizers from GGUF metadata: vocabulary loading (special ids, token attributes, end-of-generation
// set, all as llama.cpp derives them), special-token partitioning, SentencePiece-style and
// byte-level BPE encoding, decoding and the streaming detokenizer.
#include "local_engine/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <initializer_list>
#include <utility>

#include "local_engine/gguf.h"
#include "local_engine/pretokenize.h"

namespace gw::local_engine {
namespace {

// Token attributes (llama.cpp's llama_token_attr bits).
enum : uint16_t {
  attr_unknown = 1 << 0,
  attr_unused = 1 << 1,
  attr_normal = 1 << 2,
  attr_control = 1 << 3,
  attr_user_defined = 1 << 4,
  attr_byte = 1 << 5,
  attr_lstrip = 1 << 7,
  attr_rstrip = 1 << 8,
};
constexpr uint16_t attr_special = attr_control | attr_user_defined | attr_unknown;

// GGUF token types (tokenizer.ggml.token_type).
uint16_t attr_of_type(int64_t type) {
  switch (type) {
    case 1: return attr_normal;
    case 2: return attr_unknown;
    case 3: return attr_control;
    case 4: return attr_user_defined;
    case 5: return attr_unused;
    case 6: return attr_byte;
    default: return 0;  // undefined
  }
}

const std::string_view k_space_marker = "\xE2\x96\x81";  // U+2581, SentencePiece's space

uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ s.size();
  const char* p = s.data();
  size_t n = s.size();
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t v = 0;
    std::memcpy(&v, p, n);
    h = (h ^ v) * 0x94D049BB133111EBull;
  }
  h ^= h >> 32;
  h *= 0xFF51AFD7ED558CCDull;
  return h ^ (h >> 29);
}

// The vocabulary's texts in one arena, with a hash index from text to the first id that has it.
class string_pool {
 public:
  void reserve(size_t n_strings, size_t n_bytes) {
    arena_.reserve(n_bytes);
    offsets_.reserve(n_strings + 1);
  }
  // Adds `s` as the next id; index() then maps texts to ids.
  int32_t add(std::string_view s) {
    arena_.append(s);
    offsets_.push_back(static_cast<uint32_t>(arena_.size()));
    return static_cast<int32_t>(offsets_.size() - 2);
  }
  // Maps the text of every id added so far to it, unless the text belongs to an earlier id
  // (prefetching a batch of slots before filling them).
  void index() {
    const auto n = static_cast<int32_t>(offsets_.size() - 1);
    size_t cap = 1024;
    while (cap < static_cast<size_t>(n) * 2) cap *= 2;
    slots_.assign(cap, slot{});
    mask_ = cap - 1;
    constexpr int32_t batch = 16;
    uint64_t hashes[batch];
    for (int32_t b = 0; b < n; b += batch) {
      const int32_t m = std::min(batch, n - b);
      for (int32_t j = 0; j < m; ++j) {
        hashes[j] = hash_bytes(text(b + j));
        __builtin_prefetch(&slots_[hashes[j] & mask_], 1);
      }
      for (int32_t j = 0; j < m; ++j) insert(b + j, hashes[j]);
    }
  }
  std::string_view text(int32_t id) const {
    return std::string_view(arena_).substr(offsets_[id], offsets_[id + 1] - offsets_[id]);
  }
  int32_t find(std::string_view s) const { return find(s, hash_bytes(s)); }
  // The same with the text's hash_bytes() already known.
  int32_t find(std::string_view s, uint64_t h) const {
    if (slots_.empty()) return -1;
    const auto tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const slot& sl = slots_[i];
      if (sl.id < 0) return -1;
      if (sl.tag == tag && sl.len == s.size() && std::memcmp(arena_.data() + sl.off, s.data(), s.size()) == 0) {
        return sl.id;
      }
    }
  }

 private:
  struct slot {
    uint32_t tag = 0;  // high half of the text's hash (the low half picks the slot)
    int32_t id = -1;
    uint32_t off = 0, len = 0;
  };
  void insert(int32_t id, uint64_t h) {
    const std::string_view s = text(id);
    const auto tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      slot& sl = slots_[i];
      if (sl.id < 0) {
        sl = slot{tag, id, offsets_[id], static_cast<uint32_t>(s.size())};
        return;
      }
      if (sl.tag == tag && sl.len == s.size() && std::memcmp(arena_.data() + sl.off, s.data(), s.size()) == 0) {
        return;  // the first id keeps the text
      }
    }
  }

  std::string arena_;
  std::vector<uint32_t> offsets_{0};
  std::vector<slot> slots_;
  size_t mask_ = 0;
};

// BPE merge rules, keyed by the 64-bit hashes of the two parts' texts (stored: all of the left
// hash and the high half of the right one, and the slot is picked from both: distinct pairs that
// collide are not a practical concern). Each rule keeps its rank and the hash of the merged text.
// Building it needs no lookup of the parts, which keeps loading 280k rules fast.
class merge_table {
 public:
  static constexpr uint32_t k_none = UINT32_MAX;
  struct rule {
    uint64_t left, right;  // hashes of the parts
    uint32_t rank;
    uint64_t merged;  // hash of the joined text
  };
  struct found {
    uint32_t rank = k_none;
    uint64_t merged = 0;
  };
  void reserve(size_t n) {
    size_t cap = 1024;
    while (cap * 5 < n * 8) cap *= 2;  // load factor <= 0.625
    slots_.assign(cap, slot{});
    mask_ = cap - 1;
  }
  // Adds rules in order (the first rule for a pair wins, as the lowest rank does in llama.cpp),
  // prefetching the slots of a batch before writing them.
  void add(std::span<const rule> rules) {
    constexpr size_t batch = 16;
    size_t home[batch];
    for (size_t b = 0; b < rules.size(); b += batch) {
      const size_t m = std::min(batch, rules.size() - b);
      for (size_t j = 0; j < m; ++j) {
        home[j] = index(rules[b + j].left, rules[b + j].right);
        __builtin_prefetch(&slots_[home[j]], 1);
      }
      for (size_t j = 0; j < m; ++j) insert(home[j], rules[b + j]);
    }
  }
  found find(uint64_t left, uint64_t right) const {
    const auto right_hi = static_cast<uint32_t>(right >> 32);
    for (size_t i = index(left, right);; i = (i + 1) & mask_) {
      const slot& sl = slots_[i];
      if (sl.rank == k_none) return {};
      if (sl.left == left && sl.right_hi == right_hi) return {sl.rank, sl.merged};
    }
  }

 private:
  struct slot {
    uint64_t left = 0;
    uint32_t right_hi = 0;
    uint32_t rank = k_none;
    uint64_t merged = 0;
  };
  size_t index(uint64_t left, uint64_t right) const {
    uint64_t h = left ^ (right * 0x9E3779B97F4A7C15ull);
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    return (h ^ (h >> 29)) & mask_;
  }
  void insert(size_t i, const rule& r) {
    const auto right_hi = static_cast<uint32_t>(r.right >> 32);
    for (;; i = (i + 1) & mask_) {
      slot& sl = slots_[i];
      if (sl.rank == k_none) {
        sl = slot{r.left, right_hi, r.rank, r.merged};
        return;
      }
      if (sl.left == r.left && sl.right_hi == right_hi) return;
    }
  }
  std::vector<slot> slots_;
  size_t mask_ = 0;
};

// GPT-2's byte <-> printable character mapping: printable Latin-1 bytes stand for themselves, the
// others for U+0100 upwards in byte order.
struct byte_level_map {
  std::array<std::string, 256> chars;       // UTF-8 of each byte's character
  std::array<int16_t, 0x144> byte_of_char;  // inverse, -1 for code points that stand for no byte

  byte_level_map() {
    byte_of_char.fill(-1);
    int next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const int cp = printable ? b : next++;
      byte_of_char[cp] = static_cast<int16_t>(b);
      std::string& s = chars[b];
      if (cp < 0x80) {
        s.push_back(static_cast<char>(cp));
      } else {
        s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
    }
  }
};

const byte_level_map& byte_map() {
  static const byte_level_map m;
  return m;
}

// Length of the UTF-8 sequence a lead byte announces (llama.cpp's unicode_len_utf8: continuation
// and invalid bytes count as 1).
size_t utf8_lead_len(unsigned char b) {
  static constexpr uint8_t lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lens[b >> 4];
}

bool is_c_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

std::string lowercase_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// One piece of the input after special tokens are cut out: a token, or raw text [begin, end).
struct fragment {
  int32_t token;  // -1 for text
  uint32_t begin, end;
};

struct spm_symbol {
  uint32_t start, n;
  int32_t prev, next;
};

// A symbol is a byte range of the word; its text is the byte-level form of those bytes.
struct bpe_symbol {
  uint64_t hash;  // of the byte-level text
  uint32_t start, n;
  int32_t prev, next;
};

// A pair of adjacent symbols that may merge. Both tokenizers pop the smallest `priority` first:
// (rank or inverted score) << 32 | left index, so that ties go to the leftmost pair.
struct merge_candidate {
  uint64_t priority;
  int32_t left, right;
  uint32_t size;    // bytes of both symbols when queued; a mismatch later means a part has changed
  uint64_t merged;  // BPE: hash of the merged text
};

// Words up to this many bytes merge by scanning their pairs instead of through a queue.
constexpr int32_t k_short_word = 16;

struct later_candidate {
  bool operator()(const merge_candidate& a, const merge_candidate& b) const { return a.priority > b.priority; }
};

// Orders floats as unsigned integers (larger float, larger integer).
uint32_t ordered_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Buffers reused across the words of one encode() call.
struct bpe_work {
  std::string normalized;
  std::vector<uint32_t> word_ends;
  std::string encoded;             // the word's byte-level text
  std::vector<uint32_t> encoded_at;  // where each byte of the word starts in `encoded` (+ the end)
  std::vector<bpe_symbol> symbols;
  std::vector<merge_candidate> heap;
};

// Token texts llama.cpp recognises by name: end of turn (EOT), end of message (EOM), end of
// generation (EOG) and the fill-in-the-middle roles.
constexpr std::string_view k_eot_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
    "[EOT]", "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>", "<end_of_utterance>"};
constexpr std::string_view k_eom_texts[] = {"<|eom_id|>"};
constexpr std::string_view k_eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
    "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
    "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>", "[e~["};
constexpr std::string_view k_fim_pre_texts[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>",
    "<PRE>", "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"};
constexpr std::string_view k_fim_suf_texts[] = {
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "hole\xEF\xBD\x9C>",
    "<SUF>", "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"};
constexpr std::string_view k_fim_mid_texts[] = {
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>",
    "<MID>", "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"};
constexpr std::string_view k_fim_pad_texts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"};
constexpr std::string_view k_fim_rep_texts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
                                                "<reponame>"};
constexpr std::string_view k_fim_sep_texts[] = {"<|file_sep|>"};

}  // namespace

struct tokenizer::impl {
  kind type = kind::spm;
  int32_t n_vocab = 0;
  string_pool pool;  // the token texts
  std::vector<float> scores;
  std::vector<uint16_t> attrs;

  int32_t bos = -1, eos = -1, eot = -1, eom = -1, unk = -1;
  bool add_bos = false, add_eos = false;
  bool add_space_prefix = false;
  std::vector<int32_t> eog;             // ascending
  std::vector<int32_t> special_tokens;  // cut out of the text, longest first
  std::array<bool, 256> special_first_byte{};

  // SentencePiece
  std::array<int32_t, 256> byte_tokens{};  // <0xXX> (or the byte itself) for byte fallback
  // No token has a U+2581 after anything but U+2581s: words (a U+2581 run and what follows up to
  // the next one) never merge with each other and can be tokenized one by one.
  bool spm_words_independent = false;

  // BPE
  std::unique_ptr<pre_tokenizer> pre;
  merge_table merges;
  std::array<uint64_t, 256> byte_hashes{};  // hash of each byte's byte-level character
  bool ignore_merges = false;

  bool valid(int32_t id) const { return id >= 0 && id < n_vocab; }
  int32_t token_id(std::string_view text) const { return pool.find(text); }

  std::vector<fragment> partition(std::string_view text, bool parse_special) const;
  void encode_spm(std::string_view text, bool space_prefix, std::vector<int32_t>* out) const;
  void encode_spm_segment(std::string_view text, std::vector<spm_symbol>* symbols, int32_t begin, int32_t end,
                          std::vector<merge_candidate>* heap, std::vector<int32_t>* out) const;
  void encode_bpe(std::string_view text, std::vector<int32_t>* out) const;
  void encode_bpe_word(std::string_view word, bpe_work* w, std::vector<int32_t>* out) const;
  void emit_bpe_symbol(std::string_view text, uint64_t hash, std::vector<int32_t>* out) const;
  std::string piece(int32_t id, bool special) const;
  // Appends the piece of `id`, applying the leading-space rule (see tokenizer.h).
  void append_piece(int32_t id, bool special, bool* at_text_start, std::string* out) const;
};

tokenizer::tokenizer() : impl_(std::make_unique<impl>()) {}
tokenizer::~tokenizer() = default;

// ---- loading ----

namespace {

// The value of an optional token-id key: kept as `*id` when absent or out of range.
void read_token_id(const gguf_file& f, std::string_view key, int32_t n_vocab, int32_t* id) {
  if (auto v = f.get_int(key); v && *v >= 0 && *v < n_vocab) *id = static_cast<int32_t>(*v);
}

void read_flag(const gguf_file& f, std::string_view key, bool* flag) {
  if (auto b = f.get_bool(key)) {
    *flag = *b;
  } else if (auto i = f.get_int(key)) {
    *flag = *i != 0;
  }
}

}  // namespace

std::unique_ptr<tokenizer> tokenizer::from_gguf(const gguf_file& f, std::string* error) {
  auto fail = [&](const std::string& what) -> std::unique_ptr<tokenizer> {
    if (error) *error = f.path() + ": tokenizer: " + what;
    return nullptr;
  };
  std::unique_ptr<tokenizer> tok(new tokenizer());
  impl& t = *tok->impl_;

  const auto model = f.get_string("tokenizer.ggml.model");
  if (!model) return fail("no tokenizer.ggml.model (the file has no vocabulary)");
  const std::string pre_name(f.get_string("tokenizer.ggml.pre").value_or(""));
  if (*model == "llama") {
    t.type = kind::spm;
    t.bos = 1, t.eos = 2, t.unk = 0;
    t.add_space_prefix = true;
    t.add_bos = true;
  } else if (*model == "gpt2") {
    t.type = kind::bpe;
    t.bos = 11, t.eos = 11;  // llama.cpp's defaults for BPE vocabularies without the keys
    std::string pre_error;
    t.pre = pre_tokenizer::create(pre_name, &pre_error);
    if (!t.pre) return fail(pre_error);
    t.ignore_merges = t.pre->ignore_merges();
    t.add_bos = t.pre->default_add_bos();
    if (t.pre->drops_bos()) t.bos = -1;
  } else {
    return fail("unsupported tokenizer model '" + std::string(*model) + "' (supported: llama, gpt2)");
  }
  read_flag(f, "tokenizer.ggml.add_space_prefix", &t.add_space_prefix);

  const auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  if (!tokens) return fail("tokenizer.ggml.tokens is missing or not an array of strings");
  if (tokens->empty() || tokens->size() >= static_cast<size_t>(INT32_MAX / 2)) {
    return fail("tokenizer.ggml.tokens has " + std::to_string(tokens->size()) + " entries");
  }
  const size_t n = tokens->size();
  t.n_vocab = static_cast<int32_t>(n);

  std::vector<float> scores;
  if (f.has("tokenizer.ggml.scores")) {
    auto s = f.get_float_array("tokenizer.ggml.scores");
    if (!s) return fail("tokenizer.ggml.scores is not a numeric array");
    if (s->size() < n) return fail("tokenizer.ggml.scores has fewer entries than tokenizer.ggml.tokens");
    scores = std::move(*s);
  }
  std::vector<int64_t> types;
  if (f.has("tokenizer.ggml.token_type")) {
    auto tt = f.get_int_array("tokenizer.ggml.token_type");
    if (!tt) return fail("tokenizer.ggml.token_type is not an integer array");
    if (tt->size() < n) return fail("tokenizer.ggml.token_type has fewer entries than tokenizer.ggml.tokens");
    types = std::move(*tt);
  }

  size_t bytes = 0;
  for (const auto& s : *tokens) bytes += s.size();
  t.pool.reserve(n, bytes);
  t.scores.resize(n, 0.0f);
  t.attrs.resize(n, attr_normal);
  for (size_t i = 0; i < n; ++i) {
    const std::string_view s = (*tokens)[i];
    if (s.empty()) {
      t.pool.add("[EMPTY_" + std::to_string(i) + "]");
    } else {
      t.pool.add(s);
    }
    if (!scores.empty()) t.scores[i] = scores[i];
    if (!types.empty()) t.attrs[i] = attr_of_type(types[i]);
  }
  t.pool.index();

  // Special token ids: the defaults above unless a key names an id inside the vocabulary.
  const int32_t nv = t.n_vocab;
  for (int32_t* id : {&t.bos, &t.eos, &t.unk}) {
    if (*id >= nv) *id = -1;
  }
  int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
  read_token_id(f, "tokenizer.ggml.bos_token_id", nv, &t.bos);
  read_token_id(f, "tokenizer.ggml.eos_token_id", nv, &t.eos);
  read_token_id(f, "tokenizer.ggml.eot_token_id", nv, &t.eot);
  read_token_id(f, "tokenizer.ggml.eom_token_id", nv, &t.eom);
  read_token_id(f, "tokenizer.ggml.unknown_token_id", nv, &t.unk);
  read_token_id(f, "tokenizer.ggml.fim_pre_token_id", nv, &fim_pre);
  read_token_id(f, "tokenizer.ggml.fim_suf_token_id", nv, &fim_suf);
  read_token_id(f, "tokenizer.ggml.fim_mid_token_id", nv, &fim_mid);
  read_token_id(f, "tokenizer.ggml.fim_pad_token_id", nv, &fim_pad);
  read_token_id(f, "tokenizer.ggml.fim_rep_token_id", nv, &fim_rep);
  read_token_id(f, "tokenizer.ggml.fim_sep_token_id", nv, &fim_sep);
  read_token_id(f, "tokenizer.ggml.prefix_token_id", nv, &fim_pre);  // deprecated names
  read_token_id(f, "tokenizer.ggml.suffix_token_id", nv, &fim_suf);
  read_token_id(f, "tokenizer.ggml.middle_token_id", nv, &fim_mid);
  read_flag(f, "tokenizer.ggml.add_bos_token", &t.add_bos);
  read_flag(f, "tokenizer.ggml.add_eos_token", &t.add_eos);

  // Tokens recognised by their text (as llama.cpp does): they become control tokens.
  auto mark_control = [&](int32_t id) { t.attrs[id] |= attr_control; };
  auto detect = [&](int32_t* id, const auto& texts) {
    if (*id >= 0) return;
    for (const std::string_view text : texts) {
      const int32_t found = t.token_id(text);
      if (found >= 0) {
        *id = found;
        mark_control(found);
        return;
      }
    }
  };
  detect(&t.eot, k_eot_texts);
  detect(&t.eom, k_eom_texts);
  detect(&fim_pre, k_fim_pre_texts);
  detect(&fim_suf, k_fim_suf_texts);
  detect(&fim_mid, k_fim_mid_texts);
  detect(&fim_pad, k_fim_pad_texts);
  detect(&fim_rep, k_fim_rep_texts);
  detect(&fim_sep, k_fim_sep_texts);

  // End of generation: FIM padding/repo/separator, every token with an end-of-turn text, EOS, EOT.
  std::vector<int32_t> eog;
  for (int32_t id : {fim_pad, fim_rep, fim_sep}) {
    if (id >= 0) eog.push_back(id);
  }
  for (const std::string_view text : k_eog_texts) {
    const int32_t id = t.token_id(text);
    if (id >= 0) {
      eog.push_back(id);
      mark_control(id);
    }
  }
  for (const std::string_view text : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"}) {
    const int32_t id = t.token_id(text);  // gpt-oss: text the model writes, always rendered
    if (id >= 0) t.attrs[id] = attr_user_defined;
  }
  for (int32_t id : {t.eos, t.eot, t.eom}) {
    if (id >= 0) eog.push_back(id);
  }
  std::sort(eog.begin(), eog.end());
  eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
  auto eog_has = [&](std::string_view text) {
    const int32_t id = t.token_id(text);
    return id >= 0 && std::binary_search(eog.begin(), eog.end(), id) ? id : -1;
  };
  auto eog_remove = [&](int32_t id, uint16_t new_attr) {
    eog.erase(std::remove(eog.begin(), eog.end(), id), eog.end());
    t.attrs[id] = new_attr;
  };
  // gpt-oss / Solar Open: <|end|> ends a message, not the generation.
  if (const int32_t end = eog_has("<|end|>"); end >= 0) {
    const bool has_call = eog_has("<|call|>") >= 0 || eog_has("<|calls|>") >= 0;
    if ((eog_has("<|return|>") >= 0 && has_call) || (has_call && eog_has("<|flush|>") >= 0)) {
      eog_remove(end, attr_user_defined);
    }
  }
  // Gemma 4: </s> is ordinary text there.
  if (const int32_t s = eog_has("</s>"); s >= 0 && eog_has("<|tool_response>") >= 0) eog_remove(s, attr_normal);
  t.eog = std::move(eog);

  if (t.add_bos && t.bos < 0) return fail("add_bos_token is true but the vocabulary has no BOS token");
  if (t.add_eos && t.eos < 0) return fail("add_eos_token is true but the vocabulary has no EOS token");

  // Special tokens, longest text first (cut out of the text in that order).
  for (int32_t id = 0; id < nv; ++id) {
    if (t.attrs[id] & attr_special) t.special_tokens.push_back(id);
  }
  std::stable_sort(t.special_tokens.begin(), t.special_tokens.end(), [&](int32_t a, int32_t b) {
    return t.pool.text(a).size() > t.pool.text(b).size();
  });
  for (int32_t id : t.special_tokens) {
    t.special_first_byte[static_cast<unsigned char>(t.pool.text(id)[0])] = true;
  }

  // Per-model attributes llama.cpp sets by name: whitespace swallowed next to some specials.
  const std::string name = lowercase_ascii(f.get_string("general.name").value_or(""));
  const std::string arch(f.get_string("general.architecture").value_or(""));
  auto set_attr = [&](std::string_view text, uint16_t a, bool on) {
    const int32_t id = t.token_id(text);
    if (id >= 0) t.attrs[id] = on ? (t.attrs[id] | a) : (t.attrs[id] & ~a);
  };
  auto contains_any = [](std::string_view s, std::initializer_list<std::string_view> parts) {
    return std::any_of(parts.begin(), parts.end(), [&](std::string_view p) { return s.find(p) != s.npos; });
  };
  if (contains_any(pre_name, {"jina-v2-de", "jina-v2-es", "jina-v2-code"}) ||
      contains_any(arch, {"nomic-bert-moe", "jina-bert-v3"})) {
    set_attr("<mask>", attr_lstrip, true);
  } else if (contains_any(name, {"phi-3", "phi3"})) {
    for (int32_t id : t.special_tokens) t.attrs[id] |= attr_rstrip;
    set_attr("</s>", attr_rstrip, true);
    for (const std::string_view text : {"<unk>", "<s>", "<|endoftext|>"}) set_attr(text, attr_rstrip, false);
  } else if (contains_any(name, {"modern-bert"})) {
    set_attr("[MASK]", attr_lstrip, true);
  }

  if (t.type == kind::spm) {
    static constexpr char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      const char name_buf[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
      int32_t id = t.token_id(std::string_view(name_buf, 6));
      if (id < 0) id = t.token_id(std::string(1, static_cast<char>(b)));
      t.byte_tokens[b] = id >= 0 ? id : t.unk;
    }
    t.spm_words_independent = true;
    for (int32_t id = 0; id < nv && t.spm_words_independent; ++id) {
      const std::string_view text = t.pool.text(id);
      size_t lead = 0;
      while (text.compare(lead, k_space_marker.size(), k_space_marker) == 0) lead += k_space_marker.size();
      if (text.find(k_space_marker, lead) != std::string_view::npos) t.spm_words_independent = false;
    }
    return tok;
  }

  // BPE: merge rules over pool ids; merge parts that are not tokens get ids past the vocabulary.
  const auto merges = f.get_string_array("tokenizer.ggml.merges");
  if (!merges) return fail("tokenizer.ggml.merges is missing or not an array of strings");
  std::vector<merge_table::rule> rules;
  rules.reserve(merges->size());
  std::string joined;
  for (size_t rank = 0; rank < merges->size(); ++rank) {
    const std::string_view m = (*merges)[rank];
    const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
    if (space == std::string_view::npos || space + 1 == m.size()) continue;  // malformed: can never apply
    const std::string_view left = m.substr(0, space), right = m.substr(space + 1);
    joined.assign(left).append(right);
    rules.push_back({hash_bytes(left), hash_bytes(right), static_cast<uint32_t>(rank), hash_bytes(joined)});
  }
  t.merges.reserve(rules.size());
  t.merges.add(rules);
  for (int b = 0; b < 256; ++b) t.byte_hashes[b] = hash_bytes(byte_map().chars[b]);
  return tok;
}

// ---- encoding ----

std::vector<fragment> tokenizer::impl::partition(std::string_view text, bool parse_special) const {
  std::vector<fragment> frags;
  if (text.empty()) return frags;
  frags.push_back(fragment{-1, 0, static_cast<uint32_t>(text.size())});

  std::array<bool, 256> present{};
  for (const char c : text) present[static_cast<unsigned char>(c)] = true;
  bool any = false;
  for (int b = 0; b < 256; ++b) any = any || (present[b] && special_first_byte[b]);
  if (!any) return frags;

  std::vector<fragment> next;
  for (const int32_t id : special_tokens) {
    const uint16_t a = attrs[id];
    if (!parse_special && (a & (attr_control | attr_unknown))) continue;
    const std::string_view s = pool.text(id);
    if (!present[static_cast<unsigned char>(s[0])] || s.size() > text.size()) continue;
    // Most special texts do not occur: look before rebuilding the list.
    bool found = false;
    for (const fragment& fr : frags) {
      if (fr.token < 0 && text.substr(0, fr.end).find(s, fr.begin) != std::string_view::npos) {
        found = true;
        break;
      }
    }
    if (!found) continue;
    next.clear();
    for (const fragment& fr : frags) {
      if (fr.token >= 0) {
        next.push_back(fr);
        continue;
      }
      uint32_t base = fr.begin;
      const std::string_view window = text.substr(0, fr.end);
      while (base < fr.end) {
        const size_t m = window.find(s, base);
        if (m == std::string_view::npos) {
          next.push_back(fragment{-1, base, fr.end});
          break;
        }
        uint32_t left_end = static_cast<uint32_t>(m);
        if (a & attr_lstrip) {
          while (left_end > base && is_c_space(text[left_end - 1])) --left_end;
        }
        if (left_end > base) next.push_back(fragment{-1, base, left_end});
        next.push_back(fragment{id, 0, 0});
        base = static_cast<uint32_t>(m + s.size());
        if (a & attr_rstrip) {
          while (base < fr.end && is_c_space(text[base])) ++base;
        }
      }
    }
    frags.swap(next);
  }
  return frags;
}

void tokenizer::impl::encode_spm(std::string_view raw, bool space_prefix, std::vector<int32_t>* out) const {
  // Spaces are written as U+2581 (and one is added in front when asked).
  std::string text;
  text.reserve(raw.size() + 8);
  if (space_prefix) text.append(k_space_marker);
  for (const char c : raw) {
    if (c == ' ') {
      text.append(k_space_marker);
    } else {
      text.push_back(c);
    }
  }
  // Symbols are UTF-8 characters as their lead bytes announce them.
  std::vector<spm_symbol> sym;
  sym.reserve(text.size());
  for (size_t off = 0; off < text.size();) {
    const size_t len = std::min(utf8_lead_len(static_cast<unsigned char>(text[off])), text.size() - off);
    sym.push_back(spm_symbol{static_cast<uint32_t>(off), static_cast<uint32_t>(len), -1, -1});
    off += len;
  }
  // Merge within segments that no piece can span: with words_independent, every U+2581 that
  // follows another character starts one. Otherwise the whole text is one segment.
  auto is_space = [&](int32_t i) { return std::string_view(text).substr(sym[i].start, sym[i].n) == k_space_marker; };
  std::vector<merge_candidate> heap;
  const auto n = static_cast<int32_t>(sym.size());
  for (int32_t begin = 0; begin < n;) {
    int32_t end = begin + 1;
    if (spm_words_independent) {
      while (end < n && !(is_space(end) && !is_space(end - 1))) ++end;
    } else {
      end = n;
    }
    encode_spm_segment(text, &sym, begin, end, &heap, out);
    begin = end;
  }
}

void tokenizer::impl::encode_spm_segment(std::string_view text, std::vector<spm_symbol>* symbols, int32_t begin,
                                         int32_t end, std::vector<merge_candidate>* heap_storage,
                                         std::vector<int32_t>* out) const {
  std::vector<spm_symbol>& sym = *symbols;
  for (int32_t i = begin; i < end; ++i) {
    sym[i].prev = i == begin ? -1 : i - 1;
    sym[i].next = i + 1 == end ? -1 : i + 1;
  }
  // Highest score first; on equal scores the leftmost pair.
  std::vector<merge_candidate>& heap = *heap_storage;
  heap.clear();
  auto try_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const uint32_t size = sym[l].n + sym[r].n;
    const int32_t id = token_id(text.substr(sym[l].start, size));
    if (id < 0) return;
    const uint64_t priority = (static_cast<uint64_t>(~ordered_bits(scores[id])) << 32) | static_cast<uint32_t>(l);
    heap.push_back(merge_candidate{priority, l, r, size, 0});
    std::push_heap(heap.begin(), heap.end(), later_candidate{});
  };
  for (int32_t i = begin + 1; i < end; ++i) try_add(i - 1, i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later_candidate{});
    const merge_candidate b = heap.back();
    heap.pop_back();
    spm_symbol& l = sym[b.left];
    spm_symbol& r = sym[b.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // a part was merged since
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  for (int32_t i = begin; i != -1; i = sym[i].next) {
    const std::string_view piece = text.substr(sym[i].start, sym[i].n);
    const int32_t id = token_id(piece);
    if (id >= 0) {
      out->push_back(id);
      continue;
    }
    for (const char c : piece) {  // byte fallback
      const int32_t bt = byte_tokens[static_cast<unsigned char>(c)];
      if (bt >= 0) out->push_back(bt);
    }
  }
}

void tokenizer::impl::encode_bpe_word(std::string_view word, bpe_work* w, std::vector<int32_t>* out) const {
  const auto& chars = byte_map().chars;
  const int32_t n = static_cast<int32_t>(word.size());
  w->encoded.clear();
  w->encoded_at.clear();
  for (const char c : word) {
    w->encoded_at.push_back(static_cast<uint32_t>(w->encoded.size()));
    w->encoded.append(chars[static_cast<unsigned char>(c)]);
  }
  w->encoded_at.push_back(static_cast<uint32_t>(w->encoded.size()));
  const std::string_view enc = w->encoded;
  auto text_of = [&](uint32_t start, uint32_t len) {
    return enc.substr(w->encoded_at[start], w->encoded_at[start + len] - w->encoded_at[start]);
  };
  if (ignore_merges) {
    const int32_t id = token_id(enc);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  // One symbol per byte (= per character of the byte-level text). Repeatedly the adjacent pair
  // with the lowest rank merges (the leftmost on equal ranks), until no pair has a rule.
  std::vector<bpe_symbol>& sym = w->symbols;
  sym.clear();
  for (int32_t i = 0; i < n; ++i) {
    sym.push_back(bpe_symbol{byte_hashes[static_cast<unsigned char>(word[i])], static_cast<uint32_t>(i), 1, i - 1,
                             i + 1 == n ? -1 : i + 1});
  }
  if (n <= k_short_word) {
    // Short words: scan the pairs (sym stays compact: symbol i is followed by symbol i + 1).
    std::array<merge_table::found, k_short_word> pair;
    auto update = [&](size_t i) { pair[i] = merges.find(sym[i].hash, sym[i + 1].hash); };
    for (size_t i = 0; i + 1 < sym.size(); ++i) update(i);
    while (sym.size() > 1) {
      size_t best = 0;
      for (size_t i = 1; i + 1 < sym.size(); ++i) {
        if (pair[i].rank < pair[best].rank) best = i;
      }
      if (pair[best].rank == merge_table::k_none) break;
      sym[best].n += sym[best + 1].n;
      sym[best].hash = pair[best].merged;
      sym.erase(sym.begin() + static_cast<std::ptrdiff_t>(best) + 1);
      std::copy(pair.begin() + static_cast<std::ptrdiff_t>(best) + 2, pair.begin() + static_cast<std::ptrdiff_t>(sym.size()) + 1,
                pair.begin() + static_cast<std::ptrdiff_t>(best) + 1);
      if (best > 0) update(best - 1);
      if (best + 1 < sym.size()) update(best);
    }
    for (bpe_symbol& s : sym) emit_bpe_symbol(text_of(s.start, s.n), s.hash, out);
    return;
  }
  // Long words: a priority queue of candidate pairs over a linked list of symbols.
  std::vector<merge_candidate>& heap = w->heap;
  heap.clear();
  auto try_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const merge_table::found rule = merges.find(sym[l].hash, sym[r].hash);
    if (rule.rank == merge_table::k_none) return;
    heap.push_back(merge_candidate{(static_cast<uint64_t>(rule.rank) << 32) | static_cast<uint32_t>(l), l, r,
                                   sym[l].n + sym[r].n, rule.merged});
    std::push_heap(heap.begin(), heap.end(), later_candidate{});
  };
  for (int32_t i = 1; i < n; ++i) try_add(i - 1, i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later_candidate{});
    const merge_candidate b = heap.back();
    heap.pop_back();
    bpe_symbol& l = sym[b.left];
    bpe_symbol& r = sym[b.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // a part was merged since
    l.n += r.n;
    l.hash = b.merged;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  for (int32_t i = 0; i != -1; i = sym[i].next) emit_bpe_symbol(text_of(sym[i].start, sym[i].n), sym[i].hash, out);
}

void tokenizer::impl::emit_bpe_symbol(std::string_view text, uint64_t hash, std::vector<int32_t>* out) const {
  const int32_t id = pool.find(text, hash);
  if (id >= 0) {
    out->push_back(id);
    return;
  }
  // Not a token: each byte of its byte-level text that is a one-byte token (as llama.cpp).
  for (const char c : text) {
    const int32_t b = token_id(std::string_view(&c, 1));
    if (b >= 0) out->push_back(b);
  }
}

void tokenizer::impl::encode_bpe(std::string_view text, std::vector<int32_t>* out) const {
  bpe_work w;
  pre->split(text, &w.normalized, &w.word_ends);
  uint32_t begin = 0;
  for (const uint32_t end : w.word_ends) {
    encode_bpe_word(std::string_view(w.normalized).substr(begin, end - begin), &w, out);
    begin = end;
  }
}

std::vector<int32_t> tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  const impl& t = *impl_;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special && t.add_bos) out.push_back(t.bos);
  bool after_special = true;  // SentencePiece: the text that starts the input or follows a special
  for (const fragment& fr : t.partition(text, parse_special)) {
    if (fr.token >= 0) {
      out.push_back(fr.token);
      after_special = true;
      continue;
    }
    const std::string_view piece = text.substr(fr.begin, fr.end - fr.begin);
    if (t.type == kind::spm) {
      t.encode_spm(piece, t.add_space_prefix && after_special, &out);
    } else {
      t.encode_bpe(piece, &out);
    }
    after_special = false;
  }
  if (add_special && t.add_eos) out.push_back(t.eos);
  return out;
}

// ---- decoding ----

std::string tokenizer::impl::piece(int32_t id, bool special) const {
  if (!valid(id)) return {};
  const uint16_t a = attrs[id];
  const std::string_view text = pool.text(id);
  if (a & (attr_control | attr_unknown) && !special) return {};
  if (a & attr_special) return std::string(text);
  if (a & attr_normal) {
    std::string out;
    out.reserve(text.size());
    if (type == kind::spm) {
      for (size_t i = 0; i < text.size();) {
        if (text.compare(i, k_space_marker.size(), k_space_marker) == 0) {
          out.push_back(' ');
          i += k_space_marker.size();
        } else {
          out.push_back(text[i++]);
        }
      }
      return out;
    }
    // Byte-level: each character stands for one byte; other characters are kept as they are.
    const auto& inverse = byte_map().byte_of_char;
    for (size_t i = 0; i < text.size();) {
      const auto b0 = static_cast<unsigned char>(text[i]);
      if (b0 < 0x80) {
        out.push_back(static_cast<char>(inverse[b0] >= 0 ? inverse[b0] : b0));
        ++i;
        continue;
      }
      if ((b0 & 0xE0) == 0xC0 && i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80) {
        const uint32_t cp = ((b0 & 0x1Fu) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3Fu);
        if (cp < inverse.size() && inverse[cp] >= 0) {
          out.push_back(static_cast<char>(inverse[cp]));
        } else {
          out.append(text.substr(i, 2));
        }
        i += 2;
        continue;
      }
      const size_t len = std::min(utf8_lead_len(b0), text.size() - i);
      out.append(text.substr(i, len));
      i += len;
    }
    return out;
  }
  if (a & attr_byte) {
    if (text.size() == 6 && text.substr(0, 3) == "<0x" && text[5] == '>') {
      auto hex = [](char c) { return c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0'; };
      return std::string(1, static_cast<char>(hex(text[3]) * 16 + hex(text[4])));
    }
    return std::string(text);
  }
  return {};  // unused / undefined tokens
}

void tokenizer::impl::append_piece(int32_t id, bool special, bool* at_text_start, std::string* out) const {
  if (!valid(id)) return;
  std::string p = piece(id, special);
  if (attrs[id] & attr_special) {
    *at_text_start = true;
  } else {
    if (*at_text_start && type == kind::spm && add_space_prefix && (attrs[id] & attr_normal) && !p.empty() &&
        p[0] == ' ') {
      p.erase(0, 1);
    }
    *at_text_start = false;
  }
  out->append(p);
}

std::string tokenizer::decode(std::span<const int32_t> ids, bool special) const {
  std::string out;
  bool at_text_start = true;
  for (const int32_t id : ids) impl_->append_piece(id, special, &at_text_start, &out);
  return out;
}

std::string tokenizer::token_to_piece(int32_t id, bool special) const { return impl_->piece(id, special); }

// ---- accessors ----

tokenizer::kind tokenizer::type() const { return impl_->type; }
int32_t tokenizer::n_vocab() const { return impl_->n_vocab; }
int32_t tokenizer::bos() const { return impl_->bos; }
int32_t tokenizer::eos() const { return impl_->eos; }
int32_t tokenizer::eot() const { return impl_->eot; }
bool tokenizer::add_bos() const { return impl_->add_bos; }
bool tokenizer::add_eos() const { return impl_->add_eos; }
std::span<const int32_t> tokenizer::eog_ids() const { return impl_->eog; }
bool tokenizer::is_eog(int32_t id) const { return std::binary_search(impl_->eog.begin(), impl_->eog.end(), id); }
bool tokenizer::is_special(int32_t id) const { return is_valid(id) && (impl_->attrs[id] & attr_special); }
bool tokenizer::is_control(int32_t id) const {
  return is_valid(id) && (impl_->attrs[id] & (attr_control | attr_unknown));
}
std::string_view tokenizer::token_text(int32_t id) const {
  return is_valid(id) ? impl_->pool.text(id) : std::string_view();
}
std::optional<int32_t> tokenizer::find_token(std::string_view text) const {
  const int32_t id = impl_->token_id(text);
  return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
}

// ---- streaming ----

namespace {

const std::string_view k_replacement_utf8 = "\xEF\xBF\xBD";

// The well-formed UTF-8 sequence at the start of `s`: its length when complete, 0 when `s` ends
// inside a sequence that is well-formed so far, or -n for an ill-formed one whose maximal
// well-formed prefix is n bytes (n >= 1), which is replaced by one U+FFFD.
int utf8_sequence(std::string_view s) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  if (b0 < 0x80) return 1;
  int len = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  for (int k = 1; k < len; ++k) {
    if (static_cast<size_t>(k) >= s.size()) return 0;
    const auto b = static_cast<unsigned char>(s[k]);
    const bool ok = k == 1 ? (b >= lo && b <= hi) : (b & 0xC0) == 0x80;
    if (!ok) return -k;
  }
  return len;
}

// Moves the complete part of `*pending` (valid characters, U+FFFD for ill-formed bytes) to the
// result; an unfinished character at the end stays pending unless `final`.
std::string take_utf8(std::string* pending, bool final) {
  std::string out;
  const std::string_view s = *pending;
  size_t i = 0;
  while (i < s.size()) {
    const int r = utf8_sequence(s.substr(i));
    if (r > 0) {
      out.append(s.substr(i, static_cast<size_t>(r)));
      i += static_cast<size_t>(r);
    } else if (r < 0) {
      out.append(k_replacement_utf8);
      i += static_cast<size_t>(-r);
    } else if (final) {
      out.append(k_replacement_utf8);
      i = s.size();
    } else {
      break;
    }
  }
  pending->erase(0, i);
  return out;
}

}  // namespace

detokenizer::detokenizer(const tokenizer& tok, bool special) : tok_(tok), special_(special) {}

std::string detokenizer::push(int32_t id) {
  if (!tok_.is_valid(id)) return {};
  tok_.impl_->append_piece(id, special_, &at_text_start_, &pending_);
  return take_utf8(&pending_, false);
}

std::string detokenizer::flush() { return take_utf8(&pending_, true); }

}  // namespace gw::local_engine
