/// \file
/// Actor tests of the pipeline core on CAF's deterministic test coordinator: generator-backed
/// source actors routing to partition actors (no sinks), checked for exact per-key state,
/// bounded credit between source and partitions, and the stop/drain replies.
///
/// GoogleTest is the runner; CAF's test_coordinator_fixture provides the deterministic
/// scheduler. CAF's test engine is compiled in without its main() only because the fixture
/// reads its command line; the DSL helpers built on CAF_CHECK (expect, deref, request) are
/// not used, as no CAF test is running. Nothing here triggers timeouts: the actors' periodic
/// timers (source ticks, partition flushes) never fire, so every run is one exact interleaving.

#define CAF_TEST_NO_MAIN
#include <caf/test/unit_test_impl.hpp>

#include <caf/test/dsl.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <rocksdb/db.h>
#include <rocksdb/iterator.h>

#include "actors/actors.hpp"
#include "actors/spawn.hpp"
#include "config/pipeline_config.hpp"
#include "core/datagen.hpp"
#include "core/key_group.hpp"
#include "core/router.hpp"
#include "operators/aggregate.hpp"
#include "state/state_store.hpp"

namespace {

using namespace keyflow;

/// Registers Keyflow's message types with the test actor system.
struct keyflow_config : caf::actor_system_config {
  keyflow_config() { add_message_types<caf::id_block::keyflow>(); }
};

/// The pipeline hosted by the partition actors: no sinks (their handles stay null).
constexpr const char* pipeline_yaml = R"(pipeline:
  name: actors
  max_parallelism: 128
source:
  topic: events
dead_letters:
  topic: events-dlq
operators:
  - id: validate
    type: validate
  - id: aggregate
    type: aggregate
)";

constexpr uint32_t max_parallelism = 128;

/// Expected per-key state.
struct expected_state {
  uint64_t count = 0;
  double sum = 0;
  int64_t last_event_time_ms = 0;
};

/// What generators with these settings emit, computed without actors: fresh readers, one
/// destination, folded by hand.
std::map<std::string, expected_state> expected_from(const datagen_options& opts, uint32_t readers) {
  std::map<std::string, expected_state> out;
  for (uint32_t index = 0; index < readers; ++index) {
    datagen_reader reader{opts, index};
    router all{max_parallelism, 1};
    std::vector<kafka_message> dead;
    while (!reader.exhausted())
      reader.read(all, dead, 1000);
    EXPECT_TRUE(dead.empty());
    EXPECT_EQ(all.batch(0).records.size(), opts.events);
    for (const auto& r : all.batch(0).records) {
      auto& e = out[r.key];
      ++e.count;
      e.sum += r.value;
      e.last_event_time_ms = std::max(e.last_event_time_ms, r.event_time_ms);
    }
  }
  return out;
}

class pipeline_actors : public test_coordinator_fixture<keyflow_config>, public ::testing::Test {
public:
  pipeline_actors() {
    std::string tmpl = "/tmp/keyflow-actors-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    pipeline_ = config::parse_pipeline(pipeline_yaml);
  }

