#include "gateway/routing.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "ledger/money.h"
#include "policies/complexity_defaults.h"
#include "policies/custom_detect.h"
#include "policies/privacy.h"
#include "providers/usage.h"

namespace gw::gateway {

std::shared_ptr<const complexity_scorer> load_complexity_scorer(const std::string& model_file,
                                                                const std::string& calibration_file,
                                                                double strong_share) {
  auto read = [](const std::string& path, std::string_view builtin) {
    if (path.empty()) return std::string(builtin);
    std::ifstream f(path);
    if (!f) throw std::runtime_error("cannot read " + path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  auto s = std::make_shared<complexity_scorer>();
  try {
    s->model = policies::parse_complexity_model(read(model_file, policies::builtin_complexity_model_json()));
  } catch (const std::exception& e) {
    throw std::runtime_error((model_file.empty() ? std::string("built-in complexity model") : model_file) + ": " +
                             e.what());
  }
  const std::string cal_name = calibration_file.empty() ? "built-in calibration sample" : calibration_file;
  auto cal = nlohmann::json::parse(read(calibration_file, policies::builtin_complexity_calibration_json()), nullptr,
                                   false);
  if (cal.is_discarded() || !cal.contains("scores") || !cal["scores"].is_array() || cal["scores"].empty())
    throw std::runtime_error(cal_name + ": expected {\"scores\": [numbers...]}");
  for (const auto& v : cal["scores"]) {
    if (!v.is_number() || !std::isfinite(v.get<double>()))
      throw std::runtime_error(cal_name + ": every score must be a finite number");
    s->calibration.push_back(v.get<double>());
  }
  s->strong_share = strong_share;
  s->threshold = policies::threshold_for_share(s->calibration, strong_share);
  s->source = model_file.empty() && calibration_file.empty() ? "built-in" : model_file + ", " + cal_name;
  return s;
}

namespace {

// Every text the model will read: chat message contents (strings, text parts), a completion
// prompt (string or list of strings), an embedding input.
template <class Json, class Fn>
void for_each_text(Json& body, Fn&& fn) {
  auto visit = [&](auto& v) {
    if (v.is_string()) {
      fn(v.template get_ref<std::conditional_t<std::is_const_v<Json>, const std::string&, std::string&>>());
    } else if (v.is_array()) {
      for (auto& part : v) {
        if (part.is_string()) {
          fn(part.template get_ref<std::conditional_t<std::is_const_v<Json>, const std::string&, std::string&>>());
        } else if (part.is_object()) {
          auto t = part.find("text");
          if (t != part.end() && t->is_string())
            fn(t->template get_ref<std::conditional_t<std::is_const_v<Json>, const std::string&, std::string&>>());
        }
      }
    }
  };
  if (auto msgs = body.find("messages"); msgs != body.end() && msgs->is_array())
    for (auto& m : *msgs)
      if (m.is_object())
        if (auto c = m.find("content"); c != m.end()) visit(*c);
  if (auto p = body.find("prompt"); p != body.end()) visit(*p);
  if (auto in = body.find("input"); in != body.end()) visit(*in);
}

struct client_options {
  std::optional<policies::pusd_t> max_cost;
  std::optional<int> min_tier;
  bool strict = false;
};

// The request's `tollgate` object, or the x-tollgate header holding the same JSON.
std::optional<api_error> read_client_options(const nlohmann::ordered_json& body,
                                             const std::vector<std::pair<std::string, std::string>>& headers,
                                             client_options* out) {
  nlohmann::ordered_json obj;
  std::string where = "tollgate";
  if (auto it = body.find("tollgate"); it != body.end()) {
    obj = *it;
  } else {
    for (const auto& [n, v] : headers)
      if (n == "x-tollgate") {
        obj = nlohmann::ordered_json::parse(v, nullptr, false);
        where = "x-tollgate header";
        if (obj.is_discarded())
          return api_error::invalid_request("The x-tollgate header must hold a JSON object.", "x-tollgate");
      }
    if (obj.is_null()) return std::nullopt;
  }
  if (!obj.is_object())
    return api_error::invalid_request("`" + where + "` must be an object like {\"max_cost_usd\": 0.01}.", "tollgate");
  for (const auto& [k, v] : obj.items()) {
    if (k == "max_cost_usd") {
      std::optional<ledger::pico_usd> p;
      if (v.is_string()) p = ledger::parse_usd(v.get<std::string>());
      else if (v.is_number() && v.get<double>() >= 0 && v.get<double>() < 1e9) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.12f", v.get<double>());
        p = ledger::parse_usd(buf);
      }
      if (!p)
        return api_error::invalid_request("`tollgate.max_cost_usd` must be a non-negative amount in USD.",
                                          "tollgate.max_cost_usd");
      out->max_cost = *p;
    } else if (k == "min_tier") {
      if (!v.is_number_integer() || v.get<std::int64_t>() < 1 || v.get<std::int64_t>() > 3)
        return api_error::invalid_request("`tollgate.min_tier` must be 1, 2 or 3.", "tollgate.min_tier");
      out->min_tier = v.get<int>();
    } else if (k == "privacy") {
      if (!v.is_string() || (v != "strict" && v != "normal"))
        return api_error::invalid_request("`tollgate.privacy` must be \"strict\" or \"normal\".", "tollgate.privacy");
      out->strict = v == "strict";
    } else {
      return api_error::invalid_request("Unknown field `tollgate." + k + "` (expected max_cost_usd, min_tier, privacy).",
                                        "tollgate." + k);
    }
  }
  return std::nullopt;
}

policies::trust_level trust_of(const std::string& t) {
  if (t == "local") return policies::trust_level::local;
  if (t == "trusted") return policies::trust_level::trusted;
  return policies::trust_level::external;
}

}  // namespace

std::vector<private_match> find_private_data(const config& cfg, std::string_view text) {
  std::vector<private_match> out;
  for (const auto& m : policies::detect_pii(text)) out.push_back({std::string(policies::to_string(m.type)), m.start, m.end});
  if (cfg.routing.detectors)
    for (const auto& m : cfg.routing.detectors->scan(text)) out.push_back({std::string(m.type), m.start, m.end});
  std::stable_sort(out.begin(), out.end(), [](const private_match& a, const private_match& b) { return a.start < b.start; });
  return out;
}

std::string conversation_id(const nlohmann::ordered_json& body,
                            const std::vector<std::pair<std::string, std::string>>& headers) {
  for (const auto& [n, v] : headers)
    if (n == "x-tollgate-conversation-id" && !v.empty()) return v;
  if (auto u = body.find("user"); u != body.end() && u->is_string()) return u->get<std::string>();
  return {};
}

routing_result route_request(const config& cfg, const model_alias& alias, const nlohmann::ordered_json& body,
                             const routing_request& rt) {
  routing_result r;
  r.alias = &alias;
  auto& f = r.facts;
  client_options opts;
  if (auto err = read_client_options(body, rt.headers, &opts)) {
    r.error = std::move(err);
    return r;
  }
  const nlohmann::json plain(body);
  f.model = body.contains("model") && body["model"].is_string() ? body["model"].get<std::string>() : "";
  f.alias = alias.name;
  f.strategy = alias.strategy;
  f.private_only = alias.private_only;
  f.ignore_tier = alias.ignore_tier;
  f.alias_targets = alias.targets;
  f.key = rt.key;
  f.team = rt.team;
  f.headers = rt.headers;
  f.budget = rt.budget;
  f.budget_detail = rt.budget_detail;
  f.max_cost = opts.max_cost;
  f.min_tier = opts.min_tier;

  // Complexity: chat messages, or a completion prompt read as one user turn.
  auto view = policies::read_chat_request(plain);
  if (view.messages.empty())
    for_each_text(plain, [&](const std::string& s) { view.messages.emplace_back("user", s); });
  const auto& scorer = *cfg.routing.scorer;
  auto feats = policies::extract_features(view.messages, view.has_tools, view.wants_json, view.max_tokens);
  f.complexity = policies::complexity_score(feats, scorer.model);
  f.threshold = rt.adaptive_threshold.value_or(scorer.threshold);
  f.tier_mode = rt.adaptive_threshold ? "adaptive" : "calibrated";
  f.strong = f.complexity > f.threshold;
  f.needs_tools = view.has_tools || (plain.contains("functions") && plain["functions"].is_array());
  if (auto rf = plain.find("response_format"); rf != plain.end() && rf->is_object())
    f.needs_json = rf->value("type", "") == "json_object" || rf->value("type", "") == "json_schema";
  if (auto msgs = plain.find("messages"); msgs != plain.end() && msgs->is_array())
    for (const auto& m : *msgs)
      if (m.is_object() && m.contains("content") && m["content"].is_array())
        for (const auto& part : m["content"])
          if (part.is_object() && (part.value("type", "") == "image_url" || part.value("type", "") == "input_image"))
            f.needs_vision = true;
  f.prompt_tokens = providers::estimate_prompt_tokens(plain);
  f.max_tokens = view.max_tokens > 0 ? view.max_tokens : cfg.spend.default_max_tokens;

  // Privacy: types and counts only.
  std::map<std::string, int> counts;
  for_each_text(body, [&](const std::string& s) {
    for (const auto& m : find_private_data(cfg, s)) ++counts[m.type];
  });
  for (const auto& [t, n] : counts) {
    f.entities.push_back(t);
    r.entity_counts.emplace_back(t, n);
  }
  for (const auto& [n, v] : rt.headers)
    if (n == "x-tollgate-privacy" && v == "strict") f.strict_sources.push_back("header");
  if (rt.key_strict) f.strict_sources.push_back("key " + rt.key);
  if (opts.strict) f.strict_sources.push_back("request");
  if (rt.conversation_private) f.strict_sources.push_back("conversation");
  r.conversation_id = conversation_id(body, rt.headers);

  // Candidates: every configured target with what the decision needs.
  for (const auto& [name, spec] : cfg.targets) {
    policies::candidate c;
    c.name = name;
    c.enabled = spec.enabled;
    c.disabled_reason = spec.disabled_reason;
    if (rt.health) {
      auto h = rt.health(name);
      c.breaker_open = h.breaker_open;
      c.at_capacity = h.at_capacity;
      if (c.enabled && !h.unavailable.empty()) {
        c.enabled = false;
        c.disabled_reason = h.unavailable;
      }
    }
    c.trust = trust_of(spec.trust);
    c.tier = spec.tier;
    if (c.tier == 0 && cfg.pricing && spec.upstream_model)
      if (const auto* row = cfg.pricing->find(spec.provider, *spec.upstream_model)) c.tier = row->tier;
    if (c.tier == 0) c.tier = 1;
    c.context_window = spec.context_window;
    if (spec.capabilities) {
      auto has = [&](const char* n) {
        return std::find(spec.capabilities->begin(), spec.capabilities->end(), n) != spec.capabilities->end();
      };
      c.caps = {has("tools"), has("json_mode"), has("vision")};
    }
    const auto& p = spec.prices;
    if (p.input || p.output) {
      auto a = ledger::token_cost(f.prompt_tokens, p.input.value_or(0));
      auto b = ledger::token_cost(f.max_tokens, p.output.value_or(0));
      if (a && b) c.est_cost = *a + *b;
    } else if (c.trust == policies::trust_level::local) {
      c.est_cost = 0;  // the local engine's marginal cost, unless prices say otherwise
    }
    r.candidates.push_back(std::move(c));
  }
  r.decision = policies::decide(cfg.routing.policy, f, r.candidates);
  return r;
}

policies::redaction_map prepare_upstream_body(const config& cfg, const routing_result& r,
                                              nlohmann::ordered_json& body) {
  policies::redaction_map map;
  body.erase("tollgate");
  const auto& types = r.decision.redact_types;
  if (types.empty()) return map;
  for_each_text(body, [&](std::string& s) {
    std::vector<private_match> found = find_private_data(cfg, s);
    std::vector<policies::span_to_redact> spans;
    for (const auto& m : found)
      if (std::find(types.begin(), types.end(), m.type) != types.end()) spans.push_back({m.type, m.start, m.end});
    if (!spans.empty()) s = map.redact(s, std::move(spans));
  });
  return map;
}

api_error decision_error(const routing_result& r, const std::string& model, int budget_retry_after_s) {
  const auto& d = r.decision;
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  switch (d.result) {
    case policies::outcome::privacy_blocked:
      if (!d.blocked_types.empty() && d.route == "privacy:block")
        return api_error::invalid_request("This request carries data that must not be sent (" + join(d.blocked_types) +
                                              "); remove it and try again.",
                                          std::nullopt, "privacy_blocked");
      return api_error::invalid_request(
          "This request carries private data" +
              (d.blocked_types.empty() ? std::string() : " (" + join(d.blocked_types) + ")") + " and model `" + model +
              "` has no available target allowed to receive it (targets with trust: local or trusted).",
          std::nullopt, "privacy_blocked");
    case policies::outcome::rule_blocked:
      return api_error::invalid_request("Request blocked by routing rule `" + d.rule + "`" +
                                            (d.block_message.empty() ? std::string() : ": " + d.block_message) + ".",
                                        std::nullopt, "blocked_by_policy");
    case policies::outcome::budget_exceeded:
      return api_error{429, "insufficient_quota", "The " + r.facts.budget_detail + " is exhausted.", std::nullopt,
                       "budget_exceeded", budget_retry_after_s};
    case policies::outcome::no_target:
      if (d.client_constraint)
        return api_error::invalid_request("No target of model `" + model + "` meets the request's `tollgate` limits: " +
                                              d.reason,
                                          "tollgate", "no_target_within_limits");
      return api_error::unavailable("No target can serve model `" + model + "`: " + d.reason, 1, "no_target_available");
    case policies::outcome::forward:
      break;
  }
  return api_error::internal("routing produced no error");
}

std::string privacy_summary(const routing_result& r) {
  std::string s;
  for (const auto& [t, n] : r.entity_counts) s += (s.empty() ? "" : ",") + t + "=" + std::to_string(n);
  return s;
}

}  // namespace gw::gateway
