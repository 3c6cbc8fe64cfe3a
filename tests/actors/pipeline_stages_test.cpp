/// \file
/// Actor tests of multi-stage pipelines and watermarks on CAF's deterministic test
/// coordinator: a key_by plan whose stage-1 partition actors get the records and barriers
/// of every stage-0 actor and align there; the input watermark of a partition actor (the
/// minimum over inputs that are not idle, the maximum when all are idle) deciding when a
/// window fires; event-time windows over two stages fed by generator sources, whose
/// results are exact; and a source that turns idle releasing the watermark.

#define CAF_TEST_NO_MAIN
#include <caf/test/unit_test_impl.hpp>

#include "actor_fixture.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace keyflow;
using keyflow::test::max_parallelism;

/// Stage 0: dedup by event id, key_by type; stage 1: count and sum per type.
const std::string two_stage_yaml = test::event_pipeline(
    R"(  - {id: validate, type: validate, required: [event_id]}
  - {id: dedup, type: dedup, field: event_id, ttl_ms: 86400000}
  - {id: by_type, type: key_by, key: type}
  - {id: per_type, type: aggregate, aggregates: {n: {fn: count}, sum: {fn: sum, field: value}}}
)");

class two_stages : public test::actor_fixture {
public:
  two_stages() : actor_fixture(two_stage_yaml) {}

  /// Records c-<first>..c-<last - 1> at time = number, value 1, type "x" or "y" (by parity),
  /// routed to `n` stage-0 actors; counts per type are added to `per_type`.
  std::vector<record_batch> batches(int first, int last, uint32_t n,
                                    std::map<std::string, uint64_t>& per_type) {
    router routes{max_parallelism, n};
    for (int i = first; i < last; ++i) {
      const std::string type = i % 2 ? "x" : "y";
      routes.route(make_record("c-" + std::to_string(i), i, 1, type));
      ++per_type[type];
    }
    std::vector<record_batch> out;
    for (uint32_t d = 0; d < n; ++d)
      out.push_back(std::move(routes.batch(d)));
    return out;
  }

  /// Counts per type stored by the stage-1 actors `q`.
  std::map<std::string, uint64_t> stored_per_type(const std::vector<partition_actor>& q) {
    std::map<std::string, uint64_t> out;
    for (uint32_t i = 0; i < q.size(); ++i)
      for (const auto& [key, a] : stored(q[i], i, static_cast<uint32_t>(q.size()), "per_type")) {
        out[key] += a.records;
        EXPECT_EQ(a.accumulators.at(1), value::of(static_cast<double>(a.records))) << key;
      }
    return out;
  }
};

