/// \file
/// Actor tests of the pipeline core on CAF's deterministic test coordinator: generator-backed
/// source actors (decoding serialized events with the plan) routing to partition actors
/// that run validate (in the sources) and an aggregate, checked for exact per-key state,
/// bounded credit between source and partitions, the stop/drain replies, barrier alignment
/// and no state writes between a barrier's acknowledgement and the coordinator's `done`.
/// Nothing here triggers timeouts: the actors' periodic timers (source ticks, partition
/// flushes) never fire, so every run is one exact interleaving.

#define CAF_TEST_NO_MAIN
#include <caf/test/unit_test_impl.hpp>

#include "actor_fixture.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace keyflow;
using keyflow::test::max_parallelism;

/// validate (in the sources) -> per-customer aggregate; no sinks.
const std::string pipeline_yaml = test::event_pipeline(
    "  - {id: validate, type: validate, required: [event_id, customer_id, event_time_ms]}\n"
    "  - {id: aggregate, type: aggregate, aggregates: {count: {fn: count}, sum: {fn: sum, field: "
    "value}, last: {fn: max, field: event_time_ms}}}\n",
    {}, "{topic: events}", "{name: actors, max_parallelism: 128}");

/// Expected per-key state.
struct expected_state {
  uint64_t count = 0;
  double sum = 0;
  int64_t last_event_time_ms = 0;
};

class pipeline_actors : public test::actor_fixture {
public:
  pipeline_actors() : actor_fixture(pipeline_yaml) {}

  /// What generators with these settings emit, computed without actors: fresh readers
  /// decoding with the same plan, one destination, folded by hand.
  std::map<std::string, expected_state> expected_from(const pipeline::datagen_options& opts,
                                                      uint32_t readers) {
    std::map<std::string, expected_state> out;
    const auto slot = [&](const char* name) {
      return static_cast<size_t>(*plan->source_layout.slot(name));
    };
    for (uint32_t index = 0; index < readers; ++index) {
      pipeline::generator_reader reader{plan, pipeline::make_datagen(opts, index), index};
      router all{max_parallelism, 1};
      std::vector<kafka_message> dead;
      while (!reader.exhausted())
        reader.read(all, dead, 1000);
      EXPECT_TRUE(dead.empty());
      EXPECT_EQ(all.batch(0).records.size(), opts.events);
      for (const auto& r : all.batch(0).records) {
        auto& e = out[r.key];
        ++e.count;
        e.sum += r.fields[slot("value")].d;
        e.last_event_time_ms = std::max(e.last_event_time_ms, r.event_time_ms);
      }
    }
    return out;
  }

  /// Count of key `key` stored by partition `i` of `n` (0 if absent).
  uint64_t stored_count(uint32_t i, uint32_t n, const std::string& key) {
    auto all = stored(partitions.at(i), i, n);
    auto it = all.find(key);
    return it == all.end() ? 0 : it->second.records;
  }
};

TEST_F(pipeline_actors, StateEqualsWhatTheGeneratorsEmitted) {
  const flow_settings flow{128, 2, std::chrono::milliseconds(5)};
  pipeline::datagen_options opts;
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
  std::map<std::string, test::stored_aggregate> got;
  for (uint32_t i = 0; i < parallelism; ++i)
    for (auto& [key, s] : stored(partitions[i], i, parallelism))
      EXPECT_TRUE(got.emplace(key, s).second) << key << " stored by two partition actors";
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [key, w] : want) {
    auto it = got.find(key);
    ASSERT_NE(it, got.end()) << key << " missing from state";
    const auto& s = it->second;
    EXPECT_EQ(s.records, w.count) << key;
    ASSERT_EQ(s.accumulators.size(), 3u) << key;
    EXPECT_EQ(s.counts[0], static_cast<int64_t>(w.count)) << key;
    EXPECT_EQ(s.accumulators[1], value::of(w.sum)) << key;
    EXPECT_EQ(s.accumulators[2], value::of(w.last_event_time_ms)) << key;
  }
}

