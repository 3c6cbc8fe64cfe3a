#include "node/standalone_job.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>

#include <caf/all.hpp>
#include <fmt/format.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include "actors/spawn.hpp"
#include "config/pipeline_config.hpp"
#include "kafka/client.hpp"
#include "metrics/metrics.hpp"
#include "node/admin_server.hpp"
#include "pipeline/state_inspect.hpp"

namespace keyflow::node {

namespace fs = std::filesystem;

standalone_job::standalone_job(caf::actor_system& sys, node_env& env,
                               const config::node_options& opts,
                               state::checkpoint_store& checkpoints)
    : sys_(sys), env_(env), opts_(opts), checkpoints_(checkpoints) {
  env_.opts = &opts_;
  for (int p = 0; p < env_.source_partitions; ++p)
    spec_.partitions.push_back(p);
}

standalone_job::~standalone_job() = default;

void standalone_job::start() {
  std::lock_guard guard{mutex_};
  if (opts_.standby) {
    spdlog::info("standby: the job stays stopped until the admin API restores a snapshot or "
                 "deploys a pipeline");
    return;
  }
  std::optional<state::checkpoint_info> chk;
  if (!opts_.restore_snapshot.empty()) {
    chk = checkpoints_.snapshot(opts_.restore_snapshot);
  } else {
    chk = checkpoints_.latest_valid([&](const std::string& dir, const std::string& why) {
      spdlog::error("checkpoint {} is unusable, falling back to an older one: {}", dir, why);
      env_.metrics->checkpoints_corrupt().Increment();
    });
  }
  if (!chk)
    spdlog::info("no checkpoint under {}: starting from empty state", checkpoints_.root());
  start_from(std::move(chk));
}

void standalone_job::start_from(std::optional<state::checkpoint_info> chk,
                                const std::vector<std::string>& drop) {
  auto taken = checkpoints_.checkpoint_ids();
  auto from = node::restore(env_, chk, opts_.state_dir, taken.empty() ? 1 : taken.front() + 1);
  store_ = state::state_store::open(opts_.state_dir, env_.plan->column_families());
  // State of operators the pipeline no longer has, or whose state must start empty.
  const auto wanted = env_.plan->column_families();
  for (const auto& cf : store_->column_family_names()) {
    bool keep = std::find(wanted.begin(), wanted.end(), cf) != wanted.end() &&
                std::find(drop.begin(), drop.end(), cf) == drop.end();
    if (!keep) {
      spdlog::warn("operator '{}': its state is dropped (not carried into pipeline '{}' v{})", cf,
                   env_.plan->cfg.name, env_.plan->cfg.version);
      store_->drop_column_family(cf);
      if (std::find(wanted.begin(), wanted.end(), cf) != wanted.end())
        store_->ensure_column_family(cf);
    }
  }
  run_ = start_instance(sys_, env_, spec_, *store_, checkpoints_, from);
  running_ = true;
  started_from_ = std::move(chk);
  first_id_ = from.next_id;
}

void standalone_job::kill() {
  if (!running_)
    return;
  stop_pipeline_actors(sys_, run_, caf::exit_reason::kill);
  store_.reset();
  running_ = false;
}

std::optional<state::checkpoint_info> standalone_job::drain(const std::string& snapshot) {
  auto before = checkpoints_.checkpoint_ids();
  auto result = drain_pipeline(sys_, run_, snapshot);
  store_.reset();
  running_ = false;
  std::optional<state::checkpoint_info> chk;
  if (!snapshot.empty()) {
    chk = checkpoints_.snapshot(snapshot); // throws if the final checkpoint failed
  } else {
    auto latest = checkpoints_.latest_valid();
    if (latest && latest->manifest.id() >= first_id_)
      chk = std::move(latest);
    else
      chk = started_from_;
  }
  if (result.failures > 0)
    spdlog::warn("stop: {} drain step(s) failed", result.failures);
  stopped_at_ = chk;
  return chk;
}

void standalone_job::tick(bool checkpoint, std::chrono::milliseconds wait) {
  calls_.run(wait);
  std::lock_guard guard{mutex_};
  if (!running_)
    return;
  if (checkpoint && run_.coordinator) { // SIGUSR1: a checkpoint now, outside the interval
    caf::anon_send(run_.coordinator, atom::checkpoint_v, std::string{});
    spdlog::info("checkpoint requested (SIGUSR1)");
  }
  auto restart = env_.sup ? env_.sup->restart_due(0) : std::nullopt;
  if (restart && std::chrono::steady_clock::now() >= restart->due) {
    // The supervisor saw an actor fail: restart from the newest checkpoint this start took,
    // else from where this start began.
    kill();
    auto latest = checkpoints_.latest_valid();
    start_from(latest && latest->manifest.id() >= first_id_ ? std::move(latest) : started_from_);
    env_.metrics->restarts("standalone", restart->cause).Increment();
  }
}

void standalone_job::shutdown(const std::string& snapshot) {
  calls_.close(); // admin calls from now on: 503
  std::lock_guard guard{mutex_};
  if (running_)
    drain(snapshot);
}

state::checkpoint_info standalone_job::find(const std::string& name) const {
  check_name("snapshot", name);
  fs::path dir;
  if (name.rfind("chk-", 0) == 0 && name.size() > 4 &&
      std::all_of(name.begin() + 4, name.end(), [](char c) { return c >= '0' && c <= '9'; }))
    dir = checkpoints_.checkpoint_dir(std::stoull(name.substr(4)));
  else
    dir = fs::path{checkpoints_.root()} / "snapshots" / name;
  if (!fs::exists(dir / "MANIFEST.pb"))
    throw http_error(404, "no snapshot or checkpoint '" + name + "' under " + checkpoints_.root());
  proto::CheckpointManifest m;
  if (auto why = checkpoints_.verify(dir.string(), &m); !why.empty())
    throw std::runtime_error("snapshot '" + name + "' does not verify: " + why);
  return {dir.string(), std::move(m)};
}

nlohmann::json standalone_job::status() {
  std::lock_guard guard{mutex_};
  const auto& cfg = env_.plan->cfg;
  nlohmann::json j{{"mode", "standalone"},
                   {"state", running_ ? "running" : "stopped"},
                   {"pipeline", cfg.name},
                   {"version", cfg.version},
                   {"file", cfg.file},
                   {"source_topic", cfg.source.topic},
                   {"partitions", env_.source_partitions},
                   {"parallelism", actors_per_stage(opts_, *env_.plan)},
                   {"max_parallelism", cfg.max_parallelism}};
  if (auto latest = checkpoints_.latest_valid()) {
    auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    j["last_checkpoint"] = {
        {"id", latest->manifest.id()},
        {"age_s", static_cast<double>(now_ms - latest->manifest.created_at_ms()) / 1000.0},
        {"size_bytes", latest->manifest.size_bytes()},
        {"duration_ms", latest->manifest.duration_ms()}};
  }
  if (started_from_)
    j["restored_from"] = summary(*started_from_)["name"];
  if (auto reg = env_.metrics->registry()) {
    j["records_read"] = metric_sum(*reg, "keyflow_records_in_total", "operator", "source");
    j["consumer_lag"] = metric_sum(*reg, "keyflow_consumer_lag_records");
    j["backpressured_seconds"] = metric_sum(*reg, "keyflow_backpressured_seconds_total");
    j["dead_letters"] = metric_sum(*reg, "keyflow_dead_letters_total");
    j["restarts"] = metric_sum(*reg, "keyflow_restarts_total");
  }
  return j;
}

nlohmann::json standalone_job::take_snapshot(const std::string& requested) {
  auto name = requested.empty() ? "snap-" + utc_stamp() : requested;
  check_name("snapshot", name);
  std::lock_guard guard{mutex_};
  if (!running_ || !run_.coordinator)
    throw http_error(409, "the job is stopped: nothing to snapshot (its final checkpoint is '" +
                              (stopped_at_ ? summary(*stopped_at_)["name"].get<std::string>()
                                           : std::string{"none"}) +
                              "')");
  if (fs::exists(fs::path{checkpoints_.root()} / "snapshots" / name / "MANIFEST.pb"))
    throw http_error(409, "snapshot '" + name + "' exists already");
  auto info = take_named_snapshot(sys_, env_, run_.coordinator, checkpoints_, name);
  spdlog::info("snapshot '{}' taken (checkpoint {}, {} bytes)", name, info.manifest.id(),
               info.manifest.size_bytes());
  return summary(info);
}

nlohmann::json standalone_job::list_snapshots() const {
  nlohmann::json snaps = nlohmann::json::array();
  std::vector<state::checkpoint_info> found;
  fs::path root{checkpoints_.root()};
  if (fs::exists(root / "snapshots"))
    for (const auto& e : fs::directory_iterator(root / "snapshots"))
      if (auto m = state::checkpoint_store::read_manifest(e.path().string()))
        found.push_back({e.path().string(), std::move(*m)});
  for (auto id : checkpoints_.checkpoint_ids())
    if (auto m = state::checkpoint_store::read_manifest(checkpoints_.checkpoint_dir(id)))
      found.push_back({checkpoints_.checkpoint_dir(id), std::move(*m)});
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return a.manifest.created_at_ms() > b.manifest.created_at_ms();
  });
  for (const auto& c : found)
    snaps.push_back(summary(c));
  return {{"root", checkpoints_.root()}, {"snapshots", std::move(snaps)}};
}

