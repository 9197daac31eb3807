// Integration: routing policies through the real server — budget fallback to local, redaction with
// restoration, sticky private conversations, the request's `tollgate` object, custom detectors,
// key labels, and `explain` agreeing with `serve`.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "gateway/config.h"
#include "gateway/score_cmd.h"
#include "tests/support/gateway_harness.h"
#include "tests/support/test_client.h"

using namespace gw::test;
using nlohmann::json;

namespace {

const std::string server = "server: {listen: \"127.0.0.1:0\", io_threads: 1, access_log: false, log_level: error}\n";
const std::string keys =
    "auth:\n  keys:\n    - {name: app, team: search, key: sk-app-12345678}\n"
    "    - {name: vault, team: legal, key: sk-vault-1234567, privacy: strict}\n";
const request_options app{.headers = {{"authorization", "Bearer sk-app-12345678"}}};
const request_options vault{.headers = {{"authorization", "Bearer sk-vault-1234567"}}};

// ext: external, priced (tier 2); loc: a local target (unpriced: marginal cost 0, tier 1).
std::string config(const fake_upstream& ext, const fake_upstream& loc, const std::string& extra = "",
                   const std::string& more_models = "") {
  return server + keys + "targets:\n  ext:\n    base_url: " + ext.base_url() +
         "\n    tier: 2\n    prices: {input_per_mtok: 0.15, output_per_mtok: 0.60}\n"
         "  loc:\n    base_url: " + loc.base_url() + "\n    trust: local\n    tier: 1\n" +
         "models:\n  m: [ext, loc]\n" + more_models + extra;
}

std::string chat(const std::string& model, const std::string& text, const json& extra = json::object()) {
  json j{{"model", model}, {"max_tokens", 100}, {"messages", {{{"role", "user"}, {"content", text}}}}};
  for (auto& [k, v] : extra.items()) j[k] = v;
  return j.dump();
}

request_options with(request_options o, std::string name, std::string value) {
  o.headers[std::move(name)] = std::move(value);
  return o;
}

}  // namespace

TEST(routing, exhausted_budget_falls_back_to_the_local_target) {
  fake_upstream ext, loc;
  gateway_harness gw(config(ext, loc, "budgets:\n  - {key: app, daily_usd: 0.0001}\n"));
  int external = 0;
  http_reply r;
  for (int i = 0; i < 40; ++i) {
    r = http_request(gw.port(), "/v1/chat/completions", chat("m", "hi"), app);
    ASSERT_EQ(r.status, 200) << r.body;
    if (r.header("x-tollgate-target") != "ext") break;
    ++external;
  }
  EXPECT_GE(external, 1);
  EXPECT_EQ(r.header("x-tollgate-target"), "loc");
  EXPECT_EQ(r.header("x-tollgate-route"), "budget:local");
  EXPECT_NE(r.header("x-tollgate-reason").find("key app daily budget"), std::string::npos) << r.header("x-tollgate-reason");
  EXPECT_EQ(ext.requests_count(), external);
  // Still exhausted: stays local, and nothing more goes out.
  auto again = http_request(gw.port(), "/v1/chat/completions", chat("m", "hello again"), app);
  EXPECT_EQ(again.header("x-tollgate-target"), "loc");
  EXPECT_EQ(ext.requests_count(), external);
}

TEST(routing, exhausted_budget_without_a_local_target_is_429_budget_exceeded) {
  fake_upstream ext, loc;
  std::string y = server + keys + "targets:\n  ext:\n    base_url: " + ext.base_url() +
                  "\n    prices: {input_per_mtok: 0.15, output_per_mtok: 0.60}\nmodels:\n  m: [ext]\n"
                  "budgets:\n  - {key: app, daily_usd: 0.00001}\n";
  gateway_harness gw(y);
  http_reply r;
  for (int i = 0; i < 20 && r.status != 429; ++i) r = http_request(gw.port(), "/v1/chat/completions", chat("m", "hi"), app);
  ASSERT_EQ(r.status, 429);
  EXPECT_EQ(json::parse(r.body)["error"]["code"], "budget_exceeded");
}

