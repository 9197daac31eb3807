// One client connection: reads requests with Beast, answers simple endpoints directly and hands
// model requests to the thread's forwarder, relaying its answer (whole or as an SSE stream).
// A session lives on one worker thread (shared_from_this keeps it alive across async steps).
#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "gateway/api.h"
#include "gateway/app.h"
#include "gateway/auth.h"
#include "gateway/breakeven.h"
#include "gateway/reports.h"
#include "ledger/ledger.h"
#include "gateway/routing.h"
#include "local_engine/engine.h"
#include "providers/usage.h"

namespace gw::gateway {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

std::string worker::next_request_id() {
  if (id_seed == 0) id_seed = rng() | 1;
  char buf[40];
  std::uint64_t c = ++counter;
  std::snprintf(buf, sizeof buf, "tg-%016llx%02x%06llx", static_cast<unsigned long long>(id_seed),
                static_cast<unsigned>(index & 0xff), static_cast<unsigned long long>(c & 0xffffff));
  if ((c & 0xffffff) == 0) id_seed = rng() | 1;  // counter wrapped: new random prefix
  return buf;
}

namespace {

double seconds(clock_type::duration d) { return std::chrono::duration<double>(d).count(); }

template <class Stream>
tcp::socket& raw_socket(Stream& s) {
  return beast::get_lowest_layer(s).socket();
}

// Per-request state, reset for every request on a keep-alive connection.
struct request_state {
  std::string id;
  std::string client_request_id;
  clock_type::time_point start;
  std::chrono::system_clock::time_point wall_start;
  std::string endpoint;
  client_identity client;
  std::string model, route, reason;
  bool stream = false;
  bool forwarding = false;
  std::shared_ptr<const config> cfg;  // pins targets for the forwarder
  std::shared_ptr<providers::forward_call> call;
  // Non-streaming relay.
  int relay_status = 0;
  providers::header_list relay_headers;
  std::string relay_body;
  std::string target;
  std::chrono::microseconds upstream_time{0};
  std::optional<clock_type::time_point> first_byte;
  bool done = false;
  bool model_request = false;  // authenticated model endpoint: goes to the ledger
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case names (routing rules)
  policies::redaction_map redaction;  // values redacted before an external target, restored after
  std::string stream_hold;            // streamed bytes held back: a placeholder may continue
  std::string privacy;                // detected types and counts ("EMAIL_ADDRESS=2"), never values
  std::optional<std::chrono::microseconds> engine_busy;  // local targets: taken once from the engine
  std::shared_ptr<spend_state> spend;  // set when a budget reservation is held
  policies::reservation reservation;
  std::string budget_note;  // soft budget exceeded
  bool recorded = false;       // handed to the ledger
  ledger::request_record committed_record;
};

template <class Stream>
class http_session final : public session_base,
                           public providers::forward_sink,
                           public std::enable_shared_from_this<http_session<Stream>> {
 public:
  http_session(app_state& app, worker& w, Stream&& stream, bool over_capacity)
      : app_(app), w_(w), stream_(std::move(stream)), over_capacity_(over_capacity) {}

  ~http_session() override {
    w_.sessions.erase(this);
    app_.stats->connection_closed();
  }

  void start() {
    app_.stats->connection_opened();
    w_.sessions.emplace(this, this->weak_from_this());
    if constexpr (is_tls) {
      auto cfg = app_.cfg();
      beast::get_lowest_layer(stream_).expires_after(cfg->server.limits.read_timeout);
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) return self->close();
                                self->do_read();
                              });
    } else {
      do_read();
    }
  }

  // ---- session_base ----
  void drain() override {
    draining_ = true;
    if (!req_ && !writing_) close();
  }
  void abort() override {
    draining_ = true;
    if (req_ && req_->call) req_->call->cancel();
    close();
  }

  // ---- forward_sink ----
  void on_commit(const providers::commit_info& info) override {
    if (!req_) return;
    req_->target = info.target;
    req_->upstream_time = info.upstream_time;
    if (!info.stream) {
      req_->relay_status = info.status;
      req_->relay_headers = info.headers;
      return;  // the body follows in on_body, written at on_complete
    }
    req_->first_byte = clock_type::now();
    stream_res_.emplace(http::status::ok, 11);
    auto& res = *stream_res_;
    res.set(http::field::content_type, "text/event-stream; charset=utf-8");
    res.set(http::field::cache_control, "no-cache");
    res.set("x-accel-buffering", "no");
    for (const auto& [k, v] : info.headers)
      if (k != "content-type") res.set(k, v);
    common_headers(res, overhead_ms(info.upstream_time));
    res.keep_alive(keep_alive_ && !draining_);
    res.chunked(true);
    // The head goes out with the first events in one write (see flush_stream).
    std::ostringstream head;
    head << res.base();
    stream_head_ = head.str();
    schedule_flush();
  }

  // Coalesces everything one upstream read produced (often several events, sometimes the whole
  // stream) into a single write: the flush runs after the current handler returns.
  void schedule_flush() {
    if (writing_ || flush_scheduled_ || closed_) return;
    flush_scheduled_ = true;
    asio::post(w_.io, [self = this->shared_from_this()] {
      self->flush_scheduled_ = false;
      if (!self->writing_ && !self->stream_failed_) self->flush_stream();
    });
  }

  bool on_body(std::string_view bytes) override {
    if (!req_) return true;
    if (!stream_res_) {
      req_->relay_body.append(bytes);
      return true;
    }
    if (req_->redaction.empty()) {
      pending_.append(bytes);
    } else {
      // Placeholders become the client's values again; a placeholder cut by a read boundary waits
      // for the rest.
      req_->stream_hold.append(bytes);
      std::size_t keep = req_->redaction.partial_suffix(req_->stream_hold);
      std::string_view ready(req_->stream_hold.data(), req_->stream_hold.size() - keep);
      pending_ += req_->redaction.restore(ready, /*escape_json=*/true);
      req_->stream_hold.erase(0, ready.size());
    }
    schedule_flush();
    return pending_.size() < limits().max_stream_buffer_bytes;
  }

  void on_complete(providers::forward_outcome&& out) override {
    if (!req_) return;
    outcome_ = std::move(out);
    req_->call.reset();
    if (stream_res_) {
      if (stream_failed_) return;
      if (!req_->stream_hold.empty()) {
        pending_ += req_->redaction.restore(req_->stream_hold, /*escape_json=*/true);
        req_->stream_hold.clear();
      }
      // The last events and the terminating chunk wait for the ledger and then leave in one write
      // (the durability promise; for short streams this also saves a write).
      hold_flush_ = true;
      commit_to_ledger(make_record(outcome_->client_gone ? 499 : 200, ""), [self = this->shared_from_this()] {
        self->hold_flush_ = false;
        self->finish_stream_ = true;
        self->schedule_flush();
      });
      return;
    }
    stop_watch();
    if (outcome_->client_gone) {
      finish_request(499, "client_closed_request");
      return close();
    }
    if (outcome_->error) {
      auto err = from_forward_error(*outcome_->error);
      return send_error(err);
    }
    // Relay the upstream's body byte for byte.
    http::response<http::string_body> res{static_cast<http::status>(req_->relay_status), 11};
    bool has_ct = false;
    for (const auto& [k, v] : req_->relay_headers) {
      res.set(k, v);
      if (k == "content-type") has_ct = true;
    }
    if (!has_ct) res.set(http::field::content_type, "application/json");
    res.body() = req_->redaction.empty() ? std::move(req_->relay_body)
                                          : req_->redaction.restore(req_->relay_body, /*escape_json=*/true);
    write_response(std::move(res), std::string());
  }

 private:
  static constexpr bool is_tls = !std::is_same_v<Stream, beast::tcp_stream>;

  const limits_config& limits() const { return limits_; }

  void close() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    raw_socket(stream_).shutdown(tcp::socket::shutdown_both, ec);
    raw_socket(stream_).close(ec);
  }

  // ---- reading ----
  void do_read() {
    if (closed_) return;
    if (draining_ || app_.draining.load(std::memory_order_relaxed)) return close();
    auto cfg = app_.cfg();
    limits_ = cfg->server.limits;
    parser_.emplace();
    parser_->body_limit(limits_.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(limits_.max_header_bytes));
    beast::get_lowest_layer(stream_).expires_after(requests_served_ ? limits_.idle_timeout
                                                                    : limits_.read_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                              self->on_header(ec);
                            });
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    // The client is talking: from here the whole request must arrive within read_timeout.
    beast::get_lowest_layer(stream_).expires_after(limits_.read_timeout);
    if (parser_->content_length() && *parser_->content_length() > limits_.max_body_bytes)
      return on_read_error(http::error::body_limit);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec2, std::size_t) {
                       if (ec2) return self->on_read_error(ec2);
                       self->on_request();
                     });
  }

  void on_read_error(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == asio::error::eof || ec == asio::ssl::error::stream_truncated)
      return close();
    // A malformed or oversized request: answer it, then close (the stream is out of sync).
    begin_request_state();
    keep_alive_ = false;
    req_->endpoint = "invalid";
    if (ec == http::error::body_limit)
      return send_error(api_error::too_large("Request body exceeds the limit of " +
                                             std::to_string(limits_.max_body_bytes) + " bytes."));
    if (ec == http::error::header_limit) {
      api_error e{431, "invalid_request_error", "Request headers are too large.", std::nullopt,
                  "headers_too_large"};
      return send_error(e);
    }
    return send_error(api_error::invalid_request("Malformed HTTP request: " + ec.message()));
  }

  void begin_request_state() {
    req_.emplace();
    req_->id = w_.next_request_id();
    req_->start = clock_type::now();
    req_->wall_start = std::chrono::system_clock::now();
    app_.stats->request_started();
    outcome_.reset();
  }

  void on_request() {
    auto& msg = parser_->get();
    begin_request_state();
    beast::get_lowest_layer(stream_).expires_never();  // upstream waits have their own timeouts
    keep_alive_ = msg.keep_alive();
    for (const auto& f : msg) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req_->headers.emplace_back(std::move(name), std::string(f.value()));
    }
    if (auto it = msg.find("x-request-id"); it != msg.end())
      req_->client_request_id = std::string(it->value().substr(0, 128));
    std::string_view target = msg.target();
    std::string_view path = target.substr(0, target.find('?'));
    req_->endpoint = std::string(path);
    const auto method = msg.method();
    if (over_capacity_) {
      keep_alive_ = false;
      return send_error(api_error::unavailable("Too many connections.", 1, "too_many_connections"));
    }

    if (path == "/healthz") {
      if (method != http::verb::get && method != http::verb::head)
        return send_error(api_error::method_not_allowed("Use GET /healthz."));
      return send_json(200, R"({"status":"ok"})");
    }
    if (path == "/readyz") return send_readyz();
    if (path == "/metrics") return send_metrics();

    auto cfg = app_.cfg();
    req_->cfg = cfg;
    auto who = authenticate(cfg->auth, msg[http::field::authorization]);
    if (auto* err = std::get_if<api_error>(&who)) {
      // Unknown paths still get 404 first only for authenticated clients: no probing.
      return send_error(*err);
    }
    req_->client = std::get<client_identity>(who);

    if (path == "/v1/models") {
      if (method != http::verb::get) return send_error(api_error::method_not_allowed("Use GET /v1/models."));
      return send_json(200, models_body(*cfg));
    }
    if (path.starts_with("/v1/models/")) {
      if (method != http::verb::get) return send_error(api_error::method_not_allowed("Use GET /v1/models/{model}."));
      auto body = model_body(*cfg, path.substr(std::string_view("/v1/models/").size()));
      if (!body)
        return send_error(api_error::not_found("The model `" + std::string(path.substr(11)) + "` does not exist.",
                                               "model_not_found"));
      return send_json(200, std::move(*body));
    }
    if (path == "/v1/reports/daily") {
      if (!req_->client.admin) return send_error(api_error::forbidden("Reports need an admin key."));
      if (method != http::verb::get) return send_error(api_error::method_not_allowed("Use GET /v1/reports/daily."));
      if (!app_.hooks.ledger)
        return send_error(api_error::not_found("The ledger is disabled (ledger.enabled: false).", "ledger_disabled"));
      auto q = target.find('?');
      auto answer = daily_report_http(*app_.hooks.ledger, q == std::string_view::npos ? "" : target.substr(q + 1));
      http::response<http::string_body> res{static_cast<http::status>(answer.status), 11};
      res.set(http::field::content_type, answer.content_type);
      res.body() = std::move(answer.body);
      return write_response(std::move(res), answer.status == 200 ? "" : "report_error");
    }
    if (path == "/v1/reports/breakeven") {
      if (!req_->client.admin) return send_error(api_error::forbidden("Reports need an admin key."));
      if (method != http::verb::get) return send_error(api_error::method_not_allowed("Use GET /v1/reports/breakeven."));
      if (!app_.hooks.ledger)
        return send_error(api_error::not_found("The ledger is disabled (ledger.enabled: false).", "ledger_disabled"));
      auto q = target.find('?');
      auto answer = breakeven_report_http(*app_.hooks.ledger, *cfg, q == std::string_view::npos ? "" : target.substr(q + 1));
      http::response<http::string_body> res{static_cast<http::status>(answer.status), 11};
      res.set(http::field::content_type, answer.content_type);
      res.body() = std::move(answer.body);
      return write_response(std::move(res), answer.status == 200 ? "" : "report_error");
    }
    if (path == "/admin/backup") {
      if (!req_->client.admin) return send_error(api_error::forbidden("This endpoint needs an admin key."));
      if (method != http::verb::post) return send_error(api_error::method_not_allowed("Use POST /admin/backup."));
      if (!app_.hooks.ledger)
        return send_error(api_error::not_found("The ledger is disabled (ledger.enabled: false).", "ledger_disabled"));
      // Always under <data_dir>/backups: an HTTP caller never chooses a path on this machine.
      auto stamp = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
      auto dir = std::filesystem::path(cfg->server.data_dir) / "backups" / ("ledger-" + std::to_string(stamp) + "-" + req_->id);
      std::error_code fec;
      std::filesystem::create_directories(dir.parent_path(), fec);
      auto st = app_.hooks.ledger->checkpoint(dir.string());
      if (!st.ok()) return send_error(api_error::internal("backup failed: " + st.message));
      nlohmann::ordered_json j;
      j["status"] = "ok";
      j["dir"] = dir.string();
      return send_json(200, j.dump());
    }
    if (path == "/admin/reload") {
      if (!req_->client.admin) return send_error(api_error::forbidden("This endpoint needs an admin key."));
      if (method != http::verb::post) return send_error(api_error::method_not_allowed("Use POST /admin/reload."));
      std::string error;
      bool ok = app_.reload && app_.reload(&error);
      if (!ok) {
        api_error e = api_error::invalid_request("Reload failed; the running config is kept: " + error);
        e.code = "config_invalid";
        return send_error(e);
      }
      return send_json(200, R"({"status":"reloaded"})");
    }
    std::optional<model_endpoint> ep;
    if (path == "/v1/chat/completions") ep = model_endpoint::chat_completions;
    else if (path == "/v1/completions") ep = model_endpoint::completions;
    else if (path == "/v1/embeddings") ep = model_endpoint::embeddings;
    if (!ep) {
      return send_error(api_error::not_found("Unknown request URL: " + std::string(msg.method_string()) +
                                                 " " + std::string(path) + ".",
                                             "unknown_url"));
    }
    if (method != http::verb::post)
      return send_error(api_error::method_not_allowed("Use POST " + std::string(path) + "."));
    req_->model_request = true;
    auto parsed = parse_model_request(*ep, msg.body());
    if (auto* err = std::get_if<api_error>(&parsed)) return send_error(*err);
    forward(*ep, std::move(std::get<model_request>(parsed)), *cfg);
  }

  void forward(model_endpoint ep, model_request mr, const config& cfg) {
    req_->model = mr.model;
    req_->stream = mr.stream;
    const model_alias* alias = cfg.find_alias(mr.model);
    if (!alias) {
      return send_error(api_error::not_found("The model `" + mr.model + "` does not exist or you do not have access to it.",
                                             "model_not_found"));
    }
    auto now = providers::target_health::clock::now();
    auto wall_now = std::chrono::system_clock::now();
    auto spend = app_.spend();
    routing_request rt;
    rt.key = req_->client.key_name;
    rt.team = req_->client.team;
    rt.key_strict = req_->client.privacy_strict;
    rt.headers = req_->headers;
    policies::budget_subject who{req_->client.key_name, req_->client.team};
    if (spend->any_budget) {
      auto v = spend->budgets.check(who, wall_now);
      if (!v.allowed) rt.budget = policies::budget_state::exhausted;
      else if (v.soft_exceeded) rt.budget = policies::budget_state::soft_exceeded;
      rt.budget_detail = v.exhausted;
    }
    if (cfg.routing.adaptive) rt.adaptive_threshold = app_.calibration.current();
    const std::string conv = conversation_id(*mr.body, rt.headers);
    const std::string conv_scope = req_->client.key_name;
    if (cfg.routing.sticky_conversations && !conv.empty())
      rt.conversation_private = app_.conversations.is_private(conv_scope, conv, now);
    auto local = app_.local();
    rt.health = [&](const std::string& name) {
      target_state st;
      const auto* spec = cfg.find_target(name);
      if (spec && spec->kind == "local" && spec->enabled && (!local || !local->find(name)))
        st.unavailable = "local model not loaded (see the log)";
      auto h = app_.health.get(name);
      st.breaker_open = h->breaker_open(now);
      st.at_capacity = spec && spec->max_concurrency > 0 && h->in_flight() >= spec->max_concurrency;
      return st;
    };
    auto routed = route_request(cfg, *alias, *mr.body, rt);
    if (routed.error) return send_error(*routed.error);
    if (cfg.routing.adaptive)
      app_.calibration.observe(routed.facts.complexity, cfg.routing.strong_share,
                               static_cast<std::size_t>(cfg.routing.adaptive_window),
                               static_cast<std::size_t>(cfg.routing.adaptive_min_samples));
    // Sticky privacy: a conversation that carried private data stays local from now on.
    if (cfg.routing.sticky_conversations && !conv.empty() && !rt.conversation_private &&
        (!routed.facts.entities.empty() || !routed.facts.strict_sources.empty()))
      app_.conversations.mark_private(conv_scope, conv, now, std::chrono::seconds(cfg.routing.conversation_ttl_s),
                                      cfg.routing.max_conversations);
    auto& plan = routed.decision;
    req_->privacy = privacy_summary(routed);
    req_->route = plan.route;
    req_->reason = plan.reason;
    if (plan.result != policies::outcome::forward) {
      return send_error(decision_error(routed, mr.model, seconds_to_next_day(cfg, wall_now)));
    }
    if (auto err = take_rate_limits(routed)) return send_error(*err);
    // A budget exhausted only by this plan's worst case: local targets may still serve.
    bool all_local = true;
    for (const auto& name : plan.targets)
      if (const auto* spec = cfg.find_target(name); !spec || spec->trust != "local") all_local = false;
    if (!all_local || routed.facts.budget != policies::budget_state::exhausted) {
      if (auto exhausted = reserve_budget(routed, plan.targets)) {
        routed.facts.budget = policies::budget_state::exhausted;
        routed.facts.budget_detail = *exhausted;
        routed.decision = policies::decide(cfg.routing.policy, routed.facts, routed.candidates);
        req_->route = routed.decision.route;
        req_->reason = routed.decision.reason;
        if (routed.decision.result != policies::outcome::forward)
          return send_error(decision_error(routed, mr.model, seconds_to_next_day(cfg, wall_now)));
      }
    }
    std::vector<providers::route_step> steps;
    steps.reserve(routed.decision.targets.size());
    for (const auto& name : routed.decision.targets) steps.push_back({cfg.find_target(name), app_.health.get(name)});
    req_->redaction = prepare_upstream_body(cfg, routed, *mr.body);

    providers::forward_request fr;
    fr.endpoint = std::string(upstream_path(ep));
    fr.body = std::move(mr.body);
    fr.stream = mr.stream;
    fr.client_wants_usage = mr.client_wants_usage;
    fr.max_response_bytes = limits_.max_upstream_response_bytes;
    fr.headers.emplace_back("X-Tollgate-Request-Id", req_->id);
    fr.headers.emplace_back("X-Request-Id", req_->client_request_id.empty() ? req_->id
                                                                             : req_->client_request_id);
    req_->forwarding = true;
    req_->call = w_.forward.start(std::move(fr), std::move(steps), this->shared_from_this());
    start_watch();
  }

  // Rate limits (one request and its worst-case tokens from every bucket that applies).
  std::optional<api_error> take_rate_limits(const routing_result& routed) {
    auto spend = app_.spend();
    if (!spend->any_rate_limit) return std::nullopt;
    policies::budget_subject who{req_->client.key_name, req_->client.team};
    auto v = spend->rates.take(who, routed.facts.prompt_tokens + routed.facts.max_tokens,
                               std::chrono::system_clock::now());
    if (v.allowed) return std::nullopt;
    return api_error{429, "rate_limit_error",
                     "Rate limit reached for " + v.limit + ". Retry after " + std::to_string(v.retry_after_s) + " s.",
                     std::nullopt, "rate_limit_exceeded", v.retry_after_s};
  }

  // The budget: the request's worst-case cost (estimated prompt + max_tokens at the dearest target
  // of the plan) is reserved before anything goes upstream, and settled to the real cost in
  // finish_request. Returns the exhausted budget's description when it does not fit.
  std::optional<std::string> reserve_budget(const routing_result& routed, const std::vector<std::string>& plan) {
    auto spend = app_.spend();
    if (!spend->any_budget) return std::nullopt;
    policies::pusd worst = 0;
    for (const auto& name : plan)
      for (const auto& c : routed.candidates)
        if (c.name == name && c.est_cost) worst = std::max(worst, *c.est_cost);
    policies::budget_subject who{req_->client.key_name, req_->client.team};
    auto v = spend->budgets.reserve(who, worst, std::chrono::system_clock::now());
    if (!v.allowed) return v.exhausted;
    if (v.soft_exceeded) req_->budget_note = "over the " + v.exhausted + " (soft)";
    req_->reservation = v.r;
    req_->spend = std::move(spend);
    return std::nullopt;
  }

  // Seconds until the next day in the reports' timezone: the earliest a daily budget frees up.
  static int seconds_to_next_day(const config& cfg, std::chrono::system_clock::time_point now) {
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count() +
                cfg.reports.utc_offset_minutes * 60;
    return std::max(1, static_cast<int>(86400 - ((secs % 86400) + 86400) % 86400));
  }

  // ---- client-disconnect watch while the upstream works ----
  void start_watch() {
    if (watching_ || closed_) return;
    watching_ = true;
    std::uint64_t gen = ++watch_gen_;
    raw_socket(stream_).async_wait(tcp::socket::wait_read,
                                   [self = this->shared_from_this(), gen](beast::error_code ec) {
                                     self->on_watch(ec, gen);
                                   });
  }
  void stop_watch() {
    if (!watching_) return;
    watching_ = false;
    ++watch_gen_;
    beast::error_code ec;
    raw_socket(stream_).cancel(ec);
  }
  void on_watch(beast::error_code ec, std::uint64_t gen) {
    if (gen != watch_gen_ || !watching_) return;
    watching_ = false;
    if (!req_ || !req_->call) return;
    bool gone = bool(ec);
    if (!gone) {
      char c;
      ssize_t n = ::recv(raw_socket(stream_).native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0) gone = true;                                  // orderly close
      else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) gone = true;
      else if (n < 0) return start_watch();                     // spurious wake-up
      // n > 0: the client pipelined its next request; it is still there.
    }
    if (gone) {
      keep_alive_ = false;
      auto call = req_->call;
      call->cancel();  // completes synchronously through on_complete
    }
  }

  // ---- streaming writes ----
  // One write of: the response head (first time), the pending events as one HTTP chunk, and the
  // terminating chunk once the stream is finished (and recorded).
  void flush_stream() {
    if (closed_) return;
    if (hold_flush_) {
      writing_ = false;
      return;
    }
    writing_buf_.clear();
    if (!stream_head_.empty()) {
      writing_buf_.swap(stream_head_);
      stream_head_.clear();
    }
    if (!pending_.empty()) {
      char size_line[24];
      int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", pending_.size());
      writing_buf_.append(size_line, static_cast<std::size_t>(n));
      writing_buf_.append(pending_);
      writing_buf_.append("\r\n");
      pending_.clear();
    }
    if (finish_stream_ && !last_chunk_sent_) {
      last_chunk_sent_ = true;
      writing_buf_.append("0\r\n\r\n");
    }
    if (writing_buf_.empty()) {
      writing_ = false;
      return;
    }
    writing_ = true;
    beast::get_lowest_layer(stream_).expires_after(limits().write_timeout);
    asio::async_write(stream_, asio::buffer(writing_buf_),
                      [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                        self->on_stream_write(ec);
                      });
  }

  void on_stream_write(beast::error_code ec) {
    writing_ = false;
    if (ec) {
      // The client is gone (or too slow past write_timeout): stop the upstream.
      stream_failed_ = true;
      keep_alive_ = false;
      if (req_ && req_->call) {
        auto call = req_->call;
        call->cancel();
      }
      if (req_ && !req_->done) finish_request(499, "client_closed_request");
      return close();
    }
    bool was_full = pending_.size() >= limits().max_stream_buffer_bytes;
    writing_buf_.clear();
    if (!pending_.empty() || (finish_stream_ && !last_chunk_sent_)) {
      flush_stream();
    } else if (last_chunk_sent_) {
      stop_watch();
      stream_res_.reset();
      finish_request(200, "");
      return after_response();
    }
    if (req_ && req_->call && (was_full || pending_.size() < limits().max_stream_buffer_bytes / 2))
      req_->call->resume();
  }

  // ---- plain responses ----
  template <class Res>
  void common_headers(Res& res, double overhead_ms_value) {
    res.set(http::field::server, "tollgate");
    res.set("x-request-id", req_->id);
    if (!req_->client_request_id.empty()) res.set("x-client-request-id", req_->client_request_id);
    if (!req_->target.empty()) res.set("x-tollgate-target", req_->target);
    if (!req_->route.empty()) res.set("x-tollgate-route", req_->route);
    if (!req_->budget_note.empty()) res.set("x-tollgate-budget", req_->budget_note);
    if (!req_->reason.empty()) res.set("x-tollgate-reason", header_safe(req_->reason));
    if (overhead_ms_value >= 0) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.3f", overhead_ms_value);
      res.set("x-tollgate-overhead-ms", buf);
    }
  }

  // Printable ASCII only (a reason can quote config text); at most 512 bytes.
  static std::string header_safe(const std::string& v) {
    std::string out;
    for (char c : v) {
      if (out.size() >= 512) break;
      out.push_back((c >= 0x20 && c < 0x7f) ? c : '?');
    }
    return out;
  }

  double overhead_ms(std::chrono::microseconds upstream) const {
    auto total = std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - req_->start);
    return std::max<double>(0.0, static_cast<double>((total - upstream).count()) / 1000.0);
  }

  void send_json(int status, std::string body) {
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.set(http::field::content_type, "application/json");
    res.body() = std::move(body);
    write_response(std::move(res), "");
  }

  void send_error(const api_error& e) {
    http::response<http::string_body> res{static_cast<http::status>(e.status), 11};
    res.set(http::field::content_type, "application/json");
    if (e.retry_after_s >= 0) res.set(http::field::retry_after, std::to_string(e.retry_after_s));
    if (e.status == 401) res.set(http::field::www_authenticate, "Bearer");
    res.body() = to_body(e);
    write_response(std::move(res), e.code.value_or(e.type));
  }

  void send_readyz() {
    auto cfg = app_.cfg();
    auto now = providers::target_health::clock::now();
    nlohmann::ordered_json j;
    bool any_up = false;
    auto& targets = j["targets"] = nlohmann::ordered_json::object();
    for (const auto& [name, spec] : cfg->targets) {
      auto h = app_.health.get(name);
      nlohmann::ordered_json t;
      bool open = h->breaker_open(now);
      t["enabled"] = spec.enabled;
      if (!spec.enabled) t["disabled_reason"] = spec.disabled_reason;
      t["circuit"] = open ? "open" : "closed";
      if (open) t["cooldown_left_ms"] = h->cooldown_left_ms(now);
      t["in_flight"] = h->in_flight();
      t["consecutive_failures"] = h->consecutive_failures();
      t["ready"] = spec.enabled && !open;
      any_up = any_up || (spec.enabled && !open);
      targets[name] = std::move(t);
    }
    bool draining = app_.draining.load();
    bool ready = any_up && !draining;
    nlohmann::ordered_json out;
    out["status"] = ready ? "ready" : (draining ? "draining" : "no_target_available");
    out["targets"] = std::move(targets);
    send_json(ready ? 200 : 503, out.dump());
  }

  void send_metrics() {
    auto cfg = app_.cfg();
    auto now = providers::target_health::clock::now();
    std::vector<metrics::target_gauge> gauges;
    auto local = app_.local();
    for (const auto& [name, spec] : cfg->targets) {
      auto h = app_.health.get(name);
      metrics::target_gauge g{name, spec.enabled, h->breaker_open(now), h->in_flight(), h->trips()};
      if (auto m = local ? local->find(name) : nullptr) {
        auto st = m->engine().current();
        g.local_engine = true;
        g.engine_running = st.running;
        g.engine_queued = st.queued;
        g.kv_pages_free = st.kv_pages_free;
        g.kv_pages_total = st.kv_pages_total;
      }
      gauges.push_back(g);
    }
    http::response<http::string_body> res{http::status::ok, 11};
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res.body() = app_.stats->render(gauges);
    write_response(std::move(res), "");
  }

  void write_response(http::response<http::string_body>&& res, std::string error_code) {
    if (req_->model_request && !req_->recorded && app_.hooks.ledger) {
      // Durability promise: the entry is in the ledger's WAL before the response leaves.
      auto rec = make_record(res.result_int(), error_code);
      auto held = std::make_shared<http::response<http::string_body>>(std::move(res));
      commit_to_ledger(std::move(rec), [self = this->shared_from_this(), held, error_code]() mutable {
        if (self->closed_) return self->finish_request(499, "client_closed_request");
        self->write_response(std::move(*held), std::move(error_code));
      });
      return;
    }
    common_headers(res, req_->forwarding ? overhead_ms(outcome_ ? outcome_->upstream_time
                                                               : req_->upstream_time)
                                         : -1.0);
    res.keep_alive(keep_alive_ && !draining_ && !app_.draining.load(std::memory_order_relaxed));
    res.prepare_payload();
    int status = res.result_int();
    response_.emplace(std::move(res));
    writing_ = true;
    beast::get_lowest_layer(stream_).expires_after(limits_.write_timeout);
    error_code_ = std::move(error_code);
    http::async_write(stream_, *response_,
                      [self = this->shared_from_this(), status](beast::error_code ec, std::size_t) {
                        self->writing_ = false;
                        self->response_.reset();
                        self->finish_request(ec ? 499 : status, self->error_code_);
                        if (ec) return self->close();
                        self->after_response();
                      });
  }

  void after_response() {
    ++requests_served_;
    bool keep = keep_alive_ && !draining_ && !app_.draining.load(std::memory_order_relaxed);
    req_.reset();
    pending_.clear();
    finish_stream_ = last_chunk_sent_ = hold_flush_ = false;
    if (!keep) {
      beast::error_code ec;
      if constexpr (is_tls) {
        beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(2));
        stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) { self->close(); });
        return;
      } else {
        raw_socket(stream_).shutdown(tcp::socket::shutdown_send, ec);
      }
      return close();
    }
    do_read();
  }

  // ---- the end of a request: ledger, metrics, access log ----

  // Everything known about the request now. Cost from the answering target's integer prices.
  ledger::request_record make_record(int status, const std::string& error_code) {
    auto end = clock_type::now();
    ledger::request_record r;
    r.request_id = req_->id;
    r.client_request_id = req_->client_request_id;
    r.key_name = req_->client.key_name;
    r.team = req_->client.team;
    r.endpoint = req_->endpoint;
    r.model = req_->model;
    r.route = req_->route;
    r.reason = req_->reason;
    r.stream = req_->stream;
    r.status = status;
    r.error_code = error_code;
    r.started = req_->wall_start;
    r.latency = std::chrono::duration_cast<std::chrono::microseconds>(end - req_->start);
    if (req_->first_byte)
      r.ttft = std::chrono::duration_cast<std::chrono::microseconds>(*req_->first_byte - req_->start);
    if (outcome_) {
      const auto& o = *outcome_;
      r.target = o.target;
      r.upstream_model = o.upstream_model;
      r.prompt_tokens = o.tokens.prompt_tokens;
      r.completion_tokens = o.tokens.completion_tokens;
      r.cached_prompt_tokens = o.tokens.cached_prompt_tokens;
      r.usage_estimated = o.tokens.estimated;
      r.client_disconnected = o.client_gone;
      r.attempts = static_cast<int>(o.attempts.size());
      r.retries = o.retries;
      r.fallbacks = o.fallbacks;
      r.upstream_time = o.upstream_time;
      if (o.client_gone) r.status = 499;
      if (o.stream_truncated && r.error_code.empty()) r.error_code = "upstream_stream_error";
      const providers::target_spec* spec = req_->cfg ? req_->cfg->find_target(o.target) : nullptr;
      if (spec && spec->kind == "local") {
        // The engine's own time for this request (breakeven), and its marginal cost: 0 unless the
        // target has prices.
        if (!req_->engine_busy) {
          req_->engine_busy = std::chrono::microseconds(0);
          if (auto models = app_.local())
            if (auto m = models->find(spec->name))
              if (auto busy = m->take_busy(req_->id)) req_->engine_busy = *busy;
        }
        r.engine_busy = *req_->engine_busy;
        if (spec->prices.input || spec->prices.output) price_request(*spec, r);
        else r.priced = true;
      } else if (spec) {
        r.provider = spec->provider;
        price_request(*spec, r);
      }
    } else {
      r.priced = true;  // nothing reached an upstream: it cost nothing, exactly
    }
    return r;
  }

  // cost = uncached prompt × input + cached prompt × cached_input (input when the target has no
  // cached price) + completion × output; unpriced (never $0) when a needed price is missing.
  static void price_request(const providers::target_spec& spec, ledger::request_record& r) {
    const auto& p = spec.prices;
    std::int64_t cached = std::clamp<std::int64_t>(r.cached_prompt_tokens, 0, std::max<std::int64_t>(0, r.prompt_tokens));
    std::int64_t uncached = std::max<std::int64_t>(0, r.prompt_tokens) - cached;
    std::int64_t completion = std::max<std::int64_t>(0, r.completion_tokens);
    bool need_in = uncached > 0 || (cached > 0 && !p.cached_input);
    if ((need_in && !p.input) || (completion > 0 && !p.output) || (cached > 0 && !p.cached_input && !p.input)) {
      r.priced = false;
      r.cost_pusd = 0;
      return;
    }
    auto a = ledger::token_cost(uncached, p.input.value_or(0));
    auto b = ledger::token_cost(cached, p.cached_input ? *p.cached_input : p.input.value_or(0));
    auto c = ledger::token_cost(completion, p.output.value_or(0));
    if (!a || !b || !c || *a > INT64_MAX - *b || *a + *b > INT64_MAX - *c) {
      r.priced = false;
      return;
    }
    r.priced = true;
    r.cost_pusd = *a + *b + *c;
  }

  // Model requests go to the ledger; `then` runs on this session's thread once the entry is in the
  // WAL (or at once without a ledger, or when it failed: the failure is logged, the response still
  // goes out).
  void commit_to_ledger(ledger::request_record r, std::function<void()> then) {
    ledger::ledger* l = app_.hooks.ledger;
    if (!l || !req_ || !req_->model_request || req_->recorded) {
      if (then) then();
      return;
    }
    req_->recorded = true;
    req_->committed_record = r;
    l->record(std::move(r), [self = this->shared_from_this(), then = std::move(then), &io = w_.io](const ledger::status& st) {
      asio::post(io, [self, then, st] {
        if (!st.ok() && st.c != ledger::status::code::duplicate)
          self->app_.log->error("ledger: request {} not recorded: {}", self->req_ ? self->req_->id : "?", st.message);
        if (then) then();
      });
    });
  }

  void finish_request(int status, const std::string& error_code) {
    if (!req_ || req_->done) return;
    req_->done = true;
    app_.stats->request_finished();
    auto end = clock_type::now();
    if (req_->spend) {
      // Settled to what the ledger records (0 when nothing was billed: a release in effect).
      std::int64_t cost = req_->recorded ? req_->committed_record.cost_pusd : 0;
      if (!req_->recorded && outcome_) cost = make_record(status, error_code).cost_pusd;
      req_->spend->budgets.settle(req_->reservation, cost, std::chrono::system_clock::now());
      req_->spend.reset();
    }
    // The ledger's copy when it has one (same figures in the log as in the ledger), else fresh.
    ledger::request_record r = req_->recorded && status == req_->committed_record.status
                                   ? std::move(req_->committed_record)
                                   : make_record(status, error_code);
    // Not yet in the ledger (client gone, write failed): record it now, without waiting.
    if (req_->model_request && !req_->recorded) commit_to_ledger(r, nullptr);
    if (outcome_)
      for (const auto& a : outcome_->attempts)
        if (!a.failure.empty() && !a.failure.starts_with("skipped"))
          app_.stats->record_upstream_error(w_.index, a.target, a.failure);
    request_sample s;
    s.endpoint = known_endpoint(r.endpoint);
    s.route = r.route;
    s.target = r.target;
    s.status = r.status;
    s.latency_s = seconds(end - req_->start);
    if (req_->first_byte) s.ttft_s = seconds(*req_->first_byte - req_->start);
    if (req_->forwarding) s.overhead_s = std::max(0.0, s.latency_s - std::chrono::duration<double>(r.upstream_time).count());
    s.prompt_tokens = r.prompt_tokens;
    s.completion_tokens = r.completion_tokens;
    s.cached_prompt_tokens = r.cached_prompt_tokens;
    s.tokens_estimated = r.usage_estimated;
    s.retries = r.retries;
    s.fallbacks = r.fallbacks;
    app_.stats->record_request(w_.index, s);
    if (app_.access_log) log_access(r);
    if (app_.hooks.on_record) app_.hooks.on_record(r);
  }

  // Metric labels only for known endpoints: arbitrary paths must not explode cardinality.
  static std::string_view known_endpoint(std::string_view p) {
    for (std::string_view k : {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models",
                               "/healthz", "/readyz", "/metrics", "/admin/reload"})
      if (p == k) return k;
    return "other";
  }

  void log_access(const ledger::request_record& r) {
    nlohmann::ordered_json j;
    j["ts"] = std::chrono::duration_cast<std::chrono::milliseconds>(r.started.time_since_epoch()).count();
    j["id"] = r.request_id;
    if (!r.client_request_id.empty()) j["client_request_id"] = r.client_request_id;
    j["key"] = r.key_name;
    if (!r.team.empty()) j["team"] = r.team;
    j["endpoint"] = r.endpoint;
    if (!r.model.empty()) j["model"] = r.model;
    if (!r.route.empty()) j["route"] = r.route;
    if (!r.target.empty()) j["target"] = r.target;
    j["status"] = r.status;
    j["latency_ms"] = static_cast<double>(r.latency.count()) / 1000.0;
    if (r.ttft.count() >= 0) j["ttft_ms"] = static_cast<double>(r.ttft.count()) / 1000.0;
    if (!r.target.empty()) {
      j["prompt_tokens"] = r.prompt_tokens;
      j["completion_tokens"] = r.completion_tokens;
      j["cached_prompt_tokens"] = r.cached_prompt_tokens;
      if (r.usage_estimated) j["usage_estimated"] = true;
      j["attempts"] = r.attempts;
      if (r.retries) j["retries"] = r.retries;
      if (r.fallbacks) j["fallbacks"] = r.fallbacks;
    }
    if (r.stream) j["stream"] = true;
    if (!r.error_code.empty()) j["error"] = r.error_code;
    if (!r.reason.empty()) j["reason"] = r.reason;
    if (req_ && !req_->privacy.empty()) j["privacy"] = req_->privacy;
    app_.access_log->info(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }

  app_state& app_;
  worker& w_;
  Stream stream_;
  bool over_capacity_;
  beast::flat_buffer buffer_;
  limits_config limits_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
  std::optional<http::response<http::empty_body>> stream_res_;
  std::string stream_head_;  // serialized response head, sent with the first events
  bool flush_scheduled_ = false;
  bool hold_flush_ = false;  // the stream's end waits for its ledger entry
  std::optional<request_state> req_;
  std::optional<providers::forward_outcome> outcome_;
  std::string pending_, writing_buf_;
  std::string error_code_;
  bool writing_ = false;
  bool finish_stream_ = false;
  bool stream_failed_ = false;
  bool last_chunk_sent_ = false;
  bool keep_alive_ = true;
  bool draining_ = false;
  bool closed_ = false;
  bool watching_ = false;
  std::uint64_t watch_gen_ = 0;
  std::uint64_t requests_served_ = 0;
};

}  // namespace

void start_session(app_state& app, worker& w, tcp::socket socket,
                   const std::shared_ptr<asio::ssl::context>& tls) {
  beast::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  bool over = app.stats->active_connections() >= static_cast<std::int64_t>(app.cfg()->server.limits.max_connections);
  if (tls) {
    using ssl_stream = asio::ssl::stream<beast::tcp_stream>;
    auto s = std::make_shared<http_session<ssl_stream>>(app, w, ssl_stream(beast::tcp_stream(std::move(socket)), *tls), over);
    s->start();
  } else {
    auto s = std::make_shared<http_session<beast::tcp_stream>>(app, w, beast::tcp_stream(std::move(socket)), over);
    s->start();
  }
}

}  // namespace gw::gateway
