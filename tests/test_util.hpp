#pragma once
/// \file
/// Helpers shared by the unit tests.

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace keyflow::test {

/// A TCP port on 127.0.0.1 that was free a moment ago (bound and released).
inline std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

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
