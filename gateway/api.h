#pragma once
// What an OpenAI-style request means, independent of the transport: validation (just enough to
// route), the JSON of simple endpoints. Pure functions over config; unit-tested without sockets.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "gateway/config.h"
#include "gateway/errors.h"

namespace gw::gateway {

enum class model_endpoint { chat_completions, completions, embeddings };
std::string_view upstream_path(model_endpoint e);  // "/chat/completions", ...

struct model_request {
  model_endpoint endpoint;
  std::shared_ptr<nlohmann::ordered_json> body;  // the client's JSON, every field kept in order
  std::string model;
  bool stream = false;
  bool client_wants_usage = false;  // stream_options.include_usage was set by the client
};

// Validates JSON, `model`, and the endpoint's required input (`messages` for chat, `prompt` for
// completions, `input` for embeddings). Everything else passes through untouched.
std::variant<model_request, api_error> parse_model_request(model_endpoint endpoint,
                                                           std::string_view body);

// GET /v1/models: the configured aliases (the "*" catch-all is not listed).
std::string models_body(const config& cfg);
// GET /v1/models/{id}: the alias as a model object; nullopt when it is not configured.
std::optional<std::string> model_body(const config& cfg, std::string_view id);

}  // namespace gw::gateway
