#include "policies/privacy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstring>

namespace gw::policies {

std::string_view to_string(pii_type t) {
  switch (t) {
    case pii_type::credit_card: return "CREDIT_CARD";
    case pii_type::iban: return "IBAN_CODE";
    case pii_type::us_ssn: return "US_SSN";
    case pii_type::email: return "EMAIL_ADDRESS";
    case pii_type::phone: return "PHONE_NUMBER";
    case pii_type::ip_address: return "IP_ADDRESS";
    case pii_type::secret: return "SECRET";
  }
  return "UNKNOWN";
}

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_alnum(char c) { return is_digit(c) || is_alpha(c); }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
char upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }
bool is_word(char c) { return is_alnum(c) || c == '_'; }

// Higher wins when two matches overlap.
int priority(pii_type t) {
  switch (t) {
    case pii_type::secret: return 7;
    case pii_type::email: return 6;
    case pii_type::iban: return 5;
    case pii_type::credit_card: return 4;
    case pii_type::us_ssn: return 3;
    case pii_type::ip_address: return 2;
    case pii_type::phone: return 1;
  }
  return 0;
}

// ---- e-mail ------------------------------------------------------------------------------------

bool email_local_char(char c) {
  return is_alnum(c) || std::strchr("!#$%&'*+/=?^_`{|}~.-", c) != nullptr;
}

void find_emails(std::string_view t, std::vector<pii_match>& out) {
  for (std::size_t at = t.find('@'); at != std::string_view::npos; at = t.find('@', at + 1)) {
    std::size_t b = at;
    while (b > 0 && email_local_char(t[b - 1])) --b;
    while (b < at && (t[b] == '.' || t[b] == '-')) ++b;  // no leading dot
    if (b == at) continue;
    std::size_t e = at + 1, last_dot = 0;
    while (e < t.size() && (is_alnum(t[e]) || t[e] == '-' || t[e] == '.')) {
      if (t[e] == '.') last_dot = e;
      ++e;
    }
    while (e > at + 1 && (t[e - 1] == '.' || t[e - 1] == '-')) --e;  // trailing punctuation
    if (last_dot >= e) {
      last_dot = 0;
      for (std::size_t i = at + 1; i < e; ++i)
        if (t[i] == '.') last_dot = i;
    }
    if (!last_dot || last_dot <= at + 1) continue;
    std::size_t tld = e - last_dot - 1;
    bool tld_alpha = tld >= 2;
    for (std::size_t i = last_dot + 1; i < e && tld_alpha; ++i) tld_alpha = is_alpha(t[i]);
    if (!tld_alpha) continue;
    out.push_back({pii_type::email, b, e, "email"});
  }
}

// ---- IBAN --------------------------------------------------------------------------------------

