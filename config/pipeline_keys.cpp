/// \file
/// The table of pipeline YAML keys (see pipeline_keys.hpp). Adding a key here makes the
/// reader accept it (pipeline_config.cpp must then read it) and documents it; a key missing
/// here is rejected as unknown.

#include "config/pipeline_keys.hpp"

#include <stdexcept>

namespace keyflow::config {
namespace {

constexpr bool required = true;
constexpr bool optional = false;

/// Every key, in the order of the reader's messages. Columns: map, name, types, type,
/// default, required, meaning.
constexpr pipeline_key keys[] = {
    // --- top level ----------------------------------------------------------------------
    {"", "pipeline", "", "map", "", required,
     "Name, version, number of key groups and processing mode of the pipeline."},
    {"", "schema", "", "map", "", required,
     "The Protobuf schema every source record is decoded with."},
    {"", "source", "", "map", "", required, "The Kafka topic the pipeline reads."},
    {"", "dead_letters", "", "map", "", required,
     "Where records that cannot be processed are written."},
    {"", "operators", "", "list", "", required,
     "The operators, at least one. Each reads the output of the operator listed before it, "
     "or of its `input`."},
    {"", "sinks", "", "list", "none", optional,
     "Redis and Kafka outputs, each writing the output of one operator."},

    // --- pipeline -------------------------------------------------------------------------
    {"pipeline", "name", "", "string", "", required,
     "Pipeline name: 1 to 64 characters of `[a-zA-Z0-9._-]`."},
    {"pipeline", "version", "", "integer", "`1`", optional, "Pipeline version, at least 1."},
    {"pipeline", "max_parallelism", "", "integer", "`128`", optional,
     "Number of key groups (1..32768), the unit in which keyed state is partitioned and moved."},
    {"pipeline", "mode", "", "string", "`exactly-once`", optional,
     "`exactly-once` (aligned checkpoint barriers) or `at-least-once` (no alignment: lower "
     "latency, but records after a barrier may be counted again after a restore)."},

    // --- schema ---------------------------------------------------------------------------
    {"schema", "proto", "", "string", "", required,
     "The `.proto` file of the events; a relative path is relative to the pipeline file, and "
     "its imports are looked up beside it."},
    {"schema", "message", "", "string", "", required,
     "Full name of the message type every source record is, e.g. `keyflow.proto.Event`."},

    // --- source ---------------------------------------------------------------------------
    {"source", "id", "", "string", "`source`", optional,
     "Id of the source, as named by an operator's `input`; unique among all ids."},
    {"source", "topic", "", "string", "", required,
     "Kafka topic read (every partition): a legal topic name (`[a-zA-Z0-9._-]`, at most 249 "
     "characters), different from the dead-letter, late and Kafka sink topics."},
    {"source", "start_offset", "", "string", "`earliest`", optional,
     "Where a partition without a committed offset is read from: `earliest` or `latest`."},
    {"source", "key", "", "field", "`customer_id`", optional,
     "Field whose value is each record's key; it decides the key group (never the Kafka "
     "partition). Records without it are dead-lettered."},
    {"source", "event_time", "", "field", "`event_time_ms`", optional,
     "Integer field with the event time in ms since the Unix epoch. Records without it are "
     "dead-lettered."},
    {"source", "watermark", "", "map", "", optional,
     "Event-time watermarks, generated per Kafka partition."},
    {"source", "partitioned_by_key", "", "boolean", "`false`", optional,
     "The producers put every record of a key into one Kafka partition. A cluster then splits "
     "the job into regions of source partitions that share nothing; declaring it when a key "
     "is spread over partitions gives wrong results."},

    // --- source.watermark -----------------------------------------------------------------
    {"source.watermark", "max_out_of_orderness_ms", "", "integer", "`0`", optional,
     "Bound on disorder in ms (at least 0): a partition's watermark is the greatest event time "
     "read from it minus this."},
    {"source.watermark", "idle_timeout_ms", "", "integer", "`5000`", optional,
     "A partition that has had nothing to read for this many ms and is read to its end stops "
     "holding the watermark back; 0 = never idle."},

    // --- dead_letters ---------------------------------------------------------------------
    {"dead_letters", "topic", "", "string", "", required,
     "Kafka topic of dead letters (records that fail decoding, validation or enrichment, "
     "arrive too late, or are poison): a legal topic name different from the other topics."},

    // --- operators[]: every type ----------------------------------------------------------
    {"operators[]", "id", "", "string", "", required,
     "Operator id, 1 to 64 characters of `[a-zA-Z0-9._-]`, unique among all ids: state is "
     "matched to operators by id."},
    {"operators[]", "type", "", "string", "", required,
     "`validate`, `filter`, `map`, `dedup`, `enrich`, `aggregate`, `window`, `score` or "
     "`key_by`; it decides the other keys."},
    {"operators[]", "input", "", "string", "the operator before (the source for the first)",
     optional,
     "Id of the source or of an operator listed before this one, whose output this "
     "one reads."},

    // --- validate -------------------------------------------------------------------------
    {"operators[]", "required", "validate", "list", "none", optional,
     "Fields that must be present: a record missing one (absent, or an empty string) or "
     "carrying a non-finite double is dead-lettered; bytes that do not decode always are."},

    // --- filter ---------------------------------------------------------------------------
    {"operators[]", "field", "filter", "field", "", required, "Field compared with `value`."},
    {"operators[]", "op", "filter", "string", "`eq`", optional,
     "Comparison: `eq`, `ne`, `lt`, `le`, `gt`, `ge`, or `mod_eq` (`field % modulus == value`); "
     "records for which it holds are kept."},
    {"operators[]", "value", "filter", "string", "", required,
     "The literal `field` is compared with: a number or a string."},
    {"operators[]", "modulus", "filter", "integer", "", optional,
     "The modulus of `op: mod_eq` (at least 1): required with it, refused without it."},
    {"operators[]", "once_per_key", "filter", "boolean", "`false`", optional,
     "Each key passes at most once (keyed state)."},

    // --- map ------------------------------------------------------------------------------
    {"operators[]", "set", "map", "map", "", required,
     "Computed fields, at least one: output name -> `{field, multiply, add}`, giving "
     "`field * multiply + add` (a double)."},
    {"operators[].set.<name>", "field", "map", "field", "", required, "Numeric input field."},
    {"operators[].set.<name>", "multiply", "map", "number", "`1`", optional, "Factor."},
    {"operators[].set.<name>", "add", "map", "number", "`0`", optional,
     "Offset added after multiplying."},

    // --- dedup ----------------------------------------------------------------------------
    {"operators[]", "field", "dedup", "field", "", required,
     "Event-id field: a record whose (key, field value) was seen within `ttl_ms` is dropped."},
    {"operators[]", "ttl_ms", "dedup", "integer", "", required,
     "How long an event id is remembered, in ms of processing time (at least 1)."},

    // --- enrich ---------------------------------------------------------------------------
    {"operators[]", "key", "enrich", "field", "", required,
     "Field whose value names the entity looked up."},
    {"operators[]", "key_prefix", "enrich", "string", "", required,
     "The entity is the Redis hash `<key_prefix><key value>`."},
    {"operators[]", "fields", "enrich", "map", "", required,
     "Fields added, at least one: output name -> `{hash_field, type, default}` (an empty value "
     "takes every default)."},
    {"operators[].fields.<name>", "hash_field", "enrich", "string", "the output name", optional,
     "Field of the Redis hash read."},
    {"operators[].fields.<name>", "type", "enrich", "string", "`string`", optional,
     "`string`, `int64` or `double`."},
    {"operators[].fields.<name>", "default", "enrich", "string", "empty string / `0`", optional,
     "Value used when the entity or its field is missing (`on_missing: defaults`); a number "
     "for `int64` and `double`."},
    {"operators[]", "on_missing", "enrich", "string", "`defaults`", optional,
     "An entity that does not exist: `defaults` (the fields' defaults) or `dead_letter` (the "
     "record is dead-lettered as `enrich_missing`)."},
    {"operators[]", "cache_entries", "enrich", "integer", "`100000`", optional,
     "Entities in the LRU cache of each partition actor (1..100000000)."},
    {"operators[]", "cache_ttl_ms", "enrich", "integer", "`60000`", optional,
     "How long a cached entity is used, in ms (at least 1)."},
    {"operators[]", "batch_size", "enrich", "integer", "`512`", optional,
     "Most keys read from Redis in one round (1..100000)."},
    {"operators[]", "max_delay_ms", "enrich", "integer", "`2`", optional,
     "Longest wait for more keys to fill a round, in ms (0..60000)."},
    {"operators[]", "timeout_ms", "enrich", "integer", "`500`", optional,
     "A round not answered within this many ms fails (1..600000)."},
    {"operators[]", "retries", "enrich", "integer", "`3`", optional,
     "Retries of a failed round, with backoff (0..100); after them the round waits until "
     "Redis answers (backpressure, nothing is lost)."},

    // --- aggregate ------------------------------------------------------------------------
    {"operators[]", "aggregates", "aggregate", "map", "", required,
     "Running aggregates per key, at least one: output name -> `{fn, field, by}`; every batch "
     "emits the latest values of each key it touched."},
    {"operators[]", "ttl_ms", "aggregate", "integer", "none", optional,
     "Time to live of the keyed state in ms of processing time (at least 1): an expired value "
     "reads as absent."},

    // --- window ---------------------------------------------------------------------------
    {"operators[]", "kind", "window", "string", "", required,
     "`tumbling`, `sliding` or `session` (keyed event-time windows)."},
    {"operators[]", "size_ms", "window", "integer", "", optional,
     "Window length in ms (at least 1): required for tumbling and sliding windows, refused for "
     "session windows."},
    {"operators[]", "slide_ms", "window", "integer", "", optional,
     "Distance between window starts in ms (at least 1, at most `size_ms` and dividing it): "
     "required for sliding windows, refused for the others."},
    {"operators[]", "gap_ms", "window", "integer", "", optional,
     "Inactivity gap that ends a session, in ms (at least 1): required for session windows, "
     "refused for the others."},
    {"operators[]", "allowed_lateness_ms", "window", "integer", "`0`", optional,
     "Until the watermark passes a window's end - 1 + this (ms, at least 0), a late record "
     "updates the window and re-emits it; later records go to `late_topic`."},
    {"operators[]", "aggregates", "window", "map", "", required,
     "Aggregates of each window, at least one: output name -> `{fn, field, by}`."},
    {"operators[]", "late_topic", "window", "string", "the dead-letter topic", optional,
     "Kafka topic of records too late for their window (a legal topic name different from the "
     "other topics); in the dead-letter topic they have error code `late`."},

    // --- aggregates of aggregate and window -----------------------------------------------
    {"operators[].aggregates.<name>", "fn", "aggregate window", "string", "", required,
     "`count`, `sum`, `min`, `max`, `avg`, `first`, `last` (by event time), `max_by` or "
     "`min_by` (`field` of the record with the greatest / least `by`)."},
    {"operators[].aggregates.<name>", "field", "aggregate window", "field", "", optional,
     "Input field: required for every function but `count`. Absent values are skipped."},
    {"operators[].aggregates.<name>", "by", "aggregate window", "field", "", optional,
     "The field `max_by` / `min_by` compare: required for them, refused for the others."},

    // --- score ----------------------------------------------------------------------------
    {"operators[]", "bias", "score", "number", "`0`", optional,
     "Intercept: the output is `sigmoid(bias + sum of weight * feature)`."},
    {"operators[]", "weights", "score", "map", "", required,
     "Feature field -> weight (a number), at least one."},
    {"operators[]", "output", "score", "string", "`score`", optional,
     "Name of the output field (1 to 64 characters of `[a-zA-Z0-9._-]`)."},

    // --- key_by ---------------------------------------------------------------------------
    {"operators[]", "key", "key_by", "field", "", required,
     "Field whose value becomes the new key: the operators reading this one run in the next "
     "stage, on the actor owning the new key's key group."},

    // --- sinks[]: every type --------------------------------------------------------------
    {"sinks[]", "id", "", "string", "", required,
     "Sink id, 1 to 64 characters of `[a-zA-Z0-9._-]`, unique among all ids."},
    {"sinks[]", "type", "", "string", "", required, "`redis` or `kafka`."},
    {"sinks[]", "from", "", "string", "", required, "Id of the operator whose output is written."},
    {"sinks[]", "fields", "", "list", "all fields", optional,
     "Fields written, in this order; an item `out_name: field` writes a field under another "
     "name."},

    // --- redis ----------------------------------------------------------------------------
    {"sinks[]", "key_prefix", "redis", "string", "", required,
     "Each record is upserted into the hash `<key_prefix><key>[:<key_fields value>...]`, "
     "versioned so that replays never move a hash backwards."},
    {"sinks[]", "key_fields", "redis", "list", "none", optional,
     "Fields whose values are appended to the hash key, each after a `:`."},

    // --- kafka ----------------------------------------------------------------------------
    {"sinks[]", "topic", "kafka", "string", "", required,
     "Kafka topic written, one JSON object per record: a legal topic name different from the "
     "other topics."},
    {"sinks[]", "delivery", "kafka", "string", "`at-least-once`", optional,
     "`at-least-once` or `exactly-once` (Kafka transactions)."},
};

} // namespace

std::span<const pipeline_key> pipeline_keys() {
  return keys;
}

std::string pipeline_key_path(const pipeline_key& key) {
  return key.map.empty() ? std::string(key.name)
                         : std::string(key.map) + "." + std::string(key.name);
}

bool pipeline_key_applies_to(const pipeline_key& key, std::string_view item_type) {
  if (key.types.empty() || item_type.empty())
    return true;
  std::string_view rest = key.types;
  while (!rest.empty()) {
    const auto space = rest.find(' ');
    if (rest.substr(0, space) == item_type)
      return true;
    if (space == std::string_view::npos)
      break;
    rest.remove_prefix(space + 1);
  }
  return false;
}

std::vector<std::string_view> allowed_pipeline_keys(std::string_view map,
                                                    std::string_view item_type) {
  std::vector<std::string_view> out;
  bool any = false;
  for (const auto& k : keys) {
    if (k.map != map)
      continue;
    any = true;
    if (!pipeline_key_applies_to(k, item_type))
      continue;
    bool repeated = false;
    for (auto name : out)
      repeated = repeated || name == k.name;
    if (!repeated)
      out.push_back(k.name);
  }
  if (!any)
    throw std::logic_error("pipeline_keys: no keys for map '" + std::string(map) + "'");
  return out;
}

} // namespace keyflow::config
