// Tests for gateway/pricing.cpp: the shipped configs/pricing.yaml loads and covers every provider
// with dated, sourced rows; exact prices; lookups; every error path with exact file, line and key.
#include "gateway/pricing.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <unistd.h>

#include "ledger/pricing_table.h"

namespace {

using gw::gateway::config_error;
using gw::gateway::load_pricing_file;
using gw::gateway::load_pricing_text;
using gw::ledger::pricing_table;

std::filesystem::path shipped_table() {
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() /
         "configs/pricing.yaml";
}

bool is_date(const std::string& s) {
  return s.size() == 10 && s[4] == '-' && s[7] == '-';
}

TEST(pricing, shipped_table_loads_and_covers_every_provider) {
  const pricing_table t = load_pricing_file(shipped_table().string());
  EXPECT_EQ(t.as_of, "2026-11-25");
  EXPECT_GE(t.models.size(), 25u);
  EXPECT_GE(t.gpus.size(), 4u);

  std::set<std::string> providers;
  for (const auto& m : t.models) {
    SCOPED_TRACE(m.provider + "/" + m.model);
    providers.insert(m.provider);
    EXPECT_EQ(m.source.rfind("http", 0), 0u) << m.source;
    EXPECT_TRUE(is_date(m.checked)) << m.checked;
    EXPECT_LE(m.checked, t.as_of);
    EXPECT_GE(m.tier, 1);
    EXPECT_LE(m.tier, 3);
    EXPECT_GT(m.input, 0);
    EXPECT_GT(m.output, 0);
    if (m.cached_input) {
      EXPECT_LE(*m.cached_input, m.input);  // a cache hit never costs more
    }
    if (!m.verified) {
      EXPECT_EQ(m.checked, t.as_of);  // undated rows say so
    }
  }
  EXPECT_EQ(providers, (std::set<std::string>{"openai", "anthropic", "groq", "together",
                                               "fireworks", "deepseek"}));
  for (const auto& g : t.gpus) {
    SCOPED_TRACE(g.gpu);
    EXPECT_EQ(g.source.rfind("http", 0), 0u) << g.source;
    EXPECT_TRUE(is_date(g.checked)) << g.checked;
    EXPECT_FALSE(g.provider.empty());
    EXPECT_GT(g.per_hour, 0);
  }
  for (const char* gpu : {"H100-80GB", "H200-141GB", "A100-80GB", "L40S-48GB", "L4-24GB"}) {
    EXPECT_NE(t.find_gpu(gpu), nullptr) << gpu;
  }
}

TEST(pricing, shipped_table_prices_are_exact) {
  const pricing_table t = load_pricing_file(shipped_table().string());
  const auto* mini = t.find("openai", "gpt-4o-mini");
  ASSERT_NE(mini, nullptr);
  EXPECT_EQ(mini->input, 150'000);   // $0.15 / 1M tokens = 150'000 p$ per token
  EXPECT_EQ(mini->output, 600'000);
  ASSERT_TRUE(mini->cached_input.has_value());
  EXPECT_EQ(*mini->cached_input, 75'000);

  const auto* chat = t.find("deepseek", "deepseek-chat");
  ASSERT_NE(chat, nullptr);
  ASSERT_TRUE(chat->cached_input.has_value());  // the cache-hit price
  EXPECT_EQ(*chat->cached_input, 70'000);

  const auto* llama = t.find("groq", "llama-3.1-8b-instant");
  ASSERT_NE(llama, nullptr);
  EXPECT_FALSE(llama->cached_input.has_value());

  const auto* h100 = t.find_gpu("H100-80GB");
  ASSERT_NE(h100, nullptr);
  EXPECT_EQ(h100->per_hour, 2'690'000'000'000);

  EXPECT_EQ(t.find("openai", "GPT-4o-mini"), nullptr);  // ids are case-sensitive
  EXPECT_EQ(t.find("groq", "gpt-4o-mini"), nullptr);    // provider is part of the key
  EXPECT_EQ(t.find_gpu("B200"), nullptr);
}

const char* const row =
    "provider: openai, model: m, tier: 1, input_per_mtok: 0.15, output_per_mtok: 0.60, "
    "source: https://example.com/p, checked: 2026-01-02, verified: true";

TEST(pricing, minimal_text_parses_exactly) {
  const pricing_table t = load_pricing_text(
      "as_of: 2026-11-25\n"
      "models:\n"
      "  - {" + std::string(row) + ", cached_input_per_mtok: 0.075}\n"
      "  - provider: deepseek\n"
      "    model: deepseek-flash\n"
      "    tier: 2\n"
      "    input_per_mtok: \"0.000001\"\n"  // quoted text is still read exactly
      "    output_per_mtok: 1234.567891\n"
      "    source: https://example.com/d\n"
      "    checked: 2026-10-27\n"
      "    verified: false\n"
      "gpus:\n"
      "  - {gpu: H100-80GB, usd_per_hour: 2.49, provider: lambda, source: https://example.com/g, "
      "checked: 2026-05-22, verified: true}\n"
      "  - {gpu: tiny, usd_per_hour: 0.000000000001, provider: x, source: http://example.com/t, "
      "checked: 2026-05-22, verified: false}\n",
      "t.yaml");
  ASSERT_EQ(t.models.size(), 2u);
  EXPECT_EQ(t.models[0].provider, "openai");
  EXPECT_EQ(t.models[0].model, "m");
  EXPECT_EQ(t.models[0].tier, 1);
  EXPECT_EQ(t.models[0].input, 150'000);
  EXPECT_EQ(t.models[0].output, 600'000);
  EXPECT_EQ(t.models[0].cached_input, 75'000);
  EXPECT_EQ(t.models[0].source, "https://example.com/p");
  EXPECT_EQ(t.models[0].checked, "2026-01-02");
  EXPECT_TRUE(t.models[0].verified);
  EXPECT_EQ(t.models[1].input, 1);
  EXPECT_EQ(t.models[1].output, 1'234'567'891);
  EXPECT_FALSE(t.models[1].cached_input.has_value());
  EXPECT_FALSE(t.models[1].verified);
  ASSERT_EQ(t.gpus.size(), 2u);
  EXPECT_EQ(t.gpus[0].per_hour, 2'490'000'000'000);
  EXPECT_EQ(t.gpus[0].provider, "lambda");
  EXPECT_EQ(t.gpus[1].per_hour, 1);
  EXPECT_EQ(t.find("deepseek", "deepseek-flash"), &t.models[1]);
  EXPECT_EQ(t.find_gpu("tiny"), &t.gpus[1]);
}

TEST(pricing, gpus_are_optional) {
  const pricing_table t =
      load_pricing_text("as_of: 2026-11-25\nmodels:\n  - {" + std::string(row) + "}\n", "t.yaml");
  EXPECT_EQ(t.models.size(), 1u);
  EXPECT_TRUE(t.gpus.empty());
}

struct error_case {
  const char* name;
  std::string text;
  int line;
  std::string key;
  std::string message;
};

std::string one_row(const std::string& fields) {
  return "as_of: 2026-11-25\nmodels:\n  - {" + fields + "}\n";
}

TEST(pricing, every_error_names_file_line_and_key) {
  const std::string r = row;
  const error_case cases[] = {
      {"empty", "", 1, "", "the price table is empty; it needs 'as_of' and 'models'"},
      {"syntax", "as_of: 2026-11-25\nmodels: [\n", 2, "",
       "YAML syntax error: end of sequence flow not found"},
      {"missing as_of", "models:\n  - {" + r + "}\n", 1, "as_of",
       "missing required key (the date the table was assembled)"},
      {"missing models", "as_of: 2026-11-25\n", 1, "models",
       "missing required key (the list of model prices)"},
      {"unknown top key", "as_of: 2026-11-25\nmodel:\n  - {" + r + "}\n", 2, "model",
       "unknown key 'model' (expected one of: as_of, models, gpus)"},
      {"models not a list", "as_of: 2026-11-25\nmodels: {a: 1}\n", 2, "models",
       "expected a list, got a map"},
      {"row not a map", "as_of: 2026-11-25\nmodels:\n  - just text\n", 3, "models[0]",
       "expected a map, got a single value"},
      {"unknown row key", one_row(r + ", colour: red"), 3, "models[0].colour",
       "unknown key 'colour' (expected one of: provider, model, tier, input_per_mtok, "
       "output_per_mtok, cached_input_per_mtok, source, checked, verified)"},
      {"duplicate row key", one_row(r + ", tier: 2"), 3, "models[0].tier",
       "duplicate key (first set on line 3)"},
      {"missing price",
       "as_of: 2026-11-25\n"
       "models:\n"
       "  - provider: openai\n"
       "    model: m\n"
       "    tier: 1\n"
       "    output_per_mtok: 0.60\n"
       "    source: https://example.com/p\n"
       "    checked: 2026-01-02\n"
       "    verified: true\n",
       3, "models[0].input_per_mtok", "missing required key"},
      {"seven decimals",
       "as_of: 2026-11-25\n"
       "models:\n"
       "  - provider: openai\n"
       "    model: m\n"
       "    tier: 1\n"
       "    input_per_mtok: 0.1234567\n"
       "    output_per_mtok: 0.60\n"
       "    source: https://example.com/p\n"
       "    checked: 2026-01-02\n"
       "    verified: true\n",
       6, "models[0].input_per_mtok",
       "at most 6 decimal places are supported (got 0.1234567)"},
      {"negative",
       one_row("provider: openai, model: m, tier: 1, input_per_mtok: 0.15, output_per_mtok: -1, "
               "source: https://example.com/p, checked: 2026-01-02, verified: true"),
       3, "models[0].output_per_mtok", "must not be negative (got -1)"},
      {"not a number", one_row(r + ", cached_input_per_mtok: 1e-3"), 3,
       "models[0].cached_input_per_mtok", "expected a plain decimal such as 0.15, got '1e-3'"},
      {"empty price", one_row(r + ", cached_input_per_mtok: "), 3,
       "models[0].cached_input_per_mtok", "expected a price in USD per 1M tokens, got nothing"},
      {"price is a list", one_row(r + ", cached_input_per_mtok: [1]"), 3,
       "models[0].cached_input_per_mtok",
       "expected a price in USD per 1M tokens, got a list"},
      {"too large",
       one_row("provider: openai, model: m, tier: 1, input_per_mtok: 99999999999999, "
               "output_per_mtok: 1, source: https://example.com/p, checked: 2026-01-02, "
               "verified: true"),
       3, "models[0].input_per_mtok", "is too large (got 99999999999999)"},
      {"tier 4",
       one_row("provider: openai, model: m, tier: 4, input_per_mtok: 0.15, output_per_mtok: 0.6, "
               "source: https://example.com/p, checked: 2026-01-02, verified: true"),
       3, "models[0].tier", "expected a tier 1, 2 or 3, got '4'"},
      {"bad date",
       one_row("provider: openai, model: m, tier: 1, input_per_mtok: 0.15, output_per_mtok: 0.6, "
               "source: https://example.com/p, checked: 2026-13-02, verified: true"),
       3, "models[0].checked", "expected a date YYYY-MM-DD, got '2026-13-02'"},
      {"bad as_of", "as_of: yesterday\nmodels:\n  - {" + r + "}\n", 1, "as_of",
       "expected a date YYYY-MM-DD, got 'yesterday'"},
      {"verified yes",
       one_row("provider: openai, model: m, tier: 1, input_per_mtok: 0.15, output_per_mtok: 0.6, "
               "source: https://example.com/p, checked: 2026-01-02, verified: yes"),
       3, "models[0].verified", "expected true or false, got 'yes'"},
      {"source not a URL",
       one_row("provider: openai, model: m, tier: 1, input_per_mtok: 0.15, output_per_mtok: 0.6, "
               "source: openai.com, checked: 2026-01-02, verified: true"),
       3, "models[0].source", "expected an http(s) URL of the pricing page, got 'openai.com'"},
      {"model with a space",
       one_row("provider: openai, model: 'gpt 4', tier: 1, input_per_mtok: 0.15, "
               "output_per_mtok: 0.6, source: https://example.com/p, checked: 2026-01-02, "
               "verified: true"),
       3, "models[0].model", "expected a non-empty name without spaces, got 'gpt 4'"},
      {"duplicate provider+model",
       "as_of: 2026-11-25\nmodels:\n  - {" + r + "}\n  - {" + r + "}\n", 4, "models[1].model",
       "duplicate price for openai/m (also models[0] on line 3)"},
      {"duplicate gpu",
       "as_of: 2026-11-25\nmodels:\n  - {" + r + "}\ngpus:\n"
       "  - {gpu: L4, usd_per_hour: 0.44, provider: a, source: https://a.com, checked: 2026-01-01, "
       "verified: true}\n"
       "  - {gpu: L4, usd_per_hour: 0.50, provider: b, source: https://b.com, checked: 2026-01-01, "
       "verified: true}\n",
       6, "gpus[1].gpu", "duplicate GPU L4 (also gpus[0] on line 5)"},
      {"gpu price with 13 decimals",
       "as_of: 2026-11-25\nmodels:\n  - {" + r + "}\ngpus:\n"
       "  - {gpu: L4, usd_per_hour: 0.0000000000001, provider: a, source: https://a.com, "
       "checked: 2026-01-01, verified: true}\n",
       5, "gpus[0].usd_per_hour",
       "at most 12 decimal places are supported (got 0.0000000000001)"},
      {"gpu missing provider",
       "as_of: 2026-11-25\nmodels:\n  - {" + r + "}\ngpus:\n"
       "  - {gpu: L4, usd_per_hour: 0.44, source: https://a.com, checked: 2026-01-01, "
       "verified: true}\n",
       5, "gpus[0].provider", "missing required key"},
  };
  for (const error_case& c : cases) {
    SCOPED_TRACE(c.name);
    try {
      load_pricing_text(c.text, "t.yaml");
      ADD_FAILURE() << "no error";
    } catch (const config_error& e) {
      EXPECT_EQ(e.file(), "t.yaml");
      EXPECT_EQ(e.line(), c.line) << e.what();
      EXPECT_EQ(e.key(), c.key) << e.what();
      if (!c.message.empty()) {
        const std::string prefix = c.key.empty() ? "t.yaml:" + std::to_string(c.line) + ": "
                                                 : "t.yaml:" + std::to_string(c.line) + ": " +
                                                       c.key + ": ";
        EXPECT_EQ(std::string(e.what()), prefix + c.message);
      }
    }
  }
}

TEST(pricing, file_errors_name_the_file) {
  const std::filesystem::path missing =
      std::filesystem::temp_directory_path() / "tollgate-no-such-pricing.yaml";
  std::filesystem::remove(missing);
  try {
    load_pricing_file(missing.string());
    ADD_FAILURE() << "no error";
  } catch (const config_error&) {
    ADD_FAILURE() << "a missing file is not a config error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos) << e.what();
  }

  const std::filesystem::path bad = std::filesystem::temp_directory_path() /
                                    ("tollgate-pricing-test-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(bad) << "as_of: 2026-11-25\nmodels:\n  - {provider: openai}\n";
  try {
    load_pricing_file(bad.string());
    ADD_FAILURE() << "no error";
  } catch (const config_error& e) {
    EXPECT_EQ(e.file(), bad.string());
    EXPECT_EQ(std::string(e.what()), bad.string() + ":3: models[0].model: missing required key");
  }
  std::filesystem::remove(bad);
}

}  // namespace
