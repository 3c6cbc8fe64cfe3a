#pragma once
/// \file
/// `keyflow-bench nexmark`: the pipelines of config/pipelines/ (Nexmark q1, q2, q5, q7, q11
/// and cdp) run by the engine over the in-process generator, each beside a raw hand-written
/// baseline of the same query in the same process, with their results compared. Figures per
/// query: events/s, CPU cores used and events/s per core (generator included), the ratio to
/// the raw baseline and to Flink 1.13's published Nexmark throughput per core, p50/p99
/// processing latency and peak RSS.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "benchmarks/bench_util.hpp"
#include "benchmarks/e2e_engine.hpp"
#include "benchmarks/result_digest.hpp"
#include "pipeline/generator_reader.hpp"

namespace keyflow::bench {

/// Flink 1.13's published Nexmark throughput per core (events/s) for `query`; 0 if none.
double flink_per_core(const std::string& query);

/// Both sides of one query run and the verdict.
struct query_result {
  std::string query;              ///< "q1" .. "q11", "cdp"
  uint32_t run = 1;               ///< 1-based repetition
  phase_result engine;            ///< Keyflow: spawn of the sources until drained
  phase_result raw;               ///< hand-written baseline, one thread
  latency_figures sink_latency;   ///< engine: source read -> counting sink, per batch
  uint32_t sources = 1;           ///< generator source actors
  uint32_t parallelism = 1;       ///< partition actors per stage
  uint32_t stages = 1;            ///< keyed stages of the plan
  uint64_t outputs = 0;           ///< result records the engine's sinks received
  uint64_t dead_letters = 0;      ///< dead letters (late records, rejected events)
  result_digest engine_digest;    ///< the engine's results
  result_digest raw_digest;       ///< the baseline's results
  bool compared = true;           ///< false with --engine-only: no raw baseline ran
  bool results_equal = false;     ///< the digests (or what is compared) agree
  std::vector<std::string> notes; ///< what was compared, sink replacements, ...

  /// CPU cores the engine used on average: process CPU seconds / wall seconds.
  double cores_used() const { return engine.seconds > 0 ? engine.cpu_s / engine.seconds : 0; }
  /// Engine events per CPU second (events/s per core used).
  double per_core() const {
    return engine.cpu_s > 0 ? static_cast<double>(engine.events) / engine.cpu_s : 0;
  }
  /// Raw events per CPU second.
  double raw_per_core() const {
    return raw.cpu_s > 0 ? static_cast<double>(raw.events) / raw.cpu_s : 0;
  }
  /// Engine events/s over raw events/s.
  double ratio_to_raw() const {
    return raw.events_per_s() > 0 ? engine.events_per_s() / raw.events_per_s() : 0;
  }
  /// Engine events/s per core over Flink 1.13's per core (0 if Flink has no figure).
  double ratio_to_flink() const {
    const double f = flink_per_core(query);
    return f > 0 ? per_core() / f : 0;
  }
};

/// What the engine did in one generated run.
struct engine_phase {
  phase_result phase;                 ///< timing, CPU, processing latency, memory
  latency_figures sink_latency;       ///< source read -> counting sink
  std::vector<result_digest> sinks;   ///< per plan sink, as a reader of the sink sees it
  std::vector<uint64_t> sink_records; ///< per plan sink, records received
  uint64_t dead_letters = 0;          ///< dead letters received
  uint64_t processed = 0;             ///< records the partition actors processed, all stages
};

/// Runs the engine over one generator_reader per generator (source actor i reads
/// generators[i]) with counting sinks, from spawning the sources until every generator has
/// emitted `events` in all and the pipeline is drained. Throws on a timeout or a failure.
engine_phase run_generated(std::shared_ptr<const pipeline::plan> plan, const engine_settings& s,
                           std::vector<std::unique_ptr<pipeline::event_generator>> generators,
                           uint64_t events);

/// Runs Nexmark query `query` (q1, q2, q5, q7, q11). Events: --events, else 10 M (--short
/// 200 k); sources: --sources, else one per worker.
query_result run_nexmark_query(const run_options& opts, const std::string& query);

/// Runs the cdp pipeline (config/pipelines/cdp.yaml) over make_datagen events, with a real
/// redis-server for its enrich lookups (or, without redis-server on $PATH, without enrich).
query_result run_cdp(const run_options& opts);

/// Prints the table of all runs (and the medians when there are several per query).
void print_query_table(const std::vector<query_result>& results, const phase_result* generator);

/// The JSON report of the runs.
nlohmann::ordered_json queries_to_json(const std::vector<query_result>& results,
                                       const phase_result* generator, const run_options& opts);

} // namespace keyflow::bench
