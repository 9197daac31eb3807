// Scheduler on the tiny reference models: greedy generation equals llama.cpp's greedy ids, batched
// requests equal each request alone, cancellation frees the KV pages, admission limits (queue full,
// too long, invalid), stop strings, max_tokens, end-of-generation tokens, seeds, prefix caching,
// logprobs and the per-request stats.
#include "local_engine/scheduler.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kernels/ops.h"
#include "local_engine/forward.h"
#include "local_engine/kv_cache.h"
#include "local_engine/model.h"
#include "local_engine/tokenizer.h"
#include "tests/support/test_env.h"

namespace gw::local_engine {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// What one request's callbacks saw.
struct collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<token_output> outputs;
  std::vector<int32_t> ids;
  std::string text;
  bool done = false;
  int done_calls = 0;
  generation_stats stats;
  std::string error;
  std::function<void(const token_output&)> also;  // extra hooks, called on the scheduler thread
  std::function<void()> also_done;

  generation_callbacks callbacks() {
    generation_callbacks cb;
    cb.on_token = [this](const token_output& t) {
      {
        std::lock_guard lock(mu);
        outputs.push_back(t);
        if (t.id >= 0) ids.push_back(t.id);
        text += t.text;
      }
      if (also) also(t);
    };
    cb.on_done = [this](const generation_stats& s, const std::string& e) {
      if (also_done) also_done();
      std::lock_guard lock(mu);
      done = true;
      ++done_calls;
      stats = s;
      error = e;
      cv.notify_all();
    };
    return cb;
  }
  bool wait(std::chrono::seconds timeout = 120s) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, [&] { return done; });
  }
};

struct reference_prompt {
  std::vector<int32_t> tokens;
  std::vector<int32_t> greedy;
};

std::vector<reference_prompt> references(const fs::path& models, const std::string& file) {
  std::ifstream in(models / "manifest.json");
  const auto manifest = nlohmann::json::parse(in);
  std::vector<reference_prompt> out;
  for (const auto& m : manifest["models"]) {
    if (m["file"] != file) continue;
    for (const auto& p : m["prompts"]) {
      out.push_back({p["tokens"].get<std::vector<int32_t>>(), p["greedy"].get<std::vector<int32_t>>()});
    }
  }
  return out;
}

// Model, tokenizer, cache, pool and scheduler over one tiny model.
struct rig {
  std::unique_ptr<model> mdl;
  std::unique_ptr<tokenizer> tok;
  std::unique_ptr<kv_cache> kv;
  std::unique_ptr<kernels::thread_pool> pool;
  std::unique_ptr<scheduler> sched;

  // kv_tokens: cache budget in tokens (pages of 16).
  bool open(const fs::path& file, scheduler_options options, int64_t kv_tokens = 4 * 512) {
    std::string error;
    mdl = model::load(file.string(), &error);
    EXPECT_TRUE(mdl) << error;
    if (!mdl) return false;
    tok = tokenizer::from_gguf(mdl->file(), &error);
    EXPECT_TRUE(tok) << error;
    if (!tok) return false;
    kv = kv_cache::create(kv_layout(*mdl), static_cast<size_t>(kv_tokens) * mdl->kv_bytes_per_token(), &error);
    EXPECT_TRUE(kv) << error;
    if (!kv) return false;
    pool = std::make_unique<kernels::thread_pool>(2);
    sched = std::make_unique<scheduler>(*mdl, *tok, *kv, *pool, options);
    return true;
  }
  ~rig() { sched.reset(); }

