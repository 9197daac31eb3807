// generate-model and quantize: generated files load as models with their tokenizer, carry the
// requested shapes and per-tensor types (llama-quantize's rules), are deterministic (seed, thread
// count), and every quantized weight is within its type's error bound of the same model in F32;
// quantize F32 -> T gives exactly the tensors generate-model writes for T.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "local_engine/gguf.h"
#include "local_engine/model.h"
#include "local_engine/model_writer.h"
#include "local_engine/tokenizer.h"
#include "tests/kernels/quant_error_bounds.h"
#include "tests/support/process.h"
#include "tests/support/test_env.h"

namespace gw::local_engine {
namespace {

using kernels::dtype;

const char* const all_types[] = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q6_K", "Q4_K_M"};

// A small llama-3.2-shaped model: every K-type row fits 256, two layers, GQA, rope factors.
model_spec small_spec() {
  model_spec s = *model_preset("llama-3.2-1b");
  s.n_embd = 256, s.n_layer = 2, s.n_head = 4, s.n_head_kv = 2, s.n_ff = 512, s.n_vocab = 600, s.n_ctx = 512;
  return s;
}

std::string generate(const test::temp_dir& dir, const model_spec& spec, const std::string& type, uint64_t seed = 7,
                     int threads = 2, const std::string& tag = "") {
  const std::string path = (dir.path / (type + tag + ".gguf")).string();
  std::string error;
  EXPECT_TRUE(generate_model({spec, *parse_file_type(type), seed, threads}, path, &error)) << error;
  return path;
}

std::unique_ptr<gguf_file> open(const std::string& path) {
  std::string error;
  auto f = gguf_file::open(path, &error);
  EXPECT_TRUE(f) << error;
  return f;
}

std::vector<float> dequantized(const gguf_tensor_info& t) {
  std::vector<float> out(static_cast<size_t>(t.n_elements()));
  const int64_t cols = t.ne[0], rows = t.n_elements() / cols;
  for (int64_t r = 0; r < rows; ++r) {
    kernels::dequantize_row(t.type, t.data + kernels::row_bytes(t.type, cols) * static_cast<size_t>(r),
                            out.data() + r * cols, cols);
  }
  return out;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(ModelWriter, PresetsAndFileTypes) {
  for (const std::string& name : model_preset_names()) EXPECT_TRUE(model_preset(name)) << name;
  EXPECT_FALSE(model_preset("gpt-5"));
  const auto q = model_preset("qwen2.5-0.5b");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->arch, "qwen2");
  EXPECT_EQ(q->n_embd, 896);
  EXPECT_EQ(q->n_vocab, 151936);
  EXPECT_EQ(model_preset("llama-3.2-1b")->rope_base, 500000.0f);
  EXPECT_EQ(parse_file_type("q4_k_m")->ftype, 15u);
  EXPECT_TRUE(parse_file_type("Q4_K_M")->q4_k_m);
  EXPECT_EQ(parse_file_type("bf16")->base, dtype::BF16);
  EXPECT_FALSE(parse_file_type("Q5_0"));
}

TEST(ModelWriter, TensorTypesFollowLlamaQuantize) {
  const file_type q4km = *parse_file_type("Q4_K_M"), q40 = *parse_file_type("Q4_0"), q80 = *parse_file_type("Q8_0");
  const std::vector<int64_t> m{256, 512}, v{256};
  EXPECT_EQ(tensor_type_for(q4km, "blk.0.attn_q.weight", m, false, 2), dtype::Q4_K);
  EXPECT_EQ(tensor_type_for(q4km, "blk.0.attn_v.weight", m, false, 2), dtype::Q4_K);
  EXPECT_EQ(tensor_type_for(q4km, "blk.1.attn_v.weight", m, false, 2), dtype::Q6_K);
  EXPECT_EQ(tensor_type_for(q4km, "blk.1.ffn_down.weight", m, false, 2), dtype::Q6_K);
  EXPECT_EQ(tensor_type_for(q4km, "blk.0.attn_norm.weight", v, false, 2), dtype::F32);
  EXPECT_EQ(tensor_type_for(q4km, "token_embd.weight", m, true, 2), dtype::Q6_K);
  EXPECT_EQ(tensor_type_for(q4km, "token_embd.weight", m, false, 2), dtype::Q4_K);
  EXPECT_EQ(tensor_type_for(q40, "output.weight", m, true, 2), dtype::Q6_K);
  EXPECT_EQ(tensor_type_for(q80, "output.weight", m, true, 2), dtype::Q8_0);
  // 32 layers: llama.cpp's use_more_bits picks 0-3, 28-31 and every third in between.
  int more = 0;
  for (int l = 0; l < 32; ++l) {
    more += tensor_type_for(q4km, "blk." + std::to_string(l) + ".ffn_down.weight", m, false, 32) == dtype::Q6_K;
  }
  EXPECT_EQ(more, 16);
  // Rows that do not fit 256 fall back.
  const std::vector<int64_t> narrow{896, 128};
  EXPECT_EQ(tensor_type_for(q4km, "blk.0.attn_q.weight", narrow, false, 24), dtype::Q4_0);
  EXPECT_EQ(tensor_type_for(*parse_file_type("Q6_K"), "blk.0.attn_q.weight", narrow, false, 24), dtype::Q8_0);
  EXPECT_EQ(tensor_type_for(q4km, "output.weight", narrow, true, 24), dtype::Q8_0);
  EXPECT_EQ(tensor_type_for(q40, "blk.0.attn_q.weight", std::vector<int64_t>{48, 4}, false, 24), dtype::F16);
}

TEST(ModelWriter, GeneratedModelsLoadWithShapesTypesAndTokenizer) {
  test::temp_dir dir("model-writer");
  const model_spec spec = small_spec();
  for (const char* type : all_types) {
    SCOPED_TRACE(type);
    const std::string path = generate(dir, spec, type);
    std::string error;
    auto m = model::load(path, &error);
    ASSERT_TRUE(m) << error;
    EXPECT_EQ(m->hp().n_embd, 256);
    EXPECT_EQ(m->hp().n_layer, 2);
    EXPECT_EQ(m->hp().n_head_kv, 2);
    EXPECT_EQ(m->hp().n_vocab, 600);
    EXPECT_TRUE(m->hp().tied_output);
    EXPECT_NE(m->rope_freq_factors(), nullptr);
    auto tok = tokenizer::from_gguf(m->file(), &error);
    ASSERT_TRUE(tok) << error;
    EXPECT_FALSE(tok->encode("hello there", false, false).empty());
    const file_type ft = *parse_file_type(type);
    EXPECT_EQ(m->file().get_int("general.file_type"), static_cast<int64_t>(ft.ftype));
    for (const auto& t : m->file().tensors()) {
      EXPECT_EQ(t.type, tensor_type_for(ft, t.name, t.ne, t.name == "token_embd.weight", 2)) << t.name;
    }
  }
}

TEST(ModelWriter, WeightsAreSeededNormalAndThreadIndependent) {
  test::temp_dir dir("model-writer-seed");
  const model_spec spec = small_spec();
  const std::string a = generate(dir, spec, "F32", 7, 1, "-a");
  const std::string b = generate(dir, spec, "F32", 7, 3, "-b");
  const std::string c = generate(dir, spec, "F32", 8, 2, "-c");
  EXPECT_EQ(file_bytes(a), file_bytes(b));
  EXPECT_NE(file_bytes(a), file_bytes(c));
  auto f = open(a);
  ASSERT_TRUE(f);
  const auto w = dequantized(*f->find_tensor("blk.1.ffn_up.weight"));
  double sum = 0, sum2 = 0;
  for (float v : w) {
    sum += v;
    sum2 += static_cast<double>(v) * v;
  }
  const double n = static_cast<double>(w.size());
  EXPECT_NEAR(sum / n, 0.0, 0.001);
  EXPECT_NEAR(std::sqrt(sum2 / n), 0.02, 0.0005);
  for (float v : dequantized(*f->find_tensor("blk.0.attn_norm.weight"))) ASSERT_EQ(v, 1.0f);
}

TEST(ModelWriter, QuantizedWeightsAreWithinErrorBoundsOfF32) {
  test::temp_dir dir("model-writer-bounds");
  const model_spec spec = small_spec();
  auto f32 = open(generate(dir, spec, "F32"));
  ASSERT_TRUE(f32);
  for (const char* type : all_types) {
    SCOPED_TRACE(type);
    auto q = open(generate(dir, spec, type));
    ASSERT_TRUE(q);
    for (const auto& t : q->tensors()) {
      const auto* src = f32->find_tensor(t.name);
      ASSERT_NE(src, nullptr) << t.name;
      const auto want = dequantized(*src);
      const auto got = dequantized(t);
      ASSERT_EQ(want.size(), got.size());
      const auto bound = kernels::test::error_bounds(t.type, want.data(), static_cast<int64_t>(want.size()));
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_LE(std::fabs(static_cast<double>(got[i]) - want[i]), bound[i]) << t.name << " element " << i;
      }
    }
  }
}

TEST(ModelWriter, QuantizeF32MatchesGeneratedTypeAndCopiesMetadata) {
  test::temp_dir dir("model-writer-quantize");
  model_spec spec = small_spec();
  spec.arch = "qwen2";  // biases, too
  spec.vocab = "qwen2";
  spec.llama3_rope_factors = false;
  spec.tied = false;
  const std::string f32_path = generate(dir, spec, "F32");
  auto f32 = open(f32_path);
  ASSERT_TRUE(f32);
  for (const char* type : all_types) {
    SCOPED_TRACE(type);
    const std::string out = (dir.path / (std::string("quantized-") + type + ".gguf")).string();
    std::string error;
    ASSERT_TRUE(quantize_model(f32_path, out, *parse_file_type(type), 2, &error)) << error;
    auto q = open(out);
    auto g = open(generate(dir, spec, type));
    ASSERT_TRUE(q && g);
    ASSERT_EQ(q->tensors().size(), g->tensors().size());
    for (const auto& t : g->tensors()) {
      const auto* mine = q->find_tensor(t.name);
      ASSERT_NE(mine, nullptr) << t.name;
      EXPECT_EQ(mine->type, t.type) << t.name;
      ASSERT_EQ(mine->n_bytes, t.n_bytes) << t.name;
      EXPECT_EQ(std::memcmp(mine->data, t.data, t.n_bytes), 0) << t.name;
    }
    // Metadata: everything of the source, with the new file type.
    for (std::string_view key : f32->keys()) EXPECT_TRUE(q->has(key)) << key;
    EXPECT_EQ(q->get_int("general.file_type"), static_cast<int64_t>(parse_file_type(type)->ftype));
    EXPECT_EQ(q->get_string("tokenizer.ggml.pre"), std::optional<std::string_view>("qwen2"));
    EXPECT_EQ(q->get_string_array("tokenizer.ggml.merges")->size(), f32->get_string_array("tokenizer.ggml.merges")->size());
    EXPECT_EQ(q->get_int_array("tokenizer.ggml.token_type"), f32->get_int_array("tokenizer.ggml.token_type"));
    EXPECT_EQ(q->get_float("qwen2.attention.layer_norm_rms_epsilon"), f32->get_float("qwen2.attention.layer_norm_rms_epsilon"));
    std::string load_error;
    EXPECT_TRUE(model::load(out, &load_error)) << load_error;
  }
}

TEST(ModelWriter, RequantizingKeepsTensorsAlreadyOfTheTargetType) {
  test::temp_dir dir("model-writer-requant");
  const std::string q4 = generate(dir, small_spec(), "Q4_K_M");
  const std::string again = (dir.path / "again.gguf").string();
  std::string error;
  ASSERT_TRUE(quantize_model(q4, again, *parse_file_type("Q4_K_M"), 1, &error)) << error;
  auto a = open(q4), b = open(again);
  ASSERT_TRUE(a && b);
  for (const auto& t : a->tensors()) {
    const auto* u = b->find_tensor(t.name);
    ASSERT_NE(u, nullptr);
    ASSERT_EQ(u->n_bytes, t.n_bytes);
    EXPECT_EQ(std::memcmp(u->data, t.data, t.n_bytes), 0) << t.name;
  }
}

TEST(ModelWriter, ErrorsNameTheFileAndProblem) {
  test::temp_dir dir("model-writer-errors");
  std::string error;
  EXPECT_FALSE(quantize_model((dir.path / "missing.gguf").string(), (dir.path / "out.gguf").string(),
                              *parse_file_type("Q8_0"), 1, &error));
  EXPECT_NE(error.find("missing.gguf"), std::string::npos) << error;
  model_spec bad = small_spec();
  bad.n_head = 3;  // 256 is not a multiple of 3
  error.clear();
  EXPECT_FALSE(generate_model({bad, *parse_file_type("F32"), 1, 1}, (dir.path / "bad.gguf").string(), &error));
  EXPECT_NE(error.find("n_head"), std::string::npos) << error;
  EXPECT_FALSE(std::filesystem::exists(dir.path / "bad.gguf"));
}

TEST(ModelWriter, CommandLine) {
  test::temp_dir dir("model-writer-cli");
  const std::string f32 = (dir.path / "s.gguf").string(), q = (dir.path / "s.q4.gguf").string();
  for (const char* sub : {"gen", "quant", "bad-type", "bad-preset"}) std::filesystem::create_directories(dir.path / sub);
  auto r = test::run_process(TOLLGATE_BIN,
                             {"generate-model", "--preset", "stories15m", "--type", "F32", "--out", f32, "--n-layer", "1",
                              "--n-vocab", "400", "--seed", "3"},
                             dir.path / "gen");
  ASSERT_EQ(r.code, 0) << r.err;
  r = test::run_process(TOLLGATE_BIN, {"quantize", f32, q, "Q4_K_M"}, dir.path / "quant");
  ASSERT_EQ(r.code, 0) << r.err;
  std::string error;
  auto m = model::load(q, &error);
  ASSERT_TRUE(m) << error;
  EXPECT_EQ(m->hp().n_embd, 288);
  EXPECT_EQ(m->hp().n_layer, 1);
  EXPECT_EQ(m->hp().n_vocab, 400);
  // 288-wide rows do not fit 256: Q4_K falls back to Q4_0, the output matrix to Q8_0.
  EXPECT_EQ(m->file().find_tensor("blk.0.attn_q.weight")->type, dtype::Q4_0);
  EXPECT_EQ(m->file().find_tensor("token_embd.weight")->type, dtype::Q8_0);
  r = test::run_process(TOLLGATE_BIN, {"quantize", f32, q, "Q5_1"}, dir.path / "bad-type");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("Q5_1"), std::string::npos) << r.err;
  r = test::run_process(TOLLGATE_BIN, {"generate-model", "--preset", "nope", "--out", f32}, dir.path / "bad-preset");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("smollm2-135m"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace gw::local_engine
