#pragma once
/// \file
/// Per-key aggregate (count, sum, last event time) and the logistic score over it.
/// Plain functions on state: no actors, no I/O.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/pipeline_config.hpp"
#include "core/record.hpp"

namespace keyflow::ops {

/// Keyed state of the aggregate operator (stored as proto::CustomerAggregate).
struct aggregate_state {
  uint64_t count = 0;             ///< events counted
  double sum = 0;                 ///< sum of values
  int64_t last_event_time_ms = 0; ///< greatest event time seen
  double last_value = 0;          ///< value of the most recent event (by arrival)
  bool activated = false;         ///< score crossed the threshold already
  uint64_t batch_mark = 0;        ///< transient: last batch that touched the key (not stored)
};

/// Folds one event into the state.
inline void aggregate(aggregate_state& s, const event_record& r) noexcept {
  ++s.count;
  s.sum += r.value;
  if (r.event_time_ms > s.last_event_time_ms)
    s.last_event_time_ms = r.event_time_ms;
  s.last_value = r.value;
}

/// Serializes the state for RocksDB (proto::CustomerAggregate wire format).
std::string encode(const aggregate_state& s);

/// Parses state written by encode(); false if the bytes are corrupt.
bool decode(std::string_view bytes, aggregate_state& s);

/// Logistic model over aggregate features, from the pipeline's score operator.
class scorer {
public:
  /// Builds the model from config weights (features: count, sum, avg, last_value).
  explicit scorer(const config::score_config& cfg);

  /// Score in (0, 1) for a state.
  double score(const aggregate_state& s) const noexcept;

  /// Threshold at or above which a key is activated.
  double threshold() const noexcept { return threshold_; }

  /// The operator id.
  const std::string& id() const noexcept { return id_; }

private:
  std::string id_;
  double bias_ = 0, w_count_ = 0, w_sum_ = 0, w_avg_ = 0, w_last_ = 0, threshold_ = 0.5;
};

} // namespace keyflow::ops

namespace keyflow::ops {

/// Codec of aggregate_state for state::keyed_state.
struct aggregate_codec {
  /// Serializes a state.
  static std::string encode(const aggregate_state& s) { return ops::encode(s); }
  /// Parses a state; false if corrupt.
  static bool decode(std::string_view b, aggregate_state& s) { return ops::decode(b, s); }
};

} // namespace keyflow::ops
