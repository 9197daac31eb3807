#pragma once
// Shared, thread-safe health of one upstream target: circuit breaker and concurrency limit.
// One instance per target name lives for the whole process (it survives config reloads), shared by
// every I/O thread; all members are lock-free atomics.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "providers/target.h"

namespace gw::providers {

class target_health {
 public:
  using clock = std::chrono::steady_clock;

  // Closed breaker, or open but its cooldown is over (then traffic probes the target again).
  bool breaker_allows(clock::time_point now) const {
    return now.time_since_epoch().count() >= open_until_.load(std::memory_order_relaxed);
  }
  bool breaker_open(clock::time_point now) const { return !breaker_allows(now); }

  // Concurrency slot; false when the target already runs max_concurrency requests.
  bool try_acquire(int max_concurrency) {
    int cur = in_flight_.fetch_add(1, std::memory_order_relaxed);
    if (max_concurrency > 0 && cur >= max_concurrency) {
      in_flight_.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  }
  void release() { in_flight_.fetch_sub(1, std::memory_order_relaxed); }

  void record_success() { consecutive_failures_.store(0, std::memory_order_relaxed); }
  // Returns true when this failure opened the breaker.
  bool record_failure(const breaker_policy& p, clock::time_point now) {
    int n = consecutive_failures_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (p.failure_threshold > 0 && n >= p.failure_threshold) {
      auto until = (now + p.cooldown).time_since_epoch().count();
      auto prev = open_until_.exchange(until, std::memory_order_relaxed);
      consecutive_failures_.store(0, std::memory_order_relaxed);
      if (prev < now.time_since_epoch().count()) {
        trips_.fetch_add(1, std::memory_order_relaxed);
        return true;
      }
    }
    return false;
  }

  int in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  int consecutive_failures() const { return consecutive_failures_.load(std::memory_order_relaxed); }
  std::uint64_t trips() const { return trips_.load(std::memory_order_relaxed); }
  // Milliseconds until the breaker closes (0 when closed).
  std::int64_t cooldown_left_ms(clock::time_point now) const {
    auto left = open_until_.load(std::memory_order_relaxed) - now.time_since_epoch().count();
    if (left <= 0) return 0;
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock::duration(left)).count() + 1;
  }

 private:
  std::atomic<int> in_flight_{0};
  std::atomic<int> consecutive_failures_{0};
  std::atomic<clock::rep> open_until_{0};
  std::atomic<std::uint64_t> trips_{0};
};

// Health objects by target name, created on first use and never destroyed while the registry
// lives, so pointers stay valid across reloads. Thread-safe.
class health_registry {
 public:
  std::shared_ptr<target_health> get(const std::string& target) {
    std::lock_guard lock(mu_);
    auto& h = by_name_[target];
    if (!h) h = std::make_shared<target_health>();
    return h;
  }
  std::map<std::string, std::shared_ptr<target_health>> snapshot() const {
    std::lock_guard lock(mu_);
    return by_name_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<target_health>> by_name_;
};

}  // namespace gw::providers
