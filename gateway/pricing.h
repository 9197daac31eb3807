#pragma once
// Loads the offline price table (configs/pricing.yaml; its header documents the schema) into the
// plain ledger::pricing_table. Start-up / reload only: every problem throws config_error with
// "FILE:LINE: KEY: message", KEY being the dotted path such as "models[3].input_per_mtok".
//
// Prices are parsed from the scalar text exactly (never through a double): token prices with
// ledger::parse_usd_per_mtok (at most 6 decimals), GPU prices with ledger::parse_usd.
// Rejected: unknown or duplicate keys, missing required keys, negative or malformed prices,
// tiers outside 1..3, dates not in YYYY-MM-DD form, a provider+model pair listed twice, a GPU
// listed twice.
#include <string>

#include "gateway/config.h"
#include "ledger/pricing_table.h"

namespace gw::gateway {

// Throws config_error, or std::runtime_error (naming the file) when it cannot be read.
ledger::pricing_table load_pricing_file(const std::string& path);
// Same, from text; `file_name` is used in error messages.
ledger::pricing_table load_pricing_text(const std::string& text, const std::string& file_name);

}  // namespace gw::gateway
