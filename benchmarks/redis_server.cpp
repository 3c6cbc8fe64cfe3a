#include "benchmarks/redis_server.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "redis/redis_client.hpp"

namespace keyflow::bench {

namespace {

/// A free TCP port on 127.0.0.1 (bound and released).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free loopback port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

} // namespace

bool redis_server::available() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "");
  for (std::string d; std::getline(dirs, d, ':');)
    if (!d.empty() && ::access((d + "/redis-server").c_str(), X_OK) == 0)
      return true;
  return false;
}

redis_server::redis_server() : dir_("keyflow-bench-redis-"), port_(free_port()) {
  pid_ = ::fork();
  if (pid_ < 0)
    throw std::runtime_error("fork() failed");
  if (pid_ == 0) {
    const auto port = std::to_string(port_);
    const auto log = dir_.path() + "/redis.log";
    ::execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", dir_.path().c_str(), "--logfile",
             log.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  for (int i = 0; i < 100; ++i) {
    try {
      redis::client c{{"127.0.0.1", port_}};
      c.command({"PING"});
      return;
    } catch (const std::exception&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ::kill(pid_, SIGTERM);
  ::waitpid(pid_, nullptr, 0);
  throw std::runtime_error("redis-server did not start on port " + std::to_string(port_));
}

double redis_server::cpu_seconds() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command name (which ends with the last ')'): state is field 3,
  // utime and stime are fields 14 and 15.
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string x;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> x; ++i) {
    if (i == 14)
      utime = std::stod(x);
    else if (i == 15)
      stime = std::stod(x);
  }
  return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

redis_server::~redis_server() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
}

} // namespace keyflow::bench
