/// \file
/// The Redis sink (actors/redis_sink.cpp) against a real redis-server, started and stopped by
/// the test: the configured fields are written under their output names, key fields are
/// appended to the hash key, and upserts are versioned by (event time, sequence, offset) in
/// the hash's `_v` field, so an older version never overwrites a newer one and a replay
/// changes nothing.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actors/spawn.hpp"
#include "redis/redis_client.hpp"
#include "redis_test_server.hpp"
#include "test_util.hpp"

namespace {

using namespace keyflow;

using test::redis_server;

/// A result record of `key`: version (event time `t`, sequence `seq`, offset `offset`) and
/// fields [customer_id, count, total, channel].
record result(const std::string& key, int64_t t, uint64_t seq, int64_t offset, int64_t count,
              double total, std::string channel = "web") {
  record r;
  r.key = key;
  r.event_time_ms = t;
  r.seq = seq;
  r.offset = offset;
  r.fields = {value::of(key), value::of(count), value::of(total), value::of(std::move(channel))};
  return r;
}

/// A sink writing count and total (as "n" and "total") under "profile:<key>".
redis_sink_params profile_sink(const std::string& address) {
  redis_sink_params p;
  p.address = address;
  p.key_prefix = "profile:";
  p.sink_id = "profiles";
  p.fields = {"n", "total"};
  p.slots = {1, 2};
  p.flush_interval = std::chrono::hours(1); // only drain writes
  return p;
}

/// An actor system with Keyflow's message types, a redis-server and a client of it.
struct redis_sink_fixture : ::testing::Test {
  redis_server server;
  caf::actor_system_config cfg = [] {
    caf::actor_system_config c;
    c.add_message_types<caf::id_block::keyflow>();
    return c;
  }();
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  redis::client client{redis::address::parse(server.address())};

  /// Sends one batch to the sink and waits until it is written (drain); returns the
  /// drain's count of records written so far.
  uint64_t write(const redis_sink_actor& sink, std::vector<record> records) {
    record_batch b;
    b.records = std::move(records);
    self->request(sink, std::chrono::seconds(10), std::move(b))
        .receive([](uint32_t credit) { EXPECT_EQ(credit, 1u); },
                 [](caf::error& e) { FAIL() << caf::to_string(e); });
    uint64_t written = 0;
    self->request(sink, std::chrono::seconds(10), atom::drain_v)
        .receive([&](uint64_t n) { written = n; },
                 [](caf::error& e) { FAIL() << caf::to_string(e); });
    return written;
  }

  /// The hash at `key` as a map.
  std::map<std::string, std::string> hash(const std::string& key) {
    std::map<std::string, std::string> h;
    for (auto& [k, v] : client.hgetall(key))
      h[k] = v;
    return h;
  }

  ~redis_sink_fixture() override {
    if (sink_)
      self->send_exit(sink_, caf::exit_reason::user_shutdown);
  }

