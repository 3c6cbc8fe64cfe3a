// keyflow-bench: the end-to-end harness. Runs each scenario's engine measurement and its raw
// hand-written baseline in one process and one run, checks both end with the same per-key
// totals, and prints events/s, p50/p99 latency, peak RSS and the engine/raw ratio.
// Exit status: 0 if every scenario ran and its results agree; 1 on an error or a mismatch.
// Timings never fail the run (targets are reported, not enforced).

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "benchmarks/bench_util.hpp"
#include "benchmarks/e2e_scenarios.hpp"

namespace {

using namespace keyflow::bench;

/// Command line of keyflow-bench.
struct cli_options {
  run_options run;                           ///< settings passed to the scenarios
  std::string scenario = "all";              ///< all, datagen or kafka
  std::string json;                          ///< JSON report path ("" = none)
  std::vector<std::string> kafka_properties; ///< raw KEY=VALUE strings
};

/// Declares the options on `app`.
void add_options(CLI::App& app, cli_options& o) {
  app.option_defaults()->always_capture_default();
  app.add_option("--scenario", o.scenario, "scenario to run: all, datagen or kafka")
      ->check(CLI::IsMember({"all", "datagen", "kafka"}));
  app.add_option("--events", o.run.events,
                 "events per scenario (0 = default: datagen 10M, kafka 1M; --short 1M / 200k)");
  app.add_option("--keys", o.run.keys, "distinct keys (customers)")
      ->check(CLI::Range(1u, 10'000'000u));
  app.add_option("--workers", o.run.workers, "CAF scheduler threads of the engine")
      ->check(CLI::Range(1u, 256u));
  app.add_option("--partitions", o.run.partitions, "partition actors (0 = one per worker)")
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
  app.add_option("--kafka-property", o.kafka_properties,
                 "KEY=VALUE for every consumer of the kafka scenario, engine and raw (repeatable)")
      ->check([](const std::string& kv) {
        return kv.find('=') == std::string::npos || kv.front() == '=' ? "expected KEY=VALUE"
                                                                      : std::string{};
      });
  app.add_flag("--short", o.run.short_mode, "CI-sized run (well under 20 s)");
  app.add_flag("--quiet", o.run.quiet, "no progress lines on stderr");
  app.add_option("--json", o.json, "also write the figures to this JSON file");
}

/// Runs the selected scenarios; returns the exit status.
int run(const cli_options& o) {
  std::printf("keyflow-bench on %s\n", machine_summary().c_str());
  std::fflush(stdout);
  std::vector<scenario_result> results;
  for (uint32_t i = 1; i <= o.run.repeat; ++i) {
    if (o.scenario == "all" || o.scenario == "datagen") {
      results.push_back(run_datagen(o.run));
      results.back().run = i;
    }
    if (o.scenario == "all" || o.scenario == "kafka") {
      results.push_back(run_kafka(o.run));
      results.back().run = i;
    }
  }
  print_table(results);
  if (o.run.repeat > 1)
    print_medians(medians(results));
  if (!o.json.empty()) {
    std::ofstream out(o.json, std::ios::trunc);
    out << to_json(results, o.run).dump(2) << "\n";
    if (!out.flush()) {
      std::cerr << "keyflow-bench: cannot write '" << o.json << "'\n";
      return 1;
    }
  }
  for (const auto& r : results)
    if (!r.results_equal)
      return 1;
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"keyflow-bench: Keyflow engine vs. raw hand-written baselines, end to end"};
  cli_options o;
  add_options(app, o);
  CLI11_PARSE(app, argc, argv);
  for (const auto& kv : o.kafka_properties) {
    auto eq = kv.find('=');
    o.run.kafka_properties.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  spdlog::set_level(spdlog::level::warn);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "keyflow-bench: " << e.what() << "\n";
    return 1;
  }
}
