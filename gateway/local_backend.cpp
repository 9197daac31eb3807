#include "gateway/local_backend.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cmath>
#include <deque>
#include <nlohmann/json.hpp>
#include <random>

#include "local_engine/backend.h"
#include "local_engine/engine.h"

namespace gw::gateway {

namespace asio = boost::asio;
using nlohmann::ordered_json;

// ---- one local model ----

std::shared_ptr<local_model> local_model::load(const providers::target_spec& spec, std::string* error) {
  std::shared_ptr<local_model> m(new local_model());
  m->spec_ = spec.local;
  local_engine::engine_options o;
  o.model_path = spec.local.model_path;
  o.context_size = spec.local.context_size;
  o.kv_budget_bytes = spec.local.kv_budget_bytes;
  o.threads = spec.local.threads;
  o.max_batch_tokens = spec.local.max_batch_tokens;
  o.max_queue = spec.local.max_queue;
  o.chat_template_override = spec.local.chat_template;
  o.weights_memory = spec.local.huge_pages ? local_engine::file_memory::huge_pages : local_engine::file_memory::mapped;
  m->engine_ = local_engine::engine::create(o, error);
  if (!m->engine_) return nullptr;
  local_engine::log_backend_once();
  return m;
}

local_model::~local_model() = default;

std::string local_model::model_name() const { return engine_->model_name(); }
int local_model::context_size() const { return engine_->context_size(); }

std::optional<std::chrono::microseconds> local_model::take_busy(const std::string& request_id) {
  std::lock_guard lock(busy_mu_);
  auto it = busy_.find(request_id);
  if (it == busy_.end()) return std::nullopt;
  auto v = it->second;
  busy_.erase(it);
  return v;
}

void local_model::record_busy(const std::string& request_id, std::chrono::microseconds busy) {
  if (request_id.empty()) return;
  std::lock_guard lock(busy_mu_);
  if (busy_.size() > 100000) busy_.clear();  // never taken (no ledger): do not grow without bound
  busy_[request_id] += busy;
}

namespace {

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string s;
  auto v = rng();
  for (int i = 0; i < 16; ++i) s += hex[(v >> (i * 4)) & 15];
  return s;
}

std::string error_json(const std::string& type, const std::string& message, const std::string& param,
                       const std::string& code) {
  ordered_json e{{"error",
                  {{"message", message},
                   {"type", type},
                   {"param", param.empty() ? ordered_json(nullptr) : ordered_json(param)},
                   {"code", code.empty() ? ordered_json(nullptr) : ordered_json(code)}}}};
  return e.dump();
}

// What one request asks of the engine, read from its OpenAI JSON. Errors name the field.
struct parsed_request {
  bool chat = true;
  bool stream = false;
  bool include_usage = false;
  bool logprobs = false;
  int top_logprobs = 0;
  local_engine::generation_request gen;
  std::string error, error_param;
};

parsed_request parse_request(const local_engine::engine& eng, const std::string& endpoint, const std::string& text) {
  parsed_request p;
  auto fail = [&](std::string msg, std::string param) {
    p.error = std::move(msg);
    p.error_param = std::move(param);
    return p;
  };
  auto body = ordered_json::parse(text, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return fail("The request body is not a JSON object.", "");
  if (endpoint.ends_with("/chat/completions")) p.chat = true;
  else if (endpoint.ends_with("/completions")) p.chat = false;
  else return fail("The local engine serves /v1/chat/completions and /v1/completions only.", "");
  p.stream = body.value("stream", false);
  if (auto so = body.find("stream_options"); so != body.end() && so->is_object())
    p.include_usage = so->value("include_usage", false);
  if (auto n = body.find("n"); n != body.end() && !(n->is_number_integer() && n->get<int>() == 1))
    return fail("The local engine generates one choice per request (n = 1).", "n");

  auto& g = p.gen;
  auto number = [&](const char* key, float lo, float hi, float* out) -> bool {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) return true;
    if (!it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < lo || it->get<double>() > hi) {
      fail(std::string("`") + key + "` must be a number in [" + std::to_string(lo).substr(0, 4) + ", " +
               std::to_string(hi).substr(0, 4) + "].",
           key);
      return false;
    }
    *out = it->get<float>();
    return true;
  };
  if (!number("temperature", 0, 2, &g.sampling.temperature) || !number("top_p", 0, 1, &g.sampling.top_p) ||
      !number("min_p", 0, 1, &g.sampling.min_p) ||
      !number("presence_penalty", -2, 2, &g.sampling.presence_penalty) ||
      !number("frequency_penalty", -2, 2, &g.sampling.frequency_penalty) ||
      !number("repetition_penalty", 0.01f, 10, &g.sampling.repetition_penalty))
    return p;
  if (auto it = body.find("top_k"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<std::int64_t>() < 0) return fail("`top_k` must be a non-negative integer.", "top_k");
    g.sampling.top_k = it->get<int>();
  }
  if (auto it = body.find("seed"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer()) return fail("`seed` must be an integer.", "seed");
    g.sampling.seed = static_cast<std::uint64_t>(it->get<std::int64_t>());
  }
  for (const char* k : {"max_completion_tokens", "max_tokens"}) {
    auto it = body.find(k);
    if (it == body.end() || it->is_null()) continue;
    if (!it->is_number_integer() || it->get<std::int64_t>() < 1 || it->get<std::int64_t>() > 1'000'000)
      return fail(std::string("`") + k + "` must be a positive integer.", k);
    g.max_tokens = it->get<int>();
    break;
  }
  if (auto it = body.find("stop"); it != body.end() && !it->is_null()) {
    if (it->is_string()) {
      if (!it->get<std::string>().empty()) g.stop.push_back(it->get<std::string>());
    } else if (it->is_array() && it->size() <= 4) {
      for (const auto& s : *it) {
        if (!s.is_string()) return fail("`stop` must be a string or a list of up to 4 strings.", "stop");
        if (!s.get<std::string>().empty()) g.stop.push_back(s.get<std::string>());
      }
    } else {
      return fail("`stop` must be a string or a list of up to 4 strings.", "stop");
    }
  }
  if (auto it = body.find("ignore_eos"); it != body.end() && it->is_boolean()) g.ignore_eos = it->get<bool>();
  if (p.chat) {
    if (auto it = body.find("logprobs"); it != body.end() && it->is_boolean()) p.logprobs = it->get<bool>();
    if (auto it = body.find("top_logprobs"); it != body.end() && !it->is_null()) {
      if (!it->is_number_integer() || it->get<int>() < 0 || it->get<int>() > 20)
        return fail("`top_logprobs` must be an integer in [0, 20].", "top_logprobs");
      if (!p.logprobs) return fail("`top_logprobs` needs `logprobs: true`.", "top_logprobs");
      p.top_logprobs = it->get<int>();
    }
  } else if (auto it = body.find("logprobs"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int>() < 0 || it->get<int>() > 5)
      return fail("`logprobs` must be an integer in [0, 5].", "logprobs");
    p.logprobs = true;
    p.top_logprobs = it->get<int>();
  }
  g.logprobs = p.logprobs;
  g.top_logprobs = p.top_logprobs;

  std::string err;
  if (p.chat) {
    auto msgs = body.find("messages");
    if (msgs == body.end() || !msgs->is_array() || msgs->empty())
      return fail("`messages` must be a non-empty list.", "messages");
    ordered_json tools = body.contains("tools") ? body["tools"] : ordered_json(nullptr);
    auto prompt = eng.chat_prompt(*msgs, tools, &err);
    if (!prompt) return fail("Cannot apply the model's chat template: " + err, "messages");
    g.prompt = std::move(*prompt);
  } else {
    auto pr = body.find("prompt");
    std::string text;
    if (pr != body.end() && pr->is_string()) text = pr->get<std::string>();
    else if (pr != body.end() && pr->is_array() && pr->size() == 1 && (*pr)[0].is_string()) text = (*pr)[0].get<std::string>();
    else return fail("`prompt` must be a string (the local engine takes one prompt per request).", "prompt");
    g.prompt = eng.text_prompt(text);
  }
  return p;
}

// One transfer: the engine request and what has been sent of its response. Lives on the I/O
// thread; the engine's callbacks post onto it.
struct transfer_state : std::enable_shared_from_this<transfer_state> {
  std::shared_ptr<providers::transfer_handler> handler;
  std::shared_ptr<local_model> model;
  std::string request_id;
  parsed_request req;
  std::string id;  // chatcmpl-... / cmpl-...
  std::int64_t created = 0;
  std::string model_name;
  std::uint64_t engine_id = 0;
  bool head_sent = false;
  bool cancelled = false;
  bool finished = false;
  bool paused = false;
  std::deque<std::string> pending;  // bytes waiting while the handler is paused
  std::string text;                 // non-streaming: the whole completion
  ordered_json logprobs = ordered_json::array();
  std::optional<providers::transfer_result> done_result;

