#pragma once
/// \file
/// Dead-letter envelopes (config/proto/dead_letter.proto): the original bytes, where they
/// came from, which operator rejected them and why.

#include <cstdint>
#include <string>
#include <string_view>

#include "core/errors.hpp"

namespace keyflow::ops {

/// Where a raw record came from; copied into dead letters.
struct provenance {
  std::string_view topic;   ///< source topic
  int32_t partition = -1;   ///< source partition
  int64_t offset = -1;      ///< source offset
  int64_t timestamp_ms = 0; ///< Kafka record timestamp (or event time when not known)
};

/// Why a record was rejected.
struct rejection {
  ec code = ec::none;  ///< error code
  std::string message; ///< detail naming the field
};

/// Builds the serialized DeadLetter envelope for a rejected record.
std::string make_dead_letter(std::string_view key, std::string_view value, const provenance& from,
                             std::string_view operator_id, const rejection& why,
                             std::string_view pipeline, uint32_t pipeline_version,
                             uint32_t attempts = 1);

} // namespace keyflow::ops
