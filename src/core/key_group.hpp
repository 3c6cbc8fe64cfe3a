#pragma once
/// \file
/// Key routing: key -> key group -> partition actor. Key groups are the unit of state,
/// of assignment and of rescaling. The hash is Kafka's murmur2 so that key groups are stable
/// across processes, machines and versions; Keyflow never trusts the Kafka partition a
/// producer chose.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace keyflow {

/// Index of a key group, in [0, max_parallelism).
using key_group_t = uint16_t;

/// Kafka's murmur2 hash of `key` (the same as the Java client's Utils.murmur2).
uint32_t murmur2(std::string_view key) noexcept;

/// Key group of `key`: (murmur2(key) & 0x7fffffff) % max_parallelism.
inline key_group_t key_group_of(std::string_view key, uint32_t max_parallelism) noexcept {
  return static_cast<key_group_t>((murmur2(key) & 0x7fffffffu) % max_parallelism);
}

/// A half-open range [first, last) of key groups owned by one partition actor.
struct key_group_range {
  uint32_t first = 0; ///< first key group in the range
  uint32_t last = 0;  ///< one past the last key group

  /// True if `kg` lies in the range.
  bool contains(uint32_t kg) const noexcept { return kg >= first && kg < last; }
  /// Number of key groups in the range.
  uint32_t size() const noexcept { return last - first; }
  friend bool operator==(const key_group_range&, const key_group_range&) = default;
};

/// Range of key groups owned by actor `index` of `parallelism` actors (contiguous, balanced
/// to within one key group; Flink's layout).
key_group_range range_for_actor(uint32_t max_parallelism, uint32_t parallelism,
                                uint32_t index) noexcept;

/// Index of the actor (of `parallelism`) that owns key group `kg`.
inline uint32_t actor_for_key_group(uint32_t max_parallelism, uint32_t parallelism,
                                    uint32_t kg) noexcept {
  return static_cast<uint32_t>(uint64_t{kg} * parallelism / max_parallelism);
}

} // namespace keyflow
