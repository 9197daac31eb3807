// policies::decide: privacy actions, rules, budget fallback, and the cost-aware default choice.
#include "policies/decide.h"

#include <gtest/gtest.h>

using namespace gw::policies;

namespace {

candidate target(std::string name, trust_level trust, int tier, std::optional<pusd_t> cost) {
  candidate c;
  c.name = std::move(name);
  c.trust = trust;
  c.tier = tier;
  c.est_cost = cost;
  return c;
}

struct fixture {
  policy pol;
  request_facts req;
  std::vector<candidate> cands{
      target("local", trust_level::local, 1, 0),
      target("mini", trust_level::external, 1, 150),
      target("big", trust_level::external, 3, 5000),
      target("mid", trust_level::trusted, 2, 900),
  };
  fixture() {
    req.model = "auto";
    req.alias = "auto";
    req.strategy = route_strategy::cost;
    req.alias_targets = {"local", "mini", "big", "mid"};
    req.prompt_tokens = 100;
    req.max_tokens = 100;
  }
  decision run() const { return decide(pol, req, cands); }
};

}  // namespace

TEST(decide, cost_strategy_takes_the_cheapest_target_of_the_needed_tier) {
  fixture f;
  auto d = f.run();
  ASSERT_EQ(d.result, outcome::forward) << d.reason;
  EXPECT_EQ(d.targets, (std::vector<std::string>{"local", "mini", "mid", "big"}));  // weak: tier 1 suffices
  f.req.strong = true;  // needs tier 2
  d = f.run();
  EXPECT_EQ(d.needed_tier, 2);
  EXPECT_EQ(d.targets, (std::vector<std::string>{"mid", "big"}));
  EXPECT_NE(d.reason.find("cheapest of tier >= 2 -> mid"), std::string::npos) << d.reason;
  f.req.min_tier = 3;
  d = f.run();
  EXPECT_EQ(d.targets, (std::vector<std::string>{"big"}));
}

TEST(decide, no_target_of_the_needed_tier_falls_back_to_the_strongest_available) {
  fixture f;
  f.cands[2].enabled = false;  // big
  f.cands[3].enabled = false;  // mid
  f.req.strong = true;
  auto d = f.run();
  ASSERT_EQ(d.result, outcome::forward);
  EXPECT_EQ(d.targets, (std::vector<std::string>{"local", "mini"}));
  EXPECT_NE(d.reason.find("best available tier 1"), std::string::npos) << d.reason;
}

TEST(decide, ordered_alias_keeps_config_order_and_puts_unhealthy_last) {
  fixture f;
  f.req.strategy = route_strategy::ordered;
  f.req.alias = "gpt";
  f.req.alias_targets = {"big", "mini", "mid"};
  f.cands[2].breaker_open = true;  // big
  auto d = f.run();
  EXPECT_EQ(d.targets, (std::vector<std::string>{"mini", "mid", "big"}));
  EXPECT_NE(d.reason.find("big unhealthy (last)"), std::string::npos) << d.reason;
}

