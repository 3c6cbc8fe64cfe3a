#include "benchmarks/bench_util.hpp"

#include <malloc.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <stdexcept>
#include <thread>

namespace keyflow::bench {

bool same_totals(const totals_map& a, const totals_map& b, std::string& why) {
  if (a.size() != b.size()) {
    why = "key counts differ: " + std::to_string(a.size()) + " vs " + std::to_string(b.size());
    return false;
  }
  for (const auto& [key, x] : a) {
    auto i = b.find(key);
    if (i == b.end()) {
      why = "key '" + key + "' missing on one side";
      return false;
    }
    if (i->second.count != x.count || i->second.sum != x.sum) {
      why = "key '" + key + "': count " + std::to_string(x.count) + " vs " +
            std::to_string(i->second.count) + ", sum " + std::to_string(x.sum) + " vs " +
            std::to_string(i->second.sum);
      return false;
    }
  }
  return true;
}

double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6;
  };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

long read_status_kb(std::string_view field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > field.size() && line.compare(0, field.size(), field) == 0 &&
        line[field.size()] == ':')
      return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
  }
  return -1;
}

namespace {

/// Resets the process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0).
bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

} // namespace

memory_probe::memory_probe() {
  malloc_trim(0); // give back what earlier phases freed, so the start figure is honest
  reset_ = reset_peak_rss();
  start_kb_ = read_status_kb("VmRSS");
}

memory_figures memory_probe::finish() const {
  memory_figures m;
  m.start_rss_kb = start_kb_;
  m.peak_rss_kb = read_status_kb("VmHWM");
  m.end_rss_kb = read_status_kb("VmRSS");
  m.peak_reset = reset_;
  return m;
}

latency_figures histogram_percentiles(const prometheus::ClientMetric& m) {
  latency_figures out;
  out.method = "histogram (keyflow_processing_latency_seconds, interpolated)";
  const auto& buckets = m.histogram.bucket;
  out.count = m.histogram.sample_count;
  if (out.count == 0)
    return out;
  auto quantile = [&](double q) {
    const double target = q * static_cast<double>(out.count);
    double lower = 0, below = 0;
    for (const auto& b : buckets) {
      const auto cum = static_cast<double>(b.cumulative_count);
      if (cum >= target && cum > below) {
        if (b.upper_bound == std::numeric_limits<double>::infinity())
          return lower; // open-ended bucket: report its lower edge
        return lower + (b.upper_bound - lower) * (target - below) / (cum - below);
      }
      lower = b.upper_bound;
      below = cum;
    }
    return lower;
  };
  out.p50 = quantile(0.50);
  out.p99 = quantile(0.99);
  return out;
}

latency_figures latency_samples::percentiles() const {
  latency_figures out;
  out.method = "exact, one sample per batch weighted by its records";
  auto sorted = samples_;
  std::sort(sorted.begin(), sorted.end());
  uint64_t total = 0;
  for (const auto& s : sorted)
    total += s.second;
  out.count = total;
  if (total == 0)
    return out;
  auto quantile = [&](double q) {
    const double target = q * static_cast<double>(total);
    uint64_t cum = 0;
    for (const auto& [v, w] : sorted) {
      cum += w;
      if (static_cast<double>(cum) >= target)
        return v;
    }
    return sorted.back().first;
  };
  out.p50 = quantile(0.50);
  out.p99 = quantile(0.99);
  return out;
}

std::string format_latency(double s) {
  char buf[32];
  if (s < 1e-3)
    std::snprintf(buf, sizeof(buf), "%.0f us", s * 1e6);
  else
    std::snprintf(buf, sizeof(buf), "%.2f ms", s * 1e3);
  return buf;
}

