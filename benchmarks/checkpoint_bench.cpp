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

#include "actors/spawn.hpp"
#include "benchmarks/bench_util.hpp"
#include "benchmarks/e2e_engine.hpp"
#include "core/datagen.hpp"
#include "operators/aggregate.hpp"
#include "state/checkpoint_store.hpp"

namespace keyflow::bench {

namespace {

using clock_type = std::chrono::steady_clock;

/// Emits key numbers [0, n) in order, then strided updates, as far as the main thread
/// allows: read() returns nothing beyond the current limit, so the source idles until
/// release() raises it. Every event has value 1.
class phased_reader final : public source_reader {
public:
  /// A reader over `keys` keys; phase 1 emits each key once, later phases every
  /// `stride`-th key (key numbers 0, stride, 2*stride, ...).
  phased_reader(uint64_t keys, uint64_t stride) : keys_(keys), stride_(stride) {}

  /// Allows `n` more events to be read.
  void release(uint64_t n) { limit_.fetch_add(n, std::memory_order_release); }

  /// Events in one update phase.
  uint64_t update_size() const { return (keys_ + stride_ - 1) / stride_; }

  size_t read(router& out, std::vector<kafka_message>&, size_t max) override {
    const uint64_t limit = limit_.load(std::memory_order_acquire);
    const auto ingest =
        std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch())
            .count();
    size_t n = 0;
    for (; n < max && emitted_ < limit; ++n, ++emitted_) {
      const uint64_t k = emitted_ < keys_ ? emitted_ : ((emitted_ - keys_) * stride_) % keys_;
      event_record rec;
      rec.key = datagen_reader::key_name(static_cast<uint32_t>(k));
      rec.value = 1;
      rec.event_time_ms = 1767225600000 + static_cast<int64_t>(emitted_);
      rec.ingest_ns = ingest;
      rec.offset = static_cast<int64_t>(emitted_);
      rec.partition = 0;
      out.route(std::move(rec));
    }
    return n;
  }
  int64_t lag() const override {
    return static_cast<int64_t>(limit_.load(std::memory_order_acquire) - emitted_);
  }
  std::string name() const override { return "phased/0"; }
  source_position position() const override {
    return {"phased", 0, static_cast<int64_t>(emitted_)};
  }

private:
  uint64_t keys_;
  uint64_t stride_;
  uint64_t emitted_ = 0; // only touched by the source actor
  std::atomic<uint64_t> limit_{0};
};

/// One engine with optional checkpointing: a state store (owned), one source actor, one
/// partition actor per worker and, if `checkpoints` is given, a checkpoint coordinator.
class ck_engine {
public:
  /// Starts CAF with `workers` threads and spawns the partition actors over `store`;
  /// with `checkpoints` non-null they run in checkpointing mode (state written at barriers).
  ck_engine(const config::pipeline_config& pipe, uint32_t workers,
            std::unique_ptr<state::state_store> store, state::checkpoint_store* checkpoints)
      : pipe_(&pipe), store_(std::move(store)), checkpoints_(checkpoints), metrics_(pipe.name) {
    folded_ = &metrics_.records_in(pipe.aggregate.id);
    cfg_.add_message_types<caf::id_block::keyflow>();
    cfg_.set("scheduler.max-threads", static_cast<size_t>(workers));
    cfg_.set("logger.console-verbosity", caf::atom("quiet"));
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    for (uint32_t i = 0; i < workers; ++i) {
      partition_params p;
      p.pipeline = pipe_;
      p.store = store_.get();
      p.index = i;
      p.flush_interval = std::chrono::milliseconds(1000);
      p.sources = 1;
      p.checkpointing = checkpoints_ != nullptr;
      p.metrics = &metrics_;
      partitions_.push_back(spawn_partition(*sys_, std::move(p)));
    }
  }