struct iban_len {
  char cc[3];
  int len;
};
// ISO 13616 registry lengths (SWIFT IBAN registry).
constexpr iban_len iban_lengths[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
    {"BH", 22}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24}, {"DE", 22},
    {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18}, {"FO", 18}, {"FR", 27},
    {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28},
    {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20},
    {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21}, {"MC", 27}, {"MD", 24},
    {"ME", 22}, {"MK", 19}, {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NL", 18}, {"NO", 15}, {"PK", 24},
    {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"SA", 24}, {"SC", 31},
    {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"ST", 25}, {"SV", 28}, {"TL", 23}, {"TN", 24},
    {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
};

int iban_length_for(char a, char b) {
  for (const auto& e : iban_lengths)
    if (e.cc[0] == a && e.cc[1] == b) return e.len;
  return 0;
}

void find_ibans(std::string_view t, std::vector<pii_match>& out) {
  for (std::size_t i = 0; i + 4 <= t.size(); ++i) {
    if (!is_alpha(t[i]) || !is_alpha(t[i + 1]) || !is_digit(t[i + 2]) || !is_digit(t[i + 3])) continue;
    if (i > 0 && is_word(t[i - 1])) continue;
    int want = iban_length_for(upper(t[i]), upper(t[i + 1]));
    if (!want) continue;
    // Collect alphanumerics, allowing single spaces between groups (printed form).
    std::string compact;
    std::size_t j = i, end = i;
    while (j < t.size() && static_cast<int>(compact.size()) < want) {
      if (is_alnum(t[j])) {
        compact.push_back(upper(t[j]));
        end = ++j;
      } else if (t[j] == ' ' && j + 1 < t.size() && is_alnum(t[j + 1]) && compact.size() % 4 == 0) {
        ++j;
      } else {
        break;
      }
    }
    if (static_cast<int>(compact.size()) != want) continue;
    if (end < t.size() && is_word(t[end])) continue;
    if (!iban_valid(compact)) continue;
    out.push_back({pii_type::iban, i, end, "iban_mod97"});
    i = end;
  }
}

// ---- IP addresses ------------------------------------------------------------------------------

void find_ipv6(std::string_view t, std::vector<pii_match>& out) {
  std::size_t i = 0;
  while (i < t.size()) {
    if (!(is_hex(t[i]) || t[i] == ':') || (i > 0 && (is_word(t[i - 1]) || t[i - 1] == ':'))) {
      ++i;
      continue;
    }
    std::size_t j = i;
    int colons = 0;
    while (j < t.size() && (is_hex(t[j]) || t[j] == ':' || t[j] == '.')) {
      if (t[j] == ':') ++colons;
      ++j;
    }
    std::size_t e = j;
    while (e > i && t[e - 1] == '.') --e;
    if (colons >= 2 && e - i >= 3 && e - i <= 45 && (j >= t.size() || !is_word(t[j]))) {
      char buf[64];
      std::memcpy(buf, t.data() + i, e - i);
      buf[e - i] = 0;
      unsigned char addr[16];
      if (inet_pton(AF_INET6, buf, addr) == 1) out.push_back({pii_type::ip_address, i, e, "ipv6"});
    }
    i = j + 1;
  }
}

// ---- digit runs: cards, SSNs, IPv4, phones -------------------------------------------------------

bool run_char(char c) { return is_digit(c) || c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '/'; }

struct digit_run {
  std::size_t start, end;
  std::string digits;
  std::vector<std::string> groups;  // digit groups in order
  std::string seps;                 // distinct separator characters used
  bool plus = false;
};

// A lower-case street word right after two numbers: "3747 3911 fourth avenue".
bool street_word(std::string_view rest) {
  std::size_t n = 0;
  while (n < rest.size() && is_alpha(rest[n])) ++n;
  std::string w(rest.substr(0, n));
  for (auto& c : w) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static constexpr std::string_view words[] = {"street", "st", "avenue", "ave", "road", "rd", "drive", "dr", "lane",
                                               "ln", "place", "pl", "court", "ct", "boulevard", "blvd", "way", "square",
                                               "sq", "close", "rue", "str", "strasse", "first", "second", "third",
                                               "fourth", "fifth", "north", "south", "east", "west", "old", "new"};
  for (auto x : words)
    if (w == x) return true;
  return false;
}

bool is_date_like(const digit_run& r) {
  if (r.groups.size() < 3) return false;
  const auto& g = r.groups;
  auto num = [](const std::string& s) { return std::atoi(s.c_str()); };
  bool sep_date = r.seps.find_first_of("-/.") != std::string::npos;
  if (!sep_date) return false;
  // YYYY-MM-DD (with a time after it, more groups)
  if (g[0].size() == 4 && (num(g[0]) >= 1900 && num(g[0]) <= 2099) && g[1].size() <= 2 && num(g[1]) >= 1 &&
      num(g[1]) <= 12 && g[2].size() <= 2 && num(g[2]) >= 1 && num(g[2]) <= 31)
    return true;
  // DD/MM/YYYY or MM/DD/YYYY
  if (g.size() == 3 && g[2].size() == 4 && num(g[2]) >= 1900 && num(g[2]) <= 2099 && g[0].size() <= 2 &&
      g[1].size() <= 2 && num(g[0]) >= 1 && num(g[1]) >= 1 && num(g[0]) <= 31 && num(g[1]) <= 31)
    return true;
  return false;
}

void classify_run(std::string_view t, digit_run& r, std::vector<pii_match>& out) {
  const std::size_t d = r.digits.size();
  std::string_view text = t.substr(r.start, r.end - r.start);
  // IPv4: four dot-separated groups of 1-3 digits, each <= 255, nothing else.
  if (r.seps == "." && r.groups.size() == 4 && !r.plus) {
    bool ok = true;
    for (const auto& g : r.groups) ok = ok && g.size() <= 3 && std::atoi(g.c_str()) <= 255;
    if (ok) {
      out.push_back({pii_type::ip_address, r.start, r.end, "ipv4"});
      return;
    }
  }
  // US SSN: AAA-GG-SSSS (dashes or spaces).
  if (r.groups.size() == 3 && r.groups[0].size() == 3 && r.groups[1].size() == 2 && r.groups[2].size() == 4 &&
      (r.seps == "-" || r.seps == " ") && !r.plus) {
    if (ssn_valid(std::atoi(r.groups[0].c_str()), std::atoi(r.groups[1].c_str()), std::atoi(r.groups[2].c_str())))
      out.push_back({pii_type::us_ssn, r.start, r.end, "ssn"});
    return;  // SSN-shaped but invalid (666-, 9xx-, 000-): not a phone either
  }
  // Payment card: 12-19 digits, plain or grouped with spaces/dashes, Luhn-valid.
  if (d >= 12 && d <= 19 && !r.plus && (r.seps.empty() || r.seps == " " || r.seps == "-")) {
    bool grouped_ok = r.groups.size() == 1 || r.groups[0].size() >= 4;
    if (grouped_ok && luhn_valid(r.digits)) {
      out.push_back({pii_type::credit_card, r.start, r.end, "luhn"});
      return;
    }
  }
  if (is_date_like(r)) return;
  // Phone: 7-15 digits; unseparated runs only in the common 10-11 digit national form (or +).
  if (d < 7 || d > 15) return;
  if (r.groups.size() == 1 && !r.plus && (d < 10 || d > 11)) return;
  if (r.seps.find('/') != std::string::npos && r.groups.size() > 2) return;  // fractions, dates
  // Groups of a phone number are short; a 6+ digit group in a grouped number is an ID, not a phone
  // (except the subscriber part after a short area code: "0393 1144137", "99 668472").
  if (r.groups.size() > 1) {
    for (std::size_t i = 0; i < r.groups.size(); ++i) {
      bool subscriber = r.groups.size() == 2 && i == 1 && r.groups[0].size() >= 2 && r.groups[0].size() <= 4 &&
                        r.groups[1].size() <= 8;
      if (r.groups[i].size() > 5 && !(i == 0 && r.plus) && !subscriber) return;
    }
    // Two numbers and then a word: a street address ("3747 3911 Fourth Avenue", "Apt. 675 62314
    // Mellemvej"), not a phone.
    if (r.groups.size() == 2 && r.seps == " ") {
      std::size_t k = r.end;
      while (k < t.size() && t[k] == ' ') ++k;
      if (k > r.end && k < t.size() && is_alpha(t[k]) && (std::isupper(static_cast<unsigned char>(t[k])) || street_word(t.substr(k))))
        return;
    }
    // Postal codes written with a dash: 75534-030 (Brazil), 3610-114 (Portugal).
    if (r.groups.size() == 2 && r.seps == "-" && r.groups[1].size() == 3 &&
        (r.groups[0].size() == 4 || r.groups[0].size() == 5))
      return;
    if (r.groups[0].size() == 4 && std::atoi(r.groups[0].c_str()) >= 1900 && std::atoi(r.groups[0].c_str()) <= 2099 &&
        r.groups.size() == 2)
      return;  // "2019 1234"
  }
  (void)text;
  out.push_back({pii_type::phone, r.start, r.end, "phone"});
}

void find_digit_runs(std::string_view t, std::vector<pii_match>& out) {
  std::size_t i = 0;
  while (i < t.size()) {
    char c = t[i];
    bool starter = is_digit(c) || ((c == '+' || c == '(') && i + 1 < t.size() && (is_digit(t[i + 1]) || t[i + 1] == '('));
    if (!starter || (i > 0 && (is_alpha(t[i - 1]) || is_digit(t[i - 1]) || t[i - 1] == '_'))) {
      ++i;
      continue;
    }
    digit_run r;
    r.start = i;
    std::size_t j = i;
    if (t[j] == '+') {
      r.plus = true;
      ++j;
    }
    std::string cur;
    std::size_t last_digit_end = j;
    while (j < t.size() && run_char(t[j])) {
      char ch = t[j];
      if (is_digit(ch)) {
        cur.push_back(ch);
        r.digits.push_back(ch);
        last_digit_end = j + 1;
        ++j;
        continue;
      }
      // A separator: only one in a row (a space may sit next to a parenthesis), and it must lead
      // to more digits soon.
      std::size_t k = j;
      int seps = 0;
      while (k < t.size() && !is_digit(t[k]) && run_char(t[k]) && seps < 3) {
        ++k;
        ++seps;
      }
      if (k >= t.size() || !is_digit(t[k]) || seps > 2) break;
      if (seps == 2 && !(t[j] == ')' || t[j + 1] == '(' || (t[j] == ' ' && t[j + 1] == '-') || (t[j] == '-' && t[j + 1] == ' ')))
        break;
      if (!cur.empty()) {
        r.groups.push_back(cur);
        cur.clear();
      }
      for (std::size_t s = j; s < k; ++s)
        if (t[s] != '(' && t[s] != ')' && r.seps.find(t[s]) == std::string::npos) r.seps.push_back(t[s]);
      if (k > j && (t[j] == '(' || t[k - 1] == '(')) r.seps.push_back('(');
      j = k;
    }
    if (!cur.empty()) r.groups.push_back(cur);
    r.end = last_digit_end;
    // Parenthesised area codes: "(37) 788-063" starts at the parenthesis.
    // Extension: "x4587" / " ext. 4587".
    std::size_t e = r.end;
    if (e < t.size() && (t[e] == 'x' || t[e] == 'X') && e + 1 < t.size() && is_digit(t[e + 1])) {
      std::size_t k = e + 1;
      while (k < t.size() && is_digit(t[k]) && k - e <= 6) ++k;
      if (k - e - 1 <= 5 && (k >= t.size() || !is_word(t[k]))) r.end = k;
    }
    bool word_after = r.end < t.size() && (is_alpha(t[r.end]) || t[r.end] == '_') && r.end == last_digit_end;
    if (!r.digits.empty() && !word_after) classify_run(t, r, out);
    i = std::max(j, i + 1);
  }
}

// ---- secrets -----------------------------------------------------------------------------------

bool token_char(char c) { return is_alnum(c) || c == '_' || c == '-'; }

std::size_t token_end(std::string_view t, std::size_t from) {
  while (from < t.size() && token_char(t[from])) ++from;
  return from;
}

struct prefix_rule {
  std::string_view prefix;
  std::size_t min_tail;  // characters after the prefix
  std::string_view name;
  bool upper_alnum_only = false;
};

constexpr prefix_rule secret_prefixes[] = {
    {"AKIA", 16, "aws_access_key", true}, {"ASIA", 16, "aws_access_key", true},
    {"ghp_", 30, "github_token"},         {"gho_", 30, "github_token"},
    {"ghu_", 30, "github_token"},         {"ghs_", 30, "github_token"},
    {"ghr_", 30, "github_token"},         {"github_pat_", 40, "github_token"},
    {"glpat-", 20, "gitlab_token"},       {"xoxb-", 20, "slack_token"},
    {"xoxp-", 20, "slack_token"},         {"xoxa-", 20, "slack_token"},
    {"xoxr-", 20, "slack_token"},         {"xoxs-", 20, "slack_token"},
    {"sk_live_", 16, "stripe_key"},       {"rk_live_", 16, "stripe_key"},
    {"sk_test_", 16, "stripe_key"},       {"sk-ant-", 30, "anthropic_key"},
    {"sk-proj-", 30, "openai_key"},       {"sk-", 32, "openai_key"},
};

bool looks_random(std::string_view s) {
  // Placeholders ("xxxxxxxx", "your-key-here", "1234567890") are low-entropy or repetitive.
  if (s.size() < 16) return false;
  int classes = 0;
  bool lower = false, up = false, dig = false;
  for (char c : s) {
    lower |= (c >= 'a' && c <= 'z');
    up |= (c >= 'A' && c <= 'Z');
    dig |= is_digit(c);
  }
  classes = lower + up + dig;
  return shannon_entropy(s) >= 3.0 && classes >= 2;
}

void find_prefixed_tokens(std::string_view t, std::vector<pii_match>& out) {
  for (const auto& rule : secret_prefixes) {
    for (std::size_t p = t.find(rule.prefix); p != std::string_view::npos; p = t.find(rule.prefix, p + 1)) {
      if (p > 0 && token_char(t[p - 1])) continue;
      std::size_t e = token_end(t, p + rule.prefix.size());
      std::string_view tail = t.substr(p + rule.prefix.size(), e - p - rule.prefix.size());
      if (tail.size() < rule.min_tail) continue;
      if (rule.upper_alnum_only) {
        if (tail.size() != rule.min_tail) continue;
        bool ok = true;
        for (char c : tail) ok = ok && (is_digit(c) || (c >= 'A' && c <= 'Z'));
        if (!ok || shannon_entropy(tail) < 2.5) continue;  // "AKIAXXXXXXXXXXXXXXXX" is a placeholder
      } else if (!looks_random(tail)) {
        continue;
      }
      out.push_back({pii_type::secret, p, e, rule.name});
    }
  }
}

void find_private_keys(std::string_view t, std::vector<pii_match>& out) {
  constexpr std::string_view begin = "-----BEGIN ";
  for (std::size_t p = t.find(begin); p != std::string_view::npos; p = t.find(begin, p + 1)) {
    std::size_t line_end = t.find("-----", p + begin.size());
    if (line_end == std::string_view::npos) break;
    std::string_view label = t.substr(p + begin.size(), line_end - p - begin.size());
    if (label.find("PRIVATE KEY") == std::string_view::npos) continue;
    std::size_t end_marker = t.find("-----END ", line_end);
    std::size_t e = t.size();
    if (end_marker != std::string_view::npos) {
      std::size_t close = t.find("-----", end_marker + 9);
      e = close == std::string_view::npos ? t.size() : close + 5;
    }
    out.push_back({pii_type::secret, p, e, "private_key"});
  }
}

bool b64url_char(char c) { return is_alnum(c) || c == '-' || c == '_' || c == '='; }

void find_jwts(std::string_view t, std::vector<pii_match>& out) {
  for (std::size_t p = t.find("eyJ"); p != std::string_view::npos; p = t.find("eyJ", p + 1)) {
    if (p > 0 && b64url_char(t[p - 1])) continue;
    std::size_t e = p;
    int dots = 0;
    std::size_t seg = 0, min_seg = SIZE_MAX;
    while (e < t.size() && (b64url_char(t[e]) || t[e] == '.')) {
      if (t[e] == '.') {
        ++dots;
        min_seg = std::min(min_seg, seg);
        seg = 0;
      } else {
        ++seg;
      }
      ++e;
    }
    min_seg = std::min(min_seg, seg);
    if (dots == 2 && min_seg >= 8) out.push_back({pii_type::secret, p, e, "jwt"});
  }
}

// key = value / key: value / "key": "value" where the key names a secret and the value is random.
void find_assigned_secrets(std::string_view t, std::vector<pii_match>& out) {
  static constexpr std::string_view names[] = {"password", "passwd", "pwd", "secret", "token", "api_key", "apikey",
                                               "api-key", "access_key", "private_key", "client_secret", "auth"};
  std::string lower(t);
  for (auto& c : lower) c = static_cast<char>((c >= 'A' && c <= 'Z') ? c + 32 : c);
  for (auto name : names) {
    for (std::size_t p = lower.find(name); p != std::string::npos; p = lower.find(name, p + 1)) {
      std::size_t k = p + name.size();
      while (k < t.size() && (is_word(t[k]) || t[k] == '-')) ++k;  // e.g. secret_key, token_v2
      while (k < t.size() && (t[k] == '"' || t[k] == '\'' || t[k] == ' ')) ++k;
      if (k >= t.size() || (t[k] != '=' && t[k] != ':')) continue;
      ++k;
      while (k < t.size() && (t[k] == ' ' || t[k] == '"' || t[k] == '\'')) ++k;
      std::size_t v = k;
      while (k < t.size() && !std::strchr(" \t\r\n\"',;}&", t[k])) ++k;
      std::string_view value = t.substr(v, k - v);
      if (value.size() >= 12 && value.size() <= 512 && looks_random(value) && shannon_entropy(value) >= 3.5)
        out.push_back({pii_type::secret, v, k, "assigned_secret"});
    }
  }
}

}  // namespace

