#include "node/spread_job.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "cluster/assignment.hpp"
#include "node/admin_server.hpp"
#include "node/cluster_node.hpp"
#include "state/state_store.hpp"

namespace keyflow::node {

namespace fs = std::filesystem;

namespace {

using clock_type = std::chrono::steady_clock;
using cluster::spread_message;
using cluster::spread_step;

/// One slice running on this node.
struct slice_runtime {
  instance_spec spec;
  restore_point from;
  std::unique_ptr<state::checkpoint_store> checkpoints;
  std::unique_ptr<state::state_store> store;
  running_pipeline run;
  part_writer_actor writer;
  std::vector<partition_actor> stage0; ///< every slice's first stage (after wire)
  bool running = false;                ///< sources spawned
};

/// The leader's view of the generation it starts.
struct leader_state {
  uint64_t generation = 0;
  std::map<uint8_t, std::map<uint32_t, spread_message>> reports; // step -> slice -> report
  std::unique_ptr<state::checkpoint_store> checkpoints;          // job/g<generation>
  std::string checkpoint;                                        // the one it starts from
  uint64_t next_id = 1;
  uint64_t epoch = 1;
  std::vector<std::vector<caf::actor>> stages; // every slice's partition actors, per stage
  std::vector<cluster::poison_record> poison;  // every node's poison records (run)
  running_pipeline global;                     // every actor of the job, and the coordinator
  clock_type::time_point started = clock_type::now();
};

template <class Handle>
std::vector<caf::actor> untyped(const std::vector<Handle>& hs) {
  std::vector<caf::actor> out;
  for (const auto& h : hs)
    out.push_back(caf::actor_cast<caf::actor>(h));
  return out;
}

template <class Handle>
std::vector<Handle> typed(const std::vector<caf::actor>& as) {
  std::vector<Handle> out;
  for (const auto& a : as)
    out.push_back(caf::actor_cast<Handle>(a));
  return out;
}

/// Sends `a` an exit with `reason` and waits until it terminated (at most 30 s).
void kill_and_wait(caf::actor_system& sys, const caf::actor& a, caf::exit_reason reason) {
  if (!a)
    return;
  caf::scoped_actor self{sys};
  self->monitor(a);
  self->send_exit(a, reason);
  self->receive([](const caf::down_msg&) {},
                caf::after(std::chrono::seconds(30)) >>
                    [] { spdlog::error("spread job: an actor did not terminate within 30 s"); });
}

} // namespace

class spread_manager {
public:
  spread_manager(caf::actor_system& sys, const node_env& env, uint32_t slices,
                 std::shared_ptr<cluster::cluster_view> view, caf::scoped_actor& self)
      : sys_(sys), env_(env), slices_(slices), view_(std::move(view)), self_(self) {
    if (env_.metrics != nullptr) // every series from 0: increase() sees the first failover
      for (uint32_t s = 0; s < slices_; ++s)
        env_.metrics->failovers(s);
  }

  /// Follows the view: a new generation stops what runs here and starts its first step.
  void step() {
    auto snap = view_->get();
    self_id_ = snap.self;
    restart_failed();
    observe_state_stores();
    if (snap.long_pauses != seen_pauses_) {
      seen_pauses_ = snap.long_pauses;
      if (!local_.empty() || leader_) {
        stop_local("fenced");
        fenced_generation_ = generation_;
      }
    }
    if (snap.current.version == 0 || snap.current.regions.size() != slices_)
      return;
    if (snap.current.stopped) {
      stop_job(snap);
      return;
    }
    const uint64_t g = snap.current.regions.front().generation;
    if (std::any_of(snap.current.regions.begin(), snap.current.regions.end(),
                    [g](const cluster::region_owner& r) { return r.generation != g; }))
      return; // not an assignment of slices that restart together
    if (g != generation_ && g != fenced_generation_)
      begin(snap, g);
    send_pending(snap);
  }

  /// Handles messages of the job's steps for up to `wait`.
  void receive_for(std::chrono::milliseconds wait) {
    self_->receive([this](spread_message& m) { on_message(std::move(m)); },
                   caf::others >> [](caf::message_view&) -> caf::result<caf::message> {
                     return caf::message{}; // nothing else is expected: drop it
                   },
                   caf::after(wait) >> [] {});
  }