nlohmann::json standalone_job::restore(const std::string& name) {
  std::lock_guard guard{mutex_};
  auto chk = find(name);
  if (chk.manifest.pipeline() != env_.plan->cfg.name)
    throw http_error(409, "snapshot '" + name + "' belongs to pipeline '" +
                              chk.manifest.pipeline() + "', not '" + env_.plan->cfg.name + "'");
  std::vector<proto::OperatorState> stored(chk.manifest.operators().begin(),
                                           chk.manifest.operators().end());
  auto plan = pipeline::compare_plans(nullptr, *env_.plan, &stored);
  if (!plan.compatible)
    throw http_error(409, "snapshot '" + name + "' cannot be restored into pipeline '" +
                              env_.plan->cfg.name + "' v" + std::to_string(env_.plan->cfg.version) +
                              ": " + pipeline::refusal(plan));
  kill();
  start_from(chk);
  spdlog::info("restored snapshot '{}' (checkpoint {})", name, chk.manifest.id());
  return {{"restored", name},
          {"id", chk.manifest.id()},
          {"epoch", chk.manifest.epoch() + 1},
          {"offsets", chk.manifest.offsets_size()}};
}

nlohmann::json standalone_job::stop(const std::string& snapshot) {
  if (!snapshot.empty())
    check_name("snapshot", snapshot);
  std::lock_guard guard{mutex_};
  if (!running_)
    throw http_error(409, "the job is stopped already");
  if (!snapshot.empty() &&
      fs::exists(fs::path{checkpoints_.root()} / "snapshots" / snapshot / "MANIFEST.pb"))
    throw http_error(409, "snapshot '" + snapshot + "' exists already");
  auto chk = drain(snapshot);
  spdlog::info("job stopped{}", snapshot.empty() ? "" : " with snapshot '" + snapshot + "'");
  nlohmann::json j{{"stopped", true}};
  if (chk)
    j["checkpoint"] = summary(*chk);
  return j;
}