bool luhn_valid(std::string_view digits) {
  int sum = 0;
  bool dbl = false;
  int n = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (!is_digit(*it)) continue;
    int v = *it - '0';
    if (dbl) {
      v *= 2;
      if (v > 9) v -= 9;
    }
    sum += v;
    dbl = !dbl;
    ++n;
  }
  return n > 0 && sum % 10 == 0;
}

bool iban_valid(std::string_view s) {
  if (s.size() < 15 || s.size() > 34) return false;
  if (iban_length_for(s[0], s[1]) != static_cast<int>(s.size())) return false;
  // Move the first four characters to the end, letters to numbers (A=10), mod 97 must be 1.
  int rem = 0;
  auto feed = [&](char c) {
    if (is_digit(c)) {
      rem = (rem * 10 + (c - '0')) % 97;
    } else if (c >= 'A' && c <= 'Z') {
      int v = c - 'A' + 10;
      rem = (rem * 100 + v) % 97;
    } else {
      rem = -1000;
    }
  };
  for (std::size_t i = 4; i < s.size(); ++i) feed(s[i]);
  for (std::size_t i = 0; i < 4; ++i) feed(s[i]);
  return rem == 1;
}

bool ssn_valid(int area, int group, int serial) {
  if (area <= 0 || area == 666 || area >= 900) return false;
  if (group <= 0 || serial <= 0) return false;
  return true;
}