  /// The leader takes a checkpoint of the job now (SIGUSR1).
  void checkpoint_now() {
    if (leader_ && leader_->global.coordinator) {
      caf::anon_send(leader_->global.coordinator, atom::checkpoint_v, std::string{});
      spdlog::info("checkpoint requested (SIGUSR1) for the spread job ({} slices)", slices_);
    } else {
      spdlog::info("checkpoint requested (SIGUSR1): the spread job's leader is node {}; "
                   "send the signal there",
                   leader_id_);
    }
  }

  /// Stops for good: the leader of a running generation drains the whole job (sources stop
  /// everywhere, a final checkpoint, then every actor stops); anything else just stops here.
  void stop_all() {
    if (leader_ && leader_->global.coordinator) {
      spdlog::info("stopping: draining the spread job (generation {})", generation_);
      // Other nodes may be stopping at the same moment: their actors then never answer.
      auto res = drain_pipeline(sys_, leader_->global, {}, std::chrono::seconds(10));
      if (res.failures > 0)
        spdlog::warn("spread job: {} drain request(s) failed (another node stopped too); the "
                     "job restarts from its last complete checkpoint",
                     res.failures);
      leader_->global = {};
    }
    stop_local("shutdown");
  }

  /// The leader: snapshot `name` of the running job, answered once written.
  nlohmann::json snapshot(const std::string& name) {
    if (!leader_ || !leader_->global.coordinator)
      throw http_error(409, "the spread job is not running on its leader (node " +
                                std::to_string(leader_id_) + ") yet: try again");
    return summary(
        take_named_snapshot(sys_, env_, leader_->global.coordinator, *leader_->checkpoints, name));
  }

private:
  /// The job is stopped (admin API): the leader drains it with its final checkpoint (named
  /// after the stop snapshot); the other nodes keep their slices until the leader has, as
  /// the drain needs them, then stop what is left.
  void stop_job(const cluster::cluster_view::snapshot& snap) {
    if (leader_) {
      if (leader_->global.coordinator) {
        spdlog::info("spread job: stopping generation {}{}", generation_,
                     snap.current.stop_snapshot.empty()
                         ? std::string{}
                         : " with snapshot '" + snap.current.stop_snapshot + "'");
        auto res = drain_pipeline(sys_, leader_->global, snap.current.stop_snapshot,
                                  std::chrono::seconds(30));
        if (res.failures > 0)
          spdlog::error("spread job: {} drain request(s) failed while stopping", res.failures);
        leader_->global = {};
      }
      stop_local("stopped");
      fenced_generation_ = generation_;
      return;
    }
    if (local_.empty())
      return;
    for (const auto& m : snap.members)
      if (m.info.id == leader_id_ && m.alive && !m.info.running.empty())
        return; // the leader is still draining
    stop_local("stopped");
    fenced_generation_ = generation_;
  }

  /// Generation `g` replaces whatever ran: stop it, raise the fences of the slices this
  /// node owns now, report them stopped to the leader.
  void begin(const cluster::cluster_view::snapshot& snap, uint64_t g) {
    stop_local("reassigned");
    generation_ = g;
    leader_id_ = snap.current.coordinator;
    leader_handle_ = {};
    pending_.clear();
    if (leader_id_ == self_id_) {
      leader_ = std::make_unique<leader_state>();
      leader_->generation = g;
    }
    auto mine = cluster::owned_by(snap.current, self_id_);
    std::string list;
    for (const auto& r : mine) {
      try {
        if (!raise_fence(env_, r.region, g))
          continue; // a newer generation exists: this one never runs here
      } catch (const std::exception& e) {
        spdlog::error("spread job: slice {}: cannot raise its fence: {}", r.region, e.what());
        continue; // the leader waits; the coordinator gives a fresh generation
      }
      list += " " + std::to_string(r.region);
      pending_.push_back(report(spread_step::stopped, r.region));
    }
    spdlog::info("spread job: generation {} (assignment v{}, leader node {}): slices here:{}", g,
                 snap.current.version, leader_id_, list.empty() ? " none" : list);
    auto early = std::move(early_);
    early_.clear();
    for (auto& m : early)
      on_message(std::move(m));
  }

  spread_message report(spread_step step, uint32_t slice) const {
    spread_message m;
    m.generation = generation_;
    m.step = static_cast<uint8_t>(step);
    m.slice = slice;
    m.from = caf::actor_cast<caf::actor>(self_);
    return m;
  }

