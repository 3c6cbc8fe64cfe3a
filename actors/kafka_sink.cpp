// Kafka sink: hands records to a librdkafka producer (which batches and retries), serves
// delivery reports on a timer and waits for all of them on drain. With a transactional id,
// records go out in Kafka transactions and every drain (each checkpoint) commits one. Runs detached
// because a full producer queue blocks, which is how a slow Kafka backpressures the pipeline.

#include <chrono>

#include <caf/all.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "actors/spawn.hpp"

namespace keyflow {

namespace {

struct kafka_sink_state {
  kafka_sink_params p;
  std::unique_ptr<kafka::producer> producer;
  uint64_t reported_failures = 0;
  uint64_t reported_delivered = 0;
  prometheus::Counter* writes = nullptr;
  prometheus::Counter* errors = nullptr;
  prometheus::Counter* transactions = nullptr;
  std::vector<kafka_message> held; // produced once the lease is valid again
  static inline const char* name = "keyflow.kafka_sink";
};

using self_ptr = kafka_sink_actor::stateful_pointer<kafka_sink_state>;

/// Appends `s` as a JSON string literal.
void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      out += fmt::format("\\u{:04x}", u);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

/// A result record as one JSON object: key, event_time_ms, seq, then the fields.
void to_json(const kafka_sink_params& p, const record& r, std::string& out) {
  out.clear();
  out += "{\"key\":";
  append_json_string(out, r.key);
  out += fmt::format(",\"event_time_ms\":{},\"seq\":{}", r.event_time_ms, r.seq);
  for (size_t i = 0; i < p.slots.size(); ++i) {
    out.push_back(',');
    append_json_string(out, p.fields[i]);
    out.push_back(':');
    auto slot = static_cast<size_t>(p.slots[i]);
    const value v = slot < r.fields.size() ? r.fields[slot] : value{};
    switch (v.type) {
    case value_type::int64:
      out += std::to_string(v.i);
      break;
    case value_type::dbl:
      out += fmt::format("{:.17g}", v.d);
      break;
    case value_type::string:
      append_json_string(out, v.s);
      break;
    default:
      out += "null";
    }
  }
  out.push_back('}');
}

void report(kafka_sink_state& st) {
  auto delivered = st.producer->delivered();
  auto failed = st.producer->failed();
  if (st.writes != nullptr) {
    st.writes->Increment(static_cast<double>(delivered - st.reported_delivered));
    st.errors->Increment(static_cast<double>(failed - st.reported_failures));
  }
  if (failed > st.reported_failures)
    spdlog::error("kafka sink {}: {} records failed delivery: {}", st.p.sink_id,
                  failed - st.reported_failures, st.producer->last_error());
  st.reported_delivered = delivered;
  st.reported_failures = failed;
}

/// True unless the cluster lease has expired.
bool may_produce(const kafka_sink_state& st) {
  return !st.p.lease || st.p.lease->valid();
}

/// Produces the records held while the lease was expired.
void release_held(kafka_sink_state& st) {
  if (st.held.empty() || !may_produce(st))
    return;
  for (const auto& m : st.held)
    st.producer->send(m.topic, m.key, m.value);
  st.held.clear();
  st.producer->poll();
}

kafka_sink_actor::behavior_type kafka_sink(self_ptr self, kafka_sink_params params) {
  auto& st = self->state;
  st.p = std::move(params);
  auto props = st.p.properties;
  if (!st.p.transactional_id.empty())
    props["transactional.id"] = st.p.transactional_id;
  st.producer = std::make_unique<kafka::producer>(props);
  if (!st.p.transactional_id.empty())
    st.producer->begin_transactions();
  if (auto* m = st.p.metrics) {
    st.writes = &m->sink_writes(st.p.sink_id);
    st.errors = &m->sink_errors(st.p.sink_id);
    if (!st.p.transactional_id.empty())
      st.transactions = &m->sink_transactions(st.p.sink_id);
  }
  self->delayed_send(self, std::chrono::milliseconds(100), atom::tick_v);
  return {
      [self](kafka_batch& batch) -> uint32_t {
        auto& st = self->state;
        if (!may_produce(st)) {
          for (auto& m : batch.messages)
            st.held.push_back(std::move(m));
          return 1;
        }
        release_held(st);
        for (const auto& m : batch.messages)
          st.producer->send(m.topic, m.key, m.value);
        st.producer->poll();
        return 1;
      },
      [self](record_batch& batch) -> uint32_t {
        auto& st = self->state;
        std::string json;
        const bool now = may_produce(st);
        if (now)
          release_held(st);
        for (const auto& r : batch.records) {
          to_json(st.p, r, json);
          if (now)
            st.producer->send(st.p.topic, r.key, json);
          else
            st.held.push_back(kafka_message{st.p.topic, r.key, json});
        }
        st.producer->poll();
        return 1;
      },
      [self](atom::tick) {
        release_held(self->state);
        self->state.producer->poll();
        report(self->state);
        self->delayed_send(self, std::chrono::milliseconds(100), atom::tick_v);
      },
      [self](atom::drain) -> caf::result<uint64_t> {
        // Every record handed over so far must be acknowledged by Kafka; otherwise the
        // checkpoint that asked must not complete (its outputs would be lost on a crash).
        auto& st = self->state;
        release_held(st);
        if (!st.held.empty())
          return make_error(ec::kafka_error, std::to_string(st.held.size()) +
                                                 " records held: the node's cluster lease expired");
        auto failed_before = st.reported_failures;
        bool flushed = st.producer->flush(30000);
        report(st);
        if (!flushed)
          return make_error(ec::kafka_error, "records still undelivered after 30 s");
        if (st.reported_failures > failed_before)
          return make_error(ec::kafka_error,
                            std::to_string(st.reported_failures - failed_before) +
                                " records failed delivery: " + st.producer->last_error());
        if (st.producer->transactional()) {
          try {
            st.producer->commit_transaction();
            if (st.transactions != nullptr)
              st.transactions->Increment();
          } catch (const std::exception& e) {
            return make_error(ec::kafka_error, e.what());
          }
        }
        return st.producer->delivered();
      },
  };
}

} // namespace

kafka_sink_actor spawn_kafka_sink(caf::actor_system& sys, kafka_sink_params params) {
  return sys.spawn<caf::detached>(kafka_sink, std::move(params));
}

} // namespace keyflow
