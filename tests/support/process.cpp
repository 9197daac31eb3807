// Child processes for tests (contracts in process.h).
#include "tests/support/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace gw::test {

pid_t spawn_process(const std::string& bin, const std::vector<std::string>& args,
                    const std::filesystem::path& out, const std::filesystem::path& err) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::string argv0 = bin;
  std::vector<std::string> copy = args;  // posix_spawn takes char*, not const char*
  std::vector<char*> argv{argv0.data()};
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start " + bin);
  return pid;
}

int wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

process_result run_process(const std::string& bin, const std::vector<std::string>& args,
                           const std::filesystem::path& dir, std::chrono::milliseconds timeout) {
  const auto out = dir / "stdout", err = dir / "stderr";
  process_result r;
  r.code = wait_exit(spawn_process(bin, args, out, err), timeout);
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

bool child::alive() {
  if (pid <= 0) return false;
  if (::waitpid(pid, &wait_status, WNOHANG) == pid) {
    pid = -1;
    return false;
  }
  return true;
}

int child::kill_and_reap() {
  if (pid > 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &wait_status, 0);
    pid = -1;
  }
  return wait_status;
}

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace gw::test
