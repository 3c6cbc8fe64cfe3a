// The Redis sink against a real redis-server (started and stopped by the test): versioned
// upserts apply only newer sequences, so a replay never moves a profile backwards.

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <map>
#include <string>
#include <thread>

#include <caf/all.hpp>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actors/spawn.hpp"
#include "redis/redis_client.hpp"
#include "test_util.hpp"

namespace {

using namespace keyflow;

/// A free TCP port on 127.0.0.1 (bound and released).
int free_port() {
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

/// A redis-server on a free loopback port for the test's lifetime.
class redis_server {
public:
  redis_server() : port_(free_port()) {
    pid_ = ::fork();
    if (pid_ == 0) {
      auto port = std::to_string(port_);
      ::execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", dir_.path("").c_str(),
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
    throw std::runtime_error("redis-server did not start");
  }
  ~redis_server() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  /// host:port of the server.
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

private:
  test::temp_dir dir_;
  int port_;
  pid_t pid_ = -1;
};

profile_update update(uint64_t seq, double sum) {
  profile_update u;
  u.key = "c-1";
  u.count = seq;
  u.sum = sum;
  u.last_event_time_ms = 1000 + static_cast<int64_t>(seq);
  u.seq = seq;
  return u;
}

/// Sends one batch to the sink and waits until it is written (drain).
void write(caf::scoped_actor& self, const redis_sink_actor& sink, profile_update u) {
  profile_batch b;
  b.updates.push_back(std::move(u));
  self->request(sink, std::chrono::seconds(10), std::move(b))
      .receive([](uint32_t) {}, [](caf::error& e) { FAIL() << caf::to_string(e); });
  self->request(sink, std::chrono::seconds(10), atom::drain_v)
      .receive([](uint64_t) {}, [](caf::error& e) { FAIL() << caf::to_string(e); });
}

TEST(RedisSink, AppliesOnlyNewerSequences) {
  redis_server server;
  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::keyflow>();
  caf::actor_system sys{cfg};
  redis_sink_params p;
  p.address = server.address();
  p.flush_interval = std::chrono::hours(1); // only drain writes
  auto sink = spawn_redis_sink(sys, p);
  caf::scoped_actor self{sys};
  redis::client r{redis::address::parse(server.address())};
  auto field = [&](const std::string& f) {
    for (auto& [k, v] : r.hgetall("profile:c-1"))
      if (k == f)
        return v;
    return std::string{};
  };
  write(self, sink, update(5, 50));
  EXPECT_EQ(field("count"), "5");
  EXPECT_EQ(field("_seq"), "5");
  write(self, sink, update(3, 30)); // a replay of an older state: refused
  EXPECT_EQ(field("count"), "5");
  EXPECT_EQ(field("sum"), "50");
  write(self, sink, update(5, 50)); // the same version again: unchanged
  EXPECT_EQ(field("count"), "5");
  write(self, sink, update(7, 70)); // newer: applied
  EXPECT_EQ(field("count"), "7");
  EXPECT_EQ(field("sum"), "70");
  EXPECT_EQ(field("last_event_time_ms"), "1007");
  caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
}

TEST(RedisSink, WritesManyKeysInBatchedCalls) {
  redis_server server;
  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::keyflow>();
  caf::actor_system sys{cfg};
  redis_sink_params p;
  p.address = server.address();
  p.flush_interval = std::chrono::hours(1);
  auto sink = spawn_redis_sink(sys, p);
  caf::scoped_actor self{sys};
  profile_batch b;
  for (int i = 0; i < 1000; ++i) { // more than one script call's worth of keys
    auto u = update(static_cast<uint64_t>(i + 1), i);
    u.key = "k" + std::to_string(i);
    b.updates.push_back(std::move(u));
  }
  self->request(sink, std::chrono::seconds(10), std::move(b))
      .receive([](uint32_t) {}, [](caf::error& e) { FAIL() << caf::to_string(e); });
  self->request(sink, std::chrono::seconds(10), atom::drain_v)
      .receive([](uint64_t n) { EXPECT_EQ(n, 1000u); },
               [](caf::error& e) { FAIL() << caf::to_string(e); });
  redis::client r{redis::address::parse(server.address())};
  EXPECT_EQ(r.command({"DBSIZE"}), "1000");
  std::map<std::string, std::string> h;
  for (auto& [k, v] : r.hgetall("profile:k999"))
    h[k] = v;
  EXPECT_EQ(h["count"], "1000");
  EXPECT_EQ(h["sum"], "999");
  caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
}

} // namespace
