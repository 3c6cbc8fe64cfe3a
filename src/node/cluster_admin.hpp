#pragma once
/// \file
/// The admin calls of a cluster node that runs regions (docs/admin-api.md, "On a cluster").
/// Any node answers: snapshots, inspect, diff, export and import read and write the shared
/// checkpoint directory; take a snapshot, stop and restore are forwarded to the coordinator,
/// which asks the nodes owning the regions (snapshot) or changes the assignment (stop,
/// restore) through its membership actor.
///
/// A cluster snapshot is one part per region, each a named snapshot of the region's
/// checkpoint store: `<checkpoint-dir>/region-<r>/g<generation>/snapshots/<name>/`
/// (imported ones under `g0`); for a job spread over the nodes, one job manifest
/// `job/g<generation>/snapshots/<name>/` naming a part per slice. An export holds
/// `<dir>/<name>/region-<r>/` per region, or `<dir>/<name>/job/` and `slice-<s>/`.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <nlohmann/json.hpp>

#include "cluster/membership.hpp"
#include "node/cluster_node.hpp"
#include "node/main_queue.hpp"
#include "node/node_pipeline.hpp"
#include "state/checkpoint_store.hpp"

namespace keyflow::node {

class admin_server;
struct admin_request;

/// Where a cluster's snapshots live: `<checkpoint_dir>/region-<r>` for each region, or
/// `<checkpoint_dir>/job` for a job spread over the nodes (whose job manifests name one part
/// per slice under `slice-<s>/`).
std::vector<std::string> snapshot_roots(const std::string& checkpoint_dir, uint32_t regions,
                                        bool spread);

/// The part of snapshot `name` under each of `roots` (snapshot_roots()), each the one of the
/// highest generation, verified. 400 for an invalid name, 404 if no root has a part, 409
/// naming the roots without one; std::runtime_error if a part does not verify.
std::vector<state::checkpoint_info> cluster_snapshot_parts(const std::vector<std::string>& roots,
                                                           const std::string& name);

/// Makes the part of snapshot `name` under each of `roots` the starting checkpoint of
/// generation `generation` (`<root>/g<generation>/chk-<id>`, files hard-linked; a store
/// keeping `retained` checkpoints) after checking that it fits pipeline `plan`; the
/// membership actor calls it before it publishes a restore. Throws std::runtime_error (or
/// http_error) naming the problem.
void adopt_cluster_snapshot(const pipeline::plan& plan, uint32_t retained,
                            const std::vector<std::string>& roots, uint64_t generation,
                            const std::string& name);

/// The pipeline a cluster node runs. The node's main thread replaces it at a deploy (while
/// no region runs here) and reads `node_env::plan` itself; other threads (admin calls, the
/// membership actor) read it through get().
class plan_box {
public:
  /// Holds `env`'s plan.
  explicit plan_box(node_env& env) : env_(env), plan_(env.plan) {}
  /// The current plan.
  std::shared_ptr<const pipeline::plan> get() const {
    std::lock_guard guard{mutex_};
    return plan_;
  }
  /// Main thread: `plan` replaces the node's pipeline.
  void set(std::shared_ptr<const pipeline::plan> plan) {
    std::lock_guard guard{mutex_};
    plan_ = plan;
    env_.plan = std::move(plan);
  }

private:
  node_env& env_;
  mutable std::mutex mutex_;
  std::shared_ptr<const pipeline::plan> plan_;
};

/// The admin calls of a cluster node.
class cluster_admin {
public:
  /// Calls for the job share `job` runs on this node, whose pipeline `plans` holds (`regions`
  /// regions, or slices of a job spread over the nodes if `spread`), as seen in `view`;
  /// `membership` is the node's membership actor; `calls` is run by the node's main loop; `token`
  /// is the admin token (the same on every node: forwarded calls carry it).
  cluster_admin(caf::actor_system& sys, const node_env& env, plan_box& plans, uint32_t regions,
                bool spread, std::shared_ptr<cluster::cluster_view> view, caf::actor membership,
                local_job& job, main_queue& calls, std::string token);

  /// Registers the calls on `server`.
  void serve(admin_server& server);

private:
  /// Runs `local` if this node coordinates, else forwards the request to the coordinator.
  nlohmann::json on_coordinator(const admin_request& r, const std::string& path,
                                const std::function<nlohmann::json()>& local);
  /// POSTs `body` to `path` of the admin API at `url`; its answer, or http_error.
  nlohmann::json post(const std::string& url, const std::string& path,
                      const nlohmann::json& body) const;
  /// Sends `msg` to the membership actor from the main loop; the new assignment's version.
  uint64_t ask_membership(caf::message msg);
  /// Deletes every part of snapshot `name` (a snapshot that failed half-way).
  void remove_parts(const std::string& name) const;
  /// Copies the slice parts of the job manifest in directory `job` (a copy of the one in
  /// `from`, whose relative part directories they resolve against) to where `place(slice)`
  /// says, {directory, its path relative to `job`}, and rewrites the manifest to name them.
  void relink_parts(
      const std::filesystem::path& job, const std::string& from,
      const std::function<std::pair<std::filesystem::path, std::filesystem::path>(uint32_t)>& place)
      const;

  nlohmann::json take_snapshot(const std::string& name);
  /// One try of take_snapshot(): 409 if a region (or the spread job) is not running yet.
  nlohmann::json take_snapshot_now(const std::string& name);
  nlohmann::json list_snapshots() const;
  nlohmann::json describe(const std::string& name) const;
  nlohmann::json inspect(const admin_request& r) const;
  nlohmann::json diff(const admin_request& r) const;
  nlohmann::json restore(const std::string& name);
  nlohmann::json deploy(const nlohmann::json& body);
  /// Node to node: `body`'s pipeline replaces this node's (no region may run here).
  nlohmann::json replace_plan(const nlohmann::json& body);
  nlohmann::json stop(const std::string& snapshot);
  nlohmann::json export_snapshot(const std::string& name, const std::string& dir) const;
  nlohmann::json import_snapshot(const std::string& dir) const;

  caf::actor_system& sys_;
  const node_env& env_;
  plan_box& plans_;
  uint32_t regions_;
  bool spread_;
  std::vector<std::string> roots_; ///< snapshot_roots()
  std::shared_ptr<cluster::cluster_view> view_;
  caf::actor membership_;
  local_job& job_;
  main_queue& calls_;
  std::string token_;
};

} // namespace keyflow::node
