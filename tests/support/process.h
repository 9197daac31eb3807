#pragma once
// Child processes for tests that drive a real binary (the `tollgate` CLI, signals, SIGKILL):
// started with posix_spawn with stdout and stderr going to files, waited for with a deadline, and
// a free loopback port for a child to listen on. POSIX only; the functions keep no state, so tests
// may call them from several threads.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace gw::test {

// Starts `bin` with `args` (argv[0] is `bin`) in the environment of the test; the child's stdout
// and stderr are written to the files `out` and `err` (created or truncated). Returns its pid;
// throws std::runtime_error when it cannot be started. The caller reaps it (wait_exit, child).
pid_t spawn_process(const std::string& bin, const std::vector<std::string>& args,
                    const std::filesystem::path& out, const std::filesystem::path& err);

// Waits for `pid` to end: its exit status, or 128 + the signal that ended it. After `timeout`
// the child is SIGKILLed and reaped, and the answer is -1.
int wait_exit(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds(20));

// The whole content of a file (a child's output so far); "" when it cannot be read.
std::string read_file(const std::filesystem::path& p);

struct process_result {
  int code = -1;        // as wait_exit: -1 when it did not end within the timeout (then killed)
  std::string out, err;  // all it wrote to stdout and stderr
};

// Runs `bin args` to the end, its output kept in the files `dir`/stdout and `dir`/stderr.
process_result run_process(const std::string& bin, const std::vector<std::string>& args,
                           const std::filesystem::path& dir,
                           std::chrono::milliseconds timeout = std::chrono::seconds(60));

// A child process that is SIGKILLed and reaped on every path out of scope. Not thread-safe.
struct child {
  pid_t pid = -1;       // -1: none, or already reaped
  int wait_status = 0;  // as waitpid() reported it, once reaped

  // False once it has ended (reaping it) or when there is none.
  bool alive();
  // SIGKILL and reap; returns the wait status (or the one reaped earlier).
  int kill_and_reap();
  ~child() { kill_and_reap(); }
};

// A loopback TCP port that was free a moment ago (bound as port 0, read back, closed). Another
// process may take it before the child binds it: use it only where a child must be told its
// port in advance; servers inside the test process listen on port 0 instead.
std::uint16_t free_port();

}  // namespace gw::test
