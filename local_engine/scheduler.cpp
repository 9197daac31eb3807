// The request scheduler: a bounded queue, first-come-first-served admission by KV reservation,
// token-budgeted batches (decodes first, then chunked prefill), sampling, stop conditions and
// streaming text, all on one thread (see scheduler.h).
#include "local_engine/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <span>
#include <string_view>
#include <thread>

#include "kernels/ops.h"
#include "local_engine/forward.h"
#include "local_engine/kv_cache.h"
#include "local_engine/model.h"
#include "local_engine/tokenizer.h"

namespace gw::local_engine {
namespace {

using steady = std::chrono::steady_clock;

int64_t ns_between(steady::time_point from, steady::time_point to) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count();
}

constexpr int kMaxTopLogprobs = 20;

// Length of the longest suffix of `text` that is a proper prefix of one of `stops`: text that may
// still turn into a stop string and must be held back while streaming.
size_t stop_prefix_suffix(std::string_view text, const std::vector<std::string>& stops) {
  size_t longest = 0;
  for (const auto& stop : stops) {
    const size_t max_len = std::min(text.size(), stop.size() - 1);
    for (size_t len = max_len; len > longest; --len) {
      if (text.substr(text.size() - len) == std::string_view(stop).substr(0, len)) {
        longest = len;
        break;
      }
    }
  }
  return longest;
}

}  // namespace

// One request from submit() to on_done.
struct request_state {
  uint64_t id = 0;
  generation_request req;
  generation_callbacks callbacks;
  steady::time_point submitted, admitted;
  int64_t first_token_ns = 0;
  int64_t busy_ns = 0;

  // Set at admission (scheduler thread only from then on).
  kv_cache::seq_id seq = 0;
  int64_t prefilled = 0;   // prompt tokens in the cache (adopted or computed)
  int cached = 0;          // of which adopted from the prefix cache
  int completion = 0;      // tokens generated
  int32_t next_input = -1; // the last generated token, fed at the next step
  std::unique_ptr<sampler> smp;
  std::unique_ptr<detokenizer> detok;
  std::string held;        // decoded text not released yet (could become a stop string)
  size_t longest_stop = 0;

  int64_t prompt_size() const { return static_cast<int64_t>(req.prompt.size()); }
  bool generating() const { return prefilled >= prompt_size(); }
};

struct scheduler::impl {
  impl(const model& m, const tokenizer& t, kv_cache& k, kernels::thread_pool& p,
       const scheduler_options& o)
      : mdl(m), tok(t), kv(k), pool(p), opt(o), fwd(m, k, p),
        n_vocab(m.hp().n_vocab), page_tokens(k.page_tokens()), total_pages(k.total_pages()) {
    opt.max_batch_tokens = std::max(opt.max_batch_tokens, 1);
    opt.max_queue = std::max(opt.max_queue, 0);
    opt.context_size = std::max(opt.context_size, 2);
    pages_free = kv.available_pages();
  }

  // ---- set at construction; the cache and forward pass are used by the scheduler thread only ----
  const model& mdl;
  const tokenizer& tok;
  kv_cache& kv;
  kernels::thread_pool& pool;
  scheduler_options opt;
  forward_pass fwd;
  const int64_t n_vocab;
  const int64_t page_tokens;
  const int64_t total_pages;

  // ---- shared between threads ----
  mutable std::mutex mu;
  std::condition_variable wake;
  std::deque<std::unique_ptr<request_state>> waiting;  // guarded by mu, like the next three
  std::vector<uint64_t> cancels;
  bool stopping = false;
  uint64_t next_id = 1;
  std::atomic<int> running_count{0};
  std::atomic<int64_t> pages_free{0};
  std::atomic<int64_t> service_ns_avg{0};  // moving average, admission -> done

  // ---- scheduler thread only ----
  std::vector<std::unique_ptr<request_state>> running;  // admission order
  std::vector<float> logits;
  std::thread thread;