  ~pipeline_actors() override {
    // Stop every actor and let the exits be processed, so that the base destructor's run()
    // has nothing left to do but drop the dead actors' pending timeouts.
    for (auto& s : sources)
      caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    for (auto& p : partitions)
      caf::anon_send_exit(p, caf::exit_reason::user_shutdown);
    sched.run();
    sources.clear();
    partitions.clear();
    stores_.clear();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  /// Timers never fire in these tests (the actors re-arm theirs forever).
  bool trigger_timeout() override { return false; }

  /// Spawns `n` partition actors fed by `sources` sources, each with its own state store (so
  /// each store holds exactly the keys its actor owns).
  void spawn_partitions(uint32_t n, flow_settings flow, uint32_t sources = 1,
                        bool checkpointing = false, bool exactly_once = true) {
    for (uint32_t i = 0; i < n; ++i) {
      stores_.push_back(state::state_store::open(dir_ + "/p" + std::to_string(stores_.size()),
                                                 {pipeline_.aggregate.id}));
      partition_params p;
      p.pipeline = &pipeline_;
      p.store = stores_.back().get();
      p.index = i;
      p.flow = flow;
      p.flush_interval = std::chrono::hours(1);
      p.sources = sources;
      p.checkpointing = checkpointing;
      p.exactly_once = exactly_once;
      partitions.push_back(spawn_partition(sys, std::move(p)));
    }
  }

  /// Spawns a source reading a generator.
  source_actor spawn_generator_source(const datagen_options& opts, uint32_t index,
                                      flow_settings flow) {
    source_params p;
    p.reader = std::make_shared<datagen_reader>(opts, index);
    p.max_parallelism = max_parallelism;
    p.partitions = partitions;
    p.flow = flow;
    p.index = static_cast<uint32_t>(sources.size());
    sources.push_back(spawn_source(sys, std::move(p)));
    return sources.back();
  }

  /// Sends `msg` from the scoped actor, runs the system until idle and returns the reply.
  template <class Handle, class Atom>
  uint64_t ask(const Handle& hdl, Atom msg) {
    uint64_t result = UINT64_MAX;
    auto rh = self->request(hdl, caf::infinite, msg);
    sched.run();
    rh.receive([&](uint64_t n) { result = n; },
               [&](caf::error& err) { ADD_FAILURE() << "request failed: " << to_string(err); });
    return result;
  }

  /// Job (scheduler entry) of an actor.
  template <class Handle>
  static caf::resumable* job_of(const Handle& hdl) {
    return dynamic_cast<caf::resumable*>(caf::actor_cast<caf::abstract_actor*>(hdl));
  }

  /// The actor behind a handle (the fixture's deref() needs CAF's test engine running).
  template <class Handle>
  static caf::scheduled_actor& actor_of(const Handle& hdl) {
    auto* ptr = caf::actor_cast<caf::abstract_actor*>(hdl);
    if (ptr == nullptr)
      throw std::logic_error("null actor handle");
    return dynamic_cast<caf::scheduled_actor&>(*ptr);
  }

  /// True if the actor is in the scheduler's queue (has messages or is not initialized yet).
  template <class Handle>
  bool runnable(const Handle& hdl) {
    return std::find(sched.jobs.begin(), sched.jobs.end(), job_of(hdl)) != sched.jobs.end();
  }

  /// Messages waiting in an actor's mailbox. An actor outside the scheduler's queue waits
  /// on an empty, blocked mailbox, which must not be touched: reading it would unblock it
  /// without scheduling the actor for its next message.
  template <class Handle>
  size_t mailbox_size(const Handle& hdl) {
    return runnable(hdl) ? actor_of(hdl).mailbox().size() : 0;
  }

  /// Runs every pending message of `hdl` (and only of `hdl`); returns how many ran.
  template <class Handle>
  size_t run_only(const Handle& hdl) {
    auto* job = job_of(hdl);
    return sched.run_jobs_filtered([job](caf::resumable* r) { return r == job; });
  }

  /// Moves `job` to the front of the scheduler's queue; false if it is not runnable.
  bool to_front(caf::resumable* job) {
    auto i = std::find(sched.jobs.begin(), sched.jobs.end(), job);
    if (i == sched.jobs.end())
      return false;
    std::rotate(sched.jobs.begin(), i, i + 1);
    return true;
  }

  /// Runs exactly one message of `hdl`; false if it has none.
  template <class Handle>
  bool step(const Handle& hdl) {
    if (!sched.prioritize(hdl))
      return false;
    sched.run_once();
    return true;
  }

  /// Every (key, state) in partition i's store, checking the key-group prefix.
  std::map<std::string, ops::aggregate_state> stored_state(uint32_t i, uint32_t parallelism) {
    std::map<std::string, ops::aggregate_state> out;
    auto& store = *stores_.at(i);
    auto* cf = store.column_family(pipeline_.aggregate.id);
    std::unique_ptr<rocksdb::Iterator> it{store.db()->NewIterator(rocksdb::ReadOptions{}, cf)};
    const auto range = range_for_actor(max_parallelism, parallelism, i);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const auto k = it->key().ToString();
      const auto key = k.substr(2);
      const auto kg = state::key_group_of_state_key(k);
      EXPECT_EQ(kg, key_group_of(key, max_parallelism)) << key;
      EXPECT_TRUE(range.contains(kg))
          << "partition " << i << " holds key " << key << " of key group " << kg;
      ops::aggregate_state s;
      EXPECT_TRUE(ops::decode(it->value().ToString(), s)) << key;
      EXPECT_TRUE(out.emplace(key, s).second) << key;
    }
    return out;
  }

  std::vector<source_actor> sources;
  std::vector<partition_actor> partitions;

private:
  std::string dir_;
  config::pipeline_config pipeline_;
  std::vector<std::unique_ptr<state::state_store>> stores_;
};

