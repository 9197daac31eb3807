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
};

struct route_context {
  std::string requested_model;  // as the client sent it
  std::string alias;            // matched alias ("*" for the catch-all)
  std::vector<target_view> targets;  // the alias's targets, in configured order
};

struct plan {
  std::vector<std::string> targets;  // in the order to try them
  std::string route;                 // short label for metrics/logs: the alias
  std::string reason;                // human-readable why
};

plan choose(const route_context& ctx);

}  // namespace gw::policies
