#pragma once
/// \file
/// Cluster membership over the CAF middleman. Every node runs one membership actor,
/// published on its cluster address. It connects to the seed addresses and to every member
/// it hears of, sends each a heartbeat every `heartbeat` interval (with the members it sees
/// alive, the regions it runs and the newest assignment it knows), and declares a member
/// dead once nothing came from it for `failure_timeout`, or at once when its connection
/// closed and its port refuses a new one (the process exited). The live node with the lowest id
/// is the coordinator: it computes the assignment of regions to nodes (cluster/assignment.hpp)
/// whenever the live set changes; the newest assignment spreads with the heartbeats. Only
/// the first seed (or a node without seeds) may start a cluster by itself; any other node
/// assigns nothing until it has heard from a member.
///
/// A node that notices it was itself stalled longer than the failure timeout (SIGSTOP, a
/// long GC-like pause, a frozen VM) knows the others have declared it dead: it counts a
/// long pause (cluster_view::long_pauses), which makes the node stop its regions at once,
/// and it takes no coordinator decision until it has heard from the others again.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <nlohmann/json_fwd.hpp>

#include "core/cluster_messages.hpp"
#include "core/lease.hpp"
#include "metrics/metrics.hpp"

namespace keyflow::cluster {

/// Settings of the membership actor.
struct membership_config {
  uint32_t node_id = 0; ///< this node's id (> 0)
  std::string host;     ///< cluster address others reach this node at
  uint16_t port = 0;    ///< cluster port (already published)
  std::vector<std::pair<std::string, uint16_t>> seeds; ///< addresses to join through
  std::chrono::milliseconds heartbeat{500};            ///< heartbeat interval
  std::chrono::milliseconds failure_timeout{3000};     ///< silence after which a member is dead
  uint32_t regions = 1;                                ///< regions of the pipeline
  /// The regions are slices of one job spread over nodes: whenever an owner changes, every
  /// region gets the fresh generation (they restart together).
  bool together = false;
  caf::actor job;   ///< this node's job actor, announced to the others (may be null)
  bool tls = false; ///< connect through the openssl manager (mutual TLS)
  metrics::metrics* metrics = nullptr; ///< node metrics (may be null)
  /// Renewed to half the failure timeout ahead at every tick that follows the previous one
  /// in time (null: none). The node's sources and Kafka sinks stop while it is expired.
  std::shared_ptr<work_lease> lease;
  std::string admin; ///< this node's admin API URL, announced to the others
  /// Standby (a cluster in another region): the coordinator makes no first assignment; the
  /// job starts when the admin API restores a snapshot.
  bool standby = false;
  /// Called by the coordinator's membership actor before it publishes a restore of snapshot
  /// `snapshot` as generation `generation`: makes every region's part of the snapshot that
  /// generation's starting checkpoint. Throws (std::exception) to refuse the restore.
  std::function<void(uint64_t generation, const std::string& snapshot)> adopt_snapshot;
};

/// One member as this node sees it.
struct member_status {
  member_info info;      ///< id, address, incarnation, regions it runs
  bool alive = false;    ///< heard from within the failure timeout (always true for self)
  bool self = false;     ///< this node
  int64_t silent_ms = 0; ///< time since its last heartbeat arrived
};

/// What the membership actor knows, shared with the node's main thread (which starts and
/// stops regions) and the status endpoint. Thread-safe.
class cluster_view {
public:
  /// A consistent copy of the view.
  struct snapshot {
    uint32_t self = 0;                  ///< this node's id
    uint32_t coordinator = 0;           ///< current coordinator's id
    std::vector<member_status> members; ///< every member known, self included, by id
    assignment current;                 ///< newest assignment known
    uint64_t long_pauses = 0;           ///< times this node found itself stalled too long
  };

  /// The current view.
  snapshot get() const;

  /// Replaces the view (membership actor only).
  void update(snapshot s);

  /// Regions this node runs now (set by the node, sent with every heartbeat).
  void set_running(std::vector<running_region> r);

  /// Regions this node runs now.
  std::vector<running_region> running() const;

  /// The node this node would take `region` over from in a failover: the one that ran it
  /// last (the highest generation reported by any member, this node included) if that is
  /// another node this node has heard from and now considers dead, whose last heartbeat
  /// still listed the region (it did not stop it: no hand-off, no graceful leave). 0 if
  /// none. Call before this node reports the region running.
  uint32_t failed_owner(uint32_t region) const;

  /// The view as JSON (members, coordinator, assignment, regions running here).
  nlohmann::json to_json() const;

private:
  /// Remembers the runners `node` reports (lock held).
  void note_runners(uint32_t node, const std::vector<running_region>& running);

  mutable std::mutex mtx_;
  snapshot snap_;
  std::vector<running_region> running_;
  /// Per region: the node that reported it running under the highest generation, and that
  /// generation.
  std::map<uint32_t, std::pair<uint32_t, uint64_t>> last_runner_;
};

/// Spawns the membership actor (detached: heartbeats keep their pace under load). Publish
/// the returned actor on the cluster address so that other nodes can reach it.
///
/// Besides heartbeats it answers, on the coordinator only (an error elsewhere):
/// - `(atom::job_stop, snapshot)` → the new assignment's version: the job stops on every
///   node, each region's final checkpoint taken as snapshot `snapshot` if not empty;
/// - `(atom::job_restore, snapshot, above)` → the new assignment's version: every region
///   gets one fresh generation, higher than `above`, that starts from its part of snapshot
///   `snapshot` (membership_config::adopt_snapshot), on the live nodes.
caf::actor spawn_membership(caf::actor_system& sys, membership_config cfg,
                            std::shared_ptr<cluster_view> view);

} // namespace keyflow::cluster
