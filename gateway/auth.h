#pragma once
// Client authentication: `Authorization: Bearer <key>` checked against the configured keys'
// SHA-256 in constant time (every configured key is compared, whatever matches first).
#include <string>
#include <string_view>
#include <variant>

#include "gateway/config.h"
#include "gateway/errors.h"

namespace gw::gateway {

struct client_identity {
  std::string key_name;  // "" when auth is off
  std::string team;
  bool admin = false;
  bool authenticated = false;  // false only with `auth: none`
  bool privacy_strict = false;  // the key is labelled privacy: strict
};

// Returns the client, or a 401 api_error. With auth off, everyone is an anonymous admin.
std::variant<client_identity, api_error> authenticate(const auth_config& auth,
                                                      std::string_view authorization_header);

// Lower-case hex SHA-256, for `tollgate hash-key` and tests.
std::string sha256_hex(std::string_view data);

}  // namespace gw::gateway
