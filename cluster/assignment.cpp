#include "cluster/assignment.hpp"

#include <algorithm>
#include <map>

namespace keyflow::cluster {

std::vector<int32_t> region_partitions(uint32_t region, uint32_t regions, int partitions) {
  std::vector<int32_t> out;
  for (int p = 0; p < partitions; ++p)
    if (regions > 0 && static_cast<uint32_t>(p) % regions == region)
      out.push_back(p);
  return out;
}

assignment rebalance(const assignment& current, std::vector<uint32_t> live, uint32_t regions,
                     uint32_t coordinator, uint64_t next_version, bool together) {
  std::sort(live.begin(), live.end());
  live.erase(std::unique(live.begin(), live.end()), live.end());
  std::vector<uint32_t> owner(regions, 0);
  std::vector<uint64_t> gen(regions, 0);
  for (const auto& r : current.regions)
    if (r.region < regions) {
      owner[r.region] = r.node;
      gen[r.region] = r.generation;
    }
  const auto is_live = [&](uint32_t n) { return std::binary_search(live.begin(), live.end(), n); };
  std::vector<uint32_t> next(regions, 0);
  if (!live.empty()) {
    // Kept regions per live node; nodes holding the most get the larger quotas first.
    std::map<uint32_t, uint32_t> kept;
    for (uint32_t n : live)
      kept[n] = 0;
    for (uint32_t r = 0; r < regions; ++r)
      if (is_live(owner[r]))
        ++kept[owner[r]];
    std::vector<uint32_t> order = live;
    std::stable_sort(order.begin(), order.end(),
                     [&](uint32_t a, uint32_t b) { return kept[a] > kept[b]; });
    const auto n = static_cast<uint32_t>(live.size());
    std::map<uint32_t, uint32_t> quota;
    for (uint32_t i = 0; i < n; ++i)
      quota[order[i]] = regions / n + (i < regions % n ? 1 : 0);
    std::map<uint32_t, uint32_t> count;
    for (uint32_t r = 0; r < regions; ++r)
      if (is_live(owner[r]) && count[owner[r]] < quota[owner[r]]) {
        next[r] = owner[r];
        ++count[owner[r]];
      }
    for (uint32_t r = 0; r < regions; ++r) {
      if (next[r] != 0)
        continue;
      uint32_t best = 0;
      int64_t room = -1;
      for (uint32_t node : live) { // most room left; ties: lowest id
        auto left = static_cast<int64_t>(quota[node]) - count[node];
        if (left > room) {
          room = left;
          best = node;
        }
      }
      next[r] = best;
      ++count[best];
    }
  }
  bool changed = current.regions.size() != regions;
  for (uint32_t r = 0; r < regions && !changed; ++r)
    changed = next[r] != owner[r];
  if (!changed)
    return current;
  assignment out;
  out.version = next_version;
  out.coordinator = coordinator;
  const uint64_t fresh = generation_of(next_version, coordinator);
  for (uint32_t r = 0; r < regions; ++r)
    out.regions.push_back({r, next[r], next[r] == owner[r] && !together ? gen[r] : fresh});
  return out;
}

uint64_t generation_of(uint64_t version, uint32_t coordinator) {
  return (version << 16) | (coordinator & 0xFFFFu);
}

std::vector<running_region> owned_by(const assignment& a, uint32_t node) {
  std::vector<running_region> out;
  if (a.stopped)
    return out;
  for (const auto& r : a.regions)
    if (r.node == node && node != 0)
      out.push_back({r.region, r.generation});
  return out;
}

} // namespace keyflow::cluster
