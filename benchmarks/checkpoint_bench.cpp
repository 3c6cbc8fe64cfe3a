// keyflow-checkpoint-bench: what checkpoints cost. Three measurements in one run:
//   1. throughput of the datagen scenario with checkpoints every second vs. without;
//   2. duration and size of a full first checkpoint and of an incremental one (1% of the
//      keys changed) as keyed state grows (~10 MB, ~100 MB, ~1 GB);
//   3. recovery: latest_valid (SHA-256 of every file) + restore_into + state_store::open +
//      the first record processed, from a checkpoint of the state measured in 2. The crash
//      is simulated in-process: the engine is dropped after its checkpoint and a fresh
//      engine restores from the checkpoint directory into a fresh state directory.
// Exit status: 0 if everything ran and the checks passed; 1 on an error. Timings never fail.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "benchmarks/bench_pipelines.hpp"
#include "benchmarks/bench_util.hpp"
#include "benchmarks/e2e_engine.hpp"
#include "pipeline/generator_reader.hpp"
#include "proto/checkpoint.pb.h"
#include "proto/event.pb.h"
#include "state/checkpoint_store.hpp"

namespace keyflow::bench {

namespace {

using clock_type = std::chrono::steady_clock;

/// Emits events for key numbers [0, n) in order, then strided updates, as far as the main
/// thread allows: next() returns false beyond the current limit, so the source idles until
/// release() raises it. Every event has value 1. Read through a generator_reader, so the
/// records are decoded like Kafka records.
class phased_generator final : public pipeline::event_generator {
public:
  /// A generator over `keys` keys; phase 1 emits each key once, later phases every
  /// `stride`-th key (key numbers 0, stride, 2*stride, ...).
  phased_generator(uint64_t keys, uint64_t stride) : keys_(keys), stride_(stride) {}

  /// Allows `n` more events to be generated.
  void release(uint64_t n) { limit_.fetch_add(n, std::memory_order_release); }

  /// Events in one update phase.
  uint64_t update_size() const { return (keys_ + stride_ - 1) / stride_; }

