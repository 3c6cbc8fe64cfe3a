#include "operators/validate.hpp"

#include <chrono>
#include <cmath>

#include "proto/dead_letter.pb.h"

namespace keyflow::ops {

validator::validator(const config::validate_config& cfg) : id_(cfg.id) {
  for (const auto& field : cfg.required) {
    if (field == "event_id")
      need_event_id_ = true;
    else if (field == "customer_id")
      need_customer_id_ = true;
    else if (field == "event_time_ms")
      need_event_time_ = true;
    else if (field == "type")
      need_type_ = true;
    else if (field == "value")
      need_value_ = true;
  }
}

bool validator::decode(std::string_view value, event_record& out, rejection& why) {
  if (!event_.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    why = {ec::decode_error, "bytes are not a valid keyflow.proto.Event (" +
                                 std::to_string(value.size()) + " bytes)"};
    return false;
  }
  auto missing = [&](const char* field) {
    why = {ec::missing_field, std::string{"required field '"} + field + "' is missing or empty"};
    return false;
  };
  if (need_customer_id_ && event_.customer_id().empty())
    return missing("customer_id");
  if (need_event_id_ && event_.event_id().empty())
    return missing("event_id");
  if (need_event_time_ && event_.event_time_ms() <= 0)
    return missing("event_time_ms");
  if (need_type_ && event_.type().empty())
    return missing("type");
  if (need_value_ && event_.value() == 0)
    return missing("value");
  if (!std::isfinite(event_.value())) {
    why = {ec::invalid_field, "field 'value' is not a finite number"};
    return false;
  }
  out.key.assign(event_.customer_id());
  out.event_id.assign(event_.event_id());
  out.type.assign(event_.type());
  out.value = event_.value();
  out.event_time_ms = event_.event_time_ms();
  return true;
}

std::string make_dead_letter(std::string_view key, std::string_view value, const provenance& from,
                             std::string_view operator_id, const rejection& why,
                             std::string_view pipeline, uint32_t pipeline_version,
                             uint32_t attempts) {
  proto::DeadLetter dl;
  dl.set_original_value(std::string{value});
  dl.set_original_key(std::string{key});
  dl.set_source_topic(std::string{from.topic});
  dl.set_source_partition(from.partition);
  dl.set_source_offset(from.offset);
  dl.set_operator_id(std::string{operator_id});
  dl.set_error_code(std::string{to_string(why.code)});
  dl.set_error_message(why.message);
  dl.set_record_timestamp_ms(from.timestamp_ms);
  dl.set_dead_lettered_at_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count());
  dl.set_attempts(attempts);
  dl.set_pipeline(std::string{pipeline});
  dl.set_pipeline_version(pipeline_version);
  return dl.SerializeAsString();
}

} // namespace keyflow::ops
