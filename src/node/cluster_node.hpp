#pragma once
/// \file
/// A keyflowd node in a cluster: follows the coordinator's assignment and starts, hands off
/// and fences the regions this node owns.
///
/// Layout on the shared checkpoint storage (`--checkpoint-dir`, reachable by every node):
///
///     region-<r>/g<generation>/chk-<id>/...   checkpoints of region r written under one
///                                            generation (one owner)
///
/// A region starts from the newest complete checkpoint of its highest generation that has
/// one. Before it runs, its new owner raises the region's fence in Redis to its generation
/// (sinks of older generations are refused from then on) and copies that checkpoint into its
/// own generation's directory, so that checkpoints a fenced owner still writes into its own
/// directory are never restored.

#include <csignal>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <nlohmann/json.hpp>

#include "cluster/membership.hpp"
#include "node/main_queue.hpp"
#include "node/node_pipeline.hpp"

namespace keyflow::node {

class region_manager;

/// What the admin calls of a cluster node ask of the job share running on it (regions or a
/// spread job's slices). Called on the node's main thread only (through a main_queue).
class local_job {
public:
  virtual ~local_job() = default;
  /// Takes a snapshot named `name` of `regions` (all running here) or, for a spread job, of
  /// the whole job (its leader); returns what was written. http_error 409 if that cannot be
  /// done here now.
  virtual nlohmann::json snapshot(const std::string& name,
                                  const std::vector<uint32_t>& regions) = 0;
};

/// The regions this node runs, following the assignment in a cluster view. Used by the
/// node's main thread only (admin calls reach it through a main_queue).
class cluster_regions : public local_job {
public:
  /// Regions of `env`'s pipeline split into `regions`, following `view`.
  cluster_regions(caf::actor_system& sys, const node_env& env, uint32_t regions,
                  std::shared_ptr<cluster::cluster_view> view);
  ~cluster_regions() override;
  cluster_regions(const cluster_regions&) = delete;
  cluster_regions& operator=(const cluster_regions&) = delete;

  /// One pass: stop what is no longer this node's (drained; with the final checkpoint named
  /// after the assignment's stop snapshot when the job stops), start at most one region that
  /// is. True if it stopped or started anything.
  bool step();
  /// Asks every running region's checkpoint coordinator for a checkpoint now (SIGUSR1).
  void checkpoint_all();
  /// Drains every region (final checkpoints).
  void stop_all();
  /// Takes a checkpoint named `name` of each region in `regions`, which must run here (409
  /// otherwise); returns [{region, generation, id, dir, size_bytes}].
  nlohmann::json snapshot(const std::string& name, const std::vector<uint32_t>& regions) override;

private:
  std::unique_ptr<region_manager> impl_;
};

/// Follows the assignment until `stop` is set, running the admin calls queued in `calls`,
/// then drains every region (final checkpoints) and returns the exit code. Whenever
/// `checkpoint` is set, it is cleared and every region running here takes a checkpoint at
/// once (SIGUSR1).
int run_cluster_regions(cluster_regions& regions, main_queue& calls,
                        const volatile std::sig_atomic_t& stop,
                        volatile std::sig_atomic_t& checkpoint);

/// Checks that the shared checkpoint directory belongs to pipeline `pipeline` split into
/// `regions` regions (its file REGIONS, written by the first node that used it). Throws
/// config::config_error naming both layouts otherwise: a region's checkpoints hold the state
/// and offsets of its own source partitions, so another split would restore the wrong ones.
void check_region_layout(const std::string& checkpoint_dir, const std::string& pipeline,
                         uint32_t regions);

/// Redis key of region `region`'s fence for pipeline `pipeline`.
std::string fence_key(const std::string& pipeline, uint32_t region);

/// Raises region `region`'s fence in Redis to `generation` unless it is higher already;
/// false (logged) if a newer generation holds it. True without Redis.
bool raise_fence(const node_env& env, uint32_t region, uint64_t generation);

/// The newest complete checkpoint under `root`/g<generation> of the highest generation up to
/// `max_generation` that has one; checkpoints failing verification are logged, counted and
/// skipped.
std::optional<state::checkpoint_info>
newest_checkpoint(const node_env& env, const std::filesystem::path& root, uint64_t max_generation);

/// The `g<generation>` subdirectories of `root`, highest generation first.
std::vector<std::pair<uint64_t, std::filesystem::path>>
generation_dirs(const std::filesystem::path& root);

} // namespace keyflow::node
