// Integration: private data never reaches an external target.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/gateway_harness.h"
#include "tests/support/test_client.h"

using namespace gw::test;
using nlohmann::json;

namespace {
std::string two_targets(const fake_upstream& ext, const fake_upstream& mine, bool with_trusted = true) {
  std::string y = "server: {listen: \"127.0.0.1:0\", io_threads: 1, access_log: false, log_level: error}\nauth: none\n"
                  "targets:\n  ext:\n    base_url: " + ext.base_url() + "\n";
  if (with_trusted) y += "  mine:\n    base_url: " + mine.base_url() + "\n    trust: trusted\n";
  y += std::string("models:\n  m: [ext") + (with_trusted ? ", mine" : "") + "]\n";
  return y;
}
std::string chat(const std::string& text) {
  return json{{"model", "m"}, {"messages", {{{"role", "user"}, {"content", text}}}}}.dump();
}
}  // namespace

TEST(privacy_routing, a_card_number_never_reaches_an_external_target) {
  fake_upstream ext, mine;
  gateway_harness gw(two_targets(ext, mine));
  auto plain = http_request(gw.port(), "/v1/chat/completions", chat("What is the capital of France?"));
  ASSERT_EQ(plain.status, 200);
  EXPECT_EQ(plain.header("x-tollgate-target"), "ext");  // the preferred target when nothing is private
  auto card = http_request(gw.port(), "/v1/chat/completions", chat("Charge my card 4111 1111 1111 1111 please"));
  ASSERT_EQ(card.status, 200) << card.body;
  EXPECT_EQ(card.header("x-tollgate-target"), "mine");
  EXPECT_NE(card.header("x-tollgate-reason").find("CREDIT_CARD"), std::string::npos);
  EXPECT_EQ(card.header("x-tollgate-reason").find("4111"), std::string::npos);  // types only, never values
  EXPECT_EQ(ext.requests_count(), 1);
  for (const auto& r : ext.requests()) EXPECT_EQ(r.body.find("4111"), std::string::npos);
  // The client can also ask for it.
  auto strict = http_request(gw.port(), "/v1/chat/completions", chat("hello"), {.headers = {{"x-tollgate-privacy", "strict"}}});
  EXPECT_EQ(strict.header("x-tollgate-target"), "mine");
  EXPECT_EQ(ext.requests_count(), 1);
}

TEST(privacy_routing, blocked_with_a_clear_400_when_no_target_may_receive_it) {
  fake_upstream ext, unused;
  gateway_harness gw(two_targets(ext, unused, /*with_trusted=*/false));
  auto r = http_request(gw.port(), "/v1/chat/completions", chat("my SSN is 123-45-6789"));
  EXPECT_EQ(r.status, 400);
  auto e = json::parse(r.body)["error"];
  EXPECT_EQ(e["code"], "privacy_blocked");
  EXPECT_NE(e["message"].get<std::string>().find("US_SSN"), std::string::npos);
  EXPECT_EQ(e["message"].get<std::string>().find("123-45"), std::string::npos);
  EXPECT_EQ(ext.requests_count(), 0);
}
