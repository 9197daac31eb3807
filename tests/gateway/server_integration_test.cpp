// Integration: the server's own behaviour (auth, limits, errors, ids, reload, shutdown, TLS).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "gateway/auth.h"
#include "tests/support/gateway_harness.h"
#include "tests/support/test_client.h"

using namespace gw::test;
using nlohmann::json;

namespace {
const std::string chat_body = R"({"model":"gpt-test","messages":[{"role":"user","content":"hi"}]})";

const std::string keys_auth =
    "auth:\n  keys:\n"
    "    - {name: app, team: search, key: sk-app-12345678}\n"
    "    - {name: ops, key_sha256: " + gw::gateway::sha256_hex("sk-admin-12345678") + ", admin: true}\n";

void expect_openai_error(const http_reply& r, int status, const std::string& type) {
  EXPECT_EQ(r.status, status) << r.body;
  auto j = json::parse(r.body, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.body;
  ASSERT_TRUE(j.contains("error")) << r.body;
  const auto& e = j["error"];
  EXPECT_TRUE(e["message"].is_string());
  EXPECT_EQ(e["type"], type) << r.body;
  EXPECT_TRUE(e.contains("param"));
  EXPECT_TRUE(e.contains("code"));
  EXPECT_NE(r.header("content-type").find("application/json"), std::string::npos);
}

std::filesystem::path temp_dir() {
  auto p = std::filesystem::temp_directory_path() /
           ("tollgate-test-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand()));
  std::filesystem::create_directories(p);
  return p;
}
}  // namespace

TEST(server, auth_rejects_missing_and_wrong_keys_and_accepts_valid_ones) {
  fake_upstream up;
  gateway_harness gw(basic_config(up, nullptr, "", "", keys_auth));
  expect_openai_error(http_request(gw.port(), "/v1/chat/completions", chat_body), 401, "authentication_error");
  expect_openai_error(http_request(gw.port(), "/v1/chat/completions", chat_body,
                                   {.headers = {{"authorization", "Bearer sk-wrong-1234"}}}),
                      401, "authentication_error");
  expect_openai_error(http_request(gw.port(), "/v1/chat/completions", chat_body,
                                   {.headers = {{"authorization", "Basic abc"}}}),
                      401, "authentication_error");
  auto ok = http_request(gw.port(), "/v1/chat/completions", chat_body,
                         {.headers = {{"authorization", "Bearer sk-app-12345678"}}});
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(up.requests_count(), 1);  // rejected requests never reached the upstream
  auto recs = gw.wait_records(4);
  EXPECT_EQ(recs.back().key_name, "app");
  EXPECT_EQ(recs.back().team, "search");
  // The client's key is never forwarded upstream.
  EXPECT_EQ(up.requests()[0].headers.count("authorization"), 0u);
}

TEST(server, admin_endpoints_need_an_admin_key) {
  fake_upstream up;
  gateway_harness gw(basic_config(up, nullptr, "", "", keys_auth));
  auto r = http_request(gw.port(), "/admin/reload", "", {.headers = {{"authorization", "Bearer sk-app-12345678"}}});
  expect_openai_error(r, 403, "permission_error");
  auto r2 = http_request(gw.port(), "/admin/reload", "", {.headers = {{"authorization", "Bearer nope-nope-nope"}}});
  expect_openai_error(r2, 401, "authentication_error");
}

TEST(server, upstream_gets_the_target_key_not_the_client_key) {
  fake_upstream up;
  ::setenv("TOLLGATE_TEST_UPSTREAM_KEY", "sk-upstream-secret", 1);
  gateway_harness gw(basic_config(up, nullptr, "    api_key_env: TOLLGATE_TEST_UPSTREAM_KEY\n", "", keys_auth));
  auto ok = http_request(gw.port(), "/v1/chat/completions", chat_body,
                         {.headers = {{"authorization", "Bearer sk-app-12345678"}}});
  ASSERT_EQ(ok.status, 200);
  EXPECT_EQ(up.requests()[0].headers["authorization"], "Bearer sk-upstream-secret");
}

TEST(server, request_validation_errors_use_openai_shape) {
  fake_upstream up;
  gateway_harness gw(basic_config(up));
  expect_openai_error(http_request(gw.port(), "/v1/chat/completions", "{not json"), 400, "invalid_request_error");
  expect_openai_error(http_request(gw.port(), "/v1/chat/completions", "[1,2]"), 400, "invalid_request_error");
  auto no_model = http_request(gw.port(), "/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}]})");
  expect_openai_error(no_model, 400, "invalid_request_error");
  EXPECT_EQ(json::parse(no_model.body)["error"]["param"], "model");
  auto no_msgs = http_request(gw.port(), "/v1/chat/completions", R"({"model":"gpt-test"})");
  EXPECT_EQ(json::parse(no_msgs.body)["error"]["param"], "messages");
  auto bad_msg = http_request(gw.port(), "/v1/chat/completions", R"({"model":"gpt-test","messages":[{"content":"x"}]})");
  expect_openai_error(bad_msg, 400, "invalid_request_error");
  auto bad_stream = http_request(gw.port(), "/v1/chat/completions",
                                 R"({"model":"gpt-test","stream":"yes","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(json::parse(bad_stream.body)["error"]["param"], "stream");
  auto unknown_model = http_request(gw.port(), "/v1/chat/completions",
                                    R"({"model":"nope","messages":[{"role":"user","content":"x"}]})");
  expect_openai_error(unknown_model, 404, "invalid_request_error");
  EXPECT_EQ(json::parse(unknown_model.body)["error"]["code"], "model_not_found");
  expect_openai_error(http_request(gw.port(), "/v1/unknown", "{}"), 404, "invalid_request_error");
  expect_openai_error(http_request(gw.port(), "/v1/chat/completions", "", {.method = "GET"}), 405,
                      "invalid_request_error");
  EXPECT_EQ(up.requests_count(), 0);
}

TEST(server, body_limit_gives_413_and_header_limit_431) {
  fake_upstream up;
  gateway_harness gw(basic_config(up, nullptr, "", "  limits: {max_body_bytes: 1024, max_header_bytes: 2048}\n"));
  std::string big = R"({"model":"gpt-test","messages":[{"role":"user","content":")" + std::string(4000, 'a') + "\"}]}";
  expect_openai_error(http_request(gw.port(), "/v1/chat/completions", big), 413, "invalid_request_error");
  // Chunked upload without content-length: the limit holds while reading.
  {
    test_connection c(gw.port());
    std::string chunked = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 4; ++i) chunked += "400\r\n" + std::string(1024, 'b') + "\r\n";
    chunked += "0\r\n\r\n";
    c.send_raw(chunked);
    expect_openai_error(c.read_reply(), 413, "invalid_request_error");
  }
  expect_openai_error(http_request(gw.port(), "/v1/chat/completions", chat_body,
                                   {.headers = {{"x-big", std::string(4096, 'h')}}}),
                      431, "invalid_request_error");
  // The server is still fine afterwards.
  EXPECT_EQ(http_request(gw.port(), "/v1/chat/completions", chat_body).status, 200);
  EXPECT_EQ(up.requests_count(), 1);
}

TEST(server, malformed_http_gets_400_and_never_crashes) {
  fake_upstream up;
  gateway_harness gw(basic_config(up));
  for (const std::string& junk : std::vector<std::string>{"GARBAGE\r\n\r\n", "POST / HTTP/9.9\r\n\r\n",
                           "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                           std::string("\x00\x01\x02\r\n\r\n", 7)}) {
    test_connection c(gw.port());
    c.send_raw(junk);
    try {
      auto r = c.read_reply(std::chrono::milliseconds(3000));
      EXPECT_EQ(r.status, 400) << junk;
    } catch (const std::exception&) {
      // Closing the connection is also an acceptable answer to garbage.
    }
  }
  EXPECT_EQ(http_request(gw.port(), "/healthz", "", {.method = "GET"}).status, 200);
}

TEST(server, slow_clients_hit_the_read_timeout) {
  fake_upstream up;
  gateway_harness gw(basic_config(up, nullptr, "", "  limits: {read_timeout_ms: 200, idle_timeout_ms: 200}\n"));
  test_connection c(gw.port());
  c.send_raw("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"mo");
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_ANY_THROW(c.read_reply(std::chrono::milliseconds(3000)));  // server closed it
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2500));
}

TEST(server, keep_alive_and_unique_request_ids) {
  fake_upstream up;
  gateway_harness gw(basic_config(up));
  test_connection c(gw.port());
  std::set<std::string> ids;
  for (int i = 0; i < 50; ++i) {
    auto r = c.request("/v1/chat/completions", chat_body, {.headers = {{"x-request-id", "same-client-id"}}});
    ASSERT_EQ(r.status, 200);
    ids.insert(r.header("x-request-id"));
    EXPECT_EQ(r.header("x-client-request-id"), "same-client-id");
  }
  EXPECT_EQ(ids.size(), 50u);  // the client's id is not trusted to be unique; ours are
  EXPECT_EQ(up.open_connections(), 1);  // upstream connection reused
}

TEST(server, healthz_metrics_and_models) {
  fake_upstream up;
  gateway_harness gw(basic_config(up));
  http_request(gw.port(), "/v1/chat/completions", chat_body);
  auto h = http_request(gw.port(), "/healthz", "", {.method = "GET"});
  EXPECT_EQ(h.status, 200);
  // A request is counted once its response has been written, which the client can see first on a
  // loaded machine: scrape until it shows (bounded), as Prometheus would on its next scrape.
  const std::string counted =
      "tollgate_requests_total{endpoint=\"/v1/chat/completions\",route=\"gpt-test\",target=\"primary\",status=\"200\"} 1";
  auto m = http_request(gw.port(), "/metrics", "", {.method = "GET"});
  for (int i = 0; i < 200 && m.body.find(counted) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    m = http_request(gw.port(), "/metrics", "", {.method = "GET"});
  }
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.header("content-type").find("text/plain"), std::string::npos);
  for (std::string needle :
       {"tollgate_requests_total{endpoint=\"/v1/chat/completions\",route=\"gpt-test\",target=\"primary\",status=\"200\"} 1",
        "tollgate_request_duration_seconds_bucket{", "tollgate_gateway_overhead_seconds_count{endpoint=\"/v1/chat/completions\"} 1",
        "tollgate_tokens_total{target=\"primary\",kind=\"prompt\"} 11",
        "tollgate_tokens_total{target=\"primary\",kind=\"completion\"} 5", "tollgate_active_requests 1",
        "# TYPE tollgate_time_to_first_token_seconds histogram"})
    EXPECT_NE(m.body.find(needle), std::string::npos) << needle << "\n" << m.body;
}

