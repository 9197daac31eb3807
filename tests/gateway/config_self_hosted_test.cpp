// Tests for targets.<name>.self_hosted and pricing_file in gateway/config.cpp: exact money, defaults,
// validation against the price table (file:line:key errors), and that a missing price table only
// matters when some target is self-hosted.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gateway/config.h"
#include "tests/support/test_env.h"

namespace {

namespace fs = std::filesystem;
using gw::gateway::config_error;
using gw::gateway::load_config_text;
using gw::gateway::load_result;

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
gpus:
  - gpu: H100-80GB
    usd_per_hour: 2.00
    provider: lambda
    source: https://example.com/gpu
    checked: 2026-01-01
    verified: true
)";

// A temp directory holding pricing.yaml (k_pricing), where the config under test claims to live.
struct config_dir : gw::test::temp_dir {
  config_dir() : temp_dir("sh") { std::ofstream(path / "pricing.yaml") << k_pricing; }
  std::string config_name() const { return (path / "tollgate.yaml").string(); }
};

// A config whose target `vllm` has the self_hosted lines `sh` (each indented by 6 spaces by the
// caller); line 6 is the first self_hosted key.
std::string config_with(const std::string& sh, const std::string& pricing_line = "pricing_file: pricing.yaml\n") {
  return "auth: none\n"
         "targets:\n"
         "  vllm:\n"
         "    base_url: http://127.0.0.1:8000/v1\n"
         "    self_hosted:\n" +
         sh +
         "models:\n"
         "  m: vllm\n" +
         pricing_line;
}

load_result load(const config_dir& d, const std::string& text) { return load_config_text(text, d.config_name()); }

config_error load_error(const config_dir& d, const std::string& text) {
  try {
    load(d, text);
  } catch (const config_error& e) {
    return e;
  }
  ADD_FAILURE() << "expected a config_error";
  return config_error("", 0, "", "");
}

TEST(ConfigSelfHosted, ParsesEveryKeyExactly) {
  config_dir d;
  auto r = load(d, config_with("      gpu: H100-80GB\n"
                               "      gpus: 2\n"
                               "      ops_usd_per_day: 1.50\n"
                               "      reference: openai/gpt-4o-mini\n"
                               "      tier: 2\n"));
  ASSERT_EQ(r.cfg->self_hosted.size(), 1u);
  const auto& sh = r.cfg->self_hosted.at("vllm");
  EXPECT_EQ(sh.gpu, "H100-80GB");
  EXPECT_EQ(sh.gpus, 2);
  EXPECT_EQ(sh.per_hour, 2'000'000'000'000);  // from the table
  EXPECT_FALSE(sh.per_hour_from_config);
  EXPECT_EQ(sh.ops_per_day, 1'500'000'000'000);
  EXPECT_EQ(sh.reference_provider, "openai");
  EXPECT_EQ(sh.reference_model, "gpt-4o-mini");
  EXPECT_EQ(sh.tier, 2);
  ASSERT_TRUE(r.cfg->pricing);
  EXPECT_EQ(r.cfg->pricing->gpus.size(), 1u);
  EXPECT_EQ(fs::path(r.cfg->pricing_file), d.path / "pricing.yaml");  // beside the config file
}

TEST(ConfigSelfHosted, DefaultsAndUsdPerHourOverride) {
  config_dir d;
  auto r = load(d, config_with("      gpu: my-own-card\n"
                               "      usd_per_hour: 1.234567890123\n"
                               "      reference: openai/gpt-4o-mini\n"));
  const auto& sh = r.cfg->self_hosted.at("vllm");
  EXPECT_EQ(sh.per_hour, 1'234'567'890'123);
  EXPECT_TRUE(sh.per_hour_from_config);
  EXPECT_EQ(sh.gpus, 1);
  EXPECT_EQ(sh.ops_per_day, 0);
  EXPECT_EQ(sh.tier, 1);
}

