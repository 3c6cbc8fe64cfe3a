#include "benchmarks/counting_sink.hpp"

#include <chrono>

#include <caf/all.hpp>

namespace keyflow::bench {

namespace {

struct counting_sink_state {
  std::shared_ptr<sink_tally> t;
  std::string key; // scratch: hash key of an upsert
  static inline const char* name = "keyflow.bench.counting_sink";
};

using self_ptr = kafka_sink_actor::stateful_pointer<counting_sink_state>;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Hash of one record: key, then the written fields.
uint64_t hash_of(const sink_tally& t, const record& r) {
  record_hash h;
  h.key(r.key);
  static const value absent;
  for (int slot : t.slots)
    h.val(static_cast<size_t>(slot) < r.fields.size() ? r.fields[static_cast<size_t>(slot)]
                                                      : absent);
  return h.done();
}

void take(counting_sink_state& st, const record_batch& batch) {
  auto& t = *st.t;
  if (batch.records.empty())
    return;
  t.latency.add(static_cast<double>(now_ns() - batch.records.front().ingest_ns) * 1e-9,
                batch.records.size());
  for (const auto& r : batch.records) {
    const uint64_t h = hash_of(t, r);
    if (!t.upsert) {
      t.all.add(h);
      continue;
    }
    st.key.assign(r.key);
    for (int slot : t.key_slots) {
      st.key.push_back(':');
      if (static_cast<size_t>(slot) < r.fields.size())
        st.key += r.fields[static_cast<size_t>(slot)].to_string();
    }
    const std::pair<int64_t, uint64_t> version{r.event_time_ms, r.seq};
    auto [it, fresh] = t.newest.try_emplace(st.key, version, h);
    if (!fresh && version > it->second.first)
      it->second = {version, h};
  }
  t.records.fetch_add(batch.records.size(), std::memory_order_relaxed);
  t.batches.fetch_add(1, std::memory_order_relaxed);
}

kafka_sink_actor::behavior_type counting_sink(self_ptr self, std::shared_ptr<sink_tally> tally) {
  self->state.t = std::move(tally);
  return {
      [self](kafka_batch& batch) -> uint32_t {
        auto& t = *self->state.t;
        t.records.fetch_add(batch.messages.size(), std::memory_order_relaxed);
        t.batches.fetch_add(1, std::memory_order_relaxed);
        return 1;
      },
      [self](record_batch& batch) -> uint32_t {
        take(self->state, batch);
        return 1;
      },
      [](atom::tick) {},
      [self](atom::drain) -> uint64_t { return self->state.t->records.load(); },
  };
}

} // namespace

kafka_sink_actor spawn_counting_sink(caf::actor_system& sys, std::shared_ptr<sink_tally> tally) {
  return sys.spawn(counting_sink, std::move(tally));
}

} // namespace keyflow::bench
