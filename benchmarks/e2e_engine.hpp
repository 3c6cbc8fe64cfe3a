#pragma once
/// \file
/// The engine side of an end-to-end benchmark: a state store in a temporary directory,
/// metrics, an actor system, and a pipeline wired exactly as keyflowd wires it
/// (actors/wiring.hpp), except that every sink (the dead-letter sink included) is a counting
/// sink (benchmarks/counting_sink.hpp) and the sources read what the benchmark gives them.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "actors/wiring.hpp"
#include "benchmarks/bench_util.hpp"
#include "benchmarks/counting_sink.hpp"
#include "metrics/metrics.hpp"
#include "pipeline/plan.hpp"
#include "state/checkpoint_store.hpp"
#include "state/state_store.hpp"

namespace keyflow::bench {

/// How an engine_run is set up.
struct engine_settings {
  uint32_t workers = 1;                           ///< CAF scheduler threads; 1
  uint32_t parallelism = 1;                       ///< partition actors per stage; 1
  flow_settings flow;                             ///< batch size and credit (keyflowd's defaults)
  std::chrono::milliseconds flush_interval{1000}; ///< state write-back period; 1 s
  /// Keys kept in memory per partition actor after a state write; 0 = all. 2 M, keyflowd's
  /// --state-cache-keys default.
  size_t max_state_keys = 2'000'000;
  /// Where checkpoints go; null: no coordinator, partition actors write state on the flush
  /// timer and at drain.
  state::checkpoint_store* checkpoints = nullptr;
  std::chrono::milliseconds checkpoint_interval{0};     ///< 0 = on demand only
  std::chrono::milliseconds checkpoint_timeout{600000}; ///< generous: big states
  std::string redis; ///< Redis host:port for enrich lookups; "" if none
  /// Share of a partition actor's records over which it reports a key hot (its Space-Saving
  /// tracker observes every record); 0 = detection off. 0.2, keyflowd's default.
  double hot_key_share = 0.2;
};

/// Settings from the command line.
engine_settings settings_from(const run_options& o);

/// One running engine: state store, metrics, actor system, the wired pipeline.
class engine_run {
public:
  /// Opens `store` (or, if null, a fresh store with the plan's column families in a
  /// temporary directory), starts CAF with `s.workers` threads. Nothing is spawned yet.
  engine_run(std::shared_ptr<const pipeline::plan> plan, engine_settings s,
             std::unique_ptr<state::state_store> store = nullptr);
  /// Stops every actor, then the actor system, then closes the store.
  ~engine_run();
  engine_run(const engine_run&) = delete;
  engine_run& operator=(const engine_run&) = delete;

  /// Wires the pipeline (actors/wiring.hpp) with counting sinks and one source actor per
  /// reader, in order.
  void start(std::vector<std::shared_ptr<source_reader>> readers);

  /// Graceful stop (actors/wiring.hpp drain_pipeline): sources stop, partition actors drain
  /// stage by stage (state written to RocksDB), sinks drain. Throws if a request failed.
  drain_result drain();

  /// Takes a checkpoint now and waits for it; returns its id. Throws on failure.
  uint64_t checkpoint();

  /// Checkpoints completed so far.
  uint64_t checkpoints_completed();

  /// Processing latency from keyflow_processing_latency_seconds (complete after drain()).
  latency_figures latency();

  /// The counting sink of plan sink `i`.
  const sink_tally& sink(size_t i) const { return *sinks_.at(i); }
  /// The counting dead-letter sink.
  const sink_tally& dead_letters() const { return *dead_letters_; }

  /// Polls `counter` until it reaches `n`; false on timeout.
  static bool wait_for(const prometheus::Counter& counter, uint64_t n,
                       std::chrono::seconds timeout);

  /// The metrics object the actors report to.
  metrics::metrics& node_metrics() noexcept { return metrics_; }
  /// The state store.
  state::state_store& store() noexcept { return *store_; }
  /// The plan.
  const pipeline::plan& plan() const noexcept { return *plan_; }

private:
  std::shared_ptr<const pipeline::plan> plan_;
  engine_settings s_;
  std::unique_ptr<temp_dir> dir_;
  std::unique_ptr<state::state_store> store_;
  metrics::metrics metrics_;
  std::vector<std::shared_ptr<sink_tally>> sinks_;
  std::shared_ptr<sink_tally> dead_letters_;
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  running_pipeline run_;
  bool drained_ = false;
};

} // namespace keyflow::bench