  /// Sends queued reports once the leader's job actor is known.
  void send_pending(const cluster::cluster_view::snapshot& snap) {
    if (pending_.empty())
      return;
    if (!leader_handle_) {
      if (leader_id_ == self_id_)
        leader_handle_ = caf::actor_cast<caf::actor>(self_);
      else
        for (const auto& m : snap.members)
          if (m.info.id == leader_id_ && m.alive)
            leader_handle_ = m.info.job;
      if (!leader_handle_)
        return;
    }
    for (auto& m : pending_)
      self_->send(leader_handle_, std::move(m));
    pending_.clear();
  }

  void send_report(spread_message m) {
    if (leader_handle_)
      self_->send(leader_handle_, std::move(m));
    else
      pending_.push_back(std::move(m));
  }

  void on_message(spread_message m) {
    if (m.generation < generation_)
      return;
    if (m.generation > generation_) { // before this node saw the assignment
      early_.push_back(std::move(m));
      return;
    }
    try {
      switch (static_cast<spread_step>(m.step)) {
      case spread_step::prepare:
        on_prepare(m);
        break;
      case spread_step::wire:
        on_wire(m);
        break;
      case spread_step::run:
        on_run(m);
        break;
      default:
        if (leader_)
          on_report(std::move(m));
      }
    } catch (const std::exception& e) {
      // No answer: the leader waits, and the coordinator gives every slice a fresh
      // generation once this one has not run for twice the failure timeout.
      spdlog::error("spread job: generation {} slice {} step {} failed: {}", m.generation, m.slice,
                    m.step, e.what());
    }
  }

  // ---- owner of a slice -------------------------------------------------------------

  void on_prepare(const spread_message& m) {
    const auto& opts = *env_.opts;
    const uint32_t s = m.slice;
    auto t0 = clock_type::now();
    std::optional<state::checkpoint_info> part;
    if (!m.checkpoint.empty()) {
      auto job = state::checkpoint_store::read_manifest(m.checkpoint);
      if (!job)
        throw std::runtime_error("job checkpoint " + m.checkpoint + " has no readable manifest");
      for (const auto& p : job->parts())
        if (p.slice() == s) {
          auto dir = (fs::path{m.checkpoint} / p.dir()).lexically_normal().string();
          auto pm = state::checkpoint_store::read_manifest(dir);
          if (!pm)
            throw std::runtime_error("part " + dir + " has no readable manifest");
          part = state::checkpoint_info{dir, std::move(*pm)};
        }
      if (!part && job->parts_size() > 0)
        throw std::runtime_error("job checkpoint " + m.checkpoint + " has no part for slice " +
                                 std::to_string(s));
    }
    auto rt = std::make_unique<slice_runtime>();
    auto state_dir = (fs::path{opts.state_dir} / ("slice-" + std::to_string(s))).string();
    fs::create_directories(opts.state_dir);
    rt->from = restore(env_, part, state_dir, 1);
    auto own = fs::path{opts.checkpoint_dir} / ("slice-" + std::to_string(s)) /
               ("g" + std::to_string(generation_));
    rt->checkpoints =
        std::make_unique<state::checkpoint_store>(own.string(), opts.checkpoints_retained + 2);
    rt->store = state::state_store::open(state_dir, env_.plan->column_families());
    rt->spec.partitions = cluster::region_partitions(s, slices_, env_.source_partitions);
    rt->spec.region = s;
    rt->spec.generation = generation_;
    rt->spec.fence_key = opts.redis.empty() ? "" : fence_key(env_.plan->cfg.name, s);
    rt->spec.suffix = "-s" + std::to_string(s);
    rt->spec.spread = true;
    supervised_start(env_, rt->spec); // a failure stops the job here; see restart_failed()
    rt->run = prepare_slice(sys_, env_, rt->spec, *rt->store, slices_);
    watch_actors(env_, rt->spec, rt->run);
    rt->writer = spawn_part_writer(sys_, rt->store.get(), rt->checkpoints.get());
    auto r = report(spread_step::prepared, s);
    if (env_.sup) // the leader hands every node's poison records to every node at `run`
      for (const auto& [at, info] : env_.sup->hints()->poison)
        r.poison.push_back({at.first, at.second, info.op, info.error, info.attempts});
    for (const auto& stage : rt->run.stages)
      r.stages.push_back(untyped(stage));
    r.part_writer = caf::actor_cast<caf::actor>(rt->writer);
    spdlog::info(
        "spread job: slice {} generation {} prepared from {} in {} ms ({} partitions: {})", s,
        generation_, part ? part->dir : std::string{"empty state"},
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count(),
        rt->spec.partitions.size(), fmt::join(rt->spec.partitions, ","));
    local_[s] = std::move(rt);
    send_report(std::move(r));
  }

