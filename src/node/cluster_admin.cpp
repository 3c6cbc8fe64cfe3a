#include "node/cluster_admin.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <caf/all.hpp>
#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include "actors/type_ids.hpp"
#include "config/pipeline_config.hpp"
#include "node/admin_server.hpp"
#include "node/standalone_job.hpp"
#include "pipeline/state_inspect.hpp"
#include "redis/redis_client.hpp"

namespace keyflow::node {

namespace fs = std::filesystem;

namespace {

/// Every named snapshot part on disk, unverified: name -> index of its root -> the part of
/// the highest generation.
std::map<std::string, std::map<uint32_t, state::checkpoint_info>>
scan_parts(const std::vector<std::string>& roots) {
  std::map<std::string, std::map<uint32_t, state::checkpoint_info>> out;
  for (uint32_t r = 0; r < roots.size(); ++r)
    for (const auto& [gen, dir] : generation_dirs(roots[r])) {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(dir / "snapshots", ec)) {
        auto name = e.path().filename().string();
        if (auto it = out.find(name); it != out.end() && it->second.count(r))
          continue; // a higher generation has it
        // A snapshot being written has no manifest yet: not listed.
        if (auto m = state::checkpoint_store::read_manifest(e.path().string()))
          out[name].emplace(r, state::checkpoint_info{e.path().string(), std::move(*m)});
      }
    }
  return out;
}

/// The summary of a cluster snapshot made of `parts` (region -> part).
nlohmann::json cluster_summary(const std::string& name,
                               const std::map<uint32_t, state::checkpoint_info>& parts,
                               size_t regions) {
  auto j = summary(parts.begin()->second);
  j.erase("id");
  j.erase("dir");
  j.erase("epoch");
  j["name"] = name;
  uint64_t size = 0;
  int64_t created = 0;
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [r, p] : parts) {
    size += p.manifest.size_bytes();
    created = std::max<int64_t>(created, p.manifest.created_at_ms());
    list.push_back({{"region", r},
                    {"id", p.manifest.id()},
                    {"size_bytes", p.manifest.size_bytes()},
                    {"dir", p.dir}});
  }
  j["size_bytes"] = size;
  j["created_at_ms"] = created;
  j["regions"] = regions;
  j["complete"] = parts.size() == regions;
  j["parts"] = std::move(list);
  return j;
}

/// `parts` (a vector by region) as a map.
std::map<uint32_t, state::checkpoint_info> by_region(std::vector<state::checkpoint_info> parts) {
  std::map<uint32_t, state::checkpoint_info> out;
  for (uint32_t r = 0; r < parts.size(); ++r)
    out.emplace(r, std::move(parts[r]));
  return out;
}

/// The member `id` of `snap`, or null.
const cluster::member_status* member(const cluster::cluster_view::snapshot& snap, uint32_t id) {
  for (const auto& m : snap.members)
    if (m.info.id == id)
      return &m;
  return nullptr;
}

/// Refuses a snapshot whose pipeline or operator state does not fit `p` (409).
void check_fits(const pipeline::plan& p, const std::string& name,
                const state::checkpoint_info& part) {
  if (part.manifest.pipeline() != p.cfg.name)
    throw http_error(409, "snapshot '" + name + "' belongs to pipeline '" +
                              part.manifest.pipeline() + "', not '" + p.cfg.name + "'");
  std::vector<proto::OperatorState> stored(part.manifest.operators().begin(),
                                           part.manifest.operators().end());
  auto plan = pipeline::compare_plans(nullptr, p, &stored);
  if (!plan.compatible)
    throw http_error(409, "snapshot '" + name + "' cannot be restored into pipeline '" +
                              p.cfg.name + "' v" + std::to_string(p.cfg.version) + ": " +
                              pipeline::refusal(plan));
}

} // namespace

