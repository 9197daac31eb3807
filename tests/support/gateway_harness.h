#pragma once
// Starts a real tollgate server (in-process, 127.0.0.1 port 0) from YAML text, capturing every
// finished request's record for assertions.
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gateway/config.h"
#include "gateway/server.h"
#include "ledger/record.h"
#include "tests/support/fake_upstream.h"

namespace gw::test {

class gateway_harness {
 public:
  // With `ledger` set, model requests are recorded there (the caller owns it).
  explicit gateway_harness(const std::string& yaml, const std::string& file_name = "test.yaml",
                           ledger::ledger* ledger = nullptr) {
    auto loaded = gateway::load_config_text(yaml, file_name);
    gateway::server_hooks hooks;
    hooks.ledger = ledger;
    hooks.on_record = [this](const ledger::request_record& r) {
      std::lock_guard lock(mu_);
      records_.push_back(r);
    };
    server_ = std::make_unique<gateway::server>(loaded.cfg, std::move(hooks));
    server_->start();
    port_ = server_->ports().at(0);
  }
  ~gateway_harness() { server_->shutdown(std::chrono::milliseconds(0)); }

  std::uint16_t port() const { return port_; }
  gateway::server& server() { return *server_; }

  std::vector<ledger::request_record> records() const {
    std::lock_guard lock(mu_);
    return records_;
  }
  // Waits until `n` records exist (records land after the last byte is written).
  std::vector<ledger::request_record> wait_records(std::size_t n,
                                                   std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    wait_until([&] { return records().size() >= n; }, timeout);
    return records();
  }

 private:
  mutable std::mutex mu_;
  std::vector<ledger::request_record> records_;
  std::unique_ptr<gateway::server> server_;
  std::uint16_t port_ = 0;
};

// A config with one target "primary" (and optionally "secondary") on fake upstreams, alias
// "gpt-test" -> [primary, secondary], and `extra` YAML appended at the top level of `server:`.
inline std::string basic_config(const fake_upstream& primary, const fake_upstream* secondary = nullptr,
                                const std::string& target_extra = "", const std::string& server_extra = "",
                                const std::string& auth = "auth: none\n") {
  std::string y;
  y += "server:\n  listen: \"127.0.0.1:0\"\n  io_threads: 2\n  access_log: false\n  log_level: warn\n";
  y += server_extra;
  y += auth;
  y += "targets:\n";
  y += "  primary:\n    base_url: " + primary.base_url() + "\n    model: upstream-model-a\n";
  y += "    retry: {max_attempts: 2, base_delay_ms: 10, max_delay_ms: 2000}\n";
  y += target_extra;
  if (secondary) {
    y += "  secondary:\n    base_url: " + secondary->base_url() + "\n    model: upstream-model-b\n";
    y += "    retry: {max_attempts: 2, base_delay_ms: 10, max_delay_ms: 2000}\n";
  }
  y += "models:\n  gpt-test: [primary";
  if (secondary) y += ", secondary";
  y += "]\n";
  return y;
}

}  // namespace gw::test
