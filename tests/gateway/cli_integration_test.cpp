// Integration: the `tollgate` binary itself (subcommands, exit codes, signals).
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/support/fake_upstream.h"
#include "tests/support/test_client.h"

extern char** environ;
using namespace gw::test;
namespace fs = std::filesystem;

namespace {

struct temp_dir {
  fs::path path;
  temp_dir() {
    path = fs::temp_directory_path() / ("tollgate-cli-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand()));
    fs::create_directories(path);
  }
  ~temp_dir() { fs::remove_all(path); }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs the binary with args; stdout/stderr go to files in dir. Returns the pid.
pid_t spawn(const std::vector<std::string>& args, const fs::path& dir) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, (dir / "stdout").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, (dir / "stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv;
  std::string bin = TOLLGATE_BIN;
  argv.push_back(bin.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start " + bin);
  return pid;
}

int wait_exit(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

std::uint16_t free_port() {
  // Bind port 0 via a throwaway server socket to find a free port.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace

TEST(cli, check_config_accepts_valid_and_names_file_line_key_on_errors) {
  temp_dir d;
  auto good = d.path / "good.yaml";
  std::ofstream(good) << "auth: none\ntargets:\n  t:\n    base_url: http://127.0.0.1:9/v1\nmodels:\n  m: [t]\n";
  EXPECT_EQ(wait_exit(spawn({"check-config", good.string()}, d.path)), 0);
  EXPECT_NE(slurp(d.path / "stdout").find("ok (1 targets, 1 enabled; 1 model aliases)"), std::string::npos);

  auto bad = d.path / "bad.yaml";
  std::ofstream(bad) << "auth: none\ntargets:\n  t:\n    base_url: http://127.0.0.1:9/v1\n    timeouts: {conect_ms: 5}\n"
                        "models:\n  m: [t]\n";
  EXPECT_EQ(wait_exit(spawn({"check-config", bad.string()}, d.path)), 1);
  auto err = slurp(d.path / "stderr");
  EXPECT_NE(err.find(bad.string() + ":5: targets.t.timeouts.conect_ms"), std::string::npos) << err;
  EXPECT_NE(err.find("did you mean 'connect_ms'"), std::string::npos) << err;

  auto env = d.path / "env.yaml";
  std::ofstream(env) << "auth: none\ntargets:\n  t:\n    base_url: ${TOLLGATE_TEST_SURELY_UNSET_VAR}\nmodels:\n  m: [t]\n";
  EXPECT_EQ(wait_exit(spawn({"check-config", env.string()}, d.path)), 1);
  err = slurp(d.path / "stderr");
  EXPECT_NE(err.find(env.string() + ":4:"), std::string::npos) << err;
  EXPECT_NE(err.find("TOLLGATE_TEST_SURELY_UNSET_VAR"), std::string::npos) << err;

  EXPECT_EQ(wait_exit(spawn({"check-config", (d.path / "missing.yaml").string()}, d.path)), 1);
  EXPECT_NE(slurp(d.path / "stderr").find("missing.yaml"), std::string::npos);
}

TEST(cli, serve_reloads_on_sighup_and_exits_zero_on_sigterm) {
  temp_dir d;
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
  EXPECT_TRUE(wait_until([&] { return slurp(d.path / "stderr").find("reload failed") != std::string::npos; }));
  EXPECT_EQ(http_request(port, "/v1/chat/completions", body2).status, 200);
  ::kill(pid, SIGTERM);
  EXPECT_EQ(wait_exit(pid), 0);
  auto log = slurp(d.path / "stderr");
  EXPECT_NE(log.find("client authentication is off"), std::string::npos) << log;
  EXPECT_NE(log.find("shutdown complete"), std::string::npos) << log;
  EXPECT_TRUE(fs::exists(d.path / "data" / "ledger" / "CURRENT"));  // requests went to the ledger
  // Access log: one JSON line per request on stdout.
  std::istringstream lines(slurp(d.path / "stdout"));
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(j.contains("id") && j.contains("status") && j.contains("latency_ms")) << line;
    ++n;
  }
  EXPECT_GE(n, 4);
}
