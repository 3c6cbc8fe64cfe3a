#pragma once
/// \file
/// Prometheus metrics of a node (prometheus-cpp). One `metrics` object per node owns the
/// registry and the HTTP exposer; components take the counters they need ("probes") once
/// at start and update them per batch, never per record. Names are documented in
/// docs/metrics.md.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace rocksdb {
class DB;
}

namespace keyflow::metrics {

/// Latency buckets in seconds, 100 µs .. 10 s.
const prometheus::Histogram::BucketBoundaries& latency_buckets();

/// A partition actor's part of keyflow_freshness_seconds{actor}: wall clock minus the event
/// time of the newest event the actor has processed. Actors of one name (on a cluster node,
/// one per region it runs) share the series, which shows the stalest of them; after a restart
/// the age keeps growing from the previous actor's newest event until the new one has
/// processed an event. A default-constructed probe does nothing.
class freshness_probe {
public:
  freshness_probe() = default;
  /// Leaves the actor's group (the series keeps its last value).
  ~freshness_probe();
  /// Moves a probe.
  freshness_probe(freshness_probe&&) noexcept = default;
  /// Moves a probe (leaving the group of the one replaced).
  freshness_probe& operator=(freshness_probe&& other) noexcept;
  freshness_probe(const freshness_probe&) = delete;
  freshness_probe& operator=(const freshness_probe&) = delete;

  /// The actor has processed events up to event time `event_ms` (ms since the Unix epoch).
  /// Lock-free; call from the owning actor only, once per batch.
  void processed(int64_t event_ms) noexcept;

  /// Sets the series to `now_ms` minus the newest event time of the stalest actor of the
  /// name (nothing before any event). Takes a lock: call about once per second.
  void publish(int64_t now_ms);

  /// Shared state of the probes of one actor name.
  struct group;

private:
  friend class metrics;
  void leave() noexcept;
  std::shared_ptr<group> group_;
  std::shared_ptr<std::atomic<int64_t>> newest_;
};

/// The node's metric families.
class metrics {
public:
  /// Creates the registry; `pipeline` labels every series.
  explicit metrics(std::string pipeline);

  /// Starts serving /metrics on `address` ("127.0.0.1:9464"; port 0 picks one).
  /// Throws std::runtime_error naming the address if it cannot listen.
  void serve(const std::string& address);

  /// Port /metrics listens on (0 if not serving).
  int port() const;

  /// The underlying registry.
  std::shared_ptr<prometheus::Registry> registry() const noexcept { return registry_; }

