#include "gateway/api.h"

#include <set>

#include "policies/privacy.h"


namespace gw::gateway {

std::string_view upstream_path(model_endpoint e) {
  switch (e) {
    case model_endpoint::chat_completions: return "/chat/completions";
    case model_endpoint::completions: return "/completions";
    case model_endpoint::embeddings: return "/embeddings";
  }
  return "/";
}

std::variant<model_request, api_error> parse_model_request(model_endpoint endpoint,
                                                           std::string_view text) {
  auto body = std::make_shared<nlohmann::ordered_json>(
      nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false));
  if (body->is_discarded())
    return api_error::invalid_request(
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
        "using your HTTP library correctly. The OpenAI API expects a JSON payload.)");
  if (!body->is_object())
    return api_error::invalid_request("The request body must be a JSON object.");
  model_request r;
  r.endpoint = endpoint;
  auto m = body->find("model");
  if (m == body->end() || m->is_null())
    return api_error::invalid_request("you must provide a model parameter", "model");
  if (!m->is_string() || m->get_ref<const std::string&>().empty())
    return api_error::invalid_request("'model' must be a non-empty string", "model");
  r.model = m->get<std::string>();

  switch (endpoint) {
    case model_endpoint::chat_completions: {
      auto msgs = body->find("messages");
      if (msgs == body->end())
        return api_error::invalid_request("Missing required parameter: 'messages'.", "messages");
      if (!msgs->is_array() || msgs->empty())
        return api_error::invalid_request("'messages' must be a non-empty array.", "messages");
      for (std::size_t i = 0; i < msgs->size(); ++i) {
        const auto& msg = (*msgs)[i];
        std::string param = "messages[" + std::to_string(i) + "]";
        if (!msg.is_object())
          return api_error::invalid_request("Invalid type for '" + param + "': expected an object.", param);
        auto role = msg.find("role");
        if (role == msg.end() || !role->is_string())
          return api_error::invalid_request("Missing required parameter: '" + param + ".role'.",
                                            param + ".role");
      }
      break;
    }
    case model_endpoint::completions:
      if (!body->contains("prompt"))
        return api_error::invalid_request("Missing required parameter: 'prompt'.", "prompt");
      break;
    case model_endpoint::embeddings:
      if (!body->contains("input"))
        return api_error::invalid_request("Missing required parameter: 'input'.", "input");
      break;
  }
  if (auto s = body->find("stream"); s != body->end() && !s->is_null()) {
    if (!s->is_boolean())
      return api_error::invalid_request("'stream' must be a boolean.", "stream");
    r.stream = s->get<bool>();
  }
  if (r.stream && endpoint == model_endpoint::embeddings)
    return api_error::invalid_request("Embeddings cannot be streamed.", "stream");
  if (auto so = body->find("stream_options"); so != body->end() && so->is_object()) {
    auto iu = so->find("include_usage");
    r.client_wants_usage = iu != so->end() && iu->is_boolean() && iu->get<bool>();
  }
  r.body = std::move(body);
  return r;
}

namespace {
nlohmann::ordered_json model_object(const std::string& id) {
  nlohmann::ordered_json m;
  m["id"] = id;
  m["object"] = "model";
  m["created"] = 0;
  m["owned_by"] = "tollgate";
  return m;
}
}  // namespace

std::string models_body(const config& cfg) {
  nlohmann::ordered_json j;
  j["object"] = "list";
  auto& data = j["data"] = nlohmann::ordered_json::array();
  for (const auto& alias : cfg.models)
    if (alias.name != "*") data.push_back(model_object(alias.name));
  for (const auto& alias : cfg.builtin_models) data.push_back(model_object(alias.name));
  return j.dump();
}

std::optional<std::string> model_body(const config& cfg, std::string_view id) {
  for (const auto& alias : cfg.models)
    if (alias.name != "*" && alias.name == id) return model_object(alias.name).dump();
  for (const auto& alias : cfg.builtin_models)
    if (alias.name == id) return model_object(alias.name).dump();
  return std::nullopt;
}

}  // namespace gw::gateway
