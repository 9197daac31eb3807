#include "policies/plan.h"

#include <gtest/gtest.h>

using namespace gw::policies;

TEST(plan, keeps_configured_order_and_moves_unhealthy_targets_last) {
  route_context ctx;
  ctx.requested_model = "m";
  ctx.alias = "m";
  ctx.targets = {{"a", true, "", true, false}, {"b", false, "no key", false, false}, {"c", true, "", false, false},
                 {"d", true, "", false, true}, {"e", true, "", false, false}};
  auto p = choose(ctx);
  EXPECT_EQ(p.targets, (std::vector<std::string>{"c", "e", "a", "d"}));
  EXPECT_EQ(p.route, "m");
  EXPECT_NE(p.reason.find("-> c"), std::string::npos) << p.reason;
  EXPECT_NE(p.reason.find("b disabled"), std::string::npos) << p.reason;
  EXPECT_NE(p.reason.find("a circuit open"), std::string::npos) << p.reason;
}

TEST(plan, empty_when_every_target_is_disabled) {
  route_context ctx;
  ctx.alias = "m";
  ctx.targets = {{"a", false, "no key", false, false}};
  auto p = choose(ctx);
  EXPECT_TRUE(p.targets.empty());
  EXPECT_NE(p.reason.find("no usable target"), std::string::npos);
}
