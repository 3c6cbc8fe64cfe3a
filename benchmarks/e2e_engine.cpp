#include "benchmarks/e2e_engine.hpp"

#include <stdexcept>
#include <thread>

#include <caf/all.hpp>

namespace keyflow::bench {

engine_settings settings_from(const run_options& o) {
  engine_settings s;
  s.workers = o.workers;
  s.parallelism = o.partitions ? o.partitions : o.workers;
  s.flow.batch_size = o.batch_size;
  s.flow.credits = o.credits;
  s.flush_interval = std::chrono::milliseconds(o.flush_interval_ms);
  return s;
}

engine_run::engine_run(std::shared_ptr<const pipeline::plan> plan, engine_settings s,
                       std::unique_ptr<state::state_store> store)
    : plan_(std::move(plan)), s_(std::move(s)), store_(std::move(store)),
      metrics_(plan_->cfg.name) {
  if (!store_) {
    dir_ = std::make_unique<temp_dir>("keyflow-bench-state-");
    store_ = state::state_store::open(dir_->path(), plan_->column_families());
  }
  s_.parallelism = std::min(s_.parallelism, plan_->cfg.max_parallelism);
  cfg_.add_message_types<caf::id_block::keyflow>();
  cfg_.set("scheduler.max-threads", static_cast<size_t>(s_.workers));
  cfg_.set("logger.console-verbosity", caf::atom("quiet"));
  sys_ = std::make_unique<caf::actor_system>(cfg_);
}

engine_run::~engine_run() {
  if (!drained_) {
    for (auto& a : run_.sources)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    for (auto& a : run_.partitions)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    for (auto& a : run_.redis)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    for (auto& a : run_.kafka)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    for (auto& a : run_.lookups)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    if (run_.coordinator)
      caf::anon_send_exit(run_.coordinator, caf::exit_reason::user_shutdown);
  }
  run_ = running_pipeline{};
  sys_.reset(); // waits for every actor before the store closes
}

void engine_run::start(std::vector<std::shared_ptr<source_reader>> readers) {
  const auto& pipe = plan_->cfg;
  wiring_params w;
  w.plan = plan_;
  w.store = store_.get();
  w.metrics = &metrics_;
  w.flow = s_.flow;
  w.parallelism = s_.parallelism;
  w.sources = static_cast<uint32_t>(readers.size());
  w.flush_interval = s_.flush_interval;
  w.max_state_keys = s_.max_state_keys;
  w.checkpointing = s_.checkpoints != nullptr;
  w.redis = s_.redis;
  w.hot_key_share = s_.hot_key_share;
  w.make_sink = [this](size_t i) {
    const auto& sp = plan_->sinks[i];
    auto t = std::make_shared<sink_tally>();
    t->id = sp.cfg->id;
    t->upsert = sp.cfg->type == "redis";
    t->slots = sp.slots;
    t->key_slots = sp.key_slots;
    sinks_.push_back(t);
    sink_link link;
    link.kafka = spawn_counting_sink(*sys_, std::move(t));
    return link;
  };
  w.make_dead_letters = [this] {
    dead_letters_ = std::make_shared<sink_tally>();
    dead_letters_->id = "dead-letters";
    return spawn_counting_sink(*sys_, dead_letters_);
  };
  w.make_sources = [&](const std::vector<partition_actor>& stage0, const running_pipeline& run) {
    std::vector<source_actor> out;
    for (size_t i = 0; i < readers.size(); ++i) {
      source_params sp{readers[i],
                       pipe.max_parallelism,
                       stage0,
                       run.dead_letters,
                       s_.flow,
                       &metrics_,
                       static_cast<uint32_t>(i),
                       pipe.source.watermark.max_out_of_orderness_ms,
                       std::chrono::milliseconds(pipe.source.watermark.idle_timeout_ms)};
      out.push_back(spawn_source(*sys_, std::move(sp)));
    }
    return out;
  };
  w.checkpoints = s_.checkpoints;
  w.checkpoint_interval = s_.checkpoint_interval;
  w.checkpoint_timeout = s_.checkpoint_timeout;
  run_ = wire_pipeline(*sys_, w);
}

drain_result engine_run::drain() {
  drained_ = true;
  auto r = drain_pipeline(*sys_, run_);
  if (r.failures > 0)
    throw std::runtime_error("drain: " + std::to_string(r.failures) + " request(s) failed");
  return r;
}

uint64_t engine_run::checkpoint() {
  if (!run_.coordinator)
    throw std::logic_error("engine_run::checkpoint: no checkpoint store");
  caf::scoped_actor self{*sys_};
  uint64_t id = 0;
  caf::error failure;
  self->request(run_.coordinator, std::chrono::seconds(900), atom::checkpoint_v, std::string{})
      .receive([&](uint64_t got) { id = got; }, [&](caf::error& e) { failure = std::move(e); });
  if (failure)
    throw std::runtime_error("checkpoint failed: " + caf::to_string(failure));
  return id;
}

uint64_t engine_run::checkpoints_completed() {
  return static_cast<uint64_t>(metrics_.checkpoints("completed").Value());
}

latency_figures engine_run::latency() {
  return histogram_percentiles(metrics_.processing_latency().Collect());
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

} // namespace keyflow::bench