TEST_F(two_stages, BarriersAreForwardedAndAlignedInTheNextStage) {
  ASSERT_EQ(plan->stages, 2);
  const flow_settings flow{256, 4, std::chrono::milliseconds(5)};
  stage_settings s1;
  s1.stage = 1;
  s1.inputs = 2; // the two stage-0 actors
  s1.checkpointing = true;
  const auto q = spawn_stage(2, flow, s1);
  stage_settings s0;
  s0.checkpointing = true;
  s0.downstream = q;
  const auto p = spawn_stage(2, flow, s0);

  // Batch A reaches both stage-0 actors; then only p[0] gets barrier 1.
  std::map<std::string, uint64_t> at_barrier, total;
  auto a = batches(0, 40, 2, at_barrier);
  total = at_barrier;
  ASSERT_FALSE(a[0].records.empty());
  ASSERT_FALSE(a[1].records.empty());
  const auto a0 = a[0].records.size(), a1 = a[1].records.size();
  for (uint32_t i = 0; i < 2; ++i)
    self->request(p[i], caf::infinite, std::move(a[i]));
  self->send(p[0], atom::barrier_v, uint64_t{1}, uint32_t{0});
  for (const auto& actor : partitions)
    self->request(actor, caf::infinite, atom::checkpoint_v, uint64_t{1});
  sched.run();
  // p[0] wrote its state and acknowledged; stage 1 waits for p[1]'s barrier.
  EXPECT_EQ(stored_keys(p[0], "dedup"), a0);
  EXPECT_EQ(stored_keys(p[1], "dedup"), 0u);
  EXPECT_TRUE(stored_per_type(q).empty()) << "stage 1 wrote state before it was aligned";
  EXPECT_EQ(self->mailbox().size(), 3u); // 2 credits + p[0]'s acknowledgement

  // Batch B: p[0]'s part comes after its barrier (held by stage 1), p[1]'s before.
  std::map<std::string, uint64_t> b_types;
  auto b = batches(40, 60, 2, b_types);
  for (const auto& r : b[1].records)
    ++at_barrier[r.fields[static_cast<size_t>(*plan->source_layout.slot("type"))].s];
  for (const auto& [type, n] : b_types)
    total[type] += n;
  const auto b0 = b[0].records.size(), b1 = b[1].records.size();
  for (uint32_t i = 0; i < 2; ++i)
    self->request(p[i], caf::infinite, std::move(b[i]));
  sched.run();
  EXPECT_EQ(self->mailbox().size(), 5u);
  self->send(p[1], atom::barrier_v, uint64_t{1}, uint32_t{0});
  sched.run();
  // Aligned everywhere: stage 1 holds A and p[1]'s part of B, not p[0]'s part of B.
  EXPECT_EQ(stored_keys(p[1], "dedup"), a1 + b1);
  EXPECT_EQ(stored_keys(p[0], "dedup"), a0) << "p[0] wrote after its acknowledgement";
  EXPECT_EQ(stored_per_type(q), at_barrier);
  EXPECT_EQ(self->mailbox().size(), 8u); // 4 credits + 4 acknowledgements

  // After `done` the flush timer writes what came after the barrier.
  for (const auto& actor : partitions) {
    self->send(actor, atom::done_v, uint64_t{1});
    self->send(actor, atom::flush_v);
  }
  uint64_t processed0 = 0, processed1 = 0;
  for (const auto& actor : p)
    processed0 += ask(actor, atom::drain_v);
  for (const auto& actor : q)
    processed1 += ask(actor, atom::drain_v);
  EXPECT_EQ(processed0, a0 + a1 + b0 + b1);
  EXPECT_EQ(processed1, a0 + a1 + b0 + b1) << "stage 1 gets every record once";
  EXPECT_EQ(stored_per_type(q), total);
}

/// One tumbling window of 10 ms counting records, written to a capture sink.
const std::string window_yaml = test::event_pipeline(
    "  - {id: w, type: window, kind: tumbling, size_ms: 10, aggregates: {n: {fn: count}}}\n",
    "  - {id: out, type: redis, from: w, key_prefix: 'w:'}\n");

class watermarks : public test::actor_fixture {
public:
  watermarks() : actor_fixture(window_yaml) {}

  /// A partition actor with `inputs` inputs writing window results to `results`.
  partition_actor window_actor(uint32_t inputs) {
    stage_settings s;
    s.inputs = inputs;
    s.captures[0] = results;
    return spawn_stage(1, flow_settings{}, s)[0];
  }

  /// Sends a batch of key "k" at `times` from input `source` with watermark `wm`.
  void batch(const partition_actor& to, uint32_t source, std::vector<int64_t> times, int64_t wm) {
    record_batch b;
    b.source = source;
    b.watermark = wm;
    for (auto t : times)
      b.records.push_back(make_record("k", t));
    self->request(to, caf::infinite, std::move(b));
    sched.run();
  }

  /// Sends input `source`'s watermark `wm`.
  void watermark(const partition_actor& to, uint32_t source, int64_t wm, bool idle = false) {
    self->send(to, atom::watermark_v, wm, source, idle);
    sched.run();
  }

  /// "start-end:n" of every window result so far.
  std::vector<std::string> fired() const {
    std::vector<std::string> out;
    for (const auto& r : *results)
      out.push_back(std::to_string(r.fields[0].i) + "-" + std::to_string(r.fields[1].i) + ":" +
                    std::to_string(r.fields[2].i));
    return out;
  }

