#include "kafka/tcp_forwarder.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

namespace keyflow::kafka {

namespace {

using clock = std::chrono::steady_clock;

constexpr std::size_t buffer_size = 64 * 1024;

/// A client that sends nothing for this long after connecting is dropped (its slot freed).
constexpr auto silent_limit = std::chrono::seconds(10);

/// Builds "what: strerror(errno)".
std::string sys_error(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

/// Builds a loopback-or-given IPv4 socket address; throws on a malformed host.
sockaddr_in make_address(const std::string& host, std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1)
    throw std::runtime_error("tcp_forwarder: not an IPv4 address: '" + host + "'");
  return addr;
}

/// Puts fd into non-blocking mode and disables Nagle (Kafka requests are small).
void tune_socket(int fd) {
  int flags = ::fcntl(fd, F_GETFL, 0);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/// One direction of a relayed connection: bytes read from `from` and written to `to`.
struct half {
  int from;
  int to;
  std::vector<char> buf = std::vector<char>(buffer_size);
  std::size_t off = 0; // first unsent byte in buf
  std::size_t len = 0; // unsent bytes in buf
  bool eof = false;    // `from` has sent FIN
  bool shut = false;   // FIN passed on to `to`

  /// Wants to read: buffer empty and no EOF yet.
  bool wants_read() const { return len == 0 && !eof; }

  /// Reads what `from` has into the empty buffer (or notes EOF); false on a socket error.
  bool read_some() {
    if (!wants_read())
      return true;
    ssize_t n = ::recv(from, buf.data(), buf.size(), 0);
    if (n > 0) {
      off = 0;
      len = static_cast<std::size_t>(n);
    } else if (n == 0) {
      eof = true;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      return false;
    }
    return true;
  }

  /// Moves bytes from `from` to `to` as far as possible without blocking.
  /// Returns false on a socket error (the connection must be dropped).
  bool pump(bool readable) {
    if (readable && !read_some())
      return false;
    if (len > 0) {
      ssize_t n = ::send(to, buf.data() + off, len, MSG_NOSIGNAL);
      if (n > 0) {
        off += static_cast<std::size_t>(n);
        len -= static_cast<std::size_t>(n);
      } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return false;
      }
    }
    if (eof && len == 0 && !shut) {
      ::shutdown(to, SHUT_WR);
      shut = true;
    }
    return true;
  }
};

/// Starts a non-blocking connect to addr; returns the socket or -1. `pending` tells whether
/// the connection is still being set up (completion shows as POLLOUT).
int start_connect(const sockaddr_in& addr, bool& pending) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  tune_socket(fd);
  int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  pending = rc != 0;
  if (rc != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// A relayed connection: client <-> upstream. Owns both sockets. The upstream connection
/// is opened only when the client sends its first bytes (Kafka clients always speak
/// first), and without blocking: idle or slow connections never stall the others, and
/// never occupy the mock broker, whose listen backlog is only 5.
struct relay {
  int client;
  int upstream = -1;
  bool connecting = false;
  half up{client, -1};
  half down{-1, client};
  bool failed = false;
  clock::time_point accepted = clock::now();

  explicit relay(int c) : client(c) {}
  relay(const relay&) = delete;
  relay& operator=(const relay&) = delete;
  ~relay() {
    ::close(client);
    if (upstream >= 0)
      ::close(upstream);
  }

  /// Finished: an error, both directions closed, or the client left (or stayed silent for
  /// silent_limit) before speaking.
  bool done(clock::time_point now) const {
    return failed || (up.shut && down.shut) ||
           (upstream < 0 && (up.eof || now - accepted > silent_limit));
  }

  /// Poll entry for the client (index 0) or upstream (index 1) socket. A socket with
  /// nothing to do gets fd -1 (ignored by poll): a hung-up peer would otherwise report
  /// POLLHUP again and again while we wait for the other side to drain.
  pollfd poll_entry(int index) const {
    const half& reader = index == 0 ? up : down;
    const half& writer = index == 0 ? down : up;
    const int fd = index == 0 ? client : upstream;
    bool may_read = reader.wants_read() && !(index == 1 && connecting);
    auto events = static_cast<short>((may_read ? POLLIN : 0) | (writer.len > 0 ? POLLOUT : 0));
    return {events != 0 && fd >= 0 ? fd : -1, events, 0};
  }

  /// Handles poll results for both sockets. POLLHUP counts as readable: unread data may
  /// still wait in the socket, and recv() then reports EOF.
  void handle(const pollfd& c, const pollfd& u, const sockaddr_in& upstream_addr) {
    constexpr short readable = POLLIN | POLLHUP;
    if ((c.revents | u.revents) & (POLLERR | POLLNVAL)) {
      failed = true;
    } else if (upstream < 0) {
      if ((c.revents & readable) && !up.read_some())
        failed = true;
      else if (up.len > 0)
        open_upstream(upstream_addr);
    } else if (connecting) {
      if (u.revents & (POLLOUT | POLLHUP))
        finish_connect();
    } else if (!up.pump((c.revents & readable) != 0) || !down.pump((u.revents & readable) != 0)) {
      failed = true;
    }
  }

private:
  void open_upstream(const sockaddr_in& addr) {
    upstream = start_connect(addr, connecting);
    if (upstream < 0) {
      failed = true;
      return;
    }
    up.to = upstream;
    down.from = upstream;
    if (!connecting && !up.pump(false))
      failed = true;
  }

  void finish_connect() {
    int err = 0;
    socklen_t len = sizeof(err);
    if (::getsockopt(upstream, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      failed = true;
      return;
    }
    connecting = false;
    if (!up.pump(false))
      failed = true;
  }
};

} // namespace

tcp_forwarder::tcp_forwarder(std::uint16_t port, std::string upstream_host,
                             std::uint16_t upstream_port)
    : upstream_host_(std::move(upstream_host)), upstream_port_(upstream_port) {
  make_address(upstream_host_, upstream_port_); // validate early
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0)
    throw std::runtime_error(sys_error("tcp_forwarder: socket"));
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr = make_address("127.0.0.1", port);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 128) != 0) {
    std::string msg = sys_error("cannot listen on 127.0.0.1:" + std::to_string(port));
    ::close(listen_fd_);
    throw std::runtime_error(msg);
  }
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  if (::pipe2(wake_fd_, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::string msg = sys_error("tcp_forwarder: pipe");
    ::close(listen_fd_);
    throw std::runtime_error(msg);
  }
  thread_ = std::thread([this] { run(); });
}

tcp_forwarder::~tcp_forwarder() {
  char byte = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_[1], &byte, 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_fd_[0]);
  ::close(wake_fd_[1]);
}