double shannon_entropy(std::string_view s) {
  if (s.empty()) return 0;
  std::array<int, 256> counts{};
  for (unsigned char c : s) ++counts[c];
  double h = 0, n = static_cast<double>(s.size());
  for (int c : counts)
    if (c) {
      double p = c / n;
      h -= p * std::log2(p);
    }
  return h;
}

std::vector<pii_match> detect_pii(std::string_view text) {
  std::vector<pii_match> all;
  find_private_keys(text, all);
  find_prefixed_tokens(text, all);
  find_jwts(text, all);
  find_assigned_secrets(text, all);
  find_emails(text, all);
  find_ibans(text, all);
  find_ipv6(text, all);
  find_digit_runs(text, all);
  // Resolve overlaps: most specific type first, then longest.
  std::sort(all.begin(), all.end(), [](const pii_match& a, const pii_match& b) {
    if (priority(a.type) != priority(b.type)) return priority(a.type) > priority(b.type);
    return (a.end - a.start) > (b.end - b.start);
  });
  std::vector<pii_match> kept;
  for (const auto& m : all) {
    bool overlaps = false;
    for (const auto& k : kept)
      if (m.start < k.end && k.start < m.end) {
        overlaps = true;
        break;
      }
    if (!overlaps) kept.push_back(m);
  }
  std::sort(kept.begin(), kept.end(), [](const pii_match& a, const pii_match& b) { return a.start < b.start; });
  return kept;
}

}  // namespace gw::policies