TEST(routing, redacted_values_never_reach_the_external_target_and_come_back_in_the_response) {
  fake_upstream ext, loc;
  gateway_harness gw(config(ext, loc, "routing:\n  privacy:\n    actions: {EMAIL_ADDRESS: redact}\n", "  gpt: [ext]\n"));
  scripted_reply reply;
  reply.body = R"({"id":"c1","object":"chat.completion","created":1,"model":"x","choices":[{"index":0,)"
               R"("message":{"role":"assistant","content":"I will write to [EMAIL_ADDRESS_1] today."},)"
               R"("finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":7,"total_tokens":16}})";
  ext.push(reply);
  auto r = http_request(gw.port(), "/v1/chat/completions", chat("gpt", "Please email jane.doe@example.com"), app);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-tollgate-target"), "ext");
  ASSERT_EQ(ext.requests_count(), 1);
  const auto sent = ext.requests()[0].body;
  EXPECT_EQ(sent.find("jane.doe@example.com"), std::string::npos) << sent;
  EXPECT_NE(sent.find("[EMAIL_ADDRESS_1]"), std::string::npos) << sent;
  EXPECT_EQ(json::parse(r.body)["choices"][0]["message"]["content"], "I will write to jane.doe@example.com today.");
  EXPECT_NE(r.header("x-tollgate-reason").find("redacted EMAIL_ADDRESS"), std::string::npos);
}

TEST(routing, blocked_types_get_a_400_that_names_only_the_type) {
  fake_upstream ext, loc;
  gateway_harness gw(config(ext, loc, "routing:\n  privacy:\n    actions: {US_SSN: block}\n"));
  auto r = http_request(gw.port(), "/v1/chat/completions", chat("m", "SSN 123-45-6789"), app);
  EXPECT_EQ(r.status, 400);
  auto e = json::parse(r.body)["error"];
  EXPECT_EQ(e["code"], "privacy_blocked");
  EXPECT_NE(e["message"].get<std::string>().find("US_SSN"), std::string::npos);
  EXPECT_EQ(r.body.find("6789"), std::string::npos);
  EXPECT_EQ(ext.requests_count() + loc.requests_count(), 0);
}

TEST(routing, a_conversation_that_carried_private_data_stays_local) {
  fake_upstream ext, loc;
  gateway_harness gw(config(ext, loc));
  auto c1 = with(app, "x-tollgate-conversation-id", "conv-1");
  EXPECT_EQ(http_request(gw.port(), "/v1/chat/completions", chat("m", "hello"), c1).header("x-tollgate-target"), "ext");
  EXPECT_EQ(http_request(gw.port(), "/v1/chat/completions", chat("m", "card 4111 1111 1111 1111"), c1)
                .header("x-tollgate-target"), "loc");
  auto later = http_request(gw.port(), "/v1/chat/completions", chat("m", "what's next?"), c1);
  EXPECT_EQ(later.header("x-tollgate-target"), "loc");
  EXPECT_NE(later.header("x-tollgate-reason").find("conversation"), std::string::npos);
  // The `user` field works too, and other conversations are unaffected.
  EXPECT_EQ(http_request(gw.port(), "/v1/chat/completions", chat("m", "hi", {{"user", "u-7"}}), app)
                .header("x-tollgate-target"), "ext");
  EXPECT_EQ(http_request(gw.port(), "/v1/chat/completions", chat("m", "mail a.b@c.de", {{"user", "u-7"}}), app)
                .header("x-tollgate-target"), "loc");
  EXPECT_EQ(http_request(gw.port(), "/v1/chat/completions", chat("m", "plain", {{"user", "u-7"}}), app)
                .header("x-tollgate-target"), "loc");
  EXPECT_EQ(http_request(gw.port(), "/v1/chat/completions", chat("m", "plain"), with(app, "x-tollgate-conversation-id", "conv-2"))
                .header("x-tollgate-target"), "ext");
}

