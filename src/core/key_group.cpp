#include "core/key_group.hpp"

#include <cstring>

namespace keyflow {

uint32_t murmur2(std::string_view key) noexcept {
  constexpr uint32_t seed = 0x9747b28c;
  constexpr uint32_t m = 0x5bd1e995;
  constexpr int r = 24;
  const auto* data = reinterpret_cast<const unsigned char*>(key.data());
  auto length = static_cast<uint32_t>(key.size());
  uint32_t h = seed ^ length;
  const uint32_t blocks = length / 4;
  for (uint32_t i = 0; i < blocks; ++i) {
    uint32_t k;
    std::memcpy(&k, data + 4 * i, 4); // little-endian, as Kafka reads it
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  const unsigned char* tail = data + 4 * blocks;
  switch (length & 3) {
  case 3:
    h ^= static_cast<uint32_t>(tail[2]) << 16;
    [[fallthrough]];
  case 2:
    h ^= static_cast<uint32_t>(tail[1]) << 8;
    [[fallthrough]];
  case 1:
    h ^= tail[0];
    h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return h;
}

key_group_range range_for_actor(uint32_t max_parallelism, uint32_t parallelism,
                                uint32_t index) noexcept {
  // Inverse of actor_for_key_group: the smallest kg with kg * p / maxp >= index.
  auto start = [&](uint64_t i) {
    return static_cast<uint32_t>((i * max_parallelism + parallelism - 1) / parallelism);
  };
  return {start(index), start(uint64_t{index} + 1)};
}

} // namespace keyflow
