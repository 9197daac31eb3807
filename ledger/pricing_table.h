#pragma once
// The offline price table (configs/pricing.yaml) as plain data: list prices per model and rental
// prices per GPU, each row with where and when the number was seen. No YAML here; the gateway
// parses and validates the file (gateway/pricing.h) and hands over an immutable pricing_table.
// Thread-safety: a const pricing_table may be read from any number of threads.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/money.h"

namespace gw::ledger {

struct model_price {
  std::string provider;  // "openai", "anthropic", "groq", "together", "fireworks", "deepseek"
  std::string model;     // the provider's API model id, exactly as sent upstream
  int tier = 0;          // 1 = small/cheap, 2 = mid, 3 = frontier (a judgement, see the file)
  pico_usd input = 0;    // p$ per uncached input token
  pico_usd output = 0;   // p$ per output token (reasoning tokens included)
  std::optional<pico_usd> cached_input;  // p$ per cache-hit input token, when published
  std::string source;                    // URL of the page the numbers were read from
  std::string checked;                   // YYYY-MM-DD: the date of that source
  bool verified = false;  // true only when the numbers were seen in that dated source
};

struct gpu_price {
  std::string gpu;       // e.g. "H100-80GB"; unique within a table
  pico_usd per_hour = 0; // p$ per GPU-hour for one GPU (list price; the file says which offering)
  std::string provider;  // the cloud the price is from
  std::string source;
  std::string checked;
  bool verified = false;
};

struct pricing_table {
  std::string as_of;  // YYYY-MM-DD the table as a whole was assembled
  std::vector<model_price> models;
  std::vector<gpu_price> gpus;

  // nullptr when not listed. Exact, case-sensitive match (model ids are case-sensitive upstream).
  // Pointers stay valid as long as the table is neither modified nor destroyed.
  const model_price* find(std::string_view provider, std::string_view model) const {
    for (const model_price& m : models) {
      if (m.provider == provider && m.model == model) return &m;
    }
    return nullptr;
  }
  const gpu_price* find_gpu(std::string_view gpu) const {
    for (const gpu_price& g : gpus) {
      if (g.gpu == gpu) return &g;
    }
    return nullptr;
  }
};

}  // namespace gw::ledger