TEST(routing, key_labels_custom_patterns_and_keywords_keep_requests_local) {
  fake_upstream ext, loc;
  gateway_harness gw(config(ext, loc,
                            "routing:\n  privacy:\n    patterns: [{type: EMPLOYEE_ID, regex: 'EMP-[0-9]{6}'}]\n"
                            "    keywords: [{type: CODENAME, words: [Project Falcon]}]\n"));
  EXPECT_EQ(http_request(gw.port(), "/v1/chat/completions", chat("m", "hello"), vault).header("x-tollgate-target"), "loc");
  EXPECT_EQ(http_request(gw.port(), "/v1/chat/completions", chat("m", "hello"), app).header("x-tollgate-target"), "ext");
  auto emp = http_request(gw.port(), "/v1/chat/completions", chat("m", "look up EMP-004211"), app);
  EXPECT_EQ(emp.header("x-tollgate-target"), "loc");
  EXPECT_NE(emp.header("x-tollgate-reason").find("EMPLOYEE_ID"), std::string::npos);
  EXPECT_EQ(http_request(gw.port(), "/v1/chat/completions", chat("m", "status of project falcon?"), app)
                .header("x-tollgate-target"), "loc");
  EXPECT_EQ(ext.requests_count(), 1);
}

TEST(routing, the_tollgate_object_is_honoured_and_never_sent_upstream) {
  fake_upstream ext, loc;
  gateway_harness gw(config(ext, loc));
  auto r = http_request(gw.port(), "/v1/chat/completions", chat("auto", "hi", {{"tollgate", {{"min_tier", 2}}}}), app);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-tollgate-target"), "ext");
  ASSERT_EQ(ext.requests_count(), 1);
  EXPECT_EQ(ext.requests()[0].body.find("tollgate"), std::string::npos) << ext.requests()[0].body;
  // A max cost below every priced target's estimate leaves the free local target.
  auto cheap = http_request(gw.port(), "/v1/chat/completions",
                            chat("m", "hi", {{"tollgate", {{"max_cost_usd", 0.0000001}}}}), app);
  EXPECT_EQ(cheap.header("x-tollgate-target"), "loc");
  auto none = http_request(gw.port(), "/v1/chat/completions",
                           chat("m", "hi", {{"tollgate", {{"max_cost_usd", 0.0000001}, {"min_tier", 2}}}}), app);
  EXPECT_EQ(none.status, 400);
  EXPECT_EQ(json::parse(none.body)["error"]["code"], "no_target_within_limits");
  auto bad = http_request(gw.port(), "/v1/chat/completions", chat("m", "hi", {{"tollgate", {{"colour", "red"}}}}), app);
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(json::parse(bad.body)["error"]["param"], "tollgate.colour");
  // The same object as a header.
  auto hdr = http_request(gw.port(), "/v1/chat/completions", chat("m", "hi"), with(app, "x-tollgate", R"({"privacy":"strict"})"));
  EXPECT_EQ(hdr.header("x-tollgate-target"), "loc");
}

TEST(routing, auto_aliases_choose_by_cost_tier_and_privacy) {
  fake_upstream ext, loc;
  gateway_harness gw(config(ext, loc));
  // Weak request: the free local target meets tier 1.
  auto weak = http_request(gw.port(), "/v1/chat/completions", chat("auto", "hi"), app);
  EXPECT_EQ(weak.header("x-tollgate-target"), "loc");
  EXPECT_NE(weak.header("x-tollgate-reason").find("cost: cheapest"), std::string::npos) << weak.header("x-tollgate-reason");
  EXPECT_EQ(http_request(gw.port(), "/v1/chat/completions", chat("auto-private", "hi"), app).header("x-tollgate-target"), "loc");
  EXPECT_EQ(http_request(gw.port(), "/v1/chat/completions", chat("auto-cheap", "hi"), app).header("x-tollgate-target"), "loc");
  auto models = json::parse(http_request(gw.port(), "/v1/models", "", {.method = "GET", .headers = app.headers}).body);
  std::vector<std::string> ids;
  for (const auto& m : models["data"]) ids.push_back(m["id"]);
  EXPECT_NE(std::find(ids.begin(), ids.end(), "auto"), ids.end());
}