TEST(server, reload_swaps_config_and_keeps_it_when_invalid) {
  fake_upstream up;
  auto dir = temp_dir();
  auto file = dir / "tollgate.yaml";
  std::string yaml = basic_config(up, nullptr, "", "", keys_auth);
  { std::ofstream(file) << yaml; }
  auto loaded = gw::gateway::load_config_file(file.string());
  gw::gateway::server srv(loaded.cfg);
  srv.start();
  auto port = srv.ports().at(0);
  const request_options admin{.headers = {{"authorization", "Bearer sk-admin-12345678"}}};
  auto before = http_request(port, "/v1/chat/completions",
                             R"({"model":"new-alias","messages":[{"role":"user","content":"x"}]})", admin);
  EXPECT_EQ(before.status, 404);
  // Add an alias and reload through the admin endpoint.
  { std::ofstream(file) << yaml << "  new-alias: [primary]\n"; }
  auto rr = http_request(port, "/admin/reload", "", admin);
  EXPECT_EQ(rr.status, 200) << rr.body;
  auto after = http_request(port, "/v1/chat/completions",
                            R"({"model":"new-alias","messages":[{"role":"user","content":"x"}]})", admin);
  EXPECT_EQ(after.status, 200) << after.body;
  // An invalid file is rejected with file and line; the running config stays.
  { std::ofstream(file) << yaml << "  broken: [no-such-target]\n"; }
  auto bad = http_request(port, "/admin/reload", "", admin);
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(json::parse(bad.body)["error"]["message"].get<std::string>().find("tollgate.yaml:"), std::string::npos)
      << bad.body;
  std::string err;
  EXPECT_FALSE(srv.reload(&err));
  EXPECT_NE(err.find("no-such-target"), std::string::npos) << err;
  EXPECT_EQ(http_request(port, "/v1/chat/completions",
                         R"({"model":"new-alias","messages":[{"role":"user","content":"x"}]})", admin).status,
            200);
  srv.shutdown(std::chrono::milliseconds(0));
  std::filesystem::remove_all(dir);
}

