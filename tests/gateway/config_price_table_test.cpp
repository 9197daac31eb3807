// Targets without prices take their provider/model row from the price table; their own win.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "gateway/config.h"

using namespace gw::gateway;
namespace fs = std::filesystem;

TEST(config_price_table, fills_missing_target_prices_from_the_table) {
  auto repo = fs::path(__FILE__).parent_path().parent_path().parent_path();
  auto table = (repo / "configs" / "pricing.yaml").string();
  std::string yaml = "pricing_file: " + table +
                     "\nauth: none\n"
                     "providers:\n  openai: {base_url: https://api.openai.com/v1}\n"
                     "targets:\n"
                     "  mini: {provider: openai, model: gpt-4o-mini}\n"
                     "  own: {provider: openai, model: gpt-4o-mini, prices: {input_per_mtok: 1, output_per_mtok: 2}}\n"
                     "  unknown: {provider: openai, model: no-such-model}\n"
                     "models:\n  m: [mini, own, unknown]\n";
  auto r = load_config_text(yaml, "test.yaml");
  const auto* mini = r.cfg->find_target("mini");
  ASSERT_TRUE(mini->prices.input && mini->prices.output && mini->prices.cached_input);
  EXPECT_EQ(*mini->prices.input, 150'000);  // $0.15 / 1M tokens in p$ per token
  EXPECT_EQ(*mini->prices.output, 600'000);
  EXPECT_EQ(*mini->prices.cached_input, 75'000);
  const auto* own = r.cfg->find_target("own");
  EXPECT_EQ(*own->prices.input, 1'000'000);
  EXPECT_FALSE(own->prices.cached_input);  // a target's own prices are taken as a whole
  EXPECT_FALSE(r.cfg->find_target("unknown")->prices.input);  // stays unpriced, never $0
}

TEST(config_price_table, a_missing_table_is_fine_when_nothing_needs_it) {
  std::string yaml = "pricing_file: /nonexistent/pricing.yaml\nauth: none\n"
                     "targets:\n  t: {base_url: http://127.0.0.1:9/v1, model: x}\nmodels:\n  m: t\n";
  auto r = load_config_text(yaml, "test.yaml");
  EXPECT_FALSE(r.cfg->find_target("t")->prices.input);
}
