#pragma once
/// \file
/// A real redis-server for tests: started on a free loopback port, stopped by its PID.

#include <chrono>
#include <csignal>
#include <stdexcept>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redis/redis_client.hpp"
#include "test_util.hpp"

namespace keyflow::test {

/// A redis-server on a loopback port for the test's lifetime; can be paused (SIGSTOP).
class redis_server {
public:
  explicit redis_server(int port = free_port()) : port_(port) {
    pid_ = ::fork();
    if (pid_ == 0) {
      auto p = std::to_string(port_);
      ::execlp("redis-server", "redis-server", "--port", p.c_str(), "--bind", "127.0.0.1", "--save",
               "", "--appendonly", "no", "--dir", dir_.path("").c_str(), "--logfile", "redis.log",
               static_cast<char*>(nullptr));
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
    stop();
    throw std::runtime_error("redis-server did not start");
  }
  ~redis_server() { stop(); }
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  /// host:port of the server.
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  /// Freezes the server (it accepts connections but answers nothing).
  void pause() { ::kill(pid_, SIGSTOP); }
  /// Lets a paused server run again.
  void resume() { ::kill(pid_, SIGCONT); }

private:
  void stop() {
    if (pid_ <= 0)
      return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  temp_dir dir_;
  int port_;
  pid_t pid_ = -1;
};

} // namespace keyflow::test
