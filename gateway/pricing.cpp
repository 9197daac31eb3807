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

#include "ledger/money.h"

namespace gw::gateway {

namespace {

using key_list = std::vector<std::string_view>;

const key_list top_keys = {"as_of", "models", "gpus"};
const key_list model_keys = {"provider",        "model",
                             "tier",            "input_per_mtok",
                             "output_per_mtok", "cached_input_per_mtok",
                             "source",          "checked",
                             "verified"};
const key_list gpu_keys = {"gpu", "usd_per_hour", "provider", "source", "checked", "verified"};

std::string join(const key_list& keys) {
  std::string s;
  for (std::string_view k : keys) {
    if (!s.empty()) s += ", ";
    s += k;
  }
  return s;
}

int line_of(const YAML::Node& n, int fallback) {
  const YAML::Mark m = n.Mark();
  return m.line >= 0 ? m.line + 1 : fallback;
}

std::string kind_of(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a single value";
    default:
      return "nothing";
  }
}

// One key/value pair of a map.
struct field {
  std::string name;
  std::string path;  // e.g. "models[3].tier"
  int key_line = 1;
  YAML::Node value;
  int line() const { return value.IsScalar() ? line_of(value, key_line) : key_line; }
};

class parser {
 public:
  explicit parser(std::string file) : file_(std::move(file)) {}

  ledger::pricing_table parse(const std::string& text) {
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      const int lines = static_cast<int>(std::count(text.begin(), text.end(), '\n')) +
                        (text.empty() || text.back() == '\n' ? 0 : 1);
      fail(std::clamp(e.mark.line + 1, 1, std::max(lines, 1)), "", "YAML syntax error: " + e.msg);
    }
    if (root.IsNull()) fail(1, "", "the price table is empty; it needs 'as_of' and 'models'");

    const std::vector<field> top = fields(root, "", 1, top_keys);
    ledger::pricing_table t;

    const field* as_of = find(top, "as_of");
    if (!as_of) fail(1, "as_of", "missing required key (the date the table was assembled)");
    t.as_of = date(*as_of);

    const field* models = find(top, "models");
    if (!models) fail(1, "models", "missing required key (the list of model prices)");
    for (const field& item : items(*models)) t.models.push_back(model_row(item, t.models));

    if (const field* gpus = find(top, "gpus")) {
      for (const field& item : items(*gpus)) t.gpus.push_back(gpu_row(item, t.gpus));
    }
    return t;
  }

 private:
  [[noreturn]] void fail(int line, const std::string& key, const std::string& message) const {
    throw config_error(file_, line, key, message);
  }

  static const field* find(const std::vector<field>& fs, std::string_view name) {
    for (const field& f : fs) {
      if (f.name == name) return &f;
    }
    return nullptr;
  }

