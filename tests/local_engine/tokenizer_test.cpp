// Tokenizers on small synthetic vocabularies written with gguf_writer: SentencePiece byte fallback
// and score order, BPE rank order, special-token parsing, BOS/EOS flags, end-of-generation ids,
// the leading-space rule of decoding, the streaming detokenizer on characters split over tokens,
// invalid ids and input, load errors; and the pre-tokenizers' splits (expected pieces computed by
// running llama.cpp's regexes the way llama.cpp runs them, with Python's re).
#include "local_engine/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "local_engine/gguf.h"
#include "local_engine/pretokenize.h"
#include "tests/support/test_env.h"

namespace {

namespace le = gw::local_engine;
using ids = std::vector<int32_t>;

enum token_type : int32_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

struct vocab_entry {
  std::string text;
  float score = 0.0f;
  int32_t type = normal;
};

// Writes a vocabulary to a temp GGUF (no tensors), opens it and builds the tokenizer.
class vocab_file {
 public:
  vocab_file() : dir_("tokenizer-test") {}

  le::gguf_writer w;

  std::unique_ptr<le::tokenizer> load(std::string* error) {
    const std::string path = (dir_.path / ("v" + std::to_string(n_++) + ".gguf")).string();
    if (!w.write(path, error)) return nullptr;
    file_ = le::gguf_file::open(path, error);
    if (!file_) return nullptr;
    return le::tokenizer::from_gguf(*file_, error);
  }
  std::unique_ptr<le::tokenizer> load() {
    std::string error;
    auto t = load(&error);
    EXPECT_TRUE(t) << error;
    return t;
  }
  void set_vocab(const std::vector<vocab_entry>& v) {
    std::vector<std::string> texts;
    std::vector<float> scores;
    std::vector<int32_t> types;
    for (const auto& e : v) {
      texts.push_back(e.text);
      scores.push_back(e.score);
      types.push_back(e.type);
    }
    w.set_string_array("tokenizer.ggml.tokens", texts);
    w.set_f32_array("tokenizer.ggml.scores", scores);
    w.set_i32_array("tokenizer.ggml.token_type", types);
  }

