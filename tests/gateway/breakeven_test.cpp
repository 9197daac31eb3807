// The breakeven report (gateway/breakeven.h) against a real ledger in a temp directory: exact GPU
// and shadow costs, savings in both directions, breakeven volume, the verdict's numbers, the
// cheapest-API pick by tier, a partial "today", the JSON/CSV shapes, HTTP and errors.
#include "gateway/breakeven.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ledger/ledger.h"
#include "tests/support/test_env.h"

using namespace gw;
using namespace gw::gateway;
using namespace std::chrono;
namespace fs = std::filesystem;

namespace {

const char* k_pricing = R"(as_of: 2026-01-01
models:
  - provider: openai
    model: gpt-4o-mini
    tier: 1
    input_per_mtok: 0.15
    output_per_mtok: 0.60
    cached_input_per_mtok: 0.075
    source: https://example.com/openai
    checked: 2026-01-01
    verified: true
  - provider: cheapco
    model: tiny
    tier: 1
    input_per_mtok: 0.05
    output_per_mtok: 0.10
    source: https://example.com/cheapco
    checked: 2026-01-01
    verified: true
  - provider: groq
    model: big
    tier: 2
    input_per_mtok: 0.10
    output_per_mtok: 0.30
    source: https://example.com/groq
    checked: 2026-01-01
    verified: true
  - provider: frontier
    model: huge
    tier: 3
    input_per_mtok: 5
    output_per_mtok: 15
    source: https://example.com/frontier
    checked: 2026-01-01
    verified: true
gpus:
  - gpu: H100-80GB
    usd_per_hour: 2.00
    provider: lambda
    source: https://example.com/gpu
    checked: 2026-01-01
    verified: true
)";

// vllm: 2 x H100 at $2/h + $1.50/day ops = $97.50 a full day. llama: $0.50/h, tier 2.
const char* k_config = R"(auth: none
targets:
  vllm:
    base_url: http://127.0.0.1:8000/v1
    self_hosted:
      gpu: H100-80GB
      gpus: 2
      ops_usd_per_day: 1.50
      reference: openai/gpt-4o-mini
  llama:
    base_url: http://127.0.0.1:8001/v1
    self_hosted:
      gpu: rtx-4090
      usd_per_hour: 0.50
      reference: openai/gpt-4o-mini
      tier: 2
  openai:
    base_url: https://api.openai.com/v1
models:
  m: vllm
pricing_file: pricing.yaml
)";

constexpr std::int64_t usd = 1'000'000'000'000;

struct fixture : ::testing::Test {
  gw::test::temp_dir dir{"breakeven"};  // declared first: removed after the ledger is closed
  std::unique_ptr<ledger::ledger> l;
  std::shared_ptr<const config> cfg;
  ledger::day_index d1 = *ledger::parse_day("2026-03-01");
  system_clock::time_point later = system_clock::time_point(days(d1 + 9));  // all 3 days are past

  void SetUp() override {
    std::ofstream(dir.path / "pricing.yaml") << k_pricing;
    cfg = load_config_text(k_config, (dir.path / "tollgate.yaml").string()).cfg;
    ledger::status st;
    l = ledger::ledger::open((dir.path / "ledger").string(), ledger::options{}, &st);
    ASSERT_TRUE(l) << st.message;
    int n = 0;
    auto add = [&](const char* target, int day, std::int64_t prompt, std::int64_t cached, std::int64_t completion,
                   microseconds busy, microseconds latency) {
      ledger::request_record r;
      r.request_id = "r" + std::to_string(n++);
      r.target = target;
      r.started = system_clock::time_point(days(d1 + day)) + hours(10);
      r.prompt_tokens = prompt;
      r.cached_prompt_tokens = cached;
      r.completion_tokens = completion;
      r.engine_busy = busy;
      r.latency = latency;
      r.status = 200;
      r.priced = true;
      ASSERT_TRUE(l->record_sync(r).ok());
    };
    // vllm each day: 400M prompt (100M cached) + 100M completion = $112.50 at gpt-4o-mini.
    add("vllm", 0, 400'000'000, 100'000'000, 100'000'000, hours(1), seconds(10));
    add("vllm", 1, 400'000'000, 100'000'000, 100'000'000, microseconds(0), seconds(10));
    add("vllm", 2, 400'000'000, 100'000'000, 100'000'000, microseconds(0), seconds(10));
    // llama on day 2 only: 10M prompt + 5M completion = $4.50 at gpt-4o-mini.
    add("llama", 1, 10'000'000, 0, 5'000'000, microseconds(0), seconds(2));
    add("openai", 1, 1'000'000, 0, 1'000'000, microseconds(0), seconds(1));  // not self-hosted
  }
  breakeven_summary run(ledger::day_index from, ledger::day_index to, system_clock::time_point now) {
    auto r = compute_breakeven(*l, *cfg, from, to, now);
    if (auto* e = std::get_if<api_error>(&r)) ADD_FAILURE() << e->message;
    return std::get<breakeven_summary>(r);
  }
  const breakeven_target& target(const breakeven_summary& s, const std::string& name) {
    for (const auto& t : s.targets)
      if (t.target == name) return t;
    throw std::runtime_error("no target " + name);
  }
};