namespace {

/// "kafka" or "kafka#2" for the table.
std::string run_label(const scenario_result& r) {
  return r.run > 1 ? r.name + "#" + std::to_string(r.run) : r.name;
}

/// One table row for a phase.
void print_row(const std::string& scenario, const phase_result& p) {
  std::printf("%-9s %-6s %9llu %7.3f %11.0f %8.2f %9s %9s %8.1f %8.1f\n", scenario.c_str(),
              p.variant.c_str(), static_cast<unsigned long long>(p.events), p.seconds,
              p.events_per_s(), p.cpu_us_per_event(), format_latency(p.latency.p50).c_str(),
              format_latency(p.latency.p99).c_str(),
              static_cast<double>(p.memory.peak_rss_kb) / 1024.0,
              static_cast<double>(p.memory.growth_kb()) / 1024.0);
}

} // namespace

void print_table(const std::vector<scenario_result>& results) {
  std::printf("\n%-9s %-6s %9s %7s %11s %8s %9s %9s %8s %8s\n", "scenario", "side", "events",
              "seconds", "events/s", "CPU us/e", "p50", "p99", "peak MiB", "grow MiB");
  for (const auto& r : results) {
    const auto label = run_label(r);
    print_row(label, r.engine);
    print_row(label, r.raw);
    std::printf("%-9s ratio engine/raw = %.2f; target %s: %s; %s\n", label.c_str(), r.ratio(),
                r.target.c_str(), r.target_met ? "met" : "NOT met",
                r.results_equal ? "results equal" : "RESULTS DIFFER");
  }
  for (const auto& r : results)
    for (const auto& n : r.notes)
      std::printf("note [%s]: %s\n", run_label(r).c_str(), n.c_str());
  std::fflush(stdout);
}

namespace {

/// Median of `v` (upper median for an even count); 0 if empty.
double median_of(std::vector<double> v) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// Medians of the runs named `name`.
scenario_median median_for(const std::vector<scenario_result>& results, const std::string& name) {
  scenario_median m;
  m.name = name;
  std::vector<double> ee, re, ra, ep50, ep99, rp50, rp99;
  for (const auto& r : results) {
    if (r.name != name)
      continue;
    ++m.runs;
    ee.push_back(r.engine.events_per_s());
    re.push_back(r.raw.events_per_s());
    ra.push_back(r.ratio());
    ep50.push_back(r.engine.latency.p50);
    ep99.push_back(r.engine.latency.p99);
    rp50.push_back(r.raw.latency.p50);
    rp99.push_back(r.raw.latency.p99);
  }
  m.engine_min = *std::min_element(ee.begin(), ee.end());
  m.engine_max = *std::max_element(ee.begin(), ee.end());
  m.engine_eps = median_of(ee);
  m.raw_eps = median_of(re);
  m.ratio = median_of(ra);
  m.engine_p50 = median_of(ep50);
  m.engine_p99 = median_of(ep99);
  m.raw_p50 = median_of(rp50);
  m.raw_p99 = median_of(rp99);
  return m;
}

} // namespace

std::vector<scenario_median> medians(const std::vector<scenario_result>& results) {
  std::vector<scenario_median> out;
  for (const auto& r : results) {
    bool seen = false;
    for (const auto& m : out)
      seen = seen || m.name == r.name;
    if (!seen)
      out.push_back(median_for(results, r.name));
  }
  return out;
}

void print_medians(const std::vector<scenario_median>& ms) {
  for (const auto& m : ms)
    std::printf("median of %u runs [%s]: engine %.0f events/s (min %.0f, max %.0f), raw %.0f "
                "events/s, ratio %.2f; engine p50 %s p99 %s; raw p50 %s p99 %s\n",
                m.runs, m.name.c_str(), m.engine_eps, m.engine_min, m.engine_max, m.raw_eps,
                m.ratio, format_latency(m.engine_p50).c_str(), format_latency(m.engine_p99).c_str(),
                format_latency(m.raw_p50).c_str(), format_latency(m.raw_p99).c_str());
  std::fflush(stdout);
}