TEST_F(pipeline_actors, StateEqualsWhatTheGeneratorsEmitted) {
  const flow_settings flow{128, 2, std::chrono::milliseconds(5)};
  datagen_options opts;
  opts.events = 6000;
  opts.keys = 400;
  opts.seed = 99;
  const uint32_t parallelism = 3;
  spawn_partitions(parallelism, flow, 2);
  spawn_generator_source(opts, 0, flow);
  spawn_generator_source(opts, 1, flow);
  sched.run();

  // Both generators are exhausted: stop replies the records each read.
  for (auto& s : sources)
    EXPECT_EQ(ask(s, atom::stop_v), opts.events);
  // Drain flushes state to RocksDB and replies the records each partition processed.
  uint64_t processed = 0;
  for (auto& p : partitions) {
    const auto n = ask(p, atom::drain_v);
    EXPECT_GT(n, 0u) << "a partition actor got no records";
    processed += n;
  }
  EXPECT_EQ(processed, 2 * opts.events);

  const auto want = expected_from(opts, 2);
  std::map<std::string, ops::aggregate_state> got;
  for (uint32_t i = 0; i < parallelism; ++i)
    for (auto& [key, s] : stored_state(i, parallelism))
      EXPECT_TRUE(got.emplace(key, s).second) << key << " stored by two partition actors";
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [key, w] : want) {
    auto it = got.find(key);
    ASSERT_NE(it, got.end()) << key << " missing from state";
    EXPECT_EQ(it->second.count, w.count) << key;
    EXPECT_EQ(it->second.sum, w.sum) << key;
    EXPECT_EQ(it->second.last_event_time_ms, w.last_event_time_ms) << key;
  }
}

TEST_F(pipeline_actors, SourceStopsAtItsCreditAndResumesWhenBatchesAreProcessed) {
  const uint32_t credits = 2;
  const flow_settings flow{100, credits, std::chrono::milliseconds(5)};
  datagen_options opts;
  opts.events = 3000;
  opts.keys = 200;
  spawn_partitions(2, flow);
  auto src = spawn_generator_source(opts, 0, flow);

  // Only the source runs: it sends `credits` batches to each partition, then waits.
  EXPECT_GT(run_only(src), 0u);
  EXPECT_EQ(mailbox_size(partitions[0]), credits);
  EXPECT_EQ(mailbox_size(partitions[1]), credits);
  EXPECT_EQ(run_only(src), 0u) << "the source is not idle without credit";

  // One batch processed by each partition: the credit comes back, the source sends again
  // and stops at its credit again.
  for (auto& p : partitions)
    ASSERT_TRUE(step(p));
  EXPECT_EQ(mailbox_size(partitions[0]), credits - 1);
  EXPECT_GT(run_only(src), 0u);
  EXPECT_EQ(mailbox_size(partitions[0]), credits);
  EXPECT_EQ(mailbox_size(partitions[1]), credits);
  EXPECT_EQ(run_only(src), 0u);

  // Everything runs to the end: all records arrive.
  sched.run();
  EXPECT_EQ(ask(src, atom::stop_v), opts.events);
  uint64_t processed = 0;
  for (auto& p : partitions)
    processed += ask(p, atom::drain_v);
  EXPECT_EQ(processed, opts.events);
}

