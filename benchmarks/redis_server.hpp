#pragma once
/// \file
/// A real redis-server for a benchmark: started on a free loopback port in a temporary
/// directory (no persistence), stopped on destruction.

#include <memory>
#include <string>

#include <sys/types.h>

#include "benchmarks/bench_util.hpp"

namespace keyflow::bench {

/// A redis-server child process for the lifetime of the object.
class redis_server {
public:
  /// Starts `redis-server` from $PATH and waits until it answers PING; throws
  /// std::runtime_error if it cannot be started.
  redis_server();
  /// Stops the server (SIGTERM) and waits for it.
  ~redis_server();
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  /// "127.0.0.1:PORT".
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  /// CPU seconds (user + system) the server process has used so far.
  double cpu_seconds() const;

  /// True if a redis-server binary is on $PATH.
  static bool available();

private:
  temp_dir dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

} // namespace keyflow::bench