  void send_head(int status, providers::header_list headers) {
    if (head_sent) return;
    head_sent = true;
    handler->on_head(status, headers);
  }
  void deliver(std::string bytes) {
    if (paused || !pending.empty()) {
      pending.push_back(std::move(bytes));
      return;
    }
    if (!handler->on_data(bytes)) {
      // Not consumed: delivered again on resume.
      paused = true;
      pending.push_front(std::move(bytes));
    }
  }
  void drain() {
    paused = false;
    while (!pending.empty() && !cancelled) {
      if (!handler->on_data(pending.front())) {
        paused = true;
        return;
      }
      pending.pop_front();
    }
    if (done_result && !cancelled && !finished) {
      finished = true;
      handler->on_done(*done_result);
    }
  }
  void finish() {
    done_result = providers::transfer_result{};
    if (!paused && pending.empty() && !finished) {
      finished = true;
      handler->on_done(*done_result);
    }
  }
  void fail(int status, const std::string& body, int retry_after_s = -1) {
    providers::header_list h{{"content-type", "application/json"}};
    if (retry_after_s >= 0) h.emplace_back("retry-after", std::to_string(retry_after_s));
    send_head(status, h);
    deliver(body);
    finish();
  }

  ordered_json logprob_entry(const local_engine::token_output& t) const {
    ordered_json top = ordered_json::array();
    for (const auto& [piece, lp] : t.top) top.push_back({{"token", piece}, {"logprob", lp}});
    return {{"token", t.text}, {"logprob", t.logprob}, {"top_logprobs", top}};
  }

