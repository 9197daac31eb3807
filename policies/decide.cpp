#include "policies/decide.h"

#include <algorithm>
#include <set>

namespace gw::policies {

std::string_view to_string(trust_level t) {
  switch (t) {
    case trust_level::external: return "external";
    case trust_level::trusted: return "trusted";
    case trust_level::local: return "local";
  }
  return "external";
}

std::string_view to_string(privacy_action a) {
  switch (a) {
    case privacy_action::local: return "local";
    case privacy_action::redact: return "redact";
    case privacy_action::block: return "block";
  }
  return "local";
}

std::string_view to_string(budget_state b) {
  switch (b) {
    case budget_state::ok: return "ok";
    case budget_state::soft_exceeded: return "soft_exceeded";
    case budget_state::exhausted: return "exhausted";
  }
  return "ok";
}

namespace {

std::string join(const std::vector<std::string>& v, std::string_view sep = ", ") {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string usd(pusd_t p) {
  // $ with 6 decimals, for reasons only (exact amounts are in explain's JSON).
  char buf[48];
  std::snprintf(buf, sizeof buf, "$%.6f", static_cast<double>(p) / 1e12);
  return buf;
}

bool rule_matches(const rule& r, const request_facts& req, bool private_data) {
  if (r.private_data && *r.private_data != private_data) return false;
  if (!r.entities.empty()) {
    bool any = false;
    for (const auto& e : r.entities) any = any || contains(req.entities, e);
    if (!any) return false;
  }
  if (r.strong && *r.strong != req.strong) return false;
  if (!r.budget.empty() && std::find(r.budget.begin(), r.budget.end(), req.budget) == r.budget.end()) return false;
  if (!r.keys.empty() && !contains(r.keys, req.key)) return false;
  if (!r.teams.empty() && !contains(r.teams, req.team)) return false;
  if (!r.models.empty() && !contains(r.models, req.model) && !contains(r.models, req.alias)) return false;
  for (const auto& [name, value] : r.headers) {
    bool found = false;
    for (const auto& [n, v] : req.headers)
      if (n == name && (value == "*" || v == value)) found = true;
    if (!found) return false;
  }
  return true;
}

// Cost order: priced targets by cost, then unpriced; ties by higher tier, then name.
bool cheaper(const target_verdict& a, const target_verdict& b) {
  if (a.est_cost.has_value() != b.est_cost.has_value()) return a.est_cost.has_value();
  if (a.est_cost && *a.est_cost != *b.est_cost) return *a.est_cost < *b.est_cost;
  if (a.tier != b.tier) return a.tier > b.tier;
  return a.name < b.name;
}

}  // namespace

decision decide(const policy& pol, const request_facts& req, const std::vector<candidate>& candidates) {
  decision d;
  d.needed_tier = req.ignore_tier ? 1 : (req.strong ? pol.strong_tier : pol.weak_tier);
  if (req.min_tier) d.needed_tier = std::max(d.needed_tier, *req.min_tier);

  // 1. Privacy: per-type actions.
  std::vector<std::string> local_types, redact_types;
  for (const auto& e : req.entities) {
    auto it = pol.entity_actions.find(e);
    privacy_action a = it == pol.entity_actions.end() ? pol.default_action : it->second;
    if (a == privacy_action::block) d.blocked_types.push_back(e);
    else if (a == privacy_action::redact) redact_types.push_back(e);
    else local_types.push_back(e);
  }
  if (!d.blocked_types.empty()) {
    d.result = outcome::privacy_blocked;
    d.route = "privacy:block";
    d.reason = "blocked: the request carries " + join(d.blocked_types) + " (privacy action: block)";
    return d;
  }
  std::vector<std::string> private_why;
  if (!local_types.empty()) private_why.push_back("detected " + join(local_types));
  for (const auto& s : req.strict_sources) private_why.push_back("strict privacy (" + s + ")");
  if (req.private_only) private_why.push_back("model " + req.model);
  bool private_data = !private_why.empty();
  const bool sensitive = !req.entities.empty() || !req.strict_sources.empty();

  // 2. Rules.
  const std::vector<std::string>* list = &req.alias_targets;
  route_strategy strategy = req.strategy;
  d.route = req.alias;
  for (const auto& r : pol.rules) {
    if (!rule_matches(r, req, sensitive)) continue;
    d.rule = r.name;
    d.route = "rule:" + r.name;
    if (r.action == rule::kind::block) {
      d.result = outcome::rule_blocked;
      d.block_message = r.message;
      d.reason = "blocked by rule " + r.name + (r.message.empty() ? "" : ": " + r.message);
      return d;
    }
    if (r.action == rule::kind::redact) {
      // Everything detected is redacted; strictness (header, key, conversation) still holds.
      redact_types = req.entities;
      local_types.clear();
      private_why.clear();
      for (const auto& s : req.strict_sources) private_why.push_back("strict privacy (" + s + ")");
      if (req.private_only) private_why.push_back("model " + req.model);
      private_data = !private_why.empty();
    } else {
      list = &r.route;
      strategy = route_strategy::ordered;
    }
    break;
  }

  // 3. Budget.
  const bool budget_out = req.budget == budget_state::exhausted;

  // 4. Eligibility of each target on the list.
  auto find = [&](const std::string& name) -> const candidate* {
    for (const auto& c : candidates)
      if (c.name == name) return &c;
    return nullptr;
  };
  const std::int64_t need_ctx = req.prompt_tokens + req.max_tokens;
  bool excluded_private = false, excluded_client = false;
  for (const auto& name : *list) {
    target_verdict v;
    v.name = name;
    const candidate* c = find(name);
    if (!c) {
      v.why_not = "not configured";
      d.verdicts.push_back(std::move(v));
      continue;
    }
    v.est_cost = c->est_cost;
    v.tier = c->tier;
    auto no = [&](std::string why) { v.why_not = std::move(why); };
    if (!c->enabled) no("disabled" + (c->disabled_reason.empty() ? "" : ": " + c->disabled_reason));
    else if (private_data && c->trust == trust_level::external) {
      no("external target; private data (" + join(private_why, "; ") + ")");
      excluded_private = true;
    } else if (budget_out && c->trust != trust_level::local) no("budget exhausted: only local targets");
    else if (c->context_window > 0 && need_ctx > c->context_window)
      no("context " + std::to_string(c->context_window) + " < " + std::to_string(need_ctx) + " tokens needed");
    else if (req.needs_tools && !c->caps.tools) no("no tool calling");
    else if (req.needs_json && !c->caps.json_mode) no("no JSON mode");
    else if (req.needs_vision && !c->caps.vision) no("no image input");
    else if (req.min_tier && c->tier < *req.min_tier) {
      no("tier " + std::to_string(c->tier) + " < requested min_tier " + std::to_string(*req.min_tier));
      excluded_client = true;
    } else if (req.max_cost && (!c->est_cost || *c->est_cost > *req.max_cost)) {
      no(c->est_cost ? "estimated " + usd(*c->est_cost) + " > max_cost " + usd(*req.max_cost)
                     : "unpriced; cannot honour max_cost");
      excluded_client = true;
    }
    v.eligible = v.why_not.empty();
    v.unhealthy = v.eligible && (c->breaker_open || c->at_capacity);
    if (v.unhealthy) v.why_not.clear();
    d.verdicts.push_back(std::move(v));
  }

  // 5. Order.
  std::vector<const target_verdict*> eligible;
  for (const auto& v : d.verdicts)
    if (v.eligible) eligible.push_back(&v);
  std::string tier_note;
  if (strategy == route_strategy::cost) {
    std::vector<const target_verdict*> meets;
    int best_tier = 0;
    for (auto* v : eligible) {
      if (v->tier >= d.needed_tier) meets.push_back(v);
      best_tier = std::max(best_tier, v->tier);
    }
    if (meets.empty() && !eligible.empty()) {
      // Nothing reaches the needed tier: the strongest available serve, and the reason says so.
      for (auto* v : eligible)
        if (v->tier == best_tier) meets.push_back(v);
      tier_note = "; no eligible target of tier " + std::to_string(d.needed_tier) + ", best available tier " +
                  std::to_string(best_tier);
    } else {
      for (auto& v : d.verdicts)
        if (v.eligible && v.tier < d.needed_tier) {
          v.eligible = false;
          v.unhealthy = false;
          v.why_not = "tier " + std::to_string(v.tier) + " < needed " + std::to_string(d.needed_tier);
        }
    }
    std::stable_sort(meets.begin(), meets.end(), [](auto* a, auto* b) { return cheaper(*a, *b); });
    eligible = std::move(meets);
  }
  std::stable_partition(eligible.begin(), eligible.end(), [](auto* v) { return !v->unhealthy; });
  for (auto* v : eligible) d.targets.push_back(v->name);

  d.private_data = private_data;
  if (d.targets.empty()) {
    if (budget_out) {
      d.result = outcome::budget_exceeded;
      d.reason = "the " + req.budget_detail + " is exhausted and no local target can serve";
      return d;
    }
    if (private_data && excluded_private) {
      d.result = outcome::privacy_blocked;
      d.reason = "private data (" + join(private_why, "; ") + ") and no local or trusted target can serve";
      d.blocked_types = local_types;
      return d;
    }
    d.result = outcome::no_target;
    d.client_constraint = excluded_client;
    std::vector<std::string> why;
    for (const auto& v : d.verdicts)
      if (!v.why_not.empty()) why.push_back(v.name + " " + v.why_not);
    d.reason = (d.rule.empty() ? "alias " + req.alias : "rule " + d.rule) + ": no usable target" +
               (why.empty() ? "" : " (" + join(why) + ")");
    return d;
  }

  d.result = outcome::forward;
  if (budget_out) d.route = "budget:local";
  // Redaction matters only if the request may leave for an external target.
  bool any_external = false;
  for (const auto& n : d.targets)
    if (const candidate* c = find(n); c && c->trust == trust_level::external) any_external = true;
  if (any_external) d.redact_types = redact_types;

  std::string r;
  if (!d.rule.empty()) r = "rule " + d.rule;
  else if (strategy == route_strategy::cost) r = "cost: cheapest of tier >= " + std::to_string(d.needed_tier);
  else r = "alias " + req.alias;
  r += " -> " + d.targets.front();
  if (d.targets.size() > 1) r += " (+" + std::to_string(d.targets.size() - 1) + " fallback)";
  // The complexity tier is part of the reason where it decided: cost choices and rules.
  if (!req.ignore_tier && (strategy == route_strategy::cost || !d.rule.empty()))
    r += "; complexity " + std::string(req.strong ? "strong" : "weak") + " (" + req.tier_mode + ")";
  r += tier_note;
  if (private_data) r += "; private (" + join(private_why, "; ") + "): external targets excluded";
  if (!d.redact_types.empty()) r += "; redacted " + join(d.redact_types);
  if (budget_out) r += "; " + req.budget_detail + " exhausted: local fallback";
  else if (req.budget == budget_state::soft_exceeded) r += "; over the " + req.budget_detail + " (soft)";
  // Skipped targets with their reasons; disabled ones (usually a missing API key, said at start)
  // only by name, so the reason stays short.
  std::vector<std::string> skipped;
  std::vector<std::pair<std::string, std::vector<std::string>>> disabled;  // reason -> targets
  for (const auto& v : d.verdicts) {
    if (!v.eligible && v.why_not.rfind("disabled", 0) == 0) {
      std::string why = v.why_not.size() > 10 ? v.why_not.substr(10) : "";
      auto it = std::find_if(disabled.begin(), disabled.end(), [&](const auto& g) { return g.first == why; });
      if (it == disabled.end()) disabled.push_back({why, {v.name}});
      else it->second.push_back(v.name);
    } else if (!v.eligible && !v.why_not.empty()) {
      skipped.push_back(v.name + " " + v.why_not);
    } else if (v.unhealthy) {
      skipped.push_back(v.name + " unhealthy (last)");
    }
  }
  if (!skipped.empty()) r += "; skipped " + join(skipped);
  for (const auto& [why, names] : disabled) r += "; disabled " + join(names) + (why.empty() ? "" : " (" + why + ")");
  d.reason = std::move(r);
  return d;
}

}  // namespace gw::policies