  // KV tokens reserved at admission: prompt + max_tokens, at most the context.
  int64_t reserved_tokens(const generation_request& r) const {
    const int64_t prompt = static_cast<int64_t>(r.prompt.size());
    const int64_t limit = r.max_tokens > 0 ? prompt + r.max_tokens : opt.context_size;
    return std::min<int64_t>(limit, opt.context_size);
  }
  std::string validate(const generation_request& r, submit_status* status) const;
  void loop();
  void process_cancels(std::vector<uint64_t> ids);
  void admit();
  void step();
  // Handles a sampled token; returns the finish reason, or empty to continue.
  std::string on_sampled(request_state& r, const sampled_token& t);
  std::string release(request_state& r, std::string_view text, bool final, bool* stopped) const;
  void finish(request_state& r, const std::string& reason, const std::string& error);
  void publish_stats();
  int retry_after_s(size_t queued) const;
};

std::string scheduler::impl::validate(const generation_request& r, submit_status* status) const {
  *status = submit_status::invalid;
  if (r.prompt.empty()) return "the prompt has no tokens";
  for (size_t i = 0; i < r.prompt.size(); ++i) {
    if (r.prompt[i] < 0 || r.prompt[i] >= n_vocab)
      return "prompt token " + std::to_string(i) + " is " + std::to_string(r.prompt[i]) +
             ", outside the vocabulary (" + std::to_string(n_vocab) + " tokens)";
  }
  if (std::string e = local_engine::validate(r.sampling); !e.empty()) return e;
  for (const auto& s : r.stop) {
    if (s.empty()) return "stop strings must not be empty";
  }
  if (r.top_logprobs < 0 || r.top_logprobs > kMaxTopLogprobs)
    return "top_logprobs must be between 0 and " + std::to_string(kMaxTopLogprobs);
  const int64_t prompt = static_cast<int64_t>(r.prompt.size());
  if (prompt >= opt.context_size) {
    *status = submit_status::too_long;
    return "the prompt has " + std::to_string(prompt) + " tokens; the context holds " +
           std::to_string(opt.context_size) + " (prompt and completion together)";
  }
  const int64_t need = reserved_tokens(r);
  const int64_t pages = (need + page_tokens - 1) / page_tokens;
  if (pages > total_pages) {
    *status = submit_status::too_long;
    return "the request needs " + std::to_string(need) + " tokens of KV cache (" +
           std::to_string(pages) + " pages); the cache has " + std::to_string(total_pages) +
           " pages";
  }
  *status = submit_status::ok;
  return {};
}

int scheduler::impl::retry_after_s(size_t queued) const {
  const double service_s = static_cast<double>(service_ns_avg.load()) * 1e-9;
  const double parallel = std::max(1, running_count.load());
  const double wait = service_s * static_cast<double>(queued + 1) / parallel;
  return static_cast<int>(std::clamp(std::ceil(wait), 1.0, 60.0));
}

void scheduler::impl::publish_stats() {
  running_count = static_cast<int>(running.size());
  pages_free = kv.available_pages();
}

void scheduler::impl::loop() {
  for (;;) {
    std::vector<uint64_t> cancelled;
    {
      std::unique_lock lock(mu);
      wake.wait(lock, [&] {
        return stopping || !cancels.empty() || !waiting.empty() || !running.empty();
      });
      if (stopping) break;
      cancelled.swap(cancels);
    }
    if (!cancelled.empty()) process_cancels(std::move(cancelled));
    admit();
    publish_stats();  // admissions are visible before the step's callbacks run
    if (!running.empty()) step();
    publish_stats();
  }

  // Shutting down: everything still queued or running ends now.
  std::deque<std::unique_ptr<request_state>> left;
  {
    std::lock_guard lock(mu);
    left.swap(waiting);
  }
  for (auto& r : running) finish(*r, "cancelled", "engine stopped");
  for (auto& r : left) finish(*r, "cancelled", "engine stopped");
  running.clear();
  publish_stats();
}

