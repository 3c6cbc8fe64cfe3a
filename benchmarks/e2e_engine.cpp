#include "benchmarks/e2e_engine.hpp"

#include <stdexcept>
#include <thread>

#include <caf/all.hpp>
#include <rocksdb/iterator.h>

#include "operators/aggregate.hpp"

namespace keyflow::bench {

namespace {

/// validate + aggregate only: the keyed count/sum of the reference pipeline, nothing else.
constexpr const char* pipeline_yaml = R"(
pipeline:
  name: bench
  version: 1
  max_parallelism: 128
source:
  topic: events
dead_letters:
  topic: events-dlq
operators:
  - id: validate
    type: validate
    required: [event_id, customer_id, event_time_ms]
  - id: aggregate
    type: aggregate
    key: customer_id
)";

} // namespace

config::pipeline_config bench_pipeline() {
  return config::parse_pipeline(pipeline_yaml, "<keyflow-bench pipeline>");
}

engine_run::engine_run(const config::pipeline_config& pipe, const run_options& opts,
                       uint32_t sources)
    : pipe_(&pipe), dir_("keyflow-bench-state-"), metrics_(pipe.name) {
  flow_.batch_size = opts.batch_size;
  flow_.credits = opts.credits;
  flush_interval_ = std::chrono::milliseconds(opts.flush_interval_ms);
  store_ = state::state_store::open(dir_.path(), {pipe.aggregate.id});
  folded_ = &metrics_.records_in(pipe.aggregate.id);
  cfg_.add_message_types<caf::id_block::keyflow>();
  cfg_.set("scheduler.max-threads", static_cast<size_t>(opts.workers));
  cfg_.set("logger.console-verbosity", caf::atom("quiet"));
  sys_ = std::make_unique<caf::actor_system>(cfg_);
  for (uint32_t i = 0; i < partition_actors(opts); ++i) {
    partition_params p;
    p.pipeline = pipe_;
    p.store = store_.get();
    p.index = i;
    p.flow = flow_;
    p.flush_interval = flush_interval_;
    p.sources = sources;
    p.checkpointing = false;
    p.metrics = &metrics_;
    partitions_.push_back(spawn_partition(*sys_, std::move(p)));
  }
}

engine_run::~engine_run() {
  for (auto& s : sources_)
    caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  for (auto& p : partitions_)
    caf::anon_send_exit(p, caf::exit_reason::user_shutdown);
  sources_.clear();
  partitions_.clear();
  sys_.reset(); // waits for every actor before the store closes
}

void engine_run::add_source(std::shared_ptr<source_reader> reader) {
  source_params p;
  p.reader = std::move(reader);
  p.max_parallelism = pipe_->max_parallelism;
  p.partitions = partitions_;
  p.flow = flow_;
  p.metrics = &metrics_;
  p.index = static_cast<uint32_t>(sources_.size());
  sources_.push_back(spawn_source(*sys_, std::move(p)));
}

uint64_t engine_run::folded() const {
  return static_cast<uint64_t>(folded_->Value());
}

bool engine_run::wait_for(const prometheus::Counter& counter, uint64_t n,
                          std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (static_cast<uint64_t>(counter.Value()) < n) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return true;
}

bool engine_run::wait_folded(uint64_t n, std::chrono::seconds timeout) const {
  return wait_for(*folded_, n, timeout) && folded() == n;
}

uint64_t engine_run::drain() {
  caf::scoped_actor self{*sys_};
  const auto timeout = std::chrono::seconds(120);
  uint64_t processed = 0;
  caf::error failure;
  auto fail = [&](caf::error& err) { failure = std::move(err); };
  for (auto& s : sources_)
    self->request(s, timeout, atom::stop_v).receive([](uint64_t) {}, fail);
  for (auto& p : partitions_)
    self->request(p, timeout, atom::drain_v).receive([&](uint64_t n) { processed += n; }, fail);
  if (failure)
    throw std::runtime_error("drain failed: " + caf::to_string(failure));
  return processed;
}

latency_figures engine_run::latency() {
  return histogram_percentiles(metrics_.processing_latency().Collect());
}

totals_map engine_run::read_state() const {
  totals_map out;
  auto* cf = store_->column_family(pipe_->aggregate.id);
  std::unique_ptr<rocksdb::Iterator> it{store_->db()->NewIterator(rocksdb::ReadOptions{}, cf)};
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto k = it->key();
    auto v = it->value();
    ops::aggregate_state s;
    if (k.size() < 2 || !ops::decode(std::string_view{v.data(), v.size()}, s))
      throw std::runtime_error("corrupt state entry in the engine's store");
    out[std::string{k.data() + 2, k.size() - 2}] = {s.count, s.sum};
  }
  if (!it->status().ok())
    throw std::runtime_error("reading the engine's state failed: " + it->status().ToString());
  return out;
}

} // namespace keyflow::bench
