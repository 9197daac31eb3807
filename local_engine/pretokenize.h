#pragma once
// Pre-tokenizers of byte-level BPE vocabularies: the regex splits named by `tokenizer.ggml.pre`,
// written as hand matchers over code points with Unicode class flags (unicode_tables.h) instead of
// a regex engine. Each pre-tokenizer is a list of passes, applied like llama.cpp applies its list
// of regexes: pass k splits every piece left by pass k-1 on its own, and the text between two
// matches of a pass becomes a piece as well. A piece's end acts as the end of text (lookaheads,
// `$`). Class semantics follow llama.cpp's regex handling: non-ASCII whitespace counts as \s and,
// where a pattern lists literal characters, as U+000B; the upper/lower-case patterns of GPT-4o and
// Tekken treat every non-ASCII letter as both cases, as llama.cpp does.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gw::local_engine {

class pre_tokenizer {
 public:
  // The pre-tokenizer for a `tokenizer.ggml.pre` name ("" = llama.cpp's "default" split). Unknown
  // names give nullptr and *error.
  static std::unique_ptr<pre_tokenizer> create(std::string_view name, std::string* error);
  ~pre_tokenizer();

  // Names that llama.cpp maps to this pre-tokenizer also imply these vocabulary defaults.
  bool ignore_merges() const { return ignore_merges_; }  // a word found whole in the vocab is one token
  bool default_add_bos() const { return add_bos_; }      // add_bos_token when the key is absent
  bool drops_bos() const { return no_bos_; }             // the vocab has no BOS token (chatglm)

  // Splits `text` into words. `text` is first decoded as UTF-8; every byte that does not start a
  // well-formed sequence becomes U+FFFD (as llama.cpp does), so the words are byte ranges of
  // `*normalized` (equal to `text` when it is valid UTF-8): word i is
  // [(*word_ends)[i-1], (*word_ends)[i]) with an implicit 0 before the first.
  void split(std::string_view text, std::string* normalized, std::vector<uint32_t>* word_ends) const;

  // One split pass (defined in the .cpp).
  struct pass;

 private:
  pre_tokenizer();
  std::vector<std::unique_ptr<pass>> passes_;
  bool ignore_merges_ = false;
  bool add_bos_ = false;
  bool no_bos_ = false;
};

}  // namespace gw::local_engine
