#include "benchmarks/bench_pipelines.hpp"

#include <cstdlib>
#include <stdexcept>

#include <rocksdb/iterator.h>

#include "config/pipeline_config.hpp"
#include "core/key_group.hpp"
#include "proto/state.pb.h"

#ifndef KEYFLOW_SOURCE_DIR
#define KEYFLOW_SOURCE_DIR "."
#endif

namespace keyflow::bench {

namespace {

/// The keyed count + sum. Its "file" lies in config/pipelines/ so the schema path resolves.
constexpr const char* keyed_count_yaml = R"(
pipeline: {name: bench, version: 1, max_parallelism: 128}
schema: {proto: ../proto/event.proto, message: keyflow.proto.Event}
source: {topic: events, key: customer_id, event_time: event_time_ms}
dead_letters: {topic: events-dlq}
operators:
  - {id: validate, type: validate, required: [event_id, customer_id, event_time_ms]}
  - id: aggregate
    type: aggregate
    aggregates:
      count: {fn: count}
      sum: {fn: sum, field: value}
)";

/// Decodes the count and sum of a stored WindowState (global kind: one window).
bool decode_count_sum(std::string_view bytes, key_totals& out) {
  proto::WindowState st;
  if (!st.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) || st.windows_size() != 1 ||
      st.windows(0).accumulators_size() < 2)
    return false;
  out.count = static_cast<uint64_t>(st.windows(0).accumulators(0).count());
  out.sum = st.windows(0).accumulators(1).value().double_value();
  return true;
}

} // namespace

std::string source_dir() {
  const char* env = std::getenv("KEYFLOW_SOURCE_DIR");
  return env != nullptr && *env != '\0' ? env : KEYFLOW_SOURCE_DIR;
}

std::shared_ptr<const pipeline::plan> keyed_count_plan() {
  return pipeline::make_plan(config::parse_pipeline(
      keyed_count_yaml, source_dir() + "/config/pipelines/keyflow-bench-keyed-count.yaml"));
}

std::shared_ptr<const pipeline::plan> load_repo_plan(const std::string& relative, bool never_idle) {
  auto cfg = config::load_pipeline_file(source_dir() + "/config/pipelines/" + relative);
  if (never_idle)
    cfg.source.watermark.idle_timeout_ms = 0;
  return pipeline::make_plan(std::move(cfg));
}

totals_map read_count_sum(state::state_store& store, const std::string& op_id) {
  totals_map out;
  auto* cf = store.column_family(op_id);
  if (cf == nullptr)
    throw std::runtime_error("no column family '" + op_id + "' in the engine's store");
  std::unique_ptr<rocksdb::Iterator> it{store.db()->NewIterator(rocksdb::ReadOptions{}, cf)};
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto k = it->key();
    auto v = it->value();
    key_totals t;
    if (k.size() < 2 || !decode_count_sum({v.data(), v.size()}, t))
      throw std::runtime_error("corrupt state entry in the engine's store");
    out[std::string{k.data() + 2, k.size() - 2}] = t;
  }
  if (!it->status().ok())
    throw std::runtime_error("reading the engine's state failed: " + it->status().ToString());
  return out;
}

int64_t stored_count(state::state_store& store, const std::string& op_id, const std::string& key,
                     uint32_t max_parallelism) {
  std::string v;
  auto* cf = store.column_family(op_id);
  if (!store.get(cf, state::state_key(key_group_of(key, max_parallelism), key), &v).ok())
    return -1;
  key_totals t;
  if (!decode_count_sum(v, t))
    throw std::runtime_error("corrupt state entry of " + key);
  return static_cast<int64_t>(t.count);
}

} // namespace keyflow::bench
