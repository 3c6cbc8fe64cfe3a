// keyflowd: one Keyflow node. Parses options and the pipeline (any error exits non-zero
// before anything starts), restores the latest complete checkpoint (or a named snapshot),
// starts the actor system, wires the pipeline and its checkpoint coordinator, and on
// SIGINT/SIGTERM drains in-flight records and takes a final checkpoint.

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <google/protobuf/stubs/logging.h>

#include "actors/lookup_spawn.hpp"
#include "actors/spawn.hpp"
#include "config/node_options.hpp"
#include "pipeline/plan.hpp"
#include "kafka/embedded_kafka.hpp"
#include "kafka/kafka_reader.hpp"
#include "redis/redis_client.hpp"

namespace {

using namespace keyflow;
using clock_type = std::chrono::steady_clock;

volatile std::sig_atomic_t stop_requested = 0;
volatile std::sig_atomic_t checkpoint_requested = 0;

void on_signal(int) {
  stop_requested = 1;
}

void on_checkpoint_signal(int) {
  checkpoint_requested = 1;
}

/// Fails with a message naming the topic unless it exists; returns its partition count.
int require_topic(const kafka::properties& props, const std::string& topic, const char* role) {
  int n = kafka::partition_count(props, topic);
  if (n <= 0)
    throw std::runtime_error(std::string{role} + " topic '" + topic + "' does not exist at " +
                             props.at("bootstrap.servers"));
  return n;
}

/// Where the node starts from: a checkpoint (or snapshot), or nothing.
struct restore_point {
  std::optional<state::checkpoint_info> checkpoint;
  std::map<std::pair<std::string, int32_t>, int64_t> offsets; ///< next offset per partition
  uint64_t next_id = 1;
  uint64_t epoch = 1;
};

/// Finds the checkpoint to start from, checks it fits the pipeline, and copies its state
/// into the state directory. Without one, the state directory is emptied: state that no
/// checkpoint vouches for must not meet offsets it does not belong to.
restore_point restore(const config::node_options& opts, const config::pipeline_config& pipe,
                      state::checkpoint_store& store, metrics::metrics& m) {
  auto t0 = clock_type::now();
  restore_point rp;
  if (!opts.restore_snapshot.empty()) {
    rp.checkpoint = store.snapshot(opts.restore_snapshot);
  } else {
    rp.checkpoint = store.latest_valid([&](const std::string& dir, const std::string& why) {
      spdlog::error("checkpoint {} is unusable, falling back to an older one: {}", dir, why);
      m.checkpoints_corrupt().Increment();
    });
  }
  auto ids = store.checkpoint_ids();
  rp.next_id = ids.empty() ? 1 : ids.front() + 1;
  if (!rp.checkpoint) {
    std::filesystem::remove_all(opts.state_dir);
    spdlog::info("no checkpoint under {}: starting from empty state", store.root());
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
  for (const auto& o : man.offsets())
    rp.offsets[{o.topic(), o.partition()}] = o.offset();
  rp.next_id = std::max(rp.next_id, man.id() + 1);
  rp.epoch = man.epoch() + 1;
  state::checkpoint_store::restore_into(*rp.checkpoint, opts.state_dir);
  auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  m.restore_duration().Set(secs);
  spdlog::info("restored checkpoint {} ({} bytes, epoch {}) from {} in {:.3f} s", man.id(),
               man.size_bytes(), rp.epoch, rp.checkpoint->dir, secs);
  return rp;
}

struct running_pipeline {
  std::vector<source_actor> sources;
  std::vector<partition_actor> partitions; // every stage
  std::vector<redis_sink_actor> redis;
  std::vector<kafka_sink_actor> kafka; // result sinks, then the dead-letter sink
  kafka_sink_actor dead_letters;
  std::vector<lookup_actor> lookups;
  checkpoint_coordinator_actor coordinator;
};

std::vector<source_actor> start_sources(caf::actor_system& sys, const config::node_options& opts,
                                        std::shared_ptr<const pipeline::plan> plan,
                                        const kafka::properties& props, int partitions,
                                        const restore_point& from,
                                        const std::vector<partition_actor>& stage0,
                                        const running_pipeline& run, metrics::metrics& m) {
  const auto& pipe = plan->cfg;
  kafka::properties consumer_props = props;
  consumer_props["group.id"] = opts.group_id;
  consumer_props["enable.auto.commit"] = "false";
  consumer_props["auto.offset.reset"] = "earliest"; // a restored offset below the log start
  consumer_props.emplace("queued.max.messages.kbytes", "4096"); // prefetch bound; overridable
  int64_t fresh =
      pipe.source.start_offset == "latest" ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING;
  std::vector<source_actor> sources;
  for (int p = 0; p < partitions; ++p) {
    auto i = from.offsets.find({pipe.source.topic, p});
    // A partition the checkpoint does not know (the topic grew) starts from the beginning.
    int64_t start = i != from.offsets.end() ? i->second
                    : from.checkpoint       ? RD_KAFKA_OFFSET_BEGINNING
                                            : fresh;
    auto reader = std::make_shared<kafka::kafka_reader>(plan, consumer_props, p, start, &m);
    source_params sp{reader,
                     pipe.max_parallelism,
                     stage0,
                     run.dead_letters,
                     flow_settings{opts.batch_size, opts.credits},
                     &m,
                     static_cast<uint32_t>(p),
                     pipe.source.watermark.max_out_of_orderness_ms,
                     std::chrono::milliseconds(pipe.source.watermark.idle_timeout_ms)};
    sources.push_back(spawn_source(sys, std::move(sp)));
  }
  return sources;
}

running_pipeline start(caf::actor_system& sys, const config::node_options& opts,
                       std::shared_ptr<const pipeline::plan> plan, const kafka::properties& props,
                       int source_partitions, state::state_store& store,
                       state::checkpoint_store& checkpoints, const restore_point& from,
                       metrics::metrics& m) {
  const auto& pipe = plan->cfg;
  running_pipeline run;
  flow_settings flow{opts.batch_size, opts.credits};
  bool exactly_once = pipe.mode == "exactly-once";
  // Sinks.
  std::vector<sink_link> links(plan->sinks.size());
  for (size_t i = 0; i < plan->sinks.size(); ++i) {
    const auto& s = plan->sinks[i];
    links[i].index = i;
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
      rp.metrics = &m;
      links[i].redis = spawn_redis_sink(sys, std::move(rp));
      run.redis.push_back(links[i].redis);
    } else {
      kafka_sink_params kp;
      kp.properties = props;
      kp.sink_id = s.cfg->id;
      kp.topic = s.cfg->topic;
      kp.fields = s.names;
      kp.slots = s.slots;
      kp.metrics = &m;
      if (s.cfg->delivery == "exactly-once")
        kp.transactional_id = "keyflow-" + pipe.name + "-" + s.cfg->id;
      links[i].kafka = spawn_kafka_sink(sys, std::move(kp));
      run.kafka.push_back(links[i].kafka);
    }
  }
  kafka_sink_params dp;
  dp.properties = props;
  dp.sink_id = "dead-letters";
  dp.metrics = &m;
  run.dead_letters = spawn_kafka_sink(sys, std::move(dp));
  run.kafka.push_back(run.dead_letters);
  // Lookup actors of enrich operators.
  std::map<std::string, lookup_actor> lookups;
  for (const auto& op : plan->ops) {
    if (op.cfg->type != "enrich")
      continue;
    lookup_params lp;
    lp.address = opts.redis;
    for (const auto& f : op.enrich.fields)
      lp.fields.push_back(f.hash_field);
    lp.batch_size = op.cfg->batch_size;
    lp.max_delay = std::chrono::milliseconds(op.cfg->max_delay_ms);
    lp.timeout = std::chrono::milliseconds(op.cfg->timeout_ms);
    lp.retries = op.cfg->retries;
    auto actor = spawn_lookup(sys, std::move(lp));
    lookups.emplace(op.cfg->id, actor);
    run.lookups.push_back(actor);
  }
  // Partition actors, last stage first so that each stage knows the next.
  uint32_t workers =
      opts.workers ? opts.workers : std::max(1u, std::thread::hardware_concurrency());
  uint32_t parallelism = opts.partition_actors ? opts.partition_actors : workers;
  parallelism = std::min(parallelism, pipe.max_parallelism);
  std::vector<partition_actor> next, stage0;
  for (int stage = plan->stages - 1; stage >= 0; --stage) {
    std::vector<partition_actor> current;
    for (uint32_t i = 0; i < parallelism; ++i) {
      partition_params pp;
      pp.plan = plan;
      pp.stage = stage;
      pp.store = &store;
      pp.index = i;
      pp.parallelism = parallelism;
      for (const auto& l : links)
        if (plan->sinks[l.index].stage == stage)
          pp.sinks.push_back(l);
      pp.dead_letters = run.dead_letters;
      pp.downstream = next;
      pp.lookups = lookups;
      pp.flow = flow;
      pp.flush_interval = std::chrono::milliseconds(opts.flush_interval_ms);
      pp.metrics = &m;
      pp.sources = stage == 0 ? static_cast<uint32_t>(source_partitions) : parallelism;
      pp.checkpointing = true;
      pp.exactly_once = exactly_once;
      pp.max_state_keys = opts.state_cache_keys;
      current.push_back(spawn_partition(sys, std::move(pp)));
    }
    run.partitions.insert(run.partitions.end(), current.begin(), current.end());
    next = current;
    if (stage == 0)
      stage0 = current;
  }
  run.sources =
      start_sources(sys, opts, plan, props, source_partitions, from, stage0, run, m);
  coordinator_params cp;
  cp.plan = plan;
  cp.store = &store;
  cp.checkpoints = &checkpoints;
  cp.sources = run.sources;
  cp.partitions = run.partitions;
  cp.redis = run.redis;
  cp.kafka = run.kafka;
  cp.interval = std::chrono::milliseconds(opts.checkpoint_interval_ms);
  cp.timeout = std::chrono::milliseconds(opts.checkpoint_timeout_ms);
  cp.first_id = from.next_id;
  cp.epoch = from.epoch;
  cp.exactly_once = exactly_once;
  cp.metrics = &m;
  run.coordinator = spawn_checkpoint_coordinator(sys, std::move(cp));
  spdlog::info("pipeline '{}' v{} ({}): {} source actors ({} partitions of '{}'), {} stage(s) of "
               "{} partition actors over {} key groups, checkpoints every {} ms into {}",
               pipe.name, pipe.version, pipe.mode, run.sources.size(), source_partitions,
               pipe.source.topic, plan->stages, parallelism, pipe.max_parallelism,
               opts.checkpoint_interval_ms, checkpoints.root());
  return run;
}

/// Graceful stop: sources stop reading and wait for their batches, a final checkpoint
/// records exactly where they stopped, then partitions and sinks drain.
void drain(caf::actor_system& sys, running_pipeline& run, const std::string& snapshot) {
  caf::scoped_actor self{sys};
  auto timeout = std::chrono::seconds(120);
  uint64_t read = 0, processed = 0;
  auto fail = [](caf::error& err) { spdlog::error("drain: {}", caf::to_string(err)); };
  for (auto& s : run.sources)
    self->request(s, timeout, atom::stop_v).receive([&](uint64_t n) { read += n; }, fail);
  self->request(run.coordinator, timeout, atom::checkpoint_v, snapshot)
      .receive(
          [&](uint64_t id) {
            if (snapshot.empty())
              spdlog::info("final checkpoint {} written", id);
            else
              spdlog::info("final checkpoint {} written as snapshot '{}'", id, snapshot);
          },
          fail);
  // Earlier stages first: a stage is drained once everything it sent has been taken.
  for (auto i = run.partitions.rbegin(); i != run.partitions.rend(); ++i)
    self->request(*i, timeout, atom::drain_v).receive([&](uint64_t n) { processed += n; }, fail);
  for (auto& s : run.redis)
    self->request(s, timeout, atom::drain_v).receive([](uint64_t) {}, fail);
  for (auto& s : run.kafka)
    self->request(s, timeout, atom::drain_v).receive([](uint64_t) {}, fail);
  spdlog::info("drained: {} records read, {} processed", read, processed);
  for (auto& s : run.sources)
    caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  for (auto& p : run.partitions)
    caf::anon_send_exit(p, caf::exit_reason::user_shutdown);
  for (auto& s : run.redis)
    caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  for (auto& s : run.kafka)
    caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  for (auto& l : run.lookups)
    caf::anon_send_exit(l, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(run.coordinator, caf::exit_reason::user_shutdown);
}

int run_node(const config::node_options& opts) {
  auto plan = pipeline::load_plan(opts.pipeline);
  const auto& pipe = plan->cfg;
  if (!opts.stop_snapshot.empty() &&
      !state::checkpoint_store::valid_snapshot_name(opts.stop_snapshot))
    throw config::config_error("option --stop-snapshot: invalid snapshot name '" +
                               opts.stop_snapshot + "' (1-64 characters of A-Z a-z 0-9 . _ -)");
  // Every topic the pipeline writes, with its role for messages.
  std::vector<std::pair<std::string, std::string>> outputs{{pipe.dead_letter_topic, "dead-letter"}};
  for (const auto& s : pipe.sinks)
    if (s.type == "kafka")
      outputs.emplace_back(s.topic, "sink '" + s.id + "'");
  for (const auto& op : pipe.operators)
    if (!op.late_topic.empty())
      outputs.emplace_back(op.late_topic, "late-data (operator '" + op.id + "')");
  std::unique_ptr<kafka::embedded_kafka> embedded;
  std::string bootstrap = opts.bootstrap_servers;
  if (opts.embedded_kafka) {
    embedded = std::make_unique<kafka::embedded_kafka>(1);
    embedded->create_topic(pipe.source.topic, static_cast<int>(opts.embedded_partitions));
    for (const auto& [topic, role] : outputs)
      embedded->create_topic(topic, 1);
    bootstrap = embedded->bootstrap_servers();
    spdlog::info("embedded Kafka (librdkafka mock cluster) at {}", bootstrap);
  }
  kafka::properties props{{"bootstrap.servers", bootstrap}};
  for (size_t start = 0; start < opts.kafka_properties.size();) { // "k=v;k=v", checked already
    auto end = opts.kafka_properties.find(';', start);
    auto item = opts.kafka_properties.substr(start, end == std::string::npos ? end : end - start);
    auto eq = item.find('=');
    props[item.substr(0, eq)] = item.substr(eq + 1);
    start = end == std::string::npos ? opts.kafka_properties.size() : end + 1;
  }
  int partitions = require_topic(props, pipe.source.topic, "source");
  for (const auto& [topic, role] : outputs)
    require_topic(props, topic, role.c_str());
  bool needs_redis = false;
  std::string redis_user;
  for (const auto& s : pipe.sinks)
    if (s.type == "redis") {
      needs_redis = true;
      redis_user = "a Redis sink ('" + s.id + "')";
    }
  for (const auto& op : pipe.operators)
    if (op.type == "enrich") {
      needs_redis = true;
      redis_user = "an enrich operator ('" + op.id + "')";
    }
  if (needs_redis) {
    if (opts.redis.empty())
      throw std::runtime_error("pipeline '" + pipe.name + "' has " + redis_user +
                               " but no --redis address is given");
    redis::client probe{redis::address::parse(opts.redis)};
    probe.command({"PING"});
  }
  metrics::metrics m{pipe.name};
  auto state_path = std::filesystem::path{opts.state_dir}.lexically_normal();
  if (state_path.filename().empty()) // "state/" names the same directory as "state"
    state_path = state_path.parent_path();
  auto checkpoint_dir =
      opts.checkpoint_dir.empty() ? state_path.string() + "-checkpoints" : opts.checkpoint_dir;
  state::checkpoint_store checkpoints{checkpoint_dir, opts.checkpoints_retained};
  auto from = restore(opts, pipe, checkpoints, m);
  auto store = state::state_store::open(opts.state_dir, plan->column_families());
  m.serve(opts.metrics_address);

  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::keyflow>();
  if (opts.workers > 0)
    cfg.set("scheduler.max-threads", static_cast<size_t>(opts.workers));
  cfg.set("logger.console-verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  auto run = start(sys, opts, plan, props, partitions, *store, checkpoints, from, m);
  std::printf("keyflowd ready: pipeline=%s kafka=%s metrics=http://127.0.0.1:%d/metrics\n",
              pipe.name.c_str(), bootstrap.c_str(), m.port());
  std::fflush(stdout);
  while (!stop_requested) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (checkpoint_requested) { // SIGUSR1: a checkpoint now, outside the interval
      checkpoint_requested = 0;
      caf::anon_send(run.coordinator, atom::checkpoint_v, std::string{});
      spdlog::info("checkpoint requested (SIGUSR1)");
    }
  }
  spdlog::info("stopping: draining in-flight records");
  drain(sys, run, opts.stop_snapshot);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGUSR1, on_checkpoint_signal);
  config::node_options opts;
  try {
    opts = config::parse_node_options(argc, argv);
  } catch (const config::config_error& e) {
    std::cerr << "keyflowd: " << e.what() << "\n";
    return 2;
  }
  spdlog::set_default_logger(spdlog::stderr_color_mt("keyflowd"));
  spdlog::set_level(spdlog::level::from_str(opts.log_level));
  // libprotobuf logs one line per malformed record (e.g. invalid UTF-8) straight to stderr;
  // such records already become dead letters, counted in metrics, so only debug shows them.
  google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char*, int, const std::string& msg) {
        spdlog::debug("protobuf: {}", msg);
      });
  try {
    return run_node(opts);
  } catch (const config::config_error& e) {
    std::cerr << "keyflowd: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "keyflowd: " << e.what() << "\n";
    return 1;
  }
}