TEST(server, graceful_shutdown_lets_streams_finish_and_refuses_new_connections) {
  fake_upstream up;
  up.set_default({.kind = behaviour::stream, .chunks = 5, .chunk_delay = std::chrono::milliseconds(100)});
  auto h = std::make_unique<gateway_harness>(basic_config(up));
  auto port = h->port();
  auto result = std::async(std::launch::async, [&] {
    return http_request(port, "/v1/chat/completions",
                        R"({"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"x"}]})");
  });
  ASSERT_TRUE(wait_until([&] { return up.requests_count() == 1; }));
  auto t0 = std::chrono::steady_clock::now();
  h->server().shutdown(std::chrono::seconds(10));
  auto took = std::chrono::steady_clock::now() - t0;
  auto r = result.get();
  EXPECT_EQ(r.status, 200);
  auto events = sse_data(r.body);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back(), "[DONE]");  // the in-flight stream completed
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_ANY_THROW(http_request(port, "/healthz", "", {.method = "GET"}));
}

TEST(server, shutdown_cancels_requests_past_the_grace_period) {
  fake_upstream up;
  up.set_default({.kind = behaviour::hang});
  auto h = std::make_unique<gateway_harness>(basic_config(up));
  auto port = h->port();
  auto result = std::async(std::launch::async, [&]() -> int {
    try {
      return http_request(port, "/v1/chat/completions", chat_body).status;
    } catch (...) {
      return -1;  // connection closed without a response
    }
  });
  ASSERT_TRUE(wait_until([&] { return up.requests_count() == 1; }));
  auto t0 = std::chrono::steady_clock::now();
  h->server().shutdown(std::chrono::milliseconds(300));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_EQ(result.get(), -1);
  EXPECT_TRUE(wait_until([&] { return up.cancelled_streams() == 1; }));
  EXPECT_EQ(h->records().size(), 1u);
  EXPECT_EQ(h->records().at(0).status, 499);
}

