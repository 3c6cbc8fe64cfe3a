// keyflowd: one Keyflow node. Parses options and the pipeline (any error exits non-zero
// before anything starts). Standalone (no --node-id): restores the latest complete
// checkpoint (or a named snapshot), wires the pipeline and its checkpoint coordinator, and
// on SIGINT/SIGTERM drains in-flight records and takes a final checkpoint. As a cluster
// node (--node-id N): joins the cluster and runs the regions the coordinator assigns it
// (src/node/cluster_node.cpp).

#include <algorithm>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <google/protobuf/stubs/logging.h>

#include <caf/openssl/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/spawn.hpp"
#include "actors/wiring.hpp"
#include "cluster/assignment.hpp"
#include "cluster/membership.hpp"
#include "config/node_options.hpp"
#include "core/key_group.hpp"
#include "core/logging.hpp"
#include "kafka/dead_letters.hpp"
#include "kafka/embedded_kafka.hpp"
#include "kafka/kafka_reader.hpp"
#include "node/admin_server.hpp"
#include "node/cluster_admin.hpp"
#include "node/cluster_node.hpp"
#include "node/node_pipeline.hpp"
#include "node/spread_job.hpp"
#include "node/standalone_job.hpp"
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

/// After a completed drain (final checkpoint written, sinks flushed), bounds the teardown: an
/// actor left blocked by an earlier failure (a restart that could not stop it) would make the
/// actor system's destructor wait forever. Nothing is lost by exiting: the final checkpoint
/// holds the state and the next start restores it.
void exit_if_teardown_hangs(std::chrono::seconds limit) {
  std::thread([limit] {
    std::this_thread::sleep_for(limit);
    spdlog::error("shutdown: actors did not stop within {} s after the drain; exiting",
                  limit.count());
    spdlog::shutdown();
    std::_Exit(0);
  }).detach();
}

/// Spawns the node's supervisor over a supervision with the node's settings.
void supervise(caf::actor_system& sys, const config::node_options& opts, node::node_env& env) {
  supervision_settings s;
  s.max_attempts = opts.poison_attempts;
  s.backoff = std::chrono::milliseconds(opts.restart_backoff_ms);
  s.backoff_max = std::chrono::milliseconds(opts.restart_backoff_max_ms);
  env.sup = std::make_shared<supervision>(s);
  env.supervisor = spawn_supervisor(sys, env.sup);
}

/// How a cluster node cuts the job.
struct job_split {
  uint32_t regions = 1; ///< regions (or slices of a spread job)
  bool spread = false;  ///< slices of one job that exchange records (node/spread_job.hpp)
};

/// Regions of the job: --regions, or one per source partition. A pipeline whose records of
/// one key may come from any partition (no source.partitioned_by_key, or a key_by) is spread
/// over the nodes in that many slices that exchange records; with --regions 1 it runs whole
/// on one node.
job_split split_job(const config::node_options& opts, const pipeline::plan& plan, int partitions) {
  const auto& pipe = plan.cfg;
  job_split out;
  out.regions = opts.regions == 0 ? static_cast<uint32_t>(partitions) : opts.regions;
  if (out.regions > static_cast<uint32_t>(partitions))
    throw config::config_error("--regions " + std::to_string(opts.regions) + ": more than the " +
                               std::to_string(partitions) + " partitions of the source topic");
  if (out.regions > pipe.max_parallelism)
    throw config::config_error("--regions " + std::to_string(out.regions) + ": more than the " +
                               std::to_string(pipe.max_parallelism) +
                               " key groups (max_parallelism) of pipeline '" + pipe.name + "'");
  out.spread = (!pipe.source.partitioned_by_key || plan.stages > 1) && out.regions > 1;
  return out;
}

