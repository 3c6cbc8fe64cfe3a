#pragma once
/// \file
/// Messages between the nodes of a cluster (cluster/membership.cpp): who is there, what each
/// node runs, and the coordinator's assignment of regions to nodes. Every type has a
/// CAF-0.17-style `inspect`, so it crosses the middleman.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor.hpp>

namespace keyflow::cluster {

/// A region a node runs, with the generation it was started under.
struct running_region {
  uint32_t region = 0;     ///< region index
  uint64_t generation = 0; ///< generation of the assignment it runs under
};

/// Inspects a running_region.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, running_region& x) {
  return f(x.region, x.generation);
}

/// One node as the others see it.
struct member_info {
  uint32_t id = 0;                     ///< node id (unique in the cluster, > 0)
  std::string host;                    ///< cluster address host
  uint16_t port = 0;                   ///< cluster address port
  uint64_t incarnation = 0;            ///< start time of the process (ms); changes when it restarts
  std::vector<running_region> running; ///< regions the node runs now
  bool leaving = false; ///< the node stops: its regions are drained, move them at once
  /// The node's job actor: receives the steps of starting a job spread over nodes (null
  /// when the node runs independent regions).
  caf::actor job;
  std::string admin; ///< the node's admin API ("http://host:port"): calls are forwarded there
};

/// Inspects a member_info.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_info& x) {
  return f(x.id, x.host, x.port, x.incarnation, x.running, x.leaving, x.job, x.admin);
}

/// Owner of one region in an assignment.
struct region_owner {
  uint32_t region = 0;     ///< region index
  uint32_t node = 0;       ///< node id; 0 = nobody (no live node)
  uint64_t generation = 0; ///< raised whenever the owner changes; fences the previous owner
};

/// Inspects a region_owner.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, region_owner& x) {
  return f(x.region, x.node, x.generation);
}

/// The coordinator's assignment of every region to a node. A higher version replaces a
/// lower one everywhere.
struct assignment {
  uint64_t version = 0;              ///< 0 = none yet
  uint32_t coordinator = 0;          ///< node that made it
  std::vector<region_owner> regions; ///< one per region, by region index
  /// The job is stopped (admin API): no node runs a region, the coordinator moves nothing
  /// until a restore gives every region a fresh generation.
  bool stopped = false;
  /// With `stopped`: the name of the snapshot every region's final checkpoint is taken as.
  std::string stop_snapshot;
};

/// Inspects an assignment.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, assignment& x) {
  return f(x.version, x.coordinator, x.regions, x.stopped, x.stop_snapshot);
}

/// Steps of starting generation `generation` of a job spread over nodes. The leader (the
/// coordinator that made the generation) sends commands; every owner of slices answers each
/// with a report per slice.
enum class spread_step : uint8_t {
  stopped = 1,  ///< report: the slice's older actors are stopped here and its fence raised
  prepare = 2,  ///< command: restore from `checkpoint` and spawn sinks and partition actors
  prepared = 3, ///< report: partition actors per stage, part writer
  wire = 4,     ///< command: every slice's partition actors, per stage, in key-group order
  wired = 5,    ///< report: partition actors are connected to the next stage
  run = 6,      ///< command: spawn the sources
  running = 7,  ///< report: sources and sinks
};

/// A poison record a node's supervision knows (core/supervision.hpp), sent between the nodes
/// of a spread job: the node reading the record's source partition dead-letters it.
struct poison_record {
  int32_t partition = 0; ///< source partition
  int64_t offset = 0;    ///< source offset
  std::string op;        ///< operator it failed
  std::string error;     ///< last error
  uint32_t attempts = 0; ///< failures that named it
};

/// Inspects a poison_record.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, poison_record& x) {
  return f(x.partition, x.offset, x.op, x.error, x.attempts);
}

/// A command of the leader or a report of a slice owner (see spread_step).
struct spread_message {
  uint64_t generation = 0;                     ///< generation being started
  uint8_t step = 0;                            ///< a spread_step
  uint32_t slice = 0;                          ///< reports: which slice
  caf::actor from;                             ///< the sender's job actor
  std::string checkpoint;                      ///< prepare: job checkpoint dir ("" = empty)
  std::vector<std::vector<caf::actor>> stages; ///< prepared: the slice's; wire: everyone's
  caf::actor part_writer;                      ///< prepared: writes the slice's checkpoint part
  std::vector<caf::actor> sources;             ///< running: the slice's sources
  std::vector<caf::actor> redis;               ///< running: the slice's Redis sinks
  std::vector<caf::actor> kafka;               ///< running: Kafka sinks, dead letters last
  std::vector<poison_record> poison;           ///< prepared: the node's; run: every node's
};

/// Inspects a spread_message.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, spread_message& x) {
  return f(x.generation, x.step, x.slice, x.from, x.checkpoint, x.stages, x.part_writer, x.sources,
           x.redis, x.kafka, x.poison);
}

/// What a node sends every heartbeat interval to every member it knows.
struct heartbeat {
  member_info from;                 ///< the sender, with the regions it runs
  std::vector<member_info> members; ///< the members the sender considers alive
  assignment current;               ///< the newest assignment the sender knows
};

/// Inspects a heartbeat.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, heartbeat& x) {
  return f(x.from, x.members, x.current);
}

} // namespace keyflow::cluster
