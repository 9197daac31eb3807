#pragma once
// Route planning. Pure: no I/O, no clock, no globals; everything comes in through route_context,
// so `explain` can show exactly what `serve` decides. This is the gateway-core version (an alias's
// ordered target list, healthy targets first); the routing-policy issue grows it into scoring.
#include <string>
#include <vector>

namespace gw::policies {

struct target_view {
  std::string name;
  bool enabled = true;
  std::string disabled_reason;
  bool breaker_open = false;
  bool at_capacity = false;
  bool external = true;  // trust: external (may not receive private data)
};

struct route_context {
  std::string requested_model;  // as the client sent it
  std::string alias;            // matched alias ("*" for the catch-all)
  std::vector<target_view> targets;  // the alias's targets, in configured order
  // Private data found in the request ("CREDIT_CARD, EMAIL_ADDRESS"; types only, never values), or
  // "header" when the client asked for strict privacy; empty when none: external targets are
  // excluded otherwise.
  std::string private_data;
};

struct plan {
  std::vector<std::string> targets;  // in the order to try them
  std::string route;                 // short label for metrics/logs: the alias
  std::string reason;                // human-readable why
  bool blocked_by_privacy = false;   // every usable target is external and the request is private
};

plan choose(const route_context& ctx);

}  // namespace gw::policies
