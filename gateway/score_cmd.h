#pragma once
// `tollgate score`: scores requests offline exactly as the gateway sees them — complexity, tier,
// privacy matches, and the route the current plan would take. JSONL in, JSONL out.
#include <iosfwd>
#include <string>

#include "gateway/config.h"

namespace gw::gateway {

struct score_options {
  std::string model_file = "policies/complexity_model.json";
  std::string calibration_file = "policies/complexity_calibration.json";
  double strong_share = 0.5;  // share of the calibration sample that goes to the strong tier
};

// Returns the exit code; errors (unreadable model, bad lines) are reported on `err` naming the line.
int run_score(const config& cfg, const score_options& opts, std::istream& in, std::ostream& out, std::ostream& err);

// `tollgate explain`: one request (JSON on `in`) -> features, complexity and tier, privacy matches,
// each target's eligibility and estimated worst-case cost, and the plan with its reason.
int run_explain(const config& cfg, const score_options& opts, std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace gw::gateway
