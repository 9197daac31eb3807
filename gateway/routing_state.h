#pragma once
// Serve's routing memory, shared by all I/O threads: the conversations that carried private data
// (sticky privacy) and the window of recent complexity scores (adaptive calibration). Both are
// bounded, thread-safe, and hold no request content: conversation ids (scoped by client key) and
// scores only.
#include <chrono>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace gw::gateway {

class conversation_store {
 public:
  using clock = std::chrono::steady_clock;
  // Marks (key, conversation) private until now + ttl; the oldest entries go when `max` is reached.
  void mark_private(const std::string& key, const std::string& conversation, clock::time_point now,
                    std::chrono::seconds ttl, std::size_t max);
  bool is_private(const std::string& key, const std::string& conversation, clock::time_point now);
  std::size_t size() const;

 private:
  static std::string id(const std::string& key, const std::string& conversation);
  mutable std::mutex mu_;
  std::unordered_map<std::string, clock::time_point> expiry_;
  std::deque<std::pair<std::string, clock::time_point>> order_;  // insertion order, for eviction
};

class adaptive_calibrator {
 public:
  // Adds a score; returns the threshold that sends `strong_share` of the last `window` scores to
  // the strong tier once at least `min_samples` were seen (nullopt before: the shipped calibration
  // decides). Recomputed at most every 32 scores.
  std::optional<double> observe(double score, double strong_share, std::size_t window, std::size_t min_samples);
  std::optional<double> current() const;

 private:
  mutable std::mutex mu_;
  std::deque<double> recent_;
  std::size_t since_update_ = 0;
  std::optional<double> threshold_;
};

}  // namespace gw::gateway