  /// keyflow_duplicates_total{operator}: records dropped by dedup.
  prometheus::Counter& duplicates(const std::string& op);
  /// keyflow_watermark_timestamp_seconds{actor}: event-time watermark an actor has processed
  /// up to.
  prometheus::Gauge& watermark(const std::string& actor);
  /// keyflow_watermark_lag_seconds{actor}: wall clock minus the watermark.
  prometheus::Gauge& watermark_lag(const std::string& actor);
  /// keyflow_freshness_seconds{actor}: the probe of one partition actor named `actor`.
  freshness_probe freshness(const std::string& actor);
  /// keyflow_enrich_lookups_total{operator,result}: hit, miss, missing, failed.
  prometheus::Counter& enrich_lookups(const std::string& op, const std::string& result);
  /// keyflow_records_in_total{operator}.
  prometheus::Counter& records_in(const std::string& op);
  /// keyflow_records_out_total{operator}.
  prometheus::Counter& records_out(const std::string& op);
  /// keyflow_dead_letters_total{operator,reason}.
  prometheus::Counter& dead_letters(const std::string& op, const std::string& reason);
  /// keyflow_processing_latency_seconds: source read -> keyed state updated.
  prometheus::Histogram& processing_latency();
  /// keyflow_stage_latency_seconds{stage,operators}: time a partition actor spends running
  /// one batch through the operators of its stage (`operators`: their ids, comma-separated).
  prometheus::Histogram& stage_latency(const std::string& stage, const std::string& operators);
  /// keyflow_operator_latency_seconds{operator}: time one operator spends on one batch of a
  /// partition actor.
  prometheus::Histogram& operator_latency(const std::string& op);
  /// keyflow_end_to_end_latency_seconds{sink}: source read -> written by the sink.
  prometheus::Histogram& end_to_end_latency(const std::string& sink);
  /// keyflow_consumer_lag_records{topic,partition}: high watermark - next offset to read.
  prometheus::Gauge& consumer_lag(const std::string& topic, int partition);
  /// keyflow_backpressured_seconds_total{actor}: time a sender waited for credit.
  prometheus::Counter& backpressured_seconds(const std::string& actor);
  /// keyflow_sink_writes_total{sink}: records written by a sink.
  prometheus::Counter& sink_writes(const std::string& sink);
  /// keyflow_sink_errors_total{sink}: failed sink writes (retried).
  prometheus::Counter& sink_errors(const std::string& sink);
  /// keyflow_state_keys{operator}: keys in the in-memory working copy.
  prometheus::Gauge& state_keys(const std::string& op);
  /// keyflow_state_flushed_keys_total{operator}: keys written to RocksDB.
  prometheus::Counter& state_flushed_keys(const std::string& op);
  /// keyflow_state_size_bytes and keyflow_state_estimated_keys: reads the size of the state
  /// store `db` (live SST files plus memtables, and RocksDB's estimate of its keys, over all
  /// its column families) and publishes the sum over the node's state stores, each known by
  /// its directory. Thread-safe; reads RocksDB properties, so call it periodically.
  void observe_state_store(rocksdb::DB& db);
  /// The state store in directory `dir` is closed: it no longer counts in
  /// keyflow_state_size_bytes and keyflow_state_estimated_keys.
  void forget_state_store(const std::string& dir);

  /// keyflow_checkpoints_total{result}: checkpoints completed / failed.
  prometheus::Counter& checkpoints(const std::string& result);
  /// keyflow_checkpoints_corrupt_total: checkpoints skipped at restore (missing, truncated or
  /// altered files).
  prometheus::Counter& checkpoints_corrupt();
  /// keyflow_checkpoint_last_duration_seconds: trigger -> manifest written, last completed.
  prometheus::Gauge& checkpoint_duration();
  /// keyflow_checkpoint_last_size_bytes: size of the last completed checkpoint.
  prometheus::Gauge& checkpoint_size();
  /// keyflow_checkpoint_last_alignment_seconds: longest barrier alignment, last checkpoint.
  prometheus::Gauge& checkpoint_alignment();
  /// keyflow_checkpoint_last_id: id of the last completed checkpoint.
  prometheus::Gauge& checkpoint_id();
  /// keyflow_checkpoint_age_seconds: time since the last completed checkpoint.
  prometheus::Gauge& checkpoint_age();
  /// keyflow_sink_transactions_total{sink}: Kafka transactions committed (exactly-once sink).
  prometheus::Counter& sink_transactions(const std::string& sink);
  /// keyflow_restore_duration_seconds: time the last restore took at start.
  prometheus::Gauge& restore_duration();

