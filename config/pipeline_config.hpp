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
#include <vector>

namespace keyflow::config {

/// An error in a configuration file or option, already formatted as
/// "<file>:<line>:<column>: <key path>: <what is wrong>".
class config_error : public std::runtime_error {
public:
  /// Builds an error from a finished message.
  explicit config_error(const std::string& what) : std::runtime_error(what) {}
};

/// Where records come from: one Kafka topic of protobuf `keyflow.proto.Event`.
struct source_config {
  std::string id = "source";             ///< operator id of the source; default "source"
  std::string topic;                     ///< required: Kafka topic to read
  std::string start_offset = "earliest"; ///< "earliest" or "latest" when no offset is known
};

/// Decode + validate: the fields an event must carry to be processed.
struct validate_config {
  std::string id = "validate"; ///< operator id
  /// Required fields; allowed: event_id, customer_id, event_time_ms, type, value.
  std::vector<std::string> required = {"event_id", "customer_id", "event_time_ms"};
};

/// Per-key count / sum / last event time, keyed by `key` (a field of Event).
struct aggregate_config {
  std::string id = "aggregate";    ///< operator id; also the RocksDB column family name
  std::string key = "customer_id"; ///< key field; only "customer_id" in this version
};

/// Logistic score over the aggregate's features:
/// score = 1 / (1 + exp(-(bias + sum_i weights[i] * feature_i))).
struct score_config {
  std::string id = "score"; ///< operator id
  double bias = 0.0;        ///< intercept; default 0
  /// Feature weights; allowed features: count, sum, avg, last_value.
  std::map<std::string, double> weights;
  double threshold = 0.5; ///< activation threshold in [0, 1]; default 0.5
};

/// Redis sink: `HSET <key_prefix><key> count .. sum .. last_event_time_ms .. score ..`.
struct redis_sink_config {
  std::string id = "profiles";         ///< operator id
  std::string key_prefix = "profile:"; ///< hash key prefix; default "profile:"
};

/// Kafka sink for activations (protobuf `keyflow.proto.Activation`, keyed by customer).
struct kafka_sink_config {
  std::string id = "activations"; ///< operator id
  std::string topic;              ///< required: output topic
  /// "at-least-once" (default: idempotent producer, records may repeat after a crash) or
  /// "exactly-once" (Kafka transactions committed at each checkpoint; read_committed
  /// consumers see each record once). Dead letters share this sink's producer.
  std::string delivery = "at-least-once";
};

/// A whole pipeline: source -> validate -> aggregate -> score -> sinks.
struct pipeline_config {
  std::string file;               ///< path the pipeline was loaded from ("<string>" if none)
  std::string name;               ///< required: pipeline name
  uint32_t version = 1;           ///< pipeline version; default 1
  uint32_t max_parallelism = 128; ///< number of key groups, 1..32768; default 128
  /// "exactly-once" (aligned barriers; default) or "at-least-once" (no alignment: lower
  /// latency, records after a barrier may be counted again after a restore).
  std::string mode = "exactly-once";
  source_config source;                        ///< the Kafka source
  std::string dead_letter_topic;               ///< required: topic for dead letters
  validate_config validate;                    ///< decode + validate operator
  aggregate_config aggregate;                  ///< keyed aggregate operator
  std::optional<score_config> score;           ///< optional score operator
  std::optional<redis_sink_config> redis_sink; ///< optional Redis profile sink
  std::optional<kafka_sink_config> kafka_sink; ///< optional activations sink (needs score)
};

/// Loads and validates a pipeline file; throws config_error naming file, line and key.
pipeline_config load_pipeline_file(const std::string& path);

/// Parses and validates pipeline YAML text; `file` names it in errors.
pipeline_config parse_pipeline(const std::string& yaml_text, const std::string& file = "<string>");

} // namespace keyflow::config
