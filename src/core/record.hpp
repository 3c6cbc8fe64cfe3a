#pragma once
/// \file
/// Records and batches that move between actors. Batches are the unit of transfer: actors
/// never send single records. All types have a CAF-0.17-style `inspect` so they can cross
/// the middleman later; they carry no CAF dependency themselves.

#include <cstdint>
#include <string>
#include <vector>

#include "core/key_group.hpp"

namespace keyflow {

/// A decoded, validated event on its way to the partition actor that owns its key group.
struct event_record {
  std::string key;           ///< the routing key (customer_id)
  std::string event_id;      ///< unique event id
  std::string type;          ///< event type
  double value = 0;          ///< numeric payload
  int64_t event_time_ms = 0; ///< event time
  int64_t ingest_ns = 0;     ///< steady-clock ns when the source read the record
  int64_t offset = -1;       ///< source Kafka offset (provenance)
  int32_t partition = -1;    ///< source Kafka partition (provenance)
  key_group_t key_group = 0; ///< key group of `key`
};

/// Inspects an event_record (CAF 0.17 inspect protocol).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_record& x) {
  return f(x.key, x.event_id, x.type, x.value, x.event_time_ms, x.ingest_ns, x.offset, x.partition,
           x.key_group);
}

/// A batch of events for one partition actor.
struct event_batch {
  std::vector<event_record> records; ///< records in source order
  uint32_t source = 0;               ///< index of the sending source (barrier alignment)
};

/// Inspects an event_batch.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_batch& x) {
  return f(x.records, x.source);
}

/// Where a source stands: the next offset it will read of its topic-partition.
struct source_position {
  std::string topic;       ///< topic (or generator name)
  int32_t partition = 0;   ///< partition (or generator index)
  int64_t next_offset = 0; ///< next offset to read
};

/// Inspects a source_position.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, source_position& x) {
  return f(x.topic, x.partition, x.next_offset);
}

/// The latest profile of one key, as the Redis sink writes it.
struct profile_update {
  std::string key;                ///< customer_id
  uint64_t count = 0;             ///< events counted
  double sum = 0;                 ///< sum of values
  int64_t last_event_time_ms = 0; ///< greatest event time
  double score = 0;               ///< model score (0 without a score operator)
  int64_t ingest_ns = 0;          ///< ingest time of the newest record folded in
  /// Version of the key's state: updates folded into it so far. The same records give the
  /// same sequence after a restore and replay, so sinks apply only newer versions.
  uint64_t seq = 0;
};

/// Inspects a profile_update.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, profile_update& x) {
  return f(x.key, x.count, x.sum, x.last_event_time_ms, x.score, x.ingest_ns, x.seq);
}

/// A batch of profile updates for a Redis sink.
struct profile_batch {
  std::vector<profile_update> updates; ///< at most one update per key per batch
};

/// Inspects a profile_batch.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, profile_batch& x) {
  return f(x.updates);
}

/// One record for a Kafka sink: already serialized, with its destination topic.
struct kafka_message {
  std::string topic; ///< destination topic
  std::string key;   ///< record key (may be empty)
  std::string value; ///< record value (serialized protobuf)
};

/// Inspects a kafka_message.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, kafka_message& x) {
  return f(x.topic, x.key, x.value);
}

/// A batch of records for a Kafka sink (activations, dead letters).
struct kafka_batch {
  std::vector<kafka_message> messages; ///< in send order
};

/// Inspects a kafka_batch.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, kafka_batch& x) {
  return f(x.messages);
}

} // namespace keyflow
