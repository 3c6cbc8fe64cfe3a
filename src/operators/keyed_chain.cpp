#include "operators/keyed_chain.hpp"

#include <algorithm>
#include <stdexcept>

#include "proto/activation.pb.h"

namespace keyflow::ops {

namespace {

rocksdb::ColumnFamilyHandle* column_family(state::state_store& store, const std::string& name) {
  auto* cf = store.column_family(name);
  if (cf == nullptr)
    throw std::runtime_error("state store has no column family for operator '" + name + "'");
  return cf;
}

} // namespace

keyed_chain::keyed_chain(const config::pipeline_config& cfg, state::state_store& store,
                         bool emit_profiles)
    : pipeline_(cfg.name), state_(store, column_family(store, cfg.aggregate.id)),
      emit_profiles_(emit_profiles) {
  if (cfg.score)
    scorer_.emplace(*cfg.score);
  if (cfg.kafka_sink)
    activation_topic_ = cfg.kafka_sink->topic;
}

void keyed_chain::process(const event_batch& in, chain_output& out) {
  ++batch_seq_;
  touched_.clear();
  int64_t oldest_ingest = in.records.empty() ? 0 : in.records.front().ingest_ns;
  for (const auto& r : in.records) {
    oldest_ingest = std::min(oldest_ingest, r.ingest_ns);
    auto [key, s] = state_.update_entry(r.key, r.key_group);
    aggregate(s, r);
    if (emit_profiles_ && s.batch_mark != batch_seq_) {
      s.batch_mark = batch_seq_;
      touched_.push_back({key, &s});
    }
    if (scorer_ && !s.activated) {
      double score = scorer_->score(s);
      if (score >= scorer_->threshold()) {
        s.activated = true;
        if (!activation_topic_.empty()) {
          proto::Activation a;
          a.set_customer_id(r.key);
          a.set_score(score);
          a.set_threshold(scorer_->threshold());
          a.set_event_count(s.count);
          a.set_value_sum(s.sum);
          a.set_event_time_ms(r.event_time_ms);
          a.set_pipeline(pipeline_);
          a.set_operator_id(scorer_->id());
          out.activations.push_back({activation_topic_, r.key, a.SerializeAsString()});
        }
      }
    }
  }
  out.profiles.reserve(out.profiles.size() + touched_.size());
  for (const auto& t : touched_) {
    const auto& s = *t.state;
    out.profiles.push_back({std::string{t.key}, s.count, s.sum, s.last_event_time_ms,
                            scorer_ ? scorer_->score(s) : 0.0, oldest_ingest, s.count});
  }
}

} // namespace keyflow::ops
