// tcp_forwarder: relays bytes both ways, passes half-closes on, survives a dead upstream,
// and is not stalled by idle clients.
#include "kafka/tcp_forwarder.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using keyflow::kafka::tcp_forwarder;

namespace {

/// Listens on 127.0.0.1:0 and returns the socket; stores the port.
int listen_any(std::uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 64) != 0)
    throw std::runtime_error("listen failed");
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port = ntohs(addr.sin_port);
  return fd;
}

/// Echo server: echoes every byte, and after the client's FIN sends "<EOF>" and closes.
class echo_server {
public:
  echo_server() : fd_(listen_any(port_)), thread_([this] { serve(); }) {}
  ~echo_server() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
    for (auto& t : sessions_)
      t.join();
  }
  /// The port it listens on.
  std::uint16_t port() const { return port_; }

private:
  void serve() {
    for (;;) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0)
        return;
      sessions_.emplace_back([c] {
        char buf[8192];
        ssize_t n;
        while ((n = ::recv(c, buf, sizeof(buf), 0)) > 0)
          ::send(c, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL);
        ::send(c, "<EOF>", 5, MSG_NOSIGNAL);
        ::close(c);
      });
    }
  }
  std::uint16_t port_ = 0;
  int fd_;
  std::vector<std::thread> sessions_;
  std::thread thread_;
};

/// Connects to 127.0.0.1:port with a 10 s receive timeout.
int connect_to(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    throw std::runtime_error("connect failed");
  return fd;
}

/// Sends `data` (from a second thread), half-closes, and returns all bytes read until EOF.
std::string exchange(std::uint16_t port, const std::string& data) {
  int fd = connect_to(port);
  std::thread writer([&] {
    std::size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0)
        break;
      off += static_cast<std::size_t>(n);
    }
    ::shutdown(fd, SHUT_WR);
  });
  std::string got;
  char buf[65536];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0)
    got.append(buf, static_cast<std::size_t>(n));
  writer.join();
  ::close(fd);
  return got;
}

} // namespace

TEST(tcp_forwarder, relays_large_stream_and_half_close) {
  echo_server server;
  tcp_forwarder fwd(0, "127.0.0.1", server.port());
  ASSERT_NE(fwd.port(), 0);
  std::string data(8 * 1024 * 1024, '\0');
  for (std::size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<char>((i * 131) ^ (i >> 9));
  for (int round = 0; round < 3; ++round) {
    const std::string want = data + "<EOF>";
    const std::string got = exchange(fwd.port(), data);
    auto diff = std::mismatch(got.begin(), got.end(), want.begin(), want.end());
    ASSERT_TRUE(got == want) << "round " << round << ": got " << got.size() << " bytes, want "
                             << want.size() << "; first difference at byte "
                             << (diff.first - got.begin());
  }
  // The upstream connection opens only once the client speaks (Kafka clients always do):
  // a client that closes without sending anything never reaches the upstream.
  EXPECT_EQ(exchange(fwd.port(), ""), "");
  EXPECT_EQ(exchange(fwd.port(), "x"), "x<EOF>");
}

TEST(tcp_forwarder, many_concurrent_connections) {
  echo_server server;
  tcp_forwarder fwd(0, "127.0.0.1", server.port());
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 40; ++i)
    clients.emplace_back([&, i] {
      std::string msg(1000 + i * 100, static_cast<char>('a' + i % 26));
      if (exchange(fwd.port(), msg) == msg + "<EOF>")
        ++ok;
    });
  for (auto& t : clients)
    t.join();
  EXPECT_EQ(ok.load(), 40);
}

TEST(tcp_forwarder, dead_upstream_closes_client) {
  std::uint16_t dead_port = 0;
  ::close(listen_any(dead_port)); // nothing listens there any more
  tcp_forwarder fwd(0, "127.0.0.1", dead_port);
  EXPECT_EQ(exchange(fwd.port(), "hello"), "");
}

TEST(tcp_forwarder, port_in_use_and_bad_upstream_throw) {
  std::uint16_t port = 0;
  int fd = listen_any(port);
  EXPECT_THROW(tcp_forwarder(port, "127.0.0.1", 9), std::runtime_error);
  ::close(fd);
  EXPECT_THROW(tcp_forwarder(0, "not-an-address", 9), std::runtime_error);
}

TEST(tcp_forwarder, idle_clients_do_not_stall_others) {
  echo_server server;
  tcp_forwarder fwd(0, "127.0.0.1", server.port());
  std::vector<int> idle;
  for (int i = 0; i < 100; ++i)
    idle.push_back(connect_to(fwd.port()));
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(exchange(fwd.port(), "ping"), "ping<EOF>");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  for (int fd : idle)
    ::close(fd);
}