  /// An actor of a local slice failed (the supervisor scheduled a restart): the job stops
  /// on this node and the generation is given up; the coordinator sees the slices not
  /// running and, after twice the failure timeout, gives the job a fresh generation, which
  /// restarts every slice from the job's last checkpoint (with the supervisor's hints).
  void restart_failed() {
    if (!env_.sup)
      return;
    for (const auto& [s, rt] : local_) {
      auto restart = env_.sup->restart_due(s);
      if (!restart || clock_type::now() < restart->due)
        continue;
      spdlog::warn("spread job: slice {} generation {} failed; the job restarts from its last "
                   "checkpoint once the coordinator gives it a new generation",
                   s, generation_);
      if (env_.metrics != nullptr)
        env_.metrics->restarts("slice-" + std::to_string(s), restart->cause).Increment();
      stop_local("failed");
      fenced_generation_ = generation_;
      return;
    }
  }

  slice_runtime& slice(uint32_t s) {
    auto it = local_.find(s);
    if (it == local_.end())
      throw std::runtime_error("slice " + std::to_string(s) + " is not prepared here");
    return *it->second;
  }

  void on_wire(const spread_message& m) {
    auto& rt = slice(m.slice);
    if (m.stages.size() != rt.run.stages.size())
      throw std::runtime_error("wire: " + std::to_string(m.stages.size()) + " stages, " +
                               std::to_string(rt.run.stages.size()) + " here");
    for (size_t k = 0; k + 1 < rt.run.stages.size(); ++k)
      for (auto& a : rt.run.stages[k])
        self_->send(a, atom::connect_v, m.stages[k + 1]);
    rt.stage0 = typed<partition_actor>(m.stages.front());
    send_report(report(spread_step::wired, m.slice));
  }

  void on_run(const spread_message& m) {
    auto& rt = slice(m.slice);
    if (env_.sup && !m.poison.empty()) { // other nodes' poison records: sources read them here
      std::map<record_position, poison_info> more;
      for (const auto& p : m.poison)
        more[{p.partition, p.offset}] = poison_info{p.op, p.error, p.attempts};
      env_.sup->add_poison(more);
      rt.spec.supervised.hints = env_.sup->hints();
    }
    start_slice_sources(sys_, env_, rt.spec, rt.from, rt.stage0, rt.run);
    watch_actors(env_, rt.spec, rt.run);
    rt.running = true;
    auto r = report(spread_step::running, m.slice);
    r.sources = untyped(rt.run.sources);
    r.redis = untyped(rt.run.redis);
    r.kafka = untyped(rt.run.kafka);
    // Asked before publish() reports the slice running here.
    if (auto failed_owner = view_->failed_owner(m.slice); failed_owner != 0) {
      spdlog::info("spread job: slice {} generation {} taken over from dead node {} (failover)",
                   m.slice, generation_, failed_owner);
      if (env_.metrics != nullptr)
        env_.metrics->failovers(m.slice).Increment();
    }
    if (env_.metrics != nullptr)
      env_.metrics->region_starts(m.slice).Increment();
    publish();
    send_report(std::move(r));
  }

  // ---- leader -----------------------------------------------------------------------

  void on_report(spread_message m) {
    auto& l = *leader_;
    const auto step = static_cast<spread_step>(m.step);
    auto& got = l.reports[m.step];
    got[m.slice] = std::move(m);
    if (got.size() < slices_)
      return;
    switch (step) {
    case spread_step::stopped:
      choose_checkpoint();
      command(spread_step::prepare, got);
      break;
    case spread_step::prepared:
      if (!collect_stages())
        return;
      l.poison.clear();
      for (const auto& [s, r] : got)
        for (const auto& p : r.poison)
          l.poison.push_back(p);
      command(spread_step::wire, got);
      break;
    case spread_step::wired:
      command(spread_step::run, got);
      break;
    case spread_step::running:
      start_coordinator();
      break;
    default:
      break;
    }
  }

  /// Sends the command `step` to the owner of every slice.
  void command(spread_step step, const std::map<uint32_t, spread_message>& owners) {
    auto& l = *leader_;
    for (const auto& [s, r] : owners) {
      spread_message c;
      c.generation = l.generation;
      c.step = static_cast<uint8_t>(step);
      c.slice = s;
      c.from = caf::actor_cast<caf::actor>(self_);
      c.checkpoint = l.checkpoint;
      if (step == spread_step::wire)
        c.stages = l.stages;
      if (step == spread_step::run)
        c.poison = l.poison;
      self_->send(r.from, std::move(c));
    }
  }

