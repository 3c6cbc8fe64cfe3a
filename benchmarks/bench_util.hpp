#pragma once
/// \file
/// Shared pieces of the end-to-end harness (keyflow-bench): per-phase memory probes,
/// latency percentiles (from a Prometheus histogram or from exact samples), result records,
/// the printed table and the JSON report.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <prometheus/client_metric.h>

namespace keyflow::bench {

/// Command-line settings shared by all scenarios.
struct run_options {
  uint64_t events = 0;               ///< events per scenario; 0 = the scenario's default
  uint32_t keys = 100'000;           ///< distinct keys (customers)
  uint32_t workers = 1;              ///< CAF scheduler threads for the engine
  uint32_t partitions = 0;           ///< partition actors; 0 = one per worker
  uint32_t batch_size = 1024;        ///< engine: max records a source reads per batch
  uint32_t credits = 4;              ///< engine: unanswered batches per sender->receiver link
  uint32_t flush_interval_ms = 1000; ///< engine: keyed-state write-back period (keyflowd default)
  uint32_t sources = 0;              ///< nexmark/cdp: generator source actors; 0 = one per worker
  uint32_t event_rate = 10'000;      ///< nexmark: event-time rate of the generator (events/s)
  bool engine_only = false;          ///< nexmark: skip the raw baselines (profiling)
  bool short_mode = false;           ///< CI-sized run
  bool quiet = false;                ///< no progress lines on stderr
  uint32_t repeat = 1;               ///< runs of each scenario (medians are reported)
  double hot_share = 0.5;            ///< hotkey: share of the events carrying the hot key
  /// --kafka-property overrides for every consumer of the kafka scenario (engine and raw).
  std::vector<std::pair<std::string, std::string>> kafka_properties;
};

/// Per-key totals both the engine and the raw baselines must agree on.
struct key_totals {
  uint64_t count = 0; ///< events folded in
  double sum = 0;     ///< sum of their values
};

/// Key -> totals, as produced by a raw baseline or read back from the engine's state.
using totals_map = std::unordered_map<std::string, key_totals>;

/// Compares two result maps; on a difference returns false and describes the first one.
bool same_totals(const totals_map& a, const totals_map& b, std::string& why);

/// Memory figures of one phase, in KiB.
struct memory_figures {
  long start_rss_kb = 0;  ///< VmRSS when the phase began
  long peak_rss_kb = 0;   ///< VmHWM during the phase (process-wide peak if it could not be reset)
  long end_rss_kb = 0;    ///< VmRSS when the phase ended
  bool peak_reset = true; ///< false if VmHWM could not be reset, so the peak may predate the phase
  /// Peak growth over the start of the phase.
  long growth_kb() const noexcept { return peak_rss_kb - start_rss_kb; }
};

/// Reads one "Field:   N kB" line of /proc/self/status; -1 if absent.
long read_status_kb(std::string_view field);

/// Measures a phase's memory: trims malloc, resets VmHWM (clear_refs 5), records VmRSS.
class memory_probe {
public:
  /// Starts the phase now.
  memory_probe();
  /// Ends the phase and returns its figures.
  memory_figures finish() const;

private:
  long start_kb_;
  bool reset_;
};

/// Latency percentiles, seconds.
struct latency_figures {
  double p50 = 0;     ///< median
  double p99 = 0;     ///< 99th percentile
  uint64_t count = 0; ///< observations behind the figures
  std::string method; ///< how they were obtained
};

/// Percentiles of a Prometheus histogram, interpolating linearly inside a bucket.
latency_figures histogram_percentiles(const prometheus::ClientMetric& m);

/// Exact latency samples with weights (e.g. one sample per batch, weight = records).
class latency_samples {
public:
  /// Records `weight` observations of `seconds`.
  void add(double seconds, uint64_t weight) { samples_.emplace_back(seconds, weight); }
  /// Weighted p50/p99 of the samples.
  latency_figures percentiles() const;

private:
  std::vector<std::pair<double, uint64_t>> samples_;
};

/// Seconds as a latency for tables: "850 us" below 1 ms, else "1.25 ms".
std::string format_latency(double s);

/// CPU seconds (user + system) the whole process has used so far, all threads.
double process_cpu_seconds();

/// CPU seconds (user + system) the calling thread has used so far.
double thread_cpu_seconds();

/// Seconds elapsed since `t0` on the steady clock.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Figures of one measured side (the engine or the raw baseline) of a scenario.
struct phase_result {
  std::string variant;   ///< "engine" or "raw"
  uint64_t events = 0;   ///< events processed in the timed part
  double seconds = 0;    ///< duration of the timed part
  double startup_s = -1; ///< time to the first record, not in `seconds` (-1: not split off)
  double cpu_s = 0; ///< process CPU (all threads, incl. the in-process broker) in the timed part
  latency_figures latency; ///< p50/p99
  memory_figures memory;   ///< RSS of the whole phase (setup included)
  std::string detail;      ///< what exactly ran
  /// Process CPU per event in the timed part, microseconds.
  double cpu_us_per_event() const {
    return events > 0 ? cpu_s * 1e6 / static_cast<double>(events) : 0;
  }
  /// Throughput of the timed part.
  double events_per_s() const { return seconds > 0 ? static_cast<double>(events) / seconds : 0; }
};

/// Both sides of one scenario and the correctness verdict.
struct scenario_result {
  std::string name;               ///< "datagen" or "kafka"
  uint32_t run = 1;               ///< 1-based repetition (--repeat)
  phase_result engine;            ///< Keyflow actors
  phase_result raw;               ///< hand-written baseline
  bool results_equal = false;     ///< per-key count and sum agree everywhere
  std::string target;             ///< what the engine should reach, e.g. ">= 1.5 M events/s"
  bool target_met = false;        ///< informational only: timings never fail the run
  std::vector<std::string> notes; ///< extra facts (drain time, watermarks, ...)
  /// Throughput ratio engine / raw.
  double ratio() const {
    return raw.events_per_s() > 0 ? engine.events_per_s() / raw.events_per_s() : 0;
  }
};

/// Prints the final table of all scenarios (and runs) to stdout.
void print_table(const std::vector<scenario_result>& results);

/// Median figures of the runs of one scenario.
struct scenario_median {
  std::string name;      ///< scenario
  uint32_t runs = 0;     ///< runs behind the medians
  double engine_eps = 0; ///< median engine events/s
  double raw_eps = 0;    ///< median raw events/s
  double ratio = 0;      ///< median of the per-run ratios
  double engine_p50 = 0; ///< median engine p50 (s)
  double engine_p99 = 0; ///< median engine p99 (s)
  double raw_p50 = 0;    ///< median raw p50 (s)
  double raw_p99 = 0;    ///< median raw p99 (s)
  double engine_min = 0; ///< slowest engine run (events/s)
  double engine_max = 0; ///< fastest engine run (events/s)
};

/// Medians per scenario, in order of first appearance.
std::vector<scenario_median> medians(const std::vector<scenario_result>& results);

/// Prints the medians (only useful with more than one run per scenario).
void print_medians(const std::vector<scenario_median>& m);

/// The JSON report (machine, options, every figure).
nlohmann::ordered_json to_json(const std::vector<scenario_result>& results,
                               const run_options& opts);

/// "AMD EPYC, 2 cores, 23.4 GiB" from /proc.
std::string machine_summary();

/// A fresh directory under $TMPDIR (or /tmp), removed with its content on destruction.
class temp_dir {
public:
  /// Creates "<tmp>/<prefix>XXXXXX"; throws std::runtime_error on failure.
  explicit temp_dir(const std::string& prefix);
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  /// The directory path.
  const std::string& path() const noexcept { return path_; }

private:
  std::string path_;
};

/// Prints a progress line to stderr unless quiet.
void progress(const run_options& opts, const std::string& line);

} // namespace keyflow::bench
