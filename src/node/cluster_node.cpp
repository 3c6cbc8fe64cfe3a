#include "node/cluster_node.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include <map>
#include <set>
#include <thread>
#include <unistd.h>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "cluster/assignment.hpp"
#include "config/pipeline_config.hpp"
#include "node/admin_server.hpp"
#include "redis/redis_client.hpp"
#include "state/state_store.hpp"

namespace keyflow::node {

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

/// Raises the fence to `generation` unless it is higher already; returns the fence after.
constexpr const char* raise_fence_script = R"lua(
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local gen = tonumber(ARGV[1])
if cur < gen then
  redis.call('SET', KEYS[1], ARGV[1])
  return gen
end
return cur
)lua";

/// One region running on this node.
struct region_runtime {
  uint64_t generation = 0;
  std::unique_ptr<state::checkpoint_store> checkpoints;
  std::unique_ptr<state::state_store> store;
  running_pipeline run;
};

} // namespace

class region_manager {
public:
  region_manager(caf::actor_system& sys, const node_env& env, uint32_t regions,
                 std::shared_ptr<cluster::cluster_view> view)
      : sys_(sys), env_(env), regions_(regions), view_(std::move(view)) {
    if (env_.metrics != nullptr) // every series from 0: increase() sees the first failover
      for (uint32_t r = 0; r < regions_; ++r)
        env_.metrics->failovers(r);
  }

  /// One pass: stop what is no longer ours, then start at most one region that is ours and
  /// free. Returns true if it stopped or started anything (call again at once: each start
  /// decides on a fresh view, as the assignment may change while a region starts).
  bool step() {
    auto snap = view_->get();
    if (snap.long_pauses != seen_pauses_) {
      seen_pauses_ = snap.long_pauses;
      for (auto it = running_.begin(); it != running_.end();)
        it = stop(it, "fenced");
      publish();
    }
    bool restarted = false;
    for (auto it = running_.begin(); it != running_.end();) {
      auto restart = env_.sup ? env_.sup->restart_due(it->first) : std::nullopt;
      if (!restart || clock_type::now() < restart->due) {
        ++it;
        continue;
      }
      // An actor of the region failed: stop it here; the pass below starts it again from
      // its last checkpoint (same generation, this node still owns it).
      if (env_.metrics != nullptr)
        env_.metrics->restarts("region-" + std::to_string(it->first), restart->cause).Increment();
      it = stop(it, "failed");
      restarted = true;
    }
    if (restarted)
      publish();
    if (snap.current.version == 0)
      return false;
    if (snap.current.regions.size() != regions_) {
      if (!warned_regions_)
        spdlog::error("cluster: the coordinator (node {}) assigns {} regions, this node has {}; "
                      "every node must run the same pipeline with the same --regions",
                      snap.current.coordinator, snap.current.regions.size(), regions_);
      warned_regions_ = true;
      return false;
    }
    auto mine = cluster::owned_by(snap.current, snap.self);
    auto owns = [&](uint32_t r, uint64_t g) {
      return std::any_of(mine.begin(), mine.end(), [&](const cluster::running_region& x) {
        return x.region == r && x.generation == g;
      });
    };
    bool changed = false;
    for (auto it = running_.begin(); it != running_.end();) {
      if (owns(it->first, it->second.generation)) {
        ++it;
        continue;
      }
      // Moved to another node (rescale or rebalance): hand off with a final checkpoint. A
      // stopped job: the final checkpoint is the stop snapshot's part.
      it = snap.current.stopped ? stop(it, "stopped", snap.current.stop_snapshot)
                                : stop(it, "handoff");
      publish(); // the new owner starts once it sees the region stopped here
      changed = true;
    }
    if (changed)
      return true;
    for (const auto& r : mine) {
      if (running_.count(r.region) || refused_.count({r.region, r.generation}))
        continue;
      if (auto f = retry_at_.find(r.region); f != retry_at_.end() && clock_type::now() < f->second)
        continue; // its last start failed: wait a little
      if (busy_elsewhere(snap, r.region))
        continue; // the previous owner is still handing it off
      bool started = start(r.region, r.generation);
      if (started)
        publish();
      return started;
    }
    return false;
  }

  /// Asks every running region's checkpoint coordinator for a checkpoint now.
  void checkpoint_all() {
    for (auto& [region, rt] : running_)
      if (rt.run.coordinator)
        caf::anon_send(rt.run.coordinator, atom::checkpoint_v, std::string{});
    spdlog::info("checkpoint requested (SIGUSR1) for {} region(s)", running_.size());
  }

  /// Drains every region (final checkpoints).
  void stop_all() {
    for (auto it = running_.begin(); it != running_.end();)
      it = stop(it, "shutdown");
    publish();
  }

