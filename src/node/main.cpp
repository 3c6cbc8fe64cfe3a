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
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "actors/spawn.hpp"
#include "actors/wiring.hpp"
#include "cluster/assignment.hpp"
#include "cluster/membership.hpp"
#include "config/node_options.hpp"
#include "core/key_group.hpp"
#include "kafka/dead_letters.hpp"
#include "kafka/embedded_kafka.hpp"
#include "kafka/kafka_reader.hpp"
#include "node/cluster_node.hpp"
#include "node/node_pipeline.hpp"
#include "node/spread_job.hpp"
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

/// The checkpoint a standalone node starts from: the named snapshot, or the newest valid
/// periodic checkpoint (falling back past corrupt ones), copied into the state directory.
/// The restore point of a standalone node: --restore-snapshot, else the newest valid
/// checkpoint. A restart after a failure (`restarted_from` = id of the first checkpoint this
/// process took) uses the newest checkpoint once this process has taken one.
node::restore_point restore_standalone(const node::node_env& env, state::checkpoint_store& store,
                                       uint64_t restarted_from = 0) {
  const auto& opts = *env.opts;
  std::optional<state::checkpoint_info> chk;
  auto taken = store.checkpoint_ids();
  bool own = restarted_from > 0 && !taken.empty() && taken.front() >= restarted_from;
  if (!opts.restore_snapshot.empty() && !own) {
    chk = store.snapshot(opts.restore_snapshot);
  } else {
    chk = store.latest_valid([&](const std::string& dir, const std::string& why) {
      spdlog::error("checkpoint {} is unusable, falling back to an older one: {}", dir, why);
      env.metrics->checkpoints_corrupt().Increment();
    });
  }
  if (!chk)
    spdlog::info("no checkpoint under {}: starting from empty state", store.root());
  return node::restore(env, std::move(chk), opts.state_dir, taken.empty() ? 1 : taken.front() + 1);
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

/// Serves the node's admin API (JSON) on `address` from its own threads: GET /status,
/// GET /dead-letters (list) and POST /dead-letters/replay (kafka/dead_letters.hpp).
class status_server {
public:
  /// The pipeline's dead letters: where they are and whose they are.
  struct dead_letter_source {
    kafka::properties props; ///< Kafka client properties
    std::string topic;       ///< the pipeline's dead-letter topic
    std::string pipeline;    ///< pipeline name (names the replay consumer group)
  };

  /// Starts serving `body()` at /status and the dead letters of `dlq`; throws
  /// std::runtime_error if it cannot listen.
  status_server(const std::string& address, std::function<nlohmann::json()> body,
                dead_letter_source dlq)
      : dlq_(std::move(dlq)) {
    auto colon = address.rfind(':');
    auto host = address.substr(0, colon);
    auto port = std::stoi(address.substr(colon + 1));
    server_.Get("/status",
                [body = std::move(body)](const httplib::Request&, httplib::Response& res) {
                  res.set_content(body().dump(2) + "\n", "application/json");
                });
    server_.Get("/dead-letters", [this](const httplib::Request& req, httplib::Response& res) {
      answer(res, [&] {
        auto filter = parse_filter(req, true);
        auto entries = kafka::list_dead_letters(dlq_.props, dlq_.topic, filter);
        nlohmann::json list = nlohmann::json::array();
        for (const auto& e : entries)
          list.push_back(kafka::to_json(e));
        return nlohmann::json{{"topic", dlq_.topic},
                              {"pipeline", dlq_.pipeline},
                              {"count", entries.size()},
                              {"limit", filter.limit},
                              {"dead_letters", std::move(list)}};
      });
    });
    server_.Post(
        "/dead-letters/replay", [this](const httplib::Request& req, httplib::Response& res) {
          answer(res, [&] {
            auto filter = parse_filter(req, false);
            std::lock_guard<std::mutex> guard{replay_mutex_}; // one replay of the group at a time
            auto result = kafka::replay_dead_letters(
                dlq_.props, dlq_.topic, kafka::default_replay_group(dlq_.pipeline), filter);
            spdlog::info("dead letters: replayed {} from {} (skipped {})", result.replayed,
                         dlq_.topic, result.skipped);
            auto j = kafka::to_json(result);
            j["topic"] = dlq_.topic;
            return j;
          });
        });
    port_ =
        port == 0 ? server_.bind_to_any_port(host) : (server_.bind_to_port(host, port) ? port : -1);
    if (port_ < 0)
      throw std::runtime_error("cannot listen on --admin-address " + address);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~status_server() {
    server_.stop();
    if (thread_.joinable())
      thread_.join();
  }
  status_server(const status_server&) = delete;
  status_server& operator=(const status_server&) = delete;
  /// The port it listens on.
  int port() const noexcept { return port_; }

private:
  /// Answers `make()` as JSON; a std::invalid_argument (a bad parameter) as 400 and any
  /// other error as 500, each with {"error": "..."}.
  template <class F>
  static void answer(httplib::Response& res, F make) {
    try {
      res.set_content(make().dump(2) + "\n", "application/json");
    } catch (const std::invalid_argument& e) {
      res.status = 400;
      res.set_content(nlohmann::json{{"error", e.what()}}.dump() + "\n", "application/json");
    } catch (const std::exception& e) {
      res.status = 500;
      res.set_content(nlohmann::json{{"error", e.what()}}.dump() + "\n", "application/json");
    }
  }

  /// The integer `value` of parameter `name` in [min, max]; throws std::invalid_argument
  /// naming the parameter.
  static int64_t parse_integer(const std::string& name, const std::string& value, int64_t min,
                               int64_t max) {
    int64_t n = 0;
    auto [end, err] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (err != std::errc{} || end != value.data() + value.size() || n < min || n > max)
      throw std::invalid_argument("parameter '" + name + "': expected an integer from " +
                                  std::to_string(min) + " to " + std::to_string(max) + ", got '" +
                                  value + "'");
    return n;
  }

  /// The dead-letter filter of a request's query parameters: reason, operator, from, and for
  /// a list also limit. Throws std::invalid_argument naming a parameter that is unknown,
  /// repeated or out of its domain.
  static kafka::dead_letter_filter parse_filter(const httplib::Request& req, bool listing) {
    kafka::dead_letter_filter f;
    for (const auto& [name, value] : req.params) {
      if (req.params.count(name) > 1)
        throw std::invalid_argument("parameter '" + name + "' given more than once");
      if (name == "reason") {
        auto known = kafka::dead_letter_reasons();
        if (!value.empty() && std::find(known.begin(), known.end(), value) == known.end()) {
          std::string words;
          for (const auto& w : known)
            words += (words.empty() ? "" : ", ") + w;
          throw std::invalid_argument("parameter 'reason': unknown error code '" + value +
                                      "' (known: " + words + ")");
        }
        f.reason = value;
      } else if (name == "operator") {
        f.operator_id = value;
      } else if (name == "limit" && listing) {
        f.limit = static_cast<size_t>(parse_integer(name, value, 1, 100000));
      } else if (name == "from") {
        f.from = parse_integer(name, value, 0, std::numeric_limits<int64_t>::max());
      } else {
        throw std::invalid_argument("unknown parameter '" + name +
                                    "' (allowed: reason, operator, " +
                                    (listing ? "limit, from)" : "from)"));
      }
    }
    return f;
  }

  dead_letter_source dlq_;
  std::mutex replay_mutex_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = -1;
};

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
    auto from = restore_standalone(env, checkpoints);
    auto store = state::state_store::open(opts.state_dir, plan->column_families());
    m.serve(opts.metrics_address);
    status_server status{opts.admin_address,
                         [&] {
                           return nlohmann::json{{"mode", "standalone"},
                                                 {"pipeline", pipe.name},
                                                 {"partitions", partitions}};
                         },
                         {props, pipe.dead_letter_topic, pipe.name}};
    caf::actor_system sys{cfg};
    supervise(sys, opts, env);
    node::instance_spec spec;
    for (int p = 0; p < partitions; ++p)
      spec.partitions.push_back(p);
    auto run = node::start_instance(sys, env, spec, *store, checkpoints, from);
    const auto first_id = from.next_id;
    std::printf("keyflowd ready: pipeline=%s kafka=%s metrics=http://127.0.0.1:%d/metrics "
                "status=http://127.0.0.1:%d/status\n",
                pipe.name.c_str(), bootstrap.c_str(), m.port(), status.port());
    std::fflush(stdout);
    while (!stop_requested) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (checkpoint_requested) { // SIGUSR1: a checkpoint now, outside the interval
        checkpoint_requested = 0;
        caf::anon_send(run.coordinator, atom::checkpoint_v, std::string{});
        spdlog::info("checkpoint requested (SIGUSR1)");
      }
      auto restart = env.sup->restart_due(0);
      if (restart && std::chrono::steady_clock::now() >= restart->due) {
        // The supervisor saw an actor fail: restart everything from the last checkpoint.
        stop_pipeline_actors(sys, run, caf::exit_reason::kill);
        store.reset();
        auto again = restore_standalone(env, checkpoints, first_id);
        store = state::state_store::open(opts.state_dir, plan->column_families());
        run = node::start_instance(sys, env, spec, *store, checkpoints, again);
        m.restarts("standalone", restart->cause).Increment();
      }
    }
    spdlog::info("stopping: draining in-flight records");
    drain_pipeline(sys, run, opts.stop_snapshot);
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
  status_server status{opts.admin_address,
                       [&] {
                         auto j = view->to_json();
                         j["mode"] = "cluster";
                         j["pipeline"] = pipe.name;
                         j["tls"] = tls;
                         j["spread"] = split.spread;
                         j["regions"] = nlohmann::json::array();
                         for (uint32_t r = 0; r < regions; ++r) {
                           nlohmann::json e{
                               {"region", r},
                               {"partitions", cluster::region_partitions(r, regions, partitions)}};
                           if (split.spread) {
                             auto kg = range_for_actor(pipe.max_parallelism, regions, r);
                             e["key_groups"] = {kg.first, kg.last};
                           }
                           j["regions"].push_back(std::move(e));
                         }
                         return j;
                       },
                       {props, pipe.dead_letter_topic, pipe.name}};
  spdlog::info("cluster node {} on {}{} with {} {}, seeds '{}'", opts.node_id, opts.cluster_address,
               tls ? " (mutual TLS)" : "", regions,
               split.spread ? "slice(s) of a job spread over the nodes" : "region(s)", opts.seeds);
  std::printf("keyflowd ready: pipeline=%s kafka=%s metrics=http://127.0.0.1:%d/metrics "
              "status=http://127.0.0.1:%d/status node=%u cluster=%s\n",
              pipe.name.c_str(), bootstrap.c_str(), m.port(), status.port(), opts.node_id,
              opts.cluster_address.c_str());
  std::fflush(stdout);
  int rc = split.spread ? node::run_spread_job(sys, env, regions, view, *job, stop_requested,
                                               checkpoint_requested)
                        : node::run_cluster_regions(sys, env, regions, view, stop_requested,
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
