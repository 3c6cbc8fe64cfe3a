// Partition actor: owns a key-group range, runs the keyed operator chain over its state,
// hands outputs to the sinks with bounded credit, and takes part in checkpoints.
//
// Inputs (batches and barriers) go through one FIFO inbox. A batch is processed when the
// sinks have credit; a barrier marks its source as aligned. In exactly-once mode, batches
// from an aligned source wait (unanswered, so the source runs out of credit) until the
// barriers of every source have arrived; then the state as of the barrier is written to
// RocksDB and the checkpoint acknowledged. In at-least-once mode nothing waits. Changed
// state is also written on the flush timer, which spreads the cost over the interval,
// except between acknowledging a barrier and the coordinator's `done`: meanwhile the RocksDB
// checkpoint is being taken and must see exactly the state at the barrier.

#include <chrono>
#include <deque>
#include <map>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/spawn.hpp"
#include "operators/keyed_chain.hpp"

namespace keyflow {

namespace {

using clock_type = std::chrono::steady_clock;

/// An inbox item: a batch (with the promise of its credit) or a barrier.
struct input {
  event_batch batch;
  caf::typed_response_promise<uint32_t> promise;
  uint64_t barrier = 0; // non-zero: a barrier of this checkpoint id from batch.source
};

struct partition_state {
  partition_params p;
  std::unique_ptr<ops::keyed_chain> chain;
  ops::chain_output out;
  uint32_t redis_in_flight = 0;
  uint32_t kafka_in_flight = 0;
  std::deque<input> inbox;
  // Checkpoint alignment.
  uint64_t aligning = 0;     // checkpoint id being aligned, 0 if none
  std::vector<bool> aligned; // per source: its barrier has arrived
  uint32_t aligned_count = 0;
  clock_type::time_point align_start;
  std::deque<input> held;     // batches from aligned sources (exactly-once mode)
  uint64_t completed = 0;     // last checkpoint whose state is written
  bool writes_allowed = true; // false from a barrier acknowledgement until `done`
  uint64_t last_alignment_us = 0;
  std::map<uint64_t, std::vector<caf::typed_response_promise<uint64_t>>> ack_promises;
  uint64_t processed = 0;
  std::vector<caf::typed_response_promise<uint64_t>> drain_promises;
  metrics::local_histogram latency;
  prometheus::Counter* in = nullptr;
  prometheus::Counter* out_count = nullptr;
  prometheus::Counter* flushed = nullptr;
  prometheus::Gauge* keys = nullptr;
  static inline const char* name = "keyflow.partition";

  bool sinks_have_credit() const {
    return redis_in_flight < p.flow.credits && kafka_in_flight < p.flow.credits;
  }
  bool idle() const { return inbox.empty() && redis_in_flight == 0 && kafka_in_flight == 0; }
};

using self_ptr = partition_actor::stateful_pointer<partition_state>;

void pump(self_ptr self);

template <class Batch>
void send_to_sink(self_ptr self, const auto& sink, uint32_t& in_flight, Batch&& batch,
                  const char* what) {
  ++in_flight;
  self->request(sink, caf::infinite, std::forward<Batch>(batch))
      .then(
          [self, &in_flight](uint32_t c) {
            in_flight -= c;
            pump(self);
          },
          [self, what](caf::error& err) {
            spdlog::error("partition {}: {} sink failed: {}", self->state.p.index, what,
                          caf::to_string(err));
            self->quit(err);
          });
}

void emit(self_ptr self) {
  auto& st = self->state;
  if (!st.out.profiles.empty() && st.p.redis) {
    profile_batch b;
    b.updates.swap(st.out.profiles);
    send_to_sink(self, st.p.redis, st.redis_in_flight, std::move(b), "Redis");
  }
  if (!st.out.activations.empty() && st.p.kafka) {
    kafka_batch b;
    b.messages.swap(st.out.activations);
    send_to_sink(self, st.p.kafka, st.kafka_in_flight, std::move(b), "Kafka");
  }
  st.out.clear();
}

void process(self_ptr self, const event_batch& batch) {
  auto& st = self->state;
  st.chain->process(batch, st.out);
  auto n = batch.records.size();
  st.processed += n;
  if (n > 0) {
    auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch())
            .count();
    st.latency.observe(static_cast<double>(ns - batch.records.front().ingest_ns) * 1e-9, n);
    st.latency.publish();
  }
  if (st.in != nullptr) {
    st.in->Increment(static_cast<double>(n));
    st.out_count->Increment(static_cast<double>(st.out.profiles.size()));
  }
  emit(self);
}

void flush_state(self_ptr self) {
  auto& st = self->state;
  auto n = st.chain->flush_state();
  if (st.p.max_state_keys > 0) // everything is in RocksDB now: unchanged keys may go
    st.chain->evict_to(st.p.max_state_keys);
  if (st.flushed != nullptr) {
    st.flushed->Increment(static_cast<double>(n));
    st.keys->Set(static_cast<double>(st.chain->state_size()));
  }
}

/// Ends an alignment: held batches came after their source's barrier, so they go to the
/// front of the inbox, in their order.
void release_held(partition_state& st) {
  st.aligned_count = 0;
  std::fill(st.aligned.begin(), st.aligned.end(), false);
  while (!st.held.empty()) {
    st.inbox.push_front(std::move(st.held.back()));
    st.held.pop_back();
  }
}

/// All barriers of the current checkpoint are in: write the state and acknowledge.
void complete_alignment(self_ptr self) {
  auto& st = self->state;
  flush_state(self);
  if (st.p.checkpointing)
    st.writes_allowed = false;
  st.completed = st.aligning;
  st.last_alignment_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - st.align_start)
          .count());
  for (auto i = st.ack_promises.begin(); i != st.ack_promises.end() && i->first <= st.completed;
       i = st.ack_promises.erase(i))
    for (auto& rp : i->second)
      rp.deliver(st.last_alignment_us);
  st.aligning = 0;
  release_held(st);
}

