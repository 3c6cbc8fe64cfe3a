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
#include "config/node_options.hpp"
#include "config/pipeline_config.hpp"
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
  std::vector<partition_actor> partitions;
  redis_sink_actor redis;
  kafka_sink_actor kafka;
  checkpoint_coordinator_actor coordinator;
};

std::vector<source_actor> start_sources(caf::actor_system& sys, const config::node_options& opts,
                                        const config::pipeline_config& pipe,
                                        const kafka::properties& props, int partitions,
                                        const restore_point& from, running_pipeline& run,
                                        metrics::metrics& m) {
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
    auto reader = std::make_shared<kafka::kafka_reader>(pipe, consumer_props, p, start, &m);
    source_params sp{reader,
                     pipe.max_parallelism,
                     run.partitions,
                     run.kafka,
                     flow_settings{opts.batch_size, opts.credits},
                     &m,
                     static_cast<uint32_t>(p)};
    sources.push_back(spawn_source(sys, std::move(sp)));
  }
  return sources;
}

running_pipeline start(caf::actor_system& sys, const config::node_options& opts,
                       const config::pipeline_config& pipe, const kafka::properties& props,
                       int source_partitions, state::state_store& store,
                       state::checkpoint_store& checkpoints, const restore_point& from,
                       metrics::metrics& m) {
  running_pipeline run;
  flow_settings flow{opts.batch_size, opts.credits};
  if (pipe.redis_sink)
    run.redis = spawn_redis_sink(sys, {opts.redis, pipe.redis_sink->key_prefix, pipe.redis_sink->id,
                                       std::chrono::milliseconds(opts.sink_flush_ms),
                                       opts.sink_max_pending, &m});
  kafka_sink_params kp{props, "kafka", &m, {}};
  if (pipe.kafka_sink && pipe.kafka_sink->delivery == "exactly-once")
    kp.transactional_id = "keyflow-" + pipe.name + "-" + pipe.kafka_sink->id;
  run.kafka = spawn_kafka_sink(sys, std::move(kp));
  uint32_t workers =
      opts.workers ? opts.workers : std::max(1u, std::thread::hardware_concurrency());
  uint32_t parallelism = opts.partition_actors ? opts.partition_actors : workers;
  parallelism = std::min(parallelism, pipe.max_parallelism);
  bool exactly_once = pipe.mode == "exactly-once";
  for (uint32_t i = 0; i < parallelism; ++i) {
    partition_params pp{&pipe,
                        &store,
                        i,
                        run.redis,
                        pipe.kafka_sink ? run.kafka : kafka_sink_actor{},
                        flow,
                        std::chrono::milliseconds(opts.flush_interval_ms),
                        &m,
                        static_cast<uint32_t>(source_partitions),
                        true,
                        exactly_once};
    pp.max_state_keys = opts.state_cache_keys;
    run.partitions.push_back(spawn_partition(sys, std::move(pp)));
  }
  run.sources = start_sources(sys, opts, pipe, props, source_partitions, from, run, m);
  run.coordinator = spawn_checkpoint_coordinator(
      sys, {&pipe, &store, &checkpoints, run.sources, run.partitions, run.redis, run.kafka,
            std::chrono::milliseconds(opts.checkpoint_interval_ms),
            std::chrono::milliseconds(opts.checkpoint_timeout_ms), from.next_id, from.epoch,
            exactly_once, &m});
  spdlog::info("pipeline '{}' v{} ({}): {} source actors ({} partitions of '{}'), {} partition "
               "actors over {} key groups, checkpoints every {} ms into {}",
               pipe.name, pipe.version, pipe.mode, run.sources.size(), source_partitions,
               pipe.source.topic, run.partitions.size(), pipe.max_parallelism,
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
  for (auto& p : run.partitions)
    self->request(p, timeout, atom::drain_v).receive([&](uint64_t n) { processed += n; }, fail);
  if (run.redis)
    self->request(run.redis, timeout, atom::drain_v).receive([](uint64_t) {}, fail);
  self->request(run.kafka, timeout, atom::drain_v).receive([](uint64_t) {}, fail);
  spdlog::info("drained: {} records read, {} processed", read, processed);
  for (auto& s : run.sources)
    caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  for (auto& p : run.partitions)
    caf::anon_send_exit(p, caf::exit_reason::user_shutdown);
  if (run.redis)
    caf::anon_send_exit(run.redis, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(run.kafka, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(run.coordinator, caf::exit_reason::user_shutdown);
}

int run_node(const config::node_options& opts) {
  auto pipe = config::load_pipeline_file(opts.pipeline);
  if (!opts.stop_snapshot.empty() &&
      !state::checkpoint_store::valid_snapshot_name(opts.stop_snapshot))
    throw config::config_error("option --stop-snapshot: invalid snapshot name '" +
                               opts.stop_snapshot + "' (1-64 characters of A-Z a-z 0-9 . _ -)");
  std::unique_ptr<kafka::embedded_kafka> embedded;
  std::string bootstrap = opts.bootstrap_servers;
  if (opts.embedded_kafka) {
    embedded = std::make_unique<kafka::embedded_kafka>(1);
    embedded->create_topic(pipe.source.topic, static_cast<int>(opts.embedded_partitions));
    embedded->create_topic(pipe.dead_letter_topic, 1);
    if (pipe.kafka_sink)
      embedded->create_topic(pipe.kafka_sink->topic, 1);
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
  require_topic(props, pipe.dead_letter_topic, "dead-letter");
  if (pipe.kafka_sink)
    require_topic(props, pipe.kafka_sink->topic, "activations");
  if (pipe.redis_sink) {
    if (opts.redis.empty())
      throw std::runtime_error("pipeline '" + pipe.name + "' has a Redis sink ('" +
                               pipe.redis_sink->id + "') but no --redis address is given");
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
  auto store = state::state_store::open(opts.state_dir, {pipe.aggregate.id});
  m.serve(opts.metrics_address);

  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::keyflow>();
  if (opts.workers > 0)
    cfg.set("scheduler.max-threads", static_cast<size_t>(opts.workers));
  cfg.set("logger.console-verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  auto run = start(sys, opts, pipe, props, partitions, *store, checkpoints, from, m);
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
