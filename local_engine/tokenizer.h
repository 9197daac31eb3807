#pragma once
// Tokenizers read from GGUF metadata (tokenizer.ggml.*), compatible with llama.cpp's:
// - SentencePiece-style (`tokenizer.ggml.model` = "llama"): score-driven merges over the text
//   with spaces written as U+2581, one space added before the text (add_space_prefix), and byte
//   fallback to the <0xXX> tokens for pieces that are not in the vocabulary;
// - byte-level BPE ("gpt2"): the pre-tokenizer named by `tokenizer.ggml.pre` splits the text into
//   words (pretokenize.h), each word is mapped byte by byte to GPT-2's printable characters and
//   merged by rank (`tokenizer.ggml.merges`).
// Special tokens (control, user-defined and unknown types) are cut out of the text before that:
// user-defined ones always, control and unknown ones only when special-token text is parsed.
//
// Decoding and the leading space (SentencePiece vocabularies with add_space_prefix only): the
// encoder writes one space in front of every stretch of text that starts the input or follows a
// special token; decode() and the detokenizer remove exactly that space again, from the first
// normal token at the start of the ids and after every special token, whether or not specials are
// rendered. So decode(encode(" Hello")) == " Hello", decode(encode("<s>Hi", .., true), true) ==
// "<s>Hi", and a continuation decoded on its own (a generated answer) does not start with the
// space that its first token carries. (llama.cpp strips only at the very start and keeps the
// space after BOS.) Byte-level BPE decoding is the plain concatenation of the pieces; llama.cpp's
// clean-up of spaces before punctuation is not applied, so decode(encode(x)) == x.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gw::local_engine {

class gguf_file;

class tokenizer {
 public:
  enum class kind { spm, bpe };

  // Reads the vocabulary of `f` (only its metadata; the file may have no tensors). nullptr and
  // *error ("<path>: tokenizer: <what>") for a missing, malformed or unsupported vocabulary.
  static std::unique_ptr<tokenizer> from_gguf(const gguf_file& f, std::string* error);
  ~tokenizer();
  tokenizer(const tokenizer&) = delete;
  tokenizer& operator=(const tokenizer&) = delete;

  kind type() const;
  int32_t n_vocab() const;
  bool is_valid(int32_t id) const { return id >= 0 && id < n_vocab(); }

  // add_special: add BOS/EOS as the vocab says (add_bos / add_eos); parse_special: the text of
  // control and unknown tokens becomes their id (user-defined tokens always do).
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

  int32_t bos() const;  // -1 when none
  int32_t eos() const;
  int32_t eot() const;  // end of turn (<|eot_id|>, <|im_end|>, ...), -1 when none
  bool add_bos() const;
  bool add_eos() const;
  bool is_eog(int32_t id) const;      // generation stops here (eos, eot, eom, <|endoftext|>, ...)
  std::span<const int32_t> eog_ids() const;  // ascending
  bool is_special(int32_t id) const;  // control, user-defined or unknown type
  bool is_control(int32_t id) const;  // control or unknown: rendered only when asked for specials

  std::string_view token_text(int32_t id) const;  // as stored in the vocab; "" for invalid ids
  std::optional<int32_t> find_token(std::string_view text) const;

  // The bytes a token stands for (byte tokens -> that byte, U+2581 -> ' ', BPE characters mapped
  // back to bytes). Control and unknown tokens render their text only when `special` is true;
  // user-defined tokens (e.g. <think>) always do. "" for invalid ids.
  std::string token_to_piece(int32_t id, bool special) const;
  // The text of `ids` (raw bytes: may be invalid UTF-8 if the ids split a character); invalid ids
  // are skipped. See the top of this file for the leading-space rule.
  std::string decode(std::span<const int32_t> ids, bool special) const;

  struct impl;

 private:
  tokenizer();
  std::unique_ptr<impl> impl_;
  friend class detokenizer;
};

// Turns ids into text incrementally: push() returns only complete, valid UTF-8 (a character split
// over several tokens comes out with its last byte); flush() returns what is still pending.
// Bytes that cannot become valid UTF-8 come out as U+FFFD, so the output is always valid UTF-8.
// Same leading-space rule as tokenizer::decode; invalid ids are ignored.
class detokenizer {
 public:
  explicit detokenizer(const tokenizer& tok, bool special = false);
  std::string push(int32_t id);
  std::string flush();

 private:
  const tokenizer& tok_;
  bool special_;
  bool at_text_start_ = true;
  std::string pending_;  // the bytes of an unfinished UTF-8 character
};

}  // namespace gw::local_engine
