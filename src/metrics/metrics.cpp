#include "metrics/metrics.hpp"

#include <algorithm>
#include <climits>
#include <stdexcept>

#include <rocksdb/db.h>

namespace keyflow::metrics {

const prometheus::Histogram::BucketBoundaries& latency_buckets() {
  static const prometheus::Histogram::BucketBoundaries buckets{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};
  return buckets;
}

metrics::metrics(std::string pipeline)
    : pipeline_(std::move(pipeline)), registry_(std::make_shared<prometheus::Registry>()) {
  using namespace prometheus;
  const std::map<std::string, std::string> labels{{"pipeline", pipeline_}};
  records_in_ = &BuildCounter()
                     .Name("keyflow_records_in_total")
                     .Help("Records received by an operator")
                     .Labels(labels)
                     .Register(*registry_);
  records_out_ = &BuildCounter()
                      .Name("keyflow_records_out_total")
                      .Help("Records emitted by an operator")
                      .Labels(labels)
                      .Register(*registry_);
  dead_letters_ = &BuildCounter()
                       .Name("keyflow_dead_letters_total")
                       .Help("Records sent to the dead-letter topic, by operator and reason")
                       .Labels(labels)
                       .Register(*registry_);
  processing_latency_ =
      &BuildHistogram()
           .Name("keyflow_processing_latency_seconds")
           .Help("Time from reading a record at the source to updating keyed state")
           .Labels(labels)
           .Register(*registry_);
  e2e_latency_ = &BuildHistogram()
                      .Name("keyflow_end_to_end_latency_seconds")
                      .Help("Time from reading a record at the source to its result being written "
                            "by a sink")
                      .Labels(labels)
                      .Register(*registry_);
  consumer_lag_ = &BuildGauge()
                       .Name("keyflow_consumer_lag_records")
                       .Help("Kafka consumer lag: high watermark minus next offset to read")
                       .Labels(labels)
                       .Register(*registry_);
  backpressured_ = &BuildCounter()
                        .Name("keyflow_backpressured_seconds_total")
                        .Help("Time an actor spent waiting for credit from downstream")
                        .Labels(labels)
                        .Register(*registry_);
  sink_writes_ = &BuildCounter()
                      .Name("keyflow_sink_writes_total")
                      .Help("Records written by a sink")
                      .Labels(labels)
                      .Register(*registry_);
  sink_errors_ = &BuildCounter()
                      .Name("keyflow_sink_errors_total")
                      .Help("Failed sink write attempts (each is retried)")
                      .Labels(labels)
                      .Register(*registry_);
  state_keys_ = &BuildGauge()
                     .Name("keyflow_state_keys")
                     .Help("Keys in the in-memory working copy of keyed state")
                     .Labels(labels)
                     .Register(*registry_);
  state_flushed_ = &BuildCounter()
                        .Name("keyflow_state_flushed_keys_total")
                        .Help("Keyed state entries written to RocksDB")
                        .Labels(labels)
                        .Register(*registry_);
  freshness_ = &BuildGauge()
                    .Name("keyflow_freshness_seconds")
                    .Help("Wall clock minus the event time of the newest event a partition "
                          "actor has processed")
                    .Labels(labels)
                    .Register(*registry_);
  stage_latency_ = &BuildHistogram()
                        .Name("keyflow_stage_latency_seconds")
                        .Help("Time a partition actor spends running one batch through the "
                              "operators of its stage (lookup waits excluded)")
                        .Labels(labels)
                        .Register(*registry_);
  operator_latency_ = &BuildHistogram()
                           .Name("keyflow_operator_latency_seconds")
                           .Help("Time one operator spends on one batch of a partition actor "
                                 "(lookup waits excluded)")
                           .Labels(labels)
                           .Register(*registry_);
  state_bytes_ = &BuildGauge()
                      .Name("keyflow_state_size_bytes")
                      .Help("Size of the node's RocksDB state: live SST files plus memtables")
                      .Labels(labels)
                      .Register(*registry_)
                      .Add({});
  state_estimated_keys_ = &BuildGauge()
                               .Name("keyflow_state_estimated_keys")
                               .Help("RocksDB's estimate of the keys in the node's state")
                               .Labels(labels)
                               .Register(*registry_)
                               .Add({});
}

void metrics::serve(const std::string& address) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot serve metrics on '" + address + "': " + e.what());
  }
  exposer_->RegisterCollectable(registry_);
}