void tcp_forwarder::run() {
  const sockaddr_in upstream = make_address(upstream_host_, upstream_port_);
  std::vector<std::unique_ptr<relay>> relays;
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({wake_fd_[0], POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (auto& r : relays) {
      fds.push_back(r->poll_entry(0));
      fds.push_back(r->poll_entry(1));
    }
    // Wake up once a second while connections exist, to drop silent ones.
    if (::poll(fds.data(), fds.size(), relays.empty() ? -1 : 1000) < 0) {
      if (errno == EINTR)
        continue;
      return; // cannot happen with valid fds; relays close on return
    }
    if (fds[0].revents != 0)
      return; // stop requested
    for (std::size_t i = 0; i < relays.size(); ++i)
      relays[i]->handle(fds[2 + 2 * i], fds[3 + 2 * i], upstream);
    std::erase_if(relays, [now = clock::now()](const auto& r) { return r->done(now); });
    if (fds[1].revents & POLLIN) {
      int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) {
        if (errno == EMFILE || errno == ENFILE) // out of descriptors: do not spin
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue; // e.g. the client gave up already
      }
      if (relays.size() >= max_connections) {
        ::close(client);
        continue;
      }
      tune_socket(client);
      relays.push_back(std::make_unique<relay>(client));
    }
  }
}

} // namespace keyflow::kafka
