// Checkpoint coordinator: triggers checkpoint `id` at every source (which records its
// position and sends barrier `id` to every partition actor), waits for every partition actor
// to acknowledge that its state as of the barrier is in RocksDB, has the sinks write out
// everything they were handed before (so no output of the checkpointed state is only in a
// buffer), then writes a RocksDB checkpoint and, last, its manifest (sources' offsets, files
// with checksums). A checkpoint
// that times out or fails is counted and the next one starts at the next interval.

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <deque>
#include <tuple>
#include <utility>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/spawn.hpp"
#include "core/key_group.hpp"
#include "pipeline/state_inspect.hpp"

namespace keyflow {

namespace {

using clock_type = std::chrono::steady_clock;

struct pending_request {
  std::string name;
  caf::typed_response_promise<uint64_t> promise;
};

struct coordinator_state {
  coordinator_params p;
  uint64_t next_id = 1;
  // The running checkpoint (id 0: none).
  uint64_t running = 0;
  std::string running_name;
  clock_type::time_point started;
  int64_t created_at_ms = 0;
  std::vector<source_position> positions;
  size_t partition_acks = 0;
  bool sinks_flushing = false;
  size_t sink_acks = 0;
  uint64_t max_alignment_us = 0;
  std::vector<caf::typed_response_promise<uint64_t>> waiting; // for the running one
  std::deque<pending_request> queued;                         // on-demand, not started yet
  clock_type::time_point last_completed = clock_type::now();
  prometheus::Counter* completed = nullptr;
  prometheus::Counter* failed = nullptr;
  static inline const char* name = "keyflow.checkpoint_coordinator";
};

using self_ptr = checkpoint_coordinator_actor::stateful_pointer<coordinator_state>;

void start(self_ptr self, std::string name);

void finish(self_ptr self) {
  auto& st = self->state;
  // Completed or failed: partition actors may write changed state to RocksDB again.
  for (auto& part : st.p.partitions)
    self->send(part, atom::done_v, st.running);
  st.running = 0;
  st.waiting.clear();
  if (!st.queued.empty()) {
    auto next = std::move(st.queued.front());
    st.queued.pop_front();
    st.waiting.push_back(next.promise);
    start(self, next.name);
  }
}

void fail(self_ptr self, uint64_t id, const std::string& why) {
  auto& st = self->state;
  if (st.running != id)
    return;
  spdlog::error("checkpoint {} failed: {}", id, why);
  if (st.failed != nullptr)
    st.failed->Increment();
  for (auto& rp : st.waiting)
    rp.deliver(make_error(ec::state_error, "checkpoint " + std::to_string(id) + ": " + why));
  finish(self);
}

proto::CheckpointManifest make_manifest(const coordinator_state& st) {
  proto::CheckpointManifest m;
  m.set_id(st.running);
  m.set_epoch(st.p.epoch);
  m.set_pipeline(st.p.plan->cfg.name);
  m.set_pipeline_version(st.p.plan->cfg.version);
  m.set_max_parallelism(st.p.plan->cfg.max_parallelism);
  m.set_snapshot_name(st.running_name);
  m.set_created_at_ms(st.created_at_ms);
  m.set_alignment_ms(st.max_alignment_us / 1000);
  m.set_mode(st.p.exactly_once ? "exactly-once" : "at-least-once");
  auto positions = st.positions;
  std::sort(positions.begin(), positions.end(), [](const auto& a, const auto& b) {
    return std::tie(a.topic, a.partition) < std::tie(b.topic, b.partition);
  });
  for (const auto& pos : positions) {
    auto* o = m.add_offsets();
    o->set_topic(pos.topic);
    o->set_partition(pos.partition);
    o->set_offset(pos.next_offset);
    if (pos.watermark != no_watermark)
      o->set_watermark_ms(pos.watermark);
  }
  for (const auto& planned : st.p.plan->ops) {
    if (!planned.stateful)
      continue;
    auto* op = m.add_operators();
    op->set_operator_id(planned.cfg->id);
    op->set_state_type(pipeline::state_type(planned));
    op->set_first_key_group(0);
    op->set_last_key_group(st.p.plan->cfg.max_parallelism);
  }
  return m;
}

/// The checkpoint is written: log, count, answer whoever asked for it.
void complete(self_ptr self, const state::checkpoint_info& info) {
  auto& st = self->state;
  if (st.running_name.empty())
    st.p.checkpoints->prune();
  auto secs = std::chrono::duration<double>(clock_type::now() - st.started).count();
  spdlog::info("checkpoint {}{} complete: {} bytes{} in {:.3f} s (alignment {} us)", st.running,
               st.running_name.empty() ? "" : " (snapshot '" + st.running_name + "')",
               info.manifest.size_bytes(),
               info.manifest.parts().empty()
                   ? std::string{}
                   : " in " + std::to_string(info.manifest.parts_size()) + " parts",
               secs, st.max_alignment_us);
  if (auto* mx = st.p.metrics) {
    st.completed->Increment();
    mx->checkpoint_duration().Set(secs);
    mx->checkpoint_size().Set(static_cast<double>(info.manifest.size_bytes()));
    mx->checkpoint_alignment().Set(static_cast<double>(st.max_alignment_us) * 1e-6);
    mx->checkpoint_id().Set(static_cast<double>(st.running));
  }
  st.last_completed = clock_type::now();
  for (auto& rp : st.waiting)
    rp.deliver(st.running);
}

void set_duration(coordinator_state& st, proto::CheckpointManifest& m) {
  m.set_duration_ms(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - st.started)
          .count()));
}

