// llama2.c -> GGUF conversion: a synthetic checkpoint (every tensor traced back to its place in the
// checkpoint, tied and untied, two files and one bundle), bad inputs, and the real stories15M from
// the cache (TOLLGATE_MODEL_DIR, default ~/.cache/tollgate/models) checked against
// shared/data/engine/real/manifest.json.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "local_engine/gguf.h"
#include "local_engine/llama2c.h"
#include "tests/support/test_env.h"

namespace gw::local_engine {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const fs::path& p, const std::vector<uint8_t>& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

// A tiny checkpoint: dim 8, hidden 16, 2 layers, 2 heads / 1 kv head, 262 tokens, seq_len 4. Float
// number i after the header holds the value i, so every tensor's first value names its position.
struct tiny_model {
  static constexpr int32_t dim = 8, hidden = 16, layers = 2, heads = 2, kv_heads = 1, vocab = 262, seq = 4;
  static constexpr int32_t kv_dim = dim / heads * kv_heads;
  bool tied = true;

  // Float offsets of the arrays, in file order.
  int64_t token_embd() const { return 0; }
  int64_t attn_norm() const { return token_embd() + int64_t{vocab} * dim; }
  int64_t wq() const { return attn_norm() + layers * dim; }
  int64_t wk() const { return wq() + layers * dim * dim; }
  int64_t wv() const { return wk() + layers * kv_dim * dim; }
  int64_t wo() const { return wv() + layers * kv_dim * dim; }
  int64_t ffn_norm() const { return wo() + layers * dim * dim; }
  int64_t w1() const { return ffn_norm() + layers * dim; }
  int64_t w2() const { return w1() + layers * hidden * dim; }
  int64_t w3() const { return w2() + layers * dim * hidden; }
  int64_t output_norm() const { return w3() + layers * hidden * dim; }
  int64_t rope() const { return output_norm() + dim; }
  int64_t output() const { return rope() + seq * (dim / heads / 2) * 2; }
  int64_t n_floats() const { return output() + (tied ? 0 : int64_t{vocab} * dim); }

  std::vector<uint8_t> model_bin() const {
    std::vector<uint8_t> b;
    for (int32_t v : {dim, hidden, layers, heads, kv_heads, tied ? vocab : -vocab, seq}) put<int32_t>(b, v);
    for (int64_t i = 0; i < n_floats(); ++i) put<float>(b, static_cast<float>(i));
    return b;
  }

