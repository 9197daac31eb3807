// Tokenizers against llama.cpp's reference tokenizations (shared/data/engine): every case of the
// vocab/ test files (test-tokenizer-0 format: add_special and parse_special off), decoding back to
// the input, the tiny models' vocabularies, the real model's prompts, and `tollgate tokenize`.
#include "local_engine/tokenizer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "local_engine/gguf.h"
#include "tests/support/process.h"
#include "tests/support/test_env.h"

namespace {

namespace fs = std::filesystem;
namespace le = gw::local_engine;

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct loaded {
  std::unique_ptr<le::gguf_file> file;
  std::unique_ptr<le::tokenizer> tok;
};

loaded load(const fs::path& p) {
  loaded l;
  std::string error;
  l.file = le::gguf_file::open(p.string(), &error);
  if (!l.file) {
    ADD_FAILURE() << error;
    return l;
  }
  l.tok = le::tokenizer::from_gguf(*l.file, &error);
  if (!l.tok) ADD_FAILURE() << error;
  return l;
}

// The inputs of a .inp file, split as llama.cpp's tests/test-tokenizer-0.cpp does.
std::vector<std::string> split_inputs(const std::string& raw) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < raw.size()) {
    const size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      out.push_back(raw.substr(pos));
      break;
    }
    out.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  return out;
}

std::vector<int32_t> parse_ids(const std::string& line) {
  std::vector<int32_t> ids;
  std::istringstream in(line);
  for (int64_t v; in >> v;) ids.push_back(static_cast<int32_t>(v));
  return ids;
}

std::vector<fs::path> vocab_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("ggml-vocab-", 0) == 0 && e.path().extension() == ".gguf" &&
        fs::exists(e.path().string() + ".inp") && fs::exists(e.path().string() + ".out")) {
      files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(TokenizerRef, EveryVocabCaseMatchesLlamaCppAndDecodesBack) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const auto files = vocab_files(shared / "data" / "engine" / "vocab");
  ASSERT_EQ(files.size(), 7u) << "expected the 7 vocab files of shared/data/engine/vocab";
  size_t cases = 0, round_trips = 0;
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.filename().string());
    const loaded l = load(file);
    ASSERT_TRUE(l.tok);
    const auto inputs = split_inputs(read_all(file.string() + ".inp"));
    std::vector<std::string> lines;
    std::istringstream out(read_all(file.string() + ".out"));
    for (std::string line; std::getline(out, line);) lines.push_back(line);
    ASSERT_EQ(inputs.size(), lines.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      SCOPED_TRACE("case " + std::to_string(i) + ": \"" + inputs[i].substr(0, 40) + "\"");
      const std::vector<int32_t> ids = l.tok->encode(inputs[i], false, false);
      EXPECT_EQ(ids, parse_ids(lines[i]));
      ++cases;
      // Every reference text is representable in these vocabularies, so decoding restores it.
      EXPECT_EQ(l.tok->decode(ids, false), inputs[i]);
      round_trips += l.tok->decode(ids, false) == inputs[i];
    }
  }
  EXPECT_EQ(cases, 322u);
  EXPECT_EQ(round_trips, 322u);
}

TEST(TokenizerRef, VocabularyFacts) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const fs::path dir = shared / "data" / "engine" / "vocab";
  {
    const loaded l = load(dir / "ggml-vocab-llama-spm.gguf");
    ASSERT_TRUE(l.tok);
    EXPECT_EQ(l.tok->type(), le::tokenizer::kind::spm);
    EXPECT_EQ(l.tok->n_vocab(), 32000);
    EXPECT_EQ(l.tok->bos(), 1);
    EXPECT_EQ(l.tok->eos(), 2);
    EXPECT_TRUE(l.tok->add_bos());
    EXPECT_FALSE(l.tok->add_eos());
    EXPECT_TRUE(l.tok->is_eog(2));
    EXPECT_FALSE(l.tok->is_eog(1));
  }
  {
    const loaded l = load(dir / "ggml-vocab-llama-bpe.gguf");
    ASSERT_TRUE(l.tok);
    EXPECT_EQ(l.tok->type(), le::tokenizer::kind::bpe);
    EXPECT_EQ(l.tok->bos(), 128000);
    EXPECT_EQ(l.tok->eos(), 128001);
    EXPECT_EQ(l.tok->eot(), 128009);  // <|eot_id|>
    EXPECT_TRUE(l.tok->add_bos());
    for (int32_t id : {128001, 128009}) EXPECT_TRUE(l.tok->is_eog(id)) << id;
    EXPECT_FALSE(l.tok->is_eog(128006));  // <|start_header_id|>
    EXPECT_EQ(l.tok->encode("Hi", true, false), (std::vector<int32_t>{128000, 13347}));
  }
  {
    const loaded l = load(dir / "ggml-vocab-qwen2.gguf");
    ASSERT_TRUE(l.tok);
    EXPECT_FALSE(l.tok->add_bos());
    EXPECT_EQ(l.tok->eos(), 151645);
    EXPECT_EQ(l.tok->eot(), 151645);  // <|im_end|>
    for (int32_t id : {151643, 151645, 151662, 151663, 151664}) EXPECT_TRUE(l.tok->is_eog(id)) << id;
    EXPECT_FALSE(l.tok->is_eog(151644));  // <|im_start|>
    // Parsing special text: <|im_start|> becomes one id; without parsing it is ordinary text.
    const auto parsed = l.tok->encode("<|im_start|>user\nHi<|im_end|>", false, true);
    ASSERT_GE(parsed.size(), 3u);
    EXPECT_EQ(parsed.front(), 151644);
    EXPECT_EQ(parsed.back(), 151645);
    EXPECT_EQ(l.tok->decode(parsed, true), "<|im_start|>user\nHi<|im_end|>");
    EXPECT_EQ(l.tok->decode(parsed, false), "user\nHi");
    const auto plain = l.tok->encode("<|im_start|>", false, false);
    EXPECT_GT(plain.size(), 1u);
    EXPECT_EQ(std::count(plain.begin(), plain.end(), 151644), 0);
    // User-defined tokens (<think>) are cut out of the text even when specials are not parsed.
    EXPECT_EQ(l.tok->encode("<think>", false, false), (std::vector<int32_t>{151667}));
  }
  {
    const loaded l = load(dir / "ggml-vocab-phi-3.gguf");
    ASSERT_TRUE(l.tok);
    EXPECT_EQ(l.tok->eos(), 32000);
    for (int32_t id : {32000, 32007}) EXPECT_TRUE(l.tok->is_eog(id)) << id;  // <|endoftext|>, <|end|>
    // Phi-3 specials swallow the whitespace after them (llama.cpp's rstrip for this model).
    const auto with_space = l.tok->encode("<|user|>\nHi", false, true);
    const auto without = l.tok->encode("<|user|>Hi", false, true);
    EXPECT_EQ(with_space, without);
  }
}

