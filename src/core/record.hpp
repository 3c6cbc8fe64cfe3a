#pragma once
/// \file
/// Records and batches that move between actors. Batches are the unit of transfer: actors
/// never send single records. All types have a CAF-0.17-style `inspect` so they can cross
/// the middleman later; they carry no CAF dependency themselves.

#include <cstdint>
#include <string>
#include <vector>

#include "core/key_group.hpp"
#include "core/value.hpp"

namespace keyflow {

/// A record on its way through a pipeline: the key it is routed by, its event time, where
/// it came from, and its fields (meaning given by the layout of the edge it travels on).
struct record {
  std::string key;           ///< routing key (e.g. customer_id), as text
  key_group_t key_group = 0; ///< key group of `key`
  int64_t event_time_ms = 0; ///< event time, ms since the Unix epoch
  int64_t ingest_ns = 0;     ///< steady-clock ns when the source read the record
  int64_t offset = -1;       ///< source Kafka offset (provenance)
  int32_t partition = -1;    ///< source Kafka partition (provenance)
  /// Version of a result record: emissions for the same output key carry increasing
  /// sequences, identical after a restore and replay, so sinks apply only newer ones.
  uint64_t seq = 0;
  std::vector<value> fields; ///< field values by layout slot
  std::string raw;           ///< original bytes, kept only when a later operator may dead-letter it
  /// Hot-key pre-aggregation: this record is the partial aggregate of `folded` records of
  /// its key (its fields are the aggregate's accumulators, operators/preaggregate.hpp);
  /// 0 = an ordinary record.
  uint32_t folded = 0;
};

/// Inspects a record (CAF 0.17 inspect protocol).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, record& x) {
  return f(x.key, x.key_group, x.event_time_ms, x.ingest_ns, x.offset, x.partition, x.seq, x.fields,
           x.raw, x.folded);
}

/// No watermark yet: the minimum event time.
constexpr int64_t no_watermark = INT64_MIN;

/// A batch of records for one receiver, with the sender's watermark after the batch.
struct record_batch {
  std::vector<record> records;      ///< records in source order
  uint32_t source = 0;              ///< index of the sender among the receiver's inputs
  int64_t watermark = no_watermark; ///< sender's watermark once these records are in
};

/// Inspects a record_batch.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, record_batch& x) {
  return f(x.records, x.source, x.watermark);
}

/// Where a source stands: the next offset it will read of its topic-partition, and its
/// watermark (restored with the offset, so that records that were late stay late).
struct source_position {
  std::string topic;                ///< topic (or generator name)
  int32_t partition = 0;            ///< partition (or generator index)
  int64_t next_offset = 0;          ///< next offset to read
  int64_t watermark = no_watermark; ///< the source's watermark, if it has one
};

/// Inspects a source_position.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, source_position& x) {
  return f(x.topic, x.partition, x.next_offset, x.watermark);
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
