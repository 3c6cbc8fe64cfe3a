// A loopback TCP relay: accepts on 127.0.0.1:<port> and pipes bytes to a fixed upstream.
// Used by embedded_kafka to give the librdkafka mock cluster (which only listens on
// ephemeral ports) a fixed, well-known bootstrap port.
#pragma once

#include <cstdint>
#include <string>
#include <thread>

namespace keyflow::kafka {

/// Relays every TCP connection accepted on 127.0.0.1:port to upstream_host:upstream_port,
/// byte for byte in both directions (half-closes included), on one background thread (poll
/// loop, non-blocking sockets). The upstream connection opens when the client first sends;
/// a client that stays silent for 10 s is dropped.
class tcp_forwarder {
public:
  /// Most connections relayed at once; further ones are accepted and closed at once.
  static constexpr std::size_t max_connections = 512;

  /// Binds 127.0.0.1:port (0 = any free port) and starts relaying.
  /// Throws std::runtime_error if the port cannot be bound.
  tcp_forwarder(std::uint16_t port, std::string upstream_host, std::uint16_t upstream_port);

  /// Stops the relay thread and closes every socket.
  ~tcp_forwarder();

  tcp_forwarder(const tcp_forwarder&) = delete;
  tcp_forwarder& operator=(const tcp_forwarder&) = delete;

  /// The port actually listened on (useful when constructed with port 0).
  std::uint16_t port() const noexcept { return port_; }

private:
  void run();

  std::string upstream_host_;
  std::uint16_t upstream_port_;
  std::uint16_t port_ = 0;
  int listen_fd_ = -1;
  int wake_fd_[2] = {-1, -1};
  std::thread thread_;
};

} // namespace keyflow::kafka
