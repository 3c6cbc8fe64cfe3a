// Scenario "hotkey": the keyed count + sum of the datagen scenario over uniform keys and over
// input in which one key carries half of the events (--hot-share), with the partition
// actors' hot-key detection (a Space-Saving tracker per actor) on and off, next to the raw
// loop over both inputs; all in one process and one run. Every engine variant's state is
// checked against the raw loop over the same input.

#include <algorithm>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include "benchmarks/bench_pipelines.hpp"
#include "benchmarks/e2e_engine.hpp"
#include "benchmarks/e2e_scenarios.hpp"
#include "benchmarks/generators.hpp"
#include "core/key_group.hpp"
#include "pipeline/generator_reader.hpp"
#include "proto/event.pb.h"

namespace keyflow::bench {

namespace {

constexpr uint64_t default_events = 5'000'000;
constexpr uint64_t short_events = 1'000'000;
constexpr uint64_t seed = 42;
constexpr uint32_t raw_batch = 1024;        // the engine's default batch size
constexpr double detect_on = 0.2;           // wiring_params::hot_key_share's default
constexpr uint32_t max_parallelism = 128;   // keyed_count_plan()'s
constexpr uint64_t compared_records = 1000; // hot share 0 vs make_datagen, checked per run

/// What one variant runs.
struct variant_spec {
  hotkey_variant variant;
  bool hot;      // input with the hot key (else uniform)
  double detect; // partition actors' hot_key_share
};

/// Name of a variant in the table and the JSON.
const char* variant_name(hotkey_variant v) {
  switch (v) {
  case hotkey_variant::uniform:
    return "uniform";
  case hotkey_variant::hot:
    return "hot";
  case hotkey_variant::hot_off:
    return "hot, detect off";
  case hotkey_variant::uniform_off:
    return "uniform, detect off";
  case hotkey_variant::raw_hot:
    return "raw, hot";
  case hotkey_variant::raw_uniform:
    return "raw, uniform";
  }
  return "?";
}

/// Generator source actors (instances of the input).
uint32_t sources_of(const run_options& o) {
  return o.sources ? o.sources : o.workers;
}

/// Instance `i` of `n` of a variant's input (make_datagen's events, with or without the hot
/// key); together the instances emit `events`.
hot_datagen_options input_options(const run_options& o, uint64_t events, bool hot, uint32_t i = 0,
                                  uint32_t n = 1) {
  hot_datagen_options d;
  d.base.events = events / n + (i < events % n ? 1 : 0);
  d.base.keys = o.keys;
  d.base.seed = seed;
  d.hot_share = hot ? o.hot_share : 0.0;
  return d;
}

/// Throws unless the uniform input starts exactly like make_datagen's (the datagen scenario's).
void check_uniform_is_datagen(const run_options& o) {
  auto a = make_hot_datagen(input_options(o, compared_records, false));
  pipeline::datagen_options d;
  d.events = compared_records;
  d.keys = o.keys;
  d.seed = seed;
  auto b = pipeline::make_datagen(d);
  std::string ka, va, kb, vb;
  for (uint64_t i = 0; i < compared_records; ++i)
    if (a->next(ka, va) != b->next(kb, vb) || ka != kb || va != vb)
      throw std::runtime_error("hotkey: the uniform input differs from make_datagen's at " +
                               std::to_string(i));
}

/// Every instance of a variant's input, one after the other (what the raw loop reads).
class all_instances final : public pipeline::event_generator {
public:
  all_instances(const run_options& o, uint64_t events, bool hot) {
    const uint32_t n = sources_of(o);
    for (uint32_t i = 0; i < n; ++i)
      gens_.push_back(make_hot_datagen(input_options(o, events, hot, i, n), i));
  }
  bool next(std::string& key, std::string& value) override {
    for (; at_ < gens_.size(); ++at_)
      if (gens_[at_]->next(key, value))
        return true;
    return false;
  }

private:
  std::vector<std::unique_ptr<pipeline::event_generator>> gens_;
  size_t at_ = 0;
};

/// Share of the events that go to the busiest of `partitions` actors, from per-key counts.
double busiest_share(const totals_map& totals, uint32_t partitions, uint64_t events) {
  std::vector<uint64_t> per_actor(partitions, 0);
  for (const auto& [key, t] : totals)
    per_actor[actor_for_key_group(max_parallelism, partitions,
                                  key_group_of(key, max_parallelism))] += t.count;
  const auto top = *std::max_element(per_actor.begin(), per_actor.end());
  return events ? static_cast<double>(top) / static_cast<double>(events) : 0;
}

/// Engine: one generator source actor -> partition actors (validate in the source,
/// aggregate), hot-key detection at `spec.detect`; fills `out` and the state read back.
void run_engine(const run_options& o, const variant_spec& spec, uint64_t events, hotkey_phase& out,
                totals_map& state, std::vector<std::string>& notes) {
  auto& r = out.figures;
  r.variant = "engine";
  auto s = settings_from(o);
  s.hot_key_share = spec.detect;
  s.parallelism = std::min(s.parallelism, max_parallelism);
  const uint32_t n = sources_of(o);
  r.detail = std::to_string(n) + " generator_reader source actor(s) -> " +
             std::to_string(s.parallelism) + " partition actor(s), hot_key_share " +
             std::to_string(spec.detect);
  memory_probe mem;
  auto plan = keyed_count_plan();
  engine_run eng(plan, s);
  std::vector<std::shared_ptr<source_reader>> readers;
  for (uint32_t i = 0; i < n; ++i)
    readers.push_back(std::make_shared<pipeline::generator_reader>(
        plan, make_hot_datagen(input_options(o, events, spec.hot, i, n), i), i));
  auto& folded = eng.node_metrics().records_in("aggregate");
  const double cpu0 = process_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  eng.start(std::move(readers));
  if (!engine_run::wait_for(folded, events, std::chrono::seconds(600)) ||
      folded.Value() != static_cast<double>(events))
    throw std::runtime_error(std::string{"hotkey engine ("} + variant_name(spec.variant) +
                             "): " + std::to_string(folded.Value()) + " of " +
                             std::to_string(events) + " events folded in before the timeout");
  r.seconds = seconds_since(t0);
  r.cpu_s = process_cpu_seconds() - cpu0;
  r.events = events;
  const auto t1 = std::chrono::steady_clock::now();
  const auto drained = eng.drain();
  notes.push_back(std::string{variant_name(spec.variant)} + ": drain took " +
                  std::to_string(seconds_since(t1)) + " s, not timed");
  if (drained.processed != events)
    throw std::runtime_error(std::string{"hotkey engine ("} + variant_name(spec.variant) +
                             "): partition actors report " + std::to_string(drained.processed) +
                             " records, expected " + std::to_string(events));
  r.latency = eng.latency();
  r.memory = mem.finish();
  for (uint32_t i = 0; i < s.parallelism; ++i) {
    const auto name = "stage0/" + std::to_string(i); // actors/partition.cpp's label
    out.hot_detected += static_cast<uint64_t>(eng.node_metrics().hot_keys_detected(name).Value());
    out.top_share = std::max(out.top_share, eng.node_metrics().hot_key_share(name).Value());
  }
  state = read_count_sum(eng.store(), "aggregate");
}

/// Raw: the same records, ParseFromArray, fold into an unordered_map (datagen's raw loop).
phase_result run_raw(const run_options& o, bool hot, uint64_t events, totals_map& out) {
  phase_result r;
  r.variant = "raw";
  r.detail = "one loop: make_hot_datagen records (every instance) -> Event::ParseFromArray -> "
             "std::unordered_map<std::string, {count,sum}>";
  memory_probe mem;
  auto gen = std::make_unique<all_instances>(o, events, hot);
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
      if (!gen->next(key, value) ||
          !ev.ParseFromArray(value.data(), static_cast<int>(value.size())))
        throw std::runtime_error("hotkey raw: generator ended early or bad record");
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

/// a / b, 0 if b is 0.
double ratio(double a, double b) {
  return b > 0 ? a / b : 0;
}

/// The ratios one run gives.
struct hotkey_ratios {
  double uniform_over_hot = 0;     // engine, detection on; the aim for fanout: <= 2
  double hot_on_over_off = 0;      // hot input: detection on / off
  double uniform_on_over_off = 0;  // uniform input: detection on / off
  double hot_engine_over_raw = 0;  // hot input: engine (detection on) / raw
  double raw_uniform_over_hot = 0; // the raw loop's own uniform / hot
};

hotkey_ratios ratios_of(const hotkey_result& r) {
  using v = hotkey_variant;
  hotkey_ratios x;
  x.uniform_over_hot = ratio(r.events_per_s(v::uniform), r.events_per_s(v::hot));
  x.hot_on_over_off = ratio(r.events_per_s(v::hot), r.events_per_s(v::hot_off));
  x.uniform_on_over_off = ratio(r.events_per_s(v::uniform), r.events_per_s(v::uniform_off));
  x.hot_engine_over_raw = ratio(r.events_per_s(v::hot), r.events_per_s(v::raw_hot));
  x.raw_uniform_over_hot = ratio(r.events_per_s(v::raw_uniform), r.events_per_s(v::raw_hot));
  return x;
}

/// Median (upper for an even count); 0 if empty.
double median_of(std::vector<double> v) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// Medians of one variant over the runs.
struct variant_median {
  hotkey_variant variant{};
  double eps = 0, eps_min = 0, eps_max = 0, p50 = 0, p99 = 0, peak_mib = 0, cpu_us = 0;
};

std::vector<variant_median> variant_medians(const std::vector<hotkey_result>& results) {
  std::vector<variant_median> out;
  for (const auto& first : results.front().phases) {
    std::vector<double> eps, p50, p99, peak, cpu;
    for (const auto& r : results)
      for (const auto& p : r.phases)
        if (p.variant == first.variant) {
          eps.push_back(p.figures.events_per_s());
          p50.push_back(p.figures.latency.p50);
          p99.push_back(p.figures.latency.p99);
          peak.push_back(static_cast<double>(p.figures.memory.peak_rss_kb) / 1024.0);
          cpu.push_back(p.figures.cpu_us_per_event());
        }
    variant_median m;
    m.variant = first.variant;
    m.eps = median_of(eps);
    m.eps_min = *std::min_element(eps.begin(), eps.end());
    m.eps_max = *std::max_element(eps.begin(), eps.end());
    m.p50 = median_of(p50);
    m.p99 = median_of(p99);
    m.peak_mib = median_of(peak);
    m.cpu_us = median_of(cpu);
    out.push_back(m);
  }
  return out;
}

/// Medians of the per-run ratios.
hotkey_ratios median_ratios(const std::vector<hotkey_result>& results) {
  std::vector<double> a, b, c, d, e;
  for (const auto& r : results) {
    const auto x = ratios_of(r);
    a.push_back(x.uniform_over_hot);
    b.push_back(x.hot_on_over_off);
    c.push_back(x.uniform_on_over_off);
    d.push_back(x.hot_engine_over_raw);
    e.push_back(x.raw_uniform_over_hot);
  }
  return {median_of(a), median_of(b), median_of(c), median_of(d), median_of(e)};
}

/// The ratio line of a run or of the medians.
void print_ratios(const std::string& label, const hotkey_ratios& x) {
  std::printf("%s: uniform/hot = %.2f (aim for fanout: <= 2); detection on/off: hot %.3f, "
              "uniform %.3f; engine/raw on the hot input = %.2f; raw uniform/hot = %.2f\n",
              label.c_str(), x.uniform_over_hot, x.hot_on_over_off, x.uniform_on_over_off,
              x.hot_engine_over_raw, x.raw_uniform_over_hot);
}

} // namespace

double hotkey_result::events_per_s(hotkey_variant v) const {
  for (const auto& p : phases)
    if (p.variant == v)
      return p.figures.events_per_s();
  return 0;
}

hotkey_result run_hotkey(const run_options& opts, uint32_t run) {
  hotkey_result res;
  res.run = run;
  const uint64_t events =
      opts.events ? opts.events : (opts.short_mode ? short_events : default_events);
  res.partitions = std::min(opts.partitions ? opts.partitions : opts.workers, max_parallelism);
  res.sources = sources_of(opts);
  check_uniform_is_datagen(opts);
  // The raw loops first: their totals are what every engine variant must end with.
  totals_map expected[2]; // [hot]
  for (bool hot : {false, true}) {
    progress(opts, std::string{"hotkey: raw loop, "} + (hot ? "hot" : "uniform") + " input, " +
                       std::to_string(events) + " events over " + std::to_string(opts.keys) +
                       " keys");
    hotkey_phase p;
    p.variant = hot ? hotkey_variant::raw_hot : hotkey_variant::raw_uniform;
    p.hot_share = hot ? opts.hot_share : 0.0;
    p.figures = run_raw(opts, hot, events, expected[hot]);
    p.busiest_actor = busiest_share(expected[hot], res.partitions, events);
    res.phases.push_back(std::move(p));
  }
  const auto hot_key = pipeline::datagen_key_name(0);
  const auto hk = expected[1].find(hot_key);
  char buf[160];
  std::snprintf(buf, sizeof(buf), "hot input: key %s carries %.2f%% of the events", hot_key.c_str(),
                hk == expected[1].end()
                    ? 0.0
                    : 100.0 * static_cast<double>(hk->second.count) / static_cast<double>(events));
  res.notes.push_back(buf);
  // Engine variants; every other run in reverse order, so drift does not favour one.
  std::vector<variant_spec> specs{{hotkey_variant::uniform, false, detect_on},
                                  {hotkey_variant::hot, true, detect_on},
                                  {hotkey_variant::hot_off, true, 0.0},
                                  {hotkey_variant::uniform_off, false, 0.0}};
  if (run % 2 == 0)
    std::reverse(specs.begin(), specs.end());
  res.results_equal = true;
  for (const auto& spec : specs) {
    progress(opts, std::string{"hotkey: engine, "} + variant_name(spec.variant));
    hotkey_phase p;
    p.variant = spec.variant;
    p.hot_share = spec.hot ? opts.hot_share : 0.0;
    p.detect_share = spec.detect;
    totals_map state;
    run_engine(opts, spec, events, p, state, res.notes);
    p.busiest_actor = busiest_share(expected[spec.hot], res.partitions, events);
    std::string why;
    p.results_equal = same_totals(state, expected[spec.hot], why);
    if (!p.results_equal) {
      res.results_equal = false;
      res.notes.push_back(std::string{variant_name(spec.variant)} +
                          ": engine and raw differ: " + why);
    }
    res.phases.push_back(std::move(p));
  }
  return res;
}

void print_hotkey_table(const std::vector<hotkey_result>& results) {
  if (results.empty())
    return;
  double share = 0;
  for (const auto& p : results.front().phases)
    share = std::max(share, p.hot_share);
  std::printf("\nhotkey: keyed count + sum, one key with %.0f%% of the events vs uniform keys, "
              "hot-key detection on (%.1f) and off; %u source actor(s), %u partition actor(s)\n",
              share * 100, detect_on, results.front().sources, results.front().partitions);
  std::printf("%-9s %-20s %5s %6s %9s %7s %11s %8s %9s %9s %8s %8s %7s %4s %5s\n", "run", "variant",
              "hot", "detect", "events", "seconds", "events/s", "CPU us/e", "p50", "p99",
              "peak MiB", "grow MiB", "busiest", "det", "top");
  for (const auto& r : results) {
    const auto label = "hotkey#" + std::to_string(r.run);
    for (const auto& p : r.phases) {
      const auto& f = p.figures;
      const bool engine = f.variant == "engine";
      std::printf(
          "%-9s %-20s %4.0f%% %6s %9llu %7.3f %11.0f %8.2f %9s %9s %8.1f %8.1f %6.1f%% "
          "%4s %5s %s\n",
          label.c_str(), variant_name(p.variant), p.hot_share * 100,
          !engine              ? "-"
          : p.detect_share > 0 ? "on"
                               : "off",
          static_cast<unsigned long long>(f.events), f.seconds, f.events_per_s(),
          f.cpu_us_per_event(), format_latency(f.latency.p50).c_str(),
          format_latency(f.latency.p99).c_str(), static_cast<double>(f.memory.peak_rss_kb) / 1024.0,
          static_cast<double>(f.memory.growth_kb()) / 1024.0, p.busiest_actor * 100,
          engine ? std::to_string(p.hot_detected).c_str() : "-",
          engine ? (std::to_string(static_cast<int>(p.top_share * 100)) + "%").c_str() : "-",
          !engine           ? ""
          : p.results_equal ? "equal"
                            : "DIFFERS");
    }
    print_ratios(label, ratios_of(r));
  }
  for (const auto& r : results)
    for (const auto& n : r.notes)
      std::printf("note [hotkey#%u]: %s\n", r.run, n.c_str());
  std::printf("columns: busiest = share of the events routed to the busiest partition actor; "
              "det = hot keys the partition actors reported (keyflow_hot_keys_detected_total); "
              "top = their last keyflow_hot_key_share\n");
  if (results.size() > 1) {
    std::printf("medians of %zu runs:\n", results.size());
    for (const auto& m : variant_medians(results))
      std::printf("  %-20s %11.0f events/s (%.0f-%.0f), CPU %.2f us/e, p50 %s, p99 %s, "
                  "peak %.1f MiB\n",
                  variant_name(m.variant), m.eps, m.eps_min, m.eps_max, m.cpu_us,
                  format_latency(m.p50).c_str(), format_latency(m.p99).c_str(), m.peak_mib);
    print_ratios("  median ratios", median_ratios(results));
  }
  std::fflush(stdout);
}

nlohmann::ordered_json hotkey_to_json(const std::vector<hotkey_result>& results) {
  nlohmann::ordered_json j;
  double share = 0;
  for (const auto& p : results.empty() ? std::vector<hotkey_phase>{} : results.front().phases)
    share = std::max(share, p.hot_share);
  j["hot_share"] = share;
  j["hot_key_share_detection"] = detect_on;
  auto& runs = j["runs"] = nlohmann::ordered_json::array();
  auto ratios_json = [](const hotkey_ratios& x) {
    return nlohmann::ordered_json{{"uniform_over_hot", x.uniform_over_hot},
                                  {"hot_detection_on_over_off", x.hot_on_over_off},
                                  {"uniform_detection_on_over_off", x.uniform_on_over_off},
                                  {"hot_engine_over_raw", x.hot_engine_over_raw},
                                  {"raw_uniform_over_hot", x.raw_uniform_over_hot}};
  };
  for (const auto& r : results) {
    nlohmann::ordered_json run{{"run", r.run},
                               {"sources", r.sources},
                               {"partitions", r.partitions},
                               {"results_equal", r.results_equal},
                               {"notes", r.notes}};
    auto& phases = run["variants"] = nlohmann::ordered_json::array();
    for (const auto& p : r.phases) {
      const auto& f = p.figures;
      phases.push_back({{"variant", variant_name(p.variant)},
                        {"side", f.variant},
                        {"hot_share", p.hot_share},
                        {"hot_key_share_detection", p.detect_share},
                        {"events", f.events},
                        {"seconds", f.seconds},
                        {"events_per_s", f.events_per_s()},
                        {"cpu_us_per_event", f.cpu_us_per_event()},
                        {"latency_p50_s", f.latency.p50},
                        {"latency_p99_s", f.latency.p99},
                        {"latency_method", f.latency.method},
                        {"rss_peak_kib", f.memory.peak_rss_kb},
                        {"rss_growth_kib", f.memory.growth_kb()},
                        {"busiest_actor_share", p.busiest_actor},
                        {"hot_keys_detected", p.hot_detected},
                        {"top_hot_key_share", p.top_share},
                        {"results_equal", p.results_equal}});
    }
    run["ratios"] = ratios_json(ratios_of(r));
    runs.push_back(std::move(run));
  }
  if (!results.empty()) {
    auto& med = j["medians"] = nlohmann::ordered_json::array();
    for (const auto& m : variant_medians(results))
      med.push_back({{"variant", variant_name(m.variant)},
                     {"events_per_s", m.eps},
                     {"events_per_s_min", m.eps_min},
                     {"events_per_s_max", m.eps_max},
                     {"cpu_us_per_event", m.cpu_us},
                     {"latency_p50_s", m.p50},
                     {"latency_p99_s", m.p99},
                     {"rss_peak_mib", m.peak_mib}});
    j["median_ratios"] = ratios_json(median_ratios(results));
  }
  return j;
}

} // namespace keyflow::bench