  /// The newest complete job checkpoint of the highest generation up to this one, adopted
  /// into this generation's directory (an empty marker, id 0, when there is none yet).
  void choose_checkpoint() {
    auto& l = *leader_;
    const auto& opts = *env_.opts;
    const fs::path root = fs::path{opts.checkpoint_dir} / "job";
    auto chk = newest_checkpoint(env_, root, l.generation);
    auto own = root / ("g" + std::to_string(l.generation));
    l.checkpoints =
        std::make_unique<state::checkpoint_store>(own.string(), opts.checkpoints_retained);
    proto::CheckpointManifest m;
    if (chk) {
      m = chk->manifest;
      for (auto& p : *m.mutable_parts())
        p.set_dir((fs::path{chk->dir} / p.dir()).lexically_normal().string());
    } else {
      m.set_pipeline(env_.plan->cfg.name);
      m.set_pipeline_version(env_.plan->cfg.version);
      m.set_max_parallelism(env_.plan->cfg.max_parallelism);
      m.set_mode(env_.plan->cfg.mode);
    }
    if (!chk || fs::path{chk->dir}.parent_path() != own) {
      if (fs::exists(fs::path{l.checkpoints->checkpoint_dir(m.id())}))
        fs::remove_all(l.checkpoints->checkpoint_dir(m.id()));
      chk = l.checkpoints->commit_parts(std::move(m));
    }
    l.checkpoint = chk->dir;
    l.next_id = chk->manifest.id() + 1;
    l.epoch = chk->manifest.epoch() + 1;
    spdlog::info("spread job: generation {} starts from {} ({})", l.generation, l.checkpoint,
                 chk->manifest.parts().empty()
                     ? std::string{"empty state"}
                     : "checkpoint " + std::to_string(chk->manifest.id()) + ", " +
                           std::to_string(chk->manifest.parts_size()) + " parts");
  }

  /// Every slice's partition actors, stage by stage, in key-group order; false (logged) if
  /// the slices disagree on the number of actors.
  bool collect_stages() {
    auto& l = *leader_;
    const auto& got = l.reports[static_cast<uint8_t>(spread_step::prepared)];
    l.stages.clear();
    const auto& first = got.begin()->second.stages;
    for (const auto& [s, r] : got) {
      bool same = r.stages.size() == first.size();
      for (size_t k = 0; same && k < first.size(); ++k)
        same = r.stages[k].size() == first[k].size();
      if (!same) {
        spdlog::error("spread job: slice {} has another number of partition actors per stage "
                      "than slice {}: every node must use the same --partition-actors "
                      "(or --workers)",
                      s, got.begin()->first);
        return false;
      }
    }
    l.stages.resize(first.size());
    for (const auto& [s, r] : got)
      for (size_t k = 0; k < first.size(); ++k)
        l.stages[k].insert(l.stages[k].end(), r.stages[k].begin(), r.stages[k].end());
    return true;
  }

  void start_coordinator() {
    auto& l = *leader_;
    const auto& opts = *env_.opts;
    const auto& prepared = l.reports[static_cast<uint8_t>(spread_step::prepared)];
    const auto& running = l.reports[static_cast<uint8_t>(spread_step::running)];
    running_pipeline& g = l.global;
    for (const auto& [s, r] : running) {
      auto src = typed<source_actor>(r.sources);
      g.sources.insert(g.sources.end(), src.begin(), src.end());
      auto rs = typed<redis_sink_actor>(r.redis);
      g.redis.insert(g.redis.end(), rs.begin(), rs.end());
      auto ks = typed<kafka_sink_actor>(r.kafka);
      g.kafka.insert(g.kafka.end(), ks.begin(), ks.end());
    }
    for (auto k = l.stages.size(); k-- > 0;) { // last stage first, as wire_pipeline does
      auto ps = typed<partition_actor>(l.stages[k]);
      g.partitions.insert(g.partitions.end(), ps.begin(), ps.end());
    }
    coordinator_params cp;
    cp.plan = env_.plan;
    cp.checkpoints = l.checkpoints.get();
    cp.sources = g.sources;
    cp.partitions = g.partitions;
    cp.redis = g.redis;
    cp.kafka = g.kafka;
    cp.interval = std::chrono::milliseconds(opts.checkpoint_interval_ms);
    cp.timeout = std::chrono::milliseconds(opts.checkpoint_timeout_ms);
    cp.first_id = l.next_id;
    cp.epoch = l.epoch;
    cp.exactly_once = env_.plan->cfg.mode == "exactly-once";
    cp.metrics = env_.metrics;
    for (const auto& [s, r] : prepared)
      cp.parts.push_back(caf::actor_cast<part_writer_actor>(r.part_writer));
    g.coordinator = spawn_checkpoint_coordinator(sys_, std::move(cp));
    std::set<caf::node_id> nodes;
    for (const auto& [s, r] : running)
      nodes.insert(r.from.node());
    spdlog::info(
        "spread job: generation {} running: {} slices on {} node(s), {} sources, {} "
        "partition actors, started in {} ms; checkpoints into {}",
        l.generation, slices_, nodes.size(), g.sources.size(), g.partitions.size(),
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - l.started)
            .count(),
        l.checkpoints->root());
  }

