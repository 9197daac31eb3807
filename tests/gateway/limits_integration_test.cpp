// Integration: rate limits and budgets enforced by the real server.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/gateway_harness.h"
#include "tests/support/test_client.h"

using namespace gw::test;
using nlohmann::json;

namespace {
const std::string auth =
    "auth:\n  keys:\n    - {name: app, team: search, key: sk-app-12345678}\n    - {name: other, team: ads, key: sk-other-1234567}\n";
const std::string priced =
    "    prices: {input_per_mtok: 0.15, output_per_mtok: 0.60, cached_input_per_mtok: 0.075}\n";
const std::string body = R"({"model":"gpt-test","max_tokens":100,"messages":[{"role":"user","content":"hi"}]})";
const request_options app{.headers = {{"authorization", "Bearer sk-app-12345678"}}};
const request_options other{.headers = {{"authorization", "Bearer sk-other-1234567"}}};
}  // namespace

TEST(limits, rate_limit_answers_429_naming_the_limit_with_retry_after) {
  fake_upstream up;
  gateway_harness gw(basic_config(up, nullptr, priced, "", auth + "rate_limits:\n  - {key: app, requests_per_minute: 2}\n"));
  EXPECT_EQ(http_request(gw.port(), "/v1/chat/completions", body, app).status, 200);
  EXPECT_EQ(http_request(gw.port(), "/v1/chat/completions", body, app).status, 200);
  auto r = http_request(gw.port(), "/v1/chat/completions", body, app);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.header("retry-after"), "30");
  auto e = json::parse(r.body)["error"];
  EXPECT_EQ(e["code"], "rate_limit_exceeded");
  EXPECT_NE(e["message"].get<std::string>().find("key app: 2 requests per minute"), std::string::npos);
  EXPECT_EQ(http_request(gw.port(), "/v1/chat/completions", body, other).status, 200);  // other keys unaffected
  EXPECT_EQ(up.requests_count(), 3);
}

TEST(limits, team_budget_is_never_overshot_by_more_than_one_reservation) {
  fake_upstream up;
  // $0.0001 = 100,000,000 p$. Each request reserves ~61.5 M p$ (prompt estimate + 100 max_tokens) and
  // settles to 4,425,000 p$ (11 prompt of which 3 cached, 5 completion).
  gateway_harness gw(basic_config(up, nullptr, priced, "", auth + "budgets:\n  - {team: search, daily_usd: 0.0001}\n"));
  int ok = 0;
  http_reply refused;
  for (int i = 0; i < 40; ++i) {
    auto r = http_request(gw.port(), "/v1/chat/completions", body, app);
    if (r.status == 200) {
      ++ok;
      continue;
    }
    refused = r;
    break;
  }
  ASSERT_EQ(refused.status, 429) << refused.body;
  auto e = json::parse(refused.body)["error"];
  EXPECT_EQ(e["code"], "budget_exceeded");
  EXPECT_EQ(e["type"], "insufficient_quota");
  EXPECT_NE(e["message"].get<std::string>().find("team search daily budget"), std::string::npos) << e;
  EXPECT_FALSE(refused.header("retry-after").empty());
  EXPECT_GE(ok, 5);
  EXPECT_LE(static_cast<std::int64_t>(ok) * 4'425'000, 100'000'000 + 61'500'000);
  EXPECT_EQ(up.requests_count(), ok);  // the refused request never went upstream
  // Another team still has room.
  EXPECT_EQ(http_request(gw.port(), "/v1/chat/completions", body, other).status, 200);
}

TEST(limits, soft_budget_allows_and_says_so) {
  fake_upstream up;
  gateway_harness gw(basic_config(up, nullptr, priced, "",
                                  auth + "budgets:\n  - {key: app, daily_usd: 0.000001, hard: false}\n"));
  auto r = http_request(gw.port(), "/v1/chat/completions", body, app);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.header("x-tollgate-budget").find("key app daily budget"), std::string::npos);
}

TEST(limits, config_errors_name_file_line_and_key) {
  auto bad = [](const std::string& extra) {
    try {
      gw::gateway::load_config_text("auth:\n  keys:\n    - {name: app, key: sk-app-12345678}\n" + extra +
                                        "targets:\n  t: {base_url: http://127.0.0.1:9/v1}\nmodels:\n  m: t\n",
                                    "c.yaml");
    } catch (const gw::gateway::config_error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(bad("budgets:\n  - {key: nobody, daily_usd: 1}\n").find("c.yaml:5: budgets[0].key: unknown client key 'nobody'"),
            std::string::npos)
      << bad("budgets:\n  - {key: nobody, daily_usd: 1}\n");
  EXPECT_NE(bad("budgets:\n  - {key: app}\n").find("needs daily_usd and/or monthly_usd"), std::string::npos);
  EXPECT_NE(bad("budgets:\n  - {key: app, team: x, daily_usd: 1}\n").find("exactly one of 'key' or 'team'"), std::string::npos);
  EXPECT_NE(bad("rate_limits:\n  - {team: x}\n").find("requests_per_minute and/or tokens_per_minute"), std::string::npos);
  EXPECT_NE(bad("budgets:\n  - {team: x, daily_usd: -1}\n").find("must not be negative"), std::string::npos);
}
