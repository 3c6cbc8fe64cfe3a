#pragma once
/// \file
/// The job of a standalone node and what the admin API does with it: status, snapshots
/// (take, list, inspect, diff, export, import), restore, stop, deploy of a new pipeline
/// version with its state carried over by operator id, and rescale. Calls come from the
/// admin server's threads and from the node's main loop (signals, supervisor restarts); one
/// mutex orders them.

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <caf/actor_system.hpp>
#include <nlohmann/json.hpp>

#include "actors/wiring.hpp"
#include "config/node_options.hpp"
#include "node/main_queue.hpp"
#include "node/node_pipeline.hpp"
#include "pipeline/state_inspect.hpp"
#include "state/checkpoint_store.hpp"
#include "state/state_store.hpp"

namespace keyflow::node {

class admin_server;

/// A deploy request (POST /deploy) checked against the running job.
struct deploy_request {
  std::shared_ptr<const pipeline::plan> next; ///< the new pipeline
  pipeline::deploy_plan plan;                 ///< what happens to each operator's state
  bool dry_run = false;                       ///< only answer the plan
  bool allow_drop_state = false;              ///< start incompatible operators empty
};

/// Parses the body's pipeline ("yaml", "file"), compares it with `current` and checks that
/// the topics and services it needs are there (`env`'s Kafka and Redis). Throws
/// config::config_error (file:line) or http_error 400 naming what is missing.
deploy_request check_deploy(const node_env& env, const pipeline::plan& current,
                            const nlohmann::json& body);

/// One standalone node's job: the pipeline instance over every source partition.
class standalone_job {
public:
  /// A job of `env`'s pipeline with state in `opts.state_dir` and checkpoints in
  /// `checkpoints`; not started. `env.opts` is replaced by this job's own copy of `opts`
  /// (rescale changes it).
  standalone_job(caf::actor_system& sys, node_env& env, const config::node_options& opts,
                 state::checkpoint_store& checkpoints);
  ~standalone_job();
  standalone_job(const standalone_job&) = delete;
  standalone_job& operator=(const standalone_job&) = delete;

  /// Starts from --restore-snapshot, else the newest valid checkpoint, else empty state.
  void start();

  /// Main-loop duty: runs the admin calls that talk to the job's actors (waiting up to
  /// `wait` for one), restarts the job from its last checkpoint once the supervisor's
  /// restart is due; `checkpoint` asks for a checkpoint now (SIGUSR1).
  void tick(bool checkpoint, std::chrono::milliseconds wait);

  /// Graceful stop at SIGTERM: admin calls are answered 503 from now on; drain and final
  /// checkpoint (snapshot `snapshot` if given).
  void shutdown(const std::string& snapshot);

  /// Registers the admin calls of docs/admin-api.md on `server`.
  void serve(admin_server& server);

  /// GET /status.
  nlohmann::json status();

private:
  /// The checkpoint called `name` ("chk-<id>" or a snapshot name), verified; 400 for an
  /// invalid name, 404 if there is none.
  state::checkpoint_info find(const std::string& name) const;
  /// Starts the instance from `chk` (nullopt: empty state) with the current plan; drops the
  /// column families of `drop` (operators whose state must not carry over).
  void start_from(std::optional<state::checkpoint_info> chk,
                  const std::vector<std::string>& drop = {});
  /// Drains the running instance with a final checkpoint (`snapshot` names it); remembers it
  /// as the stop point. Returns the checkpoint written.
  std::optional<state::checkpoint_info> drain(const std::string& snapshot);
  /// Stops the running instance without a checkpoint (its work is redone from one).
  void kill();

  nlohmann::json take_snapshot(const std::string& name);
  nlohmann::json list_snapshots() const;
  nlohmann::json restore(const std::string& name);
  nlohmann::json stop(const std::string& snapshot);
  nlohmann::json deploy(const nlohmann::json& body);
  nlohmann::json rescale(uint32_t parallelism);
  nlohmann::json export_snapshot(const std::string& name, const std::string& dir) const;
  nlohmann::json import_snapshot(const std::string& dir);

  caf::actor_system& sys_;
  node_env& env_;
  config::node_options opts_;
  state::checkpoint_store& checkpoints_;
  std::unique_ptr<state::state_store> store_;
  instance_spec spec_;
  running_pipeline run_;
  bool running_ = false;
  uint64_t first_id_ = 0; ///< first checkpoint id of this process (restarts restore from it)
  std::optional<state::checkpoint_info> stopped_at_;   ///< final checkpoint of the last stop
  std::optional<state::checkpoint_info> started_from_; ///< what the running job restored
  std::recursive_mutex mutex_;
  main_queue calls_; ///< admin calls that talk to actors, run by tick()
};

} // namespace keyflow::node