TEST(ConfigSelfHosted, NoSelfHostedTargetNeedsNoPriceTable) {
  config_dir d;
  auto r = load_config_text(
      "auth: none\ntargets:\n  a:\n    base_url: http://127.0.0.1:1/v1\nmodels:\n  m: a\n"
      "pricing_file: /nonexistent/pricing.yaml\n",
      d.config_name());
  EXPECT_TRUE(r.cfg->self_hosted.empty());
  EXPECT_FALSE(r.cfg->pricing);
  EXPECT_EQ(r.cfg->pricing_file, "/nonexistent/pricing.yaml");
  // The default path does not exist from the test's working directory either.
  auto r2 = load_config_text("auth: none\ntargets:\n  a:\n    base_url: http://127.0.0.1:1/v1\nmodels:\n  m: a\n",
                             d.config_name());
  EXPECT_EQ(r2.cfg->pricing_file, "configs/pricing.yaml");
}

TEST(ConfigSelfHosted, MissingPriceTableIsAnErrorWhenNeeded) {
  config_dir d;
  auto e = load_error(d, config_with("      gpu: H100-80GB\n      reference: openai/gpt-4o-mini\n",
                                     "pricing_file: nope.yaml\n"));
  EXPECT_EQ(e.key(), "pricing_file");
  EXPECT_EQ(e.line(), 10);
  EXPECT_NE(std::string(e.what()).find("nope.yaml"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("targets.vllm.self_hosted"), std::string::npos) << e.what();
}

TEST(ConfigSelfHosted, UnknownGpuNamesTheKeyAndLine) {
  config_dir d;
  auto e = load_error(d, config_with("      gpu: H100-80G\n      reference: openai/gpt-4o-mini\n"));
  EXPECT_EQ(e.key(), "targets.vllm.self_hosted.gpu");
  EXPECT_EQ(e.line(), 6);
  EXPECT_NE(std::string(e.what()).find("did you mean 'H100-80GB'"), std::string::npos) << e.what();
}

TEST(ConfigSelfHosted, ReferenceMustBeAPricedRow) {
  config_dir d;
  auto e = load_error(d, config_with("      gpu: H100-80GB\n      reference: openai/gpt-4o\n"));
  EXPECT_EQ(e.key(), "targets.vllm.self_hosted.reference");
  EXPECT_EQ(e.line(), 7);
  EXPECT_NE(std::string(e.what()).find("not in the price table"), std::string::npos) << e.what();
  auto e2 = load_error(d, config_with("      gpu: H100-80GB\n      reference: gpt-4o-mini\n"));
  EXPECT_NE(std::string(e2.what()).find("provider/model"), std::string::npos) << e2.what();
  auto e3 = load_error(d, config_with("      gpu: H100-80GB\n"));
  EXPECT_EQ(e3.key(), "targets.vllm.self_hosted.reference");
  EXPECT_NE(std::string(e3.what()).find("missing required key"), std::string::npos) << e3.what();
}

TEST(ConfigSelfHosted, RejectsBadValues) {
  config_dir d;
  const std::string ref = "      reference: openai/gpt-4o-mini\n";
  struct bad {
    std::string line, key, text;
  };
  for (const bad& b : {bad{"      gpus: 0\n", "gpus", "at least 1"},
                       bad{"      tier: 4\n", "tier", "at most 3"},
                       bad{"      usd_per_hour: -1\n", "usd_per_hour", "negative"},
                       bad{"      usd_per_hour: 1.0000000000001\n", "usd_per_hour", "12 decimals"},
                       bad{"      ops_usd_per_day: 1e3\n", "ops_usd_per_day", "plain decimal"},
                       bad{"      gpu_count: 2\n", "gpu_count", "unknown key"}}) {
    auto e = load_error(d, config_with("      gpu: H100-80GB\n" + b.line + ref));
    EXPECT_EQ(e.key(), "targets.vllm.self_hosted." + b.key) << e.what();
    EXPECT_EQ(e.line(), 7) << e.what();
    EXPECT_NE(std::string(e.what()).find(b.text), std::string::npos) << e.what();
  }
  auto e = load_error(d, config_with(ref));
  EXPECT_EQ(e.key(), "targets.vllm.self_hosted.gpu");
}

}  // namespace
