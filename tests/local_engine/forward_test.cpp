// Forward pass and model loading: batching several sequences in one step, chunked prefill and
// prefix-cache reuse give the logits of computing each sequence alone in one pass; a full KV cache
// and bad steps are error values; bad model files give errors naming the tensor or key; the F32
// reference models match llama.cpp's logits to float32 rounding.
#include "local_engine/forward.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "local_engine/gguf.h"
#include "local_engine/model.h"
#include "tests/support/test_env.h"

namespace gw::local_engine {
namespace {

namespace fs = std::filesystem;
using kernels::dtype;

// A small random model written with gguf_writer.
struct synth_spec {
  std::string arch = "llama";
  int64_t n_embd = 64, n_layer = 2, n_head = 4, n_head_kv = 2, n_ff = 96, n_vocab = 80;
  bool tied = false;
  dtype type = dtype::F32;      // of the 2-D weights
  std::string skip;             // a tensor left out
  std::string reshape;          // a tensor written with one row too many
  std::string f16_vector;       // a 1-D tensor written as F16
  std::string drop_key;         // a metadata key left out
};

// Test names and failure messages show the spec as "llama F32".
void PrintTo(const synth_spec& s, std::ostream* os) { *os << s.arch << " " << kernels::dtype_name(s.type); }

std::vector<float> random_floats(int64_t n, float mean, float stddev, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

void write_synth(const fs::path& path, const synth_spec& s) {
  gguf_writer w;
  const std::string a = s.arch + ".";
  auto key_u32 = [&](const std::string& k, uint32_t v) {
    if (k != s.drop_key) w.set_u32(k, v);
  };
  w.set_string("general.architecture", s.arch);
  key_u32(a + "context_length", 256);
  key_u32(a + "embedding_length", static_cast<uint32_t>(s.n_embd));
  key_u32(a + "block_count", static_cast<uint32_t>(s.n_layer));
  key_u32(a + "feed_forward_length", static_cast<uint32_t>(s.n_ff));
  key_u32(a + "attention.head_count", static_cast<uint32_t>(s.n_head));
  key_u32(a + "attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  if (a + "attention.layer_norm_rms_epsilon" != s.drop_key) w.set_f32(a + "attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_f32(a + "rope.freq_base", 10000.0f);

  uint32_t seed = 1;
  auto matrix = [&](const std::string& name, int64_t cols, int64_t rows, float stddev) {
    if (name == s.skip) return;
    if (name == s.reshape) ++rows;
    const auto f = random_floats(cols * rows, 0.0f, stddev, seed++);
    std::vector<uint8_t> bytes(kernels::row_bytes(s.type, cols) * static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      kernels::quantize_row(s.type, f.data() + r * cols, bytes.data() + static_cast<size_t>(r) * kernels::row_bytes(s.type, cols), cols);
    }
    w.add_tensor(name, s.type, {cols, rows}, std::move(bytes));
  };
  auto vec = [&](const std::string& name, int64_t n, float mean, float stddev) {
    if (name == s.skip) return;
    if (name == s.reshape) ++n;
    const auto f = random_floats(n, mean, stddev, seed++);
    if (name == s.f16_vector) {
      std::vector<uint8_t> bytes(static_cast<size_t>(n) * 2);
      kernels::quantize_row(dtype::F16, f.data(), bytes.data(), n);
      w.add_tensor(name, dtype::F16, {n}, std::move(bytes));
      return;
    }
    std::vector<uint8_t> bytes(static_cast<size_t>(n) * sizeof(float));
    std::memcpy(bytes.data(), f.data(), bytes.size());
    w.add_tensor(name, dtype::F32, {n}, std::move(bytes));
  };
  const int64_t hd = s.n_embd / s.n_head, qd = s.n_head * hd, kvd = s.n_head_kv * hd;
  matrix("token_embd.weight", s.n_embd, s.n_vocab, 0.5f);
  vec("output_norm.weight", s.n_embd, 1.0f, 0.1f);
  if (!s.tied) matrix("output.weight", s.n_embd, s.n_vocab, 0.1f);
  for (int64_t i = 0; i < s.n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    vec(p + "attn_norm.weight", s.n_embd, 1.0f, 0.1f);
    matrix(p + "attn_q.weight", s.n_embd, qd, 0.15f);
    matrix(p + "attn_k.weight", s.n_embd, kvd, 0.15f);
    matrix(p + "attn_v.weight", s.n_embd, kvd, 0.15f);
    if (s.arch == "qwen2") {
      vec(p + "attn_q.bias", qd, 0.0f, 0.1f);
      vec(p + "attn_k.bias", kvd, 0.0f, 0.1f);
      vec(p + "attn_v.bias", kvd, 0.0f, 0.1f);
    }
    matrix(p + "attn_output.weight", qd, s.n_embd, 0.1f);
    vec(p + "ffn_norm.weight", s.n_embd, 1.0f, 0.1f);
    matrix(p + "ffn_gate.weight", s.n_embd, s.n_ff, 0.1f);
    matrix(p + "ffn_up.weight", s.n_embd, s.n_ff, 0.1f);
    matrix(p + "ffn_down.weight", s.n_ff, s.n_embd, 0.1f);
  }
  std::string error;
  ASSERT_TRUE(w.write(path.string(), &error)) << error;
}

std::unique_ptr<model> load_synth(const fs::path& path, const synth_spec& s, std::string* error) {
  write_synth(path, s);
  return model::load(path.string(), error);
}

std::vector<int32_t> random_tokens(int n, int64_t n_vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, static_cast<int32_t>(n_vocab - 1));
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = d(rng);
  return t;
}

// Largest |a - b| over all elements, relative to max(1, max |b|).
double rel_diff(const float* a, const float* b, size_t n) {
  double mx = 0, scale = 1;
  for (size_t i = 0; i < n; ++i) {
    mx = std::max(mx, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return mx / scale;
}

constexpr double k_same = 1e-5;  // batched vs alone: float32 rounding of a different summation order at most

// A model with its own cache, pool and forward pass.
struct engine {
  std::unique_ptr<kv_cache> kv;
  kernels::thread_pool pool{2};
  std::unique_ptr<forward_pass> fwd;
  int64_t n_vocab;

  engine(const model& m, int64_t pages = 64) : n_vocab(m.hp().n_vocab) {
    std::string error;
    kv = kv_cache::create(kv_layout(m), static_cast<size_t>(pages) * 16 * m.kv_bytes_per_token(), &error);
    EXPECT_NE(kv, nullptr) << error;
    fwd = std::make_unique<forward_pass>(m, *kv, pool);
  }
  // Runs one sequence's tokens; returns its logits (all rows or the last).
  std::vector<float> step(kv_cache::seq_id s, const std::vector<int32_t>& tokens, bool all) {
    std::vector<float> logits;
    forward_pass::seq_batch b{s, tokens, kv->length(s), all};
    std::string error;
    EXPECT_TRUE(fwd->run({&b, 1}, logits, &error)) << error;
    return logits;
  }
};

class ForwardModels : public ::testing::TestWithParam<synth_spec> {
 protected:
  void SetUp() override {
    std::string error;
    m_ = load_synth(dir_.path / "m.gguf", GetParam(), &error);
    ASSERT_NE(m_, nullptr) << error;
  }
  test::temp_dir dir_{"forward"};
  std::unique_ptr<model> m_;
};

TEST_P(ForwardModels, BatchedSequencesMatchEachAlone) {
  const int64_t V = m_->hp().n_vocab;
  const std::vector<std::vector<int32_t>> prompts = {random_tokens(5, V, 1), random_tokens(17, V, 2),
                                                     random_tokens(33, V, 3)};
  const auto next = random_tokens(9, V, 4);  // 3 decode steps x 3 sequences

  // Alone: each sequence in its own cache, prefill then 3 single-token steps.
  std::vector<std::vector<std::vector<float>>> alone(3);
  for (size_t i = 0; i < 3; ++i) {
    engine e(*m_);
    auto s = e.kv->create_sequence();
    alone[i].push_back(e.step(s, prompts[i], false));
    for (size_t t = 0; t < 3; ++t) alone[i].push_back(e.step(s, {next[t * 3 + i]}, false));
  }

  engine e(*m_);
  std::vector<kv_cache::seq_id> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(e.kv->create_sequence());
  std::vector<float> logits;
  std::string error;
  // All three prompts in one step, then all three decodes per step (different positions).
  for (size_t t = 0; t < 4; ++t) {
    std::vector<std::vector<int32_t>> toks(3);
    std::vector<forward_pass::seq_batch> batch;
    for (size_t i = 0; i < 3; ++i) {
      toks[i] = t == 0 ? prompts[i] : std::vector<int32_t>{next[(t - 1) * 3 + i]};
      batch.push_back({ids[i], toks[i], e.kv->length(ids[i]), false});
    }
    ASSERT_TRUE(e.fwd->run(batch, logits, &error)) << error;
    ASSERT_EQ(logits.size(), static_cast<size_t>(3 * V));
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_LT(rel_diff(logits.data() + i * V, alone[i][t].data(), V), k_same) << "step " << t << " seq " << i;
    }
  }

  // A step mixing a decode with a new sequence's prefill that wants every row.
  engine solo(*m_);
  auto s = solo.kv->create_sequence();
  const auto p4 = random_tokens(9, V, 5);
  const auto want = solo.step(s, p4, true);
  const auto d = e.kv->create_sequence();
  const std::vector<int32_t> one = {7};
  std::vector<forward_pass::seq_batch> batch = {{ids[1], one, e.kv->length(ids[1]), false},
                                                {d, p4, 0, true}};
  ASSERT_TRUE(e.fwd->run(batch, logits, &error)) << error;
  ASSERT_EQ(logits.size(), static_cast<size_t>(10 * V));
  EXPECT_LT(rel_diff(logits.data() + V, want.data(), want.size()), k_same);
}

TEST_P(ForwardModels, ChunkedPrefillEqualsOnePass) {
  const int64_t V = m_->hp().n_vocab;
  const auto prompt = random_tokens(100, V, 11);
  engine one(*m_);
  const auto want = one.step(one.kv->create_sequence(), prompt, true);
  ASSERT_EQ(want.size(), static_cast<size_t>(100 * V));

  engine chunked(*m_);
  auto s = chunked.kv->create_sequence();
  std::vector<float> got;
  size_t at = 0;
  for (size_t n : {7, 33, 60}) {
    const std::vector<int32_t> part(prompt.begin() + static_cast<std::ptrdiff_t>(at),
                                    prompt.begin() + static_cast<std::ptrdiff_t>(at + n));
    const auto l = chunked.step(s, part, true);
    got.insert(got.end(), l.begin(), l.end());
    at += n;
  }
  ASSERT_EQ(got.size(), want.size());
  EXPECT_LT(rel_diff(got.data(), want.data(), want.size()), k_same);
  EXPECT_EQ(chunked.kv->length(s), 100);
}

TEST_P(ForwardModels, PrefixCacheReuseGivesSameLogits) {
  const int64_t V = m_->hp().n_vocab;
  const auto prompt = random_tokens(40, V, 21);
  engine fresh(*m_);
  const auto want = fresh.step(fresh.kv->create_sequence(), prompt, true);

  engine e(*m_);
  auto a = e.kv->create_sequence();
  e.step(a, prompt, false);
  e.kv->free_sequence(a);
  EXPECT_EQ(e.kv->cached_pages(), 2);

  auto b = e.kv->create_sequence();
  const int64_t reused = e.kv->adopt_prefix(b, prompt);
  EXPECT_EQ(reused, 32);
  const std::vector<int32_t> rest(prompt.begin() + reused, prompt.end());
  const auto got = e.step(b, rest, true);
  ASSERT_EQ(got.size(), rest.size() * static_cast<size_t>(V));
  EXPECT_LT(rel_diff(got.data(), want.data() + reused * V, got.size()), k_same);

  // A prompt sharing only the first 20 tokens reuses one page and still matches.
  auto other = prompt;
  other[20] = (other[20] + 1) % static_cast<int32_t>(V);
  const auto want2 = fresh.step(fresh.kv->create_sequence(), other, true);
  auto c = e.kv->create_sequence();
  EXPECT_EQ(e.kv->adopt_prefix(c, other), 16);
  const auto got2 = e.step(c, std::vector<int32_t>(other.begin() + 16, other.end()), true);
  EXPECT_LT(rel_diff(got2.data(), want2.data() + 16 * V, got2.size()), k_same);
}

synth_spec qwen2_spec() {
  synth_spec s;
  s.arch = "qwen2";
  s.tied = true;
  s.n_head = 8;
  s.n_head_kv = 2;
  return s;
}

synth_spec q8_spec() {
  synth_spec s;
  s.type = dtype::Q8_0;
  s.n_head_kv = 4;
  return s;
}

INSTANTIATE_TEST_SUITE_P(Archs, ForwardModels, ::testing::Values(synth_spec{}, qwen2_spec(), q8_spec()),
                         [](const auto& info) {
                           return info.param.arch + "_" + std::string(kernels::dtype_name(info.param.type));
                         });

TEST(Forward, KvExhaustionIsAnErrorValue) {
  test::temp_dir dir("forward");
  std::string error;
  auto m = load_synth(dir.path / "m.gguf", synth_spec{}, &error);
  ASSERT_NE(m, nullptr) << error;
  engine e(*m, /*pages=*/2);
  auto s = e.kv->create_sequence();
  const auto prompt = random_tokens(40, m->hp().n_vocab, 3);
  std::vector<float> logits;
  forward_pass::seq_batch b{s, prompt, 0, false};
  EXPECT_FALSE(e.fwd->run({&b, 1}, logits, &error));
  EXPECT_NE(error.find("KV cache full"), std::string::npos) << error;
  EXPECT_EQ(e.kv->length(s), 0);
  // What fits still runs.
  b.tokens = std::span<const int32_t>(prompt).first(32);
  EXPECT_TRUE(e.fwd->run({&b, 1}, logits, &error)) << error;
  EXPECT_EQ(e.kv->length(s), 32);
  b.tokens = std::span<const int32_t>(prompt).subspan(32, 1);
  b.pos0 = 32;
  EXPECT_FALSE(e.fwd->run({&b, 1}, logits, &error));
  EXPECT_EQ(e.kv->length(s), 32);
}

TEST(Forward, InvalidStepsAreRejected) {
  test::temp_dir dir("forward");
  std::string error;
  auto m = load_synth(dir.path / "m.gguf", synth_spec{}, &error);
  ASSERT_NE(m, nullptr) << error;
  engine e(*m);
  auto s = e.kv->create_sequence();
  std::vector<float> logits;
  auto expect_error = [&](forward_pass::seq_batch b, const std::string& what) {
    error.clear();
    EXPECT_FALSE(e.fwd->run({&b, 1}, logits, &error)) << what;
    EXPECT_NE(error.find(what), std::string::npos) << error;
    EXPECT_EQ(e.kv->length(s), 0);
  };
  const std::vector<int32_t> ok = {1, 2}, neg = {1, -1}, big = {80}, none;
  expect_error({s + 100, ok, 0, false}, "unknown");
  expect_error({s, neg, 0, false}, "token id -1 out of range [0, 80)");
  expect_error({s, big, 0, false}, "token id 80 out of range");
  expect_error({s, none, 0, false}, "no tokens");
  expect_error({s, ok, 3, false}, "pos0 3 but the cache holds 0 tokens");
  std::vector<forward_pass::seq_batch> twice = {{s, ok, 0, false}, {s, ok, 0, false}};
  EXPECT_FALSE(e.fwd->run(twice, logits, &error));
  EXPECT_NE(error.find("appears twice"), std::string::npos) << error;
  EXPECT_FALSE(e.fwd->run({}, logits, &error));

  // A cache for another model's layout.
  synth_spec wide;
  wide.n_head_kv = 4;
  auto m2 = load_synth(dir.path / "m2.gguf", wide, &error);
  ASSERT_NE(m2, nullptr) << error;
  forward_pass wrong(*m2, *e.kv, e.pool);
  forward_pass::seq_batch b{s, ok, 0, false};
  EXPECT_FALSE(wrong.run({&b, 1}, logits, &error));
  EXPECT_NE(error.find("layout"), std::string::npos) << error;

  EXPECT_TRUE(e.fwd->run({&b, 1}, logits, &error)) << error;
  EXPECT_EQ(logits.size(), 80u);
}

TEST(Model, HyperparametersAndFootprint) {
  test::temp_dir dir("model");
  std::string error;
  auto m = load_synth(dir.path / "q.gguf", qwen2_spec(), &error);
  ASSERT_NE(m, nullptr) << error;
  const hparams& hp = m->hp();
  EXPECT_EQ(hp.arch, architecture::qwen2);
  EXPECT_EQ(hp.n_vocab, 80);
  EXPECT_EQ(hp.n_embd, 64);
  EXPECT_EQ(hp.n_head, 8);
  EXPECT_EQ(hp.n_head_kv, 2);
  EXPECT_EQ(hp.head_dim, 8);
  EXPECT_EQ(hp.n_ctx_train, 256);
  EXPECT_EQ(hp.rope_pairing, kernels::rope_pairing::halves);
  EXPECT_TRUE(hp.tied_output);
  EXPECT_EQ(m->output().data, m->token_embd().data);
  EXPECT_NE(m->layer(1).bq, nullptr);
  EXPECT_EQ(m->kv_bytes_per_token(), 2u * 2 * 16 * sizeof(float));
  // embd + output norm + per layer: 2 norms, q, k, v, o, 3 biases, gate, up, down.
  const size_t floats = 80 * 64 + 64 + 2 * (64 + 64 + 64 * 64 + 2 * 64 * 16 + 64 * 64 + 64 + 2 * 16 + 3 * 64 * 96);
  EXPECT_EQ(m->weight_bytes(), floats * sizeof(float));

  auto l = load_synth(dir.path / "l.gguf", synth_spec{}, &error);
  ASSERT_NE(l, nullptr) << error;
  EXPECT_EQ(l->hp().rope_pairing, kernels::rope_pairing::adjacent);
  EXPECT_FALSE(l->hp().tied_output);
  EXPECT_NE(l->output().data, l->token_embd().data);
  EXPECT_EQ(l->layer(0).bq, nullptr);
  EXPECT_EQ(l->rope_freq_factors(), nullptr);
}

TEST(Model, BadFilesGiveClearErrors) {
  test::temp_dir dir("model");
  struct bad_case {
    synth_spec spec;
    std::string message;
  };
  std::vector<bad_case> cases;
  auto add = [&](std::string message, auto edit) {
    synth_spec s;
    edit(s);
    cases.push_back({s, std::move(message)});
  };
  add("blk.1.ffn_up.weight: tensor missing", [](synth_spec& s) { s.skip = "blk.1.ffn_up.weight"; });
  add("blk.0.attn_k.weight: expected shape [64, 32], got [64, 33]",
      [](synth_spec& s) { s.reshape = "blk.0.attn_k.weight"; });
  add("output.weight: expected shape [64, 80], got [64, 81]", [](synth_spec& s) { s.reshape = "output.weight"; });
  add("blk.1.ffn_norm.weight: expected type F32, got F16", [](synth_spec& s) { s.f16_vector = "blk.1.ffn_norm.weight"; });
  add("output_norm.weight: tensor missing", [](synth_spec& s) { s.skip = "output_norm.weight"; });
  add("llama.block_count: key missing", [](synth_spec& s) { s.drop_key = "llama.block_count"; });
  add("llama.attention.layer_norm_rms_epsilon: key missing",
      [](synth_spec& s) { s.drop_key = "llama.attention.layer_norm_rms_epsilon"; });
  add("architecture 'gpt2' is not supported", [](synth_spec& s) { s.arch = "gpt2"; });
  add("not a multiple of head_count_kv", [](synth_spec& s) { s.n_head_kv = 3; });
  add("blk.0.attn_q.bias: tensor missing", [](synth_spec& s) {
    s.arch = "qwen2";
    s.skip = "blk.0.attn_q.bias";
  });
  for (size_t i = 0; i < cases.size(); ++i) {
    const fs::path path = dir.path / ("bad" + std::to_string(i) + ".gguf");
    std::string error;
    auto m = load_synth(path, cases[i].spec, &error);
    EXPECT_EQ(m, nullptr) << cases[i].message;
    EXPECT_NE(error.find(cases[i].message), std::string::npos) << "got: " << error;
    EXPECT_NE(error.find(path.string()), std::string::npos) << "the file is named: " << error;
  }
  std::string error;
  EXPECT_EQ(model::load((dir.path / "absent.gguf").string(), &error), nullptr);
  EXPECT_FALSE(error.empty());
}

// The F32 reference models: one pass over the 100-token prompt against llama.cpp's logits. A float32
// engine with an F32 cache lands at the float32 rounding floor (README: nmax ~1e-5).
TEST(Forward, MatchesLlamaCppOnF32ReferenceModels) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const fs::path dir = shared / "data" / "engine" / "models";
  std::ifstream mf(dir / "manifest.json");
  ASSERT_TRUE(mf) << dir;
  const auto manifest = nlohmann::json::parse(mf);
  int checked = 0;
  for (const auto& entry : manifest["models"]) {
    if (entry["type"] != "F32") continue;
    std::string error;
    auto m = model::load((dir / entry["file"].get<std::string>()).string(), &error);
    ASSERT_NE(m, nullptr) << error;
    const auto& p = entry["prompts"][2];
    const auto tokens = p["tokens"].get<std::vector<int32_t>>();
    engine e(*m);
    const auto got = e.step(e.kv->create_sequence(), tokens, true);

    std::ifstream lf(dir / p["logits"].get<std::string>(), std::ios::binary);
    std::vector<float> ref(got.size());
    lf.read(reinterpret_cast<char*>(ref.data()), static_cast<std::streamsize>(ref.size() * sizeof(float)));
    ASSERT_TRUE(lf) << "reference logits size";
    double mean = 0, var = 0, mx = 0;
    for (float r : ref) mean += r;
    mean /= static_cast<double>(ref.size());
    for (float r : ref) var += (r - mean) * (r - mean);
    const double sd = std::sqrt(var / static_cast<double>(ref.size()));
    for (size_t i = 0; i < ref.size(); ++i) mx = std::max(mx, std::fabs(static_cast<double>(got[i]) - ref[i]));
    EXPECT_LT(mx / sd, 1e-3) << entry["file"];
    ++checked;
  }
  EXPECT_EQ(checked, 3);
}

}  // namespace
}  // namespace gw::local_engine