  // llama2.c's export: <unk>, "\n<s>\n", "\n</s>\n", the 256 raw bytes, then three pieces.
  static std::vector<uint8_t> tokenizer_bin() {
    std::vector<uint8_t> b;
    put<int32_t>(b, 6);
    auto token = [&](float score, const std::string& text) {
      put<float>(b, score);
      put<int32_t>(b, static_cast<int32_t>(text.size()));
      b.insert(b.end(), text.begin(), text.end());
    };
    token(0, "<unk>");
    token(0, "\n<s>\n");
    token(0, "\n</s>\n");
    for (int i = 0; i < 256; ++i) token(0, std::string(1, static_cast<char>(i)));
    token(-1, " the");
    token(-2, "ab");
    token(-3.5f, "c d ");
    return b;
  }
};

float first_value(const gguf_tensor_info* t) {
  float v = -1;
  std::memcpy(&v, t->data, sizeof(v));
  return v;
}

void check_tiny(const gguf_file& f, const tiny_model& m) {
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.context_length"), tiny_model::seq);
  EXPECT_EQ(f.get_int("llama.embedding_length"), tiny_model::dim);
  EXPECT_EQ(f.get_int("llama.block_count"), tiny_model::layers);
  EXPECT_EQ(f.get_int("llama.feed_forward_length"), tiny_model::hidden);
  EXPECT_EQ(f.get_int("llama.attention.head_count"), tiny_model::heads);
  EXPECT_EQ(f.get_int("llama.attention.head_count_kv"), tiny_model::kv_heads);
  EXPECT_EQ(f.get_int("llama.rope.dimension_count"), tiny_model::dim / tiny_model::heads);
  EXPECT_EQ(f.get_float("llama.attention.layer_norm_rms_epsilon"), static_cast<double>(1e-5f));
  EXPECT_EQ(f.get_float("llama.rope.freq_base"), 10000.0);

  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
  const auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.has_value());
  ASSERT_EQ(tokens->size(), size_t{tiny_model::vocab});
  EXPECT_EQ((*tokens)[0], "<unk>");
  EXPECT_EQ((*tokens)[1], "<s>");
  EXPECT_EQ((*tokens)[2], "</s>");
  EXPECT_EQ((*tokens)[3], "<0x00>");
  EXPECT_EQ((*tokens)[3 + 0x0A], "<0x0A>");
  EXPECT_EQ((*tokens)[258], "<0xFF>");
  EXPECT_EQ((*tokens)[259], "\xe2\x96\x81the");
  EXPECT_EQ((*tokens)[260], "ab");
  EXPECT_EQ((*tokens)[261], "c\xe2\x96\x81" "d\xe2\x96\x81");
  const auto types = f.get_int_array("tokenizer.ggml.token_type");
  ASSERT_TRUE(types.has_value());
  EXPECT_EQ((*types)[0], 2);
  EXPECT_EQ((*types)[1], 3);
  EXPECT_EQ((*types)[2], 3);
  EXPECT_EQ((*types)[3], 6);
  EXPECT_EQ((*types)[258], 6);
  EXPECT_EQ((*types)[259], 1);
  EXPECT_EQ((*types)[261], 1);
  const auto scores = f.get_float_array("tokenizer.ggml.scores");
  ASSERT_TRUE(scores.has_value());
  EXPECT_EQ((*scores)[0], 0.f);
  EXPECT_EQ((*scores)[259], -1.f);
  EXPECT_EQ((*scores)[261], -3.5f);
  EXPECT_EQ(f.get_int("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(f.get_int("tokenizer.ggml.eos_token_id"), 2);
  EXPECT_EQ(f.get_int("tokenizer.ggml.unknown_token_id"), 0);
  EXPECT_EQ(f.get_bool("tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(f.get_bool("tokenizer.ggml.add_eos_token"), false);

  EXPECT_EQ(f.tensors().size(), size_t{3 + 9 * tiny_model::layers} - (m.tied ? 1 : 0));
  struct want { std::string name; std::vector<int64_t> ne; int64_t first; };
  const int64_t d = tiny_model::dim, h = tiny_model::hidden, kv = tiny_model::kv_dim, v = tiny_model::vocab;
  std::vector<want> wants = {{"token_embd.weight", {d, v}, m.token_embd()},
                             {"output_norm.weight", {d}, m.output_norm()}};
  if (!m.tied) wants.push_back({"output.weight", {d, v}, m.output()});
  for (int64_t l = 0; l < tiny_model::layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    wants.push_back({p + "attn_norm.weight", {d}, m.attn_norm() + l * d});
    wants.push_back({p + "attn_q.weight", {d, d}, m.wq() + l * d * d});
    wants.push_back({p + "attn_k.weight", {d, kv}, m.wk() + l * kv * d});
    wants.push_back({p + "attn_v.weight", {d, kv}, m.wv() + l * kv * d});
    wants.push_back({p + "attn_output.weight", {d, d}, m.wo() + l * d * d});
    wants.push_back({p + "ffn_norm.weight", {d}, m.ffn_norm() + l * d});
    wants.push_back({p + "ffn_gate.weight", {d, h}, m.w1() + l * h * d});
    wants.push_back({p + "ffn_down.weight", {h, d}, m.w2() + l * d * h});
    wants.push_back({p + "ffn_up.weight", {d, h}, m.w3() + l * h * d});
  }
  for (const want& w : wants) {
    const gguf_tensor_info* t = f.find_tensor(w.name);
    ASSERT_NE(t, nullptr) << w.name;
    EXPECT_EQ(t->type, kernels::dtype::F32) << w.name;
    EXPECT_EQ(t->ne, w.ne) << w.name;
    EXPECT_EQ(first_value(t), static_cast<float>(w.first)) << w.name;
    // Contiguous: the last value is first + count - 1.
    float last = 0;
    std::memcpy(&last, t->data + t->n_bytes - 4, 4);
    EXPECT_EQ(last, static_cast<float>(w.first + t->n_elements() - 1)) << w.name;
  }
  if (m.tied) {
    EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
  }
}

TEST(Llama2cTest, ConvertsATinyTiedCheckpoint) {
  gw::test::temp_dir dir("llama2c");
  const tiny_model m;
  write_bytes(dir.path / "model.bin", m.model_bin());
  write_bytes(dir.path / "tokenizer.bin", tiny_model::tokenizer_bin());
  const std::string out = (dir.path / "tiny.gguf").string();
  std::string error;
  ASSERT_TRUE(convert_llama2c((dir.path / "model.bin").string(), (dir.path / "tokenizer.bin").string(), out, &error))
      << error;
  auto f = gguf_file::open(out, &error);
  ASSERT_NE(f, nullptr) << error;
  check_tiny(*f, m);
}

TEST(Llama2cTest, ConvertsAnUntiedCheckpointFromABundle) {
  gw::test::temp_dir dir("llama2c");
  tiny_model m;
  m.tied = false;
  std::vector<uint8_t> bundle = m.model_bin();
  write_bytes(dir.path / "model.bin", bundle);
  const std::vector<uint8_t> tok = tiny_model::tokenizer_bin();
  write_bytes(dir.path / "tokenizer.bin", tok);
  bundle.insert(bundle.end(), tok.begin(), tok.end());
  write_bytes(dir.path / "llama2.data", bundle);

  std::string error;
  const std::string from_bundle = (dir.path / "bundle.gguf").string();
  ASSERT_TRUE(convert_llama2c_bundle((dir.path / "llama2.data").string(), from_bundle, &error)) << error;
  auto f = gguf_file::open(from_bundle, &error);
  ASSERT_NE(f, nullptr) << error;
  check_tiny(*f, m);

  const std::string from_files = (dir.path / "files.gguf").string();
  ASSERT_TRUE(convert_llama2c((dir.path / "model.bin").string(), (dir.path / "tokenizer.bin").string(), from_files,
                              &error))
      << error;
  EXPECT_EQ(read_bytes(from_bundle), read_bytes(from_files));
}

TEST(Llama2cTest, RejectsBadCheckpointsAndTokenizers) {
  gw::test::temp_dir dir("llama2c");
  const tiny_model m;
  const fs::path model = dir.path / "model.bin", tok = dir.path / "tokenizer.bin";
  const std::string out = (dir.path / "out.gguf").string();
  auto convert_error = [&](const std::vector<uint8_t>& model_bytes, const std::vector<uint8_t>& tok_bytes) {
    write_bytes(model, model_bytes);
    write_bytes(tok, tok_bytes);
    std::string error;
    EXPECT_FALSE(convert_llama2c(model.string(), tok.string(), out, &error));
    EXPECT_FALSE(fs::exists(out));
    return error;
  };
  const std::vector<uint8_t> good_model = m.model_bin(), good_tok = tiny_model::tokenizer_bin();
  {
    std::vector<uint8_t> b = good_model;
    b.resize(b.size() - 4);
    const std::string e = convert_error(b, good_tok);
    EXPECT_NE(e.find("model.bin: checkpoint is " + std::to_string(b.size()) +
                     " bytes, its header (2 layers, dim 8, vocab 262, tied) needs " + std::to_string(b.size() + 4)),
              std::string::npos)
        << e;
  }
  {
    std::vector<uint8_t> b = good_model;
    const int32_t three = 3;
    std::memcpy(b.data() + 12, &three, 4);  // n_heads 3 does not divide dim 8
    EXPECT_NE(convert_error(b, good_tok).find("dim 8 is not n_heads 3 times an even head size"), std::string::npos);
  }
  {
    std::vector<uint8_t> b = good_model;
    const int32_t zero = 0;
    std::memcpy(b.data() + 8, &zero, 4);
    EXPECT_NE(convert_error(b, good_tok).find("header n_layers = 0 is out of range"), std::string::npos);
  }
  {
    std::vector<uint8_t> b = good_model;
    const uint32_t magic = 0x616b3432;
    std::memcpy(b.data(), &magic, 4);
    EXPECT_NE(convert_error(b, good_tok).find("export version 16 is not supported"), std::string::npos);
  }
  EXPECT_NE(convert_error({1, 2, 3}, good_tok).find("too small for a llama2.c checkpoint header"), std::string::npos);
  {
    std::vector<uint8_t> t = good_tok;
    t.resize(t.size() - 3);  // the last token's text runs past the end
    const std::string e = convert_error(good_model, t);
    EXPECT_NE(e.find("tokenizer.bin: token 261 length 4 exceeds the bytes left (at byte " +
                     std::to_string(good_tok.size() - 12) + ")"),
              std::string::npos)
        << e;
  }
  {
    std::vector<uint8_t> t = good_tok;
    t.push_back(0);
    EXPECT_NE(convert_error(good_model, t).find("1 bytes after its 262 tokens"), std::string::npos);
  }
  {
    std::vector<uint8_t> t(good_tok.begin(), good_tok.begin() + 100);
    EXPECT_NE(convert_error(good_model, t).find("tokenizer truncated at token"), std::string::npos);
  }
  std::string error;
  EXPECT_FALSE(convert_llama2c((dir.path / "nope.bin").string(), tok.string(), out, &error));
  EXPECT_NE(error.find("nope.bin: cannot open"), std::string::npos) << error;
  // A bundle that is only a checkpoint has no tokenizer part.
  write_bytes(dir.path / "only-model.data", good_model);
  EXPECT_FALSE(convert_llama2c_bundle((dir.path / "only-model.data").string(), out, &error));
  EXPECT_NE(error.find("plus a tokenizer"), std::string::npos) << error;
}

// ---- the real stories15M (from scripts/setup.sh + scripts/models.sh) ----

fs::path model_dir() {
  const char* env = std::getenv("TOLLGATE_MODEL_DIR");
  if (env && *env) return env;
  const char* home = std::getenv("HOME");
  return fs::path(home ? home : "/") / ".cache" / "tollgate" / "models";
}

bool under_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

// SentencePiece decoding: byte tokens to bytes, U+2581 to spaces, control tokens dropped.
std::string decode(const std::vector<std::string_view>& vocab, const std::vector<int>& ids) {
  std::string out;
  for (int id : ids) {
    const std::string_view piece = vocab.at(static_cast<size_t>(id));
    if (id < 3) continue;
    if (id < 259) {
      out += static_cast<char>(std::stoi(std::string(piece.substr(3, 2)), nullptr, 16));
      continue;
    }
    for (size_t i = 0; i < piece.size(); ++i) {
      if (piece.compare(i, 3, "\xe2\x96\x81") == 0) {
        out += ' ';
        i += 2;
      } else {
        out += piece[i];
      }
    }
  }
  return out;
}

void check_stories15m(const gguf_file& f, const fs::path& shared) {
  const nlohmann::json manifest =
      nlohmann::json::parse(std::ifstream(shared / "data" / "engine" / "real" / "manifest.json"));
  const nlohmann::json& entry = manifest["models"][0];
  ASSERT_EQ(entry["file"], "stories15M.F32.gguf");
  EXPECT_EQ(f.get_string("general.architecture"), entry["arch"].get<std::string>());
  EXPECT_EQ(f.get_int("llama.embedding_length"), 288);
  EXPECT_EQ(f.get_int("llama.block_count"), 6);
  EXPECT_EQ(f.get_int("llama.feed_forward_length"), 768);
  EXPECT_EQ(f.get_int("llama.attention.head_count"), 6);
  EXPECT_EQ(f.get_int("llama.attention.head_count_kv"), 6);
  EXPECT_EQ(f.get_int("llama.context_length"), 256);
  EXPECT_EQ(f.get_int("llama.rope.dimension_count"), 48);
  EXPECT_EQ(f.tensors().size(), 2u + 9u * 6u);
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);  // tied
  const int64_t n_vocab = entry["n_vocab"].get<int64_t>();
  ASSERT_NE(f.find_tensor("token_embd.weight"), nullptr);
  EXPECT_EQ(f.find_tensor("token_embd.weight")->ne, (std::vector<int64_t>{288, n_vocab}));
  EXPECT_EQ(f.find_tensor("blk.5.ffn_down.weight")->ne, (std::vector<int64_t>{768, 288}));

  const auto vocab = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(vocab.has_value());
  ASSERT_EQ(static_cast<int64_t>(vocab->size()), n_vocab);
  EXPECT_EQ((*vocab)[1], "<s>");
  EXPECT_EQ((*vocab)[3 + 0x20], "<0x20>");
  EXPECT_EQ((*vocab)[29871], "\xe2\x96\x81");
  EXPECT_EQ(f.get_float_array("tokenizer.ggml.scores")->at(259), -1e9f);
  for (const nlohmann::json& p : entry["prompts"]) {
    const auto ids = p["tokens"].get<std::vector<int>>();
    ASSERT_EQ(ids.front(), 1);
    EXPECT_EQ(decode(*vocab, ids), " " + p["text"].get<std::string>());  // SentencePiece's dummy prefix
  }
  const std::string story = decode(*vocab, entry["prompts"][0]["greedy"].get<std::vector<int>>());
  EXPECT_EQ(story.rfind(", there was a little girl named Lily. She loved to play outside in the sunshine.", 0), 0u)
      << story;
}

TEST(Llama2cTest, CachedStories15MGgufMatchesTheReference) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const fs::path gguf = model_dir() / "stories15M.F32.gguf";
  if (!fs::exists(gguf)) {
    if (under_ci()) FAIL() << gguf << " is missing: run scripts/setup.sh and scripts/models.sh";
    GTEST_SKIP() << gguf << " not found (scripts/setup.sh + scripts/models.sh make it)";
  }
  std::string error;
  auto f = gguf_file::open(gguf.string(), &error);
  ASSERT_NE(f, nullptr) << error;
  check_stories15m(*f, shared);
}

TEST(Llama2cTest, ConvertsTheCachedStories15MBundle) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const fs::path data = model_dir() / "llama2.data";
  if (!fs::exists(data)) {
    if (under_ci()) FAIL() << data << " is missing: run scripts/setup.sh";
    GTEST_SKIP() << data << " not found (scripts/setup.sh fetches it)";
  }
  gw::test::temp_dir dir("llama2c");
  const std::string out = (dir.path / "stories15M.F32.gguf").string();
  std::string error;
  ASSERT_TRUE(convert_llama2c_bundle(data.string(), out, &error)) << error;
  auto f = gguf_file::open(out, &error);
  ASSERT_NE(f, nullptr) << error;
  check_stories15m(*f, shared);
  // The embedding table is the checkpoint's first array, unchanged.
  const std::vector<uint8_t> bytes = read_bytes(data);
  const gguf_tensor_info* emb = f->find_tensor("token_embd.weight");
  ASSERT_GE(bytes.size(), 28 + emb->n_bytes);
  EXPECT_EQ(std::memcmp(emb->data, bytes.data() + 28, emb->n_bytes), 0);
}

}  // namespace
}  // namespace gw::local_engine
