#pragma once
/// \file
/// The pipelines the benchmarks run: the keyed count + sum of the datagen, kafka and
/// checkpoint benchmarks, and the pipeline files of the repository (config/pipelines/),
/// loaded and resolved like keyflowd does. Also reads keyed aggregates back from RocksDB.

#include <cstdint>
#include <memory>
#include <string>

#include "benchmarks/bench_util.hpp"
#include "pipeline/plan.hpp"
#include "state/state_store.hpp"

namespace keyflow::bench {

/// The repository root: $KEYFLOW_SOURCE_DIR if set, else the source tree this was built from.
std::string source_dir();

/// validate (event_id, customer_id, event_time_ms) + aggregate {count, sum(value)} by
/// customer_id over keyflow.proto.Event; no sinks. Operator ids "validate", "aggregate".
std::shared_ptr<const pipeline::plan> keyed_count_plan();

/// Loads `<source_dir>/config/pipelines/<relative>` (e.g. "nexmark/q5.yaml"). With
/// `never_idle`, sources never declare themselves idle (idle_timeout_ms = 0): a bounded run
/// then ends with the watermark the slowest source reached, whatever the timing.
std::shared_ptr<const pipeline::plan> load_repo_plan(const std::string& relative, bool never_idle);

/// Per-key count and sum of a global aggregate operator whose first two aggregates are
/// count and sum, read back from its column family (call after the engine drained).
totals_map read_count_sum(state::state_store& store, const std::string& op_id);

/// Count of one key of such an operator; -1 if the key is absent.
int64_t stored_count(state::state_store& store, const std::string& op_id, const std::string& key,
                     uint32_t max_parallelism);

} // namespace keyflow::bench