TEST(server, max_connections_answers_503_with_retry_after) {
  fake_upstream up;
  gateway_harness gw(basic_config(up, nullptr, "", "  limits: {max_connections: 2}\n"));
  test_connection a(gw.port()), b(gw.port());
  ASSERT_EQ(a.request("/healthz", "", {.method = "GET"}).status, 200);
  ASSERT_EQ(b.request("/healthz", "", {.method = "GET"}).status, 200);
  auto r = http_request(gw.port(), "/v1/chat/completions", chat_body);
  expect_openai_error(r, 503, "service_unavailable");
  EXPECT_EQ(r.header("retry-after"), "1");
}

TEST(server, tls_listener_serves_https) {
  auto dir = temp_dir();
  auto cert = dir / "cert.pem", key = dir / "key.pem";
  std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -days 1 -keyout " +
                    key.string() + " -out " + cert.string() + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl must be installed";
  fake_upstream up;
  std::string yaml = basic_config(up);
  auto pos = yaml.find("  listen: \"127.0.0.1:0\"\n");
  yaml.replace(pos, std::string("  listen: \"127.0.0.1:0\"\n").size(),
               "  listen:\n    - {address: 127.0.0.1, port: 0, tls: {cert_file: " + cert.string() +
                   ", key_file: " + key.string() + "}}\n");
  gateway_harness gw(yaml);
  std::string out_file = (dir / "out.json").string();
  std::string curl = "curl -sk --max-time 10 -o " + out_file + " -w '%{http_code}' https://127.0.0.1:" +
                     std::to_string(gw.port()) + "/v1/chat/completions -H 'content-type: application/json' -d '" +
                     chat_body + "'";
  FILE* p = ::popen(curl.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[16] = {};
  std::fgets(buf, sizeof buf, p);
  ::pclose(p);
  EXPECT_STREQ(buf, "200");
  std::ifstream in(out_file);
  std::string body((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(json::parse(body)["choices"][0]["message"]["content"], "Hello from fake upstream");
  // Plain HTTP on the TLS port does not work.
  EXPECT_ANY_THROW(http_request(gw.port(), "/healthz", "", {.method = "GET", .timeout = std::chrono::milliseconds(2000)}));
  std::filesystem::remove_all(dir);
}