  // ---- both ------------------------------------------------------------------------

  /// Every second: keyflow_state_size_bytes of the local slices' state stores.
  void observe_state_stores() {
    if (env_.metrics == nullptr || clock_type::now() < next_state_size_)
      return;
    next_state_size_ = clock_type::now() + std::chrono::seconds(1);
    for (const auto& [s, rt] : local_)
      if (rt->store)
        env_.metrics->observe_state_store(*rt->store->db());
  }

  void publish() {
    std::vector<cluster::running_region> r;
    for (const auto& [s, rt] : local_)
      if (rt->running)
        r.push_back({s, generation_});
    view_->set_running(std::move(r));
    if (env_.metrics != nullptr)
      env_.metrics->regions_running().Set(static_cast<double>(local_.size()));
  }

  /// Kills every actor of the job on this node (the leader's coordinator too): the next
  /// generation restarts from a checkpoint.
  void stop_local(const std::string& reason) {
    if (leader_) {
      kill_and_wait(sys_, caf::actor_cast<caf::actor>(leader_->global.coordinator),
                    caf::exit_reason::kill);
      leader_.reset();
    }
    for (auto& [s, rt] : local_) {
      auto t0 = clock_type::now();
      stop_pipeline_actors(sys_, rt->run, caf::exit_reason::kill);
      kill_and_wait(sys_, caf::actor_cast<caf::actor>(rt->writer), caf::exit_reason::kill);
      if (env_.metrics != nullptr) {
        env_.metrics->region_stops(s, reason).Increment();
        if (rt->store)
          env_.metrics->forget_state_store(rt->store->db()->GetName());
      }
      spdlog::info(
          "spread job: slice {} generation {} stopped ({}) in {} ms", s, generation_, reason,
          std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count());
    }
    local_.clear();
    publish();
  }

  caf::actor_system& sys_;
  const node_env& env_;
  uint32_t slices_;
  std::shared_ptr<cluster::cluster_view> view_;
  caf::scoped_actor& self_;
  uint32_t self_id_ = 0;
  uint64_t generation_ = 0;
  uint64_t fenced_generation_ = 0;
  uint64_t seen_pauses_ = 0;
  clock_type::time_point next_state_size_{}; // next keyflow_state_size_bytes update
  uint32_t leader_id_ = 0;
  caf::actor leader_handle_;
  std::vector<spread_message> pending_; // reports waiting for the leader's handle
  std::vector<spread_message> early_;   // messages of a generation not seen yet
  std::map<uint32_t, std::unique_ptr<slice_runtime>> local_;
  std::unique_ptr<leader_state> leader_;
};

spread_job::spread_job(caf::actor_system& sys, const node_env& env, uint32_t slices,
                       std::shared_ptr<cluster::cluster_view> view, caf::scoped_actor& job)
    : impl_(std::make_unique<spread_manager>(sys, env, slices, std::move(view), job)) {}

spread_job::~spread_job() = default;

nlohmann::json spread_job::snapshot(const std::string& name, const std::vector<uint32_t>&) {
  return impl_->snapshot(name);
}

int run_spread_job(spread_job& job, main_queue& calls, const volatile std::sig_atomic_t& stop,
                   volatile std::sig_atomic_t& checkpoint) {
  auto& mgr = *job.impl_;
  while (!stop) {
    if (checkpoint) {
      checkpoint = 0;
      mgr.checkpoint_now();
    }
    mgr.step();
    mgr.receive_for(std::chrono::milliseconds(50));
    calls.run(std::chrono::milliseconds(0));
  }
  calls.close(); // admin calls from now on: 503
  spdlog::info("stopping: the spread job's actors on this node");
  mgr.stop_all();
  return 0;
}

} // namespace keyflow::node
