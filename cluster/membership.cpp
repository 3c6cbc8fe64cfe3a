#include "cluster/membership.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/type_ids.hpp"
#include "cluster/assignment.hpp"

namespace keyflow::cluster {

cluster_view::snapshot cluster_view::get() const {
  std::lock_guard lock{mtx_};
  return snap_;
}

void cluster_view::update(snapshot s) {
  std::lock_guard lock{mtx_};
  snap_ = std::move(s);
  for (const auto& m : snap_.members)
    if (!m.self)
      note_runners(m.info.id, m.info.running);
}

void cluster_view::set_running(std::vector<running_region> r) {
  std::lock_guard lock{mtx_};
  running_ = std::move(r);
  note_runners(snap_.self, running_);
}

void cluster_view::note_runners(uint32_t node, const std::vector<running_region>& running) {
  for (const auto& r : running) {
    auto [it, fresh] = last_runner_.try_emplace(r.region, node, r.generation);
    if (!fresh && r.generation >= it->second.second)
      it->second = {node, r.generation};
  }
}

uint32_t cluster_view::failed_owner(uint32_t region) const {
  std::lock_guard lock{mtx_};
  auto it = last_runner_.find(region);
  if (it == last_runner_.end() || it->second.first == snap_.self)
    return 0;
  const auto [node, generation] = it->second;
  // Dead: heard from before, silent now (a member only heard of through others is not
  // alive yet either, but nothing says it has failed).
  for (const auto& m : snap_.members)
    if (m.info.id == node && !m.alive && !m.self && m.silent_ms >= 0)
      for (const auto& r : m.info.running)
        if (r.region == region && r.generation == generation)
          return node;
  return 0;
}

std::vector<running_region> cluster_view::running() const {
  std::lock_guard lock{mtx_};
  return running_;
}

nlohmann::json cluster_view::to_json() const {
  auto s = get();
  auto here = running();
  auto regions = [](const std::vector<running_region>& rs) {
    auto out = nlohmann::json::array();
    for (const auto& r : rs)
      out.push_back({{"region", r.region}, {"generation", r.generation}});
    return out;
  };
  nlohmann::json j;
  j["node"] = s.self;
  j["coordinator"] = s.coordinator;
  j["long_pauses"] = s.long_pauses;
  j["members"] = nlohmann::json::array();
  for (const auto& m : s.members)
    j["members"].push_back({{"id", m.info.id},
                            {"address", m.info.host + ":" + std::to_string(m.info.port)},
                            {"alive", m.alive},
                            {"self", m.self},
                            {"silent_ms", m.silent_ms},
                            {"admin", m.info.admin},
                            {"running", regions(m.self ? here : m.info.running)}});
  j["assignment"] = {{"version", s.current.version},
                     {"coordinator", s.current.coordinator},
                     {"stopped", s.current.stopped},
                     {"regions", nlohmann::json::array()}};
  if (s.current.stopped && !s.current.stop_snapshot.empty())
    j["assignment"]["stop_snapshot"] = s.current.stop_snapshot;
  for (const auto& r : s.current.regions)
    j["assignment"]["regions"].push_back(
        {{"region", r.region}, {"node", r.node}, {"generation", r.generation}});
  j["running"] = regions(here);
  return j;
}

namespace {

using clock_type = std::chrono::steady_clock;
using address = std::pair<std::string, uint16_t>;

/// A member other than this node.
struct peer {
  member_info info;
  caf::actor handle; ///< who its heartbeats came from
  clock_type::time_point last_heard{};
  bool alive = false;
  bool lost = false; ///< its connection closed while it was alive: probing its port
};

/// A connection to an address: established (handle), being made, or waiting to retry.
struct link {
  caf::actor handle;
  bool connecting = false;
  clock_type::time_point next_try{};
};

struct membership_state {
  membership_config cfg;
  std::shared_ptr<cluster_view> view;
  member_info self_info;
  std::map<uint32_t, peer> peers;
  std::map<address, link> links; // seeds and every member's address
  assignment current;
  clock_type::time_point last_tick{};
  clock_type::time_point quiet_until{}; // no coordinator decisions before this
  bool joined = false;                  // has heard from another member
  bool may_bootstrap = false;           // no seeds, or this node is the first seed
  clock_type::time_point next_join_warning{};
  uint64_t long_pauses = 0;
  uint32_t coordinator = 0;
  // Coordinator only: since when each region has not run on its owner.
  std::map<uint32_t, clock_type::time_point> not_running_since;
  static inline const char* name = "keyflow.membership";
};

using self_ptr = caf::stateful_actor<membership_state>*;

/// True if assignment `a` replaces `b`: a higher version, or the same version from a
/// coordinator with a higher id (two nodes that both thought they coordinated; generations
/// carry the coordinator id in their low bits, so the adopted one has the higher ones).
bool newer(const assignment& a, const assignment& b) {
  return a.version > b.version || (a.version == b.version && a.coordinator > b.coordinator);
}

/// Publishes the state to the shared view and the metrics.
void publish(self_ptr self) {
  auto& st = self->state;
  auto now = clock_type::now();
  cluster_view::snapshot s;
  s.self = st.cfg.node_id;
  s.coordinator = st.coordinator;
  s.current = st.current;
  s.long_pauses = st.long_pauses;
  member_status me;
  me.info = st.self_info;
  me.alive = true;
  me.self = true;
  s.members.push_back(me);
  uint32_t alive = 1, dead = 0;
  for (const auto& [id, p] : st.peers) {
    member_status m;
    m.info = p.info;
    m.alive = p.alive;
    m.silent_ms =
        p.last_heard == clock_type::time_point{}
            ? -1
            : std::chrono::duration_cast<std::chrono::milliseconds>(now - p.last_heard).count();
    (p.alive ? alive : dead) += 1;
    s.members.push_back(std::move(m));
  }
  std::sort(s.members.begin(), s.members.end(),
            [](const member_status& a, const member_status& b) { return a.info.id < b.info.id; });
  st.view->update(std::move(s));
  if (auto* m = st.cfg.metrics) {
    m->cluster_members("alive").Set(alive);
    m->cluster_members("dead").Set(dead);
    m->cluster_coordinator().Set(st.coordinator == st.cfg.node_id ? 1 : 0);
    m->cluster_assignment_version().Set(static_cast<double>(st.current.version));
  }
}

/// Adopts `a` if it is newer than the current assignment.
void adopt(self_ptr self, const assignment& a) {
  auto& st = self->state;
  if (!newer(a, st.current))
    return;
  st.current = a;
  spdlog::info("cluster: assignment v{} from node {}", a.version, a.coordinator);
}

/// Elects the coordinator (lowest live id) and, if it is this node, rebalances.
void coordinate(self_ptr self) {
  auto& st = self->state;
  std::vector<uint32_t> live{st.cfg.node_id};
  for (const auto& [id, p] : st.peers)
    if (p.alive)
      live.push_back(id);
  auto coordinator = *std::min_element(live.begin(), live.end());
  if (coordinator != st.coordinator) {
    spdlog::info("cluster: coordinator is node {}{}", coordinator,
                 coordinator == st.cfg.node_id ? " (this node)" : "");
    st.coordinator = coordinator;
  }
  if (coordinator != st.cfg.node_id || clock_type::now() < st.quiet_until)
    return;
  // A stopped job moves nothing; a standby cluster waits for a restore.
  if (st.current.stopped || (st.cfg.standby && st.current.version == 0))
    return;
  if (!st.joined && !st.may_bootstrap) {
    // Only the first seed starts a new cluster by itself: a node that cannot reach the
    // cluster (wrong address, a certificate the others refuse) must not run every region
    // on its own and raise their fences under the real cluster.
    if (clock_type::now() >= st.next_join_warning) {
      spdlog::warn("cluster: not joined: no member has answered yet (seeds {}:{}...); only "
                   "the first seed starts a cluster on its own. Check the seed addresses and, "
                   "with TLS, that every node's certificate is signed by --tls-ca",
                   st.cfg.seeds.front().first, st.cfg.seeds.front().second);
      st.next_join_warning = clock_type::now() + std::chrono::seconds(5);
    }
    return;
  }
  auto next = rebalance(st.current, live, st.cfg.regions, st.cfg.node_id, st.current.version + 1,
                        st.cfg.together);
  if (next.version == st.current.version && next.coordinator == st.current.coordinator)
    return;
  std::string owners;
  for (const auto& r : next.regions)
    owners += fmt::format(" {}->{}", r.region, r.node);
  spdlog::info("cluster: new assignment v{} over {} live node(s):{}", next.version, live.size(),
               owners);
  st.current = std::move(next);
}

/// Coordinator only: a region assigned to a live node that has not run it for twice the
/// failure timeout (its start failed, or a newer fence refused its generation) gets a fresh
/// generation, which makes its owner try again.
void repair_stuck(self_ptr self) {
  auto& st = self->state;
  if (st.coordinator != st.cfg.node_id || clock_type::now() < st.quiet_until ||
      st.current.stopped) {
    st.not_running_since.clear();
    return;
  }
  auto now = clock_type::now();
  auto here = st.view->running();
  std::vector<uint32_t> stuck;
  for (const auto& r : st.current.regions) {
    const std::vector<running_region>* running = nullptr;
    if (r.node == st.cfg.node_id)
      running = &here;
    else if (auto p = st.peers.find(r.node); p != st.peers.end() && p->second.alive)
      running = &p->second.info.running;
    bool runs = running == nullptr ||
                std::any_of(running->begin(), running->end(), [&](const running_region& x) {
                  return x.region == r.region && x.generation == r.generation;
                });
    if (runs) {
      st.not_running_since.erase(r.region);
      continue;
    }
    auto [since, fresh] = st.not_running_since.try_emplace(r.region, now);
    if (now - since->second > 2 * st.cfg.failure_timeout)
      stuck.push_back(r.region);
  }
  if (stuck.empty())
    return;
  auto next = st.current;
  next.version += 1;
  next.coordinator = st.cfg.node_id;
  if (st.cfg.together) { // slices of one job restart together
    for (auto& r : next.regions)
      r.generation = generation_of(next.version, st.cfg.node_id);
    st.not_running_since.clear();
  }
  for (uint32_t r : stuck) {
    next.regions[r].generation = generation_of(next.version, st.cfg.node_id);
    st.not_running_since.erase(r);
    spdlog::warn("cluster: region {} has not run on node {} for {} ms: assignment v{} gives it "
                 "a fresh generation",
                 r, next.regions[r].node, 2 * st.cfg.failure_timeout.count(), next.version);
  }
  st.current = std::move(next);
}

/// Starts connecting to `a` unless connected, connecting or waiting to retry.
void connect(self_ptr self, const address& a) {
  auto& st = self->state;
  if (a.first == st.self_info.host && a.second == st.self_info.port)
    return;
  auto& l = st.links[a];
  auto now = clock_type::now();
  if (l.handle || l.connecting || now < l.next_try)
    return;
  l.connecting = true;
  auto mm = st.cfg.tls ? self->system().openssl_manager().actor_handle()
                       : self->system().middleman().actor_handle();
  self->request(mm, std::chrono::seconds(5), caf::connect_atom_v, a.first, a.second)
      .then(
          [self, a](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
            auto& l = self->state.links[a];
            l.connecting = false;
            if (!ptr) {
              l.next_try = clock_type::now() + std::chrono::seconds(1);
              return;
            }
            l.handle = caf::actor_cast<caf::actor>(ptr);
            self->monitor(l.handle);
            spdlog::debug("cluster: connected to {}:{}", a.first, a.second);
          },
          [self, a](caf::error& err) {
            auto& st = self->state;
            auto& l = st.links[a];
            l.connecting = false;
            l.next_try = clock_type::now() + std::chrono::seconds(1);
            auto why = self->system().render(err);
            spdlog::debug("cluster: cannot connect to {}:{}: {}", a.first, a.second, why);
            // A member whose connection just closed and whose port now refuses connections
            // has exited (crash, kill -9): no need to wait for the failure timeout. A
            // stalled member still accepts TCP connections, so it is left to the timeout.
            if (why.find("ip_connect failed") == std::string::npos)
              return;
            for (auto& [id, p] : st.peers)
              if (p.alive && p.lost && p.info.host == a.first && p.info.port == a.second) {
                p.alive = false;
                p.lost = false;
                spdlog::warn("cluster: node {} ({}:{}) is dead: its connection closed and its "
                             "port refuses connections",
                             id, a.first, a.second);
                coordinate(self);
                publish(self);
              }
          });
}

/// The heartbeat this node sends.
heartbeat make_heartbeat(self_ptr self) {
  auto& st = self->state;
  heartbeat h;
  st.self_info.running = st.view->running();
  h.from = st.self_info;
  for (const auto& [id, p] : st.peers)
    if (p.alive)
      h.members.push_back(p.info);
  h.current = st.current;
  return h;
}

/// Sends this node's heartbeat to every member and seed it is connected to.
void send_heartbeats(self_ptr self) {
  auto& st = self->state;
  auto h = make_heartbeat(self);
  std::set<caf::actor_addr> sent;
  auto send = [&](const caf::actor& to) {
    if (to && sent.insert(to.address()).second)
      self->send(to, atom::hb_v, h);
  };
  for (const auto& [a, l] : st.links)
    send(l.handle);
  for (const auto& [id, p] : st.peers)
    send(p.handle);
}

void tick(self_ptr self) {
  auto& st = self->state;
  auto now = clock_type::now();
  auto gap = now - st.last_tick;
  st.last_tick = now;
  if (gap > st.cfg.failure_timeout) {
    // This node stood still longer than the others wait: they have declared it dead and
    // moved its regions. Stop them here, forget stale silence, decide nothing until the
    // others have been heard again.
    ++st.long_pauses;
    spdlog::warn("cluster: this node was stalled for {} ms (failure timeout {} ms): the others "
                 "have declared it dead; stopping its regions until it has rejoined",
                 std::chrono::duration_cast<std::chrono::milliseconds>(gap).count(),
                 st.cfg.failure_timeout.count());
    for (auto& [id, p] : st.peers)
      if (p.alive)
        p.last_heard = now;
    st.quiet_until = now + st.cfg.failure_timeout;
  } else if (st.cfg.lease) {
    st.cfg.lease->renew_until(now + st.cfg.failure_timeout / 2);
  }
  for (auto& [id, p] : st.peers)
    if (p.alive && now - p.last_heard > st.cfg.failure_timeout) {
      p.alive = false;
      spdlog::warn(
          "cluster: node {} ({}:{}) is dead: silent for {} ms", id, p.info.host, p.info.port,
          std::chrono::duration_cast<std::chrono::milliseconds>(now - p.last_heard).count());
    }
  for (const auto& s : st.cfg.seeds)
    connect(self, s);
  for (const auto& [id, p] : st.peers)
    connect(self, {p.info.host, p.info.port});
  coordinate(self);
  repair_stuck(self);
  send_heartbeats(self);
  publish(self);
  self->delayed_send(self, st.cfg.heartbeat, atom::tick_v);
}

void on_heartbeat(self_ptr self, heartbeat& h) {
  auto& st = self->state;
  if (h.from.id == st.cfg.node_id) {
    if (h.from.incarnation != st.self_info.incarnation)
      spdlog::error("cluster: another node claims this node's id {} ({}:{}); node ids must be "
                    "unique",
                    h.from.id, h.from.host, h.from.port);
    return;
  }
  auto now = clock_type::now();
  auto& p = st.peers[h.from.id];
  if (h.from.leaving) {
    // It has drained its regions and stops: move them now rather than after the timeout.
    if (p.alive)
      spdlog::info("cluster: node {} ({}:{}) leaves", h.from.id, h.from.host, h.from.port);
    p.info = h.from;
    p.alive = false;
    coordinate(self);
    publish(self);
    return;
  }
  st.joined = true;
  if (!p.alive)
    spdlog::info("cluster: node {} ({}:{}) is alive", h.from.id, h.from.host, h.from.port);
  else if (p.info.incarnation != h.from.incarnation)
    spdlog::info("cluster: node {} restarted", h.from.id);
  p.info = h.from;
  p.alive = true;
  p.lost = false;
  p.last_heard = now;
  if (auto sender = caf::actor_cast<caf::actor>(self->current_sender()); sender && !p.handle) {
    p.handle = sender;
    self->monitor(p.handle);
  }
  for (auto& m : h.members)
    if (m.id != st.cfg.node_id && !st.peers.count(m.id)) {
      st.peers[m.id].info = m; // heard of: connect, alive once it speaks itself
      connect(self, {m.host, m.port});
    }
  adopt(self, h.current);
  coordinate(self);
  publish(self);
}

caf::behavior membership(self_ptr self, membership_config cfg, std::shared_ptr<cluster_view> view) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.view = std::move(view);
  st.self_info.id = st.cfg.node_id;
  st.self_info.host = st.cfg.host;
  st.self_info.port = st.cfg.port;
  st.self_info.job = st.cfg.job;
  st.self_info.admin = st.cfg.admin;
  st.self_info.incarnation =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  st.last_tick = clock_type::now();
  // Hear the others before deciding anything: a node that assigned regions before it knew
  // the cluster would start regions others run.
  st.quiet_until = st.last_tick + st.cfg.failure_timeout;
  st.may_bootstrap = st.cfg.seeds.empty() || (st.cfg.seeds.front().first == st.cfg.host &&
                                              st.cfg.seeds.front().second == st.cfg.port);
  st.coordinator = st.cfg.node_id;
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    for (auto& [a, l] : st.links)
      if (l.handle && l.handle.address() == dm.source) {
        l.handle = nullptr;
        l.next_try = clock_type::now();
      }
    for (auto& [id, p] : st.peers)
      if (p.handle && p.handle.address() == dm.source) {
        p.handle = nullptr;
        if (p.alive) {
          p.lost = true; // probe its port at once: refused means it has exited
          connect(self, {p.info.host, p.info.port});
        }
      }
  });
  publish(self);
  self->send(self, atom::tick_v);
  return {
      [self](atom::tick) { tick(self); },
      [self](atom::hb, heartbeat& h) { on_heartbeat(self, h); },
      [self](atom::stop) {
        // The node has drained its regions: tell everyone, so they move them at once.
        self->state.self_info.leaving = true;
        send_heartbeats(self);
        return true;
      },
      [self](atom::job_stop, std::string& snapshot) -> caf::result<uint64_t> {
        auto& st = self->state;
        if (st.coordinator != st.cfg.node_id)
          return make_error(ec::config_error, "this node is not the coordinator (node " +
                                                  std::to_string(st.coordinator) + " is)");
        if (st.current.version == 0 || st.current.stopped)
          return make_error(ec::config_error, "the job is stopped already");
        auto next = st.current;
        next.version += 1;
        next.coordinator = st.cfg.node_id;
        next.stopped = true;
        next.stop_snapshot = snapshot;
        spdlog::info("cluster: assignment v{} stops the job{}", next.version,
                     snapshot.empty() ? "" : " with snapshot '" + snapshot + "'");
        st.current = std::move(next);
        send_heartbeats(self);
        publish(self);
        return st.current.version;
      },
      [self](atom::job_restore, std::string& snapshot, uint64_t above) -> caf::result<uint64_t> {
        auto& st = self->state;
        if (st.coordinator != st.cfg.node_id)
          return make_error(ec::config_error, "this node is not the coordinator (node " +
                                                  std::to_string(st.coordinator) + " is)");
        std::vector<uint32_t> live{st.cfg.node_id};
        for (const auto& [id, p] : st.peers)
          if (p.alive)
            live.push_back(id);
        auto base = st.current;
        base.stopped = false;
        base.stop_snapshot.clear();
        // Above `above` (the highest fence in Redis): a cluster taking over from another
        // one fences the other's regions rather than being fenced by them.
        const auto version = std::max(st.current.version, above >> 16) + 1;
        auto next = rebalance(base, live, st.cfg.regions, st.cfg.node_id, version, true);
        next.version = version;
        next.coordinator = st.cfg.node_id;
        const auto generation = generation_of(version, st.cfg.node_id);
        for (auto& r : next.regions)
          r.generation = generation;
        try {
          if (st.cfg.adopt_snapshot)
            st.cfg.adopt_snapshot(generation, snapshot);
        } catch (const std::exception& e) {
          return make_error(ec::state_error, e.what());
        }
        spdlog::info("cluster: assignment v{} restores snapshot '{}' (generation {})", version,
                     snapshot, generation);
        st.current = std::move(next);
        st.not_running_since.clear();
        send_heartbeats(self);
        publish(self);
        return st.current.version;
      },
  };
}

} // namespace

caf::actor spawn_membership(caf::actor_system& sys, membership_config cfg,
                            std::shared_ptr<cluster_view> view) {
  return sys.spawn<caf::detached>(membership, std::move(cfg), std::move(view));
}

} // namespace keyflow::cluster
