#pragma once
/// \file
/// The fixture of the actor tests: CAF's deterministic test coordinator (messages are run
/// one at a time, timers never fire), a plan built from YAML with make_plan, partition actors
/// with one state store each, generator-backed source actors, capture sinks, and helpers to
/// step single actors and read their mailboxes and stored state.
///
/// A test file includes <caf/test/unit_test_impl.hpp> (with CAF_TEST_NO_MAIN) before this
/// header: GoogleTest is the runner, CAF's test engine is only linked in because the
/// fixture reads its command line.

#include <caf/test/dsl.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <rocksdb/db.h>
#include <rocksdb/iterator.h>

#include "actors/actors.hpp"
#include "actors/spawn.hpp"
#include "core/key_group.hpp"
#include "core/router.hpp"
#include "pipeline/generator_reader.hpp"
#include "pipeline/plan.hpp"
#include "pipeline_util.hpp"
#include "proto/state.pb.h"
#include "state/state_store.hpp"
#include "state/ttl.hpp"

namespace keyflow::test {

/// Registers Keyflow's message types with the test actor system.
struct keyflow_config : caf::actor_system_config {
  keyflow_config() { add_message_types<caf::id_block::keyflow>(); }
};

constexpr uint32_t max_parallelism = 128; ///< key groups of every test pipeline

/// Records a sink received, shared between a capture sink and the test.
using captured = std::shared_ptr<std::vector<record>>;

/// A stand-in Redis sink that keeps every record it gets and answers with credit at once.
inline redis_sink_actor::behavior_type capture_sink(captured out) {
  return {
      [out](record_batch& b) -> uint32_t {
        for (auto& r : b.records)
          out->push_back(std::move(r));
        return 1;
      },
      [](atom::tick) {},
      [out](atom::drain) -> uint64_t { return out->size(); },
  };
}

/// The running aggregate of one key as stored by an aggregate operator (state.proto).
struct stored_aggregate {
  uint64_t records = 0;            ///< records folded in
  std::vector<value> accumulators; ///< value of each accumulator (spec order)
  std::vector<int64_t> counts;     ///< count of each accumulator
};

/// Deterministic actor tests of one plan.
class actor_fixture : public test_coordinator_fixture<keyflow_config>, public ::testing::Test {
public:
  /// A fixture for pipeline YAML `yaml` (schema paths absolute).
  explicit actor_fixture(const std::string& yaml) : plan(plan_of(yaml)) {
    std::string tmpl = "/tmp/keyflow-actors-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
  }