TEST_F(pipeline_actors, SourceStopsAtItsCreditAndResumesWhenBatchesAreProcessed) {
  const uint32_t credits = 2;
  const flow_settings flow{100, credits, std::chrono::milliseconds(5)};
  pipeline::datagen_options opts;
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
    pipeline::datagen_options opts;
    opts.events = 4000;
    opts.keys = 300;
    opts.seed = credits;
    stop_all();
    spawn_partitions(3, flow);
    auto src = spawn_generator_source(opts, 0, flow);
    auto* src_job = job_of(src);
    std::vector<caf::strong_actor_ptr> part_ptrs;
    std::vector<caf::resumable*> part_jobs;
    for (auto& p : partitions) {
      part_ptrs.push_back(caf::actor_cast<caf::strong_actor_ptr>(p));
      part_jobs.push_back(job_of(p));
    }
    // Model: batches sent to partition i minus credits the source has taken back. With 300
    // keys every batch of 64 reaches every partition, so the source sends no watermark
    // messages of their own (they ride on the batches).
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
  }
}

TEST_F(pipeline_actors, StopRepliesRecordsReadOnceInFlightBatchesAreAnswered) {
  const flow_settings flow{50, 2, std::chrono::milliseconds(5)};
  pipeline::datagen_options opts;
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
  pipeline::datagen_options opts;
  opts.events = 1000;
  opts.keys = 50;
  spawn_partitions(1, flow);
  spawn_generator_source(opts, 0, flow);
  sched.run();
  EXPECT_EQ(ask(partitions[0], atom::drain_v), opts.events);
  // Drained state is in RocksDB: every key with its exact count.
  const auto want = expected_from(opts, 1);
  const auto got = stored(partitions[0], 0, 1);
  ASSERT_EQ(got.size(), want.size());
  uint64_t total = 0;
  for (const auto& [key, s] : got) {
    EXPECT_EQ(s.records, want.at(key).count) << key;
    EXPECT_EQ(s.accumulators.at(1), value::of(want.at(key).sum)) << key;
    total += s.records;
  }
  EXPECT_EQ(total, opts.events);
  // A second drain reports the same total.
  EXPECT_EQ(ask(partitions[0], atom::drain_v), opts.events);
}

/// A batch of `n` records of key `key` from input `source`.
record_batch batch_of(const test::actor_fixture& f, const std::string& key, uint32_t n,
                      uint32_t source) {
  record_batch b;
  b.source = source;
  for (uint32_t i = 0; i < n; ++i)
    b.records.push_back(f.make_record(key, 1 + i));
  return b;
}

/// Exactly-once alignment: after source 0's barrier, its batches wait unanswered until the
/// barrier of source 1 arrives; the state written at the barrier excludes them.
TEST_F(pipeline_actors, AlignedBarrierHoldsBatchesOfAlignedSources) {
  const flow_settings flow{256, 4, std::chrono::milliseconds(5)};
  auto part = spawn_partitions(1, flow, 2, /*checkpointing=*/true, /*exactly_once=*/true)[0];
  self->request(part, caf::infinite, batch_of(*this, "k", 3, 0));
  self->send(part, atom::barrier_v, uint64_t{1}, uint32_t{0});
  self->request(part, caf::infinite, batch_of(*this, "k", 5, 0)); // after the barrier: held
  self->request(part, caf::infinite, atom::checkpoint_v, uint64_t{1});
  sched.run();
  // Only the pre-barrier batch is answered; the checkpoint is not acknowledged yet.
  EXPECT_EQ(self->mailbox().size(), 1u);
  EXPECT_TRUE(stored(part, 0, 1).empty()); // nothing written before alignment
  self->request(part, caf::infinite, batch_of(*this, "k", 7, 1)); // source 1, before its barrier
  self->send(part, atom::barrier_v, uint64_t{1}, uint32_t{1});
  sched.run();
  // Aligned: state at the barrier = 3 (source 0) + 7 (source 1); the held 5 follow after.
  EXPECT_EQ(stored_count(0, 1, "k"), 10u);
  EXPECT_EQ(self->mailbox().size(), 4u); // 3 credits + the checkpoint acknowledgement
  // A checkpoint already completed is acknowledged at once.
  EXPECT_NE(ask(part, atom::checkpoint_v, uint64_t{1}), UINT64_MAX);
  self->send(part, atom::done_v, uint64_t{1});
  EXPECT_EQ(ask(part, atom::drain_v), 15u);
}

