#include "policies/custom_detect.h"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>

namespace gw::policies {

struct custom_detectors::impl {
  struct compiled {
    std::string type;
    std::unique_ptr<re2::RE2> re;
  };
  std::vector<compiled> patterns;
  std::vector<custom_keywords> keywords;
};

custom_detectors::custom_detectors() : impl_(std::make_unique<impl>()) {}
custom_detectors::~custom_detectors() = default;

std::unique_ptr<custom_detectors> custom_detectors::build(std::vector<custom_pattern> patterns,
                                                          std::vector<custom_keywords> keywords,
                                                          std::string* error) {
  std::unique_ptr<custom_detectors> d(new custom_detectors());
  for (auto& p : patterns) {
    re2::RE2::Options opt;
    opt.set_log_errors(false);
    opt.set_max_mem(8 << 20);
    auto re = std::make_unique<re2::RE2>(p.regex, opt);
    if (!re->ok()) {
      if (error) *error = "pattern " + p.type + ": " + re->error();
      return nullptr;
    }
    if (re->pattern().empty() || re2::RE2::FullMatch("", *re)) {
      if (error) *error = "pattern " + p.type + ": matches the empty string";
      return nullptr;
    }
    d->impl_->patterns.push_back({std::move(p.type), std::move(re)});
  }
  for (auto& k : keywords) {
    k.words.erase(std::remove(k.words.begin(), k.words.end(), std::string()), k.words.end());
    if (!k.case_sensitive)
      for (auto& w : k.words)
        for (auto& c : w) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    d->impl_->keywords.push_back(std::move(k));
  }
  return d;
}

bool custom_detectors::empty() const { return impl_->patterns.empty() && impl_->keywords.empty(); }

namespace {

bool word_byte(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }

}  // namespace

std::vector<custom_match> custom_detectors::scan(std::string_view text) const {
  std::vector<custom_match> out;
  for (const auto& p : impl_->patterns) {
    re2::StringPiece input(text.data(), text.size());
    re2::StringPiece m;
    std::size_t pos = 0;
    while (pos <= text.size() &&
           p.re->Match(input, pos, text.size(), re2::RE2::UNANCHORED, &m, 1)) {
      std::size_t s = static_cast<std::size_t>(m.data() - text.data());
      std::size_t e = s + m.size();
      if (e > s) out.push_back({p.type, s, e});
      pos = e > s ? e : s + 1;
    }
  }
  if (!impl_->keywords.empty()) {
    std::string lower;
    for (const auto& k : impl_->keywords) {
      std::string_view hay = text;
      if (!k.case_sensitive) {
        if (lower.empty() && !text.empty()) {
          lower.assign(text);
          for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        hay = lower;
      }
      for (const auto& w : k.words) {
        for (std::size_t at = hay.find(w); at != std::string_view::npos; at = hay.find(w, at + 1)) {
          std::size_t end = at + w.size();
          bool left_ok = at == 0 || !word_byte(static_cast<unsigned char>(hay[at - 1])) ||
                         !word_byte(static_cast<unsigned char>(w.front()));
          bool right_ok = end == hay.size() || !word_byte(static_cast<unsigned char>(hay[end])) ||
                          !word_byte(static_cast<unsigned char>(w.back()));
          if (left_ok && right_ok) out.push_back({k.type, at, end});
        }
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const custom_match& a, const custom_match& b) {
    return a.start != b.start ? a.start < b.start : a.end > b.end;
  });
  return out;
}

}  // namespace gw::policies