TEST(routing, rules_route_and_block_by_header_and_team) {
  fake_upstream ext, loc;
  gateway_harness gw(config(ext, loc,
                            "routing:\n  rules:\n"
                            "    - {name: no-legal-docs, when: {header: {x-app: legal}}, action: block, message: legal stays in-house}\n"
                            "    - {name: search-local, when: {team: search, model: m}, route: [loc]}\n"));
  auto blocked = http_request(gw.port(), "/v1/chat/completions", chat("m", "hi"), with(app, "x-app", "legal"));
  EXPECT_EQ(blocked.status, 400);
  auto e = json::parse(blocked.body)["error"];
  EXPECT_EQ(e["code"], "blocked_by_policy");
  EXPECT_NE(e["message"].get<std::string>().find("legal stays in-house"), std::string::npos);
  auto routed = http_request(gw.port(), "/v1/chat/completions", chat("m", "hi"), app);
  EXPECT_EQ(routed.header("x-tollgate-target"), "loc");
  EXPECT_EQ(routed.header("x-tollgate-route"), "rule:search-local");
}

TEST(routing, explain_and_serve_agree) {
  fake_upstream ext, loc;
  const std::string y = config(ext, loc,
                               "routing:\n  privacy:\n    actions: {EMAIL_ADDRESS: redact}\n"
                               "  rules:\n    - {name: strong-to-ext, when: {tier: strong}, route: [ext, loc]}\n");
  gateway_harness gw(y);
  auto cfg = gw::gateway::load_config_text(y, "agree.yaml");
  const std::vector<std::string> requests = {
      chat("m", "hi"),
      chat("auto", "hello there"),
      chat("auto", "Prove that for every integer n > 1 the sum of the first n odd numbers equals n^2, step by step, "
                   "then derive a closed form for the sum of squares and justify each algebraic identity used."),
      chat("m", "my card is 4111 1111 1111 1111"),
      chat("auto", "write to bob@example.org"),
      chat("auto-private", "hi"),
      chat("auto", "hi", {{"tollgate", {{"min_tier", 2}}}}),
  };
  for (const auto& body : requests) {
    auto served = http_request(gw.port(), "/v1/chat/completions", body, app);
    ASSERT_EQ(served.status, 200) << body << "\n" << served.body;
    std::istringstream in(body);
    std::ostringstream out, err;
    ASSERT_EQ(gw::gateway::run_explain(*cfg.cfg, {}, in, out, err, {.headers = {}, .key = "app"}), 0) << err.str();
    auto ex = json::parse(out.str());
    EXPECT_EQ(ex["plan"][0], served.header("x-tollgate-target")) << body << "\n" << ex.dump(2);
    EXPECT_EQ(ex["route"], served.header("x-tollgate-route")) << body;
    EXPECT_EQ(ex["reason"].get<std::string>().substr(0, 512), served.header("x-tollgate-reason")) << body;
  }
}

TEST(routing, adaptive_calibration_takes_over_after_enough_traffic) {
  fake_upstream ext, loc;
  gateway_harness gw(config(ext, loc,
                            "routing:\n  complexity: {adaptive: true, adaptive_window: 20, adaptive_min_samples: 10, "
                            "strong_share: 0.5}\n"));
  std::string first = http_request(gw.port(), "/v1/chat/completions", chat("auto", "hi"), app).header("x-tollgate-reason");
  EXPECT_NE(first.find("(calibrated)"), std::string::npos) << first;
  for (int i = 0; i < 12; ++i)
    http_request(gw.port(), "/v1/chat/completions", chat("auto", "question number " + std::to_string(i)), app);
  std::string later = http_request(gw.port(), "/v1/chat/completions", chat("auto", "hi"), app).header("x-tollgate-reason");
  EXPECT_NE(later.find("(adaptive)"), std::string::npos) << later;
}