void scheduler::impl::process_cancels(std::vector<uint64_t> ids) {
  std::vector<std::unique_ptr<request_state>> dropped;
  {
    std::lock_guard lock(mu);
    for (uint64_t id : ids) {
      auto it = std::find_if(waiting.begin(), waiting.end(),
                             [id](const auto& r) { return r->id == id; });
      if (it != waiting.end()) {
        dropped.push_back(std::move(*it));
        waiting.erase(it);
      }
    }
  }
  for (auto& r : dropped) finish(*r, "cancelled", "");
  for (uint64_t id : ids) {
    auto it = std::find_if(running.begin(), running.end(),
                           [id](const auto& r) { return r->id == id; });
    if (it == running.end()) continue;  // finished already, or never existed
    finish(**it, "cancelled", "");
    running.erase(it);
  }
}

void scheduler::impl::admit() {
  while (running.size() < static_cast<size_t>(opt.max_batch_tokens)) {
    request_state* r = nullptr;
    {
      std::lock_guard lock(mu);
      if (waiting.empty()) return;
      r = waiting.front().get();  // only this thread removes entries, so it stays valid
    }
    const int64_t need = reserved_tokens(r->req);
    const kv_cache::seq_id seq = kv.create_sequence();
    const int64_t cached = kv.adopt_prefix(seq, r->req.prompt);
    const bool reserved = kv.reserve(seq, need);
    if (!reserved) kv.free_sequence(seq);
    if (!reserved && !running.empty()) return;  // wait for running requests to free pages

    std::unique_ptr<request_state> owned;
    {
      std::lock_guard lock(mu);
      owned = std::move(waiting.front());
      waiting.pop_front();
    }
    if (!reserved) {
      // Nothing else holds pages, so this request can never fit (submit checks this too).
      finish(*owned, "error", "the KV cache cannot hold " + std::to_string(need) + " tokens");
      continue;
    }
    owned->seq = seq;
    owned->admitted = steady::now();
    owned->prefilled = cached;
    owned->cached = static_cast<int>(cached);
    owned->smp = std::make_unique<sampler>(owned->req.sampling, owned->req.prompt);
    // The detokenizer first sees the last prompt token (its text is not output), so the first
    // generated token is decoded as a continuation: a SentencePiece piece keeps its leading space
    // after normal text, exactly as when the prompt and completion are decoded together.
    owned->detok = std::make_unique<detokenizer>(tok);
    owned->detok->push(owned->req.prompt.back());
    owned->detok->flush();
    for (const auto& s : owned->req.stop) owned->longest_stop = std::max(owned->longest_stop, s.size());
    running.push_back(std::move(owned));
  }
}

