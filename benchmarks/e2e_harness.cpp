// keyflow-bench: the end-to-end harness. Runs each scenario's engine measurement and its raw
// hand-written baseline in one process and one run, checks both end with the same results,
// and prints events/s, p50/p99 latency, peak RSS and the engine/raw ratio.
//   keyflow-bench [--scenario all|datagen|kafka]       keyed count+sum: generator, Kafka
//   keyflow-bench --scenario hotkey                     the same, one hot key vs uniform keys,
//                                                       hot-key fanout and detection on/off
//   keyflow-bench nexmark --query q5 | --all            Nexmark q1 q2 q5 q7 q11 and cdp
// Exit status: 0 if everything ran and the results agree; 1 on an error or a mismatch.
// Timings never fail the run (targets are reported, not enforced).

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "benchmarks/bench_util.hpp"
#include "benchmarks/e2e_nexmark.hpp"
#include "benchmarks/e2e_scenarios.hpp"
#include "benchmarks/nexmark_raw.hpp"

namespace {

using namespace keyflow::bench;

/// Command line of keyflow-bench.
struct cli_options {
  run_options run;                           ///< settings passed to the scenarios
  std::string scenario = "all";              ///< all, datagen, kafka or hotkey
  std::string json;                          ///< JSON report path ("" = none)
  std::vector<std::string> kafka_properties; ///< raw KEY=VALUE strings
  std::string query;                         ///< nexmark: one query (q1 q2 q5 q7 q11 cdp)
  bool all_queries = false;                  ///< nexmark: every query
};

/// Options every mode takes.
void add_common(CLI::App& app, cli_options& o) {
  app.option_defaults()->always_capture_default();
  app.add_option("--events", o.run.events,
                 "events per scenario or query (0 = default: datagen 10M, kafka 1M, hotkey 5M "
                 "per variant, nexmark 10M, cdp 2M; --short 1M / 200k / 600k / 200k / 100k)");
  app.add_option("--keys", o.run.keys, "distinct keys (customers) of datagen, kafka and cdp")
      ->check(CLI::Range(1u, 10'000'000u));
  app.add_option("--workers", o.run.workers, "CAF scheduler threads of the engine")
      ->check(CLI::Range(1u, 256u));
  app.add_option("--partitions", o.run.partitions,
                 "partition actors per stage (0 = one per worker)")
      ->check(CLI::Range(0u, 128u));
  app.add_option("--batch-size", o.run.batch_size, "engine: max records per batch")
      ->check(CLI::Range(1u, 1'000'000u));
  app.add_option("--credits", o.run.credits, "engine: batches in flight per link")
      ->check(CLI::Range(1u, 10'000u));
  app.add_option("--flush-interval-ms", o.run.flush_interval_ms,
                 "engine: keyed-state write-back period")
      ->check(CLI::Range(1u, 3'600'000u));
  app.add_option("--repeat", o.run.repeat, "runs of each scenario; medians are printed too")
      ->check(CLI::Range(1u, 100u));
  app.add_flag("--short", o.run.short_mode, "CI-sized run (well under 20 s)");
  app.add_flag("--quiet", o.run.quiet, "no progress lines on stderr");
  app.add_option("--json", o.json, "also write the figures to this JSON file");
}

/// Declares the options of the keyed count+sum scenarios on `app`.
void add_options(CLI::App& app, cli_options& o) {
  add_common(app, o);
  app.add_option("--scenario", o.scenario, "scenario to run: all, datagen, kafka or hotkey")
      ->check(CLI::IsMember({"all", "datagen", "kafka", "hotkey"}));
  app.add_option("--hot-share", o.run.hot_share,
                 "hotkey: share of the events carrying the hot key (the rest: uniform keys)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--sources", o.run.sources, "hotkey: generator source actors (0 = one per worker)")
      ->check(CLI::Range(0u, 256u));
  app.add_option("--kafka-property", o.kafka_properties,
                 "KEY=VALUE for every consumer of the kafka scenario, engine and raw (repeatable)")
      ->check([](const std::string& kv) {
        return kv.find('=') == std::string::npos || kv.front() == '=' ? "expected KEY=VALUE"
                                                                      : std::string{};
      });
}

/// Declares the options of `keyflow-bench nexmark` on `sub`.
void add_nexmark_options(CLI::App& sub, cli_options& o) {
  add_common(sub, o);
  sub.add_option("--query", o.query, "query to run: q1, q2, q5, q7, q11 or cdp")
      ->check(CLI::IsMember({"q1", "q2", "q5", "q7", "q11", "cdp"}));
  sub.add_flag("--all", o.all_queries, "run q1, q2, q5, q7, q11 and cdp");
  sub.add_option("--sources", o.run.sources, "generator source actors (0 = one per worker)")
      ->check(CLI::Range(0u, 256u));
  sub.add_option("--event-rate", o.run.event_rate,
                 "Nexmark event-time rate (events per second of event time)")
      ->check(CLI::Range(1u, 1'000'000'000u));
  sub.add_flag("--engine-only", o.run.engine_only,
               "skip the raw baselines and the result check (for profiling the engine)");
}

/// Runs `keyflow-bench nexmark`; returns the exit status.
int run_nexmark(const cli_options& o) {
  std::vector<std::string> queries = nexmark_queries();
  queries.push_back("cdp");
  if (!o.all_queries) {
    if (o.query.empty())
      throw std::invalid_argument("nexmark: give --query Q or --all");
    queries = {o.query};
  }
  std::printf("keyflow-bench nexmark on %s\n", machine_summary().c_str());
  std::fflush(stdout);
  std::vector<query_result> results;
  for (uint32_t i = 1; i <= o.run.repeat; ++i)
    for (const auto& q : queries) {
      results.push_back(q == "cdp" ? run_cdp(o.run) : run_nexmark_query(o.run, q));
      results.back().run = i;
    }
  keyflow::nexmark_options g;
  g.events = results.front().engine.events;
  g.events_per_second = o.run.event_rate;
  progress(o.run, "generator alone");
  const auto gen = run_generator_only(g);
  print_query_table(results, &gen);
  if (!o.json.empty()) {
    std::ofstream out(o.json, std::ios::trunc);
    out << queries_to_json(results, &gen, o.run).dump(2) << "\n";
    if (!out.flush()) {
      std::cerr << "keyflow-bench: cannot write '" << o.json << "'\n";
      return 1;
    }
  }
  for (const auto& r : results)
    if (r.compared && !r.results_equal)
      return 1;
  return 0;
}

/// Runs the selected scenarios; returns the exit status.
int run(const cli_options& o) {
  std::printf("keyflow-bench on %s\n", machine_summary().c_str());
  std::fflush(stdout);
  std::vector<scenario_result> results;
  std::vector<hotkey_result> hot;
  for (uint32_t i = 1; i <= o.run.repeat; ++i) {
    if (o.scenario == "all" || o.scenario == "datagen") {
      results.push_back(run_datagen(o.run));
      results.back().run = i;
    }
    if (o.scenario == "all" || o.scenario == "kafka") {
      results.push_back(run_kafka(o.run));
      results.back().run = i;
    }
    if (o.scenario == "all" || o.scenario == "hotkey")
      hot.push_back(run_hotkey(o.run, i));
  }
  if (!results.empty()) {
    print_table(results);
    if (o.run.repeat > 1)
      print_medians(medians(results));
  }
  print_hotkey_table(hot);
  if (!o.json.empty()) {
    std::ofstream out(o.json, std::ios::trunc);
    auto j = to_json(results, o.run);
    if (!hot.empty())
      j["hotkey"] = hotkey_to_json(hot);
    out << j.dump(2) << "\n";
    if (!out.flush()) {
      std::cerr << "keyflow-bench: cannot write '" << o.json << "'\n";
      return 1;
    }
  }
  for (const auto& r : results)
    if (!r.results_equal)
      return 1;
  for (const auto& r : hot)
    if (!r.results_equal)
      return 1;
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"keyflow-bench: Keyflow engine vs. raw hand-written baselines, end to end"};
  cli_options o;
  add_options(app, o);
  auto* nexmark = app.add_subcommand(
      "nexmark", "Nexmark q1 q2 q5 q7 q11 and cdp (config/pipelines/) over the in-process "
                 "generator, each beside a raw baseline and Flink 1.13's figures per core");
  add_nexmark_options(*nexmark, o);
  CLI11_PARSE(app, argc, argv);
  for (const auto& kv : o.kafka_properties) {
    auto eq = kv.find('=');
    o.run.kafka_properties.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  spdlog::set_level(spdlog::level::warn);
  try {
    return nexmark->parsed() ? run_nexmark(o) : run(o);
  } catch (const std::exception& e) {
    std::cerr << "keyflow-bench: " << e.what() << "\n";
    return 1;
  }
}
