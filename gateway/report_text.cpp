// Text formats shared by the reports (contracts in report_text.h).
#include "gateway/report_text.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace gw::gateway {

std::string int128_string(__int128 v) {
  unsigned __int128 mag = v < 0 ? static_cast<unsigned __int128>(-(v + 1)) + 1 : static_cast<unsigned __int128>(v);
  std::string digits;
  do {
    digits.push_back(static_cast<char>('0' + static_cast<int>(mag % 10)));
    mag /= 10;
  } while (mag != 0);
  if (v < 0) digits.push_back('-');
  std::reverse(digits.begin(), digits.end());
  return digits;
}

std::string json_string(std::string_view s) {
  return nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string csv_field(std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string aligned_table(const std::vector<std::vector<std::string>>& rows, std::size_t left_columns) {
  if (rows.empty()) return {};
  std::vector<std::size_t> width(rows.front().size(), 0);
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  std::string s;
  for (std::size_t n = 0; n < rows.size(); ++n) {
    if (n + 1 == rows.size()) {  // a rule above the totals
      std::size_t all = 0;
      for (auto w : width) all += w + 2;
      s += std::string(all - 2, '-') + "\n";
    }
    std::string line;
    for (std::size_t i = 0; i < rows[n].size(); ++i) {
      const auto& cell = rows[n][i];
      std::string pad(width[i] - cell.size(), ' ');
      if (i) line += "  ";
      line += i < left_columns ? cell + pad : pad + cell;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    s += line + "\n";
  }
  return s;
}

}  // namespace gw::gateway