 private:
  gw::test::temp_dir dir_;
  std::unique_ptr<le::gguf_file> file_;
  int n_ = 0;
};

const std::string k_space = "\xE2\x96\x81";  // U+2581

std::string hex_byte(int b) {
  static const char* hex = "0123456789ABCDEF";
  return std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
}

// A SentencePiece vocabulary: <unk> <s> </s>, the 256 byte tokens (ids 3..258), then `pieces`.
std::vector<vocab_entry> spm_vocab(const std::vector<vocab_entry>& pieces) {
  std::vector<vocab_entry> v = {{"<unk>", 0, unknown}, {"<s>", 0, control}, {"</s>", 0, control}};
  for (int b = 0; b < 256; ++b) v.push_back({hex_byte(b), 0, byte});
  v.insert(v.end(), pieces.begin(), pieces.end());
  return v;
}
constexpr int32_t k_byte0 = 3;  // id of <0x00>

// GPT-2's byte-level character for each byte.
std::string byte_char(int b) {
  int cp = b;
  if (!((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
    int n = 0;
    for (int c = 0; c < b; ++c) {
      if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) ++n;
    }
    cp = 0x100 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

// A byte-level BPE vocabulary: the 256 byte characters (id = byte value), then `extra`.
void set_bpe_vocab(vocab_file& vf, const std::vector<vocab_entry>& extra, const std::vector<std::string>& merges,
                   const std::string& pre = "gpt-2") {
  std::vector<vocab_entry> v;
  for (int b = 0; b < 256; ++b) v.push_back({byte_char(b)});
  v.insert(v.end(), extra.begin(), extra.end());
  vf.set_vocab(v);
  vf.w.set_string("tokenizer.ggml.model", "gpt2");
  vf.w.set_string("tokenizer.ggml.pre", pre);
  vf.w.set_string_array("tokenizer.ggml.merges", merges);
}

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

// ---- SentencePiece ----

TEST(Tokenizer, SpmByteFallbackAndRoundTrip) {
  vocab_file vf;
  vf.set_vocab(spm_vocab({{k_space + "a", -1.0f}, {"b", -2.0f}, {k_space, -3.0f}}));
  vf.w.set_string("tokenizer.ggml.model", "llama");
  auto tok = vf.load();
  ASSERT_TRUE(tok);
  const int32_t sp_a = 259, b = 260, sp = 261;
  // "a€b": a space is added in front; "€" is not a piece, so its three bytes are byte tokens.
  EXPECT_EQ(tok->encode("a\xE2\x82\xAC" "b", false, false),
            (ids{sp_a, k_byte0 + 0xE2, k_byte0 + 0x82, k_byte0 + 0xAC, b}));
  EXPECT_EQ(tok->decode(tok->encode("a\xE2\x82\xAC" "b", false, false), false), "a\xE2\x82\xAC" "b");
  // Invalid UTF-8 goes through byte fallback unchanged.
  const std::string bad = "a\xFF\xC3";
  EXPECT_EQ(tok->encode(bad, false, false), (ids{sp_a, k_byte0 + 0xFF, k_byte0 + 0xC3}));
  EXPECT_EQ(tok->decode(tok->encode(bad, false, false), false), bad);
  // A space: the added one and the text's own.
  EXPECT_EQ(tok->encode(" a", false, false), (ids{sp, sp_a}));
  EXPECT_EQ(tok->decode(ids{sp, sp_a}, false), " a");
  EXPECT_EQ(tok->token_to_piece(sp_a, false), " a");
  EXPECT_EQ(tok->token_to_piece(k_byte0 + 'x', false), "x");
  EXPECT_TRUE(tok->encode("", false, false).empty());
}

TEST(Tokenizer, SpmMergesFollowScores) {
  for (const bool ab_first : {true, false}) {
    vocab_file vf;
    vf.set_vocab(spm_vocab({{k_space, -5.0f},
                            {"a", -5.0f},
                            {"b", -5.0f},
                            {"ab", ab_first ? -1.0f : -3.0f},
                            {k_space + "a", ab_first ? -3.0f : -1.0f}}));
    vf.w.set_string("tokenizer.ggml.model", "llama");
    auto tok = vf.load();
    ASSERT_TRUE(tok);
    const int32_t sp = 259, b = 261, ab = 262, sp_a = 263;
    // The pair with the higher score merges first.
    EXPECT_EQ(tok->encode("ab", false, false), ab_first ? (ids{sp, ab}) : (ids{sp_a, b}));
  }
}

TEST(Tokenizer, SpmBosEosAndLeadingSpaceRule) {
  vocab_file vf;
  // "▁Hello" is reached through "▁H", "▁He", ... (each merge must form a piece).
  vf.set_vocab(spm_vocab({{k_space + "Hello", -1.0f},
                          {k_space, -2.0f},
                          {"<|u|>", 0, user_defined},
                          {k_space + "H", -6.0f},
                          {k_space + "He", -5.0f},
                          {k_space + "Hel", -4.0f},
                          {k_space + "Hell", -3.0f}}));
  vf.w.set_string("tokenizer.ggml.model", "llama");
  vf.w.set_bool("tokenizer.ggml.add_eos_token", true);
  auto tok = vf.load();
  ASSERT_TRUE(tok);
  const int32_t sp_hello = 259, sp = 260, user = 261;
  EXPECT_TRUE(tok->add_bos());
  EXPECT_TRUE(tok->add_eos());
  EXPECT_EQ(tok->encode("Hello", true, false), (ids{1, sp_hello, 2}));
  EXPECT_EQ(tok->encode("Hello", false, false), (ids{sp_hello}));
  // Decoding removes the space the encoder added: at the start and after any special token.
  EXPECT_EQ(tok->decode(ids{sp_hello}, false), "Hello");
  EXPECT_EQ(tok->decode(ids{1, sp_hello, 2}, false), "Hello");
  EXPECT_EQ(tok->decode(ids{1, sp_hello, 2}, true), "<s>Hello</s>");
  EXPECT_EQ(tok->decode(tok->encode(" Hello", false, false), false), " Hello");
  EXPECT_EQ(tok->decode(ids{sp_hello, sp_hello}, false), "Hello Hello");
  // A user-defined token is cut out of the text (also without parse_special) and the text after
  // it gets its own added space, which decoding removes again.
  const auto with_user = tok->encode("Hello<|u|>Hello", false, false);
  EXPECT_EQ(with_user, (ids{sp_hello, user, sp_hello}));
  EXPECT_EQ(tok->decode(with_user, false), "Hello<|u|>Hello");
  EXPECT_EQ(tok->decode(ids{sp}, false), "");
}

// ---- BPE ----

TEST(Tokenizer, BpeMergesFollowRanks) {
  vocab_file vf;
  // ids: 256 "ab", 257 "bc", 258 "abc", 259 "Ġx"
  set_bpe_vocab(vf, {{"ab"}, {"bc"}, {"abc"}, {byte_char(' ') + "x"}},
                {"b c", "a b", "a bc", byte_char(' ') + " x"});
  auto tok = vf.load();
  ASSERT_TRUE(tok);
  // "b c" has the lower rank: a+bc, then "a bc" -> abc.
  EXPECT_EQ(tok->encode("abc", false, false), (ids{258}));
  // "ab" then nothing joins "ab"+"d".
  EXPECT_EQ(tok->encode("abd", false, false), (ids{256, 'd'}));
  EXPECT_EQ(tok->encode("a x", false, false), (ids{'a', 259}));
  EXPECT_EQ(tok->decode(ids{'a', 259}, false), "a x");
  // Bytes outside printable ASCII map to their byte-level characters.
  EXPECT_EQ(tok->encode("\n\xC3\xA9", false, false), (ids{'\n', 0xC3, 0xA9}));
  EXPECT_EQ(tok->decode(ids{'\n', 0xC3, 0xA9}, false), "\n\xC3\xA9");
  // Defaults without keys: no BOS added by the gpt-2 pre-tokenizer.
  EXPECT_FALSE(tok->add_bos());
}

TEST(Tokenizer, BpeInvalidUtf8BecomesReplacementCharacter) {
  vocab_file vf;
  set_bpe_vocab(vf, {}, {});
  auto tok = vf.load();
  ASSERT_TRUE(tok);
  // Each byte that starts no valid sequence is U+FFFD (EF BF BD), as in llama.cpp.
  EXPECT_EQ(tok->encode("a\xFF" "b", false, false), (ids{'a', 0xEF, 0xBF, 0xBD, 'b'}));
  EXPECT_EQ(tok->encode("\xE4\xB8", false, false), (ids{0xEF, 0xBF, 0xBD, 0xEF, 0xBF, 0xBD}));
}

TEST(Tokenizer, SpecialTokensParsing) {
  vocab_file vf;
  // 256 <|bos|> (control), 257 <|eot|>-like <|im_end|> (control), 258 <tool> (user-defined)
  set_bpe_vocab(vf, {{"<|bos|>", 0, control}, {"<|im_end|>", 0, control}, {"<tool>", 0, user_defined}}, {},
                "llama-bpe");
  vf.w.set_u32("tokenizer.ggml.bos_token_id", 256);
  vf.w.set_u32("tokenizer.ggml.eos_token_id", 257);
  auto tok = vf.load();
  ASSERT_TRUE(tok);
  EXPECT_TRUE(tok->add_bos());  // llama-bpe's default
  const std::string text = "x<|im_end|>y<tool>z";
  // parse_special: control text becomes its id; otherwise only user-defined tokens do.
  EXPECT_EQ(tok->encode(text, false, true), (ids{'x', 257, 'y', 258, 'z'}));
  const auto plain = tok->encode(text, false, false);
  EXPECT_EQ(plain.size(), 1 + std::string("<|im_end|>").size() + 1 + 1 + 1);
  EXPECT_EQ(plain[plain.size() - 2], 258);
  EXPECT_EQ(tok->encode(text, true, true).front(), 256);
  EXPECT_TRUE(tok->is_special(257));
  EXPECT_TRUE(tok->is_special(258));
  EXPECT_FALSE(tok->is_special('x'));
  // Control tokens render only when asked; user-defined ones always.
  EXPECT_EQ(tok->token_to_piece(257, false), "");
  EXPECT_EQ(tok->token_to_piece(257, true), "<|im_end|>");
  EXPECT_EQ(tok->token_to_piece(258, false), "<tool>");
  EXPECT_EQ(tok->decode(tok->encode(text, false, true), true), text);
  EXPECT_EQ(tok->decode(tok->encode(text, false, true), false), "xy<tool>z");
  EXPECT_EQ(tok->find_token("<tool>"), 258);
  EXPECT_FALSE(tok->find_token("<none>"));
}

TEST(Tokenizer, EndOfGenerationIds) {
  vocab_file vf;
  set_bpe_vocab(vf,
                {{"<|endoftext|>", 0, control},
                 {"<|im_start|>", 0, control},
                 {"<|im_end|>", 0, control},
                 {"<|eot_id|>", 0, normal},
                 {"</think>", 0, user_defined}},
                {}, "qwen2");
  vf.w.set_u32("tokenizer.ggml.eos_token_id", 256);
  auto tok = vf.load();
  ASSERT_TRUE(tok);
  EXPECT_TRUE(tok->is_eog(256));  // EOS
  EXPECT_TRUE(tok->is_eog(258));  // <|im_end|>
  EXPECT_TRUE(tok->is_eog(259));  // <|eot_id|>, made a control token like llama.cpp does
  EXPECT_TRUE(tok->is_special(259));
  EXPECT_FALSE(tok->is_eog(257));
  EXPECT_FALSE(tok->is_eog(260));
  EXPECT_EQ(tok->eot(), 259);  // the first end-of-turn text in llama.cpp's list order
  EXPECT_EQ(std::vector<int32_t>(tok->eog_ids().begin(), tok->eog_ids().end()), (ids{256, 258, 259}));
}

TEST(Tokenizer, AddBosNeedsBosToken) {
  vocab_file vf;
  set_bpe_vocab(vf, {}, {}, "chatglm-bpe");  // a pre-tokenizer whose vocabularies have no BOS
  vf.w.set_bool("tokenizer.ggml.add_bos_token", true);
  std::string error;
  EXPECT_FALSE(vf.load(&error));
  EXPECT_NE(error.find("BOS"), std::string::npos) << error;
}

TEST(Tokenizer, LoadErrorsNameTheFile) {
  struct bad_case {
    const char* what;
    void (*setup)(vocab_file&);
    const char* message;
  };
  const bad_case cases[] = {
      {"no model key", [](vocab_file& vf) { vf.w.set_string_array("tokenizer.ggml.tokens", {"a"}); },
       "tokenizer.ggml.model"},
      {"unsupported model",
       [](vocab_file& vf) {
         vf.w.set_string("tokenizer.ggml.model", "bert");
         vf.w.set_string_array("tokenizer.ggml.tokens", {"a"});
       },
       "bert"},
      {"no tokens", [](vocab_file& vf) { vf.w.set_string("tokenizer.ggml.model", "llama"); }, "tokenizer.ggml.tokens"},
      {"short scores",
       [](vocab_file& vf) {
         vf.w.set_string("tokenizer.ggml.model", "llama");
         vf.w.set_string_array("tokenizer.ggml.tokens", {"a", "b"});
         vf.w.set_f32_array("tokenizer.ggml.scores", {0.0f});
       },
       "scores"},
      {"tokens not strings",
       [](vocab_file& vf) {
         vf.w.set_string("tokenizer.ggml.model", "llama");
         vf.w.set_i32_array("tokenizer.ggml.tokens", {1, 2});
       },
       "tokenizer.ggml.tokens"},
      {"unknown pre-tokenizer", [](vocab_file& vf) { set_bpe_vocab(vf, {}, {}, "no-such-pre"); }, "no-such-pre"},
      {"no merges",
       [](vocab_file& vf) {
         vf.w.set_string("tokenizer.ggml.model", "gpt2");
         vf.w.set_string_array("tokenizer.ggml.tokens", {"a"});
       },
       "merges"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    vocab_file vf;
    c.setup(vf);
    std::string error;
    EXPECT_FALSE(vf.load(&error));
    EXPECT_NE(error.find(c.message), std::string::npos) << error;
    EXPECT_NE(error.find(".gguf"), std::string::npos) << error;
  }
}

// ---- invalid ids, detokenizer ----

TEST(Tokenizer, InvalidIdsAreRejected) {
  vocab_file vf;
  set_bpe_vocab(vf, {{"<|endoftext|>", 0, control}}, {});
  vf.w.set_u32("tokenizer.ggml.eos_token_id", 256);
  auto tok = vf.load();
  ASSERT_TRUE(tok);
  const int32_t n = tok->n_vocab();
  EXPECT_EQ(n, 257);
  for (const int32_t bad : {-1, n, n + 1000, INT32_MIN, INT32_MAX}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(tok->is_valid(bad));
    EXPECT_EQ(tok->token_text(bad), "");
    EXPECT_EQ(tok->token_to_piece(bad, true), "");
    EXPECT_FALSE(tok->is_eog(bad));
    EXPECT_FALSE(tok->is_special(bad));
  }
  EXPECT_EQ(tok->decode(ids{'a', -1, n, 'b', INT32_MAX}, true), "ab");
  le::detokenizer d(*tok);
  EXPECT_EQ(d.push(0xE4), "");
  EXPECT_EQ(d.push(-7), "");  // ignored: the pending character stays intact
  EXPECT_EQ(d.push(0xB8), "");
  EXPECT_EQ(d.push(n), "");
  EXPECT_EQ(d.push(0xAD), "\xE4\xB8\xAD");  // 中
}

TEST(Tokenizer, DetokenizerNeverEmitsPartialUtf8) {
  vocab_file vf;
  // Byte tokens only, so every multi-byte character is split over tokens.
  set_bpe_vocab(vf, {{"<|end|>", 0, control}}, {});
  auto tok = vf.load();
  ASSERT_TRUE(tok);
  const std::string text = "A \xF0\x9F\xA6\x99 llama, \xE4\xB8\xAD\xE6\x96\x87 and \xC3\xA9\xF0\x9F\x98\xB6\xE2\x80\x8D!";
  const auto tokens = tok->encode(text, false, false);
  ASSERT_EQ(tokens.size(), text.size());
  le::detokenizer d(*tok);
  std::string out;
  size_t empty_pushes = 0;
  for (const int32_t id : tokens) {
    const std::string piece = d.push(id);
    EXPECT_TRUE(valid_utf8(piece)) << "push emitted invalid UTF-8";
    empty_pushes += piece.empty();
    out += piece;
  }
  out += d.flush();
  EXPECT_EQ(out, text);
  // Each continuation byte of the 4+3+3+2+4+3 byte characters waited for the next token.
  EXPECT_EQ(empty_pushes, 3u + 2 + 2 + 1 + 3 + 2);

  // Ill-formed bytes come out as U+FFFD; an unfinished character at the end too, on flush().
  le::detokenizer bad(*tok);
  EXPECT_EQ(bad.push(0x80), "\xEF\xBF\xBD");
  EXPECT_EQ(bad.push(0xF0), "");
  EXPECT_EQ(bad.push(0x9F), "");
  EXPECT_EQ(bad.push('x'), "\xEF\xBF\xBDx");  // F0 9F then 'x': one U+FFFD for the broken start
  EXPECT_EQ(bad.push(0xE4), "");
  EXPECT_EQ(bad.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(bad.flush(), "");
  // Control tokens render only when asked for.
  le::detokenizer plain(*tok), special(*tok, true);
  EXPECT_EQ(plain.push(256), "");
  EXPECT_EQ(special.push(256), "<|end|>");
}

TEST(Tokenizer, DetokenizerStripsTheAddedSpaceLikeDecode) {
  vocab_file vf;
  vf.set_vocab(spm_vocab({{k_space + "Hi", -1.0f}, {k_space + "there", -2.0f}}));
  vf.w.set_string("tokenizer.ggml.model", "llama");
  auto tok = vf.load();
  ASSERT_TRUE(tok);
  const int32_t hi = 259, there = 260;  // (ids only: these pieces are not reachable by encoding)
  le::detokenizer d(*tok);
  EXPECT_EQ(d.push(hi), "Hi");  // a continuation does not start with the token's space
  EXPECT_EQ(d.push(there), " there");
  EXPECT_EQ(d.push(1), "");  // <s>: the text after a special starts again
  EXPECT_EQ(d.push(hi), "Hi");
  // Bytes of one character over byte-fallback tokens.
  EXPECT_EQ(d.push(k_byte0 + 0xE2), "");
  EXPECT_EQ(d.push(k_byte0 + 0x82), "");
  EXPECT_EQ(d.push(k_byte0 + 0xAC), "\xE2\x82\xAC");
}

// ---- pre-tokenizers ----

TEST(PreTokenizer, SplitsLikeLlamaCpp) {
  struct split_case {
    const char* pre;
    std::string text;
    std::vector<std::string> pieces;
  };
  // Expected pieces: llama.cpp's regexes for each pre-tokenizer run as llama.cpp runs them.
  const std::vector<split_case> cases = {
      {"gpt-2", "Hello world's  \tend  ",
       {"Hello", " world", "'s", "  ", "\t", "end", "  "}},
      {"gpt-2", "x\t\ty 'll 123abc!!",
       {"x", "\t", "\t", "y", " '", "ll", " 123", "abc", "!!"}},
      {"default", "a+b=c; 12345 ok...",
       {"a", "+", "b", "=", "c", ";", " ", "123", "45", " ok", "..."}},
      {"falcon", "ab`c 1234567",
       {"ab", "`", "c", " ", "123", "456", "7"}},
      {"starcoder", "var x1 = 2024;",
       {"var", " x", "1", " =", " ", "2", "0", "2", "4", ";"}},
      {"llama-bpe", "I'M here?hello 1234567\r\n\n  x",
       {"I", "'M", " here", "?hello", " ", "123", "456", "7", "\r\n\n", " ", " x"}},
      {"llama-bpe", "na\xc3\xafve \xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd9\xa3\xd9\xa3\xd9\xa3\xd9\xa3 \xf0\x9f\x98\x80!\n",
       {"na\xc3\xafve", " \xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", " ", "\xd9\xa3\xd9\xa3\xd9\xa3", "\xd9\xa3", " \xf0\x9f\x98\x80!\n"}},
      {"qwen2", "abc123 'Ll ..\n\n\t  ",
       {"abc", "1", "2", "3", " '", "Ll", " ..\n\n", "\t  "}},
      {"seed-coder", "a..\n\nb",
       {"a", "..", "\n\n", "b"}},
      {"qwen35", "e\xcc\x81te\xcc\x81 ok",
       {"e\xcc\x81te\xcc\x81", " ok"}},
      {"minicpm5", "12345678 x99",
       {"123", "456", "78", " x", "99"}},
      {"deepseek-coder", "def f(x):\n    return 42 # \xe6\xb3\xa8\xe9\x87\x8a",
       {"def", " f", "(", "x", "):", "\n", "   ", " return", " ", "4", "2", " #", " ", "\xe6\xb3\xa8\xe9\x87\x8a"}},
      {"deepseek-llm", "Hello, \xe4\xb8\x96\xe7\x95\x8c! 123 \xce\xa3\xce\xa9 ab  ",
       {"Hello", ",", " ", "\xe4\xb8\x96\xe7\x95\x8c", "!", " ", "123", " \xce\xa3\xce\xa9", " ab", "  "}},
      {"deepseek-v3", "x~~y .abc 12345 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88",
       {"x", "~", "~y", " .", "abc", " ", "123", "45", " ", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88"}},
      {"gpt-4o", "HelloWORLDFoo \xc3\xa9" "A \xc3\x89T\xc3\x89 don'T 12345",
       {"Hello", "WORLDFoo", " \xc3\xa9", "A", " \xc3\x89T\xc3\x89", " don'T", " ", "123", "45"}},
      {"tekken", "CamelCase ABc 12 x/\n/",
       {"Camel", "Case", " ABc", " ", "1", "2", " x", "/\n/"}},
      {"poro-chat", "Hei, maailma! (test)",
       {"Hei", ",", " maailma", "! (", "test", ")"}},  // unmatched text between matches is one piece
      {"viking", "abc123 def.",
       {"abc", "1", "2", "3", " def", "."}},
      {"laguna", "a b\n\nc",
       {"a", " b", "\n\n", "c"}},
  };
  std::string normalized;
  std::vector<uint32_t> ends;
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.pre) + ": " + c.text);
    std::string error;
    auto pre = le::pre_tokenizer::create(c.pre, &error);
    ASSERT_TRUE(pre) << error;
    pre->split(c.text, &normalized, &ends);
    std::vector<std::string> pieces;
    uint32_t begin = 0;
    for (const uint32_t end : ends) {
      pieces.push_back(normalized.substr(begin, end - begin));
      begin = end;
    }
    EXPECT_EQ(normalized, c.text);
    EXPECT_EQ(pieces, c.pieces);
  }
  std::string error;
  EXPECT_FALSE(le::pre_tokenizer::create("no-such-pre", &error));
  EXPECT_NE(error.find("no-such-pre"), std::string::npos);
}

}  // namespace
