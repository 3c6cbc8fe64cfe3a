#pragma once
/// \file
/// A job spread over the nodes of a cluster: a pipeline whose records of one key may come
/// from any source partition (no `partitioned_by_key`, or a `key_by`). The job is cut into
/// slices (`--regions`); slice s owns key-group range s of the slices and reads the source
/// partitions p with p % slices == s. Every source sends each record to the partition actor
/// owning its key group, on whichever node that is: batches cross the CAF middleman.
///
/// Slices exchange records, so they restart together: whenever an owner changes, every
/// slice gets the same fresh generation, and the coordinator that made it (the leader)
/// starts the generation in steps, each answered by every slice's owner:
///
///     stopped   owners stopped their older actors and raised the slices' fences
///     prepare   leader picks the newest complete job checkpoint; owners restore their
///               slice's part and spawn sinks and partition actors
///     wire      leader sends every slice's partition actors; owners connect each stage to
///               the next one
///     run       owners spawn their sources; the leader spawns the job's checkpoint
///               coordinator over every actor
///
/// Layout on the shared checkpoint storage (`--checkpoint-dir`):
///
///     job/g<generation>/chk-<id>/MANIFEST.pb      the job's checkpoint: lists its parts
///     slice-<s>/g<generation>/chk-<id>/...        slice s's part (RocksDB + its offsets)
///
/// A checkpoint is complete once the job manifest exists, after every part's. The leader
/// adopts the checkpoint it starts from into its own generation's directory, so job
/// checkpoints a stale leader still writes are never restored.

#include <csignal>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include "cluster/membership.hpp"
#include "node/cluster_node.hpp"
#include "node/main_queue.hpp"
#include "node/node_pipeline.hpp"

namespace keyflow::node {

class spread_manager;

/// This node's share of a job spread over `slices` slices, following the assignment in a
/// cluster view. A stopped assignment (admin API) makes the leader drain the whole job with
/// its final checkpoint as the stop snapshot; a restore is a fresh generation.
class spread_job : public local_job {
public:
  /// The job of `env`'s pipeline; `job` is this node's job actor (announced to the others
  /// in heartbeats).
  spread_job(caf::actor_system& sys, const node_env& env, uint32_t slices,
             std::shared_ptr<cluster::cluster_view> view, caf::scoped_actor& job);
  ~spread_job() override;
  spread_job(const spread_job&) = delete;
  spread_job& operator=(const spread_job&) = delete;

  /// The leader: snapshot `name` of the whole job (a job manifest over one part per slice);
  /// 409 on another node or while the job starts. `regions` is unused.
  nlohmann::json snapshot(const std::string& name, const std::vector<uint32_t>& regions) override;

private:
  friend int run_spread_job(spread_job&, main_queue&, const volatile std::sig_atomic_t&,
                            volatile std::sig_atomic_t&);
  std::unique_ptr<spread_manager> impl_;
};

/// Follows the assignment until `stop` is set, running the admin calls queued in `calls`,
/// then stops (the leader drains the whole job with a final checkpoint) and returns the exit
/// code. Whenever `checkpoint` is set, it is cleared and the leader takes a checkpoint at
/// once.
int run_spread_job(spread_job& job, main_queue& calls, const volatile std::sig_atomic_t& stop,
                   volatile std::sig_atomic_t& checkpoint);

} // namespace keyflow::node