  test::captured results = std::make_shared<std::vector<record>>();
};

using strings = std::vector<std::string>;

TEST_F(watermarks, AWindowFiresOnlyWhenEveryInputPassedIt) {
  auto w = window_actor(2);
  batch(w, 0, {1, 2, 3}, 20);
  EXPECT_TRUE(fired().empty()) << "input 1 has no watermark yet";
  watermark(w, 1, 5);
  EXPECT_TRUE(fired().empty());
  watermark(w, 1, 9); // min(20, 9) = 9 = the window's end - 1
  EXPECT_EQ(fired(), strings{"0-10:3"});
  batch(w, 1, {12}, 15);
  EXPECT_EQ(fired(), strings{"0-10:3"}) << "min(20, 15) has not passed [10, 20)";
  watermark(w, 0, 12); // an input's watermark never goes back: input 0 stays at 20
  EXPECT_EQ(fired(), strings{"0-10:3"});
  watermark(w, 1, 19);
  EXPECT_EQ(fired(), (strings{"0-10:3", "10-20:1"}));
  EXPECT_EQ(ask(w, atom::drain_v), 4u);
}

TEST_F(watermarks, IdleInputsDoNotHoldTheWatermarkBack) {
  auto w = window_actor(2);
  batch(w, 0, {1, 2, 3}, 30);
  EXPECT_TRUE(fired().empty());
  watermark(w, 1, no_watermark, /*idle=*/true);
  EXPECT_EQ(fired(), strings{"0-10:3"}) << "the idle input held the watermark back";
  // Input 1 is active again, behind: the watermark does not go back, nothing fires.
  batch(w, 1, {35}, 12);
  watermark(w, 1, 40);
  EXPECT_EQ(fired(), strings{"0-10:3"});
  watermark(w, 0, 39); // min(39, 40)
  EXPECT_EQ(fired(), (strings{"0-10:3", "30-40:1"}));
  // Every input idle: the greatest watermark counts.
  batch(w, 0, {41}, 39);
  watermark(w, 1, 49, /*idle=*/true);
  EXPECT_EQ(fired().size(), 2u) << "input 0 is active at 39";
  watermark(w, 0, 39, /*idle=*/true);
  EXPECT_EQ(fired(), (strings{"0-10:3", "30-40:1", "40-50:1"}));
}

/// Stage 0 counts events per customer in 100 ms windows, key_by the window end; stage 1
/// counts per window how many customers had events and sums their events.
const std::string windows_yaml = test::event_pipeline(
    R"(  - {id: per_customer, type: window, kind: tumbling, size_ms: 100, aggregates: {n: {fn: count}}}
  - {id: by_end, type: key_by, key: window_end_ms}
  - {id: per_window, type: window, kind: tumbling, size_ms: 100, aggregates: {customers: {fn: count}, events: {fn: sum, field: n}}}
)",
    "  - {id: out, type: redis, from: per_window, key_prefix: 'w:'}\n");

class window_stages : public test::actor_fixture {
public:
  window_stages() : actor_fixture(windows_yaml) {}
};

