// Scenario "hotkey": the keyed count + sum of the datagen scenario over uniform keys and over
// input in which one key carries half of the events (--hot-share), with hot-key fanout (the
// generator readers pre-aggregate their hot keys, operators/preaggregate.hpp) on and off and
// the partition actors' hot-key detection (a Space-Saving tracker per actor) on and off, next
// to the raw loop over both inputs; all in one process and one run. Every engine variant's
// state is checked against the raw loop over the same input.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <thread>

#include "benchmarks/bench_pipelines.hpp"
#include "benchmarks/e2e_engine.hpp"
#include "benchmarks/e2e_scenarios.hpp"
#include "benchmarks/generators.hpp"
#include "core/key_group.hpp"
#include "operators/preaggregate.hpp"
#include "pipeline/generator_reader.hpp"
#include "proto/event.pb.h"

namespace keyflow::bench {

namespace {

constexpr uint64_t default_events = 5'000'000;
constexpr uint64_t short_events = 600'000; // 6 engine variants: keeps --short (CI) short
constexpr uint64_t seed = 42;
constexpr uint32_t raw_batch = 1024;        // the engine's default batch size
constexpr double detect_on = 0.2;           // wiring_params::hot_key_share's default
constexpr double fanout_on = 0.2;           // keyflowd: enable_fanout(--hot-key-percent 20 / 100)
constexpr uint32_t max_parallelism = 128;   // keyed_count_plan()'s
constexpr uint64_t compared_records = 1000; // hot share 0 vs make_datagen, checked per run

/// What one variant runs.
struct variant_spec {
  hotkey_variant variant;
  bool hot;      // input with the hot key (else uniform)
  double detect; // partition actors' hot_key_share
  double fanout; // generator_reader::enable_fanout share; 0 = not called
};

/// Name of a variant in the table and the JSON.
const char* variant_name(hotkey_variant v) {
  switch (v) {
  case hotkey_variant::uniform:
    return "uniform";
  case hotkey_variant::hot:
    return "hot";
  case hotkey_variant::hot_no_fanout:
    return "hot, fanout off";
  case hotkey_variant::uniform_no_fanout:
    return "uniform, fanout off";
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

/// What the source readers of one engine variant sent, summed over them (written by the source
/// actors, read by the benchmark thread).
struct feed_tally {
  std::atomic<uint64_t> routed{0};         // records routed (a partial counts 1)
  std::atomic<uint64_t> pre_aggregated{0}; // events folded into partials
  std::atomic<uint64_t> partials{0};       // partial records routed
  std::atomic<uint32_t> exhausted{0};      // readers whose generator has ended
};

/// A generator_reader that counts what it routes: with fanout the partition actors receive
/// fewer records than events (one partial per hot key and read), so the end of a variant is
/// "every reader exhausted and the aggregate took every routed record".
class counted_reader final : public source_reader {
public:
  counted_reader(std::shared_ptr<pipeline::generator_reader> inner, std::shared_ptr<feed_tally> t)
      : inner_(std::move(inner)), tally_(std::move(t)) {}
  size_t read(router& out, std::vector<kafka_message>& dead, size_t max) override {
    before_.resize(out.parallelism());
    for (uint32_t i = 0; i < out.parallelism(); ++i)
      before_[i] = out.batch(i).records.size();
    const size_t n = inner_->read(out, dead, max);
    uint64_t routed = 0, folded = 0, partials = 0;
    for (uint32_t i = 0; i < out.parallelism(); ++i) {
      const auto& recs = out.batch(i).records;
      routed += recs.size() - before_[i];
      for (size_t j = before_[i]; j < recs.size(); ++j)
        if (recs[j].folded > 0) {
          ++partials;
          folded += recs[j].folded;
        }
    }
    tally_->routed += routed;
    tally_->pre_aggregated += folded;
    tally_->partials += partials;
    if (!ended_ && inner_->exhausted()) {
      ended_ = true;
      ++tally_->exhausted; // after the counts: whoever sees it sees them
    }
    return n;
  }
  void pause() override { inner_->pause(); }
  void resume() override { inner_->resume(); }
  int64_t lag() const override { return inner_->lag(); }
  source_position position() const override { return inner_->position(); }
  bool exhausted() const override { return inner_->exhausted(); }
  int64_t max_event_time() const override { return inner_->max_event_time(); }
  std::string name() const override { return inner_->name(); }

private:
  std::shared_ptr<pipeline::generator_reader> inner_;
  std::shared_ptr<feed_tally> tally_;
  std::vector<size_t> before_;
  bool ended_ = false;
};

/// Polls until `done()` or the deadline; false on timeout.
template <class F>
bool poll_until(F done, std::chrono::steady_clock::time_point deadline) {
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return true;
}

/// Share of the events that go to the busiest of `partitions` actors, from per-key counts.
double busiest_share(const totals_map& totals, uint32_t partitions, uint64_t events) {
  std::vector<uint64_t> per_actor(partitions, 0);
  for (const auto& [key, t] : totals)
    per_actor[actor_for_key_group(max_parallelism, partitions,
                                  key_group_of(key, max_parallelism))] += t.count;
  const auto top = *std::max_element(per_actor.begin(), per_actor.end());
  return events ? static_cast<double>(top) / static_cast<double>(events) : 0;
}

/// Engine: generator source actors -> partition actors (validate in the source, aggregate),
/// hot-key detection at `spec.detect`, the readers' fanout at `spec.fanout`; fills `out` and
/// the state read back. Timed from start until every reader has ended and the aggregate has
/// taken every record they routed (= every event, or fewer records with partials).
void run_engine(const run_options& o, const variant_spec& spec, uint64_t events, hotkey_phase& out,
                totals_map& state, std::vector<std::string>& notes) {
  auto& r = out.figures;
  r.variant = "engine";
  auto s = settings_from(o);
  s.hot_key_share = spec.detect;
  s.parallelism = std::min(s.parallelism, max_parallelism);
  const uint32_t n = sources_of(o);
  r.detail = std::to_string(n) + " generator_reader source actor(s)" +
             (spec.fanout > 0 ? ", enable_fanout(" + std::to_string(spec.fanout) + ")" : "") +
             " -> " + std::to_string(s.parallelism) + " partition actor(s), hot_key_share " +
             std::to_string(spec.detect);
  const std::string what = std::string{"hotkey engine ("} + variant_name(spec.variant) + "): ";
  memory_probe mem;
  auto plan = keyed_count_plan();
  engine_run eng(plan, s);
  auto tally = std::make_shared<feed_tally>();
  std::vector<std::shared_ptr<source_reader>> readers;
  for (uint32_t i = 0; i < n; ++i) {
    auto g = std::make_shared<pipeline::generator_reader>(
        plan, make_hot_datagen(input_options(o, events, spec.hot, i, n), i), i);
    if (spec.fanout > 0)
      g->enable_fanout(spec.fanout);
    readers.push_back(std::make_shared<counted_reader>(std::move(g), tally));
  }
  auto& folded = eng.node_metrics().records_in("aggregate");
  const double cpu0 = process_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline = t0 + std::chrono::seconds(600);
  eng.start(std::move(readers));
  if (!poll_until([&] { return tally->exhausted.load() == n; }, deadline))
    throw std::runtime_error(what + std::to_string(tally->exhausted.load()) + " of " +
                             std::to_string(n) + " readers ended before the timeout");
  const uint64_t routed = tally->routed.load();
  if (!poll_until([&] { return static_cast<uint64_t>(folded.Value()) >= routed; }, deadline) ||
      folded.Value() != static_cast<double>(routed))
    throw std::runtime_error(what + std::to_string(folded.Value()) + " of " +
                             std::to_string(routed) +
                             " routed records folded in before the "
                             "timeout");
  r.seconds = seconds_since(t0);
  r.cpu_s = process_cpu_seconds() - cpu0;
  r.events = events;
  out.routed = routed;
  out.pre_aggregated = tally->pre_aggregated.load();
  out.partials = tally->partials.load();
  // Every event either went as itself or into exactly one partial.
  if (routed - out.partials + out.pre_aggregated != events)
    throw std::runtime_error(what + "the sources routed " + std::to_string(routed - out.partials) +
                             " records and " + std::to_string(out.partials) + " partials of " +
                             std::to_string(out.pre_aggregated) + " events, expected " +
                             std::to_string(events) + " events");
  if (spec.fanout <= 0 && out.partials > 0)
    throw std::runtime_error(what + "partials without fanout");
  // The hot key holds --hot-share of every reader's records: fanout must have taken it
  // (unless the input is too short for the readers' trackers to see it).
  if (spec.fanout > 0 && spec.hot && o.hot_share > spec.fanout &&
      events / n >= 8 * s.flow.batch_size && out.pre_aggregated == 0)
    throw std::runtime_error(what + "fanout on, but the sources pre-aggregated nothing");
  const auto t1 = std::chrono::steady_clock::now();
  const auto drained = eng.drain();
  notes.push_back(std::string{variant_name(spec.variant)} + ": drain took " +
                  std::to_string(seconds_since(t1)) + " s, not timed");
  if (drained.processed != routed)
    throw std::runtime_error(what + "partition actors report " + std::to_string(drained.processed) +
                             " records, expected " + std::to_string(routed));
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
  all_instances gen{o, events, hot};
  return raw_count_sum(gen, events,
                       "one loop: make_hot_datagen records (every instance) -> "
                       "Event::ParseFromArray -> std::unordered_map<std::string, {count,sum}>",
                       out);
}

/// a / b, 0 if b is 0.
double ratio(double a, double b) {
  return b > 0 ? a / b : 0;
}

/// The ratios one run gives.
struct hotkey_ratios {
  double uniform_over_hot = 0;           // fanout on (detection on); the aim: <= 2
  double uniform_over_hot_no_fanout = 0; // fanout off (detection on)
  double hot_fanout_on_over_off = 0;     // hot input: fanout on / off (detection on)
  double uniform_fanout_on_over_off = 0; // uniform input: fanout on / off (detection on)
  double hot_on_over_off = 0;            // hot input: detection on / off (fanout off)
  double uniform_on_over_off = 0;        // uniform input: detection on / off (fanout off)
  double hot_engine_over_raw = 0;        // hot input: engine (fanout on) / raw
  double raw_uniform_over_hot = 0;       // the raw loop's own uniform / hot

  /// The fields, in declaration order (for medians).
  static constexpr size_t count = 8;
  double* at(size_t i) {
    double* f[count] = {&uniform_over_hot,       &uniform_over_hot_no_fanout,
                        &hot_fanout_on_over_off, &uniform_fanout_on_over_off,
                        &hot_on_over_off,        &uniform_on_over_off,
                        &hot_engine_over_raw,    &raw_uniform_over_hot};
    return f[i];
  }
};

hotkey_ratios ratios_of(const hotkey_result& r) {
  using v = hotkey_variant;
  auto eps = [&](v x) { return r.events_per_s(x); };
  hotkey_ratios x;
  x.uniform_over_hot = ratio(eps(v::uniform), eps(v::hot));
  x.uniform_over_hot_no_fanout = ratio(eps(v::uniform_no_fanout), eps(v::hot_no_fanout));
  x.hot_fanout_on_over_off = ratio(eps(v::hot), eps(v::hot_no_fanout));
  x.uniform_fanout_on_over_off = ratio(eps(v::uniform), eps(v::uniform_no_fanout));
  x.hot_on_over_off = ratio(eps(v::hot_no_fanout), eps(v::hot_off));
  x.uniform_on_over_off = ratio(eps(v::uniform_no_fanout), eps(v::uniform_off));
  x.hot_engine_over_raw = ratio(eps(v::hot), eps(v::raw_hot));
  x.raw_uniform_over_hot = ratio(eps(v::raw_uniform), eps(v::raw_hot));
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
  hotkey_ratios m;
  for (size_t i = 0; i < hotkey_ratios::count; ++i) {
    std::vector<double> v;
    for (const auto& r : results)
      v.push_back(*ratios_of(r).at(i));
    *m.at(i) = median_of(std::move(v));
  }
  return m;
}

/// Smallest and largest of each per-run ratio.
std::pair<hotkey_ratios, hotkey_ratios> ratio_ranges(const std::vector<hotkey_result>& results) {
  hotkey_ratios lo, hi;
  for (size_t i = 0; i < hotkey_ratios::count; ++i) {
    std::vector<double> v;
    for (const auto& r : results)
      v.push_back(*ratios_of(r).at(i));
    *lo.at(i) = *std::min_element(v.begin(), v.end());
    *hi.at(i) = *std::max_element(v.begin(), v.end());
  }
  return {lo, hi};
}

/// The ratio line of a run or of the medians.
void print_ratios(const std::string& label, const hotkey_ratios& x) {
  std::printf("%s: uniform/hot = %.2f with fanout (aim: <= 2), %.2f without; fanout on/off: "
              "hot %.3f, uniform %.3f; detection on/off (no fanout): hot %.3f, uniform %.3f; "
              "engine (fanout)/raw on the hot input = %.2f; raw uniform/hot = %.2f\n",
              label.c_str(), x.uniform_over_hot, x.uniform_over_hot_no_fanout,
              x.hot_fanout_on_over_off, x.uniform_fanout_on_over_off, x.hot_on_over_off,
              x.uniform_on_over_off, x.hot_engine_over_raw, x.raw_uniform_over_hot);
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
  // The fanout variants mean nothing unless the plan lets the sources pre-aggregate.
  if (ops::fanout_operator(*keyed_count_plan()) < 0)
    throw std::runtime_error("hotkey: the keyed count + sum plan is not eligible for hot-key "
                             "fanout (ops::fanout_operator < 0)");
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
  using v = hotkey_variant;
  std::vector<variant_spec> specs{{v::uniform, false, detect_on, fanout_on},
                                  {v::hot, true, detect_on, fanout_on},
                                  {v::hot_no_fanout, true, detect_on, 0.0},
                                  {v::uniform_no_fanout, false, detect_on, 0.0},
                                  {v::hot_off, true, 0.0, 0.0},
                                  {v::uniform_off, false, 0.0, 0.0}};
  if (run % 2 == 0)
    std::reverse(specs.begin(), specs.end());
  res.results_equal = true;
  for (const auto& spec : specs) {
    progress(opts, std::string{"hotkey: engine, "} + variant_name(spec.variant));
    hotkey_phase p;
    p.variant = spec.variant;
    p.hot_share = spec.hot ? opts.hot_share : 0.0;
    p.detect_share = spec.detect;
    p.fanout_share = spec.fanout;
    totals_map state;
    run_engine(opts, spec, events, p, state, res.notes);
    if (spec.fanout > 0) {
      char line[200];
      std::snprintf(line, sizeof(line),
                    "%s: the sources pre-aggregated %.2f%% of the events into %llu partials",
                    variant_name(spec.variant),
                    100.0 * static_cast<double>(p.pre_aggregated) / static_cast<double>(events),
                    static_cast<unsigned long long>(p.partials));
      res.notes.push_back(line);
    }
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
              "hot-key fanout on (%.1f) and off, hot-key detection on (%.1f) and off; %u source "
              "actor(s), %u partition actor(s)\n",
              share * 100, fanout_on, detect_on, results.front().sources,
              results.front().partitions);
  std::printf("%-9s %-20s %5s %6s %6s %9s %7s %11s %8s %9s %9s %8s %8s %7s %7s %4s %5s\n", "run",
              "variant", "hot", "fanout", "detect", "events", "seconds", "events/s", "CPU us/e",
              "p50", "p99", "peak MiB", "grow MiB", "busiest", "pre-agg", "det", "top");
  for (const auto& r : results) {
    const auto label = "hotkey#" + std::to_string(r.run);
    for (const auto& p : r.phases) {
      const auto& f = p.figures;
      const bool engine = f.variant == "engine";
      auto on_off = [&](double x) { return !engine ? "-" : x > 0 ? "on" : "off"; };
      char pre[16] = "-";
      if (engine && p.fanout_share > 0)
        std::snprintf(pre, sizeof(pre), "%.1f%%",
                      f.events ? 100.0 * static_cast<double>(p.pre_aggregated) /
                                     static_cast<double>(f.events)
                               : 0.0);
      std::printf(
          "%-9s %-20s %4.0f%% %6s %6s %9llu %7.3f %11.0f %8.2f %9s %9s %8.1f %8.1f %6.1f%% "
          "%7s %4s %5s %s\n",
          label.c_str(), variant_name(p.variant), p.hot_share * 100, on_off(p.fanout_share),
          on_off(p.detect_share), static_cast<unsigned long long>(f.events), f.seconds,
          f.events_per_s(), f.cpu_us_per_event(), format_latency(f.latency.p50).c_str(),
          format_latency(f.latency.p99).c_str(), static_cast<double>(f.memory.peak_rss_kb) / 1024.0,
          static_cast<double>(f.memory.growth_kb()) / 1024.0, p.busiest_actor * 100, pre,
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
              "pre-agg = share of the events the sources folded into partials (fanout); "
              "det = hot keys the partition actors reported (keyflow_hot_keys_detected_total); "
              "top = their last keyflow_hot_key_share (with fanout they see partials, not the "
              "hot key's records)\n");
  if (results.size() > 1) {
    std::printf("medians of %zu runs:\n", results.size());
    for (const auto& m : variant_medians(results))
      std::printf("  %-20s %11.0f events/s (%.0f-%.0f), CPU %.2f us/e, p50 %s, p99 %s, "
                  "peak %.1f MiB\n",
                  variant_name(m.variant), m.eps, m.eps_min, m.eps_max, m.cpu_us,
                  format_latency(m.p50).c_str(), format_latency(m.p99).c_str(), m.peak_mib);
    print_ratios("  median ratios", median_ratios(results));
    const auto [lo, hi] = ratio_ranges(results);
    print_ratios("  smallest", lo);
    print_ratios("  largest", hi);
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
  j["hot_key_fanout_share"] = fanout_on;
  auto& runs = j["runs"] = nlohmann::ordered_json::array();
  auto ratios_json = [](const hotkey_ratios& x) {
    return nlohmann::ordered_json{{"uniform_over_hot", x.uniform_over_hot},
                                  {"uniform_over_hot_no_fanout", x.uniform_over_hot_no_fanout},
                                  {"hot_fanout_on_over_off", x.hot_fanout_on_over_off},
                                  {"uniform_fanout_on_over_off", x.uniform_fanout_on_over_off},
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
                        {"hot_key_fanout_share", p.fanout_share},
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
                        {"records_routed", p.routed},
                        {"events_pre_aggregated", p.pre_aggregated},
                        {"partials", p.partials},
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
    const auto [lo, hi] = ratio_ranges(results);
    j["min_ratios"] = ratios_json(lo);
    j["max_ratios"] = ratios_json(hi);
  }
  return j;
}

} // namespace keyflow::bench