TEST(TokenizerRef, TinyModelVocabularies) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const fs::path dir = shared / "data" / "engine" / "models";
  {
    const loaded l = load(dir / "tiny-llama.F32.gguf");
    ASSERT_TRUE(l.tok);
    EXPECT_EQ(l.tok->n_vocab(), 512);
    EXPECT_EQ(l.tok->bos(), 1);
    EXPECT_EQ(l.tok->eos(), 2);
    // No lone U+2581 piece: the space added in front of "\n" falls back to the bytes of U+2581.
    EXPECT_EQ(l.tok->encode("\n", false, false), (std::vector<int32_t>{3 + 0xE2, 3 + 0x96, 3 + 0x81, 3 + '\n'}));
  }
  {
    const loaded l = load(dir / "tiny-llama3.F32.gguf");
    ASSERT_TRUE(l.tok);
    EXPECT_EQ(l.tok->n_vocab(), 517);
    EXPECT_EQ(l.tok->bos(), 512);
    EXPECT_EQ(l.tok->eos(), 513);
    EXPECT_EQ(l.tok->find_token("<|eot_id|>"), 516);
    EXPECT_TRUE(l.tok->is_eog(516));
    const std::string text = "Hello, world! 12345";
    EXPECT_EQ(l.tok->decode(l.tok->encode(text, false, false), false), text);
  }
  {
    const loaded l = load(dir / "tiny-qwen2.F32.gguf");
    ASSERT_TRUE(l.tok);
    EXPECT_EQ(l.tok->n_vocab(), 538);
    EXPECT_EQ(l.tok->bos(), 512);
    EXPECT_EQ(l.tok->eos(), 514);
    EXPECT_FALSE(l.tok->add_bos());
    EXPECT_TRUE(l.tok->is_eog(514));
  }
}

// stories15M's prompts: llama.cpp's tokenization with its Llama-2 vocabulary (the llama-spm file
// holds the same vocabulary and scores), BOS added.
TEST(TokenizerRef, RealModelPromptsMatch) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const auto manifest = nlohmann::json::parse(read_all(shared / "data" / "engine" / "real" / "manifest.json"));
  const loaded l = load(shared / "data" / "engine" / "vocab" / "ggml-vocab-llama-spm.gguf");
  ASSERT_TRUE(l.tok);
  size_t checked = 0;
  for (const auto& model : manifest.at("models")) {
    for (const auto& prompt : model.at("prompts")) {
      if (!prompt.contains("text")) continue;
      const std::string text = prompt.at("text");
      EXPECT_EQ(l.tok->encode(text, true, false), prompt.at("tokens").get<std::vector<int32_t>>()) << text;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0u);
}

// The command the reference checker runs: raw stdin bytes in, a JSON array out.
TEST(TokenizerRef, TokenizeCommand) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const fs::path vocab = shared / "data" / "engine" / "vocab" / "ggml-vocab-llama-bpe.gguf";
  gw::test::temp_dir tmp("tokenize-cli");
  const fs::path input = tmp.path / "input.txt";
  {
    std::ofstream f(input, std::ios::binary);
    f << "Hello world\n\n";  // trailing newlines are part of the text
  }
  auto run = [&](const std::string& flags) {
    const std::string cmd = std::string(TOLLGATE_BIN) + " tokenize --model '" + vocab.string() + "' " + flags +
                            " < '" + input.string() + "'";
    return gw::test::run_process("/bin/sh", {"-c", cmd}, tmp.path);
  };
  const loaded l = load(vocab);
  ASSERT_TRUE(l.tok);
  const auto plain = l.tok->encode("Hello world\n\n", false, false);

  const auto no_bos = run("--no-bos");
  ASSERT_EQ(no_bos.code, 0) << no_bos.err;
  EXPECT_EQ(nlohmann::json::parse(no_bos.out).get<std::vector<int32_t>>(), plain);

  const auto with_bos = run("");
  ASSERT_EQ(with_bos.code, 0) << with_bos.err;
  auto expected = plain;
  expected.insert(expected.begin(), 128000);
  EXPECT_EQ(nlohmann::json::parse(with_bos.out).get<std::vector<int32_t>>(), expected);

  const auto missing = gw::test::run_process(
      TOLLGATE_BIN, {"tokenize", "--model", (tmp.path / "nope.gguf").string()}, tmp.path);
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.err.find("nope.gguf"), std::string::npos) << missing.err;
}

}  // namespace
