#pragma once
// Text formats shared by the reports (daily and export in reports.cpp, breakeven.cpp): the exact
// decimal of a 128-bit money sum, JSON string literals, RFC 4180 CSV fields and aligned tables for
// a terminal. Pure functions of their arguments; safe to call from any thread.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace gw::gateway {

// The exact decimal of a signed 128-bit integer ("-12", "0"): nlohmann::json cannot hold one, and
// a report's pico-dollar sums may need all 128 bits.
std::string int128_string(__int128 v);

// A JSON string literal (quotes included); invalid UTF-8 becomes U+FFFD instead of throwing.
std::string json_string(std::string_view s);

// RFC 4180: a field with a comma, quote, CR or LF is quoted with inner quotes doubled; any other
// field is returned as is.
std::string csv_field(std::string_view s);

// `rows` as columns two spaces apart, for a terminal. rows[0] is the header and the last row the
// totals, with a rule of '-' as wide as all columns above it. The first `left_columns` cells of a
// row are left-aligned, the others right-aligned; trailing spaces are trimmed and every line ends
// in "\n". Every row has as many cells as the header; an empty `rows` gives "".
std::string aligned_table(const std::vector<std::vector<std::string>>& rows, std::size_t left_columns);

}  // namespace gw::gateway
