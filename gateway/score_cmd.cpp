#include "gateway/score_cmd.h"

#include "gateway/api.h"

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "policies/complexity.h"
#include "policies/plan.h"
#include "policies/privacy.h"
#include "ledger/money.h"
#include "providers/usage.h"

namespace gw::gateway {

namespace {
bool read_file(const std::string& path, std::string* out) {
  std::ifstream f(path);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}
}  // namespace

namespace {

struct loaded_scorer {
  policies::complexity_model model;
  double threshold = 0;
};

// Loads the model and turns the calibration sample into the tier threshold.
bool load_scorer(const score_options& opts, loaded_scorer* out, std::ostream& err) {
  std::string text;
  if (!read_file(opts.model_file, &text)) {
    err << "tollgate: cannot read the complexity model " << opts.model_file << "\n";
    return false;
  }
  try {
    out->model = policies::parse_complexity_model(text);
  } catch (const std::exception& e) {
    err << "tollgate: " << opts.model_file << ": " << e.what() << "\n";
    return false;
  }
  // The tier threshold comes from a fixed calibration sample, so no score depends on the order
  // (or the company) of the requests being scored.
  if (!read_file(opts.calibration_file, &text)) {
    err << "tollgate: cannot read the calibration sample " << opts.calibration_file << "\n";
    return false;
  }
  auto cal = nlohmann::json::parse(text, nullptr, false);
  if (cal.is_discarded() || !cal.contains("scores") || !cal["scores"].is_array() || cal["scores"].empty()) {
    err << "tollgate: " << opts.calibration_file << ": expected {\"scores\": [numbers...]}\n";
    return false;
  }
  out->threshold = policies::threshold_for_share(cal["scores"].get<std::vector<double>>(), opts.strong_share);
  return true;
}

struct scored_request {
  std::vector<std::pair<std::string, std::string>> messages;
  policies::complexity_features features;
  double complexity = 0;
  nlohmann::json pii = nlohmann::json::array();
  std::int64_t max_tokens = 0;
};

scored_request score_one(const nlohmann::json& req, const policies::complexity_model& model) {
  scored_request r;
  auto view = policies::read_chat_request(req);
  for (std::size_t i = 0; i < view.messages.size(); ++i) {
    const std::string& content = view.messages[i].second;
    // The offline tools print matches: they run on the user's own data (serve never logs them).
    for (const auto& hit : policies::detect_pii(content))
      r.pii.push_back({{"type", policies::to_string(hit.type)},
                       {"text", content.substr(hit.start, hit.end - hit.start)},
                       {"message", i},
                       {"start", hit.start},
                       {"end", hit.end}});
  }
  r.max_tokens = view.max_tokens;
  r.features = policies::extract_features(view.messages, view.has_tools, view.wants_json, view.max_tokens);
  r.complexity = policies::complexity_score(r.features, model);
  r.messages = std::move(view.messages);
  return r;
}

// The plan serve would take for the request's model (offline: every enabled target counts as
// healthy); nullopt when the model is not configured.
std::optional<policies::plan> plan_for(const config& cfg, const nlohmann::json& req) {
  if (!req.contains("model") || !req["model"].is_string()) return std::nullopt;
  const model_alias* alias = cfg.find_alias(req["model"].get<std::string>());
  if (!alias) return std::nullopt;
  policies::route_context ctx;
  ctx.requested_model = req["model"].get<std::string>();
  ctx.alias = alias->name;
  for (const auto& t : alias->targets)
    if (const auto* spec = cfg.find_target(t))
      ctx.targets.push_back({t, spec->enabled, spec->disabled_reason, false, false, spec->trust == "external"});
  ctx.private_data = private_data_types(nlohmann::ordered_json(req));
  return policies::choose(ctx);
}

}  // namespace

int run_score(const config& cfg, const score_options& opts, std::istream& in, std::ostream& out, std::ostream& err) {
  loaded_scorer sc;
  if (!load_scorer(opts, &sc, err)) return 1;
  std::string line;
  int line_no = 0, bad = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto req = nlohmann::json::parse(line, nullptr, false);
    if (req.is_discarded() || !req.is_object() || !req.contains("messages") || !req["messages"].is_array()) {
      err << "tollgate score: line " << line_no << ": expected a JSON object with \"messages\"\n";
      ++bad;
      continue;
    }
    auto r = score_one(req, sc.model);
    nlohmann::ordered_json o;
    o["id"] = req.contains("id") ? req["id"] : nlohmann::json(line_no);
    o["complexity"] = r.complexity;
    o["tier"] = r.complexity > sc.threshold ? "strong" : "weak";
    o["privacy"] = r.pii.empty() ? "none" : "sensitive";
    o["pii"] = r.pii;
    auto plan = plan_for(cfg, req);
    o["route"] = plan && !plan->targets.empty() ? nlohmann::json(plan->targets.front()) : nlohmann::json(nullptr);
    out << o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  return bad ? 1 : 0;
}

int run_explain(const config& cfg, const score_options& opts, std::istream& in, std::ostream& out, std::ostream& err) {
  loaded_scorer sc;
  if (!load_scorer(opts, &sc, err)) return 1;
  std::stringstream ss;
  ss << in.rdbuf();
  auto req = nlohmann::json::parse(ss.str(), nullptr, false);
  if (req.is_discarded() || !req.is_object() || !req.contains("messages") || !req["messages"].is_array()) {
    err << "tollgate explain: expected one chat request (a JSON object with \"messages\")\n";
    return 1;
  }
  auto r = score_one(req, sc.model);
  nlohmann::ordered_json o;
  auto dense = policies::dense_vector(r.features);
  auto& feats = o["features"] = nlohmann::ordered_json::object();
  const auto& names = policies::complexity_feature_names();
  for (std::size_t i = 0; i < names.size(); ++i) feats[std::string(names[i])] = dense[i];
  o["complexity"] = {{"score", r.complexity}, {"threshold", sc.threshold}, {"strong_share", opts.strong_share},
                     {"tier", r.complexity > sc.threshold ? "strong" : "weak"}, {"mode", "calibrated"}};
  o["privacy"] = {{"level", r.pii.empty() ? "none" : "sensitive"}, {"matches", r.pii}};
  auto plan = plan_for(cfg, req);
  if (!plan) {
    o["plan"] = nullptr;
    o["reason"] = req.contains("model") ? "model not configured (404 model_not_found)" : "request has no model";
  } else {
    // Each target of the alias: eligibility and the estimated cost at the request's size.
    std::int64_t prompt = providers::estimate_prompt_tokens(req);
    std::int64_t out_tokens = r.max_tokens > 0 ? r.max_tokens : cfg.spend.default_max_tokens;
    auto& targets = o["targets"] = nlohmann::ordered_json::array();
    const model_alias* alias = cfg.find_alias(req["model"].get<std::string>());
    for (const auto& name : alias->targets) {
      const auto* spec = cfg.find_target(name);
      nlohmann::ordered_json t;
      t["target"] = name;
      t["eligible"] = spec && spec->enabled;
      if (spec && !spec->enabled) t["why_not"] = spec->disabled_reason;
      if (spec && spec->prices.input && spec->prices.output) {
        auto a = ledger::token_cost(prompt, *spec->prices.input);
        auto b = ledger::token_cost(out_tokens, *spec->prices.output);
        if (a && b) t["estimated_max_cost_usd"] = ledger::format_usd(*a + *b, 6);
      } else {
        t["estimated_max_cost_usd"] = nullptr;  // unpriced
      }
      targets.push_back(std::move(t));
    }
    o["estimate"] = {{"prompt_tokens", prompt}, {"max_completion_tokens", out_tokens}};
    o["plan"] = plan->targets;
    o["reason"] = plan->reason;
  }
  out << o.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return 0;
}

}  // namespace gw::gateway
