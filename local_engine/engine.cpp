// The engine facade: loads model, tokenizer and chat template, sizes the KV cache and thread pool,
// and runs the scheduler (see engine.h).
#include "local_engine/engine.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "kernels/ops.h"
#include "local_engine/backend.h"
#include "local_engine/chat_template.h"
#include "local_engine/forward.h"
#include "local_engine/gguf.h"
#include "local_engine/kv_cache.h"
#include "local_engine/model.h"
#include "local_engine/tokenizer.h"

namespace gw::local_engine {
namespace {

constexpr int kDefaultMaxContext = 4096;
constexpr int64_t kDefaultContextsInCache = 4;

// One line per model load: where its weights live, and whether the kernel gave huge pages.
void log_weights_memory(const gguf_file& f) {
  const double mib = static_cast<double>(f.size_bytes()) / (1 << 20);
  if (f.memory() == file_memory::mapped) {
    spdlog::info("{}: weights mapped from the file ({:.1f} MiB)", f.path(), mib);
  } else if (f.huge_page_bytes() > 0) {
    spdlog::info("{}: weights in huge pages ({:.1f} of {:.1f} MiB)", f.path(),
                 static_cast<double>(f.huge_page_bytes()) / (1 << 20), mib);
  } else {
    spdlog::warn("{}: weights read into memory ({:.1f} MiB) but the kernel gave no huge pages "
                 "(transparent huge pages off?): generation of large models is slower",
                 f.path(), mib);
  }
}

}  // namespace

struct engine::impl {
  // Declaration order matters: the scheduler (last) stops before what it uses is destroyed.
  std::unique_ptr<model> mdl;
  std::unique_ptr<tokenizer> tok;
  std::unique_ptr<chat_template> tmpl;
  std::unique_ptr<kv_cache> kv;
  std::unique_ptr<kernels::thread_pool> pool;
  std::string name;
  int context_size = 0;
  std::unique_ptr<scheduler> sched;
};

engine::engine() : impl_(std::make_unique<impl>()) {}
engine::~engine() = default;

std::unique_ptr<engine> engine::create(const engine_options& options, std::string* error) {
  std::string local_error;
  if (!error) error = &local_error;
  log_backend_once();
  std::unique_ptr<engine> e(new engine());
  impl& d = *e->impl_;

  d.mdl = model::load(options.model_path, error, options.weights_memory);
  if (!d.mdl) return nullptr;
  const gguf_file& file = d.mdl->file();
  log_weights_memory(file);
  d.tok = tokenizer::from_gguf(file, error);
  if (!d.tok) return nullptr;

  if (!options.chat_template_override.empty()) {
    std::string parse_error;
    d.tmpl = chat_template::parse(options.chat_template_override, &parse_error);
    if (!d.tmpl) {
      *error = "chat template override: " + parse_error;
      return nullptr;
    }
  } else if (auto source = file.get_string("tokenizer.chat_template")) {
    std::string parse_error;
    d.tmpl = chat_template::parse(*source, &parse_error);
    if (!d.tmpl) {
      spdlog::warn("{}: the model's chat template cannot be used ({}); using ChatML",
                   options.model_path, parse_error);
    }
  }
  if (!d.tmpl) {
    std::string parse_error;
    d.tmpl = chat_template::parse(chatml_template(), &parse_error);
    if (!d.tmpl) {
      *error = "built-in ChatML template: " + parse_error;
      return nullptr;
    }
  }

  const hparams& hp = d.mdl->hp();
  const int64_t trained = hp.n_ctx_train > 0 ? hp.n_ctx_train : kDefaultMaxContext;
  if (options.context_size < 0) {
    *error = "context_size must be >= 0";
    return nullptr;
  }
  if (options.context_size > trained) {
    *error = "context_size " + std::to_string(options.context_size) +
             " exceeds the model's training context (" + std::to_string(trained) + ")";
    return nullptr;
  }
  d.context_size = options.context_size > 0
                       ? options.context_size
                       : static_cast<int>(std::min<int64_t>(trained, kDefaultMaxContext));

  int64_t budget = options.kv_budget_bytes;
  if (budget < 0) {
    *error = "kv_budget_bytes must be >= 0";
    return nullptr;
  }
  if (budget == 0) {
    budget = kDefaultContextsInCache * d.context_size *
             static_cast<int64_t>(d.mdl->kv_bytes_per_token());
  }
  d.kv = kv_cache::create(kv_layout(*d.mdl), static_cast<size_t>(budget), error);
  if (!d.kv) return nullptr;
  d.pool = std::make_unique<kernels::thread_pool>(options.threads);

  d.name = std::string(file.get_string("general.name").value_or(""));
  if (d.name.empty()) d.name = std::filesystem::path(options.model_path).stem().string();

  scheduler_options so;
  so.context_size = d.context_size;
  so.max_batch_tokens = options.max_batch_tokens;
  so.max_queue = options.max_queue;
  d.sched = std::make_unique<scheduler>(*d.mdl, *d.tok, *d.kv, *d.pool, so);
  spdlog::info("engine: {} ({}, {} layers, vocab {}), context {}, KV cache {} pages of {} tokens "
               "({:.1f} MiB), {} threads",
               d.name, hp.arch_name, hp.n_layer, hp.n_vocab, d.context_size, d.kv->total_pages(),
               d.kv->page_tokens(),
               static_cast<double>(d.kv->total_pages()) * static_cast<double>(d.kv->page_bytes()) /
                   (1024.0 * 1024.0),
               d.pool->size());
  return e;
}

std::string engine::model_name() const { return impl_->name; }
int engine::context_size() const { return impl_->context_size; }
const tokenizer& engine::tok() const { return *impl_->tok; }

std::optional<std::vector<int32_t>> engine::chat_prompt(const nlohmann::json& messages,
                                                        const nlohmann::json& tools,
                                                        std::string* error) const {
  return chat_prompt(nlohmann::ordered_json(messages), nlohmann::ordered_json(tools), error);
}

std::optional<std::vector<int32_t>> engine::chat_prompt(const nlohmann::ordered_json& messages,
                                                        const nlohmann::ordered_json& tools,
                                                        std::string* error) const {
  std::string local_error;
  if (!error) error = &local_error;
  const tokenizer& t = *impl_->tok;
  chat_template_inputs in;
  in.messages = messages;
  in.tools = tools;
  in.add_generation_prompt = true;
  if (t.bos() >= 0) in.bos_token = std::string(t.token_text(t.bos()));
  if (t.eos() >= 0) in.eos_token = std::string(t.token_text(t.eos()));
  in.extra_context = nlohmann::ordered_json::object();
  std::optional<std::string> text = impl_->tmpl->render(in, error);
  if (!text) return std::nullopt;
  std::vector<int32_t> ids = t.encode(*text, false, true);
  if (t.add_bos() && t.bos() >= 0 && (ids.empty() || ids.front() != t.bos()))
    ids.insert(ids.begin(), t.bos());
  return ids;
}

std::vector<int32_t> engine::text_prompt(std::string_view text) const {
  const tokenizer& t = *impl_->tok;
  std::vector<int32_t> ids = t.encode(text, false, false);
  if (t.add_bos() && t.bos() >= 0) ids.insert(ids.begin(), t.bos());
  return ids;
}

uint64_t engine::submit(generation_request request, generation_callbacks callbacks,
                        submit_status* status, std::string* error) {
  return impl_->sched->submit(std::move(request), std::move(callbacks), status, error);
}

void engine::cancel(uint64_t id) { impl_->sched->cancel(id); }

engine::stats engine::current() const {
  const scheduler_stats s = impl_->sched->current();
  stats out;
  out.running = s.running;
  out.queued = s.queued;
  out.kv_pages_free = s.kv_pages_free;
  out.kv_pages_total = s.kv_pages_total;
  out.retry_after_s = s.retry_after_s;
  return out;
}

}  // namespace gw::local_engine
