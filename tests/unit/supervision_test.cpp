/// \file
/// The supervision memory (src/core/supervision.hpp): restart backoff per instance, stale
/// failures of older incarnations ignored, suspects from failing batches, attempts counted
/// per record until it is poison; and the supervisor actor (actors/supervisor.cpp) turning
/// an actor's abnormal exit, but not a deliberate one, into a scheduled restart.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>

#include <caf/all.hpp>

#include "actors/spawn.hpp"
#include "core/supervision.hpp"

namespace {

using namespace keyflow;
using namespace std::chrono_literals;

supervision_settings fast() {
  supervision_settings s;
  s.max_attempts = 2;
  s.backoff = 10ms;
  s.backoff_max = 40ms;
  return s;
}

TEST(Supervision, BackoffDoublesUpToTheMaximum) {
  supervision sup{fast()};
  std::vector<std::chrono::milliseconds> delays;
  for (int i = 0; i < 5; ++i) {
    auto inc = sup.started(0);
    ASSERT_TRUE(sup.actor_failed(0, inc, "boom"));
    auto plan = sup.restart_due(0);
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->cause, "actor_failed");
    delays.push_back(plan->delay);
  }
  EXPECT_EQ(delays, (std::vector<std::chrono::milliseconds>{10ms, 20ms, 40ms, 40ms, 40ms}));
  EXPECT_EQ(sup.restarts(), 5u);
}

TEST(Supervision, StaleAndRepeatedFailuresScheduleOneRestart) {
  supervision sup{fast()};
  auto first = sup.started(3);
  auto second = sup.started(3);
  EXPECT_FALSE(sup.actor_failed(3, first, "an actor of the previous start"));
  EXPECT_FALSE(sup.restart_due(3));
  EXPECT_TRUE(sup.actor_failed(3, second, "source failed"));
  EXPECT_FALSE(sup.actor_failed(3, second, "its partition actor failed too"));
  EXPECT_FALSE(sup.restart_due(4)); // other instances are not affected
  sup.started(3);
  EXPECT_FALSE(sup.restart_due(3)); // a start clears the plan
}

TEST(Supervision, BatchFailuresMakeSuspectsAndRecordsBecomePoison) {
  supervision sup{fast()};
  auto inc = sup.started(0);
  sup.operator_failed({0, inc, "aggregate", "boom", std::nullopt, {{1, 40}, {2, 7}}});
  sup.operator_failed({0, inc, "aggregate", "boom", std::nullopt, {{1, 30}}});
  auto h = sup.hints();
  EXPECT_TRUE(h->suspect(1, 40));
  EXPECT_TRUE(h->suspect(1, 0));
  EXPECT_FALSE(h->suspect(1, 41));
  EXPECT_TRUE(h->suspect(2, 7));
  EXPECT_FALSE(h->suspect(3, 0));
  EXPECT_TRUE(h->poison.empty());
  ASSERT_TRUE(sup.actor_failed(0, inc, "operator"));
  EXPECT_EQ(sup.restart_due(0)->cause, "operator_failed");

  inc = sup.started(0);
  sup.operator_failed({0, inc, "aggregate", "first", record_position{1, 12}, {}});
  EXPECT_TRUE(sup.hints()->poison.empty()); // one attempt of two
  inc = sup.started(0);
  sup.operator_failed({0, inc, "aggregate", "second", record_position{1, 12}, {}});
  auto p = sup.hints()->poison;
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p.begin()->first, (record_position{1, 12}));
  EXPECT_EQ(p.begin()->second.op, "aggregate");
  EXPECT_EQ(p.begin()->second.error, "second");
  EXPECT_EQ(p.begin()->second.attempts, 2u);
  EXPECT_TRUE(h->poison.empty()); // hints given out earlier do not change under their actors
}

TEST(Supervisor, AbnormalExitsScheduleARestartDeliberateOnesDoNot) {
  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::keyflow>();
  caf::actor_system sys{cfg};
  auto sup = std::make_shared<supervision>(fast());
  auto supervisor = spawn_supervisor(sys, sup);
  // Quits with an error on any int: a failing sink or source.
  auto idle = [](caf::event_based_actor* self) -> caf::behavior {
    return {[self](int) { self->quit(make_error(ec::kafka_error, "broker gone")); }};
  };
  auto inc = sup->started(0);
  auto stopped = sys.spawn(idle);
  auto failing = sys.spawn(idle);
  caf::anon_send(supervisor, atom::monitor_v, std::vector<caf::actor>{stopped, failing}, 0u, inc);
  caf::anon_send_exit(stopped, caf::exit_reason::user_shutdown);
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(sup->restart_due(0)) << "a drain or stop is not a failure";
  caf::anon_send(failing, 1);
  for (int i = 0; i < 100 && !sup->restart_due(0); ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(sup->restart_due(0));
  caf::anon_send_exit(supervisor, caf::exit_reason::user_shutdown);
}

} // namespace
