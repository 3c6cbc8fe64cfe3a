#pragma once
/// \file
/// Raw baselines of the Nexmark queries q1, q2, q5, q7 and q11: one thread, one tight loop
/// over the same generated serialized events the engine reads (nexmark_generator), parsed
/// with the generated protobuf class (keyflow::nexmark::Event::ParseFromArray), the query
/// computed with plain hash maps, and its results digested like the engine's counting sink
/// digests them (benchmarks/result_digest.hpp), so both can be compared.
///
/// Windows fire as in the engine: when the watermark (greatest event time - the bound on
/// disorder) reaches their end - 1. The engine's final watermark is the minimum over its
/// sources; `time_cap_ms` caps the raw loop's greatest event time at that value, so both
/// fire the same windows.

#include <cstdint>
#include <string>
#include <vector>

#include "benchmarks/bench_util.hpp"
#include "benchmarks/result_digest.hpp"
#include "core/nexmark.hpp"

namespace keyflow::bench {

/// The Nexmark queries with a raw baseline, in table order.
const std::vector<std::string>& nexmark_queries();

/// What a raw baseline did.
struct raw_run {
  phase_result phase;   ///< timing, CPU, latency (one sample per 1024 events), memory
  result_digest digest; ///< its results
};

/// Runs the raw baseline of `query` ("q1", "q2", "q5", "q7", "q11") over the events of
/// `opts` (all instances' events, in event order). Throws std::invalid_argument for another
/// query name.
raw_run run_nexmark_raw(const std::string& query, const nexmark_options& opts,
                        int64_t out_of_orderness_ms, int64_t time_cap_ms);

/// The greatest event time each of `sources` generators splitting `opts` reaches, minimum
/// over the generators: the engine's final watermark + the bound on disorder.
int64_t final_source_time(nexmark_options opts, uint32_t sources);

/// Generates and serializes the events of `opts` and nothing else: the generator's share
/// of every figure. Returns its timing (events, seconds, CPU).
phase_result run_generator_only(const nexmark_options& opts);

} // namespace keyflow::bench
