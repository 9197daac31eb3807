// Integration: real traffic through the server lands in a real RocksDB ledger, exactly.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "ledger/ledger.h"
#include "tests/support/gateway_harness.h"
#include "tests/support/test_client.h"

using namespace gw::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {
struct temp_ledger {
  fs::path dir = fs::temp_directory_path() / ("tollgate-gw-ledger-" + std::to_string(::getpid()) + "-" +
                                              std::to_string(std::random_device{}()));
  std::unique_ptr<gw::ledger::ledger> l;
  temp_ledger() {
    gw::ledger::status st;
    l = gw::ledger::ledger::open(dir.string(), {}, &st);
    if (!l) throw std::runtime_error(st.message);
  }
  ~temp_ledger() {
    l.reset();
    fs::remove_all(dir);
  }
};

const std::string priced =
    "    prices: {input_per_mtok: 0.15, output_per_mtok: 0.60, cached_input_per_mtok: 0.075}\n";
const std::string chat = R"({"model":"gpt-test","messages":[{"role":"user","content":"hi"}]})";
}  // namespace

TEST(ledger_integration, entry_is_durable_before_the_client_sees_the_response_and_priced_exactly) {
  fake_upstream up;
  temp_ledger tl;
  gateway_harness gw(basic_config(up, nullptr, priced), "test.yaml", tl.l.get());
  auto r = http_request(gw.port(), "/v1/chat/completions", chat, {.headers = {{"x-request-id", "cli-1"}}});
  ASSERT_EQ(r.status, 200);
  // No flush: the promise is that the entry was written before the last byte was sent.
  gw::ledger::request_record e;
  ASSERT_TRUE(tl.l->get(r.header("x-request-id"), &e).ok());
  EXPECT_EQ(e.client_request_id, "cli-1");
  EXPECT_EQ(e.status, 200);
  EXPECT_EQ(e.target, "primary");
  EXPECT_EQ(e.upstream_model, "upstream-model-a");
  EXPECT_EQ(e.prompt_tokens, 11);
  EXPECT_EQ(e.cached_prompt_tokens, 3);
  EXPECT_EQ(e.completion_tokens, 5);
  EXPECT_TRUE(e.priced);
  // 8 uncached × 150000 + 3 cached × 75000 + 5 × 600000 p$
  EXPECT_EQ(e.cost_pusd, 8 * 150000 + 3 * 75000 + 5 * 600000);
  EXPECT_EQ(e.reason, "alias gpt-test -> primary");
}

TEST(ledger_integration, streams_errors_and_unpriced_targets_are_recorded) {
  fake_upstream up;
  temp_ledger tl;
  gateway_harness gw(basic_config(up), "test.yaml", tl.l.get());  // no prices
  up.push({.kind = behaviour::stream, .chunks = 4});
  auto s = http_request(gw.port(), "/v1/chat/completions",
                        R"({"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"x"}]})");
  ASSERT_EQ(s.status, 200);
  gw::ledger::request_record e;
  ASSERT_TRUE(tl.l->get(s.header("x-request-id"), &e).ok());
  EXPECT_TRUE(e.stream);
  EXPECT_EQ(e.completion_tokens, 4);
  EXPECT_FALSE(e.priced);  // counted as unpriced, never as $0
  EXPECT_GE(e.ttft.count(), 0);

  up.push({.kind = behaviour::status, .status = 500});
  up.push({.kind = behaviour::status, .status = 500});
  auto f = http_request(gw.port(), "/v1/chat/completions", chat);
  EXPECT_EQ(f.status, 500);
  ASSERT_TRUE(tl.l->get(f.header("x-request-id"), &e).ok());
  EXPECT_EQ(e.status, 500);
  EXPECT_EQ(e.attempts, 2);

  auto nf = http_request(gw.port(), "/v1/chat/completions", R"({"model":"nope","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(nf.status, 404);
  ASSERT_TRUE(tl.l->get(nf.header("x-request-id"), &e).ok());
  EXPECT_EQ(e.error_code, "model_not_found");
  EXPECT_TRUE(e.priced);
  EXPECT_EQ(e.cost_pusd, 0);

  // Health checks are not model requests: not in the ledger.
  auto h = http_request(gw.port(), "/healthz", "", {.method = "GET"});
  EXPECT_EQ(tl.l->get(h.header("x-request-id"), &e).c, gw::ledger::status::code::not_found);

  std::vector<gw::ledger::daily_row> rows;
  auto today = gw::ledger::to_day(std::chrono::system_clock::now(), 0);
  ASSERT_TRUE(tl.l->daily(today - 1, today + 1, gw::ledger::dimension::total, &rows).ok());
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].c.requests, 3u);
  EXPECT_EQ(rows[0].c.failed, 2u);
  // Only the stream used tokens on the unpriced target; the 500 used none, so it cost $0 exactly.
  EXPECT_EQ(rows[0].c.unpriced_requests, 1u);
}

