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

#include "actors/spawn.hpp"
#include "actors/wiring.hpp"
#include "config/node_options.hpp"
#include "kafka/embedded_kafka.hpp"
#include "kafka/kafka_reader.hpp"
#include "pipeline/plan.hpp"
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
  std::map<std::pair<std::string, int32_t>, int64_t> offsets;    ///< next offset per partition
  std::map<std::pair<std::string, int32_t>, int64_t> watermarks; ///< per partition, if any
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
  for (const auto& o : man.offsets()) {
    rp.offsets[{o.topic(), o.partition()}] = o.offset();
    if (o.has_watermark_ms())
      rp.watermarks[{o.topic(), o.partition()}] = o.watermark_ms();
  }
  rp.next_id = std::max(rp.next_id, man.id() + 1);
  rp.epoch = man.epoch() + 1;
  state::checkpoint_store::restore_into(*rp.checkpoint, opts.state_dir);
  auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  m.restore_duration().Set(secs);
  spdlog::info("restored checkpoint {} ({} bytes, epoch {}) from {} in {:.3f} s", man.id(),
               man.size_bytes(), rp.epoch, rp.checkpoint->dir, secs);
  return rp;
}

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
    if (auto w = from.watermarks.find({pipe.source.topic, p}); w != from.watermarks.end())
      sp.initial_watermark = w->second;
    sources.push_back(spawn_source(sys, std::move(sp)));
  }
  return sources;
}

/// The Redis or Kafka sink actor of plan sink `i`.
sink_link spawn_sink(caf::actor_system& sys, const config::node_options& opts,
                     const pipeline::plan& plan, const kafka::properties& props, size_t i,
                     metrics::metrics& m) {
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
    rp.metrics = &m;
    link.redis = spawn_redis_sink(sys, std::move(rp));
  } else {
    kafka_sink_params kp;
    kp.properties = props;
    kp.sink_id = s.cfg->id;
    kp.topic = s.cfg->topic;
    kp.fields = s.names;
    kp.slots = s.slots;
    kp.metrics = &m;
    if (s.cfg->delivery == "exactly-once")
      kp.transactional_id = "keyflow-" + plan.cfg.name + "-" + s.cfg->id;
    link.kafka = spawn_kafka_sink(sys, std::move(kp));
  }
  return link;
}

running_pipeline start(caf::actor_system& sys, const config::node_options& opts,
                       std::shared_ptr<const pipeline::plan> plan, const kafka::properties& props,
                       int source_partitions, state::state_store& store,
                       state::checkpoint_store& checkpoints, const restore_point& from,
                       metrics::metrics& m) {
  const auto& pipe = plan->cfg;
  uint32_t workers =
      opts.workers ? opts.workers : std::max(1u, std::thread::hardware_concurrency());
  uint32_t parallelism = opts.partition_actors ? opts.partition_actors : workers;
  parallelism = std::min(parallelism, pipe.max_parallelism);
  wiring_params w;
  w.plan = plan;
  w.store = &store;
  w.metrics = &m;
  w.flow = flow_settings{opts.batch_size, opts.credits};
  w.parallelism = parallelism;
  w.sources = static_cast<uint32_t>(source_partitions);
  w.flush_interval = std::chrono::milliseconds(opts.flush_interval_ms);
  w.max_state_keys = opts.state_cache_keys;
  w.checkpointing = true;
  w.redis = opts.redis;
  w.make_sink = [&](size_t i) { return spawn_sink(sys, opts, *plan, props, i, m); };
  w.make_dead_letters = [&] {
    kafka_sink_params dp;
    dp.properties = props;
    dp.sink_id = "dead-letters";
    dp.metrics = &m;
    return spawn_kafka_sink(sys, std::move(dp));
  };
  w.make_sources = [&](const std::vector<partition_actor>& stage0, const running_pipeline& run) {
    return start_sources(sys, opts, plan, props, source_partitions, from, stage0, run, m);
  };
  w.checkpoints = &checkpoints;
  w.checkpoint_interval = std::chrono::milliseconds(opts.checkpoint_interval_ms);
  w.checkpoint_timeout = std::chrono::milliseconds(opts.checkpoint_timeout_ms);
  w.first_checkpoint_id = from.next_id;
  w.epoch = from.epoch;
  auto run = wire_pipeline(sys, w);
  spdlog::info("pipeline '{}' v{} ({}): {} source actors ({} partitions of '{}'), {} stage(s) of "
               "{} partition actors over {} key groups, checkpoints every {} ms into {}",
               pipe.name, pipe.version, pipe.mode, run.sources.size(), source_partitions,
               pipe.source.topic, plan->stages, parallelism, pipe.max_parallelism,
               opts.checkpoint_interval_ms, checkpoints.root());
  return run;
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
  drain_pipeline(sys, run, opts.stop_snapshot);
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