  /// Stops every actor, then the actor system, then closes the store.
  ~ck_engine() {
    if (source_)
      caf::anon_send_exit(source_, caf::exit_reason::user_shutdown);
    if (coordinator_)
      caf::anon_send_exit(coordinator_, caf::exit_reason::user_shutdown);
    for (auto& p : partitions_)
      caf::anon_send_exit(p, caf::exit_reason::user_shutdown);
    source_ = nullptr;
    coordinator_ = nullptr;
    partitions_.clear();
    sys_.reset();
  }
  ck_engine(const ck_engine&) = delete;
  ck_engine& operator=(const ck_engine&) = delete;

  /// Spawns the source over `reader` and, when checkpointing, the coordinator (periodic
  /// every `interval`, or on demand only if it is zero).
  void start(std::shared_ptr<source_reader> reader, std::chrono::milliseconds interval) {
    source_params s;
    s.reader = std::move(reader);
    s.max_parallelism = pipe_->max_parallelism;
    s.partitions = partitions_;
    s.metrics = &metrics_;
    source_ = spawn_source(*sys_, std::move(s));
    if (checkpoints_ == nullptr)
      return;
    coordinator_params c;
    c.pipeline = pipe_;
    c.store = store_.get();
    c.checkpoints = checkpoints_;
    c.sources = {source_};
    c.partitions = partitions_;
    c.interval = interval;
    c.timeout = std::chrono::milliseconds(600'000);
    c.metrics = &metrics_;
    coordinator_ = spawn_checkpoint_coordinator(*sys_, std::move(c));
  }

  /// Records folded into keyed state so far.
  uint64_t folded() const { return static_cast<uint64_t>(folded_->Value()); }

  /// Waits until exactly `n` records are folded in; throws naming `what` otherwise.
  void wait_folded(uint64_t n, const std::string& what) const {
    if (!engine_run::wait_for(*folded_, n, std::chrono::seconds(900)) || folded() != n)
      throw std::runtime_error(what + ": " + std::to_string(folded()) + " of " + std::to_string(n) +
                               " records folded in");
  }

  /// Takes a checkpoint on demand and waits for it; returns its id, throws on failure.
  uint64_t checkpoint() {
    caf::scoped_actor self{*sys_};
    uint64_t id = 0;
    caf::error failure;
    self->request(coordinator_, std::chrono::seconds(900), atom::checkpoint_v, std::string{})
        .receive([&](uint64_t got) { id = got; }, [&](caf::error& e) { failure = std::move(e); });
    if (failure)
      throw std::runtime_error("checkpoint failed: " + caf::to_string(failure));
    return id;
  }

  /// Checkpoints completed so far (periodic and on demand).
  uint64_t checkpoints_completed() {
    return static_cast<uint64_t>(metrics_.checkpoints("completed").Value());
  }

  /// The state store.
  state::state_store& store() { return *store_; }

private:
  const config::pipeline_config* pipe_;
  std::unique_ptr<state::state_store> store_;
  state::checkpoint_store* checkpoints_;
  metrics::metrics metrics_;
  prometheus::Counter* folded_;
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::vector<partition_actor> partitions_;
  source_actor source_;
  checkpoint_coordinator_actor coordinator_;
};

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
double datagen_run(const config::pipeline_config& pipe, const run_options& o, uint64_t events,
                   bool checkpointing, uint64_t& completed) {
  temp_dir state("keyflow-ckbench-state-");
  temp_dir chk("keyflow-ckbench-chk-");
  state::checkpoint_store checkpoints(chk.path());
  ck_engine eng(pipe, o.workers, state::state_store::open(state.path(), {pipe.aggregate.id}),
                checkpointing ? &checkpoints : nullptr);
  datagen_options d;
  d.events = events;
  d.keys = o.keys;
  const auto t0 = clock_type::now();
  eng.start(std::make_shared<datagen_reader>(d, 0), std::chrono::milliseconds(1000));
  eng.wait_folded(events, "datagen");
  const double secs = seconds_since(t0);
  completed = checkpointing ? eng.checkpoints_completed() : 0;
  return static_cast<double>(events) / secs;
}

/// Measurement 1: `repeat` pairs of datagen runs without and with checkpoints every 1 s.
overhead_result measure_overhead(const run_options& o, uint32_t repeat) {
  auto pipe = bench_pipeline();
  overhead_result r;
  r.events = o.events ? o.events : (o.short_mode ? 1'000'000 : 10'000'000);
  for (uint32_t i = 0; i < repeat; ++i) {
    uint64_t n = 0;
    // Alternate which variant runs first, so drift (thermal, neighbours) hits both alike.
    for (int v = 0; v < 2; ++v) {
      const bool on = (v == 0) == (i % 2 == 1);
      progress(o, "overhead: run " + std::to_string(i + 1) +
                      (on ? ", checkpoints every 1 s" : ", no checkpoints"));
      const double eps = datagen_run(pipe, o, r.events, on, n);
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

/// Reads the aggregate count of key number `k` from `store`; -1 if absent.
int64_t stored_count(state::state_store& store, const config::pipeline_config& pipe, uint32_t k) {
  const auto name = datagen_reader::key_name(k);
  std::string v;
  auto* cf = store.column_family(pipe.aggregate.id);
  if (!store.get(cf, state::state_key(key_group_of(name, pipe.max_parallelism), name), &v).ok())
    return -1;
  ops::aggregate_state s;
  if (!ops::decode(v, s))
    throw std::runtime_error("corrupt state entry of " + name);
  return static_cast<int64_t>(s.count);
}

/// Measurements 2 and 3 at `keys` keys (3 only if `recovery`).
growth_result measure_growth(const run_options& o, uint64_t keys, bool recovery) {
  auto pipe = bench_pipeline();
  growth_result r;
  r.keys = keys;
  r.recovery = recovery;
  temp_dir state("keyflow-ckbench-state-");
  temp_dir chk("keyflow-ckbench-chk-");
  const std::string tag = std::to_string(keys) + " keys: ";
  {
    state::checkpoint_store checkpoints(chk.path());
    memory_probe mem;
    ck_engine eng(pipe, o.workers, state::state_store::open(state.path(), {pipe.aggregate.id}),
                  &checkpoints);
    auto reader = std::make_shared<phased_reader>(keys, 100);
    r.changed_keys = reader->update_size();
    eng.start(reader, std::chrono::milliseconds(0)); // on demand only
    progress(o, tag + "loading");
    auto t0 = clock_type::now();
    reader->release(keys);
    eng.wait_folded(keys, "load");
    r.load_s = seconds_since(t0);
    progress(o, tag + "full checkpoint");
    t0 = clock_type::now();
    const auto id1 = eng.checkpoint();
    r.full_s = seconds_since(t0);
    const auto m1 = read_manifest(checkpoints.checkpoint_dir(id1));
    r.full_bytes = m1.size_bytes();
    r.full_flush_s = static_cast<double>(m1.duration_ms()) / 1e3;
    reader->release(r.changed_keys);
    eng.wait_folded(keys + r.changed_keys, "update");
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
  auto store = state::state_store::open(dir, {pipe.aggregate.id});
  r.open_s = seconds_since(t0);
  // Key 0 was updated (count 2), key 1 was not (count 1).
  r.restored_ok = stored_count(*store, pipe, 0) == 2 && stored_count(*store, pipe, 1) == 1 &&
                  stored_count(*store, pipe, static_cast<uint32_t>(keys - 1)) >= 1;
  t0 = clock_type::now();
  ck_engine eng(pipe, o.workers, std::move(store), &checkpoints);
  auto reader = std::make_shared<phased_reader>(keys, 100);
  reader->release(1);
  eng.start(reader, std::chrono::milliseconds(0));
  eng.wait_folded(1, "first record after restore");
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
      "RSS, so 1 GB (~50M keys) needs ~13 GB; --short drops the last)");
  app.add_flag("--short", o.short_mode, "CI-sized run");
  app.add_flag("--quiet", o.quiet, "no progress lines on stderr");
  app.add_option("--json", json, "also write the figures to this JSON file");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn); // no line per checkpoint
  if (repeat == 0)
    repeat = o.short_mode ? 1 : 5;
  if (sizes.empty()) {
    sizes = {500'000, 5'000'000, 25'000'000};
    if (o.short_mode)
      sizes.pop_back();
  }
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
