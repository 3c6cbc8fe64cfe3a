// Scenario "datagen": the engine fed by its in-process generator, against a hand-written
// loop that generates the same events and folds them into a std::unordered_map.

#include <algorithm>
#include <memory>
#include <stdexcept>

#include "benchmarks/e2e_engine.hpp"
#include "benchmarks/e2e_scenarios.hpp"
#include "core/datagen.hpp"

namespace keyflow::bench {

namespace {

constexpr uint64_t default_events = 10'000'000;
constexpr uint64_t short_events = 1'000'000;
constexpr uint64_t seed = 42;
constexpr uint32_t raw_batch = 1024; // the engine's default batch size
constexpr double target_events_per_s = 1.5e6;

/// The generator's random step (as in core/datagen.cpp), written out for the baseline.
inline uint64_t splitmix(uint64_t& x) noexcept {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// Engine: one datagen source actor -> partition actors, keyed count + sum over RocksDB.
phase_result run_engine(const run_options& o, uint64_t events, totals_map& state,
                        std::vector<std::string>& notes) {
  phase_result r;
  r.variant = "engine";
  const uint32_t partitions = partition_actors(o);
  r.detail = "datagen source actor -> " + std::to_string(partitions) +
             " partition actor(s) (validate+aggregate, no sinks), " + std::to_string(o.workers) +
             " CAF worker(s)";
  memory_probe mem;
  auto pipe = bench_pipeline();
  engine_run eng(pipe, o, 1);
  datagen_options d;
  d.events = events;
  d.keys = o.keys;
  d.seed = seed;
  auto reader = std::make_shared<datagen_reader>(d, 0);
  const double cpu0 = process_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  eng.add_source(reader);
  if (!eng.wait_folded(events, std::chrono::seconds(600)))
    throw std::runtime_error("datagen engine: " + std::to_string(eng.folded()) + " of " +
                             std::to_string(events) + " events folded in before the timeout");
  r.seconds = seconds_since(t0);
  r.cpu_s = process_cpu_seconds() - cpu0;
  r.events = events;
  const auto t1 = std::chrono::steady_clock::now();
  const auto processed = eng.drain();
  notes.push_back("engine drain (final state flush to RocksDB) took " +
                  std::to_string(seconds_since(t1)) + " s, not included in the timing");
  if (processed != events)
    throw std::runtime_error("datagen engine: partition actors report " +
                             std::to_string(processed) + " records, expected " +
                             std::to_string(events));
  r.latency = eng.latency();
  r.memory = mem.finish(); // before reading the state back, which allocates a second copy
  state = eng.read_state();
  return r;
}

/// Raw: generate the same events in batches of 1024 and fold them into an unordered_map.
phase_result run_raw(const run_options& o, uint64_t events, totals_map& out) {
  phase_result r;
  r.variant = "raw";
  r.detail = "one loop: splitmix events -> std::unordered_map<std::string, {count,sum}>";
  memory_probe mem;
  std::vector<std::string> keys;
  keys.reserve(o.keys);
  for (uint32_t k = 0; k < o.keys; ++k)
    keys.push_back(datagen_reader::key_name(k));
  totals_map map;
  latency_samples lat;
  uint64_t rng = seed * 1000003; // datagen_reader's seeding for reader index 0
  const double cpu0 = process_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t done = 0; done < events;) {
    const auto b0 = std::chrono::steady_clock::now();
    const uint64_t n = std::min<uint64_t>(raw_batch, events - done);
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t x = splitmix(rng);
      auto& t = map[keys[x % o.keys]];
      ++t.count;
      t.sum += static_cast<double>((x >> 32) % 2001) * 0.25;
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

} // namespace

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
