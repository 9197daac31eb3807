// fake_upstream_server: gw::test::fake_upstream as a standalone process, for client tests written
// in other languages (tests/node/sdk.test.mjs).
//
// On start it prints one line `PORT <n>` on stdout (the fake listens on 127.0.0.1:<n>, API root
// http://127.0.0.1:<n>/v1). It then reads commands from stdin, one per line, and answers each with
// exactly one line on stdout. It exits (status 0) when stdin reaches EOF or on SIGTERM/SIGINT.
//
// Commands (blank lines and lines starting with '#' are ignored and get no answer):
//   push    REPLY        queue REPLY for one request (FIFO)          -> OK
//   default REPLY        the reply used when the queue is empty      -> OK   (initially `ok`)
//   count                requests received so far                    -> COUNT <n>
//   last                 the last request received, one JSON line    -> LAST {"method","target","headers","body"}
//                        (`LAST null` when there was none; body is the raw request body string)
//   quit                 answer OK and exit
// Anything malformed is answered with `ERR <why>` and changes nothing.
//
// REPLY is a behaviour followed by optional key=value options:
//   behaviours: ok | stream | status <http-status> | drop_mid_stream | hang | no_usage_stream | no_usage
//   options:    retry_after=<s>   adds "retry-after: <s>"
//               chunks=<n>        stream: number of content chunks ("tok0 ", "tok1 ", ...)
//               chunk_delay_ms=<n>, delay_ms=<n>
//               status=<n>        HTTP status (also for ok with body=)
//               body=<text>       must come last: the rest of the line is the body, sent verbatim
// Examples:
//   push status 429 retry_after=0
//   push status 500 body={"error":{"message":"boom","type":"server_error","param":null,"code":"x"}}
//   default stream chunks=4
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "tests/support/fake_upstream.h"

namespace {

using gw::test::behaviour;
using gw::test::scripted_reply;

int signal_pipe[2] = {-1, -1};

extern "C" void on_signal(int) {
  const int saved = errno;
  const char c = 's';
  [[maybe_unused]] auto n = ::write(signal_pipe[1], &c, 1);
  errno = saved;
}

// Returns false when stdout is gone (the controlling process died): the caller then exits.
bool say(const std::string& line) {
  return std::fputs((line + "\n").c_str(), stdout) >= 0 && std::fflush(stdout) == 0;
}

std::optional<int> to_int(std::string_view s) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

// Parses REPLY (see the top of the file). On failure returns nullopt and sets *why.
std::optional<scripted_reply> parse_reply(std::string_view rest, std::string* why) {
  auto next_word = [&rest]() {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const auto end = rest.find(' ');
    std::string_view w = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
    return w;
  };
  const std::string_view kind = next_word();
  scripted_reply r;
  if (kind == "ok") r.kind = behaviour::ok;
  else if (kind == "stream") r.kind = behaviour::stream;
  else if (kind == "drop_mid_stream") r.kind = behaviour::drop_mid_stream;
  else if (kind == "hang") r.kind = behaviour::hang;
  else if (kind == "no_usage_stream") r.kind = behaviour::no_usage_stream;
  else if (kind == "no_usage") r.kind = behaviour::no_usage;
  else if (kind == "status") {
    r.kind = behaviour::status;
    auto code = to_int(next_word());
    if (!code || *code < 100 || *code > 599) {
      *why = "status needs an HTTP status (100..599)";
      return std::nullopt;
    }
    r.status = *code;
  } else {
    *why = "unknown behaviour '" + std::string(kind) + "'";
    return std::nullopt;
  }

  for (;;) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (rest.empty()) break;
    if (rest.starts_with("body=")) {
      r.body = std::string(rest.substr(5));
      break;
    }
    const std::string_view opt = next_word();
    const auto eq = opt.find('=');
    if (eq == std::string_view::npos) {
      *why = "option '" + std::string(opt) + "' is not key=value";
      return std::nullopt;
    }
    const std::string_view key = opt.substr(0, eq);
    const auto value = to_int(opt.substr(eq + 1));
    if (!value) {
      *why = "option '" + std::string(key) + "' needs a non-negative integer";
      return std::nullopt;
    }
    if (key == "retry_after") r.retry_after_s = *value;
    else if (key == "chunks") r.chunks = *value;
    else if (key == "chunk_delay_ms") r.chunk_delay = std::chrono::milliseconds(*value);
    else if (key == "delay_ms") r.delay = std::chrono::milliseconds(*value);
    else if (key == "status" && *value >= 100 && *value <= 599) r.status = *value;
    else {
      *why = "unknown or invalid option '" + std::string(key) + "'";
      return std::nullopt;
    }
  }
  return r;
}

// Applies one command line; returns the answer line, or nullopt for lines that get none.
// Sets *quit for `quit`.
std::optional<std::string> apply(gw::test::fake_upstream& up, std::string_view line, bool* quit) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
  while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  if (line.empty() || line.front() == '#') return std::nullopt;
  const auto sp = line.find(' ');
  const std::string_view cmd = line.substr(0, sp);
  const std::string_view rest = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);

  if (cmd == "push" || cmd == "default") {
    std::string why;
    auto r = parse_reply(rest, &why);
    if (!r) return "ERR " + why;
    if (cmd == "push") up.push(std::move(*r));
    else up.set_default(std::move(*r));
    return "OK";
  }
  if (cmd == "count" && rest.empty()) return "COUNT " + std::to_string(up.requests_count());
  if (cmd == "last" && rest.empty()) {
    const auto seen = up.requests();
    if (seen.empty()) return "LAST null";
    const auto& r = seen.back();
    const nlohmann::json j = {
        {"method", r.method}, {"target", r.target}, {"headers", r.headers}, {"body", r.body}};
    return "LAST " + j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  if (cmd == "quit" && rest.empty()) {
    *quit = true;
    return "OK";
  }
  return "ERR unknown command '" + std::string(line.substr(0, 64)) + "'";
}

int run() {
  if (::pipe(signal_pipe) != 0) {
    std::perror("fake_upstream_server: pipe");
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  gw::test::fake_upstream up;
  if (!say("PORT " + std::to_string(up.port()))) return 0;

  std::string buffer;
  for (;;) {
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {signal_pipe[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      std::perror("fake_upstream_server: poll");
      return 1;
    }
    if (fds[1].revents != 0) return 0;  // SIGTERM / SIGINT
    if (fds[0].revents == 0) continue;
    char chunk[4096];
    const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return 0;  // EOF (or a broken stdin): the controlling process is done
    buffer.append(chunk, static_cast<std::size_t>(n));
    for (auto nl = buffer.find('\n'); nl != std::string::npos; nl = buffer.find('\n')) {
      const std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      bool quit = false;
      if (auto answer = apply(up, line, &quit)) {
        if (!say(*answer)) return 0;
      }
      if (quit) return 0;
    }
  }
}

}  // namespace

int main() {
  try {
    return run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fake_upstream_server: %s\n", e.what());
    return 1;
  }
}
