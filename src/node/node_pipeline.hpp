#pragma once
/// \file
/// Starting a pipeline on a node: find the checkpoint to restore, copy it into the state
/// directory, spawn sources, sinks and partition actors. A standalone node runs one
/// instance over every source partition; a cluster node runs one instance per region it
/// owns (its source partitions, its own state directory and checkpoints).

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>

#include "actors/wiring.hpp"
#include "config/node_options.hpp"
#include "kafka/client.hpp"
#include "pipeline/plan.hpp"
#include "state/checkpoint_store.hpp"

namespace keyflow::node {

/// What every pipeline instance of a node shares.
struct node_env {
  const config::node_options* opts = nullptr; ///< node options
  std::shared_ptr<const pipeline::plan> plan; ///< the resolved pipeline
  kafka::properties props;                    ///< Kafka client properties
  int source_partitions = 0;                  ///< partitions of the source topic
  metrics::metrics* metrics = nullptr;        ///< node metrics
  /// Cluster lease of the node's sources and Kafka sinks (null: standalone, no lease).
  std::shared_ptr<const work_lease> lease{};
  /// The node's failure memory and supervisor actor: start_instance() registers each start
  /// with them (null: unsupervised, as in tests).
  std::shared_ptr<supervision> sup{};
  supervisor_actor supervisor{};
};

/// Where an instance starts from: a checkpoint (or snapshot), or nothing.
struct restore_point {
  std::optional<state::checkpoint_info> checkpoint;              ///< none: empty state
  std::map<std::pair<std::string, int32_t>, int64_t> offsets;    ///< next offset per partition
  std::map<std::pair<std::string, int32_t>, int64_t> watermarks; ///< per partition, if any
  uint64_t next_id = 1;                                          ///< id of the next checkpoint
  uint64_t epoch = 1;                                            ///< restore generation
};

/// Checks that `chk` fits the pipeline (name, max_parallelism) and copies its state into
/// `state_dir`; without a checkpoint, empties `state_dir` (state that no checkpoint vouches
/// for must not meet offsets it does not belong to). `next_id` is at least `min_next_id`.
restore_point restore(const node_env& env, std::optional<state::checkpoint_info> chk,
                      const std::string& state_dir, uint64_t min_next_id);

/// The slice of the job one instance runs.
struct instance_spec {
  std::vector<int32_t> partitions; ///< source partitions it reads
  uint32_t region = 0;             ///< region index (0 when standalone)
  uint64_t generation = 0;         ///< generation of its assignment (0 when standalone)
  std::string fence_key;           ///< Redis fence key of the region; "" = no fencing
  std::string suffix; ///< appended to Kafka transactional ids ("" standalone, "-r<region>")
  /// A slice of a job spread over nodes: sources are numbered by partition among all the
  /// job's sources (`region` is the slice index).
  bool spread = false;
  /// This start's supervision (poison records, suspects, failure reports); default none.
  supervision_link supervised;
};

/// Makes `spec` the next start of instance `spec.region` under the node's supervision (its
/// incarnation and the current hints); nothing without `env.sup`.
void supervised_start(const node_env& env, instance_spec& spec);

/// Has the node's supervisor monitor every actor of `run`, the start `spec` describes.
void watch_actors(const node_env& env, const instance_spec& spec, const running_pipeline& run);

/// Partition actors per stage of one instance: --partition-actors, else --workers, else the
/// number of cores; at most max_parallelism.
uint32_t actors_per_stage(const config::node_options& opts, const pipeline::plan& plan);

/// Spawns an instance of the pipeline: sinks, partition actors, sources for the spec's
/// partitions (from the restore point's offsets) and its checkpoint coordinator. With
/// `env.sup`, the start is instance `spec.region`'s next incarnation, its actors get the
/// supervision hints, and the supervisor monitors them.
running_pipeline start_instance(caf::actor_system& sys, const node_env& env,
                                const instance_spec& spec, state::state_store& store,
                                state::checkpoint_store& checkpoints, const restore_point& from);

/// Asks `coordinator` for a checkpoint written as snapshot `name` and waits for it (the
/// checkpoint timeout of `env`'s options and 5 s more); returns the snapshot as `checkpoints`
/// holds it. Call from a thread that is not an actor's. Throws std::runtime_error, `context`
/// first ("region 3: "), naming the snapshot and why it failed.
state::checkpoint_info take_named_snapshot(caf::actor_system& sys, const node_env& env,
                                           const checkpoint_coordinator_actor& coordinator,
                                           const state::checkpoint_store& checkpoints,
                                           const std::string& name,
                                           const std::string& context = {});

/// Spawns slice `spec.region` of `slices` of a job spread over nodes, without sources: its
/// sinks and partition actors (key-group range `spec.region` of `slices`, numbered among
/// every slice's), not yet connected to their next stage (running_pipeline::stages).
running_pipeline prepare_slice(caf::actor_system& sys, const node_env& env,
                               const instance_spec& spec, state::state_store& store,
                               uint32_t slices);

/// Spawns the sources of a prepared slice (its partitions, from the restore point's
/// offsets), sending to `stage0`: the first stage's partition actors of every slice.
void start_slice_sources(caf::actor_system& sys, const node_env& env, const instance_spec& spec,
                         const restore_point& from, const std::vector<partition_actor>& stage0,
                         running_pipeline& run);

} // namespace keyflow::node