namespace {

/// JSON of one phase.
nlohmann::ordered_json phase_json(const phase_result& p) {
  nlohmann::ordered_json j;
  j["variant"] = p.variant;
  j["detail"] = p.detail;
  j["events"] = p.events;
  j["seconds"] = p.seconds;
  if (p.startup_s >= 0)
    j["startup_seconds_excluded"] = p.startup_s;
  j["events_per_s"] = p.events_per_s();
  j["process_cpu_seconds"] = p.cpu_s;
  j["cpu_us_per_event"] = p.cpu_us_per_event();
  j["latency_p50_s"] = p.latency.p50;
  j["latency_p99_s"] = p.latency.p99;
  j["latency_observations"] = p.latency.count;
  j["latency_method"] = p.latency.method;
  j["rss_start_kib"] = p.memory.start_rss_kb;
  j["rss_peak_kib"] = p.memory.peak_rss_kb;
  j["rss_growth_kib"] = p.memory.growth_kb();
  j["rss_end_kib"] = p.memory.end_rss_kb;
  j["rss_peak_is_per_phase"] = p.memory.peak_reset;
  return j;
}

} // namespace

nlohmann::ordered_json to_json(const std::vector<scenario_result>& results,
                               const run_options& opts) {
  nlohmann::ordered_json j;
  j["machine"] = machine_summary();
  j["options"] = {{"events", opts.events},
                  {"keys", opts.keys},
                  {"workers", opts.workers},
                  {"partitions", opts.partitions},
                  {"batch_size", opts.batch_size},
                  {"credits", opts.credits},
                  {"flush_interval_ms", opts.flush_interval_ms},
                  {"repeat", opts.repeat},
                  {"kafka_properties", opts.kafka_properties},
                  {"short", opts.short_mode}};
  auto& list = j["scenarios"] = nlohmann::ordered_json::array();
  for (const auto& r : results) {
    nlohmann::ordered_json s;
    s["name"] = r.name;
    s["run"] = r.run;
    s["engine"] = phase_json(r.engine);
    s["raw"] = phase_json(r.raw);
    s["ratio_engine_over_raw"] = r.ratio();
    s["results_equal"] = r.results_equal;
    s["target"] = r.target;
    s["target_met"] = r.target_met;
    s["notes"] = r.notes;
    list.push_back(std::move(s));
  }
  auto& med = j["medians"] = nlohmann::ordered_json::array();
  for (const auto& m : medians(results))
    med.push_back({{"name", m.name},
                   {"runs", m.runs},
                   {"engine_events_per_s", m.engine_eps},
                   {"engine_events_per_s_min", m.engine_min},
                   {"engine_events_per_s_max", m.engine_max},
                   {"raw_events_per_s", m.raw_eps},
                   {"ratio_engine_over_raw", m.ratio},
                   {"engine_latency_p50_s", m.engine_p50},
                   {"engine_latency_p99_s", m.engine_p99},
                   {"raw_latency_p50_s", m.raw_p50},
                   {"raw_latency_p99_s", m.raw_p99}});
  return j;
}

std::string machine_summary() {
  std::string model = "unknown CPU";
  std::ifstream cpu("/proc/cpuinfo");
  for (std::string line; std::getline(cpu, line);) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  char buf[256];
  const long mem_kb = [] {
    std::ifstream in("/proc/meminfo");
    std::string key;
    long v = 0;
    in >> key >> v;
    return v;
  }();
  std::snprintf(buf, sizeof(buf), "%s, %u cores, %.1f GiB RAM", model.c_str(),
                std::thread::hardware_concurrency(), static_cast<double>(mem_kb) / 1048576.0);
  return buf;
}

temp_dir::temp_dir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string{base && *base ? base : "/tmp"} + "/" + prefix + "XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr)
    throw std::runtime_error("cannot create a temporary directory from '" + templ + "'");
  path_ = templ;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void progress(const run_options& opts, const std::string& line) {
  if (!opts.quiet)
    std::cerr << "keyflow-bench: " << line << std::endl;
}

} // namespace keyflow::bench
