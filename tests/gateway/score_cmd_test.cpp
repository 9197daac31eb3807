// `tollgate score`: one JSON line out per request line in, with complexity, tier, privacy, route.
#include "gateway/score_cmd.h"
#include "ledger/money.h"
#include "policies/complexity.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

using namespace gw::gateway;

namespace {
score_options repo_options() {
  auto repo = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
  score_options o;
  o.model_file = (repo / "policies/complexity_model.json").string();
  o.calibration_file = (repo / "policies/complexity_calibration.json").string();
  return o;
}
}  // namespace

TEST(score_cmd, scores_privacy_and_route_per_line) {
  auto cfg = load_config_text(
      "auth: none\ntargets:\n  a: {base_url: http://127.0.0.1:9/v1}\n  b: {base_url: http://127.0.0.1:9/v1}\n"
      "models:\n  m: [a, b]\n",
      "t.yaml");
  std::istringstream in(
      R"({"id":"r1","model":"m","messages":[{"role":"user","content":"hi"}]})" "\n"
      "\n"
      R"({"id":"r2","messages":[{"role":"system","content":"x"},{"role":"user","content":"My card is 4111 1111 1111 1111 and mail a@b.co"}]})" "\n");
  std::ostringstream out, err;
  EXPECT_EQ(run_score(*cfg.cfg, repo_options(), in, out, err), 0) << err.str();
  std::istringstream lines(out.str());
  std::string l1, l2, extra;
  ASSERT_TRUE(std::getline(lines, l1));
  ASSERT_TRUE(std::getline(lines, l2));
  EXPECT_FALSE(std::getline(lines, extra));
  auto a = nlohmann::json::parse(l1), b = nlohmann::json::parse(l2);
  EXPECT_EQ(a["id"], "r1");
  EXPECT_TRUE(a["complexity"].is_number());
  EXPECT_TRUE(a["tier"] == "weak" || a["tier"] == "strong");
  EXPECT_EQ(a["privacy"], "none");
  EXPECT_EQ(a["route"], "a");
  EXPECT_EQ(b["privacy"], "sensitive");
  ASSERT_EQ(b["pii"].size(), 2u);
  EXPECT_EQ(b["pii"][0]["type"], "CREDIT_CARD");
  EXPECT_EQ(b["pii"][0]["text"], "4111 1111 1111 1111");
  EXPECT_EQ(b["pii"][0]["message"], 1);
  EXPECT_EQ(b["pii"][0]["start"], 11);
  EXPECT_EQ(b["pii"][1]["type"], "EMAIL_ADDRESS");
  EXPECT_TRUE(b["route"].is_null());
}

TEST(score_cmd, bad_lines_and_missing_model_are_reported) {
  auto cfg = load_config_text("auth: none\ntargets:\n  a: {base_url: http://127.0.0.1:9/v1}\nmodels:\n  m: a\n", "t.yaml");
  std::istringstream in("not json\n{\"id\":1,\"messages\":[]}\n");
  std::ostringstream out, err;
  EXPECT_EQ(run_score(*cfg.cfg, repo_options(), in, out, err), 1);
  EXPECT_NE(err.str().find("line 1"), std::string::npos);
  score_options missing = repo_options();
  missing.model_file = "/nonexistent/model.json";
  std::istringstream in2("");
  std::ostringstream out2, err2;
  EXPECT_EQ(run_score(*cfg.cfg, missing, in2, out2, err2), 1);
  EXPECT_NE(err2.str().find("/nonexistent/model.json"), std::string::npos);
}

TEST(score_cmd, explain_shows_scores_eligibility_costs_and_the_plan) {
  auto cfg = load_config_text(
      "auth: none\ntargets:\n"
      "  a: {base_url: http://127.0.0.1:9/v1, api_key_env: TOLLGATE_TEST_SURELY_UNSET_KEY}\n"
      "  b: {base_url: http://127.0.0.1:9/v1, trust: trusted, prices: {input_per_mtok: 1, output_per_mtok: 2}}\n"
      "models:\n  m: [a, b]\n",
      "t.yaml");
  std::istringstream in(R"({"model":"m","max_tokens":100,"messages":[{"role":"user","content":"mail me at x@y.org"}]})");
  std::ostringstream out, err;
  ASSERT_EQ(run_explain(*cfg.cfg, repo_options(), in, out, err), 0) << err.str();
  auto j = nlohmann::json::parse(out.str());
  EXPECT_EQ(j["features"].size(), gw::policies::complexity_feature_names().size());
  EXPECT_TRUE(j["complexity"]["score"].is_number());
  EXPECT_EQ(j["privacy"]["level"], "sensitive");
  EXPECT_EQ(j["privacy"]["matches"][0]["type"], "EMAIL_ADDRESS");
  ASSERT_EQ(j["targets"].size(), 2u);
  EXPECT_EQ(j["targets"][0]["eligible"], false);
  EXPECT_NE(j["targets"][0]["why_not"].get<std::string>().find("TOLLGATE_TEST_SURELY_UNSET_KEY"), std::string::npos);
  EXPECT_TRUE(j["targets"][0]["estimated_max_cost_usd"].is_null());  // unpriced
  // b: prompt estimate × $1/M + 100 × $2/M, exact decimal text.
  std::int64_t prompt = j["estimate"]["prompt_tokens"];
  std::int64_t pico = prompt * 1'000'000 + 100 * 2'000'000;  // $1/M = 1e6 p$ per token
  EXPECT_EQ(j["targets"][1]["estimated_max_cost_usd"], gw::ledger::format_usd(pico, 6));
  EXPECT_EQ(j["plan"], nlohmann::json::array({"b"}));
  EXPECT_NE(j["reason"].get<std::string>().find("-> b"), std::string::npos);
}