TEST(decide, context_window_and_capabilities_exclude_targets) {
  fixture f;
  f.cands[0].context_window = 150;  // local: 100 + 100 tokens do not fit
  f.cands[1].caps.tools = false;
  f.req.needs_tools = true;
  auto d = f.run();
  EXPECT_EQ(d.targets, (std::vector<std::string>{"mid", "big"}));
  EXPECT_NE(d.reason.find("local context 150 < 200"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("mini no tool calling"), std::string::npos) << d.reason;
}

TEST(decide, private_data_keeps_requests_on_local_and_trusted_targets) {
  fixture f;
  f.req.entities = {"CREDIT_CARD"};
  f.req.strong = true;
  auto d = f.run();
  ASSERT_EQ(d.result, outcome::forward);
  EXPECT_TRUE(d.private_data);
  EXPECT_EQ(d.targets, (std::vector<std::string>{"mid"}));  // big is external
  // Nothing local or trusted: blocked, naming only the type.
  f.cands[0].enabled = false;
  f.cands[3].enabled = false;
  d = f.run();
  EXPECT_EQ(d.result, outcome::privacy_blocked);
  EXPECT_EQ(d.blocked_types, (std::vector<std::string>{"CREDIT_CARD"}));
}

TEST(decide, strict_sources_and_auto_private_exclude_external_targets) {
  fixture f;
  f.req.strict_sources = {"conversation"};
  EXPECT_EQ(f.run().targets, (std::vector<std::string>{"local", "mid"}));
  f.req.strict_sources.clear();
  f.req.private_only = true;
  EXPECT_EQ(f.run().targets, (std::vector<std::string>{"local", "mid"}));
}

TEST(decide, per_type_actions_block_or_redact) {
  fixture f;
  f.pol.entity_actions["US_SSN"] = privacy_action::block;
  f.pol.entity_actions["EMAIL_ADDRESS"] = privacy_action::redact;
  f.req.entities = {"EMAIL_ADDRESS"};
  f.cands[0].enabled = false;  // no local target: the cheapest is external, so it is redacted
  auto d = f.run();
  ASSERT_EQ(d.result, outcome::forward);
  EXPECT_FALSE(d.private_data);
  EXPECT_EQ(d.targets.front(), "mini");
  EXPECT_EQ(d.redact_types, (std::vector<std::string>{"EMAIL_ADDRESS"}));
  f.req.entities = {"EMAIL_ADDRESS", "US_SSN"};
  d = f.run();
  EXPECT_EQ(d.result, outcome::privacy_blocked);
  EXPECT_EQ(d.blocked_types, (std::vector<std::string>{"US_SSN"}));
}

TEST(decide, redaction_is_not_needed_when_only_local_targets_serve) {
  fixture f;
  f.pol.entity_actions["EMAIL_ADDRESS"] = privacy_action::redact;
  f.req.entities = {"EMAIL_ADDRESS"};
  f.req.alias_targets = {"local"};
  auto d = f.run();
  ASSERT_EQ(d.result, outcome::forward);
  EXPECT_TRUE(d.redact_types.empty());
}

TEST(decide, rules_match_in_order_and_route_block_or_redact) {
  fixture f;
  rule vip;
  vip.name = "vip";
  vip.teams = {"research"};
  vip.route = {"big"};
  rule legal;
  legal.name = "no-legal";
  legal.headers = {{"x-app", "legal"}};
  legal.action = rule::kind::block;
  legal.message = "legal documents stay in-house";
  rule red;
  red.name = "redact-support";
  red.keys = {"support-bot"};
  red.action = rule::kind::redact;
  f.pol.rules = {legal, vip, red};

  f.req.team = "research";
  auto d = f.run();
  EXPECT_EQ(d.route, "rule:vip");
  EXPECT_EQ(d.targets, (std::vector<std::string>{"big"}));

  f.req.headers = {{"x-app", "legal"}};
  d = f.run();
  EXPECT_EQ(d.result, outcome::rule_blocked);
  EXPECT_NE(d.reason.find("legal documents stay in-house"), std::string::npos);

  f.req.headers.clear();
  f.req.team = "";
  f.req.key = "support-bot";
  f.req.entities = {"PHONE_NUMBER"};
  f.cands[0].enabled = false;
  d = f.run();
  ASSERT_EQ(d.result, outcome::forward) << d.reason;
  EXPECT_EQ(d.route, "rule:redact-support");
  EXPECT_EQ(d.targets.front(), "mini");  // redacted, so external targets are allowed
  EXPECT_EQ(d.redact_types, (std::vector<std::string>{"PHONE_NUMBER"}));
}

TEST(decide, rule_conditions_on_privacy_tier_budget_and_model) {
  fixture f;
  rule r;
  r.name = "strong-private";
  r.private_data = true;
  r.strong = true;
  r.budget = {budget_state::ok};
  r.models = {"auto"};
  r.route = {"mid"};
  f.pol.rules = {r};
  f.req.entities = {"IP_ADDRESS"};
  EXPECT_EQ(f.run().rule, "");  // weak
  f.req.strong = true;
  EXPECT_EQ(f.run().rule, "strong-private");
  f.req.budget = budget_state::soft_exceeded;
  EXPECT_EQ(f.run().rule, "");
}

TEST(decide, exhausted_budget_falls_back_to_local_or_refuses) {
  fixture f;
  f.req.budget = budget_state::exhausted;
  f.req.budget_detail = "key app daily budget ($1.00)";
  f.req.strong = true;
  auto d = f.run();
  ASSERT_EQ(d.result, outcome::forward);
  EXPECT_EQ(d.route, "budget:local");
  EXPECT_EQ(d.targets, (std::vector<std::string>{"local"}));
  EXPECT_NE(d.reason.find("local fallback"), std::string::npos);
  f.cands[0].enabled = false;
  d = f.run();
  EXPECT_EQ(d.result, outcome::budget_exceeded);
  EXPECT_NE(d.reason.find("key app daily budget ($1.00)"), std::string::npos);
}

TEST(decide, client_max_cost_excludes_dear_and_unpriced_targets) {
  fixture f;
  f.cands.push_back(target("unpriced", trust_level::external, 3, std::nullopt));
  f.req.alias_targets.push_back("unpriced");
  f.req.strong = true;
  f.req.max_cost = 1000;
  auto d = f.run();
  EXPECT_EQ(d.targets, (std::vector<std::string>{"mid"}));
  f.req.max_cost = 100;  // only the free local target fits: the best available tier serves
  d = f.run();
  EXPECT_EQ(d.targets, (std::vector<std::string>{"local"}));
  EXPECT_NE(d.reason.find("best available tier 1"), std::string::npos) << d.reason;
  f.cands[0].enabled = false;
  d = f.run();
  EXPECT_EQ(d.result, outcome::no_target);
  EXPECT_TRUE(d.client_constraint);
}

TEST(decide, unpriced_targets_rank_after_priced_ones) {
  fixture f;
  f.cands.push_back(target("unpriced", trust_level::external, 1, std::nullopt));
  f.req.alias_targets = {"unpriced", "mini"};
  EXPECT_EQ(f.run().targets, (std::vector<std::string>{"mini", "unpriced"}));
}

TEST(decide, does_not_depend_on_candidate_order) {
  fixture f;
  f.req.strong = true;
  auto a = f.run().targets;
  std::reverse(f.cands.begin(), f.cands.end());
  std::reverse(f.req.alias_targets.begin(), f.req.alias_targets.end());
  EXPECT_EQ(f.run().targets, a);
}
