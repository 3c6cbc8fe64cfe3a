#include "node/node_pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <spdlog/spdlog.h>

#include "actors/spawn.hpp"
#include "kafka/kafka_reader.hpp"

namespace keyflow::node {

namespace {

using clock_type = std::chrono::steady_clock;

std::vector<source_actor> start_sources(caf::actor_system& sys, const node_env& env,
                                        const instance_spec& spec, const restore_point& from,
                                        const std::vector<partition_actor>& stage0,
                                        const running_pipeline& run) {
  const auto& opts = *env.opts;
  const auto& pipe = env.plan->cfg;
  kafka::properties consumer_props = env.props;
  consumer_props["group.id"] = opts.group_id;
  consumer_props["enable.auto.commit"] = "false";
  consumer_props["auto.offset.reset"] = "earliest"; // a restored offset below the log start
  consumer_props.emplace("queued.max.messages.kbytes", "4096"); // prefetch bound; overridable
  int64_t fresh =
      pipe.source.start_offset == "latest" ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING;
  std::vector<source_actor> sources;
  // Every watermark the instance's sources send is below it: hot-key fanout into windows.
  // Not for a slice of a spread job: its partition actors also hear other nodes' sources.
  auto bound = spec.spread ? nullptr : std::make_shared<std::atomic<int64_t>>(no_watermark);
  for (size_t i = 0; i < spec.partitions.size(); ++i) {
    int32_t p = spec.partitions[i];
    auto at = from.offsets.find({pipe.source.topic, p});
    // A partition the checkpoint does not know (the topic grew) starts from the beginning.
    int64_t start = at != from.offsets.end() ? at->second
                    : from.checkpoint        ? RD_KAFKA_OFFSET_BEGINNING
                                             : fresh;
    auto reader =
        std::make_shared<kafka::kafka_reader>(env.plan, consumer_props, p, start, env.metrics);
    reader->set_hints(spec.supervised.hints);
    if (!opts.no_hot_key_fanout)
      reader->enable_fanout(opts.hot_key_percent / 100.0, bound);
    source_params sp{reader,
                     pipe.max_parallelism,
                     stage0,
                     run.dead_letters,
                     flow_settings{opts.batch_size, opts.credits},
                     env.metrics,
                     spec.spread ? static_cast<uint32_t>(p) : static_cast<uint32_t>(i),
                     pipe.source.watermark.max_out_of_orderness_ms,
                     std::chrono::milliseconds(pipe.source.watermark.idle_timeout_ms)};
    if (auto w = from.watermarks.find({pipe.source.topic, p}); w != from.watermarks.end())
      sp.initial_watermark = w->second;
    sp.lease = env.lease;
    sp.watermark_bound = bound;
    sources.push_back(spawn_source(sys, std::move(sp)));
  }
  return sources;
}

/// The Redis or Kafka sink actor of plan sink `i`.
sink_link spawn_sink(caf::actor_system& sys, const node_env& env, const instance_spec& spec,
                     size_t i) {
  const auto& opts = *env.opts;
  const auto& plan = *env.plan;
  const auto& s = plan.sinks[i];
  sink_link link;
  link.index = i;
  if (s.cfg->type == "redis") {
    redis_sink_params rp;
    rp.address = opts.redis;
    rp.key_prefix = s.cfg->key_prefix;
    rp.sink_id = s.cfg->id;
    rp.fields = s.names;
    rp.slots = s.slots;
    rp.key_slots = s.key_slots;
    rp.flush_interval = std::chrono::milliseconds(opts.sink_flush_ms);
    rp.max_pending = opts.sink_max_pending;
    rp.metrics = env.metrics;
    rp.fence_key = spec.fence_key;
    rp.generation = spec.generation;
    link.redis = spawn_redis_sink(sys, std::move(rp));
  } else {
    kafka_sink_params kp;
    kp.properties = env.props;
    kp.sink_id = s.cfg->id;
    kp.topic = s.cfg->topic;
    kp.fields = s.names;
    kp.slots = s.slots;
    kp.metrics = env.metrics;
    // One transactional id per region: a new owner's producer fences the old one's.
    if (s.cfg->delivery == "exactly-once")
      kp.transactional_id = "keyflow-" + plan.cfg.name + "-" + s.cfg->id + spec.suffix;
    kp.lease = env.lease;
    link.kafka = spawn_kafka_sink(sys, std::move(kp));
  }
  return link;
}

} // namespace

restore_point restore(const node_env& env, std::optional<state::checkpoint_info> chk,
                      const std::string& state_dir, uint64_t min_next_id) {
  const auto& pipe = env.plan->cfg;
  auto t0 = clock_type::now();
  restore_point rp;
  rp.checkpoint = std::move(chk);
  rp.next_id = std::max<uint64_t>(min_next_id, 1);
  if (!rp.checkpoint) {
    std::filesystem::remove_all(state_dir);
    return rp;
  }
  const auto& man = rp.checkpoint->manifest;
  if (man.pipeline() != pipe.name)
    throw std::runtime_error("checkpoint " + rp.checkpoint->dir + " belongs to pipeline '" +
                             man.pipeline() + "', not '" + pipe.name + "'");
  if (man.max_parallelism() != pipe.max_parallelism)
    throw std::runtime_error("checkpoint " + rp.checkpoint->dir + " has max_parallelism " +
                             std::to_string(man.max_parallelism()) + ", pipeline has " +
                             std::to_string(pipe.max_parallelism));
  for (const auto& o : man.offsets()) {
    rp.offsets[{o.topic(), o.partition()}] = o.offset();
    if (o.has_watermark_ms())
      rp.watermarks[{o.topic(), o.partition()}] = o.watermark_ms();
  }
  rp.next_id = std::max(rp.next_id, man.id() + 1);
  rp.epoch = man.epoch() + 1;
  state::checkpoint_store::restore_into(*rp.checkpoint, state_dir);
  auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  if (env.metrics != nullptr)
    env.metrics->restore_duration().Set(secs);
  spdlog::info("restored checkpoint {} ({} bytes, epoch {}) from {} in {:.3f} s", man.id(),
               man.size_bytes(), rp.epoch, rp.checkpoint->dir, secs);
  return rp;
}

void supervised_start(const node_env& env, instance_spec& spec) {
  if (env.sup)
    spec.supervised = {env.sup, env.sup->hints(), spec.region, env.sup->started(spec.region)};
}

void watch_actors(const node_env& env, const instance_spec& spec, const running_pipeline& run) {
  if (env.supervisor)
    caf::anon_send(env.supervisor, atom::monitor_v, pipeline_actors(run), spec.region,
                   spec.supervised.incarnation);
}

uint32_t actors_per_stage(const config::node_options& opts, const pipeline::plan& plan) {
  uint32_t workers =
      opts.workers ? opts.workers : std::max(1u, std::thread::hardware_concurrency());
  uint32_t parallelism = opts.partition_actors ? opts.partition_actors : workers;
  return std::min(parallelism, plan.cfg.max_parallelism);
}

namespace {

/// Wiring of an instance, without its sources.
wiring_params instance_wiring(caf::actor_system& sys, const node_env& env,
                              const instance_spec& spec, state::state_store& store) {
  const auto& opts = *env.opts;
  wiring_params w;
  w.plan = env.plan;
  w.store = &store;
  w.metrics = env.metrics;
  w.flow = flow_settings{opts.batch_size, opts.credits};
  w.parallelism = actors_per_stage(opts, *env.plan);
  w.sources = static_cast<uint32_t>(spec.partitions.size());
  w.flush_interval = std::chrono::milliseconds(opts.flush_interval_ms);
  w.max_state_keys = opts.state_cache_keys;
  w.checkpointing = true;
  w.redis = opts.redis;
  w.supervised = spec.supervised;
  w.hot_key_share = opts.hot_key_percent / 100.0;
  w.make_sink = [&sys, &env, spec](size_t i) { return spawn_sink(sys, env, spec, i); };
  w.make_dead_letters = [&sys, &env] {
    kafka_sink_params dp;
    dp.properties = env.props;
    dp.sink_id = "dead-letters";
    dp.metrics = env.metrics;
    dp.lease = env.lease;

    return spawn_kafka_sink(sys, std::move(dp));
  };
  return w;
}

} // namespace

running_pipeline start_instance(caf::actor_system& sys, const node_env& env,
                                const instance_spec& given, state::state_store& store,
                                state::checkpoint_store& checkpoints, const restore_point& from) {
  const auto& opts = *env.opts;
  const auto& pipe = env.plan->cfg;
  auto spec = given;
  supervised_start(env, spec);
  auto w = instance_wiring(sys, env, spec, store);
  w.make_sources = [&](const std::vector<partition_actor>& stage0, const running_pipeline& run) {
    return start_sources(sys, env, spec, from, stage0, run);
  };
  w.checkpoints = &checkpoints;
  w.checkpoint_interval = std::chrono::milliseconds(opts.checkpoint_interval_ms);
  w.checkpoint_timeout = std::chrono::milliseconds(opts.checkpoint_timeout_ms);
  w.first_checkpoint_id = from.next_id;
  w.epoch = from.epoch;
  auto run = wire_pipeline(sys, w);
  watch_actors(env, spec, run);
  spdlog::info("pipeline '{}' v{} ({}){}: {} source actors ({} of {} partitions of '{}'), {} "
               "stage(s) of {} partition actors over {} key groups, checkpoints every {} ms "
               "into {}",
               pipe.name, pipe.version, pipe.mode,
               spec.suffix.empty()
                   ? std::string{}
                   : fmt::format(" region {} generation {}", spec.region, spec.generation),
               run.sources.size(), spec.partitions.size(), env.source_partitions, pipe.source.topic,
               env.plan->stages, w.parallelism, pipe.max_parallelism, opts.checkpoint_interval_ms,
               checkpoints.root());
  return run;
}

running_pipeline prepare_slice(caf::actor_system& sys, const node_env& env,
                               const instance_spec& spec, state::state_store& store,
                               uint32_t slices) {
  auto w = instance_wiring(sys, env, spec, store);
  w.slice = true;
  w.first_index = spec.region * w.parallelism;
  w.total_parallelism = slices * w.parallelism;
  w.stage0_inputs = static_cast<uint32_t>(env.source_partitions);
  return wire_pipeline(sys, w);
}

void start_slice_sources(caf::actor_system& sys, const node_env& env, const instance_spec& spec,
                         const restore_point& from, const std::vector<partition_actor>& stage0,
                         running_pipeline& run) {
  run.sources = start_sources(sys, env, spec, from, stage0, run);
}

state::checkpoint_info take_named_snapshot(caf::actor_system& sys, const node_env& env,
                                           const checkpoint_coordinator_actor& coordinator,
                                           const state::checkpoint_store& checkpoints,
                                           const std::string& name, const std::string& context) {
  caf::scoped_actor self{sys};
  std::string failure;
  self->request(coordinator, std::chrono::milliseconds(env.opts->checkpoint_timeout_ms + 5000),
                atom::checkpoint_v, name)
      .receive([](uint64_t) {}, [&](caf::error& err) { failure = sys.render(err); });
  if (!failure.empty())
    throw std::runtime_error(context + "snapshot '" + name + "' failed: " + failure);
  return checkpoints.snapshot(name);
}

} // namespace keyflow::node
