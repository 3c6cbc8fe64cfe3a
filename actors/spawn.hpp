#pragma once
/// \file
/// Spawn helpers: the only place that wires actors together. Actors themselves only know
/// the handles they are given.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>

#include "actors/actors.hpp"
#include "core/lease.hpp"
#include "core/source_reader.hpp"
#include "core/supervision.hpp"
#include "kafka/client.hpp"
#include "metrics/metrics.hpp"
#include "pipeline/plan.hpp"
#include "state/checkpoint_store.hpp"
#include "state/state_store.hpp"

namespace keyflow {

/// Flow-control settings shared by all actors of a pipeline.
struct flow_settings {
  uint32_t batch_size = 1024;             ///< max records a source reads per batch
  uint32_t credits = 4;                   ///< unanswered batches allowed per sender->receiver link
  std::chrono::milliseconds idle_poll{5}; ///< source re-poll delay when input is empty
  /// A source out of credit this long pauses its input. Shorter gaps only stop reading:
  /// pausing a Kafka partition discards what librdkafka prefetched (bounded by
  /// queued.max.messages.kbytes), so it is kept for sustained backpressure.
  std::chrono::milliseconds pause_after{200};
};

/// Everything a source actor needs.
struct source_params {
  std::shared_ptr<source_reader> reader;   ///< input
  uint32_t max_parallelism = 128;          ///< key groups
  std::vector<partition_actor> partitions; ///< destinations, in key-group order
  kafka_sink_actor dead_letters;           ///< where rejected records go (may be null)
  flow_settings flow;                      ///< batching and credit
  metrics::metrics* metrics = nullptr;     ///< node metrics (may be null)
  uint32_t index = 0;                      ///< this source's index among the pipeline's sources
  int64_t max_out_of_orderness_ms = 0;     ///< watermark = greatest event time - this
  /// No input for this long marks the source idle (its watermark stops holding others
  /// back); 0 = never.
  std::chrono::milliseconds idle_timeout{5000};
  /// Watermark restored from a checkpoint (no_watermark if none): the source starts from it
  /// and tells every partition actor at once.
  int64_t initial_watermark = no_watermark;
  /// Cluster lease: while it is expired the source reads nothing (null: never expires).
  std::shared_ptr<const work_lease> lease{};
  /// Raised to every watermark the source sends (shared by an instance's sources; the
  /// bound of hot-key fanout into windows, operators/preaggregate.hpp); may be null.
  std::shared_ptr<std::atomic<int64_t>> watermark_bound{};
};

/// Spawns a source actor (event-based; polls without blocking).
source_actor spawn_source(caf::actor_system& sys, source_params params);

/// A sink a partition actor writes to: the plan's sink index and the actor.
struct sink_link {
  size_t index = 0;       ///< index in plan::sinks
  redis_sink_actor redis; ///< set for a Redis sink
  kafka_sink_actor kafka; ///< set for a Kafka sink
};

/// Everything a partition actor needs.
struct partition_params {
  std::shared_ptr<const pipeline::plan> plan;     ///< the resolved pipeline
  int stage = 0;                                  ///< which stage it runs
  state::state_store* store = nullptr;            ///< node state store (outlives the actor)
  uint32_t index = 0;                             ///< actor index within its stage
  uint32_t parallelism = 1;                       ///< actors in its stage (its key-group range)
  std::vector<sink_link> sinks;                   ///< sinks of its stage
  kafka_sink_actor dead_letters;                  ///< late / unenrichable records (may be null)
  std::vector<partition_actor> downstream;        ///< next stage (after key_by), key-group order
  std::map<std::string, lookup_actor> lookups;    ///< lookup actor of each enrich operator, by id
  flow_settings flow;                             ///< credit to sinks and the next stage
  std::chrono::milliseconds flush_interval{1000}; ///< state write-back period
  metrics::metrics* metrics = nullptr;            ///< node metrics (may be null)
  uint32_t sources = 1; ///< number of inputs sending to it (barrier alignment, watermarks)
  /// Part of checkpoints: after acknowledging a barrier, no state is written to RocksDB
  /// until the coordinator's `done`, so its RocksDB checkpoint holds the barrier state.
  bool checkpointing = false;
  bool exactly_once = true; ///< align barriers (hold batches of aligned sources)
  /// Keys kept in the in-memory working copy after a state write; the rest are read from
  /// RocksDB when needed. 0 = no limit.
  size_t max_state_keys = 0;
  /// Hot-key detection: a key with at least this guaranteed share of the actor's records
  /// (over the last 10-20 s, at least 1000 records) is reported; 0 = off.
  double hot_key_share = 0.2;
  /// The node's supervision: an operator failure is reported to it before the actor fails,
  /// and its hints say which records to process one at a time.
  supervision_link supervised;
};

/// Spawns a partition actor (event-based).
partition_actor spawn_partition(caf::actor_system& sys, partition_params params);

/// Settings of a Redis sink.
struct redis_sink_params {
  std::string address;                          ///< host:port
  std::string key_prefix = "profile:";          ///< hash key prefix
  std::string sink_id = "profiles";             ///< operator id (metrics label)
  std::vector<std::string> fields;              ///< hash field names, one per written slot
  std::vector<int> slots;                       ///< record slots written, in `fields` order
  std::vector<int> key_slots;                   ///< slots appended to the hash key (":" + value)
  std::chrono::milliseconds flush_interval{50}; ///< max delay before writing
  uint32_t max_pending = 20000;                 ///< coalesced keys before a forced write
  metrics::metrics* metrics = nullptr;          ///< node metrics (may be null)
  /// Redis key holding the newest generation of this sink's region ("" = no fencing);
  /// writes are refused once it exceeds `generation`.
  std::string fence_key;
  uint64_t generation = 0; ///< generation of the region this sink writes for
};

/// Spawns a Redis sink on its own thread (it blocks on I/O).
redis_sink_actor spawn_redis_sink(caf::actor_system& sys, redis_sink_params params);

/// Settings of a Kafka sink.
struct kafka_sink_params {
  kafka::properties properties;        ///< producer properties (bootstrap.servers, ...)
  std::string sink_id = "kafka";       ///< metrics label
  std::string topic;                   ///< topic of result records (record_batch)
  std::vector<std::string> fields;     ///< JSON field names, one per written slot
  std::vector<int> slots;              ///< record slots written, in `fields` order
  metrics::metrics* metrics = nullptr; ///< node metrics (may be null)
  /// Non-empty: exactly-once delivery; records go out in Kafka transactions with this
  /// transactional.id, committed at every checkpoint (drain).
  std::string transactional_id;
  /// Cluster lease: while it is expired the sink holds records instead of producing them
  /// (null: never expires).
  std::shared_ptr<const work_lease> lease{};
};

/// Spawns a Kafka sink on its own thread.
kafka_sink_actor spawn_kafka_sink(caf::actor_system& sys, kafka_sink_params params);

/// Everything a checkpoint coordinator needs.
struct coordinator_params {
  std::shared_ptr<const pipeline::plan> plan;     ///< the resolved pipeline
  state::state_store* store = nullptr;            ///< node state (outlives the actor)
  state::checkpoint_store* checkpoints = nullptr; ///< where checkpoints go (outlives it)
  std::vector<source_actor> sources;              ///< all sources of the pipeline
  std::vector<partition_actor> partitions;        ///< all partition actors, every stage
  std::vector<redis_sink_actor> redis;            ///< flushed before each checkpoint
  std::vector<kafka_sink_actor> kafka;            ///< flushed before each checkpoint
  std::chrono::milliseconds interval{5000};       ///< periodic trigger; 0 = on demand only
  std::chrono::milliseconds timeout{60000};       ///< a checkpoint not done by then fails
  uint64_t first_id = 1;                          ///< id of the first checkpoint
  uint64_t epoch = 1;                             ///< restore generation, in manifests
  bool exactly_once = true;                       ///< recorded in manifests
  metrics::metrics* metrics = nullptr;            ///< node metrics (may be null)
  /// A job spread over nodes: part writer of each slice (slice s reads the partitions p
  /// with p % parts.size() == s and owns key-group range s of parts.size()). Each writes its
  /// part, then `checkpoints` gets the manifest listing them; `store` is unused.
  std::vector<part_writer_actor> parts;
};

/// Spawns the checkpoint coordinator on its own thread (it blocks on disk).
checkpoint_coordinator_actor spawn_checkpoint_coordinator(caf::actor_system& sys,
                                                          coordinator_params params);

/// Spawns the part writer of one slice of a job spread over nodes, on its own thread:
/// writes the RocksDB checkpoint of `store` into `checkpoints` with the manifest it is given.
part_writer_actor spawn_part_writer(caf::actor_system& sys, state::state_store* store,
                                    state::checkpoint_store* checkpoints);

/// Spawns the node's supervisor actor over `sup` (actors/supervisor.cpp).
supervisor_actor spawn_supervisor(caf::actor_system& sys, std::shared_ptr<supervision> sup);

} // namespace keyflow
