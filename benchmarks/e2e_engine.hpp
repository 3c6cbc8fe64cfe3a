#pragma once
/// \file
/// The engine side of an end-to-end scenario: an actor system with partition actors over a
/// fresh state store (no sinks), sources added by the scenario, completion detected from
/// the aggregate operator's records-in counter, then a drain and a read-back of the state.

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "actors/spawn.hpp"
#include "benchmarks/bench_util.hpp"
#include "config/pipeline_config.hpp"
#include "metrics/metrics.hpp"
#include "state/state_store.hpp"

namespace keyflow::bench {

/// The pipeline the harness runs: validate + aggregate, no score, no sinks.
config::pipeline_config bench_pipeline();

/// Partition actors to spawn: --partitions, or one per worker.
inline uint32_t partition_actors(const run_options& o) {
  return o.partitions ? o.partitions : o.workers;
}

/// One running engine: state store, metrics, actor system, partition actors, sources.
class engine_run {
public:
  /// Opens a state store in a temporary directory, starts CAF with `opts.workers` threads
  /// and spawns partition_actors(opts) partition actors (null sink handles, no
  /// checkpointing: state is written back on the flush timer) fed by `sources` sources.
  engine_run(const config::pipeline_config& pipe, const run_options& opts, uint32_t sources);
  /// Stops every actor, then the actor system, then closes the store.
  ~engine_run();
  engine_run(const engine_run&) = delete;
  engine_run& operator=(const engine_run&) = delete;

  /// Spawns the next source actor (of the `sources` announced) reading from `reader`,
  /// routing to all partition actors.
  void add_source(std::shared_ptr<source_reader> reader);

  /// Records folded into keyed state so far (keyflow_records_in_total{operator=aggregate}).
  uint64_t folded() const;

  /// Polls folded() until it reaches `n`; false on timeout or if it overshoots.
  bool wait_folded(uint64_t n, std::chrono::seconds timeout) const;

  /// Polls `counter` until it reaches `n`; false on timeout.
  static bool wait_for(const prometheus::Counter& counter, uint64_t n,
                       std::chrono::seconds timeout);

  /// Stops the sources and drains the partition actors (state flushed to RocksDB);
  /// returns the records the partition actors processed. Throws on an actor error.
  uint64_t drain();

  /// Processing latency from the metrics histogram (complete after drain()).
  latency_figures latency();

  /// Per-key count and sum read back from RocksDB (call after drain()).
  totals_map read_state() const;

  /// The metrics object the actors report to.
  metrics::metrics& node_metrics() noexcept { return metrics_; }

private:
  const config::pipeline_config* pipe_;
  flow_settings flow_;
  std::chrono::milliseconds flush_interval_;
  temp_dir dir_;
  std::unique_ptr<state::state_store> store_;
  metrics::metrics metrics_;
  prometheus::Counter* folded_;
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::vector<partition_actor> partitions_;
  std::vector<source_actor> sources_;
};

} // namespace keyflow::bench
