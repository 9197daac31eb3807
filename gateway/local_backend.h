#pragma once
// `kind: local` targets: the built-in engine behind the same transport interface as an HTTP
// upstream. A local_model loads one GGUF model once and is shared by every I/O thread; each thread
// gets its own transport (make_transport) that turns an OpenAI request into an engine request and
// the generated tokens back into OpenAI JSON or SSE chunks, with usage, so the forwarder retries,
// falls back, meters and relays them exactly like a hosted provider's. The engine's busy time per
// request goes to the ledger (take_busy).
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "gateway/config.h"
#include "providers/transport.h"

namespace boost::asio {
class io_context;
}
namespace gw::local_engine {
class engine;
}

namespace gw::gateway {

class local_model : public std::enable_shared_from_this<local_model> {
 public:
  // Loads the model (and starts its scheduler thread). nullptr and *error on failure.
  static std::shared_ptr<local_model> load(const providers::target_spec& spec, std::string* error);
  ~local_model();

  const providers::local_model_spec& spec() const { return spec_; }
  std::string model_name() const;
  int context_size() const;
  // A transport for the forwarder of the I/O thread running `io`.
  std::unique_ptr<providers::transport> make_transport(boost::asio::io_context& io);
  // The engine time spent on the request with this x-tollgate-request-id (once; nullopt if none).
  std::optional<std::chrono::microseconds> take_busy(const std::string& request_id);
  void record_busy(const std::string& request_id, std::chrono::microseconds busy);

  local_engine::engine& engine() { return *engine_; }

 private:
  local_model() = default;
  providers::local_model_spec spec_;
  std::unique_ptr<local_engine::engine> engine_;
  std::mutex busy_mu_;
  std::unordered_map<std::string, std::chrono::microseconds> busy_;
};

// The loaded local models of a config, by target name. A reload keeps models whose settings did not
// change (loading is expensive) and loads new ones.
class local_models {
 public:
  // Loads every enabled `kind: local` target of `cfg`, reusing those of `previous`. Targets whose
  // model fails to load are left out; their errors are returned (target name -> message).
  static std::shared_ptr<const local_models> build(const config& cfg, const local_models* previous,
                                                   std::map<std::string, std::string>* errors);
  std::shared_ptr<local_model> find(const std::string& target) const;
  bool empty() const { return models_.empty(); }

 private:
  std::map<std::string, std::shared_ptr<local_model>> models_;
};

}  // namespace gw::gateway