TEST_F(pipeline_actors, NeverMoreThanCreditsUnansweredBatchesUnderAnyInterleaving) {
  for (uint32_t credits : {1u, 2u, 3u}) {
    SCOPED_TRACE("credits=" + std::to_string(credits));
    const flow_settings flow{64, credits, std::chrono::milliseconds(5)};
    datagen_options opts;
    opts.events = 4000;
    opts.keys = 300;
    opts.seed = credits;
    sources.clear();
    partitions.clear();
    spawn_partitions(3, flow);
    auto src = spawn_generator_source(opts, 0, flow);
    auto* src_job = job_of(src);
    std::vector<caf::strong_actor_ptr> part_ptrs;
    std::vector<caf::resumable*> part_jobs;
    for (auto& p : partitions) {
      part_ptrs.push_back(caf::actor_cast<caf::strong_actor_ptr>(p));
      part_jobs.push_back(job_of(p));
    }
    // Model: batches sent to partition i minus credits the source has taken back.
    std::vector<int64_t> sent(3, 0), answered(3, 0);
    std::vector<size_t> boxes(3, 0);
    uint32_t max_seen = 0;
    std::mt19937 gen{credits * 7919};
    size_t steps = 0;
    while (sched.has_job()) {
      ASSERT_LT(++steps, 1'000'000u) << "no progress";
      // Pick any runnable actor, favouring the source so that credit runs out often.
      std::uniform_int_distribution<size_t> pick{0, sched.jobs.size() - 1};
      auto* job = sched.jobs[pick(gen)];
      if (gen() % 3 == 0 &&
          std::find(sched.jobs.begin(), sched.jobs.end(), src_job) != sched.jobs.end())
        job = src_job;
      ASSERT_TRUE(to_front(job));
      if (job == src_job) {
        // The first run of an actor initializes it (its mailbox may still be empty).
        auto* next = actor_of(src).mailbox().peek(); // src is runnable: safe to look
        if (next != nullptr && next->mid.is_response())
          for (size_t i = 0; i < 3; ++i)
            if (next->sender == part_ptrs[i])
              ++answered[i];
      }
      sched.run_once();
      for (size_t i = 0; i < 3; ++i) {
        const auto now = mailbox_size(partitions[i]);
        if (job == src_job && now > boxes[i])
          sent[i] += static_cast<int64_t>(now - boxes[i]);
        if (job == part_jobs[i] && boxes[i] > 0) {
          ASSERT_EQ(now + 1, boxes[i]) << "partition " << i << " did not take one batch";
        } else if (job != src_job) {
          ASSERT_EQ(now, boxes[i]);
        }
        boxes[i] = now;
        const auto unanswered = sent[i] - answered[i];
        ASSERT_GE(unanswered, 0);
        ASSERT_LE(unanswered, static_cast<int64_t>(credits))
            << "partition " << i << " has " << unanswered << " unanswered batches";
        max_seen = std::max(max_seen, static_cast<uint32_t>(unanswered));
      }
    }
    EXPECT_EQ(max_seen, credits) << "the credit limit was never reached: weak test";
    EXPECT_EQ(ask(src, atom::stop_v), opts.events);
    uint64_t processed = 0;
    for (size_t i = 0; i < 3; ++i) {
      const auto n = ask(partitions[i], atom::drain_v);
      processed += n;
      EXPECT_EQ(sent[i], answered[i]) << "partition " << i;
    }
    EXPECT_EQ(processed, opts.events);
    for (auto& s : sources)
      caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    for (auto& p : partitions)
      caf::anon_send_exit(p, caf::exit_reason::user_shutdown);
    sched.run();
  }
}

TEST_F(pipeline_actors, StopRepliesRecordsReadOnceInFlightBatchesAreAnswered) {
  const flow_settings flow{50, 2, std::chrono::milliseconds(5)};
  datagen_options opts;
  opts.events = 100000; // far more than will be read before the stop
  opts.keys = 100;
  spawn_partitions(2, flow);
  auto src = spawn_generator_source(opts, 0, flow);
  run_only(src); // 2 batches per partition in flight, none answered

  uint64_t stopped_at = UINT64_MAX;
  auto rh = self->request(src, caf::infinite, atom::stop_v);
  run_only(src);
  EXPECT_EQ(self->mailbox().size(), 0u) << "stop answered while batches are unanswered";
  sched.run(); // the partitions answer; the source replies, reads nothing more
  rh.receive([&](uint64_t n) { stopped_at = n; },
             [&](caf::error& err) { ADD_FAILURE() << to_string(err); });
  ASSERT_NE(stopped_at, UINT64_MAX);
  EXPECT_GT(stopped_at, 0u);
  EXPECT_LT(stopped_at, opts.events);
  uint64_t processed = 0;
  for (auto& p : partitions)
    processed += ask(p, atom::drain_v);
  EXPECT_EQ(processed, stopped_at) << "records read before the stop were not all processed";
  // A stopped source stays stopped.
  EXPECT_EQ(ask(src, atom::stop_v), stopped_at);
  EXPECT_FALSE(sched.has_job());
}

TEST_F(pipeline_actors, DrainRepliesRecordsProcessedAndFlushesState) {
  const flow_settings flow{256, 4, std::chrono::milliseconds(5)};
  datagen_options opts;
  opts.events = 1000;
  opts.keys = 50;
  spawn_partitions(1, flow);
  spawn_generator_source(opts, 0, flow);
  sched.run();
  EXPECT_EQ(ask(partitions[0], atom::drain_v), opts.events);
  // Drained state is in RocksDB: every key with its exact count.
  const auto want = expected_from(opts, 1);
  const auto got = stored_state(0, 1);
  ASSERT_EQ(got.size(), want.size());
  uint64_t total = 0;
  for (const auto& [key, s] : got) {
    EXPECT_EQ(s.count, want.at(key).count) << key;
    EXPECT_EQ(s.sum, want.at(key).sum) << key;
    total += s.count;
  }
  EXPECT_EQ(total, opts.events);
  // A second drain reports the same total.
  EXPECT_EQ(ask(partitions[0], atom::drain_v), opts.events);
}

