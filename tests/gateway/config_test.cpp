// Tests for gateway/config.cpp: every error path (with exact file, line and key), environment
// expansion, API-key handling, client-key hashing, exact prices, provider inheritance, alias
// lookup, defaults, and every example file under configs/.
#include "gateway/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using gw::gateway::config;
using gw::gateway::config_error;
using gw::gateway::load_config_file;
using gw::gateway::load_config_text;
using gw::gateway::load_result;

// Sets (or unsets, with nullopt) one environment variable for the scope, then restores it.
class scoped_env {
 public:
  scoped_env(std::string name, std::optional<std::string> value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old;
    if (value) {
      ::setenv(name_.c_str(), value->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  ~scoped_env() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// Raw strings in this file start with a newline for readability; line 1 is the line after R"(.
std::string yaml(const char* text) {
  std::string s = text;
  if (!s.empty() && s.front() == '\n') s.erase(0, 1);
  return s;
}

load_result load(const char* text) { return load_config_text(yaml(text), "test.yaml"); }

// Expects loading `text` to throw config_error at exactly test.yaml:line and `key`, with
// `fragment` in the message.
testing::AssertionResult fails_with(const char* text, int line, const std::string& key,
                                    const std::string& fragment) {
  try {
    load(text);
  } catch (const config_error& e) {
    const std::string what = e.what();
    const std::string prefix =
        "test.yaml:" + std::to_string(line) + ": " + (key.empty() ? "" : key + ": ");
    if (e.file() != "test.yaml" || e.line() != line || e.key() != key ||
        what.rfind(prefix, 0) != 0 || what.find(fragment) == std::string::npos) {
      return testing::AssertionFailure()
             << "got \"" << what << "\" (line " << e.line() << ", key '" << e.key()
             << "'), want prefix \"" << prefix << "\" and \"" << fragment << "\"";
    }
    return testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return testing::AssertionFailure() << "threw something else: " << e.what();
  }
  return testing::AssertionFailure() << "loaded without error";
}

std::string hex(const std::array<unsigned char, 32>& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (unsigned char b : bytes) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

bool has_warning_containing(const load_result& r, const std::string& fragment) {
  for (const std::string& w : r.warnings) {
    if (w.find(fragment) != std::string::npos) return true;
  }
  return false;
}

constexpr const char* minimal = R"(
auth: none
targets:
  t:
    base_url: http://127.0.0.1:8000/v1
models:
  m: t
)";

// SHA-256("password"), a widely published test vector.
constexpr const char* sha256_of_password =
    "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";

// ---- error format ----------------------------------------------------------------------------

TEST(config, error_what_reads_file_line_key_message) {
  const config_error e("a.yaml", 7, "server.listen", "bad port");
  EXPECT_STREQ(e.what(), "a.yaml:7: server.listen: bad port");
  EXPECT_EQ(e.file(), "a.yaml");
  EXPECT_EQ(e.line(), 7);
  EXPECT_EQ(e.key(), "server.listen");
}

// ---- defaults --------------------------------------------------------------------------------

TEST(config, defaults_for_a_minimal_file) {
  const load_result r = load(minimal);
  const config& c = *r.cfg;
  EXPECT_EQ(c.source_file, "test.yaml");
  ASSERT_EQ(c.server.listeners.size(), 1u);
  EXPECT_EQ(c.server.listeners[0].address, "127.0.0.1");
  EXPECT_EQ(c.server.listeners[0].port, 8080);
  EXPECT_FALSE(c.server.listeners[0].tls());
  EXPECT_EQ(c.server.io_threads, 0);
  EXPECT_EQ(c.server.shutdown_grace.count(), 10'000);
  EXPECT_EQ(c.server.data_dir, "./data");
  EXPECT_EQ(c.server.log_level, "info");
  EXPECT_TRUE(c.server.access_log);
  EXPECT_EQ(c.server.limits.max_body_bytes, 10'485'760u);
  EXPECT_EQ(c.server.limits.max_header_bytes, 16'384u);
  EXPECT_EQ(c.server.limits.read_timeout.count(), 30'000);
  EXPECT_EQ(c.server.limits.idle_timeout.count(), 60'000);
  EXPECT_EQ(c.server.limits.write_timeout.count(), 60'000);
  EXPECT_EQ(c.server.limits.max_connections, 10'000u);
  EXPECT_EQ(c.server.limits.max_stream_buffer_bytes, 1'048'576u);
  EXPECT_EQ(c.server.limits.max_upstream_response_bytes, 67'108'864u);

  EXPECT_FALSE(c.auth.enabled);
  EXPECT_TRUE(c.auth.keys.empty());
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.warnings[0], "client authentication is off (auth: none)");

  const auto* t = c.find_target("t");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->name, "t");
  EXPECT_EQ(t->provider, "t");
  EXPECT_EQ(t->base_url, "http://127.0.0.1:8000/v1");
  EXPECT_TRUE(t->enabled);
  EXPECT_EQ(t->api_key, "");
  EXPECT_EQ(t->api_key_source, "");
  EXPECT_FALSE(t->upstream_model.has_value());
  EXPECT_EQ(t->timeout.connect.count(), 5'000);
  EXPECT_EQ(t->timeout.first_byte.count(), 60'000);
  EXPECT_EQ(t->timeout.total.count(), 600'000);
  EXPECT_EQ(t->timeout.stream_idle.count(), 60'000);
  EXPECT_EQ(t->retry.max_attempts, 3);
  EXPECT_EQ(t->retry.base_delay.count(), 200);
  EXPECT_EQ(t->retry.max_delay.count(), 5'000);
  EXPECT_EQ(t->breaker.failure_threshold, 5);
  EXPECT_EQ(t->breaker.cooldown.count(), 30'000);
  EXPECT_EQ(t->max_concurrency, 0);
  EXPECT_TRUE(t->headers.empty());
  EXPECT_FALSE(t->prices.input.has_value());
  EXPECT_FALSE(t->prices.output.has_value());
  EXPECT_FALSE(t->prices.cached_input.has_value());

  ASSERT_EQ(c.models.size(), 1u);
  EXPECT_EQ(c.models[0].name, "m");
  EXPECT_EQ(c.models[0].targets, std::vector<std::string>{"t"});
}

// ---- server ----------------------------------------------------------------------------------

TEST(config, server_section_parses_every_key) {
  const load_result r = load(R"(
server:
  listen:
    - "0.0.0.0:9000"
    - "[::1]:0"
    - address: 127.0.0.2
      port: 9001
  io_threads: 4
  shutdown_grace_ms: 0
  data_dir: /var/lib/tollgate
  log_level: debug
  access_log: false
  limits:
    max_body_bytes: 1000
    max_header_bytes: 2000
    read_timeout_ms: 3000
    idle_timeout_ms: 4000
    write_timeout_ms: 5000
    max_connections: 6
    max_stream_buffer_bytes: 7000
    max_upstream_response_bytes: 8000
auth: none
targets:
  t: {base_url: "http://h"}
models:
  m: t
)");
  const auto& s = r.cfg->server;
  ASSERT_EQ(s.listeners.size(), 3u);
  EXPECT_EQ(s.listeners[0].address, "0.0.0.0");
  EXPECT_EQ(s.listeners[0].port, 9000);
  EXPECT_EQ(s.listeners[1].address, "::1");
  EXPECT_EQ(s.listeners[1].port, 0);
  EXPECT_EQ(s.listeners[2].address, "127.0.0.2");
  EXPECT_EQ(s.listeners[2].port, 9001);
  EXPECT_EQ(s.io_threads, 4);
  EXPECT_EQ(s.shutdown_grace.count(), 0);
  EXPECT_EQ(s.data_dir, "/var/lib/tollgate");
  EXPECT_EQ(s.log_level, "debug");
  EXPECT_FALSE(s.access_log);
  EXPECT_EQ(s.limits.max_body_bytes, 1000u);
  EXPECT_EQ(s.limits.max_header_bytes, 2000u);
  EXPECT_EQ(s.limits.read_timeout.count(), 3000);
  EXPECT_EQ(s.limits.idle_timeout.count(), 4000);
  EXPECT_EQ(s.limits.write_timeout.count(), 5000);
  EXPECT_EQ(s.limits.max_connections, 6u);
  EXPECT_EQ(s.limits.max_stream_buffer_bytes, 7000u);
  EXPECT_EQ(s.limits.max_upstream_response_bytes, 8000u);
}

TEST(config, listen_as_single_string_and_single_map) {
  auto r = load(R"(
server: {listen: "10.0.0.1:1234"}
auth: none
targets: {t: {base_url: "http://h"}}
models: {m: t}
)");
  ASSERT_EQ(r.cfg->server.listeners.size(), 1u);
  EXPECT_EQ(r.cfg->server.listeners[0].address, "10.0.0.1");
  EXPECT_EQ(r.cfg->server.listeners[0].port, 1234);

  r = load(R"(
server:
  listen: {port: 4321}
auth: none
targets: {t: {base_url: "http://h"}}
models: {m: t}
)");
  ASSERT_EQ(r.cfg->server.listeners.size(), 1u);
  EXPECT_EQ(r.cfg->server.listeners[0].address, "127.0.0.1");
  EXPECT_EQ(r.cfg->server.listeners[0].port, 4321);
}

TEST(config, listen_errors) {
  EXPECT_TRUE(fails_with(R"(
auth: none
server:
  listen: "127.0.0.1:70000"
)", 3, "server.listen", "port must be in 0..65535 (got 70000)"));
  EXPECT_TRUE(fails_with(R"(
server:
  listen:
    - "127.0.0.1:8080"
    - address: 0.0.0.0
      port: -1
)", 5, "server.listen[1].port", "port must be in 0..65535"));
  EXPECT_TRUE(fails_with(R"(
server:
  listen: "127.0.0.1:http"
)", 2, "server.listen", "expected a port number"));
  EXPECT_TRUE(fails_with(R"(
server:
  listen: "8080"
)", 2, "server.listen", "expected \"host:port\""));
  EXPECT_TRUE(fails_with(R"(
server:
  listen: "localhost:8080"
)", 2, "server.listen", "expected an IPv4 or IPv6 address"));
  EXPECT_TRUE(fails_with(R"(
server:
  listen: "::1:8080"
)", 2, "server.listen", "brackets"));
  EXPECT_TRUE(fails_with(R"(
server:
  listen: []
)", 2, "server.listen", "at least one address"));
  EXPECT_TRUE(fails_with(R"(
server:
  listen:
    - "0.0.0.0:8080"
    - "0.0.0.0:8080"
)", 4, "server.listen[1]", "duplicate listener 0.0.0.0:8080 (also on line 3)"));
  EXPECT_TRUE(fails_with(R"(
server:
  listen:
    - [a, b]
)", 3, "server.listen[0]", "got a list"));
  EXPECT_TRUE(fails_with(R"(
server:
  listen:
    - addres: 0.0.0.0
)", 3, "server.listen[0].addres", "did you mean 'address'?"));
}

TEST(config, tls_needs_both_files_and_they_must_exist) {
  EXPECT_TRUE(fails_with(R"(
server:
  listen:
    - address: 0.0.0.0
      port: 8443
      tls:
        cert_file: cert.pem
)", 5, "server.listen[0].tls", "needs both cert_file and key_file (missing key_file)"));
  EXPECT_TRUE(fails_with(R"(
server:
  listen:
    - port: 8443
      tls: {cert_file: /nonexistent/tollgate-cert.pem, key_file: /nonexistent/key.pem}
)", 4, "server.listen[0].tls.cert_file", "'/nonexistent/tollgate-cert.pem' does not exist"));

  const auto dir = std::filesystem::temp_directory_path() /
                   ("tollgate_config_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "cert.pem") << "cert";
  std::ofstream(dir / "key.pem") << "key";
  const std::string text = "server:\n  listen:\n    - port: 8443\n      tls: {cert_file: " +
                           (dir / "cert.pem").string() + ", key_file: " +
                           (dir / "key.pem").string() +
                           "}\nauth: none\ntargets: {t: {base_url: 'http://h'}}\nmodels: {m: t}\n";
  const load_result r = load_config_text(text, "test.yaml");
  ASSERT_EQ(r.cfg->server.listeners.size(), 1u);
  EXPECT_TRUE(r.cfg->server.listeners[0].tls());
  EXPECT_EQ(r.cfg->server.listeners[0].tls_cert_file, (dir / "cert.pem").string());
  EXPECT_EQ(r.cfg->server.listeners[0].tls_key_file, (dir / "key.pem").string());
  std::filesystem::remove_all(dir);
}

TEST(config, server_value_errors) {
  EXPECT_TRUE(fails_with(R"(
server:
  log_level: inf
)", 2, "server.log_level", "unknown log level 'inf' (did you mean 'info'?)"));
  EXPECT_TRUE(fails_with(R"(
server:
  access_log: yes
)", 2, "server.access_log", "expected true or false, got 'yes'"));
  EXPECT_TRUE(fails_with(R"(
server:
  io_threads: 1.5
)", 2, "server.io_threads", "expected an integer, got '1.5'"));
  EXPECT_TRUE(fails_with(R"(
server:
  shutdown_grace_ms: -5
)", 2, "server.shutdown_grace_ms", "must not be negative (got -5)"));
  EXPECT_TRUE(fails_with(R"(
server:
  data_dir:
    nested: map
)", 2, "server.data_dir", "expected a string, got a map"));
  EXPECT_TRUE(fails_with(R"(
server:
  data_dir: ""
)", 2, "server.data_dir", "must not be empty"));
  EXPECT_TRUE(fails_with(R"(
server:
  limits:
    read_timeout_ms: 0
)", 3, "server.limits.read_timeout_ms", "must be at least 1 (got 0)"));
  EXPECT_TRUE(fails_with(R"(
server:
  limits:
    max_body_bytes: 99999999999999999999
)", 3, "server.limits.max_body_bytes", "out of range"));
  EXPECT_TRUE(fails_with(R"(
server:
  limits: [1, 2]
)", 2, "server.limits", "expected a map, got a list"));
  EXPECT_TRUE(fails_with(R"(
server:
  io_threads: [1]
)", 2, "server.io_threads", "expected an integer, got a list"));
}

// ---- structure: unknown keys, duplicates, syntax, required sections -------------------------

TEST(config, unknown_keys_are_errors_with_suggestions) {
  EXPECT_TRUE(fails_with(R"(
server:
  listn: "127.0.0.1:8080"
)", 2, "server.listn", "unknown key 'listn' (did you mean 'listen'?)"));
  EXPECT_TRUE(fails_with(R"(
auth: none
target:
  t: {base_url: "http://h"}
)", 2, "target", "unknown key 'target' (did you mean 'targets'?)"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  openai-mini:
    base_url: "http://h"
    timeouts:
      conect_ms: 10
)", 6, "targets.openai-mini.timeouts.conect_ms", "did you mean 'connect_ms'?"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    base_url: "http://h"
    timeouts: {first_byte: 10}
)", 5, "targets.t.timeouts.first_byte", "did you mean 'first_byte_ms'?"));
  // Nothing close: no suggestion at all.
  try {
    load(R"(
completely_unrelated: 1
)");
    FAIL() << "loaded";
  } catch (const config_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "test.yaml:1: completely_unrelated: unknown key 'completely_unrelated'");
  }
}

TEST(config, duplicate_keys_are_errors) {
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    base_url: "http://a"
    base_url: "http://b"
)", 5, "targets.t.base_url", "duplicate key (first set on line 4)"));
}

TEST(config, yaml_syntax_error_has_file_and_line) {
  EXPECT_TRUE(fails_with(R"(
auth: none
targets: a: b
models: {}
)", 2, "", "YAML syntax error: illegal map value"));
  // Errors found at the end of the input point at the last line, not past it.
  EXPECT_TRUE(fails_with(R"(
auth: none
targets: [a,
models: {}
)", 3, "", "YAML syntax error"));
  EXPECT_TRUE(fails_with("a: 1\nb: *missing_anchor\n", 2, "", "YAML syntax error"));
  EXPECT_TRUE(fails_with("auth: none\n\tbad: tab\n", 2, "", "YAML syntax error"));
}

TEST(config, required_sections) {
  EXPECT_TRUE(fails_with("", 1, "", "the configuration is empty"));
  EXPECT_TRUE(fails_with(R"(
targets: {t: {base_url: "http://h"}}
models: {m: t}
)", 1, "auth", "auth: none"));
  EXPECT_TRUE(fails_with(R"(
auth: none
models: {m: t}
)", 1, "targets", "missing required key"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets: {t: {base_url: "http://h"}}
)", 1, "models", "missing required key"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets: {}
models: {m: t}
)", 2, "targets", "at least one target"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets: {t: {base_url: "http://h"}}
models: {}
)", 3, "models", "at least one model"));
  EXPECT_TRUE(fails_with("- just\n- a list\n", 1, "", "expected a map, got a list"));
}

// ---- environment variables -------------------------------------------------------------------

TEST(config, env_expansion_defaults_dollar_and_several_per_value) {
  scoped_env host("TG_TEST_HOST", "upstream.example");
  scoped_env port("TG_TEST_PORT", "9443");
  scoped_env unset("TG_TEST_UNSET", std::nullopt);
  scoped_env empty("TG_TEST_EMPTY", "");
  const load_result r = load(R"(
server:
  listen: "127.0.0.1:${TG_TEST_UNSET:-8181}"
  data_dir: "${TG_TEST_EMPTY:-/fallback}/x"
  log_level: ${TG_TEST_UNSET:-warn}
auth: none
targets:
  t:
    base_url: "https://${TG_TEST_HOST}:${TG_TEST_PORT}/v1"
    model: "cost$$5-$${TG_TEST_HOST}-$x${TG_TEST_EMPTY}"
    max_concurrency: ${TG_TEST_UNSET:-12}
models:
  m: t
)");
  const config& c = *r.cfg;
  EXPECT_EQ(c.server.listeners[0].port, 8181);
  EXPECT_EQ(c.server.data_dir, "/fallback/x");  // `:-` also replaces an empty value
  EXPECT_EQ(c.server.log_level, "warn");
  const auto* t = c.find_target("t");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->base_url, "https://upstream.example:9443/v1");
  // "$$" is a literal '$' (also before '{'), a lone '$' stays, a set-but-empty variable is "".
  EXPECT_EQ(t->upstream_model, std::optional<std::string>("cost$5-${TG_TEST_HOST}-$x"));
  EXPECT_EQ(t->max_concurrency, 12);
}

TEST(config, env_unset_without_default_is_an_error_with_line) {
  scoped_env unset("TG_TEST_UNSET", std::nullopt);
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    base_url: "http://h"
    model: "${TG_TEST_UNSET}"
)", 5, "targets.t.model", "environment variable TG_TEST_UNSET is not set"));
  EXPECT_TRUE(fails_with(R"(
server:
  listen: "127.0.0.1:${TG_TEST_UNSET}"
)", 2, "server.listen", "TG_TEST_UNSET"));
  // A base_url is not an API key: no "disable the target" leniency there.
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    base_url: ${TG_TEST_UNSET}
)", 4, "targets.t.base_url", "environment variable TG_TEST_UNSET is not set"));
}

TEST(config, env_reference_syntax_errors) {
  EXPECT_TRUE(fails_with(R"(
server:
  data_dir: "${TG_TEST_X"
)", 2, "server.data_dir", "unterminated '${'"));
  EXPECT_TRUE(fails_with(R"(
server:
  data_dir: "${TG-TEST}"
)", 2, "server.data_dir", "invalid environment variable reference"));
  EXPECT_TRUE(fails_with(R"(
server:
  data_dir: "${1ABC}"
)", 2, "server.data_dir", "invalid environment variable name"));
  EXPECT_TRUE(fails_with(R"(
server:
  data_dir: "${}"
)", 2, "server.data_dir", "invalid environment variable name"));
}

TEST(config, env_values_are_type_checked_after_expansion) {
  scoped_env bad("TG_TEST_BAD", "abc");
  EXPECT_TRUE(fails_with(R"(
server:
  io_threads: ${TG_TEST_BAD}
)", 2, "server.io_threads", "expected an integer, got 'abc'"));
}

// ---- upstream API keys -----------------------------------------------------------------------

TEST(config, api_key_from_env_is_resolved_and_source_named) {
  scoped_env key("TG_TEST_API_KEY", "sk-secret-123");
  const load_result r = load(R"(
auth: none
targets:
  a:
    base_url: "http://h"
    api_key: ${TG_TEST_API_KEY}
  b:
    base_url: "http://h"
    api_key_env: TG_TEST_API_KEY
  c:
    base_url: "http://h"
    api_key: literal-key-in-file
models:
  m: [a, b, c]
)");
  const auto* a = r.cfg->find_target("a");
  const auto* b = r.cfg->find_target("b");
  const auto* c = r.cfg->find_target("c");
  EXPECT_TRUE(a->enabled);
  EXPECT_EQ(a->api_key, "sk-secret-123");
  EXPECT_EQ(a->api_key_source, "env TG_TEST_API_KEY");
  EXPECT_TRUE(b->enabled);
  EXPECT_EQ(b->api_key, "sk-secret-123");
  EXPECT_EQ(b->api_key_source, "env TG_TEST_API_KEY");
  EXPECT_EQ(c->api_key, "literal-key-in-file");
  EXPECT_EQ(c->api_key_source, "config file");
  EXPECT_EQ(r.warnings.size(), 1u);  // just auth: none
}

TEST(config, api_key_unset_or_empty_disables_the_target_with_one_warning) {
  scoped_env unset("TG_TEST_NO_KEY", std::nullopt);
  scoped_env empty("TG_TEST_EMPTY_KEY", "");
  const load_result r = load(R"(
auth: none
targets:
  by-expr:
    base_url: "http://h"
    api_key: ${TG_TEST_NO_KEY}
  by-env:
    base_url: "http://h"
    api_key_env: TG_TEST_NO_KEY
  empty:
    base_url: "http://h"
    api_key_env: TG_TEST_EMPTY_KEY
  fine:
    base_url: "http://h"
models:
  m: [by-expr, by-env, empty, fine]
)");
  for (const char* name : {"by-expr", "by-env"}) {
    const auto* t = r.cfg->find_target(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_FALSE(t->enabled) << name;
    EXPECT_EQ(t->disabled_reason, "environment variable TG_TEST_NO_KEY is not set") << name;
    EXPECT_EQ(t->api_key, "") << name;
    EXPECT_EQ(t->api_key_source, "env TG_TEST_NO_KEY") << name;
  }
  const auto* empty_key = r.cfg->find_target("empty");
  EXPECT_FALSE(empty_key->enabled);
  EXPECT_EQ(empty_key->disabled_reason, "environment variable TG_TEST_EMPTY_KEY is not set");
  EXPECT_TRUE(r.cfg->find_target("fine")->enabled);

  // One warning per disabled target, naming the target, the variable and where it is named.
  ASSERT_EQ(r.warnings.size(), 4u);  // auth: none + three targets
  EXPECT_TRUE(has_warning_containing(
      r, "target 'by-expr' is disabled: environment variable TG_TEST_NO_KEY is not set "
         "(test.yaml:5: targets.by-expr.api_key)"));
  EXPECT_TRUE(has_warning_containing(r, "target 'by-env' is disabled"));
  EXPECT_TRUE(has_warning_containing(r, "target 'empty' is disabled"));
  EXPECT_FALSE(has_warning_containing(r, "model 'm'"));  // 'fine' is still enabled
}

TEST(config, optional_api_key_with_empty_default_means_no_key) {
  scoped_env unset("TG_TEST_NO_KEY", std::nullopt);
  const load_result r = load(R"(
auth: none
targets:
  t:
    base_url: "http://h"
    api_key: ${TG_TEST_NO_KEY:-}
models:
  m: t
)");
  const auto* t = r.cfg->find_target("t");
  EXPECT_TRUE(t->enabled);
  EXPECT_EQ(t->api_key, "");
  EXPECT_EQ(t->api_key_source, "");
}

TEST(config, api_key_errors_never_show_the_key) {
  scoped_env key("TG_TEST_SPACEY", "sk-has space");
  try {
    load(R"(
auth: none
targets:
  t:
    base_url: "http://h"
    api_key: ${TG_TEST_SPACEY}
models:
  m: t
)");
    FAIL() << "loaded";
  } catch (const config_error& e) {
    EXPECT_EQ(e.line(), 5);
    EXPECT_EQ(e.key(), "targets.t.api_key");
    EXPECT_EQ(std::string(e.what()).find("has space"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    base_url: "http://h"
    api_key: x
    api_key_env: X
)", 6, "targets.t.api_key_env", "either api_key or api_key_env"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    base_url: "http://h"
    api_key_env: "sk-abc def"
)", 5, "targets.t.api_key_env", "expected an environment variable name"));
}

TEST(config, all_targets_of_a_model_disabled_is_a_warning) {
  scoped_env unset("TG_TEST_NO_KEY", std::nullopt);
  const load_result r = load(R"(
auth: none
targets:
  t:
    base_url: "http://h"
    api_key_env: TG_TEST_NO_KEY
models:
  m: t
)");
  EXPECT_TRUE(has_warning_containing(r, "model 'm' has no enabled target"));
  EXPECT_TRUE(has_warning_containing(r, "test.yaml:7: models.m"));
}

// ---- client auth -----------------------------------------------------------------------------

TEST(config, client_keys_plain_are_hashed_and_hashes_are_parsed) {
  scoped_env key("TG_TEST_WEB_KEY", "password");
  const load_result r = load(R"(
auth:
  keys:
    - name: web-app
      team: search
      key: ${TG_TEST_WEB_KEY}
    - name: ops
      key_sha256: 5E884898DA28047151D0E56F8DC6292773603D0D6AABBDD62A11EF721D1542D9
      admin: true
targets: {t: {base_url: "http://h"}}
models: {m: t}
)");
  const auto& a = r.cfg->auth;
  EXPECT_TRUE(a.enabled);
  EXPECT_TRUE(r.warnings.empty());
  ASSERT_EQ(a.keys.size(), 2u);
  EXPECT_EQ(a.keys[0].name, "web-app");
  EXPECT_EQ(a.keys[0].team, "search");
  EXPECT_FALSE(a.keys[0].admin);
  EXPECT_EQ(hex(a.keys[0].sha256), sha256_of_password);
  EXPECT_EQ(a.keys[1].name, "ops");
  EXPECT_EQ(a.keys[1].team, "");
  EXPECT_TRUE(a.keys[1].admin);
  EXPECT_EQ(hex(a.keys[1].sha256),
            "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d9");
}

TEST(config, client_key_errors) {
  EXPECT_TRUE(fails_with(R"(
auth: enabled
)", 1, "auth", "expected `none` or a map"));
  EXPECT_TRUE(fails_with(R"(
auth:
  keys: []
)", 2, "auth.keys", "at least one key"));
  EXPECT_TRUE(fails_with(R"(
auth:
  users: []
)", 2, "auth.users", "unknown key 'users'"));
  EXPECT_TRUE(fails_with(R"(
auth:
  keys:
    - name: a
      key: short
)", 4, "auth.keys[0].key", "at least 8 characters long (got 5)"));
  EXPECT_TRUE(fails_with(R"(
auth:
  keys:
    - name: a
      key: long-enough-key
      key_sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
)", 5, "auth.keys[0].key_sha256", "either key or key_sha256"));
  EXPECT_TRUE(fails_with(R"(
auth:
  keys:
    - name: a
      team: t
)", 3, "auth.keys[0].key", "missing required key"));
  EXPECT_TRUE(fails_with(R"(
auth:
  keys:
    - key: long-enough-key
)", 3, "auth.keys[0].name", "missing required key"));
  EXPECT_TRUE(fails_with(R"(
auth:
  keys:
    - name: a
      key_sha256: abc123
)", 4, "auth.keys[0].key_sha256", "expected 64 hexadecimal characters"));
  EXPECT_TRUE(fails_with(R"(
auth:
  keys:
    - name: a
      key_sha256: zz84898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
)", 4, "auth.keys[0].key_sha256", "expected 64 hexadecimal characters"));
  EXPECT_TRUE(fails_with(R"(
auth:
  keys:
    - name: a
      key: first-key-123
    - name: a
      key: second-key-456
)", 5, "auth.keys[1].name", "duplicate key name 'a' (also on line 3)"));
  EXPECT_TRUE(fails_with(R"(
auth:
  keys:
    - name: a
      key: password
    - name: b
      key_sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
)", 5, "auth.keys[1]", "same key as 'a'"));
  EXPECT_TRUE(fails_with(R"(
auth:
  keys:
    - name: a
      key: "has a space"
)", 4, "auth.keys[0].key", "spaces or control characters"));
}

TEST(config, client_key_from_unset_env_is_an_error_not_a_disable) {
  scoped_env unset("TG_TEST_NO_CLIENT_KEY", std::nullopt);
  EXPECT_TRUE(fails_with(R"(
auth:
  keys:
    - name: a
      key: ${TG_TEST_NO_CLIENT_KEY}
)", 4, "auth.keys[0].key", "environment variable TG_TEST_NO_CLIENT_KEY is not set"));
}

// ---- prices ----------------------------------------------------------------------------------

TEST(config, prices_are_parsed_exactly) {
  struct row {
    const char* text;
    std::int64_t pico_per_token;
  };
  const row rows[] = {
      {"0.15", 150'000},        {"2.5", 2'500'000},       {"0", 0},
      {"0.075", 75'000},        {"0.000001", 1},          {"10", 10'000'000},
      {"10.00", 10'000'000},    {"0.60", 600'000},        {"'1.1'", 1'100'000},
      {"3.999999", 3'999'999},  {"1000000", 1'000'000'000'000},
      {"007.5", 7'500'000},
  };
  for (const row& r : rows) {
    const std::string text = std::string("auth: none\ntargets:\n  t:\n    base_url: 'http://h'\n") +
                             "    prices: {input_per_mtok: " + r.text + "}\nmodels: {m: t}\n";
    const load_result res = load_config_text(text, "test.yaml");
    const auto* t = res.cfg->find_target("t");
    ASSERT_TRUE(t->prices.input.has_value()) << r.text;
    EXPECT_EQ(*t->prices.input, r.pico_per_token) << r.text;
    EXPECT_FALSE(t->prices.output.has_value()) << r.text;  // a missing price is not 0
    EXPECT_FALSE(t->prices.cached_input.has_value()) << r.text;
  }
}

TEST(config, all_three_prices) {
  const load_result r = load(R"(
auth: none
targets:
  t:
    base_url: "http://h"
    prices: {input_per_mtok: 0.15, output_per_mtok: 0.60, cached_input_per_mtok: 0.075}
models: {m: t}
)");
  const auto& p = r.cfg->find_target("t")->prices;
  EXPECT_EQ(p.input, std::optional<std::int64_t>(150'000));
  EXPECT_EQ(p.output, std::optional<std::int64_t>(600'000));
  EXPECT_EQ(p.cached_input, std::optional<std::int64_t>(75'000));
}

TEST(config, price_errors) {
  const struct {
    const char* text;
    const char* fragment;
  } rows[] = {
      {"0.1234567", "at most 6 decimal places"},
      {"-1", "must not be negative"},
      {"-0.5", "must not be negative"},
      {"abc", "expected a price in USD per 1M tokens"},
      {"1e3", "expected a price"},
      {".5", "expected a price"},
      {"5.", "expected a price"},
      {"1,5", "expected a price"},
      {"''", "expected a price"},
      {"1000001", "must be at most 1000000"},
      {"[1]", "expected a price, got a list"},
  };
  for (const auto& r : rows) {
    const std::string text = std::string("auth: none\ntargets:\n  t:\n    base_url: 'http://h'\n") +
                             "    prices:\n      output_per_mtok: " + r.text + "\n";
    try {
      load_config_text(text, "test.yaml");
      ADD_FAILURE() << r.text << " loaded";
    } catch (const config_error& e) {
      EXPECT_EQ(e.line(), 6) << r.text;
      EXPECT_EQ(e.key(), "targets.t.prices.output_per_mtok") << r.text;
      EXPECT_NE(std::string(e.what()).find(r.fragment), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    base_url: "http://h"
    prices: {input: 1}
)", 5, "targets.t.prices.input", "did you mean 'input_per_mtok'?"));
}

// ---- providers and targets -------------------------------------------------------------------

TEST(config, provider_settings_are_inherited_and_overridden_field_by_field) {
  scoped_env key("TG_TEST_PROVIDER_KEY", "sk-provider");
  scoped_env other("TG_TEST_TARGET_KEY", "sk-target");
  const load_result r = load(R"(
auth: none
providers:
  acme:
    base_url: https://api.acme.test/v1//
    api_key_env: TG_TEST_PROVIDER_KEY
    headers: {OpenAI-Organization: org-123, X-Team: base}
    timeouts: {connect_ms: 1000, first_byte_ms: 2000, total_ms: 3000, stream_idle_ms: 4000}
    retry: {max_attempts: 5, base_delay_ms: 10, max_delay_ms: 20}
    circuit_breaker: {failure_threshold: 7, cooldown_ms: 8000}
    max_concurrency: 9
targets:
  inherits:
    provider: acme
    model: acme-small
  overrides:
    provider: acme
    model: acme-large
    base_url: http://proxy.internal:8080/acme
    api_key: ${TG_TEST_TARGET_KEY}
    headers: {x-team: override, X-Extra: "1"}
    timeouts: {first_byte_ms: 99000}
    retry: {max_attempts: 1}
    circuit_breaker: {cooldown_ms: 1}
    max_concurrency: 0
models:
  small: inherits
  large: overrides
)");
  const auto* a = r.cfg->find_target("inherits");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->provider, "acme");
  EXPECT_EQ(a->base_url, "https://api.acme.test/v1");  // trailing slashes stripped
  EXPECT_EQ(a->api_key, "sk-provider");
  EXPECT_EQ(a->api_key_source, "env TG_TEST_PROVIDER_KEY");
  EXPECT_EQ(a->upstream_model, std::optional<std::string>("acme-small"));
  const gw::providers::header_list want_a = {{"OpenAI-Organization", "org-123"},
                                             {"X-Team", "base"}};
  EXPECT_EQ(a->headers, want_a);
  EXPECT_EQ(a->timeout.connect.count(), 1000);
  EXPECT_EQ(a->timeout.first_byte.count(), 2000);
  EXPECT_EQ(a->timeout.total.count(), 3000);
  EXPECT_EQ(a->timeout.stream_idle.count(), 4000);
  EXPECT_EQ(a->retry.max_attempts, 5);
  EXPECT_EQ(a->retry.base_delay.count(), 10);
  EXPECT_EQ(a->retry.max_delay.count(), 20);
  EXPECT_EQ(a->breaker.failure_threshold, 7);
  EXPECT_EQ(a->breaker.cooldown.count(), 8000);
  EXPECT_EQ(a->max_concurrency, 9);

  const auto* b = r.cfg->find_target("overrides");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->provider, "acme");
  EXPECT_EQ(b->base_url, "http://proxy.internal:8080/acme");
  EXPECT_EQ(b->api_key, "sk-target");
  EXPECT_EQ(b->api_key_source, "env TG_TEST_TARGET_KEY");
  // Same header name (any case) replaces the provider's value in place; new names are appended.
  const gw::providers::header_list want_b = {
      {"OpenAI-Organization", "org-123"}, {"X-Team", "override"}, {"X-Extra", "1"}};
  EXPECT_EQ(b->headers, want_b);
  EXPECT_EQ(b->timeout.connect.count(), 1000);       // inherited
  EXPECT_EQ(b->timeout.first_byte.count(), 99'000);  // overridden
  EXPECT_EQ(b->timeout.total.count(), 3000);
  EXPECT_EQ(b->retry.max_attempts, 1);
  EXPECT_EQ(b->retry.base_delay.count(), 10);
  EXPECT_EQ(b->breaker.failure_threshold, 7);
  EXPECT_EQ(b->breaker.cooldown.count(), 1);
  EXPECT_EQ(b->max_concurrency, 0);
}

TEST(config, target_key_overrides_provider_key_setting) {
  scoped_env unset("TG_TEST_NO_KEY", std::nullopt);
  // The provider's key variable is unset, but the target brings its own (optional) key.
  const load_result r = load(R"(
auth: none
providers:
  p:
    base_url: http://h
    api_key_env: TG_TEST_NO_KEY
targets:
  uses-provider-key: {provider: p}
  own-key:
    provider: p
    api_key: ${TG_TEST_NO_KEY:-}
models:
  m: [uses-provider-key, own-key]
)");
  EXPECT_FALSE(r.cfg->find_target("uses-provider-key")->enabled);
  EXPECT_TRUE(r.cfg->find_target("own-key")->enabled);
  EXPECT_TRUE(has_warning_containing(
      r, "target 'uses-provider-key' is disabled: environment variable TG_TEST_NO_KEY is not set "
         "(test.yaml:5: providers.p.api_key_env)"));
}

TEST(config, target_errors) {
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    model: gpt-4o-mini
)", 3, "targets.t", "needs either 'provider'"));
  EXPECT_TRUE(fails_with(R"(
auth: none
providers:
  openai: {base_url: "https://api.openai.com/v1"}
targets:
  t:
    provider: opnai
)", 6, "targets.t.provider", "unknown provider 'opnai' (did you mean 'openai'?)"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    provider: openai
)", 4, "targets.t.provider", "there is no 'providers' section"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    base_url: ftp://h/v1
)", 4, "targets.t.base_url", "must start with http:// or https://"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    base_url: "https:///v1"
)", 4, "targets.t.base_url", "has no host"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    base_url: "http://h"
    model: ""
)", 5, "targets.t.model", "must not be empty"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  "bad name":
    base_url: "http://h"
)", 3, "targets.bad name", "target names use letters"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    base_url: "http://h"
    timeouts:
      connect_ms: -1
)", 6, "targets.t.timeouts.connect_ms", "must not be negative (got -1)"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    base_url: "http://h"
    retry: {max_attempts: 0}
)", 5, "targets.t.retry.max_attempts", "must be at least 1 (got 0)"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    base_url: "http://h"
    retry: {base_delay_ms: 500, max_delay_ms: 100}
)", 3, "targets.t.retry", "max_delay_ms (100) is less than base_delay_ms (500)"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    base_url: "http://h"
    max_concurrency: lots
)", 5, "targets.t.max_concurrency", "expected an integer, got 'lots'"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t: "http://h"
)", 3, "targets.t", "expected a map, got a single value"));
}

TEST(config, provider_errors_are_reported_even_when_unused) {
  EXPECT_TRUE(fails_with(R"(
auth: none
providers:
  unused:
    base_url: http://h
    timeouts: {connect_ms: 5s}
)", 5, "providers.unused.timeouts.connect_ms", "expected an integer, got '5s'"));
  EXPECT_TRUE(fails_with(R"(
auth: none
providers:
  p:
    base_url: http://h
    model: x
)", 5, "providers.p.model", "unknown key 'model'"));
  EXPECT_TRUE(fails_with(R"(
auth: none
providers:
  p:
    base_url: http://h
    api_key: "${BROKEN"
)", 5, "providers.p.api_key", "unterminated '${'"));
}

TEST(config, header_errors) {
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    base_url: http://h
    headers:
      Content-Length: "5"
)", 6, "targets.t.headers.Content-Length", "set by tollgate"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    base_url: http://h
    headers:
      "Bad Header": x
)", 6, "targets.t.headers.Bad Header", "not a valid HTTP header name"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    base_url: http://h
    api_key: sk-literal
    headers: {Authorization: "Bearer other"}
)", 3, "targets.t.headers.Authorization", "conflicts with the target's API key"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    base_url: http://h
    headers: [a, b]
)", 5, "targets.t.headers", "expected a map, got a list"));
  // Without an API key, a custom Authorization header is how some upstreams authenticate.
  const load_result r = load(R"(
auth: none
targets:
  t:
    base_url: http://h
    headers: {Authorization: "Basic abc"}
models: {m: t}
)");
  ASSERT_EQ(r.cfg->find_target("t")->headers.size(), 1u);
}

// ---- models ----------------------------------------------------------------------------------

TEST(config, models_forms_and_lookup) {
  const load_result r = load(R"(
auth: none
targets:
  a: {base_url: "http://a"}
  b: {base_url: "http://b"}
models:
  "*": [b]
  gpt-4o-mini: [a, b]
  fast: a
)");
  const config& c = *r.cfg;
  ASSERT_EQ(c.models.size(), 3u);  // file order
  EXPECT_EQ(c.models[0].name, "*");
  EXPECT_EQ(c.models[1].name, "gpt-4o-mini");
  EXPECT_EQ(c.models[2].name, "fast");

  const auto* exact = c.find_alias("gpt-4o-mini");
  ASSERT_NE(exact, nullptr);
  EXPECT_EQ(exact->name, "gpt-4o-mini");  // exact match wins over an earlier "*"
  EXPECT_EQ(exact->targets, (std::vector<std::string>{"a", "b"}));
  const auto* fast = c.find_alias("fast");
  ASSERT_NE(fast, nullptr);
  EXPECT_EQ(fast->targets, std::vector<std::string>{"a"});
  const auto* other = c.find_alias("some-other-model");
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->name, "*");
  EXPECT_EQ(other->targets, std::vector<std::string>{"b"});
  EXPECT_EQ(c.find_alias("GPT-4O-MINI")->name, "*");  // names are case-sensitive

  EXPECT_NE(c.find_target("a"), nullptr);
  EXPECT_EQ(c.find_target("c"), nullptr);
}

TEST(config, find_alias_without_wildcard_returns_null) {
  const load_result r = load(minimal);
  EXPECT_NE(r.cfg->find_alias("m"), nullptr);
  EXPECT_EQ(r.cfg->find_alias("other"), nullptr);
  EXPECT_EQ(r.cfg->find_alias(""), nullptr);
}

TEST(config, model_errors) {
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  openai-mini: {base_url: "http://h"}
models:
  gpt-4o-mini:
    - openai-mini
    - openai-mni
)", 5, "models.gpt-4o-mini", "unknown target 'openai-mni' (did you mean 'openai-mini'?)"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t: {base_url: "http://h"}
models:
  m: x
)", 5, "models.m", "unknown target 'x'"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t: {base_url: "http://h"}
models:
  m: nope
)", 5, "models.m", "unknown target 'nope'"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t: {base_url: "http://h"}
models:
  m: []
)", 5, "models.m", "at least one target"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t: {base_url: "http://h"}
models:
  m: [t, t]
)", 5, "models.m", "listed twice"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t: {base_url: "http://h"}
models:
  m: {target: t}
)", 5, "models.m.target", "unknown key 'target' (did you mean 'targets'?)"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t: {base_url: "http://h"}
models:
  m: {targets: [t], strategy: cheapest}
)", 5, "models.m.strategy", "expected ordered or cost"));
}

// ---- files -----------------------------------------------------------------------------------

TEST(config, unreadable_file_is_a_runtime_error_naming_file_and_cause) {
  const std::string path = "/nonexistent/tollgate/config.yaml";
  try {
    load_config_file(path);
    FAIL() << "loaded";
  } catch (const config_error& e) {
    FAIL() << "config_error for a missing file: " << e.what();
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find("No such file or directory"), std::string::npos) << what;
  }
  const std::string dir = std::filesystem::temp_directory_path().string();
  try {
    load_config_file(dir);
    FAIL() << "loaded a directory";
  } catch (const config_error& e) {
    FAIL() << "config_error for a directory: " << e.what();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("Is a directory"), std::string::npos) << e.what();
  }
}

TEST(config, load_config_file_reports_the_path) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("tollgate_config_test_" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(path) << "auth: none\ntargets:\n  t: {base_url: http://h}\nmodels:\n  m: x\n";
  try {
    load_config_file(path.string());
    FAIL() << "loaded";
  } catch (const config_error& e) {
    EXPECT_EQ(e.file(), path.string());
    EXPECT_EQ(std::string(e.what()), path.string() + ":5: models.m: unknown target 'x'");
  }
  std::ofstream(path) << yaml(minimal);
  const load_result r = load_config_file(path.string());
  EXPECT_EQ(r.cfg->source_file, path.string());
  std::filesystem::remove(path);
}

TEST(config, every_example_config_loads) {
  const std::filesystem::path dir =
      std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "configs";
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  // The variables the examples need; the provider keys are set so that every target is enabled.
  scoped_env vars[] = {
      {"OPENAI_API_KEY", "sk-test-openai"},
      {"TOGETHER_API_KEY", "test-together"},
      {"GROQ_API_KEY", "gsk-test"},
      {"FIREWORKS_API_KEY", "fw-test"},
      {"TOLLGATE_CLIENT_KEY", "client-key-for-tests"},
      {"UPSTREAM_BASE_URL", "http://127.0.0.1:9999/v1"},
      {"UPSTREAM_API_KEY", "sk-upstream"},
      {"TOLLGATE_PORT", std::nullopt},
      {"TOLLGATE_DATA_DIR", std::nullopt},
      {"VLLM_BASE_URL", std::nullopt},
      {"VLLM_MODEL", std::nullopt},
      {"VLLM_API_KEY", std::nullopt},
  };
  std::vector<std::string> loaded;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    if (f.path().extension() != ".yaml" && f.path().extension() != ".yml") continue;
    if (f.path().filename() == "pricing.yaml") continue;  // the price table, tested by pricing_test
    SCOPED_TRACE(f.path().string());
    load_result r;
    try {
      r = load_config_file(f.path().string());
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
      continue;
    }
    loaded.push_back(f.path().filename().string());
    EXPECT_GE(r.cfg->targets.size(), 1u);
    EXPECT_GE(r.cfg->models.size(), 1u);
    for (const auto& [name, t] : r.cfg->targets) {
      EXPECT_TRUE(t.enabled) << name << ": " << t.disabled_reason;
    }
    for (const std::string& w : r.warnings) {
      EXPECT_EQ(w, "client authentication is off (auth: none)");
    }
    ASSERT_FALSE(r.cfg->server.listeners.empty());
    EXPECT_EQ(r.cfg->server.listeners[0].address, "127.0.0.1");
    EXPECT_EQ(r.cfg->server.listeners[0].port, 8080);
  }
  for (const char* want : {"tollgate.yaml", "passthrough.yaml", "openai.yaml", "together.yaml",
                           "groq.yaml", "fireworks.yaml", "vllm.yaml"}) {
    EXPECT_NE(std::find(loaded.begin(), loaded.end(), want), loaded.end()) << want;
  }
}

TEST(config, default_config_without_provider_keys_disables_targets_with_warnings) {
  const std::filesystem::path file = std::filesystem::path(__FILE__).parent_path().parent_path()
                                         .parent_path() / "configs" / "tollgate.yaml";
  scoped_env vars[] = {
      {"OPENAI_API_KEY", std::nullopt},   {"TOGETHER_API_KEY", std::nullopt},
      {"GROQ_API_KEY", "gsk-test"},       {"FIREWORKS_API_KEY", ""},
      {"TOLLGATE_PORT", "18080"},         {"TOLLGATE_DATA_DIR", "/tmp/tollgate-data"},
  };
  const load_result r = load_config_file(file.string());
  EXPECT_FALSE(r.cfg->auth.enabled);
  EXPECT_EQ(r.cfg->server.listeners[0].port, 18080);
  EXPECT_EQ(r.cfg->server.data_dir, "/tmp/tollgate-data");
  const auto* openai = r.cfg->find_target("openai-gpt-4o-mini");
  ASSERT_NE(openai, nullptr);
  EXPECT_FALSE(openai->enabled);
  EXPECT_EQ(openai->disabled_reason, "environment variable OPENAI_API_KEY is not set");
  const auto* groq = r.cfg->find_target("groq-llama-3.1-8b");
  ASSERT_NE(groq, nullptr);
  EXPECT_TRUE(groq->enabled);
  EXPECT_EQ(groq->api_key_source, "env GROQ_API_KEY");
  EXPECT_TRUE(has_warning_containing(r, "target 'openai-gpt-4o-mini' is disabled"));
  EXPECT_TRUE(has_warning_containing(r, "model 'gpt-4o' has no enabled target"));
  EXPECT_FALSE(has_warning_containing(r, "model 'llama-3.1-8b'"));
  for (const std::string& w : r.warnings) {
    EXPECT_EQ(w.find("gsk-test"), std::string::npos) << w;  // never the key itself
  }
}

TEST(config, passthrough_forwards_client_model_names) {
  const std::filesystem::path file = std::filesystem::path(__FILE__).parent_path().parent_path()
                                         .parent_path() / "configs" / "passthrough.yaml";
  scoped_env url("UPSTREAM_BASE_URL", "https://api.example.test/v1/");
  scoped_env key("UPSTREAM_API_KEY", std::nullopt);
  const load_result r = load_config_file(file.string());
  const auto* t = r.cfg->find_target("upstream");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->base_url, "https://api.example.test/v1");
  EXPECT_FALSE(t->upstream_model.has_value());
  EXPECT_FALSE(t->enabled);  // no key -> disabled, not a load failure
  const auto* alias = r.cfg->find_alias("any-model-name");
  ASSERT_NE(alias, nullptr);
  EXPECT_EQ(alias->targets, std::vector<std::string>{"upstream"});
}

}  // namespace

// ---- kind: local targets -------------------------------------------------------------------

TEST(config, local_target_settings_and_huge_pages) {
  const load_result r = load(R"(
auth: none
targets:
  loc:
    kind: local
    model_path: /models/m.gguf
    context_size: 512
    kv_budget_mb: 64
    threads: 2
    max_batch_tokens: 256
    max_queue: 8
  mapped:
    kind: local
    model_path: /models/m.gguf
    huge_pages: false
models:
  m: loc
)");
  const auto& loc = r.cfg->targets.at("loc").local;
  EXPECT_EQ(loc.model_path, "/models/m.gguf");
  EXPECT_EQ(loc.context_size, 512);
  EXPECT_EQ(loc.kv_budget_bytes, 64 * 1024 * 1024);
  EXPECT_EQ(loc.threads, 2);
  EXPECT_EQ(loc.max_batch_tokens, 256);
  EXPECT_EQ(loc.max_queue, 8);
  EXPECT_TRUE(loc.huge_pages);  // the default: weights read into huge pages
  EXPECT_FALSE(r.cfg->targets.at("mapped").local.huge_pages);

  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  loc:
    kind: local
    model_path: /models/m.gguf
    huge_pages: sometimes
models:
  m: loc
)", 6, "targets.loc.huge_pages", "true or false"));
  EXPECT_TRUE(fails_with(R"(
auth: none
targets:
  t:
    base_url: http://127.0.0.1:8000/v1
    huge_pages: true
models:
  m: t
)", 5, "targets.t.huge_pages", "only for targets with kind: local"));
}
