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

#include "cluster/membership.hpp"
#include "node/node_pipeline.hpp"

namespace keyflow::node {

/// Follows the assignment in `view` until `stop` is set, then drains every region (final
/// checkpoints) and returns the exit code. Whenever `checkpoint` is set, it is cleared and
/// every region running here takes a checkpoint at once (SIGUSR1).
int run_cluster_regions(caf::actor_system& sys, const node_env& env, uint32_t regions,
                        std::shared_ptr<cluster::cluster_view> view,
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
