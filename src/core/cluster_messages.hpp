#pragma once
/// \file
/// Messages between the nodes of a cluster (cluster/membership.cpp): who is there, what each
/// node runs, and the coordinator's assignment of regions to nodes. Every type has a
/// CAF-0.17-style `inspect`, so it crosses the middleman.

#include <cstdint>
#include <string>
#include <vector>

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
};

/// Inspects a member_info.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_info& x) {
  return f(x.id, x.host, x.port, x.incarnation, x.running, x.leaving);
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
};

/// Inspects an assignment.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, assignment& x) {
  return f(x.version, x.coordinator, x.regions);
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
