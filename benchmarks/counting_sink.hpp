#pragma once
/// \file
/// A stand-in for the Redis and Kafka sinks in benchmarks: an event-based actor with the
/// Kafka sink's interface that answers every batch with a credit at once, counts what it is
/// handed and digests it (benchmarks/result_digest.hpp), so results can be checked against a
/// raw baseline while no Redis or Kafka I/O is measured.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor_system.hpp>

#include "actors/actors.hpp"
#include "benchmarks/bench_util.hpp"
#include "benchmarks/result_digest.hpp"

namespace keyflow::bench {

/// What one counting sink saw. Written by the sink actor only; read once the pipeline is
/// drained (the drain reply orders the reads after the writes).
struct sink_tally {
  std::string id;                   ///< sink id (plan) or "dead-letters"
  bool upsert = false;              ///< like the Redis sink: keep the newest record per hash key
  std::vector<int> slots;           ///< fields digested, in the sink's order
  std::vector<int> key_slots;       ///< upsert: fields appended to the hash key (":" + value)
  std::atomic<uint64_t> records{0}; ///< records (or dead-letter messages) received
  std::atomic<uint64_t> batches{0}; ///< batches received
  result_digest all;                ///< every record received (append semantics)
  /// Upsert: per hash key, the version (event time, seq) and hash of the newest record.
  std::unordered_map<std::string, std::pair<std::pair<int64_t, uint64_t>, uint64_t>> newest;
  latency_samples latency; ///< per batch: now - ingest time of its first record

  /// The result as a reader of the sink would see it: every record for append sinks, the
  /// newest record per key for upsert sinks.
  result_digest digest() const {
    if (!upsert)
      return all;
    result_digest d;
    for (const auto& [k, v] : newest)
      d.add(v.second);
    return d;
  }
};

/// Spawns a counting sink (event-based) feeding `tally`. It takes record batches (results)
/// and Kafka batches (dead letters); drain replies the records received so far.
kafka_sink_actor spawn_counting_sink(caf::actor_system& sys, std::shared_ptr<sink_tally> tally);

} // namespace keyflow::bench
