// keyflow-bench nexmark: the Nexmark queries of config/pipelines/nexmark/ run by the engine
// over in-process generator sources, each beside its raw baseline (nexmark_raw.cpp).

#include "benchmarks/e2e_nexmark.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include "benchmarks/bench_pipelines.hpp"
#include "benchmarks/generators.hpp"
#include "benchmarks/nexmark_raw.hpp"

namespace keyflow::bench {

namespace {

constexpr uint64_t default_events = 10'000'000;
constexpr uint64_t short_events = 200'000;

/// Median (upper middle) of `v`; 0 if empty.
double median_of(std::vector<double> v) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// "1.23 M", "456 k" for the table.
std::string si(double v) {
  char buf[32];
  if (v >= 1e6)
    std::snprintf(buf, sizeof(buf), "%.2f M", v / 1e6);
  else if (v >= 1e3)
    std::snprintf(buf, sizeof(buf), "%.0f k", v / 1e3);
  else
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  return buf;
}

/// "1.23x".
std::string times(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2fx", v);
  return buf;
}

} // namespace

double flink_per_core(const std::string& query) {
  // Flink 1.13 Nexmark results per core (events/s), as published with the Nexmark
  // benchmark suite for Flink.
  if (query == "q1")
    return 158e3;
  if (query == "q2")
    return 175e3;
  if (query == "q5")
    return 22e3;
  if (query == "q7")
    return 12e3;
  if (query == "q11")
    return 40e3;
  return 0;
}

engine_phase run_generated(std::shared_ptr<const pipeline::plan> plan, const engine_settings& s,
                           std::vector<std::unique_ptr<pipeline::event_generator>> generators,
                           uint64_t events) {
  engine_phase out;
  auto& r = out.phase;
  r.variant = "engine";
  memory_probe mem;
  {
    engine_run eng(plan, s);
    auto emitted = std::make_shared<std::atomic<uint64_t>>(0);
    std::vector<std::shared_ptr<source_reader>> readers;
    for (size_t i = 0; i < generators.size(); ++i)
      readers.push_back(std::make_shared<pipeline::generator_reader>(
          plan, std::make_unique<counted_generator>(std::move(generators[i]), emitted),
          static_cast<uint32_t>(i)));
    const double cpu0 = process_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    eng.start(std::move(readers));
    while (emitted->load(std::memory_order_relaxed) < events) {
      if (seconds_since(t0) > 900)
        throw std::runtime_error("engine: " + std::to_string(emitted->load()) + " of " +
                                 std::to_string(events) + " events generated before the timeout");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const auto drained = eng.drain();
    r.seconds = seconds_since(t0);
    r.cpu_s = process_cpu_seconds() - cpu0;
    r.events = drained.read;
    if (drained.read != events)
      throw std::runtime_error("engine: sources read " + std::to_string(drained.read) + " of " +
                               std::to_string(events) + " events");
    out.processed = drained.processed;
    r.latency = eng.latency();
    const auto& pl = eng.plan();
    for (size_t i = 0; i < pl.sinks.size(); ++i) {
      out.sinks.push_back(eng.sink(i).digest());
      out.sink_records.push_back(eng.sink(i).records.load());
    }
    out.dead_letters = eng.dead_letters().records.load();
    out.sink_latency = pl.sinks.empty() ? latency_figures{} : eng.sink(0).latency.percentiles();
    r.memory = mem.finish();
  }
  return out;
}

query_result run_nexmark_query(const run_options& o, const std::string& query) {
  query_result res;
  res.query = query;
  const uint64_t events = o.events ? o.events : (o.short_mode ? short_events : default_events);
  auto plan = load_repo_plan("nexmark/" + query + ".yaml", true);
  const auto s = settings_from(o);
  res.sources = o.sources ? o.sources : o.workers;
  res.parallelism = std::min(s.parallelism, plan->cfg.max_parallelism);
  res.stages = static_cast<uint32_t>(plan->stages);
  nexmark_options g;
  g.events = events;
  g.events_per_second = o.event_rate;
  g.instances = res.sources;
  progress(o, "nexmark " + query + ": engine, " + std::to_string(events) + " events, " +
                  std::to_string(res.sources) + " source(s), " + std::to_string(o.workers) +
                  " worker(s)");
  std::vector<std::unique_ptr<pipeline::event_generator>> gens;
  for (uint32_t i = 0; i < res.sources; ++i) {
    g.instance = i;
    gens.push_back(std::make_unique<nexmark_events>(g));
  }
  auto eng = run_generated(plan, s, std::move(gens), events);
  res.engine = eng.phase;
  res.engine.detail = std::to_string(res.sources) + " generator source(s) -> " +
                      std::to_string(res.stages) + " stage(s) x " +
                      std::to_string(res.parallelism) + " partition actor(s) -> counting sink, " +
                      std::to_string(o.workers) + " CAF worker(s)";
  res.sink_latency = eng.sink_latency;
  res.outputs = eng.sink_records.empty() ? 0 : eng.sink_records[0];
  res.dead_letters = eng.dead_letters;
  res.engine_digest = eng.sinks.empty() ? result_digest{} : eng.sinks[0];

  if (o.engine_only) {
    res.compared = false;
    res.notes.push_back("--engine-only: no raw baseline, results not compared");
    return res;
  }
  progress(o, "nexmark " + query + ": raw baseline");
  const int64_t ooo = plan->cfg.source.watermark.max_out_of_orderness_ms;
  g.instance = 0;
  auto raw = run_nexmark_raw(query, g, ooo, final_source_time(g, res.sources));
  res.raw = raw.phase;
  res.raw_digest = raw.digest;
  res.results_equal = res.engine_digest == res.raw_digest && res.dead_letters == 0;
  res.notes.push_back("sink '" + plan->sinks[0].cfg->id +
                      "' (kafka) replaced by a counting sink; results compared as an "
                      "order-independent digest of (key, written fields): engine " +
                      std::to_string(res.engine_digest.count) + " records, raw " +
                      std::to_string(res.raw_digest.count) +
                      (res.engine_digest == res.raw_digest ? ", equal" : ", DIFFERENT"));
  if (res.dead_letters != 0)
    res.notes.push_back(std::to_string(res.dead_letters) +
                        " dead letters (late or rejected records): expected none");
  return res;
}

void print_query_table(const std::vector<query_result>& results, const phase_result* generator) {
  std::printf("\n%-5s %9s %10s %5s %9s %9s %9s %6s %9s %8s %9s %9s %8s %s\n", "query", "events",
              "Keyflow/s", "cores", "per core", "raw ev/s", "raw/core", "K/raw", "Flink/core",
              "K/Flink", "p50", "p99", "RSS MiB", "results");
  for (const auto& r : results) {
    const double f = flink_per_core(r.query);
    std::printf("%-5s %9llu %10s %5.2f %9s %9s %9s %6.2f %9s %8s %9s %9s %8.0f %s\n",
                r.run > 1 ? (r.query + "#" + std::to_string(r.run)).c_str() : r.query.c_str(),
                static_cast<unsigned long long>(r.engine.events),
                si(r.engine.events_per_s()).c_str(), r.cores_used(), si(r.per_core()).c_str(),
                si(r.raw.events_per_s()).c_str(), si(r.raw_per_core()).c_str(), r.ratio_to_raw(),
                f > 0 ? si(f).c_str() : "-", f > 0 ? times(r.ratio_to_flink()).c_str() : "-",
                format_latency(r.engine.latency.p50).c_str(),
                format_latency(r.engine.latency.p99).c_str(),
                static_cast<double>(r.engine.memory.peak_rss_kb) / 1024.0,
                !r.compared       ? "not compared"
                : r.results_equal ? "equal"
                                  : "DIFFER");
  }
  // Medians when a query ran more than once.
  std::vector<std::string> names;
  for (const auto& r : results)
    if (std::find(names.begin(), names.end(), r.query) == names.end())
      names.push_back(r.query);
  for (const auto& q : names) {
    std::vector<double> eps, pc, raw, ratio, fl;
    for (const auto& r : results)
      if (r.query == q) {
        eps.push_back(r.engine.events_per_s());
        pc.push_back(r.per_core());
        raw.push_back(r.raw.events_per_s());
        ratio.push_back(r.ratio_to_raw());
        fl.push_back(r.ratio_to_flink());
      }
    if (eps.size() < 2)
      continue;
    std::printf("median of %zu [%s]: Keyflow %s events/s (%s .. %s), per core %s, raw %s, "
                "Keyflow/raw %.2f, Keyflow/Flink per core %.2fx\n",
                eps.size(), q.c_str(), si(median_of(eps)).c_str(),
                si(*std::min_element(eps.begin(), eps.end())).c_str(),
                si(*std::max_element(eps.begin(), eps.end())).c_str(), si(median_of(pc)).c_str(),
                si(median_of(raw)).c_str(), median_of(ratio), median_of(fl));
  }
  if (generator != nullptr && generator->seconds > 0)
    std::printf("generator alone (nexmark_generator: generate + serialize, 1 thread): %s events/s "
                "(%.0f ns/event), part of every Keyflow and raw figure above\n",
                si(generator->events_per_s()).c_str(),
                generator->cpu_s * 1e9 /
                    static_cast<double>(std::max<uint64_t>(1, generator->events)));
  std::printf("Keyflow/s: events/s from spawning the sources until the pipeline is drained (every "
              "result at the sinks, state written to RocksDB). cores = process CPU s / wall s "
              "(generator included); per core = events per CPU second. p50/p99: "
              "keyflow_processing_latency_seconds (buckets from 100 us). Flink/core: Flink 1.13's "
              "published Nexmark throughput per core. Sinks are counting sinks: no Kafka/Redis "
              "output I/O is measured.\n");
  for (const auto& r : results) {
    const auto label = r.run > 1 ? r.query + "#" + std::to_string(r.run) : r.query;
    std::printf("note [%s]: %s; %s; raw: %s\n", label.c_str(), r.engine.detail.c_str(),
                ("sink latency p50 " + format_latency(r.sink_latency.p50) + " p99 " +
                 format_latency(r.sink_latency.p99))
                    .c_str(),
                r.raw.detail.c_str());
    for (const auto& n : r.notes)
      std::printf("note [%s]: %s\n", label.c_str(), n.c_str());
  }
  std::fflush(stdout);
}

nlohmann::ordered_json queries_to_json(const std::vector<query_result>& results,
                                       const phase_result* generator, const run_options& o) {
  auto phase = [](const phase_result& p) {
    return nlohmann::ordered_json{{"detail", p.detail},
                                  {"events", p.events},
                                  {"seconds", p.seconds},
                                  {"events_per_s", p.events_per_s()},
                                  {"cpu_seconds", p.cpu_s},
                                  {"latency_p50_s", p.latency.p50},
                                  {"latency_p99_s", p.latency.p99},
                                  {"latency_method", p.latency.method},
                                  {"rss_peak_kib", p.memory.peak_rss_kb},
                                  {"rss_growth_kib", p.memory.growth_kb()}};
  };
  nlohmann::ordered_json j;
  j["machine"] = machine_summary();
  j["options"] = {{"events", o.events},         {"workers", o.workers},
                  {"sources", o.sources},       {"partitions", o.partitions},
                  {"batch_size", o.batch_size}, {"credits", o.credits},
                  {"event_rate", o.event_rate}, {"flush_interval_ms", o.flush_interval_ms},
                  {"short", o.short_mode}};
  if (generator != nullptr)
    j["generator"] = phase(*generator);
  auto& list = j["queries"] = nlohmann::ordered_json::array();
  for (const auto& r : results) {
    nlohmann::ordered_json q;
    q["query"] = r.query;
    q["run"] = r.run;
    q["engine"] = phase(r.engine);
    q["engine"]["cores_used"] = r.cores_used();
    q["engine"]["events_per_core_s"] = r.per_core();
    q["engine"]["sink_latency_p50_s"] = r.sink_latency.p50;
    q["engine"]["sink_latency_p99_s"] = r.sink_latency.p99;
    q["raw"] = phase(r.raw);
    q["ratio_to_raw"] = r.ratio_to_raw();
    q["flink_1_13_per_core"] = flink_per_core(r.query);
    q["ratio_to_flink_per_core"] = r.ratio_to_flink();
    q["outputs"] = r.outputs;
    q["dead_letters"] = r.dead_letters;
    q["compared"] = r.compared;
    q["results_equal"] = r.results_equal;
    q["notes"] = r.notes;
    list.push_back(std::move(q));
  }
  return j;
}

} // namespace keyflow::bench
