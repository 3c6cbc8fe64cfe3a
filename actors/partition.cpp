// Partition actor: owns a key-group range, runs the keyed operator chain over its state,
// hands outputs to the sinks with bounded credit, and writes state back to RocksDB on an
// interval. Inputs wait in a bounded queue (bounded by the sources' credit) while the sinks
// have no credit, so a slow sink turns into backpressure on the sources.

#include <chrono>
#include <deque>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/spawn.hpp"
#include "operators/keyed_chain.hpp"

namespace keyflow {

namespace {

struct pending_input {
  event_batch batch;
  caf::typed_response_promise<uint32_t> promise;
};

struct partition_state {
  partition_params p;
  std::unique_ptr<ops::keyed_chain> chain;
  ops::chain_output out;
  uint32_t redis_in_flight = 0;
  uint32_t kafka_in_flight = 0;
  std::deque<pending_input> queue;
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
  bool idle() const { return queue.empty() && redis_in_flight == 0 && kafka_in_flight == 0; }
};

using self_ptr = partition_actor::stateful_pointer<partition_state>;

void on_sink_credit(self_ptr self);

void emit(self_ptr self) {
  auto& st = self->state;
  if (!st.out.profiles.empty()) {
    if (st.p.redis) {
      ++st.redis_in_flight;
      profile_batch b;
      b.updates.swap(st.out.profiles);
      self->request(st.p.redis, caf::infinite, std::move(b))
        .then([self](uint32_t c) {
          self->state.redis_in_flight -= c;
          on_sink_credit(self);
        },
        [self](caf::error& err) {
          spdlog::error("partition {}: Redis sink failed: {}", self->state.p.index,
                        caf::to_string(err));
          self->quit(err);
        });
    }
    st.out.profiles.clear();
  }
  if (!st.out.activations.empty()) {
    if (st.p.kafka) {
      ++st.kafka_in_flight;
      kafka_batch b;
      b.messages.swap(st.out.activations);
      self->request(st.p.kafka, caf::infinite, std::move(b))
        .then([self](uint32_t c) {
          self->state.kafka_in_flight -= c;
          on_sink_credit(self);
        },
        [self](caf::error& err) {
          spdlog::error("partition {}: Kafka sink failed: {}", self->state.p.index,
                        caf::to_string(err));
          self->quit(err);
        });
    }
    st.out.activations.clear();
  }
}

void process(self_ptr self, const event_batch& batch) {
  auto& st = self->state;
  st.chain->process(batch, st.out);
  auto n = batch.records.size();
  st.processed += n;
  if (n > 0) {
    auto now = std::chrono::steady_clock::now().time_since_epoch();
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
    st.latency.observe(static_cast<double>(ns - batch.records.front().ingest_ns) * 1e-9, n);
    st.latency.publish();
  }
  if (st.in != nullptr) {
    st.in->Increment(static_cast<double>(n));
    st.out_count->Increment(static_cast<double>(st.out.profiles.size()));
  }
  emit(self);
}

void try_finish_drain(self_ptr self) {
  auto& st = self->state;
  if (st.drain_promises.empty() || !st.idle())
    return;
  for (auto& rp : st.drain_promises)
    rp.deliver(st.processed);
  st.drain_promises.clear();
}

void on_sink_credit(self_ptr self) {
  auto& st = self->state;
  while (!st.queue.empty() && st.sinks_have_credit()) {
    auto item = std::move(st.queue.front());
    st.queue.pop_front();
    process(self, item.batch);
    item.promise.deliver(uint32_t{1});
  }
  try_finish_drain(self);
}

void flush_state(self_ptr self) {
  auto& st = self->state;
  auto n = st.chain->flush_state();
  if (st.flushed != nullptr) {
    st.flushed->Increment(static_cast<double>(n));
    st.keys->Set(static_cast<double>(st.chain->state_size()));
  }
}

partition_actor::behavior_type partition(self_ptr self, partition_params params) {
  auto& st = self->state;
  st.p = std::move(params);
  st.chain = std::make_unique<ops::keyed_chain>(*st.p.pipeline, *st.p.store,
                                                static_cast<bool>(st.p.redis));
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
      auto& st = self->state;
      auto rp = self->make_response_promise<uint32_t>();
      if (st.queue.empty() && st.sinks_have_credit()) {
        process(self, batch);
        rp.deliver(uint32_t{1});
      } else {
        st.queue.push_back({std::move(batch), rp});
      }
      return rp;
    },
    [self](atom::flush) {
      flush_state(self);
      self->delayed_send(self, self->state.p.flush_interval, atom::flush_v);
    },
    [self](atom::drain) -> caf::typed_response_promise<uint64_t> {
      flush_state(self);
      auto rp = self->make_response_promise<uint64_t>();
      self->state.drain_promises.push_back(rp);
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