std::vector<std::string> snapshot_roots(const std::string& checkpoint_dir, uint32_t regions,
                                        bool spread) {
  if (spread)
    return {(fs::path{checkpoint_dir} / "job").string()};
  std::vector<std::string> out;
  for (uint32_t r = 0; r < regions; ++r)
    out.push_back((fs::path{checkpoint_dir} / ("region-" + std::to_string(r))).string());
  return out;
}

std::vector<state::checkpoint_info> cluster_snapshot_parts(const std::vector<std::string>& roots,
                                                           const std::string& name) {
  check_name("snapshot", name);
  if (name.rfind("chk-", 0) == 0)
    throw bad_request("snapshot '" + name +
                      "': on a cluster, periodic checkpoints cannot be named; name a snapshot "
                      "(keyflowctl snapshot --name NAME)");
  std::vector<state::checkpoint_info> out;
  std::string missing;
  for (const auto& root : roots) {
    bool found = false;
    for (const auto& [gen, dir] : generation_dirs(root)) {
      auto d = (dir / "snapshots" / name).string();
      if (!fs::exists(fs::path{d} / "MANIFEST.pb"))
        continue;
      state::checkpoint_store store{dir.string()};
      proto::CheckpointManifest m;
      if (auto why = store.verify(d, &m); !why.empty())
        throw std::runtime_error("snapshot '" + name + "' at " + d + " does not verify: " + why);
      out.push_back({d, std::move(m)});
      found = true;
      break;
    }
    if (!found)
      missing += (missing.empty() ? "" : ", ") + fs::path{root}.filename().string();
  }
  if (out.empty())
    throw http_error(404, "no snapshot '" + name + "' under " +
                              fs::path{roots.front()}.parent_path().string());
  if (!missing.empty())
    throw http_error(409, "snapshot '" + name + "' is incomplete: no part for " + missing);
  return out;
}

void adopt_cluster_snapshot(const pipeline::plan& plan, uint32_t retained,
                            const std::vector<std::string>& roots, uint64_t generation,
                            const std::string& name) {
  auto parts = cluster_snapshot_parts(roots, name);
  for (const auto& p : parts)
    check_fits(plan, name, p);
  for (size_t r = 0; r < roots.size(); ++r) {
    auto own = fs::path{roots[r]} / ("g" + std::to_string(generation));
    state::checkpoint_store store{own.string(), retained};
    auto to = store.checkpoint_dir(parts[r].manifest.id());
    fs::remove_all(to);
    if (parts[r].manifest.parts().empty()) {
      copy_tree(parts[r].dir, to, true);
    } else { // a job manifest: written anew, naming its parts where they are
      auto m = parts[r].manifest;
      m.clear_snapshot_name();
      for (auto& p : *m.mutable_parts())
        p.set_dir((fs::path{parts[r].dir} / p.dir()).lexically_normal().string());
      store.commit_parts(std::move(m));
    }
    if (auto why = store.verify(to); !why.empty())
      throw std::runtime_error("the copy of snapshot '" + name + "' at " + to +
                               " does not verify: " + why);
  }
  spdlog::info("cluster: snapshot '{}' adopted as the start of generation {} ({} part(s))", name,
               generation, roots.size());
}

cluster_admin::cluster_admin(caf::actor_system& sys, const node_env& env, plan_box& plans,
                             uint32_t regions, bool spread,
                             std::shared_ptr<cluster::cluster_view> view, caf::actor membership,
                             local_job& job, main_queue& calls, std::string token)
    : sys_(sys), env_(env), plans_(plans), regions_(regions), spread_(spread),
      roots_(snapshot_roots(env.opts->checkpoint_dir, regions, spread)), view_(std::move(view)),
      membership_(std::move(membership)), job_(job), calls_(calls), token_(std::move(token)) {}

