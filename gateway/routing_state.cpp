#include "gateway/routing_state.h"

#include "policies/complexity.h"

namespace gw::gateway {

std::string conversation_store::id(const std::string& key, const std::string& conversation) {
  return key + '\x1f' + conversation;
}

void conversation_store::mark_private(const std::string& key, const std::string& conversation,
                                      clock::time_point now, std::chrono::seconds ttl, std::size_t max) {
  std::lock_guard lock(mu_);
  std::string k = id(key, conversation);
  expiry_[k] = now + ttl;
  order_.emplace_back(std::move(k), now + ttl);
  // Drop expired or superseded entries from the front, and the oldest while over the bound.
  while (!order_.empty()) {
    auto& [front, exp] = order_.front();
    auto it = expiry_.find(front);
    bool stale = it == expiry_.end() || it->second != exp;  // re-marked later
    if (stale) {
      order_.pop_front();
      continue;
    }
    if (exp <= now || expiry_.size() > max) {
      expiry_.erase(it);
      order_.pop_front();
      continue;
    }
    break;
  }
}

bool conversation_store::is_private(const std::string& key, const std::string& conversation, clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = expiry_.find(id(key, conversation));
  if (it == expiry_.end()) return false;
  if (it->second <= now) {
    expiry_.erase(it);
    return false;
  }
  return true;
}

std::size_t conversation_store::size() const {
  std::lock_guard lock(mu_);
  return expiry_.size();
}

std::optional<double> adaptive_calibrator::observe(double score, double strong_share, std::size_t window,
                                                   std::size_t min_samples) {
  std::lock_guard lock(mu_);
  recent_.push_back(score);
  while (recent_.size() > window) recent_.pop_front();
  if (recent_.size() >= min_samples && (!threshold_ || ++since_update_ >= 32)) {
    threshold_ = policies::threshold_for_share(std::vector<double>(recent_.begin(), recent_.end()), strong_share);
    since_update_ = 0;
  }
  return threshold_;
}

std::optional<double> adaptive_calibrator::current() const {
  std::lock_guard lock(mu_);
  return threshold_;
}

}  // namespace gw::gateway