TEST(ledger_integration, stream_cut_off_by_the_client_is_billed_for_what_was_generated) {
  fake_upstream up;
  up.set_default({.kind = behaviour::stream, .chunks = 200, .chunk_delay = std::chrono::milliseconds(20)});
  temp_ledger tl;
  gateway_harness gw(basic_config(up, nullptr, priced), "test.yaml", tl.l.get());
  std::string id;
  {
    test_connection c(gw.port());
    auto partial = c.request_partial("/v1/chat/completions",
                                     R"({"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"x"}]})", 300);
    id = partial.header("x-request-id");
    c.close();
  }
  ASSERT_TRUE(wait_until([&] {
    gw::ledger::request_record e;
    return tl.l->get(id, &e).ok();
  }));
  gw::ledger::request_record e;
  ASSERT_TRUE(tl.l->get(id, &e).ok());
  EXPECT_EQ(e.status, 499);
  EXPECT_TRUE(e.client_disconnected);
  EXPECT_GT(e.completion_tokens, 0);
  EXPECT_TRUE(e.usage_estimated);
  EXPECT_GT(e.cost_pusd, 0);
}

TEST(ledger_integration, daily_report_over_http_matches_the_traffic) {
  fake_upstream up;
  temp_ledger tl;
  gateway_harness gw(basic_config(up, nullptr, priced), "test.yaml", tl.l.get());
  for (int i = 0; i < 3; ++i) ASSERT_EQ(http_request(gw.port(), "/v1/chat/completions", chat).status, 200);
  auto r = http_request(gw.port(), "/v1/reports/daily?by=target", "", {.method = "GET"});
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = json::parse(r.body);
  ASSERT_EQ(j["rows"].size(), 1u);
  EXPECT_EQ(j["rows"][0]["group"], "primary");
  EXPECT_EQ(j["rows"][0]["requests"], 3);
  EXPECT_EQ(j["totals"]["prompt_tokens"], 33);
  EXPECT_EQ(j["totals"]["cost_pusd"], std::to_string(3 * (8 * 150000 + 3 * 75000 + 5 * 600000)));
  auto csv = http_request(gw.port(), "/v1/reports/daily?by=target&format=csv", "", {.method = "GET"});
  EXPECT_NE(csv.header("content-type").find("text/csv"), std::string::npos);
  EXPECT_EQ(http_request(gw.port(), "/v1/reports/daily?by=nope", "", {.method = "GET"}).status, 400);
}

TEST(ledger_integration, admin_backup_writes_a_consistent_copy_under_the_data_dir) {
  fake_upstream up;
  temp_ledger tl;
  auto data = tl.dir.parent_path() / (tl.dir.filename().string() + "-data");
  gateway_harness gw(basic_config(up, nullptr, priced, "  data_dir: " + data.string() + "\n"), "test.yaml", tl.l.get());
  auto done = http_request(gw.port(), "/v1/chat/completions", chat);
  ASSERT_EQ(done.status, 200);
  auto r = http_request(gw.port(), "/admin/backup", "", {.method = "POST"});
  ASSERT_EQ(r.status, 200) << r.body;
  auto dir = json::parse(r.body)["dir"].get<std::string>();
  EXPECT_EQ(dir.rfind(data.string(), 0), 0u);  // under <data_dir>/backups
  {
    gw::ledger::status st;
    auto copy = gw::ledger::ledger::open(dir, {}, &st);
    ASSERT_TRUE(copy) << st.message;
    gw::ledger::request_record e;
    EXPECT_TRUE(copy->get(done.header("x-request-id"), &e).ok());
  }
  fs::remove_all(data);
}

TEST(ledger_integration, breakeven_over_http_is_wired_and_explains_a_missing_self_hosted_target) {
  fake_upstream up;
  temp_ledger tl;
  gateway_harness gw(basic_config(up, nullptr, priced), "test.yaml", tl.l.get());
  auto r = http_request(gw.port(), "/v1/reports/breakeven", "", {.method = "GET"});
  EXPECT_EQ(r.status, 400) << r.body;
  auto j = json::parse(r.body);
  EXPECT_NE(j["error"]["message"].get<std::string>().find("self_hosted"), std::string::npos) << r.body;
}