nlohmann::json cluster_admin::post(const std::string& url, const std::string& path,
                                   const nlohmann::json& body) const {
  httplib::Client c{url};
  if (url.rfind("https://", 0) == 0) {
    // Nodes share the admin certificate (docs/admin-api.md): it is the CA a node trusts.
    c.set_ca_cert_path(env_.opts->admin_tls_cert);
    c.enable_server_certificate_verification(true);
  }
  c.set_connection_timeout(std::chrono::seconds(5));
  c.set_read_timeout(std::chrono::seconds(300));
  httplib::Headers headers{{"Authorization", "Bearer " + token_}, {"X-Keyflow-Forwarded", "1"}};
  auto res = c.Post(path, headers, body.dump(), "application/json");
  if (!res)
    throw http_error(503, "the node at " + url + " did not answer " + path + ": " +
                              httplib::to_string(res.error()));
  auto j = nlohmann::json::parse(res->body, nullptr, false);
  if (res->status == 200 && !j.is_discarded())
    return j;
  std::string why = j.is_object() && j.contains("error") && j["error"].is_string()
                        ? j["error"].get<std::string>()
                        : res->body;
  if (res->status == 401) // the operator's token was fine here: the nodes' tokens differ
    throw http_error(502, "the node at " + url +
                              " refused this node's admin token: give every "
                              "node of the cluster the same token");
  throw http_error(res->status, why + " (node at " + url + ")");
}

nlohmann::json cluster_admin::on_coordinator(const admin_request& r, const std::string& path,
                                             const std::function<nlohmann::json()>& local) {
  auto snap = view_->get();
  if (snap.coordinator == snap.self)
    return local();
  if (r.http->has_header("X-Keyflow-Forwarded"))
    throw http_error(503, "node " + std::to_string(snap.self) +
                              " is not the coordinator (it changed while the call was "
                              "forwarded): try again");
  const auto* m = member(snap, snap.coordinator);
  if (m == nullptr || !m->alive || m->info.admin.empty())
    throw http_error(503, "the coordinator (node " + std::to_string(snap.coordinator) +
                              ") is not reachable from node " + std::to_string(snap.self) +
                              " now: try again");
  spdlog::info("admin: {} forwarded to the coordinator (node {})", path, snap.coordinator);
  return post(m->info.admin, path, r.body);
}

uint64_t cluster_admin::ask_membership(caf::message msg) {
  auto answer = calls_.call([&]() -> nlohmann::json {
    caf::scoped_actor self{sys_};
    nlohmann::json out;
    self->request(membership_, std::chrono::seconds(60), std::move(msg))
        .receive([&](uint64_t version) { out = version; },
                 [&](caf::error& err) { out = sys_.render(err); });
    return out;
  });
  if (answer.is_string())
    throw http_error(409, answer.get<std::string>());
  return answer.get<uint64_t>();
}

void cluster_admin::remove_parts(const std::string& name) const {
  for (const auto& root : roots_)
    for (const auto& [gen, dir] : generation_dirs(root))
      fs::remove_all(dir / "snapshots" / name);
}

