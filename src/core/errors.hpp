#pragma once
/// \file
/// The one error-code enum of Keyflow. Actors register it as a CAF error category
/// (actors/type_ids.hpp) so errors travel between nodes and print as words.

#include <cstdint>
#include <string_view>

namespace keyflow {

/// Error codes; each names a cause a user or operator can act on.
enum class ec : uint8_t {
  none = 0,
  decode_error,        ///< bytes are not a valid protobuf message of the expected type
  missing_field,       ///< a required field is absent or empty
  invalid_field,       ///< a field has a value outside its domain (NaN value, ...)
  config_error,        ///< configuration file or option is invalid
  kafka_error,         ///< a Kafka client call failed
  redis_error,         ///< a Redis call failed
  state_error,         ///< RocksDB returned an error
  unknown_topic,       ///< a configured topic does not exist
  unexpected_shutdown, ///< an actor stopped while work was in flight
  late,                ///< event time behind the watermark by more than the allowed lateness
  enrich_missing,      ///< enrichment found no entity for the record's lookup key
  enrich_failed,       ///< the enrichment store answered the lookup with an error
  operator_failed,     ///< an operator threw while processing a batch
  poison,              ///< a record made an operator fail --poison-attempts times
};

/// Stable lower-case word for an error code (used in metrics labels and dead letters).
std::string_view to_string(ec code) noexcept;

} // namespace keyflow
