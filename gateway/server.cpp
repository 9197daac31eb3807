#include "gateway/server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <condition_variable>
#include <csignal>
#include <future>
#include <set>
#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "gateway/app.h"

namespace gw::gateway {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

std::shared_ptr<spdlog::logger> make_access_logger() {
  // Async with a bounded queue: the I/O threads never wait on stdout unless it is 8192 lines behind.
  static std::once_flag once;
  std::call_once(once, [] { spdlog::init_thread_pool(8192, 1); });
  auto existing = spdlog::get("tollgate.access");
  if (existing) return existing;
  auto sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  auto logger = std::make_shared<spdlog::async_logger>("tollgate.access", sink, spdlog::thread_pool(),
                                                       spdlog::async_overflow_policy::block);
  logger->set_pattern("%v");
  spdlog::register_logger(logger);
  return logger;
}

std::shared_ptr<spdlog::logger> make_logger() {
  auto existing = spdlog::get("tollgate");
  if (existing) return existing;
  auto logger = spdlog::stderr_logger_mt("tollgate");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
  return logger;
}

}  // namespace

spend_state::spend_state(const config& cfg, ledger::ledger* l)
    : budgets(cfg.spend.budgets, cfg.reports.utc_offset_minutes),
      rates(cfg.spend.rate_limits),
      default_max_tokens(cfg.spend.default_max_tokens),
      any_budget(!cfg.spend.budgets.empty()),
      any_rate_limit(!cfg.spend.rate_limits.empty()) {
  if (!l) return;
  // Spend recorded before this process started counts against today's and this month's budgets.
  auto now = std::chrono::system_clock::now();
  std::set<std::pair<policies::budget_scope, std::string>> seeded;
  for (const auto& b : cfg.spend.budgets) {
    if (!seeded.insert({b.scope, b.name}).second) continue;
    auto s = b.scope == policies::budget_scope::key ? l->key_spend(b.name, now) : l->team_spend(b.name, now);
    budgets.seed(b.scope, b.name, static_cast<policies::pusd>(s.day), static_cast<policies::pusd>(s.month), now);
  }
}

struct server::impl {
  app_state app;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;  // on workers[0]
  std::vector<std::uint16_t> bound_ports;
  std::size_t next_worker = 0;
  bool started = false;
  bool stopped = false;
  std::mutex stop_mu;

  void accept(std::size_t listener) {
    auto& acc = *acceptors[listener];
    worker& target = *app.workers[next_worker++ % app.workers.size()];
    acc.async_accept(target.io, [this, listener, &target](boost::system::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted || !acceptors[listener]->is_open()) return;
      if (!ec) {
        auto tls = app.tls[listener];
        asio::post(target.io, [this, &target, s = std::move(s), tls]() mutable {
          start_session(app, target, std::move(s), tls);
        });
      } else {
        app.log->warn("accept failed: {}", ec.message());
      }
      accept(listener);
    });
  }

  // Runs f on every worker thread and waits for all of them.
  void on_each_worker(const std::function<void(worker&)>& f) {
    std::vector<std::future<void>> done;
    for (auto& w : app.workers) {
      auto p = std::make_shared<std::promise<void>>();
      done.push_back(p->get_future());
      asio::post(w->io, [&f, w = w.get(), p] {
        f(*w);
        p->set_value();
      });
    }
    for (auto& d : done) d.wait();
  }

  static void for_each_session(worker& w, void (session_base::*fn)()) {
    std::vector<std::shared_ptr<session_base>> live;
    for (auto& [ptr, weak] : w.sessions)
      if (auto s = weak.lock()) live.push_back(std::move(s));
    for (auto& s : live) ((*s).*fn)();
  }
};

server::server(std::shared_ptr<const config> cfg, server_hooks hooks) : impl_(std::make_unique<impl>()) {
  auto& app = impl_->app;
  app.cfg_ptr = std::move(cfg);
  app.hooks = std::move(hooks);
  app.spend_ptr = std::make_shared<spend_state>(*app.cfg_ptr, app.hooks.ledger);
  app.log = make_logger();
  app.log->set_level(spdlog::level::from_str(app.cfg_ptr->server.log_level));
  // The engine's messages (local_engine/ logs through spdlog's default logger) go to the same
  // stderr log; stdout carries only the access log.
  spdlog::set_default_logger(app.log);
  if (app.cfg_ptr->server.access_log) app.access_log = make_access_logger();
  int threads = app.cfg_ptr->server.io_threads;
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  app.stats = std::make_unique<metrics>(threads);
  std::map<std::string, std::string> load_errors;
  app.local_ptr = local_models::build(*app.cfg_ptr, nullptr, &load_errors);
  for (const auto& [name, err] : load_errors)
    app.log->error("target {}: the local model did not load, the target is unavailable: {}", name, err);
  for (int i = 0; i < threads; ++i)
    app.workers.push_back(std::make_unique<worker>(
        i, [&app, i](const providers::target_spec& spec) { return app.local_transport(i, spec); }));
  app.reload = [this](std::string* error) { return reload(error); };
}

server::~server() { shutdown(std::chrono::milliseconds(0)); }

providers::transport* app_state::local_transport(int index, const providers::target_spec& spec) {
  auto models = local();
  auto m = models ? models->find(spec.name) : nullptr;
  if (!m) return nullptr;
  auto& w = *workers[static_cast<std::size_t>(index)];
  auto& slot = w.local_transports[m.get()];
  if (!slot) slot = m->make_transport(w.io);
  return slot.get();
}

