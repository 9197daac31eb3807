#include "providers/forwarder.h"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <random>

#include "providers/http_client.h"
#include "providers/sse.h"

namespace gw::providers {

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

namespace {

bool retryable_status(int status) { return status == 429 || status >= 500; }

std::string_view find_header(const header_list& h, std::string_view name) {
  for (const auto& [k, v] : h)
    if (k == name) return v;
  return {};
}

// retry-after in seconds (delta-seconds form; HTTP dates are rare from LLM APIs and ignored).
int parse_retry_after(std::string_view v) {
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  int secs = -1;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), secs);
  if (ec != std::errc() || secs < 0) return -1;
  return secs;
}

header_list relayed_headers(const header_list& upstream) {
  header_list out;
  for (const auto& [k, v] : upstream) {
    if (k == "content-type" || k == "retry-after" || k.starts_with("x-ratelimit-") ||
        k == "openai-processing-ms")
      out.emplace_back(k, v);
  }
  return out;
}

// Completion text of a non-streaming response, for estimating tokens when usage is missing.
std::int64_t estimate_completion_tokens(const nlohmann::json& body) {
  std::int64_t n = 0;
  auto choices = body.find("choices");
  if (choices == body.end() || !choices->is_array()) return 0;
  for (const auto& c : *choices) {
    if (!c.is_object()) continue;
    if (auto t = c.find("text"); t != c.end() && t->is_string())
      n += estimate_tokens(t->get_ref<const std::string&>());
    if (auto m = c.find("message"); m != c.end() && m->is_object()) {
      if (auto ct = m->find("content"); ct != m->end() && ct->is_string())
        n += estimate_tokens(ct->get_ref<const std::string&>());
      if (auto tc = m->find("tool_calls"); tc != m->end() && tc->is_array())
        for (const auto& call : *tc)
          if (call.is_object() && call.contains("function") && call["function"].is_object()) {
            const auto& fn = call["function"];
            if (auto a = fn.find("arguments"); a != fn.end() && a->is_string())
              n += estimate_tokens(a->get_ref<const std::string&>());
          }
    }
  }
  return n;
}

}  // namespace

struct forwarder::impl {
  asio::io_context& io;
  http_client& client;
  local_transport_resolver local;
  std::minstd_rand rng{std::random_device{}()};
  impl(asio::io_context& ctx, http_client& c, local_transport_resolver l) : io(ctx), client(c), local(std::move(l)) {}
};

