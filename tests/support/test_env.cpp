#include "tests/support/test_env.h"

#include <unistd.h>

#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>

namespace gw::test {

std::filesystem::path source_dir() {
  // This file is <repo>/tests/support/test_env.cpp.
  std::filesystem::path p = std::filesystem::path(__FILE__);
  std::error_code ec;
  if (p.is_relative()) p = std::filesystem::absolute(p, ec);
  return p.parent_path().parent_path().parent_path().lexically_normal();
}

std::filesystem::path shared_dir() {
  std::filesystem::path dir;
  const char* env = std::getenv("TOLLGATE_SHARED_DIR");
  if (env != nullptr && *env != '\0') {
    dir = env;
  } else {
    dir = (source_dir() / ".." / "shared").lexically_normal();
  }
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return dir;

  const char* ci = std::getenv("CI");
  if (ci != nullptr && std::string(ci) == "true") {
    throw std::runtime_error("*** tollgate tests: shared directory '" + dir.string() +
                             "' does not exist. CI must provide it (or set TOLLGATE_SHARED_DIR); "
                             "tests needing it cannot be skipped under CI. ***");
  }
  return {};
}

temp_dir::temp_dir(std::string_view tag) {
  path = std::filesystem::temp_directory_path() / ("tollgate-" + std::string(tag) + "-" + std::to_string(::getpid()) +
                                                   "-" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(path);
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

}  // namespace gw::test
