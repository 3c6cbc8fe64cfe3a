#pragma once
/// \file
/// The end-to-end scenarios of keyflow-bench. Each runs the engine and its raw baseline in
/// this process, checks that both end with the same per-key totals and returns the figures.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "benchmarks/bench_util.hpp"
#include "pipeline/generator_reader.hpp"

namespace keyflow::bench {

/// In-process generator -> partition actors (keyed count + sum) vs. a generate-and-update
/// loop over std::unordered_map. Default 10 M events (1 M with --short).
scenario_result run_datagen(const run_options& opts);

/// The raw baseline of the keyed count + sum: `events` records of `gen`, ParseFromArray,
/// folded into an unordered_map (into `out`), in batches of 1024 for latency samples.
phase_result raw_count_sum(pipeline::event_generator& gen, uint64_t events,
                           const std::string& detail, totals_map& out);

/// Embedded Kafka (4 partitions, pre-produced protobuf Events) -> kafka_reader sources ->
/// partition actors vs. one librdkafka consumer + ParseFromArray + std::unordered_map in one
/// thread. Default 1 M events (200 k with --short).
scenario_result run_kafka(const run_options& opts);

/// The measured variants of the hotkey scenario. "fanout": the generator readers
/// pre-aggregate their hot keys (pipeline::generator_reader::enable_fanout(0.2), as keyflowd
/// does for every Kafka reader unless --no-hot-key-fanout).
enum class hotkey_variant {
  uniform,           ///< engine, uniform keys, detection on (0.2), fanout on (0.2)
  hot,               ///< engine, one hot key, detection on, fanout on
  hot_no_fanout,     ///< engine, one hot key, detection on, fanout off
  uniform_no_fanout, ///< engine, uniform keys, detection on, fanout off
  hot_off,           ///< engine, one hot key, detection off (hot_key_share 0), fanout off
  uniform_off,       ///< engine, uniform keys, detection off, fanout off
  raw_hot,           ///< raw loop over the hot input
  raw_uniform,       ///< raw loop over the uniform input
};

/// One measured variant of the hotkey scenario.
struct hotkey_phase {
  hotkey_variant variant = hotkey_variant::uniform; ///< which one
  double hot_share = 0;        ///< share of the events carrying the hot key (0: uniform)
  double detect_share = 0;     ///< partition actors' hot_key_share (0: off or raw)
  double fanout_share = 0;     ///< the readers' enable_fanout share (0: off or raw)
  phase_result figures;        ///< events/s, latency, RSS
  uint64_t hot_detected = 0;   ///< keyflow_hot_keys_detected_total over the partition actors
  double top_share = 0;        ///< highest keyflow_hot_key_share of a partition actor at the end
  double busiest_actor = 0;    ///< share of the events routed to the busiest partition actor
  uint64_t routed = 0;         ///< engine: records the sources sent (partials count 1 each)
  uint64_t pre_aggregated = 0; ///< engine: events folded into partials by the sources
  uint64_t partials = 0;       ///< engine: partial records the sources sent
  bool results_equal = true;   ///< engine: per-key totals equal the raw loop's on its input
};

/// One run of the hotkey scenario: every variant, in the order they ran.
struct hotkey_result {
  uint32_t run = 1;                 ///< 1-based repetition (--repeat)
  uint32_t sources = 1;             ///< generator source actors of the engine
  uint32_t partitions = 1;          ///< partition actors of the engine
  std::vector<hotkey_phase> phases; ///< the variants
  bool results_equal = false;       ///< every engine variant equals its raw loop
  std::vector<std::string> notes;   ///< extra facts (drain times, the hot key's real share)
  /// Events/s of `v`; 0 if it did not run.
  double events_per_s(hotkey_variant v) const;
};

/// The keyed count + sum of datagen over uniform keys and over input where one key carries
/// --hot-share (0.5) of the events, with hot-key fanout on and off and hot-key detection on
/// and off, next to the raw loop over both inputs (--sources generator instances, one source
/// actor each; the raw loop reads them all); every engine variant is checked against the raw
/// loop. Default 5 M events per variant (600 k with --short). `run` (1-based) numbers the
/// result; even runs measure the engine variants in reverse order.
hotkey_result run_hotkey(const run_options& opts, uint32_t run = 1);

/// Prints the hotkey table of every run, the ratios, and the medians if there are several runs.
void print_hotkey_table(const std::vector<hotkey_result>& results);

/// The hotkey runs and their medians as JSON.
nlohmann::ordered_json hotkey_to_json(const std::vector<hotkey_result>& results);

} // namespace keyflow::bench