void scheduler::impl::step() {
  struct entry {
    request_state* r;
    int64_t n_tokens;
    bool samples;  // the step ends its prompt or continues its generation: a token is sampled
  };
  std::vector<entry> entries;
  std::vector<forward_pass::seq_batch> batch;
  int64_t budget = opt.max_batch_tokens;
  // Generating sequences first (one token each), then prompt chunks with what is left.
  for (auto& r : running) {
    if (budget == 0) break;
    if (!r->generating()) continue;
    batch.push_back({r->seq, std::span<const int32_t>(&r->next_input, 1), kv.length(r->seq), false});
    entries.push_back({r.get(), 1, true});
    --budget;
  }
  for (auto& r : running) {
    if (budget == 0) break;
    if (r->generating()) continue;
    const int64_t n = std::min(budget, r->prompt_size() - r->prefilled);
    const auto tokens = std::span<const int32_t>(r->req.prompt).subspan(
        static_cast<size_t>(r->prefilled), static_cast<size_t>(n));
    batch.push_back({r->seq, tokens, r->prefilled, false});
    entries.push_back({r.get(), n, r->prefilled + n == r->prompt_size()});
    budget -= n;
  }
  if (batch.empty()) return;

  const auto start = steady::now();
  std::string error;
  if (!fwd.run(batch, logits, &error)) {
    spdlog::error("engine step failed: {}", error);
    for (const auto& e : entries) finish(*e.r, "error", "inference failed: " + error);
    std::erase_if(running, [&](const auto& r) {
      return std::any_of(entries.begin(), entries.end(), [&](const entry& e) { return e.r == r.get(); });
    });
    return;
  }

  // Sample every sequence that produced a token (in parallel: samplers are independent).
  const size_t vocab = static_cast<size_t>(n_vocab);
  std::vector<size_t> sampling;  // indices into entries (= logits rows)
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].samples) sampling.push_back(i);
  }
  std::vector<sampled_token> tokens(sampling.size());
  auto sample_range = [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const size_t row = sampling[static_cast<size_t>(k)];
      request_state& r = *entries[row].r;
      tokens[static_cast<size_t>(k)] = r.smp->sample(
          std::span<const float>(logits).subspan(row * vocab, vocab), r.req.logprobs,
          r.req.logprobs ? r.req.top_logprobs : 0);
    }
  };
  if (sampling.size() > 1) {
    pool.parallel_for(static_cast<int64_t>(sampling.size()), sample_range);
  } else {
    sample_range(0, static_cast<int64_t>(sampling.size()));
  }
  const auto end = steady::now();

  // Each request is charged its share of the step's time, by tokens.
  int64_t step_tokens = 0;
  for (const auto& e : entries) step_tokens += e.n_tokens;
  const int64_t step_ns = ns_between(start, end);
  for (const auto& e : entries) {
    e.r->busy_ns += step_ns * e.n_tokens / step_tokens;
    if (!e.r->generating()) e.r->prefilled += e.n_tokens;
  }

  std::vector<request_state*> done;
  for (size_t k = 0; k < sampling.size(); ++k) {
    request_state& r = *entries[sampling[k]].r;
    const std::string reason = on_sampled(r, tokens[k]);
    if (!reason.empty()) {
      finish(r, reason, "");
      done.push_back(&r);
    }
  }
  if (!done.empty()) {
    std::erase_if(running, [&](const auto& r) {
      return std::find(done.begin(), done.end(), r.get()) != done.end();
    });
  }
}

std::string scheduler::impl::release(request_state& r, std::string_view text, bool final,
                                     bool* stopped) const {
  const auto& stops = r.req.stop;
  // A stop string not found so far must end in the new text.
  const size_t search_from = r.held.size() >= r.longest_stop ? r.held.size() - r.longest_stop + 1 : 0;
  r.held.append(text);
  std::string out;
  size_t first_stop = std::string::npos;
  for (const auto& s : stops) first_stop = std::min(first_stop, r.held.find(s, search_from));
  if (first_stop != std::string::npos) {
    *stopped = true;
    out = r.held.substr(0, first_stop);
    r.held.clear();
    return out;
  }
  const size_t keep = final ? 0 : stop_prefix_suffix(r.held, stops);
  out = r.held.substr(0, r.held.size() - keep);
  r.held.erase(0, r.held.size() - keep);
  return out;
}

std::string scheduler::impl::on_sampled(request_state& r, const sampled_token& t) {
  ++r.completion;
  r.smp->accept(t.id);
  r.next_input = t.id;
  if (r.completion == 1) r.first_token_ns = ns_between(r.submitted, steady::now());

  auto deliver = [&](const token_output& out) {
    if (!r.callbacks.on_token) return;
    try {
      r.callbacks.on_token(out);
    } catch (const std::exception& e) {
      spdlog::warn("engine request {}: on_token threw: {}", r.id, e.what());
    }
  };

  bool stopped = false;
  if (!r.req.ignore_eos && tok.is_eog(t.id)) {
    // The end-of-generation token has no text; what was held back is released.
    token_output tail;
    tail.text = release(r, r.detok->flush(), true, &stopped);
    if (!tail.text.empty()) deliver(tail);
    return "stop";
  }
  const int64_t total = r.prompt_size() + r.completion;
  const bool length = (r.req.max_tokens > 0 && r.completion >= r.req.max_tokens) ||
                      total >= opt.context_size;
  std::string piece = r.detok->push(t.id);
  if (length) piece += r.detok->flush();

  token_output out;
  out.id = t.id;
  out.text = release(r, piece, length, &stopped);
  if (r.req.logprobs) {
    out.logprob = t.logprob;
    for (const auto& [id, lp] : t.top) out.top.emplace_back(tok.token_to_piece(id, true), lp);
  }
  deliver(out);
  if (stopped) return "stop";
  if (length) return "length";
  return {};
}