deploy_request check_deploy(const node_env& env, const pipeline::plan& current,
                            const nlohmann::json& body) {
  deploy_request d;
  const auto yaml = field(body, "yaml", true);
  const auto file = field(body, "file", false);
  d.dry_run = flag(body, "dry_run");
  d.allow_drop_state = flag(body, "allow_drop_state");
  d.next = pipeline::make_plan(config::parse_pipeline(yaml, file.empty() ? "<deploy>" : file));
  d.plan = pipeline::compare_plans(&current, *d.next);
  // Topics and services the new version needs must be there before anything stops.
  const bool redis = !env.opts->redis.empty();
  for (const auto& s : d.next->cfg.sinks) {
    if (s.type == "kafka" && kafka::partition_count(env.props, s.topic) <= 0)
      throw bad_request("sink '" + s.id + "': topic '" + s.topic + "' does not exist");
    if (s.type == "redis" && !redis)
      throw bad_request("sink '" + s.id + "' writes to Redis but the node has no --redis");
  }
  for (const auto& op : d.next->cfg.operators)
    if (op.type == "enrich" && !redis)
      throw bad_request("operator '" + op.id + "' reads Redis but the node has no --redis");
  if (kafka::partition_count(env.props, d.next->cfg.dead_letter_topic) <= 0)
    throw bad_request("dead-letter topic '" + d.next->cfg.dead_letter_topic + "' does not exist");
  return d;
}