  // The fields every response object and stream chunk starts with.
  ordered_json envelope(const char* object) const {
    ordered_json e;
    e["id"] = id;
    e["object"] = object;
    e["created"] = created;
    e["model"] = model_name;
    return e;
  }

  std::string chunk(const ordered_json& delta_or_text, const ordered_json& finish, const ordered_json* lp) const {
    ordered_json c = envelope(req.chat ? "chat.completion.chunk" : "text_completion");
    ordered_json choice;
    choice["index"] = 0;
    if (req.chat) choice["delta"] = delta_or_text;
    else choice["text"] = delta_or_text;
    choice["logprobs"] = lp ? *lp : ordered_json(nullptr);
    choice["finish_reason"] = finish;
    c["choices"] = ordered_json::array({choice});
    return "data: " + c.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n";
  }

  void on_token(const local_engine::token_output& t) {
    if (cancelled || finished) return;
    if (req.logprobs && t.id >= 0) logprobs.push_back(logprob_entry(t));
    if (!req.stream) {
      text += t.text;
      return;
    }
    if (t.text.empty() && !(req.logprobs && t.id >= 0)) return;
    ordered_json lp;
    if (req.logprobs && t.id >= 0) lp = req.chat ? ordered_json{{"content", ordered_json::array({logprob_entry(t)})}}
                                                 : ordered_json{{"tokens", {t.text}}, {"token_logprobs", {t.logprob}}};
    deliver(chunk(req.chat ? ordered_json{{"content", t.text}} : ordered_json(t.text), nullptr,
                  req.logprobs && t.id >= 0 ? &lp : nullptr));
  }

  ordered_json usage(const local_engine::generation_stats& s) const {
    return {{"prompt_tokens", s.prompt_tokens},
            {"completion_tokens", s.completion_tokens},
            {"total_tokens", s.prompt_tokens + s.completion_tokens},
            {"prompt_tokens_details", {{"cached_tokens", s.cached_prompt_tokens}}}};
  }

