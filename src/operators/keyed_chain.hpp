#pragma once
/// \file
/// The keyed part of a pipeline, hosted by one partition actor: aggregate -> score ->
/// outputs for the sinks. Plain C++ over keyed state; the actor only moves batches.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/pipeline_config.hpp"
#include "core/record.hpp"
#include "operators/aggregate.hpp"
#include "state/keyed_state.hpp"

namespace keyflow::ops {

/// What one input batch produced.
struct chain_output {
  std::vector<profile_update> profiles;   ///< one per key touched by the batch
  std::vector<kafka_message> activations; ///< keys whose score crossed the threshold
  /// Clears both vectors, keeping capacity.
  void clear() {
    profiles.clear();
    activations.clear();
  }
};

/// aggregate (+ optional score) over keyed state for the key groups of one actor.
class keyed_chain {
public:
  /// Builds the chain; state lives in `store`, column family = aggregate operator id.
  /// Without `emit_profiles`, no profile updates are produced (no profile sink).
  keyed_chain(const config::pipeline_config& cfg, state::state_store& store,
              bool emit_profiles = true);

  /// Processes one batch; appends outputs to `out`. Profiles are coalesced per batch:
  /// a key touched many times yields one update with its latest state;
  /// its ingest time is the oldest of the batch (a conservative latency).
  void process(const event_batch& in, chain_output& out);

  /// Writes changed state to RocksDB; returns the number of keys written.
  size_t flush_state() { return state_.flush(); }

  /// Drops unchanged keys from the working copy down to `max_keys` (see keyed_state).
  size_t evict_to(size_t max_keys) { return state_.evict_to(max_keys); }

  /// Keys in the working copy.
  size_t state_size() const noexcept { return state_.size(); }

  /// Current state of `key` (memory or RocksDB), nullptr if never seen.
  const aggregate_state* find(std::string_view key, key_group_t kg) { return state_.find(key, kg); }

private:
  using state_type = state::keyed_state<aggregate_state, aggregate_codec>;
  std::string pipeline_;
  std::optional<scorer> scorer_;
  std::string activation_topic_;
  state_type state_;
  bool emit_profiles_;
  uint64_t batch_seq_ = 0;
  struct touched {
    std::string_view key;
    aggregate_state* state;
  };
  std::vector<touched> touched_;
};

} // namespace keyflow::ops
