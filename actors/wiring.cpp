#include "actors/wiring.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/lookup_spawn.hpp"

namespace keyflow {

namespace {

/// A lookup actor per enrich operator, by operator id.
std::map<std::string, lookup_actor> spawn_lookups(caf::actor_system& sys, const wiring_params& p,
                                                  running_pipeline& run) {
  std::map<std::string, lookup_actor> lookups;
  for (const auto& op : p.plan->ops) {
    if (op.cfg->type != "enrich")
      continue;
    lookup_params lp;
    lp.address = p.redis;
    for (const auto& f : op.enrich.fields)
      lp.fields.push_back(f.hash_field);
    lp.batch_size = op.cfg->batch_size;
    lp.max_delay = std::chrono::milliseconds(op.cfg->max_delay_ms);
    lp.timeout = std::chrono::milliseconds(op.cfg->timeout_ms);
    lp.retries = op.cfg->retries;
    auto actor = spawn_lookup(sys, std::move(lp));
    lookups.emplace(op.cfg->id, actor);
    run.lookups.push_back(actor);
  }
  return lookups;
}

} // namespace

running_pipeline wire_pipeline(caf::actor_system& sys, const wiring_params& p) {
  const auto& plan = p.plan;
  running_pipeline run;
  run.parallelism = p.parallelism;
  const bool exactly_once = plan->cfg.mode == "exactly-once";
  // Sinks.
  std::vector<sink_link> links;
  for (size_t i = 0; i < plan->sinks.size(); ++i) {
    links.push_back(p.make_sink(i));
    links.back().index = i;
    if (links.back().redis)
      run.redis.push_back(links.back().redis);
    else
      run.kafka.push_back(links.back().kafka);
  }
  run.dead_letters = p.make_dead_letters();
  run.kafka.push_back(run.dead_letters);
  // Lookup actors of enrich operators.
  auto lookups = spawn_lookups(sys, p, run);
  // Partition actors, last stage first so that each stage knows the next.
  std::vector<partition_actor> next, stage0;
  const uint32_t total = p.slice ? p.total_parallelism : p.parallelism;
  run.stages.resize(static_cast<size_t>(plan->stages));
  for (int stage = plan->stages - 1; stage >= 0; --stage) {
    std::vector<partition_actor> current;
    for (uint32_t i = 0; i < p.parallelism; ++i) {
      partition_params pp;
      pp.plan = plan;
      pp.stage = stage;
      pp.store = p.store;
      pp.index = (p.slice ? p.first_index : 0) + i;
      pp.parallelism = total;
      for (const auto& l : links)
        if (plan->sinks[l.index].stage == stage)
          pp.sinks.push_back(l);
      pp.dead_letters = run.dead_letters;
      if (!p.slice)
        pp.downstream = next;
      pp.lookups = lookups;
      pp.flow = p.flow;
      pp.flush_interval = p.flush_interval;
      pp.metrics = p.metrics;
      pp.sources = stage == 0 ? (p.slice ? p.stage0_inputs : p.sources) : total;
      pp.checkpointing = p.checkpointing;
      pp.exactly_once = exactly_once;
      pp.max_state_keys = p.max_state_keys;
      pp.supervised = p.supervised;
      pp.hot_key_share = p.hot_key_share;
      current.push_back(spawn_partition(sys, std::move(pp)));
    }
    run.partitions.insert(run.partitions.end(), current.begin(), current.end());
    run.stages[static_cast<size_t>(stage)] = current;
    next = current;
    if (stage == 0)
      stage0 = current;
  }
  if (p.slice)
    return run;
  run.sources = p.make_sources(stage0, run);
  if (run.sources.size() != p.sources)
    throw std::logic_error("wire_pipeline: " + std::to_string(run.sources.size()) +
                           " sources spawned, " + std::to_string(p.sources) + " announced");
  if (p.checkpoints == nullptr)
    return run;
  coordinator_params cp;
  cp.plan = plan;
  cp.store = p.store;
  cp.checkpoints = p.checkpoints;
  cp.sources = run.sources;
  cp.partitions = run.partitions;
  cp.redis = run.redis;
  cp.kafka = run.kafka;
  cp.interval = p.checkpoint_interval;
  cp.timeout = p.checkpoint_timeout;
  cp.first_id = p.first_checkpoint_id;
  cp.epoch = p.epoch;
  cp.exactly_once = exactly_once;
  cp.metrics = p.metrics;
  run.coordinator = spawn_checkpoint_coordinator(sys, std::move(cp));
  return run;
}

drain_result drain_pipeline(caf::actor_system& sys, running_pipeline& run,
                            const std::string& snapshot, std::chrono::seconds timeout) {
  caf::scoped_actor self{sys};
  drain_result res;
  auto fail = [&res](caf::error& err) {
    ++res.failures;
    spdlog::error("drain: {}", caf::to_string(err));
  };
  for (auto& s : run.sources)
    self->request(s, timeout, atom::stop_v).receive([&](uint64_t n) { res.read += n; }, fail);
  if (run.coordinator)
    self->request(run.coordinator, timeout, atom::checkpoint_v, snapshot)
        .receive(
            [&](uint64_t id) {
              if (snapshot.empty())
                spdlog::info("final checkpoint {} written", id);
              else
                spdlog::info("final checkpoint {} written as snapshot '{}'", id, snapshot);
            },
            fail);
  // Earlier stages first: a stage is drained once everything it sent has been taken.
  for (auto i = run.partitions.rbegin(); i != run.partitions.rend(); ++i)
    self->request(*i, timeout, atom::drain_v)
        .receive([&](uint64_t n) { res.processed += n; }, fail);
  for (auto& s : run.redis)
    self->request(s, timeout, atom::drain_v).receive([](uint64_t) {}, fail);
  for (auto& s : run.kafka)
    self->request(s, timeout, atom::drain_v).receive([](uint64_t) {}, fail);
  spdlog::info("drained: {} records read, {} processed", res.read, res.processed);
  stop_pipeline_actors(sys, run, caf::exit_reason::user_shutdown);
  return res;
}

std::vector<caf::actor> pipeline_actors(const running_pipeline& run) {
  std::vector<caf::actor> all;
  auto add = [&](const auto& handles) {
    for (const auto& h : handles)
      if (h)
        all.push_back(caf::actor_cast<caf::actor>(h));
  };
  add(run.sources);
  add(run.partitions);
  add(run.redis);
  add(run.kafka);
  add(run.lookups);
  if (run.coordinator)
    all.push_back(caf::actor_cast<caf::actor>(run.coordinator));
  return all;
}

void stop_pipeline_actors(caf::actor_system& sys, running_pipeline& run, caf::exit_reason reason) {
  auto all = pipeline_actors(run);
  caf::scoped_actor self{sys};
  for (auto& a : all) {
    self->monitor(a);
    self->send_exit(a, reason);
  }
  for (size_t i = 0; i < all.size(); ++i)
    self->receive([](const caf::down_msg&) {},
                  caf::after(std::chrono::seconds(30)) >>
                      [&] {
                        spdlog::error("stop: an actor did not terminate within 30 s");
                        i = all.size();
                      });
}

} // namespace keyflow