void scheduler::impl::finish(request_state& r, const std::string& reason, const std::string& error) {
  const auto now = steady::now();
  if (r.seq != 0) {
    kv.free_sequence(r.seq);
    r.seq = 0;
    const int64_t service = ns_between(r.admitted, now);
    const int64_t avg = service_ns_avg.load();
    service_ns_avg = avg == 0 ? service : (avg * 4 + service) / 5;
  }
  generation_stats stats;
  stats.finish_reason = reason;
  stats.prompt_tokens = static_cast<int>(r.req.prompt.size());
  stats.cached_prompt_tokens = r.cached;
  stats.completion_tokens = r.completion;
  stats.queue_ns = ns_between(r.submitted, r.smp ? r.admitted : now);
  stats.busy_ns = r.busy_ns;
  stats.first_token_ns = r.first_token_ns;
  if (!r.callbacks.on_done) return;
  try {
    r.callbacks.on_done(stats, error);
  } catch (const std::exception& e) {
    spdlog::warn("engine request {}: on_done threw: {}", r.id, e.what());
  }
}

scheduler::scheduler(const model& m, const tokenizer& tok, kv_cache& kv, kernels::thread_pool& pool,
                     const scheduler_options& options)
    : impl_(std::make_unique<impl>(m, tok, kv, pool, options)) {
  impl_->thread = std::thread([this] { impl_->loop(); });
}

scheduler::~scheduler() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

uint64_t scheduler::submit(generation_request request, generation_callbacks callbacks,
                           submit_status* status, std::string* error) {
  submit_status local_status;
  std::string local_error;
  if (!status) status = &local_status;
  if (!error) error = &local_error;
  if (std::string e = impl_->validate(request, status); !e.empty()) {
    *error = std::move(e);
    return 0;
  }
  auto r = std::make_unique<request_state>();
  r->req = std::move(request);
  r->callbacks = std::move(callbacks);
  r->submitted = steady::now();
  uint64_t id = 0;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping) {
      *status = submit_status::invalid;
      *error = "the engine is stopping";
      return 0;
    }
    if (impl_->waiting.size() >= static_cast<size_t>(impl_->opt.max_queue)) {
      *status = submit_status::queue_full;
      const int retry = impl_->retry_after_s(impl_->waiting.size());
      *error = "the engine queue is full (" + std::to_string(impl_->waiting.size()) +
               " requests waiting); retry after " + std::to_string(retry) + " s";
      return 0;
    }
    id = impl_->next_id++;
    r->id = id;
    impl_->waiting.push_back(std::move(r));
  }
  impl_->wake.notify_one();
  *status = submit_status::ok;
  error->clear();
  return id;
}

void scheduler::cancel(uint64_t id) {
  {
    std::lock_guard lock(impl_->mu);
    impl_->cancels.push_back(id);
  }
  impl_->wake.notify_one();
}

scheduler_stats scheduler::current() const {
  scheduler_stats s;
  size_t queued = 0;
  {
    std::lock_guard lock(impl_->mu);
    queued = impl_->waiting.size();
  }
  s.queued = static_cast<int>(queued);
  s.running = impl_->running_count.load();
  s.kv_pages_free = impl_->pages_free.load();
  s.kv_pages_total = impl_->total_pages;
  s.retry_after_s = impl_->retry_after_s(queued);
  return s;
}

}  // namespace gw::local_engine