  uint64_t submit(const generation_request& r, collector& c) {
    submit_status status;
    std::string error;
    const uint64_t id = sched->submit(r, c.callbacks(), &status, &error);
    EXPECT_EQ(status, submit_status::ok) << error;
    EXPECT_GT(id, 0u);
    return id;
  }
  // Waits until the scheduler's published page count is back to `pages` (it is refreshed after
  // the step that finished the last request).
  bool wait_pages_free(int64_t pages) {
    for (int i = 0; i < 2000; ++i) {
      if (sched->current().kv_pages_free == pages && sched->current().running == 0) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }
};

generation_request greedy_request(std::vector<int32_t> prompt, int max_tokens) {
  generation_request r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 0.0f;
  r.max_tokens = max_tokens;
  r.ignore_eos = true;
  return r;
}

fs::path models_dir(const fs::path& shared) { return shared / "data" / "engine" / "models"; }

TEST(scheduler, greedy_generation_equals_the_reference_for_every_tiny_model) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  for (const std::string file : {"tiny-llama.F32.gguf", "tiny-llama3.F32.gguf", "tiny-qwen2.F32.gguf"}) {
    rig r;
    ASSERT_TRUE(r.open(models_dir(shared) / file, {}));
    const auto refs = references(models_dir(shared), file);
    ASSERT_EQ(refs.size(), 3u);
    for (const auto& p : refs) {
      collector c;
      r.submit(greedy_request(p.tokens, 16), c);
      ASSERT_TRUE(c.wait());
      EXPECT_EQ(c.ids, p.greedy) << file << ", prompt of " << p.tokens.size();
      EXPECT_EQ(c.stats.finish_reason, "length");
      EXPECT_EQ(c.stats.completion_tokens, 16);
      EXPECT_EQ(c.stats.prompt_tokens, static_cast<int>(p.tokens.size()));
      EXPECT_EQ(c.error, "");
      EXPECT_EQ(c.done_calls, 1);
    }
  }
}

TEST(scheduler, eight_concurrent_requests_generate_what_each_generates_alone) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const auto refs = references(models_dir(shared), "tiny-llama.F32.gguf");
  const auto& long_prompt = refs[2].tokens;  // 100 tokens
  std::vector<generation_request> requests;
  const int lengths[] = {1, 5, 17, 30, 48, 64, 77, 100};
  for (int i = 0; i < 8; ++i) {
    std::vector<int32_t> prompt(long_prompt.begin(), long_prompt.begin() + lengths[i]);
    if (i % 2 == 1) prompt.back() = 300 + i;  // not only prefixes of one another
    generation_request req = greedy_request(prompt, 6 + 3 * i);
    if (i >= 6) {  // two sampled requests: their seeds make them reproducible too
      req.sampling.temperature = 0.8f;
      req.sampling.top_p = 0.9f;
      req.sampling.seed = 1000 + i;
    }
    requests.push_back(req);
  }

  // A small token budget: prompts are split over steps and mixed with decoding sequences.
  scheduler_options options;
  options.max_batch_tokens = 40;
  std::vector<std::vector<int32_t>> alone;
  {
    rig r;
    ASSERT_TRUE(r.open(models_dir(shared) / "tiny-llama.F32.gguf", options));
    for (const auto& req : requests) {
      collector c;
      r.submit(req, c);
      ASSERT_TRUE(c.wait());
      ASSERT_EQ(c.ids.size(), static_cast<size_t>(req.max_tokens));
      alone.push_back(c.ids);
    }
  }
  rig r;
  ASSERT_TRUE(r.open(models_dir(shared) / "tiny-llama.F32.gguf", options));
  // Callbacks all run on the scheduler thread: count the requests between their first token and
  // their end, to see that they really were generated together.
  std::atomic<int> generating{0}, most_generating{0};
  std::vector<std::unique_ptr<collector>> cs;
  for (const auto& req : requests) {
    cs.push_back(std::make_unique<collector>());
    collector* c = cs.back().get();
    c->also = [&, c](const token_output&) {
      if (c->outputs.size() == 1) most_generating = std::max(most_generating.load(), ++generating);
    };
    c->also_done = [&] { --generating; };
    r.submit(req, *c);
  }
  for (size_t i = 0; i < cs.size(); ++i) {
    ASSERT_TRUE(cs[i]->wait());
    EXPECT_EQ(cs[i]->ids, alone[i]) << "request " << i;
    EXPECT_EQ(cs[i]->stats.finish_reason, "length");
  }
  EXPECT_GE(most_generating.load(), 4);
}