nlohmann::json cluster_admin::take_snapshot(const std::string& requested) {
  auto name = requested.empty() ? "snap-" + utc_stamp() : requested;
  check_name("snapshot", name);
  auto snap = view_->get();
  if (snap.current.version == 0)
    throw http_error(409, "no region runs yet (a standby cluster starts with a restore)");
  if (snap.current.stopped)
    throw http_error(409, "the job is stopped: nothing to snapshot");
  if (scan_parts(roots_).count(name))
    throw http_error(409, "snapshot '" + name + "' exists already");
  // Right after a start or a restore, regions (or the spread job's coordinator) are still
  // starting: try again for a while before answering 409.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  for (;;) {
    try {
      return take_snapshot_now(name);
    } catch (const http_error& e) {
      if (e.status() != 409 || std::chrono::steady_clock::now() > deadline)
        throw;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

nlohmann::json cluster_admin::take_snapshot_now(const std::string& name) {
  auto snap = view_->get();
  if (spread_) { // the coordinator leads the job: its checkpoint coordinator writes it
    calls_.call([&] { return job_.snapshot(name, {}); });
    auto parts = cluster_snapshot_parts(roots_, name);
    spdlog::info("cluster: snapshot '{}' of the spread job taken", name);
    return cluster_summary(name, by_region(std::move(parts)), 1);
  }
  // Every region must run on its owner under the assigned generation.
  std::map<uint32_t, std::vector<uint32_t>> by_node;
  const auto here = view_->running();
  for (const auto& o : snap.current.regions) {
    const auto* m = member(snap, o.node);
    const auto& running = o.node == snap.self || m == nullptr ? here : m->info.running;
    bool runs =
        m != nullptr && m->alive && std::any_of(running.begin(), running.end(), [&](const auto& x) {
          return x.region == o.region && x.generation == o.generation;
        });
    if (!runs)
      throw http_error(409, "region " + std::to_string(o.region) + " is not running on node " +
                                std::to_string(o.node) + " yet (assignment v" +
                                std::to_string(snap.current.version) + "): try again");
    by_node[o.node].push_back(o.region);
  }
  try {
    for (const auto& [node, regions] : by_node) {
      if (node == snap.self)
        calls_.call([&, regions = regions] { return job_.snapshot(name, regions); });
      else
        post(member(snap, node)->info.admin, "/cluster/checkpoint",
             {{"name", name}, {"regions", regions}});
    }
  } catch (...) {
    remove_parts(name); // the name is free for another try
    throw;
  }
  auto parts = cluster_snapshot_parts(roots_, name);
  spdlog::info("cluster: snapshot '{}' taken in {} part(s)", name, parts.size());
  return cluster_summary(name, by_region(std::move(parts)), roots_.size());
}

nlohmann::json cluster_admin::list_snapshots() const {
  std::vector<nlohmann::json> found;
  for (const auto& [name, parts] : scan_parts(roots_))
    found.push_back(cluster_summary(name, parts, roots_.size()));
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return a["created_at_ms"].template get<int64_t>() > b["created_at_ms"].template get<int64_t>();
  });
  nlohmann::json latest = nlohmann::json::array();
  for (uint32_t r = 0; r < roots_.size(); ++r)
    for (const auto& [gen, dir] : generation_dirs(roots_[r])) {
      state::checkpoint_store store{dir.string()};
      auto ids = store.checkpoint_ids();
      if (ids.empty())
        continue;
      if (auto m = state::checkpoint_store::read_manifest(store.checkpoint_dir(ids.front())))
        latest.push_back({{spread_ ? "job" : "region", r},
                          {"generation", gen},
                          {"id", m->id()},
                          {"created_at_ms", m->created_at_ms()},
                          {"dir", store.checkpoint_dir(ids.front())}});
      break;
    }
  return {{"root", env_.opts->checkpoint_dir},
          {"regions", regions_},
          {"spread", spread_},
          {"snapshots", found},
          {"latest_checkpoints", std::move(latest)}};
}

nlohmann::json cluster_admin::describe(const std::string& name) const {
  auto parts = cluster_snapshot_parts(roots_, name);
  nlohmann::json offsets = nlohmann::json::array();
  int64_t duration = 0;
  int files = 0;
  for (const auto& p : parts) {
    for (auto& o : offsets_json(p.manifest))
      offsets.push_back(std::move(o));
    duration = std::max<int64_t>(duration, p.manifest.duration_ms());
    files += p.manifest.files_size();
  }
  auto j = cluster_summary(name, by_region(std::move(parts)), roots_.size());
  j["offsets"] = std::move(offsets);
  j["files"] = files;
  j["duration_ms"] = duration;
  return j;
}

