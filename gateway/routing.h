#pragma once
// From an OpenAI request to a routing decision: the one place that turns the request, the config
// and serve's runtime state (health, budget, adaptive calibration, sticky conversations) into
// policies::decide()'s inputs. `serve`, `explain` and `score` all call route_request(), so they
// decide the same way; explain and score pass no runtime state (every target healthy, budgets
// untouched, the shipped calibration).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "gateway/config.h"
#include "gateway/errors.h"
#include "policies/complexity.h"
#include "policies/decide.h"
#include "policies/redact.h"

namespace gw::gateway {

struct complexity_scorer {
  policies::complexity_model model;
  std::vector<double> calibration;  // scores of the calibration sample
  double strong_share = 0.5;
  double threshold = 0;             // threshold_for_share(calibration, strong_share)
  std::string source;               // "built-in" or the files' paths
};

// Loads the model and calibration sample ("" = the built-in ones). Throws std::runtime_error
// naming the file (start-up / reload only).
std::shared_ptr<const complexity_scorer> load_complexity_scorer(const std::string& model_file,
                                                                const std::string& calibration_file,
                                                                double strong_share);

struct target_state {
  bool breaker_open = false;
  bool at_capacity = false;
  std::string unavailable;  // non-empty: cannot serve at all (e.g. its local model did not load)
};

// What serve knows beyond the request itself.
struct routing_request {
  std::string key, team;
  bool key_strict = false;  // the client key is labelled privacy: strict
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case names
  policies::budget_state budget = policies::budget_state::ok;
  std::string budget_detail;
  std::optional<double> adaptive_threshold;  // serve's recent-traffic threshold, once warm
  bool conversation_private = false;         // the sticky store has this conversation as private
  std::function<target_state(const std::string&)> health;  // null: every target healthy
};

struct routing_result {
  std::optional<api_error> error;  // the request's tollgate object (or header) is invalid
  policies::request_facts facts;
  std::vector<policies::candidate> candidates;
  policies::decision decision;
  std::vector<std::pair<std::string, int>> entity_counts;  // type -> matches (never values)
  std::string conversation_id;  // x-tollgate-conversation-id or the `user` field; "" when none
  const model_alias* alias = nullptr;
};

// Every private-data match in `text`: the built-in detectors plus the config's custom ones, ordered
// by start (type name, UTF-8 byte offsets).
struct private_match {
  std::string type;
  std::size_t start = 0, end = 0;
};
std::vector<private_match> find_private_data(const config& cfg, std::string_view text);

// The conversation id a request carries (header first, then the body's `user`).
std::string conversation_id(const nlohmann::ordered_json& body,
                            const std::vector<std::pair<std::string, std::string>>& headers);

// `body` is the client's request (chat, completions or embeddings); `alias` its matched alias.
routing_result route_request(const config& cfg, const model_alias& alias, const nlohmann::ordered_json& body,
                             const routing_request& rt);

// Prepares the body for upstream: removes the `tollgate` object and redacts the decision's
// redact_types in every text field. The returned map restores the values in the response.
policies::redaction_map prepare_upstream_body(const config& cfg, const routing_result& r,
                                              nlohmann::ordered_json& body);

// The client error for a decision that does not forward (privacy/rule block, budget, no target).
api_error decision_error(const routing_result& r, const std::string& model, int budget_retry_after_s);

// A short summary of the decision for the access log and the ledger: types and counts, never values.
std::string privacy_summary(const routing_result& r);

}  // namespace gw::gateway