TEST(scheduler, max_tokens_cuts_the_greedy_continuation) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const auto refs = references(models_dir(shared), "tiny-llama.F32.gguf");
  rig r;
  ASSERT_TRUE(r.open(models_dir(shared) / "tiny-llama.F32.gguf", {}));
  collector c;
  r.submit(greedy_request(refs[1].tokens, 5), c);
  ASSERT_TRUE(c.wait());
  EXPECT_EQ(c.ids, std::vector<int32_t>(refs[1].greedy.begin(), refs[1].greedy.begin() + 5));
  EXPECT_EQ(c.stats.finish_reason, "length");
  EXPECT_EQ(c.stats.completion_tokens, 5);
}

TEST(scheduler, cancelling_mid_generation_frees_the_pages) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const auto refs = references(models_dir(shared), "tiny-llama.F32.gguf");
  rig r;
  ASSERT_TRUE(r.open(models_dir(shared) / "tiny-llama.F32.gguf", {}));
  const int64_t start = r.sched->current().kv_pages_free;
  EXPECT_EQ(start, r.sched->current().kv_pages_total);

  collector c;
  std::atomic<uint64_t> id{0};
  int seen = 0;
  c.also = [&](const token_output&) {  // cancels from the scheduler thread itself
    if (++seen >= 3 && id != 0) r.sched->cancel(id);
  };
  id = r.submit(greedy_request(refs[2].tokens, 300), c);
  ASSERT_TRUE(c.wait());
  EXPECT_EQ(c.stats.finish_reason, "cancelled");
  EXPECT_EQ(c.error, "");
  EXPECT_GE(c.stats.completion_tokens, 3);
  EXPECT_LT(c.stats.completion_tokens, 300);
  EXPECT_TRUE(r.wait_pages_free(start)) << r.sched->current().kv_pages_free << " of " << start;

  // Cancelling a finished or unknown request does nothing; the scheduler goes on.
  r.sched->cancel(id);
  r.sched->cancel(987654321);
  collector after;
  r.submit(greedy_request(refs[1].tokens, 4), after);
  ASSERT_TRUE(after.wait());
  EXPECT_EQ(after.stats.finish_reason, "length");
  EXPECT_EQ(c.done_calls, 1);
  EXPECT_TRUE(r.wait_pages_free(start));
}

TEST(scheduler, a_full_queue_refuses_with_a_retry_hint_and_queued_requests_can_be_cancelled) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const auto refs = references(models_dir(shared), "tiny-llama.F32.gguf");
  scheduler_options options;
  options.max_queue = 2;
  rig r;
  // 28 pages: the first request (17 + 400 tokens = 27 pages) leaves too little for any other.
  ASSERT_TRUE(r.open(models_dir(shared) / "tiny-llama.F32.gguf", options, 28 * 16));
  collector a;
  std::atomic<bool> started{false};
  // Each of the first request's tokens takes a little while (the callback runs on the scheduler
  // thread), so it is still running while the queue is examined: on a fast or idle machine the tiny
  // model would otherwise finish all 400 tokens first and free the pages early.
  a.also = [&](const token_output&) {
    started = true;
    std::this_thread::sleep_for(2ms);
  };
  const uint64_t id_a = r.submit(greedy_request(refs[1].tokens, 400), a);
  for (int i = 0; i < 2000 && !started; ++i) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(started);

  collector b, c, d;
  const uint64_t id_b = r.submit(greedy_request(refs[0].tokens, 4), b);
  r.submit(greedy_request(refs[0].tokens, 4), c);
  auto now = r.sched->current();
  EXPECT_EQ(now.queued, 2);
  EXPECT_EQ(now.running, 1);
  submit_status status = submit_status::ok;
  std::string error;
  EXPECT_EQ(r.sched->submit(greedy_request(refs[0].tokens, 4), d.callbacks(), &status, &error), 0u);
  EXPECT_EQ(status, submit_status::queue_full);
  EXPECT_NE(error.find("retry after"), std::string::npos) << error;
  EXPECT_GE(r.sched->current().retry_after_s, 1);

  r.sched->cancel(id_b);
  ASSERT_TRUE(b.wait());
  EXPECT_EQ(b.stats.finish_reason, "cancelled");
  EXPECT_EQ(b.stats.completion_tokens, 0);
  EXPECT_TRUE(b.outputs.empty());
  r.sched->cancel(id_a);
  ASSERT_TRUE(a.wait());
  EXPECT_EQ(a.stats.finish_reason, "cancelled");
  ASSERT_TRUE(c.wait());  // admitted once the first request's pages were freed
  EXPECT_EQ(c.stats.finish_reason, "length");
  EXPECT_EQ(c.ids, std::vector<int32_t>(refs[0].greedy.begin(), refs[0].greedy.begin() + 4));
  EXPECT_EQ(d.done_calls, 0);
}

