#pragma once
// What the gateway knows about one finished request: one ledger entry (ledger/ledger.h), the
// access log line and the metrics all come from it.
#include <chrono>
#include <cstdint>
#include <string>

namespace gw::ledger {

struct request_record {
  std::string request_id;         // tollgate's own, unique
  std::string client_request_id;  // the client's x-request-id, never trusted to be unique
  std::string key_name;
  std::string team;
  std::string endpoint;  // "/v1/chat/completions"
  std::string model;     // as requested (alias)
  std::string route;     // route label
  std::string reason;    // why this route
  std::string target;    // target that answered (or was last tried)
  std::string upstream_model;
  int status = 0;
  bool stream = false;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t cached_prompt_tokens = 0;
  bool usage_estimated = false;  // no usage from the upstream: counted approximately
  bool client_disconnected = false;
  int attempts = 0;
  int retries = 0;
  int fallbacks = 0;
  std::string error_code;  // "" on success
  std::chrono::system_clock::time_point started;
  std::chrono::microseconds latency{0};
  std::chrono::microseconds ttft{-1};  // -1: none
  std::chrono::microseconds upstream_time{0};

  // Money (see ledger/money.h): integer pico-dollars. `priced` false = a price was missing; the
  // request is counted as unpriced, never as $0.
  std::string provider;  // provider of `target` ("" for local targets)
  std::int64_t cost_pusd = 0;
  bool priced = false;
  std::chrono::microseconds engine_busy{0};  // local engine time spent on this request
};

}  // namespace gw::ledger
