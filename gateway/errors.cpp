#include "gateway/errors.h"

#include <nlohmann/json.hpp>

namespace gw::gateway {

api_error api_error::invalid_request(std::string message, std::optional<std::string> param,
                                     std::optional<std::string> code) {
  return {400, "invalid_request_error", std::move(message), std::move(param), std::move(code)};
}
api_error api_error::unauthorized(std::string message) {
  return {401, "authentication_error", std::move(message), std::nullopt, "invalid_api_key"};
}
api_error api_error::forbidden(std::string message) {
  return {403, "permission_error", std::move(message), std::nullopt, "forbidden"};
}
api_error api_error::not_found(std::string message, std::optional<std::string> code) {
  return {404, "invalid_request_error", std::move(message), std::nullopt, std::move(code)};
}
api_error api_error::method_not_allowed(std::string message) {
  return {405, "invalid_request_error", std::move(message), std::nullopt, "method_not_allowed"};
}
api_error api_error::too_large(std::string message) {
  return {413, "invalid_request_error", std::move(message), std::nullopt, "request_too_large"};
}
api_error api_error::unavailable(std::string message, int retry_after_s, std::string code) {
  return {503, "service_unavailable", std::move(message), std::nullopt, std::move(code),
          retry_after_s};
}
api_error api_error::internal(std::string message) {
  return {500, "server_error", std::move(message), std::nullopt, "internal_error"};
}

std::string to_body(const api_error& e) {
  nlohmann::ordered_json j;
  auto& err = j["error"];
  err["message"] = e.message;
  err["type"] = e.type;
  err["param"] = e.param ? nlohmann::ordered_json(*e.param) : nlohmann::ordered_json(nullptr);
  err["code"] = e.code ? nlohmann::ordered_json(*e.code) : nlohmann::ordered_json(nullptr);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

api_error from_forward_error(const providers::forward_error& e) {
  using providers::forward_errc;
  switch (e.code) {
    case forward_errc::no_target_available:
      return api_error::unavailable(e.message, e.retry_after_s < 0 ? 1 : e.retry_after_s,
                                    "no_target_available");
    case forward_errc::upstream_unreachable:
      return {502, "upstream_error", e.message, std::nullopt, "upstream_unreachable"};
    case forward_errc::upstream_timeout:
      return {504, "upstream_error", e.message, std::nullopt, "upstream_timeout"};
    case forward_errc::response_too_large:
      return {502, "upstream_error", e.message, std::nullopt, "upstream_response_too_large"};
    case forward_errc::client_gone:
      // Never reaches a client; 499 (nginx's "client closed request") for logs and metrics.
      return {499, "client_closed_request", e.message, std::nullopt, "client_closed_request"};
  }
  return api_error::internal("unknown forwarding error");
}

}  // namespace gw::gateway