TEST(scheduler, requests_that_can_never_run_are_refused_at_submit) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const auto refs = references(models_dir(shared), "tiny-llama.F32.gguf");
  scheduler_options options;
  options.context_size = 64;
  rig r;
  ASSERT_TRUE(r.open(models_dir(shared) / "tiny-llama.F32.gguf", options, 4 * 64));
  auto refused = [&](generation_request req, submit_status expected, const std::string& says) {
    collector c;
    submit_status status = submit_status::ok;
    std::string error;
    EXPECT_EQ(r.sched->submit(std::move(req), c.callbacks(), &status, &error), 0u);
    EXPECT_EQ(status, expected) << error;
    EXPECT_NE(error.find(says), std::string::npos) << error;
    EXPECT_EQ(c.done_calls, 0);
  };
  std::vector<int32_t> prompt64(refs[2].tokens.begin(), refs[2].tokens.begin() + 64);
  refused(greedy_request(prompt64, 4), submit_status::too_long, "64");
  refused(greedy_request({}, 4), submit_status::invalid, "no tokens");
  refused(greedy_request({1, 512}, 4), submit_status::invalid, "512");
  refused(greedy_request({1, -3}, 4), submit_status::invalid, "-3");
  auto bad = greedy_request({1, 5}, 4);
  bad.top_logprobs = 21;
  refused(bad, submit_status::invalid, "top_logprobs");
  bad = greedy_request({1, 5}, 4);
  bad.sampling.top_p = 0.0f;
  refused(bad, submit_status::invalid, "top_p");
  bad = greedy_request({1, 5}, 4);
  bad.stop = {""};
  refused(bad, submit_status::invalid, "stop");

  // One token short of the context: exactly one token is generated, then the context is full.
  collector c;
  std::vector<int32_t> prompt63(prompt64.begin(), prompt64.end() - 1);
  r.submit(greedy_request(prompt63, 10), c);
  ASSERT_TRUE(c.wait());
  EXPECT_EQ(c.stats.finish_reason, "length");
  EXPECT_EQ(c.stats.completion_tokens, 1);

  // A cache smaller than one request's reservation.
  rig small;
  ASSERT_TRUE(small.open(models_dir(shared) / "tiny-llama.F32.gguf", {}, 4 * 16));
  collector s;
  submit_status status = submit_status::ok;
  std::string error;
  EXPECT_EQ(small.sched->submit(greedy_request(refs[1].tokens, 100), s.callbacks(), &status, &error), 0u);
  EXPECT_EQ(status, submit_status::too_long);
  EXPECT_NE(error.find("pages"), std::string::npos) << error;
  // One that fits still runs.
  collector fits;
  small.submit(greedy_request(refs[1].tokens, 20), fits);
  ASSERT_TRUE(fits.wait());
  EXPECT_EQ(fits.stats.completion_tokens, 20);
}

