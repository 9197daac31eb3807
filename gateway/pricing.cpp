// Parses configs/pricing.yaml into ledger::pricing_table (contract in pricing.h).
//
// Error lines: a problem with a value points at the value when it is a scalar, otherwise at its
// key; a missing key points at the list item that lacks it.
#include "gateway/pricing.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/yaml_reader.h"
#include "ledger/money.h"

namespace gw::gateway {

namespace {

const key_list top_keys = {"as_of", "models", "gpus"};
const key_list model_keys = {"provider",        "model",
                             "tier",            "input_per_mtok",
                             "output_per_mtok", "cached_input_per_mtok",
                             "source",          "checked",
                             "verified"};
const key_list gpu_keys = {"gpu", "usd_per_hour", "provider", "source", "checked", "verified"};

class parser : yaml_reader {
 public:
  explicit parser(std::string file) : yaml_reader(std::move(file), unknown_key_hint::all_keys) {}

  ledger::pricing_table parse(const std::string& text) {
    const YAML::Node root = load(text, /*with_column=*/false);
    if (root.IsNull()) fail(1, "", "the price table is empty; it needs 'as_of' and 'models'");

    const std::vector<yaml_entry> top = map_entries(root, "", 1, &top_keys);
    ledger::pricing_table t;

    const yaml_entry* as_of = find_entry(top, "as_of");
    if (!as_of) fail(1, "as_of", "missing required key (the date the table was assembled)");
    t.as_of = date(*as_of);

    const yaml_entry* models = find_entry(top, "models");
    if (!models) fail(1, "models", "missing required key (the list of model prices)");
    for (const yaml_entry& item : list_items(*models)) t.models.push_back(model_row(item, t.models));

    if (const yaml_entry* gpus = find_entry(top, "gpus")) {
      for (const yaml_entry& item : list_items(*gpus)) t.gpus.push_back(gpu_row(item, t.gpus));
    }
    return t;
  }

 private:
  const yaml_entry& required(const std::vector<yaml_entry>& fs, const yaml_entry& row,
                             std::string_view name) const {
    if (const yaml_entry* f = find_entry(fs, name)) return *f;
    fail(row.key_line, row.path + "." + std::string(name), "missing required key");
  }

  // Provider names, model ids, GPU names: non-empty, no whitespace or control characters.
  std::string name(const yaml_entry& f) const {
    const std::string& s = raw_scalar(f, "a name");
    const bool bad = s.empty() || std::any_of(s.begin(), s.end(), [](char c) {
                       const auto u = static_cast<unsigned char>(c);
                       return u <= 0x20 || u == 0x7f;
                     });
    if (bad) fail(f.line(), f.path, "expected a non-empty name without spaces, got '" + s + "'");
    return s;
  }

  std::string date(const yaml_entry& f) const {
    const std::string& s = raw_scalar(f, "a date");
    const auto digits = [&](std::size_t pos, std::size_t n) {
      return std::all_of(s.begin() + static_cast<std::ptrdiff_t>(pos),
                         s.begin() + static_cast<std::ptrdiff_t>(pos + n),
                         [](char c) { return c >= '0' && c <= '9'; });
    };
    bool ok = s.size() == 10 && s[4] == '-' && s[7] == '-' && digits(0, 4) && digits(5, 2) &&
              digits(8, 2);
    if (ok) {
      const int month = std::stoi(s.substr(5, 2));
      const int day = std::stoi(s.substr(8, 2));
      ok = month >= 1 && month <= 12 && day >= 1 && day <= 31;
    }
    if (!ok) fail(f.line(), f.path, "expected a date YYYY-MM-DD, got '" + s + "'");
    return s;
  }

  std::string url(const yaml_entry& f) const {
    const std::string s = name(f);
    if (s.rfind("https://", 0) != 0 && s.rfind("http://", 0) != 0) {
      fail(f.line(), f.path, "expected an http(s) URL of the pricing page, got '" + s + "'");
    }
    return s;
  }

  bool boolean(const yaml_entry& f) const {
    const std::string& s = raw_scalar(f, "true or false");
    if (s == "true") return true;
    if (s == "false") return false;
    fail(f.line(), f.path, "expected true or false, got '" + s + "'");
  }

  int tier(const yaml_entry& f) const {
    const std::string& s = raw_scalar(f, "a tier");
    if (s == "1" || s == "2" || s == "3") return s[0] - '0';
    fail(f.line(), f.path, "expected a tier 1, 2 or 3, got '" + s + "'");
  }

