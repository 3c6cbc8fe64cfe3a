// Scenario "datagen": the engine fed by its in-process generator (serialized
// keyflow.proto.Event records decoded like Kafka records), against a hand-written loop that
// generates the same records, parses them with the generated protobuf class and folds them
// into a std::unordered_map.

#include <algorithm>
#include <memory>
#include <stdexcept>

#include "benchmarks/bench_pipelines.hpp"
#include "benchmarks/e2e_engine.hpp"
#include "benchmarks/e2e_scenarios.hpp"
#include "pipeline/generator_reader.hpp"
#include "proto/event.pb.h"

namespace keyflow::bench {

namespace {

constexpr uint64_t default_events = 10'000'000;
constexpr uint64_t short_events = 1'000'000;
constexpr uint64_t seed = 42;
constexpr uint32_t raw_batch = 1024; // the engine's default batch size
constexpr double target_events_per_s = 1.5e6;

/// The generator both sides read.
pipeline::datagen_options generator_options(const run_options& o, uint64_t events) {
  pipeline::datagen_options d;
  d.events = events;
  d.keys = o.keys;
  d.seed = seed;
  return d;
}

/// Engine: one generator source actor -> partition actors, keyed count + sum over RocksDB.
phase_result run_engine(const run_options& o, uint64_t events, totals_map& state,
                        std::vector<std::string>& notes) {
  phase_result r;
  r.variant = "engine";
  auto s = settings_from(o);
  r.detail = "generator_reader source actor -> " + std::to_string(s.parallelism) +
             " partition actor(s) (validate+aggregate, no sinks), " + std::to_string(o.workers) +
             " CAF worker(s)";
  memory_probe mem;
  auto plan = keyed_count_plan();
  engine_run eng(plan, s);
  auto reader = std::make_shared<pipeline::generator_reader>(
      plan, pipeline::make_datagen(generator_options(o, events), 0));
  auto& folded = eng.node_metrics().records_in("aggregate");
  const double cpu0 = process_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  eng.start({reader});
  if (!engine_run::wait_for(folded, events, std::chrono::seconds(600)) ||
      folded.Value() != static_cast<double>(events))
    throw std::runtime_error("datagen engine: " + std::to_string(folded.Value()) + " of " +
                             std::to_string(events) + " events folded in before the timeout");
  r.seconds = seconds_since(t0);
  r.cpu_s = process_cpu_seconds() - cpu0;
  r.events = events;
  const auto t1 = std::chrono::steady_clock::now();
  const auto drained = eng.drain();
  notes.push_back("engine drain (final state flush to RocksDB) took " +
                  std::to_string(seconds_since(t1)) + " s, not included in the timing");
  if (drained.processed != events)
    throw std::runtime_error("datagen engine: partition actors report " +
                             std::to_string(drained.processed) + " records, expected " +
                             std::to_string(events));
  r.latency = eng.latency();
  r.memory = mem.finish(); // before reading the state back, which allocates a second copy
  state = read_count_sum(eng.store(), "aggregate");
  return r;
}

/// Raw: generate the same records, ParseFromArray, fold into an unordered_map.
phase_result run_raw(const run_options& o, uint64_t events, totals_map& out) {
  auto gen = pipeline::make_datagen(generator_options(o, events), 0);
  return raw_count_sum(*gen, events,
                       "one loop: make_datagen records -> Event::ParseFromArray -> "
                       "std::unordered_map<std::string, {count,sum}>",
                       out);
}

} // namespace

phase_result raw_count_sum(pipeline::event_generator& gen, uint64_t events,
                           const std::string& detail, totals_map& out) {
  phase_result r;
  r.variant = "raw";
  r.detail = detail;
  memory_probe mem;
  totals_map map;
  latency_samples lat;
  proto::Event ev;
  std::string key, value;
  const double cpu0 = process_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t done = 0; done < events;) {
    const auto b0 = std::chrono::steady_clock::now();
    const uint64_t n = std::min<uint64_t>(raw_batch, events - done);
    for (uint64_t i = 0; i < n; ++i) {
      if (!gen.next(key, value) || !ev.ParseFromArray(value.data(), static_cast<int>(value.size())))
        throw std::runtime_error("raw loop: generator ended early or bad record");
      auto& t = map[ev.customer_id()];
      ++t.count;
      t.sum += ev.value();
    }
    done += n;
    lat.add(seconds_since(b0), n);
  }
  r.seconds = seconds_since(t0);
  r.cpu_s = process_cpu_seconds() - cpu0;
  r.events = events;
  r.latency = lat.percentiles();
  r.memory = mem.finish();
  out = std::move(map);
  return r;
}

scenario_result run_datagen(const run_options& opts) {
  scenario_result res;
  res.name = "datagen";
  const uint64_t events =
      opts.events ? opts.events : (opts.short_mode ? short_events : default_events);
  progress(opts, "datagen: engine, " + std::to_string(events) + " events over " +
                     std::to_string(opts.keys) + " keys");
  totals_map engine_state, raw_state;
  res.engine = run_engine(opts, events, engine_state, res.notes);
  progress(opts, "datagen: raw baseline");
  res.raw = run_raw(opts, events, raw_state);
  std::string why;
  res.results_equal = same_totals(engine_state, raw_state, why);
  if (!res.results_equal)
    res.notes.push_back("engine and raw differ: " + why);
  res.target = ">= 1.5 M events/s at " + std::to_string(opts.workers) + " worker(s)";
  res.target_met = res.engine.events_per_s() >= target_events_per_s;
  return res;
}

} // namespace keyflow::bench
