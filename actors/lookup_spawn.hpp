#pragma once
/// \file
/// Settings and spawn helper of the Redis lookup actor (to be merged into spawn.hpp).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>

#include "actors/actors.hpp"

namespace keyflow {

/// Counters of a lookup actor, readable from any thread (metrics, tests).
struct lookup_counters {
  std::atomic<uint64_t> requests{0}; ///< lookup requests received
  std::atomic<uint64_t> rounds{0};   ///< micro-batches read from Redis (retries not counted)
  std::atomic<uint64_t> keys{0};     ///< keys read, after deduplication across requests
  std::atomic<uint64_t> retries{0};  ///< round attempts repeated after an error or timeout
  std::atomic<uint64_t> failed_rounds{
      0}; ///< rounds still failing after their retries (retried later)
  std::atomic<uint64_t> failed_keys{0}; ///< keys answered `failed` (Redis error replies)
};

/// Settings of a lookup actor.
struct lookup_params {
  std::string address;                    ///< Redis host:port
  std::vector<std::string> fields;        ///< hash fields read per key (HMGET), in reply order
  uint32_t batch_size = 512;              ///< pending distinct keys that trigger a round; 512
  std::chrono::milliseconds max_delay{2}; ///< a round starts this long after its first key; 2 ms
  std::chrono::milliseconds timeout{500}; ///< connect and socket timeout of a round; 500 ms
  uint32_t retries = 3;                   ///< a failed or timed-out round is repeated this often; 3
  std::chrono::milliseconds retry_backoff{
      50}; ///< pause before the first retry, doubled each time; 50 ms
  std::shared_ptr<lookup_counters> counters; ///< updated by the actor when set; null
};

/// Spawns a lookup actor on its own thread (it blocks on Redis). Throws
/// std::invalid_argument on a malformed address or an empty field list. Connects lazily:
/// an unreachable Redis gives `failed` entries, not an error here.
lookup_actor spawn_lookup(caf::actor_system& sys, lookup_params params);

} // namespace keyflow