  // Explains why a price text was rejected; `max_frac` is the number of decimals allowed.
  [[noreturn]] void bad_price(const yaml_entry& f, const std::string& s, std::size_t max_frac,
                              std::string_view example) const {
    if (!s.empty() && s[0] == '-') fail(f.line(), f.path, "must not be negative (got " + s + ")");
    const std::size_t dot = s.find('.');
    const bool shape_ok =
        !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
          return (c >= '0' && c <= '9') || c == '.';
        }) && std::count(s.begin(), s.end(), '.') <= 1 && dot != 0 && dot + 1 != s.size();
    if (shape_ok && dot != std::string::npos && s.size() - dot - 1 > max_frac) {
      fail(f.line(), f.path,
           "at most " + std::to_string(max_frac) + " decimal places are supported (got " + s + ")");
    }
    if (shape_ok) fail(f.line(), f.path, "is too large (got " + s + ")");
    fail(f.line(), f.path,
         "expected a plain decimal such as " + std::string(example) + ", got '" + s + "'");
  }

  ledger::pico_usd mtok_price(const yaml_entry& f) const {
    const std::string& s = raw_scalar(f, "a price in USD per 1M tokens");
    if (const auto v = ledger::parse_usd_per_mtok(s)) return *v;
    bad_price(f, s, 6, "0.15");
  }

  ledger::pico_usd usd_price(const yaml_entry& f) const {
    const std::string& s = raw_scalar(f, "a price in USD");
    if (const auto v = ledger::parse_usd(s)) return *v;
    bad_price(f, s, 12, "2.49");
  }

  ledger::model_price model_row(const yaml_entry& row, const std::vector<ledger::model_price>& done) {
    const std::vector<yaml_entry> fs = map_entries(row, &model_keys);
    ledger::model_price m;
    m.provider = name(required(fs, row, "provider"));
    const yaml_entry& model = required(fs, row, "model");
    m.model = name(model);
    m.tier = tier(required(fs, row, "tier"));
    m.input = mtok_price(required(fs, row, "input_per_mtok"));
    m.output = mtok_price(required(fs, row, "output_per_mtok"));
    if (const yaml_entry* c = find_entry(fs, "cached_input_per_mtok")) m.cached_input = mtok_price(*c);
    m.source = url(required(fs, row, "source"));
    m.checked = date(required(fs, row, "checked"));
    m.verified = boolean(required(fs, row, "verified"));

    for (std::size_t i = 0; i < done.size(); ++i) {
      if (done[i].provider == m.provider && done[i].model == m.model) {
        fail(model.line(), model.path,
             "duplicate price for " + m.provider + "/" + m.model + " (also models[" +
                 std::to_string(i) + "] on line " + std::to_string(model_lines_[i]) + ")");
      }
    }
    model_lines_.push_back(model.line());
    return m;
  }

  ledger::gpu_price gpu_row(const yaml_entry& row, const std::vector<ledger::gpu_price>& done) {
    const std::vector<yaml_entry> fs = map_entries(row, &gpu_keys);
    ledger::gpu_price g;
    const yaml_entry& gpu = required(fs, row, "gpu");
    g.gpu = name(gpu);
    g.per_hour = usd_price(required(fs, row, "usd_per_hour"));
    g.provider = name(required(fs, row, "provider"));
    g.source = url(required(fs, row, "source"));
    g.checked = date(required(fs, row, "checked"));
    g.verified = boolean(required(fs, row, "verified"));

    for (std::size_t i = 0; i < done.size(); ++i) {
      if (done[i].gpu == g.gpu) {
        fail(gpu.line(), gpu.path,
             "duplicate GPU " + g.gpu + " (also gpus[" + std::to_string(i) + "] on line " +
                 std::to_string(gpu_lines_[i]) + ")");
      }
    }
    gpu_lines_.push_back(gpu.line());
    return g;
  }

  std::vector<int> model_lines_;  // line of each accepted row's model id, for duplicate messages
  std::vector<int> gpu_lines_;
};

}  // namespace

ledger::pricing_table load_pricing_text(const std::string& text, const std::string& file_name) {
  return parser(file_name).parse(text);
}

ledger::pricing_table load_pricing_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read price table '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw std::runtime_error("error while reading price table '" + path + "'");
  return load_pricing_text(ss.str(), path);
}

}  // namespace gw::gateway
