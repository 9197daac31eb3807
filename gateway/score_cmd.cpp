#include "gateway/score_cmd.h"

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "gateway/routing.h"
#include "ledger/money.h"
#include "policies/complexity.h"
#include "policies/custom_detect.h"
#include "policies/privacy.h"

namespace gw::gateway {

namespace {

// The config with score/explain's overrides of routing.complexity applied.
bool apply_overrides(const config& cfg, const score_options& opts, std::shared_ptr<config>* out, std::ostream& err) {
  auto copy = std::make_shared<config>(cfg);
  auto& r = copy->routing;
  if (!opts.model_file.empty()) r.model_file = opts.model_file;
  if (!opts.calibration_file.empty()) r.calibration_file = opts.calibration_file;
  if (opts.strong_share) r.strong_share = *opts.strong_share;
  if (!opts.model_file.empty() || !opts.calibration_file.empty() || opts.strong_share) {
    try {
      r.scorer = load_complexity_scorer(r.model_file, r.calibration_file, r.strong_share);
    } catch (const std::exception& e) {
      err << "tollgate: " << e.what() << "\n";
      return false;
    }
  }
  *out = std::move(copy);
  return true;
}

// Every match in the request's message texts: the offline tools print values (they run on the
// user's own data; serve never logs them).
nlohmann::ordered_json matches(const config& cfg, const nlohmann::json& req) {
  auto view = policies::read_chat_request(req);
  if (view.messages.empty() && req.contains("prompt") && req["prompt"].is_string())
    view.messages.emplace_back("user", req["prompt"].get<std::string>());
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < view.messages.size(); ++i) {
    const std::string& content = view.messages[i].second;
    for (const auto& h : find_private_data(cfg, content))
      out.push_back({{"type", h.type},
                     {"text", content.substr(h.start, h.end - h.start)},
                     {"message", i},
                     {"start", h.start},
                     {"end", h.end}});
  }
  return out;
}

std::optional<std::string> tier_name(const routing_result& r) {
  return r.facts.strong ? "strong" : "weak";
}

}  // namespace

int run_score(const config& base, const score_options& opts, std::istream& in, std::ostream& out, std::ostream& err) {
  std::shared_ptr<config> cfgp;
  if (!apply_overrides(base, opts, &cfgp, err)) return 1;
  const config& cfg = *cfgp;
  std::string line;
  int line_no = 0, bad = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto req = nlohmann::ordered_json::parse(line, nullptr, false);
    if (req.is_discarded() || !req.is_object() || !req.contains("messages") || !req["messages"].is_array()) {
      err << "tollgate score: line " << line_no << ": expected a JSON object with \"messages\"\n";
      ++bad;
      continue;
    }
    // Requests without a configured model are scored as `auto` would see them; the route is then
    // null unless the config defines a catch-all.
    const std::string model = req.contains("model") && req["model"].is_string() ? req["model"].get<std::string>() : "";
    const model_alias* alias = model.empty() ? nullptr : cfg.find_alias(model);
    const model_alias* scoring_alias = alias ? alias : cfg.find_alias("auto");
    auto r = route_request(cfg, *scoring_alias, req, routing_request{});
    nlohmann::ordered_json o;
    o["id"] = req.contains("id") ? nlohmann::ordered_json(req["id"]) : nlohmann::ordered_json(line_no);
    o["complexity"] = r.facts.complexity;
    o["tier"] = *tier_name(r);
    auto pii = matches(cfg, nlohmann::json(req));
    o["privacy"] = pii.empty() ? "none" : "sensitive";
    o["pii"] = std::move(pii);
    o["route"] = alias && r.decision.result == policies::outcome::forward ? nlohmann::ordered_json(r.decision.targets.front())
                                                                          : nlohmann::ordered_json(nullptr);
    out << o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  return bad ? 1 : 0;
}

