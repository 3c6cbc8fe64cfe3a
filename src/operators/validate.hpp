#pragma once
/// \file
/// Decode + validate: Kafka record bytes -> event_record, or a dead letter naming the
/// field at fault. Stateless; runs in the source, before records are routed by key.

#include <cstdint>
#include <string>
#include <string_view>

#include "config/pipeline_config.hpp"
#include "core/errors.hpp"
#include "core/record.hpp"
#include "proto/event.pb.h"

namespace keyflow::ops {

/// Where a raw record came from; copied into dead letters.
struct provenance {
  std::string_view topic;   ///< source topic
  int32_t partition = -1;   ///< source partition
  int64_t offset = -1;      ///< source offset
  int64_t timestamp_ms = 0; ///< Kafka record timestamp
};

/// Why a record was rejected.
struct rejection {
  ec code = ec::none;  ///< error code
  std::string message; ///< detail naming the field
};

/// Decodes protobuf Events and checks required fields; reuses one message object.
class validator {
public:
  /// Builds a validator from the pipeline's validate operator config.
  explicit validator(const config::validate_config& cfg);

  /// Decodes `value`; on success fills `out` (all fields but ingest time and provenance)
  /// and returns true; otherwise fills `why` and returns false.
  bool decode(std::string_view value, event_record& out, rejection& why);

  /// The operator id, for metrics and dead letters.
  const std::string& id() const noexcept { return id_; }

private:
  std::string id_;
  bool need_event_id_ = false;
  bool need_customer_id_ = false;
  bool need_event_time_ = false;
  bool need_type_ = false;
  bool need_value_ = false;
  proto::Event event_;
};

/// Builds the serialized DeadLetter envelope for a rejected record.
std::string make_dead_letter(std::string_view key, std::string_view value, const provenance& from,
                             std::string_view operator_id, const rejection& why,
                             std::string_view pipeline, uint32_t pipeline_version,
                             uint32_t attempts = 1);

} // namespace keyflow::ops