TEST(scheduler, stop_strings_end_the_text_before_them_even_across_tokens) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const auto refs = references(models_dir(shared), "tiny-llama.F32.gguf");
  rig r;
  ASSERT_TRUE(r.open(models_dir(shared) / "tiny-llama.F32.gguf", {}));
  collector full;
  r.submit(greedy_request(refs[2].tokens, 16), full);
  ASSERT_TRUE(full.wait());
  const std::string text = full.text;
  ASSERT_EQ(full.outputs.size(), 16u);
  // A stop string straddling the boundary between two tokens of at least 2 bytes each.
  size_t cut = 3, boundary = 0;
  while (cut < 12 && (full.outputs[cut].text.size() < 2 || full.outputs[cut + 1].text.size() < 2)) ++cut;
  ASSERT_LT(cut, 12u) << text;
  for (size_t i = 0; i <= cut; ++i) boundary += full.outputs[i].text.size();
  const std::string stop = text.substr(boundary - 2, 4);
  const size_t first = text.find(stop);

  collector s;
  auto req = greedy_request(refs[2].tokens, 16);
  req.stop = {"\x01never", stop};
  r.submit(req, s);
  ASSERT_TRUE(s.wait());
  EXPECT_EQ(s.stats.finish_reason, "stop");
  EXPECT_EQ(s.text, text.substr(0, first));
  EXPECT_LE(s.stats.completion_tokens, static_cast<int>(cut) + 2);
  EXPECT_EQ(s.ids, std::vector<int32_t>(full.ids.begin(), full.ids.begin() + static_cast<long>(s.ids.size())));

  // The earliest of several stop strings wins.
  collector two;
  req.stop = {text.substr(boundary + 2, 3), text.substr(3, 2)};
  r.submit(req, two);
  ASSERT_TRUE(two.wait());
  EXPECT_EQ(two.text, text.substr(0, std::min(text.find(req.stop[0]), text.find(req.stop[1]))));

  // Text that could start a stop string is held back until it cannot: the last two bytes of
  // token `cut` come out with token cut + 1.
  collector held;
  const std::string piece = full.outputs[cut].text;
  req.stop = {piece.substr(piece.size() - 2) + "\x01"};
  r.submit(req, held);
  ASSERT_TRUE(held.wait());
  EXPECT_EQ(held.stats.finish_reason, "length");
  EXPECT_EQ(held.text, text);
  ASSERT_EQ(held.outputs.size(), 16u);
  EXPECT_EQ(held.outputs[cut].text, piece.substr(0, piece.size() - 2));
  EXPECT_EQ(held.outputs[cut + 1].text.substr(0, 2), piece.substr(piece.size() - 2));
}

TEST(scheduler, an_end_of_generation_token_stops_unless_ignore_eos) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const std::string file = "tiny-llama3.F32.gguf";
  const auto refs = references(models_dir(shared), file);
  rig r;
  ASSERT_TRUE(r.open(models_dir(shared) / file, {}));
  const auto& greedy = refs[0].greedy;
  size_t eog = 0;
  while (eog < greedy.size() && !r.tok->is_eog(greedy[eog])) ++eog;
  ASSERT_LT(eog, greedy.size()) << "the reference continuation has an end-of-generation token";
  collector c;
  auto req = greedy_request(refs[0].tokens, 16);
  req.ignore_eos = false;
  r.submit(req, c);
  ASSERT_TRUE(c.wait());
  EXPECT_EQ(c.stats.finish_reason, "stop");
  EXPECT_EQ(c.ids, std::vector<int32_t>(greedy.begin(), greedy.begin() + static_cast<long>(eog)));
  EXPECT_EQ(c.stats.completion_tokens, static_cast<int>(eog) + 1);  // the end token counts
}

TEST(scheduler, a_seed_makes_sampling_reproducible) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const auto refs = references(models_dir(shared), "tiny-llama.F32.gguf");
  rig r;
  ASSERT_TRUE(r.open(models_dir(shared) / "tiny-llama.F32.gguf", {}));
  auto run = [&](uint64_t seed) {
    auto req = greedy_request(refs[1].tokens, 24);
    req.sampling.temperature = 1.0f;
    req.sampling.seed = seed;
    collector c;
    r.submit(req, c);
    EXPECT_TRUE(c.wait());
    return c.ids;
  };
  const auto first = run(7);
  EXPECT_EQ(first.size(), 24u);
  EXPECT_EQ(run(7), first);
  EXPECT_NE(run(8), first);
  // Sampling at temperature 1 is not greedy decoding.
  EXPECT_NE(std::vector<int32_t>(first.begin(), first.begin() + 16), refs[1].greedy);
}

