/// \file
/// The cluster lease (src/core/lease.hpp) and the Kafka sink holding records while it is
/// expired: a node that was stalled past the failure timeout must not produce the output of
/// regions the others have moved, and must lose nothing if the lease is renewed.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>

#include <caf/all.hpp>
#include <librdkafka/rdkafka.h>

#include "actors/spawn.hpp"
#include "kafka/client.hpp"
#include "kafka/embedded_kafka.hpp"

namespace {

using namespace keyflow;
using namespace std::chrono_literals;

TEST(WorkLease, ValidUntilItsDeadline) {
  work_lease l;
  EXPECT_TRUE(l.valid()); // a fresh lease never expires
  auto now = work_lease::clock_type::now();
  l.renew_until(now + 1s);
  EXPECT_TRUE(l.valid(now));
  EXPECT_FALSE(l.valid(now + 1s));
  l.renew_until(now - 1ms);
  EXPECT_FALSE(l.valid());
}

/// Records in partition 0 of `topic` (its high watermark).
int64_t records_in(const std::string& bootstrap, const std::string& topic) {
  char err[256];
  auto* rk =
      rd_kafka_new(RD_KAFKA_CONSUMER,
                   kafka::make_conf({{"bootstrap.servers", bootstrap}, {"group.id", "lease-test"}}),
                   err, sizeof err);
  int64_t lo = 0, hi = -1;
  rd_kafka_query_watermark_offsets(rk, topic.c_str(), 0, &lo, &hi, 5000);
  rd_kafka_destroy(rk);
  return hi;
}

TEST(WorkLease, KafkaSinkHoldsRecordsWhileTheLeaseIsExpired) {
  kafka::embedded_kafka kafka{1};
  kafka.create_topic("out", 1);
  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::keyflow>();
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  auto lease = std::make_shared<work_lease>();
  lease->renew_until(work_lease::clock_type::now() - 1ms); // the node was stalled
  kafka_sink_params p;
  p.properties = {{"bootstrap.servers", kafka.bootstrap_servers()}};
  p.sink_id = "dead-letters";
  p.lease = lease;
  auto sink = spawn_kafka_sink(sys, p);
  kafka_batch b;
  for (int i = 0; i < 3; ++i)
    b.messages.push_back({"out", "k" + std::to_string(i), "v"});
  self->request(sink, 10s, b)
      .receive([](uint32_t credit) { EXPECT_EQ(credit, 1u); },
               [](caf::error& e) { FAIL() << caf::to_string(e); });
  // A drain (a checkpoint) cannot vouch for held records.
  bool refused = false;
  self->request(sink, 10s, atom::drain_v)
      .receive([](uint64_t) {}, [&](caf::error&) { refused = true; });
  EXPECT_TRUE(refused);
  EXPECT_EQ(records_in(kafka.bootstrap_servers(), "out"), 0);
  // The lease is renewed (the stall was short and the regions stayed): nothing is lost.
  lease->renew_until(work_lease::clock_type::now() + 1h);
  uint64_t delivered = 0;
  self->request(sink, 30s, atom::drain_v)
      .receive([&](uint64_t n) { delivered = n; },
               [](caf::error& e) { FAIL() << caf::to_string(e); });
  EXPECT_EQ(delivered, 3u);
  EXPECT_EQ(records_in(kafka.bootstrap_servers(), "out"), 3);
  self->send_exit(sink, caf::exit_reason::user_shutdown);
}

} // namespace
