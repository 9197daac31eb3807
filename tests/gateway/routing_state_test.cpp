// Serve's routing memory: sticky private conversations (scoped by key, expiring, bounded) and the
// adaptive calibration window.
#include "gateway/routing_state.h"

#include <gtest/gtest.h>

using namespace gw::gateway;
using namespace std::chrono_literals;

TEST(conversation_store, private_conversations_expire_are_scoped_by_key_and_bounded) {
  conversation_store s;
  auto t0 = conversation_store::clock::time_point{} + 1000s;
  s.mark_private("app", "c1", t0, 60s, 100);
  EXPECT_TRUE(s.is_private("app", "c1", t0 + 59s));
  EXPECT_FALSE(s.is_private("other-key", "c1", t0));  // another client's conversation ids are its own
  EXPECT_FALSE(s.is_private("app", "c1", t0 + 61s));
  for (int i = 0; i < 10; ++i) s.mark_private("app", "c" + std::to_string(i), t0, 60s, 5);
  EXPECT_LE(s.size(), 5u);
  EXPECT_TRUE(s.is_private("app", "c9", t0));   // newest kept
  EXPECT_FALSE(s.is_private("app", "c0", t0));  // oldest evicted
}

TEST(adaptive_calibrator, threshold_follows_the_recent_window_once_warm) {
  adaptive_calibrator c;
  for (int i = 0; i < 9; ++i) EXPECT_FALSE(c.observe(i, 0.5, 100, 10));
  auto t = c.observe(9, 0.5, 100, 10);  // scores 0..9: half above 4.5
  ASSERT_TRUE(t);
  EXPECT_DOUBLE_EQ(*t, 4.5);
  // A shift in traffic moves the threshold (recomputed every 32 scores).
  for (int i = 0; i < 200; ++i) c.observe(100 + i % 10, 0.5, 100, 10);
  ASSERT_TRUE(c.current());
  EXPECT_GT(*c.current(), 100);
}