/// Between acknowledging a barrier and the coordinator's `done`, the flush timer writes
/// nothing (the RocksDB checkpoint is being taken); after `done` it writes again.
TEST_F(pipeline_actors, NoStateWritesBetweenBarrierAckAndDone) {
  const flow_settings flow{256, 4, std::chrono::milliseconds(5)};
  auto part = spawn_partitions(1, flow, 1, /*checkpointing=*/true, /*exactly_once=*/true)[0];
  self->request(part, caf::infinite, batch_of(*this, "k", 2, 0));
  self->send(part, atom::barrier_v, uint64_t{1}, uint32_t{0});
  self->request(part, caf::infinite, batch_of(*this, "k", 3, 0));
  sched.run();
  EXPECT_EQ(stored_count(0, 1, "k"), 2u); // the barrier state
  self->send(part, atom::flush_v);        // the timer, before `done`
  sched.run();
  EXPECT_EQ(stored_count(0, 1, "k"), 2u);
  // A `done` of an older checkpoint does not end the pause.
  self->send(part, atom::done_v, uint64_t{0});
  self->send(part, atom::flush_v);
  sched.run();
  EXPECT_EQ(stored_count(0, 1, "k"), 2u);
  self->send(part, atom::done_v, uint64_t{1});
  self->send(part, atom::flush_v);
  sched.run();
  EXPECT_EQ(stored_count(0, 1, "k"), 5u);
}

/// At-least-once: barriers never hold a batch back.
TEST_F(pipeline_actors, UnalignedBarrierHoldsNothing) {
  const flow_settings flow{256, 4, std::chrono::milliseconds(5)};
  auto part = spawn_partitions(1, flow, 2, /*checkpointing=*/true, /*exactly_once=*/false)[0];
  self->send(part, atom::barrier_v, uint64_t{1}, uint32_t{0});
  self->request(part, caf::infinite, batch_of(*this, "k", 5, 0));
  sched.run();
  EXPECT_EQ(self->mailbox().size(), 1u); // answered at once
  self->send(part, atom::barrier_v, uint64_t{1}, uint32_t{1});
  self->request(part, caf::infinite, atom::checkpoint_v, uint64_t{1});
  sched.run();
  // The snapshot includes the post-barrier batch of source 0 (counted again after a restore).
  EXPECT_EQ(stored_count(0, 1, "k"), 5u);
  EXPECT_EQ(self->mailbox().size(), 2u);
}

/// A newer barrier while aligning an older one abandons the older checkpoint: what it held
/// is processed, and the new checkpoint aligns from scratch.
TEST_F(pipeline_actors, NewerBarrierAbandonsTheAlignment) {
  const flow_settings flow{256, 4, std::chrono::milliseconds(5)};
  auto part = spawn_partitions(1, flow, 2, /*checkpointing=*/true, /*exactly_once=*/true)[0];
  self->send(part, atom::barrier_v, uint64_t{1}, uint32_t{0});
  self->request(part, caf::infinite, batch_of(*this, "k", 4, 0)); // held by checkpoint 1
  sched.run();
  EXPECT_EQ(self->mailbox().size(), 0u);
  self->send(part, atom::barrier_v, uint64_t{2}, uint32_t{1}); // checkpoint 1 was given up
  self->request(part, caf::infinite, atom::checkpoint_v, uint64_t{2});
  sched.run();
  EXPECT_EQ(self->mailbox().size(), 1u) << "the held batch was not released";
  self->send(part, atom::barrier_v, uint64_t{1}, uint32_t{0}); // stale: ignored
  self->send(part, atom::barrier_v, uint64_t{2}, uint32_t{0});
  sched.run();
  EXPECT_EQ(stored_count(0, 1, "k"), 4u);
  EXPECT_EQ(self->mailbox().size(), 2u); // the credit and checkpoint 2's acknowledgement
}

} // namespace
