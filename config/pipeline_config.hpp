#pragma once
/// \file
/// Pipeline definition loaded from YAML (e.g. config/pipelines/cdp.yaml) with strict
/// validation: unknown keys, wrong types, missing required keys and inconsistent values are
/// reported with file, line, column and the key path at fault.

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keyflow::config {

/// An error in a configuration file or option, already formatted as
/// "<file>:<line>:<column>: <key path>: <what is wrong>".
class config_error : public std::runtime_error {
public:
  /// Builds an error from a finished message.
  explicit config_error(const std::string& what) : std::runtime_error(what) {}
};

/// A reference to a record field in the config, with the position to report if it does not
/// resolve: "<file>:<line>:<column>: <key path>".
struct field_ref {
  std::string name;  ///< field name or protobuf path, e.g. "customer_id", "bid.price"
  std::string where; ///< position prefix for messages; empty if not set
  /// True if the reference was given.
  bool set() const noexcept { return !name.empty(); }
};

/// The event schema: a .proto file (relative paths are relative to the pipeline file) and the
/// message type every source record is.
struct schema_config {
  std::string proto;   ///< required: path to the .proto file
  std::string message; ///< required: full message type name, e.g. "keyflow.proto.Event"
  std::string where;   ///< position of the schema section for messages
};

/// Event-time watermarks of the source: per Kafka partition, the greatest event time seen
/// minus the bound; a partition without records for `idle_timeout_ms` stops holding the
/// watermark back.
struct watermark_config {
  int64_t max_out_of_orderness_ms = 0; ///< bound on disorder; default 0
  int64_t idle_timeout_ms = 5000;      ///< idle partition timeout; 0 = never idle; default 5000
};

/// Where records come from: one Kafka topic of the schema's message type.
struct source_config {
  std::string id = "source";             ///< operator id of the source; default "source"
  std::string topic;                     ///< required: Kafka topic to read
  std::string start_offset = "earliest"; ///< "earliest" or "latest" when no offset is known
  field_ref key;              ///< field the records are keyed (routed) by; default customer_id
  field_ref event_time;       ///< int64 field with the event time in ms; default event_time_ms
  watermark_config watermark; ///< watermark generation
  /// The producers put every record of a key into one Kafka partition (any partitioner that
  /// hashes the key does). Then a cluster splits the job into regions of source partitions
  /// that share nothing; otherwise the job is spread over the nodes in slices that send
  /// each record to its key group's node (src/node/spread_job.hpp). Default false.
  bool partitioned_by_key = false;
};

/// One aggregate of an aggregate or window operator: `name: {fn: F, field: X, by: Y}`.
struct aggregate_def {
  std::string name;  ///< output field name
  std::string fn;    ///< count, sum, min, max, avg, first, last, max_by, min_by
  field_ref field;   ///< input field (all but count)
  field_ref by;      ///< max_by / min_by: field compared
  std::string where; ///< position for messages
};

/// One computed field of a map operator: `name: {field: X, multiply: a, add: b}` gives
/// name = X * a + b (as a double).
struct map_def {
  std::string name;    ///< output field
  field_ref field;     ///< numeric input field
  double multiply = 1; ///< factor; default 1
  double add = 0;      ///< offset; default 0
};

/// One field an enrich operator reads from the entity hash.
struct enrich_field_def {
  std::string name;            ///< output field name
  std::string hash_field;      ///< hash field; default = name
  std::string type = "string"; ///< string, int64 or double
  std::string default_value;   ///< used when missing (policy defaults); "" / 0 by default
  std::string where;           ///< position for messages
};

/// Operator types: validate, filter, map, dedup, enrich, aggregate, window, score, key_by.
/// Fields not used by a type keep their defaults (the reader rejects keys a type does not
/// take).
struct operator_config {
  std::string id;    ///< required: unique operator id (state is matched to operators by id)
  std::string type;  ///< operator type
  std::string input; ///< id of the operator it reads from; default: the previous one
  std::string where; ///< position of the operator for messages
  // validate
  std::vector<field_ref> required; ///< fields that must be present (non-default)
  // filter: keeps records where `field op value` holds (op: eq ne lt le gt ge, or mod_eq:
  // field % modulus == value); once_per_key: each key passes at most once (keyed state).
  field_ref field;           ///< filter, dedup(event id)
  std::string op = "eq";     ///< filter comparison
  std::string value;         ///< filter literal (number or string)
  int64_t modulus = 0;       ///< mod_eq modulus
  bool once_per_key = false; ///< filter: first match per key only
  // map
  std::vector<map_def> set; ///< computed fields
  // dedup / aggregate state TTL; enrich cache TTL
  int64_t ttl_ms = 0; ///< dedup: how long an event id is remembered; aggregate: state TTL
  // enrich
  field_ref key;                        ///< enrich: lookup key field; key_by: new key
  std::string key_prefix;               ///< enrich: Redis key = prefix + key value
  std::vector<enrich_field_def> fields; ///< enrich: fields read
  std::string on_missing = "defaults";  ///< enrich: defaults or dead_letter
  uint32_t cache_entries = 100000;      ///< enrich: LRU cache size per partition actor
  int64_t cache_ttl_ms = 60000;         ///< enrich: cache TTL
  uint32_t batch_size = 512;            ///< enrich: keys per Redis round
  int64_t max_delay_ms = 2;             ///< enrich: max wait to fill a round
  int64_t timeout_ms = 500;             ///< enrich: per-round timeout
  uint32_t retries = 3;                 ///< enrich: retries of a failed round
  // window (kind tumbling, sliding, session) and aggregate
  std::string kind;                      ///< window kind
  int64_t size_ms = 0;                   ///< tumbling, sliding
  int64_t slide_ms = 0;                  ///< sliding
  int64_t gap_ms = 0;                    ///< session
  int64_t allowed_lateness_ms = 0;       ///< window lateness
  std::vector<aggregate_def> aggregates; ///< aggregate, window
  std::string late_topic;                ///< window: late records' topic (default: dead letters)
  // score: output = sigmoid(bias + sum weights[f] * f)
  double bias = 0;                                   ///< score intercept
  std::vector<std::pair<field_ref, double>> weights; ///< score feature weights
  std::string output = "score";                      ///< score output field
};

/// A sink: writes the records an operator emits (`from`) to Redis or Kafka.
struct sink_config {
  std::string id;    ///< required: sink id
  std::string type;  ///< redis or kafka
  std::string from;  ///< required: operator whose output it writes
  std::string where; ///< position for messages
  /// Fields written; default all. A list item is a field name, or `out_name: field` to
  /// write a field under another name.
  std::vector<field_ref> fields;
  std::vector<std::string> field_names; ///< output name of each of `fields`
  // redis: HSET <key_prefix><key>[:<key_fields>...] field value ... with a version check
  std::string key_prefix;            ///< redis hash key prefix
  std::vector<field_ref> key_fields; ///< redis: fields appended to the hash key
  // kafka
  std::string topic;                      ///< kafka topic
  std::string delivery = "at-least-once"; ///< at-least-once or exactly-once (transactions)
};

/// A whole pipeline: schema, source, operators (a tree, cut into stages by key_by), sinks.
struct pipeline_config {
  std::string file;               ///< path the pipeline was loaded from ("<string>" if none)
  std::string name;               ///< required: pipeline name
  uint32_t version = 1;           ///< pipeline version; default 1
  uint32_t max_parallelism = 128; ///< number of key groups, 1..32768; default 128
  /// "exactly-once" (aligned barriers; default) or "at-least-once" (no alignment: lower
  /// latency, records after a barrier may be counted again after a restore).
  std::string mode = "exactly-once";
  schema_config schema;                   ///< event schema
  source_config source;                   ///< the Kafka source
  std::string dead_letter_topic;          ///< required: topic for dead letters
  std::vector<operator_config> operators; ///< in order; each reads from `input`
  std::vector<sink_config> sinks;         ///< outputs

  /// The operator with this id, or nullptr.
  const operator_config* find_operator(std::string_view id) const {
    for (const auto& op : operators)
      if (op.id == id)
        return &op;
    return nullptr;
  }
};

/// Loads and validates a pipeline file; throws config_error naming file, line and key.
pipeline_config load_pipeline_file(const std::string& path);

/// Parses and validates pipeline YAML text; `file` names it in errors.
pipeline_config parse_pipeline(const std::string& yaml_text, const std::string& file = "<string>");

} // namespace keyflow::config