nlohmann::json standalone_job::deploy(const nlohmann::json& body) {
  std::lock_guard guard{mutex_};
  auto [next, plan, dry_run, allow_drop] = check_deploy(env_, *env_.plan, body);
  auto j = pipeline::to_json(plan);
  if (!running_)
    j["action"] = "start";
  j["dry_run"] = dry_run;
  if (dry_run)
    return j;
  if (!plan.compatible && !allow_drop)
    throw http_error(409, pipeline::refusal(plan));
  if (j["action"] == "unchanged") {
    j["deployed"] = false;
    return j;
  }
  std::vector<std::string> drop;
  for (const auto& op : j["operators"])
    if (op.value("state", "") == "drop" || op.value("state", "") == "incompatible")
      drop.push_back(op["id"].get<std::string>());
  std::optional<state::checkpoint_info> from;
  if (running_) {
    auto name = fmt::format("pre-deploy-v{}-{}", env_.plan->cfg.version, utc_stamp());
    from = drain(name);
    j["snapshot"] = name;
  } else {
    from = stopped_at_ ? stopped_at_ : checkpoints_.latest_valid();
  }
  env_.plan = std::move(next);
  start_from(std::move(from), drop);
  spdlog::info("deployed pipeline '{}' v{} ({} operator(s) started empty)", env_.plan->cfg.name,
               env_.plan->cfg.version, drop.size());
  j["deployed"] = true;
  return j;
}

nlohmann::json standalone_job::rescale(uint32_t parallelism) {
  std::lock_guard guard{mutex_};
  const auto max = env_.plan->cfg.max_parallelism;
  if (parallelism < 1 || parallelism > max)
    throw bad_request("parallelism " + std::to_string(parallelism) + ": must be 1.." +
                      std::to_string(max) + " (max_parallelism of pipeline '" +
                      env_.plan->cfg.name + "')");
  const auto before = actors_per_stage(opts_, *env_.plan);
  std::optional<state::checkpoint_info> from = stopped_at_;
  if (running_)
    from = drain({});
  opts_.partition_actors = parallelism;
  start_from(std::move(from));
  spdlog::info("rescaled from {} to {} partition actor(s) per stage", before, parallelism);
  return {{"from", before}, {"to", parallelism}};
}

nlohmann::json standalone_job::export_snapshot(const std::string& name,
                                               const std::string& dir) const {
  auto chk = find(name);
  if (dir.empty() || fs::path{dir}.is_relative())
    throw bad_request("dir '" + dir + "': give an absolute directory");
  auto to = fs::path{dir} / name;
  if (fs::exists(to))
    throw http_error(409, to.string() + " exists already");
  copy_tree(chk.dir, to.string());
  if (auto why = checkpoints_.verify(to.string()); !why.empty())
    throw std::runtime_error("the copy at " + to.string() + " does not verify: " + why);
  spdlog::info("exported snapshot '{}' to {}", name, to.string());
  auto j = summary({to.string(), chk.manifest});
  j["exported_to"] = to.string();
  return j;
}

