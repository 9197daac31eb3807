#include "gateway/score_cmd.h"

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "policies/complexity.h"
#include "policies/plan.h"
#include "policies/privacy.h"

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

int run_score(const config& cfg, const score_options& opts, std::istream& in, std::ostream& out, std::ostream& err) {
  std::string text;
  if (!read_file(opts.model_file, &text)) {
    err << "tollgate score: cannot read the complexity model " << opts.model_file << "\n";
    return 1;
  }
  policies::complexity_model model;
  try {
    model = policies::parse_complexity_model(text);
  } catch (const std::exception& e) {
    err << "tollgate score: " << opts.model_file << ": " << e.what() << "\n";
    return 1;
  }
  // The tier threshold comes from a fixed calibration sample, so no score depends on the order
  // (or the company) of the requests being scored.
  double threshold = 0;
  if (!read_file(opts.calibration_file, &text)) {
    err << "tollgate score: cannot read the calibration sample " << opts.calibration_file << "\n";
    return 1;
  }
  auto cal = nlohmann::json::parse(text, nullptr, false);
  if (cal.is_discarded() || !cal.contains("scores") || !cal["scores"].is_array() || cal["scores"].empty()) {
    err << "tollgate score: " << opts.calibration_file << ": expected {\"scores\": [numbers...]}\n";
    return 1;
  }
  threshold = policies::threshold_for_share(cal["scores"].get<std::vector<double>>(), opts.strong_share);

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
    std::vector<std::pair<std::string, std::string>> msgs;
    nlohmann::json pii = nlohmann::json::array();
    int index = 0;
    for (const auto& m : req["messages"]) {
      std::string role = m.is_object() && m.contains("role") && m["role"].is_string() ? m["role"].get<std::string>() : "";
      std::string content;
      if (m.is_object() && m.contains("content")) {
        const auto& c = m["content"];
        if (c.is_string()) {
          content = c.get<std::string>();
        } else if (c.is_array()) {
          for (const auto& part : c)
            if (part.is_object() && part.value("type", "") == "text" && part.contains("text") && part["text"].is_string())
              content += part["text"].get<std::string>() + "\n";
        }
      }
      // The offline tool prints matches: it runs on the user's own data (serve never logs them).
      for (const auto& hit : policies::detect_pii(content))
        pii.push_back({{"type", policies::to_string(hit.type)},
                       {"text", content.substr(hit.start, hit.end - hit.start)},
                       {"message", index},
                       {"start", hit.start},
                       {"end", hit.end}});
      msgs.emplace_back(std::move(role), std::move(content));
      ++index;
    }
    bool has_tools = req.contains("tools") && req["tools"].is_array() && !req["tools"].empty();
    bool wants_json = req.contains("response_format") && req["response_format"].is_object();
    std::int64_t max_tokens = 0;
    for (const char* k : {"max_completion_tokens", "max_tokens"})
      if (req.contains(k) && req[k].is_number_integer()) max_tokens = req[k].get<std::int64_t>();
    double score = policies::complexity_score(policies::extract_features(msgs, has_tools, wants_json, max_tokens), model);

    nlohmann::ordered_json o;
    o["id"] = req.contains("id") ? req["id"] : nlohmann::json(line_no);
    o["complexity"] = score;
    o["tier"] = score > threshold ? "strong" : "weak";
    o["privacy"] = pii.empty() ? "none" : "sensitive";
    o["pii"] = pii;
    // The route the gateway's current plan takes for the request's model (offline: every enabled
    // target counts as healthy).
    nlohmann::json route = nullptr;
    if (req.contains("model") && req["model"].is_string()) {
      if (const model_alias* alias = cfg.find_alias(req["model"].get<std::string>())) {
        policies::route_context ctx;
        ctx.requested_model = req["model"].get<std::string>();
        ctx.alias = alias->name;
        for (const auto& t : alias->targets)
          if (const auto* spec = cfg.find_target(t)) ctx.targets.push_back({t, spec->enabled, spec->disabled_reason, false, false});
        auto plan = policies::choose(ctx);
        if (!plan.targets.empty()) route = plan.targets.front();
      }
    }
    o["route"] = route;
    out << o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  return bad ? 1 : 0;
}

}  // namespace gw::gateway
