#pragma once
// Internal to gateway/*.cpp: the state shared by the listener and the sessions. Includes Asio;
// never include it from a public header.
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <spdlog/logger.h>

#include "gateway/config.h"
#include "gateway/local_backend.h"
#include "gateway/metrics.h"
#include "gateway/routing_state.h"
#include "gateway/server.h"
#include "ledger/ledger.h"
#include "policies/budget.h"
#include "providers/forwarder.h"
#include "providers/http_client.h"
#include "providers/target_health.h"

namespace gw::gateway {

// What a server can ask a live session to do during shutdown (always on the session's thread).
class session_base {
 public:
  virtual ~session_base() = default;
  virtual void drain() = 0;  // close now if idle; otherwise close after the current response
  virtual void abort() = 0;  // cancel whatever is in flight and close
};

// One I/O thread: its io_context, its curl multi handle and its forwarder. Sessions accepted onto
// a worker never leave it, so nothing of a request is shared across threads.
struct worker {
  worker(int i, providers::local_transport_resolver local)
      : index(i),
        work(boost::asio::make_work_guard(io)),
        http(io),
        forward(io, http, std::move(local)),
        rng(std::random_device{}()) {}
  int index;
  boost::asio::io_context io{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work;
  providers::http_client http;
  providers::forwarder forward;
  std::mt19937_64 rng;
  std::uint64_t counter = 0;
  std::unordered_map<session_base*, std::weak_ptr<session_base>> sessions;  // this thread only
  std::thread thread;
  // This thread's transport to each loaded local model (kept while the model is in use).
  std::unordered_map<const local_model*, std::unique_ptr<providers::transport>> local_transports;

  // "tg-" + 24 hex digits: 64 random bits per thread start + worker + counter; unique per process
  // and, with overwhelming probability, across restarts.
  std::string next_request_id();
  std::uint64_t id_seed = 0;
};

// Budget and rate-limit state built from one config (rebuilt, and re-seeded from the ledger, when a
// reload swaps the config).
struct spend_state {
  spend_state(const config& cfg, ledger::ledger* l);
  policies::budget_store budgets;
  policies::rate_limiter rates;
  std::int64_t default_max_tokens;
  bool any_budget, any_rate_limit;
};

struct app_state {
  std::shared_ptr<const config> cfg_ptr;  // guarded by cfg_mu (swap on reload)
  std::shared_ptr<spend_state> spend_ptr;  // guarded by cfg_mu
  mutable std::mutex cfg_mu;
  std::shared_ptr<const config> cfg() const {
    std::lock_guard lock(cfg_mu);
    return cfg_ptr;
  }
  std::shared_ptr<spend_state> spend() const {
    std::lock_guard lock(cfg_mu);
    return spend_ptr;
  }
  std::shared_ptr<const local_models> local_ptr;  // guarded by cfg_mu (rebuilt on reload)
  std::shared_ptr<const local_models> local() const {
    std::lock_guard lock(cfg_mu);
    return local_ptr;
  }
  // The transport of a loaded `kind: local` target for worker `index` (its thread only); null when
  // the target's model is not loaded.
  providers::transport* local_transport(int index, const providers::target_spec& spec);
  server_hooks hooks;
  providers::health_registry health;
  std::unique_ptr<metrics> stats;
  std::vector<std::unique_ptr<worker>> workers;
  std::atomic<bool> draining{false};
  std::shared_ptr<spdlog::logger> log;         // operational log (stderr)
  std::shared_ptr<spdlog::logger> access_log;  // one JSON line per request (stdout)
  std::function<bool(std::string*)> reload;    // for POST /admin/reload
  std::vector<std::shared_ptr<boost::asio::ssl::context>> tls;  // per listener (null = plain)
  conversation_store conversations;  // sticky privacy
  adaptive_calibrator calibration;   // routing.complexity.adaptive
};

// Starts a session on an accepted socket (plain or TLS by listener).
void start_session(app_state& app, worker& w, boost::asio::ip::tcp::socket socket,
                   const std::shared_ptr<boost::asio::ssl::context>& tls);

}  // namespace gw::gateway
