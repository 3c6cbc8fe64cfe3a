#pragma once
/// \file
/// What a source does with each Kafka record: decode the fields the pipeline uses (schema
/// from config), run the source-side operators (validate, filters), take the key and the
/// event time. Rejected records become dead-letter envelopes naming the operator and field.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/record.hpp"
#include "operators/dead_letter.hpp"
#include "pipeline/plan.hpp"
#include "schema/schema.hpp"

namespace keyflow::pipeline {

/// Outcome of decoding one record.
enum class decode_result : uint8_t {
  ok,       ///< `out` holds the record
  rejected, ///< a dead letter was produced
  filtered, ///< a source-side filter dropped it
};

/// Decodes and checks source records; one per source actor (not thread-safe).
class source_decoder {
public:
  /// A decoder for the plan's source.
  explicit source_decoder(std::shared_ptr<const plan> p);

  /// Decodes `value` into `out` (all but ingest time and key group). On rejection appends a
  /// dead-letter message to `dead`, naming the operator (`rejected_by` is set to its id) and
  /// the reason.
  decode_result decode(std::string_view key, std::string_view value, const ops::provenance& from,
                       record& out, std::vector<kafka_message>& dead);

  /// Id of the operator that rejected the last rejected record.
  const std::string& rejected_by() const noexcept { return rejected_by_; }
  /// Greatest event time of the records decoded so far, filtered ones included (the
  /// source's watermark); no_watermark before the first.
  int64_t max_event_time() const noexcept { return max_event_time_; }
  /// Reason word of the last rejection.
  std::string_view last_reason() const noexcept { return to_string(last_reason_); }

  /// The plan.
  const plan& pipeline() const noexcept { return *plan_; }

private:
  void reject(std::string_view key, std::string_view value, const ops::provenance& from,
              const std::string& op, const ops::rejection& why, std::vector<kafka_message>& dead);

  std::shared_ptr<const plan> plan_;
  schema::decoder decoder_;
  std::vector<const op_plan*> ops_;
  size_t width_ = 0; // widest layout records reach while they are extended in place
  std::string rejected_by_;
  ec last_reason_ = ec::none;
  std::string error_;
  int64_t max_event_time_ = no_watermark;
};

} // namespace keyflow::pipeline
