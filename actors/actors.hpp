#pragma once
/// \file
/// Every typed actor interface of Keyflow. Read this file to see who talks to whom.
///
///   source (one per Kafka partition) --record_batch, watermark--> partition (stage 0)
///   partition (stage k) --record_batch, watermark, barrier--> partition (stage k+1; key_by)
///   partition --record_batch--> redis / kafka sinks;  partition --lookup_request--> lookup
///   source, partition --kafka_batch (dead letters)--> dead-letter kafka sink
///   checkpoint coordinator --checkpoint--> sources --barrier--> partitions --ack--> coordinator
///   supervisor --monitor--> every actor of an instance (restart on failure)
///
/// Every data message is a batch and is answered with a credit (uint32 = 1) once the
/// receiver has taken it: a sender keeps at most `credits` unanswered batches per receiver.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor.hpp>

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/type_ids.hpp"
#include "core/lookup.hpp"
#include "core/record.hpp"

namespace keyflow {

/// Writes result records to Redis hashes (versioned upserts, pipelined) on its own thread.
using redis_sink_actor = caf::typed_actor<
    /// Takes a batch of result records; replies one credit once it is buffered.
    caf::replies_to<record_batch>::with<uint32_t>,
    /// Timer: write what is buffered.
    caf::reacts_to<atom::tick>,
    /// Writes everything buffered; replies the total number of records written so far.
    caf::replies_to<atom::drain>::with<uint64_t>>;

/// Produces records (results as JSON, dead letters) to Kafka on its own thread.
using kafka_sink_actor = caf::typed_actor<
    /// Takes serialized records; replies one credit once they are handed to the producer.
    caf::replies_to<kafka_batch>::with<uint32_t>,
    /// Takes result records, writes them as JSON; replies one credit once handed over.
    caf::replies_to<record_batch>::with<uint32_t>,
    /// Timer: serve delivery reports.
    caf::reacts_to<atom::tick>,
    /// Waits for every record to be acknowledged; replies records delivered so far.
    caf::replies_to<atom::drain>::with<uint64_t>>;

/// Reads entity hashes from Redis for enrich operators: collects the keys of concurrent
/// requests into micro-batches (up to a size or a delay), reads them with pipelined HMGETs
/// and answers each request. Runs detached: it blocks on Redis. While Redis is slow its
/// answers are late, which holds back the partition actors waiting for them (backpressure).
using lookup_actor = caf::typed_actor<
    /// Looks up entity hashes; replies one entry per key, in order.
    caf::replies_to<lookup_request>::with<lookup_reply>,
    /// Timer: send the micro-batch collected so far.
    caf::reacts_to<atom::tick>>;

/// Owns a contiguous key-group range: runs the keyed operator chain over its state.
using partition_actor = caf::typed_actor<
    /// Takes a batch of records for its key groups; replies one credit once processed.
    caf::replies_to<record_batch>::with<uint32_t>,
    /// Input `index` (a source or an upstream partition actor) advanced its watermark to
    /// `wm`; `idle`: it has had no input for its idle timeout (ignored while others are
    /// active). In order with that input's batches.
    caf::reacts_to<atom::watermark, int64_t, uint32_t, bool>,
    /// Checkpoint barrier `id` from source `index`, in order with that source's batches.
    caf::reacts_to<atom::barrier, uint64_t, uint32_t>,
    /// From the coordinator: replies once the barriers of checkpoint `id` from every source
    /// have arrived and the state as of the barrier is written to RocksDB; the reply is the
    /// alignment time in microseconds.
    caf::replies_to<atom::checkpoint, uint64_t>::with<uint64_t>,
    /// From the coordinator: checkpoint `id` is finished (written or failed); changed state
    /// may be written to RocksDB again before the next barrier.
    caf::reacts_to<atom::done, uint64_t>,
    /// Timer: write changed state to RocksDB.
    caf::reacts_to<atom::flush>,
    /// Flushes state and waits for its sink batches; replies records processed so far.
    caf::replies_to<atom::drain>::with<uint64_t>,
    /// Sets the next stage (partition actors in key-group order, possibly on other nodes)
    /// of an actor spawned without one; sent before any input reaches it.
    caf::reacts_to<atom::connect, std::vector<caf::actor>>>;

/// Reads one input (a Kafka partition or a generator), routes records by key group.
using source_actor = caf::typed_actor<
    /// Self-message: read the next batch if credit allows.
    caf::reacts_to<atom::poll>,
    /// Timer: publish lag and backpressure metrics.
    caf::reacts_to<atom::tick>,
    /// Timer: pause the input if still out of credit (sustained backpressure).
    caf::reacts_to<atom::pause>,
    /// Starts checkpoint `id`: sends a barrier to every partition actor after the batches
    /// already sent, and replies the position (next offset) at the barrier.
    caf::replies_to<atom::checkpoint, uint64_t>::with<source_position>,
    /// Stops reading and waits for in-flight batches; replies records read.
    caf::replies_to<atom::stop>::with<uint64_t>>;

/// Triggers checkpoints on an interval and on demand, collects the sources' positions and
/// the partition actors' acknowledgements, then writes the RocksDB checkpoint and its
/// manifest. Runs detached: writing a checkpoint blocks on disk.
using checkpoint_coordinator_actor = caf::typed_actor<
    /// Timer: start a periodic checkpoint unless one is running.
    caf::reacts_to<atom::tick>,
    /// Takes a checkpoint now; a non-empty name makes it a named snapshot. Replies the
    /// checkpoint id once its manifest is written, or an error.
    caf::replies_to<atom::checkpoint, std::string>::with<uint64_t>>;

/// Writes one slice's part of a checkpoint of a job spread over nodes: a RocksDB checkpoint
/// of the slice's state with the manifest it is given. Runs detached (it blocks on disk).
using part_writer_actor = caf::typed_actor<
    /// Takes a serialized proto::CheckpointManifest (id, offsets of the slice's partitions);
    /// replies the part's checkpoint directory once its manifest is written.
    caf::replies_to<atom::checkpoint, std::string>::with<std::string>>;

/// A node's supervisor: monitors the actors of every pipeline instance it is told about and
/// schedules a restart of the instance (with backoff) when one of them fails
/// (core/supervision.hpp). Exits of its own making (kill, user_shutdown) are not failures.
using supervisor_actor = caf::typed_actor<
    /// Monitors `actors`, the actors of start `incarnation` of pipeline instance `instance`.
    caf::reacts_to<atom::monitor, std::vector<caf::actor>, uint32_t, uint64_t>>;

} // namespace keyflow