/// Host and port of "host:port".
std::pair<std::string, uint16_t> split_address(const std::string& a) {
  auto colon = a.rfind(':');
  return {a.substr(0, colon), static_cast<uint16_t>(std::stoul(a.substr(colon + 1)))};
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
  node::node_env env{&opts, plan, props, partitions, &m};
  const auto split = opts.node_id > 0 ? split_job(opts, *plan, partitions) : job_split{};
  const uint32_t regions = split.regions;

  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::keyflow>();
  if (opts.workers > 0)
    cfg.set("scheduler.max-threads", static_cast<size_t>(opts.workers));
  cfg.set("logger.console-verbosity", caf::atom("quiet"));
  const bool tls = !opts.tls_cert.empty();
  if (opts.node_id > 0) {
    cfg.load<caf::io::middleman>();
    // BASP's own heartbeat and connection timeout: without them a silent peer is never
    // dropped (the membership actor's heartbeats decide who is dead).
    cfg.set("middleman.heartbeat-interval",
            caf::timespan{std::chrono::milliseconds(opts.heartbeat_ms)});
    cfg.set("middleman.connection-timeout",
            caf::timespan{std::chrono::milliseconds(opts.failure_timeout_ms)});
    if (tls) {
      cfg.load<caf::openssl::manager>();
      cfg.set("openssl.certificate", opts.tls_cert);
      cfg.set("openssl.key", opts.tls_key);
      cfg.set("openssl.cafile", opts.tls_ca);
    }
  }

  if (opts.node_id == 0) {
    auto state_path = std::filesystem::path{opts.state_dir}.lexically_normal();
    if (state_path.filename().empty()) // "state/" names the same directory as "state"
      state_path = state_path.parent_path();
    auto checkpoint_dir =
        opts.checkpoint_dir.empty() ? state_path.string() + "-checkpoints" : opts.checkpoint_dir;
    state::checkpoint_store checkpoints{checkpoint_dir, opts.checkpoints_retained};
    if (!opts.restore_snapshot.empty())
      checkpoints.snapshot(
          opts.restore_snapshot); // a missing or bad one fails before anything starts
    auto token = node::load_admin_token(opts);
    node::admin_server admin{opts.admin_address, token.token, opts.admin_tls_cert,
                             opts.admin_tls_key};
    m.serve(opts.metrics_address);
    caf::actor_system sys{cfg};
    supervise(sys, opts, env);
    node::standalone_job job{sys, env, opts, checkpoints};
    try {
      job.start();
    } catch (...) { // the supervisor must stop, or the actor system's destructor waits for it
      caf::anon_send_exit(env.supervisor, caf::exit_reason::user_shutdown);
      throw;
    }
    job.serve(admin);
    node::serve_dead_letters(admin, props, pipe.dead_letter_topic, pipe.name);
    admin.start();
    spdlog::info("admin API at {}://{}:{} (bearer token: {})", admin.scheme(),
                 split_address(opts.admin_address).first, admin.port(), token.source);
    std::printf("keyflowd ready: pipeline=%s kafka=%s metrics=http://127.0.0.1:%d/metrics "
                "admin=%s://127.0.0.1:%d status=%s://127.0.0.1:%d/status\n",
                pipe.name.c_str(), bootstrap.c_str(), m.port(), admin.scheme(), admin.port(),
                admin.scheme(), admin.port());
    std::fflush(stdout);
    while (!stop_requested) {
      job.tick(std::exchange(checkpoint_requested, 0) != 0, std::chrono::milliseconds(100));
    }
    spdlog::info("stopping: draining in-flight records");
    job.shutdown(opts.stop_snapshot);
    caf::anon_send_exit(env.supervisor, caf::exit_reason::user_shutdown);
    exit_if_teardown_hangs(std::chrono::seconds(10));
    return 0;
  }

  // A cluster node: membership on the cluster address, regions as assigned.
  node::check_region_layout(opts.checkpoint_dir, pipe.name, regions);
  m.serve(opts.metrics_address);
  caf::actor_system sys{cfg};
  supervise(sys, opts, env);
  auto view = std::make_shared<cluster::cluster_view>();
  auto [host, port] = split_address(opts.cluster_address);
  cluster::membership_config mc;
  mc.node_id = opts.node_id;
  mc.host = host;
  mc.port = port;
  for (size_t start = 0; start < opts.seeds.size();) {
    auto end = opts.seeds.find(',', start);
    mc.seeds.push_back(split_address(opts.seeds.substr(start, end - start)));
    start = end == std::string::npos ? opts.seeds.size() : end + 1;
  }
  mc.heartbeat = std::chrono::milliseconds(opts.heartbeat_ms);
  mc.failure_timeout = std::chrono::milliseconds(opts.failure_timeout_ms);
  mc.regions = regions;
  mc.together = split.spread;
  std::optional<caf::scoped_actor> job; // receives the spread job's steps
  if (split.spread) {
    job.emplace(sys);
    mc.job = caf::actor_cast<caf::actor>(*job);
  }
  mc.tls = tls;
  mc.metrics = &m;
  mc.standby = opts.standby;
  // The admin API listens before the membership actor announces its address.
  auto token = node::load_admin_token(opts);
  node::admin_server admin{opts.admin_address, token.token, opts.admin_tls_cert,
                           opts.admin_tls_key};
  {
    auto admin_host = split_address(opts.admin_address).first;
    if (admin_host.empty() || admin_host == "0.0.0.0")
      admin_host = host;
    mc.admin =
        std::string{admin.scheme()} + "://" + admin_host + ":" + std::to_string(admin.port());
  }
  node::plan_box plans{env}; // a deploy replaces the pipeline
  mc.adopt_snapshot = [&plans, &opts,
                       roots = node::snapshot_roots(opts.checkpoint_dir, regions, split.spread)](
                          uint64_t generation, const std::string& snapshot) {
    node::adopt_cluster_snapshot(*plans.get(), opts.checkpoints_retained, roots, generation,
                                 snapshot);
  };
  auto lease = std::make_shared<work_lease>();
  lease->renew_until(std::chrono::steady_clock::now() + mc.failure_timeout / 2);
  mc.lease = lease;
  env.lease = lease;
  auto member = cluster::spawn_membership(sys, mc, view);
  auto published = tls ? caf::openssl::publish(member, port, host.c_str(), true)
                       : sys.middleman().publish(member, port, host.c_str(), true);
  if (!published) {
    caf::anon_send_exit(member, caf::exit_reason::kill);
    throw std::runtime_error("cannot listen on --cluster-address " + opts.cluster_address + ": " +
                             sys.render(published.error()));
  }
  auto cluster_status = [&] {
    auto j = view->to_json();
    const auto current = view->get().current;
    j["mode"] = "cluster";
    j["state"] = current.stopped        ? "stopped"
                 : current.version != 0 ? "running"
                 : opts.standby         ? "standby"
                                        : "starting";
    if (auto reg = m.registry()) { // this node's share
      j["records_read"] = node::metric_sum(*reg, "keyflow_records_in_total", "operator", "source");
      j["consumer_lag"] = node::metric_sum(*reg, "keyflow_consumer_lag_records");
      j["backpressured_seconds"] = node::metric_sum(*reg, "keyflow_backpressured_seconds_total");
      j["dead_letters"] = node::metric_sum(*reg, "keyflow_dead_letters_total");
      j["restarts"] = node::metric_sum(*reg, "keyflow_restarts_total");
    }
    const auto plan_now = plans.get();
    j["pipeline"] = plan_now->cfg.name;
    j["version"] = plan_now->cfg.version;
    j["file"] = plan_now->cfg.file;
    j["tls"] = tls;
    j["spread"] = split.spread;
    j["regions"] = nlohmann::json::array();
    for (uint32_t r = 0; r < regions; ++r) {
      nlohmann::json e{{"region", r},
                       {"partitions", cluster::region_partitions(r, regions, partitions)}};
      if (split.spread) {
        auto kg = range_for_actor(pipe.max_parallelism, regions, r);
        e["key_groups"] = {kg.first, kg.last};
      }
      j["regions"].push_back(std::move(e));
    }
    return j;
  };
  admin.get("/status", [&](const node::admin_request& r) {
    r.allow_params("");
    return cluster_status();
  });
  node::serve_dead_letters(admin, props, pipe.dead_letter_topic, pipe.name);
  node::main_queue calls;
  std::optional<node::cluster_regions> region_set;
  std::optional<node::spread_job> slices;
  node::local_job* local = nullptr;
  if (split.spread)
    local = &slices.emplace(sys, env, regions, view, *job);
  else
    local = &region_set.emplace(sys, env, regions, view);
  node::cluster_admin control{sys,  env,    plans,  regions, split.spread,
                              view, member, *local, calls,   token.token};
  control.serve(admin);
  admin.start();
  spdlog::info("admin API at {}://{}:{} (bearer token: {})", admin.scheme(),
               split_address(opts.admin_address).first, admin.port(), token.source);
  spdlog::info("cluster node {} on {}{} with {} {}, seeds '{}'", opts.node_id, opts.cluster_address,
               tls ? " (mutual TLS)" : "", regions,
               split.spread ? "slice(s) of a job spread over the nodes" : "region(s)", opts.seeds);
  std::printf("keyflowd ready: pipeline=%s kafka=%s metrics=http://127.0.0.1:%d/metrics "
              "admin=%s://127.0.0.1:%d status=%s://127.0.0.1:%d/status node=%u cluster=%s\n",
              pipe.name.c_str(), bootstrap.c_str(), m.port(), admin.scheme(), admin.port(),
              admin.scheme(), admin.port(), opts.node_id, opts.cluster_address.c_str());
  std::fflush(stdout);
  int rc = split.spread ? node::run_spread_job(*slices, calls, stop_requested, checkpoint_requested)
                        : node::run_cluster_regions(*region_set, calls, stop_requested,
                                                    checkpoint_requested);
  {
    caf::scoped_actor self{sys};
    self->request(member, std::chrono::seconds(2), atom::stop_v)
        .receive([](bool) {}, [](caf::error&) {});
    std::this_thread::sleep_for(std::chrono::milliseconds(200)); // let BASP send it
  }
  caf::anon_send_exit(member, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(env.supervisor, caf::exit_reason::user_shutdown);
  exit_if_teardown_hangs(std::chrono::seconds(10));
  return rc;
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
  logging::setup_logging(opts.log_format, opts.log_level, opts.node_id);
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
