#pragma once
// `tollgate score`: scores requests offline exactly as the gateway sees them — complexity, tier,
// privacy matches, and the route the current plan would take. JSONL in, JSONL out.
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "gateway/config.h"

namespace gw::gateway {

// Overrides of the config's routing.complexity ("" / nullopt: the config's, else the built-in).
struct score_options {
  std::string model_file;
  std::string calibration_file;
  std::optional<double> strong_share;  // share of the calibration sample that goes to the strong tier
};

// Returns the exit code; errors (unreadable model, bad lines) are reported on `err` naming the line.
int run_score(const config& cfg, const score_options& opts, std::istream& in, std::ostream& out, std::ostream& err);

// `tollgate explain`: one request (JSON on `in`) -> features, complexity and tier (and which
// calibration decided), privacy matches, each target's eligibility and estimated worst-case cost,
// and the plan with its reason — computed by the same route_request() serve uses. Headers serve
// would see can be given as "name: value" strings (x-tollgate-privacy, rule headers); `key` names
// the client key (its team and privacy label apply).
struct explain_context {
  std::vector<std::string> headers;
  std::string key;
};
int run_explain(const config& cfg, const score_options& opts, std::istream& in, std::ostream& out, std::ostream& err,
                const explain_context& ctx = {});

}  // namespace gw::gateway