  void on_done(const local_engine::generation_stats& s, const std::string& error) {
    model->record_busy(request_id, std::chrono::microseconds((s.busy_ns + 999) / 1000));
    if (cancelled || finished) return;
    if (!error.empty() && s.finish_reason != "stop" && s.finish_reason != "length") {
      if (!req.stream || s.completion_tokens == 0) {
        // Nothing useful was produced: an error the forwarder may retry elsewhere.
        if (!head_sent) return fail(500, error_json("server_error", "local engine: " + error, "", "engine_error"));
      }
    }
    const std::string fr = s.finish_reason == "length" ? "length" : "stop";
    if (req.stream) {
      deliver(chunk(req.chat ? ordered_json::object() : ordered_json(""), fr, nullptr));
      if (req.include_usage) {
        ordered_json c{{"id", id},
                       {"object", req.chat ? "chat.completion.chunk" : "text_completion"},
                       {"created", created},
                       {"model", model_name},
                       {"choices", ordered_json::array()},
                       {"usage", usage(s)}};
        deliver("data: " + c.dump() + "\n\n");
      }
      deliver("data: [DONE]\n\n");
      return finish();
    }
    ordered_json r = envelope(req.chat ? "chat.completion" : "text_completion");
    ordered_json choice;
    choice["index"] = 0;
    if (req.chat) choice["message"] = {{"role", "assistant"}, {"content", text}};
    else choice["text"] = text;
    if (req.logprobs) {
      if (req.chat) {
        choice["logprobs"] = {{"content", logprobs}};
      } else {
        ordered_json tokens = ordered_json::array(), lps = ordered_json::array();
        for (const auto& e : logprobs) {
          tokens.push_back(e["token"]);
          lps.push_back(e["logprob"]);
        }
        choice["logprobs"] = {{"tokens", tokens}, {"token_logprobs", lps}};
      }
    } else {
      choice["logprobs"] = nullptr;
    }
    choice["finish_reason"] = fr;
    r["choices"] = ordered_json::array({choice});
    r["usage"] = usage(s);
    send_head(200, {{"content-type", "application/json"}});
    deliver(r.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    finish();
  }
};

class local_transport final : public providers::transport {
 public:
  local_transport(asio::io_context& io, std::shared_ptr<local_model> model) : io_(io), model_(std::move(model)) {}
  ~local_transport() override {
    *alive_ = false;
    for (auto& [id, st] : transfers_) {
      st->cancelled = true;
      if (st->engine_id) model_->engine().cancel(st->engine_id);
    }
  }

  transfer_id start(providers::http_request request, std::shared_ptr<providers::transfer_handler> handler) override {
    transfer_id tid = next_id_++;
    auto st = std::make_shared<transfer_state>();
    st->handler = std::move(handler);
    st->model = model_;
    st->created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    st->model_name = model_->model_name();
    for (const auto& [k, v] : request.headers)
      if (k == "X-Tollgate-Request-Id") st->request_id = v;
    transfers_[tid] = st;
    // Parsing and tokenizing happen here, on the I/O thread, after start() returns.
    asio::post(io_, [this, alive = alive_, tid, st, req = std::move(request)]() mutable {
      if (!*alive || st->cancelled) return;
      begin(tid, st, req);
    });
    return tid;
  }

  void cancel(transfer_id id) override {
    auto it = transfers_.find(id);
    if (it == transfers_.end()) return;
    it->second->cancelled = true;
    if (it->second->engine_id) model_->engine().cancel(it->second->engine_id);
    transfers_.erase(it);
  }

  void resume(transfer_id id) override {
    auto it = transfers_.find(id);
    if (it == transfers_.end()) return;
    auto st = it->second;
    st->drain();
    if (st->finished) transfers_.erase(id);
  }