nlohmann::json cluster_admin::inspect(const admin_request& r) const {
  const auto name = r.capture(1);
  auto parts = cluster_snapshot_parts(roots_, name);
  auto q = inspect_query_of(r);
  const auto plan = plans_.get(); // one version for every part, even if a deploy runs
  nlohmann::json out;
  std::map<std::string, size_t> index; // operator id -> position in out["operators"]
  std::string not_found;
  for (const auto& p : parts) {
    nlohmann::json j;
    try {
      j = pipeline::inspect_state(*plan, p, q);
    } catch (const pipeline::inspect_not_found& e) {
      if (!q.key) // an unknown operator: the same in every part
        throw http_error(404, e.what());
      not_found = e.what(); // the key lives in another region's part
      continue;
    }
    if (out.is_null()) {
      out = std::move(j);
      out["snapshot"] = name;
      out.erase("id");
      out["parts"] = parts.size();
      for (size_t i = 0; i < out["operators"].size(); ++i)
        index[out["operators"][i]["id"].get<std::string>()] = i;
      continue;
    }
    for (auto& op : j["operators"]) {
      auto& into = out["operators"][index.at(op["id"].get<std::string>())];
      into["keys"] = into["keys"].get<uint64_t>() + op["keys"].get<uint64_t>();
      for (auto& e : op["entries"])
        if (into["entries"].size() < q.limit)
          into["entries"].push_back(std::move(e));
    }
  }
  if (out.is_null())
    throw http_error(404, not_found);
  return out;
}

nlohmann::json cluster_admin::diff(const admin_request& r) const {
  r.allow_params("a, b, operator, limit");
  auto a = r.param("a"), b = r.param("b");
  if (a.empty() || b.empty())
    throw bad_request("give both snapshots: /diff?a=NAME&b=NAME");
  auto pa = cluster_snapshot_parts(roots_, a);
  auto pb = cluster_snapshot_parts(roots_, b);
  size_t limit = 20;
  if (auto l = r.param("limit"); !l.empty())
    limit = std::stoul(l);
  const auto plan = plans_.get(); // one version for every part, even if a deploy runs
  nlohmann::json out;
  std::map<std::string, size_t> index;
  for (size_t region = 0; region < pa.size(); ++region) {
    nlohmann::json j;
    try {
      j = pipeline::diff_state(*plan, pa[region], pb[region], r.param("operator"), limit);
    } catch (const pipeline::inspect_not_found& e) {
      throw http_error(404, e.what());
    }
    if (out.is_null()) {
      out = std::move(j);
      out.erase("a_id");
      out.erase("b_id");
      for (size_t i = 0; i < out["operators"].size(); ++i)
        index[out["operators"][i]["id"].get<std::string>()] = i;
      continue;
    }
    for (auto& op : j["operators"]) {
      auto& into = out["operators"][index.at(op["id"].get<std::string>())];
      for (const char* count : {"added", "removed", "changed", "unchanged"})
        into[count] = into[count].get<uint64_t>() + op[count].get<uint64_t>();
      for (const char* kind : {"added", "removed", "changed"})
        for (auto& e : op["examples"][kind])
          if (into["examples"][kind].size() < limit)
            into["examples"][kind].push_back(std::move(e));
    }
  }
  out["a"] = a;
  out["b"] = b;
  out["parts"] = pa.size();
  return out;
}

nlohmann::json cluster_admin::restore(const std::string& name) {
  auto parts = cluster_snapshot_parts(roots_, name);
  const auto plan = plans_.get();
  for (const auto& p : parts)
    check_fits(*plan, name, p);
  // The new generation must be above every region's fence (another cluster that ran the
  // job before, sharing this Redis, is fenced off rather than fencing this one).
  uint64_t fence = 0;
  if (!env_.opts->redis.empty()) {
    redis::client c{redis::address::parse(env_.opts->redis)};
    for (uint32_t r = 0; r < regions_; ++r) {
      auto v = c.command({"GET", fence_key(plan->cfg.name, r)});
      if (!v.empty())
        fence = std::max<uint64_t>(fence, std::stoull(v));
    }
  }
  auto version = ask_membership(caf::make_message(atom::job_restore_v, name, fence));
  nlohmann::json offsets = 0;
  for (const auto& p : parts)
    offsets = offsets.get<int>() + p.manifest.offsets_size();
  return {{"restored", name},
          {"assignment_version", version},
          {"parts", parts.size()},
          {"offsets", offsets}};
}

