#pragma once
/// \file
/// Wires one pipeline's actors together: sinks, lookup actors of enrich operators, the
/// partition actors of every stage, the sources and (optionally) the checkpoint coordinator,
/// in that order, and stops them again. keyflowd (src/node/main.cpp) and the benchmarks use
/// the same wiring; what differs is supplied as factories: which sink actor serves a plan
/// sink, the dead-letter sink, and the source actors.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>

#include "actors/spawn.hpp"

namespace keyflow {

/// The actors of one running pipeline.
struct running_pipeline {
  std::vector<source_actor> sources;        ///< stage-0 inputs
  std::vector<partition_actor> partitions;  ///< every stage, the last stage first
  std::vector<redis_sink_actor> redis;      ///< Redis sinks, in plan order
  std::vector<kafka_sink_actor> kafka;      ///< Kafka result sinks, then the dead-letter sink
  kafka_sink_actor dead_letters;            ///< the dead-letter sink
  std::vector<lookup_actor> lookups;        ///< one per enrich operator
  checkpoint_coordinator_actor coordinator; ///< null when the pipeline takes no checkpoints
  uint32_t parallelism = 1;                 ///< partition actors per stage
  /// Partition actors per stage, stage 0 first, in key-group order.
  std::vector<std::vector<partition_actor>> stages;
};

/// Everything wire_pipeline() needs. The factories are called in spawn order.
struct wiring_params {
  std::shared_ptr<const pipeline::plan> plan; ///< the resolved pipeline
  state::state_store* store = nullptr;        ///< node state store (outlives the actors)
  metrics::metrics* metrics = nullptr;        ///< node metrics (may be null)
  flow_settings flow;                         ///< batching and credit of every link
  uint32_t parallelism = 1; ///< partition actors per stage (at most max_parallelism)
  uint32_t sources = 1;     ///< number of source actors make_sources will spawn
  std::chrono::milliseconds flush_interval{1000}; ///< state write-back period; 1000 ms
  size_t max_state_keys = 0; ///< keys kept in memory per partition actor; 0 = all
  /// Partition actors take part in checkpoints (state written at barriers only); true.
  bool checkpointing = true;
  std::string redis; ///< Redis host:port of the lookup actors (enrich operators)
  /// Spawns the actor of plan sink `index` (a Redis or Kafka sink, or a stand-in).
  std::function<sink_link(size_t index)> make_sink;
  /// Spawns the dead-letter sink.
  std::function<kafka_sink_actor()> make_dead_letters;
  /// Spawns the sources, given the stage-0 partition actors (key-group order) and the
  /// wiring so far (dead-letter sink).
  std::function<std::vector<source_actor>(const std::vector<partition_actor>& stage0,
                                          const running_pipeline& run)>
      make_sources;
  /// Where checkpoints go; null: no coordinator is spawned.
  state::checkpoint_store* checkpoints = nullptr;
  std::chrono::milliseconds checkpoint_interval{5000}; ///< coordinator period; 0 = on demand
  std::chrono::milliseconds checkpoint_timeout{60000}; ///< a checkpoint not done by then fails
  uint64_t first_checkpoint_id = 1;                    ///< id of the first checkpoint
  uint64_t epoch = 1;                                  ///< restore generation
  /// One slice of a job spread over nodes: its partition actors are numbered from
  /// `first_index` among `total_parallelism` per stage, take `stage0_inputs` sources, and are
  /// spawned without their next stage (atom::connect, once every slice has spawned); no
  /// sources (make_sources is not called) and no coordinator are spawned.
  bool slice = false;
  uint32_t first_index = 0;       ///< slice: global index of its first actor in each stage
  uint32_t total_parallelism = 0; ///< slice: partition actors per stage over all slices
  uint32_t stage0_inputs = 0;     ///< slice: sources of the whole job
  double hot_key_share = 0.2;     ///< partition actors report keys over this share; 0 = off
  /// The node's supervision of this start of the instance (partition actors report
  /// operator failures to it); default: none.
  supervision_link supervised;
};

/// Spawns and connects the pipeline's actors: sinks (make_sink, in plan order), the
/// dead-letter sink, a lookup actor per enrich operator, partition actors stage by stage
/// (last stage first, so each knows the next), the sources (make_sources) and, with
/// `checkpoints`, the checkpoint coordinator.
running_pipeline wire_pipeline(caf::actor_system& sys, const wiring_params& p);

/// What drain_pipeline() saw.
struct drain_result {
  uint64_t read = 0;      ///< records the sources read
  uint64_t processed = 0; ///< records the partition actors processed, all stages
  uint64_t failures = 0;  ///< requests that failed (logged)
};

/// Graceful stop: the sources stop reading and wait for their batches; with a coordinator,
/// a final checkpoint (a named snapshot if `snapshot` is not empty) records where they
/// stopped; then the partition actors drain stage by stage, then the sinks; finally every
/// actor is sent an exit. Each request waits at most `timeout` (a failure is counted).
drain_result drain_pipeline(caf::actor_system& sys, running_pipeline& run,
                            const std::string& snapshot = {},
                            std::chrono::seconds timeout = std::chrono::seconds(120));

/// Every actor of the pipeline (sources, partition actors, sinks, lookups, coordinator).
std::vector<caf::actor> pipeline_actors(const running_pipeline& run);

/// Sends every actor of the pipeline an exit with `reason` and waits until all have
/// terminated (at most 30 s), so that the state store they use can be closed. Without a
/// drain first, in-flight records are dropped: use it for a pipeline whose work another
/// instance redoes from a checkpoint (a fenced region).
void stop_pipeline_actors(caf::actor_system& sys, running_pipeline& run, caf::exit_reason reason);

} // namespace keyflow
