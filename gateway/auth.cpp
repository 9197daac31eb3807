#include "gateway/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>

namespace gw::gateway {

namespace {
std::array<unsigned char, 32> sha256(std::string_view data) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}
}  // namespace

std::string sha256_hex(std::string_view data) {
  static constexpr char hex[] = "0123456789abcdef";
  auto d = sha256(data);
  std::string out;
  for (unsigned char c : d) {
    out.push_back(hex[c >> 4]);
    out.push_back(hex[c & 15]);
  }
  return out;
}

std::variant<client_identity, api_error> authenticate(const auth_config& auth,
                                                      std::string_view header) {
  if (!auth.enabled) return client_identity{"", "", true, false};
  if (header.empty())
    return api_error::unauthorized(
        "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.");
  std::string_view scheme = header.substr(0, std::min<std::size_t>(7, header.size()));
  if (header.size() <= 7 || (scheme != "Bearer " && scheme != "bearer "))
    return api_error::unauthorized("Malformed Authorization header: expected 'Bearer YOUR_KEY'.");
  std::string_view key = header.substr(7);
  while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
  while (!key.empty() && key.back() == ' ') key.remove_suffix(1);
  auto digest = sha256(key);
  const api_key_config* found = nullptr;
  for (const auto& k : auth.keys) {
    // No early exit: timing does not reveal which key (or whether any) matched.
    bool eq = CRYPTO_memcmp(digest.data(), k.sha256.data(), digest.size()) == 0;
    if (eq && !found) found = &k;
  }
  if (!found) return api_error::unauthorized("Incorrect API key provided.");
  return client_identity{found->name, found->team, found->admin, true, found->privacy_strict};
}

}  // namespace gw::gateway