nlohmann::json cluster_admin::stop(const std::string& snapshot) {
  if (!snapshot.empty()) {
    check_name("snapshot", snapshot);
    if (scan_parts(roots_).count(snapshot))
      throw http_error(409, "snapshot '" + snapshot + "' exists already");
  }
  auto version = ask_membership(caf::make_message(atom::job_stop_v, snapshot));
  // Wait until no live node runs a region (each drains with its final checkpoint).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(150);
  for (;;) {
    auto snap = view_->get();
    bool running = !view_->running().empty();
    for (const auto& m : snap.members)
      if (!m.self && m.alive && !m.info.running.empty())
        running = true;
    if (!running)
      break;
    if (std::chrono::steady_clock::now() > deadline)
      throw http_error(500, "the job was told to stop (assignment v" + std::to_string(version) +
                                ") but regions still run after 150 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  spdlog::info("cluster: job stopped{}",
               snapshot.empty() ? "" : " with snapshot '" + snapshot + "'");
  nlohmann::json j{{"stopped", true}, {"assignment_version", version}};
  if (!snapshot.empty())
    j["checkpoint"] = cluster_summary(snapshot, by_region(cluster_snapshot_parts(roots_, snapshot)),
                                      roots_.size());
  return j;
}

nlohmann::json cluster_admin::export_snapshot(const std::string& name,
                                              const std::string& dir) const {
  auto parts = cluster_snapshot_parts(roots_, name);
  if (dir.empty() || fs::path{dir}.is_relative())
    throw bad_request("dir '" + dir + "': give an absolute directory");
  auto to = fs::path{dir} / name;
  if (fs::exists(to))
    throw http_error(409, to.string() + " exists already");
  for (size_t r = 0; r < roots_.size(); ++r) {
    auto part = to / fs::path{roots_[r]}.filename();
    copy_tree(parts[r].dir, part.string());
    if (spread_) // the job's parts, one per slice, beside it
      relink_parts(part, parts[r].dir, [&](uint32_t slice) {
        auto at = to / ("slice-" + std::to_string(slice));
        return std::pair{at, fs::path{".."} / at.filename()};
      });
    if (auto why = state::checkpoint_store{to.string()}.verify(part.string()); !why.empty())
      throw std::runtime_error("the copy at " + part.string() + " does not verify: " + why);
  }
  spdlog::info("exported snapshot '{}' ({} part(s)) to {}", name, roots_.size(), to.string());
  auto j = cluster_summary(name, by_region(std::move(parts)), roots_.size());
  j["exported_to"] = to.string();
  return j;
}

void cluster_admin::relink_parts(
    const fs::path& job, const std::string& from,
    const std::function<std::pair<fs::path, fs::path>(uint32_t)>& place) const {
  auto m = state::checkpoint_store::read_manifest(job.string());
  if (!m)
    throw std::runtime_error("no readable job manifest in " + job.string());
  for (auto& p : *m->mutable_parts()) {
    auto [at, relative] = place(p.slice());
    copy_tree((fs::path{from} / p.dir()).lexically_normal().string(), at.string());
    p.set_dir(relative.string());
  }
  auto tmp = job / "MANIFEST.pb.tmp";
  {
    std::ofstream out{tmp, std::ios::binary | std::ios::trunc};
    if (!m->SerializeToOstream(&out) || !out.flush())
      throw std::runtime_error("cannot write " + tmp.string());
  }
  fs::rename(tmp, job / "MANIFEST.pb");
}

nlohmann::json cluster_admin::import_snapshot(const std::string& dir) const {
  if (dir.empty() || fs::path{dir}.is_relative())
    throw bad_request("dir '" + dir + "': give an absolute directory");
  auto from = fs::path{dir}.lexically_normal();
  if (from.filename().empty())
    from = from.parent_path();
  const auto name = from.filename().string();
  check_name("snapshot", name);
  const std::string layout =
      spread_ ? "job/ (and its slices)" : "region-0 .. region-" + std::to_string(regions_ - 1);
  if (!fs::exists(from / fs::path{roots_.front()}.filename() / "MANIFEST.pb"))
    throw http_error(404, "no snapshot of this cluster's layout at " + from.string() +
                              " (expected " + layout + "; export one with keyflowctl export)");
  if (!spread_ && fs::exists(from / ("region-" + std::to_string(regions_)) / "MANIFEST.pb"))
    throw bad_request("the snapshot at " + from.string() + " has more regions than the " +
                      std::to_string(regions_) + " of this cluster");
  if (scan_parts(roots_).count(name))
    throw http_error(409, "snapshot '" + name + "' exists already in this cluster");
  state::checkpoint_store reader{from.string()};
  for (const auto& root : roots_) {
    auto part = from / fs::path{root}.filename();
    proto::CheckpointManifest m;
    if (auto why = reader.verify(part.string(), &m); !why.empty())
      throw bad_request("the snapshot at " + from.string() + " (expected " + layout +
                        ") does not verify: " + why);
    if (const auto plan = plans_.get(); m.pipeline() != plan->cfg.name)
      throw bad_request("the snapshot at " + from.string() + " belongs to pipeline '" +
                        m.pipeline() + "', not '" + plan->cfg.name + "'");
  }
  for (const auto& root : roots_) {
    auto to = fs::path{root} / "g0" / "snapshots" / name;
    fs::remove_all(to);
    auto part = from / fs::path{root}.filename();
    copy_tree(part.string(), to.string());
    if (spread_) // slice s's part goes to slice-<s>/g0/snapshots/<name>
      relink_parts(to, part.string(), [&](uint32_t slice) {
        auto rel = fs::path{"slice-" + std::to_string(slice)} / "g0" / "snapshots" / name;
        return std::pair{fs::path{env_.opts->checkpoint_dir} / rel, "../../../.." / rel};
      });
  }
  auto parts = cluster_snapshot_parts(roots_, name);
  spdlog::info("imported snapshot '{}' ({} part(s)) from {}", name, roots_.size(), from.string());
  auto j = cluster_summary(name, by_region(std::move(parts)), roots_.size());
  j["imported_from"] = from.string();
  return j;
}

nlohmann::json cluster_admin::deploy(const nlohmann::json& body) {
  const auto current = plans_.get();
  auto d = check_deploy(env_, *current, body);
  auto j = pipeline::to_json(d.plan);
  j["dry_run"] = d.dry_run;
  if (d.dry_run)
    return j;
  if (!d.plan.compatible)
    throw http_error(409, pipeline::refusal(d.plan) +
                              (d.allow_drop_state ? " (a cluster cannot drop an operator's state "
                                                    "in a deploy: restart the nodes with the new "
                                                    "file instead)"
                                                  : ""));
  if (j["action"] == "unchanged") {
    j["deployed"] = false;
    return j;
  }
  auto snap = view_->get();
  if (snap.current.version == 0)
    throw http_error(409, "no job runs yet (a standby cluster starts with a restore): restart "
                          "the nodes with the new file");
  std::string from = snap.current.stop_snapshot;
  if (!snap.current.stopped) {
    from = fmt::format("pre-deploy-v{}-{}", current->cfg.version, utc_stamp());
    stop(from);
  } else if (from.empty()) {
    throw http_error(409, "the job was stopped without a snapshot: nothing to start the new "
                          "version from; restore a snapshot first");
  }
  // Every live node runs the new version from now on, then the job restarts from the
  // snapshot: state carries over by operator id.
  const nlohmann::json plan_body{{"yaml", field(body, "yaml", true)},
                                 {"file", field(body, "file", false)}};
  for (const auto& m : view_->get().members) {
    if (!m.alive)
      continue;
    if (m.self)
      replace_plan(plan_body);
    else
      post(m.info.admin, "/cluster/plan", plan_body);
  }
  auto restored = restore(from);
  spdlog::info("cluster: deployed pipeline '{}' v{} from snapshot '{}'", d.next->cfg.name,
               d.next->cfg.version, from);
  j["deployed"] = true;
  j["snapshot"] = from;
  j["assignment_version"] = restored["assignment_version"];
  return j;
}

nlohmann::json cluster_admin::replace_plan(const nlohmann::json& body) {
  const auto yaml = field(body, "yaml", true);
  const auto file = field(body, "file", false);
  auto next = pipeline::make_plan(config::parse_pipeline(yaml, file.empty() ? "<deploy>" : file));
  return calls_.call([&] {
    if (!view_->running().empty())
      throw http_error(409, "node " + std::to_string(env_.opts->node_id) +
                                " still runs part of the job: stop it first");
    spdlog::info("cluster: this node now runs pipeline '{}' v{} ({})", next->cfg.name,
                 next->cfg.version, file.empty() ? "<deploy>" : file);
    plans_.set(next);
    return nlohmann::json{{"pipeline", next->cfg.name}, {"version", next->cfg.version}};
  });
}

void cluster_admin::serve(admin_server& server) {
  server.get("/snapshots", [this](const admin_request& r) {
    r.allow_params("");
    return list_snapshots();
  });
  server.post("/snapshots", [this](const admin_request& r) {
    auto name = field(r.body, "name", false);
    if (!name.empty())
      check_name("snapshot", name);
    return on_coordinator(r, "/snapshots", [&] { return take_snapshot(name); });
  });
  server.get("/snapshots/(.+)/state", [this](const admin_request& r) {
    r.allow_params("operator, key, limit");
    return inspect(r);
  });
  server.get("/snapshots/(.+)", [this](const admin_request& r) {
    r.allow_params("");
    return describe(r.capture(1));
  });
  server.get("/diff", [this](const admin_request& r) { return diff(r); });
  server.post("/restore", [this](const admin_request& r) {
    auto name = field(r.body, "snapshot", true);
    check_name("snapshot", name);
    return on_coordinator(r, "/restore", [&] { return restore(name); });
  });
  server.post("/stop", [this](const admin_request& r) {
    auto name = field(r.body, "snapshot", false);
    if (!name.empty())
      check_name("snapshot", name);
    return on_coordinator(r, "/stop", [&] { return stop(name); });
  });
  server.post("/export", [this](const admin_request& r) {
    return export_snapshot(field(r.body, "snapshot", true), field(r.body, "dir", true));
  });
  server.post("/import", [this](const admin_request& r) {
    return import_snapshot(field(r.body, "dir", true));
  });
  server.post("/deploy", [this](const admin_request& r) {
    if (flag(r.body, "dry_run")) // any node: the plan against the pipeline it runs
      return deploy(r.body);
    return on_coordinator(r, "/deploy", [&] { return deploy(r.body); });
  });
  // Node to node: the coordinator gives every node the deployed pipeline.
  server.post("/cluster/plan", [this](const admin_request& r) { return replace_plan(r.body); });
  server.post("/rescale", [](const admin_request&) -> nlohmann::json {
    throw http_error(409, "rescale is not available on a cluster: the regions (--regions) are "
                          "spread over the nodes; add or stop nodes to change the parallelism");
  });
  // Node to node: the coordinator asks the owners of regions for their parts of a snapshot.
  server.post("/cluster/checkpoint", [this](const admin_request& r) {
    auto name = field(r.body, "name", true);
    check_name("snapshot", name);
    std::vector<uint32_t> regions;
    auto it = r.body.find("regions");
    if (it == r.body.end() || !it->is_array())
      throw bad_request("body: \"regions\" must be an array of region numbers");
    for (const auto& x : *it) {
      if (!x.is_number_unsigned() || x.get<uint32_t>() >= regions_)
        throw bad_request("body: region " + x.dump() + " is not a region of this cluster");
      regions.push_back(x.get<uint32_t>());
    }
    return calls_.call([&] { return nlohmann::json{{"parts", job_.snapshot(name, regions)}}; });
  });
}

} // namespace keyflow::node