TEST_F(window_stages, SourceWatermarksDriveWindowsThroughBothStages) {
  const flow_settings flow{64, 2, std::chrono::milliseconds(5)};
  auto results = std::make_shared<std::vector<record>>();
  stage_settings s1;
  s1.stage = 1;
  s1.inputs = 3;
  s1.captures[0] = results;
  const auto q = spawn_stage(2, flow, s1);
  stage_settings s0;
  s0.downstream = q;
  const auto p = spawn_stage(3, flow, s0);
  pipeline::datagen_options opts;
  opts.events = 1000; // event times base + 0 .. base + 999, 1 ms apart
  opts.keys = 40;
  ASSERT_EQ(opts.base_time_ms % 100, 0);
  spawn_generator_source(opts, 0, flow, p, /*max_out_of_orderness_ms=*/150);
  sched.run();

  // The source's watermark is base + 999 - 150: windows ending at or before base + 850 fire
  // in stage 0, and their results in stage 1 once every stage-0 actor passed them.
  std::map<int64_t, std::set<std::string>> customers; // window start -> keys
  {
    pipeline::generator_reader reader{plan, pipeline::make_datagen(opts, 0), 0};
    router all{max_parallelism, 1};
    std::vector<kafka_message> dead;
    while (!reader.exhausted())
      reader.read(all, dead, 1000);
    for (const auto& r : all.batch(0).records)
      customers[r.event_time_ms - r.event_time_ms % 100].insert(r.key);
  }
  std::map<int64_t, std::string> got;
  for (const auto& r : *results) {
    ASSERT_EQ(r.fields.size(), 4u);
    EXPECT_EQ(r.key, std::to_string(r.fields[1].i)) << "keyed by the window end";
    EXPECT_TRUE(got.emplace(r.fields[0].i,
                            std::to_string(r.fields[2].i) + "/" + std::to_string(r.fields[3].i))
                    .second)
        << "window " << r.fields[0].i << " fired twice";
  }
  std::map<int64_t, std::string> want;
  for (int k = 0; k < 8; ++k) {
    const int64_t start = opts.base_time_ms + 100 * k;
    want[start] = std::to_string(customers.at(start).size()) + "/100";
  }
  EXPECT_EQ(got, want);
  for (const auto& actor : p)
    ask(actor, atom::drain_v);
  uint64_t processed = 0;
  for (const auto& actor : q)
    processed += ask(actor, atom::drain_v);
  uint64_t results_of_fired = 0;
  for (int k = 0; k < 8; ++k)
    results_of_fired += customers.at(opts.base_time_ms + 100 * k).size();
  EXPECT_EQ(processed, results_of_fired) << "stage 1 got one record per fired stage-0 window";
}

/// Counts events per customer in 100 ms windows.
const std::string idle_yaml = test::event_pipeline(
    "  - {id: w, type: window, kind: tumbling, size_ms: 100, aggregates: {n: {fn: count}}}\n",
    "  - {id: out, type: redis, from: w, key_prefix: 'w:'}\n");

class idle_sources : public test::actor_fixture {
public:
  idle_sources() : actor_fixture(idle_yaml) {}
};

TEST_F(idle_sources, AnIdleSourceNoLongerHoldsTheWatermarkBack) {
  const flow_settings flow{64, 2, std::chrono::milliseconds(5)};
  auto results = std::make_shared<std::vector<record>>();
  stage_settings s;
  s.inputs = 2;
  s.captures[0] = results;
  const auto p = spawn_stage(1, flow, s);
  pipeline::datagen_options a, b; // event times base + 0.., 1 ms apart
  a.events = 1000;
  a.keys = 20;
  b.events = 300;
  b.keys = 20;
  const auto never = std::chrono::hours(1);
  const auto soon = std::chrono::milliseconds(1000);
  spawn_generator_source(a, 0, flow, p, 0, never);
  spawn_generator_source(b, 1, flow, p, 0, soon);
  sched.run();
  // Both generators ended. Source 1's watermark (base + 299) holds source 0's (base + 999)
  // back: only the windows up to base + 300 fired, with both sources' events in them.
  const auto events_in = [&] {
    int64_t n = 0, last_end = 0;
    for (const auto& r : *results) {
      n += r.fields[2].i;
      last_end = std::max(last_end, r.fields[1].i);
    }
    return std::to_string(n) + " events up to " + std::to_string(last_end - a.base_time_ms);
  };
  EXPECT_EQ(events_in(), "600 events up to 300");
  // Source 1 has had no input for its idle timeout: at its next poll it declares itself
  // idle, and source 0's watermark alone counts.
  std::this_thread::sleep_for(soon + std::chrono::milliseconds(50));
  sched.advance_time(flow.idle_poll);
  sched.run();
  EXPECT_EQ(events_in(), "1300 events up to 1000");
}

} // namespace
