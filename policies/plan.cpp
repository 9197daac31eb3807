#include "policies/plan.h"

namespace gw::policies {

plan choose(const route_context& ctx) {
  plan p;
  p.route = ctx.alias;
  std::vector<std::string> unhealthy;
  std::string skipped;
  bool dropped_external = false;
  for (const auto& t : ctx.targets) {
    if (!ctx.private_data.empty() && t.external) {
      skipped += (skipped.empty() ? "" : ", ") + t.name + " external";
      dropped_external = dropped_external || t.enabled;
      continue;  // private data never leaves for an external target
    }
    if (!t.enabled) {
      skipped += (skipped.empty() ? "" : ", ") + t.name + " disabled" +
                 (t.disabled_reason.empty() ? "" : ": " + t.disabled_reason);
      continue;  // a disabled target can never serve: leave it out of the plan
    }
    if (t.breaker_open || t.at_capacity) {
      // Kept as a last resort: its breaker may close, or a slot free up, by the time we get there.
      unhealthy.push_back(t.name);
      skipped += (skipped.empty() ? "" : ", ") + t.name + (t.breaker_open ? " circuit open" : " at capacity");
      continue;
    }
    p.targets.push_back(t.name);
  }
  p.targets.insert(p.targets.end(), unhealthy.begin(), unhealthy.end());
  std::string privacy = ctx.private_data.empty() ? "" : "; private data (" + ctx.private_data + "): external targets excluded";
  if (p.targets.empty()) {
    p.blocked_by_privacy = dropped_external;
    p.reason = "alias " + ctx.alias + ": no usable target (" + skipped + ")" + privacy;
    return p;
  }
  p.reason = "alias " + ctx.alias + " -> " + p.targets.front();
  if (p.targets.size() > 1) p.reason += " (+" + std::to_string(p.targets.size() - 1) + " fallback)";
  if (!skipped.empty()) p.reason += "; skipped " + skipped;
  p.reason += privacy;
  return p;
}

}  // namespace gw::policies
