#pragma once
/// \file
/// Listing and replaying the dead letters of a pipeline: the `keyflow.proto.DeadLetter`
/// envelopes (config/proto/dead_letter.proto) in its dead-letter topic. Both read each
/// partition of the topic up to its high watermark at the time of the call, so they end even
/// while new dead letters keep arriving. Plain librdkafka clients: works with the embedded
/// Kafka and a real one alike.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kafka/client.hpp"

namespace keyflow::kafka {

/// Which dead letters to list or replay. Empty strings match every letter.
struct dead_letter_filter {
  std::string reason;      ///< error code to match, e.g. "enrich_missing"; default: any
  std::string operator_id; ///< id of the operator that rejected the record; default: any
  size_t limit = 100;      ///< list only: at most this many entries (0 = no limit); default 100
  int64_t from = -1;       ///< first dead-letter offset to read in every partition; default -1:
                           ///< list from the log start, replay from the committed offset
};

/// One dead letter: where it is in the dead-letter topic and its decoded envelope.
struct dead_letter_entry {
  int32_t partition = -1;          ///< partition in the dead-letter topic
  int64_t offset = -1;             ///< offset in the dead-letter topic
  std::string original_key;        ///< the rejected record's key, byte for byte
  std::string original_value;      ///< the rejected record's value, byte for byte
  std::string source_topic;        ///< topic the record was read from
  int32_t source_partition = -1;   ///< its partition
  int64_t source_offset = -1;      ///< its offset
  std::string operator_id;         ///< operator that rejected it
  std::string error_code;          ///< reason word, e.g. "decode_error"
  std::string error_message;       ///< detail
  int64_t record_timestamp_ms = 0; ///< Kafka timestamp of the rejected record
  int64_t dead_lettered_at_ms = 0; ///< when the dead letter was written
  uint32_t attempts = 0;           ///< processing attempts
  std::string pipeline;            ///< pipeline name
  uint32_t pipeline_version = 0;   ///< pipeline version
};

/// What a replay did.
struct replay_result {
  std::string group;                                  ///< consumer group whose offsets moved
  uint64_t replayed = 0;                              ///< letters written back to their source
  uint64_t skipped = 0;                               ///< letters passed (filter, not an envelope)
  std::map<std::string, uint64_t> replayed_by_reason; ///< replayed letters per error code
  std::map<std::string, uint64_t> skipped_by_reason;  ///< skipped letters per error code
                                                      ///< ("not_a_dead_letter": undecodable)
  std::map<int32_t, int64_t> committed;               ///< dead-letter partition -> committed
                                                      ///< offset (next letter to replay)
};

/// Header every replayed record carries; its value is "<dlq topic>/<partition>/<offset>".
inline constexpr const char* replay_header = "keyflow-replay-of";

/// The default consumer group of replay_dead_letters() for pipeline `pipeline`.
std::string default_replay_group(const std::string& pipeline);

/// Every error-code word a dead letter can carry (core/errors.hpp), for validating filters.
std::vector<std::string> dead_letter_reasons();

/// Reads the dead letters of `dlq_topic` (each partition from `filter.from`, or its log
/// start, up to its high watermark at call time) and returns those matching the filter in
/// (partition, offset) order, at most `filter.limit`. Records that are not envelopes are
/// left out (logged). Throws std::runtime_error naming the cause (topic missing, a Kafka
/// error, nothing read within `timeout_ms`).
std::vector<dead_letter_entry> list_dead_letters(const properties& props,
                                                 const std::string& dlq_topic,
                                                 const dead_letter_filter& filter,
                                                 int timeout_ms = 30000);

/// Writes the matching dead letters of `dlq_topic` back to where they came from: the
/// original key and value to `source_topic`, partition `source_partition` (so the same
/// actor owns the key), with the header replay_header. Reads each partition from the
/// committed offset of consumer group `group_id` (or `filter.from`, which overrides it; the
/// log start if the group has none) up to the high watermark at call time, flushes the
/// producer and only then commits the group's offsets to where it stopped: a second call
/// replays nothing already passed. Letters the filter does not match are passed too (they
/// are not replayed by a later call without `from`). `filter.limit` is ignored. Throws
/// std::runtime_error naming the cause (topic missing, source partition missing, Kafka
/// error text, a delivery that failed); the letters before the cause are still committed
/// if all of them were delivered, and none is if any delivery failed.
replay_result replay_dead_letters(const properties& props, const std::string& dlq_topic,
                                  const std::string& group_id, const dead_letter_filter& filter,
                                  int timeout_ms = 30000);

/// JSON of an entry: the envelope's fields, with key and value in base64 ("key_base64",
/// "value_base64") and "value_size".
nlohmann::json to_json(const dead_letter_entry& e);

/// JSON of a replay result.
nlohmann::json to_json(const replay_result& r);

} // namespace keyflow::kafka
