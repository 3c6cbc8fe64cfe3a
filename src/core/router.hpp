#pragma once
/// \file
/// Splits a stream of records into one batch per destination partition actor, by key group.

#include <cstdint>
#include <vector>

#include "core/key_group.hpp"
#include "core/record.hpp"

namespace keyflow {

/// Routes records to `parallelism` destinations that own contiguous key-group ranges.
class router {
public:
  /// A router for `max_parallelism` key groups over `parallelism` destinations.
  router(uint32_t max_parallelism, uint32_t parallelism);

  /// Computes the record's key group and appends it to its destination's batch.
  void route(record&& r) {
    r.key_group = key_group_of(r.key, max_parallelism_);
    batches_[owner_[r.key_group]].records.push_back(std::move(r));
  }

  /// Destination index of a key group.
  uint32_t owner(key_group_t kg) const noexcept { return owner_[kg]; }

  /// Number of destinations.
  uint32_t parallelism() const noexcept { return static_cast<uint32_t>(batches_.size()); }

  /// Number of key groups.
  uint32_t max_parallelism() const noexcept { return max_parallelism_; }

  /// The pending batch of destination `i` (move it out to send it).
  record_batch& batch(uint32_t i) noexcept { return batches_[i]; }

  /// Records pending over all destinations.
  size_t pending() const noexcept;

private:
  uint32_t max_parallelism_;
  std::vector<uint32_t> owner_; // key group -> destination
  std::vector<record_batch> batches_;
};

} // namespace keyflow