nlohmann::json standalone_job::import_snapshot(const std::string& dir) {
  if (dir.empty() || fs::path{dir}.is_relative())
    throw bad_request("dir '" + dir + "': give an absolute directory");
  if (!fs::exists(fs::path{dir} / "MANIFEST.pb"))
    throw http_error(404, "no snapshot at " + dir + " (no MANIFEST.pb)");
  proto::CheckpointManifest m;
  if (auto why = checkpoints_.verify(dir, &m); !why.empty())
    throw bad_request("the snapshot at " + dir + " does not verify: " + why);
  if (!m.parts().empty())
    throw bad_request("the snapshot at " + dir +
                      " is a job spread over nodes (parts); import it on a cluster");
  if (m.pipeline() != env_.plan->cfg.name)
    throw bad_request("the snapshot at " + dir + " belongs to pipeline '" + m.pipeline() +
                      "', not '" + env_.plan->cfg.name + "'");
  if (m.max_parallelism() != env_.plan->cfg.max_parallelism)
    throw bad_request("the snapshot at " + dir + " has max_parallelism " +
                      std::to_string(m.max_parallelism()) + ", pipeline '" + env_.plan->cfg.name +
                      "' has " + std::to_string(env_.plan->cfg.max_parallelism));
  auto name = m.snapshot_name().empty() ? fs::path{dir}.filename().string() : m.snapshot_name();
  check_name("snapshot", name);
  auto to = fs::path{checkpoints_.root()} / "snapshots" / name;
  if (fs::exists(to / "MANIFEST.pb"))
    throw http_error(409, "snapshot '" + name + "' exists already on this node");
  fs::remove_all(to);
  copy_tree(dir, to.string());
  if (auto why = checkpoints_.verify(to.string()); !why.empty())
    throw std::runtime_error("the imported copy " + to.string() + " does not verify: " + why);
  spdlog::info("imported snapshot '{}' from {}", name, dir);
  auto j = summary({to.string(), m});
  j["imported_from"] = dir;
  return j;
}

void standalone_job::serve(admin_server& server) {
  server.get("/status", [this](const admin_request& r) {
    r.allow_params("");
    return status();
  });
  server.get("/snapshots", [this](const admin_request& r) {
    r.allow_params("");
    return list_snapshots();
  });
  server.post("/snapshots", [this](const admin_request& r) {
    auto name = field(r.body, "name", false);
    return calls_.call([this, name] { return take_snapshot(name); });
  });
  server.get("/snapshots/(.+)/state", [this](const admin_request& r) {
    r.allow_params("operator, key, limit");
    auto chk = find(r.capture(1));
    auto q = inspect_query_of(r);
    std::lock_guard guard{mutex_};
    try {
      return pipeline::inspect_state(*env_.plan, chk, q);
    } catch (const pipeline::inspect_not_found& e) {
      throw http_error(404, e.what());
    }
  });
  server.get("/snapshots/(.+)", [this](const admin_request& r) {
    r.allow_params("");
    auto chk = find(r.capture(1));
    auto j = summary(chk);
    j["offsets"] = offsets_json(chk.manifest);
    j["files"] = chk.manifest.files_size();
    j["parts"] = chk.manifest.parts_size();
    j["duration_ms"] = chk.manifest.duration_ms();
    return j;
  });
  server.get("/diff", [this](const admin_request& r) {
    r.allow_params("a, b, operator, limit");
    auto a = r.param("a"), b = r.param("b");
    if (a.empty() || b.empty())
      throw bad_request("give both snapshots: /diff?a=NAME&b=NAME");
    auto ca = find(a), cb = find(b);
    size_t limit = 20;
    if (auto l = r.param("limit"); !l.empty())
      limit = std::stoul(l);
    std::lock_guard guard{mutex_};
    try {
      auto j = pipeline::diff_state(*env_.plan, ca, cb, r.param("operator"), limit);
      j["a"] = a;
      j["b"] = b;
      return j;
    } catch (const pipeline::inspect_not_found& e) {
      throw http_error(404, e.what());
    }
  });
  server.post("/restore", [this](const admin_request& r) {
    auto name = field(r.body, "snapshot", true);
    return calls_.call([this, name] { return restore(name); });
  });
  server.post("/stop", [this](const admin_request& r) {
    auto name = field(r.body, "snapshot", false);
    return calls_.call([this, name] { return stop(name); });
  });
  server.post("/deploy", [this](const admin_request& r) {
    return calls_.call([this, &r] { return deploy(r.body); });
  });
  server.post("/rescale", [this](const admin_request& r) {
    auto it = r.body.find("parallelism");
    if (it == r.body.end() || !it->is_number_unsigned())
      throw bad_request("body: \"parallelism\" must be a positive integer");
    auto n = it->get<uint32_t>();
    return calls_.call([this, n] { return rescale(n); });
  });
  server.post("/export", [this](const admin_request& r) {
    return export_snapshot(field(r.body, "snapshot", true), field(r.body, "dir", true));
  });
  server.post("/import", [this](const admin_request& r) {
    std::lock_guard guard{mutex_};
    return import_snapshot(field(r.body, "dir", true));
  });
}

} // namespace keyflow::node
