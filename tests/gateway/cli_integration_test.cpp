// Integration: the `tollgate` binary itself (subcommands, exit codes, signals).
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/support/fake_upstream.h"
#include "tests/support/process.h"
#include "tests/support/test_client.h"
#include "tests/support/test_env.h"

using namespace gw::test;
namespace fs = std::filesystem;

namespace {

// Runs the binary with args; stdout/stderr go to files in dir. Returns the pid.
pid_t spawn(const std::vector<std::string>& args, const fs::path& dir) {
  return spawn_process(TOLLGATE_BIN, args, dir / "stdout", dir / "stderr");
}

}  // namespace

TEST(cli, check_config_accepts_valid_and_names_file_line_key_on_errors) {
  temp_dir d("cli");
  auto good = d.path / "good.yaml";
  std::ofstream(good) << "auth: none\ntargets:\n  t:\n    base_url: http://127.0.0.1:9/v1\nmodels:\n  m: [t]\n";
  EXPECT_EQ(wait_exit(spawn({"check-config", good.string()}, d.path)), 0);
  EXPECT_NE(read_file(d.path / "stdout").find("ok (1 targets, 1 enabled; 1 model aliases)"), std::string::npos);

  auto bad = d.path / "bad.yaml";
  std::ofstream(bad) << "auth: none\ntargets:\n  t:\n    base_url: http://127.0.0.1:9/v1\n    timeouts: {conect_ms: 5}\n"
                        "models:\n  m: [t]\n";
  EXPECT_EQ(wait_exit(spawn({"check-config", bad.string()}, d.path)), 1);
  auto err = read_file(d.path / "stderr");
  EXPECT_NE(err.find(bad.string() + ":5: targets.t.timeouts.conect_ms"), std::string::npos) << err;
  EXPECT_NE(err.find("did you mean 'connect_ms'"), std::string::npos) << err;

  auto env = d.path / "env.yaml";
  std::ofstream(env) << "auth: none\ntargets:\n  t:\n    base_url: ${TOLLGATE_TEST_SURELY_UNSET_VAR}\nmodels:\n  m: [t]\n";
  EXPECT_EQ(wait_exit(spawn({"check-config", env.string()}, d.path)), 1);
  err = read_file(d.path / "stderr");
  EXPECT_NE(err.find(env.string() + ":4:"), std::string::npos) << err;
  EXPECT_NE(err.find("TOLLGATE_TEST_SURELY_UNSET_VAR"), std::string::npos) << err;

  EXPECT_EQ(wait_exit(spawn({"check-config", (d.path / "missing.yaml").string()}, d.path)), 1);
  EXPECT_NE(read_file(d.path / "stderr").find("missing.yaml"), std::string::npos);
}

TEST(cli, serve_reloads_on_sighup_and_exits_zero_on_sigterm) {
  temp_dir d("cli");
  fake_upstream up;
  auto port = free_port();
  std::string base = "server: {listen: \"127.0.0.1:" + std::to_string(port) + "\", io_threads: 1, data_dir: " +
                     (d.path / "data").string() + "}\nauth: none\n"
                     "targets:\n  t:\n    base_url: " + up.base_url() + "\nmodels:\n  m1: [t]\n";
  auto cfg = d.path / "tollgate.yaml";
  std::ofstream(cfg) << base;
  pid_t pid = spawn({"serve", "--config", cfg.string()}, d.path);
  ASSERT_TRUE(wait_until([&] {
    try {
      return http_request(port, "/healthz", "", {.method = "GET"}).status == 200;
    } catch (...) {
      return false;
    }
  }, std::chrono::seconds(10)));
  const std::string body2 = R"({"model":"m2","messages":[{"role":"user","content":"x"}]})";
  EXPECT_EQ(http_request(port, "/v1/chat/completions", body2).status, 404);
  std::ofstream(cfg) << base << "  m2: [t]\n";
  ::kill(pid, SIGHUP);
  EXPECT_TRUE(wait_until([&] { return http_request(port, "/v1/chat/completions", body2).status == 200; }));
  // A broken file on SIGHUP keeps the running config.
  std::ofstream(cfg) << "this: is: not: yaml\n";
  ::kill(pid, SIGHUP);
  EXPECT_TRUE(wait_until([&] { return read_file(d.path / "stderr").find("reload failed") != std::string::npos; }));
  EXPECT_EQ(http_request(port, "/v1/chat/completions", body2).status, 200);
  ::kill(pid, SIGTERM);
  EXPECT_EQ(wait_exit(pid), 0);
  auto log = read_file(d.path / "stderr");
  EXPECT_NE(log.find("client authentication is off"), std::string::npos) << log;
  EXPECT_NE(log.find("shutdown complete"), std::string::npos) << log;
  EXPECT_TRUE(fs::exists(d.path / "data" / "ledger" / "CURRENT"));  // requests went to the ledger
  // Access log: one JSON line per request on stdout.
  std::istringstream lines(read_file(d.path / "stdout"));
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(j.contains("id") && j.contains("status") && j.contains("latency_ms")) << line;
    ++n;
  }
  EXPECT_GE(n, 4);
}