  /// keyflow_cluster_members{state}: members this node sees alive / dead.
  prometheus::Gauge& cluster_members(const std::string& state);
  /// keyflow_cluster_coordinator: 1 while this node is the coordinator.
  prometheus::Gauge& cluster_coordinator();
  /// keyflow_cluster_assignment_version: version of the assignment this node follows.
  prometheus::Gauge& cluster_assignment_version();
  /// keyflow_hot_keys{actor}: keys now over the hot-key share of a partition actor's records.
  prometheus::Gauge& hot_keys(const std::string& actor);
  /// keyflow_hot_key_share{actor}: share of a partition actor's records its heaviest key
  /// has (a guaranteed lower bound, over the last one to two hot-key periods).
  prometheus::Gauge& hot_key_share(const std::string& actor);
  /// keyflow_hot_keys_detected_total{actor}: keys that became hot (each is logged by name).
  prometheus::Counter& hot_keys_detected(const std::string& actor);
  /// keyflow_restarts_total{instance,cause}: restarts of a pipeline instance by the
  /// supervisor ("standalone" or "region-N"; cause: operator_failed or actor_failed).
  prometheus::Counter& restarts(const std::string& instance, const std::string& cause);
  /// keyflow_failovers_total{region}: times this node took over region `region` (or slice
  /// of a spread job), restored from its last checkpoint, from a node that died (or was
  /// declared dead) while running it. Create the series of every region at start, so that
  /// the first failover shows in increase().
  prometheus::Counter& failovers(uint32_t region);
  /// keyflow_region_starts_total{region}: regions started on this node (restored from the
  /// region's last complete checkpoint).
  prometheus::Counter& region_starts(uint32_t region);
  /// keyflow_region_stops_total{region,reason}: regions stopped on this node; reason
  /// handoff (moved away, final checkpoint), fenced (a newer generation owns it), shutdown.
  prometheus::Counter& region_stops(uint32_t region, const std::string& reason);
  /// keyflow_regions_running: regions running on this node.
  prometheus::Gauge& regions_running();
  /// keyflow_fenced_writes_total{sink}: sink writes refused because a newer generation of
  /// their region exists (the writer was declared dead).
  prometheus::Counter& fenced_writes(const std::string& sink);
  /// keyflow_remote_batches_total{sender}: record batches sent to a partition actor on
  /// another node (a job spread over nodes), by sending actor kind (source, or partition
  /// for a next stage after key_by).
  prometheus::Counter& remote_batches(const std::string& sender);

private:
  prometheus::Gauge& gauge(const std::string& name, const std::string& help);
  void publish_state_size(); // state_mtx_ held
  std::string pipeline_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  prometheus::Family<prometheus::Counter>* records_in_;
  prometheus::Family<prometheus::Counter>* records_out_;
  prometheus::Family<prometheus::Counter>* dead_letters_;
  prometheus::Family<prometheus::Histogram>* processing_latency_;
  prometheus::Family<prometheus::Histogram>* e2e_latency_;
  prometheus::Family<prometheus::Gauge>* consumer_lag_;
  prometheus::Family<prometheus::Counter>* backpressured_;
  prometheus::Family<prometheus::Counter>* sink_writes_;
  prometheus::Family<prometheus::Counter>* sink_errors_;
  prometheus::Family<prometheus::Gauge>* state_keys_;
  prometheus::Family<prometheus::Counter>* state_flushed_;
  prometheus::Family<prometheus::Gauge>* freshness_;
  prometheus::Family<prometheus::Histogram>* stage_latency_;
  prometheus::Family<prometheus::Histogram>* operator_latency_;
  std::mutex freshness_mtx_;
  std::map<std::string, std::shared_ptr<freshness_probe::group>> freshness_groups_;
  /// Size in bytes and estimated keys of each state store, by directory.
  struct store_size {
    double bytes = 0;
    double keys = 0;
  };
  std::mutex state_mtx_;
  std::map<std::string, store_size> state_sizes_;
  prometheus::Gauge* state_bytes_;
  prometheus::Gauge* state_estimated_keys_;
};

/// A histogram an actor fills without locks and publishes per batch: observe() costs a few
/// instructions; publish() moves the counts into a prometheus::Histogram.
class local_histogram {
public:
  /// Accumulates into `target` using latency_buckets().
  explicit local_histogram(prometheus::Histogram* target = nullptr);
  /// Records `count` observations of one value (seconds).
  void observe(double v, size_t count = 1) noexcept;
  /// Adds the accumulated counts to the target and resets them.
  void publish();

private:
  prometheus::Histogram* target_;
  const prometheus::Histogram::BucketBoundaries* bounds_;
  std::vector<double> counts_;
  double sum_ = 0;
  size_t n_ = 0;
};

} // namespace keyflow::metrics