/// A job spread over nodes: every slice's owner writes its part (its partitions' offsets,
/// its key-group range), then the manifest listing the parts completes the checkpoint.
void write_parts(self_ptr self, uint64_t id) {
  auto& st = self->state;
  auto m = make_manifest(st);
  const auto n = static_cast<uint32_t>(st.p.parts.size());
  const auto max_par = st.p.plan->cfg.max_parallelism;
  auto dirs = std::make_shared<std::vector<std::string>>(n);
  auto left = std::make_shared<uint32_t>(n);
  for (uint32_t s = 0; s < n; ++s) {
    proto::CheckpointManifest part = m;
    part.clear_offsets();
    for (const auto& o : m.offsets())
      if (static_cast<uint32_t>(o.partition()) % n == s)
        *part.add_offsets() = o;
    auto range = range_for_actor(max_par, n, s);
    for (auto& op : *part.mutable_operators()) {
      op.set_first_key_group(range.first);
      op.set_last_key_group(range.last);
    }
    self->request(st.p.parts[s], st.p.timeout, atom::checkpoint_v, part.SerializeAsString())
        .then(
            [self, id, s, dirs, left, m](std::string& dir) mutable {
              auto& st = self->state;
              if (st.running != id)
                return;
              (*dirs)[s] = std::move(dir);
              if (--*left > 0)
                return;
              for (uint32_t i = 0; i < dirs->size(); ++i) {
                auto* p = m.add_parts();
                p->set_slice(i);
                p->set_dir((*dirs)[i]);
              }
              set_duration(st, m);
              try {
                complete(self, st.p.checkpoints->commit_parts(std::move(m)));
              } catch (const std::exception& e) {
                fail(self, id, e.what());
                return;
              }
              finish(self);
            },
            [self, id, s](caf::error& err) {
              fail(self, id, "part " + std::to_string(s) + ": " + caf::to_string(err));
            });
  }
}

void write_and_finish(self_ptr self, uint64_t id) {
  auto& st = self->state;
  if (!st.p.parts.empty()) {
    write_parts(self, id);
    return;
  }
  try {
    auto m = make_manifest(st);
    set_duration(st, m);
    complete(self, st.p.checkpoints->create(st.p.store->db(), std::move(m)));
  } catch (const std::exception& e) {
    fail(self, id, e.what());
    return;
  }
  finish(self);
}

size_t sink_count(const coordinator_params& p) {
  return p.redis.size() + p.kafka.size();
}

void on_sink_flushed(self_ptr self, uint64_t id) {
  auto& st = self->state;
  if (st.running != id || ++st.sink_acks < sink_count(st.p))
    return;
  write_and_finish(self, id);
}

/// Outputs of the state being checkpointed were sent to the sinks before the partition
/// actors acknowledged; a drain now reaches each sink after them.
void flush_sinks(self_ptr self, uint64_t id) {
  auto& st = self->state;
  st.sinks_flushing = true;
  st.sink_acks = 0;
  if (sink_count(st.p) == 0) {
    write_and_finish(self, id);
    return;
  }
  auto on_error = [self, id](caf::error& err) {
    fail(self, id, "sink flush: " + caf::to_string(err));
  };
  for (auto& sink : st.p.redis)
    self->request(sink, st.p.timeout, atom::drain_v)
        .then([self, id](uint64_t) { on_sink_flushed(self, id); }, on_error);
  for (auto& sink : st.p.kafka)
    self->request(sink, st.p.timeout, atom::drain_v)
        .then([self, id](uint64_t) { on_sink_flushed(self, id); }, on_error);
}

void check_done(self_ptr self, uint64_t id) {
  auto& st = self->state;
  if (st.running != id || st.sinks_flushing || st.positions.size() < st.p.sources.size() ||
      st.partition_acks < st.p.partitions.size())
    return;
  flush_sinks(self, id);
}