  /// Spawns the sink under test (stopped with the fixture).
  redis_sink_actor spawn(redis_sink_params p) {
    return sink_ = spawn_redis_sink(sys, std::move(p));
  }

private:
  redis_sink_actor sink_;
};

/// The `_v` of a version: three 20-digit numbers.
std::string version(int64_t t, uint64_t seq, int64_t offset) {
  return fmt::format("{:020}:{:020}:{:020}", t, seq, offset);
}

using RedisSink = redis_sink_fixture;

TEST_F(RedisSink, WritesTheConfiguredFieldsUnderTheirNames) {
  auto sink = spawn(profile_sink(server.address()));
  EXPECT_EQ(write(sink, {result("c-1", 1000, 5, 42, 5, 12.25), result("c-2", 7, 0, -1, 1, 0.1)}),
            2u);
  EXPECT_EQ(hash("profile:c-1"),
            (std::map<std::string, std::string>{
                {"n", "5"}, {"total", "12.25"}, {"_v", version(1000, 5, 42)}}));
  // Doubles round-trip exactly (17 digits); a negative offset (no source offset) is 0.
  EXPECT_EQ(hash("profile:c-2"),
            (std::map<std::string, std::string>{
                {"n", "1"}, {"total", "0.10000000000000001"}, {"_v", version(7, 0, 0)}}));
  // An absent field is written as "".
  auto r = result("c-3", 1, 1, 1, 1, 1);
  r.fields[2] = value{};
  write(sink, {r});
  EXPECT_EQ(hash("profile:c-3").at("total"), "");
  EXPECT_EQ(client.command({"DBSIZE"}), "3");
}

TEST_F(RedisSink, KeyFieldsAreAppendedToTheKey) {
  auto p = profile_sink(server.address());
  p.key_prefix = "by-channel:";
  p.key_slots = {3, 1};
  auto sink = spawn(p);
  write(sink, {result("c-1", 10, 1, 1, 1, 2.5, "web"), result("c-1", 11, 2, 2, 2, 3.5, "app"),
               result("c-1", 12, 3, 3, 1, 4.5, "web")});
  EXPECT_EQ(client.command({"DBSIZE"}), "2");
  EXPECT_EQ(hash("by-channel:c-1:web:1").at("total"), "4.5") << "the newer of two updates";
  EXPECT_EQ(hash("by-channel:c-1:app:2").at("total"), "3.5");
  EXPECT_EQ(hash("by-channel:c-1:web:2"), (std::map<std::string, std::string>{}));
}

TEST_F(RedisSink, AnOlderVersionNeverOverwritesANewerOne) {
  auto sink = spawn(profile_sink(server.address()));
  write(sink, {result("c-1", 2000, 5, 50, 5, 50)});
  const auto current = hash("profile:c-1");
  EXPECT_EQ(current.at("n"), "5");
  // Older by event time (despite a higher sequence), by sequence, by offset: refused.
  for (const auto& older : {result("c-1", 1999, 9, 99, 1, 1), result("c-1", 2000, 4, 99, 2, 2),
                            result("c-1", 2000, 5, 49, 3, 3)}) {
    write(sink, {older});
    EXPECT_EQ(hash("profile:c-1"), current) << older.event_time_ms << "/" << older.seq;
  }
  // Within one batch the newer update wins whatever the order.
  write(sink, {result("c-1", 3000, 1, 1, 7, 70), result("c-1", 2500, 1, 1, 6, 60)});
  EXPECT_EQ(hash("profile:c-1").at("n"), "7");
  // Newer by each part of the version: applied.
  write(sink, {result("c-1", 3000, 1, 2, 8, 80)});
  EXPECT_EQ(hash("profile:c-1").at("n"), "8");
  write(sink, {result("c-1", 3000, 2, 0, 9, 90)});
  EXPECT_EQ(hash("profile:c-1").at("n"), "9");
  EXPECT_EQ(hash("profile:c-1").at("_v"), version(3000, 2, 0));
}

TEST_F(RedisSink, ReplaysAreIdempotent) {
  auto sink = spawn(profile_sink(server.address()));
  std::vector<record> history;
  for (int i = 1; i <= 30; ++i)
    history.push_back(
        result("c-" + std::to_string(i % 4), 1000 + i, static_cast<uint64_t>(i), i, i, i * 0.5));
  // The first run: in batches of 7.
  for (size_t at = 0; at < history.size(); at += 7)
    write(sink, std::vector<record>(history.begin() + static_cast<long>(at),
                                    history.begin() +
                                        static_cast<long>(std::min(at + 7, history.size()))));
  std::map<std::string, std::map<std::string, std::string>> before;
  for (int k = 0; k < 4; ++k)
    before["c-" + std::to_string(k)] = hash("profile:c-" + std::to_string(k));
  EXPECT_EQ(before["c-1"].at("n"), "29");
  EXPECT_EQ(before["c-2"].at("_v"), version(1030, 30, 30));
  // After a restore, everything since the last checkpoint is replayed, record by record
  // and all at once: nothing moves.
  for (size_t at = 10; at < history.size(); ++at)
    write(sink, {history[at]});
  write(sink, history);
  for (int k = 0; k < 4; ++k)
    EXPECT_EQ(hash("profile:c-" + std::to_string(k)), before["c-" + std::to_string(k)]) << k;
  EXPECT_EQ(client.command({"DBSIZE"}), "4");
}

TEST_F(RedisSink, WritesManyKeysInBatchedCalls) {
  auto sink = spawn(profile_sink(server.address()));
  std::vector<record> many;
  for (int i = 0; i < 1000; ++i) // more than one script call's worth of keys
    many.push_back(result("k" + std::to_string(i), 1, static_cast<uint64_t>(i + 1), i, i + 1, i));
  EXPECT_EQ(write(sink, std::move(many)), 1000u);
  EXPECT_EQ(client.command({"DBSIZE"}), "1000");
  EXPECT_EQ(hash("profile:k999").at("n"), "1000");
  EXPECT_EQ(hash("profile:k999").at("total"), "999");
}

} // namespace

namespace {

using RedisSinkFencing = redis_sink_fixture;

TEST_F(RedisSinkFencing, WritesOfAnOlderGenerationThanTheFenceAreRefused) {
  auto p = profile_sink(server.address());
  p.fence_key = "keyflow:fence:cdp:3";
  p.generation = 65537;
  auto sink = spawn(p);
  // No fence yet, or a fence at the sink's own generation: writes land.
  write(sink, {result("c-1", 1000, 1, 1, 1, 1.0)});
  client.command({"SET", p.fence_key, "65537"});
  write(sink, {result("c-1", 2000, 2, 2, 2, 2.0)});
  EXPECT_EQ(hash("profile:c-1").at("n"), "2");
  // The region moved: its new owner raised the fence. The old owner's newer-looking write
  // (a later version) must not land, now or later.
  client.command({"SET", p.fence_key, "131073"});
  write(sink, {result("c-1", 3000, 3, 3, 99, 99.0), result("c-2", 3000, 1, 4, 1, 1.0)});
  write(sink, {result("c-3", 4000, 1, 5, 1, 1.0)});
  EXPECT_EQ(hash("profile:c-1").at("n"), "2");
  EXPECT_TRUE(hash("profile:c-2").empty());
  EXPECT_TRUE(hash("profile:c-3").empty());
}

TEST_F(RedisSinkFencing, TheNewGenerationWrites) {
  client.command({"SET", "keyflow:fence:cdp:0", "131073"});
  auto p = profile_sink(server.address());
  p.fence_key = "keyflow:fence:cdp:0";
  p.generation = 131073;
  auto sink = spawn(p);
  write(sink, {result("c-9", 1, 1, 1, 7, 7.0)});
  EXPECT_EQ(hash("profile:c-9").at("n"), "7");
}

} // namespace