  bool next(std::string& key, std::string& value) override {
    if (emitted_ >= limit_.load(std::memory_order_acquire))
      return false;
    const uint64_t k = emitted_ < keys_ ? emitted_ : ((emitted_ - keys_) * stride_) % keys_;
    key = pipeline::datagen_key_name(static_cast<uint32_t>(k));
    ev_.set_event_id("p-" + std::to_string(emitted_));
    ev_.set_customer_id(key);
    ev_.set_event_time_ms(1767225600000 + static_cast<int64_t>(emitted_));
    ev_.set_value(1);
    ev_.SerializeToString(&value);
    ++emitted_;
    return true;
  }
  int64_t remaining() const override {
    return static_cast<int64_t>(limit_.load(std::memory_order_acquire) - emitted_);
  }

private:
  uint64_t keys_;
  uint64_t stride_;
  uint64_t emitted_ = 0; // only touched by the source actor
  std::atomic<uint64_t> limit_{0};
  proto::Event ev_;
};

/// Engine settings: `workers` threads and partition actors; with `checkpoints`, a
/// coordinator (periodic every `interval`, or on demand only if it is zero) and partition
/// actors in checkpointing mode (state written at barriers).
engine_settings ck_settings(uint32_t workers, state::checkpoint_store* checkpoints,
                            std::chrono::milliseconds interval) {
  engine_settings s;
  s.workers = workers;
  s.parallelism = workers;
  s.checkpoints = checkpoints;
  s.checkpoint_interval = interval;
  return s;
}

/// Waits until exactly `n` records are folded into the aggregate; throws naming `what`.
void wait_folded(engine_run& eng, uint64_t n, const std::string& what) {
  auto& folded = eng.node_metrics().records_in("aggregate");
  if (!engine_run::wait_for(folded, n, std::chrono::seconds(900)) ||
      folded.Value() != static_cast<double>(n))
    throw std::runtime_error(what + ": " + std::to_string(folded.Value()) + " of " +
                             std::to_string(n) + " records folded in");
}

/// The manifest of the checkpoint in `dir` (parsed, not verified).
proto::CheckpointManifest read_manifest(const std::string& dir) {
  std::ifstream in(dir + "/MANIFEST.pb", std::ios::binary);
  proto::CheckpointManifest m;
  if (!in || !m.ParseFromIstream(&in))
    throw std::runtime_error("cannot read the manifest of " + dir);
  return m;
}

/// Bytes of files in `now` that `before` did not list (what a checkpoint newly wrote).
uint64_t new_bytes(const proto::CheckpointManifest& before, const proto::CheckpointManifest& now) {
  std::set<std::string> old;
  for (const auto& f : before.files())
    old.insert(f.path());
  uint64_t n = 0;
  for (const auto& f : now.files())
    if (!old.count(f.path()))
      n += f.size();
  return n;
}

/// Figures of measurement 1.
struct overhead_result {
  uint64_t events = 0;                  ///< events per run
  std::vector<double> off_eps, on_eps;  ///< events/s per run, without / with checkpoints
  std::vector<uint64_t> checkpoints;    ///< completed during each checkpointing run
  double off_median = 0, on_median = 0; ///< median events/s without / with checkpoints
  double ratio_median = 0;              ///< median of the per-run on/off ratios
  /// Cost of checkpoints: 1 - median per-run on/off ratio.
  double cost() const { return 1 - ratio_median; }
};

/// Figures of measurements 2 and 3 at one state size.
struct growth_result {
  uint64_t keys = 0;
  double load_s = 0;           ///< time to fold in one event per key
  double full_s = 0;           ///< first (full) checkpoint
  double full_flush_s = 0;     ///< of which: barrier to last partition ack (state write-back)
  uint64_t full_bytes = 0;     ///< its size
  uint64_t changed_keys = 0;   ///< keys updated before the incremental checkpoint
  double incr_s = 0;           ///< incremental checkpoint
  double incr_flush_s = 0;     ///< of which: barrier to last partition ack
  uint64_t incr_bytes = 0;     ///< its total size (hard-linked files included)
  uint64_t incr_new_bytes = 0; ///< bytes of files not in the full checkpoint
  long peak_rss_kb = 0;        ///< peak RSS of the phase
  bool recovery = false;       ///< recovery measured at this size
  double latest_valid_s = 0;   ///< checkpoint_store::latest_valid (SHA-256 of every file)
  double restore_into_s = 0;   ///< checkpoint_store::restore_into
  double open_s = 0;           ///< state_store::open
  double first_record_s = 0;   ///< engine start + first record folded in
  bool restored_ok = false;    ///< restored state holds the checkpointed counts
  /// Sum of the four recovery steps.
  double recovery_total() const {
    return latest_valid_s + restore_into_s + open_s + first_record_s;
  }
};

/// Median (upper middle) of `v`; 0 if empty.
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

/// One datagen run (keyed count+sum, `keys` keys); returns events/s of the folding part.
double datagen_run(const run_options& o, uint64_t events, bool checkpointing, uint64_t& completed) {
  auto plan = keyed_count_plan();
  temp_dir state("keyflow-ckbench-state-");
  temp_dir chk("keyflow-ckbench-chk-");
  state::checkpoint_store checkpoints(chk.path());
  engine_run eng(plan,
                 ck_settings(o.workers, checkpointing ? &checkpoints : nullptr,
                             std::chrono::milliseconds(1000)),
                 state::state_store::open(state.path(), plan->column_families()));
  pipeline::datagen_options d;
  d.events = events;
  d.keys = o.keys;
  const auto t0 = clock_type::now();
  eng.start({std::make_shared<pipeline::generator_reader>(plan, pipeline::make_datagen(d, 0))});
  wait_folded(eng, events, "datagen");
  const double secs = seconds_since(t0);
  completed = checkpointing ? eng.checkpoints_completed() : 0;
  return static_cast<double>(events) / secs;
}

/// Measurement 1: `repeat` pairs of datagen runs without and with checkpoints every 1 s.
overhead_result measure_overhead(const run_options& o, uint32_t repeat) {
  overhead_result r;
  r.events = o.events ? o.events : (o.short_mode ? 1'000'000 : 10'000'000);
  for (uint32_t i = 0; i < repeat; ++i) {
    uint64_t n = 0;
    // Alternate which variant runs first, so drift (thermal, neighbours) hits both alike.
    for (int v = 0; v < 2; ++v) {
      const bool on = (v == 0) == (i % 2 == 1);
      progress(o, "overhead: run " + std::to_string(i + 1) +
                      (on ? ", checkpoints every 1 s" : ", no checkpoints"));
      const double eps = datagen_run(o, r.events, on, n);
      if (on) {
        r.on_eps.push_back(eps);
        r.checkpoints.push_back(n);
      } else {
        r.off_eps.push_back(eps);
      }
    }
  }
  r.off_median = median(r.off_eps);
  r.on_median = median(r.on_eps);
  std::vector<double> ratios;
  for (size_t i = 0; i < r.on_eps.size(); ++i)
    ratios.push_back(r.on_eps[i] / r.off_eps[i]);
  r.ratio_median = median(ratios);
  return r;
}

/// The aggregate count of key number `k` in `store`; -1 if absent.
int64_t count_of(state::state_store& store, uint64_t k) {
  return stored_count(store, "aggregate", pipeline::datagen_key_name(static_cast<uint32_t>(k)),
                      keyed_count_plan()->cfg.max_parallelism);
}

/// Measurements 2 and 3 at `keys` keys (3 only if `recovery`).
growth_result measure_growth(const run_options& o, uint64_t keys, bool recovery) {
  auto plan = keyed_count_plan();
  growth_result r;
  r.keys = keys;
  r.recovery = recovery;
  temp_dir state("keyflow-ckbench-state-");
  temp_dir chk("keyflow-ckbench-chk-");
  const std::string tag = std::to_string(keys) + " keys: ";
  {
    state::checkpoint_store checkpoints(chk.path());
    memory_probe mem;
    engine_run eng(plan, ck_settings(o.workers, &checkpoints, std::chrono::milliseconds(0)),
                   state::state_store::open(state.path(), plan->column_families()));
    auto gen = std::make_unique<phased_generator>(keys, 100);
    auto* phases = gen.get(); // owned by the reader, which outlives its use here
    r.changed_keys = phases->update_size();
    auto reader = std::make_shared<pipeline::generator_reader>(plan, std::move(gen));
    eng.start({reader}); // checkpoints on demand only
    progress(o, tag + "loading");
    auto t0 = clock_type::now();
    phases->release(keys);
    wait_folded(eng, keys, "load");
    r.load_s = seconds_since(t0);
    progress(o, tag + "full checkpoint");
    t0 = clock_type::now();
    const auto id1 = eng.checkpoint();
    r.full_s = seconds_since(t0);
    const auto m1 = read_manifest(checkpoints.checkpoint_dir(id1));
    r.full_bytes = m1.size_bytes();
    r.full_flush_s = static_cast<double>(m1.duration_ms()) / 1e3;
    phases->release(r.changed_keys);
    wait_folded(eng, keys + r.changed_keys, "update");
    progress(o, tag + "incremental checkpoint");
    t0 = clock_type::now();
    const auto id2 = eng.checkpoint();
    r.incr_s = seconds_since(t0);
    const auto m2 = read_manifest(checkpoints.checkpoint_dir(id2));
    r.incr_bytes = m2.size_bytes();
    r.incr_flush_s = static_cast<double>(m2.duration_ms()) / 1e3;
    r.incr_new_bytes = new_bytes(m1, m2);
    r.peak_rss_kb = mem.finish().peak_rss_kb;
  } // "crash": the engine and its state directory's store are gone; only checkpoints remain
  std::filesystem::remove_all(state.path());
  if (!recovery)
    return r;
  progress(o, tag + "recovery");
  temp_dir fresh("keyflow-ckbench-restored-");
  const std::string dir = fresh.path() + "/state";
  state::checkpoint_store checkpoints(chk.path());
  auto t0 = clock_type::now();
  auto info = checkpoints.latest_valid([](const std::string& d, const std::string& why) {
    throw std::runtime_error("checkpoint " + d + " does not verify: " + why);
  });
  if (!info)
    throw std::runtime_error("no valid checkpoint after the simulated crash");
  r.latest_valid_s = seconds_since(t0);
  t0 = clock_type::now();
  state::checkpoint_store::restore_into(*info, dir);
  r.restore_into_s = seconds_since(t0);
  t0 = clock_type::now();
  auto store = state::state_store::open(dir, plan->column_families());
  r.open_s = seconds_since(t0);
  // Key 0 was updated (count 2), key 1 was not (count 1).
  r.restored_ok =
      count_of(*store, 0) == 2 && count_of(*store, 1) == 1 && count_of(*store, keys - 1) >= 1;
  t0 = clock_type::now();
  engine_run eng(plan, ck_settings(o.workers, &checkpoints, std::chrono::milliseconds(0)),
                 std::move(store));
  auto gen = std::make_unique<phased_generator>(keys, 100);
  gen->release(1);
  eng.start({std::make_shared<pipeline::generator_reader>(plan, std::move(gen))});
  wait_folded(eng, 1, "first record after restore");
  r.first_record_s = seconds_since(t0);
  return r;
}

/// "12.3 MB" (decimal megabytes).
std::string mb(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

/// Prints the three tables to stdout.
void print_results(const overhead_result& ov, const std::vector<growth_result>& gr) {
  std::printf("\n1. Throughput overhead (datagen, keyed count+sum, checkpoints every 1 s)\n");
  std::printf("%-28s %14s %14s %10s %12s\n", "events x runs", "no chk ev/s", "chk ev/s", "on/off *",
              "checkpoints");
  uint64_t cks =
      ov.checkpoints.empty() ? 0 : *std::max_element(ov.checkpoints.begin(), ov.checkpoints.end());
  std::printf("%-28s %14.0f %14.0f %10.3f %12llu\n",
              (std::to_string(ov.events) + " x " + std::to_string(ov.off_eps.size())).c_str(),
              ov.off_median, ov.on_median, ov.ratio_median, static_cast<unsigned long long>(cks));
  std::printf("   * median of the per-run ratios; cost of checkpoints: %.1f %% (target <= 5 %%); "
              "per run off/on:",
              ov.cost() * 100);
  for (size_t i = 0; i < ov.off_eps.size(); ++i)
    std::printf(" %.0f/%.0f", ov.off_eps[i], ov.on_eps[i]);
  std::printf("\n\n2. Checkpoint duration and size as state grows (1 event per key, then 1%% of "
              "keys updated)\n");
  std::printf("%10s %8s %9s %9s %11s %8s %8s %11s %11s %10s\n", "keys", "load s", "full s",
              "(flush)", "full size", "incr s", "(flush)", "incr size", "incr new", "peak RSS");
  for (const auto& g : gr)
    std::printf("%10llu %8.2f %9.3f %9.3f %11s %8.3f %8.3f %11s %11s %7ld MB\n",
                static_cast<unsigned long long>(g.keys), g.load_s, g.full_s, g.full_flush_s,
                mb(g.full_bytes).c_str(), g.incr_s, g.incr_flush_s, mb(g.incr_bytes).c_str(),
                mb(g.incr_new_bytes).c_str(), g.peak_rss_kb / 1024);
  std::printf("   (flush) = barrier to the last partition ack (dirty keys written to RocksDB); "
              "the rest is the RocksDB checkpoint + SHA-256 + manifest\n");
  std::printf("\n3. Recovery after a simulated crash (in-process: engine dropped, restore into a "
              "fresh state dir)\n");
  std::printf("%10s %11s %13s %13s %9s %13s %9s %4s\n", "keys", "chk size", "latest_valid s",
              "restore_into s", "open s", "first rec s", "total s", "ok");
  for (const auto& g : gr)
    if (g.recovery)
      std::printf("%10llu %11s %13.3f %13.3f %9.3f %13.3f %9.3f %4s\n",
                  static_cast<unsigned long long>(g.keys), mb(g.incr_bytes).c_str(),
                  g.latest_valid_s, g.restore_into_s, g.open_s, g.first_record_s,
                  g.recovery_total(), g.restored_ok ? "yes" : "NO");
  std::fflush(stdout);
}

/// The figures as JSON (for --json).
nlohmann::ordered_json to_json(const overhead_result& ov, const std::vector<growth_result>& gr,
                               const run_options& o) {
  nlohmann::ordered_json j;
  j["machine"] = machine_summary();
  j["workers"] = o.workers;
  j["short"] = o.short_mode;
  j["overhead"] = {{"events", ov.events},
                   {"keys", o.keys},
                   {"off_events_per_s", ov.off_eps},
                   {"on_events_per_s", ov.on_eps},
                   {"checkpoints", ov.checkpoints},
                   {"off_median", ov.off_median},
                   {"on_median", ov.on_median},
                   {"ratio_median", ov.ratio_median},
                   {"cost", ov.cost()}};
  auto& a = j["state_sizes"] = nlohmann::ordered_json::array();
  for (const auto& g : gr)
    a.push_back({{"keys", g.keys},
                 {"load_s", g.load_s},
                 {"full_checkpoint_s", g.full_s},
                 {"full_checkpoint_flush_s", g.full_flush_s},
                 {"full_checkpoint_bytes", g.full_bytes},
                 {"changed_keys", g.changed_keys},
                 {"incremental_checkpoint_s", g.incr_s},
                 {"incremental_checkpoint_flush_s", g.incr_flush_s},
                 {"incremental_checkpoint_bytes", g.incr_bytes},
                 {"incremental_new_bytes", g.incr_new_bytes},
                 {"peak_rss_kb", g.peak_rss_kb},
                 {"recovery_measured", g.recovery},
                 {"latest_valid_s", g.latest_valid_s},
                 {"restore_into_s", g.restore_into_s},
                 {"open_s", g.open_s},
                 {"first_record_s", g.first_record_s},
                 {"recovery_total_s", g.recovery_total()},
                 {"restored_ok", g.restored_ok}});
  return j;
}

} // namespace

} // namespace keyflow::bench

/// Parses the options, runs the three measurements, prints the table (and JSON).
int main(int argc, char** argv) {
  using namespace keyflow::bench;
  run_options o;
  std::string json;
  uint32_t repeat = 0;
  std::vector<uint64_t> sizes;
  CLI::App app{"keyflow-checkpoint-bench: checkpoint overhead, size/duration, recovery"};
  app.option_defaults()->always_capture_default();
  app.add_option("--events", o.events, "datagen events per overhead run (0 = 10M; --short 1M)");
  app.add_option("--keys", o.keys, "datagen keys of the overhead runs")
      ->check(CLI::Range(1u, 10'000'000u));
  app.add_option("--workers", o.workers, "CAF threads / partition actors")
      ->check(CLI::Range(1u, 64u));
  app.add_option("--repeat", repeat, "overhead runs per variant (0 = 5; --short 1)");
  app.add_option(
      "--state-keys", sizes,
      "keys per state-size step (default ~10 MB, ~100 MB, ~500 MB: ~20 B/key on disk, ~260 B/key "
      "RSS, so 1 GB (~50M keys) needs ~13 GB; --short: 200k and 1M)");
  app.add_flag("--short", o.short_mode, "CI-sized run");
  app.add_flag("--quiet", o.quiet, "no progress lines on stderr");
  app.add_option("--json", json, "also write the figures to this JSON file");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn); // no line per checkpoint
  if (repeat == 0)
    repeat = o.short_mode ? 1 : 5;
  if (sizes.empty())
    sizes = o.short_mode ? std::vector<uint64_t>{200'000, 1'000'000}
                         : std::vector<uint64_t>{500'000, 5'000'000, 25'000'000};
  try {
    std::printf("keyflow-checkpoint-bench on %s\n", machine_summary().c_str());
    std::fflush(stdout);
    auto ov = measure_overhead(o, repeat);
    std::vector<growth_result> gr;
    for (auto k : sizes)
      gr.push_back(measure_growth(o, k, k >= 1'000'000));
    print_results(ov, gr);
    bool ok = true;
    for (const auto& g : gr)
      ok = ok && (!g.recovery || g.restored_ok);
    if (!json.empty()) {
      std::ofstream out(json);
      out << to_json(ov, gr, o).dump(2) << "\n";
      if (!out)
        throw std::runtime_error("cannot write " + json);
    }
    if (!ok) {
      std::cerr << "keyflow-checkpoint-bench: restored state does not match the checkpoint\n";
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "keyflow-checkpoint-bench: " << e.what() << "\n";
    return 1;
  }
}
