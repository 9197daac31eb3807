#pragma once
// Errors on the request path are values. api_error is the one shape every failure takes before it
// is written once, by to_body(), as OpenAI's {"error":{"message","type","param","code"}}.
#include <optional>
#include <string>

#include "providers/forwarder.h"

namespace gw::gateway {

struct api_error {
  int status = 500;
  std::string type;     // OpenAI error type: invalid_request_error, authentication_error, ...
  std::string message;  // for humans; never contains secrets or request content
  std::optional<std::string> param;
  std::optional<std::string> code;
  int retry_after_s = -1;  // >= 0: the response carries retry-after (429 / 503)

  static api_error invalid_request(std::string message, std::optional<std::string> param = {},
                                   std::optional<std::string> code = {});
  static api_error unauthorized(std::string message);
  static api_error forbidden(std::string message);
  static api_error not_found(std::string message, std::optional<std::string> code = {});
  static api_error method_not_allowed(std::string message);
  static api_error too_large(std::string message);
  static api_error unavailable(std::string message, int retry_after_s, std::string code);
  static api_error internal(std::string message);
};

// The OpenAI error JSON for `e`.
std::string to_body(const api_error& e);
// One mapping from the forwarder's failure reasons to HTTP.
api_error from_forward_error(const providers::forward_error& e);

}  // namespace gw::gateway