TEST_F(fixture, SavingTargetExactFigures) {
  auto s = run(d1, d1 + 2, later);
  ASSERT_EQ(s.targets.size(), 2u);  // only the self-hosted ones
  const auto& t = target(s, "vllm");
  ASSERT_EQ(t.days.size(), 3u);
  EXPECT_EQ(t.gpu_cost_per_day, 97 * usd + usd / 2);
  for (const auto& d : t.days) {
    EXPECT_EQ(d.gpu_cost, 97 * usd + usd / 2);
    EXPECT_EQ(d.shadow_cost, 112 * usd + usd / 2);
    EXPECT_EQ(d.cheapest_cost, 30 * usd);  // cheapco/tiny: cached input at its input price
    EXPECT_EQ(d.provisioned_us, 86'400'000'000);
  }
  EXPECT_EQ(t.total.gpu_cost, 292 * usd + usd / 2);
  EXPECT_EQ(t.total.shadow_cost, 337 * usd + usd / 2);
  EXPECT_EQ(t.total.savings(), 45 * usd);
  EXPECT_EQ(t.total.tokens(), 1'500'000'000u);
  EXPECT_EQ(t.cheapest, "cheapco/tiny");
  // 97.50 × 1.5e9 / 337.50 = 433'333'333.3 -> rounded up.
  EXPECT_EQ(t.breakeven_tokens_per_day, 433'333'334u);
  EXPECT_EQ(t.tokens_per_day, 500'000'000u);
  EXPECT_EQ(t.verdict,
            "self-hosting on vllm saved $45.00 over these 3 days compared with openai/gpt-4o-mini; at the current "
            "mix it breaks even above 433.3 M tokens/day (now 500.0 M/day)");
  // Busy time: reported on day 1, estimated from the 10 s latency (bucket midpoint, ±4.4%) after.
  EXPECT_EQ(t.days[0].busy_us, 3'600'000'000);
  EXPECT_FALSE(t.days[0].busy_estimated);
  EXPECT_NEAR(*t.days[0].utilisation(), 3600.0 / (86400.0 * 2), 1e-12);
  EXPECT_TRUE(t.days[1].busy_estimated);
  EXPECT_NEAR(static_cast<double>(t.days[1].busy_us), 10'000'000.0, 10'000'000.0 * 0.045);
  EXPECT_TRUE(t.total.busy_estimated);
}

TEST_F(fixture, LosingTargetAndTierPick) {
  auto s = run(d1, d1 + 2, later);
  const auto& t = target(s, "llama");
  EXPECT_EQ(t.total.gpu_cost, 36 * usd);
  EXPECT_EQ(t.total.shadow_cost, 4 * usd + usd / 2);
  EXPECT_EQ(t.total.savings(), -31 * usd - usd / 2);
  EXPECT_EQ(t.breakeven_tokens_per_day, 40'000'000u);  // 12 × 15M / 4.50
  EXPECT_EQ(t.tokens_per_day, 5'000'000u);
  // tier 2: cheapco/tiny (tier 1) is not eligible; groq/big (tier 2) beats frontier/huge.
  EXPECT_EQ(t.cheapest, "groq/big");
  EXPECT_EQ(t.cheapest_tier, 2);
  EXPECT_EQ(t.total.cheapest_cost, 2 * usd + usd / 2);  // 10M × 0.10 + 5M × 0.30
  EXPECT_EQ(t.verdict,
            "self-hosting on llama cost $31.50 more than openai/gpt-4o-mini would have over these 3 days; it "
            "breaks even above 40.0 M tokens/day (now 5.0 M/day)");
  EXPECT_EQ(t.days[0].requests, 0u);
  EXPECT_EQ(t.days[0].gpu_cost, 12 * usd);  // idle GPUs still cost
  // All targets together.
  EXPECT_EQ(s.total.gpu_cost, 328 * usd + usd / 2);
  EXPECT_EQ(s.total.savings(), 13 * usd + usd / 2);
  EXPECT_NE(s.verdict.find("saved $13.50 over these 3 days"), std::string::npos) << s.verdict;
}

TEST_F(fixture, TodayIsProvisionedOnlyUpToNow) {
  auto noon_day3 = system_clock::time_point(days(d1 + 2)) + hours(12);
  auto s = run(d1, d1 + 3, noon_day3);
  const auto& t = target(s, "vllm");
  ASSERT_EQ(t.days.size(), 4u);
  EXPECT_EQ(t.days[2].provisioned_us, 43'200'000'000);
  EXPECT_EQ(t.days[2].gpu_cost, 48 * usd + 3 * usd / 4);  // 12 h × $4/h + half a day of ops
  EXPECT_EQ(t.days[3].provisioned_us, 0);                   // tomorrow
  EXPECT_EQ(t.days[3].gpu_cost, 0);
  EXPECT_FALSE(t.days[3].utilisation());
  EXPECT_EQ(t.tokens_per_day, 600'000'000u);  // 1.5e9 tokens over 2.5 days
}

TEST_F(fixture, JsonShape) {
  auto out = breakeven_report(*l, *cfg, d1, d1 + 2, report_format::json, later);
  ASSERT_TRUE(std::holds_alternative<std::string>(out));
  auto j = nlohmann::json::parse(std::get<std::string>(out));
  EXPECT_EQ(j["from"], "2026-03-01");
  EXPECT_EQ(j["to"], "2026-03-03");
  ASSERT_EQ(j["targets"].size(), 2u);
  const auto& v = j["targets"][1];
  EXPECT_EQ(v["target"], "vllm");
  EXPECT_EQ(v["gpu"], "H100-80GB");
  EXPECT_EQ(v["gpus"], 2);
  EXPECT_EQ(v["reference"], "openai/gpt-4o-mini");
  EXPECT_EQ(v["cheapest"]["api"], "cheapco/tiny");
  EXPECT_EQ(v["cheapest"]["tier"], 1);
  EXPECT_EQ(v["breakeven_tokens_per_day"], 433'333'334);
  EXPECT_EQ(v["days"].size(), 3u);
  EXPECT_EQ(v["days"][0]["day"], "2026-03-01");
  EXPECT_EQ(v["days"][1]["busy_estimated"], true);
  EXPECT_EQ(v["totals"]["gpu_cost_pusd"], "292500000000000");
  EXPECT_EQ(v["totals"]["savings_pusd"], "45000000000000");
  EXPECT_DOUBLE_EQ(v["totals"]["savings_usd"].get<double>(), 45.0);
  EXPECT_EQ(j["targets"][0]["totals"]["savings_pusd"], "-31500000000000");
  EXPECT_TRUE(v["verdict"].is_string());
  EXPECT_TRUE(j["totals"].is_object());
  EXPECT_TRUE(j["verdict"].is_string());
}

TEST_F(fixture, CsvAndTable) {
  auto csv = std::get<std::string>(breakeven_report(*l, *cfg, d1, d1 + 2, report_format::csv, later));
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "target,day,requests,prompt_tokens,completion_tokens,cached_prompt_tokens,busy_us,busy_estimated,"
            "provisioned_us,utilisation,gpu_cost_usd,reference,shadow_cost_usd,cheapest_api,cheapest_cost_usd,"
            "savings_usd");
  EXPECT_NE(csv.find("\nvllm,TOTAL,3,1200000000,300000000,300000000,"), std::string::npos) << csv;
  EXPECT_NE(csv.find(",292.50,openai/gpt-4o-mini,337.50,cheapco/tiny,90.00,45.00\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\nALL,TOTAL,"), std::string::npos);
  auto table = std::get<std::string>(breakeven_report(*l, *cfg, d1, d1 + 2, report_format::table, later));
  EXPECT_NE(table.find("vllm: 2 x H100-80GB at $2.00/h + $1.50/day ops"), std::string::npos) << table;
  EXPECT_NE(table.find("breaks even above 433.3 M tokens/day"), std::string::npos) << table;
  EXPECT_NE(table.find("* busy time estimated"), std::string::npos) << table;
}

TEST_F(fixture, Errors) {
  auto r = compute_breakeven(*l, *cfg, d1 + 2, d1, later);
  ASSERT_TRUE(std::holds_alternative<api_error>(r));
  EXPECT_EQ(std::get<api_error>(r).status, 400);
  EXPECT_NE(std::get<api_error>(r).message.find("after"), std::string::npos);

  auto plain = load_config_text("auth: none\ntargets:\n  a:\n    base_url: http://127.0.0.1:1/v1\nmodels:\n  m: a\n",
                                "plain.yaml")
                   .cfg;
  auto r2 = compute_breakeven(*l, *plain, d1, d1, later);
  ASSERT_TRUE(std::holds_alternative<api_error>(r2));
  EXPECT_EQ(std::get<api_error>(r2).status, 400);
  EXPECT_NE(std::get<api_error>(r2).message.find("self_hosted"), std::string::npos);
}

TEST_F(fixture, Http) {
  auto ok = breakeven_report_http(*l, *cfg, "?from=2026-03-01&to=2026-03-03", later);
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.content_type, "application/json");
  EXPECT_EQ(nlohmann::json::parse(ok.body)["targets"].size(), 2u);
  auto csv = breakeven_report_http(*l, *cfg, "from=2026-03-01&to=2026-03-03&format=csv", later);
  EXPECT_EQ(csv.status, 200);
  EXPECT_EQ(csv.content_type, "text/csv; charset=utf-8");
  EXPECT_EQ(breakeven_report_http(*l, *cfg, "by=target", later).status, 400);
  EXPECT_EQ(breakeven_report_http(*l, *cfg, "from=2026-3-1", later).status, 400);
  EXPECT_EQ(breakeven_report_http(*l, *cfg, "format=table", later).status, 400);
  EXPECT_EQ(breakeven_report_http(*l, *cfg, "from=2026-03-03&to=2026-03-01", later).status, 400);
}

}  // namespace
