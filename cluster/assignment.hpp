#pragma once
/// \file
/// Regions and their assignment to nodes. A region is a set of source partitions with the
/// state of the keys they carry; regions share nothing, so one can restart or move while the
/// others run. The coordinator spreads regions over the live nodes, balanced and sticky:
/// a region keeps its owner while the owner lives and is not over its share.

#include <cstdint>
#include <vector>

#include "core/cluster_messages.hpp"

namespace keyflow::cluster {

/// Source partitions of region `region` out of `regions`: every p < `partitions` with
/// p % regions == region.
std::vector<int32_t> region_partitions(uint32_t region, uint32_t regions, int partitions);

/// The assignment the coordinator `coordinator` wants for `regions` regions over the `live`
/// node ids, starting from `current`. Regions of live nodes stay where they are unless their
/// owner holds more than its share; the others go to the nodes with the fewest. If no owner
/// changes, returns `current` unchanged; otherwise the result has version `next_version`,
/// and every region whose owner changed gets generation_of(next_version, coordinator) —
/// every region does when `together` (slices of one job spread over nodes, which restart
/// together from one checkpoint).
assignment rebalance(const assignment& current, std::vector<uint32_t> live, uint32_t regions,
                     uint32_t coordinator, uint64_t next_version, bool together = false);

/// The generation of regions assigned in version `version` by `coordinator`: the version
/// in the high bits, the coordinator id (< 65536) in the low 16, so that two nodes that
/// both believed they coordinated never hand out the same generation.
uint64_t generation_of(uint64_t version, uint32_t coordinator);

/// Regions `node` owns in `a`, with their generations (none while the job is stopped).
std::vector<running_region> owned_by(const assignment& a, uint32_t node);

} // namespace keyflow::cluster