int run_explain(const config& base, const score_options& opts, std::istream& in, std::ostream& out, std::ostream& err,
                const explain_context& ctx) {
  std::shared_ptr<config> cfgp;
  if (!apply_overrides(base, opts, &cfgp, err)) return 1;
  const config& cfg = *cfgp;
  std::stringstream ss;
  ss << in.rdbuf();
  auto req = nlohmann::ordered_json::parse(ss.str(), nullptr, false);
  if (req.is_discarded() || !req.is_object() || (!req.contains("messages") && !req.contains("prompt"))) {
    err << "tollgate explain: expected one request (a JSON object with \"messages\" or \"prompt\")\n";
    return 1;
  }
  routing_request rt;
  for (const auto& h : ctx.headers) {
    auto colon = h.find(':');
    if (colon == std::string::npos) {
      err << "tollgate explain: --header expects \"name: value\", got \"" << h << "\"\n";
      return 1;
    }
    std::string name = h.substr(0, colon), value = h.substr(colon + 1);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    value.erase(0, value.find_first_not_of(' '));
    rt.headers.emplace_back(name, value);
  }
  if (!ctx.key.empty()) {
    const api_key_config* key = nullptr;
    for (const auto& k : cfg.auth.keys)
      if (k.name == ctx.key) key = &k;
    if (!key) {
      err << "tollgate explain: no client key named " << ctx.key << " in auth.keys\n";
      return 1;
    }
    rt.key = key->name;
    rt.team = key->team;
    rt.key_strict = key->privacy_strict;
  }
  const std::string model = req.contains("model") && req["model"].is_string() ? req["model"].get<std::string>() : "";
  const model_alias* alias = model.empty() ? nullptr : cfg.find_alias(model);
  const model_alias* scoring_alias = alias ? alias : cfg.find_alias("auto");
  auto r = route_request(cfg, *scoring_alias, req, rt);
  if (r.error) {
    err << "tollgate explain: " << r.error->message << "\n";
    return 1;
  }
  nlohmann::ordered_json o;
  auto view = policies::read_chat_request(nlohmann::json(req));
  auto feats = policies::extract_features(view.messages, view.has_tools, view.wants_json, view.max_tokens);
  auto dense = policies::dense_vector(feats);
  auto& fj = o["features"] = nlohmann::ordered_json::object();
  const auto& names = policies::complexity_feature_names();
  for (std::size_t i = 0; i < names.size(); ++i) fj[std::string(names[i])] = dense[i];
  o["complexity"] = {{"score", r.facts.complexity},
                     {"threshold", r.facts.threshold},
                     {"strong_share", cfg.routing.strong_share},
                     {"tier", *tier_name(r)},
                     {"needed_tier", r.decision.needed_tier},
                     {"mode", cfg.routing.adaptive ? "calibrated (serve re-calibrates on recent traffic: adaptive)"
                                                   : "calibrated"},
                     {"model", cfg.routing.scorer->source}};
  auto pii = matches(cfg, nlohmann::json(req));
  nlohmann::ordered_json strict = r.facts.strict_sources;
  o["privacy"] = {{"level", pii.empty() && r.facts.strict_sources.empty() ? "none" : "sensitive"},
                  {"matches", pii},
                  {"strict", strict},
                  {"redact", r.decision.redact_types}};
  o["estimate"] = {{"prompt_tokens", r.facts.prompt_tokens}, {"max_completion_tokens", r.facts.max_tokens}};
  auto& targets = o["targets"] = nlohmann::ordered_json::array();
  for (const auto& v : r.decision.verdicts) {
    nlohmann::ordered_json t;
    t["target"] = v.name;
    t["eligible"] = v.eligible;
    if (!v.why_not.empty()) t["why_not"] = v.why_not;
    t["tier"] = v.tier;
    t["estimated_max_cost_usd"] = v.est_cost ? nlohmann::ordered_json(ledger::format_usd(*v.est_cost, 6))
                                             : nlohmann::ordered_json(nullptr);
    targets.push_back(std::move(t));
  }
  if (!alias) {
    o["plan"] = nullptr;
    o["route"] = nullptr;
    o["reason"] = model.empty() ? "request has no model" : "model not configured (404 model_not_found)";
  } else if (r.decision.result != policies::outcome::forward) {
    auto e = decision_error(r, model, 1);
    o["plan"] = nlohmann::ordered_json::array();
    o["route"] = r.decision.route;
    o["reason"] = r.decision.reason;
    o["error"] = {{"status", e.status}, {"code", e.code.value_or("")}, {"message", e.message}};
  } else {
    o["plan"] = r.decision.targets;
    o["route"] = r.decision.route;
    o["reason"] = r.decision.reason;
  }
  out << o.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return 0;
}

}  // namespace gw::gateway
