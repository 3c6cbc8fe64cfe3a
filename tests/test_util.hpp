#pragma once
/// \file
/// Helpers shared by the unit tests.

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace keyflow::test {

/// A temporary directory under /tmp, removed with its contents at the end of the scope.
class temp_dir {
public:
  /// Creates /tmp/keyflow-test-XXXXXX.
  temp_dir() {
    std::string tmpl = "/tmp/keyflow-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  /// Path of `child` inside the directory (not created).
  std::string path(const std::string& child = "state") const { return path_ + "/" + child; }

private:
  std::string path_;
};

} // namespace keyflow::test