  /// Checkpoint `name` of each of `regions` (all running here).
  nlohmann::json snapshot(const std::string& name, const std::vector<uint32_t>& regions) {
    for (auto r : regions)
      if (auto it = running_.find(r); it == running_.end() || !it->second.run.coordinator)
        throw http_error(409, "region " + std::to_string(r) + " does not run on node " +
                                  std::to_string(env_.opts->node_id) + " now");
    auto out = nlohmann::json::array();
    for (auto r : regions) {
      auto& rt = running_.at(r);
      auto info = take_named_snapshot(sys_, env_, rt.run.coordinator, *rt.checkpoints, name,
                                      "region " + std::to_string(r) + ": ");
      out.push_back({{"region", r},
                     {"generation", rt.generation},
                     {"id", info.manifest.id()},
                     {"dir", info.dir},
                     {"size_bytes", info.manifest.size_bytes()}});
    }
    spdlog::info("cluster: snapshot '{}' of {} region(s) taken here", name, regions.size());
    return out;
  }

private:
  /// True if a live member other than this node reports running `region`.
  static bool busy_elsewhere(const cluster::cluster_view::snapshot& snap, uint32_t region) {
    for (const auto& m : snap.members)
      if (!m.self && m.alive)
        for (const auto& r : m.info.running)
          if (r.region == region)
            return true;
    return false;
  }

  void publish() {
    std::vector<cluster::running_region> r;
    for (const auto& [region, rt] : running_)
      r.push_back({region, rt.generation});
    view_->set_running(std::move(r));
    if (env_.metrics != nullptr)
      env_.metrics->regions_running().Set(static_cast<double>(running_.size()));
  }

  bool start(uint32_t region, uint64_t generation) {
    const auto& opts = *env_.opts;
    auto t0 = clock_type::now();
    try {
      if (!raise_fence(env_, region, generation)) {
        refused_.insert({region, generation});
        return false;
      }
      fs::path root = fs::path{opts.checkpoint_dir} / ("region-" + std::to_string(region));
      auto chk = newest_checkpoint(env_, root, generation);
      auto state_dir = (fs::path{opts.state_dir} / ("region-" + std::to_string(region))).string();
      fs::create_directories(opts.state_dir);
      auto from = restore(env_, chk, state_dir, 1);
      region_runtime rt;
      rt.generation = generation;
      auto own = root / ("g" + std::to_string(generation));
      rt.checkpoints =
          std::make_unique<state::checkpoint_store>(own.string(), opts.checkpoints_retained);
      rt.store = state::state_store::open(state_dir, env_.plan->column_families());
      if (chk && fs::path{chk->dir}.parent_path() != own) {
        // Adopt the checkpoint into this generation's directory: from now on, checkpoints
        // an older owner may still write are never restored.
        auto m = chk->manifest;
        m.clear_files();
        m.set_size_bytes(0);
        rt.checkpoints->create(rt.store->db(), std::move(m));
      }
      instance_spec spec;
      spec.partitions = cluster::region_partitions(region, regions_, env_.source_partitions);
      spec.region = region;
      spec.generation = generation;
      spec.fence_key = opts.redis.empty() ? "" : fence_key(env_.plan->cfg.name, region);
      spec.suffix = "-r" + std::to_string(region);
      // Asked before publish() reports the region running here.
      const uint32_t failed_owner = view_->failed_owner(region);
      rt.run = start_instance(sys_, env_, spec, *rt.store, *rt.checkpoints, from);
      running_.emplace(region, std::move(rt));
      retry_at_.erase(region);
      if (env_.metrics != nullptr) {
        env_.metrics->region_starts(region).Increment();
        if (failed_owner != 0)
          env_.metrics->failovers(region).Increment();
      }
      spdlog::info(
          "cluster: region {} generation {} started from {} in {} ms{}", region, generation,
          chk ? chk->dir : std::string{"empty state"},
          std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count(),
          failed_owner != 0 ? fmt::format(" (failover from dead node {})", failed_owner) : "");
      return true;
    } catch (const std::exception& e) {
      spdlog::error("cluster: region {} generation {} failed to start: {}; retrying in 1 s", region,
                    generation, e.what());
      retry_at_[region] = clock_type::now() + std::chrono::seconds(1);
      return false;
    }
  }

  using iterator = std::map<uint32_t, region_runtime>::iterator;

  iterator stop(iterator it, const std::string& reason, const std::string& snapshot = {}) {
    auto t0 = clock_type::now();
    auto& rt = it->second;
    if (reason == "fenced" || reason == "failed")
      stop_pipeline_actors(sys_, rt.run, caf::exit_reason::kill);
    else if (auto r = drain_pipeline(sys_, rt.run, snapshot); r.failures > 0)
      spdlog::error("cluster: region {} generation {}: {} drain step(s) failed{}", it->first,
                    rt.generation, r.failures,
                    snapshot.empty() ? "" : " (snapshot '" + snapshot + "' may be missing)");
    if (env_.metrics != nullptr) {
      env_.metrics->region_stops(it->first, reason).Increment();
      // Its actors are gone: nothing reports its state store's size any more.
      env_.metrics->forget_state_store(rt.store->db()->GetName());
    }
    spdlog::info(
        "cluster: region {} generation {} stopped ({}) in {} ms", it->first, rt.generation, reason,
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count());
    return running_.erase(it);
  }

