#include "operators/dead_letter.hpp"

#include <chrono>

#include "proto/dead_letter.pb.h"

namespace keyflow::ops {

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