int metrics::port() const {
  if (!exposer_)
    return 0;
  auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

prometheus::Counter& metrics::records_in(const std::string& op) {
  return records_in_->Add({{"operator", op}});
}

prometheus::Counter& metrics::records_out(const std::string& op) {
  return records_out_->Add({{"operator", op}});
}

prometheus::Counter& metrics::dead_letters(const std::string& op, const std::string& reason) {
  return dead_letters_->Add({{"operator", op}, {"reason", reason}});
}

prometheus::Histogram& metrics::processing_latency() {
  return processing_latency_->Add({}, latency_buckets());
}

prometheus::Histogram& metrics::stage_latency(const std::string& stage,
                                              const std::string& operators) {
  return stage_latency_->Add({{"stage", stage}, {"operators", operators}}, latency_buckets());
}

prometheus::Histogram& metrics::operator_latency(const std::string& op) {
  return operator_latency_->Add({{"operator", op}}, latency_buckets());
}

prometheus::Histogram& metrics::end_to_end_latency(const std::string& sink) {
  return e2e_latency_->Add({{"sink", sink}}, latency_buckets());
}

prometheus::Gauge& metrics::consumer_lag(const std::string& topic, int partition) {
  return consumer_lag_->Add({{"topic", topic}, {"partition", std::to_string(partition)}});
}

prometheus::Counter& metrics::backpressured_seconds(const std::string& actor) {
  return backpressured_->Add({{"actor", actor}});
}

prometheus::Counter& metrics::sink_writes(const std::string& sink) {
  return sink_writes_->Add({{"sink", sink}});
}

prometheus::Counter& metrics::sink_errors(const std::string& sink) {
  return sink_errors_->Add({{"sink", sink}});
}

prometheus::Gauge& metrics::state_keys(const std::string& op) {
  return state_keys_->Add({{"operator", op}});
}

prometheus::Counter& metrics::state_flushed_keys(const std::string& op) {
  return state_flushed_->Add({{"operator", op}});
}

void metrics::observe_state_store(rocksdb::DB& db) {
  // Summed over the column families; a property RocksDB cannot give counts as 0.
  auto property = [&db](const std::string& name) {
    uint64_t v = 0;
    return db.GetAggregatedIntProperty(name, &v) ? static_cast<double>(v) : 0.0;
  };
  store_size s;
  s.bytes = property(rocksdb::DB::Properties::kLiveSstFilesSize) +
            property(rocksdb::DB::Properties::kCurSizeAllMemTables);
  s.keys = property(rocksdb::DB::Properties::kEstimateNumKeys);
  std::lock_guard lock{state_mtx_};
  state_sizes_[db.GetName()] = s;
  publish_state_size();
}

void metrics::forget_state_store(const std::string& dir) {
  std::lock_guard lock{state_mtx_};
  state_sizes_.erase(dir);
  publish_state_size();
}

void metrics::publish_state_size() {
  store_size sum;
  for (const auto& [dir, s] : state_sizes_) {
    sum.bytes += s.bytes;
    sum.keys += s.keys;
  }
  state_bytes_->Set(sum.bytes);
  state_estimated_keys_->Set(sum.keys);
}

/// The probes of one actor name: their newest event times, and the series they share.
struct freshness_probe::group {
  std::mutex mtx;
  prometheus::Family<prometheus::Gauge>* family = nullptr;
  std::string actor;
  prometheus::Gauge* gauge = nullptr;                       // added at the first publish
  std::vector<std::weak_ptr<std::atomic<int64_t>>> members; // live probes
  int64_t newest = INT64_MIN;                               // what the series last showed
};

namespace {

/// The smallest newest event time among the live members that have processed an event
/// (INT64_MIN if none); drops members that are gone.
int64_t stalest(std::vector<std::weak_ptr<std::atomic<int64_t>>>& members) {
  int64_t lo = INT64_MAX;
  bool any = false;
  std::erase_if(members, [&](const std::weak_ptr<std::atomic<int64_t>>& w) {
    auto m = w.lock();
    if (!m)
      return true;
    auto v = m->load(std::memory_order_relaxed);
    if (v != INT64_MIN) {
      lo = std::min(lo, v);
      any = true;
    }
    return false;
  });
  return any ? lo : INT64_MIN;
}

} // namespace

freshness_probe::~freshness_probe() {
  leave();
}

freshness_probe& freshness_probe::operator=(freshness_probe&& other) noexcept {
  if (this != &other) {
    leave();
    group_ = std::move(other.group_);
    newest_ = std::move(other.newest_);
  }
  return *this;
}

void freshness_probe::leave() noexcept {
  if (!group_ || !newest_)
    return;
  auto g = std::move(group_); // outlives the lock below
  std::lock_guard lock{g->mtx};
  auto mine = newest_->load(std::memory_order_relaxed);
  newest_.reset();
  // The last actor of the name to process anything: the next one continues from its newest.
  if (stalest(g->members) == INT64_MIN && mine != INT64_MIN)
    g->newest = mine;
}

void freshness_probe::processed(int64_t event_ms) noexcept {
  if (newest_ && event_ms > newest_->load(std::memory_order_relaxed))
    newest_->store(event_ms, std::memory_order_relaxed);
}

void freshness_probe::publish(int64_t now_ms) {
  if (!group_)
    return;
  std::lock_guard lock{group_->mtx};
  if (auto v = stalest(group_->members); v != INT64_MIN)
    group_->newest = v;
  if (group_->newest == INT64_MIN)
    return; // no event processed yet
  if (group_->gauge == nullptr)
    group_->gauge = &group_->family->Add({{"actor", group_->actor}});
  group_->gauge->Set(static_cast<double>(now_ms - group_->newest) * 1e-3);
}

freshness_probe metrics::freshness(const std::string& actor) {
  std::shared_ptr<freshness_probe::group> g;
  {
    std::lock_guard lock{freshness_mtx_};
    auto& slot = freshness_groups_[actor];
    if (!slot) {
      slot = std::make_shared<freshness_probe::group>();
      slot->family = freshness_;
      slot->actor = actor;
    }
    g = slot;
  }
  freshness_probe p;
  p.newest_ = std::make_shared<std::atomic<int64_t>>(INT64_MIN);
  {
    std::lock_guard lock{g->mtx};
    g->members.push_back(p.newest_);
  }
  p.group_ = std::move(g);
  return p;
}

prometheus::Counter& metrics::failovers(uint32_t region) {
  return prometheus::BuildCounter()
      .Name("keyflow_failovers_total")
      .Help("Regions this node took over from a node that died while running them")
      .Labels({{"pipeline", pipeline_}})
      .Register(*registry_)
      .Add({{"region", std::to_string(region)}});
}

prometheus::Counter& metrics::duplicates(const std::string& op) {
  return prometheus::BuildCounter()
      .Name("keyflow_duplicates_total")
      .Help("Records dropped by a dedup operator (event id seen within its TTL)")
      .Labels({{"pipeline", pipeline_}})
      .Register(*registry_)
      .Add({{"operator", op}});
}

prometheus::Gauge& metrics::watermark(const std::string& actor) {
  return prometheus::BuildGauge()
      .Name("keyflow_watermark_timestamp_seconds")
      .Help("Event-time watermark an actor has processed up to (seconds since the Unix epoch)")
      .Labels({{"pipeline", pipeline_}})
      .Register(*registry_)
      .Add({{"actor", actor}});
}

prometheus::Gauge& metrics::watermark_lag(const std::string& actor) {
  return prometheus::BuildGauge()
      .Name("keyflow_watermark_lag_seconds")
      .Help("Wall clock minus the event-time watermark of an actor")
      .Labels({{"pipeline", pipeline_}})
      .Register(*registry_)
      .Add({{"actor", actor}});
}

prometheus::Counter& metrics::enrich_lookups(const std::string& op, const std::string& result) {
  return prometheus::BuildCounter()
      .Name("keyflow_enrich_lookups_total")
      .Help("Enrichment lookups by result: hit (cache), miss (asked Redis), missing, failed")
      .Labels({{"pipeline", pipeline_}})
      .Register(*registry_)
      .Add({{"operator", op}, {"result", result}});
}

prometheus::Gauge& metrics::gauge(const std::string& name, const std::string& help) {
  return prometheus::BuildGauge()
      .Name(name)
      .Help(help)
      .Labels({{"pipeline", pipeline_}})
      .Register(*registry_)
      .Add({});
}

prometheus::Counter& metrics::checkpoints(const std::string& result) {
  return prometheus::BuildCounter()
      .Name("keyflow_checkpoints_total")
      .Help("Checkpoints by result: completed or failed")
      .Labels({{"pipeline", pipeline_}})
      .Register(*registry_)
      .Add({{"result", result}});
}

prometheus::Counter& metrics::checkpoints_corrupt() {
  return prometheus::BuildCounter()
      .Name("keyflow_checkpoints_corrupt_total")
      .Help("Checkpoints skipped at restore because a file was missing, truncated or altered")
      .Labels({{"pipeline", pipeline_}})
      .Register(*registry_)
      .Add({});
}

prometheus::Counter& metrics::sink_transactions(const std::string& sink) {
  return prometheus::BuildCounter()
      .Name("keyflow_sink_transactions_total")
      .Help("Kafka transactions committed by an exactly-once sink (one per checkpoint)")
      .Labels({{"pipeline", pipeline_}})
      .Register(*registry_)
      .Add({{"sink", sink}});
}

prometheus::Gauge& metrics::checkpoint_duration() {
  return gauge("keyflow_checkpoint_last_duration_seconds",
               "Duration of the last completed checkpoint, trigger to manifest written");
}

prometheus::Gauge& metrics::checkpoint_size() {
  return gauge("keyflow_checkpoint_last_size_bytes", "Size of the last completed checkpoint");
}

prometheus::Gauge& metrics::checkpoint_alignment() {
  return gauge("keyflow_checkpoint_last_alignment_seconds",
               "Longest barrier alignment of a partition actor in the last checkpoint");
}

prometheus::Gauge& metrics::checkpoint_id() {
  return gauge("keyflow_checkpoint_last_id", "Id of the last completed checkpoint");
}

prometheus::Gauge& metrics::checkpoint_age() {
  return gauge("keyflow_checkpoint_age_seconds", "Time since the last completed checkpoint");
}

prometheus::Gauge& metrics::restore_duration() {
  return gauge("keyflow_restore_duration_seconds",
               "Time the restore from a checkpoint took when the node started");
}

prometheus::Gauge& metrics::cluster_members(const std::string& state) {
  return prometheus::BuildGauge()
      .Name("keyflow_cluster_members")
      .Help("Cluster members this node sees, by state (alive, dead)")
      .Labels({{"pipeline", pipeline_}})
      .Register(*registry_)
      .Add({{"state", state}});
}

prometheus::Gauge& metrics::cluster_coordinator() {
  return gauge("keyflow_cluster_coordinator", "1 while this node is the cluster's coordinator");
}

prometheus::Gauge& metrics::cluster_assignment_version() {
  return gauge("keyflow_cluster_assignment_version",
               "Version of the region assignment this node follows");
}

prometheus::Gauge& metrics::hot_keys(const std::string& actor) {
  return prometheus::BuildGauge()
      .Name("keyflow_hot_keys")
      .Help("Keys over the hot-key share of a partition actor's records")
      .Labels({{"pipeline", pipeline_}})
      .Register(*registry_)
      .Add({{"actor", actor}});
}

prometheus::Gauge& metrics::hot_key_share(const std::string& actor) {
  return prometheus::BuildGauge()
      .Name("keyflow_hot_key_share")
      .Help("Guaranteed share of a partition actor's recent records that its heaviest key has")
      .Labels({{"pipeline", pipeline_}})
      .Register(*registry_)
      .Add({{"actor", actor}});
}

prometheus::Counter& metrics::hot_keys_detected(const std::string& actor) {
  return prometheus::BuildCounter()
      .Name("keyflow_hot_keys_detected_total")
      .Help("Keys that became hot on a partition actor (each is logged by name)")
      .Labels({{"pipeline", pipeline_}})
      .Register(*registry_)
      .Add({{"actor", actor}});
}

prometheus::Counter& metrics::restarts(const std::string& instance, const std::string& cause) {
  return prometheus::BuildCounter()
      .Name("keyflow_restarts_total")
      .Help("Restarts of a pipeline instance from its last checkpoint after a failure")
      .Labels({{"pipeline", pipeline_}})
      .Register(*registry_)
      .Add({{"instance", instance}, {"cause", cause}});
}

prometheus::Counter& metrics::region_starts(uint32_t region) {
  return prometheus::BuildCounter()
      .Name("keyflow_region_starts_total")
      .Help("Regions started on this node from their last complete checkpoint")
      .Labels({{"pipeline", pipeline_}})
      .Register(*registry_)
      .Add({{"region", std::to_string(region)}});
}

prometheus::Counter& metrics::region_stops(uint32_t region, const std::string& reason) {
  return prometheus::BuildCounter()
      .Name("keyflow_region_stops_total")
      .Help("Regions stopped on this node, by reason (handoff, fenced, shutdown)")
      .Labels({{"pipeline", pipeline_}})
      .Register(*registry_)
      .Add({{"region", std::to_string(region)}, {"reason", reason}});
}

prometheus::Gauge& metrics::regions_running() {
  return gauge("keyflow_regions_running", "Regions running on this node");
}

prometheus::Counter& metrics::fenced_writes(const std::string& sink) {
  return prometheus::BuildCounter()
      .Name("keyflow_fenced_writes_total")
      .Help("Sink writes refused because a newer generation of their region exists")
      .Labels({{"pipeline", pipeline_}})
      .Register(*registry_)
      .Add({{"sink", sink}});
}

prometheus::Counter& metrics::remote_batches(const std::string& sender) {
  return prometheus::BuildCounter()
      .Name("keyflow_remote_batches_total")
      .Help("Record batches sent to a partition actor on another node")
      .Labels({{"pipeline", pipeline_}})
      .Register(*registry_)
      .Add({{"sender", sender}});
}

local_histogram::local_histogram(prometheus::Histogram* target)
    : target_(target), bounds_(&latency_buckets()), counts_(bounds_->size() + 1, 0.0) {}

void local_histogram::observe(double v, size_t count) noexcept {
  auto i = std::lower_bound(bounds_->begin(), bounds_->end(), v) - bounds_->begin();
  counts_[static_cast<size_t>(i)] += static_cast<double>(count);
  sum_ += v * static_cast<double>(count);
  n_ += count;
}

void local_histogram::publish() {
  if (n_ == 0 || target_ == nullptr)
    return;
  target_->ObserveMultiple(counts_, sum_);
  std::fill(counts_.begin(), counts_.end(), 0.0);
  sum_ = 0;
  n_ = 0;
}

} // namespace keyflow::metrics
