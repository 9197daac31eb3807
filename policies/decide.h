#pragma once
// The routing decision. Pure: no I/O, no clock, no globals. Everything the decision depends on —
// request facts (scores, detected data types, key/team, headers, budget state, the client's
// intent), each target's health, trust, tier, context window, capabilities and estimated cost, and
// the configured policy (rules, per-type privacy actions) — comes in as arguments, so `explain`,
// `score` and `serve` decide identically on the same inputs.
//
// Order of a decision:
//   1. privacy: each detected type's action (block -> 400; redact -> may leave redacted; local ->
//      only local/trusted targets), plus strictness from a header, key label, the request's
//      `tollgate` object or a sticky conversation;
//   2. rules, first match wins: `route` (their target list, in order), `block`, or `redact`;
//   3. budget: a hard budget that is exhausted leaves only local targets (else 429);
//   4. the default choice: for cost-strategy aliases (auto, auto-cheap, auto-private, or
//      `strategy: cost`), the cheapest eligible target whose tier meets the needed tier, fallbacks
//      in cost order; for ordered aliases, the configured order. Unhealthy targets go last.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gw::policies {

using pusd_t = std::int64_t;  // pico-dollars

enum class trust_level { external, trusted, local };
enum class privacy_action { local, redact, block };
enum class budget_state { ok, soft_exceeded, exhausted };
enum class route_strategy { ordered, cost };

std::string_view to_string(trust_level t);
std::string_view to_string(privacy_action a);
std::string_view to_string(budget_state b);

// What a target supports. Undeclared capabilities count as supported (configs declare what a
// target lacks by listing what it has).
struct capability_set {
  bool tools = true;
  bool json_mode = true;
  bool vision = true;
};

// One configured target as the decision sees it.
struct candidate {
  std::string name;
  bool enabled = true;
  std::string disabled_reason;
  bool breaker_open = false;
  bool at_capacity = false;
  trust_level trust = trust_level::external;
  int tier = 1;                   // quality tier, 1 (small) .. 3 (frontier)
  std::int64_t context_window = 0;  // tokens; 0 = not declared (no check)
  capability_set caps;
  std::optional<pusd_t> est_cost;  // worst-case cost of this request there; nullopt = unpriced
};

struct rule {
  std::string name;
  // when: every condition given must hold; a list matches any of its values.
  std::optional<bool> private_data;     // privacy: sensitive (true) / none (false)
  std::vector<std::string> entities;    // any of these types detected
  std::optional<bool> strong;           // tier: strong (true) / weak (false)
  std::vector<budget_state> budget;     // budget state is one of these
  std::vector<std::string> keys, teams, models;  // models: the requested name or its alias
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case name -> value ("*": present)
  // then
  enum class kind { route, block, redact } action = kind::route;
  std::vector<std::string> route;  // kind::route: targets in order
  std::string message;             // kind::block: shown to the client
};

struct policy {
  std::vector<rule> rules;
  std::map<std::string, privacy_action> entity_actions;  // by type name ("CREDIT_CARD", custom names)
  privacy_action default_action = privacy_action::local;
  int weak_tier = 1;    // tier needed by requests scored weak
  int strong_tier = 2;  // tier needed by requests scored strong
};

struct request_facts {
  std::string model;  // as sent
  std::string alias;  // the configured alias it matched (or the built-in auto alias)
  route_strategy strategy = route_strategy::ordered;
  bool private_only = false;  // auto-private
  bool ignore_tier = false;   // auto-cheap
  std::vector<std::string> alias_targets;  // ordered: the alias's targets; cost: all candidates
  double complexity = 0;
  double threshold = 0;
  std::string tier_mode = "calibrated";  // which calibration decided: "calibrated" or "adaptive"
  bool strong = false;
  std::vector<std::string> entities;        // distinct detected types (built-in and custom)
  std::vector<std::string> strict_sources;  // why strict privacy applies: "header", "key", ...
  bool needs_tools = false, needs_json = false, needs_vision = false;
  std::int64_t prompt_tokens = 0;
  std::int64_t max_tokens = 0;  // the request's, or the configured default
  std::string key, team;
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case names
  budget_state budget = budget_state::ok;
  std::string budget_detail;  // e.g. "team search daily budget ($50.00)"
  std::optional<pusd_t> max_cost;  // client's limit (tollgate.max_cost_usd)
  std::optional<int> min_tier;     // client's minimum (tollgate.min_tier)
};

enum class outcome {
  forward,          // targets holds the plan
  privacy_blocked,  // 400: a type whose action is block, or private data with no allowed target
  rule_blocked,     // 400: a rule with action block
  budget_exceeded,  // 429: hard budget exhausted and no local target can serve
  no_target,        // 503 (or 400 when no target fits the client's constraints)
};

struct target_verdict {
  std::string name;
  bool eligible = false;
  std::string why_not;  // empty when eligible
  std::optional<pusd_t> est_cost;
  int tier = 0;
  bool unhealthy = false;  // eligible but tried last
};

struct decision {
  outcome result = outcome::no_target;
  std::vector<std::string> targets;  // the order to try
  std::string route;                 // short label: "rule:<name>", "auto", "<alias>", "budget:local"
  std::string reason;                // human-readable why
  std::string rule;                  // the rule that matched, if any
  std::string block_message;         // rule_blocked: the rule's message for the client
  int needed_tier = 1;
  bool private_data = false;                // external targets were excluded
  std::vector<std::string> redact_types;    // redact these before forwarding (plan has an external target)
  std::vector<std::string> blocked_types;   // privacy_blocked: the types that blocked it
  bool client_constraint = false;           // no_target because of max_cost / min_tier
  std::vector<target_verdict> verdicts;     // every candidate considered, for explain
};

// `candidates` holds every configured target (looked up by name from the alias or rule lists).
decision decide(const policy& pol, const request_facts& req, const std::vector<candidate>& candidates);

}  // namespace gw::policies