std::string forwarder::upstream_body(const forward_request& request, const target_spec& target) {
  nlohmann::ordered_json body = *request.body;
  if (target.upstream_model) body["model"] = *target.upstream_model;
  if (request.stream) {
    auto& so = body["stream_options"];
    if (!so.is_object()) so = nlohmann::ordered_json::object();
    so["include_usage"] = true;
  }
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// One request's journey along its plan. Lives in shared_ptrs held by the http_client transfer,
// the backoff timer and the caller; everything runs on the forwarder's thread.
class forward_call_impl final : public forward_call,
                                public transfer_handler,
                                public std::enable_shared_from_this<forward_call_impl> {
 public:
  forward_call_impl(forwarder::impl& fw, forward_request req, std::vector<route_step> plan,
                    std::shared_ptr<forward_sink> sink)
      : fw_(fw),
        req_(std::move(req)),
        plan_(std::move(plan)),
        sink_(std::move(sink)),
        backoff_(fw.io) {}

  void begin() {
    asio::post(fw_.io, [self = shared_from_this()] { self->try_next(); });
  }

  // Estimated only when the upstream sends no usage: it costs a walk over the whole request.
  std::int64_t prompt_estimate() {
    if (req_.estimated_prompt_tokens < 0)
      req_.estimated_prompt_tokens = estimate_prompt_tokens(nlohmann::json(*req_.body));
    return req_.estimated_prompt_tokens;
  }

  usage stream_usage() {
    return accumulator_.finish(accumulator_.saw_usage() ? 0 : prompt_estimate());
  }

  // ---- forward_call ----
  void cancel() override {
    if (done_) return;
    if (transfer_) {
      transport_->cancel(*transfer_);
      transfer_.reset();
      end_attempt();
    }
    backoff_.cancel();
    outcome_.client_gone = true;
    if (!outcome_.committed)
      outcome_.error = forward_error{forward_errc::client_gone, "client closed the connection", -1};
    if (streaming_) {
      outcome_.tokens = stream_usage();
    } else if (!outcome_.attempts.empty() || attempt_started_) {
      // The upstream may have started work; bill the prompt we sent, estimated.
      outcome_.tokens.prompt_tokens = prompt_estimate();
      outcome_.tokens.estimated = true;
    }
    complete();
  }

  void resume() override {
    if (done_ || !sink_full_) return;
    sink_full_ = false;
    if (transfer_) transport_->resume(*transfer_);
  }

  // ---- transfer_handler ----
  void on_head(int status, const header_list& headers) override {
    status_ = status;
    headers_ = headers;
    streaming_ = req_.stream && status == 200;
    if (streaming_) {
      auto ct = find_header(headers, "content-type");
      if (!ct.empty() && ct.find("text/event-stream") == std::string_view::npos) streaming_ = false;
    }
  }

  bool on_data(std::string_view bytes) override {
    if (done_) return true;
    if (!streaming_) {
      if (body_.size() + bytes.size() > req_.max_response_bytes) {
        too_large_ = true;
        return true;  // keep draining; reported at on_done
      }
      body_.append(bytes);
      return true;
    }
    if (sink_full_) return false;  // not consumed; redelivered after resume()
    parser_.feed(bytes, [this](sse_event&& ev) { on_event(std::move(ev)); });
    return true;
  }

  void on_done(const transfer_result& r) override {
    transfer_.reset();
    end_attempt();
    if (done_) return;
    const route_step& step = plan_[step_index_];
    attempt_record rec{step.spec->name, status_, "", false};

    if (streaming_ && outcome_.committed) {
      // Bytes already reached the client: no retry is possible any more.
      if (r.status != transfer_status::ok || parser_.failed() || !saw_done_) {
        outcome_.stream_truncated = r.status != transfer_status::ok || parser_.failed();
        if (outcome_.stream_truncated) {
          rec.failure = std::string(to_string(r.status));
          std::string msg = R"({"error":{"message":"upstream stream ended early: )" +
                            std::string(to_string(r.status)) +
                            R"(","type":"upstream_error","param":null,"code":"upstream_stream_error"}})";
          sink_->on_body(format_sse(msg));
          step.health->record_failure(step.spec->breaker, clock_type::now());
        }
      }
      if (!outcome_.stream_truncated) step.health->record_success();
      outcome_.attempts.push_back(rec);
      outcome_.status = 200;
      outcome_.tokens = stream_usage();
      complete();
      return;
    }

    if (r.status != transfer_status::ok) {
      rec.failure = std::string(to_string(r.status));
      outcome_.attempts.push_back(rec);
      last_failure_ = r.status;
      have_last_response_ = false;
      step.health->record_failure(step.spec->breaker, clock_type::now());
      retry_or_fallback(-1);
      return;
    }
    if (too_large_) {
      rec.failure = "response_too_large";
      outcome_.attempts.push_back(rec);
      outcome_.error = forward_error{forward_errc::response_too_large,
                                    "upstream response exceeds the configured limit", -1};
      complete();
      return;
    }
    if (streaming_) {
      // A 200 event stream that ended before any event: relay it as an empty stream.
      step.health->record_success();
      outcome_.attempts.push_back(rec);
      commit(true);
      outcome_.status = 200;
      outcome_.tokens = stream_usage();
      complete();
      return;
    }
    if (retryable_status(status_)) {
      rec.failure = "http " + std::to_string(status_);
      outcome_.attempts.push_back(rec);
      step.health->record_failure(step.spec->breaker, clock_type::now());
      have_last_response_ = true;
      last_status_ = status_;
      last_headers_ = headers_;
      last_body_ = std::move(body_);
      last_target_ = step.spec->name;
      retry_or_fallback(parse_retry_after(find_header(headers_, "retry-after")));
      return;
    }
    // Success, or a client error the upstream is right about: relay it as it is.
    step.health->record_success();
    outcome_.attempts.push_back(rec);
    if (status_ >= 200 && status_ < 300) {
      std::optional<usage> u = extract_response_usage(body_);
      if (u) {
        outcome_.tokens = *u;
      } else {
        auto parsed = nlohmann::json::parse(body_, nullptr, false);
        outcome_.tokens.prompt_tokens = prompt_estimate();
        outcome_.tokens.completion_tokens =
            parsed.is_discarded() ? 0 : estimate_completion_tokens(parsed);
        outcome_.tokens.estimated = true;
      }
    }
    relay_buffered(status_, headers_, body_);
    complete();
  }

 private:
  void on_event(sse_event&& ev) {
    if (done_) return;
    if (ev.data == "[DONE]") {
      saw_done_ = true;
      if (!outcome_.committed) commit(true);
      sink_full_ = !sink_->on_body(format_sse_done()) || sink_full_;
      return;
    }
    auto chunk = nlohmann::json::parse(ev.data, nullptr, false);
    if (!chunk.is_discarded()) {
      accumulator_.add_chunk(chunk);
      if (!req_.client_wants_usage && stream_accumulator::is_usage_only_chunk(chunk)) return;
    }
    if (!outcome_.committed) commit(true);
    if (!sink_->on_body(format_sse(ev.data))) sink_full_ = true;
  }

  void commit(bool stream) {
    outcome_.committed = true;
    commit_info info;
    info.status = stream ? 200 : status_;
    info.headers = relayed_headers(headers_);
    info.target = plan_[step_index_].spec->name;
    info.upstream_time = upstream_time_now();
    info.stream = stream;
    outcome_.target = info.target;
    outcome_.upstream_model = upstream_model_name();
    sink_->on_commit(info);
  }

  void relay_buffered(int status, const header_list& headers, const std::string& body) {
    status_ = status;
    headers_ = headers;
    commit(false);
    outcome_.status = status;
    sink_->on_body(body);
  }

  std::string upstream_model_name() const {
    const auto* spec = plan_[step_index_].spec;
    if (spec->upstream_model) return *spec->upstream_model;
    auto it = req_.body->find("model");
    if (it != req_.body->end() && it->is_string()) return it->get<std::string>();
    return {};
  }

  void try_next() {
    if (done_) return;
    auto now = clock_type::now();
    while (step_index_ < plan_.size()) {
      const route_step& step = plan_[step_index_];
      std::string skip;
      if (!step.spec->enabled) {
        skip = "disabled: " + step.spec->disabled_reason;
      } else if (!step.health->breaker_allows(now)) {
        skip = "circuit open";
        int left = static_cast<int>((step.health->cooldown_left_ms(now) + 999) / 1000);
        min_cooldown_s_ = min_cooldown_s_ < 0 ? left : std::min(min_cooldown_s_, left);
      } else if (!step.health->try_acquire(step.spec->max_concurrency)) {
        skip = "at max concurrency";
        min_cooldown_s_ = min_cooldown_s_ < 0 ? 1 : std::min(min_cooldown_s_, 1);
      }
      if (skip.empty()) break;
      outcome_.attempts.push_back({step.spec->name, 0, "skipped (" + skip + ")", false});
      advance_target();
    }
    if (step_index_ >= plan_.size()) {
      give_up();
      return;
    }
    holding_slot_ = true;
    const target_spec& spec = *plan_[step_index_].spec;
    transport_ = &fw_.client;
    if (spec.kind == "local") {
      transport_ = fw_.local ? fw_.local(spec) : nullptr;
      if (!transport_) {
        // The engine did not load (its error is in the log): like an unreachable server.
        holding_slot_ = false;
        plan_[step_index_].health->release();
        outcome_.attempts.push_back({spec.name, 0, "local engine not loaded", false});
        last_failure_ = transfer_status::connect_failed;
        advance_target();
        return try_next();
      }
    }
    http_request hr;
    hr.url = spec.kind == "local" ? "local://" + spec.name + req_.endpoint : spec.base_url + req_.endpoint;
    hr.method = "POST";
    hr.body = forwarder::upstream_body(req_, spec);
    hr.timeout = spec.timeout;
    hr.headers.reserve(req_.headers.size() + spec.headers.size() + 3);
    hr.headers.emplace_back("Content-Type", "application/json");
    hr.headers.emplace_back("Accept", req_.stream ? "text/event-stream" : "application/json");
    if (!spec.api_key.empty()) hr.headers.emplace_back("Authorization", "Bearer " + spec.api_key);
    for (const auto& h : spec.headers) hr.headers.push_back(h);
    for (const auto& h : req_.headers) hr.headers.push_back(h);
    reset_attempt_state();
    attempt_started_ = clock_type::now();
    transfer_ = transport_->start(std::move(hr), shared_from_this());
  }

  void reset_attempt_state() {
    status_ = 0;
    headers_.clear();
    body_.clear();
    streaming_ = false;
    too_large_ = false;
    saw_done_ = false;
    parser_ = sse_parser();
    accumulator_ = stream_accumulator();
  }

  void end_attempt() {
    if (attempt_started_) {
      upstream_time_ += std::chrono::duration_cast<std::chrono::microseconds>(
          clock_type::now() - *attempt_started_);
      attempt_started_.reset();
    }
    if (holding_slot_) {
      plan_[step_index_].health->release();
      holding_slot_ = false;
    }
  }

  std::chrono::microseconds upstream_time_now() const {
    auto t = upstream_time_;
    if (attempt_started_)
      t += std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() -
                                                                 *attempt_started_);
    return t;
  }

  void advance_target() {
    ++step_index_;
    attempt_ = 0;
    if (step_index_ < plan_.size() && !outcome_.attempts.empty()) ++outcome_.fallbacks;
  }

  void retry_or_fallback(int retry_after_s) {
    const target_spec& spec = *plan_[step_index_].spec;
    ++attempt_;
    if (retry_after_s >= 0) last_retry_after_s_ = retry_after_s;
    std::chrono::milliseconds delay{0};
    bool retry = attempt_ < spec.retry.max_attempts;
    if (retry) {
      // Full jitter: uniform in [0, min(max, base * 2^(n-1))].
      auto cap = spec.retry.base_delay * (1LL << std::min(attempt_ - 1, 20));
      cap = std::min<std::chrono::milliseconds>(cap, spec.retry.max_delay);
      std::uniform_int_distribution<long long> dist(0, std::max<long long>(0, cap.count()));
      delay = std::chrono::milliseconds(dist(fw_.rng));
      if (retry_after_s >= 0) {
        auto ra = std::chrono::seconds(retry_after_s);
        if (ra > spec.retry.max_delay) {
          retry = false;  // the upstream asks for longer than we may wait: try the next target
        } else {
          delay = std::max<std::chrono::milliseconds>(delay, ra);
        }
      }
    }
    if (!retry) {
      advance_target();
      try_next();
      return;
    }
    ++outcome_.retries;
    if (!outcome_.attempts.empty()) outcome_.attempts.back().retried_after = true;
    auto wait_start = clock_type::now();
    backoff_.expires_after(delay);
    backoff_.async_wait([self = shared_from_this(), wait_start](const boost::system::error_code& ec) {
      if (ec || self->done_) return;
      self->upstream_time_ +=
          std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - wait_start);
      self->try_next();
    });
  }

  void give_up() {
    if (have_last_response_) {
      // Relay the last upstream error (e.g. 429 with its retry-after) as the upstream sent it.
      for (std::size_t i = 0; i < plan_.size(); ++i)
        if (plan_[i].spec->name == last_target_) step_index_ = i;
      relay_buffered(last_status_, last_headers_, last_body_);
      complete();
      return;
    }
    if (!last_failure_) {
      std::string why;
      for (const auto& a : outcome_.attempts) {
        if (!why.empty()) why += "; ";
        why += a.target + " " + a.failure;
      }
      if (plan_.empty()) why = "the route has no targets";
      outcome_.error = forward_error{forward_errc::no_target_available,
                                     "no upstream target is available (" + why + ")",
                                     min_cooldown_s_ < 0 ? 1 : std::max(1, min_cooldown_s_)};
    } else if (is_timeout(*last_failure_)) {
      outcome_.error = forward_error{forward_errc::upstream_timeout,
                                     "upstream timed out (" + std::string(to_string(*last_failure_)) +
                                         ") on every attempt",
                                     -1};
    } else {
      outcome_.error = forward_error{forward_errc::upstream_unreachable,
                                     "upstream failed (" + std::string(to_string(*last_failure_)) +
                                         ") on every attempt",
                                     -1};
    }
    if (step_index_ >= plan_.size() && !plan_.empty()) step_index_ = plan_.size() - 1;
    if (!plan_.empty()) outcome_.target = plan_[step_index_].spec->name;
    complete();
  }

  void complete() {
    if (done_) return;
    done_ = true;
    backoff_.cancel();
    outcome_.upstream_time = upstream_time_now();
    if (outcome_.target.empty() && !plan_.empty() && step_index_ < plan_.size())
      outcome_.target = plan_[step_index_].spec->name;
    auto sink = std::move(sink_);
    sink->on_complete(std::move(outcome_));
  }

  forwarder::impl& fw_;
  forward_request req_;
  std::vector<route_step> plan_;
  std::shared_ptr<forward_sink> sink_;
  asio::steady_timer backoff_;
  std::size_t step_index_ = 0;
  int attempt_ = 0;
  std::optional<transport::transfer_id> transfer_;
  transport* transport_ = nullptr;  // of the current attempt
  std::optional<clock_type::time_point> attempt_started_;
  std::chrono::microseconds upstream_time_{0};
  bool holding_slot_ = false;

  // Current attempt.
  int status_ = 0;
  header_list headers_;
  std::string body_;
  bool streaming_ = false;
  bool too_large_ = false;
  bool saw_done_ = false;
  bool sink_full_ = false;
  sse_parser parser_;
  stream_accumulator accumulator_;

  // Memory of failures for the final answer.
  std::optional<transfer_status> last_failure_;
  bool have_last_response_ = false;
  int last_status_ = 0;
  header_list last_headers_;
  std::string last_body_;
  std::string last_target_;
  int last_retry_after_s_ = -1;
  int min_cooldown_s_ = -1;

  bool done_ = false;
  forward_outcome outcome_;
};

forwarder::forwarder(asio::io_context& io, http_client& client, local_transport_resolver local)
    : impl_(std::make_unique<impl>(io, client, std::move(local))) {}
forwarder::~forwarder() = default;

std::shared_ptr<forward_call> forwarder::start(forward_request request,
                                               std::vector<route_step> plan,
                                               std::shared_ptr<forward_sink> sink) {
  auto call = std::make_shared<forward_call_impl>(*impl_, std::move(request), std::move(plan),
                                                  std::move(sink));
  call->begin();
  return call;
}

}  // namespace gw::providers
