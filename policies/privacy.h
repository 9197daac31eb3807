#pragma once
// Privacy detectors: pattern-and-checksum finders for personal data and secrets in request text.
// Pure functions (no I/O, no clock, no globals): text in, matches out. Hand-written scanners rather
// than regular expressions, so a 1 KB prompt costs microseconds.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace gw::policies {

enum class pii_type {
  credit_card,    // 12-19 digits passing the Luhn check
  iban,           // country code, check digits, per-country length, ISO 13616 mod-97
  us_ssn,         // AAA-GG-SSSS with the SSA validity rules
  email,
  phone,          // national and international formats, 7-15 digits
  ip_address,     // IPv4 dotted quad, IPv6 (any valid textual form)
  secret,         // API keys and tokens, private-key blocks, JWTs, high-entropy values of secret names
};

// "CREDIT_CARD", "IBAN_CODE", "US_SSN", "EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS", "SECRET".
std::string_view to_string(pii_type t);

struct pii_match {
  pii_type type;
  std::size_t start = 0;  // UTF-8 byte offsets in the scanned text, [start, end)
  std::size_t end = 0;
  std::string_view detail;  // which rule ("luhn", "aws_access_key", ...), static storage
};

// Every match in `text`, ordered by start; overlapping candidates are resolved in favour of the
// more specific type (a Luhn-valid card beats a phone-shaped digit run, an IP beats a phone).
std::vector<pii_match> detect_pii(std::string_view text);

// Exposed for tests.
bool luhn_valid(std::string_view digits);
bool iban_valid(std::string_view compact_upper);  // no spaces, upper case
bool ssn_valid(int area, int group, int serial);
double shannon_entropy(std::string_view s);  // bits per character

}  // namespace gw::policies