  ~actor_fixture() override {
    // Stop every actor and let the exits be processed, so that the base destructor's run()
    // has nothing left to do but drop the dead actors' pending timeouts.
    stop_all();
    stores_.clear();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  /// Timers never fire in these tests (the actors re-arm theirs forever).
  bool trigger_timeout() override { return false; }

  /// Sends an exit to every actor spawned so far and forgets them.
  void stop_all() {
    for (auto& s : sources)
      caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    for (auto& p : partitions)
      caf::anon_send_exit(p, caf::exit_reason::user_shutdown);
    for (auto& s : sinks)
      caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    sched.run();
    sources.clear();
    partitions.clear();
    sinks.clear();
  }

  /// Settings of the partition actors spawn_stage() makes.
  struct stage_settings {
    int stage = 0;                           ///< plan stage they run
    uint32_t inputs = 1;                     ///< sources or upstream actors feeding each
    bool checkpointing = false;              ///< take part in checkpoints
    bool exactly_once = true;                ///< align barriers
    std::vector<partition_actor> downstream; ///< next stage, key-group order
    std::map<size_t, captured> captures;     ///< plan sink index -> capture sink
  };

  /// Spawns `n` partition actors of one stage, each with its own state store (so each
  /// store holds exactly the keys its actor owns); appends them to `partitions` and
  /// returns them.
  std::vector<partition_actor> spawn_stage(uint32_t n, flow_settings flow,
                                           const stage_settings& s) {
    std::vector<partition_actor> out;
    for (uint32_t i = 0; i < n; ++i) {
      stores_.push_back(state::state_store::open(dir_ + "/p" + std::to_string(stores_.size()),
                                                 plan->column_families()));
      partition_params p;
      p.plan = plan;
      p.stage = s.stage;
      p.store = stores_.back().get();
      p.index = i;
      p.parallelism = n;
      p.flow = flow;
      p.flush_interval = std::chrono::hours(1);
      p.sources = s.inputs;
      p.checkpointing = s.checkpointing;
      p.exactly_once = s.exactly_once;
      p.downstream = s.downstream;
      for (const auto& [index, into] : s.captures) {
        sink_link link;
        link.index = index;
        link.redis = sys.spawn(capture_sink, into);
        sinks.push_back(link.redis);
        p.sinks.push_back(link);
      }
      out.push_back(spawn_partition(sys, std::move(p)));
      partitions.push_back(out.back());
      store_of_[caf::actor_cast<caf::actor_addr>(out.back())] = stores_.back().get();
    }
    return out;
  }

  /// Spawns `n` stage-0 partition actors fed by `inputs` sources.
  std::vector<partition_actor> spawn_partitions(uint32_t n, flow_settings flow, uint32_t inputs = 1,
                                                bool checkpointing = false,
                                                bool exactly_once = true) {
    stage_settings s;
    s.inputs = inputs;
    s.checkpointing = checkpointing;
    s.exactly_once = exactly_once;
    return spawn_stage(n, flow, s);
  }

  /// Spawns a source reading generator `index` into `to` (default: every partition so far),
  /// with the given watermark settings.
  source_actor
  spawn_generator_source(const pipeline::datagen_options& opts, uint32_t index, flow_settings flow,
                         std::vector<partition_actor> to = {}, int64_t max_out_of_orderness_ms = 0,
                         std::chrono::milliseconds idle_timeout = std::chrono::milliseconds(5000)) {
    source_params p;
    p.reader = std::make_shared<pipeline::generator_reader>(
        plan, pipeline::make_datagen(opts, index), index);
    p.max_parallelism = max_parallelism;
    p.partitions = to.empty() ? partitions : std::move(to);
    p.flow = flow;
    p.index = static_cast<uint32_t>(sources.size());
    p.max_out_of_orderness_ms = max_out_of_orderness_ms;
    p.idle_timeout = idle_timeout;
    sources.push_back(spawn_source(sys, std::move(p)));
    return sources.back();
  }

  /// Sends `msg` from the scoped actor, runs the system until idle and returns the reply.
  template <class Handle, class... Ts>
  uint64_t ask(const Handle& hdl, Ts... msg) {
    uint64_t result = UINT64_MAX;
    auto rh = self->request(hdl, caf::infinite, msg...);
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

  /// Every (key, aggregate) of operator `op` in the store of partition `hdl` of a stage of
  /// `parallelism` actors, checking each key lies in the actor's key-group range.
  std::map<std::string, stored_aggregate> stored(const partition_actor& hdl, uint32_t index,
                                                 uint32_t parallelism,
                                                 const std::string& op = "aggregate") {
    std::map<std::string, stored_aggregate> out;
    auto& store = *store_of_.at(caf::actor_cast<caf::actor_addr>(hdl));
    auto* cf = store.column_family(op);
    EXPECT_NE(cf, nullptr) << op;
    if (cf == nullptr)
      return out;
    std::unique_ptr<rocksdb::Iterator> it{store.db()->NewIterator(rocksdb::ReadOptions{}, cf)};
    const auto range = range_for_actor(max_parallelism, parallelism, index);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const auto k = it->key().ToString();
      const auto key = k.substr(2);
      const auto kg = state::key_group_of_state_key(k);
      EXPECT_EQ(kg, key_group_of(key, max_parallelism)) << key;
      EXPECT_TRUE(range.contains(kg))
          << "partition " << index << " holds key " << key << " of key group " << kg;
      std::string_view bytes{it->value().data(), it->value().size()};
      int64_t expire_at = 0;
      state::strip_ttl_header(bytes, expire_at);
      proto::WindowState msg;
      EXPECT_TRUE(msg.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) << key;
      stored_aggregate a;
      if (msg.windows_size() == 1) {
        a.records = msg.windows(0).records();
        for (const auto& acc : msg.windows(0).accumulators()) {
          const auto& v = acc.value();
          a.accumulators.push_back(v.has_int64_value()    ? value::of(v.int64_value())
                                   : v.has_double_value() ? value::of(v.double_value())
                                   : v.has_string_value() ? value::of(v.string_value())
                                                          : value{});
          a.counts.push_back(acc.count());
        }
      }
      EXPECT_TRUE(out.emplace(key, a).second) << key;
    }
    return out;
  }

  /// Keys stored by operator `op` in the store of partition `hdl` (any state type).
  size_t stored_keys(const partition_actor& hdl, const std::string& op) {
    auto& store = *store_of_.at(caf::actor_cast<caf::actor_addr>(hdl));
    std::unique_ptr<rocksdb::Iterator> it{
        store.db()->NewIterator(rocksdb::ReadOptions{}, store.column_family(op))};
    size_t n = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next())
      ++n;
    return n;
  }

  /// A record of `key` at `time` with value `v`, in the layout of the source: every other
  /// field gets a value derived from the key and time.
  record make_record(const std::string& key, int64_t time, double v = 1,
                     const std::string& type = "buy") const {
    record r;
    r.key = key;
    r.key_group = key_group_of(key, max_parallelism);
    r.event_time_ms = time;
    for (const auto& f : plan->source_layout.fields()) {
      if (f.name == "customer_id")
        r.fields.push_back(value::of(key));
      else if (f.name == "event_id")
        r.fields.push_back(value::of(key + "@" + std::to_string(time)));
      else if (f.name == "event_time_ms")
        r.fields.push_back(value::of(time));
      else if (f.name == "value")
        r.fields.push_back(value::of(v));
      else if (f.name == "type")
        r.fields.push_back(value::of(type));
      else
        r.fields.emplace_back();
    }
    return r;
  }

  std::shared_ptr<const pipeline::plan> plan; ///< the plan every actor runs
  std::vector<source_actor> sources;          ///< spawned sources
  std::vector<partition_actor> partitions;    ///< spawned partition actors, all stages
  std::vector<redis_sink_actor> sinks;        ///< spawned capture sinks

private:
  std::string dir_;
  std::vector<std::unique_ptr<state::state_store>> stores_;
  std::map<caf::actor_addr, state::state_store*> store_of_;
};

} // namespace keyflow::test
