#pragma once
/// \file
/// The end-to-end scenarios of keyflow-bench. Each runs the engine and its raw baseline in
/// this process, checks that both end with the same per-key totals and returns the figures.

#include "benchmarks/bench_util.hpp"

namespace keyflow::bench {

/// In-process generator -> partition actors (keyed count + sum) vs. a generate-and-update
/// loop over std::unordered_map. Default 10 M events (1 M with --short).
scenario_result run_datagen(const run_options& opts);

/// Embedded Kafka (4 partitions, pre-produced protobuf Events) -> kafka_reader sources ->
/// partition actors vs. one librdkafka consumer + ParseFromArray + std::unordered_map in one
/// thread. Default 1 M events (200 k with --short).
scenario_result run_kafka(const run_options& opts);

} // namespace keyflow::bench