void server::start() {
  auto& app = impl_->app;
  auto cfg = app.cfg();
  for (const auto& l : cfg->server.listeners) {
    std::shared_ptr<asio::ssl::context> tls;
    if (l.tls()) {
      tls = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
      tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
      try {
        tls->use_certificate_chain_file(l.tls_cert_file);
        tls->use_private_key_file(l.tls_key_file, asio::ssl::context::pem);
      } catch (const std::exception& e) {
        throw std::runtime_error("TLS setup for " + l.address + ":" + std::to_string(l.port) +
                                 " failed: " + e.what());
      }
    }
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(l.address, ec);
    if (ec) throw std::runtime_error("invalid listen address '" + l.address + "'");
    auto acc = std::make_unique<tcp::acceptor>(app.workers[0]->io);
    tcp::endpoint ep(addr, l.port);
    acc->open(ep.protocol(), ec);
    if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      throw std::runtime_error("cannot listen on " + l.address + ":" + std::to_string(l.port) + ": " +
                               ec.message());
    impl_->bound_ports.push_back(acc->local_endpoint().port());
    app.tls.push_back(tls);
    impl_->acceptors.push_back(std::move(acc));
  }
  for (std::size_t i = 0; i < impl_->acceptors.size(); ++i) impl_->accept(i);
  for (auto& w : app.workers) {
    w->thread = std::thread([w = w.get()] { w->io.run(); });
  }
  impl_->started = true;
  for (std::size_t i = 0; i < impl_->bound_ports.size(); ++i)
    app.log->info("listening on {}{}:{}", cfg->server.listeners[i].tls() ? "https://" : "http://",
                  cfg->server.listeners[i].address, impl_->bound_ports[i]);
}

std::vector<std::uint16_t> server::ports() const { return impl_->bound_ports; }

std::shared_ptr<const config> server::current_config() const { return impl_->app.cfg(); }

void server::swap_config(std::shared_ptr<const config> next) {
  // Built outside the lock (it reads the ledger); requests in flight keep the state they started
  // with and settle against it.
  auto spend = std::make_shared<spend_state>(*next, impl_->app.hooks.ledger);
  std::map<std::string, std::string> load_errors;
  auto local = local_models::build(*next, impl_->app.local().get(), &load_errors);
  for (const auto& [name, err] : load_errors)
    impl_->app.log->error("target {}: the local model did not load, the target is unavailable: {}", name, err);
  std::lock_guard lock(impl_->app.cfg_mu);
  impl_->app.cfg_ptr = std::move(next);
  impl_->app.spend_ptr = std::move(spend);
  impl_->app.local_ptr = std::move(local);
}

bool server::reload(std::string* error) {
  auto& app = impl_->app;
  auto current = app.cfg();
  try {
    auto loaded = load_config_file(current->source_file);
    for (const auto& w : loaded.warnings) app.log->warn("{}", w);
    if (loaded.cfg->server.listeners.size() != current->server.listeners.size())
      app.log->warn("config reload: listener changes take effect only after a restart");
    swap_config(loaded.cfg);
    app.stats->record_reload(true);
    app.log->info("configuration reloaded from {}", current->source_file);
    return true;
  } catch (const std::exception& e) {
    app.stats->record_reload(false);
    app.log->error("configuration reload failed, keeping the running config: {}", e.what());
    if (error) *error = e.what();
    return false;
  }
}

std::int64_t server::active_requests() const { return impl_->app.stats->active_requests(); }

void server::shutdown(std::chrono::milliseconds grace) {
  std::lock_guard lock(impl_->stop_mu);
  if (!impl_->started || impl_->stopped) return;
  impl_->stopped = true;
  auto& app = impl_->app;
  app.draining = true;
  // 1. Stop accepting.
  impl_->on_each_worker([this](worker& w) {
    if (w.index != 0) return;
    for (auto& acc : impl_->acceptors) {
      boost::system::error_code ec;
      acc->close(ec);
    }
  });
  // 2. Close idle keep-alive connections; busy ones close after their response.
  impl_->on_each_worker([](worker& w) { impl::for_each_session(w, &session_base::drain); });
  // 3. Wait for in-flight requests, up to the grace period.
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (app.stats->active_requests() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto left = app.stats->active_requests();
  if (left > 0) app.log->warn("shutdown: cancelling {} request(s) still in flight", left);
  // 4. Cancel what is left, then stop the threads.
  impl_->on_each_worker([](worker& w) { impl::for_each_session(w, &session_base::abort); });
  // Barrier: work the aborts posted (curl's deferred handle removal closes upstream connections)
  // is queued behind the previous round and runs before this one.
  impl_->on_each_worker([](worker&) {});
  for (auto& w : app.workers) {
    w->work.reset();
    asio::post(w->io, [w = w.get()] { w->io.stop(); });
  }
  for (auto& w : app.workers)
    if (w->thread.joinable()) w->thread.join();
  if (app.access_log) app.access_log->flush();
  app.log->info("shutdown complete");
}

void server::run_until_signal() {
  asio::io_context signals_io;
  asio::signal_set signals(signals_io, SIGINT, SIGTERM, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_signal;
  on_signal = [&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      impl_->app.log->info("SIGHUP: reloading configuration");
      reload(nullptr);
      signals.async_wait(on_signal);
      return;
    }
    impl_->app.log->info("signal {}: shutting down (grace {} ms)", sig,
                         impl_->app.cfg()->server.shutdown_grace.count());
    signals_io.stop();
  };
  signals.async_wait(on_signal);
  signals_io.run();
  shutdown(impl_->app.cfg()->server.shutdown_grace);
}

}  // namespace gw::gateway