 private:
  void begin(transfer_id tid, const std::shared_ptr<transfer_state>& st, const providers::http_request& hr) {
    const auto path_at = hr.url.find('/', std::string("local://").size());
    const std::string endpoint = path_at == std::string::npos ? "" : hr.url.substr(path_at);
    st->req = parse_request(model_->engine(), endpoint, hr.body);
    if (!st->req.error.empty()) {
      st->fail(400, error_json("invalid_request_error", st->req.error, st->req.error_param, ""));
      return forget(tid, st);
    }
    st->id = (st->req.chat ? "chatcmpl-" : "cmpl-") + random_suffix();
    local_engine::generation_callbacks cb;
    asio::io_context* io = &io_;
    cb.on_token = [io, st](const local_engine::token_output& t) {
      asio::post(*io, [st, t] { st->on_token(t); });
    };
    cb.on_done = [this, alive = alive_, io, st, tid](const local_engine::generation_stats& s, const std::string& error) {
      asio::post(*io, [this, alive, st, tid, s, error] {
        if (!*alive) return;
        st->on_done(s, error);
        if (st->finished) forget(tid, st);
      });
    };
    local_engine::submit_status status = local_engine::submit_status::ok;
    std::string err;
    const int prompt_tokens = static_cast<int>(st->req.gen.prompt.size());
    st->engine_id = model_->engine().submit(std::move(st->req.gen), std::move(cb), &status, &err);
    if (st->engine_id) {
      if (st->req.stream) {
        st->send_head(200, {{"content-type", "text/event-stream"}});
        if (st->req.chat) st->deliver(st->chunk(ordered_json{{"role", "assistant"}, {"content", ""}}, nullptr, nullptr));
      }
      return;
    }
    switch (status) {
      case local_engine::submit_status::queue_full:
        st->fail(503, error_json("server_error", "The local engine is busy: " + err, "", "engine_overloaded"),
                 std::max(1, model_->engine().current().retry_after_s));
        break;
      case local_engine::submit_status::too_long:
        st->fail(400, error_json("invalid_request_error",
                                 "This model's maximum context length is " + std::to_string(model_->context_size()) +
                                     " tokens; the prompt has " + std::to_string(prompt_tokens) + " (" + err + ").",
                                 "messages", "context_length_exceeded"));
        break;
      default:
        st->fail(400, error_json("invalid_request_error", err, "", ""));
    }
    forget(tid, st);
  }

  // The transfer is over for us once its last byte was accepted; resume() may still drain it.
  void forget(transfer_id tid, const std::shared_ptr<transfer_state>& st) {
    if (st->finished) transfers_.erase(tid);
  }

  asio::io_context& io_;
  std::shared_ptr<local_model> model_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // posted callbacks check it
  std::unordered_map<transfer_id, std::shared_ptr<transfer_state>> transfers_;
  transfer_id next_id_ = 1;
};

bool same_settings(const providers::local_model_spec& a, const providers::local_model_spec& b) {
  return a.model_path == b.model_path && a.context_size == b.context_size && a.kv_budget_bytes == b.kv_budget_bytes &&
         a.threads == b.threads && a.max_batch_tokens == b.max_batch_tokens && a.max_queue == b.max_queue &&
         a.chat_template == b.chat_template && a.huge_pages == b.huge_pages;
}

}  // namespace

std::unique_ptr<providers::transport> local_model::make_transport(asio::io_context& io) {
  // The transport holds the model alive while it has transfers (a reload may drop the model).
  return std::make_unique<local_transport>(io, shared_from_this());
}

std::shared_ptr<const local_models> local_models::build(const config& cfg, const local_models* previous,
                                                        std::map<std::string, std::string>* errors) {
  auto out = std::make_shared<local_models>();
  for (const auto& [name, spec] : cfg.targets) {
    if (spec.kind != "local" || !spec.enabled) continue;
    if (previous) {
      auto old = previous->find(name);
      if (old && same_settings(old->spec(), spec.local)) {
        out->models_[name] = old;
        continue;
      }
    }
    std::string err;
    auto m = local_model::load(spec, &err);
    if (!m) {
      if (errors) (*errors)[name] = err;
      continue;
    }
    out->models_[name] = std::move(m);
  }
  return out;
}

std::shared_ptr<local_model> local_models::find(const std::string& target) const {
  auto it = models_.find(target);
  return it == models_.end() ? nullptr : it->second;
}

}  // namespace gw::gateway