TEST(scheduler, a_repeated_prompt_reuses_the_cached_prefix) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const auto refs = references(models_dir(shared), "tiny-llama.F32.gguf");
  rig r;
  ASSERT_TRUE(r.open(models_dir(shared) / "tiny-llama.F32.gguf", {}));
  collector first, second, partial;
  r.submit(greedy_request(refs[2].tokens, 8), first);
  ASSERT_TRUE(first.wait());
  EXPECT_EQ(first.stats.cached_prompt_tokens, 0);
  r.submit(greedy_request(refs[2].tokens, 8), second);
  ASSERT_TRUE(second.wait());
  EXPECT_EQ(second.stats.cached_prompt_tokens, 96);  // whole pages of 16, the last token computed
  EXPECT_EQ(second.ids, first.ids);
  EXPECT_EQ(second.stats.prompt_tokens, 100);
  // A prompt sharing the first 40 tokens reuses the two full pages among them.
  std::vector<int32_t> other(refs[2].tokens.begin(), refs[2].tokens.begin() + 60);
  other[40] = 7;
  r.submit(greedy_request(other, 4), partial);
  ASSERT_TRUE(partial.wait());
  EXPECT_EQ(partial.stats.cached_prompt_tokens, 32);
}

TEST(scheduler, logprobs_and_timing_stats_are_reported) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const auto refs = references(models_dir(shared), "tiny-llama.F32.gguf");
  rig r;
  ASSERT_TRUE(r.open(models_dir(shared) / "tiny-llama.F32.gguf", {}));
  auto req = greedy_request(refs[2].tokens, 5);
  req.logprobs = true;
  req.top_logprobs = 3;
  collector c;
  const auto t0 = std::chrono::steady_clock::now();
  r.submit(req, c);
  ASSERT_TRUE(c.wait());
  const int64_t wall = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(c.outputs.size(), 5u);
  for (const auto& out : c.outputs) {
    ASSERT_EQ(out.top.size(), 3u);
    EXPECT_LE(out.logprob, 0.0f);
    // Greedy: the chosen token is the most likely one.
    EXPECT_EQ(out.top[0].first, r.tok->token_to_piece(out.id, true));
    EXPECT_FLOAT_EQ(out.top[0].second, out.logprob);
    EXPECT_GE(out.top[0].second, out.top[1].second);
    EXPECT_GE(out.top[1].second, out.top[2].second);
  }
  EXPECT_EQ(c.stats.prompt_tokens, 100);
  EXPECT_EQ(c.stats.completion_tokens, 5);
  EXPECT_GE(c.stats.queue_ns, 0);
  EXPECT_GT(c.stats.busy_ns, 0);
  EXPECT_GT(c.stats.first_token_ns, 0);
  EXPECT_LE(c.stats.first_token_ns, wall);
  EXPECT_LE(c.stats.busy_ns, wall);
  // Without logprobs nothing is reported.
  collector plain;
  r.submit(greedy_request(refs[1].tokens, 2), plain);
  ASSERT_TRUE(plain.wait());
  EXPECT_TRUE(plain.outputs[0].top.empty());
}

TEST(scheduler, stopping_ends_every_request_exactly_once) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const auto refs = references(models_dir(shared), "tiny-llama.F32.gguf");
  rig r;
  ASSERT_TRUE(r.open(models_dir(shared) / "tiny-llama.F32.gguf", {}, 28 * 16));
  collector running, queued;
  std::atomic<bool> started{false};
  running.also = [&](const token_output&) { started = true; };
  r.submit(greedy_request(refs[1].tokens, 400), running);
  for (int i = 0; i < 2000 && !started; ++i) std::this_thread::sleep_for(5ms);
  r.submit(greedy_request(refs[1].tokens, 400), queued);
  r.sched.reset();
  for (collector* c : {&running, &queued}) {
    ASSERT_TRUE(c->wait(1s));
    EXPECT_EQ(c->done_calls, 1);
    EXPECT_EQ(c->stats.finish_reason, "cancelled");
    EXPECT_EQ(c->error, "engine stopped");
  }
}

}  // namespace
}  // namespace gw::local_engine