  caf::actor_system& sys_;
  const node_env& env_;
  uint32_t regions_;
  std::shared_ptr<cluster::cluster_view> view_;
  std::map<uint32_t, region_runtime> running_;
  std::set<std::pair<uint32_t, uint64_t>> refused_;
  std::map<uint32_t, clock_type::time_point> retry_at_; // after a failed start
  uint64_t seen_pauses_ = 0;
  bool warned_regions_ = false;
};

std::vector<std::pair<uint64_t, fs::path>> generation_dirs(const fs::path& root) {
  std::vector<std::pair<uint64_t, fs::path>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    auto name = e.path().filename().string();
    if (!e.is_directory() || name.size() < 2 || name[0] != 'g')
      continue;
    try {
      out.emplace_back(std::stoull(name.substr(1)), e.path());
    } catch (const std::exception&) {
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

std::optional<state::checkpoint_info> newest_checkpoint(const node_env& env, const fs::path& root,
                                                        uint64_t max_generation) {
  for (const auto& [gen, dir] : generation_dirs(root)) {
    if (gen > max_generation)
      continue;
    state::checkpoint_store s{dir.string(), env.opts->checkpoints_retained};
    auto chk = s.latest_valid([&](const std::string& d, const std::string& why) {
      spdlog::error("checkpoint {} is unusable, falling back to an older one: {}", d, why);
      if (env.metrics != nullptr)
        env.metrics->checkpoints_corrupt().Increment();
    });
    if (chk)
      return chk;
  }
  return std::nullopt;
}

bool raise_fence(const node_env& env, uint32_t region, uint64_t generation) {
  if (env.opts->redis.empty())
    return true;
  redis::client c{redis::address::parse(env.opts->redis)};
  auto key = fence_key(env.plan->cfg.name, region);
  auto gen = std::to_string(generation);
  auto now = std::stoull(c.command({"EVAL", raise_fence_script, "1", key, gen}));
  if (now > generation) {
    spdlog::warn("cluster: region {} generation {} is stale: its fence is at {}", region,
                 generation, now);
    return false;
  }
  return true;
}

void check_region_layout(const std::string& checkpoint_dir, const std::string& pipeline,
                         uint32_t regions) {
  const auto file = fs::path{checkpoint_dir} / "REGIONS";
  const auto want = "pipeline=" + pipeline + " regions=" + std::to_string(regions);
  if (std::ifstream in{file}) {
    std::string have;
    std::getline(in, have);
    if (have != want)
      throw config::config_error(
          "--checkpoint-dir " + checkpoint_dir + " holds checkpoints of '" + have +
          "', this node would run '" + want +
          "': give every node the same pipeline and "
          "--regions as when the directory was first used (moving state to another number "
          "of regions is not supported yet)");
    return;
  }
  fs::create_directories(checkpoint_dir);
  auto tmp = file;
  tmp += ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out{tmp};
    out << want << "\n";
  }
  fs::rename(tmp, file);
}

std::string fence_key(const std::string& pipeline, uint32_t region) {
  return "keyflow:fence:" + pipeline + ":" + std::to_string(region);
}

cluster_regions::cluster_regions(caf::actor_system& sys, const node_env& env, uint32_t regions,
                                 std::shared_ptr<cluster::cluster_view> view)
    : impl_(std::make_unique<region_manager>(sys, env, regions, std::move(view))) {}

cluster_regions::~cluster_regions() = default;

bool cluster_regions::step() {
  return impl_->step();
}

void cluster_regions::checkpoint_all() {
  impl_->checkpoint_all();
}

void cluster_regions::stop_all() {
  impl_->stop_all();
}

nlohmann::json cluster_regions::snapshot(const std::string& name,
                                         const std::vector<uint32_t>& regions) {
  return impl_->snapshot(name, regions);
}

int run_cluster_regions(cluster_regions& mgr, main_queue& calls,
                        const volatile std::sig_atomic_t& stop,
                        volatile std::sig_atomic_t& checkpoint) {
  while (!stop) {
    if (checkpoint) {
      checkpoint = 0;
      mgr.checkpoint_all();
    }
    if (!mgr.step())
      calls.run(std::chrono::milliseconds(50));
    else
      calls.run(std::chrono::milliseconds(0));
  }
  calls.close(); // admin calls from now on: 503
  spdlog::info("stopping: draining the regions of this node");
  mgr.stop_all();
  return 0;
}

} // namespace keyflow::node
