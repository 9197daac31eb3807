#pragma once
// Where tests find files outside the build tree, and where they write their own.
#include <filesystem>
#include <string_view>

namespace gw::test {

// Repository root (derived from this file's location at compile time).
std::filesystem::path source_dir();

// The project's shared/ directory: $TOLLGATE_SHARED_DIR when set and non-empty, else
// <repo>/../shared. When it does not exist: under CI (env CI == "true") throws std::runtime_error
// with a loud message (a test body reports it as a failure); otherwise returns an empty path, and
// the caller should GTEST_SKIP() (see TOLLGATE_SHARED_DIR_OR_SKIP).
std::filesystem::path shared_dir();

// A fresh directory <system temp>/tollgate-<tag>-<pid>-<random>, created by the constructor
// (throws std::filesystem::filesystem_error when it cannot be) and removed with all it holds by
// the destructor (a failure to remove is ignored). Close what writes into it (ledgers, child
// processes) before it goes out of scope.
struct temp_dir {
  std::filesystem::path path;

  explicit temp_dir(std::string_view tag);
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

}  // namespace gw::test

// In a TEST body: declares `var` = shared_dir(), or skips the test when it is unavailable locally.
#define TOLLGATE_SHARED_DIR_OR_SKIP(var)                                              \
  const std::filesystem::path var = ::gw::test::shared_dir();                         \
  if (var.empty()) GTEST_SKIP() << "shared/ directory not found (set TOLLGATE_SHARED_DIR)"