void start(self_ptr self, std::string name) {
  auto& st = self->state;
  auto id = st.next_id++;
  st.running = id;
  st.running_name = std::move(name);
  st.started = clock_type::now();
  st.created_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  st.positions.clear();
  st.partition_acks = 0;
  st.sinks_flushing = false;
  st.max_alignment_us = 0;
  auto on_error = [self, id](caf::error& err) { fail(self, id, caf::to_string(err)); };
  for (auto& src : st.p.sources)
    self->request(src, st.p.timeout, atom::checkpoint_v, id)
        .then(
            [self, id](source_position& pos) {
              if (self->state.running != id)
                return;
              self->state.positions.push_back(std::move(pos));
              check_done(self, id);
            },
            on_error);
  for (auto& part : st.p.partitions)
    self->request(part, st.p.timeout, atom::checkpoint_v, id)
        .then(
            [self, id](uint64_t alignment_us) {
              auto& st = self->state;
              if (st.running != id)
                return;
              ++st.partition_acks;
              st.max_alignment_us = std::max(st.max_alignment_us, alignment_us);
              check_done(self, id);
            },
            on_error);
}

checkpoint_coordinator_actor::behavior_type coordinator(self_ptr self, coordinator_params params) {
  auto& st = self->state;
  st.p = std::move(params);
  st.next_id = st.p.first_id;
  if (auto* m = st.p.metrics) {
    st.completed = &m->checkpoints("completed");
    st.failed = &m->checkpoints("failed");
  }
  // Fault injection for the recovery tests (KEYFLOW_FAIL_POINT):
  //   checkpoint.before_manifest  SIGKILL after the RocksDB checkpoint, before its manifest
  //   checkpoint.error            the next checkpoint fails (as on a full disk)
  if (const char* fp = std::getenv("KEYFLOW_FAIL_POINT"); fp != nullptr) {
    std::string_view point{fp};
    spdlog::warn("fail point armed: {}", point);
    if (point == "checkpoint.before_manifest")
      st.p.checkpoints->before_manifest = [] { std::raise(SIGKILL); };
    else if (point == "checkpoint.error")
      st.p.checkpoints->before_manifest = [fired = false]() mutable {
        if (!std::exchange(fired, true))
          throw std::runtime_error("injected checkpoint failure (fail point checkpoint.error)");
      };
  }
  if (st.p.interval.count() > 0)
    self->delayed_send(self, st.p.interval, atom::tick_v);
  return {
      [self](atom::tick) {
        auto& st = self->state;
        if (st.running == 0 && st.queued.empty())
          start(self, {});
        if (st.p.metrics != nullptr) {
          st.p.metrics->checkpoint_age().Set(
              std::chrono::duration<double>(clock_type::now() - st.last_completed).count());
          if (st.p.store != nullptr) // a spread job's slices: their owners report their stores
            st.p.metrics->observe_state_store(*st.p.store->db());
        }
        self->delayed_send(self, st.p.interval, atom::tick_v);
      },
      [self](atom::checkpoint, std::string& name) -> caf::typed_response_promise<uint64_t> {
        auto& st = self->state;
        auto rp = self->make_response_promise<uint64_t>();
        if (!name.empty() && !state::checkpoint_store::valid_snapshot_name(name)) {
          rp.deliver(make_error(ec::config_error, "invalid snapshot name '" + name + "'"));
          return rp;
        }
        if (st.running == 0) {
          st.waiting.push_back(rp);
          start(self, std::move(name));
        } else {
          st.queued.push_back({std::move(name), rp});
        }
        return rp;
      },
  };
}

} // namespace

checkpoint_coordinator_actor spawn_checkpoint_coordinator(caf::actor_system& sys,
                                                          coordinator_params params) {
  return sys.spawn<caf::detached>(coordinator, std::move(params));
}

part_writer_actor spawn_part_writer(caf::actor_system& sys, state::state_store* store,
                                    state::checkpoint_store* checkpoints) {
  return sys.spawn<caf::detached>([store, checkpoints]() -> part_writer_actor::behavior_type {
    return {
        [store, checkpoints](atom::checkpoint,
                             const std::string& bytes) -> caf::result<std::string> {
          proto::CheckpointManifest m;
          if (!m.ParseFromString(bytes))
            return make_error(ec::state_error, "part writer: unreadable manifest");
          try {
            auto info = checkpoints->create(store->db(), std::move(m));
            if (info.manifest.snapshot_name().empty())
              checkpoints->prune();
            return info.dir;
          } catch (const std::exception& e) {
            return make_error(ec::state_error, e.what());
          }
        },
    };
  });
}

} // namespace keyflow