/// A batch of `n` events of key `key` (value 1 each) from source `source`.
event_batch batch_of(const std::string& key, uint32_t n, uint32_t source) {
  event_batch b;
  b.source = source;
  for (uint32_t i = 0; i < n; ++i) {
    event_record r;
    r.key = key;
    r.value = 1;
    r.event_time_ms = 1 + i;
    r.key_group = key_group_of(key, max_parallelism);
    b.records.push_back(std::move(r));
  }
  return b;
}

/// Exactly-once alignment: after source 0's barrier, its batches wait unanswered until the
/// barrier of source 1 arrives; the state written at the barrier excludes them.
TEST_F(pipeline_actors, AlignedBarrierHoldsBatchesOfAlignedSources) {
  const flow_settings flow{256, 4, std::chrono::milliseconds(5)};
  spawn_partitions(1, flow, 2, /*checkpointing=*/true, /*exactly_once=*/true);
  auto part = partitions[0];
  self->request(part, caf::infinite, batch_of("k", 3, 0));
  self->send(part, atom::barrier_v, uint64_t{1}, uint32_t{0});
  self->request(part, caf::infinite, batch_of("k", 5, 0)); // after the barrier: held
  self->request(part, caf::infinite, atom::checkpoint_v, uint64_t{1});
  sched.run();
  // Only the pre-barrier batch is answered; the checkpoint is not acknowledged yet.
  EXPECT_EQ(self->mailbox().size(), 1u);
  EXPECT_TRUE(stored_state(0, 1).empty());                 // nothing written before alignment
  self->request(part, caf::infinite, batch_of("k", 7, 1)); // source 1, before its barrier
  self->send(part, atom::barrier_v, uint64_t{1}, uint32_t{1});
  sched.run();
  // Aligned: state at the barrier = 3 (source 0) + 7 (source 1); the held 5 follow after.
  auto at_barrier = stored_state(0, 1);
  ASSERT_EQ(at_barrier.size(), 1u);
  EXPECT_EQ(at_barrier.at("k").count, 10u);
  EXPECT_EQ(self->mailbox().size(), 4u); // 3 credits + the checkpoint acknowledgement
  EXPECT_EQ(ask(part, atom::drain_v), 15u);
}

/// Between acknowledging a barrier and the coordinator's `done`, the flush timer writes
/// nothing (the RocksDB checkpoint is being taken); after `done` it writes again.
TEST_F(pipeline_actors, NoStateWritesBetweenBarrierAckAndDone) {
  const flow_settings flow{256, 4, std::chrono::milliseconds(5)};
  spawn_partitions(1, flow, 1, /*checkpointing=*/true, /*exactly_once=*/true);
  auto part = partitions[0];
  self->request(part, caf::infinite, batch_of("k", 2, 0));
  self->send(part, atom::barrier_v, uint64_t{1}, uint32_t{0});
  self->request(part, caf::infinite, batch_of("k", 3, 0));
  sched.run();
  EXPECT_EQ(stored_state(0, 1).at("k").count, 2u); // the barrier state
  self->send(part, atom::flush_v);                 // the timer, before `done`
  sched.run();
  EXPECT_EQ(stored_state(0, 1).at("k").count, 2u);
  self->send(part, atom::done_v, uint64_t{1});
  self->send(part, atom::flush_v);
  sched.run();
  EXPECT_EQ(stored_state(0, 1).at("k").count, 5u);
}

/// At-least-once: barriers never hold a batch back.
TEST_F(pipeline_actors, UnalignedBarrierHoldsNothing) {
  const flow_settings flow{256, 4, std::chrono::milliseconds(5)};
  spawn_partitions(1, flow, 2, /*checkpointing=*/true, /*exactly_once=*/false);
  auto part = partitions[0];
  self->send(part, atom::barrier_v, uint64_t{1}, uint32_t{0});
  self->request(part, caf::infinite, batch_of("k", 5, 0));
  sched.run();
  EXPECT_EQ(self->mailbox().size(), 1u); // answered at once
  self->send(part, atom::barrier_v, uint64_t{1}, uint32_t{1});
  self->request(part, caf::infinite, atom::checkpoint_v, uint64_t{1});
  sched.run();
  // The snapshot includes the post-barrier batch of source 0 (counted again after a restore).
  EXPECT_EQ(stored_state(0, 1).at("k").count, 5u);
  EXPECT_EQ(self->mailbox().size(), 2u);
}

} // namespace