  // The pairs of a map in file order; unknown and duplicate keys are errors.
  std::vector<field> fields(const YAML::Node& n, const std::string& path, int line,
                            const key_list& known) const {
    if (!n.IsMap()) fail(line, path, "expected a map, got " + kind_of(n));
    std::vector<field> out;
    for (auto it = n.begin(); it != n.end(); ++it) {
      // Copies: the iterator hands out a temporary pair, a reference into it would dangle.
      const YAML::Node k = it->first;
      const YAML::Node v = it->second;
      const int kl = line_of(k, line);
      if (!k.IsScalar()) fail(kl, path, "map keys must be plain strings, got " + kind_of(k));
      const std::string& name = k.Scalar();
      const std::string p = path.empty() ? name : path + "." + name;
      if (const field* prev = find(out, name)) {
        fail(kl, p, "duplicate key (first set on line " + std::to_string(prev->key_line) + ")");
      }
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        fail(kl, p, "unknown key '" + name + "' (expected one of: " + join(known) + ")");
      }
      out.push_back(field{name, p, kl, v});
    }
    return out;
  }

  std::vector<field> items(const field& f) const {
    if (!f.value.IsSequence()) fail(f.key_line, f.path, "expected a list, got " + kind_of(f.value));
    std::vector<field> out;
    std::size_t i = 0;
    for (const YAML::Node& item : f.value) {
      const std::string idx = "[" + std::to_string(i++) + "]";
      out.push_back(field{idx, f.path + idx, line_of(item, f.key_line), item});
    }
    return out;
  }

  const field& required(const std::vector<field>& fs, const field& row,
                        std::string_view name) const {
    if (const field* f = find(fs, name)) return *f;
    fail(row.key_line, row.path + "." + std::string(name), "missing required key");
  }

  const std::string& scalar(const field& f, std::string_view expected) const {
    if (!f.value.IsScalar()) {
      fail(f.key_line, f.path, "expected " + std::string(expected) + ", got " + kind_of(f.value));
    }
    return f.value.Scalar();
  }

  // Provider names, model ids, GPU names: non-empty, no whitespace or control characters.
  std::string name(const field& f) const {
    const std::string& s = scalar(f, "a name");
    const bool bad = s.empty() || std::any_of(s.begin(), s.end(), [](char c) {
                       const auto u = static_cast<unsigned char>(c);
                       return u <= 0x20 || u == 0x7f;
                     });
    if (bad) fail(f.line(), f.path, "expected a non-empty name without spaces, got '" + s + "'");
    return s;
  }

  std::string date(const field& f) const {
    const std::string& s = scalar(f, "a date");
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

  std::string url(const field& f) const {
    const std::string s = name(f);
    if (s.rfind("https://", 0) != 0 && s.rfind("http://", 0) != 0) {
      fail(f.line(), f.path, "expected an http(s) URL of the pricing page, got '" + s + "'");
    }
    return s;
  }

  bool boolean(const field& f) const {
    const std::string& s = scalar(f, "true or false");
    if (s == "true") return true;
    if (s == "false") return false;
    fail(f.line(), f.path, "expected true or false, got '" + s + "'");
  }

  int tier(const field& f) const {
    const std::string& s = scalar(f, "a tier");
    if (s == "1" || s == "2" || s == "3") return s[0] - '0';
    fail(f.line(), f.path, "expected a tier 1, 2 or 3, got '" + s + "'");
  }

  // Explains why a price text was rejected; `max_frac` is the number of decimals allowed.
  [[noreturn]] void bad_price(const field& f, const std::string& s, std::size_t max_frac,
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

  ledger::pico_usd mtok_price(const field& f) const {
    const std::string& s = scalar(f, "a price in USD per 1M tokens");
    if (const auto v = ledger::parse_usd_per_mtok(s)) return *v;
    bad_price(f, s, 6, "0.15");
  }

  ledger::pico_usd usd_price(const field& f) const {
    const std::string& s = scalar(f, "a price in USD");
    if (const auto v = ledger::parse_usd(s)) return *v;
    bad_price(f, s, 12, "2.49");
  }

  ledger::model_price model_row(const field& row, const std::vector<ledger::model_price>& done) {
    const std::vector<field> fs = fields(row.value, row.path, row.key_line, model_keys);
    ledger::model_price m;
    m.provider = name(required(fs, row, "provider"));
    const field& model = required(fs, row, "model");
    m.model = name(model);
    m.tier = tier(required(fs, row, "tier"));
    m.input = mtok_price(required(fs, row, "input_per_mtok"));
    m.output = mtok_price(required(fs, row, "output_per_mtok"));
    if (const field* c = find(fs, "cached_input_per_mtok")) m.cached_input = mtok_price(*c);
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

  ledger::gpu_price gpu_row(const field& row, const std::vector<ledger::gpu_price>& done) {
    const std::vector<field> fs = fields(row.value, row.path, row.key_line, gpu_keys);
    ledger::gpu_price g;
    const field& gpu = required(fs, row, "gpu");
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

  std::string file_;
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