void on_barrier(self_ptr self, uint64_t id, uint32_t source) {
  auto& st = self->state;
  if (source >= st.aligned.size()) {
    spdlog::error("partition {}: barrier from unknown source {}", st.p.index, source);
    return;
  }
  if (st.aligning == 0) {
    st.aligning = id;
    st.align_start = clock_type::now();
  } else if (id < st.aligning) {
    spdlog::warn("partition {}: stale barrier {} while aligning {}; ignored", st.p.index, id,
                 st.aligning);
    return;
  } else if (id > st.aligning) {
    // The coordinator gave up on the older checkpoint: release what it held, align anew.
    spdlog::warn("partition {}: checkpoint {} abandoned for {}", st.p.index, st.aligning, id);
    release_held(st);
    st.aligning = id;
    st.align_start = clock_type::now();
  }
  if (!st.aligned[source]) {
    st.aligned[source] = true;
    ++st.aligned_count;
  }
  if (st.aligned_count == st.aligned.size())
    complete_alignment(self);
}

void try_finish_drain(self_ptr self) {
  auto& st = self->state;
  if (st.drain_promises.empty() || !st.idle() || !st.held.empty())
    return;
  for (auto& rp : st.drain_promises)
    rp.deliver(st.processed);
  st.drain_promises.clear();
}

/// Works through the inbox as far as sink credit and alignment allow.
void pump(self_ptr self) {
  auto& st = self->state;
  while (!st.inbox.empty()) {
    auto& front = st.inbox.front();
    if (front.barrier != 0) {
      auto id = front.barrier;
      auto src = front.batch.source;
      st.inbox.pop_front();
      on_barrier(self, id, src);
      continue;
    }
    if (st.p.exactly_once && st.aligning != 0 && front.batch.source < st.aligned.size() &&
        st.aligned[front.batch.source]) {
      st.held.push_back(std::move(front));
      st.inbox.pop_front();
      continue;
    }
    if (!st.sinks_have_credit())
      break;
    auto item = std::move(front);
    st.inbox.pop_front();
    process(self, item.batch);
    item.promise.deliver(uint32_t{1});
  }
  try_finish_drain(self);
}

partition_actor::behavior_type partition(self_ptr self, partition_params params) {
  auto& st = self->state;
  st.p = std::move(params);
  st.chain = std::make_unique<ops::keyed_chain>(*st.p.pipeline, *st.p.store,
                                                static_cast<bool>(st.p.redis));
  st.aligned.assign(std::max(1u, st.p.sources), false);
  if (auto* m = st.p.metrics) {
    const auto& op = st.p.pipeline->aggregate.id;
    st.in = &m->records_in(op);
    st.out_count = &m->records_out(op);
    st.flushed = &m->state_flushed_keys(op);
    st.keys = &m->state_keys(op + "/" + std::to_string(st.p.index));
    st.latency = metrics::local_histogram{&m->processing_latency()};
  }
  self->delayed_send(self, st.p.flush_interval, atom::flush_v);
  return {
      [self](event_batch& batch) -> caf::typed_response_promise<uint32_t> {
        auto rp = self->make_response_promise<uint32_t>();
        self->state.inbox.push_back({std::move(batch), rp, 0});
        pump(self);
        return rp;
      },
      [self](atom::barrier, uint64_t id, uint32_t source) {
        input in;
        in.batch.source = source;
        in.barrier = id;
        self->state.inbox.push_back(std::move(in));
        pump(self);
      },
      [self](atom::checkpoint, uint64_t id) -> caf::typed_response_promise<uint64_t> {
        auto& st = self->state;
        auto rp = self->make_response_promise<uint64_t>();
        if (st.completed >= id)
          rp.deliver(st.last_alignment_us);
        else
          st.ack_promises[id].push_back(rp);
        return rp;
      },
      [self](atom::done, uint64_t id) {
        if (id >= self->state.completed)
          self->state.writes_allowed = true;
      },
      [self](atom::flush) {
        if (self->state.writes_allowed)
          flush_state(self);
        self->delayed_send(self, self->state.p.flush_interval, atom::flush_v);
      },
      [self](atom::drain) -> caf::typed_response_promise<uint64_t> {
        auto& st = self->state;
        if (!st.p.checkpointing)
          flush_state(self);
        auto rp = self->make_response_promise<uint64_t>();
        st.drain_promises.push_back(rp);
        try_finish_drain(self);
        return rp;
      },
  };
}

} // namespace

partition_actor spawn_partition(caf::actor_system& sys, partition_params params) {
  return sys.spawn(partition, std::move(params));
}

} // namespace keyflow
